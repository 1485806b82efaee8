/* Reading CMTrace logs: the writer's own records parse back exactly (text, type, component, time
 * with any bias), escaping round-trips, malformed lines are refused, the rotated files are read
 * oldest first, and following survives the writer's rotations without losing a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/logread.h"

/* 2026-07-04 12:34:56.789 UTC */
static const struct timespec when = {1783168496, 789000000};

static struct cas_log_record rec; /* 33 KB: not on the stack */

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static int fmt(char *buf, size_t size, enum cas_log_component comp, enum cas_log_kind kind,
               const struct timespec *t, const char *text)
{
    int n = cas_log_format(buf, size, comp, kind, "/src/agent/download.c", 512, t, 4242, text);
    assert_true(n > 0);
    return n;
}

static cas_hr parse(const char *line)
{
    return cas_logread_parse(line, strlen(line), &rec);
}

/* ---------------------------------------------------------------------------------------- */
/* Round trips through the writer's own formatter */

static void test_roundtrip_utc(void **state)
{
    (void)state;
    char buf[1024];
    set_tz("UTC0");
    int n = fmt(buf, sizeof(buf), CAS_LOG_CAS, CAS_LOG_K_INFO, &when,
                "Download started for content CEN00002.2");
    assert_int_equal(cas_logread_parse(buf, (size_t)n, &rec), CAS_OK);
    assert_string_equal(rec.text, "Download started for content CEN00002.2");
    assert_int_equal(rec.len, strlen("Download started for content CEN00002.2"));
    assert_string_equal(rec.component, "ContentAccess");
    assert_string_equal(rec.file, "download.c:512");
    assert_int_equal(rec.type, 1);
    assert_int_equal(rec.thread, 4242);
    assert_int_equal(rec.bias, 0);
    assert_int_equal(rec.utc, when.tv_sec);
    assert_int_equal(rec.ms, 789);
}

static void test_roundtrip_bias(void **state)
{
    (void)state;
    char buf[1024];
    const struct {
        const char *tz;
        time_t t;
        int bias;
    } cases[] = {
        {"IST-5:30", when.tv_sec, -330},                    /* UTC+5:30 */
        {"EST5EDT,M3.2.0,M11.1.0", when.tv_sec, 240},       /* UTC-4 in July */
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", 1767268800, -660}, /* 2026-01-01 23:00 local */
        {"HST10", 1767225600 + 5 * 3600, 600},              /* 2025-12-31 19:00 local */
        {"NPT-5:45", when.tv_sec, -345},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct timespec t = {cases[i].t, 5000000};
        set_tz(cases[i].tz);
        int n = fmt(buf, sizeof(buf), CAS_LOG_EXECMGR, CAS_LOG_K_ERROR, &t, "x");
        assert_int_equal(cas_logread_parse(buf, (size_t)n, &rec), CAS_OK);
        assert_int_equal(rec.bias, cases[i].bias);
        assert_int_equal(rec.utc, cases[i].t);
        assert_int_equal(rec.ms, 5);
        assert_int_equal(rec.type, 3);
        assert_string_equal(rec.component, "execmgr");
    }
    set_tz("UTC0");
}

static void test_roundtrip_kinds_components(void **state)
{
    (void)state;
    char buf[1024];
    const struct {
        enum cas_log_kind kind;
        int type;
    } kinds[] = {{CAS_LOG_K_DEBUG, 1},
                 {CAS_LOG_K_VERBOSE, 1},
                 {CAS_LOG_K_INFO, 1},
                 {CAS_LOG_K_WARNING, 2},
                 {CAS_LOG_K_ERROR, 3}};
    set_tz("UTC0");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        fmt(buf, sizeof(buf), CAS_LOG_CAS, kinds[i].kind, &when, "k");
        assert_int_equal(parse(buf), CAS_OK);
        assert_int_equal(rec.type, kinds[i].type);
    }
    for (int c = 0; c < CAS_LOG_NCOMPONENTS; c++) {
        fmt(buf, sizeof(buf), (enum cas_log_component)c, CAS_LOG_K_INFO, &when, "c");
        assert_int_equal(parse(buf), CAS_OK);
        assert_string_equal(rec.component, cas_log_component_name((enum cas_log_component)c));
    }
}

