/* cas-agent status: what the agent knows — applied policies, and cache use against its limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/cache_limits.h"
#include "agent/advert_view.h"
#include "agent/history.h"
#include "agent/policy_store.h"
#include "agent/service.h"
#include "common/json.h"
#include "common/timefmt.h"

static void status_service_json(cJSON *o, const struct cas_service_info *svc)
{
    char code[16];
    cJSON_AddBoolToObject(o, "running", svc->pid != 0);
    cJSON_AddNumberToObject(o, "pid", (double)svc->pid);
    cas_json_add_time(o, "last_poll", svc->last_poll);
    snprintf(code, sizeof(code), "0x%08X", svc->last_poll_hr);
    if (svc->last_poll)
        cJSON_AddStringToObject(o, "last_poll_result", code);
    else
        cJSON_AddNullToObject(o, "last_poll_result");
    cas_json_add_time(o, "next_poll", svc->next_poll);
    cas_json_add_time(o, "last_pass", svc->last_pass);
}

static void status_service_text(const struct cas_agent *a, const struct cas_service_info *svc)
{
    char last[32] = "never", next[32] = "-";
    if (svc->last_poll)
        cas_time_format(svc->last_poll, last, sizeof(last));
    if (svc->next_poll && svc->pid)
        cas_time_format(svc->next_poll, next, sizeof(next));
    printf("service: %s", svc->pid ? "running" : "not running");
    if (svc->pid)
        printf(" (pid %ld)", svc->pid);
    printf("; management point %s; last poll %s",
           a->cfg.management_point ? a->cfg.management_point : "(none)", last);
    if (svc->last_poll)
        printf(" (%s 0x%08X)", svc->last_poll_hr == CAS_OK ? "result" : "error", svc->last_poll_hr);
    printf("; next poll %s\n", next);
}

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
    struct cas_service_info svc;
    struct cas_history h = {0};
    if (hr == CAS_OK)
        hr = cas_service_info_load(a, &svc);
    if (hr == CAS_OK && cas_history_load(a->cfg.state_dir, &h) != CAS_OK)
        fprintf(stderr, "cas-agent: warning: %s\n", cas_err_detail());
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
        cJSON *so = cJSON_AddObjectToObject(root, "service");
        status_service_json(so, &svc);
        cJSON *as = cJSON_AddArrayToObject(root, "adverts");
        for (size_t i = 0; i < n_pols; i++) {
            for (size_t k = 0; k < pols[i].n_adverts; k++) {
                const struct cas_advert *ad = &pols[i].adverts[k];
                const struct cas_history_rec *rec = cas_history_find(&h, ad->id);
                struct cas_advert_view v;
                cJSON *o = cJSON_CreateObject();
                cas_advert_view(a, ad, rec, &v);
                cJSON_AddStringToObject(o, "id", ad->id);
                cJSON_AddStringToObject(o, "site", pols[i].site);
                cJSON_AddStringToObject(o, "content", ad->content_id);
                cJSON_AddBoolToObject(o, "mandatory", ad->mandatory);
                cas_advert_view_json(o, ad, rec, &v);
                cJSON_AddItemToArray(as, o);
            }
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
        status_service_text(a, &svc);
        if (n_pols == 0)
            printf("policy: none applied\n");
        for (size_t i = 0; i < n_pols; i++) {
            char exp[32] = "never";
            if (pols[i].expires)
                cas_time_format(pols[i].expires, exp, sizeof(exp));
            printf("policy: site %s, serial %llu, %zu advertisement(s), expires %s\n", pols[i].site,
                   (unsigned long long)pols[i].serial, pols[i].n_adverts, exp);
            for (size_t k = 0; k < pols[i].n_adverts; k++) {
                const struct cas_advert *ad = &pols[i].adverts[k];
                struct cas_advert_view v;
                cas_advert_view(a, ad, cas_history_find(&h, ad->id), &v);
                printf("advert %s: %s%s%s%s\n", ad->id, v.state, v.detail[0] ? " (" : "", v.detail,
                       v.detail[0] ? ")" : "");
            }
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
    cas_history_free(&h);
    return 0;
}
