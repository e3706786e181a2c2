/* libFuzzer: the config reader on arbitrary YAML. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[512];
	char *buf = malloc(size + 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (config_load_buffer("fuzz.yaml", buf, size, &cfg, err, sizeof(err)) == 0)
		config_clear(&cfg);
	free(buf);
	return 0;
}
