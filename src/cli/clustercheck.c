/*
 * `rollgate check --cluster` (see clustercheck.h): paginated lists through
 * kubeclient, each object through report_check, into the check report.
 */
#include "clustercheck.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonutil.h"
#include "kinds.h"
#include "kubeclient.h"
#include "kubeconn.h"
#include "kubelist.h"
#include "objsource.h"
#include "report.h"

enum how { EVALUATE, COUNT_ONLY, CANARY };

/* The kinds listed, as rows of the kinds table (kinds.h). */
static const struct ckind {
	enum kind_id id;
	const char *label; /* for notes */
	enum how how;
} ckinds[] = {
	/* Canaries first: their targets are kept as the Deployments go by. */
	{ KIND_FLAGGER_CANARY, "Flagger Canaries (canaries.flagger.app)", CANARY },
	{ KIND_DEPLOYMENT, "Deployments", EVALUATE },
	{ KIND_STATEFULSET, "StatefulSets", EVALUATE },
	{ KIND_DAEMONSET, "DaemonSets", EVALUATE },
	{ KIND_REPLICASET, "ReplicaSets", COUNT_ONLY },
	{ KIND_ROLLOUT, "Argo Rollouts (rollouts.argoproj.io)", EVALUATE },
};
#define N_CKINDS (sizeof(ckinds) / sizeof(ckinds[0]))

/* ---- a set of strings (uids seen, Canary targets) ---- */

struct strset {
	char **slot;
	size_t cap, n;
};

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void strset_free(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

static bool strset_has(const struct strset *s, const char *k)
{
	if (!s->cap)
		return false;
	for (size_t i = str_hash(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i])
			return false;
		if (strcmp(s->slot[i], k) == 0)
			return true;
	}
}

/* Adds k; returns 1 when added, 0 when present, -1 on OOM. */
static int strset_add(struct strset *s, const char *k)
{
	size_t i;

	if (strset_has(s, k))
		return 0;
	if ((s->n + 1) * 2 > s->cap) {
		struct strset b = { calloc(s->cap ? s->cap * 2 : 64, sizeof(char *)),
				    s->cap ? s->cap * 2 : 64, 0 };
		if (!b.slot)
			return -1;
		for (size_t j = 0; j < s->cap; j++) {
			if (!s->slot[j])
				continue;
			for (i = str_hash(s->slot[j]) & (b.cap - 1); b.slot[i];
			     i = (i + 1) & (b.cap - 1))
				;
			b.slot[i] = s->slot[j];
			b.n++;
		}
		free(s->slot);
		*s = b;
	}
	for (i = str_hash(k) & (s->cap - 1); s->slot[i]; i = (i + 1) & (s->cap - 1))
		;
	s->slot[i] = strdup(k);
	if (!s->slot[i])
		return -1;
	s->n++;
	return 1;
}

/* ---- the run ---- */

struct run {
	struct engine *e;
	struct check_report *r;
	struct kube_client *client;
	const struct cluster_opts *o;
	struct strset targets; /* "namespace/name" of Canary targets */
	cJSON **canaries;      /* kept until the Deployments are listed */
	size_t n_canaries;
	size_t replicasets;
};

static int open_conn(const struct cluster_opts *o, struct kube_conn *c, char *err, size_t errlen)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	char path[4096], first[4096];
	struct stat st;

	if (o->kubeconfig)
		return kube_conn_from_kubeconfig_context(o->kubeconfig, o->context, c, err, errlen);
	if (env && *env) {
		/* kubectl merges a list; rollgate reads its first file. */
		snprintf(first, sizeof(first), "%.*s", (int)strcspn(env, ":"), env);
		return kube_conn_from_kubeconfig_context(first, o->context, c, err, errlen);
	}
	if (getenv("KUBERNETES_SERVICE_HOST") && !o->context)
		return kube_conn_in_cluster(c, err, errlen);
	snprintf(path, sizeof(path), "%s/.kube/config", home ? home : "");
	if (home && stat(path, &st) == 0)
		return kube_conn_from_kubeconfig_context(path, o->context, c, err, errlen);
	snprintf(err, errlen,
		 "no cluster credentials: pass --kubeconfig, set KUBECONFIG, or run in a cluster");
	return -1;
}

static const struct kind *kind_of(const struct ckind *k)
{
	return kinds_get(k->id);
}

