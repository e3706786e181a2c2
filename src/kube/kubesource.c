/*
 * Kubernetes API object source. One worker thread drives a kube_loop
 * (kubeclient): batches arrive through a locked queue and a wakeup, every lookup
 * of a batch runs in parallel under the batch's deadline, connections (and
 * HTTP/2 streams) are reused, and the batch's callback fires once, when its
 * last lookup ends. Secret bodies are wiped after they are digested.
 * Destroying the source ends whatever is still in flight as failed lookups
 * (each batch's callback still fires once) instead of abandoning it.
 */
#include "kubesource.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "confighash.h"
#include "jsonutil.h"
#include "kinds.h"
#include "log.h"
#include "metrics.h"
#include "rgassert.h"
#include "rgtime.h"

#define MAX_CONNS 8L

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
	struct kube_xfer t;
	struct dynbuf body;       /* sensitive: it may hold a Secret */
	struct xfer *prev, *next; /* the worker's list of running transfers */
};

struct kube {
	struct kube_conn conn;
	struct kube_client *client;
	struct kube_loop *loop;
	pthread_mutex_t lock;
	struct pending *queue;
	struct xfer *active; /* worker thread only */
};

/* What is left of a batch's budget, at least 1 ms: curl reads a timeout
 * of 0 as none at all. */
static long remaining_ms(const struct timespec *deadline)
{
	long long ms = rgtime_remaining_ms(deadline);

	return ms < 1 ? 1 : (long)ms;
}

/* The kinds table's row of each kind of lookup. */
static const struct kind *item_kind(const struct lookup_item *it)
{
	return objsource_kind(it->kind);
}

/* The item's path: names are DNS names (anything else could reach another
 * endpoint) and the path fits in len. */
static int item_path(const char *ns, const struct lookup_item *it, char *path, size_t len)
{
	const struct kind *k = item_kind(it);

	if (!kube_valid_namespace(ns) || !kube_valid_name(it->name))
		return -1;
	if (snprintf(path, len, "%s/namespaces/%s/%s/%s", k->api_path, ns, k->resource, it->name) >=
	    (int)len)
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
	metrics_lookup(st == LOOKUP_FOUND            ? LOOKUP_OK
			       : st == LOOKUP_ABSENT ? LOOKUP_NOT_FOUND
						     : LOOKUP_FAILED);
}

/* The batch's callback fires once: when the last of its items is done. */
static void pending_item_done(struct pending *p)
{
	RG_ASSERT(p->remaining > 0);
	if (--p->remaining == 0) {
		/* After this the batch belongs to the caller again. */
		p->done(p->arg);
		free(p);
	}
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
	kube_loop_remove(k->loop, x->t.easy);
	kube_xfer_close(&x->t);
	dynbuf_clear(&x->body);
	free(x);
	pending_item_done(p);
}

/* Starts one GET. Returns 0 when the item is under way or already finished
 * (an invalid name), -1 on OOM (the item is not finished). */
