#!/bin/sh
# Runs every test binary of one build flavour, then the shell tests, against
# that flavour's rollgate binary. Any failure fails the run.
set -u
B=${1:-build}
export ROLLGATE_BIN="$PWD/$B/rollgate"
export ROLLGATE_ROOT="$PWD"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fail=0
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	printf '== %s\n' "$t"
	if ! "$t"; then
		echo "FAIL: $t" >&2
		fail=1
	fi
done
for t in tests/*.sh; do
	[ -f "$t" ] || continue
	printf '== %s\n' "$t"
	if ! sh "$t"; then
		echo "FAIL: $t" >&2
		fail=1
	fi
done
[ $fail -eq 0 ] && echo "all tests passed ($B)"
exit $fail
