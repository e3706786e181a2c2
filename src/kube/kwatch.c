/*
 * List+watch of Kubernetes collections over one curl-multi loop
 * (kubeclient's kube_loop); requests, caps and names are kubeclient's.
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

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "array.h"
#include "jsonutil.h"
#include "log.h"
#include "rgtime.h"

#define LINE_MAX_BYTES (8u << 20)  /* one watch event; objects are at most ~1.5 MiB */
#define PAGE_MAX_BYTES (16u << 20) /* one list page; past it the page size halves */
#define PAGE_LIMIT 500
#define RV_MAX 64
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define LIST_TIMEOUT_MS 60000
#define WATCH_MIN_S 300 /* server-side watch timeout: 5 to 10 minutes, as client-go */

static unsigned rand_below(unsigned n)
{
	unsigned v = 0;

	if (n == 0)
		return 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (unsigned)rgtime_now_ms() * 2654435761u;
	return v % n;
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
	bool listing;    /* a (re)list is under way: list_start was sent */
	char rv[RV_MAX]; /* where the next watch resumes; "" means list */
	char *cont;      /* continue token of the next page */
	unsigned limit;  /* page size */
	unsigned backoff_ms;
	long long next_ms; /* when it may start its next request */
	struct xfer *x;
};

struct xfer {
	struct stream *s;
	struct kube_xfer t;
	struct dynbuf body;
	bool watch;
	bool expired; /* 410 Gone in the stream */
	bool failed;  /* a malformed or ERROR event: why says what */
	unsigned events;
	long long started_ms;
	char why[256];
};

struct kwatch {
	struct kube_client *c;
	struct stream **s;
	size_t n, cap;
	struct kube_loop *loop;
	atomic_bool relist;
};

struct kwatch *kwatch_new(struct kube_client *c)
{
	struct kwatch *w = calloc(1, sizeof(*w));
	char err[128];

	if (!w)
		return NULL;
	w->c = c;
	atomic_init(&w->relist, false);
	w->loop = kube_loop_new(0, err, sizeof(err));
	if (!w->loop) {
		free(w);
		return NULL;
	}
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
	struct stream *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		goto oom;
	s->path = strdup(spec->path);
	s->selector = spec->label_selector && *spec->label_selector ? strdup(spec->label_selector)
								    : NULL;
	if (!s->path || (spec->label_selector && *spec->label_selector && !s->selector))
		goto oom;
	s->resource = spec->resource;
	s->sensitive = spec->sensitive;
	s->optional = spec->optional;
	s->h = spec->handler;
	s->limit = PAGE_LIMIT;
	rc = array_grow(&w->s, &w->cap, w->n + 1, sizeof(*w->s), KWATCH_MAX_STREAMS);
	if (rc == ARRAY_E_FULL) {
		stream_free(s);
		snprintf(err, errlen, "more than %u watch streams", KWATCH_MAX_STREAMS);
		return -1;
	}
	if (rc < 0)
		goto oom;
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
	if (x->t.easy)
		kube_loop_remove(w->loop, x->t.easy);
	kube_xfer_close(&x->t);
	dynbuf_clear(&x->body);
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
	s->next_ms = rgtime_now_ms() + d;
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
		log_clip(err, sizeof(err),
			 json_get_string(obj, "message") ? json_get_string(obj, "message") : "", 100);
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

/* Appends what arrived and hands every complete line to process_event,
 * cutting it at its newline in place; the rest waits for more. */
static size_t on_watch_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb, start = 0, len;
	char *buf;

	if (dynbuf_addn(&x->body, data, n) != DYNBUF_OK) {
		snprintf(x->why, sizeof(x->why), "watch event larger than %u bytes", LINE_MAX_BYTES);
		x->failed = true;
		return 0;
	}
	buf = dynbuf_data(&x->body);
	len = dynbuf_len(&x->body);
	if (!buf)
		return n; /* nothing arrived yet */
	for (;;) {
		char *line = buf + start;
		char *nl = memchr(line, '\n', len - start);
		size_t llen;
		if (!nl)
			break;
		llen = (size_t)(nl - line);
		*nl = '\0';
		if (llen > 0 && process_event(x, line, llen) < 0) {
			dynbuf_reset(&x->body);
			return 0;
		}
		if (x->s->sensitive)
			OPENSSL_cleanse(line, llen);
		start += llen + 1;
	}
	dynbuf_consume(&x->body, start);
	return n;
}

