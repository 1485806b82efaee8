/* The bounded cache with an injected clock: who is removed to make room (least recently used,
 * past the retention time, never persistent or held), each refusal code, use-locks against
 * delete and replace, the index rebuilt when missing or damaged, cache clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/fsutil.h"
#include "common/path.h"
#include "common/timefmt.h"

static time_t fake_now;

static time_t fake_clock(void)
{
    return fake_now;
}

struct fixture {
    char dir[64];
    char *cachedir;
    struct cache *cache;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cas-test-evict-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cachedir = cas_path_join(f->dir, "cache");
    if (cache_open(f->cachedir, &f->cache) != CAS_OK)
        return -1;
    fake_now = 1800000000; /* 2027-01-15 */
    cas_clock_set(fake_clock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cas_clock_set(NULL);
    cache_close(f->cache);
    cas_fs_remove_tree(f->dir);
    free(f->cachedir);
    free(f);
    return 0;
}

/* Commit content `cid` holding one file of `bytes` bytes, at time `at`. */
static void put(struct fixture *f, const char *cid, size_t bytes, time_t at)
{
    char *staging = NULL, hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cache_stage_begin(f->cache, cid, &staging), CAS_OK);
    char *content = cas_path_join(staging, cid);
    char *file = cas_path_join(content, "data.bin");
    char *buf = malloc(bytes ? bytes : 1);
    memset(buf, cid[7], bytes);
    assert_int_equal(cas_fs_write_atomic(file, buf, bytes, 0644), CAS_OK);
    assert_int_equal(cache_hash_folder(content, CAS_HASH_SHA256, NULL, hex), CAS_OK);
    fake_now = at;
    assert_int_equal(cache_commit(f->cache, staging, cid, CAS_HASH_SHA256, hex, NULL, NULL, actual),
                     CAS_OK);
    free(buf);
    free(file);
    free(content);
    free(staging);
}

static const struct cache_entry_info *find(const struct cache_entry_info *v, size_t n,
                                           const char *cid)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i].content_id, cid))
            return &v[i];
    }
    return NULL;
}

/* Three 1000-byte entries used at different times, all past a 60-minute retention at T. */
#define T0 1800000000
#define T  (T0 + 100000)

static void put_three(struct fixture *f)
{
    put(f, "CEN00001.1", 1000, T0 + 1000);
    put(f, "CEN00002.1", 1000, T0 + 500);
    put(f, "CEN00003.1", 1000, T0 + 2000);
}

static const struct cache_limits LIMITS = {3500, 60, T, NULL, 0};

static void test_too_small(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 3501, &LIMITS), CAS_E_CACHE_TOO_SMALL);
    assert_non_null(strstr(cas_err_detail(), "limited to 3500"));
}

static void test_room_without_removal(void **state)
{
    struct fixture *f = *state;
    put_three(f);
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 500, &LIMITS), CAS_OK);
    for (int i = 1; i <= 3; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "CEN0000%d.1", i);
        assert_true(cache_has(f->cache, cid));
    }
}

static void test_lru_first(void **state)
{
    struct fixture *f = *state;
    put_three(f);
    /* 3000 held + 1000 needed > 3500: one entry goes, the least recently used (CEN00002.1). */
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 1000, &LIMITS), CAS_OK);
    assert_false(cache_has(f->cache, "CEN00002.1"));
    assert_true(cache_has(f->cache, "CEN00001.1"));
    assert_true(cache_has(f->cache, "CEN00003.1"));
    /* Using CEN00001.1 now makes CEN00003.1 the older one, but now is within the retention. */
    assert_int_equal(cache_touch(f->cache, "CEN00001.1", T, -1, 0), CAS_OK);
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 2500, &LIMITS), CAS_OK);
    assert_false(cache_has(f->cache, "CEN00003.1"));
    assert_true(cache_has(f->cache, "CEN00001.1"));
}

static void test_retention_and_persist_refuse(void **state)
{
    struct fixture *f = *state;
    put_three(f);
    assert_int_equal(cache_touch(f->cache, "CEN00001.1", T - 60, -1, 0), CAS_OK); /* recent */
    assert_int_equal(cache_touch(f->cache, "CEN00002.1", T0, 1, 0), CAS_OK);      /* persistent */
    /* Only CEN00003.1 may go: 1000 bytes, 2500 needed. */
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 3000, &LIMITS), CAS_E_CACHE_FULL);
    assert_non_null(strstr(cas_err_detail(), "only 1000 can be removed"));
    assert_non_null(strstr(cas_err_detail(), "persistent 1000"));
    assert_non_null(strstr(cas_err_detail(), "used within 60 minutes 1000"));
    for (int i = 1; i <= 3; i++) { /* nothing removed on refusal */
        char cid[16];
        snprintf(cid, sizeof(cid), "CEN0000%d.1", i);
        assert_true(cache_has(f->cache, cid));
    }
    /* The 1000 it can free are enough for 1500. */
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 1500, &LIMITS), CAS_OK);
    assert_false(cache_has(f->cache, "CEN00003.1"));
    assert_true(cache_has(f->cache, "CEN00002.1"));
}

