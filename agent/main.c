/* cas-agent: global options, then one command (see agent.h for the command entry points). */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "common/config.h"

static void usage(FILE *out)
{
    fputs(
        "usage: cas-agent [--config FILE] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  policy apply FILE [--signature SIG]  verify and apply a signed policy (SIG: FILE.sig)\n"
        "  policy fetch                         fetch and apply the management point's policy\n"
        "  policy show [--json]                 the applied policy's advertisements\n"
        "  download CONTENT_ID                  download and verify content into the cache\n"
        "  execute ADVERT_ID                    make content present and verified, then run the\n"
        "                                       advertised program\n"
        "  run [--once]                         the service: poll policy, download ahead, run due\n"
        "                                       mandatory advertisements; --once: one pass\n"
        "  cache list [--json]                  the content in the cache: size, last use, flags\n"
        "  cache verify [CONTENT_ID]            hash cached content again; changes nothing\n"
        "  cache delete CONTENT_ID              remove content (refused while it is in use)\n"
        "  cache clean                          remove what may be removed, and leftovers\n"
        "  status [--json]                      applied policies; cache use against its limit\n"
        "  log [COMPONENT] [--all] [--level N]  the CMTrace logs, oldest first, times in\n"
        "      [--content ID] [--since TIME]    UTC; default CAS, --all merges every log by\n"
        "      [--follow]                       time; --follow keeps printing (log --help)\n"
        "  errinfo CODE | --all                 what an error code means; --all: every code\n"
        "\n"
        "Options:\n"
        "  --config FILE   configuration file (default " CAS_CONFIG_DEFAULT_PATH ")\n"
        "  --help          this help\n"
        "  --version       the version\n"
        "\n"
        "Exit status: 0 success, 1 the operation failed (stderr names the error code),\n"
        "2 usage error. Logs: CMTrace files in log_dir (CAS.log, execmgr.log, ...).\n",
        out);
}

int main(int argc, char **argv)
{
    const char *config = CAS_CONFIG_DEFAULT_PATH;
    int explicit_config = 0;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("cas-agent %s\n", CAS_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
            explicit_config = 1;
        } else if (!strncmp(argv[i], "--config=", 9) && argv[i][9]) {
            config = argv[i] + 9;
            explicit_config = 1;
        } else {
            fprintf(stderr, "cas-agent: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    if (!strcmp(cmd, "errinfo"))
        return cas_cmd_errinfo(argc - i, argv + i);
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }

    static const struct {
        const char *name;
        int (*fn)(struct cas_agent *, int, char **);
    } commands[] = {
        {"policy", cas_cmd_policy}, {"download", cas_cmd_download}, {"execute", cas_cmd_execute},
        {"cache", cas_cmd_cache},   {"status", cas_cmd_status},     {"run", cas_cmd_run},
        {"log", cas_cmd_log},
    };
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(cmd, commands[k].name) != 0)
            continue;
        struct cas_agent agent;
        cas_hr hr = cas_agent_init(&agent, config, explicit_config);
        int rc = hr == CAS_OK ? commands[k].fn(&agent, argc - i, argv + i) : cas_agent_fail(hr);
        cas_agent_free(&agent);
        return rc;
    }
    fprintf(stderr, "cas-agent: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
