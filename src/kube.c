/*
 * Kubernetes API object source. One worker thread drives a curl multi
 * handle: batches arrive through a locked queue and a wakeup, every lookup
 * of a batch runs in parallel under the batch's deadline, connections (and
 * HTTP/2 streams) are reused, and the batch's callback fires once, when its
 * last lookup ends. Secret bodies are wiped after they are digested.
 * Destroying the source ends whatever is still in flight as failed lookups
 * (each batch's callback still fires once) instead of abandoning it.
 */
#include "kube.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "jsonutil.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "yamljson.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define BODY_MAX (4u << 20) /* ConfigMaps and Secrets are at most 1 MiB */
#define TOKEN_REREAD_S 60
#define TOKEN_RETRY_S 5
#define NAME_MAX_LEN 253

struct pending {
	struct lookup_batch *b;
	lookup_done_fn done;
	void *arg;
	size_t remaining;
	struct timespec deadline;
	struct pending *next;
};

struct xfer {
	struct pending *p;
	struct lookup_item *it;
	CURL *easy;
	struct curl_slist *hdrs;
	char *buf;
	size_t len;
	bool too_big;
	struct xfer *prev, *next; /* the worker's list of running transfers */
};

struct kube {
	struct kube_conn conn;
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	struct pending *queue;
	bool stop;
	struct xfer *active; /* worker thread only */
	struct kube_token token; /* worker thread only */
};

void kube_conn_free(struct kube_conn *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_pem);
	free(c->cert_pem);
	if (c->key_pem)
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
	free(c->key_pem);
	if (c->token)
		OPENSSL_cleanse(c->token, strlen(c->token));
	free(c->token);
	free(c->token_file);
	free(c->namespace_);
	memset(c, 0, sizeof(*c));
}

static char *read_small(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *s = manifest_slurp(path, 1u << 20, &len, err, errlen);

	/* Tokens and namespaces come with a trailing newline at times. */
	while (s && len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		s[--len] = '\0';
	return s;
}

int kube_conn_in_cluster(struct kube_conn *c, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	char url[300], nserr[256];

	memset(c, 0, sizeof(*c));
	if (!host || !*host) {
		snprintf(err, errlen, "KUBERNETES_SERVICE_HOST is not set: not running in a cluster");
		return -1;
	}
	/* An IPv6 service host needs brackets in a URL. */
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port && *port ? port : "443");
	c->ca_pem = read_small(SA_DIR "/ca.crt", err, errlen);
	if (!c->ca_pem)
		return -1;
	/* The namespace is informational: its absence is no error (and must
	 * not overwrite one). */
	c->namespace_ = read_small(SA_DIR "/namespace", nserr, sizeof(nserr));
	c->server = strdup(url);
	c->token_file = strdup(SA_DIR "/token");
	if (!c->server || !c->token_file) {
		snprintf(err, errlen, "out of memory");
		kube_conn_free(c);
		return -1;
	}
	return 0;
}

/* Standard base64 (kubeconfig *-data fields) to a NUL-terminated string;
 * NULL when in is not canonical padded base64 or on OOM. */
static char *b64_decode_str(const char *in)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), body = strspn(in, alphabet), pad = n - body;
	unsigned char *out;
	int len;

	/* EVP_DecodeBlock skips blanks and decodes '=' inside the data; check
	 * the shape first so only real base64 is accepted. */
	if (n % 4 != 0 || n > (size_t)INT_MAX || pad > 2 || strspn(in + body, "=") != pad)
		return NULL;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	len -= (int)pad;
	out[len] = '\0';
	return (char *)out;
}

/* Finds the element named name in a kubeconfig list (contexts, clusters, users). */
static const cJSON *named(const cJSON *root, const char *list, const char *name, const char *field)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, json_get(root, list)) {
		const char *n = json_get_string(it, "name");
		if (n && strcmp(n, name) == 0)
			return json_get(it, field);
	}
	return NULL;
}

/* A path in a kubeconfig is relative to the kubeconfig's directory.
 * Returns a malloc'd path or NULL on OOM. */
static char *resolve_path(const char *kcpath, const char *path)
{
	const char *slash = strrchr(kcpath, '/');
	size_t dirlen = slash ? (size_t)(slash - kcpath) : 0;
	size_t n = dirlen + strlen(path) + 2;
	char *full = malloc(n);

	if (!full)
		return NULL;
	if (path[0] == '/' || !slash)
		snprintf(full, n, "%s", path);
	else
		snprintf(full, n, "%.*s/%s", (int)dirlen, kcpath, path);
	return full;
}

