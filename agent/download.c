/* The download job.
 *
 * 1. The sums listing B/C.sums from the first location whose copy hashes to the signed hash.
 *    None does: the job stops there with 0x80091007 before any file is fetched. A location whose
 *    listing differs holds other content and is not used again in the job.
 * 2. The files of the listing, up to max_parallel_transfers at once, each hashed as it is
 *    written. Per file, locations are tried in policy order. Transient failures (timeouts,
 *    resets, 5xx, 408, 429) are retried with capped exponential backoff and jitter, honouring
 *    Retry-After; each is a soft error of its location, dropped after three. Hard errors (DNS,
 *    TLS, refused) drop a location at once. 404 at every location or a 403 ends the job. A
 *    copy that does not match is kept only if no better one arrives, so that when a file fails
 *    everywhere the package hash of the content as received can still be reported as "actual":
 *    what an administrator gets by running the coreutils one-liner on the DP.
 * 3. The verified files plus what one location has in flight or left unverified never exceed
 *    the policy's size: an endless or oversized file is cut there, the content committed is
 *    never larger, and a bad mirror's bytes never count against a good one.
 * 4. Partial files live in the staging folder (parts/N.part) with a side record (parts/N.json:
 *    URL, expected file hash, validator), so an interrupted job is resumed by the next with
 *    Range and If-Range; whatever the server answers, every file is hashed in full.
 * 5. The package hash is rebuilt from the per-file digests and the folder checked to hold exactly
 *    those files before the entry is committed (cache_commit). */
#include "agent/download.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "agent/cache_limits.h"
#include "agent/hasher.h"
#include "agent/signals.h"
#include "cache/dedup.h"
#include "common/fsutil.h"
#include "common/guid.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sums.h"
#include "common/timefmt.h"

/* A listing line is at most 64 hex + 2 + CAS_PATH_MAX + 1 bytes; 64 MiB allows ~16k maximal
 * lines or far more ordinary ones, and bounds what a hostile DP can make us hold in memory. */
#define DL_SUMS_MAX         ((size_t)64 * 1024 * 1024)
#define DL_TRIES_PER_LOC    3 /* transient failures of one file at one location */
#define DL_SOFT_LIMIT       3 /* soft errors before a location is dropped for the job */
#define DL_BACKOFF_BASE_MS  500.0
#define DL_BACKOFF_CAP_MS   30000.0
#define DL_RETRY_AFTER_MAX  300        /* seconds: a server cannot park us longer than this */
#define DL_SIDE_RECORD_AT   (1u << 20) /* files this big get a side record for resume */
#define DL_PROGRESS_EVERY_S 5.0
#define DL_WRITEBACK_EVERY  (8u << 20) /* start writing back every 8 MiB received */

static double dl_now(void)
{
    return cas_mono_now();
}

struct dl_location {
    const char *url;
    int dropped;
    int soft;
    uint64_t unverified; /* bytes from here in flight, or kept though they did not match */
};

enum dl_file_state { F_PENDING, F_ACTIVE, F_DONE, F_BAD };

struct dl_job;

struct dl_xfer {
    struct dl_job *j;
    struct dl_file *f;
    size_t loc;
    int fd;
    struct cas_hasher_stream *hs;
    uint64_t resume_from; /* bytes already in the part file when this transfer started */
    uint64_t got;         /* bytes received by this transfer */
    int side_written;
    char *url;
    char *validator; /* ETag or Last-Modified of the response, for If-Range next time */
    char *if_range;
    struct cas_transfer_request req;
};

struct dl_file {
    const struct cas_sums_entry *e;
    size_t index;
    enum dl_file_state state;
    size_t loc;        /* the location to try next */
    int tries;         /* transient failures at that location */
    double not_before; /* monotonic time before which it is not retried */
    size_t n404;
    int have_copy; /* a non-matching copy is in place */
    uint64_t copy_bytes;
    size_t copy_loc;                   /* the location that served it */
    cas_hr last;                       /* the last failure, for the job's error */
    char digest[CAS_HASH_MAX_HEX + 1]; /* of the copy in place */
    uint64_t size;
    struct dl_xfer *x;
};

struct dl_job {
    struct cas_agent *a;
    const struct cas_advert *ad;
    const char *context;
    char request[CAS_GUID_LEN + 1];
    struct dl_location *locs;
    size_t n_locs;
    struct cas_transfer *t;
    struct cas_hasher *hasher; /* hashes big files off this thread; NULL: all inline */
    char *staging;
    int content_fd, parts_fd;
    uint64_t live;     /* bytes on disk or in flight: verified, unverified, resumed */
    uint64_t verified; /* bytes of the files in place that match the listing */
    uint64_t fetched;  /* bytes received in this job */
    uint64_t resumed;  /* bytes reused from an earlier, interrupted job */
    uint64_t cap;      /* max_download_kbps in bytes per second; 0 unlimited */
    size_t n_files, files_done, active;
    double t0, deadline, next_progress;
    cas_hr fatal; /* set when the job must end at once */
    char fatal_detail[1024];
};

/* ---- small helpers ---- */

cas_hr cas_context_sid(const char *context, char *buf, size_t size)
{
    if (!strcmp(context, "System")) {
        snprintf(buf, size, "System");
        return CAS_OK;
    }
    if (!strncmp(context, "user:", 5)) {
        struct passwd *pw = getpwnam(context + 5);
        if (!pw)
            return cas_fail(CAS_E_NO_SUCH_USER, "context %s: no such user on this machine",
                            context);
        snprintf(buf, size, "S-1-22-1-%lu", (unsigned long)pw->pw_uid);
        return CAS_OK;
    }
    return cas_fail(CAS_E_INVALID_DATA, "unknown context '%s'", context);
}

static char *dl_url(const char *base, const char *content_id, const char *rel)
{
    char *url = NULL;
    if (!rel) {
        if (asprintf(&url, "%s/%s.sums", base, content_id) < 0)
            return NULL;
        return url;
    }
    char *enc = cas_path_url_encode(rel);
    if (!enc)
        return NULL;
    if (asprintf(&url, "%s/%s/%s", base, content_id, enc) < 0)
        url = NULL;
    free(enc);
    return url;
}

static void dl_set_fatal(struct dl_job *j, cas_hr hr, const char *detail)
{
    if (j->fatal != CAS_OK)
        return;
    j->fatal = hr;
    snprintf(j->fatal_detail, sizeof(j->fatal_detail), "%s", detail);
}

/* What to do after a failed attempt. */
enum dl_verdict {
    V_RETRY,  /* transient: again at the same location after a backoff */
    V_NEXT,   /* this location cannot serve this file: the next one */
    V_HARD,   /* this location is unusable for the job */
    V_END_JOB /* nothing can succeed: end the job with this error */
};

