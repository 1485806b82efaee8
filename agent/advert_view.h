/* An advertisement's state as `status` and `policy show` report it, from its history record,
 * the cache and the time: WaitingContent, Downloading, Ready, Running, Succeeded, Failed,
 * Retrying. */
#ifndef CAS_AGENT_ADVERT_VIEW_H
#define CAS_AGENT_ADVERT_VIEW_H

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/history.h"
#include "common/policy.h"

struct cas_advert_view {
    const char *state;
    char detail[160]; /* e.g. "exit 3, error 0xA0CA0101", "at 2026-11-23T08:00:00Z" */
};

/* 1 if the cache holds the advertisement's content, committed for its hash (not re-hashed). */
int cas_advert_content_present(struct cas_agent *a, const struct cas_advert *ad);

/* rec may be NULL (never seen). */
void cas_advert_view(struct cas_agent *a, const struct cas_advert *ad,
                     const struct cas_history_rec *rec, struct cas_advert_view *v);

/* The view and the record as JSON fields added to `o`: state, state_detail, start, rerun, runs,
 * last_exit_code, last_error, last_started, last_ended, next_retry, restart_required. */
void cas_advert_view_json(cJSON *o, const struct cas_advert *ad, const struct cas_history_rec *rec,
                          const struct cas_advert_view *v);

#endif
