/*
 * The configuration value: built-in defaults and mode names. The rules'
 * names and default modes come from the rule catalog (rules.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "array.h"
#include "rules.h"

/* Most entries of a string list or of the canary labels: more than a config
 * file of the largest size configfile reads can name. */
#define CONFIG_LIST_MAX ((size_t)1 << 20)

static const char *const mode_names[] = {
	[MODE_OFF] = "off",
	[MODE_AUDIT] = "audit",
	[MODE_WARN] = "warn",
	[MODE_ENFORCE] = "enforce",
};

static const char *const default_controllers[] = {
	"system:serviceaccount:kube-system:deployment-controller",
	"system:serviceaccount:kube-system:replicaset-controller",
	"system:kube-controller-manager",
	"system:serviceaccount:argo-rollouts:argo-rollouts",
};

const char *config_mode_name(enum rule_mode mode)
{
	return (unsigned)mode <= MODE_ENFORCE ? mode_names[mode] : "unknown";
}

int config_mode_from_name(const char *name, enum rule_mode *out)
{
	for (int i = 0; i <= MODE_ENFORCE; i++) {
		if (strcmp(mode_names[i], name) == 0) {
			*out = (enum rule_mode)i;
			return 0;
		}
	}
	return -1;
}

char *config_annotation(const struct config *cfg, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", cfg->annotation_prefix, suffix);
	return buf;
}

bool strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], s) == 0)
			return true;
	}
	return false;
}

void strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

int strlist_push(struct strlist *l, const char *s)
{
	char *dup;

	if (array_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v), CONFIG_LIST_MAX) < 0)
		return -1;
	dup = strdup(s);
	if (!dup)
		return -1;
	l->v[l->n++] = dup;
	return 0;
}

int config_canary_push(struct config *cfg, const char *key, const char *value)
{
	struct label_pair lp;

	if (array_grow(&cfg->canary_labels, &cfg->cap_canary_labels, cfg->n_canary_labels + 1,
		       sizeof(*cfg->canary_labels), CONFIG_LIST_MAX) < 0)
		return -1;
	lp.key = strdup(key);
	lp.value = strdup(value);
	if (!lp.key || !lp.value) {
		free(lp.key);
		free(lp.value);
		return -1;
	}
	cfg->canary_labels[cfg->n_canary_labels++] = lp;
	return 0;
}

void config_canary_clear(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_canary_labels; i++) {
		free(cfg->canary_labels[i].key);
		free(cfg->canary_labels[i].value);
	}
	free(cfg->canary_labels);
	cfg->canary_labels = NULL;
	cfg->n_canary_labels = 0;
	cfg->cap_canary_labels = 0;
}

void config_clear(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->annotation_prefix);
	free(cfg->hmac_key_file);
	if (cfg->hmac_key) {
		OPENSSL_cleanse(cfg->hmac_key, cfg->hmac_key_len); /* memset may be elided */
		free(cfg->hmac_key);
	}
	strlist_clear(&cfg->exempt_namespaces);
	strlist_clear(&cfg->controllers);
	strlist_clear(&cfg->watch_namespaces);
	free(cfg->watch_label_selector);
	strlist_clear(&cfg->reload_ignore_namespaces);
	free(cfg->reload_namespace_selector);
	free(cfg->reload_resource_label_selector);
	config_canary_clear(cfg);
	for (int i = 0; i < RULE_COUNT; i++)
		strlist_clear(&cfg->rules[i].exempt_namespaces);
	memset(cfg, 0, sizeof(*cfg));
}

int config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->annotation_prefix = strdup("rollgate.io");
	cfg->stamp_mode = STAMP_OPT_IN;
	cfg->lookup_timeout_ms = 2000;
	cfg->reload_enabled = true;
	cfg->reload_rate = 1.0;
	cfg->reload_burst = 50;
	cfg->reload_window_ms = 2000;
	cfg->reports_interval_ms = 10000;
	if (!cfg->annotation_prefix || strlist_push(&cfg->exempt_namespaces, "kube-system") < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(default_controllers) / sizeof(default_controllers[0]); i++) {
		if (strlist_push(&cfg->controllers, default_controllers[i]) < 0)
			goto fail;
	}
	if (config_canary_push(cfg, "track", "canary") < 0 ||
	    config_canary_push(cfg, "version", "canary") < 0 ||
	    config_canary_push(cfg, "rollgate.io/canary", "true") < 0)
		goto fail;
	for (int i = 0; i < RULE_COUNT; i++)
		cfg->rules[i].mode = rules_catalog[i].default_mode;
	return 0;
fail:
	config_clear(cfg);
	return -1;
}
