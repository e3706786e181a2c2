/* Tests for pipeline: loading sets of manifests (lines, documents, List
 * kinds, kustomization files), the synthetic CREATE review, stamping that
 * keeps everything but the annotation, and the corpus under stamp mode all. */
#include "testutil.h"

#include <stdbool.h>
#include <unistd.h>

#include "jsonutil.h"
#include "log.h"
#include "cliutil.h"
#include "pipeline.h"

#define FX "tests/fixtures/cli"

static void load_buffer_ok(struct mset *m, const char *text)
{
	char err[512] = "";

	if (mset_load_buffer(m, "mem.yaml", text, strlen(text), err, sizeof(err)) != 0)
		fail_msg("mset_load_buffer: %s", err);
}

static void open_engine(struct engine *e, const char *config_text)
{
	char err[512] = "", path[] = "/tmp/rollgate-pipeline-XXXXXX";
	int fd;

	if (!config_text) {
		if (engine_open(e, NULL, NULL, NULL, err, sizeof(err)) != 0)
			fail_msg("engine_open: %s", err);
		return;
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, config_text, strlen(config_text)), (ssize_t)strlen(config_text));
	close(fd);
	if (engine_open(e, path, NULL, NULL, err, sizeof(err)) != 0)
		fail_msg("engine_open: %s", err);
	unlink(path);
}

static const char *name_of(const cJSON *obj)
{
	return json_get_string(json_get(obj, "metadata"), "name");
}

static void test_load_lines_and_documents(void **state)
{
	static const char text[] =
		"---\n"                                                   /* 1 */
		"# empty\n"                                               /* 2 */
		"---\n"                                                   /* 3 */
		"apiVersion: v1\n"                                        /* 4 */
		"kind: ConfigMap\n"                                       /* 5 */
		"metadata: {name: a}\n"                                   /* 6 */
		"---\n"                                                   /* 7 */
		"apiVersion: v1\n"                                        /* 8 */
		"kind: List\n"                                            /* 9 */
		"items:\n"                                                /* 10 */
		"- apiVersion: v1\n"                                      /* 11 */
		"  kind: ConfigMap\n"                                     /* 12 */
		"  metadata: {name: b}\n"                                 /* 13 */
		"- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n" /* 14 */
		"---\n"                                                   /* 15 */
		"{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"d\"}}\n";
	struct mset m = { 0 };

	(void)state;
	load_buffer_ok(&m, text);
	assert_int_equal(m.n_files, 1);
	assert_int_equal(m.files[0].docs.n, 3);
	assert_int_equal(m.n_objs, 4);
	assert_string_equal(name_of(m.objs[0].obj), "a");
	assert_int_equal(m.objs[0].line, 4);
	assert_int_equal(m.objs[0].doc, 0);
	assert_string_equal(name_of(m.objs[1].obj), "b");
	assert_int_equal(m.objs[1].line, 11);
	assert_int_equal(m.objs[1].doc, 1);
	assert_string_equal(name_of(m.objs[2].obj), "c");
	assert_int_equal(m.objs[2].line, 14);
	assert_int_equal(m.objs[2].doc, 1);
	assert_string_equal(name_of(m.objs[3].obj), "d");
	assert_int_equal(m.objs[3].line, 16);
	assert_int_equal(m.objs[3].doc, 2);
	assert_string_equal(m.objs[3].file, "mem.yaml");
	mset_clear(&m);
	mset_clear(&m); /* freeing twice is harmless: it zeroes the set */
}

static void test_load_errors(void **state)
{
	struct mset m = { 0 };
	char err[512] = "";
	static const char notmap[] =
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- x\n";
	static const char bad[] = "a: b\nc: [d\n";

	(void)state;
	assert_int_equal(mset_load_buffer(&m, "x.yaml", notmap, strlen(notmap), err, sizeof(err)), -1);
	assert_string_equal(err, "x.yaml:5: a manifest must be a mapping");
	mset_clear(&m);
	assert_int_equal(mset_load_buffer(&m, "y.yaml", bad, strlen(bad), err, sizeof(err)), -1);
	assert_true(strncmp(err, "y.yaml:3: ", 10) == 0);
	mset_clear(&m);
}

