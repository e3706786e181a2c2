/* Tests for labelsel: every operator, the comma AND, whitespace, error
 * messages with offsets, and the limits. */
#include "testutil.h"

#include "config.h"
#include "labelsel.h"

/* Whether selector text matches the labels object labels_json. */
static bool sel_matches(const char *text, const char *labels_json)
{
	struct labelsel *s = NULL;
	char err[256] = "";
	cJSON *labels = labels_json ? tu_parse(labels_json) : NULL;
	bool m;

	if (labelsel_parse(text, &s, err, sizeof(err)) != 0)
		fail_msg("labelsel_parse(\"%s\") failed: %s", text, err);
	m = labelsel_matches(s, labels);
	labelsel_free(s);
	cJSON_Delete(labels);
	return m;
}

static void parse_err(const char *text, const char *want)
{
	struct labelsel *s = (struct labelsel *)1;
	char err[256] = "";

	assert_int_equal(labelsel_parse(text, &s, err, sizeof(err)), -1);
	assert_null(s);
	if (!strstr(err, want))
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, err, want);
}

static void test_equality(void **state)
{
	(void)state;
	assert_true(sel_matches("env=prod", "{\"env\":\"prod\"}"));
	assert_true(sel_matches("env==prod", "{\"env\":\"prod\",\"x\":\"y\"}"));
	assert_false(sel_matches("env=prod", "{\"env\":\"dev\"}"));
	assert_false(sel_matches("env=prod", "{}"));
	assert_false(sel_matches("env=prod", NULL));
	assert_true(sel_matches("env!=prod", "{\"env\":\"dev\"}"));
	assert_true(sel_matches("env!=prod", "{}")); /* absent differs too */
	assert_false(sel_matches("env!=prod", "{\"env\":\"prod\"}"));
	assert_true(sel_matches("env=", "{\"env\":\"\"}"));
	assert_false(sel_matches("env=", "{\"env\":\"a\"}"));
	/* Keys are case-sensitive. */
	assert_false(sel_matches("Env=prod", "{\"env\":\"prod\"}"));
}

static void test_sets(void **state)
{
	(void)state;
	assert_true(sel_matches("tier in (web, api)", "{\"tier\":\"api\"}"));
	assert_false(sel_matches("tier in (web,api)", "{\"tier\":\"db\"}"));
	assert_false(sel_matches("tier in (web)", "{}"));
	assert_true(sel_matches("tier notin (web,api)", "{\"tier\":\"db\"}"));
	assert_true(sel_matches("tier notin (web,api)", "{}"));
	assert_false(sel_matches("tier notin (web,api)", "{\"tier\":\"web\"}"));
}

static void test_existence_and_numbers(void **state)
{
	(void)state;
	assert_true(sel_matches("reload", "{\"reload\":\"\"}"));
	assert_false(sel_matches("reload", "{\"other\":\"x\"}"));
	assert_true(sel_matches("!reload", "{\"other\":\"x\"}"));
	assert_false(sel_matches("! reload", "{\"reload\":\"x\"}"));
	assert_true(sel_matches("gen>3", "{\"gen\":\"4\"}"));
	assert_false(sel_matches("gen>3", "{\"gen\":\"3\"}"));
	assert_false(sel_matches("gen>3", "{\"gen\":\"four\"}"));
	assert_true(sel_matches("gen<3", "{\"gen\":\"-1\"}"));
}

static void test_and_and_whitespace(void **state)
{
	(void)state;
	assert_true(sel_matches("", "{}"));
	assert_true(sel_matches("   ", NULL));
	assert_true(sel_matches(" team = shop ,env in (prod),!legacy ",
				"{\"team\":\"shop\",\"env\":\"prod\"}"));
	assert_false(sel_matches("team=shop,env in (prod),!legacy",
				 "{\"team\":\"shop\",\"env\":\"prod\",\"legacy\":\"1\"}"));
	assert_true(sel_matches("kubernetes.io/metadata.name=shop",
				"{\"kubernetes.io/metadata.name\":\"shop\"}"));
}

static void test_errors(void **state)
{
	char long_text[LABELSEL_TEXT_MAX + 2];
	char many[64 * 4 + 8] = "";

	(void)state;
	parse_err("=x", "at 0: expected a label key");
	parse_err("a=b,", "at 4: expected a requirement after ','");
	parse_err("a b", "at 2: expected an operator");
	parse_err("a in b", "expected '(' after in or notin");
	parse_err("a in ()", "a set of values cannot be empty");
	parse_err("a in (x y)", "expected ',' or ')' in a set");
	parse_err("a in (x", "at 7: expected ',' or ')' in a set");
	parse_err("a in (=", "expected a value or ')' in a set");
	parse_err("a=(", "at 2: expected a value after '='");
	parse_err("a>x", "expected an integer");
	parse_err("-a=b", "invalid label key");
	parse_err("a=b-", "invalid label value");
	parse_err("Bad_Prefix/a=b", "invalid label key");
	parse_err("a=b=c", "at 3: expected ',' between requirements");
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	parse_err(long_text, "longer than 4096 bytes");
	for (int i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s", i ? ",k" : "k");
	parse_err(many, "too many requirements (at most 64)");
}

/* The config reader checks both selector keys with labelsel. */
static void test_config_keys(void **state)
{
	static const char *const keys[] = { "namespaceSelector", "resourceLabelSelector" };
	char yaml[200], err[512], want[200];
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		snprintf(yaml, sizeof(yaml), "reload:\n  %s: \"team in web\"\n", keys[i]);
		assert_int_equal(
			config_load_buffer("c.yaml", yaml, strlen(yaml), &cfg, err, sizeof(err)), -1);
		snprintf(want, sizeof(want),
			 "c.yaml:2: reload.%s: invalid label selector: at 8: expected '(' after in "
			 "or notin",
			 keys[i]);
		assert_string_equal(err, want);
		snprintf(yaml, sizeof(yaml), "reload:\n  %s: \"team in (web), !legacy\"\n", keys[i]);
		assert_int_equal(
			config_load_buffer("c.yaml", yaml, strlen(yaml), &cfg, err, sizeof(err)), 0);
		config_clear(&cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equality),
		cmocka_unit_test(test_sets),
		cmocka_unit_test(test_existence_and_numbers),
		cmocka_unit_test(test_and_and_whitespace),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_config_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
