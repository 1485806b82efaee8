/* Key changes from the management point: <SITE>.keychange and its .sig next to the policy, checked
 * before each policy request. The document is small and read whole each poll, with no validators:
 * a conditional request would need state of its own, and the policy's ETag must stay the
 * policy's. */
#include "agent/keychange_fetch.h"
#include "agent/sandbox.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keychange.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sig.h"

#define KC_MAX_SITES 256 /* trusted keys looked at when no site is configured */

char *cas_keychange_url(const char *management_point, const char *site)
{
    const char *mp = management_point, *host;
    char *url = NULL;

    if (!mp || !site)
        return NULL;
    if (strncmp(mp, "http://", 7) == 0)
        host = mp + 7;
    else if (strncmp(mp, "https://", 8) == 0)
        host = mp + 8;
    else
        return NULL;
    /* The configuration refuses a query or fragment in management_point; were one there, the
     * document is still next to the path, never inside the query. */
    size_t end = strcspn(mp, "?#");
    const char *path = memchr(host, '/', end - (size_t)(host - mp));
    size_t keep;
    if (!path) {
        keep = end; /* "http://mp": the document is at the root */
    } else {
        keep = (size_t)(path - mp) + 1;
        for (size_t i = keep; i < end; i++) {
            if (mp[i] == '/')
                keep = i + 1;
        }
    }
    if (asprintf(&url, "%.*s%s%s%s", (int)keep, mp, path ? "" : "/", site, CAS_KEYCHANGE_SUFFIX) <
        0)
        return NULL;
    return url;
}

/* Runs in the sandbox: "SITE KEYID" of a key-change document. */
static cas_hr kc_peek(const char *in, size_t in_len, char *answer, size_t size)
{
    char site[4], key_id[CAS_KEYID_HEX + 1];
    uint64_t serial = 0;
    cas_hr hr = cas_keychange_read_hint(in, in_len, site, key_id, &serial);
    if (hr == CAS_OK)
        snprintf(answer, size, "%s %s %llu", site, key_id, (unsigned long long)serial);
    return hr;
}

/* The reader cas_keychange_apply uses before the signature is checked: root never parses a
 * key-change document the trusted key has not verified. */
static cas_hr kc_sandboxed_reader(const void *doc, size_t doc_len, char site[4],
                                  char key_id[CAS_KEYID_HEX + 1], uint64_t *serial)
{
    char answer[64], *end = NULL;
    const char *num = answer + 5 + CAS_KEYID_HEX;
    unsigned long long n = 0;
    cas_hr hr = cas_sandbox_ask(kc_peek, doc, doc_len, answer, sizeof(answer));
    if (hr != CAS_OK)
        return hr;
    /* The serial is digits only and must fit: strtoull alone would take a sign or spaces and
     * turn "-1" into 2^64 - 1, and sscanf's %llu may do anything on an overflow. */
    if (strlen(answer) >= 3 + 1 + CAS_KEYID_HEX + 2 && answer[3] == ' ' &&
        answer[4 + CAS_KEYID_HEX] == ' ' && isdigit((unsigned char)*num)) {
        errno = 0;
        n = strtoull(num, &end, 10);
    }
    if (!end || errno == ERANGE || *end != '\0')
        return cas_fail(CAS_E_INVALID_DATA, "the sandboxed key-change reader gave no answer");
    memcpy(site, answer, 3);
    site[3] = '\0';
    memcpy(key_id, answer + 4, CAS_KEYID_HEX);
    key_id[CAS_KEYID_HEX] = '\0';
    *serial = n;
    return CAS_OK;
}

static int cmp_site(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

/* The sites with a trusted key, sorted: the ones whose key could change. */
static size_t trusted_sites(const char *dir, char (*sites)[4], size_t max)
{
    size_t n = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < max) {
        if (strlen(de->d_name) != 7 || strcmp(de->d_name + 3, ".pem") != 0)
            continue;
        memcpy(sites[n], de->d_name, 3);
        sites[n][3] = '\0';
        if (cas_id_is_site(sites[n]))
            n++;
    }
    closedir(d);
    qsort(sites, n, sizeof(sites[0]), cmp_site);
    return n;
}

static cas_hr fetch_site(struct cas_agent *a, struct cas_transfer *t, const char *site)
{
    struct cas_transfer_buf doc = {0}, sig = {0};
    struct cas_transfer_result res = {0};
    char *url = cas_keychange_url(a->cfg.management_point, site);
    const char *failed_suffix = "";
    cas_hr hr;

    if (!url) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        cas_log_error(CAS_LOG_POLICY, "Key change for site %s not checked, error 0x%08X: %s", site,
                      hr, cas_err_detail());
        goto cleanup;
    }
    struct cas_transfer_request req = {.url = url,
                                       .max_bytes = CAS_KEYCHANGE_MAX_BYTES,
                                       .on_data = cas_transfer_buf_on_data,
                                       .ud = &doc};
    hr = cas_transfer_get(t, &req, &res);
    if (hr == CAS_E_HTTP_404) {
        cas_log_verbose(CAS_LOG_POLICY, "No key change published for site %s at %s", site, url);
        hr = CAS_OK;
        goto cleanup;
    }
    if (hr != CAS_OK)
        goto failed;
    hr = cas_transfer_get_signature(t, url, &sig, &res);
    int no_sig = hr == CAS_E_HTTP_404; /* refused by the apply, unless nothing changes */
    if (hr != CAS_OK && !no_sig) {
        failed_suffix = ".sig";
        goto failed;
    }
    cas_keychange_set_reader(kc_sandboxed_reader);
    hr = cas_keychange_apply(url, site, doc.data ? doc.data : "", doc.len,
                             no_sig ? NULL : (sig.data ? sig.data : ""), sig.len,
                             a->cfg.trusted_keys_dir, a->cfg.state_dir, NULL);
    goto cleanup;
failed:
    cas_log_error(CAS_LOG_POLICY, "Key change request to %s%s failed, error 0x%08X: %s", url,
                  failed_suffix, hr, res.detail);
    cas_fail(hr, "%s", res.detail);
cleanup:
    free(doc.data);
    free(sig.data);
    free(url);
    return hr;
}

cas_hr cas_keychange_fetch(struct cas_agent *a)
{
    char sites[KC_MAX_SITES][4];
    struct cas_transfer *t = NULL;
    size_t n;
    cas_hr hr, last = CAS_OK;

    if (!a->cfg.management_point)
        return cas_fail(CAS_E_BAD_CONFIG, "management_point is not configured");
    if (a->cfg.site) {
        memcpy(sites[0], a->cfg.site, 3);
        sites[0][3] = '\0';
        n = 1;
    } else {
        n = trusted_sites(a->cfg.trusted_keys_dir, sites, KC_MAX_SITES);
        if (n == 0) {
            cas_log_verbose(CAS_LOG_POLICY, "No trusted site key in %s: no key change to check",
                            a->cfg.trusted_keys_dir);
            return CAS_OK;
        }
    }
    hr = cas_agent_transfer(a, &t);
    if (hr != CAS_OK)
        return hr;
    for (size_t i = 0; i < n; i++) {
        hr = fetch_site(a, t, sites[i]);
        if (hr != CAS_OK)
            last = hr;
    }
    return last;
}
