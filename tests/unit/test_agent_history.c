/* The advertisement history (history.h): every field survives history.json, records of
 * different advertisements stay apart, a damaged file is refused and never overwritten (that
 * would run `never` programs again), a record's owner is recognised by pid and start time, and
 * the fingerprint changes exactly when what runs or when it runs changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/history.h"
#include "common/fsutil.h"

struct env {
    char dir[64];
    char *path; /* <dir>/history.json */
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    snprintf(e->dir, sizeof(e->dir), "/tmp/cas-history-XXXXXX");
    if (!mkdtemp(e->dir) || asprintf(&e->path, "%s/%s", e->dir, CAS_HISTORY_FILE) < 0) {
        free(e);
        return -1;
    }
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    cas_fs_remove_tree(e->dir);
    free(e->path);
    free(e);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(cas_fs_write_atomic(path, text, strlen(text), 0644), CAS_OK);
}

/* ---- update callbacks ---- */

static void copy_rec(struct cas_history_rec *r, void *ud)
{
    const struct cas_history_rec *want = ud;
    char id[sizeof(r->id)];
    memcpy(id, r->id, sizeof(id));
    *r = *want;
    memcpy(r->id, id, sizeof(id));
}

struct seen {
    int calls;
    struct cas_history_rec rec;
};

static void note_rec(struct cas_history_rec *r, void *ud)
{
    struct seen *s = ud;
    s->calls++;
    s->rec = *r;
}

static void add_run(struct cas_history_rec *r, void *ud)
{
    (void)ud;
    r->runs++;
}

static void assert_rec_equal(const struct cas_history_rec *a, const struct cas_history_rec *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->fingerprint, b->fingerprint);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->restart_required, b->restart_required);
    assert_int_equal(a->has_exit, b->has_exit);
    if (a->has_exit)
        assert_int_equal(a->exit_code, b->exit_code);
    assert_int_equal(a->hr, b->hr);
    assert_int_equal(a->content_hr, b->content_hr);
    assert_int_equal(a->runs, b->runs);
    assert_int_equal(a->retries, b->retries);
    assert_int_equal(a->started, b->started);
    assert_int_equal(a->ended, b->ended);
    assert_int_equal(a->next_retry, b->next_retry);
    assert_int_equal(a->pid, b->pid);
    assert_int_equal(a->pid_start, b->pid_start);
    assert_int_equal(a->downloading, b->downloading);
}

static struct cas_history_rec full_rec(const char *id)
{
    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    memset(r.fingerprint, 'c', CAS_FINGERPRINT_HEX);
    r.fingerprint[0] = '0';
    r.fingerprint[CAS_FINGERPRINT_HEX - 1] = '9';
    r.state = CAS_RUN_RETRYING;
    r.restart_required = 1;
    r.has_exit = 1;
    r.exit_code = -1073741819; /* 0xC0000005 as a signed Windows exit code */
    r.hr = CAS_E_PROGRAM_RETRY;
    r.content_hr = CAS_E_HASH_MISMATCH;
    r.runs = 4000000000u;
    r.retries = 7;
    r.started = 1795417200;    /* 2026-11-23T07:00:00Z */
    r.ended = 1795417261;      /* a minute later */
    r.next_retry = 4102444799; /* 2099-12-31T23:59:59Z */
    r.pid = 2147483647;
    r.pid_start = 123456789012345ull; /* 15 digits: what cJSON prints exactly */
    r.downloading = 1;
    return r;
}

/* ---- load and update ---- */

static void test_missing_file_is_empty(void **state)
{
    struct env *e = *state;
    struct cas_history h = {(void *)1, 99};
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, 0);
    assert_null(cas_history_find(&h, "CEN20001"));
    cas_history_free(&h);

    /* A state folder that does not exist yet: the same. */
    char *sub = NULL;
    assert_true(asprintf(&sub, "%s/not-yet", e->dir) > 0);
    assert_int_equal(cas_history_load(sub, &h), CAS_OK);
    assert_int_equal(h.n, 0);
    cas_history_free(&h);
    free(sub);
}

