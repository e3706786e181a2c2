/*
 * `rollgate stamp` (manifests in, stamped manifests out) and `rollgate fn`
 * (the same plus the check results, as a KRM function over a ResourceList).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliutil.h"
#include "jsonutil.h"
#include "log.h"
#include "manifest.h"
#include "objsource.h"
#include "pipeline.h"
#include "yamljson.h"

#define FN_MAX_INPUT (256u << 20)

static int add_object(cJSON *obj, const char *file, int line, void *arg)
{
	struct engine *e = arg;
	char why[256];

	if (objsource_memory_add(e->src, obj, why, sizeof(why)) < 0) {
		fprintf(stderr, "rollgate: %s:%d: %s\n", file, line, why);
		return -1;
	}
	return 0;
}

/* Loads config, the manifests' own objects and --objects into one engine;
 * the manifests come first, so their definitions win. */
static int open_with_objects(struct engine *e, const char *config, const char *objects, struct mset *m,
			     int flags, char *err, size_t errlen)
{
	if (engine_open(e, config, NULL, NULL, err, errlen) < 0)
		return -1;
	if (pipeline_add_objects(e, m, flags, err, errlen) < 0 ||
	    (objects && manifest_read_tree(objects, add_object, e, err, errlen) < 0)) {
		engine_close(e);
		return -1;
	}
	return 0;
}

/* Prints one document, "---" first unless it is the first of the output. */
static int emit_doc(const cJSON *root, bool first)
{
	char *y = yamljson_emit(root);

	if (!y)
		return -1;
	if (!first)
		fputs("---\n", stdout);
	fputs(y, stdout);
	free(y);
	return 0;
}

/* Every document of the set, in file and document order. */
static int emit_all(const struct mset *m, char *err, size_t errlen)
{
	bool first = true;

	for (size_t f = 0; f < m->n_files; f++) {
		for (size_t d = 0; d < m->files[f].docs.n; d++, first = false) {
			if (emit_doc(m->files[f].docs.docs[d].root, first) < 0) {
				snprintf(err, errlen,
					 "%s:%d: cannot print the document as YAML (out of memory, "
					 "too large or too deep)",
					 m->files[f].name, m->files[f].docs.docs[d].line);
				return -1;
			}
		}
	}
	return fflush(stdout) == 0 ? 0 : -1;
}

/* What stamp and fn take on their command lines besides paths. */
struct cmd_opts {
	const char *config;  /* --config */
	const char *objects; /* --objects (stamp only) */
};

/*
 * Reads the options of longopts into o: 'c' is --config, 'O' --objects,
 * 'h' --help. Returns true when the command goes on, with optind at its
 * first operand; false with *status the exit status, 0 after --help and 2
 * after an option getopt refused (usage goes to stdout or stderr).
 */
static bool read_opts(int argc, char **argv, const struct option *longopts, void (*usage)(FILE *out),
		      struct cmd_opts *o, int *status)
{
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'O':
			o->objects = optarg;
			break;
		case 'h':
			usage(stdout);
			*status = 0;
			return false;
		default:
			usage(stderr);
			*status = 2;
			return false;
		}
	}
	return true;
}

static void stamp_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate stamp [--config FILE] [--objects DIR] PATH...\n\n"
		"Prints the manifests under PATH (files, or directories searched recursively\n"
		"for .yaml, .yml and .json; '-' reads stdin) as YAML with the config hash\n"
		"stamped on every opted-in Deployment, StatefulSet, DaemonSet and Rollout,\n"
		"exactly as the webhook would. ConfigMaps and Secrets come from the manifests\n"
		"themselves and from DIR. Values, key order and document order are kept;\n"
		"comments are not. Stamping stamped output changes nothing.\n\n"
		"Options:\n"
		"  --config FILE   YAML config (default: built-in defaults)\n"
		"  --objects DIR   more ConfigMaps and Secrets (manifests, recursively)\n"
		"  -h, --help      show this help\n\n"
		"Warnings go to stderr. Exit status: 0 success, 2 unreadable or invalid input\n"
		"(stamp applies no policy rule, so it never exits 1; see 'rollgate check').\n");
}

/* Why obj is left unstamped, into msg, when an object it needs cannot be
 * used; returns 1 then (2 when kustomize renames that object later), 0 when
 * obj can be stamped, -1 on error. */
