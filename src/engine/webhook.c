/*
 * The admission engine: one review from body to response, shared by the
 * server and the CLI. A review may wait on object lookups; the source then
 * finishes it from its own thread and the server resumes the connection.
 */
#include "webhook.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "configref.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "mutate.h"
#include "objsource.h"
#include "rgassert.h"
#include "rgtime.h"
#include "rules.h"

struct webhook {
	pthread_mutex_t lock;
	struct config_ref *current; /* the webhook's reference; swapped under lock */
	struct objsource *src;
};

struct webhook_call {
	struct webhook *wh;
	enum webhook_kind kind;
	char *body;
	size_t len;
	struct config_ref *cref; /* the config this review started with */
	struct admission_request req;
	bool decoded;
	struct admission_response resp;
	struct stamp_plan plan;
	struct lookup_item flagger_item;
	struct lookup_batch flagger;
	struct timespec start;
	webhook_done_fn done;
	void *done_arg;
	bool answered; /* the source called lookups_done (once) */
	int status;
	char *out;
	size_t out_len;
	enum metrics_outcome outcome;
};

/* A reference to the current config, for one review. */
static struct config_ref *current_config(struct webhook *wh)
{
	struct config_ref *r;

	pthread_mutex_lock(&wh->lock);
	r = config_ref(wh->current);
	pthread_mutex_unlock(&wh->lock);
	return r;
}

struct webhook *webhook_new(struct config *cfg, struct objsource *src)
{
	struct webhook *wh = calloc(1, sizeof(*wh));

	if (!wh)
		return NULL;
	wh->current = config_ref_new(cfg);
	if (!wh->current) {
		free(wh);
		return NULL;
	}
	pthread_mutex_init(&wh->lock, NULL);
	wh->src = src;
	return wh;
}

void webhook_set_config(struct webhook *wh, struct config *cfg)
{
	struct config_ref *r = config_ref_new(cfg), *old;

	if (!r) {
		config_clear(cfg);
		free(cfg);
		return;
	}
	pthread_mutex_lock(&wh->lock);
	old = wh->current;
	wh->current = r;
	pthread_mutex_unlock(&wh->lock);
	config_unref(old);
}

void webhook_free(struct webhook *wh)
{
	if (!wh)
		return;
	config_unref(wh->current);
	pthread_mutex_destroy(&wh->lock);
	free(wh);
}

struct webhook_call *webhook_call_new(struct webhook *wh, enum webhook_kind kind, char *body,
				      size_t len)
{
	struct webhook_call *c = calloc(1, sizeof(*c));

	if (!c) {
		free(body);
		return NULL;
	}
	c->wh = wh;
	c->kind = kind;
	c->body = body;
	c->len = len;
	rgtime_now(&c->start);
	admission_response_init(&c->resp);
	return c;
}

void webhook_call_free(struct webhook_call *c)
{
	if (!c)
		return;
	free(c->body);
	free(c->out);
	admission_request_clear(&c->req);
	admission_response_clear(&c->resp);
	stamp_plan_clear(&c->plan);
	lookup_batch_clear(&c->flagger);
	config_unref(c->cref);
	free(c);
}

int webhook_call_status(const struct webhook_call *c)
{
	return c->status;
}

const char *webhook_call_body(const struct webhook_call *c, size_t *len)
{
	*len = c->out_len;
	return c->out;
}

enum metrics_outcome webhook_call_outcome(const struct webhook_call *c)
{
	return c->outcome;
}

/* A 4xx/5xx answer with a short JSON body naming the problem. */
static void fail_call(struct webhook_call *c, int status, const char *reason)
{
	cJSON *o = cJSON_CreateObject();

	c->status = status;
	c->outcome = status >= 500 ? OUT_ERROR : OUT_INVALID;
	free(c->out);
	c->out = NULL;
	if (o && cJSON_AddStringToObject(o, "error", reason))
		c->out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	c->out_len = c->out ? strlen(c->out) : 0;
	RG_LOG(status >= 500 ? LOG_ERROR : LOG_WARN, "request rejected", LF_S("method", "POST"),
	       LF_S("path", c->kind == WEBHOOK_MUTATE ? "/mutate" : "/validate"),
	       LF_I("status", status), LF_S("reason", reason),
	       LF_S("uid", c->decoded ? c->req.uid : ""));
}

static void log_decision(const struct webhook_call *c)
{
	const struct admission_request *r = &c->req;
	const char *decision = !c->resp.allowed ? "denied" : c->resp.patch ? "patched" : "allowed";

	RG_LOG(LOG_INFO, c->kind == WEBHOOK_MUTATE ? "mutate" : "validate", LF_S("uid", r->uid),
	       LF_S("kind", r->kind), LF_S("namespace", r->namespace_), LF_S("name", r->name),
	       LF_S("operation", admission_operation_name(r->operation)), LF_S("decision", decision),
	       LF_I("warnings", c->resp.n_warnings),
	       LF_I("warnings_not_shown", c->resp.warnings_dropped), LF_I("dry_run", r->dry_run),
	       LF_D("duration_ms", rgtime_elapsed_s(&c->start) * 1000.0));
}

