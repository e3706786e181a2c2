#ifndef ROLLGATE_SERVER_H
#define ROLLGATE_SERVER_H

#include <stddef.h>

#include "webhook.h"

/*
 * The HTTPS admission listener and the plain-HTTP metrics listener
 * (libmicrohttpd). TLS 1.2/1.3 only, forward-secret AEAD suites, the
 * certificate from certstore (hot reloaded).
 */
struct server_options {
	const char *listen;         /* HOST:PORT for HTTPS */
	const char *metrics_listen; /* HOST:PORT for plain HTTP, NULL for none */
	size_t max_body;            /* bytes; larger bodies get 413 */
	unsigned conn_limit;        /* concurrent HTTPS connections (docs/limits.md) */
	unsigned idle_timeout;      /* seconds a connection may stay idle */
	unsigned read_timeout;      /* seconds for a request to arrive in full */
	unsigned threads;           /* worker threads, 0 = number of CPUs */
};

struct server;

struct server *server_start(const struct server_options *opts, struct webhook *wh, char *err,
			    size_t errlen);
/* The bound HTTPS port (useful with port 0). */
unsigned server_port(const struct server *srv);
unsigned server_metrics_port(const struct server *srv);

/* Marks the server ready or not (readyz). */
void server_set_ready(struct server *srv, int ready);

/*
 * Graceful stop: not ready, close the listening sockets, then keep every
 * open connection until it closes, answering whatever request arrives on
 * it with Connection: close (up to timeout_ms); then close what is left
 * and free the server. Returns -1 when reviews still waited on lookups
 * past the grace period: the daemons were not stopped, the server was not
 * freed, and the caller must exit without freeing what they use.
 */
int server_shutdown(struct server *srv, unsigned timeout_ms);

/* Splits "HOST:PORT" / "[V6]:PORT"; host is copied into buf. */
int server_parse_hostport(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
