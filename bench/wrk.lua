-- wrk script for scripts/bench.sh: POSTs one AdmissionReview body (the file
-- named by $BENCH_BODY) over keep-alive and prints one machine-readable
-- RESULT line when the run ends. Latencies are in microseconds.
local path = assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

-- summary.errors.status counts responses with a status above 399; connect,
-- read, write and timeout are socket errors.
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"RESULT requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f " ..
		"status=%d connect=%d read=%d write=%d timeout=%d\n",
		summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
		e.status, e.connect, e.read, e.write, e.timeout))
end
