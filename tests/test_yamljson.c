/* Tests for yamljson: go-yaml v2 typing, limits, lines, emit round trips. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "jsonutil.h"
#include "yamljson.h"

/* Loads text that must parse; fails the test with the error otherwise. */
static void load_ok(const char *text, struct yaml_docs *docs)
{
	char err[256];

	if (yamljson_load(text, strlen(text), docs, err, sizeof(err)) != 0)
		fail_msg("load failed: %s\n--- input:\n%s", err, text);
}

/* Loads text that must fail; returns the error in err. */
static void load_err(const char *text, char *err, size_t errlen)
{
	struct yaml_docs docs;

	if (yamljson_load(text, strlen(text), &docs, err, errlen) == 0) {
		yamljson_clear(&docs);
		fail_msg("expected an error for:\n%s", text);
	}
	assert_null(docs.docs);
	assert_int_equal(docs.n, 0);
	assert_true(strncmp(err, "line ", 5) == 0);
}

/* Expected trees, written as JSON. */
static cJSON *json_of(const char *text)
{
	return tu_json(text, strlen(text));
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- scalar typing ----------------------------------------------------- */

struct res_case {
	const char *yaml; /* the value after "v: " */
	char kind;        /* n null, t true, f false, d number, s string, e error */
	const char *str;
	double num;
};

static const struct res_case res_cases[] = {
	{ "1.10", 'd', NULL, 1.1 },
	{ "\"1.10\"", 's', "1.10", 0 },
	{ "'1.10'", 's', "1.10", 0 },
	{ "yes", 't', NULL, 0 },
	{ "Yes", 't', NULL, 0 },
	{ "YES", 't', NULL, 0 },
	{ "y", 't', NULL, 0 },
	{ "Y", 't', NULL, 0 },
	{ "on", 't', NULL, 0 },
	{ "On", 't', NULL, 0 },
	{ "ON", 't', NULL, 0 },
	{ "true", 't', NULL, 0 },
	{ "True", 't', NULL, 0 },
	{ "TRUE", 't', NULL, 0 },
	{ "no", 'f', NULL, 0 },
	{ "No", 'f', NULL, 0 },
	{ "NO", 'f', NULL, 0 },
	{ "n", 'f', NULL, 0 },
	{ "N", 'f', NULL, 0 },
	{ "off", 'f', NULL, 0 },
	{ "Off", 'f', NULL, 0 },
	{ "OFF", 'f', NULL, 0 },
	{ "false", 'f', NULL, 0 },
	{ "False", 'f', NULL, 0 },
	{ "FALSE", 'f', NULL, 0 },
	{ "yEs", 's', "yEs", 0 },
	{ "tRUE", 's', "tRUE", 0 },
	{ "\"yes\"", 's', "yes", 0 },
	{ "0x1F", 'd', NULL, 31 },
	{ "0X1f", 'd', NULL, 31 },
	{ "-0x10", 'd', NULL, -16 },
	{ "0o17", 'd', NULL, 15 },
	{ "017", 'd', NULL, 15 },
	{ "0777", 'd', NULL, 511 },
	{ "0b101", 'd', NULL, 5 },
	{ "-0b11", 'd', NULL, -3 },
	{ "1_000", 'd', NULL, 1000 },
	{ "1__0_", 'd', NULL, 10 },
	{ "+12", 'd', NULL, 12 },
	{ "-7", 'd', NULL, -7 },
	{ "0", 'd', NULL, 0 },
	{ "08", 'd', NULL, 8 }, /* bad octal, then a yaml float */
	{ "0778", 'd', NULL, 778 },
	{ "1e3", 'd', NULL, 1000 },
	{ "1E-2", 'd', NULL, 0.01 },
	{ ".5", 'd', NULL, 0.5 },
	{ "-.5", 'd', NULL, -0.5 },
	{ "1.", 'd', NULL, 1 },
	{ "1_000.5", 'd', NULL, 1000.5 },
	{ ".5_5", 'd', NULL, 0.55 },
	{ "._5", 's', "._5", 0 },
	{ "9223372036854775807", 'd', NULL, 9223372036854775807.0 },
	{ "18446744073709551615", 'd', NULL, 18446744073709551615.0 },
	{ "0x10000000000000000", 's', "0x10000000000000000", 0 },
	{ "1e999", 's', "1e999", 0 },
	{ "1e-999", 'd', NULL, 0 },
	{ "0x", 's', "0x", 0 },
	{ "0b2", 's', "0b2", 0 },
	{ "1.2.3", 's', "1.2.3", 0 },
	{ "10.0.0.1", 's', "10.0.0.1", 0 },
	{ "1:20", 's', "1:20", 0 },
	{ "2001-12-14", 's', "2001-12-14", 0 },
	{ "2001-12-14T21:59:43.10Z", 's', "2001-12-14T21:59:43.10Z", 0 },
	{ "-a", 's', "-a", 0 },
	{ "'-'", 's', "-", 0 },
	{ "+", 's', "+", 0 },
	{ "~", 'n', NULL, 0 },
	{ "null", 'n', NULL, 0 },
	{ "Null", 'n', NULL, 0 },
	{ "NULL", 'n', NULL, 0 },
	{ "", 'n', NULL, 0 },
	{ "nULL", 's', "nULL", 0 },
	{ "\"\"", 's', "", 0 },
	{ "'~'", 's', "~", 0 },
	{ "|\n  1\n", 's', "1\n", 0 },
	{ ">-\n  yes\n", 's', "yes", 0 },
	{ "!!str 1", 's', "1", 0 },
	{ "!!str true", 's', "true", 0 },
	{ "!!int \"12\"", 'd', NULL, 12 },
	{ "!!float 1", 'd', NULL, 1 },
	{ "!!bool \"yes\"", 't', NULL, 0 },
	{ "!!null \"\"", 'n', NULL, 0 },
	{ "!!binary aGk=", 's', "aGk=", 0 },
	{ "!foo 1", 's', "1", 0 },
	{ "! 1", 's', "1", 0 },
	{ "!!str .inf", 's', ".inf", 0 },
	{ ".inf", 'e', NULL, 0 },
	{ "-.Inf", 'e', NULL, 0 },
	{ "+.INF", 'e', NULL, 0 },
	{ ".nan", 'e', NULL, 0 },
	{ ".NaN", 'e', NULL, 0 },
	{ "!!float .nan", 'e', NULL, 0 },
	{ "!!int foo", 'e', NULL, 0 },
	{ "!!int 1.5", 'e', NULL, 0 },
	{ "!!bool 1", 'e', NULL, 0 },
	{ "!!null 0", 'e', NULL, 0 },
	{ "\"a\\0b\"", 'e', NULL, 0 },
};

static void check_res_case(const struct res_case *c)
{
	char text[256], err[256];
	struct yaml_docs docs;
	const cJSON *v;

	snprintf(text, sizeof(text), "v: %s\n", c->yaml);
	if (c->kind == 'e') {
		load_err(text, err, sizeof(err));
		return;
	}
	load_ok(text, &docs);
	assert_int_equal(docs.n, 1);
	v = json_get(docs.docs[0].root, "v");
	if (!v)
		fail_msg("no value for %s", c->yaml);
	switch (c->kind) {
	case 'n':
		if (!cJSON_IsNull(v))
			fail_msg("%s: expected null", c->yaml);
		break;
	case 't':
	case 'f':
		if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != (c->kind == 't'))
			fail_msg("%s: expected %s", c->yaml, c->kind == 't' ? "true" : "false");
		break;
	case 'd':
		if (!cJSON_IsNumber(v) || v->valuedouble != c->num)
			fail_msg("%s: expected number %.17g", c->yaml, c->num);
		break;
	default:
		if (!cJSON_IsString(v) || strcmp(v->valuestring, c->str) != 0)
			fail_msg("%s: expected string \"%s\"", c->yaml, c->str);
		break;
	}
	yamljson_clear(&docs);
}

