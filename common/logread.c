/* CMTrace reader: a strict one-line parser, and a reader that walks a log's rotated files oldest
 * first and can follow the live file across the writer's renames (see common/log.c). */
#include "common/logread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char lr_term[] = "]LOG]!>";
static const char lr_term_esc[] = "]LOG]!&gt;";

/* ------------------------------------------------------------------------------------------ */
/* The parser. Every step checks against `e`, so input is never read past len. */

static int lr_lit(const char **p, const char *e, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(e - *p) < n || memcmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

static int lr_digits(const char **p, const char *e, int n, int *out)
{
    int v = 0;
    if (e - *p < n)
        return 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

/* The value up to the next '"' (not consumed); copied into out when out is given. */
static int lr_value(const char **p, const char *e, char *out, size_t cap, size_t *len)
{
    const char *q = memchr(*p, '"', (size_t)(e - *p));
    if (!q)
        return 0;
    size_t n = (size_t)(q - *p);
    if (out) {
        if (n >= cap)
            return 0;
        memcpy(out, *p, n);
        out[n] = '\0';
    }
    if (len)
        *len = n;
    *p = q;
    return 1;
}

static int lr_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long lr_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static cas_hr lr_bad(const char *what)
{
    return cas_fail(CAS_E_INVALID_DATA, "not a CMTrace record: %s", what);
}

cas_hr cas_logread_parse(const char *line, size_t len, struct cas_log_record *rec)
{
    if (len > 0 && line[len - 1] == '\n') {
        len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
    }
    if (len > CAS_LOGREAD_LINE_MAX)
        return lr_bad("line too long");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return lr_bad("control character");
    }

    const char *p = line, *e = line + len;
    if (!lr_lit(&p, e, "<![LOG["))
        return lr_bad("no <![LOG[ at the start");
    const char *t = memmem(p, (size_t)(e - p), lr_term, sizeof(lr_term) - 1);
    if (!t)
        return lr_bad("no ]LOG]!> after the text");

    /* Unescape: "]LOG]!&gt;" -> "]LOG]!>". The output never outgrows the input. */
    size_t o = 0;
    const size_t esc_len = sizeof(lr_term_esc) - 1;
    while (p < t) {
        if ((size_t)(t - p) >= esc_len && *p == ']' && !memcmp(p, lr_term_esc, esc_len)) {
            memcpy(rec->text + o, lr_term, sizeof(lr_term) - 1);
            o += sizeof(lr_term) - 1;
            p += esc_len;
        } else {
            rec->text[o++] = *p++;
        }
    }
    rec->text[o] = '\0';
    rec->len = o;
    p = t + sizeof(lr_term) - 1;

    int hh, mi, ss, ms, bias, mo, dd, yy, type;
    char sign;
    if (!lr_lit(&p, e, "<time=\"") || !lr_digits(&p, e, 2, &hh) || !lr_lit(&p, e, ":") ||
        !lr_digits(&p, e, 2, &mi) || !lr_lit(&p, e, ":") || !lr_digits(&p, e, 2, &ss) ||
        !lr_lit(&p, e, ".") || !lr_digits(&p, e, 3, &ms) || p >= e)
        return lr_bad("bad time");
    sign = *p++;
    if ((sign != '+' && sign != '-') || !lr_digits(&p, e, 3, &bias))
        return lr_bad("bad time-zone bias");
    if (!lr_lit(&p, e, "\" date=\"") || !lr_digits(&p, e, 2, &mo) || !lr_lit(&p, e, "-") ||
        !lr_digits(&p, e, 2, &dd) || !lr_lit(&p, e, "-") || !lr_digits(&p, e, 4, &yy))
        return lr_bad("bad date");
    if (hh > 23 || mi > 59 || ss > 59)
        return lr_bad("time out of range");
    if (yy < 1970 || mo < 1 || mo > 12 || dd < 1 || dd > lr_days_in_month(yy, mo))
        return lr_bad("date out of range");

    size_t n;
    if (!lr_lit(&p, e, "\" component=\"") ||
        !lr_value(&p, e, rec->component, sizeof(rec->component), &n) || n == 0)
        return lr_bad("bad component");
    if (!lr_lit(&p, e, "\" context=\"") || !lr_value(&p, e, NULL, 0, NULL))
        return lr_bad("bad context");
    if (!lr_lit(&p, e, "\" type=\"") || !lr_digits(&p, e, 1, &type) || type > 3)
        return lr_bad("bad type");
    if (!lr_lit(&p, e, "\" thread=\""))
        return lr_bad("bad thread");
    long tid = 0;
    const char *d0 = p;
    while (p < e && *p >= '0' && *p <= '9') {
        if (tid > (LONG_MAX - (*p - '0')) / 10)
            return lr_bad("thread id out of range");
        tid = tid * 10 + (*p++ - '0');
    }
    if (p == d0)
        return lr_bad("bad thread");
    if (!lr_lit(&p, e, "\" file=\"") || !lr_value(&p, e, rec->file, sizeof(rec->file), NULL))
        return lr_bad("bad file");
    if (!lr_lit(&p, e, "\">") || p != e)
        return lr_bad("bad end of record");

    long long local = lr_days_from_civil(yy, mo, dd) * 86400LL + hh * 3600LL + mi * 60LL + ss;
    rec->bias = sign == '-' ? -bias : bias;
    rec->utc = (time_t)(local + rec->bias * 60LL);
    rec->ms = ms;
    rec->type = type;
    rec->thread = tid;
    return CAS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The files of one log. */

struct lr_name {
    long idx; /* 0: NAME.lo_, N: NAME.lo_.N */
    char *path;
};

static int lr_name_cmp(const void *a, const void *b)
{
    const struct lr_name *x = a, *y = b;
    return x->idx < y->idx ? 1 : x->idx > y->idx ? -1 : 0; /* oldest (highest) first */
}

/* -1: not a file of this log; 0..: its rotation index; LONG_MAX: the live NAME.log. */
static long lr_classify(const char *name, const char *stem)
{
    size_t n = strlen(stem);
    if (strncmp(name, stem, n) != 0)
        return -1;
    name += n;
    if (!strcmp(name, ".log"))
        return LONG_MAX;
    if (!strcmp(name, ".lo_"))
        return 0;
    if (strncmp(name, ".lo_.", 5) != 0)
        return -1;
    name += 5;
    /* The writer's own names only: 1..999999 without leading zeros, so no two names collide. */
    if (*name < '1' || *name > '9' || strlen(name) > 6)
        return -1;
    long v = 0;
    for (; *name; name++) {
        if (*name < '0' || *name > '9')
            return -1;
        v = v * 10 + (*name - '0');
    }
    return v;
}

void cas_logread_free_paths(char **paths, size_t n)
{
    if (!paths)
        return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

cas_hr cas_logread_files(const char *dir, const char *stem, char ***paths, size_t *n)
{
    cas_hr hr = CAS_OK;
    struct lr_name *names = NULL;
    size_t count = 0, cap = 0;
    char *live = NULL;
    char **out = NULL;
    struct dirent *de;
    DIR *d = opendir(dir);

    *paths = NULL;
    *n = 0;
    if (!d) {
        if (errno == EACCES || errno == EPERM)
            return cas_fail(CAS_E_ACCESSDENIED, "cannot read the log folder %s", dir);
        return cas_fail(CAS_E_FILE_MISSING, "no log folder %s", dir);
    }
    while ((de = readdir(d)) != NULL) {
        long idx = lr_classify(de->d_name, stem);
        struct stat st;
        if (idx < 0 || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        char *path;
        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
        if (idx == LONG_MAX) {
            live = path;
            continue;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct lr_name *nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                free(path);
                hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
                goto cleanup;
            }
            names = nn;
            cap = ncap;
        }
        names[count].idx = idx;
        names[count++].path = path;
    }
    if (count)
        qsort(names, count, sizeof(*names), lr_name_cmp);
    out = calloc(count + 1, sizeof(*out));
    if (!out) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++) {
        out[i] = names[i].path;
        names[i].path = NULL;
    }
    *n = count;
    if (live) {
        out[(*n)++] = live;
        live = NULL;
    }
    *paths = out;
cleanup:
    for (size_t i = 0; i < count; i++)
        free(names[i].path);
    free(names);
    free(live);
    closedir(d);
    return hr;
}

/* ------------------------------------------------------------------------------------------ */
/* The reader. */

struct lr_file {
    int fd;
    dev_t dev;
    ino_t ino;
    char *path;
};

struct cas_logread {
    char *dir, *stem, *live;
    int follow;
    struct lr_file *q; /* files to read, oldest first; q[qi] is the current one */
    size_t nq, qcap, qi;
    char *buf; /* unread bytes of the current file: buf[off..len) */
    size_t off, len;
    int overlong; /* discarding the rest of a line already reported as too long */
};

#define LR_BUF_CAP (2 * (size_t)CAS_LOGREAD_LINE_MAX + 2)

static void lr_file_close(struct lr_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->path);
    f->path = NULL;
}

/* Open `path` and append it to the queue. 1 opened, 0 gone (a rotation raced us), or a failure
 * code in *hr. When want_ino is nonzero the file must be that inode (else 0 is returned). */
static int lr_push(struct cas_logread *r, const char *path, dev_t want_dev, ino_t want_ino,
                   cas_hr *hr)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP)
            return 0;
        *hr = errno == EACCES || errno == EPERM
                  ? cas_fail(CAS_E_ACCESSDENIED, "cannot read %s", path)
                  : cas_fail(CAS_E_IO, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (want_ino && (st.st_ino != want_ino || st.st_dev != want_dev))) {
        close(fd);
        return 0;
    }
    if (r->nq == r->qcap) {
        size_t ncap = r->qcap ? r->qcap * 2 : 8;
        struct lr_file *nq = realloc(r->q, ncap * sizeof(*nq));
        if (!nq) {
            close(fd);
            *hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            return -1;
        }
        r->q = nq;
        r->qcap = ncap;
    }
    struct lr_file *f = &r->q[r->nq];
    f->path = strdup(path);
    if (!f->path) {
        close(fd);
        *hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        return -1;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    r->nq++;
    return 1;
}

