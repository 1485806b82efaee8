/* The sums listing: parsed strictly, built from a folder without following links, and hashed
 * into the package hash. The bytes are exactly what coreutils' sha256sum / sha1sum print, so the
 * package hash can be recomputed by anyone without this program. */
#include "common/sums.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/path.h"

/* cas_fail() formats into the same per-thread buffer that cas_err_detail() returns, so a detail
 * must be copied out before it is quoted in a new one. */
static void cas_sums_save_detail(char *buf, size_t size)
{
    snprintf(buf, size, "%s", cas_err_detail());
}

static int cas_sums_cmp_entries(const void *a, const void *b)
{
    const struct cas_sums_entry *ea = a;
    const struct cas_sums_entry *eb = b;
    /* strcmp compares as unsigned char: raw byte order, the same as `LC_ALL=C sort`. */
    return strcmp(ea->path, eb->path);
}

static int cas_sums_cmp_key(const void *key, const void *elem)
{
    const struct cas_sums_entry *e = elem;
    return strcmp(key, e->path);
}

static const struct cas_sums_entry *cas_sums_bsearch(const struct cas_sums_entry *entries,
                                                     size_t count, const char *path)
{
    if (!entries || count == 0)
        return NULL;
    return bsearch(path, entries, count, sizeof(*entries), cas_sums_cmp_key);
}

void cas_sums_free(struct cas_sums *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        free(s->entries[i].path);
    free(s->entries);
    s->entries = NULL;
    s->count = 0;
}

const struct cas_sums_entry *cas_sums_find(const struct cas_sums *s, const char *path)
{
    if (!s || !path)
        return NULL;
    return cas_sums_bsearch(s->entries, s->count, path);
}

/* ---- parse ---- */

/* One line, without its '\n'. Fills e->hex; the caller copies the path. */
static cas_hr cas_sums_parse_line(const char *line, size_t n, size_t lineno, size_t hexlen,
                                  struct cas_sums_entry *e)
{
    if (memchr(line, '\r', n))
        return cas_fail(CAS_E_INVALID_DATA, "sums line %zu: carriage return (CRLF line ending?)",
                        lineno);

    size_t h = 0;
    int upper = 0;
    while (h < n && ((line[h] >= '0' && line[h] <= '9') || (line[h] >= 'a' && line[h] <= 'f') ||
                     (line[h] >= 'A' && line[h] <= 'F'))) {
        upper |= line[h] >= 'A' && line[h] <= 'F';
        h++;
    }
    if (h != hexlen)
        return cas_fail(CAS_E_INVALID_DATA,
                        "sums line %zu: expected a hash of %zu hex digits at the start, found %zu",
                        lineno, hexlen, h);
    if (upper)
        return cas_fail(CAS_E_INVALID_DATA, "sums line %zu: upper-case hex in the hash", lineno);
    if (h + 2 > n || line[h] != ' ' || line[h + 1] != ' ') {
        if (h + 1 < n && line[h] == ' ' && line[h + 1] == '*')
            return cas_fail(CAS_E_INVALID_DATA,
                            "sums line %zu: binary-mode '*' marker (expected two spaces)", lineno);
        return cas_fail(CAS_E_INVALID_DATA,
                        "sums line %zu: expected two spaces between the hash and the path", lineno);
    }