static void test_resolution_table(void **state)
{
	for (size_t i = 0; i < sizeof(res_cases) / sizeof(res_cases[0]); i++)
		check_res_case(&res_cases[i]);
}

/* Keys become JSON member names the way sigs.k8s.io/yaml converts them, in
 * document order. */
static void test_keys(void **state)
{
	static const char *want[] = { "zeta", "1", "true", "null", "31", "1.5", "1e+07", "x", "false" };
	struct yaml_docs docs;
	const cJSON *c;
	size_t i = 0;

	load_ok("zeta: 0\n1: a\ntrue: b\n~: c\n0x1F: d\n1.5: e\n1e7: f\n\"x\": g\nn: h\n", &docs);
	cJSON_ArrayForEach(c, docs.docs[0].root) {
		assert_true(i < sizeof(want) / sizeof(want[0]));
		assert_string_equal(c->string, want[i]);
		i++;
	}
	assert_int_equal(i, sizeof(want) / sizeof(want[0]));
	yamljson_clear(&docs);
}

static void test_key_errors(void **state)
{
	char err[256];

	load_err("[a]: 1\n", err, sizeof(err));
	assert_non_null(strstr(err, "not a scalar"));
	load_err("? {a: 1}\n: 2\n", err, sizeof(err));
	assert_non_null(strstr(err, "not a scalar"));
	load_err("a: &x [1]\n*x : 2\n", err, sizeof(err));
	assert_non_null(strstr(err, "not a scalar"));
}

/* ---- structure --------------------------------------------------------- */

static void test_nested(void **state)
{
	static const char *text = "apiVersion: apps/v1\n"
				  "kind: Deployment\n"
				  "metadata:\n"
				  "  name: web\n"
				  "  labels: {app: web, tier: \"1\"}\n"
				  "spec:\n"
				  "  replicas: 3\n"
				  "  template:\n"
				  "    spec:\n"
				  "      containers:\n"
				  "      - name: app\n"
				  "        image: nginx:1.25\n"
				  "        args: [--port, \"8080\"]\n"
				  "        env:\n"
				  "        - name: A\n"
				  "          valueFrom:\n"
				  "            configMapKeyRef: {name: cm, key: a}\n"
				  "      - name: side\n"
				  "        ports:\n"
				  "          - containerPort: 80\n"
				  "      volumes: []\n"
				  "  strategy: {}\n";
	struct yaml_docs docs;
	const cJSON *root, *cs, *c0;
	long long n;

	load_ok(text, &docs);
	assert_int_equal(docs.n, 1);
	root = docs.docs[0].root;
	assert_string_equal(json_get_string(root, "kind"), "Deployment");
	assert_string_equal(json_get_string(json_get_path(root, "metadata", "labels", NULL), "tier"),
			    "1");
	assert_int_equal(json_get_int(json_get(root, "spec"), "replicas", &n), 0);
	assert_int_equal(n, 3);
	cs = json_get_path(root, "spec", "template", "spec", "containers", NULL);
	assert_int_equal(cJSON_GetArraySize(cs), 2);
	c0 = cJSON_GetArrayItem(cs, 0);
	assert_string_equal(json_get_string(c0, "image"), "nginx:1.25");
	assert_string_equal(cJSON_GetArrayItem(json_get(c0, "args"), 1)->valuestring, "8080");
	assert_string_equal(json_get_string(json_get_path(cJSON_GetArrayItem(json_get(c0, "env"), 0),
							  "valueFrom", "configMapKeyRef", NULL),
					    "name"),
			    "cm");
	assert_int_equal(json_get_int(cJSON_GetArrayItem(json_get(cJSON_GetArrayItem(cs, 1), "ports"),
							 0),
				      "containerPort", &n),
			 0);
	assert_int_equal(n, 80);
	assert_true(cJSON_IsArray(json_get_path(root, "spec", "template", "spec", "volumes", NULL)));
	assert_true(cJSON_IsObject(json_get_path(root, "spec", "strategy", NULL)));
	yamljson_clear(&docs);
}

