/* The real process runner.
 *
 * Everything that can fail for a reason worth reporting (the user, its groups, the environment,
 * the pipes) is prepared before fork(): the agent has threads, so between fork and exec the child
 * may only make async-signal-safe calls (no NSS lookups, no malloc). The child then makes its own
 * process group, connects stdin to /dev/null and stdout+stderr to one pipe, switches to the user
 * (groups, gid, uid, then checks that the switch took and cannot be undone), enters the content
 * folder as that user, closes every other descriptor and execs with a cleared environment. Any
 * failure on the way is written to a close-on-exec pipe, so "could not start" is never confused
 * with "ran and exited 127".
 *
 * The parent waits on the program (pidfd when the kernel has it, else a short poll) while it
 * drains the output pipe into execmgr.log, so a chatty program never blocks on a full pipe. A run
 * that exceeds max_run_minutes, or an agent asked to stop, ends the whole process group: SIGTERM,
 * a grace period, then SIGKILL. The agent makes itself a child subreaper while programs run, so
 * the program's orphaned background processes become its children and are reaped here, and
 * "the group is gone" can be checked exactly even where PID 1 does not reap orphans. */
#include "agent/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/signals.h"
#include "common/log.h"

#define RUN_GRACE_SECONDS 5     /* between SIGTERM and SIGKILL to the group */
#define RUN_KILL_WAIT     5     /* after SIGKILL, how long to wait for the group to be reaped */
#define RUN_OUTPUT_MAX    65536 /* bytes of program output logged per run */
#define RUN_LINE_MAX      2048  /* bytes of one output line logged */
#define RUN_POLL_MS       200   /* longest sleep between looks at the stop flag */
#define RUN_GROUP_POLL_MS 50    /* while waiting for a signalled group to end */
#define RUN_MAX_LEFTOVERS 32

#define RUN_PATH_SYSTEM "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define RUN_PATH_USER   "PATH=/usr/local/bin:/usr/bin:/bin"

/* ---- what the child needs, all prepared before fork ---- */

enum child_step {
    STEP_SETPGID,
    STEP_STDIN,
    STEP_OUTPUT,
    STEP_SETGROUPS,
    STEP_SETGID,
    STEP_SETUID,
    STEP_IDENTITY,
    STEP_CHDIR,
    STEP_CLOSE_FDS,
    STEP_EXEC
};

struct child_error {
    int step;
    int err;
};

struct child_plan {
    const struct cas_run_request *req;
    int errfd, outfd;
    int switch_user;
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* the user's supplementary groups (getgrouplist) */
    int ngroups;
    gid_t *check; /* room for ngroups + 1 entries, to read them back */
    char *user_name;
    char *env[6]; /* HOME USER LOGNAME PATH LANG NULL */
};

static void plan_free(struct child_plan *c)
{
    free(c->groups);
    free(c->check);
    free(c->user_name);
    for (size_t i = 0; i < sizeof(c->env) / sizeof(c->env[0]); i++)
        free(c->env[i]);
    memset(c, 0, sizeof(*c));
}

/* getpwnam_r / getpwuid_r with a buffer that grows on ERANGE. *pw_out is NULL if there is no
 * such entry (returned error 0). */
static int lookup_passwd(const char *name, uid_t uid, struct passwd *pw, char **buf,
                         struct passwd **pw_out)
{
    size_t size = 4096;
    for (;;) {
        char *nb = realloc(*buf, size);
        if (!nb)
            return ENOMEM;
        *buf = nb;
        int rc = name ? getpwnam_r(name, pw, *buf, size, pw_out)
                      : getpwuid_r(uid, pw, *buf, size, pw_out);
        if (rc != ERANGE)
            return rc;
        if (size >= (1u << 20))
            return ERANGE;
        size *= 2;
    }
}

static cas_hr plan_groups(struct child_plan *c)
{
    int n = 32;
    for (;;) {
        gid_t *g = realloc(c->groups, (size_t)n * sizeof(*g));
        if (!g)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        c->groups = g;
        int got = n;
        if (getgrouplist(c->user_name, c->gid, c->groups, &got) >= 0) {
            c->ngroups = got;
            break;
        }
        if (got <= n || got > 65536)
            return cas_fail(CAS_E_NO_SUCH_USER, "cannot read the groups of user %s", c->user_name);
        n = got;
    }
    c->check = calloc((size_t)c->ngroups + 1, sizeof(*c->check));
    return c->check ? CAS_OK : cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
}