static void test_update_creates_fresh_record(void **state)
{
    struct env *e = *state;
    struct seen s = {0};
    /* The update creates the state folder too. */
    char *sub = NULL;
    assert_true(asprintf(&sub, "%s/state/sub", e->dir) > 0);
    assert_int_equal(cas_history_update(sub, "CEN20001", note_rec, &s), CAS_OK);
    assert_int_equal(s.calls, 1);
    struct cas_history_rec zero;
    memset(&zero, 0, sizeof(zero));
    strcpy(zero.id, "CEN20001");
    assert_rec_equal(&s.rec, &zero);

    struct cas_history h;
    assert_int_equal(cas_history_load(sub, &h), CAS_OK);
    assert_int_equal(h.n, 1);
    struct cas_history_rec *r = cas_history_find(&h, "CEN20001");
    assert_non_null(r);
    assert_rec_equal(r, &zero);
    assert_int_equal(r->has_exit, 0);
    assert_null(cas_history_find(&h, "CEN2000"));
    assert_null(cas_history_find(&h, "CEN200011"));
    cas_history_free(&h);
    assert_null(h.recs);
    assert_int_equal(h.n, 0);
    free(sub);
}

static void test_round_trip_every_field(void **state)
{
    struct env *e = *state;
    struct cas_history_rec a = full_rec("CEN20001");
    assert_int_equal(cas_history_update(e->dir, a.id, copy_rec, &a), CAS_OK);

    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, 1);
    assert_non_null(cas_history_find(&h, a.id));
    assert_rec_equal(cas_history_find(&h, a.id), &a);
    cas_history_free(&h);

    /* The next update sees what the last one wrote. */
    struct seen s = {0};
    assert_int_equal(cas_history_update(e->dir, a.id, note_rec, &s), CAS_OK);
    assert_int_equal(s.calls, 1);
    assert_rec_equal(&s.rec, &a);
}

static void test_round_trip_each_state_and_exit(void **state)
{
    struct env *e = *state;
    const enum cas_run_state states[] = {CAS_RUN_NONE, CAS_RUN_RUNNING, CAS_RUN_SUCCEEDED,
                                         CAS_RUN_FAILED, CAS_RUN_RETRYING};
    const int64_t exits[] = {0, 1, 255, 3010, -1, -2147483648LL};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        for (size_t j = 0; j < sizeof(exits) / sizeof(exits[0]); j++) {
            struct cas_history_rec r;
            memset(&r, 0, sizeof(r));
            snprintf(r.id, sizeof(r.id), "ad.%zu-%zu", i, j);
            r.state = states[i];
            r.has_exit = 1;
            r.exit_code = exits[j];
            r.runs = (unsigned)j;
            assert_int_equal(cas_history_update(e->dir, r.id, copy_rec, &r), CAS_OK);
        }
    }
    /* A record without an exit code keeps has_exit 0 (an exit code 0 is not "no exit"). */
    struct cas_history_rec none;
    memset(&none, 0, sizeof(none));
    strcpy(none.id, "no-exit");
    none.state = CAS_RUN_FAILED;
    none.hr = CAS_E_PROGRAM_TIMEOUT;
    assert_int_equal(cas_history_update(e->dir, none.id, copy_rec, &none), CAS_OK);

    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, 5 * 6 + 1);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        for (size_t j = 0; j < sizeof(exits) / sizeof(exits[0]); j++) {
            char id[32];
            snprintf(id, sizeof(id), "ad.%zu-%zu", i, j);
            const struct cas_history_rec *r = cas_history_find(&h, id);
            assert_non_null(r);
            assert_int_equal(r->state, states[i]);
            assert_int_equal(r->has_exit, 1);
            assert_int_equal(r->exit_code, exits[j]);
            assert_int_equal(r->runs, j);
        }
    }
    const struct cas_history_rec *r = cas_history_find(&h, "no-exit");
    assert_non_null(r);
    assert_rec_equal(r, &none);
    cas_history_free(&h);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(cas_run_state_name(CAS_RUN_NONE), "None");
    assert_string_equal(cas_run_state_name(CAS_RUN_RUNNING), "Running");
    assert_string_equal(cas_run_state_name(CAS_RUN_SUCCEEDED), "Succeeded");
    assert_string_equal(cas_run_state_name(CAS_RUN_FAILED), "Failed");
    assert_string_equal(cas_run_state_name(CAS_RUN_RETRYING), "Retrying");
}

