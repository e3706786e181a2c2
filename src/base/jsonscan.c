/*
 * One strict pass over a JSON text, building cJSON nodes only for what the
 * caller keeps. It mirrors json_parse_strict (the byte checks of jsonutil.c,
 * then cJSON 1.7.15's grammar, then its tree checks) rule for rule:
 *
 *   - bytes: no "\u0000" escape, no invalid "\u" escape, no raw control
 *     character, UTF-8 only (checked here inside strings; outside them only
 *     ASCII grammar bytes can stand, and a UTF-8 byte order mark at offset 0,
 *     which cJSON skips);
 *   - grammar: cJSON's, whose numbers are laxer than RFC 8259: a run of
 *     [0-9+-eE.] starting with '-' or a digit that strtod reads whole ("01", "1." and "-.5" pass, as they do through cJSON);
 *   - tree: no object with two members of the same (decoded) name, no
 *     non-empty container nested deeper than JSON_MAX_DEPTH, no number
 *     member or element outside a double's range (a lone top-level number is
 *     not checked, as check_tree does not check it).
 */
#include "jsonscan.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_INLINE 128
#define NUMBER_SMALL 64

/* A member name of an object being read, for the duplicate check. */
struct key {
	const char *raw; /* between the quotes */
	size_t len;
	char *dec; /* decoded copy (malloc'd) when raw holds escapes */
	size_t dlen;
};

struct scan {
	const char *p, *end, *start;
	jsonscan_keep_fn keep;
	void *arg;
	struct jsonscan_path path;
	struct key *keys; /* names of every object open on the way down */
	size_t nkeys, cap;
	const char *why; /* the refusal: a static string */
	size_t at;       /* its offset */
	struct key inline_keys[KEYS_INLINE];
};

/* Byte classes inside strings: 0 plain, 1 quote, 2 backslash, 3 control,
 * 4 not ASCII. */
static const unsigned char str_cls[256] = {
	[0 ... 0x1f] = 3,
	['"'] = 1,
	['\\'] = 2,
	[0x80 ... 0xff] = 4,
};

static const unsigned char num_cls[256] = {
	['0' ... '9'] = 1, ['+'] = 1, ['-'] = 1, ['e'] = 1, ['E'] = 1, ['.'] = 1,
};

