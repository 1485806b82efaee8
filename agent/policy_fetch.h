/* Policy from the management point: one poll (`policy fetch`; the service polls with it). */
#ifndef CAS_AGENT_POLICY_FETCH_H
#define CAS_AGENT_POLICY_FETCH_H

#include "agent/agent.h"
#include "common/policy.h"

/* First the site's key change next to the policy (keychange_fetch.h), so a policy signed by a new
 * key is accepted in the same poll; its failure is logged and does not stop the poll. Then GET
 * management_point (conditional on the last answer's ETag / Last-Modified) and
 * management_point + ".sig", and apply them as `policy apply` does. *changed = 1 when a new
 * policy was applied (then *applied, may be NULL, receives it; the caller frees it). Not
 * modified (304) or the same bytes as the applied policy: CAS_OK, *changed = 0. Any failure
 * (transfer, signature, replay, ...) is logged in PolicyAgent.log and leaves the applied policy in
 * force. A missing .sig (404) is an unsigned policy: refused unless require_signed_policy is
 * false. */
cas_hr cas_policy_fetch(struct cas_agent *a, struct cas_policy *applied, int *changed);

#endif
