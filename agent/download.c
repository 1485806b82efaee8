/* The download job.
 *
 * 1. The sums listing B/C.sums from the first location whose copy hashes to the signed hash.
 *    None does: the job stops there with 0x80091007 before any file is fetched.
 * 2. Each file of the listing, from the locations in order, hashed as it arrives. A copy that
 *    does not match is kept only if no better one arrives, so that when a file fails at every
 *    location the content as received can still be hashed and its package hash reported as the
 *    "actual" value: what an administrator gets by running the coreutils one-liner on the DP.
 *    Bytes are bounded by the policy's size across the whole content.
 * 3. The package hash recomputed from the files on disk decides (cache_commit). */
#include "agent/download.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/guid.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sums.h"

/* A listing line is at most 64 hex + 2 + CAS_PATH_MAX + 1 bytes; 64 MiB allows ~16k maximal
 * lines or far more ordinary ones, and bounds what a hostile DP can make us hold in memory. */
#define DOWNLOAD_SUMS_MAX (64u * 1024u * 1024u)

struct dl_location {
    const char *url;
    int dropped; /* a hard error: not used again in this job */
};

struct dl_job {
    struct cas_agent *a;
    const struct cas_advert *ad;
    const char *context;
    char request[CAS_GUID_LEN + 1];
    struct dl_location *locs;
    size_t n_locs;
    char *staging;
    int content_fd;      /* staging/C, where files are assembled */
    uint64_t kept_bytes; /* bytes of the files kept so far */
    uint64_t fetched_bytes;
    size_t files_done;
};

/* ---- receiving into memory (the listing) and into files ---- */

struct dl_membuf {
    char *data;
    size_t len, cap;
};

