/* The agent's configuration file. One table lists every key with its type and range, so the
 * defaults, the checks and the error wording cannot drift apart from one key to the next. */
#include "common/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/path.h"

#define CONFIG_MAX_DEPTH   8
#define CONFIG_WARN_KEYLEN 64

enum key_type {
    KEY_DIR,     /* non-empty string, always set */
    KEY_OPT_STR, /* non-empty string, or null / absent for "unset" */
    KEY_SITE,    /* optional site code */
    KEY_URL,     /* optional http:// or https:// URL */
    KEY_BOOL,    /* int field */
    KEY_INT,     /* int field */
    KEY_LONG,    /* long field */
    KEY_NUM,     /* double field, fractions allowed: dmin < value <= dmax */
    KEY_CODES,   /* array of exit codes (int64_t[CAS_CONFIG_MAX_CODES] + count) */
};

struct key {
    const char *name;
    enum key_type type;
    size_t off;
    long min, max;
    double dmin, dmax; /* KEY_NUM only */
    size_t count_off;  /* KEY_CODES only: the count field */
};

#define F(field) offsetof(struct cas_config, field)
#define K(name, type, field, min, max)                                                             \
    {                                                                                              \
        name, type, F(field), min, max, 0.0, 0.0, 0                                                \
    }

static const struct key keys[] = {
    K("site", KEY_SITE, site, 0, 0),
    K("management_point", KEY_URL, management_point, 0, 0),
    K("trusted_keys_dir", KEY_DIR, trusted_keys_dir, 0, 0),
    K("cache_dir", KEY_DIR, cache_dir, 0, 0),
    K("state_dir", KEY_DIR, state_dir, 0, 0),
    K("log_dir", KEY_DIR, log_dir, 0, 0),
    K("cache_size_mb", KEY_LONG, cache_size_mb, 1, 16777216),
    K("cache_min_retention_minutes", KEY_LONG, cache_min_retention_minutes, 0, 10080),
    K("log_level", KEY_INT, log_level, 0, 3),
    K("debug_logging", KEY_BOOL, debug_logging, 0, 1),
    /* The real client refuses a log smaller than 10000 bytes. */
    K("log_max_size", KEY_LONG, log_max_size, 10000, 1073741824),
    K("log_max_history", KEY_INT, log_max_history, 0, 100),
    K("require_signed_policy", KEY_BOOL, require_signed_policy, 0, 1),
    {"policy_poll_minutes", KEY_NUM, F(policy_poll_minutes), 0, 0, 0.0, 10080.0, 0},
    {"retry_codes", KEY_CODES, F(retry_codes), 0, 0, 0.0, 0.0, F(n_retry_codes)},
    {"retry_interval_minutes", KEY_NUM, F(retry_interval_minutes), 0, 0, 0.0, 10080.0, 0},
    K("retry_count", KEY_LONG, retry_count, 0, 1000),
    K("max_parallel_transfers", KEY_LONG, max_parallel_transfers, 1, 64),
    K("connect_timeout_seconds", KEY_LONG, connect_timeout_seconds, 1, 600),
    /* Open-ended in the contract; capped so rate arithmetic (kbps * 1024) cannot overflow. */
    K("low_speed_bytes_per_second", KEY_LONG, low_speed_bytes_per_second, 0, INT32_MAX),
    K("low_speed_seconds", KEY_LONG, low_speed_seconds, 1, 3600),
    K("transfer_deadline_minutes", KEY_LONG, transfer_deadline_minutes, 1, 43200),
    K("max_download_kbps", KEY_LONG, max_download_kbps, 0, INT32_MAX),
    K("require_https", KEY_BOOL, require_https, 0, 1),
    K("cache_dedup", KEY_BOOL, cache_dedup, 0, 1),
    K("ca_file", KEY_OPT_STR, ca_file, 0, 0),
    K("tls_client_cert", KEY_OPT_STR, tls_client_cert, 0, 0),
    K("tls_client_key", KEY_OPT_STR, tls_client_key, 0, 0),
    K("tls_pinned_public_key", KEY_OPT_STR, tls_pinned_public_key, 0, 0),
    K("proxy", KEY_OPT_STR, proxy, 0, 0),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **str_field(struct cas_config *cfg, const struct key *k)
{
    return (char **)((char *)cfg + k->off);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void cas_config_free(struct cas_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == KEY_DIR || keys[i].type == KEY_OPT_STR || keys[i].type == KEY_SITE ||
            keys[i].type == KEY_URL)
            free(*str_field(cfg, &keys[i]));
    }
    free(cfg->warnings);
    memset(cfg, 0, sizeof(*cfg));
}

