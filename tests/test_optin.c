/*
 * The decision table of what joins a workload's hash (optin.h): every row
 * of Reloader's and Wave's annotation set and of the reload.* flags, read
 * through mutate_plan as /mutate, the reload controller, stamp and check
 * read it. Each case lists the references that must join, in hash order,
 * as "kind:name:how" (how: keys "k1+k2", "whole", or "match" for a whole
 * reference that joins only an object carrying reloader.stakater.com/match).
 */
#include "testutil.h"

#include "admission.h"
#include "config.h"
#include "jsonutil.h"
#include "mutate.h"
#include "optin.h"

/* Uses app-config (keys A, B), other-config (whole, optional), db (Secret,
 * key PASSWORD) and tls (Secret volume). */
static const char *podspec =
	"{\"containers\":[{\"name\":\"web\",\"image\":\"a:1\",\"env\":["
	"{\"name\":\"A\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"app-config\",\"key\":\"A\"}}},"
	"{\"name\":\"B\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"app-config\",\"key\":\"B\"}}},"
	"{\"name\":\"P\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"db\",\"key\":\"PASSWORD\"}}}],"
	"\"envFrom\":[{\"configMapRef\":{\"name\":\"other-config\",\"optional\":true}}]}],"
	"\"volumes\":[{\"name\":\"certs\",\"secret\":{\"secretName\":\"tls\"}}]}";

static struct config *config_with(const char *yaml)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char err[512];

	assert_non_null(cfg);
	if (config_load_buffer("test.yaml", yaml ? yaml : "{}", strlen(yaml ? yaml : "{}"), cfg, err,
			       sizeof(err)) < 0)
		fail_msg("%s", err);
	return cfg;
}

/* Renders the plan's references as "kind:name:how" joined by spaces. */
static void render(const struct stamp_plan *plan, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < plan->refs.n && used < len; i++) {
		const struct ref *r = &plan->refs.refs[i];
		char how[256] = "";
		if (r->need_match)
			snprintf(how, sizeof(how), "match");
		else if (r->whole)
			snprintf(how, sizeof(how), "whole");
		for (size_t k = 0; k < r->n_keys; k++)
			snprintf(how + strlen(how), sizeof(how) - strlen(how), "%s%s", k ? "+" : "",
				 r->keys[k]);
		used += (size_t)snprintf(out + used, len - used, "%s%s:%s:%s", i ? " " : "",
					 r->kind == OBJ_CONFIGMAP ? "cm" : "secret", r->name, how);
	}
}

/* Plans a Deployment in namespace ns with the given workload and pod
 * template annotations (JSON members). Returns mutate_plan's result; *out
 * holds the rendered references, or "-" when the workload is not opted in. */
static int plan(const struct config *cfg, const char *ns, const char *ann, const char *tmpl_ann,
		char *out, size_t len, char *err, size_t errlen)
{
	struct admission_request req;
	struct stamp_plan p;
	char *text = malloc(8192);
	cJSON *obj = NULL;
	int rc;

	assert_non_null(text);
	snprintf(text, 8192,
		 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
		 "\"namespace\":\"%s\",\"annotations\":{%s}},\"spec\":{\"template\":{\"metadata\":{"
		 "\"annotations\":{%s}},\"spec\":%s}}}",
		 ns, ann, tmpl_ann ? tmpl_ann : "", podspec);
	if (json_parse_strict(text, strlen(text), &obj, err, errlen) < 0)
		fail_msg("%s", err);
	memset(&req, 0, sizeof(req));
	req.group = "apps";
	req.version = "v1";
	req.kind = "Deployment";
	req.resource = "deployments";
	req.subresource = "";
	req.name = "web";
	req.namespace_ = ns;
	req.operation = OP_CREATE;
	req.username = "";
	req.object = obj;
	rc = mutate_plan(cfg, &req, &p, err, errlen);
	if (rc == 0 && p.applies)
		render(&p, out, len);
	else
		snprintf(out, len, "-");
	stamp_plan_clear(&p);
	cJSON_Delete(obj);
	free(text);
	return rc;
}

struct row {
	const char *config; /* YAML, NULL: defaults */
	const char *ns;
	const char *ann, *tmpl_ann;
	const char *want;
};

static void check_rows(const struct row *rows, size_t n)
{
	char got[2048], err[256];

	for (size_t i = 0; i < n; i++) {
		struct config *cfg = config_with(rows[i].config);
		int rc = plan(cfg, rows[i].ns ? rows[i].ns : "shop", rows[i].ann, rows[i].tmpl_ann,
			      got, sizeof(got), err, sizeof(err));
		if (rc != 0)
			fail_msg("row %zu: mutate_plan failed: %s", i, err);
		if (strcmp(got, rows[i].want) != 0)
			fail_msg("row %zu (%s | %s): got \"%s\", want \"%s\"", i, rows[i].ann,
				 rows[i].tmpl_ann ? rows[i].tmpl_ann : "", got, rows[i].want);
		config_clear(cfg);
		free(cfg);
	}
}

