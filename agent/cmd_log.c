/* cas-agent log: the CMTrace logs read back in a terminal, one line per record in UTC, several
 * logs merged by time, filtered by level, content, and time, optionally followed. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/signals.h"
#include "common/guid.h"
#include "common/log.h"
#include "common/logread.h"
#include "common/timefmt.h"

#define LOG_POLL_NS 250000000L

#define LOG_USAGE_LINE                                                                             \
    "usage: cas-agent log [COMPONENT...] [--all] [--level N] [--content ID] [--since TIME]\n"      \
    "                     [--follow]\n"

static const char log_usage_text[] = LOG_USAGE_LINE
    "Prints the agent's CMTrace records, rotated files first, one line per record:\n"
    "  2026-11-23 06:00:01.123Z  ContentAccess  W  text\n"
    "time in UTC, component, type (I information, W warning, E error, V verbose: type 0, which\n"
    "only the real client writes), text. Warnings are yellow and errors red on a terminal\n"
    "(not with NO_COLOR set).\n"
    "  COMPONENT     CAS (the default), ContentTransferManager, DataTransferService, execmgr,\n"
    "                PolicyAgent, or a component name (ContentAccess); any case. Several are\n"
    "                merged by time\n"
    "  --all         every log, merged by time\n"
    "  --level N     as log_level: 0 or 1 everything (the agent writes its verbose records as\n"
    "                type 1, so both show the same), 2 warnings and errors, 3 errors only\n"
    "  --content ID  records naming content ID (a package ID names all its versions), and the\n"
    "                records of its download requests and jobs ({GUID}s named with it)\n"
    "  --since TIME  records from TIME on: 2026-11-23T06:00:00Z, or 30s, 10m, 2h, 1d ago\n"
    "  --follow, -f  then keep printing new records, across rotations, until interrupted\n";

static int log_usage(const char *problem, const char *arg)
{
    if (problem)
        fprintf(stderr, "cas-agent: log: %s%s%s%s\n", problem, arg ? " '" : "", arg ? arg : "",
                arg ? "'" : "");
    fputs(LOG_USAGE_LINE "(cas-agent log --help: the options and the output)\n", stderr);
    return 2;
}

/* ------------------------------------------------------------------------------------------ */
/* Options */

struct log_opts {
    int want[CAS_LOG_NCOMPONENTS];
    int all, follow, level;
    const char *content;
    int have_since;
    time_t since;
};

/* The log named by `name`: its file name without ".log" (a ".log" suffix is allowed), or its
 * component name, any case. -1 if none. */
static int log_component_of(const char *name)
{
    char stem[64];
    size_t n = strlen(name);
    if (n > 4 && !strcasecmp(name + n - 4, ".log"))
        n -= 4;
    if (n == 0 || n >= sizeof(stem))
        return -1;
    memcpy(stem, name, n);
    stem[n] = '\0';
    for (int c = 0; c < CAS_LOG_NCOMPONENTS; c++) {
        const char *file = cas_log_file_name((enum cas_log_component)c);
        size_t fl = strlen(file) - 4;
        if ((strlen(stem) == fl && !strncasecmp(stem, file, fl)) ||
            !strcasecmp(stem, cas_log_component_name((enum cas_log_component)c)))
            return c;
    }
    return -1;
}

static void log_stem(int c, char *out, size_t size)
{
    const char *file = cas_log_file_name((enum cas_log_component)c);
    snprintf(out, size, "%.*s", (int)(strlen(file) - 4), file);
}

/* "2026-11-23T06:00:00Z" (any RFC 3339 offset), or N followed by s, m, h or d: N units ago. */
static int log_parse_since(const char *s, time_t *out)
{
    size_t n = strlen(s);
    if (n >= 2 && n <= 10 && strchr("smhd", s[n - 1])) {
        long v = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                goto absolute;
            v = v * 10 + (s[i] - '0');
        }
        long unit = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 : 86400;
        *out = cas_clock_now() - (time_t)v * unit;
        return 1;
    }
absolute:
    return cas_time_parse(s, out) == CAS_OK;
}

