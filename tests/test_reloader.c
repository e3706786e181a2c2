/*
 * The reload controller and its leader election against the kube-apiserver
 * double (tests/apidouble.h): a selected key change gives exactly one
 * server-side apply with the hash the webhook computes; unselected keys,
 * metadata, restarts and leader changes give none; a burst coalesces into
 * one patch per workload; the rate limit spaces patches; dropped and
 * expired watches lose no change; two replicas never both patch and the
 * second takes over when the leader stops; and `rollgate serve` end to end.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#include "apidouble.h"
#include "harness.h"

#include "admission.h"
#include "config.h"
#include "confighash.h"
#include "jsonutil.h"
#include "kinds.h"
#include "kubesource.h"
#include "kwatch.h"
#include "labelsel.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "mutate.h"
#include "objcache.h"
#include "objsource.h"
#include "optin.h"
#include "patch.h"
#include "reloader.h"

#define WAIT_MS 20000
#define WINDOW_MS 400

/* Parses JSON the strict way; fails the test on bad JSON. */
static cJSON *parse_strict(const char *text)
{
	cJSON *o = NULL;
	char err[200];

	if (json_parse_strict(text, strlen(text), &o, err, sizeof(err)) < 0)
		fail_msg("bad JSON: %s", err);
	return o;
}

/* ---- a replica: cache, cached source, lease, controller ---- */

struct replica {
	struct ad_client ac; /* kubeconfig, client and Lease */
	struct objcache *cache;
	struct objsource *src;
	struct reloader *rl;
	bool up;
};

static const char default_cfg[] = "reload:\n  coalesceWindow: 400ms\n";

/* lo NULL: no leader election (always leader). */
static void replica_up(struct replica *rp, struct ad *d, const char *token, const char *yaml,
		       const struct lease_options *lo)
{
	char err[512];
	struct objsource *gets;
	struct config *cfg = tu_config(yaml ? yaml : default_cfg);

	memset(rp, 0, sizeof(*rp));
	ad_client_open(&rp->ac, d, tu_certdir, token, lo);
	{
		const struct objcache_scope scope = { &cfg->watch_namespaces,
						      cfg->watch_label_selector,
						      cfg->reload_resource_label_selector,
						      cfg->reload_ignore_configmaps,
						      cfg->reload_ignore_secrets };
		rp->cache = objcache_new_scoped(rp->ac.client, &scope, err, sizeof(err));
	}
	assert_non_null(rp->cache);
	assert_int_equal(objcache_start(rp->cache, err, sizeof(err)), 0);
	gets = kubesource_new(rp->ac.kc, err, sizeof(err));
	assert_non_null(gets);
	rp->src = objsource_cached_new(rp->cache, gets);
	assert_non_null(rp->src);
	rp->rl = reloader_new(rp->ac.client, rp->cache, rp->src, rp->ac.lease, cfg, err, sizeof(err));
	if (!rp->rl)
		fail_msg("reloader_new: %s", err);
	assert_int_equal(reloader_start(rp->rl, err, sizeof(err)), 0);
	rp->up = true;
}

/* Graceful (release the lease) or a crash (just stop). */
static void replica_down(struct replica *rp, bool graceful)
{
	if (!rp->up)
		return;
	reloader_stop(rp->rl);
	lease_stop(rp->ac.lease, graceful);
	reloader_free(rp->rl);
	objsource_free(rp->src);
	objcache_free(rp->cache);
	ad_client_close(&rp->ac);
	rp->up = false;
}

static bool replica_synced(void *arg)
{
	struct replica *rp = arg;

	return reloader_synced(rp->rl) && objcache_synced(rp->cache);
}

/* ---- per-test state ---- */

struct env {
	struct ad d;
	struct replica a, b;
	struct rg_server srv;
};

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e || ad_start(&e->d, tu_certdir) < 0)
		return -1;
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;

	long long t0 = rgtime_now_ms(), t1, t2;

	if (e->srv.pid > 0)
		h_stop(&e->srv, SIGKILL, 10);
	replica_down(&e->a, false);
	replica_down(&e->b, false);
	t1 = rgtime_now_ms();
	ad_stop(&e->d);
	t2 = rgtime_now_ms();
	if (getenv("TEST_TIMING"))
		printf("teardown: replicas %lld ms, double %lld ms\n", t1 - t0, t2 - t1);
	free(e);
	return 0;
}

/* ---- objects ---- */

static const char cm_v1[] = "{\"data\":{\"LOG_LEVEL\":\"info\",\"other\":\"1\"}}";
static const char secret_v1[] = "{\"data\":{\"password\":\"czNjcjN0\"}}";

/* A workload whose pods read ConfigMap app-config key LOG_LEVEL and the
 * whole Secret db-creds, opted in, carrying hash (NULL: none). */
static char *workload_json(const char *hash, const char *cm)
{
	char *s = malloc(4096);

	snprintf(s, 4096,
		 "{\"metadata\":{\"annotations\":{\"rollgate.io/reload\":\"true\"}},"
		 "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{"
		 "\"metadata\":{\"labels\":{\"app\":\"web\"}%s%s%s},"
		 "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.25\","
		 "\"env\":[{\"name\":\"LEVEL\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"%s\","
		 "\"key\":\"LOG_LEVEL\"}}}],\"envFrom\":[{\"secretRef\":{\"name\":\"db-creds\"}}]}]}}}"
		 "}",
		 hash ? ",\"annotations\":{\"rollgate.io/config-hash\":\"" : "", hash ? hash : "",
		 hash ? "\"}" : "", cm);
	return s;
}

/* Whether the webhook's cache holds obj under cfg: ConfigMaps and Secrets
 * inside reload.resourceLabelSelector. */
static bool cache_holds(const struct config *cfg, const cJSON *obj)
{
	struct labelsel *sel = NULL;
	char err[200];
	bool m;

	if (!cfg->reload_resource_label_selector)
		return true;
	assert_int_equal(labelsel_parse(cfg->reload_resource_label_selector, &sel, err, sizeof(err)),
			 0);
	m = labelsel_matches(sel, json_get_path(obj, "metadata", "labels", NULL));
	labelsel_free(sel);
	return m;
}

/* The stored workload as the webhook leaves it after an UPDATE under config
 * yaml (NULL: the defaults), given the ConfigMaps and Secrets the double
 * holds now: mutate_plan, the in-memory object source, mutate_finish, the
 * patch applied. The caller deletes the tree. */
