/*
 * The digest-only cache of ConfigMaps and Secrets, filled by kwatch.
 *
 * One writer (the watch thread) and many readers (admission lookups, the
 * reload controller) under a read-write lock. The writer reads the table
 * without the lock (nobody else writes it), builds every new record outside
 * the lock, and takes the write lock only to link or unlink; what it
 * unlinks it frees after unlocking (a reader can only reach a record under
 * the read lock). The intern tables of namespaces and key lists belong to
 * the writer alone: readers only follow pointers into entries that stay
 * alive as long as a linked record references them.
 *
 * Memory per object: a 32-byte header, 32 bytes per key, the name and the
 * resourceVersion, in one allocation; plus a bucket pointer. That is why the
 * records link their own hash chains (keyed by the process seed) instead of
 * living in an htable, whose slots (24 bytes, at most half full) would cost
 * several times the 8 bytes of a bucket; the intern tables are htables.
 */
#include "objcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "array.h"
#include "htable.h"
#include "jsonutil.h"
#include "kwatch.h"
#include "log.h"
#include "metrics.h"
#include "rgassert.h"
#include "rgtime.h"

#define DIGEST_LEN CONFIGHASH_DIGEST_LEN
/* Generations live in 30 bits of a record (the header stays 32 bytes);
 * a stream's counter wraps with them. */
#define GEN_MASK ((1u << 30) - 1)

/* ---- interning ---- */

/* Most distinct namespaces and key lists a cache interns; far past what a
 * cluster holds (a key list per object at most). */
#define INTERN_MAX (1u << 24)

/* A namespace name, shared by every record in it. */
struct nsent {
	uint32_t refs;
	char s[];
};

/* A sorted key list shared by every object with the same keys. */
struct keyset {
	uint32_t refs;
	size_t n;
	size_t len;   /* bytes of the keys' text, NULs included */
	char *keys[]; /* into the text, which follows the array */
};

/* Both tables own their entries (val_free); a namespace's key is its own
 * text, a key list is its own key. */
static const struct htable_type ns_type = { htable_hash_str, htable_equal_str, NULL, free };

static const char *keyset_text(const struct keyset *ks)
{
	return (const char *)&ks->keys[ks->n];
}

/* The text "a\0b\0" names the list: keys hold no NUL. */
static uint64_t keyset_hash(const void *key, const uint64_t seed[2])
{
	const struct keyset *ks = key;

	return htable_hash_bytes(keyset_text(ks), ks->len, seed);
}

static bool keyset_equal(const void *a, const void *b)
{
	const struct keyset *x = a, *y = b;

	return x->n == y->n && x->len == y->len && memcmp(keyset_text(x), keyset_text(y), x->len) == 0;
}

static const struct htable_type ks_type = { keyset_hash, keyset_equal, NULL, free };

static struct nsent *ns_intern(struct htable *t, const char *s)
{
	struct nsent *e = htable_find(t, s);
	size_t n = strlen(s) + 1;

	if (e) {
		e->refs++;
		return e;
	}
	e = malloc(sizeof(*e) + n);
	if (!e)
		return NULL;
	e->refs = 1;
	memcpy(e->s, s, n);
	if (htable_add(t, e->s, e, NULL) != 0) {
		free(e);
		return NULL;
	}
	return e;
}

/* Drops a reference to an interned entry stored under key; the last
 * deletes the entry, which the table frees. */
static void intern_release(struct htable *t, uint32_t *refs, const void *key)
{
	RG_ASSERT(*refs > 0);
	if (--*refs == 0)
		htable_delete(t, key);
}

static void ns_release(struct htable *t, struct nsent *e)
{
	if (e)
		intern_release(t, &e->refs, e->s);
}

/* The key list of d as one allocation, unshared yet. */
static struct keyset *keyset_build(const struct obj_digest *d)
{
	size_t len = 0;
	struct keyset *ks;
	char *p;

