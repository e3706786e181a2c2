/*
 * The real binary over TLS: the AdmissionReview contract, every bad-input
 * case, TLS versions and suites, certificate hot reload through a kubelet
 * style symlink swap, metrics, and graceful shutdown with a request in flight.
 */
#include "harness.h"

#include <pthread.h>
#include <openssl/evp.h>

#include "jsonutil.h"

#define MAX_BODY 65536

static char certdir[256];
static struct rg_server srv;

static int setup(void **state)
{
	char objects[4400], config[4400], bodyflag[32];
	const char *args[16];

	(void)state;
	if (!h_bin()) {
		printf("[  SKIP    ] ROLLGATE_BIN not set\n");
		return 0;
	}
	if (h_make_certs(certdir, sizeof(certdir)) < 0)
		return -1;
	snprintf(objects, sizeof(objects), "%s/examples/objects", tu_root());
	snprintf(config, sizeof(config), "%s/examples/rollgate.yaml", tu_root());
	snprintf(bodyflag, sizeof(bodyflag), "%d", MAX_BODY);
	char crt[600], key[600];
	snprintf(crt, sizeof(crt), "%s/tls.crt", certdir);
	snprintf(key, sizeof(key), "%s/tls.key", certdir);
	int n = 0;
	args[n++] = "--tls-cert";
	args[n++] = crt;
	args[n++] = "--tls-key";
	args[n++] = key;
	args[n++] = "--objects";
	args[n++] = objects;
	args[n++] = "--config";
	args[n++] = config;
	args[n++] = "--max-body-bytes";
	args[n++] = bodyflag;
	args[n++] = "--idle-timeout";
	args[n++] = "5";
	args[n] = NULL;
	return h_start(&srv, certdir, args);
}

static int teardown(void **state)
{
	(void)state;
	if (srv.pid > 0)
		h_stop(&srv, SIGTERM, 10);
	h_rmrf(certdir);
	return 0;
}

#define NEED_SERVER()           \
	do {                    \
		if (!h_bin())   \
			skip(); \
	} while (0)

static char *example(const char *name, size_t *len)
{
	char path[4400];
	char *buf;

	snprintf(path, sizeof(path), "%s/examples/%s", tu_root(), name);
	buf = tu_read_file(path, len);
	assert_non_null(buf);
	return buf;
}

static cJSON *response_of(const struct h_resp *r)
{
	cJSON *doc;

	assert_non_null(r->body);
	doc = tu_json(r->body, strlen(r->body));
	assert_string_equal(json_get_string(doc, "apiVersion"), "admission.k8s.io/v1");
	assert_string_equal(json_get_string(doc, "kind"), "AdmissionReview");
	return doc;
}