static void test_two_ids_kept_apart(void **state)
{
    struct env *e = *state;
    struct cas_history_rec a = full_rec("CEN20001");
    struct cas_history_rec b;
    memset(&b, 0, sizeof(b));
    strcpy(b.id, "CEN20002");
    memset(b.fingerprint, 'e', CAS_FINGERPRINT_HEX);
    b.state = CAS_RUN_SUCCEEDED;
    b.has_exit = 1;
    b.exit_code = 3010;
    b.restart_required = 1;
    b.runs = 1;
    b.started = 1795417200;
    b.ended = 1795417300;

    assert_int_equal(cas_history_update(e->dir, a.id, copy_rec, &a), CAS_OK);
    assert_int_equal(cas_history_update(e->dir, b.id, copy_rec, &b), CAS_OK);
    /* Updating one leaves the other as it was. */
    assert_int_equal(cas_history_update(e->dir, b.id, add_run, NULL), CAS_OK);
    b.runs++;

    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, 2);
    assert_non_null(cas_history_find(&h, a.id));
    assert_non_null(cas_history_find(&h, b.id));
    assert_rec_equal(cas_history_find(&h, a.id), &a);
    assert_rec_equal(cas_history_find(&h, b.id), &b);
    cas_history_free(&h);
}

/* Several processes updating at once: the lock keeps every increment of every record. */
static void test_concurrent_updates_lose_nothing(void **state)
{
    struct env *e = *state;
    enum { KIDS = 6, EACH = 15 };
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            char id[16];
            snprintf(id, sizeof(id), "kid%d", k);
            int bad = 0;
            for (int i = 0; i < EACH; i++) {
                bad |= cas_history_update(e->dir, id, add_run, NULL) != CAS_OK;
                bad |= cas_history_update(e->dir, "shared", add_run, NULL) != CAS_OK;
            }
            _exit(bad);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int status = -1;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, KIDS + 1);
    for (int k = 0; k < KIDS; k++) {
        char id[16];
        snprintf(id, sizeof(id), "kid%d", k);
        assert_non_null(cas_history_find(&h, id));
        assert_int_equal(cas_history_find(&h, id)->runs, EACH);
    }
    assert_non_null(cas_history_find(&h, "shared"));
    assert_int_equal(cas_history_find(&h, "shared")->runs, KIDS * EACH);
    cas_history_free(&h);
}

/* ---- damaged files ---- */

static void check_damaged(struct env *e, const char *text)
{
    struct cas_history h = {(void *)1, 99};
    write_text(e->path, text);
    print_message("damaged: %s\n", text);
    /* Freed before asserting, so a file wrongly accepted fails the test without a leak. */
    cas_hr hr = cas_history_load(e->dir, &h);
    size_t n = h.n;
    int had_recs = h.recs != NULL;
    cas_history_free(&h);
    assert_int_equal(hr, CAS_E_INVALID_DATA);
    assert_int_equal(n, 0);
    assert_false(had_recs);

    struct seen s = {0};
    assert_int_equal(cas_history_update(e->dir, "CEN20001", note_rec, &s), CAS_E_INVALID_DATA);
    assert_int_equal(s.calls, 0);
    /* Left byte for byte for a person to repair. */
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(cas_fs_read_file(e->path, 1u << 20, &buf, &len), CAS_OK);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(buf, text, len);
    free(buf);
}

