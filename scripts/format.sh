#!/bin/sh
# Lays out C files in place with clang-format 14 and .clang-format.
# Usage: scripts/format.sh           every C file of the tree; then
#                                    scripts/style-formatted.txt becomes "*",
#                                    so `make check-style` checks the layout
#                                    of every file, new ones included
#        scripts/format.sh FILE...   those files; each joins the list
#        scripts/format.sh --stat    changes nothing: per file, the lines
#                                    the layout would change, and the total
# Exit 0 on success, 1 when a file cannot be formatted, 2 without
# clang-format 14.
set -u
cd "$(dirname "$0")/.." || exit 2
. scripts/style.shlib
CF=$(find_clang_format) || exit 2
[ -r .clang-format ] || {
	echo "format: .clang-format: cannot read it" >&2
	exit 2
}

# layout_diff CF FILE OUT: writes FILE as .clang-format lays it out to OUT
# and prints the diff from FILE to it, without context. Returns 2 when
# clang-format fails (a broken .clang-format, an unreadable FILE).
layout_diff() {
	"$1" --style=file --fallback-style=none "$2" >"$3" || return 2
	diff -U0 "$2" "$3"
	return 0
}

if [ "${1:-}" = "--stat" ]; then
	tmp=$(mktemp "${TMPDIR:-/tmp}/rollgate-format.XXXXXX") || exit 2
	trap 'rm -f "$tmp" "$tmp.diff"' EXIT
	total=0
	for f in $(c_sources); do
		layout_diff "$CF" "$f" "$tmp" >"$tmp.diff" || {
			echo "format: $CF fails on $f (or on .clang-format)" >&2
			exit 1
		}
		# Lines of the file the layout changes: "-" lines past the header.
		n=$(awk 'NR > 2 && /^-/ { n++ } END { print n + 0 }' "$tmp.diff")
		printf '%6d %s\n' "$n" "$f"
		total=$((total + n))
	done
	printf '%6d lines would change\n' "$total"
	exit 0
fi

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046
	"$CF" -i --style=file --fallback-style=none $(c_sources) || exit 1
	{
		echo "# Files laid out by .clang-format (scripts/check-style.sh)."
		echo "# \"*\": every C file; scripts/format.sh wrote it after formatting the tree."
		echo "*"
	} >"$STYLE_LIST"
	echo "format: $(c_sources | wc -l) files formatted; $STYLE_LIST now covers them all"
	exit 0
fi

for f in "$@"; do
	"$CF" -i --style=file --fallback-style=none "$f" || exit 1
	grep -qxF -e "$f" -e "*" "$STYLE_LIST" || echo "$f" >>"$STYLE_LIST"
done
echo "format: $# file(s) formatted and in $STYLE_LIST"
