/* A small transfer interface, so the download logic never touches curl directly: one GET that
 * streams the body to a callback. transfer_curl.c implements it with libcurl. */
#ifndef CAS_TRANSFER_H
#define CAS_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"

struct cas_transfer_request {
    const char *url;
    uint64_t max_bytes; /* a body longer than this is cut and fails with CAS_E_TOO_LARGE */
    /* Receives the body in pieces; returns CAS_OK or a failure that aborts the transfer. */
    cas_hr (*on_data)(void *ud, const void *data, size_t len);
    void *ud;
};

struct cas_transfer_result {
    long http_status; /* 0 when no response arrived */
    uint64_t bytes;   /* body bytes delivered to on_data */
    int hard;         /* the location is unusable for the rest of the job (DNS, TLS, refused) */
};

struct cas_transfer {
    /* Perform one GET. Returns CAS_OK for a 2xx response fully delivered, else a code: HTTP
     * errors as CAS_E_HTTP_BASE + status, network errors as CAS_E_CANNOT_CONNECT, ... with a
     * detail naming the URL. */
    cas_hr (*get)(struct cas_transfer *t, const struct cas_transfer_request *req,
                  struct cas_transfer_result *res);
    void (*destroy)(struct cas_transfer *t);
};

/* The libcurl implementation, configured from the agent configuration (timeouts, TLS, proxy,
 * require_https, bandwidth cap). */
cas_hr cas_transfer_curl_new(const struct cas_config *cfg, struct cas_transfer **out);

#endif
