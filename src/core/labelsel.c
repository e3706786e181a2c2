/*
 * Kubernetes label selectors (labelsel.h): a small lexer and a
 * recursive-descent parser over the grammar of apimachinery's
 * labels.Parse, and the match against a labels object.
 */
#include "labelsel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_EXISTS, OP_NOT_EXISTS, OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_GT, OP_LT };

struct req {
	enum op op;
	char *key;
	char **vals;
	size_t n;
	long long num; /* OP_GT, OP_LT */
};

struct labelsel {
	struct req *reqs;
	size_t n;
};

enum tok { T_END, T_IDENT, T_EQ, T_NE, T_NOT, T_LP, T_RP, T_COMMA, T_GT, T_LT };

struct lexer {
	const char *s;
	size_t pos; /* next byte */
	size_t at;  /* start of the current token */
	enum tok t; /* the current token */
	size_t len; /* bytes of a T_IDENT */
	char *err;
	size_t errlen;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

static void next(struct lexer *lx)
{
	const char *s = lx->s;

	while (is_space(s[lx->pos]))
		lx->pos++;
	lx->at = lx->pos;
	lx->len = 0;
	switch (s[lx->pos]) {
	case '\0':
		lx->t = T_END;
		return;
	case '=':
		lx->pos += s[lx->pos + 1] == '=' ? 2 : 1;
		lx->t = T_EQ;
		return;
	case '!':
		lx->t = s[lx->pos + 1] == '=' ? T_NE : T_NOT;
		lx->pos += lx->t == T_NE ? 2 : 1;
		return;
	case '(':
		lx->t = T_LP;
		break;
	case ')':
		lx->t = T_RP;
		break;
	case ',':
		lx->t = T_COMMA;
		break;
	case '>':
		lx->t = T_GT;
		break;
	case '<':
		lx->t = T_LT;
		break;
	default:
		while (s[lx->pos] && !is_space(s[lx->pos]) && !is_special(s[lx->pos]))
			lx->pos++;
		lx->t = T_IDENT;
		lx->len = lx->pos - lx->at;
		return;
	}
	lx->pos++;
}

static int fail(struct lexer *lx, const char *what)
{
	snprintf(lx->err, lx->errlen, "at %zu: %s", lx->at, what);
	return -1;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A label name or value: up to 63 of [A-Za-z0-9-_.], alphanumeric at both
 * ends; empty only where allowed. */
static bool valid_name(const char *s, size_t n, bool empty_ok)
{
	if (n == 0)
		return empty_ok;
	if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* A DNS subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both
 * ends, up to 253 in all. */
static bool valid_prefix(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';
		if (c == '.') {
			if (i == start || s[start] == '-' || s[i - 1] == '-' || i - start > 63)
				return false;
			start = i + 1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			return false;
		}
	}
	return true;
}

static bool valid_key(const char *s, size_t n)
{
	const char *slash = memchr(s, '/', n);

	if (!slash)
		return valid_name(s, n, false);
	return valid_prefix(s, (size_t)(slash - s)) &&
		valid_name(slash + 1, n - (size_t)(slash - s) - 1, false);
}

static char *ident_dup(const struct lexer *lx)
{
	return strndup(lx->s + lx->at, lx->len);
}

static bool ident_is(const struct lexer *lx, const char *word)
{
	return lx->t == T_IDENT && lx->len == strlen(word) &&
		memcmp(lx->s + lx->at, word, lx->len) == 0;
}

/* Appends the current token's text (a value; empty when it is not an
 * identifier) to r. */
static int push_value(struct lexer *lx, struct req *r)
{
	char **v;
	size_t n = lx->t == T_IDENT ? lx->len : 0;

	if (!valid_name(lx->s + lx->at, n, true))
		return fail(lx,
			    "invalid label value (at most 63 characters of [A-Za-z0-9-_.], "
			    "alphanumeric at both ends)");
	if (r->n == LABELSEL_VALUES_MAX)
		return fail(lx, "too many values in one set (at most 64)");
	v = realloc(r->vals, (r->n + 1) * sizeof(*v));
	if (!v)
		return fail(lx, "out of memory");
	r->vals = v;
	r->vals[r->n] = strndup(lx->s + lx->at, n);
	if (!r->vals[r->n])
		return fail(lx, "out of memory");
	r->n++;
	if (lx->t == T_IDENT)
		next(lx);
	return 0;
}

/* "(a, b)" after in/notin; the current token is '('. */
static int parse_set(struct lexer *lx, struct req *r)
{
	if (lx->t != T_LP)
		return fail(lx, "expected '(' after in or notin");
	next(lx);
	if (lx->t == T_RP)
		return fail(lx, "a set of values cannot be empty");
	for (;;) {
		if (lx->t != T_IDENT && lx->t != T_COMMA && lx->t != T_RP)
			return fail(lx, "expected a value or ')' in a set");
		if (push_value(lx, r) < 0)
			return -1;
		if (lx->t == T_RP)
			break;
		if (lx->t != T_COMMA)
			return fail(lx, "expected ',' or ')' in a set");
		next(lx);
	}
	next(lx);
	return 0;
}

static int parse_number(struct lexer *lx, struct req *r)
{
	char buf[32], *end;

	if (lx->t != T_IDENT || lx->len >= sizeof(buf))
		return fail(lx, "expected an integer after '<' or '>'");
	memcpy(buf, lx->s + lx->at, lx->len);
	buf[lx->len] = '\0';
	errno = 0;
	r->num = strtoll(buf, &end, 10);
	if (errno || end == buf || *end)
		return fail(lx, "expected an integer after '<' or '>'");
	next(lx);
	return 0;
}

/* The operator and operand after a key. */
static int parse_operator(struct lexer *lx, struct req *r)
{
	enum tok t = lx->t;

	if (t == T_COMMA || t == T_END) {
		r->op = OP_EXISTS;
		return 0;
	}
	if (ident_is(lx, "in") || ident_is(lx, "notin")) {
		r->op = ident_is(lx, "in") ? OP_IN : OP_NOTIN;
		next(lx);
		return parse_set(lx, r);
	}
	if (t != T_EQ && t != T_NE && t != T_GT && t != T_LT)
		return fail(lx, "expected an operator (=, ==, !=, in, notin, <, >), ',' or the end");
	next(lx);
	if (t == T_GT || t == T_LT) {
		r->op = t == T_GT ? OP_GT : OP_LT;
		return parse_number(lx, r);
	}
	r->op = t == T_EQ ? OP_EQ : OP_NE;
	if (lx->t != T_IDENT && lx->t != T_COMMA && lx->t != T_END)
		return fail(lx, "expected a value after '=', '==' or '!='");
	return push_value(lx, r);
}

static int parse_key(struct lexer *lx, struct req *r)
{
	if (lx->t != T_IDENT)
		return fail(lx, "expected a label key");
	if (!valid_key(lx->s + lx->at, lx->len))
		return fail(lx,
			    "invalid label key (an optional DNS-subdomain prefix and '/', then "
			    "at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)");
	r->key = ident_dup(lx);
	if (!r->key)
		return fail(lx, "out of memory");
	next(lx);
	return 0;
}

static int parse_req(struct lexer *lx, struct req *r)
{
	if (lx->t == T_NOT) {
		next(lx);
		r->op = OP_NOT_EXISTS;
		return parse_key(lx, r);
	}
	if (parse_key(lx, r) < 0)
		return -1;
	return parse_operator(lx, r);
}

static void req_clear(struct req *r)
{
	free(r->key);
	for (size_t i = 0; i < r->n; i++)
		free(r->vals[i]);
	free(r->vals);
}

void labelsel_free(struct labelsel *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		req_clear(&s->reqs[i]);
	free(s->reqs);
	free(s);
}

int labelsel_parse(const char *text, struct labelsel **out, char *err, size_t errlen)
{
	struct lexer lx = { text, 0, 0, T_END, 0, err, errlen };
	struct labelsel *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strlen(text) > LABELSEL_TEXT_MAX) {
		snprintf(err, errlen, "longer than %d bytes", LABELSEL_TEXT_MAX);
		goto fail;
	}
	s->reqs = calloc(LABELSEL_REQS_MAX, sizeof(*s->reqs));
	if (!s->reqs) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	next(&lx);
	while (lx.t != T_END) {
		if (s->n == LABELSEL_REQS_MAX) {
			fail(&lx, "too many requirements (at most 64)");
			goto fail;
		}
		if (parse_req(&lx, &s->reqs[s->n++]) < 0)
			goto fail;
		if (lx.t == T_END)
			break;
		if (lx.t != T_COMMA) {
			fail(&lx, "expected ',' between requirements");
			goto fail;
		}
		next(&lx);
		if (lx.t == T_END) {
			fail(&lx, "expected a requirement after ','");
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	labelsel_free(s);
	return -1;
}

static bool in_set(const struct req *r, const char *v)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->vals[i], v) == 0)
			return true;
	return false;
}

/* As apimachinery: < and > hold only for a label whose value is an
 * integer. */
static bool compare(const struct req *r, const char *v)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return false;
	return r->op == OP_GT ? x > r->num : x < r->num;
}

static bool req_matches(const struct req *r, const cJSON *labels)
{
	const cJSON *item = labels ? cJSON_GetObjectItemCaseSensitive(labels, r->key) : NULL;
	const char *v = cJSON_IsString(item) ? item->valuestring : NULL;

	switch (r->op) {
	case OP_EXISTS:
		return v != NULL;
	case OP_NOT_EXISTS:
		return v == NULL;
	case OP_EQ:
	case OP_IN:
		return v && in_set(r, v);
	case OP_NE:
	case OP_NOTIN:
		return !v || !in_set(r, v);
	case OP_GT:
	case OP_LT:
		return v && compare(r, v);
	}
	return false;
}

bool labelsel_matches(const struct labelsel *s, const cJSON *labels)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (!req_matches(&s->reqs[i], labels))
			return false;
	return true;
}
