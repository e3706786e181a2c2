/*
 * Leader election on a coordination.k8s.io/v1 Lease (see lease.h). One
 * thread runs try-acquire-or-renew every retry period; the leader flag and
 * the start time of the last successful renewal are atomics, so
 * lease_is_leader never waits on the network.
 */
#include "lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "rgtime.h"

#define TIME_LEN 40
#define HOLDER_MAX 256

/* The part of the Lease spec that decides who leads. */
struct record {
	char holder[HOLDER_MAX];
	long long duration_s;
	char acquire[TIME_LEN];
	char renew[TIME_LEN];
	long long transitions;
};

struct lease {
	struct kube_client *c;
	char *ns, *name, *identity;
	unsigned duration_s, renew_deadline_ms, retry_ms;
	char *path; /* the Lease */
	char *coll; /* its collection, for the create */

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;

	atomic_bool leader;
	atomic_llong renewed_ms; /* when the last successful write started */

	/* The election thread's (and lease_stop's, after the join). */
	struct record observed;
	bool have_observed;
	long long observed_ms; /* when observed last changed, on our clock */
};

/* metav1.MicroTime: 2006-01-02T15:04:05.000000Z */
static void micro_time(char out[TIME_LEN])
{
	struct timespec t;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		base[0] = '\0';
	snprintf(out, TIME_LEN, "%.19s.%06dZ", base, (int)(t.tv_nsec / 1000) % 1000000);
}

void lease_default_options(struct lease_options *o)
{
	*o = (struct lease_options){ NULL, LEASE_NAME, NULL, 15, 10000, 2000 };
}

void lease_make_identity(char *buf, size_t len)
{
	const char *host = getenv("HOSTNAME");
	unsigned char r[8] = { 0 };
	char hex[17], h[200];
	size_t n = 0;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		long long t = rgtime_now_ms() ^ (long long)time(NULL) << 20;
		memcpy(r, &t, sizeof(r));
	}
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	/* The identity lands in JSON and logs: keep it plain. */
	for (const char *p = host && *host ? host : "rollgate"; *p && n < sizeof(h) - 1; p++)
		h[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				(*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
			? *p
			: '-';
	h[n] = '\0';
	snprintf(buf, len, "%s_%s", h, hex);
}

static char *dup_printf(const char *a, const char *b, const char *c, const char *d)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s%s%s", a, b, c, d);
	return s;
}

struct lease *lease_new(struct kube_client *c, const struct lease_options *o, char *err, size_t errlen)
{
	struct lease *l;

	if (!o->namespace_ || !kube_valid_namespace(o->namespace_)) {
		snprintf(err, errlen, "lease namespace \"%.80s\" is not a namespace name",
			 o->namespace_ ? o->namespace_ : "");
		return NULL;
	}
	if (!o->name || !kube_valid_name(o->name) || !o->identity || !*o->identity ||
	    strlen(o->identity) >= HOLDER_MAX) {
		snprintf(err, errlen, "lease name or identity invalid");
		return NULL;
	}
	if (o->duration_s < 1 || o->retry_ms < 1 || o->renew_deadline_ms >= o->duration_s * 1000u ||
	    o->retry_ms >= o->renew_deadline_ms) {
		snprintf(err, errlen, "lease timing: need retry < renew deadline < duration");
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		goto oom;
	l->c = c;
	l->duration_s = o->duration_s;
	l->renew_deadline_ms = o->renew_deadline_ms;
	l->retry_ms = o->retry_ms;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	atomic_init(&l->leader, false);
	atomic_init(&l->renewed_ms, 0);
	l->ns = strdup(o->namespace_);
	l->name = strdup(o->name);
	l->identity = strdup(o->identity);
	l->coll = dup_printf("/apis/coordination.k8s.io/v1/namespaces/", o->namespace_, "/leases", "");
	l->path = l->coll ? dup_printf(l->coll, "/", o->name, "") : NULL;
	if (!l->ns || !l->name || !l->identity || !l->path)
		goto oom;
	return l;
oom:
	snprintf(err, errlen, "out of memory");
	lease_free(l);
	return NULL;
}

static bool record_equal(const struct record *a, const struct record *b)
{
	return strcmp(a->holder, b->holder) == 0 && a->duration_s == b->duration_s &&
		strcmp(a->acquire, b->acquire) == 0 && strcmp(a->renew, b->renew) == 0 &&
		a->transitions == b->transitions;
}

/* Reads the spec and resourceVersion of a Lease body; -1 when malformed. */
static int parse_lease(const struct kube_reply *r, struct record *rec, char *rv, size_t rvlen)
{
	cJSON *obj = NULL;
	const cJSON *spec;
	const char *s;
	char err[64];
	int rc = -1;

	memset(rec, 0, sizeof(*rec));
	if (!r->body || json_parse_strict(r->body, r->len, &obj, err, sizeof(err)) < 0)
		return -1;
	spec = json_get(obj, "spec");
	s = json_get_string(json_get(obj, "metadata"), "resourceVersion");
	if (!s || strlen(s) >= rvlen)
		goto out;
	snprintf(rv, rvlen, "%s", s);
	s = json_get_string(spec, "holderIdentity");
	snprintf(rec->holder, sizeof(rec->holder), "%s", s ? s : "");
	if (json_get_int(spec, "leaseDurationSeconds", &rec->duration_s) < 0)
		rec->duration_s = 0;
	s = json_get_string(spec, "acquireTime");
	snprintf(rec->acquire, sizeof(rec->acquire), "%s", s ? s : "");
	s = json_get_string(spec, "renewTime");
	snprintf(rec->renew, sizeof(rec->renew), "%s", s ? s : "");
	if (json_get_int(spec, "leaseTransitions", &rec->transitions) < 0)
		rec->transitions = 0;
	rc = 0;
out:
	cJSON_Delete(obj);
	return rc;
}

/* The Lease as JSON text (malloc'd), with rv as the precondition when set. */
static char *lease_body(const struct lease *l, const struct record *rec, const char *rv)
{
	cJSON *o = cJSON_CreateObject(), *meta, *spec;
	char *s = NULL;

	if (!o)
		return NULL;
	meta = cJSON_AddObjectToObject(o, "metadata");
	spec = cJSON_AddObjectToObject(o, "spec");
	if (!cJSON_AddStringToObject(o, "apiVersion", "coordination.k8s.io/v1") ||
	    !cJSON_AddStringToObject(o, "kind", "Lease") || !meta || !spec ||
	    !cJSON_AddStringToObject(meta, "name", l->name) ||
	    !cJSON_AddStringToObject(meta, "namespace", l->ns) ||
	    (rv && !cJSON_AddStringToObject(meta, "resourceVersion", rv)) ||
	    !cJSON_AddStringToObject(spec, "holderIdentity", rec->holder) ||
	    !cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (double)rec->duration_s) ||
	    !cJSON_AddStringToObject(spec, "acquireTime", rec->acquire) ||
	    !cJSON_AddStringToObject(spec, "renewTime", rec->renew) ||
	    !cJSON_AddNumberToObject(spec, "leaseTransitions", (double)rec->transitions))
		goto out;
	s = json_print(o);
out:
	cJSON_Delete(o);
	return s;
}

