/*
 * The kube-apiserver test double (see apidouble.h): one HTTPS server that
 * keeps a store of objects with one resourceVersion counter and serves
 * lists, watches, GETs, server-side apply, Leases and Events from it, or
 * answers GETs by name for the object-source tests.
 */
#include "apidouble.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "testutil.h"

#include "array.h"
#include "labelsel.h"
#include "patch.h"

static const struct ad_kind ad_kinds[AD_NKINDS] = {
	{ "configmaps", "/api/v1", "ConfigMap", "v1" },
	{ "secrets", "/api/v1", "Secret", "v1" },
	{ "events", "/api/v1", "Event", "v1" },
	{ "deployments", "/apis/apps/v1", "Deployment", "apps/v1" },
	{ "statefulsets", "/apis/apps/v1", "StatefulSet", "apps/v1" },
	{ "daemonsets", "/apis/apps/v1", "DaemonSet", "apps/v1" },
	{ "rollouts", "/apis/argoproj.io/v1alpha1", "Rollout", "argoproj.io/v1alpha1" },
	{ "leases", "/apis/coordination.k8s.io/v1", "Lease", "coordination.k8s.io/v1" },
	{ "replicasets", "/apis/apps/v1", "ReplicaSet", "apps/v1" },
	{ "canaries", "/apis/flagger.app/v1beta1", "Canary", "flagger.app/v1beta1" },
	{ "policyreports", "/apis/wgpolicyk8s.io/v1alpha2", "PolicyReport",
	  "wgpolicyk8s.io/v1alpha2" },
	{ "namespaces", "/api/v1", "Namespace", "v1" }, /* cluster-scoped: ns "" */
};

/* A resource whose CRD the test says is not installed. */
static bool ad_absent(const struct ad *d, const struct ad_kind *k)
{
	return (strcmp(k->res, "rollouts") == 0 && d->no_rollouts) ||
		(strcmp(k->res, "canaries") == 0 && d->no_canaries) ||
		(strcmp(k->res, "policyreports") == 0 && d->no_policyreports);
}

/* Monotonic seconds, the clock of the tests' own readings. */
static double ad_now(void)
{
	return (double)rgtime_now_ms() / 1000.0;
}

/* Room for element n of *arrp; the double gives up on OOM. */
static void ad_grow(void *arrp, size_t *cap, size_t n, size_t size)
{
	if (array_grow(arrp, cap, n + 1, size, SIZE_MAX / size) < 0)
		abort();
}

static const struct ad_kind *ad_kind_of(const char *res)
{
	for (size_t i = 0; i < AD_NKINDS; i++)
		if (strcmp(ad_kinds[i].res, res) == 0)
			return &ad_kinds[i];
	return NULL;
}

static struct ad_obj *ad_find_locked(struct ad *d, const struct ad_kind *k, const char *ns,
				     const char *name)
{
	for (size_t i = 0; i < d->n_objs; i++) {
		struct ad_obj *o = &d->objs[i];
		if (o->k == k && strcmp(o->ns, ns) == 0 && strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static void ad_set_rv(cJSON *obj, unsigned long long rv)
{
	char s[32];
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");

	snprintf(s, sizeof(s), "%llu", rv);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "resourceVersion");
	cJSON_AddStringToObject(meta, "resourceVersion", s);
}

static void ad_log_event_locked(struct ad *d, const struct ad_kind *k, const char *ns,
				const char *type, const cJSON *obj)
{
	struct ad_event *e;

	ad_grow(&d->evs, &d->cap_evs, d->n_evs, sizeof(*d->evs));
	e = &d->evs[d->n_evs++];
	e->rv = d->rv;
	e->k = k;
	e->ns = strdup(ns);
	snprintf(e->type, sizeof(e->type), "%s", type);
	e->obj = cJSON_Duplicate(obj, 1);
}

/* Stores obj (taken) as res/ns/name: metadata name, namespace, uid and a new
 * resourceVersion are set; an existing object keeps its uid. Returns the rv. */
static unsigned long long ad_store_locked(struct ad *d, const struct ad_kind *k, const char *ns,
					  const char *name, cJSON *obj)
{
	struct ad_obj *o = ad_find_locked(d, k, ns, name);
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	char uid[64];

	if (!meta)
		meta = cJSON_AddObjectToObject(obj, "metadata");
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "kind");
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "apiVersion");
	cJSON_AddStringToObject(obj, "kind", k->kind);
	cJSON_AddStringToObject(obj, "apiVersion", k->api);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "name");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", ns);
	if (o) {
		const char *old = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(o->obj, "metadata"), "uid"));
		snprintf(uid, sizeof(uid), "%s", old ? old : "");
	} else {
		snprintf(uid, sizeof(uid), "00000000-0000-4000-8000-%012llu", d->rv + 1);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "uid");
	cJSON_AddStringToObject(meta, "uid", uid);
	d->rv++;
	ad_set_rv(obj, d->rv);
	if (o) {
		cJSON_Delete(o->obj);
		o->obj = obj;
		o->rv = d->rv;
		ad_log_event_locked(d, k, ns, "MODIFIED", obj);
	} else {
		ad_grow(&d->objs, &d->cap_objs, d->n_objs, sizeof(*d->objs));
		o = &d->objs[d->n_objs++];
		o->k = k;
		o->ns = strdup(ns);
		o->name = strdup(name);
		o->obj = obj;
		o->rv = d->rv;
		ad_log_event_locked(d, k, ns, "ADDED", obj);
	}
	return d->rv;
}

void ad_begin(struct ad *d)
{
	pthread_mutex_lock(&d->lock);
}

