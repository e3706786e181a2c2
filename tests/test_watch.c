/*
 * The watch cache against a kube-apiserver double (tests/apidouble.h):
 * paginated lists, watch events, bookmarks, dropped watches, 410 relists,
 * change notifications, the cached object source and its GET fallback,
 * `rollgate serve` readiness and metrics, and the memory of 100,000 Secrets
 * of 10 keys each.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#include "apidouble.h"
#include "harness.h"

#include "confighash.h"
#include "jsonutil.h"
#include "kubesource.h"
#include "kwatch.h"
#include "log.h"
#include "objcache.h"
#include "objsource.h"

#define TOKEN "watch-test-token"
#define WAIT_MS 20000

/* ---- per-test environment ---- */

struct env {
	struct ad d;
	struct ad_client ac; /* kubeconfig and client; no Lease */
	struct objcache *cache;
	struct rg_server srv; /* serve tests */
};

static void env_up(struct env *e)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(ad_start(&e->d, tu_certdir), 0);
	ad_client_open(&e->ac, &e->d, tu_certdir, TOKEN, NULL);
}

static void env_cache(struct env *e, const struct strlist *namespaces, const char *selector)
{
	char err[512];

	e->cache = objcache_new(e->ac.client, namespaces, selector, err, sizeof(err));
	assert_non_null(e->cache);
	assert_int_equal(objcache_start(e->cache, err, sizeof(err)), 0);
}

static void env_down(struct env *e)
{
	if (e->srv.pid > 0)
		h_stop(&e->srv, SIGKILL, 10);
	objcache_free(e->cache);
	ad_client_close(&e->ac);
	ad_stop(&e->d);
}

/* The cache's answer for one object compared with the digest of what the
 * double serves: FOUND with the same keys and digests, or ABSENT. */
static void expect_cached(struct env *e, enum obj_kind kind, const char *ns, const char *name)
{
	char *json = ad_get_json(&e->d, kind == OBJ_SECRET ? "secrets" : "configmaps", ns, name);
	struct obj_digest *got = NULL, want = { NULL, 0, 0 };
	enum objcache_answer a = objcache_lookup(e->cache, kind, ns, name, &got);
	char err[128];
	cJSON *obj;

	if (!json) {
		assert_int_equal(a, OBJCACHE_ABSENT);
		return;
	}
	assert_int_equal(a, OBJCACHE_FOUND);
	obj = tu_json(json, strlen(json));
	assert_int_equal(confighash_digest_object(obj, kind, &want, err, sizeof(err)), 0);
	assert_int_equal(got->n, want.n);
	for (size_t i = 0; i < want.n; i++) {
		assert_string_equal(got->entries[i].key, want.entries[i].key);
		assert_memory_equal(got->entries[i].digest, want.entries[i].digest,
				    CONFIGHASH_DIGEST_LEN);
	}
	confighash_digest_clear(&want);
	confighash_digest_free(got);
	cJSON_Delete(obj);
	free(json);
}

struct lookup_probe {
	struct objcache *cache;
	enum obj_kind kind;
	const char *ns, *name;
	enum objcache_answer want;
};

static bool answer_is(void *arg)
{
	struct lookup_probe *p = arg;
	struct obj_digest *d = NULL;
	enum objcache_answer a = objcache_lookup(p->cache, p->kind, p->ns, p->name, &d);

	confighash_digest_free(d);
	return a == p->want;
}

static bool synced(void *arg)
{
	return objcache_synced(arg);
}

struct count_probe {
	struct objcache *cache;
	size_t want;
};

static bool count_is(void *arg)
{
	struct count_probe *p = arg;

	return objcache_count(p->cache) == p->want;
}

/* ---- change notifications ---- */

struct changes {
	pthread_mutex_t m;
	int n;
	char log[64][256];
};

