/* Tests for refs: every reference form, per-key precision, union rules,
 * ignored forms, wrong types, limits, and the upstream API fixtures. */
#include "testutil.h"

#include <glob.h>

#include "jsonutil.h"
#include "refs.h"

/* Collects from a pod spec literal; asserts success. */
static void collect_ok(const char *podspec, struct refset *set)
{
	char err[256] = "";
	cJSON *spec = tu_parse(podspec);

	if (refs_collect(spec, set, err, sizeof(err)) != 0)
		fail_msg("refs_collect failed: %s", err);
	cJSON_Delete(spec);
	refs_finish(set);
}

/* Collects and expects failure with exactly this message. */
static void collect_err(const char *podspec, const char *want)
{
	struct refset set = { 0 };
	char err[256] = "";
	cJSON *spec = tu_parse(podspec);

	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	cJSON_Delete(spec);
	refs_clear(&set);
}

static const struct ref *find(const struct refset *set, enum obj_kind kind, const char *name)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->refs[i].kind == kind && strcmp(set->refs[i].name, name) == 0)
			return &set->refs[i];
	}
	return NULL;
}

/* Asserts a ref's key list equals the NULL-terminated list. */
static void assert_keys(const struct ref *r, const char *const *keys)
{
	size_t n = 0;

	assert_false(r->whole);
	while (keys[n])
		n++;
	assert_int_equal(r->n_keys, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r->keys[i], keys[i]);
}

/* ---- each form in each container list ---------------------------------- */

struct form {
	const char *json; /* the container's env or envFrom member */
	enum obj_kind kind;
	const char *key; /* selected key, or NULL for whole */
};

static const struct form container_forms[] = {
	{ "'env':[{'name':'E','valueFrom':{'configMapKeyRef':{'name':'obj','key':'k1'}}}]",
	  OBJ_CONFIGMAP, "k1" },
	{ "'env':[{'name':'E','valueFrom':{'secretKeyRef':{'name':'obj','key':'k2'}}}]", OBJ_SECRET,
	  "k2" },
	{ "'envFrom':[{'configMapRef':{'name':'obj'}}]", OBJ_CONFIGMAP, NULL },
	{ "'envFrom':[{'prefix':'P_','secretRef':{'name':'obj'}}]", OBJ_SECRET, NULL },
};

static void test_container_forms(void **state)
{
	static const char *const lists[][2] = {
		{ "containers", "container \"c\"" },
		{ "initContainers", "init container \"c\"" },
		{ "ephemeralContainers", "ephemeral container \"c\"" },
	};
	char spec[512];

	for (size_t l = 0; l < 3; l++) {
		for (size_t f = 0; f < sizeof(container_forms) / sizeof(*container_forms); f++) {
			const struct form *fm = &container_forms[f];
			struct refset set = { 0 };
			const struct ref *r;

			snprintf(spec, sizeof(spec), "{'%s':[{'name':'c','image':'i',%s}]}",
				 lists[l][0], fm->json);
			collect_ok(spec, &set);
			assert_int_equal(set.n, 1);
			r = &set.refs[0];
			assert_int_equal(r->kind, fm->kind);
			assert_string_equal(r->name, "obj");
			assert_string_equal(r->user, lists[l][1]);
			assert_false(r->optional);
			if (fm->key) {
				const char *keys[] = { fm->key, NULL };
				assert_keys(r, keys);
			} else {
				assert_true(r->whole);
				assert_int_equal(r->n_keys, 0);
			}
			refs_clear(&set);
		}
	}
}

static void test_volume_forms(void **state)
{
	/* Each form is pre + optional items + post. */
	static const struct {
		const char *pre, *post;
		enum obj_kind kind;
	} forms[] = {
		{ "'configMap':{'name':'obj'", "}", OBJ_CONFIGMAP },
		{ "'secret':{'secretName':'obj'", "}", OBJ_SECRET },
		{ "'projected':{'sources':[{'configMap':{'name':'obj'", "}}]}", OBJ_CONFIGMAP },
		{ "'projected':{'sources':[{'secret':{'name':'obj'", "}}]}", OBJ_SECRET },
	};
	char vol[256], spec[512];

	for (size_t f = 0; f < sizeof(forms) / sizeof(*forms); f++) {
		for (int with_items = 0; with_items < 2; with_items++) {
			struct refset set = { 0 };
			const struct ref *r;

			snprintf(vol, sizeof(vol), "%s%s%s", forms[f].pre,
				 with_items
					 ? ",'items':[{'key':'b','path':'b'},{'key':'a','path':'a'}]"
					 : "",
				 forms[f].post);
			snprintf(spec, sizeof(spec), "{'volumes':[{'name':'cfg',%s}]}", vol);
			collect_ok(spec, &set);
			assert_int_equal(set.n, 1);
			r = &set.refs[0];
			assert_int_equal(r->kind, forms[f].kind);
			assert_string_equal(r->name, "obj");
			assert_string_equal(r->user, "volume \"cfg\"");
			if (with_items) {
				const char *keys[] = { "a", "b", NULL };
				assert_keys(r, keys);
			} else {
				assert_true(r->whole);
			}
			refs_clear(&set);
		}
	}
}

