/* Tests for htable: insert, find, replace, delete, iteration that deletes,
 * growth to 100,000 entries, the entry cap, allocation failures, the keyed
 * hash (SipHash-1-3 reference vectors, different seeds), and destructors
 * called exactly once per key and value. Keys and values are allocated
 * through cmocka (tests/allocwrap.h), so a destructor run twice or never
 * fails the test. */
#include "allocwrap.h"

#include "htable.h"

static unsigned keys_freed, vals_freed;

static void count_free_key(void *k)
{
	keys_freed++;
	free(k);
}

static void count_free_val(void *v)
{
	vals_freed++;
	free(v);
}

static bool str_eq(const void *a, const void *b)
{
	return strcmp(a, b) == 0;
}

/* Owned string keys and owned int values. */
static const struct htable_type owned = { htable_hash_str, str_eq, count_free_key, count_free_val };

static char *key_n(const char *prefix, int i)
{
	char tmp[64];
	char *k;

	snprintf(tmp, sizeof(tmp), "%s%d", prefix, i);
	k = malloc(strlen(tmp) + 1); /* test_malloc: strdup would bypass it */
	assert_non_null(k);
	memcpy(k, tmp, strlen(tmp) + 1);
	return k;
}

static int *val_n(int i)
{
	int *v = malloc(sizeof(*v));

	assert_non_null(v);
	*v = i;
	return v;
}

static int setup(void **state)
{
	aw_reset();
	keys_freed = vals_freed = 0;
	return 0;
}

static void test_basic(void **state)
{
	struct htable t;
	void *v = NULL;

	htable_init(&t, &owned, 100);
	assert_int_equal(htable_size(&t), 0);
	assert_null(htable_find(&t, "a"));
	assert_false(htable_delete(&t, "a"));
	assert_int_equal(htable_set(&t, key_n("k", 1), val_n(1)), 0);
	assert_int_equal(htable_set(&t, key_n("k", 2), val_n(2)), 0);
	assert_int_equal(htable_size(&t), 2);
	assert_int_equal(*(int *)htable_find(&t, "k1"), 1);
	assert_true(htable_get(&t, "k2", &v));
	assert_int_equal(*(int *)v, 2);
	assert_true(htable_get(&t, "k2", NULL));
	assert_false(htable_get(&t, "k3", &v));
	assert_true(htable_delete(&t, "k1"));
	assert_int_equal(keys_freed, 1);
	assert_int_equal(vals_freed, 1);
	assert_null(htable_find(&t, "k1"));
	assert_false(htable_delete(&t, "k1"));
	assert_int_equal(htable_size(&t), 1);
	htable_clear(&t);
	assert_int_equal(keys_freed, 2);
	assert_int_equal(vals_freed, 2);
	assert_int_equal(htable_size(&t), 0);
	/* Still usable after clear. */
	assert_int_equal(htable_set(&t, key_n("k", 3), val_n(3)), 0);
	assert_int_equal(*(int *)htable_find(&t, "k3"), 3);
	htable_clear(&t);
	htable_clear(&t);
	htable_clear(NULL);
}

/* Replacing releases the old key and value once, keeps the new ones, and
 * releases nothing when the very same pointers come back. */
static void test_replace(void **state)
{
	struct htable t;
	struct htable_iter it;
	char *k1 = key_n("same", 0), *k2 = key_n("same", 0), *stored = NULL;
	int *v2 = val_n(2);
	void *k;

	htable_init(&t, &owned, 10);
	assert_int_equal(htable_set(&t, k1, val_n(1)), 0);
	assert_int_equal(htable_set(&t, k2, v2), 0);
	assert_int_equal(keys_freed, 1);
	assert_int_equal(vals_freed, 1);
	assert_int_equal(htable_size(&t), 1);
	assert_int_equal(*(int *)htable_find(&t, "same0"), 2);
	htable_iter_init(&t, &it);
	assert_true(htable_next(&t, &it, &k, NULL));
	stored = k;
	assert_ptr_equal(stored, k2);
	assert_int_equal(htable_set(&t, k2, v2), 0);
	assert_int_equal(keys_freed, 1);
	assert_int_equal(vals_freed, 1);
	htable_clear(&t);
	assert_int_equal(keys_freed, 2);
	assert_int_equal(vals_freed, 2);
}

/* htable_add inserts once and then reports the stored value, leaving the
 * table and the caller's key and value alone. */
