/*
 * Pod template rules of the policy gate: readiness probes for canaries
 * (a Flagger Canary's in its target Deployment) and rolling updates,
 * mutable image tags, liveness probes without a startup grace, and
 * controller-owned hash labels. Pure: no I/O.
 */
#include "rules_int.h"

#include <stdio.h>
#include <string.h>

#include "jsonutil.h"

/* The container lists of a pod spec, with whether probes apply to them:
 * regular containers and (sidecar) init containers may have probes,
 * ephemeral containers may not. */
static const struct {
	const char *field;
	bool probes;
} container_lists[] = {
	{ "containers", true },
	{ "initContainers", true },
	{ "ephemeralContainers", false },
};

#define N_LISTS (sizeof(container_lists) / sizeof(container_lists[0]))

static bool has_object(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(json_get(obj, key));
}

/* A container's name for messages; names are DNS labels, so 63 bytes show
 * all of a valid one. */
static const char *container_name(const cJSON *c)
{
	const char *n = json_get_string(c, "name");
	return n && *n ? n : "(unnamed)";
}

/* The named container list of a template, or NULL when not an array (cJSON
 * would otherwise iterate an object's members as if they were elements). */
static const cJSON *container_list(const cJSON *tmpl, const char *field)
{
	const cJSON *l = json_get_path(tmpl, "spec", field, NULL);
	return cJSON_IsArray(l) ? l : NULL;
}

/* The readiness check of one container list, for canaries (rule 2) and
 * rolling updates (rule 3). `who`, when not NULL, prefixes messages (e.g.
 * the Flagger target); `path`, when not NULL, replaces the per-container
 * field path. */
static void check_readiness(struct rules_ctx *ctx, enum rule_id id, const cJSON *containers,
			    const char *who, const char *path)
{
	const cJSON *c;
	char p[128];
	int i = -1;
	const char *why = id == RULE_CANARY_WITHOUT_READINESS ? "canary traffic" : "the rollout";

	if (!ctx->active[id] || !cJSON_IsArray(containers))
		return;
	cJSON_ArrayForEach(c, containers) {
		i++;
		if (!cJSON_IsObject(c) || has_object(c, "readinessProbe"))
			continue;
		snprintf(p, sizeof(p), "spec.template.spec.containers[%d].readinessProbe", i);
		/* A canary's container is reported once, by the stricter rule. */
		if (id == RULE_ROLLOUT_WITHOUT_READINESS &&
		    rules_reported(ctx, RULE_CANARY_WITHOUT_READINESS, p))
			continue;
		rules_report(ctx, id, path ? path : p,
			     "%scontainer \"%.63s\" has no readinessProbe; add one so %s waits for "
			     "ready pods",
			     who ? who : "", container_name(c), why);
	}
}

/* ---- canary-without-readiness ---- */

/* A Flagger Canary's target Deployment, looked up beforehand (rules_extra). */
static void check_flagger(struct rules_ctx *ctx)
{
	const struct rules_extra *x = ctx->extra;
	const char *target = rules_flagger_target(ctx->req), *canary;
	enum lookup_status st = x ? x->flagger_target_status : LOOKUP_NONE;
	const cJSON *tmpl;
	char who[300];

	if (!target)
		return;
	if (x && x->flagger_target_name && *x->flagger_target_name)
		target = x->flagger_target_name;
	canary = rules_object_name(ctx, ctx->req->object);
	if (st == LOOKUP_FOUND && x->flagger_target) {
		snprintf(who, sizeof(who), "target Deployment \"%.253s\": ", target);
		tmpl = kinds_template(kinds_get(KIND_DEPLOYMENT), x->flagger_target);
		check_readiness(ctx, RULE_CANARY_WITHOUT_READINESS, container_list(tmpl, "containers"),
				who, "spec.targetRef");
	} else if (st == LOOKUP_ABSENT) {
		rules_note(ctx,
			   "flagger canary \"%.253s\": Deployment \"%.253s\" does not exist yet; "
			   "readiness probes not checked",
			   canary, target);
	} else if (st != LOOKUP_NONE) {
		rules_note(ctx,
			   "flagger canary \"%.253s\": could not look up Deployment \"%.253s\" to "
			   "check readiness probes",
			   canary, target);
	}
}

/* True when the pod template labels carry one of the configured canary
 * labels (key and value equal). */
static bool has_canary_label(const struct rules_ctx *ctx, const cJSON *tmpl)
{
	const cJSON *labels = json_get_path(tmpl, "metadata", "labels", NULL);

	for (size_t i = 0; i < ctx->cfg->n_canary_labels; i++) {
		const struct label_pair *lp = &ctx->cfg->canary_labels[i];
		const char *v = json_get_string(labels, lp->key);
		if (v && strcmp(v, lp->value) == 0)
			return true;
	}
	return false;
}

/* Canaries by their own object: a Rollout with a canary or blueGreen
 * strategy, or a Deployment/StatefulSet labelled as a canary. (A Flagger
 * Canary's target is judged in check_flagger.) */
static bool is_canary(const struct rules_ctx *ctx, const cJSON *tmpl)
{
	const cJSON *strategy = json_get_path(ctx->req->object, "spec", "strategy", NULL);

	switch (ctx->kind->id) {
	case KIND_ROLLOUT:
		return has_object(strategy, "canary") || has_object(strategy, "blueGreen");
	case KIND_DEPLOYMENT:
	case KIND_STATEFULSET:
		return has_canary_label(ctx, tmpl);
	default:
		return false;
	}
}

/* A missing or null type means the Kubernetes default, RollingUpdate; a
 * type of the wrong shape is not ours to judge. */