static void test_multi_document(void **state)
{
	static const char *text = "---\n"
				  "---\n"
				  "# only a comment\n"
				  "---\n"
				  "a: 1\n"
				  "---\n"
				  "\n"
				  "--- 5\n"
				  "...\n"
				  "--- ~\n"
				  "---\n"
				  "- x\n"
				  "--- \"\"\n";
	struct yaml_docs docs;

	load_ok(text, &docs);
	assert_int_equal(docs.n, 5);
	assert_int_equal(json_get(docs.docs[0].root, "a")->valuedouble, 1);
	assert_int_equal(docs.docs[0].line, 5);
	assert_true(cJSON_IsNumber(docs.docs[1].root));
	assert_int_equal(docs.docs[1].line, 8);
	assert_true(cJSON_IsNull(docs.docs[2].root));
	assert_int_equal(docs.docs[2].line, 10);
	assert_true(cJSON_IsArray(docs.docs[3].root));
	assert_int_equal(docs.docs[3].line, 12);
	assert_string_equal(docs.docs[4].root->valuestring, "");
	yamljson_clear(&docs);

	load_ok("", &docs);
	assert_int_equal(docs.n, 0);
	yamljson_clear(&docs);
	load_ok("# nothing\n\n", &docs);
	assert_int_equal(docs.n, 0);
	yamljson_clear(&docs);
	load_ok("plain scalar", &docs);
	assert_int_equal(docs.n, 1);
	assert_string_equal(docs.docs[0].root->valuestring, "plain scalar");
	yamljson_clear(&docs);
}

static void test_take_and_free(void **state)
{
	struct yaml_docs docs;
	cJSON *r;

	load_ok("a: 1\n---\nb: 2\n", &docs);
	r = yamljson_take(&docs, 1);
	assert_non_null(r);
	assert_null(docs.docs[1].root);
	assert_null(yamljson_take(&docs, 1));
	assert_null(yamljson_take(&docs, 2));
	assert_int_equal(yamljson_line(&docs, json_get(r, "b")), 3);
	yamljson_clear(&docs);
	yamljson_clear(&docs);
	yamljson_clear(NULL);
	cJSON_Delete(r);
	assert_int_equal(yamljson_line(NULL, NULL), 0);
}

/* Nodes below the root of a document read by the JSON fallback have no
 * line, even where the YAML attempt had made (and freed) nodes at the
 * same addresses. */
static bool no_lines_below(const struct yaml_docs *docs, const cJSON *n)
{
	for (const cJSON *c = n->child; c; c = c->next)
		if (yamljson_line(docs, c) != 0 || !no_lines_below(docs, c))
			return false;
	return true;
}

static void test_fallback_has_no_stale_lines(void **state)
{
	char text[8192];
	size_t n = 0;
	struct yaml_docs docs;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "{\n");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "\"k%d\": {\"a\": [%d, \"s\"]},\n",
				      i, i);
	snprintf(text + n, sizeof(text) - n, "\"last\": \"\\ud83d\\ude00\"\n}\n");
	load_ok(text, &docs);
	assert_int_equal(docs.n, 1);
	assert_int_equal(yamljson_line(&docs, docs.docs[0].root), 1);
	assert_true(no_lines_below(&docs, docs.docs[0].root));
	yamljson_clear(&docs);
}

/* ---- anchors, aliases, merges ------------------------------------------ */

static void test_aliases(void **state)
{
	static const char *text = "base: &b\n"
				  "  image: nginx\n"
				  "  ports: [80, 443]\n"
				  "copy: *b\n"
				  "name: &n web\n"
				  "names: [*n, *n]\n"
				  "&k key: v\n"
				  "other: {*k : again}\n"
				  "re: &n other\n"
				  "after: *n\n";
	struct yaml_docs docs;
	const cJSON *root, *base, *copy;

	load_ok(text, &docs);
	root = docs.docs[0].root;
	base = json_get(root, "base");
	copy = json_get(root, "copy");
	assert_true(cJSON_Compare(base, copy, 1));
	assert_ptr_not_equal(json_get(base, "ports"), json_get(copy, "ports"));
	assert_string_equal(cJSON_GetArrayItem(json_get(root, "names"), 1)->valuestring, "web");
	assert_string_equal(json_get_string(root, "key"), "v");
	assert_string_equal(json_get_string(json_get(root, "other"), "key"), "again");
	assert_string_equal(json_get_string(root, "after"), "other");
	yamljson_clear(&docs);
}