static void test_mutate_stamps(void **state)
{
	struct h_resp r;
	size_t len;
	char *body = example("review-deployment.json", &len), decoded[2048] = "";
	const cJSON *resp;
	cJSON *doc, *patch;
	const char *b64;

	(void)state;
	NEED_SERVER();
	h_post(certdir, srv.port, "/mutate", body, len, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	doc = response_of(&r);
	resp = json_get(doc, "response");
	assert_string_equal(json_get_string(resp, "uid"), "0df28fbd-5f5f-11e8-9c2d-fa7ae01bbebc");
	assert_true(cJSON_IsTrue(json_get(resp, "allowed")));
	assert_string_equal(json_get_string(resp, "patchType"), "JSONPatch");
	b64 = json_get_string(resp, "patch");
	assert_non_null(b64);
	assert_true(EVP_DecodeBlock((unsigned char *)decoded, (const unsigned char *)b64,
				    (int)strlen(b64)) > 0);
	patch = tu_json(decoded, strlen(decoded));
	assert_true(cJSON_IsArray(patch));
	assert_non_null(strstr(decoded, "\"path\":\"/spec/template/metadata/annotations\""));
	assert_non_null(strstr(decoded, "\"rollgate.io/config-hash\":\"sha256:"));
	cJSON_Delete(patch);
	cJSON_Delete(doc);
	h_resp_free(&r);
	free(body);
}

static void test_validate_denies_replicaset_edit(void **state)
{
	struct h_resp r;
	size_t len;
	char *body = example("review-replicaset-edit.json", &len);
	const cJSON *resp, *st;
	cJSON *doc;

	(void)state;
	NEED_SERVER();
	h_post(certdir, srv.port, "/validate", body, len, NULL, &r);
	assert_int_equal(r.status, 200);
	doc = response_of(&r);
	resp = json_get(doc, "response");
	assert_false(cJSON_IsTrue(json_get(resp, "allowed")));
	assert_null(json_get(resp, "patch"));
	st = json_get(resp, "status");
	assert_int_equal(json_get(st, "code")->valueint, 403);
	assert_string_equal(json_get_string(st, "reason"), "Forbidden");
	assert_non_null(strstr(json_get_string(st, "message"), "Deployment \"web\""));
	cJSON_Delete(doc);
	h_resp_free(&r);
	free(body);
}

/* DELETE, CONNECT and unrelated kinds: answered, allowed, never patched. */
static void test_other_operations(void **state)
{
	const char *ops[] = { "DELETE", "CONNECT" };
	struct h_resp r;
	cJSON *doc;

	(void)state;
	NEED_SERVER();
	for (size_t i = 0; i < 2; i++) {
		char *body = h_review("op-1", ops[i], "null");
		h_post(certdir, srv.port, "/mutate", body, strlen(body), NULL, &r);
		assert_int_equal(r.status, 200);
		doc = response_of(&r);
		assert_true(cJSON_IsTrue(json_get(json_get(doc, "response"), "allowed")));
		assert_null(json_get(json_get(doc, "response"), "patch"));
		cJSON_Delete(doc);
		h_resp_free(&r);
		free(body);
	}
	const char *pod =
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		"\"uid\":\"pod-1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
		"\"operation\":\"CREATE\",\"namespace\":\"shop\",\"object\":{\"metadata\":{"
		"\"annotations\":"
		"{\"rollgate.io/reload\":\"true\"}},\"spec\":{\"containers\":[]}}}}";
	h_post(certdir, srv.port, "/mutate", pod, strlen(pod), NULL, &r);
	assert_int_equal(r.status, 200);
	doc = response_of(&r);
	assert_true(cJSON_IsTrue(json_get(json_get(doc, "response"), "allowed")));
	assert_null(json_get(json_get(doc, "response"), "patchType"));
	cJSON_Delete(doc);
	h_resp_free(&r);
}

static void expect_status(const char *path, const char *body, const char *ctype, long status,
			  const char *reason_part)
{
	struct h_resp r;

	h_post(certdir, srv.port, path, body, strlen(body), ctype, &r);
	assert_int_equal(r.rc, CURLE_OK);
	if (r.status != status)
		fail_msg("%s: got %ld, want %ld (%s)", path, r.status, status, r.body ? r.body : "");
	if (reason_part) {
		cJSON *doc;

		assert_non_null(r.body);
		doc = tu_json(r.body, strlen(r.body));
		assert_non_null(json_get_string(doc, "error"));
		if (!strstr(json_get_string(doc, "error"), reason_part))
			fail_msg("error \"%s\" lacks \"%s\"", json_get_string(doc, "error"),
				 reason_part);
		cJSON_Delete(doc);
	}
	h_resp_free(&r);
}

static void test_bad_requests(void **state)
{
	char *deep = malloc(1001);

	(void)state;
	NEED_SERVER();
	expect_status("/mutate", "{", NULL, 400, "invalid JSON");
	expect_status("/validate", "[1,2", NULL, 400, "invalid JSON");
	memset(deep, '[', 500);
	memset(deep + 500, ']', 500);
	deep[1000] = '\0';
	expect_status("/validate", deep, NULL, 400, "nested");
	free(deep);
	expect_status("/validate", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}", NULL, 400,
		      "apiVersion");
	expect_status("/validate",
		      "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", NULL,
		      400, "request");
	expect_status("/validate",
		      "{\"apiVersion\":\"admission.k8s.io/"
		      "v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		      "\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\"}}",
		      NULL, 400, "uid");
	expect_status("/validate",
		      "{\"apiVersion\":\"admission.k8s.io/"
		      "v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		      "\"uid\":\"a\",\"kind\":\"Pod\",\"operation\":\"CREATE\"}}",
		      NULL, 400, "kind");
	expect_status("/validate",
		      "{\"apiVersion\":\"admission.k8s.io/"
		      "v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		      "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
		      "\"operation\":\"DELETE\"}}",
		      NULL, 400, "duplicate");
	expect_status("/validate",
		      "{\"apiVersion\":\"admission.k8s.io/"
		      "v1\",\"kind\":\"AdmissionReview\",\"request\":{"
		      "\"uid\":\"a\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
		      "\"namespace\":\"x\\u0000y\"}}",
		      NULL, 400, "u0000");
	expect_status("/validate", "{}", "text/plain", 415, "Content-Type");
	expect_status("/nope", "{}", NULL, 404, "not found");
}

