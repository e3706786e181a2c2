/*
 * Reading the YAML config file over the defaults. Every problem names the
 * file, the line and the key.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "jsonutil.h"
#include "labelsel.h"
#include "manifest.h"
#include "rules.h"
#include "yamljson.h"

#define CONFIG_MAX_BYTES (1 << 20)
#define HMAC_KEY_MAX_BYTES 4096
#define LIST_MAX_ITEMS 4096

/* Context for reading one file: where errors point. */
struct cfgread {
	const char *name;
	const struct yaml_docs *docs;
	char *err;
	size_t errlen;
};

static int cfg_fail(struct cfgread *r, const cJSON *node, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cfg_fail(struct cfgread *r, const cJSON *node, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "%s:%d: %s: %s", r->name, yamljson_line(r->docs, node), key, what);
	return -1;
}

static int read_string(struct cfgread *r, const cJSON *v, const char *key, char **out)
{
	char *s;

	if (!cJSON_IsString(v) || !*v->valuestring)
		return cfg_fail(r, v, key, "expected a non-empty string");
	s = strdup(v->valuestring);
	if (!s)
		return cfg_fail(r, v, key, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

/* A label selector, checked with labelsel: the API would refuse it later. */
static int read_selector(struct cfgread *r, const cJSON *v, const char *key, char **out)
{
	struct labelsel *sel = NULL;
	char why[200];

	if (read_string(r, v, key, out) < 0)
		return -1;
	if (labelsel_parse(*out, &sel, why, sizeof(why)) < 0)
		return cfg_fail(r, v, key, "invalid label selector: %s", why);
	labelsel_free(sel);
	return 0;
}

static int read_strlist(struct cfgread *r, const cJSON *v, const char *key, struct strlist *out)
{
	const cJSON *item;

	if (!cJSON_IsArray(v))
		return cfg_fail(r, v, key, "expected a list of strings");
	if (cJSON_GetArraySize(v) > LIST_MAX_ITEMS)
		return cfg_fail(r, v, key, "more than %d items", LIST_MAX_ITEMS);
	strlist_clear(out);
	cJSON_ArrayForEach(item, v) {
		if (!cJSON_IsString(item) || !*item->valuestring)
			return cfg_fail(r, item, key, "expected a non-empty string item");
		if (strlist_push(out, item->valuestring) < 0)
			return cfg_fail(r, item, key, "out of memory");
	}
	return 0;
}

static int read_mode(struct cfgread *r, const cJSON *v, const char *key, enum rule_mode *out)
{
	/* YAML 1.1 reads a bare `off` as false; it can only mean the mode. */
	if (cJSON_IsFalse(v)) {
		*out = MODE_OFF;
		return 0;
	}
	if (!cJSON_IsString(v) || config_mode_from_name(v->valuestring, out) < 0)
		return cfg_fail(r, v, key, "mode must be one of enforce, warn, audit, off");
	return 0;
}

/* Parses "2s", "500ms" or a bare number of seconds into milliseconds. */
static int read_duration_ms(struct cfgread *r, const cJSON *v, const char *key, unsigned *out)
{
	double d;
	char *end;

	if (cJSON_IsNumber(v)) {
		d = v->valuedouble * 1000.0;
	} else if (cJSON_IsString(v)) {
		errno = 0;
		d = strtod(v->valuestring, &end);
		if (errno || end == v->valuestring)
			return cfg_fail(r, v, key, "expected a duration such as 2s or 500ms");
		if (strcmp(end, "ms") == 0)
			;
		else if (strcmp(end, "s") == 0 || *end == '\0')
			d *= 1000.0;
		else
			return cfg_fail(r, v, key, "expected a duration such as 2s or 500ms");
	} else {
		return cfg_fail(r, v, key, "expected a duration such as 2s or 500ms");
	}
	if (!(d >= 1.0 && d <= 60000.0))
		return cfg_fail(r, v, key, "must be between 1ms and 60s");
	*out = (unsigned)d;
	return 0;
}

static int read_stamp(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "stamp", "expected a mapping");
	cJSON_ArrayForEach(m, v) {
		if (strcmp(m->string, "mode") == 0) {
			if (cJSON_IsString(m) && strcmp(m->valuestring, "opt-in") == 0)
				cfg->stamp_mode = STAMP_OPT_IN;
			else if (cJSON_IsString(m) && strcmp(m->valuestring, "all") == 0)
				cfg->stamp_mode = STAMP_ALL;
			else
				return cfg_fail(r, m, "stamp.mode", "must be opt-in or all");
		} else if (strcmp(m->string, "holdUntilConfigExists") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, "stamp.holdUntilConfigExists",
						"expected true or false");
			cfg->stamp_hold = cJSON_IsTrue(m);
		} else if (strcmp(m->string, "hmacKeyFile") == 0) {
			if (read_string(r, m, "stamp.hmacKeyFile", &cfg->hmac_key_file) < 0)
				return -1;
		} else {
			return cfg_fail(r, m, m->string,
					"unknown key in stamp (known: mode, holdUntilConfigExists, "
					"hmacKeyFile)");
		}
	}
	return 0;
}

