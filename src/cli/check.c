/*
 * `rollgate check`: the policy rules over manifests, as text, JSON or SARIF.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cli.h"
#include "clustercheck.h"
#include "cliutil.h"
#include "jsonutil.h"
#include "log.h"
#include "pipeline.h"

/* One object that has something to say. */
struct cobj {
	char *file; /* NULL: an object of a cluster */
	int line;
	char *where; /* "FILE:LINE" or "namespace/Kind/name" */
	char *api_version, *kind, *name, *ns, *uid;
	struct report_item *items; /* report formats only */
	size_t n_items;
};

/* One violation of one object. */
struct finding {
	size_t obj;
	struct violation v; /* message and path owned here */
};

struct check_report {
	bool cluster, keep_items;
	struct cobj *o;
	size_t n_o, cap_o;
	struct finding *f;
	size_t n;
	size_t counts[MODE_ENFORCE + 1];
	size_t objects;
	char **notes; /* "FILE:LINE: note: text", or "note: text" for the run */
	size_t n_notes;
	size_t n_files, n_skipped;
};

struct check_report *check_report_new(bool cluster, bool keep_items)
{
	struct check_report *r = calloc(1, sizeof(*r));

	if (r) {
		r->cluster = cluster;
		r->keep_items = keep_items;
	}
	return r;
}

static void cobj_clear(struct cobj *o)
{
	free(o->file);
	free(o->where);
	free(o->api_version);
	free(o->kind);
	free(o->name);
	free(o->ns);
	free(o->uid);
	report_items_free(o->items, o->n_items);
}

void check_report_free(struct check_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].v.message);
		free(r->f[i].v.path);
	}
	for (size_t i = 0; i < r->n_o; i++)
		cobj_clear(&r->o[i]);
	for (size_t i = 0; i < r->n_notes; i++)
		free(r->notes[i]);
	free(r->notes);
	free(r->f);
	free(r->o);
	free(r);
}

void check_report_count(struct check_report *r, size_t objects)
{
	r->objects += objects;
}

void check_report_files(struct check_report *r, size_t files, size_t skipped)
{
	r->n_files = files;
	r->n_skipped = skipped;
}

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s ? s : dflt);
}

/* The object w names, added; its index in *idx. */
static int add_obj(struct check_report *r, const struct check_where *w, size_t *idx)
{
	struct cobj *o;
	char where[1200];

	if (r->n_o == r->cap_o) {
		size_t cap = r->cap_o ? r->cap_o * 2 : 64;
		struct cobj *nv = realloc(r->o, cap * sizeof(*nv));
		if (!nv)
			return -1;
		r->o = nv;
		r->cap_o = cap;
	}
	o = &r->o[r->n_o];
	memset(o, 0, sizeof(*o));
	if (w->file)
		snprintf(where, sizeof(where), "%s:%d", w->file, w->line);
	else
		snprintf(where, sizeof(where), "%s/%s/%s", w->namespace_ ? w->namespace_ : "",
			 w->kind ? w->kind : "?", w->name ? w->name : "?");
	o->file = w->file ? strdup(w->file) : NULL;
	o->line = w->line;
	o->where = strdup(where);
	o->api_version = dup_or(w->api_version, "");
	o->kind = dup_or(w->kind, "?");
	o->name = dup_or(w->name, "?");
	o->ns = dup_or(w->namespace_, "");
	o->uid = dup_or(w->uid, "");
	r->n_o++;
	*idx = r->n_o - 1;
	if ((w->file && !o->file) || !o->where || !o->api_version || !o->kind || !o->name || !o->ns ||
	    !o->uid)
		return -1;
	return 0;
}

static int push_note(struct check_report *r, char *line)
{
	char **nv;

	if (!line)
		return -1;
	nv = realloc(r->notes, (r->n_notes + 1) * sizeof(*nv));
	if (!nv) {
		free(line);
		return -1;
	}
	r->notes = nv;
	r->notes[r->n_notes++] = line;
	return 0;
}

