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
 * The workload watches and the thread of a controller (the reload
 * controller, the report controller).
 *
 * The watches: one kwatch stream per watched kind and namespace, with the
 * bookkeeping of which streams have listed. The caller names its kinds as
 * a list of enum kind_id; a stream knows its kind by index in that list
 * (the caller's own enum). Paths, the metrics resource label and
 * optionality come from the kinds table: a custom resource (KIND_CUSTOM:
 * Argo Rollouts, Flagger Canaries) is optional, and a 404 on its list
 * disables that stream for good. A stream counts as done once it has
 * listed or been disabled. The controller is synced (a latch) once every
 * stream is done and its ready callback agrees.
 *
 * The thread: the controller's own loop, started after the watches and
 * stopped after them, waiting on the caller's condition variable.
 *
 * Locking: the caller's mutex and condition variable (borrowed) guard
 * gen, synced, disabled and the latch; wlwatch takes the mutex around
 * list starts, sweeps and the ready and synced callbacks, never around
 * object. Every watch callback runs on the kwatch thread.
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
	/* Lock held: whether what else the controller waits for has listed;
	 * NULL: nothing else. */
	bool (*ready)(void *arg);
	/* Lock held: the controller has just become synced (once). */
	void (*synced)(void *arg);
	void *arg;
};

struct wlwatch;

/*
 * A kwatch on client (borrowed) with a stream per kind of
 * kinds[0..n_kinds) and namespace of namespaces (empty: one cluster-wide
 * stream per kind). Every namespace must be a namespace name (err names
 * the first that is not, as "watch.namespaces: ..."). lock and cond are
 * borrowed; h is copied. NULL with err.
 */
struct wlwatch *wlwatch_new(struct kube_client *client, const enum kind_id *kinds, size_t n_kinds,
			    const struct strlist *namespaces, pthread_mutex_t *lock,
			    pthread_cond_t *cond, const struct wlwatch_handler *h, char *err,
			    size_t errlen);
/* Adds another stream to the same kwatch (before wlwatch_start); as
 * kwatch_add. */
int wlwatch_add(struct wlwatch *ww, const struct kwatch_spec *spec, char *err, size_t errlen);
/* Starts the watches, then run(arg) on the controller thread; name ("reload
 * controller") is for err. Returns 0 or -1 with err. */
int wlwatch_start(struct wlwatch *ww, void *(*run)(void *), void *arg, const char *name, char *err,
		  size_t errlen);
/* Asks every stream to list again. */
void wlwatch_relist(struct wlwatch *ww);

/* Lock held: ready may have become true; latches synced when all is done. */
void wlwatch_note(struct wlwatch *ww);
/* Lock held: whether the controller is synced. */
bool wlwatch_synced(const struct wlwatch *ww);
/* The same, taking the lock. */
bool wlwatch_is_synced(struct wlwatch *ww);
/* Lock held: whether the controller thread is to return. */
bool wlwatch_stopping(const struct wlwatch *ww);
/* Lock held: waits on cond until until_ms (monotonic), at most max_ms. */
void wlwatch_wait(struct wlwatch *ww, long long until_ms, long long max_ms);

/* Stops the watches (no watch callback runs after this returns), then the
 * controller thread (woken; joined). NULL ok; a second call does nothing. */
void wlwatch_stop(struct wlwatch *ww);
/* Stops and frees; NULL ok. */
void wlwatch_free(struct wlwatch *ww);

#endif
