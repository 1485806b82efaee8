/* The agent configuration: defaults, every key's type and range, unknown keys as warnings, and
 * the file rules (a missing default file is fine, a missing named one is not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"

static char tmpdir[64];
static char pathbuf[256];

static const char *tmp_file(const char *name)
{
    snprintf(pathbuf, sizeof(pathbuf), "%s/%s", tmpdir, name);
    return pathbuf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tmp_file("agent.json"));
    unlink(tmp_file("bad.json"));
    return rmdir(tmpdir);
}

static cas_hr load_text(const char *text, struct cas_config *cfg)
{
    return cas_config_load_buf(text, strlen(text), cfg);
}

static void assert_defaults(const struct cas_config *c)
{
    assert_null(c->site);
    assert_null(c->management_point);
    assert_string_equal(c->trusted_keys_dir, "/etc/cas-agent/trusted-keys");
    assert_string_equal(c->cache_dir, "/var/cache/cas-agent");
    assert_string_equal(c->state_dir, "/var/lib/cas-agent");
    assert_string_equal(c->log_dir, "/var/log/cas-agent");
    assert_int_equal(c->cache_size_mb, 5120);
    assert_int_equal(c->cache_min_retention_minutes, 1440);
    assert_int_equal(c->log_level, 1);
    assert_int_equal(c->debug_logging, 0);
    assert_int_equal(c->log_max_size, 250000);
    assert_int_equal(c->log_max_history, 1);
    assert_int_equal(c->require_signed_policy, 1);
    assert_true(c->policy_poll_minutes == 60.0);
    assert_int_equal(c->n_retry_codes, 1);
    assert_int_equal(c->retry_codes[0], 1618);
    assert_true(c->retry_interval_minutes == 10.0);
    assert_int_equal(c->retry_count, 3);
    assert_int_equal(c->max_parallel_transfers, 8);
    assert_int_equal(c->connect_timeout_seconds, 10);
    assert_int_equal(c->low_speed_bytes_per_second, 1000);
    assert_int_equal(c->low_speed_seconds, 60);
    assert_int_equal(c->transfer_deadline_minutes, 240);
    assert_int_equal(c->max_download_kbps, 0);
    assert_int_equal(c->require_https, 0);
    assert_int_equal(c->cache_dedup, 1);
    assert_null(c->ca_file);
    assert_null(c->tls_client_cert);
    assert_null(c->tls_client_key);
    assert_null(c->tls_pinned_public_key);
    assert_null(c->proxy);
    assert_null(c->warnings);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cas_config c;
    assert_int_equal(cas_config_defaults(&c), CAS_OK);
    assert_defaults(&c);
    cas_config_free(&c);
    assert_null(c.cache_dir);

    /* An empty object changes nothing. */
    assert_int_equal(load_text(" { } ", &c), CAS_OK);
    assert_defaults(&c);
    cas_config_free(&c);
}

static const char full_config[] =
    "{\n"
    "  \"site\": \"CEN\",\n"
    "  \"management_point\": \"https://mp.example/policy/CEN.json\",\n"
    "  \"trusted_keys_dir\": \"/srv/keys\",\n"
    "  \"cache_dir\": \"cache\",\n"
    "  \"state_dir\": \"/srv/state\",\n"
    "  \"log_dir\": \"/srv/log\",\n"
    "  \"cache_size_mb\": 16777216,\n"
    "  \"cache_min_retention_minutes\": 0,\n"
    "  \"log_level\": 3,\n"
    "  \"debug_logging\": true,\n"
    "  \"log_max_size\": 10000,\n"
    "  \"log_max_history\": 100,\n"
    "  \"require_signed_policy\": false,\n"
    "  \"policy_poll_minutes\": 10080,\n"
    "  \"retry_codes\": [1618, -1, 4294967295, 0],\n"
    "  \"retry_interval_minutes\": 0.25,\n"
    "  \"retry_count\": 1000,\n"
    "  \"max_parallel_transfers\": 64,\n"
    "  \"connect_timeout_seconds\": 600,\n"
    "  \"low_speed_bytes_per_second\": 0,\n"
    "  \"low_speed_seconds\": 3600,\n"
    "  \"transfer_deadline_minutes\": 43200,\n"
    "  \"max_download_kbps\": 2147483647,\n"
    "  \"require_https\": true,\n"
    "  \"cache_dedup\": false,\n"
    "  \"ca_file\": \"/srv/ca.pem\",\n"
    "  \"tls_client_cert\": \"/srv/client.pem\",\n"
    "  \"tls_client_key\": \"/srv/client.key\",\n"
    "  \"tls_pinned_public_key\": \"sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=\",\n"
    "  \"proxy\": \"http://proxy.example:3128\"\n"
    "}\n";