static void test_add(void **state)
{
	struct htable t;
	char *k = key_n("a", 1);
	int *v = val_n(1), *v2 = val_n(2);
	void *existing = NULL;

	htable_init(&t, &owned, 2);
	assert_int_equal(htable_add(&t, k, v, &existing), 0);
	assert_null(existing);
	k = key_n("a", 1);
	assert_int_equal(htable_add(&t, k, v2, &existing), HTABLE_EXISTS);
	assert_ptr_equal(existing, v);
	assert_int_equal(htable_add(&t, k, v2, NULL), HTABLE_EXISTS);
	assert_int_equal(keys_freed + vals_freed, 0);
	assert_int_equal(*(int *)htable_find(&t, "a1"), 1);
	free(k);
	assert_int_equal(htable_add(&t, key_n("b", 1), v2, NULL), 0);
	k = key_n("c", 1);
	v = val_n(3);
	assert_int_equal(htable_add(&t, k, v, NULL), HTABLE_E_FULL);
	free(k);
	free(v);
	htable_clear(&t);
	assert_int_equal(keys_freed, 2);
	assert_int_equal(vals_freed, 2);
}

/* 100,000 entries: all found, growth keeps the load at most half, every
 * key and value freed exactly once by clear. */
static void test_growth_100k(void **state)
{
	enum { N = 100000 };
	struct htable t;

	htable_init(&t, &owned, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(htable_set(&t, key_n("key-", i), val_n(i)), 0);
	assert_int_equal(htable_size(&t), N);
	assert_true(t.cap >= 2 * (size_t)N && t.cap <= 8 * (size_t)N);
	for (int i = 0; i < N; i += 7) {
		char k[32];
		snprintf(k, sizeof(k), "key-%d", i);
		assert_int_equal(*(int *)htable_find(&t, k), i);
	}
	assert_null(htable_find(&t, "key-100000"));
	for (int i = 0; i < N; i += 2) {
		char k[32];
		snprintf(k, sizeof(k), "key-%d", i);
		assert_true(htable_delete(&t, k));
	}
	assert_int_equal(htable_size(&t), N / 2);
	assert_int_equal(*(int *)htable_find(&t, "key-99999"), 99999);
	assert_null(htable_find(&t, "key-99998"));
	htable_clear(&t);
	assert_int_equal(keys_freed, N);
	assert_int_equal(vals_freed, N);
}

/* Iterating visits every entry once and may delete the current entry, or
 * another one, on the way. */
static void test_iterate_delete(void **state)
{
	enum { N = 1000 };
	struct htable t;
	struct htable_iter it;
	unsigned char seen[N] = { 0 };
	void *k, *v;

	htable_init(&t, &owned, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(htable_set(&t, key_n("it", i), val_n(i)), 0);
	htable_iter_init(&t, &it);
	while (htable_next(&t, &it, &k, &v)) {
		int i = *(int *)v;
		assert_int_equal(strncmp(k, "it", 2), 0);
		assert_int_equal(seen[i]++, 0);
		if (i % 2 == 0)
			htable_iter_delete(&t, &it);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(htable_size(&t), N / 2);
	assert_int_equal(keys_freed, N / 2);
	assert_int_equal(vals_freed, N / 2);

	/* Now odd entries only: each 1 mod 4 deletes its 3 mod 4 neighbour,
	 * which is then visited at most once (before it goes) or never. */
	memset(seen, 0, sizeof(seen));
	htable_iter_init(&t, &it);
	while (htable_next(&t, &it, NULL, &v)) {
		int i = *(int *)v;
		assert_int_equal(seen[i]++, 0);
		if (i % 4 == 1) {
			char other[16];
			snprintf(other, sizeof(other), "it%d", i + 2);
			assert_true(htable_delete(&t, other));
		}
	}
	for (int i = 1; i < N; i += 4)
		assert_int_equal(seen[i], 1);
	assert_int_equal(htable_size(&t), N / 4);
	assert_int_equal(vals_freed, N - N / 4);

	/* Deleting everything through the iterator empties the table. */
	htable_iter_init(&t, &it);
	while (htable_next(&t, &it, NULL, NULL))
		htable_iter_delete(&t, &it);
	assert_int_equal(htable_size(&t), 0);
	assert_int_equal(keys_freed, N);
	assert_int_equal(vals_freed, N);
	htable_clear(&t);
}

/* The cap: a new key past max is refused and stays the caller's; replacing
 * at the cap works. */
static void test_cap(void **state)
{
	struct htable t;
	char *k;
	int *v;

	htable_init(&t, &owned, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(htable_set(&t, key_n("c", i), val_n(i)), 0);
	k = key_n("c", 3);
	v = val_n(3);
	assert_int_equal(htable_set(&t, k, v), HTABLE_E_FULL);
	assert_int_equal(htable_size(&t), 3);
	assert_int_equal(keys_freed + vals_freed, 0);
	free(k);
	free(v);
	assert_int_equal(htable_set(&t, key_n("c", 1), val_n(10)), 0);
	assert_int_equal(*(int *)htable_find(&t, "c1"), 10);
	assert_int_equal(htable_reserve(&t, 4), HTABLE_E_FULL);
	htable_clear(&t);
	assert_int_equal(keys_freed, 4);
}

/* A failed allocation leaves the table as it was and the caller owning
 * what it tried to insert. */
static void test_out_of_memory(void **state)
{
	struct htable t;
	char *k = key_n("m", 0);
	int *v = val_n(0);

	htable_init(&t, &owned, 1000);
	aw_fail_next(1);
	assert_int_equal(htable_set(&t, k, v), HTABLE_E_NOMEM);
	assert_int_equal(htable_size(&t), 0);
	assert_int_equal(htable_set(&t, k, v), 0);
	/* Fill to the growth point, then fail the growth. */
	for (int i = 1; i < 8; i++)
		assert_int_equal(htable_set(&t, key_n("m", i), val_n(i)), 0);
	k = key_n("m", 8);
	v = val_n(8);
	aw_fail_next(1);
	assert_int_equal(htable_set(&t, k, v), HTABLE_E_NOMEM);
	assert_int_equal(htable_size(&t), 8);
	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "m%d", i);
		assert_int_equal(*(int *)htable_find(&t, name), i);
	}
	assert_int_equal(htable_set(&t, k, v), 0);
	aw_fail_next(1);
	assert_int_equal(htable_reserve(&t, 500), HTABLE_E_NOMEM);
	assert_int_equal(htable_size(&t), 9);
	htable_clear(&t);
	assert_int_equal(keys_freed, 9);
	assert_int_equal(vals_freed, 9);
}

/* reserve sizes once; a small emptied table reuses its slots. */
static void test_reserve_and_empty(void **state)
{
	struct htable t;
	unsigned before;

	htable_init(&t, &htable_type_str, 5000);
	assert_int_equal(htable_reserve(&t, 2000), 0);
	before = aw.allocs;
	for (int i = 0; i < 2000; i++) {
		static char names[2000][16];
		snprintf(names[i], sizeof(names[i]), "r%d", i);
		assert_int_equal(htable_set(&t, names[i], NULL), 0);
	}
	assert_int_equal(aw.allocs, before);
	assert_true(htable_get(&t, "r1999", NULL));
	htable_reset(&t); /* large: freed */
	assert_int_equal(htable_size(&t), 0);
	assert_false(htable_get(&t, "r1", NULL));
	assert_int_equal(htable_set(&t, "x", "1"), 0);
	assert_int_equal(htable_set(&t, "y", "2"), 0);
	before = aw.allocs;
	htable_reset(&t); /* small: kept */
	assert_int_equal(htable_set(&t, "z", "3"), 0);
	assert_int_equal(aw.allocs, before);
	assert_string_equal(htable_find(&t, "z"), "3");
	assert_null(htable_find(&t, "x"));
	htable_clear(&t);
}

/* Delete/insert churn reuses tombstones: the table does not grow without
 * bound and lookups stay right. */
static void test_churn(void **state)
{
	struct htable t;
	static char names[64][16];

	htable_init(&t, &htable_type_str, 1000);
	for (int i = 0; i < 64; i++) {
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		assert_int_equal(htable_set(&t, names[i], names[i]), 0);
	}
	for (int round = 0; round < 20000; round++) {
		int i = round % 64;
		assert_true(htable_delete(&t, names[i]));
		assert_null(htable_find(&t, names[i]));
		assert_int_equal(htable_set(&t, names[i], names[i]), 0);
	}
	assert_int_equal(htable_size(&t), 64);
	assert_true(t.cap <= 512);
	for (int i = 0; i < 64; i++)
		assert_ptr_equal(htable_find(&t, names[i]), names[i]);
	htable_clear(&t);
}

/* Pointer identity: equal strings at different addresses are different keys. */
static void test_pointer_keys(void **state)
{
	struct htable t;
	char a[] = "same", b[] = "same";

	htable_init(&t, &htable_type_ptr, 10);
	assert_int_equal(htable_set(&t, a, "A"), 0);
	assert_int_equal(htable_set(&t, b, "B"), 0);
	assert_int_equal(htable_size(&t), 2);
	assert_string_equal(htable_find(&t, a), "A");
	assert_string_equal(htable_find(&t, b), "B");
	htable_clear(&t);
}

/* SipHash-1-3 of the bytes 00 01 02 ... under the key 00 01 ... 0f: the
 * reference implementation (github.com/veorq/SipHash) run with one
 * compression and three finalisation rounds. */
static void test_siphash_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t want;
	} vec[] = {
		{ 0, 0xabac0158050fc4dcULL },  { 1, 0xc9f49bf37d57ca93ULL },
		{ 7, 0xd3927d989bb11140ULL },  { 8, 0x369095118d299a8eULL },
		{ 15, 0xd320d86d2a519956ULL }, { 16, 0xcc4fdd1a7d908b66ULL },
		{ 21, 0xb992abfe2b45f844ULL },
	};
	const uint64_t seed[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	unsigned char msg[64];

	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++)
		assert_true(htable_hash_bytes(msg, vec[i].len, seed) == vec[i].want);
}