/* The identity the program runs as, and its cleared environment. */
static cas_hr plan_identity(const struct cas_run_request *req, struct child_plan *c)
{
    struct passwd pwbuf, *pw = NULL;
    char *buf = NULL, num[32];
    const char *home = "/", *name;
    cas_hr hr = CAS_OK;

    if (req->user) {
        if (geteuid() != 0)
            return cas_fail(CAS_E_ACCESSDENIED,
                            "running a program as user %s needs the agent to run as root",
                            req->user);
        int rc = lookup_passwd(req->user, 0, &pwbuf, &buf, &pw);
        if (!pw) {
            hr = cas_fail(CAS_E_NO_SUCH_USER, "user %s: %s", req->user,
                          rc ? strerror(rc) : "no such user on this machine");
            goto cleanup;
        }
        c->switch_user = 1;
        c->uid = pw->pw_uid;
        c->gid = pw->pw_gid;
    } else {
        /* System: the agent's own identity, named from its passwd entry when it has one. */
        lookup_passwd(NULL, geteuid(), &pwbuf, &buf, &pw);
    }
    if (pw) {
        name = pw->pw_name;
        if (pw->pw_dir && pw->pw_dir[0])
            home = pw->pw_dir;
    } else {
        snprintf(num, sizeof(num), "%lu", (unsigned long)geteuid());
        name = num;
    }
    c->user_name = strdup(name);
    const char *lang = getenv("LANG");
    if (!lang || !lang[0])
        lang = "C.UTF-8";
    if (!c->user_name || asprintf(&c->env[0], "HOME=%s", home) < 0 ||
        asprintf(&c->env[1], "USER=%s", name) < 0 || asprintf(&c->env[2], "LOGNAME=%s", name) < 0 ||
        !(c->env[3] = strdup(req->user ? RUN_PATH_USER : RUN_PATH_SYSTEM)) ||
        asprintf(&c->env[4], "LANG=%s", lang) < 0) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    if (c->switch_user)
        hr = plan_groups(c);
cleanup:
    free(buf);
    return hr;
}

/* ---- the child: async-signal-safe calls only ---- */

static void child_fail(int errfd, int step, int err)
{
    struct child_error e = {step, err};
    if (write(errfd, &e, sizeof(e)) < 0) {
        /* nothing more the child can do */
    }
    _exit(127);
}

static int same_groups(const struct child_plan *c)
{
    int n = getgroups(c->ngroups + 1, c->check);
    if (n != c->ngroups)
        return 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < c->ngroups && !found; j++)
            found = c->check[i] == c->groups[j];
        if (!found)
            return 0;
    }
    return 1;
}

static int close_from(unsigned int first, unsigned int last)
{
    if (first > last)
        return 0;
    if (close_range(first, last, 0) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
    /* Kernels before 5.9: every possible descriptor, one by one. */
    struct rlimit rl;
    unsigned int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max)
        max = (unsigned int)rl.rlim_cur;
    for (unsigned int fd = first; fd <= last && fd < max; fd++)
        close((int)fd);
    return 0;
}

