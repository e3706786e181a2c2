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
#include "kubeclient.h"
#include "kubeconn.h"
#include "kubesource.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "objsource.h"
#include "report.h"
#include "reportctl.h"
#include "rules.h"

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
			    "spec.template.spec.containers[0].image, "
			    "spec.template.spec.containers[1].image");
	assert_int_equal(it[1].rule, RULE_NO_ROLLBACK_HISTORY);
	assert_int_equal(it[1].result, REPORT_FAIL); /* audit: denied once it enforces */
	assert_int_equal(it[2].rule, RULE_FULL_OUTAGE_ROLLOUT);
	assert_int_equal(it[2].result, REPORT_FAIL);
	assert_string_equal(report_severity(RULE_FULL_OUTAGE_ROLLOUT), "high");
	assert_string_equal(report_severity(RULE_MUTABLE_IMAGE_TAG), "medium");
	report_items_free(it, n);
	verdict_clear(&v);
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
	verdict_clear(&bare);
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
	verdict_clear(&v);
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
					    res,
					    MODE_WARN,
					    1,
					    strdup(msg),
					    NULL };
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
	cJSON_ArrayForEach(it, json_get(doc, "results"))
		if (strcmp(json_get_string(it, "result"), "fail") == 0)
			fails--;
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

/* ---- the reports: config keys ---- */

static void test_config_keys(void **state)
{
	static const struct {
		const char *yaml, *err;
	} bad[] = {
		{ "reports: true\n", "test.yaml:1: reports: expected a mapping" },
		{ "reports:\n  enabled: yes please\n",
		  "test.yaml:2: reports.enabled: expected true or false" },
		{ "reports:\n  interval: 50ms\n",
		  "test.yaml:2: reports.interval: must be at least 100ms" },
		{ "reports:\n  interval: 2m\n", "test.yaml:2: reports.interval: expected a duration" },
		{ "reports:\n  maxResults: 3\n", "test.yaml:2: maxResults: unknown key in reports" },
	};
	struct config cfg;
	char err[512];

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_false(cfg.reports_enabled);
	assert_int_equal(cfg.reports_interval_ms, 10000);
	config_clear(&cfg);
	assert_int_equal(config_load_buffer("test.yaml",
					    "reports:\n  enabled: true\n  interval: 30s\n", 41, &cfg,
					    err, sizeof(err)),
			 0);
	assert_true(cfg.reports_enabled);
	assert_int_equal(cfg.reports_interval_ms, 30000);
	config_clear(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_load_buffer("test.yaml", bad[i].yaml, strlen(bad[i].yaml),
						    &cfg, err, sizeof(err)),
				 -1);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			fail_msg("%s: got \"%s\"", bad[i].yaml, err);
	}
}

/* ---- the report controller against the double ---- */

#define WAIT_MS 20000
#define INTERVAL_MS 500

static const char ctl_cfg[] = "reports:\n  enabled: true\n  interval: 500ms\n";

/* A replica: credentials, a client, the GET source, maybe a lease, the
 * controller. */
struct replica {
	struct ad_client api;
	struct objsource *src;
	struct reportctl *rc;
	bool up;
};

struct env {
	struct ad d;
	struct replica a, b;
	struct rg_server srv;
};

/* lo NULL: no leader election (always leader). */
static void replica_up(struct replica *rp, struct ad *d, const char *token, const char *yaml,
		       const struct lease_options *lo)
{
	char err[512];

	memset(rp, 0, sizeof(*rp));
	ad_client_open(&rp->api, d, tu_certdir, token, lo);
	rp->src = kubesource_new(rp->api.kc, err, sizeof(err));
	assert_non_null(rp->src);
	rp->rc = reportctl_new(rp->api.client, rp->src, rp->api.lease,
			       tu_config(yaml ? yaml : ctl_cfg), err, sizeof(err));
	if (!rp->rc)
		fail_msg("reportctl_new: %s", err);
	assert_int_equal(reportctl_start(rp->rc, err, sizeof(err)), 0);
	rp->up = true;
}

static void replica_down(struct replica *rp, bool graceful)
{
	if (!rp->up)
		return;
	reportctl_stop(rp->rc);
	lease_stop(rp->api.lease, graceful);
	reportctl_free(rp->rc);
	objsource_free(rp->src);
	ad_client_close(&rp->api);
	rp->up = false;
}

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

	replica_down(&e->a, true);
	replica_down(&e->b, true);
	if (e->srv.pid > 0)
		h_stop(&e->srv, SIGKILL, 5);
	ad_stop(&e->d);
	free(e);
	return 0;
}

