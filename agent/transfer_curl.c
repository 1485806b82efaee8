/* The transfer interface over libcurl's multi API. One multi handle per agent: transfers run
 * side by side on it, and it keeps connections (HTTP/2 multiplexed where the server offers it),
 * while a share handle keeps DNS answers and TLS sessions, so a job's many files cost one
 * connection setup per server rather than one per file. */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/http_header.h"
#include "agent/transfer.h"
#include "common/fsutil.h"
#include "common/sig.h"

/* An error page is read and thrown away, but only this much of it. */
#define XFER_ERROR_BODY_MAX ((size_t)64 * 1024)

struct xfer {
    CURL *easy;
    const struct cas_transfer_request *req;
    void *tag;
    struct curl_slist *headers;
    uint64_t bytes;
    uint64_t discarded;
    int responded; /* 0 not yet, 1 a 2xx answered (on_response called), 2 an error status */
    cas_hr abort_hr;
    char abort_detail[512];
    char errbuf[CURL_ERROR_SIZE];
    struct xfer *next;
};

struct cas_transfer_curl {
    struct cas_transfer base;
    CURLM *multi;
    CURLSH *share;
    struct xfer *active;
    /* Settings copied from the configuration: the config may not outlive us. The CA, client
     * certificate and key files are read when the transfer is created, so a process that drops
     * root afterwards still has them (files that cannot be read then are left to curl by path,
     * which fails the handshake as before). */
    char *ca_file, *cert, *key, *pinned, *proxy;
    struct curl_blob ca_blob, cert_blob, key_blob;
    int watch_fd; /* wait() returns early when this is readable; -1: none */
    long connect_timeout, low_speed_limit, low_speed_time, timeout;
    int require_https;
};

static const char *xfer_header(CURL *e, const char *name)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h && h->value)
        return h->value;
    return NULL;
}

/* The first 2xx body byte (or the end of an empty 2xx body): tell the job what was answered. */
static cas_hr xfer_respond(struct xfer *x)
{
    long status = 0;
    struct cas_transfer_response resp = {0};
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        x->responded = 2;
        return CAS_OK;
    }
    x->responded = 1;
    resp.status = status;
    resp.etag = xfer_header(x->easy, "ETag");
    resp.last_modified = xfer_header(x->easy, "Last-Modified");
    if (status == 206)
        cas_http_content_range_start(xfer_header(x->easy, "Content-Range"), &resp.range_start);
    if (x->req->on_response)
        return x->req->on_response(x->req->ud, &resp);
    return CAS_OK;
}

static size_t xfer_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    cas_hr hr;

    if (!x->responded) {
        hr = xfer_respond(x);
        if (hr != CAS_OK)
            goto abort;
    }
    if (x->responded == 2) {
        x->discarded += len;
        return x->discarded > XFER_ERROR_BODY_MAX ? 0 : len;
    }
    if (x->bytes + len > x->req->max_bytes) {
        hr = cas_fail(CAS_E_TOO_LARGE, "%s: more than the %llu bytes allowed", x->req->url,
                      (unsigned long long)x->req->max_bytes);
        goto abort;
    }
    hr = x->req->on_data(x->req->ud, data, len);
    if (hr != CAS_OK)
        goto abort;
    x->bytes += len;
    return len;
abort:
    x->abort_hr = hr;
    snprintf(x->abort_detail, sizeof(x->abort_detail), "%s", cas_err_detail());
    return 0;
}

static cas_hr xfer_map(CURLcode rc, int *hard)
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
    case CURLE_UNSUPPORTED_PROTOCOL: /* locations are http(s): only a redirect gets here */
    case CURLE_TOO_MANY_REDIRECTS:
        *hard = 1;
        return CAS_E_REDIRECT;
    case CURLE_FILESIZE_EXCEEDED:
        return CAS_E_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        return CAS_E_OUTOFMEMORY;
    default:
        return CAS_E_CONN_RESET;
    }
}

static void xfer_free(struct cas_transfer_curl *tc, struct xfer *x)
{
    curl_multi_remove_handle(tc->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x);
}