static void test_roundtrip_escaping(void **state)
{
    (void)state;
    char buf[1024];
    set_tz("UTC0");
    fmt(buf, sizeof(buf), CAS_LOG_CAS, CAS_LOG_K_INFO, &when,
        "a]LOG]!>b ]LOG]!>]LOG]!> <![LOG[ \"q\" tab\there");
    assert_int_equal(parse(buf), CAS_OK);
    assert_string_equal(rec.text, "a]LOG]!>b ]LOG]!>]LOG]!> <![LOG[ \"q\" tab\there");
    /* Line breaks become spaces and other control characters '?' when written. */
    fmt(buf, sizeof(buf), CAS_LOG_CAS, CAS_LOG_K_INFO, &when, "two\nlines\r\x1b[31m");
    assert_int_equal(parse(buf), CAS_OK);
    assert_string_equal(rec.text, "two lines ?[31m");
    /* Empty text is a record. */
    fmt(buf, sizeof(buf), CAS_LOG_CAS, CAS_LOG_K_INFO, &when, "");
    assert_int_equal(parse(buf), CAS_OK);
    assert_string_equal(rec.text, "");
    assert_int_equal(rec.len, 0);
    /* The writer does not escape a literal "]LOG]!&gt;": it reads back as the terminator. */
    fmt(buf, sizeof(buf), CAS_LOG_CAS, CAS_LOG_K_INFO, &when, "lit ]LOG]!&gt; x");
    assert_int_equal(parse(buf), CAS_OK);
    assert_string_equal(rec.text, "lit ]LOG]!> x");
    /* The longest text the writer writes still fits. */
    char big[8200];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char line[16384];
    fmt(line, sizeof(line), CAS_LOG_CAS, CAS_LOG_K_INFO, &when, big);
    assert_int_equal(parse(line), CAS_OK);
    assert_int_equal(rec.len, 8191);
}

/* ---------------------------------------------------------------------------------------- */
/* Exact lines, and what is not a record */

#define GOOD_HEAD "<![LOG[hello]LOG]!><time=\"06:00:01.123+000\" date=\"11-23-2026\" "
#define GOOD_TAIL "component=\"ContentAccess\" context=\"\" type=\"2\" thread=\"7\" file=\"a.c:1\">"
static const char good[] = GOOD_HEAD GOOD_TAIL;

