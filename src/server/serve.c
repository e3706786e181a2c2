/*
 * `rollgate serve`: options, startup checks, the reload loop and graceful
 * shutdown. Signals are blocked before any library starts a thread and are
 * taken synchronously by the main thread, which also polls for certificate,
 * config and object file changes, and turns readiness on once the watch
 * cache has synced (or its sync timeout passed).
 *
 * With the Kubernetes API, lookups go through the watch cache (objcache),
 * which falls back to GETs (kube) for what it cannot answer, and the reload
 * controller (reloader) runs under leader election (lease). On SIGTERM the
 * controller stops and the lease is released before the server drains, so
 * another replica takes over at once.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "certstore.h"
#include "serve.h"
#include "config.h"
#include "kubesource.h"
#include "kwatch.h"
#include "lease.h"
#include "log.h"
#include "rgtime.h"
#include "manifest.h"
#include "metrics.h"
#include "objcache.h"
#include "objsource.h"
#include "reloader.h"
#include "reportctl.h"
#include "server.h"
#include "webhook.h"

#define RELOAD_INTERVAL_S 2
#define READY_POLL_MS 250

struct serve_opts {
	struct server_options srv;
	const char *tls_cert;
	const char *tls_key;
	const char *config;
	const char *objects;
	const char *kubeconfig;
	const char *lease_namespace;
	enum log_format log_format;
	enum log_level log_level;
	unsigned drain_ms;
	unsigned sync_timeout_s;
};

/* The Kubernetes API side: credentials, the watch cache, the controller. */
struct api {
	struct kube_conn conn;
	struct kube_client *client;
	struct objcache *cache;
	struct lease *lease;
	struct reloader *reloader;
	struct reportctl *reports;       /* reports.enabled */
	struct strlist watch_namespaces; /* as started: changes need a restart */
	char *watch_selector;
	/* reload: settings read at startup, as watch: */
	char *namespace_selector, *resource_selector;
	bool ignore_secrets, ignore_configmaps;
};

