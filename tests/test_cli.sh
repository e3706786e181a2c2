#!/bin/sh
# shellcheck disable=SC2016 # python snippets in single quotes are meant literally
# End to end tests of the pipeline commands: check (text, JSON, SARIF),
# stamp, fn (kpt and kustomize), review and version, driven through the
# real binary. YAML edge cases are tested here by their effect on `check`.
#
# Env: ROLLGATE_BIN (the binary), ROLLGATE_ROOT (repo root, also the cwd),
# ROLLGATE_CORPUS (default $ROLLGATE_ROOT/../shared/corpus). python3 parses
# JSON; YAML is never parsed by anything but rollgate.
set -u

BIN=${ROLLGATE_BIN:?set ROLLGATE_BIN to the rollgate binary}
ROOT=${ROLLGATE_ROOT:?set ROLLGATE_ROOT to the repository root}
CORPUS=${ROLLGATE_CORPUS:-$ROOT/../shared/corpus}
cd "$ROOT" || exit 1
FX=tests/fixtures/cli

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM
OUT=$TMP/stdout
ERR=$TMP/stderr
RC=0

# ---- helpers ----

say() { printf '%s\n' "-- $*"; }

fail() {
	printf 'FAIL: %s\n' "$*"
	printf -- '--- stdout (%s)\n' "$OUT"
	head -c 20000 "$OUT" 2>/dev/null
	printf -- '--- stderr\n'
	head -c 20000 "$ERR" 2>/dev/null
	exit 1
}

# A sanitizer report fails the test whatever the exit status was.
sanitized() {
	! grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$ERR" || fail "sanitizer report"
}

# run CMD...: runs it with stdout/stderr captured; sets RC.
run() {
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
	sanitized
}

# runin FILE CMD...: the same with FILE on stdin.
runin() {
	_in=$1
	shift
	"$@" <"$_in" >"$OUT" 2>"$ERR"
	RC=$?
	sanitized
}

expect_rc() {
	[ "$RC" -eq "$1" ] || fail "exit status $RC, expected $1"
}

# has FILE TEXT: FILE holds TEXT (fixed string).
has() {
	grep -qF -- "$2" "$1" || fail "$(basename "$1") lacks: $2"
}

hasnt() {
	! grep -qF -- "$2" "$1" || fail "$(basename "$1") has unexpectedly: $2"
}

# pycheck FILE SCRIPT: runs python with J = the JSON in FILE; SCRIPT asserts.
pycheck() {
	python3 -c "
import json, sys
J = json.load(open(sys.argv[1]))
$2
" "$1" || fail "JSON assertion failed"
}

# The config-hash values in a YAML stream, one per line, in order.
hashes() {
	sed -n 's/^ *rollgate\.io\/config-hash: *//p' "$1"
}

command -v python3 >/dev/null 2>&1 || { echo "test_cli: python3 is required"; exit 1; }
[ -x "$BIN" ] || { echo "test_cli: $BIN is not executable"; exit 1; }

# ---- version, --help, usage errors ----

say "version prints the version"
run "$BIN" version
expect_rc 0
grep -Eq '^rollgate [0-9]+\.[0-9]+\.[0-9]+' "$OUT" || fail "no version line"

say "--help works on every command and exits 0"
for c in serve review check stamp fn; do
	run "$BIN" "$c" --help
	expect_rc 0
	has "$OUT" "Usage: rollgate $c"
done
run "$BIN" --help
expect_rc 0
has "$OUT" "Commands:"

say "unknown flags and commands exit 2 with a message"
for c in serve review check stamp fn; do
	run "$BIN" "$c" --no-such-flag
	expect_rc 2
	[ -s "$ERR" ] || fail "$c: nothing on stderr for an unknown flag"
done
run "$BIN" no-such-command
expect_rc 2
has "$ERR" 'unknown command "no-such-command"'
run "$BIN"
expect_rc 2

run "$BIN" version --help
expect_rc 0
has "$OUT" 'Usage: rollgate version'
run "$BIN" version --no-such-flag
expect_rc 2

say "usage errors: missing PATH, bad -o, stray fn argument, review without mode"
run "$BIN" check
expect_rc 2
has "$ERR" "no PATH given"
run "$BIN" stamp
expect_rc 2
has "$ERR" "no PATH given"
run "$BIN" check -o xml "$FX/pass"
expect_rc 2
has "$ERR" 'unknown output format "xml"'
run "$BIN" fn extra-arg
expect_rc 2
has "$ERR" 'unexpected argument "extra-arg"'
run "$BIN" review "$ROOT/examples/review-deployment.json"
expect_rc 2
has "$ERR" "--mutate or --validate"

# ---- check: text ----

say "check text: a passing set exits 0 with a summary and no finding"
run "$BIN" check "$FX/pass"
expect_rc 0
has "$OUT" "3 objects in 2 files: 0 enforce, 0 warn, 0 audit violations"
[ "$(wc -l <"$OUT")" -eq 1 ] || fail "expected only the summary line"

say "check text: enforce violations exit 1, one FILE:LINE: MODE RULE KIND/NAME: message line each"
run "$BIN" check "$FX/fail"
expect_rc 1
has "$OUT" "$FX/fail/app.yaml:2: enforce full-outage-rollout Deployment/api: maxUnavailable 100% takes down all 4 replicas at once"
has "$OUT" "$FX/fail/app.yaml:2: warn mutable-image-tag Deployment/api: "
has "$OUT" "$FX/fail/app.yaml:2: warn rollout-without-readiness Deployment/api: "
has "$OUT" "$FX/fail/app.yaml:29: enforce canary-without-readiness Rollout/checkout: "
has "$OUT" "$FX/fail/sub/history.yml:1: warn no-rollback-history Deployment/worker: "
has "$OUT" "4 objects in 2 files (1 kustomization file skipped): 2 enforce, 3 warn, 0 audit violations"
hasnt "$OUT" "README.txt"
n=$(grep -Ec '^[^:]+:[0-9]+: (enforce|warn|audit) [a-z-]+ [A-Za-z]+/[^:]+: .+' "$OUT")
[ "$n" -eq 5 ] || fail "expected 5 finding lines in the documented format, got $n"

say "check text: warn-only exits 0; a kustomization file named explicitly is read (and has no kind)"
run "$BIN" check "$FX/fail/sub"
expect_rc 0
has "$OUT" "warn no-rollback-history Deployment/worker"
run "$BIN" check "$FX/fail/sub/kustomization.yaml"
expect_rc 2
has "$ERR" "$FX/fail/sub/kustomization.yaml:2: object has no kind"

say "check text: the webhook's informational warnings are notes, one line each with FILE:LINE"
run "$BIN" check "$FX/notes/skip.yaml"
expect_rc 1
has "$OUT" "$FX/notes/skip.yaml:2: note: Deployment/sk: rollgate.io/skip: unknown rule IDs \"bogus-rule\", \"other-bogus\" ignored"
has "$OUT" "$FX/notes/skip.yaml:2: note: Deployment/sk: rollgate.io/skip cannot silence enforced rules \"full-outage-rollout\""
has "$OUT" "$FX/notes/skip.yaml:2: enforce full-outage-rollout Deployment/sk: "
run "$BIN" check -o json "$FX/notes/skip.yaml"
expect_rc 1
pycheck "$OUT" '
assert len(J["notes"]) == 2 and all(n.startswith("tests/fixtures/cli/notes/skip.yaml:2: note: ") for n in J["notes"]), J["notes"]
'

say "check reads stdin with '-'"
runin "$FX/fail/app.yaml" "$BIN" check -
expect_rc 1
has "$OUT" "<stdin>:29: enforce canary-without-readiness Rollout/checkout"