static int log_parse_args(int argc, char **argv, struct log_opts *o, int *rc)
{
    int named = 0;
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(log_usage_text, stdout);
            *rc = 0;
            return 0;
        }
        if (!strcmp(arg, "--all")) {
            o->all = 1;
            continue;
        }
        if (!strcmp(arg, "--follow") || !strcmp(arg, "-f")) {
            o->follow = 1;
            continue;
        }
        if (!strncmp(arg, "--level", 7) || !strncmp(arg, "--content", 9) ||
            !strncmp(arg, "--since", 7)) {
            size_t k = strcspn(arg, "=");
            if (arg[k] == '=') {
                val = arg + k + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                *rc = log_usage("missing value after", arg);
                return 0;
            }
            if (!strncmp(arg, "--level", k) && k == 7) {
                if (strlen(val) != 1 || val[0] < '0' || val[0] > '3') {
                    *rc = log_usage("--level takes 0, 1, 2 or 3, not", val);
                    return 0;
                }
                o->level = val[0] - '0';
            } else if (!strncmp(arg, "--content", k) && k == 9) {
                if (!*val || strlen(val) > 256) {
                    *rc = log_usage("--content takes a content or package ID, not", val);
                    return 0;
                }
                o->content = val;
            } else if (!strncmp(arg, "--since", k) && k == 7) {
                if (!log_parse_since(val, &o->since)) {
                    *rc = log_usage("--since takes 2026-11-23T06:00:00Z or 30s, 10m, 2h, 1d, not",
                                    val);
                    return 0;
                }
                o->have_since = 1;
            } else {
                *rc = log_usage("unknown option", arg);
                return 0;
            }
            continue;
        }
        if (arg[0] == '-') {
            *rc = log_usage("unknown option", arg);
            return 0;
        }
        int c = log_component_of(arg);
        if (c < 0) {
            fprintf(stderr,
                    "cas-agent: log: unknown log '%s'; the logs are CAS (component "
                    "ContentAccess), ContentTransferManager, DataTransferService, execmgr, "
                    "PolicyAgent\n",
                    arg);
            *rc = log_usage(NULL, NULL);
            return 0;
        }
        o->want[c] = 1;
        named++;
    }
    if (o->all && named) {
        *rc = log_usage("give either COMPONENT or --all", NULL);
        return 0;
    }
    for (int c = 0; c < CAS_LOG_NCOMPONENTS; c++)
        o->want[c] |= o->all;
    if (!o->all && !named)
        o->want[CAS_LOG_CAS] = 1;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* --content: does the text name the ID, and which download requests and jobs go with it */

static int log_id_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* The ID as a whole word, any case: CEN00002.1 is not in CEN00002.10, while CEN00002 (a package)
 * is in CEN00002.1 (its content) and CEN00002.1 in CEN00002.1.sums (its listing). */
static int log_mentions(const char *text, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = text; (p = strcasestr(p, id)) != NULL; p++) {
        if (p > text && (log_id_char(p[-1]) || p[-1] == '.'))
            continue;
        if (log_id_char(p[n]))
            continue;
        return 1;
    }
    return 0;
}

struct log_guids {
    char (*v)[CAS_GUID_LEN + 1];
    size_t n, cap;
};

static int log_hexdig(char c)
{
    return isxdigit((unsigned char)c) != 0;
}

/* If a GUID "{8-4-4-4-12}" starts at p (p has at least CAS_GUID_LEN bytes or a NUL before),
 * copy it upper-cased into out. */
static int log_guid_at(const char *p, char out[CAS_GUID_LEN + 1])
{
    if (p[0] != '{')
        return 0;
    for (int i = 1; i < CAS_GUID_LEN - 1; i++) {
        int dash = i == 9 || i == 14 || i == 19 || i == 24;
        if (!p[i] || (dash ? p[i] != '-' : !log_hexdig(p[i])))
            return 0;
    }
    if (p[CAS_GUID_LEN - 1] != '}')
        return 0;
    for (int i = 0; i < CAS_GUID_LEN; i++)
        out[i] = (char)toupper((unsigned char)p[i]);
    out[CAS_GUID_LEN] = '\0';
    return 1;
}

