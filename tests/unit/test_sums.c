/* The sums listing and the package hash, checked against vectors computed with coreutils.
 *
 * The fixture tree below was created in a shell and hashed like this (GNU coreutils 9.1):
 *
 *   mkdir -p PKG && cd PKG
 *   mkdir -p bin/sub/deep bin/emptysub emptydir 'dir with space' 'ünïcödé'
 *   printf 'hello\n' > README.txt
 *   printf '#!/bin/sh\necho install\n' > bin/install.sh
 *   printf 'deep\n' > bin/sub/deep/x.dat
 *   yes 0123456789abcdef | head -c 200000 > bin/big.bin
 *   printf 'spaces\n' > 'dir with space/file with space.txt'
 *   : > empty
 *   printf 'utf8\n' > 'ünïcödé/naïve.txt'
 *   printf 'dash\n' > ./-dash
 *   printf 'weird\n' > 'a:b=c,d;e+f&g'
 *   printf 'percent\n' > '100%#?.txt'
 *   printf 'quote\n' > "it's \"q\""
 *   printf 'tab\n' > "$(printf 'tab\there')"
 *   printf 'B\n' > B
 *   printf 'zeta\n' > zeta
 *   find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum -- | sha256sum
 *   find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha1sum -- | sha1sum
 *
 * (The listing itself is the same pipeline without the final hash.) Note the "--": without it
 * sha256sum takes "-dash" for an option and the recipe fails, so the documented recipe needs it
 * whenever a package holds a name starting with '-'. The names are UTF-8 in NFC, as typed. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/sums.h"

static const char listing_sha256[] =
    "f8359416cedbf4b44bd1cab71b791b4121e3b33748187c530e70207af87c3f39  -dash\n"
    "bdb529e2b704ffb0987bd7a4aa08212faf219af60205808cd099783fd047c145  100%#?.txt\n"
    "c0cde77fa8fef97d476c10aad3d2d54fcc2f336140d073651c2dcccf1e379fd6  B\n"
    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  README.txt\n"
    "01911ddb310ec78b4e7f2330b15233e75e832ed75cafbbc99451ff84c10f7fb5  a:b=c,d;e+f&g\n"
    "d304a2c0036903b1c8b0469604bf7f88d4daea65659cbc7c238d0f115ad8c2dd  bin/big.bin\n"
    "13d4c1b32aa575d6976348888a129080e01b25b0db6132f2386b48b9cb34ce07  bin/install.sh\n"
    "64896f89fd11190013b70103e603a1c5826e56b7fb7d2197ab279b0690043599  bin/sub/deep/x.dat\n"
    "e47fbedb2823cf1ae4d4cdb8273635be2024cb870588e259c9b23d76ae49d484  dir with space/file "
    "with space.txt\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty\n"
    "88bdeff7ba192fa68d48df993f971cd5255263240018cf9e7021e116ba01ee64  it's \"q\"\n"
    "40cfae8acb2627ac5b6b871b5a3ed1dcb5315ff489ad3dd5d192dff5d59405cf  tab\there\n"
    "2088d0c4b41022d90f663fa8d8156cb525241b55d30ecdf922c38f94f7efda4c  zeta\n"
    "cba283815827c37b9b7941dc6041718419e0db56b32b25b51a58c53aeaf8e529  ünïcödé/naïve.txt\n";
static const char package_sha256[] =
    "7747ad9cae813b62d53ac47614145ea74badd6f7266e388d0c0bdac155258e45";

static const char listing_sha1[] = "4a21f020d042e5f433f7d35c0d0301c22acd66d5  -dash\n"
                                   "13ed14573260dae4f3989ab3d746b3e5d3422f1f  100%#?.txt\n"
                                   "31836aeaab22dc49555a97edb4c753881432e01d  B\n"
                                   "f572d396fae9206628714fb2ce00f72e94f2258f  README.txt\n"
                                   "0d8a613441010f86bf0aa79c18e42b1299c0fa2c  a:b=c,d;e+f&g\n"
                                   "66950e5068f71b9af39d9cf635614742fbabaf69  bin/big.bin\n"
                                   "90af23d9df280d54fc3fa7dd4f90299c274a8b7b  bin/install.sh\n"
                                   "698a7985db24f12a6425f6ed97a6ef5df053f3fb  bin/sub/deep/x.dat\n"
                                   "409f0b40761d17dc57d6954aa689c09795d3e424  dir with "
                                   "space/file with space.txt\n"
                                   "da39a3ee5e6b4b0d3255bfef95601890afd80709  empty\n"
                                   "3fae7337f409bd83db38b71c0f1db055899efe67  it's \"q\"\n"
                                   "095f36f7afa55ba2e84af05a2f02938cb56cb6f1  tab\there\n"
                                   "2c5ea36ead157ee3089bcd883f26ea2c899b2521  zeta\n"
                                   "ca8f30af00fc4d4c39d43b3f1f82fe512d785614  ünïcödé/naïve.txt\n";
static const char package_sha1[] = "64dd2609e476717746ae9e30883d94df776136b9";

#define FIXTURE_FILES 14

/* sha256 and sha1 of nothing, used as placeholder digests in hand-written listings. */
#define H256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H1   "da39a3ee5e6b4b0d3255bfef95601890afd80709"

