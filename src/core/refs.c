/*
 * The ConfigMaps and Secrets a pod spec references, with per-key precision.
 *
 * The set is kept sorted by (kind, name) at all times and every key list is
 * kept sorted and unique, so a lookup is a binary search and a pod spec that
 * repeats one reference 100,000 times costs 100,000 searches, not a quadratic
 * scan. Mutating admission runs before kube-apiserver validates the object,
 * so everything here treats the pod spec as untrusted.
 */
#include "refs.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "jsonutil.h"
#include "kinds.h"

#define REFS_MAX 4096      /* distinct (kind, name) pairs */
#define REFS_MAX_KEYS 4096 /* selected keys per object */
#define REFS_USER_MAX 253  /* bytes of a container or volume name kept in `user` */
#define PATH_LEN 192       /* field paths hold fixed names and indices only */

/* What one walk needs besides the node it is on. */
struct walk {
	struct refset *set;
	char *err;
	size_t errlen;
};

/* One reference found in the pod spec, before it is merged into the set. */
struct found {
	enum obj_kind kind;
	const char *name;
	bool optional;
	const cJSON *items; /* volume/projected items, NULL when absent */
	const char *key;    /* configMapKeyRef/secretKeyRef key, else NULL */
	const char *user;
	const char *path; /* of the reference object, for messages */
};

const struct kind *refs_kind(enum obj_kind kind)
{
	return kinds_get(kind == OBJ_SECRET ? KIND_SECRET : KIND_CONFIGMAP);
}

const char *refs_kind_name(enum obj_kind kind)
{
	return refs_kind(kind)->kind;
}

/* ---- the set ---------------------------------------------------------- */

/* Orders by kind, then by name as unsigned bytes (strcmp compares as
 * unsigned char), the order the config hash is defined over. */
static int ref_cmp(enum obj_kind ka, const char *na, enum obj_kind kb, const char *nb)
{
	if (ka != kb)
		return ka < kb ? -1 : 1;
	return strcmp(na, nb);
}

/* Binary search of n sorted elements of size bytes: returns the index of
 * the one cmp(elem, key) calls equal (*found set), or where key belongs. */
