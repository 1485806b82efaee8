/* The parent side of the privilege-separated transfer (agent/transfer_broker.c) against a hostile
 * transfer process. The test plays the child by hand on the other end of a SOCK_SEQPACKET pair:
 * it reads the SUBMITs the parent sends and answers with messages built per the protocol (an
 * 8-byte header {u8 type, 3 pad, u32 id in native order}, then the payload). Everything the
 * child says is untrusted; a protocol violation must end every transfer in flight with
 * CAS_E_TRANSFER_PROCESS and refuse later submits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/transfer.h"
#include "agent/transfer_broker.h"
#include "common/error.h"

/* The protocol, as transfer_broker.c defines it. */
enum {
    T_SUBMIT = 1,
    T_CANCEL = 2,
    T_CANCEL_ALL = 3,
    T_HELLO = 10,
    T_RESPONSE = 11,
    T_DATA = 12,
    T_DONE = 13,
};
#define HDR        8u
#define DATA_MAX   65536u
#define MSG_MAX    (HDR + DATA_MAX)
#define HEADER_MAX 8192u

/* ---- the hand-played child ---- */

struct wire {
    unsigned char buf[MSG_MAX + 64];
    size_t len;
};

static void w_start(struct wire *w, unsigned type, uint32_t id)
{
    memset(w->buf, 0, HDR);
    w->buf[0] = (unsigned char)type;
    memcpy(w->buf + 4, &id, 4);
    w->len = HDR;
}

