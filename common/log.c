/* CMTrace writer. Records are formatted whole, then written with one write(2) on an O_APPEND
 * descriptor while holding flock(2) on the file, so concurrent processes never tear a line and
 * rotation (rename to .lo_) happens under the same lock. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fsutil.h"

static const char *const cas_log_files[CAS_LOG_NCOMPONENTS] = {
    "CAS.log", "ContentTransferManager.log", "DataTransferService.log", "execmgr.log",
    "PolicyAgent.log"};
static const char *const cas_log_components[CAS_LOG_NCOMPONENTS] = {
    "ContentAccess", "ContentTransferManager", "DataTransferService", "execmgr", "PolicyAgent"};

static struct {
    char *dir;
    int level;
    int debug;
    long max_size;
    int max_history;
    int echo_stderr;
    int warned; /* reported a write failure on stderr already */
} cas_log_cfg = {NULL, 1, 0, 250000, 1, 0, 0};

const char *cas_log_file_name(enum cas_log_component comp)
{
    return (unsigned)comp < CAS_LOG_NCOMPONENTS ? cas_log_files[comp] : "unknown.log";
}

const char *cas_log_component_name(enum cas_log_component comp)
{
    return (unsigned)comp < CAS_LOG_NCOMPONENTS ? cas_log_components[comp] : "unknown";
}

cas_hr cas_log_init(const struct cas_log_settings *s)
{
    cas_log_shutdown();
    cas_log_cfg.level = s->level;
    cas_log_cfg.debug = s->debug;
    cas_log_cfg.max_size = s->max_size > 0 ? s->max_size : 250000;
    cas_log_cfg.max_history = s->max_history;
    cas_log_cfg.echo_stderr = s->echo_stderr;
    cas_log_cfg.warned = 0;
    if (!s->dir)
        return CAS_OK;
    cas_hr hr = cas_fs_mkdirs(s->dir, 0755);
    if (hr != CAS_OK)
        return hr;
    cas_log_cfg.dir = strdup(s->dir);
    if (!cas_log_cfg.dir)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    return CAS_OK;
}

void cas_log_shutdown(void)
{
    free(cas_log_cfg.dir);
    cas_log_cfg.dir = NULL;
}

static int cas_log_kind_enabled(enum cas_log_kind kind)
{
    switch (kind) {
    case CAS_LOG_K_DEBUG:
        return cas_log_cfg.debug;
    case CAS_LOG_K_VERBOSE:
        return cas_log_cfg.level <= 0;
    case CAS_LOG_K_INFO:
        return cas_log_cfg.level <= 1;
    case CAS_LOG_K_WARNING:
        return cas_log_cfg.level <= 2;
    case CAS_LOG_K_ERROR:
        return 1;
    }
    return 1;
}

static int cas_log_type(enum cas_log_kind kind)
{
    return kind == CAS_LOG_K_ERROR ? 3 : kind == CAS_LOG_K_WARNING ? 2 : 1;
}

/* Copy text into out, keeping the record on one line and its terminator unambiguous: CR and LF
 * become spaces, other control characters '?', and "]LOG]!>" inside the text becomes
 * "]LOG]!&gt;" so a parser that splits on the first terminator still finds the right one. */
