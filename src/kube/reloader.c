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
#include "kinds.h"
#include "kwatch.h"
#include "labelsel.h"
#include "log.h"
#include "metrics.h"
#include "mutate.h"
#include "optin.h"
#include "patch.h"
#include "refs.h"
#include "rgassert.h"
#include "rgtime.h"
#include "wlwatch.h"

#define PATCH_TIMEOUT_MS 10000
#define RETRY_MIN_MS 5000
#define RETRY_MAX_MS 300000
#define POLL_MS 500 /* leadership and sync are re-checked at least this often */
#define TRIGGER_LEN 300
#define WORKLOADS_MAX (1u << 20)               /* workloads tracked */
#define INDEX_MAX (1u << 22)                   /* distinct objects they reference */
#define NAMESPACES_MAX (1u << 20)              /* namespaces matching reload.namespaceSelector */
#define PAUSE_MAX_MS (30LL * 24 * 3600 * 1000) /* longest pause-period honoured */

enum wkind { WK_DEPLOYMENT, WK_STATEFULSET, WK_DAEMONSET, WK_ROLLOUT, WK_COUNT };

/* The kinds watched, in enum wkind's order (wlwatch). */
static const enum kind_id wk_ids[WK_COUNT] = { KIND_DEPLOYMENT, KIND_STATEFULSET, KIND_DAEMONSET,
					       KIND_ROLLOUT };

static const struct kind *wk(enum wkind k)
{
	return kinds_get(wk_ids[k]);
}

/* A key of both tables: a workload's (kind is an enum wkind) or a
 * referenced object's (an enum obj_kind). */
struct okey {
	unsigned kind;
	const char *ns, *name;
};

/* What the controller reads of a workload object besides its references
 * (wstate_read); owned strings. */
struct wstate {
	char *stamped;         /* the hash it carries; NULL: never stamped */
	bool hash_on_workload; /* kept on its metadata (Rollout restart strategy) */
	bool tmpl_meta;        /* its pod template has metadata */
	bool tmpl_ann;         /* ... with an annotations object */
	/* pause-period (Deployments) */
	char *pause_period;     /* the annotation's text; NULL: none */
	long long paused_until; /* our paused-until, unix ms; 0: none; -1: unreadable */
	char *paused_text;      /* ... as written (the resume tests it) */
	bool spec_paused;
	/* the scheduling hold (ours or Wave's) */
	char *hold_placeholder; /* the placeholder scheduler set now; NULL: not held */
	char *held_from;        /* the scheduler to restore ("": none) */
	char *held_key;         /* our annotation keeping it; NULL: none */
	bool wave_held;         /* Wave's annotation keeps it too (or alone) */
};

struct workload {
	struct okey key;        /* its own kind, ns and name */
	struct workload *dnext; /* due list, when dirty */
	enum wkind kind;
	char *ns, *name, *uid;
	struct refset refs;
	struct wstate st;
	uint32_t gen;
	bool dirty;
	long long due_ms;
	char trigger[TRIGGER_LEN]; /* "ConfigMap \"x\"", or "" for a comparison */
	unsigned more;             /* further objects coalesced into this rollout */
	/* the object that triggered it (last-reloaded-from); tname NULL: none */
	enum obj_kind tkind;
	char *tns, *tname;
	bool rate_counted;
	unsigned failures;
	long long resume_retry_ms; /* monotonic: a failed resume is retried after it */
};

/* An index entry: workload w uses the object of w->refs.refs[ref] (in
 * ref_key's namespace). */
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

struct reloader {
	struct kube_client *client;
	struct objcache *cache;
	struct objsource *src;
	struct lease *lease;
	struct wlwatch *ww; /* the workload streams and the controller thread */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopped;
	struct config_ref *cfg; /* the reloader's reference; swapped under lock */

	struct htable workloads; /* struct okey -> struct workload, owned */
	struct htable index;     /* struct okey -> struct users, owned */
	struct workload *due, *due_tail;
	bool compare_all; /* compare every workload once synced and leading */
	bool was_leader;
	double tokens;
	long long refill_ms;

	/* reload.namespaceSelector (read at startup); sel NULL: every namespace */
	struct labelsel *ns_sel;
	struct htable ns_match; /* name -> malloc'd name, of matching Namespaces */
	uint32_t ns_gen;
	bool ns_synced;
	/* the earliest paused-until among the workloads (unix ms); 0: none */
	long long next_resume;
};

/* A matching namespace: its name and the list generation that saw it. */
struct nsmatch {
	uint32_t gen;
	char name[];
};

static const struct htable_type nsmatch_type = { htable_hash_str, htable_equal_str, NULL, free };

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

/* The object reference i of w names: in its own namespace (Wave's extra
 * lists) or the workload's. */
static struct okey ref_key(const struct workload *w, size_t i)
{
	const struct ref *f = &w->refs.refs[i];

	return (struct okey){ f->kind, f->namespace_ ? f->namespace_ : w->ns, refs_object_name(f) };
}

static bool ref_is(const struct workload *w, size_t i, const struct okey *k)
{
	const struct okey rk = ref_key(w, i);

	return okey_equal(&rk, k);
}