static void w_put(struct wire *w, const void *p, size_t n)
{
    assert_true(w->len + n <= sizeof(w->buf));
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void w_str(struct wire *w, const char *s)
{
    w_put(w, s, strlen(s) + 1);
}

static void w_send(int fd, const struct wire *w)
{
    assert_int_equal(send(fd, w->buf, w->len, MSG_NOSIGNAL), (ssize_t)w->len);
}

static void w_response(struct wire *w, uint32_t id, int64_t status, uint64_t range_start,
                       unsigned present, const char *etag, const char *lm)
{
    unsigned char p = (unsigned char)present;
    w_start(w, T_RESPONSE, id);
    w_put(w, &status, 8);
    w_put(w, &range_start, 8);
    w_put(w, &p, 1);
    w_str(w, etag);
    w_str(w, lm);
}

static void send_response(int fd, uint32_t id, int64_t status, uint64_t range_start,
                          unsigned present, const char *etag, const char *lm)
{
    struct wire w;
    w_response(&w, id, status, range_start, present, etag, lm);
    w_send(fd, &w);
}

static void send_ok_response(int fd, uint32_t id)
{
    send_response(fd, id, 200, 0, 0, "", "");
}

static void send_data(int fd, uint32_t id, const void *data, size_t len)
{
    struct wire w;
    w_start(&w, T_DATA, id);
    w_put(&w, data, len);
    w_send(fd, &w);
}

static void send_str(int fd, uint32_t id, const char *s)
{
    send_data(fd, id, s, strlen(s));
}

static void w_done(struct wire *w, uint32_t id, uint32_t code, int64_t status, uint64_t bytes,
                   int32_t hard, int64_t retry_after, const char *detail)
{
    w_start(w, T_DONE, id);
    w_put(w, &code, 4);
    w_put(w, &status, 8);
    w_put(w, &bytes, 8);
    w_put(w, &hard, 4);
    w_put(w, &retry_after, 8);
    w_str(w, detail);
}

static void send_done(int fd, uint32_t id, uint32_t code, int64_t status, uint64_t bytes,
                      int32_t hard, int64_t retry_after, const char *detail)
{
    struct wire w;
    w_done(&w, id, code, status, bytes, hard, retry_after, detail);
    w_send(fd, &w);
}

static void send_done_ok(int fd, uint32_t id)
{
    send_done(fd, id, CAS_OK, 200, 0, 0, -1, "");
}

/* A SUBMIT as the parent encoded it. */
struct submit {
    uint32_t id;
    uint64_t max_bytes, resume_from;
    unsigned present;
    const char *url, *if_range, *if_none_match, *if_modified_since;
    struct wire raw;
};

/* One message from the parent, if one is there (no waiting); its length or -1. */
static ssize_t peer_recv(int fd, struct wire *w)
{
    ssize_t n = recv(fd, w->buf, sizeof(w->buf), MSG_DONTWAIT);
    w->len = n > 0 ? (size_t)n : 0;
    return n;
}

static const char *take_str(struct submit *s, size_t *off)
{
    const char *p = (const char *)s->raw.buf + *off;
    const char *nul = memchr(p, '\0', s->raw.len - *off);
    assert_non_null(nul);
    *off += (size_t)(nul - p) + 1;
    return p;
}

static void parse_submit(struct submit *s)
{
    size_t off = HDR + 17;
    unsigned char present;
    assert_true(s->raw.len >= off + 4);
    assert_int_equal(s->raw.buf[0], T_SUBMIT);
    assert_int_equal(s->raw.buf[1] | s->raw.buf[2] | s->raw.buf[3], 0);
    memcpy(&s->id, s->raw.buf + 4, 4);
    memcpy(&s->max_bytes, s->raw.buf + HDR, 8);
    memcpy(&s->resume_from, s->raw.buf + HDR + 8, 8);
    memcpy(&present, s->raw.buf + HDR + 16, 1);
    s->present = present;
    s->url = take_str(s, &off);
    s->if_range = take_str(s, &off);
    s->if_none_match = take_str(s, &off);
    s->if_modified_since = take_str(s, &off);
    assert_int_equal(off, s->raw.len); /* nothing after the last string */
}

static void read_submit(int fd, struct submit *s)
{
    ssize_t n = peer_recv(fd, &s->raw);
    if (n <= 0)
        fail_msg("no SUBMIT from the parent (%s)", n < 0 ? strerror(errno) : "EOF");
    parse_submit(s);
}

/* The next message from the parent is a CANCEL (or CANCEL_ALL) for id. */
static void expect_cancel(int fd, unsigned type, uint32_t id)
{
    struct wire w;
    uint32_t got;
    ssize_t n = peer_recv(fd, &w);
    if (n < 0)
        fail_msg("no message from the parent, expected type %u for id %u", type, id);
    assert_int_equal(n, HDR);
    assert_int_equal(w.buf[0], type);
    memcpy(&got, w.buf + 4, 4);
    assert_int_equal(got, id);
}

static void expect_no_message(int fd)
{
    struct wire w;
    ssize_t n = peer_recv(fd, &w);
    if (n >= 0)
        fail_msg("unexpected message from the parent: type %u, %zd bytes", w.buf[0], n);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* ---- what the callbacks saw ---- */

#define REC_CAP ((size_t)256 * 1024)

struct rec {
    int responses;
    long status;
    uint64_t range_start;
    int has_etag, has_lm;
    char etag[HEADER_MAX + 1], lm[HEADER_MAX + 1];
    unsigned char *data;
    size_t len;     /* bytes kept (up to REC_CAP) */
    uint64_t total; /* bytes accepted */
    int data_calls; /* on_data calls, failed ones included */
    cas_hr fail_response;
    int fail_at_call; /* > 0: that on_data call fails with fail_data */
    cas_hr fail_data;
    unsigned slow_us; /* on_data takes this long (a parent busy writing and hashing) */
};

static cas_hr rec_on_response(void *ud, const struct cas_transfer_response *resp)
{
    struct rec *r = ud;
    r->responses++;
    r->status = resp->status;
    r->range_start = resp->range_start;
    r->has_etag = resp->etag != NULL;
    r->has_lm = resp->last_modified != NULL;
    snprintf(r->etag, sizeof(r->etag), "%s", resp->etag ? resp->etag : "");
    snprintf(r->lm, sizeof(r->lm), "%s", resp->last_modified ? resp->last_modified : "");
    if (r->fail_response != CAS_OK)
        return cas_fail(r->fail_response, "on_response refuses status %ld", resp->status);
    return CAS_OK;
}

static cas_hr rec_on_data(void *ud, const void *data, size_t len)
{
    struct rec *r = ud;
    r->data_calls++;
    if (r->fail_at_call > 0 && r->data_calls == r->fail_at_call)
        return cas_fail(r->fail_data, "on_data fails at call %d", r->data_calls);
    if (r->slow_us)
        nanosleep(&(struct timespec){0, (long)r->slow_us * 1000}, NULL);
    size_t keep = len < REC_CAP - r->len ? len : REC_CAP - r->len;
    memcpy(r->data + r->len, data, keep);
    r->len += keep;
    r->total += len;
    return CAS_OK;
}

/* ---- fixture ---- */

#define NREQ 4

struct fx {
    int peer;
    struct cas_transfer *t;
    struct rec rec[NREQ];
    struct cas_transfer_request req[NREQ];
    char url[NREQ][64];
};

static int fx_open(void **state, int small_sndbuf)
{
    int sv[2];
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        free(f);
        return -1;
    }
    if (small_sndbuf) {
        int size = 4096; /* the kernel's minimum is about this: a few messages in flight */
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) != 0)
            return -1;
    }
    f->peer = sv[1];
    if (cas_transfer_broker_wrap(sv[0], &f->t) != CAS_OK)
        return -1;
    for (int i = 0; i < NREQ; i++) {
        f->rec[i].data = calloc(1, REC_CAP);
        if (!f->rec[i].data)
            return -1;
        snprintf(f->url[i], sizeof(f->url[i]), "http://dp%d.example/pkg/file%d.bin", i, i);
        f->req[i] = (struct cas_transfer_request){.url = f->url[i],
                                                  .max_bytes = 1000,
                                                  .on_response = rec_on_response,
                                                  .on_data = rec_on_data,
                                                  .ud = &f->rec[i]};
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return fx_open(state, 0);
}

static int setup_small_sndbuf(void **state)
{
    return fx_open(state, 1);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (!f)
        return 0;
    if (f->t)
        f->t->destroy(f->t);
    if (f->peer >= 0)
        close(f->peer);
    for (int i = 0; i < NREQ; i++)
        free(f->rec[i].data);
    free(f);
    return 0;
}

/* Submit req[i] (tag: &rec[i]) and read its SUBMIT on the child's end. */
static uint32_t submit_i(struct fx *f, int i, struct submit *out)
{
    struct submit local;
    struct submit *s = out ? out : &local;
    cas_hr hr = f->t->submit(f->t, &f->req[i], &f->rec[i]);
    if (hr != CAS_OK)
        fail_msg("submit: 0x%08X %s", hr, cas_err_detail());
    read_submit(f->peer, s);
    assert_string_equal(s->url, f->url[i]);
    return s->id;
}

struct comp {
    int got;
    void *tag;
    cas_hr hr;
    struct cas_transfer_result res;
};

static struct comp wait_for(struct fx *f, int ms)
{
    struct comp c;
    memset(&c, 0, sizeof(c));
    c.got = f->t->wait(f->t, ms, &c.tag, &c.hr, &c.res);
    return c;
}