static void order(struct htable *t, char out[][8], int n)
{
	struct htable_iter it;
	void *k;
	int i = 0;

	htable_iter_init(t, &it);
	while (htable_next(t, &it, &k, NULL) && i < n)
		snprintf(out[i++], 8, "%s", (char *)k);
}

/* The seed changes every hash and the layout; the same seed repeats it. */
static void test_seeds(void **state)
{
	const uint64_t s1[2] = { 1, 2 }, s2[2] = { 3, 4 };
	static char names[100][16];
	char o1[100][8] = { { 0 } }, o2[100][8] = { { 0 } }, o3[100][8] = { { 0 } };
	struct htable a, b, c;

	assert_true(htable_hash_str("metadata", s1) != htable_hash_str("metadata", s2));
	assert_true(htable_hash_str("metadata", s1) == htable_hash_str("metadata", s1));
	assert_true(htable_hash_str("metadata", s1) != htable_hash_str("metadatb", s1));
	htable_init(&a, &htable_type_str, 100);
	htable_init(&b, &htable_type_str, 100);
	htable_init(&c, &htable_type_str, 100);
	htable_set_seed(&a, 1, 2);
	htable_set_seed(&b, 3, 4);
	htable_set_seed(&c, 1, 2);
	for (int i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "s%d", i);
		assert_int_equal(htable_set(&a, names[i], NULL), 0);
		assert_int_equal(htable_set(&b, names[i], NULL), 0);
		assert_int_equal(htable_set(&c, names[i], NULL), 0);
	}
	order(&a, o1, 100);
	order(&b, o2, 100);
	order(&c, o3, 100);
	assert_memory_equal(o1, o3, sizeof(o1));
	assert_memory_not_equal(o1, o2, sizeof(o1));
	htable_clear(&a);
	htable_clear(&b);
	htable_clear(&c);
}

