/*
 * cas-faultd: a deliberately hostile HTTP/1.1 distribution point for the integration tests.
 *
 * nginx plays the well-behaved DP. This server misbehaves on purpose, per URL path, as a rules file
 * says (connections cut or reset, a flipped byte, bodies that never end, stalls, error statuses,
 * redirect loops ...), so that the agent's failover, retries, Range resume and limits can be tested
 * end to end. Usage and rules: tests/tools/README.md. Only POSIX sockets and pthreads, so that no
 * library between the socket and the test can smooth a fault away.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP, accept4, memmem, ppoll */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG       "cas-faultd"
#define MAX_CONNS  128                /* more concurrent clients than any test makes */
#define HEAD_MAX   16384              /* request line + headers; beyond it: 431 */
#define FIELD_MAX  512                /* Range / If-Range values kept */
#define TARGET_MAX 4096               /* request target; beyond it: 414 */
#define CHUNK      16384              /* body write size */
#define IDLE_MS    60000              /* keep-alive idle limit */
#define STALL_MS   (10LL * 60 * 1000) /* how long `stall` holds a connection */
#define BIG_LENGTH 1000000000000LL    /* `bigheader`'s Content-Length (10^12) */

// clang-format off
enum action {
    ACT_NORMAL, ACT_CUT, ACT_FLIP, ACT_OVERLONG, ACT_ENDLESS,
    ACT_BIGHEADER, ACT_DRIP, ACT_STALL, ACT_RESET, ACT_STATUS,
    ACT_NORANGE, ACT_ETAG_CHANGE, ACT_REDIRECT, ACT_REDIRECT_LOOP
};
// clang-format on

enum arg_kind { ARG_NONE, ARG_NUM, ARG_URL };

static const struct {
    const char *name;
    enum action action;
    enum arg_kind arg;
    long long min, max; /* bounds of a numeric argument */
} ACTIONS[] = {
    {"normal", ACT_NORMAL, ARG_NONE, 0, 0},
    {"cut", ACT_CUT, ARG_NUM, 0, LLONG_MAX},
    {"flip", ACT_FLIP, ARG_NUM, 0, LLONG_MAX},
    {"overlong", ACT_OVERLONG, ARG_NUM, 1, LLONG_MAX},
    {"endless", ACT_ENDLESS, ARG_NONE, 0, 0},
    {"bigheader", ACT_BIGHEADER, ARG_NONE, 0, 0},
    {"drip", ACT_DRIP, ARG_NUM, 1, 1000000000LL},
    {"stall", ACT_STALL, ARG_NUM, 0, LLONG_MAX},
    {"reset", ACT_RESET, ARG_NUM, 0, LLONG_MAX},
    {"status", ACT_STATUS, ARG_NUM, 200, 599},
    {"norange", ACT_NORANGE, ARG_NONE, 0, 0},
    {"etag-change", ACT_ETAG_CHANGE, ARG_NONE, 0, 0},
    {"redirect", ACT_REDIRECT, ARG_URL, 0, 0},
    {"redirect-loop", ACT_REDIRECT_LOOP, ARG_NONE, 0, 0},
};

struct rule {
    char *path; /* percent-decoded; without the '*' of a prefix rule */
    bool prefix;
    enum action action;
    long long arg;
    char *url;             /* redirect */
    long long retry_after; /* status; -1: no Retry-After */
    long long times;       /* 0: every request */
    long long used;        /* requests this rule has answered (under g_rules_mu) */
};

struct request {
    char method[16];
    char target[TARGET_MAX]; /* as sent: for the log and redirect-loop */
    char path[TARGET_MAX];   /* percent-decoded, query removed */
    char range[FIELD_MAX];
    char if_range[FIELD_MAX];
    bool keep_alive;
    bool head; /* HEAD: headers only */
};

struct conn {
    int fd;
    char buf[HEAD_MAX]; /* bytes received and not yet parsed (pipelining) */
    size_t have;
    int status;     /* of the response being sent, for the log */
    long long sent; /* body bytes the kernel accepted, for the log */
};

struct hdr {
    char buf[TARGET_MAX + 8192];
    size_t len;
    bool overflow;
};

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };
struct slot {
    pthread_t tid;
    int fd; /* closed by its thread, under g_slots_mu, so a shutdown() never hits a reused fd */
    enum slot_state state;
};

