#!/usr/bin/env python3
"""rollgate's HTTPS edge against slow, hostile and impatient clients.

A library for tests/test_edge.sh (`python3 tests/edge.py check`) and for the
by-hand measurements of docs/limits.md (bench/slowloris.py, bench/drain.py).
It starts the real binary on 127.0.0.1 with throwaway certificates and talks
raw HTTP/1.1 over TLS, so it can send what curl will not: a request one byte
per second, two Content-Length headers, a body that is not UTF-8.

Everything is bounded: every socket has a timeout, every loop a count or a
deadline, and every server started here is stopped (SIGKILL as a last
resort) when the run ends.
"""
import heapq
import json
import multiprocessing
import os
import random
import re
import resource
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get("ROLLGATE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("ROLLGATE_BIN") or os.path.join(ROOT, "build", "rollgate")
REVIEW = os.path.join(ROOT, "examples", "review-replicaset-edit.json")


class Failure(Exception):
    pass


def raise_nofile(want):
    """Raises the soft limit on open files to want (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def make_certs(directory):
    subprocess.run([os.path.join(ROOT, "certs", "make-dev-certs.sh"), directory, "--force"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Server:
    """`rollgate serve` on 127.0.0.1 ephemeral ports, log in tmpdir/server.log."""

    def __init__(self, tmpdir, args=(), name="server"):
        self.tmpdir = tmpdir
        self.log = os.path.join(tmpdir, name + ".log")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
               "--log-format", "json", "--tls-cert", os.path.join(tmpdir, "tls.crt"),
               "--tls-key", os.path.join(tmpdir, "tls.key"), *args]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out)
        self.port = self.metrics_port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise Failure("rollgate exited at start: " + self.log_text()[-2000:])
            for line in self.log_lines():
                if line.get("msg") == "listening":
                    self.port, self.metrics_port = line["port"], line["metrics_port"]
            time.sleep(0.05)
        if self.port is None:
            self.kill()
            raise Failure("rollgate did not start within 20 s")

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """The JSON log lines; raises on a line that is not JSON."""
        out = []
        for raw in self.log_text().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                raise Failure("log line is not JSON: %r" % raw[:300])
        return out

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the server and waits; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("rollgate did not exit within %d s" % timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def metrics(self):
        """The metrics as {series: value}, over plain HTTP."""
        with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        out = {}
        for line in data.split(b"\r\n\r\n", 1)[1].decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


def series(name, listener="https", **labels):
    """The key of a series of the connection metrics, as rendered."""
    parts = ['listener="%s"' % listener] + ['%s="%s"' % kv for kv in labels.items()]
    return "%s{%s}" % (name, ",".join(parts))


def tls_context(certdir):
    ctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.crt"))
    return ctx


def connect(port, ctx, timeout=10.0):
    """A TLS connection that verifies the server; Nagle off, as Go's clients
    (kube-apiserver) and curl have it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


class Closed(Exception):
    """The connection ended before a whole response arrived."""


def read_response(sock):
    """Reads one response: (status, {header: [values]}, body, raw head)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise Closed("closed after %d bytes of a response" % len(buf))
        buf += chunk
        if len(buf) > 1 << 20:
            raise Failure("response head larger than 1 MiB")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise Closed("closed in a response body")
        rest += chunk
    return status, headers, rest[:length], head + b"\r\n\r\n", rest[length:]


def read_all(sock):
    """Every byte until the server closes (or 10 s pass)."""
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            break
        except TimeoutError:
            raise Failure("the server kept the connection open 10 s after %r" % data[:200])
        if not chunk:
            break
        data += chunk
    return data


def post(path, body, extra=b""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n" + extra + b"\r\n" + body)


def review_body():
    with open(REVIEW, "rb") as f:
        return f.read()


def timed_call(port, ctx, body, timeout):
    """One /validate on a new connection; returns seconds, or raises."""
    t0 = time.monotonic()
    with connect(port, ctx, timeout) as s:
        s.sendall(post("/validate", body))
        status, _, reply, _, _ = read_response(s)
    if status != 200 or b'"AdmissionReview"' not in reply:
        raise Failure("honest /validate answered %d: %r" % (status, reply[:200]))
    return time.monotonic() - t0


# ---- slow clients --------------------------------------------------------

SLOW_HEAD = (b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"X-Padding: " + b"a" * 100000)
SLOW_PROBE = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100000


class SlowSlot:
    """One slow client: connects, completes the TLS handshake (if any),
    sends its request head one byte per interval, and when the server closes
    it, waits one interval and connects again (as slowloris does)."""

    def __init__(self, n):
        self.n = n
        self.sock = None
        self.state = "idle"
        self.pos = 0


class SlowClients:
    """Many slow clients on one selector: non-blocking sockets, TLS in C
    (ssl.SSLSocket), so one process holds thousands. ctx None: plain HTTP."""

    def __init__(self, port, ctx, n, interval, keep_up, stats):
        self.head = SLOW_HEAD if ctx else SLOW_PROBE
        self.port, self.ctx, self.interval, self.keep_up, self.stats = port, ctx, interval, keep_up, stats
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.seq = 0
        self.slots = [SlowSlot(i) for i in range(n)]
        # Ramp up over a few seconds, as a client opening n connections would.
        ramp = max(1.0, n / 500.0)
        now = time.monotonic()
        for i, slot in enumerate(self.slots):
            self.at(now + ramp * i / n, slot)

    def at(self, when, slot):
        self.seq += 1
        heapq.heappush(self.timers, (when, self.seq, slot))

    def watch(self, slot, events):
        try:
            self.sel.modify(slot.sock, events, slot)
        except KeyError:
            self.sel.register(slot.sock, events, slot)

    def drop(self, slot, by_server):
        if slot.sock is not None:
            try:
                self.sel.unregister(slot.sock)
            except (KeyError, ValueError):
                pass
            slot.sock.close()
            slot.sock = None
        if slot.state == "sending":
            self.stats["open"] -= 1
        if by_server:
            self.stats["closed_by_server"] += 1
        slot.state = "idle" if self.keep_up else "done"
        if self.keep_up:
            # Spread over one interval, so closings at one deadline do not
            # come back as one wave.
            self.at(time.monotonic() + self.interval * (0.5 + random.random()), slot)

    def start(self, slot):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setblocking(False)
        raw.connect_ex(("127.0.0.1", self.port))
        slot.sock = raw
        if self.ctx:
            slot.sock = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                             do_handshake_on_connect=False)
        slot.state = "handshake"
        slot.pos = 0
        self.watch(slot, selectors.EVENT_WRITE)

    def handshake(self, slot):
        try:
            if self.ctx:
                slot.sock.do_handshake()
            elif slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError("connect failed")
        except ssl.SSLWantReadError:
            self.watch(slot, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self.watch(slot, selectors.EVENT_WRITE)
            return
        except (OSError, ssl.SSLError):
            self.stats["connect_failed"] += 1
            self.drop(slot, False)
            return
        slot.state = "sending"
        self.stats["connected"] += 1
        self.stats["open"] += 1
        self.watch(slot, selectors.EVENT_READ)
        self.at(time.monotonic(), slot)

    def readable(self, slot):
        try:
            data = slot.sock.recv(4096)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (OSError, ssl.SSLError):
            data = b""
        if data:
            self.stats["answered"] += 1
        self.drop(slot, True)

    def tick(self, slot):
        if slot.state == "idle":
            try:
                self.start(slot)
            except OSError:
                self.stats["connect_failed"] += 1
                self.at(time.monotonic() + self.interval, slot)
        elif slot.state == "sending":
            try:
                slot.sock.send(self.head[slot.pos:slot.pos + 1])
                slot.pos = (slot.pos + 1) % len(self.head)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except (OSError, ssl.SSLError):
                self.drop(slot, True)
                return
            self.at(time.monotonic() + self.interval, slot)

    def run(self, stop):
        while not stop():
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, slot = heapq.heappop(self.timers)
                self.tick(slot)
            wait = min(0.05, max(0.0, self.timers[0][0] - now)) if self.timers else 0.05
            for key, _ in self.sel.select(wait):
                slot = key.data
                if slot.state == "handshake":
                    self.handshake(slot)
                elif slot.state == "sending":
                    self.readable(slot)
        for slot in self.slots:
            if slot.sock is not None:
                slot.sock.close()


def run_slow_clients(port, certdir, n, keep_up, byte_interval, ready, stop, report, nice):
    """Child process: n slow clients until stop is set; puts stats in report.
    certdir None: plain HTTP."""
    raise_nofile(n + 256)
    if nice:
        os.nice(nice)
    stats = {"connected": 0, "connect_failed": 0, "closed_by_server": 0, "answered": 0, "open": 0}
    ctx = None
    if certdir:
        # An attacker verifies nothing: it saves the client's side of the
        # handshake the signature checks (the server's side costs the same).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    clients = SlowClients(port, ctx, n, byte_interval, keep_up, stats)

    def should_stop():
        if stats["open"] >= n * 0.95 or stats["connected"] >= n:
            ready.set()
        return stop.is_set()

    clients.run(should_stop)
    report.put(stats)


def attack_held(port, certdir, n, what):
    """n slow clients reconnecting as they are closed, once each has
    connected (or a Failure after 60 s)."""
    attack = SlowAttack(port, certdir, n, keep_up=True)
    if not attack.wait_ready(60):
        attack.stop()
        raise Failure("slow clients did not connect to the %s within 60 s" % what)
    time.sleep(1)
    return attack


class SlowAttack:
    """n slow clients in a child process (so they share no lock with the
    measuring process); certdir None for plain HTTP."""

    def __init__(self, port, certdir, n, keep_up=True, byte_interval=1.0, nice=0):
        mp = multiprocessing.get_context("fork")
        self.ready, self.stop_ev, self.report = mp.Event(), mp.Event(), mp.Queue()
        self.proc = mp.Process(target=run_slow_clients,
                               args=(port, certdir, n, keep_up, byte_interval, self.ready,
                                     self.stop_ev, self.report, nice), daemon=True)
        self.proc.start()

    def wait_ready(self, timeout):
        return self.ready.wait(timeout)

    def stop(self):
        self.stop_ev.set()
        try:
            stats = self.report.get(timeout=30)
        except Exception:
            stats = None
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        return stats


# ---- back-to-back clients across a SIGTERM ----------------------------------

class DrainClient(threading.Thread):
    """Posts /validate back to back over a kept-alive connection, opening a
    new one when told Connection: close, until a connect is refused.

    A request is lost when it was completely sent and the connection then
    closed without a response."""

    def __init__(self, port, ctx, body, deadline):
        super().__init__(daemon=True)
        self.port, self.ctx, self.body, self.deadline = port, ctx, body, deadline
        self.answered = self.lost = self.unsent = self.refused = 0
        self.errors = []

    def run(self):
        sock = None
        req = post("/validate", self.body)
        while time.monotonic() < self.deadline:
            if sock is None:
                try:
                    sock = connect(self.port, self.ctx, 10)
                except (ConnectionError, ssl.SSLError, OSError):
                    self.refused += 1
                    return
            try:
                sock.sendall(req)
            except (OSError, ssl.SSLError):
                self.unsent += 1
                sock.close()
                sock = None
                continue
            try:
                status, headers, _, _, _ = read_response(sock)
            except (Closed, OSError, ssl.SSLError) as e:
                self.lost += 1
                self.errors.append(str(e))
                sock.close()
                sock = None
                continue
            if status != 200:
                self.errors.append("status %d" % status)
            self.answered += 1
            if "close" in [v.lower() for v in headers.get("connection", [])]:
                sock.close()
                sock = None
        if sock:
            sock.close()


def drain_run(tmpdir, body, clients, args=(), rng=random):
    """One server, clients back to back, a SIGTERM in the middle. Returns
    (answered, lost, exit status, errors, seconds from SIGTERM to exit)."""
    srv = Server(tmpdir, args, name="drain")
    ctx = tls_context(tmpdir)
    try:
        threads = [DrainClient(srv.port, ctx, body, time.monotonic() + 60) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(0.2 + rng.random() * 0.5)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        status = srv.stop(timeout=40)
        took = time.monotonic() - t0
        for t in threads:
            t.join(30)
        if any(t.is_alive() for t in threads):
            raise Failure("a client still runs 30 s after the server exited")
        answered = sum(t.answered for t in threads)
        lost = sum(t.lost for t in threads)
        errors = [e for t in threads for e in t.errors]
        return answered, lost, status, errors, took
    finally:
        srv.kill()


# ---- the checks of `make test` ----------------------------------------------

def check_read_deadline(tmpdir, log):
    """Slow clients below the limit are closed at the read deadline, counted
    and logged; the server answers meanwhile."""
    srv = Server(tmpdir, ["--read-timeout", "2", "--max-connections", "64"], name="deadline")
    ctx = tls_context(tmpdir)
    try:
        attack = SlowAttack(srv.port, tmpdir, 20, keep_up=False)
        if not attack.wait_ready(30):
            raise Failure("slow clients did not connect within 30 s")
        timed_call(srv.port, ctx, review_body(), 10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            timed_out = srv.metrics().get(series("rollgate_requests_timed_out_total"), 0)
            if timed_out >= 20:
                break
            time.sleep(0.2)
        stats = attack.stop()
        log("read deadline: %d slow clients, %d closed by the server, timed_out_total %d"
            % (20, stats["closed_by_server"] if stats else -1, timed_out))
        if timed_out < 20:
            raise Failure("expected 20 read timeouts, metrics say %d" % timed_out)
        if not stats or stats["closed_by_server"] < 20 or stats["answered"]:
            raise Failure("the slow clients were not all closed without an answer: %r" % stats)
        lines = [l for l in srv.log_lines() if l["msg"].startswith("connections closed to protect")]
        if not lines or sum(l["read_timeouts"] for l in lines) < 1:
            raise Failure("no log line reports the read timeouts")
        if srv.stop() != 0:
            raise Failure("rollgate exited with an error")
    finally:
        srv.kill()


def check_slow_flood(tmpdir, log, slow=300, limit=200, honest=20):
    """More slow clients than the connection limit, reconnecting as they
    are closed: honest calls are all answered, none waits in the backlog.
    (A connection can be evicted before its request arrives only when more
    than `limit` newer ones arrive meanwhile: the 100 extra clients here
    reconnect about 100 times a second, which leaves an honest call 2 s,
    enough even under ASan on a loaded machine.)"""
    raise_nofile(slow + 512)
    srv = Server(tmpdir, ["--read-timeout", "3", "--max-connections", str(limit)], name="flood")
    ctx = tls_context(tmpdir)
    body = review_body()
    try:
        attack = attack_held(srv.port, tmpdir, slow, "HTTPS listener")
        worst = 0.0
        for _ in range(honest):
            worst = max(worst, timed_call(srv.port, ctx, body, 20))
        open_now = srv.metrics().get(series("rollgate_connections_open"), 0)
        stats = attack.stop()
        m = srv.metrics()
        evicted = m.get(series("rollgate_connections_evicted_total", state="reading"), 0)
        log("flood: %d slow clients over a limit of %d: %d honest calls answered, slowest %.3f s; "
            "open %d (limit %d), evicted %d, attack %r" % (slow, limit, honest, worst, open_now,
                                                          limit, evicted, stats))
        if evicted < 1:
            raise Failure("no connection was evicted")
        if open_now > limit + limit / 4 + 16:
            raise Failure("%d connections open, limit %d" % (open_now, limit))
        if srv.stop() != 0:
            raise Failure("rollgate exited with an error")
    finally:
        srv.kill()


def probe(port):
    """GET /readyz over plain HTTP; returns the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        return read_response(s)[0]


def check_metrics_listener(tmpdir, log, slow=100, probes=20):
    """The metrics listener carries the kubelet's probes: slow clients past
    its 64 connections leave them answered."""
    srv = Server(tmpdir, ["--read-timeout", "3"], name="probes")
    try:
        attack = attack_held(srv.metrics_port, None, slow, "metrics listener")
        for _ in range(probes):
            status = probe(srv.metrics_port)
            if status != 200:
                raise Failure("/readyz answered %d under slow clients" % status)
        stats = attack.stop()
        m = srv.metrics()
        evicted = m.get(series("rollgate_connections_evicted_total", "metrics", state="reading"), 0)
        log("metrics listener: %d slow clients over its limit of 64: %d probes answered, "
            "evicted %d, attack %r" % (slow, probes, evicted, stats))
        if evicted < 1:
            raise Failure("no connection of the metrics listener was evicted")
        if srv.stop() != 0:
            raise Failure("rollgate exited with an error")
    finally:
        srv.kill()


def check_drain(tmpdir, log, runs, clients=8):
    body = review_body()
    total_answered = total_lost = 0
    rng = random.Random(1)
    for i in range(runs):
        answered, lost, status, errors, took = drain_run(tmpdir, body, clients,
                                                         ["--drain-timeout", "8"], rng)
        total_answered += answered
        total_lost += lost
        if status != 0:
            raise Failure("run %d: rollgate exited with %d" % (i + 1, status))
        if lost or errors:
            raise Failure("run %d: %d requests lost: %s" % (i + 1, lost, errors[:3]))
    log("drain: %d SIGTERMs, %d clients back to back: %d requests answered, %d lost"
        % (runs, clients, total_answered, total_lost))


def raw_exchange(port, ctx, data):
    with connect(port, ctx) as s:
        s.sendall(data)
        return read_all(s)


def expect_once(raw, status, what):
    """Exactly one response with this status: its head, then a body of its
    Content-Length (JSON when it says so), then nothing."""
    m = re.match(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n", raw)
    if not m or int(m.group(1)) != status:
        raise Failure("%s: want %d, got %r" % (what, status, raw[:200]))
    if b"\r\n\r\n" not in raw:
        raise Failure("%s: no end of the response head in %r" % (what, raw[:400]))
    head, body = raw.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if not length or int(length.group(1)) != len(body):
        raise Failure("%s: %d bytes follow a head announcing %s: %r"
                      % (what, len(body), length.group(1).decode() if length else "no length", raw[:400]))
    if re.search(rb"(?i)\r\ncontent-type: *application/json", head):
        json.loads(body.decode("utf-8"))
    return head, body


def check_http_strictness(tmpdir, log):
    srv = Server(tmpdir, ["--max-body-bytes", "65536"], name="strict")
    ctx = tls_context(tmpdir)
    body = review_body()
    h = b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    cases = [
        ("two different Content-Length", h + b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
         400, b"conflicting Content-Length"),
        ("HTTP/1.1 without Host", b"POST /validate HTTP/1.1\r\nContent-Type: application/json\r\n"
         b"Content-Length: 2\r\n\r\n{}", 400, b"Host"),
        ("two Host headers", h + b"Host: y\r\nContent-Length: 2\r\n\r\n{}", 400, b"Host"),
        ("Transfer-Encoding: gzip", h + b"Transfer-Encoding: gzip\r\n\r\n{}", 501, b"Transfer-Encoding"),
        ("Transfer-Encoding with Content-Length",
         h + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}", 400, b"Transfer-Encoding"),
        ("negative Content-Length", h + b"Content-Length: -5\r\n\r\n", 400, None),
        ("non-numeric Content-Length", h + b"Content-Length: abc\r\n\r\n", 400, None),
        ("huge Content-Length", h + b"Content-Length: 99999999999999999999999\r\n\r\n", 413, None),
        ("Content-Length over the cap", h + b"Content-Length: 1000000\r\n\r\n" + b" " * 4096, 413,
         b"larger than"),
    ]
    try:
        for what, data, status, reason in cases:
            t0 = time.monotonic()
            raw = raw_exchange(srv.port, ctx, data)
            took = time.monotonic() - t0
            _, reply = expect_once(raw, status, what)
            if reason and reason not in reply:
                raise Failure("%s: reply %r lacks %r" % (what, reply, reason))
            if took > 5:
                raise Failure("%s: answered after %.1f s, not at once" % (what, took))
        # A body that is not UTF-8: refused, and never echoed.
        bad = body.replace(b'"name": "web-5d4f8c7b9"', b'"name": "web-\xff\xfe-x"', 1)
        if bad == body:
            raise Failure("the example review changed: no name to corrupt")
        raw = raw_exchange(srv.port, ctx, post("/validate", bad, b"Connection: close\r\n"))
        _, reply = expect_once(raw, 400, "invalid UTF-8")
        if b"UTF-8" not in reply or b"\xff" in raw:
            raise Failure("invalid UTF-8: %r" % reply)
        # The server still answers, and every log line is JSON.
        timed_call(srv.port, ctx, body, 10)
        if b"\xff" in open(srv.log, "rb").read():
            raise Failure("a request byte that is not UTF-8 reached the log")
        srv.log_lines()
        log("HTTP strictness: %d malformed requests each answered once" % (len(cases) + 1))
        if srv.stop() != 0:
            raise Failure("rollgate exited with an error")
    finally:
        srv.kill()


def check(argv):
    runs = int(os.environ.get("EDGE_DRAIN_RUNS", "20"))
    if not os.access(BIN, os.X_OK):
        print("edge: SKIP: no rollgate binary at %s" % BIN)
        return 0
    with tempfile.TemporaryDirectory(prefix="rollgate-edge-") as tmpdir:
        make_certs(tmpdir)
        log = lambda msg: print("ok   " + msg, flush=True)
        checks = [check_http_strictness, check_read_deadline, check_slow_flood,
                  check_metrics_listener, lambda d, l: check_drain(d, l, runs)]
        for fn in checks:
            fn(tmpdir, log)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "check":
        print("usage: tests/edge.py check", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(check(sys.argv[2:]))
    except Failure as e:
        print("FAIL " + str(e), flush=True)
        sys.exit(1)
