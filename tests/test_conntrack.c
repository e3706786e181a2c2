/* The connection table: read deadlines, eviction order, refusal. Times are
 * given explicitly, so nothing here depends on the clock. */
#include "testutil.h"

#include "conntrack.h"

/* Records the descriptors the table asks to close. */
struct closed {
	int fds[16];
	int n;
};

static void record(int fd, void *arg)
{
	struct closed *c = arg;

	if (c->n < 16)
		c->fds[c->n++] = fd;
}

static struct conntrack *table(unsigned max_open)
{
	struct conntrack_limits lim = { max_open, 4, 5000, 60000 };
	struct conntrack *ct = conntrack_new(&lim);

	assert_non_null(ct);
	return ct;
}

static void test_admits_below_the_limit(void **state)
{
	struct conntrack *ct = table(2);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *a, *b;

	(void)state;
	assert_int_equal(conntrack_admit(ct, 0, record, &cl), CT_ADMIT);
	a = conntrack_add(ct, 10, 0);
	assert_int_equal(conntrack_admit(ct, 1, record, &cl), CT_ADMIT);
	b = conntrack_add(ct, 11, 1);
	assert_int_equal(conntrack_open(ct), 2);
	assert_int_equal(cl.n, 0);
	conntrack_remove(ct, a);
	conntrack_remove(ct, b);
	assert_int_equal(conntrack_open(ct), 0);
	conntrack_free(ct);
}

/* At the limit, the connection that has waited longest for its request
 * makes room; a busy one never does. */
static void test_evicts_the_oldest_reading(void **state)
{
	struct conntrack *ct = table(3);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *busy = conntrack_add(ct, 10, 0);
	struct conntrack_conn *older = conntrack_add(ct, 11, 100);
	struct conntrack_conn *newer = conntrack_add(ct, 12, 200);

	(void)state;
	conntrack_busy(busy);
	assert_int_equal(conntrack_admit(ct, 300, record, &cl), CT_EVICTED_READING);
	assert_int_equal(cl.n, 1);
	assert_int_equal(cl.fds[0], 11);
	/* The closing one no longer counts; once the newcomer is in, the
	 * next one evicts the next oldest. */
	struct conntrack_conn *newcomer = conntrack_add(ct, 13, 300);
	assert_int_equal(conntrack_admit(ct, 301, record, &cl), CT_EVICTED_READING);
	assert_int_equal(cl.fds[1], 12);
	conntrack_remove(ct, newcomer);
	conntrack_remove(ct, older);
	conntrack_remove(ct, newer);
	conntrack_remove(ct, busy);
	conntrack_free(ct);
}

/* Idle kept-alive connections go only when none is still reading; with
 * every connection busy, the newcomer is refused. */
static void test_idle_then_refusal(void **state)
{
	struct conntrack *ct = table(2);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *a = conntrack_add(ct, 10, 0);
	struct conntrack_conn *b = conntrack_add(ct, 11, 0);

	(void)state;
	conntrack_busy(a);
	conntrack_busy(b);
	conntrack_idle(b, 50);
	conntrack_idle(a, 40);
	assert_int_equal(conntrack_admit(ct, 60, record, &cl), CT_EVICTED_IDLE);
	assert_int_equal(cl.fds[0], 10); /* idle since 40, before b */
	/* A closed connection stays closing, whatever its thread reports. */
	conntrack_request_line(a, 70);
	conntrack_busy(a);
	conntrack_remove(ct, a);
	conntrack_busy(b);
	assert_int_equal(conntrack_admit(ct, 80, record, &cl), CT_ADMIT);
	struct conntrack_conn *c = conntrack_add(ct, 12, 80);
	conntrack_busy(c);
	assert_int_equal(conntrack_admit(ct, 90, record, &cl), CT_REFUSED);
	assert_int_equal(cl.n, 1);
	conntrack_remove(ct, b);
	conntrack_remove(ct, c);
	conntrack_free(ct);
}

/* Evictions waiting for their sockets to close are capped: past the cap,
 * newcomers are refused instead of closing more. */
static void test_closing_cap(void **state)
{
	struct conntrack_limits lim = { 1, 2, 5000, 60000 };
	struct conntrack *ct = conntrack_new(&lim);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *c[3];

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_not_equal(conntrack_admit(ct, i, record, &cl), CT_REFUSED);
		c[i] = conntrack_add(ct, 20 + i, i);
	}
	assert_int_equal(cl.n, 2);
	assert_int_equal(conntrack_admit(ct, 5, record, &cl), CT_REFUSED);
	for (int i = 0; i < 3; i++)
		conntrack_remove(ct, c[i]);
	conntrack_free(ct);
}

/* The deadline counts from the accept for the first request, is not reset
 * by the request line, and counts from the request line after an idle
 * wait; busy connections have none. */
static void test_read_deadline(void **state)
{
	struct conntrack *ct = table(100);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *first = conntrack_add(ct, 10, 0);
	struct conntrack_conn *kept = conntrack_add(ct, 11, 0);
	struct conntrack_conn *busy = conntrack_add(ct, 12, 0);

	(void)state;
	conntrack_request_line(first, 4000);
	conntrack_busy(kept);
	conntrack_idle(kept, 1000);
	conntrack_request_line(kept, 3000);
	conntrack_busy(busy);
	assert_int_equal(conntrack_expire(ct, 4999, record, &cl), 0);
	assert_int_equal(conntrack_expire(ct, 5000, record, &cl), 1);
	assert_int_equal(cl.fds[0], 10);
	assert_int_equal(conntrack_expire(ct, 7999, record, &cl), 0);
	assert_int_equal(conntrack_expire(ct, 8000, record, &cl), 1);
	assert_int_equal(cl.fds[1], 11);
	assert_int_equal(conntrack_expire(ct, 1000000, record, &cl), 0);
	conntrack_remove(ct, first);
	conntrack_remove(ct, kept);
	conntrack_remove(ct, busy);
	conntrack_free(ct);
}

/* An idle connection that keeps trickling bytes (so libmicrohttpd's idle
 * timer never fires) without completing a request line is closed after
 * the idle timeout plus the read timeout. */
static void test_idle_trickle(void **state)
{
	struct conntrack *ct = table(100);
	struct closed cl = { .n = 0 };
	struct conntrack_conn *c = conntrack_add(ct, 10, 0);

	(void)state;
	conntrack_busy(c);
	conntrack_idle(c, 1000);
	assert_int_equal(conntrack_expire(ct, 65999, record, &cl), 0);
	assert_int_equal(conntrack_expire(ct, 66000, record, &cl), 1);
	/* Closed once only. */
	assert_int_equal(conntrack_expire(ct, 99999, record, &cl), 0);
	conntrack_remove(ct, c);
	conntrack_free(ct);
}

static void test_null_safe(void **state)
{
	(void)state;
	conntrack_request_line(NULL, 0);
	conntrack_busy(NULL);
	conntrack_idle(NULL, 0);
	conntrack_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admits_below_the_limit),
		cmocka_unit_test(test_evicts_the_oldest_reading),
		cmocka_unit_test(test_idle_then_refusal),
		cmocka_unit_test(test_closing_cap),
		cmocka_unit_test(test_read_deadline),
		cmocka_unit_test(test_idle_trickle),
		cmocka_unit_test(test_null_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
