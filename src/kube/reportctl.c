/*
 * The report controller (see reportctl.h).
 *
 * Threads: the watch thread (kwatch) evaluates each workload as it changes
 * and keeps its results; the controller thread evaluates Flagger Canaries
 * (their target is looked up, which may wait), reads the reports back when
 * it becomes leader, and writes the reports whose results changed. One
 * mutex guards the tables; the controller thread never holds it across
 * I/O. The config is swapped only by the controller thread, under the
 * mutex, so the watch thread reads it locked and the controller thread
 * may read it unlocked.
 */
#include "reportctl.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "jsonutil.h"
#include "kinds.h"
#include "kubelist.h"
#include "kwatch.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "rgtime.h"
#include "wlwatch.h"

#define WRITE_TIMEOUT_MS 10000
#define LIST_TIMEOUT_MS 60000
#define READBACK_PAGE 20        /* reports are large: a few per page */
#define READBACK_RETRY_MS 10000 /* after a failed read-back */
#define CRD_RECHECK_MS 300000   /* how often a missing CRD is looked for again */
#define RESYNC_MS 600000        /* reports are read back this often (one deleted by hand comes back) */
#define POLL_MS 500             /* leadership and sync are re-checked at least this often */
#define CANARY_RETRY_MS 5000    /* a Canary whose target lookup failed is tried again */
#define REPORTS_PATH "/apis/wgpolicyk8s.io/v1alpha2"

enum rkind { RK_DEPLOYMENT, RK_STATEFULSET, RK_DAEMONSET, RK_ROLLOUT, RK_CANARY, RK_COUNT };

/* The kinds watched, in enum rkind's order (wlwatch). */
static const enum kind_id rk_ids[RK_COUNT] = { KIND_DEPLOYMENT, KIND_STATEFULSET, KIND_DAEMONSET,
					       KIND_ROLLOUT, KIND_FLAGGER_CANARY };

static const struct kind *rk(enum rkind k)
{
	return kinds_get(rk_ids[k]);
}

/* ---- a chained hash table of intrusive nodes ---- */

struct hnode {
	struct hnode *next;
	uint32_t hash;
};

struct htab {
	struct hnode **b;
	size_t nb, n;
};

static uint32_t fnv(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (h ^ 0xff) * 16777619u; /* the end of a field */
}

/* Doubles the buckets when there are more entries than buckets; a failed
 * growth only keeps chains longer. -1 when there are no buckets at all. */