int check_report_note(struct check_report *r, const struct check_where *w, const char *text)
{
	char buf[1600];

	if (w->file)
		snprintf(buf, sizeof(buf), "%s:%d: note: %s/%s: %s", w->file, w->line,
			 w->kind ? w->kind : "?", w->name ? w->name : "?", text);
	else
		snprintf(buf, sizeof(buf), "%s/%s/%s: note: %s", w->namespace_ ? w->namespace_ : "",
			 w->kind ? w->kind : "?", w->name ? w->name : "?", text);
	return push_note(r, strdup(buf));
}

int check_report_run_note(struct check_report *r, const char *text)
{
	char buf[1200];

	snprintf(buf, sizeof(buf), "note: %s", text);
	return push_note(r, strdup(buf));
}

/* Moves the verdict's violations into the report. */
static int take_violations(struct check_report *r, size_t obj, struct verdict *v)
{
	struct finding *nf;

	if (v->n == 0)
		return 0;
	nf = realloc(r->f, (r->n + v->n) * sizeof(*nf));
	if (!nf)
		return -1;
	r->f = nf;
	for (size_t i = 0; i < v->n; i++) {
		r->f[r->n].obj = obj;
		r->f[r->n].v = v->v[i];
		r->counts[v->v[i].mode]++;
		r->n++;
		v->v[i].message = v->v[i].path = NULL;
	}
	return 0;
}

int check_report_add(struct check_report *r, const struct check_where *w, struct verdict *v,
		     struct report_item *items, size_t n_items)
{
	struct rules_lines notes;
	size_t idx = 0;
	int rc = 0;

	r->objects++;
	/* One note per line, each with its place, so every line greps alike. */
	if (pipeline_notes(v, &notes) < 0)
		goto oom;
	for (size_t i = 0; rc == 0 && i < notes.n; i++)
		rc = check_report_note(r, w, notes.l[i].text);
	rules_lines_clear(&notes);
	if (rc < 0)
		goto oom;
	if (v->n == 0 && !(r->keep_items && items)) {
		report_items_free(items, n_items);
		return 0;
	}
	if (add_obj(r, w, &idx) < 0 || take_violations(r, idx, v) < 0)
		goto oom;
	if (r->keep_items) {
		r->o[idx].items = items;
		r->o[idx].n_items = n_items;
	} else {
		report_items_free(items, n_items);
	}
	return 0;
oom:
	report_items_free(items, n_items);
	return -1;
}

static void print_text(const struct check_report *r)
{
	for (size_t i = 0; i < r->n_notes; i++)
		printf("%s\n", r->notes[i]);
	for (size_t i = 0; i < r->n; i++) {
		const struct finding *f = &r->f[i];
		const struct cobj *o = &r->o[f->obj];
		if (o->file)
			printf("%s: %s %s %s/%s: %s\n", o->where, config_mode_name(f->v.mode),
			       rules_name(f->v.rule), o->kind, o->name, f->v.message);
		else
			printf("%s: %s %s: %s\n", o->where, config_mode_name(f->v.mode),
			       rules_name(f->v.rule), f->v.message);
	}
	if (r->cluster)
		printf("%zu object%s in the cluster", r->objects, r->objects == 1 ? "" : "s");
	else
		printf("%zu object%s in %zu file%s", r->objects, r->objects == 1 ? "" : "s",
		       r->n_files, r->n_files == 1 ? "" : "s");
	if (r->n_skipped)
		printf(" (%zu kustomization file%s skipped)", r->n_skipped,
		       r->n_skipped == 1 ? "" : "s");
	printf(": %zu enforce, %zu warn, %zu audit violation%s\n", r->counts[MODE_ENFORCE],
	       r->counts[MODE_WARN], r->counts[MODE_AUDIT], r->n == 1 ? "" : "s");
}

