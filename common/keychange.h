/* The site key change (docs/formats.md "Key change"): a small signed JSON document that names the
 * site's next public key. An agent accepts it only when the key it trusts now verifies it, so trust
 * always flows from the key the administrator installed; nothing fetched is trusted on first use.
 *
 *   {"schema":1, "type":"keychange", "site":"CEN", "serial":2, "issued":"2026-11-23T06:00:00Z",
 *    "key":"-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n", "key_id":"<16 hex>"}
 *
 * State: <state_dir>/policy/<SITE>.keychange.state.json
 * ({"site","serial","old_key_id","key_id","accepted"}), the highest serial accepted. */
#ifndef CAS_KEYCHANGE_H
#define CAS_KEYCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "sig.h"

#define CAS_KEYCHANGE_MAX_BYTES 65536u /* 64 KiB */
#define CAS_KEYCHANGE_MAX_DEPTH 4
#define CAS_KEYCHANGE_SUFFIX    ".keychange" /* <SITE>.keychange, its signature + ".sig" */

struct cas_keychange {
    char site[4];
    uint64_t serial; /* >= 1 */
    time_t issued;
    char *key_pem; /* the new key re-encoded as one canonical PEM block (malloc'd) */
    size_t key_pem_len;
    char key_id[CAS_KEYID_HEX + 1]; /* upper case, as cas_sig computes it */
};

/* Parse and validate a key-change document: at most CAS_KEYCHANGE_MAX_BYTES (else
 * CAS_E_TOO_LARGE), strict JSON (common/json.h) nested at most CAS_KEYCHANGE_MAX_DEPTH, schema 1,
 * type "keychange", site code, serial >= 1, issued RFC 3339, key one PEM public-key block of a
 * supported type (else CAS_E_BAD_KEY), key_id 16 hex digits (either case) equal to the key's id.
 * Unknown fields are ignored. Any other failure is CAS_E_INVALID_DATA; the detail names the field.
 * On failure *out holds nothing to free. */
cas_hr cas_keychange_parse(const char *buf, size_t len, struct cas_keychange *out);
void cas_keychange_free(struct cas_keychange *kc);

/* Check that `pem` is exactly one PEM public-key block of a supported type (the rule for the
 * document's "key") and compute its key id (CAS_KEYID_HEX + 1 bytes). CAS_E_INVALID_DATA or
 * CAS_E_BAD_KEY, the detail starting "key: ". */
cas_hr cas_keychange_key_id(const char *pem, size_t len, char *keyid_out);

enum cas_keychange_outcome {
    CAS_KEYCHANGE_ACCEPTED = 1, /* <SITE>.pem replaced by the new key, serial recorded */
    CAS_KEYCHANGE_RECORDED,     /* names the trusted key and verifies with it: serial recorded */
    CAS_KEYCHANGE_IN_EFFECT,    /* names the trusted key already: nothing to do */
};

struct cas_keychange_result {
    enum cas_keychange_outcome outcome;
    char site[4];
    uint64_t serial;
    char old_key_id[CAS_KEYID_HEX + 1];
    char new_key_id[CAS_KEYID_HEX + 1];
};

/* How a document is read before its signature is checked: only its site (which picks the key),
 * the key id it names (to recognise a change already in force) and its serial (for the log), or
 * the parse failure. The
 * agent installs a reader that parses in a sandboxed child, so root parses only documents the
 * trusted key verified; cas_keychange_read_hint (the default) parses in-process. */
typedef cas_hr (*cas_keychange_reader_fn)(const void *doc, size_t doc_len, char site[4],
                                          char key_id[CAS_KEYID_HEX + 1], uint64_t *serial);
void cas_keychange_set_reader(cas_keychange_reader_fn fn);
cas_hr cas_keychange_read_hint(const void *doc, size_t doc_len, char site[4],
                               char key_id[CAS_KEYID_HEX + 1], uint64_t *serial);

/* Verify and apply a key change (the agent's poll and any offline caller). `source` (a path or
 * URL) names the document in logs; `site` (may be NULL) is the site it must be for; sig NULL means
 * no signature file. In order, each failure refusing the document and leaving <SITE>.pem and the
 * state untouched:
 *   1. site and key id read by the installed reader (its parse failure refuses); the site must be
 *      `site` (CAS_E_SITE_MISMATCH);
 *   2. a trusted key <trusted_keys_dir>/<SITE>.pem must exist (CAS_E_UNTRUSTED_SITE: no trust on
 *      first use) and be loadable (CAS_E_BAD_KEY);
 *   3. the signature must be present (CAS_E_NO_SIGNATURE) and verify with the trusted key
 *      (CAS_E_BAD_SIGNATURE) — except that a document naming the trusted key changes nothing:
 *      CAS_OK with CAS_KEYCHANGE_IN_EFFECT, whatever its signature;
 *   4. only now parsed in full (as cas_keychange_parse); a verified document naming the trusted
 *      key with a higher serial: CAS_KEYCHANGE_RECORDED;
 *   5. the serial must be higher than the last accepted for the site (CAS_E_KEYCHANGE_REPLAY; a
 *      state file that cannot be read refuses, never counts as 0);
 *   6. <SITE>.pem is replaced atomically (mode 0644), then the serial is recorded.
 * Logged in PolicyAgent.log: "Key change for site S accepted: serial N, key OLD replaced by NEW"
 * or "Key change SOURCE for site S refused: DETAIL, error 0x...". res (may be NULL) is filled on
 * success. */
cas_hr cas_keychange_apply(const char *source, const char *site, const void *doc, size_t doc_len,
                           const void *sig, size_t sig_len, const char *trusted_keys_dir,
                           const char *state_dir, struct cas_keychange_result *res);

/* The highest key-change serial accepted for `site` (0 when no state file exists). A state file
 * that exists but cannot be read or parsed is an error. */
cas_hr cas_keychange_last_serial(const char *state_dir, const char *site, uint64_t *serial);

#endif
