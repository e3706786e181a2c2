/* The config file: both rule forms, defaults, and errors naming file, line and key. */
#include "testutil.h"

#include <unistd.h>

#include "config.h"
#include "rules.h"

static int load(const char *yaml, struct config *cfg, char *err, size_t errlen)
{
	return config_load_buffer("rollgate.yaml", yaml, strlen(yaml), cfg, err, errlen);
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_string_equal(cfg.annotation_prefix, "rollgate.io");
	assert_int_equal(cfg.stamp_mode, STAMP_OPT_IN);
	assert_true(strlist_contains(&cfg.exempt_namespaces, "kube-system"));
	assert_true(strlist_contains(&cfg.controllers,
				     "system:serviceaccount:kube-system:deployment-controller"));
	assert_true(strlist_contains(&cfg.controllers,
				     "system:serviceaccount:argo-rollouts:argo-rollouts"));
	assert_int_equal(cfg.rules[RULE_REPLICASET_DIRECT_EDIT].mode, MODE_ENFORCE);
	assert_int_equal(cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode, MODE_WARN);
	assert_int_equal(cfg.rules[RULE_POD_TEMPLATE_HASH_TAMPER].mode, MODE_ENFORCE);
	assert_int_equal(cfg.lookup_timeout_ms, 2000);
	assert_int_equal(cfg.n_canary_labels, 3);
	config_clear(&cfg);
}

