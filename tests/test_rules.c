/*
 * Tests of the validating policy gate (src/rules*.c). Requests are written as
 * JSON (single quotes stand for double quotes) and go through the real
 * decoder, admission_decode.
 */
#include "testutil.h"

#include <glob.h>

#include "admission.h"
#include "config.h"
#include "rules.h"

/* ---- building requests ---- */

struct rq {
	const char *op; /* default CREATE */
	const char *group, *version, *kind, *resource;
	const char *sub, *user, *ns, *name;
	const char *obj, *old; /* single-quoted JSON, or NULL for null */
};

#define REVIEW_FMT                                                                            \
	"{'apiVersion':'admission.k8s.io/v1','kind':'AdmissionReview','request':{'uid':'u1'," \
	"'kind':{'group':'%s','version':'%s','kind':'%s'},"                                   \
	"'resource':{'group':'%s','version':'%s','resource':'%s'},'subResource':'%s',"        \
	"'name':'%s','namespace':'%s','operation':'%s','userInfo':{'username':'%s'},"         \
	"'object':%s,'oldObject':%s}}"

#define OR(s, d) ((s) ? (s) : (d))

/* The AdmissionReview text of r, malloc'd. */
static char *review(const struct rq *r)
{
	const char *ver = OR(r->version, "v1");
	int n = snprintf(NULL, 0, REVIEW_FMT, r->group, ver, r->kind, r->group, ver, r->resource,
			 OR(r->sub, ""), OR(r->name, ""), OR(r->ns, "default"), OR(r->op, "CREATE"),
			 OR(r->user, "alice"), OR(r->obj, "null"), OR(r->old, "null"));
	char *s = malloc((size_t)n + 1);

	assert_non_null(s);
	snprintf(s, (size_t)n + 1, REVIEW_FMT, r->group, ver, r->kind, r->group, ver, r->resource,
		 OR(r->sub, ""), OR(r->name, ""), OR(r->ns, "default"), OR(r->op, "CREATE"),
		 OR(r->user, "alice"), OR(r->obj, "null"), OR(r->old, "null"));
	for (char *p = s; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return s;
}

static struct rq dep(const char *obj)
{
	return (struct rq){
		.group = "apps", .kind = "Deployment", .resource = "deployments", .obj = obj
	};
}

static struct rq sts(const char *obj)
{
	return (struct rq){
		.group = "apps", .kind = "StatefulSet", .resource = "statefulsets", .obj = obj
	};
}

static struct rq dms(const char *obj)
{
	return (struct rq){
		.group = "apps", .kind = "DaemonSet", .resource = "daemonsets", .obj = obj
	};
}

static struct rq rset(const char *obj)
{
	return (struct rq){
		.group = "apps", .kind = "ReplicaSet", .resource = "replicasets", .obj = obj
	};
}

static struct rq rollout(const char *obj)
{
	return (struct rq){ .group = "argoproj.io",
			    .version = "v1alpha1",
			    .kind = "Rollout",
			    .resource = "rollouts",
			    .obj = obj };
}

static struct rq flagger(const char *obj)
{
	return (struct rq){ .group = "flagger.app",
			    .version = "v1beta1",
			    .kind = "Canary",
			    .resource = "canaries",
			    .obj = obj };
}

/* Object fragments. */
#define PROBED(name, image) \
	"{'name':'" name "','image':'" image "','readinessProbe':{'tcpSocket':{'port':80}}}"
#define BARE(name, image) "{'name':'" name "','image':'" image "'}"
#define TEMPLATE(labels, containers) \
	"'template':{'metadata':{'labels':{" labels "}},'spec':{'containers':[" containers "]}}"
#define OBJ(kind, api, ann, spec)                                                                   \
	"{'apiVersion':'" api "','kind':'" kind "','metadata':{'name':'web','namespace':'default'," \
	"'annotations':{" ann "}},'spec':{" spec "}}"
#define DEPLOY(spec) OBJ("Deployment", "apps/v1", "", spec)
#define STS(spec) OBJ("StatefulSet", "apps/v1", "", spec)
#define DS(spec) OBJ("DaemonSet", "apps/v1", "", spec)
#define ROLLOUT(spec) OBJ("Rollout", "argoproj.io/v1alpha1", "", spec)
#define OK_TMPL TEMPLATE("'app':'web'", PROBED("web", "nginx:1.25"))
#define NOPROBE_TMPL TEMPLATE("'app':'web'", BARE("web", "nginx:1.25"))
#define CANARY_OK "'strategy':{'canary':{'steps':[{'setWeight':20},{'pause':{}}]}},"

/* ---- running the gate ---- */

struct result {
	struct admission_request req;
	struct verdict v;
	struct admission_response resp;
};

static struct config g_cfg;

static void eval_with(const struct config *cfg, struct rq r, const struct rules_extra *x,
		      struct result *out)
{
	char err[256] = "";
	char *body = review(&r);
	int rc = admission_decode(body, strlen(body), &out->req, err, sizeof(err));

	if (rc != 0)
		fail_msg("decode failed: %s\n%s", err, body);
	free(body);
	assert_int_equal(rules_evaluate(cfg, &out->req, x, &out->v), 0);
	admission_response_init(&out->resp);
	assert_int_equal(rules_decide(&out->v, &out->resp), 0);
}

static void eval(struct rq r, struct result *out)
{
	eval_with(&g_cfg, r, NULL, out);
}

static void result_free(struct result *r)
{
	verdict_clear(&r->v);
	admission_response_clear(&r->resp);
	admission_request_clear(&r->req);
}

static size_t n_rule(const struct result *r, enum rule_id id)
{
	size_t n = 0;
	for (size_t i = 0; i < r->v.n; i++)
		n += r->v.v[i].rule == id;
	return n;
}

/* The violation of rule id at path (any path when NULL), or NULL. */
static const struct violation *viol(const struct result *r, enum rule_id id, const char *path)
{
	for (size_t i = 0; i < r->v.n; i++) {
		if (r->v.v[i].rule == id && (!path || strcmp(r->v.v[i].path, path) == 0))
			return &r->v.v[i];
	}
	return NULL;
}

#define assert_contains(hay, needle)                                                              \
	do {                                                                                      \
		const char *h_ = (hay);                                                           \
		if (!h_ || !strstr(h_, (needle)))                                                 \
			fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle)); \
	} while (0)

/* Evaluates one request and checks how many violations of id it yields. */
static void expect_n(struct rq r, enum rule_id id, size_t want)
{
	struct result res;
	eval(r, &res);
	if (n_rule(&res, id) != want)
		fail_msg("%s: %zu violations, want %zu (object %s)", rules_name(id), n_rule(&res, id),
			 want, r.obj ? r.obj : "null");
	result_free(&res);
}

static int setup(void **state)
{
	return config_defaults(&g_cfg);
}

static int teardown(void **state)
{
	config_clear(&g_cfg);
	return 0;
}

/* ---- operations and kinds ---- */

static void test_delete_and_connect_yield_nothing(void **state)
{
	struct result r;
	struct rq q = dep(NULL);

	q.op = "DELETE";
	q.old = DEPLOY("'replicas':3,'strategy':{'rollingUpdate':{'maxUnavailable':3}}," NOPROBE_TMPL);
	eval(q, &r);
	assert_int_equal(r.v.n, 0);
	assert_true(r.resp.allowed);
	result_free(&r);
	q.op = "CONNECT";
	q.obj = q.old;
	eval(q, &r);
	assert_int_equal(r.v.n, 0);
	result_free(&r);
}

static void test_other_kinds_and_subresources_ignored(void **state)
{
	struct rq pod = { .group = "",
			  .kind = "Pod",
			  .resource = "pods",
			  .obj = "{'metadata':{'name':'p'},'spec':{'containers':[{'name':'c','image':'"
				 "nginx'}]}}" };
	struct rq status = dep(DEPLOY(
		"'replicas':3,'strategy':{'rollingUpdate':{'maxUnavailable':3}}," NOPROBE_TMPL));
	struct rq other = rollout(ROLLOUT(NOPROBE_TMPL));
	struct result r;

	eval(pod, &r);
	assert_int_equal(r.v.n, 0);
	result_free(&r);
	status.op = "UPDATE";
	status.sub = "status";
	status.old = status.obj;
	eval(status, &r);
	assert_int_equal(r.v.n, 0);
	result_free(&r);
	other.group = "example.com"; /* a Rollout of another API group */
	eval(other, &r);
	assert_int_equal(r.v.n, 0);
	result_free(&r);
}

static void test_controllers_are_not_judged(void **state)
{
	struct rq q = dep(DEPLOY(
		"'replicas':3,'strategy':{'rollingUpdate':{'maxUnavailable':3}}," NOPROBE_TMPL));
	struct result r;

	q.op = "UPDATE";
	q.old = q.obj;
	q.user = "system:serviceaccount:argo-rollouts:argo-rollouts";
	eval(q, &r);
	assert_int_equal(r.v.n, 0);
	result_free(&r);
	q.user = "bob";
	eval(q, &r);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 1);
	result_free(&r);
}