static void assert_full(const struct cas_config *c)
{
    assert_string_equal(c->site, "CEN");
    assert_string_equal(c->management_point, "https://mp.example/policy/CEN.json");
    assert_string_equal(c->trusted_keys_dir, "/srv/keys");
    assert_string_equal(c->cache_dir, "cache");
    assert_string_equal(c->state_dir, "/srv/state");
    assert_string_equal(c->log_dir, "/srv/log");
    assert_int_equal(c->cache_size_mb, 16777216);
    assert_int_equal(c->cache_min_retention_minutes, 0);
    assert_int_equal(c->log_level, 3);
    assert_int_equal(c->debug_logging, 1);
    assert_int_equal(c->log_max_size, 10000);
    assert_int_equal(c->log_max_history, 100);
    assert_int_equal(c->require_signed_policy, 0);
    assert_true(c->policy_poll_minutes == 10080.0);
    assert_int_equal(c->n_retry_codes, 4);
    assert_int_equal(c->retry_codes[0], 1618);
    assert_true(c->retry_codes[1] == -1);
    assert_true(c->retry_codes[2] == 4294967295LL);
    assert_int_equal(c->retry_codes[3], 0);
    assert_true(c->retry_interval_minutes == 0.25);
    assert_int_equal(c->retry_count, 1000);
    assert_int_equal(c->max_parallel_transfers, 64);
    assert_int_equal(c->connect_timeout_seconds, 600);
    assert_int_equal(c->low_speed_bytes_per_second, 0);
    assert_int_equal(c->low_speed_seconds, 3600);
    assert_int_equal(c->transfer_deadline_minutes, 43200);
    assert_int_equal(c->max_download_kbps, 2147483647);
    assert_int_equal(c->require_https, 1);
    assert_int_equal(c->cache_dedup, 0);
    assert_string_equal(c->ca_file, "/srv/ca.pem");
    assert_string_equal(c->tls_client_cert, "/srv/client.pem");
    assert_string_equal(c->tls_client_key, "/srv/client.key");
    assert_string_equal(c->tls_pinned_public_key,
                        "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=");
    assert_string_equal(c->proxy, "http://proxy.example:3128");
    assert_null(c->warnings);
}

static void test_full_file(void **state)
{
    (void)state;
    struct cas_config c;
    write_text(tmp_file("agent.json"), full_config);
    assert_int_equal(cas_config_load(tmp_file("agent.json"), 1, &c), CAS_OK);
    assert_full(&c);
    cas_config_free(&c);

    /* Not named by the user, but present: read all the same. */
    assert_int_equal(cas_config_load(tmp_file("agent.json"), 0, &c), CAS_OK);
    assert_full(&c);
    cas_config_free(&c);

    assert_int_equal(load_text(full_config, &c), CAS_OK);
    assert_full(&c);
    cas_config_free(&c);
}

struct bad {
    const char *key;
    const char *value;
};

/* Each value is refused with CAS_E_BAD_CONFIG, a detail that starts with "<key>:", and leaves
 * the defaults in place. */
