#ifndef ROLLGATE_KUBE_H
#define ROLLGATE_KUBE_H

#include <stddef.h>

#include "kubeclient.h"
#include "objsource.h"

/*
 * The Kubernetes API object source: GETs ConfigMaps, Secrets and Deployments
 * with libcurl from one worker thread (curl multi), so lookups of a review
 * run in parallel, reuse connections, share one time budget, and never block
 * a serving thread. A 404 NotFound Status naming the object means absent;
 * anything else that is not a 200 with that object is a failed lookup, and
 * its reason is logged.
 *
 * Credentials: the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT,
 * token re-read as it rotates, CA), or a kubeconfig's current context (token,
 * or client certificate and key; CA data or file).
 */
struct objsource *kube_source_new(const char *kubeconfig, char *err, size_t errlen);

#endif