static cJSON *webhook_apply(struct ad *d, const char *yaml, const char *res, const char *kind,
			    const char *ns, const char *name)
{
	char *obj = ad_get_json(d, res, ns, name), err[256], *review;
	struct objsource *mem = objsource_memory_new();
	struct admission_request req;
	struct admission_response resp;
	struct stamp_plan plan;
	struct config cfg;
	const char *group = strcmp(res, "rollouts") == 0 ? "argoproj.io" : "apps";
	const char *version = strcmp(res, "rollouts") == 0 ? "v1alpha1" : "v1";
	cJSON *doc;
	size_t n;

	assert_non_null(obj);
	if (yaml)
		assert_int_equal(config_load_buffer("test.yaml", yaml, strlen(yaml), &cfg, err,
						    sizeof(err)),
				 0);
	else
		assert_int_equal(config_defaults(&cfg), 0);
	ad_begin(d);
	for (size_t i = 0; i < d->n_objs; i++) {
		const char *r = d->objs[i].k->res;
		if ((strcmp(r, "configmaps") == 0 || strcmp(r, "secrets") == 0) &&
		    cache_holds(&cfg, d->objs[i].obj))
			assert_int_equal(objsource_memory_add(mem, d->objs[i].obj, err, sizeof(err)),
					 0);
	}
	ad_end(d);
	n = strlen(obj) * 2 + 1024;
	review = malloc(n);
	snprintf(review, n,
		 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		 "\"uid\":\"u-1\",\"kind\":{\"group\":\"%s\",\"version\":\"%s\",\"kind\":\"%s\"},"
		 "\"resource\":{\"group\":\"%s\",\"version\":\"%s\",\"resource\":\"%s\"},"
		 "\"name\":\"%s\",\"namespace\":\"%s\",\"operation\":\"UPDATE\","
		 "\"userInfo\":{\"username\":\"alice\"},\"object\":%s,\"oldObject\":%s}}",
		 group, version, kind, group, version, res, name, ns, obj, obj);
	assert_int_equal(admission_decode(review, strlen(review), &req, err, sizeof(err)), 0);
	assert_int_equal(mutate_plan(&cfg, &req, &plan, err, sizeof(err)), 0);
	assert_true(plan.applies);
	assert_int_equal(objsource_resolve(mem, &plan.batch, 1000, NULL, NULL), 0);
	admission_response_init(&resp);
	assert_int_equal(mutate_finish(&cfg, &req, &plan, &resp), 0);
	doc = parse_strict(obj);
	if (resp.patch)
		assert_int_equal(patch_apply(doc, resp.patch, err, sizeof(err)), 0);
	admission_response_clear(&resp);
	stamp_plan_clear(&plan);
	admission_request_clear(&req);
	config_clear(&cfg);
	objsource_free(mem);
	free(review);
	free(obj);
	return doc;
}

/* The hash the webhook stamps for the stored workload under config yaml,
 * read where it keeps it (pod template, or a restart Rollout's metadata). */
static void webhook_hash_cfg(struct ad *d, const char *yaml, const char *res, const char *kind,
			     const char *ns, const char *name, char out[CONFIGHASH_VALUE_LEN])
{
	cJSON *doc = webhook_apply(d, yaml, res, kind, ns, name);
	const struct kind *k =
		kinds_by_group_kind(strcmp(res, "rollouts") == 0 ? "argoproj.io" : "apps", kind);
	const char *v = mutate_stamped_hash(k, doc, "rollgate.io/config-hash");

	assert_non_null(v);
	snprintf(out, CONFIGHASH_VALUE_LEN, "%s", v);
	cJSON_Delete(doc);
}

static void webhook_hash(struct ad *d, const char *res, const char *kind, const char *ns,
			 const char *name, char out[CONFIGHASH_VALUE_LEN])
{
	webhook_hash_cfg(d, NULL, res, kind, ns, name, out);
}

/* Stores json as res/ns/name, then what the webhook makes of it under
 * config yaml (the hash stamped, a hold placed). */
static void put_webhook(struct ad *d, const char *yaml, const char *res, const char *kind,
			const char *ns, const char *name, const char *json)
{
	cJSON *doc;
	char *text;

	ad_put(d, res, ns, name, json);
	doc = webhook_apply(d, yaml, res, kind, ns, name);
	text = cJSON_PrintUnformatted(doc);
	ad_put(d, res, ns, name, text);
	free(text);
	cJSON_Delete(doc);
}

/* Stores a workload stamped with the hash the webhook would give it now. */
static void put_stamped(struct ad *d, const char *res, const char *kind, const char *ns,
			const char *name, const char *cm)
{
	char hash[CONFIGHASH_VALUE_LEN];
	char *w = workload_json(NULL, cm);

	ad_put(d, res, ns, name, w);
	free(w);
	webhook_hash(d, res, kind, ns, name, hash);
	w = workload_json(hash, cm);
	ad_put(d, res, ns, name, w);
	free(w);
}

static void put_basics(struct ad *d)
{
	ad_put(d, "configmaps", "shop", "app-config", cm_v1);
	ad_put(d, "secrets", "shop", "db-creds", secret_v1);
	put_stamped(d, "deployments", "Deployment", "shop", "web", "app-config");
}

static void set_level(struct ad *d, const char *level)
{
	char cm[256];

	snprintf(cm, sizeof(cm), "{\"data\":{\"LOG_LEVEL\":\"%s\",\"other\":\"1\"}}", level);
	ad_put(d, "configmaps", "shop", "app-config", cm);
}

struct patch_probe {
	struct ad *d;
	size_t n;
};

static bool patches_reach(void *arg)
{
	struct patch_probe *p = arg;

	return ad_patch_count(p->d) >= p->n;
}

static void expect_patches(struct ad *d, size_t n)
{
	struct patch_probe p = { d, n };

	if (!tu_wait_for(patches_reach, &p, WAIT_MS))
		fail_msg("expected %zu patches, saw %zu", n, ad_patch_count(d));
}

/* Long enough for anything due to have happened: the window, a rate-limit
 * token or two, scheduling on a loaded machine. */
static void settle(void)
{
	usleep((WINDOW_MS + 800) * 1000);
}

/* The hash a recorded PATCH sets, checked for the merge-patch shape. */
static void patch_hash(struct ad *d, size_t i, const char *path, char out[CONFIGHASH_VALUE_LEN])
{
	struct ad_patch p;
	cJSON *body;
	const char *v;

	ad_begin(d);
	p = d->patches[i];
	body = tu_json_or_null(p.body, strlen(p.body));
	ad_end(d);
	assert_non_null(body);
	assert_string_equal(p.path, path);
	assert_string_equal(p.query, "fieldManager=rollgate&force=");
	assert_string_equal(p.ctype, "application/merge-patch+json");
	assert_non_null(body);
	v = json_get_string(json_get_path(body, "spec", "template", "metadata", "annotations", NULL),
			    "rollgate.io/config-hash");
	assert_non_null(v);
	snprintf(out, CONFIGHASH_VALUE_LEN, "%s", v);
	cJSON_Delete(body);
}

/* Waits for patch i (the i+1-th) and checks that it is a merge patch
 * of Deployment shop/web carrying the hash the webhook computes now, which
 * it writes to want. */
static void expect_web_patch(struct ad *d, size_t i, char want[CONFIGHASH_VALUE_LEN])
{
	char got[CONFIGHASH_VALUE_LEN];

	expect_patches(d, i + 1);
	webhook_hash(d, "deployments", "Deployment", "shop", "web", want);
	patch_hash(d, i, "/apis/apps/v1/namespaces/shop/deployments/web", got);
	assert_string_equal(got, want);
}

static double metric_value(const char *prefix)
{
	char *m = metrics_render(), line[300];
	const char *p;
	double v = -1;

	snprintf(line, sizeof(line), "\n%s", prefix);
	p = m ? strstr(m, line) : NULL;
	if (p)
		v = strtod(p + strlen(line), NULL);
	free(m);
	return v;
}

/* ---- the controller ---- */

