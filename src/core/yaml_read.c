/*
 * YAML to cJSON through libyaml's event API, read the way Kubernetes reads
 * manifests (go-yaml v2 under sigs.k8s.io/yaml): documents, anchors and
 * merge keys within their limits, the line of every node, and JSON that
 * YAML 1.1 cannot read. Scalars are typed by yaml_type.c; yaml_emit.c
 * writes YAML back.
 *
 * The document loader is never used: it forgets whether a scalar was quoted,
 * and go-yaml's typing of plain scalars depends on exactly that.
 */
#include "yamljson.h"
#include "yaml_int.h"

#include "array.h"
#include "htable.h"
#include "jsonutil.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---- node -> line map -------------------------------------------------- */

/* Keyed by node address (addresses are not chosen by the input, so the
 * cheap pointer hash will do); the line is stored as the value. */
struct yaml_linemap {
	struct htable t;
};

static const struct htable_type linemap_type = { NULL, NULL, NULL, NULL };

/* Inserts or updates: a freed node's address may come back for a new one. */
static int lm_put(struct yaml_linemap *m, const cJSON *node, int line)
{
	return htable_set(&m->t, (void *)node, (void *)(intptr_t)line) == 0 ? 0 : -1;
}

static int lm_get(const struct yaml_linemap *m, const cJSON *node)
{
	void *line;

	if (!m || !node || !htable_get(&m->t, node, &line))
		return 0;
	return (int)(intptr_t)line;
}

/* A map sized for the nodes a stream of len bytes usually holds
 * (manifests average one per ~20 bytes), so big streams skip most
 * regrowth; the reservation stops at 1 Mi nodes. */
static struct yaml_linemap *lm_new(size_t len)
{
	struct yaml_linemap *m = malloc(sizeof(*m));
	size_t want = len / 20;

