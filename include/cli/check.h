#ifndef ROLLGATE_CHECK_H
#define ROLLGATE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "report.h"
#include "rules.h"

/*
 * What `rollgate check` found, whether the objects came from files or from
 * a cluster (clustercheck), and its output formats: text, JSON, SARIF and,
 * for a cluster, PolicyReports and openreports Reports.
 */

enum check_format { CHECK_TEXT, CHECK_JSON, CHECK_SARIF, CHECK_POLICYREPORT, CHECK_OPENREPORTS };

/* Who an object is and where it came from. Strings are copied. */
struct check_where {
	const char *file; /* manifest file, or NULL for an object of a cluster */
	int line;
	const char *api_version, *kind, *name, *namespace_, *uid;
};

struct check_report;

/* keep_items: the report formats need every object's results, passes too.
 * NULL on OOM. */
struct check_report *check_report_new(bool cluster, bool keep_items);
void check_report_free(struct check_report *r);

/*
 * Takes the verdict of one object: its violations move into the report
 * (v keeps its notes and is still the caller's to free) and its notes
 * become lines; items (may be NULL) are taken for the report formats.
 * Returns 0 or -1 on OOM.
 */
int check_report_add(struct check_report *r, const struct check_where *w, struct verdict *v,
		     struct report_item *items, size_t n_items);
/* A note about an object ("note: text" at its place). 0 or -1 on OOM. */
int check_report_note(struct check_report *r, const struct check_where *w, const char *text);
/* A note about the whole run (cluster: e.g. a rule not judged). */
int check_report_run_note(struct check_report *r, const char *text);
/* Objects counted as checked without anything to report (e.g. ReplicaSets
 * in a cluster). */
void check_report_count(struct check_report *r, size_t objects);
/* Manifest files read and kustomization files passed over (file mode). */
void check_report_files(struct check_report *r, size_t files, size_t skipped);

/* Prints the report to stdout. Returns the exit status: 0 without enforce
 * violations, 1 with, 2 on OOM (with a message on stderr). */
int check_report_print(struct check_report *r, enum check_format fmt, const struct config *cfg);

#endif