/* Appends "&name=escaped(value)" to q (capacity cap); -1 on OOM or overflow. */
static int query_add(char *q, size_t cap, const char *name, const char *value)
{
	char *esc = kube_escape(value);
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
	x->started_ms = rgtime_now_ms();
	kube_body_init(&x->body, watch ? LINE_MAX_BYTES : PAGE_MAX_BYTES, s->sensitive);
	if (stream_query(s, watch, timeout_s, q, sizeof(q)) < 0 ||
	    kube_xfer_open(w->c, &x->t, s->path, q,
			   watch ? (long)(timeout_s + 60) * 1000 : LIST_TIMEOUT_MS) < 0)
		goto fail;
	if (!watch)
		curl_easy_setopt(x->t.easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(x->t.easy, CURLOPT_WRITEFUNCTION, watch ? on_watch_data : kube_body_write);
	curl_easy_setopt(x->t.easy, CURLOPT_WRITEDATA, watch ? (void *)x : (void *)&x->body);
	if (kube_loop_add(w->loop, x->t.easy, x) < 0) {
		kube_xfer_close(&x->t);
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

	if (json_parse_strict(dynbuf_ptr(&x->body), dynbuf_len(&x->body), &list, err, sizeof(err)) <
	    0) {
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

/* "HTTP <code>: <Status message>" of a failed list or watch. */
static void reply_why(const struct xfer *x, long code, char *why, size_t whylen)
{
	kube_status_describe(code, dynbuf_ptr(&x->body), dynbuf_len(&x->body), why, whylen);
}

static void end_list(struct stream *s, struct xfer *x, CURLcode res, long code)
{
	bool too_big = dynbuf_error(&x->body) == DYNBUF_E_TOOBIG;
	char why[300];

	if (too_big && s->limit > 1) {
		/* A page past the cap: ask for fewer objects per page. */
		s->limit /= 2;
		s->next_ms = rgtime_now_ms();
		return;
	}
	if (too_big) {
		snprintf(why, sizeof(why), "one object is larger than %u bytes", PAGE_MAX_BYTES);
	} else if (res != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
	} else if (code == 200) {
		if (take_page(s, x, why, sizeof(why)) == 0) {
			s->backoff_ms = 0;
			s->next_ms = rgtime_now_ms();
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
		s->next_ms = rgtime_now_ms();
		return;
	} else {
		reply_why(x, code, why, sizeof(why));
	}
	backoff(s, "list failed; retrying", why);
}

static void end_watch(struct stream *s, struct xfer *x, CURLcode res, long code)
{
	long long lasted = rgtime_now_ms() - x->started_ms;
	char why[300];

	if (x->expired || code == 410) {
		/* History is gone: only a full list can bring the stream back. */
		metrics_watch_restart(s->resource, WATCH_EXPIRED);
		RG_LOG(LOG_INFO, "watch expired (410 Gone); listing again", LF_S("path", s->path));
		s->rv[0] = '\0';
		s->next_ms = rgtime_now_ms();
		return;
	}
	if (x->events > 0 || lasted > 30000)
		s->backoff_ms = 0;
	if (res == CURLE_OK && code == 200 && !x->failed) {
		metrics_watch_restart(s->resource, WATCH_CLOSED);
		if (x->events == 0 && lasted < 1000)
			backoff(s, "watch closed at once; retrying", "closed by the server");
		else
			s->next_ms = rgtime_now_ms();
		return;
	}
	metrics_watch_restart(s->resource, WATCH_ERROR);
	if (x->failed) {
		snprintf(why, sizeof(why), "%s", x->why);
	} else if (res != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
	} else {
		reply_why(x, code, why, sizeof(why));
	}
	backoff(s, "watch failed; resuming from the last resourceVersion", why);
}

/* A transfer ended (loop thread): the stream's next step. */
static void end_xfer(void *arg, void *priv, CURLcode res, long code)
{
	struct xfer *x = priv;
	struct stream *s = x->s;

	s->state = ST_IDLE;
	if (x->watch)
		end_watch(s, x, res, code);
	else
		end_list(s, x, res, code);
	xfer_free(arg, x);
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
		s->next_ms = rgtime_now_ms();
	}
}

/* Starts what is due; returns how long the loop may sleep. */
static long start_due(struct kwatch *w)
{
	long long now = rgtime_now_ms();
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

/* Each round of the loop: a relist when asked, then what is due. */
static long tick(void *arg)
{
	struct kwatch *w = arg;

	if (atomic_exchange(&w->relist, false))
		relist_all(w);
	return start_due(w);
}

/* The loop is stopping: its transfers go. */
static void drain(void *arg)
{
	struct kwatch *w = arg;

	for (size_t i = 0; i < w->n; i++)
		xfer_free(w, w->s[i]->x);
}

int kwatch_start(struct kwatch *w, char *err, size_t errlen)
{
	const struct kube_loop_ops ops = { tick, end_xfer, drain, w };

	return kube_loop_start(w->loop, &ops, err, errlen);
}

void kwatch_relist(struct kwatch *w)
{
	atomic_store(&w->relist, true);
	kube_loop_wake(w->loop);
}

void kwatch_free(struct kwatch *w)
{
	if (!w)
		return;
	kube_loop_free(w->loop);
	for (size_t i = 0; i < w->n; i++)
		stream_free(w->s[i]);
	free(w->s);
	free(w);
}