static cJSON *finding_json(const struct check_report *r, const struct finding *f)
{
	cJSON *j = cJSON_CreateObject();
	const struct cobj *o = &r->o[f->obj];

	if (!j)
		return NULL;
	if (o->file) {
		cJSON_AddStringToObject(j, "file", o->file);
		cJSON_AddNumberToObject(j, "line", o->line);
	} else {
		cJSON_AddStringToObject(j, "object", o->where);
		cJSON_AddStringToObject(j, "apiVersion", o->api_version);
		cJSON_AddStringToObject(j, "uid", o->uid);
	}
	cJSON_AddStringToObject(j, "mode", config_mode_name(f->v.mode));
	cJSON_AddStringToObject(j, "rule", rules_name(f->v.rule));
	cJSON_AddStringToObject(j, "kind", o->kind);
	cJSON_AddStringToObject(j, "name", o->name);
	cJSON_AddStringToObject(j, "namespace", o->ns);
	cJSON_AddStringToObject(j, "message", f->v.message);
	cJSON_AddStringToObject(j, "path", f->v.path ? f->v.path : "");
	return j;
}

static cJSON *report_json(const struct check_report *r)
{
	cJSON *doc = cJSON_CreateObject(), *s, *arr, *notes;

	if (!doc)
		return NULL;
	cJSON_AddStringToObject(doc, "tool", "rollgate");
	cJSON_AddStringToObject(doc, "version", ROLLGATE_VERSION);
	s = cJSON_AddObjectToObject(doc, "summary");
	if (r->cluster) {
		cJSON_AddStringToObject(s, "source", "cluster");
	} else {
		cJSON_AddNumberToObject(s, "files", (double)r->n_files);
		cJSON_AddNumberToObject(s, "skipped", (double)r->n_skipped);
	}
	cJSON_AddNumberToObject(s, "objects", (double)r->objects);
	cJSON_AddNumberToObject(s, "enforce", (double)r->counts[MODE_ENFORCE]);
	cJSON_AddNumberToObject(s, "warn", (double)r->counts[MODE_WARN]);
	cJSON_AddNumberToObject(s, "audit", (double)r->counts[MODE_AUDIT]);
	cJSON_AddBoolToObject(s, "passed", r->counts[MODE_ENFORCE] == 0);
	arr = cJSON_AddArrayToObject(doc, "violations");
	for (size_t i = 0; arr && i < r->n; i++)
		cJSON_AddItemToArray(arr, finding_json(r, &r->f[i]));
	notes = cJSON_AddArrayToObject(doc, "notes");
	for (size_t i = 0; notes && i < r->n_notes; i++)
		cJSON_AddItemToArray(notes, cJSON_CreateString(r->notes[i]));
	return doc;
}

static const char *sarif_level(enum rule_mode m)
{
	return m == MODE_ENFORCE ? "error" : m == MODE_WARN ? "warning" : "note";
}

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
		const char *id = rules_catalog[i].name, *text = rules_catalog[i].summary;
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

/* Where a result is: the file and line (files), and always the object and
 * field by name, for readers that do not open the file. */
static int sarif_location(cJSON *res, const struct cobj *o, const char *path)
{
	cJSON *locs = cJSON_AddArrayToObject(res, "locations"), *loc = cJSON_CreateObject();
	cJSON *phys, *art, *reg, *logical, *ll;
	char fqn[1400];

	if (!locs || !loc || !cJSON_AddItemToArray(locs, loc))
		return -1;
	if (o->file) {
		char *uri = sarif_uri(o->file);
		if (!uri)
			return -1;
		phys = cJSON_AddObjectToObject(loc, "physicalLocation");
		art = cJSON_AddObjectToObject(phys, "artifactLocation");
		cJSON_AddStringToObject(art, "uri", uri);
		reg = cJSON_AddObjectToObject(phys, "region");
		cJSON_AddNumberToObject(reg, "startLine", o->line > 0 ? o->line : 1);
		free(uri);
	}
	snprintf(fqn, sizeof(fqn), "%s%s%s/%s%s%s", o->ns, *o->ns ? "/" : "", o->kind, o->name,
		 path ? ":" : "", path ? path : "");
	logical = cJSON_AddArrayToObject(loc, "logicalLocations");
	ll = cJSON_CreateObject();
	cJSON_AddItemToArray(logical, ll);
	cJSON_AddStringToObject(ll, "fullyQualifiedName", fqn);
	cJSON_AddStringToObject(ll, "kind", "resource");
	return 0;
}