/* A Deployment: good ones pin their image and probe readiness. */
static void put_deploy(struct ad *d, const char *ns, const char *name, bool good)
{
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
		 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\"}},\"spec\":{\"containers\":"
		 "[{\"name\":\"app\",\"image\":\"%s\"%s}]}}}}",
		 name, name, good ? "shop/app:1.2.3" : "nginx:latest",
		 good ? ",\"readinessProbe\":{\"tcpSocket\":{\"port\":80}}" : "");
	assert_true(ad_put(d, "deployments", ns, name, json) > 0);
}

/* The result of rule (NULL: the pass) for the named object in ns's report:
 * its result string, or NULL when the report or the result is absent. */
struct probe {
	struct ad *d;
	const char *ns, *name, *rule, *want; /* want NULL: no result for the object at all */
};

static bool report_says(void *arg)
{
	struct probe *p = arg;
	char *j = ad_get_json(p->d, "policyreports", p->ns, REPORT_NAME);
	cJSON *o = j ? tu_json_or_null(j, strlen(j)) : NULL;
	const cJSON *it;
	bool found = false, ok;

	cJSON_ArrayForEach(it, json_get(o, "results")) {
		const cJSON *ref = cJSON_GetArrayItem(json_get(it, "resources"), 0);
		const char *rule = json_get_string(it, "rule"), *res = json_get_string(it, "result");
		if (strcmp(json_get_string(ref, "name"), p->name) != 0)
			continue;
		if (!p->want) {
			found = true;
			break;
		}
		if ((p->rule ? rule && strcmp(rule, p->rule) == 0 : !rule) &&
		    strcmp(res, p->want) == 0)
			found = true;
	}
	ok = o && (p->want ? found : !found);
	cJSON_Delete(o);
	free(j);
	return ok;
}

static bool synced(void *arg)
{
	return reportctl_synced(arg);
}

/* Report writes of ns so far, and the gaps between them. */
static size_t writes_of(struct ad *d, const char *ns, double *min_gap, char tokens[][128], size_t max)
{
	char needle[300];
	size_t n = 0;
	double last = -1;

	snprintf(needle, sizeof(needle), "/namespaces/%s/policyreports/", ns);
	*min_gap = 1e9;
	ad_begin(d);
	for (size_t i = 0; i < d->n_patches; i++) {
		if (!strstr(d->patches[i].path, needle))
			continue;
		if (last >= 0 && d->patches[i].t - last < *min_gap)
			*min_gap = d->patches[i].t - last;
		last = d->patches[i].t;
		if (tokens && n < max)
			snprintf(tokens[n], 128, "%s", d->patches[i].token);
		n++;
	}
	ad_end(d);
	return n;
}

/*
 * A violating workload appears in its namespace's report, as warn results;
 * fixing it turns them into a pass; deleting it removes it. Writes of one
 * namespace are at least an interval apart, by server-side apply.
 */
static void test_violation_fix_delete(void **state)
{
	struct env *e = *state;
	struct probe p = { &e->d, "shop", "web", "mutable-image-tag", "warn" };
	double gap;
	char *j;

	put_deploy(&e->d, "shop", "web", false);
	put_deploy(&e->d, "shop", "api", true);
	put_deploy(&e->d, "kube-system", "dns", false);
	replica_up(&e->a, &e->d, "a", NULL, NULL);
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	p.rule = "rollout-without-readiness";
	assert_true(report_says(&p));
	p = (struct probe){ &e->d, "shop", "api", NULL, "pass" };
	assert_true(report_says(&p));
	/* The exempt namespace gets no report. */
	assert_null(ad_get_json(&e->d, "policyreports", "kube-system", REPORT_NAME));
	j = ad_get_json(&e->d, "policyreports", "shop", REPORT_NAME);
	assert_non_null(strstr(j, "\"app.kubernetes.io/managed-by\":\"rollgate\""));
	assert_non_null(strstr(j, "\"rollgate.io/results-digest\":\"sha256:"));
	free(j);
	ad_begin(&e->d);
	assert_string_equal(e->d.patches[0].ctype, "application/apply-patch+yaml");
	assert_string_equal(e->d.patches[0].query, "fieldManager=rollgate&force=true");
	ad_end(&e->d);

	put_deploy(&e->d, "shop", "web", true);
	p = (struct probe){ &e->d, "shop", "web", NULL, "pass" };
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	p = (struct probe){ &e->d, "shop", "web", "mutable-image-tag", "warn" };
	assert_false(report_says(&p));

	ad_delete(&e->d, "deployments", "shop", "web");
	p = (struct probe){ &e->d, "shop", "web", NULL, NULL };
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	p = (struct probe){ &e->d, "shop", "api", NULL, "pass" };
	assert_true(report_says(&p));
	assert_int_equal(writes_of(&e->d, "shop", &gap, NULL, 0), 3);
	printf("3 writes of shop's report, at least %.2f s apart (interval 0.5 s)\n", gap);
	assert_true(gap >= INTERVAL_MS / 1000.0 - 0.02);
}

