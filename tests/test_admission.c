/* The AdmissionReview contract: strict decoding and responses kube-apiserver accepts. */
#include "testutil.h"

#include <openssl/evp.h>

#include "admission.h"
#include "jsonutil.h"

static const char *valid =
	"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
	"\"uid\":\"u-1\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":\"Deployment\"},"
	"\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"deployments\"},"
	"\"name\":\"web\",\"namespace\":\"shop\",\"operation\":\"UPDATE\",\"dryRun\":true,"
	"\"userInfo\":{\"username\":\"alice\",\"groups\":[\"dev\"]},"
	"\"object\":{\"kind\":\"Deployment\"},\"oldObject\":{\"kind\":\"Deployment\"}}}";

static int decode(const char *body, struct admission_request *req, char *err, size_t errlen)
{
	return admission_decode(body, strlen(body), req, err, errlen);
}

static void test_decode_valid(void **state)
{
	struct admission_request req;
	char err[256];

	(void)state;
	assert_int_equal(decode(valid, &req, err, sizeof(err)), 0);
	assert_string_equal(req.uid, "u-1");
	assert_string_equal(req.group, "apps");
	assert_string_equal(req.kind, "Deployment");
	assert_string_equal(req.resource, "deployments");
	assert_string_equal(req.subresource, "");
	assert_string_equal(req.namespace_, "shop");
	assert_int_equal(req.operation, OP_UPDATE);
	assert_true(req.dry_run);
	assert_string_equal(req.username, "alice");
	assert_non_null(req.object);
	assert_non_null(req.old_object);
	admission_request_clear(&req);
}

/* Each body must give a 400 with a reason naming the problem. */
static void expect_bad(const char *body, const char *reason_part)
{
	struct admission_request req;
	char err[256] = "";

	assert_int_equal(decode(body, &req, err, sizeof(err)), -1);
	if (!strstr(err, reason_part))
		fail_msg("reason \"%s\" lacks \"%s\"", err, reason_part);
}

static void test_decode_rejects(void **state)
{
	char deep[400];
	size_t i;

	(void)state;
	expect_bad("{", "invalid JSON");
	expect_bad("{} x", "invalid JSON");
	expect_bad("[]", "JSON object");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/"
		   "v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
		   "apiVersion");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Review\",\"request\":{}}",
		   "kind");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "request");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\"}}",
		   "uid");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":7,\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\"}}",
		   "uid");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"PATCH\"}}",
		   "operation");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"namespace\":"
		   "5}}",
		   "namespace");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"object\":[]}"
		   "}",
		   "object");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"dryRun\":"
		   "\"yes\"}}",
		   "dryRun");
	/* Go's decoder keeps the last duplicate, cJSON the first: refuse both. */
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"uid\":\"b\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\"}"
		   "}",
		   "duplicate key");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"namespace\":"
		   "\"kube-system\\u0000x\"}}",
		   "\\u0000");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\tb\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\"}}",
		   "control character");
	expect_bad("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		   "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"object\":{"
		   "\"n\":1e999}}}",
		   "out of range");
	/* Case matters: "Kind" is not "kind". */
	expect_bad("{\"apiVersion\":\"admission.k8s.io/"
		   "v1\",\"Kind\":\"AdmissionReview\",\"request\":{}}",
		   "kind");
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	for (; i < 200; i++)
		deep[i] = ']';
	deep[i] = '\0';
	expect_bad(deep, "nested deeper");
}

static cJSON *encode_parse(const char *uid, const struct admission_response *r, bool allow_patch)
{
	char *out = admission_encode(uid, r, allow_patch);
	cJSON *doc;

	assert_non_null(out);
	doc = tu_json(out, strlen(out));
	free(out);
	assert_string_equal(json_get_string(doc, "apiVersion"), "admission.k8s.io/v1");
	assert_string_equal(json_get_string(doc, "kind"), "AdmissionReview");
	return doc;
}

static void test_encode_allowed_with_patch(void **state)
{
	struct admission_response r;
	const cJSON *resp;
	cJSON *doc;
	unsigned char decoded[256];
	const char *b64;
	int n;

	(void)state;
	admission_response_init(&r);
	r.patch = strdup("[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]");
	doc = encode_parse("uid-\"q\"", &r, true);
	resp = json_get(doc, "response");
	assert_string_equal(json_get_string(resp, "uid"), "uid-\"q\"");
	assert_true(cJSON_IsTrue(json_get(resp, "allowed")));
	assert_string_equal(json_get_string(resp, "patchType"), "JSONPatch");
	b64 = json_get_string(resp, "patch");
	n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)strlen(b64));
	assert_true(n > 0);
	assert_memory_equal(decoded, r.patch, strlen(r.patch));
	assert_null(json_get(resp, "status"));
	cJSON_Delete(doc);

	/* /validate and DELETE never carry a patch. */
	doc = encode_parse("u", &r, false);
	assert_null(json_get(json_get(doc, "response"), "patch"));
	assert_null(json_get(json_get(doc, "response"), "patchType"));
	cJSON_Delete(doc);
	admission_response_clear(&r);
}

