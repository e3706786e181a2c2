/*
 * The warning lines of a verdict (rules_warnings): which messages a person
 * sees, so that every rule with violations appears, within a budget of runes
 * and lines such as the API server's. Pure: no I/O.
 */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest "N more ..." line, in runes: the budget keeps room for one. */
#define MORE_LINE_RUNES 96

/* One rule's share of the lines. */
struct group {
	enum rule_id rule;
	size_t cand[RULES_MAX_PER_RULE]; /* distinct warn messages, as indexes in v->v */
	size_t n_cand;
	size_t shown;                   /* of cand, listed one per line */
	size_t dropped;                 /* past RULES_MAX_PER_RULE */
	char *text[RULES_MAX_PER_RULE]; /* "rule-id: message" of cand[0 .. max shown) */
	size_t runes[RULES_MAX_PER_RULE];
};

/* What one rendering builds: groups in rule order, then note lines. */
struct plan {
	const struct verdict *v;
	const struct rules_budget *b;
	struct group g[RULE_COUNT];
	size_t ng;
	char **notes;
	size_t *note_runes;
	size_t n_notes;
};

static size_t group_more(const struct group *g)
{
	return g->n_cand - g->shown + g->dropped;
}

/* The line that counts what g does not list; returns its length, in
 * bytes and runes alike (rule IDs and numbers are ASCII). */
static size_t more_line(const struct group *g, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s: %zu more violations not shown", rules_name(g->rule),
			 group_more(g));
	return n < 0 ? 0 : (size_t)n;
}

/* Runes and lines of a group as it stands. */
static void group_cost(const struct group *g, size_t *runes, size_t *lines)
{
	char line[MORE_LINE_RUNES];

	for (size_t k = 0; k < g->shown; k++)
		*runes += g->runes[k];
	*lines += g->shown;
	if (group_more(g)) {
		*runes += more_line(g, line, sizeof(line));
		*lines += 1;
	}
}

static bool seen_message(const struct verdict *v, const struct group *g, const char *msg)
{
	for (size_t k = 0; k < g->n_cand; k++) {
		if (strcmp(v->v[g->cand[k]].message, msg) == 0)
			return true;
	}
	return false;
}

/* Fills group g for rule id from v (sorted by rule): the distinct messages
 * of its warn violations, and the rendered text of as many as can be shown. */
static int group_fill(struct plan *p, struct group *g, enum rule_id id, size_t from, size_t to)
{
	const struct verdict *v = p->v;

	g->rule = id;
	g->dropped = v->dropped[id];
	for (size_t i = from; i < to; i++) {
		if (v->v[i].mode != MODE_WARN || g->n_cand == RULES_MAX_PER_RULE ||
		    seen_message(v, g, v->v[i].message))
			continue;
		g->cand[g->n_cand++] = i;
	}
	g->shown = g->n_cand < p->b->per_rule ? g->n_cand : p->b->per_rule;
	for (size_t k = 0; k < g->shown; k++) {
		const char *name = rules_name(id), *msg = v->v[g->cand[k]].message;
		size_t n = strlen(name) + strlen(msg) + 3;
		char *line = malloc(n);
		if (!line)
			return -1;
		snprintf(line, n, "%s: %s", name, msg);
		g->text[k] = admission_warning_text(line, p->b->item_runes, &g->runes[k]);
		free(line);
		if (!g->text[k])
			return -1;
	}
	return 0;
}

static int collect_groups(struct plan *p)
{
	const struct verdict *v = p->v;
	size_t i = 0;

	for (int r = 0; r < RULE_COUNT; r++) {
		size_t from = i;
		while (i < v->n && v->v[i].rule == (enum rule_id)r)
			i++;
		if (i == from && v->dropped[r] == 0)
			continue;
		if (group_fill(p, &p->g[p->ng], (enum rule_id)r, from, i) < 0)
			return -1;
		/* A rule in enforce or audit mode speaks here only of what it
		 * dropped; its messages went to the denial or the audit log. */
		if (p->g[p->ng].n_cand || p->g[p->ng].dropped)
			p->ng++;
	}
	return 0;
}

static bool seen_note(const struct plan *p, const char *text)
{
	for (size_t k = 0; k < p->n_notes; k++) {
		if (strcmp(p->notes[k], text) == 0)
			return true;
	}
	return false;
}

static int add_note(struct plan *p, const char *line, size_t n)
{
	char *raw = strndup(line, n), *text, **nn;
	size_t runes, *nr;

	if (!raw)
		return -1;
	text = admission_warning_text(raw, p->b->item_runes, &runes);
	free(raw);
	if (!text)
		return -1;
	if (runes == 0 || seen_note(p, text)) {
		free(text);
		return 0;
	}
	nn = realloc(p->notes, (p->n_notes + 1) * sizeof(*nn));
	if (nn)
		p->notes = nn;
	nr = nn ? realloc(p->note_runes, (p->n_notes + 1) * sizeof(*nr)) : NULL;
	if (!nr) {
		free(text);
		return -1;
	}
	p->note_runes = nr;
	p->notes[p->n_notes] = text;
	p->note_runes[p->n_notes++] = runes;
	return 0;
}

