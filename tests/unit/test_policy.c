/* cas_policy_parse: every field of the policy document, its defaults, and every refusal naming
 * the field at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/policy.h"

#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA1_ABC   "a9993e364706816aba3e25717850c26c9cd0d89d"

#define T_ISSUED  1795413600 /* 2026-11-23T06:00:00Z */
#define T_EXPIRES 1796018400 /* 2026-11-30T06:00:00Z */
#define T_START   1795417200 /* 2026-11-23T07:00:00Z */
#define T_START2  1795422600 /* 2026-11-23T08:30:00Z */

static const char full_policy[] =
    "{\n"
    "  \"schema\": 1,\n"
    "  \"site\": \"CEN\",\n"
    "  \"serial\": 7,\n"
    "  \"issued\": \"2026-11-23T06:00:00Z\",\n"
    "  \"expires\": \"2026-11-30T06:00:00Z\",\n"
    "  \"comment\": \"unknown fields are ignored\",\n"
    "  \"advertisements\": [\n"
    "    {\n"
    "      \"id\": \"CEN20001\",\n"
    "      \"package\": \"CEN00002\",\n"
    "      \"version\": 2,\n"
    "      \"hash\": { \"alg\": \"sha256\", \"value\": \"" SHA256_ABC "\" },\n"
    "      \"size\": 123456,\n"
    "      \"locations\": [ \"http://dp1.example/SMS_DP_SMSPKG$\", \"https://dp2.example/pkg/\" "
    "],\n"
    "      \"program\": {\n"
    "        \"command\": \"bin/install.sh\",\n"
    "        \"args\": [ \"--quiet\", \"\", \"two words\" ],\n"
    "        \"context\": \"System\",\n"
    "        \"max_run_minutes\": 30,\n"
    "        \"success_codes\": [ 0, 3010, -1, 2147483647, -2147483648 ],\n"
    "        \"shell\": \"ignored\"\n"
    "      },\n"
    "      \"mandatory\": true,\n"
    "      \"start\": \"2026-11-23T07:00:00Z\",\n"
    "      \"rerun\": \"never\",\n"
    "      \"persist\": false,\n"
    "      \"x-extra\": { \"nested\": [1, 2, 3] }\n"
    "    },\n"
    "    {\n"
    "      \"id\": \"CEN20002.b_c-d\",\n"
    "      \"package\": \"CEN0000A\",\n"
    "      \"version\": 9007199254740991,\n"
    "      \"hash\": { \"alg\": \"sha1\", \"value\": \"A9993E364706816ABA3E25717850C26C9CD0D89D\" "
    "},\n"
    "      \"size\": 0,\n"
    "      \"locations\": [ \"https://dp2.example\" ],\n"
    "      \"program\": {\n"
    "        \"command\": \"/usr/bin/env\",\n"
    "        \"args\": [],\n"
    "        \"context\": \"user:_svc-deploy9\",\n"
    "        \"max_run_minutes\": 10080,\n"
    "        \"success_codes\": [ 7 ]\n"
    "      },\n"
    "      \"mandatory\": false,\n"
    "      \"start\": \"2026-11-23T09:30:00+01:00\",\n"
    "      \"rerun\": \"always\",\n"
    "      \"persist\": true\n"
    "    }\n"
    "  ]\n"
    "}\n";

static const char minimal_policy[] =
    "{\"schema\":1,\"site\":\"CEN\",\"serial\":7,\"issued\":\"2026-11-23T06:00:00Z\","
    "\"advertisements\":[{\"id\":\"CEN20001\",\"package\":\"CEN00002\",\"version\":2,"
    "\"hash\":{\"alg\":\"sha256\",\"value\":\"" SHA256_ABC "\"},\"size\":123456,"
    "\"locations\":[\"http://dp1.example/SMS_DP_SMSPKG$\"],"
    "\"program\":{\"command\":\"install.sh\"}}]}";

static cas_hr parse_text(const char *text, struct cas_policy *p)
{
    return cas_policy_parse(text, strlen(text), p);
}

/* The detail must begin with the field's path and a colon: it names the field exactly. */
static void assert_detail_names(const char *field)
{
    const char *d = cas_err_detail();
    size_t n = strlen(field);
    if (strncmp(d, field, n) != 0 || d[n] != ':')
        fail_msg("detail '%s' does not name field '%s'", d, field);
}

