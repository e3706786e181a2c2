/*
 * libFuzzer: the request decoder and both review paths on arbitrary bodies.
 * Every 200 answer must carry warnings kube-apiserver keeps whole: valid
 * UTF-8 without control characters, none twice, at most 256 runes each and
 * 4096 in all.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "config.h"
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
