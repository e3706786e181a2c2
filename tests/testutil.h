#ifndef ROLLGATE_TESTUTIL_H
#define ROLLGATE_TESTUTIL_H

/* Shared helpers for cmocka tests (tests/testutil.c, linked into every
 * test binary). Include this first: it brings cmocka and its prerequisites. */
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
#include <sys/types.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "rgtime.h" /* tests time with the project's clock */

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
		int len = *p < 0x80           ? 1
			: (*p & 0xE0) == 0xC0 ? 2
			: (*p & 0xF0) == 0xE0 ? 3
			: (*p & 0xF8) == 0xF0 ? 4
					      : 0;
		if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7F)) ||
		    (len == 2 && p[0] == 0xC2 && p[1] < 0xA0))
			return false;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xC0) != 0x80)
				return false;
		p += len;
	}
	return true;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL if absent. */
char *tu_read_file(const char *path, size_t *len);

/* A "Vm...:" field of /proc/PID/status (VmRSS:, VmHWM:), in KiB; -1 when
 * it cannot be read. */
long tu_proc_kib(pid_t pid, const char *field);

/* RG_ASAN: built with AddressSanitizer, where memory figures mean nothing. */
#if defined(__SANITIZE_ADDRESS__)
#define RG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RG_ASAN 1
#endif
#endif

/* Polls cond(arg) every 10 ms for up to ms; returns its last value. Tests
 * wait for conditions, never for fixed times, so a loaded machine only
 * makes them slower. */
bool tu_wait_for(bool (*cond)(void *), void *arg, long long ms);

/* The project root (tests run from it; ROLLGATE_ROOT overrides). */
const char *tu_root(void);

/* Path of the shared corpus or NULL (with a message) when it is absent. */
const char *tu_corpus(void);

/* Parses len bytes of JSON text (text[len] must be '\0') strictly, as
 * rollgate and kube-apiserver read JSON (json_parse_strict: no trailing
 * bytes, no duplicate keys). tu_json fails the test with the reason and
 * the start of the text when it is not such JSON; tu_json_or_null returns
 * NULL then (for the API double's threads and for probes that poll). The
 * caller deletes the tree. */
cJSON *tu_json(const char *text, size_t len);
cJSON *tu_json_or_null(const char *text, size_t len);

/* Parses JSON written with single quotes (readable C literals) strictly;
 * fails the test on bad JSON. The caller deletes the tree. */
cJSON *tu_parse(const char *sq);

struct config; /* config.h */

/* A config read from YAML text (named "test.yaml" in errors) over the
 * defaults; fails the test when it is refused. The caller releases it
 * with config_clear and free, or hands it to what takes it over. */
struct config *tu_config(const char *yaml);

/* Before the tests run: logs at error level (debug with TEST_LOG set),
 * and only the tests TEST_FILTER names when it is set. */
void tu_setup_from_env(void);

/* Run by hand (ROLLGATE_BIN unset): points ROLLGATE_BIN at the rollgate of
 * the build this test belongs to (build/ or build/asan/), when it exists. */
void tu_use_build_bin(void);

/* Group setup of the tests that run a server: a fresh directory with dev
 * certificates (h_make_certs; its path in dir) and tu_use_build_bin.
 * Returns 0 or -1. */
int tu_certs_setup(char *dir, size_t len);
/* Removes that directory, or keeps it (and says where) with KEEP_TEST_DIR. */
void tu_certs_teardown(const char *dir);

/* The same as a cmocka group setup and teardown for a test binary whose
 * tests share one such directory, tu_certdir:
 * cmocka_run_group_tests(tests, tu_certs_group_setup, tu_certs_group_teardown). */
extern char tu_certdir[256];
int tu_certs_group_setup(void **state);
int tu_certs_group_teardown(void **state);

#endif