/* ---- temp tree helpers ---- */

struct tmp {
    char dir[64];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_tmp(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/cas-test-sums-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_tmp(void **state)
{
    struct tmp *t = *state;
    int rc = nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return rc;
}

static char *path_in(const struct tmp *t, const char *rel)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%s/%s", t->dir, rel);
    return buf;
}

static void make_dir(const struct tmp *t, const char *rel)
{
    assert_int_equal(mkdir(path_in(t, rel), 0755), 0);
}

static void write_bytes(const struct tmp *t, const char *rel, const void *data, size_t len)
{
    int fd = open(path_in(t, rel), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void write_text(const struct tmp *t, const char *rel, const char *text)
{
    write_bytes(t, rel, text, strlen(text));
}

/* The tree described at the top of this file, under t->dir/PKG. */
static void make_fixture(const struct tmp *t)
{
    make_dir(t, "PKG");
    make_dir(t, "PKG/bin");
    make_dir(t, "PKG/bin/sub");
    make_dir(t, "PKG/bin/sub/deep");
    make_dir(t, "PKG/bin/emptysub");
    make_dir(t, "PKG/emptydir");
    make_dir(t, "PKG/dir with space");
    make_dir(t, "PKG/ünïcödé");
    write_text(t, "PKG/README.txt", "hello\n");
    write_text(t, "PKG/bin/install.sh", "#!/bin/sh\necho install\n");
    write_text(t, "PKG/bin/sub/deep/x.dat", "deep\n");
    static const char pattern[] = "0123456789abcdef\n";
    char *big = malloc(200000);
    assert_non_null(big);
    for (size_t i = 0; i < 200000; i++)
        big[i] = pattern[i % 17];
    write_bytes(t, "PKG/bin/big.bin", big, 200000);
    free(big);
    write_text(t, "PKG/dir with space/file with space.txt", "spaces\n");
    write_text(t, "PKG/empty", "");
    write_text(t, "PKG/ünïcödé/naïve.txt", "utf8\n");
    write_text(t, "PKG/-dash", "dash\n");
    write_text(t, "PKG/a:b=c,d;e+f&g", "weird\n");
    write_text(t, "PKG/100%#?.txt", "percent\n");
    write_text(t, "PKG/it's \"q\"", "quote\n");
    write_text(t, "PKG/tab\there", "tab\n");
    write_text(t, "PKG/B", "B\n");
    write_text(t, "PKG/zeta", "zeta\n");
}

/* ---- build from a folder ---- */

static void test_build_sha256_matches_coreutils(void **state)
{
    struct tmp *t = *state;
    make_fixture(t);

    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, "PKG"), CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.alg, CAS_HASH_SHA256);
    assert_int_equal(s.count, FIXTURE_FILES);

    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_sums_serialize(&s, &buf, &len), CAS_OK);
    assert_int_equal(len, strlen(listing_sha256));
    assert_memory_equal(buf, listing_sha256, len);
    assert_int_equal(buf[len], '\0');

    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, package_sha256);

    /* Sizes are filled for a built listing; the big file spans several read chunks. */
    const struct cas_sums_entry *e = cas_sums_find(&s, "bin/big.bin");
    assert_non_null(e);
    assert_int_equal(e->size, 200000);
    e = cas_sums_find(&s, "empty");
    assert_non_null(e);
    assert_int_equal(e->size, 0);
    e = cas_sums_find(&s, "bin/install.sh");
    assert_non_null(e);
    assert_int_equal(e->size, strlen("#!/bin/sh\necho install\n"));

    /* Empty folders are not part of the package. */
    for (size_t i = 0; i < s.count; i++) {
        assert_null(strstr(s.entries[i].path, "emptydir"));
        assert_null(strstr(s.entries[i].path, "emptysub"));
    }
    free(buf);
    cas_sums_free(&s);
    assert_int_equal(s.count, 0);
    assert_null(s.entries);
}

