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
#include <stdbool.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

/* Characters (runes) in a UTF-8 string: bytes that do not continue one. */
static inline size_t tu_runes(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* True when s is what kube-apiserver keeps as a warning: valid UTF-8 (no
 * sequence cut short), no C0 or C1 control character, no DEL. */
static inline bool tu_valid_warning(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
		if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7F)) || (len == 2 && p[0] == 0xC2 && p[1] < 0xA0))
			return false;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xC0) != 0x80)
				return false;
		p += len;
	}
	return true;
}

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

/* Monotonic milliseconds. */
static inline long long tu_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Polls cond(arg) every 10 ms for up to ms; returns its last value. Tests
 * wait for conditions, never for fixed times, so a loaded machine only
 * makes them slower. */
static inline bool tu_wait_for(bool (*cond)(void *), void *arg, long long ms)
{
	long long until = tu_now_ms() + ms;

	while (!cond(arg)) {
		if (tu_now_ms() > until)
			return cond(arg);
		usleep(10 * 1000);
	}
	return true;
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