static void run_bad(const struct bad *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char text[256];
        struct cas_config c;
        /* A valid key first, to see that nothing of a refused file is kept. */
        const char *first = strcmp(b[i].key, "log_level") ? "\"log_level\": 2" : "\"proxy\": \"p\"";
        snprintf(text, sizeof(text), "{%s, \"%s\": %s}", first, b[i].key, b[i].value);
        cas_hr hr = load_text(text, &c);
        if (hr != CAS_E_BAD_CONFIG)
            fail_msg("%s = %s: expected CAS_E_BAD_CONFIG, got 0x%08X", b[i].key, b[i].value,
                     (unsigned)hr);
        const char *d = cas_err_detail();
        size_t kl = strlen(b[i].key);
        if (strncmp(d, b[i].key, kl) != 0 || d[kl] != ':')
            fail_msg("%s = %s: detail '%s' does not name the key", b[i].key, b[i].value, d);
        assert_defaults(&c);
        cas_config_free(&c);
    }
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const struct bad b[] = {
        {"site", "1"},
        {"site", "[\"CEN\"]"},
        {"management_point", "true"},
        {"trusted_keys_dir", "5"},
        {"trusted_keys_dir", "null"},
        {"cache_dir", "{}"},
        {"cache_dir", "null"},
        {"state_dir", "false"},
        {"log_dir", "[]"},
        {"log_dir", "null"},
        {"cache_size_mb", "\"5120\""},
        {"cache_size_mb", "5120.5"},
        {"cache_min_retention_minutes", "true"},
        {"log_level", "\"1\""},
        {"log_level", "1.5"},
        {"log_level", "null"},
        {"debug_logging", "1"},
        {"debug_logging", "\"true\""},
        {"debug_logging", "null"},
        {"log_max_size", "\"250000\""},
        {"log_max_history", "[1]"},
        {"require_signed_policy", "0"},
        {"require_signed_policy", "\"false\""},
        {"policy_poll_minutes", "\"60\""},
        {"retry_codes", "1618"},
        {"retry_codes", "[\"1618\"]"},
        {"retry_codes", "[1618.5]"},
        {"retry_interval_minutes", "\"10\""},
        {"retry_count", "1.5"},
        {"max_parallel_transfers", "8.5"},
        {"connect_timeout_seconds", "{}"},
        {"low_speed_bytes_per_second", "\"1000\""},
        {"low_speed_seconds", "false"},
        {"transfer_deadline_minutes", "\"240\""},
        {"max_download_kbps", "\"0\""},
        {"require_https", "\"yes\""},
        {"cache_dedup", "1"},
        {"ca_file", "1"},
        {"tls_client_cert", "true"},
        {"tls_client_key", "[]"},
        {"tls_pinned_public_key", "{}"},
        {"proxy", "8080"},
    };
    run_bad(b, sizeof(b) / sizeof(b[0]));
}

static void test_out_of_range(void **state)
{
    (void)state;
    static const struct bad b[] = {
        {"cache_size_mb", "0"},
        {"cache_size_mb", "16777217"},
        {"cache_min_retention_minutes", "-1"},
        {"cache_min_retention_minutes", "10081"},
        {"log_level", "-1"},
        {"log_level", "4"},
        {"log_max_size", "9999"},
        {"log_max_size", "1073741825"},
        {"log_max_history", "-1"},
        {"log_max_history", "101"},
        {"policy_poll_minutes", "0"},
        {"policy_poll_minutes", "10081"},
        {"policy_poll_minutes", "-0.5"},
        {"retry_interval_minutes", "0"},
        {"retry_count", "-1"},
        {"retry_count", "1001"},
        {"retry_codes", "[4294967296]"},
        {"retry_codes", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,"
                        "28,29,30,31,32,33]"},
        {"max_parallel_transfers", "0"},
        {"max_parallel_transfers", "65"},
        {"connect_timeout_seconds", "0"},
        {"connect_timeout_seconds", "601"},
        {"low_speed_bytes_per_second", "-1"},
        {"low_speed_bytes_per_second", "2147483648"},
        {"low_speed_seconds", "0"},
        {"low_speed_seconds", "3601"},
        {"transfer_deadline_minutes", "0"},
        {"transfer_deadline_minutes", "43201"},
        {"max_download_kbps", "-1"},
        {"max_download_kbps", "1e300"},
        /* Strings: empty, bad site codes, bad URLs. */
        {"site", "\"\""},
        {"site", "\"cen\""},
        {"site", "\"CENT\""},
        {"management_point", "\"\""},
        {"management_point", "\"ftp://mp.example/p.json\""},
        {"management_point", "\"http://\""},
        {"management_point", "\"mp.example/p.json\""},
        {"management_point", "\"http://mp.example/a b\""},
        {"trusted_keys_dir", "\"\""},
        {"cache_dir", "\"\""},
        {"state_dir", "\"\""},
        {"log_dir", "\"\""},
        {"ca_file", "\"\""},
        {"proxy", "\"\""},
    };
    run_bad(b, sizeof(b) / sizeof(b[0]));

    struct cas_config c;
    assert_int_equal(load_text("{\"log_level\": 4}", &c), CAS_E_BAD_CONFIG);
    assert_string_equal(cas_err_detail(), "log_level: expected an integer from 0 to 3");
    cas_config_free(&c);
}

static void test_null_unsets_optional_strings(void **state)
{
    (void)state;
    struct cas_config c;
    assert_int_equal(load_text("{\"site\": null, \"management_point\": null, \"ca_file\": null, "
                               "\"tls_client_cert\": null, \"tls_client_key\": null, "
                               "\"tls_pinned_public_key\": null, \"proxy\": null}",
                               &c),
                     CAS_OK);
    assert_defaults(&c);
    cas_config_free(&c);
}

