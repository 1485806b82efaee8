/* Time: an injectable clock, and the RFC 3339 timestamps policy uses. */
#ifndef CAS_TIMEFMT_H
#define CAS_TIMEFMT_H

#include <time.h>

#include "error.h"

/* The clock every expiry and schedule decision reads. Tests replace it with cas_clock_set();
 * NULL restores the real clock. Programs read it once per operation ("now is fixed once"). */
typedef time_t (*cas_clock_fn)(void);
void cas_clock_set(cas_clock_fn fn);
time_t cas_clock_now(void);

/* Monotonic seconds, for durations, deadlines and backoff. Tests replace it with cas_mono_set()
 * to make a long job's deadline pass at once; NULL restores CLOCK_MONOTONIC. */
typedef double (*cas_mono_fn)(void);
void cas_mono_set(cas_mono_fn fn);
double cas_mono_now(void);

/* Parse "YYYY-MM-DDTHH:MM:SSZ" or "...SS+HH:MM" / "-HH:MM" (optional ".fraction" is ignored)
 * into UTC seconds. CAS_E_INVALID_DATA if malformed or out of range (year 1970..9999). */
cas_hr cas_time_parse(const char *text, time_t *out);
/* Format as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void cas_time_format(time_t t, char *buf, size_t size);

#endif
