/* cas-site package build: lay a package out on a distribution point folder as the contract says
 * (DP/<C>/<P> and DP/<C>.sums) and print its package hash for the policy.
 *
 * The content of a version never changes once published, because agents compare it with the
 * hash in already signed policy; so an existing version is refused unless --force. The copy is
 * built in a hidden temporary folder and renamed into place, and DP/<C>.sums is published last,
 * so a reader (or a failed build) never sees a listing without all of its files. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/hash.h"
#include "common/path.h"
#include "common/sums.h"
#include "site/site.h"

#define CAS_SITE_PACKAGE_USAGE                                                                     \
    "package build --source DIR --package ID --version N --dp DIR [--alg sha256|sha1] [--force] "  \
    "[--print-size]"

#define CAS_SITE_COPY_BUF ((size_t)128 * 1024)

struct cas_site_build {
    const char *source;
    const char *dp;
    char content[32];   /* "CEN00002.2" */
    char sums_name[40]; /* "CEN00002.2.sums" */
    enum cas_hash_alg alg;
    int force;
    int print_size;

    struct cas_sums sums;
    int src_fd;
    int dp_fd;
    int tmp_fd;
    char *tmp_name;      /* ".CEN00002.2.tmp-XXXXXX" inside DP while it exists, else NULL */
    char *sums_tmp_name; /* ".CEN00002.2.sums.tmp-XXXXXX" likewise */
    int placed;          /* DP/<C> is our new copy */
    size_t files;
    uint64_t bytes;
    unsigned char *buf;
};

/* Open a folder below dirfd without following a link at any step (the source can change while
 * it is copied; a folder swapped for a link must not lead the copy outside it). */