static void test_wrong_method(void **state)
{
	struct h_resp r;

	(void)state;
	NEED_SERVER();
	h_get(certdir, srv.port, "/mutate", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers, "Allow: POST"));
	h_resp_free(&r);
}

/* POSTs body to /validate with one extra header; expects status. */
static void post_with_header(const char *body, const char *header, long status)
{
	struct h_resp r;
	char url[256];
	CURL *c = h_curl(certdir, srv.port, "/validate", url, sizeof(url));
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

	h = curl_slist_append(h, header);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	h_perform(c, &r);
	assert_int_equal(r.status, status);
	h_resp_free(&r);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void test_body_too_large(void **state)
{
	size_t n = MAX_BODY * 4;
	char *big = malloc(n + 1);
	struct h_resp r;

	(void)state;
	NEED_SERVER();
	memset(big, ' ', n);
	big[n] = '\0';
	/* With Content-Length: refused before the body is read. The client is
	 * still sending it, so its connection lingers open a moment: the
	 * client reads the answer, not a reset (a few times, it is a race). */
	for (int i = 0; i < 5; i++)
		expect_status("/validate", big, NULL, 413, "larger than");
	/* With Expect: 100-continue: refused before the body is sent. */
	post_with_header(big, "Expect: 100-continue", 413);
	/* Chunked: drained, then refused. */
	post_with_header(big, "Transfer-Encoding: chunked", 413);
	free(big);
	/* And the server keeps serving. */
	h_get(certdir, srv.port, "/healthz", &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

/* One TLS handshake with the given client settings; returns the curl code. */
static CURLcode try_tls(long version, const char *ciphers)
{
	struct h_resp r;
	char url[256];
	CURL *c = h_curl(certdir, srv.port, "/healthz", url, sizeof(url));
	CURLcode rc;

	curl_easy_setopt(c, CURLOPT_SSLVERSION, version);
	if (ciphers)
		curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, ciphers);
	h_perform(c, &r);
	rc = r.rc;
	h_resp_free(&r);
	curl_easy_cleanup(c);
	return rc;
}

static void test_tls_versions(void **state)
{
	(void)state;
	NEED_SERVER();
	/* The client is willing (security level 0); the server must refuse. */
	assert_int_not_equal(try_tls(CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1,
				     "DEFAULT:@SECLEVEL=0"),
			     CURLE_OK);
	assert_int_not_equal(try_tls(CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_0,
				     "DEFAULT:@SECLEVEL=0"),
			     CURLE_OK);
	assert_int_equal(try_tls(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2, NULL),
			 CURLE_OK);
	assert_int_equal(try_tls(CURL_SSLVERSION_TLSv1_3, NULL), CURLE_OK);
	/* TLS 1.2 without forward secrecy or AEAD is refused. */
	assert_int_not_equal(try_tls(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
				     "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-GCM-"
				     "SHA256"),
			     CURLE_OK);
	assert_int_equal(try_tls(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
				 "ECDHE-ECDSA-AES128-GCM-SHA256"),
			 CURLE_OK);
}

/* Where sslscan is installed it must see exactly TLS 1.2 and 1.3, and for
 * TLS 1.2 only ECDHE with AEAD ciphers. */
static void test_sslscan(void **state)
{
	char cmd[1024];

	(void)state;
	NEED_SERVER();
	if (system("command -v sslscan >/dev/null 2>&1") != 0) {
		printf("sslscan not installed: scan skipped\n");
		skip();
	}
	snprintf(cmd, sizeof(cmd),
		 "out=$(sslscan --no-colour 127.0.0.1:%u 2>&1) && "
		 "echo \"$out\" | grep -q '^TLSv1.0 *disabled' && echo \"$out\" | grep -q '^TLSv1.1 "
		 "*disabled' && "
		 "echo \"$out\" | grep -q '^TLSv1.2 *enabled' && echo \"$out\" | grep -q '^TLSv1.3 "
		 "*enabled' && "
		 "echo \"$out\" | grep -E '(Preferred|Accepted) +TLSv1.2' | grep -q . && "
		 "! echo \"$out\" | grep -E '(Preferred|Accepted) +TLSv1.2' | grep -v -E "
		 "'ECDHE-[A-Z]+-(AES(128|256)-GCM|CHACHA20-POLY1305)'",
		 srv.port);
	assert_int_equal(system(cmd), 0);
}

static void test_metrics(void **state)
{
	struct h_resp r;
	char path[4400], cmd[8800];
	FILE *f;

	(void)state;
	NEED_SERVER();
	h_get_plain(srv.metrics_port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "# TYPE rollgate_requests_total counter"));
	assert_non_null(
		strstr(r.body, "rollgate_requests_total{endpoint=\"mutate\",outcome=\"patched\"}"));
	assert_non_null(strstr(r.body, "rollgate_request_duration_seconds_bucket"));
	assert_non_null(strstr(r.body, "rollgate_requests_in_flight"));
	assert_non_null(strstr(r.body, "rollgate_tls_certificate_expiry_timestamp_seconds 1"));
	assert_non_null(
		strstr(r.body, "rollgate_reloads_total{what=\"certificate\",outcome=\"success\"}"));
	/* The connection protections (docs/limits.md); the names are what
	 * alerts are written on. */
	assert_non_null(strstr(r.body,
			       "# TYPE rollgate_connections_open gauge\n"
			       "rollgate_connections_open{listener=\"https\"} "));
	assert_non_null(strstr(r.body, "\nrollgate_connections_open{listener=\"metrics\"} 1\n"));
	assert_non_null(strstr(r.body,
			       "\nrollgate_connections_refused_total{listener=\"https\",reason="
			       "\"limit\"} 0\n"));
	assert_non_null(strstr(r.body, "\nrollgate_requests_timed_out_total{listener=\"https\"} 0\n"));
	assert_non_null(strstr(r.body,
			       "\nrollgate_connections_evicted_total{listener=\"https\",state="
			       "\"reading\"} 0\n"));
	/* promtool, where installed, must accept the exposition. */
	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		snprintf(path, sizeof(path), "%s/metrics.txt", certdir);
		f = fopen(path, "w");
		assert_non_null(f);
		fwrite(r.body, 1, r.len, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		assert_int_equal(system(cmd), 0);
	} else {
		printf("promtool not installed: exposition lint skipped\n");
	}
	h_resp_free(&r);
	h_get_plain(srv.metrics_port, "/readyz", &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	h_get(certdir, srv.port, "/readyz", &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

static void test_log_lines(void **state)
{
	(void)state;
	NEED_SERVER();
	/* One line per decision, and one per rejected request with its reason. */
	assert_true(h_log_has(&srv, "\"uid\":\"0df28fbd-5f5f-11e8-9c2d-fa7ae01bbebc\""));
	assert_true(h_log_has(&srv, "\"decision\":\"patched\""));
	assert_true(h_log_has(&srv, "\"status\":415"));
	/* Secret values never reach the log. */
	assert_false(h_log_has(&srv, "example-only-not-a-real-password"));
}

/* ---- certificate reload through a kubelet-style symlink swap ---- */

static int run(const char *cmd)
{
	return system(cmd) == 0 ? 0 : -1;
}

/* Empties a file in place, the first step of a rewrite without rename. */
static void truncate_file(const char *path)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fclose(f);
}

static char *fingerprint_of_server(const char *cadir, unsigned port)
{
	struct h_resp r;
	char url[256];
	CURL *c = h_curl(cadir, port, "/healthz", url, sizeof(url));
	struct curl_certinfo *ci = NULL;
	char *out = NULL;

	curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	h_perform(c, &r);
	if (r.rc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
	    ci->num_of_certs > 0) {
		for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next) {
			if (strncmp(s->data, "Serial Number:", 14) == 0)
				out = strdup(s->data + 14);
		}
	}
	h_resp_free(&r);
	curl_easy_cleanup(c);
	return out;
}

/* Starts a server on dir/tls.crt and dir/tls.key, logging in dir. */
static void start_with_certs(struct rg_server *s, const char *dir)
{
	char crt[600], key[600];
	const char *args[5] = { "--tls-cert", crt, "--tls-key", key, NULL };

	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	assert_int_equal(h_start(s, dir, args), 0);
}

static void test_cert_reload_symlink_swap(void **state)
{
	char dir[512], cmd[20000];
	struct rg_server s2;
	char *before, *after = NULL;

	(void)state;
	NEED_SERVER();
	snprintf(dir, sizeof(dir), "%s/mounted", certdir);
	/* kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/ */
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p %s/..v1 && cp %s/tls.crt %s/tls.key %s/..v1/ && "
		 "ln -s ..v1 %s/..data && ln -s ..data/tls.crt %s/tls.crt && ln -s ..data/tls.key "
		 "%s/tls.key",
		 dir, certdir, certdir, dir, dir, dir, dir);
	assert_int_equal(run(cmd), 0);
	start_with_certs(&s2, dir);
	before = fingerprint_of_server(certdir, s2.port);
	assert_non_null(before);

	/* A new serving certificate from the same CA, swapped in atomically. */
	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s; mkdir -p $d/..v2; "
		 "openssl ecparam -name prime256v1 -genkey -noout -out $d/..v2/tls.key 2>/dev/null; "
		 "openssl req -new -key $d/..v2/tls.key -subj /CN=rotated -out $d/..v2/csr "
		 "2>/dev/null; "
		 "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $d/..v2/ext; "
		 "openssl x509 -req -in $d/..v2/csr -CA %s/ca.crt -CAkey %s/ca.key -CAcreateserial "
		 "-days 2 -extfile $d/..v2/ext -out $d/..v2/tls.crt 2>/dev/null; "
		 "ln -s ..v2 $d/..data_tmp && mv -T $d/..data_tmp $d/..data",
		 dir, certdir, certdir);
	assert_int_equal(run(cmd), 0);
	for (int i = 0; i < 100; i++) { /* within 10 s */
		free(after);
		after = fingerprint_of_server(certdir, s2.port);
		if (after && strcmp(after, before) != 0)
			break;
		usleep(100 * 1000);
	}
	assert_non_null(after);
	if (strcmp(after, before) == 0)
		fail_msg("certificate not reloaded within 10 s");
	assert_true(h_log_has(&s2, "serving certificate reloaded"));

	/* A broken pair is refused and the good one stays. */
	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s; mkdir -p $d/..v3; cp $d/..v2/tls.crt $d/..v3/; cp %s/tls.key "
		 "$d/..v3/; "
		 "ln -s ..v3 $d/..data_tmp && mv -T $d/..data_tmp $d/..data",
		 dir, certdir);
	assert_int_equal(run(cmd), 0);
	for (int i = 0; i < 50 && !h_log_has(&s2, "new serving certificate rejected"); i++)
		usleep(100 * 1000);
	assert_true(h_log_has(&s2, "does not match"));
	char *still = fingerprint_of_server(certdir, s2.port);
	assert_non_null(still);
	assert_string_equal(still, after);
	free(still);
	free(before);
	free(after);
	assert_int_equal(h_stop(&s2, SIGTERM, 10), 0);
}