static void test_merge_keys(void **state)
{
	static const char *text = "a: &a {x: 1, w: 1, only_a: 1}\n"
				  "b: &b {x: 2, w: 2, z: 2, only_b: 2}\n"
				  "one:\n"
				  "  <<: *a\n"
				  "  w: 9\n"
				  "list:\n"
				  "  <<: [*a, *b]\n"
				  "  z: 9\n"
				  "late:\n"
				  "  x: 9\n"
				  "  <<: *b\n"
				  "inline:\n"
				  "  <<: {p: 1}\n"
				  "quoted:\n"
				  "  \"<<\": plain key\n";
	static const char *want_list = "{\"x\":1,\"w\":1,\"only_a\":1,\"only_b\":2,\"z\":9}";
	struct yaml_docs docs;
	const cJSON *root;
	cJSON *want;

	load_ok(text, &docs);
	root = docs.docs[0].root;
	want = json_of("{\"x\":1,\"only_a\":1,\"w\":9}");
	assert_true(cJSON_Compare(json_get(root, "one"), want, 1));
	cJSON_Delete(want);
	want = json_of(want_list);
	assert_true(cJSON_Compare(json_get(root, "list"), want, 1));
	cJSON_Delete(want);
	want = json_of("{\"x\":9,\"w\":2,\"z\":2,\"only_b\":2}");
	assert_true(cJSON_Compare(json_get(root, "late"), want, 1));
	cJSON_Delete(want);
	assert_int_equal(json_get(json_get(root, "inline"), "p")->valuedouble, 1);
	assert_string_equal(json_get_string(json_get(root, "quoted"), "<<"), "plain key");
	/* The anchored maps were not emptied by being merged. */
	assert_int_equal(cJSON_GetArraySize(json_get(root, "a")), 3);
	yamljson_clear(&docs);
}

static void test_merge_errors(void **state)
{
	char err[256];

	load_err("a: 1\nb:\n  <<: 5\n", err, sizeof(err));
	assert_true(starts_with(err, "line 3: map merge"));
	load_err("a: &a [1]\nb:\n  <<: [*a]\n", err, sizeof(err));
	assert_true(starts_with(err, "line 3: map merge"));
	load_err("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n", err, sizeof(err));
	assert_true(starts_with(err, "line 4: duplicate key"));
	/* A merged key may be overridden once; a second explicit one is a
	 * duplicate. */
	load_err("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n  x: 3\n", err, sizeof(err));
	assert_string_equal(err, "line 5: duplicate key \"x\"");
	load_err("a: *nope\n", err, sizeof(err));
	assert_string_equal(err, "line 1: unknown anchor \"nope\"");
	/* Anchors do not survive into the next document. */
	load_err("a: &x 1\n---\nb: *x\n", err, sizeof(err));
	assert_true(starts_with(err, "line 3: unknown anchor"));
	/* An alias cannot refer to the node it is inside. */
	load_err("a: &x [1, *x]\n", err, sizeof(err));
	assert_true(starts_with(err, "line 1: unknown anchor"));
}

/* ---- limits ------------------------------------------------------------ */

static void test_billion_laughs(void **state)
{
	char text[4096], err[256];
	const char *prev = "a";
	static const char *names[] = { "b", "c", "d", "e", "f", "g", "h", "i" };
	size_t n;
	struct timespec t0;

	n = (size_t)snprintf(text, sizeof(text),
			     "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (size_t k = 0; k < 8; k++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s: &%s [", names[k], names[k]);
		for (int j = 0; j < 9; j++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s*%s", j ? ", " : "",
					      prev);
		n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
		prev = names[k];
	}
	rgtime_now(&t0);
	load_err(text, err, sizeof(err));
	assert_true(rgtime_elapsed_s(&t0) < 1.0);
	assert_non_null(strstr(err, "aliases expand"));
}

/* One big anchored string repeated stays under the node limits but not
 * under the byte limit. */
static void test_alias_bytes_bomb(void **state)
{
	size_t big = 1 << 20, n;
	char *text = malloc(big + 4096), err[256];

	assert_non_null(text);
	memcpy(text, "a: &a \"", 7);
	memset(text + 7, 'x', big);
	n = 7 + big;
	n += (size_t)snprintf(text + n, 64, "\"\nb: [");
	for (int j = 0; j < 40; j++)
		n += (size_t)snprintf(text + n, 16, "%s*a", j ? "," : "");
	snprintf(text + n, 8, "]\n");
	load_err(text, err, sizeof(err));
	assert_true(starts_with(err, "line 2: aliases expand to more than"));
	free(text);
}

