/* Dropping root, no new privileges and Landlock for the processes that touch network data.
 * Landlock is used through raw syscalls with the constants of its stable ABI, so a build against
 * Debian 12's older kernel headers still enforces what a newer running kernel offers. */
#include "agent/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
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

#include "common/timefmt.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#define SYS_landlock_restrict_self  446
#endif

#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH      1

/* Filesystem rights (ABI 1 unless noted): everything that changes the file system. */
#define LL_FS_WRITE_FILE       (1ull << 1)
#define LL_FS_REMOVE_DIR       (1ull << 4)
#define LL_FS_REMOVE_FILE      (1ull << 5)
#define LL_FS_MAKE_CHAR        (1ull << 6)
#define LL_FS_MAKE_DIR         (1ull << 7)
#define LL_FS_MAKE_REG         (1ull << 8)
#define LL_FS_MAKE_SOCK        (1ull << 9)
#define LL_FS_MAKE_FIFO        (1ull << 10)
#define LL_FS_MAKE_BLOCK       (1ull << 11)
#define LL_FS_MAKE_SYM         (1ull << 12)
#define LL_FS_REFER            (1ull << 13) /* ABI 2 */
#define LL_FS_TRUNCATE         (1ull << 14) /* ABI 3 */
#define LL_NET_BIND_TCP        (1ull << 0)  /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX (1ull << 0)  /* ABI 6 */
#define LL_SCOPE_SIGNAL        (1ull << 1)  /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; older kernels are given a shorter prefix. */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

static int sb_landlock(const char *writable_dir, struct cas_sandbox_status *st)
{
    struct ll_ruleset_attr attr = {0};
    size_t attr_size = sizeof(attr.handled_access_fs);
    int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    int fd = -1, dir = -1, rc = -1;

    if (abi < 0) {
        snprintf(st->landlock_why, sizeof(st->landlock_why), "%s",
                 errno == ENOSYS       ? "the kernel has no Landlock"
                 : errno == EOPNOTSUPP ? "Landlock is disabled in this kernel"
                                       : strerror(errno));
        return 0; /* not a failure: the rest of the sandbox holds */
    }
    attr.handled_access_fs = LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE |
                             LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK |
                             LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
    if (abi >= 2)
        attr.handled_access_fs |= LL_FS_REFER;
    if (abi >= 3)
        attr.handled_access_fs |= LL_FS_TRUNCATE;
    if (abi >= 4) {
        /* Connecting is the child's job; listening is not. */
        attr.handled_access_net = LL_NET_BIND_TCP;
        attr_size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        attr_size = sizeof(attr);
    }
    fd = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (fd < 0) {
        snprintf(st->landlock_why, sizeof(st->landlock_why), "landlock_create_ruleset: %s",
                 strerror(errno));
        return -1;
    }
    if (writable_dir) {
        struct ll_path_beneath_attr pb = {.allowed_access = attr.handled_access_fs};
        dir = open(writable_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) {
            snprintf(st->landlock_why, sizeof(st->landlock_why), "%s: %s", writable_dir,
                     strerror(errno));
            goto cleanup;
        }
        pb.parent_fd = dir;
        if (syscall(SYS_landlock_add_rule, fd, LL_RULE_PATH_BENEATH, &pb, 0) != 0) {
            snprintf(st->landlock_why, sizeof(st->landlock_why), "landlock_add_rule: %s",
                     strerror(errno));
            goto cleanup;
        }
    }
    if (syscall(SYS_landlock_restrict_self, fd, 0) != 0) {
        snprintf(st->landlock_why, sizeof(st->landlock_why), "landlock_restrict_self: %s",
                 strerror(errno));
        goto cleanup;
    }
    st->landlock_abi = abi;
    rc = 0;
cleanup:
    if (dir >= 0)
        close(dir);
    close(fd);
    return rc;
}