say "check --config: rule modes come from the config"
printf 'rules:\n  full-outage-rollout: warn\n  canary-without-readiness: off\n' >"$TMP/soft.yaml"
run "$BIN" check --config "$TMP/soft.yaml" "$FX/fail"
expect_rc 0
has "$OUT" "warn full-outage-rollout Deployment/api"
hasnt "$OUT" "canary-without-readiness"
printf 'rules:\n  no-such-rule: warn\n' >"$TMP/badcfg.yaml"
run "$BIN" check --config "$TMP/badcfg.yaml" "$FX/pass"
expect_rc 2
has "$ERR" "badcfg.yaml"

# ---- check: JSON ----

say "check -o json: summary and violations, structurally"
run "$BIN" check -o json "$FX/fail"
expect_rc 1
pycheck "$OUT" '
s = J["summary"]
assert J["tool"] == "rollgate", J["tool"]
assert (s["files"], s["objects"], s["enforce"], s["warn"], s["audit"]) == (2, 4, 2, 3, 0), s
assert s["passed"] is False and s["skipped"] == 1
v = J["violations"]
assert len(v) == 5, v
for x in v:
    assert set(x) >= {"file", "line", "mode", "rule", "kind", "name", "namespace", "message", "path"}, x
    assert isinstance(x["line"], int) and x["line"] >= 1
full = [x for x in v if x["rule"] == "full-outage-rollout"]
assert len(full) == 1
f = full[0]
assert (f["file"], f["line"], f["mode"], f["kind"], f["name"], f["namespace"]) == \
       ("tests/fixtures/cli/fail/app.yaml", 2, "enforce", "Deployment", "api", "shop"), f
assert f["path"] == "spec.strategy.rollingUpdate.maxUnavailable", f["path"]
c = [x for x in v if x["rule"] == "canary-without-readiness"][0]
assert (c["line"], c["kind"], c["name"]) == (29, "Rollout", "checkout"), c
assert c["path"] == "spec.template.spec.containers[0].readinessProbe", c["path"]
'
run "$BIN" check -o json "$FX/pass"
expect_rc 0
pycheck "$OUT" '
assert J["summary"]["passed"] is True and J["violations"] == [], J
assert J["summary"]["objects"] == 3
'

# ---- check: SARIF ----

say "check -o sarif: SARIF 2.1.0 as code scanning reads it"
run "$BIN" check -o sarif "$FX/fail"
expect_rc 1
pycheck "$OUT" '
assert J["version"] == "2.1.0", J.get("version")
assert "sarif" in J["$schema"] and "2.1.0" in J["$schema"], J["$schema"]
run = J["runs"][0]
drv = run["tool"]["driver"]
assert drv["name"] == "rollgate"
ids = [r["id"] for r in drv["rules"]]
assert len(ids) == 10 and len(set(ids)) == 10, ids
for r in drv["rules"]:
    assert r["shortDescription"]["text"] and "docs/rules.md" in r["help"]["text"]
    assert r["defaultConfiguration"]["level"] in ("error", "warning", "note", "none")
res = run["results"]
assert len(res) == 5, res
want = {("full-outage-rollout", "error", 2), ("mutable-image-tag", "warning", 2),
        ("rollout-without-readiness", "warning", 2), ("canary-without-readiness", "error", 29),
        ("no-rollback-history", "warning", 1)}
got = set()
for r in res:
    assert ids[r["ruleIndex"]] == r["ruleId"], r
    assert r["message"]["text"], r
    pl = r["locations"][0]["physicalLocation"]
    uri = pl["artifactLocation"]["uri"]
    assert not uri.startswith("./") and not uri.startswith("/"), uri
    assert uri.startswith("tests/fixtures/cli/fail/"), uri
    got.add((r["ruleId"], r["level"], pl["region"]["startLine"]))
assert got == want, got
canary = [r for r in res if r["ruleId"] == "canary-without-readiness"][0]
assert canary["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tests/fixtures/cli/fail/app.yaml"
assert "Rollout/checkout" in canary["message"]["text"]
'

# Microsoft's validator with GitHub's ingestion rules, when one is at hand
# (npm package @microsoft/sarif-multitool-linux).
if [ -n "${SARIF_MULTITOOL:-}" ] && [ -x "$SARIF_MULTITOOL" ]; then
	say "check -o sarif: Sarif.Multitool validate --rule-kind Gh;Sarif finds nothing"
	cp "$OUT" "$TMP/check.sarif"
	DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 "$SARIF_MULTITOOL" validate --rule-kind "Gh;Sarif" \
		-o "$TMP/validate.sarif" "$TMP/check.sarif" >"$ERR" 2>&1 || fail "Sarif.Multitool failed"
	pycheck "$TMP/validate.sarif" 'assert not J["runs"][0].get("results"), J["runs"][0]["results"]'
fi

say "check -o sarif: an absolute path becomes a file:// URI; no finding gives empty results"
run "$BIN" check -o sarif "$ROOT/$FX/fail/sub/history.yml"
expect_rc 0
pycheck "$OUT" '
r = J["runs"][0]["results"]
assert len(r) == 1
uri = r[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
assert uri.startswith("file:///") and uri.endswith("/tests/fixtures/cli/fail/sub/history.yml"), uri
assert r[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
'
run "$BIN" check -o sarif "$FX/pass"
expect_rc 0
pycheck "$OUT" 'assert J["runs"][0]["results"] == []'

say "check -o sarif: rule levels follow the config; an off rule is listed, disabled"
run "$BIN" check -o sarif --config "$TMP/soft.yaml" "$FX/fail"
expect_rc 0
pycheck "$OUT" '
rules = {r["id"]: r["defaultConfiguration"] for r in J["runs"][0]["tool"]["driver"]["rules"]}
assert rules["full-outage-rollout"] == {"enabled": True, "level": "warning"}, rules
assert rules["canary-without-readiness"]["enabled"] is False, rules
assert rules["pod-template-hash-tamper"] == {"enabled": True, "level": "error"}, rules
assert "canary-without-readiness" not in [r["ruleId"] for r in J["runs"][0]["results"]]
'

# ---- YAML edge cases through check ----

say "YAML types: replicas \"3\" is a string, 3 and 0x0 are integers"
run "$BIN" check -o json "$FX/yaml/types.yaml"
expect_rc 1
pycheck "$OUT" '
by = {}
for v in J["violations"]:
    by.setdefault(v["name"], set()).add(v["rule"])
assert by.get("plain") == {"full-outage-rollout", "no-rollback-history"}, by
assert "quoted" not in by, by
'

say "YAML anchors, aliases and merge keys expand"
run "$BIN" check -o json "$FX/yaml/anchors.yaml"
expect_rc 0
pycheck "$OUT" '
got = sorted((v["rule"], v["path"]) for v in J["violations"])
assert got == [
    ("liveness-without-startup-grace", "spec.template.spec.containers[0].livenessProbe"),
    ("liveness-without-startup-grace", "spec.template.spec.containers[1].livenessProbe"),
    ("mutable-image-tag", "spec.template.spec.containers[1].image"),
], got
'

say "YAML alias bomb: exit 2 naming the file and a line inside the bomb"
run "$BIN" check "$FX/bad/bomb.yaml"
expect_rc 2
grep -Eq "^rollgate check: $FX/bad/bomb\.yaml:(8|9|1[0-5]): .*alias" "$ERR" || fail "no file:line alias error"

say "YAML multi-document stream with empty documents"
run "$BIN" check -o json "$FX/yaml/multidoc.yaml"
expect_rc 0
pycheck "$OUT" '
assert J["summary"]["objects"] == 2, J["summary"]
v = J["violations"]
assert [(x["name"], x["line"]) for x in v] == [("second", 15)], v
'

say "List kinds (v1 List in YAML, DeploymentList in JSON): every item, at its own line"
run "$BIN" check -o json "$FX/yaml/list.yaml" "$FX/yaml/list.json"
expect_rc 1
pycheck "$OUT" '
assert J["summary"]["objects"] == 3, J["summary"]
got = sorted((v["file"].rsplit("/", 1)[1], v["line"], v["name"], v["rule"]) for v in J["violations"])
assert got == [("list.json", 5, "json-listed", "no-rollback-history"),
               ("list.yaml", 9, "listed", "pod-template-hash-tamper")], got
'

say "invalid YAML: exit 2 naming the file and the line"
run "$BIN" check "$FX/pass" "$FX/bad/invalid.yaml"
expect_rc 2
has "$ERR" "rollgate check: $FX/bad/invalid.yaml:12: did not find expected ',' or ']'"
[ ! -s "$OUT" ] || fail "a report was printed for invalid input"
run "$BIN" check "$FX/bad/tab.yaml"
expect_rc 2
has "$ERR" "$FX/bad/tab.yaml:5: "
run "$BIN" check "$FX/bad/dupkey.yaml"
expect_rc 2
has "$ERR" "$FX/bad/dupkey.yaml:7: duplicate key"

say "bad input gets a clear error: not a mapping, no kind, no apiVersion, bad ConfigMap data"
run "$BIN" check "$FX/bad/notmapping.yaml"
expect_rc 2
has "$ERR" "$FX/bad/notmapping.yaml:5: a manifest must be a mapping"
run "$BIN" check "$FX/bad/scalar.yaml"
expect_rc 2
has "$ERR" "$FX/bad/scalar.yaml:1: a manifest must be a mapping"
run "$BIN" check "$FX/bad/nokind.yaml"
expect_rc 2
has "$ERR" "$FX/bad/nokind.yaml:5: object has no kind"
run "$BIN" check "$FX/bad/noapiversion.json"
expect_rc 2
has "$ERR" "$FX/bad/noapiversion.json:1: object has no apiVersion"

say "a ConfigMap or Secret lookups cannot use (bad data, SOPS-encrypted) is a note for check"
run "$BIN" check "$FX/bad/bool-data.yaml" "$FX/stamp/sops"
expect_rc 0
has "$OUT" "$FX/bad/bool-data.yaml:1: note: ConfigMap/flags: not used for lookups: data[\"BETA\"]: expected a string"
has "$OUT" "$FX/stamp/sops/secret.enc.yaml:3: note: Secret/db: not used for lookups: data[\"password\"]: invalid base64"

say "a nonexistent path exits 2; an empty directory and an empty file are 0 objects"
run "$BIN" check "$FX/no-such-file.yaml"
expect_rc 2
has "$ERR" "$FX/no-such-file.yaml: No such file or directory"
mkdir "$TMP/empty"
run "$BIN" check "$TMP/empty"
expect_rc 0
has "$OUT" "0 objects in 0 files"
: >"$TMP/empty.yaml"
run "$BIN" check "$TMP/empty.yaml"
expect_rc 0
has "$OUT" "0 objects in 1 file"

# ---- stamp ----

say "stamp: same hash as the webhook (review --mutate) for the same objects"
python3 - "$FX/stamp/deploy.json" >"$TMP/review.json" <<'EOF'
import json, sys
obj = json.load(open(sys.argv[1]))
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "6f1a7c52-2b1e-4c8e-9a0d-3f2b1c0d9e8f",
    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
    "operation": "CREATE", "userInfo": {"username": "alice@example.com"}, "object": obj}}))
