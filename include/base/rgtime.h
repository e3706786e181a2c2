#ifndef ROLLGATE_RGTIME_H
#define ROLLGATE_RGTIME_H

#include <time.h>

/*
 * Time for durations and deadlines (curl's lib/curlx/timeval.c). Everything
 * here reads CLOCK_MONOTONIC, which never jumps when the wall clock is set,
 * except rgtime_wall_after, which exists only for pthread_cond_timedwait on
 * condition variables with the default (realtime) clock. Timestamps that
 * leave the process (logs, Lease times) read CLOCK_REALTIME themselves.
 * All functions are thread-safe and never fail.
 */

/* The monotonic time now, as a timespec and in milliseconds. */
void rgtime_now(struct timespec *ts);
long long rgtime_now_ms(void);

/* Seconds from since (an rgtime_now reading) to now; never negative. */
double rgtime_elapsed_s(const struct timespec *since);

/* Adds ms (may be negative) to ts, keeping tv_nsec in [0, 1e9). */
void rgtime_add_ms(struct timespec *ts, long long ms);

/* A monotonic deadline ms from now, and the whole milliseconds left until
 * it, rounded up: 0 only once it has passed. */
void rgtime_deadline(struct timespec *deadline, long long ms);
long long rgtime_remaining_ms(const struct timespec *deadline);

/* CLOCK_REALTIME now + ms: the absolute time pthread_cond_timedwait takes. */
void rgtime_wall_after(struct timespec *out, long long ms);

#endif