/* The completion of rec[i], arriving within 2 s. */
static struct comp expect_completion(struct fx *f, int i)
{
    struct comp c = wait_for(f, 2000);
    if (!c.got)
        fail_msg("no completion for request %d", i);
    assert_ptr_equal(c.tag, &f->rec[i]);
    return c;
}

static void expect_nothing_more(struct fx *f)
{
    struct comp c = wait_for(f, 50);
    if (c.got)
        fail_msg("an unexpected completion: 0x%08X %s", c.hr, c.res.detail);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- a transfer that goes well ---- */

static void test_normal_exchange(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    struct submit s;
    uint32_t id = submit_i(f, 0, &s);
    assert_int_equal(s.max_bytes, 1000);
    assert_int_equal(s.resume_from, 0);
    assert_int_equal(s.present, 0);
    assert_string_equal(s.if_range, "");
    assert_string_equal(s.if_none_match, "");
    assert_string_equal(s.if_modified_since, "");
    expect_no_message(f->peer);

    send_response(f->peer, id, 200, 0, 3, "\"v1-abc\"", "Tue, 03 Feb 2026 10:00:00 GMT");
    send_str(f->peer, id, "hello ");
    send_str(f->peer, id, "brave ");
    send_str(f->peer, id, "world");
    /* The child claims 9999 bytes: the parent counts for itself. */
    send_done(f->peer, id, CAS_OK, 200, 9999, 0, -1, "");

    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.http_status, 200);
    assert_int_equal(c.res.bytes, 17);
    assert_int_equal(c.res.hard, 0);
    assert_int_equal(c.res.retry_after, -1);
    assert_int_equal(r->responses, 1);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->range_start, 0);
    assert_true(r->has_etag);
    assert_string_equal(r->etag, "\"v1-abc\"");
    assert_true(r->has_lm);
    assert_string_equal(r->lm, "Tue, 03 Feb 2026 10:00:00 GMT");
    assert_int_equal(r->len, 17);
    assert_memory_equal(r->data, "hello brave world", 17);
    assert_int_equal(r->data_calls, 3);
    expect_nothing_more(f);
    expect_no_message(f->peer);

    /* Destroying it tells the child to stop and closes the socket. */
    f->t->destroy(f->t);
    f->t = NULL;
    expect_cancel(f->peer, T_CANCEL_ALL, 0);
    struct wire w;
    assert_int_equal(peer_recv(f->peer, &w), 0);
}

static void test_submit_encoding(void **state)
{
    struct fx *f = *state;
    struct submit s;

    f->req[0].max_bytes = 0x0102030405060708ull;
    f->req[0].resume_from = 123456789012ull;
    f->req[0].if_range = "\"etag-r\"";
    f->req[0].if_none_match = "\"etag-n\"";
    f->req[0].if_modified_since = "Mon, 02 Feb 2026 09:00:00 GMT";
    uint32_t id0 = submit_i(f, 0, &s);
    assert_int_equal(s.max_bytes, 0x0102030405060708ull);
    assert_int_equal(s.resume_from, 123456789012ull);
    assert_int_equal(s.present, 2 | 4 | 8);
    assert_string_equal(s.if_range, "\"etag-r\"");
    assert_string_equal(s.if_none_match, "\"etag-n\"");
    assert_string_equal(s.if_modified_since, "Mon, 02 Feb 2026 09:00:00 GMT");

    /* An empty value is present; a NULL one is not. */
    f->req[1].if_none_match = "";
    uint32_t id1 = submit_i(f, 1, &s);
    assert_int_equal(s.present, 4);
    assert_string_equal(s.if_none_match, "");

    f->req[2].if_modified_since = "Sun, 01 Feb 2026 08:00:00 GMT";
    uint32_t id2 = submit_i(f, 2, &s);
    assert_int_equal(s.present, 8);
    assert_string_equal(s.if_range, "");
    assert_string_equal(s.if_modified_since, "Sun, 01 Feb 2026 08:00:00 GMT");

    /* Every request has its own id. */
    assert_int_not_equal(id0, id1);
    assert_int_not_equal(id1, id2);
    assert_int_not_equal(id0, id2);
}

static void test_partial_206(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    struct submit s;
    f->req[0].resume_from = 1000;
    f->req[0].max_bytes = 2000;
    f->req[0].if_range = "\"v7\"";
    uint32_t id = submit_i(f, 0, &s);
    assert_int_equal(s.resume_from, 1000);
    assert_int_equal(s.present, 2);
    assert_string_equal(s.if_range, "\"v7\"");

    /* Only the ETag is present: the Last-Modified string is there but not meant. */
    send_response(f->peer, id, 206, 1000, 1, "\"v7\"", "ignored");
    send_str(f->peer, id, "rest-of-file");
    send_done(f->peer, id, CAS_OK, 206, 12, 0, -1, "");
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.http_status, 206);
    assert_int_equal(c.res.bytes, 12);
    assert_int_equal(r->status, 206);
    assert_int_equal(r->range_start, 1000);
    assert_true(r->has_etag);
    assert_string_equal(r->etag, "\"v7\"");
    assert_false(r->has_lm);
    assert_memory_equal(r->data, "rest-of-file", 12);
}

