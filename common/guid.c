/* Random (version 4) GUIDs in the real client's spelling: upper case, with braces. */
#include "common/guid.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include <openssl/rand.h>

static void cas_guid_random(uint8_t *b, size_t n)
{
    if (RAND_bytes(b, (int)n) == 1)
        return;
    /* The OpenSSL DRBG can only fail if it cannot seed; the kernel is its seed source, so ask it
     * directly before giving up. A predictable id would let one job be confused with another. */
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fputs("cas: no source of random numbers for a GUID\n", stderr);
            abort();
        }
        got += (size_t)r;
    }
}

void cas_guid_new(char out[CAS_GUID_LEN + 1])
{
    uint8_t b[16];
    cas_guid_random(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, CAS_GUID_LEN + 1,
             "{%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X}", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}