static void test_selected_key_change_patches_once(void **state)
{
	struct env *e = *state;
	char want[CONFIGHASH_VALUE_LEN];
	double applied;
	char *w;
	cJSON *ev;

	put_basics(&e->d);
	/* Never stamped: the webhook stamps it on its next write, not us. */
	w = workload_json(NULL, "app-config");
	ad_put(&e->d, "deployments", "shop", "fresh", w);
	free(w);
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(&e->d), 0); /* startup: nothing differs */

	applied = metric_value("rollgate_reload_patches_total{outcome=\"applied\"} ");
	set_level(&e->d, "debug");
	expect_web_patch(&e->d, 0, want);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 1);
	assert_true(metric_value("rollgate_reload_patches_total{outcome=\"applied\"} ") ==
		    applied + 1);

	/* The Event says what triggered the rollout. */
	assert_int_equal(ad_posted_count(&e->d), 1);
	ad_begin(&e->d);
	ev = tu_json_or_null(e->d.posted[0], strlen(e->d.posted[0]));
	ad_end(&e->d);
	assert_non_null(ev);
	assert_string_equal(json_get_string(ev, "reason"), "ConfigChanged");
	assert_string_equal(json_get_string(ev, "type"), "Normal");
	assert_string_equal(json_get_string(json_get(ev, "source"), "component"), "rollgate");
	assert_string_equal(json_get_string(json_get(ev, "involvedObject"), "kind"), "Deployment");
	assert_string_equal(json_get_string(json_get(ev, "involvedObject"), "name"), "web");
	assert_string_equal(json_get_string(json_get(ev, "involvedObject"), "namespace"), "shop");
	assert_non_null(json_get_string(json_get(ev, "involvedObject"), "uid"));
	assert_non_null(strstr(json_get_string(ev, "message"), "ConfigMap \"app-config\""));
	assert_non_null(strstr(json_get_string(ev, "message"), want));
	cJSON_Delete(ev);

	/* A Secret taken whole: any key counts. */
	ad_put(&e->d, "secrets", "shop", "db-creds", "{\"data\":{\"password\":\"bmV3\"}}");
	expect_web_patch(&e->d, 1, want);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 2);
}

static void test_unselected_changes_patch_nothing(void **state)
{
	struct env *e = *state;

	put_basics(&e->d);
	ad_put(&e->d, "configmaps", "shop", "unused", "{\"data\":{\"a\":\"1\"}}");
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	/* A key the workload does not select, labels only, an object it does
	 * not use, the same values written again. */
	ad_put(&e->d, "configmaps", "shop", "app-config",
	       "{\"data\":{\"LOG_LEVEL\":\"info\",\"other\":\"2\"}}");
	ad_put(&e->d, "configmaps", "shop", "app-config",
	       "{\"metadata\":{\"labels\":{\"x\":\"y\"}},\"data\":{\"LOG_LEVEL\":\"info\",\"other\":"
	       "\"2\"}}");
	ad_put(&e->d, "configmaps", "shop", "unused", "{\"data\":{\"a\":\"2\"}}");
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_v1);
	/* A same-named ConfigMap in another namespace. */
	ad_put(&e->d, "configmaps", "other", "app-config", "{\"data\":{\"LOG_LEVEL\":\"debug\"}}");
	settle();
	assert_int_equal(ad_patch_count(&e->d), 0);
}

static void test_burst_coalesces_per_workload(void **state)
{
	struct env *e = *state;
	char want[CONFIGHASH_VALUE_LEN], got[CONFIGHASH_VALUE_LEN], level[32];
	static const char *const res[] = { "deployments", "statefulsets", "daemonsets" };
	static const char *const kinds[] = { "Deployment", "StatefulSet", "DaemonSet" };
	long long t0;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_v1);
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_v1);
	for (int i = 0; i < 3; i++)
		put_stamped(&e->d, res[i], kinds[i], "shop", "web", "app-config");
	/* The default coalescing window, 2 s. */
	replica_up(&e->a, &e->d, "replica-a", "reload:\n  coalesceWindow: 2s\n", NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	/* The startup comparison runs one window after the controller sees the
	 * sync (which it checks every 0.5 s): let it pass before the burst. */
	usleep(3200 * 1000);
	assert_int_equal(ad_patch_count(&e->d), 0);
	/* 100 changes within one second. */
	t0 = rgtime_now_ms();
	for (int i = 0; i < 100; i++) {
		snprintf(level, sizeof(level), "level-%d", i);
		set_level(&e->d, level);
		usleep(5 * 1000);
	}
	printf("100 changes written in %lld ms\n", rgtime_now_ms() - t0);
	expect_patches(&e->d, 3);
	printf("first patch %.0f ms after the first change\n",
	       (e->d.patches[0].t - (double)t0 / 1000.0) * 1000.0);
	usleep(2300 * 1000); /* a second round would come one window later */
	if (ad_patch_count(&e->d) != 3)
		for (size_t i = 0; i < ad_patch_count(&e->d); i++)
			printf("patch %zu at +%.0f ms: %s\n", i,
			       (e->d.patches[i].t - (double)t0 / 1000.0) * 1000.0,
			       e->d.patches[i].path);
	assert_int_equal(ad_patch_count(&e->d), 3);
	for (int i = 0; i < 3; i++) {
		char path[200];
		size_t j;
		for (j = 0; j < 3; j++) {
			snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/shop/%s/web", res[i]);
			if (strcmp(e->d.patches[j].path, path) == 0)
				break;
		}
		assert_true(j < 3);
		patch_hash(&e->d, j, path, got);
		webhook_hash(&e->d, res[i], kinds[i], "shop", "web", want);
		assert_string_equal(got, want);
	}
	printf("burst: 100 changes -> %zu patches for 3 workloads\n", ad_patch_count(&e->d));
}

static void test_restart_rolls_nothing_out(void **state)
{
	struct env *e = *state;
	char want[CONFIGHASH_VALUE_LEN];

	put_basics(&e->d);
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	set_level(&e->d, "debug");
	expect_patches(&e->d, 1);
	settle();
	replica_down(&e->a, true);
	/* A restart: the same state, nothing to do. */
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(&e->d), 1);
	replica_down(&e->a, true);
	/* A change while nobody watched is a real difference: patched once
	 * after the next start. */
	set_level(&e->d, "trace");
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	expect_web_patch(&e->d, 1, want);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 2);
	printf("restart: 0 patches; change while stopped: 1 patch on start\n");
}

static void test_dropped_and_expired_watches_lose_nothing(void **state)
{
	struct env *e = *state;
	char want[CONFIGHASH_VALUE_LEN];

	put_basics(&e->d);
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	/* Streams cut, the change lands before any reconnect. */
	ad_begin(&e->d);
	e->d.drop_gen++;
	ad_put_locked(&e->d, "configmaps", "shop", "app-config",
		      "{\"data\":{\"LOG_LEVEL\":\"dropped\",\"other\":\"1\"}}");
	ad_end(&e->d);
	expect_web_patch(&e->d, 0, want);
	settle();
	/* The change, then the history compacted: 410, relist, still seen. */
	ad_begin(&e->d);
	ad_put_locked(&e->d, "configmaps", "shop", "app-config",
		      "{\"data\":{\"LOG_LEVEL\":\"expired\",\"other\":\"1\"}}");
	ad_compact_locked(&e->d);
	ad_end(&e->d);
	expect_web_patch(&e->d, 1, want);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 2);
	/* A deleted object changes the hash as well. */
	ad_delete(&e->d, "secrets", "shop", "db-creds");
	expect_patches(&e->d, 3);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 3);
}