static int read_watch(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "watch", "expected a mapping");
	cJSON_ArrayForEach(m, v) {
		if (strcmp(m->string, "namespaces") == 0) {
			if (read_strlist(r, m, "watch.namespaces", &cfg->watch_namespaces) < 0)
				return -1;
		} else if (strcmp(m->string, "labelSelector") == 0) {
			if (read_string(r, m, "watch.labelSelector", &cfg->watch_label_selector) < 0)
				return -1;
		} else {
			return cfg_fail(r, m, m->string,
					"unknown key in watch (known: namespaces, labelSelector)");
		}
	}
	return 0;
}

static int read_reload(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;
	long long n;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "reload", "expected a mapping");
	cJSON_ArrayForEach(m, v) {
		if (strcmp(m->string, "enabled") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, "reload.enabled", "expected true or false");
			cfg->reload_enabled = cJSON_IsTrue(m);
		} else if (strcmp(m->string, "rate") == 0) {
			if (!cJSON_IsNumber(m) || !(m->valuedouble > 0 && m->valuedouble <= 1000))
				return cfg_fail(r, m, "reload.rate",
						"expected patches per second, above 0 and at most "
						"1000");
			cfg->reload_rate = m->valuedouble;
		} else if (strcmp(m->string, "burst") == 0) {
			if (json_number_int(m, &n) < 0 || n < 1 || n > 100000)
				return cfg_fail(r, m, "reload.burst",
						"expected a whole number from 1 to 100000");
			cfg->reload_burst = (unsigned)n;
		} else if (strcmp(m->string, "coalesceWindow") == 0) {
			if (read_duration_ms(r, m, "reload.coalesceWindow", &cfg->reload_window_ms) <
			    0)
				return -1;
		} else if (strcmp(m->string, "ignoreNamespaces") == 0) {
			if (read_strlist(r, m, "reload.ignoreNamespaces",
					 &cfg->reload_ignore_namespaces) < 0)
				return -1;
		} else if (strcmp(m->string, "namespaceSelector") == 0) {
			if (read_selector(r, m, "reload.namespaceSelector",
					  &cfg->reload_namespace_selector) < 0)
				return -1;
		} else if (strcmp(m->string, "resourceLabelSelector") == 0) {
			if (read_selector(r, m, "reload.resourceLabelSelector",
					  &cfg->reload_resource_label_selector) < 0)
				return -1;
		} else if (strcmp(m->string, "ignoreSecrets") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, "reload.ignoreSecrets",
						"expected true or false");
			cfg->reload_ignore_secrets = cJSON_IsTrue(m);
		} else if (strcmp(m->string, "ignoreConfigMaps") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, "reload.ignoreConfigMaps",
						"expected true or false");
			cfg->reload_ignore_configmaps = cJSON_IsTrue(m);
		} else {
			return cfg_fail(r, m, m->string,
					"unknown key in reload (known: enabled, rate, burst, "
					"coalesceWindow, ignoreNamespaces, namespaceSelector, "
					"resourceLabelSelector, ignoreSecrets, ignoreConfigMaps)");
		}
	}
	return 0;
}

