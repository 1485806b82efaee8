/* The transfer interface over libcurl's easy API: one handle reused across GETs so connections,
 * DNS and TLS sessions are kept between the files of a job. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transfer.h"

struct cas_transfer_curl {
    struct cas_transfer base;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
};

struct cas_curl_call {
    const struct cas_transfer_request *req;
    uint64_t bytes;
    cas_hr abort_hr; /* why on_data stopped the transfer */
    char abort_detail[512];
};

static size_t cas_curl_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct cas_curl_call *call = ud;
    size_t len = size * nmemb;
    if (call->bytes + len > call->req->max_bytes) {
        call->abort_hr = cas_fail(CAS_E_TOO_LARGE, "%s: more than the %llu bytes allowed",
                                  call->req->url, (unsigned long long)call->req->max_bytes);
        snprintf(call->abort_detail, sizeof(call->abort_detail), "%s", cas_err_detail());
        return 0;
    }
    cas_hr hr = call->req->on_data(call->req->ud, data, len);
    if (hr != CAS_OK) {
        call->abort_hr = hr;
        snprintf(call->abort_detail, sizeof(call->abort_detail), "%s", cas_err_detail());
        return 0;
    }
    call->bytes += len;
    return len;
}

static cas_hr cas_curl_map(CURLcode rc, int *hard)
{
    *hard = 0;
    switch (rc) {
    case CURLE_OK:
        return CAS_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        *hard = 1;
        return CAS_E_NAME_NOT_RESOLV;
    case CURLE_COULDNT_CONNECT:
        *hard = 1;
        return CAS_E_CANNOT_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return CAS_E_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        *hard = 1;
        return CAS_E_TLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
        *hard = 1;
        return CAS_E_ACCESSDENIED;
    case CURLE_FILESIZE_EXCEEDED:
        return CAS_E_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        return CAS_E_OUTOFMEMORY;
    default:
        return CAS_E_CONN_RESET;
    }
}

static cas_hr cas_curl_get(struct cas_transfer *t, const struct cas_transfer_request *req,
                           struct cas_transfer_result *res)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    struct cas_curl_call call = {.req = req, .abort_hr = CAS_OK};
    long status = 0;

    memset(res, 0, sizeof(*res));
    tc->errbuf[0] = '\0';
    curl_easy_setopt(tc->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(tc->easy, CURLOPT_WRITEFUNCTION, cas_curl_write);
    curl_easy_setopt(tc->easy, CURLOPT_WRITEDATA, &call);
    /* A Content-Length over the budget is refused before any byte is read. */
    curl_easy_setopt(tc->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_bytes);

    CURLcode rc = curl_easy_perform(tc->easy);
    curl_easy_getinfo(tc->easy, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = status;
    res->bytes = call.bytes;

    if (call.abort_hr != CAS_OK)
        return cas_fail(call.abort_hr, "%s", call.abort_detail);
    if (rc == CURLE_HTTP_RETURNED_ERROR || (rc == CURLE_OK && (status < 200 || status > 299))) {
        if (status >= 100 && status <= 599)
            return cas_fail(CAS_E_HTTP_BASE + (cas_hr)status, "%s: HTTP status %ld", req->url,
                            status);
        return cas_fail(CAS_E_CONN_RESET, "%s: no valid HTTP status", req->url);
    }
    if (rc == CURLE_FILESIZE_EXCEEDED)
        return cas_fail(CAS_E_TOO_LARGE,
                        "%s: the server announced more than the %llu bytes "
                        "allowed",
                        req->url, (unsigned long long)req->max_bytes);
    cas_hr hr = cas_curl_map(rc, &res->hard);
    if (hr != CAS_OK)
        return cas_fail(hr, "%s: %s", req->url,
                        tc->errbuf[0] ? tc->errbuf : curl_easy_strerror(rc));
    return CAS_OK;
}

static void cas_curl_destroy(struct cas_transfer *t)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    if (!tc)
        return;
    curl_easy_cleanup(tc->easy);
    free(tc);
}

cas_hr cas_transfer_curl_new(const struct cas_config *cfg, struct cas_transfer **out)
{
    static int global_done;
    struct cas_transfer_curl *tc;

    *out = NULL;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return cas_fail(CAS_E_FAIL, "libcurl could not be initialised");
        global_done = 1;
    }
    tc = calloc(1, sizeof(*tc));
    if (!tc)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    tc->easy = curl_easy_init();
    if (!tc->easy) {
        free(tc);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    tc->base.get = cas_curl_get;
    tc->base.destroy = cas_curl_destroy;

    CURL *e = tc->easy;
    const char *protocols = cfg->require_https ? "https" : "http,https";
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, tc->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cas-agent/" CAS_VERSION);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout_seconds);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, cfg->low_speed_bytes_per_second);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, cfg->low_speed_seconds);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, cfg->transfer_deadline_minutes * 60L);
    if (cfg->max_download_kbps > 0)
        curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)cfg->max_download_kbps * 125);
    if (cfg->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->tls_client_cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->tls_client_cert);
    if (cfg->tls_client_key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->tls_client_key);
    if (cfg->tls_pinned_public_key)
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, cfg->tls_pinned_public_key);
    if (cfg->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy);
    *out = &tc->base;
    return CAS_OK;
}