static char *nested(size_t depth, const char *open, const char *mid, const char *close)
{
	size_t lo = strlen(open), lc = strlen(close), lm = strlen(mid);
	char *s = malloc(depth * (lo + lc) + lm + 2), *p = s;

	assert_non_null(s);
	for (size_t i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, mid, lm);
	p += lm;
	for (size_t i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void test_depth_bomb(void **state)
{
	char err[256], *s;
	struct yaml_docs docs;
	struct timespec t0;

	rgtime_now(&t0);
	s = nested(10000, "[", "", "]");
	load_err(s, err, sizeof(err));
	assert_non_null(strstr(err, "nesting deeper than 64"));
	free(s);
	s = nested(10000, "{a: ", "1", "}");
	load_err(s, err, sizeof(err));
	assert_non_null(strstr(err, "nesting deeper than 64"));
	free(s);
	assert_true(rgtime_elapsed_s(&t0) < 1.0);

	s = nested(JSON_MAX_DEPTH, "[", "1", "]");
	load_ok(s, &docs);
	yamljson_clear(&docs);
	free(s);
	s = nested(JSON_MAX_DEPTH + 1, "[", "1", "]");
	load_err(s, err, sizeof(err));
	free(s);

	/* Depth through an alias counts the copied levels: 1 + 30 + 40 > 64. */
	{
		char *anchored = nested(40, "[", "1", "]");
		char *user = nested(30, "[", "*a", "]");
		size_t len = strlen(anchored) + strlen(user) + 32;
		s = malloc(len);
		assert_non_null(s);
		snprintf(s, len, "a: &a %s\nb: %s\n", anchored, user);
		free(anchored);
		free(user);
	}
	load_err(s, err, sizeof(err));
	assert_true(starts_with(err, "line 2: nesting deeper than 64"));
	free(s);
}

static void test_duplicate_keys(void **state)
{
	char err[256];
	struct yaml_docs docs;

	load_err("a: 1\nb:\n  c: 2\n  c: 3\n", err, sizeof(err));
	assert_string_equal(err, "line 4: duplicate key \"c\"");
	/* 1 and "1" are one JSON member name. */
	load_err("1: a\n\"1\": b\n", err, sizeof(err));
	assert_string_equal(err, "line 2: duplicate key \"1\"");
	load_err("{\"a\": 1, \"a\": 2}", err, sizeof(err));
	assert_string_equal(err, "line 1: duplicate key \"a\"");
	/* A key with control characters is rendered log-safe. */
	load_err("\"a\\nb\": 1\n\"a\\nb\": 2\n", err, sizeof(err));
	assert_string_equal(err, "line 2: duplicate key \"a?b\"");
	/* The same key in sibling mappings is fine. */
	load_ok("- a: 1\n- a: 2\n", &docs);
	yamljson_clear(&docs);
}

static void test_invalid_yaml_lines(void **state)
{
	static const struct {
		const char *text;
		const char *prefix;
	} cases[] = {
		{ "a: 1\nb: [1, 2\nc: 3\n", "line 3: did not find expected ',' or ']'" },
		{ "a: 1\n  b: 2\n", "line 2: mapping values are not allowed" },
		{ "a: 1\nb: \"open\n", "line 3: found unexpected end of stream" },
		{ "a:\n  - 1\n - 2\n", "line 3: " },
		{ "a: 1\nb: 2\nc: \xff\n", "line 3: invalid leading UTF-8 octet" },
		{ "ok: 1\n\tbad: 2\n", "line 2: " },
		{ "a: @x\n", "line 1: found character that cannot start any token" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		load_err(cases[i].text, err, sizeof(err));
		if (!starts_with(err, cases[i].prefix))
			fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, cases[i].prefix);
	}
}

/* Error text never carries scalar values: only a short key name at most. */
static void test_errors_do_not_leak_values(void **state)
{
	static const char *texts[] = {
		"password: !!int hunter2secret\n",
		"password: .inf\nx: hunter2secret\n",
		"password: \"hunter2secret\\0\"\n",
		"password: hunter2secret\npassword: hunter2secret\n",
		"password: [hunter2secret\n",
		"password: *hunter2secret\n",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		load_err(texts[i], err, sizeof(err));
		if (strstr(err, "hunter2") && !starts_with(err, "line 1: unknown anchor"))
			fail_msg("error leaks a value: %s", err);
	}
	/* A long key is cut short. */
	{
		char text[600], *p = text;
		for (int k = 0; k < 2; k++) {
			memset(p, 'k', 200);
			p += 200;
			p += snprintf(p, (size_t)(text + sizeof(text) - p), ": %d\n", k);
		}
		load_err(text, err, sizeof(err));
		assert_true(strlen(err) < 80);
	}
}

static void test_json_input(void **state)
{
	static const char *text = "{\n"
				  "\t\"kind\": \"ConfigMap\",\n"
				  "\t\"data\": {\"a\":\"1\", \"b\": \"x\\/y\\u00e9\\n\"},\n"
				  "\t\"n\": [1, 2.5, -3e2, true, false, null],\n"
				  "\t\"e\": {}, \"f\": []\n"
				  "}\n";
	struct yaml_docs docs;
	const cJSON *root;
	cJSON *want;

	load_ok(text, &docs);
	root = docs.docs[0].root;
	want = json_of(text);
	assert_true(cJSON_Compare(root, want, 1));
	cJSON_Delete(want);
	assert_int_equal(yamljson_line(&docs, json_get(root, "n")), 4);
	yamljson_clear(&docs);

	/* Surrogate pairs: YAML 1.1 has none, the JSON reader takes over. */
	load_ok("\n{\"a\": \"\\ud83d\\ude00\", \"b\": [1]}", &docs);
	assert_int_equal(docs.n, 1);
	assert_string_equal(json_get_string(docs.docs[0].root, "a"), "\xF0\x9F\x98\x80");
	assert_int_equal(docs.docs[0].line, 2);
	yamljson_clear(&docs);

	/* The JSON reader does not let through what libyaml rightly refused. */
	{
		char err[256];
		load_err("{\"a\": \"\xff\\ud83d\\ude00\"}", err, sizeof(err));
		assert_true(starts_with(err, "line 1: invalid leading UTF-8 octet"));
		load_err("{\"a\": \"\x12\\ud83d\\ude00\"}", err, sizeof(err));
		assert_true(starts_with(err, "line 1: control characters are not allowed"));
		load_err("{\"a\": [1e999, \"\\ud83d\\ude00\"]}", err, sizeof(err));
	}
}

static void test_line_numbers(void **state)
{
	static const char *text = "# comment\n"      /* 1 */
				  "apiVersion: v1\n" /* 2 */
				  "metadata:\n"      /* 3 */
				  "  name: x\n"      /* 4 */
				  "  labels:\n"      /* 5 */
				  "\n"               /* 6 */
				  "    a: b\n"       /* 7 */
				  "list:\n"          /* 8 */
				  "- one\n"          /* 9 */
				  "- k: v\n"         /* 10 */
				  "  k2: |\n"        /* 11 */
				  "    text\n"       /* 12 */
				  "flow: {x: [1,\n"  /* 13 */
				  "  2]}\n"          /* 14 */
				  "anch: &a\n"       /* 15 */
				  "  z: 1\n"         /* 16 */
				  "ali: *a\n"        /* 17 */
				  "---\n"            /* 18 */
				  "second: doc\n";   /* 19 */
	struct yaml_docs docs;
	const cJSON *root, *list, *flow;

	load_ok(text, &docs);
	root = docs.docs[0].root;
	assert_int_equal(docs.docs[0].line, 2);
	assert_int_equal(yamljson_line(&docs, root), 2);
	assert_int_equal(yamljson_line(&docs, json_get(root, "apiVersion")), 2);
	assert_int_equal(yamljson_line(&docs, json_get(root, "metadata")), 4);
	assert_int_equal(yamljson_line(&docs, json_get_path(root, "metadata", "name", NULL)), 4);
	assert_int_equal(yamljson_line(&docs, json_get_path(root, "metadata", "labels", NULL)), 7);
	assert_int_equal(yamljson_line(&docs, json_get_path(root, "metadata", "labels", "a", NULL)),
			 7);
	list = json_get(root, "list");
	assert_int_equal(yamljson_line(&docs, list), 9);
	assert_int_equal(yamljson_line(&docs, cJSON_GetArrayItem(list, 0)), 9);
	assert_int_equal(yamljson_line(&docs, cJSON_GetArrayItem(list, 1)), 10);
	assert_int_equal(yamljson_line(&docs, json_get(cJSON_GetArrayItem(list, 1), "k2")), 11);
	flow = json_get(root, "flow");
	assert_int_equal(yamljson_line(&docs, flow), 13);
	assert_int_equal(yamljson_line(&docs, cJSON_GetArrayItem(json_get(flow, "x"), 1)), 14);
	assert_int_equal(yamljson_line(&docs, json_get(root, "anch")), 15);
	assert_int_equal(yamljson_line(&docs, json_get(root, "ali")), 17);
	assert_int_equal(yamljson_line(&docs, json_get_path(root, "ali", "z", NULL)), 16);
	assert_int_equal(docs.docs[1].line, 19);
	assert_int_equal(yamljson_line(&docs, json_get(docs.docs[1].root, "second")), 19);
	assert_int_equal(yamljson_line(&docs, NULL), 0);
	yamljson_clear(&docs);
}

/* ---- emit -------------------------------------------------------------- */

/* emit then load must give back an equal tree. */
static void assert_round_trip(const cJSON *tree)
{
	char *y = yamljson_emit(tree), err[256];
	struct yaml_docs docs;

	if (!y) {
		char *j = cJSON_PrintUnformatted(tree);
		fail_msg("emit failed for %s", j);
	}
	if (yamljson_load(y, strlen(y), &docs, err, sizeof(err)) != 0)
		fail_msg("reload failed: %s\n--- emitted:\n%s", err, y);
	if (docs.n != 1 || !cJSON_Compare(docs.docs[0].root, tree, 1)) {
		char *j = cJSON_PrintUnformatted(tree);
		fail_msg("round trip differs for %s\n--- emitted:\n%s", j, y);
	}
	yamljson_clear(&docs);
	free(y);
}

static void test_emit_layout(void **state)
{
	static const char *json =
		"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
		"\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"},\"annotations\":{}},"
		"\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":["
		"{\"name\":\"app\",\"args\":[\"--port=80\",\"1.10\"],\"env\":[]},"
		"{\"name\":\"b\",\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]}]}},"
		"\"matrix\":[[1,2],[]],\"script\":\"echo a\\necho b\\n\",\"ratio\":0.25}}";
	static const char *want = "apiVersion: apps/v1\n"
				  "kind: Deployment\n"
				  "metadata:\n"
				  "  name: web\n"
				  "  labels:\n"
				  "    app: web\n"
				  "  annotations: {}\n"
				  "spec:\n"
				  "  replicas: 3\n"
				  "  template:\n"
				  "    spec:\n"
				  "      containers:\n"
				  "      - name: app\n"
				  "        args:\n"
				  "        - --port=80\n"
				  "        - '1.10'\n"
				  "        env: []\n"
				  "      - name: b\n"
				  "        ports:\n"
				  "        - containerPort: 80\n"
				  "          protocol: TCP\n"
				  "  matrix:\n"
				  "  - - 1\n"
				  "    - 2\n"
				  "  - []\n"
				  "  script: |\n"
				  "    echo a\n"
				  "    echo b\n"
				  "  ratio: 0.25\n";
	cJSON *tree = json_of(json);
	char *y;

	y = yamljson_emit(tree);
	assert_non_null(y);
	assert_string_equal(y, want);
	free(y);
	assert_round_trip(tree);
	cJSON_Delete(tree);
}

static const char *tricky[] = {
	"true",
	"1.10",
	"",
	" x",
	"x ",
	"a: b",
	"a:",
	"- x",
	"-",
	"#x",
	"a #b",
	"null",
	"~",
	"0777",
	"1e3",
	"yes",
	"Yes",
	"y",
	"N",
	"off",
	".5",
	".inf",
	"-.inf",
	".nan",
	"0x1F",
	"0b1",
	"1_000",
	"+1",
	"--- x",
	"---",
	"...",
	"... x",
	"<<",
	"? x",
	"?x",
	":x",
	"[a]",
	"{a}",
	"*a",
	"&a",
	"!a",
	"|x",
	">x",
	"'x'",
	"\"x\"",
	"%x",
	"@x",
	"`x",
	",x",
	"multi\nline",
	"a\n\nb",
	"tail\n",
	"tails\n\n",
	"\nlead",
	" lead\nx",
	"a\n ",
	"a\n  \nb",
	"tab\tx",
	"\tx",
	"cr\rx",
	"nel\xC2\x85x",
	"ls\xE2\x80\xA8x",
	"bom\xEF\xBB\xBFx",
	"bell\x07",
	"del\x7F",
	"c1\xC2\x80",
	"it's",
	"\"quoted\" 'both'",
	"back\\slash",
	"é ü 日本",
	"emoji \xF0\x9F\x98\x80",
	"nbsp\xC2\xA0",
	"2001-12-14",
	"a,b",
	"a: b: c",
	"x\n- y\n",
	"# c\n",
	"1:20",
	"=",
};

/* Tricky strings must not come out plain, and must read back unchanged,
 * both as values and as keys. */
static void test_emit_quoting(void **state)
{
	for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
		cJSON *tree = cJSON_CreateObject(), *seq = cJSON_CreateArray();
		char plain[256], *y;

		cJSON_AddStringToObject(tree, "k", tricky[i]);
		cJSON_AddStringToObject(tree, tricky[i], "v");
		cJSON_AddItemToArray(seq, cJSON_CreateString(tricky[i]));
		cJSON_AddItemToObject(tree, "seq", seq);
		assert_round_trip(tree);
		assert_round_trip(json_get(tree, "k"));
		assert_round_trip(seq);
		y = yamljson_emit(json_get(tree, "k"));
		snprintf(plain, sizeof(plain), "%s\n", tricky[i]);
		if (strcmp(y, plain) == 0 && strcmp(tricky[i], "it's") != 0 &&
		    strcmp(tricky[i], "é ü 日本") != 0 && strcmp(tricky[i], "?x") != 0 &&
		    strcmp(tricky[i], "a,b") != 0 && strcmp(tricky[i], "=") != 0 &&
		    strcmp(tricky[i], "back\\slash") != 0 && strncmp(tricky[i], "emoji", 5) != 0 &&
		    strncmp(tricky[i], "nbsp", 4) != 0 && strcmp(tricky[i], "1:20") != 0 &&
		    strcmp(tricky[i], "2001-12-14") != 0)
			fail_msg("\"%s\" was emitted plain", tricky[i]);
		free(y);
		cJSON_Delete(tree);
	}
}

static void test_emit_quoting_forms(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "true", "'true'\n" },    { "1.10", "'1.10'\n" },   { "", "''\n" },
		{ "it's", "it's\n" },      { "'a'", "'''a'''\n" },   { "a\nb", "\"a\\nb\"\n" },
		{ "t\tx", "\"t\\tx\"\n" }, { "--port", "--port\n" }, { "nginx:1.25", "nginx:1.25\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *s = cJSON_CreateString(cases[i].in);
		char *y = yamljson_emit(s);
		assert_non_null(y);
		assert_string_equal(y, cases[i].out);
		free(y);
		cJSON_Delete(s);
	}
}

