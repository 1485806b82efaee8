/* cas-site policy: the documents a site publishes every day.
 *
 *   create         a new document (serial 1, --serial N, or the last one's + 1 with --last)
 *   add-advert     advertise a package built on a DP folder (hash and size read from it)
 *   remove-advert  withdraw advertisements
 *   sign           the detached signature agents check before applying a policy
 *
 * An agent refuses an invalid policy as a whole, so every command runs what it is about to write
 * through the agent's own validator (cas_policy_parse, plus the expiry check the agent makes) and
 * refuses it instead; a changed document always carries a higher serial and a new issue time. The
 * policy is edited as JSON, so fields this tool does not know survive an edit. Files are replaced
 * atomically: a refused or failed command leaves the old document as it was. An edit changes the
 * bytes, so the old signature no longer matches: --key signs the result in the same step.
 * `sign --no-check` signs anything, for deliberately broken test documents. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fsutil.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/path.h"
#include "common/policy.h"
#include "common/sig.h"
#include "common/sums.h"
#include "common/timefmt.h"
#include "site/site.h"

#define CAS_SITE_EDIT_OPTS                                                                         \
    "[--serial N] [--expires TIME | --expires-days D | --no-expires] [--key KEY]"
#define CAS_SITE_SIGN_USAGE "policy sign --key KEY [--no-check] POLICY"
#define CAS_SITE_CREATE_USAGE                                                                      \
    "policy create (--site CEN | --last PREV) --out NEW [--empty] [--force] " CAS_SITE_EDIT_OPTS
#define CAS_SITE_ADD_USAGE                                                                         \
    "policy add-advert POLICY --id ADV --content C --dp DIR --location URL [--location URL ...] "  \
    "--command CMD [--arg A ...] [--context System|user:NAME] [--mandatory] [--start TIME] "       \
    "[--rerun never|if_failed|always] [--max-run-minutes M] [--success-code N ...] [--persist] "   \
    "[--alg sha256|sha1] [--no-verify] " CAS_SITE_EDIT_OPTS
#define CAS_SITE_REMOVE_USAGE                                                                      \
    "policy remove-advert POLICY --id ADV [--id ADV ...] " CAS_SITE_EDIT_OPTS
#define CAS_SITE_POLICY_USAGE "policy create|add-advert|remove-advert|sign ..."

/* --no-check also admits documents over the agent's limit, so that the agent's refusal of them
 * can be tested; this only bounds memory. */
#define CAS_SITE_UNCHECKED_MAX_BYTES ((size_t)64 * 1024 * 1024)
/* The agent's limit on a sums listing: a longer one could never be downloaded. */
#define CAS_SITE_SUMS_MAX ((size_t)64 * 1024 * 1024)
/* The validator's limit (cas_json_is_int: 2^53 - 1), so every serial is exact in a JSON number.
 * docs/formats.md says "<= 2^53"; the agent refuses 2^53 itself. */
#define CAS_SITE_SERIAL_MAX 9007199254740991ULL
#define CAS_SITE_MAX_DAYS   36500.0

enum {
    CAS_SITE_OPT_HELP = 'h',
    CAS_SITE_OPT_KEY = 'k',
    CAS_SITE_OPT_SERIAL = 256,
    CAS_SITE_OPT_EXPIRES,
    CAS_SITE_OPT_EXPIRES_DAYS,
    CAS_SITE_OPT_NO_EXPIRES,
    CAS_SITE_OPT_NO_CHECK,
    CAS_SITE_OPT_SITE,
    CAS_SITE_OPT_OUT,
    CAS_SITE_OPT_LAST,
    CAS_SITE_OPT_EMPTY,
    CAS_SITE_OPT_FORCE,
    CAS_SITE_OPT_ID,
    CAS_SITE_OPT_CONTENT,
    CAS_SITE_OPT_DP,
    CAS_SITE_OPT_LOCATION,
    CAS_SITE_OPT_COMMAND,
    CAS_SITE_OPT_ARG,
    CAS_SITE_OPT_CONTEXT,
    CAS_SITE_OPT_MANDATORY,
    CAS_SITE_OPT_START,
    CAS_SITE_OPT_RERUN,
    CAS_SITE_OPT_MAX_RUN,
    CAS_SITE_OPT_SUCCESS_CODE,
    CAS_SITE_OPT_PERSIST,
    CAS_SITE_OPT_ALG,
    CAS_SITE_OPT_NO_VERIFY,
};

/* clang-format off */
#define CAS_SITE_EDIT_OPTIONS                                                                      \
    {"serial", required_argument, NULL, CAS_SITE_OPT_SERIAL},                                      \
    {"expires", required_argument, NULL, CAS_SITE_OPT_EXPIRES},                                    \
    {"expires-days", required_argument, NULL, CAS_SITE_OPT_EXPIRES_DAYS},                          \
    {"no-expires", no_argument, NULL, CAS_SITE_OPT_NO_EXPIRES},                                    \
    {"key", required_argument, NULL, CAS_SITE_OPT_KEY},                                            \
    {"help", no_argument, NULL, CAS_SITE_OPT_HELP}
/* clang-format on */

/* What every writing command accepts about the document as a whole. */
struct cas_site_edit_opts {
    const char *serial;       /* --serial, or NULL: automatic */
    const char *expires;      /* --expires TIME */
    const char *expires_days; /* --expires-days D */
    int no_expires;
    int n_expiry;    /* how many of the three expiry options were given */
    const char *key; /* sign the result with it */
};

enum cas_site_expiry { CAS_SITE_EXPIRY_KEEP, CAS_SITE_EXPIRY_NONE, CAS_SITE_EXPIRY_AT };

/* ------------------------------------------------------------------------------------------ */
/* Signing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* No terminal prompt: cas-site writes unencrypted keys, and a script must not hang on one. */
/* The key id is defined on the public key, and only the private key is at hand: derive the
 * public PEM, then let cas_sig_verify_pem compute the id. Verifying the fresh signature with it
 * on the way also proves the signature is one an agent holding the matching .pem accepts. */
static cas_hr cas_site_check_signature(const char *key_path, const char *data, size_t len,
                                       const uint8_t *sig, size_t siglen, char *keyid)
{
    char *pem = NULL;
    size_t pem_len = 0;
    cas_hr hr = cas_sig_public_pem_file(key_path, &pem, &pem_len);
    if (hr != CAS_OK)
        return hr;
    hr = cas_sig_verify_pem(pem, pem_len, data, len, sig, siglen, keyid);
    if (hr != CAS_OK) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr, "the new signature does not verify with the key's own public key: %s",
                      detail);
    }
    free(pem);
    return hr;
}

/* Keys are named <SITE>.key by `key generate`; an agent checks the signature with the key it
 * trusts for the policy's own site, so signing CEN's policy with XYZ.key is worth a warning. */