/* The note's lines; it is at most RULES_MAX_NOTE bytes. */
static int collect_notes(struct plan *p)
{
	for (const char *s = p->v->note; s && *s;) {
		size_t n = strcspn(s, "\n");
		if (n && add_note(p, s, n) < 0)
			return -1;
		s += n;
		if (*s == '\n')
			s++;
	}
	return 0;
}

/* Lists fewer messages of the rule that lists most (the later one on a
 * tie) until the groups and the notes fit, keeping one per rule. */
static void plan_shrink(struct plan *p)
{
	for (;;) {
		size_t runes = 0, lines = p->n_notes;
		struct group *big = NULL;
		for (size_t k = 0; k < p->n_notes; k++)
			runes += p->note_runes[k];
		for (size_t i = 0; i < p->ng; i++) {
			group_cost(&p->g[i], &runes, &lines);
			if (p->g[i].shown > 1 && (!big || p->g[i].shown >= big->shown))
				big = &p->g[i];
		}
		if ((runes <= p->b->runes && lines <= p->b->lines) || !big)
			return;
		big->shown--;
	}
}

static int emit(struct rules_lines *out, enum rule_id rule, size_t violation, char *text)
{
	struct rules_line *nl = realloc(out->l, (out->n + 1) * sizeof(*nl));

	if (!nl) {
		free(text);
		return -1;
	}
	out->l = nl;
	out->l[out->n++] = (struct rules_line){ rule, violation, text };
	return 0;
}

static int emit_groups(struct plan *p, struct rules_lines *out, size_t *runes)
{
	for (size_t i = 0; i < p->ng; i++) {
		struct group *g = &p->g[i];
		char line[MORE_LINE_RUNES], *more;
		for (size_t k = 0; k < g->shown; k++) {
			char *text = g->text[k];
			g->text[k] = NULL;
			*runes += g->runes[k];
			if (emit(out, g->rule, g->cand[k], text) < 0)
				return -1;
		}
		if (!group_more(g))
			continue;
		*runes += more_line(g, line, sizeof(line));
		more = strdup(line);
		if (!more || emit(out, g->rule, RULES_NO_VIOLATION, more) < 0)
			return -1;
	}
	return 0;
}

/* Notes in order while they fit, keeping room for the line that counts
 * the rest. */
static int emit_notes(struct plan *p, struct rules_lines *out, size_t runes)
{
	size_t k = 0;
	char line[MORE_LINE_RUNES], *text;

	for (; k < p->n_notes; k++) {
		bool last = k + 1 == p->n_notes;
		size_t need_r = p->note_runes[k] + (last ? 0 : MORE_LINE_RUNES);
		size_t need_l = out->n + 1 + (last ? 0 : 1);
		if (runes + need_r > p->b->runes || need_l > p->b->lines)
			break;
		char *note = p->notes[k];
		p->notes[k] = NULL;
		runes += p->note_runes[k];
		if (emit(out, RULE_COUNT, RULES_NO_VIOLATION, note) < 0)
			return -1;
	}
	if (k == p->n_notes || runes + MORE_LINE_RUNES > p->b->runes || out->n + 1 > p->b->lines)
		return 0;
	snprintf(line, sizeof(line), "%zu more notes not shown", p->n_notes - k);
	text = strdup(line);
	return text ? emit(out, RULE_COUNT, RULES_NO_VIOLATION, text) : -1;
}

static void plan_clear(struct plan *p)
{
	for (size_t i = 0; i < RULE_COUNT; i++) {
		for (size_t k = 0; k < RULES_MAX_PER_RULE; k++)
			free(p->g[i].text[k]);
	}
	for (size_t k = 0; k < p->n_notes; k++)
		free(p->notes[k]);
	free(p->notes);
	free(p->note_runes);
}

int rules_warnings(const struct verdict *v, const struct rules_budget *b, struct rules_lines *out)
{
	struct plan *p = calloc(1, sizeof(*p));
	size_t runes = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!p)
		return -1;
	p->v = v;
	p->b = b;
	if (collect_groups(p) < 0 || collect_notes(p) < 0)
		goto out;
	plan_shrink(p);
	if (emit_groups(p, out, &runes) < 0 || emit_notes(p, out, runes) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		rules_lines_clear(out);
	plan_clear(p);
	free(p);
	return rc;
}

void rules_lines_clear(struct rules_lines *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->l[i].text);
	free(l->l);
	memset(l, 0, sizeof(*l));
}