void cas_logread_close(struct cas_logread *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nq; i++)
        lr_file_close(&r->q[i]);
    free(r->q);
    free(r->buf);
    free(r->dir);
    free(r->stem);
    free(r->live);
    free(r);
}

cas_hr cas_logread_open(const char *dir, const char *stem, int follow, struct cas_logread **out)
{
    char **paths = NULL;
    size_t n = 0;
    cas_hr hr;
    struct cas_logread *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (!r)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    r->follow = follow;
    r->dir = strdup(dir);
    r->stem = strdup(stem);
    r->buf = malloc(LR_BUF_CAP);
    if (!r->dir || !r->stem || !r->buf || asprintf(&r->live, "%s/%s.log", dir, stem) < 0) {
        r->live = NULL;
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    hr = cas_logread_files(dir, stem, &paths, &n);
    if (hr != CAS_OK)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        if (lr_push(r, paths[i], 0, 0, &hr) < 0)
            goto cleanup;
    }
    if (r->nq == 0 && !follow) {
        hr = cas_fail(CAS_E_FILE_MISSING, "no log %s", r->live);
        goto cleanup;
    }
    *out = r;
    r = NULL;
cleanup:
    cas_logread_free_paths(paths, n);
    cas_logread_close(r);
    return hr;
}

/* Following, at the end of the newest file read: if NAME.log is no longer that file, queue
 * every file newer than it (in order). Several rotations may have happened since the last look:
 * the current file is found again by its inode (its open descriptor keeps the inode from being
 * reused); if it is gone it fell off the history, and every file that exists is newer. Returns
 * the number of files queued, or -1 with *hr. */
