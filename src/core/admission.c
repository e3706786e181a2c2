/*
 * The admission.k8s.io/v1 AdmissionReview contract, as kube-apiserver
 * enforces it: strict decoding of requests, responses it will accept.
 */
#include "admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "dynbuf.h"
#include "jsonscan.h"
#include "jsonutil.h"

static const char *const op_names[] = { "CREATE", "UPDATE", "DELETE", "CONNECT" };

const char *admission_operation_name(enum adm_operation op)
{
	return (unsigned)op <= OP_CONNECT ? op_names[op] : "UNKNOWN";
}

/* An optional string member: absent or null gives "", another type fails. */
static int opt_string(const cJSON *obj, const char *key, const char **out, const char *where,
		      char *err, size_t errlen)
{
	const cJSON *v = json_get(obj, key);

	if (!v || cJSON_IsNull(v)) {
		*out = "";
		return 0;
	}
	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "%s.%s must be a string", where, key);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

/* An optional object member: absent or null gives NULL. */
static int opt_object(const cJSON *obj, const char *key, const cJSON **out, const char *where,
		      char *err, size_t errlen)
{
	const cJSON *v = json_get(obj, key);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v)) {
		snprintf(err, errlen, "%s.%s must be an object", where, key);
		return -1;
	}
	*out = v;
	return 0;
}

static int decode_envelope(const cJSON *doc, const cJSON **request, char *err, size_t errlen)
{
	const char *api = json_get_string(doc, "apiVersion");
	const char *kind = json_get_string(doc, "kind");

	if (!cJSON_IsObject(doc)) {
		snprintf(err, errlen, "body must be a JSON object");
		return -1;
	}
	if (!api || strcmp(api, "admission.k8s.io/v1") != 0) {
		snprintf(err, errlen, "apiVersion must be admission.k8s.io/v1");
		return -1;
	}
	if (!kind || strcmp(kind, "AdmissionReview") != 0) {
		snprintf(err, errlen, "kind must be AdmissionReview");
		return -1;
	}
	*request = json_get(doc, "request");
	if (!*request || !cJSON_IsObject(*request)) {
		snprintf(err, errlen, "request is missing or not an object");
		return -1;
	}
	return 0;
}

static int decode_kind(const cJSON *rq, struct admission_request *req, char *err, size_t errlen)
{
	const cJSON *kind, *res;

	if (opt_object(rq, "kind", &kind, "request", err, errlen) < 0 ||
	    opt_object(rq, "resource", &res, "request", err, errlen) < 0)
		return -1;
	if (!kind) {
		snprintf(err, errlen, "request.kind is missing");
		return -1;
	}
	if (opt_string(kind, "group", &req->group, "request.kind", err, errlen) < 0 ||
	    opt_string(kind, "version", &req->version, "request.kind", err, errlen) < 0 ||
	    opt_string(kind, "kind", &req->kind, "request.kind", err, errlen) < 0)
		return -1;
	if (!*req->kind) {
		snprintf(err, errlen, "request.kind.kind is missing");
		return -1;
	}
	req->resource = "";
	if (res && opt_string(res, "resource", &req->resource, "request.resource", err, errlen) < 0)
		return -1;
	return opt_string(rq, "subResource", &req->subresource, "request", err, errlen);
}

static int decode_operation(const cJSON *rq, struct admission_request *req, char *err, size_t errlen)
{
	const char *op = json_get_string(rq, "operation");

	for (int i = 0; op && i <= OP_CONNECT; i++) {
		if (strcmp(op, op_names[i]) == 0) {
			req->operation = (enum adm_operation)i;
			return 0;
		}
	}
	snprintf(err, errlen, "request.operation must be CREATE, UPDATE, DELETE or CONNECT");
	return -1;
}

