/*
 * libFuzzer: admission_encode against the cJSON printer it replaced. The
 * input is cut at NUL bytes into the response's strings (uid, message,
 * patch, then warnings and audit annotation pairs); its first bytes choose
 * the flags and the status code. Both encodings must be the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "admission.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the reference: the response as a cJSON tree, printed by cJSON ---- */

static char *base64_encode(const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	return out;
}

static int add_status(cJSON *r, const struct admission_response *resp)
{
	cJSON *st = cJSON_AddObjectToObject(r, "status");

	if (!st || !cJSON_AddNumberToObject(st, "code", resp->code ? resp->code : 403) ||
	    !cJSON_AddStringToObject(st, "reason", "Forbidden") ||
	    !cJSON_AddStringToObject(st, "message",
				     resp->message ? resp->message : "denied by rollgate"))
		return -1;
	return 0;
}

static int add_patch(cJSON *r, const char *patch)
{
	char *b64 = base64_encode(patch);
	int rc = -1;

	if (b64 && cJSON_AddStringToObject(r, "patchType", "JSONPatch") &&
	    cJSON_AddStringToObject(r, "patch", b64))
		rc = 0;
	free(b64);
	return rc;
}

static int add_lists(cJSON *r, const struct admission_response *resp)
{
	if (resp->n_warnings) {
		cJSON *w = cJSON_AddArrayToObject(r, "warnings");
		if (!w)
			return -1;
		for (size_t i = 0; i < resp->n_warnings; i++) {
			cJSON *s = cJSON_CreateString(resp->warnings[i]);
			if (!s || !cJSON_AddItemToArray(w, s))
				return -1;
		}
	}
	if (resp->n_audit) {
		cJSON *a = cJSON_AddObjectToObject(r, "auditAnnotations");
		if (!a)
			return -1;
		for (size_t i = 0; i < resp->n_audit; i++) {
			if (!cJSON_AddStringToObject(a, resp->audit_keys[i], resp->audit_values[i]))
				return -1;
		}
	}
	return 0;
}

static char *reference_encode(const char *uid, const struct admission_response *resp, bool allow_patch)
{
	cJSON *doc = cJSON_CreateObject(), *r;
	char *out = NULL;

	if (!doc || !cJSON_AddStringToObject(doc, "apiVersion", "admission.k8s.io/v1") ||
	    !cJSON_AddStringToObject(doc, "kind", "AdmissionReview"))
		goto out;
	r = cJSON_AddObjectToObject(doc, "response");
	if (!r || !cJSON_AddStringToObject(r, "uid", uid) ||
	    !cJSON_AddBoolToObject(r, "allowed", resp->allowed))
		goto out;
	if (!resp->allowed && add_status(r, resp) < 0)
		goto out;
	if (resp->allowed && allow_patch && resp->patch && add_patch(r, resp->patch) < 0)
		goto out;
	if (add_lists(r, resp) < 0)
		goto out;
	out = cJSON_PrintUnformatted(doc);
out:
	cJSON_Delete(doc);
	return out;
}

/* ---- the harness ---- */

/* The next NUL-terminated piece of the input, malloc'd; NULL at the end. */
static char *next_piece(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul;
	char *s;
	size_t n;

	if (*p >= end)
		return NULL;
	nul = memchr(*p, 0, (size_t)(end - *p));
	n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += n + (nul ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 3, *end = data + size;
	struct admission_response resp;
	char *uid, *mine, *ref;
	bool allow_patch;

	if (size < 3)
		return 0;
	admission_response_init(&resp);
	resp.allowed = data[0] & 1;
	allow_patch = data[0] & 2;
	resp.code = (data[0] & 4) ? (int)(data[1] | data[2] << 8) - 1000 : 0;
	uid = next_piece(&p, end);
	if (!(data[0] & 8))
		resp.message = next_piece(&p, end);
	if (!(data[0] & 16))
		resp.patch = next_piece(&p, end);
	while (p < end && resp.n_warnings < ADM_MAX_WARNINGS && !(data[0] & 32))
		resp.warnings[resp.n_warnings++] = next_piece(&p, end);
	while (p < end && resp.n_audit < ADM_MAX_AUDIT) {
		resp.audit_keys[resp.n_audit] = next_piece(&p, end);
		resp.audit_values[resp.n_audit] = next_piece(&p, end);
		if (!resp.audit_values[resp.n_audit])
			resp.audit_values[resp.n_audit] = strdup("");
		resp.n_audit++;
	}
	mine = admission_encode(uid ? uid : "", &resp, allow_patch);
	ref = reference_encode(uid ? uid : "", &resp, allow_patch);
	if (!mine || !ref || strcmp(mine, ref) != 0) {
		fprintf(stderr, "encodings differ:\n mine: %s\n cjson: %s\n", mine ? mine : "(null)",
			ref ? ref : "(null)");
		abort();
	}
	free(mine);
	free(ref);
	free(uid);
	admission_response_clear(&resp);
	return 0;
}
