/* Applying a policy: signature, site, replay and expiry checks, then an atomic store. */
#include "agent/policy_store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent/sandbox.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sig.h"
#include "common/timefmt.h"

static char *store_path(struct cas_agent *a, const char *site, const char *suffix)
{
    char *p = NULL;
    if (asprintf(&p, "%s/policy/%s%s", a->cfg.state_dir, site, suffix) < 0)
        return NULL;
    return p;
}

/* The highest serial applied for the site (0 if none). A state file that exists but cannot be
 * read is an error, never "no state": treating it as 0 would reopen the door to replays. */
static cas_hr store_read_serial(struct cas_agent *a, const char *site, uint64_t *serial)
{
    char *path = store_path(a, site, ".state.json");
    *serial = 0;
    if (!path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    cas_hr hr = cas_json_read_serial(path, serial);
    free(path);
    return hr;
}

static cas_hr store_write(struct cas_agent *a, const struct cas_policy *p, const char *raw,
                          size_t raw_len, const void *sig, size_t sig_len, const char *keyid)
{
    char *dir = NULL, *json = NULL, *sigp = NULL, *statep = NULL, *state = NULL;
    char now[32];
    cas_hr hr;

    if (asprintf(&dir, "%s/policy", a->cfg.state_dir) < 0) {
        dir = NULL;
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    json = store_path(a, p->site, ".json");
    sigp = store_path(a, p->site, ".json.sig");
    statep = store_path(a, p->site, ".state.json");
    cas_time_format(cas_clock_now(), now, sizeof(now));
    if (!json || !sigp || !statep ||
        asprintf(&state, "{\"site\":\"%s\",\"serial\":%llu,\"key_id\":\"%s\",\"applied\":\"%s\"}\n",
                 p->site, (unsigned long long)p->serial, keyid, now) < 0) {
        state = NULL;
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_fs_mkdirs(dir, 0755);
    if (hr != CAS_OK)
        goto cleanup;
    /* The policy first, the serial last: a crash in between leaves the new policy with the old
     * serial, which the same policy can simply be applied over again. */
    if (sig)
        hr = cas_fs_write_atomic(sigp, sig, sig_len, 0644);
    else if (unlink(sigp) != 0 && errno != ENOENT)
        hr = cas_fail(cas_err_from_errno(errno), "removing %s: %s", sigp, strerror(errno));
    if (hr == CAS_OK)
        hr = cas_fs_write_atomic(json, raw, raw_len, 0644);
    if (hr == CAS_OK)
        hr = cas_fs_write_atomic(statep, state, strlen(state), 0644);
cleanup:
    free(dir);
    free(json);
    free(sigp);
    free(statep);
    free(state);
    return hr;
}

static cas_hr store_refuse(const char *path, cas_hr hr)
{
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", cas_err_detail());
    cas_log_error(CAS_LOG_POLICY, "Policy %s refused: %s, error 0x%08X", path, detail, hr);
    return cas_fail(hr, "policy %s refused: %s", path, detail);
}

/* Runs in the sandbox: the site a document claims. */
static cas_hr store_peek(const char *in, size_t in_len, char *answer, size_t size)
{
    struct cas_policy p = {0};
    cas_hr hr = cas_policy_parse(in, in_len, &p);
    if (hr == CAS_OK)
        snprintf(answer, size, "%s", p.site);
    cas_policy_free(&p);
    return hr;
}

/* Verify before parse: root parses a policy only once its signature verified (or, unsigned,
 * when the administrator allowed that). The key is chosen by the site the document names, which
 * a sandboxed child reads; a child misled by a hostile document can only name the wrong key,
 * and then the signature does not verify. */
static cas_hr store_site_hint(const char *raw, size_t raw_len, char site[4])
{
    char answer[8];
    cas_hr hr = cas_sandbox_ask(store_peek, raw, raw_len, answer, sizeof(answer));
    if (hr != CAS_OK)
        return hr;
    if (!cas_id_is_site(answer))
        return cas_fail(CAS_E_INVALID_DATA, "the sandboxed policy reader gave no site code");
    memcpy(site, answer, 4);
    return CAS_OK;
}

cas_hr cas_policy_store_apply(struct cas_agent *a, const char *path, const char *sig_path,
                              struct cas_policy *applied)
{
    struct cas_policy p = {0};
    char *raw = NULL, *sig = NULL, *keypath = NULL, *default_sig = NULL;
    size_t raw_len = 0, sig_len = 0;
    char keyid[CAS_KEYID_HEX + 1] = "none";
    char when[32], site[4] = "";
    uint64_t last = 0;
    time_t now = cas_clock_now(); /* read once: every check of this apply sees the same time */
    cas_hr hr;

    cas_log_info(CAS_LOG_POLICY, "Evaluating policy %s", path);
    hr = cas_fs_read_file(path, CAS_POLICY_MAX_BYTES, &raw, &raw_len);
    if (hr == CAS_OK)
        hr = store_site_hint(raw, raw_len, site);
    if (hr != CAS_OK)
        goto refused;
    if (a->cfg.site && strcmp(a->cfg.site, site) != 0) {
        hr = cas_fail(CAS_E_SITE_MISMATCH,
                      "the policy is for site %s, this agent is assigned to "
                      "site %s",
                      site, a->cfg.site);
        goto refused;
    }

    if (!sig_path) {
        if (asprintf(&default_sig, "%s.sig", path) < 0) {
            default_sig = NULL;
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto refused;
        }
        sig_path = default_sig;
    }
    hr = cas_fs_read_file(sig_path, CAS_SIG_MAX_BYTES, &sig, &sig_len);
    if (hr == CAS_E_FILE_MISSING) {
        if (a->cfg.require_signed_policy) {
            hr = cas_fail(CAS_E_NO_SIGNATURE,
                          "no signature file %s (unsigned policy is refused "
                          "while require_signed_policy is true)",
                          sig_path);
            goto refused;
        }
        cas_log_warn(CAS_LOG_POLICY,
                     "Accepting UNSIGNED policy %s for site %s because require_signed_policy is "
                     "false",
                     path, site);
        hr = cas_policy_parse(raw, raw_len, &p); /* unauthenticated, as configured */
        if (hr != CAS_OK)
            goto refused;
    } else if (hr == CAS_E_TOO_LARGE) {
        hr = cas_fail(CAS_E_BAD_SIGNATURE, "signature file %s is larger than %u bytes", sig_path,
                      CAS_SIG_MAX_BYTES);
        goto refused;
    } else if (hr != CAS_OK) {
        goto refused;
    } else {
        /* A signature that is present is always checked, whatever require_signed_policy says. */
        keypath = cas_sig_trusted_key_path(a->cfg.trusted_keys_dir, site);
        if (!keypath) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto refused;
        }
        hr = cas_sig_verify_file(keypath, raw, raw_len, sig, sig_len, keyid);
        if (hr == CAS_E_UNTRUSTED_SITE) {
            hr = cas_fail(hr, "no trusted key for site %s (%s does not exist)", site, keypath);
            goto refused;
        }
        if (hr == CAS_E_BAD_SIGNATURE) {
            hr = cas_fail(hr,
                          "the signature %s does not verify with the key trusted for site %s "
                          "(key id %s)",
                          sig_path, site, keyid);
            goto refused;
        }
        if (hr != CAS_OK)
            goto refused;
        /* Authenticated now: root parses it. */
        hr = cas_policy_parse(raw, raw_len, &p);
        if (hr != CAS_OK)
            goto refused;
        if (strcmp(p.site, site) != 0) {
            hr = cas_fail(CAS_E_BAD_SIGNATURE,
                          "the policy names site %s but its signature is by the key of site %s",
                          p.site, site);
            goto refused;
        }
        cas_log_info(CAS_LOG_POLICY,
                     "Signature of policy for site %s, serial %llu verified with "
                     "key %s",
                     p.site, (unsigned long long)p.serial, keyid);
    }

    hr = store_read_serial(a, p.site, &last);
    if (hr != CAS_OK)
        goto refused;
    if (p.serial <= last) {
        hr = cas_fail(CAS_E_POLICY_REPLAY,
                      "serial %llu is not higher than serial %llu already applied for site %s "
                      "(replayed or rolled-back policy)",
                      (unsigned long long)p.serial, (unsigned long long)last, p.site);
        goto refused;
    }
    if (cas_policy_is_expired(&p, now)) {
        cas_time_format(p.expires, when, sizeof(when));
        hr = cas_fail(CAS_E_POLICY_EXPIRED, "the policy expired at %s", when);
        goto refused;
    }

    hr = store_write(a, &p, raw, raw_len, sig, sig ? sig_len : 0, keyid);
    if (hr != CAS_OK)
        goto refused;
    if (p.expires)
        cas_time_format(p.expires, when, sizeof(when));
    cas_log_info(CAS_LOG_POLICY,
                 "Applied policy for site %s, serial %llu (previous %llu), %zu advertisement(s), "
                 "expires %s",
                 p.site, (unsigned long long)p.serial, (unsigned long long)last, p.n_adverts,
                 p.expires ? when : "never");
    for (size_t i = 0; i < p.n_adverts; i++) {
        const struct cas_advert *ad = &p.adverts[i];
        cas_log_verbose(CAS_LOG_POLICY,
                        "Advertisement %s: content %s, program %s, context %s, %s, rerun %s",
                        ad->id, ad->content_id, ad->program.command, ad->program.context,
                        ad->mandatory ? "mandatory" : "available", cas_rerun_name(ad->rerun));
    }
    if (applied) {
        *applied = p;
        memset(&p, 0, sizeof(p));
    }
    goto cleanup;

refused:
    hr = store_refuse(path, hr);
cleanup:
    cas_policy_free(&p);
    free(raw);
    free(sig);
    free(keypath);
    free(default_sig);
    return hr;
}

static cas_hr store_load_site(struct cas_agent *a, const char *site, struct cas_policy *out)
{
    char *path = store_path(a, site, ".json"), *raw = NULL;
    size_t len = 0;
    cas_hr hr;
    if (!path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_read_file(path, CAS_POLICY_MAX_BYTES, &raw, &len);
    if (hr == CAS_OK) {
        hr = cas_policy_parse(raw, len, out);
        if (hr != CAS_OK)
            hr = cas_fail(hr, "stored policy %s: %s", path, cas_err_detail());
    }
    free(raw);
    free(path);
    return hr;
}

cas_hr cas_policy_store_load_all(struct cas_agent *a, struct cas_policy **out, size_t *count)
{
    struct cas_policy *list = NULL;
    size_t n = 0;
    cas_hr hr = CAS_OK;
    char *dir = NULL;
    DIR *d = NULL;

    *out = NULL;
    *count = 0;
    if (a->cfg.site) {
        list = calloc(1, sizeof(*list));
        if (!list)
            return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        hr = store_load_site(a, a->cfg.site, &list[0]);
        if (hr == CAS_E_FILE_MISSING) {
            free(list);
            return CAS_OK;
        }
        if (hr != CAS_OK) {
            free(list);
            return hr;
        }
        *out = list;
        *count = 1;
        return CAS_OK;
    }
    if (asprintf(&dir, "%s/policy", a->cfg.state_dir) < 0)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    d = opendir(dir);
    free(dir);
    if (!d)
        return CAS_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char site[4];
        if (strlen(de->d_name) != 8 || strcmp(de->d_name + 3, ".json") != 0)
            continue;
        memcpy(site, de->d_name, 3);
        site[3] = '\0';
        if (!cas_id_is_site(site))
            continue;
        struct cas_policy *grown = realloc(list, (n + 1) * sizeof(*list));
        if (!grown) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            break;
        }
        list = grown;
        memset(&list[n], 0, sizeof(list[n]));
        hr = store_load_site(a, site, &list[n]);
        if (hr != CAS_OK)
            break;
        n++;
    }
    closedir(d);
    if (hr != CAS_OK) {
        for (size_t i = 0; i < n; i++)
            cas_policy_free(&list[i]);
        free(list);
        return hr;
    }
    *out = list;
    *count = n;
    return CAS_OK;
}

cas_hr cas_policy_store_find(struct cas_agent *a, const char *id, int by_content,
                             struct cas_policy *pol_out, const struct cas_advert **ad_out)
{
    struct cas_policy *list = NULL;
    size_t n = 0, found = (size_t)-1;
    const struct cas_advert *ad = NULL;
    cas_hr hr = cas_policy_store_load_all(a, &list, &n);
    if (hr != CAS_OK)
        return hr;
    for (size_t i = 0; i < n && !ad; i++) {
        ad = by_content ? cas_policy_find_content(&list[i], id)
                        : cas_policy_find_advert(&list[i], id);
        if (ad)
            found = i;
    }
    if (!ad) {
        hr = by_content
                 ? cas_fail(CAS_E_CONTENT_NOT_FOUND, "no applied policy advertises content %s", id)
                 : cas_fail(CAS_E_NOT_FOUND, "no advertisement %s in the applied policy", id);
    } else if (cas_policy_is_expired(&list[found], cas_clock_now())) {
        char when[32];
        cas_time_format(list[found].expires, when, sizeof(when));
        hr = cas_fail(CAS_E_POLICY_EXPIRED,
                      "the applied policy for site %s expired at %s; apply a newer one",
                      list[found].site, when);
    }
    for (size_t i = 0; i < n; i++) {
        if (i == found && hr == CAS_OK)
            continue;
        cas_policy_free(&list[i]);
    }
    if (hr == CAS_OK) {
        /* The advertisement lives inside the policy: hand both over together. */
        *pol_out = list[found];
        *ad_out = &pol_out->adverts[ad - list[found].adverts];
    }
    free(list);
    return hr;
}