static void serve_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate serve [OPTIONS]\n\n"
		"Runs the admission webhook: POST /mutate and /validate, GET /healthz and /readyz\n"
		"over HTTPS; GET /metrics, /healthz and /readyz over plain HTTP.\n\n"
		"Options:\n"
		"  --listen HOST:PORT          HTTPS address (default 0.0.0.0:8443)\n"
		"  --tls-cert PATH             serving certificate chain, PEM\n"
		"                              (default /etc/rollgate/tls/tls.crt)\n"
		"  --tls-key PATH              its private key, PEM (default "
		"/etc/rollgate/tls/tls.key)\n"
		"  --metrics-listen HOST:PORT  metrics and probes, plain HTTP (default 0.0.0.0:9090)\n"
		"  --config PATH               YAML config (default: built-in defaults; an empty\n"
		"                              file is an error, {} means the defaults)\n"
		"  --objects DIR               read ConfigMaps, Secrets and Deployments from "
		"manifests\n"
		"                              in DIR instead of the Kubernetes API\n"
		"  --kubeconfig PATH           reach the Kubernetes API through this kubeconfig\n"
		"                              (default: in-cluster service account)\n"
		"  --lease-namespace NS        namespace of the reload controller's leader Lease\n"
		"                              when neither the service account nor the\n"
		"                              kubeconfig context names one\n"
		"  --log-format json|text      (default json)\n"
		"  --log-level debug|info|warn|error  (default info)\n"
		"  --max-body-bytes N          larger requests get 413 (default 8388608)\n"
		"  --max-connections N         concurrent HTTPS connections; past it a new one\n"
		"                              replaces the one waiting longest for its request,\n"
		"                              or is refused (default 1024)\n"
		"  --idle-timeout SECONDS      close idle connections after this (default 60)\n"
		"  --read-timeout SECONDS      a request's headers and body must arrive within\n"
		"                              this, however slowly they trickle (default 5)\n"
		"  --threads N                 worker threads (default: number of CPUs)\n"
		"  --drain-timeout SECONDS     on SIGTERM, keep open connections this long,\n"
		"                              answering what arrives on them (default 8)\n"
		"  --sync-timeout SECONDS      with the Kubernetes API, report ready once the watch\n"
		"                              cache has synced, or after this long with a warning\n"
		"                              (lookups use GETs until then; default 30)\n"
		"  -h, --help                  show this help\n\n"
		"Certificate, config and object files are re-read when they change.\n"
		"docs/limits.md describes the protections against slow and excess clients.\n"
		"With the Kubernetes API, ConfigMaps and Secrets are listed and watched into a\n"
		"digest-only cache (config key watch:), and the reload controller (config key\n"
		"reload:, on by default) rolls out opted-in workloads when a value they use\n"
		"changes; replicas elect one leader through the Lease \"" LEASE_NAME "\".\n"
		"With reports.enabled, that leader also keeps one PolicyReport per namespace\n"
		"current with what the rules say of the workloads (docs/reports.md).\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_serve(int argc, char **argv, struct serve_opts *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "metrics-listen", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'C' },
		{ "objects", required_argument, NULL, 'o' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "lease-namespace", required_argument, NULL, 'N' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "max-body-bytes", required_argument, NULL, 'b' },
		{ "max-connections", required_argument, NULL, 'n' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "read-timeout", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "drain-timeout", required_argument, NULL, 'd' },
		{ "sync-timeout", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int c, idx = 0;

	*o = (struct serve_opts){
		.srv = { "0.0.0.0:8443", "0.0.0.0:9090", 8u << 20, 1024, 60, 5, 0 },
		.tls_cert = "/etc/rollgate/tls/tls.crt",
		.tls_key = "/etc/rollgate/tls/tls.key",
		.log_format = LOG_FORMAT_JSON,
		.log_level = LOG_INFO,
		.drain_ms = 8000,
		.sync_timeout_s = 30,
	};
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		switch (c) {
		case 'l':
			o->srv.listen = optarg;
			break;
		case 'c':
			o->tls_cert = optarg;
			break;
		case 'k':
			o->tls_key = optarg;
			break;
		case 'm':
			o->srv.metrics_listen = optarg;
			break;
		case 'C':
			o->config = optarg;
			break;
		case 'o':
			o->objects = optarg;
			break;
		case 'K':
			o->kubeconfig = optarg;
			break;
		case 'N':
			o->lease_namespace = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				o->log_format = LOG_FORMAT_JSON;
			else if (strcmp(optarg, "text") == 0)
				o->log_format = LOG_FORMAT_TEXT;
			else
				goto bad;
			break;
		case 'L':
			if (log_level_parse(optarg, &o->log_level) < 0)
				goto bad;
			break;
		case 'b':
			if (parse_uint(optarg, 1ul << 30, &v) < 0 || v < 1024)
				goto bad;
			o->srv.max_body = v;
			break;
		case 'n':
			if (parse_uint(optarg, 65536, &v) < 0 || v < 1)
				goto bad;
			o->srv.conn_limit = (unsigned)v;
			break;
		case 'i':
			if (parse_uint(optarg, 3600, &v) < 0 || v < 1)
				goto bad;
			o->srv.idle_timeout = (unsigned)v;
			break;
		case 'r':
			if (parse_uint(optarg, 600, &v) < 0 || v < 1)
				goto bad;
			o->srv.read_timeout = (unsigned)v;
			break;
		case 't':
			if (parse_uint(optarg, 256, &v) < 0)
				goto bad;
			o->srv.threads = (unsigned)v;
			break;
		case 'd':
			if (parse_uint(optarg, 600, &v) < 0)
				goto bad;
			o->drain_ms = (unsigned)v * 1000;
			break;
		case 's':
			if (parse_uint(optarg, 3600, &v) < 0)
				goto bad;
			o->sync_timeout_s = (unsigned)v;
			break;
		case 'h':
			serve_usage(stdout);
			return 1;
		default:
			serve_usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rollgate serve: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (o->objects && o->kubeconfig) {
		fprintf(stderr, "rollgate serve: --objects and --kubeconfig exclude each other\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "rollgate serve: invalid value \"%s\" for --%s (see --help)\n", optarg,
		longopts[idx].name);
	return -1;
}

/* The config file as last seen, to notice changes by content (a mounted
 * ConfigMap changes through a symlink swap, not in place). */
struct config_watch {
	const char *path;
	char *seen;
	size_t seen_len;
	char *unreadable;          /* why the file could not be read last time */
	char *key_path;            /* stamp.hmacKeyFile of the config in force */
	unsigned char key_sha[32]; /* SHA-256 of that file: a rotated key reloads */
};

/* SHA-256 of a small file (the HMAC key), so its rotation is noticed
 * without keeping a second copy of the key. Zeroes when unreadable. */
static void file_fingerprint(const char *path, unsigned char out[32])
{
	char err[256];
	size_t len = 0;
	char *buf = manifest_slurp(path, 4096, &len, err, sizeof(err));

	memset(out, 0, 32);
	if (!buf)
		return;
	EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL);
	OPENSSL_cleanse(buf, len);
	free(buf);
}

static void remember_key(struct config_watch *w, const struct config *cfg)
{
	free(w->key_path);
	w->key_path = cfg->hmac_key_file ? strdup(cfg->hmac_key_file) : NULL;
	if (w->key_path)
		file_fingerprint(w->key_path, w->key_sha);
}

static bool key_changed(const struct config_watch *w)
{
	unsigned char now[32];

	if (!w->key_path)
		return false;
	file_fingerprint(w->key_path, now);
	return memcmp(now, w->key_sha, sizeof(now)) != 0;
}

static struct config *load_config(struct config_watch *w, char *err, size_t errlen)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	size_t len = 0;
	char *buf;

	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!w->path) {
		if (config_defaults(cfg) == 0)
			return cfg;
		free(cfg);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	buf = manifest_slurp(w->path, 1u << 20, &len, err, errlen);
	if (!buf) {
		free(cfg);
		return NULL;
	}
	free(w->seen);
	w->seen = buf;
	w->seen_len = len;
	if (config_load_buffer(w->path, buf, len, cfg, err, errlen) < 0) {
		free(cfg);
		return NULL;
	}
	remember_key(w, cfg);
	return cfg;
}

