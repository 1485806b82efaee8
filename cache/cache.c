/* The content cache. Commit order (see cache.h): files are synced with one syncfs(2) (cheaper
 * than an fsync per file for many-file packages, same guarantee), then C.sums is written and
 * synced in staging, then under the cache lock C/ is renamed into place, then C.sums, then the
 * cache folder is synced. C.sums is the commit marker: an entry without it is an orphan. */
#include "cache/cache_internal.h"
#include "cache/hash_parallel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/path.h"
#include "common/timefmt.h"

static void cache_stage_release(struct cache *c, const char *staging);

const char *cache_dir(const struct cache *c)
{
    return c->dir;
}

/* A cache-wide lock for the short steps that change which entries exist (commit, delete, orphan
 * removal). Downloads and hashing run without it. The kernel drops it if the process dies. */
int cache_lock(struct cache *c)
{
    int fd = openat(c->dirfd, CACHE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

void cache_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Remove staging folder `name` (NULL: only the lock) and its lock `name`.lock, unless a
 * download holds the lock. For a folder the lock is created if missing (a kept folder has
 * none), so a download starting meanwhile waits for it instead of losing its folder; a process
 * that locks the file after it is unlinked sees the path gone and opens a new one
 * (cache_stage_begin). 1 if removed. */
static int cache_staging_remove_unheld(int pfd, const char *name, const char *lock)
{
    int lfd = openat(pfd, lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (name ? O_CREAT : 0), 0600);
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        close(lfd);
        return 0; /* a download is running */
    }
    int removed = !name || cas_fs_remove_tree_at(pfd, name) == CAS_OK;
    unlinkat(pfd, lock, 0);
    if (lfd >= 0)
        close(lfd);
    return removed;
}

/* .partial holds C/ folders and their C.lock files. Removed: anything else (an older layout, a
 * crash), a lock without its folder (a crash after a commit), and every folder nobody holds
 * that is committed already or, with `all` (cache clean), also the ones kept for resume. The
 * number of folders removed. */
static int cache_sweep_staging(struct cache *c, int all)
{
    int removed = 0;
    int pfd = openat(c->dirfd, CACHE_PARTIAL, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return 0;
    DIR *d = fdopendir(pfd);
    if (!d) {
        close(pfd);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char name[NAME_MAX + 1], lock[NAME_MAX + 8];
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(name, sizeof(name), "%s", de->d_name);
        size_t n = strlen(name);
        if (n > 5 && !strcmp(name + n - 5, ".lock")) {
            name[n - 5] = '\0';
            if (!cas_id_is_content(name))
                cas_fs_remove_tree_at(pfd, de->d_name);
            else if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                cache_staging_remove_unheld(pfd, NULL, de->d_name);
            continue; /* else decided with its folder */
        }
        if (!cas_id_is_content(name)) {
            cas_fs_remove_tree_at(pfd, name);
            continue;
        }
        if (!all && !cache_has(c, name))
            continue; /* kept for the next download to resume */
        snprintf(lock, sizeof(lock), "%s.lock", name);
        removed += cache_staging_remove_unheld(pfd, name, lock);
    }
    closedir(d);
    return removed;
}

int cache_clean_staging(struct cache *c)
{
    return cache_sweep_staging(c, 1);
}

/* C/ without C.sums: a commit interrupted between its two renames, or a delete interrupted.
 * Also the index's temporary files a crash left (the index is only written under the cache
 * lock, which the caller holds). */
static void cache_remove_orphans(struct cache *c)
{
    int dfd = dup(c->dirfd);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    char sums[NAME_MAX + 8];
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strncmp(de->d_name, CACHE_INDEX ".tmp-", strlen(CACHE_INDEX ".tmp-"))) {
            unlinkat(c->dirfd, de->d_name, 0);
            continue;
        }
        if (!cas_id_is_content(de->d_name))
            continue;
        snprintf(sums, sizeof(sums), "%s.sums", de->d_name);
        if (faccessat(c->dirfd, sums, F_OK, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
            cas_fs_remove_tree_at(c->dirfd, de->d_name);
    }
    closedir(d);
}

int cache_mkdir_real(int dirfd, const char *name, mode_t mode)
{
    struct stat st;
    if (mkdirat(dirfd, name, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return 0;
    cas_log_warn(CAS_LOG_CAS, "Removed %s from the cache: a %s where a cache folder belongs", name,
                 S_ISLNK(st.st_mode) ? "link" : "file");
    if (unlinkat(dirfd, name, 0) != 0)
        return -1;
    return mkdirat(dirfd, name, mode);
}

cas_hr cache_open(const char *dir, struct cache **out)
{
    cas_hr hr;
    struct cache *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    c->dirfd = -1;
    hr = cas_fs_mkdirs(dir, 0755);
    if (hr != CAS_OK)
        goto fail;
    c->dir = strdup(dir);
    c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!c->dir || c->dirfd < 0) {
        hr = cas_fail(c->dir ? cas_err_from_errno(errno) : CAS_E_OUTOFMEMORY,
                      "opening cache folder %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (cache_mkdir_real(c->dirfd, CACHE_PARTIAL, 0700) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "creating %s/%s: %s", dir, CACHE_PARTIAL,
                      strerror(errno));
        goto fail;
    }
    int lfd = cache_lock(c);
    if (lfd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "locking cache %s: %s", dir, strerror(errno));
        goto fail;
    }
    cache_sweep_staging(c, 0);
    cache_remove_orphans(c);
    /* Checked at every start, so a lost or damaged index is rebuilt (and said) before use. */
    struct cache_meta *m = NULL;
    size_t nm = 0;
    if (cache_index_load(c, 1, &m, &nm) == CAS_OK)
        free(m);
    cache_unlock(lfd);
    *out = c;
    return CAS_OK;
fail:
    cache_close(c);
    return hr;
}

void cache_close(struct cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < sizeof(c->locks) / sizeof(c->locks[0]); i++) {
        if (c->locks[i].staging)
            cache_stage_release(c, c->locks[i].staging);
    }
    if (c->dirfd >= 0)
        close(c->dirfd);
    free(c->dir);
    free(c);
}

cas_hr cache_check_id(const char *content_id)
{
    if (!content_id || !cas_id_is_content(content_id))
        return cas_fail(CAS_E_INVALIDARG, "'%s' is not a content id (PACKAGE.VERSION)",
                        content_id ? content_id : "");
    return CAS_OK;
}

static struct cache_stage_lock *cache_lock_slot(struct cache *c, const char *staging)
{
    for (size_t i = 0; i < sizeof(c->locks) / sizeof(c->locks[0]); i++) {
        if (staging ? (c->locks[i].staging && !strcmp(c->locks[i].staging, staging))
                    : !c->locks[i].staging)
            return &c->locks[i];
    }
    return NULL;
}

static void cache_stage_release(struct cache *c, const char *staging)
{
    struct cache_stage_lock *l = cache_lock_slot(c, staging);
    char lock[PATH_MAX];
    if (!l)
        return;
    /* Unlinked while still held: a waiter that then gets this lock sees the path no longer
     * names its file and opens the lock again (see cache_stage_begin). */
    if (snprintf(lock, sizeof(lock), "%s.lock", l->staging) < (int)sizeof(lock))
        unlink(lock);
    close(l->fd);
    free(l->staging);
    l->staging = NULL;
    l->fd = -1;
}

cas_hr cache_stage_begin(struct cache *c, const char *content_id, char **staging_out)
{
    char *staging = NULL, *lock = NULL, *content = NULL;
    int lfd = -1;
    cas_hr hr = cache_check_id(content_id);
    struct cache_stage_lock *slot = cache_lock_slot(c, NULL);

    *staging_out = NULL;
    if (hr != CAS_OK)
        return hr;
    if (!slot)
        return cas_fail(CAS_E_FAIL, "too many staging folders held by one process");
    if (asprintf(&staging, "%s/%s/%s", c->dir, CACHE_PARTIAL, content_id) < 0 ||
        asprintf(&lock, "%s.lock", staging) < 0) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto fail;
    }
    for (;;) {
        struct stat held, now;
        lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lfd < 0) {
            hr = cas_fail(cas_err_from_errno(errno), "opening %s: %s", lock, strerror(errno));
            goto fail;
        }
        while (flock(lfd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                hr = cas_fail(cas_err_from_errno(errno), "locking %s: %s", lock, strerror(errno));
                goto fail;
            }
        }
        if (fstat(lfd, &held) == 0 && stat(lock, &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev)
            break;
        close(lfd); /* the holder removed it as it finished: lock the current one */
    }
    content = cas_path_join(staging, content_id);
    if (!content) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto fail;
    }
    if (cache_mkdir_real(AT_FDCWD, staging, 0700) != 0 ||
        cache_mkdir_real(AT_FDCWD, content, 0755) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "creating staging folder %s: %s", staging,
                      strerror(errno));
        goto fail;
    }
    slot->staging = staging;
    slot->fd = lfd;
    *staging_out = strdup(staging);
    free(lock);
    free(content);
    if (!*staging_out) {
        cache_stage_release(c, staging);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    return CAS_OK;
fail:
    if (lfd >= 0)
        close(lfd);
    free(staging);
    free(lock);
    free(content);
    return hr;
}

