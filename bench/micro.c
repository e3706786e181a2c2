/*
 * Micro-benchmarks of rollgate's hot paths, linked against librollgate.a the
 * way the server is (scripts/bench.sh builds and runs it; docs/benchmarks.md).
 *
 *   micro CREATE.json UPDATE.json OBJECTS_DIR [SECONDS]
 *
 * Prints one Markdown table row per benchmark: name, input bytes,
 * iterations, ns/op and MB/s (10^6 bytes of input per second). Iterations
 * are calibrated so each benchmark runs for about SECONDS (default 1), in
 * REPEATS rounds; the fastest round is reported, which filters out time
 * stolen by other processes on a shared machine.
 *
 * MICRO_ONLY=TEXT runs only the benchmarks whose name contains TEXT (for
 * bench/callgrind.sh, which counts instructions per operation).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "admission.h"
#include "config.h"
#include "confighash.h"
#include "jsonutil.h"
#include "log.h"
#include "manifest.h"
#include "mutate.h"
#include "objsource.h"
#include "refs.h"
#include "rgtime.h"
#include "rules.h"
#include "yamljson.h"

#define BODY_MAX (1u << 20)
#define BIG_BYTES (1u << 20)
#define BIG_KEYS 64
#define REPEATS 3

/* Everything one benchmark reads; set up once, never modified by an op. */
struct fixture {
	struct config cfg;
	const char *body; /* NUL-terminated review */
	size_t len;
	struct objsource *src;
	cJSON *big; /* ConfigMap or Secret with BIG_BYTES of values */
	enum obj_kind big_kind;
	struct refset set;
	char *yaml;
	size_t yaml_len;
};

typedef int (*op_fn)(const struct fixture *fx);

static void die(const char *what, const char *why)
{
	fprintf(stderr, "micro: %s: %s\n", what, why);
	exit(1);
}

static char *slurp(const char *path, size_t *len)
{
	char err[256];
	char *buf = manifest_slurp(path, BODY_MAX, len, err, sizeof(err));

	if (!buf)
		die(path, err);
	return buf;
}

/* decode + rules + encode: the whole /validate review without the HTTP edge. */
static int op_validate(const struct fixture *fx)
{
	struct admission_request req = { 0 };
	struct admission_response resp;
	struct verdict v = { 0 };
	char err[256], *out = NULL;
	int rc = -1;

	admission_response_init(&resp);
	if (admission_decode(fx->body, fx->len, &req, err, sizeof(err)) < 0)
		goto out;
	if (rules_evaluate(&fx->cfg, &req, NULL, &v) < 0 || rules_decide(&v, &resp) < 0)
		goto out;
	out = admission_encode(req.uid, &resp, false);
	rc = out && resp.allowed ? 0 : -1;
out:
	free(out);
	verdict_clear(&v);
	admission_response_clear(&resp);
	admission_request_clear(&req);
	return rc;
}

/* The /mutate review with the file source: decode, plan, look up the three
 * objects, hash, build the patch, encode. */
static int op_mutate(const struct fixture *fx)
{
	struct admission_request req = { 0 };
	struct admission_response resp;
	struct stamp_plan plan = { 0 };
	char err[256], *out = NULL;
	int rc = -1;

	admission_response_init(&resp);
	if (admission_decode(fx->body, fx->len, &req, err, sizeof(err)) < 0)
		goto out;
	if (mutate_plan(&fx->cfg, &req, &plan, err, sizeof(err)) < 0 || !plan.applies)
		goto out;
	if (objsource_resolve(fx->src, &plan.batch, 1000, NULL, NULL) != 0)
		goto out;
	if (mutate_finish(&fx->cfg, &req, &plan, &resp) < 0)
		goto out;
	out = admission_encode(req.uid, &resp, true);
	rc = out && resp.patch ? 0 : -1;
out:
	free(out);
	stamp_plan_clear(&plan);
	admission_response_clear(&resp);
	admission_request_clear(&req);
	return rc;
}

/* admission_decode alone: strict parse, duplicate-key check, field reads. */
static int op_decode(const struct fixture *fx)
{
	struct admission_request req = { 0 };
	char err[256];
	int rc = admission_decode(fx->body, fx->len, &req, err, sizeof(err));

	admission_request_clear(&req);
	return rc;
}

/* The digests of one 1 MiB object, then the config hash over them. */
static int op_confighash(const struct fixture *fx)
{
	struct obj_digest d = { 0 };
	const struct obj_digest *objs[1] = { &d };
	char err[256], out[CONFIGHASH_VALUE_LEN];
	int rc;

	if (confighash_digest_object(fx->big, fx->big_kind, &d, err, sizeof(err)) < 0)
		return -1;
	rc = confighash_compute(&fx->set, objs, NULL, 0, out);
	confighash_digest_clear(&d);
	return rc;
}

static int op_yaml(const struct fixture *fx)
{
	struct yaml_docs docs = { 0 };
	char err[256];
	int rc = yamljson_load(fx->yaml, fx->yaml_len, &docs, err, sizeof(err));

	yamljson_clear(&docs);
	return rc;
}