static void test_exact_line(void **state)
{
    (void)state;
    assert_int_equal(parse(good), CAS_OK);
    assert_string_equal(rec.text, "hello");
    assert_int_equal(rec.utc, 1795413601); /* 2026-11-23T06:00:01Z */
    assert_int_equal(rec.ms, 123);
    assert_int_equal(rec.type, 2);
    assert_int_equal(rec.thread, 7);
    assert_string_equal(rec.file, "a.c:1");
    /* Line breaks at the end: LF, CRLF. */
    assert_int_equal(parse(GOOD_HEAD GOOD_TAIL "\n"), CAS_OK);
    assert_int_equal(parse(GOOD_HEAD GOOD_TAIL "\r\n"), CAS_OK);
    /* The real client's forms: a context value, type 0, an empty file. */
    assert_int_equal(parse("<![LOG[v]LOG]!><time=\"23:59:59.999-660\" date=\"02-29-2028\" "
                           "component=\"CcmExec\" context=\"x y\" type=\"0\" thread=\"0\" "
                           "file=\"\">"),
                     CAS_OK);
    assert_int_equal(rec.type, 0);
    assert_string_equal(rec.file, "");
    assert_int_equal(rec.bias, -660);
    assert_int_equal(rec.utc, 1835481599 - 660 * 60); /* 2028-02-29T23:59:59 at UTC+11 */
    /* A 4-digit year at both ends of the range. */
    assert_int_equal(parse("<![LOG[]LOG]!><time=\"00:00:00.000+000\" date=\"01-01-1970\" "
                           "component=\"C\" context=\"\" type=\"1\" thread=\"1\" file=\"f\">"),
                     CAS_OK);
    assert_int_equal(rec.utc, 0);
    assert_int_equal(parse("<![LOG[]LOG]!><time=\"23:59:59.000+000\" date=\"12-31-9999\" "
                           "component=\"C\" context=\"\" type=\"1\" thread=\"1\" file=\"f\">"),
                     CAS_OK);
    assert_int_equal(rec.utc, 253402300799LL);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "\n",
        "hello",
        "<![LOG[",
        "<![LOG[text without end",
        /* wrong quotes, spacing, order */
        "<![LOG[x]LOG]!><time='06:00:01.123+000' date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000 date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\"  date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!> <time=\"06:00:01.123+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><date=\"11-23-2026\" time=\"06:00:01.123+000\" " GOOD_TAIL,
        GOOD_HEAD "component=\"ContentAccess\" type=\"2\" context=\"\" thread=\"7\" file=\"a\">",
        GOOD_HEAD "component=\"ContentAccess\" context=\"\" type=\"2\" thread=\"7\" file=\"a\"",
        GOOD_HEAD "component=\"ContentAccess\" context=\"\" type=\"2\" thread=\"7\" file=\"a>",
        GOOD_HEAD GOOD_TAIL " ",
        GOOD_HEAD GOOD_TAIL ">",
        GOOD_HEAD GOOD_TAIL "\n\n",
        GOOD_HEAD GOOD_TAIL "\r",
        /* bad times and dates */
        "<![LOG[x]LOG]!><time=\"24:00:00.000+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:60:00.000+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:60.000+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.12+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.1234+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+00\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123*000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"6:00:01.123+000\" date=\"11-23-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"02-30-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"02-29-2027\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"02-29-2100\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"13-01-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"00-01-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"11-00-2026\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"11-23-1969\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"2026-11-23\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"06:00:01.123+000\" date=\"11-23-26\" " GOOD_TAIL,
        "<![LOG[x]LOG]!><time=\"-6:00:01.123+000\" date=\"11-23-2026\" " GOOD_TAIL,
        /* bad fields */
        GOOD_HEAD "component=\"\" context=\"\" type=\"2\" thread=\"7\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"4\" thread=\"7\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"\" thread=\"7\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"12\" thread=\"7\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"-7\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"7a\" file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"99999999999999999999\" "
                  "file=\"a.c:1\">",
        GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"7\">",
        /* the SMS 2003 server form is not this format */
        "Download started  $$<ContentAccess><11-23-2026 06:00:01.123+000><thread=7 (0x7)>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != CAS_E_INVALID_DATA)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(cas_err_detail(), "not a CMTrace record"));
    }
    /* The largest valid values are not refused by the checks above. */
    assert_int_equal(parse(GOOD_HEAD "component=\"C\" context=\"\" type=\"3\" "
                                     "thread=\"9223372036854775807\" file=\"a.c:1\">"),
                     CAS_OK);
    assert_int_equal(rec.thread, 9223372036854775807L);
}

/* Every truncation of a good record is refused (the parser never reads past the length given:
 * the copy is exactly that long, so ASan sees any overread). */
static void test_truncations(void **state)
{
    (void)state;
    size_t n = strlen(good);
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, good, k);
        if (cas_logread_parse(copy, k, &rec) != CAS_E_INVALID_DATA)
            fail_msg("accepted the first %zu bytes", k);
        free(copy);
    }
    // NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): n = strlen(good) > 0
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, good, n); // NOLINT(bugprone-not-null-terminated-result): no NUL, on purpose
    assert_int_equal(cas_logread_parse(copy, n, &rec), CAS_OK);
    free(copy);
}

