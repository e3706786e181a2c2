/*
 * Rollout mechanics rules of the policy gate: direct ReplicaSet edits,
 * rollback history, full-outage rolling updates, unguarded Argo canaries and
 * blue-green promotions. Pure: no I/O.
 */
#include "rules_int.h"

#include <stdio.h>
#include <string.h>

#include "jsonutil.h"

static bool has_object(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(json_get(obj, key));
}

/* Present with a value other than null: `pause: {}` and `pause: null`
 * differ, as they do to the Go decoder. */
static bool has_value(const cJSON *obj, const char *key)
{
	const cJSON *v = json_get(obj, key);
	return v && !cJSON_IsNull(v);
}

/* ---- replicaset-direct-edit ---- */

/* A named owner whose controller rolls out through ReplicaSets. */
static bool is_rollout_owner(const cJSON *ref)
{
	const char *name = json_get_string(ref, "name");
	const struct kind *k = kinds_by_kind(json_get_string(ref, "apiVersion"),
					     json_get_string(ref, "kind"));

	return kinds_has(k, KIND_OWNS_REPLICASETS) && name && *name;
}

/*
 * The Deployment or Rollout among obj's metadata.ownerReferences, preferring
 * the controller reference, or NULL. *index gets its position. A reference
 * without controller: true still counts: such a ReplicaSet is about to be
 * adopted by that owner.
 */
static const cJSON *rollout_owner(const cJSON *obj, int *index)
{
	const cJSON *refs = json_get_path(obj, "metadata", "ownerReferences", NULL), *r, *found = NULL;
	int i = -1;

	if (!cJSON_IsArray(refs))
		return NULL;
	cJSON_ArrayForEach(r, refs) {
		i++;
		if (!is_rollout_owner(r) || (found && !json_get_bool(r, "controller")))
			continue;
		found = r;
		*index = i;
		if (json_get_bool(r, "controller"))
			break;
	}
	return found;
}

/* "deployment" / "rollout", for the kubectl hint: owner is a rollout owner. */
static const char *owner_resource(const cJSON *owner)
{
	return kinds_by_kind(json_get_string(owner, "apiVersion"), json_get_string(owner, "kind"))
		->singular;
}

/* The decoder's byte comparison answers first (same bytes, same tree);
 * otherwise the trees are compared, since equal specs may be written with
 * other key orders, spacing, escapes or number forms. */
static bool specs_equal(const struct admission_request *req, const cJSON *a, const cJSON *b)
{
	if (req->spec_unchanged)
		return true;
	if (!a || !b)
		return a == b;
	return json_equal(a, b); /* never cJSON_Compare: exponential in depth */
}

static void report_owned(struct rules_ctx *ctx, const char *path, const char *rs, const char *verb,
			 const cJSON *owner)
{
	const char *kind = json_get_string(owner, "kind"), *name = json_get_string(owner, "name");
	const char *res = owner_resource(owner);
	bool scale = strcmp(verb, "scale") == 0;

	rules_report(ctx, RULE_REPLICASET_DIRECT_EDIT, path,
		     "ReplicaSet \"%.253s\" is managed by %s \"%.253s\": %s the %s instead (kubectl "
		     "%s %s %.253s%s)",
		     rs, kind, name, verb, kind, scale ? "scale" : "edit", res, name,
		     scale ? " --replicas=N" : "");
}

/*
 * CREATE claiming a Deployment/Rollout owner, or an UPDATE changing the spec
 * of an owned ReplicaSet. The owner is looked for in the new object, then
 * the old one, so dropping ownerReferences in the same request as a spec
 * change does not slip through; dropping them alone (orphaning) is allowed.
 */