static int lr_catch_up(struct cas_logread *r, cas_hr *hr)
{
    /* Files before the current one are closed: drop them, or a long follow grows the queue. */
    if (r->qi > 0 && r->qi < r->nq) {
        memmove(r->q, r->q + r->qi, (r->nq - r->qi) * sizeof(*r->q));
        r->nq -= r->qi;
        r->qi = 0;
    }
    int have_cur = r->qi < r->nq;
    dev_t cur_dev = have_cur ? r->q[r->qi].dev : 0;
    ino_t cur_ino = have_cur ? r->q[r->qi].ino : 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        char **paths = NULL;
        size_t n = 0, first = 0, nq0 = r->nq;
        struct stat *st = NULL;
        int ok = 1;
        if (cas_logread_files(r->dir, r->stem, &paths, &n) != CAS_OK)
            return 0; /* the folder went away: nothing to read for now */
        st = calloc(n + 1, sizeof(*st));
        if (!st) {
            cas_logread_free_paths(paths, n);
            *hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if (lstat(paths[i], &st[i]) != 0) {
                ok = 0;
                break;
            }
            if (have_cur && st[i].st_ino == cur_ino && st[i].st_dev == cur_dev)
                first = i + 1;
        }
        for (size_t i = first; ok && i < n; i++) {
            int got = lr_push(r, paths[i], st[i].st_dev, st[i].st_ino, hr);
            if (got < 0) {
                free(st);
                cas_logread_free_paths(paths, n);
                return -1;
            }
            ok = got == 1;
        }
        free(st);
        cas_logread_free_paths(paths, n);
        if (ok)
            return (int)(r->nq - nq0);
        /* A rotation moved the files while we opened them: drop what we opened and look again. */
        while (r->nq > nq0)
            lr_file_close(&r->q[--r->nq]);
    }
    return 0;
}

enum lr_live { LR_SAME, LR_ROTATED, LR_TRUNCATED };

/* Following: is NAME.log still the file we are reading? A truncation in place (copytruncate)
 * starts that file over. */
