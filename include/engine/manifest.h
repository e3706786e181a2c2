#ifndef ROLLGATE_MANIFEST_H
#define ROLLGATE_MANIFEST_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * Reading Kubernetes manifests from files and directories: YAML and JSON,
 * multi-document streams, List kinds expanded. Directories are walked
 * recursively in name order, taking .yaml, .yml and .json files and skipping
 * dot-entries (kubelet's "..data" links of a mounted ConfigMap included).
 */

#define MANIFEST_MAX_FILE_BYTES (64u << 20)
#define MANIFEST_MAX_DIR_ENTRIES 100000 /* per directory walked */
#define MANIFEST_MAX_DIR_DEPTH 32

/* Called for every file path a walk takes; non-zero stops the walk. */
typedef int (*manifest_file_fn)(const char *path, void *arg);
/* Called for every object; file and 1-based line say where it starts. The
 * object may be changed in place (stamp does). */
typedef int (*manifest_object_fn)(cJSON *obj, const char *file, int line, void *arg);

struct yaml_docs;

/* Walks path (a file, or a directory recursively, in name order, at most
 * MANIFEST_MAX_DIR_DEPTH levels and MANIFEST_MAX_DIR_ENTRIES entries per
 * directory). Errors: "PATH: why". */
int manifest_walk(const char *path, manifest_file_fn fn, void *arg, char *err, size_t errlen);

/* Reads every object under path. Errors: "FILE:LINE: problem". */
int manifest_read_tree(const char *path, manifest_object_fn fn, void *arg, char *err, size_t errlen);

/* Parses one buffer into docs; errors are "NAME:LINE: problem". */
int manifest_load_buffer(const char *name, const char *buf, size_t len, struct yaml_docs *docs,
			 char *err, size_t errlen);

/* Calls fn for every object of docs, List items one by one. */
int manifest_each_object(const struct yaml_docs *docs, const char *name, manifest_object_fn fn,
			 void *arg, char *err, size_t errlen);

/* Reads one buffer (name for messages). */
int manifest_read_buffer(const char *name, const char *buf, size_t len, manifest_object_fn fn,
			 void *arg, char *err, size_t errlen);

/* Reads a whole file into a NUL-terminated malloc'd buffer of *len bytes
 * that the caller frees. At most max bytes (max > 0); a longer file is an
 * error, never truncated. "-" reads stdin. Errors: "PATH: why" ("PATH:
 * larger than MAX bytes", "PATH: out of memory", "PATH: read error", or
 * the system's reason for open). */
char *manifest_slurp(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* manifest_slurp for keys and tokens: every copy made on the way (read
 * chunks, outgrown buffers) is wiped; the caller wipes the result before
 * freeing it. */
char *manifest_slurp_secret(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
