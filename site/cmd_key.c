/* cas-site key generate: the site's signing key pair. The private key never leaves the site; the
 * public key is what every agent trusts for the site's policy, so an existing pair is never
 * overwritten: replacing it silently would lock every agent out of new policy.
 *
 * cas-site key rotate: a new pair in a new folder, and the key-change document that moves agents
 * from the old key to the new one, signed by the old key (docs/formats.md "Key change"). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/fsutil.h"
#include "common/keychange.h"
#include "common/path.h"
#include "common/sig.h"
#include "common/timefmt.h"
#include "site/site.h"

#define CAS_SITE_KEY_GENERATE_USAGE "key generate --site CEN --out DIR [--type ed25519|rsa|ecdsa]"
#define CAS_SITE_KEY_ROTATE_USAGE                                                                  \
    "key rotate --site CEN --key OLD.key --out DIR [--type ed25519|rsa|ecdsa] [--serial N]"
#define CAS_SITE_KEY_USAGE                                                                         \
    "key generate|rotate ... (key generate --site CEN --out DIR [--type T]; key rotate --site "    \
    "CEN --key OLD.key --out DIR [--type T] [--serial N])"
#define CAS_SITE_SERIAL_MAX 9007199254740991ull /* 2^53 - 1: exact in every JSON reader */

enum cas_site_key_type { CAS_SITE_KEY_ED25519, CAS_SITE_KEY_RSA, CAS_SITE_KEY_ECDSA };

static const char *cas_site_key_type_name(enum cas_site_key_type t)
{
    switch (t) {
    case CAS_SITE_KEY_RSA:
        return "rsa";
    case CAS_SITE_KEY_ECDSA:
        return "ecdsa";
    case CAS_SITE_KEY_ED25519:
    default:
        return "ed25519";
    }
}

static EVP_PKEY *cas_site_key_new(enum cas_site_key_type t)
{
    switch (t) {
    case CAS_SITE_KEY_RSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    case CAS_SITE_KEY_ECDSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case CAS_SITE_KEY_ED25519:
    default:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }
}

/* O_EXCL both reserves the name and refuses an existing file (or a planted link) atomically, so
 * there is no window between "does it exist" and "create it". */
static cas_hr cas_site_create_excl(const char *path, mode_t mode, int *fd_out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = errno;
        if (err == EEXIST)
            return cas_fail(CAS_E_INVALIDARG,
                            "%s already exists: refusing to overwrite a site key (agents trust "
                            "its public key); choose another --out folder",
                            path);
        return cas_fail(cas_err_from_errno(err), "creating %s: %s", path, strerror(err));
    }
    /* The umask may have taken bits away from mode; the contract states the final modes. */
    if (fchmod(fd, mode) != 0) {
        int err = errno;
        close(fd);
        return cas_fail(cas_err_from_errno(err), "chmod %s: %s", path, strerror(err));
    }
    *fd_out = fd;
    return CAS_OK;
}

static cas_hr cas_site_write_bio(int fd, BIO *bio, const char *path)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0 || !data)
        return cas_fail(CAS_E_FAIL, "%s: nothing to write", path);
    cas_hr hr = cas_fs_write_all(fd, data, (size_t)len, path);
    if (hr != CAS_OK)
        return hr;
    if (fsync(fd) != 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "fsync %s: %s", path, strerror(err));
    }
    return CAS_OK;
}

static cas_hr cas_site_close(int *fd, const char *path)
{
    int rc = close(*fd);
    *fd = -1;
    if (rc != 0) {
        int err = errno;
        return cas_fail(cas_err_from_errno(err), "closing %s: %s", path, strerror(err));
    }
    return CAS_OK;
}

/* A new key pair, PEM-encoded: the private key (PKCS#8) into *priv_out, the public key into
 * *pub_out (caller frees both BIOs). */