static int refuse(struct scan *s, const char *why, const char *at)
{
	if (!s->why) {
		s->why = why;
		s->at = (size_t)(at - s->start);
	}
	return -1;
}

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int hex4(const char *h, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = h[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Validates the escape at s->p (a backslash) and steps over it. */
static int scan_escape(struct scan *s)
{
	const char *e = s->p;
	unsigned hi, lo;

	if (s->end - e < 2)
		return refuse(s, "unterminated string", e);
	switch (e[1]) {
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
	case '"':
	case '\\':
	case '/':
		s->p += 2;
		return 0;
	case 'u':
		break;
	default:
		return refuse(s, "invalid escape", e);
	}
	if (s->end - e < 6 || hex4(e + 2, &hi) < 0)
		return refuse(s, "invalid \\u escape", e);
	if (hi == 0)
		return refuse(s, "string contains \\u0000", e);
	if (hi >= 0xDC00 && hi <= 0xDFFF)
		return refuse(s, "invalid surrogate", e);
	if (hi >= 0xD800 && hi <= 0xDBFF) {
		if (s->end - e < 12 || e[6] != '\\' || e[7] != 'u' || hex4(e + 8, &lo) < 0 ||
		    lo < 0xDC00 || lo > 0xDFFF)
			return refuse(s, "invalid surrogate", e);
		s->p += 12;
		return 0;
	}
	s->p += 6;
	return 0;
}

/* Validates the string at s->p (its opening quote) and steps past it;
 * *raw and *len get the bytes between the quotes, *esc whether any escape
 * stands there. */
static int scan_string(struct scan *s, const char **raw, size_t *len, bool *esc)
{
	const unsigned char *p;
	size_t n;

	*esc = false;
	*raw = ++s->p;
	for (;;) {
		p = (const unsigned char *)s->p;
		while (p < (const unsigned char *)s->end && str_cls[*p] == 0)
			p++;
		s->p = (const char *)p;
		if (s->p >= s->end)
			return refuse(s, "unterminated string", *raw - 1);
		switch (str_cls[*p]) {
		case 1:
			*len = (size_t)(s->p - *raw);
			s->p++;
			return 0;
		case 2:
			*esc = true;
			if (scan_escape(s) < 0)
				return -1;
			break;
		case 3:
			return refuse(s, "control character", s->p);
		default:
			n = json_utf8_seq(p, (size_t)(s->end - s->p));
			if (n == 0)
				return refuse(s, "invalid UTF-8", s->p);
			s->p += n;
		}
	}
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes validated string bytes raw[0..len) into out (room for len + 1
 * bytes: no escape decodes longer than it is written); returns the length
 * and terminates out. */
static size_t decode_string(const char *raw, size_t len, char *out)
{
	const char *p = raw, *end = raw + len, *bs;
	size_t o = 0;
	unsigned cp, lo;

	while (p < end) {
		bs = memchr(p, '\\', (size_t)(end - p));
		if (!bs)
			bs = end;
		memcpy(out + o, p, (size_t)(bs - p));
		o += (size_t)(bs - p);
		p = bs;
		if (p >= end)
			break;
		switch (p[1]) {
		case 'b':
			out[o++] = '\b';
			p += 2;
			continue;
		case 'f':
			out[o++] = '\f';
			p += 2;
			continue;
		case 'n':
			out[o++] = '\n';
			p += 2;
			continue;
		case 'r':
			out[o++] = '\r';
			p += 2;
			continue;
		case 't':
			out[o++] = '\t';
			p += 2;
			continue;
		case 'u':
			break;
		default:
			out[o++] = p[1];
			p += 2;
			continue;
		}
		(void)hex4(p + 2, &cp);
		p += 6;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			(void)hex4(p + 2, &lo);
			cp = 0x10000 + (((cp & 0x3FF) << 10) | (lo & 0x3FF));
			p += 6;
		}
		o += put_utf8(out + o, cp);
	}
	out[o] = '\0';
	return o;
}

/* A cJSON-allocated copy of validated string bytes, decoded. */
static char *string_new(const char *raw, size_t len, bool esc)
{
	char *out = cJSON_malloc(len + 1);

	if (!out)
		return NULL;
	if (esc) {
		decode_string(raw, len, out);
	} else {
		memcpy(out, raw, len);
		out[len] = '\0';
	}
	return out;
}

static cJSON *node_new(int type)
{
	cJSON *n = cJSON_CreateNull();

	if (n)
		n->type = type;
	return n;
}

/* Appends item to parent the way cJSON links children: the first child's
 * prev points at the last one. */
static void node_append(cJSON *parent, cJSON *item)
{
	cJSON *first = parent->child;

	if (!first) {
		parent->child = item;
		item->prev = item;
		return;
	}
	first->prev->next = item;
	item->prev = first->prev;
	first->prev = item;
}

/* strtod over the whole run, as cJSON does (Debian's 1.7.15 copies the run
 * whatever its length): 1 when it reads every byte, 0 when not, -1 on OOM. */
static int number_read(const char *p, size_t n, double *d)
{
	char small[NUMBER_SMALL], *buf = n < sizeof(small) ? small : malloc(n + 1), *e;
	int ok;

	if (!buf)
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	*d = strtod(buf, &e);
	ok = e == buf + n;
	if (buf != small)
		free(buf);
	return ok;
}

/* A plain integer of at most 15 digits (an optional '-' first) is exact in
 * a double: computed here, it is what strtod returns, at a fraction of the
 * cost. Returns false for anything else. */
static bool number_small_int(const char *p, size_t n, double *d)
{
	size_t i = p[0] == '-';
	long long v = 0;

	if (n - i == 0 || n - i > 15)
		return false;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*d = p[0] == '-' ? -(double)v : (double)v;
	return true;
}

static int scan_number(struct scan *s, int level, bool build, cJSON **out)
{
	const char *p = s->p;
	size_t n = 0;
	double d;
	int rc;

	while (p + n < s->end && num_cls[(unsigned char)p[n]])
		n++;
	rc = number_small_int(p, n, &d) ? 1 : number_read(p, n, &d);
	if (rc <= 0)
		return refuse(s, rc < 0 ? "out of memory" : "invalid number", p);
	if (level > 1 && !isfinite(d))
		return refuse(s, "number out of range", p);
	s->p += n;
	if (build) {
		*out = cJSON_CreateNumber(d);
		if (!*out)
			return refuse(s, "out of memory", p);
	}
	return 0;
}

static int scan_literal(struct scan *s, const char *word, size_t n, int type, bool build, cJSON **out)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return refuse(s, "invalid JSON", s->p);
	s->p += n;
	if (build) {
		*out = node_new(type);
		if (!*out)
			return refuse(s, "out of memory", s->p);
		if (type == cJSON_True)
			(*out)->valueint = 1;
	}
	return 0;
}

static int scan_value(struct scan *s, int level, bool build, cJSON **out);

static int string_node(struct scan *s, const char *raw, size_t len, bool esc, cJSON **out)
{
	cJSON *n = node_new(cJSON_String);

	if (n)
		n->valuestring = string_new(raw, len, esc);
	if (!n || !n->valuestring) {
		cJSON_Delete(n);
		return refuse(s, "out of memory", raw);
	}
	*out = n;
	return 0;
}

static int scan_array(struct scan *s, int level, bool build, cJSON *arr)
{
	cJSON *item = NULL;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	if (level > JSON_MAX_DEPTH)
		return refuse(s, "JSON nested too deep", s->p);
	for (;;) {
		skip_ws(s);
		if (build) {
			s->path.seg[s->path.depth].name = NULL;
			s->path.seg[s->path.depth++].len = 0;
		}
		if (scan_value(s, level + 1, build, &item) < 0)
			return -1;
		if (build) {
			s->path.depth--;
			node_append(arr, item);
		}
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return 0;
		}
		return refuse(s, "invalid JSON", s->p);
	}
}

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	const char *xp = x->dec ? x->dec : x->raw, *yp = y->dec ? y->dec : y->raw;
	size_t xl = x->dec ? x->dlen : x->len, yl = y->dec ? y->dlen : y->len;
	int c = memcmp(xp, yp, xl < yl ? xl : yl);

	return c ? c : (xl > yl) - (xl < yl);
}

