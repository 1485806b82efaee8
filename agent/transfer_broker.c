/* The transfer interface with libcurl in an unprivileged child (privilege separation).
 *
 * The child is forked when the agent first needs a transfer. It reads the TLS files it needs,
 * enters the sandbox (root dropped, no new privileges, Landlock: no writes at all) and only then
 * serves requests: libcurl, TLS and HTTP parsing — everything that reads bytes from the network —
 * run there. The parent (root) keeps the job logic, writes the bytes it receives into the
 * partial area, hashes, verifies, commits and executes. A child taken over by a hostile server
 * can send wrong bytes (which fail the hash, as from a hostile server) but cannot write a file,
 * regain root or touch the cache.
 *
 * Protocol: one message per SOCK_SEQPACKET datagram, an 8-byte header (type, request id) and a
 * payload. The parent never blocks on sending (its commands are queued and flushed while it
 * waits), so a child blocked on sending body bytes cannot deadlock it. Everything the child sends
 * is checked as hostile input: sizes, ids, NUL-terminated strings, the order of answers, and the
 * body byte budget, which the parent enforces again. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/sandbox.h"
#include "agent/transfer.h"
#include "agent/transfer_broker.h"
#include "common/log.h"
#include "common/timefmt.h"

enum {
    MSG_SUBMIT = 1,     /* parent: u64 max_bytes, u64 resume_from, u8 present, strings */
    MSG_CANCEL = 2,     /* parent: the id is dropped */
    MSG_CANCEL_ALL = 3, /* parent */
    MSG_HELLO = 10,     /* child: u32 hr, text: the sandbox it runs in, or why it could not */
    MSG_RESPONSE = 11,  /* child: i64 status, u64 range_start, u8 present, etag, last_modified */
    MSG_DATA = 12,      /* child: body bytes */
    MSG_DONE = 13,      /* child: u32 hr, i64 status, u64 bytes, i32 hard, i64 retry_after, text */
};

#define HDR_SIZE      8u
#define DATA_MAX      ((size_t)64 * 1024)
#define MSG_MAX       (HDR_SIZE + DATA_MAX)
#define TEXT_MAX      512u
#define HEADER_MAX    8192u /* an ETag or Last-Modified value */
#define HELLO_WAIT_MS 15000

/* ---- encoding ---- */

struct msg {
    unsigned char buf[MSG_MAX];
    size_t len;
};

static void msg_start(struct msg *m, unsigned type, uint32_t id)
{
    memset(m->buf, 0, HDR_SIZE);
    m->buf[0] = (unsigned char)type;
    memcpy(m->buf + 4, &id, 4);
    m->len = HDR_SIZE;
}

static int msg_put(struct msg *m, const void *p, size_t n)
{
    if (n > sizeof(m->buf) - m->len)
        return -1;
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}

static int msg_put_str(struct msg *m, const char *s)
{
    return msg_put(m, s ? s : "", strlen(s ? s : "") + 1);
}

/* A cursor over a received payload; every read checks the bounds. */
struct rd {
    const unsigned char *p;
    size_t left;
    int bad;
};

