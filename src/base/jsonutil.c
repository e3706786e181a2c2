/*
 * Strict JSON reading on top of cJSON, closing the gaps between cJSON and
 * Go's encoding/json that would let one body mean two things.
 */
#include "jsonutil.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/*
 * "\u" escapes cJSON would turn into a NUL and so cut the string there
 * (one body meaning two things): "\u0000", and any "\u" not followed by
 * four hex digits, which cJSON 1.7.15 reads as U+0000 where Go refuses the
 * text. Only a backslash that is not itself escaped starts an escape.
 * memmem keeps this a fast scan; the rest of the checks walk the tree.
 */
static bool is_hex4(const char *h)
{
	for (int i = 0; i < 4; i++) {
		if (!strchr("0123456789abcdefABCDEF", h[i]) || !h[i])
			return false;
	}
	return true;
}

static int find_nul_escape(const char *buf, size_t len, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len, *hit;

	while ((hit = memmem(p, (size_t)(end - p), "\\u", 2)) != NULL) {
		size_t slashes = 0;
		for (const char *q = hit; q > buf && q[-1] == '\\'; q--)
			slashes++;
		p = hit + 1;
		if (slashes % 2 != 0)
			continue;
		if (end - hit < 6 || !is_hex4(hit + 2)) {
			snprintf(err, errlen, "invalid \\u escape at byte %zu", (size_t)(hit - buf));
			return -1;
		}
		if (memcmp(hit + 2, "0000", 4) == 0) {
			snprintf(err, errlen, "string contains \\u0000");
			return -1;
		}
	}
	return 0;
}

size_t json_utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		len = 2, cp = s[0] & 0x1F;
	else if ((s[0] & 0xF0) == 0xE0)
		len = 3, cp = s[0] & 0x0F;
	else if ((s[0] & 0xF8) == 0xF0)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

void json_clip_utf8(char *out, size_t outlen, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0;

	if (outlen == 0)
		return;
	while (i < n && o < max && o + 1 < outlen) {
		size_t len = json_utf8_seq(p + i, n - i);
		if (len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7F))) {
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + len > max || o + len + 1 > outlen)
			break;
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
}

/*
 * Raw control characters and bytes that are not UTF-8: Go refuses control
 * characters inside strings and anywhere but as whitespace outside, and
 * kube-apiserver only ever sends UTF-8; cJSON takes both, and would copy a
 * stray byte into every response or log line that quotes the string. One
 * table-driven pass, since it runs over every request body.
 */
static int scan_bytes(const char *buf, size_t len, char *err, size_t errlen)
{
	/* Bit 1: stops the scan inside a string; bit 2: outside one
	 * (where tab, newline and carriage return are whitespace); bit 4:
	 * not ASCII, anywhere. */
	static const unsigned char cls[256] = {
		[0 ... 8] = 3,     ['\t'] = 1, ['\n'] = 1, [11 ... 12] = 3,     ['\r'] = 1,
		[14 ... 0x1f] = 3, ['"'] = 3,  ['\\'] = 1, [0x80 ... 0xff] = 4,
	};
	const unsigned char *start = (const unsigned char *)buf, *p = start, *end = p + len;
	bool in_str = false;

	for (; p < end; p++) {
		unsigned char k = cls[*p];
		size_t seq;
		if (!(k & (in_str ? 5 : 6)))
			continue;
		if (*p == '"') {
			in_str = !in_str;
		} else if (*p == '\\') {
			p++; /* the escaped byte; cJSON validates escapes */
		} else if (k & 4) {
			seq = json_utf8_seq(p, (size_t)(end - p));
			if (seq == 0) {
				snprintf(err, errlen, "invalid UTF-8 at byte %zu",
					 (size_t)(p - start));
				return -1;
			}
			p += seq - 1;
		} else {
			snprintf(err, errlen, "control character at byte %zu", (size_t)(p - start));
			return -1;
		}
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The error names the key, clipped on a character boundary: it reaches
 * the response body and the log. */
static int duplicate_key(const char *name, char *err, size_t errlen)
{
	char clipped[65];

	json_clip_utf8(clipped, sizeof(clipped), name, 64);
	snprintf(err, errlen, "duplicate key \"%s\"", clipped);
	return -1;
}

/* Duplicate member names of one object: pairwise for the small objects
 * Kubernetes is made of, sorted for large ones. */
static int check_object_keys(const cJSON *obj, char *err, size_t errlen)
{
	const char **names;
	const cJSON *c, *d;
	size_t n = 0, i;
	int rc = -1;

	for (c = obj->child; c; c = c->next)
		n++;
	if (n <= 16) {
		for (c = obj->child; c; c = c->next) {
			for (d = c->next; d; d = d->next) {
				if (strcmp(c->string, d->string) == 0)
					return duplicate_key(c->string, err, errlen);
			}
		}
		return 0;
	}
	names = malloc(n * sizeof(*names));
	if (!names) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	i = 0;
	for (c = obj->child; c; c = c->next)
		names[i++] = c->string;
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			duplicate_key(names[i], err, errlen);
			goto out;
		}
	}
	rc = 0;
out:
	free(names);
	return rc;
}