static double time_ops(op_fn op, const struct fixture *fx, unsigned long n)
{
	struct timespec t0;

	rgtime_now(&t0);
	for (unsigned long i = 0; i < n; i++)
		if (op(fx) < 0)
			return -1;
	return rgtime_elapsed_s(&t0);
}

/* Doubles the count until a batch takes 20 ms, scales it to a round of
 * seconds / REPEATS, and keeps the fastest round. */
static int run(const char *name, op_fn op, const struct fixture *fx, size_t bytes, double seconds)
{
	const char *only = getenv("MICRO_ONLY");
	unsigned long n = 1;
	double t, best = 0;

	if (only && *only && !strstr(name, only))
		return 0;
	for (;;) {
		t = time_ops(op, fx, n);
		if (t < 0) {
			fprintf(stderr, "micro: %s: operation failed\n", name);
			return -1;
		}
		if (t >= 0.02)
			break;
		n *= 2;
	}
	n = (unsigned long)((double)n * seconds / REPEATS / t) + 1;
	for (int r = 0; r < REPEATS; r++) {
		t = time_ops(op, fx, n);
		if (t < 0)
			return -1;
		if (r == 0 || t < best)
			best = t;
	}
	printf("| %s | %zu | %d × %lu | %.0f | %.1f |\n", name, bytes, REPEATS, n,
	       best / (double)n * 1e9, (double)bytes * (double)n / best / 1e6);
	fflush(stdout);
	return 0;
}

/* The CREATE review with metadata.managedFields removed: what managedFields
 * cost the parser. Returns a malloc'd body. */
static char *without_managed_fields(const char *body, size_t len, size_t *outlen)
{
	cJSON *doc = NULL, *meta;
	char err[256], *out;

	if (json_parse_strict(body, len, &doc, err, sizeof(err)) < 0)
		die("review", err);
	meta = (cJSON *)json_get_path(doc, "request", "object", "metadata", NULL);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
	out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!out)
		die("review", "out of memory");
	*outlen = strlen(out);
	return out;
}

/* A ConfigMap (values as text) or Secret (values base64) holding BIG_BYTES
 * of decoded data in BIG_KEYS keys, named "big". */
static cJSON *big_object(enum obj_kind kind)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t per = BIG_BYTES / BIG_KEYS, vlen = kind == OBJ_SECRET ? per / 3 * 4 : per;
	cJSON *obj = cJSON_CreateObject(), *meta, *data;
	char *val = malloc(vlen + 1), key[32];

	if (!obj || !val)
		die("fixture", "out of memory");
	cJSON_AddStringToObject(obj, "apiVersion", "v1");
	cJSON_AddStringToObject(obj, "kind", kind == OBJ_SECRET ? "Secret" : "ConfigMap");
	meta = cJSON_AddObjectToObject(obj, "metadata");
	cJSON_AddStringToObject(meta, "name", "big");
	data = cJSON_AddObjectToObject(obj, "data");
	for (int k = 0; k < BIG_KEYS; k++) {
		for (size_t i = 0; i < vlen; i++)
			val[i] = kind == OBJ_SECRET ? b64[(i * 7 + (size_t)k) % 64]
						    : (char)(' ' + (i * 7 + (size_t)k) % 95);
		if (kind == OBJ_CONFIGMAP)
			for (size_t i = 79; i < vlen; i += 80)
				val[i] = '\n';
		val[vlen] = '\0';
		snprintf(key, sizeof(key), "file-%02d.conf", k);
		if (!cJSON_AddStringToObject(data, key, val))
			die("fixture", "out of memory");
	}
	free(val);
	return obj;
}

static const char yaml_unit[] = "---\n"
				"apiVersion: apps/v1\n"
				"kind: Deployment\n"
				"metadata:\n"
				"  name: web-%d\n"
				"  namespace: shop\n"
				"  labels:\n"
				"    app.kubernetes.io/name: web\n"
				"    app.kubernetes.io/part-of: shop\n"
				"  annotations:\n"
				"    rollgate.io/reload: \"true\"\n"
				"spec:\n"
				"  replicas: 3\n"
				"  revisionHistoryLimit: 10\n"
				"  selector:\n"
				"    matchLabels:\n"
				"      app: web-%d\n"
				"  strategy:\n"
				"    type: RollingUpdate\n"
				"    rollingUpdate:\n"
				"      maxUnavailable: 25%%\n"
				"      maxSurge: 1\n"
				"  template:\n"
				"    metadata:\n"
				"      labels:\n"
				"        app: web-%d\n"
				"    spec:\n"
				"      containers:\n"
				"      - name: web\n"
				"        image: registry.example.com/shop/web:1.4.2\n"
				"        ports:\n"
				"        - containerPort: 8080\n"
				"          protocol: TCP\n"
				"        envFrom:\n"
				"        - configMapRef:\n"
				"            name: web-config-%d\n"
				"        env:\n"
				"        - name: DB_PASSWORD\n"
				"          valueFrom:\n"
				"            secretKeyRef:\n"
				"              name: web-db\n"
				"              key: DB_PASSWORD\n"
				"        resources:\n"
				"          requests: {cpu: 250m, memory: 256Mi}\n"
				"          limits: {cpu: \"1\", memory: 512Mi}\n"
				"        readinessProbe:\n"
				"          httpGet: {path: /ready, port: 8080}\n"
				"          periodSeconds: 5\n"
				"        livenessProbe:\n"
				"          httpGet: {path: /live, port: 8080}\n"
				"          initialDelaySeconds: 10\n"
				"---\n"
				"apiVersion: v1\n"
				"kind: ConfigMap\n"
				"metadata:\n"
				"  name: web-config-%d\n"
				"  namespace: shop\n"
				"data:\n"
				"  LOG_LEVEL: info\n"
				"  CACHE_TTL: 30s\n"
				"  enabled: \"yes\"\n"
				"  app.properties: |\n"
				"    feature.checkout=true\n"
				"    cache.ttl=30s\n"
				"    upstream.timeout=2s\n";

