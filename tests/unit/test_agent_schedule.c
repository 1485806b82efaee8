/* The service's pure decisions: when a mandatory, available, retrying or already-run
 * advertisement runs (schedule.h), and what a program's exit status means (exitcode.h). Every
 * rule is driven by a hand-built advertisement, history record and time, so no clock or file is
 * involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/exitcode.h"
#include "agent/history.h"
#include "agent/schedule.h"
#include "common/config.h"

/* 2026-11-23T07:00:00Z, the contract's example start. */
#define NOW ((time_t)1795417200)

static const char fp_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char fp_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static struct cas_advert mk_ad(int mandatory, time_t start, enum cas_rerun rerun)
{
    struct cas_advert ad;
    memset(&ad, 0, sizeof(ad));
    ad.mandatory = mandatory;
    ad.start = start;
    ad.rerun = rerun;
    return ad;
}

/* A record of the advertisement as it last ran with fingerprint `fp`. */
static struct cas_history_rec mk_rec(enum cas_run_state state, const char *fp, unsigned runs)
{
    struct cas_history_rec r;
    memset(&r, 0, sizeof(r));
    strcpy(r.id, "CEN20001");
    snprintf(r.fingerprint, sizeof(r.fingerprint), "%s", fp);
    r.state = state;
    r.runs = runs;
    return r;
}

static enum cas_due decide(const struct cas_advert *ad, const struct cas_history_rec *rec,
                           time_t *wake)
{
    return cas_schedule_decide(ad, fp_a, rec, NOW, wake);
}

/* ---- first run ---- */

static void test_never_seen_mandatory_due_runs(void **state)
{
    (void)state;
    for (enum cas_rerun rr = CAS_RERUN_NEVER; rr <= CAS_RERUN_ALWAYS; rr++) {
        struct cas_advert ad = mk_ad(1, NOW - 3600, rr);
        time_t wake = 0;
        assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_RUN);
        assert_int_equal(wake, 0); /* nothing ahead: left unset */
        wake = NOW + 60;
        assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_RUN);
        assert_int_equal(wake, NOW + 60);
    }
}

static void test_start_exactly_now_runs(void **state)
{
    (void)state;
    struct cas_advert ad = mk_ad(1, NOW, CAS_RERUN_IF_FAILED);
    time_t wake = 0;
    assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_RUN);
    assert_int_equal(wake, 0);
}

static void test_future_start_predownloads_and_lowers_wake(void **state)
{
    (void)state;
    struct cas_advert ad = mk_ad(1, NOW + 600, CAS_RERUN_NEVER);
    time_t wake = 0; /* unset: set to start */
    assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 600);

    wake = NOW + 7200; /* later than start: lowered */
    assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 600);

    wake = NOW + 60; /* already earlier: not raised */
    assert_int_equal(decide(&ad, NULL, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 60);
}

static void test_content_failed_before_any_run_runs(void **state)
{
    (void)state;
    /* A record with runs == 0: the content failed, the program never started. Every rerun
     * setting still owes the first run, whatever fingerprint the record holds. */
    for (enum cas_rerun rr = CAS_RERUN_NEVER; rr <= CAS_RERUN_ALWAYS; rr++) {
        struct cas_advert ad = mk_ad(1, NOW - 1, rr);
        struct cas_history_rec rec = mk_rec(CAS_RUN_NONE, "", 0);
        rec.content_hr = CAS_E_HASH_MISMATCH;
        time_t wake = 0;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_RUN);
        assert_int_equal(wake, 0);

        struct cas_history_rec other = mk_rec(CAS_RUN_NONE, fp_b, 0);
        other.content_hr = CAS_E_NO_LOCATION;
        assert_int_equal(decide(&ad, &other, &wake), CAS_DUE_RUN);

        /* Start still ahead: the content is fetched early instead. */
        struct cas_advert later = mk_ad(1, NOW + 30, rr);
        assert_int_equal(decide(&later, &rec, &wake), CAS_DUE_PREDOWNLOAD);
        assert_int_equal(wake, NOW + 30);
    }
}

/* ---- available advertisements ---- */

