/* What the cache's source files share; not part of the library's interface. */
#ifndef CAS_CACHE_INTERNAL_H
#define CAS_CACHE_INTERNAL_H

#include <sys/types.h>

#include "cache/cache.h"

#define CACHE_PARTIAL ".partial"
#define CACHE_LOCK    ".lock"
#define CACHE_LOCKS   ".locks"      /* one use-lock file per content id */
#define CACHE_INDEX   ".index.json" /* last use, verification time, persist flag */

struct cache_stage_lock {
    char *staging;
    int fd;
};

struct cache {
    char *dir;
    int dirfd;
    struct cache_stage_lock locks[8]; /* staging folders this process holds */
};

/* The committed entries (C.sums and C/ present), sorted by content id: *ids is a malloc'd array
 * of *count ids. The one scan of the cache folder that listing, the index and dedup share. */
#define CACHE_ID_MAX 32
cas_hr cache_entry_ids(struct cache *c, char (**ids)[CACHE_ID_MAX], size_t *count);

/* mkdirat that insists on a real folder: a link (or a file) planted at the name is removed (with a
 * warning in CAS.log) and the folder made, so no later path through it leads out of the cache.
 * -1 with errno on failure. */
int cache_mkdir_real(int dirfd, const char *name, mode_t mode);

/* The cache-wide lock for the short steps that change which entries exist or the index.
 * -1 with errno on failure. */
int cache_lock(struct cache *c);
void cache_unlock(int fd);
cas_hr cache_check_id(const char *content_id);

/* Take C's use-lock exclusively without waiting: the fd to close when done, or -1 (errno
 * EWOULDBLOCK when someone holds the entry). */
int cache_use_lock_excl(struct cache *c, const char *content_id);

/* Remove C.sums then C/ and sync the cache folder; the caller holds the cache lock and C's
 * use-lock. */
cas_hr cache_remove_entry_locked(struct cache *c, const char *content_id);

/* Remove every staging folder no download holds (partial work kept for resume); the number
 * removed. */
int cache_clean_staging(struct cache *c);

/* Index records, by content id. */
struct cache_meta {
    char content_id[32];
    time_t last_used, verified;
    int persist;
};

/* Read the index and reconcile it with the committed entries (an entry without a record gets
 * its commit time; records of absent entries are dropped). A missing or damaged index is
 * rebuilt from the folders with a warning in CAS.log, and written back when `write_back` (the
 * caller then holds the cache lock). *out is malloc'd, sorted by content id. */
cas_hr cache_index_load(struct cache *c, int write_back, struct cache_meta **out, size_t *count);
/* Write the index atomically; the caller holds the cache lock. */
cas_hr cache_index_store(struct cache *c, const struct cache_meta *m, size_t count);

#endif
