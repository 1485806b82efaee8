/* The one table of error codes, and the per-thread failure detail. */
#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cas_err_row {
    cas_hr code;
    const char *name;
    const char *message;
};

static const struct cas_err_row cas_err_table[] = {
    {CAS_OK, "S_OK", "The operation completed successfully."},
    {CAS_E_FAIL, "E_FAIL", "Unspecified failure."},
    {CAS_E_OUTOFMEMORY, "E_OUTOFMEMORY", "Not enough memory to complete the operation."},
    {CAS_E_INVALIDARG, "E_INVALIDARG", "An argument on the command line is not valid."},
    {CAS_E_NOT_FOUND, "ERROR_NOT_FOUND",
     "Element not found: no advertisement with that id is in the applied policy."},
    {CAS_E_FILE_MISSING, "ERROR_FILE_NOT_FOUND", "The system cannot find the file specified."},
    {CAS_E_ACCESSDENIED, "E_ACCESSDENIED", "Access is denied."},
    {CAS_E_DISK_FULL, "ERROR_DISK_FULL", "There is not enough space on the disk."},
    {CAS_E_INVALID_DATA, "ERROR_INVALID_DATA",
     "The data is invalid: a policy, sums listing, configuration or state file is malformed."},
    {CAS_E_BAD_NAME, "ERROR_INVALID_NAME",
     "A path in the package is not allowed (absolute, '..', empty segment, backslash, control "
     "character, duplicate, or a link or special file)."},
    {CAS_E_TOO_LARGE, "ERROR_FILE_TOO_LARGE",
     "More data was offered than allowed: content larger than the policy's size, or a document "
     "over its size limit."},
    {CAS_E_IO, "ERROR_GEN_FAILURE", "An input/output operation failed."},
    {CAS_E_BAD_CONFIG, "ERROR_BAD_CONFIGURATION",
     "The configuration file is malformed or a key has a wrong type or value."},
    {CAS_E_CANCELLED, "ERROR_CANCELLED", "The operation was cancelled."},
    {CAS_E_HASH_MISMATCH, "CRYPT_E_HASH_VALUE",
     "The hash value is not correct: the content does not match the hash in the signed policy."},
    {CAS_E_BAD_SIGNATURE, "NTE_BAD_SIGNATURE",
     "Invalid signature: the policy was not signed by the key trusted for its site, or was "
     "changed after signing."},
    {CAS_E_NO_SIGNATURE, "TRUST_E_NOSIGNATURE",
     "No signature was present: unsigned policy is refused while require_signed_policy is true."},
    {CAS_E_UNTRUSTED_SITE, "CERT_E_UNTRUSTEDROOT",
     "No trusted key for the policy's site: install <SITE>.pem in trusted_keys_dir."},
    {CAS_E_POLICY_EXPIRED, "CERT_E_EXPIRED", "The policy has expired."},
    {CAS_E_BAD_KEY, "NTE_BAD_DATA",
     "A key file cannot be read or is of an unsupported type (Ed25519, RSA >= 2048 bits or ECDSA "
     "P-256 are supported)."},
    {CAS_E_UNSUPPORTED_ALG, "NTE_BAD_ALGID",
     "Unsupported hash algorithm (sha256 and sha1 are supported)."},
    {CAS_E_POLICY_REPLAY, "CAS_E_POLICY_REPLAY",
     "Replayed or rolled-back policy: its serial is not higher than the last one applied for the "
     "site."},
    {CAS_E_SITE_MISMATCH, "CAS_E_SITE_MISMATCH",
     "The policy is for another site than the one this agent is assigned to."},
    {CAS_E_KEYCHANGE_REPLAY, "CAS_E_KEYCHANGE_REPLAY",
     "Replayed key change: its serial is not higher than the last key change accepted for the "
     "site."},
    {CAS_E_TIMEOUT, "ERROR_INTERNET_TIMEOUT", "The operation timed out."},
    {CAS_E_CANNOT_CONNECT, "ERROR_INTERNET_CANNOT_CONNECT",
     "The connection to the server could not be established."},
    {CAS_E_NAME_NOT_RESOLV, "ERROR_INTERNET_NAME_NOT_RESOLVED",
     "The server name could not be resolved."},
    {CAS_E_TLS, "ERROR_INTERNET_SECURE_FAILURE",
     "The TLS connection failed: certificate not trusted, wrong host, or handshake error."},
    {CAS_E_CONN_RESET, "ERROR_INTERNET_CONNECTION_RESET",
     "The connection with the server was reset or closed early."},
    {CAS_E_REDIRECT, "ERROR_HTTP_REDIRECT_FAILED",
     "The redirect failed: more than 5 redirects, or a redirect to a scheme that is not allowed."},
    {CAS_E_HTTP_404, "HTTP_E_STATUS_NOT_FOUND",
     "HTTP 404: the requested URL does not exist on the server."},
    {CAS_E_NO_NETWORK, "BG_E_NETWORK_DISCONNECTED", "No network connection is active."},
    {CAS_E_CONTENT_NOT_FOUND, "CCM_E_CONTENT_NOT_FOUND",
     "Content not found: no applied policy advertises this content."},
    {CAS_E_NO_LOCATION, "CCM_E_NO_LOCATION",
     "No program location could be reached: every distribution point failed."},
    {CAS_E_CACHE_FULL, "CCM_E_CACHE_FULL", "Not enough cache space (or the disk is full)."},
    {CAS_E_CACHE_TOO_SMALL, "CCM_E_CACHE_TOO_SMALL",
     "The whole cache is smaller than the content."},
    {CAS_E_CACHE_IN_USE, "CCM_E_CACHE_IN_USE",
     "The cache entry is in use by a running program or download."},
    {CAS_E_EXEC_FATAL, "CCM_E_EXEC_FATAL",
     "Execution manager: fatal error, the program will not be run or retried."},
    {CAS_E_PROGRAM_FAILED, "CAS_E_PROGRAM_FAILED",
     "The program ran but its exit code is not one of the advertisement's success codes."},
    {CAS_E_PROGRAM_TIMEOUT, "CAS_E_PROGRAM_TIMEOUT",
     "The program ran longer than max_run_minutes and was stopped."},
    {CAS_E_PROGRAM_RETRY, "CAS_E_PROGRAM_RETRY",
     "The program exited with a retryable code (retry_codes); it runs again after "
     "retry_interval_minutes, up to retry_count times."},
    {CAS_E_PROGRAM_INTERRUPTED, "CAS_E_PROGRAM_INTERRUPTED",
     "The agent stopped (or was killed) while the program ran; its result is unknown."},
    {CAS_E_TRANSFER_PROCESS, "CAS_E_TRANSFER_PROCESS",
     "The unprivileged transfer process did not start, ended, or broke its protocol; nothing it "
     "sent is used."},
    {CAS_E_NO_SUCH_USER, "ERROR_NO_SUCH_USER",
     "The user named in a user:<name> context does not exist on this machine."},
    {CAS_E_ALREADY_RUNNING, "ERROR_SERVICE_ALREADY_RUNNING",
     "Already running: another cas-agent run uses this state folder, or the advertisement's "
     "program is running now."},
};

