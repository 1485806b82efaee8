/* The sandbox of the processes that touch network data (agent/sandbox.c). Every case that enters
 * the sandbox does it in a forked child, which reports what it could and could not do over a
 * pipe; the test process itself is never narrowed. Writes outside the allowed folder are tried
 * in folders that plain Unix permissions would allow (1777), so only Landlock can refuse them;
 * a control case shows the same operations succeed without the sandbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/sandbox.h"
#include "common/error.h"

#define VICTIM_TEXT "original\n"

/* ---- a temporary tree ---- */

struct tree {
    char root[64]; /* the test's own temp root, 1777 */
    char wr[128];  /* the writable_dir, owned by the account the sandbox runs as */
    char out[128]; /* another folder, 1777 */
};

/* The account cas_sandbox_enter(NULL, ...) uses as root: cas-agent if it exists, else nobody. */
static int default_account(uid_t *uid, gid_t *gid, char *name, size_t size)
{
    const char *names[2] = {CAS_SANDBOX_USER, CAS_SANDBOX_FALLBACK_USER};
    for (int i = 0; i < 2; i++) {
        struct passwd *pw = getpwnam(names[i]);
        if (pw) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
            snprintf(name, size, "%s", pw->pw_name);
            return 0;
        }
    }
    return -1;
}

/* The uid/gid the sandboxed child will have: the default account as root, ourselves otherwise. */
static void sandbox_ids(uid_t *uid, gid_t *gid)
{
    char name[64];
    *uid = geteuid();
    *gid = getegid();
    if (geteuid() == 0)
        assert_int_equal(default_account(uid, gid, name, sizeof(name)), 0);
}

static void make_victim(const char *dir, uid_t uid, gid_t gid)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/victim", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, VICTIM_TEXT, strlen(VICTIM_TEXT)), (ssize_t)strlen(VICTIM_TEXT));
    close(fd);
    assert_int_equal(chmod(p, 0666), 0);
    /* Owned by the sandbox account, so that the sticky bit does not refuse unlink or rename. */
    if (geteuid() == 0)
        assert_int_equal(chown(p, uid, gid), 0);
}

