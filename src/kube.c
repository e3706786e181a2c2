/*
 * Kubernetes API object source. One worker thread drives a curl multi
 * handle: batches arrive through a locked queue and a wakeup, every lookup
 * of a batch runs in parallel under the batch's deadline, connections (and
 * HTTP/2 streams) are reused, and the batch's callback fires once, when its
 * last lookup ends. Secret bodies are wiped after they are digested.
 * Destroying the source ends whatever is still in flight as failed lookups
 * (each batch's callback still fires once) instead of abandoning it.
 */
#include "kube.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "jsonutil.h"
#include "log.h"
#include "metrics.h"

#define BODY_MAX (4u << 20) /* ConfigMaps and Secrets are at most 1 MiB */
#define NAME_MAX_LEN 253

struct pending {
	struct lookup_batch *b;
	lookup_done_fn done;
	void *arg;
	size_t remaining;
	struct timespec deadline;
	struct pending *next;
};

struct xfer {
	struct pending *p;
	struct lookup_item *it;
	CURL *easy;
	struct curl_slist *hdrs;
	char *buf;
	size_t len;
	bool too_big;
	struct xfer *prev, *next; /* the worker's list of running transfers */
};

struct kube {
	struct kube_conn conn;
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	struct pending *queue;
	bool stop;
	struct xfer *active; /* worker thread only */
	struct kube_token token; /* worker thread only */
};

/* A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most max bytes. */
static bool dns_label(const char *s, size_t n, size_t max)
{
	return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") >= n &&
	       s[0] != '-' && s[n - 1] != '-';
}

/* Object names are DNS-1123 subdomains: dot-separated labels, at most 253
 * bytes. Namespaces are single labels. Both go into the URL path, so
 * nothing else (no "..", no "/", no "%") may pass. */
