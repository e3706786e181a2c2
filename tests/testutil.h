#ifndef ROLLGATE_TESTUTIL_H
#define ROLLGATE_TESTUTIL_H

/* Shared helpers for cmocka tests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL if absent. */
static inline char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* The project root (tests run from it; ROLLGATE_ROOT overrides). */
static inline const char *tu_root(void)
{
	const char *r = getenv("ROLLGATE_ROOT");
	return r && *r ? r : ".";
}

/* Path of the shared corpus or NULL (with a message) when it is absent. */
static inline const char *tu_corpus(void)
{
	static char path[4096];
	const char *env = getenv("ROLLGATE_CORPUS");
	FILE *f;

	snprintf(path, sizeof(path), "%s", env && *env ? env : "../shared/corpus");
	char probe[4200];
	snprintf(probe, sizeof(probe), "%s/SOURCES.md", path);
	f = fopen(probe, "r");
	if (!f) {
		printf("[  SKIP    ] corpus not found at %s (set ROLLGATE_CORPUS)\n", path);
		return NULL;
	}
	fclose(f);
	return path;
}

#endif