static void test_load_paths_skips_kustomization(void **state)
{
	char *paths[] = { FX "/fail" }, *named[] = { FX "/fail/sub/kustomization.yaml" };
	struct mset m = { 0 };
	char err[512] = "";

	(void)state;
	if (mset_load_paths(&m, paths, 1, err, sizeof(err)) != 0)
		fail_msg("mset_load_paths: %s", err);
	assert_int_equal(m.n_files, 2);
	assert_int_equal(m.n_skipped, 1);
	assert_int_equal(m.n_objs, 4);
	assert_string_equal(m.files[1].name, FX "/fail/sub/history.yml");
	mset_clear(&m);
	/* Named on the command line it is read, and it is not an object. */
	assert_int_equal(mset_load_paths(&m, named, 1, err, sizeof(err)), 0);
	assert_int_equal(m.n_skipped, 0);
	assert_int_equal(m.n_objs, 1);
	mset_clear(&m);
}

/* The review pipeline_request builds, for one object literal. */
static int request_for(const char *json, struct admission_request *req, cJSON **obj, char *err,
		       size_t errlen)
{
	char perr[128];

	if (json_parse_strict(json, strlen(json), obj, perr, sizeof(perr)) < 0)
		fail_msg("bad test JSON: %s", perr);
	return pipeline_request(*obj, req, err, errlen);
}

static void test_request(void **state)
{
	static const struct {
		const char *api, *kind, *group, *version, *resource;
	} cases[] = {
		{ "apps/v1", "Deployment", "apps", "v1", "deployments" },
		{ "networking.k8s.io/v1", "NetworkPolicy", "networking.k8s.io", "v1",
		  "networkpolicies" },
		{ "networking.k8s.io/v1", "Ingress", "networking.k8s.io", "v1", "ingresses" },
		{ "gateway.networking.k8s.io/v1", "Gateway", "gateway.networking.k8s.io", "v1",
		  "gateways" },
		{ "v1", "ConfigMap", "", "v1", "configmaps" },
		{ "flagger.app/v1beta1", "Canary", "flagger.app", "v1beta1", "canaries" },
	};
	struct admission_request req;
	char json[512], err[256];
	cJSON *obj;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json),
			 "{\"apiVersion\":\"%s\",\"kind\":\"%s\",\"metadata\":{\"name\":\"n\","
			 "\"namespace\":\"ns\"}}",
			 cases[i].api, cases[i].kind);
		if (request_for(json, &req, &obj, err, sizeof(err)) != 0)
			fail_msg("%s: %s", cases[i].kind, err);
		assert_string_equal(req.group, cases[i].group);
		assert_string_equal(req.version, cases[i].version);
		assert_string_equal(req.kind, cases[i].kind);
		assert_string_equal(req.resource, cases[i].resource);
		assert_string_equal(req.name, "n");
		assert_string_equal(req.namespace_, "ns");
		assert_int_equal(req.operation, OP_CREATE);
		assert_string_equal(req.username, "rollgate-check");
		/* A reference to obj, not a copy: same members, same nodes. */
		assert_ptr_equal(req.object->child, obj->child);
		assert_null(req.old_object);
		admission_request_clear(&req);
		cJSON_Delete(obj);
	}
}

static void test_request_errors(void **state)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{\"apiVersion\":\"v1\",\"metadata\":{}}", "object has no kind" },
		{ "{\"apiVersion\":\"v1\",\"kind\":3}", "kind must be a non-empty string" },
		{ "{\"apiVersion\":\"v1\",\"kind\":\"\"}", "kind must be a non-empty string" },
		{ "{\"kind\":\"ConfigMap\"}", "object has no apiVersion" },
		{ "{\"apiVersion\":true,\"kind\":\"ConfigMap\"}",
		  "apiVersion must be a non-empty string" },
		{ "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":[]}",
		  "metadata must be a mapping" },
	};
	struct admission_request req;
	char err[256];
	cJSON *obj;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(request_for(cases[i].json, &req, &obj, err, sizeof(err)), -1);
		assert_string_equal(err, cases[i].want);
		cJSON_Delete(obj);
	}
}

/* Removes the config-hash annotation stamp added (and the annotations
 * object when stamp created it). */
static void unstamp(cJSON *obj, bool had_annotations)
{
	cJSON *md = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"),
						 "template"),
		"metadata");
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");

	assert_non_null(cJSON_GetObjectItemCaseSensitive(ann, "rollgate.io/config-hash"));
	cJSON_DeleteItemFromObjectCaseSensitive(ann, "rollgate.io/config-hash");
	if (!had_annotations)
		cJSON_DeleteItemFromObjectCaseSensitive(md, "annotations");
}

static bool has_template_annotations(const cJSON *obj)
{
	return json_get_path(obj, "spec", "template", "metadata", "annotations", NULL) != NULL;
}

/* Stamps every object of path; the emitted YAML reads back as the stamped
 * tree, and the stamped tree minus the annotation is the input. */
