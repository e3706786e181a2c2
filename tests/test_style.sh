#!/bin/sh
# The style check (scripts/check-style.sh) passes on the tree and fails,
# naming file and line, on each kind of breach planted in a copy of it: a
# banned call (cJSON_GetObjectItem, sprintf), an allowed call outside the
# function its exception names, a stale exception, a misformatted line. A
# banned name in a comment, a string or a member call is no breach. After
# scripts/format.sh the whole tree is checked, and passes.
set -u
ROOT=${ROLLGATE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
. "$ROOT/tests/shtest.shlib"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-style.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
T=$tmp/t

# check TEXT CMD...: one result line for CMD's exit status.
check() {
	t=$1
	shift
	if "$@"; then ok "$t"; else bad "$t"; fi
}
# has TEXT: whether the last output ($out) contains TEXT.
has() { case $out in *"$1"*) return 0 ;; *) return 1 ;; esac; }
# style: runs the check on the copy; sets out and rc.
style() {
	out=$(sh "$T/scripts/check-style.sh" "$@" "$T" 2>&1)
	rc=$?
}
# fresh: a new copy of the tree's sources and style files in $T.
fresh() {
	rm -rf "$T"
	mkdir -p "$T/tests"
	cp -R "$ROOT/src" "$ROOT/include" "$ROOT/fuzz" "$ROOT/bench" "$ROOT/scripts" \
		"$ROOT/.clang-format" "$T/"
	cp "$ROOT"/tests/*.c "$ROOT"/tests/*.h "$T/tests/"
}
# plant FILE TEXT: appends TEXT to FILE of the copy; sets line to its line.
plant() {
	printf '%s\n' "$2" >>"$T/$1"
	line=$(wc -l <"$T/$1" | tr -d ' ')
}

out=$(sh "$ROOT/scripts/check-style.sh" "$ROOT" 2>&1)
rc=$?
check "the tree passes check-style" [ $rc -eq 0 ]
[ $rc -eq 0 ] || printf '%s\n' "$out"

# Banned calls, each reported as FILE:LINE: NAME() in FUNCTION.
fresh
plant src/cli/cli.c 'static const void *planted_lookup(const cJSON *o) { return cJSON_GetObjectItem(o, "kind"); }'
style
check "cJSON_GetObjectItem: exit 1" [ $rc -eq 1 ]
check "cJSON_GetObjectItem: named with file, line and function" \
	has "src/cli/cli.c:$line: cJSON_GetObjectItem() in planted_lookup: case-insensitive"
fresh
plant fuzz/fuzz_config.c 'static void planted_print(char *b)
{
	sprintf (b, "%d", 1);
}'
style
check "sprintf: exit 1" [ $rc -eq 1 ]
check "sprintf: named with file, line and function" \
	has "fuzz/fuzz_config.c:$((line - 1)): sprintf() in planted_print: no bound"

# No breach from a comment, a string, a member call or a longer name.
fresh
plant src/core/refs.c '/* sprintf(buf) and
 * cJSON_Parse(text) in a comment */
// strcpy(a, b)
static const char *planted_text(void) { return "sprintf(b, \"%s\", cJSON_Parse(x))"; }
struct planted_ops { int (*sprintf)(char *); };
static int planted_call(struct planted_ops *o, char *b) { return o->sprintf(b) + my_atoi(b); }'
# The banned-function check alone: the planted lines are not laid out as
# .clang-format says, which is the other check's business.
out=$(python3 "$T/scripts/check-banned.py" "$T" 2>&1)
rc=$?
check "comments, strings, members: no breach" [ $rc -eq 0 ]
[ $rc -eq 0 ] || printf '%s\n' "$out"

# An exception covers its one function, not the rest of the file.
fresh
plant src/base/jsonutil.c 'static cJSON *planted_parse(const char *s) { return cJSON_ParseWithLengthOpts(s, 1, NULL, 1); }'
style
check "allowed call outside its function: exit 1" [ $rc -eq 1 ]
check "allowed call outside its function: named" \
	has "src/base/jsonutil.c:$line: cJSON_ParseWithLengthOpts() in planted_parse"
fresh
printf 'allow sprintf src/cli/cli.c nosuch -- planted\n' >>"$T/scripts/banned-functions.txt"
style
check "stale exception: exit 1" [ $rc -eq 1 ]
check "stale exception: named" has "allow sprintf src/cli/cli.c nosuch exempts no call"
fresh
printf 'ban planted_nowhy\n' >>"$T/scripts/banned-functions.txt"
style
check "an entry without a reason: exit 2" [ $rc -eq 2 ]

# Layout: a listed file, laid out, passes; a misformatted line fails.
fresh
cf=$(cd "$T" && . scripts/style.shlib && find_clang_format)
(cd "$T" && "$cf" -i --style=file src/core/refs.c)
printf 'src/core/refs.c\n' >"$T/scripts/style-formatted.txt"
style
check "a listed file laid out by .clang-format passes" [ $rc -eq 0 ]
[ $rc -eq 0 ] || printf '%s\n' "$out"
plant src/core/refs.c 'static int   planted_layout (void) {return 0;}'
style
check "misformatted line: exit 1" [ $rc -eq 1 ]
check "misformatted line: named" has "src/core/refs.c:$line: not laid out as .clang-format says"
plant src/cli/cli.c 'static int   planted_unlisted (void) {return 0;}'
style
check "an unlisted file is not checked" eval '! has src/cli/cli.c:'
style --all
check "--all checks every file" has "src/cli/cli.c:$line: not laid out"

# scripts/format.sh lays out the whole copy and switches the list to "*":
# from then on every file is checked, and the tree passes.
fresh
out=$(sh "$T/scripts/format.sh" 2>&1)
check "format.sh formats the tree" [ $? -eq 0 ]
check "format.sh switches the list to every file" grep -qx '\*' "$T/scripts/style-formatted.txt"
style
check "after format.sh the whole tree passes check-style" [ $rc -eq 0 ]
[ $rc -eq 0 ] || printf '%s\n' "$out" | tail -n 20
plant bench/micro.c 'static int   planted_new (void) {return 0;}'
style
check "after format.sh a misformatted line anywhere fails" has "bench/micro.c:$line: not laid out"
exit $fail
