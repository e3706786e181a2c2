/* Tests for kinds: the table of Kubernetes kinds agrees with itself and
 * with the API's own objects, lookups find a kind by group and kind in any
 * version, and the flags name the kinds the docs promise. */
#include "testutil.h"

#include <ctype.h>
#include <glob.h>

#include "jsonutil.h"
#include "kinds.h"

/* Each row: its index, API names derived the way the API derives them,
 * and a lookup by its own names that finds it again. */
static void test_rows_consistent(void **state)
{
	for (int i = 0; i < KIND_COUNT; i++) {
		const struct kind *k = kinds_get((enum kind_id)i);
		char want[128], lower[64];
		size_t n;

		assert_non_null(k);
		assert_int_equal(k->id, i);
		if (*k->group)
			snprintf(want, sizeof(want), "%s/%s", k->group, k->version);
		else
			snprintf(want, sizeof(want), "%s", k->version);
		assert_string_equal(k->api_version, want);
		snprintf(want, sizeof(want), "%s/%s", *k->group ? "/apis" : "/api", k->api_version);
		assert_string_equal(k->api_path, want);
		/* kubectl's singular name is the lower-case kind, the plural
		 * the singular made plural. */
		for (n = 0; k->kind[n] && n + 1 < sizeof(lower); n++)
			lower[n] = (char)tolower((unsigned char)k->kind[n]);
		lower[n] = '\0';
		assert_string_equal(k->singular, lower);
		assert_memory_equal(k->resource, k->singular, strlen(k->singular) - 1);
		assert_ptr_equal(kinds_by_group_kind(k->group, k->kind), k);
		assert_ptr_equal(kinds_by_kind(k->api_version, k->kind), k);
		/* Stamped and template-judged kinds have a template. */
		if (k->flags & (KIND_STAMPED | KIND_TEMPLATE_JUDGED))
			assert_int_equal(k->template, KIND_TEMPLATE_SPEC);
	}
	assert_null(kinds_get(KIND_COUNT));
	assert_null(kinds_get((enum kind_id) - 1));
}

static void test_lookup(void **state)
{
	const struct kind *dep = kinds_get(KIND_DEPLOYMENT), *cm = kinds_get(KIND_CONFIGMAP);

	/* Any version of the group; kinds are case-sensitive. */
	assert_ptr_equal(kinds_by_kind("apps/v1beta2", "Deployment"), dep);
	assert_ptr_equal(kinds_by_kind("apps/", "Deployment"), dep);
	assert_ptr_equal(kinds_by_group_kind("apps", "Deployment"), dep);
	assert_ptr_equal(kinds_by_kind("v1", "ConfigMap"), cm);
	assert_ptr_equal(kinds_by_group_kind("", "ConfigMap"), cm);
	assert_null(kinds_by_kind("apps/v1", "deployment"));
	assert_null(kinds_by_kind("extensions/v1beta1", "Deployment"));
	/* "apps" without a version is the core group. */
	assert_null(kinds_by_kind("apps", "Deployment"));
	assert_null(kinds_by_kind("v1", "Deployment"));
	assert_null(kinds_by_group_kind("app", "Deployment"));
	assert_null(kinds_by_group_kind("apps.example.com", "Deployment"));
	assert_null(kinds_by_kind("argoproj.io/v1alpha1", "Canary"));
	assert_null(kinds_by_kind("v1", "Pod"));
	assert_null(kinds_by_kind(NULL, "Deployment"));
	assert_null(kinds_by_kind("apps/v1", NULL));
	assert_null(kinds_by_group_kind(NULL, "ConfigMap"));
	assert_false(kinds_has(NULL, KIND_STAMPED));
	assert_true(kinds_has(dep, KIND_STAMPED | KIND_OWNS_REPLICASETS));
	assert_false(kinds_has(kinds_get(KIND_STATEFULSET), KIND_STAMPED | KIND_OWNS_REPLICASETS));
}

/* The kinds README.md and docs/rules.md name, by flag. */
static void test_flag_sets(void **state)
{
	static const struct {
		unsigned flag;
		const char *want;
	} sets[] = {
		{ KIND_STAMPED, "Deployment StatefulSet DaemonSet Rollout" },
		{ KIND_JUDGED, "Deployment StatefulSet DaemonSet ReplicaSet Rollout Canary" },
		{ KIND_TEMPLATE_JUDGED, "Deployment StatefulSet DaemonSet Rollout" },
		{ KIND_OWNS_REPLICASETS, "Deployment Rollout" },
		{ KIND_CONFIG, "ConfigMap Secret" },
		{ KIND_CUSTOM, "Rollout Canary" },
	};

	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		char got[256] = "";
		for (int i = 0; i < KIND_COUNT; i++) {
			const struct kind *k = kinds_get((enum kind_id)i);
			if (!kinds_has(k, sets[s].flag))
				continue;
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", *got ? " " : "",
				 k->kind);
		}
		assert_string_equal(got, sets[s].want);
	}
}

static void test_template(void **state)
{
	cJSON *dep = tu_parse("{'spec': {'template': {'spec': {}}}}");
	cJSON *wrong = tu_parse("{'spec': {'template': []}}");
	cJSON *ref = tu_parse("{'spec': {'workloadRef': {'kind': 'Deployment'}}}");

	assert_ptr_equal(kinds_template(kinds_get(KIND_DEPLOYMENT), dep),
			 cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(dep, "spec"), "template"));
	assert_null(kinds_template(kinds_get(KIND_DEPLOYMENT), wrong));
	assert_null(kinds_template(kinds_get(KIND_ROLLOUT), ref));
	assert_null(kinds_template(kinds_get(KIND_FLAGGER_CANARY), dep));
	assert_null(kinds_template(kinds_get(KIND_CONFIGMAP), dep));
	assert_null(kinds_template(NULL, dep));
	cJSON_Delete(dep);
	cJSON_Delete(wrong);
	cJSON_Delete(ref);
}

/* The API's own round-trip fixtures (GROUP.VERSION.KIND.json, "core" for
 * the core group): every kind of the table among them is found from the
 * object's apiVersion and kind, with that version, and its template is
 * where the table says. */
static void test_corpus_objects(void **state)
{
	const char *corpus = tu_corpus();
	char pattern[4200];
	size_t matched = 0;
	glob_t g;

	if (!corpus)
		skip();
	snprintf(pattern, sizeof(pattern), "%s/upstream/kubernetes-api/*.json", corpus);
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		size_t len;
		char *text = tu_read_file(g.gl_pathv[i], &len), err[200];
		cJSON *obj = NULL;
		const char *api, *kind;
		const struct kind *k;

		assert_non_null(text);
		if (json_parse_strict(text, len, &obj, err, sizeof(err)) < 0)
			fail_msg("%s: %s", g.gl_pathv[i], err);
		api = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "apiVersion"));
		kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "kind"));
		k = kinds_by_kind(api, kind);
		if (k) {
			matched++;
			assert_string_equal(k->api_version, api);
			assert_true((kinds_template(k, obj) != NULL) ==
				    (k->template != KIND_TEMPLATE_NONE));
		}
		cJSON_Delete(obj);
		free(text);
	}
	globfree(&g);
	/* Deployment, ReplicaSet, StatefulSet, DaemonSet, ConfigMap, Secret. */
	assert_int_equal(matched, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_consistent), cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_flag_sets),       cmocka_unit_test(test_template),
		cmocka_unit_test(test_corpus_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
