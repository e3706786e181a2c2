/*
 * libFuzzer harness for the YAML reader: load, emit every document, load
 * the emitted text again and require an equal tree. Any crash, leak or
 * sanitizer report is a bug, and so is a document that fails to round-trip.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamljson.h"

/* Inputs past this add time, not coverage; the webhook caps bodies anyway. */
#define FUZZ_MAX_INPUT (256 * 1024)

static void check_round_trip(const cJSON *root)
{
	struct yaml_docs again;
	char err[256];
	char *y = yamljson_emit(root);

	/* A loaded tree is always representable: valid UTF-8, finite numbers,
	 * depth within JSON_MAX_DEPTH. */
	if (!y)
		abort();
	if (yamljson_load(y, strlen(y), &again, err, sizeof(err)) != 0) {
		fprintf(stderr, "reload failed: %s\n--- emitted:\n%s\n", err, y);
		abort();
	}
	if (again.n != 1 || !cJSON_Compare(again.docs[0].root, root, 1)) {
		fprintf(stderr, "round trip differs\n--- emitted:\n%s\n", y);
		abort();
	}
	yamljson_clear(&again);
	free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yaml_docs docs;
	char err[256];

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (yamljson_load((const char *)data, size, &docs, err, sizeof(err)) != 0) {
		if (strncmp(err, "line ", 5) != 0)
			abort(); /* every error names its line */
		return 0;
	}
	for (size_t i = 0; i < docs.n; i++) {
		if (!docs.docs[i].root)
			abort();
		check_round_trip(docs.docs[i].root);
	}
	yamljson_clear(&docs);
	return 0;
}
