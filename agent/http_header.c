/* HTTP header helpers without libcurl (see http_header.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/http_header.h"

int cas_http_content_range_start(const char *value, uint64_t *start)
{
    const char *p;
    char *end = NULL;
    unsigned long long n;

    if (!value || strncmp(value, "bytes", 5) != 0)
        return 0;
    for (p = value + 5; isspace((unsigned char)*p); p++)
        ;
    /* strtoull (as sscanf's %llu) would take "-1" as 2^64 - 1 and clamp an overflow: only
     * digits, and a number that fits. */
    if (!isdigit((unsigned char)*p))
        return 0;
    errno = 0;
    n = strtoull(p, &end, 10);
    if (errno == ERANGE || *end != '-')
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
