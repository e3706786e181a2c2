#ifndef ROLLGATE_YAMLJSON_H
#define ROLLGATE_YAMLJSON_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * YAML (libyaml event API) to the cJSON model the webhook uses, read the way
 * Kubernetes reads manifests (go-yaml v2 via sigs.k8s.io/yaml), and back.
 */

#define YAML_MAX_NODES 1000000      /* nodes produced, aliases expanded */
#define YAML_MAX_ALIAS_NODES 100000 /* nodes copied through aliases */
/* String bytes copied through aliases: without it one alias list of a large
 * anchored string is a memory bomb that stays under the node limits. */
#define YAML_MAX_ALIAS_BYTES (16 << 20)

struct yaml_doc {
	cJSON *root; /* never NULL for a kept document */
	int line;    /* 1-based line where the document's content starts */
};

/* All non-empty documents of one stream, with the source line of every node. */
struct yaml_docs {
	struct yaml_doc *docs;
	size_t n;
	struct yaml_linemap *lines; /* opaque */
};

/*
 * Parses a stream of len bytes (JSON is YAML). Empty documents are skipped;
 * a bare scalar document is kept. On success fills *out, which the caller
 * releases with yamljson_clear. On error returns -1, leaves *out empty and
 * writes "line N: problem" to err (1-based; never input values, at most a
 * shortened key or anchor name), or "out of memory" before any line.
 * Limits (per stream): JSON_MAX_DEPTH nesting, YAML_MAX_NODES nodes,
 * YAML_MAX_ALIAS_NODES nodes and YAML_MAX_ALIAS_BYTES bytes through aliases;
 * duplicate mapping keys are an error, as in kubectl.
 * Typing follows go-yaml v2: plain scalars may be null, bool (y/yes/on...),
 * int (0x, 0o, 0b, 0777, 1_000) or float; .inf/.nan are an error; quoted and
 * block scalars are strings; !!str/!!int/!!float/!!bool/!!null are honoured,
 * other tags (!!binary included, not base64-decoded) give strings. Integers
 * are stored as doubles, exact only within +-2^53. Keys become strings the
 * way sigs.k8s.io/yaml converts them ("true", "1", "null" for ~). Aliases
 * deep-copy; "<<" merges (explicit keys win, earlier merged maps win).
 * JSON that libyaml rejects (surrogate-pair escapes) is read with
 * json_parse_strict instead; its nodes below the root have no line.
 */
int yamljson_load(const char *buf, size_t len, struct yaml_docs *out, char *err, size_t errlen);

/*
 * 1-based line where node starts, or 0 when unknown: the line of the event
 * that began the node, so for a mapping member the line of its value (for a
 * block collection value, its first key or "- "; with an anchor or tag, the
 * line of that property), not of its key. The root of an alias copy has the
 * alias's line, its descendants the lines of the anchored originals; merged
 * members have the lines of their sources. Valid while the node is alive in
 * a tree from this load (taken roots included).
 */
int yamljson_line(const struct yaml_docs *docs, const cJSON *node);

/* Moves document i's root out of docs (the slot becomes NULL); the caller
 * owns it. NULL when i is out of range or already taken. */
cJSON *yamljson_take(struct yaml_docs *docs, size_t i);

/* Frees the documents and the line map and leaves docs empty (docs itself
 * is the caller's); accepts NULL and emptied docs. */
void yamljson_clear(struct yaml_docs *docs);

/*
 * Emits one document as block YAML in kubectl's layout (2-space indent,
 * sequences under a key not indented), keeping member order, quoting strings
 * that would read back as another type; multi-line strings become "|"
 * blocks. yamljson_load of the result gives back an equal tree. Returns a
 * malloc'd string the caller frees, or NULL when out of memory, over the
 * output cap, deeper than JSON_MAX_DEPTH, or when the tree holds something
 * YAML text cannot (NaN/Inf, invalid UTF-8, raw items, nameless members).
 */
char *yamljson_emit(const cJSON *root);

#endif
