/*
 * The reload controller (see reloader.h).
 *
 * Threads: the workload watch thread (kwatch) updates the workload table;
 * the cache's watch thread reports changes (objcache_subscribe), which only
 * mark workloads due; the controller thread computes hashes and patches.
 * One mutex guards the table, the index and the due list. The table and
 * the index are htables keyed by (kind, namespace, name); the index maps
 * an object to the workloads that use it, newest first. The controller
 * never holds it across I/O: it copies what it needs, unlocks, resolves
 * and patches, then relocks and finds the workload again by key.
 *
 * Per workload the controller keeps its kind, namespace, name, uid, the
 * reference set of its pod template and the hash it carries; never the
 * object.
 */
#include "reloader.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "array.h"
#include "confighash.h"
#include "configref.h"
#include "htable.h"
#include "jsonutil.h"
#include "kwatch.h"
#include "log.h"
#include "metrics.h"
#include "mutate.h"
#include "refs.h"
#include "rgassert.h"
#include "rgtime.h"

#define PATCH_TIMEOUT_MS 10000
#define RETRY_MIN_MS 5000
#define RETRY_MAX_MS 300000
#define POLL_MS 500 /* leadership and sync are re-checked at least this often */
#define TRIGGER_LEN 300
#define WORKLOADS_MAX (1u << 20) /* workloads tracked */
#define INDEX_MAX (1u << 22)     /* distinct objects they reference */

enum wkind { WK_DEPLOYMENT, WK_STATEFULSET, WK_DAEMONSET, WK_ROLLOUT, WK_COUNT };

static const struct wk {
	const char *group, *version, *kind, *resource, *api_version, *prefix;
	enum metrics_resource mr;
	bool optional;
} wks[WK_COUNT] = {
	{ "apps", "v1", "Deployment", "deployments", "apps/v1", "/apis/apps/v1", MR_DEPLOYMENTS,
	  false },
	{ "apps", "v1", "StatefulSet", "statefulsets", "apps/v1", "/apis/apps/v1", MR_STATEFULSETS,
	  false },
	{ "apps", "v1", "DaemonSet", "daemonsets", "apps/v1", "/apis/apps/v1", MR_DAEMONSETS, false },
	{ "argoproj.io", "v1alpha1", "Rollout", "rollouts", "argoproj.io/v1alpha1",
	  "/apis/argoproj.io/v1alpha1", MR_ROLLOUTS, true },
};

/* A key of both tables: a workload's (kind is an enum wkind) or a
 * referenced object's (an enum obj_kind). */
struct okey {
	unsigned kind;
	const char *ns, *name;
};

struct workload {
	struct okey key;        /* its own kind, ns and name */
	struct workload *dnext; /* due list, when dirty */
	enum wkind kind;
	char *ns, *name, *uid;
	struct refset refs;
	char *stamped; /* the hash it carries; NULL: never stamped */
	uint32_t gen;
	bool dirty;
	long long due_ms;
	char trigger[TRIGGER_LEN]; /* "ConfigMap \"x\"", or "" for a comparison */
	unsigned more;             /* further objects coalesced into this rollout */
	bool rate_counted;
	unsigned failures;
};

/* An index entry: workload w uses (w->refs.refs[ref].kind, w->ns, .name). */
struct use {
	struct workload *w;
	size_t ref;
};

/* Every use of one object, oldest first; the key's strings are its own. */
struct users {
	struct okey key;
	struct use *v;
	size_t n, cap;
	char text[];
};

struct wstream {
	struct reloader *r;
	enum wkind kind;
	char *ns; /* NULL: cluster-wide */
	uint32_t gen;
	bool synced, disabled; /* under r->lock */
};

struct reloader {
	struct kube_client *client;
	struct objcache *cache;
	struct objsource *src;
	struct lease *lease;
	struct kwatch *w;
	struct wstream *streams;
	size_t n_streams;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop, stopped;
	struct config_ref *cfg; /* the reloader's reference; swapped under lock */

	struct htable workloads; /* struct okey -> struct workload, owned */
	struct htable index;     /* struct okey -> struct users, owned */
	struct workload *due, *due_tail;
	bool synced;      /* every workload stream listed */
	bool compare_all; /* compare every workload once synced and leading */
	bool was_leader;
	double tokens;
	long long refill_ms;
};

/* Keyed: names are chosen by the cluster's users. */
static uint64_t okey_hash(const void *key, const uint64_t seed[2])
{
	const struct okey *k = key;

	return (htable_hash_str(k->ns, seed) * 0x9E3779B97F4A7C15ULL ^
		htable_hash_str(k->name, seed)) +
		k->kind;
}

static bool okey_equal(const void *a, const void *b)
{
	const struct okey *x = a, *y = b;

	return x->kind == y->kind && strcmp(x->ns, y->ns) == 0 && strcmp(x->name, y->name) == 0;
}