static void test_http_404_without_response(void **state)
{
    struct fx *f = *state;
    const char *detail = "http://dp0.example/pkg/file0.bin: HTTP status 404";
    uint32_t id = submit_i(f, 0, NULL);
    send_done(f->peer, id, CAS_E_HTTP_BASE + 404, 404, 0, 0, -1, detail);
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_HTTP_BASE + 404);
    assert_int_equal(c.res.http_status, 404);
    assert_int_equal(c.res.bytes, 0);
    assert_string_equal(c.res.detail, detail);
    assert_string_equal(cas_err_detail(), detail);
    assert_int_equal(f->rec[0].responses, 0);
    assert_int_equal(f->rec[0].data_calls, 0);
    expect_nothing_more(f);
}

/* The largest values the protocol allows are accepted, not mistaken for violations. */
static void test_limits_are_accepted(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    char *etag = malloc(HEADER_MAX + 1), detail[512];
    unsigned char *big = malloc(DATA_MAX);
    assert_non_null(etag);
    assert_non_null(big);
    memset(etag, 'e', HEADER_MAX);
    etag[HEADER_MAX] = '\0';
    memset(detail, 'd', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    for (size_t i = 0; i < DATA_MAX; i++)
        big[i] = (unsigned char)(i * 7);

    f->req[0].max_bytes = DATA_MAX + 5; /* the budget is reached exactly */
    uint32_t id = submit_i(f, 0, NULL);
    send_response(f->peer, id, 299, 0, 3, etag, etag);
    send_data(f->peer, id, big, DATA_MAX);
    send_str(f->peer, id, "12345");
    send_done(f->peer, id, CAS_OK, 299, 0, 0, -1, "");
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.bytes, DATA_MAX + 5);
    assert_int_equal(strlen(r->etag), HEADER_MAX);
    assert_int_equal(strlen(r->lm), HEADER_MAX);
    assert_memory_equal(r->data, big, DATA_MAX);
    assert_memory_equal(r->data + DATA_MAX, "12345", 5);

    /* A detail of 511 characters, the most a result holds. */
    id = submit_i(f, 1, NULL);
    send_done(f->peer, id, CAS_E_TIMEOUT, 0, 0, 0, -1, detail);
    c = expect_completion(f, 1);
    assert_int_equal(c.hr, CAS_E_TIMEOUT);
    assert_string_equal(c.res.detail, detail);

    /* Status 200 and 299 bound the 2xx range. */
    id = submit_i(f, 2, NULL);
    send_response(f->peer, id, 200, 0, 0, "", "");
    send_done_ok(f->peer, id);
    c = expect_completion(f, 2);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.bytes, 0);
    free(etag);
    free(big);
}

/* ---- the byte budget ---- */

static void test_parent_enforces_max_bytes(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    f->req[0].max_bytes = 10;
    uint32_t id = submit_i(f, 0, NULL);
    send_ok_response(f->peer, id);
    send_str(f->peer, id, "abcdef");
    send_str(f->peer, id, "ghijkl"); /* 12 > 10 */
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_TOO_LARGE);
    assert_int_equal(c.res.bytes, 6);
    assert_non_null(strstr(c.res.detail, "file0.bin"));
    assert_int_equal(r->len, 6);
    assert_memory_equal(r->data, "abcdef", 6);
    assert_int_equal(r->data_calls, 1); /* the excess never reached the callback */

    /* The child is told to drop the transfer (by the next wait at the latest). */
    expect_nothing_more(f);
    expect_cancel(f->peer, T_CANCEL, id);

    /* What it still sends for that id is ignored: no callback, no second completion. */
    send_str(f->peer, id, "mnopqr");
    send_ok_response(f->peer, id);
    send_done_ok(f->peer, id);
    expect_nothing_more(f);
    assert_int_equal(r->data_calls, 1);
    assert_int_equal(r->responses, 1);

    /* The broker itself still works: a parent-side failure is not the child's. */
    assert_int_equal(f->t->usable(f->t), 1);
    uint32_t id2 = submit_i(f, 1, NULL);
    assert_int_not_equal(id2, id);
    send_ok_response(f->peer, id2);
    send_str(f->peer, id2, "fine");
    send_done_ok(f->peer, id2);
    c = expect_completion(f, 1);
    assert_int_equal(c.hr, CAS_OK);
    assert_memory_equal(f->rec[1].data, "fine", 4);
}

/* A body over budget may be endless: the child must hear CANCEL at once, not when the agent
 * next happens to use the transfer (cas_transfer_get returns and may never wait again). */
static void test_cancel_sent_with_the_completion(void **state)
{
    struct fx *f = *state;
    f->req[0].max_bytes = 4;
    uint32_t id = submit_i(f, 0, NULL);
    send_ok_response(f->peer, id);
    send_str(f->peer, id, "too long");
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_TOO_LARGE);
    expect_cancel(f->peer, T_CANCEL, id);
}

/* ---- the job's callbacks failing ---- */

static void test_on_data_failure(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    r->fail_at_call = 2;
    r->fail_data = CAS_E_DISK_FULL;
    uint32_t id = submit_i(f, 0, NULL);
    send_ok_response(f->peer, id);
    send_str(f->peer, id, "one");
    send_str(f->peer, id, "two");
    send_str(f->peer, id, "three");
    send_done_ok(f->peer, id);
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_DISK_FULL);
    assert_string_equal(c.res.detail, "on_data fails at call 2");
    assert_int_equal(c.res.bytes, 3);
    assert_int_equal(r->len, 3);
    assert_memory_equal(r->data, "one", 3);
    expect_nothing_more(f); /* "three" and the DONE are ignored */
    assert_int_equal(r->data_calls, 2);
    expect_cancel(f->peer, T_CANCEL, id);
}