	for (size_t i = 0; i < d->n; i++)
		len += strlen(d->entries[i].key) + 1;
	ks = malloc(sizeof(*ks) + d->n * sizeof(char *) + len);
	if (!ks)
		return NULL;
	ks->refs = 1;
	ks->n = d->n;
	ks->len = len;
	p = (char *)&ks->keys[d->n];
	for (size_t i = 0; i < d->n; i++) {
		size_t n = strlen(d->entries[i].key) + 1;
		memcpy(p, d->entries[i].key, n);
		ks->keys[i] = p;
		p += n;
	}
	return ks;
}

/* The shared list equal to d's keys: built, then added unless an equal one
 * is there (one lookup either way). */
static struct keyset *keyset_intern(struct htable *t, const struct obj_digest *d)
{
	struct keyset *ks = keyset_build(d);
	void *have = NULL;
	int rc;

	if (!ks)
		return NULL;
	rc = htable_add(t, ks, ks, &have);
	if (rc == 0)
		return ks;
	free(ks);
	if (rc != HTABLE_EXISTS)
		return NULL;
	ks = have;
	ks->refs++;
	return ks;
}

static void keyset_release(struct htable *t, struct keyset *ks)
{
	if (ks)
		intern_release(t, &ks->refs, ks);
}

/* ---- records ---- */

struct cobj {
	struct cobj *next;
	struct nsent *ns;
	struct keyset *ks;    /* NULL: an object rollgate could not digest */
	uint32_t hash;        /* of (kind, namespace, name); bit 0 holds the kind */
	uint32_t gen : 30;    /* list generation of its stream that last saw it */
	uint32_t flags : 2;   /* OBJ_FLAG_*: its reload annotations */
	unsigned char data[]; /* ks->n digests, then name NUL resourceVersion NUL */
};

static enum obj_kind cobj_kind(const struct cobj *o)
{
	return (enum obj_kind)(o->hash & 1u);
}

static const char *cobj_name(const struct cobj *o)
{
	return (const char *)o->data + (o->ks ? o->ks->n : 0) * DIGEST_LEN;
}

static const char *cobj_rv(const struct cobj *o)
{
	const char *name = cobj_name(o);

	return name + strlen(name) + 1;
}

static const unsigned char *cobj_digest(const struct cobj *o, size_t i)
{
	return o->data + i * DIGEST_LEN;
}

/* Keyed (names come from the cluster's users, who could otherwise choose
 * colliding ones): the hashes of the namespace and the name under the
 * process seed, mixed, with the kind in bit 0. */
static uint32_t obj_hash(const uint64_t seed[2], enum obj_kind kind, const char *ns, const char *name)
{
	uint64_t h = htable_hash_str(ns, seed) * 0x9E3779B97F4A7C15ULL ^ htable_hash_str(name, seed);

	return ((uint32_t)(h >> 32) & ~1u) | (uint32_t)kind;
}

/* One list+watch stream's view. */
struct ocstream {
	struct objcache *c;
	enum obj_kind kind;
	char *ns; /* NULL: cluster-wide */
	uint32_t gen;
	atomic_bool synced;
};

struct objcache {
	struct kube_client *client;
	struct kwatch *w;
	struct strlist namespaces;
	char *selector;     /* as listed: both selectors, comma-joined */
	bool authoritative; /* reload.resourceLabelSelector: not listed is absent */
	struct ocstream *streams;
	size_t n_streams;

	pthread_rwlock_t lock;
	struct cobj **b;
	size_t nb;
	size_t count[2]; /* per kind; written under the write lock */

	uint64_t seed[2];             /* of the record hash */
	struct htable ns_tab, ks_tab; /* the writer's */

	pthread_mutex_t sub_lock;
	objcache_change_fn sub;
	void *sub_arg;

	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	atomic_bool synced;
};

static struct cobj *find(const struct objcache *c, enum obj_kind kind, const char *ns,
			 const char *name)
{
	uint32_t h = obj_hash(c->seed, kind, ns, name);

	if (c->nb == 0)
		return NULL;
	for (struct cobj *o = c->b[h & (c->nb - 1)]; o; o = o->next) {
		if (o->hash == h && strcmp(o->ns->s, ns) == 0 && strcmp(cobj_name(o), name) == 0)
			return o;
	}
	return NULL;
}

