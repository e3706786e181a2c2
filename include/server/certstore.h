#ifndef ROLLGATE_CERTSTORE_H
#define ROLLGATE_CERTSTORE_H

#include <stddef.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

/*
 * The serving certificate and key, reloaded without a restart. Each load is
 * validated with OpenSSL (parses, key matches certificate) before GnuTLS
 * sees it; a bad pair never replaces a good one. Generations are kept until
 * certstore_close, since a live TLS session may still point at an old one.
 * There is one store per process: GnuTLS's certificate callback has no user
 * pointer.
 */
struct certstore;

/* Loads and validates the pair; err names the file and the problem. */
struct certstore *certstore_open(const char *cert_path, const char *key_path, char *err,
				 size_t errlen);

/* Re-reads both files. Returns 1 when a new valid pair was installed, 0 when
 * the files are unchanged (or hold the pair that failed last time, or fail
 * to read as they did last time), -1 on a new invalid pair or a file that
 * cannot be read, is empty or too large (err says why; the old pair stays). */
int certstore_reload(struct certstore *cs, char *err, size_t errlen);

/* notAfter of the current certificate, as a Unix time. */
double certstore_expiry(const struct certstore *cs);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK (gnutls_certificate_retrieve_function2). */
int certstore_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
		       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
		       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

void certstore_close(struct certstore *cs);

#endif
