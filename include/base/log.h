#ifndef ROLLGATE_LOG_H
#define ROLLGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "rgassert.h" /* RG_ASSERT, for the modules that include log.h */

/*
 * One logging module. Lines go to stderr as JSON (default) or as
 * "LEVEL msg key=value ..." text. The level is checked before any field is
 * formatted. Every string value is escaped; callers never pass request
 * bodies, ConfigMap/Secret values, tokens or keys.
 */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

struct log_field {
	const char *key; /* NULL ends a list */
	int type;        /* 0 string, 1 integer, 2 double */
	const char *s;
	long long i;
	double d;
};

#define LF_S(k, v) ((struct log_field){ (k), 0, (v), 0, 0.0 })
#define LF_I(k, v) ((struct log_field){ (k), 1, NULL, (long long)(v), 0.0 })
#define LF_D(k, v) ((struct log_field){ (k), 2, NULL, 0, (double)(v) })
#define LF_END ((struct log_field){ NULL, 0, NULL, 0, 0.0 })

void log_setup(enum log_level level, enum log_format format);
bool log_enabled(enum log_level level);
void log_emit(enum log_level level, const char *msg, const struct log_field *fields);
int log_level_parse(const char *s, enum log_level *out);

/* Copies at most max bytes of untrusted s into out for a log line or an
 * error: cut on a UTF-8 boundary, control characters as spaces. */
void log_clip(char *out, size_t outlen, const char *s, size_t max);

/* RG_LOG(LOG_INFO, "message", LF_S("k", v), LF_I("n", 3)); at least one field
 * or LF_END must follow the message. */
#define RG_LOG(level, msg, ...)                                                    \
	do {                                                                       \
		if (log_enabled(level)) {                                          \
			const struct log_field rg_lf_[] = { __VA_ARGS__, LF_END }; \
			log_emit((level), (msg), rg_lf_);                          \
		}                                                                  \
	} while (0)

#endif
