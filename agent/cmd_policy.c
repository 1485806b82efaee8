/* cas-agent policy apply | show */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/policy_fetch.h"
#include "agent/advert_view.h"
#include "agent/history.h"
#include "agent/policy_store.h"
#include "common/hash.h"
#include "common/timefmt.h"

static int policy_usage(void)
{
    fputs("usage: cas-agent policy apply FILE [--signature SIG]\n"
          "       cas-agent policy fetch\n"
          "       cas-agent policy show [--json]\n",
          stderr);
    return 2;
}

static int policy_fetch(struct cas_agent *a, int argc)
{
    if (argc != 1)
        return policy_usage();
    struct cas_policy p = {0};
    int changed = 0;
    cas_hr hr = cas_policy_fetch(a, &p, &changed);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    if (changed)
        printf("Applied policy for site %s, serial %llu, %zu advertisement(s)\n", p.site,
               (unsigned long long)p.serial, p.n_adverts);
    else
        printf("Policy unchanged\n");
    cas_policy_free(&p);
    return 0;
}

static int policy_apply(struct cas_agent *a, int argc, char **argv)
{
    const char *file = NULL, *sig = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--signature") && i + 1 < argc)
            sig = argv[++i];
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else
            return policy_usage();
    }
    if (!file)
        return policy_usage();
    struct cas_policy p = {0};
    cas_hr hr = cas_policy_store_apply(a, file, sig, &p);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    printf("Applied policy for site %s, serial %llu, %zu advertisement(s)\n", p.site,
           (unsigned long long)p.serial, p.n_adverts);
    cas_policy_free(&p);
    return 0;
}

static cJSON *policy_to_json(struct cas_agent *a, const struct cas_policy *p, struct cas_history *h)
{
    char t[32], up[CAS_HASH_MAX_HEX + 1];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", p->site);
    cJSON_AddNumberToObject(o, "serial", (double)p->serial);
    cas_time_format(p->issued, t, sizeof(t));
    cJSON_AddStringToObject(o, "issued", t);
    if (p->expires) {
        cas_time_format(p->expires, t, sizeof(t));
        cJSON_AddStringToObject(o, "expires", t);
    } else {
        cJSON_AddNullToObject(o, "expires");
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "advertisements");
    for (size_t i = 0; i < p->n_adverts; i++) {
        const struct cas_advert *ad = &p->adverts[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "id", ad->id);
        cJSON_AddStringToObject(x, "content", ad->content_id);
        cas_hex_upper(ad->hash, up);
        cJSON_AddStringToObject(x, "hash", up);
        cJSON_AddStringToObject(x, "alg", cas_hash_alg_name(ad->alg));
        cJSON_AddNumberToObject(x, "size", (double)ad->size);
        cJSON_AddBoolToObject(x, "mandatory", ad->mandatory);
        cJSON_AddStringToObject(x, "context", ad->program.context);
        cJSON_AddStringToObject(x, "command", ad->program.command);
        const struct cas_history_rec *rec = cas_history_find(h, ad->id);
        struct cas_advert_view v;
        cas_advert_view(a, ad, rec, &v);
        cas_advert_view_json(x, ad, rec, &v);
        cJSON_AddItemToArray(arr, x);
    }
    return o;
}

static int policy_show(struct cas_agent *a, int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            return policy_usage();
    }
    struct cas_policy *list = NULL;
    struct cas_history h = {0};
    size_t n = 0;
    cas_hr hr = cas_policy_store_load_all(a, &list, &n);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    if (n == 0)
        return cas_agent_fail(cas_fail(CAS_E_CONTENT_NOT_FOUND, "no policy has been applied"));
    /* A damaged history still lets the policy be shown; the states then say nothing ran. */
    if (cas_history_load(a->cfg.state_dir, &h) != CAS_OK)
        fprintf(stderr, "cas-agent: warning: %s\n", cas_err_detail());
    for (size_t k = 0; k < n; k++) {
        const struct cas_policy *p = &list[k];
        if (json) {
            cJSON *o = policy_to_json(a, p, &h);
            char *text = cJSON_PrintUnformatted(o);
            if (text)
                puts(text);
            free(text);
            cJSON_Delete(o);
        } else {
            char issued[32], expires[32] = "never";
            cas_time_format(p->issued, issued, sizeof(issued));
            if (p->expires)
                cas_time_format(p->expires, expires, sizeof(expires));
            printf("Site %s, serial %llu, issued %s, expires %s\n", p->site,
                   (unsigned long long)p->serial, issued, expires);
            for (size_t i = 0; i < p->n_adverts; i++) {
                const struct cas_advert *ad = &p->adverts[i];
                struct cas_advert_view v;
                char start[32];
                cas_advert_view(a, ad, cas_history_find(&h, ad->id), &v);
                cas_time_format(ad->start, start, sizeof(start));
                printf("  %s  %s  %s%s%s  %s  %s  rerun %s  %s%s%s%s\n", ad->id, ad->content_id,
                       ad->mandatory ? "mandatory" : "available", ad->mandatory ? " from " : "",
                       ad->mandatory ? start : "", ad->program.context, ad->program.command,
                       cas_rerun_name(ad->rerun), v.state, v.detail[0] ? " (" : "", v.detail,
                       v.detail[0] ? ")" : "");
            }
        }
        cas_policy_free(&list[k]);
    }
    free(list);
    cas_history_free(&h);
    return 0;
}

int cas_cmd_policy(struct cas_agent *a, int argc, char **argv)
{
    if (argc < 2)
        return policy_usage();
    if (!strcmp(argv[1], "apply"))
        return policy_apply(a, argc - 1, argv + 1);
    if (!strcmp(argv[1], "fetch"))
        return policy_fetch(a, argc - 1);
    if (!strcmp(argv[1], "show"))
        return policy_show(a, argc - 1, argv + 1);
    return policy_usage();
}