void cache_stage_abort(struct cache *c, const char *staging)
{
    if (!staging)
        return;
    cas_fs_remove_tree(staging);
    cache_stage_release(c, staging);
}

void cache_stage_keep(struct cache *c, const char *staging)
{
    if (staging)
        cache_stage_release(c, staging);
}

cas_hr cache_hash_folder(const char *folder, enum cas_hash_alg alg, struct cas_sums *sums_out,
                         char *actual_hex)
{
    struct cas_sums sums = {0};
    /* The walk (with its refusals) first, then the hashing, spread over cores. */
    cas_hr hr = cas_sums_list_at(AT_FDCWD, folder, alg, &sums);
    if (hr == CAS_OK)
        hr = cache_hash_entries(folder, &sums);
    if (hr == CAS_OK)
        hr = cas_sums_package_hash(&sums, actual_hex);
    if (hr == CAS_OK && sums_out)
        *sums_out = sums;
    else
        cas_sums_free(&sums);
    return hr;
}

/* Make the verified files read-only so neither an installer nor a user changes them by
 * accident; the program itself gets the execute bit. */
static cas_hr cache_seal(const char *content, const struct cas_sums *sums, const char *exec_path)
{
    /* Folders 0755 whatever the agent's umask: a committed entry reads the same for every
     * reader, which is what lets a web server serve the cache to peers. */
    if (chmod(content, 0755) != 0)
        return cas_fail(cas_err_from_errno(errno), "chmod %s: %s", content, strerror(errno));
    for (size_t i = 0; i < sums->count; i++) {
        const char *path = sums->entries[i].path;
        for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
            char *dir = NULL;
            if (asprintf(&dir, "%s/%.*s", content, (int)(slash - path), path) < 0)
                return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            int rc = chmod(dir, 0755);
            int err = errno;
            free(dir);
            if (rc != 0)
                return cas_fail(cas_err_from_errno(err), "chmod a folder of %s: %s", path,
                                strerror(err));
        }
    }
    for (size_t i = 0; i < sums->count; i++) {
        char *p = cas_path_join(content, sums->entries[i].path);
        if (!p)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        mode_t mode = exec_path && !strcmp(exec_path, sums->entries[i].path) ? 0555 : 0444;
        /* Never through a link, and never a file with a second name (a hard link planted in the
         * staging area would share its inode, and its mode, with a file outside). */
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        struct stat st;
        free(p);
        if (fd < 0)
            return cas_fail(cas_err_from_errno(err), "%s: %s", sums->entries[i].path,
                            strerror(err));
        int rc =
            fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 ? fchmod(fd, mode) : -2;
        err = errno;
        close(fd);
        if (rc == -2)
            return cas_fail(CAS_E_BAD_NAME, "%s is not a file of its own (a link?)",
                            sums->entries[i].path);
        if (rc != 0)
            return cas_fail(cas_err_from_errno(err), "chmod %s: %s", sums->entries[i].path,
                            strerror(err));
    }
    return CAS_OK;
}