static cas_hr cas_site_key_pair(enum cas_site_key_type type, BIO **priv_out, BIO **pub_out)
{
    EVP_PKEY *pkey = cas_site_key_new(type);
    BIO *priv = NULL, *pub = NULL;
    cas_hr hr = CAS_OK;
    if (!pkey)
        return cas_site_ssl_fail(CAS_E_BAD_KEY, "generating the key");
    /* Secure memory keeps the private key out of swap and wipes it when freed. */
    priv = BIO_new(BIO_s_secmem());
    pub = BIO_new(BIO_s_mem());
    if (!priv || !pub)
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    else if (!PEM_write_bio_PKCS8PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL))
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "encoding the private key");
    else if (!PEM_write_bio_PUBKEY(pub, pkey))
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "encoding the public key");
    EVP_PKEY_free(pkey);
    if (hr != CAS_OK) {
        BIO_free(priv);
        BIO_free(pub);
        return hr;
    }
    *priv_out = priv;
    *pub_out = pub;
    return CAS_OK;
}

static cas_hr cas_site_key_generate(const char *site, const char *out_dir,
                                    enum cas_site_key_type type)
{
    cas_hr hr = CAS_OK;
    char name[8];
    char *key_path = NULL, *pem_path = NULL;
    int key_fd = -1, pem_fd = -1;
    int key_created = 0, pem_created = 0, done = 0;
    BIO *priv_bio = NULL, *pub_bio = NULL;
    char keyid[CAS_KEYID_HEX + 1];

    hr = cas_fs_mkdirs(out_dir, 0700);
    if (hr != CAS_OK)
        goto cleanup;
    snprintf(name, sizeof(name), "%s.key", site);
    key_path = cas_path_join(out_dir, name);
    snprintf(name, sizeof(name), "%s.pem", site);
    pem_path = cas_path_join(out_dir, name);
    if (!key_path || !pem_path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }

    /* Both names are reserved before the (possibly slow) key generation, so a refusal is quick
     * and a half-written pair is never mistaken for a complete one: on failure both go. */
    hr = cas_site_create_excl(key_path, 0600, &key_fd);
    if (hr != CAS_OK)
        goto cleanup;
    key_created = 1;
    hr = cas_site_create_excl(pem_path, 0644, &pem_fd);
    if (hr != CAS_OK)
        goto cleanup;
    pem_created = 1;

    hr = cas_site_key_pair(type, &priv_bio, &pub_bio);
    if (hr != CAS_OK)
        goto cleanup;
    hr = cas_site_write_bio(key_fd, priv_bio, key_path);
    if (hr == CAS_OK)
        hr = cas_site_close(&key_fd, key_path);
    if (hr == CAS_OK)
        hr = cas_site_write_bio(pem_fd, pub_bio, pem_path);
    if (hr == CAS_OK)
        hr = cas_site_close(&pem_fd, pem_path);
    if (hr == CAS_OK)
        hr = cas_fs_sync_dir(out_dir);
    if (hr != CAS_OK)
        goto cleanup;

    hr = cas_sig_keyid_file(pem_path, keyid);
    if (hr != CAS_OK)
        goto cleanup;
    done = 1;
    printf("key id:      %s\n", keyid);
    printf("private key: %s\n", key_path);
    printf("public key:  %s\n", pem_path);
    fprintf(stderr,
            "Generated %s key for site %s. Keep %s secret; install %s as %s.pem in each agent's "
            "trusted-keys folder.\n",
            cas_site_key_type_name(type), site, key_path, pem_path, site);

cleanup:
    if (key_fd >= 0)
        close(key_fd);
    if (pem_fd >= 0)
        close(pem_fd);
    if (!done) {
        if (key_created)
            unlink(key_path);
        if (pem_created)
            unlink(pem_path);
    }
    BIO_free(priv_bio);
    BIO_free(pub_bio);
    free(key_path);
    free(pem_path);
    return hr;
}

/* The default serial: one more than the key change that introduced the old key, which a previous
 * rotate left next to it. None there: this is the site's first key change. */
