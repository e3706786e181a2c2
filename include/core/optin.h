#ifndef ROLLGATE_OPTIN_H
#define ROLLGATE_OPTIN_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "confighash.h" /* OBJ_FLAG_* */
#include "refs.h"

/*
 * Which ConfigMaps and Secrets join a workload's config hash: the one
 * decision table behind /mutate, the reload controller, `rollgate stamp` and
 * `rollgate check` (docs/migrating.md lists every row). It reads rollgate's
 * own annotations and those of Stakater Reloader and Wave, so a workload
 * annotated for either tool means the same thing here. Pure.
 */

/* Workload annotations (on the workload's metadata or its pod template's:
 * the workload's win when both carry one). */
#define OPTIN_WAVE "wave.pusher.com/update-on-config-change"
#define OPTIN_WAVE_EXTRA_CONFIGMAPS "wave.pusher.com/extra-configmaps"
#define OPTIN_WAVE_EXTRA_SECRETS "wave.pusher.com/extra-secrets"
#define OPTIN_RELOADER_AUTO "reloader.stakater.com/auto"
#define OPTIN_RELOADER_CM_AUTO "configmap.reloader.stakater.com/auto"
#define OPTIN_RELOADER_SECRET_AUTO "secret.reloader.stakater.com/auto"
#define OPTIN_RELOADER_CM_RELOAD "configmap.reloader.stakater.com/reload"
#define OPTIN_RELOADER_SECRET_RELOAD "secret.reloader.stakater.com/reload"
#define OPTIN_RELOADER_CM_EXCLUDE "configmaps.exclude.reloader.stakater.com/reload"
#define OPTIN_RELOADER_SECRET_EXCLUDE "secrets.exclude.reloader.stakater.com/reload"
#define OPTIN_RELOADER_SEARCH "reloader.stakater.com/search"
#define OPTIN_RELOADER_ROLLOUT_STRATEGY "reloader.stakater.com/rollout-strategy"
#define OPTIN_RELOADER_PAUSE_PERIOD "deployment.reloader.stakater.com/pause-period"
/* ConfigMap and Secret annotations (read by confighash_digest_object into
 * OBJ_FLAG_IGNORE and OBJ_FLAG_MATCH). */
#define OPTIN_RELOADER_IGNORE "reloader.stakater.com/ignore"
#define OPTIN_RELOADER_MATCH "reloader.stakater.com/match"

/*
 * rollgate's own bookkeeping annotations, as suffixes of the configured
 * prefix (config_annotation(cfg, suffix, ...)):
 *  - OPTIN_LAST_RELOADED_FROM on the workload's metadata: what caused the
 *    last controller rollout, JSON {"kind","namespace","name","time"};
 *  - OPTIN_PAUSED_UNTIL on a Deployment's metadata: RFC 3339 time at which
 *    the controller resumes a Deployment it paused (pause-period);
 *  - OPTIN_HELD_SCHEDULER on the workload's metadata: the schedulerName
 *    the pod template had ("" for none) while the hold placeholder
 *    OPTIN_HOLD_SCHEDULER is set (stamp.holdUntilConfigExists).
 */
#define OPTIN_LAST_RELOADED_FROM "last-reloaded-from"
#define OPTIN_PAUSED_UNTIL "paused-until"
#define OPTIN_HELD_SCHEDULER "held-scheduler"
#define OPTIN_HOLD_SCHEDULER "rollgate.io/hold"
/* Wave's hold, released the same way when rollgate takes over. */
#define OPTIN_WAVE_HELD_SCHEDULER "wave.pusher.com/scheduling-disabled"
#define OPTIN_WAVE_HOLD_SCHEDULER "wave.pusher.com/invalid"

/* The value of the annotation <prefix>/suffix on holder's metadata (a
 * string), or NULL; reads no more than the annotations. */
const char *optin_own_annotation(const struct config *cfg, const cJSON *holder, const char *suffix);

/* Whether scheduler is a hold placeholder (rollgate's or Wave's). */
bool optin_is_hold_scheduler(const char *scheduler);

/* The annotation value of key on the workload (metadata first, then its
 * pod template's metadata); NULL when neither has it. */
const char *optin_annotation(const cJSON *workload, const cJSON *tmpl, const char *key);

/*
 * Decides what joins the hash of workload (in namespace ns, with pod
 * template tmpl) and fills out (zeroed first) with the finished set: the
 * references of the template's pod spec that the annotations select, the
 * objects the lists name, Wave's extra objects. Returns 1 when the workload
 * is opted in (out may still be empty), 0 when not (out empty; the pod spec
 * is not even read), -1 with err for a pod spec of the wrong shape (as
 * refs_collect), a list item that is not a valid name or expression (err
 * names the annotation), or OOM. out is the caller's to clear in every case.
 * Limits: 64 list items per annotation, 253 bytes per expression.
 */
int optin_decide(const struct config *cfg, const char *ns, const cJSON *workload, const cJSON *tmpl,
		 struct refset *out, char *err, size_t errlen);

/* Whether the object described by flags (OBJ_FLAG_*) joins the hash through
 * reference r. */
bool optin_object_joins(const struct ref *r, unsigned flags);

#endif