void ad_end(struct ad *d)
{
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Creates or replaces res/ns/name from the JSON text of its fields (data,
 * spec, metadata.labels...). Returns the new resourceVersion, 0 on bad JSON. */
unsigned long long ad_put_locked(struct ad *d, const char *res, const char *ns, const char *name,
				 const char *json)
{
	cJSON *obj = tu_json_or_null(json, strlen(json));
	const struct ad_kind *k = ad_kind_of(res);

	if (!obj || !k) {
		cJSON_Delete(obj);
		return 0;
	}
	return ad_store_locked(d, k, ns, name, obj);
}

unsigned long long ad_put(struct ad *d, const char *res, const char *ns, const char *name,
			  const char *json)
{
	unsigned long long rv;

	ad_begin(d);
	rv = ad_put_locked(d, res, ns, name, json);
	ad_end(d);
	return rv;
}

void ad_delete_locked(struct ad *d, const char *res, const char *ns, const char *name)
{
	const struct ad_kind *k = ad_kind_of(res);
	struct ad_obj *o = k ? ad_find_locked(d, k, ns, name) : NULL;

	if (!o)
		return;
	d->rv++;
	ad_set_rv(o->obj, d->rv);
	ad_log_event_locked(d, k, ns, "DELETED", o->obj);
	cJSON_Delete(o->obj);
	free(o->ns);
	free(o->name);
	*o = d->objs[--d->n_objs];
}

void ad_delete(struct ad *d, const char *res, const char *ns, const char *name)
{
	ad_begin(d);
	ad_delete_locked(d, res, ns, name);
	ad_end(d);
}

/* Forgets the event history: watches from an older resourceVersion get 410. */
void ad_compact_locked(struct ad *d)
{
	for (size_t i = 0; i < d->n_evs; i++) {
		free(d->evs[i].ns);
		cJSON_Delete(d->evs[i].obj);
	}
	d->n_evs = 0;
	d->compacted = d->rv;
}

void ad_drop_watches(struct ad *d)
{
	ad_begin(d);
	d->drop_gen++;
	ad_end(d);
}

void ad_expire_watches(struct ad *d)
{
	ad_begin(d);
	d->err_gen++;
	ad_end(d);
}

void ad_bookmark(struct ad *d)
{
	ad_begin(d);
	d->bm_gen++;
	ad_end(d);
}

/* A copy of the stored object as JSON text (caller frees), or NULL. */
char *ad_get_json(struct ad *d, const char *res, const char *ns, const char *name)
{
	const struct ad_kind *k = ad_kind_of(res);
	struct ad_obj *o;
	char *s = NULL;

	ad_begin(d);
	o = k ? ad_find_locked(d, k, ns, name) : NULL;
	if (o)
		s = cJSON_PrintUnformatted(o->obj);
	ad_end(d);
	return s;
}

size_t ad_patch_count(struct ad *d)
{
	size_t n;

	ad_begin(d);
	n = d->n_patches;
	ad_end(d);
	return n;
}

size_t ad_patch_count_path(struct ad *d, const char *needle)
{
	size_t n = 0;

	ad_begin(d);
	for (size_t i = 0; i < d->n_patches; i++)
		n += strstr(d->patches[i].path, needle) != NULL;
	ad_end(d);
	return n;
}

size_t ad_posted_count(struct ad *d)
{
	size_t n;

	ad_begin(d);
	n = d->n_posted;
	ad_end(d);
	return n;
}

/* ---- label selectors: the whole syntax, through labelsel ---- */

/* An invalid selector matches nothing (the API server would answer 400). */
static bool ad_selector_matches(const char *sel, const cJSON *obj)
{
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "labels");
	struct labelsel *ls = NULL;
	char err[200];
	bool m;

	if (!sel || !*sel)
		return true;
	if (labelsel_parse(sel, &ls, err, sizeof(err)) < 0)
		return false;
	m = labelsel_matches(ls, labels);
	labelsel_free(ls);
	return m;
}

/* ---- HTTP plumbing ---- */

struct ad_req {
	char *body;
	size_t len;
};

static enum MHD_Result ad_send_typed(struct MHD_Connection *conn, unsigned code, char *body,
				     const char *ctype)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result ad_send(struct MHD_Connection *conn, unsigned code, char *body)
{
	return ad_send_typed(conn, code, body, "application/json");
}

static enum MHD_Result ad_status(struct MHD_Connection *conn, int code, const char *reason,
				 const char *message, const char *name, const char *res)
{
	cJSON *st = cJSON_CreateObject(), *det;

	cJSON_AddStringToObject(st, "kind", "Status");
	cJSON_AddStringToObject(st, "apiVersion", "v1");
	cJSON_AddObjectToObject(st, "metadata");
	cJSON_AddStringToObject(st, "status", "Failure");
	cJSON_AddStringToObject(st, "message", message);
	cJSON_AddStringToObject(st, "reason", reason);
	det = cJSON_AddObjectToObject(st, "details");
	cJSON_AddStringToObject(det, "name", name ? name : "");
	cJSON_AddStringToObject(det, "kind", res ? res : "");
	cJSON_AddNumberToObject(st, "code", code);
	{
		char *s = cJSON_PrintUnformatted(st);
		cJSON_Delete(st);
		return ad_send(conn, (unsigned)code, s);
	}
}

static enum MHD_Result ad_send_obj(struct MHD_Connection *conn, unsigned code, const cJSON *o)
{
	return ad_send(conn, code, cJSON_PrintUnformatted(o));
}

/* Copies the path segment at p (up to the next '/' or the end) to out, a
 * buffer of 256 bytes; returns its length, 0 when it is empty or longer
 * than 255 bytes. */
static size_t ad_segment(const char *p, char *out)
{
	size_t n = strcspn(p, "/");

	if (n == 0 || n > 255)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return n;
}

/* Splits PREFIX[/namespaces/NS]/RES[/NAME]. */
static const struct ad_kind *ad_parse_url(const char *url, char *ns, char *name)
{
	ns[0] = name[0] = '\0';
	for (size_t i = 0; i < AD_NKINDS; i++) {
		const struct ad_kind *k = &ad_kinds[i];
		size_t pl = strlen(k->prefix), rl = strlen(k->res);
		const char *p = url;
		size_t used;
		if (strncmp(p, k->prefix, pl) != 0 || p[pl] != '/')
			continue;
		p += pl + 1;
		if (strncmp(p, "namespaces/", 11) == 0) {
			used = ad_segment(p + 11, ns);
			if (!used || p[11 + used] != '/')
				continue;
			p += 11 + used + 1;
		}
		if (strncmp(p, k->res, rl) != 0 || (p[rl] != '\0' && p[rl] != '/'))
			continue;
		p += rl;
		if (*p == '/') {
			used = ad_segment(p + 1, name);
			if (!used || p[1 + used] != '\0')
				continue;
		}
		return k;
	}
	return NULL;
}

static void ad_token(struct MHD_Connection *conn, char *out, size_t len)
{
	const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");

	snprintf(out, len, "%s", a && strncmp(a, "Bearer ", 7) == 0 ? a + 7 : "");
}

/* ---- lists ---- */

struct ad_sortent {
	const char *ns, *name;
	const cJSON *obj;
};

static int ad_sortcmp(const void *a, const void *b)
{
	const struct ad_sortent *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);

	return c ? c : strcmp(x->name, y->name);
}

