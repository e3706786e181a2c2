/*
 * The rule catalog: every rule of the policy gate in one table, at its
 * enum rule_id index, in documentation order (docs/rules.md, checked by
 * tests/test_rules_doc.sh). Rule IDs, default modes and summaries are
 * written here and nowhere else, beside the function that checks each rule.
 * Pure: constant data.
 */
#include "rules.h"
#include "rules_int.h"

#include <string.h>

/* Each entry at its rule's index, naming that index. */
#define RULE(id_, ...) [id_] = { .id = id_, __VA_ARGS__ }

const struct rules_entry rules_catalog[RULE_COUNT] = {
	RULE(RULE_REPLICASET_DIRECT_EDIT, .name = "replicaset-direct-edit",
	     .default_mode = MODE_ENFORCE, .family = RULES_FAMILY_ROLLOUT,
	     .summary = "Hand edits of ReplicaSets owned by a Deployment or Rollout",
	     .check = rules_check_replicaset_edit),
	RULE(RULE_CANARY_WITHOUT_READINESS, .name = "canary-without-readiness",
	     .default_mode = MODE_ENFORCE, .family = RULES_FAMILY_WORKLOAD,
	     .summary = "Canary containers without a readinessProbe",
	     .check = rules_check_canary_readiness),
	RULE(RULE_ROLLOUT_WITHOUT_READINESS, .name = "rollout-without-readiness",
	     .default_mode = MODE_WARN, .family = RULES_FAMILY_WORKLOAD,
	     .summary = "Rolling-update containers without a readinessProbe",
	     .check = rules_check_rollout_readiness),
	RULE(RULE_MUTABLE_IMAGE_TAG, .name = "mutable-image-tag", .default_mode = MODE_WARN,
	     .family = RULES_FAMILY_WORKLOAD,
	     .summary = "Images without a tag, or tagged latest, and no digest",
	     .check = rules_check_image_tags),
	RULE(RULE_NO_ROLLBACK_HISTORY, .name = "no-rollback-history", .default_mode = MODE_WARN,
	     .family = RULES_FAMILY_ROLLOUT,
	     .summary = "revisionHistoryLimit: 0 leaves nothing to roll back to",
	     .check = rules_check_history),
	RULE(RULE_FULL_OUTAGE_ROLLOUT, .name = "full-outage-rollout", .default_mode = MODE_ENFORCE,
	     .family = RULES_FAMILY_ROLLOUT,
	     .summary = "maxUnavailable that takes every replica down at once",
	     .check = rules_check_outage),
	RULE(RULE_LIVENESS_WITHOUT_STARTUP_GRACE, .name = "liveness-without-startup-grace",
	     .default_mode = MODE_WARN, .family = RULES_FAMILY_WORKLOAD,
	     .summary = "Liveness probes that start checking at once", .check = rules_check_liveness),
	RULE(RULE_UNGUARDED_CANARY_STEPS, .name = "unguarded-canary-steps", .default_mode = MODE_WARN,
	     .family = RULES_FAMILY_ROLLOUT,
	     .summary = "Argo canaries nothing checks before full promotion",
	     .check = rules_check_canary_steps),
	RULE(RULE_UNGUARDED_BLUE_GREEN, .name = "unguarded-blue-green", .default_mode = MODE_WARN,
	     .family = RULES_FAMILY_ROLLOUT,
	     .summary = "Argo blue-green Rollouts that promote unchecked",
	     .check = rules_check_blue_green),
	RULE(RULE_POD_TEMPLATE_HASH_TAMPER, .name = "pod-template-hash-tamper",
	     .default_mode = MODE_ENFORCE, .family = RULES_FAMILY_WORKLOAD,
	     .summary = "Controller-owned hash labels in a pod template",
	     .check = rules_check_hash_labels),
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