static void test_available_never_runs_by_itself(void **state)
{
    (void)state;
    const enum cas_run_state states[] = {CAS_RUN_NONE, CAS_RUN_SUCCEEDED, CAS_RUN_FAILED};
    for (enum cas_rerun rr = CAS_RERUN_NEVER; rr <= CAS_RERUN_ALWAYS; rr++) {
        struct cas_advert past = mk_ad(0, NOW - 3600, rr);
        struct cas_advert future = mk_ad(0, NOW + 3600, rr);
        time_t wake = 0;
        assert_int_equal(decide(&past, NULL, &wake), CAS_DUE_NOTHING);
        /* Nothing is ahead for an advert that only runs on request. */
        assert_int_equal(decide(&future, NULL, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, 0);
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
            struct cas_history_rec same = mk_rec(states[i], fp_a, 1);
            struct cas_history_rec changed = mk_rec(states[i], fp_b, 1);
            struct cas_history_rec unrun = mk_rec(states[i], "", 0);
            assert_int_equal(decide(&past, &same, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&past, &changed, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&past, &unrun, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&future, &changed, &wake), CAS_DUE_NOTHING);
        }
        assert_int_equal(wake, 0);
    }
}

static void test_available_retrying_retries_when_due(void **state)
{
    (void)state;
    for (enum cas_rerun rr = CAS_RERUN_NEVER; rr <= CAS_RERUN_ALWAYS; rr++) {
        struct cas_advert ad = mk_ad(0, NOW - 3600, rr);
        struct cas_history_rec rec = mk_rec(CAS_RUN_RETRYING, fp_a, 1);
        time_t wake = 0;

        rec.next_retry = NOW - 1;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_RETRY);
        rec.next_retry = NOW;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_RETRY);
        assert_int_equal(wake, 0);

        rec.next_retry = NOW + 300;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, NOW + 300);
    }
}

/* ---- a run in progress ---- */

static void test_running_record_does_not_run_again(void **state)
{
    (void)state;
    for (enum cas_rerun rr = CAS_RERUN_NEVER; rr <= CAS_RERUN_ALWAYS; rr++) {
        for (int mandatory = 0; mandatory <= 1; mandatory++) {
            struct cas_advert ad = mk_ad(mandatory, NOW - 3600, rr);
            struct cas_advert ahead = mk_ad(mandatory, NOW + 3600, rr);
            struct cas_history_rec same = mk_rec(CAS_RUN_RUNNING, fp_a, 1);
            struct cas_history_rec changed = mk_rec(CAS_RUN_RUNNING, fp_b, 3);
            struct cas_history_rec first = mk_rec(CAS_RUN_RUNNING, fp_a, 0);
            same.next_retry = NOW - 10;
            time_t wake = 0;
            assert_int_equal(decide(&ad, &same, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&ad, &changed, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&ad, &first, &wake), CAS_DUE_NOTHING);
            assert_int_equal(decide(&ahead, &changed, &wake), CAS_DUE_NOTHING);
            assert_int_equal(wake, 0);
        }
    }
}

/* ---- rerun: never ---- */

static void test_rerun_never_after_a_run(void **state)
{
    (void)state;
    const enum cas_run_state states[] = {CAS_RUN_NONE, CAS_RUN_SUCCEEDED, CAS_RUN_FAILED};
    struct cas_advert ad = mk_ad(1, NOW - 3600, CAS_RERUN_NEVER);
    struct cas_advert ahead = mk_ad(1, NOW + 3600, CAS_RERUN_NEVER);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct cas_history_rec same = mk_rec(states[i], fp_a, 1);
        struct cas_history_rec changed = mk_rec(states[i], fp_b, 1);
        struct cas_history_rec many = mk_rec(states[i], fp_b, 7);
        time_t wake = 0;
        assert_int_equal(decide(&ad, &same, &wake), CAS_DUE_NOTHING);
        assert_int_equal(decide(&ad, &changed, &wake), CAS_DUE_NOTHING);
        assert_int_equal(decide(&ad, &many, &wake), CAS_DUE_NOTHING);
        /* Not even a pre-download: it will never run. */
        assert_int_equal(decide(&ahead, &changed, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, 0);
    }
}

