/*
 * Config-hash stamping: which workloads, which objects, and the patch.
 * Pure; the lookups between mutate_plan and mutate_finish are the caller's.
 */
#include "mutate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confighash.h"
#include "jsonutil.h"
#include "kinds.h"
#include "optin.h"
#include "patch.h"

/* Annotations of other tools that opt a workload in, so users switch over
 * without editing manifests. */
static const char wave_optin[] = "wave.pusher.com/update-on-config-change";
static const char reloader_auto[] = "reloader.stakater.com/auto";
static const char reloader_cm_auto[] = "configmap.reloader.stakater.com/auto";
static const char reloader_secret_auto[] = "secret.reloader.stakater.com/auto";
static const char reloader_cm_list[] = "configmap.reloader.stakater.com/reload";
static const char reloader_secret_list[] = "secret.reloader.stakater.com/reload";

/* Which kinds of reference a workload opted in for. */
struct optin {
	bool configmaps;
	bool secrets;
};

/* The row of the kinds table when req is about a kind /mutate stamps. */
static const struct kind *stamped_kind(const struct admission_request *req)
{
	const struct kind *k = kinds_by_group_kind(req->group, req->kind);

	return kinds_has(k, KIND_STAMPED) ? k : NULL;
}

const cJSON *mutate_template(const struct admission_request *req)
{
	return kinds_template(stamped_kind(req), req->object);
}

static bool annotation_is(const cJSON *ann, const char *key, const char *value)
{
	const char *v = json_get_string(ann, key);
	return v && strcmp(v, value) == 0;
}

static bool annotation_set(const cJSON *ann, const char *key)
{
	const char *v = json_get_string(ann, key);
	return v && *v;
}

static struct optin decide_optin(const struct config *cfg, const cJSON *ann)
{
	char reload[300], cms[300], secrets[300];
	struct optin o = { false, false };
	bool all;

	config_annotation(cfg, "reload", reload, sizeof(reload));
	config_annotation(cfg, "configmaps", cms, sizeof(cms));
	config_annotation(cfg, "secrets", secrets, sizeof(secrets));
	if (annotation_is(ann, reload, "false"))
		return o;
	all = cfg->stamp_mode == STAMP_ALL || annotation_is(ann, reload, "true") ||
		annotation_is(ann, wave_optin, "true") || annotation_is(ann, reloader_auto, "true") ||
		annotation_set(ann, reloader_cm_list) || annotation_set(ann, reloader_secret_list) ||
		annotation_set(ann, cms) || annotation_set(ann, secrets);
	o.configmaps = all || annotation_is(ann, reloader_cm_auto, "true");
	o.secrets = all || annotation_is(ann, reloader_secret_auto, "true");
	return o;
}

static void ref_release(struct ref *r)
{
	free(r->name);
	for (size_t k = 0; k < r->n_keys; k++)
		free(r->keys[k]);
	free(r->keys);
	free(r->user);
}

/* Drops the references of a kind the workload did not opt in for (Reloader's
 * configmap-only and secret-only auto annotations). */
static void keep_kinds(struct refset *set, struct optin o)
{
	size_t w = 0;

	for (size_t i = 0; i < set->n; i++) {
		struct ref *r = &set->refs[i];
		if (r->kind == OBJ_CONFIGMAP ? o.configmaps : o.secrets)
			set->refs[w++] = *r;
		else
			ref_release(r);
	}
	set->n = w;
}

static int add_lists(const struct config *cfg, const cJSON *ann, struct refset *set)
{
	char cms[300], secrets[300];
	const struct {
		const char *key;
		enum obj_kind kind;
	} lists[] = {
		{ reloader_cm_list, OBJ_CONFIGMAP },
		{ reloader_secret_list, OBJ_SECRET },
		{ config_annotation(cfg, "configmaps", cms, sizeof(cms)), OBJ_CONFIGMAP },
		{ config_annotation(cfg, "secrets", secrets, sizeof(secrets)), OBJ_SECRET },
	};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		const char *v = json_get_string(ann, lists[i].key);
		if (v && refs_add_list(set, lists[i].kind, v, lists[i].key) < 0)
			return -1;
	}
	return 0;
}

int mutate_batch(const struct refset *refs, const char *ns, struct lookup_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->namespace_ = ns;
	if (refs->n == 0)
		return 0;
	b->items = calloc(refs->n, sizeof(*b->items));
	if (!b->items)
		return -1;
	b->n = refs->n;
	for (size_t i = 0; i < b->n; i++) {
		const struct ref *r = &refs->refs[i];
		b->items[i].kind = r->kind == OBJ_CONFIGMAP ? SRC_CONFIGMAP : SRC_SECRET;
		b->items[i].name = refs_object_name(r);
		b->items[i].namespace_ = r->namespace_;
	}
	return 0;
}

bool mutate_hash_on_workload(const struct kind *k, const cJSON *workload)
{
	const char *v;

	if (k != kinds_get(KIND_ROLLOUT))
		return false;
	v = optin_annotation(workload, kinds_template(k, workload), OPTIN_RELOADER_ROLLOUT_STRATEGY);
	return v && strcmp(v, "restart") == 0;
}

const char *mutate_stamped_hash(const struct kind *k, const cJSON *workload, const char *key)
{
	const cJSON *holder = mutate_hash_on_workload(k, workload) ? workload
								   : kinds_template(k, workload);

	return json_get_string(json_get_path(holder, "metadata", "annotations", NULL), key);
}

