/* One poll of the management point: a conditional GET of the policy (If-None-Match /
 * If-Modified-Since from the last answer), then its signature, then the same apply as
 * `policy apply`. Whatever fails, the applied policy stays in force. */
#include "agent/policy_fetch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/keychange_fetch.h"
#include "agent/policy_store.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/policy.h"
#include "common/sig.h"

#define FETCH_VALIDATORS "mp.json" /* in <state_dir>/policy: the last answer's validators */

struct fetch_validators {
    char *etag, *last_modified;
};

/* The policy request: its body, and the validators of its answer for the next poll. */
struct fetch_ctx {
    struct cas_transfer_buf body;
    struct fetch_validators got;
};

static cas_hr fetch_on_response(void *ud, const struct cas_transfer_response *resp)
{
    struct fetch_validators *v = &((struct fetch_ctx *)ud)->got;
    free(v->etag);
    free(v->last_modified);
    v->etag = resp->etag ? strdup(resp->etag) : NULL;
    v->last_modified = resp->last_modified ? strdup(resp->last_modified) : NULL;
    return CAS_OK;
}

static cas_hr fetch_on_data(void *ud, const void *data, size_t len)
{
    return cas_transfer_buf_on_data(&((struct fetch_ctx *)ud)->body, data, len);
}

static char *fetch_path(const struct cas_agent *a, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/policy/%s", a->cfg.state_dir, name) < 0)
        return NULL;
    return p;
}

/* The validators of the last answer, for the URL they belong to. Missing or damaged: none. */
static void fetch_load_validators(const struct cas_agent *a, const char *url,
                                  struct fetch_validators *v)
{
    char *path = fetch_path(a, FETCH_VALIDATORS), *buf = NULL;
    size_t len = 0;
    cJSON *o = NULL;
    if (path && cas_fs_read_file(path, 65536, &buf, &len) == CAS_OK &&
        cas_json_parse(buf, len, 4, FETCH_VALIDATORS, &o) == CAS_OK) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "url");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "etag");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "last_modified");
        if (cJSON_IsString(u) && !strcmp(u->valuestring, url)) {
            v->etag = cJSON_IsString(e) ? strdup(e->valuestring) : NULL;
            v->last_modified = cJSON_IsString(m) ? strdup(m->valuestring) : NULL;
        }
    }
    cJSON_Delete(o);
    free(buf);
    free(path);
}

/* Best effort: without it the next poll fetches the body again, nothing worse. */
static void fetch_save_validators(const struct cas_agent *a, const char *url,
                                  const struct fetch_validators *v)
{
    char *path = fetch_path(a, FETCH_VALIDATORS);
    cJSON *o = cJSON_CreateObject();
    if (path && o && cJSON_AddStringToObject(o, "url", url) &&
        (!v->etag || cJSON_AddStringToObject(o, "etag", v->etag)) &&
        (!v->last_modified || cJSON_AddStringToObject(o, "last_modified", v->last_modified)))
        cas_json_write_atomic(path, o, 0600);
    cJSON_Delete(o);
    free(path);
}

/* 1 if `body` is byte for byte the policy already applied for its site. */
static int fetch_is_applied(const struct cas_agent *a, const struct cas_transfer_buf *body)
{
    struct cas_policy p = {0};
    char *name = NULL, *path = NULL, *buf = NULL;
    size_t len = 0;
    int same = 0;
    if (cas_policy_parse(body->data, body->len, &p) == CAS_OK &&
        asprintf(&name, "%s.json", p.site) >= 0 && (path = fetch_path(a, name)) != NULL &&
        cas_fs_read_file(path, CAS_POLICY_MAX_BYTES, &buf, &len) == CAS_OK)
        same = len == body->len && !memcmp(buf, body->data, len);
    cas_policy_free(&p);
    free(buf);
    free(path);
    free(name);
    return same;
}

cas_hr cas_policy_fetch(struct cas_agent *a, struct cas_policy *applied, int *changed)
{
    const char *url = a->cfg.management_point;
    struct fetch_validators had = {0};
    struct fetch_ctx pol = {0};
    struct cas_transfer_buf sig = {0};
    struct cas_transfer *t = NULL;
    struct cas_transfer_result res = {0};
    char *in_path = NULL, *in_sig = NULL, *dir = NULL;
    cas_hr hr;

    *changed = 0;
    if (!url)
        return cas_fail(CAS_E_BAD_CONFIG, "management_point is not configured");
    /* Key changes first, so a policy signed by a new key is accepted in this same poll. A failed
     * or refused key change is logged there and never stops the policy poll. */
    (void)cas_keychange_fetch(a);
    hr = cas_agent_transfer(a, &t);
    if (hr != CAS_OK)
        return hr;
    fetch_load_validators(a, url, &had);
    cas_log_info(CAS_LOG_POLICY, "Requesting policy from %s%s%s", url,
                 had.etag ? ", If-None-Match " : "", had.etag ? had.etag : "");
    struct cas_transfer_request req = {
        .url = url,
        .max_bytes = CAS_POLICY_MAX_BYTES,
        .if_none_match = had.etag,
        .if_modified_since = had.etag ? NULL : had.last_modified,
        .on_response = fetch_on_response,
        .on_data = fetch_on_data,
        .ud = &pol,
    };
    hr = cas_transfer_get(t, &req, &res);
    if (hr == CAS_E_HTTP_BASE + 304) {
        cas_log_info(CAS_LOG_POLICY, "Policy at %s is not modified; the applied policy stays", url);
        hr = CAS_OK;
        goto cleanup;
    }
    if (hr != CAS_OK)
        goto failed;
    hr = cas_transfer_get_signature(t, url, &sig, &res);
    int unsigned_policy = hr == CAS_E_HTTP_404;
    if (hr != CAS_OK && !unsigned_policy)
        goto failed;
    if (fetch_is_applied(a, &pol.body)) {
        cas_log_info(CAS_LOG_POLICY, "Policy at %s is the one already applied", url);
        fetch_save_validators(a, url, &pol.got);
        hr = CAS_OK;
        goto cleanup;
    }
    /* Applied from files like any policy, so every check and log line is the same. */
    dir = fetch_path(a, "");
    in_path = fetch_path(a, "incoming.json");
    in_sig = fetch_path(a, "incoming.json.sig");
    if (!dir || !in_path || !in_sig) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_fs_mkdirs(dir, 0700);
    if (hr == CAS_OK)
        hr = cas_fs_write_atomic(in_path, pol.body.data ? pol.body.data : "", pol.body.len, 0600);
    unlink(in_sig);
    if (hr == CAS_OK && !unsigned_policy)
        hr = cas_fs_write_atomic(in_sig, sig.data ? sig.data : "", sig.len, 0600);
    if (hr == CAS_OK)
        hr = cas_policy_store_apply(a, in_path, in_sig, applied);
    unlink(in_path);
    unlink(in_sig);
    if (hr == CAS_OK) {
        *changed = 1;
        fetch_save_validators(a, url, &pol.got);
    }
    goto cleanup;
failed:
    cas_log_error(CAS_LOG_POLICY,
                  "Policy request to %s failed, error 0x%08X: %s; the applied policy stays", url,
                  hr, res.detail);
    cas_fail(hr, "%s", res.detail);
cleanup:
    free(had.etag);
    free(had.last_modified);
    free(pol.got.etag);
    free(pol.got.last_modified);
    free(pol.body.data);
    free(sig.data);
    free(in_path);
    free(in_sig);
    free(dir);
    return hr;
}
