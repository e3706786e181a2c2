#ifndef ROLLGATE_CLUSTERCHECK_H
#define ROLLGATE_CLUSTERCHECK_H

#include <stddef.h>

#include "check.h"
#include "cliutil.h"

/*
 * `rollgate check --cluster`: the workloads of a running cluster through the
 * rules of `rollgate check`. Deployments, StatefulSets, DaemonSets,
 * ReplicaSets, Argo Rollouts and Flagger Canaries are listed through the
 * API (kubelist over kubeclient) in pages of CLUSTER_PAGE_LIMIT objects,
 * each reply capped at KUBE_REPLY_MAX (a page past it is asked for again at
 * half the size), each request within CLUSTER_REQUEST_TIMEOUT_MS. A CRD that is not
 * installed (404 on its list) is skipped with a note on stderr; an expired
 * continue token (410) restarts that list, objects already seen counted
 * once.
 *
 * What a snapshot cannot show is not judged: replicaset-direct-edit judges
 * changes to ReplicaSets, so ReplicaSets are counted and the rule is
 * reported as not judged. A Canary's target Deployment is looked up among
 * the Deployments listed.
 */

#define CLUSTER_PAGE_LIMIT 250
#define CLUSTER_REQUEST_TIMEOUT_MS 60000
#define CLUSTER_MAX_OBJECTS 1000000 /* per kind */
#define CLUSTER_MAX_RESTARTS 3      /* of one list after 410 Expired */

struct cluster_opts {
	const char *kubeconfig; /* NULL: $KUBECONFIG, in-cluster, then ~/.kube/config */
	const char *context;    /* NULL: the kubeconfig's current context */
	const char *namespace_; /* NULL: every namespace */
};

/* Lists and evaluates (e's config and rules; its in-memory source gets the
 * Canary targets) into r. Returns 0, or -1 with err (no usable credentials,
 * a list that failed). */
int clustercheck_run(struct engine *e, const struct cluster_opts *o, struct check_report *r, char *err,
		     size_t errlen);

#endif
