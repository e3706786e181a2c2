#!/bin/sh
# Evaluates the CEL matchConditions of the rendered webhook configurations
# (deploy/webhooks and the overlays that keep them) with a conformant CEL
# evaluator from npm, @bufbuild/cel: the controllers of the config (and, for
# the validating webhook, rollgate's ServiceAccount) must be skipped, people,
# CI accounts and look-alike names must still reach rollgate, and no
# expression may error. tests/matchconditions.cjs holds the cases.
#
# The evaluator is installed into build/node (npm --prefix) and reused from
# there. Skipped, with a message, without kubectl, python3 with PyYAML, node
# or npm, or when npm cannot reach its registry.
# Env: ROLLGATE_ROOT (the repository); VERBOSE=1 lists every check.
set -u

root=${ROLLGATE_ROOT:-$(pwd)}
cel_pkg="@bufbuild/cel"
cel_version="0.6.1"
node_dir="$root/build/node"

skip() {
	echo "test_matchconditions: SKIP: $1"
	exit 0
}
for tool in kubectl node npm python3; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (scripts/deps.sh installs node and npm)"
done
python3 -c 'import yaml' 2>/dev/null || skip "python3 with PyYAML (Debian: python3-yaml) not found"

installed() {
	node -e 'const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		process.exit(p.version === process.argv[2] ? 0 : 1)' \
		"$node_dir/node_modules/$cel_pkg/package.json" "$cel_version" 2>/dev/null
}
if ! installed; then
	mkdir -p "$node_dir" || exit 1
	echo "test_matchconditions: installing $cel_pkg@$cel_version into build/node"
	if ! npm install --prefix "$node_dir" --no-audit --no-fund --prefer-offline \
		--fetch-retries=1 --fetch-timeout=30000 "$cel_pkg@$cel_version" >"$node_dir/npm.log" 2>&1; then
		tail -n 5 "$node_dir/npm.log"
		skip "npm could not install $cel_pkg@$cel_version (no registry?), see build/node/npm.log"
	fi
	installed || { echo "test_matchconditions: FAIL: $cel_pkg@$cel_version not found after npm install"; exit 1; }
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# The rendered webhook entries that carry matchConditions: the install's
# (checked against the well-known controllers too), and a patch rendered
# from a config whose user names need quoting in CEL.
for d in deploy/webhooks deploy/overlays/fail-open deploy/overlays/audit-only; do
	out="$tmp/$(echo "$d" | tr / _).yaml"
	if ! kubectl kustomize "$root/$d" >"$out" 2>"$tmp/err"; then
		echo "test_matchconditions: FAIL: kubectl kustomize $d: $(cat "$tmp/err")"
		exit 1
	fi
done
cat >"$tmp/tricky.yaml" <<'EOF'
controllers:
  - "it's"
  - 'back\slash'
  - "x']) || true || (['"
  - "ünï:cödé"
  - "a, b"
EOF
printf '%s\n' its 'back\\slash' 'back/slash' "x'" x true a b 'unï:cödé' >"$tmp/tricky-gated.txt"
rmc() { python3 "$root/scripts/render-match-conditions.py" --root "$root" "$@"; }
for kind in mutating validating; do
	if ! rmc --list "$kind" >"$tmp/deploy_webhooks.$kind" ||
		! rmc --config "$tmp/tricky.yaml" --list "$kind" >"$tmp/tricky.$kind"; then
		echo "test_matchconditions: FAIL: scripts/render-match-conditions.py --list $kind"
		exit 1
	fi
done
if ! rmc --config "$tmp/tricky.yaml" --output "$tmp/tricky.patch"; then
	echo "test_matchconditions: FAIL: scripts/render-match-conditions.py --config tricky.yaml"
	exit 1
fi

python3 - "$tmp" <<'EOF' >"$tmp/input.json" || exit 1
import json, os, sys
import yaml

tmp = sys.argv[1]
def lines(name):
    with open(os.path.join(tmp, name), encoding="utf-8") as f:
        return f.read().split("\n")[:-1]
hooks = []
def add(path, source, exempt_prefix, contract, gated):
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind", "").endswith("WebhookConfiguration"):
                kind = "validating" if doc["kind"].startswith("Validating") else "mutating"
                for w in doc.get("webhooks") or []:
                    hooks.append({"source": source, "kind": doc["kind"], "name": w.get("name"),
                                  "matchConditions": w.get("matchConditions") or [],
                                  "exempt": lines("%s.%s" % (exempt_prefix, kind)),
                                  "gated": gated, "contract": contract})
for d in ("deploy/webhooks", "deploy/overlays/fail-open", "deploy/overlays/audit-only"):
    add(os.path.join(tmp, d.replace("/", "_") + ".yaml"), d, "deploy_webhooks", True, [])
add(os.path.join(tmp, "tricky.patch"), "a config with quotes and backslashes", "tricky", False,
    lines("tricky-gated.txt"))
json.dump({"webhooks": hooks}, sys.stdout)
EOF

node "$root/tests/matchconditions.cjs" "$node_dir" "$tmp/input.json"
