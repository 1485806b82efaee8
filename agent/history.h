/* What the agent did with each advertisement, kept across restarts in <state_dir>/history.json.
 * A program is recorded as Running (with the agent's pid) and the record is on disk before the
 * program starts, so a crash can never make it run twice where `rerun` forbids it: the next
 * pass finds the record of a dead agent and marks the run interrupted. */
#ifndef CAS_AGENT_HISTORY_H
#define CAS_AGENT_HISTORY_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/error.h"
#include "common/policy.h"

#define CAS_HISTORY_FILE    "history.json"
#define CAS_FINGERPRINT_HEX 64

enum cas_run_state {
    CAS_RUN_NONE = 0,  /* never started (content may have failed) */
    CAS_RUN_RUNNING,   /* started by the agent process `pid` */
    CAS_RUN_SUCCEEDED, /* exit code a success (restart_required says if a restart is due) */
    CAS_RUN_FAILED,    /* exit code not a success, timeout, could not start, interrupted */
    CAS_RUN_RETRYING,  /* a retryable exit code: runs again at next_retry */
};

struct cas_history_rec {
    char id[65];
    char fingerprint[CAS_FINGERPRINT_HEX + 1]; /* of the advertisement as it last ran */
    enum cas_run_state state;
    int restart_required;
    int has_exit;
    int64_t exit_code; /* the program's exit status, when has_exit */
    cas_hr hr;         /* why the last run failed (0 when it succeeded) */
    cas_hr content_hr; /* the last failure to make the content present, 0 if none */
    unsigned runs;     /* times started, all versions of the advertisement */
    unsigned retries;  /* retries used for this fingerprint */
    time_t started, ended, next_retry;
    pid_t pid;                    /* the agent process running or downloading it, 0 if none */
    unsigned long long pid_start; /* that process's start time, so a reused pid is not taken */
    int downloading;              /* pid is downloading its content (not a run) */
};

struct cas_history {
    struct cas_history_rec *recs;
    size_t n;
};

/* Load the history. Missing: empty, CAS_OK. Damaged: CAS_E_INVALID_DATA (never "empty": that
 * would run `never` programs again). */
cas_hr cas_history_load(const char *state_dir, struct cas_history *h);
void cas_history_free(struct cas_history *h);

/* The record for `id`, or NULL. */
struct cas_history_rec *cas_history_find(struct cas_history *h, const char *id);

/* Load, let fn change the record for `id` (created empty if absent), write back atomically and
 * durably — all under an exclusive lock, so `execute` and the service never lose each other's
 * records. fn may be called with a fresh record (all zero but id). */
cas_hr cas_history_update(const char *state_dir, const char *id,
                          void (*fn)(struct cas_history_rec *r, void *ud), void *ud);

/* Mark this process as the owner of a record (pid and its start time). */
void cas_history_own(struct cas_history_rec *r);
/* 1 if the record's owner process is still alive (same pid, same start time). */
int cas_history_owner_alive(const struct cas_history_rec *r);

/* SHA-256 over every field of the advertisement that changes what runs or when: package,
 * version, hash, size, program (command, args, context, limit, success codes), mandatory, start,
 * rerun. `always` and `if_failed` compare it to decide whether policy changed the advert. */
void cas_advert_fingerprint(const struct cas_advert *ad, char out[CAS_FINGERPRINT_HEX + 1]);

const char *cas_run_state_name(enum cas_run_state s);

#endif