static void test_rollouts_absent_and_present(void **state)
{
	struct env *e = *state;
	char want[CONFIGHASH_VALUE_LEN], got[CONFIGHASH_VALUE_LEN];

	put_basics(&e->d);
	e->d.no_rollouts = true;
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	set_level(&e->d, "debug");
	expect_patches(&e->d, 1);
	replica_down(&e->a, true);
	/* With the CRD served, Rollouts are rolled out too. */
	e->d.no_rollouts = false;
	put_stamped(&e->d, "rollouts", "Rollout", "shop", "canary", "app-config");
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(&e->d), 1);
	set_level(&e->d, "warn");
	expect_patches(&e->d, 3);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 3);
	for (size_t i = 1; i < 3; i++) {
		if (strstr(e->d.patches[i].path, "rollouts")) {
			patch_hash(&e->d, i,
				   "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/canary", got);
			webhook_hash(&e->d, "rollouts", "Rollout", "shop", "canary", want);
			assert_string_equal(got, want);
		}
	}
}

static void test_rate_limit_spaces_patches(void **state)
{
	struct env *e = *state;
	double limited = metric_value("rollgate_reload_rate_limited_total ");
	double t0, t2;
	char name[32];

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_v1);
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_v1);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		put_stamped(&e->d, "deployments", "Deployment", "shop", name, "app-config");
	}
	replica_up(&e->a, &e->d, "replica-a",
		   "reload:\n  coalesceWindow: 100ms\n  rate: 1\n  burst: 1\n", NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	usleep(1500 * 1000);
	set_level(&e->d, "debug");
	expect_patches(&e->d, 3);
	t0 = e->d.patches[0].t;
	t2 = e->d.patches[2].t;
	printf("rate limit 1/s, burst 1: 3 patches over %.2f s\n", t2 - t0);
	assert_true(t2 - t0 >= 1.5);
	assert_true(metric_value("rollgate_reload_rate_limited_total ") >= limited + 2);
}

/* ---- leader election ---- */

static bool leads(void *arg)
{
	return lease_is_leader(((struct replica *)arg)->ac.lease);
}

static bool either_leads(void *arg)
{
	struct env *e = arg;

	return lease_is_leader(e->a.ac.lease) || lease_is_leader(e->b.ac.lease);
}

struct exclusive {
	struct replica *a, *b;
	atomic_bool stop;
	atomic_int both;
};

static void *watch_exclusive(void *arg)
{
	struct exclusive *x = arg;

	while (!atomic_load(&x->stop)) {
		if (lease_is_leader(x->a->ac.lease) && lease_is_leader(x->b->ac.lease))
			atomic_fetch_add(&x->both, 1);
		usleep(2000);
	}
	return NULL;
}

static void test_two_replicas_one_patcher_and_takeover(void **state)
{
	struct env *e = *state;
	struct lease_options lo;
	struct replica *leader, *other;
	struct exclusive x;
	pthread_t t;
	long long t0;
	double took;

	lease_default_options(&lo);
	lo.namespace_ = "rollgate";
	put_basics(&e->d);
	replica_up(&e->a, &e->d, "replica-a", NULL, &lo);
	replica_up(&e->b, &e->d, "replica-b", NULL, &lo);
	x.a = &e->a;
	x.b = &e->b;
	atomic_init(&x.stop, false);
	atomic_init(&x.both, 0);
	pthread_create(&t, NULL, watch_exclusive, &x);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	assert_true(tu_wait_for(replica_synced, &e->b, WAIT_MS));
	assert_true(tu_wait_for(either_leads, e, WAIT_MS));
	leader = lease_is_leader(e->a.ac.lease) ? &e->a : &e->b;
	other = leader == &e->a ? &e->b : &e->a;
	settle();
	assert_int_equal(ad_patch_count(&e->d), 0);
	/* Both replicas see the change; only the leader patches. */
	set_level(&e->d, "debug");
	expect_patches(&e->d, 1);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 1);
	assert_string_equal(e->d.patches[0].token, leader == &e->a ? "replica-a" : "replica-b");

	/* Both replicas were up until here: the watcher stops before one is
	 * freed (it reads their leases). */
	atomic_store(&x.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&x.both), 0);
	/* The leader stops (gracefully, releasing the lease). */
	t0 = rgtime_now_ms();
	replica_down(leader, true);
	assert_true(tu_wait_for(leads, other, WAIT_MS));
	took = (double)(rgtime_now_ms() - t0) / 1000.0;
	printf("graceful leader stop: takeover after %.2f s\n", took);
	assert_true(took < 20.0);
	/* A leader change rolls nothing out... */
	settle();
	assert_int_equal(ad_patch_count(&e->d), 1);
	/* ...and the new leader patches the next change. */
	set_level(&e->d, "trace");
	expect_patches(&e->d, 2);
	settle();
	assert_int_equal(ad_patch_count(&e->d), 2);
	assert_string_equal(e->d.patches[1].token, other == &e->a ? "replica-a" : "replica-b");
	/* The released lease was empty with a 1 s duration before the takeover. */
	ad_begin(&e->d);
	{
		bool released = false;
		for (size_t i = 0; i < e->d.n_lease_log; i++)
			released = released || e->d.lease_log[i].holder[0] == '\0';
		assert_true(released);
	}
	ad_end(&e->d);
}

static void test_leader_crash_takeover(void **state)
{
	struct env *e = *state;
	struct lease_options lo;
	struct replica *leader, *other;
	long long t0;
	double took;

	/* Short timings keep the test quick; the production ones (15 s, 10 s,
	 * 2 s) bound the takeover after a crash by about 19 s. */
	ad_lease_options(&lo);
	put_basics(&e->d);
	replica_up(&e->a, &e->d, "replica-a", NULL, &lo);
	replica_up(&e->b, &e->d, "replica-b", NULL, &lo);
	assert_true(tu_wait_for(either_leads, e, WAIT_MS));
	leader = lease_is_leader(e->a.ac.lease) ? &e->a : &e->b;
	other = leader == &e->a ? &e->b : &e->a;
	assert_false(lease_is_leader(other->ac.lease));
	t0 = rgtime_now_ms();
	replica_down(leader, false); /* no release: the lease must expire */
	assert_true(tu_wait_for(leads, other, WAIT_MS));
	took = (double)(rgtime_now_ms() - t0) / 1000.0;
	printf("leader crash (3 s lease): takeover after %.2f s\n", took);
	assert_true(took >= 1.5 && took < 20.0);
}

static void test_lease_conflict(void **state)
{
	struct env *e = *state;
	struct lease_options lo;
	char err[256];
	int leaders = 0;

	lease_default_options(&lo);
	lo.namespace_ = "rollgate";
	e->d.lease_write_delay_ms = 300; /* both read "absent" before either writes */
	replica_up(&e->a, &e->d, "replica-a", NULL, &lo);
	replica_up(&e->b, &e->d, "replica-b", NULL, &lo);
	assert_true(tu_wait_for(either_leads, e, WAIT_MS));
	usleep(2500 * 1000);
	leaders = lease_is_leader(e->a.ac.lease) + lease_is_leader(e->b.ac.lease);
	assert_int_equal(leaders, 1);
	assert_true(atomic_load(&e->d.lease_conflicts) >= 1);
	printf("lease race: %d conflict(s), 1 leader\n", atomic_load(&e->d.lease_conflicts));
	/* Invalid options are refused. */
	lo.renew_deadline_ms = 20000;
	lo.identity = "x";
	assert_null(lease_new(e->a.ac.client, &lo, err, sizeof(err)));
}

