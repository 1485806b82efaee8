/* The site key change: the document's every field, then the verify-and-apply with real keys in a
 * temporary trusted-keys folder: an accepted change replaces <SITE>.pem so the old key no longer
 * verifies anything; a wrong signer, a replayed serial, a missing trusted key (no trust on first
 * use) or an unreadable state refuse and leave the trusted key byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/keychange.h"
#include "common/log.h"
#include "common/sig.h"

enum { K1, K2, K3, KX, KEC, KRSA, NKEYS };

struct key {
    EVP_PKEY *pkey;
    char *pem; /* public, as `openssl pkey -pubout` writes it */
    char id[CAS_KEYID_HEX + 1];
};

static struct key keys[NKEYS];
static char tmpdir[64];
static char *trusted, *statedir, *logdir, *cen_pem, *state_file;

/* The id computed here, independently of cas_sig: SHA-256 of the DER SubjectPublicKeyInfo. */
static void key_id(EVP_PKEY *k, char *out)
{
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int n = i2d_PUBKEY(k, &der);
    assert_true(n > 0);
    assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
    for (size_t i = 0; i < CAS_KEYID_HEX / 2; i++)
        sprintf(out + 2 * i, "%02X", md[i]);
}

static void make_key(struct key *k, EVP_PKEY *pkey)
{
    k->pkey = pkey;
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PUBKEY(b, pkey));
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    k->pem = strndup(data, (size_t)n);
    BIO_free(b);
    key_id(pkey, k->id);
}

static void sign(const struct key *k, const char *data, size_t len, uint8_t **sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = EVP_PKEY_is_a(k->pkey, "ED25519") ? NULL : EVP_sha256();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k->pkey), 1);
    assert_int_equal(EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)data, len), 1);
    *sig = malloc(*siglen);
    assert_int_equal(EVP_DigestSign(ctx, *sig, siglen, (const unsigned char *)data, len), 1);
    EVP_MD_CTX_free(ctx);
}

