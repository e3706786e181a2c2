#ifndef ROLLGATE_KUBE_H
#define ROLLGATE_KUBE_H

#include <stddef.h>
#include <time.h>
#include <curl/curl.h>

#include "objsource.h"

/*
 * The Kubernetes API object source: GETs ConfigMaps, Secrets and Deployments
 * with libcurl from one worker thread (curl multi), so lookups of a review
 * run in parallel, reuse connections, share one time budget, and never block
 * a serving thread. A 404 NotFound Status naming the object means absent;
 * anything else that is not a 200 with that object is a failed lookup, and
 * its reason is logged.
 *
 * Credentials: the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT,
 * token re-read as it rotates, CA), or a kubeconfig's current context (token,
 * or client certificate and key; CA data or file).
 */
struct objsource *kube_source_new(const char *kubeconfig, char *err, size_t errlen);

/* Where a connection goes and how it authenticates; exposed for tests. */
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

/* A bearer token that follows a rotating token file (bound service-account
 * tokens): re-read every minute, every few seconds while unreadable, the
 * last good value (or the kubeconfig's token) used meanwhile. Not
 * thread-safe: callers serialise. */
struct kube_token {
	char *value;
	time_t read_at;
};

/* The token to send now, or NULL; borrowed until the next call. */
const char *kube_token_current(struct kube_token *t, const struct kube_conn *conn);
void kube_token_free(struct kube_token *t);

/* Applies conn's CA, client certificate and key to a curl handle. */
void kube_conn_set_tls(const struct kube_conn *conn, CURL *easy);

/* Reads a kubeconfig's current context. Errors name the file and key. */
int kube_conn_from_kubeconfig(const char *path, struct kube_conn *c, char *err, size_t errlen);
/* Reads the in-cluster service-account configuration. */
int kube_conn_in_cluster(struct kube_conn *c, char *err, size_t errlen);
void kube_conn_free(struct kube_conn *c);

#endif
