#ifndef ROLLGATE_KUBELIST_H
#define ROLLGATE_KUBELIST_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "kubeclient.h"

/*
 * One collection listed page by page with blocking requests
 * (kube_client_request), for users that read a collection once rather than
 * watch it (`rollgate check --cluster`, the report controller's read-back):
 *
 * - pages of at most limit objects (limit/continue); each reply is capped
 *   at KUBE_REPLY_MAX, and a page past the cap is asked for again at half
 *   the size (down to one object);
 * - every request within timeout_ms;
 * - 404 on the first page is KUBE_LIST_ABSENT (a CRD that is not
 *   installed), not an error;
 * - 410 Expired on a continued page (the snapshot the token named was
 *   compacted) starts the list over, at most max_restarts times: the
 *   callback then sees objects again, and must tell them apart itself.
 */
struct kube_list_opts {
	const char *path;           /* the collection, e.g. /apis/apps/v1/deployments */
	const char *label_selector; /* NULL: every object */
	unsigned limit;             /* objects per page */
	unsigned timeout_ms;        /* per request */
	unsigned max_restarts;      /* after 410 Expired */
};

enum kube_list_result { KUBE_LIST_OK, KUBE_LIST_ABSENT, KUBE_LIST_FAILED };

/* Called with each page, parsed (the callee may detach items; the tree is
 * deleted after the call). Returns 0, or -1 with err to stop the list. */
typedef int (*kube_list_page_fn)(void *arg, cJSON *page, char *err, size_t errlen);

/* Lists o->path; err says why on KUBE_LIST_FAILED ("list PATH: why"). */
enum kube_list_result kube_list(struct kube_client *c, const struct kube_list_opts *o,
				kube_list_page_fn fn, void *arg, char *err, size_t errlen);

#endif
