#ifndef ROLLGATE_MUTATE_H
#define ROLLGATE_MUTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "config.h"
#include "objsource.h"
#include "refs.h"

/*
 * Config-hash stamping, in two pure halves around the lookups:
 * mutate_plan decides whether and what to look up; mutate_finish turns the
 * answers into a patch and warnings.
 */
struct stamp_plan {
	bool applies;          /* a stamped kind, CREATE/UPDATE, opted in, has a template */
	struct refset refs;    /* finished (sorted) */
	struct lookup_batch batch; /* one item per ref, same order */
};

/* Returns 0 (plan->applies tells whether to go on) or -1 with err when the
 * workload is malformed; the caller then allows without a patch. */
int mutate_plan(const struct config *cfg, const struct admission_request *req,
		struct stamp_plan *plan, char *err, size_t errlen);

/*
 * With every lookup answered: when any lookup failed, allows without a patch
 * and with a warning (never a wrong hash); else computes the hash and the
 * patch, and warns about required objects that do not exist yet.
 * Returns 0, or -1 on OOM.
 */
int mutate_finish(const struct config *cfg, const struct admission_request *req,
		  struct stamp_plan *plan, struct admission_response *resp);

/* The pod template of a stamped kind, or NULL. */
const cJSON *mutate_template(const struct admission_request *req);

void stamp_plan_free(struct stamp_plan *plan);

#endif
