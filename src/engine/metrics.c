/*
 * Prometheus metrics with relaxed atomics: the request path pays one atomic
 * add per counter. Rendering reads a consistent-enough snapshot.
 */
#include "metrics.h"

#include "report.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "rgtime.h"

#include "rules.h"

#define RENDER_MAX (64 * 1024)

static const double buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				  0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const char *const ep_names[EP_COUNT] = { "mutate", "validate", "healthz", "readyz", "other" };
static const char *const out_names[OUT_COUNT] = { "allowed", "patched", "denied", "invalid", "error" };
static const char *const reload_names[RELOAD_COUNT] = { "certificate", "config", "objects" };
static const char *const lookup_names[LOOKUP_OUT_COUNT] = { "found", "not_found", "failed" };

static atomic_ullong requests[EP_COUNT][OUT_COUNT];
static atomic_ullong hist[EP_COUNT][NBUCKETS];
static atomic_ullong hist_count[EP_COUNT];
static atomic_ullong hist_sum_ns[EP_COUNT];
static atomic_llong inflight;
static _Atomic double cert_expiry;
static atomic_ullong reloads[RELOAD_COUNT][2];
static atomic_ullong lookups[LOOKUP_OUT_COUNT];
static atomic_ullong stamp_skipped;
static atomic_ullong violations[RULE_COUNT][MODE_ENFORCE + 1];
static atomic_int ready;
/* The kind of each watched resource; its label is the kind's resource name. */
static const enum kind_id resource_kinds[MR_COUNT] = {
	[MR_CONFIGMAPS] = KIND_CONFIGMAP,    [MR_SECRETS] = KIND_SECRET,
	[MR_DEPLOYMENTS] = KIND_DEPLOYMENT,  [MR_STATEFULSETS] = KIND_STATEFULSET,
	[MR_DAEMONSETS] = KIND_DAEMONSET,    [MR_ROLLOUTS] = KIND_ROLLOUT,
	[MR_CANARIES] = KIND_FLAGGER_CANARY,
	/* MR_NAMESPACES: not in the kinds table (resource_name) */
};
static const char *const restart_names[WATCH_RESTART_COUNT] = { "closed", "error", "expired" };
static const char *const patch_names[PATCH_OUT_COUNT] = { "applied", "failed", "not_found" };
static atomic_ullong watch_restarts[MR_COUNT][WATCH_RESTART_COUNT];
static atomic_llong watch_synced_ms[MR_COUNT]; /* CLOCK_MONOTONIC ms; 0: never */
static atomic_llong cache_objects[2];
static atomic_int cache_synced;
static atomic_ullong reload_patches[PATCH_OUT_COUNT];
static atomic_ullong reload_rate_limited;
static const char *const problem_names[RP_COUNT] = { "resume_failed", "release_failed",
						     "invalid_pause_period" };
static atomic_ullong reload_problems[RP_COUNT];
static atomic_llong reload_workloads;
static atomic_int reload_leader;
/* Policy reports. */
static atomic_llong report_results[RULE_COUNT + 1][REPORT_RESULT_COUNT];
static const char *const report_write_names[REPORT_WRITE_OUT_COUNT] = { "applied", "failed",
									"namespace_gone" };
static atomic_ullong report_writes[REPORT_WRITE_OUT_COUNT];
static atomic_ullong report_crd_missing;
static atomic_llong report_workloads;

void metrics_request(enum metrics_endpoint ep, enum metrics_outcome oc, double seconds)
{
	atomic_fetch_add_explicit(&requests[ep][oc], 1, memory_order_relaxed);
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (seconds <= buckets[i]) {
			atomic_fetch_add_explicit(&hist[ep][i], 1, memory_order_relaxed);
			break;
		}
	}
	atomic_fetch_add_explicit(&hist_count[ep], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_sum_ns[ep], (unsigned long long)(seconds * 1e9),
				  memory_order_relaxed);
}

void metrics_inflight(int delta)
{
	atomic_fetch_add_explicit(&inflight, delta, memory_order_relaxed);
}

