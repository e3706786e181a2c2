/*
 * HTTP edge: routing, method/content-type/size checks, TLS, suspension of
 * requests that wait on lookups, graceful drain. Decisions live in webhook.
 *
 * Around libmicrohttpd the server adds what it lacks (docs/limits.md): a
 * guard on each listener (connguard) for a read deadline and a connection
 * limit enforced at accept time, framing checks on every request's
 * headers, and a drain that answers whatever arrives on an open connection
 * until that connection closes.
 */
#include "server.h"

#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include <gnutls/gnutls.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>

#include "certstore.h"
#include "connguard.h"
#include "dynbuf.h"
#include "jsonutil.h"
#include "log.h"
#include "rgtime.h"
#include "metrics.h"

/* Mozilla "intermediate": TLS 1.2 and 1.3, ECDHE key exchange, AEAD only.
 * X25519 first: it is the key share Go (kube-apiserver), OpenSSL and curl
 * send first, and with the server's precedence any other first group costs
 * every new connection a HelloRetryRequest round trip. */
static const char tls_priorities[] =
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:"
	"+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%SERVER_PRECEDENCE";

/* One single-threaded daemon per worker, all bound to the port with
 * SO_REUSEPORT: the kernel spreads connections evenly over them, where one
 * MHD thread pool lets whichever thread wakes first accept them all. */
#define MAX_WORKERS 256

/* How long past the drain a stop waits for reviews still on lookups. */
#define STOP_GRACE_MS 10000.0

/* The metrics listener: the kubelet's probes and Prometheus. */
#define METRICS_CONN_LIMIT 64u
#define METRICS_IDLE_TIMEOUT 10u

/* Descriptors kept for everything but HTTPS connections: listeners, epoll
 * and wake-up pipes, the metrics listener's 64 connections, files, the
 * Kubernetes API. */
#define FD_RESERVE 256

struct server {
	struct MHD_Daemon *https[MAX_WORKERS];
	unsigned n_https;
	struct MHD_Daemon *metrics;
	struct webhook *wh;
	size_t max_body;
	struct connguard *https_guard;
	struct connguard *metrics_guard;
	atomic_int ready;
	atomic_int draining;
	atomic_int reviewing; /* reviews between their start and their answer or resumption */
	atomic_int stopping;  /* set once the daemons are about to stop: no new reviews */
};

/* Per-request state, freed only in the completion callback. */
struct request {
	enum metrics_endpoint ep;
	struct timespec start;
	struct dynbuf body; /* capped at the server's max_body */
	bool too_large;
	struct webhook_call *call;
	struct MHD_Connection *conn;
	struct server *srv;
	pthread_mutex_t lock;
	bool suspended;
	bool finished;
	bool counted;
};

static enum MHD_Result send_buffer(struct server *srv, struct MHD_Connection *conn, int status,
				   const char *ctype, void *buf, size_t len,
				   enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, mode);
	enum MHD_Result ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(buf);
		return MHD_NO;
	}
	/* Answered from here on: no read deadline, never evicted. */
	connguard_busy(conn);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	/* kube-apiserver reuses idle connections: a draining server tells it not to. */
	if (atomic_load(&srv->draining))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A short JSON error body ({"error": "..."}), logged once. */
