/* The real process runner, with real fork/exec of small /bin/sh scripts: exit codes, start
 * failures, output captured into execmgr.log (exact lines, bounded), the time limit and
 * cancellation ending the whole process group, the cleared environment, closed descriptors and
 * running as another user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/runner.h"
#include "agent/signals.h"
#include "common/fsutil.h"
#include "common/log.h"

#define SYSTEM_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define NO_CODE     (-12345)

struct fixture {
    char dir[64];  /* scripts and the program's working folder (0755: other users can enter) */
    char logs[96]; /* the log folder, level 0 */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cas-test-runner-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(chmod(f->dir, 0755), 0);
    snprintf(f->logs, sizeof(f->logs), "%s/log", f->dir);
    struct cas_log_settings s = {f->logs, 0, 0, 64L * 1024 * 1024, 1, 0};
    assert_int_equal(cas_log_init(&s), CAS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cas_log_shutdown();
    cas_fs_remove_tree(f->dir);
    free(f);
    return 0;
}

static char *path_in(const struct fixture *f, const char *name)
{
    char *p = cas_path_join(f->dir, name);
    assert_non_null(p);
    return p;
}

/* DIR/NAME with this body and mode; returns the path. */
static char *write_file(const struct fixture *f, const char *name, const char *body, mode_t mode)
{
    char *p = path_in(f, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(body, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(p, mode), 0);
    return p;
}

static char *write_script(const struct fixture *f, const char *name, const char *body)
{
    char *text = NULL;
    assert_true(asprintf(&text, "#!/bin/sh\n%s", body) > 0);
    char *p = write_file(f, name, text, 0755);
    free(text);
    return p;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run PATH with argv {name, args...} in the fixture's folder. */
static cas_hr run_argv(const struct fixture *f, const char *path, char *const *argv, double minutes,
                       const char *user, int *code)
{
    struct cas_run_request req = {path, argv, f->dir, minutes, user};
    *code = NO_CODE;
    return cas_runner_default.run(&cas_runner_default, &req, code);
}

static cas_hr run_path(const struct fixture *f, const char *path, double minutes, const char *user,
                       int *code)
{
    const char *base = strrchr(path, '/');
    char *argv[] = {(char *)(base ? base + 1 : path), NULL};
    return run_argv(f, path, argv, minutes, user, code);
}

/* The TEXT of every execmgr.log record starting with PREFIX (the prefix removed if STRIP), one
 * per line. */
static char *log_lines(const struct fixture *f, const char *prefix, int strip)
{
    char *path = cas_path_join(f->logs, "execmgr.log"), *buf = NULL;
    size_t len = 0, plen = strlen(prefix);
    assert_non_null(path);
    if (cas_fs_read_file(path, 1 << 26, &buf, &len) != CAS_OK) {
        buf = strdup("");
        len = 0;
    }
    free(path);
    char *out = malloc(len + 1);
    assert_non_null(out);
    size_t o = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *start = strncmp(line, "<![LOG[", 7) == 0 ? line + 7 : NULL;
        char *end = start ? strstr(start, "]LOG]!>") : NULL;
        if (end && (size_t)(end - start) >= plen && !strncmp(start, prefix, plen)) {
            if (strip)
                start += plen;
            memcpy(out + o, start, (size_t)(end - start));
            o += (size_t)(end - start);
            out[o++] = '\n';
        }
        line = nl ? nl + 1 : NULL;
    }
    out[o] = '\0';
    free(buf);
    return out;
}

static char *output_lines(const struct fixture *f)
{
    return log_lines(f, "Program output: ", 1);
}

static long read_pid(const struct fixture *f, const char *name)
{
    char *p = path_in(f, name), *buf = NULL;
    size_t len = 0;
    long pid = 0;
    for (int i = 0; i < 100 && cas_fs_read_file(p, 64, &buf, &len) != CAS_OK; i++)
        usleep(10000);
    assert_non_null(buf);
    pid = strtol(buf, NULL, 10);
    assert_true(pid > 1);
    free(buf);
    free(p);
    return pid;
}

static int pid_gone(long pid)
{
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* ---- exit codes and start failures ---- */

static void test_exit_code_passed_through(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "seven.sh", "exit 7\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_int_equal(code, 7);
    free(p);

    p = write_script(f, "zero.sh", "exit 0\n");
    assert_int_equal(run_path(f, p, 0, NULL, &code), CAS_OK); /* 0: no limit */
    assert_int_equal(code, 0);
    free(p);

    /* Killed by a signal: 128 + the signal, as a shell reports it. */
    p = write_script(f, "term.sh", "kill -TERM $$\nsleep 5\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_int_equal(code, 128 + SIGTERM);
    free(p);

    /* 127 from the program itself is an exit code, not a start failure. */
    p = write_script(f, "127.sh", "exit 127\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_int_equal(code, 127);
    free(p);
}

static void test_start_failures_are_not_exit_codes(void **state)
{
    struct fixture *f = *state;
    int code;

    char *p = path_in(f, "missing.sh");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_E_FILE_MISSING);
    assert_int_equal(code, NO_CODE);
    assert_non_null(strstr(cas_err_detail(), "cannot start"));
    assert_non_null(strstr(cas_err_detail(), "No such file or directory"));
    free(p);

    /* No #! line: the kernel refuses it (ENOEXEC); the runner does not fall back to a shell. */
    p = write_file(f, "nobang.sh", "echo ran > ran.txt\n", 0755);
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_E_EXEC_FATAL);
    assert_int_equal(code, NO_CODE);
    assert_non_null(strstr(cas_err_detail(), "#!"));
    free(p);
    p = path_in(f, "ran.txt");
    assert_int_equal(access(p, F_OK), -1);
    free(p);

    /* Not executable (even root needs an x bit to exec). */
    p = write_file(f, "noexec.sh", "#!/bin/sh\nexit 0\n", 0644);
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_E_ACCESSDENIED);
    assert_int_equal(code, NO_CODE);
    free(p);

    /* The working folder is missing. */
    p = write_script(f, "ok.sh", "exit 0\n");
    char *argv[] = {"ok.sh", NULL};
    struct cas_run_request req = {p, argv, "/nonexistent/cas-test-folder", 1, NULL};
    code = NO_CODE;
    assert_int_equal(cas_runner_default.run(&cas_runner_default, &req, &code), CAS_E_FILE_MISSING);
    assert_int_equal(code, NO_CODE);
    assert_non_null(strstr(cas_err_detail(), "/nonexistent/cas-test-folder"));
    free(p);
}

/* ---- output ---- */

static void test_output_lines_exact(void **state)
{
    struct fixture *f = *state;
    int code;
    /* stdout and stderr share one pipe, so their order is kept; CR LF loses the CR; a last line
     * without a newline is still logged; an empty line is a record too. */
    char *p = write_script(f, "out.sh",
                           "echo one\n"
                           "echo two >&2\n"
                           "printf 'tab\\there\\r\\n'\n"
                           "echo\n"
                           "echo three\n"
                           "printf 'no newline'\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_int_equal(code, 0);
    char *out = output_lines(f);
    assert_string_equal(out, "one\ntwo\ntab\there\n\nthree\nno newline\n");
    free(out);
    out = log_lines(f, "Program output truncated", 0);
    assert_string_equal(out, "");
    free(out);
    free(p);
}

static void test_output_overlong_line_cut(void **state)
{
    struct fixture *f = *state;
    int code;
    /* 3000 'a' then a normal line: the first 2048 bytes are logged, marked as cut. */
    char *p = write_script(f, "long.sh",
                           "head -c 3000 /dev/zero | tr '\\0' a\n"
                           "echo\n"
                           "echo after\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_int_equal(code, 0);
    char *cut = log_lines(f, "Program output (line cut to 2048 bytes): ", 1);
    char want[2050];
    memset(want, 'a', 2048);
    want[2048] = '\n';
    want[2049] = '\0';
    assert_string_equal(cut, want);
    char *out = output_lines(f);
    assert_string_equal(out, "after\n");
    free(out);
    free(cut);
    free(p);
}

/* 1 MiB of output in 16-byte lines: exactly the first 64 KiB (4096 lines) is logged, then one
 * line says how much was left out, and the program was never blocked on a full pipe. */
static void test_output_bounded(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "flood.sh",
                           "yes 0123456789abcde | head -c 1048576\n"
                           "echo done > flood.done\n");
    double t0 = now_sec();
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_true(now_sec() - t0 < 30);
    assert_int_equal(code, 0);
    char *done = path_in(f, "flood.done");
    assert_int_equal(access(done, F_OK), 0);
    free(done);

    char *out = output_lines(f);
    size_t n = 0;
    for (char *l = out; *l; l += 16) {
        assert_memory_equal(l, "0123456789abcde\n", 16);
        n++;
    }
    assert_int_equal(n, 4096);
    free(out);
    char *trunc = log_lines(f, "Program output truncated", 0);
    assert_string_equal(trunc, "Program output truncated: 983040 more bytes not logged\n");
    free(trunc);
    free(p);
}

/* ---- the time limit ---- */

static void test_timeout_ends_group(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "slow.sh",
                           "sleep 300 &\n"
                           "echo $! > bg.pid\n"
                           "echo $$ > main.pid\n"
                           "echo waiting\n"
                           "sleep 300\n");
    double t0 = now_sec();
    assert_int_equal(run_path(f, p, 0.02, NULL, &code), CAS_E_PROGRAM_TIMEOUT); /* 1.2 s */
    double took = now_sec() - t0;
    assert_int_equal(code, NO_CODE);
    assert_true(took >= 1.1);
    assert_true(took < 4); /* both end at SIGTERM: no grace period spent */
    assert_non_null(strstr(cas_err_detail(), "ran longer than 0.02 minutes"));
    assert_true(pid_gone(read_pid(f, "main.pid")));
    assert_true(pid_gone(read_pid(f, "bg.pid")));

    char *warn = log_lines(f,
                           "Program slow.sh ran longer than its maximum run time of 0.02 minutes, "
                           "ending its process group ",
                           0);
    assert_true(strlen(warn) > 0);
    free(warn);
    char *out = output_lines(f);
    assert_string_equal(out, "waiting\n");
    free(out);
    warn = log_lines(f, "Process group", 0);
    assert_string_equal(warn, ""); /* no SIGKILL needed */
    free(warn);
    free(p);
}

/* A group that ignores SIGTERM is killed after the grace period. */
static void test_timeout_kills_after_grace(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "stubborn.sh",
                           "trap '' TERM\n"
                           "sleep 300 &\n"
                           "echo $! > bg.pid\n"
                           "echo $$ > main.pid\n"
                           "sleep 300\n");
    double t0 = now_sec();
    assert_int_equal(run_path(f, p, 0.01, NULL, &code), CAS_E_PROGRAM_TIMEOUT); /* 0.6 s */
    double took = now_sec() - t0;
    assert_true(took >= 0.6 + 4.9);
    assert_true(took < 0.6 + 5 + 3);
    assert_true(pid_gone(read_pid(f, "main.pid")));
    assert_true(pid_gone(read_pid(f, "bg.pid")));
    char *warn = log_lines(f, "Process group ", 0);
    assert_non_null(strstr(warn, " of program stubborn.sh did not end within 5 seconds of SIGTERM, "
                                 "sending SIGKILL\n"));
    free(warn);
    free(p);
}

