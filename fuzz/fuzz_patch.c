/*
 * libFuzzer harness for the config-hash annotation patch: builds the patch
 * for a random workload, annotation key and value with
 * patch_template_annotation, applies it with an RFC 6902 applier written
 * here (not rollgate's patch_apply), and requires the result to be the input
 * with exactly that annotation set (or removed) and nothing else changed.
 * rollgate's own patch_apply must give the same result.
 *
 * Input: one mode byte (bit 0: remove instead of set), then KEY '\0' VALUE
 * '\0' JSON. Without two '\0's the key and value are rollgate's defaults and
 * the rest is the JSON. A JSON object without "spec" is taken as the pod
 * template of a Deployment.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "patch.h"

/* Inputs past this add time, not coverage; the webhook caps bodies anyway. */
#define FUZZ_MAX_INPUT (64 * 1024)
#define DEFAULT_KEY "rollgate.io/config-hash"
#define DEFAULT_VALUE "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why, const cJSON *doc, const char *patch)
{
	char *d = doc ? cJSON_PrintUnformatted(doc) : NULL;

	fprintf(stderr, "fuzz_patch: %s\n--- workload: %s\n--- patch: %s\n", why, d ? d : "(none)",
		patch ? patch : "(none)");
	free(d);
	abort();
}

/* ---- an RFC 6902 applier, independent of src/core/patch.c ---- */

/* The member of obj named key (byte-exact), or NULL. */
static cJSON *member(const cJSON *obj, const char *key)
{
	for (cJSON *c = obj ? obj->child : NULL; c; c = c->next) {
		if (c->string && strcmp(c->string, key) == 0)
			return c;
	}
	return NULL;
}

/* Replaces member cur of obj by item under the same name (cJSON's
 * ReplaceItemViaPointer alone would leave item nameless). */
static bool replace_member(cJSON *obj, cJSON *cur, cJSON *item)
{
	if (!(item->type & cJSON_StringIsConst))
		free(item->string);
	item->string = strdup(cur->string);
	if (!item->string)
		abort();
	item->type &= ~cJSON_StringIsConst;
	return cJSON_ReplaceItemViaPointer(obj, cur, item);
}

/* RFC 6901: the reference tokens of ptr, unescaped, as a malloc'd array of
 * malloc'd strings; NULL for a malformed pointer. "" has no token. */
static char **pointer_tokens(const char *ptr, size_t *n)
{
	size_t cap = 1;
	char **t;

	*n = 0;
	if (*ptr && *ptr != '/')
		return NULL;
	for (const char *p = ptr; *p; p++)
		cap += *p == '/';
	t = calloc(cap, sizeof(*t));
	if (!t)
		abort();
	while (*ptr == '/') {
		const char *start = ++ptr;
		size_t len = strcspn(start, "/"), o = 0;
		char *tok = malloc(len + 1);
		if (!tok)
			abort();
		t[(*n)++] = tok;
		for (size_t i = 0; i < len; i++) {
			if (start[i] != '~') {
				tok[o++] = start[i];
			} else if (i + 1 < len && (start[i + 1] == '0' || start[i + 1] == '1')) {
				tok[o++] = start[++i] == '0' ? '~' : '/';
			} else {
				tok[o] = '\0';
				goto bad;
			}
		}
		tok[o] = '\0';
		ptr = start + len;
	}
	return t;
bad:
	while (*n)
		free(t[--(*n)]);
	free(t);
	return NULL;
}

