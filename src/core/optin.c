/*
 * Which ConfigMaps and Secrets join a workload's config hash (optin.h).
 *
 * One table of rows, read in order, decides for each kind of object:
 *
 *   opted out     rollgate.io/reload or reloader.stakater.com/auto "false",
 *                 or the namespace in reload.ignoreNamespaces: nothing
 *   all of kind   stamp.mode all, rollgate.io/reload, Wave's opt-in,
 *                 reloader.stakater.com/auto, rollgate's own lists, or the
 *                 kind's typed auto: every reference of the kind, per key
 *   listed        a reference whose name a reload list matches (a name, or
 *                 an anchored POSIX extended expression): the whole object;
 *                 a plain name in the list joins even when the pod spec
 *                 does not reference it
 *   searched      reloader.stakater.com/search: every other reference, whole,
 *                 joining only when the object carries
 *                 reloader.stakater.com/match (need_match)
 *   extra         Wave's extra lists ("ns/name" or "name"): whole objects
 *   excluded      an exclude list names it, or reload.ignoreConfigMaps /
 *                 reload.ignoreSecrets covers its kind: never
 *
 * and at hash time an object carrying reloader.stakater.com/ignore never
 * joins (optin_object_joins).
 */
#include "optin.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confighash.h"
#include "jsonutil.h"

#define LIST_MAX_ITEMS 64
#define ITEM_MAX_LEN 253

const char *optin_annotation(const cJSON *workload, const cJSON *tmpl, const char *key)
{
	const char *v = json_get_string(json_get_path(workload, "metadata", "annotations", NULL), key);

	if (v)
		return v;
	return json_get_string(json_get_path(tmpl, "metadata", "annotations", NULL), key);
}

const char *optin_own_annotation(const struct config *cfg, const cJSON *holder, const char *suffix)
{
	size_t plen = strlen(cfg->annotation_prefix);
	const cJSON *m;

	cJSON_ArrayForEach(m, json_get_path(holder, "metadata", "annotations", NULL)) {
		if (cJSON_IsString(m) && m->string &&
		    strncmp(m->string, cfg->annotation_prefix, plen) == 0 && m->string[plen] == '/' &&
		    strcmp(m->string + plen + 1, suffix) == 0)
			return m->valuestring;
	}
	return NULL;
}

bool optin_is_hold_scheduler(const char *s)
{
	return s &&
		(strcmp(s, OPTIN_HOLD_SCHEDULER) == 0 || strcmp(s, OPTIN_WAVE_HOLD_SCHEDULER) == 0);
}

bool optin_object_joins(const struct ref *r, unsigned flags)
{
	if (flags & OBJ_FLAG_IGNORE)
		return false;
	return !r->need_match || (flags & OBJ_FLAG_MATCH);
}

/* The annotations the table reads. */
enum ann_id {
	A_RELOAD, /* <prefix>/reload */
	A_CMS,    /* <prefix>/configmaps */
	A_SECRETS,
	A_WAVE,
	A_WAVE_EXTRA_CMS,
	A_WAVE_EXTRA_SECRETS,
	A_AUTO,
	A_CM_AUTO,
	A_SECRET_AUTO,
	A_CM_RELOAD,
	A_SECRET_RELOAD,
	A_CM_EXCLUDE,
	A_SECRET_EXCLUDE,
	A_SEARCH,
	A_COUNT
};

static const char *const fixed_keys[A_COUNT] = {
	[A_WAVE] = OPTIN_WAVE,
	[A_WAVE_EXTRA_CMS] = OPTIN_WAVE_EXTRA_CONFIGMAPS,
	[A_WAVE_EXTRA_SECRETS] = OPTIN_WAVE_EXTRA_SECRETS,
	[A_AUTO] = OPTIN_RELOADER_AUTO,
	[A_CM_AUTO] = OPTIN_RELOADER_CM_AUTO,
	[A_SECRET_AUTO] = OPTIN_RELOADER_SECRET_AUTO,
	[A_CM_RELOAD] = OPTIN_RELOADER_CM_RELOAD,
	[A_SECRET_RELOAD] = OPTIN_RELOADER_SECRET_RELOAD,
	[A_CM_EXCLUDE] = OPTIN_RELOADER_CM_EXCLUDE,
	[A_SECRET_EXCLUDE] = OPTIN_RELOADER_SECRET_EXCLUDE,
	[A_SEARCH] = OPTIN_RELOADER_SEARCH,
};