static bool valid_name(const char *s)
{
	const char *dot;

	if (strlen(s) > NAME_MAX_LEN)
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

static bool valid_namespace(const char *s)
{
	return dns_label(s, strlen(s), 63);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	char *nb;

	if (x->len + n > BODY_MAX) {
		x->too_big = true;
		return 0;
	}
	nb = realloc(x->buf, x->len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + x->len, data, n);
	x->buf = nb;
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

static long remaining_ms(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 1 ? 1 : ms;
}

static const char *const kind_names[] = { "ConfigMap", "Secret", "Deployment" };

static int item_url(struct kube *k, const char *ns, const struct lookup_item *it, char *url,
		    size_t len)
{
	static const char *const group[] = { "/api/v1", "/api/v1", "/apis/apps/v1" };
	static const char *const resource[] = { "configmaps", "secrets", "deployments" };

	if (!ns || !it->name || !valid_namespace(ns) || !valid_name(it->name))
		return -1;
	if (snprintf(url, len, "%s%s/namespaces/%s/%s/%s", k->conn.server, group[it->kind], ns,
		     resource[it->kind], it->name) >= (int)len)
		return -1;
	return 0;
}

static void finish_item(struct lookup_item *it, enum lookup_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish_item(struct lookup_item *it, enum lookup_status st, const char *fmt, ...)
{
	va_list ap;

	it->status = st;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
		va_end(ap);
	}
	metrics_lookup(st == LOOKUP_FOUND ? LOOKUP_OK : st == LOOKUP_ABSENT ? LOOKUP_NOT_FOUND
									    : LOOKUP_FAILED);
}

static void pending_item_done(struct pending *p)
{
	if (--p->remaining == 0) {
		/* After this the batch belongs to the caller again. */
		p->done(p->arg);
		free(p);
	}
}

/* Frees the header list, wiping the Authorization line first. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

static void xfer_link(struct kube *k, struct xfer *x)
{
	x->prev = NULL;
	x->next = k->active;
	if (k->active)
		k->active->prev = x;
	k->active = x;
}

/* Releases a transfer whose item is finished, and counts the item done. */
static void xfer_release(struct kube *k, struct xfer *x)
{
	struct pending *p = x->p;

	if (x->prev)
		x->prev->next = x->next;
	else
		k->active = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_multi_remove_handle(k->multi, x->easy);
	curl_easy_cleanup(x->easy);
	free_headers(x->hdrs);
	if (x->buf) {
		OPENSSL_cleanse(x->buf, x->len);
		free(x->buf);
	}
	free(x);
	pending_item_done(p);
}

/* Starts one GET. Returns 0 when the item is under way or already finished
 * (an invalid name), -1 on OOM (the item is not finished). */
static int start_xfer(struct kube *k, struct pending *p, struct lookup_item *it)
{
	char url[1024], auth[8192];
	const char *tok;
	struct xfer *x;

	/* Names go into the URL path: anything but a DNS name could reach
	 * another endpoint. Nothing is sent for them. */
	if (item_url(k, p->b->namespace_, it, url, sizeof(url)) < 0) {
		finish_item(it, LOOKUP_ERROR, "invalid namespace or name");
		pending_item_done(p);
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->p = p;
	x->it = it;
	x->easy = curl_easy_init();
	x->hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!x->easy || !x->hdrs)
		goto fail;
	tok = kube_token_current(&k->token, &k->conn);
	if (tok && snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok) < (int)sizeof(auth)) {
		struct curl_slist *h = curl_slist_append(x->hdrs, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		if (!h)
			goto fail;
		x->hdrs = h;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, remaining_ms(&p->deadline));
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "rollgate/" ROLLGATE_VERSION);
	kube_conn_set_tls(&k->conn, x->easy);
	if (curl_multi_add_handle(k->multi, x->easy) != CURLM_OK)
		goto fail;
	xfer_link(k, x);
	return 0;
fail:
	if (x->easy)
		curl_easy_cleanup(x->easy);
	free_headers(x->hdrs);
	free(x);
	return -1;
}

/* A 200 answer: the object asked for, digested (ConfigMap, Secret) or kept
 * (Deployment). An object of another kind or name is a failed lookup, not
 * data to hash. */
static void parse_found(struct xfer *x)
{
	struct lookup_item *it = x->it;
	const char *kind, *name;
	cJSON *obj = NULL;
	char err[160], got[48];

	if (json_parse_strict(x->buf ? x->buf : "", x->len, &obj, err, sizeof(err)) < 0 ||
	    !cJSON_IsObject(obj)) {
		finish_item(it, LOOKUP_ERROR, "malformed answer from the API server");
		goto out;
	}
	kind = json_get_string(obj, "kind");
	name = json_get_string(json_get(obj, "metadata"), "name");
	if (!kind || strcmp(kind, kind_names[it->kind]) != 0) {
		log_clip(got, sizeof(got), kind ? kind : "(none)", 40);
		finish_item(it, LOOKUP_ERROR, "API server answered with kind %s, not %s", got,
			    kind_names[it->kind]);
		goto out;
	}
	if (!name || strcmp(name, it->name) != 0) {
		finish_item(it, LOOKUP_ERROR, "API server answered with another %s than the one asked for",
			    kind_names[it->kind]);
		goto out;
	}
	if (it->kind == SRC_DEPLOYMENT) {
		it->object = obj;
		obj = NULL;
		finish_item(it, LOOKUP_FOUND, NULL);
		goto out;
	}
	it->digest = calloc(1, sizeof(*it->digest));
	if (!it->digest) {
		finish_item(it, LOOKUP_ERROR, "out of memory");
	} else if (confighash_digest_object(obj, it->kind == SRC_SECRET ? OBJ_SECRET : OBJ_CONFIGMAP,
					    it->digest, err, sizeof(err)) < 0) {
		confighash_digest_free(it->digest);
		it->digest = NULL;
		finish_item(it, LOOKUP_ERROR, "malformed object: %s", err);
	} else {
		finish_item(it, LOOKUP_FOUND, NULL);
	}
out:
	if (obj && it->kind == SRC_SECRET)
		json_cleanse_tree(obj);
	cJSON_Delete(obj);
}

/* The API server's Status for a failed GET, parsed; NULL if there is none. */
static cJSON *status_body(const struct xfer *x)
{
	cJSON *st = NULL;
	char err[64];

	if (!x->buf || json_parse_strict(x->buf, x->len, &st, err, sizeof(err)) < 0)
		return NULL;
	if (!cJSON_IsObject(st) || !json_get_string(st, "kind") ||
	    strcmp(json_get_string(st, "kind"), "Status") != 0) {
		cJSON_Delete(st);
		return NULL;
	}
	return st;
}

/* A 404 means absent only when it is the API server's NotFound for this
 * very object: a 404 from a proxy or a wrong server URL would otherwise
 * read as "absent" and stamp a wrong hash. Anything else is a failure whose
 * reason carries the code and the Status message (which never holds object
 * values). */
static void status_reason(const struct xfer *x, long code)
{
	cJSON *st = status_body(x);
	const char *msg = json_get_string(st, "message"), *reason = json_get_string(st, "reason");
	const char *name = json_get_string(json_get(st, "details"), "name");
	char clipped[96];

	if (code == 404 && reason && strcmp(reason, "NotFound") == 0 && name &&
	    strcmp(name, x->it->name) == 0) {
		finish_item(x->it, LOOKUP_ABSENT, NULL);
	} else {
		log_clip(clipped, sizeof(clipped), msg ? msg : "", 90);
		finish_item(x->it, LOOKUP_ERROR, "HTTP %ld from the API server%s%s%s", code,
			    msg ? ": " : "", clipped, code == 404 && !msg ? " (not a Kubernetes Status)" : "");
	}
	cJSON_Delete(st);
}

static void end_xfer(struct kube *k, struct xfer *x, CURLcode res)
{
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OPERATION_TIMEDOUT)
		finish_item(x->it, LOOKUP_ERROR, "API lookup timed out");
	else if (x->too_big)
		finish_item(x->it, LOOKUP_ERROR, "API answer larger than %u bytes", BODY_MAX);
	else if (res != CURLE_OK)
		finish_item(x->it, LOOKUP_ERROR, "API request failed: %s", curl_easy_strerror(res));
	else if (code == 200)
		parse_found(x);
	else
		status_reason(x, code);
	xfer_release(k, x);
}

