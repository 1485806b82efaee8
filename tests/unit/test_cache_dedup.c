/* Deduplication: a file of new content copied from another committed entry that lists the same
 * hash, and only when the copy hashes right. A changed cache file, a link, a FIFO, an excluded
 * entry, an entry of the other algorithm or with a damaged listing are never a source; a full
 * disk is said as such; a large cache loads fast. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/dedup.h"
#include "common/fsutil.h"
#include "common/path.h"

#define BIG_BYTES 300000 /* more than one copy buffer, and than the small tmpfs */

struct fixture {
    char dir[64];
    char *cachedir;
    struct cache *cache;
    char *big; /* BIG_BYTES of pseudo-random data */
};

struct file {
    const char *path;
    const char *data; /* NUL-terminated, or the big buffer when len is given */
    size_t len;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cas-test-dedup-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    f->cachedir = cas_path_join(f->dir, "cache");
    if (cache_open(f->cachedir, &f->cache) != CAS_OK)
        return -1;
    f->big = malloc(BIG_BYTES);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f->big[i] = (char)(x & 0xFF);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cache_close(f->cache);
    cas_fs_remove_tree(f->dir);
    free(f->cachedir);
    free(f->big);
    free(f);
    return 0;
}

static size_t file_len(const struct file *fl)
{
    return fl->len ? fl->len : strlen(fl->data);
}

/* Commit content `cid` holding `files`, listed with `alg`. */
static void put(struct fixture *f, const char *cid, enum cas_hash_alg alg, const struct file *files,
                size_t n)
{
    char *staging = NULL, hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cache_stage_begin(f->cache, cid, &staging), CAS_OK);
    char *content = cas_path_join(staging, cid);
    for (size_t i = 0; i < n; i++) {
        char *path = cas_path_join(content, files[i].path);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        assert_int_equal(cas_fs_mkdirs(path, 0755), CAS_OK);
        *slash = '/';
        assert_int_equal(cas_fs_write_atomic(path, files[i].data, file_len(&files[i]), 0644),
                         CAS_OK);
        free(path);
    }
    assert_int_equal(cache_hash_folder(content, alg, NULL, hex), CAS_OK);
    assert_int_equal(cache_commit(f->cache, staging, cid, alg, hex, NULL, NULL, actual), CAS_OK);
    free(content);
    free(staging);
}

/* CEN00001.1: a.txt, sub/big.bin, shared.txt; CEN00002.1: c.txt; CEN00003.1: shared.txt. */
static void put_standard(struct fixture *f)
{
    const struct file one[] = {{"a.txt", "alpha\n", 0},
                               {"sub/big.bin", f->big, BIG_BYTES},
                               {"shared.txt", "shared by two entries\n", 0}};
    const struct file two[] = {{"c.txt", "gamma\n", 0}};
    const struct file three[] = {{"other/shared.txt", "shared by two entries\n", 0}};
    put(f, "CEN00001.1", CAS_HASH_SHA256, one, 3);
    put(f, "CEN00002.1", CAS_HASH_SHA256, two, 1);
    put(f, "CEN00003.1", CAS_HASH_SHA256, three, 1);
}

static void hash_of(enum cas_hash_alg alg, const void *data, size_t len, char *hex)
{
    cas_hash_buf_hex(alg, data, len, hex);
}

/* A new, empty destination file under the fixture's folder. */
static int new_dst(struct fixture *f, const char *name, int flags)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    int fd = open(path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    return fd;
}

/* What fd holds, malloc'd; *len its size. */
static char *slurp(int fd, size_t *len)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    *len = (size_t)st.st_size;
    return buf;
}

static uint64_t fd_size(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return (uint64_t)st.st_size;
}

/* Make a committed cache file writable and give it new bytes. */
static void tamper(struct fixture *f, const char *rel, const char *data)
{
    char *path = cas_path_join(f->cachedir, rel);
    assert_int_equal(chmod(path, 0644), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(data, fp);
    fclose(fp);
    free(path);
}

static void test_copies_and_verifies(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    size_t len = 0;
    put_standard(f);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);

    hash_of(CAS_HASH_SHA256, f->big, BIG_BYTES, hex);
    cas_hex_upper(hex, hex); /* either case is accepted */
    assert_true(cache_files_has(t, hex));
    int fd = new_dst(f, "big.out", O_RDWR);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_int_equal(size, BIG_BYTES);
    assert_string_equal(from, "CEN00001.1");
    char *got = slurp(fd, &len);
    assert_int_equal(len, BIG_BYTES);
    assert_memory_equal(got, f->big, BIG_BYTES);
    free(got);
    close(fd);

    hash_of(CAS_HASH_SHA256, "gamma\n", 6, hex);
    fd = new_dst(f, "c.out", O_RDWR);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_int_equal(size, 6);
    assert_string_equal(from, "CEN00002.1");
    got = slurp(fd, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(got, "gamma\n", 6);
    free(got);
    close(fd);
    cache_files_free(t);
}

static void test_absent_hash_is_not_found(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = "unset";
    uint64_t size = 7;
    put_standard(f);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA256, "in no entry\n", 12, hex);
    int fd = new_dst(f, "absent.out", O_RDWR);
    assert_false(cache_files_has(t, hex));
    assert_false(cache_files_has(t, "abc"));
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    assert_non_null(strstr(cas_err_detail(), hex));
    assert_null(from);
    assert_int_equal(size, 0);
    assert_int_equal(fd_size(fd), 0);
    /* Not a hash of this algorithm at all. */
    assert_int_equal(cache_files_copy(t, "abc", fd, &size, &from), CAS_E_NOT_FOUND);
    close(fd);
    cache_files_free(t);
}

