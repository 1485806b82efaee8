/* Deduplication (see dedup.h). The table keeps each entry's C.sums bytes as read, with every
 * line's '\n' turned into a NUL, and one small row per line pointing at it: memory is the size
 * of the listings plus 16 bytes a file, and nothing is allocated per file. Rows are sorted by
 * hash, so a lookup is a binary search and the candidates for one hash are adjacent.
 *
 * A cached file is trusted for nothing: what lands in the destination is hashed after the copy,
 * from the destination itself, so a file changed in the cache after its commit (or replaced
 * while it is copied) is never passed off as the listed one. */
#include "cache/dedup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_internal.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/path.h"

/* The same bound cache.c puts on reading a listing. */
#define DEDUP_SUMS_MAX ((size_t)256 * 1024 * 1024)
#define DEDUP_BUF      ((size_t)256 * 1024)

struct dedup_row {
    const char *line; /* "<hex>  <path>" NUL-terminated, inside an entry's listing buffer */
    uint32_t entry;
    uint32_t bad; /* this copy failed once: not tried again */
};

struct dedup_entry {
    char *content_id;
    char *listing; /* the C.sums bytes, lines NUL-terminated in place */
};

struct cache_files {
    struct cache *c;
    enum cas_hash_alg alg;
    size_t hexlen;
    struct dedup_entry *entries;
    size_t n_entries, cap_entries;
    struct dedup_row *rows;
    size_t n_rows, cap_rows;
};

static int dedup_row_cmp(const void *a, const void *b, void *hexlen)
{
    const struct dedup_row *x = a, *y = b;
    int cmp = memcmp(x->line, y->line, *(const size_t *)hexlen);
    if (cmp)
        return cmp;
    /* Ties in a fixed order (entries by content id, then listing order), so the same cache always
     * offers the same candidate first. */
    if (x->entry != y->entry)
        return x->entry < y->entry ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

void cache_files_free(struct cache_files *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_entries; i++) {
        free(t->entries[i].content_id);
        free(t->entries[i].listing);
    }
    free(t->entries);
    free(t->rows);
    free(t);
}

/* The ids of the committed entries but `exclude`, sorted, each malloc'd. */
static cas_hr dedup_list_ids(struct cache *c, const char *exclude, char ***out, size_t *count)
{
    char(*all)[CACHE_ID_MAX] = NULL;
    size_t n_all = 0, n = 0;
    *out = NULL;
    *count = 0;
    cas_hr hr = cache_entry_ids(c, &all, &n_all);
    if (hr != CAS_OK)
        return hr;
    char **ids = calloc(n_all ? n_all : 1, sizeof(*ids));
    if (!ids)
        goto oom;
    for (size_t i = 0; i < n_all; i++) {
        if (exclude && !strcmp(all[i], exclude))
            continue;
        if (!(ids[n] = strdup(all[i])))
            goto oom;
        n++;
    }
    free(all);
    *out = ids;
    *count = n;
    return CAS_OK;
oom:
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
    free(all);
    return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
}

/* Add one entry's listing. CAS_OK also when the listing is unusable (skipped); a failure only
 * when out of memory. */
static cas_hr dedup_add_entry(struct cache_files *t, char *content_id)
{
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    struct cas_sums parsed = {0};

    if (asprintf(&path, "%s/%s.sums", t->c->dir, content_id) < 0) {
        free(content_id);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    cas_hr hr = cas_fs_read_file(path, DEDUP_SUMS_MAX, &buf, &len);
    free(path);
    /* The parser checks every path and the hash length, so a listing of the other algorithm or a
     * damaged one is skipped whole, and the lines below need no more checking. */
    if (hr == CAS_OK)
        hr = cas_sums_parse(buf, len, t->alg, &parsed);
    size_t files = parsed.count;
    cas_sums_free(&parsed);
    if (hr == CAS_E_OUTOFMEMORY)
        goto fail;
    if (hr != CAS_OK || files == 0 || t->n_entries >= UINT32_MAX) {
        free(buf);
        free(content_id);
        return CAS_OK;
    }

    if (t->n_entries == t->cap_entries) {
        size_t ncap = t->cap_entries ? t->cap_entries * 2 : 64;
        struct dedup_entry *grown = realloc(t->entries, ncap * sizeof(*grown));
        if (!grown)
            goto oom;
        t->entries = grown;
        t->cap_entries = ncap;
    }
    if (t->n_rows + files > t->cap_rows) {
        size_t ncap = t->cap_rows ? t->cap_rows : 1024;
        while (ncap < t->n_rows + files)
            ncap *= 2;
        struct dedup_row *grown = realloc(t->rows, ncap * sizeof(*grown));
        if (!grown)
            goto oom;
        t->rows = grown;
        t->cap_rows = ncap;
    }
    uint32_t idx = (uint32_t)t->n_entries;
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        *nl = '\0';
        t->rows[t->n_rows++] = (struct dedup_row){line, idx, 0};
        line = nl + 1;
    }
    t->entries[t->n_entries++] = (struct dedup_entry){content_id, buf};
    return CAS_OK;
oom:
    hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
fail:
    free(buf);
    free(content_id);
    return hr;
}

