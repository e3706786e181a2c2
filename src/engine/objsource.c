/*
 * Object sources backed by manifests: the --objects directory (reloaded when
 * its files change) and the CLI's in-memory set. Both answer at once.
 * Only digests of ConfigMap and Secret values are kept, never the values.
 */
#include "objsource.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "array.h"
#include "confighash.h"
#include "jsonutil.h"
#include "kinds.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"

int objsource_resolve(struct objsource *src, struct lookup_batch *b, unsigned timeout_ms,
		      lookup_done_fn done, void *arg)
{
	return src->ops->resolve(src->impl, b, timeout_ms, done, arg);
}

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
};

static void on_resolved(void *arg)
{
	struct waiter *wt = arg;

	pthread_mutex_lock(&wt->m);
	wt->done = true;
	pthread_cond_broadcast(&wt->c);
	pthread_mutex_unlock(&wt->m);
}

int objsource_resolve_wait(struct objsource *src, struct lookup_batch *b, unsigned timeout_ms)
{
	struct waiter wt = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
	int rc = objsource_resolve(src, b, timeout_ms, on_resolved, &wt);

	if (rc == 1) {
		pthread_mutex_lock(&wt.m);
		while (!wt.done)
			pthread_cond_wait(&wt.c, &wt.m);
		pthread_mutex_unlock(&wt.m);
	}
	pthread_mutex_destroy(&wt.m);
	pthread_cond_destroy(&wt.c);
	return rc;
}

int objsource_refresh(struct objsource *src, char *err, size_t errlen)
{
	return src->ops->refresh ? src->ops->refresh(src->impl, err, errlen) : 0;
}

void objsource_free(struct objsource *src)
{
	if (!src)
		return;
	src->ops->destroy(src->impl);
	free(src);
}

void lookup_batch_clear(struct lookup_batch *b)
{
	for (size_t i = 0; b && i < b->n; i++) {
		confighash_digest_free(b->items[i].digest);
		b->items[i].digest = NULL;
		cJSON_Delete(b->items[i].object);
		b->items[i].object = NULL;
	}
}

/* One known object: digests for ConfigMaps/Secrets, the tree for Deployments. */
struct stored {
	size_t seq; /* order of appearance: the first definition wins */
	enum src_kind kind;
	char *ns; /* "" matches any namespace */
	char *name;
	struct obj_digest *digest;
	cJSON *object;
};

/* A sorted, immutable table; replaced whole on reload. */
/* Objects a source keeps (a million ConfigMaps of one key already take
 * about 100 MiB of digests). */
#define TABLE_MAX (1u << 24)

struct table {
	struct stored *v;
	size_t n, cap;
	bool sealed; /* sorted and deduplicated */
};

static void stored_clear(struct stored *s)
{
	free(s->ns);
	free(s->name);
	confighash_digest_free(s->digest);
	cJSON_Delete(s->object);
}

static void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		stored_clear(&t->v[i]);
	free(t->v);
	free(t);
}

static int cmp_key(enum src_kind ak, const char *ans, const char *aname, const struct stored *b)
{
	int c;

	if (ak != b->kind)
		return ak < b->kind ? -1 : 1;
	c = strcmp(ans, b->ns);
	return c ? c : strcmp(aname, b->name);
}