/* Encodes the response; the last step of every decoded review. */
static void complete(struct webhook_call *c)
{
	bool mutate = c->kind == WEBHOOK_MUTATE;

	c->out = admission_encode(c->req.uid, &c->resp, mutate && c->req.operation != OP_DELETE);
	if (!c->out) {
		fail_call(c, 500, "out of memory");
		return;
	}
	c->out_len = strlen(c->out);
	c->status = 200;
	c->outcome = !c->resp.allowed       ? OUT_DENIED
		: (mutate && c->resp.patch) ? OUT_PATCHED
					    : OUT_ALLOWED;
	log_decision(c);
}

static void finish_mutate(struct webhook_call *c)
{
	const struct lookup_item *it;

	if (mutate_finish(c->cref->cfg, &c->req, &c->plan, &c->resp) < 0) {
		fail_call(c, 500, "out of memory");
		return;
	}
	it = c->plan.skipped;
	if (it) {
		metrics_stamp_skipped();
		RG_LOG(LOG_WARN, "config hash not updated: lookup failed", LF_S("uid", c->req.uid),
		       LF_S("namespace", c->req.namespace_),
		       LF_S("object_kind", objsource_kind(it->kind)->kind), LF_S("object", it->name),
		       LF_S("reason", it->reason));
	}
	complete(c);
}

static void finish_validate(struct webhook_call *c)
{
	struct verdict v = { 0 };
	struct rules_extra extra = { LOOKUP_NONE, NULL, NULL };

	if (c->flagger.n == 1) {
		extra.flagger_target_status = c->flagger_item.status;
		extra.flagger_target = c->flagger_item.object;
		extra.flagger_target_name = c->flagger_item.name;
	}
	if (rules_evaluate(c->cref->cfg, &c->req, &extra, &v) < 0 || rules_decide(&v, &c->resp) < 0) {
		verdict_clear(&v);
		fail_call(c, 500, "out of memory");
		return;
	}
	for (size_t i = 0; i < v.n; i++)
		metrics_violation(v.v[i].rule, v.v[i].mode);
	verdict_clear(&v);
	complete(c);
}

static void finish(struct webhook_call *c)
{
	if (c->kind == WEBHOOK_MUTATE)
		finish_mutate(c);
	else
		finish_validate(c);
}

/* Called by the object source's thread when a pending batch is answered. */
static void lookups_done(void *arg)
{
	struct webhook_call *c = arg;

	RG_ASSERT(!c->answered); /* a source answers a batch once */
	c->answered = true;
	finish(c);
	c->done(c->done_arg);
}

static int resolve(struct webhook_call *c, struct lookup_batch *b)
{
	if (!c->wh->src) {
		for (size_t i = 0; i < b->n; i++) {
			b->items[i].status = LOOKUP_ERROR;
			snprintf(b->items[i].reason, sizeof(b->items[i].reason),
				 "no object source configured");
		}
		return 0;
	}
	return objsource_resolve(c->wh->src, b, c->cref->cfg->lookup_timeout_ms, lookups_done, c);
}

static int start_mutate(struct webhook_call *c)
{
	char err[256];

	if (mutate_plan(c->cref->cfg, &c->req, &c->plan, err, sizeof(err)) < 0) {
		/* A workload we cannot read is the API server's to reject; never block it. */
		RG_LOG(LOG_WARN, "not stamped: malformed workload", LF_S("uid", c->req.uid),
		       LF_S("reason", err));
		if (admission_warn(&c->resp, err) < 0) {
			fail_call(c, 500, "out of memory");
			return 0;
		}
		stamp_plan_clear(&c->plan);
	}
	if (c->plan.applies && c->plan.batch.n > 0 && resolve(c, &c->plan.batch) == 1)
		return 1;
	finish(c);
	return 0;
}

static int start_validate(struct webhook_call *c)
{
	const char *target = rules_flagger_target(&c->req);

	if (target) {
		c->flagger_item.kind = SRC_DEPLOYMENT;
		c->flagger_item.name = target;
		c->flagger.namespace_ = c->req.namespace_;
		c->flagger.items = &c->flagger_item;
		c->flagger.n = 1;
		if (resolve(c, &c->flagger) == 1)
			return 1;
	}
	finish(c);
	return 0;
}

int webhook_call_run(struct webhook_call *c, webhook_done_fn done, void *arg)
{
	char err[256];
	int rc;

	c->done = done;
	c->done_arg = arg;
	c->cref = current_config(c->wh);
	rc = admission_decode(c->body, c->len, &c->req, err, sizeof(err));
	free(c->body);
	c->body = NULL;
	if (rc < 0) {
		fail_call(c, 400, err);
		return 0;
	}
	c->decoded = true;
	return c->kind == WEBHOOK_MUTATE ? start_mutate(c) : start_validate(c);
}