/* The collection path of kind k, in o's namespace or the whole cluster. */
static void collection(const struct ckind *k, const char *ns, char *out, size_t len)
{
	const struct kind *t = kind_of(k);

	if (ns)
		snprintf(out, len, "%s/namespaces/%s/%s", t->api_path, ns, t->resource);
	else
		snprintf(out, len, "%s/%s", t->api_path, t->resource);
}

static void where_of(const struct ckind *k, const cJSON *item, struct check_where *w)
{
	const cJSON *md = json_get(item, "metadata");

	memset(w, 0, sizeof(*w));
	w->api_version = kind_of(k)->api_version;
	w->kind = kind_of(k)->kind;
	w->name = json_get_string(md, "name");
	w->namespace_ = json_get_string(md, "namespace");
	w->uid = json_get_string(md, "uid");
}

/* Lists leave kind and apiVersion out of their items; the rules need them. */
static int set_type(const struct ckind *k, cJSON *item)
{
	cJSON_DeleteItemFromObjectCaseSensitive(item, "apiVersion");
	cJSON_DeleteItemFromObjectCaseSensitive(item, "kind");
	return cJSON_AddStringToObject(item, "apiVersion", kind_of(k)->api_version) &&
			cJSON_AddStringToObject(item, "kind", kind_of(k)->kind)
		? 0
		: -1;
}