/* Appends generated Secret i (synth mode) to a JSON text buffer. */
static void ad_synth_secret(const struct ad *d, unsigned i, char **buf, size_t *len, size_t *cap)
{
	char item[16384], *p = item;
	size_t left = sizeof(item);
	int n;

	n = snprintf(p, left,
		     "{\"metadata\":{\"name\":\"secret-%06u\",\"namespace\":\"ns-%03u\","
		     "\"uid\":\"5d3c1f0e-0000-4000-8000-%012u\",\"resourceVersion\":\"1\","
		     "\"creationTimestamp\":\"2024-05-01T10:00:00Z\",\"labels\":{\"app\":\"svc-%u\"},"
		     "\"managedFields\":[{\"manager\":\"kubectl\",\"operation\":\"Update\","
		     "\"apiVersion\":\"v1\",\"time\":\"2024-05-01T10:00:00Z\",\"fieldsType\":"
		     "\"FieldsV1\","
		     "\"fieldsV1\":{\"f:data\":{}}}]},\"type\":\"Opaque\",\"data\":{",
		     i, i % 100, i, i % 50);
	p += n;
	left -= (size_t)n;
	for (unsigned k = 0; k < d->synth_keys && left > 200; k++) {
		unsigned char raw[24];
		char b64[40];
		uint32_t x = i * 2654435761u ^ (k + 1) * 40503u;
		for (size_t j = 0; j < sizeof(raw); j++) {
			x = x * 1664525u + 1013904223u;
			raw[j] = (unsigned char)(x >> 24);
		}
		EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
		n = snprintf(p, left, "%s\"key-%02u\":\"%s\"", k ? "," : "", k, b64);
		p += n;
		left -= (size_t)n;
	}
	n = snprintf(p, left, "}}");
	p += n;
	n = (int)(p - item);
	while (*len + (size_t)n + 2 > *cap) {
		*cap *= 2;
		*buf = realloc(*buf, *cap);
		if (!*buf)
			abort();
	}
	memcpy(*buf + *len, item, (size_t)n);
	*len += (size_t)n;
}

static enum MHD_Result ad_list_synth(struct ad *d, struct MHD_Connection *conn, unsigned long long rv,
				     unsigned start, unsigned limit)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap), head[256], cont[64] = "";
	unsigned end = limit && start + limit < d->synth_secrets ? start + limit : d->synth_secrets;

	if (!buf)
		abort();
	if (end < d->synth_secrets)
		snprintf(cont, sizeof(cont), "%llu:#%u", rv, end);
	len = (size_t)snprintf(buf, cap,
			       "{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":"
			       "{\"resourceVersion\":\"%llu\",\"continue\":\"%s\"},\"items\":[",
			       rv, cont);
	for (unsigned i = start; i < end; i++) {
		if (i > start)
			buf[len++] = ',';
		ad_synth_secret(d, i, &buf, &len, &cap);
	}
	snprintf(head, sizeof(head), "]}");
	if (len + 3 > cap)
		buf = realloc(buf, cap + 3);
	memcpy(buf + len, head, 3);
	return ad_send(conn, 200, buf);
}

/* A continue token is "RV:NS/NAME" (the last object sent) or "RV:#N"
 * (synthetic Secrets). Reads RV into *rv and returns what follows the
 * ':', or NULL when the token is not one of ours. */
static const char *ad_continue_rv(const char *cont, unsigned long long *rv)
{
	char *end;

	if (*cont < '0' || *cont > '9')
		return NULL;
	errno = 0;
	*rv = strtoull(cont, &end, 10);
	if (errno || *end != ':' || !end[1] || strlen(end + 1) >= 600)
		return NULL;
	return end + 1;
}

/* Splits "NS/NAME" into ns and name (256 bytes each); parts that do not
 * fit stay empty. */
static void ad_continue_after(const char *key, char *ns, char *name)
{
	const char *slash = strchr(key, '/');
	size_t nl = slash ? (size_t)(slash - key) : 0;

	if (!slash || nl > 255 || strlen(slash + 1) > 255)
		return;
	memcpy(ns, key, nl);
	ns[nl] = '\0';
	snprintf(name, 256, "%s", slash + 1);
}

static enum MHD_Result ad_list(struct ad *d, struct MHD_Connection *conn, const struct ad_kind *k,
			       const char *ns)
{
	const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *cont = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "continue");
	const char *sel = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "labelSelector");
	unsigned limit = lim ? (unsigned)strtoul(lim, NULL, 10) : 0;
	unsigned long long rv;
	char after_ns[256] = "", after_name[256] = "", listkind[64], next[600] = "";
	struct ad_sortent *v = NULL;
	size_t n = 0, first = 0, taken = 0;
	cJSON *list, *items, *meta;

	atomic_fetch_add(&d->lists, 1);
	if (d->list_delay_ms)
		usleep(d->list_delay_ms * 1000u);
	if (atomic_load(&d->list_fail))
		return ad_status(conn, 500, "InternalError", "Internal error occurred: list failed",
				 "", k->res);
	if (d->max_limit && (limit == 0 || limit > d->max_limit))
		limit = d->max_limit;
	ad_begin(d);
	rv = d->rv;
	if (cont && *cont && atomic_load(&d->expire_continue) > 0) {
		atomic_fetch_sub(&d->expire_continue, 1);
		atomic_fetch_add(&d->expired_lists, 1);
		ad_end(d);
		return ad_status(conn, 410, "Expired",
				 "The provided continue parameter is too old to display a consistent "
				 "list "
				 "result. You can start a new list without the continue parameter.",
				 "", "");
	}
	if (cont && *cont) {
		const char *key = ad_continue_rv(cont, &rv);
		if (!key) {
			ad_end(d);
			return ad_status(conn, 400, "BadRequest", "invalid continue token", "", "");
		}
		if (key[0] == '#') {
			ad_end(d);
			return ad_list_synth(d, conn, rv, (unsigned)strtoul(key + 1, NULL, 10), limit);
		}
		ad_continue_after(key, after_ns, after_name);
	} else if (strcmp(k->res, "secrets") == 0 && d->synth_secrets) {
		ad_end(d);
		return ad_list_synth(d, conn, rv, 0, limit);
	}
	v = calloc(d->n_objs + 1, sizeof(*v));
	for (size_t i = 0; i < d->n_objs; i++) {
		struct ad_obj *o = &d->objs[i];
		if (o->k != k || (*ns && strcmp(o->ns, ns) != 0) || !ad_selector_matches(sel, o->obj))
			continue;
		v[n++] = (struct ad_sortent){ o->ns, o->name, o->obj };
	}
	qsort(v, n, sizeof(*v), ad_sortcmp);
	if (after_name[0]) {
		struct ad_sortent key = { after_ns, after_name, NULL };
		while (first < n && ad_sortcmp(&v[first], &key) <= 0)
			first++;
	}
	list = cJSON_CreateObject();
	snprintf(listkind, sizeof(listkind), "%sList", k->kind);
	cJSON_AddStringToObject(list, "kind", listkind);
	cJSON_AddStringToObject(list, "apiVersion", k->api);
	meta = cJSON_AddObjectToObject(list, "metadata");
	items = cJSON_AddArrayToObject(list, "items");
	for (size_t i = first; i < n && (!limit || taken < limit); i++, taken++) {
		cJSON *copy = cJSON_Duplicate(v[i].obj, 1);
		/* Real lists leave kind and apiVersion out of their items. */
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "kind");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "apiVersion");
		cJSON_AddItemToArray(items, copy);
		if (limit && taken + 1 == limit && i + 1 < n)
			snprintf(next, sizeof(next), "%llu:%s/%s", rv, v[i].ns, v[i].name);
	}
	ad_end(d);
	{
		char rvs[32];
		snprintf(rvs, sizeof(rvs), "%llu", rv);
		cJSON_AddStringToObject(meta, "resourceVersion", rvs);
		if (next[0])
			cJSON_AddStringToObject(meta, "continue", next);
	}
	free(v);
	{
		enum MHD_Result r = ad_send_obj(conn, 200, list);
		cJSON_Delete(list);
		return r;
	}
}