EOF
run "$BIN" review --mutate --objects "$FX/stamp/objects" "$TMP/review.json"
expect_rc 0
python3 - "$OUT" >"$TMP/webhook.hash" <<'EOF' || fail "no config-hash in the webhook's patch"
import base64, json, sys
r = json.load(open(sys.argv[1]))["response"]
assert r["allowed"] is True and r["patchType"] == "JSONPatch", r
for op in json.loads(base64.b64decode(r["patch"])):
    v = op.get("value")
    if op["path"] == "/spec/template/metadata/annotations":
        print(v["rollgate.io/config-hash"])
    elif op["path"].endswith("/rollgate.io~1config-hash"):
        print(v)
EOF
WEBHOOK_HASH=$(cat "$TMP/webhook.hash")
case $WEBHOOK_HASH in sha256:????????????????????????????????????????????????????????????????) ;;
*) fail "webhook hash looks wrong: '$WEBHOOK_HASH'" ;;
esac
run "$BIN" stamp --objects "$FX/stamp/objects" "$FX/stamp/deploy.json"
expect_rc 0
[ "$(hashes "$OUT")" = "$WEBHOOK_HASH" ] || fail "stamp gave $(hashes "$OUT"), webhook $WEBHOOK_HASH"

say "stamp: the hash is the one docs/confighash.md defines (computed here with sha256sum)"
h() { sha256sum | cut -d' ' -f1; }
H1=$(printf 'info' | h)
H2=$(printf 'feature.checkout=true\ncache.ttl=30s\n' | h)
H3=$(printf 'false' | h)
H4=$(printf '\336\255\276\357' | h)
H5=$(printf 'example-only-not-a-real-password' | h)
STREAM="ConfigMap/web-config\n2\nLOG_LEVEL\n$H1\napp.properties\n$H2\nConfigMap/web-flags\n2\nNEW_CART\n$H3\nblob\n$H4\nSecret/not-there\n-\nSecret/web-db\n1\nDB_PASSWORD\n$H5\n"
# shellcheck disable=SC2059 # the stream is the format: its \n are the newlines
[ "sha256:$(printf "$STREAM" | h)" = "$WEBHOOK_HASH" ] || fail "hash differs from the documented stream"

say "stamp: objects among the PATHs count like --objects; other namespaces do not"
run "$BIN" stamp "$FX/stamp/objects" "$FX/stamp/deploy.json"
expect_rc 0
[ "$(hashes "$OUT")" = "$WEBHOOK_HASH" ] || fail "in-set objects gave another hash"
run "$BIN" stamp "$FX/stamp/deploy.json"
expect_rc 0
if [ -z "$(hashes "$OUT")" ] || [ "$(hashes "$OUT")" = "$WEBHOOK_HASH" ]; then
	fail "without the objects the Deployment should still be stamped, with another hash"
fi
has "$ERR" 'configmap "web-config" referenced by container "web" does not exist yet'
hasnt "$ERR" 'not-there'

say "stamp: values, key order and document order kept; only the annotation is added"
run "$BIN" stamp "$FX/stamp/app.yaml"
expect_rc 0
cp "$OUT" "$TMP/app.stamped"
diff "$FX/stamp/app.yaml" "$TMP/app.stamped" >"$TMP/app.diff"
grep '^[<>]' "$TMP/app.diff" >"$TMP/app.changes"
[ "$(grep -c '^<' "$TMP/app.changes")" -eq 0 ] || fail "stamp changed existing lines: $(cat "$TMP/app.diff")"
[ "$(grep -c '^>' "$TMP/app.changes")" -eq 2 ] || fail "expected 2 added lines: $(cat "$TMP/app.diff")"
has "$TMP/app.changes" ">       annotations:"
grep -Eq '^>         rollgate\.io/config-hash: sha256:[0-9a-f]{64}$' "$TMP/app.changes" || fail "no hash line added"