/* A certificate file emptied in place keeps the pair in use, reported
 * once; the pair is served throughout. */
static void test_cert_emptied_in_place(void **state)
{
	char dir[512], cmd[4400], crt[600];
	struct rg_server s5;
	struct h_resp r;
	char *before, *after;

	(void)state;
	NEED_SERVER();
	snprintf(dir, sizeof(dir), "%s/inplace", certdir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/tls.crt %s/tls.key %s/", dir, certdir,
		 certdir, dir);
	assert_int_equal(run(cmd), 0);
	start_with_certs(&s5, dir);
	before = fingerprint_of_server(certdir, s5.port);
	assert_non_null(before);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	truncate_file(crt);
	for (int i = 0; i < 100 && !h_log_has(&s5, "tls.crt: file is empty"); i++)
		usleep(100 * 1000);
	assert_true(h_log_has(&s5, "new serving certificate rejected"));
	sleep(5); /* two more checks of the files */
	after = fingerprint_of_server(certdir, s5.port);
	assert_non_null(after);
	assert_string_equal(before, after);
	h_get_plain(s5.metrics_port, "/metrics", &r);
	assert_non_null(strstr(
		r.body, "rollgate_reloads_total{what=\"certificate\",outcome=\"failure\"} 1\n"));
	h_resp_free(&r);
	assert_int_equal(h_log_count(&s5, "new serving certificate rejected"), 1);
	free(before);
	free(after);
	assert_int_equal(h_stop(&s5, SIGTERM, 10), 0);
}