static void cas_site_warn_site_mismatch(const char *key_path, const char *site)
{
    const char *base = strrchr(key_path, '/');
    base = base ? base + 1 : key_path;
    if (strlen(base) != 7 || strcmp(base + 3, ".key") != 0)
        return;
    char key_site[4] = {base[0], base[1], base[2], '\0'};
    if (cas_id_is_site(key_site) && strcmp(key_site, site) != 0)
        fprintf(stderr,
                "cas-site: warning: the policy is for site %s but the key is %s; agents check it "
                "with %s.pem\n",
                site, base, site);
}

/* Sign in memory and check the signature, before anything is written: a bad key then changes
 * nothing on disk. */
static cas_hr cas_site_sign_bytes(const char *key_path, const char *data, size_t len, uint8_t **sig,
                                  size_t *siglen, char *keyid)
{
    cas_hr hr = cas_sig_sign_file(key_path, data, len, sig, siglen);
    if (hr != CAS_OK)
        return hr;
    hr = cas_site_check_signature(key_path, data, len, *sig, *siglen, keyid);
    if (hr != CAS_OK) {
        free(*sig);
        *sig = NULL;
    }
    return hr;
}

static char *cas_site_sig_path(const char *policy_path)
{
    char *p = NULL;
    if (asprintf(&p, "%s.sig", policy_path) < 0)
        return NULL;
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* The agent's checks                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* What the agent checks of the document itself when applying it: the validator, then the expiry
 * (the serial is checked against --last or the edited document by the callers). On success *pol
 * holds the parsed policy (the caller frees it). The detail has no prefix: callers say which
 * document it was. */
static cas_hr cas_site_agent_check(const char *data, size_t len, time_t now, struct cas_policy *pol)
{
    cas_hr hr = cas_policy_parse(data, len, pol);
    if (hr != CAS_OK)
        return hr;
    if (cas_policy_is_expired(pol, now)) {
        char when[32], at[32];
        cas_time_format(pol->expires, when, sizeof(when));
        cas_time_format(now, at, sizeof(at));
        cas_policy_free(pol);
        return cas_fail(CAS_E_POLICY_EXPIRED, "expires %s, not after now (%s)", when, at);
    }
    return CAS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* policy sign                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static cas_hr cas_site_policy_sign(const char *key_path, const char *policy_path, int check)
{
    cas_hr hr = CAS_OK;
    char *data = NULL, *sig_path = NULL;
    size_t len = 0, siglen = 0;
    uint8_t *sig = NULL;
    char keyid[CAS_KEYID_HEX + 1];
    char detail[1024];

    hr = cas_fs_read_file(policy_path, check ? CAS_POLICY_MAX_BYTES : CAS_SITE_UNCHECKED_MAX_BYTES,
                          &data, &len);
    if (hr != CAS_OK)
        goto cleanup;
    if (check) {
        struct cas_policy pol;
        memset(&pol, 0, sizeof(pol));
        hr = cas_site_agent_check(data, len, cas_clock_now(), &pol);
        if (hr != CAS_OK) {
            snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            hr = cas_fail(hr,
                          "%s: agents would refuse it, not signed: %s (--no-check signs it anyway)",
                          policy_path, detail);
            goto cleanup;
        }
        cas_site_warn_site_mismatch(key_path, pol.site);
        cas_policy_free(&pol);
    }

    hr = cas_site_sign_bytes(key_path, data, len, &sig, &siglen, keyid);
    if (hr != CAS_OK)
        goto cleanup;
    sig_path = cas_site_sig_path(policy_path);
    if (!sig_path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_fs_write_atomic(sig_path, sig, siglen, 0644);
    if (hr != CAS_OK)
        goto cleanup;
    printf("key id:    %s\n", keyid);
    printf("signature: %s\n", sig_path);

cleanup:
    free(data);
    free(sig);
    free(sig_path);
    return hr;
}

static int cas_site_cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, CAS_SITE_OPT_KEY},
        {"no-check", no_argument, NULL, CAS_SITE_OPT_NO_CHECK},
        {"help", no_argument, NULL, CAS_SITE_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL;
    int check = 1, c;

    while ((c = cas_site_getopt(argc, argv, opts, CAS_SITE_SIGN_USAGE)) != -1) {
        switch (c) {
        case CAS_SITE_OPT_KEY:
            key_path = optarg;
            break;
        case CAS_SITE_OPT_NO_CHECK:
            check = 0;
            break;
        case CAS_SITE_OPT_HELP:
            printf("usage: cas-site %s\n", CAS_SITE_SIGN_USAGE);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (!key_path)
        return cas_site_usage(CAS_SITE_SIGN_USAGE, "missing --key");
    if (optind >= argc)
        return cas_site_usage(CAS_SITE_SIGN_USAGE, "missing POLICY");
    if (optind + 1 < argc)
        return cas_site_usage(CAS_SITE_SIGN_USAGE, "unexpected argument '%s'", argv[optind + 1]);

    cas_hr hr = cas_site_policy_sign(key_path, argv[optind], check);
    if (hr != CAS_OK)
        return cas_site_report(hr);
    return CAS_SITE_EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Writing a document: 2-space JSON, checked, optionally signed, replaced atomically            */
/* ------------------------------------------------------------------------------------------ */

struct cas_site_buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void cas_site_put(struct cas_site_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void cas_site_puts(struct cas_site_buf *b, const char *s)
{
    cas_site_put(b, s, strlen(s));
}

static void cas_site_indent(struct cas_site_buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        cas_site_put(b, "  ", 2);
}

/* A scalar as cJSON writes it: its string escaping and number formatting are the parser's own
 * counterpart, so they are reused rather than rewritten. */
static void cas_site_put_scalar(struct cas_site_buf *b, const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);
    if (!text) {
        b->oom = 1;
        return;
    }
    cas_site_puts(b, text);
    cJSON_free(text);
}

static void cas_site_put_key(struct cas_site_buf *b, const char *key)
{
    cJSON *s = cJSON_CreateString(key);
    if (!s) {
        b->oom = 1;
        return;
    }
    cas_site_put_scalar(b, s);
    cJSON_Delete(s);
    cas_site_puts(b, ": ");
}

/* The layout of the documents in docs/ and the tests: objects one member per line, indented by
 * two spaces; arrays of plain values on one line. (cJSON_Print indents with tabs.) The depth is
 * bounded by the validator's nesting limit, checked when the document was read. */
static void cas_site_put_json(struct cas_site_buf *b, const cJSON *item, int depth)
{
    int is_obj = cJSON_IsObject(item);
    if (!is_obj && !cJSON_IsArray(item)) {
        cas_site_put_scalar(b, item);
        return;
    }
    if (!item->child) {
        cas_site_puts(b, is_obj ? "{}" : "[]");
        return;
    }
    int flat = !is_obj;
    for (const cJSON *c = item->child; c && flat; c = c->next)
        flat = !cJSON_IsObject(c) && !cJSON_IsArray(c);
    if (flat) {
        cas_site_puts(b, "[");
        for (const cJSON *c = item->child; c; c = c->next) {
            cas_site_put_scalar(b, c);
            if (c->next)
                cas_site_puts(b, ", ");
        }
        cas_site_puts(b, "]");
        return;
    }
    cas_site_puts(b, is_obj ? "{\n" : "[\n");
    for (const cJSON *c = item->child; c; c = c->next) {
        cas_site_indent(b, depth + 1);
        if (is_obj)
            cas_site_put_key(b, c->string ? c->string : "");
        cas_site_put_json(b, c, depth + 1);
        cas_site_puts(b, c->next ? ",\n" : "\n");
    }
    cas_site_indent(b, depth);
    cas_site_puts(b, is_obj ? "}" : "]");
}

static cas_hr cas_site_print(const cJSON *root, char **text, size_t *len)
{
    struct cas_site_buf b = {0};
    cas_site_put_json(&b, root, 0);
    cas_site_puts(&b, "\n");
    if (b.oom) {
        free(b.p);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    *text = b.p;
    *len = b.len;
    return CAS_OK;
}

/* Check what is about to be written as the agent would, sign it if asked, and only then replace
 * the file (and its signature). */
static cas_hr cas_site_write_policy(const char *path, const cJSON *root, time_t now,
                                    const struct cas_site_edit_opts *o)
{
    cas_hr hr;
    char *text = NULL, *sig_path = NULL;
    size_t len = 0, siglen = 0;
    uint8_t *sig = NULL;
    char keyid[CAS_KEYID_HEX + 1] = "";
    char detail[1024];
    struct cas_policy pol;
    int have_pol = 0;
    mode_t mode = 0644;
    struct stat st;

    memset(&pol, 0, sizeof(pol));
    hr = cas_site_print(root, &text, &len);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_agent_check(text, len, now, &pol);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr, "agents would refuse the result (%s), so %s is left as it was%s", detail,
                      path,
                      hr == CAS_E_POLICY_EXPIRED ? "; give a new --expires or --expires-days" : "");
        goto cleanup;
    }
    have_pol = 1;

    sig_path = cas_site_sig_path(path);
    if (!sig_path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    if (o->key) {
        cas_site_warn_site_mismatch(o->key, pol.site);
        hr = cas_site_sign_bytes(o->key, text, len, &sig, &siglen, keyid);
        if (hr != CAS_OK)
            goto cleanup;
    }

    /* An edit keeps the file's permissions; a new policy is published, so readable. */
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        mode = st.st_mode & 07777;
    hr = cas_fs_write_atomic(path, text, len, mode);
    if (hr != CAS_OK)
        goto cleanup;
    if (sig) {
        hr = cas_fs_write_atomic(sig_path, sig, siglen, 0644);
        if (hr != CAS_OK) {
            snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            hr = cas_fail(hr,
                          "%s was written but its signature was not (%s): sign it again with "
                          "cas-site policy sign",
                          path, detail);
            goto cleanup;
        }
    } else if (stat(sig_path, &st) == 0) {
        /* Left in place: an agent refuses the stale pair (bad signature), whereas removing it
         * would let an agent that does not require signatures apply the unsigned document. */
        fprintf(stderr,
                "cas-site: warning: %s is the signature of the previous document; sign the new "
                "one (cas-site policy sign --key KEY %s) before publishing it\n",
                sig_path, path);
    }

    char issued[32], expires[32] = "never";
    cas_time_format(pol.issued, issued, sizeof(issued));
    if (pol.expires)
        cas_time_format(pol.expires, expires, sizeof(expires));
    printf("policy:         %s\n", path);
    printf("site:           %s\n", pol.site);
    printf("serial:         %" PRIu64 "\n", pol.serial);
    printf("issued:         %s\n", issued);
    printf("expires:        %s\n", expires);
    printf("advertisements: %zu\n", pol.n_adverts);
    if (sig) {
        printf("key id:         %s\n", keyid);
        printf("signature:      %s\n", sig_path);
    }

cleanup:
    if (have_pol)
        cas_policy_free(&pol);
    free(text);
    free(sig);
    free(sig_path);
    return hr;
}

/* ------------------------------------------------------------------------------------------ */
/* Editing the JSON                                                                            */
/* ------------------------------------------------------------------------------------------ */

static cas_hr cas_site_oom(void)
{
    return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
}

/* Read a document with the agent's strict JSON rules (no duplicate keys, depth limit), without
 * the policy checks: an edit may be what repairs it, and the result is checked anyway. */
static cas_hr cas_site_read_json(const char *path, cJSON **root)
{
    char *data = NULL;
    size_t len = 0;
    char detail[1024];
    cas_hr hr = cas_fs_read_file(path, CAS_POLICY_MAX_BYTES, &data, &len);
    if (hr != CAS_OK)
        return hr;
    hr = cas_json_parse(data, len, CAS_POLICY_MAX_DEPTH, "policy", root);
    free(data);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        return cas_fail(hr, "%s: %s", path, detail);
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return cas_fail(CAS_E_INVALID_DATA, "%s: policy: expected a JSON object", path);
    }
    return CAS_OK;
}

/* Put `item` at `key`: in place of an existing member (keeping its position), else right after
 * `after` (or at the end). Takes ownership of item. */
static cas_hr cas_site_set(cJSON *obj, const char *key, cJSON *item, const char *after)
{
    if (!item)
        return cas_site_oom();
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)) {
            cJSON_Delete(item);
            return cas_site_oom();
        }
        return CAS_OK;
    }
    cJSON *prev = after ? cJSON_GetObjectItemCaseSensitive(obj, after) : NULL;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return cas_site_oom();
    }
    /* Move the members that followed `after` behind the new one. (cJSON_InsertItemInArray
     * refuses to insert into an object after a detach in some cJSON versions.) */
    cJSON *c = prev ? prev->next : NULL;
    while (c && c != item) {
        cJSON *next = c->next;
        cJSON_DetachItemViaPointer(obj, c);
        cJSON_AddItemToArray(obj, c); /* keeps c's key */
        c = next;
    }
    return CAS_OK;
}

