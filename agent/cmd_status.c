/* cas-agent status: what the agent knows — applied policies, and cache use against its limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/cache_limits.h"
#include "agent/policy_store.h"
#include "common/timefmt.h"

int cas_cmd_status(struct cas_agent *a, int argc, char **argv)
{
    int json = argc == 2 && !strcmp(argv[1], "--json");
    if (argc > 2 || (argc == 2 && !json)) {
        fputs("usage: cas-agent status [--json]\n", stderr);
        return 2;
    }
    struct cas_policy *pols = NULL;
    size_t n_pols = 0, n_items = 0, in_use = 0, persist = 0;
    struct cache *c = NULL;
    struct cache_entry_info *items = NULL;
    uint64_t used = 0, limit = (uint64_t)a->cfg.cache_size_mb * 1024u * 1024u;
    cas_hr hr = cas_policy_store_load_all(a, &pols, &n_pols);
    if (hr == CAS_OK)
        hr = cas_agent_cache(a, &c);
    if (hr == CAS_OK)
        hr = cas_cache_list(a, c, &items, &n_items);
    if (hr != CAS_OK) {
        for (size_t i = 0; i < n_pols; i++)
            cas_policy_free(&pols[i]);
        free(pols);
        return cas_agent_fail(hr);
    }
    for (size_t i = 0; i < n_items; i++) {
        used += items[i].size;
        in_use += items[i].in_use != 0;
        persist += items[i].persist != 0;
    }
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *ps = cJSON_AddArrayToObject(root, "policies");
        for (size_t i = 0; i < n_pols; i++) {
            char exp[32];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "site", pols[i].site);
            cJSON_AddNumberToObject(o, "serial", (double)pols[i].serial);
            cJSON_AddNumberToObject(o, "adverts", (double)pols[i].n_adverts);
            if (pols[i].expires) {
                cas_time_format(pols[i].expires, exp, sizeof(exp));
                cJSON_AddStringToObject(o, "expires", exp);
            }
            cJSON_AddItemToArray(ps, o);
        }
        cJSON *co = cJSON_AddObjectToObject(root, "cache");
        cJSON_AddStringToObject(co, "dir", a->cfg.cache_dir);
        cJSON_AddNumberToObject(co, "entries", (double)n_items);
        cJSON_AddNumberToObject(co, "used_bytes", (double)used);
        cJSON_AddNumberToObject(co, "limit_bytes", (double)limit);
        cJSON_AddNumberToObject(co, "in_use", (double)in_use);
        cJSON_AddNumberToObject(co, "persistent", (double)persist);
        char *text = cJSON_PrintUnformatted(root);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        if (n_pols == 0)
            printf("policy: none applied\n");
        for (size_t i = 0; i < n_pols; i++) {
            char exp[32] = "never";
            if (pols[i].expires)
                cas_time_format(pols[i].expires, exp, sizeof(exp));
            printf("policy: site %s, serial %llu, %zu advertisement(s), expires %s\n", pols[i].site,
                   (unsigned long long)pols[i].serial, pols[i].n_adverts, exp);
        }
        printf("cache: %s, %zu entr%s, %.1f of %.1f MiB used (%.0f%%), %zu in use, %zu "
               "persistent\n",
               a->cfg.cache_dir, n_items, n_items == 1 ? "y" : "ies", (double)used / 1048576.0,
               (double)limit / 1048576.0, limit ? 100.0 * (double)used / (double)limit : 0.0,
               in_use, persist);
    }
    for (size_t i = 0; i < n_pols; i++)
        cas_policy_free(&pols[i]);
    free(pols);
    free(items);
    return 0;
}