static int blocked(struct engine *e, const struct mset *m, const cJSON *obj, char *msg, size_t msglen,
		   char *err, size_t errlen)
{
	const struct pobj *b;

	if (pipeline_stamp_blocker(e, m, obj, &b, err, errlen) < 0)
		return -1;
	if (!b)
		return 0;
	snprintf(msg, msglen, "config hash not stamped: %s \"%s\" (%s:%d) cannot be used: %s",
		 json_get_string(b->obj, "kind"),
		 json_get_string(json_get(b->obj, "metadata"), "name"), b->file, b->line, b->unusable);
	return pipeline_renamed_later(b->obj) ? 2 : 1;
}

/* Stamps one object, warnings to stderr; 0 or -1 with why. */
static int stamp_one(struct engine *e, const struct mset *m, const struct pobj *o, char *why,
		     size_t whylen)
{
	struct admission_response resp;
	char msg[768];
	int rc = blocked(e, m, o->obj, msg, sizeof(msg), why, whylen);

	if (rc != 0) {
		if (rc > 0)
			fprintf(stderr, "%s:%d: warning: %s\n", o->file, o->line, msg);
		return rc < 0 ? -1 : 0;
	}
	admission_response_init(&resp);
	rc = pipeline_stamp(e, o->obj, &resp, why, whylen);
	for (size_t w = 0; rc == 0 && w < resp.n_warnings; w++)
		fprintf(stderr, "%s:%d: warning: %s\n", o->file, o->line, resp.warnings[w]);
	admission_response_clear(&resp);
	return rc;
}

static int stamp_all(struct engine *e, struct mset *m, char *err, size_t errlen)
{
	char why[512];

	for (size_t i = 0; i < m->n_objs; i++) {
		if (stamp_one(e, m, &m->objs[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", m->objs[i].file, m->objs[i].line, why);
			return -1;
		}
	}
	return 0;
}

int cli_stamp(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "objects", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_opts o = { NULL, NULL };
	struct engine e;
	struct mset m = { 0 };
	char err[1024];
	int rc = 2;

	if (!read_opts(argc, argv, longopts, stamp_usage, &o, &rc))
		return rc;
	if (optind >= argc)
		return cli_fail("stamp", "no PATH given (see --help)");
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	if (mset_load_paths(&m, argv + optind, argc - optind, err, sizeof(err)) < 0) {
		mset_clear(&m);
		return cli_fail("stamp", "%s", err);
	}
	if (open_with_objects(&e, o.config, o.objects, &m, 0, err, sizeof(err)) < 0) {
		mset_clear(&m);
		return cli_fail("stamp", "%s", err);
	}
	if (stamp_all(&e, &m, err, sizeof(err)) < 0 || emit_all(&m, err, sizeof(err)) < 0) {
		cli_fail("stamp", "%s", err);
		goto out;
	}
	rc = 0;
out:
	mset_clear(&m);
	engine_close(&e);
	return rc;
}

/* ---- KRM function ---- */

static const char *severity(enum rule_mode m)
{
	return m == MODE_ENFORCE ? "error" : m == MODE_WARN ? "warning" : "info";
}

/* The index annotation as a document number: decimal digits within int,
 * else -1 (a bad annotation leaves the index out, never becomes 0). */
static int doc_index(const char *s)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > INT_MAX)
		return -1;
	return (int)v;
}

/* Where kpt and kustomize say an item came from. */
static void add_file_ref(cJSON *res, const cJSON *item)
{
	const cJSON *ann = json_get_path(item, "metadata", "annotations", NULL);
	const char *path = json_get_string(ann, "internal.config.kubernetes.io/path");
	const char *index = json_get_string(ann, "internal.config.kubernetes.io/index");
	cJSON *file;
	int idx;

	if (!path)
		path = json_get_string(ann, "config.kubernetes.io/path");
	if (!index)
		index = json_get_string(ann, "config.kubernetes.io/index");
	if (!path)
		return;
	file = cJSON_AddObjectToObject(res, "file");
	cJSON_AddStringToObject(file, "path", path);
	idx = doc_index(index);
	if (idx >= 0)
		cJSON_AddNumberToObject(file, "index", idx);
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static int add_result(cJSON *results, const cJSON *item, const char *sev, const char *rule,
		      const char *message, const char *field)
{
	cJSON *res = cJSON_CreateObject(), *ref, *tags;
	const cJSON *md = json_get(item, "metadata");
	char text[1200];
	const char *ns = json_get_string(md, "namespace");

	if (!res)
		return -1;
	snprintf(text, sizeof(text), "%s: %s", rule, message);
	cJSON_AddStringToObject(res, "message", text);
	cJSON_AddStringToObject(res, "severity", sev);
	ref = cJSON_AddObjectToObject(res, "resourceRef");
	cJSON_AddStringToObject(ref, "apiVersion", or_empty(json_get_string(item, "apiVersion")));
	cJSON_AddStringToObject(ref, "kind", or_empty(json_get_string(item, "kind")));
	cJSON_AddStringToObject(ref, "name", or_empty(json_get_string(md, "name")));
	if (ns)
		cJSON_AddStringToObject(ref, "namespace", ns);
	if (field && *field)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(res, "field"), "path", field);
	add_file_ref(res, item);
	tags = cJSON_AddObjectToObject(res, "tags");
	cJSON_AddStringToObject(tags, "rule", rule);
	if (!cJSON_AddItemToArray(results, res)) {
		cJSON_Delete(res);
		return -1;
	}
	return 0;
}