static void test_unknown_keys_warn(void **state)
{
    (void)state;
    struct cas_config c;
    assert_int_equal(load_text("{\"log_levl\": 2, \"log_level\": 2, \"Site\": \"CEN\"}", &c),
                     CAS_OK);
    assert_int_equal(c.log_level, 2);
    assert_null(c.site); /* keys are case-sensitive */
    assert_non_null(c.warnings);
    assert_string_equal(c.warnings, "unknown configuration key 'log_levl' (ignored)\n"
                                    "unknown configuration key 'Site' (ignored)");
    cas_config_free(&c);
    assert_null(c.warnings);

    /* A key with control characters is shown harmlessly, and a long one shortened. */
    char text[512];
    snprintf(text, sizeof(text), "{\"a\\u001b[31mb\": 1, \"%0100d\": 2}", 0);
    assert_int_equal(load_text(text, &c), CAS_OK);
    assert_non_null(c.warnings);
    assert_null(strchr(c.warnings, '\x1b'));
    assert_non_null(strstr(c.warnings, "'a?[31mb'"));
    assert_non_null(strstr(c.warnings, "..."));
    assert_true(strlen(c.warnings) < 200);
    cas_config_free(&c);
}

static void test_malformed(void **state)
{
    (void)state;
    struct cas_config c;
    static const char *const bad[] = {
        "",
        "{",
        "{\"log_level\": 2,}",
        "{\"log_level\": 2} trailing",
        "[]",
        "\"text\"",
        "null",
        "{\"log_level\": 2, \"log_level\": 3}", /* duplicate key */
        "{\"x\": [[[[[[[[[[]]]]]]]]]]}",        /* deeper than 8 */
        "{\"cache_dir\": \"/var/\xff\"}",       /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cas_hr hr = load_text(bad[i], &c);
        if (hr != CAS_E_BAD_CONFIG)
            fail_msg("'%s': expected CAS_E_BAD_CONFIG, got 0x%08X", bad[i], (unsigned)hr);
        assert_non_null(strstr(cas_err_detail(), "configuration"));
        assert_defaults(&c);
        cas_config_free(&c);
    }
    /* A NUL byte inside the buffer. */
    assert_int_equal(cas_config_load_buf("{}\0", 3, &c), CAS_E_BAD_CONFIG);
    cas_config_free(&c);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct cas_config c;

    /* A missing file the user named is an error; the defaults are still there. */
    assert_int_equal(cas_config_load(tmp_file("missing.json"), 1, &c), CAS_E_FILE_MISSING);
    assert_non_null(strstr(cas_err_detail(), "missing.json"));
    assert_defaults(&c);
    cas_config_free(&c);

    /* The default file missing: the defaults apply. */
    assert_int_equal(cas_config_load(tmp_file("missing.json"), 0, &c), CAS_OK);
    assert_defaults(&c);
    cas_config_free(&c);

    /* A bad value in a file: the detail names the file and the key. */
    write_text(tmp_file("bad.json"), "{\"max_parallel_transfers\": 100}");
    assert_int_equal(cas_config_load(tmp_file("bad.json"), 0, &c), CAS_E_BAD_CONFIG);
    assert_non_null(strstr(cas_err_detail(), "bad.json"));
    assert_non_null(strstr(cas_err_detail(), "max_parallel_transfers: expected an integer"));
    assert_defaults(&c);
    cas_config_free(&c);

    /* An unknown key in a file is a warning. */
    write_text(tmp_file("bad.json"), "{\"colour\": \"blue\"}");
    assert_int_equal(cas_config_load(tmp_file("bad.json"), 1, &c), CAS_OK);
    assert_string_equal(c.warnings, "unknown configuration key 'colour' (ignored)");
    cas_config_free(&c);

    /* A file over the size limit. */
    FILE *f = fopen(tmp_file("bad.json"), "w");
    assert_non_null(f);
    fputc('{', f);
    for (size_t i = 0; i < CAS_CONFIG_MAX_BYTES; i++)
        fputc(' ', f);
    fputc('}', f);
    assert_int_equal(fclose(f), 0);
    assert_int_not_equal(cas_config_load(tmp_file("bad.json"), 1, &c), CAS_OK);
    assert_defaults(&c);
    cas_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_null_unsets_optional_strings),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