/*
 * One walk over a parsed tree for what Go's decoder refuses and cJSON
 * accepts: nesting past JSON_MAX_DEPTH, duplicate keys, numbers beyond a
 * double's range.
 */
static int check_tree(const cJSON *node, int depth, char *err, size_t errlen)
{
	if (depth > JSON_MAX_DEPTH) {
		snprintf(err, errlen, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
		return -1;
	}
	if (cJSON_IsObject(node) && check_object_keys(node, err, errlen) < 0)
		return -1;
	for (const cJSON *c = node->child; c; c = c->next) {
		if (cJSON_IsNumber(c) && !isfinite(c->valuedouble)) {
			snprintf(err, errlen, "number out of range");
			return -1;
		}
		if (c->child && check_tree(c, depth + 1, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int json_check_duplicates(const cJSON *node, char *err, size_t errlen)
{
	if (!node)
		return 0;
	if (cJSON_IsObject(node) && check_object_keys(node, err, errlen) < 0)
		return -1;
	for (const cJSON *c = node->child; c; c = c->next) {
		if (c->child && json_check_duplicates(c, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int json_parse_strict(const char *buf, size_t len, cJSON **out, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *doc;

	*out = NULL;
	if (find_nul_escape(buf, len, err, errlen) < 0 || scan_bytes(buf, len, err, errlen) < 0)
		return -1;
	/* len + 1 takes in the terminating NUL, so trailing bytes fail. */
	doc = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
	if (!doc) {
		size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
		snprintf(err, errlen, "invalid JSON at byte %zu", off);
		return -1;
	}
	if (check_tree(doc, 1, err, errlen) < 0) {
		cJSON_Delete(doc);
		return -1;
	}
	*out = doc;
	return 0;
}

static bool numbers_equal(double a, double b)
{
	double max = fmax(fabs(a), fabs(b));

	return fabs(a - b) <= max * DBL_EPSILON;
}

bool json_equal(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if (!a || !b)
		return a == b;
	if ((a->type & 0xff) != (b->type & 0xff))
		return false;
	switch (a->type & 0xff) {
	case cJSON_False:
	case cJSON_True:
	case cJSON_NULL:
		return true;
	case cJSON_Number:
		return numbers_equal(a->valuedouble, b->valuedouble);
	case cJSON_String:
	case cJSON_Raw:
		if (!a->valuestring || !b->valuestring)
			return a->valuestring == b->valuestring;
		return strcmp(a->valuestring, b->valuestring) == 0;
	case cJSON_Array:
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
			if (!json_equal(x, y))
				return false;
		return !x && !y;
	case cJSON_Object:
		if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
			return false;
		/* Same count and unique keys: every member of a found equal in
		 * b means the reverse holds too. */
		cJSON_ArrayForEach(x, a) {
			if (!x->string || !json_equal(x, json_get(b, x->string)))
				return false;
		}
		return true;
	default:
		return false;
	}
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

void json_cleanse_tree(cJSON *n)
{
	for (; n; n = n->next) {
		if (n->valuestring)
			OPENSSL_cleanse(n->valuestring, strlen(n->valuestring));
		json_cleanse_tree(n->child);
	}
}

char *json_print(const cJSON *item)
{
	return cJSON_PrintUnformatted(item);
}

/* ---- regions ---------------------------------------------------------- */

#define REGION_CHUNK (64u * 1024)

struct region_chunk {
	struct region_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct json_region {
	struct region_chunk *chunks; /* newest first */
	size_t total;
	bool overflowed; /* some allocation came from malloc */
};

static _Thread_local struct json_region *active;
/* One chunk kept per thread between requests, freed when the thread ends. */
static pthread_key_t spare_key;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static bool region_owns(const struct json_region *r, const void *p)
{
	uintptr_t a = (uintptr_t)p;

	for (const struct region_chunk *c = r->chunks; c; c = c->next)
		if (a >= (uintptr_t)c->data && a < (uintptr_t)c->data + c->cap)
			return true;
	return false;
}

static struct region_chunk *chunk_new(void)
{
	struct region_chunk *c = pthread_getspecific(spare_key);

	if (c) {
		pthread_setspecific(spare_key, NULL);
	} else {
		c = malloc(sizeof(*c) + REGION_CHUNK);
		if (!c)
			return NULL;
		c->cap = REGION_CHUNK;
	}
	c->next = NULL;
	c->used = 0;
	return c;
}

static void *region_alloc(struct json_region *r, size_t n)
{
	struct region_chunk *c = r->chunks;
	size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	void *p;

	if (need > REGION_CHUNK / 4 || r->total + need > JSON_REGION_MAX)
		return NULL;
	if (!c || c->cap - c->used < need) {
		c = chunk_new();
		if (!c)
			return NULL;
		c->next = r->chunks;
		r->chunks = c;
	}
	p = (char *)c->data + c->used;
	c->used += need;
	r->total += need;
	return p;
}

static void *hook_malloc(size_t n)
{
	struct json_region *r = active;
	void *p;

	if (r) {
		p = region_alloc(r, n);
		if (p)
			return p;
		r->overflowed = true;
	}
	return malloc(n);
}

static void hook_free(void *p)
{
	struct json_region *r = active;

	if (p && r && region_owns(r, p))
		return;
	free(p);
}

static void install_hooks(void)
{
	cJSON_Hooks h = { hook_malloc, hook_free };

	if (pthread_key_create(&spare_key, free) != 0)
		abort();
	cJSON_InitHooks(&h);
}

void json_hooks_install(void)
{
	pthread_once(&hooks_once, install_hooks);
}

struct json_region *json_region_new(void)
{
	json_hooks_install();
	return calloc(1, sizeof(struct json_region));
}

struct json_region *json_region_enter(struct json_region *r)
{
	struct json_region *prev = active;

	active = r;
	return prev;
}

void json_region_delete(struct json_region *r, cJSON *doc)
{
	struct json_region *prev;
	struct region_chunk *c, *next;

	if (!r) {
		cJSON_Delete(doc);
		return;
	}
	/* Nodes that came from malloc need the walk; region ones are no-ops. */
	if (r->overflowed) {
		prev = json_region_enter(r);
		cJSON_Delete(doc);
		json_region_enter(prev);
	}
	for (c = r->chunks; c; c = next) {
		next = c->next;
		if (c->cap == REGION_CHUNK && !pthread_getspecific(spare_key) &&
		    pthread_setspecific(spare_key, c) == 0)
			continue;
		free(c);
	}
	free(r);
}