static int decode_user(const cJSON *rq, struct admission_request *req, char *err, size_t errlen)
{
	const cJSON *ui, *groups, *g;

	if (opt_object(rq, "userInfo", &ui, "request", err, errlen) < 0)
		return -1;
	req->username = "";
	req->groups = NULL;
	if (!ui)
		return 0;
	if (opt_string(ui, "username", &req->username, "request.userInfo", err, errlen) < 0)
		return -1;
	groups = json_get(ui, "groups");
	if (groups && !cJSON_IsNull(groups)) {
		if (!cJSON_IsArray(groups)) {
			snprintf(err, errlen, "request.userInfo.groups must be an array");
			return -1;
		}
		cJSON_ArrayForEach(g, groups) {
			if (!cJSON_IsString(g)) {
				snprintf(err, errlen, "request.userInfo.groups must hold strings");
				return -1;
			}
		}
		req->groups = groups;
	}
	return 0;
}

static int decode_request(const cJSON *rq, struct admission_request *req, char *err, size_t errlen)
{
	const cJSON *uid = json_get(rq, "uid"), *dry;

	if (!cJSON_IsString(uid) || !*uid->valuestring) {
		snprintf(err, errlen, "request.uid is missing or not a non-empty string");
		return -1;
	}
	req->uid = uid->valuestring;
	if (decode_kind(rq, req, err, errlen) < 0 || decode_operation(rq, req, err, errlen) < 0 ||
	    decode_user(rq, req, err, errlen) < 0)
		return -1;
	if (opt_string(rq, "name", &req->name, "request", err, errlen) < 0 ||
	    opt_string(rq, "namespace", &req->namespace_, "request", err, errlen) < 0)
		return -1;
	dry = json_get(rq, "dryRun");
	if (dry && !cJSON_IsNull(dry) && !cJSON_IsBool(dry)) {
		snprintf(err, errlen, "request.dryRun must be a boolean");
		return -1;
	}
	req->dry_run = cJSON_IsTrue(dry);
	if (opt_object(rq, "object", &req->object, "request", err, errlen) < 0 ||
	    opt_object(rq, "oldObject", &req->old_object, "request", err, errlen) < 0)
		return -1;
	return 0;
}

int admission_decode_tree(cJSON *doc, struct admission_request *req, char *err, size_t errlen)
{
	const cJSON *rq = NULL;

	memset(req, 0, sizeof(*req));
	req->doc = doc;
	if (decode_envelope(doc, &rq, err, errlen) < 0 || decode_request(rq, req, err, errlen) < 0) {
		admission_request_clear(req);
		return -1;
	}
	return 0;
}

/*
 * What admission_decode builds of a review. The whole body is validated
 * (jsonscan_parse); of request.object and request.oldObject these members
 * are left out of the tree, since nothing rollgate decides reads them:
 *
 *   - metadata.managedFields and status, of both objects;
 *   - oldObject.spec.template.spec (the old pod spec), except when
 *     request.kind.kind is ReplicaSet: only the ReplicaSet spec comparison
 *     (rules_rollout.c) reads it, and for it the old pod spec is built after
 *     the scan and appended to oldObject.spec.template (member order does
 *     not matter to cJSON_Compare).
 *
 * Everything else, the envelope included, is built as json_parse_strict
 * would build it. A skip list rather than a list of what is read: a new
 * rule reading another field keeps working. Members are matched by their
 * raw names, so a name written with escapes is never left out.
 */
struct prune {
	const char *spec[2];      /* where object.spec and oldObject.spec start */
	const char *spec_end[2];  /* and end */
	const char *old_pod_spec; /* where oldObject.spec.template.spec starts */
};

static bool seg_is(const struct jsonscan_path *p, size_t i, const char *name)
{
	size_t n = strlen(name);

	return p->seg[i].name && p->seg[i].len == n && memcmp(p->seg[i].name, name, n) == 0;
}

static bool prune_keep(void *arg, struct jsonscan_member *m)
{
	const struct jsonscan_path *p = m->path;
	struct prune *pr = arg;
	int which;

	if (p->depth < 3 || !seg_is(p, 0, "request"))
		return true;
	if (seg_is(p, 1, "object"))
		which = 0;
	else if (seg_is(p, 1, "oldObject"))
		which = 1;
	else
		return true;
	if (p->depth == 3) {
		if (seg_is(p, 2, "spec")) {
			pr->spec[which] = m->value;
			m->end = &pr->spec_end[which];
		}
		return !seg_is(p, 2, "status");
	}
	if (p->depth == 4 && seg_is(p, 2, "metadata") && seg_is(p, 3, "managedFields"))
		return false;
	if (which == 1 && p->depth == 5 && seg_is(p, 2, "spec") && seg_is(p, 3, "template") &&
	    seg_is(p, 4, "spec")) {
		pr->old_pod_spec = m->value;
		return false;
	}
	return true;
}