/* Changing any byte of the fixed syntax (outside the text and the values) is refused. */
static void test_syntax_mutations(void **state)
{
    (void)state;
    char line[sizeof(good)];
    size_t n = strlen(good);
    const char *text_end = strstr(good, "]LOG]!>");
    int in_value = 0;
    for (size_t k = 0; k < n; k++) {
        int fixed;
        if (k < 7) {
            fixed = 1;
        } else if (good + k < text_end) {
            fixed = 0; /* the text */
        } else if (good[k] == '"') {
            fixed = 1;
            in_value = !in_value;
        } else {
            fixed = !in_value;
        }
        if (!fixed)
            continue;
        memcpy(line, good, sizeof(good));
        line[k] = line[k] == 'X' ? 'Y' : 'X';
        if (parse(line) != CAS_E_INVALID_DATA)
            fail_msg("accepted with byte %zu changed: %s", k, line);
    }
}

static void test_bytes(void **state)
{
    (void)state;
    char line[512];
    /* NUL, ESC, DEL, CR inside the text: refused (the text must be safe on a terminal). */
    const char bytes[] = {'\0', '\x1b', '\x7f', '\r', '\n', '\x01'};
    for (size_t i = 0; i < sizeof(bytes); i++) {
        int n = snprintf(line, sizeof(line), "<![LOG[ab%cc]LOG]!>%s", 'Q', good + 19);
        char *q = strchr(line, 'Q');
        *q = bytes[i];
        assert_int_equal(cas_logread_parse(line, (size_t)n, &rec), CAS_E_INVALID_DATA);
    }
    /* Bytes >= 0x80 (UTF-8, or not) and TAB are text. */
    assert_int_equal(parse("<![LOG[caf\xc3\xa9 \xff\t!]LOG]!>"
                           "<time=\"06:00:01.123+000\" "
                           "date=\"11-23-2026\" " GOOD_TAIL),
                     CAS_OK);
    assert_string_equal(rec.text, "caf\xc3\xa9 \xff\t!");
}

static void test_lengths(void **state)
{
    (void)state;
    const char *tail = good + strlen("<![LOG[hello");
    size_t tl = strlen(tail);
    size_t max = CAS_LOGREAD_LINE_MAX;
    char *line = malloc(max + 3);
    assert_non_null(line);
    /* Exactly the longest line (plus CRLF), then one byte more. Unterminated on purpose: the
     * parser must stay within the length it is given. */
    memcpy(line, "<![LOG[", 7); // NOLINT(bugprone-not-null-terminated-result): no NUL, on purpose
    memset(line + 7, 'a', max - 7 - tl);
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): no NUL, on purpose
    memcpy(line + max - tl, tail, tl);
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): no NUL, on purpose
    memcpy(line + max, "\r\n", 2);
    assert_int_equal(cas_logread_parse(line, max + 2, &rec), CAS_OK);
    assert_int_equal(rec.len, max - 7 - tl);
    memcpy(line, "<![LOG[", 7); // NOLINT(bugprone-not-null-terminated-result): no NUL, on purpose
    memset(line + 7, 'a', max + 1 - 7 - tl);
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): no NUL, on purpose
    memcpy(line + max + 1 - tl, tail, tl);
    assert_int_equal(cas_logread_parse(line, max + 1, &rec), CAS_E_INVALID_DATA);
    assert_non_null(strstr(cas_err_detail(), "too long"));
    free(line);
    /* Component: 63 bytes fit, 64 do not; file: 255 fit, 256 do not. */
    char buf[1024];
    snprintf(buf, sizeof(buf),
             GOOD_HEAD "component=\"%063d\" context=\"\" type=\"1\" thread=\"1\" "
                       "file=\"%0255d\">",
             0, 0);
    assert_int_equal(parse(buf), CAS_OK);
    assert_int_equal(strlen(rec.component), 63);
    assert_int_equal(strlen(rec.file), 255);
    snprintf(buf, sizeof(buf),
             GOOD_HEAD "component=\"%064d\" context=\"\" type=\"1\" thread=\"1\" "
                       "file=\"f\">",
             0);
    assert_int_equal(parse(buf), CAS_E_INVALID_DATA);
    snprintf(buf, sizeof(buf),
             GOOD_HEAD "component=\"C\" context=\"\" type=\"1\" thread=\"1\" "
                       "file=\"%0256d\">",
             0);
    assert_int_equal(parse(buf), CAS_E_INVALID_DATA);
}