/* A program that exits normally is not waited for past its own end, even though a background
 * process it left behind still holds the output pipe; that process is reaped later. */
static void test_exit_leaves_background_running(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "bg.sh",
                           "sleep 0.5 &\n"
                           "echo $! > bg.pid\n"
                           "echo started\n"
                           "exit 3\n");
    double t0 = now_sec();
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_true(now_sec() - t0 < 0.45);
    assert_int_equal(code, 3);
    long bg = read_pid(f, "bg.pid");
    assert_false(pid_gone(bg));
    char *out = output_lines(f);
    assert_string_equal(out, "started\n");
    free(out);
    free(p);

    /* Once it ended, the next run reaps it: no zombie is left. */
    usleep(800000);
    p = write_script(f, "true.sh", "exit 0\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    assert_true(pid_gone(bg));
    free(p);
}

/* ---- cancellation ---- */

static void *term_later(void *arg)
{
    (void)arg;
    usleep(200000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void test_cancel_ends_group(void **state)
{
    struct fixture *f = *state;
    int code;
    pthread_t th;
    char *p = write_script(f, "long.sh",
                           "sleep 300 &\n"
                           "echo $! > bg.pid\n"
                           "echo $$ > main.pid\n"
                           "sleep 300\n");
    cas_signals_install();
    cas_signals_reset();
    assert_int_equal(pthread_create(&th, NULL, term_later, NULL), 0);
    double t0 = now_sec();
    cas_hr hr = run_path(f, p, 10, NULL, &code);
    double took = now_sec() - t0;
    pthread_join(th, NULL);
    assert_true(cas_stop_requested());
    cas_signals_reset();
    assert_int_equal(hr, CAS_E_CANCELLED);
    assert_string_equal(cas_err_detail(), "stopped: the agent is stopping");
    assert_int_equal(code, NO_CODE);
    assert_true(took < 3);
    assert_true(pid_gone(read_pid(f, "main.pid")));
    assert_true(pid_gone(read_pid(f, "bg.pid")));
    char *warn =
        log_lines(f, "The agent is stopping, ending program long.sh and its process group ", 0);
    assert_true(strlen(warn) > 0);
    free(warn);
    free(p);
}

/* A stop already requested: the program does not start. */
static void test_cancel_before_start(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "mark.sh", "echo ran > ran.txt\n");
    cas_signals_install();
    cas_signals_reset();
    kill(getpid(), SIGTERM);
    assert_true(cas_stop_requested());
    cas_hr hr = run_path(f, p, 1, NULL, &code);
    cas_signals_reset();
    assert_int_equal(hr, CAS_E_CANCELLED);
    char *ran = path_in(f, "ran.txt");
    assert_int_equal(access(ran, F_OK), -1);
    free(ran);
    free(p);
}

/* ---- environment, descriptors, standard input, working folder ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The program's environment, sorted, one per line. */
static char *env_of_run(const struct fixture *f, const char *user)
{
    int code;
    char *argv[] = {"env", NULL};
    assert_int_equal(run_argv(f, "/usr/bin/env", argv, 1, user, &code), CAS_OK);
    assert_int_equal(code, 0);
    char *out = log_lines(f, "Program output: ", 1);
    char *lines[64];
    size_t n = 0, total = strlen(out);
    for (char *s = strtok(out, "\n"); s && n < 64; s = strtok(NULL, "\n"))
        lines[n++] = s;
    qsort(lines, n, sizeof(lines[0]), cmp_str);
    char *sorted = calloc(1, total + 2);
    assert_non_null(sorted);
    for (size_t i = 0, at = 0; i < n; i++) {
        size_t len = strlen(lines[i]);
        memcpy(sorted + at, lines[i], len);
        sorted[at + len] = '\n';
        at += len + 1;
    }
    free(out);
    /* The next run of this test reads only its own lines. */
    char *log = cas_path_join(f->logs, "execmgr.log");
    unlink(log);
    free(log);
    return sorted;
}

static void test_environment_exactly_five(void **state)
{
    struct fixture *f = *state;
    struct passwd *pw = getpwuid(geteuid());
    assert_non_null(pw);
    char *want = NULL, *env;
    const char *lang = getenv("LANG");
    char *old_lang = lang ? strdup(lang) : NULL;

    setenv("CAS_TEST_CANARY", "must-not-reach-the-program", 1);
    setenv("LANG", "de_DE.UTF-8", 1);
    env = env_of_run(f, NULL);
    assert_true(asprintf(&want, "HOME=%s\nLANG=de_DE.UTF-8\nLOGNAME=%s\n%s\nUSER=%s\n", pw->pw_dir,
                         pw->pw_name, SYSTEM_PATH, pw->pw_name) > 0);
    assert_string_equal(env, want);
    free(env);
    free(want);

    unsetenv("LANG");
    env = env_of_run(f, NULL);
    assert_non_null(strstr(env, "LANG=C.UTF-8\n"));
    free(env);

    unsetenv("CAS_TEST_CANARY");
    if (old_lang)
        setenv("LANG", old_lang, 1);
    free(old_lang);
}

static void test_descriptors_closed(void **state)
{
    struct fixture *f = *state;
    int code;
    /* A descriptor the agent holds without close-on-exec, and one far up. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 3);
    assert_int_equal(dup2(fd, 200), 200);
    char *argv[] = {"ls", "-1", "/proc/self/fd", NULL};
    assert_int_equal(run_argv(f, "/bin/ls", argv, 1, NULL, &code), CAS_OK);
    close(fd);
    close(200);
    assert_int_equal(code, 0);
    char *out = output_lines(f);
    /* 0-2, and the one ls itself opened to read the folder. */
    assert_string_equal(out, "0\n1\n2\n3\n");
    free(out);
}

static void test_stdin_and_cwd(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "where.sh",
                           "readlink /proc/self/fd/0\n"
                           "pwd -P\n"
                           "cat; echo \"cat=$?\"\n");
    assert_int_equal(run_path(f, p, 1, NULL, &code), CAS_OK);
    char real[4096];
    assert_non_null(realpath(f->dir, real));
    char *want = NULL;
    assert_true(asprintf(&want, "/dev/null\n%s\ncat=0\n", real) > 0);
    char *out = output_lines(f);
    assert_string_equal(out, want);
    free(out);
    free(want);
    free(p);
}