/* ---- rollgate serve ---- */

#define NEED_BIN()                                                     \
	do {                                                           \
		if (!h_bin()) {                                        \
			printf("[  SKIP    ] ROLLGATE_BIN not set\n"); \
			return;                                        \
		}                                                      \
	} while (0)

struct lease_holder_probe {
	struct ad *d;
	bool want_empty;
};

static bool lease_held(void *arg)
{
	struct lease_holder_probe *p = arg;
	char *j = ad_get_json(p->d, "leases", "ops", LEASE_NAME);
	cJSON *o = j ? tu_json_or_null(j, strlen(j)) : NULL;
	const char *h = json_get_string(json_get(o, "spec"), "holderIdentity");
	bool ok = h && (p->want_empty ? *h == '\0' : *h != '\0');

	cJSON_Delete(o);
	free(j);
	return ok;
}

static bool rollout_logged(void *arg)
{
	return h_log_has(arg, "reload: rollout triggered");
}

static void test_serve_end_to_end(void **state)
{
	struct env *e = *state;
	struct ad_serve_files sf;
	char want[CONFIGHASH_VALUE_LEN];
	struct lease_holder_probe lp = { &e->d, false };
	const char *args[16];

	NEED_BIN();
	put_basics(&e->d);
	/* No namespace in the kubeconfig: --lease-namespace decides. */
	ad_serve_files(&sf, &e->d, tu_certdir, "serve-token", "reload-config.yaml",
		       "reload:\n  coalesceWindow: 400ms\n");
	args[0] = "--tls-cert";
	args[1] = sf.cert;
	args[2] = "--tls-key";
	args[3] = sf.key;
	args[4] = "--kubeconfig";
	args[5] = sf.kc;
	args[6] = "--lease-namespace";
	args[7] = "ops";
	args[8] = "--config";
	args[9] = sf.config;
	args[10] = NULL;
	assert_int_equal(h_start(&e->srv, tu_certdir, args), 0);
	assert_true(tu_wait_for(lease_held, &lp, WAIT_MS));
	usleep(2500 * 1000);
	assert_int_equal(ad_patch_count(&e->d), 0);
	set_level(&e->d, "debug");
	expect_web_patch(&e->d, 0, want);
	/* The line follows the PATCH's answer: wait for it. */
	assert_true(tu_wait_for(rollout_logged, &e->srv, WAIT_MS));
	/* SIGTERM releases the lease. */
	assert_int_equal(h_stop(&e->srv, SIGTERM, 20), 0);
	lp.want_empty = true;
	assert_true(lease_held(&lp));
	assert_int_equal(ad_patch_count(&e->d), 1);
	ad_serve_files_remove(&sf);
}

/* ---- Reloader's and Wave's annotations, and the reload: flags ---- */

/* A Deployment (or other workload) in JSON: metadata annotations ann (a
 * JSON object body, "" for none), template annotations tann, a pod spec
 * taking envFrom of each "cm:NAME" or "secret:NAME" of refs (space
 * separated), and extra pod spec fields. */
static char *wl_json(const char *ann, const char *tann, const char *refs, const char *podextra)
{
	char *s = malloc(8192), env[2048] = "", copy[1024], *save = NULL, *ref;
	size_t len = 0;

	snprintf(copy, sizeof(copy), "%s", refs ? refs : "");
	for (ref = strtok_r(copy, " ", &save); ref; ref = strtok_r(NULL, " ", &save)) {
		int w = snprintf(env + len, sizeof(env) - len, "%s{\"%s\":{\"name\":\"%s\"}}",
				 len ? "," : "",
				 strncmp(ref, "cm:", 3) == 0 ? "configMapRef" : "secretRef",
				 strchr(ref, ':') + 1);
		assert_true(w > 0 && (size_t)w < sizeof(env) - len);
		len += (size_t)w;
	}
	snprintf(s, 8192,
		 "{\"metadata\":{\"annotations\":{%s}},"
		 "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{"
		 "\"metadata\":{\"labels\":{\"app\":\"web\"},\"annotations\":{%s}},"
		 "\"spec\":{%s\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.25\","
		 "\"envFrom\":[%s]}]}}}}",
		 ann, tann, podextra ? podextra : "", env);
	return s;
}

static void put_wl(struct ad *d, const char *yaml, const char *res, const char *kind, const char *ns,
		   const char *name, const char *ann, const char *refs)
{
	char *w = wl_json(ann, "", refs, NULL);

	put_webhook(d, yaml, res, kind, ns, name, w);
	free(w);
}

/* Patch i parsed (the caller deletes it), after checking its path and
 * content type. */
static cJSON *patch_body(struct ad *d, size_t i, const char *path, const char *ctype)
{
	struct ad_patch p;
	cJSON *body;

	ad_begin(d);
	p = d->patches[i];
	body = parse_strict(p.body);
	if (path)
		assert_string_equal(p.path, path);
	assert_string_equal(p.query, "fieldManager=rollgate&force=");
	assert_string_equal(p.ctype, ctype);
	ad_end(d);
	assert_non_null(body);
	return body;
}

/* The deployment name in a recorded patch path. */
static const char *patch_target(struct ad *d, size_t i)
{
	const char *slash = strrchr(d->patches[i].path, '/');

	return slash ? slash + 1 : "";
}

/*
 * Waits until the patches after the first `from` are exactly one rollout
 * merge patch for each Deployment of shop named in names (a NULL-terminated
 * list, any order), each carrying the hash the webhook stamps now under
 * yaml; then that no other patch follows. Returns the count.
 */
static size_t expect_rolled(struct env *e, const char *yaml, size_t from, const char *const *names)
{
	size_t n = 0;

	while (names[n])
		n++;
	if (n)
		expect_patches(&e->d, from + n);
	settle();
	if (ad_patch_count(&e->d) != from + n) {
		for (size_t i = from; i < ad_patch_count(&e->d); i++)
			print_message("patch %zu: %s %s\n", i, e->d.patches[i].path,
				      e->d.patches[i].body);
		fail_msg("expected %zu rollouts after patch %zu, saw %zu", n, from,
			 ad_patch_count(&e->d) - from);
	}
	for (size_t i = from; i < from + n; i++) {
		const char *target = patch_target(&e->d, i);
		char want[CONFIGHASH_VALUE_LEN], path[300];
		bool named = false;
		cJSON *body;
		for (size_t j = 0; j < n; j++)
			named |= strcmp(names[j], target) == 0;
		if (!named)
			fail_msg("patch %zu rolled %s", i, target);
		snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/shop/deployments/%s", target);
		body = patch_body(&e->d, i, path, "application/merge-patch+json");
		webhook_hash_cfg(&e->d, yaml, "deployments", "Deployment", "shop", target, want);
		assert_string_equal(json_get_string(json_get_path(body, "spec", "template", "metadata",
								  "annotations", NULL),
						    "rollgate.io/config-hash"),
				    want);
		cJSON_Delete(body);
	}
	return from + n;
}

static const char *const none[] = { NULL };

static void start_synced(struct env *e, const char *yaml)
{
	replica_up(&e->a, &e->d, "replica-a", yaml, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(&e->d), 0); /* startup: nothing differs */
}