static bool patches_at_least(void *arg)
{
	struct env *e = arg;

	return ad_patch_count(&e->d) >= 2;
}

/* A restart reads the reports back and writes only what changed. */
static void test_restart_writes_nothing_new(void **state)
{
	struct env *e = *state;
	struct probe p = { &e->d, "shop", "web", "mutable-image-tag", "warn" };
	struct probe q = { &e->d, "other", "late", NULL, "pass" };
	double gap;

	put_deploy(&e->d, "shop", "web", false);
	put_deploy(&e->d, "other", "svc", true);
	replica_up(&e->a, &e->d, "a", NULL, NULL);
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	assert_true(tu_wait_for(patches_at_least, e, WAIT_MS));
	replica_down(&e->a, true);
	assert_int_equal(ad_patch_count(&e->d), 2);

	replica_up(&e->a, &e->d, "a2", NULL, NULL);
	assert_true(tu_wait_for(synced, e->a.rc, WAIT_MS));
	/* A change elsewhere: once it is written, the controller has read
	 * back and compared every namespace. */
	put_deploy(&e->d, "other", "late", true);
	assert_true(tu_wait_for(report_says, &q, WAIT_MS));
	assert_int_equal(writes_of(&e->d, "shop", &gap, NULL, 0), 1);
	assert_int_equal(writes_of(&e->d, "other", &gap, NULL, 0), 2);
}

/* A Canary's result follows its target Deployment. */
static void test_canary_follows_target(void **state)
{
	struct env *e = *state;
	struct probe p = { &e->d, "shop", "podinfo-canary", "canary-without-readiness", "fail" };

	put_deploy(&e->d, "shop", "podinfo", false);
	assert_true(
		ad_put(&e->d, "canaries", "shop", "podinfo-canary",
		       "{\"spec\":{\"targetRef\":{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
		       "\"name\":\"podinfo\"}}}") > 0);
	replica_up(&e->a, &e->d, "a", NULL, NULL);
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	put_deploy(&e->d, "shop", "podinfo", true);
	p = (struct probe){ &e->d, "shop", "podinfo-canary", NULL, "pass" };
	/* Both the Canary and its Deployment pass now. */
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	p.rule = "canary-without-readiness";
	p.want = "fail";
	assert_false(report_says(&p));

	/* A target that cannot be looked up is an error, not a pass; the
	 * lookup is tried again. */
	atomic_store(&e->d.get_fail, 1);
	assert_true(ad_put(&e->d, "canaries", "shop", "podinfo-canary",
			   "{\"metadata\":{\"labels\":{\"v\":\"2\"}},\"spec\":{\"targetRef\":{"
			   "\"apiVersion\":\"apps/"
			   "v1\",\"kind\":\"Deployment\",\"name\":\"podinfo\"}}}") > 0);
	p.want = "error";
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	atomic_store(&e->d.get_fail, 0);
	p = (struct probe){ &e->d, "shop", "podinfo-canary", NULL, "pass" };
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	p.rule = "canary-without-readiness";
	p.want = "error";
	assert_false(report_says(&p));
}

static double local_metric(const char *prefix)
{
	char *m = metrics_render(), line[300], *at;
	double v = -1;

	snprintf(line, sizeof(line), "\n%s", prefix);
	at = m ? strstr(m, line) : NULL;
	if (at)
		v = strtod(at + strlen(line), NULL);
	free(m);
	return v;
}

static bool crd_missing_counted(void *arg)
{
	double *before = arg;

	return local_metric("rollgate_report_crd_missing_total ") > *before;
}

/* Without the CRD: one log line, counted, nothing written; the workloads
 * are still evaluated (the metric of results counts them). */
static void test_crd_missing(void **state)
{
	struct env *e = *state;
	double before = local_metric("rollgate_report_crd_missing_total ");

	e->d.no_policyreports = true;
	put_deploy(&e->d, "shop", "web", false);
	replica_up(&e->a, &e->d, "a", NULL, NULL);
	assert_true(tu_wait_for(crd_missing_counted, &before, WAIT_MS));
	usleep(3 * INTERVAL_MS * 1000);
	assert_int_equal(ad_patch_count(&e->d), 0);
	assert_true(local_metric("rollgate_report_crd_missing_total ") == before + 1);
	assert_true(local_metric("rollgate_report_results{rule=\"mutable-image-tag\",result=\"warn\"}"
				 " ") >= 1);
}