static void record_free(struct objcache *c, struct cobj *o)
{
	if (!o)
		return;
	ns_release(&c->ns_tab, o->ns);
	keyset_release(&c->ks_tab, o->ks);
	free(o);
}

/* Builds a record; d NULL marks an object that could not be digested. */
static struct cobj *record_new(struct objcache *c, enum obj_kind kind, const char *ns,
			       const char *name, const char *rv, const struct obj_digest *d)
{
	size_t n = d ? d->n : 0, nl = strlen(name) + 1, rl = strlen(rv) + 1;
	struct cobj *o = malloc(sizeof(*o) + n * DIGEST_LEN + nl + rl);

	if (!o)
		return NULL;
	o->next = NULL;
	o->hash = obj_hash(c->seed, kind, ns, name);
	o->gen = 0;
	o->flags = d ? d->flags & (OBJ_FLAG_IGNORE | OBJ_FLAG_MATCH) : 0;
	o->ns = ns_intern(&c->ns_tab, ns);
	o->ks = d ? keyset_intern(&c->ks_tab, d) : NULL;
	if (!o->ns || (d && !o->ks)) {
		record_free(c, o);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(o->data + i * DIGEST_LEN, d->entries[i].digest, DIGEST_LEN);
	memcpy(o->data + n * DIGEST_LEN, name, nl);
	memcpy(o->data + n * DIGEST_LEN + nl, rv, rl);
	return o;
}

/* Grows the bucket array; write lock held. */
static void table_grow(struct objcache *c)
{
	size_t nb = c->nb ? c->nb * 2 : 1024;
	struct cobj **b;

	if (c->count[0] + c->count[1] < c->nb)
		return;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nb; i++) {
		struct cobj *o = c->b[i], *next;
		for (; o; o = next) {
			next = o->next;
			o->next = b[o->hash & (nb - 1)];
			b[o->hash & (nb - 1)] = o;
		}
	}
	free(c->b);
	c->b = b;
	c->nb = nb;
}

/* Links o in place of old (or anew); write lock held. */
static void table_put(struct objcache *c, struct cobj *old, struct cobj *o)
{
	struct cobj **p;

	if (old) {
		for (p = &c->b[old->hash & (c->nb - 1)]; *p != old; p = &(*p)->next)
			RG_ASSERT(*p); /* old is linked in its chain */
		o->next = old->next;
		*p = o;
		return;
	}
	table_grow(c);
	p = &c->b[o->hash & (c->nb - 1)];
	o->next = *p;
	*p = o;
	c->count[cobj_kind(o)]++;
}

static void table_unlink(struct objcache *c, struct cobj *o)
{
	struct cobj **p;

	for (p = &c->b[o->hash & (c->nb - 1)]; *p != o; p = &(*p)->next)
		RG_ASSERT(*p); /* o is linked in its chain */
	*p = o->next;
	RG_ASSERT(c->count[cobj_kind(o)] > 0);
	c->count[cobj_kind(o)]--;
}

static void publish_counts(struct objcache *c)
{
	metrics_cache_objects(MR_CONFIGMAPS, (long long)c->count[OBJ_CONFIGMAP]);
	metrics_cache_objects(MR_SECRETS, (long long)c->count[OBJ_SECRET]);
}

/* ---- change notification ---- */

/* Keys borrowed from records; max is the keys of both sides, so only a
 * failed allocation sets oom. */
struct keylist {
	const char **v;
	size_t n, cap, max;
	bool oom;
};

static void keylist_add(struct keylist *l, const char *k)
{
	if (l->oom)
		return;
	if (array_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v), l->max) < 0) {
		l->oom = true;
		return;
	}
	l->v[l->n++] = k;
}

/* The keys whose digests differ between two records (both sorted). An
 * undigestible record on either side counts as an existence change. */
