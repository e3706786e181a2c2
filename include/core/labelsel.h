#ifndef ROLLGATE_LABELSEL_H
#define ROLLGATE_LABELSEL_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * Kubernetes label selectors in their string form (the labelSelector query
 * parameter, Reloader's --namespace-selector): requirements joined by
 * commas, all of which must hold.
 *
 *   k=v  k==v  k!=v  k in (a,b)  k notin (a,b)  k  !k  k>3  k<3
 *
 * Keys are [prefix/]name (name up to 63 characters of [A-Za-z0-9-_.],
 * alphanumeric at both ends; prefix a DNS subdomain up to 253), values up
 * to 63 characters of the same set (or empty). Pure.
 *
 * Limits: 4096 bytes of text, 64 requirements, 64 values per set.
 */

struct labelsel;

#define LABELSEL_TEXT_MAX 4096
#define LABELSEL_REQS_MAX 64
#define LABELSEL_VALUES_MAX 64

/*
 * Parses text ("" or only spaces: matches every object) into *out, a
 * malloc'd selector the caller frees with labelsel_free. Returns 0, or -1
 * with err naming the problem and its byte offset, e.g.
 * "at 4: expected a value after '='". *out is NULL on failure.
 */
int labelsel_parse(const char *text, struct labelsel **out, char *err, size_t errlen);

/* Whether labels (a metadata.labels object of string values; NULL: none)
 * satisfy every requirement of s. */
bool labelsel_matches(const struct labelsel *s, const cJSON *labels);

/* Frees s; accepts NULL. */
void labelsel_free(struct labelsel *s);

#endif