/* Integers are written as digits: a double would print 2^53 or a large size in exponent form. */
static cJSON *cas_site_u64(uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    return cJSON_CreateRaw(num);
}

static cJSON *cas_site_time(time_t t)
{
    char text[32];
    cas_time_format(t, text, sizeof(text));
    return cJSON_CreateString(text);
}

/* A decimal integer in [min, max]; the whole string. */
static int cas_site_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || strspn(s, "0123456789") != n)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno != 0 || v < min || v > max)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cas_site_parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno != 0 || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* The serial of a document being edited, for the bump. */
static cas_hr cas_site_doc_serial(const cJSON *root, const char *path, uint64_t *serial)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "serial");
    if (!cas_json_is_int(s, 1, (int64_t)CAS_SITE_SERIAL_MAX))
        return cas_fail(
            CAS_E_INVALID_DATA,
            "%s: serial: expected an integer from 1 to 2^53 - 1, so that a higher one can "
            "be given (edit it by hand)",
            path);
    *serial = (uint64_t)s->valuedouble;
    return CAS_OK;
}

/* The serial of a document that replaces one with serial `prev` (0: none known): --serial, which
 * must be higher, else prev + 1. The agent refuses any serial not higher than the last one it
 * applied (a replay or rollback), and one issued policy is the last one for some agents. */