static void index_add(struct reloader *r, struct workload *w)
{
	for (size_t i = 0; i < w->refs.n; i++) {
		const struct okey k = ref_key(w, i);
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
		const struct okey k = ref_key(w, i);
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

static void wstate_clear(struct wstate *st)
{
	free(st->stamped);
	free(st->pause_period);
	free(st->paused_text);
	free(st->hold_placeholder);
	free(st->held_from);
	free(st->held_key);
	memset(st, 0, sizeof(*st));
}

static void trigger_clear(struct workload *w)
{
	free(w->tns);
	free(w->tname);
	w->tns = w->tname = NULL;
}

static void wl_free(void *p)
{
	struct workload *w = p;

	if (!w)
		return;
	free(w->ns);
	free(w->name);
	free(w->uid);
	wstate_clear(&w->st);
	trigger_clear(w);
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
 * within the window join the rollout already scheduled. ch: the change
 * that triggers it (NULL: a comparison). */
static void schedule(struct reloader *r, struct workload *w, const char *trigger,
		     const struct objcache_change *ch)
{
	if (w->dirty) {
		if (trigger[0] && strcmp(trigger, w->trigger) != 0)
			w->more++;
		return;
	}
	snprintf(w->trigger, sizeof(w->trigger), "%s", trigger);
	trigger_clear(w);
	if (ch) {
		w->tkind = ch->kind;
		w->tns = strdup(ch->ns);
		w->tname = strdup(ch->name);
		if (!w->tns || !w->tname)
			trigger_clear(w); /* the rollout goes on without its cause */
	}
	w->more = 0;
	w->failures = 0;
	w->rate_counted = false;
	due_insert(r, w, rgtime_now_ms() + r->cfg->cfg->reload_window_ms);
}

/* ---- workload watch handlers (workload watch thread) ---- */

/* Unix time in ms (the paused-until annotation is wall-clock time). */
static long long wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2006-01-02T15:04:05Z" of unix ms t. */
static void rfc3339_at(long long t, char out[32])
{
	time_t sec = (time_t)(t / 1000);
	struct tm tm;

	gmtime_r(&sec, &tm);
	if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

/* The unix ms of an RFC 3339 UTC time as rfc3339_at writes it; -1 when s
 * is not one. */
static long long rfc3339_parse(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return (long long)timegm(&tm) * 1000;
}

/*
 * A Go duration (time.ParseDuration: "30s", "5m", "1h30m", "1.5h",
 * "300ms"), as Reloader reads pause-period, in ms. Returns -1 when s is not
 * one, is not positive, or passes PAUSE_MAX_MS.
 */
static long long go_duration_ms(const char *s)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
		      { "s", 1e3 },   { "m", 6e4 },   { "h", 3.6e6 } };
	double total = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		double v;
		size_t best = 0, bi = 0;
		if ((*s < '0' || *s > '9') && *s != '.')
			return -1;
		v = strtod(s, &end);
		if (end == s)
			return -1;
		s = end;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].unit);
			if (n > best && strncmp(s, units[i].unit, n) == 0) {
				best = n;
				bi = i;
			}
		}
		if (!best)
			return -1; /* a number needs its unit */
		total += v * units[bi].ms;
		s += best;
		if (total > (double)PAUSE_MAX_MS)
			return -1;
	}
	return total >= 1 ? (long long)total : -1;
}

/* The hold on the pod template, read as the webhook reads it: a
 * placeholder scheduler with our annotation or Wave's keeping the original
 * (ours first). */
static int read_hold(const struct config *cfg, const cJSON *obj, const cJSON *tmpl, struct wstate *st)
{
	const cJSON *ann = json_get_path(obj, "metadata", "annotations", NULL);
	const char *sched = json_get_string(json_get(tmpl, "spec"), "schedulerName");
	const char *saved, *wave;
	char key[300];

	config_annotation(cfg, OPTIN_HELD_SCHEDULER, key, sizeof(key));
	saved = json_get_string(ann, key);
	wave = json_get_string(ann, OPTIN_WAVE_HELD_SCHEDULER);
	if (!optin_is_hold_scheduler(sched) || (!saved && !wave))
		return 0; /* a placeholder without the original: not ours to undo */
	st->hold_placeholder = strdup(sched);
	st->held_from = strdup(saved ? saved : wave);
	st->held_key = saved ? strdup(key) : NULL;
	st->wave_held = wave != NULL;
	return st->hold_placeholder && st->held_from && (!saved || st->held_key) ? 0 : -1;
}

/* A copy of s, or NULL for NULL; sets *oom when the copy fails. */
static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

/* Reads what the controller keeps of a workload object besides its
 * references. -1 on OOM (st cleared). */
static int wstate_read(const struct config *cfg, const struct kind *kind, const cJSON *obj,
		       struct wstate *st)
{
	const cJSON *tmpl = kinds_template(kind, obj);
	const cJSON *tmeta = json_get(tmpl, "metadata");
	const char *v;
	char key[300];
	bool oom = false;

	memset(st, 0, sizeof(*st));
	v = mutate_stamped_hash(kind, obj, config_annotation(cfg, "config-hash", key, sizeof(key)));
	st->stamped = dup_or_null(v && *v ? v : NULL, &oom);
	st->hash_on_workload = mutate_hash_on_workload(kind, obj);
	st->tmpl_meta = cJSON_IsObject(tmeta);
	st->tmpl_ann = cJSON_IsObject(json_get(tmeta, "annotations"));
	if (kind->id == KIND_DEPLOYMENT) {
		st->pause_period =
			dup_or_null(optin_annotation(obj, tmpl, OPTIN_RELOADER_PAUSE_PERIOD), &oom);
		v = json_get_string(json_get_path(obj, "metadata", "annotations", NULL),
				    config_annotation(cfg, OPTIN_PAUSED_UNTIL, key, sizeof(key)));
		st->paused_until = v ? rfc3339_parse(v) : 0;
		st->paused_text = dup_or_null(v, &oom);
		st->spec_paused = cJSON_IsTrue(json_get(json_get(obj, "spec"), "paused"));
	}
	if (oom || read_hold(cfg, obj, tmpl, st) < 0) {
		wstate_clear(st);
		return -1;
	}
	return 0;
}

/* The workload's references, decided exactly as the webhook decides them
 * for an UPDATE of the same object. Returns whether it is opted in; plan is
 * the caller's to free. */
