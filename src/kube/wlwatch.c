/*
 * The workload watches and the thread of a controller (see wlwatch.h).
 */
#include "wlwatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubeclient.h"
#include "metrics.h"
#include "rgtime.h"

struct wlwatch {
	struct kwatch *w;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	struct wlwatch_handler h;
	struct wlwatch_stream *streams;
	size_t n_streams;
	pthread_t thread;
	bool started, stop, stopped;
	bool synced; /* under lock */
};

/* The metrics resource label of a watched kind. */
static enum metrics_resource kind_resource(enum kind_id id)
{
	switch (id) {
	case KIND_STATEFULSET:
		return MR_STATEFULSETS;
	case KIND_DAEMONSET:
		return MR_DAEMONSETS;
	case KIND_ROLLOUT:
		return MR_ROLLOUTS;
	case KIND_FLAGGER_CANARY:
		return MR_CANARIES;
	default:
		return MR_DEPLOYMENTS;
	}
}

static void on_list_start(void *arg)
{
	struct wlwatch_stream *st = arg;

	pthread_mutex_lock(st->ww->lock);
	st->gen++;
	pthread_mutex_unlock(st->ww->lock);
}

static void on_object(void *arg, enum kwatch_event ev, const cJSON *obj)
{
	struct wlwatch_stream *st = arg;

	st->ww->h.object(st->ww->h.arg, st, ev, obj);
}

static void on_synced(void *arg)
{
	struct wlwatch_stream *st = arg;
	struct wlwatch *ww = st->ww;

	pthread_mutex_lock(ww->lock);
	ww->h.sweep(ww->h.arg, st);
	st->synced = true;
	wlwatch_note(ww);
	pthread_mutex_unlock(ww->lock);
}

static void on_disabled(void *arg)
{
	struct wlwatch_stream *st = arg;
	struct wlwatch *ww = st->ww;

	pthread_mutex_lock(ww->lock);
	st->disabled = true;
	wlwatch_note(ww);
	pthread_mutex_unlock(ww->lock);
}

/* The stream st of kind k (index idx) in ns (NULL: cluster-wide), added
 * to the kwatch. */
static int add_stream(struct wlwatch *ww, struct wlwatch_stream *st, unsigned idx,
		      const struct kind *k, const char *ns, char *err, size_t errlen)
{
	char path[512];
	struct kwatch_spec spec = {
		.path = path,
		.label_selector = NULL,
		.resource = kind_resource(k->id),
		.sensitive = false,
		.optional = kinds_has(k, KIND_CUSTOM),
		.handler = { on_list_start, on_object, on_synced, on_disabled, st },
	};

	st->ww = ww;
	st->kind = idx;
	st->ns = ns ? strdup(ns) : NULL;
	if (ns && !st->ns) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s%s%s%s", k->api_path, ns ? "namespaces/" : "", ns ? ns : "",
		 ns ? "/" : "", k->resource);
	return kwatch_add(ww->w, &spec, err, errlen);
}

static int check_namespaces(const struct strlist *namespaces, char *err, size_t errlen)
{
	for (size_t i = 0; i < namespaces->n; i++) {
		if (!kube_valid_namespace(namespaces->v[i])) {
			snprintf(err, errlen, "watch.namespaces: \"%.80s\" is not a namespace name",
				 namespaces->v[i]);
			return -1;
		}
	}
	return 0;
}

struct wlwatch *wlwatch_new(struct kube_client *client, const enum kind_id *kinds, size_t n_kinds,
			    const struct strlist *namespaces, pthread_mutex_t *lock,
			    pthread_cond_t *cond, const struct wlwatch_handler *h, char *err,
			    size_t errlen)
{
	size_t nns = namespaces->n;
	struct wlwatch *ww;

	if (check_namespaces(namespaces, err, errlen) < 0)
		return NULL;
	ww = calloc(1, sizeof(*ww));
	if (ww) {
		ww->w = kwatch_new(client);
		ww->n_streams = n_kinds * (nns ? nns : 1);
		ww->streams = calloc(ww->n_streams, sizeof(*ww->streams));
	}
	if (!ww || !ww->w || !ww->streams) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ww->lock = lock;
	ww->cond = cond;
	ww->h = *h;
	for (size_t i = 0; i < ww->n_streams; i++)
		if (add_stream(ww, &ww->streams[i], (unsigned)(i % n_kinds),
			       kinds_get(kinds[i % n_kinds]), nns ? namespaces->v[i / n_kinds] : NULL,
			       err, errlen) < 0)
			goto fail;
	return ww;
fail:
	wlwatch_free(ww);
	return NULL;
}

int wlwatch_add(struct wlwatch *ww, const struct kwatch_spec *spec, char *err, size_t errlen)
{
	return kwatch_add(ww->w, spec, err, errlen);
}

int wlwatch_start(struct wlwatch *ww, void *(*run)(void *), void *arg, const char *name, char *err,
		  size_t errlen)
{
	if (kwatch_start(ww->w, err, errlen) < 0)
		return -1;
	if (pthread_create(&ww->thread, NULL, run, arg) != 0) {
		snprintf(err, errlen, "cannot start the %s thread", name);
		return -1;
	}
	ww->started = true;
	return 0;
}

void wlwatch_relist(struct wlwatch *ww)
{
	kwatch_relist(ww->w);
}

void wlwatch_note(struct wlwatch *ww)
{
	if (ww->synced)
		return;
	for (size_t i = 0; i < ww->n_streams; i++)
		if (!ww->streams[i].synced && !ww->streams[i].disabled)
			return;
	if (ww->h.ready && !ww->h.ready(ww->h.arg))
		return;
	ww->synced = true;
	ww->h.synced(ww->h.arg);
}

bool wlwatch_synced(const struct wlwatch *ww)
{
	return ww->synced;
}

bool wlwatch_is_synced(struct wlwatch *ww)
{
	bool s;

	pthread_mutex_lock(ww->lock);
	s = ww->synced;
	pthread_mutex_unlock(ww->lock);
	return s;
}

bool wlwatch_stopping(const struct wlwatch *ww)
{
	return ww->stop;
}

void wlwatch_wait(struct wlwatch *ww, long long until_ms, long long max_ms)
{
	struct timespec ts;
	long long ms = until_ms - rgtime_now_ms();

	if (ms <= 0)
		return;
	if (ms > max_ms)
		ms = max_ms;
	rgtime_wall_after(&ts, ms);
	pthread_cond_timedwait(ww->cond, ww->lock, &ts);
}

void wlwatch_stop(struct wlwatch *ww)
{
	if (!ww || ww->stopped)
		return;
	ww->stopped = true;
	kwatch_free(ww->w);
	ww->w = NULL;
	if (!ww->started)
		return;
	pthread_mutex_lock(ww->lock);
	ww->stop = true;
	pthread_cond_broadcast(ww->cond);
	pthread_mutex_unlock(ww->lock);
	pthread_join(ww->thread, NULL);
}

void wlwatch_free(struct wlwatch *ww)
{
	if (!ww)
		return;
	wlwatch_stop(ww);
	for (size_t i = 0; ww->streams && i < ww->n_streams; i++)
		free(ww->streams[i].ns);
	free(ww->streams);
	free(ww);
}
