/* The site key change: parse the signed document, check it against the key trusted now, and
 * replace that key atomically.
 *
 * The trusted key file is the commit point. It is replaced first and the serial recorded after,
 * because the opposite order has a crash window that locks the agent out for good: a recorded
 * serial with the old key still in place would refuse the same document as a replay forever. In
 * this order a crash leaves the new key trusted and the old serial recorded; the document then
 * names the trusted key and is "already in effect", and only the site (the holder of the new key)
 * could sign an older serial. */
#include "common/keychange.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/timefmt.h"

#define KC_KEY_MAX_BYTES ((size_t)16 * 1024) /* an RSA-16384 public key is about 2.8 KB of PEM */
#define KC_PEM_BEGIN     "-----BEGIN PUBLIC KEY-----"
#define KC_PEM_END       "-----END PUBLIC KEY-----"

void cas_keychange_free(struct cas_keychange *kc)
{
    if (!kc)
        return;
    free(kc->key_pem);
    memset(kc, 0, sizeof(*kc));
}

/* The DER SubjectPublicKeyInfo of a PEM public key (malloc'd by OpenSSL: OPENSSL_free), so two
 * keys are compared whole rather than by their 64-bit ids. */
static cas_hr key_der(const char *pem, size_t len, unsigned char **der, size_t *der_len)
{
    *der = NULL;
    *der_len = 0;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pkey) {
        ERR_clear_error();
        return cas_fail(CAS_E_BAD_KEY, "not a PEM public key");
    }
    int n = i2d_PUBKEY(pkey, der);
    EVP_PKEY_free(pkey);
    if (n <= 0) {
        ERR_clear_error();
        *der = NULL;
        return cas_fail(CAS_E_BAD_KEY, "cannot encode the public key");
    }
    *der_len = (size_t)n;
    return CAS_OK;
}

/* The key as one canonical PEM block, what `openssl pkey -pubout` writes: that is what gets
 * installed, so the trusted-keys folder never holds text the verification did not look at. */
static cas_hr key_canonical(const char *pem, size_t len, char **out, size_t *out_len)
{
    cas_hr hr = CAS_OK;
    EVP_PKEY *pkey = NULL;
    BIO *in = BIO_new_mem_buf(pem, (int)len), *mem = NULL;
    char *data = NULL;

    *out = NULL;
    *out_len = 0;
    if (!in)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    if (!pkey) {
        hr = cas_fail(CAS_E_BAD_KEY, "key: not a PEM public key");
        goto cleanup;
    }
    mem = BIO_new(BIO_s_mem());
    if (!mem || !PEM_write_bio_PUBKEY(mem, pkey)) {
        hr = cas_fail(CAS_E_BAD_KEY, "key: cannot encode the public key");
        goto cleanup;
    }
    long n = BIO_get_mem_data(mem, &data);
    if (n <= 0 || !data || !(*out = malloc((size_t)n + 1))) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    *out_len = (size_t)n;
cleanup:
    if (hr != CAS_OK)
        ERR_clear_error();
    EVP_PKEY_free(pkey);
    BIO_free(in);
    BIO_free(mem);
    return hr;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    }
    return 1;
}

/* Exactly one public-key PEM block and nothing around it but white space. OpenSSL would skip any
 * text before the block and ignore a second one; a reviewer reading the document might not. */
