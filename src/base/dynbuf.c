/*
 * The capped dynamic buffer (include/dynbuf.h), after curl's
 * lib/curlx/dynbuf.c: a cap that must be given, a NUL always kept at the
 * end, and a clean failure past the cap. Unlike curl's, an error is sticky
 * and a sensitive buffer wipes every block it hands back to malloc.
 */
#include "dynbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rgassert.h"

#define DYNBUF_MAGIC 0x0d1b0f5eu
/* First allocation: small strings fit without a regrowth. */
#define DYNBUF_MIN_ALLOC 64

static void wipe(void *p, size_t n)
{
	if (p && n)
		explicit_bzero(p, n);
}

static void release(struct dynbuf *b)
{
	if (b->sensitive)
		wipe(b->p, b->alloc);
	free(b->p);
	b->p = NULL;
	b->len = b->alloc = 0;
}

/* Makes the error sticky and gives the memory back. */
static int fail(struct dynbuf *b, int err)
{
	release(b);
	b->err = err;
	return err;
}

void dynbuf_init(struct dynbuf *b, size_t max)
{
	RG_ASSERT(b);
	RG_ASSERT(max > 0 && max <= DYNBUF_MAX_CAP);
	*b = (struct dynbuf){ .max = max, .init = DYNBUF_MAGIC };
}

void dynbuf_set_sensitive(struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	RG_ASSERT(!b->p); /* a block freed before this was not wiped */
	b->sensitive = true;
}

/* Grows the allocation to hold need content bytes and the NUL: the first
 * allocation fits (at least DYNBUF_MIN_ALLOC), later ones double; never
 * past max + 1. need <= max. A sensitive buffer copies, so the old block
 * can be wiped before it is freed. */
static int grow(struct dynbuf *b, size_t need)
{
	size_t a = b->alloc;
	bool first = !b->p;
	char *np;

	RG_ASSERT(need <= b->max);
	if (!a)
		a = need + 1 > DYNBUF_MIN_ALLOC ? need + 1 : DYNBUF_MIN_ALLOC;
	while (a < need + 1)
		a *= 2; /* no overflow: a <= 2 * (DYNBUF_MAX_CAP + 1) */
	if (a > b->max + 1)
		a = b->max + 1;
	if (!b->sensitive) {
		np = realloc(b->p, a);
		if (!np)
			return fail(b, DYNBUF_E_NOMEM);
	} else {
		np = malloc(a);
		if (!np)
			return fail(b, DYNBUF_E_NOMEM);
		if (!first)
			memcpy(np, b->p, b->len + 1);
		wipe(b->p, b->alloc);
		free(b->p);
	}
	if (first)
		np[0] = '\0';
	b->p = np;
	b->alloc = a;
	return DYNBUF_OK;
}

int dynbuf_addn_slow(struct dynbuf *b, const void *mem, size_t n)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	RG_ASSERT(mem || !n);
	if (b->err || n == 0)
		return b->err;
	if (n > b->max - b->len)
		return fail(b, DYNBUF_E_TOOBIG);
	if (b->len + n + 1 > b->alloc && grow(b, b->len + n) < 0)
		return b->err;
	memcpy(b->p + b->len, mem, n);
	b->len += n;
	b->p[b->len] = '\0';
	return DYNBUF_OK;
}

int dynbuf_add(struct dynbuf *b, const char *s)
{
	RG_ASSERT(s);
	return dynbuf_addn(b, s, strlen(s));
}

char *dynbuf_room(struct dynbuf *b, size_t n, size_t *avail)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	if (b->err)
		return NULL;
	if (n > b->max - b->len) {
		fail(b, DYNBUF_E_TOOBIG);
		return NULL;
	}
	if (b->len + n + 1 > b->alloc && grow(b, b->len + n) < 0)
		return NULL;
	*avail = b->alloc - b->len - 1; /* alloc <= max + 1: within the cap */
	return b->p + b->len;
}

void dynbuf_commit(struct dynbuf *b, size_t k)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	if (k == 0)
		return;
	RG_ASSERT(!b->err && b->len + k < b->alloc);
	b->len += k;
	b->p[b->len] = '\0';
}

/* Formats straight into the free room; when the output does not fit, grows
 * to its exact size (if under the cap) and formats again. */
int dynbuf_vaddf(struct dynbuf *b, const char *fmt, va_list ap)
{
	size_t room;
	va_list aq;
	int n;

	RG_ASSERT(b->init == DYNBUF_MAGIC);
	if (b->err)
		return b->err;
	room = b->alloc - b->len; /* includes the NUL's byte; 0 before the first growth */
	va_copy(aq, ap);
	n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, aq);
	va_end(aq);
	/* vsnprintf fails only for output past INT_MAX or a bad wide string. */
	if (n < 0 || (size_t)n > b->max - b->len)
		return fail(b, DYNBUF_E_TOOBIG);
	if ((size_t)n >= room) {
		if (grow(b, b->len + (size_t)n) < 0)
			return b->err;
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	}
	b->len += (size_t)n;
	return DYNBUF_OK;
}

int dynbuf_addf(struct dynbuf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dynbuf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void dynbuf_consume(struct dynbuf *b, size_t n)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	RG_ASSERT(n <= b->len);
	if (n == 0)
		return;
	memmove(b->p, b->p + n, b->len - n);
	if (b->sensitive)
		wipe(b->p + b->len - n, n);
	b->len -= n;
	b->p[b->len] = '\0';
}

void dynbuf_reset(struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	if (b->p) {
		if (b->sensitive)
			wipe(b->p, b->len);
		b->p[0] = '\0';
	}
	b->len = 0;
	b->err = DYNBUF_OK;
}

const char *dynbuf_ptr(const struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	return b->p ? b->p : "";
}

char *dynbuf_data(struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	return b->p;
}

size_t dynbuf_len(const struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	return b->len;
}

int dynbuf_error(const struct dynbuf *b)
{
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	return b->err;
}

char *dynbuf_take(struct dynbuf *b, size_t *len)
{
	char *p;

	RG_ASSERT(b->init == DYNBUF_MAGIC);
	if (b->err)
		return NULL;
	p = b->p ? b->p : calloc(1, 1);
	if (!p)
		return NULL;
	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->alloc = 0;
	return p;
}

void dynbuf_clear(struct dynbuf *b)
{
	if (!b)
		return;
	RG_ASSERT(b->init == DYNBUF_MAGIC);
	release(b);
	b->err = DYNBUF_OK;
}
