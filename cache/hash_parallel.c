/* See hash_parallel.h. Workers take the next file from a shared counter, so a few big files
 * among many small ones do not leave a thread idle. */
#include "cache/hash_parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HASH_PAR_MAX_THREADS 8
#define HASH_PAR_MIN_FILES   64 /* below this, threads cost more than they save */

struct hash_par {
    int dirfd;
    struct cas_sums *sums;
    pthread_mutex_t mu; /* guards the rest */
    size_t next;
    int failed; /* stop taking work */
    cas_hr hr;
    char detail[1024];
};

static void *hash_par_worker(void *arg)
{
    struct hash_par *p = arg;
    for (;;) {
        /* A lock per file is nothing next to opening and reading it. */
        pthread_mutex_lock(&p->mu);
        size_t i = p->failed ? p->sums->count : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->sums->count)
            break;
        struct cas_sums_entry *e = &p->sums->entries[i];
        cas_hr hr = cas_hash_file_at(p->dirfd, e->path, p->sums->alg, e->hex, &e->size);
        if (hr != CAS_OK) {
            /* The detail is per thread: copy it for the caller. */
            pthread_mutex_lock(&p->mu);
            if (p->hr == CAS_OK) {
                p->hr = hr;
                snprintf(p->detail, sizeof(p->detail), "package entry '%s': %s", e->path,
                         cas_err_detail());
            }
            p->failed = 1;
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

cas_hr cache_hash_entries(const char *folder, struct cas_sums *sums)
{
    struct hash_par p = {.sums = sums, .hr = CAS_OK};
    pthread_t threads[HASH_PAR_MAX_THREADS];
    size_t started = 0, want = 1;

    p.dirfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p.dirfd < 0)
        return cas_fail(cas_err_from_errno(errno), "cannot open package folder '%s': %s", folder,
                        strerror(errno));
    pthread_mutex_init(&p.mu, NULL);
    if (sums->count >= HASH_PAR_MIN_FILES) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        want = cpus > 1 ? (size_t)cpus : 1;
        if (want > HASH_PAR_MAX_THREADS)
            want = HASH_PAR_MAX_THREADS;
    }
    /* This thread is one of the workers; a thread that cannot start only means fewer. */
    for (size_t t = 1; t < want; t++) {
        if (pthread_create(&threads[started], NULL, hash_par_worker, &p) == 0)
            started++;
    }
    hash_par_worker(&p);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    pthread_mutex_destroy(&p.mu);
    close(p.dirfd);
    if (p.hr != CAS_OK)
        return cas_fail(p.hr, "%s", p.detail);
    return CAS_OK;
}
