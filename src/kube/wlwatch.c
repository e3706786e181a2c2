/*
 * The workload watches of a controller (see wlwatch.h).
 */
#include "wlwatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubeclient.h"
#include "metrics.h"

struct wlwatch {
	pthread_mutex_t *lock;
	struct wlwatch_handler h;
	struct wlwatch_stream *streams;
	size_t n_streams;
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
	ww->h.done(ww->h.arg);
	pthread_mutex_unlock(ww->lock);
}

static void on_disabled(void *arg)
{
	struct wlwatch_stream *st = arg;
	struct wlwatch *ww = st->ww;

	pthread_mutex_lock(ww->lock);
	st->disabled = true;
	ww->h.done(ww->h.arg);
	pthread_mutex_unlock(ww->lock);
}

/* The stream of kind k in ns (NULL: cluster-wide), added to w. */
static int add_stream(struct wlwatch *ww, struct kwatch *w, struct wlwatch_stream *st, unsigned idx,
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
	return kwatch_add(w, &spec, err, errlen);
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

struct wlwatch *wlwatch_new(struct kwatch *w, const enum kind_id *kinds, size_t n_kinds,
			    const struct strlist *namespaces, pthread_mutex_t *lock,
			    const struct wlwatch_handler *h, char *err, size_t errlen)
{
	size_t nns = namespaces->n;
	struct wlwatch *ww;

	if (check_namespaces(namespaces, err, errlen) < 0)
		return NULL;
	ww = calloc(1, sizeof(*ww));
	if (ww) {
		ww->n_streams = n_kinds * (nns ? nns : 1);
		ww->streams = calloc(ww->n_streams, sizeof(*ww->streams));
	}
	if (!ww || !ww->streams) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ww->lock = lock;
	ww->h = *h;
	for (size_t i = 0; i < ww->n_streams; i++)
		if (add_stream(ww, w, &ww->streams[i], (unsigned)(i % n_kinds),
			       kinds_get(kinds[i % n_kinds]), nns ? namespaces->v[i / n_kinds] : NULL,
			       err, errlen) < 0)
			goto fail;
	return ww;
fail:
	wlwatch_free(ww);
	return NULL;
}

bool wlwatch_synced(const struct wlwatch *ww)
{
	for (size_t i = 0; i < ww->n_streams; i++)
		if (!ww->streams[i].synced && !ww->streams[i].disabled)
			return false;
	return true;
}

void wlwatch_free(struct wlwatch *ww)
{
	if (!ww)
		return;
	for (size_t i = 0; ww->streams && i < ww->n_streams; i++)
		free(ww->streams[i].ns);
	free(ww->streams);
	free(ww);
}
