/*
 * A collection listed page by page with blocking requests (see kubelist.h).
 */
#include "kubelist.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

enum page_outcome { PAGE_OK, PAGE_ABSENT, PAGE_EXPIRED, PAGE_SMALLER, PAGE_FAILED };

/* "?limit=N[&continue=T][&labelSelector=S]", escaped; -1 on OOM. */
static int page_query(const struct kube_list_opts *o, unsigned limit, const char *cont, char *out,
		      size_t len)
{
	char *c = cont ? kube_escape(cont) : NULL;
	char *s = o->label_selector ? kube_escape(o->label_selector) : NULL;
	int n = -1;

	if ((!cont || c) && (!o->label_selector || s))
		n = snprintf(out, len, "%s?limit=%u%s%s%s%s", o->path, limit, c ? "&continue=" : "",
			     c ? c : "", s ? "&labelSelector=" : "", s ? s : "");
	free(c);
	free(s);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* GETs one page into *page (parsed) and its continue token into *next. */
static enum page_outcome get_page(struct kube_client *c, const struct kube_list_opts *o,
				  unsigned limit, const char *cont, cJSON **page, char **next,
				  char *err, size_t errlen)
{
	char path[8192], why[300];
	struct kube_reply reply;
	enum page_outcome out = PAGE_FAILED;
	const char *t;

	*page = NULL;
	*next = NULL;
	if (page_query(o, limit, cont, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "list %s: out of memory", o->path);
		return PAGE_FAILED;
	}
	if (kube_client_request(c, "GET", path, NULL, NULL, o->timeout_ms, &reply, why, sizeof(why)) <
	    0) {
		if (strcmp(why, KUBE_ERR_TOO_LARGE) == 0 && limit > 1)
			return PAGE_SMALLER;
		snprintf(err, errlen, "list %s: %s", o->path, why);
		return PAGE_FAILED;
	}
	if (reply.status == 200) {
		if (json_parse_strict(reply.body ? reply.body : "", reply.len, page, why,
				      sizeof(why)) < 0) {
			snprintf(err, errlen, "list %s: malformed reply: %s", o->path, why);
		} else {
			t = json_get_string(json_get(*page, "metadata"), "continue");
			*next = t && *t ? strdup(t) : NULL;
			if (t && *t && !*next)
				snprintf(err, errlen, "list %s: out of memory", o->path);
			else
				out = PAGE_OK;
		}
	} else if (reply.status == 404 && !cont) {
		out = PAGE_ABSENT;
	} else if (reply.status == 410 && cont) {
		out = PAGE_EXPIRED;
	} else {
		kube_reply_describe(&reply, why, sizeof(why));
		snprintf(err, errlen, "list %s: %s", o->path, why);
	}
	kube_reply_clear(&reply);
	return out;
}

enum kube_list_result kube_list(struct kube_client *c, const struct kube_list_opts *o,
				kube_list_page_fn fn, void *arg, char *err, size_t errlen)
{
	unsigned limit = o->limit ? o->limit : 1, restarts = 0;
	enum kube_list_result rc = KUBE_LIST_FAILED;
	char *cont = NULL, *next = NULL;
	cJSON *page = NULL;

	for (;;) {
		switch (get_page(c, o, limit, cont, &page, &next, err, errlen)) {
		case PAGE_ABSENT:
			rc = KUBE_LIST_ABSENT;
			goto out;
		case PAGE_EXPIRED:
			/* The snapshot the token named is gone: list again. */
			if (++restarts > o->max_restarts) {
				snprintf(err, errlen, "list %s: continue token expired %u times",
					 o->path, restarts);
				goto out;
			}
			free(cont);
			cont = NULL;
			continue;
		case PAGE_SMALLER:
			limit /= 2;
			continue;
		case PAGE_FAILED:
			goto out;
		case PAGE_OK:
			break;
		}
		if (fn(arg, page, err, errlen) < 0)
			goto out;
		cJSON_Delete(page);
		page = NULL;
		free(cont);
		cont = next;
		next = NULL;
		if (!cont) {
			rc = KUBE_LIST_OK;
			goto out;
		}
	}
out:
	cJSON_Delete(page);
	free(cont);
	free(next);
	return rc;
}
