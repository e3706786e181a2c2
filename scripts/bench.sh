#!/usr/bin/env bash
# Load and micro benchmarks of rollgate (`make bench`; docs/benchmarks.md).
#
# Builds rollgate with release flags into build/bench/, makes throwaway
# certificates, and on 127.0.0.1 only runs wrk (HTTPS keep-alive) against
#   - rollgate /validate (all default rules),
#   - rollgate /mutate with the file object source (bench/objects),
#   - nginx answering a fixed body of the size of rollgate's /mutate
#     response over TLS 1.3 with the same certificate (the reference),
# at 32 and 1 connections, then the micro-benchmarks (bench/micro.c).
# Prints a Markdown report and writes it between the markers of
# docs/benchmarks.md. Everything started here is stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_DURATION   measured seconds per run [10]
#   BENCH_WARMUP     warm-up seconds before each run [3]
#   BENCH_LOG_LEVEL  rollgate --log-level [warn]
#   BENCH_THREADS    rollgate --threads [unset: number of CPUs]
#   BENCH_MICRO_SECONDS  seconds per micro-benchmark [1]
#   BENCH_OUT        report file [docs/benchmarks.md]; "-" for stdout only
#   BENCH_STRICT     1: exit 1 when a target fails [0]
#   BENCH_DEADLINE   seconds after which the whole run is stopped [290]
set -euo pipefail

cd "$(dirname "$0")/.."

B=build/bench
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
THREADS=${BENCH_THREADS:-}
MICRO_SECONDS=${BENCH_MICRO_SECONDS:-1}
OUT=${BENCH_OUT:-docs/benchmarks.md}
# The idle RSS of the report being replaced, for the "not higher" target.
PREV_IDLE=""
if [ "$OUT" != - ] && [ -f "$OUT" ]; then
	PREV_IDLE=$(sed -n 's/.*without an object source: \([0-9.]*\) MiB.*/\1/p' "$OUT" | head -1)
fi
STRICT=${BENCH_STRICT:-0}
DEADLINE=${BENCH_DEADLINE:-290}
CREATE=bench/review-create.json
UPDATE=bench/review-update.json
OBJECTS=bench/objects
HZ=$(getconf CLK_TCK)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-bench.XXXXXX")
started=() # pids of every server we started
sampler=""  # the RSS sampler, while one runs
child=""    # the wrk run in progress
watchdog=""