/* JSON string body of a PEM: line feeds escaped. */
static void json_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && o + 3 < size; s++) {
        if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

/* A key-change document; key_id NULL: the key's own id. */
static char *doc_for(const char *site, unsigned long long serial, const struct key *k,
                     const char *key_id_text)
{
    char esc[8192], *doc = NULL;
    json_escape(k->pem, esc, sizeof(esc));
    assert_true(asprintf(&doc,
                         "{\"schema\":1,\"type\":\"keychange\",\"site\":\"%s\",\"serial\":%llu,"
                         "\"issued\":\"2026-11-23T06:00:00Z\",\"key\":\"%s\",\"key_id\":\"%s\","
                         "\"comment\":\"unknown fields are ignored\"}",
                         site, serial, esc, key_id_text ? key_id_text : k->id) > 0);
    return doc;
}

static char *read_text(const char *path, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    assert_int_equal(cas_fs_read_file(path, 1 << 20, &buf, &n), CAS_OK);
    if (len)
        *len = n;
    return buf;
}

static void trust(const struct key *k)
{
    assert_int_equal(cas_fs_write_atomic(cen_pem, k->pem, strlen(k->pem), 0644), CAS_OK);
}

static void assert_trusted(const struct key *k)
{
    char *pem = read_text(cen_pem, NULL);
    assert_string_equal(pem, k->pem);
    free(pem);
}

/* Apply a document (site CEN) signed by `signer` (NULL: no signature). */
static cas_hr apply(const char *doc, const struct key *signer, struct cas_keychange_result *res)
{
    uint8_t *sig = NULL;
    size_t siglen = 0;
    if (signer)
        sign(signer, doc, strlen(doc), &sig, &siglen);
    cas_hr hr = cas_keychange_apply("test.keychange", "CEN", doc, strlen(doc), sig, siglen, trusted,
                                    statedir, res);
    free(sig);
    return hr;
}

static int group_setup(void **state)
{
    (void)state;
    make_key(&keys[K1], EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    make_key(&keys[K2], EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    make_key(&keys[K3], EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    make_key(&keys[KX], EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    make_key(&keys[KEC], EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    make_key(&keys[KRSA], EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NKEYS; i++) {
        EVP_PKEY_free(keys[i].pkey);
        free(keys[i].pem);
    }
    return 0;
}

/* Each test: a fresh folder, K1 trusted for CEN, no key-change state, logging to log/. */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_keychange.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    trusted = cas_path_join(tmpdir, "trusted");
    statedir = cas_path_join(tmpdir, "state");
    logdir = cas_path_join(tmpdir, "log");
    cen_pem = cas_path_join(trusted, "CEN.pem");
    state_file = cas_path_join(statedir, "policy/CEN.keychange.state.json");
    if (mkdir(trusted, 0755) != 0)
        return -1;
    trust(&keys[K1]);
    struct cas_log_settings ls = {logdir, 0, 0, 250000, 1, 0};
    return cas_log_init(&ls) == CAS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cas_log_shutdown();
    int rc = cas_fs_remove_tree(tmpdir) == CAS_OK ? 0 : -1;
    free(trusted);
    free(statedir);
    free(logdir);
    free(cen_pem);
    free(state_file);
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Nothing but CEN.pem in the trusted-keys folder: no temporary file left behind. */
static void assert_trusted_dir_clean(void)
{
    DIR *d = opendir(trusted);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        assert_string_equal(de->d_name, "CEN.pem");
        n++;
    }
    closedir(d);
    assert_int_equal(n, 1);
}

static int log_has(const char *text)
{
    char *path = cas_path_join(logdir, "PolicyAgent.log"), *buf = NULL;
    size_t len = 0;
    int found = cas_fs_read_file(path, 1 << 20, &buf, &len) == CAS_OK && strstr(buf, text);
    free(buf);
    free(path);
    return found;
}

static void test_parse_valid(void **state)
{
    (void)state;
    struct cas_keychange kc;
    char *doc = doc_for("CEN", 7, &keys[KEC], NULL);
    assert_int_equal(cas_keychange_parse(doc, strlen(doc), &kc), CAS_OK);
    assert_string_equal(kc.site, "CEN");
    assert_int_equal(kc.serial, 7);
    assert_int_equal(kc.issued, 1795413600); /* 2026-11-23T06:00:00Z */
    assert_string_equal(kc.key_id, keys[KEC].id);
    assert_string_equal(kc.key_pem, keys[KEC].pem);
    assert_int_equal(kc.key_pem_len, strlen(keys[KEC].pem));
    cas_keychange_free(&kc);
    free(doc);

    /* key_id in lower case names the same key. */
    char lower[CAS_KEYID_HEX + 1];
    for (int i = 0; i <= CAS_KEYID_HEX; i++)
        lower[i] = (char)(keys[KRSA].id[i] >= 'A' ? keys[KRSA].id[i] + 32 : keys[KRSA].id[i]);
    doc = doc_for("CEN", 1, &keys[KRSA], lower);
    assert_int_equal(cas_keychange_parse(doc, strlen(doc), &kc), CAS_OK);
    assert_string_equal(kc.key_id, keys[KRSA].id);
    cas_keychange_free(&kc);
    free(doc);
}

/* Replace the first `from` in a valid document by `to`, and expect refusal with code and a
 * detail that contains `names`. */
static void expect_refused(const char *from, const char *to, cas_hr code, const char *names)
{
    struct cas_keychange kc;
    char *doc = doc_for("CEN", 2, &keys[K2], NULL);
    char *at = strstr(doc, from);
    if (!at)
        fail_msg("'%s' not in the document", from);
    char *bad = NULL;
    assert_true(asprintf(&bad, "%.*s%s%s", (int)(at - doc), doc, to, at + strlen(from)) > 0);
    cas_hr hr = cas_keychange_parse(bad, strlen(bad), &kc);
    if (hr != code || !strstr(cas_err_detail(), names))
        fail_msg("%s -> %s: got 0x%08X '%s', expected 0x%08X naming '%s'", from, to, hr,
                 cas_err_detail(), code, names);
    assert_null(kc.key_pem);
    free(bad);
    free(doc);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    const cas_hr INV = CAS_E_INVALID_DATA;
    expect_refused("\"schema\":1", "\"schema\":2", INV, "schema");
    expect_refused("\"schema\":1", "\"schema\":\"1\"", INV, "schema");
    expect_refused("\"schema\":1,", "", INV, "schema: missing");
    expect_refused("\"keychange\"", "\"policy\"", INV, "type");
    expect_refused("\"type\":\"keychange\",", "", INV, "type: missing");
    expect_refused("\"CEN\"", "\"cen\"", INV, "site");
    expect_refused("\"CEN\"", "\"CENTRAL\"", INV, "site");
    expect_refused("\"site\":\"CEN\",", "", INV, "site: missing");
    expect_refused("\"serial\":2", "\"serial\":0", INV, "serial");
    expect_refused("\"serial\":2", "\"serial\":-2", INV, "serial");
    expect_refused("\"serial\":2", "\"serial\":2.5", INV, "serial");
    expect_refused("\"serial\":2", "\"serial\":\"2\"", INV, "serial");
    expect_refused("\"serial\":2", "\"serial\":9007199254740993", INV, "serial");
    expect_refused("\"serial\":2,", "", INV, "serial: missing");
    expect_refused("2026-11-23T06:00:00Z", "2026-11-23 06:00", INV, "issued");
    expect_refused("\"issued\":\"2026-11-23T06:00:00Z\",", "", INV, "issued: missing");
    expect_refused("\"key\":\"", "\"key\":1,\"x\":\"", INV, "key: expected a string");
    expect_refused("-----BEGIN PUBLIC KEY-----\\n", "-----BEGIN PUBLIC KEY-----\\nAAAA",
                   CAS_E_BAD_KEY, "key");
    expect_refused("-----BEGIN PUBLIC KEY-----", "garbage -----BEGIN PUBLIC KEY-----", INV,
                   "key: text outside the PEM block");
    expect_refused("-----BEGIN PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----", CAS_E_BAD_KEY,
                   "key");
    expect_refused("\"key_id\":\"", "\"key_id\":\"0", INV, "key_id");
    expect_refused("\"key_id\":\"", "\"key_id\":\"Z", INV, "key_id");
    expect_refused("\"key_id\":\"", "\"key_id\":\"0123456789ABCDEF\",\"k\":\"", INV,
                   "key_id: 0123456789ABCDEF is not the id of the key");
    expect_refused("\"schema\":1", "\"schema\":1,\"schema\":1", INV, "duplicate key");
    expect_refused("\"comment\":\"unknown fields are ignored\"", "\"c\":[[[[[1]]]]]", INV,
                   "nesting");
    expect_refused("{", "[{", INV, "");

    struct cas_keychange kc;
    assert_int_equal(cas_keychange_parse("[]", 2, &kc), INV);
    assert_non_null(strstr(cas_err_detail(), "object"));
    assert_int_equal(cas_keychange_parse("", 0, &kc), INV);

    /* A document a byte over the limit is refused before it is parsed. */
    size_t big = CAS_KEYCHANGE_MAX_BYTES + 1;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    buf[0] = '{';
    buf[big - 1] = '}';
    assert_int_equal(cas_keychange_parse(buf, big, &kc), CAS_E_TOO_LARGE);
    free(buf);
}

/* Keys the agent would not trust for a policy are not accepted as a site's next key either. */
static void test_parse_unsupported_keys(void **state)
{
    (void)state;
    const char *const kinds[] = {"X25519", "ED448", "RSA", "EC"};
    for (int i = 0; i < 4; i++) {
        struct key k;
        EVP_PKEY *p = i == 2   ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024)
                      : i == 3 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")
                               : EVP_PKEY_Q_keygen(NULL, NULL, kinds[i]);
        make_key(&k, p);
        char *doc = doc_for("CEN", 1, &k, NULL);
        struct cas_keychange kc;
        assert_int_equal(cas_keychange_parse(doc, strlen(doc), &kc), CAS_E_BAD_KEY);
        assert_non_null(strstr(cas_err_detail(), "key: "));
        free(doc);
        EVP_PKEY_free(k.pkey);
        free(k.pem);
    }
}

static void test_accept_then_old_key_refused(void **state)
{
    (void)state;
    struct cas_keychange_result res;
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    assert_int_equal(apply(doc, &keys[K1], &res), CAS_OK);
    assert_int_equal(res.outcome, CAS_KEYCHANGE_ACCEPTED);
    assert_string_equal(res.site, "CEN");
    assert_int_equal(res.serial, 1);
    assert_string_equal(res.old_key_id, keys[K1].id);
    assert_string_equal(res.new_key_id, keys[K2].id);

    assert_trusted(&keys[K2]);
    struct stat st;
    assert_int_equal(stat(cen_pem, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_trusted_dir_clean();
    uint64_t last = 0;
    assert_int_equal(cas_keychange_last_serial(statedir, "CEN", &last), CAS_OK);
    assert_int_equal(last, 1);
    char *st_text = read_text(state_file, NULL);
    assert_non_null(strstr(st_text, keys[K1].id));
    assert_non_null(strstr(st_text, keys[K2].id));
    free(st_text);

    char line[256];
    snprintf(line, sizeof(line),
             "Key change for site CEN accepted: serial 1, key %s replaced by %s", keys[K1].id,
             keys[K2].id);
    assert_true(log_has(line));

    /* From now on only the new key verifies: a policy signed by the old key is refused. */
    static const char policy[] = "{\"schema\":1,\"site\":\"CEN\",\"serial\":9}";
    uint8_t *sig = NULL;
    size_t siglen = 0;
    char id[CAS_KEYID_HEX + 1];
    sign(&keys[K1], policy, strlen(policy), &sig, &siglen);
    assert_int_equal(cas_sig_verify_file(cen_pem, policy, strlen(policy), sig, siglen, id),
                     CAS_E_BAD_SIGNATURE);
    assert_string_equal(id, keys[K2].id);
    free(sig);
    sign(&keys[K2], policy, strlen(policy), &sig, &siglen);
    assert_int_equal(cas_sig_verify_file(cen_pem, policy, strlen(policy), sig, siglen, NULL),
                     CAS_OK);
    free(sig);

    /* The same document again (it stays published) names the trusted key: nothing to do. */
    assert_int_equal(apply(doc, &keys[K1], &res), CAS_OK);
    assert_int_equal(res.outcome, CAS_KEYCHANGE_IN_EFFECT);
    assert_trusted(&keys[K2]);
    assert_int_equal(cas_keychange_last_serial(statedir, "CEN", &last), CAS_OK);
    assert_int_equal(last, 1);
    free(doc);
}

static void test_wrong_signer_refused(void **state)
{
    (void)state;
    size_t before_len = 0, after_len = 0;
    char *before = read_text(cen_pem, &before_len);
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    struct cas_keychange_result res;

    assert_int_equal(apply(doc, &keys[KX], &res), CAS_E_BAD_SIGNATURE);
    assert_non_null(strstr(cas_err_detail(), keys[K1].id));
    /* Signed by the new key itself: a key cannot vouch for itself. */
    assert_int_equal(apply(doc, &keys[K2], &res), CAS_E_BAD_SIGNATURE);
    /* Signed by the right key, but altered after signing. */
    uint8_t *sig = NULL;
    size_t siglen = 0;
    sign(&keys[K1], doc, strlen(doc), &sig, &siglen);
    char *serial = strstr(doc, "\"serial\":1");
    serial[9] = '3';
    assert_int_equal(
        cas_keychange_apply("x", "CEN", doc, strlen(doc), sig, siglen, trusted, statedir, &res),
        CAS_E_BAD_SIGNATURE);
    /* A truncated signature and none at all. */
    assert_int_equal(
        cas_keychange_apply("x", "CEN", doc, strlen(doc), sig, siglen - 1, trusted, statedir, &res),
        CAS_E_BAD_SIGNATURE);
    assert_int_equal(apply(doc, NULL, &res), CAS_E_NO_SIGNATURE);
    free(sig);

    char *after = read_text(cen_pem, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    assert_false(file_exists(state_file));
    assert_trusted_dir_clean();
    char line[256];
    snprintf(line, sizeof(line), "Key change test.keychange for site CEN refused: ");
    assert_true(log_has(line));
    assert_true(log_has(", error 0x80090006"));
    free(before);
    free(after);
    free(doc);
}

static void test_replay_refused(void **state)
{
    (void)state;
    char *doc = doc_for("CEN", 5, &keys[K2], NULL);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_OK);
    free(doc);

    /* Signed by the trusted key, but not a higher serial. */
    doc = doc_for("CEN", 5, &keys[K3], NULL);
    assert_int_equal(apply(doc, &keys[K2], NULL), CAS_E_KEYCHANGE_REPLAY);
    assert_non_null(strstr(cas_err_detail(), "serial 5"));
    free(doc);
    doc = doc_for("CEN", 4, &keys[K3], NULL);
    assert_int_equal(apply(doc, &keys[K2], NULL), CAS_E_KEYCHANGE_REPLAY);
    free(doc);
    assert_trusted(&keys[K2]);
    assert_true(log_has("error 0xA0CA0003"));

    doc = doc_for("CEN", 6, &keys[K3], NULL);
    assert_int_equal(apply(doc, &keys[K2], NULL), CAS_OK);
    assert_trusted(&keys[K3]);
    free(doc);
}

static void test_no_trusted_key_no_tofu(void **state)
{
    (void)state;
    assert_int_equal(unlink(cen_pem), 0);
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    struct cas_keychange_result res;
    /* Signed by the new key itself, or by any key: nothing to check it against. */
    assert_int_equal(apply(doc, &keys[K2], &res), CAS_E_UNTRUSTED_SITE);
    assert_int_equal(apply(doc, &keys[K1], &res), CAS_E_UNTRUSTED_SITE);
    assert_false(file_exists(cen_pem));
    assert_false(file_exists(state_file));
    assert_true(log_has("error 0x800B0109"));
    free(doc);
}

static void test_site_mismatch(void **state)
{
    (void)state;
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    uint8_t *sig = NULL;
    size_t siglen = 0;
    sign(&keys[K1], doc, strlen(doc), &sig, &siglen);
    /* Published at PR1.keychange but naming CEN. */
    assert_int_equal(cas_keychange_apply("PR1.keychange", "PR1", doc, strlen(doc), sig, siglen,
                                         trusted, statedir, NULL),
                     CAS_E_SITE_MISMATCH);
    assert_trusted(&keys[K1]);
    /* No expected site: the document's own. */
    assert_int_equal(cas_keychange_apply("CEN.keychange", NULL, doc, strlen(doc), sig, siglen,
                                         trusted, statedir, NULL),
                     CAS_OK);
    assert_trusted(&keys[K2]);
    free(sig);
    free(doc);
}

/* A document naming the key already trusted changes no key; signed by it with a higher serial it
 * records the serial, which then guards against older key changes. */
static void test_same_key_records_serial(void **state)
{
    (void)state;
    struct cas_keychange_result res;
    char *doc = doc_for("CEN", 3, &keys[K1], NULL);
    assert_int_equal(apply(doc, &keys[K1], &res), CAS_OK);
    assert_int_equal(res.outcome, CAS_KEYCHANGE_RECORDED);
    assert_trusted(&keys[K1]);
    uint64_t last = 0;
    assert_int_equal(cas_keychange_last_serial(statedir, "CEN", &last), CAS_OK);
    assert_int_equal(last, 3);
    free(doc);

    doc = doc_for("CEN", 2, &keys[K2], NULL);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_E_KEYCHANGE_REPLAY);
    assert_trusted(&keys[K1]);
    free(doc);
}

static void test_unreadable_state_refuses(void **state)
{
    (void)state;
    char *dir = cas_path_join(statedir, "policy");
    assert_int_equal(cas_fs_mkdirs(dir, 0755), CAS_OK);
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);

    assert_int_equal(cas_fs_write_atomic(state_file, "{\"serial\":", 10, 0644), CAS_OK);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_E_INVALID_DATA);
    assert_trusted(&keys[K1]);
    uint64_t last = 99;
    assert_int_equal(cas_keychange_last_serial(statedir, "CEN", &last), CAS_E_INVALID_DATA);

    assert_int_equal(cas_fs_write_atomic(state_file, "{\"serial\":\"7\"}", 14, 0644), CAS_OK);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_E_INVALID_DATA);
    assert_trusted(&keys[K1]);

    assert_int_equal(unlink(state_file), 0);
    assert_int_equal(mkdir(state_file, 0755), 0); /* not a regular file */
    assert_int_not_equal(apply(doc, &keys[K1], NULL), CAS_OK);
    assert_trusted(&keys[K1]);
    assert_int_equal(rmdir(state_file), 0);

    /* The state gone: the change is accepted. */
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_OK);
    assert_trusted(&keys[K2]);
    free(doc);
    free(dir);
}

/* A crash after the key was replaced and before the serial was recorded: the document then names
 * the trusted key and is in effect, never refused and never locking the agent out. */
static void test_crash_before_state(void **state)
{
    (void)state;
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_OK);
    assert_int_equal(unlink(state_file), 0);
    struct cas_keychange_result res;
    assert_int_equal(apply(doc, &keys[K1], &res), CAS_OK);
    assert_int_equal(res.outcome, CAS_KEYCHANGE_IN_EFFECT);
    assert_trusted(&keys[K2]);
    free(doc);
}

