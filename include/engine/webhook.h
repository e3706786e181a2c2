#ifndef ROLLGATE_WEBHOOK_H
#define ROLLGATE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"

/*
 * The admission engine behind /mutate and /validate, shared by the server
 * and `rollgate review`: decode, decide, encode, log one line. Owns the
 * current config (swapped whole on reload) and the object source.
 */
struct webhook;
struct objsource;

enum webhook_kind { WEBHOOK_MUTATE, WEBHOOK_VALIDATE };

/* Takes ownership of cfg (a heap struct config) and borrows src (may be NULL). */
struct webhook *webhook_new(struct config *cfg, struct objsource *src);
void webhook_free(struct webhook *wh);

/* Publishes a new config; requests in flight keep the one they started with. */
void webhook_set_config(struct webhook *wh, struct config *cfg);

/* One review in flight. */
struct webhook_call;
typedef void (*webhook_done_fn)(void *arg);

/* Takes ownership of body (NUL-terminated at body[len]). NULL on OOM. */
struct webhook_call *webhook_call_new(struct webhook *wh, enum webhook_kind kind, char *body,
				      size_t len);
/*
 * Runs the review. Returns 0 when the result is ready now; 1 when it waits
 * on object lookups, in which case done(arg) is called exactly once, from
 * another thread, when the result is ready (never from inside this call).
 */
int webhook_call_run(struct webhook_call *call, webhook_done_fn done, void *arg);

/* The HTTP status, body and metrics outcome of a finished call. */
int webhook_call_status(const struct webhook_call *call);
const char *webhook_call_body(const struct webhook_call *call, size_t *len);
enum metrics_outcome webhook_call_outcome(const struct webhook_call *call);
void webhook_call_free(struct webhook_call *call);

#endif