static void check_rs_object(struct rules_ctx *ctx)
{
	const cJSON *obj = ctx->req->object, *old = ctx->req->old_object, *owner;
	const char *rs = rules_object_name(ctx, obj);
	char p[64];
	int idx = 0;

	if (ctx->req->operation == OP_CREATE) {
		owner = rollout_owner(obj, &idx);
		if (!owner)
			return;
		snprintf(p, sizeof(p), "metadata.ownerReferences[%d]", idx);
		rules_report(ctx, RULE_REPLICASET_DIRECT_EDIT, p,
			     "ReplicaSet \"%.253s\" claims owner %s \"%.253s\": only its controller "
			     "creates ReplicaSets; change the %s instead (kubectl edit %s %.253s)",
			     rs, json_get_string(owner, "kind"), json_get_string(owner, "name"),
			     json_get_string(owner, "kind"), owner_resource(owner),
			     json_get_string(owner, "name"));
		return;
	}
	if (specs_equal(ctx->req, json_get(old, "spec"), json_get(obj, "spec")))
		return;
	owner = rollout_owner(obj, &idx);
	if (!owner)
		owner = rollout_owner(old, &idx);
	if (owner)
		report_owned(ctx, "spec", rs, "change", owner);
}

/*
 * An UPDATE through replicasets/scale. The Scale object carries no owner
 * references in practice, so any direct scale is denied, naming the owner
 * when the Scale's metadata does name one; metadata that lists only other
 * owners marks a ReplicaSet that is not rollout-managed.
 */
static void check_rs_scale(struct rules_ctx *ctx)
{
	const cJSON *obj = ctx->req->object, *old = ctx->req->old_object, *owner;
	const char *rs = rules_object_name(ctx, obj);
	int idx = 0;

	if (ctx->req->operation != OP_UPDATE)
		return;
	owner = rollout_owner(obj, &idx);
	if (!owner)
		owner = rollout_owner(old, &idx);
	if (owner) {
		report_owned(ctx, "spec.replicas", rs, "scale", owner);
		return;
	}
	if (json_get_path(obj, "metadata", "ownerReferences", NULL) ||
	    json_get_path(old, "metadata", "ownerReferences", NULL))
		return;
	rules_report(ctx, RULE_REPLICASET_DIRECT_EDIT, "spec.replicas",
		     "ReplicaSet \"%.253s\" is scaled directly: scale the Deployment or Rollout that "
		     "owns it instead (kubectl scale deployment NAME --replicas=N)",
		     rs);
}

void rules_check_replicaset_edit(struct rules_ctx *ctx)
{
	if (ctx->kind->id != KIND_REPLICASET)
		return;
	if (ctx->scale)
		check_rs_scale(ctx);
	else
		check_rs_object(ctx);
}

/* ---- no-rollback-history ---- */

void rules_check_history(struct rules_ctx *ctx)
{
	long long n;

	/* Their history is the old ReplicaSets they keep. */
	if (!kinds_has(ctx->kind, KIND_OWNS_REPLICASETS))
		return;
	if (json_get_int(json_get(ctx->req->object, "spec"), "revisionHistoryLimit", &n) < 0 || n != 0)
		return;
	rules_report(ctx, RULE_NO_ROLLBACK_HISTORY, "spec.revisionHistoryLimit",
		     "revisionHistoryLimit is 0, so there is nothing to roll back to; set it to 1 or "
		     "more (default 10)");
}

/* ---- full-outage-rollout ---- */

/* An IntOrString: an integer or a percentage. */
struct intstr {
	bool pct;
	long long val;
};

/* Largest value resolved: far past what validation accepts (percentages up
 * to 100%), and small enough that val * replicas cannot overflow. */
#define INTSTR_MAX 999999999LL
/* Largest replica count: Kubernetes' int32. */
#define REPLICAS_MAX 2147483647LL

