/* The applied policy: verified, checked against replay and expiry, and stored atomically in
 * <state_dir>/policy/: <SITE>.json (the exact signed bytes), <SITE>.json.sig, and
 * <SITE>.state.json ({"site", "serial", "key_id", "applied"}: the highest serial applied). */
#ifndef CAS_POLICY_STORE_H
#define CAS_POLICY_STORE_H

#include "agent/agent.h"
#include "common/policy.h"

/* Verify and apply the policy in `path` with the signature in `sig_path` (NULL: path + ".sig").
 * Every refusal leaves the stored policy and state untouched and is logged in PolicyAgent.log.
 * On success *applied (may be NULL) receives the parsed policy (caller frees). */
cas_hr cas_policy_store_apply(struct cas_agent *a, const char *path, const char *sig_path,
                              struct cas_policy *applied);

/* Load the applied policies: the configured site's, or every site's when `site` is not
 * configured. *out is a malloc'd array of *count policies (free each, then the array). A missing
 * policy gives *count 0 and CAS_OK. */
cas_hr cas_policy_store_load_all(struct cas_agent *a, struct cas_policy **out, size_t *count);

/* Find the advertisement `id` (or, with by_content, the first advertising content `id`) in the
 * applied policies. *pol_out receives the policy that holds it (free it); *ad_out points into
 * it. CAS_E_NOT_FOUND / CAS_E_CONTENT_NOT_FOUND if absent; CAS_E_POLICY_EXPIRED if the policy
 * holding it has expired. */
cas_hr cas_policy_store_find(struct cas_agent *a, const char *id, int by_content,
                             struct cas_policy *pol_out, const struct cas_advert **ad_out);

#endif