    const char *path = line + h + 2;
    size_t plen = n - h - 2;
    if (cas_path_check(path, plen) != CAS_OK) {
        char why[512];
        cas_sums_save_detail(why, sizeof(why));
        return cas_fail(CAS_E_BAD_NAME, "sums line %zu: %s", lineno, why);
    }
    memcpy(e->hex, line, hexlen);
    e->hex[hexlen] = '\0';
    e->size = 0;
    e->path = malloc(plen + 1);
    if (!e->path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory reading sums line %zu", lineno);
    memcpy(e->path, path, plen);
    e->path[plen] = '\0';
    return CAS_OK;
}

/* A file "a" must not also be a folder holding "a/b". An ancestor sorts before its descendants,
 * so looking it up among the entries already read is enough. */
static const char *cas_sums_file_ancestor(const struct cas_sums_entry *entries, size_t count,
                                          char *path)
{
    for (char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        const struct cas_sums_entry *hit = cas_sums_bsearch(entries, count, path);
        *slash = '/';
        if (hit)
            return hit->path;
    }
    return NULL;
}

cas_hr cas_sums_parse(const char *buf, size_t len, enum cas_hash_alg alg, struct cas_sums *out)
{
    cas_hr hr = CAS_OK;
    size_t hexlen = cas_hash_hexlen(alg);
    struct cas_sums s = {.alg = alg, .count = 0, .entries = NULL};

    out->alg = alg;
    out->count = 0;
    out->entries = NULL;
    if (len == 0)
        return CAS_OK;
    if (buf[len - 1] != '\n') {
        size_t lines = 1;
        for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + len - q))); q++)
            lines++;
        return cas_fail(CAS_E_INVALID_DATA, "sums line %zu: no newline at the end of the listing",
                        lines);
    }

    size_t nlines = 0;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + len - q))); q++)
        nlines++;
    // NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): nlines >= 1, buf ends in '\n'
    s.entries = calloc(nlines, sizeof(*s.entries));
    if (!s.entries)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory reading a sums listing");

    const char *line = buf;
    for (size_t lineno = 1; lineno <= nlines; lineno++) {
        const char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        struct cas_sums_entry *e = &s.entries[s.count];
        hr = cas_sums_parse_line(line, (size_t)(nl - line), lineno, hexlen, e);
        if (hr != CAS_OK)
            goto cleanup;
        s.count++;
        if (s.count > 1) {
            int cmp = strcmp(s.entries[s.count - 2].path, e->path);
            if (cmp == 0) {
                hr =
                    cas_fail(CAS_E_BAD_NAME, "sums line %zu: duplicate path '%s'", lineno, e->path);
                goto cleanup;
            }
            if (cmp > 0) {
                hr = cas_fail(CAS_E_INVALID_DATA,
                              "sums line %zu: '%s' is out of order (paths must be sorted by raw "
                              "bytes, as LC_ALL=C sort does)",
                              lineno, e->path);
                goto cleanup;
            }
        }
        const char *file = cas_sums_file_ancestor(s.entries, s.count - 1, e->path);
        if (file) {
            hr = cas_fail(CAS_E_BAD_NAME, "sums line %zu: '%s' is listed as a file and as a folder",
                          lineno, file);
            goto cleanup;
        }
        line = nl + 1;
    }
    *out = s;
    return CAS_OK;

cleanup:
    cas_sums_free(&s);
    return hr;
}

/* ---- build ---- */

struct cas_sums_builder {
    struct cas_sums *s;
    size_t cap;
    int hash; /* 0: names and sizes only (cas_sums_list_at) */
};

static cas_hr cas_sums_add(struct cas_sums_builder *b, const char *rel, int dfd, const char *name)
{
    if (b->s->count == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct cas_sums_entry *grown = realloc(b->s->entries, cap * sizeof(*grown));
        if (!grown)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory listing the package");
        b->s->entries = grown;
        b->cap = cap;
    }
    struct cas_sums_entry *e = &b->s->entries[b->s->count];
    memset(e, 0, sizeof(*e));
    cas_hr hr = CAS_OK;
    if (b->hash) {
        hr = cas_hash_file_at(dfd, name, b->s->alg, e->hex, &e->size);
    } else {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            hr = cas_fail(cas_err_from_errno(errno), "%s", strerror(errno));
        else
            e->size = (uint64_t)st.st_size;
    }
    if (hr != CAS_OK) {
        char why[512];
        cas_sums_save_detail(why, sizeof(why));
        return cas_fail(hr, "package entry '%s': %s", rel, why);
    }
    e->path = strdup(rel);
    if (!e->path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory listing the package");
    b->s->count++;
    return CAS_OK;
}

static const char *cas_sums_kind(mode_t mode)
{
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a fifo";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "a special file";
}

/* Walks the folder open at dfd (taken over: closed here), whose path in the package is prefix
 * ("" for the root). */
static cas_hr cas_sums_walk(struct cas_sums_builder *b, int dfd, const char *prefix)
{
    cas_hr hr = CAS_OK;
    char *rel = NULL;
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        int err = errno;
        close(dfd);
        return cas_fail(cas_err_from_errno(err), "cannot read folder '%s': %s",
                        *prefix ? prefix : ".", strerror(err));
    }

    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno) {
                int err = errno;
                hr = cas_fail(cas_err_from_errno(err), "cannot read folder '%s': %s",
                              *prefix ? prefix : ".", strerror(err));
            }
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;

        free(rel);
        size_t plen = strlen(prefix), nlen = strlen(name);
        rel = malloc(plen + 1 + nlen + 1);
        if (!rel) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory listing the package");
            break;
        }
        if (plen) {
            memcpy(rel, prefix, plen);
            rel[plen] = '/';
            memcpy(rel + plen + 1, name, nlen + 1);
        } else {
            memcpy(rel, name, nlen + 1);
        }
        if (cas_path_check(rel, strlen(rel)) != CAS_OK) {
            char why[512];
            cas_sums_save_detail(why, sizeof(why));
            hr = cas_fail(CAS_E_BAD_NAME, "package entry not allowed: %s", why);
            break;
        }

        struct stat st;
        if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            int err = errno;
            hr = cas_fail(cas_err_from_errno(err), "cannot stat package entry '%s': %s", rel,
                          strerror(err));
            break;
        }
        if (S_ISREG(st.st_mode)) {
            hr = cas_sums_add(b, rel, dirfd(dir), name);
        } else if (S_ISDIR(st.st_mode)) {
            /* O_NOFOLLOW: a folder swapped for a link after fstatat is refused, not followed. */
            int sub = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                int err = errno;
                hr = cas_fail(err == ELOOP ? CAS_E_BAD_NAME : cas_err_from_errno(err),
                              "cannot open package folder '%s': %s", rel, strerror(err));
            } else {
                hr = cas_sums_walk(b, sub, rel);
            }
        } else {
            hr = cas_fail(CAS_E_BAD_NAME, "package entry '%s' is %s (only regular files allowed)",
                          rel, cas_sums_kind(st.st_mode));
        }
        if (hr != CAS_OK)
            break;
    }
    free(rel);
    closedir(dir);
    return hr;
}