/* ---- users ---- */

static void test_run_as_nobody(void **state)
{
    struct fixture *f = *state;
    int code;
    if (geteuid() != 0) {
        print_message("not root: running as another user is not tested\n");
        skip();
    }
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char *home = strdup(pw->pw_dir);
    char *p = write_script(
        f, "who.sh",
        "id -u\n"
        "id -g\n"
        "id -un\n"
        "if (true > written.txt) 2>/dev/null; then echo wrote; else echo denied; fi\n");
    assert_int_equal(run_path(f, p, 1, "nobody", &code), CAS_OK);
    assert_int_equal(code, 0);
    char *want = NULL;
    assert_true(
        asprintf(&want, "%lu\n%lu\nnobody\ndenied\n", (unsigned long)uid, (unsigned long)gid) > 0);
    char *out = output_lines(f);
    assert_string_equal(out, want);
    free(out);
    free(want);
    char *v = log_lines(f, "Running program who.sh as user nobody (uid ", 0);
    assert_true(strlen(v) > 0);
    free(v);
    char *log = cas_path_join(f->logs, "execmgr.log");
    unlink(log);
    free(log);

    /* The user's environment: its own HOME, USER, LOGNAME and the user PATH. */
    char *env = env_of_run(f, "nobody");
    assert_non_null(
        strstr(env, "LOGNAME=nobody\nPATH=/usr/local/bin:/usr/bin:/bin\nUSER=nobody\n"));
    char *h = NULL;
    assert_true(asprintf(&h, "HOME=%s\n", home) > 0);
    assert_true(strncmp(env, h, strlen(h)) == 0);
    free(h);
    free(env);
    free(home);
    free(p);
}

