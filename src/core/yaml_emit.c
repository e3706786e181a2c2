/*
 * cJSON back to block YAML in kubectl's layout (yamljson_emit), choosing
 * for every string a style that reads back as the same string under
 * go-yaml's typing (yaml_type.c). Pure: a tree in, a capped buffer out.
 */
#include "yamljson.h"
#include "yaml_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "jsonutil.h"

/* Output cap of yamljson_emit: far above anything the API server stores
 * (etcd's object limit is 1.5 MiB), low enough to fail before memory does. */
#define EMIT_MAX ((size_t)256 << 20)
/* libyaml refuses implicit keys longer than 1024 characters; longer keys
 * are written in the explicit "? key" form. */
#define EMIT_SIMPLE_KEY_MAX 1000

/* The output, capped at EMIT_MAX: running out of memory or past the cap
 * is the dynbuf's sticky error; bad marks input that YAML text cannot
 * carry. key is a scratch buffer for one mapping key's text, reused from
 * key to key (NULL in the scratch itself). */
struct ebuf {
	struct dynbuf d;
	bool bad;
	struct ebuf *key;
};

static void eb_put(struct ebuf *e, const char *s, size_t n)
{
	(void)dynbuf_addn(&e->d, s, n); /* sticky: checked by eb_failed */
}

static bool eb_failed(const struct ebuf *e)
{
	return e->bad || dynbuf_error(&e->d) != DYNBUF_OK;
}

static void eb_puts(struct ebuf *e, const char *s)
{
	eb_put(e, s, strlen(s));
}

static void eb_pad(struct ebuf *e, int n)
{
	static const char spaces[] = "                                ";

	while (n > 0) {
		int k = n < 32 ? n : 32;
		eb_put(e, spaces, (size_t)k);
		n -= k;
	}
}

/* Printable and not a break, tab or BOM: may appear raw in any style.
 * libyaml treats NEL, LS and PS as line breaks, and a BOM at a line start
 * is dropped. */
static bool cp_safe(uint32_t c)
{
	if (c < 0x80)
		return c >= 0x20 && c != 0x7F;
	if (c < 0xA0)
		return false;
	return c != 0x2028 && c != 0x2029 && c != 0xFEFF && c != 0xFFFE && c != 0xFFFF;
}

enum sstyle { ST_PLAIN, ST_SINGLE, ST_DOUBLE, ST_LITERAL, ST_INVALID };

/* Plain only when libyaml reads the same characters back and go-yaml's
 * resolver types them as a string. */
static bool plain_ok(const char *s)
{
	size_t n = strlen(s);
	struct rval v;

	if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || strcmp(s, "<<") == 0)
		return false;
	if (strchr("?:,[]{}#&*!|>'\"%@`", s[0]) || (s[0] == '-' && (s[1] == ' ' || !s[1])))
		return false;
	if (!strncmp(s, "---", 3) || !strncmp(s, "...", 3))
		return false;
	if (strstr(s, ": ") || strstr(s, " #") || s[n - 1] == ':')
		return false;
	return yamljson_resolve_plain(s, n, &v) == 0 && v.kind == RK_STR;
}

static enum sstyle choose_style(const char *s, bool allow_literal)
{
	bool nl = false, special = false;
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t c;
		int k = yamljson_utf8_next(p, &c);
		if (!k)
			return ST_INVALID;
		if (c == '\n')
			nl = true;
		else if (!cp_safe(c))
			special = true;
		p += k;
	}
	if (special)
		return ST_DOUBLE;
	if (nl)
		/* A leading blank or break would need an indentation indicator. */
		return allow_literal && s[0] != ' ' && s[0] != '\n' ? ST_LITERAL : ST_DOUBLE;
	return plain_ok(s) ? ST_PLAIN : ST_SINGLE;
}

static void emit_double(struct ebuf *e, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	eb_put(e, "\"", 1);
	while (*p) {
		uint32_t c;
		int k = yamljson_utf8_next(p, &c);
		char esc[16];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			eb_put(e, esc, 2);
		} else if (c == '\n' || c == '\t' || c == '\r') {
			eb_puts(e, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r");
		} else if (cp_safe(c)) {
			eb_put(e, (const char *)p, (size_t)k);
		} else {
			snprintf(esc, sizeof(esc),
				 c < 0x100             ? "\\x%02X"
					 : c < 0x10000 ? "\\u%04X"
						       : "\\U%08X",
				 (unsigned)c);
			eb_puts(e, esc);
		}
		p += k;
	}
	eb_put(e, "\"", 1);
}

static void emit_single(struct ebuf *e, const char *s)
{
	eb_put(e, "'", 1);
	for (const char *q = strchr(s, '\''); q; q = strchr(s, '\'')) {
		eb_put(e, s, (size_t)(q - s));
		eb_put(e, "''", 2);
		s = q + 1;
	}
	eb_puts(e, s);
	eb_put(e, "'", 1);
}

/* "|" block: clip, strip or keep chomping says how many final breaks. The
 * last break is the last line's own; every segment before it is a line. */
static void emit_literal(struct ebuf *e, const char *s, int indent)
{
	size_t n = strlen(s);
	const char *end = s + n;

	if (s[n - 1] == '\n') {
		end--;
		eb_puts(e, n > 1 && s[n - 2] == '\n' ? "|+\n" : "|\n");
	} else {
		eb_puts(e, "|-\n");
	}
	for (;;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *stop = nl ? nl : end;
		if (stop > s)
			eb_pad(e, indent);
		eb_put(e, s, (size_t)(stop - s));
		eb_put(e, "\n", 1);
		if (!nl)
			break;
		s = nl + 1;
	}
}