/* Where fn's findings go: the ResourceList's results, or stderr for a plain
 * stream (which has nowhere else to put them). */
struct sink {
	cJSON *results; /* NULL: stderr */
	bool kustomize; /* run by kustomize as a legacy exec plugin */
};

static void report(const struct sink *s, const struct pobj *o, const char *sev, const char *rule,
		   const char *message, const char *field)
{
	const char *kind = json_get_string(o->obj, "kind");
	const char *name = json_get_string(json_get(o->obj, "metadata"), "name");

	if (s->results) {
		/* Out of memory drops the result; the exit code still tells. */
		(void)add_result(s->results, o->obj, sev, rule, message, field);
		return;
	}
	fprintf(stderr, "%s:%d: %s %s %s/%s: ", o->file, o->line, sev, rule, or_empty(kind),
		or_empty(name));
	/* kustomize shows a legacy exec plugin's stderr through a format
	 * string ("25%" reads "25%!(MISSING)"): double the '%' for it. */
	for (const char *p = message; *p; p++) {
		if (*p == '%' && s->kustomize)
			fputc('%', stderr);
		fputc(*p, stderr);
	}
	fputc('\n', stderr);
}

/* Stamps obj unless an object it needs cannot be used (kustomize renames it
 * later, or it cannot be read); the webhook then stamps it in the cluster. */
static int fn_stamp(struct engine *e, const struct mset *m, const struct pobj *o, const struct sink *s,
		    char *err, size_t errlen)
{
	struct admission_response resp;
	char msg[768];
	int rc = blocked(e, m, o->obj, msg, sizeof(msg), err, errlen);

	if (rc != 0) {
		if (rc > 0)
			report(s, o, rc == 2 ? "info" : "warning", "config-hash", msg, NULL);
		return rc < 0 ? -1 : 0;
	}
	admission_response_init(&resp);
	if (pipeline_stamp(e, o->obj, &resp, err, errlen) < 0) {
		admission_response_clear(&resp);
		return -1;
	}
	for (size_t w = 0; w < resp.n_warnings; w++)
		report(s, o, "warning", "config-hash", resp.warnings[w], NULL);
	admission_response_clear(&resp);
	return 0;
}

/* Stamps and checks one object; returns the number of enforce violations or -1. */
static int fn_object(struct engine *e, const struct mset *m, const struct pobj *o,
		     const struct sink *s, char *err, size_t errlen)
{
	struct verdict v;
	struct rules_lines notes;
	int enforce = 0;

	if (fn_stamp(e, m, o, s, err, errlen) < 0)
		return -1;
	if (pipeline_check(e, o->obj, &v, err, errlen) < 0)
		return -1;
	if (pipeline_notes(&v, &notes) < 0) {
		verdict_clear(&v);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < notes.n; i++)
		report(s, o, "info", "rollgate", notes.l[i].text, NULL);
	rules_lines_clear(&notes);
	for (size_t i = 0; i < v.n; i++) {
		report(s, o, severity(v.v[i].mode), rules_name(v.v[i].rule), v.v[i].message,
		       v.v[i].path);
		enforce += v.v[i].mode == MODE_ENFORCE;
	}
	verdict_clear(&v);
	return enforce;
}

static void fn_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate fn [--config FILE]\n\n"
		"A KRM function (kpt, kustomize): reads a config.kubernetes.io/v1 ResourceList\n"
		"on stdin, stamps config hashes on its items (ConfigMaps and Secrets come from\n"
		"the items), appends the policy results to 'results', and writes the\n"
		"ResourceList to stdout.\n\n"
		"  kpt fn eval DIR --exec \"rollgate fn\"\n"
		"  kustomize build --enable-alpha-plugins --enable-exec DIR   (exec function)\n\n"
		"A plain YAML stream instead of a ResourceList is stamped and written back as\n"
		"a stream, the results going to stderr: kustomize's legacy exec plugins, the\n"
		"only kind 'kubectl kustomize --enable-alpha-plugins' runs, work this way\n"
		"(an executable $KUSTOMIZE_PLUGIN_HOME/GROUP/VERSION/KIND-LOWERCASE/KIND that\n"
		"runs 'rollgate fn' without arguments).\n\n"
		"Workloads that use a ConfigMap or Secret kustomize will still give a hash\n"
		"suffix, or one whose data cannot be read (SOPS), are left for the webhook.\n\n"
		"Options:\n"
		"  --config FILE   YAML config (default: built-in defaults)\n"
		"  -h, --help      show this help\n\n"
		"Exit status: 0 no enforce violation, 1 at least one, 2 invalid input.\n");
}

