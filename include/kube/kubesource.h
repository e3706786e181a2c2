#ifndef ROLLGATE_KUBESOURCE_H
#define ROLLGATE_KUBESOURCE_H

#include <stddef.h>

#include "kubeclient.h"
#include "objsource.h"

/*
 * The Kubernetes API object source: GETs ConfigMaps, Secrets and Deployments
 * through kubeclient from one worker thread (a kube_loop), so lookups of a
 * review run in parallel, reuse connections (at most 8), share one time
 * budget, and never block a serving thread. A 404 NotFound Status naming
 * the object means absent; anything else that is not a 200 with that object
 * is a failed lookup, and its reason is logged.
 *
 * Credentials (kubeconn): the kubeconfig at kubeconfig when not NULL, else
 * the in-cluster service account. NULL with err (naming the file) when they
 * cannot be read.
 */
struct objsource *kubesource_new(const char *kubeconfig, char *err, size_t errlen);

#endif
