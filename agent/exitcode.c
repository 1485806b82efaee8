/* Exit status classification (see exitcode.h for the 8-bit rule). */
#include "agent/exitcode.h"

#include <stddef.h>

static const int64_t restart_codes[] = {1604, 1641, 3010, 3011};

int cas_exit_code_matches(int64_t listed, int status)
{
    if (listed == status)
        return 1;
    return listed > 255 && (listed & 0xFF) == status;
}

/* Exact matches win over 8-bit ones, so a listed 194 is itself before it is 3010. */
static int find(const int64_t *codes, size_t n, int status, int exact, int64_t *listed)
{
    for (size_t i = 0; i < n; i++) {
        if (exact ? codes[i] == status : cas_exit_code_matches(codes[i], status)) {
            if (listed)
                *listed = codes[i];
            return 1;
        }
    }
    return 0;
}

enum cas_exit_class cas_exit_classify(const struct cas_program *prog, const struct cas_config *cfg,
                                      int status, int64_t *listed)
{
    size_t nr = sizeof(restart_codes) / sizeof(restart_codes[0]);
    if (listed)
        *listed = status;
    for (int exact = 1; exact >= 0; exact--) {
        if (find(restart_codes, nr, status, exact, listed))
            return CAS_EXIT_SUCCESS_RESTART;
        if (find(prog->success_codes, prog->n_success_codes, status, exact, listed))
            return CAS_EXIT_SUCCESS;
        if (find(cfg->retry_codes, cfg->n_retry_codes, status, exact, listed))
            return CAS_EXIT_RETRY;
    }
    return CAS_EXIT_FAILED;
}

const char *cas_exit_class_name(enum cas_exit_class c)
{
    switch (c) {
    case CAS_EXIT_SUCCESS:
        return "Success";
    case CAS_EXIT_SUCCESS_RESTART:
        return "SuccessRebootRequired";
    case CAS_EXIT_RETRY:
        return "FailureRetry";
    case CAS_EXIT_FAILED:
        break;
    }
    return "FailureNonRetry";
}
