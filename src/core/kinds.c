/*
 * The Kubernetes kinds rollgate knows: one row per kind, read by the
 * webhook's rules and stamping, the CLI's synthetic reviews and cluster
 * lists, and the API object source. A new kind is a new row (and an enum
 * value). Pure.
 */
#include "kinds.h"

#include <string.h>

#include "jsonutil.h"

/* Each row at its kind's index, naming that index. */
#define KIND(id_, ...) [id_] = { .id = id_, __VA_ARGS__ }
#define APPS .group = "apps", .version = "v1", .api_version = "apps/v1", .api_path = "/apis/apps/v1"
#define CORE .group = "", .version = "v1", .api_version = "v1", .api_path = "/api/v1"

static const struct kind kinds[KIND_COUNT] = {
	KIND(KIND_DEPLOYMENT, APPS, .kind = "Deployment", .resource = "deployments",
	     .singular = "deployment", .template = KIND_TEMPLATE_SPEC,
	     .flags = KIND_STAMPED | KIND_JUDGED | KIND_TEMPLATE_JUDGED | KIND_OWNS_REPLICASETS),
	KIND(KIND_STATEFULSET, APPS, .kind = "StatefulSet", .resource = "statefulsets",
	     .singular = "statefulset", .template = KIND_TEMPLATE_SPEC,
	     .flags = KIND_STAMPED | KIND_JUDGED | KIND_TEMPLATE_JUDGED),
	KIND(KIND_DAEMONSET, APPS, .kind = "DaemonSet", .resource = "daemonsets",
	     .singular = "daemonset", .template = KIND_TEMPLATE_SPEC,
	     .flags = KIND_STAMPED | KIND_JUDGED | KIND_TEMPLATE_JUDGED),
	/* Judged for direct edits only: its template is its owner's. */
	KIND(KIND_REPLICASET, APPS, .kind = "ReplicaSet", .resource = "replicasets",
	     .singular = "replicaset", .template = KIND_TEMPLATE_SPEC, .flags = KIND_JUDGED),
	/* A Rollout with a workloadRef has no template of its own. */
	KIND(KIND_ROLLOUT, .group = "argoproj.io", .version = "v1alpha1",
	     .api_version = "argoproj.io/v1alpha1", .api_path = "/apis/argoproj.io/v1alpha1",
	     .kind = "Rollout", .resource = "rollouts", .singular = "rollout",
	     .template = KIND_TEMPLATE_SPEC,
	     .flags = KIND_STAMPED | KIND_JUDGED | KIND_TEMPLATE_JUDGED | KIND_OWNS_REPLICASETS |
		     KIND_CUSTOM),
	/* Judged through its target Deployment's template. */
	KIND(KIND_FLAGGER_CANARY, .group = "flagger.app", .version = "v1beta1",
	     .api_version = "flagger.app/v1beta1", .api_path = "/apis/flagger.app/v1beta1",
	     .kind = "Canary", .resource = "canaries", .singular = "canary",
	     .template = KIND_TEMPLATE_NONE, .flags = KIND_JUDGED | KIND_CUSTOM),
	KIND(KIND_CONFIGMAP, CORE, .kind = "ConfigMap", .resource = "configmaps",
	     .singular = "configmap", .template = KIND_TEMPLATE_NONE, .flags = KIND_CONFIG),
	KIND(KIND_SECRET, CORE, .kind = "Secret", .resource = "secrets", .singular = "secret",
	     .template = KIND_TEMPLATE_NONE, .flags = KIND_CONFIG),
};

const struct kind *kinds_get(enum kind_id id)
{
	return (unsigned)id < KIND_COUNT ? &kinds[id] : NULL;
}

static const struct kind *find(const char *group, size_t glen, const char *kind)
{
	if (!group || !kind)
		return NULL;
	for (size_t i = 0; i < KIND_COUNT; i++) {
		const struct kind *k = &kinds[i];
		if (strcmp(k->kind, kind) == 0 && strlen(k->group) == glen &&
		    strncmp(k->group, group, glen) == 0)
			return k;
	}
	return NULL;
}

const struct kind *kinds_by_group_kind(const char *group, const char *kind)
{
	return find(group, group ? strlen(group) : 0, kind);
}

const struct kind *kinds_by_kind(const char *api_version, const char *kind)
{
	const char *slash = api_version ? strchr(api_version, '/') : NULL;

	return find(api_version, slash ? (size_t)(slash - api_version) : 0, kind);
}

bool kinds_has(const struct kind *k, unsigned flags)
{
	return k && (k->flags & flags) == flags;
}

const cJSON *kinds_template(const struct kind *k, const cJSON *obj)
{
	const cJSON *t;

	if (!k || k->template != KIND_TEMPLATE_SPEC)
		return NULL;
	t = json_get_path(obj, "spec", "template", NULL);
	return cJSON_IsObject(t) ? t : NULL;
}
