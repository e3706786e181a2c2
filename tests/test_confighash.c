/* Tests for confighash: the test vectors of docs/confighash.md (expected
 * values computed with printf | sha256sum and openssl dgst -hmac, not with
 * this code), object digests, Go-compatible base64, and refusals. */
#include "testutil.h"

#include <openssl/evp.h>

#include "confighash.h"
#include "jsonutil.h"
#include "refs.h"

/* ---- fixtures: the objects of docs/confighash.md ------------------------ */

#define APP_CONFIG                                              \
	"{'kind':'ConfigMap','metadata':{'name':'app-config'}," \
	"'data':{'app.properties':'x=1\\n','LOG_LEVEL':'debug'}}"
#define BIN_CONFIG                                              \
	"{'kind':'ConfigMap','metadata':{'name':'bin-config'}," \
	"'data':{'mode':'fast'},'binaryData':{'blob':'3q2+7w=='}}"
#define DB_CREDS                                           \
	"{'kind':'Secret','metadata':{'name':'db-creds'}," \
	"'data':{'password':'czNjcjN0','tls.key':'AAEC//4='},'stringData':{'ignored':'yes'}}"

/* printf VALUE | sha256sum */
#define H_DEBUG "0b8e9e995d8d77f1e4770f0f79665aee6f3f70247b3735422daba73df4c3096f"
#define H_X1 "98752ee28d5484bdc2814fb70adb6a0b2fb31f6a9b8ee7ae81fd2fc9cf300b3b"
#define H_S3CR3T "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"
#define H_TLSKEY "aa5cd9acfab25f643fb1cedb67f8770417ac9ce0b02cfe72a62fa1ec20e9f60a"
#define H_BLOB "5f78c33274e43fa9de5659265c1d917e25c03722dcb0b8d27db8d5feaa813953"
#define H_FAST "115dc3606fbf8691fb69f2aefec86f2ecd302362a0502b3a9648bf2c4dc8290f"
#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void hex(const unsigned char *d, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digest_ok(const char *json, enum obj_kind kind, struct obj_digest *d)
{
	char err[256] = "";
	cJSON *obj = tu_parse(json);

	if (confighash_digest_object(obj, kind, d, err, sizeof(err)) != 0)
		fail_msg("digest_object: %s", err);
	cJSON_Delete(obj);
}