struct cache_files *cache_files_load(struct cache *c, enum cas_hash_alg alg,
                                     const char *exclude_content)
{
    char **ids = NULL;
    size_t n_ids = 0, i = 0;
    struct cache_files *t = calloc(1, sizeof(*t));

    if (!t) {
        cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        return NULL;
    }
    t->c = c;
    t->alg = alg;
    t->hexlen = cas_hash_hexlen(alg);
    /* An unreadable cache folder is an empty table: nothing to copy, everything downloaded. */
    if (dedup_list_ids(c, exclude_content, &ids, &n_ids) == CAS_E_OUTOFMEMORY)
        goto fail;
    for (i = 0; i < n_ids; i++) {
        char *id = ids[i];
        ids[i] = NULL; /* owned by the table or freed by dedup_add_entry */
        if (dedup_add_entry(t, id) != CAS_OK)
            goto fail;
    }
    free(ids);
    if (t->n_rows > 1)
        qsort_r(t->rows, t->n_rows, sizeof(*t->rows), dedup_row_cmp, &t->hexlen);
    return t;
fail:
    for (; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    cache_files_free(t);
    cas_fail(CAS_E_OUTOFMEMORY, "out of memory building the table of cached files");
    return NULL;
}

/* The first row listing `hex` (lower-case, t->hexlen digits); NULL if none. */
static struct dedup_row *dedup_first(struct cache_files *t, const char *hex)
{
    size_t lo = 0, hi = t->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(t->rows[mid].line, hex, t->hexlen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->n_rows && !memcmp(t->rows[lo].line, hex, t->hexlen))
        return &t->rows[lo];
    return NULL;
}

/* Open a cached file for reading: never through a final symbolic link, never anything but a
 * regular file (O_NONBLOCK so a FIFO planted in the cache cannot block the open). */
static cas_hr dedup_open_source(struct cache_files *t, const struct dedup_row *r, int *fd_out)
{
    const struct dedup_entry *e = &t->entries[r->entry];
    char *rel = NULL;
    struct stat st;

    *fd_out = -1;
    if (asprintf(&rel, "%s/%s", e->content_id, r->line + t->hexlen + 2) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    int fd = openat(t->c->dirfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int err = errno;
    free(rel);
    if (fd < 0)
        return cas_fail(cas_err_from_errno(err), "opening cached file %s of content %s: %s",
                        r->line + t->hexlen + 2, e->content_id, strerror(err));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cas_fail(CAS_E_BAD_NAME, "cached file %s of content %s is not a regular file",
                        r->line + t->hexlen + 2, e->content_id);
    }
    *fd_out = fd;
    return CAS_OK;
}

/* Failures that can only be the destination's (so no other candidate would do better). */
static int dedup_dst_errno(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

/* Copy src into dst from the start. *dst_failed says a failure was the destination's. */
static cas_hr dedup_copy(int src, int dst, const char *what, int *dst_failed)
{
    off_t in = 0, out = 0;
    int plain = 0;
    char *buf = NULL;
    cas_hr hr = CAS_OK;

    *dst_failed = 0;
    if (ftruncate(dst, 0) != 0) {
        *dst_failed = 1;
        return cas_fail(cas_err_from_errno(errno), "emptying the copy of %s: %s", what,
                        strerror(errno));
    }
    while (!plain) {
        ssize_t n = copy_file_range(src, &in, dst, &out, 1u << 30, 0);
        if (n == 0)
            return CAS_OK;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (dedup_dst_errno(errno)) {
            *dst_failed = 1;
            return cas_fail(cas_err_from_errno(errno), "copying %s: %s", what, strerror(errno));
        }
        /* Not supported here (EXDEV, ENOSYS, EINVAL, EOPNOTSUPP...), or an I/O error on one
         * side: read and write from where it stopped, which also tells which side failed. */
        plain = 1;
    }
    buf = malloc(DEDUP_BUF);
    if (!buf)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    for (;;) {
        ssize_t n = pread(src, buf, DEDUP_BUF, in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            hr =
                cas_fail(cas_err_from_errno(errno), "reading cached %s: %s", what, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(dst, buf + done, (size_t)(n - done), out);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                *dst_failed = 1;
                hr = cas_fail(w < 0 ? cas_err_from_errno(errno) : CAS_E_IO, "copying %s: %s", what,
                              w < 0 ? strerror(errno) : "nothing written");
                goto done;
            }
            done += w;
            out += w;
        }
        in += n;
    }
done:
    free(buf);
    return hr;
}

/* Hash what dst holds, read back from it. dst may be open write-only ("opened for writing"):
 * then it is reopened for reading through /proc/self/fd. */
static cas_hr dedup_hash_fd(int dst, enum cas_hash_alg alg, char *hex, uint64_t *size_out)
{
    int rfd = dst;
    uint64_t off = 0;
    cas_hr hr = CAS_OK;
    char *buf = malloc(DEDUP_BUF);
    struct cas_hash *h = cas_hash_new(alg);

    if (!buf || !h) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = pread(rfd, buf, DEDUP_BUF, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EBADF && rfd == dst && off == 0) {
            char self[64];
            snprintf(self, sizeof(self), "/proc/self/fd/%d", dst);
            rfd = open(self, O_RDONLY | O_CLOEXEC);
            if (rfd >= 0)
                continue;
            rfd = dst;
            errno = EBADF;
        }
        if (n < 0) {
            hr = cas_fail(cas_err_from_errno(errno), "reading back a copied file: %s",
                          strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        cas_hash_update(h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    cas_hash_final_hex(h, hex);
    *size_out = off;
cleanup:
    if (rfd != dst)
        close(rfd);
    cas_hash_free(h);
    free(buf);
    return hr;
}

int cache_files_has(struct cache_files *t, const char *hex)
{
    char lower[CAS_HASH_MAX_HEX + 1];
    if (strlen(hex) != t->hexlen)
        return 0;
    cas_hex_lower(hex, lower);
    return dedup_first(t, lower) != NULL;
}

cas_hr cache_files_copy(struct cache_files *t, const char *hex, int dst_fd, uint64_t *size_out,
                        const char **from_content)
{
    char want[CAS_HASH_MAX_HEX + 1], got[CAS_HASH_MAX_HEX + 1];
    size_t tried = 0;

    *size_out = 0;
    *from_content = NULL;
    if (!t || !hex || !cas_hex_is_valid(hex, t->hexlen))
        return cas_fail(CAS_E_NOT_FOUND, "'%s' is not a %s hash", hex ? hex : "",
                        t ? cas_hash_alg_name(t->alg) : "file");
    cas_hex_lower(hex, want);
    struct dedup_row *end = t->rows + t->n_rows;
    for (struct dedup_row *r = dedup_first(t, want);
         r && r < end && !memcmp(r->line, want, t->hexlen); r++) {
        const struct dedup_entry *e = &t->entries[r->entry];
        const char *path = r->line + t->hexlen + 2;
        uint64_t size = 0;
        int src = -1, dst_failed = 0;
        if (r->bad)
            continue;
        tried++;
        cas_hr hr = dedup_open_source(t, r, &src);
        if (hr == CAS_OK) {
            hr = dedup_copy(src, dst_fd, path, &dst_failed);
            close(src);
        }
        if (hr == CAS_OK) {
            hr = dedup_hash_fd(dst_fd, t->alg, got, &size);
            dst_failed = hr != CAS_OK;
        }
        if (hr != CAS_OK && (dst_failed || hr == CAS_E_OUTOFMEMORY))
            return hr; /* another candidate would meet the same failure */
        if (hr == CAS_OK && !memcmp(got, want, t->hexlen)) {
            *size_out = size;
            *from_content = e->content_id;
            return CAS_OK;
        }
        if (hr == CAS_OK) {
            char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
            cas_hex_upper(want, exp_up);
            cas_hex_upper(got, act_up);
            cas_log_warn(CAS_LOG_CAS,
                         "File %s of content %s in the cache does not match its listing: "
                         "expected %s, actual %s; it is not copied into other content",
                         path, e->content_id, exp_up, act_up);
        }
        r->bad = 1;
    }
    if (ftruncate(dst_fd, 0) != 0)
        return cas_fail(cas_err_from_errno(errno), "emptying a failed copy: %s", strerror(errno));
    if (tried == 0)
        return cas_fail(CAS_E_NOT_FOUND, "no cached file has the hash %s", want);
    return cas_fail(CAS_E_NOT_FOUND,
                    "no cached file has the hash %s: %zu cached copy(ies) did not match or could "
                    "not be read",
                    want, tried);
}