static enum lr_live lr_live_state(struct cas_logread *r)
{
    struct stat st;
    if (r->qi >= r->nq) /* nothing read yet: the same while NAME.log is absent */
        return stat(r->live, &st) != 0 ? LR_SAME : LR_ROTATED;
    struct lr_file *cur = &r->q[r->qi];
    if (stat(r->live, &st) != 0 || st.st_ino != cur->ino || st.st_dev != cur->dev)
        return LR_ROTATED;
    off_t pos = lseek(cur->fd, 0, SEEK_CUR);
    if (pos >= 0 && st.st_size < pos) {
        lseek(cur->fd, 0, SEEK_SET);
        r->off = r->len = 0;
        r->overlong = 0;
        return LR_TRUNCATED;
    }
    return LR_SAME;
}

static void lr_emit(const char *line, size_t n, struct cas_log_record *rec,
                    enum cas_logread_what *what)
{
    *what = cas_logread_parse(line, n, rec) == CAS_OK ? CAS_LOGREAD_RECORD : CAS_LOGREAD_NOT_RECORD;
}

/* Take the unfinished last line of the current file as a line. 1 if there was one. */
static int lr_flush_partial(struct cas_logread *r, struct cas_log_record *rec,
                            enum cas_logread_what *what)
{
    size_t n = r->len - r->off;
    int overlong = r->overlong;
    r->off = r->len = 0;
    r->overlong = 0;
    if (n == 0 || overlong)
        return 0;
    lr_emit(r->buf, n, rec, what);
    return 1;
}

cas_hr cas_logread_next(struct cas_logread *r, struct cas_log_record *rec,
                        enum cas_logread_what *what)
{
    cas_hr hr = CAS_OK;
    int looked = 0;  /* checked NAME.log once in this call */
    int drained = 0; /* read the current file again after seeing it rotated */

    *what = CAS_LOGREAD_END;
    for (;;) {
        char *start = r->buf + r->off;
        char *nl = memchr(start, '\n', r->len - r->off);
        if (nl) {
            size_t n = (size_t)(nl - start) + 1;
            r->off += n;
            if (r->overlong) {
                r->overlong = 0;
                continue;
            }
            lr_emit(start, n, rec, what); /* with its line break: the parser takes \r\n */
            return CAS_OK;
        }
        if (r->len - r->off > CAS_LOGREAD_LINE_MAX + 1) {
            /* Too long to be a record: report it once, drop bytes until its line break. */
            int first = !r->overlong;
            r->overlong = 1;
            r->off = r->len = 0;
            if (first) {
                *what = CAS_LOGREAD_NOT_RECORD;
                return CAS_OK;
            }
            continue;
        }
        if (r->qi < r->nq) {
            struct lr_file *cur = &r->q[r->qi];
            if (r->off > 0) {
                memmove(r->buf, r->buf + r->off, r->len - r->off);
                r->len -= r->off;
                r->off = 0;
            }
            ssize_t got = read(cur->fd, r->buf + r->len, LR_BUF_CAP - r->len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                return cas_fail(CAS_E_IO, "cannot read %s: %s", cur->path, strerror(errno));
            if (got > 0) {
                r->len += (size_t)got;
                continue;
            }
            if (r->qi + 1 < r->nq) {
                /* The end of a file that is not the newest: its last line is complete. */
                int had = lr_flush_partial(r, rec, what);
                lr_file_close(cur);
                r->qi++;
                if (had)
                    return CAS_OK;
                continue;
            }
        }
        /* At the end of the newest file. */
        if (!r->follow) {
            if (r->qi < r->nq && lr_flush_partial(r, rec, what))
                return CAS_OK;
            *what = CAS_LOGREAD_END;
            return CAS_OK;
        }
        enum lr_live live = looked ? LR_SAME : lr_live_state(r);
        if (live == LR_TRUNCATED) {
            looked = 1;
            continue;
        }
        if (live == LR_SAME) {
            *what = CAS_LOGREAD_END;
            return CAS_OK;
        }
        if (r->qi < r->nq && !drained) {
            /* Rotated: what the writer appended before renaming is readable now; read it first. */
            drained = 1;
            continue;
        }
        looked = 1;
        int had_cur = r->qi < r->nq;
        int queued = lr_catch_up(r, &hr);
        if (queued < 0)
            return hr;
        if (queued == 0)
            continue; /* ends above: looked */
        if (had_cur) {
            int had = lr_flush_partial(r, rec, what);
            lr_file_close(&r->q[r->qi]);
            r->qi++;
            if (had)
                return CAS_OK;
        }
        drained = 0;
        looked = 0;
    }
}
