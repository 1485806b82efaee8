/* cas-agent execute ADVERT_ID: the program runs only from content verified against the signed
 * hash, after the download (or the check of what is cached) succeeded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/download.h"
#include "agent/policy_store.h"
#include "common/fsutil.h"
#include "common/log.h"

static int is_success(const struct cas_program *prog, int code)
{
    for (size_t i = 0; i < prog->n_success_codes; i++) {
        if (prog->success_codes[i] == code)
            return 1;
    }
    return 0;
}

static const char *exec_status(const struct cas_program *prog, int code)
{
    if (!is_success(prog, code))
        return "FailureNonRetry";
    if (code == 1604 || code == 1641 || code == 3010 || code == 3011)
        return "SuccessRebootRequired";
    return "Success";
}

static cas_hr execute_advert(struct cas_agent *a, const struct cas_advert *ad)
{
    const struct cas_program *prog = &ad->program;
    char sid[64], detail[1024];
    char *path = NULL, *content = NULL, **argv = NULL;
    struct cache_hold *hold = NULL;
    int code = -1;
    cas_hr hr;

    cas_log_info(CAS_LOG_EXECMGR,
                 "Execution Request for advert %s package %s program %s state change from "
                 "NotExist to WaitingContent",
                 ad->id, ad->package, prog->command);
    const char *user = strncmp(prog->context, "user:", 5) ? NULL : prog->context + 5;
    hr = cas_context_sid(prog->context, sid, sizeof(sid));
    if (hr == CAS_OK && user && geteuid() != 0)
        hr = cas_fail(CAS_E_ACCESSDENIED,
                      "context %s needs the agent to run as root to switch to that user",
                      prog->context);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s will not be run: %s, error 0x%08X",
                      prog->command, ad->id, detail, hr);
        return cas_fail(hr, "%s", detail);
    }
    cas_log_info(CAS_LOG_EXECMGR, "Requesting content from CAS for package %s version %llu",
                 ad->package, (unsigned long long)ad->version);
    /* Held until the program ends: nobody removes or replaces the content under it. */
    hr = cas_download_content_held(a, ad, sid, &hold);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_log_error(CAS_LOG_EXECMGR, "Content %s is not available for program %s, error 0x%08X",
                      ad->content_id, prog->command, hr);
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s will not be run", prog->command,
                      ad->id);
        return cas_fail(hr, "%s", detail);
    }
    cas_log_info(CAS_LOG_EXECMGR, "Content %s is available for program %s", ad->content_id,
                 prog->command);

    struct cache *cache = NULL;
    hr = cas_agent_cache(a, &cache);
    if (hr != CAS_OK)
        return hr;
    content = cache_content_path(cache, ad->content_id);
    if (!content) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    path = prog->command[0] == '/' ? strdup(prog->command) : cas_path_join(content, prog->command);
    argv = calloc(prog->argc + 2, sizeof(*argv));
    if (!path || !argv) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        hr = cas_fail(CAS_E_FILE_MISSING, "program %s is not a file %s", prog->command,
                      prog->command[0] == '/' ? "on this machine" : "of the content");
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s will not be run: %s, error 0x%08X",
                      prog->command, ad->id, cas_err_detail(), hr);
        goto cleanup;
    }
    argv[0] = prog->command;
    for (size_t i = 0; i < prog->argc; i++)
        argv[i + 1] = prog->args[i];

    cas_log_info(CAS_LOG_EXECMGR, "Executing program %s under context %s", prog->command, sid);
    if (user)
        cas_log_verbose(CAS_LOG_EXECMGR, "Context %s is user %s", sid, user);
    cas_log_verbose(CAS_LOG_EXECMGR, "Command line: %s, %zu argument(s), working folder %s", path,
                    prog->argc, content);
    struct cas_run_request req = {path, argv, content, prog->max_run_minutes, user};
    hr = a->runner->run(a->runner, &req, &code);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s failed to run: %s, error 0x%08X",
                      prog->command, ad->id, detail, hr);
        cas_fail(hr, "%s", detail);
        goto cleanup;
    }
    cas_log_info(CAS_LOG_EXECMGR,
                 "Execution is complete for program %s. The exit code is %d, the execution "
                 "status is %s",
                 prog->command, code, exec_status(prog, code));
    if (!is_success(prog, code)) {
        hr = cas_fail(CAS_E_PROGRAM_FAILED, "program %s exited with code %d, not a success code",
                      prog->command, code);
    } else if (!strcmp(exec_status(prog, code), "SuccessRebootRequired")) {
        cas_log_warn(CAS_LOG_EXECMGR, "Program %s exited with code %d: a restart is required",
                     prog->command, code);
    }
cleanup:
    cache_release(hold);
    free(argv);
    free(path);
    free(content);
    return hr;
}

int cas_cmd_execute(struct cas_agent *a, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: cas-agent execute ADVERT_ID\n", stderr);
        return 2;
    }
    struct cas_policy p = {0};
    const struct cas_advert *ad = NULL;
    cas_hr hr = cas_policy_store_find(a, argv[1], 0, &p, &ad);
    if (hr == CAS_OK)
        hr = execute_advert(a, ad);
    cas_policy_free(&p);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    return 0;
}