/* Append "Name: value" to a header list (a NULL list starts one). A value with a line break
 * (from a server's ETag) is not sent: it could inject headers. */
static struct curl_slist *tc_header(struct curl_slist *list, const char *name, const char *value)
{
    char *h = cas_http_header_line(name, value);
    if (!h)
        return list;
    struct curl_slist *grown = curl_slist_append(list, h);
    free(h);
    return grown ? grown : list;
}

static cas_hr tc_submit(struct cas_transfer *t, const struct cas_transfer_request *req, void *tag)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x || !(x->easy = curl_easy_init())) {
        free(x);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    CURL *e = x->easy;
    const char *protocols = tc->require_https ? "https" : "http,https";
    x->req = req;
    x->tag = tag;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_SHARE, tc->share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cas-agent/" CAS_VERSION);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, tc->connect_timeout);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, tc->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, tc->low_speed_time);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, tc->timeout);
    /* Bigger reads: a 1 GiB file in 16 KiB pieces costs ~65k reads, writes and polls each. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    /* A Content-Length over the budget is refused before any byte is read. */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_bytes);
    if (tc->ca_blob.data)
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &tc->ca_blob);
    else
        curl_easy_setopt(e, CURLOPT_CAINFO, tc->ca_file);
    if (tc->cert_blob.data)
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &tc->cert_blob);
    else if (tc->cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, tc->cert);
    if (tc->key_blob.data)
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &tc->key_blob);
    else if (tc->key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, tc->key);
    if (tc->pinned)
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, tc->pinned);
    if (tc->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, tc->proxy);
    if (req->resume_from > 0) {
        char range[48];
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)req->resume_from);
        curl_easy_setopt(e, CURLOPT_RANGE, range);
        if (req->if_range)
            x->headers = tc_header(x->headers, "If-Range", req->if_range);
    }
    if (req->if_none_match)
        x->headers = tc_header(x->headers, "If-None-Match", req->if_none_match);
    if (req->if_modified_since)
        x->headers = tc_header(x->headers, "If-Modified-Since", req->if_modified_since);
    if (x->headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (curl_multi_add_handle(tc->multi, e) != CURLM_OK) {
        curl_slist_free_all(x->headers);
        curl_easy_cleanup(e);
        free(x);
        return cas_fail(CAS_E_FAIL, "cannot start a transfer of %s", req->url);
    }
    x->next = tc->active;
    tc->active = x;
    return CAS_OK;
}

/* Turn a finished easy handle into the interface's result. */
static cas_hr tc_finish(struct xfer *x, CURLcode rc, struct cas_transfer_result *res)
{
    long status = 0;
    curl_off_t retry_after = 0;
    cas_hr hr;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after);
    res->http_status = status;
    res->bytes = x->bytes;
    res->retry_after = retry_after > 0 ? (long)retry_after : -1;

    if (x->abort_hr != CAS_OK) {
        snprintf(res->detail, sizeof(res->detail), "%s", x->abort_detail);
        return x->abort_hr;
    }
    if (rc == CURLE_OK && status >= 200 && status <= 299 && !x->responded) {
        hr = xfer_respond(x); /* an empty body: on_response was not called yet */
        if (hr != CAS_OK) {
            snprintf(res->detail, sizeof(res->detail), "%s", cas_err_detail());
            return hr;
        }
    }
    if ((rc == CURLE_OK || x->responded == 2) && (status < 200 || status > 299)) {
        if (status >= 100 && status <= 599) {
            snprintf(res->detail, sizeof(res->detail), "%s: HTTP status %ld", x->req->url, status);
            return CAS_E_HTTP_BASE + (cas_hr)status;
        }
        snprintf(res->detail, sizeof(res->detail), "%s: no valid HTTP status", x->req->url);
        return CAS_E_CONN_RESET;
    }
    if (rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(res->detail, sizeof(res->detail),
                 "%s: the server announced more than the %llu bytes allowed", x->req->url,
                 (unsigned long long)x->req->max_bytes);
        return CAS_E_TOO_LARGE;
    }
    hr = xfer_map(rc, &res->hard);
    if (hr != CAS_OK)
        snprintf(res->detail, sizeof(res->detail), "%s: %s", x->req->url,
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    return hr;
}

