#!/bin/sh
# Checks the install manifests in deploy/ (docs/install.md):
#  1. `kubectl kustomize` renders the server (deploy/), the webhook
#     configurations (deploy/webhooks) and the overlays audit-only, fail-open
#     and no-match-conditions;
#  2. rollgate passes its own rules: `rollgate check` on the server renderings;
#  3. the rendered objects fit together and with the binary (selectors, ports,
#     paths, webhook wiring, certificate, RBAC, security context, probes,
#     image and VERSION) and each rendered config loads; the audit overlay
#     enforces nothing; the server holds no webhook configuration (it is
#     applied before them); each overlay changes only what it says;
#     components/reports adds exactly the report controller's RBAC (and
#     memory), nothing else;
#  4. the webhooks' matchConditions are the ones rendered from the config's
#     `controllers` (scripts/render-match-conditions.py), and the binary treats
#     exactly those users as controllers. tests/test_matchconditions.sh
#     evaluates the CEL expressions themselves.
# Needs kubectl (skipped without it); steps 3 and 4 need python3 with PyYAML
# (Debian: python3-yaml) and are skipped without it.
# Env: ROLLGATE_BIN (the binary), ROLLGATE_ROOT (the repository); VERBOSE=1
# lists every property checked, not only the failures.
set -u

root=${ROLLGATE_ROOT:-$(pwd)}
bin=${ROLLGATE_BIN:-$root/build/rollgate}

if ! command -v kubectl >/dev/null 2>&1; then
	echo "test_deploy: SKIP: kubectl not found, deploy/ not checked"
	exit 0
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
fail=0

ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fail=1; }

# 1. Rendering.
render() { # DIR OUT
	if kubectl kustomize "$root/$1" >"$2" 2>"$tmp/err"; then
		ok "kubectl kustomize $1 renders"
	else
		bad "kubectl kustomize $1: $(cat "$tmp/err")"
		: >"$2"
	fi
}
render deploy "$tmp/base.yaml"
render deploy/webhooks "$tmp/webhooks.yaml"
render deploy/overlays/audit-only "$tmp/audit.yaml"
render deploy/overlays/fail-open "$tmp/fail-open.yaml"
render deploy/overlays/no-match-conditions "$tmp/no-mc.yaml"
# The reports Component, on top of the default install (a Component does not
# build alone; kustomize wants relative paths).
mkdir -p "$tmp/with-reports"
rel=$(cd "$tmp/with-reports" && python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1]))' "$root" 2>/dev/null)
if [ -n "$rel" ]; then
	printf 'resources:\n  - %s/deploy\ncomponents:\n  - %s/deploy/components/reports\n' "$rel" "$rel" \
		>"$tmp/with-reports/kustomization.yaml"
	if kubectl kustomize "$tmp/with-reports" >"$tmp/reports.yaml" 2>"$tmp/err"; then
		ok "kubectl kustomize deploy/ with components/reports renders"
	else
		bad "kubectl kustomize deploy/ with components/reports: $(cat "$tmp/err")"
		: >"$tmp/reports.yaml"
	fi
else
	echo "test_deploy: SKIP components/reports: python3 not found"
	: >"$tmp/reports.yaml"
fi

# 2. Dogfooding, with the built-in default config: no violation of any mode.
dogfood() { # FILE WHAT
	"$bin" check "$1" >"$tmp/out" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		bad "rollgate check on the rendered $2 exits $rc: $(cat "$tmp/out")"
	elif ! grep -q ' 0 enforce, 0 warn, 0 audit violations' "$tmp/out"; then
		bad "rollgate check on the rendered $2 finds violations: $(cat "$tmp/out")"
	else
		ok "rollgate check passes the rendered $2: $(tail -n 1 "$tmp/out")"
	fi
}
[ -s "$tmp/base.yaml" ] && dogfood "$tmp/base.yaml" "install"
[ -s "$tmp/audit.yaml" ] && dogfood "$tmp/audit.yaml" "audit-only install"

# 3. Properties.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import yaml' 2>/dev/null; then
	echo "test_deploy: SKIP property and matchConditions checks: python3 with PyYAML (Debian: python3-yaml) not found"
	[ $fail -eq 0 ] && echo "test_deploy: rendering and dogfooding passed"
	exit $fail
fi

# Breaks several enforce rules (full-outage-rollout, pod-template-hash-tamper,
# canary-without-readiness, replicaset-direct-edit): the default config must
# deny these objects and the audit-only config must not.
cat >"$tmp/violations.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxUnavailable: 100%}}
  template:
    metadata: {labels: {app: web, track: canary, pod-template-hash: 5d4f8c}}
    spec:
      containers:
        - {name: web, image: "web:latest"}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d4f
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: "1", controller: true}]
spec:
  replicas: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: "web:1.0"}
