/* cas_json_parse: strict JSON on top of cJSON; cas_json_is_int. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

static cas_hr parse_str(const char *text, int depth, cJSON **out)
{
    return cas_json_parse(text, strlen(text), depth, "doc", out);
}

/* Assert that text is refused with CAS_E_INVALID_DATA and the detail contains `needle`. */
static void assert_refused(const char *text, size_t len, int depth, const char *needle)
{
    cJSON *root = (cJSON *)0x1;
    cas_hr hr = cas_json_parse(text, len, depth, "doc", &root);
    if (hr != CAS_E_INVALID_DATA)
        fail_msg("expected refusal for '%.*s', got 0x%08X", (int)len, text, (unsigned)hr);
    assert_null(root);
    if (!strstr(cas_err_detail(), needle))
        fail_msg("detail '%s' lacks '%s'", cas_err_detail(), needle);
    assert_non_null(strstr(cas_err_detail(), "doc"));
}

static void test_parses_valid_document(void **state)
{
    (void)state;
    cJSON *root = NULL;
    const char *text =
        " {\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\\"y\"], \"b\": {\"c\": \"\xc3\xa9\"}} \n";
    assert_int_equal(parse_str(text, 8, &root), CAS_OK);
    assert_non_null(root);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "a");
    assert_int_equal(cJSON_GetArraySize(a), 5);
    assert_true(cas_json_is_int(cJSON_GetArrayItem(a, 0), 1, 1));
    assert_string_equal(cJSON_GetArrayItem(a, 4)->valuestring, "x\xc3\xa9\"y");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "b"), "c")
            ->valuestring,
        "\xc3\xa9");
    cJSON_Delete(root);
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    assert_refused("{} x", 4, 8, "byte 3");
    assert_refused("{}{}", 4, 8, "byte 2");
    assert_refused("[1,]", 4, 8, "invalid JSON");
}

static void test_empty_and_malformed(void **state)
{
    (void)state;
    assert_refused("", 0, 8, "empty");
    assert_refused("   ", 3, 8, "invalid JSON");
    assert_refused("{\"a\":", 5, 8, "invalid JSON");
    assert_refused("{\"a\":\"b", 7, 8, "unterminated string");
    assert_refused("[1 2]", 5, 8, "invalid JSON at byte 3");
}

static void test_nul_byte(void **state)
{
    (void)state;
    assert_refused("{\"a\":\"b\0c\"}", 11, 8, "NUL byte at byte 7");
    assert_refused("{}\0", 3, 8, "NUL byte at byte 2");
    /* An escaped NUL would truncate the C string cJSON hands back. */
    assert_refused("{\"a\\u0000b\":1}", 14, 8, "\\u0000");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    assert_refused("[\"\xff\"]", 4, 8, "invalid UTF-8 at byte 2");
    assert_refused("[\"\xc0\xaf\"]", 5, 8, "invalid UTF-8");         /* overlong '/' */
    assert_refused("[\"\xe0\x80\xaf\"]", 6, 8, "invalid UTF-8");     /* overlong, 3 bytes */
    assert_refused("[\"\xf0\x80\x80\xaf\"]", 7, 8, "invalid UTF-8"); /* overlong, 4 bytes */
    assert_refused("[\"\xed\xa0\x80\"]", 6, 8, "invalid UTF-8");     /* U+D800 */
    assert_refused("[\"\xf4\x90\x80\x80\"]", 7, 8, "invalid UTF-8"); /* U+110000 */
    assert_refused("[\"\xc3\"]", 4, 8, "invalid UTF-8");             /* truncated */
    assert_refused("[\"\xe2\x82", 5, 8, "invalid UTF-8");            /* truncated at end */

    cJSON *root = NULL;
    /* The largest code point and the edges around the surrogates are fine. */
    assert_int_equal(parse_str("[\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"]", 8, &root), CAS_OK);
    cJSON_Delete(root);
}

static void test_control_characters(void **state)
{
    (void)state;
    assert_refused("[\"a\tb\"]", 7, 8, "control character");
    assert_refused("[1,\x0b"
                   "2]",
                   5, 8, "control character");
}

static void test_number_syntax(void **state)
{
    (void)state;
    assert_refused("[01]", 4, 8, "invalid number at byte 1");
    assert_refused("[1.]", 4, 8, "invalid number");
    assert_refused("[-]", 3, 8, "invalid number");
    assert_refused("[1e]", 4, 8, "invalid number");
    assert_refused("[1-2]", 5, 8, "invalid number");

    cJSON *root = NULL;
    assert_int_equal(parse_str("[0, -0, 0.5, 1E+2, 12e-1]", 8, &root), CAS_OK);
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 3), 100, 100));
    cJSON_Delete(root);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    assert_refused("{\"a\":1,\"b\":2,\"a\":3}", 19, 8, "duplicate key \"a\"");
    /* Nested objects, and objects inside arrays, are checked too. */
    assert_refused("{\"x\":[{\"k\":1,\"k\":1}]}", 21, 8, "duplicate key \"k\"");

    cJSON *root = NULL;
    /* The same key in sibling objects, and keys differing only in case, are fine. */
    assert_int_equal(parse_str("[{\"k\":1},{\"k\":2,\"K\":3}]", 8, &root), CAS_OK);
    cJSON_Delete(root);
}

static void test_depth_limit(void **state)
{
    (void)state;
    cJSON *root = NULL;
    assert_int_equal(parse_str("[[[{}]]]", 4, &root), CAS_OK);
    cJSON_Delete(root);
    assert_refused("[[[{}]]]", 8, 3, "nesting deeper than 3 levels at byte 3");
    /* Brackets inside strings do not count. */
    assert_int_equal(parse_str("[\"[[[[[[\\\"[[[[\"]", 1, &root), CAS_OK);
    cJSON_Delete(root);

    /* Far deeper than cJSON's own recursion could take. */
    size_t n = 100000;
    char *deep = malloc(2 * n);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_refused(deep, 2 * n, 16, "nesting deeper than 16");
    free(deep);
}

static void test_is_int(void **state)
{
    (void)state;
    cJSON *root = NULL;
    assert_int_equal(
        parse_str("[5, 1.5, \"5\", 9007199254740991, 9007199254740992, -9007199254740991, 1e400, "
                  "-3, 2.0]",
                  8, &root),
        CAS_OK);
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 0), 0, 10));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 0), 6, 10));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 0), 0, 4));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 1), 0, 10));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 2), 0, 10));
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 3), 0, INT64_MAX));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 4), 0, INT64_MAX));
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 5), INT64_MIN, 0));
    assert_false(cas_json_is_int(cJSON_GetArrayItem(root, 6), INT64_MIN, INT64_MAX));
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 7), -3, -3));
    assert_true(cas_json_is_int(cJSON_GetArrayItem(root, 8), 2, 2));
    assert_false(cas_json_is_int(NULL, 0, 1));
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_valid_document), cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_empty_and_malformed),   cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_invalid_utf8),          cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_number_syntax),         cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_depth_limit),           cmocka_unit_test(test_is_int),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