static int read_reports(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "reports", "expected a mapping");
	cJSON_ArrayForEach(m, v) {
		if (strcmp(m->string, "enabled") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, "reports.enabled", "expected true or false");
			cfg->reports_enabled = cJSON_IsTrue(m);
		} else if (strcmp(m->string, "interval") == 0) {
			if (read_duration_ms(r, m, "reports.interval", &cfg->reports_interval_ms) < 0)
				return -1;
			if (cfg->reports_interval_ms < 100)
				return cfg_fail(r, m, "reports.interval", "must be at least 100ms");
		} else {
			return cfg_fail(r, m, m->string,
					"unknown key in reports (known: enabled, interval)");
		}
	}
	return 0;
}

static int read_canary_labels(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "canaryLabels", "expected a mapping of label to value");
	config_canary_clear(cfg);
	cJSON_ArrayForEach(m, v) {
		if (!cJSON_IsString(m))
			return cfg_fail(r, m, m->string, "canary label value must be a string");
		if (config_canary_push(cfg, m->string, m->valuestring) < 0)
			return cfg_fail(r, m, m->string, "out of memory");
	}
	return 0;
}

static int read_rule(struct cfgread *r, const cJSON *v, struct rule_config *rc)
{
	const cJSON *m;
	char key[160];

	if (cJSON_IsString(v) || cJSON_IsBool(v))
		return read_mode(r, v, v->string, &rc->mode);
	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, v->string, "expected a mode or a mapping with mode");
	cJSON_ArrayForEach(m, v) {
		snprintf(key, sizeof(key), "rules.%s.%s", v->string, m->string);
		if (strcmp(m->string, "mode") == 0) {
			if (read_mode(r, m, key, &rc->mode) < 0)
				return -1;
		} else if (strcmp(m->string, "exemptNamespaces") == 0) {
			if (read_strlist(r, m, key, &rc->exempt_namespaces) < 0)
				return -1;
		} else if (strcmp(m->string, "allowSkip") == 0) {
			if (!cJSON_IsBool(m))
				return cfg_fail(r, m, key, "expected true or false");
			rc->skippable = cJSON_IsTrue(m);
		} else {
			return cfg_fail(r, m, key,
					"unknown key (known: mode, exemptNamespaces, allowSkip)");
		}
	}
	return 0;
}

static int read_rules(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const cJSON *m;
	const struct rules_entry *e;

	if (!cJSON_IsObject(v))
		return cfg_fail(r, v, "rules", "expected a mapping of rule ID to mode");
	cJSON_ArrayForEach(m, v) {
		e = rules_find(m->string);
		if (!e)
			return cfg_fail(r, m, m->string, "unknown rule ID (see docs/rules.md)");
		if (read_rule(r, m, &cfg->rules[e->id]) < 0)
			return -1;
	}
	return 0;
}

static int read_prefix(struct cfgread *r, const cJSON *v, struct config *cfg)
{
	const char *s = cJSON_IsString(v) ? v->valuestring : NULL;

	/* A DNS subdomain: what Kubernetes allows before the '/' of a key. */
	if (!s || !*s || strlen(s) > 253 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(s))
		return cfg_fail(r, v, "annotationPrefix",
				"expected a DNS subdomain such as rollgate.io");
	return read_string(r, v, "annotationPrefix", &cfg->annotation_prefix);
}