/* ---- watches ---- */

struct ad_watch {
	struct ad *d;
	const struct ad_kind *k;
	char ns[256];
	char sel[256];
	unsigned long long cursor;
	bool bookmarks;
	double deadline;
	unsigned drop_gen, err_gen, bm_gen;
	char *pending;
	size_t plen, poff;
	bool end_after;
};

static char *ad_event_line(const char *type, const cJSON *obj)
{
	cJSON *ev = cJSON_CreateObject();
	char *s, *line;
	size_t n;

	cJSON_AddStringToObject(ev, "type", type);
	cJSON_AddItemToObject(ev, "object", cJSON_Duplicate(obj, 1));
	s = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	n = strlen(s);
	line = malloc(n + 2);
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	free(s);
	return line;
}

/* The first event after the watch's cursor that it selects; lock held. */
static struct ad_event *ad_next_event_locked(struct ad *d, struct ad_watch *w)
{
	size_t lo = 0, hi = d->n_evs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->evs[mid].rv <= w->cursor)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < d->n_evs; i++) {
		struct ad_event *e = &d->evs[i];
		if (e->k == w->k && (!w->ns[0] || strcmp(e->ns, w->ns) == 0) &&
		    ad_selector_matches(w->sel, e->obj))
			return e;
	}
	return NULL;
}

/* Fills w->pending with the next line, or returns an MHD end code; lock held. */
static ssize_t ad_watch_next_locked(struct ad *d, struct ad_watch *w)
{
	struct ad_event *e;

	for (;;) {
		struct timespec until;
		if (d->stopping || d->drop_gen != w->drop_gen)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (w->cursor < d->compacted || d->err_gen != w->err_gen) {
			cJSON *st = cJSON_CreateObject();
			cJSON_AddStringToObject(st, "kind", "Status");
			cJSON_AddStringToObject(st, "apiVersion", "v1");
			cJSON_AddObjectToObject(st, "metadata");
			cJSON_AddStringToObject(st, "status", "Failure");
			cJSON_AddStringToObject(st, "message", "too old resource version");
			cJSON_AddStringToObject(st, "reason", "Expired");
			cJSON_AddNumberToObject(st, "code", 410);
			w->pending = ad_event_line("ERROR", st);
			cJSON_Delete(st);
			w->end_after = true;
			return 0;
		}
		e = ad_next_event_locked(d, w);
		if (e) {
			w->pending = ad_event_line(e->type, e->obj);
			w->cursor = e->rv;
			return 0;
		}
		if (w->bookmarks && d->bm_gen != w->bm_gen) {
			cJSON *bm = cJSON_CreateObject(), *meta;
			char rvs[32];
			w->bm_gen = d->bm_gen;
			snprintf(rvs, sizeof(rvs), "%llu", d->rv);
			cJSON_AddStringToObject(bm, "kind", w->k->kind);
			cJSON_AddStringToObject(bm, "apiVersion", w->k->api);
			meta = cJSON_AddObjectToObject(bm, "metadata");
			cJSON_AddStringToObject(meta, "resourceVersion", rvs);
			w->pending = ad_event_line("BOOKMARK", bm);
			cJSON_Delete(bm);
			w->cursor = d->rv;
			return 0;
		}
		if (ad_now() > w->deadline)
			return MHD_CONTENT_READER_END_OF_STREAM;
		rgtime_wall_after(&until, 200);
		pthread_cond_timedwait(&d->cond, &d->lock, &until);
	}
}

static ssize_t ad_watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ad_watch *w = cls;
	struct ad *d = w->d;
	ssize_t r;
	size_t n;

	(void)pos;
	if (!w->pending) {
		if (w->end_after)
			return MHD_CONTENT_READER_END_OF_STREAM;
		pthread_mutex_lock(&d->lock);
		r = ad_watch_next_locked(d, w);
		pthread_mutex_unlock(&d->lock);
		if (r != 0)
			return r;
		w->plen = strlen(w->pending);
		w->poff = 0;
	}
	n = w->plen - w->poff < max ? w->plen - w->poff : max;
	memcpy(buf, w->pending + w->poff, n);
	w->poff += n;
	if (w->poff == w->plen) {
		free(w->pending);
		w->pending = NULL;
	}
	return (ssize_t)n;
}

static void ad_watch_free(void *cls)
{
	struct ad_watch *w = cls;

	free(w->pending);
	free(w);
}

static enum MHD_Result ad_watch(struct ad *d, struct MHD_Connection *conn, const struct ad_kind *k,
				const char *ns)
{
	const char *rv = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "resourceVersion");
	const char *bm = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
						     "allowWatchBookmarks");
	const char *to = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "timeoutSeconds");
	const char *sel = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "labelSelector");
	struct ad_watch *w = calloc(1, sizeof(*w));
	struct MHD_Response *r;
	enum MHD_Result ret;

	atomic_fetch_add(&d->watches, 1);
	w->d = d;
	w->k = k;
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->sel, sizeof(w->sel), "%s", sel ? sel : "");
	w->cursor = rv ? strtoull(rv, NULL, 10) : 0;
	w->bookmarks = bm && strcmp(bm, "true") == 0;
	w->deadline = ad_now() + (to ? strtod(to, NULL) : 1800);
	ad_begin(d);
	w->drop_gen = d->drop_gen;
	w->err_gen = d->err_gen;
	w->bm_gen = d->bm_gen;
	snprintf(d->last_watch_rv[k - ad_kinds], sizeof(d->last_watch_rv[0]), "%s", rv ? rv : "");
	if (ad_absent(d, k)) {
		ad_end(d);
		free(w);
		return ad_status(conn, 404, "NotFound",
				 "the server could not find the requested resource", "", "");
	}
	ad_end(d);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, ad_watch_read, w,
					      ad_watch_free);
	if (!r) {
		ad_watch_free(w);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- writes ---- */

/*
 * Server-side apply of a PolicyReport, lock held (released here): one field
 * manager owns every field, so the applied object replaces the stored one
 * (or creates it), keeping uid and creationTimestamp. The name in the body
 * must be the one in the path, as the API server requires.
 */
static enum MHD_Result ad_apply_report(struct ad *d, struct MHD_Connection *conn,
				       const struct ad_kind *k, const char *ns, const char *name,
				       cJSON *body, const char *ct, const char *fm, const char *force)
{
	const char *bname = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(body, "metadata"), "name"));
	struct ad_obj *o;
	enum MHD_Result ret;
	bool created;

	if (!body || !ct || strcmp(ct, "application/apply-patch+yaml") != 0 || !fm ||
	    strcmp(fm, "rollgate") != 0 || !force || strcmp(force, "true") != 0) {
		ad_end(d);
		cJSON_Delete(body);
		return ad_status(conn, 415, "UnsupportedMediaType", "unexpected patch", name, k->res);
	}
	if (!bname || strcmp(bname, name) != 0) {
		ad_end(d);
		cJSON_Delete(body);
		return ad_status(conn, 400, "BadRequest", "metadata.name does not match the path",
				 name, k->res);
	}
	created = ad_find_locked(d, k, ns, name) == NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "metadata"),
						"resourceVersion");
	ad_store_locked(d, k, ns, name, body);
	o = ad_find_locked(d, k, ns, name);
	ret = ad_send_obj(conn, created ? 201 : 200, o->obj);
	ad_end(d);
	return ret;
}