void metrics_cert_expiry(double unix_seconds)
{
	atomic_store(&cert_expiry, unix_seconds);
}

void metrics_reload(enum metrics_reload what, bool ok)
{
	atomic_fetch_add_explicit(&reloads[what][ok ? 0 : 1], 1, memory_order_relaxed);
}

void metrics_lookup(enum metrics_lookup outcome)
{
	atomic_fetch_add_explicit(&lookups[outcome], 1, memory_order_relaxed);
}

void metrics_stamp_skipped(void)
{
	atomic_fetch_add_explicit(&stamp_skipped, 1, memory_order_relaxed);
}

void metrics_violation(enum rule_id rule, enum rule_mode mode)
{
	if ((unsigned)rule < RULE_COUNT && (unsigned)mode <= MODE_ENFORCE)
		atomic_fetch_add_explicit(&violations[rule][mode], 1, memory_order_relaxed);
}

void metrics_set_ready(bool r)
{
	atomic_store(&ready, r ? 1 : 0);
}

void metrics_watch_restart(enum metrics_resource r, enum metrics_watch_restart why)
{
	if ((unsigned)r < MR_COUNT && (unsigned)why < WATCH_RESTART_COUNT)
		atomic_fetch_add_explicit(&watch_restarts[r][why], 1, memory_order_relaxed);
}

void metrics_watch_synced(enum metrics_resource r)
{
	/* Never 0, which means "not yet". */
	if ((unsigned)r < MR_COUNT)
		atomic_store_explicit(&watch_synced_ms[r], rgtime_now_ms() | 1, memory_order_relaxed);
}

void metrics_cache_objects(enum metrics_resource r, long long count)
{
	if (r == MR_CONFIGMAPS || r == MR_SECRETS)
		atomic_store_explicit(&cache_objects[r], count, memory_order_relaxed);
}

void metrics_cache_synced(bool synced)
{
	atomic_store(&cache_synced, synced ? 1 : 0);
}

void metrics_reload_patch(enum metrics_patch outcome)
{
	if ((unsigned)outcome < PATCH_OUT_COUNT)
		atomic_fetch_add_explicit(&reload_patches[outcome], 1, memory_order_relaxed);
}

void metrics_reload_rate_limited(void)
{
	atomic_fetch_add_explicit(&reload_rate_limited, 1, memory_order_relaxed);
}

void metrics_reload_workloads(long long count)
{
	atomic_store_explicit(&reload_workloads, count, memory_order_relaxed);
}

void metrics_reload_problem(enum metrics_reload_problem what)
{
	if ((unsigned)what < RP_COUNT)
		atomic_fetch_add_explicit(&reload_problems[what], 1, memory_order_relaxed);
}

void metrics_reload_leader(bool leader)
{
	atomic_store(&reload_leader, leader ? 1 : 0);
}

/* ---- connections of the listeners ---- */

static const char *const listener_names[ML_COUNT] = { "https", "metrics" };
static atomic_llong conns_open[ML_COUNT];
static atomic_ullong conns_refused_limit[ML_COUNT];
static atomic_ullong conns_evicted[ML_COUNT][2]; /* reading, idle */
static atomic_ullong requests_timed_out[ML_COUNT];

const char *metrics_listener_name(enum metrics_listener l)
{
	return (unsigned)l < ML_COUNT ? listener_names[l] : "unknown";
}

void metrics_connections_open(enum metrics_listener l, int delta)
{
	if ((unsigned)l < ML_COUNT)
		atomic_fetch_add_explicit(&conns_open[l], delta, memory_order_relaxed);
}

void metrics_connection_refused(enum metrics_listener l)
{
	if ((unsigned)l < ML_COUNT)
		atomic_fetch_add_explicit(&conns_refused_limit[l], 1, memory_order_relaxed);
}

void metrics_connection_evicted(enum metrics_listener l, bool idle)
{
	if ((unsigned)l < ML_COUNT)
		atomic_fetch_add_explicit(&conns_evicted[l][idle ? 1 : 0], 1, memory_order_relaxed);
}