static void on_change(void *arg, const struct objcache_change *ch)
{
	struct changes *c = arg;
	char line[256];
	size_t len;

	len = (size_t)snprintf(line, sizeof(line), "%s/%s/%s:%s", refs_kind_name(ch->kind), ch->ns,
			       ch->name,
			       ch->existence       ? "existence"
				       : ch->flags ? "flags"
						   : "");
	for (size_t i = 0; i < ch->n_keys && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", i ? "," : "",
					ch->keys[i]);
	pthread_mutex_lock(&c->m);
	if (c->n < 64)
		snprintf(c->log[c->n], sizeof(c->log[0]), "%s", line);
	c->n++;
	pthread_mutex_unlock(&c->m);
}

struct change_probe {
	struct changes *c;
	int n;
};

static bool changes_reach(void *arg)
{
	struct change_probe *p = arg;
	int n;

	pthread_mutex_lock(&p->c->m);
	n = p->c->n;
	pthread_mutex_unlock(&p->c->m);
	return n >= p->n;
}

static bool changes_has(struct changes *c, const char *line)
{
	bool found = false;

	pthread_mutex_lock(&c->m);
	for (int i = 0; i < c->n && i < 64; i++)
		found = found || strcmp(c->log[i], line) == 0;
	pthread_mutex_unlock(&c->m);
	return found;
}

/* Starts the cache over what the double holds, reporting changes to ch,
 * and waits for its first sync. Returns the lists the double served so far. */
static int cache_watching(struct env *e, struct changes *ch)
{
	env_cache(e, NULL, NULL);
	objcache_subscribe(e->cache, on_change, ch);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	return atomic_load(&e->d.lists);
}

static void cache_unwatch(struct env *e, struct changes *ch)
{
	objcache_subscribe(e->cache, NULL, NULL);
	pthread_mutex_destroy(&ch->m);
}

/* ---- tests ---- */

struct rv_probe {
	struct ad *d;
	size_t kind;
	char want[32];
};

static bool watch_rv_is(void *arg)
{
	struct rv_probe *p = arg;
	bool ok;

	ad_begin(p->d);
	ok = strcmp(p->d->last_watch_rv[p->kind], p->want) == 0;
	ad_end(p->d);
	return ok;
}

static const char cm_app[] =
	"{\"metadata\":{\"labels\":{\"team\":\"web\"}},\"data\":{\"LOG_LEVEL\":\"debug\","
	"\"app.properties\":\"x=1\\n\"},\"binaryData\":{\"blob\":\"3q2+7w==\"}}";
static const char secret_db[] =
	"{\"type\":\"Opaque\",\"data\":{\"password\":\"czNjcjN0\",\"tls.key\":\"AAEC//4=\"}}";

static void test_sync_and_lookup(void **state)
{
	struct env *e = *state;
	struct count_probe cp;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	ad_put(&e->d, "configmaps", "shop", "empty", "{}");
	ad_put(&e->d, "configmaps", "other", "app-config", "{\"data\":{\"LOG_LEVEL\":\"info\"}}");
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	ad_put(&e->d, "secrets", "other", "db-creds", "{\"data\":{\"password\":\"b3RoZXI=\"}}");
	env_cache(e, NULL, NULL);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	cp = (struct count_probe){ e->cache, 5 };
	assert_true(count_is(&cp));
	expect_cached(e, OBJ_CONFIGMAP, "shop", "app-config");
	expect_cached(e, OBJ_CONFIGMAP, "shop", "empty");
	expect_cached(e, OBJ_CONFIGMAP, "other", "app-config");
	expect_cached(e, OBJ_SECRET, "shop", "db-creds");
	expect_cached(e, OBJ_SECRET, "other", "db-creds");
	expect_cached(e, OBJ_SECRET, "shop", "missing");
	expect_cached(e, OBJ_CONFIGMAP, "nowhere", "app-config");
	/* A ConfigMap and a Secret of one name are different objects. */
	expect_cached(e, OBJ_SECRET, "shop", "app-config");
	/* The watches start at the list's resourceVersion. */
	{
		struct rv_probe rp = { &e->d, 0, "1005" };
		assert_true(tu_wait_for(watch_rv_is, &rp, WAIT_MS));
	}
}