/* A secret volume names its object in secretName; "name" there means nothing. */
static void test_secret_volume_name_field(void **state)
{
	struct refset set = { 0 };

	collect_ok("{'volumes':[{'name':'v','secret':{'name':'wrong'}}]}", &set);
	assert_int_equal(set.n, 0);
	refs_clear(&set);
}

static void test_items(void **state)
{
	struct refset set = { 0 };
	const char *ab[] = { "a", "b", NULL };

	collect_ok("{'volumes':["
		   "{'name':'v1','configMap':{'name':'empty-items','items':[]}},"
		   "{'name':'v2','configMap':{'name':'null-items','items':null}},"
		   "{'name':'v3','configMap':{'name':'some','items':[{'key':'b'},{'path':'x'},"
		   "{'key':''},{'key':'a'},{'key':'b'}]}}]}",
		   &set);
	assert_int_equal(set.n, 3);
	assert_true(find(&set, OBJ_CONFIGMAP, "empty-items")->whole);
	assert_true(find(&set, OBJ_CONFIGMAP, "null-items")->whole);
	assert_keys(find(&set, OBJ_CONFIGMAP, "some"), ab);
	refs_clear(&set);
}

/* ---- union rules ------------------------------------------------------- */

static void test_union_whole_wins(void **state)
{
	struct refset set = { 0 };
	const struct ref *r;

	/* keys first, then whole: keys are dropped */
	collect_ok("{'containers':[{'name':'web',"
		   "'env':[{'name':'A','valueFrom':{'configMapKeyRef':{'name':'cm','key':'k'}}}],"
		   "'envFrom':[{'configMapRef':{'name':'cm'}}]}],"
		   "'volumes':[{'name':'v','configMap':{'name':'cm','items':[{'key':'z'}]}}]}",
		   &set);
	assert_int_equal(set.n, 1);
	r = &set.refs[0];
	assert_true(r->whole);
	assert_int_equal(r->n_keys, 0);
	assert_null(r->keys);
	refs_clear(&set);
}

static void test_union_keys_merged(void **state)
{
	struct refset set = { 0 };
	const char *keys[] = { "A", "a", "b", "c", NULL };

	collect_ok("{'containers':[{'name':'web','env':["
		   "{'name':'X','valueFrom':{'secretKeyRef':{'name':'s','key':'c'}}},"
		   "{'name':'Y','valueFrom':{'secretKeyRef':{'name':'s','key':'a'}}}]}],"
		   "'initContainers':[{'name':'init','env':["
		   "{'name':'Z','valueFrom':{'secretKeyRef':{'name':'s','key':'c'}}}]}],"
		   "'volumes':[{'name':'v','secret':{'secretName':'s','items':[{'key':'b'},{'key':'A'}"
		   "]}},"
		   "{'name':'p','projected':{'sources':[{'secret':{'name':'s','items':[{'key':'a'}]}}]"
		   "}}]}",
		   &set);
	assert_int_equal(set.n, 1);
	assert_keys(&set.refs[0], keys);
	assert_string_equal(set.refs[0].user, "container \"web\"");
	refs_clear(&set);
}