void metrics_requests_timed_out(enum metrics_listener l, unsigned n)
{
	if ((unsigned)l < ML_COUNT)
		atomic_fetch_add_explicit(&requests_timed_out[l], n, memory_order_relaxed);
}

void metrics_report_results(enum rule_id rule, unsigned result, long long delta)
{
	if ((unsigned)rule <= RULE_COUNT && result < REPORT_RESULT_COUNT)
		atomic_fetch_add_explicit(&report_results[rule][result], delta, memory_order_relaxed);
}

void metrics_report_write(enum metrics_report_write outcome)
{
	if ((unsigned)outcome < REPORT_WRITE_OUT_COUNT)
		atomic_fetch_add_explicit(&report_writes[outcome], 1, memory_order_relaxed);
}

void metrics_report_crd_missing(void)
{
	atomic_fetch_add_explicit(&report_crd_missing, 1, memory_order_relaxed);
}

void metrics_report_workloads(long long count)
{
	atomic_store_explicit(&report_workloads, count, memory_order_relaxed);
}

struct out {
	char *buf;
	size_t len;
	bool full;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, RENDER_MAX - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= RENDER_MAX - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

static void header(struct out *o, const char *name, const char *type, const char *help)
{
	emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static unsigned long long get(atomic_ullong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void render_requests(struct out *o)
{
	header(o, "rollgate_requests_total", "counter",
	       "HTTP requests served, by endpoint and outcome.");
	for (int e = 0; e < EP_COUNT; e++)
		for (int c = 0; c < OUT_COUNT; c++)
			emit(o, "rollgate_requests_total{endpoint=\"%s\",outcome=\"%s\"} %llu\n",
			     ep_names[e], out_names[c], get(&requests[e][c]));
	header(o, "rollgate_request_duration_seconds", "histogram",
	       "Time from the first byte of a request to its response, by endpoint.");
	for (int e = 0; e < EP_COUNT; e++) {
		unsigned long long cum = 0;
		for (size_t b = 0; b < NBUCKETS; b++) {
			cum += get(&hist[e][b]);
			emit(o,
			     "rollgate_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} "
			     "%llu\n",
			     ep_names[e], buckets[b], cum);
		}
		emit(o, "rollgate_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
		     ep_names[e], get(&hist_count[e]));
		emit(o, "rollgate_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n", ep_names[e],
		     (double)get(&hist_sum_ns[e]) / 1e9);
		emit(o, "rollgate_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", ep_names[e],
		     get(&hist_count[e]));
	}
	header(o, "rollgate_requests_in_flight", "gauge", "Requests being processed now.");
	emit(o, "rollgate_requests_in_flight %lld\n", (long long)atomic_load(&inflight));
}

static void render_state(struct out *o)
{
	header(o, "rollgate_tls_certificate_expiry_timestamp_seconds", "gauge",
	       "Expiry (notAfter) of the serving certificate, as a Unix time.");
	emit(o, "rollgate_tls_certificate_expiry_timestamp_seconds %.0f\n", atomic_load(&cert_expiry));
	header(o, "rollgate_reloads_total", "counter",
	       "Reloads of certificate, config and object files, by outcome.");
	for (int r = 0; r < RELOAD_COUNT; r++) {
		emit(o, "rollgate_reloads_total{what=\"%s\",outcome=\"success\"} %llu\n",
		     reload_names[r], get(&reloads[r][0]));
		emit(o, "rollgate_reloads_total{what=\"%s\",outcome=\"failure\"} %llu\n",
		     reload_names[r], get(&reloads[r][1]));
	}
	header(o, "rollgate_object_lookups_total", "counter",
	       "ConfigMap and Secret lookups for config hashes, by outcome.");
	for (int l = 0; l < LOOKUP_OUT_COUNT; l++)
		emit(o, "rollgate_object_lookups_total{outcome=\"%s\"} %llu\n", lookup_names[l],
		     get(&lookups[l]));
	header(o, "rollgate_stamp_skipped_total", "counter",
	       "Workloads allowed without a config hash because an object lookup failed.");
	emit(o, "rollgate_stamp_skipped_total %llu\n", get(&stamp_skipped));
	header(o, "rollgate_rule_violations_total", "counter",
	       "Policy rule violations found, by rule and effective mode.");
	for (int r = 0; r < RULE_COUNT; r++)
		for (int m = MODE_AUDIT; m <= MODE_ENFORCE; m++)
			emit(o, "rollgate_rule_violations_total{rule=\"%s\",mode=\"%s\"} %llu\n",
			     rules_name((enum rule_id)r), config_mode_name((enum rule_mode)m),
			     get(&violations[r][m]));
	header(o, "rollgate_ready", "gauge", "1 when the server accepts admission requests.");
	emit(o, "rollgate_ready %d\n", atomic_load(&ready));
	header(o, "rollgate_build_info", "gauge", "Always 1; the version label names the build.");
	emit(o, "rollgate_build_info{version=\"%s\"} 1\n", ROLLGATE_VERSION);
}

static void render_connections(struct out *o)
{
	header(o, "rollgate_connections_open", "gauge", "Connections open, by listener.");
	for (int l = 0; l < ML_COUNT; l++)
		emit(o, "rollgate_connections_open{listener=\"%s\"} %lld\n", listener_names[l],
		     (long long)atomic_load(&conns_open[l]));
	header(o, "rollgate_connections_refused_total", "counter",
	       "New connections closed at once, by listener and reason.");
	for (int l = 0; l < ML_COUNT; l++)
		emit(o, "rollgate_connections_refused_total{listener=\"%s\",reason=\"limit\"} %llu\n",
		     listener_names[l], get(&conns_refused_limit[l]));
	header(o, "rollgate_connections_evicted_total", "counter",
	       "Connections closed at the connection limit to admit a new one, by listener and "
	       "state.");
	for (int l = 0; l < ML_COUNT; l++) {
		emit(o, "rollgate_connections_evicted_total{listener=\"%s\",state=\"reading\"} %llu\n",
		     listener_names[l], get(&conns_evicted[l][0]));
		emit(o, "rollgate_connections_evicted_total{listener=\"%s\",state=\"idle\"} %llu\n",
		     listener_names[l], get(&conns_evicted[l][1]));
	}
	header(o, "rollgate_requests_timed_out_total", "counter",
	       "Connections closed because a request did not arrive in full within the read timeout, "
	       "by listener.");
	for (int l = 0; l < ML_COUNT; l++)
		emit(o, "rollgate_requests_timed_out_total{listener=\"%s\"} %llu\n", listener_names[l],
		     get(&requests_timed_out[l]));
}

static const char *resource_name(int r)
{
	if (r == MR_NAMESPACES)
		return "namespaces"; /* reload.namespaceSelector; no row of the kinds table */
	return kinds_get(resource_kinds[r])->resource;
}

/* Series of resources never watched are left out: an age without a sync
 * would be meaningless. */
static void render_watch(struct out *o)
{
	long long now = rgtime_now_ms();

	header(o, "rollgate_cache_objects", "gauge",
	       "ConfigMaps and Secrets held (as digests) by the watch cache.");
	for (int r = MR_CONFIGMAPS; r <= MR_SECRETS; r++)
		emit(o, "rollgate_cache_objects{resource=\"%s\"} %lld\n", resource_name(r),
		     (long long)atomic_load(&cache_objects[r]));
	header(o, "rollgate_cache_synced", "gauge",
	       "1 once every ConfigMap and Secret watch has completed its first list.");
	emit(o, "rollgate_cache_synced %d\n", atomic_load(&cache_synced));
	header(o, "rollgate_watch_restarts_total", "counter",
	       "Watches opened again after the first, by resource and reason.");
	for (int r = 0; r < MR_COUNT; r++)
		for (int w = 0; w < WATCH_RESTART_COUNT; w++)
			emit(o, "rollgate_watch_restarts_total{resource=\"%s\",reason=\"%s\"} %llu\n",
			     resource_name(r), restart_names[w], get(&watch_restarts[r][w]));
	header(o, "rollgate_watch_last_sync_age_seconds", "gauge",
	       "Seconds since a list, watch event or bookmark last confirmed the resource current.");
	for (int r = 0; r < MR_COUNT; r++) {
		long long t = atomic_load_explicit(&watch_synced_ms[r], memory_order_relaxed);
		if (t != 0)
			emit(o, "rollgate_watch_last_sync_age_seconds{resource=\"%s\"} %.3f\n",
			     resource_name(r), (double)(now > t ? now - t : 0) / 1000.0);
	}
	header(o, "rollgate_reload_patches_total", "counter",
	       "Rollouts triggered by the reload controller (pod-template hash patches), by outcome.");
	for (int p = 0; p < PATCH_OUT_COUNT; p++)
		emit(o, "rollgate_reload_patches_total{outcome=\"%s\"} %llu\n", patch_names[p],
		     get(&reload_patches[p]));
	header(o, "rollgate_reload_rate_limited_total", "counter",
	       "Patches the reload controller delayed because its rate limit was exhausted.");
	emit(o, "rollgate_reload_rate_limited_total %llu\n", get(&reload_rate_limited));
	header(o, "rollgate_reload_workloads", "gauge",
	       "Opted-in workloads the reload controller watches.");
	emit(o, "rollgate_reload_workloads %lld\n", (long long)atomic_load(&reload_workloads));
	header(o, "rollgate_reload_problems_total", "counter",
	       "What the reload controller failed to do besides rollouts, by reason.");
	for (int p = 0; p < RP_COUNT; p++)
		emit(o, "rollgate_reload_problems_total{reason=\"%s\"} %llu\n", problem_names[p],
		     get(&reload_problems[p]));
	header(o, "rollgate_reload_leader", "gauge",
	       "1 while this replica holds the reload controller's leader lease.");
	emit(o, "rollgate_reload_leader %d\n", atomic_load(&reload_leader));
}

/* Results only for the pairs that occur: a pass names no rule, and most
 * rules never give most results. */
static void render_reports(struct out *o)
{
	header(o, "rollgate_report_results", "gauge",
	       "Results in the policy reports this replica keeps, by rule and result.");
	for (int r = 0; r <= RULE_COUNT; r++)
		for (int x = 0; x < REPORT_RESULT_COUNT; x++) {
			long long n = atomic_load_explicit(&report_results[r][x],
							   memory_order_relaxed);
			if (n == 0)
				continue;
			if (r == RULE_COUNT)
				emit(o, "rollgate_report_results{result=\"%s\"} %lld\n",
				     report_result_name((enum report_result)x), n);
			else
				emit(o, "rollgate_report_results{rule=\"%s\",result=\"%s\"} %lld\n",
				     rules_name((enum rule_id)r),
				     report_result_name((enum report_result)x), n);
		}
	header(o, "rollgate_report_writes_total", "counter",
	       "Policy report writes (server-side apply), by outcome.");
	for (int w = 0; w < REPORT_WRITE_OUT_COUNT; w++)
		emit(o, "rollgate_report_writes_total{outcome=\"%s\"} %llu\n", report_write_names[w],
		     get(&report_writes[w]));
	header(o, "rollgate_report_crd_missing_total", "counter",
	       "Times the report controller found the PolicyReport CRD not installed.");
	emit(o, "rollgate_report_crd_missing_total %llu\n", get(&report_crd_missing));
	header(o, "rollgate_report_workloads", "gauge",
	       "Workloads the report controller holds results of.");
	emit(o, "rollgate_report_workloads %lld\n", (long long)atomic_load(&report_workloads));
}

char *metrics_render(void)
{
	struct out o = { malloc(RENDER_MAX), 0, false };

	if (!o.buf)
		return NULL;
	render_requests(&o);
	render_connections(&o);
	render_state(&o);
	render_watch(&o);
	render_reports(&o);
	if (o.full) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
