/*
 * libmicrohttpd's side of the connection table: its callbacks feed
 * conntrack, a thread expires read deadlines and releases lingering
 * sockets, and what the protections close is counted and reported
 * (docs/limits.md).
 */
#include "connguard.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rgtime.h"

/* How often deadlines are checked, and how often at most one log line
 * reports the connections closed to protect the server. */
#define SWEEP_MS 200
#define REPORT_MS 10000

/* A connection answered before its request body was read (a 413 for an
 * announced body, say) still has body bytes on their way when
 * libmicrohttpd closes it, and closing a socket with unread bytes sends a
 * reset, which can reach the client before it has read the answer. Such a
 * socket is kept open (a duplicate descriptor, unread) until the client
 * closes its end or LINGER_MS pass, as Go's server does; at most
 * LINGER_MAX at once per listener. */
#define LINGER_MS 500
#define LINGER_MAX 128

struct lingering {
	int fd;
	int64_t until_ms;
};

/* Closed by the protections, not yet reported in a log line. */
struct notes {
	atomic_uint refused;
	atomic_uint evicted_reading;
	atomic_uint evicted_idle;
	atomic_uint timed_out;
	int64_t last_report_ms; /* the guard's thread only */
};

struct connguard {
	enum metrics_listener listener;
	unsigned limit;
	struct conntrack *ct;
	struct notes notes;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	pthread_mutex_t linger_lock;
	struct lingering linger[LINGER_MAX];
	unsigned n_linger;
};

static int64_t now_ms(void)
{
	return (int64_t)rgtime_now_ms();
}

/* The table's close function: ends both directions, so the connection's
 * own thread sees end-of-file, closes it and reports it closed; the
 * descriptor stays valid until then. */
static void close_socket(int fd, void *arg)
{
	(void)arg;
	shutdown(fd, SHUT_RDWR);
}

/* The table entry of a connection (its socket context), or NULL. */
static struct conntrack_conn *entry_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i ? i->socket_context : NULL;
}

/*
 * libmicrohttpd closes the socket at once when this says no. The table's
 * limit sits below libmicrohttpd's own, so libmicrohttpd never reaches its
 * limit, where it stops polling the listening socket and new connections
 * wait in the kernel's backlog unanswered.
 */
enum MHD_Result connguard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct connguard *g = cls;

	(void)addr, (void)addrlen;
	switch (conntrack_admit(g->ct, now_ms(), close_socket, NULL)) {
	case CT_ADMIT:
		return MHD_YES;
	case CT_EVICTED_READING:
		metrics_connection_evicted(g->listener, false);
		atomic_fetch_add(&g->notes.evicted_reading, 1);
		return MHD_YES;
	case CT_EVICTED_IDLE:
		metrics_connection_evicted(g->listener, true);
		atomic_fetch_add(&g->notes.evicted_idle, 1);
		return MHD_YES;
	default:
		metrics_connection_refused(g->listener);
		atomic_fetch_add(&g->notes.refused, 1);
		return MHD_NO;
	}
}

/* Keeps the socket of a connection libmicrohttpd is about to close. */
static void linger_socket(struct connguard *g, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(conn,
								    MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd;

	if (!i)
		return;
	pthread_mutex_lock(&g->linger_lock);
	if (g->n_linger < LINGER_MAX) {
		fd = fcntl(i->connect_fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0)
			g->linger[g->n_linger++] = (struct lingering){ fd, now_ms() + LINGER_MS };
	}
	pthread_mutex_unlock(&g->linger_lock);
}

/* Closes the lingering sockets whose client has closed its end or whose
 * time is up (all of them with force). */
static void release_lingering(struct connguard *g, int64_t now, bool force)
{
	struct pollfd p;

	pthread_mutex_lock(&g->linger_lock);
	for (unsigned k = 0; k < g->n_linger;) {
		p = (struct pollfd){ g->linger[k].fd, POLLRDHUP, 0 };
		if (force || now >= g->linger[k].until_ms ||
		    (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))) {
			close(g->linger[k].fd);
			g->linger[k] = g->linger[--g->n_linger];
		} else {
			k++;
		}
	}
	pthread_mutex_unlock(&g->linger_lock);
}

