/* The hashing worker: whatever the sizes, chunking, prefix or resets, the digest equals a
 * one-shot hash of the file's bytes; a file that cannot be read back is an error, never a
 * digest. Real files in a temporary folder, a real thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/hasher.h"
#include "common/hash.h"

struct fixture {
    char dir[64];
    char path[96];
    int fd;
    struct cas_hasher *hs;
    unsigned char *data;
    size_t cap;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cas-hasher-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/f", fx->dir);
    fx->fd = open(fx->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fx->fd >= 0);
    fx->hs = cas_hasher_new();
    assert_non_null(fx->hs);
    fx->cap = 6u << 20;
    fx->data = malloc(fx->cap);
    srand(7); // NOLINT(cert-msc32-c): the same test data on every run, on purpose
    for (size_t i = 0; i < fx->cap; i++)
        fx->data[i] = (unsigned char)rand(); // NOLINT(cert-msc30-c): test data, not a secret
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    cas_hasher_free(fx->hs);
    close(fx->fd);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx->data);
    free(fx);
    return 0;
}

/* Append data[off, off+len) to the file in chunks of `chunk`, telling the stream each time. */
static void feed(struct fixture *fx, struct cas_hasher_stream *s, size_t off, size_t len,
                 size_t chunk)
{
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        assert_int_equal(write(fx->fd, fx->data + off, n), (ssize_t)n);
        cas_hasher_stream_wrote(s, fx->data + off, n);
        off += n;
        len -= n;
    }
}

static void expect_digest(struct fixture *fx, struct cas_hasher_stream *s, size_t off, size_t len,
                          enum cas_hash_alg alg)
{
    char want[CAS_HASH_MAX_HEX + 1], got[CAS_HASH_MAX_HEX + 1];
    cas_hash_buf_hex(alg, fx->data + off, len, want);
    assert_int_equal(cas_hasher_stream_final(s, got), CAS_OK);
    assert_string_equal(got, want);
}

static void run_sizes(void **state, int with_worker)
{
    struct fixture *fx = *state;
    const size_t sizes[] = {
        0, 1, 4096, CAS_HASHER_INLINE - 1, CAS_HASHER_INLINE, CAS_HASHER_INLINE + 1, 5u << 20};
    const size_t chunks[] = {1000, 16384, 524288};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            if (sizes[i] > 100000 && chunks[c] == 1000)
                continue; /* slow and says nothing new */
            assert_int_equal(ftruncate(fx->fd, 0), 0);
            assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
            struct cas_hasher_stream *s =
                cas_hasher_stream_new(with_worker ? fx->hs : NULL, fx->fd, CAS_HASH_SHA256, 0);
            assert_non_null(s);
            feed(fx, s, 0, sizes[i], chunks[c]);
            expect_digest(fx, s, 0, sizes[i], CAS_HASH_SHA256);
            cas_hasher_stream_free(s);
        }
    }
}

static void test_sizes_with_worker(void **state)
{
    run_sizes(state, 1);
}

static void test_sizes_inline(void **state)
{
    run_sizes(state, 0);
}

/* A resumed file: the kept prefix is in the file already and counts in the digest. */
static void test_prefix(void **state)
{
    struct fixture *fx = *state;
    const size_t prefixes[] = {100, 3u << 20};
    for (int worker = 0; worker < 2; worker++) {
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(ftruncate(fx->fd, 0), 0);
            assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
            assert_int_equal(write(fx->fd, fx->data, prefixes[i]), (ssize_t)prefixes[i]);
            struct cas_hasher_stream *s =
                cas_hasher_stream_new(worker ? fx->hs : NULL, fx->fd, CAS_HASH_SHA1, prefixes[i]);
            assert_non_null(s);
            feed(fx, s, prefixes[i], (4u << 20) - prefixes[i], 65536);
            expect_digest(fx, s, 0, 4u << 20, CAS_HASH_SHA1);
            cas_hasher_stream_free(s);
        }
    }
}

/* A server that ignores Range: the file starts over, and so does the digest. */
static void test_reset(void **state)
{
    struct fixture *fx = *state;
    struct cas_hasher_stream *s = cas_hasher_stream_new(fx->hs, fx->fd, CAS_HASH_SHA256, 0);
    assert_non_null(s);
    feed(fx, s, 0, 3u << 20, 131072);
    assert_int_equal(cas_hasher_stream_reset(s), CAS_OK);
    assert_int_equal(ftruncate(fx->fd, 0), 0);
    assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
    feed(fx, s, 1000, 2u << 20, 131072);
    expect_digest(fx, s, 1000, 2u << 20, CAS_HASH_SHA256);
    cas_hasher_stream_free(s);
}

/* Bytes the stream was told of but that are not in the file: an error, not a digest. */
static void test_short_file_is_an_error(void **state)
{
    struct fixture *fx = *state;
    for (int worker = 0; worker < 2; worker++) {
        assert_int_equal(ftruncate(fx->fd, 0), 0);
        assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
        assert_int_equal(write(fx->fd, fx->data, 4096), 4096);
        struct cas_hasher_stream *s =
            cas_hasher_stream_new(worker ? fx->hs : NULL, fx->fd, CAS_HASH_SHA256, 8192);
        assert_non_null(s);
        char hex[CAS_HASH_MAX_HEX + 1];
        assert_int_equal(cas_hasher_stream_final(s, hex), CAS_E_IO);
        cas_hasher_stream_free(s);
    }
}

/* Freeing with work still queued (an interrupted job) must not wait for it or leak. */
static void test_free_with_backlog(void **state)
{
    struct fixture *fx = *state;
    struct cas_hasher_stream *s[4];
    for (size_t i = 0; i < 4; i++) {
        s[i] = cas_hasher_stream_new(fx->hs, fx->fd, CAS_HASH_SHA256, 0);
        assert_non_null(s[i]);
    }
    assert_int_equal(ftruncate(fx->fd, 0), 0);
    assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
    assert_int_equal(write(fx->fd, fx->data, 6u << 20), (ssize_t)(6u << 20));
    for (size_t i = 0; i < 4; i++)
        cas_hasher_stream_wrote(s[i], fx->data, 6u << 20);
    for (size_t i = 0; i < 4; i++)
        cas_hasher_stream_free(s[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sizes_with_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_backlog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
