#ifndef ROLLGATE_KUBEDOUBLE_H
#define ROLLGATE_KUBEDOUBLE_H

/*
 * A kube-apiserver test double: an in-process HTTPS server (libmicrohttpd,
 * one thread per connection, so a slow answer never holds up the others)
 * on an ephemeral 127.0.0.1 port. It answers GETs of ConfigMaps, Secrets and
 * Deployments the way kube-apiserver does, choosing the outcome by name:
 *
 *   missing*    404 with a metav1 Status (reason NotFound)
 *   plain404*   404 with an HTML body (a proxy, not an API server)
 *   forbidden*  403 Status (reason Forbidden)
 *   boom        500 Status (reason InternalError)
 *   garbage*    200 with a body that is not JSON (it contains the secret value)
 *   wrongkind*  200 with an object of another kind
 *   slow*       the object, after slow_ms (3 s); teardown interrupts the wait
 *   anything    200 with the object (kd_object_json)
 *
 * It records the Authorization header it saw last and counts requests,
 * TCP connections and slow requests. Include testutil.h first.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "testutil.h"
#include "tlsdouble.h"

/* The value every Secret of the double holds, plain and base64. */
#define KD_SECRET_VALUE "s3cr3t-value"
#define KD_SECRET_VALUE_B64 "czNjcjN0LXZhbHVl"

struct kd {
	struct MHD_Daemon *d;
	unsigned port;
	char *cert, *key;
	unsigned slow_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	atomic_int requests;
	atomic_int connections;
	atomic_int slow_seen;
	char last_auth[1024];
	char last_path[512];
};

/* A kube-apiserver-shaped object as JSON; malloc'd, caller frees. resource is
 * "configmaps", "secrets" or "deployments". */
static inline char *kd_object_json(const char *resource, const char *ns, const char *name)
{
	static const char meta[] =
		"\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
		"\"uid\":\"6f1c2a9e-3b7d-4c55-9a61-0d2b8e4f7a10\",\"resourceVersion\":\"48213\","
		"\"creationTimestamp\":\"2024-05-01T10:00:00Z\",\"labels\":{\"app\":\"web\"},"
		"\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\","
		"\"apiVersion\":\"v1\",\"time\":\"2024-05-01T10:00:00Z\",\"fieldsType\":\"FieldsV1\","
		"\"fieldsV1\":{\"f:data\":{\".\":{}},\"f:metadata\":{\"f:labels\":{\".\":{},\"f:app\":{}}}}}]}";
	char m[2048], *out = malloc(8192);

	if (!out)
		return NULL;
	snprintf(m, sizeof(m), meta, name, ns);
	if (strcmp(resource, "configmaps") == 0)
		snprintf(out, 8192,
			 "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",%s,"
			 "\"data\":{\"app.properties\":\"color=blue\\nsize=%zu\\n\",\"LOG_LEVEL\":\"info\","
			 "\"owner\":\"%s\"},\"binaryData\":{\"blob.bin\":\"AAECAwQ=\"}}",
			 m, strlen(name), name);
	else if (strcmp(resource, "secrets") == 0)
		snprintf(out, 8192,
			 "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",%s,"
			 "\"data\":{\"password\":\"" KD_SECRET_VALUE_B64 "\",\"user\":\"YWRtaW4=\"},"
			 "\"type\":\"Opaque\"}",
			 m);
	else
		snprintf(out, 8192,
			 "{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",%s,"
			 "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
			 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"
			 "\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.25\"}]}},"
			 "\"strategy\":{\"type\":\"RollingUpdate\"}},"
			 "\"status\":{\"observedGeneration\":3,\"replicas\":2,\"readyReplicas\":2}}",
			 m);
	return out;
}

