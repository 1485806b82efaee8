/* Detached signatures over a policy's exact bytes, OpenSSL 3 EVP only.
 *
 * The schemes are the ones the openssl command line makes, so a site can sign without cas-site:
 * Ed25519 is pure (the message itself, as `pkeyutl -sign -rawin`), RSA and ECDSA sign a SHA-256
 * digest (as `dgst -sha256 -sign`). Weak or unusual keys are refused before any signature is
 * looked at, so a trusted-keys folder cannot silently hold a key that would be easy to forge. */
#include "common/sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/fsutil.h"

#define SIG_MAX_KEY_FILE ((size_t)1024 * 1024)
#define SIG_RSA_MIN_BITS 2048

char *cas_sig_trusted_key_path(const char *trusted_keys_dir, const char *site)
{
    if (!trusted_keys_dir || !site)
        return NULL;
    size_t dl = strlen(trusted_keys_dir);
    const char *sep = (dl == 0 || trusted_keys_dir[dl - 1] == '/') ? "" : "/";
    size_t n = dl + strlen(sep) + strlen(site) + sizeof(".pem");
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s%s.pem", trusted_keys_dir, sep, site);
    return path;
}

/* First 8 bytes of SHA-256 over the DER SubjectPublicKeyInfo, upper-case hex: the same for the
 * private key and its public half, and computable with `openssl pkey -pubout -outform DER`. */
static cas_hr key_id(EVP_PKEY *pkey, char *out)
{
    unsigned char *der = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789ABCDEF";

    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0)
        return cas_fail(CAS_E_BAD_KEY, "cannot encode the public key");
    int ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (!ok || mdlen < CAS_KEYID_HEX / 2)
        return cas_fail(CAS_E_FAIL, "SHA-256 of the public key failed");
    for (size_t i = 0; i < CAS_KEYID_HEX / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0F];
    }
    out[CAS_KEYID_HEX] = '\0';
    return CAS_OK;
}

/* The digest for the key's scheme (NULL for Ed25519, which signs the message itself), or
 * CAS_E_BAD_KEY for a key type, size or curve that is not supported. */
static cas_hr key_scheme(EVP_PKEY *pkey, const char *what, const EVP_MD **md, int *is_rsa)
{
    *md = NULL;
    *is_rsa = 0;
    if (EVP_PKEY_is_a(pkey, "ED25519"))
        return CAS_OK;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < SIG_RSA_MIN_BITS)
            return cas_fail(CAS_E_BAD_KEY, "%s: RSA key of %d bits (at least %d required)", what,
                            bits, SIG_RSA_MIN_BITS);
        *md = EVP_sha256();
        *is_rsa = 1;
        return CAS_OK;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[80];
        size_t glen = 0;
        /* A key with explicit curve parameters has no group name and is refused with the rest. */
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1)
            return cas_fail(CAS_E_BAD_KEY, "%s: EC key without a named curve (P-256 required)",
                            what);
        if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)
            return cas_fail(CAS_E_BAD_KEY, "%s: EC key on curve %s (P-256 required)", what, group);
        *md = EVP_sha256();
        return CAS_OK;
    }
    const char *type = EVP_PKEY_get0_type_name(pkey);
    return cas_fail(CAS_E_BAD_KEY,
                    "%s: unsupported key type %s (Ed25519, RSA >= 2048 bits or ECDSA P-256)", what,
                    type ? type : "(unknown)");
}

static cas_hr load_public(const char *pem, size_t pem_len, const char *what, EVP_PKEY **out)
{
    *out = NULL;
    if (!pem || pem_len == 0 || pem_len > SIG_MAX_KEY_FILE)
        return cas_fail(CAS_E_BAD_KEY, "%s: not a PEM public key", what);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio)
        return cas_fail(CAS_E_OUTOFMEMORY, "%s: out of memory", what);
    *out = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!*out) {
        ERR_clear_error();
        return cas_fail(CAS_E_BAD_KEY, "%s: not a PEM public key (\"BEGIN PUBLIC KEY\")", what);
    }
    return CAS_OK;
}