static bool type_is_rolling(const cJSON *strategy)
{
	const cJSON *t = json_get(strategy, "type");

	if (!t || cJSON_IsNull(t))
		return true;
	return cJSON_IsString(t) && strcmp(t->valuestring, "RollingUpdate") == 0;
}

bool rules_rolling_update(const struct rules_ctx *ctx)
{
	const cJSON *spec = json_get(ctx->req->object, "spec");

	switch (ctx->kind->id) {
	case KIND_DEPLOYMENT:
		return type_is_rolling(json_get(spec, "strategy"));
	case KIND_STATEFULSET:
	case KIND_DAEMONSET:
		return type_is_rolling(json_get(spec, "updateStrategy"));
	default:
		return false;
	}
}

void rules_check_canary_readiness(struct rules_ctx *ctx)
{
	if (ctx->kind->id == KIND_FLAGGER_CANARY)
		check_flagger(ctx);
	else if (ctx->tmpl && is_canary(ctx, ctx->tmpl))
		check_readiness(ctx, RULE_CANARY_WITHOUT_READINESS,
				container_list(ctx->tmpl, "containers"), NULL, NULL);
}

/* ---- rollout-without-readiness ---- */

/* After the canary rule: a container it reported is not reported again. */
void rules_check_rollout_readiness(struct rules_ctx *ctx)
{
	if (ctx->tmpl && rules_rolling_update(ctx))
		check_readiness(ctx, RULE_ROLLOUT_WITHOUT_READINESS,
				container_list(ctx->tmpl, "containers"), NULL, NULL);
}

/* ---- mutable-image-tag ---- */

/*
 * True when an image reference pins no content: no digest, and no tag or
 * the tag "latest" (*no_tag says which). Any "@" digest counts as pinned.
 * The tag follows the last ':' only when that ':' comes after the last '/',
 * so a registry port ("registry:5000/app") is not a tag.
 */
static bool image_mutable(const char *image, bool *no_tag)
{
	const char *slash = strrchr(image, '/'), *colon = strrchr(image, ':');

	*no_tag = false;
	if (strchr(image, '@'))
		return false;
	if (!colon || (slash && colon < slash) || colon[1] == '\0') {
		*no_tag = true;
		return true;
	}
	return strcmp(colon + 1, "latest") == 0;
}

void rules_check_image_tags(struct rules_ctx *ctx)
{
	char p[128];

	for (size_t l = 0; ctx->tmpl && l < N_LISTS; l++) {
		const cJSON *c;
		int i = -1;
		cJSON_ArrayForEach(c, container_list(ctx->tmpl, container_lists[l].field)) {
			const char *image = json_get_string(c, "image");
			bool no_tag;
			i++;
			if (!image || !*image || !image_mutable(image, &no_tag))
				continue;
			snprintf(p, sizeof(p), "spec.template.spec.%s[%d].image",
				 container_lists[l].field, i);
			rules_report(ctx, RULE_MUTABLE_IMAGE_TAG, p,
				     "container \"%.63s\" image \"%.128s\" %s; pin a version tag or "
				     "@sha256 digest",
				     container_name(c), image, no_tag ? "has no tag" : "uses latest");
		}
	}
}

/* ---- liveness-without-startup-grace ---- */

/* A liveness probe needs time before its first check, from a startupProbe
 * or initialDelaySeconds, or a slow start is killed and restarted. */
static bool liveness_without_grace(const cJSON *c)
{
	const cJSON *live = json_get(c, "livenessProbe");
	long long delay = 0;

	if (!cJSON_IsObject(live) || has_object(c, "startupProbe"))
		return false;
	if (json_get_int(live, "initialDelaySeconds", &delay) == 0 && delay > 0)
		return false;
	return true;
}

void rules_check_liveness(struct rules_ctx *ctx)
{
	char p[128];

	for (size_t l = 0; ctx->tmpl && l < N_LISTS; l++) {
		const cJSON *c;
		int i = -1;
		if (!container_lists[l].probes)
			continue;
		cJSON_ArrayForEach(c, container_list(ctx->tmpl, container_lists[l].field)) {
			i++;
			if (!liveness_without_grace(c))
				continue;
			snprintf(p, sizeof(p), "spec.template.spec.%s[%d].livenessProbe",
				 container_lists[l].field, i);
			rules_report(ctx, RULE_LIVENESS_WITHOUT_STARTUP_GRACE, p,
				     "container \"%.63s\": livenessProbe has no startup grace; add a "
				     "startupProbe",
				     container_name(c));
		}
	}
}

/* ---- pod-template-hash-tamper ---- */

/* Labels the Deployment and Argo Rollouts controllers put on the pods of
 * each ReplicaSet; set in a template they pin every ReplicaSet to one hash. */
static const char *const hash_labels[] = { "pod-template-hash", "rollouts-pod-template-hash" };

void rules_check_hash_labels(struct rules_ctx *ctx)
{
	const cJSON *labels = json_get_path(ctx->tmpl, "metadata", "labels", NULL);
	char p[128];

	if (!ctx->tmpl || !kinds_has(ctx->kind, KIND_OWNS_REPLICASETS))
		return;
	for (size_t i = 0; i < sizeof(hash_labels) / sizeof(hash_labels[0]); i++) {
		if (!json_get(labels, hash_labels[i]))
			continue;
		snprintf(p, sizeof(p), "spec.template.metadata.labels.%s", hash_labels[i]);
		rules_report(ctx, RULE_POD_TEMPLATE_HASH_TAMPER, p,
			     "pod template sets label \"%s\", which its controller owns; remove it",
			     hash_labels[i]);
	}
}