#define GOOD_FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_damaged_files_refused(void **state)
{
    struct env *e = *state;
    /* Valid, so every damaged variant below differs from a loadable file by its damage. */
    write_text(e->path, "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Succeeded\","
                        "\"fingerprint\":\"" GOOD_FP "\",\"runs\":1,\"exit_code\":-5,"
                        "\"started\":\"2026-11-23T07:00:00Z\",\"error\":\"0x80091007\"}]}");
    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.recs[0].exit_code, -5);
    assert_int_equal(h.recs[0].hr, CAS_E_HASH_MISMATCH);
    cas_history_free(&h);

    static const char *const damaged[] = {
        "",
        "not json",
        "{\"adverts\":[",
        "{\"adverts\":[]}garbage",
        "[]",
        "{}",
        "{\"adverts\":null}",
        "{\"adverts\":{}}",
        "{\"adverts\":\"CEN20001\"}",
        "{\"adverts\":[1]}",
        "{\"adverts\":[[]]}",
        /* id */
        "{\"adverts\":[{\"state\":\"Failed\"}]}",
        "{\"adverts\":[{\"id\":7,\"state\":\"Failed\"}]}",
        // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): GOOD_FP spliced into one string
        "{\"adverts\":[{\"id\":\"" GOOD_FP "x\",\"state\":\"Failed\"}]}",
        /* duplicate ids */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Succeeded\",\"runs\":1},"
        "{\"id\":\"CEN20001\",\"state\":\"Failed\"}]}",
        "{\"adverts\":[{\"id\":\"a\",\"state\":\"None\"},{\"id\":\"b\",\"state\":\"None\"},"
        "{\"id\":\"a\",\"state\":\"None\"}]}",
        /* state */
        "{\"adverts\":[{\"id\":\"CEN20001\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Done\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"succeeded\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":2}]}",
        /* fingerprint */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"fingerprint\":5}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"fingerprint\":\"" GOOD_FP "0\"}]}",
        /* numbers */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"runs\":\"1\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"runs\":-1}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"runs\":4294967296}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"retries\":true}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"pid\":\"42\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"pid\":-1}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"pid\":1,\"pid_start\":\"9\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"exit_code\":\"0\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"exit_code\":1.5}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"exit_code\":null}]}",
        /* times */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"started\":1795417200}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"ended\":\"yesterday\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"next_retry\":\"2026-13-01T00:00:"
        "00Z\"}]}",
        /* error codes */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Failed\",\"error\":2147942413}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Failed\",\"error\":\"bad\"}]}",
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Failed\",\"content_error\":[]}]}",
        /* a good record does not excuse a bad one after it */
        "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Succeeded\",\"runs\":1},"
        "{\"id\":\"CEN20002\",\"state\":\"Finished\"}]}",
    };
    for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++)
        check_damaged(e, damaged[i]);
}

/* "Present with a wrong type is damage" holds for the flags too: a restart_required or
 * downloading that is not a boolean was not written by the agent. */
static void test_damaged_flag_types_refused(void **state)
{
    struct env *e = *state;
    check_damaged(e,
                  "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"Succeeded\",\"restart_required\":"
                  "\"yes\"}]}");
    check_damaged(e, "{\"adverts\":[{\"id\":\"CEN20001\",\"state\":\"None\",\"pid\":1,"
                     "\"pid_start\":1,\"downloading\":1}]}");
}

static void test_damaged_file_not_json_object_kept(void **state)
{
    struct env *e = *state;
    /* Binary junk, as a torn disk block would leave it. */
    const char junk[] = "\x7f"
                        "ELF\x01\x02\xff\xfe{\"adverts\":[]}";
    check_damaged(e, junk);
}

/* ---- ownership ---- */

/* Field 22 of /proc/self/stat (the start time), read independently of history.c. */
static unsigned long long self_start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    p += 2; /* field 3 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        assert_non_null(p);
        p++;
    }
    return strtoull(p, NULL, 10);
}

static void test_own_records_this_process(void **state)
{
    (void)state;
    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    assert_false(cas_history_owner_alive(&r)); /* pid 0: no owner */
    cas_history_own(&r);
    assert_int_equal(r.pid, getpid());
    /* The real start time, so a later process given the same pid is not taken for the owner. */
    assert_int_not_equal(self_start_time(), 0);
    assert_int_equal(r.pid_start, self_start_time());
    assert_true(cas_history_owner_alive(&r));
}

static void test_owner_with_other_start_time_is_not_alive(void **state)
{
    (void)state;
    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    cas_history_own(&r);
    assert_true(cas_history_owner_alive(&r));
    r.pid_start += 1;
    assert_false(cas_history_owner_alive(&r));
    r.pid_start = self_start_time() + 100;
    assert_false(cas_history_owner_alive(&r));
    /* A record naming this pid with an unknown (0) start time was not made by this process. */
    r.pid_start = 0;
    assert_false(cas_history_owner_alive(&r));
}

static void test_owner_dead_process_is_not_alive(void **state)
{
    (void)state;
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0)
        _exit(0);
    int status;
    assert_int_equal(waitpid(kid, &status, 0), kid);

    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    r.pid = kid;
    r.pid_start = 0;
    assert_false(cas_history_owner_alive(&r));
    r.pid_start = self_start_time();
    assert_false(cas_history_owner_alive(&r));
    r.pid = -1;
    assert_false(cas_history_owner_alive(&r));
}

static void test_owner_survives_the_file(void **state)
{
    struct env *e = *state;
    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    strcpy(r.id, "CEN20001");
    r.state = CAS_RUN_RUNNING;
    cas_history_own(&r);
    assert_int_equal(cas_history_update(e->dir, r.id, copy_rec, &r), CAS_OK);
    struct cas_history h;
    assert_int_equal(cas_history_load(e->dir, &h), CAS_OK);
    assert_non_null(cas_history_find(&h, r.id));
    assert_rec_equal(cas_history_find(&h, r.id), &r);
    assert_true(cas_history_owner_alive(cas_history_find(&h, r.id)));
    cas_history_free(&h);
}