EOF

python3 - "$bin" "$root" "$tmp" <<'EOF' || fail=1
import json, os, re, subprocess, sys
import yaml

BIN, ROOT, TMP = sys.argv[1:4]
VERBOSE = os.environ.get("VERBOSE") == "1"
counts = {"ok": 0, "fail": 0}

def check(cond, what):
    """Counts a property; prints failures (and passes with VERBOSE=1)."""
    counts["ok" if cond else "fail"] += 1
    if VERBOSE or not cond:
        print(("ok   " if cond else "FAIL ") + what)
    return cond

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def labels_match(selector, labels):
    """Evaluates a metav1.LabelSelector against a label map."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True

# What the binary does by default, from `rollgate serve --help`.
helptext = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True).stdout
def help_default(pattern):
    m = re.search(pattern, helptext, re.S)
    check(m is not None, "serve --help states the default matching %r" % pattern)
    return m.group(1) if m else None
DEF = {
    "--listen": help_default(r"--listen HOST:PORT\s+HTTPS address \(default ([^)]+)\)"),
    "--metrics-listen": help_default(r"--metrics-listen HOST:PORT.*?\(default ([^)]+)\)"),
    "--tls-cert": help_default(r"--tls-cert PATH.*?\(default ([^)]+)\)"),
    "--tls-key": help_default(r"--tls-key PATH.*?\(default ([^)]+)\)"),
    "--drain-timeout": help_default(r"--drain-timeout SECONDS.*?\(default (\d+)\)"),
}
RULE_IDS = re.findall(r"^\| \d+ \| \[`([a-z-]+)`\]", open(os.path.join(ROOT, "docs/rules.md")).read(), re.M)
check(len(RULE_IDS) >= 10, "docs/rules.md lists the rule IDs (%d found)" % len(RULE_IDS))
VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()

def arg_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None

def port_of(hostport):
    return int(hostport.rsplit(":", 1)[1])

def covers(rules, group, resource, op):
    for r in rules:
        if (group in r.get("apiGroups", []) or "*" in r.get("apiGroups", [])) and \
           (resource in r.get("resources", []) or "*" in r.get("resources", [])) and \
           (op in r.get("operations", []) or "*" in r.get("operations", [])) and \
           ("v1" in r.get("apiVersions", []) or group != "apps" or "*" in r.get("apiVersions", [])):
            return True
    return False

# The generator of the matchConditions, imported (its file name has dashes).
import importlib.util
_spec = importlib.util.spec_from_file_location("rmc", os.path.join(ROOT, "scripts/render-match-conditions.py"))
RMC = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RMC)

def kinds(objs):
    return sorted(o["kind"] for o in objs)

def webhook_configs(objs):
    return {o["kind"]: o for o in objs if o["kind"].endswith("WebhookConfiguration")}

def check_rendering(paths, audit):
    tag = "[audit-only] " if audit else ""
    def ck(cond, what):
        return check(cond, tag + what)
    objs = [o for p in paths for o in load(p)]
    by = {}
    for o in objs:
        by.setdefault(o["kind"], []).append(o)
    def one(kind, name=None):
        c = [o for o in by.get(kind, []) if name is None or o["metadata"]["name"] == name]
        ck(len(c) == 1, "exactly one %s%s" % (kind, " " + name if name else ""))
        return c[0] if c else None

    for kind in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
                 "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy",
                 "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        if not ck(len(by.get(kind, [])) == 1, "one %s" % kind):
            return
    ns = one("Namespace")["metadata"]["name"]
    ck(ns == "rollgate", "namespace is rollgate")
    cluster_kinds = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                     "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
    for o in objs:
        md = o["metadata"]
        lb = md.get("labels") or {}
        ident = "%s/%s" % (o["kind"], md["name"])
        ck(lb.get("app.kubernetes.io/name") == "rollgate" and lb.get("app.kubernetes.io/part-of") == "rollgate",
           "%s has the app.kubernetes.io name and part-of labels" % ident)
        if o["kind"] not in cluster_kinds:
            ck(md.get("namespace") == ns, "%s is in namespace %s" % (ident, ns))

    # RBAC: exactly what the webhook and the reload controller use.
    def grants(obj):
        granted, extra = set(), []
        for r in obj.get("rules", []):
            extra.extend(k for k in r if k not in ("apiGroups", "resources", "verbs"))
            for g in r.get("apiGroups", []):
                for res in r.get("resources", []):
                    for v in r.get("verbs", []):
                        granted.add((g, res, v))
        return granted, extra
    role = one("ClusterRole")
    granted, extra = grants(role)
    want = {("", res, v) for res in ("configmaps", "secrets") for v in ("get", "list", "watch")}
    want |= {("apps", res, v) for res in ("deployments", "statefulsets", "daemonsets")
             for v in ("get", "list", "watch", "patch")}
    want |= {("argoproj.io", "rollouts", v) for v in ("list", "watch", "patch")}
    want.add(("", "events", "create"))
    want |= {("", "namespaces", v) for v in ("list", "watch")}
    ck(granted == want and not extra and not role.get("aggregationRule"),
       "ClusterRole grants exactly the reads, workload patches and events rollgate uses (got %s)"
       % sorted(granted))
    crb = one("ClusterRoleBinding")
    sa = one("ServiceAccount")
    ck(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": role["metadata"]["name"]}, "ClusterRoleBinding binds the ClusterRole")
    ck(crb.get("subjects") == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns}],
       "ClusterRoleBinding's only subject is the ServiceAccount")
    lrole = one("Role")
    lgranted, lextra = grants(lrole) if lrole else (set(), [])
    ck(lgranted == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")} and not lextra,
       "the namespaced Role grants exactly leases get,create,update (got %s)" % sorted(lgranted))
    rb = one("RoleBinding")
    ck(rb is not None and rb["roleRef"].get("name") == (lrole or {}).get("metadata", {}).get("name")
       and rb.get("subjects") == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns}],
       "RoleBinding binds the lease Role to the ServiceAccount")

    # Deployment.
    dep = one("Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    plabels = spec["template"]["metadata"].get("labels") or {}
    ck(spec.get("replicas") == 2, "Deployment has 2 replicas")
    ck(labels_match(spec["selector"], plabels), "Deployment selector matches its pod labels")
    ck(pod.get("serviceAccountName") == sa["metadata"]["name"], "pods run as the ServiceAccount")
    ck(pod.get("automountServiceAccountToken") is True and sa.get("automountServiceAccountToken") is not False,
       "the service account token is mounted")
    ck("priorityClassName" not in pod, "no priorityClassName")
    tsc = [t for t in pod.get("topologySpreadConstraints", []) if t.get("topologyKey") == "kubernetes.io/hostname"]
    ck(len(tsc) == 1 and labels_match(tsc[0].get("labelSelector"), plabels),
       "topologySpreadConstraints on kubernetes.io/hostname select the pods")
    pref = ((pod.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution", [])
    ck(any(p["podAffinityTerm"].get("topologyKey") == "kubernetes.io/hostname" and
           labels_match(p["podAffinityTerm"].get("labelSelector"), plabels) for p in pref),
       "preferred podAntiAffinity on kubernetes.io/hostname selects the pods")
    ck(len(pod["containers"]) == 1, "one container")
    c = pod["containers"][0]
    img = c.get("image", "")
    ck(img == "rollgate:" + VERSION, "image is rollgate:%s (the VERSION file), got %s" % (VERSION, img))
    args = c.get("args") or []
    ck(args[:1] == ["serve"], "container args start with serve")
    ck(arg_value(args, "--log-format") == "json", "--log-format json")
    eff = {f: arg_value(args, f) or DEF[f] for f in DEF}
    cports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    ck(cports.get("https") == 8443 == port_of(eff["--listen"] or ":0"),
       "container port https is 8443, where serve listens (%s)" % eff["--listen"])
    ck(cports.get("metrics") == 9090 == port_of(eff["--metrics-listen"] or ":0"),
       "container port metrics is 9090, where serve serves metrics (%s)" % eff["--metrics-listen"])
    def resolve(port):
        return cports.get(port) if isinstance(port, str) else port

    # Probes on the metrics port.
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
        p = c.get(probe)
        if p is None and path is None:
            continue
        get = (p or {}).get("httpGet") or {}
        ck(resolve(get.get("port")) == 9090 and get.get("scheme", "HTTP") == "HTTP" and
           (path is None or get.get("path") == path),
           "%s is an HTTP GET %s on the metrics port" % (probe, path or "(any path)"))

    # Security context (a container setting overrides the pod's).
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    def sc(key):
        return csc.get(key, psc.get(key))
    ck(sc("runAsNonRoot") is True and sc("runAsUser") == 65532, "runAsNonRoot, runAsUser 65532")
    ck(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    ck(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    ck(not csc.get("privileged"), "not privileged")
    caps = csc.get("capabilities") or {}
    ck("ALL" in (caps.get("drop") or []) and not caps.get("add"), "capabilities: drop ALL, add none")
    ck((sc("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccompProfile RuntimeDefault")
    ck(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), "no host namespaces")

    # Resources.
    res = c.get("resources") or {}
    ck(res.get("requests") == {"cpu": "50m", "memory": "32Mi"}, "requests cpu 50m memory 32Mi")
    ck(res.get("limits") == {"memory": "96Mi"}, "limits memory 96Mi, no cpu limit")

    # Grace period longer than the preStop pause plus the drain.
    pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    pause = int(pre[1]) if len(pre) == 2 and pre[0] in ("sleep", "/bin/sleep") else 0
    drain = int(eff["--drain-timeout"] or 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    ck(grace > pause + drain, "terminationGracePeriodSeconds %d > preStop %d s + drain %d s" % (grace, pause, drain))

    # Volumes: the TLS Secret at the directory of --tls-cert/--tls-key, the
    # config at the directory of --config.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    tls_dir = os.path.dirname(eff["--tls-cert"] or "")
    ck(tls_dir == "/etc/rollgate/tls" and os.path.dirname(eff["--tls-key"] or "") == tls_dir,
       "certificate and key are read from /etc/rollgate/tls")
    tm = mounts.get(tls_dir, {})
    tv = vols.get(tm.get("name"), {})
    tls_secret = (tv.get("secret") or {}).get("secretName")
    ck(tm.get("readOnly") is True and "subPath" not in tm and tls_secret == "rollgate-tls",
       "Secret rollgate-tls is mounted read-only at /etc/rollgate/tls")
    items = (tv.get("secret") or {}).get("items")
    ck(items is None or {"tls.crt", "tls.key"} <= {i["path"] for i in items}, "tls.crt and tls.key are in the mount")
    cfgpath = arg_value(args, "--config")
    ck(cfgpath == "/etc/rollgate/config/rollgate.yaml", "--config /etc/rollgate/config/rollgate.yaml")
    cm_mount = mounts.get(os.path.dirname(cfgpath or ""), {})
    cm_vol = (vols.get(cm_mount.get("name"), {}).get("configMap") or {})
    cm = one("ConfigMap", cm_vol.get("name"))
    ck(cm_mount.get("readOnly") is True and "subPath" not in cm_mount,
       "the config directory is mounted read-only, without subPath (so edits reach the pod)")
    text = (cm or {}).get("data", {}).get(os.path.basename(cfgpath or ""))
    if ck(text is not None, "the mounted ConfigMap holds %s" % os.path.basename(cfgpath or "")):
        f = os.path.join(TMP, "config-%s.yaml" % ("audit" if audit else "base"))
        empty = os.path.join(TMP, "empty.yaml")
        open(f, "w").write(text)
        open(empty, "w").close()
        r = subprocess.run([BIN, "check", "--config", f, empty], capture_output=True, text=True)
        ck(r.returncode == 0, "the config loads (rollgate check --config): %s" % (r.stderr.strip() or "ok"))
        rules = (yaml.safe_load(text) or {}).get("rules") or {}
        modes = {k: (v.get("mode") if isinstance(v, dict) else v) for k, v in rules.items()}
        if audit:
            ck(all(modes.get(r) == "warn" for r in RULE_IDS) and set(modes) <= set(RULE_IDS),
               "every rule is in warn mode (%s)" % modes)
        r = subprocess.run([BIN, "check", "--config", f, os.path.join(TMP, "violations.yaml")],
                           capture_output=True, text=True)
        if audit:
            ck(r.returncode == 0, "enforce-rule violations are allowed (exit %d)" % r.returncode)
        else:
            ck(r.returncode == 1, "enforce-rule violations are denied (exit %d)" % r.returncode)

    # PodDisruptionBudget, Service, NetworkPolicy select the pods.
    pdb = one("PodDisruptionBudget")
    ck(pdb["spec"].get("minAvailable") == 1 and labels_match(pdb["spec"].get("selector"), plabels),
       "PodDisruptionBudget minAvailable 1 selects the pods")
    svc = one("Service")
    ck(svc["metadata"]["name"] == "rollgate" and svc["spec"].get("selector") and
       labels_match({"matchLabels": svc["spec"]["selector"]}, plabels), "Service rollgate selects the pods")
    sports = {p.get("name"): p for p in svc["spec"].get("ports", [])}
    https, metrics = sports.get("https", {}), sports.get("metrics", {})
    ck(https.get("port") == 443 and resolve(https.get("targetPort", https.get("port"))) == cports.get("https"),
       "Service port https 443 reaches container port https")
    ck(metrics.get("port") == 9090 and resolve(metrics.get("targetPort", metrics.get("port"))) == cports.get("metrics"),
       "Service port metrics 9090 reaches container port metrics")
    np = one("NetworkPolicy")
    nps = np["spec"]
    ck(labels_match(nps.get("podSelector"), plabels), "NetworkPolicy selects the pods")
    ck(nps.get("policyTypes") == ["Ingress"], "NetworkPolicy policyTypes [Ingress] (egress open)")
    allowed = set()
    for rule in nps.get("ingress", []):
        ck(rule.get("ports"), "every NetworkPolicy ingress rule names ports")
        for p in rule.get("ports") or []:
            allowed.add(resolve(p.get("port")))
    ck(allowed == {8443, 9090}, "NetworkPolicy admits ports 8443 and 9090 only (got %s)" % sorted(map(str, allowed)))

    # cert-manager: serving Certificate, CA Issuer, CA Certificate, self-signed Issuer.
    certs = {o["metadata"]["name"]: o for o in by.get("Certificate", [])}
    issuers = {o["metadata"]["name"]: o for o in by.get("Issuer", [])}
    serving = certs.get("rollgate-serving")
    if ck(serving is not None, "Certificate rollgate-serving exists"):
        s = serving["spec"]
        ck(s.get("secretName") == tls_secret, "its secretName is the mounted Secret (%s)" % tls_secret)
        ck(s.get("duration") == "2160h" and s.get("renewBefore") == "720h", "duration 2160h, renewBefore 720h")
        ck(s.get("privateKey") == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
           "privateKey ECDSA P-256, rotationPolicy Always")
        ck(not s.get("isCA"), "the serving certificate is not a CA")
        ca_issuer = issuers.get(s["issuerRef"]["name"]) if s["issuerRef"].get("kind", "Issuer") == "Issuer" else None
        ca_secret = ((ca_issuer or {}).get("spec", {}).get("ca") or {}).get("secretName")
        ck(ca_secret is not None, "the serving certificate comes from a CA Issuer")
        ca = [o for o in certs.values() if o["spec"].get("secretName") == ca_secret]
        if ck(len(ca) == 1 and ca[0]["spec"].get("isCA") is True and ca_secret == "rollgate-ca",
              "the CA Issuer's Secret rollgate-ca comes from an isCA Certificate"):
            ca_root = issuers.get(ca[0]["spec"]["issuerRef"]["name"], {})
            ck("selfSigned" in ca_root.get("spec", {}), "the CA Certificate comes from a self-signed Issuer")
        dns = set(s.get("dnsNames", []))
    else:
        dns = set()

    # Webhook configurations: the mutating one has one entry, the validating
    # one two (workloads; ReplicaSets), so each can fail open on its own.
    expect_fp = {"stamp.rollgate.io": "Ignore",
                 "policy.rollgate.io": "Ignore" if audit else "Fail",
                 "replicasets.policy.rollgate.io": "Ignore" if audit else "Fail"}
    expect_path = {"MutatingWebhookConfiguration": "/mutate", "ValidatingWebhookConfiguration": "/validate"}
    workloads = [("apps", r) for r in ("deployments", "statefulsets", "daemonsets")] + [("argoproj.io", "rollouts")]
    expect_res = {"stamp.rollgate.io": workloads,
                  "policy.rollgate.io": workloads + [("flagger.app", "canaries")],
                  "replicasets.policy.rollgate.io": [("apps", "replicasets"), ("apps", "replicasets/scale")]}
    expect_hooks = {"MutatingWebhookConfiguration": ["stamp.rollgate.io"],
                    "ValidatingWebhookConfiguration": ["policy.rollgate.io", "replicasets.policy.rollgate.io"]}
    all_res = {x for v in expect_res.values() for x in v}
    # The users the webhooks must skip: the rendered config's controllers
    # (the built-in defaults if it sets none), plus rollgate's own
    # ServiceAccount for the validating webhook.
    cfg_doc = yaml.safe_load(text or "") or {}
    controllers = cfg_doc["controllers"] if "controllers" in cfg_doc else \
        RMC.default_controllers(os.path.join(ROOT, "src/core/config.c"))
    own_sa = "system:serviceaccount:%s:%s" % (ns, sa["metadata"]["name"])
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        wc = one(kind)
        k = kind.replace("WebhookConfiguration", "")
        ck(wc["metadata"]["name"] == "rollgate", "%s is named rollgate" % kind)
        inj = (wc["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from", "")
        ck(inj == "%s/%s" % (ns, serving["metadata"]["name"] if serving else "?"),
           "%s: cert-manager.io/inject-ca-from names the serving Certificate (%s)" % (k, inj))
        hooks = wc.get("webhooks", [])
        if not ck([w.get("name") for w in hooks] == expect_hooks[kind],
                  "%s has the webhooks %s" % (kind, expect_hooks[kind])):
            continue
        users = RMC.exempt(kind, list(controllers), own_sa)
        want_mc = [{"name": "not-a-controller", "expression": RMC.expression(users)}]
        for w in hooks:
            n = w["name"]
            ck(w.get("failurePolicy") == expect_fp[n], "%s: failurePolicy %s" % (n, expect_fp[n]))
            ck(w.get("sideEffects") == "None", "%s: sideEffects None" % n)
            ck(w.get("admissionReviewVersions") == ["v1"], "%s: admissionReviewVersions [v1]" % n)
            ck(isinstance(w.get("timeoutSeconds"), int) and 1 <= w["timeoutSeconds"] <= 5,
               "%s: timeoutSeconds <= 5" % n)
            ck(w.get("matchPolicy") == "Equivalent", "%s: matchPolicy Equivalent" % n)
            if k == "Mutating":
                ck(w.get("reinvocationPolicy") == "IfNeeded", "%s: reinvocationPolicy IfNeeded" % n)
            ck(w.get("matchConditions") == want_mc,
               "%s: matchConditions skip exactly %s (the config's controllers%s)"
               % (n, users, " and rollgate's ServiceAccount" if k == "Validating" else ""))
            cc = w.get("clientConfig", {})
            cs = cc.get("service") or {}
            ck("url" not in cc and cs.get("name") == svc["metadata"]["name"] and cs.get("namespace") == ns and
               cs.get("port", 443) == https.get("port") and cs.get("path") == expect_path[kind],
               "%s: calls the Service %s/%s port %s path %s" % (n, ns, svc["metadata"]["name"], https.get("port"),
                                                                expect_path[kind]))
            host = "%s.%s.svc" % (cs.get("name"), cs.get("namespace"))
            ck(host in dns and host + ".cluster.local" in dns,
               "%s: the serving certificate's dnsNames cover %s and %s.cluster.local" % (n, host, host))
            sel = w.get("namespaceSelector")
            for excluded in ("kube-system", "kube-node-lease", ns):
                ck(not labels_match(sel, {"kubernetes.io/metadata.name": excluded}),
                   "%s: namespace %s is excluded" % (n, excluded))
            ck(not labels_match(sel, {"kubernetes.io/metadata.name": "shop", "rollgate.io/ignore": ""}),
               "%s: a namespace labelled rollgate.io/ignore is excluded" % n)
            ck(labels_match(sel, {"kubernetes.io/metadata.name": "shop"}), "%s: other namespaces are included" % n)
            ck(not w.get("objectSelector"), "%s: no objectSelector" % n)
            for group, res in all_res:
                for op in ("CREATE", "UPDATE"):
                    if res == "replicasets/scale" and op == "CREATE":
                        continue
                    want = (group, res) in expect_res[n]
                    ck(covers(w.get("rules", []), group, res, op) == want,
                       "%s: %s %s %s %s" % (n, op, group, res, "covered" if want else "not covered"))
            ops = {o for r in w.get("rules", []) for o in r.get("operations", [])}
            ck(ops <= {"CREATE", "UPDATE"}, "%s: only CREATE and UPDATE (got %s)" % (n, sorted(ops)))
    return cfg_doc, controllers

P = lambda name: os.path.join(TMP, name)
server, hooks, audit_objs = load(P("base.yaml")), load(P("webhooks.yaml")), load(P("audit.yaml"))
fail_open, no_mc = load(P("fail-open.yaml")), load(P("no-mc.yaml"))

# Layout: the server holds no webhook configuration (it is applied, and
# serving, before them); deploy/webhooks holds exactly the two.
check(not webhook_configs(server), "deploy/ renders no webhook configuration (got %s)" % kinds(server))
check(kinds(hooks) == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
      "deploy/webhooks renders the two webhook configurations and nothing else (got %s)" % kinds(hooks))
check(kinds(audit_objs) == sorted(kinds(server) + kinds(hooks)),
      "deploy/overlays/audit-only renders the server and the webhook configurations")

enforced = check_rendering([P("base.yaml"), P("webhooks.yaml")], False)
audited = check_rendering([P("audit.yaml")], True)

# Each overlay of the webhooks changes only what it says.
def strip(objs, fields):
    """The webhook configurations with the given entry fields removed."""
    out = {}
    for kind, wc in webhook_configs(objs).items():
        wc = yaml.safe_load(yaml.safe_dump(wc))
        for w in wc.get("webhooks", []):
            for f in fields:
                w.pop(f, None)
        out[kind] = wc
    return out
def policies(objs):
    return {w["name"]: w.get("failurePolicy") for wc in webhook_configs(objs).values() for w in wc["webhooks"]}
check(strip(fail_open, ["failurePolicy"]) == strip(hooks, ["failurePolicy"]),
      "fail-open differs from deploy/webhooks only in failurePolicy")
check(set(policies(fail_open).values()) == {"Ignore"}, "fail-open: every webhook fails open (%s)" % policies(fail_open))
check(strip(audit_objs, []) == strip(fail_open, []),
      "audit-only's webhook configurations are those of fail-open")
check(strip(no_mc, ["failurePolicy", "matchConditions"]) == strip(hooks, ["failurePolicy", "matchConditions"]),
      "no-match-conditions differs from deploy/webhooks only in failurePolicy and matchConditions")
check(all("matchConditions" not in w for wc in webhook_configs(no_mc).values() for w in wc["webhooks"]),
      "no-match-conditions: no webhook has matchConditions")
check(policies(no_mc) == {"stamp.rollgate.io": "Ignore", "policy.rollgate.io": "Fail",
                          "replicasets.policy.rollgate.io": "Ignore"},
      "no-match-conditions: only the ReplicaSet entry (and the mutating one) fail open (%s)" % policies(no_mc))

# The generated patch is current, and both configs list the same controllers,
# which include every built-in default.
r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/render-match-conditions.py"), "--root", ROOT,
                    "--check"], capture_output=True, text=True)
check(r.returncode == 0, "deploy/webhooks/match-conditions.yaml is what scripts/render-match-conditions.py renders "
      "from deploy/rollgate.yaml%s" % ((": " + r.stdout + r.stderr) if r.returncode else ""))
for name, body, want in (("bad-type.yaml", "lookupTimeout: 2s\ncontrollers: deployer\n", ":2: controllers: a list"),
                         ("bad-char.yaml", 'controllers: ["a\\tb"]\n', ":1: controllers: user name 'a\\tb'"),
                         ("bad-yaml.yaml", "controllers: [a\n", "invalid YAML")):
    bad = P(name)
    with open(bad, "w") as f:
        f.write(body)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/render-match-conditions.py"), "--root", ROOT,
                        "--config", bad, "--output", "-"], capture_output=True, text=True)
    check(r.returncode == 2 and r.stdout == "" and bad in r.stderr and want in r.stderr,
          "render-match-conditions refuses %s with exit 2 and %r (got %d: %s)"
          % (name, want, r.returncode, r.stderr.strip()))
defaults = RMC.default_controllers(os.path.join(ROOT, "src/core/config.c"))
check(len(defaults) >= 3, "src/core/config.c: default_controllers parsed (%s)" % defaults)
if enforced and audited:
    check(enforced[1] == audited[1], "deploy/ and audit-only configure the same controllers")
    check(set(defaults) <= set(enforced[1]),
          "the install's controllers include every built-in default (missing %s)"
          % sorted(set(defaults) - set(enforced[1])))

    # The binary agrees: with the rendered config, a direct ReplicaSet edit by
    # each listed controller is allowed, and by anyone else denied.
    cfg = P("config-base.yaml")
    review = json.load(open(os.path.join(ROOT, "examples/review-replicaset-edit.json")))
    def verdict(user):
        review["request"]["userInfo"] = {"username": user, "groups": ["system:authenticated"]}
        r = subprocess.run([BIN, "review", "--validate", "--config", cfg, "-"], input=json.dumps(review),
                           capture_output=True, text=True)
        return r.returncode
    for user in enforced[1]:
        check(verdict(user) == 0, "rollgate review: %s edits a managed ReplicaSet unjudged (a controller)" % user)
    for user in ("alice@example.com", "system:serviceaccount:kube-system:deployment-controller-evil",
                 "system:serviceaccount:ci:deployer"):
        check(verdict(user) == 1, "rollgate review: %s is judged (not a controller)" % user)

# The reports Component adds exactly the report controller's RBAC and 32Mi
# of memory, and changes nothing else.
with_reports = load(P("reports.yaml"))
if with_reports:
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
    before = {key(o): o for o in server}
    after = {key(o): o for o in with_reports}
    added = sorted(set(after) - set(before))
    check(added == [("ClusterRole", "", "rollgate-reports"), ("ClusterRoleBinding", "", "rollgate-reports")]
          and not set(before) - set(after),
          "components/reports adds a ClusterRole and a ClusterRoleBinding rollgate-reports, removes nothing (added %s)"
          % added)
    def grants_of(obj):
        return {(g, res, v) for r in obj.get("rules", []) for g in r.get("apiGroups", [])
                for res in r.get("resources", []) for v in r.get("verbs", [])}
    role = after.get(("ClusterRole", "", "rollgate-reports"), {})
    want = {("flagger.app", "canaries", v) for v in ("list", "watch")}
    want |= {("wgpolicyk8s.io", "policyreports", v) for v in ("get", "list", "create", "patch")}
    check(grants_of(role) == want and all(set(r) <= {"apiGroups", "resources", "verbs"} for r in role.get("rules", [])),
          "components/reports grants exactly canaries list,watch and policyreports get,list,create,patch (got %s)"
          % sorted(grants_of(role)))
    base_role = [o for o in server if o["kind"] == "ClusterRole"][0]
    union = grants_of(role) | grants_of(base_role)
    reads = {("apps", r, v) for r in ("deployments", "statefulsets", "daemonsets") for v in ("list", "watch")}
    reads |= {("argoproj.io", "rollouts", v) for v in ("list", "watch")} | {("apps", "deployments", "get")}
    check(reads <= union, "with components/reports, every workload kind the report controller watches is readable "
          "(missing %s)" % sorted(reads - union))
    crb = after.get(("ClusterRoleBinding", "", "rollgate-reports"), {})
    check(crb.get("roleRef", {}).get("name") == "rollgate-reports" and
          crb.get("subjects") == [{"kind": "ServiceAccount", "name": "rollgate", "namespace": "rollgate"}],
          "components/reports binds its ClusterRole to the rollgate ServiceAccount")
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    check(changed == [("Deployment", "rollgate", "rollgate")],
          "components/reports changes only the Deployment (changed %s)" % changed)
    dep_b, dep_a = before.get(("Deployment", "rollgate", "rollgate")), after.get(("Deployment", "rollgate", "rollgate"))
    if dep_b and dep_a:
        ca = dep_a["spec"]["template"]["spec"]["containers"][0]
        check(ca["resources"]["limits"] == {"memory": "128Mi"}, "components/reports raises the memory limit to 128Mi")
        dep_a = yaml.safe_load(yaml.safe_dump(dep_a))
        dep_a["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "96Mi"
        check(dep_a == dep_b, "components/reports changes nothing else in the Deployment")
    cfg = [o for o in with_reports if o["kind"] == "ConfigMap"][0]["data"]["rollgate.yaml"]
    path = P("reports-config.yaml")
    with open(path, "w") as f:
        f.write(cfg + "\nreports:\n  enabled: true\n  interval: 10s\n")
    r = subprocess.run([BIN, "check", "--config", path, P("base.yaml")], capture_output=True, text=True)
    check(r.returncode == 0, "the install's config with reports.enabled loads (exit %d: %s)" % (r.returncode, r.stderr.strip()))
else:
    check(False, "components/reports rendered")

# The image: `rollgate` in the Deployment, its tag only in the base's images:
# entry, equal to the VERSION file.
base_k = yaml.safe_load(open(os.path.join(ROOT, "deploy/base/kustomization.yaml")))
imgs = base_k.get("images") or []
check(imgs == [{"name": "rollgate", "newTag": VERSION}],
      "deploy/base/kustomization.yaml: images sets rollgate's tag to VERSION %s (got %s)" % (VERSION, imgs))
raw = [c.get("image") for d in load(os.path.join(ROOT, "deploy/base/deployment.yaml"))
       for c in d["spec"]["template"]["spec"]["containers"]]
check(raw == ["rollgate"], "deploy/base/deployment.yaml names the image rollgate, untagged (got %s)" % raw)

print("%s %d of %d properties of the rendered objects hold"
      % ("ok  " if not counts["fail"] else "FAIL", counts["ok"], counts["ok"] + counts["fail"]))
sys.exit(1 if counts["fail"] else 0)
EOF

if [ $fail -eq 0 ]; then
	echo "test_deploy: all checks passed"
else
	echo "test_deploy: FAILED" >&2
fi
exit $fail