/* Reads "<field>-data" (base64) or "<field>" (a path) into *out; neither is
 * no error (*out stays NULL). An empty "-data" counts as absent, as in
 * client-go. Errors name the kubeconfig and the key. */
static int data_or_file(const char *kcpath, const cJSON *obj, const char *field, char **out,
			char *err, size_t errlen)
{
	char key[64], ferr[512];
	const char *v;
	char *full;

	snprintf(key, sizeof(key), "%s-data", field);
	v = json_get_string(obj, key);
	if (v && *v) {
		*out = b64_decode_str(v);
		if (!*out) {
			snprintf(err, errlen, "%s: %s is not valid base64", kcpath, key);
			return -1;
		}
		return 0;
	}
	v = json_get_string(obj, field);
	if (!v || !*v)
		return 0;
	full = resolve_path(kcpath, v);
	*out = full ? read_small(full, ferr, sizeof(ferr)) : NULL;
	if (!*out)
		snprintf(err, errlen, "%s: %s: %s", kcpath, field, full ? ferr : "out of memory");
	free(full);
	return *out ? 0 : -1;
}

/* A bearer token goes into a header line: no control characters. */
static bool token_ok(const char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			return false;
	return true;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* The user's credentials: a token, a token file or a client certificate. */
static int user_from_tree(const char *path, const char *us, const cJSON *user, struct kube_conn *c,
			  char *err, size_t errlen)
{
	const char *tok = json_get_string(user, "token"), *tokfile = json_get_string(user, "tokenFile");
	bool oom = false;

	if (tok && *tok && !token_ok(tok)) {
		snprintf(err, errlen, "%s: user \"%s\": token contains control characters", path, us);
		return -1;
	}
	c->token = tok && *tok ? dup_opt(tok, &oom) : NULL;
	if (tokfile && *tokfile) {
		c->token_file = resolve_path(path, tokfile);
		oom = oom || !c->token_file;
	}
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (data_or_file(path, user, "client-certificate", &c->cert_pem, err, errlen) < 0 ||
	    data_or_file(path, user, "client-key", &c->key_pem, err, errlen) < 0)
		return -1;
	if (!c->cert_pem != !c->key_pem) {
		snprintf(err, errlen, "%s: user \"%s\": a client certificate needs both %s and its key",
			 path, us, c->cert_pem ? "client-certificate" : "client-key");
		return -1;
	}
	if (!c->token && !c->token_file && !c->cert_pem &&
	    (json_get(user, "exec") || json_get(user, "auth-provider"))) {
		snprintf(err, errlen,
			 "%s: user \"%s\": %s credential plugins are not supported; use a token, "
			 "tokenFile or client certificate",
			 path, us, json_get(user, "exec") ? "exec" : "auth-provider");
		return -1;
	}
	return 0;
}

/* Finds the context, its cluster and its user; errors say which is missing. */
static int conn_from_tree(const char *path, const cJSON *root, struct kube_conn *c, char *err,
			  size_t errlen)
{
	const char *ctxname = json_get_string(root, "current-context"), *cl, *us, *server;
	const cJSON *ctx, *cluster, *user = NULL;
	bool oom = false;
	size_t n;

	if (!ctxname || !*ctxname) {
		snprintf(err, errlen, "%s: current-context is not set", path);
		return -1;
	}
	ctx = named(root, "contexts", ctxname, "context");
	if (!cJSON_IsObject(ctx)) {
		snprintf(err, errlen, "%s: current-context \"%s\" is not among the contexts", path,
			 ctxname);
		return -1;
	}
	cl = json_get_string(ctx, "cluster");
	us = json_get_string(ctx, "user");
	cluster = cl ? named(root, "clusters", cl, "cluster") : NULL;
	if (!cJSON_IsObject(cluster)) {
		snprintf(err, errlen, "%s: context \"%s\": cluster \"%s\" is not among the clusters",
			 path, ctxname, cl ? cl : "");
		return -1;
	}
	if (us && *us) {
		user = named(root, "users", us, "user");
		if (!cJSON_IsObject(user)) {
			snprintf(err, errlen, "%s: context \"%s\": user \"%s\" is not among the users",
				 path, ctxname, us);
			return -1;
		}
	}
	server = json_get_string(cluster, "server");
	if (!server || !*server) {
		snprintf(err, errlen, "%s: cluster \"%s\" has no server", path, cl);
		return -1;
	}
	/* Lookups are HTTPS only (a bearer token never goes out in clear):
	 * say so now rather than fail every lookup later. */
	if (strncasecmp(server, "https://", 8) != 0) {
		snprintf(err, errlen, "%s: cluster \"%s\": server must be an https:// URL", path, cl);
		return -1;
	}
	c->server = dup_opt(server, &oom);
	for (n = c->server ? strlen(c->server) : 0; n > 0 && c->server[n - 1] == '/';)
		c->server[--n] = '\0';
	c->insecure = json_get_bool(cluster, "insecure-skip-tls-verify");
	c->namespace_ = dup_opt(json_get_string(ctx, "namespace"), &oom);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (data_or_file(path, cluster, "certificate-authority", &c->ca_pem, err, errlen) < 0)
		return -1;
	return user ? user_from_tree(path, us, user, c, err, errlen) : 0;
}

int kube_conn_from_kubeconfig(const char *path, struct kube_conn *c, char *err, size_t errlen)
{
	struct yaml_docs docs = { 0 };
	char yerr[256];
	size_t len = 0;
	char *buf = manifest_slurp(path, 4u << 20, &len, err, errlen);
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (!buf)
		return -1;
	if (yamljson_load(buf, len, &docs, yerr, sizeof(yerr)) < 0) {
		snprintf(err, errlen, "%s: %s", path, yerr);
		goto out;
	}
	if (docs.n != 1 || !cJSON_IsObject(docs.docs[0].root)) {
		snprintf(err, errlen, "%s: not a kubeconfig", path);
		goto out;
	}
	rc = conn_from_tree(path, docs.docs[0].root, c, err, errlen);
out:
	yamljson_free(&docs);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (rc < 0)
		kube_conn_free(c);
	return rc;
}

/* ---- the worker ---- */

const char *kube_token_current(struct kube_token *t, const struct kube_conn *conn)
{
	time_t now = time(NULL);
	char err[256];
	char *v;

	if (!conn->token_file)
		return conn->token;
	if (t->read_at == 0 || now - t->read_at >= (t->value ? TOKEN_REREAD_S : TOKEN_RETRY_S)) {
		t->read_at = now;
		v = read_small(conn->token_file, err, sizeof(err));
		if (v && !token_ok(v)) {
			snprintf(err, sizeof(err), "%s: token contains control characters",
				 conn->token_file);
			OPENSSL_cleanse(v, strlen(v));
			free(v);
			v = NULL;
		}
		if (v) {
			kube_token_free(t);
			t->value = v;
			t->read_at = now;
		} else {
			RG_LOG(LOG_WARN, "cannot read service-account token", LF_S("reason", err));
		}
	}
	return t->value ? t->value : conn->token;
}

void kube_token_free(struct kube_token *t)
{
	if (t->value)
		OPENSSL_cleanse(t->value, strlen(t->value));
	free(t->value);
	t->value = NULL;
}

/* A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most max bytes. */
static bool dns_label(const char *s, size_t n, size_t max)
{
	return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") >= n &&
	       s[0] != '-' && s[n - 1] != '-';
}

/* Object names are DNS-1123 subdomains: dot-separated labels, at most 253
 * bytes. Namespaces are single labels. Both go into the URL path, so
 * nothing else (no "..", no "/", no "%") may pass. */
static bool valid_name(const char *s)
{
	const char *dot;

	if (strlen(s) > NAME_MAX_LEN)
		return false;
	for (;;) {
		dot = strchr(s, '.');
		if (!dns_label(s, dot ? (size_t)(dot - s) : strlen(s), NAME_MAX_LEN))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

static bool valid_namespace(const char *s)
{
	return dns_label(s, strlen(s), 63);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	char *nb;

	if (x->len + n > BODY_MAX) {
		x->too_big = true;
		return 0;
	}
	nb = realloc(x->buf, x->len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + x->len, data, n);
	x->buf = nb;
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

static long remaining_ms(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 1 ? 1 : ms;
}

void kube_conn_set_tls(const struct kube_conn *conn, CURL *e)
{
	struct curl_blob blob;

	if (conn->ca_pem) {
		blob = (struct curl_blob){ conn->ca_pem, strlen(conn->ca_pem), CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (conn->cert_pem && conn->key_pem) {
		blob = (struct curl_blob){ conn->cert_pem, strlen(conn->cert_pem), CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		blob = (struct curl_blob){ conn->key_pem, strlen(conn->key_pem), CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (conn->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static const char *const kind_names[] = { "ConfigMap", "Secret", "Deployment" };

static int item_url(struct kube *k, const char *ns, const struct lookup_item *it, char *url,
		    size_t len)
{
	static const char *const group[] = { "/api/v1", "/api/v1", "/apis/apps/v1" };
	static const char *const resource[] = { "configmaps", "secrets", "deployments" };

	if (!ns || !it->name || !valid_namespace(ns) || !valid_name(it->name))
		return -1;
	if (snprintf(url, len, "%s%s/namespaces/%s/%s/%s", k->conn.server, group[it->kind], ns,
		     resource[it->kind], it->name) >= (int)len)
		return -1;
	return 0;
}

static void finish_item(struct lookup_item *it, enum lookup_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish_item(struct lookup_item *it, enum lookup_status st, const char *fmt, ...)
{
	va_list ap;

	it->status = st;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
		va_end(ap);
	}
	metrics_lookup(st == LOOKUP_FOUND ? LOOKUP_OK : st == LOOKUP_ABSENT ? LOOKUP_NOT_FOUND
									    : LOOKUP_FAILED);
}

static void pending_item_done(struct pending *p)
{
	if (--p->remaining == 0) {
		/* After this the batch belongs to the caller again. */
		p->done(p->arg);
		free(p);
	}
}

/* Frees the header list, wiping the Authorization line first. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

static void xfer_link(struct kube *k, struct xfer *x)
{
	x->prev = NULL;
	x->next = k->active;
	if (k->active)
		k->active->prev = x;
	k->active = x;
}

/* Releases a transfer whose item is finished, and counts the item done. */
static void xfer_release(struct kube *k, struct xfer *x)
{
	struct pending *p = x->p;

	if (x->prev)
		x->prev->next = x->next;
	else
		k->active = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_multi_remove_handle(k->multi, x->easy);
	curl_easy_cleanup(x->easy);
	free_headers(x->hdrs);
	if (x->buf) {
		OPENSSL_cleanse(x->buf, x->len);
		free(x->buf);
	}
	free(x);
	pending_item_done(p);
}

/* Starts one GET. Returns 0 when the item is under way or already finished
 * (an invalid name), -1 on OOM (the item is not finished). */
static int start_xfer(struct kube *k, struct pending *p, struct lookup_item *it)
{
	char url[1024], auth[8192];
	const char *tok;
	struct xfer *x;

	/* Names go into the URL path: anything but a DNS name could reach
	 * another endpoint. Nothing is sent for them. */
	if (item_url(k, p->b->namespace_, it, url, sizeof(url)) < 0) {
		finish_item(it, LOOKUP_ERROR, "invalid namespace or name");
		pending_item_done(p);
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->p = p;
	x->it = it;
	x->easy = curl_easy_init();
	x->hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!x->easy || !x->hdrs)
		goto fail;
	tok = kube_token_current(&k->token, &k->conn);
	if (tok && snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok) < (int)sizeof(auth)) {
		struct curl_slist *h = curl_slist_append(x->hdrs, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		if (!h)
			goto fail;
		x->hdrs = h;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, remaining_ms(&p->deadline));
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "rollgate/" ROLLGATE_VERSION);
	kube_conn_set_tls(&k->conn, x->easy);
	if (curl_multi_add_handle(k->multi, x->easy) != CURLM_OK)
		goto fail;
	xfer_link(k, x);
	return 0;
fail:
	if (x->easy)
		curl_easy_cleanup(x->easy);
	free_headers(x->hdrs);
	free(x);
	return -1;
}

/* A 200 answer: the object asked for, digested (ConfigMap, Secret) or kept
 * (Deployment). An object of another kind or name is a failed lookup, not
 * data to hash. */
static void parse_found(struct xfer *x)
{
	struct lookup_item *it = x->it;
	const char *kind, *name;
	cJSON *obj = NULL;
	char err[160], got[48];

	if (json_parse_strict(x->buf ? x->buf : "", x->len, &obj, err, sizeof(err)) < 0 ||
	    !cJSON_IsObject(obj)) {
		finish_item(it, LOOKUP_ERROR, "malformed answer from the API server");
		goto out;
	}
	kind = json_get_string(obj, "kind");
	name = json_get_string(json_get(obj, "metadata"), "name");
	if (!kind || strcmp(kind, kind_names[it->kind]) != 0) {
		log_clip(got, sizeof(got), kind ? kind : "(none)", 40);
		finish_item(it, LOOKUP_ERROR, "API server answered with kind %s, not %s", got,
			    kind_names[it->kind]);
		goto out;
	}
	if (!name || strcmp(name, it->name) != 0) {
		finish_item(it, LOOKUP_ERROR, "API server answered with another %s than the one asked for",
			    kind_names[it->kind]);
		goto out;
	}
	if (it->kind == SRC_DEPLOYMENT) {
		it->object = obj;
		obj = NULL;
		finish_item(it, LOOKUP_FOUND, NULL);
		goto out;
	}
	it->digest = calloc(1, sizeof(*it->digest));
	if (!it->digest) {
		finish_item(it, LOOKUP_ERROR, "out of memory");
	} else if (confighash_digest_object(obj, it->kind == SRC_SECRET ? OBJ_SECRET : OBJ_CONFIGMAP,
					    it->digest, err, sizeof(err)) < 0) {
		confighash_digest_free(it->digest);
		it->digest = NULL;
		finish_item(it, LOOKUP_ERROR, "malformed object: %s", err);
	} else {
		finish_item(it, LOOKUP_FOUND, NULL);
	}
out:
	if (obj && it->kind == SRC_SECRET)
		json_cleanse_tree(obj);
	cJSON_Delete(obj);
}

/* The API server's Status for a failed GET, parsed; NULL if there is none. */
static cJSON *status_body(const struct xfer *x)
{
	cJSON *st = NULL;
	char err[64];

	if (!x->buf || json_parse_strict(x->buf, x->len, &st, err, sizeof(err)) < 0)
		return NULL;
	if (!cJSON_IsObject(st) || !json_get_string(st, "kind") ||
	    strcmp(json_get_string(st, "kind"), "Status") != 0) {
		cJSON_Delete(st);
		return NULL;
	}
	return st;
}

/* A 404 means absent only when it is the API server's NotFound for this
 * very object: a 404 from a proxy or a wrong server URL would otherwise
 * read as "absent" and stamp a wrong hash. Anything else is a failure whose
 * reason carries the code and the Status message (which never holds object
 * values). */
static void status_reason(const struct xfer *x, long code)
{
	cJSON *st = status_body(x);
	const char *msg = json_get_string(st, "message"), *reason = json_get_string(st, "reason");
	const char *name = json_get_string(json_get(st, "details"), "name");
	char clipped[96];

	if (code == 404 && reason && strcmp(reason, "NotFound") == 0 && name &&
	    strcmp(name, x->it->name) == 0) {
		finish_item(x->it, LOOKUP_ABSENT, NULL);
	} else {
		log_clip(clipped, sizeof(clipped), msg ? msg : "", 90);
		finish_item(x->it, LOOKUP_ERROR, "HTTP %ld from the API server%s%s%s", code,
			    msg ? ": " : "", clipped, code == 404 && !msg ? " (not a Kubernetes Status)" : "");
	}
	cJSON_Delete(st);
}

static void end_xfer(struct kube *k, struct xfer *x, CURLcode res)
{
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OPERATION_TIMEDOUT)
		finish_item(x->it, LOOKUP_ERROR, "API lookup timed out");
	else if (x->too_big)
		finish_item(x->it, LOOKUP_ERROR, "API answer larger than %u bytes", BODY_MAX);
	else if (res != CURLE_OK)
		finish_item(x->it, LOOKUP_ERROR, "API request failed: %s", curl_easy_strerror(res));
	else if (code == 200)
		parse_found(x);
	else
		status_reason(x, code);
	xfer_release(k, x);
}

static struct pending *take_pending(struct kube *k)
{
	struct pending *q;

	pthread_mutex_lock(&k->lock);
	q = k->queue;
	k->queue = NULL;
	pthread_mutex_unlock(&k->lock);
	return q;
}

static void take_queue(struct kube *k)
{
	struct pending *q, *next;

	for (q = take_pending(k); q; q = next) {
		struct lookup_item *items = q->b->items;
		size_t n = q->b->n;
		next = q->next;
		/* Items may finish (and free q) while being started: read q
		 * before the loop, never inside it. */
		for (size_t i = 0; i < n; i++) {
			if (start_xfer(k, q, &items[i]) < 0) {
				finish_item(&items[i], LOOKUP_ERROR, "out of memory");
				pending_item_done(q);
			}
		}
	}
}

/* On destroy: every queued or running lookup ends as failed, and every
 * batch's done is called, once, before the worker exits. */
static void abort_all(struct kube *k)
{
	struct pending *q, *next;

	for (q = take_pending(k); q; q = next) {
		struct lookup_item *items = q->b->items;
		size_t n = q->b->n;
		next = q->next;
		for (size_t i = 0; i < n; i++) {
			finish_item(&items[i], LOOKUP_ERROR, "object source stopped");
			pending_item_done(q);
		}
	}
	while (k->active) {
		finish_item(k->active->it, LOOKUP_ERROR, "object source stopped");
		xfer_release(k, k->active);
	}
}

static void *worker(void *arg)
{
	struct kube *k = arg;
	CURLMsg *msg;
	int running, left;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&k->lock);
		stop = k->stop;
		pthread_mutex_unlock(&k->lock);
		if (stop)
			break;
		take_queue(k);
		curl_multi_perform(k->multi, &running);
		for (msg = curl_multi_info_read(k->multi, &left); msg;
		     msg = curl_multi_info_read(k->multi, &left)) {
			struct xfer *x = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			end_xfer(k, x, msg->data.result);
		}
		curl_multi_poll(k->multi, NULL, 0, 1000, NULL);
	}
	abort_all(k);
	return NULL;
}

static int kube_resolve(void *impl, struct lookup_batch *b, unsigned timeout_ms,
			lookup_done_fn done, void *arg)
{
	struct kube *k = impl;
	struct pending *p;

	if (b->n == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p) {
		for (size_t i = 0; i < b->n; i++)
			finish_item(&b->items[i], LOOKUP_ERROR, "out of memory");
		return 0;
	}
	p->b = b;
	p->done = done;
	p->arg = arg;
	p->remaining = b->n;
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
	p->deadline.tv_sec += timeout_ms / 1000;
	p->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (p->deadline.tv_nsec >= 1000000000L) {
		p->deadline.tv_sec++;
		p->deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	p->next = k->queue;
	k->queue = p;
	pthread_mutex_unlock(&k->lock);
	curl_multi_wakeup(k->multi);
	return 1;
}

/* Stops the worker, which first ends every lookup in flight (their batches'
 * done is called from it), then frees everything. */
static void kube_destroy(void *impl)
{
	struct kube *k = impl;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_mutex_unlock(&k->lock);
	curl_multi_wakeup(k->multi);
	pthread_join(k->thread, NULL);
	curl_multi_cleanup(k->multi);
	pthread_mutex_destroy(&k->lock);
	kube_conn_free(&k->conn);
	kube_token_free(&k->token);
	free(k);
}

static const struct objsource_ops kube_ops = { kube_resolve, NULL, kube_destroy };

struct objsource *kube_source_new(const char *kubeconfig, char *err, size_t errlen)
{
	struct kube *k = calloc(1, sizeof(*k));
	struct objsource *src = calloc(1, sizeof(*src));
	int rc;

	if (!k || !src) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = kubeconfig ? kube_conn_from_kubeconfig(kubeconfig, &k->conn, err, errlen)
			: kube_conn_in_cluster(&k->conn, err, errlen);
	if (rc < 0)
		goto fail;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	k->multi = curl_multi_init();
	if (!k->multi) {
		snprintf(err, errlen, "cannot initialise libcurl");
		goto fail;
	}
	curl_multi_setopt(k->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(k->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	pthread_mutex_init(&k->lock, NULL);
	if (pthread_create(&k->thread, NULL, worker, k) != 0) {
		snprintf(err, errlen, "cannot start the API worker thread");
		pthread_mutex_destroy(&k->lock);
		curl_multi_cleanup(k->multi);
		goto fail;
	}
	src->ops = &kube_ops;
	src->impl = k;
	src->name = "kubernetes";
	RG_LOG(LOG_INFO, "object source: Kubernetes API", LF_S("server", k->conn.server));
	return src;
fail:
	if (k)
		kube_conn_free(&k->conn);
	free(k);
	free(src);
	return NULL;
}
