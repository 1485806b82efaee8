/* One pass of the service, and its record in <state_dir>/service.json. */
#include "agent/service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/advert_view.h"
#include "agent/exec_advert.h"
#include "agent/history.h"
#include "agent/policy_fetch.h"
#include "agent/policy_store.h"
#include "agent/schedule.h"
#include "agent/signals.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timefmt.h"

#define SERVICE_FILE "service.json"

static void pass_error(struct cas_pass *p, cas_hr hr)
{
    if (p->first_error != CAS_OK || hr == CAS_OK)
        return;
    p->first_error = hr;
    snprintf(p->first_detail, sizeof(p->first_detail), "%s", cas_err_detail());
}

/* Called under the history lock: the record may have changed since it was read. */
static void reap_one(struct cas_history_rec *r, void *ud)
{
    (void)ud;
    if (cas_history_owner_alive(r))
        return;
    if (r->state == CAS_RUN_RUNNING) {
        cas_log_warn(CAS_LOG_EXECMGR,
                     "Advert %s was running when its agent (pid %ld) ended; the program's result "
                     "is unknown and it is recorded as interrupted, error 0x%08X",
                     r->id, (long)r->pid, CAS_E_PROGRAM_INTERRUPTED);
        r->state = CAS_RUN_FAILED;
        r->hr = CAS_E_PROGRAM_INTERRUPTED;
        r->has_exit = 0;
        r->ended = cas_clock_now();
    }
    r->downloading = 0;
    r->pid = 0;
    r->pid_start = 0;
}

/* Records of agents that died while running a program or downloading: never left Running, so a
 * dead run is not mistaken for a live one (and `never` still never runs it again). */
static cas_hr service_reap(struct cas_agent *a)
{
    struct cas_history h;
    cas_hr hr = cas_history_load(a->cfg.state_dir, &h);
    if (hr != CAS_OK)
        return hr;
    for (size_t i = 0; i < h.n && hr == CAS_OK; i++) {
        const struct cas_history_rec *r = &h.recs[i];
        if (r->pid && !cas_history_owner_alive(r))
            hr = cas_history_update(a->cfg.state_dir, r->id, reap_one, NULL);
    }
    cas_history_free(&h);
    return hr;
}

static void pass_advert(struct cas_agent *a, const struct cas_advert *ad,
                        const struct cas_history_rec *rec, time_t now, struct cas_pass *p)
{
    char fp[CAS_FINGERPRINT_HEX + 1], when[32];
    struct cas_exec_result res = {0};
    cas_hr hr = CAS_OK;
    cas_advert_fingerprint(ad, fp);
    enum cas_due due = cas_schedule_decide(ad, fp, rec, now, &p->wake);
    cas_time_format(ad->start, when, sizeof(when));
    switch (due) {
    case CAS_DUE_NOTHING:
        return;
    case CAS_DUE_PREDOWNLOAD:
        if (cas_advert_content_present(a, ad))
            return;
        cas_log_info(CAS_LOG_EXECMGR,
                     "Content %s for mandatory advert %s is downloaded ahead of its start at %s",
                     ad->content_id, ad->id, when);
        hr = cas_exec_predownload(a, ad);
        if (hr != CAS_OK)
            cas_log_error(CAS_LOG_EXECMGR,
                          "Content %s for advert %s could not be downloaded ahead of its start, "
                          "error 0x%08X; the next pass tries again",
                          ad->content_id, ad->id, hr);
        break;
    case CAS_DUE_RUN:
        cas_log_info(CAS_LOG_EXECMGR, "Mandatory advert %s is due (start %s, rerun %s)", ad->id,
                     when, cas_rerun_name(ad->rerun));
        hr = cas_exec_advert(a, ad, "mandatory", &res);
        p->ran++;
        break;
    case CAS_DUE_RETRY:
        cas_log_info(CAS_LOG_EXECMGR, "Advert %s is retried (retry %u of %ld)", ad->id,
                     rec ? rec->retries : 1, a->cfg.retry_count);
        hr = cas_exec_advert(a, ad, "retry", &res);
        p->ran++;
        break;
    }
    if (hr == CAS_E_PROGRAM_RETRY && res.next_retry && (p->wake == 0 || res.next_retry < p->wake))
        p->wake = res.next_retry;
    pass_error(p, hr);
}