/* ---------------------------------------------------------------------------------------- */
/* Files */

static char tmp[64];

static void mk_tmp(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test_logread.XXXXXX");
    assert_non_null(mkdtemp(tmp));
}

static void put(const char *name, const char *data, const char *mode)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
}

static void mv(const char *from, const char *to)
{
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/%s", tmp, from);
    snprintf(b, sizeof(b), "%s/%s", tmp, to);
    assert_int_equal(rename(a, b), 0);
}

/* A record whose text is `text` (UTC, fixed time); the last four stay valid. */
static const char *rl(const char *text)
{
    static char bufs[4][1024];
    static unsigned k;
    char *buf = bufs[k++ % 4];
    set_tz("UTC0");
    fmt(buf, 1024, CAS_LOG_CAS, CAS_LOG_K_INFO, &when, text);
    return buf;
}

/* The writer's rotation with max_history 3: lo_.1 -> lo_.2, lo_ -> lo_.1, log -> lo_. */
static void rotate(void)
{
    char a[256];
    snprintf(a, sizeof(a), "%s/CAS.lo_.1", tmp);
    if (access(a, F_OK) == 0)
        mv("CAS.lo_.1", "CAS.lo_.2");
    snprintf(a, sizeof(a), "%s/CAS.lo_", tmp);
    if (access(a, F_OK) == 0)
        mv("CAS.lo_", "CAS.lo_.1");
    mv("CAS.log", "CAS.lo_");
}

static void test_files_order(void **state)
{
    (void)state;
    char path[256];
    mk_tmp();
    const char *names[] = {"CAS.log",   "CAS.lo_",     "CAS.lo_.1", "CAS.lo_.2",      "CAS.lo_.10",
                           "CAS.lo_.9", "CAS.lo_.01",  "CAS.lo_.x", "CAS.lo_.1x",     "CASX.log",
                           "cas.log",   "execmgr.log", "CAS.log.1", "CAS.lo_.1234567"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        put(names[i], "", "w");
    snprintf(path, sizeof(path), "%s/CAS.lo_.3", tmp);
    assert_int_equal(mkdir(path, 0755), 0); /* a folder is not a log file */
    snprintf(path, sizeof(path), "%s/CAS.lo_.4", tmp);
    assert_int_equal(symlink("CAS.log", path), 0); /* nor a symlink */

    char **paths = NULL;
    size_t n = 0;
    assert_int_equal(cas_logread_files(tmp, "CAS", &paths, &n), CAS_OK);
    const char *want[] = {"CAS.lo_.10", "CAS.lo_.9", "CAS.lo_.2",
                          "CAS.lo_.1",  "CAS.lo_",   "CAS.log"};
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", tmp, want[i]);
        assert_string_equal(paths[i], path);
    }
    cas_logread_free_paths(paths, n);

    /* No file of that log: an empty list; no folder: FILE_MISSING. */
    assert_int_equal(cas_logread_files(tmp, "PolicyAgent", &paths, &n), CAS_OK);
    assert_int_equal(n, 0);
    cas_logread_free_paths(paths, n);
    assert_int_equal(cas_fs_remove_tree(tmp), CAS_OK);
    assert_int_equal(cas_logread_files(tmp, "CAS", &paths, &n), CAS_E_FILE_MISSING);
    assert_null(paths);
}

/* Drain r until END; the texts of the records, '|'-separated, "!" for a line that is not one. */
static void drain(struct cas_logread *r, char *out, size_t size)
{
    enum cas_logread_what what;
    size_t o = 0;
    out[0] = '\0';
    for (;;) {
        assert_int_equal(cas_logread_next(r, &rec, &what), CAS_OK);
        if (what == CAS_LOGREAD_END)
            break;
        const char *t = what == CAS_LOGREAD_RECORD ? rec.text : "!";
        int n = snprintf(out + o, size - o, "%s%s", o ? "|" : "", t);
        assert_true(n > 0 && (size_t)n < size - o);
        o += (size_t)n;
    }
}

