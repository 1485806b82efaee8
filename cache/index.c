/* The cache index, <cache_dir>/.index.json: when each entry was last used and verified, and
 * whether it persists. It holds no hashes and grants nothing: integrity always comes from the
 * files and the signed hash. It only orders eviction, so when it is lost or damaged it is
 * rebuilt from the folders (commit times stand in for last use) and the agent says so. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_internal.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/timefmt.h"

#define INDEX_MAX ((size_t)16 * 1024 * 1024)

static int meta_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cache_meta *)a)->content_id,
                  ((const struct cache_meta *)b)->content_id);
}

static cas_hr meta_push(struct cache_meta **v, size_t *n, size_t *cap, const struct cache_meta *m)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct cache_meta *grown = realloc(*v, ncap * sizeof(**v));
        if (!grown)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        *v = grown;
        *cap = ncap;
    }
    (*v)[(*n)++] = *m;
    return CAS_OK;
}

/* The committed entries, each with its commit time. */
static cas_hr index_scan(struct cache *c, struct cache_meta **out, size_t *count)
{
    char(*ids)[CACHE_ID_MAX] = NULL;
    size_t n = 0;
    cas_hr hr = cache_entry_ids(c, &ids, &n);
    if (hr != CAS_OK)
        return hr;
    struct cache_meta *v = calloc(n ? n : 1, sizeof(*v));
    if (!v) {
        free(ids);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char sums[CACHE_ID_MAX + 8];
        struct stat st;
        snprintf(v[i].content_id, sizeof(v[i].content_id), "%s", ids[i]);
        snprintf(sums, sizeof(sums), "%s.sums", ids[i]);
        if (fstatat(c->dirfd, sums, &st, AT_SYMLINK_NOFOLLOW) == 0)
            v[i].last_used = v[i].verified = st.st_mtime;
    }
    free(ids);
    *out = v;
    *count = n;
    return CAS_OK;
}

static int index_time(const cJSON *o, const char *key, time_t *out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(t) && cas_time_parse(t->valuestring, out) == CAS_OK;
}

/* Parse the index text; 0 if it is not exactly what cache_index_store writes. */
static int index_parse(const char *buf, size_t len, struct cache_meta **out, size_t *count)
{
    cJSON *root = NULL;
    struct cache_meta *v = NULL;
    size_t n = 0, cap = 0;
    int ok = 0;
    if (cas_json_parse(buf, len, 8, "the cache index", &root) != CAS_OK)
        return 0;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1 || !cJSON_IsArray(entries))
        goto done;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        struct cache_meta m = {0};
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *persist = cJSON_GetObjectItemCaseSensitive(e, "persist");
        if (!cJSON_IsString(id) || !cas_id_is_content(id->valuestring) ||
            strlen(id->valuestring) >= sizeof(m.content_id) || !cJSON_IsBool(persist) ||
            !index_time(e, "last_used", &m.last_used) || !index_time(e, "verified", &m.verified))
            goto done;
        snprintf(m.content_id, sizeof(m.content_id), "%s", id->valuestring);
        m.persist = cJSON_IsTrue(persist);
        if (meta_push(&v, &n, &cap, &m) != CAS_OK)
            goto done;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), meta_cmp);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(v[i - 1].content_id, v[i].content_id))
            goto done;
    }
    ok = 1;
done:
    cJSON_Delete(root);
    if (!ok) {
        free(v);
        return 0;
    }
    *out = v;
    *count = n;
    return 1;
}

cas_hr cache_index_load(struct cache *c, int write_back, struct cache_meta **out, size_t *count)
{
    struct cache_meta *disk = NULL, *rec = NULL;
    size_t n_disk = 0, n_rec = 0;
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    int missing = 0, damaged = 0, changed = 0;

    *out = NULL;
    *count = 0;
    cas_hr hr = index_scan(c, &disk, &n_disk);
    if (hr != CAS_OK)
        return hr;
    path = cas_path_join(c->dir, CACHE_INDEX);
    if (!path) {
        free(disk);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    hr = cas_fs_read_file(path, INDEX_MAX, &buf, &len);
    if (hr == CAS_E_FILE_MISSING)
        missing = 1;
    else if (hr != CAS_OK || !index_parse(buf, len, &rec, &n_rec))
        damaged = 1;
    hr = CAS_OK;

    /* The folders say what exists; the records only add times and the persist flag. */
    for (size_t i = 0, j = 0; i < n_disk; i++) {
        while (j < n_rec && strcmp(rec[j].content_id, disk[i].content_id) < 0) {
            j++;
            changed = 1; /* a record of an entry that is gone */
        }
        if (j < n_rec && !strcmp(rec[j].content_id, disk[i].content_id))
            disk[i] = rec[j++];
        else
            changed = 1;
        if (i == n_disk - 1 && j < n_rec)
            changed = 1;
    }
    if ((n_disk == 0 && n_rec > 0) || missing)
        changed = 1; /* a new cache gets its (empty) index silently */
    if (damaged || (missing && n_disk > 0)) {
        cas_log_warn(CAS_LOG_CAS,
                     "The cache index %s is %s; rebuilt from the cache folders (%zu entries): last "
                     "use times are commit times, and persist flags return as adverts use them",
                     path, damaged ? "damaged" : "missing", n_disk);
        changed = 1;
    }
    if (write_back && changed)
        cache_index_store(c, disk, n_disk); /* best effort: it is rebuilt again next time */
    free(rec);
    free(buf);
    free(path);
    *out = disk;
    *count = n_disk;
    return hr;
}

cas_hr cache_index_store(struct cache *c, const struct cache_meta *m, size_t count)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "entries");
    char *path = NULL;
    cas_hr hr = CAS_OK;
    if (!root || !arr || !cJSON_AddNumberToObject(root, "version", 1)) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++) {
        char used[32], verified[32];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
        cas_time_format(m[i].last_used, used, sizeof(used));
        cas_time_format(m[i].verified, verified, sizeof(verified));
        if (!cJSON_AddStringToObject(e, "content", m[i].content_id) ||
            !cJSON_AddStringToObject(e, "last_used", used) ||
            !cJSON_AddStringToObject(e, "verified", verified) ||
            !cJSON_AddBoolToObject(e, "persist", m[i].persist)) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
    }
    path = cas_path_join(c->dir, CACHE_INDEX);
    if (!path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_json_write_atomic(path, root, 0644);
cleanup:
    cJSON_Delete(root);
    free(path);
    return hr;
}

cas_hr cache_touch(struct cache *c, const char *content_id, time_t now, int persist, int verified)
{
    struct cache_meta *m = NULL;
    size_t n = 0;
    cas_hr hr = cache_check_id(content_id);
    if (hr != CAS_OK)
        return hr;
    int lfd = cache_lock(c);
    if (lfd < 0)
        return cas_fail(cas_err_from_errno(errno), "locking cache: %s", strerror(errno));
    hr = cache_index_load(c, 0, &m, &n);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_fail(CAS_E_CONTENT_NOT_FOUND, "content %s is not in the cache", content_id);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].content_id, content_id) != 0)
            continue;
        m[i].last_used = now;
        if (verified)
            m[i].verified = now;
        if (persist >= 0)
            m[i].persist = persist;
        hr = cache_index_store(c, m, n);
        break;
    }
cleanup:
    free(m);
    cache_unlock(lfd);
    return hr;
}
