/*
 * Policy reports (see report.h): verdicts to results, the digest of a
 * namespace's results, and the PolicyReport / openreports Report object.
 * Pure but for report_check, which runs the pipeline's rules.
 */
#include "report.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jsonutil.h"
#include "pipeline.h"

static const char *const result_names[REPORT_RESULT_COUNT] = {
	[REPORT_PASS] = "pass",   [REPORT_FAIL] = "fail", [REPORT_WARN] = "warn",
	[REPORT_ERROR] = "error", [REPORT_SKIP] = "skip",
};

const char *report_result_name(enum report_result r)
{
	return (unsigned)r < REPORT_RESULT_COUNT ? result_names[r] : "error";
}

/* The severity of a rule: how bad the project judges a violation, which is
 * also why the rule catalog enforces some rules by default (docs/rules.md):
 * high for those, medium for the others. */
const char *report_severity(enum rule_id rule)
{
	return (unsigned)rule < RULE_COUNT && rules_catalog[rule].default_mode == MODE_ENFORCE
		? "high"
		: "medium";
}

static enum report_result result_of(enum rule_mode m)
{
	return m == MODE_WARN ? REPORT_WARN : REPORT_FAIL;
}

void report_items_free(struct report_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++) {
		free(items[i].message);
		free(items[i].paths);
	}
	free(items);
}

/* Appends sep + s to the capped string *acc (at most max bytes; what does
 * not fit is left out, with "..." at the cut). Returns 0 or -1 on OOM. */
static int join(char **acc, const char *sep, const char *s, size_t max)
{
	size_t have = *acc ? strlen(*acc) : 0;
	size_t want = (have ? strlen(sep) : 0) + strlen(s), add = want;
	char *n;

	if (have >= max)
		return 0;
	if (have + add > max)
		add = max - have;
	n = realloc(*acc, have + add + 1);
	if (!n)
		return -1;
	snprintf(n + have, add + 1, "%s%s", have ? sep : "", s);
	if (add < want && add >= 3) {
		/* Cut on a character boundary, then mark the cut. */
		size_t end = have + add - 3;
		while (end > have && ((unsigned char)n[end] & 0xC0) == 0x80)
			end--;
		memcpy(n + end, "...", 4);
	}
	*acc = n;
	return 0;
}

/* The item of rule id in v, built from all its violations. */
static int item_for_rule(const struct verdict *v, enum rule_id id, struct report_item *it)
{
	memset(it, 0, sizeof(*it));
	it->rule = id;
	for (size_t i = 0; i < v->n; i++) {
		const struct violation *x = &v->v[i];
		if (x->rule != id)
			continue;
		it->mode = x->mode;
		it->result = result_of(x->mode);
		it->violations++;
		if (join(&it->message, "; ", x->message, REPORT_MESSAGE_MAX) < 0 ||
		    (x->path && *x->path && join(&it->paths, ", ", x->path, REPORT_MESSAGE_MAX) < 0))
			return -1;
	}
	it->violations += (unsigned)v->dropped[id];
	return 0;
}

static bool has_rule(const struct verdict *v, enum rule_id id)
{
	for (size_t i = 0; v && i < v->n; i++)
		if (v->v[i].rule == id)
			return true;
	return v && v->dropped[id] > 0;
}

static int push_item(struct report_item **items, size_t *n, const struct report_item *it)
{
	struct report_item *nv = realloc(*items, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	nv[(*n)++] = *it;
	*items = nv;
	return 0;
}

int report_items_from_verdict(const struct verdict *v, const struct verdict *unskipped,
			      const char *skip_key, struct report_item **items, size_t *n)
{
	struct report_item it;
	char msg[300];

	*items = NULL;
	*n = 0;
	for (int r = 0; r < RULE_COUNT; r++) {
		enum rule_id id = (enum rule_id)r;
		if (has_rule(v, id)) {
			if (item_for_rule(v, id, &it) < 0 || push_item(items, n, &it) < 0)
				goto oom;
		} else if (has_rule(unskipped, id)) {
			if (item_for_rule(unskipped, id, &it) < 0)
				goto oom;
			snprintf(msg, sizeof(msg), "silenced by the annotation %s", skip_key);
			free(it.message);
			it.message = strdup(msg);
			it.result = REPORT_SKIP;
			if (!it.message || push_item(items, n, &it) < 0)
				goto oom;
		}
	}
	if (*n == 0) {
		memset(&it, 0, sizeof(it));
		it.rule = RULE_COUNT;
		it.result = REPORT_PASS;
		it.message = strdup("no rule violated");
		if (!it.message || push_item(items, n, &it) < 0)
			goto oom;
	}
	return 0;
oom:
	free(it.message);
	free(it.paths);
	report_items_free(*items, *n);
	*items = NULL;
	*n = 0;
	return -1;
}

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool report_items_equal(const struct report_item *a, size_t an, const struct report_item *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++) {
		if (a[i].rule != b[i].rule || a[i].result != b[i].result || a[i].mode != b[i].mode ||
		    a[i].violations != b[i].violations || !str_same(a[i].message, b[i].message) ||
		    !str_same(a[i].paths, b[i].paths))
			return false;
	}
	return true;
}