static bool plan_workload(const struct config *cfg, const struct kind *k, const char *ns,
			  const char *name, const cJSON *obj, struct stamp_plan *plan)
{
	struct admission_request req;
	char err[256];

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
	if (mutate_plan(cfg, &req, plan, err, sizeof(err)) < 0) {
		RG_LOG(LOG_DEBUG, "workload not watched: malformed", LF_S("kind", k->kind),
		       LF_S("namespace", ns), LF_S("name", name), LF_S("reason", err));
		return false;
	}
	return plan->applies;
}

/* Whether obj is paused with our paused-until annotation on it. */
static bool paused_by_us(const struct config *cfg, const cJSON *obj)
{
	char key[300];

	config_annotation(cfg, OPTIN_PAUSED_UNTIL, key, sizeof(key));
	return json_get_bool(json_get(obj, "spec"), "paused") &&
		json_get_string(json_get_path(obj, "metadata", "annotations", NULL), key);
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

/* Lock held. A workload our pause holds is due to resume at its deadline;
 * a held one is checked (what it waits for may exist already). */
static void note_workload(struct reloader *r, struct workload *w)
{
	long long until = w->st.paused_until;

	if (until != 0 && (until < 0 || w->st.spec_paused)) {
		if (until < 0)
			until = 1; /* unreadable: resume now */
		if (r->next_resume == 0 || until < r->next_resume)
			r->next_resume = until;
		pthread_cond_broadcast(&r->cond);
	}
	if (w->st.hold_placeholder && !w->dirty)
		schedule(r, w, "", NULL);
}

static void on_object(void *arg, const struct wlwatch_stream *st, enum kwatch_event ev,
		      const cJSON *obj)
{
	struct reloader *r = arg;
	const cJSON *meta = json_get(obj, "metadata");
	const char *ns = json_get_string(meta, "namespace"), *name = json_get_string(meta, "name");
	const char *uid = json_get_string(meta, "uid");
	struct stamp_plan plan;
	struct config_ref *cfg;
	struct workload *w;
	struct wstate ws;
	bool applies = false;

	if (!ns || !name || !*name)
		return;
	memset(&plan, 0, sizeof(plan));
	memset(&ws, 0, sizeof(ws));
	if (ev != KWATCH_DELETED) {
		cfg = current_config(r);
		applies = plan_workload(cfg->cfg, wk(st->kind), ns, name, obj, &plan);
		/* A Deployment our pause holds stays tracked until it is resumed,
		 * even once it no longer opts in (with no references, nothing
		 * else happens to it). */
		applies = applies || (st->kind == WK_DEPLOYMENT && paused_by_us(cfg->cfg, obj));
		if (applies && wstate_read(cfg->cfg, wk(st->kind), obj, &ws) < 0) {
			RG_LOG(LOG_ERROR, "out of memory tracking a workload", LF_S("name", name));
			applies = false;
		}
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
	wstate_clear(&w->st);
	w->st = ws;
	memset(&ws, 0, sizeof(ws));
	free(w->uid);
	w->uid = uid ? strdup(uid) : NULL;
	w->gen = st->gen;
	index_add(r, w);
	note_workload(r, w);
out:
	pthread_mutex_unlock(&r->lock);
	wstate_clear(&ws);
	stamp_plan_clear(&plan);
}

/* What the list of st did not deliver is gone. Lock held. */
static void on_sweep(void *arg, const struct wlwatch_stream *st)
{
	struct reloader *r = arg;
	struct htable_iter it;
	void *v;

	htable_iter_init(&r->workloads, &it);
	while (htable_next(&r->workloads, &it, NULL, &v)) {
		struct workload *w = v;
		if (w->kind == st->kind && (!st->ns || strcmp(w->ns, st->ns) == 0) &&
		    w->gen != st->gen)
			wl_remove(r, w);
	}
}

/* Lock held: the Namespaces of reload.namespaceSelector have listed. */
static bool on_ready(void *arg)
{
	struct reloader *r = arg;

	return !r->ns_sel || r->ns_synced;
}

/* Lock held. */
static void on_synced(void *arg)
{
	struct reloader *r = arg;

	r->compare_all = true;
	RG_LOG(LOG_INFO, "reload controller synced", LF_I("workloads", htable_size(&r->workloads)));
	pthread_cond_broadcast(&r->cond);
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
		RG_ASSERT(ref_is(use->w, use->ref, &k));
		/* Unselected keys and other metadata never schedule anything;
		 * ignore/match decide whether the object counts at all. */
		if (ch->existence || ch->flags || ref->whole || keys_meet(ref, ch)) {
			schedule(r, use->w, trigger, ch);
			any = true;
		}
	}
	if (any)
		pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ---- Namespaces matching reload.namespaceSelector (workload watch thread) ---- */

static void ns_list_start(void *arg)
{
	struct reloader *r = arg;

	pthread_mutex_lock(&r->lock);
	r->ns_gen++;
	pthread_mutex_unlock(&r->lock);
}

/* The labels are checked here too: whether a filtered watch reports an
 * object leaving the selector is the server's business. */
static void ns_object(void *arg, enum kwatch_event ev, const cJSON *obj)
{
	struct reloader *r = arg;
	const cJSON *meta = json_get(obj, "metadata");
	const char *name = json_get_string(meta, "name");
	bool match = ev != KWATCH_DELETED && labelsel_matches(r->ns_sel, json_get(meta, "labels"));
	struct nsmatch *m;
	size_t n;

	if (!name || !*name)
		return;
	pthread_mutex_lock(&r->lock);
	m = htable_find(&r->ns_match, name);
	if (m && !match)
		htable_delete(&r->ns_match, name); /* frees m */
	if (m || !match)
		goto out;
	n = strlen(name) + 1;
	m = malloc(sizeof(*m) + n);
	if (m) {
		memcpy(m->name, name, n);
		m->gen = r->ns_gen;
	}
	if (!m || htable_add(&r->ns_match, m->name, m, NULL) != 0) {
		RG_LOG(LOG_ERROR, "cannot track a namespace; its workloads are not rolled",
		       LF_S("namespace", name));
		free(m);
	}
out:
	if (m && match)
		m->gen = r->ns_gen;
	pthread_mutex_unlock(&r->lock);
}

static void ns_synced(void *arg)
{
	struct reloader *r = arg;
	struct htable_iter it;
	void *v;

	pthread_mutex_lock(&r->lock);
	htable_iter_init(&r->ns_match, &it);
	while (htable_next(&r->ns_match, &it, NULL, &v)) {
		struct nsmatch *m = v;
		if (m->gen != r->ns_gen)
			htable_delete(&r->ns_match, m->name);
	}
	if (!r->ns_synced)
		RG_LOG(LOG_INFO, "reload: namespaces matching the selector listed",
		       LF_I("namespaces", htable_size(&r->ns_match)));
	r->ns_synced = true;
	wlwatch_note(r->ww);
	pthread_mutex_unlock(&r->lock);
}

static void ns_disabled(void *arg)
{
	(void)arg; /* Namespaces are always served */
}

/* Lock held. Whether workloads of ns may be rolled. */
static bool ns_allowed(struct reloader *r, const char *ns)
{
	return !r->ns_sel || htable_find(&r->ns_match, ns) != NULL;
}

/* ---- computing and patching (controller thread) ---- */

/* What the controller needs of a workload while unlocked. */
struct snap {
	enum wkind kind;
	char *ns, *name, *uid;
	struct refset refs;
	struct wstate st;
	char trigger[TRIGGER_LEN];
	unsigned more;
	enum obj_kind tkind;
	char *tns, *tname; /* the triggering object; tname NULL: none */
	char key[300];     /* the config-hash annotation */
	bool all_required; /* every non-optional object exists (compute_hash) */
};

static void snap_clear(struct snap *s)
{
	free(s->ns);
	free(s->name);
	free(s->uid);
	free(s->tns);
	free(s->tname);
	wstate_clear(&s->st);
	refs_clear(&s->refs);
	memset(s, 0, sizeof(*s));
}

static int wstate_copy(const struct wstate *in, struct wstate *out)
{
	bool oom = false;

	*out = *in;
	out->stamped = dup_or_null(in->stamped, &oom);
	out->pause_period = dup_or_null(in->pause_period, &oom);
	out->paused_text = dup_or_null(in->paused_text, &oom);
	out->hold_placeholder = dup_or_null(in->hold_placeholder, &oom);
	out->held_from = dup_or_null(in->held_from, &oom);
	out->held_key = dup_or_null(in->held_key, &oom);
	if (oom) {
		wstate_clear(out);
		return -1;
	}
	return 0;
}

static int snap_take(const struct workload *w, struct snap *s)
{
	bool oom = false;

	memset(s, 0, sizeof(*s));
	s->kind = w->kind;
	s->ns = dup_or_null(w->ns, &oom);
	s->name = dup_or_null(w->name, &oom);
	s->uid = dup_or_null(w->uid, &oom);
	s->tkind = w->tkind;
	s->tns = dup_or_null(w->tns, &oom);
	s->tname = dup_or_null(w->tname, &oom);
	memcpy(s->trigger, w->trigger, sizeof(s->trigger));
	s->more = w->more;
	if (oom || refs_copy(&w->refs, &s->refs) < 0 || wstate_copy(&w->st, &s->st) < 0) {
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
		       LF_S("namespace", lookup_item_namespace(b, it)), LF_S("workload", s->name),
		       LF_S("object_kind", objsource_kind(it->kind)->kind), LF_S("object", it->name),
		       LF_S("reason", it->reason));
		return;
	}
}

/*
 * The hash the webhook would stamp now: the same lookups through the same
 * source, then mutate_hash. HASH_NONE: nothing referenced. HASH_FAILED: a
 * lookup failed (the webhook would keep the old hash too); retried later.
 * Sets s->all_required.
 */
static enum outcome compute_hash(struct reloader *r, const struct config *cfg, struct snap *s,
				 char out[CONFIGHASH_VALUE_LEN])
{
	struct lookup_batch b;
	enum outcome o = HASH_FAILED;

	config_annotation(cfg, "config-hash", s->key, sizeof(s->key));
	if (mutate_batch(&s->refs, s->ns, &b) < 0)
		return HASH_FAILED;
	objsource_resolve_wait(r->src, &b, cfg->lookup_timeout_ms);
	s->all_required = true; /* as the webhook's hold decides it */
	for (size_t i = 0; i < b.n; i++)
		if (!s->refs.refs[i].optional && !s->refs.refs[i].need_match &&
		    b.items[i].status == LOOKUP_ABSENT)
			s->all_required = false;
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

/* ---- patch bodies ---- */

/* The object at the end of a path of object members, added where missing;
 * NULL on OOM. */
static cJSON *obj_at(cJSON *o, const char *const *path, size_t n)
{
	for (size_t i = 0; o && i < n; i++) {
		cJSON *c = cJSON_GetObjectItemCaseSensitive(o, path[i]);
		o = c ? c : cJSON_AddObjectToObject(o, path[i]);
	}
	return o;
}

/* {"kind","namespace","name","time"} of the object that caused a rollout:
 * names only, never a value. NULL on OOM. */
static char *reloaded_from(const struct snap *s, const char *now)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o && cJSON_AddStringToObject(o, "kind", refs_kind_name(s->tkind)) &&
	    cJSON_AddStringToObject(o, "namespace", s->tns) &&
	    cJSON_AddStringToObject(o, "name", s->tname) && cJSON_AddStringToObject(o, "time", now))
		text = json_print(o);
	cJSON_Delete(o);
	return text;
}

