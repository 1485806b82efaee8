/* cas-site policy sign: the detached signature agents check before applying a policy. An agent
 * refuses an invalid policy as a whole, so one is refused here too, before it is signed and
 * published, unless --no-check (for deliberately broken test documents). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/fsutil.h"
#include "common/path.h"
#include "common/policy.h"
#include "common/sig.h"
#include "site/site.h"

#define CAS_SITE_POLICY_USAGE "policy sign --key KEY [--no-check] POLICY"

/* --no-check also admits documents over the agent's limit, so that the agent's refusal of them
 * can be tested; this only bounds memory. */
#define CAS_SITE_UNCHECKED_MAX_BYTES (64u * 1024u * 1024u)

/* No terminal prompt: cas-site writes unencrypted keys, and a script must not hang on one. */
static int cas_site_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* The key id is defined on the public key, and only the private key is at hand: derive the
 * public PEM, then let cas_sig_verify_pem compute the id. Verifying the fresh signature with it
 * on the way also proves the signature is one an agent holding the matching .pem accepts. */
static cas_hr cas_site_check_signature(const char *key_path, const char *data, size_t len,
                                       const uint8_t *sig, size_t siglen, char *keyid)
{
    cas_hr hr = CAS_OK;
    BIO *in = BIO_new_file(key_path, "r");
    BIO *out = NULL;
    EVP_PKEY *pkey = NULL;
    char *pem = NULL;
    long pem_len;

    if (!in) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, key_path);
        goto cleanup;
    }
    pkey = PEM_read_bio_PrivateKey(in, NULL, cas_site_no_passphrase, NULL);
    if (!pkey) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, key_path);
        goto cleanup;
    }
    out = BIO_new(BIO_s_mem());
    if (!out || !PEM_write_bio_PUBKEY(out, pkey)) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "deriving the public key");
        goto cleanup;
    }
    pem_len = BIO_get_mem_data(out, &pem);
    if (pem_len <= 0 || !pem) {
        hr = cas_fail(CAS_E_BAD_KEY, "deriving the public key of %s", key_path);
        goto cleanup;
    }
    hr = cas_sig_verify_pem(pem, (size_t)pem_len, data, len, sig, siglen, keyid);
    if (hr != CAS_OK) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", cas_err_detail());
        hr = cas_fail(hr, "the new signature does not verify with the key's own public key: %s",
                      detail);
    }

cleanup:
    BIO_free(in);
    BIO_free(out);
    EVP_PKEY_free(pkey);
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
        hr = cas_policy_parse(data, len, &pol);
        if (hr != CAS_OK) {
            snprintf(detail, sizeof(detail), "%s", cas_err_detail());
            hr = cas_fail(hr, "%s: not a valid policy, not signed: %s (--no-check signs it anyway)",
                          policy_path, detail);
            goto cleanup;
        }
        cas_site_warn_site_mismatch(key_path, pol.site);
        cas_policy_free(&pol);
    }

    hr = cas_sig_sign_file(key_path, data, len, &sig, &siglen);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_check_signature(key_path, data, len, sig, siglen, keyid);
    if (hr != CAS_OK)
        goto cleanup;

    if (asprintf(&sig_path, "%s.sig", policy_path) < 0) {
        sig_path = NULL;
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

int cas_site_cmd_policy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"no-check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL;
    int check = 1, c;

    if (argc < 1)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "missing subcommand");
    if (strcmp(argv[0], "sign") != 0)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "unknown subcommand 'policy %s'", argv[0]);
    optind = 0;
    while ((c = cas_site_getopt(argc, argv, opts, CAS_SITE_POLICY_USAGE)) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 'n':
            check = 0;
            break;
        case 'h':
            printf("usage: cas-site %s\n", CAS_SITE_POLICY_USAGE);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (!key_path)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "missing --key");
    if (optind >= argc)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "missing POLICY");
    if (optind + 1 < argc)
        return cas_site_usage(CAS_SITE_POLICY_USAGE, "unexpected argument '%s'", argv[optind + 1]);

    cas_hr hr = cas_site_policy_sign(key_path, argv[optind], check);
    if (hr != CAS_OK)
        return cas_site_report(hr);
    return CAS_SITE_EXIT_OK;
}
