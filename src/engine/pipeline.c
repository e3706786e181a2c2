/*
 * Manifests through the webhook's engine: loading sets of files, the
 * synthetic CREATE review, and the check and stamp steps shared by
 * `check`, `stamp` and `fn`.
 */
#include "pipeline.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "jsonutil.h"
#include "kinds.h"
#include "manifest.h"
#include "mutate.h"
#include "objsource.h"
#include "patch.h"

#define MSET_MAX_OBJECTS 1000000
#define MSET_MAX_FILES 1000000

struct add_ctx {
	struct mset *m;
	char *err;
	size_t errlen;
};

static int add_pobj(cJSON *obj, const char *file, int line, void *arg)
{
	struct add_ctx *c = arg;
	struct mset *m = c->m;
	int rc = array_grow(&m->objs, &m->cap_objs, m->n_objs + 1, sizeof(*m->objs), MSET_MAX_OBJECTS);

	if (rc == ARRAY_E_FULL) {
		snprintf(c->err, c->errlen, "%s:%d: more than %d objects", file, line,
			 MSET_MAX_OBJECTS);
		return -1;
	}
	if (rc < 0) {
		snprintf(c->err, c->errlen, "%s:%d: out of memory", file, line);
		return -1;
	}
	m->objs[m->n_objs++] = (struct pobj){ obj, file, line, 0, NULL };
	return 0;
}

/* Adds the objects of one document (a List's items one by one),
 * remembering which document they came from. */
static int add_doc_objects(struct mset *m, struct mfile *f, size_t d, char *err, size_t errlen)
{
	struct yaml_docs one = { &f->docs.docs[d], 1, f->docs.lines };
	struct add_ctx c = { m, err, errlen };
	size_t first = m->n_objs;

	/* kubectl passes over "null" documents as it does empty ones. */
	if (cJSON_IsNull(f->docs.docs[d].root))
		return 0;
	if (manifest_each_object(&one, f->name, add_pobj, &c, err, errlen) < 0)
		return -1;
	for (size_t i = first; i < m->n_objs; i++)
		m->objs[i].doc = d;
	return 0;
}