/* Writes a string (a literal block with its line ends) and returns the
 * style used. */
static enum sstyle emit_string(struct ebuf *e, const char *s, int indent, bool allow_literal)
{
	enum sstyle st = choose_style(s, allow_literal);

	switch (st) {
	case ST_PLAIN:
		eb_puts(e, s);
		break;
	case ST_SINGLE:
		emit_single(e, s);
		break;
	case ST_DOUBLE:
		emit_double(e, s);
		break;
	case ST_LITERAL:
		emit_literal(e, s, indent);
		break;
	case ST_INVALID:
		e->bad = true;
		break;
	}
	return st;
}

/* Integral values within 2^53 as integers, others in the shortest %g that
 * reads back to the same double. */
static void emit_number(struct ebuf *e, double d)
{
	char tmp[40];

	if (!isfinite(d)) {
		e->bad = true; /* JSON cannot carry it, so neither do we */
		return;
	}
	if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
		snprintf(tmp, sizeof(tmp), "%.0f", d == 0 ? 0.0 : d);
	} else {
		for (int p = 15; p <= 17; p++) {
			snprintf(tmp, sizeof(tmp), "%.*g", p, d);
			if (strtod(tmp, NULL) == d)
				break;
		}
	}
	eb_puts(e, tmp);
}

static bool is_inline(const cJSON *v)
{
	return !(cJSON_IsArray(v) || cJSON_IsObject(v)) || !v->child;
}

/* A scalar or empty collection and its line end; indent is where a
 * literal block's lines go. */
static void emit_inline(struct ebuf *e, const cJSON *v, int indent, bool allow_literal)
{
	if (cJSON_IsString(v) && v->valuestring) {
		if (emit_string(e, v->valuestring, indent, allow_literal) == ST_LITERAL)
			return;
	} else if (cJSON_IsNumber(v)) {
		emit_number(e, v->valuedouble);
	} else if (cJSON_IsBool(v)) {
		eb_puts(e, cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNull(v)) {
		eb_puts(e, "null");
	} else if (cJSON_IsArray(v)) {
		eb_puts(e, "[]");
	} else if (cJSON_IsObject(v)) {
		eb_puts(e, "{}");
	} else {
		e->bad = true; /* cJSON_Raw, cJSON_Invalid */
	}
	eb_put(e, "\n", 1);
}

static void emit_block(struct ebuf *e, const cJSON *node, int indent, bool inline_first, int depth);

/* "key:", or "? key\n:" when too long for an implicit key. Returns true
 * for the explicit form. */
static bool emit_key(struct ebuf *e, const char *key, int indent)
{
	struct ebuf *k = e->key;
	bool explicit;

	if (!key) {
		e->bad = true;
		return false;
	}
	dynbuf_reset(&k->d);
	k->bad = false;
	emit_string(k, key, 0, false);
	if (eb_failed(k)) {
		e->bad = true;
		return false;
	}
	explicit = dynbuf_len(&k->d) > EMIT_SIMPLE_KEY_MAX;
	if (explicit)
		eb_puts(e, "? ");
	eb_put(e, dynbuf_ptr(&k->d), dynbuf_len(&k->d));
	if (explicit) {
		eb_put(e, "\n", 1);
		eb_pad(e, indent);
	}
	eb_put(e, ":", 1);
	return explicit;
}

static void emit_members(struct ebuf *e, const cJSON *obj, int indent, bool inline_first, int depth)
{
	bool first = true;

	for (const cJSON *m = obj->child; m && !eb_failed(e); m = m->next) {
		bool explicit;
		if (!first || !inline_first)
			eb_pad(e, indent);
		first = false;
		explicit = emit_key(e, m->string, indent);
		if (is_inline(m)) {
			eb_put(e, " ", 1);
			emit_inline(e, m, indent + 2, true);
		} else {
			/* kubectl style: a sequence under a key is not indented. */
			int in = cJSON_IsArray(m) && !explicit ? indent : indent + 2;
			eb_put(e, "\n", 1);
			emit_block(e, m, in, false, depth + 1);
		}
	}
}

static void emit_items(struct ebuf *e, const cJSON *arr, int indent, bool inline_first, int depth)
{
	bool first = true;

	for (const cJSON *it = arr->child; it && !eb_failed(e); it = it->next) {
		if (!first || !inline_first)
			eb_pad(e, indent);
		first = false;
		eb_put(e, "- ", 2);
		if (is_inline(it))
			emit_inline(e, it, indent + 2, true);
		else
			emit_block(e, it, indent + 2, true, depth + 1);
	}
}

/* A non-empty collection; inline_first: its first line continues a "- ". */
static void emit_block(struct ebuf *e, const cJSON *node, int indent, bool inline_first, int depth)
{
	if (depth > JSON_MAX_DEPTH) {
		e->bad = true; /* could not be read back */
		return;
	}
	if (cJSON_IsObject(node))
		emit_members(e, node, indent, inline_first, depth);
	else
		emit_items(e, node, indent, inline_first, depth);
}

char *yamljson_emit(const cJSON *root)
{
	struct ebuf key = { .key = NULL }, e = { .key = &key };
	char *out = NULL;

	if (!root)
		return NULL;
	dynbuf_init(&e.d, EMIT_MAX);
	dynbuf_init(&key.d, EMIT_MAX);
	if (is_inline(root))
		emit_inline(&e, root, 0, false);
	else
		emit_block(&e, root, 0, false, 1);
	if (!eb_failed(&e))
		out = dynbuf_take(&e.d, NULL);
	dynbuf_clear(&e.d);
	dynbuf_clear(&key.d);
	return out;
}