static cas_hr cas_sums_build(int dirfd, const char *path, enum cas_hash_alg alg, int hash,
                             struct cas_sums *out)
{
    struct cas_sums s = {.alg = alg, .count = 0, .entries = NULL};
    struct cas_sums_builder b = {.s = &s, .cap = 0, .hash = hash};

    out->alg = alg;
    out->count = 0;
    out->entries = NULL;
    /* The root itself is followed if it is a link, as `cd PACKAGE` would; nothing below it is. */
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "cannot open package folder '%s': %s", path,
                        strerror(err));
    }
    cas_hr hr = cas_sums_walk(&b, fd, "");
    if (hr != CAS_OK) {
        cas_sums_free(&s);
        return hr;
    }
    if (s.count > 1)
        qsort(s.entries, s.count, sizeof(*s.entries), cas_sums_cmp_entries);
    *out = s;
    return CAS_OK;
}

cas_hr cas_sums_build_at(int dirfd, const char *path, enum cas_hash_alg alg, struct cas_sums *out)
{
    return cas_sums_build(dirfd, path, alg, 1, out);
}

cas_hr cas_sums_list_at(int dirfd, const char *path, enum cas_hash_alg alg, struct cas_sums *out)
{
    return cas_sums_build(dirfd, path, alg, 0, out);
}

/* ---- serialise and hash ---- */

static cas_hr cas_sums_check_hex(const struct cas_sums *s, size_t hexlen)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strlen(s->entries[i].hex) != hexlen)
            return cas_fail(CAS_E_INVALID_DATA, "sums entry '%s' has a hash of the wrong length",
                            s->entries[i].path);
    }
    return CAS_OK;
}

cas_hr cas_sums_serialize(const struct cas_sums *s, char **buf_out, size_t *len_out)
{
    size_t hexlen = cas_hash_hexlen(s->alg);
    cas_hr hr = cas_sums_check_hex(s, hexlen);
    if (hr != CAS_OK)
        return hr;

    size_t total = 0;
    for (size_t i = 0; i < s->count; i++)
        total += hexlen + 2 + strlen(s->entries[i].path) + 1;
    char *buf = malloc(total + 1);
    if (!buf)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory writing a sums listing");
    char *o = buf;
    for (size_t i = 0; i < s->count; i++) {
        size_t plen = strlen(s->entries[i].path);
        memcpy(o, s->entries[i].hex, hexlen);
        o += hexlen;
        *o++ = ' ';
        *o++ = ' ';
        memcpy(o, s->entries[i].path, plen);
        o += plen;
        *o++ = '\n';
    }
    *o = '\0';
    *buf_out = buf;
    *len_out = total;
    return CAS_OK;
}

cas_hr cas_sums_package_hash(const struct cas_sums *s, char *hex)
{
    size_t hexlen = cas_hash_hexlen(s->alg);
    cas_hr hr = cas_sums_check_hex(s, hexlen);
    if (hr != CAS_OK)
        return hr;

    /* Streamed, line by line: the same bytes cas_sums_serialize would produce. */
    struct cas_hash *h = cas_hash_new(s->alg);
    if (!h)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory hashing a sums listing");
    for (size_t i = 0; i < s->count; i++) {
        cas_hash_update(h, s->entries[i].hex, hexlen);
        cas_hash_update(h, "  ", 2);
        cas_hash_update(h, s->entries[i].path, strlen(s->entries[i].path));
        cas_hash_update(h, "\n", 1);
    }
    cas_hash_final_hex(h, hex);
    cas_hash_free(h);
    return CAS_OK;
}
