/* cas-agent download CONTENT_ID: present and verified in the cache; never executes. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/download.h"
#include "agent/policy_store.h"
#include "common/path.h"

int cas_cmd_download(struct cas_agent *a, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: cas-agent download CONTENT_ID\n", stderr);
        return 2;
    }
    const char *cid = argv[1];
    if (!cas_id_is_content(cid))
        return cas_agent_fail(cas_fail(CAS_E_INVALIDARG,
                                       "'%s' is not a content id (PACKAGE.VERSION, e.g. "
                                       "CEN00002.2)",
                                       cid));
    struct cas_policy p = {0};
    const struct cas_advert *ad = NULL;
    cas_hr hr = cas_policy_store_find(a, cid, 1, &p, &ad);
    if (hr == CAS_OK)
        hr = cas_download_content(a, ad, "System");
    cas_policy_free(&p);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    printf("Content %s is in the cache and verified\n", cid);
    return 0;
}