static void test_full_policy(void **state)
{
    (void)state;
    struct cas_policy p;
    assert_int_equal(parse_text(full_policy, &p), CAS_OK);

    assert_int_equal(p.schema, 1);
    assert_string_equal(p.site, "CEN");
    assert_int_equal(p.serial, 7);
    assert_int_equal(p.issued, T_ISSUED);
    assert_int_equal(p.expires, T_EXPIRES);
    assert_int_equal(p.n_adverts, 2);

    const struct cas_advert *a = &p.adverts[0];
    assert_string_equal(a->id, "CEN20001");
    assert_string_equal(a->package, "CEN00002");
    assert_int_equal(a->version, 2);
    assert_string_equal(a->content_id, "CEN00002.2");
    assert_int_equal(a->alg, CAS_HASH_SHA256);
    assert_string_equal(a->hash, SHA256_ABC);
    assert_int_equal(a->size, 123456);
    assert_int_equal(a->n_locations, 2);
    assert_string_equal(a->locations[0], "http://dp1.example/SMS_DP_SMSPKG$");
    assert_string_equal(a->locations[1], "https://dp2.example/pkg"); /* trailing '/' stripped */
    assert_string_equal(a->program.command, "bin/install.sh");
    assert_int_equal(a->program.argc, 3);
    assert_string_equal(a->program.args[0], "--quiet");
    assert_string_equal(a->program.args[1], "");
    assert_string_equal(a->program.args[2], "two words");
    assert_null(a->program.args[3]);
    assert_string_equal(a->program.context, "System");
    assert_true(a->program.max_run_minutes == 30.0);
    assert_int_equal(a->program.n_success_codes, 5);
    assert_int_equal(a->program.success_codes[0], 0);
    assert_int_equal(a->program.success_codes[1], 3010);
    assert_int_equal(a->program.success_codes[2], -1);
    assert_int_equal(a->program.success_codes[3], INT32_MAX);
    assert_int_equal(a->program.success_codes[4], INT32_MIN);
    assert_true(a->mandatory);
    assert_int_equal(a->start, T_START);
    assert_int_equal(a->rerun, CAS_RERUN_NEVER);
    assert_false(a->persist);

    const struct cas_advert *b = &p.adverts[1];
    assert_string_equal(b->id, "CEN20002.b_c-d");
    assert_string_equal(b->package, "CEN0000A");
    assert_int_equal(b->version, 9007199254740991ull);
    assert_string_equal(b->content_id, "CEN0000A.9007199254740991");
    assert_int_equal(b->alg, CAS_HASH_SHA1);
    assert_string_equal(b->hash, SHA1_ABC); /* stored lower-case */
    assert_int_equal(b->size, 0);
    assert_int_equal(b->n_locations, 1);
    assert_string_equal(b->locations[0], "https://dp2.example");
    assert_string_equal(b->program.command, "/usr/bin/env");
    assert_int_equal(b->program.argc, 0);
    assert_non_null(b->program.args);
    assert_null(b->program.args[0]);
    assert_string_equal(b->program.context, "user:_svc-deploy9");
    assert_true(b->program.max_run_minutes == 10080.0);
    assert_int_equal(b->program.n_success_codes, 1);
    assert_int_equal(b->program.success_codes[0], 7);
    assert_false(b->mandatory);
    assert_int_equal(b->start, T_START2);
    assert_int_equal(b->rerun, CAS_RERUN_ALWAYS);
    assert_true(b->persist);

    cas_policy_free(&p);
    assert_int_equal(p.n_adverts, 0);
    assert_null(p.adverts);
    cas_policy_free(&p); /* freeing twice is harmless */
}

static void test_minimal_policy_defaults(void **state)
{
    (void)state;
    struct cas_policy p;
    assert_int_equal(parse_text(minimal_policy, &p), CAS_OK);
    assert_int_equal(p.expires, 0);
    assert_int_equal(p.n_adverts, 1);
    const struct cas_advert *a = &p.adverts[0];
    assert_string_equal(a->program.command, "install.sh");
    assert_int_equal(a->program.argc, 0);
    assert_non_null(a->program.args);
    assert_null(a->program.args[0]);
    assert_string_equal(a->program.context, "System");
    assert_true(a->program.max_run_minutes == 120.0);
    assert_int_equal(a->program.n_success_codes, 2);
    assert_int_equal(a->program.success_codes[0], 0);
    assert_int_equal(a->program.success_codes[1], 3010);
    assert_false(a->mandatory);
    assert_int_equal(a->start, T_ISSUED);
    assert_int_equal(a->rerun, CAS_RERUN_IF_FAILED);
    assert_false(a->persist);
    assert_false(cas_policy_is_expired(&p, (time_t)1 << 40));
    cas_policy_free(&p);
}

static void test_empty_advertisements(void **state)
{
    (void)state;
    struct cas_policy p;
    assert_int_equal(parse_text("{\"schema\":1,\"site\":\"X9Z\",\"serial\":1,"
                                "\"issued\":\"1970-01-01T00:00:00Z\",\"advertisements\":[]}",
                                &p),
                     CAS_OK);
    assert_string_equal(p.site, "X9Z");
    assert_int_equal(p.issued, 0);
    assert_int_equal(p.n_adverts, 0);
    assert_null(cas_policy_find_advert(&p, "CEN20001"));
    cas_policy_free(&p);
}