static bool either_leads(void *arg)
{
	struct env *e = arg;

	return lease_is_leader(e->a.api.lease) || lease_is_leader(e->b.api.lease);
}

/* Two replicas share one Lease: only the holder writes; when it steps
 * down the other takes over and writes what changed since. */
static void test_leader_handover(void **state)
{
	struct env *e = *state;
	struct lease_options lo;
	struct replica *leader, *other;
	struct probe p = { &e->d, "shop", "web", "mutable-image-tag", "warn" };
	char tokens[16][128];
	size_t n;
	double gap;

	ad_lease_options(&lo);
	put_deploy(&e->d, "shop", "web", false);
	replica_up(&e->a, &e->d, "replica-a", NULL, &lo);
	replica_up(&e->b, &e->d, "replica-b", NULL, &lo);
	assert_true(tu_wait_for(either_leads, e, WAIT_MS));
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	leader = lease_is_leader(e->a.api.lease) ? &e->a : &e->b;
	other = leader == &e->a ? &e->b : &e->a;
	n = writes_of(&e->d, "shop", &gap, tokens, 16);
	assert_int_equal(n, 1);
	assert_string_equal(tokens[0], leader->api.token);

	replica_down(leader, true); /* gives the lease up */
	put_deploy(&e->d, "shop", "web", true);
	p = (struct probe){ &e->d, "shop", "web", NULL, "pass" };
	assert_true(tu_wait_for(report_says, &p, WAIT_MS));
	n = writes_of(&e->d, "shop", &gap, tokens, 16);
	assert_int_equal(n, 2);
	assert_string_equal(tokens[1], other->api.token);
}

/* ---- memory: rollgate serve with 10,000 workloads ---- */

/* n Deployments in 100 namespaces, as an API server would hold them
 * (managedFields, status); every other one breaks two rules. */
static void put_many(struct ad *d, unsigned n)
{
	char json[4096], ns[32], name[32];

	ad_begin(d);
	for (unsigned i = 0; i < n; i++) {
		bool bad = i % 2 == 0;
		snprintf(ns, sizeof(ns), "team-%02u", i % 100);
		snprintf(name, sizeof(name), "svc-%05u", i);
		snprintf(json, sizeof(json),
			 "{\"metadata\":{\"labels\":{\"app\":\"%s\",\"team\":\"%s\"},"
			 "\"annotations\":{\"deployment.kubernetes.io/revision\":\"3\"},"
			 "\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":"
			 "\"Update\",\"apiVersion\":\"apps/v1\",\"time\":\"2024-05-01T10:00:00Z\","
			 "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:replicas\":{},"
			 "\"f:template\":{\"f:spec\":{\"f:containers\":{}}}}}}]},"
			 "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
			 "\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":"
			 "\"25%%\","
			 "\"maxUnavailable\":\"25%%\"}},\"template\":{\"metadata\":{\"labels\":{"
			 "\"app\":\"%s\"}},"
			 "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"%s\",\"ports\":"
			 "[{\"containerPort\":8080}],\"env\":[{\"name\":\"MODE\",\"value\":\"prod\"}],"
			 "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}%s}]}}},"
			 "\"status\":{\"replicas\":3,\"readyReplicas\":3,\"observedGeneration\":3}}",
			 name, ns, name, name,
			 bad ? "registry.example.com/app:latest" : "registry.example.com/app:1.4.2",
			 bad ? ""
			     : ",\"readinessProbe\":{\"httpGet\":{\"path\":\"/"
			       "ready\",\"port\":8080}}");
		ad_put_locked(d, "deployments", ns, name, json);
	}
	ad_compact_locked(d); /* no history: the double holds each object once */
	ad_end(d);
}

static bool all_reports(void *arg)
{
	struct ad *d = arg;
	size_t n = 0;

	ad_begin(d);
	for (size_t i = 0; i < d->n_objs; i++)
		n += strcmp(d->objs[i].k->res, "policyreports") == 0;
	ad_end(d);
	return n == 100;
}

static bool log_synced(void *arg)
{
	struct env *e = arg;

	return h_log_has(&e->srv, "reload controller synced");
}

static bool log_reports_synced(void *arg)
{
	struct env *e = arg;

	return h_log_has(&e->srv, "report controller synced");
}

/* Starts serve with reports on or off, waits until it holds every
 * workload, and returns its VmRSS in KiB. */