/* `rollgate serve` fails to start with cert and key (file names in the
 * certificate directory), the listen port (0: any) and extra flags, and
 * says want on stderr. */
static void expect_start_error(const char *cert, const char *key, unsigned port, const char *flags,
			       const char *want)
{
	char cmd[20000];

	snprintf(cmd, sizeof(cmd),
		 "%s serve --listen 127.0.0.1:%u --metrics-listen 127.0.0.1:0 --tls-cert %s/%s "
		 "--tls-key %s/%s %s 2>&1 | grep -q '%s'",
		 h_bin(), port, certdir, cert, certdir, key, flags, want);
	if (system(cmd) != 0)
		fail_msg("no \"%s\" from: %s", want, cmd);
}

static void test_startup_errors(void **state)
{
	char cmd[20000], flags[4400];

	(void)state;
	NEED_SERVER();
	expect_start_error("missing.crt", "tls.key", 0, "", "missing.crt: No such file");
	expect_start_error("tls.crt", "ca.key", 0, "", "does not match");
	expect_start_error("ca.key", "tls.key", 0, "", "not a PEM certificate");
	/* An invalid config stops the start, naming file, line and key. */
	snprintf(cmd, sizeof(cmd), "printf 'rules:\\n  no-such-rule: warn\\n' > %s/bad.yaml", certdir);
	assert_int_equal(system(cmd), 0);
	snprintf(flags, sizeof(flags), "--config %s/bad.yaml", certdir);
	expect_start_error("tls.crt", "tls.key", 0, flags,
			   "bad.yaml:2: no-such-rule: unknown rule ID");
	/* An empty config file is refused ({} asks for the defaults), and so is
	 * an empty certificate. */
	snprintf(cmd, sizeof(cmd), ": > %s/empty.yaml && : > %s/empty.crt", certdir, certdir);
	assert_int_equal(system(cmd), 0);
	snprintf(flags, sizeof(flags), "--config %s/empty.yaml", certdir);
	expect_start_error("tls.crt", "tls.key", 0, flags, "empty.yaml: no YAML document");
	expect_start_error("empty.crt", "tls.key", 0, "", "empty.crt: file is empty");
	/* The port the suite's server holds is refused, not shared. */
	expect_start_error("tls.crt", "tls.key", srv.port, "", "address in use");
	snprintf(cmd, sizeof(cmd), "%s serve --bogus >/dev/null 2>&1; test $? -eq 2", h_bin());
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s serve --help | grep -q -- --metrics-listen", h_bin());
	assert_int_equal(system(cmd), 0);
}