static cas_hr cas_site_next_serial(const char *old_key, const char *site, uint64_t *serial)
{
    char *dir = strdup(old_key), *name = NULL, *path = NULL, *buf = NULL;
    size_t len = 0;
    struct cas_keychange prev = {0};
    cas_hr hr;

    *serial = 1;
    if (!dir || asprintf(&name, "%s%s", site, CAS_KEYCHANGE_SUFFIX) < 0) {
        free(dir);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    path = cas_path_join(slash ? dir : ".", name);
    if (!path) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_fs_read_file(path, CAS_KEYCHANGE_MAX_BYTES, &buf, &len);
    if (hr == CAS_E_FILE_MISSING) {
        hr = CAS_OK;
        goto cleanup;
    }
    if (hr == CAS_OK)
        hr = cas_keychange_parse(buf, len, &prev);
    if (hr != CAS_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", cas_err_detail());
        hr = cas_fail(hr, "%s: %s; give the serial with --serial", path, why);
        goto cleanup;
    }
    if (prev.serial >= CAS_SITE_SERIAL_MAX) {
        hr = cas_fail(CAS_E_INVALIDARG, "%s: serial %llu is the largest allowed", path,
                      (unsigned long long)prev.serial);
        goto cleanup;
    }
    *serial = prev.serial + 1;
cleanup:
    cas_keychange_free(&prev);
    free(buf);
    free(path);
    free(name);
    free(dir);
    return hr;
}

/* The document, one field a line. The PEM text holds only base64, '-', ' ' and line feeds; any
 * other byte is refused rather than escaped, as OpenSSL never writes one. */
static cas_hr cas_site_keychange_json(const char *site, uint64_t serial, const char *pem,
                                      const char *keyid, char **out, size_t *out_len)
{
    char issued[32];
    char *esc = malloc(2 * strlen(pem) + 1), *q = esc;
    if (!esc)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') {
            *q++ = '\\';
            *q++ = 'n';
        } else if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\' ||
                   (unsigned char)*p >= 0x7F) {
            free(esc);
            return cas_fail(CAS_E_BAD_KEY, "unexpected character in the public key PEM");
        } else {
            *q++ = *p;
        }
    }
    *q = '\0';
    cas_time_format(cas_clock_now(), issued, sizeof(issued));
    int n = asprintf(out,
                     "{\n"
                     "  \"schema\": 1,\n"
                     "  \"type\": \"keychange\",\n"
                     "  \"site\": \"%s\",\n"
                     "  \"serial\": %llu,\n"
                     "  \"issued\": \"%s\",\n"
                     "  \"key\": \"%s\",\n"
                     "  \"key_id\": \"%s\"\n"
                     "}\n",
                     site, (unsigned long long)serial, issued, esc, keyid);
    free(esc);
    if (n < 0) {
        *out = NULL;
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    *out_len = (size_t)n;
    return CAS_OK;
}

static cas_hr cas_site_write_bytes(int fd, const void *data, size_t len, const char *path)
{
    cas_hr hr = cas_fs_write_all(fd, data, len, path);
    if (hr == CAS_OK && fsync(fd) != 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "fsync %s: %s", path, strerror(err));
    }
    return hr;
}

enum { ROT_KEY, ROT_PEM, ROT_DOC, ROT_SIG, ROT_FILES };

static cas_hr cas_site_key_rotate(const char *site, const char *old_key, const char *out_dir,
                                  enum cas_site_key_type type, uint64_t serial)
{
    static const char *const suffix[ROT_FILES] = {".key", ".pem", CAS_KEYCHANGE_SUFFIX,
                                                  CAS_KEYCHANGE_SUFFIX ".sig"};
    static const mode_t mode[ROT_FILES] = {0600, 0644, 0644, 0644};
    cas_hr hr = CAS_OK;
    char *path[ROT_FILES] = {0};
    int fd[ROT_FILES] = {-1, -1, -1, -1}, created[ROT_FILES] = {0};
    int done = 0;
    char *old_pem = NULL, *new_pem = NULL, *doc = NULL;
    size_t old_pem_len = 0, new_pem_len = 0, doc_len = 0, sig_len = 0;
    uint8_t *sig = NULL;
    BIO *priv_bio = NULL, *pub_bio = NULL;
    char old_id[CAS_KEYID_HEX + 1], new_id[CAS_KEYID_HEX + 1], check_id[CAS_KEYID_HEX + 1];
    struct cas_keychange check = {0};

