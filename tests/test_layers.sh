#!/bin/sh
# The layer check (scripts/check-layers.py) passes on the tree and fails, naming
# the file and line, on each kind of breach: a header from a layer above, the
# pure core including logging or I/O, the pure core calling I/O, a header that
# no layer has, a source file outside the layer directories.
set -u
ROOT=${ROLLGATE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
. "$ROOT/tests/shtest.shlib"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# check TEXT CMD...: one result line for CMD's exit status.
check() {
	t=$1; shift
	if "$@"; then ok "$t"; else bad "$t"; fi
}

out=$(python3 "$ROOT/scripts/check-layers.py" "$ROOT" 2>&1)
rc=$?
check "the tree keeps the layer rule" [ $rc -eq 0 ]
[ $rc -eq 0 ] || printf '%s\n' "$out"

# A copy of the tree's sources to break, one breach at a time.
breach() { # name, file, line to append, expected text
	rm -rf "$tmp/t"; mkdir -p "$tmp/t"
	cp -R "$ROOT/src" "$ROOT/include" "$ROOT/Makefile" "$tmp/t/"
	printf '%s\n' "$3" >>"$tmp/t/$2"
	out=$(python3 "$ROOT/scripts/check-layers.py" "$tmp/t" 2>&1)
	rc=$?
	check "$1: exit 1" [ $rc -eq 1 ]
	case $out in *"$4"*) ok=0 ;; *) ok=1 ;; esac
	check "$1: names it ($4)" [ $ok -eq 0 ]
}
breach "core includes server" src/core/patch.c '#include "server.h"' "src/core/patch.c:"
breach "base includes kube" include/base/dynbuf.h '#include "kubeclient.h"' "base includes \"kubeclient.h\" from kube"
breach "core logs" src/core/refs.c '#include "log.h"' "the pure core includes \"log.h\""
breach "core reads a file" src/core/refs.c 'static void f(void) { (void)fopen("x", "r"); }' "the pure core calls fopen()"
breach "unknown header" src/engine/webhook.c '#include "nosuch.h"' "which no layer has"
rm -rf "$tmp/t"; mkdir -p "$tmp/t"; cp -R "$ROOT/src" "$ROOT/include" "$ROOT/Makefile" "$tmp/t/"
: >"$tmp/t/src/stray.c"
out=$(python3 "$ROOT/scripts/check-layers.py" "$tmp/t" 2>&1)
rc=$?
check "a file outside the layers fails" [ $rc -eq 1 ]
exit $fail