static void test_unknown_user_fails_to_start(void **state)
{
    struct fixture *f = *state;
    int code;
    char *p = write_script(f, "mark.sh", "echo ran > ran.txt\n");
    cas_hr hr = run_path(f, p, 1, "cas-no-such-user-x", &code);
    if (geteuid() == 0)
        assert_int_equal(hr, CAS_E_NO_SUCH_USER);
    else
        assert_int_equal(hr, CAS_E_ACCESSDENIED); /* only root may switch users */
    assert_int_equal(code, NO_CODE);
    char *ran = path_in(f, "ran.txt");
    assert_int_equal(access(ran, F_OK), -1);
    free(ran);
    free(p);
}

/* The working folder is entered as the user: one it cannot enter is a start failure. */
static void test_user_cannot_enter_folder(void **state)
{
    struct fixture *f = *state;
    int code;
    if (geteuid() != 0)
        skip();
    char *p = write_script(f, "ok.sh", "exit 0\n");
    char *closed = path_in(f, "closed");
    assert_int_equal(mkdir(closed, 0700), 0);
    char *argv[] = {"ok.sh", NULL};
    struct cas_run_request req = {p, argv, closed, 1, "nobody"};
    code = NO_CODE;
    assert_int_equal(cas_runner_default.run(&cas_runner_default, &req, &code), CAS_E_ACCESSDENIED);
    assert_int_equal(code, NO_CODE);
    assert_non_null(strstr(cas_err_detail(), "as user nobody"));
    free(closed);
    free(p);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_exit_code_passed_through),
        T(test_start_failures_are_not_exit_codes),
        T(test_output_lines_exact),
        T(test_output_overlong_line_cut),
        T(test_output_bounded),
        T(test_timeout_ends_group),
        T(test_timeout_kills_after_grace),
        T(test_exit_leaves_background_running),
        T(test_cancel_ends_group),
        T(test_cancel_before_start),
        T(test_environment_exactly_five),
        T(test_descriptors_closed),
        T(test_stdin_and_cwd),
        T(test_run_as_nobody),
        T(test_unknown_user_fails_to_start),
        T(test_user_cannot_enter_folder),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
