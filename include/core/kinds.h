#ifndef ROLLGATE_KINDS_H
#define ROLLGATE_KINDS_H

#include <stdbool.h>
#include <cjson/cJSON.h>

/*
 * The Kubernetes kinds rollgate knows, in one table (src/core/kinds.c):
 * their API names and what rollgate does with each. Modules look kinds up
 * here instead of spelling group, kind and resource names themselves.
 * Pure: constant data and lookups; every pointer returned points into the
 * table and lives as long as the program.
 */

enum kind_id {
	KIND_DEPLOYMENT,
	KIND_STATEFULSET,
	KIND_DAEMONSET,
	KIND_REPLICASET,
	KIND_ROLLOUT,        /* Argo Rollouts */
	KIND_FLAGGER_CANARY, /* Flagger */
	KIND_CONFIGMAP,
	KIND_SECRET,
	KIND_COUNT
};

/* Where a kind's pod template lives. */
enum kind_template {
	KIND_TEMPLATE_NONE, /* it has none */
	KIND_TEMPLATE_SPEC, /* spec.template */
};

/* What rollgate does with a kind (struct kind.flags). */
#define KIND_STAMPED 0x01          /* /mutate stamps the config hash on its pod template (opted in) */
#define KIND_JUDGED 0x02           /* /validate judges it (docs/rules.md, "What is judged") */
#define KIND_TEMPLATE_JUDGED 0x04  /* the pod template rules judge its template */
#define KIND_OWNS_REPLICASETS 0x08 /* its controller rolls out through ReplicaSets it owns */
#define KIND_CONFIG 0x10           /* ConfigMap or Secret: its values enter the config hash */
#define KIND_CUSTOM 0x20           /* a custom resource: served only where its CRD is installed */

struct kind {
	enum kind_id id;
	const char *group;       /* API group; "" for the core group */
	const char *version;     /* the version rollgate reads and writes */
	const char *kind;        /* "Deployment" */
	const char *resource;    /* plural, as in API paths and RBAC: "deployments" */
	const char *singular;    /* kubectl's singular name: "deployment" */
	const char *api_version; /* "apps/v1"; "v1" for the core group */
	const char *api_path;    /* "/apis/apps/v1"; "/api/v1" for the core group */
	enum kind_template template;
	unsigned flags; /* KIND_* above */
};

/* The entry of id; NULL past the table. */
const struct kind *kinds_get(enum kind_id id);

/* The kind of group ("" for core) named kind, whatever its version, as
 * kube-apiserver's request.kind names it; NULL when rollgate does not know
 * it. Either argument may be NULL (no match). */
const struct kind *kinds_by_group_kind(const char *group, const char *kind);

/* The same from an object's apiVersion ("apps/v1", "v1"): the group is
 * what comes before the '/', the core group when there is none. Callers
 * that need the version rollgate reads compare api_version themselves. */
const struct kind *kinds_by_kind(const char *api_version, const char *kind);

/* True when k is not NULL and carries every flag of flags. */
bool kinds_has(const struct kind *k, unsigned flags);

/* The pod template of obj, an object of kind k, where k keeps it, when it
 * is a mapping; NULL otherwise (no template, or one of the wrong shape).
 * Borrowed from obj. */
const cJSON *kinds_template(const struct kind *k, const cJSON *obj);

#endif