enum attempt { ATTEMPT_WON, ATTEMPT_LOST, ATTEMPT_ERROR };

static void log_reply(const char *what, const struct kube_reply *r)
{
	char why[300];

	kube_reply_describe(r, why, sizeof(why));
	RG_LOG(LOG_WARN, what, LF_S("reason", why));
}

/* POSTs or PUTs rec; a 409 means another candidate wrote first. */
static enum attempt write_record(struct lease *l, const struct record *rec, const char *rv,
				 long long started)
{
	struct kube_reply r;
	char err[256], nrv[64];
	char *body = lease_body(l, rec, rv);
	enum attempt a = ATTEMPT_ERROR;

	if (!body)
		return ATTEMPT_ERROR;
	if (kube_client_request(l->c, rv ? "PUT" : "POST", rv ? l->path : l->coll, "application/json",
				body, l->retry_ms, &r, err, sizeof(err)) < 0) {
		RG_LOG(LOG_WARN, "lease write failed", LF_S("reason", err));
		free(body);
		return ATTEMPT_ERROR;
	}
	free(body);
	if (r.status == 200 || r.status == 201) {
		struct record got;
		if (parse_lease(&r, &got, nrv, sizeof(nrv)) == 0) {
			l->observed = got;
			l->have_observed = true;
			l->observed_ms = rgtime_now_ms();
		}
		atomic_store(&l->renewed_ms, started);
		a = ATTEMPT_WON;
	} else if (r.status == 409) {
		a = ATTEMPT_LOST;
	} else {
		log_reply("lease write rejected", &r);
	}
	kube_reply_clear(&r);
	return a;
}

/*
 * One round of client-go's tryAcquireOrRenew: read the Lease (create it when
 * absent); note when its record last changed; leave it alone while another
 * holder's record is fresh; else write ourselves in, keeping acquireTime and
 * leaseTransitions when renewing.
 */
static enum attempt try_acquire_or_renew(struct lease *l)
{
	long long started = rgtime_now_ms();
	struct kube_reply r;
	struct record cur, next;
	char err[256], rv[64], now[TIME_LEN];
	bool mine;