static cJSON *sarif_result(const struct check_report *r, const struct finding *f)
{
	cJSON *res = cJSON_CreateObject(), *msg;
	const struct cobj *o = &r->o[f->obj];
	char text[1400];

	if (!res)
		return NULL;
	snprintf(text, sizeof(text), "%s/%s: %s", o->kind, o->name, f->v.message);
	cJSON_AddStringToObject(res, "ruleId", rules_name(f->v.rule));
	cJSON_AddNumberToObject(res, "ruleIndex", (double)f->v.rule);
	cJSON_AddStringToObject(res, "level", sarif_level(f->v.mode));
	msg = cJSON_AddObjectToObject(res, "message");
	cJSON_AddStringToObject(msg, "text", text);
	if (sarif_location(res, o, f->v.path) < 0) {
		cJSON_Delete(res);
		return NULL;
	}
	return res;
}

static cJSON *report_sarif(const struct check_report *r, const struct config *cfg)
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
		cJSON_AddItemToArray(results, sarif_result(r, &r->f[i]));
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

/* ---- report formats ---- */

static int cmp_ns(const void *a, const void *b)
{
	const struct cobj *x = *(struct cobj *const *)a, *y = *(struct cobj *const *)b;

	return strcmp(x->ns, y->ns);
}

/* The report of one namespace: objs[0..n) share it. */
static cJSON *namespace_report(enum report_format fmt, struct cobj **objs, size_t n, time_t now)
{
	struct report_object *ro = calloc(n ? n : 1, sizeof(*ro));
	struct report_object **rp = calloc(n ? n : 1, sizeof(*rp));
	cJSON *doc = NULL;

	if (!ro || !rp)
		goto out;
	/* Borrowed views: nothing here is freed through them. */
	for (size_t i = 0; i < n; i++) {
		ro[i] = (struct report_object){ objs[i]->api_version, objs[i]->kind, objs[i]->name,
						objs[i]->uid,         now,           objs[i]->items,
						objs[i]->n_items };
		rp[i] = &ro[i];
	}
	report_objects_sort(rp, n);
	doc = report_render(fmt, objs[0]->ns, rp, n);
out:
	free(ro);
	free(rp);
	return doc;
}

/* A v1 List of one report per namespace, as `kubectl apply -f -` takes. */
static cJSON *report_list(const struct check_report *r, enum report_format fmt)
{
	cJSON *list = cJSON_CreateObject(), *items;
	struct cobj **v = calloc(r->n_o ? r->n_o : 1, sizeof(*v));
	time_t now = time(NULL);
	size_t n = 0;
	bool ok = list && v && cJSON_AddStringToObject(list, "apiVersion", "v1") &&
		cJSON_AddStringToObject(list, "kind", "List") &&
		(items = cJSON_AddArrayToObject(list, "items")) != NULL;

	for (size_t i = 0; ok && i < r->n_o; i++)
		if (r->o[i].items && *r->o[i].ns)
			v[n++] = &r->o[i];
	if (ok && n > 1)
		qsort(v, n, sizeof(*v), cmp_ns);
	for (size_t i = 0; ok && i < n;) {
		size_t j = i;
		cJSON *doc;
		while (j < n && strcmp(v[j]->ns, v[i]->ns) == 0)
			j++;
		doc = namespace_report(fmt, v + i, j - i, now);
		ok = doc && cJSON_AddItemToArray(items, doc);
		i = j;
	}
	free(v);
	if (!ok) {
		cJSON_Delete(list);
		return NULL;
	}
	return list;
}

int check_report_print(struct check_report *r, enum check_format fmt, const struct config *cfg)
{
	cJSON *doc = NULL;

	switch (fmt) {
	case CHECK_TEXT:
		print_text(r);
		break;
	case CHECK_JSON:
		doc = report_json(r);
		break;
	case CHECK_SARIF:
		doc = report_sarif(r, cfg);
		break;
	case CHECK_POLICYREPORT:
	case CHECK_OPENREPORTS:
		/* Notes go to stderr: stdout is what kubectl applies. */
		for (size_t i = 0; i < r->n_notes; i++)
			fprintf(stderr, "rollgate check: %s\n", r->notes[i]);
		doc = report_list(r,
				  fmt == CHECK_OPENREPORTS ? REPORT_OPENREPORTS : REPORT_POLICYREPORT);
		break;
	}
	if (fmt != CHECK_TEXT && print_json_doc(doc) < 0)
		return cli_fail("check", "out of memory");
	return r->counts[MODE_ENFORCE] ? 1 : 0;
}