say "stamp: stamping stamped output changes nothing; stamping twice is identical"
run "$BIN" stamp "$TMP/app.stamped"
expect_rc 0
cmp -s "$OUT" "$TMP/app.stamped" || fail "restamping changed the output"
run "$BIN" stamp "$FX/stamp/app.yaml"
cmp -s "$OUT" "$TMP/app.stamped" || fail "two stamps of one input differ"

say "stamp: unusual key order and flow style keep their order; YAML 1.1 values are resolved"
run "$BIN" stamp "$FX/stamp/odd.yaml"
expect_rc 0
cp "$OUT" "$TMP/odd.stamped"
python3 - "$TMP/odd.stamped" <<'EOF' || fail "key or document order not kept"
import sys
lines = open(sys.argv[1]).read().split("\n")
top = [l.split(":")[0] for l in lines if l and not l.startswith((" ", "- "))]
assert top == ["spec", "metadata", "apiVersion", "kind", "---", "data", "metadata", "kind", "apiVersion"], top
def pos(s):
    return next(i for i, l in enumerate(lines) if l.strip().startswith(s))
assert lines.index("    spec:") < lines.index("    metadata:"), "template keys reordered"
assert pos("volumes:") < pos("containers:"), "pod spec keys reordered"
assert pos("zeta:") < pos("alpha:") < pos("rollgate.io/config-hash:"), "annotation order"
assert "  replicas: 16" in lines, "0x10 should read as 16"
for want in ("  'on': 'yes'", "  'off': 'no'", "  octal: '0777'", "  float: '1e3'"):
    assert want in lines, want
EOF
run "$BIN" stamp "$TMP/odd.stamped"
cmp -s "$OUT" "$TMP/odd.stamped" || fail "restamping odd.yaml changed it"

say "stamp: JSON in, YAML out; bad input exits 2 with file:line"
run "$BIN" stamp "$FX/pass/web.json"
expect_rc 0
has "$OUT" "kind: StatefulSet"
run "$BIN" stamp "$FX/bad/invalid.yaml"
expect_rc 2
has "$ERR" "$FX/bad/invalid.yaml:12:"

say "stamp: a workload using a Secret whose data cannot be read is left unstamped, with a warning"
run "$BIN" stamp "$FX/stamp/sops"
expect_rc 0
[ "$(hashes "$OUT" | wc -l)" -eq 1 ] || fail "expected only uses-config stamped"
python3 - "$OUT" <<'EOF' || fail "the wrong workload was stamped"
import re, sys
for doc in re.split(r"(?m)^---$", open(sys.argv[1]).read()):
    if "name: uses-config" in doc:
        assert "rollgate.io/config-hash: sha256:" in doc
    if "name: uses-secret" in doc:
        assert "config-hash" not in doc
EOF
has "$ERR" "$FX/stamp/sops/apps.yaml:9: warning: config hash not stamped: Secret \"db\" ($FX/stamp/sops/secret.enc.yaml:3) cannot be used: data[\"password\"]: invalid base64"
run "$BIN" stamp --objects "$FX/no-such-dir" "$FX/stamp/deploy.json"
expect_rc 2
has "$ERR" "no-such-dir"

# ---- review ----

say "review --validate: the verdict check gives, as the server's AdmissionReview response"
python3 - "$TMP/outage.json" "$TMP/outage-review.json" <<'EOF'
import json, sys
obj = {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"name": "outage", "namespace": "shop"},
       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "o"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": "100%"}},
                "template": {"metadata": {"labels": {"app": "o"}},
                             "spec": {"containers": [{"name": "o", "image": "shop/o:latest",
                                                      "readinessProbe": {"tcpSocket": {"port": 80}}}]}}}}
json.dump(obj, open(sys.argv[1], "w"))
json.dump({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "0b5c1a9e-7a0e-4f5e-8d47-2f7d9c1e6b3a",
    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "name": "outage", "namespace": "shop", "operation": "CREATE",
    "userInfo": {"username": "alice@example.com"}, "object": obj}}, open(sys.argv[2], "w"))
EOF
run "$BIN" check -o json "$TMP/outage.json"
expect_rc 1
pycheck "$OUT" '
assert sorted((v["rule"], v["mode"]) for v in J["violations"]) == \
    [("full-outage-rollout", "enforce"), ("mutable-image-tag", "warn")], J["violations"]