static void test_full_example(void **state)
{
	struct config cfg;
	char err[512];
	const char *yaml = "annotationPrefix: example.com\n"
			   "stamp:\n"
			   "  mode: all\n"
			   "exemptNamespaces: [kube-system, legacy-tools]\n"
			   "controllers: [system:serviceaccount:kube-system:deployment-controller]\n"
			   "canaryLabels: {track: canary}\n"
			   "lookupTimeout: 500ms\n"
			   "rules:\n"
			   "  mutable-image-tag: enforce\n"
			   "  rollout-without-readiness:\n"
			   "    mode: audit\n"
			   "    exemptNamespaces: [legacy]\n"
			   "    allowSkip: true\n"
			   "  no-rollback-history: off\n";

	(void)state;
	if (load(yaml, &cfg, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_string_equal(cfg.annotation_prefix, "example.com");
	assert_int_equal(cfg.stamp_mode, STAMP_ALL);
	assert_int_equal(cfg.exempt_namespaces.n, 2);
	assert_int_equal(cfg.controllers.n, 1);
	assert_int_equal(cfg.n_canary_labels, 1);
	assert_int_equal(cfg.lookup_timeout_ms, 500);
	assert_int_equal(cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode, MODE_ENFORCE);
	assert_int_equal(cfg.rules[RULE_ROLLOUT_WITHOUT_READINESS].mode, MODE_AUDIT);
	assert_true(strlist_contains(&cfg.rules[RULE_ROLLOUT_WITHOUT_READINESS].exempt_namespaces,
				     "legacy"));
	assert_true(cfg.rules[RULE_ROLLOUT_WITHOUT_READINESS].skippable);
	/* YAML 1.1 reads a bare off as false: the mode must still be accepted
	 * only as the string "off". */
	assert_int_equal(cfg.rules[RULE_NO_ROLLBACK_HISTORY].mode, MODE_OFF);
	/* Untouched rules keep their defaults. */
	assert_int_equal(cfg.rules[RULE_REPLICASET_DIRECT_EDIT].mode, MODE_ENFORCE);
	config_clear(&cfg);
}

static void expect_error(const char *yaml, const char *want)
{
	struct config cfg;
	char err[512] = "";

	if (load(yaml, &cfg, err, sizeof(err)) == 0) {
		config_clear(&cfg);
		fail_msg("accepted: %s", yaml);
	}
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_errors_name_file_line_key(void **state)
{
	(void)state;
	expect_error("rules:\n  mutable-image-tag: enforce\n  no-such-rule: warn\n",
		     "rollgate.yaml:3: no-such-rule: unknown rule ID");
	expect_error("stamp:\n  mode: sometimes\n", "rollgate.yaml:2: stamp.mode:");
	expect_error("rules:\n  mutable-image-tag: block\n",
		     "rollgate.yaml:2: mutable-image-tag: mode must be");
	expect_error("annotationPrefx: rollgate.io\n",
		     "rollgate.yaml:1: annotationPrefx: unknown key");
	expect_error("exemptNamespaces: kube-system\n",
		     "rollgate.yaml:1: exemptNamespaces: expected a list");
	expect_error("exemptNamespaces: [a, 3]\n", "exemptNamespaces: expected a non-empty string");
	expect_error("rules:\n  mutable-image-tag:\n    mode: warn\n    exempt: [x]\n",
		     "rollgate.yaml:4: rules.mutable-image-tag.exempt: unknown key");
	expect_error("rules:\n  mutable-image-tag:\n    allowSkip: maybe\n", "rollgate.yaml:3:");
	expect_error("lookupTimeout: forever\n", "lookupTimeout: expected a duration");
	expect_error("annotationPrefix: Not/Valid\n", "annotationPrefix: expected a DNS subdomain");
	expect_error("canaryLabels: [track]\n", "canaryLabels: expected a mapping");
	expect_error("stamp: [1]\n", "stamp: expected a mapping");
	expect_error("- a\n- b\n", "expected a mapping");
	expect_error("rules: {a: [}\n", "rollgate.yaml:1:");
	expect_error("a: 1\n---\nb: 2\n", "expected one YAML document");
	expect_error("rules:\n  mutable-image-tag: warn\n  mutable-image-tag: enforce\n", "duplicate");
	expect_error("stamp:\n  hmacKeyFile: /nonexistent/key\n", "/nonexistent/key");
}

static void test_watch_and_reload(void **state)
{
	struct config cfg;
	char err[512];
	const char *yaml =
		"watch:\n  namespaces: [shop, web]\n  labelSelector: team=shop\n"
		"reload:\n  enabled: false\n  rate: 0.5\n  burst: 10\n  coalesceWindow: 500ms\n";

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_true(cfg.reload_enabled);
	assert_int_equal(cfg.reload_burst, 50);
	config_clear(&cfg);
	if (load(yaml, &cfg, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.watch_namespaces.n, 2);
	assert_string_equal(cfg.watch_label_selector, "team=shop");
	assert_false(cfg.reload_enabled);
	assert_true(cfg.reload_rate == 0.5);
	assert_int_equal(cfg.reload_burst, 10);
	assert_int_equal(cfg.reload_window_ms, 500);
	config_clear(&cfg);
	expect_error("reload:\n  rate: 0\n", "rollgate.yaml:2: reload.rate:");
	expect_error("reload:\n  burst: 1.5\n", "reload.burst: expected a whole number");
	expect_error("watch:\n  selector: x\n", "rollgate.yaml:2: selector: unknown key in watch");
}

static void test_hmac_key(void **state)
{
	char path[] = "/tmp/rollgate-key-XXXXXX", yaml[256], err[512];
	struct config cfg;
	FILE *f;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("short\n", f);
	fclose(f);
	snprintf(yaml, sizeof(yaml), "stamp:\n  hmacKeyFile: %s\n", path);
	expect_error(yaml, "at least 16 bytes");
	f = fopen(path, "w");
	fputs("a-long-enough-key-value\n", f);
	fclose(f);
	if (load(yaml, &cfg, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	/* The trailing newline is not part of the key. */
	assert_int_equal(cfg.hmac_key_len, strlen("a-long-enough-key-value"));
	config_clear(&cfg);
	unlink(path);
}

/* A file with no YAML document is what a reader sees in the middle of an
 * in-place rewrite: an error, never "all defaults". {} asks for those. */
static void test_empty_file_is_an_error(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	expect_error("", "rollgate.yaml: no YAML document");
	expect_error("# nothing\n", "write {} for the built-in defaults");
	expect_error("---\n...\n", "no YAML document");
	expect_error("   \n\n", "no YAML document");
	assert_int_equal(load("{}\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.rules[RULE_FULL_OUTAGE_ROLLOUT].mode, MODE_ENFORCE);
	assert_string_equal(cfg.annotation_prefix, "rollgate.io");
	config_clear(&cfg);
	assert_int_equal(load("# all defaults\n{}\n", &cfg, err, sizeof(err)), 0);
	config_clear(&cfg);
}

static void test_example_config_loads(void **state)
{
	struct config cfg;
	char path[4200], err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/examples/rollgate.yaml", tu_root());
	if (config_load(path, &cfg, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	config_clear(&cfg);
}

/* Every rule of the catalog is configured by its rule ID, and defaults to
 * the catalog's mode. */
static void test_every_rule_by_id(void **state)
{
	struct config cfg;
	char yaml[256], err[256];

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	for (int i = 0; i < RULE_COUNT; i++)
		assert_int_equal(cfg.rules[i].mode, rules_catalog[i].default_mode);
	config_clear(&cfg);
	for (int i = 0; i < RULE_COUNT; i++) {
		snprintf(yaml, sizeof(yaml), "rules:\n  %s: %s\n", rules_catalog[i].name,
			 rules_catalog[i].default_mode == MODE_AUDIT ? "warn" : "audit");
		if (load(yaml, &cfg, err, sizeof(err)) < 0)
			fail_msg("%s", err);
		for (int j = 0; j < RULE_COUNT; j++) {
			enum rule_mode want = rules_catalog[j].default_mode;
			if (j == i)
				want = want == MODE_AUDIT ? MODE_WARN : MODE_AUDIT;
			assert_int_equal(cfg.rules[j].mode, want);
		}
		config_clear(&cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_errors_name_file_line_key),
		cmocka_unit_test(test_watch_and_reload),
		cmocka_unit_test(test_hmac_key),
		cmocka_unit_test(test_empty_file_is_an_error),
		cmocka_unit_test(test_example_config_loads),
		cmocka_unit_test(test_every_rule_by_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