static void wl_free(void *p);

static void users_free(void *p)
{
	struct users *u = p;

	free(u->v);
	free(u);
}

static const struct htable_type workload_type = { okey_hash, okey_equal, NULL, wl_free };
static const struct htable_type index_type = { okey_hash, okey_equal, NULL, users_free };

/* ---- config references ---- */

/* A reference to the current config, for work done unlocked. */
static struct config_ref *current_config(struct reloader *r)
{
	struct config_ref *c;

	pthread_mutex_lock(&r->lock);
	c = config_ref(r->cfg);
	pthread_mutex_unlock(&r->lock);
	return c;
}

/* ---- the workload table and the index (lock held) ---- */

static struct workload *wl_find(struct reloader *r, enum wkind kind, const char *ns, const char *name)
{
	const struct okey k = { kind, ns, name };

	return htable_find(&r->workloads, &k);
}

/* The users of (kind, ns, name), added empty when new; NULL with *why. */
static struct users *users_get(struct reloader *r, const struct okey *k, const char **why)
{
	struct users *u = htable_find(&r->index, k);
	size_t nl, ml;
	int rc;

	if (u)
		return u;
	nl = strlen(k->ns) + 1;
	ml = strlen(k->name) + 1;
	u = calloc(1, sizeof(*u) + nl + ml);
	if (!u) {
		*why = "out of memory";
		return NULL;
	}
	memcpy(u->text, k->ns, nl);
	memcpy(u->text + nl, k->name, ml);
	u->key = (struct okey){ k->kind, u->text, u->text + nl };
	rc = htable_add(&r->index, &u->key, u, NULL);
	if (rc != 0) {
		free(u);
		*why = rc == HTABLE_E_FULL ? "too many referenced objects" : "out of memory";
		return NULL;
	}
	return u;
}

static void index_add(struct reloader *r, struct workload *w)
{
	for (size_t i = 0; i < w->refs.n; i++) {
		const struct okey k = { w->refs.refs[i].kind, w->ns, w->refs.refs[i].name };
		const char *why = "out of memory";
		struct users *u = users_get(r, &k, &why);
		if (!u || array_grow(&u->v, &u->cap, u->n + 1, sizeof(*u->v), WORKLOADS_MAX) < 0) {
			/* Without the entry this workload misses changes of
			 * one object until it is re-read: say so. */
			RG_LOG(LOG_ERROR, "cannot index a workload", LF_S("name", w->name),
			       LF_S("reason", why));
			if (u && u->n == 0)
				htable_delete(&r->index, &u->key);
			continue;
		}
		u->v[u->n++] = (struct use){ w, i };
	}
}

/* Order is kept: on_change visits the newest use first, as it always has. */
static void index_remove(struct reloader *r, struct workload *w)
{
	for (size_t i = 0; i < w->refs.n; i++) {
		const struct okey k = { w->refs.refs[i].kind, w->ns, w->refs.refs[i].name };
		struct users *u = htable_find(&r->index, &k);
		size_t j = 0;
		if (!u)
			continue; /* it could not be indexed */
		while (j < u->n && (u->v[j].w != w || u->v[j].ref != i))
			j++;
		if (j == u->n)
			continue;
		memmove(&u->v[j], &u->v[j + 1], (u->n - j - 1) * sizeof(*u->v));
		if (--u->n == 0)
			htable_delete(&r->index, &u->key); /* frees u */
	}
}

/* The due list holds exactly the dirty workloads, sorted by due time,
 * due_tail its last. */
static void due_unlink(struct reloader *r, struct workload *w)
{
	struct workload **p = &r->due, *prev = NULL;

	if (!w->dirty)
		return;
	while (*p && *p != w) {
		prev = *p;
		p = &(*p)->dnext;
	}
	RG_ASSERT(*p == w); /* a dirty workload is on the list */
	*p = w->dnext;
	if (r->due_tail == w)
		r->due_tail = prev;
	w->dnext = NULL;
	w->dirty = false;
}

/* Keeps the due list sorted by due time; new entries usually go last. */
static void due_insert(struct reloader *r, struct workload *w, long long due)
{
	struct workload **p = &r->due;

	RG_ASSERT(!w->dirty); /* on the list at most once */
	RG_ASSERT(!r->due_tail || !r->due_tail->dnext);
	w->due_ms = due;
	w->dirty = true;
	w->dnext = NULL;
	if (!r->due_tail || r->due_tail->due_ms <= due) {
		if (r->due_tail)
			r->due_tail->dnext = w;
		else
			r->due = w;
		r->due_tail = w;
		return;
	}
	while (*p && (*p)->due_ms <= due)
		p = &(*p)->dnext;
	w->dnext = *p;
	*p = w;
	if (!w->dnext)
		r->due_tail = w;
}