#define ALL "cm:app-config:A+B cm:other-config:whole secret:db:PASSWORD secret:tls:whole"

static void test_opt_in_and_out(void **state)
{
	const struct row rows[] = {
		{ NULL, NULL, "", NULL, "-" },
		{ NULL, NULL, "\"reloader.stakater.com/auto\":\"true\"", NULL, ALL },
		{ NULL, NULL, "\"rollgate.io/reload\":\"true\"", NULL, ALL },
		{ NULL, NULL, "\"wave.pusher.com/update-on-config-change\":\"true\"", NULL, ALL },
		/* On the pod template it means the same. */
		{ NULL, NULL, "", "\"reloader.stakater.com/auto\":\"true\"", ALL },
		/* The workload's value wins over the template's. */
		{ NULL, NULL, "\"reloader.stakater.com/auto\":\"false\"",
		  "\"reloader.stakater.com/auto\":\"true\"", "-" },
		/* "false" opts out even under stamp.mode all (--auto-reload-all). */
		{ "stamp: {mode: all}", NULL, "", NULL, ALL },
		{ "stamp: {mode: all}", NULL, "\"reloader.stakater.com/auto\":\"false\"", NULL, "-" },
		{ "stamp: {mode: all}", NULL, "\"rollgate.io/reload\":\"false\"", NULL, "-" },
		/* Typed auto: that kind only, per key. */
		{ NULL, NULL, "\"configmap.reloader.stakater.com/auto\":\"true\"", NULL,
		  "cm:app-config:A+B cm:other-config:whole" },
		{ NULL, NULL, "\"secret.reloader.stakater.com/auto\":\"true\"", NULL,
		  "secret:db:PASSWORD secret:tls:whole" },
		/* reload.ignoreNamespaces: nothing, under any annotation. */
		{ "reload: {ignoreNamespaces: [shop]}", NULL,
		  "\"reloader.stakater.com/auto\":\"true\"", NULL, "-" },
		{ "reload: {ignoreNamespaces: [other]}", NULL,
		  "\"reloader.stakater.com/auto\":\"true\"", NULL, ALL },
		/* reload.ignoreSecrets / ignoreConfigMaps: that kind never joins. */
		{ "reload: {ignoreSecrets: true}", NULL, "\"reloader.stakater.com/auto\":\"true\"",
		  NULL, "cm:app-config:A+B cm:other-config:whole" },
		{ "reload: {ignoreConfigMaps: true}", NULL,
		  "\"reloader.stakater.com/auto\":\"true\",\"configmap.reloader.stakater.com/reload\":"
		  "\"x\"",
		  NULL, "secret:db:PASSWORD secret:tls:whole" },
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void test_reload_lists(void **state)
{
	const struct row rows[] = {
		/* Without auto only the named objects join, whole. */
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"app-config\"", NULL,
		  "cm:app-config:whole" },
		{ NULL, NULL, "\"secret.reloader.stakater.com/reload\":\" db , tls \"", NULL,
		  "secret:db:whole secret:tls:whole" },
		/* A plain name joins even when the pod spec does not use it. */
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"unmounted\"", NULL,
		  "cm:unmounted:whole" },
		/* Expressions are anchored and select among referenced objects. */
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\".*-config\"", NULL,
		  "cm:app-config:whole cm:other-config:whole" },
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"app\"", NULL,
		  "cm:app:whole" },
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"app-[a-z]+\"", NULL,
		  "cm:app-config:whole" },
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"(app|zzz)-config\"", NULL,
		  "cm:app-config:whole" },
		{ NULL, NULL, "\"configmap.reloader.stakater.com/reload\":\"pp-config\"", NULL,
		  "cm:pp-config:whole" },
		/* With auto, the union: per key stays per key, lists add. */
		{ NULL, NULL,
		  "\"reloader.stakater.com/auto\":\"true\",\"configmap.reloader.stakater.com/reload\":"
		  "\"unmounted\"",
		  NULL,
		  "cm:app-config:A+B cm:other-config:whole cm:unmounted:whole secret:db:PASSWORD "
		  "secret:tls:whole" },
		/* Typed auto of one kind plus a list of the other. */
		{ NULL, NULL,
		  "\"configmap.reloader.stakater.com/auto\":\"true\",\"secret.reloader.stakater.com/"
		  "reload\":\"tls\"",
		  NULL, "cm:app-config:A+B cm:other-config:whole secret:tls:whole" },
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void test_exclude_and_search(void **state)
{
	const struct row rows[] = {
		/* Exclude lists win even under auto; items are plain names. */
		{ NULL, NULL,
		  "\"reloader.stakater.com/auto\":\"true\",\"configmaps.exclude.reloader.stakater.com/"
		  "reload\":\"app-config\",\"secrets.exclude.reloader.stakater.com/reload\":\"tls, "
		  "db\"",
		  NULL, "cm:other-config:whole" },
		{ NULL, NULL,
		  "\"configmap.reloader.stakater.com/reload\":\".*\",\"configmaps.exclude.reloader."
		  "stakater.com/reload\":\"other-config\"",
		  NULL, "cm:app-config:whole" },
		{ NULL, NULL,
		  "\"reloader.stakater.com/auto\":\"true\",\"configmaps.exclude.reloader.stakater.com/"
		  "reload\":\"app-.*\"",
		  NULL, ALL },
		/* Search: every reference, joining only objects that carry match. */
		{ NULL, NULL, "\"reloader.stakater.com/search\":\"true\"", NULL,
		  "cm:app-config:match cm:other-config:match secret:db:match secret:tls:match" },
		/* Search plus a list: the listed object joins whatever it carries. */
		{ NULL, NULL,
		  "\"reloader.stakater.com/search\":\"true\",\"secret.reloader.stakater.com/reload\":"
		  "\"db\"",
		  NULL, "cm:app-config:match cm:other-config:match secret:db:whole secret:tls:match" },
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void test_wave_extra_lists(void **state)
{
	const struct row rows[] = {
		{ NULL, NULL,
		  "\"wave.pusher.com/update-on-config-change\":\"true\",\"wave.pusher.com/"
		  "extra-configmaps\":\"some-ns/flags,local, shop/own\",\"wave.pusher.com/"
		  "extra-secrets\":\"vault/token\"",
		  NULL,
		  "cm:app-config:A+B cm:local:whole cm:other-config:whole cm:own:whole "
		  "cm:some-ns/flags:whole secret:db:PASSWORD secret:tls:whole "
		  "secret:vault/token:whole" },
		/* Extra lists alone do not opt a workload in (Wave's rule). */
		{ NULL, NULL, "\"wave.pusher.com/extra-configmaps\":\"local\"", NULL, "-" },
		/* An ignored namespace's objects never join. */
		{ "reload: {ignoreNamespaces: [some-ns]}", NULL,
		  "\"configmap.reloader.stakater.com/auto\":\"true\",\"wave.pusher.com/"
		  "extra-configmaps\":\"some-ns/flags\"",
		  NULL, "cm:app-config:A+B cm:other-config:whole" },
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void test_bad_lists_fail_clearly(void **state)
{
	struct config *cfg = config_with(NULL);
	char got[512], err[256], many[1024];
	size_t used = 0;

	(void)state;
	assert_int_equal(plan(cfg, "shop", "\"configmap.reloader.stakater.com/reload\":\"app-(\"",
			      NULL, got, sizeof(got), err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "configmap.reloader.stakater.com/reload"));
	assert_int_equal(plan(cfg, "shop",
			      "\"wave.pusher.com/update-on-config-change\":\"true\","
			      "\"wave.pusher.com/extra-secrets\":\"a/b/c\"",
			      NULL, got, sizeof(got), err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "wave.pusher.com/extra-secrets"));
	/* rollgate's own lists name objects; an expression there is a mistake. */
	assert_int_equal(plan(cfg, "shop", "\"rollgate.io/configmaps\":\"app-.*\"", NULL, got,
			      sizeof(got), err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "rollgate.io/configmaps: an item is not a valid name"));
	used = (size_t)snprintf(many, sizeof(many), "\"secret.reloader.stakater.com/reload\":\"");
	for (int i = 0; i < 65; i++)
		used += (size_t)snprintf(many + used, sizeof(many) - used, "s%d,", i);
	snprintf(many + used, sizeof(many) - used, "\"");
	assert_int_equal(plan(cfg, "shop", many, NULL, got, sizeof(got), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 64 items"));
	config_clear(cfg);
	free(cfg);
}

static void test_object_flags(void **state)
{
	struct ref plain = { .kind = OBJ_CONFIGMAP, .name = "a" };
	struct ref searched = { .kind = OBJ_CONFIGMAP, .name = "a", .need_match = true };

	(void)state;
	assert_true(optin_object_joins(&plain, 0));
	assert_true(optin_object_joins(&plain, OBJ_FLAG_MATCH));
	assert_false(optin_object_joins(&plain, OBJ_FLAG_IGNORE));
	assert_false(optin_object_joins(&searched, 0));
	assert_true(optin_object_joins(&searched, OBJ_FLAG_MATCH));
	assert_false(optin_object_joins(&searched, OBJ_FLAG_MATCH | OBJ_FLAG_IGNORE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_in_and_out),         cmocka_unit_test(test_reload_lists),
		cmocka_unit_test(test_exclude_and_search),     cmocka_unit_test(test_wave_extra_lists),
		cmocka_unit_test(test_bad_lists_fail_clearly), cmocka_unit_test(test_object_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
