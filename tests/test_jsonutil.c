/* Strict JSON: bytes that are not UTF-8 are refused wherever they stand,
 * and what an error quotes from the input stays valid UTF-8. */
#include "testutil.h"

#include "jsonutil.h"

static int parse(const char *text, char *err, size_t errlen)
{
	cJSON *doc = NULL;
	int rc = json_parse_strict(text, strlen(text), &doc, err, errlen);

	cJSON_Delete(doc);
	return rc;
}

static void expect_refused(const char *text, const char *want)
{
	char err[256] = "";

	if (parse(text, err, sizeof(err)) == 0)
		fail_msg("accepted: %s", text);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_utf8_in_strings(void **state)
{
	char err[256];

	(void)state;
	/* Two-, three- and four-byte characters, and escapes, pass. */
	assert_int_equal(parse("{\"n\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80 \\u00e9\"}", err,
			       sizeof(err)),
			 0);
	expect_refused("{\"n\":\"web-\xff\"}", "invalid UTF-8 at byte 10");
	expect_refused("{\"n\":\"\xc3\"}", "invalid UTF-8");             /* cut short */
	expect_refused("{\"n\":\"\xc0\xaf\"}", "invalid UTF-8");         /* overlong '/' */
	expect_refused("{\"n\":\"\xed\xa0\x80\"}", "invalid UTF-8");     /* a surrogate */
	expect_refused("{\"n\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8"); /* past U+10FFFF */
	expect_refused("{\"\xfe\":1}", "invalid UTF-8");                 /* in a key */
	expect_refused("{\"n\":1}\x80", "invalid UTF-8");                /* outside strings */
}

/* cJSON reads a "\\u" escape without four hex digits as U+0000, cutting
 * the string there; Go refuses it, and so does the strict parser. */
static void test_bad_u_escape(void **state)
{
	char err[256];

	(void)state;
	expect_refused("{\"n\":\"good\\uZZZZevil\"}", "invalid \\u escape at byte 10");
	expect_refused("{\"n\":\"\\u00G0\"}", "invalid \\u escape");
	expect_refused("{\"n\":\"\\u12\"}", "invalid \\u escape");
	expect_refused("{\"n\":\"\\u0000\"}", "string contains \\u0000");
	/* An escaped backslash before "u" is no escape. */
	assert_int_equal(parse("{\"n\":\"\\\\uZZZZ \\u00e9\"}", err, sizeof(err)), 0);
}

static void test_utf8_seq(void **state)
{
	(void)state;
	assert_int_equal(json_utf8_seq((const unsigned char *)"a", 1), 1);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xf0\x9f\x9a\x80", 4), 4);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\x80", 1), 0);
	assert_int_equal(json_utf8_seq((const unsigned char *)"", 0), 0);
}

/* A duplicate key is named in the error, clipped without cutting a
 * character in two. */
static void test_duplicate_key_clipped(void **state)
{
	char text[512], key[200], err[256] = "";
	size_t n = 0;

	(void)state;
	key[n++] = 'k';
	while (n + 2 < 140) {
		key[n++] = '\xc3';
		key[n++] = '\xa9';
	}
	key[n] = '\0';
	snprintf(text, sizeof(text), "{\"%s\":1,\"%s\":2}", key, key);
	assert_int_equal(parse(text, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "duplicate key \"k\xc3\xa9"));
	for (const unsigned char *p = (const unsigned char *)err; *p;) {
		size_t len = json_utf8_seq(p, strlen((const char *)p));
		assert_int_not_equal(len, 0);
		p += len;
	}
}

static void test_clip(void **state)
{
	char out[16];

	(void)state;
	json_clip_utf8(out, sizeof(out),
		       "/val\xff"
		       "id\x01",
		       100);
	assert_string_equal(out, "/val?id?");
	json_clip_utf8(out, sizeof(out), "ab\xc3\xa9", 3);
	assert_string_equal(out, "ab");
	json_clip_utf8(out, 4, "abcdef", 100);
	assert_string_equal(out, "abc");
}

static bool equal_texts(const char *a, const char *b)
{
	cJSON *x = tu_json(a, strlen(a)), *y = tu_json(b, strlen(b));
	bool eq = json_equal(x, y);

	cJSON_Delete(x);
	cJSON_Delete(y);
	return eq;
}

/* Nested {"a":{"a":...1...,"b":0},"b":0}, depth levels, with spaces or not. */
static char *nested(int depth, bool spaced)
{
	size_t cap = (size_t)depth * 24 + 8, used = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	for (int i = 0; i < depth; i++)
		used += (size_t)snprintf(s + used, cap - used, spaced ? "{ \"a\" : " : "{\"a\":");
	used += (size_t)snprintf(s + used, cap - used, "1");
	for (int i = 0; i < depth; i++)
		used += (size_t)snprintf(s + used, cap - used,
					 spaced ? " , \"b\" : 0 }" : ",\"b\":0}");
	return s;
}

static void test_equal(void **state)
{
	char *a, *b;

	(void)state;
	assert_true(equal_texts("{\"a\":1,\"b\":[1,\"x\",null,true]}",
				"{ \"b\" : [1.0, \"x\", null, true], \"a\" : 1e0 }"));
	assert_true(equal_texts("\"\\u00e9\"", "\"\xc3\xa9\""));
	assert_false(equal_texts("{\"a\":1}", "{\"a\":1,\"b\":2}"));
	assert_false(equal_texts("{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":2}"));
	assert_false(equal_texts("[1,2]", "[2,1]"));
	assert_false(equal_texts("[1]", "[1,1]"));
	assert_false(equal_texts("{\"A\":1}", "{\"a\":1}"));
	assert_false(equal_texts("0", "false"));
	assert_false(equal_texts("\"1\"", "1"));
	assert_true(json_equal(NULL, NULL));
	assert_false(equal_texts("{}", "[]"));
	/* As deep as a body may nest: compared once per node, where
	 * cJSON_Compare would take 2^60 steps. */
	a = nested(60, false);
	b = nested(60, true);
	assert_true(equal_texts(a, b));
	b[strlen(b) - 3] = '1';
	assert_false(equal_texts(a, b));
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_in_strings),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_bad_u_escape),
		cmocka_unit_test(test_duplicate_key_clipped),
		cmocka_unit_test(test_clip),
		cmocka_unit_test(test_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