/* The strict scan, keeping what prune_keep keeps. A refused body is parsed
 * again by json_parse_strict, for its exact error text (and, should the two
 * ever disagree, its full tree is used: never a verdict on less). */
static int decode_scan(const char *body, size_t len, struct prune *pr, cJSON **doc, char *err,
		       size_t errlen)
{
	if (jsonscan_parse(body, len, prune_keep, pr, doc, err, errlen) == 0)
		return 0;
	memset(pr, 0, sizeof(*pr));
	return json_parse_strict(body, len, doc, err, errlen);
}

/* Same bytes of object.spec and oldObject.spec in the body. */
static bool spec_same_bytes(const struct prune *pr)
{
	size_t n0, n1;

	if (!pr->spec_end[0] || !pr->spec_end[1])
		return false;
	n0 = (size_t)(pr->spec_end[0] - pr->spec[0]);
	n1 = (size_t)(pr->spec_end[1] - pr->spec[1]);
	return n0 == n1 && memcmp(pr->spec[0], pr->spec[1], n0) == 0;
}

/* Builds the old pod spec left out by the scan where a rule reads it. */
static int decode_old_pod_spec(const struct prune *pr, const char *end, struct admission_request *req)
{
	cJSON *tmpl = (cJSON *)json_get_path(req->old_object, "spec", "template", NULL), *spec;

	if (!pr->old_pod_spec || strcmp(req->kind, "ReplicaSet") != 0 || !cJSON_IsObject(tmpl))
		return 0;
	if (jsonscan_build(pr->old_pod_spec, end, &spec) < 0)
		return -1;
	if (!cJSON_AddItemToObject(tmpl, "spec", spec)) {
		cJSON_Delete(spec);
		return -1;
	}
	return 0;
}

int admission_decode(const char *body, size_t len, struct admission_request *req, char *err,
		     size_t errlen)
{
	struct json_region *region = json_region_new(), *prev;
	struct prune pr = { { NULL, NULL }, { NULL, NULL }, NULL };
	cJSON *doc = NULL;
	int rc;

	memset(req, 0, sizeof(*req));
	prev = json_region_enter(region);
	rc = decode_scan(body, len, &pr, &doc, err, errlen);
	/* decode_tree frees doc on failure: with the region entered. */
	if (rc == 0)
		rc = admission_decode_tree(doc, req, err, errlen);
	if (rc == 0 && decode_old_pod_spec(&pr, body + len, req) < 0) {
		snprintf(err, errlen, "out of memory");
		admission_request_clear(req);
		rc = -1;
	}
	json_region_enter(prev);
	if (rc < 0) {
		json_region_delete(region, NULL);
		return -1;
	}
	req->spec_unchanged = spec_same_bytes(&pr);
	req->region = region;
	return 0;
}

void admission_request_clear(struct admission_request *req)
{
	if (!req)
		return;
	json_region_delete(req->region, req->doc);
	memset(req, 0, sizeof(*req));
}

void admission_response_init(struct admission_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->allowed = true;
}

void admission_response_clear(struct admission_response *resp)
{
	if (!resp)
		return;
	free(resp->message);
	free(resp->patch);
	for (size_t i = 0; i < resp->n_warnings; i++)
		free(resp->warnings[i]);
	for (size_t i = 0; i < resp->n_audit; i++) {
		free(resp->audit_keys[i]);
		free(resp->audit_values[i]);
	}
	memset(resp, 0, sizeof(*resp));
}