static cas_hr dl_mem_on_data(void *ud, const void *data, size_t len)
{
    struct dl_membuf *m = ud;
    if (m->len + len + 1 > m->cap) {
        size_t ncap = m->cap ? m->cap : 4096;
        while (ncap < m->len + len + 1)
            ncap *= 2;
        char *n = realloc(m->data, ncap);
        if (!n)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        m->data = n;
        m->cap = ncap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    m->data[m->len] = '\0';
    return CAS_OK;
}

struct dl_filesink {
    int fd;
    struct cas_hash *hash;
    const char *name;
};

static cas_hr dl_file_on_data(void *ud, const void *data, size_t len)
{
    struct dl_filesink *s = ud;
    cas_hash_update(s->hash, data, len);
    return cas_fs_write_all(s->fd, data, len, s->name);
}

cas_hr cas_context_sid(const char *context, char *buf, size_t size)
{
    if (!strcmp(context, "System")) {
        snprintf(buf, size, "System");
        return CAS_OK;
    }
    if (!strncmp(context, "user:", 5)) {
        struct passwd *pw = getpwnam(context + 5);
        if (!pw)
            return cas_fail(CAS_E_NOT_FOUND, "context %s: no such user", context);
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

static void dl_note_failure(struct dl_job *j, struct dl_location *loc, cas_hr hr, int hard,
                            const char *what)
{
    cas_log_warn(CAS_LOG_CTM, "Location %s failed for %s of content %s: error 0x%08X (%s)",
                 loc->url, what, j->ad->content_id, hr, cas_err_detail());
    if (hard) {
        loc->dropped = 1;
        cas_log_warn(CAS_LOG_CTM, "Location %s is not used again in this job", loc->url);
    }
}

/* Combine what went wrong at every location into the job's error: a 404 everywhere is "not on
 * the server"; nothing reachable is "no location could be reached". */
struct dl_outcome {
    cas_hr last;
    int all_404;
    int any_response;
    char detail[1024];
};

static void dl_outcome_add(struct dl_outcome *o, cas_hr hr)
{
    if (o->last == CAS_OK)
        o->all_404 = 1;
    if (hr != CAS_E_HTTP_404)
        o->all_404 = 0;
    if ((hr & 0xFFFF0000u) == CAS_E_HTTP_BASE)
        o->any_response = 1;
    o->last = hr;
    snprintf(o->detail, sizeof(o->detail), "%s", cas_err_detail());
}

static cas_hr dl_outcome_result(const struct dl_outcome *o, const char *what)
{
    if (o->last == CAS_OK)
        return cas_fail(CAS_E_NO_LOCATION, "no usable location for %s", what);
    if (o->all_404)
        return cas_fail(CAS_E_HTTP_404, "%s: not found (HTTP 404) at every location", what);
    if (o->last == CAS_E_TOO_LARGE || o->last == CAS_E_DISK_FULL || o->any_response)
        return cas_fail(o->last, "%s", o->detail);
    return cas_fail(CAS_E_NO_LOCATION, "%s: no location could be reached (last error 0x%08X: %s)",
                    what, o->last, o->detail);
}

/* Step 1: the listing. On success *sums holds it. */
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
        struct dl_membuf mem = {0};
        struct cas_transfer_result res = {0};
        struct cas_transfer *t = NULL;
        char hex[CAS_HASH_MAX_HEX + 1], up[CAS_HASH_MAX_HEX + 1];
        char *url;
        cas_hr hr;

        if (loc->dropped)
            continue;
        url = dl_url(loc->url, ad->content_id, NULL);
        if (!url)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        hr = cas_agent_transfer(j->a, &t);
        if (hr == CAS_OK) {
            struct cas_transfer_request req = {url, DOWNLOAD_SUMS_MAX, dl_mem_on_data, &mem};
            hr = t->get(t, &req, &res);
            j->fetched_bytes += res.bytes;
        }
        if (hr != CAS_OK) {
            dl_note_failure(j, loc, hr, res.hard, "the sums listing");
            dl_outcome_add(&out, hr);
            free(url);
            free(mem.data);
            continue;
        }
        cas_hash_buf_hex(ad->alg, mem.data ? mem.data : "", mem.len, hex);
        cas_hex_upper(hex, up);
        if (!cas_hex_equal(hex, ad->hash)) {
            cas_log_warn(CAS_LOG_CAS,
                         "Hash does not match for the sums listing of content %s served by %s: "
                         "expected %s, actual %s",
                         ad->content_id, loc->url, exp_up, up);
            if (!have_actual) {
                memcpy(actual_hex, hex, sizeof(hex));
                have_actual = 1;
            }
            /* A DP with a different listing holds other content: its files are not asked for. */
            loc->dropped = 1;
            cas_log_warn(CAS_LOG_CTM,
                         "Location %s is not used again in this job: its sums listing of content "
                         "%s does not match the signed hash",
                         loc->url, ad->content_id);
            cas_fail(CAS_E_HASH_MISMATCH, "the sums listing served by %s does not match", url);
            dl_outcome_add(&out, CAS_E_HASH_MISMATCH);
            free(url);
            free(mem.data);
            continue;
        }
        cas_log_verbose(CAS_LOG_CAS,
                        "Hash matches for the sums listing of content %s (%zu bytes) "
                        "served by %s",
                        ad->content_id, mem.len, loc->url);
        cas_log_info(CAS_LOG_CTM, "Location %s chosen for the sums listing of content %s", loc->url,
                     ad->content_id);
        hr = cas_sums_parse(mem.data ? mem.data : "", mem.len, ad->alg, sums);
        if (hr != CAS_OK)
            hr = cas_fail(hr, "the signed sums listing of content %s is not acceptable: %s",
                          ad->content_id, cas_err_detail());
        free(url);
        free(mem.data);
        if (hr == CAS_OK)
            cas_log_info(CAS_LOG_DTS, "DTS job %s state RetrievedManifest: %zu file(s)", j->request,
                         sums->count);
        return hr;
    }
    if (have_actual)
        return cas_fail(CAS_E_HASH_MISMATCH,
                        "no location served a sums listing of content %s "
                        "matching the signed hash",
                        ad->content_id);
    return dl_outcome_result(&out, "the sums listing");
}

/* Create the parent folders of rel inside the content folder, one segment at a time with
 * O_NOFOLLOW, so nothing planted in the staging area can redirect a write outside it. Returns
 * an fd of the parent folder and sets *leaf to the last segment. */
static int dl_open_parent(int root, const char *rel, const char **leaf)
{
    int fd = dup(root);
    const char *p = rel;
    char seg[CAS_PATH_SEG_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash) {
            *leaf = p;
            return fd;
        }
        size_t n = (size_t)(slash - p);
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (mkdirat(fd, seg, 0755) != 0 && errno != EEXIST) {
            close(fd);
            return -1;
        }
        int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (next < 0)
            return -1;
        fd = next;
        p = slash + 1;
    }
}