/* ---- rerun: if_failed ---- */

static void test_rerun_if_failed(void **state)
{
    (void)state;
    struct cas_advert ad = mk_ad(1, NOW - 3600, CAS_RERUN_IF_FAILED);
    time_t wake = 0;

    struct cas_history_rec failed_same = mk_rec(CAS_RUN_FAILED, fp_a, 1);
    failed_same.hr = CAS_E_PROGRAM_FAILED;
    assert_int_equal(decide(&ad, &failed_same, &wake), CAS_DUE_NOTHING);

    struct cas_history_rec failed_changed = mk_rec(CAS_RUN_FAILED, fp_b, 1);
    failed_changed.hr = CAS_E_PROGRAM_FAILED;
    assert_int_equal(decide(&ad, &failed_changed, &wake), CAS_DUE_RUN);

    struct cas_history_rec ok_same = mk_rec(CAS_RUN_SUCCEEDED, fp_a, 1);
    assert_int_equal(decide(&ad, &ok_same, &wake), CAS_DUE_NOTHING);

    struct cas_history_rec ok_changed = mk_rec(CAS_RUN_SUCCEEDED, fp_b, 2);
    assert_int_equal(decide(&ad, &ok_changed, &wake), CAS_DUE_NOTHING);
    ok_changed.restart_required = 1; /* a success that wants a restart is still a success */
    assert_int_equal(decide(&ad, &ok_changed, &wake), CAS_DUE_NOTHING);
    assert_int_equal(wake, 0);

    /* Changed and failed, but the new start is still ahead: fetch now, run at start. */
    struct cas_advert ahead = mk_ad(1, NOW + 900, CAS_RERUN_IF_FAILED);
    assert_int_equal(decide(&ahead, &failed_changed, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 900);
    wake = NOW + 100;
    assert_int_equal(decide(&ahead, &failed_changed, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 100);
    /* Nothing owed: the start ahead does not wake the service. */
    wake = 0;
    assert_int_equal(decide(&ahead, &failed_same, &wake), CAS_DUE_NOTHING);
    assert_int_equal(decide(&ahead, &ok_changed, &wake), CAS_DUE_NOTHING);
    assert_int_equal(wake, 0);
}

/* ---- rerun: always ---- */

static void test_rerun_always(void **state)
{
    (void)state;
    const enum cas_run_state states[] = {CAS_RUN_NONE, CAS_RUN_SUCCEEDED, CAS_RUN_FAILED};
    struct cas_advert ad = mk_ad(1, NOW - 3600, CAS_RERUN_ALWAYS);
    struct cas_advert ahead = mk_ad(1, NOW + 120, CAS_RERUN_ALWAYS);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct cas_history_rec same = mk_rec(states[i], fp_a, 4);
        struct cas_history_rec changed = mk_rec(states[i], fp_b, 4);
        time_t wake = 0;
        assert_int_equal(decide(&ad, &same, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, 0);
        assert_int_equal(decide(&ad, &changed, &wake), CAS_DUE_RUN);
        assert_int_equal(wake, 0);
        assert_int_equal(decide(&ahead, &same, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, 0);
        assert_int_equal(decide(&ahead, &changed, &wake), CAS_DUE_PREDOWNLOAD);
        assert_int_equal(wake, NOW + 120);
    }
}

/* ---- retrying ---- */

static void test_retrying_waits_for_next_retry(void **state)
{
    (void)state;
    for (enum cas_rerun rr = CAS_RERUN_IF_FAILED; rr <= CAS_RERUN_ALWAYS; rr++) {
        struct cas_advert ad = mk_ad(1, NOW - 3600, rr);
        struct cas_history_rec rec = mk_rec(CAS_RUN_RETRYING, fp_a, 1);
        rec.next_retry = NOW + 600;

        time_t wake = 0;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, NOW + 600);
        wake = NOW + 5000;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, NOW + 600);
        wake = NOW + 10;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_NOTHING);
        assert_int_equal(wake, NOW + 10);

        rec.next_retry = NOW;
        wake = 0;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_RETRY);
        rec.next_retry = NOW - 3600;
        assert_int_equal(decide(&ad, &rec, &wake), CAS_DUE_RETRY);
        assert_int_equal(wake, 0);
    }
}