/* How a rollout patch touches spec.paused (pause-period). */
struct pause_plan {
	bool pause;         /* set spec.paused and paused-until */
	char until[32];     /* the deadline, RFC 3339 */
	long long until_ms; /* ... in unix ms */
};

/*
 * The rollout as a JSON merge patch: the hash where the workload keeps it
 * (pod template, or its metadata with spec.restartAt for a Rollout rolled
 * by restart), the cause in last-reloaded-from, and the pause of
 * pause-period. Returns a malloc'd text, NULL on OOM.
 */
static char *rollout_body(const struct config *cfg, const struct snap *s, const char *hash,
			  const struct pause_plan *pp)
{
	static const char *const meta_ann[] = { "metadata", "annotations" };
	static const char *const tmpl_ann[] = { "spec", "template", "metadata", "annotations" };
	cJSON *o = cJSON_CreateObject(), *ann, *spec;
	char now[32], key[300], *from = NULL, *text = NULL;
	bool ok;

	rfc3339_at(wall_now_ms(), now);
	ann = obj_at(o, meta_ann, 2);
	spec = obj_at(o, tmpl_ann, 1);
	ok = ann && spec;
	if (ok && s->st.hash_on_workload)
		ok = cJSON_AddStringToObject(ann, s->key, hash) &&
			cJSON_AddStringToObject(spec, "restartAt", now);
	else if (ok)
		ok = cJSON_AddStringToObject(obj_at(o, tmpl_ann, 4), s->key, hash) != NULL;
	if (ok && s->tname) {
		from = reloaded_from(s, now);
		ok = from &&
			cJSON_AddStringToObject(ann,
						config_annotation(cfg, OPTIN_LAST_RELOADED_FROM, key,
								  sizeof(key)),
						from);
	}
	if (ok && pp->pause)
		ok = cJSON_AddBoolToObject(spec, "paused", 1) &&
			cJSON_AddStringToObject(ann,
						config_annotation(cfg, OPTIN_PAUSED_UNTIL, key,
								  sizeof(key)),
						pp->until);
	if (ok && cJSON_GetArraySize(ann) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(o, "metadata"), "annotations");
	if (ok && cJSON_GetArraySize(spec) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(o, "spec");
	if (ok)
		text = json_print(o);
	free(from);
	cJSON_Delete(o);
	return text;
}

/* Appends one JSON Patch operation ({op, path[, value]}); value is taken
 * (NULL: none, only for remove). false on OOM. */
static bool jp_op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
	cJSON *o = cJSON_CreateObject();
	bool need = strcmp(op, "remove") != 0;

	if (!o || need != (value != NULL) || !cJSON_AddStringToObject(o, "op", op) ||
	    !cJSON_AddStringToObject(o, "path", path))
		goto fail;
	if (value && !cJSON_AddItemToObject(o, "value", value))
		goto fail;
	if (!cJSON_AddItemToArray(ops, o)) {
		cJSON_Delete(o); /* value with it */
		return false;
	}
	return true;
fail:
	cJSON_Delete(value);
	cJSON_Delete(o);
	return false;
}