static void digest_err(const char *json, enum obj_kind kind, const char *want)
{
	struct obj_digest d = { (struct obj_entry *)1, 7, 0 };
	char err[256] = "";
	cJSON *obj = tu_parse(json);

	assert_int_equal(confighash_digest_object(obj, kind, &d, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(d.entries);
	assert_int_equal(d.n, 0);
	cJSON_Delete(obj);
}

static void assert_entry(const struct obj_digest *d, size_t i, const char *key, const char *h)
{
	char got[65];

	assert_true(i < d->n);
	assert_string_equal(d->entries[i].key, key);
	hex(d->entries[i].digest, got);
	assert_string_equal(got, h);
}

/* ---- the vectors ------------------------------------------------------- */

struct vector {
	const char *name;
	const char *podspec;
	const char *objects[3]; /* API JSON of the objects that exist */
	const char *hmac_key;   /* NULL: plain SHA-256 */
	const char *stream;     /* exactly as in the doc */
	const char *want;
};

static const struct vector vectors[] = {
	{ "V1",
	  "{'containers':[{'name':'web','envFrom':[{'configMapRef':{'name':'app-config'}}]}]}",
	  { APP_CONFIG },
	  NULL,
	  "ConfigMap/app-config\n2\nLOG_LEVEL\n" H_DEBUG "\napp.properties\n" H_X1 "\n",
	  "sha256:9cb19d807e25f35cdc37e9bc3422a503e499efe1d9cd686933fac8548064c4a9" },
	{ "V2",
	  "{'containers':[{'name':'web','env':[{'name':'L','valueFrom':{'configMapKeyRef':"
	  "{'name':'app-config','key':'LOG_LEVEL'}}}]}],"
	  "'volumes':[{'name':'cfg','configMap':{'name':'app-config','items':[{'key':'missing-key','"
	  "path':'m'}]}}]}",
	  { APP_CONFIG },
	  NULL,
	  "ConfigMap/app-config\n2\nLOG_LEVEL\n" H_DEBUG "\nmissing-key\n-\n",
	  "sha256:429d7bb4d40f497efdb38bd35513220d88752bbb3c3af2833a24e2ad8cc6b826" },
	{ "V3",
	  "{'containers':[{'name':'web','envFrom':[{'secretRef':{'name':'db-creds'}}]}]}",
	  { NULL },
	  NULL,
	  "Secret/db-creds\n-\n",
	  "sha256:c1b6fc5949d8a22985f5ec06b72b038f88dd44e3a125046ee4689e4b78c00085" },
	{ "V4",
	  "{'volumes':[{'name':'tls','secret':{'secretName':'db-creds'}}]}",
	  { DB_CREDS },
	  NULL,
	  "Secret/db-creds\n2\npassword\n" H_S3CR3T "\ntls.key\n" H_TLSKEY "\n",
	  "sha256:bd4731db027c85a51139aa30eafca0948eb47b43e062474af71606c41e19d98d" },
	{ "V5",
	  "{'volumes':[{'name':'b','projected':{'sources':[{'configMap':{'name':'bin-config'}}]}}]}",
	  { BIN_CONFIG },
	  NULL,
	  "ConfigMap/bin-config\n2\nblob\n" H_BLOB "\nmode\n" H_FAST "\n",
	  "sha256:c308ac3123dcd960bc2fc583a28830ada3e54e4e2c88c8cf5ef4d67a131082e8" },
	{ "V6",
	  "{'containers':[{'name':'web','envFrom':[{'configMapRef':{'name':'app-config'}}],"
	  "'env':[{'name':'PW','valueFrom':{'secretKeyRef':{'name':'db-creds','key':'password'}}}]}],"
	  "'volumes':[{'name':'flags','configMap':{'name':'feature-flags','optional':true}}]}",
	  { APP_CONFIG, DB_CREDS },
	  NULL,
	  "ConfigMap/app-config\n2\nLOG_LEVEL\n" H_DEBUG "\napp.properties\n" H_X1 "\n"
	  "ConfigMap/feature-flags\n-\n"
	  "Secret/db-creds\n1\npassword\n" H_S3CR3T "\n",
	  "sha256:34ad9bc82d2ab0e18dbedccc643bc92261844f314ad9d6677b1e95cd6f8f7d0f" },
	{ "V7",
	  "{'containers':[{'name':'web','envFrom':[{'configMapRef':{'name':'app-config'}}],"
	  "'env':[{'name':'PW','valueFrom':{'secretKeyRef':{'name':'db-creds','key':'password'}}}]}],"
	  "'volumes':[{'name':'flags','configMap':{'name':'feature-flags','optional':true}}]}",
	  { APP_CONFIG, DB_CREDS },
	  "rollgate-test-key",
	  "ConfigMap/app-config\n2\nLOG_LEVEL\n" H_DEBUG "\napp.properties\n" H_X1 "\n"
	  "ConfigMap/feature-flags\n-\n"
	  "Secret/db-creds\n1\npassword\n" H_S3CR3T "\n",
	  "sha256:a38923e8f7e0080b22bd4539bf169d88b64b026390ad9b22f42965c6575e57b7" },
	{ "V8",
	  "{'containers':[{'name':'web','image':'nginx'}]}",
	  { NULL },
	  NULL,
	  "",
	  "sha256:" H_EMPTY },
};

/* Looks the ref's object up among the vector's objects by kind and name. */
static const struct obj_digest *lookup(const struct vector *v, const struct ref *r,
				       struct obj_digest *store)
{
	for (size_t i = 0; i < 3 && v->objects[i]; i++) {
		cJSON *obj = tu_parse(v->objects[i]);
		const char *kind = json_get_string(obj, "kind");
		const char *name = json_get_string(json_get(obj, "metadata"), "name");
		bool match = strcmp(kind, refs_kind_name(r->kind)) == 0 && strcmp(name, r->name) == 0;
		char err[128];

		if (match)
			assert_int_equal(
				confighash_digest_object(obj, r->kind, store, err, sizeof(err)), 0);
		cJSON_Delete(obj);
		if (match)
			return store;
	}
	return NULL;
}

static void run_vector(const struct vector *v)
{
	struct refset set = { 0 };
	struct obj_digest store[4] = { { 0 } };
	const struct obj_digest *objs[4] = { 0 };
	const unsigned char *key = (const unsigned char *)v->hmac_key;
	size_t keylen = v->hmac_key ? strlen(v->hmac_key) : 0;
	char value[CONFIGHASH_VALUE_LEN], err[256] = "";
	char *stream;
	size_t len;
	cJSON *spec = tu_parse(v->podspec);

	assert_int_equal(refs_collect(spec, &set, err, sizeof(err)), 0);
	refs_finish(&set);
	assert_true(set.n <= 4);
	for (size_t i = 0; i < set.n; i++)
		objs[i] = lookup(v, &set.refs[i], &store[i]);

	assert_int_equal(confighash_compute(&set, objs, key, keylen, value), 0);
	if (strcmp(value, v->want) != 0)
		fail_msg("%s: got %s want %s", v->name, value, v->want);

	assert_int_equal(confighash_stream(&set, objs, &stream, &len), 0);
	assert_int_equal(len, strlen(v->stream));
	assert_memory_equal(stream, v->stream, len);
	free(stream);

	assert_int_equal(confighash_stream_value(v->stream, strlen(v->stream), key, keylen, value), 0);
	assert_string_equal(value, v->want);

	for (size_t i = 0; i < 4; i++)
		confighash_digest_clear(&store[i]);
	refs_clear(&set);
	cJSON_Delete(spec);
}

static void test_vectors(void **state)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++)
		run_vector(&vectors[i]);
}

