/*
 * Helpers every test binary links (see testutil.h).
 */
#include "testutil.h"

#include "config.h"
#include "harness.h"
#include "jsonutil.h"
#include "log.h"

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL if absent. */
char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

long tu_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field) + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* Polls cond(arg) every 10 ms for up to ms; returns its last value. Tests
 * wait for conditions, never for fixed times, so a loaded machine only
 * makes them slower. */
bool tu_wait_for(bool (*cond)(void *), void *arg, long long ms)
{
	long long until = rgtime_now_ms() + ms;

	while (!cond(arg)) {
		if (rgtime_now_ms() > until)
			return cond(arg);
		usleep(10 * 1000);
	}
	return true;
}

/* The project root (tests run from it; ROLLGATE_ROOT overrides). */
const char *tu_root(void)
{
	const char *r = getenv("ROLLGATE_ROOT");
	return r && *r ? r : ".";
}

/* Path of the shared corpus or NULL (with a message) when it is absent. */
const char *tu_corpus(void)
{
	static char path[4096];
	const char *env = getenv("ROLLGATE_CORPUS");
	FILE *f;

	snprintf(path, sizeof(path), "%s", env && *env ? env : "../shared/corpus");
	char probe[4200];
	snprintf(probe, sizeof(probe), "%s/SOURCES.md", path);
	f = fopen(probe, "r");
	if (!f) {
		printf("[  SKIP    ] corpus not found at %s (set ROLLGATE_CORPUS)\n", path);
		return NULL;
	}
	fclose(f);
	return path;
}

cJSON *tu_json_or_null(const char *text, size_t len)
{
	char err[128];
	cJSON *doc = NULL;

	if (json_parse_strict(text, len, &doc, err, sizeof(err)) < 0)
		return NULL;
	return doc;
}

cJSON *tu_json(const char *text, size_t len)
{
	char err[128];
	cJSON *doc = NULL;

	if (json_parse_strict(text, len, &doc, err, sizeof(err)) < 0)
		fail_msg("not strict JSON: %s: %.200s", err, text);
	return doc;
}

cJSON *tu_parse(const char *sq)
{
	char err[128];
	char *buf = strdup(sq);
	cJSON *doc = NULL;

	assert_non_null(buf);
	for (char *p = buf; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	if (json_parse_strict(buf, strlen(buf), &doc, err, sizeof(err)) < 0)
		fail_msg("bad test JSON: %s: %s", err, sq);
	free(buf);
	return doc;
}

struct config *tu_config(const char *yaml)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char err[512];

	assert_non_null(cfg);
	if (config_load_buffer("test.yaml", yaml, strlen(yaml), cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	return cfg;
}

void tu_setup_from_env(void)
{
	log_setup(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR, LOG_FORMAT_TEXT);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
}

void tu_use_build_bin(void)
{
	/* The build this test binary belongs to. */
#if defined(__SANITIZE_ADDRESS__)
	const char *bin = "build/asan/rollgate";
#else
	const char *bin = "build/rollgate";
#endif
	const char *set = getenv("ROLLGATE_BIN");
	char abs[4096];

	if (set && *set)
		return;
	if (access(bin, X_OK) == 0 && realpath(bin, abs))
		setenv("ROLLGATE_BIN", abs, 0);
}

int tu_certs_setup(char *dir, size_t len)
{
	if (h_make_certs(dir, len) < 0)
		return -1;
	tu_use_build_bin();
	return 0;
}

void tu_certs_teardown(const char *dir)
{
	if (getenv("KEEP_TEST_DIR"))
		printf("test directory kept: %s\n", dir);
	else
		h_rmrf(dir);
}

char tu_certdir[256];

int tu_certs_group_setup(void **state)
{
	(void)state;
	return tu_certs_setup(tu_certdir, sizeof(tu_certdir));
}

int tu_certs_group_teardown(void **state)
{
	(void)state;
	tu_certs_teardown(tu_certdir);
	return 0;
}