/* The value of every annotation the table reads, the workload's over its
 * pod template's; NULL where neither has it as a string. */
struct ann {
	const char *v[A_COUNT];
};

/* Which annotation key is, or -1. One pass over a workload's annotations
 * costs less than a lookup per key the table reads. */
static int ann_id(const struct config *cfg, const char *key)
{
	size_t plen = strlen(cfg->annotation_prefix);

	if (strncmp(key, cfg->annotation_prefix, plen) == 0 && key[plen] == '/') {
		const char *suffix = key + plen + 1;
		if (strcmp(suffix, "reload") == 0)
			return A_RELOAD;
		if (strcmp(suffix, "configmaps") == 0)
			return A_CMS;
		if (strcmp(suffix, "secrets") == 0)
			return A_SECRETS;
		return -1;
	}
	for (int i = 0; i < A_COUNT; i++)
		if (fixed_keys[i] && fixed_keys[i][0] == key[0] && strcmp(fixed_keys[i], key) == 0)
			return i;
	return -1;
}

/* Reads the annotations of one holder; those already read win. */
static void ann_scan(struct ann *a, const struct config *cfg, const cJSON *holder)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, json_get_path(holder, "metadata", "annotations", NULL)) {
		int id;
		if (!cJSON_IsString(m) || !m->string)
			continue;
		id = ann_id(cfg, m->string);
		if (id >= 0 && !a->v[id])
			a->v[id] = m->valuestring;
	}
}

static const char *get(const struct ann *a, enum ann_id id)
{
	return a->v[id];
}

static bool is(const struct ann *a, enum ann_id id, const char *value)
{
	return a->v[id] && strcmp(a->v[id], value) == 0;
}

static bool set(const struct ann *a, enum ann_id id)
{
	return a->v[id] && *a->v[id];
}

/* What one kind of object gets. */
struct rows {
	bool all;           /* every reference, per key */
	const char *reload; /* Reloader's reload list, or NULL */
	const char *exclude;
	const char *extra; /* Wave's */
	const char *own;   /* rollgate.io/configmaps or /secrets */
	const char *own_key;
	bool ignored; /* reload.ignoreConfigMaps / ignoreSecrets */
};

/* ---- comma-separated lists ------------------------------------------- */

/* Calls fn on each trimmed, non-empty item of csv (at most LIST_MAX_ITEMS,
 * each at most ITEM_MAX_LEN bytes); stops at the first nonzero return. */
typedef int (*item_fn)(const char *item, void *arg);

static int each_item(const char *csv, item_fn fn, void *arg)
{
	char item[ITEM_MAX_LEN + 1];
	size_t count = 0;
	const char *p = csv;

	while (csv && *p) {
		const char *end = strchr(p, ','), *q;
		size_t len;
		int rc;

		if (!end)
			end = p + strlen(p);
		for (q = p; q < end && (*q == ' ' || *q == '\t'); q++)
			;
		len = (size_t)(end - q);
		while (len > 0 && (q[len - 1] == ' ' || q[len - 1] == '\t'))
			len--;
		p = *end ? end + 1 : end;
		if (len == 0)
			continue;
		if (len > ITEM_MAX_LEN || ++count > LIST_MAX_ITEMS)
			return -2;
		memcpy(item, q, len);
		item[len] = '\0';
		rc = fn(item, arg);
		if (rc)
			return rc;
	}
	return 0;
}

/* A plain object name: what a DNS subdomain may hold. Anything else in a
 * reload list is an expression. */
static bool plain_name(const char *s)
{
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen(s);
}

struct match {
	const char *name;
	bool found;
	bool bad; /* an expression that does not compile */
};

