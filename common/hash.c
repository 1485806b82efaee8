/* Hashing over OpenSSL EVP: the package algorithms (sha256, sha1), streaming and one-shot. */
#include "common/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/* Large enough that a multi-gigabyte package is not dominated by syscalls. */
#define CAS_HASH_CHUNK ((size_t)128 * 1024)

struct cas_hash {
    EVP_MD_CTX *ctx;
    enum cas_hash_alg alg;
};

static const EVP_MD *cas_hash_md(enum cas_hash_alg alg)
{
    return alg == CAS_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

cas_hr cas_hash_alg_parse(const char *name, enum cas_hash_alg *out)
{
    if (name && strcmp(name, "sha256") == 0) {
        *out = CAS_HASH_SHA256;
        return CAS_OK;
    }
    if (name && strcmp(name, "sha1") == 0) {
        *out = CAS_HASH_SHA1;
        return CAS_OK;
    }
    return cas_fail(CAS_E_UNSUPPORTED_ALG, "unsupported hash algorithm '%s' (sha256 or sha1)",
                    name ? name : "(null)");
}

const char *cas_hash_alg_name(enum cas_hash_alg alg)
{
    switch (alg) {
    case CAS_HASH_SHA256:
        return "sha256";
    case CAS_HASH_SHA1:
        return "sha1";
    }
    return "unknown";
}

size_t cas_hash_len(enum cas_hash_alg alg)
{
    return alg == CAS_HASH_SHA1 ? 20 : 32;
}

size_t cas_hash_hexlen(enum cas_hash_alg alg)
{
    return 2 * cas_hash_len(alg);
}

struct cas_hash *cas_hash_new(enum cas_hash_alg alg)
{
    struct cas_hash *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->alg = alg;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex2(h->ctx, cas_hash_md(alg), NULL)) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void cas_hash_update(struct cas_hash *h, const void *data, size_t len)
{
    if (len)
        EVP_DigestUpdate(h->ctx, data, len);
}

void cas_hash_final_hex(struct cas_hash *h, char *hex)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_DigestFinal_ex(h->ctx, md, &n)) {
        /* Cannot happen with the built-in providers; an empty string never matches a digest. */
        hex[0] = '\0';
        return;
    }
    cas_hex_encode(md, n, hex);
}

void cas_hash_free(struct cas_hash *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void cas_hash_buf_hex(enum cas_hash_alg alg, const void *data, size_t len, char *hex)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, cas_hash_md(alg), NULL)) {
        hex[0] = '\0';
        return;
    }
    cas_hex_encode(md, n, hex);
}

cas_hr cas_hash_file_at(int dirfd, const char *path, enum cas_hash_alg alg, char *hex,
                        uint64_t *size_out)
{
    cas_hr hr = CAS_OK;
    struct cas_hash *h = NULL;
    uint8_t *buf = NULL;
    uint64_t total = 0;
    struct stat st;

    /* O_NONBLOCK so that opening a fifo planted in a package cannot hang us before fstat refuses
     * it; it has no effect on reads from a regular file. */
    int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        if (err == ELOOP)
            return cas_fail(CAS_E_BAD_NAME, "'%s' is a symbolic link", path);
        return cas_fail(cas_err_from_errno(err), "cannot open '%s': %s", path, strerror(err));
    }
    if (fstat(fd, &st) != 0) {
        int err = errno;
        hr = cas_fail(cas_err_from_errno(err), "cannot stat '%s': %s", path, strerror(err));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        hr = cas_fail(CAS_E_BAD_NAME, "'%s' is not a regular file", path);
        goto cleanup;
    }
    h = cas_hash_new(alg);
    buf = malloc(CAS_HASH_CHUNK);
    if (!h || !buf) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory hashing '%s'", path);
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(fd, buf, CAS_HASH_CHUNK);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            hr = cas_fail(cas_err_from_errno(err), "cannot read '%s': %s", path, strerror(err));
            goto cleanup;
        }
        if (n == 0)
            break;
        cas_hash_update(h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    cas_hash_final_hex(h, hex);
    if (size_out)
        *size_out = total;

cleanup:
    free(buf);
    cas_hash_free(h);
    close(fd);
    return hr;
}

static int cas_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cas_hex_is_valid(const char *s, size_t len)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (cas_hex_value(s[i]) < 0)
            return 0;
    }
    return s[len] == '\0';
}

void cas_hex_upper(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i]; i++)
        out[i] = (in[i] >= 'a' && in[i] <= 'z') ? (char)(in[i] - 'a' + 'A') : in[i];
    out[i] = '\0';
}

void cas_hex_lower(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i]; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[i] = '\0';
}

void cas_hex_encode(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

int cas_hex_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t i = 0;
    for (; a[i] && b[i]; i++) {
        int va = cas_hex_value(a[i]);
        if (va < 0 || va != cas_hex_value(b[i]))
            return 0;
    }
    /* Both must end together; two empty strings are not digests. */
    return i > 0 && a[i] == '\0' && b[i] == '\0';
}