	if (kube_client_request(l->c, "GET", l->path, NULL, NULL, l->retry_ms, &r, err, sizeof(err)) <
	    0) {
		RG_LOG(LOG_WARN, "lease read failed", LF_S("reason", err));
		return ATTEMPT_ERROR;
	}
	micro_time(now);
	if (r.status == 404) {
		kube_reply_clear(&r);
		memset(&next, 0, sizeof(next));
		snprintf(next.holder, sizeof(next.holder), "%s", l->identity);
		next.duration_s = l->duration_s;
		memcpy(next.acquire, now, TIME_LEN);
		memcpy(next.renew, now, TIME_LEN);
		return write_record(l, &next, NULL, started);
	}
	if (r.status != 200 || parse_lease(&r, &cur, rv, sizeof(rv)) < 0) {
		log_reply("lease read rejected", &r);
		kube_reply_clear(&r);
		return ATTEMPT_ERROR;
	}
	kube_reply_clear(&r);
	if (!l->have_observed || !record_equal(&cur, &l->observed)) {
		l->observed = cur;
		l->have_observed = true;
		l->observed_ms = rgtime_now_ms();
	}
	mine = strcmp(cur.holder, l->identity) == 0;
	if (cur.holder[0] && !mine &&
	    l->observed_ms + (cur.duration_s > 0 ? cur.duration_s : l->duration_s) * 1000 >
		    rgtime_now_ms())
		return ATTEMPT_LOST;
	next = cur;
	snprintf(next.holder, sizeof(next.holder), "%s", l->identity);
	next.duration_s = l->duration_s;
	memcpy(next.renew, now, TIME_LEN);
	if (!mine) {
		memcpy(next.acquire, now, TIME_LEN);
		next.transitions = cur.transitions + 1;
	}
	return write_record(l, &next, rv, started);
}

static void set_leader(struct lease *l, bool leader, const char *why)
{
	if (atomic_load(&l->leader) == leader)
		return;
	atomic_store(&l->leader, leader);
	metrics_reload_leader(leader);
	if (leader)
		RG_LOG(LOG_INFO, "leader lease acquired", LF_S("lease", l->name),
		       LF_S("namespace", l->ns), LF_S("identity", l->identity));
	else
		RG_LOG(strcmp(why, "stopping") == 0 ? LOG_INFO : LOG_WARN, "leader lease lost",
		       LF_S("lease", l->name), LF_S("identity", l->identity), LF_S("reason", why));
}

/* Waits ms or until stopped; returns true when stopping. */
static bool pause_ms(struct lease *l, unsigned ms)
{
	struct timespec until;
	bool stop;

	rgtime_wall_after(&until, ms);
	pthread_mutex_lock(&l->lock);
	while (!l->stop && pthread_cond_timedwait(&l->cond, &l->lock, &until) == 0)
		;
	stop = l->stop;
	pthread_mutex_unlock(&l->lock);
	return stop;
}

static void *run(void *arg)
{
	struct lease *l = arg;
	unsigned jitter;

	do {
		enum attempt a = try_acquire_or_renew(l);
		if (a == ATTEMPT_WON)
			set_leader(l, true, NULL);
		else if (a == ATTEMPT_LOST)
			set_leader(l, false, "another replica holds the lease");
		else if (rgtime_now_ms() - atomic_load(&l->renewed_ms) >= l->renew_deadline_ms)
			set_leader(l, false, "not renewed within the renew deadline");
		/* Candidates spread their attempts (client-go's jitter 1.2). */
		jitter = 0;
		if (!atomic_load(&l->leader) && getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) > 0)
			jitter %= l->retry_ms / 5 + 1;
	} while (!pause_ms(l, l->retry_ms + jitter));
	return NULL;
}

int lease_start(struct lease *l, char *err, size_t errlen)
{
	if (pthread_create(&l->thread, NULL, run, l) != 0) {
		snprintf(err, errlen, "cannot start the lease thread");
		return -1;
	}
	l->started = true;
	RG_LOG(LOG_INFO, "leader election started", LF_S("lease", l->name), LF_S("namespace", l->ns),
	       LF_S("identity", l->identity));
	return 0;
}

bool lease_is_leader(struct lease *l)
{
	return atomic_load(&l->leader) &&
		rgtime_now_ms() - atomic_load(&l->renewed_ms) < (long long)l->renew_deadline_ms;
}

const char *lease_identity(const struct lease *l)
{
	return l->identity;
}

/* Empties the Lease if we still hold it, so a successor takes over at its
 * next attempt instead of waiting for the lease to expire. */
static void release(struct lease *l)
{
	struct kube_reply r;
	struct record cur, next;
	char err[256], rv[64];

	if (kube_client_request(l->c, "GET", l->path, NULL, NULL, l->retry_ms, &r, err, sizeof(err)) <
	    0)
		return;
	if (r.status != 200 || parse_lease(&r, &cur, rv, sizeof(rv)) < 0 ||
	    strcmp(cur.holder, l->identity) != 0) {
		kube_reply_clear(&r);
		return;
	}
	kube_reply_clear(&r);
	next = cur;
	next.holder[0] = '\0';
	next.duration_s = 1;
	micro_time(next.renew);
	memcpy(next.acquire, next.renew, TIME_LEN);
	if (write_record(l, &next, rv, rgtime_now_ms()) == ATTEMPT_WON)
		RG_LOG(LOG_INFO, "leader lease released", LF_S("lease", l->name),
		       LF_S("identity", l->identity));
}

void lease_stop(struct lease *l, bool give_up)
{
	bool was;

	if (!l || !l->started)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	l->started = false;
	/* Not leader from here on, before the release is even sent. */
	was = atomic_load(&l->leader);
	set_leader(l, false, "stopping");
	if (give_up && was)
		release(l);
}

void lease_free(struct lease *l)
{
	if (!l)
		return;
	lease_stop(l, false);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->path);
	free(l->coll);
	free(l);
}
