/* The agent's per-process context: configuration, the cache, and the injectable parts (transfer,
 * process runner) so unit tests need no network and integration tests use the real thing. */
#ifndef CAS_AGENT_H
#define CAS_AGENT_H

#include "cache/cache.h"
#include "common/config.h"
#include "common/error.h"

#include "agent/runner.h"
#include "agent/transfer.h"

struct cas_agent {
    struct cas_config cfg;
    struct cache *cache;           /* opened on first use by cas_agent_cache() */
    struct cas_transfer *transfer; /* created on first use by cas_agent_transfer() */
    const struct cas_runner *runner;
    const char *config_path; /* as given, for reloading */
    int config_explicit;
};

/* Load the configuration (see cas_config_load for `explicit_path`) and start logging. Prints
 * configuration warnings on stderr. On failure the agent is still freeable. */
cas_hr cas_agent_init(struct cas_agent *a, const char *config_path, int explicit_path);
void cas_agent_free(struct cas_agent *a);

/* Load the configuration again (SIGHUP). A file that does not load leaves the running
 * configuration as it is (error returned and logged). On success every changed key is logged
 * with its old and new value in `component`'s log, logging restarts with the new settings, and
 * the transfer (and the cache, if cache_dir changed) are recreated on next use. */
cas_hr cas_agent_reload(struct cas_agent *a, int component);

cas_hr cas_agent_cache(struct cas_agent *a, struct cache **out);
cas_hr cas_agent_transfer(struct cas_agent *a, struct cas_transfer **out);

/* Report a failed command on stderr as "cas-agent: error 0x%08X: detail" and return exit 1. */
int cas_agent_fail(cas_hr hr);

/* Command entry points: argv[0] is the command name; each returns the process exit status. */
int cas_cmd_policy(struct cas_agent *a, int argc, char **argv);
int cas_cmd_download(struct cas_agent *a, int argc, char **argv);
int cas_cmd_execute(struct cas_agent *a, int argc, char **argv);
int cas_cmd_cache(struct cas_agent *a, int argc, char **argv);
int cas_cmd_status(struct cas_agent *a, int argc, char **argv);
int cas_cmd_run(struct cas_agent *a, int argc, char **argv);
int cas_cmd_log(struct cas_agent *a, int argc, char **argv);
int cas_cmd_errinfo(int argc, char **argv);

#endif