static void wl_free(void *p)
{
	struct workload *w = p;

	if (!w)
		return;
	free(w->ns);
	free(w->name);
	free(w->uid);
	free(w->stamped);
	refs_clear(&w->refs);
	free(w);
}

static void wl_remove(struct reloader *r, struct workload *w)
{
	bool found;

	due_unlink(r, w);
	index_remove(r, w);
	found = htable_delete(&r->workloads, &w->key); /* frees w */
	RG_ASSERT(found);
	(void)found;
	metrics_reload_workloads((long long)htable_size(&r->workloads));
}

/* Marks w due after the coalescing window, unless it already is: changes
 * within the window join the rollout already scheduled. */
static void schedule(struct reloader *r, struct workload *w, const char *trigger)
{
	if (w->dirty) {
		if (trigger[0] && strcmp(trigger, w->trigger) != 0)
			w->more++;
		return;
	}
	snprintf(w->trigger, sizeof(w->trigger), "%s", trigger);
	w->more = 0;
	w->failures = 0;
	w->rate_counted = false;
	due_insert(r, w, rgtime_now_ms() + r->cfg->cfg->reload_window_ms);
}

/* ---- workload watch handlers (workload watch thread) ---- */

static void on_list_start(void *arg)
{
	struct wstream *st = arg;

	pthread_mutex_lock(&st->r->lock);
	st->gen++;
	pthread_mutex_unlock(&st->r->lock);
}

/* The workload's references and stamped hash, decided exactly as the
 * webhook decides them for an UPDATE of the same object. Returns whether it
 * is opted in; plan is the caller's to free. */
static bool plan_workload(const struct config *cfg, const struct wk *k, const char *ns,
			  const char *name, const cJSON *obj, struct stamp_plan *plan, char **stamped)
{
	struct admission_request req;
	char err[256], key[300];
	const char *v;

	memset(&req, 0, sizeof(req));
	req.uid = "rollgate-reloader";
	req.group = k->group;
	req.version = k->version;
	req.kind = k->kind;
	req.resource = k->resource;
	req.subresource = "";
	req.name = name;
	req.namespace_ = ns;
	req.operation = OP_UPDATE;
	req.username = "";
	req.object = obj;
	*stamped = NULL;
	if (mutate_plan(cfg, &req, plan, err, sizeof(err)) < 0) {
		RG_LOG(LOG_DEBUG, "workload not watched: malformed", LF_S("kind", k->kind),
		       LF_S("namespace", ns), LF_S("name", name), LF_S("reason", err));
		return false;
	}
	if (!plan->applies)
		return false;
	v = json_get_string(json_get_path(obj, "spec", "template", "metadata", "annotations", NULL),
			    config_annotation(cfg, "config-hash", key, sizeof(key)));
	if (v && *v)
		*stamped = strdup(v);
	return true;
}

static struct workload *wl_new(struct reloader *r, enum wkind kind, const char *ns, const char *name)
{
	struct workload *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->kind = kind;
	w->ns = strdup(ns);
	w->name = strdup(name);
	w->key = (struct okey){ kind, w->ns, w->name };
	if (!w->ns || !w->name || htable_add(&r->workloads, &w->key, w, NULL) != 0) {
		wl_free(w);
		return NULL;
	}
	metrics_reload_workloads((long long)htable_size(&r->workloads));
	return w;
}

static void on_object(void *arg, enum kwatch_event ev, const cJSON *obj)
{
	struct wstream *st = arg;
	struct reloader *r = st->r;
	const cJSON *meta = json_get(obj, "metadata");
	const char *ns = json_get_string(meta, "namespace"), *name = json_get_string(meta, "name");
	const char *uid = json_get_string(meta, "uid");
	struct stamp_plan plan;
	struct config_ref *cfg;
	struct workload *w;
	char *stamped = NULL;
	bool applies = false;

	if (!ns || !name || !*name)
		return;
	memset(&plan, 0, sizeof(plan));
	if (ev != KWATCH_DELETED) {
		cfg = current_config(r);
		applies = plan_workload(cfg->cfg, &wks[st->kind], ns, name, obj, &plan, &stamped);
		config_unref(cfg);
	}
	pthread_mutex_lock(&r->lock);
	w = wl_find(r, st->kind, ns, name);
	if (!applies) {
		if (w)
			wl_remove(r, w);
		goto out;
	}
	if (!w)
		w = wl_new(r, st->kind, ns, name);
	if (!w) {
		RG_LOG(LOG_ERROR, "out of memory tracking a workload", LF_S("name", name));
		goto out;
	}
	index_remove(r, w);
	refs_clear(&w->refs);
	w->refs = plan.refs;
	memset(&plan.refs, 0, sizeof(plan.refs));
	free(w->stamped);
	w->stamped = stamped;
	stamped = NULL;
	free(w->uid);
	w->uid = uid ? strdup(uid) : NULL;
	w->gen = st->gen;
	index_add(r, w);
out:
	pthread_mutex_unlock(&r->lock);
	free(stamped);
	stamp_plan_clear(&plan);
}

