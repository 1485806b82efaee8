/* The injectable clock and RFC 3339 timestamps. */
#include "common/timefmt.h"

#include <stdio.h>
#include <string.h>

/* 9999-12-31T23:59:59Z: the last second a four-digit year can write. */
#define CAS_TIME_MAX ((time_t)253402300799LL)

static cas_clock_fn cas_clock_override;

void cas_clock_set(cas_clock_fn fn)
{
    cas_clock_override = fn;
}

time_t cas_clock_now(void)
{
    return cas_clock_override ? cas_clock_override() : time(NULL);
}

static cas_mono_fn cas_mono_override;

void cas_mono_set(cas_mono_fn fn)
{
    cas_mono_override = fn;
}

double cas_mono_now(void)
{
    if (cas_mono_override)
        return cas_mono_override();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads exactly n decimal digits at *p, advancing it; -1 if any is not a digit. */
static int cas_time_digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static int cas_time_expect(const char **p, char c)
{
    if (**p != c)
        return 0;
    (*p)++;
    return 1;
}

static int cas_time_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

cas_hr cas_time_parse(const char *text, time_t *out)
{
    const char *p = text;
    if (!p)
        return cas_fail(CAS_E_INVALID_DATA, "missing timestamp");

    int year = cas_time_digits(&p, 4);
    int ok = year >= 0 && cas_time_expect(&p, '-');
    int mon = ok ? cas_time_digits(&p, 2) : -1;
    ok = ok && mon >= 0 && cas_time_expect(&p, '-');
    int day = ok ? cas_time_digits(&p, 2) : -1;
    ok = ok && day >= 0 && cas_time_expect(&p, 'T');
    int hour = ok ? cas_time_digits(&p, 2) : -1;
    ok = ok && hour >= 0 && cas_time_expect(&p, ':');
    int min = ok ? cas_time_digits(&p, 2) : -1;
    ok = ok && min >= 0 && cas_time_expect(&p, ':');
    int sec = ok ? cas_time_digits(&p, 2) : -1;
    ok = ok && sec >= 0;
    if (ok && *p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            ok = 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }

    long offset = 0; /* seconds east of UTC */
    if (ok && *p == 'Z') {
        p++;
    } else if (ok && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = cas_time_digits(&p, 2);
        ok = oh >= 0 && oh <= 23 && cas_time_expect(&p, ':');
        int om = ok ? cas_time_digits(&p, 2) : -1;
        ok = ok && om >= 0 && om <= 59;
        offset = sign * (oh * 3600L + om * 60L);
    } else {
        ok = 0;
    }
    if (!ok || *p != '\0')
        return cas_fail(CAS_E_INVALID_DATA,
                        "malformed timestamp '%.64s' (expected YYYY-MM-DDTHH:MM:SSZ or an offset)",
                        text);

    /* Second 60 is RFC 3339's leap second; timegm folds it into the next minute. */
    if (year < 1970 || year > 9999 || mon < 1 || mon > 12 || day < 1 ||
        day > cas_time_days_in_month(year, mon) || hour > 23 || min > 59 || sec > 60)
        return cas_fail(CAS_E_INVALID_DATA, "timestamp out of range '%.64s'", text);

    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return cas_fail(CAS_E_INVALID_DATA, "timestamp out of range '%.64s'", text);
    t -= (time_t)offset;
    if (t < 0 || t > CAS_TIME_MAX)
        return cas_fail(CAS_E_INVALID_DATA, "timestamp out of range '%.64s'", text);
    *out = t;
    return CAS_OK;
}

void cas_time_format(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (size == 0)
        return;
    if (!gmtime_r(&t, &tm)) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
