/*
 * The config hash, exactly as docs/confighash.md defines it.
 *
 * The hash is taken over a byte stream that names every referenced object
 * and the SHA-256 of each value it contributes. The stream is fed to the
 * digest piece by piece (a "sink"), never built in memory, except by
 * confighash_stream, which renders it for tests and documentation.
 */
#include "confighash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "dynbuf.h"
#include "jsonutil.h"
#include "optin.h"

#define CONFIGHASH_MAX_ENTRIES 65536
/* Decoded bytes buffered between EVP_DigestUpdate calls. */
#define B64_CHUNK 3072

/* Receives the stream. Returns 0, or -1 to stop. */
typedef int (*sink_fn)(void *ctx, const void *p, size_t n);

/* ---- per-value digests ----------------------------------------------- */

/* Go's StdEncoding alphabet; 0xff marks bytes outside it. */
static unsigned char b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned char)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return 0xff;
}

struct b64 {
	EVP_MD_CTX *md;
	unsigned char buf[B64_CHUNK];
	size_t n;
};

static int b64_flush(struct b64 *b)
{
	int ok = b->n == 0 || EVP_DigestUpdate(b->md, b->buf, b->n) == 1;

	b->n = 0;
	return ok ? 0 : -1;
}

/* Emits the first `bytes` (1..3) bytes of a decoded quantum. */
static int b64_emit(struct b64 *b, const unsigned char q[4], int bytes)
{
	uint32_t v = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | q[3];

	if (b->n + 3 > sizeof(b->buf) && b64_flush(b) < 0)
		return -1;
	b->buf[b->n++] = (unsigned char)(v >> 16);
	if (bytes > 1)
		b->buf[b->n++] = (unsigned char)(v >> 8);
	if (bytes > 2)
		b->buf[b->n++] = (unsigned char)v;
	return 0;
}

static size_t skip_newlines(const char *s, size_t i)
{
	while (s[i] == '\n' || s[i] == '\r')
		i++;
	return i;
}

/*
 * Decodes s into the digest exactly as Go's base64.StdEncoding.Decode does,
 * which is what kube-apiserver does with a []byte field: the standard
 * alphabet, padding required, '\r' and '\n' ignored anywhere, nothing but
 * newlines after the padding, and (StdEncoding is not Strict) non-zero
 * trailing bits accepted and dropped. Returns 0, -1 on invalid input, -2 on
 * a digest failure.
 */
static int b64_digest(struct b64 *b, const char *s)
{
	unsigned char q[4] = { 0 };
	size_t i = 0;
	int j = 0;

	for (;;) {
		unsigned char c = (unsigned char)s[i];
		unsigned char v;

		if (c == '\0')
			return j == 0 ? 0 : -1; /* a partial quantum needs padding */
		i++;
		if (c == '\n' || c == '\r')
			continue;
		v = b64_value(c);
		if (v != 0xff) {
			q[j++] = v;
			if (j == 4) {
				if (b64_emit(b, q, 3) < 0)
					return -2;
				j = 0;
			}
			continue;
		}
		if (c != '=' || j < 2)
			return -1;
		if (j == 2) { /* "xx==": the second '=' may follow newlines */
			i = skip_newlines(s, i);
			if (s[i] != '=')
				return -1;
			i++;
		}
		if (s[skip_newlines(s, i)] != '\0')
			return -1; /* bytes after the padding */
		q[j] = 0;
		q[3] = 0;
		return b64_emit(b, q, j - 1) < 0 ? -2 : 0;
	}
}

static int digest_bytes(const void *p, size_t n, unsigned char out[CONFIGHASH_DIGEST_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != CONFIGHASH_DIGEST_LEN)
		return -1;
	return 0;
}