static bool all_streams_synced(const struct reloader *r)
{
	for (size_t i = 0; i < r->n_streams; i++)
		if (!r->streams[i].synced && !r->streams[i].disabled)
			return false;
	return true;
}

/* Lock held. */
static void note_synced(struct reloader *r)
{
	if (r->synced || !all_streams_synced(r))
		return;
	r->synced = true;
	r->compare_all = true;
	RG_LOG(LOG_INFO, "reload controller synced", LF_I("workloads", htable_size(&r->workloads)));
	pthread_cond_broadcast(&r->cond);
}

static void on_synced(void *arg)
{
	struct wstream *st = arg;
	struct reloader *r = st->r;

	struct htable_iter it;
	void *v;

	pthread_mutex_lock(&r->lock);
	/* What the list did not deliver is gone. */
	htable_iter_init(&r->workloads, &it);
	while (htable_next(&r->workloads, &it, NULL, &v)) {
		struct workload *w = v;
		if (w->kind == st->kind && (!st->ns || strcmp(w->ns, st->ns) == 0) &&
		    w->gen != st->gen)
			wl_remove(r, w);
	}
	st->synced = true;
	note_synced(r);
	pthread_mutex_unlock(&r->lock);
}

static void on_disabled(void *arg)
{
	struct wstream *st = arg;

	pthread_mutex_lock(&st->r->lock);
	st->disabled = true;
	note_synced(st->r);
	pthread_mutex_unlock(&st->r->lock);
}

/* ---- config object changes (cache watch thread) ---- */

static bool keys_meet(const struct ref *ref, const struct objcache_change *ch)
{
	size_t i = 0, j = 0;

	while (i < ref->n_keys && j < ch->n_keys) {
		int c = strcmp(ref->keys[i], ch->keys[j]);
		if (c == 0)
			return true;
		if (c < 0)
			i++;
		else
			j++;
	}
	return false;
}

static void on_change(void *arg, const struct objcache_change *ch)
{
	struct reloader *r = arg;
	const struct okey k = { ch->kind, ch->ns, ch->name };
	char trigger[TRIGGER_LEN];
	struct users *u;
	bool any = false;

	snprintf(trigger, sizeof(trigger), "%s \"%s\"", refs_kind_name(ch->kind), ch->name);
	pthread_mutex_lock(&r->lock);
	u = htable_find(&r->index, &k);
	for (size_t i = u ? u->n : 0; i-- > 0;) {
		const struct use *use = &u->v[i];
		const struct ref *ref = &use->w->refs.refs[use->ref];
		RG_ASSERT(ref->kind == ch->kind && strcmp(ref->name, ch->name) == 0 &&
			  strcmp(use->w->ns, ch->ns) == 0);
		/* Unselected keys and metadata never schedule anything. */
		if (ch->existence || ref->whole || keys_meet(ref, ch)) {
			schedule(r, use->w, trigger);
			any = true;
		}
	}
	if (any)
		pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ---- computing and patching (controller thread) ---- */

/* What the controller needs of a workload while unlocked. */
struct snap {
	enum wkind kind;
	char *ns, *name, *uid;
	struct refset refs;
	char trigger[TRIGGER_LEN];
	unsigned more;
	char key[300];
};

static void snap_clear(struct snap *s)
{
	free(s->ns);
	free(s->name);
	free(s->uid);
	refs_clear(&s->refs);
	memset(s, 0, sizeof(*s));
}

static int refs_dup(const struct refset *in, struct refset *out)
{
	memset(out, 0, sizeof(*out));
	if (in->n == 0)
		return 0;
	out->refs = calloc(in->n, sizeof(*out->refs));
	if (!out->refs)
		return -1;
	for (; out->n < in->n; out->n++) {
		const struct ref *a = &in->refs[out->n];
		struct ref *b = &out->refs[out->n];
		*b = (struct ref){ .kind = a->kind,
				   .name = strdup(a->name),
				   .whole = a->whole,
				   .optional = a->optional };
		b->user = a->user ? strdup(a->user) : NULL;
		b->keys = a->n_keys ? calloc(a->n_keys, sizeof(*b->keys)) : NULL;
		if (!b->name || (a->user && !b->user) || (a->n_keys && !b->keys))
			return -1;
		for (; b->n_keys < a->n_keys; b->n_keys++) {
			b->keys[b->n_keys] = strdup(a->keys[b->n_keys]);
			if (!b->keys[b->n_keys])
				return -1;
		}
	}
	return 0;
}

static int snap_take(const struct workload *w, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->kind = w->kind;
	s->ns = strdup(w->ns);
	s->name = strdup(w->name);
	s->uid = w->uid ? strdup(w->uid) : NULL;
	memcpy(s->trigger, w->trigger, sizeof(s->trigger));
	s->more = w->more;
	if (!s->ns || !s->name || (w->uid && !s->uid) || refs_dup(&w->refs, &s->refs) < 0) {
		snap_clear(s);
		return -1;
	}
	return 0;
}

enum outcome { HASH_OK, HASH_NONE, HASH_FAILED };

/* Names the first object whose lookup failed; no values. */
static void log_unread(const struct snap *s, const struct lookup_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct lookup_item *it = &b->items[i];
		if (it->status == LOOKUP_FOUND || it->status == LOOKUP_ABSENT)
			continue;
		RG_LOG(LOG_WARN, "reload: cannot read an object; retrying later",
		       LF_S("namespace", s->ns), LF_S("workload", s->name),
		       LF_S("object_kind", it->kind == SRC_SECRET ? "Secret" : "ConfigMap"),
		       LF_S("object", it->name), LF_S("reason", it->reason));
		return;
	}
}

