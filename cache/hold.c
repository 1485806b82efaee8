/* Use-locks: <cache_dir>/.locks/C, one per content id. Whoever downloads, verifies or runs C
 * holds it shared; removing or replacing C needs it exclusively and does not wait, so an entry
 * under a running program is never removed (0x87D01203). flock(2) locks die with the process,
 * so a crash never leaves an entry held. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_internal.h"

struct cache_hold {
    int fd;
};

/* Open C's lock file and lock it with `op`; re-open if `cache clean` unlinked it meanwhile, so a
 * lock is always on the file the path names. -1 with errno on failure. */
static int use_lock(struct cache *c, const char *content_id, int op)
{
    char name[64];
    snprintf(name, sizeof(name), "%s/%s", CACHE_LOCKS, content_id);
    /* The folder must be the cache's own: lock files are never made through a planted link. */
    if (cache_mkdir_real(c->dirfd, CACHE_LOCKS, 0700) != 0)
        return -1;
    for (;;) {
        struct stat held, now;
        int fd = openat(c->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -1;
        int rc;
        while ((rc = flock(fd, op)) != 0 && errno == EINTR)
            ;
        if (rc != 0) {
            int err = errno;
            close(fd);
            errno = err;
            return -1;
        }
        if (fstat(fd, &held) == 0 && fstatat(c->dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            held.st_ino == now.st_ino && held.st_dev == now.st_dev)
            return fd;
        close(fd);
    }
}

int cache_use_lock_excl(struct cache *c, const char *content_id)
{
    return use_lock(c, content_id, LOCK_EX | LOCK_NB);
}

cas_hr cache_hold(struct cache *c, const char *content_id, struct cache_hold **out)
{
    *out = NULL;
    cas_hr hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        return hr;
    struct cache_hold *h = calloc(1, sizeof(*h));
    if (!h)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    /* Shared locks wait only for a removal in progress, which is short. */
    h->fd = use_lock(c, content_id, LOCK_SH);
    if (h->fd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "locking content %s in the cache: %s", content_id,
                      strerror(errno));
        free(h);
        return hr;
    }
    *out = h;
    return CAS_OK;
}

void cache_release(struct cache_hold *h)
{
    if (!h)
        return;
    close(h->fd);
    free(h);
}

int cache_in_use(struct cache *c, const char *content_id)
{
    int fd = use_lock(c, content_id, LOCK_EX | LOCK_NB);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return errno == EWOULDBLOCK;
}