static void test_union_optional(void **state)
{
	struct refset set = { 0 };

	collect_ok("{'containers':[{'name':'web',"
		   "'envFrom':[{'configMapRef':{'name':'all-opt','optional':true}},"
		   "{'configMapRef':{'name':'mixed','optional':true}},"
		   "{'secretRef':{'name':'none-opt','optional':false}}]}],"
		   "'volumes':[{'name':'a','configMap':{'name':'all-opt','optional':true}},"
		   "{'name':'b','configMap':{'name':'mixed'}},"
		   "{'name':'c','secret':{'secretName':'later-opt','optional':true}},"
		   "{'name':'d','projected':{'sources':[{'secret':{'name':'none-opt','optional':true}}"
		   "]}}]}",
		   &set);
	assert_int_equal(set.n, 4);
	assert_true(find(&set, OBJ_CONFIGMAP, "all-opt")->optional);
	assert_false(find(&set, OBJ_CONFIGMAP, "mixed")->optional);
	assert_false(find(&set, OBJ_SECRET, "none-opt")->optional);
	assert_true(find(&set, OBJ_SECRET, "later-opt")->optional);
	refs_clear(&set);
}

/* The first user follows the documented order, whatever the JSON order. */
static void test_first_user_order(void **state)
{
	struct refset set = { 0 };

	collect_ok("{'volumes':[{'name':'vol','configMap':{'name':'a'}},"
		   "{'name':'vol2','configMap':{'name':'b'}}],"
		   "'ephemeralContainers':[{'name':'dbg','envFrom':[{'configMapRef':{'name':'a'}}]}],"
		   "'initContainers':[{'name':'init','envFrom':[{'configMapRef':{'name':'a'}}]}],"
		   "'containers':[{'envFrom':[{'configMapRef':{'name':'c'}}]}]}",
		   &set);
	assert_string_equal(find(&set, OBJ_CONFIGMAP, "a")->user, "init container \"init\"");
	assert_string_equal(find(&set, OBJ_CONFIGMAP, "b")->user, "volume \"vol2\"");
	assert_string_equal(find(&set, OBJ_CONFIGMAP, "c")->user, "spec.template.spec.containers[0]");
	refs_clear(&set);
}

/* ---- what does not count ----------------------------------------------- */

static void test_ignored_forms(void **state)
{
	struct refset set = { 0 };

	collect_ok("{'imagePullSecrets':[{'name':'pull'}],'serviceAccountName':'sa',"
		   "'containers':[{'name':'c','env':[{'name':'A','value':'x'},"
		   "{'name':'B','valueFrom':{'fieldRef':{'fieldPath':'metadata.name'}}},"
		   "{'name':'C','valueFrom':{'secretKeyRef':{'key':'k'}}},"
		   "{'name':'D','valueFrom':{'configMapKeyRef':{'name':'no-key'}}},"
		   "{'name':'E','valueFrom':{'configMapKeyRef':{'name':'','key':'k'}}}],"
		   "'envFrom':[{'configMapRef':{}},{'secretRef':{'name':null}}]}],"
		   "'volumes':[{'name':'t','projected':{'sources':["
		   "{'serviceAccountToken':{'path':'token','audience':'a'}},"
		   "{'downwardAPI':{'items':[{'path':'labels','fieldRef':{'fieldPath':'metadata."
		   "labels'}}]}},"
		   "{'clusterTrustBundle':{'name':'ctb','path':'p'}}]}},"
		   "{'name':'d','downwardAPI':{'items':[]}},"
		   "{'name':'csi','csi':{'driver':'x','nodePublishSecretRef':{'name':'csi-secret'}}},"
		   "{'name':'rbd','rbd':{'image':'i','secretRef':{'name':'rbd-secret'}}},"
		   "{'name':'az','azureFile':{'secretName':'az-secret','shareName':'s'}}]}",
		   &set);
	assert_int_equal(set.n, 0);
	refs_clear(&set);
}

static void test_empty_podspec(void **state)
{
	struct refset set = { 0 };

	collect_ok("{}", &set);
	assert_int_equal(set.n, 0);
	collect_ok("{'containers':null,'volumes':null,'initContainers':[]}", &set);
	assert_int_equal(set.n, 0);
	refs_clear(&set);
}

/* ---- wrong shapes ------------------------------------------------------ */