static void test_retrying_changed_follows_rerun(void **state)
{
    (void)state;
    /* Policy changed the advertisement while a retry was pending: the old retry is void and the
     * rerun setting decides, as for any changed advertisement whose last run did not succeed. */
    struct cas_history_rec rec = mk_rec(CAS_RUN_RETRYING, fp_b, 1);
    rec.next_retry = NOW + 600;
    time_t wake = 0;

    struct cas_advert if_failed = mk_ad(1, NOW - 3600, CAS_RERUN_IF_FAILED);
    assert_int_equal(decide(&if_failed, &rec, &wake), CAS_DUE_RUN);
    struct cas_advert always = mk_ad(1, NOW - 3600, CAS_RERUN_ALWAYS);
    assert_int_equal(decide(&always, &rec, &wake), CAS_DUE_RUN);
    struct cas_advert never = mk_ad(1, NOW - 3600, CAS_RERUN_NEVER);
    assert_int_equal(decide(&never, &rec, &wake), CAS_DUE_NOTHING);
    struct cas_advert available = mk_ad(0, NOW - 3600, CAS_RERUN_ALWAYS);
    assert_int_equal(decide(&available, &rec, &wake), CAS_DUE_NOTHING);
    /* The void retry time does not wake the service. */
    assert_int_equal(wake, 0);

    /* Even a passed retry time is void once the advertisement changed. */
    rec.next_retry = NOW - 1;
    assert_int_equal(decide(&never, &rec, &wake), CAS_DUE_NOTHING);
    assert_int_equal(decide(&available, &rec, &wake), CAS_DUE_NOTHING);

    struct cas_advert ahead = mk_ad(1, NOW + 1800, CAS_RERUN_IF_FAILED);
    assert_int_equal(decide(&ahead, &rec, &wake), CAS_DUE_PREDOWNLOAD);
    assert_int_equal(wake, NOW + 1800);
}

static void test_due_names(void **state)
{
    (void)state;
    assert_string_equal(cas_due_name(CAS_DUE_NOTHING), "nothing");
    assert_string_equal(cas_due_name(CAS_DUE_PREDOWNLOAD), "predownload");
    assert_string_equal(cas_due_name(CAS_DUE_RUN), "run");
    assert_string_equal(cas_due_name(CAS_DUE_RETRY), "retry");
}

/* ---- exit codes ---- */

struct prog_codes {
    struct cas_program prog;
    int64_t codes[4];
};

static void prog_with(struct prog_codes *p, const int64_t *codes, size_t n)
{
    memset(p, 0, sizeof(*p));
    if (n)
        memcpy(p->codes, codes, n * sizeof(codes[0]));
    p->prog.success_codes = p->codes;
    p->prog.n_success_codes = n;
}

static int cfg_setup(void **state)
{
    static struct cas_config cfg;
    if (cas_config_defaults(&cfg) != CAS_OK)
        return -1;
    *state = &cfg;
    return 0;
}

static int cfg_teardown(void **state)
{
    cas_config_free(*state);
    return 0;
}

static enum cas_exit_class classify(const int64_t *codes, size_t n, const struct cas_config *cfg,
                                    int status, int64_t *listed)
{
    struct prog_codes p;
    prog_with(&p, codes, n);
    *listed = -12345;
    return cas_exit_classify(&p.prog, cfg, status, listed);
}

