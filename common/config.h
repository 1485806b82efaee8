/* The agent's configuration file (JSON, default /etc/cas-agent/agent.json). Every key has a
 * default; an unknown key is a warning, a wrong type or a value out of range an error. */
#ifndef CAS_CONFIG_H
#define CAS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CAS_CONFIG_DEFAULT_PATH "/etc/cas-agent/agent.json"
#define CAS_CONFIG_MAX_BYTES    ((size_t)1024 * 1024)
#define CAS_CONFIG_MAX_CODES    32

struct cas_config {
    char *site; /* NULL: accept policy for any site with a trusted key */
    char *management_point;
    char *trusted_keys_dir;
    char *cache_dir;
    char *state_dir;
    char *log_dir;
    long cache_size_mb;
    long cache_min_retention_minutes;
    int log_level;
    int debug_logging;
    long log_max_size;
    int log_max_history;
    int require_signed_policy;
    double policy_poll_minutes; /* fractions allowed (tests poll every few seconds) */
    /* Exit codes after which a program runs again later (default 1618: another installation is
     * in progress), after retry_interval_minutes, at most retry_count times. */
    int64_t retry_codes[CAS_CONFIG_MAX_CODES];
    size_t n_retry_codes;
    double retry_interval_minutes;
    long retry_count;
    long max_parallel_transfers;
    long connect_timeout_seconds;
    long low_speed_bytes_per_second;
    long low_speed_seconds;
    long transfer_deadline_minutes;
    long max_download_kbps;
    int require_https;
    int cache_dedup; /* copy files other cache entries hold instead of downloading them */
    char *ca_file;
    char *tls_client_cert;
    char *tls_client_key;
    char *tls_pinned_public_key;
    char *proxy;

    /* Warnings found while loading (unknown keys), one per line; NULL if none. */
    char *warnings;
};

/* Fill every key with its default. */
cas_hr cas_config_defaults(struct cas_config *cfg);

/* Load a configuration file over the defaults. `explicit_path` says whether the user named the
 * file: a missing default file is fine (defaults apply), a missing named one is
 * CAS_E_FILE_MISSING. Malformed JSON, a wrong type or a value out of range: CAS_E_BAD_CONFIG with
 * the key in the detail. On failure *cfg holds the defaults (freeable). */
cas_hr cas_config_load(const char *path, int explicit_path, struct cas_config *cfg);

/* Same from a buffer (for tests and the fuzzer). */
cas_hr cas_config_load_buf(const char *buf, size_t len, struct cas_config *cfg);

void cas_config_free(struct cas_config *cfg);

/* The i-th configuration key's name, with its value as text in `value` (strings as they are,
 * "null" when unset); NULL past the last key. For logging what a reload changed. */
const char *cas_config_key_text(const struct cas_config *cfg, size_t i, char *value, size_t size);

#endif