/* ---- fingerprint ---- */

struct fp_ad {
    struct cas_advert ad;
    char id[16], cmd[32], ctx[32], a0[16], a1[16], a2[16], l0[64], l1[64];
    char *args[4];
    char *locs[2];
    int64_t codes[3];
};

static void fp_ad_init(struct fp_ad *f)
{
    memset(f, 0, sizeof(*f));
    strcpy(f->id, "CEN20001");
    strcpy(f->cmd, "install.sh");
    strcpy(f->ctx, "System");
    strcpy(f->a0, "--quiet");
    strcpy(f->a1, "--log");
    strcpy(f->a2, "/tmp/x");
    strcpy(f->l0, "http://dp1.example/SMS_DP_SMSPKG$");
    strcpy(f->l1, "https://dp2.example/pkg");
    f->args[0] = f->a0;
    f->args[1] = f->a1;
    f->args[2] = NULL;
    f->locs[0] = f->l0;
    f->locs[1] = f->l1;
    f->codes[0] = 0;
    f->codes[1] = 3010;

    struct cas_advert *ad = &f->ad;
    ad->id = f->id;
    strcpy(ad->package, "CEN00002");
    ad->version = 2;
    strcpy(ad->content_id, "CEN00002.2");
    ad->alg = CAS_HASH_SHA256;
    memset(ad->hash, 'a', 64);
    ad->hash[64] = '\0';
    ad->size = 123456;
    ad->locations = f->locs;
    ad->n_locations = 2;
    ad->program.command = f->cmd;
    ad->program.args = f->args;
    ad->program.argc = 2;
    ad->program.context = f->ctx;
    ad->program.max_run_minutes = 120;
    ad->program.success_codes = f->codes;
    ad->program.n_success_codes = 2;
    ad->mandatory = 1;
    ad->start = 1795417200;
    ad->rerun = CAS_RERUN_IF_FAILED;
}

static void fp_of(const struct fp_ad *f, char out[CAS_FINGERPRINT_HEX + 1])
{
    memset(out, 'Z', CAS_FINGERPRINT_HEX + 1);
    cas_advert_fingerprint(&f->ad, out);
}

static void test_fingerprint_stable(void **state)
{
    (void)state;
    struct fp_ad a, b;
    char fa[CAS_FINGERPRINT_HEX + 1], fb[CAS_FINGERPRINT_HEX + 1];
    fp_ad_init(&a);
    fp_ad_init(&b);
    fp_of(&a, fa);
    fp_of(&b, fb);
    assert_int_equal(strlen(fa), CAS_FINGERPRINT_HEX);
    for (size_t i = 0; i < CAS_FINGERPRINT_HEX; i++)
        assert_non_null(strchr("0123456789abcdef", fa[i]));
    assert_string_equal(fa, fb);
    fp_of(&a, fb);
    assert_string_equal(fa, fb);
}

enum fp_change {
    CH_PACKAGE,
    CH_VERSION,
    CH_HASH,
    CH_SIZE,
    CH_COMMAND,
    CH_ARG_VALUE,
    CH_ARG_ADDED,
    CH_ARG_REMOVED,
    CH_ARG_SPLIT,
    CH_ARG_INTO_COMMAND,
    CH_CONTEXT,
    CH_MAX_RUN,
    CH_CODE_VALUE,
    CH_CODE_ADDED,
    CH_CODE_REMOVED,
    CH_MANDATORY,
    CH_START,
    CH_RERUN_ALWAYS,
    CH_RERUN_NEVER,
    CH_COUNT
};