/* The vectors above must be the ones the document shows. */
static void test_doc_has_vectors(void **state)
{
	char path[4200];
	char *doc;

	snprintf(path, sizeof(path), "%s/docs/confighash.md", tu_root());
	doc = tu_read_file(path, NULL);
	if (!doc) {
		printf("[  SKIP    ] %s not found (set ROLLGATE_ROOT)\n", path);
		skip();
	}
	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++) {
		if (!strstr(doc, vectors[i].want))
			fail_msg("%s value %s missing from the doc", vectors[i].name, vectors[i].want);
	}
	free(doc);
}

/* ---- HMAC -------------------------------------------------------------- */

static void test_hmac(void **state)
{
	char plain[CONFIGHASH_VALUE_LEN], keyed[CONFIGHASH_VALUE_LEN];
	static const unsigned char k[] = "";

	assert_int_equal(confighash_stream_value("", 0, NULL, 0, plain), 0);
	assert_string_equal(plain, "sha256:" H_EMPTY);
	/* printf '' | openssl mac -digest SHA256 -macopt hexkey: HMAC (empty key) */
	assert_int_equal(confighash_stream_value("", 0, k, 0, keyed), 0);
	assert_string_equal(keyed,
			    "sha256:b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
	/* printf abc | openssl dgst -sha256 -hmac key */
	assert_int_equal(confighash_stream_value("abc", 3, (const unsigned char *)"key", 3, keyed), 0);
	assert_string_equal(keyed,
			    "sha256:9c196e32dc0175f86f4b1cb89289d6619de6bee699e4c378e68309ed97a1a6ab");
}

/* ---- object digests ---------------------------------------------------- */

static void test_digest_configmap(void **state)
{
	struct obj_digest d;

	digest_ok(BIN_CONFIG, OBJ_CONFIGMAP, &d);
	assert_int_equal(d.n, 2);
	assert_entry(&d, 0, "blob", H_BLOB);
	assert_entry(&d, 1, "mode", H_FAST);
	confighash_digest_clear(&d);

	digest_ok(APP_CONFIG, OBJ_CONFIGMAP, &d);
	assert_int_equal(d.n, 2);
	assert_entry(&d, 0, "LOG_LEVEL", H_DEBUG);
	assert_entry(&d, 1, "app.properties", H_X1);
	confighash_digest_clear(&d);

	/* data values are the string's bytes, never decoded */
	digest_ok("{'data':{'k':'czNjcjN0','e':''}}", OBJ_CONFIGMAP, &d);
	assert_entry(&d, 0, "e", H_EMPTY);
	confighash_digest_clear(&d);

	digest_ok("{'metadata':{'name':'x'}}", OBJ_CONFIGMAP, &d);
	assert_int_equal(d.n, 0);
	assert_null(d.entries);
	digest_ok("{'data':null,'binaryData':{}}", OBJ_CONFIGMAP, &d);
	assert_int_equal(d.n, 0);
}

static void test_digest_secret(void **state)
{
	struct obj_digest d;

	digest_ok(DB_CREDS, OBJ_SECRET, &d);
	assert_int_equal(d.n, 2);
	assert_entry(&d, 0, "password", H_S3CR3T);
	assert_entry(&d, 1, "tls.key", H_TLSKEY);
	confighash_digest_clear(&d);

	/* a Secret has no binaryData; it is not read */
	digest_ok("{'data':{'a':''},'binaryData':{'b':'!!'}}", OBJ_SECRET, &d);
	assert_int_equal(d.n, 1);
	assert_entry(&d, 0, "a", H_EMPTY);
	confighash_digest_clear(&d);
}

static void test_digest_errors(void **state)
{
	digest_err("{'data':{'a':'x'},'binaryData':{'a':'eA=='}}", OBJ_CONFIGMAP,
		   "key \"a\" is in both data and binaryData");
	digest_err("{'data':{'pw':'c2VjcmV0IQ'}}", OBJ_SECRET, "data[\"pw\"]: invalid base64");
	digest_err("{'binaryData':{'b':'not base64'}}", OBJ_CONFIGMAP,
		   "binaryData[\"b\"]: invalid base64");
	digest_err("{'data':{'n':1}}", OBJ_CONFIGMAP, "data[\"n\"]: expected a string");
	digest_err("{'data':{'n':null}}", OBJ_SECRET, "data[\"n\"]: expected a string");
	digest_err("{'data':[]}", OBJ_CONFIGMAP, "data: expected an object");
	digest_err("{'binaryData':'x'}", OBJ_CONFIGMAP, "binaryData: expected an object");
	digest_err("[]", OBJ_SECRET, "Secret: expected an object");
	digest_err("{'data':{'a\\nb':'x'}}", OBJ_CONFIGMAP,
		   "data: a key contains a control character");
}

/* The value never appears in an error, even when it is the problem. */
static void test_error_never_names_value(void **state)
{
	struct obj_digest d;
	char err[256];
	cJSON *obj = tu_parse("{'data':{'token':'SUPERSECRETVALUE*'}}");

	assert_int_equal(confighash_digest_object(obj, OBJ_SECRET, &d, err, sizeof(err)), -1);
	assert_null(strstr(err, "SUPERSECRET"));
	assert_non_null(strstr(err, "token"));
	cJSON_Delete(obj);
}

/* cJSON keeps duplicate members (json_parse_strict refuses them, but not
 * every caller parses that way). */
static void test_digest_duplicate_member(void **state)
{
	struct obj_digest d;
	char err[256];
	cJSON *obj = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(obj, "data");

	cJSON_AddStringToObject(data, "k", "a");
	cJSON_AddStringToObject(data, "k", "b");
	assert_int_equal(confighash_digest_object(obj, OBJ_CONFIGMAP, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "duplicate key \"k\"");
	cJSON_Delete(obj);
}

static void test_digest_cap(void **state)
{
	struct obj_digest d;
	char err[256], k[16];
	cJSON *obj = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(obj, "data");
	cJSON *bin = cJSON_AddObjectToObject(obj, "binaryData");

	for (int i = 0; i < 65536; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		cJSON_AddStringToObject(data, k, "");
	}
	assert_int_equal(confighash_digest_object(obj, OBJ_CONFIGMAP, &d, err, sizeof(err)), 0);
	assert_int_equal(d.n, 65536);
	confighash_digest_clear(&d);
	cJSON_AddStringToObject(bin, "one-more", "");
	assert_int_equal(confighash_digest_object(obj, OBJ_CONFIGMAP, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "more than 65536 entries");
	cJSON_Delete(obj);
}

/* ---- base64 as Go's StdEncoding --------------------------------------- */

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[32];
	unsigned int len;

	assert_int_equal(EVP_Digest(p, n, d, &len, EVP_sha256(), NULL), 1);
	hex(d, out);
}

static void test_base64_go_semantics(void **state)
{
	/* input, decoded bytes (NULL = invalid), decoded length */
	static const struct {
		const char *in;
		const char *out;
		size_t n;
	} cases[] = {
		{ "", "", 0 },
		{ "Zm9v", "foo", 3 },
		{ "Zm8=", "fo", 2 },
		{ "Zg==", "f", 1 },
		{ "Zm9vYmFy", "foobar", 6 },
		{ "Zm9=", "fo", 2 }, /* non-zero trailing bits: Go's StdEncoding drops them */
		{ "Zh==", "f", 1 },
		{ "Zm\r\n9v", "foo", 3 }, /* newlines ignored anywhere */
		{ "Zg=\n=\n", "f", 1 },
		{ "\n", "", 0 },
		{ "+/+/", "\xfb\xff\xbf", 3 },
		{ "Zm8", NULL, 0 }, /* padding required */
		{ "Zg", NULL, 0 },
		{ "Z", NULL, 0 },
		{ "Zg=", NULL, 0 },
		{ "Z===", NULL, 0 },
		{ "====", NULL, 0 },
		{ "Zm8=Zm8=", NULL, 0 }, /* nothing after the padding */
		{ "Zg==\nx", NULL, 0 },
		{ "Zg=x", NULL, 0 },
		{ "-_-_", NULL, 0 }, /* URL alphabet */
		{ "Zm9v ", NULL, 0 },
		{ " Zm9v", NULL, 0 },
		{ "Zm9v\t", NULL, 0 },
		{ "Zm9v====", NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		cJSON *obj = cJSON_CreateObject();
		cJSON *data = cJSON_AddObjectToObject(obj, "data");
		struct obj_digest d;
		char err[128], want[65], got[65];
		int rc;

		cJSON_AddStringToObject(data, "k", cases[i].in);
		rc = confighash_digest_object(obj, OBJ_SECRET, &d, err, sizeof(err));
		if (!cases[i].out) {
			if (rc != -1)
				fail_msg("case %zu: accepted invalid base64", i);
			assert_string_equal(err, "data[\"k\"]: invalid base64");
		} else {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err);
			sha256_hex(cases[i].out, cases[i].n, want);
			hex(d.entries[0].digest, got);
			if (strcmp(got, want) != 0)
				fail_msg("case %zu decoded wrong", i);
			confighash_digest_clear(&d);
		}
		cJSON_Delete(obj);
	}
}

/* A value larger than the decoder's chunk, checked against OpenSSL's own
 * encoder and digest. */
static void test_base64_large(void **state)
{
	size_t n = 100000 + 2;
	unsigned char *raw = malloc(n);
	char *b64 = malloc(4 * ((n + 2) / 3) + 1);
	char want[65], got[65], err[128];
	struct obj_digest d;
	cJSON *obj = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(obj, "data");

	for (size_t i = 0; i < n; i++)
		raw[i] = (unsigned char)(i * 7 + 3);
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
	cJSON_AddStringToObject(data, "big", b64);
	assert_int_equal(confighash_digest_object(obj, OBJ_SECRET, &d, err, sizeof(err)), 0);
	sha256_hex(raw, n, want);
	hex(d.entries[0].digest, got);
	assert_string_equal(got, want);
	confighash_digest_clear(&d);
	cJSON_Delete(obj);
	free(raw);
	free(b64);
}

/* ---- copies and refusals ----------------------------------------------- */

static void test_dup(void **state)
{
	struct obj_digest d, empty = { 0 };
	struct obj_digest *c;

	digest_ok(DB_CREDS, OBJ_SECRET, &d);
	c = confighash_digest_dup(&d);
	assert_non_null(c);
	assert_int_equal(c->n, 2);
	assert_true(c->entries[0].key != d.entries[0].key);
	assert_entry(c, 0, "password", H_S3CR3T);
	assert_entry(c, 1, "tls.key", H_TLSKEY);
	confighash_digest_free(c);
	confighash_digest_clear(&d);
	c = confighash_digest_dup(&empty);
	assert_non_null(c);
	assert_int_equal(c->n, 0);
	confighash_digest_free(c);
	assert_null(confighash_digest_dup(NULL));
	confighash_digest_free(NULL);
	confighash_digest_clear(NULL);
}

/* The way the object caches use it: calloc, digest into it, free it whole,
 * after success and after failure alike (ASan reports any leak). */
static void test_heap_digest(void **state)
{
	static const char *const objs[] = { DB_CREDS, "{'data':{'k':'%%%'}}" };
	char err[128];

	for (size_t i = 0; i < 2; i++) {
		struct obj_digest *d = calloc(1, sizeof(*d));
		cJSON *obj = tu_parse(objs[i]);

		assert_int_equal(confighash_digest_object(obj, OBJ_SECRET, d, err, sizeof(err)),
				 i == 0 ? 0 : -1);
		confighash_digest_free(d);
		cJSON_Delete(obj);
	}
}

/* A set that was not finished, or names the stream cannot carry, are
 * refused rather than hashed into something that depends on build order. */
static void test_compute_refusals(void **state)
{
	char *ka[] = { "b", "a" };
	struct ref refs[2] = {
		{ .kind = OBJ_SECRET, .name = "a", .whole = true },
		{ .kind = OBJ_CONFIGMAP, .name = "b", .whole = true },
	};
	struct refset set = { .refs = refs, .n = 2 };
	struct obj_entry ent[2] = { { .key = "z" }, { .key = "a" } };
	struct obj_digest unsorted = { ent, 2, 0 };
	const struct obj_digest *objs[2] = { NULL, NULL };
	char out[CONFIGHASH_VALUE_LEN];

	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1);
	assert_string_equal(out, "");
	refs[0].kind = OBJ_CONFIGMAP;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), 0);
	assert_int_equal(confighash_compute(&set, NULL, NULL, 0, out), 0); /* nothing exists */
	refs[1].name = "a";
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1); /* duplicate */
	refs[1].name = "b\nc";
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1);
	refs[1].name = "b";
	refs[1].whole = false;
	refs[1].keys = ka;
	refs[1].n_keys = 2;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1); /* keys unsorted */
	ka[0] = "a\nb";
	refs[1].n_keys = 1;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1); /* key with newline */
	refs[1].keys = ka + 1;
	objs[1] = &unsorted;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, out), -1); /* entries unsorted */
}

