/*
 * rollgate: command dispatch. `serve` runs the webhook; the pipeline
 * commands live in cli.c and share the same engine.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "jsonutil.h"

static void usage(FILE *out)
{
	fprintf(out,
		"rollgate %s: Kubernetes admission webhook for safe rollouts\n\n"
		"Usage: rollgate COMMAND [OPTIONS]\n\n"
		"Commands:\n"
		"  serve     run the HTTPS admission webhook (/mutate, /validate)\n"
		"  check     check manifests against the policy rules\n"
		"  stamp     print manifests with config hashes stamped\n"
		"  fn        run as a KRM function (kpt, kustomize)\n"
		"  review    answer one AdmissionReview as the server would\n"
		"  version   print the version\n\n"
		"Run 'rollgate COMMAND --help' for a command's options.\n",
		ROLLGATE_VERSION);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	json_hooks_install(); /* before any thread exists */
	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
			printf("Usage: rollgate version\n\nPrints the version.\n");
			return 0;
		}
		if (argc > 2) {
			fprintf(stderr, "rollgate version: unexpected argument \"%s\"\n", argv[2]);
			return 2;
		}
		printf("rollgate %s\n", ROLLGATE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	if (strcmp(cmd, "review") == 0)
		return cli_review(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cli_check(argc - 1, argv + 1);
	if (strcmp(cmd, "stamp") == 0)
		return cli_stamp(argc - 1, argv + 1);
	if (strcmp(cmd, "fn") == 0)
		return cli_fn(argc - 1, argv + 1);
	fprintf(stderr, "rollgate: unknown command \"%s\"\n\n", cmd);
	usage(stderr);
	return 2;
}
