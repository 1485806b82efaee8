/* The agent's context: configuration, logging, and lazily created cache and transfer. */
#include "agent/agent.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

cas_hr cas_agent_init(struct cas_agent *a, const char *config_path, int explicit_path)
{
    memset(a, 0, sizeof(*a));
    a->runner = &cas_runner_default;
    cas_hr hr = cas_config_load(config_path, explicit_path, &a->cfg);
    if (hr != CAS_OK)
        return hr;
    if (a->cfg.warnings)
        fprintf(stderr, "cas-agent: warning: %s: %s\n", config_path, a->cfg.warnings);
    struct cas_log_settings ls = {
        .dir = a->cfg.log_dir,
        .level = a->cfg.log_level,
        .debug = a->cfg.debug_logging,
        .max_size = a->cfg.log_max_size,
        .max_history = a->cfg.log_max_history,
        .echo_stderr = 0,
    };
    hr = cas_log_init(&ls);
    if (hr != CAS_OK)
        return cas_fail(hr, "log folder %s: %s", a->cfg.log_dir, cas_err_detail());
    return CAS_OK;
}

void cas_agent_free(struct cas_agent *a)
{
    if (a->transfer)
        a->transfer->destroy(a->transfer);
    cache_close(a->cache);
    cas_config_free(&a->cfg);
    cas_log_shutdown();
    memset(a, 0, sizeof(*a));
}

cas_hr cas_agent_cache(struct cas_agent *a, struct cache **out)
{
    if (!a->cache) {
        cas_hr hr = cache_open(a->cfg.cache_dir, &a->cache);
        if (hr != CAS_OK)
            return hr;
    }
    *out = a->cache;
    return CAS_OK;
}

cas_hr cas_agent_transfer(struct cas_agent *a, struct cas_transfer **out)
{
    if (!a->transfer) {
        cas_hr hr = cas_transfer_curl_new(&a->cfg, &a->transfer);
        if (hr != CAS_OK)
            return hr;
    }
    *out = a->transfer;
    return CAS_OK;
}

int cas_agent_fail(cas_hr hr)
{
    const char *detail = cas_err_detail();
    fprintf(stderr, "cas-agent: error 0x%08X: %s\n", hr, *detail ? detail : cas_err_message(hr));
    return 1;
}
