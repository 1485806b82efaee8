/* Starting the advertised program: an injectable runner so unit tests can observe what would run
 * without running it; runner.c has the real one (fork/exec). */
#ifndef CAS_RUNNER_H
#define CAS_RUNNER_H

#include "common/error.h"

struct cas_run_request {
    const char *path;       /* the program, absolute */
    char *const *argv;      /* argv[0] is the program as the policy names it */
    const char *cwd;        /* the content folder */
    double max_run_minutes; /* fractions allowed; <= 0: no limit */
    const char *user;       /* NULL: as the agent itself; else run as this user (agent is root) */
};

struct cas_runner {
    /* Run to completion. CAS_OK with *exit_code set when the program ran and exited;
     * CAS_E_PROGRAM_TIMEOUT when its process group was ended after max_run_minutes;
     * CAS_E_CANCELLED when a stop was requested (cas_stop_requested) and the group was ended;
     * another code (with detail) when it could not be started. */
    cas_hr (*run)(const struct cas_runner *r, const struct cas_run_request *req, int *exit_code);
};

/* The real runner (runner.c): the program runs in its own process group, in the content folder,
 * with stdin from /dev/null, no descriptor above 2, and only HOME USER LOGNAME PATH LANG in its
 * environment; for `user` it runs with that user's groups, gid and uid (checked before exec). Its
 * stdout and stderr go, line by line, into execmgr.log at verbose level (at most 64 KiB per run).
 * While programs run the agent is a child subreaper, so it reaps their orphaned children. */
extern const struct cas_runner cas_runner_default;

#endif