static double tc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int tc_wait(struct cas_transfer *t, int timeout_ms, void **tag, cas_hr *hr,
                   struct cas_transfer_result *res)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    double end = tc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int running = 0, queued = 0;
        curl_multi_perform(tc->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(tc->multi, &queued)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL, **pp;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = m->data.result;
            memset(res, 0, sizeof(*res));
            *hr = tc_finish(x, rc, res);
            *tag = x->tag;
            for (pp = &tc->active; *pp; pp = &(*pp)->next) {
                if (*pp == x) {
                    *pp = x->next;
                    break;
                }
            }
            xfer_free(tc, x);
            if (*hr != CAS_OK)
                cas_fail(*hr, "%s", res->detail);
            return 1;
        }
        double left = end - tc_now_ms();
        if (left <= 0)
            return 0;
        struct curl_waitfd wfd = {.fd = tc->watch_fd, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(tc->multi, tc->watch_fd >= 0 ? &wfd : NULL, tc->watch_fd >= 0 ? 1 : 0,
                        (int)(left < 100 ? left + 1 : 100), NULL);
        if (tc->watch_fd >= 0 && (wfd.revents & CURL_WAIT_POLLIN))
            return 0;
    }
}

static void tc_cancel_all(struct cas_transfer *t)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    while (tc->active) {
        struct xfer *x = tc->active;
        tc->active = x->next;
        xfer_free(tc, x);
    }
}

void cas_transfer_curl_cancel(struct cas_transfer *t, void *tag)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    for (struct xfer **pp = &tc->active; *pp; pp = &(*pp)->next) {
        if ((*pp)->tag == tag) {
            struct xfer *x = *pp;
            *pp = x->next;
            xfer_free(tc, x);
            return;
        }
    }
}

static void tc_destroy(struct cas_transfer *t)
{
    struct cas_transfer_curl *tc = (struct cas_transfer_curl *)t;
    if (!tc)
        return;
    tc_cancel_all(t);
    curl_multi_cleanup(tc->multi);
    curl_share_cleanup(tc->share);
    free(tc->ca_blob.data);
    free(tc->cert_blob.data);
    if (tc->key_blob.data)
        OPENSSL_cleanse(tc->key_blob.data, tc->key_blob.len);
    free(tc->key_blob.data);
    free(tc->ca_file);
    free(tc->cert);
    free(tc->key);
    free(tc->pinned);
    free(tc->proxy);
    free(tc);
}

