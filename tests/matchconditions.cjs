// Evaluates the matchConditions of rendered webhook configurations with a
// conformant CEL evaluator (@bufbuild/cel), the way kube-apiserver decides
// whether to call a webhook: the call happens only if every condition is
// true; a condition that errors or is not a bool fails the webhook
// (failurePolicy decides), which an exemption must never do.
//
// Usage: node tests/matchconditions.cjs NODE_DIR INPUT.json
//   NODE_DIR: where @bufbuild/cel is installed (npm --prefix NODE_DIR)
//   INPUT.json: {"webhooks": [{"source", "kind", "name", "matchConditions",
//                "exempt": [users], "gated": [users], "contract": bool}]}
//   "exempt" is what scripts/render-match-conditions.py --list prints for the
//   config the entry was rendered from (the source of truth); "gated" adds
//   users that must still be sent. With "contract", the well-known
//   identities below are checked too (the install's own configurations).
// Prints one line per failed check (every check with VERBOSE=1) and a
// summary; exits 1 if any check failed, 2 on bad input.
"use strict";
const fs = require("fs");

const [nodeDir, inputPath] = process.argv.slice(2);
if (!nodeDir || !inputPath) {
  console.error("usage: node matchconditions.cjs NODE_DIR INPUT.json");
  process.exit(2);
}
const { run, isCelError } = require(require.resolve("@bufbuild/cel", { paths: [nodeDir] }));
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
const verbose = process.env.VERBOSE === "1";

// Writes by these must never reach rollgate: they carry out rollouts and
// deletions, and must go on while rollgate is down. User names as
// kube-controller-manager's clients and Argo Rollouts' install manifests
// produce them.
const CONTROLLERS = [
  "system:serviceaccount:kube-system:deployment-controller",
  "system:serviceaccount:kube-system:replicaset-controller",
  "system:serviceaccount:kube-system:generic-garbage-collector",
  "system:kube-controller-manager",
  "system:serviceaccount:argo-rollouts:argo-rollouts",
];
// rollgate's reload controller: skipped by the validating webhook only (the
// mutating one stamps its patches with the same hash).
const ROLLGATE = "system:serviceaccount:rollgate:rollgate";
// Still gated: people, CI, other service accounts, and names that resemble
// an exempt one (exact comparison only).
const GATED = [
  "alice@example.com",
  "system:admin",
  "kubernetes-admin",
  "system:serviceaccount:ci:deployer",
  "system:serviceaccount:kube-system:default",
  "system:serviceaccount:kube-system:deployment-controller-evil",
  "system:serviceaccount:kube-system:deployment-controller ",
  " system:kube-controller-manager",
  "System:Kube-Controller-Manager",
  "system:serviceaccount:kube-system:deployment",
  "system:serviceaccount:kube-system",
  "system:serviceaccount:argo-rollouts:argo-rollouts-dashboard",
  "system:serviceaccount:argo-rollouts:default",
  "system:serviceaccount:rollgate:default",
  "system:serviceaccount:default:argo-rollouts",
  "system:kube-controller-manager', 'x",
  "system:anonymous",
  "",
];

let ok = 0;
let failed = 0;
function check(cond, what) {
  if (cond) ok++;
  else failed++;
  if (verbose || !cond) console.log((cond ? "ok   " : "FAIL ") + what);
  return cond;
}

// The `request` variable as kube-apiserver builds it (AdmissionRequest);
// CEL maps are JS Maps. user === undefined: a userInfo without username.
function request(user, groups) {
  const userInfo = new Map([["groups", groups]]);
  if (user !== undefined) userInfo.set("username", user);
  return new Map([
    ["uid", "705ab4f5-6393-11e8-b7cc-42010a800002"],
    ["kind", new Map([["group", "apps"], ["version", "v1"], ["kind", "ReplicaSet"]])],
    ["resource", new Map([["group", "apps"], ["version", "v1"], ["resource", "replicasets"]])],
    ["name", "web-5d4f8c7b9"],
    ["namespace", "shop"],
    ["operation", "UPDATE"],
    ["userInfo", userInfo],
    ["dryRun", false],
  ]);
}

// true: the webhook is called; false: skipped; a string: an error.
function sent(hook, user, groups) {
  const req = request(user, groups);
  for (const mc of hook.matchConditions) {
    const v = run(mc.expression, { request: req });
    if (isCelError(v)) return `condition ${mc.name}: ${v.message}`;
    if (typeof v !== "boolean") return `condition ${mc.name}: not a bool (${typeof v})`;
    if (!v) return false;
  }
  return true;
}

const QUALIFIED = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function show(user) {
  return user === undefined ? "(no username)" : JSON.stringify(user);
}

for (const hook of input.webhooks) {
  const id = `${hook.source}: ${hook.name}`;
  const validating = hook.kind === "ValidatingWebhookConfiguration";
  const mcs = hook.matchConditions || [];
  if (!check(mcs.length >= 1 && mcs.length <= 64, `${id}: 1 to 64 matchConditions (has ${mcs.length})`)) continue;
  const names = mcs.map((m) => m.name);
  check(new Set(names).size === names.length && names.every((n) => QUALIFIED.test(n) && n.length <= 63),
    `${id}: condition names are unique qualified names (${names})`);
  const exempt = new Set(hook.exempt);
  const gated = [...GATED, ...(hook.gated || []), undefined];
  if (hook.contract) {
    for (const u of CONTROLLERS) exempt.add(u);
    if (validating) exempt.add(ROLLGATE);
    else gated.push(ROLLGATE);
  }
  if (!check(exempt.size > 0 && gated.every((u) => !exempt.has(u)), `${id}: the cases are consistent`)) continue;
  for (const user of exempt) {
    for (const groups of [[], ["system:serviceaccounts", "system:authenticated"]]) {
      const r = sent(hook, user, groups);
      check(r === false, `${id}: ${show(user)} (groups ${groups}) is skipped` + (r === false ? "" : `: ${r === true ? "sent" : r}`));
    }
  }
  for (const user of gated) {
    for (const groups of [["system:authenticated"], ["system:masters", "system:authenticated"]]) {
      const r = sent(hook, user, groups);
      check(r === true, `${id}: ${show(user)} (groups ${groups}) is sent to rollgate` + (r === true ? "" : `: ${r === false ? "skipped" : r}`));
    }
  }
}
check(input.webhooks.length > 0, `webhook entries evaluated: ${input.webhooks.length}`);
console.log(`test_matchconditions: ${ok} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
