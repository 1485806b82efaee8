/* cas-agent errinfo CODE: the name and meaning of a code, from the one error table. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"

int cas_cmd_errinfo(int argc, char **argv)
{
    cas_hr code;
    if (argc != 2) {
        fputs("usage: cas-agent errinfo CODE | --all   (CODE: 0x80091007, 80091007 or decimal)\n",
              stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--all")) {
        /* Every code the agent can produce, one per line: code, name, message. */
        for (unsigned i = 0; (code = cas_err_at(i)) != CAS_OK; i++)
            printf("0x%08X %s %s\n", code, cas_err_name(code), cas_err_message(code));
        return 0;
    }
    if (cas_err_parse(argv[1], &code) != 0) {
        fprintf(stderr, "cas-agent: '%s' is not an error code\n", argv[1]);
        return 2;
    }
    if (!cas_err_known(code)) {
        fprintf(stderr, "cas-agent: error 0x%08X is not a code this agent produces\n", code);
        return 1;
    }
    printf("0x%08X %s\n%s\n", code, cas_err_name(code), cas_err_message(code));
    return 0;
}