/* Returns 0, -1 on invalid base64, -2 on a digest failure. */
static int digest_base64(const char *s, unsigned char out[CONFIGHASH_DIGEST_LEN])
{
	struct b64 *b = malloc(sizeof(*b));
	unsigned int len = 0;
	int rc = -2;

	if (!b)
		return -2;
	b->n = 0;
	b->md = EVP_MD_CTX_new();
	if (!b->md || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
		goto out;
	rc = b64_digest(b, s);
	if (rc < 0)
		goto out;
	rc = -2;
	if (b64_flush(b) < 0 || EVP_DigestFinal_ex(b->md, out, &len) != 1 ||
	    len != CONFIGHASH_DIGEST_LEN)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(b->md);
	free(b);
	return rc;
}

/* ---- digesting an object --------------------------------------------- */

struct collect {
	struct obj_digest *d;
	char *err;
	size_t errlen;
};

static bool has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

/* Adds one member: decoded when b64, else the string's UTF-8 bytes. Error
 * messages name the field and key, never the value. */
static int add_entry(struct collect *c, const char *field, const cJSON *m, bool b64)
{
	struct obj_entry *e = &c->d->entries[c->d->n];
	int rc;

	if (has_control(m->string)) {
		snprintf(c->err, c->errlen, "%s: a key contains a control character", field);
		return -1;
	}
	if (!cJSON_IsString(m)) {
		snprintf(c->err, c->errlen, "%s[\"%.128s\"]: expected a string", field, m->string);
		return -1;
	}
	if (b64)
		rc = digest_base64(m->valuestring, e->digest);
	else
		rc = digest_bytes(m->valuestring, strlen(m->valuestring), e->digest) < 0 ? -2 : 0;
	if (rc == -1) {
		snprintf(c->err, c->errlen, "%s[\"%.128s\"]: invalid base64", field, m->string);
		return -1;
	}
	e->key = rc == 0 ? strdup(m->string) : NULL;
	if (!e->key) {
		snprintf(c->err, c->errlen, "%s", rc == 0 ? "out of memory" : "SHA-256 failed");
		return -1;
	}
	c->d->n++;
	return 0;
}

static int add_members(struct collect *c, const cJSON *map, const char *field, bool b64,
		       const cJSON *other, const char *other_field)
{
	for (const cJSON *m = map ? map->child : NULL; m; m = m->next) {
		if (other && json_get(other, m->string)) {
			snprintf(c->err, c->errlen, "key \"%.128s\" is in both %s and %s", m->string,
				 other_field, field);
			return -1;
		}
		if (add_entry(c, field, m, b64) < 0)
			return -1;
	}
	return 0;
}

/* Absent or null is an empty map; anything but an object is an error. */
static int get_map(const cJSON *obj, const char *field, const cJSON **out, char *err, size_t errlen)
{
	const cJSON *v = json_get(obj, field);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v)) {
		snprintf(err, errlen, "%s: expected an object", field);
		return -1;
	}
	*out = v;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct obj_entry *)a)->key, ((const struct obj_entry *)b)->key);
}

/* Sorts bytewise and refuses a key seen twice (an object decoded without
 * json_parse_strict may carry duplicate members). */
static int sort_entries(struct obj_digest *d, char *err, size_t errlen)
{
	if (d->n > 1)
		qsort(d->entries, d->n, sizeof(*d->entries), entry_cmp);
	for (size_t i = 1; i < d->n; i++) {
		if (strcmp(d->entries[i - 1].key, d->entries[i].key) == 0) {
			snprintf(err, errlen, "duplicate key \"%.128s\"", d->entries[i].key);
			return -1;
		}
	}
	return 0;
}

static bool annotation_true(const cJSON *ann, const char *key)
{
	const char *v = json_get_string(ann, key);
	return v && strcmp(v, "true") == 0;
}

/* The object's own reload annotations, as Reloader reads them. */
static unsigned object_flags(const cJSON *obj)
{
	const cJSON *ann = json_get_path(obj, "metadata", "annotations", NULL);
	unsigned f = 0;

	if (annotation_true(ann, OPTIN_RELOADER_IGNORE))
		f |= OBJ_FLAG_IGNORE;
	if (annotation_true(ann, OPTIN_RELOADER_MATCH))
		f |= OBJ_FLAG_MATCH;
	return f;
}

int confighash_digest_object(const cJSON *obj, enum obj_kind kind, struct obj_digest *out, char *err,
			     size_t errlen)
{
	const cJSON *data = NULL, *bin = NULL;
	struct collect c = { .d = out, .err = err, .errlen = errlen };
	size_t total;

	out->entries = NULL;
	out->n = 0;
	out->flags = 0;
	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "%s: expected an object", refs_kind_name(kind));
		return -1;
	}
	out->flags = object_flags(obj);
	/* A Secret has no binaryData; stringData is write-only and never read. */
	if (get_map(obj, "data", &data, err, errlen) < 0 ||
	    (kind == OBJ_CONFIGMAP && get_map(obj, "binaryData", &bin, err, errlen) < 0))
		return -1;
	total = (size_t)(data ? cJSON_GetArraySize(data) : 0) +
		(size_t)(bin ? cJSON_GetArraySize(bin) : 0);
	if (total > CONFIGHASH_MAX_ENTRIES) {
		snprintf(err, errlen, "more than %d entries", CONFIGHASH_MAX_ENTRIES);
		return -1;
	}
	if (total == 0)
		return 0;
	out->entries = calloc(total, sizeof(*out->entries));
	if (!out->entries) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (add_members(&c, data, "data", kind == OBJ_SECRET, NULL, NULL) < 0 ||
	    add_members(&c, bin, "binaryData", true, data, "data") < 0 ||
	    sort_entries(out, err, errlen) < 0) {
		confighash_digest_clear(out);
		return -1;
	}
	return 0;
}