cas_hr cas_service_pass(struct cas_agent *a, struct cas_pass *p)
{
    struct cas_policy *pols = NULL;
    struct cas_history h = {0};
    size_t n = 0;
    cas_hr hr;

    p->first_error = CAS_OK;
    p->first_detail[0] = '\0';
    p->wake = 0;
    p->ran = 0;
    p->poll_hr = CAS_OK;
    hr = service_reap(a);
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_EXECMGR, "%s, error 0x%08X", cas_err_detail(), hr);
        pass_error(p, hr);
        return p->first_error;
    }
    if (p->poll && a->cfg.management_point) {
        int changed = 0;
        p->poll_hr = cas_policy_fetch(a, NULL, &changed);
        pass_error(p, p->poll_hr);
    }
    hr = cas_policy_store_load_all(a, &pols, &n);
    if (hr == CAS_OK)
        hr = cas_history_load(a->cfg.state_dir, &h);
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_EXECMGR, "No advertisement is run this pass: %s, error 0x%08X",
                      cas_err_detail(), hr);
        pass_error(p, hr);
        goto cleanup;
    }
    time_t now = cas_clock_now();
    for (size_t k = 0; k < n && !cas_stop_requested(); k++) {
        if (cas_policy_is_expired(&pols[k], now)) {
            char when[32];
            cas_time_format(pols[k].expires, when, sizeof(when));
            cas_log_warn(CAS_LOG_EXECMGR,
                         "The applied policy for site %s expired at %s; none of its "
                         "advertisements is run until a newer policy is applied",
                         pols[k].site, when);
            continue;
        }
        for (size_t i = 0; i < pols[k].n_adverts && !cas_stop_requested(); i++) {
            const struct cas_advert *ad = &pols[k].adverts[i];
            pass_advert(a, ad, cas_history_find(&h, ad->id), cas_clock_now(), p);
        }
    }
    if (cas_stop_requested())
        pass_error(p, cas_fail(CAS_E_CANCELLED, "stopped: the agent is stopping"));
cleanup:
    cas_history_free(&h);
    for (size_t k = 0; k < n; k++)
        cas_policy_free(&pols[k]);
    free(pols);
    return p->first_error;
}

static char *service_path(const struct cas_agent *a)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", a->cfg.state_dir, SERVICE_FILE) < 0)
        return NULL;
    return p;
}

cas_hr cas_service_info_save(struct cas_agent *a, const struct cas_service_info *info)
{
    char *path = service_path(a), code[16];
    cJSON *o = cJSON_CreateObject();
    cas_hr hr = CAS_OK;
    if (!path || !o) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    cJSON_AddNumberToObject(o, "pid", (double)info->pid);
    /* Unknown times are null; the loader reads anything but a time string as unknown. */
    cas_json_add_time(o, "started", info->started);
    cas_json_add_time(o, "last_poll", info->last_poll);
    cas_json_add_time(o, "next_poll", info->next_poll);
    cas_json_add_time(o, "last_pass", info->last_pass);
    snprintf(code, sizeof(code), "0x%08X", info->last_poll_hr);
    cJSON_AddStringToObject(o, "last_poll_result", code);
    hr = cas_fs_mkdirs(a->cfg.state_dir, 0755);
    if (hr == CAS_OK)
        hr = cas_json_write_atomic(path, o, 0644);
cleanup:
    cJSON_Delete(o);
    free(path);
    return hr;
}

static time_t info_time(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    time_t t = 0;
    if (cJSON_IsString(v) && cas_time_parse(v->valuestring, &t) != CAS_OK)
        t = 0;
    return t;
}

cas_hr cas_service_info_load(struct cas_agent *a, struct cas_service_info *info)
{
    char *path = service_path(a), *buf = NULL;
    size_t len = 0;
    cJSON *o = NULL;
    cas_hr hr;
    memset(info, 0, sizeof(*info));
    if (!path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_read_file(path, 65536, &buf, &len);
    if (hr == CAS_E_FILE_MISSING) {
        hr = CAS_OK;
        goto cleanup;
    }
    if (hr == CAS_OK)
        hr = cas_json_parse(buf, len, 2, path, &o);
    if (hr != CAS_OK)
        goto cleanup;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "last_poll_result");
    if (cas_json_is_int(pid, 0, INT32_MAX))
        info->pid = (long)pid->valuedouble;
    if (info->pid && kill((pid_t)info->pid, 0) != 0 && errno == ESRCH)
        info->pid = 0;
    if (cJSON_IsString(res))
        cas_err_parse(res->valuestring, &info->last_poll_hr);
    info->started = info_time(o, "started");
    info->last_poll = info_time(o, "last_poll");
    info->next_poll = info_time(o, "next_poll");
    info->last_pass = info_time(o, "last_pass");
cleanup:
    cJSON_Delete(o);
    free(buf);
    free(path);
    return hr;
}
