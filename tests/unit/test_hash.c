/* Hashing: known vectors (FIPS 180 examples), streaming, files, algorithm names, hex helpers. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/hash.h"

#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_2BLK  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA256_MILLA "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define SHA1_EMPTY   "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define SHA1_ABC     "a9993e364706816aba3e25717850c26c9cd0d89d"
#define SHA1_2BLK    "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
#define SHA1_MILLA   "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
#define TWO_BLOCKS   "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[CAS_HASH_MAX_HEX + 1];
    cas_hash_buf_hex(CAS_HASH_SHA256, "", 0, hex);
    assert_string_equal(hex, SHA256_EMPTY);
    cas_hash_buf_hex(CAS_HASH_SHA256, "abc", 3, hex);
    assert_string_equal(hex, SHA256_ABC);
    cas_hash_buf_hex(CAS_HASH_SHA256, TWO_BLOCKS, strlen(TWO_BLOCKS), hex);
    assert_string_equal(hex, SHA256_2BLK);
}

static void test_sha1_vectors(void **state)
{
    (void)state;
    char hex[CAS_HASH_MAX_HEX + 1];
    cas_hash_buf_hex(CAS_HASH_SHA1, "", 0, hex);
    assert_string_equal(hex, SHA1_EMPTY);
    cas_hash_buf_hex(CAS_HASH_SHA1, "abc", 3, hex);
    assert_string_equal(hex, SHA1_ABC);
    cas_hash_buf_hex(CAS_HASH_SHA1, TWO_BLOCKS, strlen(TWO_BLOCKS), hex);
    assert_string_equal(hex, SHA1_2BLK);
}

/* One million 'a', fed in uneven pieces (including empty ones), equals the FIPS vector and the
 * one-shot result. */
static void check_streaming(enum cas_hash_alg alg, const char *expected)
{
    size_t total = 1000000;
    char *buf = malloc(total);
    assert_non_null(buf);
    memset(buf, 'a', total);

    struct cas_hash *h = cas_hash_new(alg);
    assert_non_null(h);
    size_t off = 0, piece = 0;
    while (off < total) {
        size_t n = piece % 7 == 3 ? 0 : (piece * 7919) % 4099 + 1;
        if (n > total - off)
            n = total - off;
        cas_hash_update(h, buf + off, n);
        off += n;
        piece++;
    }
    char streamed[CAS_HASH_MAX_HEX + 1];
    cas_hash_final_hex(h, streamed);
    cas_hash_free(h);
    assert_string_equal(streamed, expected);

    char oneshot[CAS_HASH_MAX_HEX + 1];
    cas_hash_buf_hex(alg, buf, total, oneshot);
    assert_string_equal(oneshot, expected);
    free(buf);
}

static void test_streaming_sha256(void **state)
{
    (void)state;
    check_streaming(CAS_HASH_SHA256, SHA256_MILLA);
}

static void test_streaming_sha1(void **state)
{
    (void)state;
    check_streaming(CAS_HASH_SHA1, SHA1_MILLA);
}

static void test_streaming_nothing_is_empty_hash(void **state)
{
    (void)state;
    struct cas_hash *h = cas_hash_new(CAS_HASH_SHA256);
    assert_non_null(h);
    char hex[CAS_HASH_MAX_HEX + 1];
    cas_hash_final_hex(h, hex);
    cas_hash_free(h);
    assert_string_equal(hex, SHA256_EMPTY);
    cas_hash_free(NULL);
}

