/* Running an advertisement's program (see exec_advert.h). The order is the safety argument:
 * content held and re-verified, the start written durably to the history, only then the
 * program; the result is written after it ends. */
#include "agent/exec_advert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/download.h"
#include "agent/history.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/timefmt.h"

/* What the history callbacks need. */
struct exec_rec {
    const char *fp;
    enum cas_run_state state;
    int restart;
    int has_exit;
    int exit_code;
    cas_hr hr;
    time_t next_retry;
    int retry_used;
    unsigned retries; /* out of rec_started: retries already used for this fingerprint */
    pid_t busy;       /* out of rec_started: the agent already running this advert */
};

static void rec_started(struct cas_history_rec *r, void *ud)
{
    struct exec_rec *e = ud;
    /* Decided under the history lock, so two agents cannot both start it. */
    if (r->state == CAS_RUN_RUNNING && r->pid != getpid() && cas_history_owner_alive(r)) {
        e->busy = r->pid;
        return;
    }
    if (strcmp(r->fingerprint, e->fp) != 0)
        r->retries = 0; /* a changed advertisement starts its retries afresh */
    snprintf(r->fingerprint, sizeof(r->fingerprint), "%s", e->fp);
    r->state = CAS_RUN_RUNNING;
    r->runs++;
    r->started = cas_clock_now();
    r->ended = 0;
    r->next_retry = 0;
    r->has_exit = 0;
    r->hr = 0;
    r->content_hr = 0;
    r->restart_required = 0;
    r->downloading = 0;
    e->retries = r->retries;
    cas_history_own(r);
}

static void rec_ended(struct cas_history_rec *r, void *ud)
{
    const struct exec_rec *e = ud;
    r->state = e->state;
    r->restart_required = e->restart;
    r->has_exit = e->has_exit;
    r->exit_code = e->exit_code;
    r->hr = e->hr;
    r->ended = cas_clock_now();
    r->next_retry = e->next_retry;
    if (e->retry_used)
        r->retries++;
    r->pid = 0;
    r->pid_start = 0;
}

static void rec_content_failed(struct cas_history_rec *r, void *ud)
{
    r->content_hr = *(const cas_hr *)ud;
    if (r->downloading) {
        r->downloading = 0;
        r->pid = 0;
        r->pid_start = 0;
    }
}

static void rec_downloading(struct cas_history_rec *r, void *ud)
{
    (void)ud;
    r->downloading = 1;
    cas_history_own(r);
}

static void rec_content_ok(struct cas_history_rec *r, void *ud)
{
    (void)ud;
    r->content_hr = 0;
    if (r->downloading) {
        r->downloading = 0;
        r->pid = 0;
        r->pid_start = 0;
    }
}

/* Best effort for records that only inform status: the run's own records are not. */
static void history_note(struct cas_agent *a, const char *id,
                         void (*fn)(struct cas_history_rec *, void *), void *ud)
{
    if (cas_history_update(a->cfg.state_dir, id, fn, ud) != CAS_OK)
        cas_log_warn(CAS_LOG_EXECMGR, "Could not update the history of advert %s: %s", id,
                     cas_err_detail());
}

/* After the program ended: what its exit status means, what happens next, and the history. */
static cas_hr exec_result(struct cas_agent *a, const struct cas_advert *ad, int code,
                          struct exec_rec *e, struct cas_exec_result *res)
{
    const struct cas_program *prog = &ad->program;
    int64_t listed = code;
    enum cas_exit_class cls = cas_exit_classify(prog, &a->cfg, code, &listed);
    char shown[48] = "";
    cas_hr hr = CAS_OK;

    if (listed != code)
        snprintf(shown, sizeof(shown), " (%lld as a Windows exit code)", (long long)listed);
    if (cls == CAS_EXIT_RETRY) {
        if (ad->rerun == CAS_RERUN_NEVER && ad->mandatory) {
            cls = CAS_EXIT_FAILED;
            cas_log_warn(CAS_LOG_EXECMGR,
                         "Program %s of advert %s exited with retryable code %d%s, but its rerun "
                         "is never: it is not retried",
                         prog->command, ad->id, code, shown);
        } else if ((long)e->retries >= a->cfg.retry_count) {
            cls = CAS_EXIT_FAILED;
            cas_log_warn(CAS_LOG_EXECMGR,
                         "Program %s of advert %s exited with retryable code %d%s; all %ld "
                         "retries are used",
                         prog->command, ad->id, code, shown, a->cfg.retry_count);
        }
    }
    cas_log_info(CAS_LOG_EXECMGR,
                 "Execution is complete for program %s. The exit code is %d%s, the execution "
                 "status is %s",
                 prog->command, code, shown, cas_exit_class_name(cls));

    e->has_exit = 1;
    e->exit_code = code;
    switch (cls) {
    case CAS_EXIT_SUCCESS_RESTART:
        e->restart = 1;
        cas_log_warn(CAS_LOG_EXECMGR, "Program %s exited with code %d%s: a restart is required",
                     prog->command, code, shown);
        /* fall through */
    case CAS_EXIT_SUCCESS:
        e->state = CAS_RUN_SUCCEEDED;
        break;
    case CAS_EXIT_RETRY: {
        char when[32];
        e->state = CAS_RUN_RETRYING;
        e->retry_used = 1;
        e->next_retry = cas_clock_now() + (time_t)(a->cfg.retry_interval_minutes * 60.0 + 0.5);
        e->hr = CAS_E_PROGRAM_RETRY;
        cas_time_format(e->next_retry, when, sizeof(when));
        cas_log_warn(CAS_LOG_EXECMGR,
                     "Program %s of advert %s exited with retryable code %d%s; it runs again at "
                     "%s",
                     prog->command, ad->id, code, shown, when);
        hr = cas_fail(CAS_E_PROGRAM_RETRY,
                      "program %s exited with retryable code %d%s; it runs again at %s",
                      prog->command, code, shown, when);
        break;
    }
    case CAS_EXIT_FAILED:
        e->state = CAS_RUN_FAILED;
        e->hr = CAS_E_PROGRAM_FAILED;
        hr = cas_fail(CAS_E_PROGRAM_FAILED, "program %s exited with code %d, not a success code",
                      prog->command, code);
        break;
    }
    if (res) {
        res->cls = cls;
        res->next_retry = e->next_retry;
    }
    return hr;
}