static void test_exit_defaults(void **state)
{
    const struct cas_config *cfg = *state;
    const int64_t def[] = {0, 3010};
    int64_t listed;

    /* The configuration's default retry code. */
    assert_int_equal(cfg->n_retry_codes, 1);
    assert_int_equal(cfg->retry_codes[0], 1618);

    assert_int_equal(classify(def, 2, cfg, 0, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 0);
    assert_int_equal(classify(def, 2, cfg, 194, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 3010);
    assert_int_equal(classify(def, 2, cfg, 68, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 1604);
    assert_int_equal(classify(def, 2, cfg, 105, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 1641);
    assert_int_equal(classify(def, 2, cfg, 195, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 3011);
    assert_int_equal(classify(def, 2, cfg, 82, &listed), CAS_EXIT_RETRY);
    assert_int_equal(listed, 1618);
    assert_int_equal(classify(def, 2, cfg, 1, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 1);
    assert_int_equal(classify(def, 2, cfg, 255, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 255);
    assert_int_equal(classify(def, 2, cfg, 2, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 2);
}

static void test_exit_restart_codes_succeed_without_being_listed(void **state)
{
    const struct cas_config *cfg = *state;
    const int64_t zero[] = {0};
    const int64_t one[] = {1};
    int64_t listed;
    assert_int_equal(classify(zero, 1, cfg, 194, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 3010);
    assert_int_equal(classify(zero, 1, cfg, 195, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 3011);
    assert_int_equal(classify(zero, 1, cfg, 68, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 1604);
    assert_int_equal(classify(zero, 1, cfg, 105, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 1641);
    assert_int_equal(classify(zero, 1, cfg, 0, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 0);
    /* 0 is not a success when the program lists only 1. */
    assert_int_equal(classify(one, 1, cfg, 0, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 0);
    assert_int_equal(classify(one, 1, cfg, 1, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 1);
    /* No success codes at all: restart codes still succeed. */
    assert_int_equal(classify(NULL, 0, cfg, 194, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(classify(NULL, 0, cfg, 0, &listed), CAS_EXIT_FAILED);
}

static void test_exit_exact_beats_8bit(void **state)
{
    struct cas_config *cfg = *state;
    const int64_t c194[] = {194};
    const int64_t c68[] = {0, 68};
    int64_t listed;

    /* A listed 194 is itself, before it is 3010. */
    assert_int_equal(classify(c194, 1, cfg, 194, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 194);
    assert_int_equal(classify(c68, 2, cfg, 68, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 68);
    /* Other restart codes stay restart codes. */
    assert_int_equal(classify(c194, 1, cfg, 195, &listed), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(listed, 3011);

    /* Same for a retry code listed as its 8-bit value. */
    int64_t saved[CAS_CONFIG_MAX_CODES];
    size_t nsaved = cfg->n_retry_codes;
    memcpy(saved, cfg->retry_codes, sizeof(saved));
    cfg->retry_codes[0] = 1618;
    cfg->retry_codes[1] = 105;
    cfg->n_retry_codes = 2;
    const int64_t def[] = {0, 3010};
    assert_int_equal(classify(def, 2, cfg, 105, &listed), CAS_EXIT_RETRY);
    assert_int_equal(listed, 105);
    assert_int_equal(classify(def, 2, cfg, 82, &listed), CAS_EXIT_RETRY);
    assert_int_equal(listed, 1618);
    /* Without retry codes, 82 is a plain failure. */
    cfg->n_retry_codes = 0;
    assert_int_equal(classify(def, 2, cfg, 82, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 82);
    memcpy(cfg->retry_codes, saved, sizeof(saved));
    cfg->n_retry_codes = nsaved;
}

static void test_exit_listed_may_be_null(void **state)
{
    const struct cas_config *cfg = *state;
    struct prog_codes p;
    const int64_t def[] = {0, 3010};
    prog_with(&p, def, 2);
    assert_int_equal(cas_exit_classify(&p.prog, cfg, 194, NULL), CAS_EXIT_SUCCESS_RESTART);
    assert_int_equal(cas_exit_classify(&p.prog, cfg, 0, NULL), CAS_EXIT_SUCCESS);
    assert_int_equal(cas_exit_classify(&p.prog, cfg, 82, NULL), CAS_EXIT_RETRY);
    assert_int_equal(cas_exit_classify(&p.prog, cfg, 9, NULL), CAS_EXIT_FAILED);
}

static void test_exit_code_matches(void **state)
{
    (void)state;
    /* A code up to 255 matches only itself. */
    assert_true(cas_exit_code_matches(0, 0));
    assert_true(cas_exit_code_matches(194, 194));
    assert_true(cas_exit_code_matches(255, 255));
    assert_false(cas_exit_code_matches(1, 0));
    assert_false(cas_exit_code_matches(194, 195));
    /* Negative codes are "up to 255": -1 is not the 255 that `exit -1` gives. */
    assert_false(cas_exit_code_matches(-1, 255));
    assert_false(cas_exit_code_matches(-62, 194)); /* -62 & 0xFF == 194 */
    /* A code above 255 matches what `exit <code>` becomes. */
    assert_true(cas_exit_code_matches(3010, 194));
    assert_true(cas_exit_code_matches(3011, 195));
    assert_true(cas_exit_code_matches(1604, 68));
    assert_true(cas_exit_code_matches(1641, 105));
    assert_true(cas_exit_code_matches(1618, 82));
    assert_false(cas_exit_code_matches(3010, 195));
    assert_false(cas_exit_code_matches(3010, 0));
    /* 256 is the first code above 255: `exit 256` gives status 0, so it matches 0. */
    assert_true(cas_exit_code_matches(256, 0));
    assert_true(cas_exit_code_matches(512, 0));
    assert_true(cas_exit_code_matches(257, 1));
    assert_false(cas_exit_code_matches(256, 1));
    /* A large (Windows HRESULT-like) code still reduces to its low byte. */
    assert_true(cas_exit_code_matches(2147483647, 255));
    assert_true(cas_exit_code_matches(0x80070005LL, 5));
}

static void test_exit_code_above_255_in_success_codes(void **state)
{
    const struct cas_config *cfg = *state;
    const int64_t c256[] = {256};
    int64_t listed;
    assert_int_equal(classify(c256, 1, cfg, 0, &listed), CAS_EXIT_SUCCESS);
    assert_int_equal(listed, 256);
    assert_int_equal(classify(c256, 1, cfg, 1, &listed), CAS_EXIT_FAILED);
    assert_int_equal(listed, 1);
}

static void test_exit_class_names(void **state)
{
    (void)state;
    assert_string_equal(cas_exit_class_name(CAS_EXIT_SUCCESS), "Success");
    assert_string_equal(cas_exit_class_name(CAS_EXIT_SUCCESS_RESTART), "SuccessRebootRequired");
    assert_string_equal(cas_exit_class_name(CAS_EXIT_RETRY), "FailureRetry");
    assert_string_equal(cas_exit_class_name(CAS_EXIT_FAILED), "FailureNonRetry");
}

int main(void)
{
    const struct CMUnitTest schedule_tests[] = {
        cmocka_unit_test(test_never_seen_mandatory_due_runs),
        cmocka_unit_test(test_start_exactly_now_runs),
        cmocka_unit_test(test_future_start_predownloads_and_lowers_wake),
        cmocka_unit_test(test_content_failed_before_any_run_runs),
        cmocka_unit_test(test_available_never_runs_by_itself),
        cmocka_unit_test(test_available_retrying_retries_when_due),
        cmocka_unit_test(test_running_record_does_not_run_again),
        cmocka_unit_test(test_rerun_never_after_a_run),
        cmocka_unit_test(test_rerun_if_failed),
        cmocka_unit_test(test_rerun_always),
        cmocka_unit_test(test_retrying_waits_for_next_retry),
        cmocka_unit_test(test_retrying_changed_follows_rerun),
        cmocka_unit_test(test_due_names),
    };
    const struct CMUnitTest exit_tests[] = {
        cmocka_unit_test_setup_teardown(test_exit_defaults, cfg_setup, cfg_teardown),
        cmocka_unit_test_setup_teardown(test_exit_restart_codes_succeed_without_being_listed,
                                        cfg_setup, cfg_teardown),
        cmocka_unit_test_setup_teardown(test_exit_exact_beats_8bit, cfg_setup, cfg_teardown),
        cmocka_unit_test_setup_teardown(test_exit_listed_may_be_null, cfg_setup, cfg_teardown),
        cmocka_unit_test(test_exit_code_matches),
        cmocka_unit_test_setup_teardown(test_exit_code_above_255_in_success_codes, cfg_setup,
                                        cfg_teardown),
        cmocka_unit_test(test_exit_class_names),
    };
    int failed = cmocka_run_group_tests_name("schedule", schedule_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("exitcode", exit_tests, NULL, NULL);
    return failed;
}