static int read_top(struct cfgread *r, const cJSON *root, struct config *cfg)
{
	const cJSON *m;
	int rc = 0;

	if (!cJSON_IsObject(root))
		return cfg_fail(r, root, "(top)", "expected a mapping");
	cJSON_ArrayForEach(m, root) {
		const char *k = m->string;
		if (strcmp(k, "annotationPrefix") == 0)
			rc = read_prefix(r, m, cfg);
		else if (strcmp(k, "stamp") == 0)
			rc = read_stamp(r, m, cfg);
		else if (strcmp(k, "exemptNamespaces") == 0)
			rc = read_strlist(r, m, k, &cfg->exempt_namespaces);
		else if (strcmp(k, "controllers") == 0)
			rc = read_strlist(r, m, k, &cfg->controllers);
		else if (strcmp(k, "canaryLabels") == 0)
			rc = read_canary_labels(r, m, cfg);
		else if (strcmp(k, "rules") == 0)
			rc = read_rules(r, m, cfg);
		else if (strcmp(k, "lookupTimeout") == 0)
			rc = read_duration_ms(r, m, k, &cfg->lookup_timeout_ms);
		else if (strcmp(k, "watch") == 0)
			rc = read_watch(r, m, cfg);
		else if (strcmp(k, "reload") == 0)
			rc = read_reload(r, m, cfg);
		else if (strcmp(k, "reports") == 0)
			rc = read_reports(r, m, cfg);
		else
			rc = cfg_fail(r, m, k, "unknown key");
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Reads the HMAC key named by the config as a secret: every copy made on
 * the way is wiped, and so is a key that is refused. */
static int load_hmac_key(struct config *cfg, char *err, size_t errlen)
{
	size_t len = 0, read_len;
	char *key;

	if (!cfg->hmac_key_file)
		return 0;
	key = manifest_slurp_secret(cfg->hmac_key_file, HMAC_KEY_MAX_BYTES, &len, err, errlen);
	if (!key)
		return -1;
	read_len = len;
	/* A trailing newline from `echo > file` is not part of the key. */
	while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r'))
		len--;
	if (len < 16) {
		OPENSSL_cleanse(key, read_len);
		free(key);
		snprintf(err, errlen, "%s: HMAC key must be at least 16 bytes", cfg->hmac_key_file);
		return -1;
	}
	cfg->hmac_key = (unsigned char *)key;
	cfg->hmac_key_len = len;
	return 0;
}

int config_load_buffer(const char *name, const char *buf, size_t len, struct config *cfg, char *err,
		       size_t errlen)
{
	struct yaml_docs docs = { 0 };
	struct cfgread r = { name, &docs, err, errlen };
	int rc = -1;

	if (config_defaults(cfg) < 0) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	if (manifest_load_buffer(name, buf, len, &docs, err, errlen) < 0)
		goto out;
	/* An empty file is what a reader sees in the middle of an in-place
	 * rewrite (truncate, then write): taking it for "all defaults" would
	 * swap every setting out for an instant. Defaults are asked for with
	 * an empty mapping, {}. */
	if (docs.n == 0) {
		snprintf(err, errlen,
			 "%s: no YAML document (the file is empty or holds only comments); "
			 "write {} for the built-in defaults",
			 name);
		goto out;
	}
	if (docs.n > 1) {
		snprintf(err, errlen, "%s:%d: expected one YAML document, found %zu", name,
			 docs.docs[1].line, docs.n);
		goto out;
	}
	if (read_top(&r, docs.docs[0].root, cfg) < 0)
		goto out;
	if (load_hmac_key(cfg, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	yamljson_clear(&docs);
	if (rc < 0)
		config_clear(cfg);
	return rc;
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf = manifest_slurp(path, CONFIG_MAX_BYTES, &len, err, errlen);
	int rc;

	if (!buf) {
		memset(cfg, 0, sizeof(*cfg));
		return -1;
	}
	rc = config_load_buffer(path, buf, len, cfg, err, errlen);
	free(buf);
	return rc;
}