static cas_hr cache_sync_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cas_fail(cas_err_from_errno(errno), "%s: %s", path, strerror(errno));
    int rc = syncfs(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return cas_fail(cas_err_from_errno(err), "syncfs %s: %s", path, strerror(err));
    return CAS_OK;
}

/* The folder holds exactly the files of `digests`, with their sizes. */
static cas_hr cache_check_files(const char *folder, const struct cas_sums *digests)
{
    struct cas_sums seen = {0};
    cas_hr hr = cas_sums_list_at(AT_FDCWD, folder, digests->alg, &seen);
    if (hr != CAS_OK)
        return hr;
    if (seen.count != digests->count)
        hr = cas_fail(CAS_E_HASH_MISMATCH, "the folder holds %zu files, the listing %zu",
                      seen.count, digests->count);
    for (size_t i = 0; hr == CAS_OK && i < seen.count; i++) {
        if (strcmp(seen.entries[i].path, digests->entries[i].path) != 0 ||
            seen.entries[i].size != digests->entries[i].size)
            hr = cas_fail(CAS_E_HASH_MISMATCH, "file %s is not as it was written",
                          seen.entries[i].path);
    }
    cas_sums_free(&seen);
    return hr;
}

/* A new entry: used and verified now; its persist flag survives a replacement. */
static void cache_index_committed(struct cache *c, const char *content_id)
{
    struct cache_meta *m = NULL;
    size_t n = 0;
    time_t now = cas_clock_now();
    if (cache_index_load(c, 0, &m, &n) != CAS_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].content_id, content_id))
            m[i].last_used = m[i].verified = now;
    }
    cache_index_store(c, m, n);
    free(m);
}