static void test_empty_cache_has_nothing(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA256, "alpha\n", 6, hex);
    int fd = new_dst(f, "none.out", O_RDWR);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    close(fd);
    cache_files_free(t);
}

static void test_excluded_entry_is_not_used(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    put_standard(f);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, "CEN00001.1");
    assert_non_null(t);
    int fd = new_dst(f, "ex.out", O_RDWR);
    hash_of(CAS_HASH_SHA256, "alpha\n", 6, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    /* Shared with CEN00003.1: that one is used. */
    hash_of(CAS_HASH_SHA256, "shared by two entries\n", 22, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_string_equal(from, "CEN00003.1");
    close(fd);
    cache_files_free(t);
}

static void test_changed_file_is_not_copied(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = "unset";
    uint64_t size = 0;
    put_standard(f);
    tamper(f, "CEN00001.1/a.txt", "alphA\n");
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA256, "alpha\n", 6, hex);
    int fd = new_dst(f, "changed.out", O_RDWR);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    assert_non_null(strstr(cas_err_detail(), "1 cached copy(ies) did not match"));
    assert_null(from);
    assert_int_equal(fd_size(fd), 0); /* the changed bytes are not left behind */
    close(fd);
    cache_files_free(t);
}

static void test_changed_file_falls_back_to_a_good_copy(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    size_t len = 0;
    put_standard(f);
    hash_of(CAS_HASH_SHA256, "shared by two entries\n", 22, hex);
    int fd = new_dst(f, "shared.out", O_RDWR);

    /* Unchanged, the first entry by content id is the source... */
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_string_equal(from, "CEN00001.1");
    cache_files_free(t);

    /* ...changed, the other entry's copy is used. Same length, so only the hash can tell. */
    tamper(f, "CEN00001.1/shared.txt", "shared by TWO entries\n");
    t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
        assert_string_equal(from, "CEN00003.1");
        assert_int_equal(size, 22);
        char *got = slurp(fd, &len);
        assert_int_equal(len, 22);
        assert_memory_equal(got, "shared by two entries\n", 22);
        free(got);
    }
    close(fd);
    cache_files_free(t);
}

