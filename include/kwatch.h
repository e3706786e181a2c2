#ifndef ROLLGATE_KWATCH_H
#define ROLLGATE_KWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "kube.h"
#include "metrics.h"

/*
 * List+watch of Kubernetes collections, and the small HTTP client it is
 * built on (shared with the leader lease and the reload controller).
 *
 * The client: one kube_conn's credentials (bearer token re-read as it
 * rotates, client certificate, CA), HTTPS only, blocking JSON requests with
 * a reply cap, connections kept alive between requests.
 *
 * The watch: one thread drives every stream of a kwatch through one curl
 * multi handle (HTTP/2 multiplexes them over one connection). Each stream
 * lists its collection in pages (limit/continue, a consistent read), then
 * watches from the list's resourceVersion with bookmarks, resumes from the
 * last resourceVersion seen (events and bookmarks) when a watch ends or
 * drops, relists on 410 Gone, and backs off exponentially on errors.
 */

struct kwatch_client;

/* conn is borrowed and must outlive the client. Returns NULL on OOM. */
struct kwatch_client *kwatch_client_new(const struct kube_conn *conn, char *err, size_t errlen);
void kwatch_client_free(struct kwatch_client *c);

struct kwatch_reply {
	long status;  /* HTTP status */
	char *body;   /* NUL-terminated, malloc'd; may be NULL */
	size_t len;
};

/*
 * One blocking request: method to server + path (path includes the query,
 * already escaped). body (NUL-terminated) is sent with content_type when
 * not NULL. Returns 0 when an HTTP answer arrived (any status: see
 * reply->status; the body is capped at 4 MiB), or -1 with err on a transport
 * error, a timeout or OOM. Thread-safe; the caller frees the reply.
 */
int kwatch_client_request(struct kwatch_client *c, const char *method, const char *path,
			  const char *content_type, const char *body, unsigned timeout_ms,
			  struct kwatch_reply *reply, char *err, size_t errlen);
void kwatch_reply_free(struct kwatch_reply *r);
/* "HTTP 409: <Status message, clipped>" for a log line; never object values
 * (a Status message names objects, not their contents). */
void kwatch_reply_describe(const struct kwatch_reply *r, char *out, size_t outlen);

/* Percent-encodes s for a URL query value; malloc'd, NULL on OOM. */
char *kwatch_escape(const char *s);
/* A DNS-1123 subdomain (object name) / label (namespace): safe in a URL path. */
bool kwatch_valid_name(const char *s);
bool kwatch_valid_namespace(const char *s);

enum kwatch_event { KWATCH_ADDED, KWATCH_MODIFIED, KWATCH_DELETED };

/*
 * What a stream tells its owner, always from the watch thread, one call at
 * a time. A (re)list calls list_start, then object(ADDED) for every item,
 * then synced: whatever the owner holds that was not delivered since
 * list_start is gone. Watch events follow as object() calls. obj is
 * borrowed for the call (and wiped afterwards for sensitive streams).
 * disabled: an optional stream whose list answered 404 (a CRD that is not
 * installed); the stream stops for good.
 */
struct kwatch_handler {
	void (*list_start)(void *arg);
	void (*object)(void *arg, enum kwatch_event ev, const cJSON *obj);
	void (*synced)(void *arg);
	void (*disabled)(void *arg);
	void *arg;
};

struct kwatch_spec {
	const char *path;           /* collection, e.g. "/api/v1/namespaces/shop/secrets" */
	const char *label_selector; /* NULL: every object */
	enum metrics_resource resource;
	bool sensitive; /* Secret values pass through: wipe buffers after use */
	bool optional;  /* a 404 on the list disables the stream (one log line) */
	struct kwatch_handler handler;
};

struct kwatch;

/* The client is borrowed. */
struct kwatch *kwatch_new(struct kwatch_client *c);
/* Adds a stream (before kwatch_start; strings are copied). Returns 0 or -1. */
int kwatch_add(struct kwatch *w, const struct kwatch_spec *spec, char *err, size_t errlen);
/* Starts the thread. Returns 0 or -1 with err. */
int kwatch_start(struct kwatch *w, char *err, size_t errlen);
/* Asks every stream to list again (e.g. the owner's config changed). */
void kwatch_relist(struct kwatch *w);
/* Stops the thread (no handler runs after this returns) and frees; NULL ok. */
void kwatch_free(struct kwatch *w);

#endif
