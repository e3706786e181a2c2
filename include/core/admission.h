#ifndef ROLLGATE_ADMISSION_H
#define ROLLGATE_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

struct json_region;

/*
 * The admission.k8s.io/v1 AdmissionReview contract: decoding a request,
 * building a response that kube-apiserver accepts, encoding it.
 */

enum adm_operation { OP_CREATE, OP_UPDATE, OP_DELETE, OP_CONNECT };

/* A decoded request. Every pointer borrows from the tree in `doc`, which the
 * request owns; admission_request_clear releases it. */
struct admission_request {
	cJSON *doc;
	struct json_region *region; /* holds doc when not NULL (admission_decode) */
	const char *uid;
	const char *group;   /* request.kind.group ("" for core) */
	const char *version; /* request.kind.version */
	const char *kind;    /* request.kind.kind */
	const char *resource;
	const char *subresource; /* "" when none */
	const char *name;        /* "" when none */
	const char *namespace_;  /* "" when cluster-scoped */
	enum adm_operation operation;
	const char *username; /* "" when absent */
	const cJSON *groups;  /* array of strings or NULL */
	bool dry_run;
	const cJSON *object;     /* NULL on DELETE */
	const cJSON *old_object; /* NULL on CREATE */
	/* object.spec and oldObject.spec are the same bytes of the body, so the
	 * same tree; false when unknown (a tree decoded by
	 * admission_decode_tree). */
	bool spec_unchanged;
};

/*
 * Warnings. kube-apiserver keeps 4096 runes of warning text per request, from
 * every source together; past that budget it cuts each item to 256 runes and
 * drops what still does not fit. It drops exact duplicates, and items with
 * invalid UTF-8 or a control character (WithWarningRecorder in
 * staging/src/k8s.io/apiserver/pkg/endpoints/filters/warning.go, and
 * NewWarningHeader in staging/src/k8s.io/apimachinery/pkg/util/net/http.go).
 * 120 characters is the advised length of one warning.
 */
#define ADM_WARNINGS_MAX_RUNES 4096 /* the whole response */
#define ADM_WARNING_MAX_RUNES 256   /* one warning: never cut by the API server */
#define ADM_WARNINGS_RESERVE 64     /* runes kept for the "not shown" line */
#define ADM_MAX_WARNINGS 64
#define ADM_MAX_AUDIT 16

struct admission_response {
	bool allowed;
	int code;      /* status.code on denial (403) */
	char *message; /* status.message on denial; malloc'd */
	char *patch;   /* JSON Patch array text, malloc'd; NULL when none */
	char *warnings[ADM_MAX_WARNINGS];
	size_t n_warnings;
	size_t warning_runes;    /* runes in warnings[], the "not shown" line aside */
	size_t warnings_dropped; /* counted in the last warning */
	char *audit_keys[ADM_MAX_AUDIT];
	char *audit_values[ADM_MAX_AUDIT];
	size_t n_audit;
};

/*
 * Decodes a NUL-terminated body of len bytes. Strict: refuses what
 * json_parse_strict refuses, with its error text. The tree leaves out
 * members no decision reads (metadata.managedFields and status of both
 * objects, the old pod spec unless the kind is ReplicaSet; admission.c says
 * exactly which). Requires apiVersion admission.k8s.io/v1, kind AdmissionReview, a request
 * with a non-empty uid, and correct types for every field used. Returns 0, or
 * -1 with a reason for a 400 in err.
 */
int admission_decode(const char *body, size_t len, struct admission_request *req, char *err,
		     size_t errlen);
/* Decodes an already parsed review; takes ownership of doc in all cases. */
int admission_decode_tree(cJSON *doc, struct admission_request *req, char *err, size_t errlen);
void admission_request_clear(struct admission_request *req);

const char *admission_operation_name(enum adm_operation op);

void admission_response_init(struct admission_response *resp);
void admission_response_clear(struct admission_response *resp);

/* Denies with code 403 / Forbidden; message is appended ("; " separated)
 * when the response is already denied. Returns 0, or -1 on OOM or when the
 * joined message would pass ADM_MESSAGE_MAX bytes (the response is left as
 * it was). */
#define ADM_MESSAGE_MAX (4u << 20)
int admission_deny(struct admission_response *resp, const char *message);
/*
 * The text of a warning as kube-apiserver keeps it: invalid UTF-8 as '?',
 * control characters as spaces, at most max_runes runes (max_runes >= 4), cut
 * on a character boundary with "..." when longer. Returns a malloc'd string
 * (the caller frees it) with its length in runes in *runes, or NULL on OOM.
 */
char *admission_warning_text(const char *text, size_t max_runes, size_t *runes);
/*
 * Adds admission_warning_text(text, ADM_WARNING_MAX_RUNES). Empty texts and
 * exact duplicates are dropped, as kube-apiserver drops them. The response
 * keeps at most ADM_WARNINGS_MAX_RUNES runes of warnings in total: a warning
 * past that budget (or past ADM_MAX_WARNINGS) is counted, with every later
 * one, in a last "and more warnings not shown: N" warning. Returns 0 or -1 on
 * OOM.
 */
int admission_warn(struct admission_response *resp, const char *text);
/* Adds an audit annotation; the key is sanitised (no '/', at most 63 bytes). */
int admission_audit(struct admission_response *resp, const char *key, const char *value);

/* Largest encoded response: far past what the rules, warnings and patch
 * limits let a response reach. */
#define ADM_RESPONSE_MAX (16u << 20)

/*
 * Encodes the full AdmissionReview response for the request uid. The patch,
 * when present and allow_patch is true, is base64-encoded with
 * patchType JSONPatch. Writes the fixed shape directly, byte for byte what
 * cJSON_PrintUnformatted would print for the same members (same order,
 * same string escapes; fuzz/fuzz_response.c holds the two together).
 * Returns a malloc'd string, or NULL on OOM or past ADM_RESPONSE_MAX.
 */
char *admission_encode(const char *uid, const struct admission_response *resp, bool allow_patch);

#endif