    /* The old key first: a wrong --key must not leave an empty folder of reserved names. */
    hr = cas_sig_public_pem_file(old_key, &old_pem, &old_pem_len);
    if (hr == CAS_OK)
        hr = cas_keychange_key_id(old_pem, old_pem_len, old_id);
    if (hr != CAS_OK)
        goto cleanup;
    if (serial == 0 && (hr = cas_site_next_serial(old_key, site, &serial)) != CAS_OK)
        goto cleanup;

    hr = cas_fs_mkdirs(out_dir, 0700);
    if (hr != CAS_OK)
        goto cleanup;
    for (int i = 0; i < ROT_FILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%s", site, suffix[i]);
        if (!(path[i] = cas_path_join(out_dir, name))) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
    }
    /* All four names are reserved before anything is generated, as for key generate. */
    for (int i = 0; i < ROT_FILES; i++) {
        hr = cas_site_create_excl(path[i], mode[i], &fd[i]);
        if (hr != CAS_OK)
            goto cleanup;
        created[i] = 1;
    }

    hr = cas_site_key_pair(type, &priv_bio, &pub_bio);
    if (hr != CAS_OK)
        goto cleanup;
    char *data = NULL;
    long n = BIO_get_mem_data(pub_bio, &data);
    if (n <= 0 || !data || !(new_pem = strndup(data, (size_t)n))) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    new_pem_len = (size_t)n;
    if ((hr = cas_keychange_key_id(new_pem, new_pem_len, new_id)) != CAS_OK)
        goto cleanup;

    hr = cas_site_keychange_json(site, serial, new_pem, new_id, &doc, &doc_len);
    if (hr == CAS_OK)
        hr = cas_sig_sign_file(old_key, doc, doc_len, &sig, &sig_len);
    if (hr != CAS_OK)
        goto cleanup;
    /* The agent's own checks, with the old public key standing for the one it trusts: a
     * document it would refuse is never written. */
    hr = cas_keychange_parse(doc, doc_len, &check);
    if (hr == CAS_OK && (strcmp(check.site, site) != 0 || check.serial != serial ||
                         strcmp(check.key_id, new_id) != 0))
        hr = cas_fail(CAS_E_FAIL, "the key change does not read back as written");
    if (hr == CAS_OK)
        hr = cas_sig_verify_pem(old_pem, old_pem_len, doc, doc_len, sig, sig_len, check_id);
    if (hr == CAS_OK && strcmp(check_id, old_id) != 0)
        hr = cas_fail(CAS_E_FAIL, "the key change was verified with another key");
    if (hr != CAS_OK)
        goto cleanup;

    hr = cas_site_write_bio(fd[ROT_KEY], priv_bio, path[ROT_KEY]);
    if (hr == CAS_OK)
        hr = cas_site_write_bio(fd[ROT_PEM], pub_bio, path[ROT_PEM]);
    if (hr == CAS_OK)
        hr = cas_site_write_bytes(fd[ROT_DOC], doc, doc_len, path[ROT_DOC]);
    if (hr == CAS_OK)
        hr = cas_site_write_bytes(fd[ROT_SIG], sig, sig_len, path[ROT_SIG]);
    for (int i = 0; i < ROT_FILES && hr == CAS_OK; i++)
        hr = cas_site_close(&fd[i], path[i]);
    if (hr == CAS_OK)
        hr = cas_fs_sync_dir(out_dir);
    if (hr != CAS_OK)
        goto cleanup;
    done = 1;
    printf("old key id:  %s\n", old_id);
    printf("new key id:  %s\n", new_id);
    printf("serial:      %llu\n", (unsigned long long)serial);
    printf("private key: %s\n", path[ROT_KEY]);
    printf("public key:  %s\n", path[ROT_PEM]);
    printf("key change:  %s\n", path[ROT_DOC]);
    printf("signature:   %s\n", path[ROT_SIG]);
    fprintf(stderr,
            "Generated %s key %s for site %s to replace key %s. Publish %s and %s.sig next to the "
            "policy on the management point and sign policy with %s from then on. Leave the key "
            "change published: an agent that never fetched it trusts only the old key.\n",
            cas_site_key_type_name(type), new_id, site, old_id, path[ROT_DOC], path[ROT_DOC],
            path[ROT_KEY]);

cleanup:
    for (int i = 0; i < ROT_FILES; i++) {
        if (fd[i] >= 0)
            close(fd[i]);
        if (!done && created[i])
            unlink(path[i]);
        free(path[i]);
    }
    cas_keychange_free(&check);
    BIO_free(priv_bio);
    BIO_free(pub_bio);
    free(old_pem);
    free(new_pem);
    free(doc);
    free(sig);
    return hr;
}

