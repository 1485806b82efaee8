/* Key changes from the management point: checked at the start of every policy poll, so a policy
 * signed by a new key is accepted in the same poll as the key change that announces it. */
#ifndef CAS_AGENT_KEYCHANGE_FETCH_H
#define CAS_AGENT_KEYCHANGE_FETCH_H

#include "agent/agent.h"

/* URL of the key-change document of `site` next to the policy: management_point with its last
 * path segment replaced by <SITE>.keychange ("http://mp/SMS/policy.json" ->
 * "http://mp/SMS/CEN.keychange"; "http://mp" -> "http://mp/CEN.keychange"). Its signature is at
 * the same URL + ".sig". malloc'd; NULL when out of memory or the URL is not http(s). */
char *cas_keychange_url(const char *management_point, const char *site);

/* For the configured site, or with no site configured for every site with a key in
 * trusted_keys_dir (<SITE>.pem), GET the key-change document and its signature (bounded by
 * CAS_KEYCHANGE_MAX_BYTES and CAS_SIG_MAX_BYTES) and apply them with cas_keychange_apply. No
 * document (404): nothing to do, a verbose line in PolicyAgent.log. Requests carry no validators
 * and leave the policy's (ETag, Last-Modified) alone. Every failure is logged in PolicyAgent.log;
 * the return value is CAS_OK or the last failure, for callers that want it (the policy poll goes
 * on whatever it is). */
cas_hr cas_keychange_fetch(struct cas_agent *a);

#endif