static int start_xfer(struct kube *k, struct pending *p, struct lookup_item *it)
{
	char path[1024];
	struct xfer *x;

	/* Nothing is sent for a name that is not a DNS name. */
	if (item_path(lookup_item_namespace(p->b, it), it, path, sizeof(path)) < 0) {
		finish_item(it, LOOKUP_ERROR, "invalid namespace or name");
		pending_item_done(p);
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->p = p;
	x->it = it;
	kube_body_init(&x->body, KUBE_REPLY_MAX, true);
	if (kube_xfer_open(k->client, &x->t, path, NULL, remaining_ms(&p->deadline)) < 0)
		goto fail;
	curl_easy_setopt(x->t.easy, CURLOPT_WRITEFUNCTION, kube_body_write);
	curl_easy_setopt(x->t.easy, CURLOPT_WRITEDATA, &x->body);
	if (kube_loop_add(k->loop, x->t.easy, x) < 0)
		goto fail;
	xfer_link(k, x);
	return 0;
fail:
	kube_xfer_close(&x->t);
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

	if (json_parse_strict(dynbuf_ptr(&x->body), dynbuf_len(&x->body), &obj, err, sizeof(err)) <
		    0 ||
	    !cJSON_IsObject(obj)) {
		finish_item(it, LOOKUP_ERROR, "malformed answer from the API server");
		goto out;
	}
	kind = json_get_string(obj, "kind");
	name = json_get_string(json_get(obj, "metadata"), "name");
	if (!kind || strcmp(kind, item_kind(it)->kind) != 0) {
		log_clip(got, sizeof(got), kind ? kind : "(none)", 40);
		finish_item(it, LOOKUP_ERROR, "API server answered with kind %s, not %s", got,
			    item_kind(it)->kind);
		goto out;
	}
	if (!name || strcmp(name, it->name) != 0) {
		finish_item(it, LOOKUP_ERROR,
			    "API server answered with another %s than the one asked for",
			    item_kind(it)->kind);
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

/* A 404 means absent only when it is the API server's NotFound for this
 * very object: a 404 from a proxy or a wrong server URL would otherwise
 * read as "absent" and stamp a wrong hash. Anything else is a failure whose
 * reason carries the code and the Status message (which never holds object
 * values). */
static void status_reason(const struct xfer *x, long code)
{
	cJSON *st = kube_status_parse(dynbuf_ptr(&x->body), dynbuf_len(&x->body));
	const char *msg = json_get_string(st, "message"), *reason = json_get_string(st, "reason");
	const char *name = json_get_string(json_get(st, "details"), "name");
	char clipped[96];

	if (code == 404 && reason && strcmp(reason, "NotFound") == 0 && name &&
	    strcmp(name, x->it->name) == 0) {
		finish_item(x->it, LOOKUP_ABSENT, NULL);
	} else {
		log_clip(clipped, sizeof(clipped), msg ? msg : "", 90);
		finish_item(x->it, LOOKUP_ERROR, "HTTP %ld from the API server%s%s%s", code,
			    msg ? ": " : "", clipped,
			    code == 404 && !msg ? " (not a Kubernetes Status)" : "");
	}
	cJSON_Delete(st);
}

/* A GET ended (loop thread): the item's answer, then the transfer goes. */
static void end_xfer(void *arg, void *priv, CURLcode res, long code)
{
	struct xfer *x = priv;

	if (res == CURLE_OPERATION_TIMEDOUT)
		finish_item(x->it, LOOKUP_ERROR, "API lookup timed out");
	else if (dynbuf_error(&x->body) == DYNBUF_E_TOOBIG)
		finish_item(x->it, LOOKUP_ERROR, "API answer larger than %u bytes", KUBE_REPLY_MAX);
	else if (res != CURLE_OK)
		finish_item(x->it, LOOKUP_ERROR, "API request failed: %s", curl_easy_strerror(res));
	else if (code == 200)
		parse_found(x);
	else
		status_reason(x, code);
	xfer_release(arg, x);
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

/* Takes the queue and hands every item of every queued batch to fn. An
 * item may finish its batch (and free it): each batch is read before its
 * items are handed on, never after. */
static void each_queued(struct kube *k,
			void (*fn)(struct kube *k, struct pending *p, struct lookup_item *it))
{
	struct pending *q, *next;

	for (q = take_pending(k); q; q = next) {
		struct lookup_item *items = q->b->items;
		size_t n = q->b->n;
		next = q->next;
		for (size_t i = 0; i < n; i++)
			fn(k, q, &items[i]);
	}
}

static void start_item(struct kube *k, struct pending *p, struct lookup_item *it)
{
	if (start_xfer(k, p, it) < 0) {
		finish_item(it, LOOKUP_ERROR, "out of memory");
		pending_item_done(p);
	}
}

static void stop_item(struct kube *k, struct pending *p, struct lookup_item *it)
{
	finish_item(it, LOOKUP_ERROR, "object source stopped");
	pending_item_done(p);
}

/* Each round of the loop: start the batches queued since the last one. */
static long take_queue(void *arg)
{
	each_queued(arg, start_item);
	return 1000;
}

/* On destroy: every queued or running lookup ends as failed, and every
 * batch's done is called, once, before the worker exits. */
static void abort_all(void *arg)
{
	struct kube *k = arg;

	each_queued(k, stop_item);
	while (k->active) {
		finish_item(k->active->it, LOOKUP_ERROR, "object source stopped");
		xfer_release(k, k->active);
	}
}

static int kube_resolve(void *impl, struct lookup_batch *b, unsigned timeout_ms, lookup_done_fn done,
			void *arg)
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
	rgtime_deadline(&p->deadline, timeout_ms);
	pthread_mutex_lock(&k->lock);
	p->next = k->queue;
	k->queue = p;
	pthread_mutex_unlock(&k->lock);
	kube_loop_wake(k->loop);
	return 1;
}

/* Stops the worker, which first ends every lookup in flight (their batches'
 * done is called from it), then frees everything. */
static void kube_destroy(void *impl)
{
	struct kube *k = impl;

	if (!k)
		return;
	kube_loop_free(k->loop);
	kube_client_free(k->client);
	pthread_mutex_destroy(&k->lock);
	kube_conn_clear(&k->conn);
	free(k);
}

static const struct objsource_ops kube_ops = { kube_resolve, NULL, kube_destroy };

struct objsource *kubesource_new(const char *kubeconfig, char *err, size_t errlen)
{
	struct kube *k = calloc(1, sizeof(*k));
	struct objsource *src = calloc(1, sizeof(*src));
	const struct kube_loop_ops ops = { take_queue, end_xfer, abort_all, k };

	if (!k || !src) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (kube_conn_open(kubeconfig, &k->conn, err, errlen) < 0)
		goto fail;
	pthread_mutex_init(&k->lock, NULL);
	k->client = kube_client_new(&k->conn, err, errlen);
	k->loop = k->client ? kube_loop_new(MAX_CONNS, err, errlen) : NULL;
	if (!k->loop || kube_loop_start(k->loop, &ops, err, errlen) < 0)
		goto fail_locked;
	src->ops = &kube_ops;
	src->impl = k;
	src->name = "kubernetes";
	RG_LOG(LOG_INFO, "object source: Kubernetes API", LF_S("server", k->conn.server));
	return src;
fail_locked:
	kube_loop_free(k->loop);
	kube_client_free(k->client);
	pthread_mutex_destroy(&k->lock);
fail:
	if (k)
		kube_conn_clear(&k->conn);
	free(k);
	free(src);
	return NULL;
}