int admission_deny(struct admission_response *resp, const char *message)
{
	struct dynbuf b;
	char *m;

	dynbuf_init(&b, ADM_MESSAGE_MAX);
	if (resp->message && *resp->message) {
		dynbuf_add(&b, resp->message);
		dynbuf_addn(&b, "; ", 2);
	}
	dynbuf_add(&b, message);
	m = dynbuf_take(&b, NULL);
	if (!m) {
		dynbuf_clear(&b);
		return -1;
	}
	free(resp->message);
	resp->message = m;
	resp->allowed = false;
	resp->code = 403;
	return 0;
}

/* Length of the UTF-8 sequence at s that kube-apiserver keeps as is, or 0:
 * well-formed, and not a C1 control character (U+0080 to U+009F). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = json_utf8_seq(s, n);

	if (len == 2 && s[0] == 0xC2 && s[1] < 0xA0)
		return 0;
	return len;
}

char *admission_warning_text(const char *text, size_t max_runes, size_t *runes)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0, o = 0, r = 0, keep = 0, keep_r = 0;
	/* Every rune comes out no longer than it went in, and "..." replaces
	 * at least three runes: n bytes are enough. */
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	while (i < n) {
		size_t len = utf8_seq(s + i, n - i);
		size_t olen = len ? len : 1;
		if (r == max_runes) {
			memcpy(out + keep, "...", 3);
			o = keep + 3;
			r = keep_r + 3;
			break;
		}
		if (len == 0)
			out[o] = '?';
		else if (len == 1 && (s[i] < 0x20 || s[i] == 0x7F))
			out[o] = ' ';
		else
			memcpy(out + o, s + i, len);
		o += olen;
		r++;
		i += olen;
		if (r <= max_runes - 3) {
			keep = o; /* last boundary that leaves room for "..." */
			keep_r = r;
		}
	}
	out[o] = '\0';
	*runes = r;
	return out;
}

static bool warning_known(const struct admission_response *resp, const char *w)
{
	for (size_t i = 0; i < resp->n_warnings; i++) {
		if (strcmp(resp->warnings[i], w) == 0)
			return true;
	}
	return false;
}

/* Counts one more warning that did not fit in the last slot, which the
 * budget's reserve keeps room for. */
static int warn_dropped(struct admission_response *resp)
{
	char more[64];
	char *w;

	snprintf(more, sizeof(more), "and more warnings not shown: %zu", resp->warnings_dropped + 1);
	w = strdup(more);
	if (!w)
		return -1;
	if (resp->warnings_dropped)
		free(resp->warnings[--resp->n_warnings]);
	resp->warnings[resp->n_warnings++] = w;
	resp->warnings_dropped++;
	return 0;
}

int admission_warn(struct admission_response *resp, const char *text)
{
	size_t runes;
	char *w = admission_warning_text(text, ADM_WARNING_MAX_RUNES, &runes);

	if (!w)
		return -1;
	if (runes == 0 || warning_known(resp, w)) {
		free(w);
		return 0;
	}
	if (resp->warnings_dropped == 0 && resp->n_warnings < ADM_MAX_WARNINGS - 1 &&
	    resp->warning_runes + runes <= ADM_WARNINGS_MAX_RUNES - ADM_WARNINGS_RESERVE) {
		resp->warnings[resp->n_warnings++] = w;
		resp->warning_runes += runes;
		return 0;
	}
	free(w);
	return warn_dropped(resp);
}

static char *sanitize_key(const char *key)
{
	size_t n = strlen(key), o = 0;
	char *out = malloc(64);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n && o < 63; i++) {
		char c = key[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '_' || c == '.';
		out[o++] = ok ? c : '-';
	}
	while (o > 0 &&
	       !((out[o - 1] >= 'a' && out[o - 1] <= 'z') ||
		 (out[o - 1] >= 'A' && out[o - 1] <= 'Z') || (out[o - 1] >= '0' && out[o - 1] <= '9')))
		o--;
	if (o == 0)
		memcpy(out, "rollgate", 9), o = 8;
	out[o] = '\0';
	return out;
}

int admission_audit(struct admission_response *resp, const char *key, const char *value)
{
	char *k, *v;
	size_t runes;

	if (resp->n_audit == ADM_MAX_AUDIT)
		return 0;
	k = sanitize_key(key);
	v = admission_warning_text(value, 1024, &runes);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	resp->audit_keys[resp->n_audit] = k;
	resp->audit_values[resp->n_audit] = v;
	resp->n_audit++;
	return 0;
}

