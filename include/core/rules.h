#ifndef ROLLGATE_RULES_H
#define ROLLGATE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "config.h"
#include "lookup.h"

/*
 * The validating policy gate (docs/rules.md). Pure: takes a decoded request
 * and a config, returns violations; no I/O. The caller resolves a Flagger
 * Canary's target Deployment beforehand and passes it in `extra`.
 */

struct rules_extra {
	enum lookup_status flagger_target_status;
	const cJSON *flagger_target; /* the Deployment when FOUND */
	const char *flagger_target_name;
};

/*
 * The rule catalog (src/core/rules_catalog.c): one entry per enum rule_id,
 * at its index, in documentation order. It is the one place rule IDs,
 * default modes and summaries are written: the config takes names and
 * defaults from it, rules_evaluate runs its checks in order, and the CLI,
 * SARIF and the metrics name rules by it.
 */
struct rules_ctx; /* one evaluation, private to the gate */

enum rules_family {
	RULES_FAMILY_WORKLOAD, /* the pod template (rules_workload.c) */
	RULES_FAMILY_ROLLOUT,  /* rollout mechanics (rules_rollout.c) */
};

struct rules_entry {
	enum rule_id id;
	const char *name; /* the rule ID: "full-outage-rollout" */
	enum rule_mode default_mode;
	enum rules_family family;
	const char *summary; /* one line: SARIF's description, docs/rules.md's "Checks" */
	void (*check)(struct rules_ctx *ctx); /* run by rules_evaluate while the rule is active */
};

extern const struct rules_entry rules_catalog[RULE_COUNT];

/* The rule ID of id; "unknown" past the catalog. */
const char *rules_name(enum rule_id id);
/* The entry of a rule ID, or NULL. */
const struct rules_entry *rules_find(const char *name);
/* "workload" or "rollout". */
const char *rules_family_name(enum rules_family family);

/* Violations kept per rule; the rest are counted in verdict.dropped. Keeping
 * a few of every rule means an enforce violation is never crowded out. */
#define RULES_MAX_PER_RULE 32

struct violation {
	enum rule_id rule;
	enum rule_mode mode; /* the effective mode after exemptions */
	char *message;       /* malloc'd, without the rule ID prefix */
	char *path;          /* malloc'd field path, e.g. "spec.template.spec.containers[0]" */
};

struct verdict {
	struct violation *v;
	size_t n;
	size_t cap;                 /* elements allocated at v */
	size_t dropped[RULE_COUNT]; /* violations past RULES_MAX_PER_RULE, per rule */
	char *note; /* malloc'd informational warnings (e.g. Flagger lookup failed), one per
		     * '\n'-separated line, or NULL */
};

/* One line of what a verdict tells a person, besides the denial. */
struct rules_line {
	enum rule_id rule; /* the rule it speaks for; RULE_COUNT for a note */
	size_t violation;  /* index in verdict.v when the line is that violation's
			    * message, else RULES_NO_VIOLATION */
	char *text;        /* malloc'd, as admission_warning_text returns it */
};
#define RULES_NO_VIOLATION ((size_t)-1)

struct rules_lines {
	struct rules_line *l;
	size_t n;
};

/* How much of a verdict one rendering shows. */
struct rules_budget {
	size_t per_rule;   /* messages of one rule listed before the rest are counted (>= 1) */
	size_t item_runes; /* longest line, in runes (>= 96) */
	size_t runes;      /* all lines together, in runes */
	size_t lines;      /* number of lines */
};

/* Messages of one warn rule the webhook lists before counting the rest. */
#define RULES_WARN_PER_RULE 3

/* Names the Flagger Canary target to look up, or NULL when req is not a
 * Flagger Canary CREATE/UPDATE with a Deployment target. Borrowed pointer. */
const char *rules_flagger_target(const struct admission_request *req);

/*
 * Evaluates every rule not in mode off, after namespace exemptions (global and
 * per rule) and the skip annotation. DELETE and CONNECT yield nothing, and so
 * do requests by cfg->controllers and subresources other than
 * replicasets/scale (status writes are the controllers' business). extra may
 * be NULL (no lookup made). *out is overwritten; the caller releases it with
 * verdict_clear. Returns 0, or -1 on OOM (out is then empty).
 */
int rules_evaluate(const struct config *cfg, const struct admission_request *req,
		   const struct rules_extra *extra, struct verdict *out);

/*
 * The warning lines of a verdict: the one list that /validate returns and
 * that `rollgate check` and `rollgate fn` take their notes from. In rule
 * order, each rule with warn violations lists up to b->per_rule distinct
 * messages ("rule-id: message"; exact duplicates once), then one line
 * "rule-id: N more violations not shown" for the rest, including those
 * past RULES_MAX_PER_RULE; a rule in another mode gets that line only for
 * those. Then each note line, duplicates once. Every line is cut to
 * b->item_runes. When the lines exceed b->runes or b->lines, rules list
 * fewer messages first (down to one each, so every rule with violations
 * still appears), then the last notes go, counted in a final line. *out
 * is overwritten; the caller releases it with rules_lines_clear. Returns 0,
 * or -1 on OOM (out is then empty).
 */
int rules_warnings(const struct verdict *v, const struct rules_budget *b, struct rules_lines *out);
/* Frees the lines and leaves l empty (l itself is the caller's); accepts
 * NULL. */
void rules_lines_clear(struct rules_lines *l);

/*
 * Turns a verdict into the response: enforce violations deny (403) with
 * every message prefixed by its rule ID, rules_warnings become warnings
 * (within what is left of the response's budget), audit violations one
 * audit annotation per rule (key: the rule ID; several messages joined by
 * "; "). Warnings and audit annotations are added on denials too. Returns 0
 * or -1 on OOM.
 */
int rules_decide(const struct verdict *v, struct admission_response *resp);

void verdict_clear(struct verdict *v);

#endif
