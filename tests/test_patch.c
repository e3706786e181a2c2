/* Tests for patch: every shape of the pod-template annotation patch, checked
 * both as text and by applying it (a small RFC 6902 applier for add/remove
 * on objects) and re-running, which must then produce no patch. */
#include "testutil.h"

#include "jsonutil.h"
#include "patch.h"

#define KEY "rollgate.io/config-hash"
#define VAL "sha256:abc"

/* ---- a minimal JSON Patch applier ---------------------------------------- */

/* Decodes one RFC 6901 reference token in place: "~1" is '/', "~0" is '~'. */
static void unescape_token(char *t)
{
	char *o = t;

	for (char *p = t; *p; p++) {
		if (p[0] == '~' && p[1] == '1') {
			*o++ = '/';
			p++;
		} else if (p[0] == '~' && p[1] == '0') {
			*o++ = '~';
			p++;
		} else {
			assert_true(*p != '~'); /* a lone '~' is invalid */
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* Applies an add or remove whose parent must exist and be an object, as
 * kube-apiserver's applier requires; fails the test otherwise. */
static void apply_op(cJSON *doc, const cJSON *op)
{
	const char *kind = json_get_string(op, "op");
	const char *path = json_get_string(op, "path");
	char *copy, *tok, *next;
	cJSON *parent = doc;

	assert_non_null(kind);
	assert_non_null(path);
	assert_true(path[0] == '/');
	copy = strdup(path + 1);
	tok = copy;
	for (next = strchr(tok, '/'); next; next = strchr(tok, '/')) {
		*next = '\0';
		unescape_token(tok);
		parent = cJSON_GetObjectItemCaseSensitive(parent, tok);
		if (!cJSON_IsObject(parent))
			fail_msg("%s: parent \"%s\" is missing or not an object", path, tok);
		tok = next + 1;
	}
	unescape_token(tok);
	if (strcmp(kind, "add") == 0) {
		const cJSON *value = json_get(op, "value");

		assert_non_null(value);
		if (cJSON_GetObjectItemCaseSensitive(parent, tok))
			cJSON_ReplaceItemInObjectCaseSensitive(parent, tok, cJSON_Duplicate(value, 1));
		else
			cJSON_AddItemToObject(parent, tok, cJSON_Duplicate(value, 1));
	} else if (strcmp(kind, "remove") == 0) {
		if (!cJSON_GetObjectItemCaseSensitive(parent, tok))
			fail_msg("remove %s: member does not exist", path);
		cJSON_DeleteItemFromObjectCaseSensitive(parent, tok);
	} else {
		fail_msg("unexpected op %s", kind);
	}
	free(copy);
}

static void apply(cJSON *doc, const char *patch)
{
	char err[128];
	cJSON *ops = NULL;
	const cJSON *op;

	if (json_parse_strict(patch, strlen(patch), &ops, err, sizeof(err)) < 0)
		fail_msg("patch is not valid JSON: %s", err);
	assert_true(cJSON_IsArray(ops));
	cJSON_ArrayForEach(op, ops)
		apply_op(doc, op);
	cJSON_Delete(ops);
}

/*
 * Patches doc (single-quoted JSON), compares the patch text with want
 * (single-quoted; NULL for no patch), applies it, checks the result holds
 * the value (or lacks the key), and that a second run yields no patch.
 * Returns the patched document for further checks; caller deletes it.
 */
static cJSON *roundtrip(const char *doc_sq, const char *key, const char *value, const char *want_sq)
{
	cJSON *doc = tu_parse(doc_sq);
	cJSON *want = want_sq ? tu_parse(want_sq) : NULL;
	char *want_text = want ? json_print(want) : NULL;
	char *out = (char *)1, *again = (char *)1;
	const cJSON *ann;

	assert_int_equal(patch_template_annotation(doc, key, value, &out), 0);
	if (!want_text) {
		assert_null(out);
	} else {
		assert_non_null(out);
		assert_string_equal(out, want_text);
		apply(doc, out);
	}
	ann = json_get_path(doc, "spec", "template", "metadata", "annotations", NULL);
	if (value)
		assert_string_equal(json_get_string(ann, key), value);
	else
		assert_null(json_get(ann, key));
	assert_int_equal(patch_template_annotation(doc, key, value, &again), 0);
	assert_null(again);
	free(out);
	free(want_text);
	cJSON_Delete(want);
	return doc;
}

/* ---- shapes -------------------------------------------------------------- */

static void test_no_metadata(void **state)
{
	cJSON *doc = roundtrip("{'kind':'Deployment','spec':{'template':{'spec':{}}}}", KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata',"
			       "'value':{'annotations':{'" KEY "':'" VAL "'}}}]");
	cJSON_Delete(doc);
}

static void test_null_metadata(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':null,'spec':{}}}}", KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata',"
			       "'value':{'annotations':{'" KEY "':'" VAL "'}}}]");
	cJSON_Delete(doc);
}

static void test_no_annotations(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'labels':{'app':'web'}}}}}", KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations',"
			       "'value':{'" KEY "':'" VAL "'}}]");

	/* labels untouched */
	assert_string_equal(json_get_string(json_get_path(doc, "spec", "template", "metadata",
							  "labels", NULL),
					    "app"),
			    "web");
	cJSON_Delete(doc);
}

