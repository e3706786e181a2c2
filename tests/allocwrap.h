#ifndef ROLLGATE_ALLOCWRAP_H
#define ROLLGATE_ALLOCWRAP_H

/*
 * Watches every malloc/calloc/realloc/free made by the test and by the
 * library code it calls, for test binaries linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free (the Makefile
 * sets it for the tests that include this header). Allocations go through
 * cmocka's test_malloc family, so a block the code under test forgets fails
 * the test. On top of that a test can
 *   - make the next allocation fail (aw_fail_next),
 *   - see the largest size asked for, count allocations and reallocs,
 *   - watch one block: when it is freed, aw_watch_freed says whether its
 *     first n bytes were all zero at that moment (the wipe of a sensitive
 *     buffer, seen from outside).
 * Include it in exactly one .c file of a test binary.
 */
#include "testutil.h"

static struct {
	int fail_in;     /* > 0: the fail_in-th allocation from now fails */
	size_t largest;  /* largest size requested */
	unsigned allocs; /* malloc, calloc and realloc calls */
	unsigned reallocs;
	const void *watch;
	size_t watch_len;
	bool watch_freed, watch_zero;
} aw;

static inline void aw_reset(void)
{
	memset(&aw, 0, sizeof(aw));
}

static inline void aw_fail_next(int nth)
{
	aw.fail_in = nth;
}

static inline void aw_watch(const void *p, size_t n)
{
	aw.watch = p;
	aw.watch_len = n;
	aw.watch_freed = aw.watch_zero = false;
}

static inline bool aw_failing(size_t size)
{
	aw.allocs++;
	if (size > aw.largest)
		aw.largest = size;
	return aw.fail_in > 0 && --aw.fail_in == 0;
}

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);

void *__wrap_malloc(size_t size)
{
	return aw_failing(size) ? NULL : _test_malloc(size, __FILE__, __LINE__);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return aw_failing(n * size) ? NULL : _test_calloc(n, size, __FILE__, __LINE__);
}

void *__wrap_realloc(void *p, size_t size)
{
	aw.reallocs++;
	return aw_failing(size) ? NULL : _test_realloc(p, size, __FILE__, __LINE__);
}

void __wrap_free(void *p)
{
	if (p && p == aw.watch) {
		const unsigned char *b = p;
		aw.watch_freed = true;
		aw.watch_zero = true;
		for (size_t i = 0; i < aw.watch_len; i++)
			if (b[i])
				aw.watch_zero = false;
		aw.watch = NULL;
	}
	if (p)
		_test_free(p, __FILE__, __LINE__);
}

#endif
