#ifndef ROLLGATE_REPORT_H
#define ROLLGATE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "engine.h"
#include "config.h"
#include "rules.h"

/*
 * Policy reports: what the rules say of objects that already exist, as
 * wgpolicyk8s.io/v1alpha2 PolicyReports (and openreports.io/v1alpha1
 * Reports), one per namespace. Shared by `rollgate check --cluster -o
 * policyreport|openreports` and the report controller (reportctl), so both
 * write the same results for the same objects (docs/reports.md).
 *
 * The result of a rule for an object, from its effective mode:
 *   enforce violation -> fail     (admitted before rollgate, or while it
 *                                  failed open: it would be denied now)
 *   audit violation   -> fail     (would be denied once the rule enforces)
 *   warn violation    -> warn     (advisory, as Kyverno's unscored rules)
 *   silenced by the skip annotation -> skip
 *   no violation of any rule -> one pass result for the object (no rule)
 * One result per object and rule: its messages joined, its field paths in
 * properties.fieldPaths.
 */

enum report_result {
	REPORT_PASS,
	REPORT_FAIL,
	REPORT_WARN,
	REPORT_ERROR,
	REPORT_SKIP,
	REPORT_RESULT_COUNT
};

enum report_format { REPORT_POLICYREPORT, REPORT_OPENREPORTS };

/* One result about one object. */
struct report_item {
	enum rule_id rule; /* RULE_COUNT: the object's pass (no rule) */
	enum report_result result;
	enum rule_mode mode; /* of the rule, for properties.mode */
	unsigned violations; /* how many the rule found (kept and counted) */
	char *message;       /* malloc'd, at most REPORT_MESSAGE_MAX bytes */
	char *paths;         /* malloc'd ", "-joined field paths, or NULL */
};

/* What a report says of one object. api_version and kind are borrowed
 * (static strings of the caller's kind table); name and uid are owned. */
struct report_object {
	const char *api_version, *kind;
	char *name, *uid;
	time_t since; /* when these results were first seen (result timestamps) */
	struct report_item *items;
	size_t n;
};

/* Longest joined message of one result, in bytes. */
#define REPORT_MESSAGE_MAX 1024
/* The largest report rendered, in bytes of compact JSON: well under the
 * 1.5 MiB etcd stores per object. Results past it are left out (passes
 * first, then skips, warnings, failures) and counted in the annotation
 * rollgate.io/results-omitted; the summary still counts them. */
#define REPORT_MAX_BYTES (1u << 20)
/* The name of the report in each namespace. */
#define REPORT_NAME "rollgate"
/* The label that marks the reports rollgate manages. */
#define REPORT_LABEL_KEY "app.kubernetes.io/managed-by"
#define REPORT_LABEL_VALUE "rollgate"
/* The annotation carrying the digest of a report's results (timestamps
 * left out), read back to tell whether a report is current. */
#define REPORT_DIGEST_ANNOTATION "rollgate.io/results-digest"
#define REPORT_DIGEST_LEN 72 /* "sha256:" + 64 hex + NUL */

const char *report_result_name(enum report_result r);
/* "high" for the rules that enforce by default, "medium" for the others. */
const char *report_severity(enum rule_id rule);

/*
 * The items of one verdict: violations grouped per rule (results by mode,
 * see above); rules that `unskipped` (the verdict of the same object with
 * its skip annotation removed; NULL when it has none) finds but v does not
 * become skips; nothing at all becomes one pass. skip_key names the
 * annotation in skip messages. *items is the caller's to
 * report_items_free. Returns 0 or -1 on OOM.
 */
int report_items_from_verdict(const struct verdict *v, const struct verdict *unskipped,
			      const char *skip_key, struct report_item **items, size_t *n);
void report_items_free(struct report_item *items, size_t n);
/* True when the two item lists say the same (timestamps aside). */
bool report_items_equal(const struct report_item *a, size_t an, const struct report_item *b,
			size_t bn);

/*
 * Evaluates obj (an object as the API serves it, apiVersion and kind set)
 * with the rules of e, as `rollgate check` does, resolving a Flagger
 * target through e's source; when obj carries the skip annotation, once
 * more without it, to tell skips apart. v gets the verdict (the caller's to
 * verdict_clear); items what a report says (nothing in a namespace exempt
 * from every rule). Returns 0 or -1 with err.
 */
int report_check(struct engine *e, const cJSON *obj, struct verdict *v, struct report_item **items,
		 size_t *n, char *err, size_t errlen);

/* Frees what o owns and zeroes it; NULL ok. */
void report_object_clear(struct report_object *o);
/* Sorts by kind, then name. */
void report_objects_sort(struct report_object **objs, size_t n);

/*
 * The digest of a namespace's results: SHA-256 over every object's
 * identity and items in the given order (timestamps left out), as
 * "sha256:<hex>".
 */
void report_digest(const char *ns, struct report_object *const *objs, size_t n,
		   char out[REPORT_DIGEST_LEN]);

/*
 * The report of namespace ns over objs (in that order): a PolicyReport or
 * an openreports Report named REPORT_NAME, labelled as rollgate's, with
 * the digest annotation, a summary of every result and the results that
 * fit REPORT_MAX_BYTES. Returns a new tree (the caller deletes it) or NULL
 * on OOM.
 */
cJSON *report_render(enum report_format fmt, const char *ns, struct report_object *const *objs,
		     size_t n);

#endif
