/* Package path rules, URL encoding of package paths, and identifier formats. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/path.h"

static void expect_ok(const char *p)
{
    cas_hr hr = cas_path_check(p, strlen(p));
    if (hr != CAS_OK)
        fail_msg("'%s' refused: %s", p, cas_err_detail());
}

/* Refused with CAS_E_BAD_NAME and a detail that mentions `why`. */
static void expect_bad_len(const char *p, size_t len, const char *why)
{
    cas_err_clear();
    cas_hr hr = cas_path_check(p, len);
    if (hr != CAS_E_BAD_NAME)
        fail_msg("'%.*s' (len %zu) gave 0x%08X, expected CAS_E_BAD_NAME", (int)len, p, len, hr);
    if (!strstr(cas_err_detail(), why))
        fail_msg("detail '%s' does not mention '%s'", cas_err_detail(), why);
}

static void expect_bad(const char *p, const char *why)
{
    expect_bad_len(p, strlen(p), why);
}

static void test_path_ok_simple(void **state)
{
    (void)state;
    expect_ok("a");
}

static void test_path_ok_nested(void **state)
{
    (void)state;
    expect_ok("a/b.txt");
}

static void test_path_ok_spaces(void **state)
{
    (void)state;
    expect_ok("dir/sub/file with space");
}

static void test_path_ok_utf8(void **state)
{
    (void)state;
    expect_ok("ünïcödé");
}

static void test_path_ok_dots_inside_name(void **state)
{
    (void)state;
    expect_ok("a..b");
    expect_ok("...");
    expect_ok("a/..b/c..");
}

static void test_path_ok_hidden(void **state)
{
    (void)state;
    expect_ok(".hidden");
    expect_ok("dir/.hidden/x");
}

static void test_path_ok_leading_dash_and_symbols(void **state)
{
    (void)state;
    expect_ok("-rf");
    expect_ok("a:b=c,d;e+f&g%h#i?j");
    expect_ok("tab\there");
}

static void test_path_refuses_empty(void **state)
{
    (void)state;
    expect_bad("", "empty");
    assert_int_equal(cas_path_check(NULL, 0), CAS_E_BAD_NAME);
}

static void test_path_refuses_absolute(void **state)
{
    (void)state;
    expect_bad("/etc/x", "absolute");
    expect_bad("/", "absolute");
}

static void test_path_refuses_dotdot_first(void **state)
{
    (void)state;
    expect_bad("../escape", "'..'");
}

static void test_path_refuses_dotdot_inside(void **state)
{
    (void)state;
    expect_bad("a/../b", "'..'");
}

static void test_path_refuses_dotdot_last(void **state)
{
    (void)state;
    expect_bad("a/..", "'..'");
}

static void test_path_refuses_dot_inside(void **state)
{
    (void)state;
    expect_bad("a/./b", "'.'");
}

static void test_path_refuses_dot_first(void **state)
{
    (void)state;
    expect_bad("./a", "'.'");
}

static void test_path_refuses_dot_alone(void **state)
{
    (void)state;
    expect_bad(".", "'.'");
}

static void test_path_refuses_dotdot_alone(void **state)
{
    (void)state;
    expect_bad("..", "'..'");
}

static void test_path_refuses_double_slash(void **state)
{
    (void)state;
    expect_bad("a//b", "empty segment");
}

static void test_path_refuses_trailing_slash(void **state)
{
    (void)state;
    expect_bad("a/", "empty segment");
}

static void test_path_refuses_backslash(void **state)
{
    (void)state;
    expect_bad("a\\b", "backslash");
    expect_bad("..\\x", "backslash");
}

static void test_path_refuses_cr(void **state)
{
    (void)state;
    expect_bad("a\rb", "carriage return");
}

static void test_path_refuses_lf(void **state)
{
    (void)state;
    expect_bad("a\nb", "newline");
}

static void test_path_refuses_embedded_nul(void **state)
{
    (void)state;
    expect_bad_len("a\0b", 3, "NUL");
    expect_bad_len("a\0", 2, "NUL");
    /* len decides what is checked: the same bytes with len 1 are just "a" */
    assert_int_equal(cas_path_check("a\0b", 1), CAS_OK);
}

static void test_path_segment_length_limit(void **state)
{
    (void)state;
    char seg[CAS_PATH_SEG_MAX + 2];
    memset(seg, 'x', sizeof(seg) - 1);
    seg[sizeof(seg) - 1] = '\0'; /* 256 bytes */
    expect_bad(seg, "segment longer");

    char path[600];
    snprintf(path, sizeof(path), "dir/%s/file", seg);
    expect_bad(path, "segment longer");

    seg[CAS_PATH_SEG_MAX] = '\0'; /* 255 bytes: allowed */
    expect_ok(seg);
    snprintf(path, sizeof(path), "dir/%s", seg);
    expect_ok(path);
}

static void test_path_total_length_limit(void **state)
{
    (void)state;
    /* "aaaa/aaaa/..." of exactly CAS_PATH_MAX bytes is allowed, one more byte is not */
    char path[CAS_PATH_MAX + 2];
    for (size_t i = 0; i < CAS_PATH_MAX; i++)
        path[i] = (i % 5 == 4) ? '/' : 'a';
    path[CAS_PATH_MAX] = '\0';
    if (path[CAS_PATH_MAX - 1] == '/')
        path[CAS_PATH_MAX - 1] = 'a';
    expect_ok(path);
    path[CAS_PATH_MAX] = 'a';
    path[CAS_PATH_MAX + 1] = '\0';
    expect_bad(path, "longer than 4096");
}

