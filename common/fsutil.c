/* Filesystem helpers: bounded reads, atomic replacement, trees removed without following links. */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/path.h"

cas_hr cas_fs_read_file(const char *path, size_t max, char **buf_out, size_t *len_out)
{
    cas_hr hr = CAS_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    /* O_NONBLOCK: a FIFO put where a file is expected must not hang open() before the
     * regular-file check below refuses it. It changes nothing for regular files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;

    *buf_out = NULL;
    *len_out = 0;
    if (fd < 0)
        return cas_fail(cas_err_from_errno(errno), "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = cas_fail(CAS_E_INVALID_DATA, "%s: not a regular file", path);
        goto cleanup;
    }
    if ((uint64_t)st.st_size > max) {
        hr = cas_fail(CAS_E_TOO_LARGE, "%s: %lld bytes, more than the %zu allowed", path,
                      (long long)st.st_size, max);
        goto cleanup;
    }
    /* The size can change under us; read until EOF but never past max. */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory reading %s", path);
        goto cleanup;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap - 1 > max) { /* cap >= 1: cap > max + 1 without wrapping */
                hr = cas_fail(CAS_E_TOO_LARGE, "%s: more than the %zu bytes allowed", path, max);
                goto cleanup;
            }
            /* Room for max + 1 bytes (one past the limit shows the file grew) and the NUL;
             * computed so that a max near SIZE_MAX cannot wrap round to a tiny buffer. */
            size_t limit = max < SIZE_MAX - 2 ? max + 2 : SIZE_MAX;
            size_t ncap = cap < limit / 2 ? cap * 2 : limit;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory reading %s", path);
                goto cleanup;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            hr = cas_fail(cas_err_from_errno(errno), "%s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            hr = cas_fail(CAS_E_TOO_LARGE, "%s: more than the %zu bytes allowed", path, max);
            goto cleanup;
        }
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
cleanup:
    free(buf);
    close(fd);
    return hr;
}

cas_hr cas_fs_write_all(int fd, const void *data, size_t len, const char *what)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cas_fail(cas_err_from_errno(errno), "writing %s: %s", what, strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return CAS_OK;
}

static char *cas_fs_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

cas_hr cas_fs_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cas_fail(cas_err_from_errno(errno), "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return cas_fail(cas_err_from_errno(err), "fsync %s: %s", path, strerror(err));
    return CAS_OK;
}

cas_hr cas_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    cas_hr hr = CAS_OK;
    char *dir = cas_fs_dirname(path);
    char *tmp = NULL;
    int fd = -1;

    if (!dir || asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
        tmp = NULL;
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "creating %s: %s", tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto cleanup;
    }
    if (fchmod(fd, mode) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "chmod %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    hr = cas_fs_write_all(fd, data, len, tmp);
    if (hr != CAS_OK)
        goto cleanup;
    if (fsync(fd) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "fsync %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (close(fd) != 0) {
        fd = -1;
        hr = cas_fail(cas_err_from_errno(errno), "closing %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "renaming %s to %s: %s", tmp, path,
                      strerror(errno));
        goto cleanup;
    }
    free(tmp);
    tmp = NULL;
    hr = cas_fs_sync_dir(dir);
cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(dir);
    return hr;
}

cas_hr cas_fs_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf))
        return cas_fail(CAS_E_BAD_NAME, "cannot create folder '%s': bad length", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return cas_fail(cas_err_from_errno(errno), "creating folder %s: %s", buf,
                            strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cas_fail(CAS_E_FILE_MISSING, "%s exists and is not a folder", path);
    return CAS_OK;
}

static cas_hr cas_fs_remove_dir_contents(int dfd, const char *what, int depth)
{
    cas_hr hr = CAS_OK;
    DIR *d;
    struct dirent *de;

    if (depth > 256)
        return cas_fail(CAS_E_IO, "removing %s: folders nested too deep", what);
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return cas_fail(cas_err_from_errno(errno), "reading %s: %s", what, strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        hr = cas_fs_remove_tree_at(dirfd(d), de->d_name);
        if (hr != CAS_OK)
            break;
    }
    closedir(d);
    return hr;
}

cas_hr cas_fs_remove_tree_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return CAS_OK;
        return cas_fail(cas_err_from_errno(errno), "%s: %s", name, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        /* Read-only folders in the cache must become writable to be emptied. */
        fchmodat(dfd, name, 0700, 0);
        int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            return cas_fail(cas_err_from_errno(errno), "opening %s: %s", name, strerror(errno));
        cas_hr hr = cas_fs_remove_dir_contents(sub, name, 0);
        if (hr != CAS_OK)
            return hr;
        if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
            return cas_fail(cas_err_from_errno(errno), "removing %s: %s", name, strerror(errno));
        return CAS_OK;
    }
    if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
        return cas_fail(cas_err_from_errno(errno), "removing %s: %s", name, strerror(errno));
    return CAS_OK;
}

cas_hr cas_fs_remove_tree(const char *path)
{
    return cas_fs_remove_tree_at(AT_FDCWD, path);
}

char *cas_path_join(const char *a, const char *b)
{
    char *out = NULL;
    size_t la = strlen(a);
    int slash = la > 0 && a[la - 1] == '/';
    if (asprintf(&out, "%s%s%s", a, slash ? "" : "/", b) < 0)
        return NULL;
    return out;
}

int cas_fs_open_parent_at(int root, const char *rel, int create, const char **leaf)
{
    int fd = dup(root);
    const char *p = rel;
    char seg[CAS_PATH_SEG_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash || fd < 0) {
            *leaf = p;
            return fd;
        }
        size_t n = (size_t)(slash - p);
        if (n > CAS_PATH_SEG_MAX) {
            close(fd);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (create && mkdirat(fd, seg, 0755) != 0 && errno != EEXIST) {
            close(fd);
            return -1;
        }
        int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (next < 0)
            return -1;
        fd = next;
        p = slash + 1;
    }
}
