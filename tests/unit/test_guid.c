/* GUIDs: the real client's spelling, {XXXXXXXX-XXXX-4XXX-YXXX-XXXXXXXXXXXX}, upper case. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/guid.h"

static int is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Checks one GUID character by character against the pattern. */
static void check_guid(const char *g)
{
    static const char pattern[] = "{HHHHHHHH-HHHH-4HHH-VHHH-HHHHHHHHHHHH}";
    assert_int_equal(strlen(g), CAS_GUID_LEN);
    assert_int_equal(sizeof(pattern) - 1, CAS_GUID_LEN);
    for (size_t i = 0; i < CAS_GUID_LEN; i++) {
        char p = pattern[i], c = g[i];
        int ok;
        if (p == 'H')
            ok = is_upper_hex(c);
        else if (p == 'V')
            ok = c == '8' || c == '9' || c == 'A' || c == 'B';
        else
            ok = c == p;
        if (!ok)
            fail_msg("'%s': character %zu is '%c', pattern wants '%c'", g, i, c, p);
    }
}

static void test_guid_format(void **state)
{
    (void)state;
    char g[CAS_GUID_LEN + 1];
    memset(g, 'x', sizeof(g));
    cas_guid_new(g);
    check_guid(g);
}

static void test_guid_many_are_valid_and_distinct(void **state)
{
    (void)state;
    enum { N = 256 };
    static char all[N][CAS_GUID_LEN + 1];
    int seen_variant[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        cas_guid_new(all[i]);
        check_guid(all[i]);
        char v = all[i][20];
        seen_variant[v >= 'A' ? v - 'A' + 2 : v - '8']++;
        for (int j = 0; j < i; j++)
            assert_string_not_equal(all[i], all[j]);
    }
    /* the variant nibble keeps two random bits: all four values show up in 256 draws */
    for (int k = 0; k < 4; k++)
        assert_true(seen_variant[k] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guid_format),
        cmocka_unit_test(test_guid_many_are_valid_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
