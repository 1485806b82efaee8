/* The signed policy document (docs/formats.md): parse and validate every field. */
#ifndef CAS_POLICY_H
#define CAS_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "hash.h"

#define CAS_POLICY_MAX_BYTES ((size_t)4 * 1024 * 1024)
#define CAS_POLICY_MAX_DEPTH 16

enum cas_rerun { CAS_RERUN_NEVER = 0, CAS_RERUN_IF_FAILED, CAS_RERUN_ALWAYS };

struct cas_program {
    char *command; /* relative: inside the content folder (path rules); or absolute */
    char **args;   /* argc entries, NULL-terminated */
    size_t argc;
    char *context;          /* "System" or "user:<name>" */
    double max_run_minutes; /* > 0 and <= 10080, fractions allowed (0.05 = 3 s); default 120 */
    int64_t *success_codes; /* default {0, 3010} */
    size_t n_success_codes;
};

struct cas_advert {
    char *id;            /* [A-Za-z0-9._-]{1,64}, not starting with '.' */
    char package[9];     /* CEN00002 */
    uint64_t version;    /* >= 1 */
    char content_id[32]; /* "CEN00002.2", derived */
    enum cas_hash_alg alg;
    char hash[CAS_HASH_MAX_HEX + 1]; /* lower-case hex */
    uint64_t size;                   /* total bytes of the package's files */
    char **locations;                /* http:// or https:// base URLs, in order */
    size_t n_locations;
    struct cas_program program;
    int mandatory;        /* default false */
    time_t start;         /* default: the policy's issued time */
    enum cas_rerun rerun; /* default if_failed */
    int persist;          /* default false */
};

struct cas_policy {
    int schema; /* 1 */
    char site[4];
    uint64_t serial; /* >= 1 */
    time_t issued;
    time_t expires; /* 0: no expiry */
    struct cas_advert *adverts;
    size_t n_adverts;
};

/* Parse and validate a policy document. Any missing required field, wrong type or value out of
 * range refuses the whole document with CAS_E_INVALID_DATA (or CAS_E_UNSUPPORTED_ALG for an
 * unknown hash algorithm) and a detail that names the field, e.g.
 * "advertisements[0].hash.value: expected 64 hex digits for sha256". Unknown fields are ignored.
 * Two advertisements with the same id, or naming the same content with a different hash or size,
 * are refused. More than CAS_POLICY_MAX_BYTES: CAS_E_TOO_LARGE. */
cas_hr cas_policy_parse(const char *buf, size_t len, struct cas_policy *out);
void cas_policy_free(struct cas_policy *p);

/* Lookups; NULL if absent. cas_policy_find_content returns the first advertisement whose
 * content_id matches. */
const struct cas_advert *cas_policy_find_advert(const struct cas_policy *p, const char *id);
const struct cas_advert *cas_policy_find_content(const struct cas_policy *p, const char *cid);

/* 1 if expired at `now` (expires set and now >= expires). */
int cas_policy_is_expired(const struct cas_policy *p, time_t now);

const char *cas_rerun_name(enum cas_rerun r);

#endif
