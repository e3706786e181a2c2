/*
 * Runs lookups and webhook calls to completion for callers that can wait:
 * the pipeline commands and the report controller. The server never waits:
 * it suspends the connection instead (server.c).
 */
#include "engine.h"

#include <pthread.h>
#include <stdbool.h>

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void wake(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void wait_for(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void engine_resolve(struct engine *e, struct lookup_batch *b)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

	if (objsource_resolve(e->src, b, e->cfg->lookup_timeout_ms, wake, &w) == 1)
		wait_for(&w);
}

void engine_run_call(struct webhook_call *call)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

	if (webhook_call_run(call, wake, &w) == 1)
		wait_for(&w);
}
