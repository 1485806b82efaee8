/* The content cache: <cache_dir>/C/ + <cache_dir>/C.sums, the distribution point layout.
 *
 * An entry exists when C.sums exists; C.sums is renamed into place last, after C/, so a crash
 * between the two leaves only an orphan folder that cache_open() removes. Content is assembled in
 * a staging folder <cache_dir>/.partial/C/ (same filesystem, so the commit is a rename)
 * and is committed only when the package hash recomputed from the files on disk matches. */
#ifndef CAS_CACHE_H
#define CAS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/sums.h"

struct cache;

/* Open (creating if needed) the cache folder; removes orphans left by a crash. */
cas_hr cache_open(const char *dir, struct cache **out);
void cache_close(struct cache *c);
const char *cache_dir(const struct cache *c);

/* Staging: the folder where content C is assembled, <cache_dir>/.partial/C/, with the content
 * in <staging>/C/ (created) and room for transfer state beside it. The same content always gets
 * the same folder, so work interrupted by a crash or a signal is resumed by the next job. The
 * folder is held with flock(2) on .partial/C.lock until released: a second process asking for
 * the same content waits here, then usually finds the entry committed. *staging_out is
 * malloc'd. */
cas_hr cache_stage_begin(struct cache *c, const char *content_id, char **staging_out);
/* Give up a staging folder: remove it (content that failed verification) and release it. */
void cache_stage_abort(struct cache *c, const char *staging);
/* Release a staging folder but keep it for a later job to resume (an interrupted transfer). */
void cache_stage_keep(struct cache *c, const char *staging);

/* Recompute the package hash of <folder> (the content files) from disk. Fills *sums_out (may
 * be NULL) and actual_hex. Refuses links and special files like cas_sums_build_at. */
cas_hr cache_hash_folder(const char *folder, enum cas_hash_alg alg, struct cas_sums *sums_out,
                         char *actual_hex);

/* Commit staged content. The package hash is computed from `digests` when given (the per-file
 * hashes the downloader computed while it wrote each file, itself the only writer of a folder
 * nobody else can write): the folder must then hold exactly those files with those sizes, checked
 * without reading them again. With digests NULL every file is hashed from disk. Unless the package
 * hash equals expected_hex, return CAS_E_HASH_MISMATCH with actual_hex filled (nothing changes in
 * the cache). Otherwise make files read-only (mode 0444; `exec_path`, a path inside the content
 * or NULL, 0555), sync, write C.sums, and rename C/ then C.sums into place, replacing any older
 * entry of C. The staging folder is removed and released either way. */
cas_hr cache_commit(struct cache *c, const char *staging, const char *content_id,
                    enum cas_hash_alg alg, const char *expected_hex, const char *exec_path,
                    const struct cas_sums *digests, char *actual_hex);

/* 1 if the entry for C is present (C.sums and C/ exist). */
int cache_has(struct cache *c, const char *content_id);

/* Re-verify an entry from disk: CAS_OK, CAS_E_CONTENT_NOT_FOUND if absent, CAS_E_HASH_MISMATCH
 * (actual_hex filled, and `changed` (may be NULL) receives a malloc'd description of the first
 * file that differs from C.sums, or NULL). */
cas_hr cache_verify(struct cache *c, const char *content_id, enum cas_hash_alg alg,
                    const char *expected_hex, char *actual_hex, char **changed);

/* The hash of the entry's own listing C.sums (its package hash as committed), and the algorithm
 * its lines use: what `cache verify` checks against when no applied policy advertises C. */
cas_hr cache_recorded_hash(struct cache *c, const char *content_id, enum cas_hash_alg *alg,
                           char *hex);

/* cache_verify for a use of the entry: on CAS_OK the use and the verification are recorded
 * (cache_touch with `now` and `persist`); on CAS_E_HASH_MISMATCH CAS.log gets an error record
 * naming 0x80091007, the expected and actual package hashes and the file that changed, and the
 * detail says the same. */
cas_hr cache_reverify(struct cache *c, const char *content_id, enum cas_hash_alg alg,
                      const char *expected_hex, time_t now, int persist);

/* Path of the entry's content folder (malloc'd). */
char *cache_content_path(const struct cache *c, const char *content_id);

/* Make file `rel` of a committed entry executable (0555), for another advertisement of the same
 * content whose command it is (the commit made only the triggering advert's command 0555). A
 * link or anything but a regular file is refused (CAS_E_BAD_NAME); the bytes are not touched, so
 * the entry still verifies. */
cas_hr cache_make_executable(struct cache *c, const char *content_id, const char *rel);

/* Remove an entry: C.sums first (so it stops existing), then C/. CAS_E_CONTENT_NOT_FOUND if
 * there is none; CAS_E_CACHE_IN_USE (nothing removed) while any process holds it. */
cas_hr cache_delete(struct cache *c, const char *content_id);

/* In use: a shared hold on C (which need not be committed yet) for as long as a program runs
 * from it or it is verified; removal and replacement of a held entry are refused. Released by
 * cache_release or by the process ending. A process must release its own hold before it
 * deletes or replaces the entry. */
struct cache_hold;
cas_hr cache_hold(struct cache *c, const char *content_id, struct cache_hold **out);
void cache_release(struct cache_hold *h);
/* 1 if some process holds C now. */
int cache_in_use(struct cache *c, const char *content_id);

/* Record a use of entry C in the index: last used = now; `verified` also sets the verification
 * time; persist 0/1 sets the persist flag, -1 keeps it. CAS_E_CONTENT_NOT_FOUND if absent. */
cas_hr cache_touch(struct cache *c, const char *content_id, time_t now, int persist, int verified);

struct cache_entry_info {
    char content_id[32];
    uint64_t size; /* bytes of the files */
    size_t files;
    time_t modified;  /* when it was committed */
    time_t last_used; /* from the index; the commit time when unknown */
    time_t verified;  /* last verified from disk (commit, execute, cache verify) */
    int persist;      /* never removed automatically */
    int in_use;       /* held by a process right now */
};

/* List committed entries, sorted by content id. *out is malloc'd. A missing or damaged index is
 * rebuilt here (with a warning in CAS.log). */
cas_hr cache_list(struct cache *c, struct cache_entry_info **out, size_t *count);

/* Room for new content. The cache holds at most max_bytes of entry files; content needing
 * `need` bytes gets room by removing entries that are not persistent, not in use and last used
 * at least retention_minutes before `now`, least recently used first. `for_content`'s own entry
 * (being replaced) does not count. CAS_E_CACHE_TOO_SMALL if need > max_bytes;
 * CAS_E_CACHE_FULL, removing nothing, if the removable entries are not enough. Each removal and
 * each refusal is explained in CAS.log. */
struct cache_limits {
    uint64_t max_bytes;
    long retention_minutes;
    time_t now;
    /* Content ids that are persistent whatever the index says (the applied policies' "persist"
     * adverts), so a lost index never makes them removable. */
    char **persist;
    size_t n_persist;
};
cas_hr cache_make_room(struct cache *c, const char *for_content, uint64_t need,
                       const struct cache_limits *limits);

/* Remove what may be removed without waiting for a need: entries that are not persistent, not
 * in use and older than the retention time, staging folders nobody holds, orphans. Counts what
 * it removed (either may be NULL). */
cas_hr cache_clean(struct cache *c, const struct cache_limits *limits, size_t *entries_removed,
                   uint64_t *bytes_removed);

#endif
