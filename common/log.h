/* CMTrace log writer: one file per component in the log folder, one record per line:
 *   <![LOG[TEXT]LOG]!><time="HH:MM:SS.mmm+BBB" date="MM-DD-YYYY" component="NAME" context=""
 *   type="T" thread="TID" file="src.c:LINE">
 * Each record is formatted whole and written with one write(2) on an O_APPEND descriptor under
 * flock(2), so records stay whole with several processes and threads writing at once. */
#ifndef CAS_LOG_H
#define CAS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

enum cas_log_component {
    CAS_LOG_CAS = 0, /* CAS.log, component ContentAccess */
    CAS_LOG_CTM,     /* ContentTransferManager.log */
    CAS_LOG_DTS,     /* DataTransferService.log */
    CAS_LOG_EXECMGR, /* execmgr.log */
    CAS_LOG_POLICY,  /* PolicyAgent.log */
    CAS_LOG_NCOMPONENTS
};

/* Record kinds. VERBOSE is written as type 1 but only at log_level 0; DEBUG as type 1 but only
 * with debug_logging on. */
enum cas_log_kind {
    CAS_LOG_K_DEBUG = 0,
    CAS_LOG_K_VERBOSE,
    CAS_LOG_K_INFO,
    CAS_LOG_K_WARNING,
    CAS_LOG_K_ERROR
};

struct cas_log_settings {
    const char *dir; /* NULL: logging off (unit tests) */
    int level;       /* 0 verbose, 1 default, 2 warnings and errors, 3 errors only */
    int debug;       /* debug_logging */
    long max_size;   /* rotate when a file would grow past this many bytes */
    int max_history; /* rotated files kept: NAME.lo_, NAME.lo_.1 ... */
    int echo_stderr; /* also print records of kind >= WARNING to stderr, plain */
};

/* Set where and what to log. Creates the folder if missing. Copies the settings. */
cas_hr cas_log_init(const struct cas_log_settings *settings);
void cas_log_shutdown(void);

/* The log's file name ("CAS.log") and component name ("ContentAccess"). */
const char *cas_log_file_name(enum cas_log_component comp);
const char *cas_log_component_name(enum cas_log_component comp);

/* Write one record (use the macros so file:line is filled in). Never fails loudly: a log that
 * cannot be written must not stop a download, so errors are reported once on stderr. Never
 * changes the failure detail (cas_err_detail), so a caller can log it and still return it. */
void cas_log_write(enum cas_log_component comp, enum cas_log_kind kind, const char *src_file,
                   int src_line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records this thread writes from now on carry `ctx` (a download request GUID, "{…}") in their
 * context attribute, so every record of one job shares it; NULL or "" clears it. Only GUID
 * characters are kept. */
void cas_log_set_context(const char *ctx);

/* Format one record into buf (for tests and the writer). `now` and `tid` are given so tests are
 * deterministic. Returns the length written (without NUL), or -1 if buf is too small. */
int cas_log_format(char *buf, size_t bufsize, enum cas_log_component comp, enum cas_log_kind kind,
                   const char *src_file, int src_line, const struct timespec *now, long tid,
                   const char *text);

#define CAS_LOG_(comp, kind, ...)  cas_log_write((comp), (kind), __FILE__, __LINE__, __VA_ARGS__)
#define cas_log_debug(comp, ...)   CAS_LOG_(comp, CAS_LOG_K_DEBUG, __VA_ARGS__)
#define cas_log_verbose(comp, ...) CAS_LOG_(comp, CAS_LOG_K_VERBOSE, __VA_ARGS__)
#define cas_log_info(comp, ...)    CAS_LOG_(comp, CAS_LOG_K_INFO, __VA_ARGS__)
#define cas_log_warn(comp, ...)    CAS_LOG_(comp, CAS_LOG_K_WARNING, __VA_ARGS__)
#define cas_log_error(comp, ...)   CAS_LOG_(comp, CAS_LOG_K_ERROR, __VA_ARGS__)

#endif