static void test_on_response_failure(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    r->fail_response = CAS_E_INVALID_DATA;
    uint32_t id = submit_i(f, 0, NULL);
    send_response(f->peer, id, 204, 0, 0, "", "");
    send_str(f->peer, id, "body");
    send_done_ok(f->peer, id);
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_INVALID_DATA);
    assert_string_equal(c.res.detail, "on_response refuses status 204");
    assert_int_equal(c.res.http_status, 204);
    expect_nothing_more(f);
    assert_int_equal(r->data_calls, 0);
    expect_cancel(f->peer, T_CANCEL, id);
}

/* ---- protocol violations ---- */

enum violation {
    V_SHORT,
    V_ZERO_LENGTH,
    V_UNKNOWN_TYPE,
    V_PARENT_TYPE,
    V_LATE_HELLO,
    V_DATA_BEFORE_RESPONSE,
    V_EMPTY_DATA,
    V_SECOND_RESPONSE,
    V_STATUS_500,
    V_STATUS_99,
    V_STATUS_304,
    V_RESPONSE_NO_NUL,
    V_RESPONSE_TRAILING,
    V_RESPONSE_BAD_PRESENT,
    V_RESPONSE_SHORT,
    V_ETAG_TOO_LONG,
    V_LM_TOO_LONG,
    V_DONE_NO_NUL,
    V_DONE_SHORT,
    V_DONE_TRAILING,
    V_DONE_DETAIL_TOO_LONG,
    V_DONE_OK_WITHOUT_RESPONSE,
    V_DONE_NOT_A_FAILURE,
    V_DONE_STATUS_NEGATIVE,
    V_DONE_STATUS_1000,
    V_TOO_LARGE_MESSAGE,
    V_EOF,
};

struct vcase {
    enum violation v;
    int respond_first; /* request A has had a response and two body bytes */
};

static void send_violation(struct fx *f, enum violation v, uint32_t id)
{
    struct wire w;
    unsigned char *big;
    switch (v) {
    case V_SHORT:
        w_start(&w, T_DATA, id);
        w.len = 5;
        w_send(f->peer, &w);
        return;
    case V_ZERO_LENGTH:
        assert_int_equal(send(f->peer, "", 0, MSG_NOSIGNAL), 0);
        return;
    case V_UNKNOWN_TYPE:
        w_start(&w, 99, id);
        w_put(&w, "x", 1);
        w_send(f->peer, &w);
        return;
    case V_PARENT_TYPE:
        w_start(&w, T_SUBMIT, id);
        w_send(f->peer, &w);
        return;
    case V_LATE_HELLO:
        w_start(&w, T_HELLO, 0);
        w_put(&w, &(uint32_t){0}, 4);
        w_str(&w, "hello again");
        w_send(f->peer, &w);
        return;
    case V_DATA_BEFORE_RESPONSE:
        send_str(f->peer, id, "early");
        return;
    case V_EMPTY_DATA:
        send_data(f->peer, id, "", 0);
        return;
    case V_SECOND_RESPONSE:
        send_response(f->peer, id, 200, 0, 1, "\"second\"", "");
        return;
    case V_STATUS_500:
        send_response(f->peer, id, 500, 0, 0, "", "");
        return;
    case V_STATUS_99:
        send_response(f->peer, id, 99, 0, 0, "", "");
        return;
    case V_STATUS_304:
        send_response(f->peer, id, 304, 0, 0, "", "");
        return;
    case V_RESPONSE_NO_NUL:
        w_response(&w, id, 200, 0, 1, "\"etag\"", "");
        w.len -= 2; /* the ETag's NUL and the empty Last-Modified */
        w_send(f->peer, &w);
        return;
    case V_RESPONSE_TRAILING:
        w_response(&w, id, 200, 0, 0, "", "");
        w_put(&w, "junk", 4);
        w_send(f->peer, &w);
        return;
    case V_RESPONSE_BAD_PRESENT:
        send_response(f->peer, id, 200, 0, 4, "", "");
        return;
    case V_RESPONSE_SHORT:
        w_start(&w, T_RESPONSE, id);
        w_put(&w, &(int64_t){200}, 8);
        w_send(f->peer, &w);
        return;
    case V_ETAG_TOO_LONG:
    case V_LM_TOO_LONG: {
        char *s = malloc(HEADER_MAX + 2);
        assert_non_null(s);
        memset(s, 'e', HEADER_MAX + 1);
        s[HEADER_MAX + 1] = '\0';
        if (v == V_ETAG_TOO_LONG)
            send_response(f->peer, id, 200, 0, 1, s, "");
        else
            send_response(f->peer, id, 200, 0, 2, "", s);
        free(s);
        return;
    }
    case V_DONE_NO_NUL:
        w_done(&w, id, CAS_E_TIMEOUT, 0, 0, 0, -1, "timed out");
        w.len--;
        w_send(f->peer, &w);
        return;
    case V_DONE_SHORT:
        w_start(&w, T_DONE, id);
        w_put(&w, &(uint32_t){CAS_E_TIMEOUT}, 4);
        w_send(f->peer, &w);
        return;
    case V_DONE_TRAILING:
        w_done(&w, id, CAS_E_TIMEOUT, 0, 0, 0, -1, "timed out");
        w_put(&w, "junk", 4);
        w_send(f->peer, &w);
        return;
    case V_DONE_DETAIL_TOO_LONG: {
        char detail[513];
        memset(detail, 'd', 512);
        detail[512] = '\0';
        send_done(f->peer, id, CAS_E_TIMEOUT, 0, 0, 0, -1, detail);
        return;
    }
    case V_DONE_OK_WITHOUT_RESPONSE:
        send_done_ok(f->peer, id);
        return;
    case V_DONE_NOT_A_FAILURE:
        send_done(f->peer, id, 0x00000001u, 0, 0, 0, -1, "S_FALSE is not a failure");
        return;
    case V_DONE_STATUS_NEGATIVE:
        send_done(f->peer, id, CAS_E_CONN_RESET, -1, 0, 0, -1, "");
        return;
    case V_DONE_STATUS_1000:
        send_done(f->peer, id, CAS_E_CONN_RESET, 1000, 0, 0, -1, "");
        return;
    case V_TOO_LARGE_MESSAGE:
        big = calloc(1, MSG_MAX + 1);
        assert_non_null(big);
        big[0] = T_DATA;
        memcpy(big + 4, &id, 4);
        assert_int_equal(send(f->peer, big, MSG_MAX + 1, MSG_NOSIGNAL), (ssize_t)(MSG_MAX + 1));
        free(big);
        return;
    case V_EOF:
        close(f->peer);
        f->peer = -1;
        return;
    }
}

