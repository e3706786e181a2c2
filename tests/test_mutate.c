/*
 * Config-hash stamping through the webhook engine: which workloads, the
 * opt-in annotations of rollgate, Wave and Reloader, patch shapes on the
 * wire, warnings, lookup failures, and the corpus.
 */
#include "testutil.h"

#include <unistd.h>
#include <openssl/evp.h>

#include "config.h"
#include "confighash.h"
#include "jsonutil.h"
#include "log.h"
#include "manifest.h"
#include "mutate.h"
#include "objsource.h"
#include "patch.h"
#include "webhook.h"

static const char *objects[] = {
	"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"app-config\","
	"\"namespace\":\"shop\"},"
	"\"data\":{\"LOG_LEVEL\":\"info\",\"MODE\":\"fast\"}}",
	"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"extra\",\"namespace\":"
	"\"shop\"},"
	"\"data\":{\"x\":\"1\"}}",
	"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"namespace\":"
	"\"shop\"},"
	"\"data\":{\"PASSWORD\":\"c2VjcmV0\"}}",
	"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ignored\","
	"\"namespace\":"
	"\"shop\",\"annotations\":{\"reloader.stakater.com/"
	"ignore\":\"true\"}},\"data\":{\"y\":\"2\"}}",
	"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"matched\","
	"\"namespace\":"
	"\"shop\",\"annotations\":{\"reloader.stakater.com/match\":\"true\"}},\"data\":{\"z\":\"3\"}}",
};

/* Result of one /mutate call. */
struct outcome {
	cJSON *doc;
	const cJSON *resp;
	char patch[4096]; /* decoded, "" when none */
	int status;
};

static struct objsource *memory_source(void)
{
	struct objsource *src = objsource_memory_new();
	char err[256];

	assert_non_null(src);
	for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
		cJSON *o = tu_json(objects[i], strlen(objects[i]));
		assert_int_equal(objsource_memory_add(src, o, err, sizeof(err)), 0);
		cJSON_Delete(o);
	}
	return src;
}

static struct config *config_with(const char *yaml)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char err[512];

	assert_non_null(cfg);
	if (yaml) {
		if (config_load_buffer("test.yaml", yaml, strlen(yaml), cfg, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	} else {
		assert_int_equal(config_defaults(cfg), 0);
	}
	return cfg;
}

static void never_called(void *arg)
{
	(void)arg;
	fail_msg("the file and memory sources answer at once");
}

static struct outcome run(struct webhook *wh, const char *op, const char *kind_group, const char *kind,
			  const char *object, const char *old_object)
{
	struct outcome o = { 0 };
	char *body = malloc(65536);
	struct webhook_call *call;
	const char *out, *b64;
	size_t len;

	snprintf(body, 65536,
		 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		 "\"uid\":\"t-1\",\"kind\":{\"group\":\"%s\",\"version\":\"v1\",\"kind\":\"%s\"},"
		 "\"namespace\":\"shop\",\"operation\":\"%s\",\"object\":%s,\"oldObject\":%s}}",
		 kind_group, kind, op, object, old_object ? old_object : "null");
	call = webhook_call_new(wh, WEBHOOK_MUTATE, body, strlen(body));
	assert_non_null(call);
	assert_int_equal(webhook_call_run(call, never_called, NULL), 0);
	o.status = webhook_call_status(call);
	out = webhook_call_body(call, &len);
	o.doc = tu_json(out, len);
	webhook_call_free(call);
	o.resp = json_get(o.doc, "response");
	b64 = json_get_string(o.resp, "patch");
	if (b64) {
		int n = EVP_DecodeBlock((unsigned char *)o.patch, (const unsigned char *)b64,
					(int)strlen(b64));
		assert_true(n > 0 && n < (int)sizeof(o.patch));
		o.patch[n] = '\0';
		while (n > 0 && o.patch[n - 1] == '\0')
			n--;
		assert_string_equal(json_get_string(o.resp, "patchType"), "JSONPatch");
	} else {
		assert_null(json_get(o.resp, "patchType"));
	}
	return o;
}

static void outcome_free(struct outcome *o)
{
	cJSON_Delete(o->doc);
}

static bool has_warning(const struct outcome *o, const char *part)
{
	const cJSON *w;

	cJSON_ArrayForEach(w, json_get(o->resp, "warnings")) {
		if (cJSON_IsString(w) && strstr(w->valuestring, part))
			return true;
	}
	return false;
}

/* A Deployment with the given metadata annotations and pod spec. */
static char *deployment(const char *annotations, const char *podspec, const char *tmpl_meta)
{
	char *s = malloc(16384);

	snprintf(s, 16384,
		 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
		 "\"annotations\":{%s}},\"spec\":{\"template\":{%s%s\"spec\":%s}}}",
		 annotations, tmpl_meta ? tmpl_meta : "", tmpl_meta ? "," : "", podspec);
	return s;
}

static const char *envfrom_app = "{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\",\"envFrom\":[{"
				 "\"configMapRef\":{\"name\":\"app-config\"}}]}]}";

struct env {
	struct objsource *src;
	struct webhook *wh;
};

static void env_open(struct env *e, const char *yaml)
{
	e->src = memory_source();
	e->wh = webhook_new(config_with(yaml), e->src);
	assert_non_null(e->wh);
}

static void env_close(struct env *e)
{
	webhook_free(e->wh);
	objsource_free(e->src);
}

/* The value the patch sets for the hash annotation, or NULL. */
static char *patched_hash(const struct outcome *o, const char *key)
{
	cJSON *ops = tu_json_or_null(o->patch, strlen(o->patch)), *doc = cJSON_CreateObject();
	char err[128], *out = NULL;

	/* Apply to a minimal workload to read the result. */
	cJSON *spec = cJSON_AddObjectToObject(doc, "spec");
	cJSON *t = cJSON_AddObjectToObject(spec, "template");
	cJSON_AddObjectToObject(t, "metadata");
	cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(t, "metadata"), "annotations");
	if (ops && patch_apply(doc, o->patch, err, sizeof(err)) == 0) {
		const char *v = json_get_string(
			json_get_path(doc, "spec", "template", "metadata", "annotations", NULL), key);
		if (v)
			out = strdup(v);
	}
	cJSON_Delete(ops);
	cJSON_Delete(doc);
	return out;
}

