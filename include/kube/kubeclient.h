#ifndef ROLLGATE_KUBECLIENT_H
#define ROLLGATE_KUBECLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "dynbuf.h"
#include "kubeconn.h"

/*
 * The one transport to the Kubernetes API, under every module that talks
 * to it (kwatch, kubesource, lease, reloader). It alone builds requests:
 *
 * - every request: HTTPS only, HTTP/2 when offered, the conn's TLS
 *   material, "Accept: application/json", the bearer token (re-read as it
 *   rotates; the header line is wiped after use), a 10 s connect timeout,
 *   TCP keepalive probes, a total timeout given by the caller;
 * - names that go into URL paths are checked here (kube_valid_name,
 *   kube_valid_namespace) and query values escaped (kube_escape);
 * - replies land in capped buffers (a dynbuf; KUBE_REPLY_MAX for one
 *   object), wiped when they may hold Secret data;
 * - blocking requests (kube_client_request) for the Lease, patches and
 *   Events; transfers (struct kube_xfer) that streaming users run on their
 *   own curl-multi thread (struct kube_loop).
 */

/* One object's reply: far above the largest object etcd stores (1.5 MiB),
 * low enough to fail before memory does. */
#define KUBE_REPLY_MAX (4u << 20)
/* The err of kube_client_request when a reply passed KUBE_REPLY_MAX. */
#define KUBE_ERR_TOO_LARGE "answer too large"

/* ---- names and URLs ---- */

/* A DNS-1123 subdomain (object name; at most 253 bytes) / label
 * (namespace; at most 63): safe in a URL path (no "..", "/", "%"). NULL is
 * not valid. */
bool kube_valid_name(const char *s);
bool kube_valid_namespace(const char *s);
/* Percent-encodes s for a URL query value; malloc'd, NULL on OOM. */
char *kube_escape(const char *s);

/* ---- reply bodies ---- */

/* A reply body lands in a struct dynbuf (dynbuf.h) with the caller's cap
 * (KUBE_REPLY_MAX for one object): b becomes an empty buffer of at most
 * max bytes, sensitive (wiped when it grows, drops bytes or is released)
 * when it may hold Secret data. */
void kube_body_init(struct dynbuf *b, size_t max, bool sensitive);
/* A CURLOPT_WRITEFUNCTION appending to the struct dynbuf of
 * CURLOPT_WRITEDATA; past its cap (dynbuf_error says DYNBUF_E_TOOBIG) or on
 * OOM the transfer fails. */
size_t kube_body_write(char *data, size_t size, size_t nmemb, void *buf);

/* ---- the client ---- */

struct kube_client;

/* conn is borrowed and must outlive the client. NULL with err on OOM. */
struct kube_client *kube_client_new(const struct kube_conn *conn, char *err, size_t errlen);
/* NULL ok. */
void kube_client_free(struct kube_client *c);

struct kube_reply {
	long status; /* HTTP status */
	char *body;  /* NUL-terminated, malloc'd; "" when the answer had none */
	size_t len;
};

/*
 * One blocking request: method to server + path (path includes the query,
 * already escaped). body (NUL-terminated) is sent with content_type when
 * not NULL. Returns 0 when an HTTP answer arrived (any status: see
 * reply->status; the body is capped at KUBE_REPLY_MAX), or -1 with err on
 * a transport error, a timeout or OOM. Thread-safe; connections are kept
 * alive between requests. The caller releases the reply with
 * kube_reply_clear.
 */
int kube_client_request(struct kube_client *c, const char *method, const char *path,
			const char *content_type, const char *body, unsigned timeout_ms,
			struct kube_reply *reply, char *err, size_t errlen);
/* Frees the body and zeroes r (r itself is the caller's); NULL ok. */
void kube_reply_clear(struct kube_reply *r);
/* "HTTP 409: <Status message, clipped>" for a log line; never object values
 * (a Status message names objects, not their contents). kube_status_describe
 * does the same for a status and a body (NULL ok) held elsewhere. */
void kube_reply_describe(const struct kube_reply *r, char *out, size_t outlen);
void kube_status_describe(long status, const char *body, size_t len, char *out, size_t outlen);
/* The metav1 Status a reply body carries (kind "Status"), parsed; NULL if
 * it carries none. The caller deletes it. */
cJSON *kube_status_parse(const char *body, size_t len);

/* ---- transfers for a curl-multi loop ---- */

/* One request's curl handle with its headers and URL, set up as above. The
 * user sets CURLOPT_WRITEFUNCTION and CURLOPT_WRITEDATA (and anything
 * specific, e.g. CURLOPT_ACCEPT_ENCODING) and adds it to a loop. */
struct kube_xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
};

/* A GET of server + path (+ "?" query when not NULL) within timeout_ms.
 * Returns 0, or -1 on OOM (x is then empty). Thread-safe. */
int kube_xfer_open(struct kube_client *c, struct kube_xfer *x, const char *path, const char *query,
		   long timeout_ms);
/* Frees the handle (removed from its loop first), wipes the headers; x is
 * left empty. Accepts an empty x. */
void kube_xfer_close(struct kube_xfer *x);

/*
 * One thread driving one curl multi handle: the loop every streaming user
 * runs (the watch streams, the API object source). Each round calls
 * ops.tick (start what is due; it returns how long the loop may sleep, in
 * ms), performs, then ops.done for every transfer that ended; it sleeps
 * only when nothing ended. After kube_loop_free asks it to stop, ops.drain
 * runs on the loop thread (end what is left) and the thread exits.
 * Transfers are added and removed only from the loop thread (from the
 * callbacks); kube_loop_wake is the one call for other threads.
 */
struct kube_loop_ops {
	long (*tick)(void *arg);
	/* priv is what kube_loop_add was given; http_status 0 when none came. */
	void (*done)(void *arg, void *priv, CURLcode res, long http_status);
	void (*drain)(void *arg); /* may be NULL */
	void *arg;
};

struct kube_loop;

/* HTTP/2 multiplexing on; max_conns caps connections to the API server (0:
 * no cap). NULL with err. The thread starts with kube_loop_start. */
struct kube_loop *kube_loop_new(long max_conns, char *err, size_t errlen);
/* ops is copied. Returns 0 or -1 with err. */
int kube_loop_start(struct kube_loop *l, const struct kube_loop_ops *ops, char *err, size_t errlen);
/* Loop thread only. Returns 0, or -1 (the handle was not added). */
int kube_loop_add(struct kube_loop *l, CURL *easy, void *priv);
void kube_loop_remove(struct kube_loop *l, CURL *easy);
/* Any thread: the next round starts now. */
void kube_loop_wake(struct kube_loop *l);
/* Stops the thread (drain has run when this returns) and frees; NULL ok. */
void kube_loop_free(struct kube_loop *l);

#endif
