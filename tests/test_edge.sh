#!/bin/sh
# The HTTPS edge against slow, hostile and impatient clients (docs/limits.md),
# driven by tests/edge.py against the real binary on 127.0.0.1:
#  1. malformed framing and bodies that are not UTF-8 are each answered once,
#     at once, and never echoed;
#  2. requests trickling in are closed at the read deadline, counted, logged;
#  3. more slow clients than the connection limit, reconnecting as they are
#     closed, leave honest calls answered;
#  4. so do slow clients at the metrics listener for the kubelet's probes;
#  5. no request is lost across SIGTERMs with clients posting back to back
#     (EDGE_DRAIN_RUNS, default 20).
# Env: ROLLGATE_BIN (the binary), ROLLGATE_ROOT (the repository).
set -u

root=${ROLLGATE_ROOT:-$(pwd)}
if ! command -v python3 >/dev/null 2>&1; then
	echo "test_edge: SKIP: python3 not found"
	exit 0
fi
exec timeout 600 python3 "$root/tests/edge.py" check
