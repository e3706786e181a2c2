#!/bin/sh
# Tests deploy/monitoring/ (docs/runbook.md) with Prometheus's own promtool
# and the real binary:
#  1. the PrometheusRule's groups pass `promtool check rules`, and
#     tests/fixtures/monitoring/alerts-test.yaml passes `promtool test rules`:
#     every alert fires on its input series and stays silent on others;
#  2. every alert has a severity, a summary, a description with the label
#     values and a runbook_url naming a section of docs/runbook.md;
#  3. every dashboard query is valid PromQL (each wrapped as a recording rule
#     for `promtool check rules`);
#  4. every metric the alerts and the dashboard name is in the /metrics of a
#     running rollgate (the missing ones are listed);
#  5. the certificate expiry gauge follows certificate reloads;
#  6. the component renders with deploy/ (`kubectl kustomize`) and the
#     PodMonitor selects the Deployment's pods on their metrics port.
# Needs promtool (Debian: prometheus), python3 with PyYAML, curl and openssl,
# all installed by scripts/deps.sh; step 6 is skipped without kubectl.
# Env: ROLLGATE_BIN (the binary), ROLLGATE_ROOT (the repository).
set -u

BIN=${ROLLGATE_BIN:?set ROLLGATE_BIN to the rollgate binary}
ROOT=${ROLLGATE_ROOT:?set ROLLGATE_ROOT to the repository root}
cd "$ROOT" || exit 1
. tests/shtest.shlib
MON=deploy/monitoring

for t in promtool python3 curl openssl; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "test_monitoring: SKIP: $t not found (scripts/deps.sh installs it)"
		exit 0
	fi
done
if ! python3 -c 'import yaml' 2>/dev/null; then
	echo "test_monitoring: SKIP: python3 without PyYAML (Debian: python3-yaml)"
	exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-mon.XXXXXX") || exit 1
trap 'srv_stop >/dev/null 2>&1; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

# ---- 1. promtool on the alerts ----