static void test_update_judged_on_new_object(void **state)
{
	struct rq q = dep(DEPLOY(OK_TMPL));

	q.op = "UPDATE";
	q.old = DEPLOY(NOPROBE_TMPL);
	expect_n(q, RULE_ROLLOUT_WITHOUT_READINESS, 0);
	q.obj = q.old;
	q.old = DEPLOY(OK_TMPL);
	expect_n(q, RULE_ROLLOUT_WITHOUT_READINESS, 1);
}

/* ---- replicaset-direct-edit ---- */

#define RS_META(owners) "'metadata':{'name':'web-5d4f','namespace':'default'" owners "}"
#define DEP_OWNER                                  \
	",'ownerReferences':[{'apiVersion':'apps/" \
	"v1','kind':'Deployment','name':'web','uid':'1','controller':true}]"
#define RO_OWNER                                          \
	",'ownerReferences':[{'apiVersion':'argoproj.io/" \
	"v1alpha1','kind':'Rollout','name':'shop','uid':'2','controller':true}]"
#define RS(owners, labels, replicas)                            \
	"{'apiVersion':'apps/v1','kind':'ReplicaSet'," RS_META( \
		owners labels) ",'spec':{'replicas':" replicas "," OK_TMPL "}}"

static void test_rs_create_with_owner_denied(void **state)
{
	struct result r;
	const struct violation *v;

	eval(rset(RS(DEP_OWNER, "", "3")), &r);
	v = viol(&r, RULE_REPLICASET_DIRECT_EDIT, "metadata.ownerReferences[0]");
	assert_non_null(v);
	assert_contains(v->message, "ReplicaSet \"web-5d4f\" claims owner Deployment \"web\"");
	assert_contains(v->message, "(kubectl edit deployment web)");
	assert_false(r.resp.allowed);
	assert_int_equal(r.resp.code, 403);
	assert_contains(r.resp.message, "replicaset-direct-edit: ReplicaSet \"web-5d4f\"");
	result_free(&r);
}

static void test_rs_create_by_controller_or_bare_allowed(void **state)
{
	struct rq q = rset(RS(DEP_OWNER, "", "3"));

	q.user = "system:serviceaccount:kube-system:deployment-controller";
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
	expect_n(rset(RS("", "", "3")), RULE_REPLICASET_DIRECT_EDIT, 0);
	/* "Deployment" of another API group is not the Deployment controller's. */
	expect_n(rset(RS(",'ownerReferences':[{'apiVersion':'example.com/"
			 "v1','kind':'Deployment','name':'x','uid':'3'}]",
			 "", "3")),
		 RULE_REPLICASET_DIRECT_EDIT, 0);
	/* An owner reference without controller: true still claims the owner. */
	expect_n(rset(RS(",'ownerReferences':[{'apiVersion':'apps/"
			 "v1','kind':'Deployment','name':'web','uid':'1'}]",
			 "", "3")),
		 RULE_REPLICASET_DIRECT_EDIT, 1);
}

static void test_rs_spec_update_denied_naming_owner(void **state)
{
	struct rq q = rset(RS(DEP_OWNER, "", "5"));
	struct result r;

	q.op = "UPDATE";
	q.old = RS(DEP_OWNER, "", "3");
	eval(q, &r);
	assert_int_equal(n_rule(&r, RULE_REPLICASET_DIRECT_EDIT), 1);
	assert_string_equal(r.v.v[0].path, "spec");
	assert_string_equal(r.v.v[0].message,
			    "ReplicaSet \"web-5d4f\" is managed by Deployment \"web\": change the "
			    "Deployment instead (kubectl edit deployment web)");
	assert_false(r.resp.allowed);
	assert_string_equal(r.resp.message,
			    "replicaset-direct-edit: ReplicaSet \"web-5d4f\" is managed by Deployment "
			    "\"web\": change the Deployment instead (kubectl edit deployment web)");
	result_free(&r);

	q.obj = RS(RO_OWNER, "", "5");
	q.old = RS(RO_OWNER, "", "3");
	eval(q, &r);
	assert_non_null(viol(&r, RULE_REPLICASET_DIRECT_EDIT, "spec"));
	assert_contains(r.v.v[0].message,
			"managed by Rollout \"shop\": change the Rollout instead (kubectl edit "
			"rollout shop)");
	result_free(&r);
}

static void test_rs_metadata_only_update_allowed(void **state)
{
	struct rq q = rset(RS(DEP_OWNER,
			      ",'labels':{'team':'a'},'annotations':{'x':'y'},'finalizers':['f']",
			      "3"));

	q.op = "UPDATE";
	q.old = RS(DEP_OWNER, "", "3");
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
	/* Orphaning (dropping ownerReferences) alone is metadata too. */
	q.obj = RS("", "", "3");
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
	/* ...but not together with a spec change. */
	q.obj = RS("", "", "7");
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 1);
	/* A bare ReplicaSet may be edited. */
	q.obj = RS("", "", "7");
	q.old = RS("", "", "3");
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
	/* The controllers change owned ReplicaSets all the time. */
	q.obj = RS(DEP_OWNER, "", "7");
	q.old = RS(DEP_OWNER, "", "3");
	q.user = "system:serviceaccount:kube-system:replicaset-controller";
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
}

static void test_rs_spec_compare_is_case_sensitive(void **state)
{
	struct rq q = rset("{'metadata':{'name':'web-5d4f'" DEP_OWNER
			   "},'spec':{'replicas':3,'minReadySeconds':1}}");

	q.op = "UPDATE";
	q.old = "{'metadata':{'name':'web-5d4f'" DEP_OWNER
		"},'spec':{'replicas':3,'MinReadySeconds':1}}";
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 1);
}

#define SCALE(meta)                                                                   \
	"{'apiVersion':'autoscaling/"                                                 \
	"v1','kind':'Scale','metadata':{'name':'web-5d4f','namespace':'default'" meta \
	"},'spec':{'replicas':5}}"

static struct rq rs_scale(const char *meta_new)
{
	return (struct rq){ .op = "UPDATE",
			    .group = "autoscaling",
			    .kind = "Scale",
			    .resource = "replicasets",
			    .sub = "scale",
			    .name = "web-5d4f",
			    .obj = meta_new,
			    .old = SCALE("") };
}

static void test_rs_scale_subresource(void **state)
{
	struct result r;
	struct rq q = rs_scale(SCALE(""));

	eval(q, &r);
	assert_non_null(viol(&r, RULE_REPLICASET_DIRECT_EDIT, "spec.replicas"));
	assert_contains(r.v.v[0].message, "ReplicaSet \"web-5d4f\" is scaled directly");
	assert_false(r.resp.allowed);
	result_free(&r);

	eval(rs_scale(SCALE(DEP_OWNER)), &r);
	assert_contains(r.v.v[0].message,
			"managed by Deployment \"web\": scale the Deployment instead "
			"(kubectl scale deployment web --replicas=N)");
	result_free(&r);

	q.user = "system:kube-controller-manager";
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
	/* Metadata naming only a foreign owner: not a rollout's ReplicaSet. */
	expect_n(rs_scale(SCALE(",'ownerReferences':[{'apiVersion':'example.com/"
				"v1','kind':'Thing','name':'t','uid':'9'}]")),
		 RULE_REPLICASET_DIRECT_EDIT, 0);
	/* Other subresources of a ReplicaSet are not judged. */
	q = rset(RS(DEP_OWNER, "", "5"));
	q.op = "UPDATE";
	q.sub = "status";
	q.old = RS(DEP_OWNER, "", "3");
	expect_n(q, RULE_REPLICASET_DIRECT_EDIT, 0);
}

/* ---- canary-without-readiness ---- */

static void test_rollout_canary_needs_readiness(void **state)
{
	struct result r;
	const struct violation *v;

	eval(rollout(ROLLOUT(CANARY_OK TEMPLATE(
		     "'app':'web'", PROBED("web", "nginx:1.25") "," BARE("proxy", "envoy:1.30")))),
	     &r);
	assert_int_equal(n_rule(&r, RULE_CANARY_WITHOUT_READINESS), 1);
	v = viol(&r, RULE_CANARY_WITHOUT_READINESS, "spec.template.spec.containers[1].readinessProbe");
	assert_non_null(v);
	assert_contains(v->message, "container \"proxy\" has no readinessProbe");
	assert_false(r.resp.allowed);
	assert_contains(r.resp.message,
			"canary-without-readiness: container \"proxy\" has no readinessProbe");
	result_free(&r);

	expect_n(rollout(ROLLOUT(CANARY_OK OK_TMPL)), RULE_CANARY_WITHOUT_READINESS, 0);
	expect_n(rollout(ROLLOUT("'strategy':{'blueGreen':{'activeService':'a'}}," NOPROBE_TMPL)),
		 RULE_CANARY_WITHOUT_READINESS, 1);
	/* A Rollout without a canary or blueGreen strategy is not a canary. */
	expect_n(rollout(ROLLOUT(NOPROBE_TMPL)), RULE_CANARY_WITHOUT_READINESS, 0);
	/* workloadRef: no template to judge. */
	expect_n(rollout(ROLLOUT(CANARY_OK "'workloadRef':{'apiVersion':'apps/"
					   "v1','kind':'Deployment','name':'web'}")),
		 RULE_CANARY_WITHOUT_READINESS, 0);
	/* Init and ephemeral containers need no readiness probe. */
	expect_n(rollout(ROLLOUT(CANARY_OK "'template':{'spec':{'initContainers':[" BARE(
			 "init", "busybox:1") "],"
					      "'containers':[" PROBED(
						      "web", "nginx:1") "],'ephemeralContainers':"
									"[" BARE("dbg",
										 "busybox:1") "]}}")),
		 RULE_CANARY_WITHOUT_READINESS, 0);
}