static void test_in_use_is_kept(void **state)
{
    struct fixture *f = *state;
    put_three(f);
    struct cache_hold *h = NULL;
    assert_int_equal(cache_hold(f->cache, "CEN00002.1", &h), CAS_OK);
    assert_true(cache_in_use(f->cache, "CEN00002.1"));
    assert_false(cache_in_use(f->cache, "CEN00001.1"));
    assert_int_equal(cache_delete(f->cache, "CEN00002.1"), CAS_E_CACHE_IN_USE);
    assert_true(cache_has(f->cache, "CEN00002.1"));
    /* Room for 1000: the held LRU entry is skipped, the next one (CEN00001.1) goes. */
    assert_int_equal(cache_make_room(f->cache, "CEN00009.1", 1000, &LIMITS), CAS_OK);
    assert_true(cache_has(f->cache, "CEN00002.1"));
    assert_false(cache_has(f->cache, "CEN00001.1"));
    struct cache_entry_info *v = NULL;
    size_t n = 0;
    assert_int_equal(cache_list(f->cache, &v, &n), CAS_OK);
    assert_true(find(v, n, "CEN00002.1")->in_use);
    assert_false(find(v, n, "CEN00003.1")->in_use);
    free(v);
    cache_release(h);
    assert_false(cache_in_use(f->cache, "CEN00002.1"));
    assert_int_equal(cache_delete(f->cache, "CEN00002.1"), CAS_OK);
    assert_int_equal(cache_delete(f->cache, "CEN00002.1"), CAS_E_CONTENT_NOT_FOUND);
}

static void test_replace_refused_while_held(void **state)
{
    struct fixture *f = *state;
    put(f, "CEN00001.1", 10, T0);
    struct cache_hold *h = NULL;
    assert_int_equal(cache_hold(f->cache, "CEN00001.1", &h), CAS_OK);
    char *staging = NULL, hex[CAS_HASH_MAX_HEX + 1], actual[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cache_stage_begin(f->cache, "CEN00001.1", &staging), CAS_OK);
    char *content = cas_path_join(staging, "CEN00001.1");
    char *file = cas_path_join(content, "other.bin");
    assert_int_equal(cas_fs_write_atomic(file, "x", 1, 0644), CAS_OK);
    assert_int_equal(cache_hash_folder(content, CAS_HASH_SHA256, NULL, hex), CAS_OK);
    assert_int_equal(
        cache_commit(f->cache, staging, "CEN00001.1", CAS_HASH_SHA256, hex, NULL, NULL, actual),
        CAS_E_CACHE_IN_USE);
    /* The entry in use is untouched. */
    char *old = cas_path_join(f->cachedir, "CEN00001.1/data.bin");
    assert_int_equal(access(old, F_OK), 0);
    cache_release(h);
    free(old);
    free(file);
    free(content);
    free(staging);
}

static void test_list_fields_and_index(void **state)
{
    struct fixture *f = *state;
    put(f, "CEN00001.1", 1000, T0 + 10);
    put(f, "CEN00002.1", 2000, T0 + 20);
    assert_int_equal(cache_touch(f->cache, "CEN00002.1", T0 + 30, 1, 1), CAS_OK);
    assert_int_equal(cache_touch(f->cache, "CEN00007.1", T0, 1, 1), CAS_E_CONTENT_NOT_FOUND);
    struct cache_entry_info *v = NULL;
    size_t n = 0;
    assert_int_equal(cache_list(f->cache, &v, &n), CAS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].size, 1000);
    assert_int_equal(v[0].last_used, T0 + 10);
    assert_int_equal(v[0].verified, T0 + 10);
    assert_false(v[0].persist);
    assert_int_equal(v[1].last_used, T0 + 30);
    assert_int_equal(v[1].verified, T0 + 30);
    assert_true(v[1].persist);
    free(v);

    /* A damaged index is rebuilt from the folders: entries stay, times fall back to commit
     * times (file mtimes, not the injected clock), the persist flag is lost until used again. */
    char *index = cas_path_join(f->cachedir, ".index.json");
    assert_int_equal(cas_fs_write_atomic(index, "{\"version\":1,\"entries\":[{", 25, 0644), CAS_OK);
    assert_int_equal(cache_list(f->cache, &v, &n), CAS_OK);
    assert_int_equal(n, 2);
    assert_false(v[1].persist);
    assert_int_equal(v[1].last_used, v[1].modified);
    free(v);
    /* ... and written back, so it is valid again. */
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_fs_read_file(index, 1 << 20, &buf, &len), CAS_OK);
    assert_non_null(strstr(buf, "\"content\":\t\"CEN00002.1\""));
    free(buf);
    /* A missing index too. */
    assert_int_equal(unlink(index), 0);
    assert_int_equal(cache_list(f->cache, &v, &n), CAS_OK);
    assert_int_equal(n, 2);
    free(v);
    assert_int_equal(access(index, F_OK), 0);
    free(index);
}

static void test_clean(void **state)
{
    struct fixture *f = *state;
    put_three(f);
    assert_int_equal(cache_touch(f->cache, "CEN00003.1", T0, 1, 0), CAS_OK);
    struct cache_hold *h = NULL;
    assert_int_equal(cache_hold(f->cache, "CEN00001.1", &h), CAS_OK);
    /* An abandoned partial download. */
    char *staging = NULL;
    assert_int_equal(cache_stage_begin(f->cache, "CEN00005.1", &staging), CAS_OK);
    cache_stage_keep(f->cache, staging);
    size_t removed = 0;
    uint64_t bytes = 0;
    assert_int_equal(cache_clean(f->cache, &LIMITS, &removed, &bytes), CAS_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(bytes, 1000);
    assert_false(cache_has(f->cache, "CEN00002.1"));
    assert_true(cache_has(f->cache, "CEN00001.1")); /* held */
    assert_true(cache_has(f->cache, "CEN00003.1")); /* persistent */
    assert_int_equal(access(staging, F_OK), -1);
    cache_release(h);
    free(staging);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_without_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_and_persist_refuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_use_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_refused_while_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_fields_and_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
