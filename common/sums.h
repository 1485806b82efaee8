/* The sums listing and the package hash (see docs/formats.md):
 *   one line per regular file, sorted by path as raw bytes: "<lower hex>  <P>\n"
 *   package hash = HASH(listing bytes)
 * exactly what `find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum`
 * prints, so coreutils recomputes the same value. */
#ifndef CAS_SUMS_H
#define CAS_SUMS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "hash.h"

struct cas_sums_entry {
    char *path;                     /* P, validated by cas_path_check */
    char hex[CAS_HASH_MAX_HEX + 1]; /* lower-case */
    uint64_t size;                  /* known only for listings built from a folder; else 0 */
};

struct cas_sums {
    enum cas_hash_alg alg;
    size_t count;
    struct cas_sums_entry *entries; /* sorted by path (strcmp order == raw bytes) */
};

/* Parse a listing. Every line must be exactly "<hexlen lower-case hex>  <P>\n" (the last line
 * too), P must pass cas_path_check, paths strictly increasing (sorted, no duplicates), and no P
 * may be both a file and a folder prefix of another ("a" and "a/b"). An empty buffer is an empty
 * listing. CAS_E_INVALID_DATA (format) or CAS_E_BAD_NAME (path) with a detail naming the line. */
cas_hr cas_sums_parse(const char *buf, size_t len, enum cas_hash_alg alg, struct cas_sums *out);

/* Build a listing from the regular files under the folder `dirfd`/`path` (path relative to dirfd,
 * or absolute). Refuses (CAS_E_BAD_NAME, detail names the entry) symbolic links, special files
 * and names that break the path rules; empty folders are ignored. Fills each entry's size. */
cas_hr cas_sums_build_at(int dirfd, const char *path, enum cas_hash_alg alg, struct cas_sums *out);

/* The same walk and the same refusals as cas_sums_build_at, without hashing: each entry has its
 * path and size and an empty hex. For checking which files a folder holds. */
cas_hr cas_sums_list_at(int dirfd, const char *path, enum cas_hash_alg alg, struct cas_sums *out);

/* Serialise to the exact listing bytes (malloc'd, *len_out set; not NUL-terminated but a NUL is
 * appended for convenience). */
cas_hr cas_sums_serialize(const struct cas_sums *s, char **buf_out, size_t *len_out);

/* Package hash of a listing: HASH(serialised listing), lower-case hex into hex. */
cas_hr cas_sums_package_hash(const struct cas_sums *s, char *hex);

/* Binary search by path; NULL if absent. */
const struct cas_sums_entry *cas_sums_find(const struct cas_sums *s, const char *path);

void cas_sums_free(struct cas_sums *s);

#endif