static int cmp_stored(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;
	int c = cmp_key(x->kind, x->ns, x->name, y);

	return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static const struct stored *table_find(const struct table *t, enum src_kind k, const char *ns,
				       const char *name)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_key(k, ns, name, &t->v[mid]);
		if (c == 0)
			return &t->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Secret manifests often carry stringData, which the API server merges into
 * data (base64) before anyone reads it; do the same so a manifest and the
 * live object hash alike. Returns a new tree (the caller wipes it with
 * json_cleanse_tree) or NULL on OOM: never a partial merge, which would give
 * a wrong hash. */
static cJSON *secret_as_served(const cJSON *obj)
{
	cJSON *copy = cJSON_Duplicate(obj, 1), *data, *sd;
	const cJSON *m;
	bool ok = true;

	if (!copy)
		return NULL;
	sd = cJSON_DetachItemFromObjectCaseSensitive(copy, "stringData");
	if (!cJSON_IsObject(sd)) {
		cJSON_Delete(sd);
		return copy;
	}
	data = cJSON_GetObjectItemCaseSensitive(copy, "data");
	if (!cJSON_IsObject(data)) {
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "data");
		data = cJSON_AddObjectToObject(copy, "data");
	}
	ok = data != NULL;
	cJSON_ArrayForEach(m, sd) {
		size_t n;
		char *b64;
		if (!ok)
			break;
		if (!cJSON_IsString(m))
			continue;
		n = strlen(m->valuestring);
		b64 = malloc(4 * ((n + 2) / 3) + 1);
		if (!b64) {
			ok = false;
			break;
		}
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)m->valuestring, (int)n);
		cJSON_DeleteItemFromObjectCaseSensitive(data, m->string);
		ok = cJSON_AddStringToObject(data, m->string, b64) != NULL;
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	}
	json_cleanse_tree(sd);
	cJSON_Delete(sd);
	if (!ok) {
		json_cleanse_tree(copy);
		cJSON_Delete(copy);
		return NULL;
	}
	return copy;
}

/* The kinds table's row of each kind of lookup. */
static const enum kind_id src_kinds[] = {
	[SRC_CONFIGMAP] = KIND_CONFIGMAP,
	[SRC_SECRET] = KIND_SECRET,
	[SRC_DEPLOYMENT] = KIND_DEPLOYMENT,
};
#define N_SRC_KINDS (sizeof(src_kinds) / sizeof(src_kinds[0]))

const struct kind *objsource_kind(enum src_kind kind)
{
	return (unsigned)kind < N_SRC_KINDS ? kinds_get(src_kinds[kind]) : NULL;
}

/* The kind of lookup obj answers, when it is one at the version rollgate
 * reads. */
static int classify(const cJSON *obj, enum src_kind *kind)
{
	const char *api = json_get_string(obj, "apiVersion");
	const struct kind *k = kinds_by_kind(api, json_get_string(obj, "kind"));

	if (!k || strcmp(k->api_version, api) != 0)
		return -1;
	for (size_t i = 0; i < N_SRC_KINDS; i++) {
		if (src_kinds[i] == k->id) {
			*kind = (enum src_kind)i;
			return 0;
		}
	}
	return -1;
}

static int stored_fill(struct stored *s, const cJSON *obj, enum src_kind kind, char *err,
		       size_t errlen)
{
	cJSON *served = NULL;
	int rc;

	if (kind == SRC_DEPLOYMENT) {
		s->object = cJSON_Duplicate(obj, 1);
		return s->object ? 0 : -1;
	}
	s->digest = calloc(1, sizeof(*s->digest));
	if (!s->digest)
		return -1;
	if (kind == SRC_SECRET) {
		served = secret_as_served(obj);
		if (!served)
			return -1;
	}
	rc = confighash_digest_object(served ? served : obj,
				      kind == SRC_SECRET ? OBJ_SECRET : OBJ_CONFIGMAP, s->digest, err,
				      errlen);
	json_cleanse_tree(served);
	cJSON_Delete(served);
	return rc;
}