static int match_item(const char *item, void *arg)
{
	struct match *m = arg;
	char anchored[ITEM_MAX_LEN + 8];
	regex_t re;

	if (plain_name(item)) {
		m->found = strcmp(item, m->name) == 0;
		return m->found;
	}
	/* Reloader anchors each expression: ^(item)$. */
	snprintf(anchored, sizeof(anchored), "^(%s)$", item);
	if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) != 0) {
		m->bad = true;
		return -1;
	}
	m->found = regexec(&re, m->name, 0, NULL, 0) == 0;
	regfree(&re);
	return m->found;
}

/* Whether csv names name (a plain item equal to it, or an expression
 * matching all of it). -1 for an expression that does not compile or a
 * list past its limits. */
static int list_matches(const char *csv, const char *name)
{
	struct match m = { name, false, false };
	int rc = each_item(csv, match_item, &m);

	if (rc < 0)
		return -1;
	return m.found;
}

static int exclude_item(const char *item, void *arg)
{
	return strcmp(item, arg) == 0;
}

/* Reloader compares exclude items as plain names. */
static bool excluded(const struct rows *r, const char *name)
{
	return r->exclude && each_item(r->exclude, exclude_item, (void *)name) == 1;
}

/* ---- the decision ----------------------------------------------------- */

struct adding {
	struct refset *set;
	enum obj_kind kind;
	const struct rows *rows;
	const struct config *cfg;
	const char *ns;
	const char *user;
};

static int add_plain(const char *item, void *arg)
{
	struct adding *a = arg;

	if (!plain_name(item) || excluded(a->rows, item))
		return 0; /* expressions only select among referenced objects */
	return refs_add_list(a->set, a->kind, item, a->user) < 0 ? -1 : 0;
}

/* rollgate's own lists name objects: an expression there is an error. */
static int add_name(const char *item, void *arg)
{
	struct adding *a = arg;

	if (!plain_name(item))
		return -1;
	if (excluded(a->rows, item))
		return 0;
	return refs_add_list(a->set, a->kind, item, a->user) < 0 ? -1 : 0;
}

static int add_extra(const char *item, void *arg)
{
	struct adding *a = arg;
	const char *slash = strchr(item, '/');
	char ns[ITEM_MAX_LEN + 1];

	if (slash) {
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - item), item);
		if (strlist_contains(&a->cfg->reload_ignore_namespaces, ns))
			return 0;
	}
	if (excluded(a->rows, slash && a->ns && strcmp(ns, a->ns) == 0 ? slash + 1 : item))
		return 0;
	return refs_add_qualified(a->set, a->kind, item, a->ns, a->user) < 0 ? -1 : 0;
}

static void ref_release(struct ref *r)
{
	for (size_t k = 0; k < r->n_keys; k++)
		free(r->keys[k]);
	free(r->keys);
	free(r->name);
	free(r->namespace_);
	free(r->user);
}

/* Keeps the pod spec's references the rows select, in place. */
static int select_refs(struct refset *set, const struct rows rows[2], bool search, char *err,
		       size_t errlen)
{
	size_t w = 0;
	int rc = 0;

	for (size_t i = 0; i < set->n; i++) {
		struct ref *r = &set->refs[i];
		const struct rows *k = &rows[r->kind];
		bool keep = false;

		if (k->ignored || excluded(k, r->name) || rc < 0) {
			;
		} else if (k->all) {
			keep = true;
		} else {
			int m = k->reload ? list_matches(k->reload, r->name) : 0;
			if (m < 0) {
				snprintf(err, errlen,
					 "%s: an item is not a valid expression, or "
					 "the list has more than %d items",
					 r->kind == OBJ_CONFIGMAP ? OPTIN_RELOADER_CM_RELOAD
								  : OPTIN_RELOADER_SECRET_RELOAD,
					 LIST_MAX_ITEMS);
				rc = -1;
			} else if (m || search) {
				keep = true;
				r->need_match = !m;
				r->whole = true;
				for (size_t j = 0; j < r->n_keys; j++)
					free(r->keys[j]);
				free(r->keys);
				r->keys = NULL;
				r->n_keys = r->cap_keys = 0;
			}
		}
		if (keep)
			set->refs[w++] = *r;
		else
			ref_release(r);
	}
	set->n = w;
	return rc;
}