static bool diff_keys(const struct cobj *a, const struct cobj *b, struct keylist *out)
{
	size_t i = 0, j = 0;

	if (!a || !b || !a->ks || !b->ks)
		return true;
	out->max = a->ks->n + b->ks->n;
	while (i < a->ks->n || j < b->ks->n) {
		int cmp = i == a->ks->n ? 1
			: j == b->ks->n ? -1
					: strcmp(a->ks->keys[i], b->ks->keys[j]);
		if (cmp < 0) {
			keylist_add(out, a->ks->keys[i++]);
		} else if (cmp > 0) {
			keylist_add(out, b->ks->keys[j++]);
		} else {
			if (memcmp(cobj_digest(a, i), cobj_digest(b, j), DIGEST_LEN) != 0)
				keylist_add(out, a->ks->keys[i]);
			i++;
			j++;
		}
	}
	return out->oom; /* without the list, say everything changed */
}

static void notify(struct objcache *c, enum obj_kind kind, const char *ns, const char *name,
		   bool existence, bool flags, const struct keylist *keys)
{
	struct objcache_change ch = { kind, ns, name, existence, flags, NULL, 0 };

	if (!existence && !flags) {
		if (!keys || keys->n == 0)
			return;
		ch.keys = keys->v;
		ch.n_keys = keys->n;
	}
	pthread_mutex_lock(&c->sub_lock);
	if (c->sub)
		c->sub(c->sub_arg, &ch);
	pthread_mutex_unlock(&c->sub_lock);
}

/* ---- the stream handlers (watch thread) ---- */

static void on_list_start(void *arg)
{
	struct ocstream *st = arg;

	st->gen = (st->gen + 1) & GEN_MASK;
}

static void upsert(struct ocstream *st, const char *ns, const char *name, const char *rv,
		   const cJSON *obj)
{
	struct objcache *c = st->c;
	struct cobj *old = find(c, st->kind, ns, name), *o;
	struct obj_digest d = { NULL, 0, 0 };
	struct keylist keys = { 0 };
	bool existence, flags;
	char err[200];
	int rc;

	if (old && strcmp(cobj_rv(old), rv) == 0) {
		old->gen = st->gen; /* unchanged: nothing to digest */
		return;
	}
	rc = confighash_digest_object(obj, st->kind, &d, err, sizeof(err));
	if (rc < 0)
		RG_LOG(LOG_WARN, "cannot digest object; its lookups go to the API",
		       LF_S("kind", refs_kind_name(st->kind)), LF_S("namespace", ns),
		       LF_S("name", name), LF_S("reason", err));
	o = record_new(c, st->kind, ns, name, rv, rc < 0 ? NULL : &d);
	confighash_digest_clear(&d);
	if (!o) {
		/* Keep the old record rather than answer wrongly; a relist
		 * (the next 410) gets another chance. */
		RG_LOG(LOG_ERROR, "out of memory caching an object", LF_S("namespace", ns),
		       LF_S("name", name));
		return;
	}
	o->gen = st->gen;
	existence = diff_keys(old, o, &keys);
	/* Whether the object joins hashes at all changed: every user's set. */
	flags = !existence && old->flags != o->flags;
	pthread_rwlock_wrlock(&c->lock);
	table_put(c, old, o);
	pthread_rwlock_unlock(&c->lock);
	if (atomic_load(&st->synced))
		notify(c, st->kind, ns, name, existence, flags, &keys);
	free(keys.v);
	record_free(c, old);
	publish_counts(c);
}

static void remove_one(struct ocstream *st, const char *ns, const char *name)
{
	struct objcache *c = st->c;
	struct cobj *o = find(c, st->kind, ns, name);

	if (!o)
		return;
	pthread_rwlock_wrlock(&c->lock);
	table_unlink(c, o);
	pthread_rwlock_unlock(&c->lock);
	if (atomic_load(&st->synced))
		notify(c, st->kind, ns, name, true, false, NULL);
	record_free(c, o);
	publish_counts(c);
}

static void on_object(void *arg, enum kwatch_event ev, const cJSON *obj)
{
	struct ocstream *st = arg;
	const cJSON *meta = json_get(obj, "metadata");
	const char *ns = json_get_string(meta, "namespace"), *name = json_get_string(meta, "name");
	const char *rv = json_get_string(meta, "resourceVersion");

	if (!ns || !name || !rv || !*name || (st->ns && strcmp(ns, st->ns) != 0))
		return;
	if (ev == KWATCH_DELETED)
		remove_one(st, ns, name);
	else
		upsert(st, ns, name, rv, obj);
}