static cas_hr cas_site_next_serial(uint64_t prev, const char *what,
                                   const struct cas_site_edit_opts *o, uint64_t *out)
{
    if (o->serial) {
        uint64_t v;
        if (!cas_site_parse_u64(o->serial, 1, CAS_SITE_SERIAL_MAX, &v))
            return cas_fail(CAS_E_INVALIDARG,
                            "--serial '%s': expected an integer from 1 to 2^53 - 1", o->serial);
        if (prev && v <= prev)
            return cas_fail(CAS_E_POLICY_REPLAY,
                            "--serial %" PRIu64 " is not higher than the serial of %s (%" PRIu64
                            "): agents that applied it would refuse the new policy as a replay",
                            v, what, prev);
        *out = v;
        return CAS_OK;
    }
    if (prev >= CAS_SITE_SERIAL_MAX)
        return cas_fail(CAS_E_INVALID_DATA, "%s has serial %" PRIu64 ", the highest allowed", what,
                        prev);
    *out = prev + 1;
    return CAS_OK;
}

/* When the new document expires: the expiry options, else `def` (KEEP: leave the document's
 * "expires" as it is; the final check refuses it if that time has passed). */
static cas_hr cas_site_expiry(const struct cas_site_edit_opts *o, time_t now,
                              enum cas_site_expiry def, time_t def_at, enum cas_site_expiry *mode,
                              time_t *at)
{
    char when[32], at_now[32];
    *mode = def;
    *at = def_at;
    if (o->no_expires) {
        *mode = CAS_SITE_EXPIRY_NONE;
        return CAS_OK;
    }
    if (o->expires) {
        if (cas_time_parse(o->expires, at) != CAS_OK)
            return cas_fail(CAS_E_INVALIDARG,
                            "--expires '%s': expected an RFC 3339 time such as "
                            "2026-11-30T06:00:00Z",
                            o->expires);
        if (*at <= now) {
            cas_time_format(*at, when, sizeof(when));
            cas_time_format(now, at_now, sizeof(at_now));
            return cas_fail(CAS_E_POLICY_EXPIRED,
                            "--expires %s is not after now (%s): agents refuse an expired policy",
                            when, at_now);
        }
        *mode = CAS_SITE_EXPIRY_AT;
        return CAS_OK;
    }
    if (o->expires_days) {
        double d;
        if (!cas_site_parse_double(o->expires_days, &d) || !(d > 0) || d > CAS_SITE_MAX_DAYS)
            return cas_fail(CAS_E_INVALIDARG,
                            "--expires-days '%s': expected a number of days above 0, at most %.0f",
                            o->expires_days, CAS_SITE_MAX_DAYS);
        /* Rounded up, so that a tiny D still expires after issued. (No ceil(): no libm.) */
        double secs = d * 86400.0;
        time_t whole = (time_t)secs;
        if ((double)whole < secs)
            whole++;
        *at = now + whole;
        *mode = CAS_SITE_EXPIRY_AT;
    }
    return CAS_OK;
}

/* An edit keeps "expires" by default; once that time has passed, the validator would only say
 * "must be after issued", which does not tell what to do. */
static cas_hr cas_site_check_kept_expiry(const cJSON *root, const char *path, time_t now)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "expires");
    time_t at;
    char when[32];
    if (!cJSON_IsString(e) || !e->valuestring || cas_time_parse(e->valuestring, &at) != CAS_OK ||
        at > now)
        return CAS_OK;
    cas_time_format(at, when, sizeof(when));
    return cas_fail(CAS_E_POLICY_EXPIRED,
                    "%s expired at %s, and an edit keeps its expiry: give a new --expires or "
                    "--expires-days (or --no-expires)",
                    path, when);
}

/* serial, issued = now and expires, in the usual order after "site". */
static cas_hr cas_site_set_header(cJSON *root, uint64_t serial, time_t now,
                                  enum cas_site_expiry mode, time_t expires)
{
    cas_hr hr = cas_site_set(root, "serial", cas_site_u64(serial), "site");
    if (hr == CAS_OK)
        hr = cas_site_set(root, "issued", cas_site_time(now), "serial");
    if (hr != CAS_OK)
        return hr;
    if (mode == CAS_SITE_EXPIRY_NONE)
        cJSON_DeleteItemFromObjectCaseSensitive(root, "expires");
    else if (mode == CAS_SITE_EXPIRY_AT)
        hr = cas_site_set(root, "expires", cas_site_time(expires), "issued");
    return hr;
}

static cas_hr cas_site_adverts(cJSON *root, const char *path, cJSON **ads)
{
    *ads = cJSON_GetObjectItemCaseSensitive(root, "advertisements");
    if (!cJSON_IsArray(*ads))
        return cas_fail(CAS_E_INVALID_DATA, "%s: advertisements: expected an array", path);
    return CAS_OK;
}

static cJSON *cas_site_find_advert(cJSON *ads, const char *id)
{
    for (cJSON *c = ads->child; c; c = c->next) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "id");
        if (cJSON_IsString(s) && s->valuestring && strcmp(s->valuestring, id) == 0)
            return c;
    }
    return NULL;
}

