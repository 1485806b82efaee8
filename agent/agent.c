/* The agent's context: configuration, logging, and lazily created cache and transfer. */
#include "agent/agent.h"

#include <stdio.h>
#include <string.h>

#include "agent/transfer_broker.h"
#include "common/log.h"

static cas_hr agent_log_start(const struct cas_config *cfg)
{
    struct cas_log_settings ls = {
        .dir = cfg->log_dir,
        .level = cfg->log_level,
        .debug = cfg->debug_logging,
        .max_size = cfg->log_max_size,
        .max_history = cfg->log_max_history,
        .echo_stderr = 0,
    };
    cas_hr hr = cas_log_init(&ls);
    if (hr != CAS_OK)
        return cas_fail(hr, "log folder %s: %s", cfg->log_dir, cas_err_detail());
    return CAS_OK;
}

cas_hr cas_agent_init(struct cas_agent *a, const char *config_path, int explicit_path)
{
    memset(a, 0, sizeof(*a));
    a->runner = &cas_runner_default;
    a->config_path = config_path;
    a->config_explicit = explicit_path;
    cas_hr hr = cas_config_load(config_path, explicit_path, &a->cfg);
    if (hr != CAS_OK)
        return hr;
    if (a->cfg.warnings)
        fprintf(stderr, "cas-agent: warning: %s: %s\n", config_path, a->cfg.warnings);
    return agent_log_start(&a->cfg);
}

cas_hr cas_agent_reload(struct cas_agent *a, int component)
{
    struct cas_config next;
    char was[512], now[512];
    unsigned changed = 0;
    cas_hr hr = cas_config_load(a->config_path, a->config_explicit, &next);
    if (hr != CAS_OK) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        cas_config_free(&next);
        cas_log_error(component,
                      "Configuration %s was not reloaded: %s, error 0x%08X; the running "
                      "configuration stays",
                      a->config_path, detail, hr);
        return cas_fail(hr, "%s", detail);
    }
    if (next.warnings)
        cas_log_warn(component, "Configuration %s: %s", a->config_path, next.warnings);
    for (size_t i = 0;; i++) {
        const char *key = cas_config_key_text(&a->cfg, i, was, sizeof(was));
        if (!key)
            break;
        cas_config_key_text(&next, i, now, sizeof(now));
        if (strcmp(was, now) != 0) {
            cas_log_info(component, "Configuration reloaded: %s changed from %s to %s", key, was,
                         now);
            changed++;
        }
    }
    if (!changed)
        cas_log_info(component, "Configuration %s reloaded: nothing changed", a->config_path);
    int new_cache = strcmp(a->cfg.cache_dir, next.cache_dir) != 0;
    cas_config_free(&a->cfg);
    a->cfg = next;
    if (a->transfer) {
        a->transfer->destroy(a->transfer);
        a->transfer = NULL;
    }
    if (new_cache) {
        cache_close(a->cache);
        a->cache = NULL;
    }
    cas_log_shutdown();
    return agent_log_start(&a->cfg);
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
    if (a->transfer && a->transfer->usable && !a->transfer->usable(a->transfer)) {
        a->transfer->destroy(a->transfer); /* its process died: the next job gets a new one */
        a->transfer = NULL;
    }
    if (!a->transfer) {
        cas_hr hr = cas_transfer_broker_new(&a->cfg, NULL, &a->transfer);
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