cas_hr cas_config_defaults(struct cas_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->trusted_keys_dir = dup_str("/etc/cas-agent/trusted-keys");
    cfg->cache_dir = dup_str("/var/cache/cas-agent");
    cfg->state_dir = dup_str("/var/lib/cas-agent");
    cfg->log_dir = dup_str("/var/log/cas-agent");
    if (!cfg->trusted_keys_dir || !cfg->cache_dir || !cfg->state_dir || !cfg->log_dir) {
        cas_config_free(cfg);
        return cas_fail(CAS_E_OUTOFMEMORY, "configuration: out of memory");
    }
    cfg->cache_size_mb = 5120;
    cfg->cache_min_retention_minutes = 1440;
    cfg->log_level = 1;
    cfg->debug_logging = 0;
    cfg->log_max_size = 250000;
    cfg->log_max_history = 1;
    cfg->require_signed_policy = 1;
    cfg->policy_poll_minutes = 60;
    cfg->retry_codes[0] = 1618;
    cfg->n_retry_codes = 1;
    cfg->retry_interval_minutes = 10;
    cfg->retry_count = 3;
    cfg->max_parallel_transfers = 8;
    cfg->connect_timeout_seconds = 10;
    cfg->low_speed_bytes_per_second = 1000;
    cfg->low_speed_seconds = 60;
    cfg->transfer_deadline_minutes = 240;
    cfg->max_download_kbps = 0;
    cfg->require_https = 0;
    cfg->cache_dedup = 1;
    return CAS_OK;
}

/* Append "unknown configuration key 'X' (ignored)". The key is shown printable and short: it
 * comes from the file and ends up in logs and on terminals. */
static cas_hr warn_unknown(struct cas_config *cfg, const char *key)
{
    char shown[CONFIG_WARN_KEYLEN + 4];
    size_t n = strlen(key), i;
    int cut = n > CONFIG_WARN_KEYLEN;
    if (cut) {
        n = CONFIG_WARN_KEYLEN;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        shown[i] = (c < 0x20 || c == 0x7F || c == '\'') ? '?' : (char)c;
    }
    if (cut) {
        memcpy(shown + i, "...", 3);
        i += 3;
    }
    shown[i] = '\0';

    static const char fmt[] = "unknown configuration key '%s' (ignored)";
    size_t old = cfg->warnings ? strlen(cfg->warnings) : 0;
    size_t add = sizeof(fmt) + strlen(shown) + 1;
    char *w = realloc(cfg->warnings, old + add);
    if (!w)
        return cas_fail(CAS_E_OUTOFMEMORY, "configuration: out of memory");
    if (old)
        w[old++] = '\n';
    snprintf(w + old, add, "unknown configuration key '%s' (ignored)", shown);
    cfg->warnings = w;
    return CAS_OK;
}