/* "prefix" + the escaped key (RFC 6901) into out; false when it does not
 * fit or on OOM. */
static bool jp_path(char *out, size_t len, const char *prefix, const char *key)
{
	char *esc = patch_escape_pointer(key);
	int n = esc ? snprintf(out, len, "%s%s", prefix, esc) : -1;

	free(esc);
	return n > 0 && (size_t)n < len;
}

/* Sets the hash where s keeps it, adding the template's metadata or
 * annotations when it has none. */
static bool jp_set_hash(cJSON *ops, const struct snap *s, const char *hash)
{
	char path[400];
	cJSON *v;

	if (s->st.hash_on_workload || s->st.tmpl_ann) {
		return jp_path(path, sizeof(path),
			       s->st.hash_on_workload ? "/metadata/annotations/"
						      : "/spec/template/metadata/annotations/",
			       s->key) &&
			jp_op(ops, "add", path, cJSON_CreateString(hash));
	}
	v = cJSON_CreateObject();
	if (!v || !cJSON_AddStringToObject(v, s->key, hash)) {
		cJSON_Delete(v);
		return false;
	}
	if (s->st.tmpl_meta)
		return jp_op(ops, "add", "/spec/template/metadata/annotations", v);
	{
		cJSON *m = cJSON_CreateObject();
		if (!m || !cJSON_AddItemToObject(m, "annotations", v)) {
			cJSON_Delete(m);
			cJSON_Delete(v);
			return false;
		}
		return jp_op(ops, "add", "/spec/template/metadata", m);
	}
}

/*
 * The release of a hold as one JSON Patch: a test that the placeholder
 * scheduler is still set (atomic: a concurrent change fails the patch),
 * the original scheduler back (removed when it was ""), the annotation
 * that kept it removed, and the hash set (with_hash). NULL on OOM.
 */
static char *release_body(const struct snap *s, const char *hash, bool with_hash)
{
	static const char sched[] = "/spec/template/spec/schedulerName";
	cJSON *ops = cJSON_CreateArray();
	char path[400], *text = NULL;
	bool ok = ops && jp_op(ops, "test", sched, cJSON_CreateString(s->st.hold_placeholder));

	if (ok && s->st.held_from[0])
		ok = jp_op(ops, "replace", sched, cJSON_CreateString(s->st.held_from));
	else if (ok)
		ok = jp_op(ops, "remove", sched, NULL);
	if (ok && s->st.held_key)
		ok = jp_path(path, sizeof(path), "/metadata/annotations/", s->st.held_key) &&
			jp_op(ops, "remove", path, NULL);
	if (ok && s->st.wave_held)
		ok = jp_path(path, sizeof(path), "/metadata/annotations/",
			     OPTIN_WAVE_HELD_SCHEDULER) &&
			jp_op(ops, "remove", path, NULL);
	if (ok && with_hash)
		ok = jp_set_hash(ops, s, hash);
	if (ok)
		text = json_print(ops);
	cJSON_Delete(ops);
	return text;
}