'
run "$BIN" review --validate "$TMP/outage-review.json"
expect_rc 1
pycheck "$OUT" '
assert (J["apiVersion"], J["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
r = J["response"]
assert r["uid"] == "0b5c1a9e-7a0e-4f5e-8d47-2f7d9c1e6b3a" and r["allowed"] is False, r
assert r["status"]["code"] == 403 and r["status"]["message"].startswith("full-outage-rollout: "), r
assert any(w.startswith("mutable-image-tag: ") for w in r["warnings"]), r
'
runin "$TMP/outage-review.json" "$BIN" review --validate -
expect_rc 1

say "review: an invalid AdmissionReview exits 2 with the server's 400 reason"
printf '{"kind": "AdmissionReview"}' >"$TMP/bad-review.json"
run "$BIN" review --validate "$TMP/bad-review.json"
expect_rc 2
has "$ERR" "HTTP 400"
run "$BIN" review --mutate "$TMP/no-such-review.json"
expect_rc 2
has "$ERR" "no-such-review.json"

# ---- fn ----

say "fn: ResourceList in, stamped ResourceList with results out; exit 1 on enforce"
runin "$FX/fn/resourcelist.yaml" "$BIN" fn
expect_rc 1
has "$OUT" "kind: ResourceList"
grep -Eq '^ +rollgate\.io/config-hash: sha256:[0-9a-f]{64}$' "$OUT" || fail "item not stamped"
python3 - "$OUT" <<'EOF' || fail "results not as expected"
import sys
text = open(sys.argv[1]).read()
res = text.split("\nresults:\n", 1)[1]
items = ["- " + r for r in res.split("\n- ")]
items[0] = items[0][2:]
def field(item, key):
    for l in item.split("\n"):
        l = l.strip().lstrip("- ")
        if l.startswith(key + ": "):
            return l[len(key) + 2:].strip("'")
err = [i for i in items if field(i, "severity") == "error"]
assert len(err) == 1, items
e = err[0]
assert field(e, "rule") == "full-outage-rollout"
assert field(e, "message").startswith("full-outage-rollout: maxUnavailable 2 takes down all 2 replicas")
assert "resourceRef:" in e and field(e, "kind") == "Deployment" and field(e, "name") == "fn-web"
assert field(e, "namespace") == "shop"
assert "field:" in e and "path: spec.strategy.rollingUpdate.maxUnavailable" in e
assert "file:" in e and "path: apps/web.yaml" in e and field(e, "index") == "1"
assert any(field(i, "rule") == "mutable-image-tag" and field(i, "severity") == "warning" for i in items)
assert "functionConfig:" in text, "functionConfig dropped"
EOF

say "fn: the hash fn stamps is the one stamp gives"
sed -n 's/^ *rollgate\.io\/config-hash: *//p' "$OUT" >"$TMP/fn.hash"
printf 'apiVersion: v1\nkind: List\nitems:\n' >"$TMP/fnlist.yaml"
sed -n '/^items:$/,/^functionConfig:$/p' "$FX/fn/resourcelist.yaml" | sed '1d;$d' >>"$TMP/fnlist.yaml"
run "$BIN" stamp "$TMP/fnlist.yaml"
expect_rc 0
[ "$(hashes "$OUT")" = "$(cat "$TMP/fn.hash")" ] || fail "fn and stamp disagree"

say "fn: a plain YAML stream (legacy exec plugins) is stamped as a stream, results on stderr"
runin "$FX/stamp/app.yaml" "$BIN" fn
expect_rc 0
cmp -s "$OUT" "$TMP/app.stamped" || fail "fn on a stream differs from stamp"
runin "$FX/fail/app.yaml" "$BIN" fn
expect_rc 1
has "$ERR" "<stdin>:2: error full-outage-rollout Deployment/api: "
has "$OUT" "kind: Rollout"

say "fn: a workload using an unreadable Secret is left unstamped with a warning result"
{ cat "$FX/stamp/sops/secret.enc.yaml"; echo "---"; cat "$FX/stamp/sops/apps.yaml"; } >"$TMP/sops.yaml"
runin "$TMP/sops.yaml" "$BIN" fn
expect_rc 0
[ "$(hashes "$OUT" | wc -l)" -eq 1 ] || fail "expected only uses-config stamped"
has "$ERR" 'warning config-hash Deployment/uses-secret: config hash not stamped: Secret "db"'
hasnt "$ERR" "does not exist yet"

say "fn: invalid input exits 2"
printf 'apiVersion: config.kubernetes.io/v9\nkind: ResourceList\nitems: []\n' >"$TMP/rl-bad.yaml"
runin "$TMP/rl-bad.yaml" "$BIN" fn
expect_rc 2
has "$ERR" "expected a config.kubernetes.io/v1 ResourceList"
printf 'apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: {}\n' >"$TMP/rl-bad.yaml"
runin "$TMP/rl-bad.yaml" "$BIN" fn
expect_rc 2
has "$ERR" "items must be a list"
runin "$FX/bad/invalid.yaml" "$BIN" fn
expect_rc 2
has "$ERR" "<stdin>:12:"

# ---- kpt ----

if command -v kpt >/dev/null 2>&1; then
	say "kpt fn eval DIR --exec: stamps the package and reports results"
	KPT=$TMP/kpt
	mkdir -p "$KPT/pkg/objects"
	cp "$FX/stamp/app.yaml" "$KPT/pkg/app.yaml"
	cp "$FX/stamp/objects/"*.yaml "$KPT/pkg/objects/"
	printf 'apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n' >"$KPT/pkg/Kptfile"
	run kpt fn eval "$KPT/pkg" --exec "$BIN fn" --results-dir "$KPT/results"
	expect_rc 0
	grep -Eq '^ +rollgate\.io/config-hash: sha256:[0-9a-f]{64}$' "$KPT/pkg/app.yaml" ||
		fail "kpt did not write the hash into app.yaml: $(cat "$KPT/pkg/app.yaml")"
	[ "$(hashes "$KPT/pkg/app.yaml")" = "$(hashes "$TMP/app.stamped")" ] || fail "kpt's hash differs from stamp's"
	has "$KPT/results/results.yaml" "exitCode: 0"
	has "$KPT/pkg/Kptfile" "kind: Kptfile"

	say "kpt fn eval: an enforce violation fails the function with results"
	cp "$FX/fail/app.yaml" "$KPT/pkg/fail.yaml"
	run kpt fn eval "$KPT/pkg" --exec "$BIN fn" --results-dir "$KPT/results"
	[ "$RC" -ne 0 ] || fail "kpt succeeded despite an enforce violation"
	R=$KPT/results/results.yaml
	cp "$R" "$OUT"
	has "$R" "exitCode: 1"
	has "$R" "severity: error"
	has "$R" "rule: full-outage-rollout"
	has "$R" "path: spec.strategy.rollingUpdate.maxUnavailable"
	has "$R" "path: fail.yaml"
	has "$R" "rule: canary-without-readiness"
else
	echo "SKIP: kpt not installed; kpt fn eval not tested"
fi

# ---- kustomize ----

# A copy of the fixtures: the exec path is relative to the kustomization dir.
KZ=$TMP/kustomize
cp -R "$FX/kustomize" "$KZ"
printf '#!/bin/sh\nexec "%s" fn\n' "$BIN" >"$KZ/exec-fn/rollgate-fn.sh"
chmod +x "$KZ/exec-fn/rollgate-fn.sh"
PLUGIN_DIR=$KZ/plugins/rollgate.io/v1/rollgatestamp
mkdir -p "$PLUGIN_DIR"
# Legacy exec plugins get the config file as $1: fn takes no argument.
printf '#!/bin/sh\nexec "%s" fn\n' "$BIN" >"$PLUGIN_DIR/RollgateStamp"
chmod +x "$PLUGIN_DIR/RollgateStamp"

# The hash the webhook gives the built output: stamp over kustomize's build
# without any function (final names, hash suffixes included).
kz_expect() {
	"$@" "$KZ/base" >"$TMP/kz-base.yaml" 2>"$ERR" || fail "kustomize build of the base failed"
	"$BIN" stamp - <"$TMP/kz-base.yaml" >"$TMP/kz-expect.yaml" 2>"$ERR" || fail "stamp of the base build failed"
}

KUSTOMIZE=
if command -v kustomize >/dev/null 2>&1; then
	KUSTOMIZE="kustomize build"
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help 2>&1 | grep -q -- '--enable-exec'; then
	KUSTOMIZE="kubectl kustomize"
fi
if [ -n "$KUSTOMIZE" ]; then
	say "kustomize exec KRM function ($KUSTOMIZE --enable-alpha-plugins --enable-exec)"
	# shellcheck disable=SC2086 # "kustomize build" is two words
	kz_expect $KUSTOMIZE
	# shellcheck disable=SC2086
	run $KUSTOMIZE --enable-alpha-plugins --enable-exec "$KZ/exec-fn"
	expect_rc 0
	[ "$(hashes "$OUT" | head -n 1)" = "$(hashes "$TMP/kz-expect.yaml" | head -n 1)" ] ||
		fail "the exec function's hash differs from the webhook's"
	hasnt "$OUT" "RollgateStamp"
else
	echo "SKIP: no kustomize with --enable-exec (kubectl kustomize has none: kubernetes/kubectl#1498," \
		"and skips exec KRM functions silently); the legacy exec plugin is tested instead"
fi

if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help 2>&1 | grep -q -- '--enable-alpha-plugins'; then
	say "kubectl kustomize --enable-alpha-plugins: rollgate fn as a legacy exec transformer"
	kz_expect kubectl kustomize
	run env KUSTOMIZE_PLUGIN_HOME="$KZ/plugins" kubectl kustomize --enable-alpha-plugins "$KZ/legacy"
	expect_rc 0
	cp "$OUT" "$TMP/kz-legacy.yaml"
	# app uses a plain ConfigMap: stamped with the webhook's hash. gen uses a
	# generated one whose name suffix comes later: left to the webhook.
	[ "$(hashes "$TMP/kz-legacy.yaml" | wc -l)" -eq 1 ] || fail "expected exactly one stamped workload"
	[ "$(hashes "$TMP/kz-legacy.yaml")" = "$(hashes "$TMP/kz-expect.yaml" | head -n 1)" ] ||
		fail "the plugin's hash differs from the webhook's"
	[ "$(hashes "$TMP/kz-expect.yaml" | wc -l)" -eq 2 ] || fail "stamp of the final build should stamp both"
	run "$BIN" stamp - <"$TMP/kz-legacy.yaml"
	[ "$(hashes "$OUT" | head -n 1)" = "$(hashes "$TMP/kz-legacy.yaml")" ] || fail "restamping changed app's hash"

	say "kubectl kustomize: an enforce violation fails the build with the finding"
	run env KUSTOMIZE_PLUGIN_HOME="$KZ/plugins" kubectl kustomize --enable-alpha-plugins "$KZ/legacy-fail"
	[ "$RC" -ne 0 ] || fail "kustomize succeeded despite an enforce violation"
	has "$ERR" "error full-outage-rollout Deployment/outage: maxUnavailable 100% takes down all 2 replicas"
	hasnt "$ERR" "MISSING"
else
	echo "SKIP: kubectl with kustomize plugins not installed; kustomize not tested"
fi

# ---- the shared corpus ----

if [ -d "$CORPUS" ]; then
	say "check over the corpus: no invalid input; verdicts per subdirectory"
	: >"$TMP/corpus.list"
	for d in "$CORPUS"/*/*/; do
		[ -d "$d" ] || continue
		name=$(basename "$(dirname "$d")")/$(basename "$d")
		json=$TMP/corpus-$(echo "$name" | tr / -).json
		run "$BIN" check -o json "$d"
		[ "$RC" -ne 2 ] || fail "check $d exited 2"
		cp "$OUT" "$json"
		printf '%s %s\n' "$name" "$json" >>"$TMP/corpus.list"
	done
	python3 - "$TMP/corpus.list" <<'EOF' || fail "could not read the corpus reports"
import json, sys
rows, modes, total = [], ("enforce", "warn", "audit"), {}
for line in open(sys.argv[1]):
    name, path = line.split()
    J = json.load(open(path))
    counts = {}
    for v in J["violations"]:
        counts[(v["rule"], v["mode"])] = counts.get((v["rule"], v["mode"]), 0) + 1
        total[(v["rule"], v["mode"])] = total.get((v["rule"], v["mode"]), 0) + 1
    s = J["summary"]
    rows.append((name, s["files"], s["objects"], counts))
print("corpus verdicts (rule: count by mode)")
for name, files, objects, counts in rows:
    print("  %-28s %3d files %4d objects" % (name, files, objects))
    for (rule, mode), n in sorted(counts.items()):
        print("      %-32s %-8s %3d" % (rule, mode, n))
print("  all:")
for (rule, mode), n in sorted(total.items()):
    print("      %-32s %-8s %3d" % (rule, mode, n))
EOF

	say "stamp over the corpus with stamp: {mode: all}: every workload with references gets a hash"
	printf 'stamp: {mode: all}\n' >"$TMP/all.yaml"
	run "$BIN" stamp --config "$TMP/all.yaml" "$CORPUS"
	[ "$RC" -eq 0 ] || fail "stamp over the corpus exited $RC"
	python3 - "$OUT" <<'EOF' || fail "a workload that references a ConfigMap or Secret was not stamped"
import re, sys
stamped = {"apps/v1": ("Deployment", "StatefulSet", "DaemonSet"), "argoproj.io/v1alpha1": ("Rollout",)}
ref = re.compile(r"(?m)^ *(?:- )?(configMapRef|secretRef|configMapKeyRef|secretKeyRef|configMap|secret|projected):$")
seen, missing = 0, []
for doc in re.split(r"(?m)^---$", open(sys.argv[1]).read()):
    api = re.search(r"(?m)^apiVersion: (\S+)$", doc)
    kind = re.search(r"(?m)^kind: (\S+)$", doc)
    name = re.search(r"(?m)^  name: (.+)$", doc)
    if not api or not kind or kind.group(1) not in stamped.get(api.group(1), ()):
        continue
    if not re.search(r"(?m)^  template:$", doc) or not ref.search(doc):
        continue
    seen += 1
    if not re.search(r"(?m)^ +rollgate\.io/config-hash: sha256:[0-9a-f]{64}$", doc):
        missing.append("%s/%s" % (kind.group(1), name.group(1) if name else "?"))
print("  %d workloads reference a ConfigMap or Secret; %d unstamped %s" % (seen, len(missing), missing))
assert seen >= 10 and not missing
EOF
else
	echo "SKIP: no corpus at $CORPUS"
fi

# ---- check and /validate report the same rules ----

say "check and review --validate: 40 containers breaking several rules, every rule in both, warnings within budget"
cat >"$TMP/modes.yaml" <<'EOF'
rules:
  mutable-image-tag: {mode: audit}
  no-rollback-history: {mode: enforce}
EOF
python3 - "$TMP/many.json" "$TMP/many-review.json" <<'EOF'
import json, sys
containers = [{"name": "c%d-\u00fc\u20ac" % i, "image": "shop/app" if i % 2 else "shop/app:latest",
               "livenessProbe": {"tcpSocket": {"port": 80}}} for i in range(40)]
obj = {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"name": "many", "namespace": "shop"},
       "spec": {"replicas": 4, "revisionHistoryLimit": 0, "selector": {"matchLabels": {"app": "m"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": "100%"}},
                "template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": containers}}}}
json.dump(obj, open(sys.argv[1], "w"), ensure_ascii=False)
json.dump({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "5d7f3a52-40c1-4a0e-9a43-6f0f2a5d8e11",
    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "name": "many", "namespace": "shop", "operation": "CREATE",
    "userInfo": {"username": "alice@example.com"}, "object": obj}}, open(sys.argv[2], "w"), ensure_ascii=False)