/*
 * The hash the webhook would stamp now: the same lookups through the same
 * source, then mutate_hash. HASH_NONE: nothing referenced. HASH_FAILED: a
 * lookup failed (the webhook would keep the old hash too); retried later.
 */
static enum outcome compute_hash(struct reloader *r, const struct config *cfg, struct snap *s,
				 char out[CONFIGHASH_VALUE_LEN])
{
	struct lookup_batch b = { s->ns, NULL, s->refs.n };
	enum outcome o = HASH_FAILED;

	config_annotation(cfg, "config-hash", s->key, sizeof(s->key));
	b.items = b.n ? calloc(b.n, sizeof(*b.items)) : NULL;
	if (b.n && !b.items)
		return HASH_FAILED;
	for (size_t i = 0; i < b.n; i++) {
		b.items[i].kind = s->refs.refs[i].kind == OBJ_SECRET ? SRC_SECRET : SRC_CONFIGMAP;
		b.items[i].name = s->refs.refs[i].name;
	}
	objsource_resolve_wait(r->src, &b, cfg->lookup_timeout_ms);
	switch (mutate_hash(cfg, &s->refs, &b, out, CONFIGHASH_VALUE_LEN)) {
	case MUTATE_HASH_OK:
		o = HASH_OK;
		break;
	case MUTATE_HASH_NONE:
		o = HASH_NONE;
		break;
	case MUTATE_HASH_UNKNOWN:
		log_unread(s, &b);
		break;
	case MUTATE_HASH_ERROR:
		break;
	}
	lookup_batch_clear(&b);
	free(b.items);
	return o;
}

static char *apply_body(const struct snap *s, const char *hash)
{
	cJSON *o = cJSON_CreateObject(), *meta, *ann;
	char *text = NULL;

	if (!o)
		return NULL;
	meta = cJSON_AddObjectToObject(o, "metadata");
	ann = cJSON_CreateObject();
	if (!cJSON_AddStringToObject(o, "apiVersion", wks[s->kind].api_version) ||
	    !cJSON_AddStringToObject(o, "kind", wks[s->kind].kind) || !meta || !ann ||
	    !cJSON_AddStringToObject(meta, "name", s->name) ||
	    !cJSON_AddStringToObject(meta, "namespace", s->ns) ||
	    !cJSON_AddStringToObject(ann, s->key, hash)) {
		cJSON_Delete(ann);
		goto out;
	}
	{
		cJSON *spec = cJSON_AddObjectToObject(o, "spec");
		cJSON *tmpl = spec ? cJSON_AddObjectToObject(spec, "template") : NULL;
		cJSON *tmeta = tmpl ? cJSON_AddObjectToObject(tmpl, "metadata") : NULL;
		if (!tmeta || !cJSON_AddItemToObject(tmeta, "annotations", ann)) {
			cJSON_Delete(ann);
			goto out;
		}
	}
	text = json_print(o);
out:
	cJSON_Delete(o);
	return text;
}