/* Step 2 for one file. Returns CAS_OK if a matching copy is in place, CAS_E_HASH_MISMATCH if
 * only non-matching copies arrived (the first one is in place), else the transfer failure. */
static cas_hr dl_fetch_file(struct dl_job *j, const struct cas_sums_entry *e)
{
    const struct cas_advert *ad = j->ad;
    struct dl_outcome out = {0};
    const char *leaf = NULL;
    int have_copy = 0;
    uint64_t copy_bytes = 0; /* size of the non-matching copy in place, counted in kept_bytes */
    cas_hr result = CAS_OK;
    int parent = dl_open_parent(j->content_fd, e->path, &leaf);
    if (parent < 0)
        return cas_fail(cas_err_from_errno(errno), "creating the folder of %s: %s", e->path,
                        strerror(errno));

    for (size_t i = 0; i < j->n_locs; i++) {
        struct dl_location *loc = &j->locs[i];
        struct cas_transfer *t = NULL;
        struct cas_transfer_result res = {0};
        char tmpname[64], hex[CAS_HASH_MAX_HEX + 1];
        cas_hr hr;

        if (loc->dropped)
            continue;
        char *url = dl_url(loc->url, ad->content_id, e->path);
        if (!url) {
            result = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto done;
        }
        snprintf(tmpname, sizeof(tmpname), ".cas-part-%zu", i);
        int fd =
            openat(parent, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            result =
                cas_fail(cas_err_from_errno(errno), "creating %s: %s", e->path, strerror(errno));
            free(url);
            goto done;
        }
        struct dl_filesink sink = {fd, cas_hash_new(ad->alg), e->path};
        /* This file's own earlier copy is replaced, so it does not count against the budget. */
        uint64_t others = j->kept_bytes - copy_bytes;
        uint64_t budget = ad->size > others ? ad->size - others : 0;
        hr = sink.hash ? cas_agent_transfer(j->a, &t) : CAS_E_OUTOFMEMORY;
        if (hr == CAS_OK) {
            struct cas_transfer_request req = {url, budget, dl_file_on_data, &sink};
            hr = t->get(t, &req, &res);
            j->fetched_bytes += res.bytes;
        }
        if (sink.hash)
            cas_hash_final_hex(sink.hash, hex);
        cas_hash_free(sink.hash);
        if (hr == CAS_OK && close(fd) != 0)
            hr = cas_fail(cas_err_from_errno(errno), "writing %s: %s", e->path, strerror(errno));
        else if (hr != CAS_OK)
            close(fd);

        if (hr != CAS_OK) {
            unlinkat(parent, tmpname, 0);
            if (hr == CAS_E_DISK_FULL || hr == CAS_E_OUTOFMEMORY) {
                result = hr;
                free(url);
                goto done;
            }
            dl_note_failure(j, loc, hr, res.hard, e->path);
            dl_outcome_add(&out, hr);
            free(url);
            continue;
        }
        if (!strcmp(hex, e->hex)) {
            if (renameat(parent, tmpname, parent, leaf) != 0) {
                result =
                    cas_fail(cas_err_from_errno(errno), "placing %s: %s", e->path, strerror(errno));
                free(url);
                goto done;
            }
            j->kept_bytes += res.bytes - copy_bytes;
            cas_log_verbose(CAS_LOG_CAS,
                            "Hash matches for file %s of content %s (%llu bytes) "
                            "served by %s",
                            e->path, ad->content_id, (unsigned long long)res.bytes, loc->url);
            cas_log_info(CAS_LOG_CTM, "Location %s chosen for file %s of content %s", loc->url,
                         e->path, ad->content_id);
            free(url);
            result = CAS_OK;
            goto done;
        }
        char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
        cas_hex_upper(e->hex, exp_up);
        cas_hex_upper(hex, act_up);
        cas_log_warn(CAS_LOG_CAS,
                     "Hash does not match for file %s of content %s served by %s: expected %s, "
                     "actual %s",
                     e->path, ad->content_id, loc->url, exp_up, act_up);
        free(url);
        if (!have_copy) {
            /* Keep the first copy received: it is what the DP holds, and the package hash
             * reported as "actual" must be computed over it. */
            if (renameat(parent, tmpname, parent, leaf) != 0) {
                result =
                    cas_fail(cas_err_from_errno(errno), "placing %s: %s", e->path, strerror(errno));
                goto done;
            }
            have_copy = 1;
            copy_bytes = res.bytes;
            j->kept_bytes += res.bytes;
        } else {
            unlinkat(parent, tmpname, 0);
        }
        cas_fail(CAS_E_HASH_MISMATCH, "file %s does not match", e->path);
        dl_outcome_add(&out, CAS_E_HASH_MISMATCH);
    }
    if (have_copy) {
        result = CAS_E_HASH_MISMATCH;
        cas_log_warn(CAS_LOG_CAS, "File %s of content %s did not match at any location", e->path,
                     ad->content_id);
    } else {
        result = dl_outcome_result(&out, e->path);
    }
done:
    close(parent);
    return result;
}