/* Every supported type signs the change to every other: Ed25519 -> ECDSA -> RSA -> Ed25519. */
static void test_chain_across_key_types(void **state)
{
    (void)state;
    const int chain[] = {K1, KEC, KRSA, K3};
    for (int i = 1; i < 4; i++) {
        char *doc = doc_for("CEN", (unsigned long long)i, &keys[chain[i]], NULL);
        struct cas_keychange_result res;
        assert_int_equal(apply(doc, &keys[chain[i - 1]], &res), CAS_OK);
        assert_string_equal(res.old_key_id, keys[chain[i - 1]].id);
        assert_string_equal(res.new_key_id, keys[chain[i]].id);
        assert_trusted(&keys[chain[i]]);
        free(doc);
    }
    /* A key two steps back no longer signs anything. */
    char *doc = doc_for("CEN", 9, &keys[KX], NULL);
    assert_int_equal(apply(doc, &keys[KEC], NULL), CAS_E_BAD_SIGNATURE);
    assert_trusted(&keys[K3]);
    free(doc);
}

/* The trusted key file damaged: refused as a bad key, nothing replaced. */
static void test_damaged_trusted_key(void **state)
{
    (void)state;
    assert_int_equal(cas_fs_write_atomic(cen_pem, "not a key\n", 10, 0644), CAS_OK);
    char *doc = doc_for("CEN", 1, &keys[K2], NULL);
    assert_int_equal(apply(doc, &keys[K1], NULL), CAS_E_BAD_KEY);
    char *pem = read_text(cen_pem, NULL);
    assert_string_equal(pem, "not a key\n");
    free(pem);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_unsupported_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_then_old_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_signer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_trusted_key_no_tofu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_key_records_serial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_state_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_across_key_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_trusted_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