static void run_child(const struct child_plan *c)
{
    const struct cas_run_request *req = c->req;
    sigset_t none;
    struct sigaction dfl;

    /* The agent's signal mask and ignored signals (SIGPIPE) must not reach the program; handled
     * signals are reset by exec anyway. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (setpgid(0, 0) != 0)
        child_fail(c->errfd, STEP_SETPGID, errno);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || dup2(nullfd, STDIN_FILENO) < 0)
        child_fail(c->errfd, STEP_STDIN, errno);
    if (dup2(c->outfd, STDOUT_FILENO) < 0 || dup2(c->outfd, STDERR_FILENO) < 0)
        child_fail(c->errfd, STEP_OUTPUT, errno);

    if (c->switch_user) {
        uid_t ru, eu, su;
        gid_t rg, eg, sg;
        if (setgroups((size_t)c->ngroups, c->groups) != 0)
            child_fail(c->errfd, STEP_SETGROUPS, errno);
        if (setgid(c->gid) != 0)
            child_fail(c->errfd, STEP_SETGID, errno);
        if (setuid(c->uid) != 0)
            child_fail(c->errfd, STEP_SETUID, errno);
        /* Trust nothing: the switch must show in every id, and must not be reversible. */
        if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != c->uid ||
            eu != c->uid || su != c->uid || rg != c->gid || eg != c->gid || sg != c->gid ||
            getuid() != c->uid || geteuid() != c->uid || getgid() != c->gid ||
            getegid() != c->gid || !same_groups(c))
            child_fail(c->errfd, STEP_IDENTITY, EPERM);
        if (c->uid != 0 && setuid(0) == 0)
            child_fail(c->errfd, STEP_IDENTITY, EPERM);
    }
    /* After the switch: the user itself must be able to enter the content folder. */
    if (chdir(req->cwd) != 0)
        child_fail(c->errfd, STEP_CHDIR, errno);
    /* No lock, log or socket of the agent leaks into the program; errfd closes on exec. */
    if (close_from(3, (unsigned int)c->errfd - 1) != 0 ||
        close_from((unsigned int)c->errfd + 1, ~0u) != 0)
        child_fail(c->errfd, STEP_CLOSE_FDS, errno);
    execve(req->path, req->argv, c->env);
    child_fail(c->errfd, STEP_EXEC, errno);
}

static cas_hr start_failure(const struct child_plan *c, const struct child_error *e)
{
    const struct cas_run_request *req = c->req;
    char what[512];
    cas_hr hr = cas_err_from_errno(e->err);
    const char *hint = "";

    switch (e->step) {
    case STEP_SETPGID:
        snprintf(what, sizeof(what), "setpgid");
        break;
    case STEP_STDIN:
        snprintf(what, sizeof(what), "open /dev/null as standard input");
        break;
    case STEP_OUTPUT:
        snprintf(what, sizeof(what), "connect standard output to the agent");
        break;
    case STEP_SETGROUPS:
        snprintf(what, sizeof(what), "set the %d supplementary group(s) of user %s", c->ngroups,
                 c->user_name);
        break;
    case STEP_SETGID:
        snprintf(what, sizeof(what), "setgid(%lu) for user %s", (unsigned long)c->gid,
                 c->user_name);
        break;
    case STEP_SETUID:
        snprintf(what, sizeof(what), "setuid(%lu) for user %s", (unsigned long)c->uid,
                 c->user_name);
        break;
    case STEP_IDENTITY:
        snprintf(what, sizeof(what),
                 "the switch to user %s (uid %lu, gid %lu) did not take effect completely",
                 c->user_name, (unsigned long)c->uid, (unsigned long)c->gid);
        hr = CAS_E_EXEC_FATAL;
        break;
    case STEP_CHDIR:
        snprintf(what, sizeof(what), "enter the content folder %s as user %s", req->cwd,
                 c->user_name);
        break;
    case STEP_CLOSE_FDS:
        snprintf(what, sizeof(what), "close inherited descriptors");
        break;
    default:
        snprintf(what, sizeof(what), "exec as user %s", c->user_name);
        if (e->err == ENOEXEC) {
            hint = " (not an executable format; a script needs its #! line)";
            hr = CAS_E_EXEC_FATAL;
        }
        break;
    }
    if (hr == CAS_E_IO || hr == CAS_OK)
        hr = CAS_E_EXEC_FATAL;
    return cas_fail(hr, "cannot start %s: %s: %s%s", req->path, what, strerror(e->err), hint);
}

/* ---- output: line by line into execmgr.log, bounded ---- */

struct output {
    char line[RUN_LINE_MAX + 1];
    size_t len;
    int skipping;     /* the current line was logged cut: ignore the rest of it */
    uint64_t taken;   /* bytes within the bound */
    uint64_t dropped; /* bytes past the bound */
};

/* Where to cut a line of n bytes so no UTF-8 sequence is split. */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t k = n;
    while (k > 0 && n - k < 3 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (k == 0)
        return n;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need > 1 && n - (k - 1) < need ? k - 1 : n;
}