static void tokens_free(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

/* An array index token: "0" or digits without a leading zero. */
static bool array_index(const char *tok, size_t *out)
{
	size_t v = 0;

	if (!*tok || (tok[0] == '0' && tok[1]))
		return false;
	for (const char *p = tok; *p; p++) {
		if (*p < '0' || *p > '9' || v > 100000)
			return false;
		v = v * 10 + (size_t)(*p - '0');
	}
	*out = v;
	return true;
}

static cJSON *child_at(const cJSON *parent, const char *tok)
{
	size_t i;

	if (cJSON_IsObject(parent))
		return member(parent, tok);
	if (cJSON_IsArray(parent) && array_index(tok, &i))
		return cJSON_GetArrayItem(parent, (int)i);
	return NULL;
}

/* Applies one operation; false when RFC 6902 says it fails. "test",
 * "move" and "copy" are errors here: the builder never emits them. */
static bool apply_one(cJSON **doc, const cJSON *op)
{
	const cJSON *kind = member(op, "op"), *path = member(op, "path"), *value = member(op, "value");
	cJSON *parent, *target, *copy = NULL;
	char **tok;
	size_t n, idx;
	bool add, ok = false;

	if (!cJSON_IsString(kind) || !cJSON_IsString(path))
		return false;
	add = strcmp(kind->valuestring, "add") == 0;
	if (!add && strcmp(kind->valuestring, "remove") && strcmp(kind->valuestring, "replace"))
		return false;
	if (strcmp(kind->valuestring, "remove") != 0) {
		if (!value)
			return false;
		copy = cJSON_Duplicate(value, 1);
		if (!copy)
			abort();
	}
	tok = pointer_tokens(path->valuestring, &n);
	if (!tok)
		goto out;
	if (n == 0) { /* the whole document */
		if (copy) {
			cJSON_Delete(*doc);
			*doc = copy;
			copy = NULL;
			ok = true;
		}
		goto out;
	}
	parent = *doc;
	for (size_t i = 0; parent && i + 1 < n; i++)
		parent = child_at(parent, tok[i]);
	if (!parent)
		goto out;
	target = child_at(parent, tok[n - 1]);
	if (cJSON_IsObject(parent)) {
		if (!copy) {
			ok = target != NULL;
			cJSON_Delete(cJSON_DetachItemViaPointer(parent, target));
		} else if (target) {
			ok = replace_member(parent, target, copy);
			copy = NULL;
		} else if (add) {
			ok = cJSON_AddItemToObject(parent, tok[n - 1], copy);
			copy = NULL;
		}
	} else if (cJSON_IsArray(parent)) {
		if (add && strcmp(tok[n - 1], "-") == 0) {
			ok = cJSON_AddItemToArray(parent, copy);
			copy = NULL;
		} else if (add && array_index(tok[n - 1], &idx) &&
			   idx <= (size_t)cJSON_GetArraySize(parent)) {
			ok = idx == (size_t)cJSON_GetArraySize(parent)
				? cJSON_AddItemToArray(parent, copy)
				: cJSON_InsertItemInArray(parent, (int)idx, copy);
			copy = NULL;
		} else if (target && copy) {
			ok = cJSON_ReplaceItemViaPointer(parent, target, copy);
			copy = NULL;
		} else if (target) {
			cJSON_Delete(cJSON_DetachItemViaPointer(parent, target));
			ok = true;
		}
	}
out:
	cJSON_Delete(copy);
	if (tok)
		tokens_free(tok, n);
	return ok;
}

/* Applies a patch text to *doc; false when it is not a patch or an
 * operation fails (the document may then be half patched). */
static bool apply_patch(cJSON **doc, const char *patch)
{
	cJSON *ops = NULL;
	const cJSON *op;
	char err[128];
	bool ok = json_parse_strict(patch, strlen(patch), &ops, err, sizeof(err)) == 0 &&
		cJSON_IsArray(ops) && cJSON_GetArraySize(ops) > 0;

	cJSON_ArrayForEach(op, ops) {
		if (ok && !apply_one(doc, op))
			ok = false;
	}
	cJSON_Delete(ops);
	return ok;
}

/* ---- what the patch must do ---- */

static bool missing(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

/* Sets obj[key] to item (replacing a member of that name). */
static void set_member(cJSON *obj, const char *key, cJSON *item)
{
	cJSON *cur = member(obj, key);

	if (!item || !(cur ? replace_member(obj, cur, item) : cJSON_AddItemToObject(obj, key, item)))
		fail("cannot build the expected workload", obj, NULL);
}

/*
 * The workload as it must be after the patch, built from the contract in
 * include/core/patch.h rather than from src/core/patch.c. Returns NULL when the
 * builder must refuse (no template object, or metadata or annotations of
 * another type than object or null).
 */
static cJSON *expected(const cJSON *doc, const char *key, const char *value)
{
	cJSON *exp, *tmpl, *meta, *ann;

	tmpl = member(member(doc, "spec"), "template");
	if (!cJSON_IsObject(tmpl))
		return NULL;
	meta = member(tmpl, "metadata");
	if (!missing(meta) && !cJSON_IsObject(meta))
		return NULL;
	ann = cJSON_IsObject(meta) ? member(meta, "annotations") : NULL;
	if (!missing(ann) && !cJSON_IsObject(ann))
		return NULL;
	exp = cJSON_Duplicate(doc, 1);
	if (!exp)
		abort();
	tmpl = member(member(exp, "spec"), "template");
	meta = member(tmpl, "metadata");
	ann = cJSON_IsObject(meta) ? member(meta, "annotations") : NULL;
	if (!value) {
		cJSON_Delete(cJSON_DetachItemViaPointer(ann, member(ann, key)));
		return exp;
	}
	if (missing(meta)) {
		set_member(tmpl, "metadata", cJSON_CreateObject());
		meta = member(tmpl, "metadata");
	}
	if (missing(ann)) {
		set_member(meta, "annotations", cJSON_CreateObject());
		ann = member(meta, "annotations");
	}
	set_member(ann, key, cJSON_CreateString(value));
	return exp;
}

/* The workload: a strictly parsed object, wrapped as a Deployment's pod
 * template when it has no "spec". NULL when the JSON is not usable. */
static cJSON *workload(const char *json, size_t len)
{
	char *buf = malloc(len + 1), err[128];
	static const char wrapper[] = "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
				      "\"metadata\":{\"name\":\"web\"},\"spec\":{}}";
	cJSON *doc = NULL, *dep = NULL;

	if (!buf)
		abort();
	memcpy(buf, json, len);
	buf[len] = '\0';
	if (json_parse_strict(buf, len, &doc, err, sizeof(err)) < 0)
		doc = NULL;
	free(buf);
	if (!doc || !cJSON_IsObject(doc) || member(doc, "spec"))
		return doc;
	if (json_parse_strict(wrapper, sizeof(wrapper) - 1, &dep, err, sizeof(err)) < 0)
		abort();
	set_member(member(dep, "spec"), "template", doc);
	return dep;
}

static void check(const cJSON *doc, const char *key, const char *value)
{
	cJSON *exp = expected(doc, key, value), *mine = NULL, *theirs = NULL;
	char *patch = NULL, err[256];
	int rc = patch_template_annotation(doc, key, value, &patch);

	if (rc != (exp ? 0 : -1))
		fail(rc ? "refused a patchable workload" : "patched a workload it must refuse", doc,
		     patch);
	if (rc < 0) {
		if (patch)
			fail("a patch alongside an error", doc, patch);
		return;
	}
	if (!patch) {
		if (!cJSON_Compare(doc, exp, 1))
			fail("no patch, but the annotation is not as asked", doc, NULL);
		goto out;
	}
	if (cJSON_Compare(doc, exp, 1))
		fail("a patch where nothing changes", doc, patch);
	mine = cJSON_Duplicate(doc, 1);
	theirs = cJSON_Duplicate(doc, 1);
	if (!mine || !theirs)
		abort();
	if (!apply_patch(&mine, patch))
		fail("the patch does not apply (RFC 6902)", doc, patch);
	if (!cJSON_Compare(mine, exp, 1))
		fail("the patched workload differs from the workload with the annotation", doc, patch);
	if (patch_apply(theirs, patch, err, sizeof(err)) < 0 || !cJSON_Compare(theirs, exp, 1))
		fail("patch_apply disagrees with RFC 6902", doc, patch);
out:
	cJSON_Delete(mine);
	cJSON_Delete(theirs);
	cJSON_Delete(exp);
	free(patch);
}

/* Annotation keys and values reach patch building from the config and the
 * hash, both valid UTF-8 (libyaml refuses anything else); a key that is not
 * cannot be written as JSON at all, so such inputs are out of scope. */
static bool valid_text(const char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k) {
		k = json_utf8_seq((const unsigned char *)s + i, n - i);
		if (k == 0)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1, *key = DEFAULT_KEY, *value = DEFAULT_VALUE;
	const char *end = (const char *)data + size, *z1, *z2 = NULL;
	bool remove;
	cJSON *doc;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	remove = data[0] & 1;
	z1 = memchr(p, '\0', (size_t)(end - p));
	if (z1)
		z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
	if (z2) {
		key = p;
		value = z1 + 1;
		p = z2 + 1;
		if (!valid_text(key) || !valid_text(value))
			return 0;
	}
	doc = workload(p, (size_t)(end - p));
	if (doc)
		check(doc, key, remove ? NULL : value);
	cJSON_Delete(doc);
	return 0;
}
