/* The real process runner: fork, then in the child chdir to the content folder, stdin from
 * /dev/null, its own process group (so a timeout stops the whole tree), and exec. An exec
 * failure is reported to the parent through a close-on-exec pipe, so "could not start" is never
 * confused with "ran and exited 127". */
#include "agent/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void cas_runner_child(const struct cas_run_request *req, int errfd)
{
    int err;
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || dup2(nullfd, STDIN_FILENO) < 0 || setpgid(0, 0) != 0 ||
        chdir(req->cwd) != 0) {
        err = errno;
        goto failed;
    }
    /* Signals the agent ignores must not stay ignored in the program. */
    signal(SIGPIPE, SIG_DFL);
    execv(req->path, req->argv);
    err = errno;
failed:
    if (write(errfd, &err, sizeof(err)) < 0) {
        /* nothing more we can do in the child */
    }
    _exit(127);
}

static cas_hr cas_runner_run(const struct cas_runner *r, const struct cas_run_request *req,
                             int *exit_code)
{
    (void)r;
    int pipefd[2];
    int status = 0, err = 0;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return cas_fail(cas_err_from_errno(errno), "pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        err = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return cas_fail(cas_err_from_errno(err), "fork: %s", strerror(err));
    }
    if (pid == 0) {
        close(pipefd[0]);
        cas_runner_child(req, pipefd[1]);
    }
    close(pipefd[1]);
    ssize_t n;
    do {
        n = read(pipefd[0], &err, sizeof(err));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof(err)) {
        waitpid(pid, &status, 0);
        cas_hr hr = err == ENOEXEC ? 0x800700C1u /* ERROR_BAD_EXE_FORMAT */
                                   : cas_err_from_errno(err);
        if (!cas_err_known(hr))
            hr = CAS_E_EXEC_FATAL;
        return cas_fail(hr, "cannot start %s: %s%s", req->path, strerror(err),
                        err == ENOEXEC ? " (a script needs its #! line)" : "");
    }

    /* Poll so the run time can be bounded without signals or threads. */
    struct timespec start, now, nap = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    long limit = (long)(req->max_run_minutes * 60);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return cas_fail(cas_err_from_errno(errno), "waitpid: %s", strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (limit > 0 && now.tv_sec - start.tv_sec >= limit) {
            kill(-pid, SIGTERM);
            nanosleep(&(struct timespec){5, 0}, NULL);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return cas_fail(CAS_E_PROGRAM_TIMEOUT, "%s ran longer than %g minutes and was stopped",
                            req->path, req->max_run_minutes);
        }
        nanosleep(&nap, NULL);
    }
    if (WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_code = 128 + WTERMSIG(status);
    else
        *exit_code = -1;
    return CAS_OK;
}

const struct cas_runner cas_runner_default = {cas_runner_run};
