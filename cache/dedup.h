/* Deduplication: files of new content that the cache already holds in other entries. */
#ifndef CAS_CACHE_DEDUP_H
#define CAS_CACHE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* A lookup table of the files of every committed entry whose listing uses `alg`, except
 * `exclude_content` (may be NULL), built from their C.sums files. Entries whose listing cannot
 * be read are skipped. NULL (with a detail) only when out of memory. */
struct cache_files;
struct cache_files *cache_files_load(struct cache *c, enum cas_hash_alg alg,
                                     const char *exclude_content);
void cache_files_free(struct cache_files *t);

/* 1 if some entry lists a file with hash `hex` (either case): worth a cache_files_copy. */
int cache_files_has(struct cache_files *t, const char *hex);

/* Copy a cached file whose listed hash is `hex` (either case) into `dst_fd` (an empty file
 * opened for writing), hashing what was copied: CAS_OK only if the copy hashes to `hex`, with
 * *size_out its size and *from_content the entry it came from (owned by t). CAS_E_NOT_FOUND
 * if no entry lists that hash or every candidate failed to match (a changed cache file is
 * never copied into new content). copy_file_range(2) is used, which reflinks where the
 * filesystem can. */
cas_hr cache_files_copy(struct cache_files *t, const char *hex, int dst_fd, uint64_t *size_out,
                        const char **from_content);

#endif