EOF
for cfg in "" "$TMP/modes.yaml"; do
	set -- "$TMP/many.json"
	[ -n "$cfg" ] && set -- --config "$cfg" "$@"
	run "$BIN" check -o json "$@"
	cp "$OUT" "$TMP/many-check.json"
	set -- "$TMP/many-review.json"
	[ -n "$cfg" ] && set -- --config "$cfg" "$@"
	run "$BIN" review --validate "$@"
	[ "$RC" -le 1 ] || fail "review exited $RC"
	python3 - "$TMP/many-check.json" "$OUT" <<'EOF' || fail "check and review --validate disagree"
import json, sys
check = json.load(open(sys.argv[1]))
resp = json.load(open(sys.argv[2]))["response"]
rules = {v["rule"] for v in check["violations"]}
assert len(rules) >= 5, rules
warnings = resp.get("warnings", [])
message = resp.get("status", {}).get("message", "")
audit = resp.get("auditAnnotations", {})
shown = {r for r in rules if any(w.startswith(r + ": ") for w in warnings)
         or message.startswith(r + ": ") or ("; " + r + ": ") in message or r in audit}
assert shown == rules, (sorted(rules), sorted(shown), warnings)
# Only rules that check reports, and nothing the API server would drop or cut.
named = {w.split(": ", 1)[0] for w in warnings}
assert named <= rules, named
assert len(warnings) == len(set(warnings)), warnings
assert sum(len(w) for w in warnings) <= 4096, sum(len(w) for w in warnings)
assert all(len(w) <= 256 and w.isprintable() for w in warnings), warnings
assert any(w.endswith(" more violations not shown") for w in warnings), warnings
assert any("\u00fc\u20ac" in w for w in warnings), warnings
EOF
done

# ---- check --cluster against the API double ----
#
# build/tests/test_reports --serve DIR is a standalone kube-apiserver double
# (tests/apidouble.c) serving DIR/objects.json.

DOUBLE=$(dirname "$BIN")/tests/test_reports
CRDS="$CORPUS/crds"
# A python with PyYAML and jsonschema (Debian: python3-yaml, python3-jsonschema).
SCHEMA_PY=""
for py in python3 /usr/bin/python3; do
	if "$py" -c 'import yaml, jsonschema' 2>/dev/null; then
		SCHEMA_PY=$py
		break
	fi
done
DOUBLE_PID=""

