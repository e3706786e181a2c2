#ifndef ROLLGATE_YAML_INT_H
#define ROLLGATE_YAML_INT_H

/*
 * Private to the YAML module, whose public face is yamljson.h. It is split
 * by stage, as libyaml is: yaml_read.c (YAML events to cJSON, line
 * numbers), yaml_type.c (go-yaml v2's typing of plain scalars and
 * sigs.k8s.io/yaml's map key text) and yaml_emit.c (cJSON to block YAML).
 * This header holds what they share.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* What a plain scalar resolves to (go-yaml v2 resolve.go). */
enum rkind { RK_STR, RK_NULL, RK_BOOL, RK_INT, RK_UINT, RK_FLOAT, RK_NONFINITE };

struct rval {
	enum rkind kind;
	bool b;
	long long i;
	unsigned long long u;
	double d; /* RK_FLOAT, RK_NONFINITE */
};

/*
 * Types a plain, untagged scalar of len bytes (NUL-terminated at len) as
 * go-yaml v2's resolve() does; *v is overwritten. Timestamps stay strings,
 * as go-yaml leaves them when decoding into interface{}. Returns -1 only
 * when out of memory.
 */
int yamljson_resolve_plain(const char *s, size_t len, struct rval *v);

/* The JSON member name of a resolved mapping key (s, len: its text), as
 * sigs.k8s.io/yaml converts keys: malloc'd, NULL when out of memory. */
char *yamljson_key_text(const struct rval *v, const char *s, size_t len);

/* Key text of an aliased scalar node: its type is all that is left, so
 * integral numbers within 2^53 read as ints and others as floats.
 * malloc'd, NULL when out of memory. */
char *yamljson_key_from_node(const cJSON *n);

/* Decodes one UTF-8 sequence into *cp (always written) and returns its
 * length; 0 when invalid (YAML text must be Unicode). */
static inline int yamljson_utf8_next(const unsigned char *s, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF && (s[1] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (s[0] >= 0xE0 && s[0] <= 0xEF && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return (*cp < 0x800 || (*cp >= 0xD800 && *cp <= 0xDFFF)) ? 0 : 3;
	}
	if (s[0] >= 0xF0 && s[0] <= 0xF4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
	    (s[3] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
			((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return (*cp < 0x10000 || *cp > 0x10FFFF) ? 0 : 4;
	}
	*cp = 0;
	return 0;
}

#endif
