/* Hashing a listing's files on several threads gives exactly what the one-thread walk gives,
 * and a file that vanished is an error naming it, never a digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/hash_parallel.h"
#include "common/fsutil.h"
#include "common/path.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cas-test-hashpar-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    /* 300 files in 3 folders, sizes 0 .. 299 * 97 bytes. */
    for (int i = 0; i < 300; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "%s/d%d", dir, i % 3);
        cas_fs_mkdirs(rel, 0755);
        snprintf(rel, sizeof(rel), "%s/d%d/f%03d", dir, i % 3, i);
        size_t n = (size_t)i * 97;
        char *buf = malloc(n + 1);
        if (!buf)
            return -1;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)(k * 31 + (size_t)i);
        cas_hr hr = cas_fs_write_atomic(rel, buf, n, 0644);
        free(buf);
        if (hr != CAS_OK)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cas_fs_remove_tree(dir);
    return 0;
}

static void test_same_as_one_thread(void **state)
{
    (void)state;
    for (int alg = 0; alg < 2; alg++) {
        struct cas_sums ref = {0}, par = {0};
        assert_int_equal(cas_sums_build_at(AT_FDCWD, dir, (enum cas_hash_alg)alg, &ref), CAS_OK);
        assert_int_equal(cas_sums_list_at(AT_FDCWD, dir, (enum cas_hash_alg)alg, &par), CAS_OK);
        assert_int_equal(par.count, 300);
        assert_int_equal(cache_hash_entries(dir, &par), CAS_OK);
        for (size_t i = 0; i < ref.count; i++) {
            assert_string_equal(par.entries[i].path, ref.entries[i].path);
            assert_string_equal(par.entries[i].hex, ref.entries[i].hex);
            assert_int_equal(par.entries[i].size, ref.entries[i].size);
        }
        cas_sums_free(&ref);
        cas_sums_free(&par);
    }
}

static void test_vanished_file_is_an_error(void **state)
{
    (void)state;
    struct cas_sums par = {0};
    char path[128];
    assert_int_equal(cas_sums_list_at(AT_FDCWD, dir, CAS_HASH_SHA256, &par), CAS_OK);
    snprintf(path, sizeof(path), "%s/d1/f151", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(cache_hash_entries(dir, &par), CAS_E_FILE_MISSING);
    assert_non_null(strstr(cas_err_detail(), "d1/f151"));
    cas_sums_free(&par);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_one_thread),
        cmocka_unit_test(test_vanished_file_is_an_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