cas_hr cas_exec_advert(struct cas_agent *a, const struct cas_advert *ad, const char *why,
                       struct cas_exec_result *res)
{
    const struct cas_program *prog = &ad->program;
    char sid[64], detail[1024], fp[CAS_FINGERPRINT_HEX + 1];
    char *path = NULL, *content = NULL, **argv = NULL;
    struct cache_hold *hold = NULL;
    struct exec_rec e = {0};
    int code = -1, started = 0;
    cas_hr hr;

    if (res)
        memset(res, 0, sizeof(*res));
    cas_advert_fingerprint(ad, fp);
    e.fp = fp;
    cas_log_info(CAS_LOG_EXECMGR,
                 "Execution Request for advert %s package %s program %s state change from "
                 "NotExist to WaitingContent",
                 ad->id, ad->package, prog->command);
    cas_log_verbose(CAS_LOG_EXECMGR, "Advert %s is run %s (%s, rerun %s)", ad->id, why,
                    ad->mandatory ? "mandatory" : "available", cas_rerun_name(ad->rerun));
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
        history_note(a, ad->id, rec_content_failed, &hr);
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
        history_note(a, ad->id, rec_content_failed, &hr);
        return cas_fail(hr, "%s", detail);
    }
    cas_log_info(CAS_LOG_EXECMGR, "Content %s is available for program %s", ad->content_id,
                 prog->command);

    struct cache *cache = NULL;
    hr = cas_agent_cache(a, &cache);
    if (hr != CAS_OK)
        goto cleanup;
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
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s will not be run: %s, error 0x%08X",
                      prog->command, ad->id, detail, hr);
        history_note(a, ad->id, rec_content_failed, &hr);
        cas_fail(hr, "%s", detail); /* the history may have set its own detail */
        goto cleanup;
    }
    /* The commit made only the downloading advert's command executable; another advert of the
     * same content may name another of its files. */
    if (prog->command[0] != '/' && !(st.st_mode & S_IXUSR)) {
        hr = cache_make_executable(cache, ad->content_id, prog->command);
        if (hr != CAS_OK) {
            snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            cas_log_error(CAS_LOG_EXECMGR,
                          "Program %s of advert %s will not be run: %s, error 0x%08X",
                          prog->command, ad->id, detail, hr);
            history_note(a, ad->id, rec_content_failed, &hr);
            cas_fail(hr, "%s", detail);
            goto cleanup;
        }
    }
    argv[0] = prog->command;
    for (size_t i = 0; i < prog->argc; i++)
        argv[i + 1] = prog->args[i];

    /* Durably recorded before the start: if this fails, the program does not run. */
    hr = cas_history_update(a->cfg.state_dir, ad->id, rec_started, &e);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_log_error(CAS_LOG_EXECMGR,
                      "Program %s of advert %s will not be run: its start cannot be recorded: %s, "
                      "error 0x%08X",
                      prog->command, ad->id, detail, hr);
        cas_fail(hr, "%s", detail);
        goto cleanup;
    }
    if (e.busy) {
        hr = cas_fail(CAS_E_ALREADY_RUNNING,
                      "the program of advert %s is running now (cas-agent pid %ld); it is not "
                      "started twice",
                      ad->id, (long)e.busy);
        cas_log_error(CAS_LOG_EXECMGR, "Program %s of advert %s will not be run: %s, error 0x%08X",
                      prog->command, ad->id, cas_err_detail(), hr);
        goto cleanup;
    }
    started = 1;
    if (res)
        res->ran = 1;
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
        e.state = CAS_RUN_FAILED;
        e.hr = hr;
        cas_fail(hr, "%s", detail);
        goto cleanup;
    }
    if (res)
        res->exit_code = code;
    hr = exec_result(a, ad, code, &e, res);
cleanup:
    if (started) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", cas_err_detail());
        if (cas_history_update(a->cfg.state_dir, ad->id, rec_ended, &e) != CAS_OK)
            cas_log_error(CAS_LOG_EXECMGR, "Could not record the result of advert %s: %s", ad->id,
                          cas_err_detail());
        if (hr != CAS_OK)
            cas_fail(hr, "%s", keep);
    }
    cache_release(hold);
    free(argv);
    free(path);
    free(content);
    return hr;
}

cas_hr cas_exec_predownload(struct cas_agent *a, const struct cas_advert *ad)
{
    char sid[64], detail[1024];
    cas_hr hr = cas_context_sid(ad->program.context, sid, sizeof(sid));
    if (hr != CAS_OK) {
        history_note(a, ad->id, rec_content_failed, &hr);
        return hr;
    }
    history_note(a, ad->id, rec_downloading, NULL);
    hr = cas_download_content(a, ad, sid);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        history_note(a, ad->id, rec_content_failed, &hr);
        return cas_fail(hr, "%s", detail);
    }
    history_note(a, ad->id, rec_content_ok, NULL);
    return CAS_OK;
}