static void rfc3339(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

/* A Normal Event on the workload naming what triggered the rollout. Best
 * effort: a failure is logged, never retried. */
static void post_event(struct reloader *r, const struct snap *s, const char *hash)
{
	cJSON *e = cJSON_CreateObject(), *meta, *inv, *srcobj;
	char msg[700], gen[300], path[400], ts[32], err[256], why[300];
	struct kube_reply reply;
	char *body = NULL;

	if (s->trigger[0] && s->more)
		snprintf(msg, sizeof(msg),
			 "%s changed (and %u more objects): rolling out with config hash %s",
			 s->trigger, s->more, hash);
	else if (s->trigger[0])
		snprintf(msg, sizeof(msg), "%s changed: rolling out with config hash %s", s->trigger,
			 hash);
	else
		snprintf(msg, sizeof(msg),
			 "referenced ConfigMaps or Secrets changed while no controller watched: "
			 "rolling "
			 "out with config hash %s",
			 hash);
	snprintf(gen, sizeof(gen), "%.240s.", s->name);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", s->ns);
	rfc3339(ts);
	if (!e)
		return;
	meta = cJSON_AddObjectToObject(e, "metadata");
	inv = cJSON_AddObjectToObject(e, "involvedObject");
	srcobj = cJSON_AddObjectToObject(e, "source");
	if (!meta || !inv || !srcobj || !cJSON_AddStringToObject(e, "apiVersion", "v1") ||
	    !cJSON_AddStringToObject(e, "kind", "Event") ||
	    !cJSON_AddStringToObject(meta, "generateName", gen) ||
	    !cJSON_AddStringToObject(meta, "namespace", s->ns) ||
	    !cJSON_AddStringToObject(inv, "apiVersion", wks[s->kind].api_version) ||
	    !cJSON_AddStringToObject(inv, "kind", wks[s->kind].kind) ||
	    !cJSON_AddStringToObject(inv, "name", s->name) ||
	    !cJSON_AddStringToObject(inv, "namespace", s->ns) ||
	    (s->uid && !cJSON_AddStringToObject(inv, "uid", s->uid)) ||
	    !cJSON_AddStringToObject(e, "reason", "ConfigChanged") ||
	    !cJSON_AddStringToObject(e, "message", msg) ||
	    !cJSON_AddStringToObject(e, "type", "Normal") ||
	    !cJSON_AddStringToObject(srcobj, "component", "rollgate") ||
	    !cJSON_AddStringToObject(e, "firstTimestamp", ts) ||
	    !cJSON_AddStringToObject(e, "lastTimestamp", ts) ||
	    !cJSON_AddNumberToObject(e, "count", 1) ||
	    !cJSON_AddStringToObject(e, "reportingComponent", "rollgate") ||
	    !cJSON_AddStringToObject(e, "reportingInstance",
				     r->lease ? lease_identity(r->lease) : "rollgate"))
		goto out;
	body = json_print(e);
	if (!body)
		goto out;
	if (kube_client_request(r->client, "POST", path, "application/json", body, PATCH_TIMEOUT_MS,
				&reply, err, sizeof(err)) < 0) {
		RG_LOG(LOG_WARN, "cannot record the rollout Event", LF_S("reason", err));
		goto out;
	}
	if (reply.status != 201 && reply.status != 200) {
		kube_reply_describe(&reply, why, sizeof(why));
		RG_LOG(LOG_WARN, "cannot record the rollout Event", LF_S("reason", why));
	}
	kube_reply_clear(&reply);
out:
	free(body);
	cJSON_Delete(e);
}

/* The server-side apply of the hash. Returns the metrics outcome. */
static enum metrics_patch send_patch(struct reloader *r, const struct snap *s, const char *hash)
{
	const struct wk *k = &wks[s->kind];
	struct kube_reply reply;
	char path[700], err[256], why[300];
	char *body;
	enum metrics_patch out = PATCH_FAILED;

	if (!kube_valid_namespace(s->ns) || !kube_valid_name(s->name))
		return PATCH_FAILED;
	snprintf(path, sizeof(path), "%s/namespaces/%s/%s/%s?fieldManager=rollgate&force=true",
		 k->prefix, s->ns, k->resource, s->name);
	body = apply_body(s, hash);
	if (!body)
		return PATCH_FAILED;
	if (kube_client_request(r->client, "PATCH", path, "application/apply-patch+yaml", body,
				PATCH_TIMEOUT_MS, &reply, err, sizeof(err)) < 0) {
		RG_LOG(LOG_WARN, "reload: patch failed", LF_S("kind", k->kind),
		       LF_S("namespace", s->ns), LF_S("name", s->name), LF_S("reason", err));
		free(body);
		return PATCH_FAILED;
	}
	free(body);
	if (reply.status == 200 || reply.status == 201) {
		out = PATCH_APPLIED;
		RG_LOG(LOG_INFO, "reload: rollout triggered", LF_S("kind", k->kind),
		       LF_S("namespace", s->ns), LF_S("name", s->name),
		       LF_S("trigger", s->trigger[0] ? s->trigger : "comparison"),
		       LF_I("more", s->more), LF_S("hash", hash));
	} else {
		out = reply.status == 404 ? PATCH_NOT_FOUND : PATCH_FAILED;
		kube_reply_describe(&reply, why, sizeof(why));
		RG_LOG(LOG_WARN, "reload: patch rejected", LF_S("kind", k->kind),
		       LF_S("namespace", s->ns), LF_S("name", s->name), LF_S("reason", why));
	}
	kube_reply_clear(&reply);
	if (out == PATCH_APPLIED)
		post_event(r, s, hash);
	return out;
}

/* Token bucket; lock held. Returns 0 when a token was taken, else the ms
 * until one is available. */
static long long take_token(struct reloader *r, const struct config *cfg)
{
	long long now = rgtime_now_ms();
	double rate = cfg->reload_rate > 0 ? cfg->reload_rate : 1.0;
	double burst = cfg->reload_burst ? cfg->reload_burst : 1;

	if (r->refill_ms == 0)
		r->tokens = burst;
	else
		r->tokens += (double)(now - r->refill_ms) / 1000.0 * rate;
	if (r->tokens > burst)
		r->tokens = burst;
	r->refill_ms = now;
	if (r->tokens >= 1.0) {
		r->tokens -= 1.0;
		return 0;
	}
	return (long long)((1.0 - r->tokens) / rate * 1000.0) + 1;
}

static bool is_leader(struct reloader *r)
{
	return !r->lease || lease_is_leader(r->lease);
}

static void retry_later(struct reloader *r, struct workload *w)
{
	long long d = RETRY_MIN_MS;

	for (unsigned i = 0; i < w->failures && d < RETRY_MAX_MS; i++)
		d *= 2;
	if (d > RETRY_MAX_MS)
		d = RETRY_MAX_MS;
	w->failures++;
	due_insert(r, w, rgtime_now_ms() + d);
}

/*
 * One due workload, lock held on entry and exit (released for the lookups
 * and the PATCH). Compares with the hash the workload carries at decision
 * time; equal or never stamped means no patch.
 */
static void process(struct reloader *r, struct workload *w)
{
	char hash[CONFIGHASH_VALUE_LEN];
	enum wkind kind = w->kind;
	struct config_ref *cfg;
	enum outcome o;
	enum metrics_patch res;
	struct snap s;
	long long wait;

	if (snap_take(w, &s) < 0) {
		retry_later(r, w);
		return;
	}
	cfg = config_ref(r->cfg); /* lock held */
	pthread_mutex_unlock(&r->lock);
	o = compute_hash(r, cfg->cfg, &s, hash);
	pthread_mutex_lock(&r->lock);
	w = wl_find(r, kind, s.ns, s.name);
	if (!w || w->dirty)
		goto out; /* gone, or due again with newer news */
	if (o == HASH_FAILED) {
		retry_later(r, w);
		goto out;
	}
	if (o == HASH_NONE || !w->stamped || strcmp(w->stamped, hash) == 0 || !is_leader(r))
		goto out;
	wait = take_token(r, cfg->cfg);
	if (wait > 0) {
		if (!w->rate_counted)
			metrics_reload_rate_limited();
		w->rate_counted = true;
		due_insert(r, w, rgtime_now_ms() + wait);
		goto out;
	}
	w->rate_counted = false;
	pthread_mutex_unlock(&r->lock);
	res = send_patch(r, &s, hash);
	metrics_reload_patch(res);
	pthread_mutex_lock(&r->lock);
	w = wl_find(r, kind, s.ns, s.name);
	if (w && res == PATCH_APPLIED) {
		/* The watch confirms it shortly; until then assume it. */
		char *h = strdup(hash);
		if (h) {
			free(w->stamped);
			w->stamped = h;
		}
		w->failures = 0;
	} else if (w && res == PATCH_FAILED && !w->dirty) {
		retry_later(r, w);
	}
out:
	config_unref(cfg);
	snap_clear(&s);
}

static void compare_all(struct reloader *r)
{
	struct htable_iter it;
	void *w;

	htable_iter_init(&r->workloads, &it);
	while (htable_next(&r->workloads, &it, NULL, &w))
		schedule(r, w, "");
	RG_LOG(LOG_INFO, "reload: comparing every workload's hash",
	       LF_I("workloads", htable_size(&r->workloads)));
}

static void clear_due(struct reloader *r)
{
	while (r->due)
		due_unlink(r, r->due);
}

static void wait_until(struct reloader *r, long long until_ms)
{
	struct timespec ts;
	long long ms = until_ms - rgtime_now_ms();

	if (ms <= 0)
		return;
	if (ms > POLL_MS)
		ms = POLL_MS;
	rgtime_wall_after(&ts, ms);
	pthread_cond_timedwait(&r->cond, &r->lock, &ts);
}

static void *run(void *arg)
{
	struct reloader *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		bool leader = is_leader(r);
		struct workload *w;
		if (leader != r->was_leader) {
			r->was_leader = leader;
			if (leader)
				r->compare_all = true; /* a new leader trusts nobody's bookkeeping */
			else
				clear_due(r); /* the leader handles them */
		}
		if (!leader || !r->synced || !objcache_synced(r->cache)) {
			clear_due(r);
			wait_until(r, rgtime_now_ms() + POLL_MS);
			continue;
		}
		if (r->compare_all) {
			r->compare_all = false;
			compare_all(r);
		}
		w = r->due;
		if (!w || w->due_ms > rgtime_now_ms()) {
			wait_until(r, w ? w->due_ms : rgtime_now_ms() + POLL_MS);
			continue;
		}
		due_unlink(r, w);
		process(r, w);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- lifecycle ---- */

static int add_stream(struct reloader *r, struct wstream *st, enum wkind kind, const char *ns,
		      char *err, size_t errlen)
{
	char path[512];
	struct kwatch_spec spec = {
		.path = path,
		.label_selector = NULL,
		.resource = wks[kind].mr,
		.sensitive = false,
		.optional = wks[kind].optional,
		.handler = { on_list_start, on_object, on_synced, on_disabled, st },
	};

	st->r = r;
	st->kind = kind;
	st->ns = ns ? strdup(ns) : NULL;
	if (ns && !st->ns) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s%s%s%s", wks[kind].prefix, ns ? "namespaces/" : "",
		 ns ? ns : "", ns ? "/" : "", wks[kind].resource);
	return kwatch_add(r->w, &spec, err, errlen);
}

struct reloader *reloader_new(struct kube_client *client, struct objcache *cache,
			      struct objsource *src, struct lease *lease, struct config *cfg,
			      char *err, size_t errlen)
{
	struct reloader *r = calloc(1, sizeof(*r));
	size_t nns = cfg->watch_namespaces.n;

	if (r)
		r->cfg = config_ref_new(cfg);
	if (!r || !r->cfg) {
		snprintf(err, errlen, "out of memory");
		config_free(cfg); /* taken in every case */
		free(cfg);
		free(r);
		return NULL;
	}
	htable_init(&r->workloads, &workload_type, WORKLOADS_MAX);
	htable_init(&r->index, &index_type, INDEX_MAX);
	r->client = client;
	r->cache = cache;
	r->src = src;
	r->lease = lease;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	for (size_t i = 0; i < nns; i++) {
		if (!kube_valid_namespace(cfg->watch_namespaces.v[i])) {
			snprintf(err, errlen, "watch.namespaces: \"%.80s\" is not a namespace name",
				 cfg->watch_namespaces.v[i]);
			goto fail;
		}
	}
	r->w = kwatch_new(client);
	r->n_streams = WK_COUNT * (nns ? nns : 1);
	r->streams = calloc(r->n_streams, sizeof(*r->streams));
	if (!r->w || !r->streams) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < r->n_streams; i++)
		if (add_stream(r, &r->streams[i], (enum wkind)(i % WK_COUNT),
			       nns ? cfg->watch_namespaces.v[i / WK_COUNT] : NULL, err, errlen) < 0)
			goto fail;
	metrics_reload_workloads(0);
	return r;
fail:
	reloader_free(r);
	return NULL;
}

