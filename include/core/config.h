#ifndef ROLLGATE_CONFIG_H
#define ROLLGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* The rules of the validating gate, in documentation order. Their names,
 * default modes and checks are in the rule catalog (rules.h). */
enum rule_id {
	RULE_REPLICASET_DIRECT_EDIT,
	RULE_CANARY_WITHOUT_READINESS,
	RULE_ROLLOUT_WITHOUT_READINESS,
	RULE_MUTABLE_IMAGE_TAG,
	RULE_NO_ROLLBACK_HISTORY,
	RULE_FULL_OUTAGE_ROLLOUT,
	RULE_LIVENESS_WITHOUT_STARTUP_GRACE,
	RULE_UNGUARDED_CANARY_STEPS,
	RULE_UNGUARDED_BLUE_GREEN,
	RULE_POD_TEMPLATE_HASH_TAMPER,
	RULE_COUNT
};

enum rule_mode { MODE_OFF, MODE_AUDIT, MODE_WARN, MODE_ENFORCE };
enum stamp_mode { STAMP_OPT_IN, STAMP_ALL };

struct strlist {
	char **v;
	size_t n;
	size_t cap; /* elements allocated at v (array_grow) */
};

struct label_pair {
	char *key;
	char *value;
};

struct rule_config {
	enum rule_mode mode;
	struct strlist exempt_namespaces;
	bool skippable; /* the skip annotation may silence it even in enforce */
};

/*
 * The whole configuration, a plain value. Built by config_defaults() or
 * config_load(); released with config_clear(). Immutable once published: the
 * server swaps whole configs on reload.
 */
struct config {
	char *annotation_prefix; /* "rollgate.io" */
	enum stamp_mode stamp_mode;
	/* Hold the pods of a stamped workload that references a required
	 * ConfigMap or Secret that does not exist (stamp.holdUntilConfigExists). */
	bool stamp_hold;
	char *hmac_key_file;
	unsigned char *hmac_key;
	size_t hmac_key_len;
	struct strlist exempt_namespaces;
	struct strlist controllers;
	struct label_pair *canary_labels;
	size_t n_canary_labels;
	size_t cap_canary_labels;
	struct rule_config rules[RULE_COUNT];
	unsigned lookup_timeout_ms; /* budget for all API lookups of one review */
	/* The API watch cache of ConfigMaps and Secrets (watch:). */
	struct strlist watch_namespaces; /* empty: cluster-wide */
	char *watch_label_selector;      /* NULL: every object */
	/* The reload controller (reload:). */
	bool reload_enabled;       /* with the API source */
	double reload_rate;        /* patches per second */
	unsigned reload_burst;     /* token bucket size */
	unsigned reload_window_ms; /* changes to one workload within it coalesce */
	/* Reloader's flags (docs/migrating.md). */
	struct strlist reload_ignore_namespaces; /* workloads and objects there never roll */
	char *reload_namespace_selector;         /* NULL: every namespace; else Namespaces' labels */
	char *reload_resource_label_selector;    /* NULL: every object; else only these trigger */
	bool reload_ignore_secrets;              /* Secrets never join the hash (nor are watched) */
	bool reload_ignore_configmaps;           /* ConfigMaps likewise */
	/* Policy reports kept current in the cluster (reports:). */
	bool reports_enabled;         /* with the API source; off by default */
	unsigned reports_interval_ms; /* a namespace's report is written at most this often */
};

/* Fills cfg with the built-in defaults. Returns 0, or -1 on allocation failure. */
int config_defaults(struct config *cfg);

/*
 * Reads a YAML config file over the defaults. Unknown keys, unknown rule IDs,
 * invalid modes and wrong types fail with "FILE:LINE: key: problem" in err;
 * so does a file with no YAML document (empty: write {} for the defaults).
 * Reads the HMAC key file when one is named.
 */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);
/* Same, from a buffer; name is used in messages. */
int config_load_buffer(const char *name, const char *buf, size_t len, struct config *cfg, char *err,
		       size_t errlen);

void config_clear(struct config *cfg);

const char *config_mode_name(enum rule_mode mode);
int config_mode_from_name(const char *name, enum rule_mode *out);

/* Writes "<prefix>/<suffix>" into buf; returns buf. */
char *config_annotation(const struct config *cfg, const char *suffix, char *buf, size_t len);

bool strlist_contains(const struct strlist *l, const char *s);
/* Appends a copy of s; returns 0, or -1 when out of memory or past the
 * list cap (1 << 20 entries, more than a config file can name). */
int strlist_push(struct strlist *l, const char *s);
void strlist_clear(struct strlist *l);
/* Appends a copy of key=value to the canary labels; returns 0 or -1 as
 * strlist_push, with the labels unchanged on failure. */
int config_canary_push(struct config *cfg, const char *key, const char *value);
void config_canary_clear(struct config *cfg);

#endif
