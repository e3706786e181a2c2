/* Tests for rgtime: the monotonic clock never goes back, elapsed time and
 * deadlines agree with it, and timespec arithmetic carries. Only lower
 * bounds on elapsed time are asserted: a loaded machine may be slow, never
 * fast. */
#include "testutil.h"

#include "rgtime.h"

static void test_monotonic(void **state)
{
	long long prev = rgtime_now_ms(), now;
	struct timespec a, b;

	for (int i = 0; i < 100000; i++) {
		now = rgtime_now_ms();
		assert_true(now >= prev);
		prev = now;
	}
	rgtime_now(&a);
	rgtime_now(&b);
	assert_true(b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec));
	assert_true(a.tv_nsec >= 0 && a.tv_nsec < 1000000000L);
	/* The two readings are the same clock. */
	now = rgtime_now_ms();
	assert_true(now >= (long long)a.tv_sec * 1000 + a.tv_nsec / 1000000);
}

static void test_elapsed(void **state)
{
	struct timespec start, future, nap = { 0, 20 * 1000 * 1000 };

	rgtime_now(&start);
	assert_true(rgtime_elapsed_s(&start) >= 0.0);
	nanosleep(&nap, NULL);
	assert_true(rgtime_elapsed_s(&start) >= 0.02);
	rgtime_deadline(&future, 60000);
	assert_true(rgtime_elapsed_s(&future) == 0.0);
}

static void test_add_ms(void **state)
{
	static const struct {
		struct timespec from;
		long long ms;
		struct timespec want;
	} cases[] = {
		{ { 1, 999999999 }, 1, { 2, 999999 } },                  /* carry */
		{ { 2, 0 }, -1, { 1, 999000000 } },                      /* borrow */
		{ { 10, 500000000 }, 123456789, { 123467, 289000000 } }, /* 10.5 + 123456.789 s */
		{ { 5, 200000000 }, -3500, { 1, 700000000 } },           /* 5.2 - 3.5 s */
		{ { 7, 0 }, 0, { 7, 0 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timespec t = cases[i].from;
		rgtime_add_ms(&t, cases[i].ms);
		assert_int_equal(t.tv_sec, cases[i].want.tv_sec);
		assert_int_equal(t.tv_nsec, cases[i].want.tv_nsec);
	}
}

static void test_deadline(void **state)
{
	struct timespec d, nap = { 0, 5 * 1000 * 1000 };
	long long left;

	rgtime_deadline(&d, 10000);
	left = rgtime_remaining_ms(&d);
	assert_true(left > 0 && left <= 10000);
	rgtime_deadline(&d, -5);
	assert_int_equal(rgtime_remaining_ms(&d), 0);
	rgtime_deadline(&d, 1);
	nanosleep(&nap, NULL);
	assert_int_equal(rgtime_remaining_ms(&d), 0);
}

/* The absolute time for pthread_cond_timedwait is on the wall clock. */
static void test_wall_after(void **state)
{
	struct timespec w;
	time_t now = time(NULL);

	rgtime_wall_after(&w, 10000);
	assert_true(w.tv_sec >= now + 9 && w.tv_sec <= now + 60);
	assert_true(w.tv_nsec >= 0 && w.tv_nsec < 1000000000L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monotonic),  cmocka_unit_test(test_elapsed),
		cmocka_unit_test(test_add_ms),     cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_wall_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
