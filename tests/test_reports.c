/*
 * Policy reports: the result mapping and the report object (report.c), and
 * the report controller (reportctl.c) against the kube-apiserver double: a
 * violating workload appears in its namespace's report within the
 * interval, a fix or a deletion removes its result, a restart writes
 * nothing when nothing changed, leadership hands over to one writer, a
 * missing CRD is noticed once, and 10,000 workloads stay within the memory
 * budget of a real `rollgate serve`.
 *
 * Run with `--serve DIR [options]` this binary is instead a standalone API
 * double for tests/test_cli.sh (see serve_main).
 */
#include "testutil.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "apidouble.h"
#include "harness.h"

#include "config.h"
#include "jsonutil.h"
#include "log.h"
#include "report.h"
#include "rules.h"

static char certdir[256];

/* ---- the result mapping ---- */

static struct violation mkv(enum rule_id id, enum rule_mode m, const char *msg, const char *path)
{
	struct violation v = { id, m, strdup(msg), strdup(path) };
	return v;
}

static void test_items_map_modes(void **state)
{
	struct verdict v = { 0 };
	struct report_item *it = NULL;
	size_t n = 0;

	(void)state;
	v.v = calloc(4, sizeof(*v.v));
	assert_non_null(v.v);
	v.v[0] = mkv(RULE_MUTABLE_IMAGE_TAG, MODE_WARN, "a", "spec.template.spec.containers[0].image");
	v.v[1] = mkv(RULE_MUTABLE_IMAGE_TAG, MODE_WARN, "b", "spec.template.spec.containers[1].image");
	v.v[2] = mkv(RULE_FULL_OUTAGE_ROLLOUT, MODE_ENFORCE, "c", "spec.strategy");
	v.v[3] = mkv(RULE_NO_ROLLBACK_HISTORY, MODE_AUDIT, "d", "spec.revisionHistoryLimit");
	v.n = 4;
	v.dropped[RULE_MUTABLE_IMAGE_TAG] = 5;
	assert_int_equal(report_items_from_verdict(&v, NULL, "rollgate.io/skip", &it, &n), 0);
	/* In rule order: one item per rule. */
	assert_int_equal(n, 3);
	assert_int_equal(it[0].rule, RULE_MUTABLE_IMAGE_TAG);
	assert_int_equal(it[0].result, REPORT_WARN);
	assert_int_equal(it[0].violations, 7);
	assert_string_equal(it[0].message, "a; b");
	assert_string_equal(it[0].paths,
			    "spec.template.spec.containers[0].image, spec.template.spec.containers[1].image");
	assert_int_equal(it[1].rule, RULE_NO_ROLLBACK_HISTORY);
	assert_int_equal(it[1].result, REPORT_FAIL); /* audit: denied once it enforces */
	assert_int_equal(it[2].rule, RULE_FULL_OUTAGE_ROLLOUT);
	assert_int_equal(it[2].result, REPORT_FAIL);
	assert_string_equal(report_severity(RULE_FULL_OUTAGE_ROLLOUT), "high");
	assert_string_equal(report_severity(RULE_MUTABLE_IMAGE_TAG), "medium");
	report_items_free(it, n);
	verdict_free(&v);
}

static void test_items_skip_and_pass(void **state)
{
	struct verdict v = { 0 }, bare = { 0 };
	struct report_item *it = NULL;
	size_t n = 0;

	(void)state;
	bare.v = calloc(1, sizeof(*bare.v));
	assert_non_null(bare.v);
	bare.v[0] = mkv(RULE_MUTABLE_IMAGE_TAG, MODE_WARN, "x", "p");
	bare.n = 1;
	assert_int_equal(report_items_from_verdict(&v, &bare, "rollgate.io/skip", &it, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].result, REPORT_SKIP);
	assert_non_null(strstr(it[0].message, "rollgate.io/skip"));
	report_items_free(it, n);
	assert_int_equal(report_items_from_verdict(&v, NULL, "rollgate.io/skip", &it, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].result, REPORT_PASS);
	assert_int_equal(it[0].rule, RULE_COUNT);
	report_items_free(it, n);
	verdict_free(&bare);
}