static struct pending *take_pending(struct kube *k)
{
	struct pending *q;

	pthread_mutex_lock(&k->lock);
	q = k->queue;
	k->queue = NULL;
	pthread_mutex_unlock(&k->lock);
	return q;
}

static void take_queue(struct kube *k)
{
	struct pending *q, *next;

	for (q = take_pending(k); q; q = next) {
		struct lookup_item *items = q->b->items;
		size_t n = q->b->n;
		next = q->next;
		/* Items may finish (and free q) while being started: read q
		 * before the loop, never inside it. */
		for (size_t i = 0; i < n; i++) {
			if (start_xfer(k, q, &items[i]) < 0) {
				finish_item(&items[i], LOOKUP_ERROR, "out of memory");
				pending_item_done(q);
			}
		}
	}
}

/* On destroy: every queued or running lookup ends as failed, and every
 * batch's done is called, once, before the worker exits. */
static void abort_all(struct kube *k)
{
	struct pending *q, *next;

	for (q = take_pending(k); q; q = next) {
		struct lookup_item *items = q->b->items;
		size_t n = q->b->n;
		next = q->next;
		for (size_t i = 0; i < n; i++) {
			finish_item(&items[i], LOOKUP_ERROR, "object source stopped");
			pending_item_done(q);
		}
	}
	while (k->active) {
		finish_item(k->active->it, LOOKUP_ERROR, "object source stopped");
		xfer_release(k, k->active);
	}
}

static void *worker(void *arg)
{
	struct kube *k = arg;
	CURLMsg *msg;
	int running, left;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&k->lock);
		stop = k->stop;
		pthread_mutex_unlock(&k->lock);
		if (stop)
			break;
		take_queue(k);
		curl_multi_perform(k->multi, &running);
		for (msg = curl_multi_info_read(k->multi, &left); msg;
		     msg = curl_multi_info_read(k->multi, &left)) {
			struct xfer *x = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			end_xfer(k, x, msg->data.result);
		}
		curl_multi_poll(k->multi, NULL, 0, 1000, NULL);
	}
	abort_all(k);
	return NULL;
}

static int kube_resolve(void *impl, struct lookup_batch *b, unsigned timeout_ms,
			lookup_done_fn done, void *arg)
{
	struct kube *k = impl;
	struct pending *p;

	if (b->n == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p) {
		for (size_t i = 0; i < b->n; i++)
			finish_item(&b->items[i], LOOKUP_ERROR, "out of memory");
		return 0;
	}
	p->b = b;
	p->done = done;
	p->arg = arg;
	p->remaining = b->n;
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
	p->deadline.tv_sec += timeout_ms / 1000;
	p->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (p->deadline.tv_nsec >= 1000000000L) {
		p->deadline.tv_sec++;
		p->deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	p->next = k->queue;
	k->queue = p;
	pthread_mutex_unlock(&k->lock);
	curl_multi_wakeup(k->multi);
	return 1;
}

/* Stops the worker, which first ends every lookup in flight (their batches'
 * done is called from it), then frees everything. */
static void kube_destroy(void *impl)
{
	struct kube *k = impl;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_mutex_unlock(&k->lock);
	curl_multi_wakeup(k->multi);
	pthread_join(k->thread, NULL);
	curl_multi_cleanup(k->multi);
	pthread_mutex_destroy(&k->lock);
	kube_conn_free(&k->conn);
	kube_token_free(&k->token);
	free(k);
}

static const struct objsource_ops kube_ops = { kube_resolve, NULL, kube_destroy };

struct objsource *kube_source_new(const char *kubeconfig, char *err, size_t errlen)
{
	struct kube *k = calloc(1, sizeof(*k));
	struct objsource *src = calloc(1, sizeof(*src));

	if (!k || !src) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (kube_conn_open(kubeconfig, &k->conn, err, errlen) < 0)
		goto fail;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	k->multi = curl_multi_init();
	if (!k->multi) {
		snprintf(err, errlen, "cannot initialise libcurl");
		goto fail;
	}
	curl_multi_setopt(k->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(k->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	pthread_mutex_init(&k->lock, NULL);
	if (pthread_create(&k->thread, NULL, worker, k) != 0) {
		snprintf(err, errlen, "cannot start the API worker thread");
		pthread_mutex_destroy(&k->lock);
		curl_multi_cleanup(k->multi);
		goto fail;
	}
	src->ops = &kube_ops;
	src->impl = k;
	src->name = "kubernetes";
	RG_LOG(LOG_INFO, "object source: Kubernetes API", LF_S("server", k->conn.server));
	return src;
fail:
	if (k)
		kube_conn_free(&k->conn);
	free(k);
	free(src);
	return NULL;
}