static int cas_site_open_dir_nofollow(int dirfd, const char *name)
{
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Walk the folder part of P from root, in the source (open only) or in the copy (create as
 * needed). Returns a folder fd (the caller closes it) and points *leaf at the file name. */
static cas_hr cas_site_walk_parent(int root, const char *p, int create, int *fd_out,
                                   const char **leaf)
{
    char seg[CAS_PATH_SEG_MAX + 1];
    int fd = dup(root);
    const char *s = p;

    if (fd < 0)
        return cas_fail(cas_err_from_errno(errno), "dup: %s", strerror(errno));
    for (;;) {
        const char *slash = strchr(s, '/');
        if (!slash)
            break;
        size_t n = (size_t)(slash - s);
        /* cas_path_check has bounded each segment; a longer one here is a programming error. */
        if (n >= sizeof(seg)) {
            close(fd);
            return cas_fail(CAS_E_BAD_NAME, "'%s': segment too long", p);
        }
        memcpy(seg, s, n);
        seg[n] = '\0';
        if (create) {
            if (mkdirat(fd, seg, 0755) == 0) {
                /* mkdir applies the umask; DP folders must be readable by the web server. */
                fchmodat(fd, seg, 0755, 0);
            } else if (errno != EEXIST) {
                int err = errno;
                close(fd);
                return cas_fail(cas_err_from_errno(err), "creating folder for '%s': %s", p,
                                strerror(err));
            }
        }
        int next = cas_site_open_dir_nofollow(fd, seg);
        int err = errno;
        close(fd);
        if (next < 0)
            return cas_fail(err == ELOOP || err == ENOTDIR ? CAS_E_BAD_NAME
                                                           : cas_err_from_errno(err),
                            "opening the folder of '%s' (%s changed during the build?): %s", p,
                            create ? "copy" : "source", strerror(err));
        fd = next;
        s = slash + 1;
    }
    *fd_out = fd;
    *leaf = s;
    return CAS_OK;
}

/* Copy one listed file into the temporary folder, hashing exactly the bytes written, and check
 * them against the listing: a source file that changed since it was listed is caught here. */
static cas_hr cas_site_copy_entry(struct cas_site_build *b, const struct cas_sums_entry *e)
{
    cas_hr hr = CAS_OK;
    int sdir = -1, ddir = -1, sfd = -1, dfd = -1;
    const char *leaf = NULL;
    struct cas_hash *h = NULL;
    char hex[CAS_HASH_MAX_HEX + 1];
    uint64_t n_copied = 0;
    struct stat st;

    hr = cas_site_walk_parent(b->src_fd, e->path, 0, &sdir, &leaf);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_walk_parent(b->tmp_fd, e->path, 1, &ddir, &leaf);
    if (hr != CAS_OK)
        goto cleanup;

    /* O_NONBLOCK: a FIFO put in place of a listed file must not hang the build. It changes
     * nothing for a regular file. */
    /* walk_parent sets leaf when it returns CAS_OK; the analyzer thinks its failure code
     * cas_err_from_errno(errno) may be CAS_OK after a failed dup(). */
    // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): leaf is set, see above
    sfd = openat(sdir, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (sfd < 0) {
        int err = errno;
        hr = cas_fail(err == ELOOP ? CAS_E_BAD_NAME : cas_err_from_errno(err),
                      "source file '%s': %s", e->path, strerror(err));
        goto cleanup;
    }
    if (fstat(sfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = cas_fail(CAS_E_BAD_NAME, "source file '%s' is no longer a regular file", e->path);
        goto cleanup;
    }
    dfd = openat(ddir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (dfd < 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "creating copy of '%s': %s", e->path, strerror(err));
        goto cleanup;
    }
    if (fchmod(dfd, 0644) != 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "chmod copy of '%s': %s", e->path, strerror(err));
        goto cleanup;
    }

    h = cas_hash_new(b->alg);
    if (!h) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(sfd, b->buf, CAS_SITE_COPY_BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            hr = cas_fail(cas_err_from_errno(err), "reading '%s': %s", e->path, strerror(err));
            goto cleanup;
        }
        if (n == 0)
            break;
        hr = cas_fs_write_all(dfd, b->buf, (size_t)n, e->path);
        if (hr != CAS_OK)
            goto cleanup;
        cas_hash_update(h, b->buf, (size_t)n);
        n_copied += (uint64_t)n;
    }
    cas_hash_final_hex(h, hex);
    if (strcmp(hex, e->hex) != 0 || n_copied != e->size) {
        hr = cas_fail(CAS_E_HASH_MISMATCH,
                      "source file '%s' changed during the build (listed %s, %" PRIu64
                      " bytes; copied %s, %" PRIu64 " bytes): build again",
                      e->path, e->hex, e->size, hex, n_copied);
        goto cleanup;
    }
    if (close(dfd) != 0) {
        int err = errno;
        dfd = -1;
        hr = cas_fail(cas_err_from_errno(err), "closing copy of '%s': %s", e->path, strerror(err));
        goto cleanup;
    }
    dfd = -1;
    b->files++;
    b->bytes += n_copied;

cleanup:
    cas_hash_free(h);
    if (dfd >= 0)
        close(dfd);
    if (sfd >= 0)
        close(sfd);
    if (ddir >= 0)
        close(ddir);
    if (sdir >= 0)
        close(sdir);
    return hr;
}

static int cas_site_exists_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

static cas_hr cas_site_refuse_existing(const struct cas_site_build *b, const char *name)
{
    return cas_fail(CAS_E_INVALIDARG,
                    "%s/%s already exists: the content of a version never changes once "
                    "published; build a new --version (or use --force to replace it)",
                    b->dp, name);
}

/* rename, refusing to replace an existing target. RENAME_NOREPLACE closes the race with another
 * build of the same version; file systems without it get the check-then-rename fallback. */
static int cas_site_rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    struct stat st;
    if (fstatat(dirfd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
        return -1;
    }
    return renameat(dirfd, from, dirfd, to);
}

/* Put the temporary copy at DP/<C>. With --force an existing DP/<C> is swapped out in one step
 * where the file system allows it, then removed. */
static cas_hr cas_site_place_content(struct cas_site_build *b)
{
    if (b->force) {
        if (renameat2(b->dp_fd, b->tmp_name, b->dp_fd, b->content, RENAME_EXCHANGE) == 0) {
            b->placed = 1;
            /* tmp_name now holds the old version; removing it is cleanup's job. */
            return CAS_OK;
        }
        if (errno == EINVAL || errno == ENOSYS) {
            cas_hr hr = cas_fs_remove_tree_at(b->dp_fd, b->content);
            if (hr != CAS_OK)
                return hr;
        } else if (errno != ENOENT) {
            int err = errno;
            return cas_fail(cas_err_from_errno(err), "replacing %s/%s: %s", b->dp, b->content,
                            strerror(err));
        }
    }
    if (cas_site_rename_noreplace(b->dp_fd, b->tmp_name, b->content) != 0) {
        int err = errno;
        if (err == EEXIST || err == ENOTEMPTY)
            return cas_site_refuse_existing(b, b->content);
        return cas_fail(cas_err_from_errno(err), "renaming %s/%s to %s: %s", b->dp, b->tmp_name,
                        b->content, strerror(err));
    }
    b->placed = 1;
    free(b->tmp_name);
    b->tmp_name = NULL;
    return CAS_OK;
}

static cas_hr cas_site_write_sums_tmp(struct cas_site_build *b)
{
    cas_hr hr = CAS_OK;
    char *listing = NULL, *path = NULL, *tmpl = NULL;
    size_t len = 0;
    int fd = -1;

    hr = cas_sums_serialize(&b->sums, &listing, &len);
    if (hr != CAS_OK)
        goto cleanup;
    if (asprintf(&tmpl, ".%s.tmp-XXXXXX", b->sums_name) < 0) {
        tmpl = NULL;
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    path = cas_path_join(b->dp, tmpl);
    if (!path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "creating %s: %s", path, strerror(err));
        goto cleanup;
    }
    /* The same random suffix, relative to the DP folder, for the *at calls. */
    memcpy(tmpl + strlen(tmpl) - 6, path + strlen(path) - 6, 6);
    b->sums_tmp_name = tmpl;
    tmpl = NULL;
    if (fchmod(fd, 0644) != 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "chmod %s: %s", path, strerror(err));
        goto cleanup;
    }
    hr = cas_fs_write_all(fd, listing, len, path);
    if (hr != CAS_OK)
        goto cleanup;
    if (fsync(fd) != 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "fsync %s: %s", path, strerror(err));
        goto cleanup;
    }
    if (close(fd) != 0) {
        int err = errno;
        fd = -1;
        hr = cas_fail(cas_err_from_errno(err), "closing %s: %s", path, strerror(err));
        goto cleanup;
    }
    fd = -1;

