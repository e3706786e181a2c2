/*
 * List+watch of Kubernetes collections over one curl multi handle, and the
 * blocking request client the lease and the reload controller share.
 *
 * A stream is a small state machine driven by its transfers' ends:
 *
 *   list page --continue--> list page ... --last page--> watch(rv)
 *   watch(rv) --closed/dropped--> watch(last rv seen)   (resume, no relist)
 *   watch(rv) --410 Gone--------> list                   (relist)
 *   any error --------------------> same step after an exponential backoff
 *
 * The first list page carries no resourceVersion, so every list is a
 * consistent (quorum) read: a cache never starts from older data than the
 * webhook saw. Every buffer has a cap; buffers that held Secret JSON are
 * wiped before they are freed or reused, and so are parsed trees.
 */
#include "kwatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "jsonutil.h"
#include "log.h"
#include "manifest.h"

#define REPLY_MAX (4u << 20)
#define LINE_MAX_BYTES (8u << 20)  /* one watch event; objects are at most ~1.5 MiB */
#define PAGE_MAX_BYTES (16u << 20) /* one list page; past it the page size halves */
#define PAGE_LIMIT 500
#define RV_MAX 64
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define LIST_TIMEOUT_MS 60000
#define WATCH_MIN_S 300 /* server-side watch timeout: 5 to 10 minutes, as client-go */
#define IDLE_HANDLES 4

static long long mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static unsigned rand_below(unsigned n)
{
	unsigned v = 0;

	if (n == 0)
		return 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (unsigned)mono_ms() * 2654435761u;
	return v % n;
}

/* ---- capped buffers ---- */

struct buf {
	char *p;
	size_t len, cap, max;
	bool sensitive; /* wipe before free and when bytes are dropped */
};