double_start() { # OPTIONS...: serves $TMP/cluster/objects.json
	rm -f "$TMP/cluster/ready" "$TMP/cluster/stats.json"
	"$DOUBLE" --serve "$TMP/cluster" "$@" 2>"$TMP/double.err" &
	DOUBLE_PID=$!
	_i=0
	while [ ! -f "$TMP/cluster/ready" ]; do
		_i=$((_i + 1))
		[ $_i -le 300 ] || fail "the API double did not start: $(cat "$TMP/double.err")"
		kill -0 "$DOUBLE_PID" 2>/dev/null || fail "the API double exited: $(cat "$TMP/double.err")"
		sleep 0.1
	done
}

double_stop() {
	kill "$DOUBLE_PID" 2>/dev/null
	wait "$DOUBLE_PID" 2>/dev/null
	DOUBLE_PID=""
}

# validate FILE: every report in FILE against the CRDs' own schemas.
validate() {
	if [ -z "$SCHEMA_PY" ]; then
		say "SKIP schema validation: no python3 with yaml and jsonschema (scripts/deps.sh installs python3-jsonschema)"
	elif [ ! -d "$CRDS" ]; then
		say "SKIP schema validation: no corpus at $CORPUS (set ROLLGATE_CORPUS)"
	else
		"$SCHEMA_PY" tests/crdschema.py "$CRDS/wgpolicyk8s.io_v1alpha2_policyreports.yaml" \
			"$CRDS/openreports.io_reports.yaml" -- "$1" >"$TMP/schema.out" 2>&1 ||
			{ cat "$TMP/schema.out"; fail "reports do not validate against the CRD schemas"; }
		cat "$TMP/schema.out"
	fi
}

if [ ! -x "$DOUBLE" ]; then
	say "SKIP check --cluster: $DOUBLE not built (make $(dirname "$BIN")/tests/test_reports)"
else
	mkdir -p "$TMP/cluster"
	certs/make-dev-certs.sh "$TMP/cluster" --force >/dev/null 2>&1 || fail "cannot make certificates"
	trap '[ -n "$DOUBLE_PID" ] && kill "$DOUBLE_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
	KC=$TMP/cluster/kubeconfig
	python3 - "$TMP/cluster/objects.json" <<'EOF'
import json, sys
def wl(name, ns, image="shop/web:1.4.2", probes=True, spec=None, ann=None, res="deployments"):
    c = {"name": "app", "image": image}
    if probes:
        c["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    s = {"replicas": 2, "selector": {"matchLabels": {"app": name}},
         "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [c]}}}
    s.update(spec or {})
    return {"resource": res, "namespace": ns, "name": name,
            "object": {"metadata": {"annotations": ann} if ann else {}, "spec": s}}
objs = [
    wl("web", "shop", image="nginx:latest", probes=False),
    wl("api", "shop"),
    wl("outage", "shop", spec={"replicas": 4, "strategy": {"rollingUpdate": {"maxUnavailable": "100%"}}}),
    wl("legacy", "shop", image="busybox", ann={"rollgate.io/skip": "mutable-image-tag"}),
    wl("podinfo", "shop", probes=False, spec={"strategy": {"type": "Recreate"}}),
    wl("db", "shop", probes=False, res="statefulsets"),
    wl("agent", "shop", res="daemonsets"),
    {"resource": "replicasets", "namespace": "shop", "name": "web-5d4f8c7b9",
     "object": {"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                   "name": "web", "uid": "1", "controller": True}]},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"}},
                                      "spec": {"containers": [{"name": "app", "image": "nginx:latest"}]}}}}},
    {"resource": "rollouts", "namespace": "shop", "name": "checkout",
     "object": {"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "checkout"}},
                         "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "5m"}}]}},
                         "template": {"metadata": {"labels": {"app": "checkout"}},
                                      "spec": {"containers": [{"name": "app", "image": "shop/checkout:2.0.0"}]}}}}},
    {"resource": "canaries", "namespace": "shop", "name": "podinfo",
     "object": {"spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                         "analysis": {"interval": "1m", "threshold": 5}}}},
    wl("system", "kube-system", image="nginx", probes=False),
] + [wl("svc-%d" % i, "pages", image="pages/svc:%d.0" % i) for i in range(7)]
json.dump(objs, open(sys.argv[1], "w"))
EOF
	double_start

	say "check --cluster: what in the cluster breaks the rules, named namespace/Kind/name"
	run "$BIN" check --cluster --kubeconfig "$KC"
	expect_rc 1
	has "$OUT" 'shop/Deployment/outage: enforce full-outage-rollout: maxUnavailable 100% takes down all 4 replicas'
	has "$OUT" 'shop/Deployment/web: warn mutable-image-tag: container "app" image "nginx:latest"'
	has "$OUT" 'shop/Deployment/web: warn rollout-without-readiness:'
	has "$OUT" 'shop/StatefulSet/db: warn rollout-without-readiness:'
	has "$OUT" 'shop/Rollout/checkout: enforce canary-without-readiness:'
	# The Canary's target is found among the Deployments listed.
	has "$OUT" 'shop/Canary/podinfo: enforce canary-without-readiness: target Deployment "podinfo": container "app"'
	has "$OUT" 'note: replicaset-direct-edit not judged from a snapshot'
	hasnt "$OUT" 'replicaset-direct-edit: ReplicaSet'
	hasnt "$OUT" 'kube-system/'
	hasnt "$OUT" 'shop/Deployment/legacy:'
	has "$OUT" '18 objects in the cluster: 3 enforce, 3 warn, 0 audit violations'

	say "check --cluster -o json: the same findings, each object named with its uid"
	run "$BIN" check --cluster --kubeconfig "$KC" -o json
	expect_rc 1
	pycheck "$OUT" '
s = J["summary"]
assert s["source"] == "cluster" and s["objects"] == 18, s
assert (s["enforce"], s["warn"], s["audit"], s["passed"]) == (3, 3, 0, False), s
v = [x for x in J["violations"] if x["object"] == "shop/Deployment/web"]
assert {x["rule"] for x in v} == {"mutable-image-tag", "rollout-without-readiness"}, v
assert all(x["uid"] and x["apiVersion"] == "apps/v1" and x["namespace"] == "shop" for x in v), v
assert "file" not in v[0], v[0]
assert any("not judged from a snapshot" in n for n in J["notes"]), J["notes"]'

	say "check --cluster -o sarif: results with the object as their logical location"
	run "$BIN" check --cluster --kubeconfig "$KC" -o sarif
	expect_rc 1
	pycheck "$OUT" '
res = J["runs"][0]["results"]
assert len(res) == 6, len(res)
names = {r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] for r in res}
assert "shop/Deployment/outage:spec.strategy.rollingUpdate.maxUnavailable" in names, names
assert all("physicalLocation" not in r["locations"][0] for r in res)'

	say "check --cluster -o policyreport: one PolicyReport per namespace, valid against the CRD"
	run "$BIN" check --cluster --kubeconfig "$KC" -o policyreport
	expect_rc 1
	has "$ERR" 'note: replicaset-direct-edit not judged from a snapshot'
	cp "$OUT" "$TMP/policyreport.json"
	validate "$TMP/policyreport.json"
	pycheck "$OUT" '