static cas_hr set_string(struct cas_config *cfg, const struct key *k, const cJSON *v)
{
    char **field = str_field(cfg, k);
    if (cJSON_IsNull(v) && k->type != KEY_DIR) {
        free(*field);
        *field = NULL;
        return CAS_OK;
    }
    const char *null_ok = k->type == KEY_DIR ? "" : " or null";
    if (!cJSON_IsString(v) || !v->valuestring || v->valuestring[0] == '\0') {
        switch (k->type) {
        case KEY_SITE:
            return cas_fail(CAS_E_BAD_CONFIG,
                            "%s: expected a site code (3 characters A-Z or 0-9) or null", k->name);
        case KEY_URL:
            return cas_fail(CAS_E_BAD_CONFIG, "%s: expected an http:// or https:// URL or null",
                            k->name);
        default:
            return cas_fail(CAS_E_BAD_CONFIG, "%s: expected a non-empty string%s", k->name,
                            null_ok);
        }
    }
    const char *s = v->valuestring;
    if (k->type == KEY_SITE && !cas_id_is_site(s))
        return cas_fail(CAS_E_BAD_CONFIG,
                        "%s: expected a site code (3 characters A-Z or 0-9), got '%.16s'", k->name,
                        s);
    if (k->type == KEY_URL && !cas_url_is_base(s))
        return cas_fail(CAS_E_BAD_CONFIG,
                        "%s: expected an http:// or https:// URL with a host, no spaces, control "
                        "characters, '?' or '#', at most %d bytes",
                        k->name, CAS_URL_MAX);
    char *copy = dup_str(s);
    if (!copy)
        return cas_fail(CAS_E_OUTOFMEMORY, "configuration: out of memory");
    free(*field);
    *field = copy;
    return CAS_OK;
}

/* Exit codes: Unix statuses, and Windows-style codes up to 32 bits (3010, 0x80070005 as
 * a number) as policies carry them. */
static cas_hr set_codes(struct cas_config *cfg, const struct key *k, const cJSON *v)
{
    int64_t *codes = (int64_t *)((char *)cfg + k->off);
    size_t *count = (size_t *)((char *)cfg + k->count_off), n = 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > CAS_CONFIG_MAX_CODES)
        return cas_fail(CAS_E_BAD_CONFIG, "%s: expected an array of at most %d exit codes", k->name,
                        CAS_CONFIG_MAX_CODES);
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cas_json_is_int(c, INT32_MIN, UINT32_MAX))
            return cas_fail(CAS_E_BAD_CONFIG, "%s: item %zu: expected an integer exit code",
                            k->name, n);
        codes[n++] = (int64_t)c->valuedouble;
    }
    *count = n;
    return CAS_OK;
}

static cas_hr set_value(struct cas_config *cfg, const struct key *k, const cJSON *v)
{
    switch (k->type) {
    case KEY_DIR:
    case KEY_OPT_STR:
    case KEY_SITE:
    case KEY_URL:
        return set_string(cfg, k, v);
    case KEY_BOOL:
        if (!cJSON_IsBool(v))
            return cas_fail(CAS_E_BAD_CONFIG, "%s: expected true or false", k->name);
        *(int *)((char *)cfg + k->off) = cJSON_IsTrue(v) ? 1 : 0;
        return CAS_OK;
    case KEY_INT:
    case KEY_LONG:
        if (!cas_json_is_int(v, k->min, k->max))
            return cas_fail(CAS_E_BAD_CONFIG, "%s: expected an integer from %ld to %ld", k->name,
                            k->min, k->max);
        if (k->type == KEY_INT)
            *(int *)((char *)cfg + k->off) = (int)v->valuedouble;
        else
            *(long *)((char *)cfg + k->off) = (long)v->valuedouble;
        return CAS_OK;
    case KEY_NUM:
        if (!cJSON_IsNumber(v) || !(v->valuedouble > k->dmin) || !(v->valuedouble <= k->dmax))
            return cas_fail(CAS_E_BAD_CONFIG,
                            "%s: expected a number greater than %g and at most %g (fractions "
                            "allowed)",
                            k->name, k->dmin, k->dmax);
        /* Through memcpy: the table addresses fields by byte offset. */
        memcpy((char *)cfg + k->off, &v->valuedouble, sizeof(double));
        return CAS_OK;
    case KEY_CODES:
        return set_codes(cfg, k, v);
    }
    return cas_fail(CAS_E_FAIL, "%s: unknown key type", k->name);
}

