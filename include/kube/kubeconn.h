#ifndef ROLLGATE_KUBECONN_H
#define ROLLGATE_KUBECONN_H

#include <stddef.h>
#include <time.h>
#include <curl/curl.h>

/*
 * The bottom of the Kubernetes API floor: where the API server is and the
 * credentials to reach it. Either the in-cluster service account
 * (KUBERNETES_SERVICE_HOST/PORT, its CA, a token re-read as it rotates) or
 * a kubeconfig's current context (token or token file, or client
 * certificate and key; CA data or file). No I/O beyond reading those
 * files: kubeclient (the transport) is the one module that sends requests.
 */

/* Where a connection goes and how it authenticates. */
struct kube_conn {
	char *server;     /* https://host:port, no trailing slash */
	char *ca_pem;     /* CA bundle, PEM, or NULL for the system store */
	char *cert_pem;   /* client certificate, PEM */
	char *key_pem;    /* client key, PEM */
	char *token;      /* bearer token */
	char *token_file; /* re-read periodically when set */
	char *namespace_; /* the context's namespace, or NULL */
	int insecure;     /* insecure-skip-tls-verify */
};

/* Reads a kubeconfig's current context. Errors name the file and key. */
int kube_conn_from_kubeconfig(const char *path, struct kube_conn *c, char *err, size_t errlen);
/* The same with the named context (NULL: the current one). */
int kube_conn_from_kubeconfig_context(const char *path, const char *context, struct kube_conn *c,
				      char *err, size_t errlen);
/* Reads the in-cluster service-account configuration. */
int kube_conn_in_cluster(struct kube_conn *c, char *err, size_t errlen);
/* The kubeconfig at path when not NULL, else the in-cluster configuration. */
int kube_conn_open(const char *kubeconfig, struct kube_conn *c, char *err, size_t errlen);
/* Releases what c holds (wiping the key and token) and zeroes it; NULL ok. */
void kube_conn_clear(struct kube_conn *c);

/* Applies conn's CA, client certificate and key (and insecure-skip-tls-verify)
 * to a curl handle. */
void kube_conn_set_tls(const struct kube_conn *conn, CURL *easy);

/* A bearer token that follows a rotating token file (bound service-account
 * tokens): re-read every minute, every few seconds while unreadable, the
 * last good value (or the kubeconfig's token) used meanwhile. Not
 * thread-safe: callers serialise. Starts zeroed. */
struct kube_token {
	char *value;
	time_t read_at;
};

/* The token to send now, or NULL; borrowed until the next call. */
const char *kube_token_current(struct kube_token *t, const struct kube_conn *conn);
/* Wipes and frees the value read last; t can be used again. */
void kube_token_clear(struct kube_token *t);

#endif