cas_hr cache_commit(struct cache *c, const char *staging, const char *content_id,
                    enum cas_hash_alg alg, const char *expected_hex, const char *exec_path,
                    const struct cas_sums *digests, char *actual_hex)
{
    cas_hr hr;
    struct cas_sums sums = {0};
    char *content = NULL, *staged_sums = NULL, *listing = NULL;
    char *final_content = NULL, *final_sums = NULL;
    size_t listing_len = 0;
    int lfd = -1, ufd = -1;

    hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        goto cleanup;
    content = cas_path_join(staging, content_id);
    staged_sums = malloc(strlen(content ? content : "") + 6);
    final_content = cas_path_join(c->dir, content_id);
    final_sums = malloc(strlen(final_content ? final_content : "") + 6);
    if (!content || !staged_sums || !final_content || !final_sums) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    sprintf(staged_sums, "%s.sums", content);
    sprintf(final_sums, "%s.sums", final_content);

    /* Trust the streamed digests only if the folder is exactly what was written; otherwise hash
     * everything from disk, which also gives the true "actual" value. */
    if (digests && cache_check_files(content, digests) == CAS_OK) {
        hr = cas_sums_package_hash(digests, actual_hex);
        if (hr == CAS_OK)
            hr = cas_sums_serialize(digests, &listing, &listing_len);
    } else {
        hr = cache_hash_folder(content, alg, &sums, actual_hex);
        if (hr == CAS_OK)
            hr = cas_sums_serialize(&sums, &listing, &listing_len);
        digests = &sums;
    }
    if (hr != CAS_OK)
        goto cleanup;
    if (!cas_hex_equal(actual_hex, expected_hex)) {
        hr = cas_fail(CAS_E_HASH_MISMATCH, "content %s: package hash %s, expected %s", content_id,
                      actual_hex, expected_hex);
        goto cleanup;
    }
    hr = cache_seal(content, digests, exec_path);
    if (hr == CAS_OK)
        hr = cache_sync_tree(content);
    if (hr == CAS_OK)
        hr = cas_fs_write_atomic(staged_sums, listing, listing_len, 0444);
    if (hr != CAS_OK)
        goto cleanup;

    /* An older entry of the same content is replaced only if nobody uses it. */
    ufd = cache_use_lock_excl(c, content_id);
    if (ufd < 0) {
        hr = errno == EWOULDBLOCK
                 ? cas_fail(CAS_E_CACHE_IN_USE,
                            "content %s is in use: its entry cannot be replaced now", content_id)
                 : cas_fail(cas_err_from_errno(errno), "locking content %s: %s", content_id,
                            strerror(errno));
        goto cleanup;
    }
    lfd = cache_lock(c);
    if (lfd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "locking cache: %s", strerror(errno));
        goto cleanup;
    }
    /* Replace an older entry of the same content: uncommit it first (sums), then its files. */
    if (unlink(final_sums) != 0 && errno != ENOENT) {
        hr = cas_fail(cas_err_from_errno(errno), "removing %s: %s", final_sums, strerror(errno));
        goto cleanup;
    }
    hr = cas_fs_remove_tree(final_content);
    if (hr != CAS_OK)
        goto cleanup;
    if (rename(content, final_content) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "moving content into the cache: %s",
                      strerror(errno));
        goto cleanup;
    }
    if (rename(staged_sums, final_sums) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "moving %s.sums into the cache: %s", content_id,
                      strerror(errno));
        goto cleanup;
    }
    hr = cas_fs_sync_dir(c->dir);
    if (hr == CAS_OK)
        cache_index_committed(c, content_id);