static void dl_log_failed(struct dl_job *j, cas_hr hr)
{
    cas_log_error(CAS_LOG_CAS, "Download failed for content %s under context %s, error 0x%08X",
                  j->ad->content_id, j->context, hr);
    cas_log_error(CAS_LOG_CAS, "Download failed for download request %s", j->request);
}

static cas_hr dl_run(struct dl_job *j, struct cache *cache)
{
    const struct cas_advert *ad = j->ad;
    struct cas_sums sums = {0};
    char actual[CAS_HASH_MAX_HEX + 1] = "";
    char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
    size_t bad_files = 0;
    cas_hr hr;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    cas_hex_upper(ad->hash, exp_up);
    hr = cache_stage_begin(cache, ad->content_id, &j->staging);
    if (hr == CAS_OK) {
        char *content = cas_path_join(j->staging, ad->content_id);
        j->content_fd =
            content ? open(content, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (j->content_fd < 0)
            hr = cas_fail(CAS_E_IO, "opening staging folder: %s", strerror(errno));
        free(content);
    }
    if (hr != CAS_OK) {
        cas_log_error(CAS_LOG_CAS, "Cannot prepare the cache for content %s: %s", ad->content_id,
                      cas_err_detail());
        goto failed;
    }

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
        goto failed;
    }

    cas_log_info(CAS_LOG_DTS, "DTS job %s state DownloadingData: %zu file(s), at most %llu bytes",
                 j->request, sums.count, (unsigned long long)ad->size);
    for (size_t i = 0; i < sums.count; i++) {
        hr = dl_fetch_file(j, &sums.entries[i]);
        if (hr == CAS_E_HASH_MISMATCH) {
            bad_files++;
        } else if (hr != CAS_OK) {
            cas_log_error(CAS_LOG_CAS, "Cannot download file %s of content %s: %s",
                          sums.entries[i].path, ad->content_id, cas_err_detail());
            goto failed;
        }
        j->files_done++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cas_log_info(CAS_LOG_DTS,
                 "DTS job %s state RetrievedData. Total Files: %zu, Transferred Files: %zu, Total "
                 "Bytes: %llu, Transferred Bytes: %llu, elapsed %.3f s",
                 j->request, sums.count, j->files_done, (unsigned long long)ad->size,
                 (unsigned long long)j->fetched_bytes, secs);
    /* Before "Download completed", so the seed's completion and verdict lines stay consecutive. */
    if (bad_files)
        cas_log_warn(CAS_LOG_CAS,
                     "%zu of %zu file(s) of content %s did not match the sums "
                     "listing at any location",
                     bad_files, sums.count, ad->content_id);
    cas_log_info(CAS_LOG_CAS, "Download completed for content %s under context %s", ad->content_id,
                 j->context);

    const char *exec_path = ad->program.command[0] != '/' ? ad->program.command : NULL;
    hr = cache_commit(cache, j->staging, ad->content_id, ad->alg, ad->hash, exec_path, actual);
    free(j->staging); /* cache_commit removed it */
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
                 "Hash verification succeeded for content %s downloaded under "
                 "context %s",
                 ad->content_id, j->context);
    cas_log_info(CAS_LOG_CAS, "Download succeeded for download request %s", j->request);
    cas_log_verbose(CAS_LOG_CAS, "Content %s is in the cache at %s/%s (%zu files)", ad->content_id,
                    cache_dir(cache), ad->content_id, sums.count);
    cas_log_info(CAS_LOG_DTS, "DTS job %s state NotifiedComplete", j->request);
    cas_sums_free(&sums);
    return CAS_OK;

failed:
    dl_log_failed(j, hr);
    cas_log_info(CAS_LOG_DTS, "DTS job %s failed, error 0x%08X", j->request, hr);
    cas_sums_free(&sums);
    return hr;
}