cleanup:
    if (fd >= 0)
        close(fd);
    free(listing);
    free(path);
    free(tmpl);
    return hr;
}

static cas_hr cas_site_publish_sums(struct cas_site_build *b)
{
    int rc;
    if (b->force)
        rc = renameat(b->dp_fd, b->sums_tmp_name, b->dp_fd, b->sums_name);
    else
        rc = cas_site_rename_noreplace(b->dp_fd, b->sums_tmp_name, b->sums_name);
    if (rc != 0) {
        int err = errno;
        if (err == EEXIST)
            return cas_site_refuse_existing(b, b->sums_name);
        return cas_fail(cas_err_from_errno(err), "renaming %s/%s to %s: %s", b->dp,
                        b->sums_tmp_name, b->sums_name, strerror(err));
    }
    free(b->sums_tmp_name);
    b->sums_tmp_name = NULL;
    return CAS_OK;
}

static cas_hr cas_site_build_run(struct cas_site_build *b, char *hex)
{
    cas_hr hr;
    char detail[1024];

    /* Fail fast, before hashing a possibly large source. Checked again when renaming. */
    if (!b->force) {
        char *c_path = cas_path_join(b->dp, b->content);
        char *s_path = cas_path_join(b->dp, b->sums_name);
        int c_exists = c_path && cas_site_exists_at(AT_FDCWD, c_path);
        int s_exists = s_path && cas_site_exists_at(AT_FDCWD, s_path);
        free(c_path);
        free(s_path);
        if (c_exists)
            return cas_site_refuse_existing(b, b->content);
        if (s_exists)
            return cas_site_refuse_existing(b, b->sums_name);
    }

    hr = cas_sums_build_at(AT_FDCWD, b->source, b->alg, &b->sums);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        return cas_fail(hr, "source %s: %s", b->source, detail);
    }
    if (b->sums.count == 0)
        fprintf(stderr, "cas-site: warning: %s holds no files; building an empty package\n",
                b->source);
    b->src_fd = open(b->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->src_fd < 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "opening %s: %s", b->source, strerror(err));
    }

    hr = cas_fs_mkdirs(b->dp, 0755);
    if (hr != CAS_OK)
        return hr;
    b->dp_fd = open(b->dp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->dp_fd < 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "opening %s: %s", b->dp, strerror(err));
    }

    char *tmp_path = NULL;
    if (asprintf(&b->tmp_name, ".%s.tmp-XXXXXX", b->content) < 0) {
        b->tmp_name = NULL;
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    tmp_path = cas_path_join(b->dp, b->tmp_name);
    if (!tmp_path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    if (!mkdtemp(tmp_path)) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "creating %s: %s", tmp_path, strerror(err));
        free(tmp_path);
        /* Nothing was created: keep cleanup from removing a name that is not ours. */
        free(b->tmp_name);
        b->tmp_name = NULL;
        return hr;
    }
    memcpy(b->tmp_name + strlen(b->tmp_name) - 6, tmp_path + strlen(tmp_path) - 6, 6);
    free(tmp_path);
    b->tmp_fd = cas_site_open_dir_nofollow(b->dp_fd, b->tmp_name);
    if (b->tmp_fd < 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "opening %s/%s: %s", b->dp, b->tmp_name,
                        strerror(err));
    }
    /* mkdtemp creates 0700; the web server serving the DP must be able to read the folder. */
    if (fchmod(b->tmp_fd, 0755) != 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "chmod %s/%s: %s", b->dp, b->tmp_name,
                        strerror(err));
    }

    b->buf = malloc(CAS_SITE_COPY_BUF);
    if (!b->buf)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    for (size_t i = 0; i < b->sums.count; i++) {
        hr = cas_site_copy_entry(b, &b->sums.entries[i]);
        if (hr != CAS_OK)
            return hr;
    }
    /* One syncfs makes every copied file and folder durable before the rename publishes them;
     * cheaper than an fsync per file and per folder for packages with many small files. */
    if (syncfs(b->tmp_fd) != 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "syncing %s: %s", b->dp, strerror(err));
    }

    hr = cas_sums_package_hash(&b->sums, hex);
    if (hr != CAS_OK)
        return hr;
    hr = cas_site_write_sums_tmp(b);
    if (hr != CAS_OK)
        return hr;

    /* With --force the old listing goes first: from then on an agent finds no listing (and tries
     * another DP) instead of an old listing beside new files. */
    if (b->force && unlinkat(b->dp_fd, b->sums_name, 0) != 0 && errno != ENOENT) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "removing %s/%s: %s", b->dp, b->sums_name,
                        strerror(err));
    }
    hr = cas_site_place_content(b);
    if (hr != CAS_OK)
        return hr;
    hr = cas_site_publish_sums(b);
    if (hr != CAS_OK)
        return hr;
    if (fsync(b->dp_fd) != 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "fsync %s: %s", b->dp, strerror(err));
    }
    return CAS_OK;
}