/* ---- config and object files re-read while serving ---- */

static void write_file(const char *path, const char *text)
{
	char tmp[700];
	FILE *f;

	/* Replace atomically, as a ConfigMap mount or an editor does. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

static const char *latest_deployment =
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
	"\"annotations\":{\"rollgate.io/reload\":\"true\"}},\"spec\":{\"template\":{\"spec\":"
	"{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:latest\",\"readinessProbe\":{},"
	"\"envFrom\":[{\"configMapRef\":{\"name\":\"cfg\"}}]}]}}}}";

/* POSTs the review and returns the parsed response (caller deletes). */
static cJSON *ask(unsigned port, const char *path)
{
	struct h_resp r;
	char *body = h_review("reload-1", "CREATE", latest_deployment);
	cJSON *doc;

	h_post(certdir, port, path, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.body);
	doc = tu_json(r.body, strlen(r.body));
	h_resp_free(&r);
	free(body);
	return doc;
}

static bool denied(unsigned port)
{
	cJSON *doc = ask(port, "/validate");
	bool d = cJSON_IsFalse(json_get(json_get(doc, "response"), "allowed"));

	cJSON_Delete(doc);
	return d;
}

static char *patch_of(unsigned port)
{
	cJSON *doc = ask(port, "/mutate");
	const char *p = json_get_string(json_get(doc, "response"), "patch");
	char *out = p ? strdup(p) : NULL;

	cJSON_Delete(doc);
	return out;
}

/* Polls /mutate until its patch differs from old (up to 10 s). */
static char *wait_patch_change(unsigned port, const char *old)
{
	char *p = NULL;

	for (int i = 0; i < 100; i++) {
		free(p);
		p = patch_of(port);
		if (p && strcmp(p, old) != 0)
			return p;
		usleep(100 * 1000);
	}
	fail_msg("the hash did not change within 10 s");
	return p;
}

static void test_config_and_objects_reload(void **state)
{
	char dir[512], cfg[600], objdir[600], obj[700], crt[600], key[600];
	const char *args[12];
	struct rg_server s4;
	struct h_resp r;
	char *p1, *p2 = NULL;
	int i;

	(void)state;
	NEED_SERVER();
	snprintf(dir, sizeof(dir), "%s/reload", certdir);
	snprintf(cfg, sizeof(cfg), "%s/rollgate.yaml", dir);
	snprintf(objdir, sizeof(objdir), "%s/objects", dir);
	snprintf(obj, sizeof(obj), "%s/cfg.yaml", objdir);
	snprintf(crt, sizeof(crt), "%s/tls.crt", certdir);
	snprintf(key, sizeof(key), "%s/tls.key", certdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(objdir, 0700), 0);
	write_file(cfg, "rules:\n  mutable-image-tag: warn\n");
	write_file(obj, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: \"1\"}\n");
	args[0] = "--tls-cert";
	args[1] = crt;
	args[2] = "--tls-key";
	args[3] = key;
	args[4] = "--config";
	args[5] = cfg;
	args[6] = "--objects";
	args[7] = objdir;
	args[8] = NULL;
	assert_int_equal(h_start(&s4, dir, args), 0);
	assert_false(denied(s4.port));
	p1 = patch_of(s4.port);
	assert_non_null(p1);

	write_file(cfg, "rules:\n  mutable-image-tag: enforce\n");
	for (i = 0; i < 100 && !denied(s4.port); i++)
		usleep(100 * 1000);
	assert_true(i < 100);

	/* A broken config is refused; the last good one stays in force. */
	write_file(cfg, "rules:\n  mutable-image-tag: sometimes\n");
	for (i = 0; i < 100 && !h_log_has(&s4, "config rejected"); i++)
		usleep(100 * 1000);
	assert_true(h_log_has(&s4, "rollgate.yaml:2: mutable-image-tag: mode must be"));
	assert_true(denied(s4.port));
	h_get_plain(s4.metrics_port, "/metrics", &r);
	assert_non_null(
		strstr(r.body, "rollgate_reloads_total{what=\"config\",outcome=\"failure\"} 1"));
	h_resp_free(&r);

	/* Truncated in place, as an in-place rewrite does for an instant: an
	 * error, not the built-in defaults, reported once however long it
	 * lasts. */
	write_file(cfg, "rules:\n  mutable-image-tag: enforce\n");
	truncate_file(cfg);
	for (i = 0; i < 100 && !h_log_has(&s4, "no YAML document"); i++)
		usleep(100 * 1000);
	assert_true(h_log_has(&s4, "rollgate.yaml: no YAML document"));
	sleep(5); /* two more polls of the file */
	assert_true(denied(s4.port));
	h_get_plain(s4.metrics_port, "/metrics", &r);
	assert_non_null(
		strstr(r.body, "rollgate_reloads_total{what=\"config\",outcome=\"failure\"} 2"));
	h_resp_free(&r);
	assert_int_equal(h_log_count(&s4, "config rejected"), 2);

	/* A changed ConfigMap file changes the hash. */
	write_file(obj, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: \"2\"}\n");
	for (i = 0; i < 100; i++) {
		free(p2);
		p2 = patch_of(s4.port);
		if (p2 && strcmp(p1, p2) != 0)
			break;
		usleep(100 * 1000);
	}
	assert_non_null(p2);
	assert_string_not_equal(p1, p2);

	/* A rotated HMAC key file is picked up without a config edit. */
	char keyfile[700], cfgtext[900];
	snprintf(keyfile, sizeof(keyfile), "%s/hmac.key", dir);
	write_file(keyfile, "first-key-0123456789\n");
	snprintf(cfgtext, sizeof(cfgtext), "stamp:\n  hmacKeyFile: %s\n", keyfile);
	write_file(cfg, cfgtext);
	free(p1);
	p1 = wait_patch_change(s4.port, p2);
	write_file(keyfile, "second-key-0123456789\n");
	free(p2);
	p2 = wait_patch_change(s4.port, p1);
	free(p1);
	free(p2);
	assert_int_equal(h_stop(&s4, SIGTERM, 10), 0);
}

/* ---- graceful shutdown ---- */

struct slow_upload {
	const char *body;
	size_t len, off;
	bool paused;
};

static size_t slow_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct slow_upload *u = arg;
	size_t n = size * nmemb, left = u->len - u->off;

	if (!u->paused && u->off > 0) {
		/* Half the body is out: the server has the request in flight. */
		u->paused = true;
		sleep(2);
	}
	if (n > left)
		n = left;
	if (n > u->len / 2 && !u->paused)
		n = u->len / 2;
	memcpy(buf, u->body + u->off, n);
	u->off += n;
	return n;
}

