/* The cache: commit only verified content, nothing on mismatch, read-only files, re-verify from
 * disk, delete, orphans left by a crash removed at open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/fsutil.h"

struct fixture {
    char dir[64];
    char *cachedir;
    struct cache *cache;
};

static void write_file(const char *dir, const char *rel, const char *text)
{
    char *p = cas_path_join(dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(cas_fs_mkdirs(p, 0755), CAS_OK);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

/* Listing of {"install.sh": "#!/bin/sh\necho hi\n", "sub/data.txt": "data\n"}; the package hash
 * was computed with coreutils:
 *   printf '#!/bin/sh\necho hi\n' > install.sh; mkdir sub; printf 'data\n' > sub/data.txt
 *   find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum | sha256sum */
static const char *const PKG_HASH = NULL; /* filled at run time from the staged files, below */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cas-test-cache-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cachedir = cas_path_join(f->dir, "cache");
    if (cache_open(f->cachedir, &f->cache) != CAS_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cache_close(f->cache);
    cas_fs_remove_tree(f->dir);
    free(f->cachedir);
    free(f);
    return 0;
}

static char *stage(struct fixture *f, const char *cid)
{
    char *staging = NULL;
    assert_int_equal(cache_stage_begin(f->cache, cid, &staging), CAS_OK);
    char *content = cas_path_join(staging, cid);
    write_file(content, "install.sh", "#!/bin/sh\necho hi\n");
    write_file(content, "sub/data.txt", "data\n");
    free(content);
    return staging;
}

static void expected_hash(struct fixture *f, char *hex)
{
    /* The hash of the two files above, recomputed independently of the cache. */
    char *tmp = cas_path_join(f->dir, "ref");
    write_file(tmp, "install.sh", "#!/bin/sh\necho hi\n");
    write_file(tmp, "sub/data.txt", "data\n");
    assert_int_equal(cache_hash_folder(tmp, CAS_HASH_SHA256, NULL, hex), CAS_OK);
    cas_fs_remove_tree(tmp);
    free(tmp);
}

static void test_reference_hash_matches_coreutils(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    (void)PKG_HASH;
    expected_hash(f, hex);
    /* Computed with the coreutils one-liner in the comment above. */
    assert_string_equal(hex, "4415966adb670fd1e3ff8b2ab01fe5bf0762483fe1394b59db04e6058dc6926e");
}

static void test_commit_good(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    expected_hash(f, hex);
    char *staging = stage(f, "CEN00002.2");
    assert_int_equal(cache_commit(f->cache, staging, "CEN00002.2", CAS_HASH_SHA256, hex,
                                  "install.sh", NULL, actual),
                     CAS_OK);
    assert_string_equal(actual, hex);
    assert_true(cache_has(f->cache, "CEN00002.2"));
    /* Staging is gone; files are read-only; the program is executable. */
    assert_int_equal(access(staging, F_OK), -1);
    free(staging);
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/CEN00002.2/install.sh", f->cachedir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0555);
    snprintf(path, sizeof(path), "%s/CEN00002.2/sub/data.txt", f->cachedir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0444);
    snprintf(path, sizeof(path), "%s/CEN00002.2.sums", f->cachedir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* Verified again from disk. */
    char *changed = NULL;
    assert_int_equal(cache_verify(f->cache, "CEN00002.2", CAS_HASH_SHA256, hex, actual, &changed),
                     CAS_OK);
    assert_null(changed);
    /* Listed. */
    struct cache_entry_info *items = NULL;
    size_t n = 0;
    assert_int_equal(cache_list(f->cache, &items, &n), CAS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].content_id, "CEN00002.2");
    assert_int_equal(items[0].files, 2);
    assert_int_equal(items[0].size, strlen("#!/bin/sh\necho hi\n") + strlen("data\n"));
    free(items);
}

static void test_commit_mismatch_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    expected_hash(f, hex);
    char *staging = stage(f, "CEN00005.1");
    char *extra = cas_path_join(staging, "CEN00005.1");
    write_file(extra, "planted.txt", "not in the package\n");
    free(extra);
    assert_int_equal(
        cache_commit(f->cache, staging, "CEN00005.1", CAS_HASH_SHA256, hex, NULL, NULL, actual),
        CAS_E_HASH_MISMATCH);
    assert_string_not_equal(actual, hex);
    assert_false(cache_has(f->cache, "CEN00005.1"));
    char path[512];
    snprintf(path, sizeof(path), "%s/CEN00005.1", f->cachedir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/CEN00005.1.sums", f->cachedir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(staging, F_OK), -1);
    free(staging);
}

static void test_verify_detects_tamper(void **state)
{
    struct fixture *f = *state;
    char hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    expected_hash(f, hex);
    char *staging = stage(f, "CEN00002.3");
    assert_int_equal(
        cache_commit(f->cache, staging, "CEN00002.3", CAS_HASH_SHA256, hex, NULL, NULL, actual),
        CAS_OK);
    free(staging);
    char path[512];
    snprintf(path, sizeof(path), "%s/CEN00002.3/sub/data.txt", f->cachedir);
    chmod(path, 0644);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("DATA\n", fp);
    fclose(fp);
    char *changed = NULL;
    assert_int_equal(cache_verify(f->cache, "CEN00002.3", CAS_HASH_SHA256, hex, actual, &changed),
                     CAS_E_HASH_MISMATCH);
    assert_non_null(changed);
    assert_non_null(strstr(changed, "file sub/data.txt changed"));
    free(changed);
    assert_int_equal(cache_delete(f->cache, "CEN00002.3"), CAS_OK);
    assert_false(cache_has(f->cache, "CEN00002.3"));
    snprintf(path, sizeof(path), "%s/CEN00002.3", f->cachedir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(cache_verify(f->cache, "CEN00002.3", CAS_HASH_SHA256, hex, actual, NULL),
                     CAS_E_CONTENT_NOT_FOUND);
}

static void test_orphans_removed_at_open(void **state)
{
    struct fixture *f = *state;
    char path[512];
    /* A crash between the two renames of a commit leaves C/ without C.sums. */
    snprintf(path, sizeof(path), "%s/CEN0000A.1", f->cachedir);
    write_file(path, "x", "x");
    /* A staging folder of a process that no longer exists (pid 1 is init: alive; use a pid far
     * beyond pid_max instead). */
    snprintf(path, sizeof(path), "%s/.partial/CEN0000B.1.99999999.abcdef", f->cachedir);
    write_file(path, "CEN0000B.1/y", "y");
    cache_close(f->cache);
    assert_int_equal(cache_open(f->cachedir, &f->cache), CAS_OK);
    snprintf(path, sizeof(path), "%s/CEN0000A.1", f->cachedir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/.partial/CEN0000B.1.99999999.abcdef", f->cachedir);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_bad_ids_refused(void **state)
{
    struct fixture *f = *state;
    char *staging = NULL;
    assert_int_equal(cache_stage_begin(f->cache, "../etc", &staging), CAS_E_INVALIDARG);
    assert_null(staging);
    assert_int_equal(cache_delete(f->cache, "CEN00002.2/../.."), CAS_E_INVALIDARG);
    assert_false(cache_has(f->cache, ".partial"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reference_hash_matches_coreutils, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_mismatch_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_detects_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans_removed_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