static bool stream_covers(const struct ocstream *st, const struct cobj *o)
{
	return cobj_kind(o) == st->kind && (!st->ns || strcmp(o->ns->s, st->ns) == 0);
}

/* After a (re)list: what the list did not deliver is gone. */
static void sweep(struct ocstream *st)
{
	struct objcache *c = st->c;
	struct cobj *dead = NULL, *o, *next;

	pthread_rwlock_wrlock(&c->lock);
	for (size_t i = 0; i < c->nb; i++) {
		struct cobj **p = &c->b[i];
		while (*p) {
			o = *p;
			if (stream_covers(st, o) && o->gen != st->gen) {
				*p = o->next;
				c->count[cobj_kind(o)]--;
				o->next = dead;
				dead = o;
			} else {
				p = &o->next;
			}
		}
	}
	pthread_rwlock_unlock(&c->lock);
	for (o = dead; o; o = next) {
		next = o->next;
		if (atomic_load(&st->synced))
			notify(c, st->kind, o->ns->s, cobj_name(o), true, false, NULL);
		record_free(c, o);
	}
	publish_counts(c);
}

static bool all_synced(const struct objcache *c)
{
	for (size_t i = 0; i < c->n_streams; i++)
		if (!atomic_load(&c->streams[i].synced))
			return false;
	return true;
}

static void on_synced(void *arg)
{
	struct ocstream *st = arg;
	struct objcache *c = st->c;

	sweep(st);
	if (atomic_load(&st->synced))
		return;
	atomic_store(&st->synced, true);
	if (!all_synced(c))
		return;
#ifdef __GLIBC__
	/* The first lists parsed many pages: hand the freed pages back. */
	malloc_trim(0);
#endif
	pthread_mutex_lock(&c->sync_lock);
	atomic_store(&c->synced, true);
	pthread_cond_broadcast(&c->sync_cond);
	pthread_mutex_unlock(&c->sync_lock);
	metrics_cache_synced(true);
	RG_LOG(LOG_INFO, "watch cache synced", LF_I("configmaps", c->count[OBJ_CONFIGMAP]),
	       LF_I("secrets", c->count[OBJ_SECRET]));
}

static void on_disabled(void *arg)
{
	(void)arg; /* core resources are never optional */
}

/* ---- the public side ---- */

static int add_stream(struct objcache *c, struct ocstream *st, enum obj_kind kind, const char *ns,
		      char *err, size_t errlen)
{
	char path[512];
	struct kwatch_spec spec = {
		.path = path,
		.label_selector = c->selector,
		.resource = kind == OBJ_SECRET ? MR_SECRETS : MR_CONFIGMAPS,
		.sensitive = kind == OBJ_SECRET,
		.optional = false,
		.handler = { on_list_start, on_object, on_synced, on_disabled, st },
	};

	st->c = c;
	st->kind = kind;
	atomic_init(&st->synced, false);
	if (ns && !kube_valid_namespace(ns)) {
		snprintf(err, errlen, "watch.namespaces: \"%.80s\" is not a namespace name", ns);
		return -1;
	}
	st->ns = ns ? strdup(ns) : NULL;
	if (ns && !st->ns) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(path, sizeof(path), "/api/v1/%s%s%s%s", ns ? "namespaces/" : "", ns ? ns : "",
		 ns ? "/" : "", refs_kind(kind)->resource);
	return kwatch_add(c->w, &spec, err, errlen);
}

/* The selector the streams list with: either, or both comma-joined (the
 * API ANDs the requirements). NULL with *oom when none or out of memory. */
static char *join_selectors(const char *a, const char *b, bool *oom)
{
	char *s = NULL;

	a = a && *a ? a : NULL;
	b = b && *b ? b : NULL;
	*oom = false;
	if (!a && !b)
		return NULL;
	if (a && b) {
		if (asprintf(&s, "%s,%s", a, b) < 0)
			s = NULL;
	} else {
		s = strdup(a ? a : b);
	}
	*oom = s == NULL;
	return s;
}

