#ifndef ROLLGATE_CLIUTIL_H
#define ROLLGATE_CLIUTIL_H

#include <stddef.h>

#include "config.h"
#include "objsource.h"
#include "webhook.h"

/* What every command that evaluates objects needs: the config, the object
 * source and the engine on top of them. */
struct engine {
	struct config *cfg; /* borrowed from wh once wh exists */
	struct objsource *src;
	struct webhook *wh;
};

/* Loads the config (defaults when path is NULL) and opens the object source
 * (files under objects_dir, the API through kubeconfig, or an in-memory set
 * when both are NULL). Returns 0 or -1 with err. */
int engine_open(struct engine *e, const char *config, const char *objects_dir,
		const char *kubeconfig, char *err, size_t errlen);
void engine_close(struct engine *e);

/* Resolves a lookup batch through e's source, waiting when it answers later. */
void engine_resolve(struct engine *e, struct lookup_batch *b);

/* Runs a webhook call to completion, waiting when it waits on lookups. */
void engine_run_call(struct webhook_call *call);

/* Prints "rollgate CMD: message" to stderr and returns 2. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