static long serve_rss(struct env *e, bool reports, unsigned n)
{
	struct ad_serve_files files;
	char name[64], yaml[128];
	const char *args[16];
	long rss;

	snprintf(name, sizeof(name), "reports-%d.yaml", reports);
	snprintf(yaml, sizeof(yaml), "reports:\n  enabled: %s\n  interval: 1s\n",
		 reports ? "true" : "false");
	ad_serve_files(&files, &e->d, tu_certdir, "serve-token", name, yaml);
	args[0] = "--tls-cert";
	args[1] = files.cert;
	args[2] = "--tls-key";
	args[3] = files.key;
	args[4] = "--kubeconfig";
	args[5] = files.kc;
	args[6] = "--lease-namespace";
	args[7] = "rollgate";
	args[8] = "--config";
	args[9] = files.config;
	args[10] = "--log-level";
	args[11] = "info";
	args[12] = NULL;
	assert_int_equal(h_start(&e->srv, tu_certdir, args), 0);
	assert_true(tu_wait_for(log_synced, e, 120000));
	if (reports) {
		assert_true(tu_wait_for(log_reports_synced, e, 120000));
		assert_true(tu_wait_for(all_reports, &e->d, 120000));
	}
	usleep(1500 * 1000);
	rss = tu_proc_kib(e->srv.pid, "VmRSS:");
	printf("rollgate serve, %u Deployments, reports %s: VmRSS %ld KiB (%.1f MiB), VmHWM %ld KiB\n",
	       n, reports ? "on " : "off", rss, rss / 1024.0, tu_proc_kib(e->srv.pid, "VmHWM:"));
	assert_int_equal(h_stop(&e->srv, SIGTERM, 30), 0);
	e->srv.pid = 0;
	ad_serve_files_remove(&files);
	return rss;
}

/*
 * 10,000 workloads cost at most 32 MiB more with reports than without:
 * the same `rollgate serve` on the same double, measured twice. Under ASan
 * memory figures mean nothing: fewer workloads run the same path and
 * nothing is asserted.
 */
static void test_memory_10k_workloads(void **state)
{
	struct env *e = *state;
	long off, on;
#ifdef RG_ASAN
	const unsigned n = 2000;
#else
	const unsigned n = 10000;
#endif

	if (!h_bin()) {
		printf("[  SKIP    ] ROLLGATE_BIN not set\n");
		return;
	}
	put_many(&e->d, n);
	off = serve_rss(e, false, n);
	on = serve_rss(e, true, n);
	printf("memory: reports for %u workloads cost %ld KiB (%.1f MiB)%s\n", n, on - off,
	       (on - off) / 1024.0,
#ifdef RG_ASAN
	       " [ASan build: not meaningful]"
#else
	       ""
#endif
	);
#ifndef RG_ASAN
	assert_true(off > 0 && on > 0);
	assert_true(on - off <= 32 * 1024);
#endif
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
	size_t len = 0;
	cJSON *arr, *o;

	snprintf(path, sizeof(path), "%s/objects.json", dir);
	text = tu_read_file(path, &len);
	arr = text ? tu_json_or_null(text, len) : NULL;
	free(text);
	if (!cJSON_IsArray(arr)) {
		fprintf(stderr, "serve: %s: not a JSON list\n", path);
		cJSON_Delete(arr);
		return -1;
	}
	cJSON_ArrayForEach(o, arr) {
		char *obj = cJSON_PrintUnformatted(json_get(o, "object"));
		unsigned long long rv = obj
			? ad_put(d, json_get_string(o, "resource"), json_get_string(o, "namespace"),
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
			d.max_limit = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--expire-continue") == 0 && i + 1 < argc)
			atomic_store(&d.expire_continue, (int)strtol(argv[++i], NULL, 10));
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
	if (serve_load(&d, dir) < 0 ||
	    ad_write_kubeconfig(&d, dir, path, "cli-token", NULL, true) < 0 ||
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

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items_map_modes),
		cmocka_unit_test(test_items_skip_and_pass),
		cmocka_unit_test(test_items_message_capped),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_render_capped),
		cmocka_unit_test(test_config_keys),
		T(test_violation_fix_delete),
		T(test_restart_writes_nothing_new),
		T(test_canary_follows_target),
		T(test_crd_missing),
		T(test_leader_handover),
		T(test_memory_10k_workloads),
	};

	if (argc >= 3 && strcmp(argv[1], "--serve") == 0)
		return serve_main(argc, argv);
	tu_setup_from_env();
	return cmocka_run_group_tests(tests, tu_certs_group_setup, tu_certs_group_teardown);
}