struct inflight {
	const char *certdir;
	unsigned port;
	struct h_resp r;
	char *body;
	size_t len;
};

static void *send_slow(void *arg)
{
	struct inflight *f = arg;
	struct slow_upload u = { f->body, f->len, 0, false };
	char url[256];
	CURL *c = h_curl(f->certdir, f->port, "/validate", url, sizeof(url));
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, slow_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &u);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)f->len);
	h_perform(c, &f->r);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void test_graceful_shutdown(void **state)
{
	char dir[512], crt[600], key[600];
	const char *args[8];
	struct rg_server s3;
	struct inflight f = { 0 };
	struct h_resp r;
	pthread_t t;
	struct timespec started;

	(void)state;
	NEED_SERVER();
	snprintf(dir, sizeof(dir), "%s/shutdown", certdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(crt, sizeof(crt), "%s/tls.crt", certdir);
	snprintf(key, sizeof(key), "%s/tls.key", certdir);
	args[0] = "--tls-cert";
	args[1] = crt;
	args[2] = "--tls-key";
	args[3] = key;
	args[4] = NULL;
	assert_int_equal(h_start(&s3, dir, args), 0);
	f.certdir = certdir;
	f.port = s3.port;
	f.body = example("review-deployment.json", &f.len);
	pthread_create(&t, NULL, send_slow, &f);
	usleep(700 * 1000); /* the first half is sent */
	rgtime_now(&started);
	kill(s3.pid, SIGTERM);
	usleep(300 * 1000);
	/* Draining: not ready, and no new connections. */
	h_get_plain(s3.metrics_port, "/readyz", &r);
	assert_int_equal(r.status, 503);
	h_resp_free(&r);
	h_get(certdir, s3.port, "/healthz", &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	h_resp_free(&r);
	pthread_join(t, NULL);
	/* The request in flight was answered, with Connection: close. */
	assert_int_equal(f.r.status, 200);
	assert_non_null(strstr(f.r.body, "\"allowed\":true"));
	assert_non_null(strstr(f.r.headers, "Connection: close"));
	assert_int_equal(h_stop(&s3, SIGTERM, 10), 0);
	assert_true(rgtime_elapsed_s(&started) < 10);
	h_resp_free(&f.r);
	free(f.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutate_stamps),
		cmocka_unit_test(test_validate_denies_replicaset_edit),
		cmocka_unit_test(test_other_operations),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_wrong_method),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_tls_versions),
		cmocka_unit_test(test_sslscan),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_log_lines),
		cmocka_unit_test(test_cert_reload_symlink_swap),
		cmocka_unit_test(test_cert_emptied_in_place),
		cmocka_unit_test(test_startup_errors),
		cmocka_unit_test(test_config_and_objects_reload),
		cmocka_unit_test(test_graceful_shutdown),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
