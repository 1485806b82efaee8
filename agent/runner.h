/* Starting the advertised program: an injectable runner so unit tests can observe what would run
 * without running it; runner.c has the real one (fork/exec). */
#ifndef CAS_RUNNER_H
#define CAS_RUNNER_H

#include "common/error.h"

struct cas_run_request {
    const char *path;  /* the program, absolute */
    char *const *argv; /* argv[0] is the program as the policy names it */
    const char *cwd;   /* the content folder */
    int max_run_minutes;
};

struct cas_runner {
    /* Run to completion. CAS_OK with *exit_code set when the program ran and exited;
     * CAS_E_PROGRAM_TIMEOUT when it was stopped after max_run_minutes; another code (with
     * detail) when it could not be started. */
    cas_hr (*run)(const struct cas_runner *r, const struct cas_run_request *req, int *exit_code);
};

extern const struct cas_runner cas_runner_default;

#endif
