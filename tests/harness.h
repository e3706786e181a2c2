#ifndef ROLLGATE_HARNESS_H
#define ROLLGATE_HARNESS_H

/*
 * Integration-test harness: fresh certificates, the real binary on
 * ephemeral ports, and libcurl clients that verify the server certificate.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>

#include "testutil.h"

struct rg_server {
	pid_t pid;
	unsigned port;
	unsigned metrics_port;
	char log[4200];
};

/* A temp directory with ca.crt, tls.crt, tls.key; returns 0 or -1. */
static inline int h_make_certs(char *dir, size_t len)
{
	char cmd[8400];

	snprintf(dir, len, "/tmp/rollgate-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/certs/make-dev-certs.sh %s --force 2>/dev/null", tu_root(),
		 dir);
	return system(cmd) == 0 ? 0 : -1;
}

static inline void h_rmrf(const char *dir)
{
	char cmd[4300];

	/* ROLLGATE_KEEP_TMP keeps logs and certificates for a post-mortem. */
	if (!dir || strncmp(dir, "/tmp/rollgate-test-", 19) != 0 || getenv("ROLLGATE_KEEP_TMP"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static inline const char *h_bin(void)
{
	const char *b = getenv("ROLLGATE_BIN");
	return b && *b ? b : NULL;
}

/* Reads an unsigned field `"key":N` from a JSON log line. */
static inline int h_field(const char *line, const char *key, unsigned *out)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (!p)
		return -1;
	*out = (unsigned)strtoul(p + strlen(pat), NULL, 10);
	return 0;
}

/*
 * Starts `rollgate serve ARGS... --listen 127.0.0.1:0 --metrics-listen
 * 127.0.0.1:0 --log-format json` with stderr to logdir/server.log and waits
 * (up to 20 s) for the "listening" line. argv is NULL-terminated extra args.
 */
static inline int h_start(struct rg_server *s, const char *logdir, const char *const *args)
{
	const char *argv[64];
	int n = 0, fd;
	FILE *f;
	char line[4096];

	memset(s, 0, sizeof(*s));
	if (!h_bin())
		return -1;
	snprintf(s->log, sizeof(s->log), "%s/server.log", logdir);
	argv[n++] = h_bin();
	argv[n++] = "serve";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--metrics-listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--log-format";
	argv[n++] = "json";
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	/* Truncate before forking, so a previous server's "listening" line is
	 * never read as this one's. */
	fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		fd = open(s->log, O_WRONLY | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int tries = 0; tries < 400; tries++) {
		int status;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		f = fopen(s->log, "r");
		while (f && fgets(line, sizeof(line), f)) {
			if (strstr(line, "\"msg\":\"listening\"") &&
			    h_field(line, "port", &s->port) == 0 &&
			    h_field(line, "metrics_port", &s->metrics_port) == 0) {
				fclose(f);
				return 0;
			}
		}
		if (f)
			fclose(f);
		usleep(50 * 1000);
	}
	return -1;
}

/* Sends sig and waits up to timeout_s; returns the exit status, or -1 when it
 * did not exit (then it is killed), or -2 when it died of a signal. */
static inline int h_stop(struct rg_server *s, int sig, int timeout_s)
{
	int status = 0;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, sig);
	for (int i = 0; i < timeout_s * 20; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
		}
		usleep(50 * 1000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	s->pid = 0;
	return -1;
}

/* Does the server log contain text? */
static inline bool h_log_has(const struct rg_server *s, const char *text)
{
	size_t len;
	char *buf = tu_read_file(s->log, &len);
	bool found = buf && strstr(buf, text);

	free(buf);
	return found;
}

/* How many lines of the server log contain text. */
static inline int h_log_count(const struct rg_server *s, const char *text)
{
	size_t len;
	char *buf = tu_read_file(s->log, &len);
	int n = 0;

	for (const char *p = buf; p && (p = strstr(p, text)) != NULL; p += strlen(text))
		n++;
	free(buf);
	return n;
}

struct h_resp {
	long status;
	char *body;
	size_t len;
	char headers[4096];
	CURLcode rc;
};

static inline size_t h_on_body(char *d, size_t sz, size_t n, void *arg)
{
	struct h_resp *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + r->len, d, sz * n);
	r->body = nb;
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

static inline size_t h_on_header(char *d, size_t sz, size_t n, void *arg)
{
	struct h_resp *r = arg;
	size_t have = strlen(r->headers), add = sz * n;

	if (have + add < sizeof(r->headers)) {
		memcpy(r->headers + have, d, add);
		r->headers[have + add] = '\0';
	}
	return sz * n;
}

/* A curl handle for https://127.0.0.1:port with CA verification. */
static inline CURL *h_curl(const char *certdir, unsigned port, const char *path, char *url,
			   size_t urllen)
{
	CURL *c = curl_easy_init();
	char ca[4200];

	snprintf(ca, sizeof(ca), "%s/ca.crt", certdir);
	snprintf(url, urllen, "https://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	return c;
}

static inline void h_perform(CURL *c, struct h_resp *r)
{
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
}

/* POSTs body with the given content type (NULL: application/json). */
static inline void h_post(const char *certdir, unsigned port, const char *path, const char *body,
			  size_t len, const char *ctype, struct h_resp *r)
{
	char url[256], hdr[256];
	CURL *c = h_curl(certdir, port, path, url, sizeof(url));
	struct curl_slist *h;

	snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype ? ctype : "application/json");
	h = curl_slist_append(NULL, hdr);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	h_perform(c, r);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static inline void h_get(const char *certdir, unsigned port, const char *path, struct h_resp *r)
{
	char url[256];
	CURL *c = h_curl(certdir, port, path, url, sizeof(url));

	h_perform(c, r);
	curl_easy_cleanup(c);
}

/* Plain HTTP GET (metrics listener). */
static inline void h_get_plain(unsigned port, const char *path, struct h_resp *r)
{
	char url[256];
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	h_perform(c, r);
	curl_easy_cleanup(c);
}

static inline void h_resp_free(struct h_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* A minimal valid AdmissionReview for a Deployment; caller frees. */
static inline char *h_review(const char *uid, const char *op, const char *object_json)
{
	size_t n = 600 + strlen(uid) + strlen(op) + strlen(object_json);
	char *s = malloc(n);

	if (s)
		snprintf(s, n,
			 "{\"apiVersion\":\"admission.k8s.io/"
			 "v1\",\"kind\":\"AdmissionReview\",\"request\":{"
			 "\"uid\":\"%s\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":"
			 "\"Deployment\"},"
			 "\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":"
			 "\"deployments\"},"
			 "\"name\":\"web\",\"namespace\":\"shop\",\"operation\":\"%s\","
			 "\"userInfo\":{\"username\":\"alice\"},\"object\":%s}}",
			 uid, op, object_json);
	return s;
}

#endif