/* RFC 7386: null removes, objects merge, anything else replaces. */
static void ad_merge(cJSON *target, const cJSON *patch)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, patch) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(target, m->string);
		if (cJSON_IsObject(m) && cJSON_IsObject(t)) {
			ad_merge(t, m);
			continue;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(target, m->string);
		if (cJSON_IsObject(m)) {
			ad_merge(cJSON_AddObjectToObject(target, m->string), m);
		} else if (!cJSON_IsNull(m)) {
			cJSON_AddItemToObject(target, m->string, cJSON_Duplicate(m, 1));
		}
	}
}

/* The member an RFC 6901 pointer names (objects only), or NULL. */
static const cJSON *ad_pointer(const cJSON *doc, const char *ptr)
{
	char seg[512];

	while (doc && *ptr == '/') {
		size_t n = 0;
		for (ptr++; *ptr && *ptr != '/' && n + 1 < sizeof(seg); ptr++) {
			if (*ptr == '~' && (ptr[1] == '0' || ptr[1] == '1'))
				seg[n++] = *++ptr == '0' ? '~' : '/';
			else
				seg[n++] = *ptr;
		}
		seg[n] = '\0';
		doc = cJSON_GetObjectItemCaseSensitive(doc, seg);
	}
	return *ptr ? NULL : doc;
}

/* A JSON Patch: every "test" must hold (else 422, as the API server), then
 * the other operations apply (patch_apply). Lock held. Returns the HTTP
 * status; *why says what failed. */
static unsigned ad_json_patch(cJSON *obj, const cJSON *ops, char *why, size_t whylen)
{
	cJSON *rest = cJSON_CreateArray();
	const cJSON *op;
	char *text;
	int rc;

	cJSON_ArrayForEach(op, ops) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "op"));
		const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "path"));
		const cJSON *want = cJSON_GetObjectItemCaseSensitive(op, "value");
		if (!name || !path) {
			cJSON_Delete(rest);
			snprintf(why, whylen, "malformed operation");
			return 400;
		}
		if (strcmp(name, "test") != 0) {
			cJSON_AddItemToArray(rest, cJSON_Duplicate(op, 1));
			continue;
		}
		if (!want || !ad_pointer(obj, path) ||
		    !cJSON_Compare(ad_pointer(obj, path), want, 1)) {
			cJSON_Delete(rest);
			snprintf(why, whylen, "the test operation at %s failed", path);
			return 422;
		}
	}
	text = cJSON_PrintUnformatted(rest);
	rc = text ? patch_apply(obj, text, why, whylen) : -1;
	free(text);
	cJSON_Delete(rest);
	return rc == 0 ? 200 : 422;
}

/* A JSON merge patch or JSON Patch of a stored workload, lock held
 * (released here): applied to a copy, stored (MODIFIED) when it succeeds. */
static enum MHD_Result ad_patch_plain(struct ad *d, struct MHD_Connection *conn,
				      const struct ad_kind *k, struct ad_obj *o, cJSON *body,
				      const char *ct)
{
	cJSON *copy = cJSON_Duplicate(o->obj, 1);
	char why[300] = "", ns[256], name[256];
	unsigned code = 200;
	enum MHD_Result ret;

	snprintf(ns, sizeof(ns), "%s", o->ns);
	snprintf(name, sizeof(name), "%s", o->name);
	if (strcmp(ct, "application/merge-patch+json") == 0)
		ad_merge(copy, body);
	else
		code = ad_json_patch(copy, body, why, sizeof(why));
	cJSON_Delete(body);
	if (code != 200) {
		cJSON_Delete(copy);
		ad_end(d);
		return ad_status(conn, code, code == 422 ? "Invalid" : "BadRequest", why, name,
				 k->res);
	}
	ad_store_locked(d, k, ns, name, copy);
	o = ad_find_locked(d, k, ns, name);
	ret = ad_send_obj(conn, 200, o->obj);
	ad_end(d);
	return ret;
}