/* Take one of the edit options; 0 if c is not one. */
static int cas_site_edit_opt(int c, struct cas_site_edit_opts *o)
{
    switch (c) {
    case CAS_SITE_OPT_SERIAL:
        o->serial = optarg;
        return 1;
    case CAS_SITE_OPT_EXPIRES:
        o->expires = optarg;
        o->n_expiry++;
        return 1;
    case CAS_SITE_OPT_EXPIRES_DAYS:
        o->expires_days = optarg;
        o->n_expiry++;
        return 1;
    case CAS_SITE_OPT_NO_EXPIRES:
        o->no_expires = 1;
        o->n_expiry++;
        return 1;
    case CAS_SITE_OPT_KEY:
        o->key = optarg;
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* policy create                                                                               */
/* ------------------------------------------------------------------------------------------ */

struct cas_site_create {
    const char *site;
    const char *out;
    const char *last;
    int empty;
    int force;
    struct cas_site_edit_opts o;
};

static int cas_site_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static cas_hr cas_site_create_run(const struct cas_site_create *c)
{
    cas_hr hr = CAS_OK;
    cJSON *root = NULL;
    char *data = NULL;
    size_t len = 0;
    char detail[1024], what[1100];
    struct cas_policy last;
    int have_last = 0;
    uint64_t serial = 0;
    enum cas_site_expiry mode = CAS_SITE_EXPIRY_NONE;
    time_t expires = 0, now = cas_clock_now();
    struct stat st;

    memset(&last, 0, sizeof(last));
    if (c->site && !cas_id_is_site(c->site))
        return cas_fail(CAS_E_INVALIDARG, "site code '%s': expected 3 characters A-Z or 0-9",
                        c->site);
    /* A new serial-1 document over the site's live policy would be refused by every agent and
     * lose the advertisements: only --last (renewing it) or --force replaces a file. */
    if (!c->force && stat(c->out, &st) == 0 && !(c->last && cas_site_same_file(c->out, c->last)))
        return cas_fail(CAS_E_INVALIDARG,
                        "%s already exists: give it as --last to issue its successor, or use "
                        "--force to replace it",
                        c->out);

    if (c->last) {
        /* The last policy must be valid (its serial decides the new one) but may have expired:
         * renewing an expired policy is what this is for. */
        hr = cas_fs_read_file(c->last, CAS_POLICY_MAX_BYTES, &data, &len);
        if (hr != CAS_OK)
            goto cleanup;
        hr = cas_policy_parse(data, len, &last);
        if (hr != CAS_OK) {
            snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            hr = cas_fail(hr, "--last %s: not a valid policy: %s", c->last, detail);
            goto cleanup;
        }
        have_last = 1;
        if (c->site && strcmp(c->site, last.site) != 0) {
            hr = cas_fail(CAS_E_INVALIDARG,
                          "--site %s, but --last %s is site %s's policy: serials are per site",
                          c->site, c->last, last.site);
            goto cleanup;
        }
        hr = cas_site_read_json(c->last, &root);
        if (hr != CAS_OK)
            goto cleanup;
        snprintf(what, sizeof(what), "--last %s", c->last);
        hr = cas_site_next_serial(last.serial, what, &c->o, &serial);
        if (hr != CAS_OK)
            goto cleanup;
        /* The advertisements carry over: the agent replaces the whole policy, so a successor
         * without them would withdraw every one from every agent. --empty does that on purpose. */
        if (c->empty) {
            hr = cas_site_set(root, "advertisements", cJSON_CreateArray(), NULL);
            if (hr != CAS_OK)
                goto cleanup;
        }
        /* A renewed policy is valid as long as the last one was. */
        if (last.expires) {
            mode = CAS_SITE_EXPIRY_AT;
            expires = now + (last.expires - last.issued);
        }
    } else {
        hr = cas_site_next_serial(0, "", &c->o, &serial);
        if (hr != CAS_OK)
            goto cleanup;
        root = cJSON_CreateObject();
        if (!root || !cJSON_AddRawToObject(root, "schema", "1") ||
            !cJSON_AddStringToObject(root, "site", c->site) ||
            !cJSON_AddArrayToObject(root, "advertisements")) {
            hr = cas_site_oom();
            goto cleanup;
        }
    }

    hr = cas_site_expiry(&c->o, now, mode, expires, &mode, &expires);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_set_header(root, serial, now, mode, expires);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_write_policy(c->out, root, now, &c->o);

cleanup:
    if (have_last)
        cas_policy_free(&last);
    cJSON_Delete(root);
    free(data);
    return hr;
}

static int cas_site_cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"site", required_argument, NULL, CAS_SITE_OPT_SITE},
        {"out", required_argument, NULL, CAS_SITE_OPT_OUT},
        {"last", required_argument, NULL, CAS_SITE_OPT_LAST},
        {"empty", no_argument, NULL, CAS_SITE_OPT_EMPTY},
        {"force", no_argument, NULL, CAS_SITE_OPT_FORCE},
        CAS_SITE_EDIT_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct cas_site_create c;
    int ch;

    memset(&c, 0, sizeof(c));
    while ((ch = cas_site_getopt(argc, argv, opts, CAS_SITE_CREATE_USAGE)) != -1) {
        if (cas_site_edit_opt(ch, &c.o))
            continue;
        switch (ch) {
        case CAS_SITE_OPT_SITE:
            c.site = optarg;
            break;
        case CAS_SITE_OPT_OUT:
            c.out = optarg;
            break;
        case CAS_SITE_OPT_LAST:
            c.last = optarg;
            break;
        case CAS_SITE_OPT_EMPTY:
            c.empty = 1;
            break;
        case CAS_SITE_OPT_FORCE:
            c.force = 1;
            break;
        case CAS_SITE_OPT_HELP:
            printf("usage: cas-site %s\n", CAS_SITE_CREATE_USAGE);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cas_site_usage(CAS_SITE_CREATE_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!c.site && !c.last)
        return cas_site_usage(CAS_SITE_CREATE_USAGE, "missing --site (or --last)");
    if (!c.out)
        return cas_site_usage(CAS_SITE_CREATE_USAGE, "missing --out");
    if (c.empty && !c.last)
        return cas_site_usage(CAS_SITE_CREATE_USAGE, "--empty only applies with --last");
    if (c.o.n_expiry > 1)
        return cas_site_usage(CAS_SITE_CREATE_USAGE,
                              "give one of --expires, --expires-days and --no-expires");

    cas_hr hr = cas_site_create_run(&c);
    return hr == CAS_OK ? CAS_SITE_EXIT_OK : cas_site_report(hr);
}

/* ------------------------------------------------------------------------------------------ */
/* policy add-advert                                                                           */
/* ------------------------------------------------------------------------------------------ */

struct cas_site_add {
    const char *policy;
    const char *id;
    const char *content;
    const char *dp;
    const char **locations;
    size_t n_locations;
    const char *command;
    const char **args;
    size_t n_args;
    const char *context;
    int mandatory;
    const char *start;
    const char *rerun;
    const char *max_run;
    const char **codes;
    size_t n_codes;
    int persist;
    const char *alg;
    int no_verify;
    struct cas_site_edit_opts o;
};

/* What the policy says about a package, read from the DP folder it was built on. */
struct cas_site_pkg {
    enum cas_hash_alg alg;
    char hash[CAS_HASH_MAX_HEX + 1];
    uint64_t size;
    struct cas_sums listing;
};

/* The listing names its algorithm only by the length of its digests. */
static enum cas_hash_alg cas_site_listing_alg(const char *buf, size_t len)
{
    size_t hex = strspn(buf, "0123456789abcdef");
    if (len > 0 && hex == cas_hash_hexlen(CAS_HASH_SHA1))
        return CAS_HASH_SHA1;
    return CAS_HASH_SHA256;
}

/* The package hash exactly as `package build` printed it (the hash of DP/C.sums), and the size
 * the agent enforces: the total of the files on the DP, each of which must be there (and, unless
 * no_verify, hash to its line), or the advertisement could never be installed. */
static cas_hr cas_site_read_package(const struct cas_site_add *a, struct cas_site_pkg *pkg)
{
    cas_hr hr = CAS_OK;
    char *sums_name = NULL, *sums_path = NULL, *folder = NULL, *buf = NULL;
    size_t len = 0, extra = 0;
    const char *extra_name = NULL;
    struct cas_sums disk = {0};
    char detail[1024];

    if (asprintf(&sums_name, "%s.sums", a->content) < 0) {
        sums_name = NULL;
        return cas_site_oom();
    }
    sums_path = cas_path_join(a->dp, sums_name);
    folder = cas_path_join(a->dp, a->content);
    if (!sums_path || !folder) {
        hr = cas_site_oom();
        goto cleanup;
    }
    hr = cas_fs_read_file(sums_path, CAS_SITE_SUMS_MAX, &buf, &len);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr,
                      "content %s is not on the DP folder %s (%s): build it there first "
                      "with cas-site package build",
                      a->content, a->dp, detail);
        goto cleanup;
    }
    if (a->alg) {
        hr = cas_hash_alg_parse(a->alg, &pkg->alg);
        if (hr != CAS_OK) {
            hr = cas_fail(hr, "--alg '%s': expected sha256 or sha1", a->alg);
            goto cleanup;
        }
    } else {
        pkg->alg = cas_site_listing_alg(buf, len);
    }
    hr = cas_sums_parse(buf, len, pkg->alg, &pkg->listing);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr, "%s: not a %s sums listing: %s", sums_path, cas_hash_alg_name(pkg->alg),
                      detail);
        goto cleanup;
    }
    hr = cas_sums_package_hash(&pkg->listing, pkg->hash);
    if (hr != CAS_OK)
        goto cleanup;

    if (pkg->listing.count == 0)
        goto cleanup; /* an empty package has no files, and perhaps no folder */
    if (a->no_verify)
        hr = cas_sums_list_at(AT_FDCWD, folder, pkg->alg, &disk);
    else
        hr = cas_sums_build_at(AT_FDCWD, folder, pkg->alg, &disk);
    if (hr != CAS_OK) {
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr, "the files of %s on the DP: %s", a->content, detail);
        goto cleanup;
    }
    for (size_t i = 0; i < pkg->listing.count; i++) {
        const struct cas_sums_entry *want = &pkg->listing.entries[i];
        const struct cas_sums_entry *have = cas_sums_find(&disk, want->path);
        if (!have) {
            hr = cas_fail(CAS_E_FILE_MISSING,
                          "%s/%s: listed in %s but missing on the DP: agents could not download "
                          "the package",
                          folder, want->path, sums_name);
            goto cleanup;
        }
        if (!a->no_verify && strcmp(have->hex, want->hex) != 0) {
            hr = cas_fail(CAS_E_HASH_MISMATCH,
                          "%s/%s: %s %s on the DP, %s in %s: the DP copy is damaged; agents "
                          "would refuse it",
                          folder, want->path, cas_hash_alg_name(pkg->alg), have->hex, want->hex,
                          sums_name);
            goto cleanup;
        }
        pkg->size += have->size;
    }
    for (size_t i = 0; i < disk.count; i++) {
        if (!cas_sums_find(&pkg->listing, disk.entries[i].path)) {
            if (!extra_name)
                extra_name = disk.entries[i].path;
            extra++;
        }
    }
    if (extra)
        fprintf(stderr,
                "cas-site: warning: %s holds %zu file%s not listed in %s (e.g. '%s'); agents never "
                "download %s\n",
                folder, extra, extra == 1 ? "" : "s", sums_name, extra_name,
                extra == 1 ? "it" : "them");

