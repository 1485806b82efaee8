/* How an advertisement's state is shown (see advert_view.h). */
#include "agent/advert_view.h"

#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/json.h"
#include "common/timefmt.h"

int cas_advert_content_present(struct cas_agent *a, const struct cas_advert *ad)
{
    struct cache *c = NULL;
    enum cas_hash_alg alg;
    char hex[CAS_HASH_MAX_HEX + 1];
    if (cas_agent_cache(a, &c) != CAS_OK || !cache_has(c, ad->content_id))
        return 0;
    return cache_recorded_hash(c, ad->content_id, &alg, hex) == CAS_OK && alg == ad->alg &&
           cas_hex_equal(hex, ad->hash);
}

void cas_advert_view(struct cas_agent *a, const struct cas_advert *ad,
                     const struct cas_history_rec *rec, struct cas_advert_view *v)
{
    char t[32];
    int alive = rec && rec->pid && cas_history_owner_alive(rec);
    v->detail[0] = '\0';
    if (rec && rec->state == CAS_RUN_RUNNING) {
        if (alive) {
            v->state = "Running";
            cas_time_format(rec->started, t, sizeof(t));
            snprintf(v->detail, sizeof(v->detail), "since %s, agent pid %ld", t, (long)rec->pid);
        } else {
            v->state = "Failed";
            snprintf(v->detail, sizeof(v->detail),
                     "interrupted: its agent ended while it ran, error 0x%08X",
                     CAS_E_PROGRAM_INTERRUPTED);
        }
        return;
    }
    if (alive && rec->downloading) {
        v->state = "Downloading";
        return;
    }
    if (rec && rec->state == CAS_RUN_RETRYING) {
        v->state = "Retrying";
        cas_time_format(rec->next_retry, t, sizeof(t));
        snprintf(v->detail, sizeof(v->detail), "at %s, exit %lld", t, (long long)rec->exit_code);
        return;
    }
    if (rec && rec->state == CAS_RUN_SUCCEEDED) {
        v->state = "Succeeded";
        snprintf(v->detail, sizeof(v->detail), "exit %lld%s", (long long)rec->exit_code,
                 rec->restart_required ? ", restart required" : "");
        return;
    }
    if (rec && rec->state == CAS_RUN_FAILED) {
        v->state = "Failed";
        if (rec->has_exit)
            snprintf(v->detail, sizeof(v->detail), "exit %lld, error 0x%08X",
                     (long long)rec->exit_code, rec->hr);
        else
            snprintf(v->detail, sizeof(v->detail), "error 0x%08X", rec->hr);
        return;
    }
    if (cas_advert_content_present(a, ad)) {
        v->state = "Ready";
        return;
    }
    v->state = "WaitingContent";
    if (rec && rec->content_hr)
        snprintf(v->detail, sizeof(v->detail), "last attempt failed, error 0x%08X",
                 rec->content_hr);
}

void cas_advert_view_json(cJSON *o, const struct cas_advert *ad, const struct cas_history_rec *rec,
                          const struct cas_advert_view *v)
{
    char code[16];
    cJSON_AddStringToObject(o, "state", v->state);
    cJSON_AddStringToObject(o, "state_detail", v->detail);
    cas_json_add_time(o, "start", ad->start);
    cJSON_AddStringToObject(o, "rerun", cas_rerun_name(ad->rerun));
    cJSON_AddNumberToObject(o, "runs", rec ? rec->runs : 0);
    if (rec && rec->has_exit)
        cJSON_AddNumberToObject(o, "last_exit_code", (double)rec->exit_code);
    else
        cJSON_AddNullToObject(o, "last_exit_code");
    if (rec && (rec->hr || rec->content_hr)) {
        snprintf(code, sizeof(code), "0x%08X", rec->hr ? rec->hr : rec->content_hr);
        cJSON_AddStringToObject(o, "last_error", code);
    } else {
        cJSON_AddNullToObject(o, "last_error");
    }
    cas_json_add_time(o, "last_started", rec ? rec->started : 0);
    cas_json_add_time(o, "last_ended", rec ? rec->ended : 0);
    cas_json_add_time(o, "next_retry", rec && rec->state == CAS_RUN_RETRYING ? rec->next_retry : 0);
    cJSON_AddBoolToObject(o, "restart_required", rec && rec->restart_required);
}