static char g_root[PATH_MAX];
static struct rule *g_rules;
static size_t g_nrules;
static pthread_mutex_t g_rules_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_log_fd = -1;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot g_slots[MAX_CONNS];
static pthread_mutex_t g_slots_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_stop;
static atomic_llong g_etag_seq;

/* ------------------------------------------------------------------------------------------- */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long min_ll(long long a, long long b)
{
    return a < b ? a : b;
}

/* A whole non-negative decimal number, nothing else. */
static bool parse_num(const char *s, long long *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    /* No setlocale() anywhere: %a and %b are the C locale's English names HTTP requires. */
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes %XY escapes. Refuses a malformed escape and an encoded NUL, which no file name holds. */
static bool pct_decode(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

static bool has_dotdot(const char *path)
{
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += len;
        if (*p == '/')
            p++;
    }
    return false;
}

static const char *reason(int code)
{
    // clang-format off
    static const struct { int code; const char *text; } REASONS[] = {
        {200, "OK"}, {204, "No Content"}, {206, "Partial Content"}, {301, "Moved Permanently"},
        {302, "Found"}, {304, "Not Modified"}, {400, "Bad Request"}, {401, "Unauthorized"},
        {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
        {408, "Request Timeout"}, {414, "URI Too Long"}, {416, "Range Not Satisfiable"},
        {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
        {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"}
    };
    // clang-format on
    for (size_t i = 0; i < sizeof REASONS / sizeof REASONS[0]; i++)
        if (REASONS[i].code == code)
            return REASONS[i].text;
    return "Status";
}

/* ------------------------------------------------------------------------------------------- */
/* Rules                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static void free_rules(void)
{
    for (size_t i = 0; i < g_nrules; i++) {
        free(g_rules[i].path);
        free(g_rules[i].url);
    }
    free(g_rules);
    g_rules = NULL;
    g_nrules = 0;
}

/* One line's words into a rule; prints the reason and returns false when the line is wrong. */
static bool parse_rule(char **tok, int n, struct rule *r, const char *file, int line)
{
#define RULE_ERR(...)                                                                              \
    do {                                                                                           \
        fprintf(stderr, PROG ": %s:%d: ", file, line);                                             \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        goto bad;                                                                                  \
    } while (0)
    size_t k, plen = strlen(tok[0]);
    char path[TARGET_MAX];
    const char *posarg = NULL;

    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    if (n < 2)
        RULE_ERR("expected: PATH ACTION [ARGS...]");
    if (tok[0][0] != '/' && strcmp(tok[0], "*") != 0)
        RULE_ERR("path '%s' must start with '/' (or be '*')", tok[0]);
    r->prefix = tok[0][plen - 1] == '*';
    /* Rule paths may be percent-encoded (a space must be), and match the decoded request path. */
    if (!pct_decode(tok[0], plen - (r->prefix ? 1 : 0), path, sizeof path))
        RULE_ERR("path '%s': bad percent-encoding", tok[0]);
    for (k = 0; k < sizeof ACTIONS / sizeof ACTIONS[0]; k++)
        if (strcmp(tok[1], ACTIONS[k].name) == 0)
            break;
    if (k == sizeof ACTIONS / sizeof ACTIONS[0])
        RULE_ERR("unknown action '%s'", tok[1]);
    r->action = ACTIONS[k].action;

    for (int i = 2; i < n; i++) {
        long long v;
        if (strncmp(tok[i], "times=", 6) == 0) {
            if (!parse_num(tok[i] + 6, &v) || v < 1)
                RULE_ERR("times=N needs N >= 1");
            r->times = v;
        } else if (strncmp(tok[i], "retry-after=", 12) == 0) {
            if (r->action != ACT_STATUS)
                RULE_ERR("retry-after= goes with 'status' only");
            if (!parse_num(tok[i] + 12, &v))
                RULE_ERR("retry-after=SECONDS needs a number");
            r->retry_after = v;
        } else if (!posarg && ACTIONS[k].arg != ARG_NONE) {
            posarg = tok[i];
        } else {
            RULE_ERR("%s: unexpected argument '%s'", tok[1], tok[i]);
        }
    }
    if (ACTIONS[k].arg != ARG_NONE && !posarg)
        RULE_ERR("%s needs an argument", tok[1]);
    if (ACTIONS[k].arg == ARG_NUM &&
        (!parse_num(posarg, &r->arg) || r->arg < ACTIONS[k].min || r->arg > ACTIONS[k].max))
        RULE_ERR("%s: argument '%s' must be a number in %lld..%lld", tok[1], posarg, ACTIONS[k].min,
                 ACTIONS[k].max);
    r->path = strdup(path);
    r->url = ACTIONS[k].arg == ARG_URL ? strdup(posarg) : NULL;
    if (!r->path || (ACTIONS[k].arg == ARG_URL && !r->url))
        RULE_ERR("out of memory");
    return true;
bad:
    free(r->path);
    free(r->url);
    return false;
#undef RULE_ERR
}

static bool load_rules(const char *file)
{
    char line[8192];
    int lineno = 0;
    bool ok = true;
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", file, strerror(errno));
        return false;
    }
    while (ok && fgets(line, sizeof line, f)) {
        char *tok[16], *save = NULL;
        int n = 0;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, PROG ": %s:%d: line too long\n", file, lineno);
            ok = false;
            break;
        }
        for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
            if (t[0] ==
                '#') /* URL paths never hold a raw '#', so a word starting with one is a comment */
                break;
            if (n == (int)(sizeof tok / sizeof tok[0])) {
                fprintf(stderr, PROG ": %s:%d: too many words\n", file, lineno);
                ok = false;
                break;
            }
            tok[n++] = t;
        }
        if (!ok || n == 0)
            continue;
        struct rule r;
        struct rule *grown = realloc(g_rules, (g_nrules + 1) * sizeof *g_rules);
        if (!grown) {
            fprintf(stderr, PROG ": out of memory\n");
            ok = false;
            break;
        }
        g_rules = grown;
        ok = parse_rule(tok, n, &r, file, lineno);
        if (ok)
            g_rules[g_nrules++] = r;
    }
    if (ok && ferror(f)) {
        fprintf(stderr, PROG ": %s: read error\n", file);
        ok = false;
    }
    fclose(f);
    return ok;
}

