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
#include <cmocka.h>
#include <cjson/cJSON.h>

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL if absent. */
char *tu_read_file(const char *path, size_t *len);

/* Monotonic milliseconds. */
long long tu_now_ms(void);

/* Polls cond(arg) every 10 ms for up to ms; returns its last value. Tests
 * wait for conditions, never for fixed times, so a loaded machine only
 * makes them slower. */
bool tu_wait_for(bool (*cond)(void *), void *arg, long long ms);

/* The project root (tests run from it; ROLLGATE_ROOT overrides). */
const char *tu_root(void);

/* Path of the shared corpus or NULL (with a message) when it is absent. */
const char *tu_corpus(void);

/* Parses JSON written with single quotes (readable C literals) strictly;
 * fails the test on bad JSON. The caller deletes the tree. */
cJSON *tu_parse(const char *sq);

/* Run by hand (ROLLGATE_BIN unset): points ROLLGATE_BIN at the rollgate of
 * the build this test belongs to (build/ or build/asan/), when it exists. */
void tu_use_build_bin(void);

/* Group setup of the tests that run a server: a fresh directory with dev
 * certificates (h_make_certs; its path in dir) and tu_use_build_bin.
 * Returns 0 or -1. */
int tu_certs_setup(char *dir, size_t len);
/* Removes that directory, or keeps it (and says where) with KEEP_TEST_DIR. */
void tu_certs_teardown(const char *dir);

#endif