/* Adds obj when it is a kind we keep; other kinds are ignored. */
static int table_add(struct table *t, const cJSON *obj, char *err, size_t errlen)
{
	enum src_kind kind;
	const char *name = json_get_string(json_get(obj, "metadata"), "name");
	const char *ns = json_get_string(json_get(obj, "metadata"), "namespace");
	struct stored *s;
	int rc;

	if (classify(obj, &kind) < 0)
		return 0;
	if (!name || !*name) {
		snprintf(err, errlen, "%s without metadata.name", json_get_string(obj, "kind"));
		return -1;
	}
	rc = array_grow(&t->v, &t->cap, t->n + 1, sizeof(*t->v), TABLE_MAX);
	if (rc == ARRAY_E_FULL) {
		snprintf(err, errlen, "more than %u objects", TABLE_MAX);
		return -1;
	}
	if (rc < 0)
		goto oom;
	s = &t->v[t->n];
	memset(s, 0, sizeof(*s));
	s->seq = t->n;
	s->kind = kind;
	t->sealed = false;
	s->ns = strdup(ns ? ns : "");
	s->name = strdup(name);
	if (!s->ns || !s->name || stored_fill(s, obj, kind, err, errlen) < 0) {
		/* Never leave a half-filled entry behind. */
		stored_clear(s);
		if (!*err)
			goto oom;
		return -1;
	}
	t->n++;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Sorts; of two definitions of one object the first is kept (manifest
 * trees often hold one object per environment), and the drop is logged. */
static void table_seal(struct table *t)
{
	size_t w = 0;

	if (t->sealed)
		return;
	qsort(t->v, t->n, sizeof(*t->v), cmp_stored);
	for (size_t i = 0; i < t->n; i++) {
		if (w > 0 && cmp_key(t->v[i].kind, t->v[i].ns, t->v[i].name, &t->v[w - 1]) == 0) {
			RG_LOG(LOG_WARN, "object defined more than once; the first definition is used",
			       LF_S("name", t->v[i].name), LF_S("namespace", t->v[i].ns));
			stored_clear(&t->v[i]);
			continue;
		}
		t->v[w++] = t->v[i];
	}
	t->n = w;
	t->sealed = true;
}

/* Manifests without a namespace (a kustomize base) match any namespace. */
static const struct stored *find_any_namespace(const struct table *t, enum src_kind k,
					       const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].kind == k && strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	}
	return NULL;
}

static void answer(const struct table *t, const char *ns, struct lookup_item *it)
{
	const struct stored *s;

	if (!ns || !*ns)
		s = find_any_namespace(t, it->kind, it->name);
	else if (!(s = table_find(t, it->kind, ns, it->name)))
		s = table_find(t, it->kind, "", it->name);
	if (!s) {
		it->status = LOOKUP_ABSENT;
		metrics_lookup(LOOKUP_NOT_FOUND);
		return;
	}
	if (s->digest)
		it->digest = confighash_digest_dup(s->digest);
	else
		it->object = cJSON_Duplicate(s->object, 1);
	if (!it->digest && !it->object) {
		it->status = LOOKUP_ERROR;
		snprintf(it->reason, sizeof(it->reason), "out of memory");
		metrics_lookup(LOOKUP_FAILED);
		return;
	}
	it->status = LOOKUP_FOUND;
	metrics_lookup(LOOKUP_OK);
}

/* ---- the manifest-backed source ---- */

struct files {
	char *dir; /* NULL for the in-memory source */
	pthread_rwlock_t lock;
	struct table *table;
	unsigned long long signature; /* of names, sizes and mtimes */
};

static int files_resolve(void *impl, struct lookup_batch *b, unsigned timeout_ms, lookup_done_fn done,
			 void *arg)
{
	struct files *f = impl;

	(void)timeout_ms, (void)done, (void)arg;
	if (!f->dir) {
		/* The in-memory set grows until its first lookup. */
		pthread_rwlock_wrlock(&f->lock);
		table_seal(f->table);
		pthread_rwlock_unlock(&f->lock);
	}
	pthread_rwlock_rdlock(&f->lock);
	for (size_t i = 0; i < b->n; i++)
		answer(f->table, lookup_item_namespace(b, &b->items[i]), &b->items[i]);
	pthread_rwlock_unlock(&f->lock);
	return 0;
}

struct scan {
	struct table *t;
	unsigned long long sig;
	char *err;
	size_t errlen;
};