static void test_opt_in_annotations(void **state)
{
	const char *optins[] = {
		"\"rollgate.io/reload\":\"true\"",
		"\"wave.pusher.com/update-on-config-change\":\"true\"",
		"\"reloader.stakater.com/auto\":\"true\"",
		"\"configmap.reloader.stakater.com/auto\":\"true\"",
		"\"configmap.reloader.stakater.com/reload\":\"extra\"",
		"\"rollgate.io/configmaps\":\"extra\"",
	};
	struct env e;

	(void)state;
	env_open(&e, NULL);
	for (size_t i = 0; i < sizeof(optins) / sizeof(optins[0]); i++) {
		char *d = deployment(optins[i], envfrom_app, NULL);
		struct outcome o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
		assert_int_equal(o.status, 200);
		assert_true(cJSON_IsTrue(json_get(o.resp, "allowed")));
		if (!strstr(o.patch, "rollgate.io/config-hash"))
			fail_msg("not stamped with %s", optins[i]);
		outcome_free(&o);
		free(d);
	}
	/* Not opted in, and opted out: untouched. */
	const char *outs[] = { "", "\"rollgate.io/reload\":\"false\"",
			       "\"reloader.stakater.com/auto\":\"false\"" };
	for (size_t i = 0; i < 3; i++) {
		char *d = deployment(outs[i], envfrom_app, NULL);
		struct outcome o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
		assert_string_equal(o.patch, "");
		outcome_free(&o);
		free(d);
	}
	env_close(&e);
}