struct objcache *objcache_new(struct kube_client *client, const struct strlist *namespaces,
			      const char *label_selector, char *err, size_t errlen)
{
	const struct objcache_scope scope = { namespaces, label_selector, NULL, false, false };

	return objcache_new_scoped(client, &scope, err, errlen);
}

struct objcache *objcache_new_scoped(struct kube_client *client, const struct objcache_scope *scope,
				     char *err, size_t errlen)
{
	struct objcache *c = calloc(1, sizeof(*c));
	const struct strlist *namespaces = scope->namespaces;
	size_t nns = namespaces ? namespaces->n : 0, nkinds = 0;
	enum obj_kind kinds[2];
	bool oom;

	if (!c)
		goto oom;
	c->client = client;
	htable_process_seed(c->seed);
	htable_init(&c->ns_tab, &ns_type, INTERN_MAX);
	htable_init(&c->ks_tab, &ks_type, INTERN_MAX);
	pthread_rwlock_init(&c->lock, NULL);
	pthread_mutex_init(&c->sub_lock, NULL);
	pthread_mutex_init(&c->sync_lock, NULL);
	pthread_cond_init(&c->sync_cond, NULL);
	atomic_init(&c->synced, false);
	for (size_t i = 0; i < nns; i++)
		if (strlist_push(&c->namespaces, namespaces->v[i]) < 0)
			goto oom;
	c->selector = join_selectors(scope->label_selector, scope->resource_selector, &oom);
	c->authoritative = scope->resource_selector && *scope->resource_selector;
	if (oom)
		goto oom;
	if (!scope->skip_configmaps)
		kinds[nkinds++] = OBJ_CONFIGMAP;
	if (!scope->skip_secrets)
		kinds[nkinds++] = OBJ_SECRET;
	c->w = kwatch_new(client);
	c->n_streams = nkinds * (nns ? nns : 1);
	c->streams = c->n_streams ? calloc(c->n_streams, sizeof(*c->streams)) : NULL;
	if (!c->w || (c->n_streams && !c->streams))
		goto oom;
	for (size_t i = 0; i < c->n_streams; i++) {
		const char *ns = nns ? c->namespaces.v[i / nkinds] : NULL;
		if (add_stream(c, &c->streams[i], kinds[i % nkinds], ns, err, errlen) < 0)
			goto fail;
	}
	metrics_cache_synced(false);
	return c;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	objcache_free(c);
	return NULL;
}

int objcache_start(struct objcache *c, char *err, size_t errlen)
{
	if (kwatch_start(c->w, err, errlen) < 0)
		return -1;
	if (c->n_streams == 0) { /* both kinds ignored: nothing to wait for */
		atomic_store(&c->synced, true);
		metrics_cache_synced(true);
	}
	RG_LOG(LOG_INFO, "watching ConfigMaps and Secrets",
	       LF_S("scope", c->namespaces.n ? "namespaces" : "cluster"),
	       LF_I("namespaces", c->namespaces.n),
	       LF_S("label_selector", c->selector ? c->selector : ""));
	return 0;
}

void objcache_free(struct objcache *c)
{
	if (!c)
		return;
	kwatch_free(c->w);
	for (size_t i = 0; i < c->nb; i++) {
		struct cobj *o = c->b[i], *next;
		for (; o; o = next) {
			next = o->next;
			record_free(c, o);
		}
	}
	free(c->b);
	/* Every record released its namespace and key list. */
	RG_ASSERT(htable_size(&c->ns_tab) == 0 && htable_size(&c->ks_tab) == 0);
	htable_clear(&c->ns_tab);
	htable_clear(&c->ks_tab);
	for (size_t i = 0; c->streams && i < c->n_streams; i++)
		free(c->streams[i].ns);
	free(c->streams);
	strlist_clear(&c->namespaces);
	free(c->selector);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->sub_lock);
	pthread_mutex_destroy(&c->sync_lock);
	pthread_cond_destroy(&c->sync_cond);
	free(c);
}

bool objcache_synced(struct objcache *c)
{
	return atomic_load(&c->synced);
}

