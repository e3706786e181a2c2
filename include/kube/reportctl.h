#ifndef ROLLGATE_REPORTCTL_H
#define ROLLGATE_REPORTCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "kubeclient.h"
#include "lease.h"
#include "objsource.h"

/*
 * The report controller (reports.enabled): keeps one wgpolicyk8s.io/v1alpha2
 * PolicyReport per namespace current with what the rules say of the
 * workloads that exist (docs/reports.md).
 *
 * It lists and watches Deployments, StatefulSets, DaemonSets, Argo Rollouts
 * and Flagger Canaries (a 404 on an optional list disables that watch) and
 * evaluates each workload when it changes, with the code of `rollgate
 * check` (report_check). Of each workload it keeps its identity and its
 * results, never the object; of a Canary also its target and skip
 * annotation, since its result depends on the target Deployment, looked up
 * through the object source when either changes.
 *
 * Only the lease holder writes (the Lease of the reload controller: one
 * leader for both), each namespace's report at most once per
 * reports.interval, by server-side apply (fieldManager=rollgate,
 * force=true), and only when its results changed: on becoming leader it
 * reads back the digests of the reports in the cluster, so a restart or a
 * hand-over writes nothing new. Without the PolicyReport CRD it logs once,
 * counts, checks again every few minutes and writes nothing.
 */
struct reportctl;

/*
 * client, src (the webhook's object source, for Canary targets) and lease
 * (NULL: always leader) are borrowed; cfg (a heap config) is taken. The
 * watches cover cfg->watch_namespaces (empty: the cluster). Returns NULL
 * with err.
 */
struct reportctl *reportctl_new(struct kube_client *client, struct objsource *src, struct lease *lease,
				struct config *cfg, char *err, size_t errlen);
/* Starts the watches and the controller thread. 0 or -1 with err. */
int reportctl_start(struct reportctl *c, char *err, size_t errlen);
/* Takes cfg (modes, exemptions, interval); every workload is evaluated
 * again, and only the reports whose results change are written. */
void reportctl_set_config(struct reportctl *c, struct config *cfg);
/* True once every watch has listed (or been disabled). */
bool reportctl_synced(struct reportctl *c);
/* Stops watching and writing; no write starts after it returns. NULL ok. */
void reportctl_stop(struct reportctl *c);
/* Stops and frees; NULL ok. */
void reportctl_free(struct reportctl *c);

#endif