static enum MHD_Result reject(struct server *srv, struct MHD_Connection *conn, struct request *rq,
			      const char *method, const char *url, int status, const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	char *body, m[24], path[160];

	/* Both come from the request line (libmicrohttpd decodes %XX in the
	 * path): clipped to valid UTF-8 before they reach the log. */
	json_clip_utf8(m, sizeof(m), method, sizeof(m) - 1);
	json_clip_utf8(path, sizeof(path), url, sizeof(path) - 1);
	RG_LOG(LOG_WARN, "request rejected", LF_S("method", m), LF_S("path", path),
	       LF_I("status", status), LF_S("reason", reason));
	if (rq && !rq->counted) {
		rq->counted = true;
		metrics_request(rq->ep, OUT_INVALID, rgtime_elapsed_s(&rq->start));
	} else if (!rq) {
		metrics_request(EP_OTHER, OUT_INVALID, 0);
	}
	if (!o || !cJSON_AddStringToObject(o, "error", reason)) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body)
		return MHD_NO;
	return send_buffer(srv, conn, status, "application/json", body, strlen(body),
			   MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_text(struct server *srv, struct MHD_Connection *conn, int status,
				 const char *text)
{
	return send_buffer(srv, conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
			   MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result health(struct server *srv, struct MHD_Connection *conn, const char *url,
			      const char *method)
{
	bool is_ready = strcmp(url, "/readyz") == 0;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_text(srv, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (is_ready && !atomic_load(&srv->ready))
		return send_text(srv, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
	return send_text(srv, conn, MHD_HTTP_OK, "ok\n");
}

static bool is_json(const char *ctype)
{
	size_t n = strlen("application/json");

	if (!ctype || strncasecmp(ctype, "application/json", n) != 0)
		return false;
	return ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ';
}

static struct request *request_new(const struct server *srv, enum metrics_endpoint ep,
				   struct MHD_Connection *conn)
{
	struct request *rq = calloc(1, sizeof(*rq));

	if (!rq)
		return NULL;
	dynbuf_init(&rq->body, srv->max_body);
	rq->ep = ep;
	rq->conn = conn;
	rgtime_now(&rq->start);
	pthread_mutex_init(&rq->lock, NULL);
	return rq;
}

/* The first call for an admission request: checks that need no body. */
static enum MHD_Result admission_begin(struct server *srv, struct MHD_Connection *conn,
				       const char *url, const char *method, enum metrics_endpoint ep,
				       void **con_cls)
{
	struct request *rq = request_new(srv, ep, conn);
	const char *clen;
	char reason[96];

	if (!rq)
		return MHD_NO;
	*con_cls = rq;
	metrics_inflight(1);
	if (strcmp(method, "POST") != 0)
		return reject(srv, conn, rq, method, url, MHD_HTTP_METHOD_NOT_ALLOWED,
			      "method not allowed: use POST");
	if (!is_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return reject(srv, conn, rq, method, url, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			      "Content-Type must be application/json");
	clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (clen && strtoull(clen, NULL, 10) > srv->max_body) {
		/* Refused before a byte of the body is read; libmicrohttpd closes
		 * the connection after this answer instead of reading it. */
		snprintf(reason, sizeof(reason), "body larger than %zu bytes", srv->max_body);
		return reject(srv, conn, rq, method, url, MHD_HTTP_CONTENT_TOO_LARGE, reason);
	}
	return MHD_YES;
}

/* Buffers body bytes up to the cap; past it, flags and drains (a chunked
 * body, whose size is not announced: libmicrohttpd can answer only once the
 * whole request is in, and the read deadline bounds the wait). */
static void admission_upload(struct request *rq, const char *data, size_t size)
{
	if (rq->too_large)
		return;
	if (dynbuf_addn(&rq->body, data, size) != DYNBUF_OK) {
		/* Past the cap; out of memory is treated alike: the client gets
		 * a clean error. The failed add has released the buffer. */
		rq->too_large = true;
	}
}

/*
 * Called once, from the lookup thread, when a review is ready. Once the
 * connection is resumed a worker may finish and free the request at any
 * moment, so everything needed is taken under the lock and the request is
 * not touched after MHD_resume_connection.
 */
static void call_done(void *arg)
{
	struct request *rq = arg;
	struct MHD_Connection *conn = rq->conn;
	struct server *srv;
	bool was_suspended;

	pthread_mutex_lock(&rq->lock);
	rq->finished = true;
	was_suspended = rq->suspended;
	rq->suspended = false;
	srv = rq->srv;
	pthread_mutex_unlock(&rq->lock);
	if (was_suspended) {
		MHD_resume_connection(conn);
		/* Only now may shutdown see zero and stop the daemons. */
		atomic_fetch_sub(&srv->reviewing, 1);
	}
}

static enum MHD_Result admission_respond(struct server *srv, struct MHD_Connection *conn,
					 struct request *rq)
{
	size_t len;
	const char *body = webhook_call_body(rq->call, &len);

	rq->counted = true;
	metrics_request(rq->ep, webhook_call_outcome(rq->call), rgtime_elapsed_s(&rq->start));
	return send_buffer(srv, conn, webhook_call_status(rq->call), "application/json", (void *)body,
			   len, MHD_RESPMEM_PERSISTENT);
}

/* The last call: the whole body is in; run the review or wait for it. */
static enum MHD_Result admission_finish(struct server *srv, struct MHD_Connection *conn,
					const char *url, const char *method, struct request *rq)
{
	char reason[96], *body;
	size_t len;
	int pending;
	bool wait;

	if (rq->call) /* resumed after lookups */
		return admission_respond(srv, conn, rq);
	if (rq->too_large) {
		snprintf(reason, sizeof(reason), "body larger than %zu bytes", srv->max_body);
		return reject(srv, conn, rq, method, url, MHD_HTTP_CONTENT_TOO_LARGE, reason);
	}
	/* NUL-terminated, as the decoder needs; "" for an empty body. */
	body = dynbuf_take(&rq->body, &len);
	if (!body)
		return MHD_NO;
	/* Counted before stopping is read, so a shutdown that has set stopping
	 * and then sees zero knows no review can still suspend a connection. */
	atomic_fetch_add(&srv->reviewing, 1);
	if (atomic_load(&srv->stopping)) {
		atomic_fetch_sub(&srv->reviewing, 1);
		free(body);
		return reject(srv, conn, rq, method, url, MHD_HTTP_SERVICE_UNAVAILABLE,
			      "shutting down");
	}
	/* The call owns body from here, whatever happens. */
	rq->call = webhook_call_new(srv->wh, rq->ep == EP_MUTATE ? WEBHOOK_MUTATE : WEBHOOK_VALIDATE,
				    body, len);
	if (!rq->call) {
		atomic_fetch_sub(&srv->reviewing, 1);
		return reject(srv, conn, rq, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
			      "out of memory");
	}
	pthread_mutex_lock(&rq->lock);
	pending = webhook_call_run(rq->call, call_done, rq);
	wait = pending && !rq->finished;
	if (wait) {
		rq->suspended = true;
		rq->srv = srv;
		connguard_busy(conn);
		MHD_suspend_connection(conn);
	}
	pthread_mutex_unlock(&rq->lock);
	if (wait)
		return MHD_YES; /* call_done resumes and uncounts it */
	atomic_fetch_sub(&srv->reviewing, 1);
	return admission_respond(srv, conn, rq);
}

/* What the framing checks need from a request's headers. */
struct framing {
	unsigned n_host, n_clen, n_te;
	const char *clen; /* the first Content-Length */
	const char *te;   /* the first Transfer-Encoding */
	bool clen_conflict;
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (!value)
		value = "";
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
		f->n_host++;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->n_clen++ == 0)
			f->clen = value;
		else if (strcmp(f->clen, value) != 0)
			f->clen_conflict = true;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		if (f->n_te++ == 0)
			f->te = value;
	}
	return MHD_YES;
}

/*
 * The framing of every request, checked before routing (RFC 9112): two
 * parties that read a request's length differently let a request smuggle
 * another, and libmicrohttpd 0.9.75 takes the first of two Content-Length
 * headers, serves HTTP/1.1 without Host, and reads a body in any
 * Transfer-Encoding but chunked until the connection closes. (It checks a
 * Content-Length value itself.) Returns 0, or a status with *reason.
 */
static int check_framing(struct MHD_Connection *conn, const char *version, const char **reason)
{
	struct framing f = { 0 };
	bool http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
	*reason = NULL;
	if (!http10 && f.n_host == 0)
		*reason = "HTTP/1.1 request without a Host header";
	else if (f.n_host > 1)
		*reason = "more than one Host header";
	else if (f.clen_conflict)
		*reason = "conflicting Content-Length headers";
	else if (f.n_te > 0 && http10)
		*reason = "Transfer-Encoding in an HTTP/1.0 request";
	else if (f.n_te > 0 && f.n_clen > 0)
		*reason = "both Transfer-Encoding and Content-Length";
	if (*reason)
		return MHD_HTTP_BAD_REQUEST;
	if (f.n_te > 1 || (f.n_te == 1 && strcasecmp(f.te, "chunked") != 0)) {
		*reason = "Transfer-Encoding not supported (only chunked is)";
		return MHD_HTTP_NOT_IMPLEMENTED;
	}
	return 0;
}

/* The first call, with the headers in: framing, route, the checks that
 * need no body. */
static enum MHD_Result first_call(struct server *srv, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, void **con_cls)
{
	enum metrics_endpoint ep;
	const char *reason;
	int status = check_framing(conn, version, &reason);

	if (status)
		return reject(srv, conn, NULL, method, url, status, reason);
	if (strcmp(url, "/mutate") == 0)
		ep = EP_MUTATE;
	else if (strcmp(url, "/validate") == 0)
		ep = EP_VALIDATE;
	else if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
		return health(srv, conn, url, method);
	else
		return reject(srv, conn, NULL, method, url, MHD_HTTP_NOT_FOUND, "not found");
	return admission_begin(srv, conn, url, method, ep, con_cls);
}

/* A request answered on its first call with a body on its way: the body
 * stays unread, and libmicrohttpd closes the connection after the answer. */
static void note_unread_body(struct MHD_Connection *conn)
{
	const char *clen;

	if (!MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS))
		return; /* no answer queued */
	clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if ((clen && strtoull(clen, NULL, 10) > 0) ||
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		connguard_answered_early(conn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct request *rq = *con_cls;
	enum MHD_Result ret;

	if (!rq) {
		ret = first_call(srv, conn, url, method, version, con_cls);
		note_unread_body(conn);
		return ret;
	}
	if (*upload_data_size > 0) {
		admission_upload(rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return admission_finish(srv, conn, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *rq = *con_cls;

	(void)srv, (void)toe;
	/* The next request's deadline starts with its request line. */
	connguard_idle(conn);
	if (!rq)
		return;
	if (!rq->counted)
		metrics_request(rq->ep, OUT_ERROR, rgtime_elapsed_s(&rq->start));
	webhook_call_free(rq->call);
	dynbuf_clear(&rq->body);
	pthread_mutex_destroy(&rq->lock);
	free(rq);
	*con_cls = NULL;
	metrics_inflight(-1);
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	char *text;

	(void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
	if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
		return health(srv, conn, url, method);
	if (strcmp(url, "/metrics") != 0)
		return send_text(srv, conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_text(srv, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	text = metrics_render();
	if (!text)
		return send_text(srv, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return send_buffer(srv, conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
			   strlen(text), MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	RG_LOG(LOG_DEBUG, "libmicrohttpd", LF_S("detail", msg));
}

int server_parse_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
	const char *colon;
	char *end;
	unsigned long p;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

static struct addrinfo *resolve(const char *listen, char *err, size_t errlen)
{
	char host[256], portstr[8];
	unsigned port;
	struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int r;

	if (server_parse_hostport(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "listen address \"%s\": expected HOST:PORT", listen);
		return NULL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	r = getaddrinfo(host, portstr, &hints, &ai);
	if (r != 0) {
		snprintf(err, errlen, "listen address \"%s\": %s", listen, gai_strerror(r));
		return NULL;
	}
	return ai;
}

/* Starts one HTTPS daemon on ai (port 0 picks one; later workers pass the
 * port the first one got). */
static struct MHD_Daemon *start_worker(struct server *srv, const struct server_options *o,
				       struct addrinfo *ai, unsigned port, unsigned mhd_limit)
{
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_TLS |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (port) {
		if (ai->ai_family == AF_INET6)
			((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)port);
		else
			((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)port);
	}
	return MHD_start_daemon(flags, 0, connguard_accept, srv->https_guard, on_request, srv,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_LISTENING_ADDRESS_REUSE,
				1u, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
				MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout,
				MHD_OPTION_HTTPS_CERT_CALLBACK, certstore_retrieve,
				MHD_OPTION_HTTPS_PRIORITIES, tls_priorities,
				MHD_OPTION_NOTIFY_CONNECTION, connguard_notify, srv->https_guard,
				MHD_OPTION_URI_LOG_CALLBACK, connguard_request_line, srv->https_guard,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
}

static unsigned daemon_port(struct MHD_Daemon *d);

/* SO_REUSEPORT would let this server share a port another process of the
 * same user already listens on; a plain bind first keeps "address in use"
 * an error. */
static int port_free(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return 1;
	/* SO_REUSEADDR: connections of a previous run in TIME_WAIT do not
	 * count; a live listener still does. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
	close(fd);
	return ok;
}

/*
 * Room for the connection limit: raises the soft limit on open files to
 * what the limit needs (up to the hard limit), and when even that is too
 * low, lowers the connection limit to fit, since running out of descriptors
 * would make libmicrohttpd stop accepting until a connection closes.
 * Returns the connection limit to enforce.
 */
static unsigned fit_fd_limit(unsigned want, unsigned extra)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)want + extra + FD_RESERVE;
	unsigned fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return want;
	fit = rl.rlim_cur > (rlim_t)extra + FD_RESERVE + 1
		? (unsigned)(rl.rlim_cur - extra - FD_RESERVE)
		: 1;
	RG_LOG(LOG_WARN, "--max-connections lowered to fit the limit on open files (ulimit -n)",
	       LF_I("max_connections", fit), LF_I("asked", want),
	       LF_I("open_files_limit", rl.rlim_cur));
	return fit;
}

/*
 * A guard for a listener of limit connections, and the connection limit to
 * give each of its libmicrohttpd daemons: evicted connections hold their
 * socket until their thread closes them, and each daemon may admit one
 * connection past the limit before the table counts it. Every daemon gets
 * room for all of that (the kernel may hand any of them every connection):
 * libmicrohttpd must never reach its own limit.
 */
static struct connguard *guard_listener(enum metrics_listener which, unsigned limit, unsigned daemons,
					const struct server_options *o, unsigned idle_timeout,
					unsigned *mhd_limit, char *err, size_t errlen)
{
	struct conntrack_limits lim = { limit, limit / 4 + 8, o->read_timeout * 1000u,
					idle_timeout * 1000u };

	*mhd_limit = limit + lim.max_closing + daemons + 8;
	return connguard_new(which, &lim, err, errlen);
}

static int start_https(struct server *srv, const struct server_options *o, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(o->listen, err, errlen);
	long threads = o->threads ? (long)o->threads : sysconf(_SC_NPROCESSORS_ONLN);
	unsigned port = 0, limit, mhd_limit;
	int rc = -1;

	if (!ai)
		return -1;
	if (!port_free(ai)) {
		snprintf(err, errlen, "cannot listen on %s (address in use or not available)",
			 o->listen);
		goto out;
	}
	if (threads < 1)
		threads = 1;
	if (threads > MAX_WORKERS)
		threads = MAX_WORKERS;
	limit = fit_fd_limit(o->conn_limit, o->conn_limit / 4 + 16 + (unsigned)threads);
	srv->https_guard = guard_listener(ML_HTTPS, limit, (unsigned)threads, o, o->idle_timeout,
					  &mhd_limit, err, errlen);
	if (!srv->https_guard)
		goto out;
	for (long i = 0; i < threads; i++) {
		struct MHD_Daemon *d = start_worker(srv, o, ai, port, mhd_limit);
		if (!d) {
			snprintf(err, errlen, "cannot listen on %s (address in use or not available)",
				 o->listen);
			goto out;
		}
		srv->https[srv->n_https++] = d;
		port = daemon_port(d);
	}
	rc = 0;
out:
	freeaddrinfo(ai);
	return rc;
}

/* The completion callback of the metrics listener. */
static void on_metrics_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
				 enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)con_cls, (void)toe;
	connguard_idle(conn);
}

/* The metrics listener has the same protections: the kubelet's probes
 * reach it, and a few slow clients must not make them fail. */
static int start_metrics(struct server *srv, const struct server_options *o, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(o->metrics_listen, err, errlen);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
		MHD_USE_ERROR_LOG;
	unsigned mhd_limit;
	struct connguard *g;

	if (!ai)
		return -1;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	g = guard_listener(ML_METRICS, METRICS_CONN_LIMIT, 1, o, METRICS_IDLE_TIMEOUT, &mhd_limit, err,
			   errlen);
	srv->metrics_guard = g;
	if (g)
		srv->metrics = MHD_start_daemon(flags, 0, connguard_accept, g, on_metrics, srv,
						MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
						MHD_OPTION_SOCK_ADDR, ai->ai_addr,
						MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
						MHD_OPTION_CONNECTION_TIMEOUT, METRICS_IDLE_TIMEOUT,
						MHD_OPTION_NOTIFY_CONNECTION, connguard_notify, g,
						MHD_OPTION_URI_LOG_CALLBACK, connguard_request_line, g,
						MHD_OPTION_NOTIFY_COMPLETED, on_metrics_completed,
						NULL, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (g && !srv->metrics)
		snprintf(err, errlen, "cannot listen on %s (address in use or not available)",
			 o->metrics_listen);
	return srv->metrics ? 0 : -1;
}

/* Stops the daemons and frees srv: the guards' threads stop first, the
 * guards go last (the daemons report their connections closed as they
 * stop). */
static void server_free(struct server *srv)
{
	connguard_stop(srv->https_guard);
	connguard_stop(srv->metrics_guard);
	for (unsigned i = 0; i < srv->n_https; i++)
		MHD_stop_daemon(srv->https[i]);
	if (srv->metrics)
		MHD_stop_daemon(srv->metrics);
	connguard_free(srv->https_guard);
	connguard_free(srv->metrics_guard);
	free(srv);
}

struct server *server_start(const struct server_options *opts, struct webhook *wh, char *err,
			    size_t errlen)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->wh = wh;
	srv->max_body = opts->max_body;
	if (start_https(srv, opts, err, errlen) < 0)
		goto fail;
	if (opts->metrics_listen && start_metrics(srv, opts, err, errlen) < 0)
		goto fail;
	return srv;
fail:
	server_free(srv);
	return NULL;
}

static unsigned daemon_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info;

	if (!d)
		return 0;
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

unsigned server_port(const struct server *srv)
{
	return srv->n_https ? daemon_port(srv->https[0]) : 0;
}

unsigned server_metrics_port(const struct server *srv)
{
	return daemon_port(srv->metrics);
}

void server_set_ready(struct server *srv, int r)
{
	atomic_store(&srv->ready, r);
	metrics_set_ready(r != 0);
}

int server_shutdown(struct server *srv, unsigned timeout_ms)
{
	struct timespec start, pause = { 0, 20 * 1000 * 1000 };
	MHD_socket lsock;
	unsigned left;

	if (!srv)
		return 0;
	server_set_ready(srv, 0);
	/* From here every answer says Connection: close. */
	atomic_store(&srv->draining, 1);
	rgtime_now(&start);
	for (unsigned i = 0; i < srv->n_https; i++) {
		lsock = MHD_quiesce_daemon(srv->https[i]);
		if (lsock != MHD_INVALID_SOCKET)
			close(lsock);
	}
	/* A request may already be on its way over any open connection, even
	 * an idle one: kube-apiserver does not send a POST again once it is
	 * written. So every connection stays open, and whatever arrives on it
	 * is read and answered, until its client closes it or it closes after
	 * such an answer. Only the drain timeout cuts this short. */
	while (connguard_open(srv->https_guard) > 0 && rgtime_elapsed_s(&start) * 1000.0 < timeout_ms)
		nanosleep(&pause, NULL);
	/* Past the timeout, reviews get 503. A review waiting on lookups must
	 * be resumed before its daemon stops (libmicrohttpd aborts otherwise);
	 * lookups have deadlines, so this ends, and it is capped all the same. */
	atomic_store(&srv->stopping, 1);
	while (atomic_load(&srv->reviewing) > 0 &&
	       rgtime_elapsed_s(&start) * 1000.0 < timeout_ms + STOP_GRACE_MS)
		nanosleep(&pause, NULL);
	left = connguard_open(srv->https_guard);
	RG_LOG(left ? LOG_WARN : LOG_INFO, "drained", LF_I("connections_left", left),
	       LF_D("seconds", rgtime_elapsed_s(&start)));
	if (atomic_load(&srv->reviewing) > 0) {
		RG_LOG(LOG_ERROR, "requests still waiting on lookups; exiting without closing them",
		       LF_I("reviewing", atomic_load(&srv->reviewing)));
		return -1;
	}
	server_free(srv);
	return 0;
}

/* ---- libmicrohttpd 0.9.75: one answer to a bad Content-Length ---------- */

/*
 * libmicrohttpd 0.9.75 answers a request whose Content-Length it cannot
 * parse (negative, not a number, past 2^64) with 400 or 413 itself, without
 * calling rollgate, and writes that answer's status line and headers twice:
 * parse_connection_headers() queues the error and builds its headers, then
 * MHD_connection_handle_idle() overwrites the connection's state and builds
 * them again (fixed upstream by commit f1bfbe71, "fixed handling of various
 * errors automatically detected by MHD code", which no 0.9.x release has).
 * A client then reads the second head as the first one's body.
 *
 * The one place left to mend it is the write. libmicrohttpd sends a
 * response's whole header buffer in one gnutls_record_send() call, and the
 * dynamic linker resolves libmicrohttpd's calls to this definition before
 * GnuTLS's. When a buffer starts with a head that another head with the
 * same status line follows at once (a body never starts "HTTP/1.1 "), the
 * first head is skipped and reported as sent, and the refusal is counted
 * and logged as rollgate's own are; every other write goes to GnuTLS
 * untouched.
 */
static ssize_t (*gnutls_send)(gnutls_session_t, const void *, size_t);
static pthread_once_t gnutls_send_once = PTHREAD_ONCE_INIT;

static void find_gnutls_send(void)
{
	gnutls_send = (ssize_t(*)(gnutls_session_t, const void *,
				  size_t))dlvsym(RTLD_NEXT, "gnutls_record_send", "GNUTLS_3_4");
}

/* Length of the first of two heads with the same status line, or 0. */
static size_t doubled_head(const char *p, size_t n)
{
	static const char status_prefix[] = "HTTP/1.1 NNN ";
	const size_t cmp = sizeof(status_prefix) - 1;
	const char *end;
	size_t head;

	if (n < 2 * cmp || memcmp(p, "HTTP/1.1 ", 9) != 0)
		return 0;
	end = memmem(p, n, "\r\n\r\n", 4);
	if (!end)
		return 0;
	head = (size_t)(end - p) + 4;
	if (n - head < cmp || memcmp(p + head, p, cmp) != 0)
		return 0;
	return head;
}

ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t data_size)
{
	size_t skip = doubled_head(data, data_size);
	ssize_t r;

	pthread_once(&gnutls_send_once, find_gnutls_send);
	if (!gnutls_send)
		return GNUTLS_E_INTERNAL_ERROR;
	if (skip == 0)
		return gnutls_send(session, data, data_size);
	r = gnutls_send(session, (const char *)data + skip, data_size - skip);
	if (r < 0)
		return r;
	metrics_request(EP_OTHER, OUT_INVALID, 0);
	RG_LOG(LOG_WARN, "request rejected", LF_I("status", strtol((const char *)data + 9, NULL, 10)),
	       LF_S("reason", "invalid Content-Length (answered by libmicrohttpd)"));
	return r + (ssize_t)skip;
}