static int add_lists(const struct config *cfg, const char *ns, const struct rows rows[2],
		     struct refset *set, char *err, size_t errlen)
{
	for (int kind = OBJ_CONFIGMAP; kind <= OBJ_SECRET; kind++) {
		const struct rows *k = &rows[kind];
		struct adding a = { set, (enum obj_kind)kind, k, cfg, ns, NULL };
		const struct {
			const char *csv, *user;
			item_fn fn;
		} lists[] = {
			{ k->reload,
			  kind == OBJ_CONFIGMAP ? OPTIN_RELOADER_CM_RELOAD
						: OPTIN_RELOADER_SECRET_RELOAD,
			  add_plain },
			{ k->own, k->own_key, add_name },
			{ k->extra,
			  kind == OBJ_CONFIGMAP ? OPTIN_WAVE_EXTRA_CONFIGMAPS
						: OPTIN_WAVE_EXTRA_SECRETS,
			  add_extra },
		};

		if (k->ignored)
			continue;
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
			int rc;
			if (!lists[i].csv)
				continue;
			a.user = lists[i].user;
			rc = each_item(lists[i].csv, lists[i].fn, &a);
			if (rc < 0) {
				snprintf(err, errlen,
					 "%s: an item is not a valid name, or the list has more "
					 "than %d items",
					 lists[i].user, LIST_MAX_ITEMS);
				return -1;
			}
		}
	}
	return 0;
}

int optin_decide(const struct config *cfg, const char *ns, const cJSON *workload, const cJSON *tmpl,
		 struct refset *out, char *err, size_t errlen)
{
	char cms[300] = "", secrets[300] = "";
	struct ann a = { { NULL } };
	const cJSON *podspec;
	struct rows rows[2];
	bool all, search;

	memset(out, 0, sizeof(*out));
	ann_scan(&a, cfg, workload);
	ann_scan(&a, cfg, tmpl);
	if (is(&a, A_RELOAD, "false") || is(&a, A_AUTO, "false") ||
	    (ns && strlist_contains(&cfg->reload_ignore_namespaces, ns)))
		return 0;
	all = cfg->stamp_mode == STAMP_ALL || is(&a, A_RELOAD, "true") || is(&a, A_WAVE, "true") ||
		is(&a, A_AUTO, "true") || set(&a, A_CMS) || set(&a, A_SECRETS);
	search = is(&a, A_SEARCH, "true");
	rows[OBJ_CONFIGMAP] = (struct rows){
		.all = all || is(&a, A_CM_AUTO, "true"),
		.reload = get(&a, A_CM_RELOAD),
		.exclude = get(&a, A_CM_EXCLUDE),
		.extra = get(&a, A_WAVE_EXTRA_CMS),
		.own = get(&a, A_CMS),
		.own_key = cms,
		.ignored = cfg->reload_ignore_configmaps,
	};
	rows[OBJ_SECRET] = (struct rows){
		.all = all || is(&a, A_SECRET_AUTO, "true"),
		.reload = get(&a, A_SECRET_RELOAD),
		.exclude = get(&a, A_SECRET_EXCLUDE),
		.extra = get(&a, A_WAVE_EXTRA_SECRETS),
		.own = get(&a, A_SECRETS),
		.own_key = secrets,
		.ignored = cfg->reload_ignore_secrets,
	};
	if (!rows[0].all && !rows[1].all && !search && !set(&a, A_CM_RELOAD) &&
	    !set(&a, A_SECRET_RELOAD))
		return 0;
	/* The keys name rollgate's own lists in messages. */
	if (rows[OBJ_CONFIGMAP].own)
		config_annotation(cfg, "configmaps", cms, sizeof(cms));
	if (rows[OBJ_SECRET].own)
		config_annotation(cfg, "secrets", secrets, sizeof(secrets));
	podspec = json_get(tmpl, "spec");
	if (podspec && refs_collect(podspec, out, err, errlen) < 0)
		return -1;
	if (select_refs(out, rows, search, err, errlen) < 0 ||
	    add_lists(cfg, ns, rows, out, err, errlen) < 0)
		return -1;
	refs_finish(out);
	return 1;
}
