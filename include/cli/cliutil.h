#ifndef ROLLGATE_CLIUTIL_H
#define ROLLGATE_CLIUTIL_H

#include <stddef.h>

#include "engine.h"

/* Loads the config (defaults when path is NULL) and opens the object source
 * (files under objects_dir, the API through kubeconfig, or an in-memory set
 * when both are NULL). Returns 0 or -1 with err. */
int engine_open(struct engine *e, const char *config, const char *objects_dir, const char *kubeconfig,
		char *err, size_t errlen);
void engine_close(struct engine *e);

/* Prints "rollgate CMD: message" to stderr and returns 2. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
