/* Hashing the files of a listing on several threads: re-verifying a many-file entry is bound by
 * per-file work (open, read, hash, close), which spreads over cores; one big file does not. */
#ifndef CAS_CACHE_HASH_PARALLEL_H
#define CAS_CACHE_HASH_PARALLEL_H

#include "common/sums.h"

/* Fill every entry's hex (and size, as hashed) from the files under `folder`, opened without
 * following links. Uses up to the online CPUs (at most 8) threads when there are many files,
 * else this thread. The first failure is returned with its detail; entries are then undefined. */
cas_hr cache_hash_entries(const char *folder, struct cas_sums *sums);

#endif
