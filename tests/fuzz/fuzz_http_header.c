/* libFuzzer target: the HTTP header handling the agent does itself (agent/http_header.h): the
 * Content-Range start of a 206 answer, and the request header line built from a server's ETag
 * (sent back as If-Range). Header values reach us as C strings, so the input is cut at its first
 * NUL. Retry-After is parsed by libcurl, not here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/http_header.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = strndup((const char *)data, size);
    uint64_t start = 42;

    check(value != NULL);
    if (!cas_http_content_range_start(value, &start))
        check(start == 42);
    char *line = cas_http_header_line("If-Range", value);
    if (line) {
        check(strpbrk(line, "\r\n") == NULL);
        check(strncmp(line, "If-Range: ", 10) == 0 && strcmp(line + 10, value) == 0);
    } else {
        check(strpbrk(value, "\r\n") != NULL);
    }
    free(line);
    free(value);
    return 0;
}
