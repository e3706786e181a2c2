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

/* What the cache lists and watches (every pointer may be NULL). */
struct objcache_scope {
	const struct strlist *namespaces; /* watch.namespaces; empty: cluster-wide */
	const char *label_selector;       /* watch.labelSelector: an object outside it
					   * may exist (lookups fall back to a GET) */
	const char *resource_selector;    /* reload.resourceLabelSelector: an object
					   * outside it counts as absent */
	bool skip_configmaps;             /* reload.ignoreConfigMaps: not listed */
	bool skip_secrets;                /* reload.ignoreSecrets: not listed */
};

/* The scope's strings are copied; with both selectors set the streams list
 * with both, comma-joined (AND). The client is borrowed. Returns NULL with
 * err. */
struct objcache *objcache_new_scoped(struct kube_client *client, const struct objcache_scope *scope,
				     char *err, size_t errlen);
/* objcache_new_scoped with namespaces and label_selector alone. */
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
	OBJCACHE_FOUND,   /* *out set: a malloc'd digest (confighash_digest_free),
			   * flags included */
	OBJCACHE_ABSENT,  /* the object does not exist */
	OBJCACHE_UNKNOWN, /* the cache cannot say: not synced, outside the watched
			   * namespaces or kinds, absent under watch.labelSelector alone
			   * (it may exist with other labels), or an object rollgate
			   * could not digest */
	OBJCACHE_ERROR    /* out of memory */
};
enum objcache_answer objcache_lookup(struct objcache *c, enum obj_kind kind, const char *ns,
				     const char *name, struct obj_digest **out);

/*
 * A change the cache saw after its first sync: an object appeared or went
 * away (existence), its reload annotations (OBJ_FLAG_*) changed (flags:
 * whether it joins hashes did), or the digests of some keys changed (keys:
 * added, removed or changed, sorted). Other changes of metadata are not
 * reported. Every pointer is valid for the call only.
 */
struct objcache_change {
	enum obj_kind kind;
	const char *ns;
	const char *name;
	bool existence;
	bool flags;
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
