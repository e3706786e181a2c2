#ifndef ROLLGATE_OBJCACHE_H
#define ROLLGATE_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "confighash.h"
#include "kubeclient.h"
#include "objsource.h"
#include "refs.h"

/*
 * The digest-only watch cache of ConfigMaps and Secrets. It lists and
 * watches them (cluster-wide, or one stream per namespace of
 * watch.namespaces, narrowed by watch.labelSelector) and keeps, per object,
 * only its resourceVersion and the SHA-256 digest of each value: never a
 * value. One allocation per object (digests, name and resourceVersion
 * inline); namespaces and key lists are interned and shared; a hash table
 * keyed by (kind, namespace, name). Lookups take a read lock and never touch
 * the network.
 */
struct objcache;

/* namespaces (empty: cluster-wide) and label_selector (NULL: none) are
 * copied; the client is borrowed. Returns NULL with err. */
struct objcache *objcache_new(struct kube_client *client, const struct strlist *namespaces,
			      const char *label_selector, char *err, size_t errlen);
/* Starts listing and watching. Returns 0 or -1 with err. */
int objcache_start(struct objcache *c, char *err, size_t errlen);
/* Stops the watch (no change callback runs after it returns) and frees; NULL ok. */
void objcache_free(struct objcache *c);

/* True once every stream has completed its first list. */
bool objcache_synced(struct objcache *c);
/* Waits up to timeout_ms for the first sync; returns objcache_synced(). */
bool objcache_wait_synced(struct objcache *c, unsigned timeout_ms);
/* Objects held now. */
size_t objcache_count(struct objcache *c);

enum objcache_answer {
	OBJCACHE_FOUND,   /* *out set: a malloc'd digest (confighash_digest_free) */
	OBJCACHE_ABSENT,  /* the object does not exist */
	OBJCACHE_UNKNOWN, /* the cache cannot say: not synced, outside the watched
			   * namespaces, absent under a label selector (it may exist
			   * with other labels), or an object rollgate could not digest */
	OBJCACHE_ERROR    /* out of memory */
};
enum objcache_answer objcache_lookup(struct objcache *c, enum obj_kind kind, const char *ns,
				     const char *name, struct obj_digest **out);

/*
 * A change the cache saw after its first sync: an object appeared or went
 * away (existence), or the digests of some keys changed (keys: added,
 * removed or changed, sorted). Changes of metadata alone are not reported.
 * Every pointer is valid for the call only.
 */
struct objcache_change {
	enum obj_kind kind;
	const char *ns;
	const char *name;
	bool existence;
	const char *const *keys;
	size_t n_keys;
};
typedef void (*objcache_change_fn)(void *arg, const struct objcache_change *ch);

/* Sets the one subscriber (fn NULL: none). Called from the watch thread,
 * without any cache lock held. After this returns, no call to the previous
 * subscriber is running or will start. */
void objcache_subscribe(struct objcache *c, objcache_change_fn fn, void *arg);

/*
 * An object source that answers ConfigMap and Secret lookups from the cache
 * and sends everything else (Deployments, and what the cache cannot answer:
 * see OBJCACHE_UNKNOWN) to fallback as one batch. cache is borrowed and must
 * outlive the source; fallback (may be NULL: such lookups fail) is owned and
 * freed with it. NULL on OOM (fallback then stays the caller's).
 */
struct objsource *objsource_cached_new(struct objcache *cache, struct objsource *fallback);

#endif