static void test_reloader_annotations(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	size_t n = 0;

	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "b", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "b-extra", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "c", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "m", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "secrets", "shop", "s", "{\"data\":{\"p\":\"MQ==\"}}");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "w-auto",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:a secret:s");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "w-cmauto",
	       "\"configmap.reloader.stakater.com/auto\":\"true\"", "cm:a secret:s");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "w-list",
	       "\"configmap.reloader.stakater.com/reload\":\"b,b-e.*\"", "cm:a cm:b-extra");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "w-excl",
	       "\"reloader.stakater.com/auto\":\"true\","
	       "\"configmaps.exclude.reloader.stakater.com/reload\":\"c\"",
	       "cm:a cm:c");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "w-search",
	       "\"reloader.stakater.com/search\":\"true\","
	       "\"secret.reloader.stakater.com/reload\":\"s\"",
	       "cm:m");
	start_synced(e, NULL);

	/* A Secret: auto takes it, configmap auto does not; the search
	 * workload names it in its list. */
	ad_put(d, "secrets", "shop", "s", "{\"data\":{\"p\":\"Mg==\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-auto", "w-search", NULL });
	/* Excluded: nobody. */
	ad_put(d, "configmaps", "shop", "c", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, none);
	/* A regex item selects among referenced objects; a name item joins
	 * unreferenced. */
	ad_put(d, "configmaps", "shop", "b-extra", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-list", NULL });
	ad_put(d, "configmaps", "shop", "b", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-list", NULL });
	/* a: the auto ones; not the list (a is not in it). */
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-auto", "w-cmauto", "w-excl", NULL });
	/* search: m joins only with match; adding match rolls once, then its
	 * values count. */
	ad_put(d, "configmaps", "shop", "m", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, none);
	ad_put(d, "configmaps", "shop", "m",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/match\":\"true\"}},"
	       "\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-search", NULL });
	ad_put(d, "configmaps", "shop", "m",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/match\":\"true\"}},"
	       "\"data\":{\"k\":\"3\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-search", NULL });
	/* ignore on a: its users roll once (w-cmauto and w-excl hash nothing
	 * else now: no hash to set, the webhook drops theirs on the next
	 * write); then its values do not count. */
	ad_put(d, "configmaps", "shop", "a",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/ignore\":\"true\"}},"
	       "\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, n, (const char *const[]){ "w-auto", NULL });
	ad_put(d, "configmaps", "shop", "a",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/ignore\":\"true\"}},"
	       "\"data\":{\"k\":\"3\"}}");
	n = expect_rolled(e, NULL, n, none);
	/* Other metadata still rolls nothing. */
	ad_put(d, "configmaps", "shop", "a",
	       "{\"metadata\":{\"labels\":{\"x\":\"y\"},\"annotations\":{"
	       "\"reloader.stakater.com/ignore\":\"true\"}},\"data\":{\"k\":\"3\"}}");
	expect_rolled(e, NULL, n, none);
}

static const char mode_all_cfg[] = "stamp:\n  mode: all\nreload:\n  coalesceWindow: 400ms\n";

static void test_mode_all_and_auto_false(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	char *w;

	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"1\"}}");
	put_wl(d, mode_all_cfg, "deployments", "Deployment", "shop", "plain", "", "cm:a");
	/* Opted out: the webhook leaves it alone; were the controller to track
	 * it, this hash would differ. */
	w = wl_json("\"reloader.stakater.com/auto\":\"false\"",
		    "\"rollgate.io/config-hash\":\"sha256:00\"", "cm:a", NULL);
	ad_put(d, "deployments", "shop", "off", w);
	free(w);
	start_synced(e, mode_all_cfg);
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"2\"}}");
	expect_rolled(e, mode_all_cfg, 0, (const char *const[]){ "plain", NULL });
}

static const char ignore_ns_cfg[] = "reload:\n  coalesceWindow: 400ms\n  ignoreNamespaces: [legacy]\n";

/* Wave's extra lists reach into another namespace; the rollout records its
 * cause (names only); ignored namespaces hold nothing. */
static void test_extra_objects_and_ignored_namespaces(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	cJSON *body, *from;
	const char *text;

	ad_put(d, "configmaps", "common", "shared", "{\"data\":{\"k\":\"s3cr3t-1\"}}");
	ad_put(d, "configmaps", "legacy", "a", "{\"data\":{\"k\":\"1\"}}");
	put_wl(d, ignore_ns_cfg, "deployments", "Deployment", "shop", "wave",
	       "\"wave.pusher.com/update-on-config-change\":\"true\","
	       "\"wave.pusher.com/extra-configmaps\":\"common/shared\"",
	       "");
	ad_put(d, "deployments", "legacy", "old",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/auto\":\"true\"}},"
	       "\"spec\":{\"template\":{\"metadata\":{\"annotations\":{"
	       "\"rollgate.io/config-hash\":\"sha256:0000\"}},\"spec\":{\"containers\":[{"
	       "\"name\":\"a\",\"image\":\"x:1\",\"envFrom\":[{\"configMapRef\":{\"name\":\"a\"}}]}]}}"
	       "}}");
	start_synced(e, ignore_ns_cfg);
	ad_put(d, "configmaps", "legacy", "a", "{\"data\":{\"k\":\"2\"}}");
	ad_put(d, "configmaps", "common", "shared", "{\"data\":{\"k\":\"s3cr3t-2\"}}");
	expect_rolled(e, ignore_ns_cfg, 0, (const char *const[]){ "wave", NULL });
	body = patch_body(d, 0, NULL, "application/merge-patch+json");
	text = json_get_string(json_get_path(body, "metadata", "annotations", NULL),
			       "rollgate.io/last-reloaded-from");
	assert_non_null(text);
	assert_null(strstr(text, "s3cr3t"));
	from = parse_strict(text);
	assert_string_equal(json_get_string(from, "kind"), "ConfigMap");
	assert_string_equal(json_get_string(from, "namespace"), "common");
	assert_string_equal(json_get_string(from, "name"), "shared");
	assert_int_equal(strlen(json_get_string(from, "time")), 20); /* 2026-11-29T02:00:00Z */
	assert_int_equal(cJSON_GetArraySize(from), 4);
	cJSON_Delete(from);
	cJSON_Delete(body);
}

static const char ns_sel_cfg[] =
	"reload:\n  coalesceWindow: 400ms\n  namespaceSelector: \"team in (shop), !frozen\"\n";

static void test_namespace_selector(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;

	ad_put(d, "namespaces", "", "shop", "{\"metadata\":{\"labels\":{\"team\":\"shop\"}}}");
	ad_put(d, "namespaces", "", "other", "{\"metadata\":{\"labels\":{\"team\":\"other\"}}}");
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "other", "a", "{\"data\":{\"k\":\"1\"}}");
	put_wl(d, ns_sel_cfg, "deployments", "Deployment", "shop", "in",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:a");
	put_wl(d, ns_sel_cfg, "deployments", "Deployment", "other", "out",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:a");
	start_synced(e, ns_sel_cfg);
	ad_put(d, "configmaps", "other", "a", "{\"data\":{\"k\":\"2\"}}");
	expect_rolled(e, ns_sel_cfg, 0, none);
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"2\"}}");
	expect_rolled(e, ns_sel_cfg, 0, (const char *const[]){ "in", NULL });
	assert_true(d->last_watch_rv[11][0] != '\0'); /* Namespaces were watched */
}