/* Names of different lengths, the common case, are told apart without a
 * call. */
static inline bool key_eq(const struct key *x, const struct key *y)
{
	size_t xl = x->dec ? x->dlen : x->len, yl = y->dec ? y->dlen : y->len;

	return xl == yl && key_cmp(x, y) == 0;
}

static int key_push(struct scan *s, const char *raw, size_t len, bool esc)
{
	struct key *k;

	if (s->nkeys == s->cap) {
		size_t cap = s->cap * 2;
		struct key *nk = malloc(cap * sizeof(*nk));
		if (!nk)
			return refuse(s, "out of memory", raw);
		memcpy(nk, s->keys, s->nkeys * sizeof(*nk));
		if (s->keys != s->inline_keys)
			free(s->keys);
		s->keys = nk;
		s->cap = cap;
	}
	k = &s->keys[s->nkeys];
	k->raw = raw;
	k->len = len;
	k->dec = NULL;
	k->dlen = 0;
	if (esc) {
		k->dec = malloc(len + 1);
		if (!k->dec)
			return refuse(s, "out of memory", raw);
		k->dlen = decode_string(raw, len, k->dec);
	}
	s->nkeys++;
	return 0;
}

/* Checks the names pushed since base for duplicates, then pops them. */
static int keys_check(struct scan *s, size_t base, const char *at)
{
	struct key *k = s->keys + base;
	size_t n = s->nkeys - base;
	int rc = 0;

	if (n <= 16) {
		for (size_t i = 0; i < n && rc == 0; i++)
			for (size_t j = i + 1; j < n && rc == 0; j++)
				if (key_eq(&k[i], &k[j]))
					rc = refuse(s, "duplicate key", at);
	} else {
		qsort(k, n, sizeof(*k), key_cmp);
		for (size_t i = 1; i < n && rc == 0; i++)
			if (key_cmp(&k[i - 1], &k[i]) == 0)
				rc = refuse(s, "duplicate key", at);
	}
	for (size_t i = 0; i < n; i++)
		free(k[i].dec);
	s->nkeys = base;
	return rc;
}

/* One member: name, colon, value; the value is built when the object is
 * and keep agrees. */