static int scan_object(cJSON *obj, const char *file, int line, void *arg)
{
	struct scan *s = arg;
	char why[200] = "";

	if (table_add(s->t, obj, why, sizeof(why)) < 0) {
		snprintf(s->err, s->errlen, "%s:%d: %s", file, line, why);
		return -1;
	}
	return 0;
}

static void sig_mix(unsigned long long *sig, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		*sig = (*sig ^ b[i]) * 1099511628211ULL;
}

static int sig_file(const char *path, void *arg)
{
	unsigned long long *sig = arg;
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;
	sig_mix(sig, path, strlen(path));
	sig_mix(sig, &st.st_size, sizeof(st.st_size));
	sig_mix(sig, &st.st_mtim, sizeof(st.st_mtim));
	sig_mix(sig, &st.st_ino, sizeof(st.st_ino));
	return 0;
}

static int files_load(struct files *f, struct table **out, unsigned long long *sig, char *err,
		      size_t errlen)
{
	struct scan s = { calloc(1, sizeof(struct table)), 1469598103934665603ULL, err, errlen };

	if (!s.t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (manifest_walk(f->dir, sig_file, &s.sig, err, errlen) < 0 ||
	    manifest_read_tree(f->dir, scan_object, &s, err, errlen) < 0) {
		table_free(s.t);
		return -1;
	}
	table_seal(s.t);
	*out = s.t;
	*sig = s.sig;
	return 0;
}

static int files_refresh(void *impl, char *err, size_t errlen)
{
	struct files *f = impl;
	unsigned long long sig = 1469598103934665603ULL;
	struct table *t, *old;

	if (!f->dir)
		return 0;
	if (manifest_walk(f->dir, sig_file, &sig, err, errlen) < 0)
		return -1;
	if (sig == f->signature)
		return 0;
	if (files_load(f, &t, &sig, err, errlen) < 0) {
		f->signature = sig; /* report a bad version once */
		return -1;
	}
	pthread_rwlock_wrlock(&f->lock);
	old = f->table;
	f->table = t;
	f->signature = sig;
	pthread_rwlock_unlock(&f->lock);
	table_free(old);
	return 1;
}

static void files_destroy(void *impl)
{
	struct files *f = impl;

	if (!f)
		return;
	table_free(f->table);
	pthread_rwlock_destroy(&f->lock);
	free(f->dir);
	free(f);
}

static const struct objsource_ops files_ops = { files_resolve, files_refresh, files_destroy };

static struct objsource *wrap(struct files *f, const char *name)
{
	struct objsource *src = calloc(1, sizeof(*src));

	if (!src) {
		files_destroy(f);
		return NULL;
	}
	src->ops = &files_ops;
	src->impl = f;
	src->name = name;
	return src;
}

static struct files *files_alloc(void)
{
	struct files *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->table = calloc(1, sizeof(*f->table));
	if (f->table)
		f->table->sealed = true;
	if (!f->table) {
		free(f);
		return NULL;
	}
	pthread_rwlock_init(&f->lock, NULL);
	return f;
}

struct objsource *objsource_files_new(const char *dir, char *err, size_t errlen)
{
	struct files *f = files_alloc();
	struct table *t;

	if (!f || !(f->dir = strdup(dir))) {
		snprintf(err, errlen, "out of memory");
		files_destroy(f);
		return NULL;
	}
	if (files_load(f, &t, &f->signature, err, errlen) < 0) {
		files_destroy(f);
		return NULL;
	}
	table_free(f->table);
	f->table = t;
	RG_LOG(LOG_INFO, "objects loaded", LF_S("dir", dir), LF_I("objects", t->n));
	return wrap(f, "files");
}

struct objsource *objsource_memory_new(void)
{
	struct files *f = files_alloc();

	return f ? wrap(f, "manifests") : NULL;
}

int objsource_memory_add(struct objsource *src, const cJSON *obj, char *err, size_t errlen)
{
	struct files *f = src->impl;
	int rc;

	err[0] = '\0';
	pthread_rwlock_wrlock(&f->lock);
	rc = table_add(f->table, obj, err, errlen);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}