static int evaluate(struct run *run, const struct ckind *k, const cJSON *item, char *err,
		    size_t errlen)
{
	struct check_where w;
	struct verdict v;
	struct report_item *items = NULL;
	size_t n = 0;
	char why[512];
	int rc;

	where_of(k, item, &w);
	if (report_check(run->e, item, &v, &items, &n, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s/%s/%s: %s", w.namespace_ ? w.namespace_ : "", w.kind,
			 w.name ? w.name : "?", why);
		return -1;
	}
	rc = check_report_add(run->r, &w, &v, items, n); /* takes items */
	verdict_clear(&v);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* A Canary, kept for later; its target remembered. */
static int stash_canary(struct run *run, cJSON *item)
{
	const cJSON *ref = json_get_path(item, "spec", "targetRef", NULL);
	const char *ns = json_get_string(json_get(item, "metadata"), "namespace");
	const char *name = json_get_string(ref, "name"), *kind = json_get_string(ref, "kind");
	cJSON **nv = realloc(run->canaries, (run->n_canaries + 1) * sizeof(*nv));
	char key[600];

	if (!nv)
		return -1;
	run->canaries = nv;
	run->canaries[run->n_canaries++] = item;
	if (!ns || !name || !kind || strcmp(kind, kinds_get(KIND_DEPLOYMENT)->kind) != 0)
		return 0;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return strset_add(&run->targets, key) < 0 ? -1 : 0;
}

/* Makes a listed Deployment that a Canary targets known to the source. */
static int keep_target(struct run *run, const cJSON *item, char *err, size_t errlen)
{
	const cJSON *md = json_get(item, "metadata");
	char key[600];

	snprintf(key, sizeof(key), "%s/%s",
		 json_get_string(md, "namespace") ? json_get_string(md, "namespace") : "",
		 json_get_string(md, "name") ? json_get_string(md, "name") : "");
	if (!strset_has(&run->targets, key))
		return 0;
	return objsource_memory_add(run->e->src, item, err, errlen);
}

/* One listed object of kind k. *detached tells the caller the item left
 * the list (it is kept). */
static int take_item(struct run *run, const struct ckind *k, cJSON *list_items, cJSON *item, char *err,
		     size_t errlen)
{
	if (set_type(k, item) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	switch (k->how) {
	case COUNT_ONLY:
		run->replicasets++;
		check_report_count(run->r, 1);
		return 0;
	case CANARY:
		cJSON_DetachItemViaPointer(list_items, item);
		if (stash_canary(run, item) < 0) {
			cJSON_Delete(item);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	case EVALUATE:
		if (k->id == KIND_DEPLOYMENT && keep_target(run, item, err, errlen) < 0)
			return -1;
		return evaluate(run, k, item, err, errlen);
	}
	return 0;
}

/* The items of one page not seen before (by uid; a restarted list gives
 * them again). */
static int take_page(struct run *run, const struct ckind *k, cJSON *page, struct strset *seen,
		     char *err, size_t errlen)
{
	cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items"), *it, *next;
	const char *uid;
	int added;

	if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
		snprintf(err, errlen, "%s: malformed list: no items", kind_of(k)->resource);
		return -1;
	}
	for (it = items ? items->child : NULL; it; it = next) {
		next = it->next;
		if (!cJSON_IsObject(it))
			continue;
		uid = json_get_string(json_get(it, "metadata"), "uid");
		added = strset_add(seen, uid && *uid ? uid : "");
		if (added < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (added == 0 && uid && *uid)
			continue;
		if (seen->n > CLUSTER_MAX_OBJECTS) {
			snprintf(err, errlen, "%s: more than %d objects", kind_of(k)->resource,
				 CLUSTER_MAX_OBJECTS);
			return -1;
		}
		if (take_item(run, k, items, it, err, errlen) < 0)
			return -1;
	}
	return 0;
}

struct kind_list {
	struct run *run;
	const struct ckind *k;
	struct strset seen; /* uids: a restarted list gives objects again */
};

static int on_page(void *arg, cJSON *page, char *err, size_t errlen)
{
	struct kind_list *kl = arg;

	return take_page(kl->run, kl->k, page, &kl->seen, err, errlen);
}

/* Every object of kind k, page by page. */
static int list_kind(struct run *run, const struct ckind *k, char *err, size_t errlen)
{
	struct kind_list kl = { run, k, { 0 } };
	char coll[512];
	struct kube_list_opts lo = { coll, NULL, CLUSTER_PAGE_LIMIT, CLUSTER_REQUEST_TIMEOUT_MS,
				     CLUSTER_MAX_RESTARTS };
	enum kube_list_result r;

	collection(k, run->o->namespace_, coll, sizeof(coll));
	r = kube_list(run->client, &lo, on_page, &kl, err, errlen);
	strset_free(&kl.seen);
	if (r == KUBE_LIST_ABSENT && kinds_has(kind_of(k), KIND_CUSTOM)) {
		fprintf(stderr,
			"rollgate check: note: %s not served by the API server (404): skipped\n",
			k->label);
		return 0;
	}
	if (r == KUBE_LIST_ABSENT)
		snprintf(err, errlen, "list %s: HTTP 404: the API server does not serve it", coll);
	return r == KUBE_LIST_OK ? 0 : -1;
}

/* The change rules cannot be judged from objects at rest: off, said once. */
static int snapshot_rules(struct run *run)
{
	struct config *cfg = run->e->cfg;
	char note[400];

	if (cfg->rules[RULE_REPLICASET_DIRECT_EDIT].mode == MODE_OFF)
		return 0;
	cfg->rules[RULE_REPLICASET_DIRECT_EDIT].mode = MODE_OFF;
	snprintf(note, sizeof(note),
		 "%s not judged from a snapshot: it judges changes to ReplicaSets, and a "
		 "ReplicaSet at rest does not show who changed it",
		 rules_name(RULE_REPLICASET_DIRECT_EDIT));
	return check_report_run_note(run->r, note);
}

static int evaluate_canaries(struct run *run, char *err, size_t errlen)
{
	for (size_t i = 0; i < run->n_canaries; i++)
		if (evaluate(run, &ckinds[0], run->canaries[i], err, errlen) < 0)
			return -1;
	return 0;
}

int clustercheck_run(struct engine *e, const struct cluster_opts *o, struct check_report *r, char *err,
		     size_t errlen)
{
	struct run run = { e, r, NULL, o, { 0 }, NULL, 0, 0 };
	struct kube_conn conn;
	int rc = -1;

	memset(&conn, 0, sizeof(conn));
	if (o->namespace_ && !kube_valid_namespace(o->namespace_)) {
		snprintf(err, errlen, "--namespace \"%.80s\" is not a namespace name", o->namespace_);
		return -1;
	}
	if (open_conn(o, &conn, err, errlen) < 0)
		return -1;
	run.client = kube_client_new(&conn, err, errlen);
	if (!run.client || snapshot_rules(&run) < 0)
		goto out;
	for (size_t i = 0; i < N_CKINDS; i++)
		if (list_kind(&run, &ckinds[i], err, errlen) < 0)
			goto out;
	if (evaluate_canaries(&run, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < run.n_canaries; i++)
		cJSON_Delete(run.canaries[i]);
	free(run.canaries);
	strset_free(&run.targets);
	kube_client_free(run.client);
	kube_conn_clear(&conn);
	return rc;
}
