#!/usr/bin/env python3
"""Requests lost across SIGTERMs, with clients posting back to back.

Each run starts build/rollgate (or $ROLLGATE_BIN) on 127.0.0.1, lets
--clients threads post /validate back to back over kept-alive TLS
connections (a new connection whenever an answer says Connection: close,
until a connect is refused), sends SIGTERM 0.2 to 0.7 s in, and counts the
requests lost: completely sent, then the connection closed without an
answer. kube-apiserver's Go client does not send such a POST again.
docs/limits.md records a run.

    python3 bench/drain.py --runs 20 --clients 8
"""
import argparse
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import edge  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="SIGTERMs (20)")
    ap.add_argument("--clients", type=int, default=8, help="clients posting back to back (8)")
    ap.add_argument("--seed", type=int, default=None, help="for the SIGTERM times")
    ap.add_argument("serve_args", nargs="*", help="extra `rollgate serve` flags, after --")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    body = edge.review_body()
    total_answered = total_lost = 0
    print("| run | answered | lost | exit status | SIGTERM to exit, s |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="rollgate-drain-") as tmpdir:
        edge.make_certs(tmpdir)
        for i in range(a.runs):
            answered, lost, status, errors, took = edge.drain_run(tmpdir, body, a.clients,
                                                                  a.serve_args, rng)
            total_answered += answered
            total_lost += lost
            print("| %d | %d | %d | %d | %.2f |" % (i + 1, answered, lost, status, took), flush=True)
            for e in errors[:3]:
                print("  error: " + e)
    print("\n%d SIGTERMs, %d clients: %d requests answered, %d lost"
          % (a.runs, a.clients, total_answered, total_lost))
    return 1 if total_lost else 0


if __name__ == "__main__":
    sys.exit(main())