static cas_hr sb_drop_root(const char *user, struct cas_sandbox_status *st)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    const char *names[2] = {user ? user : CAS_SANDBOX_USER,
                            user ? NULL : CAS_SANDBOX_FALLBACK_USER};
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    for (size_t i = 0; i < 2 && !found; i++) {
        if (names[i] && getpwnam_r(names[i], &pw, buf, sizeof(buf), &found) != 0)
            found = NULL;
    }
    if (!found)
        return names[1] ? cas_fail(CAS_E_NO_SUCH_USER,
                                   "no account to run the transfer process as (neither %s nor %s "
                                   "exists)",
                                   names[0], names[1])
                        : cas_fail(CAS_E_NO_SUCH_USER,
                                   "no account %s to run the transfer process as", names[0]);
    if (found->pw_uid == 0)
        return cas_fail(CAS_E_ACCESSDENIED, "account %s is root: nothing would be dropped",
                        found->pw_name);
    snprintf(st->user, sizeof(st->user), "%s", found->pw_name);
    if (setgroups(0, NULL) != 0 || setresgid(found->pw_gid, found->pw_gid, found->pw_gid) != 0 ||
        setresuid(found->pw_uid, found->pw_uid, found->pw_uid) != 0)
        return cas_fail(CAS_E_ACCESSDENIED, "cannot become %s: %s", found->pw_name,
                        strerror(errno));
    /* Trust only what the kernel reports now, and that the way back is closed. */
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != found->pw_uid ||
        eu != ru || su != ru || rg != found->pw_gid || eg != rg || sg != rg ||
        getgroups(0, NULL) != 0 || setuid(0) == 0 || setegid(0) == 0)
        return cas_fail(CAS_E_ACCESSDENIED, "dropping root to %s did not hold", found->pw_name);
    st->dropped = 1;
    return CAS_OK;
}

cas_hr cas_sandbox_enter(const char *user, const char *writable_dir,
                         struct cas_sandbox_status *status)
{
    struct cas_sandbox_status st = {0};
    cas_hr hr = CAS_OK;

    if (geteuid() == 0) {
        hr = sb_drop_root(user, &st);
        if (hr != CAS_OK)
            goto done;
    } else {
        struct passwd pw, *found = NULL;
        char buf[4096];
        if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) == 0 && found)
            snprintf(st.user, sizeof(st.user), "%s", found->pw_name);
        else
            snprintf(st.user, sizeof(st.user), "uid %u", (unsigned)geteuid());
    }
    st.uid = geteuid();
    st.gid = getegid();
    /* No core files: a crash here would otherwise write network data somewhere. */
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        hr = cas_fail(CAS_E_ACCESSDENIED, "cannot set no_new_privs: %s", strerror(errno));
        goto done;
    }
    st.no_new_privs = 1;
    /* Other processes of the same (shared) account must not ptrace or read this one. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (sb_landlock(writable_dir, &st) != 0)
        hr = cas_fail(CAS_E_ACCESSDENIED, "Landlock could not be applied: %s", st.landlock_why);
done:
    if (status)
        *status = st;
    return hr;
}

void cas_sandbox_describe(const struct cas_sandbox_status *st, const char *writable_dir, char *buf,
                          size_t size)
{
    char ll[256];
    if (st->landlock_abi > 0)
        snprintf(ll, sizeof(ll), "Landlock ABI %d: no writes %s%s", st->landlock_abi,
                 writable_dir ? "outside " : "to the file system",
                 writable_dir ? writable_dir : "");
    else
        snprintf(ll, sizeof(ll), "no Landlock (%s)", st->landlock_why);
    snprintf(buf, size, "runs as %s (uid %u)%s, %s, %s", st->user, (unsigned)st->uid,
             st->dropped ? ", root dropped" : "",
             st->no_new_privs ? "no new privileges" : "new privileges possible", ll);
}

/* Close every descriptor above 2 except keep (renumbered to 3). */
static int sb_close_fds(int keep)
{
    if (keep != 3) {
        if (dup2(keep, 3) < 0)
            return -1;
    }
    if (syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
        for (int fd = 4; fd < 65536; fd++)
            close(fd);
    }
    return 3;
}

int cas_sandbox_child_fds(int keep)
{
    if (keep >= 0 && keep <= 2 && (keep = fcntl(keep, F_DUPFD, 3)) < 0)
        return -1; /* out of the way of the standard descriptors about to be replaced */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2); /* the agent's stderr may be a file or a terminal: not for network data */
        if (null > 2)
            close(null);
    }
    return sb_close_fds(keep);
}

/* Milliseconds left of the 10 s a sandboxed reader is given, counted from t0 (seconds). */
static int sb_left_ms(double t0)
{
    return 10000 - (int)((cas_mono_now() - t0) * 1000.0);
}

void cas_sandbox_clean(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    }
}

