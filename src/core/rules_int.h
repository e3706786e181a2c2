#ifndef ROLLGATE_RULES_INT_H
#define ROLLGATE_RULES_INT_H

/*
 * Private to the policy gate (src/core/rules*.c), which is split by rule
 * family: what the families share and no other module needs. Everything
 * public is in rules.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "dynbuf.h"
#include "kinds.h"
#include "rules.h"

/* Longest violation message and note kept, in bytes. */
#define RULES_MAX_MESSAGE 1024
#define RULES_MAX_NOTE 2048

/* One evaluation. Errors are sticky: after an allocation failure `oom` is
 * set, further reports are dropped and rules_evaluate returns -1. */
struct rules_ctx {
	const struct config *cfg;
	const struct admission_request *req;
	const struct rules_extra *extra;
	const struct kind *kind; /* what the request is about (a KIND_JUDGED kind) */
	bool scale;              /* a write through replicasets/scale */
	const cJSON *tmpl;       /* the pod template the template rules judge, or NULL */
	bool active[RULE_COUNT]; /* mode not off, not exempt, not skipped */
	size_t kept[RULE_COUNT]; /* violations recorded per rule */
	struct verdict *out;
	struct dynbuf note; /* the verdict's note, '\n'-separated lines; out->note at the end */
	bool oom;
};

/* Records a violation of rule id at path (copied) when the rule is active. */
void rules_report(struct rules_ctx *ctx, enum rule_id id, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Appends a line to the verdict's note. */
void rules_note(struct rules_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An object's name for messages: metadata.name, else the request's name,
 * else metadata.generateName, else "(unnamed)". Borrowed. */
const char *rules_object_name(const struct rules_ctx *ctx, const cJSON *obj);
/* True when a violation of rule id at exactly path was already recorded. */
bool rules_reported(const struct rules_ctx *ctx, enum rule_id id, const char *path);

/* The checks of the rule catalog (rules_catalog.c), one per rule, run in
 * rule order while the rule is active: the pod template rules in
 * rules_workload.c, rollout mechanics in rules_rollout.c. A check reports
 * its own rule only, so the verdict comes out in rule order. */
void rules_check_replicaset_edit(struct rules_ctx *ctx);
void rules_check_canary_readiness(struct rules_ctx *ctx);
void rules_check_rollout_readiness(struct rules_ctx *ctx);
void rules_check_image_tags(struct rules_ctx *ctx);
void rules_check_history(struct rules_ctx *ctx);
void rules_check_outage(struct rules_ctx *ctx);
void rules_check_liveness(struct rules_ctx *ctx);
void rules_check_canary_steps(struct rules_ctx *ctx);
void rules_check_blue_green(struct rules_ctx *ctx);
void rules_check_hash_labels(struct rules_ctx *ctx);

/* True when the workload replaces pods by RollingUpdate (the default):
 * Deployment spec.strategy, StatefulSet/DaemonSet spec.updateStrategy. */
bool rules_rolling_update(const struct rules_ctx *ctx);

#endif
