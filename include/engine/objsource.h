#ifndef ROLLGATE_OBJSOURCE_H
#define ROLLGATE_OBJSOURCE_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "kinds.h"
#include "lookup.h"

/*
 * Where ConfigMaps, Secrets (as digests only) and Flagger target Deployments
 * come from: manifest files (--objects) or the Kubernetes API. A source
 * answers a batch of lookups for one admission request, either at once
 * (files, a synced cache) or later from its own thread (API GETs), so no
 * serving thread ever blocks on the network.
 */
typedef void (*lookup_done_fn)(void *arg);

/* The kinds table's row of a lookup's kind (its names, API path); NULL
 * for a value outside enum src_kind. */
const struct kind *objsource_kind(enum src_kind kind);

struct objsource_ops {
	/* Resolve every item of b within timeout_ms. Return 0 when done now, 1
	 * when done(arg) will be called later from another thread. */
	int (*resolve)(void *impl, struct lookup_batch *b, unsigned timeout_ms, lookup_done_fn done,
		       void *arg);
	/* Poll for file changes etc.; return 1 reloaded, 0 unchanged, -1 error. */
	int (*refresh)(void *impl, char *err, size_t errlen);
	void (*destroy)(void *impl);
};

struct objsource {
	const struct objsource_ops *ops;
	void *impl;
	const char *name; /* "files" or "kubernetes" */
};

int objsource_resolve(struct objsource *src, struct lookup_batch *b, unsigned timeout_ms,
		      lookup_done_fn done, void *arg);
/* objsource_resolve for a thread that may block (the controller, the CLI):
 * waits for a later answer, which every source gives by its own deadline.
 * Returns what objsource_resolve returned (0 at once, 1 after waiting). */
int objsource_resolve_wait(struct objsource *src, struct lookup_batch *b, unsigned timeout_ms);
int objsource_refresh(struct objsource *src, char *err, size_t errlen);
void objsource_free(struct objsource *src);

/*
 * The file source: every ConfigMap, Secret and Deployment in the YAML/JSON
 * manifests under dir (recursively, multi-document, List kinds). Objects
 * without a namespace match any namespace. Reloads when files change.
 */
struct objsource *objsource_files_new(const char *dir, char *err, size_t errlen);

/*
 * The same, from objects already in memory (the CLI's manifests): the tree
 * is borrowed for digests and copied for Deployments.
 */
struct objsource *objsource_memory_new(void);
int objsource_memory_add(struct objsource *src, const cJSON *obj, char *err, size_t errlen);

#endif
