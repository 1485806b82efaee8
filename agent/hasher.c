/* Hashing off the transfer thread. See hasher.h.
 *
 * The worker reads the bytes back with pread rather than receiving copies: they are in the page
 * cache already, so nothing in this process grows with the backlog, and the writer never waits
 * for the worker except when it needs a final digest. */
#include "hasher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASHER_CHUNK ((size_t)512 * 1024)
/* The worker is woken once this much is waiting, not for every piece curl hands over (16 KiB):
 * a wake-up per piece costs more than the hashing it hands off. */
#define HASHER_BATCH ((size_t)256 * 1024)

struct cas_hasher_stream {
    struct cas_hasher *hs;
    int fd;
    struct cas_hash *h;
    enum cas_hash_alg alg;
    /* Guarded by hs->mu once offloaded; before that only the writer touches them. */
    uint64_t hashed, written;
    int offloaded, queued, busy, abandon;
    int err; /* errno of a failed read back, or -1 for a file shorter than written */
    struct cas_hasher_stream *next;
};

struct cas_hasher {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t thread;
    struct cas_hasher_stream *head, *tail;
    int stop;
    unsigned char *buf;
};

/* Hash [from, to) of the file into h; 0 or an errno (-1 for a short file). */
static int hasher_read_range(int fd, struct cas_hash *h, unsigned char *buf, uint64_t from,
                             uint64_t to, const int *abandon)
{
    while (from < to) {
        if (abandon && __atomic_load_n(abandon, __ATOMIC_RELAXED))
            return 0;
        size_t want = to - from < HASHER_CHUNK ? (size_t)(to - from) : HASHER_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)from);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return -1;
        cas_hash_update(h, buf, (size_t)n);
        from += (uint64_t)n;
    }
    return 0;
}

static void hasher_enqueue(struct cas_hasher *hs, struct cas_hasher_stream *s)
{
    s->queued = 1;
    s->next = NULL;
    if (hs->tail)
        hs->tail->next = s;
    else
        hs->head = s;
    hs->tail = s;
    pthread_cond_signal(&hs->work);
}

static void hasher_unqueue(struct cas_hasher *hs, struct cas_hasher_stream *s)
{
    struct cas_hasher_stream **pp = &hs->head, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = s->next;
    if (hs->tail == s)
        hs->tail = prev;
    s->queued = 0;
}

static void *hasher_main(void *arg)
{
    struct cas_hasher *hs = arg;
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (!hs->head && !hs->stop)
            pthread_cond_wait(&hs->work, &hs->mu);
        if (!hs->head)
            break;
        struct cas_hasher_stream *s = hs->head;
        hs->head = s->next;
        if (!hs->head)
            hs->tail = NULL;
        s->queued = 0;
        s->busy = 1;
        uint64_t from = s->hashed, to = s->written;
        pthread_mutex_unlock(&hs->mu);

        int err = hasher_read_range(s->fd, s->h, hs->buf, from, to, &s->abandon);

        pthread_mutex_lock(&hs->mu);
        s->busy = 0;
        if (err)
            s->err = err;
        else if (!s->abandon)
            s->hashed = to;
        if (!s->err && !s->abandon && s->written - s->hashed >= HASHER_BATCH)
            hasher_enqueue(hs, s);
        pthread_cond_broadcast(&hs->done);
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

struct cas_hasher *cas_hasher_new(void)
{
    struct cas_hasher *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return NULL;
    hs->buf = malloc(HASHER_CHUNK);
    if (!hs->buf)
        goto fail;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->work, NULL);
    pthread_cond_init(&hs->done, NULL);
    if (pthread_create(&hs->thread, NULL, hasher_main, hs) != 0) {
        pthread_cond_destroy(&hs->done);
        pthread_cond_destroy(&hs->work);
        pthread_mutex_destroy(&hs->mu);
        goto fail;
    }
    return hs;
fail:
    free(hs->buf);
    free(hs);
    return NULL;
}

void cas_hasher_free(struct cas_hasher *hs)
{
    if (!hs)
        return;
    pthread_mutex_lock(&hs->mu);
    hs->stop = 1;
    pthread_cond_signal(&hs->work);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->thread, NULL);
    pthread_cond_destroy(&hs->done);
    pthread_cond_destroy(&hs->work);
    pthread_mutex_destroy(&hs->mu);
    free(hs->buf);
    free(hs);
}

