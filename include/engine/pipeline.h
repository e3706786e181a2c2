#ifndef ROLLGATE_PIPELINE_H
#define ROLLGATE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "engine.h"
#include "refs.h"
#include "rules.h"
#include "yamljson.h"

/*
 * The webhook's engine applied to manifests: every object becomes the
 * AdmissionReview the API server would send for its CREATE, and goes
 * through the same decoder, rules, hash and patch code as in the cluster.
 */

struct mfile {
	char *name;
	struct yaml_docs docs;
};

struct pobj {
	cJSON *obj;       /* inside its file's docs; stamp changes it in place */
	const char *file; /* borrowed from mfile */
	int line;
	size_t doc;     /* index of its document within the file */
	char *unusable; /* malloc'd: why lookups cannot use this ConfigMap or
			   * Secret (set by pipeline_add_objects), else NULL */
};

struct mset {
	struct mfile *files;
	size_t n_files, cap_files;
	struct pobj *objs;
	size_t n_objs, cap_objs;
	size_t n_skipped; /* kustomization files passed over in directory walks */
};

/* Reads every PATH (file, directory, "-" for stdin) into m, which starts
 * zeroed and is released with mset_clear whatever the outcome. Directories are
 * walked recursively (.yaml, .yml, .json) passing over kustomize's
 * kustomization files. Errors: "FILE:LINE: why". */
int mset_load_paths(struct mset *m, char *const *paths, int n, char *err, size_t errlen);
/* Adds one in-memory stream (name for messages). */
int mset_load_buffer(struct mset *m, const char *name, const char *buf, size_t len, char *err,
		     size_t errlen);
/* Releases what m holds and zeroes it (m itself is the caller's). */
void mset_clear(struct mset *m);

/* True when kustomize has yet to append a hash suffix to obj's name (it does
 * so after every function and exec plugin has run). */
bool pipeline_renamed_later(const cJSON *obj);

/* Makes the set's ConfigMaps, Secrets and Deployments known to e's source.
 * An object the source refuses (a ConfigMap value that is not a string, a
 * Secret whose data is not base64, as in a SOPS-encrypted file) is not an
 * error: it is left out and its pobj.unusable says why. With
 * PIPELINE_DEFER_SUFFIXED, ConfigMaps and Secrets that kustomize will still
 * rename are left out the same way. Returns 0, or -1 with err on OOM. */
#define PIPELINE_DEFER_SUFFIXED 1
int pipeline_add_objects(struct engine *e, struct mset *m, int flags, char *err, size_t errlen);

/* The CREATE AdmissionReview for obj by an ordinary user, decoded. obj is
 * referenced, not copied: it must outlive req. */
int pipeline_request(const cJSON *obj, struct admission_request *req, char *err, size_t errlen);

/* Runs the policy rules on obj, resolving a Flagger target through e. */
int pipeline_check(struct engine *e, const cJSON *obj, struct verdict *v, char *err, size_t errlen);
/* The same; *target says how the Flagger target's lookup went (LOOKUP_NONE:
 * none was made). */
int pipeline_check_target(struct engine *e, const cJSON *obj, struct verdict *v,
			  enum lookup_status *target, char *err, size_t errlen);

/* The lines of rules_warnings(v) that are not a violation's own message:
 * the notes, and the counts of violations past RULES_MAX_PER_RULE, worded as
 * the webhook words them (the pipeline commands list each violation
 * themselves). *out is the caller's to rules_lines_clear. Returns 0 or -1 on
 * OOM. */
int pipeline_notes(const struct verdict *v, struct rules_lines *out);

/* The ConfigMaps and Secrets whose values stamping obj would hash (the
 * webhook's opt-in and kind rules applied); empty when obj is not stamped.
 * *out is the caller's to refs_clear, whatever the outcome. */
int pipeline_stamp_refs(struct engine *e, const cJSON *obj, struct refset *out, char *err,
			size_t errlen);

/* The object of m that obj's stamp needs but lookups cannot use (see
 * pipeline_add_objects), or NULL: the hash cannot be known, so the caller
 * leaves obj unstamped, as the webhook does when a lookup fails. */
int pipeline_stamp_blocker(struct engine *e, const struct mset *m, const cJSON *obj,
			   const struct pobj **out, char *err, size_t errlen);

/* Stamps obj in place when it is an opted-in workload; resp gets the
 * warnings the webhook would give. */
int pipeline_stamp(struct engine *e, cJSON *obj, struct admission_response *resp, char *err,
		   size_t errlen);

#endif
