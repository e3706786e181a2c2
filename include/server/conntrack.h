#ifndef ROLLGATE_CONNTRACK_H
#define ROLLGATE_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The open HTTPS connections, for two protections libmicrohttpd 0.9.75
 * lacks (docs/limits.md):
 *
 *   - a read deadline: a request's headers and body must arrive within
 *     read_timeout_ms of the connection's accept (its first request) or of
 *     its request line (a later request on a kept-alive connection),
 *     however slowly the bytes trickle in;
 *   - a connection limit enforced at accept time: past max_open a new
 *     connection takes the place of the connection that has waited longest
 *     for its request to arrive (then of the one idle the longest), or is
 *     refused when every connection has a request being answered.
 *
 * A connection is READING until its request is in, BUSY while it is
 * answered, IDLE between requests, and CLOSING once this module has
 * decided to close it. Nothing BUSY is ever closed here.
 *
 * The module never touches a socket itself: it calls the caller's close
 * function with the connection's descriptor, under its lock, so the
 * descriptor cannot be closed and reused meanwhile (the caller removes a
 * connection before its descriptor is closed). add, remove, admit, expire
 * and open take that lock; the phase changes are lock-free (one atomic word
 * per connection) and may run on any thread.
 */
struct conntrack;
struct conntrack_conn;

struct conntrack_limits {
	unsigned max_open;        /* connections, closing ones not counted */
	unsigned max_closing;     /* closing ones allowed at once before refusing */
	unsigned read_timeout_ms; /* for a request to arrive in full */
	unsigned idle_timeout_ms; /* between requests (libmicrohttpd enforces it) */
};

/* Called under the lock with the descriptor of a connection to close. */
typedef void (*conntrack_close_fn)(int fd, void *arg);

enum conntrack_verdict {
	CT_ADMIT,           /* below the limit */
	CT_EVICTED_READING, /* admitted; a connection still reading was closed */
	CT_EVICTED_IDLE,    /* admitted; an idle kept-alive connection was closed */
	CT_REFUSED,         /* close the new connection */
};

/* NULL on OOM. */
struct conntrack *conntrack_new(const struct conntrack_limits *lim);
/* Frees the table and every connection still in it; accepts NULL. */
void conntrack_free(struct conntrack *ct);

/* Decides about a connection just accepted, before conntrack_add. */
enum conntrack_verdict conntrack_admit(struct conntrack *ct, int64_t now_ms,
				       conntrack_close_fn close_fn, void *arg);

/* A new connection, READING since now. NULL on OOM (it is then untracked;
 * every function below accepts NULL). Freed by conntrack_remove, which
 * returns whether conntrack_mark_unread was called on it. */
struct conntrack_conn *conntrack_add(struct conntrack *ct, int fd, int64_t now_ms);
bool conntrack_remove(struct conntrack *ct, struct conntrack_conn *c);

/* The connection was answered before its request body was read: its
 * socket should not be closed the moment it ends (connguard). */
void conntrack_mark_unread(struct conntrack_conn *c);

/* The request line of a request arrived: an IDLE connection starts
 * READING (its deadline counts from now). */
void conntrack_request_line(struct conntrack_conn *c, int64_t now_ms);
/* The request is in: it is being answered. */
void conntrack_busy(struct conntrack_conn *c);
/* The answer is out; the connection waits for its next request. */
void conntrack_idle(struct conntrack_conn *c, int64_t now_ms);

/* Closes every connection past its deadline; returns how many. */
unsigned conntrack_expire(struct conntrack *ct, int64_t now_ms, conntrack_close_fn close_fn,
			  void *arg);

/* Connections in the table, closing ones included. */
unsigned conntrack_open(struct conntrack *ct);

#endif