static void test_encode_denied(void **state)
{
	struct admission_response r;
	const cJSON *st;
	cJSON *doc;

	(void)state;
	admission_response_init(&r);
	assert_int_equal(admission_deny(&r, "rule-a: first"), 0);
	assert_int_equal(admission_deny(&r, "rule-b: second"), 0);
	r.patch = strdup("[]");
	doc = encode_parse("u", &r, true);
	assert_false(cJSON_IsTrue(json_get(json_get(doc, "response"), "allowed")));
	st = json_get(json_get(doc, "response"), "status");
	assert_int_equal(json_get(st, "code")->valueint, 403);
	assert_string_equal(json_get_string(st, "reason"), "Forbidden");
	assert_string_equal(json_get_string(st, "message"), "rule-a: first; rule-b: second");
	/* A denial never patches. */
	assert_null(json_get(json_get(doc, "response"), "patch"));
	cJSON_Delete(doc);
	admission_response_clear(&r);
}

static void test_warnings_sanitised(void **state)
{
	struct admission_response r;
	char long_text[400];

	(void)state;
	admission_response_init(&r);
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	/* é straddling the cut must not be split. */
	memcpy(long_text + 252, "\xc3\xa9\xc3\xa9", 4);
	assert_int_equal(admission_warn(&r, long_text), 0);
	assert_int_equal(admission_warn(&r, "tab\there\nnewline \x01 bad \xff utf8 \xc2\x85 \xc3"), 0);
	/* kube-apiserver keeps one of each text, and none that is empty. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(admission_warn(&r, "another"), 0);
	assert_int_equal(admission_warn(&r, ""), 0);
	assert_int_equal(r.n_warnings, 3);
	for (size_t i = 0; i < r.n_warnings; i++) {
		assert_true(tu_runes(r.warnings[i]) <= ADM_WARNING_MAX_RUNES);
		assert_true(tu_valid_warning(r.warnings[i]));
	}
	assert_int_equal(tu_runes(r.warnings[0]), ADM_WARNING_MAX_RUNES);
	assert_non_null(strstr(r.warnings[0], "xx\xc3\xa9..."));
	/* A C1 control (U+0085) makes the API server drop the whole warning. */
	assert_string_equal(r.warnings[1], "tab here newline   bad ? utf8 ?? ?");
	assert_string_equal(r.warnings[2], "another");
	admission_response_clear(&r);
}

/* The budget is 4096 runes of the API server's, not bytes: 200-rune
 * warnings of two-byte characters fit 20 times (8000 bytes); the 21st and
 * later ones are counted in a last warning. */
static void test_warnings_budget(void **state)
{
	struct admission_response r;
	char text[2 * 200 + 16];
	size_t total = 0, bytes = 0;

	(void)state;
	admission_response_init(&r);
	for (int i = 0; i < 30; i++) {
		size_t o = (size_t)snprintf(text, sizeof(text), "%03d ", i);
		while (tu_runes(text) < 200) {
			memcpy(text + o, "\xc3\xbc", 3);
			o += 2;
		}
		assert_int_equal(admission_warn(&r, text), 0);
	}
	assert_int_equal(r.n_warnings, 21);
	for (size_t i = 0; i < r.n_warnings; i++) {
		assert_true(tu_valid_warning(r.warnings[i]));
		total += tu_runes(r.warnings[i]);
		bytes += strlen(r.warnings[i]);
	}
	assert_true(total <= ADM_WARNINGS_MAX_RUNES);
	assert_true(bytes > ADM_WARNINGS_MAX_RUNES);
	assert_int_equal(r.warning_runes, 20 * 200);
	assert_string_equal(r.warnings[20], "and more warnings not shown: 10");
	/* Past the budget nothing else gets in, however short. */
	assert_int_equal(admission_warn(&r, "short"), 0);
	assert_int_equal(r.n_warnings, 21);
	assert_string_equal(r.warnings[20], "and more warnings not shown: 11");
	admission_response_clear(&r);

	/* Past ADM_MAX_WARNINGS the same. */
	admission_response_init(&r);
	for (int i = 0; i < ADM_MAX_WARNINGS + 5; i++) {
		snprintf(text, sizeof(text), "w%d", i);
		assert_int_equal(admission_warn(&r, text), 0);
	}
	assert_int_equal(r.n_warnings, ADM_MAX_WARNINGS);
	assert_string_equal(r.warnings[ADM_MAX_WARNINGS - 1], "and more warnings not shown: 6");
	admission_response_clear(&r);
}

static void test_audit_keys(void **state)
{
	struct admission_response r;
	char long_key[100];
	cJSON *doc;
	const cJSON *a;

	(void)state;
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	admission_response_init(&r);
	assert_int_equal(admission_audit(&r, "rollgate.io/mutable-image-tag", "image nginx"), 0);
	assert_int_equal(admission_audit(&r, long_key, "v"), 0);
	doc = encode_parse("u", &r, false);
	a = json_get(json_get(doc, "response"), "auditAnnotations");
	assert_non_null(json_get(a, "rollgate.io-mutable-image-tag"));
	for (const cJSON *m = a->child; m; m = m->next) {
		assert_null(strchr(m->string, '/'));
		assert_true(strlen(m->string) <= 63);
	}
	cJSON_Delete(doc);
	admission_response_clear(&r);
}

