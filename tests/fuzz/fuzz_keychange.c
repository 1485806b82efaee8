/* libFuzzer target: the key-change document (common/keychange.h), fetched from the management
 * point and parsed before its signature is checked. On success the key's id, recomputed from the
 * canonical PEM, must be the one the document names. The raw input also goes through the key
 * rule on its own (the "key" string's check), which is where PEM parsing happens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/keychange.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cas_keychange kc;
    char id[CAS_KEYID_HEX + 1];

    memset(&kc, 0, sizeof(kc));
    if (cas_keychange_parse((const char *)data, size, &kc) == CAS_OK) {
        check(kc.serial >= 1 && strlen(kc.site) == 3 && kc.key_pem);
        check(strlen(kc.key_pem) == kc.key_pem_len);
        check(cas_keychange_key_id(kc.key_pem, kc.key_pem_len, id) == CAS_OK);
        check(strcmp(id, kc.key_id) == 0);
        cas_keychange_free(&kc);
    }
    if (size > 0 && data[0] == '-')
        (void)cas_keychange_key_id((const char *)data, size, id);
    return 0;
}
