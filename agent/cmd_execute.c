/* cas-agent execute ADVERT_ID: run an advertisement's program on request, from content verified
 * against the signed hash (exec_advert.c does the work and records it in the history). */
#include <stdio.h>

#include "agent/agent.h"
#include "agent/exec_advert.h"
#include "agent/policy_store.h"
#include "agent/signals.h"

int cas_cmd_execute(struct cas_agent *a, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: cas-agent execute ADVERT_ID\n", stderr);
        return 2;
    }
    struct cas_policy p = {0};
    const struct cas_advert *ad = NULL;
    cas_hr hr = cas_policy_store_find(a, argv[1], 0, &p, &ad);
    if (hr == CAS_OK) {
        /* SIGTERM / SIGINT: the download keeps what resume needs, a running program is ended. */
        cas_signals_install();
        hr = cas_exec_advert(a, ad, "on request", NULL);
    }
    cas_policy_free(&p);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    return 0;
}
