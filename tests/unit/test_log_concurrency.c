/* The log writer under load: several processes with several threads each write to one log while
 * it rotates again and again. Every record must arrive exactly once and whole, in some file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"

#define PROCS   6
#define THREADS 3
#define RECORDS 500 /* per thread */

struct writer {
    int proc, thread;
};

static void *write_records(void *ud)
{
    const struct writer *w = ud;
    for (int i = 0; i < RECORDS; i++) {
        /* Varying lengths, so records straddle the rotation size at every offset. */
        cas_log_info(CAS_LOG_CAS, "record p%d t%d n%d %.*s", w->proc, w->thread, i, i % 97,
                     "padding-padding-padding-padding-padding-padding-padding-padding-padding-"
                     "padding-padding-padding");
    }
    return NULL;
}

static void child(const char *dir, int proc)
{
    struct cas_log_settings s = {.dir = dir, .level = 1, .max_size = 10000, .max_history = 300};
    pthread_t t[THREADS];
    struct writer w[THREADS];
    if (cas_log_init(&s) != CAS_OK)
        _exit(2);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct writer){proc, i};
        if (pthread_create(&t[i], NULL, write_records, &w[i]) != 0)
            _exit(3);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    cas_log_shutdown();
    _exit(0);
}

/* Count the records of one file into seen[proc][thread][n]; fail on anything not whole. */
static size_t scan_file(const char *path, unsigned char (*seen)[THREADS][RECORDS])
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        int p, t, i;
        if (len == 0 || line[len - 1] != '\n' || strncmp(line, "<![LOG[record p", 15) != 0 ||
            !strstr(line, "]LOG]!><time=\"") || strcmp(line + len - 3, "\">\n") != 0)
            fail_msg("%s: a record that is not whole: %.120s", path, line);
        // NOLINTNEXTLINE(cert-err34-c): the test's own records, and each number is range-checked
        if (sscanf(line, "<![LOG[record p%d t%d n%d ", &p, &t, &i) != 3 || p < 0 || p >= PROCS ||
            t < 0 || t >= THREADS || i < 0 || i >= RECORDS)
            fail_msg("%s: unexpected record: %.120s", path, line);
        seen[p][t][i]++;
        n++;
    }
    fclose(f);
    return n;
}

static void test_concurrent_writers_with_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/cas-logc.XXXXXX";
    static unsigned char seen[PROCS][THREADS][RECORDS];
    pid_t pids[PROCS];
    size_t files = 0, total = 0;

    assert_non_null(mkdtemp(dir));
    memset(seen, 0, sizeof(seen));
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0)
            child(dir, p);
    }
    for (int p = 0; p < PROCS; p++) {
        int st = 0;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }

    DIR *d = opendir(dir);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (strcmp(de->d_name, "CAS.log") != 0 && strncmp(de->d_name, "CAS.lo_", 7) != 0)
            fail_msg("unexpected file %s", de->d_name);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        total += scan_file(path, seen);
        files++;
    }
    closedir(d);
    assert_true(files > 10); /* it did rotate, many times */
    for (int p = 0; p < PROCS; p++)
        for (int t = 0; t < THREADS; t++)
            for (int i = 0; i < RECORDS; i++)
                if (seen[p][t][i] != 1)
                    fail_msg("record p%d t%d n%d seen %d times", p, t, i, seen[p][t][i]);
    assert_int_equal(total, (size_t)PROCS * THREADS * RECORDS);
    printf("# %zu records in %zu files, none torn, none lost, none doubled\n", total, files);
    assert_int_equal(cas_fs_remove_tree(dir), CAS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writers_with_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