void confighash_digest_clear(struct obj_digest *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->entries[i].key);
	free(d->entries);
	d->entries = NULL;
	d->n = 0;
	d->flags = 0;
}

void confighash_digest_free(struct obj_digest *d)
{
	confighash_digest_clear(d);
	free(d);
}

struct obj_digest *confighash_digest_dup(const struct obj_digest *d)
{
	struct obj_digest *c;

	if (!d)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->flags = d->flags;
	if (d->n == 0)
		return c;
	c->entries = calloc(d->n, sizeof(*c->entries));
	if (!c->entries)
		goto fail;
	for (; c->n < d->n; c->n++) {
		c->entries[c->n].key = strdup(d->entries[c->n].key);
		if (!c->entries[c->n].key)
			goto fail;
		memcpy(c->entries[c->n].digest, d->entries[c->n].digest, CONFIGHASH_DIGEST_LEN);
	}
	return c;
fail:
	confighash_digest_free(c);
	return NULL;
}

/* ---- the stream ------------------------------------------------------ */

/* Writes a name or key and its newline. A newline inside would make the
 * stream ambiguous; such names are invalid in Kubernetes, so refuse. */
static int put_line(sink_fn sink, void *ctx, const char *s)
{
	size_t n = strlen(s);

	if (memchr(s, '\n', n))
		return -1;
	if (sink(ctx, s, n) < 0 || sink(ctx, "\n", 1) < 0)
		return -1;
	return 0;
}

static int put_hex(sink_fn sink, void *ctx, const unsigned char digest[CONFIGHASH_DIGEST_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char line[2 * CONFIGHASH_DIGEST_LEN + 1];

	for (size_t i = 0; i < CONFIGHASH_DIGEST_LEN; i++) {
		line[2 * i] = hex[digest[i] >> 4];
		line[2 * i + 1] = hex[digest[i] & 0xf];
	}
	line[2 * CONFIGHASH_DIGEST_LEN] = '\n';
	return sink(ctx, line, sizeof(line));
}

static int put_count(sink_fn sink, void *ctx, size_t n)
{
	char line[32];
	int len = snprintf(line, sizeof(line), "%zu\n", n);

	return sink(ctx, line, (size_t)len);
}

static const struct obj_entry *find_entry(const struct obj_digest *d, const char *key)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->entries[mid].key, key);
		if (c == 0)
			return &d->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Selected keys must be sorted, unique and newline-free whether or not the
 * object exists, so that a set's validity never depends on the cluster. */
static bool keys_valid(const struct ref *r)
{
	for (size_t i = 0; i < r->n_keys; i++) {
		if (strchr(r->keys[i], '\n') || (i > 0 && strcmp(r->keys[i - 1], r->keys[i]) >= 0))
			return false;
	}
	return true;
}

static bool entries_sorted(const struct obj_digest *d)
{
	for (size_t i = 1; i < d->n; i++) {
		if (strcmp(d->entries[i - 1].key, d->entries[i].key) >= 0)
			return false;
	}
	return true;
}

static int put_whole(sink_fn sink, void *ctx, const struct obj_digest *d)
{
	if (!entries_sorted(d) || put_count(sink, ctx, d->n) < 0)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		if (put_line(sink, ctx, d->entries[i].key) < 0 ||
		    put_hex(sink, ctx, d->entries[i].digest) < 0)
			return -1;
	}
	return 0;
}

static int put_selected(sink_fn sink, void *ctx, const struct ref *r, const struct obj_digest *d)
{
	if (!entries_sorted(d) || put_count(sink, ctx, r->n_keys) < 0)
		return -1;
	for (size_t i = 0; i < r->n_keys; i++) {
		const struct obj_entry *e = find_entry(d, r->keys[i]);

		if (put_line(sink, ctx, r->keys[i]) < 0)
			return -1;
		if (e ? put_hex(sink, ctx, e->digest) < 0 : sink(ctx, "-\n", 2) < 0)
			return -1;
	}
	return 0;
}

static int put_ref(sink_fn sink, void *ctx, const struct ref *r, const struct obj_digest *d)
{
	const char *kind = refs_kind_name(r->kind);

	if ((!r->whole && !keys_valid(r)) || sink(ctx, kind, strlen(kind)) < 0 ||
	    sink(ctx, "/", 1) < 0 || put_line(sink, ctx, r->name) < 0)
		return -1;
	if (!d)
		return sink(ctx, "-\n", 2);
	return r->whole ? put_whole(sink, ctx, d) : put_selected(sink, ctx, r, d);
}

/*
 * Feeds the whole stream to sink. Refuses (-1) a set that is not sorted and
 * unique, since its hash would depend on how it was built.
 */
