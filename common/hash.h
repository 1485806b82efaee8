/* Hashing: the two package hash algorithms, streaming, over OpenSSL EVP. */
#ifndef CAS_HASH_H
#define CAS_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum cas_hash_alg { CAS_HASH_SHA256 = 0, CAS_HASH_SHA1 = 1 };

#define CAS_HASH_MAX_BYTES 32
#define CAS_HASH_MAX_HEX   (2 * CAS_HASH_MAX_BYTES)

/* "sha256" / "sha1" <-> enum. cas_hash_alg_parse returns CAS_E_UNSUPPORTED_ALG for anything else
 * (case-sensitive: the contract spells them in lower case). */
cas_hr cas_hash_alg_parse(const char *name, enum cas_hash_alg *out);
const char *cas_hash_alg_name(enum cas_hash_alg alg);
size_t cas_hash_len(enum cas_hash_alg alg);    /* digest bytes: 32 or 20 */
size_t cas_hash_hexlen(enum cas_hash_alg alg); /* 64 or 40 */

/* Streaming context. cas_hash_new returns NULL only when out of memory. */
struct cas_hash;
struct cas_hash *cas_hash_new(enum cas_hash_alg alg);
void cas_hash_update(struct cas_hash *h, const void *data, size_t len);
/* Writes lower-case hex + NUL into hex (at least CAS_HASH_MAX_HEX + 1 bytes). Resets nothing:
 * call cas_hash_free afterwards. */
void cas_hash_final_hex(struct cas_hash *h, char *hex);
void cas_hash_free(struct cas_hash *h);

/* One-shot helpers; hex receives lower-case hex + NUL. */
void cas_hash_buf_hex(enum cas_hash_alg alg, const void *data, size_t len, char *hex);
/* Hash a regular file opened relative to dirfd (AT_FDCWD allowed) without following a final
 * symlink. *size_out (may be NULL) receives the byte count. */
cas_hr cas_hash_file_at(int dirfd, const char *path, enum cas_hash_alg alg, char *hex,
                        uint64_t *size_out);

/* Hex helpers. cas_hex_is_valid: exactly `len` hex digits, either case. */
int cas_hex_is_valid(const char *s, size_t len);
void cas_hex_upper(const char *in, char *out); /* copy upper-cased; out may equal in */
void cas_hex_lower(const char *in, char *out);
void cas_hex_encode(const uint8_t *bytes, size_t n, char *out); /* lower-case, NUL-terminated */
/* Case-insensitive comparison of two hex digests; 1 if equal. */
int cas_hex_equal(const char *a, const char *b);

#endif