static void test_emit_numbers(void **state)
{
	static const double nums[] = { 0,
				       -0.0,
				       1,
				       -1,
				       1.5,
				       0.1,
				       1e-7,
				       123456.789,
				       1e15,
				       1e16,
				       9007199254740992.0,
				       9007199254740994.0,
				       1.7976931348623157e308,
				       5e-324,
				       2.2250738585072014e-308,
				       -3.25e100 };
	cJSON *n, *bad;
	char *y;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		n = cJSON_CreateNumber(nums[i]);
		y = yamljson_emit(n);
		assert_non_null(y);
		{
			struct yaml_docs docs;
			load_ok(y, &docs);
			assert_true(cJSON_IsNumber(docs.docs[0].root));
			if (docs.docs[0].root->valuedouble != nums[i])
				fail_msg("%.17g came back as %.17g via %s", nums[i],
					 docs.docs[0].root->valuedouble, y);
			yamljson_clear(&docs);
		}
		free(y);
		cJSON_Delete(n);
	}
	n = cJSON_CreateNumber(42);
	y = yamljson_emit(n);
	assert_string_equal(y, "42\n");
	free(y);
	cJSON_Delete(n);

	bad = cJSON_CreateObject();
	cJSON_AddNumberToObject(bad, "x", NAN);
	assert_null(yamljson_emit(bad));
	cJSON_Delete(bad);
	bad = cJSON_CreateString("bad \xC3\x28 utf8");
	assert_null(yamljson_emit(bad));
	cJSON_Delete(bad);
	assert_null(yamljson_emit(NULL));
}

