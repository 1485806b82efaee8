/* HTTP header helpers without libcurl (see http_header.h). */
#include <stdio.h>
#include <string.h>

#include "agent/http_header.h"

int cas_http_content_range_start(const char *value, uint64_t *start)
{
    unsigned long long n = 0;
    if (!value || sscanf(value, "bytes %llu-", &n) != 1)
        return 0;
    *start = n;
    return 1;
}

char *cas_http_header_line(const char *name, const char *value)
{
    char *h = NULL;
    if (strpbrk(value, "\r\n") || asprintf(&h, "%s: %s", name, value) < 0)
        return NULL;
    return h;
}
