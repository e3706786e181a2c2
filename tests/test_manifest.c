/* Tests for manifest's file reading: manifest_slurp at and past its cap,
 * from regular files and from a pipe on stdin, bytes kept exactly, the
 * secret variant, and the directory walk's order and filters. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "manifest.h"

static char dir[64];

static int make_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/rollgate-manifest.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const void *data, size_t n)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* n bytes of a repeating pattern with NULs in it. */
static char *pattern(size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(i % 251);
	return p;
}

static void test_slurp_exact_and_over(void **state)
{
	enum { N = 300000 };
	char *data = pattern(N), *buf, path[256], err[256];
	size_t len = 0;

	write_file("big.bin", data, N);
	snprintf(path, sizeof(path), "%s/big.bin", dir);
	buf = manifest_slurp(path, N, &len, err, sizeof(err));
	assert_non_null(buf);
	assert_int_equal(len, N);
	assert_memory_equal(buf, data, N);
	assert_int_equal(buf[N], '\0');
	free(buf);

	buf = manifest_slurp(path, N - 1, &len, err, sizeof(err));
	assert_null(buf);
	assert_non_null(strstr(err, "big.bin: larger than 299999 bytes"));

	buf = manifest_slurp_secret(path, N, &len, err, sizeof(err));
	assert_non_null(buf);
	assert_int_equal(len, N);
	assert_memory_equal(buf, data, N);
	explicit_bzero(buf, len);
	free(buf);
	free(data);
}

static void test_slurp_empty_and_missing(void **state)
{
	char path[256], err[256], *buf;
	size_t len = 7;

	write_file("empty.yaml", "", 0);
	snprintf(path, sizeof(path), "%s/empty.yaml", dir);
	buf = manifest_slurp(path, 10, &len, err, sizeof(err));
	assert_non_null(buf);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);

	snprintf(path, sizeof(path), "%s/absent.yaml", dir);
	assert_null(manifest_slurp(path, 10, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "absent.yaml: No such file or directory"));
}

/* Reads n bytes of pattern from a pipe on stdin (no size known ahead). */
static char *slurp_pipe(size_t n, size_t max, size_t *len, char *err, size_t errlen)
{
	int fds[2], saved = dup(0), status;
	pid_t pid;
	char *buf;

	assert_true(saved >= 0);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *data = pattern(n);
		size_t off = 0;
		close(fds[0]);
		while (off < n) {
			ssize_t w = write(fds[1], data + off, n - off);
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(dup2(fds[0], 0), 0);
	close(fds[0]);
	clearerr(stdin);
	buf = manifest_slurp("-", max, len, err, errlen);
	/* Past the cap the reader stops early; the writer then gets EPIPE. */
	assert_int_equal(dup2(saved, 0), 0);
	close(saved);
	clearerr(stdin);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return buf;
}

static void test_slurp_pipe(void **state)
{
	enum { N = 1000003 };
	char err[256], *buf, *want = pattern(N);
	size_t len = 0;

	buf = slurp_pipe(N, N, &len, err, sizeof(err));
	assert_non_null(buf);
	assert_int_equal(len, N);
	assert_memory_equal(buf, want, N);
	free(buf);

	buf = slurp_pipe(N, N - 1, &len, err, sizeof(err));
	assert_null(buf);
	assert_string_equal(err, "-: larger than 1000002 bytes");
	free(want);
}

struct seen {
	char names[8][256];
	int n;
};

static int collect(const char *path, void *arg)
{
	struct seen *s = arg;

	if (s->n < 8)
		snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", path + strlen(dir) + 1);
	return 0;
}

/* Name order whatever the directory's order; dot-entries and other
 * extensions skipped below the top; subdirectories walked. */
static void test_walk(void **state)
{
	struct seen s = { .n = 0 };
	char path[256], err[256];

	snprintf(path, sizeof(path), "%s/tree", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tree/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file("tree/b.yaml", "b", 1);
	write_file("tree/a.json", "a", 1);
	write_file("tree/.hidden.yaml", "h", 1);
	write_file("tree/notes.txt", "n", 1);
	write_file("tree/sub/c.yml", "c", 1);
	snprintf(path, sizeof(path), "%s/tree", dir);
	assert_int_equal(manifest_walk(path, collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "tree/a.json");
	assert_string_equal(s.names[1], "tree/b.yaml");
	assert_string_equal(s.names[2], "tree/sub/c.yml");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slurp_exact_and_over),
		cmocka_unit_test(test_slurp_empty_and_missing),
		cmocka_unit_test(test_slurp_pipe),
		cmocka_unit_test(test_walk),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