assert J["apiVersion"] == "v1" and J["kind"] == "List", J.get("kind")
reps = {r["metadata"]["namespace"]: r for r in J["items"]}
assert sorted(reps) == ["pages", "shop"], sorted(reps)    # kube-system is exempt
for r in reps.values():
    assert r["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and r["kind"] == "PolicyReport"
    assert r["metadata"]["name"] == "rollgate"
    assert r["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rollgate"
    assert r["metadata"]["annotations"]["rollgate.io/results-digest"].startswith("sha256:")
    counts = {}
    for x in r["results"]:
        counts[x["result"]] = counts.get(x["result"], 0) + 1
        assert x["policy"] == "rollgate" and x["source"] == "rollgate"
        assert x["timestamp"]["seconds"] > 1600000000 and x["timestamp"]["nanos"] == 0
        ref = x["resources"]
        assert len(ref) == 1 and ref[0]["namespace"] == r["metadata"]["namespace"] and ref[0]["uid"], ref
    assert {k: v for k, v in r["summary"].items() if v} == counts, (r["summary"], counts)
by = {}
for x in reps["shop"]["results"]:
    by[(x["resources"][0]["kind"], x["resources"][0]["name"], x.get("rule"))] = x
def res(kind, name, rule):
    return by[(kind, name, rule)]["result"]
assert res("Deployment", "outage", "full-outage-rollout") == "fail"
assert by[("Deployment", "outage", "full-outage-rollout")]["severity"] == "high"
assert by[("Deployment", "outage", "full-outage-rollout")]["properties"] == {
    "mode": "enforce", "violations": "1", "fieldPaths": "spec.strategy.rollingUpdate.maxUnavailable"}
assert res("Deployment", "web", "mutable-image-tag") == "warn"
assert by[("Deployment", "web", "mutable-image-tag")]["severity"] == "medium"
assert res("Deployment", "web", "rollout-without-readiness") == "warn"
assert res("Deployment", "legacy", "mutable-image-tag") == "skip"
assert "rollgate.io/skip" in by[("Deployment", "legacy", "mutable-image-tag")]["message"]
assert res("Deployment", "api", None) == "pass" and res("DaemonSet", "agent", None) == "pass"
assert res("Canary", "podinfo", "canary-without-readiness") == "fail"
assert by[("Canary", "podinfo", "canary-without-readiness")]["resources"][0]["apiVersion"] == "flagger.app/v1beta1"
assert res("Rollout", "checkout", "canary-without-readiness") == "fail"
assert not any(k[0] == "ReplicaSet" for k in by), "ReplicaSets are not judged"
assert reps["pages"]["summary"]["pass"] == 7'

	say "check --cluster -o openreports: openreports.io Reports, valid against the CRD"
	run "$BIN" check --cluster --kubeconfig "$KC" -o openreports
	expect_rc 1
	cp "$OUT" "$TMP/openreports.json"
	validate "$TMP/openreports.json"
	pycheck "$OUT" '
assert [(r["apiVersion"], r["kind"], r["source"]) for r in J["items"]] == [("openreports.io/v1alpha1", "Report", "rollgate")] * 2'

	say "check --cluster --config: audit violations are fail results, modes follow the config"
	printf 'rules:\n  mutable-image-tag: audit\n  full-outage-rollout: warn\nexemptNamespaces: [pages]\n' >"$TMP/cluster-cfg.yaml"
	run "$BIN" check --cluster --kubeconfig "$KC" --config "$TMP/cluster-cfg.yaml" -o policyreport
	expect_rc 1
	pycheck "$OUT" '
reps = {r["metadata"]["namespace"]: r for r in J["items"]}
assert sorted(reps) == ["kube-system", "shop"], sorted(reps)
by = {(x["resources"][0]["name"], x.get("rule")): x for x in reps["shop"]["results"]}
assert by[("web", "mutable-image-tag")]["result"] == "fail" and by[("web", "mutable-image-tag")]["properties"]["mode"] == "audit"
assert by[("outage", "full-outage-rollout")]["result"] == "warn"
assert by[("legacy", "mutable-image-tag")]["result"] == "skip"'

	say "check --cluster -n: one namespace"
	run "$BIN" check --cluster --kubeconfig "$KC" -n shop -o json
	expect_rc 1
	pycheck "$OUT" '
assert J["summary"]["objects"] == 10, J["summary"]
assert all(v["namespace"] == "shop" for v in J["violations"])'
	run "$BIN" check --cluster --kubeconfig "$KC" --namespace pages
	expect_rc 0
	has "$OUT" '7 objects in the cluster: 0 enforce, 0 warn, 0 audit violations'
	double_stop

	say "check --cluster: pages of 2 objects, an expired continue token restarts the list"
	double_start --max-limit 2 --expire-continue 1
	run "$BIN" check --cluster --kubeconfig "$KC" -o json
	expect_rc 1
	cp "$OUT" "$TMP/paged.json"
	pycheck "$TMP/paged.json" '
s = J["summary"]
assert (s["objects"], s["enforce"], s["warn"]) == (18, 3, 3), s   # nothing twice, nothing lost
assert len(J["violations"]) == 6, J["violations"]'
	double_stop
	pycheck "$TMP/cluster/stats.json" '
assert J["expired_lists"] == 1, J
assert J["lists"] >= 12, J   # several pages per kind'

	say "check --cluster: CRDs that are not installed are skipped with a note"
	double_start --no-canaries --no-rollouts
	run "$BIN" check --cluster --kubeconfig "$KC"
	expect_rc 1
	has "$ERR" 'note: Flagger Canaries (canaries.flagger.app) not served by the API server (404): skipped'
	has "$ERR" 'note: Argo Rollouts (rollouts.argoproj.io) not served by the API server (404): skipped'
	has "$OUT" '16 objects in the cluster: 1 enforce, 3 warn, 0 audit violations'
	double_stop

	say "check --cluster: usage errors and an unreachable API server exit 2"
	run "$BIN" check --cluster --kubeconfig "$KC" deploy/
	expect_rc 2
	has "$ERR" '--cluster takes no PATH'
	run "$BIN" check -o policyreport deploy/
	expect_rc 2
	has "$ERR" 'needs --cluster'
	run "$BIN" check --kubeconfig "$KC" deploy/
	expect_rc 2
	run "$BIN" check --cluster --kubeconfig "$TMP/no-such-kubeconfig"
	expect_rc 2
	has "$ERR" 'no-such-kubeconfig'
	run "$BIN" check --cluster --kubeconfig "$KC" --context nope
	expect_rc 2
	has "$ERR" 'context "nope" is not among the contexts'
	run "$BIN" check --cluster --kubeconfig "$KC" -n 'Bad/NS'
	expect_rc 2
	has "$ERR" 'is not a namespace name'
	# The double is gone: the first list fails, and no verdict is printed.
	run "$BIN" check --cluster --kubeconfig "$KC"
	expect_rc 2
	has "$ERR" 'rollgate check: list /apis/'
	[ ! -s "$OUT" ] || fail "output despite a failed list"
fi

# ---- the rule list ----

say "check --list-rules: every rule with the mode the config gives it"
run "$BIN" check --list-rules --config "$TMP/soft.yaml"
expect_rc 0
has "$OUT" "$(printf 'full-outage-rollout\twarn\trollout\t')"
has "$OUT" "$(printf 'canary-without-readiness\toff\tworkload\t')"
has "$OUT" "$(printf 'replicaset-direct-edit\tenforce\trollout\t')"
run "$BIN" check --list-rules
expect_rc 0
has "$OUT" "$(printf 'full-outage-rollout\tenforce\t')"
[ "$(wc -l <"$OUT")" -eq "$(grep -c '^| [0-9]* | \[`' docs/rules.md)" ] || fail "rule count differs from docs/rules.md"
run "$BIN" check --list-rules --config "$FX/no-such-config.yaml"
expect_rc 2
has "$ERR" "no-such-config.yaml"
run "$BIN" check --list-rules "$FX/pass"
expect_rc 2
has "$ERR" "--list-rules takes no PATH"
run "$BIN" check --list-rules -o json
expect_rc 2

echo "test_cli: all checks passed"