static void test_wrong_types(void **state)
{
	static const char *const cases[][2] = {
		{ "{'containers':{}}", "spec.template.spec.containers: expected an array" },
		{ "{'initContainers':'x'}", "spec.template.spec.initContainers: expected an array" },
		{ "{'containers':[{'name':'a'},3]}",
		  "spec.template.spec.containers[1]: expected an object" },
		{ "{'containers':[{'name':7}]}",
		  "spec.template.spec.containers[0].name: expected a string" },
		{ "{'containers':[{},{'env':[{'valueFrom':{'configMapKeyRef':{'name':1,'key':'k'}}}]}]"
		  "}",
		  "spec.template.spec.containers[1].env[0].valueFrom.configMapKeyRef.name: expected a "
		  "string" },
		{ "{'containers':[{'env':[{'valueFrom':{'secretKeyRef':{'name':'s','key':['k']}}}]}]}",
		  "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key: expected a "
		  "string" },
		{ "{'containers':[{'env':{}}]}",
		  "spec.template.spec.containers[0].env: expected an array" },
		{ "{'containers':[{'env':['x']}]}",
		  "spec.template.spec.containers[0].env[0]: expected an object" },
		{ "{'containers':[{'env':[{'valueFrom':[]}]}]}",
		  "spec.template.spec.containers[0].env[0].valueFrom: expected an object" },
		{ "{'ephemeralContainers':[{'envFrom':[{'secretRef':'s'}]}]}",
		  "spec.template.spec.ephemeralContainers[0].envFrom[0].secretRef: expected an "
		  "object" },
		{ "{'containers':[{'envFrom':[{'configMapRef':{'name':'c','optional':'yes'}}]}]}",
		  "spec.template.spec.containers[0].envFrom[0].configMapRef.optional: expected a "
		  "boolean" },
		{ "{'volumes':[{'name':'v','secret':{'secretName':true}}]}",
		  "spec.template.spec.volumes[0].secret.secretName: expected a string" },
		{ "{'volumes':[{'name':'v','configMap':{'name':'c','items':{}}}]}",
		  "spec.template.spec.volumes[0].configMap.items: expected an array" },
		{ "{'volumes':[{'name':'v','configMap':{'name':'c','items':[{'key':5}]}}]}",
		  "spec.template.spec.volumes[0].configMap.items[0].key: expected a string" },
		{ "{'volumes':[{'name':'v','projected':{'sources':{}}}]}",
		  "spec.template.spec.volumes[0].projected.sources: expected an array" },
		{ "{'volumes':[{'name':'v','projected':{'sources':[{'secret':{'name':'s','items':[1]}}"
		  "]}}]}",
		  "spec.template.spec.volumes[0].projected.sources[0].secret.items[0]: expected an "
		  "object" },
		{ "{'volumes':[{'name':['v']}]}",
		  "spec.template.spec.volumes[0].name: expected a string" },
		{ "{'volumes':[{'name':'v','configMap':{'name':'a\\nb'}}]}",
		  "spec.template.spec.volumes[0].configMap.name: contains a control character" },
		{ "{'containers':[{'env':[{'valueFrom':{'configMapKeyRef':{'name':'a','key':'x\\ty'}}}"
		  "]}]}",
		  "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.key: contains a "
		  "control character" },
		{ "[]", "spec.template.spec: expected an object" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		collect_err(cases[i][0], cases[i][1]);
}

static void test_collect_at_prefix(void **state)
{
	struct refset set = { 0 };
	char err[256] = "";
	cJSON *spec = tu_parse("{'containers':3}");

	assert_int_equal(refs_collect_at(spec, "spec.jobTemplate.spec.template.spec", &set, err,
					 sizeof(err)),
			 -1);
	assert_string_equal(err, "spec.jobTemplate.spec.template.spec.containers: expected an array");
	assert_int_equal(refs_collect(NULL, &set, err, sizeof(err)), -1);
	assert_string_equal(err, "spec.template.spec: expected an object");
	cJSON_Delete(spec);
	refs_clear(&set);
}

/* ---- limits ------------------------------------------------------------ */

static cJSON *env_ref(const char *ref, const char *name, const char *key)
{
	cJSON *e = cJSON_CreateObject();
	cJSON *vf = cJSON_AddObjectToObject(e, "valueFrom");
	cJSON *r = cJSON_AddObjectToObject(vf, ref);

	cJSON_AddStringToObject(r, "name", name);
	cJSON_AddStringToObject(r, "key", key);
	return e;
}

/* A container with n env entries; distinct names or distinct keys. */
static cJSON *many_refs(size_t n, bool distinct_names)
{
	cJSON *spec = cJSON_CreateObject();
	cJSON *cs = cJSON_AddArrayToObject(spec, "containers");
	cJSON *c = cJSON_CreateObject();
	cJSON *env = cJSON_AddArrayToObject(c, "env");
	char s[32];

	cJSON_AddItemToArray(cs, c);
	for (size_t i = 0; i < n; i++) {
		snprintf(s, sizeof(s), "x%05zu", n - i); /* reversed: exercises insertion */
		cJSON_AddItemToArray(env,
				     env_ref("configMapKeyRef", distinct_names ? s : "cm",
					     distinct_names ? "k" : s));
	}
	return spec;
}

static void test_limits(void **state)
{
	struct refset set = { 0 };
	char err[256] = "";
	cJSON *spec;

	spec = many_refs(4096, true);
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), 0);
	assert_int_equal(set.n, 4096);
	for (size_t i = 1; i < set.n; i++)
		assert_true(strcmp(set.refs[i - 1].name, set.refs[i].name) < 0);
	refs_clear(&set);
	cJSON_Delete(spec);

	spec = many_refs(4097, true);
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 4096 ConfigMaps and Secrets"));
	assert_non_null(strstr(err, "containers[0].env[4096].valueFrom.configMapKeyRef"));
	refs_clear(&set);
	cJSON_Delete(spec);

	spec = many_refs(4096, false);
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), 0);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.refs[0].n_keys, 4096);
	refs_clear(&set);
	cJSON_Delete(spec);

	spec = many_refs(4097, false);
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 4096 keys selected from configmap \"cm\""));
	refs_clear(&set);
	cJSON_Delete(spec);
}

