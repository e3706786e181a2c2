/*
 * Serving certificate hot reload. The files are re-read whole on each check,
 * which follows kubelet's "..data" symlink swap of a mounted Secret without
 * any inotify bookkeeping; a check costs two small reads.
 */
#include "certstore.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define PEM_MAX_BYTES (256 * 1024)
#define CHAIN_MAX 16

struct generation {
	gnutls_pcert_st pcerts[CHAIN_MAX];
	unsigned n_pcerts;
	gnutls_privkey_t key;
	double not_after;
	struct generation *older;
};

struct certstore {
	char *cert_path;
	char *key_path;
	char *cert_pem; /* bytes of the installed pair, or of the last failed one */
	size_t cert_len;
	char *key_pem;
	size_t key_len;
	char *unreadable;        /* why a file could not be read last time */
	struct generation *gens; /* newest first */
};

static _Atomic(struct generation *) current;

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f) {
		char why[128];
		snprintf(err, errlen, "%s: %s", path, strerror_r(errno, why, sizeof(why)));
		return NULL;
	}
	buf = malloc(PEM_MAX_BYTES + 1);
	n = buf ? fread(buf, 1, PEM_MAX_BYTES + 1, f) : 0;
	if (!buf || ferror(f) || n > PEM_MAX_BYTES || n == 0) {
		snprintf(err, errlen, "%s: %s", path,
			 !buf             ? "out of memory"
				 : n == 0 ? "file is empty"
					  : "unreadable or too large");
		if (buf)
			OPENSSL_cleanse(buf, PEM_MAX_BYTES + 1); /* it may hold a key */
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static double asn1_to_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (double)timegm(&tm);
}

/* OpenSSL's view: the first certificate parses, the key parses, they match. */
static int validate_pair(const struct certstore *cs, const char *cert, size_t clen, const char *key,
			 size_t klen, double *not_after, char *err, size_t errlen)
{
	BIO *cb = BIO_new_mem_buf(cert, (int)clen), *kb = BIO_new_mem_buf(key, (int)klen);
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	int rc = -1;

	if (!cb || !kb) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!x) {
		snprintf(err, errlen, "%s: not a PEM certificate", cs->cert_path);
		goto out;
	}
	pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (!pk) {
		snprintf(err, errlen, "%s: not a PEM private key (or it is encrypted)", cs->key_path);
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		snprintf(err, errlen, "%s does not match the certificate in %s", cs->key_path,
			 cs->cert_path);
		goto out;
	}
	*not_after = asn1_to_unix(X509_get0_notAfter(x));
	rc = 0;
out:
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(pk);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

static void generation_free(struct generation *g)
{
	for (unsigned i = 0; i < g->n_pcerts; i++)
		gnutls_pcert_deinit(&g->pcerts[i]);
	if (g->key)
		gnutls_privkey_deinit(g->key);
	free(g);
}

static struct generation *generation_load(const struct certstore *cs, const char *cert, size_t clen,
					  const char *key, size_t klen, char *err, size_t errlen)
{
	struct generation *g = calloc(1, sizeof(*g));
	gnutls_datum_t cd = { (unsigned char *)cert, (unsigned)clen };
	gnutls_datum_t kd = { (unsigned char *)key, (unsigned)klen };
	int r;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (validate_pair(cs, cert, clen, key, klen, &g->not_after, err, errlen) < 0)
		goto fail;
	g->n_pcerts = CHAIN_MAX;
	r = gnutls_pcert_list_import_x509_raw(g->pcerts, &g->n_pcerts, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0) {
		g->n_pcerts = 0;
		snprintf(err, errlen, "%s: %s", cs->cert_path, gnutls_strerror(r));
		goto fail;
	}
	r = gnutls_privkey_init(&g->key);
	if (r >= 0)
		r = gnutls_privkey_import_x509_raw(g->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", cs->key_path, gnutls_strerror(r));
		goto fail;
	}
	return g;
fail:
	generation_free(g);
	return NULL;
}

static void remember(struct certstore *cs, char *cert, size_t clen, char *key, size_t klen)
{
	free(cs->cert_pem);
	if (cs->key_pem)
		OPENSSL_cleanse(cs->key_pem, cs->key_len);
	free(cs->key_pem);
	cs->cert_pem = cert;
	cs->cert_len = clen;
	cs->key_pem = key;
	cs->key_len = klen;
}

static void discard_key(char *key, size_t klen)
{
	if (key)
		OPENSSL_cleanse(key, klen);
	free(key);
}

/* True when a file fails to read as it did last time (an empty file in the
 * middle of an in-place rewrite, say): reported once, not at every check. */
static bool same_failure(struct certstore *cs, const char *err)
{
	if (cs->unreadable && strcmp(cs->unreadable, err) == 0)
		return true;
	free(cs->unreadable);
	cs->unreadable = strdup(err);
	return false;
}

int certstore_reload(struct certstore *cs, char *err, size_t errlen)
{
	size_t clen = 0, klen = 0;
	char *cert = read_file(cs->cert_path, &clen, err, errlen);
	char *key = cert ? read_file(cs->key_path, &klen, err, errlen) : NULL;
	struct generation *g;

	if (!cert || !key) {
		free(cert);
		return same_failure(cs, err) ? 0 : -1;
	}
	free(cs->unreadable);
	cs->unreadable = NULL;
	if (cs->cert_pem && clen == cs->cert_len && klen == cs->key_len &&
	    memcmp(cert, cs->cert_pem, clen) == 0 && memcmp(key, cs->key_pem, klen) == 0) {
		free(cert);
		discard_key(key, klen);
		return 0;
	}
	g = generation_load(cs, cert, clen, key, klen, err, errlen);
	/* Remember the bytes either way, so one bad pair is reported once. */
	remember(cs, cert, clen, key, klen);
	if (!g)
		return -1;
	g->older = cs->gens;
	cs->gens = g;
	atomic_store(&current, g);
	return 1;
}

struct certstore *certstore_open(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct certstore *cs = calloc(1, sizeof(*cs));

	if (!cs || !(cs->cert_path = strdup(cert_path)) || !(cs->key_path = strdup(key_path))) {
		snprintf(err, errlen, "out of memory");
		certstore_close(cs);
		return NULL;
	}
	if (certstore_reload(cs, err, errlen) != 1) {
		certstore_close(cs);
		return NULL;
	}
	return cs;
}

double certstore_expiry(const struct certstore *cs)
{
	return cs->gens ? cs->gens->not_after : 0;
}

int certstore_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
		       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
		       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	struct generation *g = atomic_load(&current);

	(void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	if (!g)
		return -1;
	*pcert = g->pcerts;
	*pcert_length = g->n_pcerts;
	*pkey = g->key;
	return 0;
}

void certstore_close(struct certstore *cs)
{
	struct generation *g, *next;

	if (!cs)
		return;
	if (cs->gens && atomic_load(&current) == cs->gens)
		atomic_store(&current, NULL);
	for (g = cs->gens; g; g = next) {
		next = g->older;
		generation_free(g);
	}
	remember(cs, NULL, 0, NULL, 0);
	free(cs->unreadable);
	free(cs->cert_path);
	free(cs->key_path);
	free(cs);
}
