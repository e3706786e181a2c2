/*
 * The failure path of RG_ASSERT. Writes straight to stderr, not through the
 * logging module: an invariant is broken, so as little as possible runs
 * before the abort.
 */
#include "rgassert.h"

#include <stdio.h>
#include <stdlib.h>

void rg_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "%s:%d: %s: assertion '%s' failed\n", file, line, func, expr);
	fflush(stderr);
	abort();
}