/*
 * The first rule that matches the path and is not used up; it counts this request. An exhausted
 * times=N rule is skipped, so a later rule (or normal service) takes over: "503 twice, then a cut,
 * then success" is three lines. The copy's `used` is this request's 1-based number for the rule.
 */
static bool match_rule(const char *path, struct rule *out)
{
    bool found = false;
    pthread_mutex_lock(&g_rules_mu);
    for (size_t i = 0; i < g_nrules && !found; i++) {
        struct rule *r = &g_rules[i];
        bool match =
            r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0;
        if (!match || (r->times > 0 && r->used >= r->times))
            continue;
        r->used++;
        *out = *r;
        found = true;
    }
    pthread_mutex_unlock(&g_rules_mu);
    return found;
}

/* ------------------------------------------------------------------------------------------- */
/* Socket I/O                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/*
 * Sends all of buf; false once the client is gone or the server is stopping. Body bytes are
 * counted as the kernel accepts them, so the log's sent= is what really left, even when cut short.
 * SO_SNDTIMEO makes a blocked send return now and then to look at g_stop.
 */
static bool send_all(struct conn *c, const void *buf, size_t len, bool body)
{
    const char *p = buf;
    while (len > 0) {
        if (atomic_load(&g_stop))
            return false;
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return false;
        }
        if (body)
            c->sent += n;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/*
 * Waits ms while watching the client; false when it hung up (or the server is stopping). Only
 * hang-ups are watched (POLLRDHUP, not POLLIN): a pipelined request must not end the wait.
 */
static bool wait_or_gone(int fd, long long ms)
{
    long long end = now_ms() + ms;
    for (;;) {
        long long left = end - now_ms();
        if (atomic_load(&g_stop))
            return false;
        if (left <= 0)
            return true;
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        int n = poll(&p, 1, (int)min_ll(left, 250));
        if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            return false;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* count bytes of ch; count < 0: until the client goes away. */
static bool send_fill(struct conn *c, char ch, long long count)
{
    char buf[CHUNK];
    memset(buf, ch, sizeof buf);
    while (count != 0) {
        size_t n = count < 0 ? sizeof buf : (size_t)min_ll(count, (long long)sizeof buf);
        if (!send_all(c, buf, n, true))
            return false;
        if (count > 0)
            count -= (long long)n;
    }
    return true;
}

/*
 * File bytes [start, start+len), with the byte at file offset flip_at (if >= 0) XOR 0x01, at about
 * bps bytes per second if bps > 0: small writes on a schedule, so the client sees a steady trickle.
 */
static bool stream_file(struct conn *c, int fd, long long start, long long len, long long flip_at,
                        long long bps)
{
    char buf[CHUNK];
    long long t0 = now_ms();
    for (long long done = 0; done < len;) {
        long long want = min_ll(len - done, CHUNK);
        if (bps > 0) {
            want = min_ll(want, bps / 10 > 0 ? bps / 10 : 1);
            long long due = done * 1000 / bps - (now_ms() - t0);
            if (due > 0 && !wait_or_gone(c->fd, due))
                return false;
        }
        ssize_t n = pread(fd, buf, (size_t)want, (off_t)(start + done));
        if (n <= 0) /* the file shrank under us: the promised length can no longer be kept */
            return false;
        if (flip_at >= start + done && flip_at < start + done + n)
            buf[flip_at - start - done] ^= 0x01;
        if (!send_all(c, buf, (size_t)n, true))
            return false;
        done += n;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------- */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------- */

/* 1: a request head is in c->buf, *head_len bytes; 0: the client left or idled; -1: too large. */
static int read_head(struct conn *c, size_t *head_len)
{
    long long idle_until = now_ms() + IDLE_MS;
    for (;;) {
        char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
        if (end) {
            *head_len = (size_t)(end - c->buf) + 4;
            return 1;
        }
        if (c->have == sizeof c->buf)
            return -1;
        if (atomic_load(&g_stop) || now_ms() > idle_until)
            return 0;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, 250); /* short, to notice g_stop */
        if (n < 0 && errno != EINTR)
            return 0;
        if (n <= 0)
            continue;
        ssize_t got = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
            return 0;
        if (got > 0)
            c->have += (size_t)got;
    }
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* Parses a head (NUL-terminated, modified in place). 0, or the error status to answer with. */
static int parse_head(char *head, struct request *rq)
{
    char *save = NULL, *line = strtok_r(head, "\r\n", &save);
    char *sp1 = line ? strchr(line, ' ') : NULL;
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || strchr(sp2 + 1, ' ') || (size_t)(sp1 - line) >= sizeof rq->method)
        return 400;
    *sp1 = *sp2 = '\0';
    copy_field(rq->method, sizeof rq->method, line);
    if (strlen(sp1 + 1) >= sizeof rq->target)
        return 414;
    copy_field(rq->target, sizeof rq->target, sp1 + 1);
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
        rq->keep_alive = true;
    else if (strcmp(sp2 + 1, "HTTP/1.0") != 0)
        return strncmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;

    bool has_body = false;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon)
            return 400;
        *colon = '\0';
        char *v = colon + 1, *e = v + strlen(v);
        while (*v == ' ' || *v == '\t')
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (strcasecmp(line, "Range") == 0 || strcasecmp(line, "If-Range") == 0) {
            char *dst = line[0] == 'R' || line[0] == 'r' ? rq->range : rq->if_range;
            if (strlen(v) >= FIELD_MAX)
                return 400;
            copy_field(dst, FIELD_MAX, v);
        } else if (strcasecmp(line, "Connection") == 0) {
            if (strcasestr(v, "close"))
                rq->keep_alive = false;
            else if (strcasestr(v, "keep-alive"))
                rq->keep_alive = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0 ||
                   (strcasecmp(line, "Content-Length") == 0 && strcmp(v, "0") != 0)) {
            has_body = true;
        }
    }
    /* Request bodies are never read: after answering, close rather than parse one as a request. */
    if (has_body)
        rq->keep_alive = false;

    size_t plen = strcspn(rq->target, "?");
    if (rq->target[0] != '/')
        return 400;
    if (!pct_decode(rq->target, plen, rq->path, sizeof rq->path))
        return 400;
    if (has_dotdot(rq->path))
        return 403;
    rq->head = strcmp(rq->method, "HEAD") == 0;
    if (!rq->head && strcmp(rq->method, "GET") != 0)
        return 405;
    return 0;
}

static void log_request(const struct conn *c, const struct request *rq)
{
    char line[TARGET_MAX + 2 * FIELD_MAX + 128];
    if (g_log_fd < 0)
        return;
    int n = snprintf(line, sizeof line, "%s %s range=%s ifrange=%s status=%d sent=%lld\n",
                     rq->method, rq->target, rq->range[0] ? rq->range : "-",
                     rq->if_range[0] ? rq->if_range : "-", c->status, c->sent);
    if (n < 0)
        return;
    size_t len = min_ll(n, (long long)sizeof line - 1);
    /* A client's control bytes must not forge or split a log line. */
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len - 1] = '\n';
    pthread_mutex_lock(&g_log_mu);
    /* One write() per line on an O_APPEND file: nothing buffered, lines never interleave. */
    if (write(g_log_fd, line, len) < 0) {
        /* A log that cannot be written only makes the tests fail; the server keeps serving. */
    }
    pthread_mutex_unlock(&g_log_mu);
}

/* ------------------------------------------------------------------------------------------- */
/* Responses                                                                                   */
/* ------------------------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void hdr_add(struct hdr *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->buf + h->len, sizeof h->buf - h->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof h->buf - h->len)
        h->overflow = true;
    else
        h->len += (size_t)n;
}

static void hdr_start(struct conn *c, struct hdr *h, int code)
{
    char date[64];
    http_date(time(NULL), date, sizeof date);
    h->len = 0;
    h->overflow = false;
    c->status = code;
    hdr_add(h, "HTTP/1.1 %d %s\r\nServer: " PROG "\r\nDate: %s\r\n", code, reason(code), date);
}

static bool hdr_send(struct conn *c, struct hdr *h, bool keep)
{
    hdr_add(h, "Connection: %s\r\n\r\n", keep ? "keep-alive" : "close");
    return !h->overflow && send_all(c, h->buf, h->len, false);
}

/* A status with a one-line text body; extra: more header lines (each ending CRLF) or NULL. */
static bool respond_simple(struct conn *c, const struct request *rq, int code, const char *extra)
{
    struct hdr h;
    char body[96];
    int blen = snprintf(body, sizeof body, "%d %s\n", code, reason(code));
    bool bodyless = code == 204 || code == 304;
    hdr_start(c, &h, code);
    if (!bodyless)
        hdr_add(&h, "Content-Type: text/plain\r\nContent-Length: %d\r\n", blen);
    if (extra)
        hdr_add(&h, "%s", extra);
    if (!hdr_send(c, &h, rq->keep_alive))
        return false;
    if (!rq->head && !bodyless && !send_all(c, body, (size_t)blen, true))
        return false;
    return rq->keep_alive;
}

static bool respond_status(struct conn *c, const struct request *rq, const struct rule *r)
{
    char extra[64] = "";
    if (r->retry_after >= 0)
        snprintf(extra, sizeof extra, "Retry-After: %lld\r\n", r->retry_after);
    return respond_simple(c, rq, (int)r->arg, extra);
}

static bool respond_redirect(struct conn *c, const struct request *rq, const struct rule *r)
{
    char extra[2 * TARGET_MAX];
    if (r->action == ACT_REDIRECT) {
        snprintf(extra, sizeof extra, "Location: %s\r\n", r->url);
    } else {
        /* A new URL every time (the counter), so a client that only detects repeats is not saved.
         */
        int plen = (int)strcspn(rq->target, "?");
        snprintf(extra, sizeof extra, "Location: %.*s?loop=%lld\r\n", plen, rq->target, r->used);
    }
    return respond_simple(c, rq, 302, extra);
}

/* endless (no length, close-delimited) and bigheader (a 10^12 length): 'A's until the client
 * leaves. */
static bool respond_forever(struct conn *c, const struct request *rq, bool big)
{
    struct hdr h;
    hdr_start(c, &h, 200);
    hdr_add(&h, "Content-Type: application/octet-stream\r\n");
    if (big)
        hdr_add(&h, "Content-Length: %lld\r\n", BIG_LENGTH);
    if (hdr_send(c, &h, false) && !rq->head)
        send_fill(c, 'A', -1);
    return false;
}

/*
 * Range: "bytes=N-", "bytes=N-M" or "bytes=-SUFFIX". 1: satisfiable (*start, *len); 0: ignore it
 * (malformed, or several ranges: RFC 9110 lets a server answer those with the whole file); -1: 416.
 */
static int parse_range(const char *v, long long size, long long *start, long long *len)
{
    long long a, b = -1;
    char *end;
    if (strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return 0;
    v += 6;
    if (*v == '-') {
        if (v[1] < '0' || v[1] > '9')
            return 0;
        errno = 0;
        long long suffix = strtoll(v + 1, &end, 10);
        if (errno || *end)
            return 0;
        if (suffix == 0 || size == 0)
            return -1;
        a = size > suffix ? size - suffix : 0;
    } else {
        if (*v < '0' || *v > '9')
            return 0;
        errno = 0;
        a = strtoll(v, &end, 10);
        if (errno || *end != '-')
            return 0;
        if (end[1] != '\0') {
            if (end[1] < '0' || end[1] > '9')
                return 0;
            b = strtoll(end + 1, &end, 10);
            if (errno || *end || b < a)
                return 0;
        }
        if (a >= size)
            return -1;
    }
    if (b < 0 || b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return 1;
}

/* A file, with whatever the rule (NULL: none) does to it. */
static bool respond_file(struct conn *c, const struct request *rq, const struct rule *r)
{
    enum action a = r ? r->action : ACT_NORMAL;
    char fpath[PATH_MAX + TARGET_MAX], etag[96], lastmod[64], extra[64];
    struct stat st;
    struct hdr h;
    bool keep = false;

    snprintf(fpath, sizeof fpath, "%s%s", g_root, rq->path);
    /* O_NONBLOCK: a FIFO under the root must not hang the thread in open(). */
    int fd = open(fpath, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return respond_simple(c, rq, errno == EACCES ? 403 : 404, NULL);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return respond_simple(c, rq, 404, NULL);
    }

    long long size = st.st_size, start = 0, len = size;
    time_t mtime = st.st_mtim.tv_sec;
    if (a == ACT_ETAG_CHANGE) {
        long long seq = atomic_fetch_add(&g_etag_seq, 1) + 1;
        snprintf(etag, sizeof etag, "\"%llx-%llx-c%llx\"", size, (long long)mtime, seq);
        mtime += (time_t)seq; /* a second apart per request: the dates differ too */
    } else {
        /* Nanoseconds too, so that rewriting a file within the same second changes the ETag. */
        snprintf(etag, sizeof etag, "\"%llx-%llx.%lx\"", size, (long long)mtime,
                 (long)st.st_mtim.tv_nsec);
    }
    http_date(mtime, lastmod, sizeof lastmod);

    int code = 200;
    bool ranged = rq->range[0] && a != ACT_NORANGE;
    /* If-Range: a strong ETag match or the exact Last-Modified date, else the whole file. */
    if (ranged && rq->if_range[0])
        ranged = a != ACT_ETAG_CHANGE &&
                 (strcmp(rq->if_range, etag) == 0 || strcmp(rq->if_range, lastmod) == 0);
    if (ranged) {
        int rr = parse_range(rq->range, size, &start, &len);
        if (rr < 0) {
            close(fd);
            snprintf(extra, sizeof extra, "Content-Range: bytes */%lld\r\n", size);
            return respond_simple(c, rq, 416, extra);
        }
        code = rr > 0 ? 206 : 200;
    }

    /* These end the connection after the body, whatever the client asked. */
    bool closes = a == ACT_CUT || a == ACT_OVERLONG || a == ACT_STALL || a == ACT_RESET;
    keep = rq->keep_alive && (rq->head || !closes);
    hdr_start(c, &h, code);
    hdr_add(&h, "Content-Type: application/octet-stream\r\nContent-Length: %lld\r\n", len);
    if (code == 206)
        hdr_add(&h, "Content-Range: bytes %lld-%lld/%lld\r\n", start, start + len - 1, size);
    hdr_add(&h, "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: %s\r\n", etag, lastmod,
            a == ACT_NORANGE ? "none" : "bytes");
    if (!hdr_send(c, &h, keep) || rq->head)
        goto done;

    long long arg = r ? r->arg : 0;
    switch (a) {
    case ACT_CUT:
        stream_file(c, fd, start, min_ll(len, arg), -1, 0);
        shutdown(c->fd, SHUT_WR); /* a clean FIN: the client sees a short body, not an error */
        break;
    case ACT_STALL:
        if (stream_file(c, fd, start, min_ll(len, arg), -1, 0))
            wait_or_gone(c->fd, STALL_MS);
        break;
    case ACT_RESET:
        stream_file(c, fd, start, min_ll(len, arg), -1, 0);
        /* Linger {on, 0 s}: the close() at the end of the connection sends RST instead of FIN. */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
        break;
    case ACT_OVERLONG:
        if (stream_file(c, fd, start, len, -1, 0))
            send_fill(c, 'Z', arg);
        break;
    case ACT_DRIP:
        keep = stream_file(c, fd, start, len, -1, arg) && keep;
        break;
    case ACT_FLIP:
        keep = stream_file(c, fd, start, len, arg, 0) && keep;
        break;
    default:
        keep = stream_file(c, fd, start, len, -1, 0) && keep;
        break;
    }
done:
    close(fd);
    return keep;
}

/* One parsed request; true when the connection may carry another. */
static bool handle(struct conn *c, const struct request *rq)
{
    struct rule r;
    if (!match_rule(rq->path, &r))
        return respond_file(c, rq, NULL);
    switch (r.action) {
    case ACT_STATUS:
        return respond_status(c, rq, &r);
    case ACT_REDIRECT:
    case ACT_REDIRECT_LOOP:
        return respond_redirect(c, rq, &r);
    case ACT_ENDLESS:
    case ACT_BIGHEADER:
        return respond_forever(c, rq, r.action == ACT_BIGHEADER);
    default:
        return respond_file(c, rq, &r);
    }
}

static void serve_connection(struct conn *c)
{
    for (;;) {
        static const struct request blank = {.method = "-", .target = "-"};
        struct request rq = blank;
        char head[HEAD_MAX + 1];
        size_t head_len;
        bool keep;

        int got = read_head(c, &head_len);
        if (got == 0)
            return;
        c->status = 0;
        c->sent = 0;
        if (got < 0) {
            keep = respond_simple(c, &rq, 431, NULL);
        } else {
            memcpy(head, c->buf, head_len);
            head[head_len] = '\0';
            c->have -= head_len;
            memmove(c->buf, c->buf + head_len, c->have);
            int err = memchr(head, '\0', head_len) ? 400 : parse_head(head, &rq);
            if (err == 400 || err == 414 || err == 505)
                rq.keep_alive = false; /* the stream may be out of step: do not read on */
            if (err == 405)
                keep = respond_simple(c, &rq, err, "Allow: GET, HEAD\r\n");
            else if (err)
                keep = respond_simple(c, &rq, err, NULL);
            else
                keep = handle(c, &rq);
        }
        log_request(c, &rq);
        if (!keep)
            return;
    }
}

static void *conn_main(void *arg)
{
    struct slot *s = arg;
    struct conn *c = malloc(sizeof *c);
    if (c) {
        c->fd = s->fd;
        c->have = 0;
        serve_connection(c);
        free(c);
    }
    pthread_mutex_lock(&g_slots_mu);
    close(s->fd);
    s->fd = -1;
    s->state = SLOT_DONE;
    pthread_mutex_unlock(&g_slots_mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Server                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void start_conn(int fd)
{
    /* Wake a blocked send() every second to look at g_stop; no Nagle delay for drip's trickle. */
    struct timeval tv = {1, 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_lock(&g_slots_mu);
    for (int i = 0; i < MAX_CONNS; i++) {
        struct slot *s = &g_slots[i];
        if (s->state != SLOT_FREE)
            continue;
        s->fd = fd;
        s->state = SLOT_RUNNING;
        if (pthread_create(&s->tid, NULL, conn_main, s) == 0) {
            pthread_mutex_unlock(&g_slots_mu);
            return;
        }
        s->fd = -1;
        s->state = SLOT_FREE;
        break;
    }
    pthread_mutex_unlock(&g_slots_mu);
    close(fd); /* no slot or no thread: the client sees the connection closed */
}

/* Joins finished connection threads (all of them when stopping), so none outlives the server. */
static void reap(bool all)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        pthread_mutex_lock(&g_slots_mu);
        enum slot_state st = g_slots[i].state;
        pthread_mutex_unlock(&g_slots_mu);
        if (st == SLOT_DONE || (all && st == SLOT_RUNNING)) {
            pthread_join(g_slots[i].tid, NULL);
            g_slots[i].state = SLOT_FREE;
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static bool write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return false;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    bool ok = fprintf(f, "%u\n", port) > 0;
    ok = fclose(f) == 0 && ok;
    /* rename(): a test polling for the file never reads it half-written. */
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --root DIR --rules FILE [--port N] [--bind ADDR]"
            " [--port-file F] [--log F]\n"
            "A hostile HTTP/1.1 server for tests: serves DIR, misbehaving per path as FILE says.\n"
            "See tests/tools/README.md.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"rules", required_argument, NULL, 'R'},
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"port-file", required_argument, NULL, 'f'},
        {"log", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *root = NULL, *rules = NULL, *port_file = NULL, *log_path = NULL;
    const char *bind_addr = "127.0.0.1";
    long long port = 0;
    int opt, lfd = -1, rc = 1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            root = optarg;
            break;
        case 'R':
            rules = optarg;
            break;
        case 'b':
            bind_addr = optarg;
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'p':
            if (parse_num(optarg, &port) && port <= 65535)
                break;
            fprintf(stderr, PROG ": --port: '%s' is not a port number\n", optarg);
            return 2;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!root || !rules || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct stat st;
    if (!realpath(root, g_root) || stat(g_root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, PROG ": --root %s: not a folder\n", root);
        return 2;
    }
    if (strcmp(g_root, "/") == 0)
        g_root[0] = '\0'; /* paths start with '/' already */
    if (!load_rules(rules)) {
        free_rules();
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, PROG ": --bind %s: not an IPv4 address\n", bind_addr);
        free_rules();
        return 2;
    }

    /* TERM/INT are blocked everywhere except inside ppoll(): threads inherit the mask, and the
     * accept loop wakes at once on a signal, with no race between checking g_stop and sleeping. */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction act = {.sa_handler = on_signal};
    sigemptyset(&act.sa_mask);
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    act.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &act, NULL);

    if (log_path) {
        g_log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_log_fd < 0) {
            fprintf(stderr, PROG ": --log %s: %s\n", log_path, strerror(errno));
            goto cleanup;
        }
    }
    int one = 1;
    socklen_t salen = sizeof sa;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
        fprintf(stderr, PROG ": listen on %s:%lld: %s\n", bind_addr, port, strerror(errno));
        goto cleanup;
    }
    unsigned bound = ntohs(sa.sin_port);
    if (port_file && !write_port_file(port_file, bound)) {
        fprintf(stderr, PROG ": --port-file %s: %s\n", port_file, strerror(errno));
        goto cleanup;
    }
    printf("%u\n", bound);
    fflush(stdout);

    while (!atomic_load(&g_stop)) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        struct timespec tick = {0, 200 * 1000000L}; /* also the pace of reaping finished threads */
        int n = ppoll(&p, 1, &tick, &waitmask);
        reap(false);
        if (n <= 0)
            continue;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd >= 0)
            start_conn(cfd);
    }
    rc = 0;

cleanup:
    atomic_store(&g_stop, 1);
    if (lfd >= 0)
        close(lfd);
    /* Wake every thread blocked on its socket; each sees g_stop and ends. */
    pthread_mutex_lock(&g_slots_mu);
    for (int i = 0; i < MAX_CONNS; i++)
        if (g_slots[i].state == SLOT_RUNNING && g_slots[i].fd >= 0)
            shutdown(g_slots[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&g_slots_mu);
    reap(true);
    if (g_log_fd >= 0)
        close(g_log_fd);
    free_rules();
    return rc;
}
