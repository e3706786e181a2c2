#!/bin/sh
# The style checks of `make check-style`, over the C sources (src/, include/,
# tests/, fuzz/, bench/):
#   1. banned functions: scripts/check-banned.py with the list and its
#      exceptions in scripts/banned-functions.txt;
#   2. layout: clang-format 14 with .clang-format, over the files named in
#      scripts/style-formatted.txt, or over all of them when that file holds
#      the line "*" (scripts/format.sh formats the tree and writes it).
# Exit 0 when both pass; 1 with one FILE:LINE line per breach; 2 when a
# check cannot run (no python3 or clang-format 14, an unreadable list).
# Usage: scripts/check-style.sh [--all|--list] [ROOT]
#   --all   check the layout of every C file, whatever the list says
#   --list  print the C files the checks cover, one a line, and exit
# CLANG_FORMAT names the clang-format binary (default clang-format-14, else
# clang-format); layouts differ between major versions, so it must be 14.
set -u
mode=listed
case ${1:-} in
--all) mode=all && shift ;;
--list) mode=print && shift ;;
-*)
	echo "usage: scripts/check-style.sh [--all|--list] [ROOT]" >&2
	exit 2
	;;
esac
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT" || exit 2
. scripts/style.shlib

if [ $mode = print ]; then
	c_sources
	exit 0
fi

# The files whose layout is checked: the list's entries, or every C file.
formatted_files() {
	if [ $mode = all ] || grep -qx '\*' "$STYLE_LIST"; then
		c_sources
		return
	fi
	grep -v '^[[:space:]]*#' "$STYLE_LIST" | grep -v '^[[:space:]]*$'
}

# One FILE:LINE line per line that clang-format --dry-run flags (it warns
# once per whitespace change; a line is reported once).
flagged_lines() {
	awk -F: '/^[^ ]+:[0-9]+:[0-9]+: warning: code should be clang-formatted/ {
		key = $1 ":" $2
		if (!(key in seen)) {
			seen[key] = 1
			printf "%s: not laid out as .clang-format says (scripts/format.sh %s)\n", key, $1
		}
	}'
}

rc=0
command -v python3 >/dev/null 2>&1 || {
	echo "check-style: python3 not found; scripts/deps.sh installs it" >&2
	exit 2
}
# shellcheck disable=SC2046
python3 scripts/check-banned.py "$ROOT" $(c_sources)
case $? in
0) ;;
1) rc=1 ;;
*) exit 2 ;;
esac

CF=$(find_clang_format) || exit 2
for f in .clang-format "$STYLE_LIST"; do
	[ -r "$f" ] || {
		echo "check-style: $f: cannot read it" >&2
		exit 2
	}
done
breaches=0
files=""
for f in $(formatted_files); do
	if [ -f "$f" ]; then
		files="$files $f"
	else
		echo "$STYLE_LIST: $f: no such file; drop it from the list"
		breaches=$((breaches + 1))
	fi
done
checked=$(echo $files | wc -w)
if [ $checked -gt 0 ]; then
	# shellcheck disable=SC2086
	out=$("$CF" --dry-run --style=file --fallback-style=none $files 2>&1) || {
		printf '%s\n' "$out" | tail -n 5 >&2
		echo "check-style: $CF fails (on .clang-format?)" >&2
		exit 2
	}
	out=$(printf '%s\n' "$out" | flagged_lines)
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		breaches=$((breaches + $(printf '%s\n' "$out" | wc -l)))
	fi
fi
if [ $breaches -gt 0 ]; then
	echo "check-style: $breaches layout breach(es) in $checked file(s)"
	rc=1
else
	echo "check-style: $checked of $(c_sources | wc -l) C files checked against .clang-format, all laid out as it says"
fi
exit $rc
