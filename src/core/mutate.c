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
	const cJSON *tmpl;
	int rc;

	memset(plan, 0, sizeof(*plan));
	if (req->operation != OP_CREATE && req->operation != OP_UPDATE)
		return 0;
	tmpl = mutate_template(req);
	if (!tmpl)
		return 0;
	rc = optin_decide(cfg, req->namespace_, req->object, tmpl, &plan->refs, err, errlen);
	if (rc <= 0)
		return rc;
	if (mutate_batch(&plan->refs, req->namespace_, &plan->batch) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	plan->applies = true;
	return 0;
}

/* Sets (value) or removes (NULL) the hash where the workload keeps it
 * (mutate_hash_on_workload), adding the op to resp's patch. -1 when that
 * metadata is malformed or on OOM. */
static int set_hash(const struct admission_request *req, const char *key, const char *value,
		    struct admission_response *resp)
{
	char *ops = NULL;

	if ((mutate_hash_on_workload(stamped_kind(req), req->object)
		     ? patch_annotation(req->object, "", key, value, &ops)
		     : patch_template_annotation(req->object, key, value, &ops)) < 0)
		return -1;
	return patch_append(&resp->patch, ops);
}

/* When a lookup failed the hash cannot be known: keep what the workload had
 * (restoring it if the update dropped it) rather than stamp a wrong one. */
static int keep_previous(const struct admission_request *req, const char *key,
			 struct admission_response *resp)
{
	const struct kind *k = stamped_kind(req);
	const char *old = mutate_stamped_hash(k, req->old_object, key);
	const char *cur = mutate_stamped_hash(k, req->object, key);

	if (!old || (cur && strcmp(cur, old) == 0))
		return 0;
	/* A template we cannot patch is left as it is. */
	(void)set_hash(req, key, old, resp);
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
		if (plan->batch.items[i].status != LOOKUP_ABSENT || r->optional || r->need_match)
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
	struct refset joined = { NULL, 0, 0 }; /* shallow: borrows refs' strings */
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
	joined.refs = calloc(refs->n, sizeof(*joined.refs));
	if (!objs || !joined.refs)
		goto out;
	/* Objects that opt themselves out (ignore), or that a search does not
	 * match, are left out as if never referenced. */
	for (size_t i = 0; i < refs->n; i++) {
		const struct lookup_item *it = &batch->items[i];
		const struct obj_digest *d = it->status == LOOKUP_FOUND ? it->digest : NULL;
		if (!optin_object_joins(&refs->refs[i], d ? d->flags : 0))
			continue;
		objs[joined.n] = d;
		joined.refs[joined.n++] = refs->refs[i];
	}
	if (joined.n == 0)
		st = MUTATE_HASH_NONE;
	else if (confighash_compute(&joined, objs, cfg->hmac_key, cfg->hmac_key_len, out) == 0)
		st = MUTATE_HASH_OK;
out:
	free(joined.refs);
	free(objs);
	return st;
}

/* The first referenced object that must exist, joins the hash and does
 * not exist, or NULL. */
static const struct ref *first_missing(const struct stamp_plan *plan)
{
	for (size_t i = 0; i < plan->refs.n; i++) {
		const struct ref *r = &plan->refs.refs[i];
		if (plan->batch.items[i].status == LOOKUP_ABSENT && !r->optional && !r->need_match)
			return r;
	}
	return NULL;
}

/* Adds the ops of one change (rc and ops from a patch_* call) to the
 * patch; a change that cannot be made (malformed metadata) is skipped.
 * -1 on OOM only. */
static int add_ops(struct admission_response *resp, int rc, char *ops)
{
	if (rc < 0)
		return 0;
	return patch_append(&resp->patch, ops);
}

static int set_scheduler(const struct admission_request *req, const char *value,
			 struct admission_response *resp)
{
	char *ops = NULL;
	int rc = patch_template_spec_string(req->object, "schedulerName", value, &ops);

	return add_ops(resp, rc, ops);
}

static int set_workload_annotation(const struct admission_request *req, const char *key,
				   const char *value, struct admission_response *resp)
{
	char *ops = NULL;
	int rc = patch_annotation(req->object, "", key, value, &ops);

	return add_ops(resp, rc, ops);
}

/*
 * Wave's scheduling hold (stamp.holdUntilConfigExists): while a required
 * object is missing, the pod template's scheduler is a placeholder no
 * scheduler serves, so new pods wait in Pending instead of failing in
 * ContainerCreating; the original waits in an annotation. Once nothing is
 * missing, the original comes back (here on any write of the workload, and
 * from the reload controller when the object appears).
 */
static int hold(const struct config *cfg, const struct admission_request *req,
		const struct ref *missing, struct admission_response *resp)
{
	const cJSON *ann = json_get_path(req->object, "metadata", "annotations", NULL);
	const char *cur = json_get_string(json_get_path(req->object, "spec", "template", "spec", NULL),
					  "schedulerName");
	const char *saved = optin_own_annotation(cfg, req->object, OPTIN_HELD_SCHEDULER);
	const char *wave = json_get_string(ann, OPTIN_WAVE_HELD_SCHEDULER);
	char key[300], msg[320];

	if (!(cfg->stamp_hold && missing) && !saved && !wave)
		return 0; /* neither held nor to hold: the common case */
	config_annotation(cfg, OPTIN_HELD_SCHEDULER, key, sizeof(key));
	if (cfg->stamp_hold && missing) {
		snprintf(msg, sizeof(msg),
			 "rollgate: new pods are held (schedulerName %s) until %s \"%s\" exists",
			 OPTIN_HOLD_SCHEDULER, refs_kind(missing->kind)->singular, missing->name);
		if (admission_warn(resp, msg) < 0)
			return -1;
		if (optin_is_hold_scheduler(cur) && (saved || wave))
			return 0;
		if (set_workload_annotation(req, key,
					    optin_is_hold_scheduler(cur) ? "" : (cur ? cur : ""),
					    resp) < 0)
			return -1;
		return set_scheduler(req, OPTIN_HOLD_SCHEDULER, resp);
	}
	if (optin_is_hold_scheduler(cur)) {
		const char *orig = saved ? saved : wave;
		if (set_scheduler(req, *orig ? orig : NULL, resp) < 0)
			return -1;
	}
	if (saved && set_workload_annotation(req, key, NULL, resp) < 0)
		return -1;
	if (wave && set_workload_annotation(req, OPTIN_WAVE_HELD_SCHEDULER, NULL, resp) < 0)
		return -1;
	return 0;
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
		/* Nothing joins: a stale hash goes. */
		(void)set_hash(req, key, NULL, resp);
		return hold(cfg, req, NULL, resp);
	case MUTATE_HASH_ERROR:
		return -1;
	case MUTATE_HASH_OK:
		break;
	}
	if (warn_missing(plan, resp) < 0)
		return -1;
	if (set_hash(req, key, value, resp) < 0 &&
	    admission_warn(resp, "rollgate: config hash not set: pod template metadata is malformed") <
		    0)
		return -1;
	return hold(cfg, req, first_missing(plan), resp);
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