static void test_alg_parse(void **state)
{
    (void)state;
    enum cas_hash_alg alg = CAS_HASH_SHA1;
    assert_int_equal(cas_hash_alg_parse("sha256", &alg), CAS_OK);
    assert_int_equal(alg, CAS_HASH_SHA256);
    assert_int_equal(cas_hash_alg_parse("sha1", &alg), CAS_OK);
    assert_int_equal(alg, CAS_HASH_SHA1);

    alg = CAS_HASH_SHA1;
    assert_int_equal(cas_hash_alg_parse("SHA256", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(alg, CAS_HASH_SHA1); /* untouched on failure */
    assert_non_null(strstr(cas_err_detail(), "SHA256"));
    assert_int_equal(cas_hash_alg_parse("md5", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(cas_hash_alg_parse("", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(cas_hash_alg_parse("sha256 ", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(cas_hash_alg_parse("sha-256", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(cas_hash_alg_parse("sha512", &alg), CAS_E_UNSUPPORTED_ALG);
    assert_int_equal(cas_hash_alg_parse(NULL, &alg), CAS_E_UNSUPPORTED_ALG);
}

static void test_alg_names_and_lengths(void **state)
{
    (void)state;
    assert_string_equal(cas_hash_alg_name(CAS_HASH_SHA256), "sha256");
    assert_string_equal(cas_hash_alg_name(CAS_HASH_SHA1), "sha1");
    assert_int_equal(cas_hash_len(CAS_HASH_SHA256), 32);
    assert_int_equal(cas_hash_len(CAS_HASH_SHA1), 20);
    assert_int_equal(cas_hash_hexlen(CAS_HASH_SHA256), 64);
    assert_int_equal(cas_hash_hexlen(CAS_HASH_SHA1), 40);
}

/* ---- files ---- */

struct tmp {
    char dir[64];
    char path[128];
};

static int setup_tmp(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/cas-test-hash-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static const char *tmp_path(struct tmp *t, const char *name)
{
    snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
    return t->path;
}

static const char *const tmp_names[] = {"file", "big", "empty", "link", "pipe", "dir"};

static int teardown_tmp(void **state)
{
    struct tmp *t = *state;
    for (size_t i = 0; i < sizeof(tmp_names) / sizeof(tmp_names[0]); i++) {
        const char *p = tmp_path(t, tmp_names[i]);
        if (unlink(p) != 0 && errno == EISDIR)
            rmdir(p);
    }
    int rc = rmdir(t->dir);
    free(t);
    return rc;
}

static void write_file(struct tmp *t, const char *name, const void *data, size_t len)
{
    int fd = open(tmp_path(t, name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void test_file_small(void **state)
{
    struct tmp *t = *state;
    write_file(t, "file", "abc", 3);
    char hex[CAS_HASH_MAX_HEX + 1];
    uint64_t size = 99;
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "file"), CAS_HASH_SHA256, hex, &size),
                     CAS_OK);
    assert_string_equal(hex, SHA256_ABC);
    assert_int_equal(size, 3);

    /* relative to a folder descriptor, sha1, size not wanted */
    int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(cas_hash_file_at(dfd, "file", CAS_HASH_SHA1, hex, NULL), CAS_OK);
    assert_string_equal(hex, SHA1_ABC);
    close(dfd);
}

static void test_file_empty(void **state)
{
    struct tmp *t = *state;
    write_file(t, "empty", "", 0);
    char hex[CAS_HASH_MAX_HEX + 1];
    uint64_t size = 99;
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "empty"), CAS_HASH_SHA256, hex, &size),
                     CAS_OK);
    assert_string_equal(hex, SHA256_EMPTY);
    assert_int_equal(size, 0);
}

static void test_file_many_chunks(void **state)
{
    struct tmp *t = *state;
    size_t n = 1000000;
    char *buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 'a', n);
    write_file(t, "big", buf, n);
    free(buf);
    char hex[CAS_HASH_MAX_HEX + 1];
    uint64_t size = 0;
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "big"), CAS_HASH_SHA256, hex, &size),
                     CAS_OK);
    assert_string_equal(hex, SHA256_MILLA);
    assert_int_equal(size, n);
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "big"), CAS_HASH_SHA1, hex, NULL),
                     CAS_OK);
    assert_string_equal(hex, SHA1_MILLA);
}

static void test_file_refuses_symlink(void **state)
{
    struct tmp *t = *state;
    write_file(t, "file", "abc", 3);
    assert_int_equal(symlink("file", tmp_path(t, "link")), 0);
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "link"), CAS_HASH_SHA256, hex, NULL),
                     CAS_E_BAD_NAME);
    assert_non_null(strstr(cas_err_detail(), "link"));
}