cleanup() {
	local p
	set +e
	trap - EXIT INT TERM
	for p in "$watchdog" "$sampler" "$child"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	for p in "${started[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${started[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM
# The whole run is bounded: past the deadline the script stops itself (and
# the EXIT trap stops everything it started).
(
	trap 'kill "$nap" 2>/dev/null; exit 0' TERM
	sleep "$DEADLINE" &
	nap=$!
	wait "$nap"
	echo "bench: deadline of ${DEADLINE}s reached, stopping" >&2
	kill -TERM $$
) &
watchdog=$!

die() {
	echo "bench: $*" >&2
	exit 1
}

# ---------------------------------------------------------------- build

build() {
	local pkgs
	pkgs=$(sed -n 's/^PKGS *:= *//p' Makefile)
	[ -n "$pkgs" ] || die "cannot read PKGS from the Makefile"
	echo "bench: building $B/rollgate and $B/micro (-O2 -DNDEBUG)" >&2
	make --no-print-directory -j"$(nproc)" B="$B" CFLAGS="-O2 -DNDEBUG" \
		"$B/rollgate" "$B/librollgate.a" >&2
	# shellcheck disable=SC2046
	${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2 \
		-Wno-unused-parameter -Werror -O2 -DNDEBUG $(for d in include/*/; do printf -- '-I%s ' "${d%/}"; done) \
		$(pkg-config --cflags $pkgs) \
		-o "$B/micro" bench/micro.c "$B/librollgate.a" $(pkg-config --libs $pkgs) -lpthread -lm
}

# ---------------------------------------------------------------- processes

# A TCP port nobody listens on (IPv4 or IPv6), from the ephemeral-free range.
free_port() {
	local p hex
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 20000))
		hex=$(printf ':%04X ' "$p")
		if ! grep -q " [0-9A-F:]*$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

wait_http() { # URL [curl options...]
	local url=$1
	shift
	for _ in $(seq 1 100); do
		curl -sf -o /dev/null --max-time 1 "$@" "$url" && return 0
		sleep 0.1
	done
	return 1
}

# Starts rollgate; sets RG_PID and RG_PORT. NAME [extra serve flags...]
start_rollgate() {
	local name=$1 mport
	shift
	RG_PORT=$(free_port)
	mport=$(free_port)
	while [ "$mport" = "$RG_PORT" ]; do mport=$(free_port); done
	"$B/rollgate" serve --listen "127.0.0.1:$RG_PORT" --metrics-listen "127.0.0.1:$mport" \
		--tls-cert "$tmp/certs/tls.crt" --tls-key "$tmp/certs/tls.key" \
		--log-level "$LOG_LEVEL" --drain-timeout 1 ${THREADS:+--threads "$THREADS"} "$@" \
		2>"$tmp/$name.log" &
	RG_PID=$!
	started+=("$RG_PID")
	wait_http "http://127.0.0.1:$mport/readyz" ||
		{ cat "$tmp/$name.log" >&2; die "$name did not become ready"; }
}

# Starts nginx with a fixed response body (file $1); sets NGX_PID, NGX_PORT.
start_nginx() {
	local body prefix=$tmp/nginx user=""
	NGX_PORT=$(free_port)
	mkdir -p "$prefix"
	# The body goes into a single-quoted nginx string.
	body=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$1")
	[ "$(id -u)" -eq 0 ] && user="user $(id -un);"
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$NGX_PORT|g" -e "s|@USER@|$user|" \
		-e "s|@CERT@|$tmp/certs/tls.crt|" -e "s|@KEY@|$tmp/certs/tls.key|" \
		bench/nginx.conf.in >"$prefix/nginx.conf.tmp"
	awk -v body="$body" '{ gsub(/@BODY@/, body); print }' "$prefix/nginx.conf.tmp" \
		>"$prefix/nginx.conf"
	nginx -p "$prefix/" -c "$prefix/nginx.conf" -g 'daemon off;' 2>>"$prefix/stderr" &
	NGX_PID=$!
	started+=("$NGX_PID")
	wait_http "https://127.0.0.1:$NGX_PORT/" --cacert "$tmp/certs/ca.crt" ||
		{ cat "$prefix/stderr" "$prefix/error.log" >&2 2>/dev/null; die "nginx did not start"; }
}

# The pids of a process and its children (nginx: master + workers).
family() {
	local pid=$1 d ppid rest
	echo "$pid"
	for d in /proc/[0-9]*; do
		[ -r "$d/stat" ] || continue
		read -r rest <"$d/stat" 2>/dev/null || continue
		rest=${rest##*) }
		ppid=$(echo "$rest" | cut -d' ' -f2)
		[ "$ppid" = "$pid" ] && echo "${d#/proc/}"
	done
	return 0
}

# utime + stime in clock ticks, summed over the given pids.
cpu_ticks() {
	local pid rest sum=0 f
	for pid in "$@"; do
		read -r rest <"/proc/$pid/stat"
		rest=${rest##*) }
		# shellcheck disable=SC2206
		f=($rest)
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# VmRSS in kB, summed over the given pids.
rss_kb() {
	local pid k v u sum=0
	for pid in "$@"; do
		while read -r k v u; do
			[ "$k" = "VmRSS:" ] && { sum=$((sum + v)); break; }
		done <"/proc/$pid/status"
	done
	echo "$sum"
}

# Samples the summed VmRSS every 100 ms into FILE until killed. FILE pids...
start_sampler() {
	local file=$1
	shift
	(
		while :; do
			rss_kb "$@" >>"$file" 2>/dev/null || exit 0
			sleep 0.1
		done
	) &
	sampler=$!
}

stop_sampler() {
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
}

# ---------------------------------------------------------------- load

ERRORS_TOTAL=0 # non-2xx and socket errors over every wrk run, warm-ups included

# KEY=VALUE pairs of wrk's RESULT line into the associative array R.
declare -A R
parse_result() {
	local line kv
	line=$(grep '^RESULT ' "$1") || { cat "$1" >&2; die "wrk printed no result"; }
	R=()
	for kv in ${line#RESULT }; do
		R[${kv%%=*}]=${kv#*=}
	done
}

run_wrk() { # OUTFILE SECONDS CONNS URL BODY
	local out=$1 secs=$2 conns=$3 url=$4 body=$5 threads=2
	[ "$conns" -lt 2 ] && threads=1
	# In the background, so a signal is handled at once rather than after wrk.
	BENCH_BODY=$body timeout $((secs + 30)) wrk -t"$threads" -c"$conns" -d"${secs}s" \
		--timeout 2s --latency -s bench/wrk.lua "$url" >"$out" 2>&1 &
	child=$!
	wait "$child" || { cat "$out" >&2; die "wrk failed against $url"; }
	child=""
}

# One row: warm-up, then the measured run with CPU and RSS accounting.
# ID LABEL SERVER URL BODY CONNS IDLE_KB pids...
ROWS=()
declare -A ROW
measure() {
	local id=$1 label=$2 server=$3 url=$4 body=$5 conns=$6 idle=$7
	shift 7
	local c0 c1 peak
	echo "bench: $label, $conns connection(s)" >&2
	: >"$tmp/rss"
	start_sampler "$tmp/rss" "$@"
	run_wrk "$tmp/warm" "$WARMUP" "$conns" "$url" "$body"
	parse_result "$tmp/warm"
	ERRORS_TOTAL=$((ERRORS_TOTAL + R[status] + R[connect] + R[read] + R[write] + R[timeout]))
	c0=$(cpu_ticks "$@")
	run_wrk "$tmp/run" "$DURATION" "$conns" "$url" "$body"
	c1=$(cpu_ticks "$@")
	stop_sampler
	parse_result "$tmp/run"
	ERRORS_TOTAL=$((ERRORS_TOTAL + R[status] + R[connect] + R[read] + R[write] + R[timeout]))
	peak=$(sort -n "$tmp/rss" | tail -1)
	local key="$id/$conns"
	ROWS+=("$key")
	ROW[$key.label]=$label
	ROW[$key.server]=$server
	if [ "$server" = rollgate ]; then
		ROW[$key.desc]="rollgate, $SERVER_THREADS threads, log $LOG_LEVEL"
	else
		ROW[$key.desc]="nginx, 2 workers"
	fi
	ROW[$key.conns]=$conns
	ROW[$key.requests]=${R[requests]}
	ROW[$key.rps]=$(awk -v n="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
	ROW[$key.p50]=${R[p50_us]}
	ROW[$key.p90]=${R[p90_us]}
	ROW[$key.p99]=${R[p99_us]}
	ROW[$key.max]=${R[max_us]}
	ROW[$key.non2xx]=${R[status]}
	ROW[$key.sockerr]=$((R[connect] + R[read] + R[write] + R[timeout]))
	ROW[$key.cpu_ticks]=$((c1 - c0))
	ROW[$key.idle_kb]=$idle
	ROW[$key.peak_kb]=${peak:-0}
}

# Checks one response: 200 and the expected fields. URL BODY GREP_PATTERN OUT
check_response() {
	local code
	code=$(curl -s --max-time 5 --cacert "$tmp/certs/ca.crt" -H 'Content-Type: application/json' \
		--data-binary "@$2" -o "$4" -w '%{http_code}' "$1") || die "POST $1 failed"
	[ "$code" = 200 ] || die "POST $1: HTTP $code: $(cat "$4")"
	grep -q "$3" "$4" || die "POST $1: unexpected response: $(cat "$4")"
}

# ---------------------------------------------------------------- report

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

table() {
	local key nkey ratio cpuratio cpu cpureq
	echo "| workload | server | conns | req/s | req/s vs nginx | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors | server CPU s | CPU µs/req | CPU/req: nginx ÷ this | RSS idle MiB | RSS peak MiB |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for key in "${ROWS[@]}"; do
		nkey="nginx/${ROW[$key.conns]}"
		ratio="—"
		cpuratio="—"
		if [ "${ROW[$key.server]}" = rollgate ] && [ -n "${ROW[$nkey.rps]:-}" ]; then
			ratio=$(awk -v a="${ROW[$key.rps]}" -v b="${ROW[$nkey.rps]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')
			cpuratio=$(awk -v t="${ROW[$key.cpu_ticks]}" -v n="${ROW[$key.requests]}" \
				-v nt="${ROW[$nkey.cpu_ticks]}" -v nn="${ROW[$nkey.requests]}" \
				'BEGIN { printf "%.0f%%", t && nn ? 100 * (nt / nn) / (t / n) : 0 }')
		fi
		cpu=$(awk -v t="${ROW[$key.cpu_ticks]}" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
		cpureq=$(awk -v t="${ROW[$key.cpu_ticks]}" -v hz="$HZ" -v n="${ROW[$key.requests]}" \
			'BEGIN { printf "%.0f", n ? t / hz / n * 1e6 : 0 }')
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
			"${ROW[$key.label]}" "${ROW[$key.desc]}" "${ROW[$key.conns]}" "${ROW[$key.rps]}" "$ratio" \
			"$(ms "${ROW[$key.p50]}")" "$(ms "${ROW[$key.p90]}")" "$(ms "${ROW[$key.p99]}")" \
			"$(ms "${ROW[$key.max]}")" "${ROW[$key.non2xx]}" "${ROW[$key.sockerr]}" "$cpu" \
			"$cpureq" "$cpuratio" "$(mib "${ROW[$key.idle_kb]}")" "$(mib "${ROW[$key.peak_kb]}")"
	done
}

FAILS=0
target() { # DESCRIPTION MEASURED OK(0/1)
	local verdict=PASS
	[ "$3" = 1 ] || { verdict=FAIL; FAILS=$((FAILS + 1)); }
	printf '| %s | %s | %s |\n' "$1" "$2" "$verdict"
}

ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }' && echo 1 || echo 0; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo 1 || echo 0; }

targets() {
	local key pct id ref
	echo "| target | measured | result |"
	echo "|---|---|---|"
	for id in validate-create:55 mutate-create:45 mutate-update:35; do
		key="${id%%:*}/32"
		pct=$(awk -v a="${ROW[$key.rps]}" -v b="${ROW[nginx/32.rps]}" 'BEGIN { printf "%.0f", 100 * a / b }')
		target "${ROW[$key.label]}, 32 conns: ≥ ${id#*:}% of nginx req/s" "$pct%" "$(ge "$pct" "${id#*:}")"
	done
	# CPU per request, the figure a loaded machine moves least.
	key=validate-create/32
	pct=$(awk -v t="${ROW[$key.cpu_ticks]}" -v n="${ROW[$key.requests]}" \
		-v nt="${ROW[nginx/32.cpu_ticks]}" -v nn="${ROW[nginx/32.requests]}" \
		'BEGIN { printf "%.2f", t && nt && nn ? (t / n) / (nt / nn) : 99 }')
	target "${ROW[$key.label]}, 32 conns: CPU per request ≤ 2 × nginx's" "${pct} ×" "$(le "$pct" 2)"
	for key in "${ROWS[@]}"; do
		[ "${ROW[$key.server]}" = rollgate ] || continue
		# nginx's p99 in the same run, for context: on a shared machine
		# the tail is mostly scheduling.
		ref=" (nginx: $(ms "${ROW[nginx/${ROW[$key.conns]}.p99]}") ms)"
		if [ "${ROW[$key.conns]}" = 1 ]; then
			target "${ROW[$key.label]}, 1 conn: p99 ≤ 1 ms" "$(ms "${ROW[$key.p99]}") ms$ref" \
				"$(le "${ROW[$key.p99]}" 1000)"
		else
			target "${ROW[$key.label]}, ${ROW[$key.conns]} conns: p99 ≤ 5 ms" \
				"$(ms "${ROW[$key.p99]}") ms$ref" "$(le "${ROW[$key.p99]}" 5000)"
		fi
	done
	target "rollgate RSS idle ≤ 8 MiB (no object source)" "$(mib "$IDLE_PLAIN") MiB" \
		"$(le "$IDLE_PLAIN" 8192)"
	# Idle RSS must not grow from one report to the next (0.2 MiB of noise).
	if [ -n "$PREV_IDLE" ]; then
		target "rollgate RSS idle not above the previous report's $PREV_IDLE MiB (no object source)" \
			"$(mib "$IDLE_PLAIN") MiB" "$(le "$(mib "$IDLE_PLAIN")" "$(awk -v p="$PREV_IDLE" 'BEGIN { print p + 0.2 }')")"
	fi
	local peak=0
	for key in "${ROWS[@]}"; do
		[ "${ROW[$key.server]}" = rollgate ] && [ "${ROW[$key.peak_kb]}" -gt "$peak" ] &&
			peak=${ROW[$key.peak_kb]}
	done
	target "rollgate RSS peak under load ≤ 24 MiB" "$(mib "$peak") MiB" "$(le "$peak" 24576)"
	target "no non-2xx and no socket errors (warm-ups included)" "$ERRORS_TOTAL" \
		"$(le "$ERRORS_TOTAL" 0)"
}

machine() {
	local model
	model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(nproc) CPUs, ${model:-unknown CPU}, Linux $(uname -r), load average before the run: $LOAD_BEFORE"
	echo "- rollgate $(cat VERSION 2>/dev/null || echo '?') (-O2 -DNDEBUG), --log-level $LOG_LEVEL, --threads ${THREADS:-$(nproc) (default: CPUs)}; $(nginx -v 2>&1 | sed 's/^nginx version: //') with worker_processes 2; $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "- Load: wrk over HTTPS keep-alive (TLS 1.3), 2 threads × 32 connections and 1 thread × 1 connection, ${DURATION} s measured after a ${WARMUP} s warm-up, on the same machine as the servers"
	echo "- Bodies: $CREATE ($(wc -c <"$CREATE") B, CREATE), $UPDATE ($(wc -c <"$UPDATE") B, UPDATE with oldObject); nginx answers a fixed ${NGX_BODY_BYTES} B body (rollgate's /mutate CREATE response; /validate answers ${VALIDATE_BYTES} B)"
	echo "- rollgate RSS idle with --objects $OBJECTS (for the record): $(mib "$IDLE_OBJECTS") MiB; without an object source: $(mib "$IDLE_PLAIN") MiB; nginx (master + 2 workers): $(mib "$IDLE_NGINX") MiB"
}

report() {
	echo "### Load"
	echo
	machine
	echo
	table
	echo
	echo "### Targets"
	echo
	targets
	echo
	echo "### Micro-benchmarks (bench/micro.c, one thread)"
	echo
	cat "$tmp/micro.md"
}

# Replaces the text between the markers of docs/benchmarks.md (or writes a
# new file) with the report.
write_report() {
	local file=$1 report=$2 begin='<!-- bench:begin -->' end='<!-- bench:end -->'
	if [ -f "$file" ] && grep -qF "$begin" "$file" && grep -qF "$end" "$file"; then
		awk -v begin="$begin" -v end="$end" -v rep="$report" '
			$0 == begin { print; while ((getline l < rep) > 0) print l; skip = 1; next }
			$0 == end { skip = 0 }
			!skip { print }' "$file" >"$tmp/doc"
	else
		{ echo "# Benchmarks"; echo; echo "$begin"; cat "$report"; echo "$end"; } >"$tmp/doc"
	fi
	cat "$tmp/doc" >"$file"
}

# ---------------------------------------------------------------- main

command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh bench)"
command -v nginx >/dev/null || die "nginx is not installed (scripts/deps.sh bench)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SERVER_THREADS=${THREADS:-$(nproc)}
build
certs/make-dev-certs.sh "$tmp/certs" 2>/dev/null

start_rollgate plain
PLAIN_PID=$RG_PID PLAIN_PORT=$RG_PORT
IDLE_PLAIN=$(rss_kb "$PLAIN_PID")
start_rollgate objects --objects "$OBJECTS"
OBJ_PID=$RG_PID OBJ_PORT=$RG_PORT
IDLE_OBJECTS=$(rss_kb "$OBJ_PID")

# Every workload answers 200 with the right content before it is loaded.
check_response "https://127.0.0.1:$PLAIN_PORT/validate" "$CREATE" '"allowed":true' "$tmp/validate.out"
check_response "https://127.0.0.1:$OBJ_PORT/mutate" "$CREATE" '"patchType":"JSONPatch"' "$tmp/mutate.out"
check_response "https://127.0.0.1:$OBJ_PORT/mutate" "$UPDATE" '"patchType":"JSONPatch"' "$tmp/mutate-update.out"
VALIDATE_BYTES=$(wc -c <"$tmp/validate.out")
NGX_BODY_BYTES=$(wc -c <"$tmp/mutate.out")

start_nginx "$tmp/mutate.out"
mapfile -t NGX_PIDS < <(family "$NGX_PID")
IDLE_NGINX=$(rss_kb "${NGX_PIDS[@]}")
check_response "https://127.0.0.1:$NGX_PORT/" "$CREATE" '"allowed":true' "$tmp/nginx.out"
cmp -s "$tmp/nginx.out" "$tmp/mutate.out" || die "nginx does not answer rollgate's body"

for conns in 32 1; do
	measure nginx "nginx, fixed ${NGX_BODY_BYTES} B (reference)" nginx \
		"https://127.0.0.1:$NGX_PORT/" "$CREATE" "$conns" "$IDLE_NGINX" "${NGX_PIDS[@]}"
	measure validate-create "/validate CREATE" rollgate \
		"https://127.0.0.1:$PLAIN_PORT/validate" "$CREATE" "$conns" "$IDLE_PLAIN" "$PLAIN_PID"
	measure mutate-create "/mutate CREATE, files" rollgate \
		"https://127.0.0.1:$OBJ_PORT/mutate" "$CREATE" "$conns" "$IDLE_OBJECTS" "$OBJ_PID"
	measure mutate-update "/mutate UPDATE 8 KB, files" rollgate \
		"https://127.0.0.1:$OBJ_PORT/mutate" "$UPDATE" "$conns" "$IDLE_OBJECTS" "$OBJ_PID"
done

echo "bench: micro-benchmarks" >&2
"$B/micro" "$CREATE" "$UPDATE" "$OBJECTS" "$MICRO_SECONDS" >"$tmp/micro.md"

report >"$tmp/report.md"
echo
cat "$tmp/report.md"
if [ "$OUT" != - ]; then
	write_report "$OUT" "$tmp/report.md"
	echo
	echo "bench: wrote $OUT" >&2
fi
if [ "$FAILS" -gt 0 ]; then
	echo "bench: $FAILS target(s) failed" >&2
	[ "$STRICT" = 1 ] && exit 1
fi
exit 0