/* A copy of obj without the skip annotation, or NULL when it has none (or
 * on OOM: *oom says which). */
static cJSON *without_skip(const cJSON *obj, const char *key, bool *oom)
{
	const cJSON *ann = json_get_path(obj, "metadata", "annotations", NULL);
	cJSON *copy, *cann;

	*oom = false;
	if (!json_get(ann, key))
		return NULL;
	copy = cJSON_Duplicate(obj, 1);
	if (!copy) {
		*oom = true;
		return NULL;
	}
	cann = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "metadata"),
						"annotations");
	cJSON_DeleteItemFromObjectCaseSensitive(cann, key);
	return copy;
}

/* A Canary whose target could not be looked up is not a pass: its
 * readiness is unknown, an error result (instead of the pass, if that was
 * all). */
static int lookup_failed(const struct config *cfg, struct report_item **items, size_t *n)
{
	struct report_item it = { RULE_CANARY_WITHOUT_READINESS,
				  REPORT_ERROR,
				  cfg->rules[RULE_CANARY_WITHOUT_READINESS].mode,
				  0,
				  NULL,
				  NULL };

	it.message = strdup("could not look up the target Deployment to check its readiness probes");
	if (!it.message)
		return -1;
	if (*n == 1 && (*items)[0].result == REPORT_PASS) {
		free((*items)[0].message);
		(*items)[0] = it;
		return 0;
	}
	if (push_item(items, n, &it) < 0) {
		free(it.message);
		return -1;
	}
	return 0;
}

