/*
 * `rollgate check`: the policy rules over manifests, as text, JSON or SARIF.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliutil.h"
#include "jsonutil.h"
#include "log.h"
#include "pipeline.h"

enum out_format { OUT_TEXT, OUT_JSON, OUT_SARIF };

/* One violation with where it came from. */
struct finding {
	const struct pobj *o;
	struct violation v; /* message and path owned here */
};

struct report {
	struct finding *f;
	size_t n;
	size_t counts[MODE_ENFORCE + 1];
	size_t objects;
	char **notes; /* informational warnings, "FILE:LINE: text" */
	size_t n_notes;
};

static const char *obj_kind(const cJSON *o)
{
	const char *k = json_get_string(o, "kind");
	return k ? k : "?";
}

static const char *obj_name(const cJSON *o)
{
	const char *n = json_get_string(json_get(o, "metadata"), "name");
	return n ? n : "?";
}

static int add_note(struct report *r, const struct pobj *o, const char *text)
{
	char buf[1024];
	char **nv = realloc(r->notes, (r->n_notes + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	r->notes = nv;
	snprintf(buf, sizeof(buf), "%s:%d: %s", o->file, o->line, text);
	r->notes[r->n_notes] = strdup(buf);
	return r->notes[r->n_notes++] ? 0 : -1;
}

/* Moves the verdict's violations into the report. */
static int take_verdict(struct report *r, const struct pobj *o, struct verdict *v)
{
	struct finding *nf;
	struct rules_lines notes;
	int rc = 0;

	/* One note per line, each with its place, so every line greps alike. */
	if (pipeline_notes(v, &notes) < 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < notes.n; i++) {
		char line[1100];
		snprintf(line, sizeof(line), "note: %s/%s: %s", obj_kind(o->obj), obj_name(o->obj),
			 notes.l[i].text);
		rc = add_note(r, o, line);
	}
	rules_lines_free(&notes);
	if (rc < 0)
		return -1;
	if (v->n == 0)
		return 0;
	nf = realloc(r->f, (r->n + v->n) * sizeof(*nf));
	if (!nf)
		return -1;
	r->f = nf;
	for (size_t i = 0; i < v->n; i++) {
		r->f[r->n].o = o;
		r->f[r->n].v = v->v[i];
		r->counts[v->v[i].mode]++;
		r->n++;
		v->v[i].message = v->v[i].path = NULL;
	}
	return 0;
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].v.message);
		free(r->f[i].v.path);
	}
	for (size_t i = 0; i < r->n_notes; i++)
		free(r->notes[i]);
	free(r->notes);
	free(r->f);
}

static void print_text(const struct report *r, const struct mset *m)
{
	for (size_t i = 0; i < r->n_notes; i++)
		printf("%s\n", r->notes[i]);
	for (size_t i = 0; i < r->n; i++) {
		const struct finding *f = &r->f[i];
		printf("%s:%d: %s %s %s/%s: %s\n", f->o->file, f->o->line, config_mode_name(f->v.mode),
		       config_rule_name(f->v.rule), obj_kind(f->o->obj), obj_name(f->o->obj),
		       f->v.message);
	}
	printf("%zu object%s in %zu file%s", r->objects, r->objects == 1 ? "" : "s", m->n_files,
	       m->n_files == 1 ? "" : "s");
	if (m->n_skipped)
		printf(" (%zu kustomization file%s skipped)", m->n_skipped,
		       m->n_skipped == 1 ? "" : "s");
	printf(": %zu enforce, %zu warn, %zu audit violation%s\n", r->counts[MODE_ENFORCE],
	       r->counts[MODE_WARN], r->counts[MODE_AUDIT], r->n == 1 ? "" : "s");
}

static cJSON *finding_json(const struct finding *f)
{
	cJSON *o = cJSON_CreateObject();
	const char *ns = json_get_string(json_get(f->o->obj, "metadata"), "namespace");

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "file", f->o->file);
	cJSON_AddNumberToObject(o, "line", f->o->line);
	cJSON_AddStringToObject(o, "mode", config_mode_name(f->v.mode));
	cJSON_AddStringToObject(o, "rule", config_rule_name(f->v.rule));
	cJSON_AddStringToObject(o, "kind", obj_kind(f->o->obj));
	cJSON_AddStringToObject(o, "name", obj_name(f->o->obj));
	cJSON_AddStringToObject(o, "namespace", ns ? ns : "");
	cJSON_AddStringToObject(o, "message", f->v.message);
	cJSON_AddStringToObject(o, "path", f->v.path ? f->v.path : "");
	return o;
}

