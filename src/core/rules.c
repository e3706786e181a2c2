/*
 * The validating policy gate: which rules apply to a request, recording what
 * they find, and turning a verdict into an admission response. The rules
 * are listed in rules_catalog.c and checked in rules_workload.c (pod
 * templates) and rules_rollout.c (rollout mechanics). Pure: no I/O.
 */
#include "rules.h"
#include "rules_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "dynbuf.h"
#include "jsonutil.h"
#include "rgassert.h"

/* Longest rule ID we try to match in the skip annotation; longer items are
 * unknown by definition. */
#define SKIP_NAME_MAX 64
/* Bytes of unknown skip items quoted back in the note. */
#define SKIP_LIST_MAX 200
/* Violations a verdict can hold: RULES_MAX_PER_RULE of every rule. */
#define VERDICT_MAX ((size_t)RULE_COUNT * RULES_MAX_PER_RULE)
/* The messages of one rule joined by "; ": never reached, since a rule
 * keeps RULES_MAX_PER_RULE messages shorter than RULES_MAX_MESSAGE. */
#define AUDIT_JOIN_MAX ((size_t)RULES_MAX_PER_RULE * (RULES_MAX_MESSAGE + 2))

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/*
 * What the request is about: ctx->kind, a kind the gate judges, or NULL.
 * Subresources other than replicasets/scale are ignored: status writes come
 * from controllers and cannot change a spec, and judging them would let an
 * old object block its own controller.
 */
static void classify(struct rules_ctx *ctx)
{
	const struct admission_request *req = ctx->req;
	const struct kind *rs = kinds_get(KIND_REPLICASET), *k;

	if (str_eq(req->resource, rs->resource) && str_eq(req->subresource, "scale")) {
		ctx->kind = rs;
		ctx->scale = true;
		return;
	}
	if (req->subresource && *req->subresource)
		return;
	k = kinds_by_group_kind(req->group, req->kind);
	if (kinds_has(k, KIND_JUDGED))
		ctx->kind = k;
	if (kinds_has(k, KIND_TEMPLATE_JUDGED))
		ctx->tmpl = kinds_template(k, req->object);
}

/* Appends "name" to a ", "-separated list in buf, silently stopping at the
 * buffer's end (the list only feeds a note). */
static void list_append(char *buf, size_t len, const char *name, size_t n)
{
	size_t used = strlen(buf);

	if (used + 2 >= len)
		return;
	snprintf(buf + used, len - used, "%s\"%.*s\"", used ? ", " : "", (int)n, name);
}

/* Marks one skip item: a known rule ID sets listed[id], anything else goes
 * to the unknown list. */
