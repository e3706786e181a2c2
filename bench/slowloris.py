#!/usr/bin/env python3
"""Honest /validate latency while slow clients hold connections open.

Starts build/rollgate (or $ROLLGATE_BIN) on 127.0.0.1 with throwaway
certificates, opens --connections TLS connections that each send a request
header one byte per second and reconnect as soon as the server closes them,
then times honest POST /validate calls (examples/review-replicaset-edit.json)
for --seconds: on a new TLS connection each ("fresh") and on one kept-alive
connection ("kept-alive"), alternating. Prints the percentiles, the
failures and the server's connection metrics. docs/limits.md records a run.

    python3 bench/slowloris.py --connections 2000 --seconds 30
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import edge  # noqa: E402


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def cpu_seconds(pid):
    """utime + stime of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def kept_alive_call(state, port, ctx, body, timeout):
    """One /validate on the kept-alive connection (reopened when closed)."""
    t0 = time.monotonic()
    if state.get("sock") is None:
        state["sock"] = edge.connect(port, ctx, timeout)
        state["reconnects"] = state.get("reconnects", 0) + 1
    s = state["sock"]
    try:
        s.sendall(edge.post("/validate", body))
        status, headers, reply, _, _ = edge.read_response(s)
    except BaseException:
        s.close()
        state["sock"] = None
        raise
    if status != 200 or b'"AdmissionReview"' not in reply:
        raise edge.Failure("kept-alive /validate answered %d" % status)
    if "close" in [v.lower() for v in headers.get("connection", [])]:
        s.close()
        state["sock"] = None
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=2000, help="slow clients (2000)")
    ap.add_argument("--seconds", type=float, default=30, help="measured seconds (30)")
    ap.add_argument("--byte-interval", type=float, default=1.0, help="seconds between bytes (1)")
    ap.add_argument("--timeout", type=float, default=10, help="per honest call (10 s)")
    ap.add_argument("--attacker-nice", type=int, default=19,
                    help="niceness of the slow clients' process (19: a real attacker does not "
                         "share the server's CPUs)")
    ap.add_argument("serve_args", nargs="*", help="extra `rollgate serve` flags, after --")
    a = ap.parse_args()
    edge.raise_nofile(a.connections + 512)
    body = edge.review_body()
    with tempfile.TemporaryDirectory(prefix="rollgate-slowloris-") as tmpdir:
        edge.make_certs(tmpdir)
        srv = edge.Server(tmpdir, a.serve_args, name="slowloris")
        ctx = edge.tls_context(tmpdir)
        attack = None
        try:
            attack = edge.SlowAttack(srv.port, tmpdir, a.connections, True, a.byte_interval,
                                     a.attacker_nice)
            t0 = time.monotonic()
            ready = attack.wait_ready(120)
            print("slow clients: %d %s after %.1f s; open on the server: %d"
                  % (a.connections, "connected" if ready else "NOT all connected",
                     time.monotonic() - t0, srv.metrics().get(edge.series("rollgate_connections_open"), 0)))
            lat = {"fresh": [], "kept-alive": []}
            failed = {"fresh": 0, "kept-alive": 0}
            errors = []
            state = {}
            cpu0 = (cpu_seconds(srv.proc.pid), cpu_seconds(attack.proc.pid), time.monotonic())
            load = open("/proc/loadavg").read().split()[:3]
            end = time.monotonic() + a.seconds
            held, next_sample = [], 0.0
            while time.monotonic() < end:
                if time.monotonic() >= next_sample:
                    held.append(srv.metrics().get(edge.series("rollgate_connections_open"), 0))
                    next_sample = time.monotonic() + 1.0
                for kind in ("fresh", "kept-alive"):
                    try:
                        if kind == "fresh":
                            lat[kind].append(edge.timed_call(srv.port, ctx, body, a.timeout))
                        else:
                            lat[kind].append(kept_alive_call(state, srv.port, ctx, body, a.timeout))
                    except Exception as e:  # counted, then reported
                        failed[kind] += 1
                        errors.append("%s: %r" % (kind, e))
            wall = time.monotonic() - cpu0[2]
            cpu = (cpu_seconds(srv.proc.pid) - cpu0[0], cpu_seconds(attack.proc.pid) - cpu0[1])
            m = srv.metrics()
            stats = attack.stop()
            attack = None
            print("\n| honest /validate | calls | failed | p50 ms | p90 ms | p99 ms | max ms |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for kind in ("fresh", "kept-alive"):
                xs = lat[kind]
                print("| %s connection | %d | %d | %.1f | %.1f | %.1f | %.1f |" % (
                    kind, len(xs), failed[kind], 1000 * percentile(xs, 50), 1000 * percentile(xs, 90),
                    1000 * percentile(xs, 99), 1000 * max(xs) if xs else float("nan")))
            print("\nserver: open %d, evicted reading %d, evicted idle %d, refused %d, read timeouts %d"
                  % (m.get(edge.series("rollgate_connections_open"), 0),
                     m.get(edge.series("rollgate_connections_evicted_total", state="reading"), 0),
                     m.get(edge.series("rollgate_connections_evicted_total", state="idle"), 0),
                     m.get(edge.series("rollgate_connections_refused_total", reason="limit"), 0),
                     m.get(edge.series("rollgate_requests_timed_out_total"), 0)))
            print("CPU over the %.0f s measured: rollgate %.1f s, slow clients %.1f s (nice %d); "
                  "load average before: %s; %d CPUs; rollgate peak RSS %.1f MiB"
                  % (wall, cpu[0], cpu[1], a.attacker_nice, " ".join(load), os.cpu_count(),
                     peak_rss_mib(srv.proc.pid)))
            held.sort()
            print("HTTPS connections open, sampled every second: min %d, median %d, max %d"
                  % (held[0], held[len(held) // 2], held[-1]))
            print("slow clients: %r" % stats)
            print("kept-alive connection reopened %d times" % state.get("reconnects", 0))
            for e in errors[:5]:
                print("error: " + e)
            if srv.stop() != 0:
                print("rollgate exited with an error")
                return 1
            return 1 if any(failed.values()) else 0
        finally:
            if attack:
                attack.stop()
            srv.kill()


if __name__ == "__main__":
    sys.exit(main())