static void test_build_sha1_matches_coreutils_from_dirfd(void **state)
{
    struct tmp *t = *state;
    make_fixture(t);

    int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(dfd, "PKG", CAS_HASH_SHA1, &s), CAS_OK);
    assert_int_equal(close(dfd), 0);
    assert_int_equal(s.alg, CAS_HASH_SHA1);
    assert_int_equal(s.count, FIXTURE_FILES);

    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_sums_serialize(&s, &buf, &len), CAS_OK);
    assert_int_equal(len, strlen(listing_sha1));
    assert_memory_equal(buf, listing_sha1, len);

    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, package_sha1);
    free(buf);
    cas_sums_free(&s);
}

/* Only empty folders: `find` lists nothing, `xargs -r` runs nothing, and the package hash is the
 * hash of the empty listing. */
static void test_build_empty_package(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    make_dir(t, "PKG/a");
    make_dir(t, "PKG/a/b");

    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, "PKG"), CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, 0);
    char *buf = NULL;
    size_t len = 1;
    assert_int_equal(cas_sums_serialize(&s, &buf, &len), CAS_OK);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, H256);
    free(buf);
    cas_sums_free(&s);
}

static void test_build_missing_folder(void **state)
{
    struct tmp *t = *state;
    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, "nope"), CAS_HASH_SHA256, &s),
                     CAS_E_FILE_MISSING);
    assert_int_equal(s.count, 0);
    assert_null(s.entries);
}

static void test_build_sorts_by_raw_bytes(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "P1");
    write_text(t, "P1/b", "");
    write_text(t, "P1/a", "");
    write_text(t, "P1/B", "");
    make_dir(t, "P2");
    write_text(t, "P2/a0", "");
    make_dir(t, "P2/a");
    write_text(t, "P2/a/b", "");
    write_text(t, "P2/a-b", "");
    write_text(t, "P2/\xc3\xa9", ""); /* a byte >= 0x80 sorts after every ASCII byte */
    write_text(t, "P2/z", "");

    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, "P1"), CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, 3);
    assert_string_equal(s.entries[0].path, "B");
    assert_string_equal(s.entries[1].path, "a");
    assert_string_equal(s.entries[2].path, "b");
    cas_sums_free(&s);

    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, "P2"), CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, 5);
    assert_string_equal(s.entries[0].path, "a-b");
    assert_string_equal(s.entries[1].path, "a/b");
    assert_string_equal(s.entries[2].path, "a0");
    assert_string_equal(s.entries[3].path, "z");
    assert_string_equal(s.entries[4].path, "\xc3\xa9");
    cas_sums_free(&s);
}

static void assert_build_refused(const struct tmp *t, const char *pkg, const char *name_in_detail)
{
    struct cas_sums s;
    assert_int_equal(cas_sums_build_at(AT_FDCWD, path_in(t, pkg), CAS_HASH_SHA256, &s),
                     CAS_E_BAD_NAME);
    assert_int_equal(s.count, 0);
    assert_null(s.entries);
    if (!strstr(cas_err_detail(), name_in_detail))
        fail_msg("detail '%s' does not name '%s'", cas_err_detail(), name_in_detail);
}

static void test_build_refuses_symlink_to_file(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    write_text(t, "PKG/real", "x\n");
    assert_int_equal(symlink("real", path_in(t, "PKG/link-to-real")), 0);
    assert_build_refused(t, "PKG", "link-to-real");
}

static void test_build_refuses_symlink_to_folder(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    make_dir(t, "PKG/sub");
    write_text(t, "PKG/sub/f", "x\n");
    assert_int_equal(symlink("/etc", path_in(t, "PKG/sub/etc-link")), 0);
    assert_build_refused(t, "PKG", "sub/etc-link");
}