static bool same_string(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The settings read at startup only, reload's included. */
static bool same_scope(const struct api *api, const struct config *cfg)
{
	if (!same_string(api->watch_selector, cfg->watch_label_selector) ||
	    !same_string(api->namespace_selector, cfg->reload_namespace_selector) ||
	    !same_string(api->resource_selector, cfg->reload_resource_label_selector) ||
	    api->ignore_secrets != cfg->reload_ignore_secrets ||
	    api->ignore_configmaps != cfg->reload_ignore_configmaps ||
	    api->watch_namespaces.n != cfg->watch_namespaces.n)
		return false;
	for (size_t i = 0; i < cfg->watch_namespaces.n; i++)
		if (strcmp(api->watch_namespaces.v[i], cfg->watch_namespaces.v[i]) != 0)
			return false;
	return true;
}

/* A second copy of the config last read, for the reload controller (each
 * config value has one owner). NULL with err. */
static struct config *copy_config(const struct config_watch *w, char *err, size_t errlen)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	int rc;

	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc = w->path ? config_load_buffer(w->path, w->seen, w->seen_len, cfg, err, errlen)
		     : config_defaults(cfg);
	if (rc < 0) {
		if (!w->path)
			snprintf(err, errlen, "out of memory");
		free(cfg);
		return NULL;
	}
	return cfg;
}

/*
 * A reload that keeps the last good config: counted and logged once per
 * problem, not at every poll (the bytes of a bad file are remembered in
 * seen; an unreadable file's reason here).
 */
static void config_rejected(struct config_watch *w, const char *err, bool unreadable)
{
	if (unreadable) {
		if (w->unreadable && strcmp(w->unreadable, err) == 0)
			return;
		free(w->unreadable);
		w->unreadable = strdup(err);
	}
	metrics_reload(RELOAD_CONFIG, false);
	RG_LOG(LOG_ERROR, "config rejected; the last good config stays in force", LF_S("reason", err));
	/* Report a bad key file once, not at every poll. */
	if (w->key_path)
		file_fingerprint(w->key_path, w->key_sha);
}