static void check_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate check [--config FILE] [-o FORMAT] PATH...\n"
		"       rollgate check --cluster [--kubeconfig PATH] [--context NAME] [-n NS]\n"
		"                      [--config FILE] [-o FORMAT]\n"
		"       rollgate check [--config FILE] --list-rules\n\n"
		"Evaluates every object in the manifests under PATH (files, or directories\n"
		"searched recursively for .yaml, .yml and .json, passing over kustomization\n"
		"files; '-' reads stdin) with the policy rules, as a CREATE by an ordinary\n"
		"user: the verdict the cluster gives. Multi-document streams and List kinds\n"
		"are read the way kubectl reads them.\n\n"
		"With --cluster, the Deployments, StatefulSets, DaemonSets, ReplicaSets, Argo\n"
		"Rollouts and Flagger Canaries of a running cluster are listed and judged the\n"
		"same way: what already breaks the rules before a rule enforces.\n\n"
		"Options:\n"
		"  --config FILE        YAML config (default: built-in defaults)\n"
		"  -o, --output FORMAT  text (default), json, sarif (SARIF 2.1.0), and with\n"
		"                       --cluster policyreport (wgpolicyk8s.io/v1alpha2) or\n"
		"                       openreports (openreports.io/v1alpha1): a List of one\n"
		"                       report per namespace for kubectl apply -f -\n"
		"  --cluster            check the objects of a cluster instead of files\n"
		"  --kubeconfig PATH    its credentials (default: $KUBECONFIG, in-cluster, then\n"
		"                       ~/.kube/config)\n"
		"  --context NAME       the kubeconfig context (default: the current one)\n"
		"  -n, --namespace NS   only this namespace (default: every namespace)\n"
		"  --list-rules         list the rules, one a line: ID, mode (under the config),\n"
		"                       family and summary, tab-separated\n"
		"  -h, --help           show this help\n\n"
		"Text output: FILE:LINE: MODE RULE-ID KIND/NAME: message (with --cluster:\n"
		"NAMESPACE/KIND/NAME: MODE RULE-ID: message), then a summary.\n"
		"Exit status: 0 no enforce violation, 1 at least one, 2 unreadable or invalid input\n"
		"(or, with --cluster, a cluster that cannot be listed).\n");
}

/* Every object of the manifests, with notes for objects lookups cannot use
 * (rules never read ConfigMap or Secret values: worth a note, not a
 * failure). */
static int check_files(struct engine *e, const struct mset *m, struct check_report *r, char *err,
		       size_t errlen)
{
	char why[512];

	for (size_t i = 0; i < m->n_objs; i++) {
		const struct pobj *o = &m->objs[i];
		struct check_where w = { o->file, o->line, NULL, NULL, NULL, NULL, NULL };
		const cJSON *md = json_get(o->obj, "metadata");
		struct verdict v;
		w.api_version = json_get_string(o->obj, "apiVersion");
		w.kind = json_get_string(o->obj, "kind");
		w.name = json_get_string(md, "name");
		w.namespace_ = json_get_string(md, "namespace");
		if (o->unusable) {
			snprintf(why, sizeof(why), "not used for lookups: %s", o->unusable);
			if (check_report_note(r, &w, why) < 0)
				goto oom;
		}
		if (pipeline_check(e, o->obj, &v, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", o->file, o->line, why);
			return -1;
		}
		if (check_report_add(r, &w, &v, NULL, 0) < 0) {
			verdict_clear(&v);
			goto oom;
		}
		verdict_clear(&v);
	}
	check_report_files(r, m->n_files, m->n_skipped);
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* --list-rules: the rule catalog, with the mode the config gives each. */
static void print_rules(const struct config *cfg)
{
	for (int i = 0; i < RULE_COUNT; i++) {
		const struct rules_entry *r = &rules_catalog[i];
		printf("%s\t%s\t%s\t%s\n", r->name, config_mode_name(cfg->rules[i].mode),
		       rules_family_name(r->family), r->summary);
	}
}

static int parse_format(const char *s, enum check_format *out)
{
	static const struct {
		const char *name;
		enum check_format fmt;
	} names[] = { { "text", CHECK_TEXT },
		      { "json", CHECK_JSON },
		      { "sarif", CHECK_SARIF },
		      { "policyreport", CHECK_POLICYREPORT },
		      { "openreports", CHECK_OPENREPORTS } };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].fmt;
			return 0;
		}
	}
	return -1;
}