static void test_build_refuses_dangling_symlink(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    assert_int_equal(symlink("does-not-exist", path_in(t, "PKG/dangling")), 0);
    assert_build_refused(t, "PKG", "dangling");
}

static void test_build_refuses_fifo(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    make_dir(t, "PKG/d");
    write_text(t, "PKG/d/a", "x\n");
    assert_int_equal(mkfifo(path_in(t, "PKG/d/pipe"), 0644), 0);
    alarm(10); /* opening a fifo for reading must never block the build */
    assert_build_refused(t, "PKG", "d/pipe");
    alarm(0);
}

static void test_build_refuses_socket(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/PKG/sock", t->dir);
    assert_true(n > 0 && (size_t)n < sizeof(sa.sun_path));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_build_refused(t, "PKG", "sock");
    close(fd);
}

static void test_build_refuses_backslash_name(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    write_text(t, "PKG/back\\slash", "x\n");
    assert_build_refused(t, "PKG", "backslash");
}

static void test_build_refuses_newline_name(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    make_dir(t, "PKG/sub");
    write_text(t, "PKG/sub/new\nline", "x\n");
    assert_build_refused(t, "PKG", "newline");
}

static void test_build_refuses_cr_name(void **state)
{
    struct tmp *t = *state;
    make_dir(t, "PKG");
    write_text(t, "PKG/car\rriage", "x\n");
    assert_build_refused(t, "PKG", "carriage return");
}

/* ---- parse ---- */

static void test_parse_roundtrip_sha256(void **state)
{
    (void)state;
    struct cas_sums s;
    size_t n = strlen(listing_sha256);
    assert_int_equal(cas_sums_parse(listing_sha256, n, CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, FIXTURE_FILES);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_sums_serialize(&s, &buf, &len), CAS_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, listing_sha256, n);
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, package_sha256);
    assert_int_equal(cas_sums_find(&s, "empty")->size, 0); /* unknown for a parsed listing */
    free(buf);
    cas_sums_free(&s);
}

static void test_parse_roundtrip_sha1(void **state)
{
    (void)state;
    struct cas_sums s;
    size_t n = strlen(listing_sha1);
    assert_int_equal(cas_sums_parse(listing_sha1, n, CAS_HASH_SHA1, &s), CAS_OK);
    assert_int_equal(s.count, FIXTURE_FILES);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_sums_serialize(&s, &buf, &len), CAS_OK);
    assert_memory_equal(buf, listing_sha1, n);
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, package_sha1);
    free(buf);
    cas_sums_free(&s);
}

