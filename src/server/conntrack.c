/*
 * Connection table for the read deadline and the connection limit. A
 * connection's phase and the time it entered it share one atomic word, so
 * the connection's own thread and the threads that evict or expire agree
 * on every transition by compare-and-swap: whoever moves first wins, and a
 * connection that became BUSY is never closed from here.
 */
#include "conntrack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

enum phase { PH_READING, PH_BUSY, PH_IDLE, PH_CLOSING };

#define PHASE_BITS 2
#define PHASE_MASK ((uint64_t)((1u << PHASE_BITS) - 1))

struct conntrack_conn {
	struct conntrack_conn *prev, *next;
	int fd;
	_Atomic uint64_t state; /* since_ms << PHASE_BITS | phase */
	atomic_bool unread;     /* answered before its body was read */
};

struct conntrack {
	struct conntrack_limits lim;
	pthread_mutex_t lock;
	struct conntrack_conn *head;
	unsigned n_open;
	unsigned n_closing;
};

static uint64_t pack(enum phase p, int64_t since_ms)
{
	return (uint64_t)(since_ms < 0 ? 0 : since_ms) << PHASE_BITS | (uint64_t)p;
}

static enum phase phase_of(uint64_t st)
{
	return (enum phase)(st & PHASE_MASK);
}

static int64_t since_of(uint64_t st)
{
	return (int64_t)(st >> PHASE_BITS);
}

struct conntrack *conntrack_new(const struct conntrack_limits *lim)
{
	struct conntrack *ct = calloc(1, sizeof(*ct));

	if (!ct)
		return NULL;
	ct->lim = *lim;
	pthread_mutex_init(&ct->lock, NULL);
	return ct;
}

void conntrack_free(struct conntrack *ct)
{
	struct conntrack_conn *c, *next;

	if (!ct)
		return;
	for (c = ct->head; c; c = next) {
		next = c->next;
		free(c);
	}
	pthread_mutex_destroy(&ct->lock);
	free(ct);
}

/* Moves c from the phase it was seen in to CLOSING and closes its socket.
 * Fails when its own thread moved it meanwhile. Under the lock. */
static bool close_locked(struct conntrack *ct, struct conntrack_conn *c, uint64_t seen,
			 conntrack_close_fn close_fn, void *arg)
{
	if (!atomic_compare_exchange_strong(&c->state, &seen, pack(PH_CLOSING, since_of(seen))))
		return false;
	ct->n_closing++;
	close_fn(c->fd, arg);
	return true;
}

/* The connection in phase p that entered it first, or NULL. Under the lock. */
static struct conntrack_conn *oldest_locked(struct conntrack *ct, enum phase p, uint64_t *seen)
{
	struct conntrack_conn *best = NULL;

	for (struct conntrack_conn *c = ct->head; c; c = c->next) {
		uint64_t st = atomic_load(&c->state);
		if (phase_of(st) == p && (!best || since_of(st) < since_of(*seen))) {
			best = c;
			*seen = st;
		}
	}
	return best;
}

/* Closes the oldest connection in phase p; retries when a connection
 * changes phase under the scan (bounded: each retry needs a transition). */
static bool evict_locked(struct conntrack *ct, enum phase p, conntrack_close_fn close_fn, void *arg)
{
	for (int tries = 0; tries < 8; tries++) {
		uint64_t seen = 0;
		struct conntrack_conn *c = oldest_locked(ct, p, &seen);
		if (!c)
			return false;
		if (close_locked(ct, c, seen, close_fn, arg))
			return true;
	}
	return false;
}

