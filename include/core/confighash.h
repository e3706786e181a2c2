#ifndef ROLLGATE_CONFIGHASH_H
#define ROLLGATE_CONFIGHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "refs.h"

/*
 * The config hash (docs/confighash.md). Defined over per-value SHA-256
 * digests, so a cache that keeps only digests yields the same hash as one
 * that keeps values.
 */

#define CONFIGHASH_DIGEST_LEN 32
/* "sha256:" + 64 hex + NUL */
#define CONFIGHASH_VALUE_LEN 72

struct obj_entry {
	char *key;
	unsigned char digest[CONFIGHASH_DIGEST_LEN];
};

/* What rollgate knows of one ConfigMap or Secret: the digests of its values,
 * entries sorted bytewise by key. Never the values. */
/* Reload annotations of the object itself (docs/migrating.md). */
#define OBJ_FLAG_IGNORE 1u /* reloader.stakater.com/ignore: "true": never joins a hash */
#define OBJ_FLAG_MATCH 2u  /* reloader.stakater.com/match: "true": joins under search */

struct obj_digest {
	struct obj_entry *entries;
	size_t n;
	unsigned flags; /* OBJ_FLAG_* */
};

/*
 * Digests a ConfigMap (data as UTF-8 bytes, binaryData base64-decoded) or a
 * Secret (data base64-decoded; stringData ignored) given as its API JSON,
 * and sets flags from its metadata.annotations.
 * Returns 0, or -1 with err (names the key, never a value) on a malformed
 * object. out is the caller's (stack or heap); it is overwritten, and left
 * empty on failure. Limit: 65536 entries.
 */
int confighash_digest_object(const cJSON *obj, enum obj_kind kind, struct obj_digest *out, char *err,
			     size_t errlen);
/* Frees a malloc'd obj_digest (calloc'd for confighash_digest_object, or from
 * confighash_digest_dup) and its entries; accepts NULL. */
void confighash_digest_free(struct obj_digest *d);
/* Returns a malloc'd deep copy the caller frees with confighash_digest_free,
 * or NULL on OOM (or for NULL). */
struct obj_digest *confighash_digest_dup(const struct obj_digest *d);
/* Frees the entries of d but not d (one that lives on the stack or inside
 * another struct) and leaves it empty; accepts NULL. */
void confighash_digest_clear(struct obj_digest *d);

/*
 * Computes the annotation value for a finished refset. objs[i] describes
 * set->refs[i], NULL when that object does not exist (objs itself may be
 * NULL: nothing exists). With a non-NULL hmac_key (any length, 0 included)
 * the final step is HMAC-SHA256 instead of SHA-256. Writes "sha256:<64 hex>"
 * to out. Returns 0, or -1 (out set to "") on a crypto failure, a set or
 * key list not sorted and unique, unsorted entries, or a name or key with a
 * newline (the stream could not encode it unambiguously).
 */
int confighash_compute(const struct refset *set, const struct obj_digest *const *objs,
		       const unsigned char *hmac_key, size_t hmac_key_len,
		       char out[CONFIGHASH_VALUE_LEN]);

/* Largest stream confighash_stream renders. */
#define CONFIGHASH_STREAM_MAX (16u * 1024 * 1024)

/*
 * Renders the byte stream confighash_compute hashes (for tests, the test
 * vectors of docs/confighash.md and debugging; the webhook never needs it).
 * On success *out is a malloc'd, NUL-terminated buffer of *len bytes the
 * caller frees. Returns -1 as confighash_compute would, on OOM, or past
 * CONFIGHASH_STREAM_MAX.
 */
int confighash_stream(const struct refset *set, const struct obj_digest *const *objs, char **out,
		      size_t *len);

/* The final step alone: hashes a raw stream of len bytes into out, as
 * confighash_compute does. Returns 0 or -1 on a crypto failure. */
int confighash_stream_value(const void *stream, size_t len, const unsigned char *hmac_key,
			    size_t hmac_key_len, char out[CONFIGHASH_VALUE_LEN]);

#endif