static void test_null_annotations(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':null}}}}", KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations',"
			       "'value':{'" KEY "':'" VAL "'}}]");
	cJSON_Delete(doc);
}

static void test_other_annotations_kept(void **state)
{
	const cJSON *ann;
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':"
			       "{'a':'1','prometheus.io/scrape':'true'}}}}}",
			       KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations/"
			       "rollgate.io~1config-hash','value':'" VAL "'}]");

	ann = json_get_path(doc, "spec", "template", "metadata", "annotations", NULL);
	assert_int_equal(cJSON_GetArraySize(ann), 3);
	assert_string_equal(json_get_string(ann, "a"), "1");
	assert_string_equal(json_get_string(ann, "prometheus.io/scrape"), "true");
	cJSON_Delete(doc);
}

static void test_stale_value_replaced(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':"
			       "{'" KEY "':'sha256:old','b':'2'}}}}}",
			       KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations/"
			       "rollgate.io~1config-hash','value':'" VAL "'}]");
	cJSON_Delete(doc);
}

/* An annotation of the wrong type is replaced (kube-apiserver would reject
 * the object anyway, but the patch must still be applicable). */
static void test_non_string_value_replaced(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':{'" KEY "':5}}}}}", KEY,
			       VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations/"
			       "rollgate.io~1config-hash','value':'" VAL "'}]");
	cJSON_Delete(doc);
}

static void test_same_value_no_patch(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':{'" KEY "':'" VAL
			       "'}}}}}",
			       KEY, VAL, NULL);
	cJSON_Delete(doc);
}

/* The lookup is case-sensitive: "Rollgate.io/..." is another annotation. */
static void test_case_sensitive_key(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':"
			       "{'Rollgate.io/config-hash':'" VAL "'}}}}}",
			       KEY, VAL,
			       "[{'op':'add','path':'/spec/template/metadata/annotations/"
			       "rollgate.io~1config-hash','value':'" VAL "'}]");
	cJSON_Delete(doc);
}

static void test_key_escaping(void **state)
{
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':{'x':'y'}}}}}", "a/b~c",
			       "v",
			       "[{'op':'add','path':'/spec/template/metadata/annotations/a~1b~0c',"
			       "'value':'v'}]");

	cJSON_Delete(doc);
	/* "~1" in a key is a tilde and a one, not a slash */
	doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':{'x':'y'}}}}}", "~1/", "v",
			"[{'op':'add','path':'/spec/template/metadata/annotations/~01~1',"
			"'value':'v'}]");
	cJSON_Delete(doc);
}

/* Values with quotes, backslashes and non-ASCII come out as valid JSON. */
static void test_value_escaping(void **state)
{
	const char *v = "q\"b\\s\xc3\xa9\n";
	cJSON *doc = tu_parse("{'spec':{'template':{'metadata':{'annotations':{}}}}}");
	char *out = NULL;

	assert_int_equal(patch_template_annotation(doc, "k", v, &out), 0);
	assert_string_equal(out,
			    "[{\"op\":\"add\",\"path\":\"/spec/template/metadata/annotations/k\","
			    "\"value\":\"q\\\"b\\\\s\xc3\xa9\\n\"}]");
	apply(doc, out);
	assert_string_equal(json_get_string(json_get_path(doc, "spec", "template", "metadata",
							  "annotations", NULL),
					    "k"),
			    v);
	free(out);
	cJSON_Delete(doc);
}