static void stamp_round_trip(const char *path, size_t want_stamped)
{
	char *paths[] = { (char *)path };
	struct mset m = { 0 }, orig = { 0 };
	struct engine e;
	char err[512] = "";
	size_t stamped = 0;

	assert_int_equal(mset_load_paths(&m, paths, 1, err, sizeof(err)), 0);
	assert_int_equal(mset_load_paths(&orig, paths, 1, err, sizeof(err)), 0);
	open_engine(&e, NULL);
	assert_int_equal(pipeline_add_objects(&e, &m, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < m.n_objs; i++) {
		struct admission_response resp;
		bool had = has_template_annotations(m.objs[i].obj);
		struct yaml_docs back;
		char *y;

		admission_response_init(&resp);
		if (pipeline_stamp(&e, m.objs[i].obj, &resp, err, sizeof(err)) != 0)
			fail_msg("pipeline_stamp: %s", err);
		y = yamljson_emit(m.objs[i].obj);
		assert_non_null(y);
		assert_int_equal(yamljson_load(y, strlen(y), &back, err, sizeof(err)), 0);
		assert_int_equal(back.n, 1);
		assert_true(cJSON_Compare(back.docs[0].root, m.objs[i].obj, 1));
		yamljson_clear(&back);
		free(y);
		if (resp.patch) {
			stamped++;
			unstamp(m.objs[i].obj, had);
		}
		assert_true(cJSON_Compare(m.objs[i].obj, orig.objs[i].obj, 1));
		admission_response_clear(&resp);
	}
	assert_int_equal(stamped, want_stamped);
	engine_close(&e);
	mset_clear(&m);
	mset_clear(&orig);
}

static void test_stamp_keeps_everything_else(void **state)
{
	(void)state;
	stamp_round_trip(FX "/stamp/app.yaml", 1);
	stamp_round_trip(FX "/stamp/odd.yaml", 1);
	stamp_round_trip(FX "/yaml/anchors.yaml", 0); /* not opted in */
}

static void test_stamp_refs(void **state)
{
	static const char text[] =
		"apiVersion: apps/v1\nkind: Deployment\n"
		"metadata: {name: w, annotations: {rollgate.io/reload: 'true'}}\n"
		"spec:\n  template:\n    spec:\n      containers:\n"
		"      - {name: c, envFrom: [{secretRef: {name: s}}, {configMapRef: {name: m}}]}\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: plain}\n"
		"spec:\n  template:\n    spec:\n      containers:\n"
		"      - {name: c, envFrom: [{configMapRef: {name: m}}]}\n";
	struct mset m = { 0 };
	struct refset refs;
	struct engine e;
	char err[256];

	(void)state;
	load_buffer_ok(&m, text);
	open_engine(&e, NULL);
	assert_int_equal(pipeline_stamp_refs(&e, m.objs[0].obj, &refs, err, sizeof(err)), 0);
	assert_int_equal(refs.n, 2);
	assert_int_equal(refs.refs[0].kind, OBJ_CONFIGMAP);
	assert_string_equal(refs.refs[0].name, "m");
	assert_int_equal(refs.refs[1].kind, OBJ_SECRET);
	assert_string_equal(refs.refs[1].name, "s");
	refs_clear(&refs);
	/* Not opted in: nothing would be hashed. */
	assert_int_equal(pipeline_stamp_refs(&e, m.objs[1].obj, &refs, err, sizeof(err)), 0);
	assert_int_equal(refs.n, 0);
	refs_clear(&refs);
	engine_close(&e);
	mset_clear(&m);
}

/* A Flagger Canary is judged on its target, looked up among the set. */
static void test_check_flagger_target(void **state)
{
	static const char text[] =
		"apiVersion: flagger.app/v1beta1\nkind: Canary\n"
		"metadata: {name: podinfo, namespace: test}\n"
		"spec: {targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\n"
		"spec:\n  template:\n    spec:\n      containers:\n      - {name: web, image: "
		"'p:1.0'}\n";
	struct mset m = { 0 };
	struct engine e;
	struct verdict v;
	char err[256];
	bool found = false;

	(void)state;
	load_buffer_ok(&m, text);
	open_engine(&e, NULL);
	assert_int_equal(pipeline_add_objects(&e, &m, 0, err, sizeof(err)), 0);
	assert_int_equal(pipeline_check(&e, m.objs[0].obj, &v, err, sizeof(err)), 0);
	for (size_t i = 0; i < v.n; i++) {
		if (v.v[i].rule == RULE_CANARY_WITHOUT_READINESS) {
			found = true;
			assert_int_equal(v.v[i].mode, MODE_ENFORCE);
			assert_non_null(strstr(v.v[i].message, "podinfo"));
		}
	}
	assert_true(found);
	verdict_clear(&v);
	engine_close(&e);
	mset_clear(&m);
}

/* The pipeline's notes are the webhook's warnings less the violations'
 * own messages: here a skip note and the count past RULES_MAX_PER_RULE. The
 * webhook's response for the same object names the same rules. */
static void test_notes_match_webhook(void **state)
{
	char text[8192] = "apiVersion: apps/v1\nkind: Deployment\n"
			  "metadata: {name: web, annotations: {rollgate.io/skip: nope}}\n"
			  "spec:\n  template:\n    spec:\n      containers:\n";
	struct mset m = { 0 };
	struct engine e;
	struct verdict v;
	struct rules_lines notes;
	struct admission_response resp;
	char err[256];

	(void)state;
	for (int i = 0; i < 40; i++) {
		size_t n = strlen(text);
		snprintf(text + n, sizeof(text) - n, "      - {name: c%d, image: 'x:1'}\n", i);
	}
	load_buffer_ok(&m, text);
	open_engine(&e, NULL);
	assert_int_equal(pipeline_add_objects(&e, &m, 0, err, sizeof(err)), 0);
	assert_int_equal(pipeline_check(&e, m.objs[0].obj, &v, err, sizeof(err)), 0);
	assert_int_equal(v.n, RULES_MAX_PER_RULE);
	assert_int_equal(pipeline_notes(&v, &notes), 0);
	assert_int_equal(notes.n, 2);
	assert_string_equal(notes.l[0].text, "rollout-without-readiness: 8 more violations not shown");
	assert_int_equal(notes.l[0].rule, RULE_ROLLOUT_WITHOUT_READINESS);
	assert_non_null(strstr(notes.l[1].text, "unknown rule IDs \"nope\""));
	assert_int_equal(notes.l[1].rule, RULE_COUNT);
	admission_response_init(&resp);
	assert_int_equal(rules_decide(&v, &resp), 0);
	assert_int_equal(resp.n_warnings, RULES_WARN_PER_RULE + 2);
	assert_string_equal(resp.warnings[RULES_WARN_PER_RULE],
			    "rollout-without-readiness: 37 more violations not shown");
	assert_string_equal(resp.warnings[RULES_WARN_PER_RULE + 1], notes.l[1].text);
	admission_response_clear(&resp);
	rules_lines_clear(&notes);
	verdict_clear(&v);
	engine_close(&e);
	mset_clear(&m);
}

/* Objects lookups cannot use block the stamps that need them, and only those. */
static void test_stamp_blocker(void **state)
{
	static const char text[] =
		"apiVersion: v1\nkind: Secret\nmetadata: {name: enc, namespace: a}\n"
		"data: {k: 'ENC[AES256_GCM,data:x]'}\n"
		"---\n"
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gen, namespace: a,\n"
		"  annotations: {internal.config.kubernetes.io/needsHashSuffix: enabled}}\n"
		"data: {k: v}\n"
		"---\n"
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {k: v}\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\n"
		"metadata: {name: w1, namespace: a, annotations: {rollgate.io/reload: 'true'}}\n"
		"spec: {template: {spec: {containers: [{name: c, envFrom: [{secretRef: {name: "
		"enc}}]}]}}}\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\n"
		"metadata: {name: w2, namespace: b, annotations: {rollgate.io/reload: 'true'}}\n"
		"spec: {template: {spec: {containers: [{name: c, envFrom: [{secretRef: {name: "
		"enc}}]}]}}}\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\n"
		"metadata: {name: w3, namespace: a, annotations: {rollgate.io/reload: 'true'}}\n"
		"spec: {template: {spec: {containers: [{name: c, envFrom: [{configMapRef: {name: "
		"gen}},\n"
		"  {configMapRef: {name: ok}}]}]}}}\n";
	struct mset m = { 0 };
	const struct pobj *b;
	struct engine e;
	char err[256];

	(void)state;
	load_buffer_ok(&m, text);
	open_engine(&e, NULL);
	assert_int_equal(pipeline_add_objects(&e, &m, 0, err, sizeof(err)), 0);
	assert_non_null(m.objs[0].unusable);
	assert_string_equal(m.objs[0].unusable, "data[\"k\"]: invalid base64");
	assert_null(m.objs[1].unusable); /* only with PIPELINE_DEFER_SUFFIXED */
	assert_null(m.objs[2].unusable);
	assert_true(pipeline_renamed_later(m.objs[1].obj));
	assert_false(pipeline_renamed_later(m.objs[2].obj));
	assert_int_equal(pipeline_stamp_blocker(&e, &m, m.objs[3].obj, &b, err, sizeof(err)), 0);
	assert_ptr_equal(b, &m.objs[0]);
	/* Another namespace's Secret of that name is not this one. */
	assert_int_equal(pipeline_stamp_blocker(&e, &m, m.objs[4].obj, &b, err, sizeof(err)), 0);
	assert_null(b);
	assert_int_equal(pipeline_stamp_blocker(&e, &m, m.objs[5].obj, &b, err, sizeof(err)), 0);
	assert_null(b);
	engine_close(&e);

	open_engine(&e, NULL);
	assert_int_equal(pipeline_add_objects(&e, &m, PIPELINE_DEFER_SUFFIXED, err, sizeof(err)), 0);
	assert_non_null(m.objs[1].unusable);
	assert_int_equal(pipeline_stamp_blocker(&e, &m, m.objs[5].obj, &b, err, sizeof(err)), 0);
	assert_ptr_equal(b, &m.objs[1]);
	engine_close(&e);
	mset_clear(&m);
}

static bool is_stamped_workload(const cJSON *obj)
{
	const char *api = json_get_string(obj, "apiVersion"), *kind = json_get_string(obj, "kind");

	if (!api || !kind || !cJSON_IsObject(json_get_path(obj, "spec", "template", NULL)))
		return false;
	if (strcmp(api, "apps/v1") == 0)
		return strcmp(kind, "Deployment") == 0 || strcmp(kind, "StatefulSet") == 0 ||
			strcmp(kind, "DaemonSet") == 0;
	return strncmp(api, "argoproj.io/", 12) == 0 && strcmp(kind, "Rollout") == 0;
}

/* Every Deployment, StatefulSet, DaemonSet and Rollout of the corpus that
 * references a ConfigMap or Secret is stamped under stamp mode all. */
static void test_corpus_stamp_all(void **state)
{
	const char *corpus = tu_corpus();
	char *paths[1];
	struct mset m = { 0 };
	struct engine e;
	char err[512] = "";
	size_t with_refs = 0;

	(void)state;
	if (!corpus)
		return;
	paths[0] = (char *)corpus;
	if (mset_load_paths(&m, paths, 1, err, sizeof(err)) != 0)
		fail_msg("corpus: %s", err);
	open_engine(&e, "stamp: {mode: all}\n");
	assert_int_equal(pipeline_add_objects(&e, &m, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < m.n_objs; i++) {
		if (m.objs[i].unusable)
			fail_msg("%s:%d: not usable for lookups: %s", m.objs[i].file, m.objs[i].line,
				 m.objs[i].unusable);
	}
	for (size_t i = 0; i < m.n_objs; i++) {
		struct admission_response resp;
		struct refset refs;
		cJSON *obj = m.objs[i].obj;
		const char *hash;

		if (pipeline_stamp_refs(&e, obj, &refs, err, sizeof(err)) != 0)
			fail_msg("%s:%d: %s", m.objs[i].file, m.objs[i].line, err);
		assert_true(refs.n == 0 || is_stamped_workload(obj));
		if (refs.n > 0)
			with_refs++;
		admission_response_init(&resp);
		if (pipeline_stamp(&e, obj, &resp, err, sizeof(err)) != 0)
			fail_msg("%s:%d: %s", m.objs[i].file, m.objs[i].line, err);
		hash = json_get_string(json_get_path(obj, "spec", "template", "metadata",
						     "annotations", NULL),
				       "rollgate.io/config-hash");
		if (refs.n > 0 && (!hash || strncmp(hash, "sha256:", 7) != 0 || strlen(hash) != 71))
			fail_msg("%s:%d: %s/%s references %zu objects but got no hash", m.objs[i].file,
				 m.objs[i].line, json_get_string(obj, "kind"), name_of(obj), refs.n);
		refs_clear(&refs);
		admission_response_clear(&resp);
	}
	printf("[  INFO    ] %zu corpus workloads reference ConfigMaps or Secrets; all stamped\n",
	       with_refs);
	assert_true(with_refs >= 10);
	engine_close(&e);
	mset_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_lines_and_documents),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_paths_skips_kustomization),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_request_errors),
		cmocka_unit_test(test_stamp_keeps_everything_else),
		cmocka_unit_test(test_stamp_refs),
		cmocka_unit_test(test_check_flagger_target),
		cmocka_unit_test(test_notes_match_webhook),
		cmocka_unit_test(test_stamp_blocker),
		cmocka_unit_test(test_corpus_stamp_all),
	};

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT); /* the corpus defines some objects twice */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
