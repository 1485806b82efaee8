/* The one error table: every code named and explained, parsing of the forms users type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/error.h"

static void test_every_code_has_name_and_message(void **state)
{
    (void)state;
    unsigned n = 0;
    for (unsigned i = 0; cas_err_at(i) != CAS_OK; i++, n++) {
        cas_hr c = cas_err_at(i);
        assert_true(cas_err_known(c));
        assert_string_not_equal(cas_err_name(c), "UNKNOWN");
        assert_true(strlen(cas_err_message(c)) > 10);
        /* Codes are unique. */
        for (unsigned k = 0; k < i; k++)
            assert_int_not_equal(cas_err_at(k), c);
        /* Failure codes have the severity bit. */
        assert_true(c & 0x80000000u);
    }
    assert_true(n >= 30);
}

static void test_seed_codes(void **state)
{
    (void)state;
    assert_string_equal(cas_err_name(0x80091007u), "CRYPT_E_HASH_VALUE");
    assert_string_equal(cas_err_name(0x80090006u), "NTE_BAD_SIGNATURE");
    assert_string_equal(cas_err_name(0x80070070u), "ERROR_DISK_FULL");
    assert_string_equal(cas_err_name(0x87D01201u), "CCM_E_CACHE_FULL");
    assert_string_equal(cas_err_name(0x80190194u), "HTTP_E_STATUS_NOT_FOUND");
    /* Any HTTP status maps into the HTTP_E_STATUS range. */
    assert_true(cas_err_known(CAS_E_HTTP_BASE + 503));
    assert_non_null(strstr(cas_err_message(CAS_E_HTTP_BASE + 503), "503"));
    assert_false(cas_err_known(0x80001234u));
    assert_string_equal(cas_err_name(0x80001234u), "UNKNOWN");
}

static void test_parse_forms(void **state)
{
    (void)state;
    cas_hr c = 0;
    assert_int_equal(cas_err_parse("0x80091007", &c), 0);
    assert_int_equal(c, 0x80091007u);
    assert_int_equal(cas_err_parse("0X80091007", &c), 0);
    assert_int_equal(c, 0x80091007u);
    assert_int_equal(cas_err_parse("80091007", &c), 0);
    assert_int_equal(c, 0x80091007u);
    assert_int_equal(cas_err_parse("87D01201", &c), 0);
    assert_int_equal(c, 0x87D01201u);
    assert_int_equal(cas_err_parse("2148077575", &c), 0);
    assert_int_equal(c, 0x80091007u);
    assert_int_equal(cas_err_parse("-2146889721", &c), 0);
    assert_int_equal(c, 0x80091007u);
    assert_int_equal(cas_err_parse("", &c), -1);
    assert_int_equal(cas_err_parse("0x", &c), -1);
    assert_int_equal(cas_err_parse("0x1FFFFFFFF", &c), -1);
    assert_int_equal(cas_err_parse("hello", &c), -1);
    assert_int_equal(cas_err_parse("12abc", &c), -1);
}

static void test_fail_detail(void **state)
{
    (void)state;
    cas_err_clear();
    assert_string_equal(cas_err_detail(), "");
    assert_int_equal(cas_fail(CAS_E_BAD_NAME, "path %s: %d", "../x", 7), CAS_E_BAD_NAME);
    assert_string_equal(cas_err_detail(), "path ../x: 7");
    /* Wrapping the detail in itself, as callers do: the reason must survive. */
    cas_fail(CAS_E_BAD_NAME, "line 3: '..' segment");
    assert_int_equal(cas_fail(CAS_E_BAD_NAME, "listing not acceptable: %s", cas_err_detail()),
                     CAS_E_BAD_NAME);
    assert_string_equal(cas_err_detail(), "listing not acceptable: line 3: '..' segment");
}

static void test_errno_map(void **state)
{
    (void)state;
    assert_int_equal(cas_err_from_errno(ENOSPC), CAS_E_DISK_FULL);
    assert_int_equal(cas_err_from_errno(EDQUOT), CAS_E_DISK_FULL);
    assert_int_equal(cas_err_from_errno(EACCES), CAS_E_ACCESSDENIED);
    assert_int_equal(cas_err_from_errno(ENOENT), CAS_E_FILE_MISSING);
    assert_int_equal(cas_err_from_errno(ELOOP), CAS_E_BAD_NAME);
    assert_int_equal(cas_err_from_errno(EIO), CAS_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_name_and_message),
        cmocka_unit_test(test_seed_codes),
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_fail_detail),
        cmocka_unit_test(test_errno_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
