/*
 * JSON Patch (RFC 6902) for the pod-template annotation.
 *
 * Every op is an "add" under a parent that exists (RFC 6902 "add" replaces
 * an existing member, a JSON null included) or a "remove" of a member that
 * exists, so kube-apiserver can always apply the patch to the object it sent.
 * Built with cJSON, which escapes strings, never by pasting text.
 */
#include "patch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

#define PATH_MAX_LEN 64 /* fixed holder paths only: "", "/spec/template" */

char *patch_escape_pointer(const char *s)
{
	size_t n, extra = 0;
	char *out, *o;

	if (!s)
		return NULL;
	n = strlen(s);
	for (const char *p = s; *p; p++)
		extra += *p == '~' || *p == '/';
	if (n > (SIZE_MAX - 1) / 2)
		return NULL;
	out = malloc(n + extra + 1);
	if (!out)
		return NULL;
	o = out;
	/* Each character is escaped once, so "~" becomes "~0" before any "/"
	 * becomes "~1" and "~1" in the input cannot be mistaken for "/". */
	for (const char *p = s; *p; p++) {
		if (*p == '~') {
			*o++ = '~';
			*o++ = '0';
		} else if (*p == '/') {
			*o++ = '~';
			*o++ = '1';
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* Prints [{"op":op,"path":path,"value":value}] (no value when NULL). Takes
 * ownership of value in all cases. Returns a malloc'd string or NULL. */
static char *print_op(const char *op, const char *path, cJSON *value)
{
	cJSON *arr = cJSON_CreateArray();
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (!arr || !o)
		goto out;
	cJSON_AddItemToArray(arr, o);
	o = NULL; /* owned by arr now */
	if (!cJSON_AddStringToObject(arr->child, "op", op) ||
	    !cJSON_AddStringToObject(arr->child, "path", path))
		goto out;
	if (value) {
		if (!cJSON_AddItemToObject(arr->child, "value", value))
			goto out;
		value = NULL;
	}
	text = json_print(arr);
out:
	cJSON_Delete(value);
	cJSON_Delete(o);
	cJSON_Delete(arr);
	return text;
}

/* {"key": value}, optionally wrapped as {"annotations": {...}}. */
static cJSON *annotation_map(const char *key, const char *value, bool wrap)
{
	cJSON *map = cJSON_CreateObject();
	cJSON *outer;

	if (!map || !cJSON_AddStringToObject(map, key, value))
		goto fail;
	if (!wrap)
		return map;
	outer = cJSON_CreateObject();
	if (!outer || !cJSON_AddItemToObject(outer, "annotations", map)) {
		cJSON_Delete(outer);
		goto fail;
	}
	return outer;
fail:
	cJSON_Delete(map);
	return NULL;
}

/* Absent or JSON null: the member is missing as far as the patch goes. */
static bool missing(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

/* Sets or removes one key of an existing annotations object at ann_path. */
static int patch_existing(const cJSON *annotations, const char *ann_path, const char *key,
			  const char *value, char **out)
{
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(annotations, key);
	char *esc = NULL, *path = NULL;
	cJSON *v = NULL;
	size_t len;
	int rc = -1;

	if (value ? cJSON_IsString(cur) && strcmp(cur->valuestring, value) == 0 : !cur)
		return 0; /* nothing would change */
	esc = patch_escape_pointer(key);
	if (!esc)
		goto out;
	len = strlen(ann_path) + 2 + strlen(esc);
	path = malloc(len);
	if (!path)
		goto out;
	snprintf(path, len, "%s/%s", ann_path, esc);
	if (value) {
		v = cJSON_CreateString(value);
		if (!v)
			goto out;
	}
	*out = print_op(value ? "add" : "remove", path, v);
	v = NULL;
	rc = *out ? 0 : -1;
out:
	cJSON_Delete(v);
	free(path);
	free(esc);
	return rc;
}

/* Adds a whole metadata (wrap) or annotations map holding the one key. */
static int patch_add_map(const char *path, const char *key, const char *value, bool wrap, char **out)
{
	cJSON *map;

	if (!value)
		return 0; /* removing from a map that does not exist */
	map = annotation_map(key, value, wrap);
	if (!map)
		return -1;
	*out = print_op("add", path, map);
	return *out ? 0 : -1;
}

int patch_annotation(const cJSON *holder, const char *path, const char *key, const char *value,
		     char **out)
{
	char meta_path[PATH_MAX_LEN], ann_path[PATH_MAX_LEN];
	const cJSON *meta, *ann;

	*out = NULL;
	if (!key || !path || !cJSON_IsObject(holder) ||
	    (size_t)snprintf(meta_path, sizeof(meta_path), "%s/metadata", path) >= sizeof(meta_path) ||
	    (size_t)snprintf(ann_path, sizeof(ann_path), "%s/metadata/annotations", path) >=
		    sizeof(ann_path))
		return -1;
	meta = json_get(holder, "metadata");
	if (missing(meta))
		return patch_add_map(meta_path, key, value, true, out);
	if (!cJSON_IsObject(meta))
		return -1;
	ann = json_get(meta, "annotations");
	if (missing(ann))
		return patch_add_map(ann_path, key, value, false, out);
	if (!cJSON_IsObject(ann))
		return -1;
	return patch_existing(ann, ann_path, key, value, out);
}

int patch_template_annotation(const cJSON *workload, const char *key, const char *value, char **out)
{
	return patch_annotation(json_get_path(workload, "spec", "template", NULL), "/spec/template",
				key, value, out);
}

int patch_template_spec_string(const cJSON *workload, const char *member, const char *value,
			       char **out)
{
	const cJSON *spec = json_get_path(workload, "spec", "template", "spec", NULL);
	const cJSON *cur = json_get(spec, member);
	char path[PATH_MAX_LEN + 64];
	cJSON *v = NULL;

	*out = NULL;
	if (!cJSON_IsObject(spec) || !member ||
	    (size_t)snprintf(path, sizeof(path), "/spec/template/spec/%s", member) >= sizeof(path) ||
	    strpbrk(member, "~/"))
		return -1;
	if (value ? cJSON_IsString(cur) && strcmp(cur->valuestring, value) == 0 : missing(cur))
		return 0;
	if (value && !(v = cJSON_CreateString(value)))
		return -1;
	*out = print_op(value ? "add" : "remove", path, v);
	return *out ? 0 : -1;
}

int patch_append(char **acc, char *ops)
{
	size_t a, b;
	char *joined;

	if (!ops)
		return 0;
	if (!*acc) {
		*acc = ops;
		return 0;
	}
	a = strlen(*acc);
	b = strlen(ops);
	/* "[x]" + "[y]" = "[x,y]"; both are arrays print_op made. */
	if (a < 2 || b < 2 || (*acc)[a - 1] != ']' || ops[0] != '[') {
		free(ops);
		return -1;
	}
	joined = malloc(a + b);
	if (!joined) {
		free(ops);
		return -1;
	}
	memcpy(joined, *acc, a - 1);
	joined[a - 1] = ',';
	memcpy(joined + a, ops + 1, b - 1);
	joined[a + b - 1] = '\0';
	free(*acc);
	free(ops);
	*acc = joined;
	return 0;
}

/* Decodes one RFC 6901 reference token in place ("~1" -> '/', "~0" -> '~'). */
static int unescape_token(char *t)
{
	char *w = t;

	for (char *r = t; *r; r++) {
		if (*r != '~') {
			*w++ = *r;
		} else if (r[1] == '0' || r[1] == '1') {
			*w++ = r[1] == '0' ? '~' : '/';
			r++;
		} else {
			return -1;
		}
	}
	*w = '\0';
	return 0;
}

/* Walks path to the parent object of its last token; *last points into buf. */
static cJSON *walk_parent(cJSON *doc, char *buf, char **last)
{
	char *tok = buf + 1, *slash;
	cJSON *cur = doc;

	if (buf[0] != '/')
		return NULL;
	while ((slash = strchr(tok, '/')) != NULL) {
		*slash = '\0';
		if (unescape_token(tok) < 0)
			return NULL;
		cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
		if (!cJSON_IsObject(cur))
			return NULL;
		tok = slash + 1;
	}
	if (unescape_token(tok) < 0 || !cJSON_IsObject(cur))
		return NULL;
	*last = tok;
	return cur;
}

static int apply_op(cJSON *doc, const cJSON *op, char *err, size_t errlen)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
	cJSON *parent, *copy;
	char *buf, *last = NULL;
	int rc = -1;

	if (!cJSON_IsString(kind) || !cJSON_IsString(path)) {
		snprintf(err, errlen, "patch operation without op or path");
		return -1;
	}
	buf = strdup(path->valuestring);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	parent = walk_parent(doc, buf, &last);
	if (!parent) {
		snprintf(err, errlen, "patch path %.200s has no parent object", path->valuestring);
		goto out;
	}
	if (strcmp(kind->valuestring, "remove") == 0) {
		if (!cJSON_GetObjectItemCaseSensitive(parent, last)) {
			snprintf(err, errlen, "patch removes missing %.200s", path->valuestring);
			goto out;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
		rc = 0;
	} else if (strcmp(kind->valuestring, "add") == 0 ||
		   strcmp(kind->valuestring, "replace") == 0) {
		copy = value ? cJSON_Duplicate(value, 1) : NULL;
		if (!copy) {
			snprintf(err, errlen, "patch operation without a value");
			goto out;
		}
		if (cJSON_GetObjectItemCaseSensitive(parent, last))
			rc = cJSON_ReplaceItemInObjectCaseSensitive(parent, last, copy) ? 0 : -1;
		else
			rc = cJSON_AddItemToObject(parent, last, copy) ? 0 : -1;
		if (rc < 0) {
			cJSON_Delete(copy);
			snprintf(err, errlen, "out of memory");
		}
	} else {
		snprintf(err, errlen, "unsupported patch operation %.20s", kind->valuestring);
	}
out:
	free(buf);
	return rc;
}

int patch_apply(cJSON *doc, const char *patch, char *err, size_t errlen)
{
	cJSON *ops = NULL;
	const cJSON *op;
	int rc = 0;

	if (json_parse_strict(patch, strlen(patch), &ops, err, errlen) < 0)
		return -1;
	if (!cJSON_IsArray(ops)) {
		cJSON_Delete(ops);
		snprintf(err, errlen, "patch is not a JSON array");
		return -1;
	}
	cJSON_ArrayForEach(op, ops) {
		if (apply_op(doc, op, err, errlen) < 0) {
			rc = -1;
			break;
		}
	}
	cJSON_Delete(ops);
	return rc;
}