static void test_stamp_mode_all_and_prefix(void **state)
{
	struct env e;
	char *d;
	struct outcome o;

	(void)state;
	env_open(&e, "annotationPrefix: example.com\nstamp:\n  mode: all\n");
	d = deployment("", envfrom_app, NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_non_null(strstr(o.patch, "\"example.com/config-hash\":\"sha256:"));
	outcome_free(&o);
	free(d);
	d = deployment("\"example.com/reload\":\"false\"", envfrom_app, NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_string_equal(o.patch, "");
	outcome_free(&o);
	free(d);
	env_close(&e);
}

static void test_kinds(void **state)
{
	struct env e;
	char *d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL);
	const char *kinds[][2] = { { "apps", "StatefulSet" },
				   { "apps", "DaemonSet" },
				   { "argoproj.io", "Rollout" } };
	struct outcome o;

	(void)state;
	env_open(&e, NULL);
	for (size_t i = 0; i < 3; i++) {
		o = run(e.wh, "CREATE", kinds[i][0], kinds[i][1], d, NULL);
		assert_non_null(strstr(o.patch, "config-hash"));
		outcome_free(&o);
	}
	/* UPDATE too; DELETE, ReplicaSets and Rollouts with workloadRef never. */
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	assert_non_null(strstr(o.patch, "config-hash"));
	outcome_free(&o);
	o = run(e.wh, "DELETE", "apps", "Deployment", "null", d);
	assert_string_equal(o.patch, "");
	outcome_free(&o);
	o = run(e.wh, "CREATE", "apps", "ReplicaSet", d, NULL);
	assert_string_equal(o.patch, "");
	outcome_free(&o);
	o = run(e.wh, "CREATE", "argoproj.io", "Rollout",
		"{\"metadata\":{\"annotations\":{\"rollgate.io/reload\":\"true\"}},"
		"\"spec\":{\"workloadRef\":{\"apiVersion\":\"apps/"
		"v1\",\"kind\":\"Deployment\",\"name\":\"web\"}}}",
		NULL);
	assert_string_equal(o.patch, "");
	assert_true(cJSON_IsTrue(json_get(o.resp, "allowed")));
	outcome_free(&o);
	env_close(&e);
	free(d);
}

static void test_patch_shapes_and_idempotence(void **state)
{
	struct env e;
	char *d, *hash, meta[512];
	struct outcome o;

	(void)state;
	env_open(&e, NULL);
	/* No template metadata: the whole map is added. */
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_non_null(strstr(o.patch, "\"op\":\"add\",\"path\":\"/spec/template/metadata\""));
	hash = patched_hash(&o, "rollgate.io/config-hash");
	assert_non_null(hash);
	outcome_free(&o);
	free(d);
	/* Metadata without annotations. */
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app,
		       "\"metadata\":{\"labels\":{\"a\":\"b\"}}");
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_non_null(strstr(o.patch, "\"path\":\"/spec/template/metadata/annotations\""));
	outcome_free(&o);
	free(d);
	/* Other annotations are kept: only the key is added. */
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app,
		       "\"metadata\":{\"annotations\":{\"team\":\"x\"}}");
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_non_null(strstr(
		o.patch, "\"path\":\"/spec/template/metadata/annotations/rollgate.io~1config-hash\""));
	assert_null(strstr(o.patch, "team"));
	outcome_free(&o);
	free(d);
	/* Already right: no patch, on CREATE and UPDATE. */
	snprintf(meta, sizeof(meta),
		 "\"metadata\":{\"annotations\":{\"rollgate.io/config-hash\":\"%s\"}}", hash);
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, meta);
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	assert_string_equal(o.patch, "");
	outcome_free(&o);
	free(d);
	/* Stale value is replaced. */
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app,
		       "\"metadata\":{\"annotations\":{\"rollgate.io/config-hash\":\"sha256:old\"}}");
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	char *again = patched_hash(&o, "rollgate.io/config-hash");
	assert_string_equal(again, hash);
	free(again);
	outcome_free(&o);
	free(d);
	/* Nothing referenced any more: the stale hash goes. */
	d = deployment("\"rollgate.io/reload\":\"true\"",
		       "{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\"}]}",
		       "\"metadata\":{\"annotations\":{\"rollgate.io/config-hash\":\"sha256:old\"}}");
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	assert_non_null(strstr(o.patch, "\"op\":\"remove\""));
	outcome_free(&o);
	free(d);
	free(hash);
	env_close(&e);
}

static void test_hash_selects_keys(void **state)
{
	struct env e;
	char *a, *b, *ha, *hb;
	struct outcome o;

	(void)state;
	env_open(&e, NULL);
	/* A key ref reads only its key: different hash from the whole object. */
	a = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL);
	b = deployment("\"rollgate.io/reload\":\"true\"",
		       "{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\",\"env\":[{\"name\":\"L\","
		       "\"valueFrom\":"
		       "{\"configMapKeyRef\":{\"name\":\"app-config\",\"key\":\"LOG_LEVEL\"}}}]}]}",
		       NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", a, NULL);
	ha = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	o = run(e.wh, "CREATE", "apps", "Deployment", b, NULL);
	hb = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	assert_non_null(ha);
	assert_non_null(hb);
	assert_string_not_equal(ha, hb);
	free(ha);
	free(hb);
	free(a);
	free(b);
	env_close(&e);
}