cleanup:
    cas_sums_free(&disk);
    free(buf);
    free(folder);
    free(sums_path);
    free(sums_name);
    return hr;
}

static cJSON *cas_site_str_array(const char *const *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* cJSON_AddItemToObject that owns item either way (NULL item: out of memory). */
static int cas_site_add(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

/* The advertisement, every field written out (defaults too) so that a reviewer of the document
 * reads what the agent will do; "start" only when given, as its default follows "issued". */
static cas_hr cas_site_advert_json(const struct cas_site_add *a, const struct cas_site_pkg *pkg,
                                   cJSON **out)
{
    cJSON *adv = cJSON_CreateObject(), *hash = NULL, *prog = NULL, *codes = NULL;
    const char *dot = strchr(a->content, '.');
    char package[16] = "";
    uint64_t version = 0;
    double minutes = 120;

    if (!adv)
        return cas_site_oom();
    /* cas_id_is_content has checked the form: CEN00002.<decimal>. */
    snprintf(package, sizeof(package), "%.*s", (int)(dot - a->content), a->content);
    version = strtoull(dot + 1, NULL, 10);
    if (a->max_run && !cas_site_parse_double(a->max_run, &minutes)) {
        cJSON_Delete(adv);
        return cas_fail(CAS_E_INVALIDARG, "--max-run-minutes '%s': expected a number", a->max_run);
    }

    if (!cJSON_AddStringToObject(adv, "id", a->id) ||
        !cJSON_AddStringToObject(adv, "package", package) ||
        !cas_site_add(adv, "version", cas_site_u64(version)))
        goto oom;
    hash = cJSON_AddObjectToObject(adv, "hash");
    if (!hash || !cJSON_AddStringToObject(hash, "alg", cas_hash_alg_name(pkg->alg)) ||
        !cJSON_AddStringToObject(hash, "value", pkg->hash) ||
        !cas_site_add(adv, "size", cas_site_u64(pkg->size)) ||
        !cas_site_add(adv, "locations", cas_site_str_array(a->locations, a->n_locations)))
        goto oom;
    prog = cJSON_AddObjectToObject(adv, "program");
    if (!prog || !cJSON_AddStringToObject(prog, "command", a->command) ||
        !cas_site_add(prog, "args", cas_site_str_array(a->args, a->n_args)) ||
        !cJSON_AddStringToObject(prog, "context", a->context ? a->context : "System") ||
        !cJSON_AddNumberToObject(prog, "max_run_minutes", minutes))
        goto oom;
    codes = cJSON_AddArrayToObject(prog, "success_codes");
    if (!codes)
        goto oom;
    for (size_t i = 0; i < (a->n_codes ? a->n_codes : 2); i++) {
        int64_t v = i == 0 ? 0 : 3010; /* the agent's default, as the real client */
        if (a->n_codes) {
            char *end = NULL;
            errno = 0;
            long long x = strtoll(a->codes[i], &end, 10);
            if (!*a->codes[i] || *end || errno != 0 || x < INT32_MIN || x > INT32_MAX) {
                cJSON_Delete(adv);
                return cas_fail(CAS_E_INVALIDARG,
                                "--success-code '%s': expected an integer from -2147483648 to "
                                "2147483647",
                                a->codes[i]);
            }
            v = x;
        }
        cJSON *n = cJSON_CreateNumber((double)v);
        if (!n || !cJSON_AddItemToArray(codes, n)) {
            cJSON_Delete(n);
            goto oom;
        }
    }
    if (!cJSON_AddBoolToObject(adv, "mandatory", a->mandatory) ||
        (a->start && !cJSON_AddStringToObject(adv, "start", a->start)) ||
        !cJSON_AddStringToObject(adv, "rerun", a->rerun ? a->rerun : "if_failed") ||
        !cJSON_AddBoolToObject(adv, "persist", a->persist))
        goto oom;
    *out = adv;
    return CAS_OK;

oom:
    cJSON_Delete(adv);
    return cas_site_oom();
}

static cas_hr cas_site_add_run(const struct cas_site_add *a)
{
    cas_hr hr = CAS_OK;
    cJSON *root = NULL, *ads = NULL, *adv = NULL;
    struct cas_site_pkg pkg;
    uint64_t serial = 0;
    enum cas_site_expiry mode;
    time_t expires = 0, now = cas_clock_now(), start;

    memset(&pkg, 0, sizeof(pkg));
    /* The command line first, so a mistake there is named as such rather than as a field of the
     * resulting document. */
    if (!cas_id_is_content(a->content))
        return cas_fail(CAS_E_INVALIDARG,
                        "--content '%s': expected a content id, package id '.' version, like "
                        "CEN00002.2",
                        a->content);
    if (a->rerun && strcmp(a->rerun, "never") != 0 && strcmp(a->rerun, "if_failed") != 0 &&
        strcmp(a->rerun, "always") != 0)
        return cas_fail(CAS_E_INVALIDARG, "--rerun '%s': expected never, if_failed or always",
                        a->rerun);
    if (a->start && cas_time_parse(a->start, &start) != CAS_OK)
        return cas_fail(CAS_E_INVALIDARG,
                        "--start '%s': expected an RFC 3339 time such as 2026-11-23T06:00:00Z",
                        a->start);
    for (size_t i = 0; i < a->n_locations; i++) {
        if (!cas_url_is_base(a->locations[i]))
            return cas_fail(CAS_E_INVALIDARG,
                            "--location '%s': expected an http:// or https:// URL with a host, "
                            "no spaces, '?' or '#'",
                            a->locations[i]);
    }

    hr = cas_site_read_json(a->policy, &root);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_adverts(root, a->policy, &ads);
    if (hr != CAS_OK)
        goto cleanup;
    if (cas_site_find_advert(ads, a->id)) {
        hr = cas_fail(CAS_E_INVALIDARG,
                      "advertisement '%s' is already in %s: ids are unique in a policy (remove it "
                      "first with policy remove-advert, or choose another --id)",
                      a->id, a->policy);
        goto cleanup;
    }
    hr = cas_site_doc_serial(root, a->policy, &serial);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_next_serial(serial, a->policy, &a->o, &serial);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_expiry(&a->o, now, CAS_SITE_EXPIRY_KEEP, 0, &mode, &expires);
    if (hr != CAS_OK)
        goto cleanup;
    if (mode == CAS_SITE_EXPIRY_KEEP && (hr = cas_site_check_kept_expiry(root, a->policy, now)))
        goto cleanup;

    hr = cas_site_read_package(a, &pkg);
    if (hr != CAS_OK)
        goto cleanup;
    /* A relative command runs from the content folder: one the package lacks fails on every
     * agent, after the download. */
    if (a->command[0] != '/' && !cas_sums_find(&pkg.listing, a->command)) {
        hr = cas_fail(CAS_E_FILE_MISSING,
                      "--command '%s' is not a file of %s: a relative command runs from the "
                      "content folder (see %s/%s.sums)",
                      a->command, a->content, a->dp, a->content);
        goto cleanup;
    }

    hr = cas_site_advert_json(a, &pkg, &adv);
    if (hr != CAS_OK)
        goto cleanup;
    if (!cJSON_AddItemToArray(ads, adv)) {
        cJSON_Delete(adv);
        hr = cas_site_oom();
        goto cleanup;
    }
    hr = cas_site_set_header(root, serial, now, mode, expires);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_write_policy(a->policy, root, now, &a->o);
    if (hr != CAS_OK)
        goto cleanup;
    char upper[CAS_HASH_MAX_HEX + 1];
    cas_hex_upper(pkg.hash, upper);
    fprintf(stderr, "Added advertisement %s: %s, %zu file%s, %" PRIu64 " bytes, %s %s\n", a->id,
            a->content, pkg.listing.count, pkg.listing.count == 1 ? "" : "s", pkg.size,
            cas_hash_alg_name(pkg.alg), upper);

cleanup:
    cas_sums_free(&pkg.listing);
    cJSON_Delete(root);
    return hr;
}

static int cas_site_cmd_add(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, CAS_SITE_OPT_ID},
        {"content", required_argument, NULL, CAS_SITE_OPT_CONTENT},
        {"dp", required_argument, NULL, CAS_SITE_OPT_DP},
        {"location", required_argument, NULL, CAS_SITE_OPT_LOCATION},
        {"command", required_argument, NULL, CAS_SITE_OPT_COMMAND},
        {"arg", required_argument, NULL, CAS_SITE_OPT_ARG},
        {"context", required_argument, NULL, CAS_SITE_OPT_CONTEXT},
        {"mandatory", no_argument, NULL, CAS_SITE_OPT_MANDATORY},
        {"start", required_argument, NULL, CAS_SITE_OPT_START},
        {"rerun", required_argument, NULL, CAS_SITE_OPT_RERUN},
        {"max-run-minutes", required_argument, NULL, CAS_SITE_OPT_MAX_RUN},
        {"success-code", required_argument, NULL, CAS_SITE_OPT_SUCCESS_CODE},
        {"persist", no_argument, NULL, CAS_SITE_OPT_PERSIST},
        {"alg", required_argument, NULL, CAS_SITE_OPT_ALG},
        {"no-verify", no_argument, NULL, CAS_SITE_OPT_NO_VERIFY},
        CAS_SITE_EDIT_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct cas_site_add a;
    int ch, rc = CAS_SITE_EXIT_OK;
    size_t cap = (size_t)argc + 1;

    memset(&a, 0, sizeof(a));
    /* Each repeated option occurs at most argc times. */
    a.locations = calloc(cap, sizeof(*a.locations));
    a.args = calloc(cap, sizeof(*a.args));
    a.codes = calloc(cap, sizeof(*a.codes));
    if (!a.locations || !a.args || !a.codes) {
        rc = cas_site_report(cas_site_oom());
        goto cleanup;
    }
    while ((ch = cas_site_getopt(argc, argv, opts, CAS_SITE_ADD_USAGE)) != -1) {
        if (cas_site_edit_opt(ch, &a.o))
            continue;
        switch (ch) {
        case CAS_SITE_OPT_ID:
            a.id = optarg;
            break;
        case CAS_SITE_OPT_CONTENT:
            a.content = optarg;
            break;
        case CAS_SITE_OPT_DP:
            a.dp = optarg;
            break;
        case CAS_SITE_OPT_LOCATION:
            a.locations[a.n_locations++] = optarg;
            break;
        case CAS_SITE_OPT_COMMAND:
            a.command = optarg;
            break;
        case CAS_SITE_OPT_ARG:
            a.args[a.n_args++] = optarg;
            break;
        case CAS_SITE_OPT_CONTEXT:
            a.context = optarg;
            break;
        case CAS_SITE_OPT_MANDATORY:
            a.mandatory = 1;
            break;
        case CAS_SITE_OPT_START:
            a.start = optarg;
            break;
        case CAS_SITE_OPT_RERUN:
            a.rerun = optarg;
            break;
        case CAS_SITE_OPT_MAX_RUN:
            a.max_run = optarg;
            break;
        case CAS_SITE_OPT_SUCCESS_CODE:
            a.codes[a.n_codes++] = optarg;
            break;
        case CAS_SITE_OPT_PERSIST:
            a.persist = 1;
            break;
        case CAS_SITE_OPT_ALG:
            a.alg = optarg;
            break;
        case CAS_SITE_OPT_NO_VERIFY:
            a.no_verify = 1;
            break;
        case CAS_SITE_OPT_HELP:
            printf("usage: cas-site %s\n", CAS_SITE_ADD_USAGE);
            goto cleanup;
        default:
            rc = CAS_SITE_EXIT_USAGE;
            goto cleanup;
        }
    }
    if (optind >= argc)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing POLICY");
    else if (optind + 1 < argc)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "unexpected argument '%s'", argv[optind + 1]);
    else if (!a.id)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing --id");
    else if (!a.content)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing --content");
    else if (!a.dp)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing --dp");
    else if (a.n_locations == 0)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing --location");
    else if (!a.command)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE, "missing --command");
    else if (a.o.n_expiry > 1)
        rc = cas_site_usage(CAS_SITE_ADD_USAGE,
                            "give one of --expires, --expires-days and --no-expires");
    if (rc != CAS_SITE_EXIT_OK)
        goto cleanup;
    a.policy = argv[optind];

    cas_hr hr = cas_site_add_run(&a);
    if (hr != CAS_OK)
        rc = cas_site_report(hr);