static void test_pagination(void **state)
{
	struct env *e = *state;
	char name[64];
	int lists_before;

	e->d.max_limit = 7;
	ad_begin(&e->d);
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "cm-%02d", i);
		ad_put_locked(&e->d, "configmaps", i % 2 ? "a" : "b", name,
			      "{\"data\":{\"k\":\"v\"}}");
	}
	for (int i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "s-%d", i);
		ad_put_locked(&e->d, "secrets", "a", name, "{\"data\":{\"k\":\"dg==\"}}");
	}
	ad_end(&e->d);
	lists_before = atomic_load(&e->d.lists);
	env_cache(e, NULL, NULL);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	assert_int_equal(objcache_count(e->cache), 59);
	/* 50 ConfigMaps in pages of 7 (8 pages) and 9 Secrets (2 pages). */
	assert_int_equal(atomic_load(&e->d.lists) - lists_before, 10);
	expect_cached(e, OBJ_CONFIGMAP, "a", "cm-49");
	expect_cached(e, OBJ_CONFIGMAP, "b", "cm-00");
	expect_cached(e, OBJ_SECRET, "a", "s-8");
}

static void test_watch_changes(void **state)
{
	struct env *e = *state;
	struct changes ch = { PTHREAD_MUTEX_INITIALIZER, 0, { { 0 } } };
	struct change_probe cp = { &ch, 0 };
	struct lookup_probe lp;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	cache_watching(e, &ch);
	assert_int_equal(ch.n, 0); /* the first list reports nothing */

	/* One key changes: reported with that key only. */
	ad_put(&e->d, "configmaps", "shop", "app-config",
	       "{\"data\":{\"LOG_LEVEL\":\"info\",\"app.properties\":\"x=1\\n\"},"
	       "\"binaryData\":{\"blob\":\"3q2+7w==\"}}");
	cp.n = 1;
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	assert_true(changes_has(&ch, "ConfigMap/shop/app-config:LOG_LEVEL"));
	expect_cached(e, OBJ_CONFIGMAP, "shop", "app-config");

	/* Metadata only (labels): a new resourceVersion, no change reported;
	 * then a key added and one removed. */
	ad_put(&e->d, "configmaps", "shop", "app-config",
	       "{\"metadata\":{\"labels\":{\"x\":\"y\"}},\"data\":{\"LOG_LEVEL\":\"info\","
	       "\"app.properties\":\"x=1\\n\"},\"binaryData\":{\"blob\":\"3q2+7w==\"}}");
	ad_put(&e->d, "configmaps", "shop", "app-config",
	       "{\"data\":{\"LOG_LEVEL\":\"info\",\"new\":\"1\"},\"binaryData\":{\"blob\":\"3q2+7w=="
	       "\"}}");
	cp.n = 2;
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	assert_true(changes_has(&ch, "ConfigMap/shop/app-config:app.properties,new"));
	assert_int_equal(ch.n, 2);

	/* Creation and deletion are existence changes. */
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	ad_delete(&e->d, "configmaps", "shop", "app-config");
	cp.n = 4;
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	assert_true(changes_has(&ch, "Secret/shop/db-creds:existence"));
	assert_true(changes_has(&ch, "ConfigMap/shop/app-config:existence"));
	lp = (struct lookup_probe){ e->cache, OBJ_CONFIGMAP, "shop", "app-config", OBJCACHE_ABSENT };
	assert_true(answer_is(&lp));
	expect_cached(e, OBJ_SECRET, "shop", "db-creds");

	cache_unwatch(e, &ch);
}

static void test_bookmark_resume(void **state)
{
	struct env *e = *state;
	struct rv_probe rp;
	int watches;

	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	env_cache(e, NULL, NULL);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	/* ConfigMap writes move the global resourceVersion past anything the
	 * Secret watch has seen; a bookmark tells it so. */
	ad_put(&e->d, "configmaps", "shop", "a", "{}");
	ad_put(&e->d, "configmaps", "shop", "b", "{}");
	rp = (struct rv_probe){ &e->d, 1, "1001" };
	assert_true(tu_wait_for(watch_rv_is, &rp,
				WAIT_MS)); /* the Secret watch started at the list's rv */
	ad_bookmark(&e->d);
	usleep(300 * 1000); /* let the bookmark reach the client */
	watches = atomic_load(&e->d.watches);
	ad_drop_watches(&e->d);
	rp = (struct rv_probe){ &e->d, 1, "1003" };
	assert_true(tu_wait_for(watch_rv_is, &rp, WAIT_MS));
	assert_true(atomic_load(&e->d.watches) > watches);
}

