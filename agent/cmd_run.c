/* cas-agent run [--once]: the service. One instance per state folder (an flock on
 * <state_dir>/run.lock); polls the management point every policy_poll_minutes with ±10% jitter
 * so a fleet does not arrive at once; wakes for advertisement starts and retries in between;
 * SIGTERM / SIGINT stop it cleanly, SIGHUP reloads the configuration. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "agent/agent.h"
#include "agent/service.h"
#include "agent/signals.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/timefmt.h"

#define RUN_LOCK "run.lock"

static int run_usage(void)
{
    fputs("usage: cas-agent run [--once]\n", stderr);
    return 2;
}

/* The instance lock, held (by the open descriptor) until the process ends. */
static cas_hr run_lock(struct cas_agent *a, int *fd_out)
{
    char *path = NULL, pid[32];
    int fd = -1;
    cas_hr hr = cas_fs_mkdirs(a->cfg.state_dir, 0755);
    if (hr != CAS_OK)
        return hr;
    if (asprintf(&path, "%s/%s", a->cfg.state_dir, RUN_LOCK) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        hr = cas_fail(cas_err_from_errno(errno), "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        hr = err == EWOULDBLOCK
                 ? cas_fail(CAS_E_ALREADY_RUNNING,
                            "another cas-agent run (pid %s) is using state folder %s",
                            pid[0] ? pid : "?", a->cfg.state_dir)
                 : cas_fail(cas_err_from_errno(err), "%s: %s", path, strerror(err));
        close(fd);
        goto cleanup;
    }
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The pid is for the message above only: the lock itself is what counts. */
    }
    *fd_out = fd;
cleanup:
    free(path);
    return hr;
}

/* policy_poll_minutes scaled by a uniform factor in [0.9, 1.1]. */
static time_t run_poll_interval(const struct cas_agent *a)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)getpid() * 2654435761u;
    double f = 0.9 + 0.2 * ((double)r / 4294967295.0);
    time_t s = (time_t)(a->cfg.policy_poll_minutes * 60.0 * f + 0.5);
    return s < 1 ? 1 : s;
}

/* Sleep until `until`, a stop or a reload request. Returns 1 if a reload was requested. */
static int run_sleep(time_t until)
{
    while (!cas_stop_requested()) {
        /* Programs' leftovers adopted while the agent was their subreaper: no zombies in a
         * service that runs for months. No program runs now, so these are not the runner's. */
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (cas_reload_requested())
            return 1;
        time_t now = cas_clock_now();
        if (now >= until)
            return 0;
        /* Short naps: a signal between the check and the nap costs at most this long. */
        struct timespec nap = {0, 250L * 1000 * 1000};
        if (until - now < 1)
            nap.tv_nsec = 100L * 1000 * 1000;
        nanosleep(&nap, NULL);
    }
    return 0;
}

static void run_report(const struct cas_pass *p)
{
    if (p->first_error == CAS_OK)
        return;
    fprintf(stderr, "cas-agent: error 0x%08X: %s\n", p->first_error,
            p->first_detail[0] ? p->first_detail : cas_err_message(p->first_error));
}

int cas_cmd_run(struct cas_agent *a, int argc, char **argv)
{
    int once = 0, fd = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--once"))
            once = 1;
        else
            return run_usage();
    }
    cas_hr hr = run_lock(a, &fd);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    cas_signals_install();

    struct cas_service_info info = {0};
    struct cas_pass pass = {0};
    char when[32];
    cas_service_info_load(a, &info);
    info.pid = once ? 0 : (long)getpid();
    info.started = cas_clock_now();
    cas_log_info(CAS_LOG_EXECMGR,
                 "cas-agent %s started (pid %ld): management point %s, policy every %g minutes",
                 once ? "run --once" : "service", (long)getpid(),
                 a->cfg.management_point ? a->cfg.management_point : "(none)",
                 a->cfg.policy_poll_minutes);

    time_t next_poll = 0; /* poll at once on start */
    for (;;) {
        time_t now = cas_clock_now();
        pass.poll = now >= next_poll;
        cas_service_pass(a, &pass);
        now = cas_clock_now();
        info.last_pass = now;
        if (pass.poll && a->cfg.management_point) {
            info.last_poll = now;
            info.last_poll_hr = pass.poll_hr;
        }
        if (pass.poll)
            next_poll = now + run_poll_interval(a);
        info.next_poll = a->cfg.management_point && !once ? next_poll : 0;
        if (cas_service_info_save(a, &info) != CAS_OK)
            cas_log_warn(CAS_LOG_EXECMGR, "The service record was not saved: %s", cas_err_detail());
        if (once || cas_stop_requested())
            break;
        time_t wake = next_poll;
        if (pass.wake && pass.wake < wake)
            wake = pass.wake;
        cas_time_format(wake, when, sizeof(when));
        cas_log_verbose(CAS_LOG_EXECMGR, "Next pass at %s", when);
        if (run_sleep(wake)) {
            double before = a->cfg.policy_poll_minutes;
            cas_log_info(CAS_LOG_EXECMGR, "SIGHUP: reloading configuration %s", a->config_path);
            if (cas_agent_reload(a, CAS_LOG_EXECMGR) == CAS_OK &&
                before != a->cfg.policy_poll_minutes)
                next_poll = info.last_poll + run_poll_interval(a);
        }
        if (cas_stop_requested())
            break;
    }

    if (cas_stop_requested()) {
        cas_log_info(CAS_LOG_EXECMGR, "cas-agent service stopping (signal %d): state saved",
                     cas_stop_signal());
    }
    info.pid = 0;
    cas_service_info_save(a, &info);
    close(fd);
    if (once) {
        cas_log_info(CAS_LOG_EXECMGR, "run --once finished: %u program(s) started, %s", pass.ran,
                     pass.first_error == CAS_OK ? "all went well" : "with errors");
        run_report(&pass);
        return pass.first_error == CAS_OK ? 0 : 1;
    }
    return 0;
}
