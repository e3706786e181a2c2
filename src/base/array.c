/*
 * Array growth (include/array.h): geometric, capped, with the byte size
 * checked for overflow, so no caller multiplies counts by sizes itself.
 */
#include "array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rgassert.h"

#define ARRAY_MIN_CAP 8

int array_grow(void *arrp, size_t *cap, size_t need, size_t elem, size_t max)
{
	size_t ncap = *cap ? *cap : ARRAY_MIN_CAP;
	void *old, *p;

	RG_ASSERT(arrp && elem > 0 && max > 0);
	if (need <= *cap)
		return 0;
	if (need > max || need > SIZE_MAX / elem)
		return ARRAY_E_FULL;
	while (ncap < need)
		ncap = ncap > max / 2 ? max : ncap * 2;
	if (ncap > max)
		ncap = max;
	if (ncap > SIZE_MAX / elem)
		ncap = SIZE_MAX / elem; /* still >= need */
	/* The caller's pointer has its own type; all object pointers share
	 * one representation on the platforms we build for (POSIX). */
	memcpy(&old, arrp, sizeof(old));
	p = realloc(old, ncap * elem);
	if (!p)
		return ARRAY_E_NOMEM;
	memcpy(arrp, &p, sizeof(p));
	*cap = ncap;
	return 0;
}
