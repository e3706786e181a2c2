/*
 * go-yaml v2's typing of plain scalars (resolve.go), the way Kubernetes'
 * YAML reader types them, and sigs.k8s.io/yaml's text for map keys of
 * every type. Pure: strings in, values out.
 */
#include "yaml_int.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

/* ---- plain scalar resolution (go-yaml v2 resolve.go) ------------------- */

static const struct {
	const char *word;
	enum rkind kind;
	int v; /* bool value, or sign of an infinity (0: NaN) */
} resolve_words[] = {
	{ "y", RK_BOOL, 1 },           { "Y", RK_BOOL, 1 },           { "yes", RK_BOOL, 1 },
	{ "Yes", RK_BOOL, 1 },         { "YES", RK_BOOL, 1 },         { "true", RK_BOOL, 1 },
	{ "True", RK_BOOL, 1 },        { "TRUE", RK_BOOL, 1 },        { "on", RK_BOOL, 1 },
	{ "On", RK_BOOL, 1 },          { "ON", RK_BOOL, 1 },          { "n", RK_BOOL, 0 },
	{ "N", RK_BOOL, 0 },           { "no", RK_BOOL, 0 },          { "No", RK_BOOL, 0 },
	{ "NO", RK_BOOL, 0 },          { "false", RK_BOOL, 0 },       { "False", RK_BOOL, 0 },
	{ "FALSE", RK_BOOL, 0 },       { "off", RK_BOOL, 0 },         { "Off", RK_BOOL, 0 },
	{ "OFF", RK_BOOL, 0 },         { "~", RK_NULL, 0 },           { "null", RK_NULL, 0 },
	{ "Null", RK_NULL, 0 },        { "NULL", RK_NULL, 0 },        { ".nan", RK_NONFINITE, 0 },
	{ ".NaN", RK_NONFINITE, 0 },   { ".NAN", RK_NONFINITE, 0 },   { ".inf", RK_NONFINITE, 1 },
	{ ".Inf", RK_NONFINITE, 1 },   { ".INF", RK_NONFINITE, 1 },   { "+.inf", RK_NONFINITE, 1 },
	{ "+.Inf", RK_NONFINITE, 1 },  { "+.INF", RK_NONFINITE, 1 },  { "-.inf", RK_NONFINITE, -1 },
	{ "-.Inf", RK_NONFINITE, -1 }, { "-.INF", RK_NONFINITE, -1 },
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* go-yaml's resolve_table: which first bytes may start a non-string. */
static char resolve_hint(char c)
{
	if (c == '+' || c == '-')
		return 'S';
	if (is_digit(c))
		return 'D';
	if (c && strchr("yYnNtTfFoO~", c))
		return 'M';
	return c == '.' ? '.' : 0;
}

static bool lookup_word(const char *s, struct rval *v)
{
	for (size_t k = 0; k < sizeof(resolve_words) / sizeof(resolve_words[0]); k++) {
		if (resolve_words[k].word[0] != s[0] || strcmp(resolve_words[k].word, s) != 0)
			continue;
		v->kind = resolve_words[k].kind;
		v->b = resolve_words[k].v != 0;
		if (v->kind == RK_NONFINITE)
			v->d = resolve_words[k].v ? resolve_words[k].v * HUGE_VAL : NAN;
		return true;
	}
	return false;
}

static int digit_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

/* Go's strconv.ParseUint(s, 0, 64): 0x, 0o, 0b and leading-0 octal. */
static int parse_uint_go(const char *s, unsigned long long *out)
{
	unsigned base = 10;
	unsigned long long v = 0;

	if (!*s)
		return -1;
	if (s[0] == '0' && s[1]) {
		char c = (char)(s[1] | 0x20);
		base = c == 'x' ? 16 : c == 'b' ? 2 : 8;
		s += (c == 'x' || c == 'o' || c == 'b') ? 2 : 1;
		if (!*s)
			return -1;
	}
	for (; *s; s++) {
		unsigned d = (unsigned)digit_value(*s);
		if (d >= base || v > (ULLONG_MAX - d) / base)
			return -1;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* Go's strconv.ParseInt(s, 0, 64): an optional sign, then ParseUint. */
static int parse_int_go(const char *s, long long *out)
{
	bool neg = *s == '-';
	unsigned long long u;

	if (*s == '+' || *s == '-')
		s++;
	if (parse_uint_go(s, &u) < 0)
		return -1;
	if (u > (unsigned long long)LLONG_MAX + (neg ? 1 : 0))
		return -1;
	*out = neg ? (long long)(0 - u) : (long long)u;
	return 0;
}

/* go-yaml's yamlStyleFloat: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static bool yaml_style_float(const char *p)
{
	if (*p == '+' || *p == '-')
		p++;
	if (*p == '.') {
		if (!is_digit(*++p))
			return false;
		while (is_digit(*p))
			p++;
	} else {
		if (!is_digit(*p))
			return false;
		while (is_digit(*p))
			p++;
		if (*p == '.')
			while (is_digit(*++p))
				;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return false;
		while (is_digit(*p))
			p++;
	}
	return *p == '\0';
}

/* Copies s without '_'. strict: Go's ParseFloat rule that each '_' sits
 * between two digits; otherwise go-yaml's blanket strings.Replace. */
static int strip_underscores(const char *s, size_t len, char *out, bool strict)
{
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '_') {
			out[j++] = s[i];
			continue;
		}
		if (strict && !(i > 0 && is_digit(s[i - 1]) && i + 1 < len && is_digit(s[i + 1])))
			return -1;
	}
	out[j] = '\0';
	return 0;
}

/* Whether s can be a number at all: anything else stays a string cheaply. */
static bool numberish(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      c == '.' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* Finite floats only: Go's ParseFloat fails on overflow, and go-yaml then
 * keeps the text as a string. */
static void resolve_float(const char *p, struct rval *v)
{
	double d = strtod(p, NULL);

	if (isfinite(d)) {
		v->kind = RK_FLOAT;
		v->d = d;
	}
}

/* Hint 'D'/'S': ints (with go-yaml's '_' removal), then yamlStyleFloat. */
static void resolve_number(const char *p, struct rval *v)
{
	if (parse_int_go(p, &v->i) == 0)
		v->kind = RK_INT;
	else if (parse_uint_go(p, &v->u) == 0)
		v->kind = RK_UINT;
	else if (yaml_style_float(p))
		resolve_float(p, v);
}

int yamljson_resolve_plain(const char *s, size_t len, struct rval *v)
{
	char stackbuf[64];
	char *buf = stackbuf;
	char hint;

	memset(v, 0, sizeof(*v));
	v->kind = RK_STR;
	if (len == 0) {
		v->kind = RK_NULL;
		return 0;
	}
	hint = resolve_hint(s[0]);
	if (!hint || lookup_word(s, v) || hint == 'M' || !numberish(s, len))
		return 0;
	if (len >= sizeof(stackbuf)) {
		buf = malloc(len + 1);
		if (!buf)
			return -1;
	}
	if (hint == '.') {
		/* go-yaml hands these to ParseFloat untouched. */
		if (strip_underscores(s, len, buf, true) == 0 && yaml_style_float(buf))
			resolve_float(buf, v);
	} else {
		strip_underscores(s, len, buf, false);
		resolve_number(buf, v);
	}
	if (buf != stackbuf)
		free(buf);
	return 0;
}

/* ---- key text (sigs.k8s.io/yaml's map key conversion) ------------------ */

/* Go's strconv.FormatFloat(d, 'g', -1, 32), which sigs.k8s.io/yaml applies
 * to float keys: shortest float32 digits, %e when exp < -4 || exp >= 6. */
static void fmt_float_key(double d, char *out, size_t n)
{
	char tmp[40];
	float f;
	int p, exp;

	if (isnan(d) || fabs(d) > FLT_MAX) {
		snprintf(out, n, "%s", isnan(d) ? ".nan" : d > 0 ? ".inf" : "-.inf");
		return;
	}
	f = (float)d;
	for (p = 1; p < 9; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, (double)f);
		if (strtof(tmp, NULL) == f)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", p - 1, (double)f);
	exp = (int)strtol(strchr(tmp, 'e') + 1, NULL, 10); /* our own "%e": two or three digits */
	if (exp < -4 || exp >= 6)
		snprintf(out, n, "%s", tmp);
	else
		snprintf(out, n, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, (double)f);
}

char *yamljson_key_text(const struct rval *v, const char *s, size_t len)
{
	char tmp[48];
	char *out;

	switch (v->kind) {
	case RK_STR:
		out = malloc(len + 1);
		if (out) {
			memcpy(out, s, len);
			out[len] = '\0';
		}
		return out;
	case RK_NULL:
		return strdup("null");
	case RK_BOOL:
		return strdup(v->b ? "true" : "false");
	case RK_INT:
		snprintf(tmp, sizeof(tmp), "%lld", v->i);
		break;
	case RK_UINT:
		snprintf(tmp, sizeof(tmp), "%llu", v->u);
		break;
	case RK_FLOAT:
	case RK_NONFINITE:
		fmt_float_key(v->d, tmp, sizeof(tmp));
		break;
	}
	return strdup(tmp);
}

char *yamljson_key_from_node(const cJSON *n)
{
	struct rval v = { .kind = RK_NULL };

	if (cJSON_IsString(n))
		return yamljson_key_text(&(struct rval){ .kind = RK_STR }, n->valuestring,
					 strlen(n->valuestring));
	if (cJSON_IsBool(n)) {
		v.kind = RK_BOOL;
		v.b = cJSON_IsTrue(n);
	} else if (cJSON_IsNumber(n)) {
		long long i = 0;
		v.kind = json_number_int(n, &i) == 0 ? RK_INT : RK_FLOAT;
		v.i = i;
		v.d = n->valuedouble;
	}
	return yamljson_key_text(&v, NULL, 0);
}
