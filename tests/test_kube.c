/*
 * The Kubernetes API object source against the kube-apiserver test double
 * (tests/apidouble.c, answering GETs by name): kubeconfig reading, lookups
 * through the objsource API (found, absent, failed, timed out, invalid
 * names, concurrency, connection reuse, teardown with lookups in flight),
 * and `rollgate serve --kubeconfig` end to end.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <openssl/evp.h>

#include "harness.h"
#include "apidouble.h"

#include "confighash.h"
#include "jsonutil.h"
#include "kubesource.h"
#include "objsource.h"
#include "refs.h"

#define TOKEN "rg-test-token-7f3a9c"

static char certdir[256];
static char kc_inline[512]; /* certificate-authority-data */
static char kc_file[512];   /* certificate-authority: ca.crt (relative) */
static struct ad dbl;
static struct rg_server server;

/* ---- waiting for a batch ---- */

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int calls;
};

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->m, NULL);
	pthread_cond_init(&w->c, NULL);
	atomic_init(&w->calls, 0);
}

static void waiter_destroy(struct waiter *w)
{
	pthread_cond_destroy(&w->c);
	pthread_mutex_destroy(&w->m);
}

static void on_done(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->m);
	atomic_fetch_add(&w->calls, 1);
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

/* Waits up to 20 s for done; returns the number of calls seen. */
static int waiter_wait(struct waiter *w)
{
	struct timespec until;

	rgtime_wall_after(&until, 20000);
	pthread_mutex_lock(&w->m);
	while (atomic_load(&w->calls) == 0 && pthread_cond_timedwait(&w->c, &w->m, &until) == 0)
		;
	pthread_mutex_unlock(&w->m);
	return atomic_load(&w->calls);
}

/* Resolves b, waits for it, asserts done came exactly once from another
 * thread; returns the seconds it took. */
static double run_batch(struct objsource *src, struct lookup_batch *b, unsigned timeout_ms)
{
	struct waiter w;
	struct timespec t0;
	double dt;
	int rc;

	rgtime_now(&t0);
	waiter_init(&w);
	rc = objsource_resolve(src, b, timeout_ms, on_done, &w);
	assert_int_equal(rc, 1);
	assert_int_equal(waiter_wait(&w), 1);
	dt = rgtime_elapsed_s(&t0);
	waiter_destroy(&w);
	return dt;
}

static struct objsource *new_source(const char *kc)
{
	char err[512] = "";
	struct objsource *src = kubesource_new(kc, err, sizeof(err));

	if (!src)
		fail_msg("kubesource_new: %s", err);
	assert_string_equal(src->name, "kubernetes");
	return src;
}

static void item(struct lookup_item *it, enum src_kind kind, const char *name)
{
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->name = name;
}

