#ifndef ROLLGATE_CONNGUARD_H
#define ROLLGATE_CONNGUARD_H

#include <stddef.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "conntrack.h"
#include "metrics.h"

/*
 * The protections of one libmicrohttpd listener against slow and excess
 * clients (docs/limits.md): a conntrack table fed by libmicrohttpd's
 * accept policy, connection notification and request-line callbacks, a
 * thread that closes connections past their read deadline, the metrics of
 * the listener, and at most one log line per 10 s saying what was closed.
 *
 * Wiring, for a daemon started with the guard as each callback's cls:
 *   apc                               connguard_accept
 *   MHD_OPTION_NOTIFY_CONNECTION      connguard_notify
 *   MHD_OPTION_URI_LOG_CALLBACK       connguard_request_line
 * and connguard_busy when a response is queued or the connection
 * suspended, connguard_idle when a request completes.
 */
struct connguard;

/* Starts the guard's thread. NULL with err on failure. */
struct connguard *connguard_new(enum metrics_listener listener, const struct conntrack_limits *lim,
				char *err, size_t errlen);
/* Stops the thread and writes the last log line; the daemons may still
 * run. Accepts NULL. */
void connguard_stop(struct connguard *g);
/* Frees the guard, after its daemons have stopped. Accepts NULL. */
void connguard_free(struct connguard *g);

enum MHD_Result connguard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void connguard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode code);
void *connguard_request_line(void *cls, const char *uri, struct MHD_Connection *conn);

/* The connection is being answered: no deadline, never evicted. */
void connguard_busy(struct MHD_Connection *conn);
/* Its answer is out: it waits for its next request. */
void connguard_idle(struct MHD_Connection *conn);
/* It was answered before its request body was read: when it closes, its
 * socket lingers a moment so the client reads the answer, not a reset. */
void connguard_answered_early(struct MHD_Connection *conn);

/* Connections open now. */
unsigned connguard_open(struct connguard *g);

#endif