/* "N%" with N decimal digits only, as Kubernetes validation requires. */
static int percent_parse(const char *s, struct intstr *out)
{
	size_t n = strspn(s, "0123456789");
	long long val = 0;

	if (n == 0 || n > 9 || strcmp(s + n, "%") != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		val = val * 10 + (s[i] - '0');
	out->pct = true;
	out->val = val;
	return 0;
}

/* Reads an IntOrString; absent or null gives *dflt. A string that is not a
 * percentage is an error, as in intstr.GetScaledValueFromIntOrPercent. */
static int intstr_parse(const cJSON *v, const struct intstr *dflt, struct intstr *out)
{
	long long n;

	if (!v || cJSON_IsNull(v)) {
		*out = *dflt;
		return 0;
	}
	if (cJSON_IsString(v))
		return percent_parse(v->valuestring, out);
	if (json_number_int(v, &n) < 0 || n < 0 || n > INTSTR_MAX)
		return -1;
	out->pct = false;
	out->val = n;
	return 0;
}

/*
 * maxUnavailable resolved against replicas: percentages round down, as
 * Kubernetes and Argo Rollouts do for maxUnavailable. (maxSurge rounds up,
 * and when both resolve to 0 the Deployment controller uses 1 unavailable;
 * neither can make the result reach replicas > 1, so neither is read.)
 */
static long long intstr_scale_down(const struct intstr *is, long long total)
{
	return is->pct ? is->val * total / 100 : is->val;
}

static void report_malformed(struct rules_ctx *ctx, const cJSON *v, const char *path)
{
	if (cJSON_IsString(v))
		rules_report(ctx, RULE_FULL_OUTAGE_ROLLOUT, path,
			     "maxUnavailable \"%.32s\" is not an integer or percentage; use e.g. 1 or "
			     "\"25%%\"",
			     v->valuestring);
	else
		rules_report(ctx, RULE_FULL_OUTAGE_ROLLOUT, path,
			     "maxUnavailable is not a non-negative integer or percentage; use e.g. 1 "
			     "or \"25%%\"");
}

/* Reports when parent.maxUnavailable (path names it) takes every one of
 * replicas (> 1) down at once, or cannot be read. */
static void check_unavailable(struct rules_ctx *ctx, const cJSON *parent, const char *path,
			      const struct intstr *dflt, long long replicas)
{
	const cJSON *v = json_get(parent, "maxUnavailable");
	struct intstr is;
	char shown[32];

	if (intstr_parse(v, dflt, &is) < 0) {
		report_malformed(ctx, v, path);
		return;
	}
	if (intstr_scale_down(&is, replicas) < replicas)
		return;
	/* Our parsed value, never the input's text: numbers would print as
	 * cJSON formats them. */
	snprintf(shown, sizeof(shown), is.pct ? "%lld%%" : "%lld", is.val);
	rules_report(ctx, RULE_FULL_OUTAGE_ROLLOUT, path,
		     "maxUnavailable %s takes down all %lld replicas at once; set it below %lld, e.g. "
		     "25%%",
		     shown, replicas, replicas);
}

/* spec.replicas (default 1); -1 when it is not a valid replica count. */
static long long replicas_of(const cJSON *spec)
{
	const cJSON *r = json_get(spec, "replicas");
	long long n;

	if (!r || cJSON_IsNull(r))
		return 1;
	if (json_number_int(r, &n) < 0 || n < 0 || n > REPLICAS_MAX)
		return -1;
	return n;
}

static const struct intstr pct25 = { true, 25 }, one = { false, 1 };

/*
 * Deployments (RollingUpdate only: Recreate takes everything down by
 * design), StatefulSets (not partitioned: a partition keeps the pods below
 * it), and basic Argo canaries (with trafficRouting the stable ReplicaSet
 * stays up and maxUnavailable is ignored).
 */
void rules_check_outage(struct rules_ctx *ctx)
{
	const cJSON *spec = json_get(ctx->req->object, "spec"), *ru, *canary;
	long long replicas = replicas_of(spec), partition;

	if (replicas <= 1)
		return;
	switch (ctx->kind->id) {
	case KIND_DEPLOYMENT:
		if (!rules_rolling_update(ctx))
			return;
		ru = json_get_path(spec, "strategy", "rollingUpdate", NULL);
		check_unavailable(ctx, ru, "spec.strategy.rollingUpdate.maxUnavailable", &pct25,
				  replicas);
		return;
	case KIND_STATEFULSET:
		ru = json_get_path(spec, "updateStrategy", "rollingUpdate", NULL);
		if (!rules_rolling_update(ctx) ||
		    (json_get_int(ru, "partition", &partition) == 0 && partition > 0))
			return;
		check_unavailable(ctx, ru, "spec.updateStrategy.rollingUpdate.maxUnavailable", &one,
				  replicas);
		return;
	case KIND_ROLLOUT:
		canary = json_get_path(spec, "strategy", "canary", NULL);
		if (!cJSON_IsObject(canary) || has_value(canary, "trafficRouting"))
			return;
		check_unavailable(ctx, canary, "spec.strategy.canary.maxUnavailable", &pct25,
				  replicas);
		return;
	default:
		return;
	}
}

/* ---- unguarded-canary-steps ---- */

/* A step that checks the canary: a pause (timed or indefinite), an
 * analysis, or an experiment that runs analyses. */
static bool step_guards(const cJSON *step)
{
	const cJSON *analyses = json_get_path(step, "experiment", "analyses", NULL);

	return has_value(step, "pause") || has_object(step, "analysis") ||
		(cJSON_IsArray(analyses) && cJSON_GetArraySize(analyses) > 0);
}

static bool step_raises_traffic(const cJSON *step)
{
	long long w;

	if (has_value(step, "setCanaryScale"))
		return true;
	return json_get_int(step, "setWeight", &w) == 0 && w > 0;
}

/*
 * Warns when nothing checks a canary before full promotion: no background
 * analysis and no guarding step. Every canary ends in full promotion, so no
 * steps at all, or steps that never raise traffic, are unguarded too.
 */
void rules_check_canary_steps(struct rules_ctx *ctx)
{
	const cJSON *canary = json_get_path(ctx->req->object, "spec", "strategy", "canary", NULL);
	const cJSON *steps = json_get(canary, "steps"), *s;
	int i = -1, first = -1;
	char p[64];

	if (ctx->kind->id != KIND_ROLLOUT || !cJSON_IsObject(canary) || has_object(canary, "analysis"))
		return;
	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) == 0) {
		rules_report(ctx, RULE_UNGUARDED_CANARY_STEPS, "spec.strategy.canary",
			     "canary has no steps, so it promotes at once; add setWeight and pause or "
			     "analysis steps");
		return;
	}
	cJSON_ArrayForEach(s, steps) {
		i++;
		if (step_guards(s))
			return;
		if (first < 0 && step_raises_traffic(s))
			first = i;
	}
	if (first >= 0)
		snprintf(p, sizeof(p), "spec.strategy.canary.steps[%d]", first);
	else
		snprintf(p, sizeof(p), "spec.strategy.canary.steps");
	rules_report(ctx, RULE_UNGUARDED_CANARY_STEPS, p,
		     "no pause or analysis step checks the canary before promotion; add one%s",
		     first >= 0 ? " after setWeight" : "");
}

/* ---- unguarded-blue-green ---- */

void rules_check_blue_green(struct rules_ctx *ctx)
{
	const cJSON *bg = json_get_path(ctx->req->object, "spec", "strategy", "blueGreen", NULL);

	if (ctx->kind->id != KIND_ROLLOUT || !cJSON_IsObject(bg))
		return;
	/* autoPromotionSeconds only delays the automatic promotion. */
	if (cJSON_IsFalse(json_get(bg, "autoPromotionEnabled")) ||
	    has_object(bg, "prePromotionAnalysis"))
		return;
	rules_report(ctx, RULE_UNGUARDED_BLUE_GREEN, "spec.strategy.blueGreen",
		     "blueGreen auto-promotes unchecked; add prePromotionAnalysis or set "
		     "autoPromotionEnabled: false");
}