/* item->digest equals confighash_digest_object of the double's JSON. */
static void assert_digest_matches(const struct lookup_item *it, const char *resource)
{
	char *json = ad_object_json(resource, "ns1", it->name), err[256];
	cJSON *obj = NULL;
	struct obj_digest want = { 0 };

	assert_non_null(json);
	assert_int_equal(json_parse_strict(json, strlen(json), &obj, err, sizeof(err)), 0);
	assert_int_equal(confighash_digest_object(obj,
						  strcmp(resource, "secrets") == 0 ? OBJ_SECRET
										   : OBJ_CONFIGMAP,
						  &want, err, sizeof(err)),
			 0);
	assert_non_null(it->digest);
	assert_true(want.n > 0);
	assert_int_equal(it->digest->n, want.n);
	for (size_t i = 0; i < want.n; i++) {
		assert_string_equal(it->digest->entries[i].key, want.entries[i].key);
		assert_memory_equal(it->digest->entries[i].digest, want.entries[i].digest,
				    CONFIGHASH_DIGEST_LEN);
	}
	confighash_digest_clear(&want);
	cJSON_Delete(obj);
	free(json);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	(void)state;
	if (h_make_certs(certdir, sizeof(certdir)) < 0) {
		fprintf(stderr, "cannot make certificates in %s\n", certdir);
		return -1;
	}
	if (ad_start(&dbl, certdir) < 0) {
		fprintf(stderr, "cannot start the API double\n");
		return -1;
	}
	dbl.by_name = true;
	snprintf(kc_inline, sizeof(kc_inline), "%s/kubeconfig-inline.yaml", certdir);
	snprintf(kc_file, sizeof(kc_file), "%s/kubeconfig-file.yaml", certdir);
	if (ad_write_kubeconfig(&dbl, certdir, kc_inline, TOKEN, "ns1", true) < 0 ||
	    ad_write_kubeconfig(&dbl, certdir, kc_file, TOKEN, "ns1", false) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (server.pid > 0)
		h_stop(&server, SIGKILL, 5);
	ad_stop(&dbl);
	h_rmrf(certdir);
	return 0;
}

/* ---- kubeconfig ---- */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Loading path fails with a message naming the file and containing want. */
static void assert_kubeconfig_error(const char *text, const char *want)
{
	char path[512], err[512] = "";
	struct kube_conn c;

	snprintf(path, sizeof(path), "%s/bad-kubeconfig.yaml", certdir);
	write_text(path, text);
	assert_int_equal(kube_conn_from_kubeconfig(path, &c, err, sizeof(err)), -1);
	if (!strstr(err, path) || !strstr(err, want))
		fail_msg("error \"%s\" should name %s and say \"%s\"", err, path, want);
	assert_null(c.server);
	assert_null(c.token);
	kube_conn_clear(&c);
}

#define KC_HEAD "apiVersion: v1\nkind: Config\n"
#define KC_CLUSTER "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443/\n"
#define KC_USER "users:\n- name: u\n  user:\n    token: abc\n"
#define KC_CTX "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"

static void test_kubeconfig_errors(void **state)
{
	(void)state;
	assert_kubeconfig_error(KC_HEAD KC_CLUSTER KC_USER KC_CTX, "current-context");
	assert_kubeconfig_error(KC_HEAD "current-context: \"\"\n" KC_CLUSTER KC_USER KC_CTX,
				"current-context");
	assert_kubeconfig_error(KC_HEAD "current-context: nope\n" KC_CLUSTER KC_USER KC_CTX,
				"\"nope\"");
	assert_kubeconfig_error(KC_HEAD "current-context: x\n"
					"clusters:\n- name: c\n  cluster:\n    server: https://h:1\n"
					"    certificate-authority-data: \"%%%not "
					"base64%%%\"\n" KC_USER KC_CTX,
				"certificate-authority-data");
	/* A context naming a cluster or user that is not there. */
	assert_kubeconfig_error(KC_HEAD
				"current-context: x\n" KC_CLUSTER KC_USER
				"contexts:\n- name: x\n  context:\n    cluster: gone\n    user: u\n",
				"\"gone\"");
	assert_kubeconfig_error(KC_HEAD
				"current-context: x\n" KC_CLUSTER KC_USER
				"contexts:\n- name: x\n  context:\n    cluster: c\n    user: ghost\n",
				"\"ghost\"");
	/* A CA file that does not exist. */
	assert_kubeconfig_error(KC_HEAD "current-context: x\n"
					"clusters:\n- name: c\n  cluster:\n    server: https://h:1\n"
					"    certificate-authority: no-such-ca.crt\n" KC_USER KC_CTX,
				"no-such-ca.crt");
	/* Not a kubeconfig at all, and YAML that does not parse. */
	assert_kubeconfig_error("- a\n- b\n", "not a kubeconfig");
	assert_kubeconfig_error("a: [\n", "");
	/* A token that would split the Authorization header. */
	assert_kubeconfig_error(KC_HEAD "current-context: x\n" KC_CLUSTER
					"users:\n- name: u\n  user:\n    token: \"abc\\r\\nX-Evil: "
					"1\"\n" KC_CTX,
				"token");
	/* The source refuses plain HTTP rather than failing every lookup later. */
	assert_kubeconfig_error(KC_HEAD "current-context: x\n"
					"clusters:\n- name: c\n  cluster:\n    server: "
					"http://127.0.0.1:8001\n" KC_USER KC_CTX,
				"https");
	/* Credential plugins are not supported: say so. */
	assert_kubeconfig_error(KC_HEAD
				"current-context: x\n" KC_CLUSTER
				"users:\n- name: u\n  user:\n    exec:\n      command: aws\n" KC_CTX,
				"exec");
}

static void test_kubeconfig_good(void **state)
{
	char err[512] = "", path[512], want[64], *ca;
	struct kube_conn c;

	(void)state;
	snprintf(want, sizeof(want), "https://127.0.0.1:%u", dbl.port);
	snprintf(path, sizeof(path), "%s/ca.crt", certdir);
	ca = tu_read_file(path, NULL);
	assert_non_null(ca);

	/* The PEM, give or take the trailing newline. */
	while (*ca && strchr("\n\r ", ca[strlen(ca) - 1]))
		ca[strlen(ca) - 1] = '\0';
	assert_int_equal(kube_conn_from_kubeconfig(kc_inline, &c, err, sizeof(err)), 0);
	assert_string_equal(c.server, want);
	assert_string_equal(c.token, TOKEN);
	assert_string_equal(c.namespace_, "ns1");
	assert_non_null(c.ca_pem);
	assert_true(strncmp(c.ca_pem, ca, strlen(ca)) == 0);
	assert_null(c.cert_pem);
	assert_int_equal(c.insecure, 0);
	kube_conn_clear(&c);
	kube_conn_clear(&c); /* idempotent */

	assert_int_equal(kube_conn_from_kubeconfig(kc_file, &c, err, sizeof(err)), 0);
	assert_string_equal(c.server, want);
	assert_non_null(c.ca_pem);
	assert_true(strncmp(c.ca_pem, ca, strlen(ca)) == 0);
	kube_conn_clear(&c);
	kube_conn_clear(NULL);

	/* A trailing slash on the server is dropped; a tokenFile is relative to
	 * the kubeconfig. */
	snprintf(path, sizeof(path), "%s/kc-tokenfile.yaml", certdir);
	write_text(path,
		   KC_HEAD "current-context: x\n" KC_CLUSTER
			   "users:\n- name: u\n  user:\n    tokenFile: token.txt\n" KC_CTX);
	assert_int_equal(kube_conn_from_kubeconfig(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	assert_non_null(c.token_file);
	assert_true(strncmp(c.token_file, certdir, strlen(certdir)) == 0);
	assert_non_null(strstr(c.token_file, "/token.txt"));
	kube_conn_clear(&c);
	free(ca);
}

static void test_source_new_errors(void **state)
{
	char err[512] = "", path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/does-not-exist.yaml", certdir);
	assert_null(kubesource_new(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

/* ---- lookups ---- */

static void test_found_configmap(void **state)
{
	struct objsource *src = new_source(kc_inline);
	struct lookup_item it[2];
	struct lookup_batch b = { "ns1", it, 2 };
	char auth[256];

	(void)state;
	item(&it[0], SRC_CONFIGMAP, "app-config");
	item(&it[1], SRC_CONFIGMAP, "other.config-2");
	run_batch(src, &b, 5000);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(it[i].status, LOOKUP_FOUND);
		assert_null(it[i].object);
		assert_digest_matches(&it[i], "configmaps");
	}
	ad_last_auth(&dbl, auth, sizeof(auth));
	assert_string_equal(auth, "Bearer " TOKEN);
	lookup_batch_clear(&b);
	assert_null(it[0].digest);
	objsource_free(src);
}

static void test_found_secret_and_deployment(void **state)
{
	struct objsource *src = new_source(kc_file); /* CA from a relative path */
	struct lookup_item it[2];
	struct lookup_batch b = { "ns1", it, 2 };

	(void)state;
	item(&it[0], SRC_SECRET, "db-credentials");
	item(&it[1], SRC_DEPLOYMENT, "web");
	run_batch(src, &b, 5000);
	assert_int_equal(it[0].status, LOOKUP_FOUND);
	assert_digest_matches(&it[0], "secrets");
	assert_int_equal(it[1].status, LOOKUP_FOUND);
	assert_null(it[1].digest);
	assert_non_null(it[1].object);
	assert_string_equal(json_get_string(it[1].object, "kind"), "Deployment");
	assert_string_equal(json_get_string(json_get(it[1].object, "metadata"), "name"), "web");
	assert_non_null(json_get_path(it[1].object, "spec", "template", "spec", "containers", NULL));
	lookup_batch_clear(&b);
	objsource_free(src);
}

static void assert_error_reason(const struct lookup_item *it, const char *want)
{
	if (it->status != LOOKUP_ERROR)
		fail_msg("%s: status %d, want LOOKUP_ERROR", it->name, (int)it->status);
	if (!strstr(it->reason, want))
		fail_msg("%s: reason \"%s\" should mention \"%s\"", it->name, it->reason, want);
	assert_null(strstr(it->reason, AD_SECRET_VALUE));
	assert_null(strstr(it->reason, AD_SECRET_VALUE_B64));
	assert_null(strstr(it->reason, TOKEN));
	assert_null(it->digest);
	assert_null(it->object);
}

static void test_absent_and_failures(void **state)
{
	struct objsource *src = new_source(kc_inline);
	struct lookup_item it[11];
	struct lookup_batch b = { "ns1", it, 11 };

	(void)state;
	item(&it[0], SRC_CONFIGMAP, "missing-cm");
	item(&it[1], SRC_SECRET, "missing-secret");
	item(&it[2], SRC_DEPLOYMENT, "missing-deploy");
	item(&it[3], SRC_CONFIGMAP, "forbidden-cm");
	item(&it[4], SRC_SECRET, "forbidden-secret");
	item(&it[5], SRC_CONFIGMAP, "boom");
	item(&it[6], SRC_CONFIGMAP, "garbage");
	item(&it[7], SRC_SECRET, "garbage-secret");
	item(&it[8], SRC_DEPLOYMENT, "garbage-deploy");
	item(&it[9], SRC_CONFIGMAP, "plain404-cm");
	item(&it[10], SRC_CONFIGMAP, "wrongkind-cm");
	run_batch(src, &b, 5000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(it[i].status, LOOKUP_ABSENT);
		assert_null(it[i].digest);
		assert_null(it[i].object);
	}
	assert_error_reason(&it[3], "403");
	assert_error_reason(&it[3], "forbidden");
	assert_error_reason(&it[4], "403");
	assert_error_reason(&it[5], "500");
	assert_error_reason(&it[6], "malformed");
	assert_error_reason(&it[7], "malformed");
	assert_error_reason(&it[8], "malformed");
	/* A 404 that is not the API server's NotFound (a proxy, a wrong server
	 * URL) must not read as "absent": that would stamp a wrong hash. */
	assert_error_reason(&it[9], "404");
	assert_error_reason(&it[10], "Deployment");
	lookup_batch_clear(&b);
	objsource_free(src);
}

static void test_invalid_names_send_nothing(void **state)
{
	struct objsource *src = new_source(kc_inline);
	static const char *const bad[] = { "../x", "A_B",   "..",  ".", "a..b",    "-a", "a-",
					   "a/b",  "a%2Fb", "a?b", "",  ".hidden", "a b" };
	const size_t n = sizeof(bad) / sizeof(bad[0]);
	struct lookup_item it[sizeof(bad) / sizeof(bad[0])];
	struct lookup_batch b = { "ns1", it, n };
	struct lookup_item one;
	struct lookup_batch bad_ns = { "..", &one, 1 };
	int before = atomic_load(&dbl.requests);

	(void)state;
	for (size_t i = 0; i < n; i++)
		item(&it[i],
		     i % 3 == 0           ? SRC_CONFIGMAP
			     : i % 3 == 1 ? SRC_SECRET
					  : SRC_DEPLOYMENT,
		     bad[i]);
	run_batch(src, &b, 5000);
	for (size_t i = 0; i < n; i++)
		assert_error_reason(&it[i], "invalid");
	/* Namespaces are DNS labels: no dots, no upper case, no NULL. */
	item(&one, SRC_CONFIGMAP, "app-config");
	run_batch(src, &bad_ns, 5000);
	assert_error_reason(&one, "invalid");
	bad_ns.namespace_ = "a.b";
	item(&one, SRC_CONFIGMAP, "app-config");
	run_batch(src, &bad_ns, 5000);
	assert_error_reason(&one, "invalid");
	bad_ns.namespace_ = NULL;
	item(&one, SRC_CONFIGMAP, "app-config");
	run_batch(src, &bad_ns, 5000);
	assert_error_reason(&one, "invalid");
	assert_int_equal(atomic_load(&dbl.requests), before);

	/* Longest valid name (253) passes, one more fails. */
	{
		char name[256];
		memset(name, 'a', 254);
		name[253] = '\0';
		bad_ns.namespace_ = "ns1";
		item(&one, SRC_CONFIGMAP, name);
		run_batch(src, &bad_ns, 5000);
		assert_int_equal(one.status, LOOKUP_FOUND);
		lookup_batch_clear(&bad_ns);
		name[253] = 'a';
		name[254] = '\0';
		item(&one, SRC_CONFIGMAP, name);
		run_batch(src, &bad_ns, 5000);
		assert_error_reason(&one, "invalid");
	}
	objsource_free(src);
}

static void test_slow_times_out_alone(void **state)
{
	struct objsource *src = new_source(kc_inline);
	struct lookup_item it[4];
	struct lookup_batch b = { "ns1", it, 4 };
	double dt;

	(void)state;
	item(&it[0], SRC_CONFIGMAP, "slow-cm");
	item(&it[1], SRC_CONFIGMAP, "app-a");
	item(&it[2], SRC_SECRET, "app-b");
	item(&it[3], SRC_DEPLOYMENT, "app-c");
	dt = run_batch(src, &b, 300);
	print_message("slow batch took %.3f s (budget 0.3 s)\n", dt);
	assert_true(dt < 2.5);
	assert_error_reason(&it[0], "timed out");
	for (int i = 1; i < 4; i++)
		assert_int_equal(it[i].status, LOOKUP_FOUND);
	assert_digest_matches(&it[1], "configmaps");
	assert_digest_matches(&it[2], "secrets");
	assert_non_null(it[3].object);
	lookup_batch_clear(&b);
	objsource_free(src);
}

/* Destroying the source with lookups in flight ends them (done once, as
 * errors) without waiting for the API server. */
static void test_destroy_with_lookup_in_flight(void **state)
{
	struct objsource *src = new_source(kc_inline);
	struct lookup_item it[2];
	struct lookup_batch b = { "ns1", it, 2 };
	struct waiter w;
	int seen = atomic_load(&dbl.slow_seen);
	struct timespec t0;

	(void)state;
	waiter_init(&w);
	item(&it[0], SRC_CONFIGMAP, "slow-destroy");
	item(&it[1], SRC_CONFIGMAP, "app-config");
	assert_int_equal(objsource_resolve(src, &b, 10000, on_done, &w), 1);
	for (int i = 0; i < 400 && atomic_load(&dbl.slow_seen) == seen; i++)
		usleep(10 * 1000);
	assert_true(atomic_load(&dbl.slow_seen) > seen);
	rgtime_now(&t0);
	objsource_free(src);
	assert_true(rgtime_elapsed_s(&t0) < 2.0);
	assert_int_equal(atomic_load(&w.calls), 1);
	assert_error_reason(&it[0], "stopped");
	/* The fast one may or may not have been answered by then. */
	if (it[1].status != LOOKUP_FOUND)
		assert_error_reason(&it[1], "stopped");
	lookup_batch_clear(&b);
	waiter_destroy(&w);

	/* A batch still queued (or just started) when the source goes. */
	for (int round = 0; round < 20; round++) {
		waiter_init(&w);
		src = new_source(kc_inline);
		item(&it[0], SRC_CONFIGMAP, "app-config");
		item(&it[1], SRC_SECRET, "app-secret");
		assert_int_equal(objsource_resolve(src, &b, 10000, on_done, &w), 1);
		objsource_free(src);
		assert_int_equal(atomic_load(&w.calls), 1);
		for (int i = 0; i < 2; i++)
			if (it[i].status != LOOKUP_FOUND)
				assert_error_reason(&it[i], "stopped");
		lookup_batch_clear(&b);
		waiter_destroy(&w);
	}
}

#define CONC_THREADS 8
#define CONC_BATCHES 20

struct conc {
	struct objsource *src;
	int id;
	int done_once; /* batches whose done came exactly once */
	int found, absent;
	int bad;
};

static void *conc_thread(void *arg)
{
	struct conc *c = arg;
	char names[3][64];

	for (int i = 0; i < CONC_BATCHES; i++) {
		struct lookup_item it[3];
		struct lookup_batch b = { "ns1", it, 3 };
		struct waiter w;

		snprintf(names[0], sizeof(names[0]), "cm-%d-%d", c->id, i);
		snprintf(names[1], sizeof(names[1]), "secret-%d-%d", c->id, i);
		snprintf(names[2], sizeof(names[2]), "missing-%d-%d", c->id, i);
		memset(it, 0, sizeof(it));
		it[0].kind = SRC_CONFIGMAP, it[0].name = names[0];
		it[1].kind = SRC_SECRET, it[1].name = names[1];
		it[2].kind = SRC_CONFIGMAP, it[2].name = names[2];
		waiter_init(&w);
		if (objsource_resolve(c->src, &b, 10000, on_done, &w) != 1 || waiter_wait(&w) != 1) {
			c->bad++;
		} else {
			c->done_once++;
			c->found += (it[0].status == LOOKUP_FOUND) + (it[1].status == LOOKUP_FOUND);
			c->absent += it[2].status == LOOKUP_ABSENT;
		}
		/* A second done would arrive late: give it a moment to show. */
		if (i == CONC_BATCHES - 1)
			usleep(50 * 1000);
		if (atomic_load(&w.calls) != 1)
			c->bad++;
		lookup_batch_clear(&b);
		waiter_destroy(&w);
	}
	return NULL;
}

static void test_concurrent_batches(void **state)
{
	struct objsource *src = new_source(kc_inline);
	pthread_t th[CONC_THREADS];
	struct conc c[CONC_THREADS];
	struct timespec t0;

	(void)state;
	rgtime_now(&t0);
	for (int i = 0; i < CONC_THREADS; i++) {
		c[i] = (struct conc){ src, i, 0, 0, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, conc_thread, &c[i]), 0);
	}
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	print_message("%d batches of 3 from %d threads in %.3f s\n", CONC_THREADS * CONC_BATCHES,
		      CONC_THREADS, rgtime_elapsed_s(&t0));
	for (int i = 0; i < CONC_THREADS; i++) {
		assert_int_equal(c[i].bad, 0);
		assert_int_equal(c[i].done_once, CONC_BATCHES);
		assert_int_equal(c[i].found, 2 * CONC_BATCHES);
		assert_int_equal(c[i].absent, CONC_BATCHES);
	}
	objsource_free(src);
}

static void test_connection_reuse(void **state)
{
	struct objsource *src = new_source(kc_inline);
	int before = atomic_load(&dbl.connections), reqs = atomic_load(&dbl.requests), conns;

	(void)state;
	for (int i = 0; i < 50; i++) {
		struct lookup_item it;
		struct lookup_batch b = { "ns1", &it, 1 };
		item(&it, SRC_CONFIGMAP, "app-config");
		run_batch(src, &b, 5000);
		assert_int_equal(it.status, LOOKUP_FOUND);
		lookup_batch_clear(&b);
	}
	conns = atomic_load(&dbl.connections) - before;
	print_message("50 sequential lookups: %d requests, %d TCP connections\n",
		      atomic_load(&dbl.requests) - reqs, conns);
	assert_int_equal(atomic_load(&dbl.requests) - reqs, 50);
	assert_true(conns >= 1 && conns <= 8);
	objsource_free(src);
}

/* The cost of one review's lookups: a batch of three FOUND objects over
 * warm connections, averaged over 100 runs. Reported, not asserted. */
static void test_lookup_cost(void **state)
{
	struct objsource *src = new_source(kc_inline);
	double total = 0, worst = 0;
	int conns = 0, reqs = 0;

	(void)state;
	for (int run = -5; run < 100; run++) {
		struct lookup_item it[3];
		struct lookup_batch b = { "ns1", it, 3 };
		double dt;
		item(&it[0], SRC_CONFIGMAP, "app-config");
		item(&it[1], SRC_SECRET, "app-secret");
		item(&it[2], SRC_CONFIGMAP, "feature-flags");
		if (run == 0) {
			conns = atomic_load(&dbl.connections);
			reqs = atomic_load(&dbl.requests);
		}
		dt = run_batch(src, &b, 5000);
		for (int i = 0; i < 3; i++)
			assert_int_equal(it[i].status, LOOKUP_FOUND);
		lookup_batch_clear(&b);
		if (run >= 0) {
			total += dt;
			worst = dt > worst ? dt : worst;
		}
	}
	print_message("batch of 3 FOUND lookups over warm connections: mean %.3f ms, max %.3f ms "
		      "(100 runs, %d requests, %d new connections)\n",
		      total / 100 * 1000, worst * 1000, atomic_load(&dbl.requests) - reqs,
		      atomic_load(&dbl.connections) - conns);
	assert_int_equal(atomic_load(&dbl.requests) - reqs, 300);
	objsource_free(src);
}

/* ---- the real binary ---- */

static char *deployment_review(const char *uid, const char *cm)
{
	static const char fmt[] =
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		"\"uid\":\"%s\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":"
		"\"Deployment\"},"
		"\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"deployments\"},"
		"\"name\":\"web\",\"namespace\":\"ns1\",\"operation\":\"CREATE\","
		"\"userInfo\":{\"username\":\"alice\"},\"object\":{"
		"\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
		"\"namespace\":\"ns1\",\"annotations\":{\"rollgate.io/reload\":\"true\"}},"
		"\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
		"\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{"
		"\"name\":\"app\",\"image\":\"nginx:1.25\",\"envFrom\":[{\"configMapRef\":{\"name\":"
		"\"%s\"}}]"
		"}]}}}}}}";
	size_t n = sizeof(fmt) + strlen(uid) + strlen(cm);
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, fmt, uid, cm);
	return s;
}

/* The hash rollgate should stamp for a pod spec using configmap cm. */
static void expected_hash(const char *cm, char out[CONFIGHASH_VALUE_LEN])
{
	char *review = deployment_review("x", cm), *json = ad_object_json("configmaps", "ns1", cm);
	char err[256];
	cJSON *r = NULL, *obj = NULL;
	struct refset set;
	struct obj_digest d = { 0 };
	const struct obj_digest *objs[1] = { &d };

	memset(&set, 0, sizeof(set));
	assert_int_equal(json_parse_strict(review, strlen(review), &r, err, sizeof(err)), 0);
	assert_int_equal(json_parse_strict(json, strlen(json), &obj, err, sizeof(err)), 0);
	assert_int_equal(refs_collect(json_get_path(r, "request", "object", "spec", "template", "spec",
						    NULL),
				      &set, err, sizeof(err)),
			 0);
	refs_finish(&set);
	assert_int_equal(set.n, 1);
	assert_int_equal(confighash_digest_object(obj, OBJ_CONFIGMAP, &d, err, sizeof(err)), 0);
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), 0);
	confighash_digest_clear(&d);
	refs_clear(&set);
	cJSON_Delete(obj);
	cJSON_Delete(r);
	free(json);
	free(review);
}

/* Posts a review and returns its parsed "response" member's review (caller
 * deletes the returned root). */
static cJSON *post_review(const char *path, const char *uid, const char *cm, double *secs)
{
	char *body = deployment_review(uid, cm), err[256];
	struct h_resp r;
	cJSON *root = NULL;
	struct timespec t0;

	rgtime_now(&t0);
	h_post(certdir, server.port, path, body, strlen(body), NULL, &r);
	if (secs)
		*secs = rgtime_elapsed_s(&t0);
	free(body);
	if (r.rc != CURLE_OK || r.status != 200)
		fail_msg("POST %s: curl %d, HTTP %ld", path, (int)r.rc, r.status);
	assert_int_equal(json_parse_strict(r.body, r.len, &root, err, sizeof(err)), 0);
	h_resp_free(&r);
	assert_string_equal(json_get_string(root, "kind"), "AdmissionReview");
	assert_string_equal(json_get_string(json_get(root, "response"), "uid"), uid);
	assert_true(json_get_bool(json_get(root, "response"), "allowed"));
	return root;
}

/* Decodes response.patch (base64 of a JSON array). */
static cJSON *decode_patch(const cJSON *resp)
{
	const char *b64 = json_get_string(resp, "patch");
	unsigned char *raw;
	int n;
	size_t len;
	cJSON *patch = NULL;
	char err[256];

	assert_non_null(b64);
	assert_string_equal(json_get_string(resp, "patchType"), "JSONPatch");
	len = strlen(b64);
	raw = malloc(len + 1);
	assert_non_null(raw);
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	assert_true(n > 0);
	while (n > 0 && raw[n - 1] == '\0') /* padding */
		n--;
	raw[n] = '\0';
	assert_int_equal(json_parse_strict((char *)raw, (size_t)n, &patch, err, sizeof(err)), 0);
	free(raw);
	assert_true(cJSON_IsArray(patch));
	return patch;
}

/* The value the patch gives the config-hash annotation, or NULL. */
static const char *patched_hash(const cJSON *patch)
{
	const cJSON *op;

	cJSON_ArrayForEach(op, patch) {
		const char *path = json_get_string(op, "path");
		const cJSON *value = json_get(op, "value");
		if (!path || strncmp(path, "/spec/template/metadata/annotations", 35) != 0)
			continue;
		if (strcmp(path, "/spec/template/metadata/annotations") == 0 && cJSON_IsObject(value))
			return json_get_string(value, "rollgate.io/config-hash");
		if (strcmp(path, "/spec/template/metadata/annotations/rollgate.io~1config-hash") == 0)
			return cJSON_IsString(value) ? value->valuestring : NULL;
	}
	return NULL;
}

static int warnings(const cJSON *resp)
{
	return cJSON_GetArraySize(json_get(resp, "warnings"));
}

struct slow_call {
	cJSON *root;
	double secs;
	atomic_bool done;
};

static void *slow_thread(void *arg)
{
	struct slow_call *s = arg;
	char *body = deployment_review("uid-slow", "slow-cm"), err[256];
	struct h_resp r;
	struct timespec t0;

	rgtime_now(&t0);
	h_post(certdir, server.port, "/mutate", body, strlen(body), NULL, &r);
	s->secs = rgtime_elapsed_s(&t0);
	free(body);
	if (r.rc == CURLE_OK && r.status == 200 &&
	    json_parse_strict(r.body, r.len, &s->root, err, sizeof(err)) < 0)
		s->root = NULL;
	h_resp_free(&r);
	atomic_store(&s->done, true);
	return NULL;
}

static void test_serve_with_kubeconfig(void **state)
{
	char crt[512], key[512], want[CONFIGHASH_VALUE_LEN], auth[256];
	const char *args[] = { "--tls-cert", crt, "--tls-key", key, "--kubeconfig", kc_inline, NULL };
	cJSON *root, *patch;
	const cJSON *resp;
	const char *hash;
	struct slow_call slow = { NULL, 0, false };
	pthread_t th;
	double worst = 0, secs;
	int seen;

	(void)state;
	if (!h_bin()) {
		print_message("[  SKIP    ] ROLLGATE_BIN is not set: no integration test\n");
		skip();
	}
	snprintf(crt, sizeof(crt), "%s/tls.crt", certdir);
	snprintf(key, sizeof(key), "%s/tls.key", certdir);
	if (h_start(&server, certdir, args) < 0)
		fail_msg("rollgate serve did not start; see %s", server.log);

	/* A found ConfigMap: stamped with the hash of its data. */
	root = post_review("/mutate", "uid-found", "app-config", &secs);
	resp = json_get(root, "response");
	patch = decode_patch(resp);
	hash = patched_hash(patch);
	assert_non_null(hash);
	assert_true(strncmp(hash, "sha256:", 7) == 0 && strlen(hash) == 71);
	expected_hash("app-config", want);
	assert_string_equal(hash, want);
	ad_last_auth(&dbl, auth, sizeof(auth));
	assert_string_equal(auth, "Bearer " TOKEN);
	print_message("stamped review over the API double in %.3f s\n", secs);
	cJSON_Delete(patch);
	cJSON_Delete(root);

	/* A ConfigMap it may not read: allowed, not stamped, warned. */
	root = post_review("/mutate", "uid-forbidden", "forbidden-cm", NULL);
	resp = json_get(root, "response");
	assert_null(json_get(resp, "patch"));
	assert_true(warnings(resp) >= 1);
	assert_non_null(strstr(cJSON_GetArrayItem(json_get(resp, "warnings"), 0)->valuestring,
			       "forbidden-cm"));
	cJSON_Delete(root);

	/* A slow API server never holds up other requests: they are answered
	 * while the lookup still waits (an order, not a time, so a loaded
	 * machine only makes both slower). */
	seen = atomic_load(&dbl.slow_seen);
	assert_int_equal(pthread_create(&th, NULL, slow_thread, &slow), 0);
	for (int i = 0; i < 1000 && atomic_load(&dbl.slow_seen) == seen; i++)
		usleep(5 * 1000);
	assert_true(atomic_load(&dbl.slow_seen) > seen);
	for (int i = 0; i < 20; i++) {
		char uid[32];
		snprintf(uid, sizeof(uid), "uid-validate-%d", i);
		root = post_review("/validate", uid, "app-config", &secs);
		cJSON_Delete(root);
		worst = secs > worst ? secs : worst;
		if (i == 0)
			assert_false(atomic_load(&slow.done));
	}
	pthread_join(th, NULL);
	print_message("20 /validate while a lookup waits: slowest %.3f s; the slow /mutate took %.3f "
		      "s\n",
		      worst, slow.secs);
	assert_non_null(slow.root);
	resp = json_get(slow.root, "response");
	assert_string_equal(json_get_string(resp, "uid"), "uid-slow");
	assert_true(json_get_bool(resp, "allowed"));
	assert_null(json_get(resp, "patch"));
	assert_true(warnings(resp) >= 1);
	assert_true(slow.secs > 1.0 && slow.secs < 10.0);
	cJSON_Delete(slow.root);

	assert_true(h_log_has(&server, "timed out"));
	assert_false(h_log_has(&server, TOKEN));
	assert_int_equal(h_stop(&server, SIGTERM, 30), 0);
}

/* SIGTERM while a review waits on a slow lookup, with no drain time: the
 * server must wait for the suspended request, answer it, and exit 0. */
static void test_shutdown_during_lookup(void **state)
{
	char crt[512], key[512];
	const char *args[] = { "--tls-cert",      crt, "--tls-key", key, "--kubeconfig", kc_inline,
			       "--drain-timeout", "0", NULL };
	struct slow_call slow = { NULL, 0, false };
	pthread_t th;
	int seen;

	(void)state;
	if (!h_bin())
		skip();
	snprintf(crt, sizeof(crt), "%s/tls.crt", certdir);
	snprintf(key, sizeof(key), "%s/tls.key", certdir);
	if (h_start(&server, certdir, args) < 0)
		fail_msg("rollgate serve did not start; see %s", server.log);
	seen = atomic_load(&dbl.slow_seen);
	assert_int_equal(pthread_create(&th, NULL, slow_thread, &slow), 0);
	for (int i = 0; i < 1000 && atomic_load(&dbl.slow_seen) == seen; i++)
		usleep(5 * 1000);
	assert_true(atomic_load(&dbl.slow_seen) > seen);
	assert_int_equal(h_stop(&server, SIGTERM, 30), 0);
	pthread_join(th, NULL);
	assert_non_null(slow.root);
	assert_true(json_get_bool(json_get(slow.root, "response"), "allowed"));
	cJSON_Delete(slow.root);
}

static int stop_server(void **state)
{
	(void)state;
	if (server.pid > 0)
		h_stop(&server, SIGKILL, 5);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubeconfig_errors),
		cmocka_unit_test(test_kubeconfig_good),
		cmocka_unit_test(test_source_new_errors),
		cmocka_unit_test(test_found_configmap),
		cmocka_unit_test(test_found_secret_and_deployment),
		cmocka_unit_test(test_absent_and_failures),
		cmocka_unit_test(test_invalid_names_send_nothing),
		cmocka_unit_test(test_slow_times_out_alone),
		cmocka_unit_test(test_destroy_with_lookup_in_flight),
		cmocka_unit_test(test_concurrent_batches),
		cmocka_unit_test(test_connection_reuse),
		cmocka_unit_test(test_lookup_cost),
		cmocka_unit_test_teardown(test_serve_with_kubeconfig, stop_server),
		cmocka_unit_test_teardown(test_shutdown_during_lookup, stop_server),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