static void test_violation(void **state)
{
    struct vcase *vc = *state;
    struct fx *f = NULL;
    void *fs = NULL;
    *state = NULL;
    if (setup(&fs) != 0 || !fs) {
        fail_msg("setup failed");
        return;
    }
    f = fs;
    *state = f; /* teardown frees it */

    uint32_t a = submit_i(f, 0, NULL);
    uint32_t b = submit_i(f, 1, NULL);
    assert_non_null(f->t->usable);
    assert_int_equal(f->t->usable(f->t), 1);
    if (vc->respond_first) {
        send_ok_response(f->peer, a);
        send_str(f->peer, a, "ok");
    }
    send_violation(f, vc->v, a);

    /* Both transfers in flight end, each once, with the transfer process's failure. */
    int seen[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        struct comp c = wait_for(f, 2000);
        if (!c.got)
            fail_msg("violation %d: transfer %d did not end", (int)vc->v, k);
        int i = c.tag == &f->rec[0] ? 0 : c.tag == &f->rec[1] ? 1 : -1;
        if (i < 0) {
            fail_msg("violation %d: a completion for no transfer", (int)vc->v);
            return;
        }
        seen[i]++;
        if (c.hr != CAS_E_TRANSFER_PROCESS)
            fail_msg("violation %d: 0x%08X %s", (int)vc->v, c.hr, c.res.detail);
        assert_int_equal(c.hr, 0xA0CA0105u);
        assert_non_null(strstr(c.res.detail, f->url[i]));
        assert_non_null(strstr(c.res.detail, "transfer process"));
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    expect_nothing_more(f);

    /* Nothing of the offending message reached the job. */
    assert_int_equal(f->rec[0].responses, vc->respond_first ? 1 : 0);
    assert_int_equal(f->rec[0].len, vc->respond_first ? 2 : 0);
    assert_int_equal(f->rec[1].responses, 0);
    assert_int_equal(f->rec[1].len, 0);

    /* The owner can tell it must make a new one; until then every submit fails at once. */
    assert_int_equal(f->t->usable(f->t), 0);
    double t0 = now_ms();
    cas_hr hr = f->t->submit(f->t, &f->req[2], &f->rec[2]);
    assert_int_equal(hr, CAS_E_TRANSFER_PROCESS);
    assert_non_null(strstr(cas_err_detail(), f->url[2]));
    assert_true(now_ms() - t0 < 500);
    expect_nothing_more(f);
    if (f->peer >= 0) {
        /* ... and is not sent to the child. */
        struct wire w;
        while (peer_recv(f->peer, &w) > 0)
            assert_int_not_equal(w.buf[0], T_SUBMIT);
    }
    (void)b;
}

static int teardown_violation(void **state)
{
    /* *state is the fixture test_violation made, or NULL. */
    return teardown(state);
}

/* ---- what is ignored, cut or cleaned ---- */

static void test_unknown_ids_ignored(void **state)
{
    struct fx *f = *state;
    uint32_t id = submit_i(f, 0, NULL);
    send_done(f->peer, id + 1000, CAS_E_TIMEOUT, 0, 0, 0, -1, "never submitted");
    send_done_ok(f->peer, id + 1001);
    send_done_ok(f->peer, 0);
    send_ok_response(f->peer, id + 1002);
    send_str(f->peer, id + 1002, "stray");
    expect_nothing_more(f);
    assert_int_equal(f->rec[0].responses, 0);
    assert_int_equal(f->rec[0].data_calls, 0);

    /* The real one still completes, once. */
    send_ok_response(f->peer, id);
    send_str(f->peer, id, "real");
    send_done_ok(f->peer, id);
    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.bytes, 4);
    expect_nothing_more(f);
}