/* Remove what a build left behind. On failure that includes a copy already renamed into place
 * (its listing was not published, so the version is incomplete). The first failure's detail is
 * kept: the removals below may set their own. */
static void cas_site_build_cleanup(struct cas_site_build *b, cas_hr hr)
{
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", cas_err_detail());
    if (b->dp_fd >= 0) {
        if (b->tmp_name && cas_fs_remove_tree_at(b->dp_fd, b->tmp_name) != CAS_OK && hr == CAS_OK)
            fprintf(stderr, "cas-site: warning: could not remove the old copy %s/%s: %s\n", b->dp,
                    b->tmp_name, cas_err_detail());
        if (b->sums_tmp_name)
            unlinkat(b->dp_fd, b->sums_tmp_name, 0);
        if (hr != CAS_OK && b->placed)
            cas_fs_remove_tree_at(b->dp_fd, b->content);
        close(b->dp_fd);
    }
    if (b->tmp_fd >= 0)
        close(b->tmp_fd);
    if (b->src_fd >= 0)
        close(b->src_fd);
    free(b->tmp_name);
    free(b->sums_tmp_name);
    free(b->buf);
    cas_sums_free(&b->sums);
    cas_fail(hr, "%s", detail);
}

/* A positive decimal version without leading zeros, as it appears in content ids. */
static int cas_site_version_ok(const char *v)
{
    size_t n = strlen(v);
    return n >= 1 && n <= 20 && v[0] >= '1' && v[0] <= '9' && strspn(v, "0123456789") == n;
}

