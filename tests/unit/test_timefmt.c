/* RFC 3339 timestamps and the injectable clock. Expected values from `date -u -d TEXT +%s`. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/timefmt.h"

static void expect_time(const char *text, long long want)
{
    time_t t = 0;
    cas_hr hr = cas_time_parse(text, &t);
    if (hr != CAS_OK)
        fail_msg("'%s' refused: %s", text, cas_err_detail());
    assert_int_equal((long long)t, want);
}

static void expect_refused(const char *text)
{
    time_t t = 12345;
    cas_hr hr = cas_time_parse(text, &t);
    if (hr != CAS_E_INVALID_DATA)
        fail_msg("'%s' gave 0x%08X, expected CAS_E_INVALID_DATA", text ? text : "(null)", hr);
    assert_int_equal((long long)t, 12345); /* untouched */
}

static void test_parse_utc(void **state)
{
    (void)state;
    expect_time("2026-11-23T06:00:00Z", 1795413600LL);
    expect_time("2000-01-01T00:00:00Z", 946684800LL);
    expect_time("2024-02-29T12:00:00Z", 1709208000LL);
}

static void test_parse_range_ends(void **state)
{
    (void)state;
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("9999-12-31T23:59:59Z", 253402300799LL);
}

static void test_parse_positive_offset(void **state)
{
    (void)state;
    expect_time("2026-11-23T06:00:00+01:00", 1795410000LL);
    expect_time("2026-11-23T06:00:00+00:00", 1795413600LL);
}

static void test_parse_negative_offset(void **state)
{
    (void)state;
    expect_time("2026-11-23T06:00:00-04:30", 1795429800LL);
    expect_time("2026-11-23T06:00:00-00:00", 1795413600LL);
}

static void test_parse_fraction_ignored(void **state)
{
    (void)state;
    expect_time("2026-11-23T06:00:00.5Z", 1795413600LL);
    expect_time("2026-11-23T06:00:00.999999999Z", 1795413600LL);
    expect_time("2026-11-23T06:00:00.123+01:00", 1795410000LL);
}

static void test_parse_leap_second(void **state)
{
    (void)state;
    /* RFC 3339 allows second 60; it reads as the first second of the next minute */
    expect_time("2016-12-31T23:59:60Z", 1483228800LL);
}

static void test_parse_rejects_bad_month(void **state)
{
    (void)state;
    expect_refused("2026-13-01T00:00:00Z");
    expect_refused("2026-00-01T00:00:00Z");
}

static void test_parse_rejects_bad_day(void **state)
{
    (void)state;
    expect_refused("2026-11-31T00:00:00Z");
    expect_refused("2026-02-29T00:00:00Z"); /* not a leap year */
    expect_refused("2100-02-29T00:00:00Z"); /* century, not a leap year */
    expect_refused("2026-11-00T00:00:00Z");
}

static void test_parse_rejects_bad_clock(void **state)
{
    (void)state;
    expect_refused("2026-11-23T24:00:00Z");
    expect_refused("2026-11-23T06:60:00Z");
    expect_refused("2026-11-23T06:00:61Z");
}

static void test_parse_rejects_space_separator(void **state)
{
    (void)state;
    expect_refused("2026-11-23 06:00:00Z");
}

static void test_parse_rejects_empty(void **state)
{
    (void)state;
    expect_refused("");
    expect_refused(NULL);
}

static void test_parse_rejects_missing_zone(void **state)
{
    (void)state;
    expect_refused("2026-11-23T06:00:00");
    expect_refused("2026-11-23");
}

static void test_parse_rejects_trailing_garbage(void **state)
{
    (void)state;
    expect_refused("2026-11-23T06:00:00Zx");
    expect_refused("2026-11-23T06:00:00Z ");
    expect_refused("2026-11-23T06:00:00+01:00Z");
    expect_refused("2026-11-23T06:00:00+01:0000");
}

static void test_parse_rejects_bad_offset(void **state)
{
    (void)state;
    expect_refused("2026-11-23T06:00:00+0100");
    expect_refused("2026-11-23T06:00:00+1:00");
    expect_refused("2026-11-23T06:00:00+24:00");
    expect_refused("2026-11-23T06:00:00+01:60");
}

static void test_parse_rejects_bad_fraction(void **state)
{
    (void)state;
    expect_refused("2026-11-23T06:00:00.Z");
    expect_refused("2026-11-23T06:00:00,5Z");
}

static void test_parse_rejects_short_fields(void **state)
{
    (void)state;
    expect_refused("2026-1-23T06:00:00Z");
    expect_refused("26-11-23T06:00:00Z");
    expect_refused("2026-11-23T6:00:00Z");
    expect_refused("+2026-11-23T06:00:00Z");
}

static void test_parse_rejects_out_of_range(void **state)
{
    (void)state;
    expect_refused("1969-12-31T23:59:59Z");
    expect_refused("1970-01-01T00:00:00+01:00"); /* 1969 in UTC */
    expect_refused("0000-01-01T00:00:00Z");
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    cas_time_format(1795413600, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-23T06:00:00Z");
    cas_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    cas_time_format(253402300799LL, buf, 21); /* the documented minimum size */
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
}

static void test_format_parse_round_trip(void **state)
{
    (void)state;
    const time_t samples[] = {0,          1,          951782400 /* 2000-02-29 */,
                              1795413600, 1795429799, 253402300799LL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char buf[32];
        time_t back = -1;
        cas_time_format(samples[i], buf, sizeof(buf));
        assert_int_equal(strlen(buf), 20);
        assert_int_equal(cas_time_parse(buf, &back), CAS_OK);
        assert_int_equal((long long)back, (long long)samples[i]);
    }
    /* an offset timestamp formats back in UTC */
    time_t t = 0;
    char buf[32];
    assert_int_equal(cas_time_parse("2026-11-23T06:00:00-04:30", &t), CAS_OK);
    cas_time_format(t, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-23T10:30:00Z");
}

static time_t fixed_clock(void)
{
    return 1795413600;
}

static void test_injected_clock(void **state)
{
    (void)state;
    time_t before = time(NULL);
    time_t real = cas_clock_now();
    assert_true(real >= before && real <= time(NULL));

    cas_clock_set(fixed_clock);
    assert_int_equal((long long)cas_clock_now(), 1795413600LL);
    assert_int_equal((long long)cas_clock_now(), 1795413600LL);

    cas_clock_set(NULL);
    before = time(NULL);
    real = cas_clock_now();
    assert_true(real >= before && real <= time(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_utc),
        cmocka_unit_test(test_parse_range_ends),
        cmocka_unit_test(test_parse_positive_offset),
        cmocka_unit_test(test_parse_negative_offset),
        cmocka_unit_test(test_parse_fraction_ignored),
        cmocka_unit_test(test_parse_leap_second),
        cmocka_unit_test(test_parse_rejects_bad_month),
        cmocka_unit_test(test_parse_rejects_bad_day),
        cmocka_unit_test(test_parse_rejects_bad_clock),
        cmocka_unit_test(test_parse_rejects_space_separator),
        cmocka_unit_test(test_parse_rejects_empty),
        cmocka_unit_test(test_parse_rejects_missing_zone),
        cmocka_unit_test(test_parse_rejects_trailing_garbage),
        cmocka_unit_test(test_parse_rejects_bad_offset),
        cmocka_unit_test(test_parse_rejects_bad_fraction),
        cmocka_unit_test(test_parse_rejects_short_fields),
        cmocka_unit_test(test_parse_rejects_out_of_range),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_injected_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
