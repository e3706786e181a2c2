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
	struct timespec t = { 1, 999999999 };

	rgtime_add_ms(&t, 1);
	assert_int_equal(t.tv_sec, 2);
	assert_int_equal(t.tv_nsec, 999999);
	t = (struct timespec){ 2, 0 };
	rgtime_add_ms(&t, -1);
	assert_int_equal(t.tv_sec, 1);
	assert_int_equal(t.tv_nsec, 999000000);
	/* 10.5 s + 123456.789 s = 123467.289 s */
	t = (struct timespec){ 10, 500000000 };
	rgtime_add_ms(&t, 123456789);
	assert_int_equal(t.tv_sec, 123467);
	assert_int_equal(t.tv_nsec, 289000000);
	/* 5.2 s - 3.5 s = 1.7 s */
	t = (struct timespec){ 5, 200000000 };
	rgtime_add_ms(&t, -3500);
	assert_int_equal(t.tv_sec, 1);
	assert_int_equal(t.tv_nsec, 700000000);
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
		cmocka_unit_test(test_monotonic),
		cmocka_unit_test(test_elapsed),
		cmocka_unit_test(test_add_ms),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_wall_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