/* ---- URL encoding ---- */

static void expect_url(const char *in, const char *want)
{
    char *got = cas_path_url_encode(in);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_url_space_and_percent(void **state)
{
    (void)state;
    expect_url("a b/c%d", "a%20b/c%25d");
}

static void test_url_utf8_upper_case_escapes(void **state)
{
    (void)state;
    expect_url("ü", "%C3%BC");
    expect_url("dir/naïve.txt", "dir/na%C3%AFve.txt");
}

static void test_url_unreserved_unchanged(void **state)
{
    (void)state;
    expect_url("a~b-c_d.e", "a~b-c_d.e");
    expect_url("AZaz09/x", "AZaz09/x");
}

static void test_url_reserved_and_others_encoded(void **state)
{
    (void)state;
    expect_url("a?b#c&d=e+f", "a%3Fb%23c%26d%3De%2Bf");
    expect_url("x:y;z,@!$'()*[]", "x%3Ay%3Bz%2C%40%21%24%27%28%29%2A%5B%5D");
    expect_url("\"<>^`{|}", "%22%3C%3E%5E%60%7B%7C%7D");
    expect_url("tab\there", "tab%09here");
    expect_url("\x7f", "%7F");
    expect_url("", "");
}

/* ---- identifiers ---- */

static void test_id_package(void **state)
{
    (void)state;
    assert_true(cas_id_is_package("CEN00002"));
    assert_true(cas_id_is_package("A1B0FFFF"));
    assert_true(cas_id_is_package("0000ABCD"));
    assert_false(cas_id_is_package("cen00002")); /* lower-case site */
    assert_false(cas_id_is_package("CEN0002"));  /* 4 digits */
    assert_false(cas_id_is_package("CEN000002"));
    assert_false(cas_id_is_package("CEN0000G")); /* not hex */
    assert_false(cas_id_is_package("CEN0000a")); /* lower-case hex */
    assert_false(cas_id_is_package("CEN00002.2"));
    assert_false(cas_id_is_package(""));
    assert_false(cas_id_is_package(NULL));
}

static void test_id_content(void **state)
{
    (void)state;
    assert_true(cas_id_is_content("CEN00002.2"));
    assert_true(cas_id_is_content("CEN0005E.1"));
    assert_true(cas_id_is_content("CEN00002.10"));
    assert_true(cas_id_is_content("CEN00002.18446744073709551615")); /* UINT64_MAX */
    assert_false(cas_id_is_content("CEN00002.0"));
    assert_false(cas_id_is_content("CEN00002.02"));
    assert_false(cas_id_is_content("CEN00002."));
    assert_false(cas_id_is_content("CEN00002"));
    assert_false(cas_id_is_content("CEN00002.-1"));
    assert_false(cas_id_is_content("CEN00002.+1"));
    assert_false(cas_id_is_content("CEN00002.1a"));
    assert_false(cas_id_is_content("CEN00002.1 "));
    assert_false(cas_id_is_content("CEN00002.18446744073709551616")); /* UINT64_MAX + 1 */
    assert_false(cas_id_is_content("cen00002.2"));
    assert_false(cas_id_is_content("CEN0002.2"));
    assert_false(cas_id_is_content(NULL));
}

static void test_id_site(void **state)
{
    (void)state;
    assert_true(cas_id_is_site("CEN"));
    assert_true(cas_id_is_site("A1B"));
    assert_true(cas_id_is_site("000"));
    assert_false(cas_id_is_site("ce"));
    assert_false(cas_id_is_site("cen"));
    assert_false(cas_id_is_site("CENX"));
    assert_false(cas_id_is_site("CE-"));
    assert_false(cas_id_is_site(""));
    assert_false(cas_id_is_site(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_ok_simple),
        cmocka_unit_test(test_path_ok_nested),
        cmocka_unit_test(test_path_ok_spaces),
        cmocka_unit_test(test_path_ok_utf8),
        cmocka_unit_test(test_path_ok_dots_inside_name),
        cmocka_unit_test(test_path_ok_hidden),
        cmocka_unit_test(test_path_ok_leading_dash_and_symbols),
        cmocka_unit_test(test_path_refuses_empty),
        cmocka_unit_test(test_path_refuses_absolute),
        cmocka_unit_test(test_path_refuses_dotdot_first),
        cmocka_unit_test(test_path_refuses_dotdot_inside),
        cmocka_unit_test(test_path_refuses_dotdot_last),
        cmocka_unit_test(test_path_refuses_dot_inside),
        cmocka_unit_test(test_path_refuses_dot_first),
        cmocka_unit_test(test_path_refuses_dot_alone),
        cmocka_unit_test(test_path_refuses_dotdot_alone),
        cmocka_unit_test(test_path_refuses_double_slash),
        cmocka_unit_test(test_path_refuses_trailing_slash),
        cmocka_unit_test(test_path_refuses_backslash),
        cmocka_unit_test(test_path_refuses_cr),
        cmocka_unit_test(test_path_refuses_lf),
        cmocka_unit_test(test_path_refuses_embedded_nul),
        cmocka_unit_test(test_path_segment_length_limit),
        cmocka_unit_test(test_path_total_length_limit),
        cmocka_unit_test(test_url_space_and_percent),
        cmocka_unit_test(test_url_utf8_upper_case_escapes),
        cmocka_unit_test(test_url_unreserved_unchanged),
        cmocka_unit_test(test_url_reserved_and_others_encoded),
        cmocka_unit_test(test_id_package),
        cmocka_unit_test(test_id_content),
        cmocka_unit_test(test_id_site),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