static void test_dropped_watch_loses_nothing(void **state)
{
	struct env *e = *state;
	struct changes ch = { PTHREAD_MUTEX_INITIALIZER, 0, { { 0 } } };
	struct change_probe cp = { &ch, 3 };
	int lists;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	lists = cache_watching(e, &ch);
	/* The streams break, and the changes happen before any reconnect. */
	ad_begin(&e->d);
	e->d.drop_gen++;
	ad_put_locked(&e->d, "configmaps", "shop", "app-config",
		      "{\"data\":{\"LOG_LEVEL\":\"warn\"}}");
	ad_delete_locked(&e->d, "secrets", "shop", "db-creds");
	ad_put_locked(&e->d, "secrets", "shop", "new", "{\"data\":{\"a\":\"Yg==\"}}");
	ad_end(&e->d);
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	expect_cached(e, OBJ_CONFIGMAP, "shop", "app-config");
	expect_cached(e, OBJ_SECRET, "shop", "db-creds");
	expect_cached(e, OBJ_SECRET, "shop", "new");
	/* Resumed from the last resourceVersion: no relist was needed. */
	assert_int_equal(atomic_load(&e->d.lists), lists);
	cache_unwatch(e, &ch);
}

static void test_expired_watch_relists(void **state)
{
	struct env *e = *state;
	struct changes ch = { PTHREAD_MUTEX_INITIALIZER, 0, { { 0 } } };
	struct change_probe cp = { &ch, 3 };
	int lists;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	ad_put(&e->d, "configmaps", "shop", "doomed", "{\"data\":{\"a\":\"b\"}}");
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	lists = cache_watching(e, &ch);
	/* Changes, then the history is compacted before a watch can see them:
	 * the watches get ERROR 410 and must relist to learn about them. */
	ad_begin(&e->d);
	ad_put_locked(&e->d, "configmaps", "shop", "app-config",
		      "{\"data\":{\"LOG_LEVEL\":\"warn\"}}");
	ad_delete_locked(&e->d, "configmaps", "shop", "doomed");
	ad_put_locked(&e->d, "secrets", "shop", "db-creds", "{\"data\":{\"password\":\"bmV3\"}}");
	ad_compact_locked(&e->d);
	ad_end(&e->d);
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	assert_true(changes_has(&ch, "ConfigMap/shop/doomed:existence"));
	assert_true(changes_has(&ch, "Secret/shop/db-creds:password,tls.key"));
	expect_cached(e, OBJ_CONFIGMAP, "shop", "app-config");
	expect_cached(e, OBJ_CONFIGMAP, "shop", "doomed");
	expect_cached(e, OBJ_SECRET, "shop", "db-creds");
	assert_true(atomic_load(&e->d.lists) >= lists + 2);
	/* And an ERROR 410 in a live stream does the same. */
	ad_expire_watches(&e->d);
	ad_put(&e->d, "configmaps", "shop", "later", "{}");
	cp.n = 4;
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	expect_cached(e, OBJ_CONFIGMAP, "shop", "later");
	cache_unwatch(e, &ch);
}

/* ---- the cached object source ---- */

/* Resolves b through src, waiting for an asynchronous answer; returns what
 * resolve returned (0 at once, 1 later). */
static int resolve_wait(struct objsource *src, struct lookup_batch *b)
{
	return objsource_resolve_wait(src, b, 10000);
}

static struct objsource *cached_source(struct env *e)
{
	char err[512];
	struct objsource *gets = kubesource_new(e->ac.kc, err, sizeof(err)), *src;

	assert_non_null(gets);
	src = objsource_cached_new(e->cache, gets);
	assert_non_null(src);
	return src;
}