static cJSON *report_json(const struct report *r, const struct mset *m)
{
	cJSON *doc = cJSON_CreateObject(), *s, *arr, *notes;

	if (!doc)
		return NULL;
	cJSON_AddStringToObject(doc, "tool", "rollgate");
	cJSON_AddStringToObject(doc, "version", ROLLGATE_VERSION);
	s = cJSON_AddObjectToObject(doc, "summary");
	cJSON_AddNumberToObject(s, "files", (double)m->n_files);
	cJSON_AddNumberToObject(s, "skipped", (double)m->n_skipped);
	cJSON_AddNumberToObject(s, "objects", (double)r->objects);
	cJSON_AddNumberToObject(s, "enforce", (double)r->counts[MODE_ENFORCE]);
	cJSON_AddNumberToObject(s, "warn", (double)r->counts[MODE_WARN]);
	cJSON_AddNumberToObject(s, "audit", (double)r->counts[MODE_AUDIT]);
	cJSON_AddBoolToObject(s, "passed", r->counts[MODE_ENFORCE] == 0);
	arr = cJSON_AddArrayToObject(doc, "violations");
	for (size_t i = 0; arr && i < r->n; i++)
		cJSON_AddItemToArray(arr, finding_json(&r->f[i]));
	notes = cJSON_AddArrayToObject(doc, "notes");
	for (size_t i = 0; notes && i < r->n_notes; i++)
		cJSON_AddItemToArray(notes, cJSON_CreateString(r->notes[i]));
	return doc;
}

static const char *sarif_level(enum rule_mode m)
{
	return m == MODE_ENFORCE ? "error" : m == MODE_WARN ? "warning" : "note";
}

/* One line per rule for SARIF's rule metadata, in enum rule_id order. */
static const char *const rule_summary[RULE_COUNT] = {
	[RULE_REPLICASET_DIRECT_EDIT] = "Hand edits of ReplicaSets owned by a Deployment or Rollout",
	[RULE_CANARY_WITHOUT_READINESS] = "Canary containers without a readinessProbe",
	[RULE_ROLLOUT_WITHOUT_READINESS] = "Rolling-update containers without a readinessProbe",
	[RULE_MUTABLE_IMAGE_TAG] = "Images without a tag, or tagged latest, and no digest",
	[RULE_NO_ROLLBACK_HISTORY] = "revisionHistoryLimit: 0 leaves nothing to roll back to",
	[RULE_FULL_OUTAGE_ROLLOUT] = "maxUnavailable that takes every replica down at once",
	[RULE_LIVENESS_WITHOUT_STARTUP_GRACE] = "Liveness probes that start checking at once",
	[RULE_UNGUARDED_CANARY_STEPS] = "Argo canaries nothing checks before full promotion",
	[RULE_UNGUARDED_BLUE_GREEN] = "Argo blue-green Rollouts that promote unchecked",
	[RULE_POD_TEMPLATE_HASH_TAMPER] = "Controller-owned hash labels in a pod template",
};

/* "full-outage-rollout" -> "FullOutageRollout": SARIF wants a rule name
 * that differs from its id. */
static void rule_pascal_name(const char *id, char *out, size_t len)
{
	size_t o = 0;
	bool up = true;

	for (const char *p = id; *p && o + 1 < len; p++) {
		if (*p == '-') {
			up = true;
			continue;
		}
		out[o++] = up ? (char)toupper((unsigned char)*p) : *p;
		up = false;
	}
	out[o] = '\0';
}