static void reload_config(struct config_watch *w, struct webhook *wh, struct api *api)
{
	char err[512];
	size_t len = 0;
	char *buf;
	struct config *cfg;

	if (!w->path)
		return;
	buf = manifest_slurp(w->path, 1u << 20, &len, err, sizeof(err));
	if (!buf) {
		config_rejected(w, err, true);
		return;
	}
	free(w->unreadable);
	w->unreadable = NULL;
	if (w->seen && len == w->seen_len && memcmp(buf, w->seen, len) == 0 && !key_changed(w)) {
		free(buf);
		return;
	}
	free(buf);
	cfg = load_config(w, err, sizeof(err));
	if (!cfg) {
		config_rejected(w, err, false);
		return;
	}
	metrics_reload(RELOAD_CONFIG, true);
	if (api->cache && !same_scope(api, cfg))
		RG_LOG(LOG_WARN,
		       "watch: or reload: scope settings changed; they take effect on the next "
		       "restart",
		       LF_S("path", w->path));
	if (api->cache && cfg->reload_enabled != (api->reloader != NULL))
		RG_LOG(LOG_WARN, "reload.enabled changed; it takes effect on the next restart",
		       LF_S("path", w->path));
	if (api->cache && cfg->reports_enabled != (api->reports != NULL))
		RG_LOG(LOG_WARN, "reports.enabled changed; it takes effect on the next restart",
		       LF_S("path", w->path));
	webhook_set_config(wh, cfg);
	if (api->reloader) {
		struct config *copy = copy_config(w, err, sizeof(err));
		if (copy)
			reloader_set_config(api->reloader, copy);
		else
			RG_LOG(LOG_ERROR, "reload controller keeps its previous config",
			       LF_S("reason", err));
	}
	if (api->reports) {
		struct config *copy = copy_config(w, err, sizeof(err));
		if (copy)
			reportctl_set_config(api->reports, copy);
		else
			RG_LOG(LOG_ERROR, "report controller keeps its previous config",
			       LF_S("reason", err));
	}
	RG_LOG(LOG_INFO, "config reloaded", LF_S("path", w->path));
}

static void reload_cert(struct certstore *cs)
{
	char err[512];
	int r = certstore_reload(cs, err, sizeof(err));

	if (r == 0)
		return;
	metrics_reload(RELOAD_CERT, r > 0);
	if (r > 0) {
		metrics_cert_expiry(certstore_expiry(cs));
		RG_LOG(LOG_INFO, "serving certificate reloaded",
		       LF_D("not_after", certstore_expiry(cs)));
	} else {
		RG_LOG(LOG_ERROR, "new serving certificate rejected; the previous one stays in use",
		       LF_S("reason", err));
	}
}

static void reload_objects(struct objsource *src)
{
	char err[512];
	int r;

	if (!src)
		return;
	r = objsource_refresh(src, err, sizeof(err));
	if (r == 0)
		return;
	metrics_reload(RELOAD_OBJECTS, r > 0);
	if (r > 0)
		RG_LOG(LOG_INFO, "objects reloaded", LF_S("source", src->name));
	else
		RG_LOG(LOG_ERROR, "object files rejected; the previous objects stay in use",
		       LF_S("reason", err));
}

/* Stops patching and writing reports, then gives the Lease up so another
 * replica leads at once. */
static void api_stop_controller(struct api *api)
{
	reloader_stop(api->reloader);
	reportctl_stop(api->reports);
	lease_stop(api->lease, true);
}

/* Frees the controller; the object source it borrows is still alive. */
static void api_free_controller(struct api *api)
{
	api_stop_controller(api);
	reloader_free(api->reloader);
	reportctl_free(api->reports);
	lease_free(api->lease);
	api->reloader = NULL;
	api->reports = NULL;
	api->lease = NULL;
}

/*
 * The reload controller (reload.enabled) and the report controller
 * (reports.enabled), under one Lease: one leader for both. The Lease lives
 * in the pod's namespace (service account), else the kubeconfig context's,
 * else --lease-namespace.
 */
static int start_reports(struct api *api, const struct config_watch *cw, struct objsource *src,
			 char *err, size_t errlen)
{
	struct config *cfg = copy_config(cw, err, errlen);

	if (!cfg)
		return -1;
	api->reports = reportctl_new(api->client, src, api->lease, cfg, err, errlen);
	return api->reports ? reportctl_start(api->reports, err, errlen) : -1;
}

static int start_controller(const struct serve_opts *o, struct api *api, const struct config_watch *cw,
			    struct objsource *src, char *err, size_t errlen)
{
	struct lease_options lo;
	struct config *cfg;
	char identity[300];

