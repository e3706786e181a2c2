/*
 * Where the Kubernetes API is and how rollgate proves who it is: a
 * kubeconfig's current context or the in-cluster service account, a bearer
 * token that follows its rotating file, and the TLS material a curl handle
 * needs. Nothing here talks to the network; kubeclient does, on top.
 * Private keys and tokens are wiped before they are freed.
 */
#include "kubeconn.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "jsonutil.h"
#include "log.h"
#include "manifest.h"
#include "yamljson.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_REREAD_S 60
#define TOKEN_RETRY_S 5

void kube_conn_clear(struct kube_conn *c)
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

/* A credential file (token, client key, certificate, CA, namespace): at
 * most 1 MiB, read with every copy on the way wiped, since tokens and keys
 * come this way. The caller wipes a token or key before freeing it. */
static char *read_small(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *s = manifest_slurp_secret(path, 1u << 20, &len, err, errlen);

	/* Tokens and namespaces come with a trailing newline at times. */
	while (s && len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		s[--len] = '\0';
	return s;
}

int kube_conn_in_cluster(struct kube_conn *c, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"),
		   *port = getenv("KUBERNETES_SERVICE_PORT");
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
		kube_conn_clear(c);
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
		OPENSSL_cleanse(out, n / 4 * 3 + 1); /* part of a key, perhaps */
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
static int data_or_file(const char *kcpath, const cJSON *obj, const char *field, char **out, char *err,
			size_t errlen)
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
	const char *tok = json_get_string(user, "token"),
		   *tokfile = json_get_string(user, "tokenFile");
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
		snprintf(err, errlen,
			 "%s: user \"%s\": a client certificate needs both %s and its key", path, us,
			 c->cert_pem ? "client-certificate" : "client-key");
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

/* Finds the context (the current one when want is NULL), its cluster and
 * its user; errors say which is missing. */
static int conn_from_tree(const char *path, const cJSON *root, const char *want, struct kube_conn *c,
			  char *err, size_t errlen)
{
	const char *ctxname = want ? want : json_get_string(root, "current-context"), *cl, *us,
		   *server;
	const cJSON *ctx, *cluster, *user = NULL;
	bool oom = false;
	size_t n;

	if (!ctxname || !*ctxname) {
		snprintf(err, errlen, "%s: current-context is not set", path);
		return -1;
	}
	ctx = named(root, "contexts", ctxname, "context");
	if (!cJSON_IsObject(ctx)) {
		snprintf(err, errlen, "%s: %scontext \"%s\" is not among the contexts", path,
			 want ? "" : "current-", ctxname);
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

/* Frees a kubeconfig's documents, wiping their strings first: they may
 * hold client keys and tokens. */
static void kubeconfig_clear(struct yaml_docs *docs)
{
	for (size_t i = 0; i < docs->n; i++)
		json_cleanse_tree(docs->docs[i].root);
	yamljson_clear(docs);
}

int kube_conn_from_kubeconfig(const char *path, struct kube_conn *c, char *err, size_t errlen)
{
	return kube_conn_from_kubeconfig_context(path, NULL, c, err, errlen);
}

int kube_conn_from_kubeconfig_context(const char *path, const char *context, struct kube_conn *c,
				      char *err, size_t errlen)
{
	struct yaml_docs docs = { 0 };
	char yerr[256];
	size_t len = 0;
	/* It may hold tokens and keys: read it as a secret, wipe it after. */
	char *buf = manifest_slurp_secret(path, 4u << 20, &len, err, errlen);
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
	rc = conn_from_tree(path, docs.docs[0].root, context, c, err, errlen);
out:
	kubeconfig_clear(&docs);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (rc < 0)
		kube_conn_clear(c);
	return rc;
}

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
			kube_token_clear(t);
			t->value = v;
			t->read_at = now;
		} else {
			RG_LOG(LOG_WARN, "cannot read service-account token", LF_S("reason", err));
		}
	}
	return t->value ? t->value : conn->token;
}

void kube_token_clear(struct kube_token *t)
{
	if (t->value)
		OPENSSL_cleanse(t->value, strlen(t->value));
	free(t->value);
	t->value = NULL;
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

int kube_conn_open(const char *kubeconfig, struct kube_conn *c, char *err, size_t errlen)
{
	return kubeconfig ? kube_conn_from_kubeconfig(kubeconfig, c, err, errlen)
			  : kube_conn_in_cluster(c, err, errlen);
}
