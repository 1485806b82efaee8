/* cas-site key generate: the site's signing key pair. The private key never leaves the site; the
 * public key is what every agent trusts for the site's policy, so an existing pair is never
 * overwritten: replacing it silently would lock every agent out of new policy. */
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
#include "common/path.h"
#include "common/sig.h"
#include "site/site.h"

#define CAS_SITE_KEY_USAGE "key generate --site CEN --out DIR [--type ed25519|rsa|ecdsa]"

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

static cas_hr cas_site_key_generate(const char *site, const char *out_dir,
                                    enum cas_site_key_type type)
{
    cas_hr hr = CAS_OK;
    char name[8];
    char *key_path = NULL, *pem_path = NULL;
    int key_fd = -1, pem_fd = -1;
    int key_created = 0, pem_created = 0, done = 0;
    EVP_PKEY *pkey = NULL;
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

    pkey = cas_site_key_new(type);
    if (!pkey) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "generating the key");
        goto cleanup;
    }
    /* Secure memory keeps the private key out of swap and wipes it when freed. */
    priv_bio = BIO_new(BIO_s_secmem());
    pub_bio = BIO_new(BIO_s_mem());
    if (!priv_bio || !pub_bio) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    if (!PEM_write_bio_PKCS8PrivateKey(priv_bio, pkey, NULL, NULL, 0, NULL, NULL)) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "encoding the private key");
        goto cleanup;
    }
    if (!PEM_write_bio_PUBKEY(pub_bio, pkey)) {
        hr = cas_site_ssl_fail(CAS_E_BAD_KEY, "encoding the public key");
        goto cleanup;
    }
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
    EVP_PKEY_free(pkey);
    free(key_path);
    free(pem_path);
    return hr;
}

int cas_site_cmd_key(int argc, char **argv)
{
    static const struct option opts[] = {
        {"site", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"type", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *site = NULL, *out_dir = NULL, *type_name = "ed25519";
    enum cas_site_key_type type;
    int c;

    if (argc < 1)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "missing subcommand");
    if (strcmp(argv[0], "generate") != 0)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "unknown subcommand 'key %s'", argv[0]);
    optind = 0;
    while ((c = cas_site_getopt(argc, argv, opts, CAS_SITE_KEY_USAGE)) != -1) {
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
        case 'h':
            printf("usage: cas-site %s\n", CAS_SITE_KEY_USAGE);
            return CAS_SITE_EXIT_OK;
        default:
            return CAS_SITE_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!site)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "missing --site");
    if (!out_dir)
        return cas_site_usage(CAS_SITE_KEY_USAGE, "missing --out");

    if (!cas_id_is_site(site))
        return cas_site_report(cas_fail(
            CAS_E_INVALIDARG, "site code '%s': expected 3 characters from A-Z and 0-9", site));
    if (!strcmp(type_name, "ed25519"))
        type = CAS_SITE_KEY_ED25519;
    else if (!strcmp(type_name, "rsa"))
        type = CAS_SITE_KEY_RSA;
    else if (!strcmp(type_name, "ecdsa"))
        type = CAS_SITE_KEY_ECDSA;
    else
        return cas_site_report(
            cas_fail(CAS_E_INVALIDARG, "key type '%s': expected ed25519, rsa or ecdsa", type_name));

    cas_hr hr = cas_site_key_generate(site, out_dir, type);
    if (hr != CAS_OK)
        return cas_site_report(hr);
    return CAS_SITE_EXIT_OK;
}