static int cas_site_parse_type(const char *name, enum cas_site_key_type *type)
{
    if (!strcmp(name, "ed25519"))
        *type = CAS_SITE_KEY_ED25519;
    else if (!strcmp(name, "rsa"))
        *type = CAS_SITE_KEY_RSA;
    else if (!strcmp(name, "ecdsa"))
        *type = CAS_SITE_KEY_ECDSA;
    else
        return 0;
    return 1;
}

/* A decimal serial in [1, 2^53 - 1], digits only. */
static int cas_site_parse_serial(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || *s == '0')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > CAS_SITE_SERIAL_MAX)
            return 0;
    }
    *out = v;
    return 1;
}

int cas_site_cmd_key(int argc, char **argv)
{
    static const struct option opts[] = {
        {"site", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"type", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"serial", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *site = NULL, *out_dir = NULL, *type_name = "ed25519", *old_key = NULL;
    const char *serial_text = NULL, *usage;
    enum cas_site_key_type type;
    uint64_t serial = 0;
    int c, rotate;

    if (argc < 1)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "missing subcommand");
    if (!strcmp(argv[0], "generate"))
        rotate = 0;
    else if (!strcmp(argv[0], "rotate"))
        rotate = 1;
    else
        return cas_site_usage(CAS_SITE_KEY_USAGE, "unknown subcommand 'key %s'", argv[0]);
    usage = rotate ? CAS_SITE_KEY_ROTATE_USAGE : CAS_SITE_KEY_GENERATE_USAGE;
    optind = 0;
    while ((c = cas_site_getopt(argc, argv, opts, usage)) != -1) {
        switch (c) {
        case 's':
            site = optarg;
            break;
        case 'o':
            out_dir = optarg;
            break;
        case 't':
            type_name = optarg;
            break;
        case 'k':
        case 'n':
            if (!rotate)
                return cas_site_usage(usage, "option '--%s' is for key rotate",
                                      c == 'k' ? "key" : "serial");
            if (c == 'k')
                old_key = optarg;
            else
                serial_text = optarg;
            break;
        case 'h':
            printf("usage: cas-site %s\n", usage);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cas_site_usage(usage, "unexpected argument '%s'", argv[optind]);
    if (!site)
        return cas_site_usage(usage, "missing --site");
    if (rotate && !old_key)
        return cas_site_usage(usage, "missing --key");
    if (!out_dir)
        return cas_site_usage(usage, "missing --out");

    if (!cas_id_is_site(site))
        return cas_site_report(cas_fail(
            CAS_E_INVALIDARG, "site code '%s': expected 3 characters from A-Z and 0-9", site));
    if (!cas_site_parse_type(type_name, &type))
        return cas_site_report(
            cas_fail(CAS_E_INVALIDARG, "key type '%s': expected ed25519, rsa or ecdsa", type_name));
    if (serial_text && !cas_site_parse_serial(serial_text, &serial))
        return cas_site_report(cas_fail(CAS_E_INVALIDARG,
                                        "serial '%s': expected an integer from 1 to %llu",
                                        serial_text, CAS_SITE_SERIAL_MAX));

    cas_hr hr = rotate ? cas_site_key_rotate(site, old_key, out_dir, type, serial)
                       : cas_site_key_generate(site, out_dir, type);
    if (hr != CAS_OK)
        return cas_site_report(hr);
    return CAS_SITE_EXIT_OK;
}