cas_hr cas_sandbox_call(int (*fn)(const char *in, size_t in_len, char *out, size_t out_size),
                        const char *in, size_t in_len, char *out, size_t out_size)
{
    int p[2], status = 0;
    size_t got = 0;
    pid_t pid;
    cas_hr hr = CAS_OK;

    if (out_size == 0)
        return cas_fail(CAS_E_INVALIDARG, "no room for the answer");
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0)
        return cas_fail(CAS_E_FAIL, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return cas_fail(CAS_E_FAIL, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        char *answer = calloc(1, out_size);
        int fd = cas_sandbox_child_fds(p[1]);
        signal(SIGPIPE, SIG_IGN);
        if (fd < 0 || !answer || cas_sandbox_enter(NULL, NULL, NULL) != CAS_OK)
            _exit(3);
        int rc = 1;
        if (fn(in, in_len, answer, out_size) == 0) {
            answer[out_size - 1] = '\0';
            size_t n = strlen(answer);
            rc = write(fd, answer, n) == (ssize_t)n ? 0 : 2;
        }
        free(answer); /* not needed, but a child under valgrind reports it lost otherwise */
        _exit(rc);
    }
    close(p[1]);
    /* A child stuck in a pathological parse must not hold the agent: 10 s, then it is killed. */
    double t0 = cas_mono_now();
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int left = sb_left_ms(t0);
        int r = left > 0 ? poll(&pfd, 1, left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            kill(pid, SIGKILL);
            hr = cas_fail(CAS_E_TIMEOUT, "the sandboxed reader did not answer within 10 s");
            break;
        }
        ssize_t n = read(p[0], out + got, out_size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == out_size - 1)
            break;
    }
    out[got] = '\0';
    close(p[0]);
    for (;;) {
        pid_t w = waitpid(pid, &status, hr == CAS_OK ? WNOHANG : 0);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (w == 0 && sb_left_ms(t0) <= 0) {
            kill(pid, SIGKILL);
            hr = cas_fail(CAS_E_TIMEOUT, "the sandboxed reader did not end within 10 s");
        } else if (w == 0) {
            nanosleep(&(struct timespec){0, 10L * 1000 * 1000}, NULL);
        }
    }
    if (hr != CAS_OK)
        return hr;
    if (WIFSIGNALED(status))
        return cas_fail(CAS_E_FAIL, "the sandboxed reader was ended by signal %d",
                        WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
        return cas_fail(CAS_E_ACCESSDENIED, "the sandboxed reader could not enter its sandbox");
    if (WEXITSTATUS(status) != 0) {
        out[0] = '\0';
        return cas_fail(CAS_E_FAIL, "the sandboxed reader found nothing");
    }
    return CAS_OK;
}

/* The question asked in the child, passed through a static: fork copies it. */
static cas_hr (*sb_question)(const char *in, size_t in_len, char *answer, size_t size);

static int sb_ask_child(const char *in, size_t in_len, char *out, size_t out_size)
{
    cas_hr hr = sb_question(in, in_len, out + 1, out_size - 1);
    if (hr == CAS_OK)
        out[0] = '+';
    else
        snprintf(out, out_size, "-%08X %s", hr, cas_err_detail());
    return 0;
}

cas_hr cas_sandbox_ask(cas_hr (*fn)(const char *in, size_t in_len, char *answer, size_t size),
                       const char *in, size_t in_len, char *answer, size_t size)
{
    char buf[1400];
    unsigned code = 0;
    cas_hr hr;

    if (size == 0 || size > sizeof(buf) - 1)
        return cas_fail(CAS_E_INVALIDARG, "answer size %zu not supported", size);
    answer[0] = '\0';
    sb_question = fn;
    hr = cas_sandbox_call(sb_ask_child, in, in_len, buf, sizeof(buf));
    if (hr != CAS_OK)
        return hr;
    if (buf[0] == '+') {
        snprintf(answer, size, "%s", buf + 1);
        return CAS_OK;
    }
    /* "-XXXXXXXX detail", as sb_ask_child writes it: exactly 8 hex digits, then a space. */
    if (buf[0] == '-' && strspn(buf + 1, "0123456789ABCDEF") == 8 && buf[9] == ' ') {
        code = (unsigned)strtoul(buf + 1, NULL, 16);
        if (code & 0x80000000u) {
            cas_sandbox_clean(buf + 10);
            return cas_fail((cas_hr)code, "%s", buf + 10);
        }
    }
    return cas_fail(CAS_E_INVALID_DATA, "the sandboxed reader gave no usable answer");
}