/* True when the stream is one ResourceList document (of any apiVersion). */
static bool is_resource_list(const struct mset *m)
{
	const struct yaml_docs *d = &m->files[0].docs;
	const char *kind = d->n == 1 ? json_get_string(d->docs[0].root, "kind") : NULL;

	return kind && strcmp(kind, "ResourceList") == 0;
}

static int fn_input(cJSON *root, cJSON **results, char *err, size_t errlen)
{
	const char *api = json_get_string(root, "apiVersion");

	if (!api || strcmp(api, "config.kubernetes.io/v1") != 0) {
		snprintf(err, errlen, "<stdin>: expected a config.kubernetes.io/v1 ResourceList");
		return -1;
	}
	if (!cJSON_IsArray(json_get(root, "items"))) {
		snprintf(err, errlen, "<stdin>: ResourceList.items must be a list");
		return -1;
	}
	*results = cJSON_GetObjectItemCaseSensitive(root, "results");
	if (!*results || cJSON_IsNull(*results)) {
		cJSON_DeleteItemFromObjectCaseSensitive(root, "results");
		*results = cJSON_AddArrayToObject(root, "results");
		if (!*results) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	if (!cJSON_IsArray(*results)) {
		snprintf(err, errlen, "<stdin>: ResourceList.results must be a list");
		return -1;
	}
	return 0;
}

/* Reads stdin into m: one ResourceList, or a plain stream of objects. */
static int fn_read(struct mset *m, struct sink *s, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf = manifest_slurp("-", FN_MAX_INPUT, &len, err, errlen);
	int rc;

	if (!buf)
		return -1;
	rc = mset_load_buffer(m, "<stdin>", buf, len, err, errlen);
	free(buf);
	if (rc < 0)
		return -1;
	s->results = NULL;
	s->kustomize = getenv("KUSTOMIZE_PLUGIN_CONFIG_ROOT") != NULL;
	if (is_resource_list(m))
		return fn_input(m->files[0].docs.docs[0].root, &s->results, err, errlen);
	for (size_t i = 0; i < m->files[0].docs.n; i++) {
		const char *kind = json_get_string(m->files[0].docs.docs[i].root, "kind");
		if (kind && strcmp(kind, "ResourceList") == 0) {
			snprintf(err, errlen, "<stdin>:%d: a ResourceList must be the only document",
				 m->files[0].docs.docs[i].line);
			return -1;
		}
	}
	return 0;
}

int cli_fn(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_opts o = { NULL, NULL };
	struct engine e;
	struct mset m = { 0 };
	struct sink s = { NULL, false };
	char err[1024];
	int rc = 2, enforce = 0, n;

	if (!read_opts(argc, argv, longopts, fn_usage, &o, &rc))
		return rc;
	if (optind < argc)
		return cli_fail("fn", "unexpected argument \"%s\" (the input is read from stdin)",
				argv[optind]);
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	if (fn_read(&m, &s, err, sizeof(err)) < 0) {
		mset_clear(&m);
		return cli_fail("fn", "%s", err);
	}
	/* A ResourceList's items are the set's objects (it is a List kind). */
	if (open_with_objects(&e, o.config, NULL, &m, PIPELINE_DEFER_SUFFIXED, err, sizeof(err)) < 0) {
		mset_clear(&m);
		return cli_fail("fn", "%s", err);
	}
	for (size_t i = 0; i < m.n_objs; i++) {
		n = fn_object(&e, &m, &m.objs[i], &s, err, sizeof(err));
		if (n < 0) {
			cli_fail("fn", "%s:%d: %s", m.objs[i].file, m.objs[i].line, err);
			goto out;
		}
		enforce += n;
	}
	if (emit_all(&m, err, sizeof(err)) < 0) {
		cli_fail("fn", "%s", err);
		goto out;
	}
	rc = enforce ? 1 : 0;
out:
	engine_close(&e);
	mset_clear(&m);
	return rc;
}