static enum MHD_Result ad_patch(struct ad *d, struct MHD_Connection *conn, const struct ad_kind *k,
				const char *ns, const char *name, const char *url,
				const struct ad_req *rq)
{
	const char *fm = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fieldManager");
	const char *force = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "force");
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	struct ad_patch *p;
	struct ad_obj *o;
	cJSON *body = rq->body ? tu_json_or_null(rq->body, rq->len) : NULL, *copy, *tmeta, *ann;
	const cJSON *want, *m;
	enum MHD_Result ret;

	ad_begin(d);
	ad_grow(&d->patches, &d->cap_patches, d->n_patches, sizeof(*d->patches));
	p = &d->patches[d->n_patches++];
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s", url);
	snprintf(p->query, sizeof(p->query), "fieldManager=%s&force=%s", fm ? fm : "",
		 force ? force : "");
	snprintf(p->ctype, sizeof(p->ctype), "%s", ct ? ct : "");
	ad_token(conn, p->token, sizeof(p->token));
	p->body = strdup(rq->body ? rq->body : "");
	p->t = ad_now();
	o = ad_find_locked(d, k, ns, name);
	if (strcmp(k->res, "policyreports") == 0 && !atomic_load(&d->patch_fail))
		return ad_apply_report(d, conn, k, ns, name, body, ct, fm, force); /* unlocks */
	if (!atomic_load(&d->patch_fail) && o && body && ct && fm && strcmp(fm, "rollgate") == 0 &&
	    !force &&
	    (strcmp(ct, "application/merge-patch+json") == 0 ||
	     strcmp(ct, "application/json-patch+json") == 0))
		return ad_patch_plain(d, conn, k, o, body, ct); /* unlocks */
	if (atomic_load(&d->patch_fail) || !o || !body || !ct ||
	    strcmp(ct, "application/apply-patch+yaml") != 0 || !fm || strcmp(fm, "rollgate") != 0) {
		int fail = atomic_load(&d->patch_fail);
		ad_end(d);
		cJSON_Delete(body);
		if (fail)
			return ad_status(conn, 500, "InternalError", "patch failed", name, k->res);
		if (!o)
			return ad_status(conn, 404, "NotFound", "not found", name, k->res);
		return ad_status(conn, 415, "UnsupportedMediaType", "unexpected patch", name, k->res);
	}
	want = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(body, "spec"), "template"),
			"metadata"),
		"annotations");
	copy = cJSON_Duplicate(o->obj, 1);
	{
		cJSON *spec = cJSON_GetObjectItemCaseSensitive(copy, "spec"), *tmpl;
		if (!spec)
			spec = cJSON_AddObjectToObject(copy, "spec");
		tmpl = cJSON_GetObjectItemCaseSensitive(spec, "template");
		if (!tmpl)
			tmpl = cJSON_AddObjectToObject(spec, "template");
		tmeta = cJSON_GetObjectItemCaseSensitive(tmpl, "metadata");
		if (!tmeta)
			tmeta = cJSON_AddObjectToObject(tmpl, "metadata");
		ann = cJSON_GetObjectItemCaseSensitive(tmeta, "annotations");
		if (!ann)
			ann = cJSON_AddObjectToObject(tmeta, "annotations");
	}
	cJSON_ArrayForEach(m, want) {
		cJSON_DeleteItemFromObjectCaseSensitive(ann, m->string);
		cJSON_AddItemToObject(ann, m->string, cJSON_Duplicate(m, 1));
	}
	ad_store_locked(d, k, ns, name, copy);
	o = ad_find_locked(d, k, ns, name);
	ret = ad_send_obj(conn, 200, o->obj);
	ad_end(d);
	cJSON_Delete(body);
	return ret;
}

static void ad_log_lease_locked(struct ad *d, struct MHD_Connection *conn, const cJSON *obj)
{
	const char *h = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(obj, "spec"), "holderIdentity"));
	struct ad_lease_write *l;

	ad_grow(&d->lease_log, &d->cap_lease_log, d->n_lease_log, sizeof(*d->lease_log));
	l = &d->lease_log[d->n_lease_log++];
	snprintf(l->holder, sizeof(l->holder), "%s", h ? h : "");
	ad_token(conn, l->token, sizeof(l->token));
	l->t = ad_now();
}

static enum MHD_Result ad_write(struct ad *d, struct MHD_Connection *conn, const char *method,
				const struct ad_kind *k, const char *ns, const char *name,
				const struct ad_req *rq)
{
	cJSON *body = rq->body ? tu_json_or_null(rq->body, rq->len) : NULL;
	const char *bname = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(body, "metadata"), "name"));
	const char *brv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(body, "metadata"), "resourceVersion"));
	char nm[256], rvs[32];
	struct ad_obj *o;
	enum MHD_Result ret;

	if (!body)
		return ad_status(conn, 400, "BadRequest", "invalid body", "", k->res);
	if (strcmp(k->res, "events") == 0) {
		ad_begin(d);
		ad_grow(&d->posted, &d->cap_posted, d->n_posted, sizeof(*d->posted));
		d->posted[d->n_posted++] = strdup(rq->body);
		ad_end(d);
		ret = ad_send_obj(conn, 201, body);
		cJSON_Delete(body);
		return ret;
	}
	if (strcmp(k->res, "leases") != 0) {
		cJSON_Delete(body);
		return ad_status(conn, 405, "MethodNotAllowed", "not supported", "", k->res);
	}
	if (atomic_load(&d->lease_fail)) {
		cJSON_Delete(body);
		return ad_status(conn, 503, "ServiceUnavailable", "unavailable", "", k->res);
	}
	snprintf(nm, sizeof(nm), "%s", strcmp(method, "POST") == 0 ? (bname ? bname : "") : name);
	if (d->lease_write_delay_ms)
		usleep(d->lease_write_delay_ms * 1000u);
	ad_begin(d);
	o = ad_find_locked(d, k, ns, nm);
	if (strcmp(method, "POST") == 0 && o) {
		atomic_fetch_add(&d->lease_conflicts, 1);
		ad_end(d);
		cJSON_Delete(body);
		return ad_status(conn, 409, "AlreadyExists", "already exists", nm, k->res);
	}
	if (strcmp(method, "PUT") == 0) {
		if (!o) {
			ad_end(d);
			cJSON_Delete(body);
			return ad_status(conn, 404, "NotFound", "not found", nm, k->res);
		}
		snprintf(rvs, sizeof(rvs), "%llu", o->rv);
		if (!brv || strcmp(brv, rvs) != 0) {
			atomic_fetch_add(&d->lease_conflicts, 1);
			ad_end(d);
			cJSON_Delete(body);
			return ad_status(conn, 409, "Conflict",
					 "Operation cannot be fulfilled on leases: the object has "
					 "been modified",
					 nm, k->res);
		}
	}
	ad_log_lease_locked(d, conn, body);
	ad_store_locked(d, k, ns, nm, body);
	o = ad_find_locked(d, k, ns, nm);
	ret = ad_send_obj(conn, strcmp(method, "POST") == 0 ? 201 : 200, o->obj);
	ad_end(d);
	return ret;
}

/* ---- GETs answered by name (by_name) ---- */

static bool ad_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

char *ad_object_json(const char *resource, const char *ns, const char *name)
{
	static const char meta[] =
		"\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
		"\"uid\":\"6f1c2a9e-3b7d-4c55-9a61-0d2b8e4f7a10\",\"resourceVersion\":\"48213\","
		"\"creationTimestamp\":\"2024-05-01T10:00:00Z\",\"labels\":{\"app\":\"web\"},"
		"\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":"
		"\"Update\","
		"\"apiVersion\":\"v1\",\"time\":\"2024-05-01T10:00:00Z\",\"fieldsType\":\"FieldsV1\","
		"\"fieldsV1\":{\"f:data\":{\".\":{}},\"f:metadata\":{\"f:labels\":{\".\":{},\"f:app\":"
		"{}}}}}]}";
	char m[2048], *out = malloc(8192);

	if (!out)
		return NULL;
	snprintf(m, sizeof(m), meta, name, ns);
	if (strcmp(resource, "configmaps") == 0)
		snprintf(out, 8192,
			 "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",%s,"
			 "\"data\":{\"app.properties\":\"color=blue\\nsize=%zu\\n\",\"LOG_LEVEL\":"
			 "\"info\","
			 "\"owner\":\"%s\"},\"binaryData\":{\"blob.bin\":\"AAECAwQ=\"}}",
			 m, strlen(name), name);
	else if (strcmp(resource, "secrets") == 0)
		snprintf(out, 8192,
			 "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",%s,"
			 "\"data\":{\"password\":\"" AD_SECRET_VALUE_B64 "\",\"user\":\"YWRtaW4=\"},"
			 "\"type\":\"Opaque\"}",
			 m);
	else
		snprintf(out, 8192,
			 "{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",%s,"
			 "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
			 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"
			 "\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.25\"}]}},"
			 "\"strategy\":{\"type\":\"RollingUpdate\"}},"
			 "\"status\":{\"observedGeneration\":3,\"replicas\":2,\"readyReplicas\":2}}",
			 m);
	return out;
}

