/* Reading CMTrace logs (the format common/log.h writes):
 *   - cas_logread_parse(): one line -> one record, strictly. Any bytes are accepted as input (NUL,
 *     no line break, any length); what is not exactly a record is "not a record", never a crash.
 *     Bounded work, no recursion, no allocation: the fuzzer calls it directly.
 *   - struct cas_logread: the lines of one log's files, oldest first (NAME.lo_.N ... NAME.lo_.1,
 *     NAME.lo_, NAME.log), optionally following NAME.log across rotations. */
#ifndef CAS_LOGREAD_H
#define CAS_LOGREAD_H

#include <stddef.h>
#include <time.h>

#include "error.h"

/* Longest line taken as a record, without its line break. The writer's lines stay under 17 KB;
 * longer lines are "not a record". Text only shrinks when unescaped, so it always fits. */
#define CAS_LOGREAD_LINE_MAX      32768
#define CAS_LOGREAD_COMPONENT_MAX 64  /* component name, with NUL */
#define CAS_LOGREAD_FILE_MAX      256 /* file="src.c:LINE", with NUL */

struct cas_log_record {
    time_t utc;  /* the record's time in UTC (local time + bias) */
    int ms;      /* 0..999 */
    int bias;    /* minutes, Windows' sign: UTC = local + bias */
    int type;    /* 0..3: 0 verbose (real client only), 1 information, 2 warning, 3 error */
    long thread; /* thread="N" */
    size_t len;  /* bytes of text, without NUL */
    char component[CAS_LOGREAD_COMPONENT_MAX];
    char file[CAS_LOGREAD_FILE_MAX];
    char text[CAS_LOGREAD_LINE_MAX + 1]; /* "]LOG]!&gt;" turned back into "]LOG]!>" */
};

/* Parse one line (len bytes, need not be NUL-terminated; one trailing "\n" or "\r\n" is ignored)
 * into *rec. The line must be exactly
 *   <![LOG[TEXT]LOG]!><time="HH:MM:SS.mmm+BBB" date="MM-DD-YYYY" component="C" context="X"
 *   type="T" thread="N" file="F">
 * with single spaces, TEXT ending at the first "]LOG]!>", a valid calendar date (years
 * 1970..9999), a 3-digit bias, type 0..3, a decimal thread id, a non-empty component; no byte
 * below 0x20 but TAB, and no DEL, anywhere (so the text is safe to print on a terminal).
 * Returns CAS_OK, or CAS_E_INVALID_DATA with a detail saying what is wrong (*rec then holds
 * nothing useful). The writer cannot tell a literal "]LOG]!&gt;" in a message from an escaped
 * terminator, so such text reads back as "]LOG]!>". */
cas_hr cas_logread_parse(const char *line, size_t len, struct cas_log_record *rec);

/* The files of log `stem` ("CAS" for CAS.log) in `dir`, oldest first: NAME.lo_.N (highest N
 * first) ... NAME.lo_.1, NAME.lo_, NAME.log, those that exist. *paths is a malloc'd array of
 * malloc'd strings (free with cas_logread_free_paths). CAS_OK with *n == 0 if none exists;
 * CAS_E_FILE_MISSING if `dir` does not exist, CAS_E_ACCESSDENIED if it cannot be read. */
cas_hr cas_logread_files(const char *dir, const char *stem, char ***paths, size_t *n);
void cas_logread_free_paths(char **paths, size_t n);

enum cas_logread_what {
    CAS_LOGREAD_RECORD = 0, /* *rec holds the next record */
    CAS_LOGREAD_NOT_RECORD, /* the next line is not a record (skipped; count it) */
    CAS_LOGREAD_END         /* no more lines (following: none for now, ask again later) */
};

struct cas_logread;

/* Open log `stem` in `dir`. The files that exist now are opened at once (a rotation while
 * reading then loses nothing already there). With `follow`, reading does not stop at the end of
 * NAME.log: each later cas_logread_next() reads what was appended since, and when NAME.log was
 * rotated away it finishes the old file, then reads every newer file in order (several
 * rotations between two calls included). A log with no file yet is fine when following (*out
 * waits for NAME.log); otherwise CAS_E_FILE_MISSING naming NAME.log. */
cas_hr cas_logread_open(const char *dir, const char *stem, int follow, struct cas_logread **out);

/* The next line. *what says whether it was a record (then in *rec), a line that is not one, or
 * the end. A final line without a line break counts as a line (when following, only once the
 * file has been rotated: until then the writer may still be writing it). Fails only on a read
 * error (CAS_E_IO naming the file). */
cas_hr cas_logread_next(struct cas_logread *r, struct cas_log_record *rec,
                        enum cas_logread_what *what);

void cas_logread_close(struct cas_logread *r);

#endif
