#!/bin/sh
# The rule catalog against what is written about it: `rollgate check
# --list-rules` (the catalog, src/core/rules_catalog.c) must agree with
# docs/rules.md (the table: number, ID, anchor, default mode and summary;
# the count in its first sentence; one section per rule, in order), with
# docs/reports.md (the rules of severity high), with the configs that
# spell the defaults out (deploy/rollgate.yaml,
# examples/rollgate.yaml), with the audit-only overlay (every rule), and
# with the rules SARIF output declares.
#
# Env: ROLLGATE_BIN (the binary), ROLLGATE_ROOT (repo root).
set -u

BIN=${ROLLGATE_BIN:?set ROLLGATE_BIN to the rollgate binary}
ROOT=${ROLLGATE_ROOT:?set ROLLGATE_ROOT to the repository root}
cd "$ROOT" || exit 1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-rules-doc.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

if ! "$BIN" check --list-rules >"$TMP/list" 2>"$TMP/err"; then
	echo "FAIL: rollgate check --list-rules: $(cat "$TMP/err")"
	exit 1
fi
: >"$TMP/empty.yaml"
if ! "$BIN" check -o sarif "$TMP/empty.yaml" >"$TMP/sarif" 2>"$TMP/err"; then
	echo "FAIL: rollgate check -o sarif: $(cat "$TMP/err")"
	exit 1
fi
# An unknown argument after --list-rules is refused, not ignored.
if "$BIN" check --list-rules deploy/ >/dev/null 2>&1; then
	echo "FAIL: rollgate check --list-rules accepted a PATH"
	exit 1
fi

python3 - "$TMP/list" "$TMP/sarif" <<'EOF'
import json, re, sys
import yaml

failed = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed.append(what)

rules = []  # (id, default mode, family, summary), catalog order
for line in open(sys.argv[1], encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    check(len(f) == 4, "--list-rules line has 4 tab-separated fields: %r" % line)
    if len(f) == 4:
        rules.append(tuple(f))
ids = [r[0] for r in rules]
modes = {r[0]: r[1] for r in rules}
check(len(rules) >= 10, "--list-rules lists the rules (%d)" % len(rules))
check(len(set(ids)) == len(ids), "rule IDs are distinct")
check(all(r[2] in ("workload", "rollout") for r in rules), "every rule has a family")

doc = open("docs/rules.md", encoding="utf-8").read()

# The table: | N | [`id`](#id) | mode | summary |
rows = re.findall(r"^\| (\d+) \| \[`([a-z-]+)`\]\(#([a-z-]+)\) \| (\w+) \| (.*) \|$", doc, re.M)
check([r[1] for r in rows] == ids, "docs/rules.md's table lists the catalog's rules in order: %s"
      % [r[1] for r in rows])
check([int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), "the table numbers rules 1..N")
check(all(r[1] == r[2] for r in rows), "each table row links its own section")
for num, rid, _, mode, summary in rows:
    if rid not in modes:
        continue
    check(mode == modes[rid], "%s: default mode %s in the table, %s in the catalog"
          % (rid, mode, modes[rid]))
    want = dict((r[0], r[3]) for r in rules)[rid]
    got = summary.replace("`", "")
    check(got[:1].lower() + got[1:] == want[:1].lower() + want[1:],
          "%s: the table's summary is the catalog's (%r, %r)" % (rid, summary, want))

# "checks workloads against ten rules"
words = "zero one two three four five six seven eight nine ten eleven twelve thirteen " \
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
m = re.search(r"against (\w+) rules", doc)
check(bool(m) and len(rules) < len(words) and m.group(1) == words[len(rules)],
      "the first paragraph counts %s rules" % (m.group(1) if m else "no"))

# One section per rule, in order, after the general sections.
sections = [h for h in re.findall(r"^## ([a-z-]+)$", doc, re.M) if "-" in h]
check(sections == ids, "one docs/rules.md section per rule, in order: %s" % sections)

# docs/reports.md names the rules that enforce by default (severity high).
m = re.search(r"`high` for the rules that enforce by default\s*\(([^)]*)\)",
              open("docs/reports.md", encoding="utf-8").read())
named = re.findall(r"`([a-z-]+)`", m.group(1)) if m else []
check(named == [r[0] for r in rules if r[1] == "enforce"],
      "docs/reports.md lists the rules that enforce by default: %s" % named)

# The configs that spell out the defaults, and the overlay that lists every rule.
for path in ("deploy/rollgate.yaml", "examples/rollgate.yaml"):
    listed = (yaml.safe_load(open(path, encoding="utf-8")) or {}).get("rules") or {}
    check(list(listed.items()) == [(r[0], r[1]) for r in rules],
          "%s spells out every rule with its default mode, in order" % path)
path = "deploy/overlays/audit-only/rollgate.yaml"
listed = (yaml.safe_load(open(path, encoding="utf-8")) or {}).get("rules") or {}
check(list(listed) == ids, "%s lists every rule, in order" % path)

# SARIF declares the catalog: ID, summary, position.
drv = json.load(open(sys.argv[2], encoding="utf-8"))["runs"][0]["tool"]["driver"]
check([(r["id"], r["shortDescription"]["text"]) for r in drv["rules"]] ==
      [(r[0], r[3]) for r in rules], "SARIF's rules are the catalog's IDs and summaries, in order")

sys.exit(1 if failed else 0)
EOF
rc=$?
[ $rc -eq 0 ] && echo "test_rules_doc: all checks passed"
exit $rc
