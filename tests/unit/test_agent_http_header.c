/* The HTTP header helpers the agent runs on a server's answer (agent/http_header.h): the start of
 * a 206 answer's Content-Range, and the If-Range line built from a server's ETag. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "agent/http_header.h"

#define UNTOUCHED 0x5EED5EED5EED5EEDull

static void test_content_range_start(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        uint64_t start;
    } ok[] = {
        {"bytes 100-199/1000", 100},
        {"bytes 0-0/1", 0},
        {"bytes 0-99/*", 0},
        {"bytes  7-9/10", 7},
        {"bytes 18446744073709551615-18446744073709551615/*", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t start = UNTOUCHED;
        if (!cas_http_content_range_start(ok[i].value, &start))
            fail_msg("refused '%s'", ok[i].value);
        if (start != ok[i].start)
            fail_msg("'%s': start %llu, expected %llu", ok[i].value, (unsigned long long)start,
                     (unsigned long long)ok[i].start);
    }
}

/* Anything but "bytes N-" leaves *start alone: a negative number is not 2^64 - 1, and a number
 * past 2^64 - 1 is not clamped to it. */
static void test_content_range_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "bytes",
        "bytes ",
        "bytes -1-5/10",
        "bytes +1-5/10",
        "bytes 18446744073709551616-18446744073709551617/*",
        "bytes 99999999999999999999999-1/*",
        "bytes */1000",
        "bytes 100",
        "bytes 100/1000",
        "bytes x-1/2",
        "items 1-2/3",
        "Bytes 1-2/3x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t start = UNTOUCHED;
        if (cas_http_content_range_start(bad[i], &start))
            fail_msg("accepted '%s' (start %llu)", bad[i], (unsigned long long)start);
        if (start != UNTOUCHED)
            fail_msg("'%s' was refused but changed *start", bad[i]);
    }
    uint64_t start = UNTOUCHED;
    assert_int_equal(cas_http_content_range_start(NULL, &start), 0);
    assert_true(start == UNTOUCHED);
}

static void test_header_line(void **state)
{
    (void)state;
    char *line = cas_http_header_line("If-Range", "\"abc-123\"");
    assert_non_null(line);
    assert_string_equal(line, "If-Range: \"abc-123\"");
    free(line);
    assert_null(cas_http_header_line("If-Range", "\"a\"\r\nX-Evil: 1"));
    assert_null(cas_http_header_line("If-Range", "a\nb"));
    assert_null(cas_http_header_line("If-Range", "a\r"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_range_start),
        cmocka_unit_test(test_content_range_refused),
        cmocka_unit_test(test_header_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