static enum dl_verdict dl_classify(cas_hr hr, const struct cas_transfer_result *res)
{
    if (hr == CAS_E_CANCELLED || hr == CAS_E_DISK_FULL || hr == CAS_E_OUTOFMEMORY ||
        hr == CAS_E_IO || hr == CAS_E_HTTP_BASE + 403 || hr == CAS_E_TRANSFER_PROCESS)
        return V_END_JOB;
    if (res->hard)
        return V_HARD;
    if (hr == CAS_E_TIMEOUT || hr == CAS_E_CONN_RESET || hr == CAS_E_HTTP_BASE + 408 ||
        hr == CAS_E_HTTP_BASE + 429 || hr == CAS_E_HTTP_BASE + 416 ||
        (hr >= CAS_E_HTTP_BASE + 500 && hr <= CAS_E_HTTP_BASE + 599))
        return V_RETRY;
    return V_NEXT;
}

static double dl_backoff(int tries, long retry_after)
{
    int shift = tries > 1 ? tries - 1 : 0;
    double ms = DL_BACKOFF_BASE_MS * (double)(1u << (shift > 10 ? 10 : shift));
    if (ms > DL_BACKOFF_CAP_MS)
        ms = DL_BACKOFF_CAP_MS;
    unsigned char r = 0;
    RAND_bytes(&r, 1);
    ms = ms / 2 + ms / 2 * (r / 255.0); /* jitter: a fleet must not retry in step */
    if (retry_after >= 0) {
        double ra = (double)(retry_after > DL_RETRY_AFTER_MAX ? DL_RETRY_AFTER_MAX : retry_after);
        if (ra * 1000.0 > ms)
            ms = ra * 1000.0;
    }
    return ms / 1000.0;
}

static void dl_soft_error(struct dl_job *j, struct dl_location *loc)
{
    if (loc->dropped)
        return;
    if (++loc->soft >= DL_SOFT_LIMIT) {
        loc->dropped = 1;
        cas_log_warn(CAS_LOG_CTM, "Location %s is not used again in this job: %d soft errors",
                     loc->url, loc->soft);
    }
    (void)j;
}

static void dl_note_failure(struct dl_job *j, struct dl_location *loc, cas_hr hr, int hard,
                            const char *what, const char *detail)
{
    cas_log_warn(CAS_LOG_CTM, "Location %s failed for %s of content %s: error 0x%08X (%s)",
                 loc->url, what, j->ad->content_id, hr, detail);
    if (hard && !loc->dropped) {
        loc->dropped = 1;
        cas_log_warn(CAS_LOG_CTM, "Location %s is not used again in this job", loc->url);
    }
}

/* ---- step 1: the listing ---- */

/* Combine what went wrong at every location into the job's error: a 404 everywhere is "not on
 * the server"; nothing reachable is "no location could be reached". */
struct dl_outcome {
    cas_hr last;
    int all_404;
    int any_response;
    char detail[1024];
};

static void dl_outcome_add(struct dl_outcome *o, cas_hr hr, const char *detail)
{
    if (o->last == CAS_OK)
        o->all_404 = 1;
    if (hr != CAS_E_HTTP_404)
        o->all_404 = 0;
    if ((hr & 0xFFFF0000u) == CAS_E_HTTP_BASE)
        o->any_response = 1;
    o->last = hr;
    snprintf(o->detail, sizeof(o->detail), "%s", detail);
}

static cas_hr dl_outcome_result(const struct dl_outcome *o, const char *what)
{
    if (o->last == CAS_OK)
        return cas_fail(CAS_E_NO_LOCATION, "no usable location for %s", what);
    if (o->all_404)
        return cas_fail(CAS_E_HTTP_404, "%s: not found (HTTP 404) at every location", what);
    /* What the server did is said precisely, as for the files (dl_file_exhausted). */
    if (o->last == CAS_E_TOO_LARGE || o->last == CAS_E_DISK_FULL || o->any_response ||
        o->last == CAS_E_CANCELLED || o->last == CAS_E_TIMEOUT || o->last == CAS_E_REDIRECT ||
        o->last == CAS_E_CONN_RESET || o->last == CAS_E_TRANSFER_PROCESS)
        return cas_fail(o->last, "%s", o->detail);
    return cas_fail(CAS_E_NO_LOCATION, "%s: no location could be reached (last error 0x%08X: %s)",
                    what, o->last, o->detail);
}

static cas_hr dl_fetch_listing(struct dl_job *j, struct cas_sums *sums, char *actual_hex)
{
    const struct cas_advert *ad = j->ad;
    struct dl_outcome out = {0};
    char exp_up[CAS_HASH_MAX_HEX + 1];
    int have_actual = 0;

    cas_hex_upper(ad->hash, exp_up);
    cas_log_info(CAS_LOG_DTS, "DTS job %s state DownloadingManifest for content %s", j->request,
                 ad->content_id);
    for (size_t i = 0; i < j->n_locs; i++) {
        struct dl_location *loc = &j->locs[i];
        char hex[CAS_HASH_MAX_HEX + 1], up[CAS_HASH_MAX_HEX + 1];
        if (loc->dropped)
            continue;
        char *url = dl_url(loc->url, ad->content_id, NULL);
        if (!url)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        for (int tries = 1;; tries++) {
            struct cas_transfer_buf mem = {0};
            struct cas_transfer_result res = {0};
            struct cas_transfer_request req = {.url = url,
                                               .max_bytes = DL_SUMS_MAX,
                                               .on_data = cas_transfer_buf_on_data,
                                               .ud = &mem};
            cas_hr hr = cas_transfer_get(j->t, &req, &res);
            j->fetched += res.bytes;
            if (cas_stop_requested())
                hr = cas_fail(CAS_E_CANCELLED, "interrupted");
            if (hr != CAS_OK) {
                enum dl_verdict v = dl_classify(hr, &res);
                dl_note_failure(j, loc, hr, v == V_HARD, "the sums listing", res.detail);
                dl_outcome_add(&out, hr, res.detail);
                free(mem.data);
                if (hr == CAS_E_CANCELLED || v == V_END_JOB) {
                    free(url);
                    return cas_fail(hr, "%s", res.detail[0] ? res.detail : "interrupted");
                }
                if (v == V_RETRY && tries < DL_TRIES_PER_LOC && dl_now() < j->deadline) {
                    dl_soft_error(j, loc);
                    if (!loc->dropped) {
                        double wait = dl_backoff(tries, res.retry_after);
                        cas_log_info(CAS_LOG_DTS, "Retrying %s in %.1f s (attempt %d)", url, wait,
                                     tries + 1);
                        nanosleep(
                            &(struct timespec){(time_t)wait, (long)((wait - (time_t)wait) * 1e9)},
                            NULL);
                        continue;
                    }
                }
                break;
            }
            cas_hash_buf_hex(ad->alg, mem.data ? mem.data : "", mem.len, hex);
            cas_hex_upper(hex, up);
            if (!cas_hex_equal(hex, ad->hash)) {
                cas_log_warn(CAS_LOG_CAS,
                             "Hash does not match for the sums listing of content %s served by "
                             "%s: expected %s, actual %s",
                             ad->content_id, loc->url, exp_up, up);
                if (!have_actual) {
                    memcpy(actual_hex, hex, sizeof(hex));
                    have_actual = 1;
                }
                /* A DP with a different listing holds other content: no file is asked of it. */
                loc->dropped = 1;
                cas_log_warn(CAS_LOG_CTM,
                             "Location %s is not used again in this job: its sums listing of "
                             "content %s does not match the signed hash",
                             loc->url, ad->content_id);
                dl_outcome_add(&out, CAS_E_HASH_MISMATCH, "the sums listing does not match");
                free(mem.data);
                break;
            }
            cas_log_verbose(CAS_LOG_CAS,
                            "Hash matches for the sums listing of content %s (%zu bytes) served "
                            "by %s",
                            ad->content_id, mem.len, loc->url);
            cas_log_info(CAS_LOG_CTM, "Location %s chosen for the sums listing of content %s",
                         loc->url, ad->content_id);
            hr = cas_sums_parse(mem.data ? mem.data : "", mem.len, ad->alg, sums);
            if (hr != CAS_OK)
                hr = cas_fail(hr, "the signed sums listing of content %s is not acceptable: %s",
                              ad->content_id, cas_err_detail());
            free(url);
            free(mem.data);
            if (hr == CAS_OK)
                cas_log_info(CAS_LOG_DTS, "DTS job %s state RetrievedManifest: %zu file(s)",
                             j->request, sums->count);
            return hr;
        }
        free(url);
    }
    if (have_actual)
        return cas_fail(CAS_E_HASH_MISMATCH,
                        "no location served a sums listing of content %s matching the signed hash",
                        ad->content_id);
    return dl_outcome_result(&out, "the sums listing");
}