static void test_canary_labels_and_no_double_report(void **state)
{
	struct result r;

	eval(dep(DEPLOY(TEMPLATE("'app':'web','track':'canary'", BARE("web", "nginx:1.25")))), &r);
	assert_int_equal(n_rule(&r, RULE_CANARY_WITHOUT_READINESS), 1);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 0);
	result_free(&r);

	eval(dep(DEPLOY(TEMPLATE("'app':'web','track':'stable'", BARE("web", "nginx:1.25")))), &r);
	assert_int_equal(n_rule(&r, RULE_CANARY_WITHOUT_READINESS), 0);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 1);
	assert_true(r.resp.allowed);
	result_free(&r);

	expect_n(sts(STS(TEMPLATE("'rollgate.io/canary':'true'", BARE("db", "pg:16")))),
		 RULE_CANARY_WITHOUT_READINESS, 1);
	/* DaemonSets are not canaries by label. */
	expect_n(dms(DS(TEMPLATE("'track':'canary'", BARE("agent", "agent:1")))),
		 RULE_CANARY_WITHOUT_READINESS, 0);
}

static void test_rolling_readiness_reports_when_canary_rule_off(void **state)
{
	struct config cfg;
	struct result r;

	assert_int_equal(config_defaults(&cfg), 0);
	cfg.rules[RULE_CANARY_WITHOUT_READINESS].mode = MODE_OFF;
	eval_with(&cfg, dep(DEPLOY(TEMPLATE("'track':'canary'", BARE("web", "nginx:1.25")))), NULL,
		  &r);
	assert_int_equal(n_rule(&r, RULE_CANARY_WITHOUT_READINESS), 0);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 1);
	result_free(&r);
	config_clear(&cfg);
}

#define FLAGGER_CANARY(kind)                                                                 \
	"{'apiVersion':'flagger.app/v1beta1','kind':'Canary','metadata':{'name':'podinfo'}," \
	"'spec':{'targetRef':{'apiVersion':'apps/v1','kind':'" kind "','name':'podinfo'}}}"

static void test_flagger_target(void **state)
{
	struct result r;
	struct rules_extra x = { LOOKUP_FOUND, NULL, "podinfo" };
	cJSON *target = tu_parse(DEPLOY(TEMPLATE("'app':'podinfo'", BARE("podinfod", "podinfo:6"))));
	cJSON *good = tu_parse(DEPLOY(TEMPLATE("'app':'podinfo'", PROBED("podinfod", "podinfo:6"))));
	struct rq q = flagger(FLAGGER_CANARY("Deployment"));

	eval(q, &r);
	assert_string_equal(rules_flagger_target(&r.req), "podinfo");
	assert_int_equal(r.v.n, 0); /* no lookup made: nothing to say */
	assert_null(r.v.note);
	result_free(&r);

	x.flagger_target = target;
	eval_with(&g_cfg, q, &x, &r);
	assert_non_null(viol(&r, RULE_CANARY_WITHOUT_READINESS, "spec.targetRef"));
	assert_contains(r.v.v[0].message,
			"target Deployment \"podinfo\": container \"podinfod\" has no readinessProbe");
	assert_false(r.resp.allowed);
	result_free(&r);

	x.flagger_target = good;
	eval_with(&g_cfg, q, &x, &r);
	assert_int_equal(r.v.n, 0);
	assert_true(r.resp.allowed);
	result_free(&r);

	x.flagger_target_status = LOOKUP_ABSENT;
	x.flagger_target = NULL;
	eval_with(&g_cfg, q, &x, &r);
	assert_int_equal(r.v.n, 0);
	assert_true(r.resp.allowed);
	assert_contains(r.v.note, "Deployment \"podinfo\" does not exist yet");
	assert_int_equal(r.resp.n_warnings, 1);
	result_free(&r);

	x.flagger_target_status = LOOKUP_ERROR;
	eval_with(&g_cfg, q, &x, &r);
	assert_true(r.resp.allowed);
	assert_string_equal(r.resp.warnings[0],
			    "flagger canary \"podinfo\": could not look up Deployment \"podinfo\" to "
			    "check readiness probes");
	result_free(&r);

	/* Only Deployment targets; DELETE asks for no lookup. */
	eval(flagger(FLAGGER_CANARY("DaemonSet")), &r);
	assert_null(rules_flagger_target(&r.req));
	result_free(&r);
	q.op = "DELETE";
	q.old = q.obj;
	eval(q, &r);
	assert_null(rules_flagger_target(&r.req));
	result_free(&r);
	cJSON_Delete(target);
	cJSON_Delete(good);
}

/* ---- rollout-without-readiness ---- */

static void test_rolling_update_readiness(void **state)
{
	struct result r;

	eval(dep(DEPLOY(NOPROBE_TMPL)), &r);
	assert_non_null(viol(&r, RULE_ROLLOUT_WITHOUT_READINESS,
			     "spec.template.spec.containers[0].readinessProbe"));
	assert_true(r.resp.allowed);
	assert_int_equal(r.resp.n_warnings, 1);
	assert_string_equal(r.resp.warnings[0],
			    "rollout-without-readiness: container \"web\" has no "
			    "readinessProbe; add one so the rollout waits for ready pods");
	result_free(&r);

	expect_n(dep(DEPLOY("'strategy':{'type':'RollingUpdate'}," NOPROBE_TMPL)),
		 RULE_ROLLOUT_WITHOUT_READINESS, 1);
	expect_n(dep(DEPLOY("'strategy':{'type':'Recreate'}," NOPROBE_TMPL)),
		 RULE_ROLLOUT_WITHOUT_READINESS, 0);
	expect_n(dep(DEPLOY(OK_TMPL)), RULE_ROLLOUT_WITHOUT_READINESS, 0);
	expect_n(sts(STS(NOPROBE_TMPL)), RULE_ROLLOUT_WITHOUT_READINESS, 1);
	expect_n(sts(STS("'updateStrategy':{'type':'OnDelete'}," NOPROBE_TMPL)),
		 RULE_ROLLOUT_WITHOUT_READINESS, 0);
	expect_n(dms(DS("'updateStrategy':{'type':'RollingUpdate'}," NOPROBE_TMPL)),
		 RULE_ROLLOUT_WITHOUT_READINESS, 1);
	expect_n(dms(DS("'updateStrategy':{'type':'OnDelete'}," NOPROBE_TMPL)),
		 RULE_ROLLOUT_WITHOUT_READINESS, 0);
	/* A probe set to null is no probe. */
	expect_n(dep(DEPLOY(TEMPLATE("", "{'name':'web','image':'nginx:1','readinessProbe':null}"))),
		 RULE_ROLLOUT_WITHOUT_READINESS, 1);
}

/* ---- mutable-image-tag ---- */

static void test_image_tags(void **state)
{
	static const struct {
		const char *obj;
		size_t n;
	} cases[] = {
		{ DEPLOY(TEMPLATE("", PROBED("web", "nginx"))), 1 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "nginx:latest"))), 1 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "nginx:1.25"))), 0 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "registry:5000/app"))), 1 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "registry:5000/team/app:1.0"))), 0 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "registry:5000/app:latest"))), 1 },
		{ DEPLOY(TEMPLATE("",
				  PROBED("web",
					 "nginx@sha256:"
					 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
					 "cdef"))),
		  0 },
		{ DEPLOY(TEMPLATE("",
				  PROBED("web",
					 "nginx:latest@sha256:"
					 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
					 "cdef"))),
		  0 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "registry:5000/app@sha512:00"))), 0 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "nginx:"))), 1 },
		{ DEPLOY(TEMPLATE("", PROBED("web", "nginx:Latest"))),
		  0 }, /* tags are case-sensitive */
		{ DEPLOY(TEMPLATE("", PROBED("web", "localhost:5000/app:latest-1"))), 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_n(dep(cases[i].obj), RULE_MUTABLE_IMAGE_TAG, cases[i].n);
}