cas_hr cas_transfer_buf_on_data(void *ud, const void *data, size_t len)
{
    struct cas_transfer_buf *m = ud;
    if (m->len + len + 1 > m->cap) {
        size_t ncap = m->cap ? m->cap : 4096;
        while (ncap < m->len + len + 1)
            ncap *= 2;
        char *n = realloc(m->data, ncap);
        if (!n)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        m->data = n;
        m->cap = ncap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    m->data[m->len] = '\0';
    return CAS_OK;
}

cas_hr cas_transfer_get(struct cas_transfer *t, const struct cas_transfer_request *req,
                        struct cas_transfer_result *res)
{
    int tag = 0;
    void *done = NULL;
    cas_hr hr = t->submit(t, req, &tag);
    if (hr != CAS_OK)
        return hr;
    while (!t->wait(t, 1000, &done, &hr, res))
        ;
    return hr;
}

cas_hr cas_transfer_get_signature(struct cas_transfer *t, const char *doc_url,
                                  struct cas_transfer_buf *sig, struct cas_transfer_result *res)
{
    char *sig_url = NULL;
    if (asprintf(&sig_url, "%s.sig", doc_url) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    struct cas_transfer_request req = {.url = sig_url,
                                       .max_bytes = CAS_SIG_MAX_BYTES,
                                       .on_data = cas_transfer_buf_on_data,
                                       .ud = sig};
    memset(res, 0, sizeof(*res));
    cas_hr hr = cas_transfer_get(t, &req, res);
    free(sig_url);
    return hr;
}

/* Read a TLS file now, while it can still be read. */
static void tc_load_blob(const char *path, struct curl_blob *blob)
{
    char *data = NULL;
    size_t len = 0;
    if (!path || cas_fs_read_file(path, (size_t)1024 * 1024, &data, &len) != CAS_OK)
        return;
    blob->data = data;
    blob->len = len;
    blob->flags = CURL_BLOB_NOCOPY;
}

/* A pin given as a key file becomes "sha256//<base64>" of the key's SubjectPublicKeyInfo, the
 * form curl matches without opening a file at handshake time. NULL if the file does not load. */
static char *tc_pin_from_file(const char *path)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char *out = NULL, *data = NULL;
    size_t len = 0;
    EVP_PKEY *pk = NULL;
    BIO *bio = NULL;
    int der_len;

    if (cas_fs_read_file(path, (size_t)1024 * 1024, &data, &len) != CAS_OK)
        return NULL;
    bio = BIO_new_mem_buf(data, (int)len);
    if (bio)
        pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pk) {
        const unsigned char *p = (const unsigned char *)data;
        pk = d2i_PUBKEY(NULL, &p, (long)len);
    }
    if (!pk || (der_len = i2d_PUBKEY(pk, &der)) <= 0 ||
        !EVP_Digest(der, (size_t)der_len, md, &md_len, EVP_sha256(), NULL))
        goto cleanup;
    out = malloc(8 + 4 * ((md_len + 2) / 3) + 1);
    if (out) {
        memcpy(out, "sha256//", 8);
        EVP_EncodeBlock((unsigned char *)out + 8, md, (int)md_len);
    }
cleanup:
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    free(data);
    return out;
}

void cas_transfer_curl_watch(struct cas_transfer *t, int fd)
{
    ((struct cas_transfer_curl *)t)->watch_fd = fd;
}

static char *dup_opt(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

cas_hr cas_transfer_curl_new(const struct cas_config *cfg, struct cas_transfer **out)
{
    static int global_done;
    struct cas_transfer_curl *tc;
    int failed = 0;

    *out = NULL;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return cas_fail(CAS_E_FAIL, "libcurl could not be initialised");
        global_done = 1;
    }
    tc = calloc(1, sizeof(*tc));
    if (!tc)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    tc->base.submit = tc_submit;
    tc->base.wait = tc_wait;
    tc->base.cancel_all = tc_cancel_all;
    tc->base.destroy = tc_destroy;
    tc->multi = curl_multi_init();
    tc->share = curl_share_init();
    tc->ca_file = dup_opt(cfg->ca_file, &failed);
    tc->cert = dup_opt(cfg->tls_client_cert, &failed);
    tc->key = dup_opt(cfg->tls_client_key, &failed);
    tc->watch_fd = -1;
    if (cfg->tls_pinned_public_key && strncmp(cfg->tls_pinned_public_key, "sha256//", 8) != 0)
        tc->pinned = tc_pin_from_file(cfg->tls_pinned_public_key);
    if (!tc->pinned)
        tc->pinned = dup_opt(cfg->tls_pinned_public_key, &failed);
    tc_load_blob(cfg->ca_file, &tc->ca_blob);
    tc_load_blob(cfg->tls_client_cert, &tc->cert_blob);
    tc_load_blob(cfg->tls_client_key, &tc->key_blob);
    tc->proxy = dup_opt(cfg->proxy, &failed);
    if (!tc->multi || !tc->share || failed) {
        tc_destroy(&tc->base);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    tc->connect_timeout = cfg->connect_timeout_seconds;
    tc->low_speed_limit = cfg->low_speed_bytes_per_second;
    tc->low_speed_time = cfg->low_speed_seconds;
    tc->timeout = cfg->transfer_deadline_minutes * 60L;
    tc->require_https = cfg->require_https;
    curl_share_setopt(tc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(tc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(tc->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(tc->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->max_parallel_transfers);
    *out = &tc->base;
    return CAS_OK;
}