/* ---- table-driven refusals: mutate the minimal policy at a path, expect a refusal naming it */

struct mutation {
    const char *path;  /* "advertisements[0].program.command" */
    const char *value; /* JSON text to put there; NULL: remove the member */
    cas_hr code;
    const char *field; /* field the detail must name; NULL: path */
};

/* Walk to the parent of the last path segment. Returns the parent; *key or *index names the
 * last segment (index >= 0 for "[n]"). */
static cJSON *walk(cJSON *root, const char *path, char *key, size_t keysz, int *index)
{
    cJSON *node = root;
    const char *p = path;
    for (;;) {
        char seg[64];
        int idx = -1;
        size_t n = strcspn(p, ".[");
        assert_true(n < sizeof(seg));
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n;
        int last;
        if (n > 0) {
            last = *p == '\0';
            if (last) {
                snprintf(key, keysz, "%s", seg);
                *index = -1;
                return node;
            }
            node = cJSON_GetObjectItemCaseSensitive(node, seg);
            assert_non_null(node);
        }
        if (*p == '[') {
            idx = (int)strtol(p + 1, NULL, 10);
            p = strchr(p, ']') + 1;
            if (*p == '\0') {
                *index = idx;
                key[0] = '\0';
                return node;
            }
            node = cJSON_GetArrayItem(node, idx);
            assert_non_null(node);
        }
        if (*p == '.')
            p++;
    }
}

static char *mutate(const char *base, const char *path, const char *value)
{
    cJSON *root = cJSON_Parse(base);
    assert_non_null(root);
    char key[64];
    int index;
    cJSON *parent = walk(root, path, key, sizeof(key), &index);
    if (!value) {
        if (index >= 0)
            cJSON_DeleteItemFromArray(parent, index);
        else
            cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    } else {
        cJSON *v = cJSON_Parse(value);
        if (!v)
            fail_msg("bad test value %s", value);
        if (index >= 0 && index < cJSON_GetArraySize(parent))
            cJSON_ReplaceItemInArray(parent, index, v);
        else if (index >= 0)
            cJSON_AddItemToArray(parent, v);
        else if (cJSON_GetObjectItemCaseSensitive(parent, key))
            cJSON_ReplaceItemInObjectCaseSensitive(parent, key, v);
        else
            cJSON_AddItemToObject(parent, key, v);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    assert_non_null(text);
    return text;
}

static void run_mutations(const struct mutation *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *text = mutate(minimal_policy, m[i].path, m[i].value);
        struct cas_policy p;
        memset(&p, 0xA5, sizeof(p));
        cas_hr hr = parse_text(text, &p);
        if (hr != m[i].code)
            fail_msg("%s = %s: expected 0x%08X, got 0x%08X (%s)", m[i].path,
                     m[i].value ? m[i].value : "(removed)", (unsigned)m[i].code, (unsigned)hr,
                     cas_err_detail());
        assert_detail_names(m[i].field ? m[i].field : m[i].path);
        /* A refused document leaves nothing behind to free. */
        assert_int_equal(p.n_adverts, 0);
        assert_null(p.adverts);
        cas_policy_free(&p);
        cJSON_free(text);
    }
}

#define INVALID CAS_E_INVALID_DATA

