/* libFuzzer: the request decoder and both review paths on arbitrary bodies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "config.h"
#include "log.h"
#include "objsource.h"
#include "webhook.h"

static struct webhook *wh;
static struct objsource *src;

static void never(void *arg)
{
	(void)arg;
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!wh) {
		struct config *cfg = calloc(1, sizeof(*cfg));
		log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
		if (!cfg || config_defaults(cfg) < 0)
			abort();
		src = objsource_memory_new();
		wh = webhook_new(cfg, src);
	}
	for (int kind = 0; kind < 2; kind++) {
		char *body = malloc(size + 1);
		struct webhook_call *call;
		if (!body)
			return 0;
		memcpy(body, data, size);
		body[size] = '\0';
		call = webhook_call_new(wh, kind ? WEBHOOK_VALIDATE : WEBHOOK_MUTATE, body, size);
		if (call && webhook_call_run(call, never, NULL) != 0)
			abort();
		webhook_call_free(call);
	}
	return 0;
}