static void test_cached_source(void **state)
{
	struct env *e = *state;
	struct lookup_item items[4];
	struct lookup_batch b = { "shop", items, 4 };
	struct objsource *src;
	int gets;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	ad_put(&e->d, "secrets", "shop", "db-creds", secret_db);
	ad_put(&e->d, "deployments", "shop", "web", "{\"spec\":{\"replicas\":1}}");
	atomic_store(&e->d.list_fail, 1); /* not synced yet: GETs */
	env_cache(e, NULL, NULL);
	src = cached_source(e);
	memset(items, 0, sizeof(items));
	items[0] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "app-config" };
	items[1] = (struct lookup_item){ .kind = SRC_SECRET, .name = "db-creds" };
	items[2] = (struct lookup_item){ .kind = SRC_SECRET, .name = "missing" };
	items[3] = (struct lookup_item){ .kind = SRC_DEPLOYMENT, .name = "web" };
	gets = atomic_load(&e->d.gets);
	assert_int_equal(resolve_wait(src, &b), 1);
	assert_int_equal(atomic_load(&e->d.gets) - gets, 4);
	assert_int_equal(items[0].status, LOOKUP_FOUND);
	assert_int_equal(items[1].status, LOOKUP_FOUND);
	assert_int_equal(items[2].status, LOOKUP_ABSENT);
	assert_int_equal(items[3].status, LOOKUP_FOUND);
	assert_non_null(items[3].object);
	lookup_batch_clear(&b);

	/* Synced: ConfigMaps and Secrets come from memory, at once; only the
	 * Deployment is fetched. */
	atomic_store(&e->d.list_fail, 0);
	assert_true(tu_wait_for(synced, e->cache, WAIT_MS));
	for (int i = 0; i < 4; i++)
		items[i].status = LOOKUP_NONE;
	gets = atomic_load(&e->d.gets);
	assert_int_equal(resolve_wait(src, &b), 1);
	assert_int_equal(atomic_load(&e->d.gets) - gets, 1);
	assert_int_equal(items[0].status, LOOKUP_FOUND);
	assert_int_equal(items[1].status, LOOKUP_FOUND);
	assert_int_equal(items[2].status, LOOKUP_ABSENT);
	assert_int_equal(items[3].status, LOOKUP_FOUND);
	assert_int_equal(items[1].digest->n, 2);
	lookup_batch_clear(&b);
	b.n = 3; /* without the Deployment: no I/O at all */
	for (int i = 0; i < 3; i++)
		items[i].status = LOOKUP_NONE;
	assert_int_equal(resolve_wait(src, &b), 0);
	assert_int_equal(atomic_load(&e->d.gets) - gets, 1);
	assert_int_equal(items[0].status, LOOKUP_FOUND);
	lookup_batch_clear(&b);
	objsource_free(src);
}

static void test_scope(void **state)
{
	struct env *e = *state;
	struct strlist nss = { 0 };
	struct lookup_item items[3];
	struct lookup_batch b = { "elsewhere", items, 2 };
	struct objsource *src;
	struct obj_digest *d = NULL;
	int gets;

	ad_put(&e->d, "configmaps", "shop", "app-config", cm_app);
	ad_put(&e->d, "configmaps", "elsewhere", "app-config", cm_app);
	assert_int_equal(strlist_push(&nss, "shop"), 0);
	env_cache(e, &nss, NULL);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	assert_int_equal(objcache_count(e->cache), 1);
	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "shop", "app-config", &d),
			 OBJCACHE_FOUND);
	confighash_digest_free(d);
	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "shop", "nope", &d),
			 OBJCACHE_ABSENT);
	/* Outside the watched namespaces the cache cannot say: GET. */
	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "elsewhere", "app-config", &d),
			 OBJCACHE_UNKNOWN);
	src = cached_source(e);
	memset(items, 0, sizeof(items));
	items[0] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "app-config" };
	items[1] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "nope" };
	gets = atomic_load(&e->d.gets);
	assert_int_equal(resolve_wait(src, &b), 1);
	assert_int_equal(atomic_load(&e->d.gets) - gets, 2);
	assert_int_equal(items[0].status, LOOKUP_FOUND);
	assert_int_equal(items[1].status, LOOKUP_ABSENT);
	lookup_batch_clear(&b);
	objsource_free(src);
	objcache_free(e->cache);
	e->cache = NULL;

	/* A label selector: what is cached is found; what is not may exist
	 * with other labels, so it is fetched. */
	env_cache(e, NULL, "team=web");
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	ad_put(&e->d, "configmaps", "shop", "unlabelled", "{\"data\":{\"a\":\"b\"}}");
	assert_int_equal(objcache_count(e->cache), 2);
	src = cached_source(e);
	b.namespace_ = "shop";
	memset(items, 0, sizeof(items));
	items[0] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "app-config" };
	items[1] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "unlabelled" };
	items[2] = (struct lookup_item){ .kind = SRC_CONFIGMAP, .name = "nope" };
	b.n = 3;
	gets = atomic_load(&e->d.gets);
	assert_int_equal(resolve_wait(src, &b), 1);
	assert_int_equal(atomic_load(&e->d.gets) - gets, 2);
	assert_int_equal(items[0].status, LOOKUP_FOUND);
	assert_int_equal(items[1].status, LOOKUP_FOUND);
	assert_int_equal(items[2].status, LOOKUP_ABSENT);
	lookup_batch_clear(&b);
	objsource_free(src);
	strlist_clear(&nss);
}