static void test_done_fields_checked(void **state)
{
    struct fx *f = *state;
    uint32_t id0 = submit_i(f, 0, NULL);
    uint32_t id1 = submit_i(f, 1, NULL);
    uint32_t id2 = submit_i(f, 2, NULL);
    send_done(f->peer, id0, CAS_E_HTTP_BASE + 503, 503, 0, 7, 1000000000,
              "busy\x01line\nnext\x7f"
              "end\ttab\x1b[31m");
    send_done(f->peer, id1, CAS_E_HTTP_BASE + 429, 429, 0, 0, -5, "slow down");
    send_done(f->peer, id2, CAS_E_CANNOT_CONNECT, 0, 0, 1, 120, "refused");

    struct comp c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_HTTP_BASE + 503);
    assert_int_equal(c.res.http_status, 503);
    assert_int_equal(c.res.retry_after, 86400); /* a day at most */
    assert_int_equal(c.res.hard, 1);
    assert_string_equal(c.res.detail, "busy?line?next?end?tab?[31m");
    assert_string_equal(cas_err_detail(), "busy?line?next?end?tab?[31m");

    c = expect_completion(f, 1);
    assert_int_equal(c.res.retry_after, -1);
    assert_int_equal(c.res.hard, 0);
    assert_string_equal(c.res.detail, "slow down");

    c = expect_completion(f, 2);
    assert_int_equal(c.hr, CAS_E_CANNOT_CONNECT);
    assert_int_equal(c.res.retry_after, 120);
    assert_int_equal(c.res.hard, 1);
    assert_int_equal(c.res.http_status, 0);
}

/* ---- several at once ---- */

static void test_interleaved_then_cancel_all(void **state)
{
    struct fx *f = *state;
    uint32_t a = submit_i(f, 0, NULL);
    uint32_t b = submit_i(f, 1, NULL);
    uint32_t c3 = submit_i(f, 2, NULL);

    send_response(f->peer, b, 200, 0, 1, "\"b\"", "");
    send_response(f->peer, a, 206, 5, 2, "", "Mon, 02 Feb 2026 09:00:00 GMT");
    send_str(f->peer, a, "a1-");
    send_str(f->peer, b, "b1-");
    send_response(f->peer, c3, 200, 0, 0, "", "");
    send_str(f->peer, c3, "c1-");
    send_str(f->peer, a, "a2");
    send_str(f->peer, b, "b2");
    send_done_ok(f->peer, b);
    send_done(f->peer, a, CAS_E_TIMEOUT, 206, 0, 0, -1, "a timed out");

    struct comp c = expect_completion(f, 1);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.bytes, 5);
    c = expect_completion(f, 0);
    assert_int_equal(c.hr, CAS_E_TIMEOUT);
    assert_int_equal(c.res.bytes, 5);
    assert_string_equal(c.res.detail, "a timed out");

    assert_int_equal(f->rec[0].len, 5);
    assert_memory_equal(f->rec[0].data, "a1-a2", 5);
    assert_int_equal(f->rec[0].status, 206);
    assert_int_equal(f->rec[0].range_start, 5);
    assert_false(f->rec[0].has_etag);
    assert_string_equal(f->rec[0].lm, "Mon, 02 Feb 2026 09:00:00 GMT");
    assert_int_equal(f->rec[1].len, 5);
    assert_memory_equal(f->rec[1].data, "b1-b2", 5);
    assert_string_equal(f->rec[1].etag, "\"b\"");
    assert_int_equal(f->rec[2].len, 3);
    assert_memory_equal(f->rec[2].data, "c1-", 3);

    /* The third is still running: cancel_all drops it and tells the child. */
    f->t->cancel_all(f->t);
    expect_cancel(f->peer, T_CANCEL_ALL, 0);
    send_str(f->peer, c3, "c2-");
    send_done_ok(f->peer, c3);
    send_done(f->peer, a, CAS_E_TIMEOUT, 0, 0, 0, -1, "again");
    expect_nothing_more(f);
    assert_int_equal(f->rec[2].len, 3);
    assert_int_equal(f->rec[2].data_calls, 1);

    /* And new transfers work, with new ids. */
    assert_int_equal(f->t->usable(f->t), 1);
    uint32_t d = submit_i(f, 3, NULL);
    assert_true(d != a && d != b && d != c3);
    send_ok_response(f->peer, d);
    send_str(f->peer, d, "d");
    send_done_ok(f->peer, d);
    c = expect_completion(f, 3);
    assert_int_equal(c.hr, CAS_OK);
    assert_int_equal(c.res.bytes, 1);
}

/* ---- no deadlock ---- */

#define NSUBMIT 50

static void test_submit_never_blocks(void **state)
{
    struct fx *f = *state;
    struct cas_transfer_request *reqs = calloc(NSUBMIT, sizeof(*reqs));
    char(*urls)[2100] = calloc(NSUBMIT, sizeof(*urls));
    int got = 0, first_batch;
    struct submit s;
    assert_non_null(reqs);
    assert_non_null(urls);

    /* Long URLs, a small send buffer, and a child that does not read: the queue fills. */
    double t0 = now_ms();
    for (int i = 0; i < NSUBMIT; i++) {
        int n = snprintf(urls[i], sizeof(urls[i]), "http://dp.example/%04d/", i);
        memset(urls[i] + n, 'u', sizeof(urls[i]) - 1 - (size_t)n);
        urls[i][sizeof(urls[i]) - 1] = '\0';
        reqs[i] = (struct cas_transfer_request){.url = urls[i],
                                                .max_bytes = 1,
                                                .on_response = rec_on_response,
                                                .on_data = rec_on_data,
                                                .ud = &f->rec[0]};
        double s0 = now_ms();
        assert_int_equal(f->t->submit(f->t, &reqs[i], &reqs[i]), CAS_OK);
        if (now_ms() - s0 > 200)
            fail_msg("submit %d took %.0f ms", i, now_ms() - s0);
    }
    assert_true(now_ms() - t0 < 2000);

    /* What reached the socket so far: not everything, or the queue was never tested. */
    while (peer_recv(f->peer, &s.raw) > 0) {
        parse_submit(&s);
        assert_int_equal(s.id, (uint32_t)got + 1);
        assert_string_equal(s.url, urls[got]);
        got++;
    }
    first_batch = got;
    assert_true(first_batch < NSUBMIT);

    /* The parent sends the rest while it waits; they arrive complete and in order. */
    double end = now_ms() + 5000;
    while (got < NSUBMIT && now_ms() < end) {
        struct comp c = wait_for(f, 10);
        assert_int_equal(c.got, 0);
        while (got < NSUBMIT && peer_recv(f->peer, &s.raw) > 0) {
            parse_submit(&s);
            assert_int_equal(s.id, (uint32_t)got + 1);
            assert_string_equal(s.url, urls[got]);
            assert_int_equal(s.max_bytes, 1);
            got++;
        }
    }
    assert_int_equal(got, NSUBMIT);
    print_message("[   NOTE   ] %d of %d SUBMITs went out at once, the rest while waiting\n",
                  first_batch, NSUBMIT);
    expect_no_message(f->peer);
    f->t->cancel_all(f->t);
    free(reqs);
    free(urls);
}