static cas_hr key_check_text(const char *pem, size_t len)
{
    static const char begin_tag[] = KC_PEM_BEGIN, end_tag[] = KC_PEM_END;
    if (len == 0 || len > KC_KEY_MAX_BYTES || memchr(pem, '\0', len))
        return cas_fail(CAS_E_INVALID_DATA, "key: expected a PEM public key of at most %zu bytes",
                        KC_KEY_MAX_BYTES);
    const char *begin = memmem(pem, len, begin_tag, sizeof(begin_tag) - 1);
    const char *end = memmem(pem, len, end_tag, sizeof(end_tag) - 1);
    if (!begin || !end || end < begin)
        return cas_fail(CAS_E_BAD_KEY, "key: expected a PEM block \"" KC_PEM_BEGIN "\"");
    const char *after = end + sizeof(end_tag) - 1;
    size_t rest = len - (size_t)(after - pem);
    if (!is_blank(pem, (size_t)(begin - pem)) || !is_blank(after, rest))
        return cas_fail(CAS_E_INVALID_DATA, "key: text outside the PEM block");
    if (memmem(begin + 1, (size_t)(after - begin - 1), "-----BEGIN", 10))
        return cas_fail(CAS_E_INVALID_DATA, "key: more than one PEM block");
    return CAS_OK;
}

/* Put `what: ` in front of the current failure detail (which cas_fail cannot read while it
 * writes it). */
static cas_hr prefix_detail(cas_hr hr, const char *what)
{
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", cas_err_detail());
    return cas_fail(hr, "%s: %s", what, detail);
}

cas_hr cas_keychange_key_id(const char *pem, size_t len, char *keyid_out)
{
    cas_hr hr = key_check_text(pem, len);
    if (hr != CAS_OK)
        return hr;
    /* An empty signature makes cas_sig refuse an unsupported key type, size or curve before it
     * looks at the signature, and hands back the key id: one rule for policy keys and new keys. */
    hr = cas_sig_verify_pem(pem, len, "", 0, NULL, 0, keyid_out);
    if (hr == CAS_OK)
        return cas_fail(CAS_E_BAD_KEY, "key: an empty signature verified");
    if (hr != CAS_E_BAD_SIGNATURE)
        return prefix_detail(hr, "key");
    cas_err_clear();
    return CAS_OK;
}

static const cJSON *field(const cJSON *root, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(root, name);
}

static cas_hr parse_fields(const cJSON *root, struct cas_keychange *kc)
{
    const cJSON *v;
    cas_hr hr;

    if (!cJSON_IsObject(root))
        return cas_fail(CAS_E_INVALID_DATA, "key change: expected a JSON object");

    v = field(root, "schema");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "schema: missing");
    if (!cas_json_is_int(v, 1, 1))
        return cas_fail(CAS_E_INVALID_DATA, "schema: expected the integer 1");

    v = field(root, "type");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "type: missing");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "keychange") != 0)
        return cas_fail(CAS_E_INVALID_DATA, "type: expected \"keychange\"");

    v = field(root, "site");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "site: missing");
    if (!cJSON_IsString(v) || !cas_id_is_site(v->valuestring))
        return cas_fail(CAS_E_INVALID_DATA, "site: expected a site code (3 of A-Z, 0-9)");
    memcpy(kc->site, v->valuestring, 4);

    v = field(root, "serial");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "serial: missing");
    if (!cas_json_is_int(v, 1, INT64_MAX))
        return cas_fail(CAS_E_INVALID_DATA, "serial: expected an integer >= 1");
    kc->serial = (uint64_t)v->valuedouble;

    v = field(root, "issued");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "issued: missing");
    if (!cJSON_IsString(v) || cas_time_parse(v->valuestring, &kc->issued) != CAS_OK)
        return cas_fail(CAS_E_INVALID_DATA, "issued: expected an RFC 3339 time");

    v = field(root, "key");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "key: missing");
    if (!cJSON_IsString(v))
        return cas_fail(CAS_E_INVALID_DATA, "key: expected a string");
    size_t key_len = strlen(v->valuestring);
    if ((hr = cas_keychange_key_id(v->valuestring, key_len, kc->key_id)) != CAS_OK)
        return hr;
    if ((hr = key_canonical(v->valuestring, key_len, &kc->key_pem, &kc->key_pem_len)) != CAS_OK)
        return hr;

    v = field(root, "key_id");
    if (!v)
        return cas_fail(CAS_E_INVALID_DATA, "key_id: missing");
    if (!cJSON_IsString(v) || strlen(v->valuestring) != CAS_KEYID_HEX ||
        strspn(v->valuestring, "0123456789ABCDEFabcdef") != CAS_KEYID_HEX)
        return cas_fail(CAS_E_INVALID_DATA, "key_id: expected %d hex digits", CAS_KEYID_HEX);
    if (strcasecmp(v->valuestring, kc->key_id) != 0)
        return cas_fail(CAS_E_INVALID_DATA, "key_id: %s is not the id of the key (%s)",
                        v->valuestring, kc->key_id);
    return CAS_OK;
}