int mutate_plan(const struct config *cfg, const struct admission_request *req, struct stamp_plan *plan,
		char *err, size_t errlen)
{
	const cJSON *tmpl, *ann, *podspec;
	struct optin o;

	memset(plan, 0, sizeof(*plan));
	if (req->operation != OP_CREATE && req->operation != OP_UPDATE)
		return 0;
	tmpl = mutate_template(req);
	if (!tmpl)
		return 0;
	ann = json_get_path(req->object, "metadata", "annotations", NULL);
	o = decide_optin(cfg, ann);
	if (!o.configmaps && !o.secrets)
		return 0;
	podspec = json_get(tmpl, "spec");
	if (podspec && refs_collect(podspec, &plan->refs, err, errlen) < 0)
		return -1;
	if (add_lists(cfg, ann, &plan->refs) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	keep_kinds(&plan->refs, o);
	refs_finish(&plan->refs);
	if (mutate_batch(&plan->refs, req->namespace_, &plan->batch) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	plan->applies = true;
	return 0;
}

/* When a lookup failed the hash cannot be known: keep what the workload had
 * (restoring it if the update dropped it) rather than stamp a wrong one. */
static int keep_previous(const struct admission_request *req, const char *key,
			 struct admission_response *resp)
{
	const struct kind *k = stamped_kind(req);
	const char *old = json_get_string(json_get_path(kinds_template(k, req->old_object), "metadata",
							"annotations", NULL),
					  key);
	const char *cur = json_get_string(
		json_get_path(kinds_template(k, req->object), "metadata", "annotations", NULL), key);

	if (!old || (cur && strcmp(cur, old) == 0))
		return 0;
	/* A template we cannot patch is left as it is. */
	(void)patch_template_annotation(req->object, key, old, &resp->patch);
	return 0;
}

static int lookup_failed(const struct admission_request *req, const struct ref *r, const char *key,
			 struct admission_response *resp)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "rollgate: config hash not updated: cannot read %s \"%s\"",
		 refs_kind(r->kind)->singular, r->name);
	if (admission_warn(resp, msg) < 0)
		return -1;
	return keep_previous(req, key, resp);
}

static int warn_missing(const struct stamp_plan *plan, struct admission_response *resp)
{
	char msg[256];

	for (size_t i = 0; i < plan->refs.n; i++) {
		const struct ref *r = &plan->refs.refs[i];
		if (plan->batch.items[i].status != LOOKUP_ABSENT || r->optional)
			continue;
		snprintf(msg, sizeof(msg), "%s \"%s\" referenced by %s does not exist yet",
			 refs_kind(r->kind)->singular, r->name,
			 r->user ? r->user : "the pod template");
		if (admission_warn(resp, msg) < 0)
			return -1;
	}
	return 0;
}

/* The first item without an answer, or NULL when every lookup answered. */
static const struct lookup_item *failed_item(const struct lookup_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].status == LOOKUP_ERROR || b->items[i].status == LOOKUP_NONE)
			return &b->items[i];
	return NULL;
}

enum mutate_hash_status mutate_hash(const struct config *cfg, const struct refset *refs,
				    const struct lookup_batch *batch, char *out, size_t outlen)
{
	const struct obj_digest **objs = NULL;
	enum mutate_hash_status st = MUTATE_HASH_ERROR;

	if (outlen > 0)
		out[0] = '\0';
	if (failed_item(batch))
		return MUTATE_HASH_UNKNOWN;
	if (refs->n == 0)
		return MUTATE_HASH_NONE;
	if (outlen < CONFIGHASH_VALUE_LEN || batch->n != refs->n)
		return MUTATE_HASH_ERROR;
	objs = calloc(refs->n, sizeof(*objs));
	if (!objs)
		return MUTATE_HASH_ERROR;
	for (size_t i = 0; i < refs->n; i++)
		objs[i] = batch->items[i].status == LOOKUP_FOUND ? batch->items[i].digest : NULL;
	if (confighash_compute(refs, objs, cfg->hmac_key, cfg->hmac_key_len, out) == 0)
		st = MUTATE_HASH_OK;
	free(objs);
	return st;
}

int mutate_finish(const struct config *cfg, const struct admission_request *req,
		  struct stamp_plan *plan, struct admission_response *resp)
{
	char key[300], value[CONFIGHASH_VALUE_LEN];

	if (!plan->applies)
		return 0;
	config_annotation(cfg, "config-hash", key, sizeof(key));
	switch (mutate_hash(cfg, &plan->refs, &plan->batch, value, sizeof(value))) {
	case MUTATE_HASH_UNKNOWN:
		/* Item i answers ref i. */
		plan->skipped = failed_item(&plan->batch);
		return lookup_failed(req, &plan->refs.refs[plan->skipped - plan->batch.items], key,
				     resp);
	case MUTATE_HASH_NONE:
		/* Nothing referenced: a stale hash goes. */
		(void)patch_template_annotation(req->object, key, NULL, &resp->patch);
		return 0;
	case MUTATE_HASH_ERROR:
		return -1;
	case MUTATE_HASH_OK:
		break;
	}
	if (warn_missing(plan, resp) < 0)
		return -1;
	if (patch_template_annotation(req->object, key, value, &resp->patch) < 0 &&
	    admission_warn(resp, "rollgate: config hash not set: pod template metadata is malformed") <
		    0)
		return -1;
	return 0;
}

void stamp_plan_clear(struct stamp_plan *plan)
{
	if (!plan)
		return;
	lookup_batch_clear(&plan->batch);
	free(plan->batch.items);
	refs_clear(&plan->refs);
	memset(plan, 0, sizeof(*plan));
}