static void rd_get(struct rd *r, void *out, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

/* A NUL-terminated string of at most max bytes, in place. */
static const char *rd_str(struct rd *r, size_t max)
{
    const unsigned char *nul;
    if (r->bad || !(nul = memchr(r->p, '\0', r->left)) || (size_t)(nul - r->p) > max) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    r->left -= (size_t)(nul - r->p) + 1;
    r->p = nul + 1;
    return s;
}

/* ---- the child ---- */

struct child_req {
    uint32_t id;
    struct cas_transfer_request req;
    char *strings; /* url, if_range, if_none_match, if_modified_since, back to back */
    int sock;
    int failed; /* the parent went away */
    struct child_req *next;
};

static int child_send(int sock, const struct msg *m)
{
    for (;;) {
        if (send(sock, m->buf, m->len, MSG_NOSIGNAL) == (ssize_t)m->len)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static cas_hr child_on_response(void *ud, const struct cas_transfer_response *resp)
{
    struct child_req *c = ud;
    struct msg m;
    int64_t status = resp->status;
    uint64_t start = resp->range_start;
    unsigned char present;
    const char *etag = resp->etag && strlen(resp->etag) <= HEADER_MAX ? resp->etag : NULL;
    const char *lm = resp->last_modified && strlen(resp->last_modified) <= HEADER_MAX
                         ? resp->last_modified
                         : NULL;
    present = (unsigned char)((etag ? 1 : 0) | (lm ? 2 : 0));
    msg_start(&m, MSG_RESPONSE, c->id);
    msg_put(&m, &status, 8);
    msg_put(&m, &start, 8);
    msg_put(&m, &present, 1);
    msg_put_str(&m, etag);
    msg_put_str(&m, lm);
    if (child_send(c->sock, &m) != 0) {
        c->failed = 1;
        return cas_fail(CAS_E_CANCELLED, "the agent went away");
    }
    return CAS_OK;
}

static cas_hr child_on_data(void *ud, const void *data, size_t len)
{
    struct child_req *c = ud;
    struct msg m;
    const unsigned char *p = data;
    while (len > 0) {
        size_t n = len < DATA_MAX ? len : DATA_MAX;
        msg_start(&m, MSG_DATA, c->id);
        msg_put(&m, p, n);
        if (child_send(c->sock, &m) != 0) {
            c->failed = 1;
            return cas_fail(CAS_E_CANCELLED, "the agent went away");
        }
        p += n;
        len -= n;
    }
    return CAS_OK;
}

static void child_free_req(struct child_req *c)
{
    free(c->strings);
    free(c);
}

/* Parse a SUBMIT from the parent (trusted, but checked all the same). */
static struct child_req *child_parse_submit(int sock, uint32_t id, struct rd *r)
{
    struct child_req *c = calloc(1, sizeof(*c));
    unsigned char present = 0;
    const char *s[4];
    size_t total = 0;
    if (!c)
        return NULL;
    rd_get(r, &c->req.max_bytes, 8);
    rd_get(r, &c->req.resume_from, 8);
    rd_get(r, &present, 1);
    for (int i = 0; i < 4; i++) {
        s[i] = rd_str(r, DATA_MAX);
        total += strlen(s[i]) + 1;
    }
    if (r->bad || !(c->strings = malloc(total))) {
        free(c);
        return NULL;
    }
    char *out = c->strings;
    const char **dst[4] = {&c->req.url, &c->req.if_range, &c->req.if_none_match,
                           &c->req.if_modified_since};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(s[i]) + 1;
        memcpy(out, s[i], n);
        *dst[i] = (i == 0 || (present & (1u << i))) ? out : NULL;
        out += n;
    }
    c->id = id;
    c->sock = sock;
    c->req.on_response = child_on_response;
    c->req.on_data = child_on_data;
    c->req.ud = c;
    return c;
}

static void child_unlink(struct child_req **list, struct child_req *c)
{
    for (struct child_req **pp = list; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

/* Serve the parent until it closes the socket. Never returns. */
static void child_serve(int sock, struct cas_transfer *t)
{
    struct child_req *list = NULL;
    static struct msg in;
    cas_transfer_curl_watch(t, sock);
    for (;;) {
        /* Commands first: they are small and the parent never waits on them. */
        for (;;) {
            ssize_t n = recv(sock, in.buf, sizeof(in.buf), MSG_DONTWAIT);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0 || (size_t)n < HDR_SIZE)
                _exit(0); /* the agent is gone (or confused): nothing to do */
            uint32_t id;
            memcpy(&id, in.buf + 4, 4);
            struct rd r = {in.buf + HDR_SIZE, (size_t)n - HDR_SIZE, 0};
            if (in.buf[0] == MSG_SUBMIT) {
                struct child_req *c = child_parse_submit(sock, id, &r);
                if (!c)
                    _exit(4);
                c->next = list;
                list = c;
                cas_hr shr = t->submit(t, &c->req, c);
                if (shr != CAS_OK) {
                    struct msg m;
                    uint32_t hr = (uint32_t)shr;
                    int64_t zero64 = 0, ra = -1;
                    uint64_t zero = 0;
                    int32_t hard = 0;
                    msg_start(&m, MSG_DONE, id);
                    msg_put(&m, &hr, 4);
                    msg_put(&m, &zero64, 8);
                    msg_put(&m, &zero, 8);
                    msg_put(&m, &hard, 4);
                    msg_put(&m, &ra, 8);
                    msg_put_str(&m, cas_err_detail());
                    child_unlink(&list, c);
                    child_free_req(c);
                    if (child_send(sock, &m) != 0)
                        _exit(0);
                }
            } else if (in.buf[0] == MSG_CANCEL) {
                struct child_req *c = list;
                while (c && c->id != id)
                    c = c->next;
                if (c) {
                    child_unlink(&list, c);
                    cas_transfer_curl_cancel(t, c);
                    child_free_req(c);
                }
            } else if (in.buf[0] == MSG_CANCEL_ALL) {
                t->cancel_all(t);
                while (list) {
                    struct child_req *c = list;
                    list = c->next;
                    child_free_req(c);
                }
            } else {
                _exit(4);
            }
        }
        void *tag = NULL;
        cas_hr hr = CAS_OK;
        struct cas_transfer_result res;
        if (!t->wait(t, 60000, &tag, &hr, &res))
            continue;
        struct child_req *c = tag;
        struct msg m;
        uint32_t code = (uint32_t)hr;
        int64_t status = res.http_status, ra = res.retry_after;
        uint64_t bytes = res.bytes;
        int32_t hard = res.hard;
        if (c->failed)
            _exit(0);
        msg_start(&m, MSG_DONE, c->id);
        msg_put(&m, &code, 4);
        msg_put(&m, &status, 8);
        msg_put(&m, &bytes, 8);
        msg_put(&m, &hard, 4);
        msg_put(&m, &ra, 8);
        res.detail[sizeof(res.detail) - 1] = '\0';
        msg_put_str(&m, res.detail);
        child_unlink(&list, c);
        child_free_req(c);
        if (child_send(sock, &m) != 0)
            _exit(0);
    }
}

/* The child's life: sandbox, hello, serve. */
static void child_main(int sock, const struct cas_config *cfg, pid_t parent, const char *user)
{
    struct cas_transfer *t = NULL;
    struct cas_sandbox_status st;
    struct msg m;
    char text[TEXT_MAX];
    uint32_t code;
    cas_hr hr;

    signal(SIGINT, SIG_IGN); /* a terminal's ^C is the agent's to handle: it ends us by EOF */
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sock = cas_sandbox_child_fds(sock);
    if (sock < 0)
        _exit(5);
    /* Read the TLS files while still allowed to, then give everything up. */
    hr = cas_transfer_curl_new(cfg, &t);
    if (hr == CAS_OK)
        hr = cas_sandbox_enter(user, NULL, &st);
    if (hr == CAS_OK) {
        /* Cleared by the uid change, so set now; and the parent may already be gone. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(0);
        cas_sandbox_describe(&st, NULL, text, sizeof(text));
    } else {
        snprintf(text, sizeof(text), "%s", cas_err_detail());
    }
    code = (uint32_t)hr;
    msg_start(&m, MSG_HELLO, 0);
    msg_put(&m, &code, 4);
    msg_put_str(&m, text);
    if (child_send(sock, &m) != 0 || hr != CAS_OK)
        _exit(hr == CAS_OK ? 0 : 6);
    child_serve(sock, t);
}

/* ---- the parent ---- */

struct slot {
    uint32_t id;
    const struct cas_transfer_request *req;
    void *tag;
    uint64_t bytes;
    int responded;
    long status; /* the 2xx status of the response */
    struct slot *next;
};

struct outq {
    struct msg m;
    uint32_t id; /* a queued SUBMIT's id, to drop it on cancel; 0 otherwise */
    struct outq *next;
};

struct done {
    void *tag;
    cas_hr hr;
    struct cas_transfer_result res;
    struct done *next;
};

struct broker {
    struct cas_transfer base;
    int sock;
    pid_t pid;
    int dead; /* the child is gone or broke the protocol: every transfer fails */
    char why[TEXT_MAX];
    uint32_t next_id;
    struct slot *slots;
    struct outq *out, **out_tail;
    struct done *done, **done_tail;
    struct msg in;
};

static struct slot *br_find(struct broker *b, uint32_t id)
{
    for (struct slot *s = b->slots; s; s = s->next) {
        if (s->id == id)
            return s;
    }
    return NULL;
}

static void br_remove(struct broker *b, struct slot *s)
{
    for (struct slot **pp = &b->slots; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            free(s);
            return;
        }
    }
}

static void br_queue(struct broker *b, struct outq *q)
{
    q->next = NULL;
    *b->out_tail = q;
    b->out_tail = &q->next;
}

static void br_complete(struct broker *b, struct slot *s, cas_hr hr,
                        const struct cas_transfer_result *res)
{
    struct done *d = calloc(1, sizeof(*d));
    if (!d)
        abort(); /* a lost completion would hang the job: no way to go on */
    d->tag = s->tag;
    d->hr = hr;
    d->res = *res;
    d->res.bytes = s->bytes; /* what was delivered here, whatever the child claims */
    *b->done_tail = d;
    b->done_tail = &d->next;
    br_remove(b, s);
}

/* The child is gone or not to be trusted any more: fail everything in flight. */
static void br_kill(struct broker *b, const char *why)
{
    if (!b->dead) {
        b->dead = 1;
        snprintf(b->why, sizeof(b->why), "%s", why);
        cas_log_error(CAS_LOG_DTS, "The transfer process %d failed: %s", (int)b->pid, why);
        if (b->pid > 0)
            kill(b->pid, SIGKILL);
    }
    while (b->slots) {
        struct cas_transfer_result res = {0};
        res.retry_after = -1;
        snprintf(res.detail, sizeof(res.detail), "%.200s: the transfer process failed: %.200s",
                 b->slots->req->url, b->why);
        br_complete(b, b->slots, CAS_E_TRANSFER_PROCESS, &res);
    }
}

/* A parent-side failure (the job's callback, or the byte budget): the child forgets the id. */
static void br_abort(struct broker *b, struct slot *s, cas_hr hr, long status)
{
    struct cas_transfer_result res = {0};
    struct outq *q = calloc(1, sizeof(*q));
    res.http_status = status;
    res.retry_after = -1;
    snprintf(res.detail, sizeof(res.detail), "%s", cas_err_detail());
    if (q) {
        msg_start(&q->m, MSG_CANCEL, s->id);
        br_queue(b, q);
    }
    br_complete(b, s, hr, &res);
    if (!q)
        br_kill(b, "out of memory");
}

static void br_flush(struct broker *b)
{
    while (b->out && !b->dead) {
        struct outq *q = b->out;
        ssize_t n = send(b->sock, q->m.buf, q->m.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n != (ssize_t)q->m.len) {
            br_kill(b, n < 0 ? strerror(errno) : "short send");
            return;
        }
        b->out = q->next;
        if (!b->out)
            b->out_tail = &b->out;
        free(q);
    }
}

/* One message from the child. A protocol violation kills the child. */
static void br_handle(struct broker *b, size_t n)
{
    struct msg *m = &b->in;
    uint32_t id;
    struct slot *s;
    struct rd r;

    if (n < HDR_SIZE) {
        br_kill(b, "a message shorter than its header");
        return;
    }
    memcpy(&id, m->buf + 4, 4);
    r = (struct rd){m->buf + HDR_SIZE, n - HDR_SIZE, 0};
    s = br_find(b, id);
    switch (m->buf[0]) {
    case MSG_RESPONSE: {
        int64_t status = 0;
        unsigned char present = 0;
        struct cas_transfer_response resp = {0};
        rd_get(&r, &status, 8);
        rd_get(&r, &resp.range_start, 8);
        rd_get(&r, &present, 1);
        const char *etag = rd_str(&r, HEADER_MAX), *lm = rd_str(&r, HEADER_MAX);
        if (r.bad || r.left || status < 200 || status > 299 || (present & ~3u)) {
            br_kill(b, "a malformed response message");
            return;
        }
        if (!s)
            return; /* cancelled here: its late messages are ignored */
        if (s->responded) {
            br_kill(b, "a second response for one transfer");
            return;
        }
        s->responded = 1;
        s->status = (long)status;
        resp.status = (long)status;
        resp.etag = (present & 1) ? etag : NULL;
        resp.last_modified = (present & 2) ? lm : NULL;
        if (s->req->on_response) {
            cas_hr hr = s->req->on_response(s->req->ud, &resp);
            if (hr != CAS_OK)
                br_abort(b, s, hr, (long)status);
        }
        return;
    }
    case MSG_DATA:
        if (r.left == 0) {
            br_kill(b, "an empty data message");
            return;
        }
        if (!s)
            return;
        if (!s->responded) {
            br_kill(b, "body bytes before a response");
            return;
        }
        if (s->bytes + r.left > s->req->max_bytes) {
            cas_fail(CAS_E_TOO_LARGE, "%s: more than the %llu bytes allowed", s->req->url,
                     (unsigned long long)s->req->max_bytes);
            br_abort(b, s, CAS_E_TOO_LARGE, s->status);
            return;
        }
        cas_hr hr = s->req->on_data(s->req->ud, r.p, r.left);
        if (hr != CAS_OK) {
            br_abort(b, s, hr, s->status);
            return;
        }
        s->bytes += r.left;
        return;
    case MSG_DONE: {
        uint32_t code = 0;
        int64_t status = 0, ra = 0;
        uint64_t bytes = 0;
        int32_t hard = 0;
        struct cas_transfer_result res = {0};
        rd_get(&r, &code, 4);
        rd_get(&r, &status, 8);
        rd_get(&r, &bytes, 8);
        rd_get(&r, &hard, 4);
        rd_get(&r, &ra, 8);
        const char *detail = rd_str(&r, sizeof(res.detail) - 1);
        if (r.bad || r.left || status < 0 || status > 999) {
            br_kill(b, "a malformed completion message");
            return;
        }
        if (!s)
            return;
        /* Success only as the end of a 2xx answer; a failure must look like one. */
        if ((code == CAS_OK && !s->responded) || (code != CAS_OK && !(code & 0x80000000u))) {
            br_kill(b, "a completion that contradicts the transfer");
            return;
        }
        res.http_status = (long)status;
        res.hard = hard != 0;
        res.retry_after = ra < 0 ? -1 : ra > 86400 ? 86400 : (long)ra;
        snprintf(res.detail, sizeof(res.detail), "%s", detail);
        cas_sandbox_clean(res.detail);
        br_complete(b, s, (cas_hr)code, &res);
        return;
    }
    default:
        br_kill(b, "an unknown message");
        return;
    }
}

static cas_hr br_submit(struct cas_transfer *t, const struct cas_transfer_request *req, void *tag)
{
    struct broker *b = (struct broker *)t;
    struct slot *s;
    struct outq *q;
    unsigned char present = (unsigned char)((req->if_range ? 2 : 0) | (req->if_none_match ? 4 : 0) |
                                            (req->if_modified_since ? 8 : 0));
    if (b->dead)
        return cas_fail(CAS_E_TRANSFER_PROCESS, "%.200s: the transfer process failed: %.200s",
                        req->url, b->why);
    s = calloc(1, sizeof(*s));
    q = calloc(1, sizeof(*q));
    if (!s || !q) {
        free(s);
        free(q);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    s->id = ++b->next_id;
    s->req = req;
    s->tag = tag;
    msg_start(&q->m, MSG_SUBMIT, s->id);
    msg_put(&q->m, &req->max_bytes, 8);
    msg_put(&q->m, &req->resume_from, 8);
    msg_put(&q->m, &present, 1);
    if (msg_put_str(&q->m, req->url) || msg_put_str(&q->m, req->if_range) ||
        msg_put_str(&q->m, req->if_none_match) || msg_put_str(&q->m, req->if_modified_since)) {
        free(s);
        free(q);
        return cas_fail(CAS_E_INVALIDARG, "%.200s...: the request is too long", req->url);
    }
    q->id = s->id;
    s->next = b->slots;
    b->slots = s;
    br_queue(b, q);
    br_flush(b);
    return CAS_OK;
}

static int br_pop_done(struct broker *b, void **tag, cas_hr *hr, struct cas_transfer_result *res)
{
    struct done *d = b->done;
    if (!d)
        return 0;
    b->done = d->next;
    if (!b->done)
        b->done_tail = &b->done;
    *tag = d->tag;
    *hr = d->hr;
    *res = d->res;
    free(d);
    if (*hr != CAS_OK)
        cas_fail(*hr, "%s", res->detail);
    return 1;
}

static int br_wait(struct cas_transfer *t, int timeout_ms, void **tag, cas_hr *hr,
                   struct cas_transfer_result *res)
{
    struct broker *b = (struct broker *)t;
    double end = cas_mono_now() * 1000.0 + (timeout_ms > 0 ? timeout_ms : 0);
    int handled = 0;
    for (;;) {
        if (br_pop_done(b, tag, hr, res)) {
            br_flush(b); /* a CANCEL queued by br_abort goes out with its completion */
            return 1;
        }
        if (b->dead)
            return 0;
        br_flush(b);
        double left = end - cas_mono_now() * 1000.0;
        if (left <= 0 && handled)
            return 0; /* a steady stream must not hold the caller past its timeout */
        struct pollfd pfd = {.fd = b->sock, .events = POLLIN | (b->out ? POLLOUT : 0)};
        int r = poll(&pfd, 1, left > 0 ? (int)left + 1 : 0);
        if (r < 0) {
            if (errno == EINTR)
                return 0; /* a signal: let the caller look at its flags */
            br_kill(b, strerror(errno));
            continue;
        }
        if (r == 0)
            return 0;
        if (pfd.revents & POLLIN) {
            ssize_t n = recv(b->sock, b->in.buf, sizeof(b->in.buf), MSG_DONTWAIT | MSG_TRUNC);
            if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            if (n <= 0)
                br_kill(b, n == 0 ? "it ended" : strerror(errno));
            else if ((size_t)n > sizeof(b->in.buf))
                br_kill(b, "a message larger than allowed");
            else
                br_handle(b, (size_t)n);
            handled = 1;
        } else if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            br_kill(b, "it ended");
        }
    }
}

static void br_cancel_all(struct cas_transfer *t)
{
    struct broker *b = (struct broker *)t;
    struct outq *q;
    while (b->slots)
        br_remove(b, b->slots);
    while (b->done) {
        struct done *d = b->done;
        b->done = d->next;
        free(d);
    }
    b->done_tail = &b->done;
    /* Queued submits were never seen by the child. */
    while (b->out) {
        q = b->out;
        b->out = q->next;
        free(q);
    }
    b->out_tail = &b->out;
    if (!b->dead && (q = calloc(1, sizeof(*q))) != NULL) {
        msg_start(&q->m, MSG_CANCEL_ALL, 0);
        br_queue(b, q);
        br_flush(b);
    }
}

static void br_reap(pid_t pid)
{
    /* The child exits when it sees the socket close; a stuck one is killed after 2 s. */
    for (int i = 0; i < 200; i++) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return;
        nanosleep(&(struct timespec){0, 10L * 1000 * 1000}, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void br_destroy(struct cas_transfer *t)
{
    struct broker *b = (struct broker *)t;
    if (!b)
        return;
    br_cancel_all(t);
    while (b->out) {
        struct outq *q = b->out;
        b->out = q->next;
        free(q);
    }
    close(b->sock);
    if (b->pid > 0)
        br_reap(b->pid);
    free(b);
}

static int br_usable(struct cas_transfer *t)
{
    return !((struct broker *)t)->dead;
}

static void br_init(struct broker *b, int sock, pid_t pid)
{
    b->base.usable = br_usable;
    b->base.submit = br_submit;
    b->base.wait = br_wait;
    b->base.cancel_all = br_cancel_all;
    b->base.destroy = br_destroy;
    b->sock = sock;
    b->pid = pid;
    b->out_tail = &b->out;
    b->done_tail = &b->done;
}

cas_hr cas_transfer_broker_wrap(int sock, struct cas_transfer **out)
{
    struct broker *b = calloc(1, sizeof(*b));
    *out = NULL;
    if (!b)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    br_init(b, sock, 0);
    *out = &b->base;
    return CAS_OK;
}

cas_hr cas_transfer_broker_new(const struct cas_config *cfg, const char *user,
                               struct cas_transfer **out)
{
    int sv[2];
    pid_t parent = getpid(), pid;
    struct broker *b;
    uint32_t code = 0;

    *out = NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return cas_fail(CAS_E_FAIL, "socketpair: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return cas_fail(CAS_E_FAIL, "cannot start the transfer process: %s", strerror(errno));
    }
    if (pid == 0) {
        child_main(sv[1], cfg, parent, user);
        _exit(7);
    }
    close(sv[1]);
    b = calloc(1, sizeof(*b));
    if (!b) {
        close(sv[0]);
        br_reap(pid);
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    }
    br_init(b, sv[0], pid);

    /* The hello says the sandbox holds; without it no transfer is started. */
    struct pollfd pfd = {.fd = b->sock, .events = POLLIN};
    double end = cas_mono_now() * 1000.0 + HELLO_WAIT_MS;
    ssize_t n = -1;
    for (;;) {
        double left = end - cas_mono_now() * 1000.0;
        int r = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0)
            n = recv(b->sock, b->in.buf, sizeof(b->in.buf), MSG_TRUNC);
        break;
    }
    struct rd r = {b->in.buf + HDR_SIZE, n > (ssize_t)HDR_SIZE ? (size_t)n - HDR_SIZE : 0, 0};
    rd_get(&r, &code, 4);
    char text[TEXT_MAX];
    snprintf(text, sizeof(text), "%s", rd_str(&r, TEXT_MAX - 1));
    cas_sandbox_clean(text);
    if (n < (ssize_t)HDR_SIZE || (size_t)n > sizeof(b->in.buf) || b->in.buf[0] != MSG_HELLO ||
        r.bad) {
        br_destroy(&b->base);
        return cas_fail(CAS_E_TRANSFER_PROCESS, "the transfer process did not start");
    }
    if (code != CAS_OK) {
        br_destroy(&b->base);
        cas_hr hr = (code & 0x80000000u) ? (cas_hr)code : CAS_E_TRANSFER_PROCESS;
        return cas_fail(hr, "the transfer process could not enter its sandbox: %s", text);
    }
    cas_log_info(CAS_LOG_DTS, "Transfer process %d %s", (int)pid, text);
    *out = &b->base;
    return CAS_OK;
}