/* ---- removal ------------------------------------------------------------- */

static void test_remove_present(void **state)
{
	const cJSON *ann;
	cJSON *doc = roundtrip("{'spec':{'template':{'metadata':{'annotations':"
			       "{'" KEY "':'sha256:stale','keep':'me'}}}}}",
			       KEY, NULL,
			       "[{'op':'remove','path':'/spec/template/metadata/annotations/"
			       "rollgate.io~1config-hash'}]");

	ann = json_get_path(doc, "spec", "template", "metadata", "annotations", NULL);
	assert_string_equal(json_get_string(ann, "keep"), "me");
	cJSON_Delete(doc);
}

static void test_remove_absent(void **state)
{
	static const char *const docs[] = {
		"{'spec':{'template':{}}}",
		"{'spec':{'template':{'metadata':null}}}",
		"{'spec':{'template':{'metadata':{}}}}",
		"{'spec':{'template':{'metadata':{'annotations':null}}}}",
		"{'spec':{'template':{'metadata':{'annotations':{'other':'x'}}}}}",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++)
		cJSON_Delete(roundtrip(docs[i], KEY, NULL, NULL));
}

/* ---- refusals ------------------------------------------------------------ */

static void test_wrong_shapes(void **state)
{
	static const char *const docs[] = {
		"{}",
		"{'spec':null}",
		"{'spec':{}}",
		"{'spec':{'template':null}}",
		"{'spec':{'template':[]}}",
		"{'spec':{'template':{'metadata':'x'}}}",
		"{'spec':{'template':{'metadata':[]}}}",
		"{'spec':{'template':{'metadata':{'annotations':[]}}}}",
		"{'spec':{'template':{'metadata':{'annotations':'a=b'}}}}",
		"[]",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++) {
		cJSON *doc = tu_parse(docs[i]);
		char *out = (char *)1;

		if (patch_template_annotation(doc, KEY, VAL, &out) != -1)
			fail_msg("case %zu: accepted %s", i, docs[i]);
		assert_null(out);
		out = (char *)1;
		assert_int_equal(patch_template_annotation(doc, KEY, NULL, &out), -1);
		assert_null(out);
		cJSON_Delete(doc);
	}
	{
		char *out = (char *)1;
		cJSON *doc = tu_parse("{'spec':{'template':{}}}");

		assert_int_equal(patch_template_annotation(NULL, KEY, VAL, &out), -1);
		assert_null(out);
		assert_int_equal(patch_template_annotation(doc, NULL, VAL, &out), -1);
		cJSON_Delete(doc);
	}
}

/* ---- patch_escape_pointer ------------------------------------------------ */

static void test_escape_pointer(void **state)
{
	static const char *const cases[][2] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "a/b~c", "a~1b~0c" },
		{ "~1", "~01" },
		{ "/~", "~1~0" },
		{ "~~//", "~0~0~1~1" },
		{ "\xc3\xa9/x", "\xc3\xa9~1x" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *e = patch_escape_pointer(cases[i][0]);

		assert_non_null(e);
		assert_string_equal(e, cases[i][1]);
		free(e);
	}
	assert_null(patch_escape_pointer(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_metadata),
		cmocka_unit_test(test_null_metadata),
		cmocka_unit_test(test_no_annotations),
		cmocka_unit_test(test_null_annotations),
		cmocka_unit_test(test_other_annotations_kept),
		cmocka_unit_test(test_stale_value_replaced),
		cmocka_unit_test(test_non_string_value_replaced),
		cmocka_unit_test(test_same_value_no_patch),
		cmocka_unit_test(test_case_sensitive_key),
		cmocka_unit_test(test_key_escaping),
		cmocka_unit_test(test_value_escaping),
		cmocka_unit_test(test_remove_present),
		cmocka_unit_test(test_remove_absent),
		cmocka_unit_test(test_wrong_shapes),
		cmocka_unit_test(test_escape_pointer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