int report_check(struct engine *e, const cJSON *obj, struct verdict *v, struct report_item **items,
		 size_t *n, char *err, size_t errlen)
{
	const char *ns = json_get_string(json_get(obj, "metadata"), "namespace");
	enum lookup_status target;
	struct verdict unskipped;
	char key[512];
	bool oom, have_unskipped = false;
	cJSON *bare;
	int rc = -1;

	*items = NULL;
	*n = 0;
	memset(&unskipped, 0, sizeof(unskipped));
	if (pipeline_check_target(e, obj, v, &target, err, errlen) < 0)
		return -1;
	/* No rule runs in an exempt namespace: nothing to report there. */
	if (strlist_contains(&e->cfg->exempt_namespaces, ns ? ns : ""))
		return 0;
	config_annotation(e->cfg, "skip", key, sizeof(key));
	bare = without_skip(obj, key, &oom);
	if (oom)
		goto oom;
	if (bare) {
		int r = pipeline_check(e, bare, &unskipped, err, errlen);
		cJSON_Delete(bare);
		if (r < 0)
			goto out;
		have_unskipped = true;
	}
	if (report_items_from_verdict(v, have_unskipped ? &unskipped : NULL, key, items, n) < 0)
		goto oom;
	if (target == LOOKUP_ERROR && e->cfg->rules[RULE_CANARY_WITHOUT_READINESS].mode != MODE_OFF &&
	    lookup_failed(e->cfg, items, n) < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	verdict_clear(&unskipped);
	if (rc < 0)
		verdict_clear(v);
	return rc;
}

void report_object_clear(struct report_object *o)
{
	if (!o)
		return;
	free(o->name);
	free(o->uid);
	report_items_free(o->items, o->n);
	memset(o, 0, sizeof(*o));
}

static int cmp_objects(const void *a, const void *b)
{
	const struct report_object *x = *(struct report_object *const *)a;
	const struct report_object *y = *(struct report_object *const *)b;
	int c = strcmp(x->kind, y->kind);

	return c ? c : strcmp(x->name, y->name);
}

void report_objects_sort(struct report_object **objs, size_t n)
{
	if (n > 1)
		qsort(objs, n, sizeof(*objs), cmp_objects);
}

/* Hashes s with its terminating NUL, so that fields cannot run together. */
static void md_str(EVP_MD_CTX *md, const char *s)
{
	EVP_DigestUpdate(md, s ? s : "", s ? strlen(s) + 1 : 1);
}

void report_digest(const char *ns, struct report_object *const *objs, size_t n,
		   char out[REPORT_DIGEST_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char num[64];

	out[0] = '\0';
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	md_str(md, "rollgate-report-v1");
	md_str(md, ns);
	for (size_t i = 0; i < n; i++) {
		const struct report_object *o = objs[i];
		md_str(md, o->api_version);
		md_str(md, o->kind);
		md_str(md, o->name);
		md_str(md, o->uid);
		for (size_t j = 0; j < o->n; j++) {
			const struct report_item *it = &o->items[j];
			snprintf(num, sizeof(num), "%d/%d/%d/%u", (int)it->rule, (int)it->result,
				 (int)it->mode, it->violations);
			md_str(md, num);
			md_str(md, it->message);
			md_str(md, it->paths);
		}
	}
	if (EVP_DigestFinal_ex(md, d, &len) != 1 || len != 32)
		goto out;
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < len; i++) {
		out[7 + 2 * i] = hex[d[i] >> 4];
		out[8 + 2 * i] = hex[d[i] & 15];
	}
	out[7 + 2 * len] = '\0';
out:
	EVP_MD_CTX_free(md);
}

/* ---- rendering ---- */

static cJSON *resource_ref(const char *ns, const struct report_object *o)
{
	cJSON *r = cJSON_CreateObject();

	if (!r || !cJSON_AddStringToObject(r, "apiVersion", o->api_version) ||
	    !cJSON_AddStringToObject(r, "kind", o->kind) ||
	    !cJSON_AddStringToObject(r, "namespace", ns) ||
	    !cJSON_AddStringToObject(r, "name", o->name) ||
	    (o->uid && *o->uid && !cJSON_AddStringToObject(r, "uid", o->uid))) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

static bool add_properties(cJSON *res, const struct report_item *it)
{
	cJSON *p;
	char num[32];

	if (it->rule == RULE_COUNT)
		return true;
	p = cJSON_AddObjectToObject(res, "properties");
	snprintf(num, sizeof(num), "%u", it->violations);
	return p && cJSON_AddStringToObject(p, "mode", config_mode_name(it->mode)) &&
		cJSON_AddStringToObject(p, "violations", num) &&
		(!it->paths || cJSON_AddStringToObject(p, "fieldPaths", it->paths));
}

/* One result object: policy, rule, result, severity, message, the object,
 * properties, timestamp, source. */
static cJSON *result_json(const char *ns, const struct report_object *o, const struct report_item *it)
{
	cJSON *res = cJSON_CreateObject(), *arr, *ts;

	if (!res || !cJSON_AddStringToObject(res, "policy", "rollgate") ||
	    (it->rule != RULE_COUNT &&
	     (!cJSON_AddStringToObject(res, "rule", rules_name(it->rule)) ||
	      !cJSON_AddStringToObject(res, "severity", report_severity(it->rule)))) ||
	    !cJSON_AddStringToObject(res, "result", report_result_name(it->result)) ||
	    !cJSON_AddStringToObject(res, "category", "Rollout safety") ||
	    !cJSON_AddStringToObject(res, "source", "rollgate") ||
	    !cJSON_AddStringToObject(res, "message", it->message ? it->message : "") ||
	    !(arr = cJSON_AddArrayToObject(res, "resources")) ||
	    !cJSON_AddItemToArray(arr, resource_ref(ns, o)) || !add_properties(res, it) ||
	    !(ts = cJSON_AddObjectToObject(res, "timestamp")) ||
	    !cJSON_AddNumberToObject(ts, "seconds", (double)o->since) ||
	    !cJSON_AddNumberToObject(ts, "nanos", 0)) {
		cJSON_Delete(res);
		return NULL;
	}
	return res;
}

/* Results in the order given, with their rendered sizes. */
struct rendered {
	cJSON *json;
	size_t bytes;
	enum report_result result;
};

/* Which results to leave out so the rest fit: passes first (from the
 * end), then skips, warnings and failures. Returns how many go. */
static size_t fit(struct rendered *r, size_t n, size_t budget)
{
	static const enum report_result order[] = { REPORT_PASS, REPORT_SKIP, REPORT_WARN,
						    REPORT_ERROR, REPORT_FAIL };
	size_t total = 0, dropped = 0;

	for (size_t i = 0; i < n; i++)
		total += r[i].bytes + 1;
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]) && total > budget; o++) {
		for (size_t i = n; i-- > 0 && total > budget;) {
			if (!r[i].json || r[i].result != order[o])
				continue;
			total -= r[i].bytes + 1;
			cJSON_Delete(r[i].json);
			r[i].json = NULL;
			dropped++;
		}
	}
	return dropped;
}

