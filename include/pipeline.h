#ifndef ROLLGATE_PIPELINE_H
#define ROLLGATE_PIPELINE_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "cliutil.h"
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
	size_t doc;       /* index of its document within the file */
};

struct mset {
	struct mfile *files;
	size_t n_files;
	struct pobj *objs;
	size_t n_objs;
	size_t n_skipped; /* kustomization files passed over in directory walks */
};

/* Reads every PATH (file, directory, "-" for stdin) into m, which starts
 * zeroed and is released with mset_free whatever the outcome. Directories are
 * walked recursively (.yaml, .yml, .json) passing over kustomize's
 * kustomization files. Errors: "FILE:LINE: why". */
int mset_load_paths(struct mset *m, char *const *paths, int n, char *err, size_t errlen);
/* Adds one in-memory stream (name for messages). */
int mset_load_buffer(struct mset *m, const char *name, const char *buf, size_t len, char *err,
		     size_t errlen);
void mset_free(struct mset *m);

/* Makes the set's ConfigMaps, Secrets and Deployments known to e's source. */
int pipeline_add_objects(struct engine *e, const struct mset *m, char *err, size_t errlen);

/* The CREATE AdmissionReview for obj by an ordinary user, decoded. obj is
 * referenced, not copied: it must outlive req. */
int pipeline_request(const cJSON *obj, struct admission_request *req, char *err, size_t errlen);

/* Runs the policy rules on obj, resolving a Flagger target through e. */
int pipeline_check(struct engine *e, const cJSON *obj, struct verdict *v, char *err,
		   size_t errlen);

/* The ConfigMaps and Secrets whose values stamping obj would hash (the
 * webhook's opt-in and kind rules applied); empty when obj is not stamped.
 * *out is the caller's to refs_free, whatever the outcome. */
int pipeline_stamp_refs(struct engine *e, const cJSON *obj, struct refset *out, char *err,
			size_t errlen);

/* Stamps obj in place when it is an opted-in workload; resp gets the
 * warnings the webhook would give. */
int pipeline_stamp(struct engine *e, cJSON *obj, struct admission_response *resp, char *err,
		   size_t errlen);

#endif