static cas_hr verify_with(EVP_PKEY *pkey, const char *what, const void *data, size_t len,
                          const void *sig, size_t siglen)
{
    const EVP_MD *md;
    int is_rsa;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    cas_hr hr = key_scheme(pkey, what, &md, &is_rsa);
    if (hr != CAS_OK)
        return hr;
    if (!sig || siglen == 0)
        return cas_fail(CAS_E_BAD_SIGNATURE, "%s: the signature is empty", what);
    if (siglen > CAS_SIG_MAX_BYTES)
        return cas_fail(CAS_E_BAD_SIGNATURE, "%s: signature of %zu bytes is too long", what,
                        siglen);

    ctx = EVP_MD_CTX_new();
    if (!ctx)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) != 1 ||
        (is_rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)) {
        hr = cas_fail(CAS_E_BAD_KEY, "%s: cannot verify with this key", what);
        goto cleanup;
    }
    if (EVP_DigestVerify(ctx, sig, siglen, data ? data : (const void *)"", len) != 1)
        hr = cas_fail(CAS_E_BAD_SIGNATURE, "%s: the signature does not verify", what);

cleanup:
    EVP_MD_CTX_free(ctx);
    return hr;
}

static cas_hr verify_pem(const char *pem, size_t pem_len, const char *what, const void *data,
                         size_t len, const void *sig, size_t siglen, char *keyid_out)
{
    EVP_PKEY *pkey = NULL;
    cas_hr hr = load_public(pem, pem_len, what, &pkey);
    if (hr != CAS_OK)
        goto cleanup;
    if (keyid_out && (hr = key_id(pkey, keyid_out)) != CAS_OK)
        goto cleanup;
    hr = verify_with(pkey, what, data, len, sig, siglen);

cleanup:
    EVP_PKEY_free(pkey);
    if (hr != CAS_OK)
        ERR_clear_error(); /* so a stale entry is not blamed on a later, unrelated call */
    return hr;
}

cas_hr cas_sig_verify_pem(const char *pem, size_t pem_len, const void *data, size_t len,
                          const void *sig, size_t siglen, char *keyid_out)
{
    return verify_pem(pem, pem_len, "public key", data, len, sig, siglen, keyid_out);
}

/* Read a key file; a missing one keeps CAS_E_FILE_MISSING, any other failure is CAS_E_BAD_KEY. */
static cas_hr read_key_file(const char *path, char **buf, size_t *len)
{
    cas_hr hr = cas_fs_read_file(path, SIG_MAX_KEY_FILE, buf, len);
    if (hr == CAS_OK || hr == CAS_E_FILE_MISSING)
        return hr;
    char why[256];
    snprintf(why, sizeof(why), "%s", cas_err_detail());
    return cas_fail(CAS_E_BAD_KEY, "key file cannot be read: %s", why);
}

cas_hr cas_sig_verify_file(const char *pem_path, const void *data, size_t len, const void *sig,
                           size_t siglen, char *keyid_out)
{
    char *pem = NULL;
    size_t pem_len = 0;
    cas_hr hr = read_key_file(pem_path, &pem, &pem_len);
    if (hr == CAS_E_FILE_MISSING)
        return cas_fail(CAS_E_UNTRUSTED_SITE, "no trusted key %s", pem_path);
    if (hr != CAS_OK)
        return hr;
    hr = verify_pem(pem, pem_len, pem_path, data, len, sig, siglen, keyid_out);
    free(pem);
    return hr;
}

cas_hr cas_sig_keyid_file(const char *pem_path, char *keyid_out)
{
    char *pem = NULL;
    size_t pem_len = 0;
    EVP_PKEY *pkey = NULL;
    cas_hr hr = read_key_file(pem_path, &pem, &pem_len);
    if (hr != CAS_OK)
        return hr;
    hr = load_public(pem, pem_len, pem_path, &pkey);
    if (hr == CAS_OK)
        hr = key_id(pkey, keyid_out);
    EVP_PKEY_free(pkey);
    free(pem);
    if (hr != CAS_OK)
        ERR_clear_error();
    return hr;
}

