/* The per-advertisement scheduling rules (see schedule.h). */
#include "agent/schedule.h"

#include <string.h>

static void wake_at(time_t *wake, time_t t)
{
    if (*wake == 0 || t < *wake)
        *wake = t;
}

enum cas_due cas_schedule_decide(const struct cas_advert *ad, const char *fp,
                                 const struct cas_history_rec *rec, time_t now, time_t *wake)
{
    int changed = rec && rec->runs > 0 && strcmp(rec->fingerprint, fp) != 0;

    if (rec && rec->state == CAS_RUN_RUNNING)
        return CAS_DUE_NOTHING;
    if (rec && rec->state == CAS_RUN_RETRYING && !changed) {
        if (now >= rec->next_retry)
            return CAS_DUE_RETRY;
        wake_at(wake, rec->next_retry);
        return CAS_DUE_NOTHING;
    }
    if (!ad->mandatory)
        return CAS_DUE_NOTHING;
    int again;
    if (!rec || rec->runs == 0)
        again = 1;
    else if (ad->rerun == CAS_RERUN_IF_FAILED)
        again = changed && rec->state != CAS_RUN_SUCCEEDED;
    else if (ad->rerun == CAS_RERUN_ALWAYS)
        again = changed;
    else
        again = 0;
    if (!again)
        return CAS_DUE_NOTHING;
    if (now < ad->start) {
        wake_at(wake, ad->start);
        return CAS_DUE_PREDOWNLOAD;
    }
    return CAS_DUE_RUN;
}

const char *cas_due_name(enum cas_due d)
{
    switch (d) {
    case CAS_DUE_PREDOWNLOAD:
        return "predownload";
    case CAS_DUE_RUN:
        return "run";
    case CAS_DUE_RETRY:
        return "retry";
    case CAS_DUE_NOTHING:
        break;
    }
    return "nothing";
}
