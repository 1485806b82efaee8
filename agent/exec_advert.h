/* Running an advertisement's program: content present and verified, the start recorded in the
 * history before the program starts, the program run in its context, the result classified and
 * recorded. Used by `execute` (on request) and by the service (mandatory, retries). */
#ifndef CAS_AGENT_EXEC_ADVERT_H
#define CAS_AGENT_EXEC_ADVERT_H

#include "agent/agent.h"
#include "agent/exitcode.h"
#include "common/policy.h"

struct cas_exec_result {
    int ran;                 /* the program was started */
    int exit_code;           /* its exit status, when it ran and exited */
    enum cas_exit_class cls; /* what the exit status means */
    time_t next_retry;       /* when cls is CAS_EXIT_RETRY and a retry is scheduled */
};

/* Run the program of `ad` (`why` names the trigger in execmgr.log: "on request", "mandatory",
 * "retry"). CAS_OK: it ran and succeeded (res->cls says whether a restart is required).
 * CAS_E_PROGRAM_RETRY: a retryable exit code, a retry is scheduled; CAS_E_PROGRAM_FAILED /
 * _TIMEOUT / CAS_E_CANCELLED: it ran and failed, was stopped, or the agent is stopping; any
 * other code: the content or the start failed (recorded as the content error when the program
 * never started). res may be NULL. */
cas_hr cas_exec_advert(struct cas_agent *a, const struct cas_advert *ad, const char *why,
                       struct cas_exec_result *res);

/* Make the content of mandatory `ad` present ahead of its start, recording a failure (and
 * Downloading while it runs) in the history. */
cas_hr cas_exec_predownload(struct cas_agent *a, const struct cas_advert *ad);

#endif