static void output_emit(struct output *o, int cut)
{
    size_t n = o->len;
    if (cut)
        n = utf8_cut(o->line, n);
    else if (n > 0 && o->line[n - 1] == '\r')
        n--;
    o->line[n] = '\0';
    if (cut)
        cas_log_verbose(CAS_LOG_EXECMGR, "Program output (line cut to %d bytes): %s", RUN_LINE_MAX,
                        o->line);
    else
        cas_log_verbose(CAS_LOG_EXECMGR, "Program output: %s", o->line);
    o->len = 0;
}

static void output_feed(struct output *o, const char *p, size_t n)
{
    uint64_t room = o->taken < RUN_OUTPUT_MAX ? RUN_OUTPUT_MAX - o->taken : 0;
    size_t take = (uint64_t)n < room ? n : (size_t)room;
    o->taken += take;
    o->dropped += n - take;
    for (size_t i = 0; i < take; i++) {
        char ch = p[i];
        if (ch == '\n') {
            if (o->skipping)
                o->skipping = 0;
            else
                output_emit(o, 0);
            continue;
        }
        if (o->skipping)
            continue;
        if (o->len == RUN_LINE_MAX) {
            output_emit(o, 1);
            o->skipping = 1;
            continue;
        }
        o->line[o->len++] = ch ? ch : '?'; /* a NUL would end the record's text */
    }
}

static void output_finish(struct output *o)
{
    if (o->len > 0 && !o->skipping)
        output_emit(o, 0);
    o->len = 0;
    if (o->dropped > 0)
        cas_log_verbose(CAS_LOG_EXECMGR, "Program output truncated: %llu more bytes not logged",
                        (unsigned long long)o->dropped);
}

/* Read what the pipe holds now. Returns 1 at end of file (every writer closed it). */
static int output_drain(int fd, struct output *o)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            output_feed(o, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
}

/* ---- process groups, subreaper, leftovers ---- */

static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;
static int run_active;        /* runs in progress (the subreaper is on while > 0) */
static int run_was_subreaper; /* the setting before the first run */
static pid_t run_leftovers[RUN_MAX_LEFTOVERS]; /* groups left running by programs that exited */

/* Reap every finished member of group pgid that is our child. The leader's status goes to
 * *leader_status and *leader_done. */
static void reap_group(pid_t pgid, pid_t leader, int *leader_status, int *leader_done)
{
    for (;;) {
        int st;
        pid_t w = waitpid(-pgid, &st, WNOHANG);
        if (w == 0 || (w < 0 && errno != EINTR))
            return;
        if (w == leader && leader_done) {
            *leader_status = st;
            *leader_done = 1;
        }
    }
}

static int group_gone(pid_t pgid)
{
    return kill(-pgid, 0) != 0 && errno == ESRCH;
}

/* Forget group numbers that are gone, reaping their last members; and never treat a new leader's
 * pid as an old group. Called with run_mu held. */
static void leftovers_sweep(pid_t new_leader)
{
    for (int i = 0; i < RUN_MAX_LEFTOVERS; i++) {
        pid_t g = run_leftovers[i];
        if (!g)
            continue;
        if (g != new_leader)
            reap_group(g, 0, NULL, NULL);
        if (g == new_leader || group_gone(g))
            run_leftovers[i] = 0;
    }
}

static void leftovers_add(pid_t pgid)
{
    pthread_mutex_lock(&run_mu);
    for (int i = 0; i < RUN_MAX_LEFTOVERS; i++) {
        if (!run_leftovers[i]) {
            run_leftovers[i] = pgid;
            break;
        }
    }
    pthread_mutex_unlock(&run_mu);
}

static void run_begin(void)
{
    pthread_mutex_lock(&run_mu);
    leftovers_sweep(0);
    if (run_active++ == 0) {
        int was = 0;
        if (prctl(PR_GET_CHILD_SUBREAPER, &was) != 0)
            was = 0;
        run_was_subreaper = was;
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    }
    pthread_mutex_unlock(&run_mu);
}