cleanup:
    free(a.locations);
    free(a.args);
    free(a.codes);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* policy remove-advert                                                                        */
/* ------------------------------------------------------------------------------------------ */

static cas_hr cas_site_remove_run(const char *policy, const char *const *ids, size_t n_ids,
                                  const struct cas_site_edit_opts *o)
{
    cas_hr hr = CAS_OK;
    cJSON *root = NULL, *ads = NULL;
    uint64_t serial = 0;
    enum cas_site_expiry mode;
    time_t expires = 0, now = cas_clock_now();

    hr = cas_site_read_json(policy, &root);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_adverts(root, policy, &ads);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_doc_serial(root, policy, &serial);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_next_serial(serial, policy, o, &serial);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_expiry(o, now, CAS_SITE_EXPIRY_KEEP, 0, &mode, &expires);
    if (hr != CAS_OK)
        goto cleanup;
    if (mode == CAS_SITE_EXPIRY_KEEP && (hr = cas_site_check_kept_expiry(root, policy, now)))
        goto cleanup;
    /* All or nothing: the tree is only written if every id was found. */
    for (size_t i = 0; i < n_ids; i++) {
        cJSON *adv = cas_site_find_advert(ads, ids[i]);
        if (!adv) {
            hr = cas_fail(CAS_E_NOT_FOUND, "%s has no advertisement '%s'", policy, ids[i]);
            goto cleanup;
        }
        cJSON_Delete(cJSON_DetachItemViaPointer(ads, adv));
    }
    hr = cas_site_set_header(root, serial, now, mode, expires);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_write_policy(policy, root, now, o);
    if (hr != CAS_OK)
        goto cleanup;
    for (size_t i = 0; i < n_ids; i++)
        fprintf(stderr, "Removed advertisement %s\n", ids[i]);

cleanup:
    cJSON_Delete(root);
    return hr;
}