python3 - "$MON/prometheusrule.yaml" "$TMP/rules.yaml" <<'EOF' || bad "cannot extract the rule groups"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
assert len(docs) == 1 and docs[0]["kind"] == "PrometheusRule", "one PrometheusRule expected"
yaml.safe_dump({"groups": docs[0]["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
EOF
if promtool check rules "$TMP/rules.yaml" >"$TMP/out" 2>&1; then
	ok "promtool check rules: $(grep -o '[0-9]* rules found' "$TMP/out")"
else
	bad "promtool check rules: $(cat "$TMP/out")"
fi
cp tests/fixtures/monitoring/alerts-test.yaml "$TMP/alerts-test.yaml"
if (cd "$TMP" && promtool test rules alerts-test.yaml) >"$TMP/out" 2>&1; then
	ok "promtool test rules: every case of tests/fixtures/monitoring/alerts-test.yaml passes"
else
	bad "promtool test rules: $(cat "$TMP/out")"
fi

# ---- 2. annotations, runbook sections, test coverage ----

python3 - "$TMP/rules.yaml" tests/fixtures/monitoring/alerts-test.yaml docs/runbook.md <<'EOF' || fail=1
import re, sys, yaml
rules = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
tests = yaml.safe_load(open(sys.argv[2]))["tests"]
runbook = open(sys.argv[3]).read()

def anchor(heading):
    # GitHub's: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
fired, silent = set(), set()
for t in tests:
    for c in t.get("alert_rule_test", []):
        (fired if c.get("exp_alerts") else silent).add(c["alertname"])
errors = []
alerts = [r for r in rules if "alert" in r]
names = [r["alert"] for r in alerts]
for r in alerts:
    n, a = r["alert"], r.get("annotations", {})
    if r.get("labels", {}).get("severity") not in ("warning", "critical"):
        errors.append("%s: severity is neither warning nor critical" % n)
    for k in ("summary", "description", "runbook_url"):
        if not a.get(k, "").strip():
            errors.append("%s: no %s annotation" % (n, k))
    # absent() has no labels to show; every other alert names its series.
    if not r["expr"].lstrip().startswith("absent(") and "$labels." not in a.get("description", ""):
        errors.append("%s: the description shows no label value" % n)
    m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", a.get("runbook_url", ""))
    if not m:
        errors.append("%s: runbook_url %r is not docs/runbook.md#SECTION" % (n, a.get("runbook_url")))
    elif m.group(1) not in anchors:
        errors.append("%s: docs/runbook.md has no section #%s" % (n, m.group(1)))
    if n not in fired:
        errors.append("%s: no promtool case where it fires" % n)
    if n not in silent:
        errors.append("%s: no promtool case where it stays silent" % n)
for n in (fired | silent) - set(names):
    errors.append("alerts-test.yaml tests %s, which no rule defines" % n)
if len(set(names)) != len(names):
    errors.append("duplicate alert names")
for e in errors:
    print("FAIL " + e)
if not errors:
    print("ok   %d alerts: severity, summary, description, runbook section, firing and silent cases" % len(alerts))
sys.exit(1 if errors else 0)
EOF

# ---- 3. dashboard queries through promtool ----

python3 - "$MON/dashboard.json" "$TMP/dashboard-rules.yaml" "$TMP/dashboard-exprs" <<'EOF' || bad "dashboard.json: cannot read its queries"
import json, re, sys, yaml
d = json.load(open(sys.argv[1]))
# Grafana's variables, replaced by values of their kind.
subst = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m",
         "$namespace": "rollgate", "$pod": ".*", "${datasource}": "", "$datasource": ""}
rules, exprs, errors = [], [], []
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(d["panels"]):
    if p["type"] == "row":
        continue
    if not p.get("targets"):
        errors.append("panel %r has no query" % p.get("title"))
    for t in p.get("targets", []):
        e = t["expr"]
        for k, v in subst.items():
            e = e.replace(k, v)
        if "$" in e:
            errors.append("panel %r: unknown variable in %s" % (p["title"], t["expr"]))
        rules.append({"record": "rollgate_dashboard:panel_%d_%s" % (p["id"], t["refId"]), "expr": e})
        exprs.append(e)
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
open(sys.argv[3], "w").write("\n".join(exprs) + "\n")
for e in errors:
    print("FAIL dashboard.json: " + e)
sys.exit(1 if errors else 0)
EOF
if promtool check rules "$TMP/dashboard-rules.yaml" >"$TMP/out" 2>&1; then
	ok "dashboard.json: every query is valid PromQL ($(grep -o '[0-9]* rules found' "$TMP/out"))"
else
	bad "dashboard.json: promtool check rules: $(cat "$TMP/out")"
fi

# ---- 4. metric names against a running rollgate ----

certs=$TMP/certs
certs/make-dev-certs.sh "$certs" >/dev/null 2>&1 || bad "certs/make-dev-certs.sh failed"
mkdir -p "$TMP/tls/a" "$TMP/tls/b"
cp "$certs/tls.crt" "$certs/tls.key" "$TMP/tls/a/"
ln -s a "$TMP/tls/current"
if srv_start "$TMP/server.log" "$BIN" serve --tls-cert "$TMP/tls/current/tls.crt" \
	--tls-key "$TMP/tls/current/tls.key" --objects examples/objects --config examples/rollgate.yaml; then
	ok "rollgate serve started (metrics on port $SRV_METRICS_PORT)"
else
	bad "rollgate serve did not start: $(cat "$TMP/server.log")"
	exit 1
fi
srv_metrics "$TMP/metrics" || bad "GET /metrics failed"

python3 - "$TMP/metrics" "$TMP/rules.yaml" "$TMP/dashboard-exprs" <<'EOF' || fail=1
import re, sys, yaml
# Metrics from elsewhere that the alerts and the dashboard use on purpose:
# Prometheus's scrape health and the kubelet's (cAdvisor) container memory.
EXTERNAL = {"up": "Prometheus (scrape health)",
            "container_memory_working_set_bytes": "kubelet/cAdvisor"}
served = set()
for line in open(sys.argv[1]):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        served.add(m.group(1))
        if m.group(2) == "histogram":
            served |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    elif line.strip() and not line.startswith("#"):
        served.add(re.match(r"[A-Za-z_:][\w:]*", line).group(0))

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan",
            # aggregations, whose grouping may stand before the parenthesis
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile"}
def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][\w:]*", e):
        rest = e[m.end():].lstrip()
        if m.group(0).lower() in KEYWORDS or rest.startswith("("):
            continue                                        # keyword or function
        if re.match(r"\d", e[m.start() - 1:m.start()] or " "):
            continue                                        # part of a number (1e3)
        names.add(m.group(0))
    return names

rules = [r for g in yaml.safe_load(open(sys.argv[2]))["groups"] for r in g["rules"]]
used = {}
for r in rules:
    for n in metric_names(r["expr"]):
        used.setdefault(n, set()).add("alert " + r["alert"])
for i, e in enumerate(open(sys.argv[3]).read().split("\n")):
    for n in metric_names(e):
        used.setdefault(n, set()).add("dashboard")
missing = sorted(n for n in used if n not in served and n not in EXTERNAL)
for n in sorted(used):
    if n in EXTERNAL:
        print("ok   %s comes from %s, not rollgate" % (n, EXTERNAL[n]))
if missing:
    for n in missing:
        print("FAIL %s (used by %s) is not in rollgate's /metrics" % (n, ", ".join(sorted(used[n]))))
    sys.exit(1)
print("ok   all %d rollgate metrics the alerts and the dashboard use are in /metrics"
      % len([n for n in used if n not in EXTERNAL]))
EOF

# ---- 5. the certificate expiry gauge follows reloads ----

# not_after CERT: its notAfter as a Unix time.
not_after() {
	python3 -c '
import sys, calendar, time
s = sys.argv[1].split("=", 1)[1].strip()
print(calendar.timegm(time.strptime(s, "%b %d %H:%M:%S %Y GMT")))' "$(openssl x509 -in "$1" -noout -enddate)"
}
# metric NAME_WITH_LABELS: its value in a fresh scrape (empty when absent).
metric() {
	srv_metrics "$TMP/metrics" || return 1
	awk -v n="$1" '$1 == n { print $2 }' "$TMP/metrics"
}
# wait_metric NAME VALUE: up to 30 s (the server polls its files every 2 s).
wait_metric() {
	_i=0
	while [ $_i -lt 60 ]; do
		[ "$(metric "$1")" = "$2" ] && return 0
		sleep 0.5
		_i=$((_i + 1))
	done
	return 1
}
gauge=rollgate_tls_certificate_expiry_timestamp_seconds
want=$(not_after "$TMP/tls/a/tls.crt")
if [ "$(metric $gauge)" = "$want" ]; then
	ok "at start the expiry gauge is the served certificate's notAfter ($want)"
else
	bad "at start $gauge is $(metric $gauge), expected $want"
fi
# A renewal as the kubelet does it: the directory symlink is swapped, so the
# pair changes at once.
ROLLGATE_CERT_DAYS=3 certs/make-dev-certs.sh "$TMP/tls/b" --force >/dev/null 2>&1
want=$(not_after "$TMP/tls/b/tls.crt")
ln -s b "$TMP/tls/next" && mv -T "$TMP/tls/next" "$TMP/tls/current"
if wait_metric $gauge "$want" &&
	[ "$(metric 'rollgate_reloads_total{what="certificate",outcome="success"}')" = 1 ]; then
	ok "after a certificate reload the gauge is the new notAfter ($want), one successful reload"
else
	bad "after the certificate changed, $gauge is $(metric $gauge), expected $want"
fi
# A broken pair is rejected: counted, and the gauge keeps the served one.
mkdir "$TMP/tls/c"
cp "$TMP/tls/b/tls.crt" "$TMP/tls/c/tls.crt"
cp "$TMP/tls/a/tls.key" "$TMP/tls/c/tls.key"
ln -s c "$TMP/tls/next" && mv -T "$TMP/tls/next" "$TMP/tls/current"
if wait_metric 'rollgate_reloads_total{what="certificate",outcome="failure"}' 1 &&
	[ "$(metric $gauge)" = "$want" ]; then
	ok "a rejected certificate is counted as a failure and the gauge stays at the served one"
else
	bad "after a mismatched key: failures $(metric 'rollgate_reloads_total{what="certificate",outcome="failure"}'), $gauge $(metric $gauge)"
fi
srv_stop || bad "rollgate serve exited with status $? on SIGTERM"
if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/server.log"; then
	bad "sanitizer report: $(cat "$TMP/server.log")"
fi

# ---- 6. the component with deploy/ ----

if ! command -v kubectl >/dev/null 2>&1; then
	echo "test_monitoring: SKIP kustomize checks: kubectl not found"
else
	# kustomize takes relative paths only.
	mkdir "$TMP/kust"
	rel=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$ROOT" "$TMP/kust")
	cat >"$TMP/kust/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/deploy
components:
  - $rel/$MON
EOF
	if kubectl kustomize "$TMP/kust" >"$TMP/rendered.yaml" 2>"$TMP/err"; then
		ok "kubectl kustomize: deploy/ with the deploy/monitoring component renders"
		python3 - "$TMP/rendered.yaml" "$MON" <<'EOF' || fail=1
import json, sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
errors = []
def need(kind, name):
    o = by.get((kind, name))
    if not o:
        errors.append("no %s %s in the rendering" % (kind, name))
    return o or {}
dep = need("Deployment", "rollgate")
pm = need("PodMonitor", "rollgate")
pr = need("PrometheusRule", "rollgate")
cm = need("ConfigMap", "rollgate-dashboard")
if dep and pm:
    tpl = dep["spec"]["template"]
    sel = pm["spec"]["selector"]["matchLabels"]
    if any(tpl["metadata"]["labels"].get(k) != v for k, v in sel.items()):
        errors.append("PodMonitor selector %s does not match the pod labels" % sel)
    if pm["metadata"]["namespace"] != dep["metadata"]["namespace"]:
        errors.append("PodMonitor is not in the Deployment's namespace")
    ports = {p["name"]: p["containerPort"] for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
    for ep in pm["spec"]["podMetricsEndpoints"]:
        if ep["port"] not in ports:
            errors.append("PodMonitor port %r is not a container port (%s)" % (ep["port"], ports))
        if ep.get("path", "/metrics") != "/metrics":
            errors.append("PodMonitor path is not /metrics")
    jl = pm["spec"].get("jobLabel")
    if tpl["metadata"]["labels"].get(jl) != "rollgate":
        errors.append("jobLabel %r does not give job=\"rollgate\", which the alerts select" % jl)
if pr:
    want = yaml.safe_load(open(sys.argv[2] + "/prometheusrule.yaml"))["spec"]
    if pr["spec"] != want:
        errors.append("the rendered PrometheusRule differs from prometheusrule.yaml")
if cm:
    if cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        errors.append("the dashboard ConfigMap lacks the label grafana_dashboard: \"1\"")
    if json.loads(cm["data"]["rollgate.json"]) != json.load(open(sys.argv[2] + "/dashboard.json")):
        errors.append("the dashboard ConfigMap does not hold dashboard.json")
for e in errors:
    print("FAIL " + e)
if not errors:
    print("ok   the PodMonitor selects the Deployment's pods on port \"metrics\"; rules and dashboard are included")
sys.exit(1 if errors else 0)
EOF
	else
		bad "kubectl kustomize with the component: $(cat "$TMP/err")"
	fi
fi

[ $fail -eq 0 ] && echo "test_monitoring: all checks passed"
exit $fail