/* A Deployment or ReplicaSet UPDATE review with managedFields, status and
 * a pod spec in both objects; old_spec_extra is added to oldObject.spec. */
static char *pruned_review(const char *kind, const char *old_spec_extra)
{
	static const char fmt[] =
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		"\"uid\":\"u-2\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":\"%s\"},"
		"\"operation\":\"UPDATE\",\"object\":%s,\"oldObject\":%s}}";
	static const char obj[] =
		"{\"kind\":\"%s\",\"metadata\":{\"name\":\"web\",\"managedFields\":[{\"manager\":"
		"\"kubectl\",\"fieldsV1\":{\"f:spec\":{}}}],\"annotations\":{\"a\":\"b\"}},"
		"\"spec\":{\"replicas\":3,\"template\":{\"metadata\":{\"annotations\":{\"t\":\"1\"}},"
		"\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx\"}]}}%s},"
		"\"status\":{\"replicas\":3}}";
	char o[1024], old[1024], *out = malloc(4096);

	assert_non_null(out);
	snprintf(o, sizeof(o), obj, kind, "");
	snprintf(old, sizeof(old), obj, kind, old_spec_extra);
	snprintf(out, 4096, fmt, kind, o, old);
	return out;
}

/* The tree leaves out managedFields, status and (but for ReplicaSets) the
 * old pod spec; every other member is there as the full parser reads it. */
static void test_decode_prunes_unread_members(void **state)
{
	struct admission_request req;
	char err[256], *body = pruned_review("Deployment", "");
	const cJSON *o, *old;

	(void)state;
	assert_int_equal(decode(body, &req, err, sizeof(err)), 0);
	o = req.object;
	old = req.old_object;
	assert_null(json_get(o, "status"));
	assert_null(json_get(old, "status"));
	assert_null(json_get_path(o, "metadata", "managedFields", NULL));
	assert_null(json_get_path(old, "metadata", "managedFields", NULL));
	assert_string_equal(json_get_string(json_get_path(o, "metadata", "annotations", NULL), "a"),
			    "b");
	assert_non_null(json_get_path(o, "spec", "template", "spec", "containers", NULL));
	assert_null(json_get_path(old, "spec", "template", "spec", NULL));
	assert_string_equal(json_get_string(json_get_path(old, "spec", "template", "metadata",
							  "annotations", NULL),
					    "t"),
			    "1");
	assert_true(req.spec_unchanged);
	admission_request_clear(&req);
	free(body);

	/* A ReplicaSet keeps the old pod spec, for the spec comparison, and a
	 * spec written another way is not "the same bytes". */
	body = pruned_review("ReplicaSet", ",\"minReadySeconds\":0");
	assert_int_equal(decode(body, &req, err, sizeof(err)), 0);
	assert_false(req.spec_unchanged);
	assert_non_null(json_get_path(req.old_object, "spec", "template", "spec", "containers", NULL));
	assert_null(json_get(req.old_object, "status"));
	admission_request_clear(&req);
	free(body);
}

/* Refusals keep json_parse_strict's words, whichever check trips first. */
static void test_decode_refusals_match_strict_parser(void **state)
{
	static const char *bodies[] = {
		"{\"a\":1,\"a\":2}",   "[1,]",          "{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\uZZZZ\"}", "{\"a\":1e999}", "{\"a\":\"\xff\"}",
		"{\"a\":1} x",
	};
	char e1[256], e2[256];
	struct admission_request req;
	cJSON *doc = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(decode(bodies[i], &req, e1, sizeof(e1)), -1);
		assert_int_equal(json_parse_strict(bodies[i], strlen(bodies[i]), &doc, e2, sizeof(e2)),
				 -1);
		assert_string_equal(e1, e2);
	}
}

static void test_corpus_review(void **state)
{
	const char *corpus = tu_corpus();
	char path[4400], err[256];
	struct admission_request req;
	size_t len = 0;
	char *buf;

	(void)state;
	if (!corpus)
		skip();
	snprintf(path, sizeof(path),
		 "%s/upstream/kubernetes-api/admission.k8s.io.v1.AdmissionReview.json", corpus);
	buf = tu_read_file(path, &len);
	assert_non_null(buf);
	/* The upstream round-trip fixture fills every field with placeholder
	 * values; it must decode (or be refused with a reason), never crash. */
	if (admission_decode(buf, len, &req, err, sizeof(err)) == 0) {
		assert_non_null(req.uid);
		admission_request_clear(&req);
	} else {
		printf("upstream AdmissionReview fixture refused: %s\n", err);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_valid),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_encode_allowed_with_patch),
		cmocka_unit_test(test_encode_denied),
		cmocka_unit_test(test_warnings_sanitised),
		cmocka_unit_test(test_warnings_budget),
		cmocka_unit_test(test_audit_keys),
		cmocka_unit_test(test_corpus_review),
		cmocka_unit_test(test_decode_prunes_unread_members),
		cmocka_unit_test(test_decode_refusals_match_strict_parser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
