#!/usr/bin/env bash
# Instructions per operation of the micro-benchmarks, under callgrind: the
# figure that stays put on a loaded machine (docs/benchmarks.md).
#
#   bench/callgrind.sh [TREE]     (TREE: a rollgate source tree [.])
#
# Builds TREE's library with release flags into TREE/build/bench/ and
# bench/micro.c with -fno-inline (so each op_* function keeps its own
# inclusive count), then runs each benchmark alone (MICRO_ONLY) under
# callgrind and prints inclusive Ir of its op_* function divided by its
# calls. Needs valgrind.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${1:-.}" && pwd)
B=build/bench
cd "$tree"
pkgs=$(sed -n 's/^PKGS *:= *//p' Makefile)
make --no-print-directory B="$B" CFLAGS="-O2 -DNDEBUG" "$B/librollgate.a" >/dev/null
# shellcheck disable=SC2046,SC2086
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -fno-inline -DNDEBUG -g \
	$(for d in include/*/; do printf -- '-I%s ' "${d%/}"; done) $(pkg-config --cflags $pkgs) \
	-o "$B/micro-cg" "$here/bench/micro.c" "$B/librollgate.a" $(pkg-config --libs $pkgs) -lpthread -lm

cases=(
	"op_decode|decode only (CREATE)"
	"op_decode|decode only (UPDATE)"
	"op_validate|validate: decode + rules + encode (CREATE)"
	"op_validate|validate: decode + rules + encode (UPDATE)"
	"op_mutate|mutate: decode + plan + file lookups + hash + patch + encode (CREATE)"
	"op_mutate|mutate: decode + plan + file lookups + hash + patch + encode (UPDATE)"
)
printf '| operation | Ir/op |\n|---|---:|\n'
for c in "${cases[@]}"; do
	fn=${c%%|*}
	name=${c#*|}
	out="$B/callgrind.out"
	MICRO_ONLY="$name" valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$B/micro-cg" "$here/bench/review-create.json" "$here/bench/review-update.json" \
		"$here/bench/objects" 0.02 >/dev/null 2>&1
	# The caller's line "N (x%)  => micro.c:op_fn (Kx)" holds inclusive Ir and calls.
	callgrind_annotate --threshold=100 --inclusive=yes "$out" |
		awk -v fn="$fn" -v name="$name" '
			!done && $0 ~ ("=> .*:" fn " \\(") {
				ir = $1; gsub(",", "", ir)
				calls = $NF; gsub("[(x)]", "", calls)
				printf "| %s | %.0f |\n", name, ir / calls
				done = 1
			}'
	rm -f "$out"
done
