/* libFuzzer target: the sums-listing parser (common/sums.h). A listing comes from a distribution
 * point, which is never trusted; it is hashed against the signed package hash, but parsed first.
 * The first byte picks the algorithm. A listing is canonical, so a parsed one must serialise back
 * to exactly the input bytes, and every entry must be found by the binary search. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sums.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cas_sums s;
    char hex[CAS_HASH_MAX_HEX + 1];
    char *buf = NULL;
    size_t len = 0;

    if (size < 1)
        return 0;
    enum cas_hash_alg alg = (data[0] & 1) ? CAS_HASH_SHA1 : CAS_HASH_SHA256;
    memset(&s, 0, sizeof(s));
    if (cas_sums_parse((const char *)data + 1, size - 1, alg, &s) != CAS_OK)
        return 0;
    for (size_t i = 0; i < s.count; i++)
        check(cas_sums_find(&s, s.entries[i].path) == &s.entries[i]);
    check(cas_sums_serialize(&s, &buf, &len) == CAS_OK);
    check(len == size - 1 && memcmp(buf, data + 1, len) == 0);
    check(cas_sums_package_hash(&s, hex) == CAS_OK);
    free(buf);
    cas_sums_free(&s);
    return 0;
}
