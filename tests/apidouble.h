#ifndef ROLLGATE_APIDOUBLE_H
#define ROLLGATE_APIDOUBLE_H

/*
 * The kube-apiserver test double every test shares (tests/apidouble.c,
 * linked into each test binary): libmicrohttpd over HTTPS, one thread per
 * connection (a slow answer never holds up another), on an ephemeral
 * 127.0.0.1 port, with the certificate of certdir.
 *
 * - Objects of every resource below live in one store with one global
 *   resourceVersion counter; every write appends a watch event.
 * - Lists page with limit/continue (max_limit caps the page size), honour
 *   label selectors (labelsel: the whole syntax; watches too), and can be
 *   delayed or failed.
 * - Watches stream newline-delimited JSON events from a blocking generator:
 *   ADDED, MODIFIED, DELETED from the event log, BOOKMARK on ad_bookmark(),
 *   an ERROR 410 when the requested resourceVersion was compacted away
 *   (ad_compact_locked) or on ad_expire_watches(); ad_drop_watches() cuts
 *   every stream without a clean end.
 * - GETs of one object answer from the store (404 NotFound Status when it
 *   is absent). With by_name set, the double serves nothing but GETs of
 *   one ConfigMap, Secret or Deployment (other GETs: 404, other methods:
 *   405), answered by the object's name without any store (the objects of
 *   ad_object_json):
 *
 *     missing*    404 with a metav1 Status (reason NotFound)
 *     plain404*   404 with an HTML body (a proxy, not an API server)
 *     forbidden*  403 Status (reason Forbidden)
 *     boom        500 Status (reason InternalError)
 *     garbage*    200 with a body that is not JSON (it holds AD_SECRET_VALUE)
 *     wrongkind*  200 with an object of another kind
 *     slow*       the object, after slow_ms (3 s); ad_stop interrupts the wait
 *     anything    200 with the object
 *
 * - PATCH of workloads: every request is recorded (path, query, content
 *   type, body, bearer token); a server-side apply with fieldManager=rollgate
 *   and force=true merges the pod-template annotations and emits MODIFIED;
 *   so does a JSON merge patch (RFC 7386) or a JSON Patch (RFC 6902: its
 *   "test" operations must hold, else 422 and nothing changes) with
 *   fieldManager=rollgate and no force.
 * - PolicyReports: the same server-side apply creates the report or
 *   replaces its fields (the one field manager owns them all), keeping
 *   uid and creationTimestamp; lists and GETs as for any resource.
 * - Missing CRDs: with no_rollouts, no_canaries or no_policyreports set,
 *   every request for that resource answers 404 (as an API server without
 *   the CRD does). expire_continue makes continued list pages answer 410.
 * - Leases: GET, POST (409 AlreadyExists) and PUT with resourceVersion
 *   preconditions (409 Conflict), both counted in lease_conflicts; each
 *   successful write's holder is logged; lease_write_delay_ms holds writes
 *   back so that racing candidates both read before either writes.
 * - Events: POSTs are recorded.
 * - synth_secrets: the Secret list also serves that many generated Secrets
 *   of synth_keys keys each, built on the fly (nothing stored), for memory
 *   tests.
 * - Counters: requests, TCP connections, lists, watches, GETs, slow GETs;
 *   the Authorization header of the last request.
 *
 * Writes from the test: ad_put / ad_delete, or ad_begin(); ..._locked(); ad_end()
 * to make several changes atomically as seen by the watches. Settings
 * (by_name, max_limit, ...) are set after ad_start, before the requests
 * they shape.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "kubeclient.h"
#include "kubeconn.h"
#include "lease.h"

/* The value every by_name Secret holds, plain and base64. */
#define AD_SECRET_VALUE "s3cr3t-value"
#define AD_SECRET_VALUE_B64 "czNjcjN0LXZhbHVl"

/* configmaps, secrets, events, deployments, statefulsets, daemonsets,
 * rollouts, leases, replicasets, canaries (flagger.app/v1beta1),
 * policyreports (wgpolicyk8s.io/v1alpha2), namespaces (cluster-scoped: ns ""):
 * last_watch_rv is indexed in this order. */
#define AD_NKINDS 12

struct ad_kind {
	const char *res, *prefix, *kind, *api;
};

struct ad_obj {
	const struct ad_kind *k;
	char *ns, *name;
	cJSON *obj;
	unsigned long long rv;
};

struct ad_event {
	unsigned long long rv;
	const struct ad_kind *k;
	char *ns;
	char type[16];
	cJSON *obj;
};

struct ad_patch {
	char path[512];
	char query[512];
	char ctype[128];
	char token[128];
	char *body;
	double t; /* monotonic seconds */
};

struct ad_lease_write {
	char holder[256];
	char token[128];
	double t;
};