static void test_missing_required_fields(void **state)
{
    (void)state;
    static const struct mutation m[] = {
        {"schema", NULL, INVALID, NULL},
        {"site", NULL, INVALID, NULL},
        {"serial", NULL, INVALID, NULL},
        {"issued", NULL, INVALID, NULL},
        {"advertisements", NULL, INVALID, NULL},
        {"advertisements[0].id", NULL, INVALID, NULL},
        {"advertisements[0].package", NULL, INVALID, NULL},
        {"advertisements[0].version", NULL, INVALID, NULL},
        {"advertisements[0].hash", NULL, INVALID, NULL},
        {"advertisements[0].hash.alg", NULL, INVALID, NULL},
        {"advertisements[0].hash.value", NULL, INVALID, NULL},
        {"advertisements[0].size", NULL, INVALID, NULL},
        {"advertisements[0].locations", NULL, INVALID, NULL},
        {"advertisements[0].program", NULL, INVALID, NULL},
        {"advertisements[0].program.command", NULL, INVALID, NULL},
    };
    run_mutations(m, sizeof(m) / sizeof(m[0]));
    /* And the detail says so. */
    char *text = mutate(minimal_policy, "site", NULL);
    struct cas_policy p;
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_string_equal(cas_err_detail(), "site: missing");
    cJSON_free(text);
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const struct mutation m[] = {
        {"schema", "\"1\"", INVALID, NULL},
        {"schema", "true", INVALID, NULL},
        {"site", "1", INVALID, NULL},
        {"serial", "\"7\"", INVALID, NULL},
        {"serial", "null", INVALID, NULL},
        {"issued", "1795413600", INVALID, NULL},
        {"expires", "5", INVALID, NULL},
        {"advertisements", "{}", INVALID, NULL},
        {"advertisements[0]", "\"CEN20001\"", INVALID, NULL},
        {"advertisements[0].id", "5", INVALID, NULL},
        {"advertisements[0].package", "[]", INVALID, NULL},
        {"advertisements[0].version", "\"2\"", INVALID, NULL},
        {"advertisements[0].hash", "\"" SHA256_ABC "\"", INVALID, NULL},
        {"advertisements[0].hash.alg", "1", INVALID, NULL},
        {"advertisements[0].hash.value", "1", INVALID, NULL},
        {"advertisements[0].size", "\"1\"", INVALID, NULL},
        {"advertisements[0].locations", "\"http://dp1.example\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "5", INVALID, NULL},
        {"advertisements[0].program", "\"install.sh\"", INVALID, NULL},
        {"advertisements[0].program.command", "5", INVALID, NULL},
        {"advertisements[0].program.args", "\"--quiet\"", INVALID, NULL},
        {"advertisements[0].program.args", "[\"a\", 1]", INVALID,
         "advertisements[0].program.args[1]"},
        {"advertisements[0].program.context", "1", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "\"5\"", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "true", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "null", INVALID, NULL},
        {"advertisements[0].program.success_codes", "0", INVALID, NULL},
        {"advertisements[0].program.success_codes", "[\"0\"]", INVALID,
         "advertisements[0].program.success_codes[0]"},
        {"advertisements[0].mandatory", "\"yes\"", INVALID, NULL},
        {"advertisements[0].mandatory", "1", INVALID, NULL},
        {"advertisements[0].start", "5", INVALID, NULL},
        {"advertisements[0].rerun", "1", INVALID, NULL},
        {"advertisements[0].persist", "\"no\"", INVALID, NULL},
        {"advertisements[0].persist", "null", INVALID, NULL},
    };
    run_mutations(m, sizeof(m) / sizeof(m[0]));
}

static void test_values_out_of_range(void **state)
{
    (void)state;
    static const struct mutation m[] = {
        {"schema", "2", INVALID, NULL},
        {"schema", "0", INVALID, NULL},
        {"site", "\"cen\"", INVALID, NULL},
        {"site", "\"CENX\"", INVALID, NULL},
        {"site", "\"CE\"", INVALID, NULL},
        {"serial", "0", INVALID, NULL},
        {"serial", "-1", INVALID, NULL},
        {"serial", "1.5", INVALID, NULL},
        {"serial", "1152921504606846976", INVALID, NULL}, /* 2^60 */
        {"issued", "\"2026-11-23\"", INVALID, NULL},
        {"issued", "\"2026-11-23T06:00:00\"", INVALID, NULL},
        {"expires", "\"2026-11-22T06:00:00Z\"", INVALID, NULL}, /* before issued */
        {"expires", "\"2026-11-23T06:00:00Z\"", INVALID, NULL}, /* equal to issued */
        {"advertisements[0].id", "\"\"", INVALID, NULL},
        {"advertisements[0].id", "\".hidden\"", INVALID, NULL},
        {"advertisements[0].id", "\"a b\"", INVALID, NULL},
        {"advertisements[0].id", "\"a/b\"", INVALID, NULL},
        {"advertisements[0].id",
         "\"A2345678901234567890123456789012345678901234567890123456789012345\"", INVALID, NULL},
        {"advertisements[0].package", "\"CEN0000G\"", INVALID, NULL},
        {"advertisements[0].package", "\"cen00002\"", INVALID, NULL},
        {"advertisements[0].package", "\"CEN000002\"", INVALID, NULL},
        {"advertisements[0].version", "0", INVALID, NULL},
        {"advertisements[0].version", "-2", INVALID, NULL},
        {"advertisements[0].version", "2.5", INVALID, NULL},
        {"advertisements[0].size", "-1", INVALID, NULL},
        {"advertisements[0].size", "0.5", INVALID, NULL},
        {"advertisements[0].size", "1e300", INVALID, NULL},
        {"advertisements[0].hash.value",
         "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a\"", INVALID, NULL},
        {"advertisements[0].hash.value",
         "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0\"", INVALID, NULL},
        {"advertisements[0].hash.value",
         "\"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"", INVALID, NULL},
        {"advertisements[0].hash.value", "\"" SHA1_ABC "\"", INVALID, NULL},
        {"advertisements[0].hash.alg", "\"md5\"", CAS_E_UNSUPPORTED_ALG, NULL},
        {"advertisements[0].hash.alg", "\"SHA256\"", CAS_E_UNSUPPORTED_ALG, NULL},
        {"advertisements[0].locations", "[]", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"ftp://x\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"http://\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"https:///pkg\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"dp1.example/pkg\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"http://dp1.example/a b\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"http://dp1.example/a\\tb\"", INVALID, NULL},
        {"advertisements[0].locations[0]", "\"http://dp1.example/pkg?x=1\"", INVALID, NULL},
        {"advertisements[0].locations[1]", "\"HTTP://dp1.example\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"../x\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"a//b\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"a/./b\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"bin/\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"a\\\\b\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/etc/../x\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/usr//bin/x\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/./x\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/usr/bin/\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/\"", INVALID, NULL},
        {"advertisements[0].program.command", "\"/usr/bin/x\\u001b\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"root\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"user:\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"system\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"user:Root\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"user:9abc\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"user:a b\"", INVALID, NULL},
        {"advertisements[0].program.context", "\"user:a12345678901234567890123456789012\"", INVALID,
         NULL}, /* 33 characters */
        {"advertisements[0].program.max_run_minutes", "0", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "10081", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "10080.001", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "-0.5", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "-0", INVALID, NULL},
        {"advertisements[0].program.max_run_minutes", "1e300", INVALID, NULL},
        {"advertisements[0].program.success_codes", "[]", INVALID, NULL},
        {"advertisements[0].program.success_codes", "[0, 2147483648]", INVALID,
         "advertisements[0].program.success_codes[1]"},
        {"advertisements[0].program.success_codes", "[-2147483649]", INVALID,
         "advertisements[0].program.success_codes[0]"},
        {"advertisements[0].program.success_codes", "[0.5]", INVALID,
         "advertisements[0].program.success_codes[0]"},
        {"advertisements[0].rerun", "\"sometimes\"", INVALID, NULL},
        {"advertisements[0].rerun", "\"IF_FAILED\"", INVALID, NULL},
        {"advertisements[0].start", "\"2026-13-01T00:00:00Z\"", INVALID, NULL},
        {"advertisements[0].start", "\"tomorrow\"", INVALID, NULL},
        {"advertisements[0].start", "\"\"", INVALID, NULL},
    };
    run_mutations(m, sizeof(m) / sizeof(m[0]));
}

/* Values at the edge of each range are accepted. */
static void test_accepted_boundaries(void **state)
{
    (void)state;
    static const struct {
        const char *path, *value;
    } ok[] = {
        {"serial", "9007199254740991"},
        {"serial", "1"},
        {"issued", "\"2026-11-23T07:00:00+01:00\""},
        {"expires", "\"2026-11-23T06:00:01Z\""},
        {"advertisements[0].id",
         "\"A234567890123456789012345678901234567890123456789012345678901234\""},
        {"advertisements[0].id", "\"a\""},
        {"advertisements[0].version", "1"},
        {"advertisements[0].size", "9007199254740991"},
        {"advertisements[0].locations[0]", "\"https://dp.example:8443\""},
        {"advertisements[0].locations[0]", "\"http://[::1]:8080/a/b\""},
        {"advertisements[0].program.command", "\"/x\""},
        {"advertisements[0].program.command", "\"a/b.c/..d/.e\""},
        {"advertisements[0].program.context", "\"user:a1234567890123456789012345678901\""},
        {"advertisements[0].program.context", "\"user:_\""},
        {"advertisements[0].program.max_run_minutes", "1"},
        {"advertisements[0].program.max_run_minutes", "0.05"},
        {"advertisements[0].program.max_run_minutes", "10080"},
        {"advertisements[0].program.max_run_minutes", "1e-3"},
        {"advertisements[0].program.success_codes", "[-2147483648, 2147483647]"},
        {"advertisements[0].start", "\"1970-01-01T00:00:00Z\""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *text = mutate(minimal_policy, ok[i].path, ok[i].value);
        struct cas_policy p;
        cas_hr hr = parse_text(text, &p);
        if (hr != CAS_OK)
            fail_msg("%s = %s refused: 0x%08X %s", ok[i].path, ok[i].value, (unsigned)hr,
                     cas_err_detail());
        cas_policy_free(&p);
        cJSON_free(text);
    }
}

/* max_run_minutes keeps its fraction (0.05 minutes is a 3 second limit), and a refusal names the
 * field and the range. */
static void test_fractional_run_minutes(void **state)
{
    (void)state;
    struct cas_policy p;
    char *text = mutate(minimal_policy, "advertisements[0].program.max_run_minutes", "0.05");
    assert_int_equal(parse_text(text, &p), CAS_OK);
    assert_true(p.adverts[0].program.max_run_minutes * 60 > 2.999 &&
                p.adverts[0].program.max_run_minutes * 60 < 3.001);
    cas_policy_free(&p);
    cJSON_free(text);

    text = mutate(minimal_policy, "advertisements[0].program.max_run_minutes", "0");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_string_equal(cas_err_detail(),
                        "advertisements[0].program.max_run_minutes: expected a number of minutes "
                        "greater than 0 and at most 10080 (fractions allowed, e.g. 0.5)");
    cJSON_free(text);
}

static void test_unsupported_alg_detail(void **state)
{
    (void)state;
    char *text = mutate(minimal_policy, "advertisements[0].hash.alg", "\"md5\"");
    struct cas_policy p;
    assert_int_equal(parse_text(text, &p), CAS_E_UNSUPPORTED_ALG);
    assert_non_null(strstr(cas_err_detail(), "'md5'"));
    cJSON_free(text);

    text = mutate(minimal_policy, "advertisements[0].hash.value", "\"abc\"");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_string_equal(cas_err_detail(),
                        "advertisements[0].hash.value: expected 64 hex digits for sha256");
    cJSON_free(text);

    text = mutate(minimal_policy, "advertisements[0].size", "-1");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_string_equal(cas_err_detail(), "advertisements[0].size: expected an integer >= 0");
    cJSON_free(text);
}

static char *big_array_value(size_t n, const char *elem)
{
    size_t el = strlen(elem);
    char *s = malloc(n * (el + 1) + 3);
    assert_non_null(s);
    char *p = s;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, elem, el);
        p += el;
    }
    *p++ = ']';
    *p = '\0';
    return s;
}

static void test_list_limits(void **state)
{
    (void)state;
    struct cas_policy p;

    /* 64 locations are fine, 65 are not. */
    char *v = big_array_value(64, "\"http://dp.example/x\"");
    char *text = mutate(minimal_policy, "advertisements[0].locations", v);
    assert_int_equal(parse_text(text, &p), CAS_OK);
    assert_int_equal(p.adverts[0].n_locations, 64);
    cas_policy_free(&p);
    cJSON_free(text);
    free(v);
    v = big_array_value(65, "\"http://dp.example/x\"");
    text = mutate(minimal_policy, "advertisements[0].locations", v);
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[0].locations");
    cJSON_free(text);
    free(v);

    /* 64 success codes are fine, 65 are not. */
    v = big_array_value(64, "1");
    text = mutate(minimal_policy, "advertisements[0].program.success_codes", v);
    assert_int_equal(parse_text(text, &p), CAS_OK);
    assert_int_equal(p.adverts[0].program.n_success_codes, 64);
    cas_policy_free(&p);
    cJSON_free(text);
    free(v);
    v = big_array_value(65, "1");
    text = mutate(minimal_policy, "advertisements[0].program.success_codes", v);
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[0].program.success_codes");
    cJSON_free(text);
    free(v);

    /* A URL of 2048 bytes is fine, 2049 is not. */
    char url[2100];
    memset(url, 'a', sizeof(url));
    memcpy(url, "\"http://", 8);
    url[1 + 2048] = '"';
    url[1 + 2048 + 1] = '\0';
    text = mutate(minimal_policy, "advertisements[0].locations[0]", url);
    assert_int_equal(parse_text(text, &p), CAS_OK);
    assert_int_equal(strlen(p.adverts[0].locations[0]), 2048);
    cas_policy_free(&p);
    cJSON_free(text);
    url[1 + 2049] = '"';
    url[1 + 2049 + 1] = '\0';
    url[1 + 2048] = 'a';
    text = mutate(minimal_policy, "advertisements[0].locations[0]", url);
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[0].locations[0]");
    cJSON_free(text);
}

/* n advertisements with distinct ids and content, as one policy document. */
static char *policy_with_adverts(size_t n)
{
    static const char head[] = "{\"schema\":1,\"site\":\"CEN\",\"serial\":7,"
                               "\"issued\":\"2026-11-23T06:00:00Z\",\"advertisements\":[";
    size_t cap = sizeof(head) + n * 256 + 8;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t off = (size_t)snprintf(s, cap, "%s", head);
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off,
                                "%s{\"id\":\"A%zu\",\"package\":\"CEN%05zX\",\"version\":1,"
                                "\"hash\":{\"alg\":\"sha256\",\"value\":\"" SHA256_ABC "\"},"
                                "\"size\":1,\"locations\":[\"http://d\"],"
                                "\"program\":{\"command\":\"i\"}}",
                                i ? "," : "", i, i);
    snprintf(s + off, cap - off, "]}");
    return s;
}

static void test_advertisement_count_limit(void **state)
{
    (void)state;
    struct cas_policy p;
    char *text = policy_with_adverts(10000);
    assert_int_equal(parse_text(text, &p), CAS_OK);
    assert_int_equal(p.n_adverts, 10000);
    assert_non_null(cas_policy_find_advert(&p, "A9999"));
    assert_non_null(cas_policy_find_content(&p, "CEN0270F.1"));
    cas_policy_free(&p);
    free(text);

    text = policy_with_adverts(10001);
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements");
    free(text);
}

static const char two_adverts[] =
    "{\"schema\":1,\"site\":\"CEN\",\"serial\":7,\"issued\":\"2026-11-23T06:00:00Z\","
    "\"advertisements\":["
    "{\"id\":\"CEN20001\",\"package\":\"CEN00002\",\"version\":2,"
    "\"hash\":{\"alg\":\"sha256\",\"value\":\"" SHA256_ABC "\"},\"size\":123456,"
    "\"locations\":[\"http://dp1.example/pkg\"],\"program\":{\"command\":\"install.sh\"}},"
    "{\"id\":\"CEN20002\",\"package\":\"CEN00002\",\"version\":2,"
    "\"hash\":{\"alg\":\"sha256\",\"value\":\"" SHA256_ABC "\"},\"size\":123456,"
    "\"locations\":[\"http://dp2.example/pkg\"],"
    "\"program\":{\"command\":\"uninstall.sh\",\"context\":\"user:alice\"}},"
    "{\"id\":\"CEN20003\",\"package\":\"CEN00002\",\"version\":3,"
    "\"hash\":{\"alg\":\"sha1\",\"value\":\"" SHA1_ABC "\"},\"size\":5,"
    "\"locations\":[\"http://dp1.example/pkg\"],\"program\":{\"command\":\"install.sh\"}}"
    "]}";

static void test_same_content_twice_is_fine(void **state)
{
    (void)state;
    struct cas_policy p;
    /* Two programs from one content, with the same hash and size: allowed. */
    assert_int_equal(parse_text(two_adverts, &p), CAS_OK);
    assert_int_equal(p.n_adverts, 3);
    cas_policy_free(&p);
}

static void test_duplicate_advert_id(void **state)
{
    (void)state;
    struct cas_policy p;
    char *text = mutate(two_adverts, "advertisements[2].id", "\"CEN20001\"");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[2].id");
    assert_non_null(strstr(cas_err_detail(), "advertisements[0]"));
    assert_non_null(strstr(cas_err_detail(), "CEN20001"));
    cJSON_free(text);
}

static void test_mix_and_match_refused(void **state)
{
    (void)state;
    struct cas_policy p;
    /* Same content, a different hash value. */
    char *text = mutate(two_adverts, "advertisements[1].hash.value",
                        "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AE\"");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[1].hash");
    assert_non_null(strstr(cas_err_detail(), "CEN00002.2"));
    assert_non_null(strstr(cas_err_detail(), "advertisements[0]"));
    cJSON_free(text);

    /* Same content, a different algorithm. */
    text = mutate(two_adverts, "advertisements[1].hash",
                  "{\"alg\":\"sha1\",\"value\":\"" SHA1_ABC "\"}");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[1].hash");
    cJSON_free(text);

    /* Same content, a different size. */
    text = mutate(two_adverts, "advertisements[1].size", "123457");
    assert_int_equal(parse_text(text, &p), INVALID);
    assert_detail_names("advertisements[1].size");
    cJSON_free(text);

    /* The same hash in upper case is the same hash. */
    text = mutate(two_adverts, "advertisements[1].hash.value",
                  "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"");
    assert_int_equal(parse_text(text, &p), CAS_OK);
    cas_policy_free(&p);
    cJSON_free(text);
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    struct cas_policy p;
    char *a = mutate(minimal_policy, "future", "{\"x\":[1,2,{\"y\":null}]}");
    char *b = mutate(a, "advertisements[0].colour", "\"blue\"");
    char *c = mutate(b, "advertisements[0].program.shell", "true");
    char *d = mutate(c, "advertisements[0].hash.salt", "\"x\"");
    assert_int_equal(parse_text(d, &p), CAS_OK);
    assert_int_equal(p.n_adverts, 1);
    cas_policy_free(&p);
    cJSON_free(a);
    cJSON_free(b);
    cJSON_free(c);
    cJSON_free(d);
}

static void test_malformed_documents(void **state)
{
    (void)state;
    struct cas_policy p;
    char buf[sizeof(minimal_policy) + 16];

    /* Duplicate JSON key: a reader that takes the other copy would see another serial. */
    assert_int_equal(parse_text("{\"schema\":1,\"site\":\"CEN\",\"serial\":7,\"serial\":8,"
                                "\"issued\":\"2026-11-23T06:00:00Z\",\"advertisements\":[]}",
                                &p),
                     INVALID);
    assert_non_null(strstr(cas_err_detail(), "duplicate key \"serial\""));

    /* Trailing garbage. */
    snprintf(buf, sizeof(buf), "%s x", minimal_policy);
    assert_int_equal(parse_text(buf, &p), INVALID);
    assert_non_null(strstr(cas_err_detail(), "invalid JSON at byte"));
    snprintf(buf, sizeof(buf), "%s{}", minimal_policy);
    assert_int_equal(parse_text(buf, &p), INVALID);

    /* Trailing whitespace is not garbage. */
    snprintf(buf, sizeof(buf), "%s \r\n\t", minimal_policy);
    assert_int_equal(parse_text(buf, &p), CAS_OK);
    cas_policy_free(&p);

    /* Invalid UTF-8 inside a string, and an overlong encoding. */
    assert_int_equal(parse_text("{\"schema\":1,\"site\":\"C\xff"
                                "N\"}",
                                &p),
                     INVALID);
    assert_non_null(strstr(cas_err_detail(), "UTF-8"));
    assert_int_equal(parse_text("{\"schema\":1,\"site\":\"\xc0\xae\"}", &p), INVALID);

    /* A NUL byte, counted in the length. */
    memcpy(buf, minimal_policy, sizeof(minimal_policy));
    buf[20] = '\0';
    assert_int_equal(cas_policy_parse(buf, sizeof(minimal_policy) - 1, &p), INVALID);
    assert_non_null(strstr(cas_err_detail(), "NUL"));

    /* Not an object; empty. */
    assert_int_equal(parse_text("[]", &p), INVALID);
    assert_non_null(strstr(cas_err_detail(), "policy"));
    assert_int_equal(parse_text("", &p), INVALID);
}

static void test_too_large(void **state)
{
    (void)state;
    struct cas_policy p;
    size_t n = (size_t)5 * 1024 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    /* Valid JSON, then whitespace: no NUL, the parser is given the length. */
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): no NUL, on purpose
    memcpy(big, minimal_policy, strlen(minimal_policy));
    assert_int_equal(cas_policy_parse(big, n, &p), CAS_E_TOO_LARGE);
    /* Exactly the limit is still read. */
    assert_int_equal(cas_policy_parse(big, CAS_POLICY_MAX_BYTES, &p), CAS_OK);
    cas_policy_free(&p);
    free(big);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    struct cas_policy p;
    size_t n = 100000;
    char *deep = malloc(2 * n);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_int_equal(cas_policy_parse(deep, 2 * n, &p), INVALID);
    assert_non_null(strstr(cas_err_detail(), "nesting"));
    free(deep);

    /* Deep nesting inside an ignored field is refused too: the limit is on the document. */
    char *text = mutate(minimal_policy, "x", "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(parse_text(text, &p), INVALID);
    cJSON_free(text);
}

static void test_lookups(void **state)
{
    (void)state;
    struct cas_policy p;
    assert_int_equal(parse_text(two_adverts, &p), CAS_OK);
    const struct cas_advert *a = cas_policy_find_advert(&p, "CEN20002");
    assert_ptr_equal(a, &p.adverts[1]);
    assert_null(cas_policy_find_advert(&p, "CEN2000"));
    assert_null(cas_policy_find_advert(&p, "cen20002"));
    assert_null(cas_policy_find_advert(NULL, "CEN20002"));
    /* The first advertisement for the content. */
    assert_ptr_equal(cas_policy_find_content(&p, "CEN00002.2"), &p.adverts[0]);
    assert_ptr_equal(cas_policy_find_content(&p, "CEN00002.3"), &p.adverts[2]);
    assert_null(cas_policy_find_content(&p, "CEN00002.4"));
    assert_null(cas_policy_find_content(&p, "CEN00002"));
    cas_policy_free(&p);
}

static void test_is_expired(void **state)
{
    (void)state;
    struct cas_policy p;
    assert_int_equal(parse_text(full_policy, &p), CAS_OK);
    assert_false(cas_policy_is_expired(&p, T_ISSUED));
    assert_false(cas_policy_is_expired(&p, T_EXPIRES - 1));
    assert_true(cas_policy_is_expired(&p, T_EXPIRES));
    assert_true(cas_policy_is_expired(&p, T_EXPIRES + 1));
    cas_policy_free(&p);

    assert_int_equal(parse_text(minimal_policy, &p), CAS_OK);
    assert_false(cas_policy_is_expired(&p, 0));
    assert_false(cas_policy_is_expired(&p, T_EXPIRES + 1000000));
    cas_policy_free(&p);
}

static void test_rerun_names(void **state)
{
    (void)state;
    assert_string_equal(cas_rerun_name(CAS_RERUN_NEVER), "never");
    assert_string_equal(cas_rerun_name(CAS_RERUN_IF_FAILED), "if_failed");
    assert_string_equal(cas_rerun_name(CAS_RERUN_ALWAYS), "always");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_policy),
        cmocka_unit_test(test_minimal_policy_defaults),
        cmocka_unit_test(test_empty_advertisements),
        cmocka_unit_test(test_missing_required_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_values_out_of_range),
        cmocka_unit_test(test_accepted_boundaries),
        cmocka_unit_test(test_fractional_run_minutes),
        cmocka_unit_test(test_unsupported_alg_detail),
        cmocka_unit_test(test_list_limits),
        cmocka_unit_test(test_advertisement_count_limit),
        cmocka_unit_test(test_same_content_twice_is_fine),
        cmocka_unit_test(test_duplicate_advert_id),
        cmocka_unit_test(test_mix_and_match_refused),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_malformed_documents),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_is_expired),
        cmocka_unit_test(test_rerun_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
