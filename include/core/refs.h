#ifndef ROLLGATE_REFS_H
#define ROLLGATE_REFS_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * The ConfigMaps and Secrets a pod template uses, with per-key precision.
 * Pure: reads a pod spec tree, builds a value.
 */

struct kind; /* kinds.h */

enum obj_kind { OBJ_CONFIGMAP = 0, OBJ_SECRET = 1 };

/* One referenced object: the union of every reference to (kind, name). */
struct ref {
	enum obj_kind kind;
	char *name;       /* the object's name; for an object of another namespace
	                   * (Wave's extra lists) "namespace/name", which sorts and
	                   * hashes as one name (names never hold a '/') */
	char *namespace_; /* that other namespace, else NULL (the workload's) */
	bool whole;       /* some reference takes the whole object */
	char **keys;      /* selected keys when !whole, sorted bytewise, unique */
	size_t n_keys;
	bool optional;   /* every reference is optional: true */
	bool need_match; /* joins the hash only when the object carries
	                  * reloader.stakater.com/match: "true" (the workload
	                  * has reloader.stakater.com/search and nothing else
	                  * selects this object) */
	char *user;      /* who uses it first, for messages: container "web", volume "cfg",
	                 * or annotation "configmap.reloader.stakater.com/reload" */
	size_t cap_keys; /* room in keys; 0 when keys was allocated to n_keys exactly */
};

struct refset {
	struct ref *refs; /* sorted by kind then name after refs_finish */
	size_t n;
	size_t cap; /* room in refs; 0 when refs was allocated to n exactly */
};

/*
 * Collects references from a pod spec (containers, initContainers,
 * ephemeralContainers, volumes incl. projected). imagePullSecrets and
 * service-account tokens do not count. Returns 0, or -1 with err on OOM or a
 * pod spec of the wrong shape.
 *
 * set starts zeroed ({0}) or holds earlier references, which are merged
 * with; every string and array in it is malloc'd and owned by the set, and
 * the caller releases it with refs_clear whether this succeeds or not. The
 * set stays sorted (see refs_finish) while it is built.
 * References with a missing or empty name, and key selectors without a key,
 * are skipped (kube-apiserver rejects them). A field of the wrong type, or a
 * name, key or container/volume name with a control character, fails with
 * err naming the field, e.g. "spec.template.spec.containers[1].env[0]
 * .valueFrom.configMapKeyRef.name: expected a string". Limits: 4096 objects,
 * 4096 selected keys per object.
 */
int refs_collect(const cJSON *podspec, struct refset *set, char *err, size_t errlen);
/* refs_collect for a pod spec found elsewhere than spec.template.spec; path
 * prefixes field paths in err (e.g. "spec.jobTemplate.spec.template.spec"). */
int refs_collect_at(const cJSON *podspec, const char *path, struct refset *set, char *err,
		    size_t errlen);

/* Adds every name of a comma-separated list ("a, b") as a whole-object
 * reference of kind; user names the annotation. Empty items are skipped.
 * Such references are not optional. Returns 0, or -1 on OOM, past 4096
 * objects or for a name with a control character. */
int refs_add_list(struct refset *set, enum obj_kind kind, const char *csv, const char *user);

/* Adds "name" or "namespace/name" (an object of another namespace than
 * own_ns; own_ns/name is the plain name) as a whole-object reference, as
 * refs_add_list. Returns 0, or -1 on OOM, past 4096 objects, or for a
 * name or namespace that is empty or holds a control character or '/'. */
int refs_add_qualified(struct refset *set, enum obj_kind kind, const char *qualified,
		       const char *own_ns, const char *user);

/* The object's name within its namespace (after the '/' of a qualified
 * name). */
const char *refs_object_name(const struct ref *r);

/* Deep-copies in into out (zeroed first); 0, or -1 on OOM with out cleared. */
int refs_copy(const struct refset *in, struct refset *out);

/* Sorts references by kind (ConfigMap first) then name, bytewise. */
void refs_finish(struct refset *set);

/* Frees everything the set owns and zeroes it; accepts NULL. */
void refs_clear(struct refset *set);

/* The row of the kinds table (kinds.h) of kind. */
const struct kind *refs_kind(enum obj_kind kind);
const char *refs_kind_name(enum obj_kind kind); /* its kind: "ConfigMap" / "Secret" */

#endif