/* Repeating one reference many times stays one entry and stays cheap. */
static void test_repeated_reference(void **state)
{
	struct refset set = { 0 };
	char err[256] = "";
	cJSON *spec = cJSON_CreateObject();
	cJSON *cs = cJSON_AddArrayToObject(spec, "containers");
	cJSON *c = cJSON_CreateObject();
	cJSON *env = cJSON_AddArrayToObject(c, "env");

	cJSON_AddItemToArray(cs, c);
	for (int i = 0; i < 100000; i++)
		cJSON_AddItemToArray(env, env_ref("secretKeyRef", "s", "k"));
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), 0);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.refs[0].n_keys, 1);
	refs_clear(&set);
	cJSON_Delete(spec);
}

/* A huge container name is cut in `user`, so it is not copied in full per ref. */
static void test_long_user_cut(void **state)
{
	struct refset set = { 0 };
	size_t n = 10000;
	char *name = malloc(n + 1);
	char err[64];
	cJSON *spec = cJSON_CreateObject();
	cJSON *c = cJSON_CreateObject();
	cJSON *env;

	memset(name, 'n', n);
	name[n] = '\0';
	cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), c);
	cJSON_AddStringToObject(c, "name", name);
	env = cJSON_AddArrayToObject(c, "env");
	cJSON_AddItemToArray(env, env_ref("secretKeyRef", "s", "k"));
	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), 0);
	assert_int_equal(strlen(set.refs[0].user), strlen("container \"\"") + 253);
	refs_clear(&set);
	cJSON_Delete(spec);
	free(name);
}

/* ---- refs_add_list, refs_finish, refs_kind_name ------------------------- */

static void test_add_list(void **state)
{
	struct refset set = { 0 };
	const char *ann = "annotation \"configmap.reloader.stakater.com/reload\"";

	collect_ok("{'containers':[{'name':'web','env':["
		   "{'name':'A','valueFrom':{'configMapKeyRef':{'name':'b','key':'k','optional':true}}"
		   "}]}]}",
		   &set);
	assert_int_equal(refs_add_list(&set, OBJ_CONFIGMAP, " c, b,, a ,\t", ann), 0);
	assert_int_equal(refs_add_list(&set, OBJ_SECRET, "", ann), 0);
	assert_int_equal(refs_add_list(&set, OBJ_SECRET, NULL, ann), 0);
	refs_finish(&set);
	assert_int_equal(set.n, 3);
	assert_string_equal(set.refs[0].name, "a");
	assert_string_equal(set.refs[1].name, "b");
	assert_string_equal(set.refs[2].name, "c");
	assert_true(set.refs[1].whole);
	assert_false(set.refs[1].optional);
	assert_string_equal(set.refs[1].user, "container \"web\"");
	assert_string_equal(set.refs[0].user, ann);
	assert_int_equal(refs_add_list(&set, OBJ_SECRET, "ok,bad\x01name", ann), -1);
	refs_clear(&set);
}

