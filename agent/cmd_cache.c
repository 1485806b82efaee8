/* cas-agent cache list | verify | delete | clean */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/cache_limits.h"
#include "agent/policy_store.h"
#include "common/log.h"
#include "common/path.h"
#include "common/timefmt.h"

static int cache_usage(void)
{
    fputs("usage: cas-agent cache list [--json]\n"
          "       cas-agent cache verify [CONTENT_ID]\n"
          "       cas-agent cache delete CONTENT_ID\n"
          "       cas-agent cache clean\n",
          stderr);
    return 2;
}

static void time_text(time_t t, char *buf, size_t size)
{
    if (t > 0)
        cas_time_format(t, buf, size);
    else
        snprintf(buf, size, "-");
}

static int cache_cmd_list(struct cas_agent *a, struct cache *c, int json)
{
    struct cache_entry_info *items = NULL;
    size_t n = 0;
    cas_hr hr = cas_cache_list(a, c, &items, &n);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < n; i++) {
            char used[32], verified[32];
            cJSON *o = cJSON_CreateObject();
            time_text(items[i].last_used, used, sizeof(used));
            time_text(items[i].verified, verified, sizeof(verified));
            cJSON_AddStringToObject(o, "content", items[i].content_id);
            cJSON_AddNumberToObject(o, "files", (double)items[i].files);
            cJSON_AddNumberToObject(o, "size", (double)items[i].size);
            cJSON_AddStringToObject(o, "last_used", used);
            cJSON_AddStringToObject(o, "verified", verified);
            cJSON_AddBoolToObject(o, "persist", items[i].persist);
            cJSON_AddBoolToObject(o, "in_use", items[i].in_use);
            cJSON_AddItemToArray(arr, o);
        }
        char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(arr);
    } else {
        if (n > 0)
            printf("%-12s %7s %14s  %-20s  %-20s  %s\n", "CONTENT", "FILES", "BYTES", "LAST USED",
                   "VERIFIED", "FLAGS");
        for (size_t i = 0; i < n; i++) {
            char used[32], verified[32];
            time_text(items[i].last_used, used, sizeof(used));
            time_text(items[i].verified, verified, sizeof(verified));
            const char *flags = items[i].persist && items[i].in_use ? "persist,in-use"
                                : items[i].persist                  ? "persist"
                                : items[i].in_use                   ? "in-use"
                                                                    : "-";
            printf("%-12s %7zu %14llu  %-20s  %-20s  %s\n", items[i].content_id, items[i].files,
                   (unsigned long long)items[i].size, used, verified, flags);
        }
    }
    free(items);
    return 0;
}

/* Verify one entry against the applied policy's hash for it, or, if no applied policy
 * advertises it, against its own listing. Nothing is removed or run: the verdict is reported. */
static cas_hr cache_verify_one(struct cas_agent *a, struct cache *c, const char *cid)
{
    struct cas_policy p = {0};
    const struct cas_advert *ad = NULL;
    enum cas_hash_alg alg = CAS_HASH_SHA256;
    char expected[CAS_HASH_MAX_HEX + 1];
    const char *against = "the applied policy";
    struct cache_hold *hold = NULL;

    cas_hr hr = cache_hold(c, cid, &hold);
    if (hr != CAS_OK)
        return hr;
    if (!cache_has(c, cid)) {
        hr = cas_fail(CAS_E_CONTENT_NOT_FOUND, "content %s is not in the cache", cid);
        goto cleanup;
    }
    if (cas_policy_store_find(a, cid, 1, &p, &ad) == CAS_OK) {
        alg = ad->alg;
        snprintf(expected, sizeof(expected), "%s", ad->hash);
    } else {
        against = "its own listing (no applied policy advertises it)";
        hr = cache_recorded_hash(c, cid, &alg, expected);
        if (hr != CAS_OK)
            goto cleanup;
    }
    hr = cache_reverify(c, cid, alg, expected, cas_clock_now(), -1);
    if (hr == CAS_OK) {
        char exp_up[CAS_HASH_MAX_HEX + 1];
        cas_hex_upper(expected, exp_up);
        cas_log_info(CAS_LOG_CAS, "Content %s in the cache verified against %s: hash %s", cid,
                     against, exp_up);
        printf("%s\tverified\t%s\n", cid, exp_up);
    } else if (hr == CAS_E_HASH_MISMATCH) {
        printf("%s\tCHANGED\t%s\n", cid, cas_err_detail());
    }
cleanup:
    cas_policy_free(&p);
    cache_release(hold);
    return hr;
}

static int cache_cmd_verify(struct cas_agent *a, struct cache *c, const char *only)
{
    cas_hr worst = CAS_OK;
    char detail[1024] = "";
    if (only) {
        cas_hr hr = cache_verify_one(a, c, only);
        return hr == CAS_OK ? 0 : cas_agent_fail(hr);
    }
    struct cache_entry_info *items = NULL;
    size_t n = 0;
    cas_hr hr = cache_list(c, &items, &n);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        hr = cache_verify_one(a, c, items[i].content_id);
        if (hr != CAS_OK && hr != CAS_E_CONTENT_NOT_FOUND) { /* gone meanwhile: fine */
            bad++;
            if (worst == CAS_OK) {
                worst = hr;
                snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            }
        }
    }
    free(items);
    if (worst != CAS_OK) {
        cas_fail(worst, "%zu of %zu entries failed verification; first: %s", bad, n, detail);
        return cas_agent_fail(worst);
    }
    return 0;
}

int cas_cmd_cache(struct cas_agent *a, int argc, char **argv)
{
    if (argc < 2)
        return cache_usage();
    const char *sub = argv[1];
    int json = 0;
    const char *id = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(sub, "list") && !strcmp(argv[i], "--json"))
            json = 1;
        else if (argv[i][0] != '-' && !id && (!strcmp(sub, "verify") || !strcmp(sub, "delete")))
            id = argv[i];
        else
            return cache_usage();
    }
    if (strcmp(sub, "list") != 0 && strcmp(sub, "verify") != 0 && strcmp(sub, "delete") != 0 &&
        strcmp(sub, "clean") != 0)
        return cache_usage();
    if (!strcmp(sub, "delete") && !id)
        return cache_usage();
    if (id && !cas_id_is_content(id)) {
        cas_fail(CAS_E_INVALIDARG, "'%s' is not a content id (PACKAGE.VERSION)", id);
        return cas_agent_fail(CAS_E_INVALIDARG);
    }

    struct cache *c = NULL;
    cas_hr hr = cas_agent_cache(a, &c);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    if (!strcmp(sub, "list"))
        return cache_cmd_list(a, c, json);
    if (!strcmp(sub, "verify"))
        return cache_cmd_verify(a, c, id);
    if (!strcmp(sub, "delete")) {
        hr = cache_delete(c, id);
        if (hr != CAS_OK)
            return cas_agent_fail(hr);
        cas_log_info(CAS_LOG_CAS, "Removed content %s from the cache: cache delete", id);
        printf("Deleted %s\n", id);
        return 0;
    }
    struct cache_limits l;
    size_t removed = 0;
    uint64_t bytes = 0;
    cas_cache_limits_load(a, &l);
    hr = cache_clean(c, &l, &removed, &bytes);
    cas_cache_limits_free(&l);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    printf("Removed %zu entr%s, %llu bytes\n", removed, removed == 1 ? "y" : "ies",
           (unsigned long long)bytes);
    return 0;
}
