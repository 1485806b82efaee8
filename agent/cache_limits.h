/* The cache's limits as this agent applies them: size and retention from the configuration,
 * the clock, and the content the applied policies mark persistent. */
#ifndef CAS_AGENT_CACHE_LIMITS_H
#define CAS_AGENT_CACHE_LIMITS_H

#include "agent/agent.h"

/* Fill *l. Never fails: if the policies cannot be read, the persist list is empty and eviction
 * relies on the cache index's flags. Free with cas_cache_limits_free. */
void cas_cache_limits_load(struct cas_agent *a, struct cache_limits *l);
void cas_cache_limits_free(struct cache_limits *l);
/* cache_list, with entries the applied policies mark persistent shown as persistent: what is
 * shown is what eviction will do. */
cas_hr cas_cache_list(struct cas_agent *a, struct cache *c, struct cache_entry_info **items,
                      size_t *n);

#endif
