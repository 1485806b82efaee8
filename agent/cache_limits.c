/* The cache's limits as this agent applies them. See cache_limits.h. */
#include "agent/cache_limits.h"

#include <stdlib.h>
#include <string.h>

#include "agent/policy_store.h"
#include "common/timefmt.h"

void cas_cache_limits_load(struct cas_agent *a, struct cache_limits *l)
{
    struct cas_policy *pols = NULL;
    size_t n_pols = 0, n = 0;
    memset(l, 0, sizeof(*l));
    l->max_bytes = (uint64_t)a->cfg.cache_size_mb * 1024u * 1024u;
    l->retention_minutes = a->cfg.cache_min_retention_minutes;
    l->now = cas_clock_now();
    if (cas_policy_store_load_all(a, &pols, &n_pols) != CAS_OK)
        return;
    for (size_t i = 0; i < n_pols; i++)
        n += pols[i].n_adverts;
    l->persist = n ? calloc(n, sizeof(*l->persist)) : NULL;
    for (size_t i = 0; i < n_pols; i++) {
        for (size_t k = 0; l->persist && k < pols[i].n_adverts; k++) {
            if (pols[i].adverts[k].persist) {
                char *id = strdup(pols[i].adverts[k].content_id);
                if (id)
                    l->persist[l->n_persist++] = id;
            }
        }
        cas_policy_free(&pols[i]);
    }
    free(pols);
}

void cas_cache_limits_free(struct cache_limits *l)
{
    for (size_t i = 0; i < l->n_persist; i++)
        free(l->persist[i]);
    free(l->persist);
    l->persist = NULL;
    l->n_persist = 0;
}

cas_hr cas_cache_list(struct cas_agent *a, struct cache *c, struct cache_entry_info **items,
                      size_t *n)
{
    struct cache_limits l;
    cas_hr hr = cache_list(c, items, n);
    if (hr != CAS_OK)
        return hr;
    cas_cache_limits_load(a, &l);
    for (size_t i = 0; i < *n; i++) {
        for (size_t k = 0; !(*items)[i].persist && k < l.n_persist; k++)
            (*items)[i].persist = !strcmp(l.persist[k], (*items)[i].content_id);
    }
    cas_cache_limits_free(&l);
    return CAS_OK;
}
