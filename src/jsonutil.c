/*
 * Strict JSON reading on top of cJSON, closing the gaps between cJSON and
 * Go's encoding/json that would let one body mean two things.
 */
#include "jsonutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One pass over the raw text: nesting depth outside strings, and "\u0000"
 * inside them. cJSON validates everything else. */
static int prescan(const char *buf, size_t len, char *err, size_t errlen)
{
	int depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (c == '\\') {
				if (i + 1 < len && buf[i + 1] == 'u' && i + 5 < len &&
				    memcmp(buf + i + 2, "0000", 4) == 0) {
					snprintf(err, errlen, "string contains \\u0000");
					return -1;
				}
				i++;
			} else if (c == '"') {
				in_str = false;
			} else if ((unsigned char)c < 0x20) {
				/* Go's decoder refuses raw control characters; so do we. */
				snprintf(err, errlen, "control character in a string at byte %zu", i);
				return -1;
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > JSON_MAX_DEPTH) {
				snprintf(err, errlen, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
				return -1;
			}
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_object_keys(const cJSON *obj, char *err, size_t errlen)
{
	const char *stackv[32];
	const char **names = stackv;
	size_t n = 0, i;
	const cJSON *c;
	int rc = -1;

	for (c = obj->child; c; c = c->next)
		n++;
	if (n < 2)
		return 0;
	if (n > sizeof(stackv) / sizeof(stackv[0])) {
		names = malloc(n * sizeof(*names));
		if (!names) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	i = 0;
	for (c = obj->child; c; c = c->next)
		names[i++] = c->string ? c->string : "";
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			snprintf(err, errlen, "duplicate key \"%.64s\"", names[i]);
			goto out;
		}
	}
	rc = 0;
out:
	if (names != stackv)
		free(names);
	return rc;
}

int json_check_duplicates(const cJSON *node, char *err, size_t errlen)
{
	if (!node)
		return 0;
	if (cJSON_IsObject(node) && check_object_keys(node, err, errlen) < 0)
		return -1;
	for (const cJSON *c = node->child; c; c = c->next) {
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
		    json_check_duplicates(c, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Numbers beyond a double's range become infinity in cJSON; Go refuses them. */
static int json_check_numbers(const cJSON *node, char *err, size_t errlen)
{
	for (const cJSON *c = node; c; c = c->next) {
		if (cJSON_IsNumber(c) && !isfinite(c->valuedouble)) {
			snprintf(err, errlen, "number out of range");
			return -1;
		}
		if (c->child && json_check_numbers(c->child, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int json_parse_strict(const char *buf, size_t len, cJSON **out, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *doc;

	*out = NULL;
	if (prescan(buf, len, err, errlen) < 0)
		return -1;
	/* len + 1 takes in the terminating NUL, so trailing bytes fail. */
	doc = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
	if (!doc) {
		size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
		snprintf(err, errlen, "invalid JSON at byte %zu", off);
		return -1;
	}
	if (json_check_numbers(doc, err, errlen) < 0 || json_check_duplicates(doc, err, errlen) < 0) {
		cJSON_Delete(doc);
		return -1;
	}
	*out = doc;
	return 0;
}

const cJSON *json_get(const cJSON *obj, const char *key)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *json_get_string(const cJSON *obj, const char *key)
{
	const cJSON *v = json_get(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *json_get_path(const cJSON *obj, ...)
{
	va_list ap;
	const char *k;

	va_start(ap, obj);
	while (obj && (k = va_arg(ap, const char *)) != NULL)
		obj = json_get(obj, k);
	va_end(ap);
	return obj;
}

int json_number_int(const cJSON *item, long long *out)
{
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	if (!isfinite(d) || d != floor(d) || d > 9007199254740992.0 || d < -9007199254740992.0)
		return -1;
	*out = (long long)d;
	return 0;
}

int json_get_int(const cJSON *obj, const char *key, long long *out)
{
	return json_number_int(json_get(obj, key), out);
}

bool json_get_bool(const cJSON *obj, const char *key)
{
	return cJSON_IsTrue(json_get(obj, key));
}

char *json_print(const cJSON *item)
{
	return cJSON_PrintUnformatted(item);
}