cas_hr cas_keychange_parse(const char *buf, size_t len, struct cas_keychange *out)
{
    cJSON *root = NULL;
    cas_hr hr;

    memset(out, 0, sizeof(*out));
    if (len > CAS_KEYCHANGE_MAX_BYTES)
        return cas_fail(CAS_E_TOO_LARGE, "key change: %zu bytes, more than the %u allowed", len,
                        CAS_KEYCHANGE_MAX_BYTES);
    hr = cas_json_parse(buf, len, CAS_KEYCHANGE_MAX_DEPTH, "key change", &root);
    if (hr == CAS_OK)
        hr = parse_fields(root, out);
    cJSON_Delete(root);
    if (hr != CAS_OK)
        cas_keychange_free(out);
    return hr;
}

static char *state_path(const char *state_dir, const char *site)
{
    char *p = NULL;
    if (asprintf(&p, "%s/policy/%s%s.state.json", state_dir, site, CAS_KEYCHANGE_SUFFIX) < 0)
        return NULL;
    return p;
}

cas_hr cas_keychange_last_serial(const char *state_dir, const char *site, uint64_t *serial)
{
    char *path = state_path(state_dir, site);
    *serial = 0;
    if (!path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    cas_hr hr = cas_json_read_serial(path, serial);
    if (hr != CAS_OK && hr != CAS_E_OUTOFMEMORY)
        hr = prefix_detail(hr, "key-change state cannot be read");
    free(path);
    return hr;
}

static cas_hr state_write(const char *state_dir, const struct cas_keychange_result *r)
{
    char *path = state_path(state_dir, r->site), *text = NULL;
    char now[32];
    cas_hr hr;

    cas_time_format(cas_clock_now(), now, sizeof(now));
    if (!path ||
        asprintf(&text,
                 "{\"site\":\"%s\",\"serial\":%llu,\"old_key_id\":\"%s\",\"key_id\":\"%s\","
                 "\"accepted\":\"%s\"}\n",
                 r->site, (unsigned long long)r->serial, r->old_key_id, r->new_key_id, now) < 0) {
        text = NULL;
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    } else {
        hr = cas_fs_write_atomic(path, text, strlen(text), 0644);
    }
    free(text);
    free(path);
    return hr;
}

static cas_hr refuse(const char *source, const char *site, cas_hr hr)
{
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", cas_err_detail());
    cas_log_error(CAS_LOG_POLICY, "Key change %s for site %s refused: %s, error 0x%08X", source,
                  site, detail, hr);
    return cas_fail(hr, "key change %s for site %s refused: %s", source, site, detail);
}

/* Reads site and key id of a document that is not authenticated yet (see the header). */
static cas_keychange_reader_fn kc_reader;

void cas_keychange_set_reader(cas_keychange_reader_fn fn)
{
    kc_reader = fn;
}

cas_hr cas_keychange_read_hint(const void *doc, size_t doc_len, char site[4],
                               char key_id[CAS_KEYID_HEX + 1], uint64_t *serial)
{
    struct cas_keychange kc = {0};
    cas_hr hr = cas_keychange_parse(doc, doc_len, &kc);
    if (hr == CAS_OK) {
        memcpy(site, kc.site, 4);
        memcpy(key_id, kc.key_id, CAS_KEYID_HEX + 1);
        *serial = kc.serial;
    }
    cas_keychange_free(&kc);
    return hr;
}

cas_hr cas_keychange_apply(const char *source, const char *site, const void *doc, size_t doc_len,
                           const void *sig, size_t sig_len, const char *trusted_keys_dir,
                           const char *state_dir, struct cas_keychange_result *res)
{
    struct cas_keychange kc = {0};
    struct cas_keychange_result r = {0};
    char *keypath = NULL, *cur_pem = NULL, *dir = NULL;
    char hint_site[4] = "", hint_key[CAS_KEYID_HEX + 1] = "", cur_key[CAS_KEYID_HEX + 1] = "";
    size_t cur_len = 0, cur_der_len = 0, new_der_len = 0;
    unsigned char *cur_der = NULL, *new_der = NULL;
    uint64_t last = 0, hint_serial = 0;
    cas_hr hr;

    if (res)
        memset(res, 0, sizeof(*res));
    if (!source)
        source = "(document)";
    /* Verify before parse: until the signature verified, only the site (which picks the key)
     * and the key id are read, by the reader the agent installed (a sandboxed child). */
    hr = (kc_reader ? kc_reader : cas_keychange_read_hint)(doc, doc_len, hint_site, hint_key,
                                                           &hint_serial);
    if (hr == CAS_OK && !cas_id_is_site(hint_site))
        hr = cas_fail(CAS_E_INVALID_DATA, "site: not a site code");
    if (hr != CAS_OK)
        goto refused;
    if (site && strcmp(site, hint_site) != 0) {
        hr = cas_fail(CAS_E_SITE_MISMATCH,
                      "the key change is for site %s, it was published for site %s", hint_site,
                      site);
        goto refused;
    }
    memcpy(r.site, hint_site, sizeof(r.site));

    keypath = cas_sig_trusted_key_path(trusted_keys_dir, hint_site);
    if (!keypath) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto refused;
    }
    /* No trust on first use: without a key installed by the administrator there is nothing a
     * key change could be checked against. */
    hr = cas_fs_read_file(keypath, KC_KEY_MAX_BYTES * 64, &cur_pem, &cur_len);
    if (hr == CAS_E_FILE_MISSING) {
        hr = cas_fail(CAS_E_UNTRUSTED_SITE,
                      "no trusted key for site %s (%s does not exist); a key change is accepted "
                      "only when signed by the key already trusted",
                      hint_site, keypath);
        goto refused;
    }
    if (hr != CAS_OK)
        hr = prefix_detail(CAS_E_BAD_KEY, "the trusted key cannot be read");
    else if ((hr = key_der(cur_pem, cur_len, &cur_der, &cur_der_len)) != CAS_OK ||
             (hr = cas_keychange_key_id(cur_pem, cur_len, cur_key)) != CAS_OK)
        hr = prefix_detail(hr, keypath);
    if (hr != CAS_OK)
        goto refused;

    hr = sig ? cas_sig_verify_file(keypath, doc, doc_len, sig, sig_len, r.old_key_id)
             : cas_fail(CAS_E_NO_SIGNATURE, "the key change has no signature");
    if (hr != CAS_OK) {
        if (strcmp(hint_key, cur_key) == 0) {
            /* The steady state after a change: the document stays published, signed by the key
             * it replaced, and names the key trusted now. Nothing of it is used. */
            ERR_clear_error();
            cas_err_clear();
            memcpy(r.old_key_id, cur_key, sizeof(r.old_key_id));
            memcpy(r.new_key_id, cur_key, sizeof(r.new_key_id));
            r.outcome = CAS_KEYCHANGE_IN_EFFECT;
            r.serial = hint_serial;
            cas_log_verbose(CAS_LOG_POLICY,
                            "Key change %s for site %s, serial %llu: key %s is already the "
                            "trusted key",
                            source, hint_site, (unsigned long long)hint_serial, cur_key);
            goto done;
        }
        if (hr == CAS_E_BAD_SIGNATURE)
            hr = cas_fail(hr,
                          "the signature does not verify with the key trusted for site %s (key "
                          "id %s)",
                          hint_site, cur_key);
        goto refused;
    }
    /* Authenticated by the key trusted now: parsed in full. */
    hr = cas_keychange_parse(doc, doc_len, &kc);
    if (hr != CAS_OK)
        goto refused;
    if (strcmp(kc.site, hint_site) != 0) {
        hr = cas_fail(CAS_E_BAD_SIGNATURE,
                      "the key change names site %s but is signed by the key of site %s", kc.site,
                      hint_site);
        goto refused;
    }
    r.serial = kc.serial;
    memcpy(r.new_key_id, kc.key_id, sizeof(r.new_key_id));
    if ((hr = key_der(kc.key_pem, kc.key_pem_len, &new_der, &new_der_len)) != CAS_OK)
        goto refused;
    if ((hr = cas_keychange_last_serial(state_dir, kc.site, &last)) != CAS_OK)
        goto refused;
    if (cur_der_len == new_der_len && memcmp(cur_der, new_der, cur_der_len) == 0) {
        r.outcome = CAS_KEYCHANGE_IN_EFFECT;
        if (kc.serial > last) {
            if ((dir = cas_path_join(state_dir, "policy")) == NULL) {
                hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
                goto refused;
            }
            if ((hr = cas_fs_mkdirs(dir, 0755)) != CAS_OK ||
                (hr = state_write(state_dir, &r)) != CAS_OK)
                goto refused;
            r.outcome = CAS_KEYCHANGE_RECORDED;
            cas_log_info(CAS_LOG_POLICY,
                         "Key change for site %s recorded: serial %llu, key %s stays trusted",
                         kc.site, (unsigned long long)kc.serial, kc.key_id);
        } else {
            cas_log_verbose(CAS_LOG_POLICY,
                            "Key change %s for site %s, serial %llu: key %s is already the "
                            "trusted key",
                            source, kc.site, (unsigned long long)kc.serial, kc.key_id);
        }
        goto done;
    }
    if (kc.serial <= last) {
        hr = cas_fail(CAS_E_KEYCHANGE_REPLAY,
                      "serial %llu is not higher than key-change serial %llu already accepted for "
                      "site %s (replayed key change)",
                      (unsigned long long)kc.serial, (unsigned long long)last, kc.site);
        goto refused;
    }
    /* The state folder is made before the key is replaced, so the serial can be recorded. */
    if ((dir = cas_path_join(state_dir, "policy")) == NULL) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto refused;
    }
    if ((hr = cas_fs_mkdirs(dir, 0755)) != CAS_OK)
        goto refused;
    if ((hr = cas_fs_write_atomic(keypath, kc.key_pem, kc.key_pem_len, 0644)) != CAS_OK) {
        hr = prefix_detail(hr, "installing the new key");
        goto refused;
    }
    r.outcome = CAS_KEYCHANGE_ACCEPTED;
    cas_log_info(CAS_LOG_POLICY,
                 "Key change for site %s accepted: serial %llu, key %s replaced by %s", kc.site,
                 (unsigned long long)kc.serial, r.old_key_id, r.new_key_id);
    hr = state_write(state_dir, &r);
    if (hr != CAS_OK) {
        /* The new key is in force; only the replay guard for older key changes is behind. */
        cas_log_error(CAS_LOG_POLICY,
                      "Key change for site %s: serial %llu could not be recorded: %s, error "
                      "0x%08X",
                      kc.site, (unsigned long long)kc.serial, cas_err_detail(), hr);
        goto cleanup;
    }
done:
    hr = CAS_OK;
    if (res)
        *res = r;
    goto cleanup;
refused:
    /* Named by the site it was fetched for: the document's own claim is the attacker's. */
    hr = refuse(source, site ? site : (hint_site[0] ? hint_site : "(unknown)"), hr);
cleanup:
    cas_keychange_free(&kc);
    OPENSSL_free(cur_der);
    OPENSSL_free(new_der);
    free(cur_pem);
    free(keypath);
    free(dir);
    return hr;
}
