/* The download job: content from the policy's locations into the cache, verified against the
 * signed hash, with the CAS / ContentTransferManager / DataTransferService log lines of the real
 * client. */
#ifndef CAS_DOWNLOAD_H
#define CAS_DOWNLOAD_H

#include "agent/agent.h"
#include "cache/cache.h"
#include "common/policy.h"

/* Make the advertisement's content present and verified in the cache, downloading it if
 * needed. `context` is how logs name the requester ("System" or "S-1-22-1-<uid>"). Returns
 * CAS_OK, CAS_E_HASH_MISMATCH (nothing committed), or the transfer/cache failure. */
cas_hr cas_download_content(struct cas_agent *a, const struct cas_advert *ad, const char *context);
/* The same, for running a program from it: on CAS_OK the entry is held (*hold, release with
 * cache_release) and was hashed from disk after it was held, right before the caller runs. */
cas_hr cas_download_content_held(struct cas_agent *a, const struct cas_advert *ad,
                                 const char *context, struct cache_hold **hold);

/* The log name of an advertisement's context: "System", or "S-1-22-1-<uid>" for "user:<name>"
 * (the Samba convention for Unix users). Writes into buf. */
cas_hr cas_context_sid(const char *context, char *buf, size_t size);

#endif
