/* Detached policy signatures: round trips per key type, every way a signature can be wrong,
 * refused keys, and signatures made by the openssl command line (tests/data/sig). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/sig.h"

static char tmpdir[64];

static const char message[] = "{\"schema\":1,\"site\":\"CEN\",\"serial\":1}\n";

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int turn;
    char *p = buf[turn++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

static void write_pems(EVP_PKEY *pkey, const char *name, const EVP_CIPHER *enc)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.key", name);
    BIO *b = BIO_new_file(tmp_path(file), "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, enc, enc ? (unsigned char *)"secret" : NULL,
                                              enc ? 6 : 0, NULL, NULL),
                     1);
    BIO_free(b);
    snprintf(file, sizeof(file), "%s.pem", name);
    b = BIO_new_file(tmp_path(file), "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, pkey), 1);
    BIO_free(b);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sig.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;

    EVP_PKEY *k;
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    write_pems(k, "ed25519", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    write_pems(k, "ed25519b", NULL);
    write_pems(k, "encrypted", EVP_aes_128_cbc());
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    write_pems(k, "rsa2048", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    write_pems(k, "p256", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    write_pems(k, "rsa1024", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    write_pems(k, "p384", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    write_pems(k, "ed448", NULL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    write_pems(k, "x25519", NULL);
    EVP_PKEY_free(k);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char *p = tmp_path(e->d_name);
                if (unlink(p) != 0)
                    rmdir(p);
            }
        }
        closedir(d);
    }
    return rmdir(tmpdir);
}

static int is_keyid(const char *s)
{
    if (strlen(s) != CAS_KEYID_HEX)
        return 0;
    return strspn(s, "0123456789ABCDEF") == CAS_KEYID_HEX;
}

static void sign(const char *name, const void *data, size_t len, uint8_t **sig, size_t *siglen)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.key", name);
    cas_hr hr = cas_sig_sign_file(tmp_path(file), data, len, sig, siglen);
    if (hr != CAS_OK)
        fail_msg("signing with %s: 0x%08X %s", name, (unsigned)hr, cas_err_detail());
    assert_non_null(*sig);
    assert_true(*siglen > 0);
}

static cas_hr verify(const char *name, const void *data, size_t len, const void *sig, size_t siglen,
                     char *keyid)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.pem", name);
    return cas_sig_verify_file(tmp_path(file), data, len, sig, siglen, keyid);
}

static void roundtrip(const char *name, size_t expect_len)
{
    uint8_t *sig = NULL;
    size_t siglen = 0;
    char id1[CAS_KEYID_HEX + 1], id2[CAS_KEYID_HEX + 1], id3[CAS_KEYID_HEX + 1];
    char file[64];

    sign(name, message, strlen(message), &sig, &siglen);
    if (expect_len)
        assert_int_equal(siglen, expect_len);
    assert_int_equal(verify(name, message, strlen(message), sig, siglen, id1), CAS_OK);
    assert_true(is_keyid(id1));

    /* The key id is stable and the same from every entry point. */
    assert_int_equal(verify(name, message, strlen(message), sig, siglen, id2), CAS_OK);
    assert_string_equal(id1, id2);
    snprintf(file, sizeof(file), "%s.pem", name);
    assert_int_equal(cas_sig_keyid_file(tmp_path(file), id3), CAS_OK);
    assert_string_equal(id1, id3);

    /* Without a key id buffer, and from PEM text in memory. */
    assert_int_equal(verify(name, message, strlen(message), sig, siglen, NULL), CAS_OK);
    size_t pem_len;
    char *pem = read_whole(tmp_path(file), &pem_len);
    memset(id2, 0, sizeof(id2));
    assert_int_equal(cas_sig_verify_pem(pem, pem_len, message, strlen(message), sig, siglen, id2),
                     CAS_OK);
    assert_string_equal(id1, id2);

    /* The public half derived from the private key file is the .pem, byte for byte. */
    char keyfile[64], *derived = NULL;
    size_t derived_len = 0;
    snprintf(keyfile, sizeof(keyfile), "%s.key", name);
    assert_int_equal(cas_sig_public_pem_file(tmp_path(keyfile), &derived, &derived_len), CAS_OK);
    assert_int_equal(derived_len, pem_len);
    assert_memory_equal(derived, pem, pem_len);
    assert_int_equal(derived[derived_len], '\0');
    free(derived);
    free(pem);

    /* One flipped bit in the data, at the start, middle and end. */
    char data[sizeof(message)];
    size_t len = strlen(message);
    size_t where[3] = {0, len / 2, len - 1};
    for (int i = 0; i < 3; i++) {
        memcpy(data, message, sizeof(message));
        data[where[i]] ^= 0x01;
        assert_int_equal(verify(name, data, len, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    }
    /* The data one byte shorter or longer. */
    assert_int_equal(verify(name, message, len - 1, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    assert_int_equal(verify(name, message, len + 1, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);

    /* One flipped byte in the signature, at the start, middle and end. */
    uint8_t *bad = malloc(siglen + 1);
    assert_non_null(bad);
    size_t swhere[3] = {0, siglen / 2, siglen - 1};
    for (int i = 0; i < 3; i++) {
        memcpy(bad, sig, siglen);
        bad[swhere[i]] ^= 0xFF;
        assert_int_equal(verify(name, message, len, bad, siglen, NULL), CAS_E_BAD_SIGNATURE);
    }
    /* Truncated, extended, empty. */
    assert_int_equal(verify(name, message, len, sig, siglen - 1, NULL), CAS_E_BAD_SIGNATURE);
    memcpy(bad, sig, siglen);
    bad[siglen] = 0;
    assert_int_equal(verify(name, message, len, bad, siglen + 1, NULL), CAS_E_BAD_SIGNATURE);
    assert_int_equal(verify(name, message, len, sig, 0, id2), CAS_E_BAD_SIGNATURE);
    assert_string_equal(id1, id2); /* the key was loaded, so the id is known */
    assert_int_equal(verify(name, message, len, NULL, 0, NULL), CAS_E_BAD_SIGNATURE);
    free(bad);

    /* Nothing stays in OpenSSL's error queue after a failure. */
    assert_int_equal(ERR_peek_error(), 0);
    free(sig);
}

static void test_ed25519_roundtrip(void **state)
{
    (void)state;
    roundtrip("ed25519", 64);
}

static void test_rsa2048_roundtrip(void **state)
{
    (void)state;
    roundtrip("rsa2048", 256);
}

static void test_p256_roundtrip(void **state)
{
    (void)state;
    roundtrip("p256", 0); /* DER: 70 to 72 bytes, usually */
}

static void test_empty_message(void **state)
{
    (void)state;
    uint8_t *sig;
    size_t siglen;
    sign("ed25519", "", 0, &sig, &siglen);
    assert_int_equal(verify("ed25519", "", 0, sig, siglen, NULL), CAS_OK);
    assert_int_equal(verify("ed25519", "x", 1, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    free(sig);
}

static void test_wrong_key(void **state)
{
    (void)state;
    uint8_t *sig;
    size_t siglen;
    size_t len = strlen(message);
    char ida[CAS_KEYID_HEX + 1], idb[CAS_KEYID_HEX + 1];

    sign("ed25519", message, len, &sig, &siglen);
    assert_int_equal(verify("ed25519b", message, len, sig, siglen, idb), CAS_E_BAD_SIGNATURE);
    assert_int_equal(verify("ed25519", message, len, sig, siglen, ida), CAS_OK);
    assert_string_not_equal(ida, idb);
    /* Another key type entirely. */
    assert_int_equal(verify("rsa2048", message, len, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    assert_int_equal(verify("p256", message, len, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    free(sig);

    sign("rsa2048", message, len, &sig, &siglen);
    assert_int_equal(verify("p256", message, len, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    assert_int_equal(verify("ed25519", message, len, sig, siglen, NULL), CAS_E_BAD_SIGNATURE);
    free(sig);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_oversized_signature(void **state)
{
    (void)state;
    size_t n = CAS_SIG_MAX_BYTES + 1;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(verify("rsa2048", message, strlen(message), big, n, NULL),
                     CAS_E_BAD_SIGNATURE);
    free(big);
}

static void test_missing_key_file(void **state)
{
    (void)state;
    uint8_t sig[64] = {0};
    char id[CAS_KEYID_HEX + 1] = "unchanged";
    assert_int_equal(cas_sig_verify_file(tmp_path("XYZ.pem"), message, 4, sig, 64, id),
                     CAS_E_UNTRUSTED_SITE);
    assert_non_null(strstr(cas_err_detail(), "XYZ.pem"));
    assert_string_equal(id, "unchanged");
    assert_int_equal(cas_sig_keyid_file(tmp_path("XYZ.pem"), id), CAS_E_FILE_MISSING);

    uint8_t *out = (uint8_t *)1;
    size_t outlen = 1;
    assert_int_equal(cas_sig_sign_file(tmp_path("XYZ.key"), message, 4, &out, &outlen),
                     CAS_E_FILE_MISSING);
    assert_null(out);
    assert_int_equal(outlen, 0);

    char *pem = (char *)1;
    size_t pem_len = 1;
    assert_int_equal(cas_sig_public_pem_file(tmp_path("XYZ.key"), &pem, &pem_len), CAS_E_BAD_KEY);
    assert_null(pem);
    assert_int_equal(pem_len, 0);
}

static void test_bad_key_files(void **state)
{
    (void)state;
    uint8_t sig[64] = {0};
    char id[CAS_KEYID_HEX + 1];
    static const char garbage[] =
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";

    write_file(tmp_path("garbage.pem"), garbage, strlen(garbage));
    assert_int_equal(cas_sig_verify_file(tmp_path("garbage.pem"), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    write_file(tmp_path("text.pem"), "hello\n", 6);
    assert_int_equal(cas_sig_verify_file(tmp_path("text.pem"), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    write_file(tmp_path("empty.pem"), "", 0);
    assert_int_equal(cas_sig_verify_file(tmp_path("empty.pem"), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    assert_int_equal(cas_sig_keyid_file(tmp_path("garbage.pem"), id), CAS_E_BAD_KEY);
    /* A private key where the public one belongs. */
    assert_int_equal(cas_sig_verify_file(tmp_path("ed25519.key"), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    /* A folder. */
    assert_int_equal(mkdir(tmp_path("dir.pem"), 0700), 0);
    assert_int_equal(cas_sig_verify_file(tmp_path("dir.pem"), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    /* In memory. */
    assert_int_equal(cas_sig_verify_pem(garbage, strlen(garbage), message, 4, sig, 64, id),
                     CAS_E_BAD_KEY);
    assert_int_equal(cas_sig_verify_pem("", 0, message, 4, sig, 64, id), CAS_E_BAD_KEY);

    /* Signing with a public key or garbage. */
    uint8_t *out;
    size_t outlen;
    assert_int_equal(cas_sig_sign_file(tmp_path("ed25519.pem"), message, 4, &out, &outlen),
                     CAS_E_BAD_KEY);
    assert_int_equal(cas_sig_sign_file(tmp_path("garbage.pem"), message, 4, &out, &outlen),
                     CAS_E_BAD_KEY);
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(cas_sig_public_pem_file(tmp_path("ed25519.pem"), &pem, &pem_len),
                     CAS_E_BAD_KEY);
    assert_null(pem);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_unsupported_keys(void **state)
{
    (void)state;
    static const char *const weak[] = {"rsa1024", "p384", "ed448", "x25519"};
    size_t len = strlen(message);
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        char id[CAS_KEYID_HEX + 1] = "";
        uint8_t sig[512] = {0};
        cas_hr hr = verify(weak[i], message, len, sig, sizeof(sig), id);
        if (hr != CAS_E_BAD_KEY)
            fail_msg("%s: expected CAS_E_BAD_KEY, got 0x%08X", weak[i], (unsigned)hr);
        /* The key itself was read: its id is there for the log line. */
        assert_true(is_keyid(id));

        char file[64];
        snprintf(file, sizeof(file), "%s.key", weak[i]);
        uint8_t *out = NULL;
        size_t outlen = 0;
        hr = cas_sig_sign_file(tmp_path(file), message, len, &out, &outlen);
        if (hr != CAS_E_BAD_KEY)
            fail_msg("signing with %s: expected CAS_E_BAD_KEY, got 0x%08X", weak[i], (unsigned)hr);
        assert_null(out);
    }
    assert_non_null(strstr(cas_err_detail(), "x25519"));
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_encrypted_private_key_refused(void **state)
{
    (void)state;
    uint8_t *out = NULL;
    size_t outlen = 0;
    /* Refused without prompting for a passphrase. */
    assert_int_equal(cas_sig_sign_file(tmp_path("encrypted.key"), message, 4, &out, &outlen),
                     CAS_E_BAD_KEY);
    assert_null(out);
    assert_non_null(strstr(cas_err_detail(), "encrypted"));
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_trusted_key_path(void **state)
{
    (void)state;
    char *p = cas_sig_trusted_key_path("/etc/cas-agent/trusted-keys", "CEN");
    assert_string_equal(p, "/etc/cas-agent/trusted-keys/CEN.pem");
    free(p);
    p = cas_sig_trusted_key_path("keys/", "PS1");
    assert_string_equal(p, "keys/PS1.pem");
    free(p);
}

/* ---- signatures made by the openssl command line (tests/data/sig/README) */

#define SIG_DATA CAS_TEST_DATA_DIR "/sig/"

struct fixture {
    const char *key, *sig, *keyid;
};

static const struct fixture fixtures[] = {
    {SIG_DATA "ed25519.pub.pem", SIG_DATA "policy.json.ed25519.sig", "1A24B138F9DA0550"},
    {SIG_DATA "rsa2048.pub.pem", SIG_DATA "policy.json.rsa2048.sig", "2D3B5BA01069052E"},
    {SIG_DATA "p256.pub.pem", SIG_DATA "policy.json.p256.sig", "A0162141B6A68F25"},
};

static void test_openssl_cli_signatures(void **state)
{
    (void)state;
    size_t plen;
    char *policy = read_whole(SIG_DATA "policy.json", &plen);
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        size_t slen;
        char *sig = read_whole(fixtures[i].sig, &slen);
        char id[CAS_KEYID_HEX + 1];
        cas_hr hr = cas_sig_verify_file(fixtures[i].key, policy, plen, sig, slen, id);
        if (hr != CAS_OK)
            fail_msg("%s: 0x%08X %s", fixtures[i].sig, (unsigned)hr, cas_err_detail());
        /* The key id matches `openssl pkey -outform DER | sha256sum`. */
        assert_string_equal(id, fixtures[i].keyid);
        assert_int_equal(cas_sig_keyid_file(fixtures[i].key, id), CAS_OK);
        assert_string_equal(id, fixtures[i].keyid);

        /* The same signature over a changed policy, or checked with another fixture key. */
        policy[plen / 2] ^= 0x20;
        assert_int_equal(cas_sig_verify_file(fixtures[i].key, policy, plen, sig, slen, NULL),
                         CAS_E_BAD_SIGNATURE);
        policy[plen / 2] ^= 0x20;
        const struct fixture *other = &fixtures[(i + 1) % 3];
        assert_int_equal(cas_sig_verify_file(other->key, policy, plen, sig, slen, NULL),
                         CAS_E_BAD_SIGNATURE);
        free(sig);
    }
    free(policy);
}

/* The reverse direction: what cas_sig_sign_file makes, the openssl command line verifies with
 * the commands of contract.md. Skipped where no openssl program is installed. */
static void test_cli_verifies_our_signatures(void **state)
{
    (void)state;
    // NOLINTNEXTLINE(cert-env33-c): the test drives the openssl CLI, as contract.md shows it
    if (system("openssl version >/dev/null 2>&1") != 0)
        skip();
    static const char *const names[] = {"ed25519", "rsa2048", "p256"};
    write_file(tmp_path("msg"), message, strlen(message));
    for (size_t i = 0; i < 3; i++) {
        uint8_t *sig;
        size_t siglen;
        char cmd[1024];
        sign(names[i], message, strlen(message), &sig, &siglen);
        write_file(tmp_path("msg.sig"), sig, siglen);
        if (i == 0)
            snprintf(cmd, sizeof(cmd),
                     "openssl pkeyutl -verify -pubin -inkey %s/ed25519.pem -rawin -in %s/msg "
                     "-sigfile %s/msg.sig >/dev/null 2>&1",
                     tmpdir, tmpdir, tmpdir);
        else
            snprintf(cmd, sizeof(cmd),
                     "openssl dgst -sha256 -verify %s/%s.pem -signature %s/msg.sig %s/msg "
                     ">/dev/null 2>&1",
                     tmpdir, names[i], tmpdir, tmpdir);
        if (system(cmd) != 0) // NOLINT(cert-env33-c): the openssl CLI, a command the test built
            fail_msg("openssl does not verify our %s signature: %s", names[i], cmd);
        /* And the command does fail on a bad signature, so the check above means something. */
        sig[siglen / 2] ^= 0x01;
        write_file(tmp_path("msg.sig"), sig, siglen);
        assert_int_not_equal(system(cmd), 0); // NOLINT(cert-env33-c): the openssl CLI
        free(sig);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_roundtrip),
        cmocka_unit_test(test_rsa2048_roundtrip),
        cmocka_unit_test(test_p256_roundtrip),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_oversized_signature),
        cmocka_unit_test(test_missing_key_file),
        cmocka_unit_test(test_bad_key_files),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_encrypted_private_key_refused),
        cmocka_unit_test(test_trusted_key_path),
        cmocka_unit_test(test_openssl_cli_signatures),
        cmocka_unit_test(test_cli_verifies_our_signatures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
