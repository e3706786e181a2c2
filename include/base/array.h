#ifndef ROLLGATE_ARRAY_H
#define ROLLGATE_ARRAY_H

#include <stddef.h>

/*
 * Growth of a plain C array: the caller keeps the pointer, the count and
 * the capacity, and asks for room before each append.
 *
 *	if (array_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v), LIST_MAX) < 0)
 *		goto oom_or_full;
 *	l->v[l->n++] = x;
 */

enum {
	ARRAY_E_NOMEM = -1, /* realloc failed */
	ARRAY_E_FULL = -2,  /* need > max, or the byte size would overflow */
};

/*
 * Makes room for need elements of elem bytes. arrp points to the caller's
 * array pointer (any element type; NULL when nothing is allocated yet), cap
 * to its capacity in elements. The capacity doubles from 8, never past max
 * elements (max > 0, RG_ASSERT). Returns 0 (nothing is done when need <=
 * *cap), or ARRAY_E_NOMEM / ARRAY_E_FULL with the array and *cap
 * unchanged. Elements past the caller's count are uninitialised.
 */
int array_grow(void *arrp, size_t *cap, size_t need, size_t elem, size_t max);

#endif