/* The flags a synced cache holds for a ConfigMap of shop. */
static unsigned cached_flags(struct env *e, const char *name)
{
	struct obj_digest *d = NULL;
	unsigned f;

	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "shop", name, &d), OBJCACHE_FOUND);
	f = d->flags;
	confighash_digest_free(d);
	return f;
}

struct flags_probe {
	struct env *e;
	unsigned want;
};

static bool flags_are(void *arg)
{
	struct flags_probe *p = arg;

	return cached_flags(p->e, "x") == p->want;
}

/* Reloader's ignore and match on an object: kept, handed back, and a
 * change of them reported as such (other metadata still is not). */
static void test_reload_flags(void **state)
{
	struct env *e = *state;
	struct changes ch = { PTHREAD_MUTEX_INITIALIZER, 0, { { 0 } } };
	struct change_probe cp = { &ch, 1 };
	struct flags_probe fp = { e, OBJ_FLAG_IGNORE };

	ad_put(&e->d, "configmaps", "shop", "x", "{\"data\":{\"k\":\"1\"}}");
	cache_watching(e, &ch);
	assert_int_equal(cached_flags(e, "x"), 0);
	ad_put(&e->d, "configmaps", "shop", "x",
	       "{\"metadata\":{\"annotations\":{\"reloader.stakater.com/ignore\":\"true\"}},"
	       "\"data\":{\"k\":\"1\"}}");
	assert_true(tu_wait_for(changes_reach, &cp, WAIT_MS));
	assert_true(changes_has(&ch, "ConfigMap/shop/x:flags"));
	assert_true(tu_wait_for(flags_are, &fp, WAIT_MS));
	ad_put(&e->d, "configmaps", "shop", "x",
	       "{\"metadata\":{\"labels\":{\"a\":\"b\"},\"annotations\":{"
	       "\"reloader.stakater.com/match\":\"true\"}},\"data\":{\"k\":\"1\"}}");
	ad_put(&e->d, "configmaps", "shop", "x",
	       "{\"metadata\":{\"labels\":{\"a\":\"c\"},\"annotations\":{"
	       "\"reloader.stakater.com/match\":\"true\"}},\"data\":{\"k\":\"1\"}}");
	fp.want = OBJ_FLAG_MATCH;
	assert_true(tu_wait_for(flags_are, &fp, WAIT_MS));
	usleep(300 * 1000);
	assert_int_equal(ch.n, 2); /* the label change reported nothing */
	cache_unwatch(e, &ch);
}

/* reload.resourceLabelSelector (ANDed with watch.labelSelector): an object
 * outside it is absent, without a GET; reload.ignoreSecrets: Secrets are
 * not listed and the cache cannot answer for them. */