struct cas_hasher_stream *cas_hasher_stream_new(struct cas_hasher *hs, int fd,
                                                enum cas_hash_alg alg, uint64_t prefix)
{
    struct cas_hasher_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->h = cas_hash_new(alg);
    if (!s->h) {
        free(s);
        return NULL;
    }
    s->hs = hs;
    s->fd = fd;
    s->alg = alg;
    s->written = prefix;
    if (hs && prefix > 0) {
        s->offloaded = 1;
        pthread_mutex_lock(&hs->mu);
        hasher_enqueue(hs, s);
        pthread_mutex_unlock(&hs->mu);
    }
    return s;
}

/* Without a worker: hash what is written but not yet hashed, from the file. */
static void hasher_catch_up(struct cas_hasher_stream *s)
{
    static __thread unsigned char buf[1u << 16];
    uint64_t from = s->hashed, to = s->written;
    while (!s->err && from < to) {
        uint64_t end = to - from > sizeof(buf) ? from + sizeof(buf) : to;
        /* hasher_read_range reads at most HASHER_CHUNK; keep each call within buf. */
        s->err = hasher_read_range(s->fd, s->h, buf, from, end, NULL);
        from = end;
    }
    if (!s->err)
        s->hashed = to;
}

void cas_hasher_stream_wrote(struct cas_hasher_stream *s, const void *data, size_t len)
{
    if (!s->offloaded) {
        if (s->hashed == s->written && (!s->hs || s->written + len <= CAS_HASHER_INLINE)) {
            cas_hash_update(s->h, data, len);
            s->hashed += len;
            s->written += len;
            return;
        }
        if (!s->hs) {
            s->written += len;
            hasher_catch_up(s);
            return;
        }
        s->offloaded = 1;
    }
    pthread_mutex_lock(&s->hs->mu);
    s->written += len;
    if (!s->queued && !s->busy && !s->err && s->written - s->hashed >= HASHER_BATCH)
        hasher_enqueue(s->hs, s);
    pthread_mutex_unlock(&s->hs->mu);
}

/* Waits for the worker to be done with s (everything hashed, or an error). */
static void hasher_wait(struct cas_hasher_stream *s)
{
    if (!s->offloaded) {
        if (s->hashed < s->written)
            hasher_catch_up(s);
        return;
    }
    pthread_mutex_lock(&s->hs->mu);
    for (;;) {
        if (!s->busy && !s->queued) {
            if (s->err || s->hashed >= s->written)
                break;
            hasher_enqueue(s->hs, s); /* what is left below a batch was never handed over */
        }
        pthread_cond_wait(&s->hs->done, &s->hs->mu);
    }
    pthread_mutex_unlock(&s->hs->mu);
}

static cas_hr hasher_error(const struct cas_hasher_stream *s)
{
    return cas_fail(CAS_E_IO, "reading back a received file to hash it: %s",
                    s->err > 0 ? strerror(s->err) : "it is shorter than what was written");
}

cas_hr cas_hasher_stream_final(struct cas_hasher_stream *s, char *hex)
{
    hasher_wait(s);
    if (s->err)
        return hasher_error(s);
    cas_hash_final_hex(s->h, hex);
    return CAS_OK;
}

cas_hr cas_hasher_stream_reset(struct cas_hasher_stream *s)
{
    hasher_wait(s);
    struct cas_hash *h = cas_hash_new(s->alg);
    if (!h)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    cas_hash_free(s->h);
    s->h = h;
    s->hashed = s->written = 0;
    s->err = 0;
    s->offloaded = 0; /* a fresh start: inline again until it grows */
    return CAS_OK;
}

void cas_hasher_stream_free(struct cas_hasher_stream *s)
{
    if (!s)
        return;
    if (s->offloaded) {
        pthread_mutex_lock(&s->hs->mu);
        __atomic_store_n(&s->abandon, 1, __ATOMIC_RELAXED);
        if (s->queued)
            hasher_unqueue(s->hs, s);
        while (s->busy)
            pthread_cond_wait(&s->hs->done, &s->hs->mu);
        pthread_mutex_unlock(&s->hs->mu);
    }
    cas_hash_free(s->h);
    free(s);
}