static void apply_change(struct fp_ad *f, enum fp_change c)
{
    struct cas_advert *ad = &f->ad;
    switch (c) {
    case CH_PACKAGE:
        strcpy(ad->package, "CEN00003");
        break;
    case CH_VERSION:
        ad->version = 3;
        break;
    case CH_HASH:
        ad->hash[63] = 'b';
        break;
    case CH_SIZE:
        ad->size = 123457;
        break;
    case CH_COMMAND:
        strcpy(f->cmd, "setup.sh");
        break;
    case CH_ARG_VALUE:
        strcpy(f->a1, "--logs");
        break;
    case CH_ARG_ADDED:
        f->args[2] = f->a2;
        f->args[3] = NULL;
        ad->program.argc = 3;
        break;
    case CH_ARG_REMOVED:
        f->args[1] = NULL;
        ad->program.argc = 1;
        break;
    case CH_ARG_SPLIT: /* "--quiet" "--log" -> "--quiet --log": same characters, other args */
        strcpy(f->a0, "--quiet --log");
        f->args[1] = NULL;
        ad->program.argc = 1;
        break;
    case CH_ARG_INTO_COMMAND: /* "install.sh" "--quiet" -> "install.sh--quiet" */
        strcpy(f->cmd, "install.sh--quiet");
        f->args[0] = f->a1;
        f->args[1] = NULL;
        ad->program.argc = 1;
        break;
    case CH_CONTEXT:
        strcpy(f->ctx, "user:alice");
        break;
    case CH_MAX_RUN:
        ad->program.max_run_minutes = 120.05;
        break;
    case CH_CODE_VALUE:
        f->codes[1] = 3011;
        break;
    case CH_CODE_ADDED:
        f->codes[2] = 1641;
        ad->program.n_success_codes = 3;
        break;
    case CH_CODE_REMOVED:
        ad->program.n_success_codes = 1;
        break;
    case CH_MANDATORY:
        ad->mandatory = 0;
        break;
    case CH_START:
        ad->start += 1;
        break;
    case CH_RERUN_ALWAYS:
        ad->rerun = CAS_RERUN_ALWAYS;
        break;
    case CH_RERUN_NEVER:
        ad->rerun = CAS_RERUN_NEVER;
        break;
    case CH_COUNT:
        break;
    }
}

static void test_fingerprint_changes_with_what_runs(void **state)
{
    (void)state;
    struct fp_ad base;
    char fbase[CAS_FINGERPRINT_HEX + 1];
    char seen[CH_COUNT][CAS_FINGERPRINT_HEX + 1];
    fp_ad_init(&base);
    fp_of(&base, fbase);
    for (int c = 0; c < CH_COUNT; c++) {
        struct fp_ad f;
        fp_ad_init(&f);
        apply_change(&f, (enum fp_change)c);
        fp_of(&f, seen[c]);
        print_message("change %d: %s\n", c, seen[c]);
        assert_string_not_equal(seen[c], fbase);
        /* And each change is told apart from every other one. */
        for (int d = 0; d < c; d++)
            assert_string_not_equal(seen[c], seen[d]);
    }
}

static void test_fingerprint_ignores_locations_and_id(void **state)
{
    (void)state;
    struct fp_ad base, f;
    char fbase[CAS_FINGERPRINT_HEX + 1], ff[CAS_FINGERPRINT_HEX + 1];
    fp_ad_init(&base);
    fp_of(&base, fbase);

    fp_ad_init(&f);
    strcpy(f.id, "CEN20009");
    fp_of(&f, ff);
    assert_string_equal(ff, fbase);

    fp_ad_init(&f);
    strcpy(f.l0, "https://elsewhere.example/pkg");
    fp_of(&f, ff);
    assert_string_equal(ff, fbase);

    fp_ad_init(&f);
    f.ad.n_locations = 1;
    fp_of(&f, ff);
    assert_string_equal(ff, fbase);

    fp_ad_init(&f);
    f.locs[0] = f.l1;
    f.locs[1] = f.l0;
    fp_of(&f, ff);
    assert_string_equal(ff, fbase);

    /* All at once. */
    fp_ad_init(&f);
    strcpy(f.id, "other.id");
    f.locs[0] = f.l1;
    f.ad.n_locations = 1;
    fp_of(&f, ff);
    assert_string_equal(ff, fbase);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_file_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_creates_fresh_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_each_state_and_exit, setup, teardown),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test_setup_teardown(test_two_ids_kept_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_updates_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_flag_types_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_file_not_json_object_kept, setup, teardown),
        cmocka_unit_test(test_own_records_this_process),
        cmocka_unit_test(test_owner_with_other_start_time_is_not_alive),
        cmocka_unit_test(test_owner_dead_process_is_not_alive),
        cmocka_unit_test_setup_teardown(test_owner_survives_the_file, setup, teardown),
        cmocka_unit_test(test_fingerprint_stable),
        cmocka_unit_test(test_fingerprint_changes_with_what_runs),
        cmocka_unit_test(test_fingerprint_ignores_locations_and_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