/* A long message is cut to REPORT_MESSAGE_MAX on a character boundary. */
static void test_items_message_capped(void **state)
{
	struct verdict v = { 0 };
	struct report_item *it = NULL;
	char msg[600];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i + 2 < sizeof(msg); i += 2)
		memcpy(msg + i, "\xc3\xbc", 2);
	msg[sizeof(msg) - 2] = '\0';
	v.v = calloc(3, sizeof(*v.v));
	assert_non_null(v.v);
	for (int i = 0; i < 3; i++)
		v.v[i] = mkv(RULE_MUTABLE_IMAGE_TAG, MODE_WARN, msg, "p");
	v.n = 3;
	assert_int_equal(report_items_from_verdict(&v, NULL, "k", &it, &n), 0);
	assert_true(strlen(it[0].message) <= REPORT_MESSAGE_MAX);
	assert_true(tu_valid_warning(it[0].message));
	assert_non_null(strstr(it[0].message, "..."));
	report_items_free(it, n);
	verdict_free(&v);
}

static struct report_object *mkobj(const char *name, enum report_result res, unsigned k)
{
	struct report_object *o = calloc(1, sizeof(*o));
	char msg[64];

	assert_non_null(o);
	o->api_version = "apps/v1";
	o->kind = "Deployment";
	o->name = strdup(name);
	o->uid = strdup("9b0c6a3e-0000-4000-8000-000000000001");
	o->since = 1700000000;
	o->items = calloc(1, sizeof(*o->items));
	o->n = 1;
	snprintf(msg, sizeof(msg), "message %u", k);
	o->items[0] = (struct report_item){ res == REPORT_PASS ? RULE_COUNT : RULE_MUTABLE_IMAGE_TAG,
					    res, MODE_WARN, 1, strdup(msg), NULL };
	return o;
}

/* The digest ignores timestamps and follows every result. */
static void test_digest(void **state)
{
	struct report_object *a = mkobj("web", REPORT_WARN, 1);
	char d1[REPORT_DIGEST_LEN], d2[REPORT_DIGEST_LEN];

	(void)state;
	report_digest("shop", &a, 1, d1);
	assert_int_equal(strlen(d1), 71);
	a->since += 100;
	report_digest("shop", &a, 1, d2);
	assert_string_equal(d1, d2);
	a->items[0].result = REPORT_FAIL;
	report_digest("shop", &a, 1, d2);
	assert_string_not_equal(d1, d2);
	report_digest("other", &a, 1, d2);
	assert_string_not_equal(d1, d2);
	report_object_clear(a);
	free(a);
}

/* Past REPORT_MAX_BYTES passes go first; the summary still counts all. */
static void test_render_capped(void **state)
{
	enum { N = 6000 };
	struct report_object **objs = calloc(N, sizeof(*objs));
	char name[32];
	cJSON *doc;
	char *text;
	long long fails = 0, passes = 0;
	const cJSON *it;

	(void)state;
	assert_non_null(objs);
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "w-%05u", i);
		objs[i] = mkobj(name, i % 3 == 0 ? REPORT_FAIL : REPORT_PASS, i);
	}
	doc = report_render(REPORT_POLICYREPORT, "shop", objs, N);
	assert_non_null(doc);
	text = json_print(doc);
	assert_true(strlen(text) <= REPORT_MAX_BYTES);
	assert_int_equal(json_get_int(json_get(doc, "summary"), "fail", &fails), 0);
	assert_int_equal(json_get_int(json_get(doc, "summary"), "pass", &passes), 0);
	assert_int_equal(fails, 2000);
	assert_int_equal(passes, 4000);
	cJSON_ArrayForEach(it, json_get(doc, "results")) if (strcmp(json_get_string(it, "result"), "fail") == 0) fails--;
	assert_int_equal(fails, 0); /* every failure kept */
	assert_non_null(json_get_string(json_get_path(doc, "metadata", "annotations", NULL),
					"rollgate.io/results-omitted"));
	free(text);
	cJSON_Delete(doc);
	for (unsigned i = 0; i < N; i++) {
		report_object_clear(objs[i]);
		free(objs[i]);
	}
	free(objs);
}