static void test_image_tags_every_container_kind(void **state)
{
	struct result r;
	const struct violation *v;

	eval(dep(DEPLOY("'template':{'spec':{'initContainers':[" BARE(
		     "init", "busybox") "],"
					"'containers':[" PROBED("web", "nginx:1") "," PROBED(
						"side",
						"envoy:latest") "],"
								"'ephemeralContainers':[" BARE(
									"dbg",
									"registry:5000/debug") "]}}")),
	     &r);
	assert_int_equal(n_rule(&r, RULE_MUTABLE_IMAGE_TAG), 3);
	v = viol(&r, RULE_MUTABLE_IMAGE_TAG, "spec.template.spec.initContainers[0].image");
	assert_non_null(v);
	assert_string_equal(v->message,
			    "container \"init\" image \"busybox\" has no tag; pin a version tag or "
			    "@sha256 digest");
	v = viol(&r, RULE_MUTABLE_IMAGE_TAG, "spec.template.spec.containers[1].image");
	assert_non_null(v);
	assert_contains(v->message, "uses latest");
	assert_non_null(
		viol(&r, RULE_MUTABLE_IMAGE_TAG, "spec.template.spec.ephemeralContainers[0].image"));
	assert_true(r.resp.allowed);
	assert_int_equal(r.resp.n_warnings, 3);
	result_free(&r);

	expect_n(sts(STS(TEMPLATE("", PROBED("db", "postgres")))), RULE_MUTABLE_IMAGE_TAG, 1);
	expect_n(dms(DS(TEMPLATE("", PROBED("agent", "agent")))), RULE_MUTABLE_IMAGE_TAG, 1);
	expect_n(rollout(ROLLOUT(CANARY_OK TEMPLATE("", PROBED("web", "nginx")))),
		 RULE_MUTABLE_IMAGE_TAG, 1);
	/* ReplicaSets are the controllers' output, not judged here. */
	expect_n(rset("{'metadata':{'name':'x'},'spec':{" TEMPLATE("", PROBED("web", "nginx")) "}}"),
		 RULE_MUTABLE_IMAGE_TAG, 0);
}

/* ---- no-rollback-history ---- */

static void test_no_rollback_history(void **state)
{
	struct result r;

	eval(dep(DEPLOY("'revisionHistoryLimit':0," OK_TMPL)), &r);
	assert_non_null(viol(&r, RULE_NO_ROLLBACK_HISTORY, "spec.revisionHistoryLimit"));
	assert_true(r.resp.allowed);
	assert_contains(r.resp.warnings[0], "no-rollback-history: revisionHistoryLimit is 0");
	result_free(&r);
	expect_n(dep(DEPLOY("'revisionHistoryLimit':1," OK_TMPL)), RULE_NO_ROLLBACK_HISTORY, 0);
	expect_n(dep(DEPLOY(OK_TMPL)), RULE_NO_ROLLBACK_HISTORY, 0);
	expect_n(rollout(ROLLOUT(CANARY_OK "'revisionHistoryLimit':0," OK_TMPL)),
		 RULE_NO_ROLLBACK_HISTORY, 1);
	expect_n(sts(STS("'revisionHistoryLimit':0," OK_TMPL)), RULE_NO_ROLLBACK_HISTORY, 0);
}

/* ---- full-outage-rollout ---- */

#define MU(replicas, mu) \
	"'replicas':" replicas ",'strategy':{'rollingUpdate':{'maxUnavailable':" mu "}},"