static void buf_free(struct buf *b)
{
	if (b->p && b->sensitive)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Appends n bytes and keeps the buffer NUL-terminated. Growing copies
 * (never realloc) so a sensitive old block can be wiped. -1 past max or OOM. */
static int buf_append(struct buf *b, const char *d, size_t n)
{
	if (n > b->max - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		np = malloc(cap);
		if (!np)
			return -1;
		size_t len = b->len;
		if (len)
			memcpy(np, b->p, len);
		buf_free(b);
		b->p = np;
		b->len = len;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Drops the first n bytes. */
static void buf_consume(struct buf *b, size_t n)
{
	if (n == 0)
		return;
	memmove(b->p, b->p + n, b->len - n);
	if (b->sensitive)
		OPENSSL_cleanse(b->p + b->len - n, n);
	b->len -= n;
	b->p[b->len] = '\0';
}

/* The message of a metav1 Status body, clipped, or "". */
static void status_message(const char *body, size_t len, char *out, size_t outlen)
{
	cJSON *st = NULL;
	char err[64];
	const char *msg;

	out[0] = '\0';
	if (!body || json_parse_strict(body, len, &st, err, sizeof(err)) < 0)
		return;
	msg = json_get_string(st, "message");
	if (msg && json_get_string(st, "kind") && strcmp(json_get_string(st, "kind"), "Status") == 0)
		log_clip(out, outlen, msg, 200);
	cJSON_Delete(st);
}

/* ---- names and URLs ---- */

static bool dns_label(const char *s, size_t n, size_t max)
{
	return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") >= n &&
	       s[0] != '-' && s[n - 1] != '-';
}

bool kwatch_valid_name(const char *s)
{
	const char *dot;

	if (!s || strlen(s) > 253)
		return false;
	for (;;) {
		dot = strchr(s, '.');
		if (!dns_label(s, dot ? (size_t)(dot - s) : strlen(s), 253))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

bool kwatch_valid_namespace(const char *s)
{
	return s && dns_label(s, strlen(s), 63);
}

char *kwatch_escape(const char *s)
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

/* ---- the client ---- */

struct kwatch_client {
	const struct kube_conn *conn;
	pthread_mutex_t lock;
	struct kube_token token; /* under lock */
	CURL *idle[IDLE_HANDLES]; /* kept for their live connections */
	size_t n_idle;
};

struct kwatch_client *kwatch_client_new(const struct kube_conn *conn, char *err, size_t errlen)
{
	struct kwatch_client *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->conn = conn;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void kwatch_client_free(struct kwatch_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	kube_token_free(&c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Headers for one request: Accept, the bearer token, and extra (may be
 * NULL). Returns NULL on OOM. The caller frees with free_headers. */
static struct curl_slist *make_headers(struct kwatch_client *c, const char *extra)
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
	curl_slist_free_all(h);
	return NULL;
}

/* Wipes the Authorization line before freeing. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

/* Options every request shares: HTTPS only, HTTP/2 when offered, TLS
 * material, keepalive probes for long watches. */
static void setup_easy(const struct kube_conn *conn, CURL *e, const char *url,
		       struct curl_slist *hdrs, long timeout_ms)
{
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "rollgate/" ROLLGATE_VERSION);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
	kube_conn_set_tls(conn, e);
}

/* server + path (+ query); malloc'd. */
static char *make_url(const char *server, const char *path, const char *query)
{
	size_t n = strlen(server) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
	char *u = malloc(n);

	if (u)
		snprintf(u, n, "%s%s%s%s", server, path, query ? "?" : "", query ? query : "");
	return u;
}

static size_t on_reply(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;

	return buf_append(b, data, n) < 0 ? 0 : n;
}

static CURL *take_handle(struct kwatch_client *c)
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

static void give_handle(struct kwatch_client *c, CURL *e)
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

int kwatch_client_request(struct kwatch_client *c, const char *method, const char *path,
			  const char *content_type, const char *body, unsigned timeout_ms,
			  struct kwatch_reply *reply, char *err, size_t errlen)
{
	struct buf b = { NULL, 0, 0, REPLY_MAX, false };
	struct curl_slist *hdrs = NULL;
	char ctype[160], *url = NULL;
	CURL *e = NULL;
	CURLcode res;
	int rc = -1;

	memset(reply, 0, sizeof(*reply));
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
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	res = curl_easy_perform(e);
	if (res != CURLE_OK) {
		snprintf(err, errlen, "%s", b.len >= REPLY_MAX ? "answer too large" : curl_easy_strerror(res));
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply->status);
	reply->body = b.p;
	reply->len = b.len;
	b.p = NULL;
	rc = 0;
out:
	buf_free(&b);
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

void kwatch_reply_free(struct kwatch_reply *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

void kwatch_reply_describe(const struct kwatch_reply *r, char *out, size_t outlen)
{
	char msg[256];

	status_message(r->body, r->len, msg, sizeof(msg));
	snprintf(out, outlen, "HTTP %ld%s%s", r->status, msg[0] ? ": " : "", msg);
}

/* ---- streams ---- */

enum st_state { ST_IDLE, ST_RUNNING, ST_DISABLED };

struct xfer;

struct stream {
	char *path, *selector;
	enum metrics_resource resource;
	bool sensitive, optional;
	struct kwatch_handler h;
	enum st_state state;
	bool listing;      /* a (re)list is under way: list_start was sent */
	char rv[RV_MAX];   /* where the next watch resumes; "" means list */
	char *cont;        /* continue token of the next page */
	unsigned limit;    /* page size */
	unsigned backoff_ms;
	long long next_ms; /* when it may start its next request */
	struct xfer *x;
};

struct xfer {
	struct stream *s;
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	struct buf body;
	bool watch;
	bool too_big; /* a list page past PAGE_MAX_BYTES */
	bool expired; /* 410 Gone in the stream */
	bool failed;  /* a malformed or ERROR event: why says what */
	unsigned events;
	long long started_ms;
	char why[256];
};

struct kwatch {
	struct kwatch_client *c;
	struct stream **s;
	size_t n;
	CURLM *multi;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_bool relist;
};

struct kwatch *kwatch_new(struct kwatch_client *c)
{
	struct kwatch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->c = c;
	atomic_init(&w->stop, false);
	atomic_init(&w->relist, false);
	return w;
}

static void stream_free(struct stream *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->selector);
	free(s->cont);
	free(s);
}

int kwatch_add(struct kwatch *w, const struct kwatch_spec *spec, char *err, size_t errlen)
{
	struct stream *s = calloc(1, sizeof(*s)), **ns;

	if (!s)
		goto oom;
	s->path = strdup(spec->path);
	s->selector = spec->label_selector && *spec->label_selector ? strdup(spec->label_selector) : NULL;
	if (!s->path || (spec->label_selector && *spec->label_selector && !s->selector))
		goto oom;
	s->resource = spec->resource;
	s->sensitive = spec->sensitive;
	s->optional = spec->optional;
	s->h = spec->handler;
	s->limit = PAGE_LIMIT;
	ns = realloc(w->s, (w->n + 1) * sizeof(*ns));
	if (!ns)
		goto oom;
	w->s = ns;
	w->s[w->n++] = s;
	return 0;
oom:
	stream_free(s);
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void xfer_free(struct kwatch *w, struct xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		curl_multi_remove_handle(w->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	free_headers(x->hdrs);
	free(x->url);
	buf_free(&x->body);
	x->s->x = NULL;
	free(x);
}

/* Waits before the stream's next attempt: 0.5 s doubling to 30 s, +-25%. */
static void backoff(struct stream *s, const char *what, const char *why)
{
	unsigned d;

	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	d = s->backoff_ms * 3 / 4 + rand_below(s->backoff_ms / 2 + 1);
	s->next_ms = mono_ms() + d;
	RG_LOG(LOG_WARN, what, LF_S("path", s->path), LF_S("reason", why), LF_I("retry_ms", d));
}

/* One watch event line (NUL-terminated at line[len]). Returns 0, or -1 to
 * end the watch (x->expired or x->failed says why). */
static int process_event(struct xfer *x, char *line, size_t len)
{
	static const char *const types[] = { "ADDED", "MODIFIED", "DELETED" };
	struct stream *s = x->s;
	const char *type, *rv;
	const cJSON *obj;
	cJSON *ev = NULL;
	char err[128];
	long long code;
	int rc = -1;

	if (json_parse_strict(line, len, &ev, err, sizeof(err)) < 0 || !cJSON_IsObject(ev)) {
		snprintf(x->why, sizeof(x->why), "malformed watch event: %s", err);
		goto bad;
	}
	type = json_get_string(ev, "type");
	obj = json_get(ev, "object");
	if (!type || !cJSON_IsObject(obj)) {
		snprintf(x->why, sizeof(x->why), "malformed watch event: no type or object");
		goto bad;
	}
	if (strcmp(type, "ERROR") == 0) {
		if (json_get_int(obj, "code", &code) == 0 && code == 410) {
			x->expired = true;
			goto out;
		}
		log_clip(err, sizeof(err), json_get_string(obj, "message") ? json_get_string(obj, "message") : "",
		     100);
		snprintf(x->why, sizeof(x->why), "watch error event: %s", err);
		goto bad;
	}
	rv = json_get_string(json_get(obj, "metadata"), "resourceVersion");
	if (!rv || !*rv || strlen(rv) >= RV_MAX) {
		snprintf(x->why, sizeof(x->why), "watch event without a usable resourceVersion");
		goto bad;
	}
	for (int i = 0; i < 3; i++) {
		if (strcmp(type, types[i]) == 0)
			s->h.object(s->h.arg, (enum kwatch_event)i, obj);
	}
	/* After the handler: a change is never skipped on resume. Bookmarks
	 * (and types we do not know) only move the resume point. */
	memcpy(s->rv, rv, strlen(rv) + 1);
	x->events++;
	metrics_watch_synced(s->resource);
	rc = 0;
	goto out;
bad:
	x->failed = true;
out:
	if (ev && s->sensitive)
		json_cleanse_tree(ev);
	cJSON_Delete(ev);
	return rc;
}

static size_t on_watch_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb, start = 0;

	if (buf_append(&x->body, data, n) < 0) {
		snprintf(x->why, sizeof(x->why), "watch event larger than %u bytes", LINE_MAX_BYTES);
		x->failed = true;
		return 0;
	}
	for (;;) {
		char *line = x->body.p + start;
		char *nl = memchr(line, '\n', x->body.len - start);
		size_t llen;
		if (!nl)
			break;
		llen = (size_t)(nl - line);
		*nl = '\0';
		if (llen > 0 && process_event(x, line, llen) < 0) {
			buf_consume(&x->body, x->body.len);
			return 0;
		}
		if (x->s->sensitive)
			OPENSSL_cleanse(line, llen);
		start += llen + 1;
	}
	buf_consume(&x->body, start);
	return n;
}

static size_t on_list_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	if (n > x->body.max - x->body.len) {
		x->too_big = true;
		return 0;
	}
	return buf_append(&x->body, data, n) < 0 ? 0 : n;
}

/* Appends "&name=escaped(value)" to q (capacity cap); -1 on OOM or overflow. */
static int query_add(char *q, size_t cap, const char *name, const char *value)
{
	char *esc = kwatch_escape(value);
	size_t have = strlen(q);
	int n;

	if (!esc)
		return -1;
	n = snprintf(q + have, cap - have, "%s%s=%s", have ? "&" : "", name, esc);
	free(esc);
	return n < 0 || (size_t)n >= cap - have ? -1 : 0;
}

static int stream_query(struct stream *s, bool watch, unsigned timeout_s, char *q, size_t cap)
{
	char num[32];

	q[0] = '\0';
	if (watch) {
		snprintf(num, sizeof(num), "%u", timeout_s);
		if (query_add(q, cap, "watch", "1") < 0 ||
		    query_add(q, cap, "allowWatchBookmarks", "true") < 0 ||
		    query_add(q, cap, "resourceVersion", s->rv) < 0 ||
		    query_add(q, cap, "timeoutSeconds", num) < 0)
			return -1;
	} else {
		snprintf(num, sizeof(num), "%u", s->limit);
		if (query_add(q, cap, "limit", num) < 0 ||
		    (s->cont && query_add(q, cap, "continue", s->cont) < 0))
			return -1;
	}
	return s->selector ? query_add(q, cap, "labelSelector", s->selector) : 0;
}

/* Starts the stream's next request: a list page or a watch. */
static void start_stream(struct kwatch *w, struct stream *s)
{
	bool watch = s->rv[0] != '\0' && !s->listing;
	unsigned timeout_s = WATCH_MIN_S + rand_below(WATCH_MIN_S);
	struct xfer *x;
	char q[8192];

	if (!watch && !s->listing) {
		s->listing = true;
		s->limit = PAGE_LIMIT;
		free(s->cont);
		s->cont = NULL;
		s->h.list_start(s->h.arg);
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		goto fail;
	x->s = s;
	s->x = x;
	x->watch = watch;
	x->started_ms = mono_ms();
	x->body = (struct buf){ NULL, 0, 0, watch ? LINE_MAX_BYTES : PAGE_MAX_BYTES, s->sensitive };
	if (stream_query(s, watch, timeout_s, q, sizeof(q)) < 0)
		goto fail;
	x->url = make_url(w->c->conn->server, s->path, q);
	x->hdrs = make_headers(w->c, NULL);
	x->easy = curl_easy_init();
	if (!x->url || !x->hdrs || !x->easy)
		goto fail;
	setup_easy(w->c->conn, x->easy, x->url, x->hdrs,
		   watch ? (long)(timeout_s + 60) * 1000 : LIST_TIMEOUT_MS);
	if (!watch)
		curl_easy_setopt(x->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, watch ? on_watch_data : on_list_data);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(w->multi, x->easy) != CURLM_OK) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		goto fail;
	}
	s->state = ST_RUNNING;
	return;
fail:
	if (x)
		xfer_free(w, x);
	backoff(s, "cannot start a list or watch; retrying", "out of memory");
}

/* A page of a list: every item to the handler, then either the next page
 * or, after the last, synced and the watch. Returns 0, or -1 with why. */
static int take_page(struct stream *s, struct xfer *x, char *why, size_t whylen)
{
	const char *cont, *rv;
	const cJSON *items, *meta, *it;
	cJSON *list = NULL;
	char err[128];
	int rc = -1;

	if (json_parse_strict(x->body.p ? x->body.p : "", x->body.len, &list, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "malformed list: %s", err);
		goto out;
	}
	items = json_get(list, "items");
	meta = json_get(list, "metadata");
	cont = json_get_string(meta, "continue");
	rv = json_get_string(meta, "resourceVersion");
	if ((!cJSON_IsArray(items) && !cJSON_IsNull(items)) || !rv || !*rv || strlen(rv) >= RV_MAX) {
		snprintf(why, whylen, "malformed list: no items or resourceVersion");
		goto out;
	}
	cJSON_ArrayForEach(it, items) {
		if (cJSON_IsObject(it))
			s->h.object(s->h.arg, KWATCH_ADDED, it);
	}
	free(s->cont);
	s->cont = NULL;
	if (cont && *cont) {
		s->cont = strdup(cont);
		if (!s->cont) {
			snprintf(why, whylen, "out of memory");
			s->listing = false; /* start over */
			s->rv[0] = '\0';
			goto out;
		}
	} else {
		memcpy(s->rv, rv, strlen(rv) + 1);
		s->listing = false;
		s->h.synced(s->h.arg);
		metrics_watch_synced(s->resource);
	}
	rc = 0;
out:
	if (list && s->sensitive)
		json_cleanse_tree(list);
	cJSON_Delete(list);
	return rc;
}

static void end_list(struct stream *s, struct xfer *x, CURLcode res, long code)
{
	char why[300], msg[256];

	if (x->too_big && s->limit > 1) {
		/* A page past the cap: ask for fewer objects per page. */
		s->limit /= 2;
		s->next_ms = mono_ms();
		return;
	}
	if (x->too_big) {
		snprintf(why, sizeof(why), "one object is larger than %u bytes", PAGE_MAX_BYTES);
	} else if (res != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
	} else if (code == 200) {
		if (take_page(s, x, why, sizeof(why)) == 0) {
			s->backoff_ms = 0;
			s->next_ms = mono_ms();
			return;
		}
	} else if (code == 404 && s->optional) {
		s->state = ST_DISABLED;
		RG_LOG(LOG_INFO, "resource not served by the API server (404); its watch is disabled",
		       LF_S("path", s->path));
		s->h.disabled(s->h.arg);
		return;
	} else if (code == 410) {
		/* The continue token expired: list again from the start. */
		s->listing = false;
		s->rv[0] = '\0';
		s->next_ms = mono_ms();
		return;
	} else {
		status_message(x->body.p, x->body.len, msg, sizeof(msg));
		snprintf(why, sizeof(why), "HTTP %ld%s%s", code, msg[0] ? ": " : "", msg);
	}
	backoff(s, "list failed; retrying", why);
}

static void end_watch(struct stream *s, struct xfer *x, CURLcode res, long code)
{
	long long lasted = mono_ms() - x->started_ms;
	char why[300], msg[256];

	if (x->expired || code == 410) {
		/* History is gone: only a full list can bring the stream back. */
		metrics_watch_restart(s->resource, WATCH_EXPIRED);
		RG_LOG(LOG_INFO, "watch expired (410 Gone); listing again", LF_S("path", s->path));
		s->rv[0] = '\0';
		s->next_ms = mono_ms();
		return;
	}
	if (x->events > 0 || lasted > 30000)
		s->backoff_ms = 0;
	if (res == CURLE_OK && code == 200 && !x->failed) {
		metrics_watch_restart(s->resource, WATCH_CLOSED);
		if (x->events == 0 && lasted < 1000)
			backoff(s, "watch closed at once; retrying", "closed by the server");
		else
			s->next_ms = mono_ms();
		return;
	}
	metrics_watch_restart(s->resource, WATCH_ERROR);
	if (x->failed) {
		snprintf(why, sizeof(why), "%s", x->why);
	} else if (res != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
	} else {
		status_message(x->body.p, x->body.len, msg, sizeof(msg));
		snprintf(why, sizeof(why), "HTTP %ld%s%s", code, msg[0] ? ": " : "", msg);
	}
	backoff(s, "watch failed; resuming from the last resourceVersion", why);
}

static void end_xfer(struct kwatch *w, struct xfer *x, CURLcode res)
{
	struct stream *s = x->s;
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	s->state = ST_IDLE;
	if (x->watch)
		end_watch(s, x, res, code);
	else
		end_list(s, x, res, code);
	xfer_free(w, x);
}

/* Every stream lists again; running transfers are dropped. */
static void relist_all(struct kwatch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		struct stream *s = w->s[i];
		if (s->state == ST_DISABLED)
			continue;
		xfer_free(w, s->x);
		s->state = ST_IDLE;
		s->rv[0] = '\0';
		s->listing = false;
		s->next_ms = mono_ms();
	}
}

/* Starts what is due; returns how long the loop may sleep. */
static long start_due(struct kwatch *w)
{
	long long now = mono_ms();
	long wait = 1000;

	for (size_t i = 0; i < w->n; i++) {
		struct stream *s = w->s[i];
		if (s->state != ST_IDLE)
			continue;
		if (s->next_ms <= now)
			start_stream(w, s);
		else if (s->next_ms - now < wait)
			wait = (long)(s->next_ms - now);
	}
	return wait;
}

static void *run(void *arg)
{
	struct kwatch *w = arg;
	CURLMsg *msg;
	int running, left;

	while (!atomic_load(&w->stop)) {
		long wait;
		if (atomic_exchange(&w->relist, false))
			relist_all(w);
		wait = start_due(w);
		curl_multi_perform(w->multi, &running);
		while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
			struct xfer *x = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			end_xfer(w, x, msg->data.result);
			wait = 0; /* its next step may be due now */
		}
		if (wait > 0)
			curl_multi_poll(w->multi, NULL, 0, (int)wait, NULL);
	}
	for (size_t i = 0; i < w->n; i++)
		xfer_free(w, w->s[i]->x);
	return NULL;
}

int kwatch_start(struct kwatch *w, char *err, size_t errlen)
{
	w->multi = curl_multi_init();
	if (!w->multi) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		snprintf(err, errlen, "cannot start the watch thread");
		return -1;
	}
	w->started = true;
	return 0;
}

void kwatch_relist(struct kwatch *w)
{
	atomic_store(&w->relist, true);
	if (w->multi)
		curl_multi_wakeup(w->multi);
}

void kwatch_free(struct kwatch *w)
{
	if (!w)
		return;
	if (w->started) {
		atomic_store(&w->stop, true);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
	}
	if (w->multi)
		curl_multi_cleanup(w->multi);
	for (size_t i = 0; i < w->n; i++)
		stream_free(w->s[i]);
	free(w->s);
	free(w);
}