static void ad_note_auth(struct ad *d, struct MHD_Connection *conn)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");

	pthread_mutex_lock(&d->lock);
	snprintf(d->last_auth, sizeof(d->last_auth), "%s", auth ? auth : "");
	pthread_mutex_unlock(&d->lock);
}

void ad_last_auth(struct ad *d, char *out, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	pthread_mutex_lock(&d->lock);
	n = strnlen(d->last_auth, len - 1);
	memcpy(out, d->last_auth, n);
	out[n] = '\0';
	pthread_mutex_unlock(&d->lock);
}

/* Waits slow_ms or until teardown; false when interrupted. */
static bool ad_slow_wait(struct ad *d)
{
	struct timespec until;
	bool interrupted;

	atomic_fetch_add(&d->slow_seen, 1);
	rgtime_wall_after(&until, d->slow_ms);
	pthread_mutex_lock(&d->lock);
	while (!d->stopping && pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
		;
	interrupted = d->stopping;
	pthread_mutex_unlock(&d->lock);
	return !interrupted;
}

/* by_name: a GET of one ConfigMap, Secret or Deployment, answered by its
 * name (see apidouble.h); nothing is stored, nothing else is served. */
static enum MHD_Result ad_get_by_name(struct ad *d, struct MHD_Connection *conn, const char *method,
				      const struct ad_kind *k, const char *ns, const char *name)
{
	const char *res = k->res;
	char msg[1200];

	if (strcmp(method, "GET") != 0)
		return ad_status(conn, 405, "MethodNotAllowed",
				 "the server does not allow this method", "", "");
	/* Nothing but GETs of one object: no lists, no watches. */
	if (!name[0] || !ns[0] ||
	    (strcmp(res, "configmaps") != 0 && strcmp(res, "secrets") != 0 &&
	     strcmp(res, "deployments") != 0))
		return ad_status(conn, 404, "NotFound",
				 "the server could not find the requested resource", "", "");
	if (ad_prefix(name, "missing")) {
		snprintf(msg, sizeof(msg), "%s \"%s\" not found", res, name);
		return ad_status(conn, 404, "NotFound", msg, name, res);
	}
	if (ad_prefix(name, "plain404"))
		return ad_send_typed(conn, 404, strdup("<html><body>404 page not found</body></html>"),
				     "text/html");
	if (ad_prefix(name, "forbidden")) {
		snprintf(msg, sizeof(msg),
			 "%s \"%s\" is forbidden: User \"system:serviceaccount:rollgate:rollgate\" "
			 "cannot get resource \"%s\" in API group \"\" in the namespace \"%s\"",
			 res, name, res, ns);
		return ad_status(conn, 403, "Forbidden", msg, name, res);
	}
	if (strcmp(name, "boom") == 0)
		return ad_status(conn, 500, "InternalError",
				 "Internal error occurred: etcdserver: boom", name, res);
	if (ad_prefix(name, "garbage"))
		return ad_send(conn, 200,
			       strdup("{\"kind\":\"Secret\",\"data\":{\"password\":\"" AD_SECRET_VALUE
				      "\" <<< not json"));
	if (ad_prefix(name, "wrongkind"))
		return ad_send(conn, 200, ad_object_json("deployments", ns, name));
	if (ad_prefix(name, "slow") && !ad_slow_wait(d))
		return MHD_NO;
	return ad_send(conn, 200, ad_object_json(res, ns, name));
}

static enum MHD_Result ad_handler(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct ad *d = cls;
	struct ad_req *rq = *con_cls;
	const struct ad_kind *k;
	char ns[256], name[256];

	(void)version;
	if (!rq) {
		*con_cls = calloc(1, sizeof(struct ad_req));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*upload_data_size) {
		char *nb = realloc(rq->body, rq->len + *upload_data_size + 1);
		if (!nb)
			return MHD_NO;
		memcpy(nb + rq->len, upload_data, *upload_data_size);
		rq->body = nb;
		rq->len += *upload_data_size;
		rq->body[rq->len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	atomic_fetch_add(&d->requests, 1);
	ad_note_auth(d, conn);
	k = ad_parse_url(url, ns, name);
	if (!k)
		return ad_status(conn, 404, "NotFound",
				 "the server could not find the requested resource", "", "");
	if (d->by_name)
		return ad_get_by_name(d, conn, method, k, ns, name);
	if (strcmp(k->res, "leases") == 0 && atomic_load(&d->lease_fail))
		return ad_status(conn, 503, "ServiceUnavailable", "unavailable", "", k->res);
	if (ad_absent(d, k))
		return ad_status(conn, 404, "NotFound",
				 "the server could not find the requested resource", "", "");
	if (strcmp(method, "GET") == 0 && !name[0]) {
		const char *wq = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "watch");
		if (wq && (strcmp(wq, "1") == 0 || strcmp(wq, "true") == 0))
			return ad_watch(d, conn, k, ns);
		return ad_list(d, conn, k, ns);
	}
	if (strcmp(method, "GET") == 0) {
		struct ad_obj *o;
		enum MHD_Result r;
		char msg[600];
		atomic_fetch_add(&d->gets, 1);
		if (atomic_load(&d->get_fail))
			return ad_status(conn, 500, "InternalError",
					 "Internal error occurred: get failed", name, k->res);
		ad_begin(d);
		o = ad_find_locked(d, k, ns, name);
		if (o) {
			r = ad_send_obj(conn, 200, o->obj);
			ad_end(d);
			return r;
		}
		ad_end(d);
		snprintf(msg, sizeof(msg), "%s \"%s\" not found", k->res, name);
		return ad_status(conn, 404, "NotFound", msg, name, k->res);
	}
	if (strcmp(method, "PATCH") == 0 && name[0])
		return ad_patch(d, conn, k, ns, name, url, rq);
	if ((strcmp(method, "POST") == 0 && !name[0]) || (strcmp(method, "PUT") == 0 && name[0]))
		return ad_write(d, conn, method, k, ns, name, rq);
	return ad_status(conn, 405, "MethodNotAllowed", "the server does not allow this method", "",
			 "");
}

static void ad_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct ad_req *rq = *con_cls;

	(void)cls, (void)conn, (void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

static void ad_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			     enum MHD_ConnectionNotificationCode toe)
{
	struct ad *d = cls;

	(void)conn, (void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&d->connections, 1);
}

/* libmicrohttpd over TLS, one thread per connection (a slow answer never
 * holds up another), on 127.0.0.1 with an ephemeral port. */
static struct MHD_Daemon *ad_daemon(struct ad *d, const char *certdir)
{
	char path[4200];
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *dm;

	snprintf(path, sizeof(path), "%s/tls.crt", certdir);
	d->cert = tu_read_file(path, NULL);
	snprintf(path, sizeof(path), "%s/tls.key", certdir);
	d->key = tu_read_file(path, NULL);
	if (!d->cert || !d->key)
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dm = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
				      MHD_USE_TLS | MHD_USE_POLL,
			      0, NULL, NULL, ad_handler, d, MHD_OPTION_HTTPS_MEM_CERT, d->cert,
			      MHD_OPTION_HTTPS_MEM_KEY, d->key, MHD_OPTION_SOCK_ADDR, &sa,
			      MHD_OPTION_NOTIFY_COMPLETED, ad_completed, d,
			      MHD_OPTION_NOTIFY_CONNECTION, ad_on_connection, d,
			      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!dm)
		return NULL;
	info = MHD_get_daemon_info(dm, MHD_DAEMON_INFO_BIND_PORT);
	d->port = info ? info->port : 0;
	if (!d->port) {
		MHD_stop_daemon(dm);
		return NULL;
	}
	return dm;
}

int ad_start(struct ad *d, const char *certdir)
{
	memset(d, 0, sizeof(*d));
	d->rv = 1000;
	d->slow_ms = 3000;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->d = ad_daemon(d, certdir);
	return d->d ? 0 : -1;
}

void ad_stop(struct ad *d)
{
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->d)
		MHD_stop_daemon(d->d);
	d->d = NULL;
	for (size_t i = 0; i < d->n_objs; i++) {
		free(d->objs[i].ns);
		free(d->objs[i].name);
		cJSON_Delete(d->objs[i].obj);
	}
	free(d->objs);
	ad_compact_locked(d);
	free(d->evs);
	for (size_t i = 0; i < d->n_patches; i++)
		free(d->patches[i].body);
	free(d->patches);
	for (size_t i = 0; i < d->n_posted; i++)
		free(d->posted[i]);
	free(d->posted);
	free(d->lease_log);
	free(d->cert);
	free(d->key);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	memset(d, 0, sizeof(*d));
}

