/*
 * Manifest files to objects. Each object is handed to a callback with its
 * file and line, so every consumer (file object source, check, stamp)
 * reports problems the same way.
 */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "array.h"
#include "dynbuf.h"
#include "jsonutil.h"
#include "yamljson.h"

#define LIST_MAX_ITEMS 100000

/* Reads ask for at least this much; the buffer doubles as it fills, so a
 * pipe takes a logarithmic number of reads and copies. */
#define SLURP_MIN_READ 65536

/* "PATH: the system's reason" for errno, read thread-safely (the GNU
 * strerror_r, which returns the text). */
static void path_error(const char *path, char *err, size_t errlen)
{
	char why[128];

	snprintf(err, errlen, "%s: %s", path, strerror_r(errno, why, sizeof(why)));
}

/* Reads f to its end into b, straight into the buffer, asking first for
 * hint bytes (a regular file's size: one allocation and one read); one
 * byte past max is enough to know the file is too big. 0, or -1 with err. */
static int read_all(FILE *f, const char *path, size_t max, size_t hint, struct dynbuf *b, char *err,
		    size_t errlen)
{
	size_t want = hint ? hint : SLURP_MIN_READ, avail, r;
	char *room, probe;

	do {
		if (want > max - dynbuf_len(b))
			want = max - dynbuf_len(b);
		if (want == 0) {
			if (fread(&probe, 1, 1, f) == 0)
				break;
			snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
			return -1;
		}
		room = dynbuf_room(b, want, &avail);
		if (!room) {
			snprintf(err, errlen, "%s: out of memory", path);
			return -1;
		}
		r = fread(room, 1, avail, f);
		dynbuf_commit(b, r);
		want = SLURP_MIN_READ;
	} while (r == avail);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		return -1;
	}
	return 0;
}

/* The size of a regular file plus the byte that shows whether it grew, or
 * 0 when unknown (pipes, terminals). */
static size_t size_hint(FILE *f)
{
	struct stat st;

	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
		return 0;
	return (size_t)st.st_size + 1;
}

static char *slurp(const char *path, size_t max, bool sensitive, size_t *len, char *err, size_t errlen)
{
	bool is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	struct dynbuf b;
	char *out = NULL;
	size_t hint;

	if (!f) {
		path_error(path, err, errlen);
		return NULL;
	}
	dynbuf_init(&b, max);
	if (sensitive) {
		dynbuf_set_sensitive(&b);
		setvbuf(f, NULL, _IONBF, 0); /* no stdio buffer left holding bytes */
	}
	hint = size_hint(f);
	if (hint && hint - 1 > max) /* a regular file already too big: not read */
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
	else if (read_all(f, path, max, hint, &b, err, errlen) == 0) {
		out = dynbuf_take(&b, len);
		if (!out)
			snprintf(err, errlen, "%s: out of memory", path);
	}
	dynbuf_clear(&b);
	if (!is_stdin)
		fclose(f);
	return out;
}

char *manifest_slurp(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	return slurp(path, max, false, len, err, errlen);
}

char *manifest_slurp_secret(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	return slurp(path, max, true, len, err, errlen);
}

static bool has_manifest_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot &&
		(strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 || strcmp(dot, ".json") == 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *path, int depth, bool top, manifest_file_fn fn, void *arg, char *err,
		size_t errlen);

/* Reads the names of a directory (without dot-entries) into *names, at
 * most MANIFEST_MAX_DIR_ENTRIES. 0, or -1 with err; *names and *n are the
 * caller's to free either way. */
static int list_dir(const char *path, char ***names, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t cap = 0;
	int rc = 0;

	if (!d) {
		path_error(path, err, errlen);
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		rc = array_grow(names, &cap, *n + 1, sizeof(**names), MANIFEST_MAX_DIR_ENTRIES);
		if (rc == 0) {
			(*names)[*n] = strdup(e->d_name);
			rc = (*names)[*n] ? 0 : ARRAY_E_NOMEM;
		}
		if (rc == 0)
			(*n)++;
	}
	closedir(d);
	if (rc == ARRAY_E_FULL)
		snprintf(err, errlen, "%s: more than %d entries", path, MANIFEST_MAX_DIR_ENTRIES);
	else if (rc < 0)
		snprintf(err, errlen, "%s: out of memory", path);
	return rc < 0 ? -1 : 0;
}

/* Directory entries in name order, so results never depend on the FS. */
static int walk_dir(const char *path, int depth, manifest_file_fn fn, void *arg, char *err,
		    size_t errlen)
{
	char **names = NULL;
	size_t n = 0;
	int rc = list_dir(path, &names, &n, err, errlen);

	if (n)
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

static int walk(const char *path, int depth, bool top, manifest_file_fn fn, void *arg, char *err,
		size_t errlen)
{
	struct stat st;

	if (depth > MANIFEST_MAX_DIR_DEPTH) {
		snprintf(err, errlen, "%s: directories nested too deep", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		path_error(path, err, errlen);
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
				snprintf(err, errlen, "%s:%d: List with more than %d items", file,
					 line, LIST_MAX_ITEMS);
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
	char yerr[256], *end = NULL;
	long line = -1;

	memset(docs, 0, sizeof(*docs));
	if (yamljson_load(buf, len, docs, yerr, sizeof(yerr)) == 0)
		return 0;
	/* "line N: problem" becomes "NAME:N: problem". */
	if (strncmp(yerr, "line ", 5) == 0 && yerr[5] >= '0' && yerr[5] <= '9') {
		errno = 0;
		line = strtol(yerr + 5, &end, 10);
		if (errno || *end != ':' || line > INT_MAX)
			line = -1;
	}
	if (line >= 0)
		snprintf(err, errlen, "%s:%ld:%s", name, line, end + 1);
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
	yamljson_clear(&docs);
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
	rc = manifest_read_buffer(strcmp(path, "-") == 0 ? "<stdin>" : path, buf, len, t->fn, t->arg,
				  t->err, t->errlen);
	free(buf);
	return rc;
}

int manifest_read_tree(const char *path, manifest_object_fn fn, void *arg, char *err, size_t errlen)
{
	struct tree_ctx t = { fn, arg, err, errlen };

	return manifest_walk(path, read_one, &t, err, errlen);
}