/* A metav1 Status body; malloc'd. */
static inline char *kd_status_json(int code, const char *reason, const char *message,
				   const char *name, const char *resource)
{
	char *out = malloc(4096);

	if (out)
		snprintf(out, 4096,
			 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
			 "\"message\":\"%s\",\"reason\":\"%s\",\"details\":{\"name\":\"%s\",\"kind\":\"%s\"},"
			 "\"code\":%d}",
			 message, reason, name, resource, code);
	return out;
}

static inline enum MHD_Result kd_send(struct MHD_Connection *conn, unsigned code, char *body,
				      const char *ctype)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Audit-Id", "0f3e8c1a-5b2d-4e6f-8a9b-1c2d3e4f5a6b");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static inline bool kd_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Splits /api/v1/namespaces/NS/RES/NAME or /apis/apps/v1/namespaces/NS/RES/NAME. */
static inline int kd_parse_url(const char *url, char *ns, char *res, char *name)
{
	int end = -1;

	if (sscanf(url, "/api/v1/namespaces/%255[^/]/%63[^/]/%255[^/]%n", ns, res, name, &end) == 3 &&
	    url[end] == '\0')
		return (strcmp(res, "configmaps") == 0 || strcmp(res, "secrets") == 0) ? 0 : -1;
	end = -1;
	if (sscanf(url, "/apis/apps/v1/namespaces/%255[^/]/%63[^/]/%255[^/]%n", ns, res, name, &end) == 3 &&
	    url[end] == '\0')
		return strcmp(res, "deployments") == 0 ? 0 : -1;
	return -1;
}

/* Waits slow_ms or until teardown; false when interrupted. */
static inline bool kd_slow_wait(struct kd *d)
{
	struct timespec until;
	bool interrupted;

	atomic_fetch_add(&d->slow_seen, 1);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += d->slow_ms / 1000;
	until.tv_nsec += (long)(d->slow_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->lock);
	while (!d->stopping && pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
		;
	interrupted = d->stopping;
	pthread_mutex_unlock(&d->lock);
	return !interrupted;
}

static inline enum MHD_Result kd_handler(void *cls, struct MHD_Connection *conn, const char *url,
					 const char *method, const char *version,
					 const char *upload_data, size_t *upload_data_size,
					 void **con_cls)
{
	static int marker;
	struct kd *d = cls;
	const char *auth;
	char ns[256], res[64], name[256], msg[1200];

	(void)version, (void)upload_data, (void)upload_data_size;
	if (!*con_cls) {
		*con_cls = &marker;
		return MHD_YES;
	}
	atomic_fetch_add(&d->requests, 1);
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	pthread_mutex_lock(&d->lock);
	snprintf(d->last_auth, sizeof(d->last_auth), "%s", auth ? auth : "");
	snprintf(d->last_path, sizeof(d->last_path), "%s", url);
	pthread_mutex_unlock(&d->lock);
	if (strcmp(method, "GET") != 0)
		return kd_send(conn, 405,
			       kd_status_json(405, "MethodNotAllowed", "the server does not allow this method",
					      "", ""),
			       "application/json");
	if (kd_parse_url(url, ns, res, name) < 0)
		return kd_send(conn, 404,
			       kd_status_json(404, "NotFound", "the server could not find the requested resource",
					      "", ""),
			       "application/json");
	if (kd_prefix(name, "missing")) {
		snprintf(msg, sizeof(msg), "%s \\\"%s\\\" not found", res, name);
		return kd_send(conn, 404, kd_status_json(404, "NotFound", msg, name, res), "application/json");
	}
	if (kd_prefix(name, "plain404"))
		return kd_send(conn, 404, strdup("<html><body>404 page not found</body></html>"), "text/html");
	if (kd_prefix(name, "forbidden")) {
		snprintf(msg, sizeof(msg),
			 "%s \\\"%s\\\" is forbidden: User \\\"system:serviceaccount:rollgate:rollgate\\\" "
			 "cannot get resource \\\"%s\\\" in API group \\\"\\\" in the namespace \\\"%s\\\"",
			 res, name, res, ns);
		return kd_send(conn, 403, kd_status_json(403, "Forbidden", msg, name, res), "application/json");
	}
	if (strcmp(name, "boom") == 0)
		return kd_send(conn, 500,
			       kd_status_json(500, "InternalError", "Internal error occurred: etcdserver: boom",
					      name, res),
			       "application/json");
	if (kd_prefix(name, "garbage"))
		return kd_send(conn, 200,
			       strdup("{\"kind\":\"Secret\",\"data\":{\"password\":\"" KD_SECRET_VALUE
				      "\" <<< not json"),
			       "application/json");
	if (kd_prefix(name, "wrongkind"))
		return kd_send(conn, 200, kd_object_json("deployments", ns, name), "application/json");
	if (kd_prefix(name, "slow") && !kd_slow_wait(d))
		return MHD_NO;
	return kd_send(conn, 200, kd_object_json(res, ns, name), "application/json");
}

static inline void kd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
				    enum MHD_ConnectionNotificationCode toe)
{
	struct kd *d = cls;