static void test_sha1_and_sha256_are_not_mixed(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    put_standard(f);
    const struct file four[] = {{"x.txt", "xray\n", 0}};
    put(f, "CEN00004.1", CAS_HASH_SHA1, four, 1);
    int fd = new_dst(f, "mix.out", O_RDWR);

    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA256, "xray\n", 5, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    cache_files_free(t);

    t = cache_files_load(f->cache, CAS_HASH_SHA1, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA1, "xray\n", 5, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_string_equal(from, "CEN00004.1");
    assert_int_equal(size, 5);
    hash_of(CAS_HASH_SHA1, "alpha\n", 6, hex); /* listed by a sha256 entry only */
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    close(fd);
    cache_files_free(t);
}

static void test_links_and_fifos_are_refused(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    put_standard(f);
    /* a.txt becomes a link to a file with the very bytes listed: still not followed. */
    char *outside = cas_path_join(f->dir, "outside.txt");
    char *a = cas_path_join(f->cachedir, "CEN00001.1/a.txt");
    char *big = cas_path_join(f->cachedir, "CEN00001.1/sub/big.bin");
    assert_int_equal(cas_fs_write_atomic(outside, "alpha\n", 6, 0644), CAS_OK);
    assert_int_equal(unlink(a), 0);
    assert_int_equal(symlink(outside, a), 0);
    assert_int_equal(unlink(big), 0);
    assert_int_equal(mkfifo(big, 0644), 0);

    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    int fd = new_dst(f, "link.out", O_RDWR);
    hash_of(CAS_HASH_SHA256, "alpha\n", 6, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    hash_of(CAS_HASH_SHA256, f->big, BIG_BYTES, hex); /* must not block on the FIFO */
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    assert_int_equal(fd_size(fd), 0);
    close(fd);
    cache_files_free(t);
    free(outside);
    free(a);
    free(big);
}

static void test_damaged_listing_is_skipped(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    put_standard(f);
    tamper(f, "CEN00002.1.sums", "this is not a listing\n");
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    int fd = new_dst(f, "damaged.out", O_RDWR);
    hash_of(CAS_HASH_SHA256, "gamma\n", 6, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_E_NOT_FOUND);
    hash_of(CAS_HASH_SHA256, "alpha\n", 6, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_string_equal(from, "CEN00001.1");
    close(fd);
    cache_files_free(t);
}

static void test_write_only_destination(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    const char *from = NULL;
    uint64_t size = 0;
    size_t len = 0;
    put_standard(f);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    int fd = new_dst(f, "wo.out", O_WRONLY);
    hash_of(CAS_HASH_SHA256, f->big, BIG_BYTES, hex);
    assert_int_equal(cache_files_copy(t, hex, fd, &size, &from), CAS_OK);
    assert_int_equal(size, BIG_BYTES);
    close(fd);
    char path[128];
    snprintf(path, sizeof(path), "%s/wo.out", f->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    char *got = slurp(fd, &len);
    assert_int_equal(len, BIG_BYTES);
    assert_memory_equal(got, f->big, BIG_BYTES);
    free(got);
    close(fd);
    cache_files_free(t);
}

static void test_disk_full_is_said(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1], mnt[128], path[160];
    const char *from = NULL;
    uint64_t size = 0;
    snprintf(mnt, sizeof(mnt), "%s/small", f->dir);
    snprintf(path, sizeof(path), "%s/out", mnt);
    put_standard(f);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    assert_non_null(t);
    hash_of(CAS_HASH_SHA256, f->big, BIG_BYTES, hex);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (geteuid() != 0 || mount("cas-test-dedup", mnt, "tmpfs", 0, "size=64k") != 0) {
        cache_files_free(t);
        print_message("skipped: cannot mount a small tmpfs (needs root)\n");
        skip();
    }
    cas_hr hr = CAS_E_FAIL;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        hr = cache_files_copy(t, hex, fd, &size, &from);
        close(fd);
    }
    cache_files_free(t);
    umount2(mnt, MNT_DETACH); /* before any assertion, so a failure leaves no mount behind */
    assert_true(fd >= 0);
    assert_int_equal(hr, CAS_E_DISK_FULL);
    assert_null(from);
}

/* 2000 entries of 100 files each, written as the cache lays them out. */
static void test_large_cache_loads_fast(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1], want[CAS_HASH_MAX_HEX + 1], name[64], line[160];
    const char *from = NULL;
    uint64_t size = 0;
    enum { ENTRIES = 2000, FILES = 100 };
    char *listing = malloc(FILES * sizeof(line));
    for (int e = 0; e < ENTRIES; e++) {
        size_t len = 0;
        for (int i = 0; i < FILES; i++) {
            char data[32];
            int n = snprintf(data, sizeof(data), "file %d of %d\n", i, e);
            hash_of(CAS_HASH_SHA256, data, (size_t)n, hex);
            len += (size_t)snprintf(listing + len, sizeof(line), "%s  f%03d.txt\n", hex, i);
        }
        snprintf(name, sizeof(name), "%s/CEN%05X.1", f->cachedir, e + 0x100);
        assert_int_equal(mkdir(name, 0755), 0);
        snprintf(name, sizeof(name), "%s/CEN%05X.1.sums", f->cachedir, e + 0x100);
        FILE *fp = fopen(name, "w"); /* no fsync: 2000 of them would be most of the test */
        assert_non_null(fp);
        assert_int_equal(fwrite(listing, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
    }
    free(listing);
    /* One real file, so a lookup has something to copy. */
    snprintf(name, sizeof(name), "%s/CEN%05X.1/f042.txt", f->cachedir, 0x100 + 1234);
    assert_int_equal(cas_fs_write_atomic(name, "file 42 of 1234\n", 16, 0444), CAS_OK);
    hash_of(CAS_HASH_SHA256, "file 42 of 1234\n", 16, want);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct cache_files *t = cache_files_load(f->cache, CAS_HASH_SHA256, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(t);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("loaded %d entries x %d files in %.3f s\n", ENTRIES, FILES, secs);
    /* About 0.4 s here, 2 s under valgrind; anything quadratic in 200000 rows takes minutes. */
    assert_true(secs < 15.0);
    int fd = new_dst(f, "many.out", O_RDWR);
    assert_int_equal(cache_files_copy(t, want, fd, &size, &from), CAS_OK);
    snprintf(name, sizeof(name), "CEN%05X.1", 0x100 + 1234);
    assert_string_equal(from, name);
    assert_int_equal(size, 16);
    close(fd);
    cache_files_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copies_and_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_hash_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_cache_has_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_excluded_entry_is_not_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_file_is_not_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_file_falls_back_to_a_good_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sha1_and_sha256_are_not_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_and_fifos_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_listing_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_only_destination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_is_said, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_cache_loads_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
