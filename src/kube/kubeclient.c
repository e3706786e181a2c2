/*
 * The transport to the Kubernetes API (see kubeclient.h): names and URLs,
 * capped reply bodies (dynbuf), request headers and options, blocking requests
 * over a few kept-alive handles, and the curl-multi loop the streaming
 * users drive. The Authorization header line is wiped wherever it was
 * copied; buffers that may hold Secret JSON are wiped before reuse.
 */
#include "kubeclient.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "jsonutil.h"
#include "log.h"

#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63
#define IDLE_HANDLES 4
#define CONNECT_TIMEOUT_MS 10000L

/* ---- names and URLs ---- */

/* A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most max bytes. */
static bool dns_label(const char *s, size_t n, size_t max)
{
	return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") >= n &&
		s[0] != '-' && s[n - 1] != '-';
}

bool kube_valid_name(const char *s)
{
	const char *dot;

	if (!s || strlen(s) > NAME_MAX_LEN)
		return false;
	for (;;) {
		dot = strchr(s, '.');
		if (!dns_label(s, dot ? (size_t)(dot - s) : strlen(s), NAME_MAX_LEN))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

bool kube_valid_namespace(const char *s)
{
	return s && dns_label(s, strlen(s), LABEL_MAX_LEN);
}

char *kube_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* server + path (+ "?" query); malloc'd. */
static char *make_url(const char *server, const char *path, const char *query)
{
	size_t n = strlen(server) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
	char *u = malloc(n);

	if (u)
		snprintf(u, n, "%s%s%s%s", server, path, query ? "?" : "", query ? query : "");
	return u;
}

/* ---- reply bodies ---- */

void kube_body_init(struct dynbuf *b, size_t max, bool sensitive)
{
	dynbuf_init(b, max);
	if (sensitive)
		dynbuf_set_sensitive(b);
}

size_t kube_body_write(char *data, size_t size, size_t nmemb, void *buf)
{
	size_t n = size * nmemb;

	return dynbuf_addn(buf, data, n) == DYNBUF_OK ? n : 0;
}

/* ---- Status bodies ---- */

cJSON *kube_status_parse(const char *body, size_t len)
{
	cJSON *st = NULL;
	const char *kind;
	char err[64];

	if (!body || json_parse_strict(body, len, &st, err, sizeof(err)) < 0)
		return NULL;
	kind = json_get_string(st, "kind");
	if (!cJSON_IsObject(st) || !kind || strcmp(kind, "Status") != 0) {
		cJSON_Delete(st);
		return NULL;
	}
	return st;
}

void kube_status_describe(long status, const char *body, size_t len, char *out, size_t outlen)
{
	cJSON *st = kube_status_parse(body, len);
	const char *msg = json_get_string(st, "message");
	char clipped[256] = "";

	if (msg)
		log_clip(clipped, sizeof(clipped), msg, 200);
	snprintf(out, outlen, "HTTP %ld%s%s", status, clipped[0] ? ": " : "", clipped);
	cJSON_Delete(st);
}

void kube_reply_describe(const struct kube_reply *r, char *out, size_t outlen)
{
	kube_status_describe(r->status, r->body, r->len, out, outlen);
}

void kube_reply_clear(struct kube_reply *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- the client ---- */

struct kube_client {
	const struct kube_conn *conn;
	pthread_mutex_t lock;
	struct kube_token token;  /* under lock */
	CURL *idle[IDLE_HANDLES]; /* kept for their live connections */
	size_t n_idle;
};

struct kube_client *kube_client_new(const struct kube_conn *conn, char *err, size_t errlen)
{
	struct kube_client *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->conn = conn;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	kube_token_clear(&c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Wipes every header line (the Authorization one holds the token), then
 * frees the list. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

/* Headers for one request: Accept, the bearer token, and extra (may be
 * NULL). Returns NULL on OOM. The caller frees with free_headers. */
static struct curl_slist *make_headers(struct kube_client *c, const char *extra)
{
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json"), *n;
	char auth[8192];
	const char *tok;
	int len = -1;

	if (!h)
		return NULL;
	pthread_mutex_lock(&c->lock);
	tok = kube_token_current(&c->token, c->conn);
	if (tok)
		len = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	pthread_mutex_unlock(&c->lock);
	if (len > 0 && len < (int)sizeof(auth)) {
		n = curl_slist_append(h, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		if (!n)
			goto fail;
		h = n;
	}
	if (extra) {
		n = curl_slist_append(h, extra);
		if (!n)
			goto fail;
		h = n;
	}
	return h;
fail:
	free_headers(h);
	return NULL;
}

/* Options every request shares: HTTPS only, HTTP/2 when offered, TLS
 * material, a connect timeout, keepalive probes for long watches. */
static void setup_easy(const struct kube_conn *conn, CURL *e, const char *url, struct curl_slist *hdrs,
		       long timeout_ms)
{
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "rollgate/" ROLLGATE_VERSION);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
	kube_conn_set_tls(conn, e);
}

static CURL *take_handle(struct kube_client *c)
{
	CURL *e = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->n_idle > 0)
		e = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->lock);
	if (e)
		curl_easy_reset(e); /* keeps its live connection */
	else
		e = curl_easy_init();
	return e;
}

static void give_handle(struct kube_client *c, CURL *e)
{
	pthread_mutex_lock(&c->lock);
	if (c->n_idle < IDLE_HANDLES) {
		c->idle[c->n_idle++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (e)
		curl_easy_cleanup(e);
}

int kube_client_request(struct kube_client *c, const char *method, const char *path,
			const char *content_type, const char *body, unsigned timeout_ms,
			struct kube_reply *reply, char *err, size_t errlen)
{
	struct dynbuf b;
	struct curl_slist *hdrs = NULL;
	char ctype[160], *url = NULL;
	CURL *e = NULL;
	CURLcode res;
	int rc = -1;

	memset(reply, 0, sizeof(*reply));
	kube_body_init(&b, KUBE_REPLY_MAX, false);
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type ? content_type : "");
	url = make_url(c->conn->server, path, NULL);
	hdrs = make_headers(c, body ? ctype : NULL);
	e = take_handle(c);
	if (!url || !hdrs || !e) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	setup_easy(c->conn, e, url, hdrs, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, kube_body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	res = curl_easy_perform(e);
	if (res != CURLE_OK) {
		snprintf(err, errlen, "%s",
			 dynbuf_error(&b) == DYNBUF_E_TOOBIG ? KUBE_ERR_TOO_LARGE
							     : curl_easy_strerror(res));
		goto out;
	}
	reply->body = dynbuf_take(&b, &reply->len);
	if (!reply->body) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply->status);
	rc = 0;
out:
	dynbuf_clear(&b);
	free_headers(hdrs);
	free(url);
	if (e) {
		/* Options point at our buffers; clear them before the handle idles. */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
		give_handle(c, e);
	}
	return rc;
}

/* ---- transfers ---- */

int kube_xfer_open(struct kube_client *c, struct kube_xfer *x, const char *path, const char *query,
		   long timeout_ms)
{
	x->url = make_url(c->conn->server, path, query);
	x->hdrs = make_headers(c, NULL);
	x->easy = curl_easy_init();
	if (!x->url || !x->hdrs || !x->easy) {
		kube_xfer_close(x);
		return -1;
	}
	setup_easy(c->conn, x->easy, x->url, x->hdrs, timeout_ms);
	return 0;
}

void kube_xfer_close(struct kube_xfer *x)
{
	if (x->easy)
		curl_easy_cleanup(x->easy);
	free_headers(x->hdrs);
	free(x->url);
	memset(x, 0, sizeof(*x));
}

/* ---- the loop ---- */

struct kube_loop {
	CURLM *multi;
	struct kube_loop_ops ops;
	pthread_t thread;
	bool started;
	atomic_bool stop;
};

struct kube_loop *kube_loop_new(long max_conns, char *err, size_t errlen)
{
	struct kube_loop *l = calloc(1, sizeof(*l));

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (l)
		l->multi = curl_multi_init();
	if (!l || !l->multi) {
		snprintf(err, errlen, "cannot initialise libcurl");
		free(l);
		return NULL;
	}
	atomic_init(&l->stop, false);
	curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	if (max_conns > 0)
		curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);
	return l;
}

/* Reads every transfer that ended and hands it to ops.done; returns how
 * many did. */
static int take_ended(struct kube_loop *l)
{
	CURLMsg *msg;
	int left, ended = 0;

	while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
		CURL *e = msg->easy_handle;
		CURLcode res = msg->data.result;
		void *priv = NULL;
		long code = 0;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&priv);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		l->ops.done(l->ops.arg, priv, res, code);
		ended++;
	}
	return ended;
}

static void *loop_run(void *arg)
{
	struct kube_loop *l = arg;
	int running;

	while (!atomic_load(&l->stop)) {
		long wait = l->ops.tick(l->ops.arg);
		curl_multi_perform(l->multi, &running);
		if (take_ended(l) > 0)
			continue; /* their next steps may be due now */
		if (wait > 0)
			curl_multi_poll(l->multi, NULL, 0, (int)wait, NULL);
	}
	if (l->ops.drain)
		l->ops.drain(l->ops.arg);
	return NULL;
}

int kube_loop_start(struct kube_loop *l, const struct kube_loop_ops *ops, char *err, size_t errlen)
{
	l->ops = *ops;
	if (pthread_create(&l->thread, NULL, loop_run, l) != 0) {
		snprintf(err, errlen, "cannot start a Kubernetes API thread");
		return -1;
	}
	l->started = true;
	return 0;
}

int kube_loop_add(struct kube_loop *l, CURL *easy, void *priv)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, priv);
	return curl_multi_add_handle(l->multi, easy) == CURLM_OK ? 0 : -1;
}

void kube_loop_remove(struct kube_loop *l, CURL *easy)
{
	curl_multi_remove_handle(l->multi, easy);
}

void kube_loop_wake(struct kube_loop *l)
{
	curl_multi_wakeup(l->multi);
}

void kube_loop_free(struct kube_loop *l)
{
	if (!l)
		return;
	if (l->started) {
		atomic_store(&l->stop, true);
		curl_multi_wakeup(l->multi);
		pthread_join(l->thread, NULL);
	}
	curl_multi_cleanup(l->multi);
	free(l);
}
