#ifndef ROLLGATE_DYNBUF_H
#define ROLLGATE_DYNBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * A growing byte buffer with a hard cap (curl's dynbuf). The contents are
 * always NUL-terminated; the cap counts content bytes, not the terminator,
 * and no allocation is ever larger than cap + 1 bytes.
 *
 * Errors are sticky: once an add fails, the buffer is released (wiped first
 * when sensitive) and every later add returns the same error until
 * dynbuf_reset or dynbuf_clear. Builder code can therefore add piece after
 * piece and check once, at the end.
 *
 * A sensitive buffer (tokens, Secret bodies) wipes every block it gives
 * back: the old block when it grows (it copies instead of realloc), dropped
 * bytes, and the whole allocation on reset, clear and failure.
 *
 * The fields are private: use the functions. A dynbuf lives wherever its
 * owner puts it (stack, struct member); dynbuf_clear releases its memory.
 */
struct dynbuf {
	char *p;
	size_t len;   /* content bytes, excluding the NUL */
	size_t alloc; /* bytes allocated at p */
	size_t max;   /* cap on len */
	int err;      /* 0 or a sticky DYNBUF_E_* */
	bool sensitive;
	unsigned init; /* catches use before dynbuf_init */
};

/* Return values of the adding functions. */
enum {
	DYNBUF_OK = 0,
	DYNBUF_E_NOMEM = -1,  /* an allocation failed */
	DYNBUF_E_TOOBIG = -2, /* the contents would pass the cap */
};

/* Largest cap a buffer may have. */
#define DYNBUF_MAX_CAP ((size_t)1 << 40)

/* Makes b an empty buffer holding at most max bytes. Cannot fail. max must
 * be set, 0 < max <= DYNBUF_MAX_CAP (RG_ASSERT). */
void dynbuf_init(struct dynbuf *b, size_t max);

/* Marks an empty, never-grown buffer sensitive (see above). */
void dynbuf_set_sensitive(struct dynbuf *b);

/* Append n bytes (mem may hold NULs), a C string, or printf-style output.
 * Return DYNBUF_OK, or DYNBUF_E_TOOBIG / DYNBUF_E_NOMEM (sticky, buffer
 * released). addf formats into the buffer itself: output that would pass
 * the cap fails as a whole, nothing of it is kept and nothing past the cap
 * is allocated. */
static inline int dynbuf_addn(struct dynbuf *b, const void *mem, size_t n);
int dynbuf_add(struct dynbuf *b, const char *s);
int dynbuf_addf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dynbuf_vaddf(struct dynbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* For reading straight into the buffer (read(2), fread): makes room for at
 * least n more bytes (growing as an add of n bytes would) and returns where
 * they go, with *avail set to the free room, n or more but never past the
 * cap; dynbuf_commit(b, k) then appends the k <= *avail bytes written
 * there. Returns NULL with the sticky error (DYNBUF_E_TOOBIG when n bytes
 * would pass the cap). */
char *dynbuf_room(struct dynbuf *b, size_t n, size_t *avail);
void dynbuf_commit(struct dynbuf *b, size_t k);

/* Drops the first n bytes (n <= length, RG_ASSERT), keeping the rest. */
void dynbuf_consume(struct dynbuf *b, size_t n);

/* Empties the contents and forgets a sticky error; keeps the allocation. */
void dynbuf_reset(struct dynbuf *b);

/* The contents, NUL-terminated; "" when empty. Borrowed: valid until the
 * next call that changes b. */
const char *dynbuf_ptr(const struct dynbuf *b);
size_t dynbuf_len(const struct dynbuf *b);

/* The contents for changing in place, bytes [0, length] (the NUL
 * included), e.g. to cut a line at its newline for a parser; NULL while
 * nothing is allocated. Borrowed as dynbuf_ptr. */
char *dynbuf_data(struct dynbuf *b);

/* DYNBUF_OK, or the sticky error of a failed add. */
int dynbuf_error(const struct dynbuf *b);

/* Hands the contents over: returns a malloc'd NUL-terminated string of
 * *len bytes (len may be NULL) that the caller frees (and, for a sensitive
 * buffer, wipes first), and leaves b empty and reusable. Returns NULL,
 * leaving b as it is, after a failed add or when allocating "" fails. */
char *dynbuf_take(struct dynbuf *b, size_t *len);

/* Releases the memory (wiped when sensitive); b stays initialised, empty,
 * with its cap and sensitivity, and without a sticky error. */
void dynbuf_clear(struct dynbuf *b);

/* The rest of dynbuf_addn, out of line: growth, the cap, errors. */
int dynbuf_addn_slow(struct dynbuf *b, const void *mem, size_t n);

/* Inline for the common case, bytes that fit the allocation: emitters add
 * many small pieces. alloc is 0 after a failure and never more than cap +
 * 1, so fitting means no sticky error and within the cap. */
static inline int dynbuf_addn(struct dynbuf *b, const void *mem, size_t n)
{
	if (n && n < b->alloc - b->len) {
		memcpy(b->p + b->len, mem, n);
		b->len += n;
		b->p[b->len] = '\0';
		return DYNBUF_OK;
	}
	return dynbuf_addn_slow(b, mem, n);
}

#endif
