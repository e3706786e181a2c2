#ifndef ROLLGATE_LEASE_H
#define ROLLGATE_LEASE_H

#include <stdbool.h>
#include <stddef.h>

#include "kubeclient.h"

/*
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection does it: a candidate takes the Lease when its holder is
 * empty or the record has not changed for leaseDurationSeconds (timed on
 * the candidate's own clock, never by comparing clocks); writes are PUTs
 * carrying metadata.resourceVersion, so of two candidates only one wins and
 * the other gets 409 Conflict. The leader renews every retry period and
 * counts itself leader only while its last successful renewal started less
 * than the renew deadline ago (before anyone else may consider the lease
 * expired). Giving up (lease_stop with release) empties holderIdentity and
 * sets leaseDurationSeconds to 1, so a successor need not wait.
 */

#define LEASE_NAME "rollgate-reload"

struct lease_options {
	const char *namespace_;
	const char *name;           /* LEASE_NAME */
	const char *identity;       /* unique per process: lease_make_identity */
	unsigned duration_s;        /* 15 */
	unsigned renew_deadline_ms; /* 10000 */
	unsigned retry_ms;          /* 2000 */
};

/* The defaults above; namespace_ and identity stay NULL. */
void lease_default_options(struct lease_options *o);

/* "<HOSTNAME>_<16 random hex digits>" ("rollgate" without HOSTNAME). */
void lease_make_identity(char *buf, size_t len);

struct lease;

/* The client is borrowed; the strings of o are copied. NULL with err when an
 * option is invalid (a namespace or name that is not a DNS name, a renew
 * deadline not shorter than the duration, ...) or on OOM. */
struct lease *lease_new(struct kube_client *c, const struct lease_options *o, char *err,
			size_t errlen);
/* Starts the election thread. Returns 0 or -1 with err. */
int lease_start(struct lease *l, char *err, size_t errlen);
/* True while this process holds the lease (thread-safe, never blocks). */
bool lease_is_leader(struct lease *l);
const char *lease_identity(const struct lease *l);
/* Stops the thread; with release, a leader first gives the lease up. After
 * this lease_is_leader is false. Idempotent. */
void lease_stop(struct lease *l, bool release);
/* Stops (without release) and frees; NULL ok. */
void lease_free(struct lease *l);

#endif
