#ifndef ROLLGATE_WLWATCH_H
#define ROLLGATE_WLWATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "kinds.h"
#include "kwatch.h"

/*
 * The workload watches of a controller (the reload controller, the report
 * controller): one kwatch stream per watched kind and namespace, with the
 * bookkeeping of which streams have listed.
 *
 * The caller names its kinds as a list of enum kind_id; a stream knows its
 * kind by index in that list (the caller's own enum). Paths, the metrics
 * resource label and optionality come from the kinds table: a custom
 * resource (KIND_CUSTOM: Argo Rollouts, Flagger Canaries) is optional, and
 * a 404 on its list disables that stream for good. A stream counts as done
 * once it has listed or been disabled; wlwatch_synced is true when every
 * stream is done.
 *
 * Threads: every callback runs on the kwatch thread. The caller's mutex
 * (borrowed) guards gen, synced and disabled; wlwatch takes it around
 * list starts, sweeps and the done callback, never around object.
 */

/* One stream, read-only for the caller. */
struct wlwatch_stream {
	struct wlwatch *ww;
	unsigned kind;         /* index in the caller's kinds */
	char *ns;              /* NULL: cluster-wide */
	uint32_t gen;          /* the current list's generation; under the lock */
	bool synced, disabled; /* under the lock */
};

struct wlwatch_handler {
	/* An object of st's kind (unlocked); as kwatch_handler.object. */
	void (*object)(void *arg, const struct wlwatch_stream *st, enum kwatch_event ev,
		       const cJSON *obj);
	/* Lock held: st has listed; what the caller holds of st's kind and
	 * namespace with a generation other than st->gen is gone. */
	void (*sweep)(void *arg, const struct wlwatch_stream *st);
	/* Lock held: a stream has listed or been disabled (wlwatch_synced
	 * may have become true). */
	void (*done)(void *arg);
	void *arg;
};

struct wlwatch;

/*
 * Adds to w (borrowed; it must outlive the wlwatch's handlers, i.e. be
 * freed first) a stream per kind of kinds[0..n_kinds) and namespace of
 * namespaces (empty: one cluster-wide stream per kind). Every namespace
 * must be a namespace name (err names the first that is not, as
 * "watch.namespaces: ..."). lock and h are borrowed and copied. NULL with
 * err.
 */
struct wlwatch *wlwatch_new(struct kwatch *w, const enum kind_id *kinds, size_t n_kinds,
			    const struct strlist *namespaces, pthread_mutex_t *lock,
			    const struct wlwatch_handler *h, char *err, size_t errlen);

/* Lock held: every stream has listed or been disabled. */
bool wlwatch_synced(const struct wlwatch *ww);

/* Frees; NULL ok. Free the kwatch first (no handler may still run). */
void wlwatch_free(struct wlwatch *ww);

#endif