static const char res_sel_cfg[] = "reload:\n  coalesceWindow: 400ms\n"
				  "  resourceLabelSelector: \"reload=yes\"\n  ignoreSecrets: true\n";
static const char no_cm_cfg[] = "reload:\n  coalesceWindow: 400ms\n  ignoreConfigMaps: true\n";

/* Only labelled objects count (one outside is absent); an ignored kind is
 * neither hashed nor listed. */
static void test_resource_selector_and_ignored_kinds(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	size_t n;

	ad_put(d, "configmaps", "shop", "a",
	       "{\"metadata\":{\"labels\":{\"reload\":\"yes\"}},\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "b", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "secrets", "shop", "s", "{\"data\":{\"p\":\"MQ==\"}}");
	put_wl(d, res_sel_cfg, "deployments", "Deployment", "shop", "w",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:a cm:b secret:s");
	start_synced(e, res_sel_cfg);
	assert_true(d->last_watch_rv[0][0] != '\0'); /* ConfigMaps watched */
	assert_true(d->last_watch_rv[1][0] == '\0'); /* Secrets not */
	ad_put(d, "configmaps", "shop", "b", "{\"data\":{\"k\":\"2\"}}");
	ad_put(d, "secrets", "shop", "s", "{\"data\":{\"p\":\"Mg==\"}}");
	n = expect_rolled(e, res_sel_cfg, 0, none);
	ad_put(d, "configmaps", "shop", "a",
	       "{\"metadata\":{\"labels\":{\"reload\":\"yes\"}},\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, res_sel_cfg, n, (const char *const[]){ "w", NULL });
	replica_down(&e->a, true);

	/* ConfigMaps ignored: the workload as the webhook stamps it then. */
	put_wl(d, no_cm_cfg, "deployments", "Deployment", "shop", "w",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:a cm:b secret:s");
	replica_up(&e->a, &e->d, "replica-a", no_cm_cfg, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(d), n);
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"3\"}}");
	n = expect_rolled(e, no_cm_cfg, n, none);
	ad_put(d, "secrets", "shop", "s", "{\"data\":{\"p\":\"Mw==\"}}");
	expect_rolled(e, no_cm_cfg, n, (const char *const[]){ "w", NULL });
}

/* rollout-strategy: restart: spec.restartAt and the hash on the Rollout's
 * metadata, in one patch; the template is not touched. */
static void test_rollout_restart_strategy(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	char want[CONFIGHASH_VALUE_LEN];
	const char *at;
	cJSON *body;

	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"1\"}}");
	put_wl(d, NULL, "rollouts", "Rollout", "shop", "r",
	       "\"reloader.stakater.com/auto\":\"true\","
	       "\"reloader.stakater.com/rollout-strategy\":\"restart\"",
	       "cm:a");
	start_synced(e, NULL);
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"2\"}}");
	expect_patches(d, 1);
	settle();
	assert_int_equal(ad_patch_count(d), 1);
	body = patch_body(d, 0, "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/r",
			  "application/merge-patch+json");
	webhook_hash_cfg(d, NULL, "rollouts", "Rollout", "shop", "r", want);
	assert_string_equal(json_get_string(json_get_path(body, "metadata", "annotations", NULL),
					    "rollgate.io/config-hash"),
			    want);
	at = json_get_string(json_get(body, "spec"), "restartAt");
	assert_non_null(at);
	assert_int_equal(strlen(at), 20);
	assert_null(json_get(json_get(body, "spec"), "template"));
	cJSON_Delete(body);
}

static const char hold_cfg[] = "stamp:\n  holdUntilConfigExists: true\n"
			       "reload:\n  coalesceWindow: 400ms\n";

/* The stored workload's template scheduler ("" none) and whether it still
 * carries a held annotation. */
static void held_state(struct ad *d, const char *name, char *sched, size_t len, bool *held)
{
	char *json = ad_get_json(d, "deployments", "shop", name);
	cJSON *o = parse_strict(json);
	const cJSON *ann = json_get_path(o, "metadata", "annotations", NULL);
	const char *s = json_get_string(json_get_path(o, "spec", "template", "spec", NULL),
					"schedulerName");

	snprintf(sched, len, "%s", s ? s : "");
	*held = json_get(ann, "rollgate.io/held-scheduler") ||
		json_get(ann, OPTIN_WAVE_HELD_SCHEDULER);
	cJSON_Delete(o);
	free(json);
}

/* Wave's hold: nothing while the object is missing; once it exists one
 * JSON Patch per workload restores its scheduler, drops the annotation and
 * stamps the hash the webhook would. */
static void test_hold_released_when_object_appears(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	static const char *const names[] = { "plain", "custom", "waveheld" };
	char sched[128], want[CONFIGHASH_VALUE_LEN];
	bool held;
	char *w;

	put_wl(d, hold_cfg, "deployments", "Deployment", "shop", "plain",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:late");
	w = wl_json("\"reloader.stakater.com/auto\":\"true\"", "", "cm:late",
		    "\"schedulerName\":\"my-scheduler\",");
	put_webhook(d, hold_cfg, "deployments", "Deployment", "shop", "custom", w);
	free(w);
	w = wl_json("\"wave.pusher.com/update-on-config-change\":\"true\","
		    "\"wave.pusher.com/scheduling-disabled\":\"default-scheduler\"",
		    "\"rollgate.io/config-hash\":\"sha256:00\"", "cm:late",
		    "\"schedulerName\":\"wave.pusher.com/invalid\",");
	ad_put(d, "deployments", "shop", "waveheld", w);
	free(w);
	held_state(d, "plain", sched, sizeof(sched), &held);
	assert_string_equal(sched, OPTIN_HOLD_SCHEDULER); /* the webhook held it */
	assert_true(held);
	start_synced(e, hold_cfg);
	ad_put(d, "configmaps", "shop", "unrelated", "{\"data\":{\"k\":\"1\"}}");
	settle();
	assert_int_equal(ad_patch_count(d), 0);

	ad_put(d, "configmaps", "shop", "late", "{\"data\":{\"k\":\"1\"}}");
	expect_patches(d, 3);
	settle();
	assert_int_equal(ad_patch_count(d), 3);
	for (size_t i = 0; i < 3; i++) {
		cJSON *body = patch_body(d, i, NULL, "application/json-patch+json");
		assert_string_equal(json_get_string(cJSON_GetArrayItem(body, 0), "op"), "test");
		cJSON_Delete(body);
	}
	for (size_t i = 0; i < 3; i++) {
		char *json = ad_get_json(d, "deployments", "shop", names[i]);
		cJSON *o = parse_strict(json);
		held_state(d, names[i], sched, sizeof(sched), &held);
		assert_false(held);
		assert_string_equal(sched,
				    i == 0           ? ""
					    : i == 1 ? "my-scheduler"
						     : "default-scheduler");
		webhook_hash_cfg(d, hold_cfg, "deployments", "Deployment", "shop", names[i], want);
		assert_string_equal(json_get_string(json_get_path(o, "spec", "template", "metadata",
								  "annotations", NULL),
						    "rollgate.io/config-hash"),
				    want);
		cJSON_Delete(o);
		free(json);
	}
}

struct ctype_probe {
	struct ad *d;
	const char *ctype;
	size_t n;
};

static bool ctype_reached(void *arg)
{
	struct ctype_probe *p = arg;
	size_t n = 0;

	ad_begin(p->d);
	for (size_t i = 0; i < p->d->n_patches; i++)
		n += strcmp(p->d->patches[i].ctype, p->ctype) == 0;
	ad_end(p->d);
	return n >= p->n;
}

/* The stored Deployment's spec.paused and paused-until. */
static bool stored_paused(struct ad *d, const char *name, bool *until)
{
	char *json = ad_get_json(d, "deployments", "shop", name);
	cJSON *o = parse_strict(json);
	bool paused = cJSON_IsTrue(json_get(json_get(o, "spec"), "paused"));

	*until = json_get_string(json_get_path(o, "metadata", "annotations", NULL),
				 "rollgate.io/paused-until") != NULL;
	cJSON_Delete(o);
	free(json);
	return paused;
}

/* Sets spec.paused on the stored Deployment, and our paused-until when
 * until is not NULL. */
static void put_paused(struct ad *d, const char *name, const char *until)
{
	char *json = ad_get_json(d, "deployments", "shop", name), *text;
	cJSON *o = parse_strict(json);
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "metadata"),
						      "annotations");

	cJSON_AddBoolToObject(spec, "paused", 1);
	if (until)
		cJSON_AddStringToObject(ann, "rollgate.io/paused-until", until);
	text = cJSON_PrintUnformatted(o);
	ad_put(d, "deployments", "shop", name, text);
	free(text);
	cJSON_Delete(o);
	free(json);
}