static void run_end(void)
{
    pthread_mutex_lock(&run_mu);
    leftovers_sweep(0);
    if (--run_active == 0)
        prctl(PR_SET_CHILD_SUBREAPER, run_was_subreaper);
    pthread_mutex_unlock(&run_mu);
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct run_state {
    const struct cas_run_request *req;
    const char *name; /* the program as the policy names it, for the log */
    pid_t pid;        /* leader, and the process group */
    int pidfd;        /* -1 if the kernel has no pidfd_open */
    int outfd;        /* -1 once at end of file */
    int status, done;
    struct output out;
};

/* Sleep until the output pipe has data, the leader ends, or timeout_ms passed; then read the
 * output and reap. */
static void run_wait_step(struct run_state *s, int timeout_ms)
{
    struct pollfd pfd[2] = {{s->outfd, POLLIN, 0}, {s->done ? -1 : s->pidfd, POLLIN, 0}};
    if (poll(pfd, 2, timeout_ms) > 0 && s->outfd >= 0 && pfd[0].revents) {
        if (output_drain(s->outfd, &s->out)) {
            close(s->outfd);
            s->outfd = -1;
        }
    }
    reap_group(s->pid, s->pid, &s->status, &s->done);
    if (!s->done) {
        /* The leader may have moved itself to another process group: ask for it by pid too. */
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->status = st;
            s->done = 1;
        }
    }
}

/* Wait until the leader was reaped and no member of the group is left, or until `until`. */
static int run_wait_group(struct run_state *s, double until)
{
    for (;;) {
        run_wait_step(s, RUN_GROUP_POLL_MS);
        if (s->done && group_gone(s->pid))
            return 1;
        if (now_sec() >= until)
            return 0;
    }
}

/* TERM, grace period, KILL: the whole group, including what the program started in the
 * background. */
static void run_end_group(struct run_state *s)
{
    kill(-s->pid, SIGTERM);
    kill(-s->pid, SIGCONT); /* a stopped member would never see the TERM */
    if (run_wait_group(s, now_sec() + RUN_GRACE_SECONDS))
        return;
    cas_log_warn(CAS_LOG_EXECMGR,
                 "Process group %ld of program %s did not end within %d seconds of SIGTERM, "
                 "sending SIGKILL",
                 (long)s->pid, s->name, RUN_GRACE_SECONDS);
    kill(-s->pid, SIGKILL);
    if (!run_wait_group(s, now_sec() + RUN_KILL_WAIT))
        cas_log_warn(CAS_LOG_EXECMGR, "Process group %ld of program %s is still not gone",
                     (long)s->pid, s->name);
}

static int make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    /* The agent may have been started with 0-2 closed: keep the pipe out of their way so the
     * child's dup2 onto 0-2 cannot clobber it. */
    for (int i = 0; i < 2; i++) {
        if (fds[i] <= STDERR_FILENO) {
            int nfd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (nfd < 0) {
                int err = errno;
                close(fds[0]);
                close(fds[1]);
                errno = err;
                return -1;
            }
            close(fds[i]);
            fds[i] = nfd;
        }
    }
    return 0;
}

static cas_hr cas_runner_run(const struct cas_runner *r, const struct cas_run_request *req,
                             int *exit_code)
{
    (void)r;
    struct child_plan plan = {0};
    struct run_state *s = NULL;
    int errpipe[2] = {-1, -1}, outpipe[2] = {-1, -1};
    int began = 0, err;
    cas_hr hr;

    if (cas_stop_requested())
        return cas_fail(CAS_E_CANCELLED, "stopped: the agent is stopping");
    plan.req = req;
    if ((hr = plan_identity(req, &plan)) != CAS_OK)
        goto cleanup;
    s = calloc(1, sizeof(*s));
    if (!s) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    s->req = req;
    s->name = req->argv && req->argv[0] ? req->argv[0] : req->path;
    s->pidfd = s->outfd = -1;
    if (make_pipe(errpipe) != 0 || make_pipe(outpipe) != 0 ||
        fcntl(outpipe[0], F_SETFL, O_NONBLOCK) != 0) {
        err = errno;
        hr = cas_fail(cas_err_from_errno(err), "pipe: %s", strerror(err));
        goto cleanup;
    }
    plan.errfd = errpipe[1];
    plan.outfd = outpipe[1];
    if (plan.switch_user)
        cas_log_verbose(CAS_LOG_EXECMGR,
                        "Running program %s as user %s (uid %lu, gid %lu, %d group(s))", s->name,
                        plan.user_name, (unsigned long)plan.uid, (unsigned long)plan.gid,
                        plan.ngroups);

    run_begin();
    began = 1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        err = errno;
        hr = cas_fail(cas_err_from_errno(err), "fork: %s", strerror(err));
        goto cleanup;
    }
    if (pid == 0)
        run_child(&plan);
    s->pid = pid;
    /* Also from this side, so the group exists before any kill(-pid) below. */
    setpgid(pid, pid);
    pthread_mutex_lock(&run_mu);
    leftovers_sweep(pid);
    pthread_mutex_unlock(&run_mu);
    close(errpipe[1]);
    errpipe[1] = -1;
    close(outpipe[1]);
    outpipe[1] = -1;
    s->outfd = outpipe[0];
    outpipe[0] = -1;

    struct child_error ce;
    ssize_t n;
    do {
        n = read(errpipe[0], &ce, sizeof(ce));
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(ce)) {
        while (waitpid(pid, &s->status, 0) < 0 && errno == EINTR) {
        }
        s->done = 1;
        output_drain(s->outfd, &s->out);
        output_finish(&s->out);
        hr = start_failure(&plan, &ce);
        goto cleanup;
    }