static void test_reader_oldest_first(void **state)
{
    (void)state;
    char got[4096];
    char buf[2048];
    struct cas_logread *r = NULL;
    mk_tmp();
    snprintf(buf, sizeof(buf), "%s%s", rl("a1"), rl("a2"));
    put("CAS.lo_.2", buf, "w");
    /* The last line of a rotated file without its line break is still a line. */
    snprintf(buf, sizeof(buf), "%s%s", rl("b1"), rl("b2"));
    buf[strlen(buf) - 1] = '\0';
    put("CAS.lo_.1", buf, "w");
    snprintf(buf, sizeof(buf), "%sgarbage\n\n%s", rl("c1"), rl("c2"));
    put("CAS.lo_", buf, "w");
    snprintf(buf, sizeof(buf), "%s%s", rl("d1"), rl("d2"));
    buf[strlen(buf) - 1] = '\0';
    put("CAS.log", buf, "w");
    put("execmgr.log", rl("other log"), "w");

    assert_int_equal(cas_logread_open(tmp, "CAS", 0, &r), CAS_OK);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "a1|a2|b1|b2|c1|!|!|c2|d1|d2");
    drain(r, got, sizeof(got)); /* stays at its end */
    assert_string_equal(got, "");
    cas_logread_close(r);

    /* Only rotated files left: still readable. No file at all: FILE_MISSING with the name. */
    mv("CAS.log", "CAS.lo_.3");
    assert_int_equal(cas_logread_open(tmp, "CAS", 0, &r), CAS_OK);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "d1|d2|a1|a2|b1|b2|c1|!|!|c2");
    cas_logread_close(r);
    assert_int_equal(cas_logread_open(tmp, "PolicyAgent", 0, &r), CAS_E_FILE_MISSING);
    assert_null(r);
    assert_non_null(strstr(cas_err_detail(), "PolicyAgent.log"));
    assert_int_equal(cas_fs_remove_tree(tmp), CAS_OK);
}

static void test_reader_overlong_and_nul(void **state)
{
    (void)state;
    char got[4096];
    char path[256];
    struct cas_logread *r = NULL;
    mk_tmp();
    snprintf(path, sizeof(path), "%s/CAS.log", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(rl("before"), f);
    for (int i = 0; i < 3 * CAS_LOGREAD_LINE_MAX; i++)
        fputc('x', f);
    fputc('\n', f);
    fputs(rl("after"), f);
    const char *nul = rl("with NUL");
    fwrite(nul, 1, 10, f);
    fputc('\0', f);
    fputs(nul + 10, f);
    fputs(rl("end"), f);
    fclose(f);
    assert_int_equal(cas_logread_open(tmp, "CAS", 0, &r), CAS_OK);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "before|!|after|!|end");
    cas_logread_close(r);
    assert_int_equal(cas_fs_remove_tree(tmp), CAS_OK);
}