static cas_hr apply(const char *buf, size_t len, struct cas_config *cfg)
{
    cJSON *root = NULL;
    cas_hr hr;

    if (len > CAS_CONFIG_MAX_BYTES)
        return cas_fail(CAS_E_TOO_LARGE, "configuration: %zu bytes, more than the limit of %zu",
                        len, CAS_CONFIG_MAX_BYTES);
    hr = cas_json_parse(buf, len, CONFIG_MAX_DEPTH, "configuration", &root);
    if (hr == CAS_E_INVALID_DATA) {
        char why[512];
        snprintf(why, sizeof(why), "%s", cas_err_detail());
        return cas_fail(CAS_E_BAD_CONFIG, "%s", why);
    }
    if (hr != CAS_OK)
        return hr;
    if (!cJSON_IsObject(root)) {
        hr = cas_fail(CAS_E_BAD_CONFIG, "configuration: expected a JSON object");
        goto cleanup;
    }
    for (const cJSON *item = root->child; item; item = item->next) {
        const struct key *k = NULL;
        for (size_t i = 0; i < NKEYS; i++) {
            if (strcmp(keys[i].name, item->string) == 0) {
                k = &keys[i];
                break;
            }
        }
        hr = k ? set_value(cfg, k, item) : warn_unknown(cfg, item->string);
        if (hr != CAS_OK)
            goto cleanup;
    }

cleanup:
    cJSON_Delete(root);
    return hr;
}

/* cfg holds the defaults on entry; on failure it is put back to them, nothing half-applied. */
static cas_hr load_over_defaults(const char *buf, size_t len, struct cas_config *cfg)
{
    cas_hr hr = apply(buf, len, cfg);
    if (hr != CAS_OK) {
        cas_config_free(cfg);
        if (cas_config_defaults(cfg) != CAS_OK)
            return CAS_E_OUTOFMEMORY;
    }
    return hr;
}

cas_hr cas_config_load_buf(const char *buf, size_t len, struct cas_config *cfg)
{
    cas_hr hr = cas_config_defaults(cfg);
    if (hr != CAS_OK)
        return hr;
    return load_over_defaults(buf, len, cfg);
}

cas_hr cas_config_load(const char *path, int explicit_path, struct cas_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    cas_hr hr = cas_config_defaults(cfg);
    if (hr != CAS_OK)
        return hr;
    if (!path)
        path = CAS_CONFIG_DEFAULT_PATH;

    hr = cas_fs_read_file(path, CAS_CONFIG_MAX_BYTES, &buf, &len);
    if (hr == CAS_E_FILE_MISSING && !explicit_path)
        return CAS_OK;
    if (hr == CAS_E_FILE_MISSING)
        return cas_fail(hr, "configuration file %s does not exist", path);
    if (hr != CAS_OK)
        return hr; /* the detail already names the file */

    hr = load_over_defaults(buf, len, cfg);
    free(buf);
    if (hr != CAS_OK) {
        char why[768];
        snprintf(why, sizeof(why), "%s", cas_err_detail());
        return cas_fail(hr, "%s: %s", path, why);
    }
    return CAS_OK;
}

const char *cas_config_key_text(const struct cas_config *cfg, size_t i, char *value, size_t size)
{
    if (i >= NKEYS)
        return NULL;
    const struct key *k = &keys[i];
    const char *base = (const char *)cfg + k->off;
    switch (k->type) {
    case KEY_DIR:
    case KEY_OPT_STR:
    case KEY_SITE:
    case KEY_URL: {
        const char *s = *(char *const *)base;
        snprintf(value, size, "%s", s ? s : "null");
        break;
    }
    case KEY_BOOL:
        snprintf(value, size, "%s", *(const int *)base ? "true" : "false");
        break;
    case KEY_INT:
        snprintf(value, size, "%d", *(const int *)base);
        break;
    case KEY_LONG:
        snprintf(value, size, "%ld", *(const long *)base);
        break;
    case KEY_NUM: {
        double d;
        memcpy(&d, base, sizeof(d));
        snprintf(value, size, "%g", d);
        break;
    }
    case KEY_CODES: {
        const int64_t *codes = (const int64_t *)base;
        size_t n = *(const size_t *)((const char *)cfg + k->count_off), used = 0;
        value[0] = '\0';
        used += (size_t)snprintf(value, size, "[");
        for (size_t c = 0; c < n && used < size; c++)
            used += (size_t)snprintf(value + used, size - used, "%s%lld", c ? "," : "",
                                     (long long)codes[c]);
        if (used < size)
            snprintf(value + used, size - used, "]");
        break;
    }
    }
    return k->name;
}
