#ifndef ROLLGATE_PATCH_H
#define ROLLGATE_PATCH_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * JSON Patch (RFC 6902) building for the pod-template annotation. Pure.
 *
 * Sets (value != NULL) or removes (value == NULL) annotation `key` under
 * /spec/template/metadata/annotations of workload. Adds the whole metadata or
 * annotations map when missing, escapes the key ('~' as ~0, '/' as ~1), and
 * produces no patch when nothing would change. On success returns 0 and sets
 * *out to a malloc'd JSON array text, or to NULL when no patch is needed.
 * Returns -1 when the workload has no /spec/template object to patch, when
 * its metadata or annotations is neither absent, null nor an object (the
 * caller refuses to patch), for a NULL key, or on OOM; *out is then NULL.
 * A JSON null metadata or annotations counts as absent ("add" replaces it).
 */
int patch_template_annotation(const cJSON *workload, const char *key, const char *value, char **out);

/* patch_template_annotation for the metadata of holder, the object at
 * JSON pointer path ("" for the workload itself, "/spec/template"). */
int patch_annotation(const cJSON *holder, const char *path, const char *key, const char *value,
		     char **out);

/* Sets (value != NULL) or removes (NULL) the string member of the pod
 * template's spec (/spec/template/spec/<member>); no patch when nothing
 * would change. -1 when there is no template spec object, or on OOM. */
int patch_template_spec_string(const cJSON *workload, const char *member, const char *value,
			       char **out);

/* Appends the ops of the JSON Patch array text ops (taken, freed) to *acc
 * (a malloc'd array text, or NULL: ops becomes it). ops may be NULL (no
 * change). 0, or -1 on OOM (ops freed, *acc unchanged). */
int patch_append(char **acc, char *ops);

/* Returns the RFC 6901 escaped form of s ('~' as ~0, '/' as ~1) as a
 * malloc'd string the caller frees; NULL for NULL or on OOM. */
char *patch_escape_pointer(const char *s);

/*
 * Applies a JSON Patch text to doc in place: "add", "replace" and "remove"
 * on object members, the operations patch_template_annotation produces.
 * Every parent must exist and be an object. Returns 0, or -1 with err.
 */
int patch_apply(cJSON *doc, const char *patch, char *err, size_t errlen);

#endif