	if (!m)
		return NULL;
	htable_init(&m->t, &linemap_type, (size_t)YAML_MAX_NODES + 1);
	if (want < 512)
		want = 512;
	if (want > ((size_t)1 << 20))
		want = (size_t)1 << 20;
	if (htable_reserve(&m->t, want) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void lm_free(struct yaml_linemap *m)
{
	if (!m)
		return;
	htable_clear(&m->t);
	free(m);
}

/* ---- the event-driven builder ------------------------------------------ */

struct anchor {
	char *name;
	cJSON *node;  /* inside the current document, or in the graveyard */
	size_t nodes; /* nodes created for it: an upper bound of its size */
	size_t bytes; /* string and key bytes in it */
	int height;   /* collection levels: 0 for a scalar */
};

static void anchor_free(void *p)
{
	struct anchor *a = p;

	free(a->name);
	free(a);
}

/* Anchors by name; each entry's key is its anchor's own name. */
static const struct htable_type anchor_type = { htable_hash_str, htable_equal_str, NULL, anchor_free };

/* One collection being built. A mapping's keys table maps each member name
 * (the member's own string) to NULL for a key written in it, or to the
 * member node for one that came from a "<<" merge (an explicit key may
 * replace it). Names come from the input: the table's hash is keyed. */
struct frame {
	cJSON *node;
	char *anchor; /* malloc'd; registered when the collection ends */
	size_t nodes0, bytes0;
	int height; /* tallest child, in collection levels */
	bool is_map;
	bool want_value;    /* a key was read; its value comes next */
	bool merge_pending; /* and that key was "<<" */
	bool merged;        /* this mapping has had its "<<" */
	char *key;          /* the pending key, malloc'd */
	cJSON *key_merged;  /* the merged member that key replaces, or NULL */
	int key_line;
	struct htable keys;
};

struct builder {
	struct frame stack[JSON_MAX_DEPTH];
	int depth;
	struct htable anchors;
	/* Nodes detached during a document that an anchor may still point
	 * into (merge sources, anchored keys); freed when the document ends. */
	cJSON *graveyard;
	cJSON *root;
	struct yaml_doc *docs;
	size_t ndocs, capdocs;
	struct yaml_linemap *lines;
	size_t nodes, bytes, alias_nodes, alias_bytes;
	int line; /* of the event being handled, for errors */
	bool oom;
	char *err;
	size_t errlen;
};

static int fail(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "line N: <what>" (never input values) and returns -1. */
static int fail(struct builder *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(b->err, b->errlen, "line %d: ", b->line);
	if (n < 0 || (size_t)n >= b->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_oom(struct builder *b)
{
	b->oom = true;
	return fail(b, "out of memory");
}

/* A short, log-safe rendering of a key for error messages. */
static void safe_name(const char *s, char *out, size_t n)
{
	size_t i;

	for (i = 0; s[i] && i + 4 < n && i < 40; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = (c < 0x20 || c == 0x7F || c == '"' || c == '\\') ? '?' : (char)c;
	}
	if (s[i] && i + 4 < n)
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
}

static struct frame *top(struct builder *b)
{
	return b->depth ? &b->stack[b->depth - 1] : NULL;
}

/* Counts a node against YAML_MAX_NODES and records its line. Takes
 * ownership: on failure the node is freed. */
static int track_node(struct builder *b, cJSON *node, int line)
{
	if (!node)
		return fail_oom(b);
	if (b->nodes >= YAML_MAX_NODES) {
		cJSON_Delete(node);
		return fail(b, "more than %d nodes", YAML_MAX_NODES);
	}
	b->nodes++;
	if (node->valuestring)
		b->bytes += strlen(node->valuestring);
	if (lm_put(b->lines, node, line) < 0) {
		cJSON_Delete(node);
		return fail_oom(b);
	}
	return 0;
}

static int bury(struct builder *b, cJSON *node)
{
	if (!b->graveyard)
		b->graveyard = cJSON_CreateArray();
	if (!b->graveyard) {
		cJSON_Delete(node);
		return fail_oom(b);
	}
	cJSON_AddItemToArray(b->graveyard, node);
	return 0;
}

/* Deep copy for aliases and merges. Descendants keep their original's line;
 * depth is bounded by the source's, which is within JSON_MAX_DEPTH. */
static cJSON *copy_tree(struct builder *b, const cJSON *src)
{
	cJSON *dst;

	if (cJSON_IsArray(src) || cJSON_IsObject(src)) {
		dst = cJSON_IsArray(src) ? cJSON_CreateArray() : cJSON_CreateObject();
	} else if (cJSON_IsNumber(src)) {
		dst = cJSON_CreateNumber(src->valuedouble);
	} else if (cJSON_IsString(src)) {
		dst = cJSON_CreateString(src->valuestring);
	} else if (cJSON_IsBool(src)) {
		dst = cJSON_CreateBool(cJSON_IsTrue(src));
	} else {
		dst = cJSON_CreateNull();
	}
	if (track_node(b, dst, lm_get(b->lines, src)) < 0)
		return NULL;
	for (const cJSON *c = src->child; c; c = c->next) {
		cJSON *cc = copy_tree(b, c);
		if (!cc)
			goto fail;
		if (c->string) {
			cc->string = strdup(c->string);
			if (!cc->string) {
				cJSON_Delete(cc);
				fail_oom(b);
				goto fail;
			}
			b->bytes += strlen(c->string);
		}
		cJSON_AddItemToArray(dst, cc);
	}
	return dst;
fail:
	cJSON_Delete(dst);
	return NULL;
}

/* Starts a member: an explicit key repeated is an error (kubectl's strict
 * decoding); one that only came from a merge is overridden when the value
 * is attached. The key enters the table now, as the name its member will
 * carry (key becomes the member's string), in one lookup. */
static int set_key(struct builder *b, struct frame *f, char *key)
{
	void *merged = NULL;
	int rc;

	if (!key)
		return fail_oom(b);
	rc = htable_add(&f->keys, key, NULL, &merged);
	if (rc == HTABLE_EXISTS && !merged) {
		char name[48];
		safe_name(key, name, sizeof(name));
		free(key);
		return fail(b, "duplicate key \"%s\"", name);
	}
	/* Over a merged member: the entry takes this key's name (the merged
	 * member, and the name the entry held, go in map_add). */
	if (rc == HTABLE_EXISTS)
		rc = htable_set(&f->keys, key, NULL);
	if (rc < 0) {
		free(key);
		return fail_oom(b);
	}
	b->bytes += strlen(key);
	f->key = key;
	f->key_merged = merged;
	f->key_line = b->line;
	f->want_value = true;
	return 0;
}

static int set_merge_key(struct builder *b, struct frame *f)
{
	if (f->merged)
		return fail(b, "duplicate key \"<<\"");
	f->merged = f->want_value = f->merge_pending = true;
	f->key_line = b->line;
	return 0;
}

/* Appends value v under the pending key (already in the keys table, see
 * set_key), replacing a merged member. */
static void map_add(struct frame *f, cJSON *v)
{
	cJSON *old = f->key_merged;

	v->string = f->key;
	v->type &= ~cJSON_StringIsConst;
	f->key = NULL;
	f->key_merged = NULL;
	cJSON_AddItemToArray(f->node, v);
	if (old)
		cJSON_Delete(cJSON_DetachItemViaPointer(f->node, old));
}

/* Copies the members of src that f does not have yet: explicit keys win,
 * and an earlier merged mapping wins over a later one (go-yaml v2). */
static int merge_from(struct builder *b, struct frame *f, const cJSON *src)
{
	for (const cJSON *m = src->child; m; m = m->next) {
		cJSON *c;
		if (htable_get(&f->keys, m->string, NULL))
			continue;
		c = copy_tree(b, m);
		if (!c)
			return -1;
		c->string = strdup(m->string);
		if (!c->string) {
			cJSON_Delete(c);
			return fail_oom(b);
		}
		b->bytes += strlen(m->string);
		cJSON_AddItemToArray(f->node, c);
		if (htable_set(&f->keys, c->string, c) < 0)
			return fail_oom(b);
	}
	return 0;
}

/* "<<: *a" or "<<: [*a, *b]". The source is only read and then buried, as
 * anchors may point into it. */
static int map_merge(struct builder *b, struct frame *f, cJSON *v)
{
	const cJSON *c;

	if (bury(b, v) < 0)
		return -1;
	b->line = f->key_line;
	if (cJSON_IsObject(v))
		return merge_from(b, f, v);
	if (!cJSON_IsArray(v))
		return fail(b, "map merge requires a mapping or a sequence of mappings");
	cJSON_ArrayForEach(c, v) {
		if (!cJSON_IsObject(c))
			return fail(b, "map merge requires a mapping or a sequence of mappings");
	}
	cJSON_ArrayForEach(c, v) {
		if (merge_from(b, f, c) < 0)
			return -1;
	}
	return 0;
}

/* Hands a finished node to its parent (or makes it the root). Takes
 * ownership of node in every case. */
static int attach(struct builder *b, cJSON *node, int height)
{
	struct frame *f = top(b);

	if (!f) {
		b->root = node;
		return 0;
	}
	if (height > f->height)
		f->height = height;
	if (!f->is_map) {
		cJSON_AddItemToArray(f->node, node);
		return 0;
	}
	f->want_value = false;
	if (f->merge_pending) {
		f->merge_pending = false;
		return map_merge(b, f, node);
	}
	map_add(f, node);
	return 0;
}

/* Anchors are registered when their node completes, so a node cannot
 * contain an alias to itself. A redefined anchor replaces the old one. */
static int add_anchor(struct builder *b, const char *name, cJSON *node, size_t nodes0, size_t bytes0,
		      int height)
{
	struct anchor *a = htable_find(&b->anchors, name);

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (a)
			a->name = strdup(name);
		if (!a || !a->name || htable_set(&b->anchors, a->name, a) < 0) {
			if (a)
				anchor_free(a);
			return fail_oom(b);
		}
	}
	a->node = node;
	a->nodes = b->nodes - nodes0;
	a->bytes = b->bytes - bytes0;
	a->height = height;
	return 0;
}

static int complete(struct builder *b, cJSON *node, const char *anchor, size_t nodes0, size_t bytes0,
		    int height)
{
	if (anchor && add_anchor(b, anchor, node, nodes0, bytes0, height) < 0) {
		cJSON_Delete(node);
		return -1;
	}
	return attach(b, node, height);
}

/* ---- scalars ----------------------------------------------------------- */

/* Types a scalar event: untagged quoted and block scalars are strings,
 * explicit core tags are honoured, other tags (!!binary, !foo) give
 * strings. .inf/.nan are refused unless for_key (JSON has no such values). */
static int resolve_event(struct builder *b, const yaml_event_t *ev, struct rval *v, bool for_key)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *want = NULL;
	bool ok;

	memset(v, 0, sizeof(*v));
	if (tag && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0)
		want = tag + strlen(TAG_PREFIX);
	if (tag &&
	    !(want &&
	      (!strcmp(want, "null") || !strcmp(want, "bool") || !strcmp(want, "int") ||
	       !strcmp(want, "float"))))
		return 0; /* RK_STR */
	if (!tag && !ev->data.scalar.plain_implicit)
		return 0;
	if (yamljson_resolve_plain(s, len, v) < 0)
		return fail_oom(b);
	if (want) {
		bool isint = v->kind == RK_INT || v->kind == RK_UINT;
		ok = (!strcmp(want, "null") && v->kind == RK_NULL) ||
			(!strcmp(want, "bool") && v->kind == RK_BOOL) ||
			(!strcmp(want, "int") && isint) ||
			(!strcmp(want, "float") &&
			 (isint || v->kind == RK_FLOAT || v->kind == RK_NONFINITE));
		if (!ok)
			return fail(b, "cannot decode value as !!%s", want);
		if (!strcmp(want, "float") && isint) {
			v->d = v->kind == RK_INT ? (double)v->i : (double)v->u;
			v->kind = RK_FLOAT;
		}
	}
	if (v->kind == RK_NONFINITE && !for_key)
		return fail(b, ".inf and .nan have no JSON form");
	return 0;
}

static cJSON *node_from(const struct rval *v, const char *s)
{
	switch (v->kind) {
	case RK_NULL:
		return cJSON_CreateNull();
	case RK_BOOL:
		return cJSON_CreateBool(v->b);
	case RK_INT:
		return cJSON_CreateNumber((double)v->i);
	case RK_UINT:
		return cJSON_CreateNumber((double)v->u);
	case RK_FLOAT:
		return cJSON_CreateNumber(v->d);
	case RK_NONFINITE:
	case RK_STR:
		break;
	}
	return cJSON_CreateString(s);
}

static bool is_merge_key(const yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;

	if (ev->data.scalar.length != 2 || strcmp((const char *)ev->data.scalar.value, "<<") != 0)
		return false;
	return tag ? strcmp(tag, TAG_PREFIX "merge") == 0 : ev->data.scalar.plain_implicit;
}

/* A scalar in key position. Its node exists only if anchored, and then
 * lives in the graveyard for the rest of the document. */
static int on_key_scalar(struct builder *b, struct frame *f, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *anchor = (const char *)ev->data.scalar.anchor;
	size_t nodes0 = b->nodes, bytes0 = b->bytes;
	struct rval v;
	cJSON *node;

	if (is_merge_key(ev))
		return set_merge_key(b, f);
	if (resolve_event(b, ev, &v, true) < 0)
		return -1;
	if (anchor) {
		node = node_from(&v, s);
		if (track_node(b, node, b->line) < 0 || bury(b, node) < 0 ||
		    add_anchor(b, anchor, node, nodes0, bytes0, 0) < 0)
			return -1;
	}
	return set_key(b, f, yamljson_key_text(&v, s, ev->data.scalar.length));
}

/* "---" with nothing after it reads as one empty plain scalar. */
static bool is_empty_document(const yaml_event_t *ev)
{
	return ev->data.scalar.length == 0 && !ev->data.scalar.tag && !ev->data.scalar.anchor &&
		ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	struct frame *f = top(b);
	size_t nodes0 = b->nodes, bytes0 = b->bytes;
	struct rval v;
	cJSON *node;

	/* cJSON strings end at the first NUL: "a\0b" would lose its tail. */
	if (strlen(s) != ev->data.scalar.length)
		return fail(b, "scalar contains a NUL character");
	if (!f && is_empty_document(ev))
		return 0;
	if (f && f->is_map && !f->want_value)
		return on_key_scalar(b, f, ev);
	if (resolve_event(b, ev, &v, false) < 0)
		return -1;
	node = node_from(&v, s);
	if (track_node(b, node, b->line) < 0)
		return -1;
	return complete(b, node, (const char *)ev->data.scalar.anchor, nodes0, bytes0, 0);
}

/* ---- aliases and collections ------------------------------------------ */

static int alias_limits(struct builder *b, const struct anchor *a)
{
	if (b->alias_nodes + a->nodes > YAML_MAX_ALIAS_NODES)
		return fail(b, "aliases expand to more than %d nodes", YAML_MAX_ALIAS_NODES);
	if (b->alias_bytes + a->bytes > YAML_MAX_ALIAS_BYTES)
		return fail(b, "aliases expand to more than %d bytes", YAML_MAX_ALIAS_BYTES);
	if (b->depth + a->height > JSON_MAX_DEPTH)
		return fail(b, "nesting deeper than %d levels", JSON_MAX_DEPTH);
	return 0;
}

/* An alias copies its anchor's node; the copy's root gets the alias line. */
static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const struct anchor *a = htable_find(&b->anchors, ev->data.alias.anchor);
	struct frame *f = top(b);
	size_t nodes0 = b->nodes, bytes0 = b->bytes;
	cJSON *copy;

	if (!a) {
		char name[48];
		safe_name((const char *)ev->data.alias.anchor, name, sizeof(name));
		return fail(b, "unknown anchor \"%s\"", name);
	}
	if (f && f->is_map && !f->want_value) {
		if (cJSON_IsArray(a->node) || cJSON_IsObject(a->node))
			return fail(b, "mapping key is not a scalar");
		return set_key(b, f, yamljson_key_from_node(a->node));
	}
	if (alias_limits(b, a) < 0)
		return -1;
	b->alias_nodes += a->nodes;
	b->alias_bytes += a->bytes;
	copy = copy_tree(b, a->node);
	if (!copy)
		return -1;
	if (lm_put(b->lines, copy, b->line) < 0) {
		cJSON_Delete(copy);
		return fail_oom(b);
	}
	return complete(b, copy, NULL, nodes0, bytes0, a->height);
}

static int on_start(struct builder *b, const yaml_event_t *ev, bool is_map)
{
	const char *anchor = (const char *)(is_map ? ev->data.mapping_start.anchor
						   : ev->data.sequence_start.anchor);
	struct frame *f = top(b);
	size_t nodes0 = b->nodes, bytes0 = b->bytes;
	cJSON *node;

	if (f && f->is_map && !f->want_value)
		return fail(b, "mapping key is not a scalar");
	if (b->depth >= JSON_MAX_DEPTH)
		return fail(b, "nesting deeper than %d levels", JSON_MAX_DEPTH);
	node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
	if (track_node(b, node, b->line) < 0)
		return -1;
	f = &b->stack[b->depth++];
	f->node = node;
	f->anchor = anchor ? strdup(anchor) : NULL;
	f->nodes0 = nodes0;
	f->bytes0 = bytes0;
	f->height = 0;
	f->is_map = is_map;
	f->want_value = f->merge_pending = f->merged = false;
	if (anchor && !f->anchor)
		return fail_oom(b);
	return 0;
}

static int on_end(struct builder *b)
{
	struct frame *f = &b->stack[--b->depth];
	cJSON *node = f->node;
	char *anchor = f->anchor;
	int rc;

	f->node = NULL;
	f->anchor = NULL;
	htable_reset(&f->keys);
	rc = complete(b, node, anchor, f->nodes0, f->bytes0, f->height + 1);
	free(anchor);
	return rc;
}

/* ---- documents and the event loop -------------------------------------- */

static void end_document_state(struct builder *b)
{
	htable_reset(&b->anchors);
	cJSON_Delete(b->graveyard);
	b->graveyard = NULL;
	cJSON_Delete(b->root);
	b->root = NULL;
}

static int push_doc(struct builder *b, cJSON *root, int line)
{
	if (array_grow(&b->docs, &b->capdocs, b->ndocs + 1, sizeof(*b->docs), YAML_MAX_NODES) < 0)
		return -1;
	b->docs[b->ndocs].root = root;
	b->docs[b->ndocs].line = line;
	b->ndocs++;
	return 0;
}

/* Keeps the document unless it was empty (every document holds at least
 * one counted node, so YAML_MAX_NODES also caps the document count). */
static int on_document_end(struct builder *b)
{
	if (b->root) {
		if (push_doc(b, b->root, lm_get(b->lines, b->root)) < 0)
			return fail_oom(b);
		b->root = NULL;
	}
	end_document_state(b);
	return 0;
}

static int handle_event(struct builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		end_document_state(b);
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		return on_document_end(b);
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(b, ev, false);
	case YAML_MAPPING_START_EVENT:
		return on_start(b, ev, true);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(b);
	default:
		return 0;
	}
}

static int mark_line(size_t line0)
{
	return line0 < INT_MAX ? (int)line0 + 1 : INT_MAX;
}

/* libyaml's own message; reader errors (bad UTF-8, control characters)
 * carry a byte offset instead of a mark. */
static void parser_error(struct builder *b, const yaml_parser_t *p, const char *buf, size_t len)
{
	b->line = mark_line(p->problem_mark.line);
	if (p->error == YAML_MEMORY_ERROR) {
		fail_oom(b);
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		size_t end = p->problem_offset < len ? p->problem_offset : len;
		size_t nl = 0;
		for (size_t i = 0; i < end; i++)
			nl += buf[i] == '\n';
		b->line = mark_line(nl);
	}
	if (p->context)
		fail(b, "%s (%s at line %d)", p->problem ? p->problem : "invalid YAML", p->context,
		     mark_line(p->context_mark.line));
	else
		fail(b, "%s", p->problem ? p->problem : "invalid YAML");
}

static int run_parser(struct builder *b, const char *buf, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	bool done = false;
	int rc = -1;

	if (!yaml_parser_initialize(&p))
		return fail_oom(b);
	yaml_parser_set_input_string(&p, (const unsigned char *)(buf ? buf : ""), buf ? len : 0);
	while (!done) {
		int r;
		if (!yaml_parser_parse(&p, &ev)) {
			parser_error(b, &p, buf, len);
			goto out;
		}
		b->line = mark_line(ev.start_mark.line);
		done = ev.type == YAML_STREAM_END_EVENT;
		r = handle_event(b, &ev);
		yaml_event_delete(&ev);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	yaml_parser_delete(&p);
	return rc;
}

/* ---- JSON that YAML 1.1 cannot read ------------------------------------ */

/* YAML and JSON text must both be Unicode; cJSON does not check. */
static bool utf8_valid(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;

	while (p < end) {
		uint32_t c;
		int k = yamljson_utf8_next(p, &c);
		if (!k || k > end - p)
			return false;
		p += k;
	}
	return true;
}

static bool looks_like_json(const char *buf, size_t len, size_t *start)
{
	size_t i = 0;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	*start = i;
	return i < len && (buf[i] == '{' || buf[i] == '[');
}

/* Counts nodes and refuses what json_parse_strict lets through but JSON
 * (and Go's decoder) does not: numbers that overflowed to infinity. */
static bool fallback_tree_ok(const cJSON *n, size_t *count)
{
	if (++*count > YAML_MAX_NODES || (cJSON_IsNumber(n) && !isfinite(n->valuedouble)))
		return false;
	for (const cJSON *c = n->child; c; c = c->next) {
		if (!fallback_tree_ok(c, count))
			return false;
	}
	return true;
}

/* Raw control characters are invalid in JSON text (cJSON takes them inside
 * strings); tab, CR and LF are whitespace outside strings. */
static bool no_control_bytes(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			return false;
	}
	return true;
}

/*
 * libyaml rejects some valid JSON, chiefly "\ud83d\ude00" surrogate-pair
 * escapes (Python's json.dumps writes them), which Kubernetes reads with its
 * JSON decoder. Such input is read strictly as one JSON document; its nodes
 * have no line numbers except the root's.
 */
static int load_json_fallback(struct builder *b, const char *buf, size_t len, size_t start)
{
	char jerr[128];
	cJSON *root = NULL;
	char *copy = malloc(len + 1);
	size_t nl = 0, count = 0;
	int rc = -1;

	if (!copy)
		return -1;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	if (!utf8_valid(copy, len) || !no_control_bytes(copy, len) ||
	    json_parse_strict(copy, len, &root, jerr, sizeof(jerr)) < 0 ||
	    !fallback_tree_ok(root, &count))
		goto out;
	for (size_t i = 0; i < start; i++)
		nl += buf[i] == '\n';
	if (lm_put(b->lines, root, mark_line(nl)) < 0 || push_doc(b, root, mark_line(nl)) < 0)
		goto out;
	root = NULL;
	rc = 0;
out:
	cJSON_Delete(root);
	free(copy);
	return rc;
}

/* ---- public entry points ----------------------------------------------- */

static void builder_free_state(struct builder *b)
{
	while (b->depth > 0) {
		struct frame *f = &b->stack[--b->depth];
		cJSON_Delete(f->node);
		free(f->anchor);
		f->node = NULL;
		f->anchor = NULL;
	}
	for (int i = 0; i < JSON_MAX_DEPTH; i++) {
		free(b->stack[i].key);
		b->stack[i].key = NULL;
		htable_clear(&b->stack[i].keys);
	}
	end_document_state(b);
	htable_clear(&b->anchors);
}

static void free_docs(struct yaml_doc *docs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(docs[i].root);
	free(docs);
}

/* The tables of an empty builder. Keys per mapping and anchors per
 * document are bounded by the node cap. */
static void builder_init(struct builder *b, char *err, size_t errlen)
{
	b->err = err;
	b->errlen = errlen;
	htable_init(&b->anchors, &anchor_type, YAML_MAX_NODES);
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		htable_init(&b->stack[i].keys, &htable_type_str, YAML_MAX_NODES);
}

/* Moves the parsed documents and line map into out. */
static void builder_export(struct builder *b, struct yaml_docs *out)
{
	out->docs = b->docs;
	out->n = b->ndocs;
	out->lines = b->lines;
	b->docs = NULL;
	b->ndocs = 0;
	b->lines = NULL;
}

/* YAML first; JSON that libyaml refuses gets a second, strict reading. */
static int builder_run(struct builder *b, const char *buf, size_t len)
{
	size_t start;
	int rc = run_parser(b, buf, len);

	builder_free_state(b);
	if (rc < 0 && !b->oom && buf && looks_like_json(buf, len, &start)) {
		free_docs(b->docs, b->ndocs);
		b->docs = NULL;
		b->ndocs = b->capdocs = 0;
		/* Every node the YAML reading made is gone; their addresses
		 * may come back in the JSON tree. */
		htable_reset(&b->lines->t);
		if (load_json_fallback(b, buf, len, start) == 0)
			rc = 0;
	}
	return rc;
}

int yamljson_load(const char *buf, size_t len, struct yaml_docs *out, char *err, size_t errlen)
{
	struct builder *b = calloc(1, sizeof(*b));
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	if (b)
		b->lines = lm_new(len);
	if (!b || !b->lines) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	builder_init(b, err, errlen);
	rc = builder_run(b, buf, len);
	if (rc == 0)
		builder_export(b, out);
out:
	if (b) {
		free_docs(b->docs, b->ndocs);
		lm_free(b->lines);
		free(b);
	}
	return rc;
}

int yamljson_line(const struct yaml_docs *docs, const cJSON *node)
{
	return docs ? lm_get(docs->lines, node) : 0;
}

cJSON *yamljson_take(struct yaml_docs *docs, size_t i)
{
	cJSON *r;

	if (!docs || i >= docs->n)
		return NULL;
	r = docs->docs[i].root;
	docs->docs[i].root = NULL;
	return r;
}

void yamljson_clear(struct yaml_docs *docs)
{
	if (!docs)
		return;
	free_docs(docs->docs, docs->n);
	lm_free(docs->lines);
	memset(docs, 0, sizeof(*docs));
}
