#ifndef ROLLGATE_JSONUTIL_H
#define ROLLGATE_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/* Deepest nesting accepted anywhere rollgate reads JSON or YAML. Kubernetes
 * objects (managedFields included) stay well below it. */
#define JSON_MAX_DEPTH 64

/*
 * Parses buf[0..len) strictly, the way kube-apiserver's Go decoder would read
 * it, so one body cannot mean two things: rejects invalid JSON, trailing
 * bytes, nesting deeper than JSON_MAX_DEPTH, duplicate object keys,
 * "\u0000" inside strings, "\u" escapes without four hex digits (which
 * cJSON would read as U+0000), raw control characters and bytes that are not
 * UTF-8 (so no string of the tree can carry a stray byte into a response or
 * a log line). buf[len] must be '\0'. On success *out is a new tree the
 * caller frees with cJSON_Delete. On failure returns -1 and writes a short
 * reason to err (at most a duplicate key's name, clipped, from the input).
 */
int json_parse_strict(const char *buf, size_t len, cJSON **out, char *err, size_t errlen);

/* Length (1 to 4) of the well-formed UTF-8 sequence at s, reading at most n
 * bytes; 0 when s starts an invalid one (a stray continuation byte, an
 * overlong form, a surrogate, past U+10FFFF, cut short) or n is 0. */
size_t json_utf8_seq(const unsigned char *s, size_t n);

/* Copies at most max bytes of untrusted s into out (outlen bytes, always
 * NUL-terminated) for an error message or a log line: invalid UTF-8 bytes
 * and control characters become '?', and a character is never cut. */
void json_clip_utf8(char *out, size_t outlen, const char *s, size_t max);

/* Returns -1 if any object in the tree has two members with the same name. */
int json_check_duplicates(const cJSON *node, char *err, size_t errlen);

/* Case-sensitive member lookup; NULL when obj is not an object or lacks key. */
/*
 * Whether a and b are the same JSON value: same type; numbers within
 * cJSON_Compare's tolerance; strings byte for byte; arrays element by
 * element; objects with the same member names (case-sensitive) and equal
 * values, in any order. Both trees must have unique keys (as
 * json_parse_strict leaves them). Each node is compared once, so the time
 * is bounded by the product of the trees' sizes, never exponential in
 * their depth as cJSON_Compare's is (it compares every object twice, once
 * from each side). NULL equals only NULL.
 */
bool json_equal(const cJSON *a, const cJSON *b);

const cJSON *json_get(const cJSON *obj, const char *key);
/* The member's string value, or NULL when absent or not a string. */
const char *json_get_string(const cJSON *obj, const char *key);
/* Follows a NULL-terminated list of member names. */
const cJSON *json_get_path(const cJSON *obj, ...);
/* Stores an integral number within +-2^53 in *out and returns 0; else -1. */
int json_get_int(const cJSON *obj, const char *key, long long *out);
int json_number_int(const cJSON *item, long long *out);
/* True when obj[key] is the boolean true. */
bool json_get_bool(const cJSON *obj, const char *key);

/*
 * A region: the cJSON nodes and strings of one request tree, carved from
 * 64 KiB chunks and released at once instead of one free() per node.
 * While a region is entered on a thread, every cJSON allocation of that
 * thread comes from it (past JSON_REGION_MAX bytes, from malloc); frees of
 * its memory are no-ops. A tree built in a region must be deleted with the
 * same region entered (json_region_delete does both).
 */
#define JSON_REGION_MAX (4u << 20)
struct json_region;
/* Installs the cJSON allocation hooks regions need, once per process; call
 * it before starting threads (json_region_new also does, as a fallback). */
void json_hooks_install(void);
/* Returns a new region, or NULL on OOM (callers then parse without one). */
struct json_region *json_region_new(void);
/* Makes r (may be NULL) the current thread's region; returns the previous. */
struct json_region *json_region_enter(struct json_region *r);
/* Deletes doc, built in r, and frees r; accepts NULLs. */
void json_region_delete(struct json_region *r, cJSON *doc);

/* Wipes every string value of a tree (one that held Secret values) before
 * it is freed. */
void json_cleanse_tree(cJSON *node);

/* cJSON_PrintUnformatted, but NULL-safe about allocation failure semantics:
 * returns a malloc'd string or NULL. */
char *json_print(const cJSON *item);

#endif