static cJSON *sarif_rules(const struct config *cfg)
{
	cJSON *rules = cJSON_CreateArray();

	for (int i = 0; rules && i < RULE_COUNT; i++) {
		const char *id = config_rule_name((enum rule_id)i);
		const char *text = rule_summary[i] ? rule_summary[i] : id;
		cJSON *r = cJSON_CreateObject(), *d, *c;
		char help[400], name[64];
		if (!r)
			break;
		rule_pascal_name(id, name, sizeof(name));
		cJSON_AddStringToObject(r, "id", id);
		cJSON_AddStringToObject(r, "name", name);
		d = cJSON_AddObjectToObject(r, "shortDescription");
		cJSON_AddStringToObject(d, "text", text);
		d = cJSON_AddObjectToObject(r, "fullDescription");
		cJSON_AddStringToObject(d, "text", text);
		/* No helpUri: where the docs are published is the user's to say;
		 * the help names the section of docs/rules.md. */
		snprintf(help, sizeof(help), "%s. See docs/rules.md, section %s.", text, id);
		d = cJSON_AddObjectToObject(r, "help");
		cJSON_AddStringToObject(d, "text", help);
		/* An off rule stays listed (ruleIndex is the rule's number), disabled. */
		c = cJSON_AddObjectToObject(r, "defaultConfiguration");
		cJSON_AddBoolToObject(c, "enabled", cfg->rules[i].mode != MODE_OFF);
		cJSON_AddStringToObject(c, "level", sarif_level(cfg->rules[i].mode));
		cJSON_AddItemToArray(rules, r);
	}
	return rules;
}

/*
 * The artifact URI of a file name: SARIF wants a URI reference, and code
 * scanning resolves relative ones against the repository root. "./" goes,
 * absolute paths become file:// URIs, and everything outside RFC 3986's
 * unreserved set and "/" is percent-encoded. Returns a malloc'd string.
 */
static char *sarif_uri(const char *file)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *prefix = file[0] == '/' ? "file://" : "";
	size_t n = strlen(file), o;
	char *out;

	while (strncmp(file, "./", 2) == 0)
		file += 2, n -= 2;
	out = malloc(strlen(prefix) + 3 * n + 1);
	if (!out)
		return NULL;
	o = strlen(prefix);
	memcpy(out, prefix, o);
	for (const unsigned char *p = (const unsigned char *)file; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~/", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static cJSON *sarif_result(const struct finding *f)
{
	cJSON *res = cJSON_CreateObject(), *msg, *locs, *loc, *phys, *art, *reg, *logical;
	char text[1200], fqn[600];
	char *uri = sarif_uri(f->o->file);
	const char *ns = json_get_string(json_get(f->o->obj, "metadata"), "namespace");

	if (!res || !uri) {
		cJSON_Delete(res);
		free(uri);
		return NULL;
	}
	snprintf(text, sizeof(text), "%s/%s: %s", obj_kind(f->o->obj), obj_name(f->o->obj),
		 f->v.message);
	cJSON_AddStringToObject(res, "ruleId", config_rule_name(f->v.rule));
	cJSON_AddNumberToObject(res, "ruleIndex", (double)f->v.rule);
	cJSON_AddStringToObject(res, "level", sarif_level(f->v.mode));
	msg = cJSON_AddObjectToObject(res, "message");
	cJSON_AddStringToObject(msg, "text", text);
	locs = cJSON_AddArrayToObject(res, "locations");
	loc = cJSON_CreateObject();
	cJSON_AddItemToArray(locs, loc);
	phys = cJSON_AddObjectToObject(loc, "physicalLocation");
	art = cJSON_AddObjectToObject(phys, "artifactLocation");
	cJSON_AddStringToObject(art, "uri", uri);
	reg = cJSON_AddObjectToObject(phys, "region");
	cJSON_AddNumberToObject(reg, "startLine", f->o->line > 0 ? f->o->line : 1);
	/* Which object and field, for readers that do not open the file. */
	snprintf(fqn, sizeof(fqn), "%s%s%s/%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "",
		 obj_kind(f->o->obj), obj_name(f->o->obj), f->v.path ? ":" : "",
		 f->v.path ? f->v.path : "");
	logical = cJSON_AddArrayToObject(loc, "logicalLocations");
	loc = cJSON_CreateObject();
	cJSON_AddItemToArray(logical, loc);
	cJSON_AddStringToObject(loc, "fullyQualifiedName", fqn);
	cJSON_AddStringToObject(loc, "kind", "resource");
	free(uri);
	return res;
}

static cJSON *report_sarif(const struct report *r, const struct config *cfg)
{
	cJSON *doc = cJSON_CreateObject(), *runs, *run, *tool, *drv, *results;

	if (!doc)
		return NULL;
	cJSON_AddStringToObject(doc, "$schema", "https://json.schemastore.org/sarif-2.1.0.json");
	cJSON_AddStringToObject(doc, "version", "2.1.0");
	runs = cJSON_AddArrayToObject(doc, "runs");
	run = cJSON_CreateObject();
	cJSON_AddItemToArray(runs, run);
	tool = cJSON_AddObjectToObject(run, "tool");
	drv = cJSON_AddObjectToObject(tool, "driver");
	cJSON_AddStringToObject(drv, "name", "rollgate");
	cJSON_AddStringToObject(drv, "version", ROLLGATE_VERSION);
	cJSON_AddItemToObject(drv, "rules", sarif_rules(cfg));
	results = cJSON_AddArrayToObject(run, "results");
	for (size_t i = 0; results && i < r->n; i++)
		cJSON_AddItemToArray(results, sarif_result(&r->f[i]));
	return doc;
}

static int print_json_doc(cJSON *doc)
{
	char *s = doc ? cJSON_Print(doc) : NULL;

	cJSON_Delete(doc);
	if (!s)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}

static void check_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate check [--config FILE] [-o text|json|sarif] PATH...\n\n"
		"Evaluates every object in the manifests under PATH (files, or directories\n"
		"searched recursively for .yaml, .yml and .json, passing over kustomization\n"
		"files; '-' reads stdin) with the policy rules, as a CREATE by an ordinary\n"
		"user: the verdict the cluster gives. Multi-document streams and List kinds\n"
		"are read the way kubectl reads them.\n\n"
		"Options:\n"
		"  --config FILE        YAML config (default: built-in defaults)\n"
		"  -o, --output FORMAT  text (default), json, or sarif (SARIF 2.1.0)\n"
		"  -h, --help           show this help\n\n"
		"Text output: FILE:LINE: MODE RULE-ID KIND/NAME: message, then a summary.\n"
		"Exit status: 0 no enforce violation, 1 at least one, 2 unreadable or invalid input.\n");
}