cas_hr cas_download_content(struct cas_agent *a, const struct cas_advert *ad, const char *context)
{
    struct cache *cache = NULL;
    struct dl_job j = {.a = a, .ad = ad, .context = context, .content_fd = -1};
    char job[CAS_GUID_LEN + 1], actual[CAS_HASH_MAX_HEX + 1];
    char *changed = NULL;
    cas_hr hr = cas_agent_cache(a, &cache);
    if (hr != CAS_OK)
        return hr;

    /* Already here: verified again from disk, never trusted because it is present. */
    if (cache_has(cache, ad->content_id)) {
        hr = cache_verify(cache, ad->content_id, ad->alg, ad->hash, actual, &changed);
        if (hr == CAS_OK) {
            cas_log_info(CAS_LOG_CAS, "Content %s is already in the cache and verified",
                         ad->content_id);
            return CAS_OK;
        }
        char exp_up[CAS_HASH_MAX_HEX + 1], act_up[CAS_HASH_MAX_HEX + 1];
        cas_hex_upper(ad->hash, exp_up);
        cas_hex_upper(actual, act_up);
        cas_log_warn(CAS_LOG_CAS,
                     "Content %s in the cache does not match its hash (expected %s, actual %s; "
                     "%s): removing it and downloading it again",
                     ad->content_id, exp_up, act_up, changed ? changed : "cannot tell which file");
        free(changed);
        hr = cache_delete(cache, ad->content_id);
        if (hr != CAS_OK)
            return hr;
    }

    j.locs = calloc(ad->n_locations, sizeof(*j.locs));
    if (!j.locs)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    j.n_locs = ad->n_locations;
    for (size_t i = 0; i < ad->n_locations; i++)
        j.locs[i].url = ad->locations[i];

    cas_guid_new(job);
    cas_guid_new(j.request);
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

    hr = dl_run(&j, cache);
    if (j.content_fd >= 0)
        close(j.content_fd);
    if (j.staging) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cache_stage_abort(cache, j.staging);
        cas_fail(hr, "%s", detail);
    }
    free(j.staging);
    free(j.locs);
    return hr;
}