static int log_guids_has(const struct log_guids *g, const char *guid)
{
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->v[i], guid))
            return 1;
    return 0;
}

static cas_hr log_guids_add_from(struct log_guids *g, const char *text)
{
    char guid[CAS_GUID_LEN + 1];
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        if (!log_guid_at(p, guid) || log_guids_has(g, guid))
            continue;
        if (g->n == g->cap) {
            size_t ncap = g->cap ? g->cap * 2 : 16;
            void *nv = realloc(g->v, ncap * sizeof(*g->v));
            if (!nv)
                return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            g->v = nv;
            g->cap = ncap;
        }
        memcpy(g->v[g->n++], guid, sizeof(guid));
    }
    return CAS_OK;
}

static int log_mentions_guid(const struct log_guids *g, const char *text)
{
    char guid[CAS_GUID_LEN + 1];
    if (!g->n)
        return 0;
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{'))
        if (log_guid_at(p, guid) && log_guids_has(g, guid))
            return 1;
    return 0;
}

/* The GUIDs of every record in every log that names the content: download requests and jobs. */
static cas_hr log_collect_guids(const char *dir, const char *id, struct cas_log_record *rec,
                                struct log_guids *g)
{
    for (int c = 0; c < CAS_LOG_NCOMPONENTS; c++) {
        char stem[64];
        struct cas_logread *r = NULL;
        enum cas_logread_what what;
        log_stem(c, stem, sizeof(stem));
        if (cas_logread_open(dir, stem, 0, &r) != CAS_OK)
            continue; /* that log does not exist (yet) */
        cas_hr hr;
        while ((hr = cas_logread_next(r, rec, &what)) == CAS_OK && what != CAS_LOGREAD_END) {
            if (what == CAS_LOGREAD_RECORD && log_mentions(rec->text, id) &&
                (hr = log_guids_add_from(g, rec->text)) != CAS_OK)
                break;
        }
        cas_logread_close(r);
        if (hr != CAS_OK)
            return hr;
    }
    return CAS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Output */

static char log_type_letter(int type)
{
    return type == 3 ? 'E' : type == 2 ? 'W' : type == 1 ? 'I' : 'V';
}

static void log_print(const struct cas_log_record *rec, int width, int colour)
{
    struct tm tm;
    const char *on = "", *off = "";
    gmtime_r(&rec->utc, &tm);
    if (colour && rec->type >= 2) {
        on = rec->type == 3 ? "\033[31m" : "\033[33m";
        off = "\033[0m";
    }
    printf("%s%04d-%02d-%02d %02d:%02d:%02d.%03dZ  %-*s  %c  %s%s\n", on, tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rec->ms, width,
           rec->component, log_type_letter(rec->type), rec->text, off);
}

static int log_use_colour(void)
{
    const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
    return isatty(STDOUT_FILENO) && !(no && *no) && !(term && !strcmp(term, "dumb"));
}

/* ------------------------------------------------------------------------------------------ */
/* The merge */

struct log_stream {
    struct cas_logread *r;
    struct cas_log_record *head;
    int has_head;
    int at_end; /* returned END in this round */
};

static int log_before(const struct cas_log_record *a, const struct cas_log_record *b)
{
    return a->utc < b->utc || (a->utc == b->utc && a->ms < b->ms);
}

static int log_keep(const struct log_opts *o, const struct log_guids *g,
                    const struct cas_log_record *rec)
{
    if (rec->type < o->level || (o->have_since && rec->utc < o->since))
        return 0;
    if (o->content && !log_mentions(rec->text, o->content) && !log_mentions_guid(g, rec->text))
        return 0;
    return 1;
}

static void log_sleep_poll(void)
{
    struct timespec ts = {0, LOG_POLL_NS};
    nanosleep(&ts, NULL); /* a stop signal ends it early (no SA_RESTART) */
}

int cas_cmd_log(struct cas_agent *a, int argc, char **argv)
{
    struct log_opts o;
    struct log_stream s[CAS_LOG_NCOMPONENTS];
    struct log_guids guids = {0};
    struct cas_log_record *scratch = NULL;
    size_t ns = 0;
    unsigned long long bad = 0;
    int rc = 0, width = 0, opened = 0;
    cas_hr hr = CAS_OK;
    const char *dir = a->cfg.log_dir;

    memset(s, 0, sizeof(s));
    if (!log_parse_args(argc, argv, &o, &rc))
        return rc;
    int colour = log_use_colour();

    for (int c = 0; c < CAS_LOG_NCOMPONENTS; c++) {
        char stem[64];
        if (!o.want[c])
            continue;
        /* The column fits every log asked for, whether it exists yet or not. */
        int w = (int)strlen(cas_log_component_name((enum cas_log_component)c));
        width = w > width ? w : width;
        log_stem(c, stem, sizeof(stem));
        if (!o.all && o.follow) {
            /* A named log must exist, followed or not; with --all a log that does not exist
             * yet is normal: it is skipped, or waited for. */
            char **paths = NULL;
            size_t n = 0;
            hr = cas_logread_files(dir, stem, &paths, &n);
            cas_logread_free_paths(paths, n);
            if (hr == CAS_OK && n == 0)
                hr = cas_fail(CAS_E_FILE_MISSING, "no log %s/%s.log", dir, stem);
            if (hr != CAS_OK)
                goto cleanup;
        }
        hr = cas_logread_open(dir, stem, o.follow, &s[ns].r);
        if (hr == CAS_E_FILE_MISSING && o.all && !o.follow) {
            hr = CAS_OK;
            continue;
        }
        if (hr != CAS_OK)
            goto cleanup;
        s[ns].head = malloc(sizeof(*s[ns].head));
        if (!s[ns].head) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            ns++;
            goto cleanup;
        }
        ns++;
        opened++;
    }
    if (!opened) {
        hr = cas_fail(CAS_E_FILE_MISSING, "no log in %s", dir);
        goto cleanup;
    }
    if (o.content) {
        scratch = malloc(sizeof(*scratch));
        if (!scratch) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
        hr = log_collect_guids(dir, o.content, scratch, &guids);
        if (hr != CAS_OK)
            goto cleanup;
    }
    if (o.follow)
        cas_signals_install();

    for (;;) {
        if (o.follow && cas_stop_requested())
            break;
        /* Every stream without a record in hand reads until it has one or is at its end. */
        for (size_t i = 0; i < ns; i++) {
            enum cas_logread_what what;
            while (!s[i].has_head && !s[i].at_end) {
                hr = cas_logread_next(s[i].r, s[i].head, &what);
                if (hr != CAS_OK)
                    goto cleanup;
                if (what == CAS_LOGREAD_END)
                    s[i].at_end = 1;
                else if (what == CAS_LOGREAD_NOT_RECORD)
                    bad++;
                else
                    s[i].has_head = 1;
            }
        }
        /* The earliest record; ties go to the earlier log, and each log keeps its own order. */
        size_t best = ns;
        for (size_t i = 0; i < ns; i++)
            if (s[i].has_head && (best == ns || log_before(s[i].head, s[best].head)))
                best = i;
        if (best == ns) {
            if (!o.follow)
                break;
            fflush(stdout);
            log_sleep_poll();
            for (size_t i = 0; i < ns; i++)
                s[i].at_end = 0;
            continue;
        }
        struct cas_log_record *rec = s[best].head;
        s[best].has_head = 0;
        if (o.content && o.follow && log_mentions(rec->text, o.content)) {
            hr = log_guids_add_from(&guids, rec->text);
            if (hr != CAS_OK)
                goto cleanup;
        }
        if (log_keep(&o, &guids, rec))
            log_print(rec, width, colour);
    }

cleanup:
    if (fflush(stdout) != 0 && hr == CAS_OK)
        hr = cas_fail(CAS_E_IO, "cannot write the output: %s", strerror(errno));
    if (bad == 1)
        fputs("cas-agent: 1 line was not a CMTrace record (skipped)\n", stderr);
    else if (bad)
        fprintf(stderr, "cas-agent: %llu lines were not CMTrace records (skipped)\n", bad);
    for (size_t i = 0; i < ns; i++) {
        cas_logread_close(s[i].r);
        free(s[i].head);
    }
    free(scratch);
    free(guids.v);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    return rc;
}