cleanup:
    cache_unlock(lfd);
    if (ufd >= 0)
        close(ufd);
    cas_fs_remove_tree(staging);
    cache_stage_release(c, staging);
    cas_sums_free(&sums);
    free(listing);
    free(content);
    free(staged_sums);
    free(final_content);
    free(final_sums);
    return hr;
}

int cache_has(struct cache *c, const char *content_id)
{
    char sums[NAME_MAX + 8];
    struct stat st;
    if (cache_check_id(content_id) != CAS_OK)
        return 0;
    snprintf(sums, sizeof(sums), "%s.sums", content_id);
    if (fstatat(c->dirfd, sums, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (fstatat(c->dirfd, content_id, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    return 1;
}

cas_hr cache_recorded_hash(struct cache *c, const char *content_id, enum cas_hash_alg *alg,
                           char *hex)
{
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    cas_hr hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        return hr;
    if (!cache_has(c, content_id))
        return cas_fail(CAS_E_CONTENT_NOT_FOUND, "content %s is not in the cache", content_id);
    if (asprintf(&path, "%s/%s.sums", c->dir, content_id) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_read_file(path, (size_t)256 * 1024 * 1024, &buf, &len);
    if (hr == CAS_OK) {
        /* The first line's digest length names the algorithm: 64 sha256, 40 sha1. An empty
         * package has no line: sha256. */
        const char *sp = memchr(buf, ' ', len);
        size_t w = sp ? (size_t)(sp - buf) : 0;
        if (w == cas_hash_hexlen(CAS_HASH_SHA256) || len == 0)
            *alg = CAS_HASH_SHA256;
        else if (w == cas_hash_hexlen(CAS_HASH_SHA1))
            *alg = CAS_HASH_SHA1;
        else
            hr = cas_fail(CAS_E_INVALID_DATA, "%s is not a sums listing", path);
        if (hr == CAS_OK)
            cas_hash_buf_hex(*alg, buf, len, hex);
    }
    free(buf);
    free(path);
    return hr;
}

char *cache_content_path(const struct cache *c, const char *content_id)
{
    return cas_path_join(c->dir, content_id);
}

static cas_hr cache_read_sums(struct cache *c, const char *content_id, enum cas_hash_alg alg,
                              struct cas_sums *out)
{
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    cas_hr hr;
    if (asprintf(&path, "%s/%s.sums", c->dir, content_id) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_read_file(path, (size_t)256 * 1024 * 1024, &buf, &len);
    if (hr == CAS_OK)
        hr = cas_sums_parse(buf, len, alg, out);
    free(buf);
    free(path);
    return hr;
}

/* Describe the first difference between what C.sums recorded and what is on disk now. */
static char *cache_describe_change(const struct cas_sums *rec, const struct cas_sums *now)
{
    char *out = NULL;
    size_t i = 0, j = 0;
    while (i < rec->count || j < now->count) {
        int cmp = i >= rec->count   ? 1
                  : j >= now->count ? -1
                                    : strcmp(rec->entries[i].path, now->entries[j].path);
        if (cmp < 0) {
            if (asprintf(&out, "file %s is missing", rec->entries[i].path) < 0)
                out = NULL;
            return out;
        }
        if (cmp > 0) {
            if (asprintf(&out, "file %s was added", now->entries[j].path) < 0)
                out = NULL;
            return out;
        }
        if (strcmp(rec->entries[i].hex, now->entries[j].hex) != 0) {
            char e[CAS_HASH_MAX_HEX + 1], a[CAS_HASH_MAX_HEX + 1];
            cas_hex_upper(rec->entries[i].hex, e);
            cas_hex_upper(now->entries[j].hex, a);
            if (asprintf(&out, "file %s changed: expected %s, actual %s", rec->entries[i].path, e,
                         a) < 0)
                out = NULL;
            return out;
        }
        i++;
        j++;
    }
    return NULL;
}

cas_hr cache_verify(struct cache *c, const char *content_id, enum cas_hash_alg alg,
                    const char *expected_hex, char *actual_hex, char **changed)
{
    struct cas_sums now = {0}, rec = {0};
    char *content = NULL;
    cas_hr hr;

    if (changed)
        *changed = NULL;
    hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        return hr;
    if (!cache_has(c, content_id))
        return cas_fail(CAS_E_CONTENT_NOT_FOUND, "content %s is not in the cache", content_id);
    content = cache_content_path(c, content_id);
    if (!content)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cache_hash_folder(content, alg, &now, actual_hex);
    if (hr == CAS_OK && !cas_hex_equal(actual_hex, expected_hex)) {
        hr = cas_fail(CAS_E_HASH_MISMATCH, "content %s in the cache: package hash %s, expected %s",
                      content_id, actual_hex, expected_hex);
        if (changed && cache_read_sums(c, content_id, alg, &rec) == CAS_OK)
            *changed = cache_describe_change(&rec, &now);
        cas_fail(CAS_E_HASH_MISMATCH, "content %s in the cache: package hash %s, expected %s",
                 content_id, actual_hex, expected_hex);
    }
    cas_sums_free(&now);
    cas_sums_free(&rec);
    free(content);
    return hr;
}

cas_hr cache_reverify(struct cache *c, const char *content_id, enum cas_hash_alg alg,
                      const char *expected_hex, time_t now, int persist)
{
    char actual[CAS_HASH_MAX_HEX + 1], exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
    char *changed = NULL;
    cas_hr hr = cache_verify(c, content_id, alg, expected_hex, actual, &changed);
    if (hr == CAS_OK) {
        cache_touch(c, content_id, now, persist, 1);
        return CAS_OK;
    }
    if (hr != CAS_E_HASH_MISMATCH)
        return hr;
    const char *what = changed ? changed : "cannot tell which file";
    cas_hex_upper(expected_hex, exp_up);
    cas_hex_upper(actual, act_up);
    cas_log_error(CAS_LOG_CAS,
                  "Content %s in the cache does not match its hash, error 0x%08X: expected %s, "
                  "actual %s; %s",
                  content_id, CAS_E_HASH_MISMATCH, exp_up, act_up, what);
    hr = cas_fail(CAS_E_HASH_MISMATCH,
                  "content %s in the cache changed after it was verified: expected %s, actual "
                  "%s; %s",
                  content_id, exp_up, act_up, what);
    free(changed);
    return hr;
}

/* Drop C's record from the index, so a later entry of the same id starts afresh. */
static void cache_index_forget(struct cache *c, const char *content_id)
{
    struct cache_meta *m = NULL;
    size_t n = 0, k = 0;
    if (cache_index_load(c, 0, &m, &n) != CAS_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].content_id, content_id) != 0)
            m[k++] = m[i];
    }
    cache_index_store(c, m, k);
    free(m);
}

cas_hr cache_remove_entry_locked(struct cache *c, const char *content_id)
{
    char sums[NAME_MAX + 8];
    cas_hr hr = CAS_OK;
    snprintf(sums, sizeof(sums), "%s.sums", content_id);
    if (unlinkat(c->dirfd, sums, 0) != 0 && errno != ENOENT)
        hr = cas_fail(cas_err_from_errno(errno), "removing %s: %s", sums, strerror(errno));
    if (hr == CAS_OK)
        hr = cas_fs_remove_tree_at(c->dirfd, content_id);
    if (hr == CAS_OK)
        hr = cas_fs_sync_dir(c->dir);
    if (hr == CAS_OK)
        cache_index_forget(c, content_id);
    return hr;
}

cas_hr cache_delete(struct cache *c, const char *content_id)
{
    cas_hr hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        return hr;
    int ufd = cache_use_lock_excl(c, content_id);
    if (ufd < 0) {
        if (errno == EWOULDBLOCK)
            return cas_fail(CAS_E_CACHE_IN_USE,
                            "content %s is in use by a running program, verification or download",
                            content_id);
        return cas_fail(cas_err_from_errno(errno), "locking content %s: %s", content_id,
                        strerror(errno));
    }
    int lfd = cache_lock(c);
    if (lfd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "locking cache: %s", strerror(errno));
    } else if (!cache_has(c, content_id)) {
        hr = cas_fail(CAS_E_CONTENT_NOT_FOUND, "content %s is not in the cache", content_id);
    } else {
        hr = cache_remove_entry_locked(c, content_id);
    }
    cache_unlock(lfd);
    close(ufd);
    return hr;
}

static void cache_fill_info(struct cache *c, struct cache_entry_info *info)
{
    char sums_name[NAME_MAX + 8], *buf = NULL, *path = NULL;
    size_t len = 0;
    struct stat st;

    snprintf(sums_name, sizeof(sums_name), "%s.sums", info->content_id);
    if (fstatat(c->dirfd, sums_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        info->modified = st.st_mtime;
    if (asprintf(&path, "%s/%s", c->dir, sums_name) < 0)
        return;
    if (cas_fs_read_file(path, (size_t)256 * 1024 * 1024, &buf, &len) == CAS_OK) {
        /* Each line ends in "  P\n"; size comes from the files themselves. */
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            char *sep = strstr(line, "  ");
            if (!nl || !sep || sep > nl)
                break;
            *nl = '\0';
            char *p = NULL;
            if (asprintf(&p, "%s/%s", info->content_id, sep + 2) >= 0) {
                if (fstatat(c->dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
                    info->size += (uint64_t)st.st_size;
                free(p);
            }
            info->files++;
            line = nl + 1;
        }
    }
    free(buf);
    free(path);
}

static int cache_id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

cas_hr cache_entry_ids(struct cache *c, char (**ids)[CACHE_ID_MAX], size_t *count)
{
    char(*v)[CACHE_ID_MAX] = NULL;
    size_t n = 0, cap = 0;
    int dfd = dup(c->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

    *ids = NULL;
    *count = 0;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return cas_fail(cas_err_from_errno(errno), "reading cache %s: %s", c->dir, strerror(errno));
    }
    rewinddir(d); /* the dup shares its offset with c->dirfd */
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!cas_id_is_content(de->d_name) || strlen(de->d_name) >= CACHE_ID_MAX ||
            !cache_has(c, de->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char(*grown)[CACHE_ID_MAX] = realloc(v, ncap * sizeof(*v));
            if (!grown) {
                free(v);
                closedir(d);
                return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            }
            v = grown;
            cap = ncap;
        }
        snprintf(v[n++], CACHE_ID_MAX, "%s", de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cache_id_cmp);
    *ids = v;
    *count = n;
    return CAS_OK;
}

cas_hr cache_list(struct cache *c, struct cache_entry_info **out, size_t *count)
{
    char(*ids)[CACHE_ID_MAX] = NULL;
    size_t n = 0;

    *out = NULL;
    *count = 0;
    cas_hr hr = cache_entry_ids(c, &ids, &n);
    if (hr != CAS_OK)
        return hr;
    struct cache_entry_info *items = calloc(n ? n : 1, sizeof(*items));
    if (!items) {
        free(ids);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(items[i].content_id, ids[i], sizeof(items[i].content_id));
        cache_fill_info(c, &items[i]);
    }
    free(ids);
    struct cache_meta *m = NULL;
    size_t nm = 0;
    int lfd = cache_lock(c);
    if (cache_index_load(c, lfd >= 0, &m, &nm) == CAS_OK) {
        for (size_t i = 0, k = 0; i < n; i++) {
            items[i].last_used = items[i].verified = items[i].modified;
            while (k < nm && strcmp(m[k].content_id, items[i].content_id) < 0)
                k++;
            if (k < nm && !strcmp(m[k].content_id, items[i].content_id)) {
                items[i].last_used = m[k].last_used;
                items[i].verified = m[k].verified;
                items[i].persist = m[k].persist;
            }
        }
    }
    cache_unlock(lfd);
    free(m);
    for (size_t i = 0; i < n; i++)
        items[i].in_use = cache_in_use(c, items[i].content_id);
    *out = items;
    *count = n;
    return CAS_OK;
}

cas_hr cache_make_executable(struct cache *c, const char *content_id, const char *rel)
{
    struct stat st;
    const char *leaf = NULL;
    cas_hr hr = CAS_OK;
    int entry = -1, dir = -1, fd = -1;

    if (!cas_id_is_content(content_id) || cas_path_check(rel, strlen(rel)) != CAS_OK)
        return cas_fail(CAS_E_BAD_NAME, "%s: not a file of content %s", rel, content_id);
    /* One segment at a time, never following a link: the entry is the cache's, not a link's. */
    entry = openat(c->dirfd, content_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (entry < 0) {
        hr = cas_fail(CAS_E_FILE_MISSING, "content %s is not in the cache", content_id);
        goto cleanup;
    }
    dir = cas_fs_open_parent_at(entry, rel, 0, &leaf);
    if (dir < 0) {
        hr = cas_fail(CAS_E_BAD_NAME, "%s of content %s: %s", rel, content_id, strerror(errno));
        goto cleanup;
    }
    fd = openat(dir, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = cas_fail(CAS_E_BAD_NAME, "%s of content %s is not a regular file", rel, content_id);
        goto cleanup;
    }
    if ((st.st_mode & 07777) != 0555 && fchmod(fd, 0555) != 0)
        hr = cas_fail(cas_err_from_errno(errno), "making %s of content %s executable: %s", rel,
                      content_id, strerror(errno));
cleanup:
    if (fd >= 0)
        close(fd);
    if (dir >= 0)
        close(dir);
    if (entry >= 0)
        close(entry);
    return hr;
}