int mset_load_buffer(struct mset *m, const char *name, const char *buf, size_t len, char *err,
		     size_t errlen)
{
	int rc = array_grow(&m->files, &m->cap_files, m->n_files + 1, sizeof(*m->files),
			    MSET_MAX_FILES);
	struct mfile *f;

	if (rc < 0) {
		if (rc == ARRAY_E_FULL)
			snprintf(err, errlen, "%s: more than %d files", name, MSET_MAX_FILES);
		else
			snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	f = &m->files[m->n_files];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	if (!f->name) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	m->n_files++;
	if (manifest_load_buffer(name, buf, len, &f->docs, err, errlen) < 0)
		return -1;
	for (size_t d = 0; d < f->docs.n; d++) {
		if (add_doc_objects(m, f, d, err, errlen) < 0)
			return -1;
	}
	return 0;
}

struct load_ctx {
	struct mset *m;
	const char *top; /* the PATH being walked */
	char *err;
	size_t errlen;
};

/* kustomize's own files are not manifests (a kustomization.yaml may even
 * lack kind), so a directory walk passes over them; named on the command
 * line they are read like any other file. */
static bool is_kustomization(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return strcmp(base, "kustomization.yaml") == 0 || strcmp(base, "kustomization.yml") == 0 ||
		strcmp(base, "Kustomization") == 0;
}

static int load_file(const char *path, void *arg)
{
	struct load_ctx *c = arg;
	size_t len = 0;
	char *buf;
	int rc;

	if (strcmp(path, c->top) != 0 && is_kustomization(path)) {
		c->m->n_skipped++;
		return 0;
	}
	buf = manifest_slurp(path, MANIFEST_MAX_FILE_BYTES, &len, c->err, c->errlen);
	if (!buf)
		return -1;
	rc = mset_load_buffer(c->m, strcmp(path, "-") == 0 ? "<stdin>" : path, buf, len, c->err,
			      c->errlen);
	free(buf);
	return rc;
}

int mset_load_paths(struct mset *m, char *const *paths, int n, char *err, size_t errlen)
{
	struct load_ctx c = { m, NULL, err, errlen };

	for (int i = 0; i < n; i++) {
		c.top = paths[i];
		err[0] = '\0';
		if (manifest_walk(paths[i], load_file, &c, err, errlen) < 0) {
			if (!*err)
				snprintf(err, errlen, "%s: cannot be read", paths[i]);
			return -1;
		}
	}
	return 0;
}

void mset_clear(struct mset *m)
{
	for (size_t i = 0; i < m->n_files; i++) {
		free(m->files[i].name);
		yamljson_clear(&m->files[i].docs);
	}
	for (size_t i = 0; i < m->n_objs; i++)
		free(m->objs[i].unusable);
	free(m->files);
	free(m->objs);
	memset(m, 0, sizeof(*m));
}

/*
 * kustomize runs functions and exec plugins before it appends the content
 * hash to the names of generated ConfigMaps and Secrets (which carry this
 * annotation until then), so the name a function sees is not the name the
 * webhook will hash. A hash over it would never agree with the webhook's, a
 * diff that never goes away; the suffix already rolls the workload out.
 */
bool pipeline_renamed_later(const cJSON *obj)
{
	const cJSON *ann = json_get_path(obj, "metadata", "annotations", NULL);
	const char *v = json_get_string(ann, "internal.config.kubernetes.io/needsHashSuffix");
	const char *legacy = json_get_string(ann, "kustomize.config.k8s.io/needs-hash");

	return (v && strcmp(v, "enabled") == 0) || (legacy && strcmp(legacy, "true") == 0);
}

/* A ConfigMap or Secret in the version the lookups read. */
static bool is_config_kind(const cJSON *obj)
{
	const char *api = json_get_string(obj, "apiVersion");
	const struct kind *k = kinds_by_kind(api, json_get_string(obj, "kind"));

	return kinds_has(k, KIND_CONFIG) && strcmp(api, k->api_version) == 0;
}

int pipeline_add_objects(struct engine *e, struct mset *m, int flags, char *err, size_t errlen)
{
	char why[256];

	for (size_t i = 0; i < m->n_objs; i++) {
		struct pobj *o = &m->objs[i];
		free(o->unusable);
		o->unusable = NULL;
		if ((flags & PIPELINE_DEFER_SUFFIXED) && is_config_kind(o->obj) &&
		    pipeline_renamed_later(o->obj))
			snprintf(why, sizeof(why),
				 "kustomize appends a hash suffix to its name after this function "
				 "runs; that suffix rolls the workload out, and the webhook stamps "
				 "the final name");
		else if (objsource_memory_add(e->src, o->obj, why, sizeof(why)) == 0)
			continue;
		o->unusable = strdup(why);
		if (!o->unusable) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

static bool same_namespace(const char *a, const char *b)
{
	return !a || !*a || !b || !*b || strcmp(a, b) == 0;
}

/* The unusable object of m that refs (of a workload in namespace ns) names. */
static const struct pobj *find_unusable(const struct mset *m, const char *ns,
					const struct refset *refs)
{
	for (size_t i = 0; i < m->n_objs; i++) {
		const cJSON *o = m->objs[i].obj, *md = json_get(o, "metadata");
		const char *kind = json_get_string(o, "kind"), *name = json_get_string(md, "name");
		if (!m->objs[i].unusable || !kind || !name ||
		    !same_namespace(ns, json_get_string(md, "namespace")))
			continue;
		for (size_t r = 0; r < refs->n; r++) {
			if (strcmp(refs_kind_name(refs->refs[r].kind), kind) == 0 &&
			    strcmp(refs->refs[r].name, name) == 0)
				return &m->objs[i];
		}
	}
	return NULL;
}

int pipeline_stamp_blocker(struct engine *e, const struct mset *m, const cJSON *obj,
			   const struct pobj **out, char *err, size_t errlen)
{
	struct refset refs;
	int rc = pipeline_stamp_refs(e, obj, &refs, err, errlen);

	*out = NULL;
	if (rc == 0 && refs.n > 0)
		*out = find_unusable(m, json_get_string(json_get(obj, "metadata"), "namespace"),
				     &refs);
	refs_clear(&refs);
	return rc;
}

/* The resource name the API would use for kind: the kinds table's for a
 * kind it knows, else "NetworkPolicy" -> "networkpolicies", "Ingress" ->
 * "ingresses". */
static void resource_name(const char *api, const char *kind, char *out, size_t len)
{
	const struct kind *k = kinds_by_kind(api, kind);
	size_t n = strlen(kind), o = 0;
	const char *suffix = "s";

	if (k) {
		snprintf(out, len, "%s", k->resource);
		return;
	}
	for (size_t i = 0; i < n && o + 4 < len; i++)
		out[o++] = (char)tolower((unsigned char)kind[i]);
	out[o] = '\0';
	if (o >= 2 && out[o - 1] == 'y' && !strchr("aeiou", out[o - 2])) {
		o--;
		suffix = "ies";
	} else if (o >= 1 &&
		   (strchr("sxz", out[o - 1]) ||
		    (o >= 2 && out[o - 1] == 'h' && strchr("cs", out[o - 2])))) {
		suffix = "es";
	}
	snprintf(out + o, len - o, "%s", suffix);
}

/* Why obj cannot be reviewed as a Kubernetes object, or NULL. */
static const char *object_problem(const cJSON *obj)
{
	const cJSON *api = json_get(obj, "apiVersion"), *kind = json_get(obj, "kind");
	const cJSON *md = json_get(obj, "metadata");

	if (!kind)
		return "object has no kind";
	if (!cJSON_IsString(kind) || !*kind->valuestring)
		return "kind must be a non-empty string";
	if (!api)
		return "object has no apiVersion";
	if (!cJSON_IsString(api) || !*api->valuestring)
		return "apiVersion must be a non-empty string";
	if (md && !cJSON_IsNull(md) && !cJSON_IsObject(md))
		return "metadata must be a mapping";
	return NULL;
}

static cJSON *build_review(const cJSON *obj, char *err, size_t errlen)
{
	const char *api = json_get_string(obj, "apiVersion"), *kind = json_get_string(obj, "kind");
	const cJSON *md = json_get(obj, "metadata");
	const char *name = json_get_string(md, "name"), *ns = json_get_string(md, "namespace");
	char group[256] = "", resource[256];
	const char *version, *slash;
	cJSON *doc = NULL, *rq, *k, *r, *u;
	const char *problem = object_problem(obj);

	if (problem) {
		snprintf(err, errlen, "%s", problem);
		return NULL;
	}
	slash = strchr(api, '/');
	version = slash ? slash + 1 : api;
	if (slash)
		snprintf(group, sizeof(group), "%.*s", (int)(slash - api), api);
	resource_name(api, kind, resource, sizeof(resource));
	doc = cJSON_CreateObject();
	if (!doc || !cJSON_AddStringToObject(doc, "apiVersion", "admission.k8s.io/v1") ||
	    !cJSON_AddStringToObject(doc, "kind", "AdmissionReview") ||
	    !(rq = cJSON_AddObjectToObject(doc, "request")) ||
	    !cJSON_AddStringToObject(rq, "uid", "00000000-0000-0000-0000-000000000000") ||
	    !(k = cJSON_AddObjectToObject(rq, "kind")) ||
	    !cJSON_AddStringToObject(k, "group", group) ||
	    !cJSON_AddStringToObject(k, "version", version) ||
	    !cJSON_AddStringToObject(k, "kind", kind) ||
	    !(r = cJSON_AddObjectToObject(rq, "resource")) ||
	    !cJSON_AddStringToObject(r, "group", group) ||
	    !cJSON_AddStringToObject(r, "version", version) ||
	    !cJSON_AddStringToObject(r, "resource", resource) ||
	    !cJSON_AddStringToObject(rq, "name", name ? name : "") ||
	    !cJSON_AddStringToObject(rq, "namespace", ns ? ns : "") ||
	    !cJSON_AddStringToObject(rq, "operation", "CREATE") ||
	    !(u = cJSON_AddObjectToObject(rq, "userInfo")) ||
	    !cJSON_AddStringToObject(u, "username", "rollgate-check") ||
	    !cJSON_AddItemReferenceToObject(rq, "object", (cJSON *)obj)) {
		snprintf(err, errlen, "out of memory");
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

int pipeline_request(const cJSON *obj, struct admission_request *req, char *err, size_t errlen)
{
	cJSON *doc = build_review(obj, err, errlen);

	if (!doc)
		return -1;
	return admission_decode_tree(doc, req, err, errlen);
}

int pipeline_check(struct engine *e, const cJSON *obj, struct verdict *v, char *err, size_t errlen)
{
	enum lookup_status target;

	return pipeline_check_target(e, obj, v, &target, err, errlen);
}

int pipeline_check_target(struct engine *e, const cJSON *obj, struct verdict *v,
			  enum lookup_status *target_status, char *err, size_t errlen)
{
	struct admission_request req;
	struct rules_extra extra = { LOOKUP_NONE, NULL, NULL };
	struct lookup_item item = { 0 };
	struct lookup_batch b = { NULL, &item, 1 };
	const char *target;
	int rc;

	memset(v, 0, sizeof(*v));
	*target_status = LOOKUP_NONE;
	if (pipeline_request(obj, &req, err, errlen) < 0)
		return -1;
	target = rules_flagger_target(&req);
	if (target) {
		item.kind = SRC_DEPLOYMENT;
		item.name = target;
		b.namespace_ = req.namespace_;
		engine_resolve(e, &b);
		extra.flagger_target_status = item.status;
		*target_status = item.status;
		extra.flagger_target = item.object;
		extra.flagger_target_name = target;
	}
	rc = rules_evaluate(e->cfg, &req, &extra, v);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	lookup_batch_clear(&b);
	admission_request_clear(&req);
	return rc;
}

int pipeline_notes(const struct verdict *v, struct rules_lines *out)
{
	static const struct rules_budget all = { RULES_MAX_PER_RULE, SIZE_MAX, SIZE_MAX, SIZE_MAX };
	size_t kept = 0;

	if (rules_warnings(v, &all, out) < 0)
		return -1;
	for (size_t i = 0; i < out->n; i++) {
		if (out->l[i].violation == RULES_NO_VIOLATION)
			out->l[kept++] = out->l[i];
		else
			free(out->l[i].text);
	}
	out->n = kept;
	return 0;
}

int pipeline_stamp_refs(struct engine *e, const cJSON *obj, struct refset *out, char *err,
			size_t errlen)
{
	struct admission_request req;
	struct stamp_plan plan;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (pipeline_request(obj, &req, err, errlen) < 0)
		return -1;
	if (mutate_plan(e->cfg, &req, &plan, err, errlen) < 0)
		goto out;
	if (plan.applies) {
		*out = plan.refs;
		memset(&plan.refs, 0, sizeof(plan.refs));
	}
	rc = 0;
out:
	stamp_plan_clear(&plan);
	admission_request_clear(&req);
	return rc;
}

int pipeline_stamp(struct engine *e, cJSON *obj, struct admission_response *resp, char *err,
		   size_t errlen)
{
	struct admission_request req;
	struct stamp_plan plan;
	int rc = -1;

	if (pipeline_request(obj, &req, err, errlen) < 0)
		return -1;
	if (mutate_plan(e->cfg, &req, &plan, err, errlen) < 0)
		goto out;
	if (plan.applies && plan.batch.n > 0)
		engine_resolve(e, &plan.batch);
	if (mutate_finish(e->cfg, &req, &plan, resp) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	stamp_plan_clear(&plan);
	/* The review only references obj, so obj can change once it is gone. */
	admission_request_clear(&req);
	if (rc == 0 && resp->patch && patch_apply(obj, resp->patch, err, errlen) < 0)
		rc = -1;
	return rc;
}
