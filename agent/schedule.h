/* When an advertisement runs: the pure decision the service makes for each advertisement on
 * each pass, from the advertisement, its history record and the time. No I/O, so every rule is
 * unit-tested with an injected clock. */
#ifndef CAS_AGENT_SCHEDULE_H
#define CAS_AGENT_SCHEDULE_H

#include <time.h>

#include "agent/history.h"
#include "common/policy.h"

enum cas_due {
    CAS_DUE_NOTHING,     /* nothing to do now */
    CAS_DUE_PREDOWNLOAD, /* mandatory, start still ahead: make the content present now */
    CAS_DUE_RUN,         /* run the program now */
    CAS_DUE_RETRY,       /* a retryable exit code's retry time has come */
};

/* Decide for `ad` (fingerprint `fp`) with history record `rec` (NULL: never seen) at `now`.
 * Rules: a Retrying record of the same advertisement runs at next_retry; available
 * advertisements run only on `execute`; mandatory ones run once `start` has passed — the first
 * time always, again only as `rerun` says: never (never again, whatever the result or change),
 * if_failed (when policy changed the advertisement and its last run failed), always (each time
 * policy changes the advertisement). A record still Running (its owner is alive) does not run
 * again. *wake is lowered to the next time this advertisement needs a pass (start, retry);
 * leave it as is when nothing is ahead. */
enum cas_due cas_schedule_decide(const struct cas_advert *ad, const char *fp,
                                 const struct cas_history_rec *rec, time_t now, time_t *wake);

const char *cas_due_name(enum cas_due d);

#endif
