/* Making room: the cache never holds more than its limit, and removes content only when a
 * download needs the room (or an administrator runs `cache clean`). What goes first: entries no
 * process holds, not persistent, unused for the retention time, least recently used first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache_internal.h"
#include "common/log.h"
#include "common/timefmt.h"

static int lru_cmp(const void *a, const void *b)
{
    const struct cache_entry_info *x = a, *y = b;
    if (x->last_used != y->last_used)
        return x->last_used < y->last_used ? -1 : 1;
    return strcmp(x->content_id, y->content_id);
}

static int persistent(const struct cache_entry_info *e, const struct cache_limits *l)
{
    for (size_t i = 0; !e->persist && i < l->n_persist; i++) {
        if (!strcmp(l->persist[i], e->content_id))
            return 1;
    }
    return e->persist;
}

static int removable(const struct cache_entry_info *e, const struct cache_limits *l)
{
    return !persistent(e, l) && !e->in_use &&
           (double)l->now - (double)e->last_used >= (double)l->retention_minutes * 60.0;
}

/* Remove one entry if nobody holds it now. */
static cas_hr evict_one(struct cache *c, const struct cache_entry_info *e, const char *why)
{
    char used[32];
    int ufd = cache_use_lock_excl(c, e->content_id);
    if (ufd < 0)
        return cas_fail(CAS_E_CACHE_IN_USE, "content %s came into use", e->content_id);
    int lfd = cache_lock(c);
    cas_hr hr = lfd < 0 ? cas_fail(cas_err_from_errno(errno), "locking cache: %s", strerror(errno))
                        : cache_remove_entry_locked(c, e->content_id);
    cache_unlock(lfd);
    close(ufd);
    if (hr == CAS_OK) {
        cas_time_format(e->last_used, used, sizeof(used));
        cas_log_info(CAS_LOG_CAS,
                     "Removed content %s (%llu bytes, last used %s) from the cache: %s",
                     e->content_id, (unsigned long long)e->size, used, why);
    }
    return hr;
}

cas_hr cache_make_room(struct cache *c, const char *for_content, uint64_t need,
                       const struct cache_limits *l)
{
    struct cache_entry_info *items = NULL;
    size_t n = 0;
    uint64_t used = 0, removable_bytes = 0, held = 0, persist_bytes = 0, recent = 0;
    cas_hr hr;

    if (need > l->max_bytes)
        return cas_fail(CAS_E_CACHE_TOO_SMALL,
                        "content %s needs %llu bytes; the whole cache is limited to %llu "
                        "(cache_size_mb)",
                        for_content, (unsigned long long)need, (unsigned long long)l->max_bytes);
    hr = cache_list(c, &items, &n);
    if (hr != CAS_OK)
        return hr;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (for_content && !strcmp(items[i].content_id, for_content))
            continue; /* replaced by the new copy */
        used += items[i].size;
        if (removable(&items[i], l))
            removable_bytes += items[i].size;
        else if (items[i].in_use)
            held += items[i].size;
        else if (persistent(&items[i], l))
            persist_bytes += items[i].size;
        else
            recent += items[i].size;
        items[k++] = items[i];
    }
    n = k;
    if (used + need <= l->max_bytes)
        goto cleanup;
    uint64_t short_by = used + need - l->max_bytes;
    if (removable_bytes < short_by) {
        hr =
            cas_fail(CAS_E_CACHE_FULL,
                     "content %s needs %llu bytes: the cache holds %llu of %llu, and only %llu can "
                     "be removed (in use %llu, persistent %llu, used within %ld minutes %llu)",
                     for_content, (unsigned long long)need, (unsigned long long)used,
                     (unsigned long long)l->max_bytes, (unsigned long long)removable_bytes,
                     (unsigned long long)held, (unsigned long long)persist_bytes,
                     l->retention_minutes, (unsigned long long)recent);
        cas_log_warn(CAS_LOG_CAS, "Not enough cache space for content %s: %s", for_content,
                     cas_err_detail());
        goto cleanup;
    }
    cas_log_info(CAS_LOG_CAS,
                 "Making room for content %s: it needs %llu bytes, the cache holds %llu of %llu; "
                 "removing %llu bytes of unused content, least recently used first",
                 for_content, (unsigned long long)need, (unsigned long long)used,
                 (unsigned long long)l->max_bytes, (unsigned long long)short_by);
    qsort(items, n, sizeof(*items), lru_cmp);
    char why[160];
    snprintf(why, sizeof(why),
             "room for content %s; not persistent, not in use, unused for at least %ld minutes",
             for_content, l->retention_minutes);
    uint64_t freed = 0;
    for (size_t i = 0; i < n && freed < short_by; i++) {
        if (!removable(&items[i], l))
            continue;
        cas_hr one = evict_one(c, &items[i], why);
        if (one == CAS_OK)
            freed += items[i].size;
    }
    if (freed < short_by)
        hr = cas_fail(CAS_E_CACHE_FULL,
                      "content %s needs %llu bytes: %llu could be freed, %llu were needed "
                      "(entries came into use meanwhile)",
                      for_content, (unsigned long long)need, (unsigned long long)freed,
                      (unsigned long long)short_by);
cleanup:
    free(items);
    return hr;
}

cas_hr cache_clean(struct cache *c, const struct cache_limits *l, size_t *entries_removed,
                   uint64_t *bytes_removed)
{
    struct cache_entry_info *items = NULL;
    size_t n = 0, removed = 0;
    uint64_t bytes = 0;
    if (entries_removed)
        *entries_removed = 0;
    if (bytes_removed)
        *bytes_removed = 0;
    cas_hr hr = cache_list(c, &items, &n);
    if (hr != CAS_OK)
        return hr;
    char why[96];
    snprintf(why, sizeof(why), "cache clean; not persistent, not in use, unused for %ld minutes",
             l->retention_minutes);
    for (size_t i = 0; i < n; i++) {
        if (removable(&items[i], l) && evict_one(c, &items[i], why) == CAS_OK) {
            removed++;
            bytes += items[i].size;
        }
    }
    free(items);
    int partial = cache_clean_staging(c);
    if (partial > 0)
        cas_log_info(CAS_LOG_CAS, "Removed %d partial download(s) from the cache: cache clean",
                     partial);
    if (entries_removed)
        *entries_removed = removed;
    if (bytes_removed)
        *bytes_removed = bytes;
    return CAS_OK;
}
