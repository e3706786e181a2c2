/*
 * Pieces the subcommands share.
 */
#include "cliutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubesource.h"

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rollgate %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

int engine_open(struct engine *e, const char *config, const char *objects_dir, const char *kubeconfig,
		char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	e->cfg = calloc(1, sizeof(*e->cfg));
	if (!e->cfg) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((config ? config_load(config, e->cfg, err, errlen) : config_defaults(e->cfg)) < 0) {
		if (!config)
			snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (objects_dir)
		e->src = objsource_files_new(objects_dir, err, errlen);
	else if (kubeconfig)
		e->src = kubesource_new(kubeconfig, err, errlen);
	else {
		e->src = objsource_memory_new();
		if (!e->src)
			snprintf(err, errlen, "out of memory");
	}
	if (!e->src)
		goto fail;
	e->wh = webhook_new(e->cfg, e->src);
	if (!e->wh) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	config_clear(e->cfg);
	free(e->cfg);
	objsource_free(e->src);
	memset(e, 0, sizeof(*e));
	return -1;
}

void engine_close(struct engine *e)
{
	webhook_free(e->wh); /* frees the config it owns */
	objsource_free(e->src);
	memset(e, 0, sizeof(*e));
}