static void test_emit_long_key(void **state)
{
	char key[3000];
	cJSON *tree = cJSON_CreateObject();

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	cJSON_AddStringToObject(tree, key, "v");
	cJSON_AddItemToObject(tree, "a", cJSON_CreateObject());
	key[0] = 'j';
	cJSON_AddItemToObject(tree, key, json_of("{\"x\":[1,{\"y\":2}],\"s\":[3]}"));
	key[0] = 'i';
	cJSON_AddItemToObject(tree, key, json_of("[1,[2]]"));
	assert_round_trip(tree);
	cJSON_Delete(tree);
}

/* A small deterministic generator of varied trees. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void random_string(char *out, size_t cap)
{
	static const char *pieces[] = { "a",        "Z",    "0",    "1",   " ",  ":",  "#",
					"-",        "'",    "\"",   "\\",  "\n", "\t", ".",
					"_",        "x",    "e",    "~",   "y",  "é",  "\xE2\x80\xA8",
					"\xC2\x85", "!",    "&",    "*",   "|",  ">",  "%",
					"@",        "`",    "?",    ",",   "[",  "}",  "<<",
					"0x",       "true", "null", "---", "..." };
	size_t n = 0, parts = rnd(6);

	out[0] = '\0';
	if (rnd(3) == 0) {
		snprintf(out, cap, "%s", tricky[rnd(sizeof(tricky) / sizeof(tricky[0]))]);
		return;
	}
	for (size_t i = 0; i < parts; i++) {
		const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
		size_t l = strlen(p);
		if (n + l + 1 >= cap)
			break;
		memcpy(out + n, p, l + 1);
		n += l;
	}
}

static cJSON *random_tree(int depth)
{
	uint32_t kind = depth > 4 ? rnd(5) : rnd(8);
	char s[64];
	cJSON *c;

	switch (kind) {
	case 0:
		return cJSON_CreateNull();
	case 1:
		return cJSON_CreateBool(rnd(2));
	case 2: {
		static const double nums[] = {
			0, 1, -7, 0.5, 1e21, 3.14159, -2.5e-8, 4294967296.0, 9007199254740993.0
		};
		return cJSON_CreateNumber(nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
	}
	case 3:
	case 4:
		random_string(s, sizeof(s));
		return cJSON_CreateString(s);
	case 5:
		c = cJSON_CreateArray();
		for (uint32_t i = rnd(4); i > 0; i--)
			cJSON_AddItemToArray(c, random_tree(depth + 1));
		return c;
	default:
		c = cJSON_CreateObject();
		for (uint32_t i = rnd(5); i > 0; i--) {
			random_string(s, sizeof(s));
			if (!json_get(c, s))
				cJSON_AddItemToObject(c, s, random_tree(depth + 1));
		}
		return c;
	}
}

static void test_emit_round_trip_random(void **state)
{
	for (int i = 0; i < 3000; i++) {
		cJSON *t = random_tree(0);
		assert_round_trip(t);
		cJSON_Delete(t);
	}
}

/* ---- corpus ------------------------------------------------------------ */