/* ---- files on disk ---- */

static void dl_part_names(const struct dl_file *f, char *part, char *side, size_t size)
{
    snprintf(part, size, "%06zu.part", f->index);
    snprintf(side, size, "%06zu.json", f->index);
}

/* Write the side record that lets the next job resume this part file. Not synced: losing it
 * only means starting the file again. */
static void dl_write_side(struct dl_xfer *x)
{
    char part[32], side[32];
    cJSON *o = cJSON_CreateObject();
    dl_part_names(x->f, part, side, sizeof(part));
    cJSON_AddStringToObject(o, "url", x->url);
    cJSON_AddStringToObject(o, "hash", x->f->e->hex);
    cJSON_AddNumberToObject(o, "bytes", (double)(x->resume_from + x->got));
    if (x->validator)
        cJSON_AddStringToObject(o, "validator", x->validator);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return;
    int fd =
        openat(x->j->parts_fd, side, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        cas_fs_write_all(fd, text, strlen(text), side);
        close(fd);
    }
    free(text);
    x->side_written = 1;
}

/* A part file that an earlier job left for this file at this URL: its size, and the validator
 * to send with If-Range. 0 if there is nothing usable. */
static uint64_t dl_resumable(struct dl_job *j, struct dl_file *f, const char *url, char **validator)
{
    char part[32], side[32], *buf = NULL;
    size_t len = 0;
    uint64_t size = 0;
    struct stat st;
    cJSON *o = NULL;

    *validator = NULL;
    dl_part_names(f, part, side, sizeof(part));
    int fd = openat(j->parts_fd, side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    buf = calloc(1, 8193);
    ssize_t n = buf ? read(fd, buf, 8192) : -1;
    close(fd);
    if (n > 0)
        len = (size_t)n;
    if (len == 0 || cas_json_parse(buf, len, 4, side, &o) != CAS_OK)
        goto done;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "url");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hash");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "validator");
    if (!cJSON_IsString(u) || strcmp(u->valuestring, url) != 0 || !cJSON_IsString(h) ||
        strcmp(h->valuestring, f->e->hex) != 0 || !cJSON_IsString(v))
        goto done;
    if (fstatat(j->parts_fd, part, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        goto done;
    size = (uint64_t)st.st_size;
    *validator = strdup(v->valuestring);
    if (!*validator)
        size = 0;
done:
    cJSON_Delete(o);
    free(buf);
    return size;
}

/* ---- step 2: the files ---- */

static void dl_progress(struct dl_job *j, size_t total, int final)
{
    double el = dl_now() - j->t0;
    double rate = el > 0 ? (double)j->fetched / el : 0;
    cas_log_info(CAS_LOG_DTS,
                 "DTS job %s %s. Total Files: %zu, Transferred Files: %zu, Total Bytes: %llu, "
                 "Transferred Bytes: %llu, elapsed %.3f s, %.1f KiB/s%s",
                 j->request, final ? "state RetrievedData" : "progress", total, j->files_done,
                 (unsigned long long)j->ad->size, (unsigned long long)j->live, el, rate / 1024,
                 j->resumed ? ", resumed from an earlier job" : "");
    if (isatty(STDERR_FILENO)) {
        double pct = j->ad->size ? 100.0 * (double)j->live / (double)j->ad->size : 100.0;
        double left = j->live < j->ad->size ? (double)(j->ad->size - j->live) : 0;
        double eta = rate > 0 ? left / rate : 0;
        fprintf(stderr, "\r%s %5.1f%%  %llu/%llu bytes  %.1f MiB/s  ETA %.0f s  files %zu/%zu%s",
                j->ad->content_id, pct, (unsigned long long)j->live,
                (unsigned long long)j->ad->size, rate / 1048576.0, eta, j->files_done, total,
                final ? "\n" : "  ");
        fflush(stderr);
    }
}

/* The bytes held to the policy's size for a transfer from location li: the verified files plus
 * what that location has in flight or left unverified. Per location, so that a bad mirror's
 * bytes never count against a good one (whether the good mirror's files fit must not depend on
 * which transfers happen to be in flight), while the staging folder still holds at most the
 * size once per location. */
static uint64_t dl_counted(const struct dl_job *j, size_t li)
{
    return j->verified + j->locs[li].unverified;
}

/* n bytes from location li arrive on disk (n > 0) or leave it (dl_drop). */
static void dl_add(struct dl_job *j, size_t li, uint64_t n)
{
    j->live += n;
    j->locs[li].unverified += n;
}

static void dl_drop(struct dl_job *j, size_t li, uint64_t n)
{
    j->live -= n;
    j->locs[li].unverified -= n;
}

static cas_hr dl_on_response(void *ud, const struct cas_transfer_response *resp)
{
    struct dl_xfer *x = ud;
    free(x->validator);
    x->validator = NULL;
    if (resp->etag)
        x->validator = strdup(resp->etag);
    else if (resp->last_modified)
        x->validator = strdup(resp->last_modified);
    if (x->resume_from > 0 && !(resp->status == 206 && resp->range_start == x->resume_from)) {
        /* The server sends the whole file (it ignores Range, or the file changed): start over. */
        cas_log_info(CAS_LOG_DTS,
                     "Resuming %s at byte %llu was refused (HTTP %ld); starting it "
                     "again",
                     x->url, (unsigned long long)x->resume_from, resp->status);
        cas_hr hr = cas_hasher_stream_reset(x->hs); /* before the worker could read a hole */
        if (hr != CAS_OK)
            return hr;
        if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0)
            return cas_fail(cas_err_from_errno(errno), "restarting %s: %s", x->f->e->path,
                            strerror(errno));
        dl_drop(x->j, x->loc, x->resume_from);
        x->j->resumed -= x->resume_from;
        x->resume_from = 0;
    } else if (x->resume_from > 0) {
        cas_log_info(CAS_LOG_DTS, "Resuming %s at byte %llu", x->url,
                     (unsigned long long)x->resume_from);
    }
    return CAS_OK;
}

static cas_hr dl_on_data(void *ud, const void *data, size_t len)
{
    struct dl_xfer *x = ud;
    struct dl_job *j = x->j;
    if (cas_stop_requested())
        return cas_fail(CAS_E_CANCELLED, "interrupted");
    if (dl_counted(j, x->loc) + len > j->ad->size)
        return cas_fail(CAS_E_TOO_LARGE,
                        "%s: the content would exceed the %llu bytes the policy allows", x->url,
                        (unsigned long long)j->ad->size);
    cas_hr hr = cas_fs_write_all(x->fd, data, len, x->f->e->path);
    if (hr != CAS_OK)
        return hr;
    cas_hasher_stream_wrote(x->hs, data, len);
    uint64_t before = x->resume_from + x->got;
    x->got += len;
    if ((before + len) / DL_WRITEBACK_EVERY != before / DL_WRITEBACK_EVERY) {
        /* Start writeback now (it does not wait), so the sync before the commit finds little
         * left to write: durability costs overlap the transfer instead of following it. */
        uint64_t end = (before + len) / DL_WRITEBACK_EVERY * DL_WRITEBACK_EVERY;
        sync_file_range(x->fd, (off_t)(end - DL_WRITEBACK_EVERY), DL_WRITEBACK_EVERY,
                        SYNC_FILE_RANGE_WRITE);
    }
    dl_add(j, x->loc, len);
    j->fetched += len;
    if (j->cap) {
        /* The cap is for the whole job, like BITS throttling: when the job is ahead of it, wait
         * here, which holds every transfer of the job on this thread at once. */
        double ahead = (double)j->fetched / (double)j->cap - (dl_now() - j->t0);
        if (ahead > 0.001)
            nanosleep(&(struct timespec){(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)},
                      NULL);
        /* curl keeps calling back while the socket has data, so a throttled job can stay in
         * here for seconds: the periodic duties of the job loop are done here as well. */
        if (dl_now() >= j->next_progress) {
            dl_progress(j, j->n_files, 0);
            j->next_progress = dl_now() + DL_PROGRESS_EVERY_S;
        }
        if (dl_now() > j->deadline) {
            dl_set_fatal(j, CAS_E_TIMEOUT, "the job took longer than transfer_deadline_minutes");
            return cas_fail(CAS_E_CANCELLED, "the job's deadline passed");
        }
    }
    if (!x->side_written && x->resume_from + x->got >= DL_SIDE_RECORD_AT && x->validator)
        dl_write_side(x);
    return CAS_OK;
}

static void dl_xfer_free(struct dl_xfer *x)
{
    if (!x)
        return;
    cas_hasher_stream_free(x->hs); /* first: the worker may still read the file */
    if (x->fd >= 0)
        close(x->fd);
    free(x->url);
    free(x->validator);
    free(x->if_range);
    free(x);
}

/* The file has no location left: decide what it means for the job. */
static void dl_file_exhausted(struct dl_job *j, struct dl_file *f)
{
    if (f->have_copy) {
        f->state = F_BAD;
        cas_log_warn(CAS_LOG_CAS, "File %s of content %s did not match at any location", f->e->path,
                     j->ad->content_id);
        return;
    }
    f->state = F_BAD;
    if (f->n404 > 0 && f->n404 >= j->n_locs)
        dl_set_fatal(j, CAS_E_HTTP_404, "file not found (HTTP 404) at every location");
    else if (f->last == CAS_E_TOO_LARGE)
        dl_set_fatal(j, CAS_E_TOO_LARGE, cas_err_detail());
    else if ((f->last & 0xFFFF0000u) == CAS_E_HTTP_BASE || f->last == CAS_E_TIMEOUT ||
             f->last == CAS_E_CONN_RESET || f->last == CAS_E_REDIRECT)
        dl_set_fatal(j, f->last, cas_err_detail()); /* what the server did, said precisely */
    else
        dl_set_fatal(j, CAS_E_NO_LOCATION, "no location could serve the file");
    char detail[sizeof(j->fatal_detail) + CAS_PATH_MAX + 4];
    snprintf(detail, sizeof(detail), "%s: %s", f->e->path, j->fatal_detail);
    snprintf(j->fatal_detail, sizeof(j->fatal_detail), "%.1000s", detail);
}

/* The next usable location for f at or after f->loc; n_locs if none. */
static size_t dl_next_location(struct dl_job *j, struct dl_file *f)
{
    while (f->loc < j->n_locs && j->locs[f->loc].dropped)
        f->loc++;
    return f->loc;
}

static void dl_move_on(struct dl_job *j, struct dl_file *f)
{
    f->loc++;
    f->tries = 0;
    f->not_before = 0;
    if (dl_next_location(j, f) >= j->n_locs)
        dl_file_exhausted(j, f);
    else
        f->state = F_PENDING;
}

static cas_hr dl_start(struct dl_job *j, struct dl_file *f)
{
    size_t li = dl_next_location(j, f);
    if (li >= j->n_locs) {
        dl_file_exhausted(j, f);
        return CAS_OK;
    }
    char part[32], side[32];
    dl_part_names(f, part, side, sizeof(part));
    struct dl_xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    x->j = j;
    x->f = f;
    x->loc = li;
    x->fd = -1;
    x->url = dl_url(j->locs[li].url, j->ad->content_id, f->e->path);
    if (!x->url) {
        dl_xfer_free(x);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    uint64_t have = dl_resumable(j, f, x->url, &x->if_range);
    uint64_t counted = dl_counted(j, li);
    /* Opened without O_TRUNC and checked first: a second name for the part file (a planted hard
     * link) would let the download truncate or write a file outside the cache. Such a name is
     * dropped and a new file made. */
    x->fd = openat(j->parts_fd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat pst;
    if (x->fd >= 0 && (fstat(x->fd, &pst) != 0 || !S_ISREG(pst.st_mode) || pst.st_nlink != 1)) {
        close(x->fd);
        have = 0;
        unlinkat(j->parts_fd, part, 0);
        x->fd = openat(j->parts_fd, part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (x->fd >= 0 && (have ? fcntl(x->fd, F_SETFL, O_APPEND) : ftruncate(x->fd, 0)) != 0) {
        close(x->fd);
        x->fd = -1;
    }
    if (x->fd < 0) {
        cas_hr hr = cas_fail(cas_err_from_errno(errno), "creating a partial file for %s: %s",
                             f->e->path, strerror(errno));
        dl_xfer_free(x);
        return hr;
    }
    if (have && have > j->ad->size - (counted < j->ad->size ? counted : j->ad->size)) {
        have = 0; /* unusable: start the file again */
        if (ftruncate(x->fd, 0) != 0) {
            dl_xfer_free(x);
            return cas_fail(CAS_E_IO, "truncating a partial file: %s", strerror(errno));
        }
    }
    /* What an earlier job kept is hashed in full along with the rest. */
    x->hs = cas_hasher_stream_new(j->hasher, x->fd, j->ad->alg, have);
    if (!x->hs) {
        dl_xfer_free(x);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    x->resume_from = have;
    dl_add(j, li, have);
    j->resumed += have;
    x->req = (struct cas_transfer_request){
        .url = x->url,
        .max_bytes = j->ad->size,
        .resume_from = have,
        .if_range = have ? x->if_range : NULL,
        .on_response = dl_on_response,
        .on_data = dl_on_data,
        .ud = x,
    };
    cas_hr hr = j->t->submit(j->t, &x->req, x);
    if (hr != CAS_OK) {
        dl_drop(j, li, have);
        dl_xfer_free(x);
        return hr;
    }
    f->x = x;
    f->state = F_ACTIVE;
    j->active++;
    return CAS_OK;
}

/* Drop what a failed or refused attempt left, unless it is worth resuming. */
static void dl_discard_part(struct dl_job *j, struct dl_xfer *x)
{
    char part[32], side[32];
    dl_part_names(x->f, part, side, sizeof(part));
    unlinkat(j->parts_fd, part, 0);
    unlinkat(j->parts_fd, side, 0);
    dl_drop(j, x->loc, x->resume_from + x->got);
    j->resumed -= x->resume_from;
}

/* Move a finished file from the parts folder to its place in the content folder; 0 (the job's
 * fatal error set) if it cannot be. */
static int dl_place_part(struct dl_job *j, struct dl_file *f, const char *part)
{
    const char *leaf = NULL;
    int parent = cas_fs_open_parent_at(j->content_fd, f->e->path, 1, &leaf);
    if (parent < 0) {
        dl_set_fatal(j, cas_err_from_errno(errno), "creating the folder of a file");
        return 0;
    }
    if (renameat(j->parts_fd, part, parent, leaf) != 0) {
        dl_set_fatal(j, cas_err_from_errno(errno), "placing a file in the staging folder");
        close(parent);
        return 0;
    }
    close(parent);
    return 1;
}

static void dl_finished(struct dl_job *j, struct dl_xfer *x, cas_hr hr,
                        const struct cas_transfer_result *res)
{
    struct dl_file *f = x->f;
    struct dl_location *loc = &j->locs[x->loc];
    const struct cas_advert *ad = j->ad;
    char part[32], side[32], hex[CAS_HASH_MAX_HEX + 1];

    j->active--;
    f->x = NULL;
    dl_part_names(f, part, side, sizeof(part));
    if (hr == CAS_OK && cas_hasher_stream_final(x->hs, hex) != CAS_OK) {
        dl_set_fatal(j, CAS_E_IO, cas_err_detail());
        dl_xfer_free(x);
        return;
    }
    /* No fsync per file: the commit syncs the filesystem once before anything is renamed. */
    if (close(x->fd) != 0 && hr == CAS_OK)
        hr = cas_fail(cas_err_from_errno(errno), "writing %s: %s", f->e->path, strerror(errno));
    x->fd = -1;

    if (hr != CAS_OK) {
        enum dl_verdict v = dl_classify(hr, res);
        f->last = hr;
        dl_note_failure(j, loc, hr, v == V_HARD, f->e->path, res->detail);
        if (v == V_END_JOB) {
            if (x->validator)
                dl_write_side(x); /* what arrived is kept for the next job */
            dl_set_fatal(j, hr, res->detail);
            f->state = F_PENDING;
        } else if (v == V_RETRY) {
            if (hr == CAS_E_HTTP_BASE + 416 || !x->validator) {
                dl_discard_part(j, x); /* our range is wrong, or nothing to guard a resume */
            } else {
                dl_write_side(x); /* keep what arrived: the retry resumes it and counts it */
                dl_drop(j, x->loc, x->resume_from + x->got);
                j->resumed -= x->resume_from;
            }
            dl_soft_error(j, loc);
            if (++f->tries >= DL_TRIES_PER_LOC || loc->dropped) {
                dl_move_on(j, f); /* the part stays: another location may resume it */
            } else {
                f->not_before = dl_now() + dl_backoff(f->tries, res->retry_after);
                f->state = F_PENDING;
                cas_log_info(CAS_LOG_DTS, "Retrying %s in %.1f s (attempt %d)", x->url,
                             f->not_before - dl_now(), f->tries + 1);
            }
        } else {
            dl_discard_part(j, x);
            if (hr == CAS_E_HTTP_404)
                f->n404++;
            else if (v == V_NEXT)
                dl_soft_error(j, loc);
            cas_fail(hr, "%s", res->detail);
            dl_move_on(j, f);
        }
        dl_xfer_free(x);
        return;
    }

    uint64_t size = x->resume_from + x->got;
    unlinkat(j->parts_fd, side, 0);
    int matches = !strcmp(hex, f->e->hex);
    /* A matching copy replaces whatever is in place; the first non-matching one is kept (it
     * stays in its location's count) so the package hash of the content as received can be
     * reported. */
    int keep = matches || !f->have_copy;
    if (keep) {
        if (!dl_place_part(j, f, part)) {
            dl_xfer_free(x);
            return;
        }
        if (f->have_copy) {
            dl_drop(j, f->copy_loc, f->copy_bytes);
            f->have_copy = 0;
        }
        memcpy(f->digest, hex, sizeof(hex));
        f->size = size;
    } else {
        unlinkat(j->parts_fd, part, 0);
        dl_drop(j, x->loc, size);
    }
    if (matches) {
        j->locs[x->loc].unverified -= size;
        j->verified += size;
    }
    if (matches) {
        cas_log_verbose(CAS_LOG_CAS,
                        "Hash matches for file %s of content %s (%llu bytes) served "
                        "by %s",
                        f->e->path, ad->content_id, (unsigned long long)size, loc->url);
        cas_log_info(CAS_LOG_CTM, "Location %s chosen for file %s of content %s", loc->url,
                     f->e->path, ad->content_id);
        f->state = F_DONE;
        j->files_done++;
    } else {
        char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
        cas_hex_upper(f->e->hex, exp_up);
        cas_hex_upper(hex, act_up);
        cas_log_warn(CAS_LOG_CAS,
                     "Hash does not match for file %s of content %s served by %s: expected %s, "
                     "actual %s",
                     f->e->path, ad->content_id, loc->url, exp_up, act_up);
        if (keep) {
            f->have_copy = 1;
            f->copy_bytes = size;
            f->copy_loc = x->loc;
        }
        f->last = CAS_E_HASH_MISMATCH;
        dl_soft_error(j, loc);
        dl_move_on(j, f);
        if (f->state == F_BAD)
            j->files_done++;
    }
    dl_xfer_free(x);
}

/* Files that other entries of the cache hold (the same hash in their listings) are copied from
 * there instead of downloaded: into NNNNNN.copy beside the part files (so a part an interrupted
 * job left stays resumable if the copy fails), hashed from the copy, then placed like a verified
 * download. The network is not asked for them, and they count as transferred files but not as
 * fetched bytes. Whatever fails leaves the file to be downloaded, except a full disk, which ends
 * the job as a failed write does. */
static void dl_copy_cached(struct dl_job *j, struct dl_file *files, size_t n)
{
    const struct cas_advert *ad = j->ad;
    struct cache *cache = NULL;
    size_t pending = 0, copied = 0;
    uint64_t bytes = 0;

    if (!j->a->cfg.cache_dedup)
        return;
    for (size_t i = 0; i < n; i++)
        pending += files[i].state == F_PENDING;
    if (pending == 0 || cas_agent_cache(j->a, &cache) != CAS_OK)
        return;
    struct cache_files *t = cache_files_load(cache, ad->alg, ad->content_id);
    if (!t) {
        cas_log_warn(CAS_LOG_CAS, "Cannot look for files of content %s in the cache: %s",
                     ad->content_id, cas_err_detail());
        return;
    }
    for (size_t i = 0; i < n && j->fatal == CAS_OK && !cas_stop_requested(); i++) {
        struct dl_file *f = &files[i];
        char part[32], side[32], copy[32];
        const char *from = NULL;
        uint64_t size = 0;
        /* Most files of new content are nowhere in the cache: ask before creating anything. */
        if (f->state != F_PENDING || !cache_files_has(t, f->e->hex))
            continue;
        dl_part_names(f, part, side, sizeof(part));
        snprintf(copy, sizeof(copy), "%06zu.copy", f->index);
        int fd =
            openat(j->parts_fd, copy, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        cas_hr hr = fd >= 0 ? cache_files_copy(t, f->e->hex, fd, &size, &from)
                            : cas_fail(cas_err_from_errno(errno), "creating a copy of %s: %s",
                                       f->e->path, strerror(errno));
        if (hr == CAS_OK && size > ad->size - j->verified)
            hr = CAS_E_TOO_LARGE; /* downloaded, it meets the same limit and says so */
        if (fd >= 0 && close(fd) != 0 && hr == CAS_OK)
            hr = cas_fail(cas_err_from_errno(errno), "copying %s: %s", f->e->path, strerror(errno));
        if (hr != CAS_OK) {
            if (fd >= 0)
                unlinkat(j->parts_fd, copy, 0);
            if (hr == CAS_E_DISK_FULL)
                dl_set_fatal(j, hr, cas_err_detail());
            continue;
        }
        if (!dl_place_part(j, f, copy))
            break;
        unlinkat(j->parts_fd, part, 0); /* a partial download of it is not needed any more */
        unlinkat(j->parts_fd, side, 0);
        memcpy(f->digest, f->e->hex, sizeof(f->digest));
        f->size = size;
        f->state = F_DONE;
        j->files_done++;
        j->live += size;
        j->verified += size;
        copied++;
        bytes += size;
        cas_log_verbose(CAS_LOG_CAS,
                        "Copied file %s of content %s from cached content %s (%llu bytes) "
                        "instead of downloading it",
                        f->e->path, ad->content_id, from, (unsigned long long)size);
    }
    cache_files_free(t);
    if (copied)
        cas_log_info(CAS_LOG_CAS,
                     "Content %s: %zu of %zu file(s), %llu bytes, copied from other content in "
                     "the cache instead of downloaded",
                     ad->content_id, copied, n, (unsigned long long)bytes);
}

/* A file an earlier, interrupted job already placed: reuse it if it still hashes right. */
static int dl_already_placed(struct dl_job *j, struct dl_file *f)
{
    const char *leaf = NULL;
    char hex[CAS_HASH_MAX_HEX + 1];
    int parent = cas_fs_open_parent_at(j->content_fd, f->e->path, 1, &leaf);
    int ok = 0;
    if (parent < 0)
        return 0;
    uint64_t size = 0;
    struct stat st;
    /* A file with a second name (a planted hard link) is not the download's own. */
    if (fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (!S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        unlinkat(parent, leaf, 0);
    } else if (cas_hash_file_at(parent, leaf, j->ad->alg, hex, &size) == CAS_OK) {
        if (!strcmp(hex, f->e->hex) && j->verified + size <= j->ad->size) {
            ok = 1;
            memcpy(f->digest, hex, sizeof(hex));
            f->size = size;
            j->live += size;
            j->verified += size;
            j->resumed += size;
        } else {
            unlinkat(parent, leaf, 0);
        }
    }
    close(parent);
    return ok;
}

static cas_hr dl_fetch_files(struct dl_job *j, const struct cas_sums *sums, struct dl_file *files)
{
    size_t n = sums->count, done = 0;
    j->n_files = n;
    long maxp = j->a->cfg.max_parallel_transfers > 0 ? j->a->cfg.max_parallel_transfers : 1;

    cas_log_info(CAS_LOG_DTS, "DTS job %s state DownloadingData: %zu file(s), at most %llu bytes",
                 j->request, n, (unsigned long long)j->ad->size);
    for (size_t i = 0; i < n; i++) {
        files[i].e = &sums->entries[i];
        files[i].index = i;
        if (dl_already_placed(j, &files[i])) {
            files[i].state = F_DONE;
            j->files_done++;
        }
    }
    dl_copy_cached(j, files, n);
    j->next_progress = dl_now() + DL_PROGRESS_EVERY_S;
    /* Without a worker every file is hashed inline: slower for big files, never wrong. */
    j->hasher = cas_hasher_new();
    for (;;) {
        done = 0;
        for (size_t i = 0; i < n; i++)
            done += files[i].state == F_DONE || files[i].state == F_BAD;
        if (cas_stop_requested() && j->fatal == CAS_OK)
            dl_set_fatal(j, CAS_E_CANCELLED,
                         "interrupted by a signal; partial files are kept "
                         "for the next download to resume");
        if (dl_now() > j->deadline && j->fatal == CAS_OK)
            dl_set_fatal(j, CAS_E_TIMEOUT, "the job took longer than transfer_deadline_minutes");
        if (j->fatal != CAS_OK || done == n)
            break;
        /* Start what may start: largest budget use first is unknowable (the listing has no
         * sizes), so files go in listing order. */
        double now = dl_now(), next_wake = now + 1.0;
        for (size_t i = 0; i < n && j->active < (size_t)maxp && j->fatal == CAS_OK; i++) {
            struct dl_file *f = &files[i];
            if (f->state != F_PENDING)
                continue;
            if (f->not_before > now) {
                if (f->not_before < next_wake)
                    next_wake = f->not_before;
                continue;
            }
            cas_hr hr = dl_start(j, f);
            if (hr != CAS_OK)
                dl_set_fatal(j, hr, cas_err_detail());
        }
        if (j->fatal != CAS_OK)
            break;
        if (j->active == 0) {
            double sleep_s = next_wake - dl_now();
            if (sleep_s > 0.2)
                sleep_s = 0.2;
            if (sleep_s > 0)
                nanosleep(&(struct timespec){0, (long)(sleep_s * 1e9)}, NULL);
            continue;
        }
        void *tag = NULL;
        cas_hr hr = CAS_OK;
        struct cas_transfer_result res;
        if (j->t->wait(j->t, 200, &tag, &hr, &res))
            dl_finished(j, (struct dl_xfer *)tag, hr, &res);
        if (dl_now() >= j->next_progress) {
            dl_progress(j, n, 0);
            j->next_progress = dl_now() + DL_PROGRESS_EVERY_S;
        }
    }
    if (j->fatal != CAS_OK) {
        /* Stop what is running; keep partial files (with side records) for resume. */
        j->t->cancel_all(j->t);
        for (size_t i = 0; i < n; i++) {
            struct dl_xfer *x = files[i].x;
            if (!x)
                continue;
            if (x->validator)
                dl_write_side(x);
            files[i].x = NULL;
            dl_xfer_free(x);
        }
        j->active = 0;
        cas_hasher_free(j->hasher);
        j->hasher = NULL;
        return cas_fail(j->fatal, "%s", j->fatal_detail);
    }
    cas_hasher_free(j->hasher);
    j->hasher = NULL;
    dl_progress(j, n, 1);
    return CAS_OK;
}

/* ---- the job ---- */

static void dl_log_failed(struct dl_job *j, cas_hr hr)
{
    cas_log_error(CAS_LOG_CAS, "Download failed for content %s under context %s, error 0x%08X",
                  j->ad->content_id, j->context, hr);
    cas_log_error(CAS_LOG_CAS, "Download failed for download request %s", j->request);
}

static cas_hr dl_check_space(struct dl_job *j)
{
    struct statvfs vfs;
    if (statvfs(j->staging, &vfs) != 0)
        return CAS_OK; /* cannot tell: the writes will say */
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (free_bytes < j->ad->size)
        return cas_fail(
            CAS_E_DISK_FULL, "content %s needs %llu bytes, the cache's filesystem has %llu free",
            j->ad->content_id, (unsigned long long)j->ad->size, (unsigned long long)free_bytes);
    return CAS_OK;
}

static cas_hr dl_run(struct dl_job *j, struct cache *cache, int *keep_staging)
{
    const struct cas_advert *ad = j->ad;
    struct cas_sums sums = {0}, digests = {0};
    struct dl_file *files = NULL;
    char actual[CAS_HASH_MAX_HEX + 1] = "";
    char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
    size_t bad_files = 0;
    cas_hr hr;

    *keep_staging = 0;
    cas_hex_upper(ad->hash, exp_up);
    hr = cache_stage_begin(cache, ad->content_id, &j->staging);
    if (hr == CAS_OK && cache_has(cache, ad->content_id)) {
        /* Another process downloaded it while we waited for the staging lock. */
        char *changed = NULL;
        hr = cache_verify(cache, ad->content_id, ad->alg, ad->hash, actual, &changed);
        free(changed);
        if (hr == CAS_OK) {
            cas_log_info(CAS_LOG_CAS, "Content %s was downloaded by another request meanwhile",
                         ad->content_id);
            cache_stage_keep(cache, j->staging);
            free(j->staging);
            j->staging = NULL;
            return CAS_OK;
        }
        hr = CAS_OK;
    }
    if (hr == CAS_OK) {
        char *content = cas_path_join(j->staging, ad->content_id);
        char *parts = cas_path_join(j->staging, "parts");
        if (parts && mkdir(parts, 0700) != 0 && errno != EEXIST)
            hr = cas_fail(cas_err_from_errno(errno), "creating %s: %s", parts, strerror(errno));
        j->content_fd =
            content ? open(content, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        j->parts_fd = parts ? open(parts, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (hr == CAS_OK && (j->content_fd < 0 || j->parts_fd < 0))
            hr = cas_fail(CAS_E_IO, "opening staging folder: %s", strerror(errno));
        free(content);
        free(parts);
    }
    if (hr == CAS_OK)
        hr = dl_check_space(j);
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_CAS, "Cannot prepare the cache for content %s: %s", ad->content_id,
                      cas_err_detail());
        *keep_staging = 1;
        goto failed;
    }
    hr = cas_agent_transfer(j->a, &j->t);
    if (hr != CAS_OK)
        goto failed;

    hr = dl_fetch_listing(j, &sums, actual);
    if (hr == CAS_E_HASH_MISMATCH) {
        /* The same completion-and-verdict lines as a mismatch of the files, so administrators and
         * their tools read one pattern for 0x80091007. */
        cas_log_info(CAS_LOG_CAS, "Download completed for content %s under context %s",
                     ad->content_id, j->context);
        cas_hex_upper(actual, act_up);
        cas_log_error(CAS_LOG_CAS, "Hash does not match expected %s, actual %s", exp_up, act_up);
        cas_fail(hr, "content %s: the sums listing hashes to %s, the policy expects %s",
                 ad->content_id, act_up, exp_up);
        goto failed;
    }
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_CAS, "Cannot get the sums listing of content %s: %s", ad->content_id,
                      cas_err_detail());
        *keep_staging = hr == CAS_E_CANCELLED;
        goto failed;
    }

    files = calloc(sums.count ? sums.count : 1, sizeof(*files));
    digests.alg = ad->alg;
    digests.count = sums.count;
    digests.entries = calloc(sums.count ? sums.count : 1, sizeof(*digests.entries));
    if (!files || !digests.entries) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto failed;
    }
    hr = dl_fetch_files(j, &sums, files);
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_CAS, "Cannot download content %s: %s", ad->content_id,
                      cas_err_detail());
        /* What arrived stays for the next job unless the content itself was refused. */
        *keep_staging = hr != CAS_E_TOO_LARGE;
        goto failed;
    }
    for (size_t i = 0; i < sums.count; i++) {
        bad_files += files[i].state == F_BAD;
        digests.entries[i].path = sums.entries[i].path; /* borrowed; see cleanup */
        memcpy(digests.entries[i].hex, files[i].digest, sizeof(files[i].digest));
        digests.entries[i].size = files[i].size;
    }
    /* Before "Download completed", so the seed's completion and verdict lines stay consecutive. */
    if (bad_files)
        cas_log_warn(CAS_LOG_CAS,
                     "%zu of %zu file(s) of content %s did not match the sums listing at any "
                     "location",
                     bad_files, sums.count, ad->content_id);
    cas_log_info(CAS_LOG_CAS, "Download completed for content %s under context %s", ad->content_id,
                 j->context);

    close(j->parts_fd);
    j->parts_fd = -1;
    char *parts = cas_path_join(j->staging, "parts");
    if (parts)
        cas_fs_remove_tree(parts);
    free(parts);
    const char *exec_path = ad->program.command[0] != '/' ? ad->program.command : NULL;
    hr = cache_commit(cache, j->staging, ad->content_id, ad->alg, ad->hash, exec_path, &digests,
                      actual);
    free(j->staging); /* cache_commit removed and released it */
    j->staging = NULL;
    if (hr == CAS_E_HASH_MISMATCH) {
        cas_hex_upper(actual, act_up);
        cas_log_error(CAS_LOG_CAS, "Hash does not match expected %s, actual %s", exp_up, act_up);
        cas_fail(hr, "content %s hashes to %s, the policy expects %s", ad->content_id, act_up,
                 exp_up);
        goto failed;
    }
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_CAS, "Cannot place content %s in the cache: %s", ad->content_id,
                      cas_err_detail());
        goto failed;
    }
    cas_log_info(CAS_LOG_CAS,
                 "Hash verification succeeded for content %s downloaded under context %s",
                 ad->content_id, j->context);
    cas_log_info(CAS_LOG_CAS, "Download succeeded for download request %s", j->request);
    cas_log_verbose(CAS_LOG_CAS, "Content %s is in the cache at %s/%s (%zu files)", ad->content_id,
                    cache_dir(cache), ad->content_id, sums.count);
    cas_log_info(CAS_LOG_DTS, "DTS job %s state NotifiedComplete", j->request);
    goto cleanup;

failed:
    dl_log_failed(j, hr);
    cas_log_info(CAS_LOG_DTS, "DTS job %s failed, error 0x%08X", j->request, hr);
cleanup:
    free(digests.entries); /* the paths belong to sums */
    cas_sums_free(&sums);
    free(files);
    return hr;
}

/* The entry of ad's content, verified from disk now; held when `hold` is given (so it cannot be
 * removed or replaced until released). CAS_E_HASH_MISMATCH is logged with the file that
 * changed. */
static cas_hr dl_verify_cached(struct cache *cache, const struct cas_advert *ad,
                               struct cache_hold **hold)
{
    cas_hr hr = hold ? cache_hold(cache, ad->content_id, hold) : CAS_OK;
    if (hr == CAS_OK)
        hr = cache_reverify(cache, ad->content_id, ad->alg, ad->hash, cas_clock_now(), ad->persist);
    if (hr != CAS_OK && hold) {
        cache_release(*hold);
        *hold = NULL;
    }
    return hr;
}

static cas_hr dl_fetch(struct cas_agent *a, struct cache *cache, const struct cas_advert *ad,
                       const char *context);

cas_hr cas_download_content(struct cas_agent *a, const struct cas_advert *ad, const char *context)
{
    return cas_download_content_held(a, ad, context, NULL);
}

cas_hr cas_download_content_held(struct cas_agent *a, const struct cas_advert *ad,
                                 const char *context, struct cache_hold **hold)
{
    struct cache *cache = NULL;
    cas_hr hr = cas_agent_cache(a, &cache);
    if (hold)
        *hold = NULL;
    if (hr != CAS_OK)
        return hr;

    /* Already here: verified again from disk, never trusted because it is present. A changed
     * entry is removed and downloaded afresh, once. */
    if (cache_has(cache, ad->content_id)) {
        hr = dl_verify_cached(cache, ad, hold);
        if (hr == CAS_OK) {
            cas_log_info(CAS_LOG_CAS, "Content %s is already in the cache and verified",
                         ad->content_id);
            return CAS_OK;
        }
        if (hr != CAS_E_HASH_MISMATCH)
            return hr;
        cas_log_warn(CAS_LOG_CAS, "Removing content %s from the cache and downloading it again",
                     ad->content_id);
        hr = cache_delete(cache, ad->content_id);
        if (hr != CAS_OK && hr != CAS_E_CONTENT_NOT_FOUND)
            return hr;
    }
    hr = dl_fetch(a, cache, ad, context);
    cas_log_set_context(NULL);
    if (hr != CAS_OK)
        return hr;
    if (!hold) {
        cache_touch(cache, ad->content_id, cas_clock_now(), ad->persist, 1);
        return CAS_OK;
    }
    /* To run from it: hold it, and hash it from disk once more right before the program starts. */
    return dl_verify_cached(cache, ad, hold);
}

static cas_hr dl_fetch(struct cas_agent *a, struct cache *cache, const struct cas_advert *ad,
                       const char *context)
{
    struct dl_job j = {.a = a, .ad = ad, .context = context, .content_fd = -1, .parts_fd = -1};
    char job[CAS_GUID_LEN + 1];
    int keep = 0;
    cas_hr hr;

    j.locs = calloc(ad->n_locations, sizeof(*j.locs));
    if (!j.locs)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    j.n_locs = ad->n_locations;
    for (size_t i = 0; i < ad->n_locations; i++)
        j.locs[i].url = ad->locations[i];
    j.t0 = dl_now();
    j.cap = (uint64_t)a->cfg.max_download_kbps * 125; /* kilobits -> bytes per second */
    j.deadline = j.t0 + (double)a->cfg.transfer_deadline_minutes * 60.0;

    cas_guid_new(job);
    cas_guid_new(j.request);
    /* Every record of this job, in every log, carries its request GUID as context. */
    cas_log_set_context(j.request);
    cas_log_info(CAS_LOG_CAS, "Requesting content %s, size(KB) %llu, under context %s",
                 ad->content_id, (unsigned long long)((ad->size + 1023) / 1024), context);
    cas_log_info(CAS_LOG_CAS, "Submitted CTM job %s to download Content %s under context %s", job,
                 ad->content_id, context);
    cas_log_info(CAS_LOG_CAS, "Successfully created download  request %s for content %s", j.request,
                 ad->content_id);
    cas_log_info(CAS_LOG_CTM, "CTM job %s created for content %s with %zu location(s)", job,
                 ad->content_id, ad->n_locations);
    for (size_t i = 0; i < ad->n_locations; i++) {
        cas_log_info(CAS_LOG_CTM, "CTM job %s location %zu: %s", job, i + 1, ad->locations[i]);
        /* Redirects to http are refused by the transfer itself; this is the direct case. */
        if (a->cfg.require_https && strncmp(ad->locations[i], "https://", 8) != 0) {
            j.locs[i].dropped = 1;
            cas_log_warn(CAS_LOG_CTM, "Location %s is not used: require_https is set",
                         ad->locations[i]);
        }
    }
    cas_log_info(CAS_LOG_CAS, "Location update from CTM for content %s and request %s",
                 ad->content_id, j.request);
    cas_log_info(CAS_LOG_CAS, "Download started for content %s", ad->content_id);
    cas_log_info(CAS_LOG_DTS, "DTS job %s created for content %s (CTM job %s)", j.request,
                 ad->content_id, job);

    struct cache_limits limits;
    cas_cache_limits_load(a, &limits);
    hr = cache_make_room(cache, ad->content_id, ad->size, &limits);
    cas_cache_limits_free(&limits);
    if (hr != CAS_OK) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        dl_log_failed(&j, hr);
        free(j.locs);
        return cas_fail(hr, "%s", detail);
    }

    /* SIGINT/SIGTERM end the job cleanly, keeping what resume needs. */
    cas_signals_install();
    hr = dl_run(&j, cache, &keep);

    if (j.content_fd >= 0)
        close(j.content_fd);
    if (j.parts_fd >= 0)
        close(j.parts_fd);
    if (j.staging) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        if (keep) {
            cas_log_info(CAS_LOG_DTS,
                         "Partial content of %s is kept for the next download: %llu "
                         "bytes",
                         ad->content_id, (unsigned long long)j.live);
            cache_stage_keep(cache, j.staging);
        } else {
            cache_stage_abort(cache, j.staging);
        }
        cas_fail(hr, "%s", detail);
    }
    free(j.staging);
    free(j.locs);
    return hr;
}
