/*
 * Manifest files to objects. Each object is handed to a callback with its
 * file and line, so every consumer (file object source, check, stamp)
 * reports problems the same way.
 */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonutil.h"
#include "yamljson.h"

#define WALK_MAX_DEPTH 32
#define LIST_MAX_ITEMS 100000

char *manifest_slurp(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	bool is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	char *buf = NULL, *nb;
	size_t n = 0, cap = 0, r;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > max + 2)
				cap = max + 2;
			nb = realloc(buf, cap);
			if (!nb) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (n > max) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
			goto fail;
		}
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	buf[n] = '\0';
	*len = n;
	if (!is_stdin)
		fclose(f);
	return buf;
fail:
	free(buf);
	if (!is_stdin)
		fclose(f);
	return NULL;
}

static bool has_manifest_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 ||
		       strcmp(dot, ".json") == 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *path, int depth, bool top, manifest_file_fn fn, void *arg,
		char *err, size_t errlen);

/* Directory entries in name order, so results never depend on the FS. */
static int walk_dir(const char *path, int depth, manifest_file_fn fn, void *arg, char *err,
		    size_t errlen)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL, **nn;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				rc = -1;
				break;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0)
		snprintf(err, errlen, "%s: out of memory", path);
	if (names)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char child[4096];
		if (rc == 0) {
			snprintf(child, sizeof(child), "%s/%s", path, names[i]);
			rc = walk(child, depth + 1, false, fn, arg, err, errlen);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int walk(const char *path, int depth, bool top, manifest_file_fn fn, void *arg,
		char *err, size_t errlen)
{
	struct stat st;

	if (depth > WALK_MAX_DEPTH) {
		snprintf(err, errlen, "%s: directories nested too deep", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return walk_dir(path, depth, fn, arg, err, errlen);
	/* A file named on the command line is read whatever its extension. */
	if (!S_ISREG(st.st_mode) || (!top && !has_manifest_ext(path)))
		return 0;
	return fn(path, arg) ? -1 : 0;
}

int manifest_walk(const char *path, manifest_file_fn fn, void *arg, char *err, size_t errlen)
{
	if (strcmp(path, "-") == 0)
		return fn(path, arg) ? -1 : 0;
	return walk(path, 0, true, fn, arg, err, errlen);
}

/* Hands obj to fn, or each item of a List kind (v1 List, *List). */
static int emit_object(cJSON *obj, const char *file, int line, const struct yaml_docs *docs,
		       manifest_object_fn fn, void *arg, char *err, size_t errlen)
{
	const char *kind = json_get_string(obj, "kind");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(obj, "items"), *it;
	size_t klen = kind ? strlen(kind) : 0;
	int count = 0;

	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "%s:%d: a manifest must be a mapping", file, line);
		return -1;
	}
	if (klen >= 4 && strcmp(kind + klen - 4, "List") == 0 && cJSON_IsArray(items)) {
		cJSON_ArrayForEach(it, items) {
			int l = docs ? yamljson_line(docs, it) : 0;
			if (++count > LIST_MAX_ITEMS) {
				snprintf(err, errlen, "%s:%d: List with more than %d items", file, line,
					 LIST_MAX_ITEMS);
				return -1;
			}
			if (emit_object(it, file, l ? l : line, docs, fn, arg, err, errlen) < 0)
				return -1;
		}
		return 0;
	}
	if (fn(obj, file, line, arg) != 0) {
		if (!*err)
			snprintf(err, errlen, "%s:%d: rejected", file, line);
		return -1;
	}
	return 0;
}

int manifest_load_buffer(const char *name, const char *buf, size_t len, struct yaml_docs *docs,
			 char *err, size_t errlen)
{
	char yerr[256];
	int line = 0;

	memset(docs, 0, sizeof(*docs));
	if (yamljson_load(buf, len, docs, yerr, sizeof(yerr)) == 0)
		return 0;
	if (sscanf(yerr, "line %d:", &line) == 1)
		snprintf(err, errlen, "%s:%d:%s", name, line, strchr(yerr, ':') + 1);
	else
		snprintf(err, errlen, "%s: %s", name, yerr);
	return -1;
}

int manifest_each_object(const struct yaml_docs *docs, const char *name, manifest_object_fn fn,
			 void *arg, char *err, size_t errlen)
{
	int rc = 0;

	err[0] = '\0';
	for (size_t i = 0; i < docs->n && rc == 0; i++) {
		if (cJSON_IsNull(docs->docs[i].root))
			continue; /* kubectl skips "null" documents */
		rc = emit_object(docs->docs[i].root, name, docs->docs[i].line, docs, fn, arg, err,
				 errlen);
	}
	return rc;
}

int manifest_read_buffer(const char *name, const char *buf, size_t len, manifest_object_fn fn,
			 void *arg, char *err, size_t errlen)
{
	struct yaml_docs docs;
	int rc;

	if (manifest_load_buffer(name, buf, len, &docs, err, errlen) < 0)
		return -1;
	rc = manifest_each_object(&docs, name, fn, arg, err, errlen);
	yamljson_free(&docs);
	return rc;
}

struct tree_ctx {
	manifest_object_fn fn;
	void *arg;
	char *err;
	size_t errlen;
};

static int read_one(const char *path, void *arg)
{
	struct tree_ctx *t = arg;
	size_t len = 0;
	char *buf = manifest_slurp(path, MANIFEST_MAX_FILE_BYTES, &len, t->err, t->errlen);
	int rc;

	if (!buf)
		return -1;
	rc = manifest_read_buffer(strcmp(path, "-") == 0 ? "<stdin>" : path, buf, len, t->fn,
				  t->arg, t->err, t->errlen);
	free(buf);
	return rc;
}

int manifest_read_tree(const char *path, manifest_object_fn fn, void *arg, char *err,
		       size_t errlen)
{
	struct tree_ctx t = { fn, arg, err, errlen };

	return manifest_walk(path, read_one, &t, err, errlen);
}