	lease_default_options(&lo);
	lo.namespace_ = api->conn.namespace_ && *api->conn.namespace_ ? api->conn.namespace_
								      : o->lease_namespace;
	if (!lo.namespace_) {
		snprintf(err, errlen,
			 "the reload and report controllers need a namespace for their Lease: pass "
			 "--lease-namespace, or set reload.enabled and reports.enabled to false");
		return -1;
	}
	lease_make_identity(identity, sizeof(identity));
	lo.identity = identity;
	api->lease = lease_new(api->client, &lo, err, errlen);
	if (!api->lease || lease_start(api->lease, err, errlen) < 0)
		return -1;
	cfg = copy_config(cw, err, errlen);
	if (!cfg)
		return -1;
	if (cfg->reports_enabled && start_reports(api, cw, src, err, errlen) < 0) {
		config_clear(cfg);
		free(cfg);
		return -1;
	}
	if (!cfg->reload_enabled) {
		config_clear(cfg);
		free(cfg);
		return 0;
	}
	api->reloader = reloader_new(api->client, api->cache, src, api->lease, cfg, err, errlen);
	if (!api->reloader)
		return -1;
	return reloader_start(api->reloader, err, errlen);
}

static void api_close(struct api *api)
{
	api_free_controller(api);
	objcache_free(api->cache);
	kube_client_free(api->client);
	kube_conn_clear(&api->conn);
	strlist_clear(&api->watch_namespaces);
	free(api->watch_selector);
	free(api->namespace_selector);
	free(api->resource_selector);
	memset(api, 0, sizeof(*api));
}

/* *out = a copy of s (NULL stays NULL); -1 on OOM. */
static int dup_optional(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -1 : 0;
}

/*
 * The API source: GETs (kube) behind the watch cache. The cache starts
 * listing now; lookups use GETs until it has synced.
 */
static struct objsource *open_api(const struct serve_opts *o, const struct config *cfg,
				  struct api *api, char *err, size_t errlen)
{
	struct objsource *gets = kubesource_new(o->kubeconfig, err, errlen), *src;
	struct objcache_scope scope;
	int rc;

	if (!gets)
		return NULL;
	rc = o->kubeconfig ? kube_conn_from_kubeconfig(o->kubeconfig, &api->conn, err, errlen)
			   : kube_conn_in_cluster(&api->conn, err, errlen);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < cfg->watch_namespaces.n; i++)
		if (strlist_push(&api->watch_namespaces, cfg->watch_namespaces.v[i]) < 0)
			goto oom;
	if (dup_optional(cfg->watch_label_selector, &api->watch_selector) < 0 ||
	    dup_optional(cfg->reload_namespace_selector, &api->namespace_selector) < 0 ||
	    dup_optional(cfg->reload_resource_label_selector, &api->resource_selector) < 0)
		goto oom;
	api->ignore_secrets = cfg->reload_ignore_secrets;
	api->ignore_configmaps = cfg->reload_ignore_configmaps;
	api->client = kube_client_new(&api->conn, err, errlen);
	if (!api->client)
		goto fail;
	scope = (struct objcache_scope){ &cfg->watch_namespaces, cfg->watch_label_selector,
					 cfg->reload_resource_label_selector,
					 cfg->reload_ignore_configmaps, cfg->reload_ignore_secrets };
	api->cache = objcache_new_scoped(api->client, &scope, err, errlen);
	if (!api->cache || objcache_start(api->cache, err, errlen) < 0)
		goto fail;
	src = objsource_cached_new(api->cache, gets);
	if (!src)
		goto oom;
	return src;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	objsource_free(gets);
	api_close(api);
	return NULL;
}

static struct objsource *open_source(const struct serve_opts *o, const struct config *cfg,
				     struct api *api, char *err, size_t errlen)
{
	if (o->objects)
		return objsource_files_new(o->objects, err, errlen);
	if (o->kubeconfig || getenv("KUBERNETES_SERVICE_HOST"))
		return open_api(o, cfg, api, err, errlen);
	RG_LOG(LOG_WARN,
	       "no object source: not in a cluster and neither --objects nor "
	       "--kubeconfig given; workloads will not be stamped",
	       LF_END);
	return NULL;
}

static double mono_s(void)
{
	return (double)rgtime_now_ms() / 1000.0;
}

/* Readiness waits for the watch cache, but never forever: before its sync,
 * lookups fall back to GETs, which is slower but correct. */
struct readiness {
	struct server *srv;
	struct objcache *cache; /* NULL: ready at once */
	double since;
	unsigned timeout_s;
	bool ready;
};