static cJSON *report_skeleton(enum report_format fmt, const char *ns,
			      struct report_object *const *objs, size_t n)
{
	cJSON *doc = cJSON_CreateObject(), *md, *labels, *ann;
	char digest[REPORT_DIGEST_LEN];

	report_digest(ns, objs, n, digest);
	if (!doc ||
	    !cJSON_AddStringToObject(doc, "apiVersion",
				     fmt == REPORT_OPENREPORTS ? "openreports.io/v1alpha1"
							       : "wgpolicyk8s.io/v1alpha2") ||
	    !cJSON_AddStringToObject(doc, "kind",
				     fmt == REPORT_OPENREPORTS ? "Report" : "PolicyReport") ||
	    !(md = cJSON_AddObjectToObject(doc, "metadata")) ||
	    !cJSON_AddStringToObject(md, "name", REPORT_NAME) ||
	    !cJSON_AddStringToObject(md, "namespace", ns) ||
	    !(labels = cJSON_AddObjectToObject(md, "labels")) ||
	    !cJSON_AddStringToObject(labels, REPORT_LABEL_KEY, REPORT_LABEL_VALUE) ||
	    !(ann = cJSON_AddObjectToObject(md, "annotations")) ||
	    !cJSON_AddStringToObject(ann, REPORT_DIGEST_ANNOTATION, digest) ||
	    (fmt == REPORT_OPENREPORTS && !cJSON_AddStringToObject(doc, "source", "rollgate"))) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

static bool add_summary(cJSON *doc, const size_t counts[REPORT_RESULT_COUNT])
{
	cJSON *s = cJSON_AddObjectToObject(doc, "summary");

	for (int r = 0; s && r < REPORT_RESULT_COUNT; r++)
		if (!cJSON_AddNumberToObject(s, result_names[r], (double)counts[r]))
			return false;
	return s != NULL;
}

/* Records what was left out: an annotation, and for openreports the limit. */
static bool note_omitted(cJSON *doc, enum report_format fmt, size_t omitted, size_t kept)
{
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "annotations");
	cJSON *conf, *lim;
	char num[32];

	if (!omitted)
		return true;
	snprintf(num, sizeof(num), "%zu", omitted);
	if (!cJSON_AddStringToObject(ann, "rollgate.io/results-omitted", num))
		return false;
	if (fmt != REPORT_OPENREPORTS)
		return true;
	conf = cJSON_AddObjectToObject(doc, "configuration");
	lim = conf ? cJSON_AddObjectToObject(conf, "limits") : NULL;
	return lim && cJSON_AddNumberToObject(lim, "maxResults", (double)kept);
}

cJSON *report_render(enum report_format fmt, const char *ns, struct report_object *const *objs,
		     size_t n)
{
	size_t counts[REPORT_RESULT_COUNT] = { 0 }, total = 0, k = 0, omitted;
	struct rendered *r = NULL;
	cJSON *doc = report_skeleton(fmt, ns, objs, n), *results;
	bool ok = doc != NULL;

	for (size_t i = 0; i < n; i++)
		total += objs[i]->n;
	if (ok && total) {
		r = calloc(total, sizeof(*r));
		ok = r != NULL;
	}
	for (size_t i = 0; ok && i < n; i++) {
		for (size_t j = 0; ok && j < objs[i]->n; j++, k++) {
			char *text;
			r[k].result = objs[i]->items[j].result;
			r[k].json = result_json(ns, objs[i], &objs[i]->items[j]);
			text = r[k].json ? json_print(r[k].json) : NULL;
			ok = text != NULL;
			r[k].bytes = text ? strlen(text) : 0;
			free(text);
			counts[r[k].result]++;
		}
	}
	/* Room for the metadata and summary around the results. */
	omitted = ok ? fit(r, total, REPORT_MAX_BYTES - 8192) : 0;
	ok = ok && add_summary(doc, counts) && note_omitted(doc, fmt, omitted, total - omitted) &&
		(results = cJSON_AddArrayToObject(doc, "results")) != NULL;
	for (size_t i = 0; i < total; i++) {
		if (ok && r[i].json) {
			cJSON_AddItemToArray(results, r[i].json);
			r[i].json = NULL;
		}
		cJSON_Delete(r ? r[i].json : NULL);
	}
	free(r);
	if (!ok) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}
