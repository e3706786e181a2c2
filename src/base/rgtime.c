/*
 * Monotonic time (include/rgtime.h). clock_gettime cannot fail for these
 * clocks on Linux; its result is used unchecked, as everywhere else.
 */
#include "rgtime.h"

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

void rgtime_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

long long rgtime_now_ms(void)
{
	struct timespec t;

	rgtime_now(&t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / NS_PER_MS;
}

/* b - a in nanoseconds. */
static long long diff_ns(const struct timespec *a, const struct timespec *b)
{
	return ((long long)b->tv_sec - (long long)a->tv_sec) * NS_PER_S +
		((long long)b->tv_nsec - (long long)a->tv_nsec);
}

double rgtime_elapsed_s(const struct timespec *since)
{
	struct timespec now;
	long long ns;

	rgtime_now(&now);
	ns = diff_ns(since, &now);
	return ns > 0 ? (double)ns / 1e9 : 0.0;
}

void rgtime_add_ms(struct timespec *ts, long long ms)
{
	long long ns = (long long)ts->tv_nsec + (ms % 1000) * NS_PER_MS;

	ts->tv_sec += (time_t)(ms / 1000);
	if (ns >= NS_PER_S) {
		ns -= NS_PER_S;
		ts->tv_sec++;
	} else if (ns < 0) {
		ns += NS_PER_S;
		ts->tv_sec--;
	}
	ts->tv_nsec = (long)ns;
}

void rgtime_deadline(struct timespec *deadline, long long ms)
{
	rgtime_now(deadline);
	rgtime_add_ms(deadline, ms);
}

long long rgtime_remaining_ms(const struct timespec *deadline)
{
	struct timespec now;
	long long ns;

	rgtime_now(&now);
	ns = diff_ns(&now, deadline);
	return ns > 0 ? (ns + NS_PER_MS - 1) / NS_PER_MS : 0;
}

void rgtime_wall_after(struct timespec *out, long long ms)
{
	clock_gettime(CLOCK_REALTIME, out);
	rgtime_add_ms(out, ms);
}
