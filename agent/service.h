/* The service's work: one pass (poll if asked, then every applied advertisement: pre-download,
 * run, retry), and the service record <state_dir>/service.json that `status` reads. */
#ifndef CAS_AGENT_SERVICE_H
#define CAS_AGENT_SERVICE_H

#include <time.h>

#include "agent/agent.h"

struct cas_pass {
    int poll;           /* in: poll the management point first (when one is configured) */
    cas_hr first_error; /* out: the first failure of the pass, CAS_OK if all went well */
    char first_detail[512];
    time_t wake;    /* out: the earliest start or retry ahead, 0 if none */
    unsigned ran;   /* out: programs started */
    cas_hr poll_hr; /* out: the poll's result (when it polled) */
};

/* One pass. Stops early (CAS_E_CANCELLED as first_error) once a stop is requested. Records of
 * programs whose agent died while they ran are marked interrupted first. Returns first_error. */
cas_hr cas_service_pass(struct cas_agent *a, struct cas_pass *p);

/* The service record: what `status` shows about polling. Times 0 = unknown. */
struct cas_service_info {
    long pid; /* the running service, 0 if it is not running */
    time_t started, last_poll, next_poll, last_pass;
    cas_hr last_poll_hr;
};

cas_hr cas_service_info_save(struct cas_agent *a, const struct cas_service_info *info);
/* Missing: all zero, CAS_OK. pid is cleared when that process is no longer alive. */
cas_hr cas_service_info_load(struct cas_agent *a, struct cas_service_info *info);

#endif
