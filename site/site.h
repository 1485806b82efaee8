/* cas-site: the site's tool. Shared between the command files; nothing here is used outside site/.
 */
#ifndef CAS_SITE_H
#define CAS_SITE_H

#include <stddef.h>

#include "common/error.h"

/* Exit statuses, as for cas-agent. */
#define CAS_SITE_EXIT_OK    0
#define CAS_SITE_EXIT_FAIL  1
#define CAS_SITE_EXIT_USAGE 2

/* Each command receives argv after the command word, argv[0] being the subcommand
 * ("generate", "build", "sign") or NULL when missing, and returns an exit status. */
int cas_site_cmd_key(int argc, char **argv);
int cas_site_cmd_package(int argc, char **argv);
int cas_site_cmd_policy(int argc, char **argv);

/* Print "cas-site: error 0x%08X: <detail>" (the code's message when the detail is empty) on
 * stderr and return CAS_SITE_EXIT_FAIL. */
int cas_site_report(cas_hr hr);

/* Print "cas-site: <why>; usage: cas-site <usage>" as one line on stderr and return
 * CAS_SITE_EXIT_USAGE. */
int cas_site_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__
/* As cas_fail() in common/error.h: show the analyzer the constant result. */
#define cas_site_usage(...) (cas_site_usage(__VA_ARGS__), CAS_SITE_EXIT_USAGE)
#endif

/* getopt_long over argv (argv[0] = the subcommand), reporting unknown options and missing
 * arguments as usage errors. Returns the option character, -1 at the end, or '?' after printing
 * the usage line. */
struct option;
int cas_site_getopt(int argc, char **argv, const struct option *opts, const char *usage);

/* Fail with `code` and a detail "<what>: <OpenSSL's reason>", emptying OpenSSL's error queue. */
cas_hr cas_site_ssl_fail(cas_hr code, const char *what);

#endif
