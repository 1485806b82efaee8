/* What a program's exit status means. Exit statuses on Linux are 8 bits, while policies carry
 * Windows-style codes (3010: success, restart required). A listed code above 255 matches the
 * status it becomes when a program exits with it (`exit 3010` in a shell gives 3010 & 255 = 194),
 * so installers ported from Windows keep their codes; a code up to 255 matches only itself. */
#ifndef CAS_AGENT_EXITCODE_H
#define CAS_AGENT_EXITCODE_H

#include <stdint.h>

#include "common/config.h"
#include "common/policy.h"

enum cas_exit_class {
    CAS_EXIT_SUCCESS,         /* a success code */
    CAS_EXIT_SUCCESS_RESTART, /* 1604, 1641, 3010, 3011: success, a restart is required */
    CAS_EXIT_RETRY,           /* one of the configured retry_codes */
    CAS_EXIT_FAILED,          /* anything else */
};

/* 1 if a listed code matches the exit status (see above). */
int cas_exit_code_matches(int64_t listed, int status);

/* Classify `status`: restart codes first (always a success, whatever success_codes says, as on
 * the real client), then the program's success_codes, then the configured retry codes.
 * *listed (may be NULL) receives the code that matched (3010 for status 194), or the status. */
enum cas_exit_class cas_exit_classify(const struct cas_program *prog, const struct cas_config *cfg,
                                      int status, int64_t *listed);

/* The real client's execution status names: Success, SuccessRebootRequired, FailureRetry,
 * FailureNonRetry. */
const char *cas_exit_class_name(enum cas_exit_class c);

#endif
