#ifndef ROLLGATE_LOOKUP_H
#define ROLLGATE_LOOKUP_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * The value types of object lookups, shared by the pure core (mutate,
 * rules) and the object sources that answer them (objsource.h): what is
 * asked for, and what came back. No behaviour beyond releasing answers.
 */

struct obj_digest; /* confighash.h */

enum src_kind { SRC_CONFIGMAP, SRC_SECRET, SRC_DEPLOYMENT };

enum lookup_status { LOOKUP_NONE, LOOKUP_FOUND, LOOKUP_ABSENT, LOOKUP_ERROR };

struct lookup_item {
	enum src_kind kind;
	const char *name;          /* borrowed from the request */
	const char *namespace_;    /* borrowed; NULL: the batch's namespace */
	enum lookup_status status; /* set by the source */
	struct obj_digest *digest; /* ConfigMap/Secret when FOUND; owned by the item; its
	                            * flags carry the object's reload annotations */
	cJSON *object;             /* Deployment when FOUND; owned by the item */
	char reason[128];          /* why, when LOOKUP_ERROR (no values) */
};

struct lookup_batch {
	const char *namespace_;
	struct lookup_item *items;
	size_t n;
};

/* Frees what each item owns (digest, object; set to NULL). Statuses and
 * the items array stay the caller's. Accepts NULL. */
void lookup_batch_clear(struct lookup_batch *b);

/* The namespace item it of batch b is asked in. */
static inline const char *lookup_item_namespace(const struct lookup_batch *b,
						const struct lookup_item *it)
{
	return it->namespace_ ? it->namespace_ : b->namespace_;
}

#endif