int cas_site_cmd_package(int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, NULL, 's'},
        {"package", required_argument, NULL, 'p'},
        {"version", required_argument, NULL, 'v'},
        {"dp", required_argument, NULL, 'd'},
        {"alg", required_argument, NULL, 'a'},
        {"force", no_argument, NULL, 'f'},
        {"print-size", no_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cas_site_build b = {.alg = CAS_HASH_SHA256, .src_fd = -1, .dp_fd = -1, .tmp_fd = -1};
    const char *package = NULL, *version = NULL, *alg_name = "sha256";
    char hex[CAS_HASH_MAX_HEX + 1], upper[CAS_HASH_MAX_HEX + 1];
    int c;

    if (argc < 1)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "missing subcommand");
    if (strcmp(argv[0], "build") != 0)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "unknown subcommand 'package %s'", argv[0]);
    optind = 0;
    while ((c = cas_site_getopt(argc, argv, opts, CAS_SITE_PACKAGE_USAGE)) != -1) {
        switch (c) {
        case 's':
            b.source = optarg;
            break;
        case 'p':
            package = optarg;
            break;
        case 'v':
            version = optarg;
            break;
        case 'd':
            b.dp = optarg;
            break;
        case 'a':
            alg_name = optarg;
            break;
        case 'f':
            b.force = 1;
            break;
        case 'z':
            b.print_size = 1;
            break;
        case 'h':
            printf("usage: cas-site %s\n", CAS_SITE_PACKAGE_USAGE);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!b.source)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "missing --source");
    if (!package)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "missing --package");
    if (!version)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "missing --version");
    if (!b.dp)
        return cas_site_usage(CAS_SITE_PACKAGE_USAGE, "missing --dp");

    if (!cas_id_is_package(package))
        return cas_site_report(cas_fail(CAS_E_INVALIDARG,
                                        "package id '%s': expected a site code and 5 upper-case "
                                        "hex digits, like CEN00002",
                                        package));
    if (!cas_site_version_ok(version))
        return cas_site_report(
            cas_fail(CAS_E_INVALIDARG,
                     "version '%s': expected a positive decimal number without leading "
                     "zeros",
                     version));
    snprintf(b.content, sizeof(b.content), "%s.%s", package, version);
    if (!cas_id_is_content(b.content))
        return cas_site_report(cas_fail(CAS_E_INVALIDARG, "version '%s' is out of range", version));
    snprintf(b.sums_name, sizeof(b.sums_name), "%s.sums", b.content);
    cas_hr hr = cas_hash_alg_parse(alg_name, &b.alg);
    if (hr != CAS_OK)
        return cas_site_report(
            cas_fail(hr, "hash algorithm '%s': expected sha256 or sha1", alg_name));

    hr = cas_site_build_run(&b, hex);
    cas_site_build_cleanup(&b, hr);
    if (hr != CAS_OK)
        return cas_site_report(hr);

    printf("%s\n", hex);
    if (b.print_size)
        printf("%" PRIu64 "\n", b.bytes);
    cas_hex_upper(hex, upper);
    fprintf(stderr, "Built %s: %zu file%s, %" PRIu64 " bytes, %s %s\n", b.content, b.files,
            b.files == 1 ? "" : "s", b.bytes, cas_hash_alg_name(b.alg), upper);
    return CAS_SITE_EXIT_OK;
}
