/* CMTrace record formatting and the writer: exact bytes, bias sign, escaping, levels, rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"

/* 2026-07-04 12:34:56.789 UTC */
static const struct timespec when = {1783168496, 789000000};

static void format_with_tz(const char *tz, char *buf, size_t size, const char *text)
{
    setenv("TZ", tz, 1);
    tzset();
    int n = cas_log_format(buf, size, CAS_LOG_CAS, CAS_LOG_K_INFO, "/src/agent/download.c", 42,
                           &when, 4242, text);
    assert_true(n > 0);
}

static void test_format_utc_exact(void **state)
{
    (void)state;
    char buf[1024];
    format_with_tz("UTC0", buf, sizeof(buf), "Download started for content CEN00002.2");
    assert_string_equal(buf, "<![LOG[Download started for content CEN00002.2]LOG]!>"
                             "<time=\"12:34:56.789+000\" date=\"07-04-2026\" "
                             "component=\"ContentAccess\" context=\"\" type=\"1\" "
                             "thread=\"4242\" file=\"download.c:42\">\n");
}

static void test_bias_west_is_positive(void **state)
{
    (void)state;
    char buf[1024];
    /* US Eastern daylight time in July: UTC-4, which Windows writes as bias +240. */
    format_with_tz("EST5EDT,M3.2.0,M11.1.0", buf, sizeof(buf), "x");
    assert_non_null(strstr(buf, "time=\"08:34:56.789+240\""));
}

static void test_bias_east_is_negative(void **state)
{
    (void)state;
    char buf[1024];
    /* UTC+11 (Australian eastern daylight time in January) is bias -660. */
    struct timespec jan = {1767225600 + 12 * 3600, 5000000}; /* 2026-01-01 12:00:00.005 UTC */
    setenv("TZ", "AEST-10AEDT,M10.1.0,M4.1.0/3", 1);
    tzset();
    assert_true(cas_log_format(buf, sizeof(buf), CAS_LOG_EXECMGR, CAS_LOG_K_ERROR, "x.c", 1, &jan,
                               1, "y") > 0);
    assert_non_null(strstr(buf, "time=\"23:00:00.005-660\" date=\"01-01-2026\""));
    assert_non_null(strstr(buf, "component=\"execmgr\""));
    assert_non_null(strstr(buf, "type=\"3\""));
    /* Half-hour zones keep minutes: India is UTC+5:30, bias -330. */
    format_with_tz("IST-5:30", buf, sizeof(buf), "z");
    assert_non_null(strstr(buf, "-330\""));
}

static void test_types(void **state)
{
    (void)state;
    char buf[1024];
    const struct {
        enum cas_log_kind kind;
        const char *type;
    } cases[] = {{CAS_LOG_K_DEBUG, "type=\"1\""},
                 {CAS_LOG_K_VERBOSE, "type=\"1\""},
                 {CAS_LOG_K_INFO, "type=\"1\""},
                 {CAS_LOG_K_WARNING, "type=\"2\""},
                 {CAS_LOG_K_ERROR, "type=\"3\""}};
    setenv("TZ", "UTC0", 1);
    tzset();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(cas_log_format(buf, sizeof(buf), CAS_LOG_DTS, cases[i].kind, "a.c", 1, &when, 1,
                                   "t") > 0);
        assert_non_null(strstr(buf, cases[i].type));
    }
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[1024];
    format_with_tz("UTC0", buf, sizeof(buf), "evil ]LOG]!> inside\nand a newline\r\x01");
    const char *want = "<![LOG[evil ]LOG]!&gt; inside and a newline ?]LOG]!><time=";
    assert_true(strncmp(buf, want, strlen(want)) == 0);
    /* Exactly one terminator and one newline per record. */
    const char *term = strstr(buf, "]LOG]!>");
    assert_non_null(term);
    assert_null(strstr(term + 1, "]LOG]!>"));
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void test_component_names(void **state)
{
    (void)state;
    assert_string_equal(cas_log_file_name(CAS_LOG_CAS), "CAS.log");
    assert_string_equal(cas_log_component_name(CAS_LOG_CAS), "ContentAccess");
    assert_string_equal(cas_log_file_name(CAS_LOG_CTM), "ContentTransferManager.log");
    assert_string_equal(cas_log_file_name(CAS_LOG_DTS), "DataTransferService.log");
    assert_string_equal(cas_log_file_name(CAS_LOG_EXECMGR), "execmgr.log");
    assert_string_equal(cas_log_file_name(CAS_LOG_POLICY), "PolicyAgent.log");
    assert_string_equal(cas_log_component_name(CAS_LOG_POLICY), "PolicyAgent");
}

