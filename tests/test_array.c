/* Tests for array_grow: room on demand with contents kept, geometric
 * growth, the element cap, byte-size overflow and allocation failure
 * leaving the array as it was (allocations watched by tests/allocwrap.h). */
#include "allocwrap.h"

#include "array.h"

struct pair {
	int a;
	char b[16];
};

static int setup(void **state)
{
	aw_reset();
	return 0;
}

static void test_append(void **state)
{
	struct pair *v = NULL;
	size_t n = 0, cap = 0;

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(array_grow(&v, &cap, n + 1, sizeof(*v), 5000), 0);
		assert_true(cap >= n + 1);
		v[n].a = i;
		snprintf(v[n].b, sizeof(v[n].b), "p%d", i);
		n++;
	}
	for (int i = 0; i < 1000; i++) {
		char want[16];
		snprintf(want, sizeof(want), "p%d", i);
		assert_int_equal(v[i].a, i);
		assert_string_equal(v[i].b, want);
	}
	/* Doubling from 8: 8, 16, ..., 1024 is 8 allocations, not 1000. */
	assert_int_equal(cap, 1024);
	assert_true(aw.allocs <= 8);
	/* Enough room already: nothing happens. */
	aw.allocs = 0;
	assert_int_equal(array_grow(&v, &cap, 1024, sizeof(*v), 5000), 0);
	assert_int_equal(aw.allocs, 0);
	free(v);
}

/* The capacity never passes max, and need > max is refused. */
static void test_max(void **state)
{
	int *v = NULL;
	size_t cap = 0;

	assert_int_equal(array_grow(&v, &cap, 20, sizeof(*v), 100), 0);
	assert_int_equal(cap, 32);
	assert_int_equal(array_grow(&v, &cap, 70, sizeof(*v), 100), 0);
	assert_int_equal(cap, 100);
	v[99] = 7;
	assert_int_equal(array_grow(&v, &cap, 101, sizeof(*v), 100), ARRAY_E_FULL);
	assert_int_equal(cap, 100);
	assert_int_equal(v[99], 7);
	free(v);
}

/* A byte size past SIZE_MAX is refused before any allocation. */
static void test_overflow(void **state)
{
	char(*v)[1 << 20] = NULL;
	size_t cap = 0;

	assert_int_equal(array_grow(&v, &cap, SIZE_MAX / 1024, sizeof(*v), SIZE_MAX), ARRAY_E_FULL);
	assert_null(v);
	assert_int_equal(cap, 0);
	assert_int_equal(aw.allocs, 0);
}

static void test_out_of_memory(void **state)
{
	long *v = NULL;
	size_t cap = 0;

	aw_fail_next(1);
	assert_int_equal(array_grow(&v, &cap, 1, sizeof(*v), 64), ARRAY_E_NOMEM);
	assert_null(v);
	assert_int_equal(cap, 0);
	assert_int_equal(array_grow(&v, &cap, 8, sizeof(*v), 64), 0);
	v[7] = 42;
	aw_fail_next(1);
	assert_int_equal(array_grow(&v, &cap, 9, sizeof(*v), 64), ARRAY_E_NOMEM);
	assert_int_equal(cap, 8);
	assert_int_equal(v[7], 42);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_append, setup),
		cmocka_unit_test_setup(test_max, setup),
		cmocka_unit_test_setup(test_overflow, setup),
		cmocka_unit_test_setup(test_out_of_memory, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