bool objcache_wait_synced(struct objcache *c, unsigned timeout_ms)
{
	struct timespec until;

	rgtime_wall_after(&until, timeout_ms);
	pthread_mutex_lock(&c->sync_lock);
	while (!atomic_load(&c->synced) &&
	       pthread_cond_timedwait(&c->sync_cond, &c->sync_lock, &until) == 0)
		;
	pthread_mutex_unlock(&c->sync_lock);
	return atomic_load(&c->synced);
}

size_t objcache_count(struct objcache *c)
{
	size_t n;

	pthread_rwlock_rdlock(&c->lock);
	n = c->count[0] + c->count[1];
	pthread_rwlock_unlock(&c->lock);
	return n;
}

/* The stream whose scope holds (kind, ns), or NULL. */
static const struct ocstream *covering(const struct objcache *c, enum obj_kind kind, const char *ns)
{
	for (size_t i = 0; i < c->n_streams; i++) {
		const struct ocstream *st = &c->streams[i];
		if (st->kind == kind && (!st->ns || strcmp(st->ns, ns) == 0))
			return st;
	}
	return NULL;
}

static struct obj_digest *record_digest(const struct cobj *o)
{
	struct obj_digest *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->flags = o->flags;
	if (o->ks->n == 0)
		return d;
	d->entries = calloc(o->ks->n, sizeof(*d->entries));
	if (!d->entries)
		goto fail;
	for (; d->n < o->ks->n; d->n++) {
		d->entries[d->n].key = strdup(o->ks->keys[d->n]);
		if (!d->entries[d->n].key)
			goto fail;
		memcpy(d->entries[d->n].digest, cobj_digest(o, d->n), DIGEST_LEN);
	}
	return d;
fail:
	confighash_digest_free(d);
	return NULL;
}

enum objcache_answer objcache_lookup(struct objcache *c, enum obj_kind kind, const char *ns,
				     const char *name, struct obj_digest **out)
{
	const struct ocstream *st = ns && name ? covering(c, kind, ns) : NULL;
	enum objcache_answer a;
	const struct cobj *o;

	*out = NULL;
	if (!st || !atomic_load(&st->synced))
		return OBJCACHE_UNKNOWN;
	pthread_rwlock_rdlock(&c->lock);
	o = find(c, kind, ns, name);
	if (!o) {
		a = c->selector && !c->authoritative ? OBJCACHE_UNKNOWN : OBJCACHE_ABSENT;
	} else if (!o->ks) {
		a = OBJCACHE_UNKNOWN;
	} else {
		*out = record_digest(o);
		a = *out ? OBJCACHE_FOUND : OBJCACHE_ERROR;
	}
	pthread_rwlock_unlock(&c->lock);
	return a;
}

void objcache_subscribe(struct objcache *c, objcache_change_fn fn, void *arg)
{
	pthread_mutex_lock(&c->sub_lock);
	c->sub = fn;
	c->sub_arg = arg;
	pthread_mutex_unlock(&c->sub_lock);
}

/* ---- the cached object source ---- */

struct cached {
	struct objcache *cache;
	struct objsource *fallback;
};

/* The lookups the cache could not answer, sent on as one batch. */
struct forward {
	struct lookup_batch sub;
	struct lookup_item **orig; /* orig[i] receives sub.items[i] */
	lookup_done_fn done;
	void *arg;
};

static void forward_copy_back(struct forward *f)
{
	for (size_t i = 0; i < f->sub.n; i++) {
		struct lookup_item *o = f->orig[i], *s = &f->sub.items[i];
		o->status = s->status;
		o->digest = s->digest;
		o->object = s->object;
		memcpy(o->reason, s->reason, sizeof(o->reason));
		s->digest = NULL;
		s->object = NULL;
	}
}

static void forward_free(struct forward *f)
{
	if (!f)
		return;
	lookup_batch_clear(&f->sub);
	free(f->sub.items);
	free(f->orig);
	free(f);
}

static void forward_done(void *arg)
{
	struct forward *f = arg;
	lookup_done_fn done = f->done;
	void *darg = f->arg;

	forward_copy_back(f);
	forward_free(f);
	done(darg);
}