/* A realistic manifest stream of at least BIG_BYTES: Deployment + ConfigMap
 * pairs with distinct names. */
static char *yaml_stream(size_t *len)
{
	size_t cap = BIG_BYTES + 2 * sizeof(yaml_unit) + 64, n = 0;
	char *buf = malloc(cap);

	if (!buf)
		die("fixture", "out of memory");
	for (int i = 0; n < BIG_BYTES; i++)
		n += (size_t)snprintf(buf + n, cap - n, yaml_unit, i, i, i, i, i);
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	struct fixture fx;
	char err[512], *create, *update, *bare;
	size_t create_len, update_len, bare_len;
	double secs = 1.0;
	int rc = 0;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: micro CREATE.json UPDATE.json OBJECTS_DIR [SECONDS]\n");
		return 2;
	}
	if (argc == 5) {
		errno = 0;
		secs = strtod(argv[4], NULL);
		if (errno || secs <= 0 || secs > 60)
			die(argv[4], "SECONDS must be in (0, 60]");
	}
	log_setup(LOG_ERROR, LOG_FORMAT_JSON);
	memset(&fx, 0, sizeof(fx));
	if (config_defaults(&fx.cfg) < 0)
		die("config", "out of memory");
	create = slurp(argv[1], &create_len);
	update = slurp(argv[2], &update_len);
	bare = without_managed_fields(create, create_len, &bare_len);
	fx.src = objsource_files_new(argv[3], err, sizeof(err));
	if (!fx.src)
		die(argv[3], err);
	if (refs_add_list(&fx.set, OBJ_CONFIGMAP, "big", "bench") < 0)
		die("refs", "out of memory");
	refs_finish(&fx.set);
	fx.yaml = yaml_stream(&fx.yaml_len);

	printf("| benchmark | input bytes | rounds × iterations | ns/op (best round) | MB/s |\n");
	printf("|---|---:|---:|---:|---:|\n");
	fx.body = create, fx.len = create_len;
	rc |= run("validate: decode + rules + encode (CREATE)", op_validate, &fx, fx.len, secs);
	rc |= run("mutate: decode + plan + file lookups + hash + patch + encode (CREATE)", op_mutate,
		  &fx, fx.len, secs);
	rc |= run("decode only (CREATE)", op_decode, &fx, fx.len, secs);
	fx.body = bare, fx.len = bare_len;
	rc |= run("decode only (CREATE without managedFields)", op_decode, &fx, fx.len, secs);
	fx.body = update, fx.len = update_len;
	rc |= run("validate: decode + rules + encode (UPDATE)", op_validate, &fx, fx.len, secs);
	rc |= run("mutate: decode + plan + file lookups + hash + patch + encode (UPDATE)", op_mutate,
		  &fx, fx.len, secs);
	rc |= run("decode only (UPDATE)", op_decode, &fx, fx.len, secs);

	fx.big = big_object(OBJ_CONFIGMAP), fx.big_kind = OBJ_CONFIGMAP;
	rc |= run("config hash: ConfigMap 1 MiB in 64 keys (digest + compute)", op_confighash, &fx,
		  BIG_BYTES, secs);
	cJSON_Delete(fx.big);
	fx.big = big_object(OBJ_SECRET), fx.big_kind = OBJ_SECRET;
	rc |= run("config hash: Secret 1 MiB in 64 keys, base64 (digest + compute)", op_confighash,
		  &fx, BIG_BYTES, secs);
	cJSON_Delete(fx.big);

	rc |= run("YAML to JSON: 1 MiB stream of Deployment + ConfigMap (yamljson_load)", op_yaml, &fx,
		  fx.yaml_len, secs);

	free(fx.yaml);
	refs_clear(&fx.set);
	objsource_free(fx.src);
	config_clear(&fx.cfg);
	free(bare);
	free(update);
	free(create);
	return rc ? 1 : 0;
}