static void test_parse_empty_is_empty_listing(void **state)
{
    (void)state;
    struct cas_sums s;
    assert_int_equal(cas_sums_parse("", 0, CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, 0);
    assert_null(cas_sums_find(&s, "a"));
    char hex[CAS_HASH_MAX_HEX + 1];
    assert_int_equal(cas_sums_package_hash(&s, hex), CAS_OK);
    assert_string_equal(hex, H256);
    cas_sums_free(&s);
}

static void test_find(void **state)
{
    (void)state;
    struct cas_sums s;
    assert_int_equal(cas_sums_parse(listing_sha256, strlen(listing_sha256), CAS_HASH_SHA256, &s),
                     CAS_OK);
    const struct cas_sums_entry *e = cas_sums_find(&s, "bin/big.bin");
    assert_non_null(e);
    assert_string_equal(e->hex, "d304a2c0036903b1c8b0469604bf7f88d4daea65659cbc7c238d0f115ad8c2dd");
    e = cas_sums_find(&s, "-dash"); /* first */
    assert_non_null(e);
    assert_string_equal(e->path, "-dash");
    e = cas_sums_find(&s, "ünïcödé/naïve.txt"); /* last */
    assert_non_null(e);
    assert_string_equal(e->hex, "cba283815827c37b9b7941dc6041718419e0db56b32b25b51a58c53aeaf8e529");
    assert_null(cas_sums_find(&s, "bin")); /* a folder is not an entry */
    assert_null(cas_sums_find(&s, "BIN/big.bin"));
    assert_null(cas_sums_find(&s, "README"));
    assert_null(cas_sums_find(&s, ""));
    assert_null(cas_sums_find(&s, "zzzz"));
    cas_sums_free(&s);
}

/* Parses text as a sha256 listing (or sha1 when alg says so) and expects code, with a detail
 * naming the line. */
static void expect_parse_fail(const char *text, size_t len, enum cas_hash_alg alg, cas_hr code,
                              size_t line)
{
    struct cas_sums s;
    cas_err_clear();
    cas_hr hr = cas_sums_parse(text, len, alg, &s);
    if (hr != code)
        fail_msg("expected 0x%08X, got 0x%08X (%s) for:\n%.*s", code, hr, cas_err_detail(),
                 (int)len, text);
    assert_int_equal(s.count, 0);
    assert_null(s.entries);
    char want[32];
    snprintf(want, sizeof(want), "line %zu:", line);
    if (!strstr(cas_err_detail(), want))
        fail_msg("detail '%s' does not name %s", cas_err_detail(), want);
}

#define PARSE_FAIL(text, code, line)                                                               \
    expect_parse_fail((text), sizeof(text) - 1, CAS_HASH_SHA256, (code), (line))

static void test_parse_rejects_missing_final_newline(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\n" H256 "  b", CAS_E_INVALID_DATA, 2);
    PARSE_FAIL(H256 "  a", CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_cr(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\r\n", CAS_E_INVALID_DATA, 1);
    PARSE_FAIL(H256 "  a\n" H256 "  b\r\n", CAS_E_INVALID_DATA, 2);
}

static void test_parse_rejects_one_space(void **state)
{
    (void)state;
    PARSE_FAIL(H256 " a\n", CAS_E_INVALID_DATA, 1);
}

static void test_parse_three_spaces_keep_a_space_in_the_path(void **state)
{
    (void)state;
    /* "   a" leaves " a" as the path: allowed by the rules, so this parses (names may start with
     * a space); the listing round-trips byte for byte. */
    struct cas_sums s;
    assert_int_equal(cas_sums_parse(H256 "   a\n", sizeof(H256 "   a\n") - 1, CAS_HASH_SHA256, &s),
                     CAS_OK);
    assert_string_equal(s.entries[0].path, " a");
    cas_sums_free(&s);
}

static void test_parse_rejects_binary_mode_star(void **state)
{
    (void)state;
    PARSE_FAIL(H256 " *a\n", CAS_E_INVALID_DATA, 1);
    if (!strstr(cas_err_detail(), "'*'"))
        fail_msg("detail '%s' does not mention the binary-mode marker", cas_err_detail());
}

static void test_parse_rejects_tab_separator(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "\t\ta\n", CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_upper_case_hex(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\n"
                    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855  b\n",
               CAS_E_INVALID_DATA, 2);
    PARSE_FAIL("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85A  a\n",
               CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_wrong_hex_length(void **state)
{
    (void)state;
    /* 63 and 65 digits */
    PARSE_FAIL("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85  a\n",
               CAS_E_INVALID_DATA, 1);
    PARSE_FAIL(H256 "5  a\n", CAS_E_INVALID_DATA, 1);
    /* a sha1 digest in a sha256 listing and the other way round */
    PARSE_FAIL(H1 "  a\n", CAS_E_INVALID_DATA, 1);
    expect_parse_fail(H256 "  a\n", sizeof(H256 "  a\n") - 1, CAS_HASH_SHA1, CAS_E_INVALID_DATA, 1);
    /* non-hex digit, and no hash at all */
    PARSE_FAIL("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n",
               CAS_E_INVALID_DATA, 1);
    PARSE_FAIL("  a\n", CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_empty_line(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\n\n", CAS_E_INVALID_DATA, 2);
    PARSE_FAIL("\n", CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_coreutils_escaped_line(void **state)
{
    (void)state;
    /* sha256sum escapes names holding a backslash or newline with a leading '\'. */
    PARSE_FAIL("\\" H256 "  a\\\\b\n", CAS_E_INVALID_DATA, 1);
}

static void test_parse_rejects_unsorted(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  b\n" H256 "  a\n", CAS_E_INVALID_DATA, 2);
    /* locale order would put "a" before "B"; raw bytes put "B" first */
    PARSE_FAIL(H256 "  a\n" H256 "  B\n", CAS_E_INVALID_DATA, 2);
    /* '/' (0x2F) sorts after '-' (0x2D) */
    PARSE_FAIL(H256 "  a/b\n" H256 "  a-b\n", CAS_E_INVALID_DATA, 2);
}

static void test_parse_rejects_duplicate(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\n" H256 "  b\n" H256 "  b\n", CAS_E_BAD_NAME, 3);
}

static void test_parse_rejects_file_and_folder(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  a\n" H256 "  a/b\n", CAS_E_BAD_NAME, 2);
    /* not adjacent: "a-b" sorts between "a" and "a/b" */
    PARSE_FAIL(H256 "  a\n" H256 "  a-b\n" H256 "  a/b\n", CAS_E_BAD_NAME, 3);
    /* a deeper ancestor */
    PARSE_FAIL(H256 "  x/y\n" H256 "  x/y/z/w\n", CAS_E_BAD_NAME, 2);
}

static void test_parse_accepts_prefix_that_is_not_a_folder(void **state)
{
    (void)state;
    static const char text[] = H256 "  a\n" H256 "  a-b/c\n" H256 "  ab\n";
    struct cas_sums s;
    assert_int_equal(cas_sums_parse(text, sizeof(text) - 1, CAS_HASH_SHA256, &s), CAS_OK);
    assert_int_equal(s.count, 3);
    cas_sums_free(&s);
}

static void test_parse_rejects_bad_paths(void **state)
{
    (void)state;
    PARSE_FAIL(H256 "  /etc/passwd\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  ../escape\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  a\n" H256 "  b/../c\n", CAS_E_BAD_NAME, 2);
    PARSE_FAIL(H256 "  ./a\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  a//b\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  a/\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  a\\b\n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  \n", CAS_E_BAD_NAME, 1);
    PARSE_FAIL(H256 "  a\0b\n", CAS_E_BAD_NAME, 1);
}

static void test_free_is_safe_twice(void **state)
{
    (void)state;
    struct cas_sums s;
    assert_int_equal(cas_sums_parse(H256 "  a\n", sizeof(H256 "  a\n") - 1, CAS_HASH_SHA256, &s),
                     CAS_OK);
    cas_sums_free(&s);
    cas_sums_free(&s);
    cas_sums_free(NULL);
    assert_int_equal(s.count, 0);
}

#define TMP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_tmp, teardown_tmp)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TMP_TEST(test_build_sha256_matches_coreutils),
        TMP_TEST(test_build_sha1_matches_coreutils_from_dirfd),
        TMP_TEST(test_build_empty_package),
        TMP_TEST(test_build_missing_folder),
        TMP_TEST(test_build_sorts_by_raw_bytes),
        TMP_TEST(test_build_refuses_symlink_to_file),
        TMP_TEST(test_build_refuses_symlink_to_folder),
        TMP_TEST(test_build_refuses_dangling_symlink),
        TMP_TEST(test_build_refuses_fifo),
        TMP_TEST(test_build_refuses_socket),
        TMP_TEST(test_build_refuses_backslash_name),
        TMP_TEST(test_build_refuses_newline_name),
        TMP_TEST(test_build_refuses_cr_name),
        cmocka_unit_test(test_parse_roundtrip_sha256),
        cmocka_unit_test(test_parse_roundtrip_sha1),
        cmocka_unit_test(test_parse_empty_is_empty_listing),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_parse_rejects_missing_final_newline),
        cmocka_unit_test(test_parse_rejects_cr),
        cmocka_unit_test(test_parse_rejects_one_space),
        cmocka_unit_test(test_parse_three_spaces_keep_a_space_in_the_path),
        cmocka_unit_test(test_parse_rejects_binary_mode_star),
        cmocka_unit_test(test_parse_rejects_tab_separator),
        cmocka_unit_test(test_parse_rejects_upper_case_hex),
        cmocka_unit_test(test_parse_rejects_wrong_hex_length),
        cmocka_unit_test(test_parse_rejects_empty_line),
        cmocka_unit_test(test_parse_rejects_coreutils_escaped_line),
        cmocka_unit_test(test_parse_rejects_unsorted),
        cmocka_unit_test(test_parse_rejects_duplicate),
        cmocka_unit_test(test_parse_rejects_file_and_folder),
        cmocka_unit_test(test_parse_accepts_prefix_that_is_not_a_folder),
        cmocka_unit_test(test_parse_rejects_bad_paths),
        cmocka_unit_test(test_free_is_safe_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
