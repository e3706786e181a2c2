#ifndef ROLLGATE_JSONSCAN_H
#define ROLLGATE_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "jsonutil.h"

/*
 * One strict pass over a JSON text that builds cJSON nodes only for the
 * members a caller asks for.
 *
 * jsonscan_parse accepts exactly the texts json_parse_strict accepts (the
 * same byte rules, grammar, number syntax, depth rule and duplicate-key
 * rule; tests and fuzz/fuzz_admission.c hold the two together), but reads
 * them in one walk and allocates nothing for a member whose value `keep`
 * declines: that value is still validated, byte for byte, and left out of
 * the tree. Nodes come from cJSON's allocator (so from the json_region the
 * thread has entered) and link the way cJSON's own parser links them.
 *
 * Its error messages are its own and short. Callers that must report
 * json_parse_strict's exact wording run it on the refused text (an error
 * path only).
 */

/* The names of the object members that lead from the root to a value,
 * outermost first, as raw text between the quotes (escapes not decoded; a
 * caller matching on plain names therefore never matches a name written
 * with escapes, and keeps such members). An array element's segment has
 * name NULL. */
struct jsonscan_path {
	size_t depth;
	struct {
		const char *name;
		size_t len;
	} seg[JSON_MAX_DEPTH + 1];
};

/* One member of a kept object, as keep sees it before its value is read. */
struct jsonscan_member {
	const struct jsonscan_path *path;
	const char *value; /* the value's first byte in the text */
	/* NULL; keep may point it at a variable that then gets the address
	 * past the value's last byte, once the value is read. */
	const char **end;
};

/* Asked for each member of a kept object: returns true to build the value,
 * false to validate it only. */
typedef bool (*jsonscan_keep_fn)(void *arg, struct jsonscan_member *m);

/*
 * Validates buf[0..len) and builds the kept parts. keep may be NULL (keep
 * everything). On success *out is a new tree the caller frees with
 * cJSON_Delete (or with the region it was built in). Returns 0, or -1 with
 * a short reason in err (and *out NULL).
 */
int jsonscan_parse(const char *buf, size_t len, jsonscan_keep_fn keep, void *arg, cJSON **out,
		   char *err, size_t errlen);

/* Builds the whole value that starts at p (leading whitespace allowed) in
 * a text jsonscan_parse has accepted, ending before end. Returns 0 with a
 * new tree in *out, or -1 on OOM. */
int jsonscan_build(const char *p, const char *end, cJSON **out);

#endif
