#ifndef ROLLGATE_TLSDOUBLE_H
#define ROLLGATE_TLSDOUBLE_H

/*
 * The HTTPS server under both Kubernetes API test doubles: libmicrohttpd,
 * one thread per connection (a slow answer never holds up another), on
 * 127.0.0.1 with an ephemeral port and the certificate in certdir.
 * Include testutil.h first.
 */
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>

/*
 * Reads certdir/tls.crt and tls.key into *cert and *key (the caller frees
 * them, also on failure) and starts the daemon. done and on_conn may be
 * NULL. Returns the daemon, with its port in *port, or NULL.
 */
static inline struct MHD_Daemon *td_start(const char *certdir, MHD_AccessHandlerCallback handler,
					  void *cls, MHD_RequestCompletedCallback done,
					  MHD_NotifyConnectionCallback on_conn, unsigned timeout_s,
					  char **cert, char **key, unsigned *port)
{
	char path[4200];
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;

	snprintf(path, sizeof(path), "%s/tls.crt", certdir);
	*cert = tu_read_file(path, NULL);
	snprintf(path, sizeof(path), "%s/tls.key", certdir);
	*key = tu_read_file(path, NULL);
	if (!*cert || !*key)
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_TLS | MHD_USE_POLL,
			     0, NULL, NULL, handler, cls, MHD_OPTION_HTTPS_MEM_CERT, *cert,
			     MHD_OPTION_HTTPS_MEM_KEY, *key, MHD_OPTION_SOCK_ADDR, &sa,
			     MHD_OPTION_NOTIFY_COMPLETED, done, cls,
			     MHD_OPTION_NOTIFY_CONNECTION, on_conn, cls,
			     MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_END);
	if (!d)
		return NULL;
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	*port = info ? info->port : 0;
	if (!*port) {
		MHD_stop_daemon(d);
		return NULL;
	}
	return d;
}

#endif
