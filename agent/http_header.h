/* The pure parts of HTTP header handling, apart from libcurl so the fuzzer can reach them.
 * Retry-After is not here: libcurl parses it (CURLINFO_RETRY_AFTER). */
#ifndef CAS_HTTP_HEADER_H
#define CAS_HTTP_HEADER_H

#include <stdint.h>

/* The first byte of a 206 answer's Content-Range value ("bytes 100-199/1000"): 1 with *start
 * set when the value starts "bytes N-", else 0 (*start untouched). */
int cas_http_content_range_start(const char *value, uint64_t *start);

/* "name: value" as one malloc'd request header line, or NULL when the value holds a CR or LF (a
 * server's ETag sent back as If-Range could otherwise inject headers) or memory runs out. */
char *cas_http_header_line(const char *name, const char *value);

#endif
