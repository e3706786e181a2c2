/*
 * The reference count of a published config (include/configref.h). The
 * count only ever goes from a held reference to another (config_ref runs
 * while its caller's or the owner's reference keeps r alive), so it never
 * climbs back from 0, and it is never dropped below 0: both are asserted.
 */
#include "configref.h"

#include <stdlib.h>

#include "rgassert.h"

struct config_ref *config_ref_new(struct config *cfg)
{
	struct config_ref *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	r->cfg = cfg;
	atomic_init(&r->refs, 1);
	return r;
}

struct config_ref *config_ref(struct config_ref *r)
{
	int was = atomic_fetch_add(&r->refs, 1);

	RG_ASSERT(was > 0); /* a freed config is never taken again */
	(void)was;
	return r;
}

void config_unref(struct config_ref *r)
{
	int was;

	if (!r)
		return;
	was = atomic_fetch_sub(&r->refs, 1);
	RG_ASSERT(was > 0); /* never dropped more often than taken */
	if (was != 1)
		return;
	config_clear(r->cfg);
	free(r->cfg);
	free(r);
}
