/*
 * `rollgate review`: one AdmissionReview in, the response exactly as the
 * server would send it. Shares webhook.c with the server.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliutil.h"
#include "kubesource.h"
#include "log.h"
#include "manifest.h"
#include "objsource.h"
#include "webhook.h"

static void review_usage(FILE *out)
{
	fprintf(out,
		"Usage: rollgate review (--mutate|--validate) [OPTIONS] [FILE|-]\n\n"
		"Reads one admission.k8s.io/v1 AdmissionReview (JSON) from FILE or stdin and\n"
		"prints the response exactly as 'rollgate serve' would send it.\n\n"
		"Options:\n"
		"  --mutate              answer as POST /mutate\n"
		"  --validate            answer as POST /validate\n"
		"  --config PATH         YAML config (default: built-in defaults)\n"
		"  --objects DIR         ConfigMaps, Secrets and Deployments from manifests in DIR\n"
		"  --kubeconfig PATH     look objects up through the Kubernetes API instead\n"
		"  --log-level LEVEL     debug|info|warn|error (default warn), logs go to stderr\n"
		"  -h, --help            show this help\n\n"
		"Exit status: 0 allowed, 1 denied, 2 invalid input (the error is printed).\n");
}

int cli_review(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mutate", no_argument, NULL, 'm' },
		{ "validate", no_argument, NULL, 'v' },
		{ "config", required_argument, NULL, 'c' },
		{ "objects", required_argument, NULL, 'o' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *objects = NULL, *kubeconfig = NULL, *file = "-";
	enum log_level lvl = LOG_WARN;
	int kind = -1, c, rc = 2;
	struct engine eng = { 0 };
	struct webhook_call *call;
	char err[512], *body;
	size_t len = 0, outlen;
	const char *out;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			kind = WEBHOOK_MUTATE;
			break;
		case 'v':
			kind = WEBHOOK_VALIDATE;
			break;
		case 'c':
			config = optarg;
			break;
		case 'o':
			objects = optarg;
			break;
		case 'k':
			kubeconfig = optarg;
			break;
		case 'L':
			if (log_level_parse(optarg, &lvl) < 0)
				return cli_fail("review", "invalid --log-level \"%s\"", optarg);
			break;
		case 'h':
			review_usage(stdout);
			return 0;
		default:
			review_usage(stderr);
			return 2;
		}
	}
	if (kind < 0)
		return cli_fail("review", "one of --mutate or --validate is required");
	if (optind < argc)
		file = argv[optind++];
	if (optind < argc)
		return cli_fail("review", "unexpected argument \"%s\"", argv[optind]);
	log_setup(lvl, LOG_FORMAT_TEXT);
	if (engine_open(&eng, config, objects, kubeconfig, err, sizeof(err)) < 0)
		return cli_fail("review", "%s", err);
	body = manifest_slurp(file, 64u << 20, &len, err, sizeof(err));
	if (!body) {
		engine_close(&eng);
		return cli_fail("review", "%s", err);
	}
	call = webhook_call_new(eng.wh, (enum webhook_kind)kind, body, len);
	if (!call) {
		engine_close(&eng);
		return cli_fail("review", "out of memory");
	}
	engine_run_call(call);
	out = webhook_call_body(call, &outlen);
	if (webhook_call_status(call) != 200) {
		fprintf(stderr, "rollgate review: %s: HTTP %d: %.*s\n", file,
			webhook_call_status(call), (int)outlen, out ? out : "");
	} else {
		fwrite(out, 1, outlen, stdout);
		fputc('\n', stdout);
		rc = webhook_call_outcome(call) == OUT_DENIED ? 1 : 0;
	}
	webhook_call_free(call);
	engine_close(&eng);
	return rc;
}
