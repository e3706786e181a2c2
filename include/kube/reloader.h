#ifndef ROLLGATE_RELOADER_H
#define ROLLGATE_RELOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "kubeclient.h"
#include "lease.h"
#include "objcache.h"
#include "objsource.h"

/*
 * The reload controller: rolls a workload out when a ConfigMap or Secret it
 * uses changes, by setting its config-hash annotation (on the pod template,
 * or on the Rollout for Reloader's restart strategy) with one JSON merge
 * PATCH (fieldManager=rollgate) that also records the cause and, where
 * asked, pauses the Deployment (pause-period) or sets spec.restartAt.
 * Resumes and scheduling-hold releases are JSON Patches that test first.
 *
 * It lists and watches Deployments, StatefulSets, DaemonSets and Argo
 * Rollouts (a 404 on the Rollout list disables that watch), keeps of each
 * opted-in workload only its reference set (mutate_plan) and the hash it
 * carries, and indexes which workloads use which object. When the cache
 * reports a change in a key a workload selects (or an object appearing or
 * going away), the workload is due after the coalescing window; then its
 * hash is computed the way the webhook computes it (mutate_finish over the
 * same object source) and, if it differs from the stamped one, patched
 * (in namespaces reload.namespaceSelector matches),
 * within a token bucket (reload.rate, reload.burst), followed by a Normal
 * Event "ConfigChanged" naming the object that triggered it.
 *
 * No rollout without a real difference: after the first sync, and each
 * time this replica becomes leader, every workload is compared once and
 * only differing hashes are patched; a workload without the annotation
 * (never stamped) is left to the webhook. Only the lease holder patches.
 */
struct reloader;

/*
 * client, cache, src (the cached object source the webhook uses) and lease
 * (NULL: always leader) are borrowed; cfg (a heap config) is taken. The
 * workload watches cover cfg->watch_namespaces (empty: the cluster).
 * Returns NULL with err.
 */
struct reloader *reloader_new(struct kube_client *client, struct objcache *cache,
			      struct objsource *src, struct lease *lease, struct config *cfg,
			      char *err, size_t errlen);
/* Starts the workload watches and the controller thread. 0 or -1 with err. */
int reloader_start(struct reloader *r, char *err, size_t errlen);
/* Takes cfg for every later decision (opt-in, hash, rate, window). Every
 * workload is re-read; the change rolls nothing out by itself. */
void reloader_set_config(struct reloader *r, struct config *cfg);
/* True once every workload watch has listed (or been disabled). */
bool reloader_synced(struct reloader *r);
/* Stops watching and patching; no patch starts after it returns. NULL ok. */
void reloader_stop(struct reloader *r);
/* Stops and frees; NULL ok. */
void reloader_free(struct reloader *r);

#endif