/* ---- wait() keeps its time limit ---- */

/* A child that streams body bytes faster than the job consumes them (or streams for an id the
 * parent no longer knows, without end) must not keep wait() from returning at its timeout: the
 * agent's loop checks stop requests and deadlines between waits. */
static void test_wait_returns_on_time_under_a_stream(void **state)
{
    struct fx *f = *state;
    struct rec *r = &f->rec[0];
    unsigned char piece[1024];
    int status;
    memset(piece, 'z', sizeof(piece));
    f->req[0].max_bytes = UINT64_MAX;
    r->slow_us = 500;
    uint32_t id = submit_i(f, 0, NULL);
    send_ok_response(f->peer, id);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The streamer: 3 s of body bytes, as fast as the socket takes them. */
        struct wire w;
        w_start(&w, T_DATA, id);
        memcpy(w.buf + HDR, piece, sizeof(piece));
        w.len = HDR + sizeof(piece);
        double end = now_ms() + 3000;
        while (now_ms() < end) {
            if (send(f->peer, w.buf, w.len, MSG_NOSIGNAL) != (ssize_t)w.len)
                _exit(1);
        }
        _exit(0);
    }
    /* Let the stream build up a backlog first. */
    nanosleep(&(struct timespec){0, 100L * 1000 * 1000}, NULL);
    double t0 = now_ms();
    struct comp c = wait_for(f, 300);
    double took = now_ms() - t0;
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(c.got, 0);
    assert_true(r->total > 0);
    if (took > 1500)
        fail_msg("wait(300 ms) returned after %.0f ms (%llu body bytes handled)", took,
                 (unsigned long long)r->total);
}

/* One case per violation (main numbers them); these come after a valid response and two body
 * bytes for request A. */
static struct vcase vcases[V_EOF + 1] = {
    [V_EMPTY_DATA] = {V_EMPTY_DATA, 1},
    [V_SECOND_RESPONSE] = {V_SECOND_RESPONSE, 1},
    [V_TOO_LARGE_MESSAGE] = {V_TOO_LARGE_MESSAGE, 1},
    [V_EOF] = {V_EOF, 1},
};

#define VIOLATION(v)                                                                               \
    {                                                                                              \
        "test_violation_" #v, test_violation, NULL, teardown_violation, &vcases[v]                 \
    }

int main(void)
{
    for (int v = 0; v <= V_EOF; v++)
        vcases[v].v = (enum violation)v;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_normal_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_206, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_404_without_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_are_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_enforces_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sent_with_the_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_data_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_response_failure, setup, teardown),
        VIOLATION(V_SHORT),
        VIOLATION(V_ZERO_LENGTH),
        VIOLATION(V_UNKNOWN_TYPE),
        VIOLATION(V_PARENT_TYPE),
        VIOLATION(V_LATE_HELLO),
        VIOLATION(V_DATA_BEFORE_RESPONSE),
        VIOLATION(V_EMPTY_DATA),
        VIOLATION(V_SECOND_RESPONSE),
        VIOLATION(V_STATUS_500),
        VIOLATION(V_STATUS_99),
        VIOLATION(V_STATUS_304),
        VIOLATION(V_RESPONSE_NO_NUL),
        VIOLATION(V_RESPONSE_TRAILING),
        VIOLATION(V_RESPONSE_BAD_PRESENT),
        VIOLATION(V_RESPONSE_SHORT),
        VIOLATION(V_ETAG_TOO_LONG),
        VIOLATION(V_LM_TOO_LONG),
        VIOLATION(V_DONE_NO_NUL),
        VIOLATION(V_DONE_SHORT),
        VIOLATION(V_DONE_TRAILING),
        VIOLATION(V_DONE_DETAIL_TOO_LONG),
        VIOLATION(V_DONE_OK_WITHOUT_RESPONSE),
        VIOLATION(V_DONE_NOT_A_FAILURE),
        VIOLATION(V_DONE_STATUS_NEGATIVE),
        VIOLATION(V_DONE_STATUS_1000),
        VIOLATION(V_TOO_LARGE_MESSAGE),
        VIOLATION(V_EOF),
        cmocka_unit_test_setup_teardown(test_unknown_ids_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_fields_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_then_cancel_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_never_blocks, setup_small_sndbuf, teardown),
        cmocka_unit_test_setup_teardown(test_wait_returns_on_time_under_a_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