#ifdef SYS_pidfd_open
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    cas_log_verbose(CAS_LOG_EXECMGR, "Program %s started as process %ld in its own process group",
                    s->name, (long)pid);

    double deadline = req->max_run_minutes > 0 ? now_sec() + req->max_run_minutes * 60.0 : 0;
    enum { RAN, TIMED_OUT, CANCELLED } outcome = RAN;
    for (;;) {
        if (s->done)
            break;
        if (cas_stop_requested()) {
            outcome = CANCELLED;
            break;
        }
        int timeout = RUN_POLL_MS;
        if (deadline > 0) {
            double left = deadline - now_sec();
            if (left <= 0) {
                outcome = TIMED_OUT;
                break;
            }
            if (left * 1000 < timeout)
                timeout = (int)(left * 1000) + 1;
        }
        run_wait_step(s, timeout);
    }

    if (outcome == TIMED_OUT) {
        cas_log_warn(CAS_LOG_EXECMGR,
                     "Program %s ran longer than its maximum run time of %g minutes, ending its "
                     "process group %ld",
                     s->name, req->max_run_minutes, (long)pid);
        run_end_group(s);
    } else if (outcome == CANCELLED) {
        cas_log_warn(CAS_LOG_EXECMGR,
                     "The agent is stopping, ending program %s and its process group %ld", s->name,
                     (long)pid);
        run_end_group(s);
    }
    /* What the program wrote before it ended is in the pipe; background processes still
     * writing are not waited for. */
    if (s->outfd >= 0)
        output_drain(s->outfd, &s->out);
    output_finish(&s->out);

    if (outcome == TIMED_OUT) {
        hr = cas_fail(CAS_E_PROGRAM_TIMEOUT,
                      "%s ran longer than %g minutes and was stopped (process group %ld ended)",
                      req->path, req->max_run_minutes, (long)pid);
    } else if (outcome == CANCELLED) {
        hr = cas_fail(CAS_E_CANCELLED, "stopped: the agent is stopping");
    } else {
        reap_group(pid, pid, &s->status, &s->done);
        if (!group_gone(pid)) {
            cas_log_verbose(CAS_LOG_EXECMGR,
                            "Program %s exited; processes it started are still running in "
                            "process group %ld",
                            s->name, (long)pid);
            leftovers_add(pid);
        }
        if (WIFEXITED(s->status))
            *exit_code = WEXITSTATUS(s->status);
        else if (WIFSIGNALED(s->status))
            *exit_code = 128 + WTERMSIG(s->status);
        else
            *exit_code = -1;
        hr = CAS_OK;
    }

cleanup:
    if (s) {
        if (s->outfd >= 0)
            close(s->outfd);
        if (s->pidfd >= 0)
            close(s->pidfd);
    }
    for (int i = 0; i < 2; i++) {
        if (errpipe[i] >= 0)
            close(errpipe[i]);
        if (outpipe[i] >= 0)
            close(outpipe[i]);
    }
    if (began)
        run_end();
    free(s);
    plan_free(&plan);
    return hr;
}

const struct cas_runner cas_runner_default = {cas_runner_run};