	(void)conn, (void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&d->connections, 1);
}

/* Starts the double with certdir/tls.crt and tls.key. Returns 0 or -1. */
static inline int kd_start(struct kd *d, const char *certdir)
{
	memset(d, 0, sizeof(*d));
	d->slow_ms = 3000;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->d = td_start(certdir, kd_handler, d, NULL, kd_on_connection, 30u, &d->cert, &d->key, &d->port);
	return d->d ? 0 : -1;
}

/* Interrupts slow answers, stops the daemon, frees; safe on a failed start. */
static inline void kd_stop(struct kd *d)
{
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->d)
		MHD_stop_daemon(d->d);
	d->d = NULL;
	free(d->cert);
	free(d->key);
	d->cert = d->key = NULL;
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

/* The Authorization header of the last request, copied to out. */
static inline void kd_last_auth(struct kd *d, char *out, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	pthread_mutex_lock(&d->lock);
	n = strnlen(d->last_auth, len - 1);
	memcpy(out, d->last_auth, n);
	out[n] = '\0';
	pthread_mutex_unlock(&d->lock);
}

/*
 * Writes a kubeconfig for the double at path: current-context "test",
 * cluster server https://127.0.0.1:PORT, the CA as certificate-authority-data
 * (ca_inline) or as the relative path "ca.crt" (the kubeconfig must then sit
 * next to it), user token. Returns 0 or -1.
 */
static inline int kd_write_kubeconfig(const struct kd *d, const char *certdir, const char *path,
				      bool ca_inline, const char *token)
{
	char capath[4200], *ca, *b64 = NULL, line[1100];
	size_t len = 0;
	FILE *f;
	int rc = -1;

	snprintf(capath, sizeof(capath), "%s/ca.crt", certdir);
	ca = tu_read_file(capath, &len);
	if (!ca)
		return -1;
	b64 = malloc(len / 3 * 4 + 8);
	f = fopen(path, "w");
	if (!b64 || !f)
		goto out;
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ca, (int)len);
	fprintf(f, "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n"
		   "- name: double\n  cluster:\n    server: https://127.0.0.1:%u\n",
		d->port);
	if (ca_inline)
		fprintf(f, "    certificate-authority-data: %s\n", b64);
	else
		fprintf(f, "    certificate-authority: ca.crt\n");
	snprintf(line, sizeof(line), "    token: %s\n", token);
	fprintf(f,
		"contexts:\n- name: other\n  context:\n    cluster: nowhere\n    user: nobody\n"
		"- name: test\n  context:\n    cluster: double\n    user: tester\n    namespace: ns1\n"
		"users:\n- name: tester\n  user:\n%s",
		line);
	rc = 0;
out:
	if (f && fclose(f) != 0)
		rc = -1;
	free(ca);
	free(b64);
	return rc;
}

#endif
