#ifndef ROLLGATE_HTABLE_H
#define ROLLGATE_HTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One hash table for the whole program (redis's dictType, curl's
 * Curl_hash): void * keys and values, their meaning given by a type.
 *
 * - Keyed hashing: keys may come from input, so string hashes are SipHash-
 *   1-3 under a 128-bit seed drawn once per process (getrandom); a crafted
 *   set of colliding keys cannot turn the table quadratic. Tests fix the
 *   seed with htable_set_seed.
 * - Open addressing, linear probing, at most half full; growth doubles
 *   (amortised O(1) insert). Deleting leaves a tombstone, so iteration may
 *   delete the entry it is on.
 * - Capped: a table holds at most max entries; one more is refused.
 * - Ownership: the table owns the keys and values it holds when the type
 *   has key_free / val_free, and calls them exactly once per entry (on
 *   delete, replace, htable_reset and htable_clear), never with NULL
 *   (values may be NULL). On a failed insert the caller keeps both.
 * - Threads: no locking. Any number of readers (find, get, size, iterate)
 *   may run at once while nobody writes; lookups never modify the table.
 *
 * A struct htable lives wherever its owner puts it; htable_clear releases
 * what it holds. The fields are private.
 */

struct htable_type {
	/* Hash of a key under the table's seed. NULL: the key pointer itself
	 * is hashed (a pointer map). */
	uint64_t (*hash)(const void *key, const uint64_t seed[2]);
	/* Whether two keys are equal (a: the key asked for, b: a stored one).
	 * NULL: pointer identity. Called only for keys of equal hash. */
	bool (*key_equal)(const void *a, const void *b);
	void (*key_free)(void *key); /* NULL: keys are borrowed */
	void (*val_free)(void *val); /* NULL: values are borrowed */
};

/* NUL-terminated string keys and pointer keys, borrowed, values borrowed. */
extern const struct htable_type htable_type_str;
extern const struct htable_type htable_type_ptr;

struct htable_slot;

struct htable {
	const struct htable_type *type;
	struct htable_slot *slots;
	size_t cap;   /* slots: a power of two, or 0 */
	size_t n;     /* entries */
	size_t tombs; /* deleted slots not yet reused */
	size_t max;   /* cap on n */
	uint64_t seed[2];
	unsigned long moves; /* bumped when the slot array is rebuilt or freed */
};

/* An iteration in progress: see htable_next. */
struct htable_iter {
	size_t i;
	unsigned long moves;
};

/* Return values of htable_set, htable_add and htable_reserve. */
enum {
	HTABLE_EXISTS = 1,   /* htable_add: the key is there already */
	HTABLE_E_NOMEM = -1, /* an allocation failed */
	HTABLE_E_FULL = -2,  /* the table holds max entries already */
};

/* Makes t an empty table of the given type (which must outlive it) holding
 * at most max entries (max > 0, RG_ASSERT), seeded with the process seed.
 * Allocates nothing until the first insert. */
void htable_init(struct htable *t, const struct htable_type *type, size_t max);

/* Replaces the seed of an empty table: tests use it for reproducible runs. */
void htable_set_seed(struct htable *t, uint64_t k0, uint64_t k1);

/* Sizes the table for n entries (n <= max) so they go in without growth.
 * Returns 0 or HTABLE_E_NOMEM / HTABLE_E_FULL (then nothing changed). */
int htable_reserve(struct htable *t, size_t n);

/*
 * Inserts key -> val, or replaces the entry of an equal key: the stored key
 * and value become the new ones, and the old ones are released through
 * key_free / val_free (unless they are the same pointers). key != NULL.
 * Returns 0, or HTABLE_E_FULL (a new key past max) / HTABLE_E_NOMEM; then
 * the table is unchanged and the caller keeps key and val.
 */
int htable_set(struct htable *t, void *key, void *val);

/* Inserts key -> val unless an equal key is stored. Returns 0 (inserted),
 * HTABLE_EXISTS (the table is unchanged, the caller keeps key and val, and
 * *existing, when not NULL, gets the stored value), or HTABLE_E_FULL /
 * HTABLE_E_NOMEM as htable_set. One lookup for find-or-insert callers. */
int htable_add(struct htable *t, void *key, void *val, void **existing);

/* Looks key up: true when present, with its value in *val (val may be
 * NULL). Never allocates or changes t. */
bool htable_get(const struct htable *t, const void *key, void **val);

/* The value of key, or NULL when absent (use htable_get when values may
 * be NULL). */
void *htable_find(const struct htable *t, const void *key);

/* Removes key, releasing its key and value. Returns whether it was there. */
bool htable_delete(struct htable *t, const void *key);

size_t htable_size(const struct htable *t);

/*
 * Iteration in slot order (not insertion order, and different for
 * different seeds):
 *
 *	struct htable_iter it;
 *	void *k, *v;
 *	htable_iter_init(t, &it);
 *	while (htable_next(t, &it, &k, &v))
 *		if (stale(v))
 *			htable_iter_delete(t, &it);
 *
 * While iterating, the current entry (htable_iter_delete) or any other
 * entry (htable_delete) may be deleted and values may be changed in place.
 * Inserting is not allowed: it may rebuild the slots, which htable_next
 * catches with RG_ASSERT. key and val may be NULL.
 */
void htable_iter_init(const struct htable *t, struct htable_iter *it);
bool htable_next(const struct htable *t, struct htable_iter *it, void **key, void **val);
void htable_iter_delete(struct htable *t, struct htable_iter *it);

/* Removes every entry (releasing keys and values); keeps a small slot
 * array for reuse and frees a large one. */
void htable_reset(struct htable *t);

/* Removes every entry and frees the slots; t stays initialised (type, max
 * and seed kept). Accepts NULL. */
void htable_clear(struct htable *t);

/* The seed every table of this process starts with (drawn once), for a
 * structure that links its own entries yet hashes keys that input chooses:
 * objcache's records, where slots would cost more memory than the records'
 * own links. */
void htable_process_seed(uint64_t seed[2]);

/* Hashes for a type's hash function: SipHash-1-3 of n bytes and of a
 * NUL-terminated string (without its NUL), keyed by seed; and a cheap mix
 * of a pointer value (addresses are not chosen by input). */
uint64_t htable_hash_bytes(const void *p, size_t n, const uint64_t seed[2]);
uint64_t htable_hash_str(const void *key, const uint64_t seed[2]);
uint64_t htable_hash_ptr(const void *key, const uint64_t seed[2]);

/* key_equal for NUL-terminated strings. */
bool htable_equal_str(const void *a, const void *b);

#endif