struct ad {
	struct MHD_Daemon *d;
	unsigned port;
	char *cert, *key;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	unsigned long long rv, compacted;
	struct ad_obj *objs;
	size_t n_objs, cap_objs;
	struct ad_event *evs;
	size_t n_evs, cap_evs;
	unsigned drop_gen, err_gen, bm_gen;
	struct ad_patch *patches;
	size_t n_patches, cap_patches;
	char **posted; /* Event bodies */
	size_t n_posted, cap_posted;
	struct ad_lease_write *lease_log;
	size_t n_lease_log, cap_lease_log;
	char last_auth[1024];
	/* behaviour */
	bool by_name; /* GETs of one object answered by name (see above) */
	unsigned slow_ms;
	bool no_rollouts;
	bool no_canaries;           /* the Flagger CRD is not installed: 404 */
	bool no_policyreports;      /* the PolicyReport CRD is not installed: 404 */
	atomic_int expire_continue; /* while non-zero, a list page asked for with a
				     * continue token answers 410 Expired (and
				     * counts down) */
	unsigned max_limit;
	unsigned list_delay_ms;
	atomic_int list_fail;          /* lists answer 500 while non-zero */
	atomic_int patch_fail;         /* PATCHes answer 500 while non-zero */
	atomic_int lease_fail;         /* lease requests answer 503 while non-zero */
	atomic_int get_fail;           /* GETs of one object answer 500 while non-zero */
	unsigned lease_write_delay_ms; /* lease POST/PUT wait this long before deciding */
	unsigned synth_secrets, synth_keys;
	/* counters */
	atomic_int requests, connections, lists, watches, gets, slow_seen, lease_conflicts;
	atomic_int expired_lists; /* 410 answers given for expire_continue */
	char last_watch_rv[AD_NKINDS][32];
};

/* Starts the double with certdir/tls.crt and tls.key. Returns 0 or -1. */
int ad_start(struct ad *d, const char *certdir);
/* Interrupts slow answers, ends every watch, stops the daemon, frees
 * everything; safe after a failed start. */
void ad_stop(struct ad *d);

/*
 * Writes a kubeconfig for the double at path: current-context "test" (next
 * to a decoy context), server https://127.0.0.1:PORT, the CA inline
 * (certificate-authority-data) or as the relative path "ca.crt" (the
 * kubeconfig must then sit next to it), a bearer token, and the context
 * namespace ns (NULL: none). Returns 0 or -1.
 */
int ad_write_kubeconfig(const struct ad *d, const char *certdir, const char *path, const char *token,
			const char *ns, bool ca_inline);

/*
 * What one replica of a controller under test holds to reach the double:
 * a kubeconfig for its bearer token, the connection and client read from
 * it, and a Lease when it runs leader election.
 */
struct ad_client {
	char token[64];
	char kc[512];       /* the kubeconfig: certdir/kubeconfig-TOKEN-PORT */
	char identity[128]; /* the Lease holder: TOKEN_PORT */
	struct kube_conn conn;
	struct kube_client *client;
	struct lease *lease; /* NULL without leader election */
};

/* Fills c for token: writes the kubeconfig, connects, and with lo (NULL:
 * no leader election) starts a Lease as lo says under c's identity. Fails
 * the test at the first step that does not work. */
void ad_client_open(struct ad_client *c, const struct ad *d, const char *certdir, const char *token,
		    const struct lease_options *lo);
/* Frees the Lease (stopped by the caller first, after its controller), the
 * client and the connection, and removes the kubeconfig. */
void ad_client_close(struct ad_client *c);
/* Lease options for elections within a test: namespace "rollgate", a 3 s
 * lease renewed within 2 s, retried every 0.5 s (the defaults, 15 s, 10 s
 * and 2 s, bound a takeover by about 19 s). */
void ad_lease_options(struct lease_options *lo);

/* The files a `rollgate serve` run against the double reads, in certdir. */
struct ad_serve_files {
	char kc[600];     /* kubeconfig-TOKEN-PORT: TOKEN, no namespace */
	char cert[600];   /* tls.crt */
	char key[600];    /* tls.key */
	char config[600]; /* name, holding yaml */
};
/* Writes the kubeconfig and the config and fills f; fails the test when
 * one cannot be written. ad_serve_files_remove deletes both. */
void ad_serve_files(struct ad_serve_files *f, const struct ad *d, const char *certdir,
		    const char *token, const char *name, const char *yaml);
void ad_serve_files_remove(const struct ad_serve_files *f);

/* Locks and unlocks the store; ad_end wakes the watches. */
void ad_begin(struct ad *d);
void ad_end(struct ad *d);
/* Creates or replaces res/ns/name from the JSON text of its fields (data,
 * spec, metadata.labels...). Returns the new resourceVersion, 0 on bad JSON. */
unsigned long long ad_put_locked(struct ad *d, const char *res, const char *ns, const char *name,
				 const char *json);
unsigned long long ad_put(struct ad *d, const char *res, const char *ns, const char *name,
			  const char *json);
void ad_delete_locked(struct ad *d, const char *res, const char *ns, const char *name);
void ad_delete(struct ad *d, const char *res, const char *ns, const char *name);
/* Forgets the event history: watches from an older resourceVersion get 410. */
void ad_compact_locked(struct ad *d);
void ad_drop_watches(struct ad *d);
void ad_expire_watches(struct ad *d);
void ad_bookmark(struct ad *d);
/* A copy of the stored object as JSON text (caller frees), or NULL. */
char *ad_get_json(struct ad *d, const char *res, const char *ns, const char *name);
size_t ad_patch_count(struct ad *d);
/* PATCHes recorded whose path contains needle. */
size_t ad_patch_count_path(struct ad *d, const char *needle);
size_t ad_posted_count(struct ad *d);

/* The object a by_name GET answers with, as JSON; malloc'd, caller frees.
 * resource is "configmaps", "secrets" or "deployments". */
char *ad_object_json(const char *resource, const char *ns, const char *name);
/* The Authorization header of the last request, copied to out. */
void ad_last_auth(struct ad *d, char *out, size_t len);

#endif