static int check_all(struct engine *e, const struct mset *m, struct report *r, char *err,
		     size_t errlen)
{
	char why[512];

	/* Rules never read ConfigMap or Secret values: one that lookups cannot
	 * use (a SOPS-encrypted Secret) is worth a note, not a failure. */
	for (size_t i = 0; i < m->n_objs; i++) {
		const struct pobj *o = &m->objs[i];
		if (!o->unusable)
			continue;
		snprintf(why, sizeof(why), "note: %s/%s: not used for lookups: %s",
			 obj_kind(o->obj), obj_name(o->obj), o->unusable);
		if (add_note(r, o, why) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}

	for (size_t i = 0; i < m->n_objs; i++) {
		struct verdict v;
		const struct pobj *o = &m->objs[i];
		if (pipeline_check(e, o->obj, &v, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", o->file, o->line, why);
			return -1;
		}
		r->objects++;
		if (take_verdict(r, o, &v) < 0) {
			verdict_free(&v);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		verdict_free(&v);
	}
	return 0;
}

int cli_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	enum out_format fmt = OUT_TEXT;
	struct engine e;
	struct mset m = { 0 };
	struct report r = { 0 };
	char err[1024];
	int c, rc = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'o':
			if (strcmp(optarg, "text") == 0)
				fmt = OUT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				fmt = OUT_JSON;
			else if (strcmp(optarg, "sarif") == 0)
				fmt = OUT_SARIF;
			else
				return cli_fail("check", "unknown output format \"%s\" (text, json, sarif)", optarg);
			break;
		case 'h': check_usage(stdout); return 0;
		default: check_usage(stderr); return 2;
		}
	}
	if (optind >= argc)
		return cli_fail("check", "no PATH given (see --help)");
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	if (engine_open(&e, config, NULL, NULL, err, sizeof(err)) < 0)
		return cli_fail("check", "%s", err);
	if (mset_load_paths(&m, argv + optind, argc - optind, err, sizeof(err)) < 0 ||
	    pipeline_add_objects(&e, &m, 0, err, sizeof(err)) < 0 ||
	    check_all(&e, &m, &r, err, sizeof(err)) < 0) {
		cli_fail("check", "%s", err);
		goto out;
	}
	if (fmt == OUT_TEXT)
		print_text(&r, &m);
	else if (print_json_doc(fmt == OUT_JSON ? report_json(&r, &m)
						 : report_sarif(&r, e.cfg)) < 0) {
		cli_fail("check", "out of memory");
		goto out;
	}
	rc = r.counts[MODE_ENFORCE] ? 1 : 0;
out:
	report_free(&r);
	mset_free(&m);
	engine_close(&e);
	return rc;
}
