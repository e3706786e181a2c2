#ifndef ROLLGATE_CONFIGREF_H
#define ROLLGATE_CONFIGREF_H

#include <stdatomic.h>

#include "config.h"

/*
 * A published config shared by the threads that read it (the webhook's
 * reviews, the reload controller), with one atomic reference count. Its
 * owner wraps a new config with config_ref_new and keeps that reference
 * while the config is current; a reader takes its own with config_ref
 * (under the owner's lock, while the owner's reference keeps it alive) and
 * drops it with config_unref, from any thread. The last config_unref frees
 * the config. Which config is current is the owner's business, swapped
 * under its own lock; the config is read-only while shared.
 */
struct config_ref {
	struct config *cfg; /* owned; read-only while shared */
	atomic_int refs;    /* private: config_ref and config_unref */
};

/* Wraps cfg (a heap struct config) with a count of 1 and takes it over.
 * NULL on OOM; cfg then stays the caller's. */
struct config_ref *config_ref_new(struct config *cfg);

/* One more reference to r (which the caller holds, or reaches under the
 * owner's lock); returns r. */
struct config_ref *config_ref(struct config_ref *r);

/* Drops one reference; the last frees the config and r. NULL ok. */
void config_unref(struct config_ref *r);

#endif
