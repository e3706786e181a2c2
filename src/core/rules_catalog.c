/*
 * The rule catalog: every rule of the policy gate in one table, at its
 * enum rule_id index, in documentation order (docs/rules.md, checked by
 * tests/test_rules_doc.sh). Rule IDs, default modes and summaries are
 * written here and nowhere else. Pure: constant data.
 */
#include "rules.h"

#include <string.h>

const struct rules_entry rules_catalog[RULE_COUNT] = {
	[RULE_REPLICASET_DIRECT_EDIT] = {
		RULE_REPLICASET_DIRECT_EDIT, "replicaset-direct-edit", MODE_ENFORCE, RULES_FAMILY_ROLLOUT,
		"Hand edits of ReplicaSets owned by a Deployment or Rollout" },
	[RULE_CANARY_WITHOUT_READINESS] = {
		RULE_CANARY_WITHOUT_READINESS, "canary-without-readiness", MODE_ENFORCE,
		RULES_FAMILY_WORKLOAD, "Canary containers without a readinessProbe" },
	[RULE_ROLLOUT_WITHOUT_READINESS] = {
		RULE_ROLLOUT_WITHOUT_READINESS, "rollout-without-readiness", MODE_WARN,
		RULES_FAMILY_WORKLOAD, "Rolling-update containers without a readinessProbe" },
	[RULE_MUTABLE_IMAGE_TAG] = {
		RULE_MUTABLE_IMAGE_TAG, "mutable-image-tag", MODE_WARN, RULES_FAMILY_WORKLOAD,
		"Images without a tag, or tagged latest, and no digest" },
	[RULE_NO_ROLLBACK_HISTORY] = {
		RULE_NO_ROLLBACK_HISTORY, "no-rollback-history", MODE_WARN, RULES_FAMILY_ROLLOUT,
		"revisionHistoryLimit: 0 leaves nothing to roll back to" },
	[RULE_FULL_OUTAGE_ROLLOUT] = {
		RULE_FULL_OUTAGE_ROLLOUT, "full-outage-rollout", MODE_ENFORCE, RULES_FAMILY_ROLLOUT,
		"maxUnavailable that takes every replica down at once" },
	[RULE_LIVENESS_WITHOUT_STARTUP_GRACE] = {
		RULE_LIVENESS_WITHOUT_STARTUP_GRACE, "liveness-without-startup-grace", MODE_WARN,
		RULES_FAMILY_WORKLOAD, "Liveness probes that start checking at once" },
	[RULE_UNGUARDED_CANARY_STEPS] = {
		RULE_UNGUARDED_CANARY_STEPS, "unguarded-canary-steps", MODE_WARN, RULES_FAMILY_ROLLOUT,
		"Argo canaries nothing checks before full promotion" },
	[RULE_UNGUARDED_BLUE_GREEN] = {
		RULE_UNGUARDED_BLUE_GREEN, "unguarded-blue-green", MODE_WARN, RULES_FAMILY_ROLLOUT,
		"Argo blue-green Rollouts that promote unchecked" },
	[RULE_POD_TEMPLATE_HASH_TAMPER] = {
		RULE_POD_TEMPLATE_HASH_TAMPER, "pod-template-hash-tamper", MODE_ENFORCE,
		RULES_FAMILY_WORKLOAD, "Controller-owned hash labels in a pod template" },
};

const char *rules_name(enum rule_id id)
{
	return (unsigned)id < RULE_COUNT ? rules_catalog[id].name : "unknown";
}

const struct rules_entry *rules_find(const char *name)
{
	for (int i = 0; i < RULE_COUNT; i++) {
		if (strcmp(rules_catalog[i].name, name) == 0)
			return &rules_catalog[i];
	}
	return NULL;
}

const char *rules_family_name(enum rules_family family)
{
	return family == RULES_FAMILY_WORKLOAD ? "workload" : "rollout";
}