static int htab_grow(struct htab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 256;
	struct hnode **b;

	if (t->n < t->nb)
		return 0;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return t->nb ? 0 : -1;
	for (size_t i = 0; i < t->nb; i++) {
		struct hnode *h = t->b[i], *next;
		for (; h; h = next) {
			next = h->next;
			h->next = b[h->hash & (nb - 1)];
			b[h->hash & (nb - 1)] = h;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

static int htab_add(struct htab *t, struct hnode *h)
{
	if (htab_grow(t) < 0)
		return -1;
	h->next = t->b[h->hash & (t->nb - 1)];
	t->b[h->hash & (t->nb - 1)] = h;
	t->n++;
	return 0;
}

static void htab_del(struct htab *t, struct hnode *h)
{
	struct hnode **p = &t->b[h->hash & (t->nb - 1)];

	while (*p && *p != h)
		p = &(*p)->next;
	if (*p) {
		*p = h->next;
		t->n--;
	}
}

/* ---- namespaces and workloads ---- */

struct wl;

struct nsrec {
	struct hnode h; /* first: the table's node */
	char *name;
	struct wl *head; /* its workloads */
	size_t n_wl, n_canaries;
	bool dirty;   /* results changed since the last comparison */
	bool written; /* digest is what the cluster holds */
	char digest[REPORT_DIGEST_LEN];
	long long next_ms; /* earliest next write */
};

struct wl {
	struct hnode h; /* first */
	struct wl *nsnext, **nsprev;
	enum rkind kind;
	struct nsrec *ns;
	struct report_object ro; /* api_version, kind static; name, uid, items owned */
	uint32_t gen;
	char *target;       /* Canary: its target Deployment, or NULL */
	cJSON *canary;      /* Canary: what the rules read of it */
	bool pending;       /* Canary: to be evaluated by the controller thread */
	long long retry_ms; /* Canary: its target lookup failed; try again then */
};

struct reportctl {
	struct kube_client *client;
	struct objsource *src;
	struct lease *lease;
	struct wlwatch *ww;   /* the workload streams and the controller thread */
	struct strlist scope; /* watch.namespaces as started */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct config *cfg, *next_cfg;

	struct htab wls, nss;
	size_t n_pending, n_retry;
	bool was_leader, need_readback;
	bool crd_missing;
	long long readback_ms; /* when to read back (again) */
	long long resync_ms;   /* the next periodic read-back */
};

static uint32_t wl_hash(enum rkind kind, const char *ns, const char *name)
{
	char k[2] = { (char)('A' + kind), '\0' };

	return fnv(fnv(fnv(2166136261u, k), ns), name);
}

static struct nsrec *ns_find(struct reportctl *c, const char *name)
{
	uint32_t h = fnv(2166136261u, name);

	for (struct hnode *n = c->nss.nb ? c->nss.b[h & (c->nss.nb - 1)] : NULL; n; n = n->next) {
		struct nsrec *r = (struct nsrec *)n;
		if (n->hash == h && strcmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

/* Namespace records live until the controller is freed. */
static struct nsrec *ns_get(struct reportctl *c, const char *name)
{
	struct nsrec *r = ns_find(c, name);

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->name = strdup(name);
	r->h.hash = fnv(2166136261u, name);
	if (!r->name || htab_add(&c->nss, &r->h) < 0) {
		free(r->name);
		free(r);
		return NULL;
	}
	return r;
}

static struct wl *wl_find(struct reportctl *c, enum rkind kind, const char *ns, const char *name)
{
	uint32_t h = wl_hash(kind, ns, name);

	for (struct hnode *n = c->wls.nb ? c->wls.b[h & (c->wls.nb - 1)] : NULL; n; n = n->next) {
		struct wl *w = (struct wl *)n;
		if (n->hash == h && w->kind == kind && strcmp(w->ns->name, ns) == 0 &&
		    strcmp(w->ro.name, name) == 0)
			return w;
	}
	return NULL;
}

static void count_items(const struct wl *w, long long sign)
{
	for (size_t i = 0; i < w->ro.n; i++)
		metrics_report_results(w->ro.items[i].rule, w->ro.items[i].result, sign);
}

static struct wl *wl_new(struct reportctl *c, enum rkind kind, const char *ns, const char *name)
{
	struct nsrec *r = ns_get(c, ns);
	struct wl *w = r ? calloc(1, sizeof(*w)) : NULL;

	if (!w)
		return NULL;
	w->kind = kind;
	w->ns = r;
	w->ro.api_version = rk(kind)->api_version;
	w->ro.kind = rk(kind)->kind;
	w->ro.name = strdup(name);
	w->h.hash = wl_hash(kind, ns, name);
	if (!w->ro.name || htab_add(&c->wls, &w->h) < 0) {
		free(w->ro.name);
		free(w);
		return NULL;
	}
	w->nsnext = r->head;
	if (r->head)
		r->head->nsprev = &w->nsnext;
	w->nsprev = &r->head;
	r->head = w;
	r->n_wl++;
	r->n_canaries += kind == RK_CANARY;
	metrics_report_workloads((long long)c->wls.n);
	return w;
}

static void wl_set_pending(struct reportctl *c, struct wl *w, bool on)
{
	if (w->pending != on)
		c->n_pending += on ? 1 : (size_t)-1;
	w->pending = on;
}

static void set_retry(struct reportctl *c, struct wl *w, long long at)
{
	if (!w->retry_ms != !at)
		c->n_retry += at ? 1 : (size_t)-1;
	w->retry_ms = at;
}

static void wl_remove(struct reportctl *c, struct wl *w)
{
	struct nsrec *r = w->ns;

	htab_del(&c->wls, &w->h);
	*w->nsprev = w->nsnext;
	if (w->nsnext)
		w->nsnext->nsprev = w->nsprev;
	r->n_wl--;
	r->n_canaries -= w->kind == RK_CANARY;
	if (w->ro.n)
		r->dirty = true;
	wl_set_pending(c, w, false);
	set_retry(c, w, 0);
	count_items(w, -1);
	report_object_clear(&w->ro);
	free(w->target);
	cJSON_Delete(w->canary);
	free(w);
	metrics_report_workloads((long long)c->wls.n);
}

/* New results for w (taken); its namespace is due for a comparison when
 * they differ, and their timestamp is when they first appeared. */
static void wl_set_items(struct wl *w, struct report_item *items, size_t n)
{
	if (report_items_equal(w->ro.items, w->ro.n, items, n)) {
		report_items_free(items, n);
		return;
	}
	count_items(w, -1);
	report_items_free(w->ro.items, w->ro.n);
	w->ro.items = items;
	w->ro.n = n;
	w->ro.since = time(NULL);
	count_items(w, 1);
	w->ns->dirty = true;
}

/* Canaries of ns that target Deployment name are evaluated again. */
static void target_changed(struct reportctl *c, const char *ns, const char *name)
{
	struct nsrec *r = ns_find(c, ns);

	if (!r || !r->n_canaries)
		return;
	for (struct wl *w = r->head; w; w = w->nsnext)
		if (w->kind == RK_CANARY && w->target && strcmp(w->target, name) == 0)
			wl_set_pending(c, w, true);
	pthread_cond_broadcast(&c->cond);
}

/* ---- watch handlers (watch thread) ---- */

/* A view of obj with the type a list item leaves out; its fields are
 * referenced, not copied. NULL on OOM. */
static cJSON *typed_view(const struct kind *k, const cJSON *obj)
{
	cJSON *v = cJSON_CreateObject();

	if (!v || !cJSON_AddStringToObject(v, "apiVersion", k->api_version) ||
	    !cJSON_AddStringToObject(v, "kind", k->kind) ||
	    (json_get(obj, "metadata") &&
	     !cJSON_AddItemReferenceToObject(v, "metadata", (cJSON *)json_get(obj, "metadata"))) ||
	    (json_get(obj, "spec") &&
	     !cJSON_AddItemReferenceToObject(v, "spec", (cJSON *)json_get(obj, "spec")))) {
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

/* What the rules read of a Canary: its identity, the skip annotation and
 * spec.targetRef; a small copy kept until its target is looked up. */
static cJSON *canary_copy(const struct config *cfg, const cJSON *obj)
{
	const cJSON *md = json_get(obj, "metadata");
	const cJSON *ref = json_get_path(obj, "spec", "targetRef", NULL);
	char key[512];
	const char *skip = json_get_string(json_get(md, "annotations"),
					   config_annotation(cfg, "skip", key, sizeof(key)));
	cJSON *c = cJSON_CreateObject(), *cmd, *spec;

	if (!c || !cJSON_AddStringToObject(c, "apiVersion", rk(RK_CANARY)->api_version) ||
	    !cJSON_AddStringToObject(c, "kind", rk(RK_CANARY)->kind) ||
	    !(cmd = cJSON_AddObjectToObject(c, "metadata")) ||
	    !cJSON_AddStringToObject(cmd, "name", json_get_string(md, "name")) ||
	    !cJSON_AddStringToObject(cmd, "namespace", json_get_string(md, "namespace")) ||
	    (skip &&
	     !cJSON_AddStringToObject(cJSON_AddObjectToObject(cmd, "annotations"), key, skip)) ||
	    !(spec = cJSON_AddObjectToObject(c, "spec")) ||
	    (ref && !cJSON_AddItemToObject(spec, "targetRef", cJSON_Duplicate(ref, 1)))) {
		cJSON_Delete(c);
		return NULL;
	}
	return c;
}

static void take_canary(struct reportctl *c, const struct wlwatch_stream *st, const cJSON *obj,
			const char *ns, const char *name, const char *uid)
{
	const cJSON *ref = json_get_path(obj, "spec", "targetRef", NULL);
	const char *target = json_get_string(ref, "name");
	struct wl *w;
	cJSON *copy;

	pthread_mutex_lock(&c->lock);
	copy = canary_copy(c->cfg, obj);
	w = wl_find(c, RK_CANARY, ns, name);
	if (!w && copy)
		w = wl_new(c, RK_CANARY, ns, name);
	if (!w || !copy) {
		RG_LOG(LOG_ERROR, "reports: out of memory keeping a Canary", LF_S("name", name));
		cJSON_Delete(copy);
		goto out;
	}
	cJSON_Delete(w->canary);
	w->canary = copy;
	free(w->target);
	w->target = target &&
			strcmp(json_get_string(ref, "kind") ? json_get_string(ref, "kind") : "",
			       kinds_get(KIND_DEPLOYMENT)->kind) == 0
		? strdup(target)
		: NULL;
	free(w->ro.uid);
	w->ro.uid = uid ? strdup(uid) : NULL;
	w->gen = st->gen;
	wl_set_pending(c, w, true);
	pthread_cond_broadcast(&c->cond);
out:
	pthread_mutex_unlock(&c->lock);
}

/* Evaluates a workload other than a Canary (no lookup: fast, so under the
 * lock) and keeps its results. */
static void take_workload(struct reportctl *c, const struct wlwatch_stream *st, const cJSON *obj,
			  const char *ns, const char *name, const char *uid)
{
	struct engine eng = { NULL, c->src, NULL };
	struct report_item *items = NULL;
	struct verdict v;
	size_t n = 0;
	char err[256];
	cJSON *view = typed_view(rk(st->kind), obj);
	struct wl *w;

	pthread_mutex_lock(&c->lock);
	eng.cfg = c->cfg;
	if (!view || report_check(&eng, view, &v, &items, &n, err, sizeof(err)) < 0) {
		RG_LOG(LOG_ERROR, "reports: cannot evaluate a workload",
		       LF_S("kind", rk(st->kind)->kind), LF_S("namespace", ns), LF_S("name", name),
		       LF_S("reason", view ? err : "out of memory"));
		goto out;
	}
	verdict_clear(&v);
	w = wl_find(c, st->kind, ns, name);
	if (n == 0) { /* an exempt namespace: nothing to report */
		if (w)
			wl_remove(c, w);
		goto out;
	}
	if (!w)
		w = wl_new(c, st->kind, ns, name);
	if (!w) {
		RG_LOG(LOG_ERROR, "reports: out of memory keeping a workload", LF_S("name", name));
		report_items_free(items, n);
		goto out;
	}
	wl_set_items(w, items, n);
	if (!w->ro.uid || !uid || strcmp(w->ro.uid, uid) != 0) {
		free(w->ro.uid);
		w->ro.uid = uid ? strdup(uid) : NULL;
		w->ns->dirty = true;
	}
	w->gen = st->gen;
out:
	if (st->kind == RK_DEPLOYMENT)
		target_changed(c, ns, name);
	pthread_mutex_unlock(&c->lock);
	cJSON_Delete(view);
}

static void on_object(void *arg, const struct wlwatch_stream *st, enum kwatch_event ev,
		      const cJSON *obj)
{
	struct reportctl *c = arg;
	const cJSON *md = json_get(obj, "metadata");
	const char *ns = json_get_string(md, "namespace"), *name = json_get_string(md, "name");
	struct wl *w;

	if (!ns || !*ns || !name || !*name)
		return;
	if (ev != KWATCH_DELETED) {
		if (st->kind == RK_CANARY)
			take_canary(c, st, obj, ns, name, json_get_string(md, "uid"));
		else
			take_workload(c, st, obj, ns, name, json_get_string(md, "uid"));
		return;
	}
	pthread_mutex_lock(&c->lock);
	w = wl_find(c, st->kind, ns, name);
	if (w)
		wl_remove(c, w);
	if (st->kind == RK_DEPLOYMENT)
		target_changed(c, ns, name);
	pthread_mutex_unlock(&c->lock);
}

/* What the list of st did not deliver is gone. Lock held. */
static void on_sweep(void *arg, const struct wlwatch_stream *st)
{
	struct reportctl *c = arg;

	for (size_t i = 0; i < c->wls.nb; i++) {
		struct hnode *n = c->wls.b[i], *next;
		for (; n; n = next) {
			struct wl *w = (struct wl *)n;
			next = n->next;
			if (w->kind == st->kind && (!st->ns || strcmp(w->ns->name, st->ns) == 0) &&
			    w->gen != st->gen)
				wl_remove(c, w);
		}
	}
}

/* Lock held. */
static void on_synced(void *arg)
{
	struct reportctl *c = arg;

	RG_LOG(LOG_INFO, "report controller synced", LF_I("workloads", c->wls.n));
	pthread_cond_broadcast(&c->cond);
}

/* ---- Canaries (controller thread) ---- */

/* A Canary to evaluate: changed, or due to try its lookup again. */
static struct wl *first_pending(struct reportctl *c)
{
	long long now = rgtime_now_ms();

	for (size_t i = 0; (c->n_pending || c->n_retry) && i < c->nss.nb; i++)
		for (struct hnode *n = c->nss.b[i]; n; n = n->next) {
			struct nsrec *r = (struct nsrec *)n;
			for (struct wl *w = r->n_canaries ? r->head : NULL; w; w = w->nsnext)
				if (w->pending || (w->retry_ms && w->retry_ms <= now))
					return w;
		}
	return NULL;
}

static bool has_error(const struct wl *w)
{
	for (size_t i = 0; i < w->ro.n; i++)
		if (w->ro.items[i].result == REPORT_ERROR)
			return true;
	return false;
}

/* Lock held on entry and exit, released for the target's lookup. */
static void evaluate_canary(struct reportctl *c, struct wl *w)
{
	struct engine eng = { c->cfg, c->src, NULL };
	struct report_item *items = NULL;
	char *ns = strdup(w->ns->name), *name = strdup(w->ro.name), err[256];
	cJSON *copy = cJSON_Duplicate(w->canary, 1);
	struct verdict v;
	size_t n = 0;
	int rc;

	wl_set_pending(c, w, false);
	set_retry(c, w, 0);
	if (!ns || !name || !copy) {
		RG_LOG(LOG_ERROR, "reports: out of memory evaluating a Canary", LF_END);
		goto out;
	}
	pthread_mutex_unlock(&c->lock);
	rc = report_check(&eng, copy, &v, &items, &n, err, sizeof(err));
	if (rc == 0)
		verdict_clear(&v);
	pthread_mutex_lock(&c->lock);
	w = wl_find(c, RK_CANARY, ns, name);
	if (rc < 0) {
		RG_LOG(LOG_ERROR, "reports: cannot evaluate a Canary", LF_S("namespace", ns),
		       LF_S("name", name), LF_S("reason", err));
	} else if (!w || w->pending) {
		/* Gone, or changed meanwhile: the newer news wins. */
		report_items_free(items, n);
	} else {
		wl_set_items(w, items, n);
		if (has_error(w))
			set_retry(c, w, rgtime_now_ms() + CANARY_RETRY_MS);
	}
out:
	free(ns);
	free(name);
	cJSON_Delete(copy);
}

/* ---- reading the reports back (controller thread) ---- */

struct readback {
	char **ns, **digest;
	size_t n;
};

static void readback_free(struct readback *rb)
{
	for (size_t i = 0; i < rb->n; i++) {
		free(rb->ns[i]);
		free(rb->digest[i]);
	}
	free(rb->ns);
	free(rb->digest);
	memset(rb, 0, sizeof(*rb));
}

static int on_report_page(void *arg, cJSON *page, char *err, size_t errlen)
{
	struct readback *rb = arg;
	const cJSON *it;

	cJSON_ArrayForEach(it, json_get(page, "items")) {
		const cJSON *md = json_get(it, "metadata");
		const char *ns = json_get_string(md, "namespace"), *name = json_get_string(md, "name");
		const char *d = json_get_string(json_get(md, "annotations"), REPORT_DIGEST_ANNOTATION);
		char **a, **b;
		if (!ns || !name || strcmp(name, REPORT_NAME) != 0)
			continue;
		a = realloc(rb->ns, (rb->n + 1) * sizeof(*a));
		if (a)
			rb->ns = a;
		b = realloc(rb->digest, (rb->n + 1) * sizeof(*b));
		if (b)
			rb->digest = b;
		if (!a || !b || !(rb->ns[rb->n] = strdup(ns))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rb->digest[rb->n++] = strdup(d ? d : "");
	}
	return 0;
}

/* The reports rollgate wrote, in the namespaces it watches. */
static enum kube_list_result list_reports(struct reportctl *c, struct readback *rb, char *err,
					  size_t errlen)
{
	char path[512];
	struct kube_list_opts lo = { path, REPORT_LABEL_KEY "=" REPORT_LABEL_VALUE, READBACK_PAGE,
				     LIST_TIMEOUT_MS, 3 };
	enum kube_list_result r = KUBE_LIST_OK;

	for (size_t i = 0; r == KUBE_LIST_OK && i < (c->scope.n ? c->scope.n : 1); i++) {
		if (c->scope.n)
			snprintf(path, sizeof(path), REPORTS_PATH "/namespaces/%s/policyreports",
				 c->scope.v[i]);
		else
			snprintf(path, sizeof(path), REPORTS_PATH "/policyreports");
		r = kube_list(c->client, &lo, on_report_page, rb, err, errlen);
	}
	return r;
}

static void crd_missing(struct reportctl *c)
{
	if (!c->crd_missing)
		RG_LOG(LOG_WARN,
		       "reports: the PolicyReport CRD (policyreports.wgpolicyk8s.io) is not "
		       "installed; no report is written until it is",
		       LF_I("recheck_s", CRD_RECHECK_MS / 1000));
	c->crd_missing = true;
	metrics_report_crd_missing();
	c->readback_ms = rgtime_now_ms() + CRD_RECHECK_MS;
}

/* Lock held on entry and exit, released for the lists. Every namespace is
 * compared afterwards: only those that differ from the cluster are
 * written. */
static void read_back(struct reportctl *c)
{
	struct readback rb = { 0 };
	enum kube_list_result r;
	char err[400];

	pthread_mutex_unlock(&c->lock);
	r = list_reports(c, &rb, err, sizeof(err));
	pthread_mutex_lock(&c->lock);
	if (r == KUBE_LIST_ABSENT) {
		crd_missing(c);
		goto out;
	}
	if (r == KUBE_LIST_FAILED) {
		RG_LOG(LOG_WARN, "reports: cannot read the reports back; retrying",
		       LF_S("reason", err), LF_I("retry_ms", READBACK_RETRY_MS));
		c->readback_ms = rgtime_now_ms() + READBACK_RETRY_MS;
		goto out;
	}
	if (c->crd_missing)
		RG_LOG(LOG_INFO, "reports: the PolicyReport CRD is installed now", LF_END);
	c->crd_missing = false;
	c->need_readback = false;
	c->resync_ms = rgtime_now_ms() + RESYNC_MS;
	for (size_t i = 0; i < c->nss.nb; i++)
		for (struct hnode *n = c->nss.b[i]; n; n = n->next) {
			struct nsrec *ns = (struct nsrec *)n;
			ns->written = false;
			ns->dirty = true;
		}
	for (size_t i = 0; i < rb.n; i++) {
		struct nsrec *ns = rb.digest[i] ? ns_get(c, rb.ns[i]) : NULL;
		if (!ns)
			continue;
		snprintf(ns->digest, sizeof(ns->digest), "%s", rb.digest[i]);
		ns->written = true;
		ns->dirty = true;
	}
	RG_LOG(LOG_INFO, "reports: read back", LF_I("reports", rb.n), LF_I("namespaces", c->nss.n));
out:
	readback_free(&rb);
}

/* ---- writing (controller thread) ---- */

/* The workloads of ns with results, sorted; NULL on OOM (*n 0: none). */
static struct report_object **ns_objects(struct nsrec *ns, size_t *n)
{
	struct report_object **v = calloc(ns->n_wl ? ns->n_wl : 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (struct wl *w = ns->head; w; w = w->nsnext)
		if (w->ro.n)
			v[(*n)++] = &w->ro;
	report_objects_sort(v, *n);
	return v;
}

enum wrote { WROTE_OK, WROTE_FAILED, WROTE_GONE, WROTE_NO_CRD };

static enum wrote send_report(struct reportctl *c, const char *ns, const char *body)
{
	char path[600], err[256], why[300];
	struct kube_reply reply;
	enum wrote out = WROTE_FAILED;

	snprintf(path, sizeof(path),
		 REPORTS_PATH "/namespaces/%s/policyreports/" REPORT_NAME
			      "?fieldManager=rollgate&force=true",
		 ns);
	if (kube_client_request(c->client, "PATCH", path, "application/apply-patch+yaml", body,
				WRITE_TIMEOUT_MS, &reply, err, sizeof(err)) < 0) {
		RG_LOG(LOG_WARN, "reports: write failed; retrying after the interval",
		       LF_S("namespace", ns), LF_S("reason", err));
		return WROTE_FAILED;
	}
	if (reply.status == 200 || reply.status == 201) {
		out = WROTE_OK;
	} else {
		cJSON *st = kube_status_parse(reply.body, reply.len);
		const char *kind = json_get_string(json_get(st, "details"), "kind");
		/* A namespace that is gone names itself; the CRD's absence names nothing. */
		out = reply.status == 404
			? (kind && strcmp(kind, "namespaces") == 0 ? WROTE_GONE : WROTE_NO_CRD)
			: WROTE_FAILED;
		kube_reply_describe(&reply, why, sizeof(why));
		RG_LOG(LOG_WARN, "reports: write rejected", LF_S("namespace", ns),
		       LF_S("reason", why));
		cJSON_Delete(st);
	}
	kube_reply_clear(&reply);
	return out;
}

/* Lock held on entry and exit, released for the PATCH. */
static void write_ns(struct reportctl *c, struct nsrec *ns)
{
	char digest[REPORT_DIGEST_LEN], *body = NULL, *name = NULL;
	size_t n;
	struct report_object **objs = ns_objects(ns, &n);
	cJSON *doc = NULL;
	enum wrote w;

	if (!objs)
		goto oom;
	report_digest(ns->name, objs, n, digest);
	ns->dirty = false;
	if (ns->written && strcmp(digest, ns->digest) == 0)
		goto out; /* the cluster has it */
	if (!ns->written && n == 0)
		goto out; /* no report there, and nothing to say */
	doc = report_render(REPORT_POLICYREPORT, ns->name, objs, n);
	body = doc ? json_print(doc) : NULL;
	name = strdup(ns->name);
	if (!body || !name)
		goto oom;
	ns->next_ms = rgtime_now_ms() + c->cfg->reports_interval_ms;
	pthread_mutex_unlock(&c->lock);
	w = send_report(c, name, body);
	pthread_mutex_lock(&c->lock);
	switch (w) {
	case WROTE_OK:
		metrics_report_write(REPORT_WRITE_APPLIED);
		memcpy(ns->digest, digest, sizeof(digest));
		ns->written = true;
		RG_LOG(LOG_DEBUG, "reports: written", LF_S("namespace", ns->name), LF_I("objects", n));
		break;
	case WROTE_GONE:
		metrics_report_write(REPORT_WRITE_GONE);
		ns->written = false;
		ns->dirty = ns->n_wl > 0; /* workloads there: try again */
		break;
	case WROTE_NO_CRD:
		metrics_report_write(REPORT_WRITE_FAILED);
		ns->dirty = true;
		c->need_readback = true; /* finds out whether the CRD went away */
		break;
	case WROTE_FAILED:
		metrics_report_write(REPORT_WRITE_FAILED);
		ns->dirty = true;
		break;
	}
	goto out;
oom:
	RG_LOG(LOG_ERROR, "reports: out of memory rendering a report", LF_S("namespace", ns->name));
	metrics_report_write(REPORT_WRITE_FAILED);
	ns->dirty = true;
	ns->next_ms = rgtime_now_ms() + c->cfg->reports_interval_ms;
out:
	free(objs);
	free(body);
	free(name);
	cJSON_Delete(doc);
}

/* The dirty namespace due first, and when it is due. */
static struct nsrec *next_due(struct reportctl *c, long long *due)
{
	struct nsrec *best = NULL;

	for (size_t i = 0; i < c->nss.nb; i++)
		for (struct hnode *n = c->nss.b[i]; n; n = n->next) {
			struct nsrec *ns = (struct nsrec *)n;
			if (ns->dirty && (!best || ns->next_ms < best->next_ms))
				best = ns;
		}
	*due = best ? best->next_ms : rgtime_now_ms() + POLL_MS;
	return best;
}

/* A config handed over by reportctl_set_config takes effect here, where
 * no unlocked reader can still hold the old one. Lock held. */
static void swap_config(struct reportctl *c)
{
	struct config *old = c->cfg;

	if (!c->next_cfg)
		return;
	c->cfg = c->next_cfg;
	c->next_cfg = NULL;
	config_clear(old);
	free(old);
	wlwatch_relist(c->ww); /* modes and exemptions may read differently now */
}

/* One step of the controller; false when it waited. Lock held. */
static bool step(struct reportctl *c)
{
	bool leader = !c->lease || lease_is_leader(c->lease);
	long long due;
	struct nsrec *ns;
	struct wl *w;

	swap_config(c);
	if (leader && !c->was_leader)
		c->need_readback = true; /* a new leader trusts nobody's bookkeeping */
	c->was_leader = leader;
	if (!leader || !wlwatch_synced(c->ww)) {
		wlwatch_wait(c->ww, rgtime_now_ms() + POLL_MS, POLL_MS);
		return false;
	}
	if (c->resync_ms && rgtime_now_ms() >= c->resync_ms)
		c->need_readback = true;
	if ((c->need_readback || c->crd_missing) && rgtime_now_ms() >= c->readback_ms) {
		read_back(c);
		return true;
	}
	if (c->need_readback || c->crd_missing) {
		wlwatch_wait(c->ww, c->readback_ms, POLL_MS);
		return false;
	}
	w = first_pending(c);
	if (w) {
		evaluate_canary(c, w);
		return true;
	}
	ns = next_due(c, &due);
	if (ns && due <= rgtime_now_ms()) {
		write_ns(c, ns);
		return true;
	}
	wlwatch_wait(c->ww, due, POLL_MS);
	return false;
}

static void *run(void *arg)
{
	struct reportctl *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!wlwatch_stopping(c->ww))
		step(c);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- lifecycle ---- */

struct reportctl *reportctl_new(struct kube_client *client, struct objsource *src, struct lease *lease,
				struct config *cfg, char *err, size_t errlen)
{
	struct reportctl *c = calloc(1, sizeof(*c));
	struct wlwatch_handler wl_handler = { on_object, on_sweep, NULL, on_synced, c };

	if (!c) {
		snprintf(err, errlen, "out of memory");
		config_clear(cfg); /* taken in every case */
		free(cfg);
		return NULL;
	}
	c->client = client;
	c->src = src;
	c->lease = lease;
	c->cfg = cfg;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->ww = wlwatch_new(client, rk_ids, RK_COUNT, &cfg->watch_namespaces, &c->lock, &c->cond,
			    &wl_handler, err, errlen);
	if (!c->ww)
		goto fail;
	for (size_t i = 0; i < cfg->watch_namespaces.n; i++)
		if (strlist_push(&c->scope, cfg->watch_namespaces.v[i]) < 0)
			goto oom;
	metrics_report_workloads(0);
	return c;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	reportctl_free(c);
	return NULL;
}

int reportctl_start(struct reportctl *c, char *err, size_t errlen)
{
	if (wlwatch_start(c->ww, run, c, "report controller", err, errlen) < 0)
		return -1;
	RG_LOG(LOG_INFO, "report controller started", LF_I("interval_ms", c->cfg->reports_interval_ms),
	       LF_S("identity", c->lease ? lease_identity(c->lease) : "(no leader election)"));
	return 0;
}

void reportctl_set_config(struct reportctl *c, struct config *cfg)
{
	pthread_mutex_lock(&c->lock);
	if (c->next_cfg) {
		config_clear(c->next_cfg);
		free(c->next_cfg);
	}
	c->next_cfg = cfg;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

bool reportctl_synced(struct reportctl *c)
{
	return wlwatch_is_synced(c->ww);
}

void reportctl_stop(struct reportctl *c)
{
	if (c)
		wlwatch_stop(c->ww);
}

void reportctl_free(struct reportctl *c)
{
	if (!c)
		return;
	reportctl_stop(c);
	for (size_t i = 0; i < c->wls.nb; i++) {
		struct hnode *n = c->wls.b[i], *next;
		for (; n; n = next) {
			next = n->next;
			wl_remove(c, (struct wl *)n);
		}
	}
	for (size_t i = 0; i < c->nss.nb; i++) {
		struct hnode *n = c->nss.b[i], *next;
		for (; n; n = next) {
			next = n->next;
			free(((struct nsrec *)n)->name);
			free(n);
		}
	}
	free(c->wls.b);
	free(c->nss.b);
	wlwatch_free(c->ww);
	strlist_clear(&c->scope);
	config_clear(c->cfg);
	free(c->cfg);
	if (c->next_cfg) {
		config_clear(c->next_cfg);
		free(c->next_cfg);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