/* libmicrohttpd reports a connection closed before it closes the socket,
 * so the table never holds a descriptor that may be reused. */
void connguard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode code)
{
	struct connguard *g = cls;
	const union MHD_ConnectionInfo *i;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		i = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = i ? conntrack_add(g->ct, i->connect_fd, now_ms()) : NULL;
		metrics_connections_open(g->listener, 1);
	} else {
		if (conntrack_remove(g->ct, *socket_context))
			linger_socket(g, conn);
		*socket_context = NULL;
		metrics_connections_open(g->listener, -1);
	}
}

/* On a kept-alive connection, the read deadline of a new request starts
 * with its request line. Returns no request state: the request handler
 * makes it on its first call. */
void *connguard_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls, (void)uri;
	conntrack_request_line(entry_of(conn), now_ms());
	return NULL;
}

void connguard_busy(struct MHD_Connection *conn)
{
	conntrack_busy(entry_of(conn));
}

void connguard_idle(struct MHD_Connection *conn)
{
	conntrack_idle(entry_of(conn), now_ms());
}

void connguard_answered_early(struct MHD_Connection *conn)
{
	conntrack_mark_unread(entry_of(conn));
}

unsigned connguard_open(struct connguard *g)
{
	return conntrack_open(g->ct);
}

/* One line for everything closed since the last one, at most every
 * REPORT_MS unless forced. */
static void report(struct connguard *g, int64_t now, bool force)
{
	struct notes *n = &g->notes;
	unsigned refused, reading, idle, timed_out;

	if (!force && n->last_report_ms && now - n->last_report_ms < REPORT_MS)
		return;
	refused = atomic_exchange(&n->refused, 0);
	reading = atomic_exchange(&n->evicted_reading, 0);
	idle = atomic_exchange(&n->evicted_idle, 0);
	timed_out = atomic_exchange(&n->timed_out, 0);
	if (!refused && !reading && !idle && !timed_out)
		return;
	RG_LOG(LOG_WARN, "connections closed to protect the server (docs/limits.md)",
	       LF_S("listener", metrics_listener_name(g->listener)), LF_I("refused_at_limit", refused),
	       LF_I("evicted_reading", reading), LF_I("evicted_idle", idle),
	       LF_I("read_timeouts", timed_out), LF_I("open", conntrack_open(g->ct)),
	       LF_I("limit", g->limit),
	       LF_D("since_last_s",
		    n->last_report_ms ? (double)(now - n->last_report_ms) / 1000.0 : 0.0));
	n->last_report_ms = now;
}

/* Every SWEEP_MS: closes the connections past their read deadline. */
static void *sweep(void *arg)
{
	struct connguard *g = arg;
	struct timespec until;
	unsigned n;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		rgtime_deadline(&until, SWEEP_MS);
		pthread_cond_timedwait(&g->cond, &g->lock, &until);
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->lock);
		n = conntrack_expire(g->ct, now_ms(), close_socket, NULL);
		if (n) {
			metrics_requests_timed_out(g->listener, n);
			atomic_fetch_add(&g->notes.timed_out, n);
		}
		release_lingering(g, now_ms(), false);
		report(g, now_ms(), false);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

struct connguard *connguard_new(enum metrics_listener listener, const struct conntrack_limits *lim,
				char *err, size_t errlen)
{
	struct connguard *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;
	int rc;

	if (!g || !(g->ct = conntrack_new(lim))) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->listener = listener;
	g->limit = lim->max_open;
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->linger_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&g->thread, NULL, sweep, g);
	if (rc != 0) {
		char why[128];

		snprintf(err, errlen, "cannot start a thread: %s", strerror_r(rc, why, sizeof(why)));
		connguard_free(g);
		return NULL;
	}
	g->running = true;
	return g;
}

void connguard_stop(struct connguard *g)
{
	if (!g || !g->running)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	g->running = false;
	report(g, now_ms(), true);
}

void connguard_free(struct connguard *g)
{
	if (!g)
		return;
	connguard_stop(g);
	release_lingering(g, 0, true);
	conntrack_free(g->ct);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->linger_lock);
	free(g);
}