/* The process seed is the one every new table starts with: a table given
 * it explicitly lays its entries out as a default one does. */
static void test_process_seed(void **state)
{
	static char names[100][16];
	char o1[100][8] = { { 0 } }, o2[100][8] = { { 0 } };
	uint64_t s[2], again[2];
	struct htable a, b;

	htable_process_seed(s);
	htable_process_seed(again);
	assert_true(s[0] == again[0] && s[1] == again[1]);
	assert_true(s[0] != 0 || s[1] != 0);
	htable_init(&a, &htable_type_str, 100);
	htable_init(&b, &htable_type_str, 100);
	htable_set_seed(&b, s[0], s[1]);
	for (int i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "p%d", i);
		assert_int_equal(htable_set(&a, names[i], NULL), 0);
		assert_int_equal(htable_set(&b, names[i], NULL), 0);
	}
	order(&a, o1, 100);
	order(&b, o2, 100);
	assert_memory_equal(o1, o2, sizeof(o1));
	htable_clear(&a);
	htable_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_basic, setup),
		cmocka_unit_test_setup(test_replace, setup),
		cmocka_unit_test_setup(test_add, setup),
		cmocka_unit_test_setup(test_growth_100k, setup),
		cmocka_unit_test_setup(test_iterate_delete, setup),
		cmocka_unit_test_setup(test_cap, setup),
		cmocka_unit_test_setup(test_out_of_memory, setup),
		cmocka_unit_test_setup(test_reserve_and_empty, setup),
		cmocka_unit_test_setup(test_churn, setup),
		cmocka_unit_test_setup(test_pointer_keys, setup),
		cmocka_unit_test_setup(test_siphash_vectors, setup),
		cmocka_unit_test_setup(test_seeds, setup),
		cmocka_unit_test_setup(test_process_seed, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