static void skip_item(const char *item, size_t n, bool listed[RULE_COUNT], char *unknown, size_t ulen)
{
	char name[SKIP_NAME_MAX];
	const struct rules_entry *e;

	if (n < sizeof(name)) {
		memcpy(name, item, n);
		name[n] = '\0';
		e = rules_find(name);
		if (e) {
			listed[e->id] = true;
			return;
		}
	}
	list_append(unknown, ulen, item, n);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Reads the skip annotation ("<prefix>/skip": "rule-a, rule-b") of the
 * object into listed[]. Items are trimmed of spaces and tabs; empty ones are
 * ignored; "*" and "all" are not wildcards (each rule is silenced by name so
 * that new rules are never silenced unseen). Unknown items become a note.
 */
static void read_skip(struct rules_ctx *ctx, bool listed[RULE_COUNT])
{
	char key[512], unknown[SKIP_LIST_MAX] = "";
	const cJSON *ann = json_get_path(ctx->req->object, "metadata", "annotations", NULL);
	const char *p = json_get_string(ann, config_annotation(ctx->cfg, "skip", key, sizeof(key)));

	while (p && *p) {
		const char *start, *end;
		while (is_blank(*p) || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && is_blank(end[-1]))
			end--;
		if (end > start)
			skip_item(start, (size_t)(end - start), listed, unknown, sizeof(unknown));
	}
	if (*unknown)
		rules_note(ctx,
			   "%s: unknown rule IDs %s ignored (list rule IDs; \"*\" is not supported)",
			   key, unknown);
}

/*
 * Decides which rules run. Returns false when the namespace is exempt from
 * every rule. A listed rule in enforce mode stays active unless its config
 * says allowSkip; the note then says so, since the author expected silence.
 */
static bool compute_active(struct rules_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;
	const char *ns = ctx->req->namespace_ ? ctx->req->namespace_ : "";
	bool listed[RULE_COUNT] = { false };
	char kept[SKIP_LIST_MAX] = "", key[512];

	if (strlist_contains(&cfg->exempt_namespaces, ns))
		return false;
	read_skip(ctx, listed);
	for (int i = 0; i < RULE_COUNT; i++) {
		const struct rule_config *rc = &cfg->rules[i];
		bool on = rc->mode != MODE_OFF && !strlist_contains(&rc->exempt_namespaces, ns);
		if (on && listed[i] && (rc->mode != MODE_ENFORCE || rc->skippable))
			on = false;
		else if (on && listed[i])
			list_append(kept, sizeof(kept), rules_name((enum rule_id)i),
				    strlen(rules_name((enum rule_id)i)));
		ctx->active[i] = on;
	}
	if (*kept)
		rules_note(ctx, "%s cannot silence enforced rules %s (their config lacks allowSkip)",
			   config_annotation(cfg, "skip", key, sizeof(key)), kept);
	return true;
}

const char *rules_object_name(const struct rules_ctx *ctx, const cJSON *obj)
{
	const cJSON *md = json_get(obj, "metadata");
	const char *n = json_get_string(md, "name");

	if (n && *n)
		return n;
	if (ctx->req->name && *ctx->req->name)
		return ctx->req->name;
	n = json_get_string(md, "generateName");
	return n && *n ? n : "(unnamed)";
}

void rules_report(struct rules_ctx *ctx, enum rule_id id, const char *path, const char *fmt, ...)
{
	char msg[RULES_MAX_MESSAGE];
	struct verdict *out = ctx->out;
	struct violation *v;
	size_t runes;
	va_list ap;

	if (ctx->oom || (unsigned)id >= RULE_COUNT || !ctx->active[id])
		return;
	RG_ASSERT(out->n == 0 || out->v[out->n - 1].rule <= id);
	if (ctx->kept[id] >= RULES_MAX_PER_RULE) {
		out->dropped[id]++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* kept[] caps every rule, so only an allocation can fail here. */
	if (array_grow(&out->v, &out->cap, out->n + 1, sizeof(*out->v), VERDICT_MAX) < 0) {
		ctx->oom = true;
		return;
	}
	v = &out->v[out->n];
	v->rule = id;
	v->mode = ctx->cfg->rules[id].mode;
	/* "%.63s" may have cut a character: every reader gets valid UTF-8. */
	v->message = admission_warning_text(msg, SIZE_MAX, &runes);
	v->path = strdup(path);
	if (!v->message || !v->path) {
		free(v->message);
		free(v->path);
		ctx->oom = true;
		return;
	}
	out->n++;
	ctx->kept[id]++;
}

void rules_note(struct rules_ctx *ctx, const char *fmt, ...)
{
	char line[512];
	char *clean;
	size_t old = dynbuf_len(&ctx->note), add;
	va_list ap;

	if (ctx->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Control characters (a newline would split the line) and characters
	 * that "%.253s" cut are made safe first. */
	clean = admission_warning_text(line, SIZE_MAX, &add);
	if (!clean) {
		ctx->oom = true;
		return;
	}
	add = strlen(clean);
	/* Past the cap the earlier lines are worth more than the later ones:
	 * a line that does not fit is left out, so the buffer never reaches
	 * its cap and only an allocation can fail. */
	if (old + add + 2 <= RULES_MAX_NOTE) {
		if (old)
			dynbuf_addn(&ctx->note, "\n", 1);
		if (dynbuf_addn(&ctx->note, clean, add) < 0)
			ctx->oom = true;
	}
	free(clean);
}

bool rules_reported(const struct rules_ctx *ctx, enum rule_id id, const char *path)
{
	for (size_t i = 0; i < ctx->out->n; i++) {
		if (ctx->out->v[i].rule == id && strcmp(ctx->out->v[i].path, path) == 0)
			return true;
	}
	return false;
}

/* Runs the active rules' checks into ctx->out and ctx->note. */
static void evaluate(struct rules_ctx *ctx)
{
	const struct admission_request *req = ctx->req;

	if (req->operation != OP_CREATE && req->operation != OP_UPDATE)
		return;
	classify(ctx);
	/* Controllers only carry out specs people wrote: judging their writes
	 * would let an object admitted before rollgate block its own rollout. */
	if (!req->object || !ctx->kind ||
	    strlist_contains(&ctx->cfg->controllers, req->username ? req->username : ""))
		return;
	if (!compute_active(ctx))
		return;
	/* In rule order, each check reporting its own rule only: the verdict
	 * lists rules in documentation order without sorting. */
	for (int i = 0; i < RULE_COUNT; i++) {
		if (ctx->active[i])
			rules_catalog[i].check(ctx);
	}
}

int rules_evaluate(const struct config *cfg, const struct admission_request *req,
		   const struct rules_extra *extra, struct verdict *out)
{
	struct rules_ctx ctx;

	memset(out, 0, sizeof(*out));
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.req = req;
	ctx.extra = extra;
	ctx.out = out;
	dynbuf_init(&ctx.note, RULES_MAX_NOTE);
	evaluate(&ctx);
	if (!ctx.oom && dynbuf_len(&ctx.note)) {
		out->note = dynbuf_take(&ctx.note, NULL);
		ctx.oom = !out->note;
	}
	dynbuf_clear(&ctx.note);
	if (ctx.oom) {
		verdict_clear(out);
		return -1;
	}
	return 0;
}

/* "rule-id: message", malloc'd. */
static char *prefixed(const struct violation *v)
{
	const char *name = rules_name(v->rule);
	size_t n = strlen(name) + strlen(v->message) + 3;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s: %s", name, v->message);
	return s;
}

/* Denials: one entry per enforce violation. */
static int decide_enforce(const struct verdict *v, struct admission_response *resp)
{
	for (size_t i = 0; i < v->n; i++) {
		char *s;
		int rc;
		if (v->v[i].mode != MODE_ENFORCE)
			continue;
		s = prefixed(&v->v[i]);
		if (!s)
			return -1;
		rc = admission_deny(resp, s);
		free(s);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* The warnings, within what the response has left of the API server's
 * budget. */
static int decide_warnings(const struct verdict *v, struct admission_response *resp)
{
	struct rules_budget b = { RULES_WARN_PER_RULE, ADM_WARNING_MAX_RUNES, 0, 0 };
	struct rules_lines w;
	size_t room = ADM_WARNINGS_MAX_RUNES - ADM_WARNINGS_RESERVE;
	int rc = 0;

	b.runes = resp->warning_runes < room ? room - resp->warning_runes : 0;
	b.lines = resp->n_warnings < ADM_MAX_WARNINGS - 1 ? ADM_MAX_WARNINGS - 1 - resp->n_warnings
							  : 0;
	if (rules_warnings(v, &b, &w) < 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < w.n; i++)
		rc = admission_warn(resp, w.l[i].text);
	rules_lines_clear(&w);
	return rc;
}

/* Audit annotations: one per rule (keys must be unique in the response
 * object), its messages joined by "; ". */
static int decide_audit_rule(const struct verdict *v, enum rule_id id, struct admission_response *resp)
{
	struct dynbuf joined;
	bool any = false;
	int rc = 0;

	dynbuf_init(&joined, AUDIT_JOIN_MAX);
	for (size_t i = 0; i < v->n; i++) {
		const struct violation *x = &v->v[i];
		if (x->rule != id || x->mode != MODE_AUDIT)
			continue;
		if (dynbuf_len(&joined))
			dynbuf_addn(&joined, "; ", 2);
		rc = dynbuf_add(&joined, x->message);
		any = true;
	}
	if (rc == 0 && any)
		rc = admission_audit(resp, rules_name(id), dynbuf_ptr(&joined));
	dynbuf_clear(&joined);
	return rc < 0 ? -1 : 0;
}

int rules_decide(const struct verdict *v, struct admission_response *resp)
{
	if (decide_enforce(v, resp) < 0 || decide_warnings(v, resp) < 0)
		return -1;
	for (int i = 0; i < RULE_COUNT; i++) {
		if (decide_audit_rule(v, (enum rule_id)i, resp) < 0)
			return -1;
	}
	return 0;
}

void verdict_clear(struct verdict *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->v[i].message);
		free(v->v[i].path);
	}
	free(v->v);
	free(v->note);
	memset(v, 0, sizeof(*v));
}

const char *rules_flagger_target(const struct admission_request *req)
{
	const struct kind *canary = kinds_get(KIND_FLAGGER_CANARY);
	const cJSON *ref;
	const char *name;

	if (!str_eq(req->group, canary->group) || !str_eq(req->kind, canary->kind) ||
	    (req->operation != OP_CREATE && req->operation != OP_UPDATE) ||
	    (req->subresource && *req->subresource))
		return NULL;
	ref = json_get_path(req->object, "spec", "targetRef", NULL);
	name = json_get_string(ref, "name");
	if (!str_eq(json_get_string(ref, "kind"), kinds_get(KIND_DEPLOYMENT)->kind) || !name || !*name)
		return NULL;
	return name;
}