static void test_reload_scope(void **state)
{
	struct env *e = *state;
	const struct objcache_scope scope = { NULL, "team=web", "reload=yes", false, true };
	struct obj_digest *d = NULL;
	char err[256];
	int gets;

	ad_put(&e->d, "configmaps", "shop", "both",
	       "{\"metadata\":{\"labels\":{\"team\":\"web\",\"reload\":\"yes\"}},"
	       "\"data\":{\"k\":\"1\"}}");
	ad_put(&e->d, "configmaps", "shop", "team-only",
	       "{\"metadata\":{\"labels\":{\"team\":\"web\"}},\"data\":{\"k\":\"1\"}}");
	ad_put(&e->d, "secrets", "shop", "s", secret_db);
	e->cache = objcache_new_scoped(e->ac.client, &scope, err, sizeof(err));
	assert_non_null(e->cache);
	assert_int_equal(objcache_start(e->cache, err, sizeof(err)), 0);
	assert_true(objcache_wait_synced(e->cache, WAIT_MS));
	gets = atomic_load(&e->d.gets);
	assert_int_equal(objcache_count(e->cache), 1);
	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "shop", "both", &d), OBJCACHE_FOUND);
	confighash_digest_free(d);
	assert_int_equal(objcache_lookup(e->cache, OBJ_CONFIGMAP, "shop", "team-only", &d),
			 OBJCACHE_ABSENT);
	assert_int_equal(objcache_lookup(e->cache, OBJ_SECRET, "shop", "s", &d), OBJCACHE_UNKNOWN);
	assert_int_equal(atomic_load(&e->d.gets), gets);
	ad_begin(&e->d);
	assert_string_equal(e->d.last_watch_rv[1], ""); /* no Secret watch */
	ad_end(&e->d);
}

/* ---- rollgate serve ---- */