static void test_full_outage_rounding(void **state)
{
	static const struct {
		const char *obj;
		size_t n;
	} cases[] = {
		{ DEPLOY(MU("4", "'75%'") OK_TMPL), 0 },  /* 3 of 4 */
		{ DEPLOY(MU("4", "'100%'") OK_TMPL), 1 }, /* 4 of 4 */
		{ DEPLOY(MU("3", "'99%'") OK_TMPL), 0 },  /* 2.97 rounds down to 2 */
		{ DEPLOY(MU("1", "'100%'") OK_TMPL), 0 }, /* one replica: never */
		{ DEPLOY(MU("1", "5") OK_TMPL), 0 },
		{ DEPLOY(MU("0", "5") OK_TMPL), 0 },
		{ DEPLOY(MU("4", "4") OK_TMPL), 1 },
		{ DEPLOY(MU("4", "9") OK_TMPL), 1 },
		{ DEPLOY(MU("4", "3") OK_TMPL), 0 },
		{ DEPLOY(MU("2", "'150%'") OK_TMPL), 1 },
		{ DEPLOY(MU("2", "'50%'") OK_TMPL), 0 },
		{ DEPLOY(MU("2", "null") OK_TMPL), 0 }, /* default 25% */
		{ DEPLOY("'replicas':2," OK_TMPL), 0 },
		{ DEPLOY("'strategy':{'rollingUpdate':{'maxUnavailable':'100%'}}," OK_TMPL),
		  0 }, /* replicas 1 */
		{ DEPLOY("'replicas':4,'strategy':{'type':'Recreate'}," OK_TMPL), 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_n(dep(cases[i].obj), RULE_FULL_OUTAGE_ROLLOUT, cases[i].n);
}

static void test_full_outage_response_and_malformed(void **state)
{
	struct result r;

	eval(dep(DEPLOY(MU("4", "'100%'") OK_TMPL)), &r);
	assert_false(r.resp.allowed);
	assert_int_equal(r.resp.code, 403);
	assert_string_equal(r.resp.message,
			    "full-outage-rollout: maxUnavailable 100% takes down all 4 "
			    "replicas at once; set it below 4, e.g. 25%");
	assert_non_null(
		viol(&r, RULE_FULL_OUTAGE_ROLLOUT, "spec.strategy.rollingUpdate.maxUnavailable"));
	result_free(&r);

	eval(dep(DEPLOY(MU("4", "'abc%'") OK_TMPL)), &r);
	assert_false(r.resp.allowed);
	assert_contains(r.resp.message, "maxUnavailable \"abc%\" is not an integer or percentage");
	result_free(&r);
	expect_n(dep(DEPLOY(MU("4", "'5'") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "'%'") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "'-5%'") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "'99999999999%'") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "-1") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "1.5") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "true") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dep(DEPLOY(MU("4", "1e300") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 1);
	/* A replica count of the wrong shape is not this rule's business. */
	expect_n(dep(DEPLOY(MU("'4'", "'100%'") OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 0);
}

static void test_full_outage_statefulset_rollout_daemonset(void **state)
{
	expect_n(sts(STS("'replicas':3,'updateStrategy':{'rollingUpdate':{'maxUnavailable':3}}"
			 "," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(sts(STS("'replicas':3,'updateStrategy':{'rollingUpdate':{'maxUnavailable':'100%'}}"
			 "," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(sts(STS("'replicas':3,'updateStrategy':{'rollingUpdate':{'maxUnavailable':'50%'}}"
			 "," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
	expect_n(sts(STS("'replicas':3," OK_TMPL)), RULE_FULL_OUTAGE_ROLLOUT, 0); /* default 1 */
	expect_n(sts(STS("'replicas':3,'updateStrategy':{'rollingUpdate':{'partition':1,'"
			 "maxUnavailable':3}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
	expect_n(sts(STS("'replicas':3,'updateStrategy':{'type':'OnDelete','rollingUpdate':{'"
			 "maxUnavailable':3}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
	expect_n(rollout(ROLLOUT("'replicas':5,'strategy':{'canary':{'maxUnavailable':'100%','steps':["
				 "{'pause':{}}]}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(rollout(ROLLOUT("'replicas':5,'strategy':{'canary':{'maxUnavailable':5,'steps':[{'"
				 "pause':{}}]}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(rollout(ROLLOUT("'replicas':5,'strategy':{'canary':{'maxUnavailable':'80%','steps':[{"
				 "'pause':{}}]}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
	expect_n(rollout(ROLLOUT("'replicas':5,'strategy':{'canary':{'maxUnavailable':'100%','"
				 "trafficRouting':{'nginx':{'stableIngress':'web'}},"
				 "'steps':[{'pause':{}}]}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
	expect_n(rollout(ROLLOUT("'replicas':5,'strategy':{'canary':{'maxUnavailable':'x%','steps':[{'"
				 "pause':{}}]}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 1);
	expect_n(dms(DS("'updateStrategy':{'rollingUpdate':{'maxUnavailable':'100%'}}," OK_TMPL)),
		 RULE_FULL_OUTAGE_ROLLOUT, 0);
}

/* ---- liveness-without-startup-grace ---- */

#define LIVE(extra)                                                                                   \
	"{'name':'web','image':'nginx:1','readinessProbe':{'tcpSocket':{'port':80}},'livenessProbe':" \
	"{'tcpSocket':{'port':80}" extra "}}"

static void test_liveness_grace(void **state)
{
	struct result r;

	eval(dep(DEPLOY(TEMPLATE("", LIVE("")))), &r);
	assert_non_null(viol(&r, RULE_LIVENESS_WITHOUT_STARTUP_GRACE,
			     "spec.template.spec.containers[0].livenessProbe"));
	assert_string_equal(r.resp.warnings[0],
			    "liveness-without-startup-grace: container \"web\": livenessProbe "
			    "has no startup grace; add a startupProbe");
	result_free(&r);
	expect_n(dep(DEPLOY(TEMPLATE("", LIVE(",'initialDelaySeconds':10")))),
		 RULE_LIVENESS_WITHOUT_STARTUP_GRACE, 0);
	expect_n(dep(DEPLOY(TEMPLATE("", LIVE(",'initialDelaySeconds':0")))),
		 RULE_LIVENESS_WITHOUT_STARTUP_GRACE, 1);
	expect_n(dep(DEPLOY(TEMPLATE("", LIVE("},'startupProbe':{'tcpSocket':{'port':80}")))),
		 RULE_LIVENESS_WITHOUT_STARTUP_GRACE, 0);
	expect_n(dep(DEPLOY(OK_TMPL)), RULE_LIVENESS_WITHOUT_STARTUP_GRACE, 0);
	/* Sidecar init containers may carry probes too. */
	expect_n(rollout(ROLLOUT(
			 CANARY_OK
			 "'template':{'spec':{'initContainers':[{'name':'proxy','image':'envoy:1',"
			 "'restartPolicy':'Always','livenessProbe':{'tcpSocket':{'port':9901}}}],"
			 "'containers':[" PROBED("web", "nginx:1") "]}}")),
		 RULE_LIVENESS_WITHOUT_STARTUP_GRACE, 1);
}

/* ---- unguarded-canary-steps ---- */

#define CANARY_STEPS(canary) ROLLOUT("'strategy':{'canary':{" canary "}}," OK_TMPL)

static void test_unguarded_canary_steps(void **state)
{
	struct result r;

	eval(rollout(CANARY_STEPS("'steps':[{'setWeight':20},{'setWeight':50}]")), &r);
	assert_non_null(viol(&r, RULE_UNGUARDED_CANARY_STEPS, "spec.strategy.canary.steps[0]"));
	assert_contains(r.resp.warnings[0], "unguarded-canary-steps: no pause or analysis step");
	assert_true(r.resp.allowed);
	result_free(&r);

	eval(rollout(CANARY_STEPS("")), &r);
	assert_non_null(viol(&r, RULE_UNGUARDED_CANARY_STEPS, "spec.strategy.canary"));
	assert_contains(r.v.v[0].message, "no steps, so it promotes at once");
	result_free(&r);

	expect_n(rollout(CANARY_STEPS("'steps':[]")), RULE_UNGUARDED_CANARY_STEPS, 1);
	expect_n(rollout(CANARY_STEPS("'steps':[{'setWeight':20},{'pause':{'duration':'10m'}}]")),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
	expect_n(rollout(CANARY_STEPS("'steps':[{'setWeight':20},{'pause':{}}]")),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
	expect_n(rollout(CANARY_STEPS("'steps':[{'setWeight':20},{'analysis':{'templates':[{'"
				      "templateName':'ok'}]}}]")),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
	expect_n(rollout(CANARY_STEPS("'analysis':{'templates':[{'templateName':'ok'}]},'steps':[{'"
				      "setWeight':20}]")),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
	expect_n(rollout(CANARY_STEPS(
			 "'steps':[{'experiment':{'templates':[{'name':'c','specRef':'canary'}],"
			 "'analyses':[{'name':'a','templateName':'ok'}]}},{'setWeight':50}]")),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
	eval(rollout(CANARY_STEPS("'steps':[{'setCanaryScale':{'replicas':1}},{'setWeight':50}]")),
	     &r);
	assert_non_null(viol(&r, RULE_UNGUARDED_CANARY_STEPS, "spec.strategy.canary.steps[0]"));
	result_free(&r);
	/* Steps that never raise traffic still end in an unchecked promotion. */
	eval(rollout(CANARY_STEPS("'steps':[{'setWeight':0}]")), &r);
	assert_non_null(viol(&r, RULE_UNGUARDED_CANARY_STEPS, "spec.strategy.canary.steps"));
	result_free(&r);
	/* Blue-green Rollouts have no canary steps. */
	expect_n(rollout(ROLLOUT("'strategy':{'blueGreen':{'activeService':'a','autoPromotionEnabled':"
				 "false}}," OK_TMPL)),
		 RULE_UNGUARDED_CANARY_STEPS, 0);
}

/* ---- unguarded-blue-green ---- */

#define BG(fields) ROLLOUT("'strategy':{'blueGreen':{'activeService':'web'" fields "}}," OK_TMPL)

static void test_unguarded_blue_green(void **state)
{
	struct result r;

	eval(rollout(BG("")), &r);
	assert_non_null(viol(&r, RULE_UNGUARDED_BLUE_GREEN, "spec.strategy.blueGreen"));
	assert_string_equal(r.resp.warnings[0],
			    "unguarded-blue-green: blueGreen auto-promotes unchecked; add "
			    "prePromotionAnalysis or set autoPromotionEnabled: false");
	result_free(&r);
	expect_n(rollout(BG(",'autoPromotionEnabled':true")), RULE_UNGUARDED_BLUE_GREEN, 1);
	expect_n(rollout(BG(",'autoPromotionSeconds':30")), RULE_UNGUARDED_BLUE_GREEN, 1);
	expect_n(rollout(BG(",'autoPromotionEnabled':false")), RULE_UNGUARDED_BLUE_GREEN, 0);
	expect_n(rollout(BG(",'prePromotionAnalysis':{'templates':[{'templateName':'smoke'}]}")),
		 RULE_UNGUARDED_BLUE_GREEN, 0);
	expect_n(rollout(CANARY_STEPS("'steps':[{'pause':{}}]")), RULE_UNGUARDED_BLUE_GREEN, 0);
}

/* ---- pod-template-hash-tamper ---- */

static void test_pod_template_hash_tamper(void **state)
{
	struct result r;

	eval(dep(DEPLOY(TEMPLATE("'app':'web','pod-template-hash':'abc'", PROBED("web", "nginx:1")))),
	     &r);
	assert_non_null(viol(&r, RULE_POD_TEMPLATE_HASH_TAMPER,
			     "spec.template.metadata.labels.pod-template-hash"));
	assert_false(r.resp.allowed);
	assert_contains(r.resp.message,
			"pod-template-hash-tamper: pod template sets label \"pod-template-hash\"");
	result_free(&r);
	expect_n(rollout(ROLLOUT(CANARY_OK TEMPLATE("'rollouts-pod-template-hash':'abc'",
						    PROBED("web", "nginx:1")))),
		 RULE_POD_TEMPLATE_HASH_TAMPER, 1);
	expect_n(dep(DEPLOY("'selector':{'matchLabels':{'pod-template-hash':'abc'}}," OK_TMPL)),
		 RULE_POD_TEMPLATE_HASH_TAMPER, 0);
	expect_n(sts(STS(TEMPLATE("'pod-template-hash':'abc'", PROBED("web", "nginx:1")))),
		 RULE_POD_TEMPLATE_HASH_TAMPER, 0);
	expect_n(dep(DEPLOY(OK_TMPL)), RULE_POD_TEMPLATE_HASH_TAMPER, 0);
}

/* ---- exemptions, modes, skip annotation ---- */

#define MANY_FAULTS DEPLOY(MU("4", "4") TEMPLATE("", BARE("web", "nginx")))

static void test_global_namespace_exemption(void **state)
{
	struct rq q = dep(MANY_FAULTS);
	struct result r;

	q.ns = "kube-system";
	eval(q, &r);
	assert_int_equal(r.v.n, 0);
	assert_true(r.resp.allowed);
	result_free(&r);
	q.ns = "prod";
	eval(q, &r);
	assert_int_equal(r.v.n, 3);
	result_free(&r);
}

static void test_rule_namespace_exemption_and_off(void **state)
{
	struct config cfg;
	struct rq q = dep(MANY_FAULTS);
	struct result r;

	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(
		strlist_push(&cfg.rules[RULE_FULL_OUTAGE_ROLLOUT].exempt_namespaces, "legacy"), 0);
	cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode = MODE_OFF;
	q.ns = "legacy";
	eval_with(&cfg, q, NULL, &r);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 0);
	assert_int_equal(n_rule(&r, RULE_MUTABLE_IMAGE_TAG), 0);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 1);
	assert_true(r.resp.allowed);
	result_free(&r);
	q.ns = "prod";
	eval_with(&cfg, q, NULL, &r);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 1);
	result_free(&r);
	config_clear(&cfg);
}

#define SKIPPED(value)                                                 \
	OBJ("Deployment", "apps/v1", "'rollgate.io/skip':'" value "'", \
	    MU("4", "4") TEMPLATE("", BARE("web", "nginx")))

static void test_skip_annotation(void **state)
{
	struct result r;
	struct config cfg;

	/* Spaces tolerated; warn rules silenced; enforce ones are not. */
	eval(dep(SKIPPED(" mutable-image-tag ,rollout-without-readiness,\\tfull-outage-rollout ")),
	     &r);
	assert_int_equal(n_rule(&r, RULE_MUTABLE_IMAGE_TAG), 0);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 0);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 1);
	assert_false(r.resp.allowed);
	assert_string_equal(r.v.note,
			    "rollgate.io/skip cannot silence enforced rules "
			    "\"full-outage-rollout\" (their config lacks allowSkip)");
	result_free(&r);

	/* Unknown IDs, "*" and "all" are named in a note, never fatal. */
	eval(dep(SKIPPED("mutable-image-tag, nope, *, all,,")), &r);
	assert_int_equal(n_rule(&r, RULE_MUTABLE_IMAGE_TAG), 0);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), 1);
	assert_contains(r.v.note,
			"rollgate.io/skip: unknown rule IDs \"nope\", \"*\", \"all\" ignored");
	assert_contains(r.resp.warnings[r.resp.n_warnings - 1], "unknown rule IDs");
	result_free(&r);

	/* allowSkip makes an enforce rule skippable; a custom prefix moves the key. */
	assert_int_equal(config_defaults(&cfg), 0);
	cfg.rules[RULE_FULL_OUTAGE_ROLLOUT].skippable = true;
	eval_with(&cfg, dep(SKIPPED("full-outage-rollout")), NULL, &r);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 0);
	assert_true(r.resp.allowed);
	assert_null(r.v.note);
	result_free(&r);
	free(cfg.annotation_prefix);
	cfg.annotation_prefix = strdup("example.com");
	assert_non_null(cfg.annotation_prefix);
	eval_with(&cfg, dep(SKIPPED("full-outage-rollout")), NULL, &r);
	assert_int_equal(n_rule(&r, RULE_FULL_OUTAGE_ROLLOUT), 1);
	result_free(&r);
	config_clear(&cfg);
}

static void test_skip_silences_audit(void **state)
{
	struct config cfg;
	struct result r;

	assert_int_equal(config_defaults(&cfg), 0);
	cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode = MODE_AUDIT;
	eval_with(&cfg, dep(SKIPPED("mutable-image-tag")), NULL, &r);
	assert_int_equal(n_rule(&r, RULE_MUTABLE_IMAGE_TAG), 0);
	assert_int_equal(r.resp.n_audit, 0);
	result_free(&r);
	config_clear(&cfg);
}

static void test_modes_shape_the_response(void **state)
{
	struct config cfg;
	struct result r;
	char *json;
	const char *obj = DEPLOY(
		MU("4", "4") TEMPLATE("", BARE("web", "nginx") "," BARE("side", "envoy:latest")));

	assert_int_equal(config_defaults(&cfg), 0);
	cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode = MODE_AUDIT;
	cfg.rules[RULE_ROLLOUT_WITHOUT_READINESS].mode = MODE_WARN;
	cfg.rules[RULE_FULL_OUTAGE_ROLLOUT].mode = MODE_ENFORCE;
	eval_with(&cfg, dep(obj), NULL, &r);
	/* Denied, with warnings and audit annotations alongside. */
	assert_false(r.resp.allowed);
	assert_int_equal(r.resp.code, 403);
	assert_true(strncmp(r.resp.message, "full-outage-rollout: ", 21) == 0);
	assert_int_equal(r.resp.n_warnings, 2);
	assert_contains(r.resp.warnings[0], "rollout-without-readiness: container \"web\"");
	assert_contains(r.resp.warnings[1], "rollout-without-readiness: container \"side\"");
	assert_int_equal(r.resp.n_audit, 1);
	assert_string_equal(r.resp.audit_keys[0], "mutable-image-tag");
	assert_string_equal(r.resp.audit_values[0],
			    "container \"web\" image \"nginx\" has no tag; pin a version tag or "
			    "@sha256 digest; "
			    "container \"side\" image \"envoy:latest\" uses latest; pin a version tag "
			    "or @sha256 digest");
	json = admission_encode("u1", &r.resp, false);
	assert_non_null(json);
	assert_contains(json, "\"allowed\":false");
	assert_contains(json, "\"code\":403");
	assert_contains(json, "\"auditAnnotations\":{\"mutable-image-tag\":");
	assert_contains(json, "\"warnings\":[");
	free(json);
	result_free(&r);

	/* Everything in warn: allowed, one prefixed warning per violation. */
	cfg.rules[RULE_FULL_OUTAGE_ROLLOUT].mode = MODE_WARN;
	cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode = MODE_WARN;
	eval_with(&cfg, dep(obj), NULL, &r);
	assert_true(r.resp.allowed);
	assert_null(r.resp.message);
	assert_int_equal(r.resp.n_warnings, 5);
	assert_int_equal(r.resp.n_audit, 0);
	/* Documentation order: rule 3, rule 4, rule 6. */
	assert_contains(r.resp.warnings[0], "rollout-without-readiness: ");
	assert_contains(r.resp.warnings[2], "mutable-image-tag: ");
	assert_contains(r.resp.warnings[3], "mutable-image-tag: ");
	assert_contains(r.resp.warnings[4], "full-outage-rollout: ");
	result_free(&r);

	/* Multiple enforce violations join in one denial message. */
	cfg.rules[RULE_ROLLOUT_WITHOUT_READINESS].mode = MODE_ENFORCE;
	eval_with(&cfg, dep(obj), NULL, &r);
	assert_false(r.resp.allowed);
	assert_string_equal(r.resp.message,
			    "rollout-without-readiness: container \"web\" has no readinessProbe; add "
			    "one so the rollout waits for ready pods; "
			    "rollout-without-readiness: container \"side\" has no readinessProbe; add "
			    "one so the rollout waits for ready pods");
	result_free(&r);
	config_clear(&cfg);
}

/* The API documentation advises at most 120 characters per warning: the
 * usual messages keep to it. */
static void test_warnings_fit(void **state)
{
	struct config cfg;
	struct result r;
	const char *objs[] = {
		DEPLOY("'revisionHistoryLimit':0," MU("4", "4")
			       TEMPLATE("'track':'canary'",
					"{'name':'web','image':'nginx:latest','livenessProbe':{'"
					"tcpSocket':{'port':80}}}")),
		ROLLOUT("'strategy':{'canary':{'steps':[{'setWeight':10}]}}," NOPROBE_TMPL),
		ROLLOUT("'strategy':{'canary':{}}," NOPROBE_TMPL),
		BG(""),
	};

	assert_int_equal(config_defaults(&cfg), 0);
	for (int i = 0; i < RULE_COUNT; i++)
		cfg.rules[i].mode = MODE_WARN;
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		eval_with(&cfg, i == 0 ? dep(objs[i]) : rollout(objs[i]), NULL, &r);
		assert_true(r.resp.n_warnings > 0);
		for (size_t w = 0; w < r.resp.n_warnings; w++) {
			if (tu_runes(r.resp.warnings[w]) > 120)
				fail_msg("warning over 120 characters: %s", r.resp.warnings[w]);
		}
		result_free(&r);
	}
	config_clear(&cfg);
}

/* ---- warnings: every rule shown, within the API server's budget ---- */

/* The response's warnings are what the API server would keep whole: within
 * 4096 runes, each valid, none twice, none cut by it (<= 256 runes). */
static void assert_warnings_kept(const struct admission_response *resp)
{
	size_t total = 0;

	assert_true(resp->n_warnings <= ADM_MAX_WARNINGS);
	for (size_t i = 0; i < resp->n_warnings; i++) {
		const char *w = resp->warnings[i];
		if (!tu_valid_warning(w))
			fail_msg("warning %zu is not kept by the API server: %s", i, w);
		assert_true(tu_runes(w) <= ADM_WARNING_MAX_RUNES);
		total += tu_runes(w);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(resp->warnings[j], w) == 0)
				fail_msg("warning %zu repeats %zu: %s", i, j, w);
		}
	}
	if (total > ADM_WARNINGS_MAX_RUNES)
		fail_msg("%zu runes of warnings", total);
}

/* Warnings that start with "rule-id: ". */
static size_t n_warned(const struct admission_response *resp, enum rule_id id)
{
	const char *name = rules_name(id);
	size_t n = 0, len = strlen(name);

	for (size_t i = 0; i < resp->n_warnings; i++)
		n += strncmp(resp->warnings[i], name, len) == 0 &&
			strncmp(resp->warnings[i] + len, ": ", 2) == 0;
	return n;
}

/* Every rule of the verdict is in the response: its warnings, the denial or
 * the audit annotations, as its mode says. */
static void assert_every_rule_shown(const struct result *r)
{
	for (int i = 0; i < RULE_COUNT; i++) {
		const struct violation *x = viol(r, (enum rule_id)i, NULL);
		const char *name = rules_name((enum rule_id)i);
		bool audited = false;
		if (!x)
			continue;
		for (size_t a = 0; a < r->resp.n_audit; a++)
			audited |= strcmp(r->resp.audit_keys[a], name) == 0;
		if (x->mode == MODE_WARN && n_warned(&r->resp, (enum rule_id)i) == 0)
			fail_msg("no warning of %s", name);
		if (x->mode == MODE_ENFORCE && !strstr(r->resp.message, name))
			fail_msg("%s not in the denial", name);
		if (x->mode == MODE_AUDIT && !audited)
			fail_msg("%s not audited", name);
	}
}

/* A pod template of n containers, each breaking the readiness, image tag
 * and liveness rules, named prefix + index. Returns malloc'd JSON. */
static char *many_containers(int n, const char *prefix)
{
	size_t cap = (size_t)n * 512 + 512, len = 0;
	char *buf = malloc(cap), name[256];

	assert_non_null(buf);
	len += (size_t)snprintf(
		buf, cap,
		"{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web'},"
		"'spec':{'revisionHistoryLimit':0,'replicas':4,'strategy':{'rollingUpdate':{'"
		"maxUnavailable':'100%%'}},"
		"'template':{'metadata':{'labels':{'pod-template-hash':'x'}},'spec':{'containers':[");
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		len += (size_t)snprintf(buf + len, cap - len,
					"%s{'name':'%s','image':'nginx','livenessProbe':{'tcpSocket':{"
					"'port':80}}}",
					i ? "," : "", name);
	}
	snprintf(buf + len, cap - len, "]}}}}");
	return buf;
}

/* Past RULES_MAX_PER_RULE a rule's violations are counted, not listed. */
static void test_per_rule_cap(void **state)
{
	char *obj = many_containers(40, "c");
	struct result r;

	eval(dep(obj), &r);
	assert_int_equal(n_rule(&r, RULE_ROLLOUT_WITHOUT_READINESS), RULES_MAX_PER_RULE);
	assert_int_equal(r.v.dropped[RULE_ROLLOUT_WITHOUT_READINESS], 8);
	assert_int_equal(r.v.dropped[RULE_NO_ROLLBACK_HISTORY], 0);
	assert_null(r.v.note);
	/* The webhook lists three and counts the other 37. */
	assert_int_equal(n_warned(&r.resp, RULE_ROLLOUT_WITHOUT_READINESS), RULES_WARN_PER_RULE + 1);
	assert_contains(r.resp.warnings[0],
			"rollout-without-readiness: container \"c0\" has no readinessProbe");
	assert_contains(r.resp.warnings[2], "container \"c2\"");
	assert_string_equal(r.resp.warnings[3],
			    "rollout-without-readiness: 37 more violations not shown");
	result_free(&r);
	free(obj);
}

/* 40 containers breaking three rules, and three more rules on the
 * Deployment: every rule is in the response, whatever its mode. */
static void test_warnings_every_rule(void **state)
{
	static const enum rule_id rules[] = { RULE_ROLLOUT_WITHOUT_READINESS,
					      RULE_MUTABLE_IMAGE_TAG,
					      RULE_NO_ROLLBACK_HISTORY,
					      RULE_FULL_OUTAGE_ROLLOUT,
					      RULE_LIVENESS_WITHOUT_STARTUP_GRACE,
					      RULE_POD_TEMPLATE_HASH_TAMPER };
	char *obj = many_containers(40, "c");
	struct config cfg;
	struct result r;

	assert_int_equal(config_defaults(&cfg), 0);
	for (int i = 0; i < RULE_COUNT; i++)
		cfg.rules[i].mode = MODE_WARN;
	eval_with(&cfg, dep(obj), NULL, &r);
	assert_true(r.resp.allowed);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		size_t want = n_rule(&r, rules[i]) > RULES_WARN_PER_RULE ? RULES_WARN_PER_RULE + 1 : 1;
		assert_int_equal(n_warned(&r.resp, rules[i]), want);
	}
	assert_int_equal(r.resp.n_warnings, 3 * (RULES_WARN_PER_RULE + 1) + 3);
	assert_warnings_kept(&r.resp);
	assert_every_rule_shown(&r);
	result_free(&r);

	/* The defaults: two of them deny, the rest warn; an audited one. */
	config_clear(&cfg);
	assert_int_equal(config_defaults(&cfg), 0);
	cfg.rules[RULE_MUTABLE_IMAGE_TAG].mode = MODE_AUDIT;
	eval_with(&cfg, dep(obj), NULL, &r);
	assert_false(r.resp.allowed);
	assert_warnings_kept(&r.resp);
	assert_every_rule_shown(&r);
	assert_int_equal(n_warned(&r.resp, RULE_FULL_OUTAGE_ROLLOUT), 0);
	assert_int_equal(n_warned(&r.resp, RULE_MUTABLE_IMAGE_TAG), 1); /* the 8 dropped */
	assert_string_equal(r.resp.warnings[4], "mutable-image-tag: 8 more violations not shown");
	result_free(&r);
	config_clear(&cfg);
	free(obj);
}

/* Adds a violation to a verdict built by hand. */
static void add_violation(struct verdict *v, enum rule_id id, enum rule_mode mode, const char *msg)
{
	struct violation *nv = realloc(v->v, (v->n + 1) * sizeof(*nv));

	assert_non_null(nv);
	v->v = nv;
	nv[v->n].rule = id;
	nv[v->n].mode = mode;
	nv[v->n].message = strdup(msg);
	nv[v->n].path = strdup("spec");
	assert_non_null(nv[v->n].message);
	v->n++;
}

/* text of n runes: a prefix, then the multi-byte character ch repeated. */
static void fill(char *buf, size_t len, const char *prefix, const char *ch, size_t n)
{
	size_t o = (size_t)snprintf(buf, len, "%s", prefix), r = tu_runes(buf);

	for (; r < n && o + strlen(ch) < len; r++)
		o += (size_t)snprintf(buf + o, len - o, "%s", ch);
}

/* Every rule at once, with long messages of 2-, 3- and 4-byte characters
 * and long notes: the budget is counted in runes, nothing is cut inside a
 * character, and every rule still appears. */
static void test_warnings_utf8_budget(void **state)
{
	static const char *const chars[] = { "\xc3\xbc", "\xe2\x82\xac", "\xf0\x9f\x9a\x80" };
	struct verdict v = { 0 };
	struct admission_response resp;
	char msg[2048], note[8 * 600] = "";
	size_t bytes = 0;

	for (int i = 0; i < RULE_COUNT; i++) {
		for (int k = 0; k < RULES_MAX_PER_RULE; k++) {
			char prefix[32];
			snprintf(prefix, sizeof(prefix), "m%d.%d ", i, k);
			fill(msg, sizeof(msg), prefix, chars[(i + k) % 3], 300);
			add_violation(&v, (enum rule_id)i, MODE_WARN, msg);
		}
		v.dropped[i] = 5;
	}
	for (int k = 0, used = 0; k < 6; k++) {
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "%snote %d ", k ? "\n" : "", k);
		fill(msg, sizeof(msg), prefix, chars[k % 3], 200);
		used += snprintf(note + used, sizeof(note) - (size_t)used, "%s", msg);
		assert_true((size_t)used < sizeof(note));
	}
	v.note = strdup(note);
	admission_response_init(&resp);
	assert_int_equal(rules_decide(&v, &resp), 0);
	assert_warnings_kept(&resp);
	for (int i = 0; i < RULE_COUNT; i++) {
		/* One message, cut to 256 runes on a character, and the count. */
		assert_int_equal(n_warned(&resp, (enum rule_id)i), 2);
	}
	for (size_t i = 0; i < resp.n_warnings; i++)
		bytes += strlen(resp.warnings[i]);
	assert_true(bytes > ADM_WARNINGS_MAX_RUNES);
	assert_contains(resp.warnings[0], "m0.0 ");
	assert_int_equal(tu_runes(resp.warnings[0]), ADM_WARNING_MAX_RUNES);
	assert_contains(resp.warnings[1], "replicaset-direct-edit: 36 more violations not shown");
	/* The notes that did not fit are counted; the response never needed
	 * its own "not shown" line. */
	assert_contains(resp.warnings[resp.n_warnings - 1], "more notes not shown");
	assert_int_equal(resp.warnings_dropped, 0);
	admission_response_clear(&resp);
	verdict_clear(&v);
}

/* The budget edge, in runes: three 119-rune lines of 3-byte characters fit
 * 357 runes (1017 bytes) exactly; one rune less and the third is counted. */
static void test_warnings_budget_edge(void **state)
{
	struct rules_budget b = { 3, ADM_WARNING_MAX_RUNES, 357, 10 };
	struct verdict v = { 0 };
	struct rules_lines l;
	char msg[512];

	for (int k = 0; k < 3; k++) {
		char prefix[16];
		snprintf(prefix, sizeof(prefix), "%d", k);
		fill(msg, sizeof(msg), prefix, "\xe2\x82\xac", 100);
		add_violation(&v, RULE_MUTABLE_IMAGE_TAG, MODE_WARN, msg);
	}
	assert_int_equal(rules_warnings(&v, &b, &l), 0);
	assert_int_equal(l.n, 3);
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(tu_runes(l.l[i].text), 119);
		assert_int_equal(l.l[i].violation, i);
		assert_int_equal(l.l[i].rule, RULE_MUTABLE_IMAGE_TAG);
	}
	rules_lines_clear(&l);
	b.runes = 356;
	assert_int_equal(rules_warnings(&v, &b, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.l[1].violation, 1);
	assert_string_equal(l.l[2].text, "mutable-image-tag: 1 more violations not shown");
	assert_int_equal(l.l[2].violation, RULES_NO_VIOLATION);
	rules_lines_clear(&l);
	/* Far too small: still one line per rule. */
	b.runes = 10;
	assert_int_equal(rules_warnings(&v, &b, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.l[1].text, "mutable-image-tag: 2 more violations not shown");
	rules_lines_clear(&l);
	verdict_clear(&v);
}

/* Exact duplicates are listed once and not counted as more. */
static void test_warnings_dedupe(void **state)
{
	struct rules_budget b = { 3, ADM_WARNING_MAX_RUNES, 4000, 60 };
	struct verdict v = { 0 };
	struct admission_response resp;
	struct rules_lines l;

	for (int k = 0; k < 5; k++)
		add_violation(&v, RULE_MUTABLE_IMAGE_TAG, MODE_WARN,
			      "container \"web\" image \"nginx\" has no tag");
	add_violation(&v, RULE_MUTABLE_IMAGE_TAG, MODE_WARN,
		      "container \"side\" image \"envoy\" has no tag");
	v.note = strdup("same note\nsame note\nother note");
	admission_response_init(&resp);
	assert_int_equal(rules_decide(&v, &resp), 0);
	assert_int_equal(resp.n_warnings, 4);
	assert_int_equal(rules_warnings(&v, &b, &l), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.l[1].violation, 5);
	assert_int_equal(l.l[2].rule, RULE_COUNT);
	rules_lines_clear(&l);
	assert_string_equal(resp.warnings[0],
			    "mutable-image-tag: container \"web\" image \"nginx\" has no tag");
	assert_string_equal(resp.warnings[1],
			    "mutable-image-tag: container \"side\" image \"envoy\" has no tag");
	assert_string_equal(resp.warnings[2], "same note");
	assert_string_equal(resp.warnings[3], "other note");
	admission_response_clear(&resp);
	verdict_clear(&v);
}

/* Shapes Kubernetes would reject must not crash or mislead the gate. */
static void test_odd_shapes(void **state)
{
	static const char *const objs[] = {
		"{}",
		"{'spec':null}",
		"{'spec':[]}",
		"{'spec':{'template':'x','strategy':7}}",
		"{'spec':{'template':{'spec':{'containers':{'name':'web'}}}}}",
		"{'spec':{'template':{'metadata':{'labels':['track']},'spec':{'containers':[7,null,'x'"
		",[]]}}}}",
		"{'spec':{'template':{'spec':{'containers':[{'name':7,'image':7,'livenessProbe':7}]}}}"
		"}",
		"{'spec':{'replicas':1e300,'strategy':{'canary':[],'blueGreen':7,'rollingUpdate':[]}}"
		"}",
		"{'spec':{'replicas':5,'strategy':{'canary':{'steps':{'a':1}}}}}",
		"{'spec':{'replicas':5,'strategy':{'canary':{'steps':[7,null,{'setWeight':'x'},{'"
		"setWeight':1e300}]}}}}",
		"{'metadata':{'annotations':{'rollgate.io/"
		"skip':7},'ownerReferences':{'kind':'Deployment'}},'spec':{}}",
		"{'metadata':{'annotations':{'rollgate.io/skip':',,, "
		",'},'ownerReferences':[7,{'kind':7},{'kind':'Deployment','apiVersion':'apps'}]}}",
	};
	struct rq kinds[] = { dep(NULL),     sts(NULL),     dms(NULL),     rset(NULL),
			      rollout(NULL), flagger(NULL), rs_scale(NULL) };

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
			struct result r;
			struct rq q = kinds[k];
			q.obj = objs[i];
			q.old = k == 6 ? objs[i] : NULL;
			eval(q, &r);
			result_free(&r);
			q.op = "UPDATE";
			q.old = objs[(i + 1) % (sizeof(objs) / sizeof(objs[0]))];
			eval(q, &r);
			result_free(&r);
		}
	}
}

static void test_verdict_free_null_safe(void **state)
{
	struct verdict v = { 0 };

	verdict_clear(NULL);
	verdict_clear(&v);
	verdict_clear(&v);
}

/* ---- the shared corpus ---- */

/* Wraps a Kubernetes object file as CREATE and UPDATE requests under every
 * kind the gate knows, and evaluates them. */
static void corpus_one(const char *path)
{
	static const struct {
		const char *group, *kind, *resource, *sub;
	} as[] = {
		{ "apps", "Deployment", "deployments", "" },
		{ "apps", "StatefulSet", "statefulsets", "" },
		{ "apps", "DaemonSet", "daemonsets", "" },
		{ "apps", "ReplicaSet", "replicasets", "" },
		{ "autoscaling", "Scale", "replicasets", "scale" },
		{ "argoproj.io", "Rollout", "rollouts", "" },
		{ "flagger.app", "Canary", "canaries", "" },
	};
	size_t len;
	char *obj = tu_read_file(path, &len);

	assert_non_null(obj);
	/* review() turns single quotes into double ones: the corpus has none. */
	assert_null(strchr(obj, '\''));
	for (size_t i = 0; i < sizeof(as) / sizeof(as[0]); i++) {
		struct rq q = { .group = as[i].group,
				.kind = as[i].kind,
				.resource = as[i].resource,
				.sub = as[i].sub,
				.obj = obj };
		struct result r;
		char *json;
		eval(q, &r);
		json = admission_encode("u1", &r.resp, false);
		assert_non_null(json);
		free(json);
		result_free(&r);
		q.op = "UPDATE";
		q.old = obj;
		eval(q, &r);
		result_free(&r);
	}
	free(obj);
}

static void test_corpus_no_crash(void **state)
{
	const char *corpus = tu_corpus();
	char pattern[4200];
	glob_t g;

	if (!corpus)
		skip();
	snprintf(pattern, sizeof(pattern), "%s/upstream/kubernetes-api/apps.v1.*.json", corpus);
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 1);
	for (size_t i = 0; i < g.gl_pathc; i++)
		corpus_one(g.gl_pathv[i]);
	globfree(&g);
}

/* The rule catalog: each entry at its rule's index with a distinct rule ID
 * of lower-case words, found again by that ID, and a summary; names past
 * the catalog are "unknown". */
static void test_catalog(void **state)
{
	for (int i = 0; i < RULE_COUNT; i++) {
		const struct rules_entry *e = &rules_catalog[i];
		assert_int_equal(e->id, i);
		assert_ptr_equal(rules_find(e->name), e);
		assert_string_equal(rules_name((enum rule_id)i), e->name);
		assert_true(strspn(e->name, "abcdefghijklmnopqrstuvwxyz-") == strlen(e->name));
		assert_true(e->name[0] != '-' && e->name[strlen(e->name) - 1] != '-');
		assert_true(e->default_mode >= MODE_AUDIT && e->default_mode <= MODE_ENFORCE);
		assert_true(e->summary && *e->summary && !strchr(e->summary, '\n'));
		assert_non_null(e->check);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(rules_catalog[j].name, e->name);
	}
	assert_null(rules_find("Full-Outage-Rollout"));
	assert_null(rules_find("full-outage-rollout "));
	assert_null(rules_find(""));
	assert_string_equal(rules_name(RULE_COUNT), "unknown");
	assert_string_equal(rules_family_name(rules_catalog[RULE_MUTABLE_IMAGE_TAG].family),
			    "workload");
	assert_string_equal(rules_family_name(rules_catalog[RULE_FULL_OUTAGE_ROLLOUT].family),
			    "rollout");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delete_and_connect_yield_nothing),
		cmocka_unit_test(test_other_kinds_and_subresources_ignored),
		cmocka_unit_test(test_controllers_are_not_judged),
		cmocka_unit_test(test_update_judged_on_new_object),
		cmocka_unit_test(test_rs_create_with_owner_denied),
		cmocka_unit_test(test_rs_create_by_controller_or_bare_allowed),
		cmocka_unit_test(test_rs_spec_update_denied_naming_owner),
		cmocka_unit_test(test_rs_metadata_only_update_allowed),
		cmocka_unit_test(test_rs_spec_compare_is_case_sensitive),
		cmocka_unit_test(test_rs_scale_subresource),
		cmocka_unit_test(test_rollout_canary_needs_readiness),
		cmocka_unit_test(test_canary_labels_and_no_double_report),
		cmocka_unit_test(test_rolling_readiness_reports_when_canary_rule_off),
		cmocka_unit_test(test_flagger_target),
		cmocka_unit_test(test_rolling_update_readiness),
		cmocka_unit_test(test_image_tags),
		cmocka_unit_test(test_image_tags_every_container_kind),
		cmocka_unit_test(test_no_rollback_history),
		cmocka_unit_test(test_full_outage_rounding),
		cmocka_unit_test(test_full_outage_response_and_malformed),
		cmocka_unit_test(test_full_outage_statefulset_rollout_daemonset),
		cmocka_unit_test(test_liveness_grace),
		cmocka_unit_test(test_unguarded_canary_steps),
		cmocka_unit_test(test_unguarded_blue_green),
		cmocka_unit_test(test_pod_template_hash_tamper),
		cmocka_unit_test(test_global_namespace_exemption),
		cmocka_unit_test(test_rule_namespace_exemption_and_off),
		cmocka_unit_test(test_skip_annotation),
		cmocka_unit_test(test_skip_silences_audit),
		cmocka_unit_test(test_modes_shape_the_response),
		cmocka_unit_test(test_warnings_fit),
		cmocka_unit_test(test_per_rule_cap),
		cmocka_unit_test(test_warnings_every_rule),
		cmocka_unit_test(test_warnings_utf8_budget),
		cmocka_unit_test(test_warnings_budget_edge),
		cmocka_unit_test(test_warnings_dedupe),
		cmocka_unit_test(test_odd_shapes),
		cmocka_unit_test(test_verdict_free_null_safe),
		cmocka_unit_test(test_corpus_no_crash),
		cmocka_unit_test(test_catalog),
	};

	return cmocka_run_group_tests_name("rules", tests, setup, teardown);
}
