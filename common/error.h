/* One error type for the whole code base: HRESULT-style 32-bit codes.
 *
 * Codes borrowed from Windows / ConfigMgr keep their meaning, so an administrator who knows the
 * real client reads them the same way. Codes that have no Windows equivalent use the customer bit
 * (0x20000000) with facility 0xCA: 0xA0CAxxxx. Every code the agent can produce is in the table in
 * error.c; logs, `errinfo` and exit paths all read that one table. */
#ifndef CAS_ERROR_H
#define CAS_ERROR_H

#include <stdint.h>

typedef uint32_t cas_hr;

#define CAS_OK 0x00000000u

/* Generic */
#define CAS_E_FAIL         0x80004005u /* E_FAIL */
#define CAS_E_OUTOFMEMORY  0x8007000Eu /* E_OUTOFMEMORY */
#define CAS_E_INVALIDARG   0x80070057u /* E_INVALIDARG: bad command line value */
#define CAS_E_NOT_FOUND    0x80070490u /* ERROR_NOT_FOUND: no such advertisement */
#define CAS_E_FILE_MISSING 0x80070002u /* ERROR_FILE_NOT_FOUND */
#define CAS_E_ACCESSDENIED 0x80070005u /* ERROR_ACCESS_DENIED */
#define CAS_E_DISK_FULL    0x80070070u /* ERROR_DISK_FULL */
#define CAS_E_INVALID_DATA 0x8007000Du /* ERROR_INVALID_DATA: malformed policy, listing, JSON */
#define CAS_E_BAD_NAME     0x8007007Bu /* ERROR_INVALID_NAME: unsafe path in a package */
#define CAS_E_TOO_LARGE    0x800700DFu /* ERROR_FILE_TOO_LARGE: more bytes than allowed */
#define CAS_E_IO           0x8007001Fu /* ERROR_GEN_FAILURE: an I/O call failed */
#define CAS_E_BAD_CONFIG   0x8007064Au /* ERROR_BAD_CONFIGURATION */
#define CAS_E_CANCELLED    0x800704C7u /* ERROR_CANCELLED */

/* Trust */
#define CAS_E_HASH_MISMATCH    0x80091007u /* CRYPT_E_HASH_VALUE */
#define CAS_E_BAD_SIGNATURE    0x80090006u /* NTE_BAD_SIGNATURE */
#define CAS_E_NO_SIGNATURE     0x800B0100u /* TRUST_E_NOSIGNATURE: policy has no signature */
#define CAS_E_UNTRUSTED_SITE   0x800B0109u /* CERT_E_UNTRUSTEDROOT: no trusted key for the site */
#define CAS_E_POLICY_EXPIRED   0x800B0101u /* CERT_E_EXPIRED */
#define CAS_E_BAD_KEY          0x80090005u /* NTE_BAD_DATA: key file unreadable or unsupported */
#define CAS_E_UNSUPPORTED_ALG  0x80090008u /* NTE_BAD_ALGID */
#define CAS_E_POLICY_REPLAY    0xA0CA0001u /* serial not higher than the last applied one */
#define CAS_E_SITE_MISMATCH    0xA0CA0002u /* policy for another site than the configured one */
#define CAS_E_KEYCHANGE_REPLAY 0xA0CA0003u /* key-change serial not higher than the last one */

/* Transfers */
#define CAS_E_TIMEOUT         0x80072EE2u /* ERROR_INTERNET_TIMEOUT */
#define CAS_E_CANNOT_CONNECT  0x80072EFDu /* ERROR_INTERNET_CANNOT_CONNECT */
#define CAS_E_NAME_NOT_RESOLV 0x80072EE7u /* ERROR_INTERNET_NAME_NOT_RESOLVED */
#define CAS_E_TLS             0x80072F8Fu /* ERROR_INTERNET_SECURE_FAILURE */
#define CAS_E_CONN_RESET      0x80072EFFu /* ERROR_INTERNET_CONNECTION_RESET */
#define CAS_E_REDIRECT        0x80072F7Cu /* ERROR_HTTP_REDIRECT_FAILED */
#define CAS_E_HTTP_BASE       0x80190000u /* HTTP_E_STATUS_*: 0x80190000 + status code */
#define CAS_E_HTTP_404        0x80190194u
#define CAS_E_NO_NETWORK      0x80200010u /* BG_E_NETWORK_DISCONNECTED */

/* ConfigMgr content and execution */
#define CAS_E_CONTENT_NOT_FOUND   0x87D00607u /* content not found (not in any applied policy) */
#define CAS_E_NO_LOCATION         0x87D01107u /* no program location could be reached */
#define CAS_E_CACHE_FULL          0x87D01201u
#define CAS_E_CACHE_TOO_SMALL     0x87D01202u
#define CAS_E_CACHE_IN_USE        0x87D01203u
#define CAS_E_EXEC_FATAL          0x80008602u /* the program will not be retried */
#define CAS_E_PROGRAM_FAILED      0xA0CA0101u /* the program's exit code is not a success code */
#define CAS_E_PROGRAM_TIMEOUT     0xA0CA0102u /* the program ran longer than max_run_minutes */
#define CAS_E_PROGRAM_RETRY       0xA0CA0103u /* a retryable exit code: the program runs again later */
#define CAS_E_PROGRAM_INTERRUPTED 0xA0CA0104u /* the agent stopped while the program ran */
#define CAS_E_TRANSFER_PROCESS    0xA0CA0105u /* the unprivileged transfer process failed */
#define CAS_E_NO_SUCH_USER        0x80070525u /* ERROR_NO_SUCH_USER: user:<name> context unknown */
#define CAS_E_ALREADY_RUNNING     0x80070420u /* ERROR_SERVICE_ALREADY_RUNNING */

/* Table access. Unknown codes get a generic name/message, never NULL. */
const char *cas_err_name(cas_hr code);
const char *cas_err_message(cas_hr code);
/* Nonzero if the code is in the table (HTTP_E_STATUS_* codes count as known). */
int cas_err_known(cas_hr code);
/* Iterate the table: returns the idx-th code, or CAS_OK past the end. */
cas_hr cas_err_at(unsigned idx);

/* Per-thread detail for the last failure: functions that return a failure code set it, so the
 * caller can print "error 0x...: <detail>". cas_fail() returns `code` for `return cas_fail(...)`.
 */
cas_hr cas_fail(cas_hr code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__
/* clang-tidy's analyzer sees one file at a time: show it that cas_fail() returns `code`, or it
 * takes `return cas_fail(...)` for a possible success and reports paths that cannot happen. */
#define cas_fail(code, ...) (cas_fail((code), __VA_ARGS__), (cas_hr)(code))
#endif
const char *cas_err_detail(void);
void cas_err_clear(void);

/* Parse "0x80091007", "80091007" or a signed/unsigned decimal. Returns 0 on success. */
int cas_err_parse(const char *text, cas_hr *out);

/* Map errno to a code (ENOSPC -> CAS_E_DISK_FULL, EACCES -> CAS_E_ACCESSDENIED, ...). */
cas_hr cas_err_from_errno(int err);

#endif