int reloader_start(struct reloader *r, char *err, size_t errlen)
{
	objcache_subscribe(r->cache, on_change, r);
	if (kwatch_start(r->w, err, errlen) < 0)
		return -1;
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		snprintf(err, errlen, "cannot start the reload controller thread");
		return -1;
	}
	r->started = true;
	RG_LOG(LOG_INFO, "reload controller started", LF_D("rate", r->cfg->cfg->reload_rate),
	       LF_I("burst", r->cfg->cfg->reload_burst),
	       LF_I("window_ms", r->cfg->cfg->reload_window_ms),
	       LF_S("identity", r->lease ? lease_identity(r->lease) : "(no leader election)"));
	return 0;
}

void reloader_set_config(struct reloader *r, struct config *cfg)
{
	struct config_ref *c = config_ref_new(cfg), *old;

	if (!c) {
		config_free(cfg);
		free(cfg);
		RG_LOG(LOG_ERROR, "out of memory: the reload controller keeps its config", LF_END);
		return;
	}
	pthread_mutex_lock(&r->lock);
	old = r->cfg;
	r->cfg = c;
	pthread_mutex_unlock(&r->lock);
	config_unref(old);
	/* Opt-in and references may read differently now. */
	kwatch_relist(r->w);
}

bool reloader_synced(struct reloader *r)
{
	bool s;

	pthread_mutex_lock(&r->lock);
	s = r->synced;
	pthread_mutex_unlock(&r->lock);
	return s;
}

void reloader_stop(struct reloader *r)
{
	if (!r || r->stopped)
		return;
	r->stopped = true;
	if (r->cache)
		objcache_subscribe(r->cache, NULL, NULL);
	kwatch_free(r->w);
	r->w = NULL;
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
	}
}

void reloader_free(struct reloader *r)
{
	if (!r)
		return;
	reloader_stop(r);
	htable_clear(&r->index);
	htable_clear(&r->workloads);
	for (size_t i = 0; r->streams && i < r->n_streams; i++)
		free(r->streams[i].ns);
	free(r->streams);
	config_unref(r->cfg);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