static void test_follow_appends_and_rotations(void **state)
{
    (void)state;
    char got[4096];
    struct cas_logread *r = NULL;
    mk_tmp();
    /* Nothing yet: following waits for the file. */
    assert_int_equal(cas_logread_open(tmp, "CAS", 1, &r), CAS_OK);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");
    put("CAS.log", rl("A"), "w");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "A");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");

    /* A line being written is held until its line break arrives. */
    const char *b = rl("B");
    char half[512];
    snprintf(half, sizeof(half), "%.*s", 20, b);
    put("CAS.log", half, "a");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");
    put("CAS.log", b + 20, "a");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "B");

    /* Appended, then rotated twice before we look again: nothing is lost, nothing repeated. */
    put("CAS.log", rl("C"), "a");
    rotate();
    put("CAS.log", rl("D"), "w");
    rotate();
    put("CAS.log", rl("E"), "w");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "C|D|E");

    /* Rotated with nothing new yet (the writer renames, then creates): then the new file. */
    rotate();
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");
    put("CAS.log", rl("F"), "w");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "F");

    /* The file being read fell off the history (removed): every kept file is newer. */
    put("CAS.log", rl("G"), "a");
    char path[256];
    snprintf(path, sizeof(path), "%s/CAS.log", tmp);
    assert_int_equal(unlink(path), 0);
    put("CAS.log", rl("H, longer than what comes next"), "w");
    snprintf(path, sizeof(path), "%s/CAS.lo_", tmp);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/CAS.lo_.1", tmp);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/CAS.lo_.2", tmp);
    assert_int_equal(unlink(path), 0);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "G|H, longer than what comes next");

    /* Truncated in place (copytruncate): read from its start again. */
    put("CAS.log", rl("I"), "w");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "I");
    cas_logread_close(r);
    assert_int_equal(cas_fs_remove_tree(tmp), CAS_OK);
}

/* The real writer rotating small files while a follower reads every few records: every record
 * arrives once, in order. */
static void test_follow_real_writer(void **state)
{
    (void)state;
    struct cas_logread *r = NULL;
    enum cas_logread_what what;
    mk_tmp();
    struct cas_log_settings ls = {
        .dir = tmp, .level = 0, .debug = 0, .max_size = 1000, .max_history = 3};
    assert_int_equal(cas_log_init(&ls), CAS_OK);
    cas_log_info(CAS_LOG_CAS, "record %d", 0);
    assert_int_equal(cas_logread_open(tmp, "CAS", 1, &r), CAS_OK);
    int next = 0, total = 400;
    for (int i = 1; i <= total; i++) {
        cas_log_info(CAS_LOG_CAS, "record %d", i);
        if (i % 7 != 0 && i != total)
            continue; /* 7 records are about 1.5 files: one or two rotations per look */
        for (;;) {
            assert_int_equal(cas_logread_next(r, &rec, &what), CAS_OK);
            if (what == CAS_LOGREAD_END)
                break;
            assert_int_equal(what, CAS_LOGREAD_RECORD);
            char want[32];
            snprintf(want, sizeof(want), "record %d", next++);
            assert_string_equal(rec.text, want);
        }
        assert_int_equal(next, i + 1);
    }
    cas_logread_close(r);
    cas_log_shutdown();

    /* Reading afterwards gives the oldest kept record first. */
    char **paths = NULL;
    size_t n = 0;
    assert_int_equal(cas_logread_files(tmp, "CAS", &paths, &n), CAS_OK);
    assert_int_equal(n, 4);
    assert_non_null(strstr(paths[0], "/CAS.lo_.2"));
    cas_logread_free_paths(paths, n);
    assert_int_equal(cas_logread_open(tmp, "CAS", 0, &r), CAS_OK);
    int first = -1, last = -1, count = 0;
    for (;;) {
        assert_int_equal(cas_logread_next(r, &rec, &what), CAS_OK);
        if (what == CAS_LOGREAD_END)
            break;
        assert_int_equal(what, CAS_LOGREAD_RECORD);
        int v = (int)strtol(rec.text + 7, NULL, 10);
        if (first < 0)
            first = v;
        else
            assert_int_equal(v, last + 1);
        last = v;
        count++;
    }
    assert_int_equal(last, total);
    assert_true(count > 12 && first > 0);
    cas_logread_close(r);
    assert_int_equal(cas_fs_remove_tree(tmp), CAS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_utc),
        cmocka_unit_test(test_roundtrip_bias),
        cmocka_unit_test(test_roundtrip_kinds_components),
        cmocka_unit_test(test_roundtrip_escaping),
        cmocka_unit_test(test_exact_line),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_syntax_mutations),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_files_order),
        cmocka_unit_test(test_reader_oldest_first),
        cmocka_unit_test(test_reader_overlong_and_nul),
        cmocka_unit_test(test_follow_appends_and_rotations),
        cmocka_unit_test(test_follow_real_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