static char *slurp(const char *dir, const char *name)
{
    char *path = cas_path_join(dir, name), *buf = NULL;
    size_t len = 0;
    if (cas_fs_read_file(path, 1 << 24, &buf, &len) != CAS_OK)
        buf = NULL;
    free(path);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_levels_filter(void **state)
{
    (void)state;
    char dir[] = "/tmp/cas-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int level = 0; level <= 3; level++) {
        for (int debug = 0; debug <= 1; debug++) {
            struct cas_log_settings s = {dir, level, debug, 1000000, 1, 0};
            assert_int_equal(cas_log_init(&s), CAS_OK);
            cas_log_debug(CAS_LOG_CAS, "d");
            cas_log_verbose(CAS_LOG_CAS, "v");
            cas_log_info(CAS_LOG_CAS, "i");
            cas_log_warn(CAS_LOG_CAS, "w");
            cas_log_error(CAS_LOG_CAS, "e");
            char *text = slurp(dir, "CAS.log");
            /* level 0: v i w e; 1: i w e; 2: w e; 3: e; debug adds d whatever the level. */
            int expect = (4 - level) + debug;
            assert_int_equal(count_lines(text), expect);
            assert_int_equal(strstr(text, "<![LOG[d]") != NULL, debug);
            assert_int_equal(strstr(text, "<![LOG[v]") != NULL, level == 0);
            assert_int_equal(strstr(text, "<![LOG[i]") != NULL, level <= 1);
            assert_int_equal(strstr(text, "<![LOG[w]") != NULL, level <= 2);
            assert_non_null(strstr(text, "<![LOG[e]"));
            free(text);
            char *path = cas_path_join(dir, "CAS.log");
            unlink(path);
            free(path);
        }
    }
    cas_log_shutdown();
    cas_fs_remove_tree(dir);
}

static void test_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/cas-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct cas_log_settings s = {dir, 1, 0, 10000, 2, 0};
    assert_int_equal(cas_log_init(&s), CAS_OK);
    /* Each record is ~190 bytes: 200 records make ~38 KB, so three rotations happen. */
    for (int i = 0; i < 200; i++)
        cas_log_info(CAS_LOG_EXECMGR, "record %03d padded to make the line longer ........", i);
    char *cur = slurp(dir, "execmgr.log");
    char *lo = slurp(dir, "execmgr.lo_");
    char *lo1 = slurp(dir, "execmgr.lo_.1");
    char *lo2 = slurp(dir, "execmgr.lo_.2");
    assert_non_null(cur);
    assert_non_null(lo);
    assert_non_null(lo1);
    assert_null(lo2); /* log_max_history 2: two older files kept */
    assert_true(strlen(cur) <= 10000);
    assert_true(strlen(lo) <= 10000);
    /* The newest record is in the current file; the rotated file holds the ones just before. */
    assert_non_null(strstr(cur, "record 199"));
    assert_null(strstr(lo, "record 199"));
    /* Every file holds whole records only. */
    assert_int_equal(cur[strlen(cur) - 1], '\n');
    assert_true(strncmp(lo, "<![LOG[", 7) == 0);
    free(cur);
    free(lo);
    free(lo1);
    cas_log_shutdown();
    cas_fs_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_utc_exact),
        cmocka_unit_test(test_bias_west_is_positive),
        cmocka_unit_test(test_bias_east_is_negative),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_component_names),
        cmocka_unit_test(test_levels_filter),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
