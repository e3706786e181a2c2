#ifndef ROLLGATE_METRICS_H
#define ROLLGATE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * Process-wide Prometheus metrics: lock-free counters updated on the request
 * path, rendered in the text exposition format on demand. No label value
 * ever comes from request data, so cardinality is fixed.
 */

enum metrics_endpoint { EP_MUTATE, EP_VALIDATE, EP_HEALTHZ, EP_READYZ, EP_OTHER, EP_COUNT };
enum metrics_outcome {
	OUT_ALLOWED, /* allowed, no patch */
	OUT_PATCHED, /* allowed with a patch */
	OUT_DENIED,  /* allowed: false */
	OUT_INVALID, /* 4xx */
	OUT_ERROR,   /* 5xx */
	OUT_COUNT
};
enum metrics_reload { RELOAD_CERT, RELOAD_CONFIG, RELOAD_OBJECTS, RELOAD_COUNT };
enum metrics_lookup { LOOKUP_OK, LOOKUP_NOT_FOUND, LOOKUP_FAILED, LOOKUP_OUT_COUNT };
/* The API resources rollgate lists and watches. */
enum metrics_resource {
	MR_CONFIGMAPS,
	MR_SECRETS,
	MR_DEPLOYMENTS,
	MR_STATEFULSETS,
	MR_DAEMONSETS,
	MR_ROLLOUTS,
	MR_CANARIES,
	MR_NAMESPACES, /* reload.namespaceSelector */
	MR_COUNT
};
/* Why a watch had to be opened again. */
enum metrics_watch_restart {
	WATCH_CLOSED,  /* the server ended it (timeout) */
	WATCH_ERROR,   /* a transport, HTTP or stream error */
	WATCH_EXPIRED, /* 410 Gone: resumed by a full relist */
	WATCH_RESTART_COUNT
};
enum metrics_patch { PATCH_APPLIED, PATCH_FAILED, PATCH_NOT_FOUND, PATCH_OUT_COUNT };

void metrics_request(enum metrics_endpoint ep, enum metrics_outcome oc, double seconds);
void metrics_inflight(int delta);
void metrics_cert_expiry(double unix_seconds);
void metrics_reload(enum metrics_reload what, bool ok);
void metrics_lookup(enum metrics_lookup outcome);
void metrics_stamp_skipped(void); /* a workload allowed unstamped because a lookup failed */
void metrics_violation(enum rule_id rule, enum rule_mode mode);
void metrics_set_ready(bool ready);

/* The watch cache and the reload controller. */
void metrics_watch_restart(enum metrics_resource r, enum metrics_watch_restart why);
/* Now is the last time a list or watch event confirmed resource r current. */
void metrics_watch_synced(enum metrics_resource r);
void metrics_cache_objects(enum metrics_resource r, long long count); /* ConfigMaps or Secrets */
void metrics_cache_synced(bool synced);
void metrics_reload_patch(enum metrics_patch outcome);
void metrics_reload_rate_limited(void);
void metrics_reload_workloads(long long count);
void metrics_reload_leader(bool leader);
/* What the reload controller could not do besides rollouts. */
enum metrics_reload_problem {
	RP_RESUME_FAILED,        /* a Deployment it paused could not be resumed */
	RP_RELEASE_FAILED,       /* a held workload could not be released */
	RP_INVALID_PAUSE_PERIOD, /* a pause-period annotation it could not read */
	RP_COUNT
};
void metrics_reload_problem(enum metrics_reload_problem what);

/* The listeners' protections against slow and excess connections
 * (docs/limits.md), by listener. */
enum metrics_listener { ML_HTTPS, ML_METRICS, ML_COUNT };
const char *metrics_listener_name(enum metrics_listener l);
void metrics_connections_open(enum metrics_listener l, int delta);
/* Closed at accept: at the limit with every connection being answered. */
void metrics_connection_refused(enum metrics_listener l);
/* Closed to admit a new one: one still reading its request, or an idle one. */
void metrics_connection_evicted(enum metrics_listener l, bool idle);
/* Closed: a request not in by its read deadline. */
void metrics_requests_timed_out(enum metrics_listener l, unsigned n);

/* Policy reports (reportctl). rule RULE_COUNT: an object's pass, which
 * names no rule; result is an enum report_result (report.h). */
enum metrics_report_write {
	REPORT_WRITE_APPLIED, /* the report was written (server-side apply) */
	REPORT_WRITE_FAILED,  /* the write failed; retried after the interval */
	REPORT_WRITE_GONE,    /* the namespace went away with its workloads */
	REPORT_WRITE_OUT_COUNT
};
void metrics_report_results(enum rule_id rule, unsigned result, long long delta);
void metrics_report_write(enum metrics_report_write outcome);
void metrics_report_crd_missing(void);
void metrics_report_workloads(long long count);

/* Renders every metric; returns a malloc'd string (caller frees) or NULL. */
char *metrics_render(void);

#endif