/* The index of the patch among [from, from+n) that targets name. */
static size_t patch_of(struct ad *d, size_t from, size_t n, const char *name)
{
	for (size_t i = from; i < from + n; i++)
		if (strcmp(patch_target(d, i), name) == 0)
			return i;
	fail_msg("no patch of %s", name);
	return 0;
}

/*
 * pause-period: an overdue pause is resumed at startup; a rollout pauses
 * in the same patch; a change within the period patches the hash only; at
 * the deadline one JSON Patch resumes. A Deployment its owner paused is
 * never resumed; an invalid period rolls without a pause (counted).
 */
static void test_pause_period(void **state)
{
	struct env *e = *state;
	struct ad *d = &e->d;
	struct ctype_probe resumes = { d, "application/json-patch+json", 1 };
	const char *bad_metric = "rollgate_reload_problems_total{reason=\"invalid_pause_period\"} ";
	double invalid = metric_value(bad_metric);
	static const char *const rolled[] = { "p", "bad", "mine", NULL };
	cJSON *body;
	bool until;
	size_t n;

	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"1\"}}");
	ad_put(d, "configmaps", "shop", "z", "{\"data\":{\"k\":\"1\"}}");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "p",
	       "\"reloader.stakater.com/auto\":\"true\","
	       "\"deployment.reloader.stakater.com/pause-period\":\"8s\"",
	       "cm:a");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "bad",
	       "\"reloader.stakater.com/auto\":\"true\","
	       "\"deployment.reloader.stakater.com/pause-period\":\"5 minutes\"",
	       "cm:a");
	put_wl(d, NULL, "deployments", "Deployment", "shop", "mine",
	       "\"reloader.stakater.com/auto\":\"true\","
	       "\"deployment.reloader.stakater.com/pause-period\":\"1s\"",
	       "cm:a");
	put_paused(d, "mine", NULL); /* its owner's pause */
	put_wl(d, NULL, "deployments", "Deployment", "shop", "overdue",
	       "\"reloader.stakater.com/auto\":\"true\"", "cm:z");
	put_paused(d, "overdue", "2020-01-01T00:00:00Z");
	/* Paused by us, then opted out: still ours to resume. */
	{
		char *w = wl_json("", "", "cm:z", NULL);
		ad_put(d, "deployments", "shop", "quit", w);
		free(w);
	}
	put_paused(d, "quit", "2020-01-01T00:00:00Z");

	/* A new leader resumes what is overdue, and only that. */
	resumes.n = 2;
	replica_up(&e->a, &e->d, "replica-a", NULL, NULL);
	assert_true(tu_wait_for(replica_synced, &e->a, WAIT_MS));
	assert_true(tu_wait_for(ctype_reached, &resumes, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(d), 2);
	(void)patch_of(d, 0, 2, "overdue");
	(void)patch_of(d, 0, 2, "quit");
	assert_false(stored_paused(d, "overdue", &until));
	assert_false(until);
	assert_false(stored_paused(d, "quit", &until));
	assert_false(until);
	assert_true(stored_paused(d, "mine", &until));

	/* The rollout pauses p in the same patch; bad and mine roll unpaused. */
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"2\"}}");
	n = expect_rolled(e, NULL, 2, rolled);
	body = patch_body(d, patch_of(d, 2, 3, "p"), NULL, "application/merge-patch+json");
	assert_true(cJSON_IsTrue(json_get(json_get(body, "spec"), "paused")));
	assert_non_null(json_get_string(json_get_path(body, "metadata", "annotations", NULL),
					"rollgate.io/paused-until"));
	cJSON_Delete(body);
	for (size_t i = 0; i < 2; i++) {
		body = patch_body(d, patch_of(d, 2, 3, i ? "mine" : "bad"), NULL,
				  "application/merge-patch+json");
		assert_null(json_get(json_get(body, "spec"), "paused"));
		cJSON_Delete(body);
	}
	assert_true(metric_value(bad_metric) >= invalid + 1);
	assert_true(stored_paused(d, "p", &until));
	assert_true(until);

	/* Within the period: the hash only. */
	ad_put(d, "configmaps", "shop", "a", "{\"data\":{\"k\":\"3\"}}");
	n = expect_rolled(e, NULL, n, rolled);
	body = patch_body(d, patch_of(d, n - 3, 3, "p"), NULL, "application/merge-patch+json");
	assert_null(json_get(json_get(body, "spec"), "paused"));
	assert_null(json_get_string(json_get_path(body, "metadata", "annotations", NULL),
				    "rollgate.io/paused-until"));
	cJSON_Delete(body);

	/* The deadline resumes p; mine stays its owner's. */
	resumes.n = 3;
	assert_true(tu_wait_for(ctype_reached, &resumes, WAIT_MS));
	settle();
	assert_int_equal(ad_patch_count(d), n + 1);
	assert_string_equal(patch_target(d, n), "p");
	assert_false(stored_paused(d, "p", &until));
	assert_false(until);
	assert_true(stored_paused(d, "mine", &until));
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_selected_key_change_patches_once),
		T(test_unselected_changes_patch_nothing),
		T(test_burst_coalesces_per_workload),
		T(test_restart_rolls_nothing_out),
		T(test_dropped_and_expired_watches_lose_nothing),
		T(test_rollouts_absent_and_present),
		T(test_rate_limit_spaces_patches),
		T(test_two_replicas_one_patcher_and_takeover),
		T(test_leader_crash_takeover),
		T(test_lease_conflict),
		T(test_serve_end_to_end),
		T(test_reloader_annotations),
		T(test_mode_all_and_auto_false),
		T(test_extra_objects_and_ignored_namespaces),
		T(test_namespace_selector),
		T(test_resource_selector_and_ignored_kinds),
		T(test_rollout_restart_strategy),
		T(test_hold_released_when_object_appears),
		T(test_pause_period),
	};

	tu_setup_from_env();
	return cmocka_run_group_tests(tests, tu_certs_group_setup, tu_certs_group_teardown);
}