static int serve_start(struct env *s, const char *const *extra)
{
	char cert[4300], key[4300];
	const char *args[32];
	int n = 0;

	snprintf(cert, sizeof(cert), "%s/tls.crt", tu_certdir);
	snprintf(key, sizeof(key), "%s/tls.key", tu_certdir);
	args[n++] = "--tls-cert";
	args[n++] = cert;
	args[n++] = "--tls-key";
	args[n++] = key;
	args[n++] = "--kubeconfig";
	args[n++] = s->ac.kc;
	for (int i = 0; extra && extra[i] && n < 30; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return h_start(&s->srv, tu_certdir, args);
}

static long readyz(struct env *s)
{
	struct h_resp r;
	long st;

	h_get_plain(s->srv.metrics_port, "/readyz", &r);
	st = r.status;
	h_resp_free(&r);
	return st;
}

static bool is_ready(void *arg)
{
	return readyz(arg) == 200;
}

/* The value of a metric line starting with prefix, or -1. */
static double metric(struct env *s, const char *prefix)
{
	struct h_resp r;
	const char *p;
	double v = -1;

	char line[300];

	snprintf(line, sizeof(line), "\n%s", prefix);
	h_get_plain(s->srv.metrics_port, "/metrics", &r);
	p = r.body ? strstr(r.body, line) : NULL;
	if (p)
		v = strtod(p + strlen(line), NULL);
	h_resp_free(&r);
	return v;
}

#define NEED_BIN()                                                     \
	do {                                                           \
		if (!h_bin()) {                                        \
			printf("[  SKIP    ] ROLLGATE_BIN not set\n"); \
			return;                                        \
		}                                                      \
	} while (0)

static void test_serve_readiness(void **state)
{
	struct env *e = *state;
	struct h_resp r;
	char path[4400], cmd[4600];
	FILE *f;

	NEED_BIN();
	ad_put(&e->d, "secrets", "shop", "db-creds", "{\"data\":{\"password\":\"czNjcjN0LXZhbHVl\"}}");
	e->d.list_delay_ms = 2500;
	assert_int_equal(serve_start(e, NULL), 0);
	/* Lists take 2.5 s: not ready before. */
	assert_int_equal(readyz(e), 503);
	assert_true(tu_wait_for(is_ready, e, WAIT_MS));
	assert_true(metric(e, "rollgate_cache_synced ") == 1);
	assert_true(metric(e, "rollgate_cache_objects{resource=\"secrets\"} ") == 1);
	assert_true(metric(e, "rollgate_watch_last_sync_age_seconds{resource=\"secrets\"} ") >= 0);
	/* promtool must accept the exposition with the new families. */
	h_get_plain(e->srv.metrics_port, "/metrics", &r);
	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		snprintf(path, sizeof(path), "%s/metrics-watch.txt", tu_certdir);
		f = fopen(path, "w");
		assert_non_null(f);
		fwrite(r.body, 1, r.len, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		assert_int_equal(system(cmd), 0);
	}
	h_resp_free(&r);
	assert_true(h_log_has(&e->srv, "watch cache synced"));
	/* Secret values never reach the log. */
	assert_false(h_log_has(&e->srv, "s3cr3t-value"));
	assert_false(h_log_has(&e->srv, "czNjcjN0LXZhbHVl"));
	assert_int_equal(h_stop(&e->srv, SIGTERM, 20), 0);
}

static void test_serve_sync_timeout(void **state)
{
	struct env *e = *state;
	const char *extra[] = { "--sync-timeout", "2", NULL };
	long long t0;

	NEED_BIN();
	atomic_store(&e->d.list_fail, 1);
	t0 = rgtime_now_ms();
	assert_int_equal(serve_start(e, extra), 0);
	assert_true(tu_wait_for(is_ready, e, WAIT_MS));
	assert_true(rgtime_now_ms() - t0 >= 1500);
	assert_true(h_log_has(&e->srv, "not synced within the sync timeout"));
	assert_true(metric(e, "rollgate_cache_synced ") == 0);
	assert_int_equal(h_stop(&e->srv, SIGTERM, 20), 0);
}

struct objects_probe {
	struct env *s;
	double want;
};

static bool secrets_cached(void *arg)
{
	struct objects_probe *p = arg;

	return metric(p->s, "rollgate_cache_objects{resource=\"secrets\"} ") == p->want &&
		metric(p->s, "rollgate_cache_synced ") == 1;
}

/*
 * 100,000 Secrets of 10 keys through the paginated list of the double, into
 * a real `rollgate serve`, whose whole-process VmRSS is then read. Under
 * ASan memory figures mean nothing: a smaller set runs the same path and
 * nothing is asserted.
 */
static void test_memory_100k_secrets(void **state)
{
	struct env *e = *state;
	struct objects_probe p = { e, 0 };
	long rss, hwm;
	long long t0;
#ifdef RG_ASAN
	const unsigned n = 20000;
#else
	const unsigned n = 100000;
#endif

	NEED_BIN();
	e->d.synth_secrets = n;
	e->d.synth_keys = 10;
	p.want = n;
	t0 = rgtime_now_ms();
	assert_int_equal(serve_start(e, NULL), 0);
	assert_true(tu_wait_for(secrets_cached, &p, 50000));
	usleep(500 * 1000);
	rss = tu_proc_kib(e->srv.pid, "VmRSS:");
	hwm = tu_proc_kib(e->srv.pid, "VmHWM:");
	printf("memory: %u Secrets x 10 keys cached in %.1f s; rollgate serve VmRSS %ld KiB "
	       "(%.1f MiB), VmHWM %ld KiB (%.1f MiB)%s\n",
	       n, (double)(rgtime_now_ms() - t0) / 1000.0, rss, rss / 1024.0, hwm, hwm / 1024.0,
#ifdef RG_ASAN
	       " [ASan build: not meaningful]"
#else
	       ""
#endif
	);
#ifndef RG_ASAN
	assert_true(rss > 0 && rss < 64 * 1024);
#endif
	assert_int_equal(h_stop(&e->srv, SIGTERM, 30), 0);
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	env_up(e);
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;

	env_down(e);
	free(e);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_and_lookup, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_pagination, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_watch_changes, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_bookmark_resume, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_dropped_watch_loses_nothing, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_expired_watch_relists, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_cached_source, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_scope, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_reload_flags, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_reload_scope, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_serve_readiness, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_serve_sync_timeout, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_memory_100k_secrets, env_setup, env_teardown),
	};

	log_setup(LOG_WARN, LOG_FORMAT_TEXT);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, tu_certs_group_setup, tu_certs_group_teardown);
}
