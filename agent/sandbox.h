/* The unprivileged side of the agent: what a process gives up before it touches network data.
 * The agent runs as root on every endpoint; transfers (libcurl, TLS, HTTP) and the first parse of
 * documents that came over the network run in a forked child that has dropped root, cannot gain
 * privileges again, and (with Landlock) cannot write to the file system except where allowed. */
#ifndef CAS_SANDBOX_H
#define CAS_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* The account the package creates for the unprivileged side; `nobody` when it does not exist. */
#define CAS_SANDBOX_USER          "cas-agent"
#define CAS_SANDBOX_FALLBACK_USER "nobody"

/* What cas_sandbox_enter achieved, for the log. */
struct cas_sandbox_status {
    uid_t uid;
    gid_t gid;
    char user[64];          /* the account now in use, or the one kept (not root) */
    int dropped;            /* 1: was root, now `user` */
    int no_new_privs;       /* 1: PR_SET_NO_NEW_PRIVS is set */
    int landlock_abi;       /* > 0: the Landlock ABI enforced; 0: not available here */
    char landlock_why[128]; /* why Landlock is not in force (when landlock_abi is 0) */
};

/* Narrow the calling process for good; call it in a child, single-threaded, before anything
 * reads network data. As root: supplementary groups dropped, gid/uid set to `user` (NULL:
 * CAS_SANDBOX_USER, falling back to CAS_SANDBOX_FALLBACK_USER), and a way back to root checked to
 * fail. Always: no new privileges, not dumpable, and — where the kernel has Landlock — no write,
 * create, remove or rename anywhere except beneath `writable_dir` (NULL: nowhere). A kernel
 * without Landlock is not a failure (status says why); anything else is, and the caller must not
 * go on (0x80070525 when neither account exists, 0x80070005 when the drop does not hold). */
cas_hr cas_sandbox_enter(const char *user, const char *writable_dir,
                         struct cas_sandbox_status *status);

/* One line for the log: "runs as nobody (uid 65534), no new privileges, Landlock ABI 7: no
 * writes outside <dir>". */
void cas_sandbox_describe(const struct cas_sandbox_status *st, const char *writable_dir, char *buf,
                          size_t size);

/* In a forked child, before anything else: stdin, stdout and stderr to /dev/null, `keep` renumbered
 * to 3 and every other descriptor above 2 closed (no log, lock, cache or state file stays open).
 * Returns 3, or -1. */
int cas_sandbox_child_fds(int keep);

/* Run fn(in, in_len, out, out_size) in a forked child that entered the sandbox with no writable
 * folder and return what it wrote to `out` (at most out_size - 1 bytes, NUL-terminated). For
 * reading a hint out of an unauthenticated document without parsing it as root: the answer is
 * only a hint (the child may be compromised by what it parsed), so callers use it to choose a key
 * and must verify before they trust anything. fn returns 0 on success; its failure, a crash or a
 * sandbox that cannot be entered all give CAS_E_FAIL-class errors with a detail. */
cas_hr cas_sandbox_call(int (*fn)(const char *in, size_t in_len, char *out, size_t out_size),
                        const char *in, size_t in_len, char *out, size_t out_size);

/* Replace control characters (and DEL) in text a sandboxed child sent by '?', so it can reach a
 * log or a terminal. */
void cas_sandbox_clean(char *s);

/* Ask a question of an unauthenticated document in the sandbox: fn runs in a child entered as
 * for cas_sandbox_call and either fills `answer` (CAS_OK) or fails; its failure comes back as the
 * same code with its detail (control characters replaced). The answer is a hint, as above. */
cas_hr cas_sandbox_ask(cas_hr (*fn)(const char *in, size_t in_len, char *answer, size_t size),
                       const char *in, size_t in_len, char *answer, size_t size);

#endif
