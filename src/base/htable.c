/*
 * The hash table (include/htable.h): open addressing with linear probing
 * over slots that keep the full hash, so growth never calls the type's hash
 * again and most mismatches are decided without key_equal.
 *
 * Load: live entries plus tombstones stay at most half the slots, so every
 * probe ends at an empty slot. When an insert would pass that, the slots
 * are rebuilt, tombstones dropped, at a size where the live entries fill at
 * most a third: pure inserts double the table, delete/insert churn rebuilds
 * it rarely enough to stay amortised O(1).
 */
#include "htable.h"

#include <endian.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rgassert.h"

#define HTABLE_MIN_SLOTS 16
/* htable_reset keeps a slot array up to this size for the next use. */
#define HTABLE_KEEP_SLOTS 64

struct htable_slot {
	void *key; /* NULL: never used; TOMB: deleted */
	void *val;
	uint64_t hash;
};

static char tomb_mark;
#define TOMB ((void *)&tomb_mark)

/* ---- keyed hashing ------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                          \
	do {                                                              \
		v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32); \
		v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                    \
		v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                    \
		v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* SipHash-1-3 (Aumasson and Bernstein's reference with one compression and
 * three finalisation rounds, as Rust's and CPython's hash tables use). */
uint64_t htable_hash_bytes(const void *p, size_t n, const uint64_t seed[2])
{
	const unsigned char *in = p, *end = in + (n & ~(size_t)7);
	uint64_t v0 = 0x736f6d6570736575ULL ^ seed[0], v1 = 0x646f72616e646f6dULL ^ seed[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ seed[0], v3 = 0x7465646279746573ULL ^ seed[1];
	uint64_t last = (uint64_t)n << 56;

	for (; in < end; in += 8) {
		uint64_t m = load_le64(in);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < (n & 7); i++)
		last |= (uint64_t)in[i] << (8 * i);
	v3 ^= last;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t htable_hash_str(const void *key, const uint64_t seed[2])
{
	return htable_hash_bytes(key, strlen(key), seed);
}

static inline uint64_t mix_ptr(const void *key, uint64_t seed)
{
	uint64_t h = (uint64_t)(uintptr_t)key ^ seed;

	h ^= h >> 29;
	h *= 0x9E3779B97F4A7C15ULL;
	h ^= h >> 32;
	return h;
}

uint64_t htable_hash_ptr(const void *key, const uint64_t seed[2])
{
	return mix_ptr(key, seed[0]);
}

bool htable_equal_str(const void *a, const void *b)
{
	return strcmp(a, b) == 0;
}

const struct htable_type htable_type_str = { htable_hash_str, htable_equal_str, NULL, NULL };
const struct htable_type htable_type_ptr = { htable_hash_ptr, NULL, NULL, NULL };

static uint64_t process_seed[2];
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

/* Drawn once per process. Without entropy yet (early boot), the time, the
 * pid and an address (ASLR) still differ from run to run. */
static void seed_init(void)
{
	struct timespec ts;

	if (getrandom(process_seed, sizeof(process_seed), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(process_seed))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	process_seed[0] = ((uint64_t)ts.tv_sec << 32 ^ (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ULL;
	process_seed[1] = ((uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&ts) *
		0xC2B2AE3D27D4EB4FULL;
}

void htable_process_seed(uint64_t seed[2])
{
	pthread_once(&seed_once, seed_init);
	seed[0] = process_seed[0];
	seed[1] = process_seed[1];
}

/* ---- slots ---------------------------------------------------------------- */

static uint64_t key_hash(const struct htable *t, const void *key)
{
	if (t->type->hash)
		return t->type->hash(key, t->seed);
	return mix_ptr(key, t->seed[0]);
}

static bool key_matches(const struct htable *t, const struct htable_slot *s, const void *key,
			uint64_t h)
{
	if (s->key == key)
		return true;
	return s->hash == h && t->type->key_equal && t->type->key_equal(key, s->key);
}

/* The slot holding key, or (not found) where to insert it: the first
 * tombstone on its probe path, else the empty slot that ended it. */
static inline struct htable_slot *probe(const struct htable *t, const void *key, uint64_t h,
					bool *found)
{
	size_t mask = t->cap - 1, i = (size_t)h & mask;
	struct htable_slot *free_slot = NULL;

	for (;; i = (i + 1) & mask) {
		struct htable_slot *s = &t->slots[i];
		if (!s->key) {
			*found = false;
			return free_slot ? free_slot : s;
		}
		if (s->key == TOMB) {
			if (!free_slot)
				free_slot = s;
		} else if (key_matches(t, s, key, h)) {
			*found = true;
			return s;
		}
	}
}

/* Rebuilds the slots at ncap (a power of two that holds every live entry at
 * most half full), dropping tombstones. */
static int rebuild(struct htable *t, size_t ncap)
{
	struct htable_slot *ns;

	RG_ASSERT(ncap && (ncap & (ncap - 1)) == 0 && t->n * 2 <= ncap);
	ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return HTABLE_E_NOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		const struct htable_slot *s = &t->slots[i];
		size_t j;
		if (!s->key || s->key == TOMB)
			continue;
		for (j = (size_t)s->hash & (ncap - 1); ns[j].key; j = (j + 1) & (ncap - 1))
			;
		ns[j] = *s;
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	t->tombs = 0;
	t->moves++;
	return 0;
}

/* Slots for n live entries filling at most 1/fill of them. */
static int slots_for(size_t n, size_t fill, size_t *out)
{
	size_t c = HTABLE_MIN_SLOTS;

	if (n > SIZE_MAX / sizeof(struct htable_slot) / 4 / fill)
		return HTABLE_E_NOMEM;
	while (c < n * fill)
		c *= 2;
	*out = c;
	return 0;
}

/* Room for one more entry, keeping live + tombstones at most half. */
static int make_room(struct htable *t)
{
	size_t ncap;

	if ((t->n + t->tombs + 1) * 2 <= t->cap)
		return 0;
	if (slots_for(t->n + 1, 3, &ncap) < 0)
		return HTABLE_E_NOMEM;
	return rebuild(t, ncap);
}

/* Destructors never see NULL. */
static void release(const struct htable *t, void *key, void *val)
{
	if (key && t->type->key_free)
		t->type->key_free(key);
	if (val && t->type->val_free)
		t->type->val_free(val);
}

/* ---- the interface -------------------------------------------------------- */

void htable_init(struct htable *t, const struct htable_type *type, size_t max)
{
	RG_ASSERT(t && type && max > 0);
	pthread_once(&seed_once, seed_init);
	*t = (struct htable){ .type = type, .max = max };
	t->seed[0] = process_seed[0];
	t->seed[1] = process_seed[1];
}

void htable_set_seed(struct htable *t, uint64_t k0, uint64_t k1)
{
	RG_ASSERT(t->n == 0 && t->tombs == 0);
	t->seed[0] = k0;
	t->seed[1] = k1;
}

int htable_reserve(struct htable *t, size_t n)
{
	size_t ncap;

	RG_ASSERT(t->type);
	if (n > t->max)
		return HTABLE_E_FULL;
	if (slots_for(n, 2, &ncap) < 0)
		return HTABLE_E_NOMEM;
	if (ncap <= t->cap)
		return 0;
	return rebuild(t, ncap);
}

/* Puts a new entry where probe said, making room first if needed. */
static int insert_new(struct htable *t, struct htable_slot *s, void *key, void *val, uint64_t h)
{
	bool found;

	if (t->n >= t->max)
		return HTABLE_E_FULL;
	if ((t->n + t->tombs + 1) * 2 > t->cap) {
		if (make_room(t) < 0)
			return HTABLE_E_NOMEM;
		s = probe(t, key, h, &found);
	}
	if (s->key == TOMB)
		t->tombs--;
	*s = (struct htable_slot){ key, val, h };
	t->n++;
	return 0;
}

/* The slot of key for an insert: its entry (*found), or where it goes
 * (NULL while the table has no slots); *h gets its hash. */
static struct htable_slot *locate(struct htable *t, const void *key, uint64_t *h, bool *found)
{
	RG_ASSERT(t->type);
	RG_ASSERT(key && key != TOMB);
	*h = key_hash(t, key);
	*found = false;
	return t->cap ? probe(t, key, *h, found) : NULL;
}

int htable_set(struct htable *t, void *key, void *val)
{
	uint64_t h;
	bool found;
	struct htable_slot *s = locate(t, key, &h, &found);
	void *okey, *oval;

	if (!found)
		return insert_new(t, s, key, val, h);
	okey = s->key;
	oval = s->val;
	s->key = key;
	s->val = val;
	release(t, okey != key ? okey : NULL, oval != val ? oval : NULL);
	return 0;
}

int htable_add(struct htable *t, void *key, void *val, void **existing)
{
	uint64_t h;
	bool found;
	struct htable_slot *s = locate(t, key, &h, &found);

	if (!found)
		return insert_new(t, s, key, val, h);
	if (existing)
		*existing = s->val;
	return HTABLE_EXISTS;
}

bool htable_get(const struct htable *t, const void *key, void **val)
{
	const struct htable_slot *s;
	bool found;

	RG_ASSERT(t->type && key);
	if (!t->n)
		return false;
	s = probe(t, key, key_hash(t, key), &found);
	if (found && val)
		*val = s->val;
	return found;
}

void *htable_find(const struct htable *t, const void *key)
{
	void *val = NULL;

	return htable_get(t, key, &val) ? val : NULL;
}

/* Turns a live slot into a tombstone; the last entry out wipes them all. */
static void delete_slot(struct htable *t, struct htable_slot *s)
{
	void *key = s->key, *val = s->val;

	*s = (struct htable_slot){ TOMB, NULL, 0 };
	t->n--;
	t->tombs++;
	if (t->n == 0) {
		memset(t->slots, 0, t->cap * sizeof(*t->slots));
		t->tombs = 0;
	}
	release(t, key, val);
}

bool htable_delete(struct htable *t, const void *key)
{
	struct htable_slot *s;
	bool found;

	RG_ASSERT(t->type && key);
	if (!t->n)
		return false;
	s = probe(t, key, key_hash(t, key), &found);
	if (found)
		delete_slot(t, s);
	return found;
}

size_t htable_size(const struct htable *t)
{
	return t->n;
}

void htable_iter_init(const struct htable *t, struct htable_iter *it)
{
	it->i = 0;
	it->moves = t->moves;
}

bool htable_next(const struct htable *t, struct htable_iter *it, void **key, void **val)
{
	RG_ASSERT(it->moves == t->moves); /* no insert since htable_iter_init */
	while (it->i < t->cap) {
		const struct htable_slot *s = &t->slots[it->i++];
		if (!s->key || s->key == TOMB)
			continue;
		if (key)
			*key = s->key;
		if (val)
			*val = s->val;
		return true;
	}
	return false;
}

void htable_iter_delete(struct htable *t, struct htable_iter *it)
{
	struct htable_slot *s;

	RG_ASSERT(it->moves == t->moves && it->i > 0 && it->i <= t->cap);
	s = &t->slots[it->i - 1];
	RG_ASSERT(s->key && s->key != TOMB); /* once per entry */
	delete_slot(t, s);
}

/* Releases every live entry; the slots are left as they are. */
static void release_all(struct htable *t)
{
	if (!t->n || (!t->type->key_free && !t->type->val_free))
		return;
	for (size_t i = 0; i < t->cap; i++) {
		struct htable_slot *s = &t->slots[i];
		if (s->key && s->key != TOMB)
			release(t, s->key, s->val);
	}
}

void htable_reset(struct htable *t)
{
	RG_ASSERT(t->type);
	if (t->cap > HTABLE_KEEP_SLOTS) {
		htable_clear(t);
		return;
	}
	release_all(t);
	if (t->n || t->tombs)
		memset(t->slots, 0, t->cap * sizeof(*t->slots));
	t->n = t->tombs = 0;
}

void htable_clear(struct htable *t)
{
	if (!t || !t->type)
		return;
	release_all(t);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = t->tombs = 0;
	t->moves++;
}