struct corpus_stats {
	int files, docs, invalid;
};

static bool wanted_file(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static void check_corpus_file(const char *path, struct corpus_stats *st)
{
	size_t len = 0;
	char *buf = tu_read_file(path, &len), err[256];
	struct yaml_docs docs;

	assert_non_null(buf);
	st->files++;
	if (yamljson_load(buf, len, &docs, err, sizeof(err)) != 0) {
		printf("[  INFO    ] not valid YAML: %s: %s\n", path, err);
		st->invalid++;
		free(buf);
		return;
	}
	for (size_t i = 0; i < docs.n; i++) {
		assert_true(docs.docs[i].line > 0);
		assert_true(yamljson_line(&docs, docs.docs[i].root) > 0);
		assert_round_trip(docs.docs[i].root);
		st->docs++;
	}
	yamljson_clear(&docs);
	free(buf);
}

/* Depth is bounded by the corpus layout (a handful of folders). */
static void walk_corpus(const char *dir, struct corpus_stats *st, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	assert_true(depth < 32);
	for (e = readdir(d); e; e = readdir(d)) {
		char path[4096];
		struct stat sb;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			walk_corpus(path, st, depth + 1);
		else if (S_ISREG(sb.st_mode) && wanted_file(e->d_name))
			check_corpus_file(path, st);
	}
	closedir(d);
}

static void test_corpus(void **state)
{
	const char *dir = tu_corpus();
	struct corpus_stats st = { 0 };

	if (!dir)
		skip();
	walk_corpus(dir, &st, 0);
	printf("[  INFO    ] corpus: %d files, %d documents, %d not valid YAML\n", st.files, st.docs,
	       st.invalid);
	assert_true(st.files > 0);
	assert_int_equal(st.invalid, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolution_table),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_take_and_free),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_fallback_has_no_stale_lines),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_merge_errors),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_alias_bytes_bomb),
		cmocka_unit_test(test_depth_bomb),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_invalid_yaml_lines),
		cmocka_unit_test(test_errors_do_not_leak_values),
		cmocka_unit_test(test_json_input),
		cmocka_unit_test(test_line_numbers),
		cmocka_unit_test(test_emit_layout),
		cmocka_unit_test(test_emit_quoting),
		cmocka_unit_test(test_emit_quoting_forms),
		cmocka_unit_test(test_emit_numbers),
		cmocka_unit_test(test_emit_long_key),
		cmocka_unit_test(test_emit_round_trip_random),
		cmocka_unit_test(test_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