static int emit_stream(const struct refset *set, const struct obj_digest *const *objs, sink_fn sink,
		       void *ctx)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct ref *r = &set->refs[i];

		if (i > 0 &&
		    (set->refs[i - 1].kind > r->kind ||
		     (set->refs[i - 1].kind == r->kind && strcmp(set->refs[i - 1].name, r->name) >= 0)))
			return -1;
		if (put_ref(sink, ctx, r, objs ? objs[i] : NULL) < 0)
			return -1;
	}
	return 0;
}

/* ---- the final hash -------------------------------------------------- */

/* SHA-256, or HMAC-SHA256 when a key is given, over streamed input. */
struct hasher {
	EVP_MD_CTX *md;
	EVP_MAC *mac;
	EVP_MAC_CTX *mctx;
};

static int hasher_init(struct hasher *h, const unsigned char *key, size_t keylen)
{
	static const unsigned char empty[1];
	OSSL_PARAM params[2];

	memset(h, 0, sizeof(*h));
	if (!key) {
		h->md = EVP_MD_CTX_new();
		return h->md && EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1 ? 0 : -1;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	h->mctx = h->mac ? EVP_MAC_CTX_new(h->mac) : NULL;
	/* EVP_MAC_init treats a NULL key as "keep the old key": pass a real
	 * pointer so an empty key is an empty key. */
	if (!h->mctx || EVP_MAC_init(h->mctx, keylen ? key : empty, keylen, params) != 1)
		return -1;
	return 0;
}

static int hasher_update(void *ctx, const void *p, size_t n)
{
	struct hasher *h = ctx;

	if (n == 0)
		return 0;
	if (h->md)
		return EVP_DigestUpdate(h->md, p, n) == 1 ? 0 : -1;
	return EVP_MAC_update(h->mctx, p, n) == 1 ? 0 : -1;
}

static int hasher_final(struct hasher *h, char out[CONFIGHASH_VALUE_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t len = 0;

	if (h->md) {
		if (EVP_DigestFinal_ex(h->md, d, &mdlen) != 1)
			return -1;
		len = mdlen;
	} else if (EVP_MAC_final(h->mctx, d, &len, sizeof(d)) != 1) {
		return -1;
	}
	if (len != CONFIGHASH_DIGEST_LEN)
		return -1;
	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < len; i++) {
		out[7 + 2 * i] = hex[d[i] >> 4];
		out[7 + 2 * i + 1] = hex[d[i] & 0xf];
	}
	out[7 + 2 * len] = '\0';
	return 0;
}

static void hasher_clear(struct hasher *h)
{
	EVP_MD_CTX_free(h->md);
	EVP_MAC_CTX_free(h->mctx);
	EVP_MAC_free(h->mac);
}

int confighash_compute(const struct refset *set, const struct obj_digest *const *objs,
		       const unsigned char *hmac_key, size_t hmac_key_len,
		       char out[CONFIGHASH_VALUE_LEN])
{
	struct hasher h;
	int rc = -1;

	out[0] = '\0';
	if (hasher_init(&h, hmac_key, hmac_key_len) < 0 ||
	    emit_stream(set, objs, hasher_update, &h) < 0 || hasher_final(&h, out) < 0)
		goto out;
	rc = 0;
out:
	hasher_clear(&h);
	if (rc < 0)
		out[0] = '\0';
	return rc;
}

int confighash_stream_value(const void *stream, size_t len, const unsigned char *hmac_key,
			    size_t hmac_key_len, char out[CONFIGHASH_VALUE_LEN])
{
	struct hasher h;
	int rc = -1;

	out[0] = '\0';
	if (hasher_init(&h, hmac_key, hmac_key_len) < 0 || hasher_update(&h, stream, len) < 0 ||
	    hasher_final(&h, out) < 0)
		goto out;
	rc = 0;
out:
	hasher_clear(&h);
	if (rc < 0)
		out[0] = '\0';
	return rc;
}

/* The sink of confighash_stream: a buffer capped at CONFIGHASH_STREAM_MAX. */
static int dynbuf_sink(void *ctx, const void *p, size_t n)
{
	return dynbuf_addn(ctx, p, n) == DYNBUF_OK ? 0 : -1;
}

int confighash_stream(const struct refset *set, const struct obj_digest *const *objs, char **out,
		      size_t *len)
{
	struct dynbuf b;

	dynbuf_init(&b, CONFIGHASH_STREAM_MAX);
	*len = 0;
	*out = NULL;
	if (emit_stream(set, objs, dynbuf_sink, &b) == 0)
		*out = dynbuf_take(&b, len);
	dynbuf_clear(&b);
	return *out ? 0 : -1;
}
