/*
 * Which ConfigMaps and Secrets join a workload's config hash (optin.h).
 */
#include "optin.h"

#include <string.h>

#include "jsonutil.h"

const char *optin_annotation(const cJSON *workload, const cJSON *tmpl, const char *key)
{
	const char *v = json_get_string(json_get_path(workload, "metadata", "annotations", NULL), key);

	if (v)
		return v;
	return json_get_string(json_get_path(tmpl, "metadata", "annotations", NULL), key);
}
