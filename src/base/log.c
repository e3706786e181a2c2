/*
 * Structured logging: one line per event, written with a single write(2) so
 * lines from concurrent threads never interleave. Strings are escaped; the
 * level is checked by RG_LOG before any argument is formatted.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level min_level = LOG_INFO;
static enum log_format out_format = LOG_FORMAT_JSON;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, enum log_format format)
{
	min_level = level;
	out_format = format;
}

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
	if (n > sizeof(l->buf) - 2 - l->len)
		n = sizeof(l->buf) - 2 - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Escapes for JSON (and keeps text mode on one line): control characters,
 * quotes and backslashes become \uXXXX / \" / \\. */
static void put_escaped(struct line *l, const char *s)
{
	char esc[8];

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(l, esc, 2);
		} else if (c < 0x20 || c == 0x7F) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(l, esc, 6);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
}

static void put_time(struct line *l)
{
	struct timespec ts;
	struct tm tm;
	char t[96];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	puts_(l, t);
}

static void put_value(struct line *l, const struct log_field *f, bool json)
{
	char num[64];

	if (f->type == 1) {
		snprintf(num, sizeof(num), "%lld", f->i);
		puts_(l, num);
	} else if (f->type == 2) {
		snprintf(num, sizeof(num), "%.3f", f->d);
		puts_(l, num);
	} else {
		bool quote = json || !f->s || strpbrk(f->s, " \"=") != NULL || !*f->s;
		if (quote)
			puts_(l, "\"");
		put_escaped(l, f->s ? f->s : "");
		if (quote)
			puts_(l, "\"");
	}
}

void log_emit(enum log_level level, const char *msg, const struct log_field *fields)
{
	struct line l = { .len = 0 };
	bool json = out_format == LOG_FORMAT_JSON;

	if (json) {
		puts_(&l, "{\"ts\":\"");
		put_time(&l);
		puts_(&l, "\",\"level\":\"");
		puts_(&l, level_names[level]);
		puts_(&l, "\",\"msg\":\"");
		put_escaped(&l, msg);
		puts_(&l, "\"");
	} else {
		put_time(&l);
		puts_(&l, " ");
		puts_(&l, level_names[level]);
		puts_(&l, " ");
		put_escaped(&l, msg);
	}
	for (const struct log_field *f = fields; f && f->key; f++) {
		puts_(&l, json ? ",\"" : " ");
		put_escaped(&l, f->key);
		puts_(&l, json ? "\":" : "=");
		put_value(&l, f, json);
	}
	if (json)
		puts_(&l, "}");
	l.buf[l.len++] = '\n';
	/* A failed log write has nowhere better to go. */
	if (write(STDERR_FILENO, l.buf, l.len) < 0)
		return;
}

void log_clip(char *out, size_t outlen, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	if (n >= outlen)
		n = outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	out[n] = '\0';
}