/* ---- a standalone double for tests/test_cli.sh ---- */

/*
 * --serve DIR [--max-limit N] [--expire-continue N] [--no-canaries]
 * [--no-rollouts] [--no-policyreports]: serves DIR/objects.json (a list of
 * {"resource", "namespace", "name", "object"}) with the certificates of DIR
 * (tls.crt, tls.key, ca.crt), writes DIR/kubeconfig, then DIR/ready; on
 * SIGTERM writes DIR/stats.json (lists, expired lists, patches) and exits.
 */
static int serve_load(struct ad *d, const char *dir)
{
	char path[4200];
	char *text;
	cJSON *arr, *o;

	snprintf(path, sizeof(path), "%s/objects.json", dir);
	text = tu_read_file(path, NULL);
	arr = text ? cJSON_Parse(text) : NULL;
	free(text);
	if (!cJSON_IsArray(arr)) {
		fprintf(stderr, "serve: %s: not a JSON list\n", path);
		cJSON_Delete(arr);
		return -1;
	}
	cJSON_ArrayForEach(o, arr) {
		char *obj = cJSON_PrintUnformatted(json_get(o, "object"));
		unsigned long long rv = obj ? ad_put(d, json_get_string(o, "resource"),
						     json_get_string(o, "namespace"),
						     json_get_string(o, "name"), obj)
					    : 0;
		free(obj);
		if (!rv) {
			fprintf(stderr, "serve: %s: bad entry\n", path);
			cJSON_Delete(arr);
			return -1;
		}
	}
	cJSON_Delete(arr);
	return 0;
}

static int serve_write(const char *dir, const char *file, const char *text)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int serve_main(int argc, char **argv)
{
	static struct ad d;
	const char *dir = argv[2];
	char path[4200], stats[256];
	sigset_t sigs;
	int sig;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (ad_start(&d, dir) < 0) {
		fprintf(stderr, "serve: cannot start the double with %s/tls.crt\n", dir);
		return 1;
	}
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--max-limit") == 0 && i + 1 < argc)
			d.max_limit = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--expire-continue") == 0 && i + 1 < argc)
			atomic_store(&d.expire_continue, atoi(argv[++i]));
		else if (strcmp(argv[i], "--no-canaries") == 0)
			d.no_canaries = true;
		else if (strcmp(argv[i], "--no-rollouts") == 0)
			d.no_rollouts = true;
		else if (strcmp(argv[i], "--no-policyreports") == 0)
			d.no_policyreports = true;
		else {
			fprintf(stderr, "serve: unknown option %s\n", argv[i]);
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	if (serve_load(&d, dir) < 0 || ad_write_kubeconfig(&d, dir, path, "cli-token", NULL, true) < 0 ||
	    serve_write(dir, "ready", "ok\n") < 0) {
		ad_stop(&d);
		return 1;
	}
	sigwait(&sigs, &sig);
	snprintf(stats, sizeof(stats), "{\"lists\": %d, \"expired_lists\": %d, \"requests\": %d}\n",
		 atomic_load(&d.lists), atomic_load(&d.expired_lists), atomic_load(&d.requests));
	serve_write(dir, "stats.json", stats);
	ad_stop(&d);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	return tu_certs_setup(certdir, sizeof(certdir));
}

static int group_teardown(void **state)
{
	(void)state;
	tu_certs_teardown(certdir);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items_map_modes),
		cmocka_unit_test(test_items_skip_and_pass),
		cmocka_unit_test(test_items_message_capped),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_render_capped),
	};

	if (argc >= 3 && strcmp(argv[1], "--serve") == 0)
		return serve_main(argc, argv);
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	if (getenv("TEST_LOG"))
		log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