/* The resume of a Deployment our pause holds: a test of our paused-until
 * (its exact text), its removal and spec.paused false, as one JSON Patch. */
static char *resume_body(const struct config *cfg, const char *paused_text)
{
	cJSON *ops = cJSON_CreateArray();
	char key[300], path[400], *text = NULL;

	config_annotation(cfg, OPTIN_PAUSED_UNTIL, key, sizeof(key));
	if (ops && jp_path(path, sizeof(path), "/metadata/annotations/", key) &&
	    jp_op(ops, "test", path, cJSON_CreateString(paused_text)) &&
	    jp_op(ops, "remove", path, NULL) && jp_op(ops, "add", "/spec/paused", cJSON_CreateFalse()))
		text = json_print(ops);
	cJSON_Delete(ops);
	return text;
}

static void rfc3339(char out[32])
{
	rfc3339_at(wall_now_ms(), out);
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
	    !cJSON_AddStringToObject(inv, "apiVersion", wk(s->kind)->api_version) ||
	    !cJSON_AddStringToObject(inv, "kind", wk(s->kind)->kind) ||
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

/* Sends one PATCH of workload (kind, ns, name) with body of content type
 * ctype; what names it in log lines. Returns the metrics outcome. */
static enum metrics_patch send_patch(struct reloader *r, enum wkind kind, const char *ns,
				     const char *name, const char *ctype, const char *body,
				     const char *what)
{
	const struct kind *k = wk(kind);
	struct kube_reply reply;
	char path[700], err[256], why[300];
	enum metrics_patch out;

	if (!body || !kube_valid_namespace(ns) || !kube_valid_name(name))
		return PATCH_FAILED;
	snprintf(path, sizeof(path), "%s/namespaces/%s/%s/%s?fieldManager=rollgate", k->api_path, ns,
		 k->resource, name);
	if (kube_client_request(r->client, "PATCH", path, ctype, body, PATCH_TIMEOUT_MS, &reply, err,
				sizeof(err)) < 0) {
		RG_LOG(LOG_WARN, "reload: patch failed", LF_S("patch", what), LF_S("kind", k->kind),
		       LF_S("namespace", ns), LF_S("name", name), LF_S("reason", err));
		return PATCH_FAILED;
	}
	if (reply.status == 200 || reply.status == 201) {
		out = PATCH_APPLIED;
	} else {
		out = reply.status == 404 ? PATCH_NOT_FOUND : PATCH_FAILED;
		kube_reply_describe(&reply, why, sizeof(why));
		RG_LOG(LOG_WARN, "reload: patch rejected", LF_S("patch", what), LF_S("kind", k->kind),
		       LF_S("namespace", ns), LF_S("name", name), LF_S("reason", why));
	}
	kube_reply_clear(&reply);
	return out;
}

/* Whether and until when this rollout pauses the Deployment
 * (pause-period). Not when it is paused already: by us (the rollout joins
 * the pause in progress) or by its owner (never ours to touch). */
static void plan_pause(const struct snap *s, struct pause_plan *pp)
{
	long long d;

	memset(pp, 0, sizeof(*pp));
	if (!s->st.pause_period || s->st.spec_paused)
		return;
	d = go_duration_ms(s->st.pause_period);
	if (d < 0) {
		RG_LOG(LOG_WARN,
		       "reload: invalid pause-period (a Go duration such as 30s, 5m or 1h30m, at "
		       "most 720h); rolling out without a pause",
		       LF_S("namespace", s->ns), LF_S("name", s->name),
		       LF_S("annotation", OPTIN_RELOADER_PAUSE_PERIOD));
		metrics_reload_problem(RP_INVALID_PAUSE_PERIOD);
		return;
	}
	pp->pause = true;
	pp->until_ms = wall_now_ms() + d;
	rfc3339_at(pp->until_ms + 999, pp->until); /* whole seconds, never early */
	pp->until_ms = rfc3339_parse(pp->until);
}

/* The rollout of one workload: one merge patch, then an Event. */
static enum metrics_patch send_rollout(struct reloader *r, const struct config *cfg,
				       const struct snap *s, const char *hash,
				       const struct pause_plan *pp)
{
	char *body = rollout_body(cfg, s, hash, pp);
	enum metrics_patch out = send_patch(r, s->kind, s->ns, s->name, "application/merge-patch+json",
					    body, "rollout");

	free(body);
	if (out != PATCH_APPLIED)
		return out;
	RG_LOG(LOG_INFO, "reload: rollout triggered", LF_S("kind", wk(s->kind)->kind),
	       LF_S("namespace", s->ns), LF_S("name", s->name),
	       LF_S("trigger", s->trigger[0] ? s->trigger : "comparison"), LF_I("more", s->more),
	       LF_S("hash", hash), LF_S("paused_until", pp->pause ? pp->until : ""));
	post_event(r, s, hash);
	return out;
}

/* The release of a held workload. Returns whether it was applied. */
static bool send_release(struct reloader *r, const struct snap *s, const char *hash, bool with_hash)
{
	char *body = release_body(s, hash, with_hash);
	enum metrics_patch out = send_patch(r, s->kind, s->ns, s->name, "application/json-patch+json",
					    body, "release");

	free(body);
	if (out == PATCH_APPLIED) {
		RG_LOG(LOG_INFO, "reload: every required object exists; pods released",
		       LF_S("kind", wk(s->kind)->kind), LF_S("namespace", s->ns),
		       LF_S("name", s->name), LF_S("scheduler", s->st.held_from));
		return true;
	}
	RG_LOG(LOG_WARN, "reload: cannot release a held workload; retrying later",
	       LF_S("kind", wk(s->kind)->kind), LF_S("namespace", s->ns), LF_S("name", s->name));
	metrics_reload_problem(RP_RELEASE_FAILED);
	return false;
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

enum action { ACT_NONE, ACT_ROLLOUT, ACT_RELEASE };

/* What a due workload needs, lock held: a held one is released once every
 * required object exists (hash unchanged or not); any other one is rolled
 * when its hash differs from the stamped one, it was ever stamped, and its
 * namespace matches reload.namespaceSelector. */
static enum action decide(struct reloader *r, const struct workload *w, const struct snap *s,
			  enum outcome o, const char *hash)
{
	if (s->st.hold_placeholder)
		return s->all_required ? ACT_RELEASE : ACT_NONE;
	if (o == HASH_NONE || !w->st.stamped || strcmp(w->st.stamped, hash) == 0)
		return ACT_NONE;
	if (!ns_allowed(r, s->ns)) {
		RG_LOG(LOG_DEBUG, "reload: namespace outside reload.namespaceSelector; not rolled",
		       LF_S("namespace", s->ns), LF_S("name", s->name));
		return ACT_NONE;
	}
	return ACT_ROLLOUT;
}

/* Lock held. What a successful rollout changed, until the watch says so. */
static void note_rollout(struct reloader *r, struct workload *w, const char *hash,
			 const struct pause_plan *pp)
{
	char *h = strdup(hash);

	if (h) {
		free(w->st.stamped);
		w->st.stamped = h;
	}
	if (pp->pause) {
		w->st.spec_paused = true;
		w->st.paused_until = pp->until_ms;
		free(w->st.paused_text);
		w->st.paused_text = strdup(pp->until);
		note_workload(r, w);
	}
	w->failures = 0;
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
	struct pause_plan pp;
	enum outcome o;
	enum action act;
	enum metrics_patch res = PATCH_FAILED;
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
	act = is_leader(r) ? decide(r, w, &s, o, hash) : ACT_NONE;
	if (act == ACT_NONE)
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
	if (act == ACT_RELEASE) {
		res = send_release(r, &s, hash, o == HASH_OK) ? PATCH_APPLIED : PATCH_FAILED;
	} else {
		plan_pause(&s, &pp);
		res = send_rollout(r, cfg->cfg, &s, hash, &pp);
		metrics_reload_patch(res);
	}
	pthread_mutex_lock(&r->lock);
	w = wl_find(r, kind, s.ns, s.name);
	if (w && res == PATCH_APPLIED && act == ACT_ROLLOUT) {
		note_rollout(r, w, hash, &pp); /* the watch confirms it shortly */
	} else if (w && res == PATCH_APPLIED) {
		free(w->st.hold_placeholder);
		w->st.hold_placeholder = NULL;
		w->failures = 0;
	} else if (w && res == PATCH_FAILED && !w->dirty) {
		retry_later(r, w);
	}
out:
	config_unref(cfg);
	snap_clear(&s);
}

/* ---- resuming Deployments at the end of their pause-period ---- */

/* One Deployment to resume, copied out of the table. */
struct resume {
	char *ns, *name, *text;
};

#define RESUME_BATCH 64

/* Lock held. Copies up to RESUME_BATCH Deployments whose pause is over
 * (or whose paused-until is unreadable) into out, and sets next_resume to
 * the earliest deadline left. */
static size_t resume_collect(struct reloader *r, long long now, struct resume *out)
{
	struct htable_iter it;
	long long mono = rgtime_now_ms(), next = 0;
	size_t n = 0;
	void *v;

	htable_iter_init(&r->workloads, &it);
	while (htable_next(&r->workloads, &it, NULL, &v)) {
		struct workload *w = v;
		long long until = w->st.paused_until;
		if (until == 0 || !w->st.spec_paused || !w->st.paused_text)
			continue;
		if (until > now || w->resume_retry_ms > mono || n == RESUME_BATCH) {
			long long at = until > now ? until : now + RETRY_MIN_MS;
			next = next == 0 || at < next ? at : next;
			continue;
		}
		out[n] = (struct resume){ strdup(w->ns), strdup(w->name), strdup(w->st.paused_text) };
		if (!out[n].ns || !out[n].name || !out[n].text) {
			free(out[n].ns);
			free(out[n].name);
			free(out[n].text);
			next = now + RETRY_MIN_MS;
			continue;
		}
		n++;
	}
	r->next_resume = next;
	return n;
}

/* Resumes Deployments whose pause is over; lock held on entry and exit
 * (released for the PATCHes). A failure is logged, counted and retried
 * after RETRY_MIN_MS; a Deployment gone meanwhile is forgotten. */
static void resume_due(struct reloader *r)
{
	struct resume batch[RESUME_BATCH];
	size_t n = resume_collect(r, wall_now_ms(), batch);
	struct config_ref *cfg = config_ref(r->cfg);

	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		char *body = resume_body(cfg->cfg, batch[i].text);
		enum metrics_patch res = send_patch(r, WK_DEPLOYMENT, batch[i].ns, batch[i].name,
						    "application/json-patch+json", body, "resume");
		struct workload *w;
		free(body);
		if (res == PATCH_APPLIED)
			RG_LOG(LOG_INFO, "reload: pause-period over; Deployment resumed",
			       LF_S("namespace", batch[i].ns), LF_S("name", batch[i].name));
		else if (res == PATCH_FAILED)
			metrics_reload_problem(RP_RESUME_FAILED);
		pthread_mutex_lock(&r->lock);
		w = wl_find(r, WK_DEPLOYMENT, batch[i].ns, batch[i].name);
		if (w && res == PATCH_APPLIED) {
			w->st.spec_paused = false;
			w->st.paused_until = 0;
		} else if (w) { /* failed, or gone and not yet seen gone */
			if (res == PATCH_FAILED)
				RG_LOG(LOG_WARN, "reload: cannot resume a Deployment; retrying later",
				       LF_S("namespace", batch[i].ns), LF_S("name", batch[i].name));
			w->resume_retry_ms = rgtime_now_ms() + RETRY_MIN_MS;
			if (r->next_resume == 0 || wall_now_ms() + RETRY_MIN_MS < r->next_resume)
				r->next_resume = wall_now_ms() + RETRY_MIN_MS;
		}
		pthread_mutex_unlock(&r->lock);
		free(batch[i].ns);
		free(batch[i].name);
		free(batch[i].text);
	}
	pthread_mutex_lock(&r->lock);
	config_unref(cfg);
}

static void compare_all(struct reloader *r)
{
	struct htable_iter it;
	void *w;

	htable_iter_init(&r->workloads, &it);
	while (htable_next(&r->workloads, &it, NULL, &w))
		schedule(r, w, "", NULL);
	RG_LOG(LOG_INFO, "reload: comparing every workload's hash",
	       LF_I("workloads", htable_size(&r->workloads)));
}

static void clear_due(struct reloader *r)
{
	while (r->due)
		due_unlink(r, r->due);
}

static void *run(void *arg)
{
	struct reloader *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!wlwatch_stopping(r->ww)) {
		bool leader = is_leader(r);
		struct workload *w;
		if (leader != r->was_leader) {
			r->was_leader = leader;
			if (leader)
				r->compare_all = true; /* a new leader trusts nobody's bookkeeping */
			else
				clear_due(r); /* the leader handles them */
		}
		if (!leader || !wlwatch_synced(r->ww) || !objcache_synced(r->cache)) {
			clear_due(r);
			wlwatch_wait(r->ww, rgtime_now_ms() + POLL_MS, POLL_MS);
			continue;
		}
		if (r->compare_all) {
			r->compare_all = false;
			compare_all(r);
		}
		if (r->next_resume && r->next_resume <= wall_now_ms()) {
			resume_due(r);
			continue;
		}
		w = r->due;
		if (!w || w->due_ms > rgtime_now_ms()) {
			wlwatch_wait(r->ww, w ? w->due_ms : rgtime_now_ms() + POLL_MS, POLL_MS);
			continue;
		}
		due_unlink(r, w);
		process(r, w);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- lifecycle ---- */

/* The Namespaces of reload.namespaceSelector (read at startup): listed
 * with the selector as labelSelector. */
static int add_ns_stream(struct reloader *r, const struct config *cfg, char *err, size_t errlen)
{
	char why[200];
	struct kwatch_spec spec = {
		.path = "/api/v1/namespaces",
		.label_selector = cfg->reload_namespace_selector,
		.resource = MR_NAMESPACES,
		.sensitive = false,
		.optional = false,
		.handler = { ns_list_start, ns_object, ns_synced, ns_disabled, r },
	};

	if (labelsel_parse(cfg->reload_namespace_selector, &r->ns_sel, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "reload.namespaceSelector: %s", why);
		return -1;
	}
	return wlwatch_add(r->ww, &spec, err, errlen);
}

struct reloader *reloader_new(struct kube_client *client, struct objcache *cache,
			      struct objsource *src, struct lease *lease, struct config *cfg,
			      char *err, size_t errlen)
{
	struct reloader *r = calloc(1, sizeof(*r));
	struct wlwatch_handler wl_handler = { on_object, on_sweep, on_ready, on_synced, r };

	if (r)
		r->cfg = config_ref_new(cfg);
	if (!r || !r->cfg) {
		snprintf(err, errlen, "out of memory");
		config_clear(cfg); /* taken in every case */
		free(cfg);
		free(r);
		return NULL;
	}
	htable_init(&r->workloads, &workload_type, WORKLOADS_MAX);
	htable_init(&r->index, &index_type, INDEX_MAX);
	htable_init(&r->ns_match, &nsmatch_type, NAMESPACES_MAX);
	r->client = client;
	r->cache = cache;
	r->src = src;
	r->lease = lease;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->ww = wlwatch_new(client, wk_ids, WK_COUNT, &cfg->watch_namespaces, &r->lock, &r->cond,
			    &wl_handler, err, errlen);
	if (!r->ww)
		goto fail;
	if (cfg->reload_namespace_selector && add_ns_stream(r, cfg, err, errlen) < 0)
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
	if (wlwatch_start(r->ww, run, r, "reload controller", err, errlen) < 0)
		return -1;
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
		config_clear(cfg);
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
	wlwatch_relist(r->ww);
}

bool reloader_synced(struct reloader *r)
{
	return wlwatch_is_synced(r->ww);
}

void reloader_stop(struct reloader *r)
{
	if (!r || r->stopped)
		return;
	r->stopped = true;
	if (r->cache)
		objcache_subscribe(r->cache, NULL, NULL);
	wlwatch_stop(r->ww);
}

void reloader_free(struct reloader *r)
{
	if (!r)
		return;
	reloader_stop(r);
	htable_clear(&r->index);
	htable_clear(&r->workloads);
	htable_clear(&r->ns_match);
	labelsel_free(r->ns_sel);
	wlwatch_free(r->ww);
	config_unref(r->cfg);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