static void test_finish_sorts(void **state)
{
	struct refset set = { 0 };
	static const struct {
		enum obj_kind kind;
		const char *name;
	} in[] = { { OBJ_SECRET, "a" },
		   { OBJ_CONFIGMAP, "b" },
		   { OBJ_CONFIGMAP, "B" },
		   { OBJ_CONFIGMAP, "\xc3\xa9" },
		   { OBJ_CONFIGMAP, "a" } };

	set.refs = calloc(5, sizeof(*set.refs));
	set.n = 5;
	for (size_t i = 0; i < 5; i++) {
		set.refs[i].kind = in[i].kind;
		set.refs[i].name = strdup(in[i].name);
		set.refs[i].whole = true;
	}
	set.refs[3].whole = false;
	set.refs[3].keys = calloc(3, sizeof(char *));
	set.refs[3].keys[0] = strdup("z");
	set.refs[3].keys[1] = strdup("\xff");
	set.refs[3].keys[2] = strdup("Z");
	set.refs[3].n_keys = 3;
	refs_finish(&set);
	assert_string_equal(set.refs[0].name, "B");
	assert_string_equal(set.refs[1].name, "a");
	assert_string_equal(set.refs[2].name, "b");
	assert_string_equal(set.refs[3].name, "\xc3\xa9"); /* bytewise: 0xc3 after 'b' */
	assert_int_equal(set.refs[4].kind, OBJ_SECRET);
	assert_string_equal(set.refs[3].keys[0], "Z");
	assert_string_equal(set.refs[3].keys[1], "z");
	assert_string_equal(set.refs[3].keys[2], "\xff");
	/* a hand-built exact-size array still grows correctly */
	assert_int_equal(refs_add_list(&set, OBJ_SECRET, "zz,0", "x"), 0);
	assert_int_equal(set.n, 7);
	assert_string_equal(set.refs[5].name, "a");
	refs_clear(&set);
	refs_clear(NULL);
	refs_finish(NULL);
}

static void test_kind_name(void **state)
{
	assert_string_equal(refs_kind_name(OBJ_CONFIGMAP), "ConfigMap");
	assert_string_equal(refs_kind_name(OBJ_SECRET), "Secret");
}

/* ---- corpus ------------------------------------------------------------ */

static void test_corpus_apps_v1(void **state)
{
	const char *corpus = tu_corpus();
	char pattern[4200];
	glob_t g;
	size_t seen = 0;

	if (!corpus)
		skip();
	snprintf(pattern, sizeof(pattern), "%s/upstream/kubernetes-api/apps.v1.*.json", corpus);
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct refset set = { 0 };
		char err[256] = "";
		size_t len = 0;
		char *buf = tu_read_file(g.gl_pathv[i], &len);
		cJSON *doc = NULL;
		const cJSON *spec;

		assert_non_null(buf);
		if (json_parse_strict(buf, len, &doc, err, sizeof(err)) < 0)
			fail_msg("%s: %s", g.gl_pathv[i], err);
		spec = json_get_path(doc, "spec", "template", "spec", NULL);
		assert_non_null(spec);
		if (refs_collect(spec, &set, err, sizeof(err)) < 0)
			fail_msg("%s: %s", g.gl_pathv[i], err);
		refs_finish(&set);
		assert_true(set.n > 0);
		assert_non_null(find(&set, OBJ_CONFIGMAP, "nameValue"));
		assert_non_null(find(&set, OBJ_SECRET, "nameValue"));
		assert_non_null(find(&set, OBJ_SECRET, "secretNameValue"));
		/* envFrom takes both whole; every reference there is optional */
		assert_true(find(&set, OBJ_CONFIGMAP, "nameValue")->whole);
		assert_true(find(&set, OBJ_SECRET, "nameValue")->optional);
		refs_clear(&set);
		cJSON_Delete(doc);
		free(buf);
		seen++;
	}
	globfree(&g);
	assert_true(seen >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_container_forms),
		cmocka_unit_test(test_volume_forms),
		cmocka_unit_test(test_secret_volume_name_field),
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_union_whole_wins),
		cmocka_unit_test(test_union_keys_merged),
		cmocka_unit_test(test_union_optional),
		cmocka_unit_test(test_first_user_order),
		cmocka_unit_test(test_ignored_forms),
		cmocka_unit_test(test_empty_podspec),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_collect_at_prefix),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_repeated_reference),
		cmocka_unit_test(test_long_user_cut),
		cmocka_unit_test(test_add_list),
		cmocka_unit_test(test_finish_sorts),
		cmocka_unit_test(test_kind_name),
		cmocka_unit_test(test_corpus_apps_v1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