enum conntrack_verdict conntrack_admit(struct conntrack *ct, int64_t now_ms,
				       conntrack_close_fn close_fn, void *arg)
{
	enum conntrack_verdict v = CT_REFUSED;

	(void)now_ms;
	pthread_mutex_lock(&ct->lock);
	if (ct->n_open - ct->n_closing < ct->lim.max_open)
		v = CT_ADMIT;
	else if (ct->n_closing >= ct->lim.max_closing)
		v = CT_REFUSED;
	else if (evict_locked(ct, PH_READING, close_fn, arg))
		v = CT_EVICTED_READING;
	else if (evict_locked(ct, PH_IDLE, close_fn, arg))
		v = CT_EVICTED_IDLE;
	pthread_mutex_unlock(&ct->lock);
	return v;
}

struct conntrack_conn *conntrack_add(struct conntrack *ct, int fd, int64_t now_ms)
{
	struct conntrack_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	atomic_init(&c->state, pack(PH_READING, now_ms));
	pthread_mutex_lock(&ct->lock);
	c->next = ct->head;
	if (ct->head)
		ct->head->prev = c;
	ct->head = c;
	ct->n_open++;
	pthread_mutex_unlock(&ct->lock);
	return c;
}

void conntrack_mark_unread(struct conntrack_conn *c)
{
	if (c)
		atomic_store(&c->unread, true);
}

bool conntrack_remove(struct conntrack *ct, struct conntrack_conn *c)
{
	bool unread;

	if (!c)
		return false;
	pthread_mutex_lock(&ct->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		ct->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ct->n_open--;
	if (phase_of(atomic_load(&c->state)) == PH_CLOSING)
		ct->n_closing--;
	pthread_mutex_unlock(&ct->lock);
	unread = atomic_load(&c->unread);
	free(c);
	return unread;
}

/* Moves c to phase to, since now or since unchanged; never out of CLOSING. */
static void enter(struct conntrack_conn *c, enum phase to, int64_t now_ms, bool restart_clock)
{
	uint64_t st;

	if (!c)
		return;
	st = atomic_load(&c->state);
	do {
		if (phase_of(st) == PH_CLOSING)
			return;
	} while (!atomic_compare_exchange_weak(&c->state, &st,
					       pack(to, restart_clock ? now_ms : since_of(st))));
}

void conntrack_request_line(struct conntrack_conn *c, int64_t now_ms)
{
	uint64_t st;

	if (!c)
		return;
	/* A fresh connection's deadline keeps counting from its accept. */
	st = atomic_load(&c->state);
	if (phase_of(st) == PH_IDLE)
		atomic_compare_exchange_strong(&c->state, &st, pack(PH_READING, now_ms));
}

void conntrack_busy(struct conntrack_conn *c)
{
	enter(c, PH_BUSY, 0, false);
}

void conntrack_idle(struct conntrack_conn *c, int64_t now_ms)
{
	enter(c, PH_IDLE, now_ms, true);
}

/* When c's current phase ends it, or -1 for never. */
static int64_t deadline_of(const struct conntrack *ct, uint64_t st)
{
	switch (phase_of(st)) {
	case PH_READING:
		return since_of(st) + ct->lim.read_timeout_ms;
	case PH_IDLE:
		/* A silent connection is closed by libmicrohttpd's idle timer
		 * first; one still here has been trickling bytes of a request
		 * line that never completes. */
		return since_of(st) + ct->lim.idle_timeout_ms + ct->lim.read_timeout_ms;
	default:
		return -1;
	}
}

unsigned conntrack_expire(struct conntrack *ct, int64_t now_ms, conntrack_close_fn close_fn, void *arg)
{
	unsigned n = 0;

	pthread_mutex_lock(&ct->lock);
	for (struct conntrack_conn *c = ct->head; c; c = c->next) {
		uint64_t st = atomic_load(&c->state);
		int64_t due = deadline_of(ct, st);
		if (due >= 0 && now_ms >= due && close_locked(ct, c, st, close_fn, arg))
			n++;
	}
	pthread_mutex_unlock(&ct->lock);
	return n;
}

unsigned conntrack_open(struct conntrack *ct)
{
	unsigned n;

	pthread_mutex_lock(&ct->lock);
	n = ct->n_open;
	pthread_mutex_unlock(&ct->lock);
	return n;
}
