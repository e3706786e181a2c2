#ifndef ROLLGATE_ENGINE_H
#define ROLLGATE_ENGINE_H

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

/* Resolves a lookup batch through e's source, waiting when it answers later. */
void engine_resolve(struct engine *e, struct lookup_batch *b);

/* Runs a webhook call to completion, waiting when it waits on lookups. */
void engine_run_call(struct webhook_call *call);

#endif