static void test_missing_objects_warn(void **state)
{
	struct env e;
	char *d;
	struct outcome o;

	(void)state;
	env_open(&e, NULL);
	d = deployment("\"rollgate.io/reload\":\"true\"",
		       "{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\",\"envFrom\":["
		       "{\"configMapRef\":{\"name\":\"not-yet\"}},{\"secretRef\":{\"name\":\"maybe\","
		       "\"optional\":true}}]}]}",
		       NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_true(cJSON_IsTrue(json_get(o.resp, "allowed")));
	/* Absent objects still hash (creating them later changes the hash). */
	assert_non_null(strstr(o.patch, "config-hash"));
	assert_true(has_warning(
		&o, "configmap \"not-yet\" referenced by container \"web\" does not exist yet"));
	assert_false(has_warning(&o, "maybe"));
	outcome_free(&o);
	free(d);
	env_close(&e);
}

/* The hash /mutate stamps on a CREATE of a Deployment with these
 * annotations and configMapRefs (envFrom), malloc'd; NULL when none. */
static char *hash_of(struct env *e, const char *ann, const char *cm_a, const char *cm_b)
{
	char spec[512], *d, *h;
	struct outcome o;

	snprintf(spec, sizeof(spec),
		 "{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\",\"envFrom\":["
		 "{\"configMapRef\":{\"name\":\"%s\"}}%s%s%s]}]}",
		 cm_a, cm_b ? ",{\"configMapRef\":{\"name\":\"" : "", cm_b ? cm_b : "",
		 cm_b ? "\"}}" : "");
	d = deployment(ann, spec, NULL);
	o = run(e->wh, "CREATE", "apps", "Deployment", d, NULL);
	h = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	free(d);
	return h;
}

static void test_object_annotations_decide(void **state)
{
	const char *auto_ = "\"reloader.stakater.com/auto\":\"true\"";
	const char *search = "\"reloader.stakater.com/search\":\"true\"";
	char *with, *without, *listed;
	struct env e;

	(void)state;
	env_open(&e, NULL);
	/* An object carrying reloader.stakater.com/ignore never joins. */
	with = hash_of(&e, auto_, "app-config", "ignored");
	without = hash_of(&e, auto_, "app-config", NULL);
	assert_non_null(with);
	assert_string_equal(with, without);
	free(with);
	free(without);
	/* Under search only objects carrying match join: app-config does not. */
	with = hash_of(&e, search, "app-config", "matched");
	listed = hash_of(&e, "\"configmap.reloader.stakater.com/reload\":\"matched\"", "matched",
			 NULL);
	assert_non_null(with);
	assert_string_equal(with, listed);
	free(listed);
	/* A search that matches nothing stamps no hash. */
	assert_null(hash_of(&e, search, "app-config", NULL));
	/* With auto the same objects hash differently: match is not needed. */
	without = hash_of(&e, auto_, "app-config", "matched");
	assert_string_not_equal(with, without);
	free(with);
	free(without);
	env_close(&e);
}

/* Applies the outcome's patch to the object text; returns the result. */
static cJSON *patched(const struct outcome *o, const char *object)
{
	cJSON *doc = NULL;
	char err[256];

	if (json_parse_strict(object, strlen(object), &doc, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	if (o->patch[0] && patch_apply(doc, o->patch, err, sizeof(err)) < 0)
		fail_msg("patch does not apply: %s: %s", err, o->patch);
	return doc;
}

static void test_hold_until_config_exists(void **state)
{
	const char *missing =
		"{\"schedulerName\":\"custom\",\"containers\":[{\"name\":\"web\","
		"\"image\":\"a:1\",\"envFrom\":[{\"configMapRef\":{\"name\":\"not-yet\"}},"
		"{\"configMapRef\":{\"name\":\"app-config\"}}]}]}";
	const char *present = "{\"schedulerName\":\"rollgate.io/hold\",\"containers\":[{\"name\":"
			      "\"web\",\"image\":\"a:1\",\"envFrom\":[{\"configMapRef\":{\"name\":"
			      "\"app-config\"}}]}]}";
	const cJSON *ann, *spec;
	struct outcome o;
	struct env e;
	cJSON *doc;
	char *d;

	(void)state;
	/* Off by default: a missing object only warns. */
	env_open(&e, NULL);
	d = deployment("\"reloader.stakater.com/auto\":\"true\"", missing, NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_null(strstr(o.patch, "schedulerName"));
	outcome_free(&o);
	env_close(&e);

	env_open(&e, "stamp: {holdUntilConfigExists: true}");
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_true(has_warning(&o,
				"new pods are held (schedulerName rollgate.io/hold) until "
				"configmap \"not-yet\" exists"));
	doc = patched(&o, d);
	spec = json_get_path(doc, "spec", "template", "spec", NULL);
	ann = json_get_path(doc, "metadata", "annotations", NULL);
	assert_string_equal(json_get_string(spec, "schedulerName"), "rollgate.io/hold");
	assert_string_equal(json_get_string(ann, "rollgate.io/held-scheduler"), "custom");
	assert_non_null(json_get_string(json_get_path(doc, "spec", "template", "metadata",
						      "annotations", NULL),
					"rollgate.io/config-hash"));
	cJSON_Delete(doc);
	outcome_free(&o);
	/* Held already: the same write changes nothing about the hold. */
	free(d);
	d = deployment("\"reloader.stakater.com/auto\":\"true\",\"rollgate.io/held-scheduler\":"
		       "\"custom\"",
		       "{\"schedulerName\":\"rollgate.io/hold\",\"containers\":[{\"name\":\"web\","
		       "\"image\":\"a:1\",\"envFrom\":[{\"configMapRef\":{\"name\":\"not-yet\"}}]}]}",
		       NULL);
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	assert_null(strstr(o.patch, "schedulerName"));
	assert_null(strstr(o.patch, "held-scheduler"));
	outcome_free(&o);
	free(d);
	/* Nothing missing any more: the original scheduler comes back. */
	d = deployment("\"reloader.stakater.com/auto\":\"true\",\"rollgate.io/held-scheduler\":"
		       "\"custom\"",
		       present, NULL);
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	doc = patched(&o, d);
	assert_string_equal(json_get_string(json_get_path(doc, "spec", "template", "spec", NULL),
					    "schedulerName"),
			    "custom");
	assert_null(json_get_string(json_get_path(doc, "metadata", "annotations", NULL),
				    "rollgate.io/held-scheduler"));
	cJSON_Delete(doc);
	outcome_free(&o);
	free(d);
	/* A hold Wave placed, with no scheduler before it, is released too. */
	d = deployment("\"wave.pusher.com/update-on-config-change\":\"true\",\"wave.pusher.com/"
		       "scheduling-disabled\":\"\"",
		       "{\"schedulerName\":\"wave.pusher.com/invalid\",\"containers\":[{\"name\":"
		       "\"web\",\"image\":\"a:1\",\"envFrom\":[{\"configMapRef\":{\"name\":"
		       "\"app-config\"}}]}]}",
		       NULL);
	o = run(e.wh, "UPDATE", "apps", "Deployment", d, d);
	doc = patched(&o, d);
	assert_null(json_get(json_get_path(doc, "spec", "template", "spec", NULL), "schedulerName"));
	assert_null(json_get_string(json_get_path(doc, "metadata", "annotations", NULL),
				    "wave.pusher.com/scheduling-disabled"));
	cJSON_Delete(doc);
	outcome_free(&o);
	free(d);
	env_close(&e);
}

static void test_restart_strategy_keeps_hash_on_rollout(void **state)
{
	const char *obj =
		"{\"apiVersion\":\"argoproj.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{"
		"\"name\":\"web\",\"annotations\":{\"reloader.stakater.com/auto\":\"true\","
		"\"reloader.stakater.com/rollout-strategy\":\"restart\"}},\"spec\":{"
		"\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\","
		"\"envFrom\":[{\"configMapRef\":{\"name\":\"app-config\"}}]}]}}}}";
	struct outcome o;
	struct env e;
	cJSON *doc;

	(void)state;
	env_open(&e, NULL);
	o = run(e.wh, "CREATE", "argoproj.io", "Rollout", obj, NULL);
	doc = patched(&o, obj);
	assert_non_null(json_get_string(json_get_path(doc, "metadata", "annotations", NULL),
					"rollgate.io/config-hash"));
	assert_null(strstr(o.patch, "/spec/template"));
	cJSON_Delete(doc);
	outcome_free(&o);
	env_close(&e);
}

/* A source whose every lookup fails, like an API answering 403. */
static int failing_resolve(void *impl, struct lookup_batch *b, unsigned t, lookup_done_fn done,
			   void *arg)
{
	(void)impl, (void)t, (void)done, (void)arg;
	for (size_t i = 0; i < b->n; i++) {
		b->items[i].status = LOOKUP_ERROR;
		snprintf(b->items[i].reason, sizeof(b->items[i].reason),
			 "HTTP 403 from the API server");
	}
	return 0;
}

static void failing_destroy(void *impl)
{
	(void)impl;
}

static void test_lookup_failure_never_stamps_wrong(void **state)
{
	static const struct objsource_ops ops = { failing_resolve, NULL, failing_destroy };
	struct objsource src = { &ops, NULL, "failing" };
	struct webhook *wh = webhook_new(config_with(NULL), &src);
	char *d, *old;
	struct outcome o;

	(void)state;
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL);
	o = run(wh, "CREATE", "apps", "Deployment", d, NULL);
	assert_true(cJSON_IsTrue(json_get(o.resp, "allowed")));
	assert_string_equal(o.patch, "");
	assert_true(has_warning(&o, "config hash not updated"));
	outcome_free(&o);
	/* An update that dropped the hash keeps the one it had, so a failed
	 * lookup never starts a rollout. */
	old = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app,
			 "\"metadata\":{\"annotations\":{\"rollgate.io/"
			 "config-hash\":\"sha256:kept\"}}");
	o = run(wh, "UPDATE", "apps", "Deployment", d, old);
	char *kept = patched_hash(&o, "rollgate.io/config-hash");
	assert_non_null(kept);
	assert_string_equal(kept, "sha256:kept");
	free(kept);
	outcome_free(&o);
	free(old);
	free(d);
	webhook_free(wh);
}

static void test_hmac_key_changes_hash(void **state)
{
	char keyfile[] = "/tmp/rollgate-hmac-XXXXXX", yaml[256];
	struct env a, b;
	char *d, *ha, *hb;
	struct outcome o;
	int fd = mkstemp(keyfile);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123\n", 21), 21);
	close(fd);
	snprintf(yaml, sizeof(yaml), "stamp:\n  hmacKeyFile: %s\n", keyfile);
	env_open(&a, NULL);
	env_open(&b, yaml);
	d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL);
	o = run(a.wh, "CREATE", "apps", "Deployment", d, NULL);
	ha = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	o = run(b.wh, "CREATE", "apps", "Deployment", d, NULL);
	hb = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	assert_non_null(ha);
	assert_non_null(hb);
	assert_string_not_equal(ha, hb);
	assert_int_equal(strncmp(hb, "sha256:", 7), 0);
	free(ha);
	free(hb);
	free(d);
	env_close(&a);
	env_close(&b);
	unlink(keyfile);
}

/* mutate_hash gives the value mutate_finish stamps, and says when there is
 * none (nothing referenced) or it cannot be known (a failed lookup). */
static void test_mutate_hash_alone(void **state)
{
	struct env e;
	struct config *cfg = config_with(NULL);
	struct admission_request req;
	struct stamp_plan plan;
	struct refset none = { 0 };
	struct lookup_batch empty = { "shop", NULL, 0 };
	char *d = deployment("\"rollgate.io/reload\":\"true\"", envfrom_app, NULL), *stamped;
	char review[20000], err[256], value[CONFIGHASH_VALUE_LEN], small[16];
	struct outcome o;

	(void)state;
	env_open(&e, NULL);
	o = run(e.wh, "CREATE", "apps", "Deployment", d, NULL);
	stamped = patched_hash(&o, "rollgate.io/config-hash");
	outcome_free(&o);
	assert_non_null(stamped);
	snprintf(review, sizeof(review),
		 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		 "\"uid\":\"t-1\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":"
		 "\"Deployment\"},"
		 "\"namespace\":\"shop\",\"operation\":\"CREATE\",\"object\":%s}}",
		 d);
	assert_int_equal(admission_decode(review, strlen(review), &req, err, sizeof(err)), 0);
	assert_int_equal(mutate_plan(cfg, &req, &plan, err, sizeof(err)), 0);
	assert_true(plan.applies);
	/* Not answered yet: unknown. */
	assert_int_equal(mutate_hash(cfg, &plan.refs, &plan.batch, value, sizeof(value)),
			 MUTATE_HASH_UNKNOWN);
	assert_int_equal(objsource_resolve(e.src, &plan.batch, 1000, never_called, NULL), 0);
	assert_int_equal(mutate_hash(cfg, &plan.refs, &plan.batch, value, sizeof(value)),
			 MUTATE_HASH_OK);
	assert_string_equal(value, stamped);
	assert_int_equal(mutate_hash(cfg, &plan.refs, &plan.batch, small, sizeof(small)),
			 MUTATE_HASH_ERROR);
	assert_int_equal(mutate_hash(cfg, &none, &empty, value, sizeof(value)), MUTATE_HASH_NONE);
	assert_string_equal(value, "");
	plan.batch.items[0].status = LOOKUP_ERROR;
	assert_int_equal(mutate_hash(cfg, &plan.refs, &plan.batch, value, sizeof(value)),
			 MUTATE_HASH_UNKNOWN);
	stamp_plan_clear(&plan);
	admission_request_clear(&req);
	config_clear(cfg);
	free(cfg);
	free(stamped);
	free(d);
	env_close(&e);
}

/* ---- corpus: every workload that references configuration gets a hash ---- */

struct corpus_ctx {
	struct webhook *wh;
	int workloads, stamped, referencing;
};

static bool references_config(const cJSON *n)
{
	static const char *keys[] = { "configMap",    "secret",       "configMapKeyRef",
				      "secretKeyRef", "configMapRef", "secretRef" };
	for (; n; n = n->next) {
		for (size_t i = 0; n->string && i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(n->string, keys[i]) == 0)
				return true;
		if (references_config(n->child))
			return true;
	}
	return false;
}

static int corpus_object(cJSON *obj, const char *file, int line, void *arg)
{
	struct corpus_ctx *c = arg;
	const char *kind = json_get_string(obj, "kind"), *api = json_get_string(obj, "apiVersion");
	const cJSON *tmpl = json_get_path(obj, "spec", "template", NULL);
	char *json;
	struct outcome o;

	if (!kind || !api || !tmpl)
		return 0;
	if (strcmp(kind, "Deployment") && strcmp(kind, "StatefulSet") && strcmp(kind, "DaemonSet") &&
	    strcmp(kind, "Rollout"))
		return 0;
	c->workloads++;
	json = cJSON_PrintUnformatted(obj);
	o = run(c->wh, "CREATE", strcmp(kind, "Rollout") == 0 ? "argoproj.io" : "apps", kind, json,
		NULL);
	assert_int_equal(o.status, 200);
	assert_true(cJSON_IsTrue(json_get(o.resp, "allowed")));
	if (references_config(json_get(tmpl, "spec"))) {
		c->referencing++;
		if (!strstr(o.patch, "config-hash"))
			fail_msg("%s:%d: %s references configuration but got no hash", file, line,
				 kind);
		c->stamped++;
	}
	outcome_free(&o);
	free(json);
	return 0;
}

static void test_corpus(void **state)
{
	const char *corpus = tu_corpus();
	char path[4200], err[512];
	struct corpus_ctx c = { 0 };
	struct objsource *src = objsource_memory_new();

	(void)state;
	if (!corpus) {
		objsource_free(src);
		skip();
	}
	c.wh = webhook_new(config_with("stamp:\n  mode: all\n"), src);
	snprintf(path, sizeof(path), "%s/manifests", corpus);
	assert_int_equal(manifest_read_tree(path, corpus_object, &c, err, sizeof(err)), 0);
	printf("corpus: %d workloads, %d reference configuration, %d stamped\n", c.workloads,
	       c.referencing, c.stamped);
	assert_true(c.workloads > 10);
	assert_true(c.referencing > 0);
	webhook_free(c.wh);
	objsource_free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_in_annotations),
		cmocka_unit_test(test_stamp_mode_all_and_prefix),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_patch_shapes_and_idempotence),
		cmocka_unit_test(test_hash_selects_keys),
		cmocka_unit_test(test_missing_objects_warn),
		cmocka_unit_test(test_lookup_failure_never_stamps_wrong),
		cmocka_unit_test(test_hmac_key_changes_hash),
		cmocka_unit_test(test_mutate_hash_alone),
		cmocka_unit_test(test_object_annotations_decide),
		cmocka_unit_test(test_hold_until_config_exists),
		cmocka_unit_test(test_restart_strategy_keeps_hash_on_rollout),
		cmocka_unit_test(test_corpus),
	};
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