static void tree_make(struct tree *t)
{
    uid_t uid;
    gid_t gid;
    sandbox_ids(&uid, &gid);
    snprintf(t->root, sizeof(t->root), "/tmp/cas-sbx-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    assert_int_equal(chmod(t->root, 01777), 0);
    snprintf(t->wr, sizeof(t->wr), "%s/wr", t->root);
    assert_int_equal(mkdir(t->wr, 0700), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(t->wr, uid, gid), 0);
    snprintf(t->out, sizeof(t->out), "%s/out-XXXXXX", t->root);
    assert_non_null(mkdtemp(t->out));
    assert_int_equal(chmod(t->out, 01777), 0);
    make_victim(t->out, uid, gid);
    make_victim(t->root, uid, gid);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void tree_remove(struct tree *t)
{
    if (t->root[0])
        nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The victim file is intact and nothing else appeared in dir. */
static void assert_untouched(const char *dir)
{
    char p[256], buf[64] = {0};
    snprintf(p, sizeof(p), "%s/victim", dir);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(VICTIM_TEXT));
    close(fd);
    assert_string_equal(buf, VICTIM_TEXT);
    struct stat sb;
    for (const char *name = "new\0newdir\0newlink\0moved\0victim2\0"; *name;
         name += strlen(name) + 1) {
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        if (lstat(p, &sb) == 0)
            fail_msg("%s exists: the sandbox let it be created", p);
    }
}

/* ---- what a child tries and reports ---- */

/* Each field: 0 if the operation succeeded, else its errno. */
struct probe {
    int write_existing, trunc_open, trunc_path, rename_within, create, mkdir_, symlink_, rename_in,
        unlink_;
};

struct report {
    cas_hr hr;
    char detail[512];
    struct cas_sandbox_status st;
    int inside_step; /* 0: every change inside writable_dir worked; else the step that failed */
    int inside_errno;
    struct probe p_out, p_root, p_wr;
    int read_hosts, read_victim; /* errno or 0 */
    int nnp_before, dumpable_before, nnp, dumpable;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    int ngroups;
    int setuid0_rc, seteuid0_rc, setgid0_rc;
};

static int err_of(int rc)
{
    return rc == 0 ? 0 : errno;
}

static void pathf(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        abort(); /* the tree is made of short names: cannot happen */
}

/* Try every kind of change in dir, undoing what succeeds so the next step still applies.
 * `other` is an existing file in another folder, to be renamed into dir. */
static void probe_dir(const char *dir, const char *other, struct probe *p)
{
    char victim[256], v2[256], path[256];
    int fd;
    pathf(victim, sizeof(victim), dir, "victim");
    pathf(v2, sizeof(v2), dir, "victim2");

    fd = open(victim, O_WRONLY | O_APPEND);
    p->write_existing = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    fd = open(victim, O_WRONLY | O_TRUNC);
    p->trunc_open = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    p->trunc_path = err_of(truncate(victim, 0));
    p->rename_within = err_of(rename(victim, v2));
    if (p->rename_within == 0)
        rename(v2, victim);
    pathf(path, sizeof(path), dir, "new");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    p->create = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    pathf(path, sizeof(path), dir, "newdir");
    p->mkdir_ = err_of(mkdir(path, 0755));
    if (p->mkdir_ == 0)
        rmdir(path);
    pathf(path, sizeof(path), dir, "newlink");
    p->symlink_ = err_of(symlink("/etc/hosts", path));
    if (p->symlink_ == 0)
        unlink(path);
    pathf(path, sizeof(path), dir, "moved");
    p->rename_in = err_of(rename(other, path));
    if (p->rename_in == 0)
        rename(path, other);
    p->unlink_ = err_of(unlink(victim));
    if (p->unlink_ == 0) {
        /* Put it back (the control run), for the next folder's rename into this one. */
        fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            if (write(fd, VICTIM_TEXT, strlen(VICTIM_TEXT)) < 0)
                p->unlink_ = -1;
            fchmod(fd, 0666);
            close(fd);
        }
    }
}

static int step_failed(int *err, int step)
{
    *err = errno;
    return step;
}

/* Create, write, rename and remove inside dir; the first failing step, or 0. */
static int change_inside(const char *dir, int *err)
{
    char a[256], b[256], sub[256], c[256], link[256];
    int fd;
    pathf(a, sizeof(a), dir, "a");
    pathf(b, sizeof(b), dir, "b");
    pathf(sub, sizeof(sub), dir, "sub");
    pathf(c, sizeof(c), sub, "c");
    pathf(link, sizeof(link), dir, "link");
    *err = 0;
    if ((fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
        return step_failed(err, 1);
    if (write(fd, "data", 4) != 4) {
        close(fd);
        return step_failed(err, 2);
    }
    close(fd);
    if (truncate(a, 2) != 0)
        return step_failed(err, 3);
    if (rename(a, b) != 0)
        return step_failed(err, 4);
    if (mkdir(sub, 0700) != 0)
        return step_failed(err, 5);
    if (rename(b, c) != 0)
        return step_failed(err, 6);
    if (symlink("c", link) != 0)
        return step_failed(err, 7);
    if (unlink(link) != 0 || unlink(c) != 0)
        return step_failed(err, 8);
    if (rmdir(sub) != 0)
        return step_failed(err, 9);
    return 0;
}

static int read_file(const char *path)
{
    char buf[16];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno;
    ssize_t n = read(fd, buf, sizeof(buf));
    int e = n < 0 ? errno : 0;
    close(fd);
    return e;
}

static void report_ids(struct report *r)
{
    r->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    r->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    getresuid(&r->ru, &r->eu, &r->su);
    getresgid(&r->rg, &r->eg, &r->sg);
    r->ngroups = getgroups(0, NULL);
}

static void report_way_back(struct report *r)
{
    r->setuid0_rc = setuid(0);
    r->seteuid0_rc = seteuid(0);
    r->setgid0_rc = setgid(0);
}

typedef void (*child_fn)(const struct tree *t, const void *arg, struct report *r);

/* Run fn in a forked child and bring its report back. */
static void run_child(child_fn fn, const struct tree *t, const void *arg, struct report *r)
{
    int p[2], status = 0;
    size_t got = 0;
    memset(r, 0, sizeof(*r));
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct report mine;
        memset(&mine, 0, sizeof(mine));
        close(p[0]);
        fn(t, arg, &mine);
        const char *b = (const char *)&mine;
        size_t left = sizeof(mine);
        while (left > 0) {
            ssize_t n = write(p[1], b, left);
            if (n <= 0)
                _exit(2);
            b += n;
            left -= (size_t)n;
        }
        _exit(0);
    }
    close(p[1]);
    while (got < sizeof(*r)) {
        ssize_t n = read(p[0], (char *)r + got, sizeof(*r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(got, sizeof(*r));
}

static void enter_into(struct report *r, const char *user, const char *writable)
{
    r->nnp_before = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    r->dumpable_before = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    r->hr = cas_sandbox_enter(user, writable, &r->st);
    snprintf(r->detail, sizeof(r->detail), "%s", r->hr == CAS_OK ? "" : cas_err_detail());
}

static void assert_denied(int err, const char *what, const char *dir)
{
    if (err != EACCES && err != EPERM)
        fail_msg("%s in %s: expected EACCES/EPERM, got %s", what, dir,
                 err ? strerror(err) : "success");
}

/* A rename across folders may also be refused with EXDEV (Landlock's answer when a file would
 * change parent without the refer right). */
static void assert_rename_denied(int err, const char *what, const char *dir)
{
    if (err != EACCES && err != EPERM && err != EXDEV)
        fail_msg("%s in %s: expected EACCES/EPERM/EXDEV, got %s", what, dir,
                 err ? strerror(err) : "success");
}

static void assert_probe_denied(const struct probe *p, int abi, const char *dir)
{
    assert_denied(p->write_existing, "opening an existing file for writing", dir);
    assert_denied(p->trunc_open, "open(O_TRUNC) of an existing file", dir);
    if (abi >= 3) /* truncate(2) by path is a Landlock right from ABI 3 on */
        assert_denied(p->trunc_path, "truncate()", dir);
    assert_denied(p->rename_within, "renaming a file", dir);
    assert_denied(p->create, "creating a file", dir);
    assert_denied(p->mkdir_, "mkdir", dir);
    assert_denied(p->symlink_, "symlink", dir);
    assert_rename_denied(p->rename_in, "renaming a file into the folder", dir);
    assert_denied(p->unlink_, "unlink", dir);
}

static void assert_probe_allowed(const struct probe *p, const char *dir)
{
    const int *v = &p->write_existing;
    static const char *names[] = {"write", "open(O_TRUNC)", "truncate",  "rename", "create",
                                  "mkdir", "symlink",       "rename in", "unlink"};
    for (size_t i = 0; i < sizeof(*p) / sizeof(int); i++) {
        if (v[i] != 0)
            fail_msg("control: %s in %s failed without the sandbox: %s", names[i], dir,
                     strerror(v[i]));
    }
}

/* With Landlock absent the write checks cannot hold: say so and skip (status must say why). */
static void skip_without_landlock(const struct report *r)
{
    if (r->st.landlock_abi > 0)
        return;
    assert_true(r->st.landlock_why[0] != '\0');
    print_message("[   NOTE   ] no Landlock here (%s): the write checks are skipped\n",
                  r->st.landlock_why);
    skip();
}

static void other_victim(char *buf, size_t size, const char *dir)
{
    pathf(buf, size, dir, "victim");
}

/* ---- cas_sandbox_enter ---- */

static void child_writable(const struct tree *t, const void *arg, struct report *r)
{
    char o[256], rv[256];
    (void)arg;
    enter_into(r, NULL, t->wr);
    if (r->hr != CAS_OK)
        return;
    r->inside_step = change_inside(t->wr, &r->inside_errno);
    other_victim(rv, sizeof(rv), t->root);
    other_victim(o, sizeof(o), t->out);
    probe_dir(t->out, rv, &r->p_out);
    probe_dir(t->root, o, &r->p_root);
    r->read_victim = read_file(o);
}

static void test_writable_dir_only(void **state)
{
    struct tree *t = *state;
    struct report r;
    run_child(child_writable, t, NULL, &r);
    if (r.hr != CAS_OK)
        fail_msg("cas_sandbox_enter: 0x%08X %s", r.hr, r.detail);
    assert_int_equal(r.st.no_new_privs, 1);
    if (r.inside_step != 0)
        fail_msg("step %d inside the writable folder failed: %s", r.inside_step,
                 strerror(r.inside_errno));
    assert_int_equal(r.read_victim, 0);
    skip_without_landlock(&r);
    print_message("[   NOTE   ] Landlock ABI %d in force\n", r.st.landlock_abi);
    assert_string_equal(r.st.landlock_why, "");
    assert_probe_denied(&r.p_out, r.st.landlock_abi, t->out);
    assert_probe_denied(&r.p_root, r.st.landlock_abi, t->root);
    assert_untouched(t->out);
    assert_untouched(t->root);
}

/* The same operations as the sandboxed child, as the same account, with no sandbox: they must
 * work, or the checks above would prove nothing. */
static void child_control(const struct tree *t, const void *arg, struct report *r)
{
    char o[256], rv[256];
    (void)arg;
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        char name[64];
        if (default_account(&uid, &gid, name, sizeof(name)) != 0 || setgroups(0, NULL) != 0 ||
            setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
            r->hr = CAS_E_FAIL;
            return;
        }
    }
    r->inside_step = change_inside(t->wr, &r->inside_errno);
    other_victim(rv, sizeof(rv), t->root);
    other_victim(o, sizeof(o), t->out);
    probe_dir(t->out, rv, &r->p_out);
    probe_dir(t->root, o, &r->p_root);
}

static void test_outside_writes_work_without_sandbox(void **state)
{
    struct tree *t = *state;
    struct report r;
    run_child(child_control, t, NULL, &r);
    assert_int_equal(r.hr, CAS_OK);
    assert_int_equal(r.inside_step, 0);
    assert_probe_allowed(&r.p_out, t->out);
    assert_probe_allowed(&r.p_root, t->root);
}

static void child_no_writable(const struct tree *t, const void *arg, struct report *r)
{
    char o[256], rv[256], w[256];
    (void)arg;
    enter_into(r, NULL, NULL);
    if (r->hr != CAS_OK)
        return;
    r->inside_step = change_inside(t->wr, &r->inside_errno);
    other_victim(rv, sizeof(rv), t->root);
    other_victim(o, sizeof(o), t->out);
    other_victim(w, sizeof(w), t->wr);
    probe_dir(t->out, rv, &r->p_out);
    probe_dir(t->root, o, &r->p_root);
    probe_dir(t->wr, o, &r->p_wr);
    r->read_hosts = read_file("/etc/hosts");
    r->read_victim = read_file(o);
}

static void test_no_writable_dir(void **state)
{
    struct tree *t = *state;
    struct report r;
    uid_t uid;
    gid_t gid;
    sandbox_ids(&uid, &gid);
    make_victim(t->wr, uid, gid);
    run_child(child_no_writable, t, NULL, &r);
    if (r.hr != CAS_OK)
        fail_msg("cas_sandbox_enter: 0x%08X %s", r.hr, r.detail);
    assert_int_equal(r.read_hosts, 0);
    assert_int_equal(r.read_victim, 0);
    skip_without_landlock(&r);
    assert_int_not_equal(r.inside_step, 0); /* the folder is not special any more */
    assert_denied(r.inside_errno, "creating a file", t->wr);
    assert_probe_denied(&r.p_out, r.st.landlock_abi, t->out);
    assert_probe_denied(&r.p_root, r.st.landlock_abi, t->root);
    assert_probe_denied(&r.p_wr, r.st.landlock_abi, t->wr);
    assert_untouched(t->out);
    assert_untouched(t->root);
    assert_untouched(t->wr);
}

static void child_landlock_abi(const struct tree *t, const void *arg, struct report *r)
{
    (void)t;
    enter_into(r, NULL, arg);
}

/* The Landlock ABI a sandboxed child gets here (0: none). */
static int landlock_abi_here(void)
{
    struct report r;
    run_child(child_landlock_abi, NULL, NULL, &r);
    assert_int_equal(r.hr, CAS_OK);
    return r.st.landlock_abi;
}

static void test_missing_writable_dir_fails_with_landlock(void **state)
{
    struct tree *t = *state;
    struct report r;
    char missing[256];
    int abi = landlock_abi_here();
    pathf(missing, sizeof(missing), t->root, "no-such-folder");
    run_child(child_landlock_abi, t, missing, &r);
    if (abi == 0) {
        print_message("[   NOTE   ] no Landlock here: nothing to apply, entering succeeds\n");
        assert_int_equal(r.hr, CAS_OK);
        return;
    }
    /* A sandbox narrower than asked for must not be reported as entered. */
    assert_int_equal(r.hr, CAS_E_ACCESSDENIED);
    assert_non_null(strstr(r.detail, "no-such-folder"));
}

static void child_privs(const struct tree *t, const void *arg, struct report *r)
{
    (void)t;
    (void)arg;
    enter_into(r, NULL, NULL);
    report_ids(r);
}

static void test_no_new_privs_not_dumpable(void **state)
{
    struct report r;
    (void)state;
    run_child(child_privs, NULL, NULL, &r);
    assert_int_equal(r.hr, CAS_OK);
    assert_int_equal(r.nnp_before, 0); /* the child did not inherit it: the sandbox set it */
    assert_int_equal(r.dumpable_before, 1);
    assert_int_equal(r.nnp, 1);
    assert_int_equal(r.dumpable, 0);
    assert_int_equal(r.st.no_new_privs, 1);
}

static void child_as_user(const struct tree *t, const void *arg, struct report *r)
{
    gid_t groups[2] = {0, 4};
    (void)t;
    /* Supplementary groups to lose. */
    if (setgroups(2, groups) != 0) {
        r->hr = CAS_E_FAIL;
        return;
    }
    enter_into(r, arg, NULL);
    report_ids(r);
    report_way_back(r);
}

static void assert_dropped_to(const struct report *r, const char *name)
{
    struct passwd *pw = getpwnam(name);
    assert_non_null(pw);
    if (r->hr != CAS_OK)
        fail_msg("cas_sandbox_enter: 0x%08X %s", r->hr, r->detail);
    assert_int_equal(r->ru, pw->pw_uid);
    assert_int_equal(r->eu, pw->pw_uid);
    assert_int_equal(r->su, pw->pw_uid);
    assert_int_equal(r->rg, pw->pw_gid);
    assert_int_equal(r->eg, pw->pw_gid);
    assert_int_equal(r->sg, pw->pw_gid);
    assert_int_equal(r->ngroups, 0);
    assert_int_equal(r->setuid0_rc, -1);
    assert_int_equal(r->seteuid0_rc, -1);
    assert_int_equal(r->setgid0_rc, -1);
    assert_int_equal(r->st.dropped, 1);
    assert_int_equal(r->st.uid, pw->pw_uid);
    assert_int_equal(r->st.gid, pw->pw_gid);
    assert_string_equal(r->st.user, name);
    assert_int_equal(r->nnp, 1);
}

static void skip_unless_root(void)
{
    if (geteuid() != 0) {
        print_message("[   NOTE   ] not root: dropping root cannot be tested\n");
        skip();
    }
}

static void test_root_dropped_to_named_user(void **state)
{
    struct report r;
    (void)state;
    skip_unless_root();
    run_child(child_as_user, NULL, "nobody", &r);
    assert_dropped_to(&r, "nobody");
}

static void test_root_dropped_to_default_user(void **state)
{
    struct report r;
    uid_t uid;
    gid_t gid;
    char name[64];
    (void)state;
    skip_unless_root();
    assert_int_equal(default_account(&uid, &gid, name, sizeof(name)), 0);
    run_child(child_as_user, NULL, NULL, &r);
    assert_dropped_to(&r, name);
}

static void test_unknown_user_keeps_nothing_half_done(void **state)
{
    struct report r;
    (void)state;
    skip_unless_root();
    run_child(child_as_user, NULL, "cas-no-such-user-q7", &r);
    assert_int_equal(r.hr, CAS_E_NO_SUCH_USER);
    assert_int_equal(r.hr, 0x80070525u);
    assert_non_null(strstr(r.detail, "cas-no-such-user-q7"));
    assert_int_equal(r.st.dropped, 0);
    assert_int_equal(r.st.no_new_privs, 0);
    assert_int_equal(r.st.landlock_abi, 0);
    /* Still entirely root: nothing was changed before the failure. */
    assert_int_equal(r.ru, 0);
    assert_int_equal(r.eu, 0);
    assert_int_equal(r.su, 0);
    assert_int_equal(r.rg, 0);
    assert_int_equal(r.ngroups, 2);
    assert_int_equal(r.nnp, 0);
    assert_int_equal(r.setuid0_rc, 0);
}

/* ---- cas_sandbox_describe ---- */

static void test_describe(void **state)
{
    char buf[256];
    (void)state;
    struct cas_sandbox_status st = {.uid = 65534,
                                    .gid = 65534,
                                    .user = "nobody",
                                    .dropped = 1,
                                    .no_new_privs = 1,
                                    .landlock_abi = 7};
    cas_sandbox_describe(&st, "/var/lib/cas/partial", buf, sizeof(buf));
    assert_string_equal(buf, "runs as nobody (uid 65534), root dropped, no new privileges, "
                             "Landlock ABI 7: no writes outside /var/lib/cas/partial");
    cas_sandbox_describe(&st, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "runs as nobody (uid 65534), root dropped, no new privileges, "
                             "Landlock ABI 7: no writes to the file system");

    struct cas_sandbox_status plain = {
        .uid = 1000, .gid = 1000, .user = "alice", .landlock_why = "the kernel has no Landlock"};
    cas_sandbox_describe(&plain, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "runs as alice (uid 1000), new privileges possible, "
                             "no Landlock (the kernel has no Landlock)");
    plain.no_new_privs = 1;
    cas_sandbox_describe(&plain, "/x", buf, sizeof(buf));
    assert_string_equal(buf, "runs as alice (uid 1000), no new privileges, "
                             "no Landlock (the kernel has no Landlock)");

    /* A small buffer is cut, never overrun. */
    memset(buf, 'Z', sizeof(buf));
    cas_sandbox_describe(&st, NULL, buf, 12);
    assert_string_equal(buf, "runs as nob");
    assert_int_equal(buf[12], 'Z');
}

/* ---- cas_sandbox_child_fds ---- */

struct fds_report {
    int ret;
    int stdin_null, stdout_null, stderr_null;
    int extra_closed;
    char written[8];
};

static int is_dev_null(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode) &&
           a.st_rdev == b.st_rdev;
}

static void test_child_fds(void **state)
{
    int p[2], status;
    (void)state;
    assert_int_equal(pipe(p), 0);
    int extra = open("/etc/hosts", O_RDONLY); /* must not survive */
    assert_true(extra >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fds_report fr = {0};
        int keep = fcntl(p[1], F_DUPFD, 20);
        close(p[1]);
        fr.ret = cas_sandbox_child_fds(keep);
        fr.stdin_null = is_dev_null(0);
        fr.stdout_null = is_dev_null(1);
        fr.stderr_null = is_dev_null(2);
        /* 3 is the kept descriptor now, whatever it was before. */
        fr.extra_closed = (extra == 3 || fcntl(extra, F_GETFD) < 0) &&
                          (p[0] == 3 || fcntl(p[0], F_GETFD) < 0) && fcntl(keep, F_GETFD) < 0;
        _exit(write(3, &fr, sizeof(fr)) == (ssize_t)sizeof(fr) ? 0 : 1);
    }
    close(p[1]);
    close(extra);
    struct fds_report fr;
    assert_int_equal(read(p[0], &fr, sizeof(fr)), (ssize_t)sizeof(fr));
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(fr.ret, 3);
    assert_true(fr.stdin_null);
    assert_true(fr.stdout_null);
    assert_true(fr.stderr_null);
    assert_true(fr.extra_closed);
}

/* A descriptor to keep that is 0, 1 or 2 (a daemon started with its standard streams closed
 * gets its socket there) must still be the one renumbered to 3, not /dev/null. */
static void test_child_fds_keeps_a_low_descriptor(void **state)
{
    (void)state;
    for (int low = 0; low <= 2; low++) {
        int p[2], status;
        char buf[8] = {0};
        assert_int_equal(pipe(p), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            if (dup2(p[1], low) != low)
                _exit(1);
            close(p[1]);
            int fd = cas_sandbox_child_fds(low);
            _exit(fd == 3 && write(fd, "ok", 2) == 2 ? 0 : 1);
        }
        close(p[1]);
        ssize_t n = read(p[0], buf, sizeof(buf) - 1);
        close(p[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (n != 2 || strcmp(buf, "ok") != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("keep = %d: the kept descriptor was lost (read %zd bytes)", low, n);
    }
}

/* ---- cas_sandbox_call ---- */

static int fn_echo(const char *in, size_t in_len, char *out, size_t out_size)
{
    snprintf(out, out_size, "+%.*s:%u", (int)in_len, in, (unsigned)getpid());
    return 0;
}

static int fn_fixed(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    snprintf(out, out_size, "+CEN answer %zu", in_len);
    return 0;
}

static void test_call_answer(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(cas_sandbox_call(fn_fixed, "abc", 3, out, sizeof(out)), CAS_OK);
    assert_string_equal(out, "+CEN answer 3");
    /* It runs in another process. */
    assert_int_equal(cas_sandbox_call(fn_echo, "xy", 2, out, sizeof(out)), CAS_OK);
    assert_int_equal(strncmp(out, "+xy:", 4), 0);
    assert_int_not_equal((int)strtol(out + 4, NULL, 10), (int)getpid());
}

static int fn_identity(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    snprintf(out, out_size, "%u %d %d", (unsigned)geteuid(), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
             getgroups(0, NULL));
    return 0;
}

static void test_call_runs_sandboxed(void **state)
{
    char out[64], want[64];
    uid_t uid;
    gid_t gid;
    (void)state;
    sandbox_ids(&uid, &gid);
    assert_int_equal(cas_sandbox_call(fn_identity, "", 0, out, sizeof(out)), CAS_OK);
    snprintf(want, sizeof(want), "%u 1 ", (unsigned)uid);
    assert_int_equal(strncmp(out, want, strlen(want)), 0);
    if (geteuid() == 0)
        assert_string_equal(out + strlen(want), "0");
}

static int fn_fails(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    snprintf(out, out_size, "partial");
    return 1;
}

static void test_call_fn_fails(void **state)
{
    char out[64];
    (void)state;
    cas_hr hr = cas_sandbox_call(fn_fails, "abc", 3, out, sizeof(out));
    assert_int_equal(hr, CAS_E_FAIL);
    assert_string_equal(out, "");
    assert_true(cas_err_detail()[0] != '\0');
}

static int fn_crash(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_size;
    raise(SIGSEGV);
    return 0;
}

static void test_call_crash(void **state)
{
    char out[64];
    struct sigaction dfl, old;
    (void)state;
    /* cmocka catches SIGSEGV to report a failed test; a forked child would inherit that handler
     * and jump back into the test runner. The agent has no such handler: restore the default. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, &old);
    cas_hr hr = cas_sandbox_call(fn_crash, "abc", 3, out, sizeof(out));
    sigaction(SIGSEGV, &old, NULL);
    assert_true(hr & 0x80000000u);
    assert_int_equal(hr, CAS_E_FAIL);
    assert_non_null(strstr(cas_err_detail(), "signal 11"));
    assert_string_equal(out, "");
    /* The caller goes on. */
    assert_int_equal(cas_sandbox_call(fn_fixed, "ab", 2, out, sizeof(out)), CAS_OK);
    assert_string_equal(out, "+CEN answer 2");
}

static int fn_create(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in_len;
    int fd = open(in, O_WRONLY | O_CREAT | O_EXCL, 0644);
    snprintf(out, out_size, "%s", fd < 0 ? strerror(errno) : "created");
    if (fd >= 0)
        close(fd);
    return 0;
}

static void test_call_cannot_create_outside(void **state)
{
    struct tree *t = *state;
    char path[256], out[128];
    struct stat sb;
    pathf(path, sizeof(path), t->out, "planted");
    assert_int_equal(cas_sandbox_call(fn_create, path, strlen(path), out, sizeof(out)), CAS_OK);
    if (landlock_abi_here() == 0) {
        print_message("[   NOTE   ] no Landlock here: the child could write (%s)\n", out);
        skip();
    }
    if (lstat(path, &sb) == 0)
        fail_msg("the sandboxed reader created %s", path);
    assert_string_equal(out, strerror(EACCES));
}

static int fn_long(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    memset(out, 'x', out_size); /* no NUL of its own */
    return 0;
}

static void test_call_answer_is_cut(void **state)
{
    char out[16];
    (void)state;
    memset(out, 'Q', sizeof(out));
    assert_int_equal(cas_sandbox_call(fn_long, "", 0, out, 8), CAS_OK);
    assert_string_equal(out, "xxxxxxx");
    assert_int_equal(out[8], 'Q'); /* nothing beyond out_size */
    assert_int_equal(cas_sandbox_call(fn_long, "", 0, out, 1), CAS_OK);
    assert_string_equal(out, "");
    assert_int_equal(cas_sandbox_call(fn_long, "", 0, out, 0), CAS_E_INVALIDARG);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fn_sleep(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    sleep(30);
    snprintf(out, out_size, "late");
    return 0;
}

static void test_call_slow_reader_killed(void **state)
{
    char out[64];
    (void)state;
    double t0 = now_s();
    cas_hr hr = cas_sandbox_call(fn_sleep, "", 0, out, sizeof(out));
    double took = now_s() - t0;
    assert_int_equal(hr, CAS_E_TIMEOUT);
    assert_string_equal(out, "");
    if (took < 9.5 || took > 13.0)
        fail_msg("took %.1f s, expected about 10 s", took);
}

/* A reader taken over by what it parses can write to its pipe (descriptor 3) directly. One that
 * sends a byte every 3 s must not keep the agent longer than the 10 s allowed. */
static int fn_trickle(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_size;
    for (int i = 0; i < 5; i++) {
        if (write(3, "a", 1) != 1)
            return 1;
        sleep(3);
    }
    return 0;
}

static void test_call_trickling_reader_killed(void **state)
{
    char out[64];
    (void)state;
    double t0 = now_s();
    cas_hr hr = cas_sandbox_call(fn_trickle, "", 0, out, sizeof(out));
    double took = now_s() - t0;
    if (took > 12.0)
        fail_msg("a reader trickling bytes held the caller %.1f s (0x%08X, \"%s\"); 10 s is the "
                 "limit",
                 took, hr, out);
    assert_int_equal(hr, CAS_E_TIMEOUT);
}

/* One that closes its pipe and then hangs must not either. */
static int fn_close_and_hang(const char *in, size_t in_len, char *out, size_t out_size)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_size;
    close(3);
    sleep(15);
    return 0;
}

static void test_call_silent_hanging_reader_killed(void **state)
{
    char out[64];
    (void)state;
    double t0 = now_s();
    cas_hr hr = cas_sandbox_call(fn_close_and_hang, "", 0, out, sizeof(out));
    double took = now_s() - t0;
    if (took > 12.0)
        fail_msg("a reader that closed its pipe and hung held the caller %.1f s (0x%08X); 10 s "
                 "is the limit",
                 took, hr);
    assert_true(hr & 0x80000000u);
}

/* ---- fixtures ---- */

static int setup_tree(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    tree_make(t);
    *state = t;
    return 0;
}

static int teardown_tree(void **state)
{
    struct tree *t = *state;
    tree_remove(t);
    free(t);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writable_dir_only, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_outside_writes_work_without_sandbox, setup_tree,
                                        teardown_tree),
        cmocka_unit_test_setup_teardown(test_no_writable_dir, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_missing_writable_dir_fails_with_landlock, setup_tree,
                                        teardown_tree),
        cmocka_unit_test(test_no_new_privs_not_dumpable),
        cmocka_unit_test(test_root_dropped_to_named_user),
        cmocka_unit_test(test_root_dropped_to_default_user),
        cmocka_unit_test(test_unknown_user_keeps_nothing_half_done),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_child_fds),
        cmocka_unit_test(test_child_fds_keeps_a_low_descriptor),
        cmocka_unit_test(test_call_answer),
        cmocka_unit_test(test_call_runs_sandboxed),
        cmocka_unit_test(test_call_fn_fails),
        cmocka_unit_test(test_call_crash),
        cmocka_unit_test_setup_teardown(test_call_cannot_create_outside, setup_tree, teardown_tree),
        cmocka_unit_test(test_call_answer_is_cut),
        cmocka_unit_test(test_call_slow_reader_killed),
        cmocka_unit_test(test_call_trickling_reader_killed),
        cmocka_unit_test(test_call_silent_hanging_reader_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