static int cas_site_cmd_remove(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, CAS_SITE_OPT_ID},
        CAS_SITE_EDIT_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct cas_site_edit_opts o;
    const char **ids = calloc((size_t)argc + 1, sizeof(*ids));
    size_t n_ids = 0;
    int ch, rc = CAS_SITE_EXIT_OK;

    memset(&o, 0, sizeof(o));
    if (!ids)
        return cas_site_report(cas_site_oom());
    while ((ch = cas_site_getopt(argc, argv, opts, CAS_SITE_REMOVE_USAGE)) != -1) {
        if (cas_site_edit_opt(ch, &o))
            continue;
        if (ch == CAS_SITE_OPT_ID) {
            ids[n_ids++] = optarg;
            continue;
        }
        if (ch == CAS_SITE_OPT_HELP)
            printf("usage: cas-site %s\n", CAS_SITE_REMOVE_USAGE);
        else
            rc = CAS_SITE_EXIT_USAGE;
        goto cleanup;
    }
    if (optind >= argc)
        rc = cas_site_usage(CAS_SITE_REMOVE_USAGE, "missing POLICY");
    else if (optind + 1 < argc)
        rc = cas_site_usage(CAS_SITE_REMOVE_USAGE, "unexpected argument '%s'", argv[optind + 1]);
    else if (n_ids == 0)
        rc = cas_site_usage(CAS_SITE_REMOVE_USAGE, "missing --id");
    else if (o.n_expiry > 1)
        rc = cas_site_usage(CAS_SITE_REMOVE_USAGE,
                            "give one of --expires, --expires-days and --no-expires");
    if (rc != CAS_SITE_EXIT_OK)
        goto cleanup;

    cas_hr hr = cas_site_remove_run(argv[optind], ids, n_ids, &o);
    if (hr != CAS_OK)
        rc = cas_site_report(hr);

cleanup:
    free(ids);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

int cas_site_cmd_policy(int argc, char **argv)
{
    if (argc < 1)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "missing subcommand");
    const char *sub = argv[0];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        printf("usage: cas-site %s\n       cas-site %s\n       cas-site %s\n       cas-site %s\n",
               CAS_SITE_CREATE_USAGE, CAS_SITE_ADD_USAGE, CAS_SITE_REMOVE_USAGE,
               CAS_SITE_SIGN_USAGE);
        return CAS_SITE_EXIT_OK;
    }
    optind = 0;
    if (!strcmp(sub, "sign"))
        return cas_site_cmd_sign(argc, argv);
    if (!strcmp(sub, "create"))
        return cas_site_cmd_create(argc, argv);
    if (!strcmp(sub, "add-advert"))
        return cas_site_cmd_add(argc, argv);
    if (!strcmp(sub, "remove-advert"))
        return cas_site_cmd_remove(argc, argv);
    return cas_site_usage(CAS_SITE_POLICY_USAGE, "unknown subcommand 'policy %s'", sub);
}