static size_t sorted_find(const void *base, size_t n, size_t size,
			  int (*cmp)(const void *elem, const void *key), const void *key, bool *found)
{
	size_t lo = 0, hi = n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp((const char *)base + mid * size, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct ref_key {
	enum obj_kind kind;
	const char *name;
};

static int ref_elem_cmp(const void *elem, const void *key)
{
	const struct ref *r = elem;
	const struct ref_key *k = key;

	return ref_cmp(r->kind, r->name, k->kind, k->name);
}

static int key_elem_cmp(const void *elem, const void *key)
{
	return strcmp(*(char *const *)elem, key);
}

/* Returns the index of (kind, name) or where it belongs. */
static size_t ref_find(const struct refset *set, enum obj_kind kind, const char *name, bool *found)
{
	const struct ref_key k = { kind, name };

	return sorted_find(set->refs, set->n, sizeof(*set->refs), ref_elem_cmp, &k, found);
}

static size_t key_find(char *const *keys, size_t n, const char *key, bool *found)
{
	return sorted_find(keys, n, sizeof(*keys), key_elem_cmp, key, found);
}

static void ref_clear_keys(struct ref *r)
{
	for (size_t i = 0; i < r->n_keys; i++)
		free(r->keys[i]);
	free(r->keys);
	r->keys = NULL;
	r->n_keys = r->cap_keys = 0;
}

/*
 * Returns the set's entry for (kind, name), inserting an empty one (not
 * whole, no keys) when new. An existing entry stays optional only if this
 * reference is optional too; its first user is kept. Returns NULL on OOM or
 * past REFS_MAX (with *full set).
 */
static struct ref *ref_get(struct refset *set, enum obj_kind kind, const char *name, bool optional,
			   const char *user, bool *full)
{
	struct ref r = { .kind = kind, .optional = optional };
	bool found;
	size_t at = ref_find(set, kind, name, &found);

	*full = false;
	if (found) {
		set->refs[at].optional = set->refs[at].optional && optional;
		return &set->refs[at];
	}
	if (set->n >= REFS_MAX) {
		*full = true;
		return NULL;
	}
	r.name = strdup(name);
	r.user = strdup(user ? user : "");
	if (!r.name || !r.user ||
	    array_grow(&set->refs, &set->cap, set->n + 1, sizeof(r), REFS_MAX) < 0) {
		free(r.name);
		free(r.user);
		return NULL;
	}
	memmove(&set->refs[at + 1], &set->refs[at], (set->n - at) * sizeof(r));
	set->refs[at] = r;
	set->n++;
	return &set->refs[at];
}

/* The whole object is selected: per-key selections no longer matter. */
static void ref_take_whole(struct ref *r)
{
	r->whole = true;
	ref_clear_keys(r);
}

/* Adds key to a non-whole entry's sorted, unique list. Returns 0, -1 on OOM,
 * -2 past REFS_MAX_KEYS. */
static int ref_add_key(struct ref *r, const char *key)
{
	bool found;
	size_t at;
	char *k;

	if (r->whole)
		return 0;
	at = key_find(r->keys, r->n_keys, key, &found);
	if (found)
		return 0;
	if (r->n_keys >= REFS_MAX_KEYS)
		return -2;
	k = strdup(key);
	if (!k ||
	    array_grow(&r->keys, &r->cap_keys, r->n_keys + 1, sizeof(*r->keys), REFS_MAX_KEYS) < 0) {
		free(k);
		return -1;
	}
	memmove(&r->keys[at + 1], &r->keys[at], (r->n_keys - at) * sizeof(*r->keys));
	r->keys[at] = k;
	r->n_keys++;
	return 0;
}

/* ---- typed access with error paths ------------------------------------ */

/* Field paths only feed error messages, so a path cut short (a very long
 * caller prefix) is acceptable; this keeps the truncation deliberate. */
__attribute__((format(printf, 3, 4))) static void path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int fail(struct walk *w, const char *path, const char *field, const char *what)
{
	snprintf(w->err, w->errlen, "%s%s%s: %s", path, field ? "." : "", field ? field : "", what);
	return -1;
}

/* Absent and null both mean "not set", as Go's decoder treats them. */
static int get_typed(struct walk *w, const cJSON *obj, const char *path, const char *field,
		     bool want_array, const cJSON **out)
{
	const cJSON *v = json_get(obj, field);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (want_array ? !cJSON_IsArray(v) : !cJSON_IsObject(v))
		return fail(w, path, field, want_array ? "expected an array" : "expected an object");
	*out = v;
	return 0;
}

static int get_object(struct walk *w, const cJSON *obj, const char *path, const char *field,
		      const cJSON **out)
{
	return get_typed(w, obj, path, field, false, out);
}

static int get_array(struct walk *w, const cJSON *obj, const char *path, const char *field,
		     const cJSON **out)
{
	return get_typed(w, obj, path, field, true, out);
}

/* A name or key that would need escaping anywhere downstream (the hash
 * stream is newline-separated) is not a valid Kubernetes name or key, so
 * it is refused rather than encoded. */
static bool has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int get_string(struct walk *w, const cJSON *obj, const char *path, const char *field,
		      const char **out)
{
	const cJSON *v = json_get(obj, field);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return fail(w, path, field, "expected a string");
	if (has_control(v->valuestring))
		return fail(w, path, field, "contains a control character");
	*out = v->valuestring;
	return 0;
}

static int get_bool(struct walk *w, const cJSON *obj, const char *path, const char *field, bool *out)
{
	const cJSON *v = json_get(obj, field);

	*out = false;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return fail(w, path, field, "expected a boolean");
	*out = cJSON_IsTrue(v);
	return 0;
}

/* Every element of an array must be an object; elements name themselves
 * path[i] in messages. */
static int elem_object(struct walk *w, const cJSON *e, const char *path)
{
	if (!cJSON_IsObject(e))
		return fail(w, path, NULL, "expected an object");
	return 0;
}

/* ---- merging one reference -------------------------------------------- */

static int oom(struct walk *w)
{
	snprintf(w->err, w->errlen, "out of memory");
	return -1;
}

static int add_key_checked(struct walk *w, struct ref *r, const char *key, const char *path)
{
	int rc = ref_add_key(r, key);

	if (rc == -1)
		return oom(w);
	if (rc == -2) {
		snprintf(w->err, w->errlen, "%s: more than %d keys selected from %s \"%.253s\"", path,
			 REFS_MAX_KEYS, refs_kind(r->kind)->singular, r->name);
		return -1;
	}
	return 0;
}

/* Adds the keys listed in items[].key; items with no key are skipped (the
 * API server rejects them). */
static int merge_items(struct walk *w, struct ref *r, const struct found *f)
{
	char path[PATH_LEN];
	const cJSON *it;
	size_t i = 0;

	cJSON_ArrayForEach(it, f->items) {
		const char *key;

		path_fmt(path, sizeof(path), "%s.items[%zu]", f->path, i++);
		if (elem_object(w, it, path) < 0 || get_string(w, it, path, "key", &key) < 0)
			return -1;
		if (key && *key && add_key_checked(w, r, key, path) < 0)
			return -1;
	}
	return 0;
}

/*
 * Merges one reference into the set: a key selector adds its key, a
 * non-empty items list adds the listed keys, anything else takes the whole
 * object. References without a name are skipped; so are key selectors
 * without a key (kube-apiserver rejects both).
 */
static int merge(struct walk *w, const struct found *f)
{
	struct ref *r;
	bool full;

	if (!f->name || !*f->name)
		return 0;
	if (f->key && !*f->key)
		return 0;
	r = ref_get(w->set, f->kind, f->name, f->optional, f->user, &full);
	if (!r && full) {
		snprintf(w->err, w->errlen, "%s: more than %d ConfigMaps and Secrets referenced",
			 f->path, REFS_MAX);
		return -1;
	}
	if (!r)
		return oom(w);
	if (f->key)
		return add_key_checked(w, r, f->key, f->path);
	if (f->items && cJSON_GetArraySize(f->items) > 0)
		return merge_items(w, r, f);
	ref_take_whole(r);
	return 0;
}

/*
 * Reads one reference object (configMapKeyRef, secretRef, a volume's
 * configMap, ...) at parent.field. name_field is "name" except for a
 * secret volume's "secretName"; with_key reads "key", with_items "items".
 */
static int visit_ref(struct walk *w, const cJSON *parent, const char *ppath, const char *field,
		     enum obj_kind kind, const char *name_field, bool with_key, bool with_items,
		     const char *user)
{
	char path[PATH_LEN];
	const cJSON *ref;
	struct found f = { .kind = kind, .user = user, .path = path };

	if (get_object(w, parent, ppath, field, &ref) < 0)
		return -1;
	if (!ref)
		return 0;
	path_fmt(path, sizeof(path), "%s.%s", ppath, field);
	if (get_string(w, ref, path, name_field, &f.name) < 0 ||
	    get_bool(w, ref, path, "optional", &f.optional) < 0)
		return -1;
	if (with_key) {
		if (get_string(w, ref, path, "key", &f.key) < 0)
			return -1;
		if (!f.key)
			f.key = ""; /* a key selector without a key: skipped by merge */
	}
	if (with_items && get_array(w, ref, path, "items", &f.items) < 0)
		return -1;
	return merge(w, &f);
}

/* ---- containers ------------------------------------------------------- */

static int visit_env(struct walk *w, const cJSON *c, const char *cpath, const char *user)
{
	char path[PATH_LEN], vpath[PATH_LEN];
	const cJSON *env, *e, *vf;
	size_t i = 0;

	if (get_array(w, c, cpath, "env", &env) < 0)
		return -1;
	cJSON_ArrayForEach(e, env) {
		path_fmt(path, sizeof(path), "%s.env[%zu]", cpath, i++);
		if (elem_object(w, e, path) < 0 || get_object(w, e, path, "valueFrom", &vf) < 0)
			return -1;
		if (!vf)
			continue;
		path_fmt(vpath, sizeof(vpath), "%s.valueFrom", path);
		if (visit_ref(w, vf, vpath, "configMapKeyRef", OBJ_CONFIGMAP, "name", true, false,
			      user) < 0 ||
		    visit_ref(w, vf, vpath, "secretKeyRef", OBJ_SECRET, "name", true, false, user) < 0)
			return -1;
	}
	return 0;
}

static int visit_env_from(struct walk *w, const cJSON *c, const char *cpath, const char *user)
{
	char path[PATH_LEN];
	const cJSON *list, *e;
	size_t i = 0;

	if (get_array(w, c, cpath, "envFrom", &list) < 0)
		return -1;
	cJSON_ArrayForEach(e, list) {
		path_fmt(path, sizeof(path), "%s.envFrom[%zu]", cpath, i++);
		if (elem_object(w, e, path) < 0 ||
		    visit_ref(w, e, path, "configMapRef", OBJ_CONFIGMAP, "name", false, false, user) <
			    0 ||
		    visit_ref(w, e, path, "secretRef", OBJ_SECRET, "name", false, false, user) < 0)
			return -1;
	}
	return 0;
}

/* Names the user of a reference for messages: `container "web"`, or the
 * element's path when it has no name. Long names are cut so that one huge
 * name cannot be copied into thousands of entries. */
static int user_label(struct walk *w, const cJSON *elem, const char *path, const char *what, char *buf,
		      size_t len)
{
	const char *name;

	if (get_string(w, elem, path, "name", &name) < 0)
		return -1;
	if (name && *name)
		snprintf(buf, len, "%s \"%.*s\"", what, REFS_USER_MAX, name);
	else
		snprintf(buf, len, "%s", path);
	return 0;
}

static int visit_containers(struct walk *w, const cJSON *spec, const char *spath, const char *field,
			    const char *what)
{
	char path[PATH_LEN], user[REFS_USER_MAX + 32];
	const cJSON *list, *c;
	size_t i = 0;

	if (get_array(w, spec, spath, field, &list) < 0)
		return -1;
	cJSON_ArrayForEach(c, list) {
		path_fmt(path, sizeof(path), "%s.%s[%zu]", spath, field, i++);
		if (elem_object(w, c, path) < 0 ||
		    user_label(w, c, path, what, user, sizeof(user)) < 0 ||
		    visit_env(w, c, path, user) < 0 || visit_env_from(w, c, path, user) < 0)
			return -1;
	}
	return 0;
}

/* ---- volumes ---------------------------------------------------------- */

/* Projected sources: only configMap and secret count; serviceAccountToken,
 * downwardAPI, clusterTrustBundle and the rest are not ConfigMaps/Secrets. */
static int visit_projected(struct walk *w, const cJSON *vol, const char *vpath, const char *user)
{
	char ppath[PATH_LEN], path[PATH_LEN];
	const cJSON *proj, *sources, *s;
	size_t i = 0;

	if (get_object(w, vol, vpath, "projected", &proj) < 0)
		return -1;
	if (!proj)
		return 0;
	path_fmt(ppath, sizeof(ppath), "%s.projected", vpath);
	if (get_array(w, proj, ppath, "sources", &sources) < 0)
		return -1;
	cJSON_ArrayForEach(s, sources) {
		path_fmt(path, sizeof(path), "%s.sources[%zu]", ppath, i++);
		if (elem_object(w, s, path) < 0 ||
		    visit_ref(w, s, path, "configMap", OBJ_CONFIGMAP, "name", false, true, user) < 0 ||
		    visit_ref(w, s, path, "secret", OBJ_SECRET, "name", false, true, user) < 0)
			return -1;
	}
	return 0;
}

static int visit_volumes(struct walk *w, const cJSON *spec, const char *spath)
{
	char path[PATH_LEN], user[REFS_USER_MAX + 32];
	const cJSON *list, *v;
	size_t i = 0;

	if (get_array(w, spec, spath, "volumes", &list) < 0)
		return -1;
	cJSON_ArrayForEach(v, list) {
		path_fmt(path, sizeof(path), "%s.volumes[%zu]", spath, i++);
		if (elem_object(w, v, path) < 0 ||
		    user_label(w, v, path, "volume", user, sizeof(user)) < 0 ||
		    visit_ref(w, v, path, "configMap", OBJ_CONFIGMAP, "name", false, true, user) < 0 ||
		    visit_ref(w, v, path, "secret", OBJ_SECRET, "secretName", false, true, user) < 0 ||
		    visit_projected(w, v, path, user) < 0)
			return -1;
	}
	return 0;
}

/* ---- public ----------------------------------------------------------- */

int refs_collect_at(const cJSON *podspec, const char *path, struct refset *set, char *err,
		    size_t errlen)
{
	struct walk w = { .set = set, .err = err, .errlen = errlen };

	if (!cJSON_IsObject(podspec))
		return fail(&w, path, NULL, "expected an object");
	/* The documented order decides each object's first user. */
	if (visit_containers(&w, podspec, path, "containers", "container") < 0 ||
	    visit_containers(&w, podspec, path, "initContainers", "init container") < 0 ||
	    visit_containers(&w, podspec, path, "ephemeralContainers", "ephemeral container") < 0 ||
	    visit_volumes(&w, podspec, path) < 0)
		return -1;
	return 0;
}

int refs_collect(const cJSON *podspec, struct refset *set, char *err, size_t errlen)
{
	return refs_collect_at(podspec, "spec.template.spec", set, err, errlen);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Adds one trimmed list item of len bytes as a whole-object reference. */
static int add_list_item(struct refset *set, enum obj_kind kind, const char *s, size_t len,
			 const char *user)
{
	char *name;
	struct ref *r;
	bool full;
	int rc = -1;

	name = strndup(s, len);
	if (!name || has_control(name))
		goto out;
	r = ref_get(set, kind, name, false, user, &full);
	if (!r)
		goto out;
	ref_take_whole(r);
	r->need_match = false; /* named: joins whatever it carries */
	rc = 0;
out:
	free(name);
	return rc;
}

int refs_add_list(struct refset *set, enum obj_kind kind, const char *csv, const char *user)
{
	const char *p = csv;

	if (!csv)
		return 0;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len;

		if (!end)
			end = p + strlen(p);
		while (p < end && is_space(*p))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && is_space(p[len - 1]))
			len--;
		if (len > 0 && add_list_item(set, kind, p, len, user) < 0)
			return -1;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static bool valid_part(const char *s, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/')
			return false;
	return true;
}

int refs_add_qualified(struct refset *set, enum obj_kind kind, const char *qualified,
		       const char *own_ns, const char *user)
{
	const char *slash = strchr(qualified, '/');
	struct ref *r;
	bool full;

	if (!slash ||
	    (own_ns && strlen(own_ns) == (size_t)(slash - qualified) &&
	     strncmp(qualified, own_ns, (size_t)(slash - qualified)) == 0)) {
		const char *name = slash ? slash + 1 : qualified;
		if (!valid_part(name, strlen(name)))
			return -1;
		return add_list_item(set, kind, name, strlen(name), user);
	}
	if (!valid_part(qualified, (size_t)(slash - qualified)) ||
	    !valid_part(slash + 1, strlen(slash + 1)))
		return -1;
	r = ref_get(set, kind, qualified, false, user, &full);
	if (!r)
		return -1;
	if (!r->namespace_) {
		r->namespace_ = strndup(qualified, (size_t)(slash - qualified));
		if (!r->namespace_)
			return -1;
	}
	ref_take_whole(r);
	r->need_match = false;
	return 0;
}

const char *refs_object_name(const struct ref *r)
{
	const char *slash = r->namespace_ ? strchr(r->name, '/') : NULL;

	return slash ? slash + 1 : r->name;
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*failed = true;
	return d;
}

int refs_copy(const struct refset *in, struct refset *out)
{
	bool failed = false;

	memset(out, 0, sizeof(*out));
	if (in->n == 0)
		return 0;
	out->refs = calloc(in->n, sizeof(*out->refs));
	if (!out->refs)
		return -1;
	for (; out->n < in->n && !failed; out->n++) {
		const struct ref *a = &in->refs[out->n];
		struct ref *b = &out->refs[out->n];
		*b = (struct ref){ .kind = a->kind,
				   .whole = a->whole,
				   .optional = a->optional,
				   .need_match = a->need_match };
		b->name = dup_or_null(a->name, &failed);
		b->namespace_ = dup_or_null(a->namespace_, &failed);
		b->user = dup_or_null(a->user, &failed);
		b->keys = a->n_keys ? calloc(a->n_keys, sizeof(*b->keys)) : NULL;
		if (a->n_keys && !b->keys)
			failed = true;
		for (; !failed && b->n_keys < a->n_keys; b->n_keys++)
			b->keys[b->n_keys] = dup_or_null(a->keys[b->n_keys], &failed);
	}
	if (failed) {
		refs_clear(out);
		return -1;
	}
	return 0;
}

static int ref_qsort_cmp(const void *a, const void *b)
{
	const struct ref *ra = a, *rb = b;

	return ref_cmp(ra->kind, ra->name, rb->kind, rb->name);
}

static int str_qsort_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The set is kept sorted while it is built; sorting again costs little and
 * keeps the promise for sets assembled by hand (tests, other callers). */
void refs_finish(struct refset *set)
{
	if (!set)
		return;
	if (set->n > 1)
		qsort(set->refs, set->n, sizeof(*set->refs), ref_qsort_cmp);
	for (size_t i = 0; i < set->n; i++) {
		struct ref *r = &set->refs[i];
		if (r->n_keys > 1)
			qsort(r->keys, r->n_keys, sizeof(*r->keys), str_qsort_cmp);
	}
}

void refs_clear(struct refset *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		ref_clear_keys(&set->refs[i]);
		free(set->refs[i].name);
		free(set->refs[i].namespace_);
		free(set->refs[i].user);
	}
	free(set->refs);
	set->refs = NULL;
	set->n = set->cap = 0;
}