static void item_fail(struct lookup_item *it, const char *why)
{
	it->status = LOOKUP_ERROR;
	snprintf(it->reason, sizeof(it->reason), "%s", why);
	metrics_lookup(LOOKUP_FAILED);
}

/* Answers from the cache; returns true when the item must go to the API. */
static bool answer_cached(struct objcache *cache, const char *ns, struct lookup_item *it)
{
	struct obj_digest *d = NULL;

	if (it->kind == SRC_DEPLOYMENT)
		return true;
	switch (objcache_lookup(cache, it->kind == SRC_SECRET ? OBJ_SECRET : OBJ_CONFIGMAP, ns,
				it->name, &d)) {
	case OBJCACHE_FOUND:
		it->status = LOOKUP_FOUND;
		it->digest = d;
		metrics_lookup(LOOKUP_OK);
		return false;
	case OBJCACHE_ABSENT:
		it->status = LOOKUP_ABSENT;
		metrics_lookup(LOOKUP_NOT_FOUND);
		return false;
	case OBJCACHE_ERROR:
		item_fail(it, "out of memory");
		return false;
	default:
		return true;
	}
}

static int cached_resolve(void *impl, struct lookup_batch *b, unsigned timeout_ms, lookup_done_fn done,
			  void *arg)
{
	struct cached *cs = impl;
	struct forward *f = NULL;
	size_t n = 0;
	bool *need = b->n ? calloc(b->n, sizeof(*need)) : NULL;
	int r;

	if (b->n && !need)
		goto oom;
	for (size_t i = 0; i < b->n; i++) {
		need[i] = answer_cached(cs->cache, lookup_item_namespace(b, &b->items[i]),
					&b->items[i]);
		n += need[i];
	}
	if (n == 0)
		goto now;
	if (!cs->fallback) {
		for (size_t i = 0; i < b->n; i++)
			if (need[i])
				item_fail(&b->items[i], "not in the watch cache and no API fallback");
		goto now;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto oom;
	f->sub.items = calloc(n, sizeof(*f->sub.items));
	f->orig = calloc(n, sizeof(*f->orig));
	if (!f->sub.items || !f->orig)
		goto oom;
	f->sub.namespace_ = b->namespace_;
	f->done = done;
	f->arg = arg;
	for (size_t i = 0; i < b->n; i++) {
		if (!need[i])
			continue;
		f->orig[f->sub.n] = &b->items[i];
		f->sub.items[f->sub.n].kind = b->items[i].kind;
		f->sub.items[f->sub.n].name = b->items[i].name;
		f->sub.items[f->sub.n].namespace_ = lookup_item_namespace(b, &b->items[i]);
		f->sub.n++;
	}
	free(need);
	r = objsource_resolve(cs->fallback, &f->sub, timeout_ms, forward_done, f);
	if (r == 0) {
		forward_copy_back(f);
		forward_free(f);
	}
	return r;
oom:
	forward_free(f);
	for (size_t i = 0; i < b->n; i++)
		if (!need || need[i])
			if (b->items[i].status == LOOKUP_NONE)
				item_fail(&b->items[i], "out of memory");
now:
	free(need);
	return 0;
}

static int cached_refresh(void *impl, char *err, size_t errlen)
{
	struct cached *cs = impl;

	return cs->fallback ? objsource_refresh(cs->fallback, err, errlen) : 0;
}

static void cached_destroy(void *impl)
{
	struct cached *cs = impl;

	if (!cs)
		return;
	objsource_free(cs->fallback);
	free(cs);
}

static const struct objsource_ops cached_ops = { cached_resolve, cached_refresh, cached_destroy };

struct objsource *objsource_cached_new(struct objcache *cache, struct objsource *fallback)
{
	struct objsource *src = calloc(1, sizeof(*src));
	struct cached *cs = calloc(1, sizeof(*cs));

	if (!src || !cs) {
		free(src);
		free(cs);
		return NULL;
	}
	cs->cache = cache;
	cs->fallback = fallback;
	src->ops = &cached_ops;
	src->impl = cs;
	src->name = "kubernetes (watch cache)";
	return src;
}