static int scan_member(struct scan *s, int level, bool build, cJSON *obj)
{
	const char *raw, *at = s->p;
	struct jsonscan_member m = { NULL, NULL, NULL };
	size_t len;
	bool esc, keep = build;
	cJSON *item = NULL;

	if (s->p >= s->end || *s->p != '"')
		return refuse(s, "invalid JSON", s->p);
	if (scan_string(s, &raw, &len, &esc) < 0 || key_push(s, raw, len, esc) < 0)
		return -1;
	skip_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return refuse(s, "invalid JSON", s->p);
	s->p++;
	skip_ws(s);
	if (build) {
		s->path.seg[s->path.depth].name = raw;
		s->path.seg[s->path.depth++].len = len;
		m.path = &s->path;
		m.value = s->p;
		keep = !s->keep || s->keep(s->arg, &m);
	}
	if (scan_value(s, level + 1, keep, &item) < 0)
		return -1;
	if (m.end)
		*m.end = s->p;
	if (build)
		s->path.depth--;
	if (keep) {
		item->string = string_new(raw, len, esc);
		if (!item->string) {
			cJSON_Delete(item);
			return refuse(s, "out of memory", at);
		}
		node_append(obj, item);
	}
	return 0;
}

static int scan_object(struct scan *s, int level, bool build, cJSON *obj)
{
	size_t base = s->nkeys;
	const char *open = s->p;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	if (level > JSON_MAX_DEPTH)
		return refuse(s, "JSON nested too deep", s->p);
	for (;;) {
		if (scan_member(s, level, build, obj) < 0)
			return -1;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			skip_ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return keys_check(s, base, open);
		}
		return refuse(s, "invalid JSON", s->p);
	}
}

static int scan_container(struct scan *s, int level, bool build, int type, cJSON **out)
{
	cJSON *n = NULL;
	int rc;

	if (build) {
		n = node_new(type);
		if (!n)
			return refuse(s, "out of memory", s->p);
	}
	rc = type == cJSON_Array ? scan_array(s, level, build, n) : scan_object(s, level, build, n);
	if (rc < 0) {
		cJSON_Delete(n);
		return -1;
	}
	*out = n;
	return 0;
}

static int scan_value(struct scan *s, int level, bool build, cJSON **out)
{
	const char *raw;
	size_t len;
	bool esc;

	*out = NULL;
	if (s->p >= s->end)
		return refuse(s, "invalid JSON", s->p);
	switch (*s->p) {
	case '"':
		if (scan_string(s, &raw, &len, &esc) < 0)
			return -1;
		return build ? string_node(s, raw, len, esc, out) : 0;
	case '{':
		return scan_container(s, level, build, cJSON_Object, out);
	case '[':
		return scan_container(s, level, build, cJSON_Array, out);
	case 'n':
		return scan_literal(s, "null", 4, cJSON_NULL, build, out);
	case 't':
		return scan_literal(s, "true", 4, cJSON_True, build, out);
	case 'f':
		return scan_literal(s, "false", 5, cJSON_False, build, out);
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s, level, build, out);
		return refuse(s, "invalid JSON", s->p);
	}
}

static void scan_init(struct scan *s, const char *p, const char *end)
{
	memset(s, 0, offsetof(struct scan, inline_keys));
	s->p = s->start = p;
	s->end = end;
	s->keys = s->inline_keys;
	s->cap = KEYS_INLINE;
}

static void scan_done(struct scan *s)
{
	for (size_t i = 0; i < s->nkeys; i++)
		free(s->keys[i].dec);
	if (s->keys != s->inline_keys)
		free(s->keys);
}

int jsonscan_parse(const char *buf, size_t len, jsonscan_keep_fn keep, void *arg, cJSON **out,
		   char *err, size_t errlen)
{
	struct scan s;
	cJSON *doc = NULL;
	int rc;

	*out = NULL;
	scan_init(&s, buf, buf + len);
	s.keep = keep;
	s.arg = arg;
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		s.p += 3;
	skip_ws(&s);
	rc = scan_value(&s, 1, true, &doc);
	if (rc == 0) {
		skip_ws(&s);
		if (s.p != s.end)
			rc = refuse(&s, "invalid JSON", s.p);
	}
	scan_done(&s);
	if (rc < 0) {
		cJSON_Delete(doc);
		snprintf(err, errlen, "%s at byte %zu", s.why, s.at);
		return -1;
	}
	*out = doc;
	return 0;
}

int jsonscan_build(const char *p, const char *end, cJSON **out)
{
	struct scan s;
	int rc;

	scan_init(&s, p, end);
	skip_ws(&s);
	rc = scan_value(&s, 1, true, out);
	scan_done(&s);
	return rc;
}
