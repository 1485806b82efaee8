/* libFuzzer target: the configuration loader (common/config.h). The file is local and written by
 * root, but a typo must give an error, never a crash. Success or failure, the result must be
 * freeable, and on success every key must print. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cas_config cfg;
    char value[4096];

    memset(&cfg, 0, sizeof(cfg));
    if (cas_config_load_buf((const char *)data, size, &cfg) == CAS_OK) {
        for (size_t i = 0; cas_config_key_text(&cfg, i, value, sizeof(value)); i++)
            if (memchr(value, '\0', sizeof(value)) == NULL)
                abort();
    }
    cas_config_free(&cfg);
    return 0;
}