/* Different sets that could collide in a careless encoding do not. */
static void test_distinct_inputs(void **state)
{
	struct obj_entry e = { .key = "k" };
	struct obj_digest with = { &e, 1, 0 }, none = { 0 };
	char *kk[] = { "k" };
	struct ref r = { .kind = OBJ_CONFIGMAP, .name = "x", .whole = true };
	struct refset set = { .refs = &r, .n = 1 };
	const struct obj_digest *objs[1];
	char a[CONFIGHASH_VALUE_LEN], b[CONFIGHASH_VALUE_LEN], c[CONFIGHASH_VALUE_LEN];
	char dd[CONFIGHASH_VALUE_LEN];

	objs[0] = &none; /* exists, empty */
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, a), 0);
	objs[0] = NULL; /* absent */
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, b), 0);
	r.kind = OBJ_SECRET;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, c), 0);
	r.kind = OBJ_CONFIGMAP;
	r.whole = false;
	r.keys = kk;
	r.n_keys = 1;
	objs[0] = &with; /* the selected key "k" exists: same entries as whole */
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, dd), 0);
	assert_string_not_equal(a, b);
	assert_string_not_equal(b, c);
	assert_string_not_equal(a, dd);
	r.whole = true;
	r.n_keys = 0;
	assert_int_equal(confighash_compute(&set, objs, NULL, 0, a), 0);
	assert_string_equal(a, dd); /* whole {k} and selected {k} are the same stream */
}

