#ifndef ROLLGATE_MUTATE_H
#define ROLLGATE_MUTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "config.h"
#include "lookup.h"
#include "refs.h"

struct kind; /* kinds.h */

/*
 * Config-hash stamping, in two pure halves around the lookups:
 * mutate_plan decides whether and what to look up; mutate_finish turns the
 * answers into a patch and warnings.
 */
struct stamp_plan {
	bool applies;              /* a stamped kind, CREATE/UPDATE, opted in, has a template */
	struct refset refs;        /* finished (sorted) */
	struct lookup_batch batch; /* one item per ref, same order */
	/* Set by mutate_finish when a lookup failed and the hash was not
	 * stamped: the first unanswered item (in batch), for the caller to log
	 * and count; the pure core does neither. */
	const struct lookup_item *skipped;
};

/* Returns 0 (plan->applies tells whether to go on) or -1 with err when the
 * workload is malformed; the caller then allows without a patch. */
int mutate_plan(const struct config *cfg, const struct admission_request *req, struct stamp_plan *plan,
		char *err, size_t errlen);

enum mutate_hash_status {
	MUTATE_HASH_OK,      /* out holds "sha256:<64 hex>" */
	MUTATE_HASH_NONE,    /* nothing referenced: no hash (out is "") */
	MUTATE_HASH_UNKNOWN, /* a lookup failed or was not made: the hash cannot be known */
	MUTATE_HASH_ERROR    /* a crypto failure, or outlen < CONFIGHASH_VALUE_LEN */
};

/*
 * The config-hash value alone, as mutate_finish stamps it: refs (finished)
 * with the answers of batch (items[i] answers refs->refs[i]) and the
 * config's HMAC key. Pure. out receives at most outlen bytes.
 */
enum mutate_hash_status mutate_hash(const struct config *cfg, const struct refset *refs,
				    const struct lookup_batch *batch, char *out, size_t outlen);

/*
 * With every lookup answered: when any lookup failed, allows without a patch
 * and with a warning (never a wrong hash); else computes the hash and the
 * patch, and warns about required objects that do not exist yet.
 * Returns 0, or -1 on OOM.
 */
int mutate_finish(const struct config *cfg, const struct admission_request *req,
		  struct stamp_plan *plan, struct admission_response *resp);

/*
 * Fills b (zeroed first) with one lookup per reference of refs, in order,
 * in namespace ns (each reference to another namespace in its own). Item
 * names and namespaces are borrowed from refs. 0, or -1 on OOM.
 */
int mutate_batch(const struct refset *refs, const char *ns, struct lookup_batch *b);

/* Where the hash of workload (of kind k) lives: true for an Argo Rollout
 * annotated reloader.stakater.com/rollout-strategy: restart, which is rolled
 * by spec.restartAt and keeps the hash on its own metadata (a template
 * change would roll it a second time); false: on the pod template. */
bool mutate_hash_on_workload(const struct kind *k, const cJSON *workload);

/* The hash workload (of kind k) carries where mutate_hash_on_workload says,
 * or NULL. key is the config-hash annotation key. */
const char *mutate_stamped_hash(const struct kind *k, const cJSON *workload, const char *key);

/* The pod template of a stamped kind, or NULL. */
const cJSON *mutate_template(const struct admission_request *req);

/* Releases what the plan holds and zeroes it (the plan itself is the
 * caller's); accepts NULL. */
void stamp_plan_clear(struct stamp_plan *plan);

#endif