struct check_args {
	const char *config;
	enum check_format fmt;
	bool cluster;
	bool list_rules;
	struct cluster_opts co;
};

/* Returns -1 to go on, else the exit status. */
static int parse_check(int argc, char **argv, struct check_args *a)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "cluster", no_argument, NULL, 'C' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "context", required_argument, NULL, 'x' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "list-rules", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->config = optarg;
			break;
		case 'o':
			if (parse_format(optarg, &a->fmt) < 0)
				return cli_fail("check",
						"unknown output format \"%s\" (text, json, sarif, "
						"policyreport, openreports)",
						optarg);
			break;
		case 'C':
			a->cluster = true;
			break;
		case 'k':
			a->co.kubeconfig = optarg;
			break;
		case 'x':
			a->co.context = optarg;
			break;
		case 'n':
			a->co.namespace_ = optarg;
			break;
		case 'l':
			a->list_rules = true;
			break;
		case 'h':
			check_usage(stdout);
			return 0;
		default:
			check_usage(stderr);
			return 2;
		}
	}
	if (a->list_rules && (a->cluster || optind < argc || a->fmt != CHECK_TEXT))
		return cli_fail("check", "--list-rules takes no PATH, --cluster or -o");
	if (a->list_rules)
		return -1;
	if (!a->cluster && (a->co.kubeconfig || a->co.context || a->co.namespace_))
		return cli_fail("check", "--kubeconfig, --context and --namespace need --cluster");
	if (!a->cluster && (a->fmt == CHECK_POLICYREPORT || a->fmt == CHECK_OPENREPORTS))
		return cli_fail("check",
				"-o %s needs --cluster: reports describe objects in a cluster",
				a->fmt == CHECK_POLICYREPORT ? "policyreport" : "openreports");
	if (a->cluster && optind < argc)
		return cli_fail("check", "--cluster takes no PATH (got \"%s\")", argv[optind]);
	if (!a->cluster && optind >= argc)
		return cli_fail("check", "no PATH given (see --help)");
	return -1;
}

int cli_check(int argc, char **argv)
{
	struct check_args a;
	struct engine e;
	struct mset m = { 0 };
	struct check_report *r = NULL;
	char err[1024];
	int rc = parse_check(argc, argv, &a);

	if (rc >= 0)
		return rc;
	rc = 2;
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	if (engine_open(&e, a.config, NULL, NULL, err, sizeof(err)) < 0)
		return cli_fail("check", "%s", err);
	if (a.list_rules) {
		print_rules(e.cfg);
		engine_close(&e);
		return 0;
	}
	r = check_report_new(a.cluster, a.fmt == CHECK_POLICYREPORT || a.fmt == CHECK_OPENREPORTS);
	if (!r) {
		cli_fail("check", "out of memory");
		goto out;
	}
	if (a.cluster ? clustercheck_run(&e, &a.co, r, err, sizeof(err)) < 0
		      : (mset_load_paths(&m, argv + optind, argc - optind, err, sizeof(err)) < 0 ||
			 pipeline_add_objects(&e, &m, 0, err, sizeof(err)) < 0 ||
			 check_files(&e, &m, r, err, sizeof(err)) < 0)) {
		cli_fail("check", "%s", err);
		goto out;
	}
	rc = check_report_print(r, a.fmt, e.cfg);
out:
	check_report_free(r);
	mset_clear(&m);
	engine_close(&e);
	return rc;
}