/* confighash_stream renders up to CONFIGHASH_STREAM_MAX bytes and refuses
 * a longer stream instead of truncating it. 4 whole objects of 60,000 keys
 * each make about 17 MB of stream lines. */
static void test_stream_cap(void **state)
{
	enum { KEYS = 60000 };
	struct refset set = { 0 };
	struct obj_digest d = { 0 };
	const struct obj_digest *objs[4] = { &d, &d, &d, &d };
	char *stream = (char *)1;
	size_t len = 1;

	d.entries = calloc(KEYS, sizeof(*d.entries));
	assert_non_null(d.entries);
	for (size_t i = 0; i < KEYS; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%05zu", i);
		d.entries[i].key = strdup(key);
		assert_non_null(d.entries[i].key);
	}
	assert_int_equal(refs_add_list(&set, OBJ_CONFIGMAP, "a,b,c,d", "test"), 0);
	refs_finish(&set);
	d.n = KEYS;
	assert_int_equal(confighash_stream(&set, objs, &stream, &len), -1);
	assert_null(stream);
	assert_int_equal(len, 0);
	/* One object of the same keys fits, and is all there. */
	set.n = 1;
	assert_int_equal(confighash_stream(&set, objs, &stream, &len), 0);
	assert_true(len > (size_t)KEYS * 64 && len < CONFIGHASH_STREAM_MAX);
	assert_int_equal(strlen(stream), len);
	assert_non_null(strstr(stream, "k59999\n"));
	free(stream);
	set.n = 4;
	refs_clear(&set);
	confighash_digest_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_doc_has_vectors),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_digest_configmap),
		cmocka_unit_test(test_digest_secret),
		cmocka_unit_test(test_digest_errors),
		cmocka_unit_test(test_error_never_names_value),
		cmocka_unit_test(test_digest_duplicate_member),
		cmocka_unit_test(test_digest_cap),
		cmocka_unit_test(test_base64_go_semantics),
		cmocka_unit_test(test_base64_large),
		cmocka_unit_test(test_dup),
		cmocka_unit_test(test_heap_digest),
		cmocka_unit_test(test_compute_refusals),
		cmocka_unit_test(test_distinct_inputs),
		cmocka_unit_test(test_stream_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