static size_t cas_log_escape(char *out, size_t cap, const char *text)
{
    static const char term[] = "]LOG]!>";
    size_t o = 0;
    for (const char *p = text; *p; p++) {
        const char *rep = NULL;
        char one[2] = {*p, 0};
        if (!strncmp(p, term, sizeof(term) - 1)) {
            rep = "]LOG]!&gt;";
            p += sizeof(term) - 2;
        } else if (*p == '\n' || *p == '\r') {
            one[0] = ' ';
        } else if ((unsigned char)*p < 0x20 && *p != '\t') {
            one[0] = '?';
        }
        if (!rep)
            rep = one;
        size_t n = strlen(rep);
        if (o + n >= cap)
            break;
        memcpy(out + o, rep, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

/* The job this thread works for: its download request GUID, written as the record's context. */
static __thread char cas_log_context[40];

void cas_log_set_context(const char *ctx)
{
    size_t n = 0;
    /* Only GUID characters: the attribute must never need escaping. */
    for (; ctx && ctx[n] && n < sizeof(cas_log_context) - 1; n++) {
        char c = ctx[n];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || c == '{' || c == '}' || c == '-'))
            break;
        cas_log_context[n] = c;
    }
    cas_log_context[n] = '\0';
}

int cas_log_format(char *buf, size_t bufsize, enum cas_log_component comp, enum cas_log_kind kind,
                   const char *src_file, int src_line, const struct timespec *now, long tid,
                   const char *text)
{
    struct tm tm;
    char esc[8192];
    const char *base = strrchr(src_file, '/');
    base = base ? base + 1 : src_file;

    localtime_r(&now->tv_sec, &tm);
    /* Windows' bias: UTC = local + bias, so it is minus the offset east of UTC. */
    long bias = -(tm.tm_gmtoff / 60);
    cas_log_escape(esc, sizeof(esc), text);
    int n = snprintf(buf, bufsize,
                     "<![LOG[%s]LOG]!><time=\"%02d:%02d:%02d.%03ld%c%03ld\" "
                     "date=\"%02d-%02d-%04d\" component=\"%s\" context=\"%s\" type=\"%d\" "
                     "thread=\"%ld\" file=\"%s:%d\">\n",
                     esc, tm.tm_hour, tm.tm_min, tm.tm_sec, now->tv_nsec / 1000000,
                     bias < 0 ? '-' : '+', bias < 0 ? -bias : bias, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_year + 1900, cas_log_component_name(comp), cas_log_context,
                     cas_log_type(kind), tid, base, src_line);
    if (n < 0 || (size_t)n >= bufsize)
        return -1;
    return n;
}

/* NAME.log -> NAME.lo_, and older ones NAME.lo_ -> NAME.lo_.1 ... up to max_history files. */
static void cas_log_rotate(const char *path)
{
    char base[PATH_MAX];
    char from[PATH_MAX + 32], to[PATH_MAX + 32];
    size_t len = strlen(path);
    if (len < 4 || len >= sizeof(base))
        return;
    memcpy(base, path, len - 4); /* strip ".log" */
    base[len - 4] = '\0';
    int hist = cas_log_cfg.max_history;
    if (hist <= 0) {
        unlink(path);
        return;
    }
    for (int i = hist - 1; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof(from), "%s.lo_", base);
        else
            snprintf(from, sizeof(from), "%s.lo_.%d", base, i - 1);
        snprintf(to, sizeof(to), "%s.lo_.%d", base, i);
        rename(from, to);
    }
    snprintf(to, sizeof(to), "%s.lo_", base);
    rename(path, to);
}

static void cas_log_emit(const char *path, const char *line, size_t len)
{
    /* Each retry means another writer rotated the file in between, so progress is being made;
     * the bound only guards against a file system that keeps changing under us. */
    for (int attempt = 0; attempt < 1000; attempt++) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        struct stat fst, pst;
        if (fd < 0)
            goto failed;
        if (flock(fd, LOCK_EX) != 0) {
            close(fd);
            goto failed;
        }
        /* Another process may have rotated the file while we waited for the lock. */
        if (fstat(fd, &fst) != 0 || stat(path, &pst) != 0 || fst.st_ino != pst.st_ino ||
            fst.st_dev != pst.st_dev) {
            close(fd);
            continue;
        }
        if (fst.st_size > 0 && fst.st_size + (off_t)len > cas_log_cfg.max_size) {
            cas_log_rotate(path);
            close(fd);
            continue;
        }
        ssize_t n = write(fd, line, len);
        close(fd);
        if (n != (ssize_t)len)
            goto failed;
        return;
    }
failed:
    if (!cas_log_cfg.warned) {
        cas_log_cfg.warned = 1;
        fprintf(stderr, "cas-agent: warning: cannot write log %s: %s\n", path, strerror(errno));
    }
}

void cas_log_write(enum cas_log_component comp, enum cas_log_kind kind, const char *src_file,
                   int src_line, const char *fmt, ...)
{
    char text[8192];
    char line[16384];
    char path[PATH_MAX];
    struct timespec now;
    va_list ap;

    if (!cas_log_kind_enabled(kind) && !(cas_log_cfg.echo_stderr && kind >= CAS_LOG_K_WARNING))
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (cas_log_cfg.echo_stderr && kind >= CAS_LOG_K_WARNING)
        fprintf(stderr, "cas-agent: %s: %s\n", kind == CAS_LOG_K_ERROR ? "error" : "warning", text);
    if (!cas_log_cfg.dir || !cas_log_kind_enabled(kind))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    int n = cas_log_format(line, sizeof(line), comp, kind, src_file, src_line, &now,
                           (long)syscall(SYS_gettid), text);
    if (n < 0)
        return;
    if (snprintf(path, sizeof(path), "%s/%s", cas_log_cfg.dir, cas_log_file_name(comp)) >=
        (int)sizeof(path))
        return;
    cas_log_emit(path, line, (size_t)n);
}