/* Appends s as a JSON string the way cJSON's printer writes it: '"', '\\'
 * and the control characters with a short form escaped as such, the other
 * control characters as \u00XX (lower-case hex), every other byte as is;
 * NULL as "". */
static void put_string(struct dynbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

	dynbuf_addn(b, "\"", 1);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		dynbuf_addn(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			dynbuf_addn(b, "\\\"", 2);
			break;
		case '\\':
			dynbuf_addn(b, "\\\\", 2);
			break;
		case '\b':
			dynbuf_addn(b, "\\b", 2);
			break;
		case '\f':
			dynbuf_addn(b, "\\f", 2);
			break;
		case '\n':
			dynbuf_addn(b, "\\n", 2);
			break;
		case '\r':
			dynbuf_addn(b, "\\r", 2);
			break;
		case '\t':
			dynbuf_addn(b, "\\t", 2);
			break;
		default:
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			dynbuf_addn(b, esc, 6);
		}
	}
	if (run)
		dynbuf_addn(b, run, (size_t)(s - run));
	dynbuf_addn(b, "\"", 1);
}

/* ,"key":"value" (or without the comma first). */
static void put_member(struct dynbuf *b, bool comma, const char *key, const char *value)
{
	if (comma)
		dynbuf_addn(b, ",", 1);
	put_string(b, key);
	dynbuf_addn(b, ":", 1);
	put_string(b, value);
}

static void put_status(struct dynbuf *b, const struct admission_response *resp)
{
	dynbuf_addf(b, ",\"status\":{\"code\":%d", resp->code ? resp->code : 403);
	put_member(b, true, "reason", "Forbidden");
	put_member(b, true, "message", resp->message ? resp->message : "denied by rollgate");
	dynbuf_addn(b, "}", 1);
}

/* patchType and the patch in base64, written straight into the buffer. */
static void put_patch(struct dynbuf *b, const char *patch)
{
	size_t n = strlen(patch), need = 4 * ((n + 2) / 3) + 1, avail;
	char *room;

	put_member(b, true, "patchType", "JSONPatch");
	dynbuf_add(b, ",\"patch\":\"");
	/* Past the cap (so past INT_MAX bytes too) dynbuf_room fails. */
	room = dynbuf_room(b, need, &avail);
	if (!room)
		return;
	dynbuf_commit(b,
		      (size_t)EVP_EncodeBlock((unsigned char *)room, (const unsigned char *)patch,
					      (int)n));
	dynbuf_addn(b, "\"", 1);
}

static void put_lists(struct dynbuf *b, const struct admission_response *resp)
{
	if (resp->n_warnings) {
		dynbuf_add(b, ",\"warnings\":[");
		for (size_t i = 0; i < resp->n_warnings; i++) {
			if (i)
				dynbuf_addn(b, ",", 1);
			put_string(b, resp->warnings[i]);
		}
		dynbuf_addn(b, "]", 1);
	}
	if (resp->n_audit) {
		dynbuf_add(b, ",\"auditAnnotations\":{");
		for (size_t i = 0; i < resp->n_audit; i++)
			put_member(b, i > 0, resp->audit_keys[i], resp->audit_values[i]);
		dynbuf_addn(b, "}", 1);
	}
}

char *admission_encode(const char *uid, const struct admission_response *resp, bool allow_patch)
{
	struct dynbuf b;
	char *out;

	dynbuf_init(&b, ADM_RESPONSE_MAX);
	dynbuf_add(&b,
		   "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
		   "\"response\":{");
	put_member(&b, false, "uid", uid);
	dynbuf_add(&b, resp->allowed ? ",\"allowed\":true" : ",\"allowed\":false");
	if (!resp->allowed)
		put_status(&b, resp);
	if (resp->allowed && allow_patch && resp->patch)
		put_patch(&b, resp->patch);
	put_lists(&b, resp);
	dynbuf_add(&b, "}}");
	out = dynbuf_take(&b, NULL);
	if (!out)
		dynbuf_clear(&b);
	return out;
}
