/* cas-agent log: placeholder (being written) */
#include <stdio.h>

#include "agent/agent.h"

int cas_cmd_log(struct cas_agent *a, int argc, char **argv)
{
    (void)a;
    (void)argc;
    (void)argv;
    fputs("cas-agent: log is not available yet\n", stderr);
    return 2;
}
