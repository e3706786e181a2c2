/*
 * libFuzzer: the request decoder and both review paths on arbitrary bodies.
 * Every 200 answer must carry warnings kube-apiserver keeps whole: valid
 * UTF-8 without control characters, none twice, at most 256 runes each and
 * 4096 in all. The one-pass scanner (jsonscan) must accept exactly what
 * json_parse_strict accepts and build the same tree, and admission_decode's
 * tree must be the full one less the members it documents leaving out.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "config.h"
#include "jsonscan.h"
#include "jsonutil.h"
#include "log.h"
#include "objsource.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct webhook *wh;
static struct objsource *src;

static void never(void *arg)
{
	(void)arg;
	abort();
}

/* Runes of s, or SIZE_MAX when s is not what the API server keeps. */
static size_t warning_runes(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		int len = *p < 0x80           ? 1
			: (*p & 0xE0) == 0xC0 ? 2
			: (*p & 0xF0) == 0xE0 ? 3
			: (*p & 0xF8) == 0xF0 ? 4
					      : 0;
		if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7F)) ||
		    (len == 2 && p[0] == 0xC2 && p[1] < 0xA0))
			return SIZE_MAX;
		for (int i = 1; i < len; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return SIZE_MAX;
		}
		p += len;
		n++;
	}
	return n;
}

/* A 200 answer is always JSON kube-apiserver reads one way: the strict
 * parser's rules (no trailing bytes, no duplicate keys), on a NUL-terminated
 * copy of the body. */
static cJSON *parse_answer(const char *body, size_t len)
{
	char *buf = malloc(len + 1), err[128];
	cJSON *doc = NULL;

	if (!buf)
		abort();
	memcpy(buf, body, len);
	buf[len] = '\0';
	if (json_parse_strict(buf, len, &doc, err, sizeof(err)) < 0) {
		fprintf(stderr, "answer is not strict JSON (%s): %.300s\n", err, buf);
		abort();
	}
	free(buf);
	return doc;
}

static void check_warnings(const char *body, size_t len)
{
	cJSON *doc = parse_answer(body, len);
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "response"), "warnings");
	const cJSON *a, *b;
	size_t total = 0;

	cJSON_ArrayForEach(a, w) {
		size_t r = cJSON_IsString(a) ? warning_runes(a->valuestring) : SIZE_MAX;
		if (r == 0 || r > ADM_WARNING_MAX_RUNES) {
			fprintf(stderr, "warning the API server would drop or cut: %.300s\n", body);
			abort();
		}
		total += r;
		for (b = w->child; b != a; b = b->next) {
			if (strcmp(a->valuestring, b->valuestring) == 0)
				abort();
		}
	}
	if (total > ADM_WARNINGS_MAX_RUNES) {
		fprintf(stderr, "%zu runes of warnings\n", total);
		abort();
	}
	cJSON_Delete(doc);
}

static char *print_or_die(const cJSON *t)
{
	char *s = cJSON_PrintUnformatted(t);

	if (!s)
		abort();
	return s;
}

static void same_trees(const cJSON *a, const cJSON *b, const char *what, const char *body)
{
	char *x = print_or_die(a), *y = print_or_die(b);

	if (strcmp(x, y) != 0) {
		fprintf(stderr, "%s: trees differ\n %s\n %s\nbody: %.500s\n", what, x, y, body);
		abort();
	}
	free(x);
	free(y);
}

/* The full tree less what admission_decode leaves out (admission.c). */
static void prune_like_decoder(cJSON *doc, const char *kind)
{
	static const char *const objs[] = { "object", "oldObject" };
	cJSON *rq = cJSON_GetObjectItemCaseSensitive(doc, "request");

	for (int i = 0; i < 2 && cJSON_IsObject(rq); i++) {
		cJSON *o = cJSON_GetObjectItemCaseSensitive(rq, objs[i]), *tmpl, *spec;
		if (!cJSON_IsObject(o))
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(o, "status");
		cJSON_DeleteItemFromObjectCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(o, "metadata"), "managedFields");
		tmpl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spec"),
							"template");
		if (i == 0 || !cJSON_IsObject(tmpl))
			continue;
		spec = cJSON_DetachItemFromObjectCaseSensitive(tmpl, "spec");
		/* A ReplicaSet's is built after the scan, as the last member. */
		if (spec && strcmp(kind, "ReplicaSet") == 0)
			cJSON_AddItemToObject(tmpl, "spec", spec);
		else
			cJSON_Delete(spec);
	}
}

static void check_decoders(const char *body, size_t len)
{
	cJSON *ref = NULL, *scan = NULL;
	struct admission_request req;
	char e1[256], e2[256];
	int r1 = json_parse_strict(body, len, &ref, e1, sizeof(e1));
	int r2 = jsonscan_parse(body, len, NULL, NULL, &scan, e2, sizeof(e2));

	if (r1 != r2) {
		fprintf(stderr, "strict parser %s (%s), scanner %s (%s): %.500s\n",
			r1 ? "refuses" : "accepts", r1 ? e1 : "", r2 ? "refuses" : "accepts",
			r2 ? e2 : "", body);
		abort();
	}
	if (r1 == 0)
		same_trees(ref, scan, "jsonscan_parse", body);
	cJSON_Delete(scan);
	/* Names written with escapes are matched only by the full tree's
	 * lookups: leave such bodies to the checks above. */
	if (r1 == 0 && !memchr(body, '\\', len) &&
	    admission_decode(body, len, &req, e2, sizeof(e2)) == 0) {
		prune_like_decoder(ref, req.kind);
		same_trees(ref, req.doc, "admission_decode", body);
		admission_request_clear(&req);
	}
	cJSON_Delete(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!wh) {
		struct config *cfg = calloc(1, sizeof(*cfg));
		log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
		if (!cfg || config_defaults(cfg) < 0)
			abort();
		src = objsource_memory_new();
		wh = webhook_new(cfg, src);
	}
	{
		char *body = malloc(size + 1);
		if (!body)
			return 0;
		memcpy(body, data, size);
		body[size] = '\0';
		check_decoders(body, size);
		free(body);
	}
	for (int kind = 0; kind < 2; kind++) {
		char *body = malloc(size + 1);
		struct webhook_call *call;
		const char *out;
		size_t len;
		if (!body)
			return 0;
		memcpy(body, data, size);
		body[size] = '\0';
		call = webhook_call_new(wh, kind ? WEBHOOK_VALIDATE : WEBHOOK_MUTATE, body, size);
		if (call && webhook_call_run(call, never, NULL) != 0)
			abort();
		out = call ? webhook_call_body(call, &len) : NULL;
		if (out && webhook_call_status(call) == 200)
			check_warnings(out, len);
		webhook_call_free(call);
	}
	return 0;
}