#define CAS_ERR_TABLE_LEN (sizeof(cas_err_table) / sizeof(cas_err_table[0]))

static const struct cas_err_row *cas_err_find(cas_hr code)
{
    for (size_t i = 0; i < CAS_ERR_TABLE_LEN; i++) {
        if (cas_err_table[i].code == code)
            return &cas_err_table[i];
    }
    return NULL;
}

static int cas_err_is_http(cas_hr code)
{
    return (code & 0xFFFF0000u) == CAS_E_HTTP_BASE && (code & 0xFFFFu) >= 100 &&
           (code & 0xFFFFu) <= 599;
}

int cas_err_known(cas_hr code)
{
    return cas_err_find(code) != NULL || cas_err_is_http(code);
}

cas_hr cas_err_at(unsigned idx)
{
    /* Index 0 of the table is S_OK, which ends iteration by convention; skip it. */
    if (idx + 1 >= CAS_ERR_TABLE_LEN)
        return CAS_OK;
    return cas_err_table[idx + 1].code;
}

const char *cas_err_name(cas_hr code)
{
    const struct cas_err_row *row = cas_err_find(code);
    if (row)
        return row->name;
    if (cas_err_is_http(code))
        return "HTTP_E_STATUS";
    return "UNKNOWN";
}

const char *cas_err_message(cas_hr code)
{
    static __thread char http_msg[96];
    const struct cas_err_row *row = cas_err_find(code);
    if (row)
        return row->message;
    if (cas_err_is_http(code)) {
        snprintf(http_msg, sizeof(http_msg), "The server answered with HTTP status %u.",
                 (unsigned)(code & 0xFFFFu));
        return http_msg;
    }
    return "Unknown error code.";
}

static __thread char cas_err_detail_buf[1024];

/* The function itself, not the analyzer's view of it that error.h may define. */
#undef cas_fail
cas_hr cas_fail(cas_hr code, const char *fmt, ...)
{
    /* Formatted aside first: callers may pass cas_err_detail() itself as an argument, to wrap
     * the detail they were given ("refused: %s"). */
    char buf[sizeof(cas_err_detail_buf)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    memcpy(cas_err_detail_buf, buf, sizeof(buf));
    return code;
}

const char *cas_err_detail(void)
{
    return cas_err_detail_buf;
}

void cas_err_clear(void)
{
    cas_err_detail_buf[0] = '\0';
}

int cas_err_parse(const char *text, cas_hr *out)
{
    char *end = NULL;
    if (!text || !*text)
        return -1;
    errno = 0;
    if (text[0] == '-') {
        long long v = strtoll(text, &end, 10);
        if (errno || *end || v < INT32_MIN)
            return -1;
        *out = (cas_hr)(int32_t)v;
        return 0;
    }
    int hex = (text[0] == '0' && (text[1] == 'x' || text[1] == 'X'));
    const char *digits = hex ? text + 2 : text;
    if (!*digits)
        return -1;
    /* Eight hex digits without 0x are read as hex ("80091007"); other plain numbers as decimal. */
    if (!hex && strlen(digits) == 8 && strspn(digits, "0123456789abcdefABCDEF") == 8 &&
        strspn(digits, "0123456789") != 8)
        hex = 1;
    if (!hex && strlen(digits) == 8 && (digits[0] == '8' || digits[0] == 'A' || digits[0] == 'a'))
        hex = 1;
    unsigned long long v = strtoull(digits, &end, hex ? 16 : 10);
    if (errno || *end || v > 0xFFFFFFFFull || strspn(digits, "0123456789abcdefABCDEF") == 0)
        return -1;
    *out = (cas_hr)v;
    return 0;
}

cas_hr cas_err_from_errno(int err)
{
    switch (err) {
    case 0:
        return CAS_OK;
    case ENOSPC:
    case EDQUOT:
        return CAS_E_DISK_FULL;
    case EACCES:
    case EPERM:
    case EROFS:
        return CAS_E_ACCESSDENIED;
    case ENOENT:
    case ENOTDIR:
        return CAS_E_FILE_MISSING;
    case ENOMEM:
        return CAS_E_OUTOFMEMORY;
    case EFBIG:
        return CAS_E_TOO_LARGE;
    case ELOOP:
        return CAS_E_BAD_NAME;
    default:
        return CAS_E_IO;
    }
}