static void test_file_refuses_fifo(void **state)
{
    struct tmp *t = *state;
    assert_int_equal(mkfifo(tmp_path(t, "pipe"), 0644), 0);
    char hex[CAS_HASH_MAX_HEX + 1];
    alarm(10); /* a blocking open would hang here: fail loudly instead */
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "pipe"), CAS_HASH_SHA256, hex, NULL),
                     CAS_E_BAD_NAME);
    alarm(0);
}

static void test_file_refuses_folder(void **state)
{
    struct tmp *t = *state;
    assert_int_equal(mkdir(tmp_path(t, "dir"), 0755), 0);
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "dir"), CAS_HASH_SHA256, hex, NULL),
                     CAS_E_BAD_NAME);
}

static void test_file_refuses_device(void **state)
{
    (void)state;
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_hash_file_at(AT_FDCWD, "/dev/null", CAS_HASH_SHA256, hex, NULL),
                     CAS_E_BAD_NAME);
}

static void test_file_missing(void **state)
{
    struct tmp *t = *state;
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_hash_file_at(AT_FDCWD, tmp_path(t, "file"), CAS_HASH_SHA256, hex, NULL),
                     CAS_E_FILE_MISSING);
    assert_non_null(strstr(cas_err_detail(), "file"));
}

/* ---- hex helpers ---- */

static void test_hex_is_valid(void **state)
{
    (void)state;
    assert_true(cas_hex_is_valid(SHA256_ABC, 64));
    assert_true(
        cas_hex_is_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 64));
    assert_true(cas_hex_is_valid("aBcD", 4));
    assert_true(cas_hex_is_valid("", 0));
    assert_false(cas_hex_is_valid(SHA256_ABC, 40)); /* longer than asked */
    assert_false(cas_hex_is_valid(SHA1_ABC, 64));   /* shorter than asked */
    assert_false(cas_hex_is_valid("abcg", 4));
    assert_false(cas_hex_is_valid("ab c", 4));
    assert_false(cas_hex_is_valid("0xab", 4));
    assert_false(cas_hex_is_valid(NULL, 0));
}

static void test_hex_case(void **state)
{
    (void)state;
    char out[CAS_HASH_MAX_HEX + 1];
    cas_hex_upper(SHA256_ABC, out);
    assert_string_equal(out, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
    cas_hex_lower(out, out); /* in place */
    assert_string_equal(out, SHA256_ABC);
    char inplace[] = "a9993e36";
    cas_hex_upper(inplace, inplace);
    assert_string_equal(inplace, "A9993E36");
}

static void test_hex_encode(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[16];
    memset(out, 'x', sizeof(out));
    cas_hex_encode(bytes, sizeof(bytes), out);
    assert_string_equal(out, "00017f80abff");
    cas_hex_encode(bytes, 0, out);
    assert_string_equal(out, "");
}

static void test_hex_equal(void **state)
{
    (void)state;
    assert_true(cas_hex_equal(SHA256_ABC, SHA256_ABC));
    assert_true(cas_hex_equal(SHA256_ABC,
                              "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_true(cas_hex_equal("Ab", "aB"));
    assert_false(cas_hex_equal(SHA256_ABC, SHA256_EMPTY));
    assert_false(cas_hex_equal("abcd", "abc"));
    assert_false(cas_hex_equal("abc", "abcd"));
    assert_false(cas_hex_equal("zz", "zz")); /* not hex */
    assert_false(cas_hex_equal("", ""));
    assert_false(cas_hex_equal(NULL, "ab"));
    assert_false(cas_hex_equal("ab", NULL));
}

#define TMP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_tmp, teardown_tmp)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_streaming_sha256),
        cmocka_unit_test(test_streaming_sha1),
        cmocka_unit_test(test_streaming_nothing_is_empty_hash),
        cmocka_unit_test(test_alg_parse),
        cmocka_unit_test(test_alg_names_and_lengths),
        TMP_TEST(test_file_small),
        TMP_TEST(test_file_empty),
        TMP_TEST(test_file_many_chunks),
        TMP_TEST(test_file_refuses_symlink),
        TMP_TEST(test_file_refuses_fifo),
        TMP_TEST(test_file_refuses_folder),
        cmocka_unit_test(test_file_refuses_device),
        TMP_TEST(test_file_missing),
        cmocka_unit_test(test_hex_is_valid),
        cmocka_unit_test(test_hex_case),
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_hex_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
