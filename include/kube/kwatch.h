#ifndef ROLLGATE_KWATCH_H
#define ROLLGATE_KWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "kubeclient.h"
#include "metrics.h"

/*
 * List+watch of Kubernetes collections, on the transport of kubeclient.
 *
 * One thread drives every stream of a kwatch through one curl-multi loop
 * (HTTP/2 multiplexes them over one connection). Each stream lists its
 * collection in pages (limit/continue, a consistent read), then watches
 * from the list's resourceVersion with bookmarks, resumes from the last
 * resourceVersion seen (events and bookmarks) when a watch ends or drops,
 * relists on 410 Gone, and backs off exponentially on errors.
 */

enum kwatch_event { KWATCH_ADDED, KWATCH_MODIFIED, KWATCH_DELETED };

/*
 * What a stream tells its owner, always from the watch thread, one call at
 * a time. A (re)list calls list_start, then object(ADDED) for every item,
 * then synced: whatever the owner holds that was not delivered since
 * list_start is gone. Watch events follow as object() calls. obj is
 * borrowed for the call (and wiped afterwards for sensitive streams).
 * disabled: an optional stream whose list answered 404 (a CRD that is not
 * installed); the stream stops for good.
 */
struct kwatch_handler {
	void (*list_start)(void *arg);
	void (*object)(void *arg, enum kwatch_event ev, const cJSON *obj);
	void (*synced)(void *arg);
	void (*disabled)(void *arg);
	void *arg;
};

struct kwatch_spec {
	const char *path;           /* collection, e.g. "/api/v1/namespaces/shop/secrets" */
	const char *label_selector; /* NULL: every object */
	enum metrics_resource resource;
	bool sensitive; /* Secret values pass through: wipe buffers after use */
	bool optional;  /* a 404 on the list disables the stream (one log line) */
	struct kwatch_handler handler;
};

struct kwatch;

/* The client is borrowed. NULL on OOM. */
struct kwatch *kwatch_new(struct kube_client *c);
/* Streams one kwatch runs (two or four per watched namespace). */
#define KWATCH_MAX_STREAMS 65536u

/* Adds a stream (before kwatch_start; strings are copied). Returns 0 or -1
 * with err (out of memory, or past KWATCH_MAX_STREAMS). */
int kwatch_add(struct kwatch *w, const struct kwatch_spec *spec, char *err, size_t errlen);
/* Starts the thread. Returns 0 or -1 with err. */
int kwatch_start(struct kwatch *w, char *err, size_t errlen);
/* Asks every stream to list again (e.g. the owner's config changed). */
void kwatch_relist(struct kwatch *w);
/* Stops the thread (no handler runs after this returns) and frees; NULL ok. */
void kwatch_free(struct kwatch *w);

#endif