static void check_ready(struct readiness *r)
{
	bool synced;

	if (r->ready)
		return;
	synced = !r->cache || objcache_synced(r->cache);
	if (!synced && mono_s() - r->since < r->timeout_s)
		return;
	if (!synced)
		RG_LOG(LOG_WARN,
		       "watch cache not synced within the sync timeout; ready anyway, "
		       "lookups use API GETs until it syncs",
		       LF_I("sync_timeout_s", r->timeout_s));
	r->ready = true;
	server_set_ready(r->srv, 1);
}

static int wait_loop(const sigset_t *sigs, struct certstore *cs, struct config_watch *cw,
		     struct webhook *wh, struct objsource *src, struct api *api, struct readiness *rd)
{
	double last = mono_s();
	siginfo_t info;

	for (;;) {
		struct timespec tick = { RELOAD_INTERVAL_S, 0 };
		int sig;
		if (!rd->ready)
			tick = (struct timespec){ 0, READY_POLL_MS * 1000000L };
		sig = sigtimedwait(sigs, &info, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			return sig;
		check_ready(rd);
		if (mono_s() - last < RELOAD_INTERVAL_S - 0.05)
			continue;
		last = mono_s();
		reload_cert(cs);
		reload_config(cw, wh, api);
		reload_objects(src);
	}
}

int serve_main(int argc, char **argv)
{
	struct serve_opts o;
	struct config_watch cw = { 0 };
	struct certstore *cs = NULL;
	struct objsource *src = NULL;
	struct api api;
	struct readiness rd;
	struct webhook *wh = NULL;
	struct server *srv = NULL;
	struct config *cfg = NULL;
	sigset_t sigs;
	char err[512];
	int rc = 2, sig;

	memset(&api, 0, sizeof(api));
	switch (parse_serve(argc, argv, &o)) {
	case 1:
		return 0;
	case -1:
		return 2;
	default:
		break;
	}
	/* Before any thread exists, so every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_setup(o.log_level, o.log_format);

	cw.path = o.config;
	cfg = load_config(&cw, err, sizeof(err));
	if (!cfg)
		goto fatal;
	cs = certstore_open(o.tls_cert, o.tls_key, err, sizeof(err));
	if (!cs)
		goto fatal;
	metrics_cert_expiry(certstore_expiry(cs));
	src = open_source(&o, cfg, &api, err, sizeof(err));
	if (!src && (o.objects || o.kubeconfig || getenv("KUBERNETES_SERVICE_HOST")))
		goto fatal;
	if (api.cache && (cfg->reload_enabled || cfg->reports_enabled) &&
	    start_controller(&o, &api, &cw, src, err, sizeof(err)) < 0)
		goto fatal;
	wh = webhook_new(cfg, src);
	if (!wh) {
		snprintf(err, sizeof(err), "out of memory");
		goto fatal;
	}
	srv = server_start(&o.srv, wh, err, sizeof(err));
	if (!srv)
		goto fatal;
	rd = (struct readiness){ srv, api.cache, mono_s(), o.sync_timeout_s, false };
	check_ready(&rd);
	RG_LOG(LOG_INFO, "listening", LF_S("version", ROLLGATE_VERSION), LF_S("addr", o.srv.listen),
	       LF_I("port", server_port(srv)), LF_I("metrics_port", server_metrics_port(srv)),
	       LF_S("objects", src ? src->name : "none"));

	sig = wait_loop(&sigs, cs, &cw, wh, src, &api, &rd);
	RG_LOG(LOG_INFO, "shutting down", LF_S("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
	api_stop_controller(&api);
	if (server_shutdown(srv, o.drain_ms) < 0) {
		/* The daemons still run and use the engine and the certificates:
		 * nothing may be freed under them. */
		RG_LOG(LOG_ERROR, "stopped without a clean drain", LF_END);
		_exit(1);
	}
	rc = 0;
	goto out;
fatal:
	if (!wh && cfg) {
		config_clear(cfg);
		free(cfg);
	}
	RG_LOG(LOG_ERROR, "cannot start", LF_S("reason", err));
	fprintf(stderr, "rollgate serve: %s\n", err);
out:
	webhook_free(wh);
	api_free_controller(&api); /* it borrows src */
	objsource_free(src);
	api_close(&api);
	certstore_close(cs);
	free(cw.seen);
	free(cw.key_path);
	free(cw.unreadable);
	if (rc == 0)
		RG_LOG(LOG_INFO, "stopped", LF_END);
	return rc;
}
