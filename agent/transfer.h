/* A small transfer interface, so the download logic never touches curl directly: GETs that
 * stream their body to callbacks, several at once. transfer_curl.c implements it with the libcurl
 * multi interface (connections, DNS and TLS sessions reused); unit tests inject their own. */
#ifndef CAS_TRANSFER_H
#define CAS_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"

/* What the server answered, given to on_response before the first body byte. */
struct cas_transfer_response {
    long status;          /* 200, 206, ... (after redirects) */
    uint64_t range_start; /* 206: first byte of the Content-Range; else 0 */
    const char *etag;     /* NULL if absent */
    const char *last_modified;
};

struct cas_transfer_request {
    const char *url;
    uint64_t max_bytes;   /* a body longer than this is cut and fails with CAS_E_TOO_LARGE */
    uint64_t resume_from; /* > 0: ask for "Range: bytes=N-" */
    const char *if_range; /* with resume_from: the validator for If-Range, or NULL */
    /* Conditional GET (policy polling): an unchanged resource answers 304, which fails with
     * CAS_E_HTTP_BASE + 304 and no body. NULL: not sent. */
    const char *if_none_match;
    const char *if_modified_since;
    /* Called once for a 2xx response before any body byte; a failure aborts the transfer. */
    cas_hr (*on_response)(void *ud, const struct cas_transfer_response *resp);
    /* Receives the body in pieces; returns CAS_OK or a failure that aborts the transfer. */
    cas_hr (*on_data)(void *ud, const void *data, size_t len);
    void *ud;
};

struct cas_transfer_result {
    long http_status; /* 0 when no response arrived */
    uint64_t bytes;   /* body bytes delivered to on_data */
    int hard;         /* the location is unusable for the rest of the job (DNS, TLS, refused) */
    long retry_after; /* seconds the server asked to wait (Retry-After), or -1 */
    char detail[512]; /* what went wrong, naming the URL */
};

struct cas_transfer {
    /* Start a GET; `req` must stay valid until its completion is returned by wait(). */
    cas_hr (*submit)(struct cas_transfer *t, const struct cas_transfer_request *req, void *tag);
    /* Wait at most timeout_ms for a transfer to end. Returns 1 with *tag, *hr (CAS_OK for a 2xx
     * response fully delivered, HTTP errors as CAS_E_HTTP_BASE + status, network errors as
     * CAS_E_CANNOT_CONNECT, CAS_E_TIMEOUT ...) and *res filled; 0 if none ended in time. */
    int (*wait)(struct cas_transfer *t, int timeout_ms, void **tag, cas_hr *hr,
                struct cas_transfer_result *res);
    /* Abort every transfer in flight; their completions are not reported. */
    void (*cancel_all)(struct cas_transfer *t);
    void (*destroy)(struct cas_transfer *t);
    /* Optional (NULL: always): 0 once the transfer can serve nothing more (its process died);
     * the owner then destroys it and makes a new one. */
    int (*usable)(struct cas_transfer *t);
};

/* A body kept in memory: pass cas_transfer_buf_on_data as on_data and the buffer as ud. data is
 * NUL-terminated (for parsers) and malloc'd: free it. */
struct cas_transfer_buf {
    char *data;
    size_t len, cap;
};
cas_hr cas_transfer_buf_on_data(void *ud, const void *data, size_t len);

/* One blocking GET on top of submit/wait (nothing else may be in flight). Sets the detail. */
cas_hr cas_transfer_get(struct cas_transfer *t, const struct cas_transfer_request *req,
                        struct cas_transfer_result *res);

/* GET the detached signature of the document at doc_url (doc_url + ".sig", at most
 * CAS_SIG_MAX_BYTES) into *sig. CAS_E_HTTP_404 when none is published (the caller decides what an
 * unsigned document means); any other failure as cas_transfer_get. */
cas_hr cas_transfer_get_signature(struct cas_transfer *t, const char *doc_url,
                                  struct cas_transfer_buf *sig, struct cas_transfer_result *res);

/* The libcurl implementation, configured from the agent configuration (timeouts, TLS, proxy,
 * require_https). */
cas_hr cas_transfer_curl_new(const struct cas_config *cfg, struct cas_transfer **out);

/* Make a curl transfer's wait() return 0 as soon as fd is readable (-1: never), so its owner can
 * serve another input while transfers run. */
void cas_transfer_curl_watch(struct cas_transfer *t, int fd);

/* Abort the curl transfer submitted with `tag`; its completion is not reported. */
void cas_transfer_curl_cancel(struct cas_transfer *t, void *tag);

#endif