/* A passphrase is never asked for: cas-site runs unattended, and OpenSSL's default callback
 * would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Read an unencrypted PEM private key file; the file's bytes are wiped after parsing. */
static cas_hr load_private_key(const char *key_path, EVP_PKEY **out)
{
    char *pem = NULL;
    size_t pem_len = 0;
    BIO *bio = NULL;
    cas_hr hr = read_key_file(key_path, &pem, &pem_len);

    *out = NULL;
    if (hr != CAS_OK)
        return hr;
    if (pem_len == 0 || pem_len > SIG_MAX_KEY_FILE) {
        hr = cas_fail(CAS_E_BAD_KEY, "%s: not a PEM private key", key_path);
        goto cleanup;
    }
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    *out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!*out)
        hr = cas_fail(CAS_E_BAD_KEY,
                      "%s: not an unencrypted PEM private key (encrypted keys are not supported)",
                      key_path);
cleanup:
    BIO_free(bio);
    if (pem)
        OPENSSL_cleanse(pem, pem_len); /* private key material */
    free(pem);
    return hr;
}

cas_hr cas_sig_public_pem_file(const char *key_path, char **pem_out, size_t *len_out)
{
    EVP_PKEY *pkey = NULL;
    BIO *out = NULL;
    char *data = NULL;
    cas_hr hr;

    *pem_out = NULL;
    *len_out = 0;
    hr = load_private_key(key_path, &pkey);
    if (hr == CAS_E_FILE_MISSING)
        hr = cas_fail(CAS_E_BAD_KEY, "%s: no such key file", key_path);
    if (hr != CAS_OK)
        goto cleanup;
    out = BIO_new(BIO_s_mem());
    if (!out || !PEM_write_bio_PUBKEY(out, pkey)) {
        hr = cas_fail(CAS_E_BAD_KEY, "%s: deriving the public key failed", key_path);
        goto cleanup;
    }
    long n = BIO_get_mem_data(out, &data);
    if (n <= 0 || !data || !(*pem_out = malloc((size_t)n + 1))) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    memcpy(*pem_out, data, (size_t)n);
    (*pem_out)[n] = '\0';
    *len_out = (size_t)n;
cleanup:
    BIO_free(out);
    EVP_PKEY_free(pkey);
    if (hr != CAS_OK)
        ERR_clear_error();
    return hr;
}

cas_hr cas_sig_sign_file(const char *key_path, const void *data, size_t len, uint8_t **sig_out,
                         size_t *siglen_out)
{
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md;
    int is_rsa;
    uint8_t *sig = NULL;
    size_t siglen = 0;
    cas_hr hr;

    *sig_out = NULL;
    *siglen_out = 0;
    hr = load_private_key(key_path, &pkey);
    if (hr != CAS_OK)
        goto cleanup;
    if ((hr = key_scheme(pkey, key_path, &md, &is_rsa)) != CAS_OK)
        goto cleanup;

    ctx = EVP_MD_CTX_new();
    int maxlen = EVP_PKEY_get_size(pkey);
    if (!ctx || maxlen <= 0 || !(sig = malloc((size_t)maxlen))) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    siglen = (size_t)maxlen;
    if (EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) != 1 ||
        (is_rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) ||
        EVP_DigestSign(ctx, sig, &siglen, data ? data : (const void *)"", len) != 1) {
        hr = cas_fail(CAS_E_BAD_KEY, "%s: signing failed", key_path);
        goto cleanup;
    }
    *sig_out = sig;
    *siglen_out = siglen;
    sig = NULL;

cleanup:
    free(sig);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    if (hr != CAS_OK)
        ERR_clear_error();
    return hr;
}