int ad_write_kubeconfig(const struct ad *d, const char *certdir, const char *path, const char *token,
			const char *ns, bool ca_inline)
{
	char capath[4200], *ca, *b64 = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	snprintf(capath, sizeof(capath), "%s/ca.crt", certdir);
	ca = tu_read_file(capath, &len);
	if (!ca)
		return -1;
	b64 = malloc(len / 3 * 4 + 8);
	f = fopen(path, "w");
	if (!b64 || !f)
		goto out;
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ca, (int)len);
	fprintf(f,
		"apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n"
		"- name: double\n  cluster:\n    server: https://127.0.0.1:%u\n",
		d->port);
	if (ca_inline)
		fprintf(f, "    certificate-authority-data: %s\n", b64);
	else
		fprintf(f, "    certificate-authority: ca.crt\n");
	fprintf(f,
		"contexts:\n- name: other\n  context:\n    cluster: nowhere\n    user: nobody\n"
		"- name: test\n  context:\n    cluster: double\n    user: tester\n%s%s%s"
		"users:\n- name: tester\n  user:\n    token: %s\n",
		ns ? "    namespace: " : "", ns ? ns : "", ns ? "\n" : "", token);
	rc = 0;
out:
	if (f && fclose(f) != 0)
		rc = -1;
	free(ca);
	free(b64);
	return rc;
}

void ad_client_open(struct ad_client *c, const struct ad *d, const char *certdir, const char *token,
		    const struct lease_options *lo)
{
	char err[512];

	memset(c, 0, sizeof(*c));
	snprintf(c->token, sizeof(c->token), "%s", token);
	snprintf(c->kc, sizeof(c->kc), "%s/kubeconfig-%s-%u", certdir, token, d->port);
	assert_int_equal(ad_write_kubeconfig(d, certdir, c->kc, token, "rollgate", true), 0);
	if (kube_conn_from_kubeconfig(c->kc, &c->conn, err, sizeof(err)) < 0)
		fail_msg("kube_conn_from_kubeconfig: %s", err);
	c->client = kube_client_new(&c->conn, err, sizeof(err));
	if (!c->client)
		fail_msg("kube_client_new: %s", err);
	if (lo) {
		struct lease_options o = *lo;
		snprintf(c->identity, sizeof(c->identity), "%s_%u", token, d->port);
		o.identity = c->identity;
		c->lease = lease_new(c->client, &o, err, sizeof(err));
		if (!c->lease)
			fail_msg("lease_new: %s", err);
		if (lease_start(c->lease, err, sizeof(err)) < 0)
			fail_msg("lease_start: %s", err);
	}
}

void ad_client_close(struct ad_client *c)
{
	lease_free(c->lease);
	kube_client_free(c->client);
	kube_conn_clear(&c->conn);
	unlink(c->kc);
	memset(c, 0, sizeof(*c));
}

void ad_lease_options(struct lease_options *lo)
{
	lease_default_options(lo);
	lo->namespace_ = "rollgate";
	lo->duration_s = 3;
	lo->renew_deadline_ms = 2000;
	lo->retry_ms = 500;
}

void ad_serve_files(struct ad_serve_files *f, const struct ad *d, const char *certdir,
		    const char *token, const char *name, const char *yaml)
{
	FILE *out;

	snprintf(f->kc, sizeof(f->kc), "%s/kubeconfig-%s-%u", certdir, token, d->port);
	assert_int_equal(ad_write_kubeconfig(d, certdir, f->kc, token, NULL, true), 0);
	snprintf(f->cert, sizeof(f->cert), "%s/tls.crt", certdir);
	snprintf(f->key, sizeof(f->key), "%s/tls.key", certdir);
	snprintf(f->config, sizeof(f->config), "%s/%s", certdir, name);
	out = fopen(f->config, "w");
	assert_non_null(out);
	assert_true(fputs(yaml, out) >= 0);
	assert_int_equal(fclose(out), 0);
}

void ad_serve_files_remove(const struct ad_serve_files *f)
{
	unlink(f->kc);
	unlink(f->config);
}
