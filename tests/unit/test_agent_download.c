/* The download job against an injected transfer (no network): the order of requests, the byte
 * budget, failover, and what reaches the cache. Real HTTP is covered by tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/download.h"
#include "common/fsutil.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/sums.h"
#include "common/timefmt.h"

/* A distribution point in memory: URL suffix -> body. "dead" locations refuse connections. */
struct fake_obj {
    const char *path; /* after the location base, e.g. "/CEN00002.2.sums" */
    const char *body;
    size_t len;
    int endless; /* send this body forever */
};

struct fake_loc {
    const char *base;
    int dead;
    struct fake_obj objs[8];
};

struct fake_done {
    void *tag;
    cas_hr hr;
    struct cas_transfer_result res;
};

struct fake {
    struct cas_transfer base;
    struct fake_loc locs[3];
    char requests[64][256];
    size_t n_requests;
    uint64_t bytes_delivered;
    double clock_step;         /* seconds the monotonic clock moves on at each request */
    struct fake_done done[64]; /* completions not yet reported by wait() */
    size_t n_done;
};

static double fake_mono = 1000.0;

static double fake_mono_now(void)
{
    return fake_mono;
}

/* Serve one request synchronously, as a server would over time. */
static cas_hr fake_serve(struct fake *f, const struct cas_transfer_request *req,
                         struct cas_transfer_result *res)
{
    memset(res, 0, sizeof(*res));
    res->retry_after = -1;
    snprintf(f->requests[f->n_requests++ % 64], 256, "%s", req->url);
    fake_mono += f->clock_step;
    for (size_t i = 0; i < 3; i++) {
        struct fake_loc *l = &f->locs[i];
        size_t bl = l->base ? strlen(l->base) : 0;
        if (!l->base || strncmp(req->url, l->base, bl) != 0)
            continue;
        if (l->dead) {
            res->hard = 1;
            return cas_fail(CAS_E_CANNOT_CONNECT, "%s: connection refused", req->url);
        }
        for (size_t k = 0; k < 8 && l->objs[k].path; k++) {
            const struct fake_obj *o = &l->objs[k];
            if (strcmp(req->url + bl, o->path) != 0)
                continue;
            res->http_status = 200;
            struct cas_transfer_response resp = {.status = 200, .etag = "\"v1\""};
            if (req->on_response) {
                cas_hr hr = req->on_response(req->ud, &resp);
                if (hr != CAS_OK)
                    return hr;
            }
            for (int rounds = 0; rounds < (o->endless ? 1 << 20 : 1); rounds++) {
                if (res->bytes + o->len > req->max_bytes)
                    return cas_fail(CAS_E_TOO_LARGE, "%s: too large", req->url);
                cas_hr hr = req->on_data(req->ud, o->body, o->len);
                if (hr != CAS_OK)
                    return hr;
                res->bytes += o->len;
                f->bytes_delivered += o->len;
            }
            return CAS_OK;
        }
        res->http_status = 404;
        return cas_fail(CAS_E_HTTP_404, "%s: HTTP status 404", req->url);
    }
    res->hard = 1;
    return cas_fail(CAS_E_NAME_NOT_RESOLV, "%s: unknown host", req->url);
}

static cas_hr fake_submit(struct cas_transfer *t, const struct cas_transfer_request *req, void *tag)
{
    struct fake *f = (struct fake *)t;
    struct fake_done *d = &f->done[f->n_done++];
    d->tag = tag;
    d->hr = fake_serve(f, req, &d->res);
    snprintf(d->res.detail, sizeof(d->res.detail), "%s", d->hr ? cas_err_detail() : "");
    return CAS_OK;
}

static int fake_wait(struct cas_transfer *t, int timeout_ms, void **tag, cas_hr *hr,
                     struct cas_transfer_result *res)
{
    struct fake *f = (struct fake *)t;
    (void)timeout_ms;
    if (f->n_done == 0)
        return 0;
    *tag = f->done[0].tag;
    *hr = f->done[0].hr;
    *res = f->done[0].res;
    memmove(&f->done[0], &f->done[1], --f->n_done * sizeof(f->done[0]));
    return 1;
}

static void fake_cancel_all(struct cas_transfer *t)
{
    ((struct fake *)t)->n_done = 0;
}

static void fake_destroy(struct cas_transfer *t)
{
    (void)t;
}

/* Package: a.txt = "alpha\n", b/c.txt = "gamma\n". */
static const char A_TXT[] = "alpha\n";
static const char C_TXT[] = "gamma\n";

struct env {
    char dir[64];
    struct cas_agent agent;
    struct fake fake;
    struct cas_advert ad;
    char *locations[3];
    char listing[512];
    char pkg_hash[CAS_HASH_MAX_HEX + 1];
};

static void make_listing(struct env *e)
{
    char ha[CAS_HASH_MAX_HEX + 1], hc[CAS_HASH_MAX_HEX + 1];
    cas_hash_buf_hex(CAS_HASH_SHA256, A_TXT, strlen(A_TXT), ha);
    cas_hash_buf_hex(CAS_HASH_SHA256, C_TXT, strlen(C_TXT), hc);
    snprintf(e->listing, sizeof(e->listing), "%s  a.txt\n%s  b/c.txt\n", ha, hc);
    cas_hash_buf_hex(CAS_HASH_SHA256, e->listing, strlen(e->listing), e->pkg_hash);
}

static void good_objs(struct env *e, struct fake_obj *objs)
{
    objs[0] = (struct fake_obj){"/CEN00002.2.sums", e->listing, strlen(e->listing), 0};
    objs[1] = (struct fake_obj){"/CEN00002.2/a.txt", A_TXT, strlen(A_TXT), 0};
    objs[2] = (struct fake_obj){"/CEN00002.2/b/c.txt", C_TXT, strlen(C_TXT), 0};
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/cas-test-dl-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    cas_config_defaults(&e->agent.cfg);
    free(e->agent.cfg.cache_dir);
    e->agent.cfg.cache_dir = cas_path_join(e->dir, "cache");
    struct cas_log_settings ls = {NULL, 0, 0, 250000, 1, 0};
    cas_log_init(&ls);
    e->fake.base.submit = fake_submit;
    e->fake.base.wait = fake_wait;
    e->fake.base.cancel_all = fake_cancel_all;
    e->fake.base.destroy = fake_destroy;
    e->agent.transfer = &e->fake.base;
    e->agent.runner = &cas_runner_default;
    make_listing(e);
    e->locations[0] = "fake://dp1";
    e->locations[1] = "fake://dp2";
    e->fake.locs[0].base = "fake://dp1";
    e->fake.locs[1].base = "fake://dp2";
    e->ad.id = "CEN20001";
    strcpy(e->ad.package, "CEN00002");
    e->ad.version = 2;
    strcpy(e->ad.content_id, "CEN00002.2");
    e->ad.alg = CAS_HASH_SHA256;
    snprintf(e->ad.hash, sizeof(e->ad.hash), "%s", e->pkg_hash);
    e->ad.size = strlen(A_TXT) + strlen(C_TXT);
    e->ad.locations = e->locations;
    e->ad.n_locations = 2;
    e->ad.program.command = "a.txt";
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    e->agent.transfer = NULL;
    cas_fs_remove_tree(e->dir);
    cas_agent_free(&e->agent);
    free(e);
    return 0;
}

static int cached(struct env *e)
{
    struct cache *c = NULL;
    assert_int_equal(cas_agent_cache(&e->agent, &c), CAS_OK);
    return cache_has(c, "CEN00002.2");
}

static void test_good_download_commits(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_true(cached(e));
    /* Listing first, then the files, all from the first location. */
    assert_int_equal(e->fake.n_requests, 3);
    assert_string_equal(e->fake.requests[0], "fake://dp1/CEN00002.2.sums");
    assert_string_equal(e->fake.requests[1], "fake://dp1/CEN00002.2/a.txt");
    assert_string_equal(e->fake.requests[2], "fake://dp1/CEN00002.2/b/c.txt");
    /* A second request is served from the cache after re-verification: no transfer. */
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_int_equal(e->fake.n_requests, 3);
}

static void test_listing_mismatch_fetches_no_file(void **state)
{
    struct env *e = *state;
    char altered[600];
    snprintf(altered, sizeof(altered), "%sextra", e->listing);
    e->fake.locs[0].objs[0] = (struct fake_obj){"/CEN00002.2.sums", altered, strlen(altered), 0};
    e->ad.n_locations = 1;
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_E_HASH_MISMATCH);
    assert_int_equal(e->fake.n_requests, 1);
    assert_false(cached(e));
}

static void test_dead_location_fails_over_and_is_dropped(void **state)
{
    struct env *e = *state;
    e->fake.locs[0].dead = 1;
    good_objs(e, e->fake.locs[1].objs);
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_true(cached(e));
    /* dp1 is asked once (connection refused, a hard error) and never again in this job. */
    size_t dp1 = 0;
    for (size_t i = 0; i < e->fake.n_requests; i++)
        dp1 += strncmp(e->fake.requests[i], "fake://dp1", 10) == 0;
    assert_int_equal(dp1, 1);
    assert_int_equal(e->fake.n_requests, 4);
}

static void test_bad_file_first_location_good_second(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    good_objs(e, e->fake.locs[1].objs);
    e->fake.locs[0].objs[2] = (struct fake_obj){"/CEN00002.2/b/c.txt", "GAMMA\n", 6, 0};
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_true(cached(e));
    assert_string_equal(e->fake.requests[3], "fake://dp2/CEN00002.2/b/c.txt");
}

/* A bad mirror first that tampers every file and moves bytes between them (the total still the
 * policy's size): when a.txt's good copy arrives, the bad b/c.txt is still in flight and, with
 * a.txt's bad copy, already takes the whole size. The good mirror must still win: a location's
 * bytes count only against that location (with the verified files). */
static void test_bad_mirror_bytes_do_not_count_against_good(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    good_objs(e, e->fake.locs[1].objs);
    e->fake.locs[0].objs[1] = (struct fake_obj){"/CEN00002.2/a.txt", "EVIL", 4, 0};
    e->fake.locs[0].objs[2] = (struct fake_obj){"/CEN00002.2/b/c.txt", "EVILEVIL", 8, 0};
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_true(cached(e));
    assert_int_equal(e->fake.n_requests, 5);
    assert_string_equal(e->fake.requests[3], "fake://dp2/CEN00002.2/a.txt");
    assert_string_equal(e->fake.requests[4], "fake://dp2/CEN00002.2/b/c.txt");
    char *path = cas_path_join(e->dir, "cache/CEN00002.2/a.txt"), *body = NULL;
    size_t len = 0;
    assert_int_equal(cas_fs_read_file(path, 64, &body, &len), CAS_OK);
    assert_int_equal(len, strlen(A_TXT));
    assert_memory_equal(body, A_TXT, len);
    free(body);
    free(path);
}

/* The bad mirror's file never ends: it is cut at the size there, and the good mirror's copy,
 * which fits, is taken. */
static void test_endless_at_one_location_good_at_next(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    good_objs(e, e->fake.locs[1].objs);
    e->fake.locs[0].objs[1] = (struct fake_obj){"/CEN00002.2/a.txt", "zzzz", 4, 1};
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_OK);
    assert_true(cached(e));
    /* Never more from one location than the size (the listing is bounded separately). */
    assert_true(e->fake.bytes_delivered <= 2 * strlen(e->listing) + 2 * e->ad.size);
}

static void test_bad_file_everywhere_is_hash_mismatch(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    e->fake.locs[0].objs[1] = (struct fake_obj){"/CEN00002.2/a.txt", "ALPHA\n", 6, 0};
    e->ad.n_locations = 1;
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_E_HASH_MISMATCH);
    assert_false(cached(e));
    /* b/c.txt was still fetched so that the actual package hash could be computed. */
    assert_int_equal(e->fake.n_requests, 3);
}

static void test_endless_file_is_cut_at_size(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    e->fake.locs[0].objs[1] = (struct fake_obj){"/CEN00002.2/a.txt", "zzzz", 4, 1};
    e->ad.n_locations = 1;
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_E_TOO_LARGE);
    assert_false(cached(e));
    /* Never more file bytes than the policy's size (the listing is bounded separately). */
    assert_true(e->fake.bytes_delivered - strlen(e->listing) <= e->ad.size);
}

static void test_missing_everywhere_is_404(void **state)
{
    struct env *e = *state;
    e->fake.locs[0].objs[0] =
        (struct fake_obj){"/CEN00002.2.sums", e->listing, strlen(e->listing), 0};
    e->fake.locs[1].objs[0] = e->fake.locs[0].objs[0];
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_E_HTTP_404);
    assert_false(cached(e));
}

static void test_all_dead_is_no_location(void **state)
{
    struct env *e = *state;
    e->fake.locs[0].dead = 1;
    e->fake.locs[1].dead = 1;
    assert_int_equal(cas_download_content(&e->agent, &e->ad, "System"), CAS_E_NO_LOCATION);
    assert_false(cached(e));
}

/* transfer_deadline_minutes bounds the job: here every request takes two (fake) minutes, so the
 * one-minute deadline passes while the first file is in flight and the job ends at once. */
static void test_deadline_ends_the_job(void **state)
{
    struct env *e = *state;
    good_objs(e, e->fake.locs[0].objs);
    e->agent.cfg.transfer_deadline_minutes = 1;
    e->agent.cfg.max_parallel_transfers = 1;
    e->fake.clock_step = 120.0;
    cas_mono_set(fake_mono_now);
    cas_hr hr = cas_download_content(&e->agent, &e->ad, "System");
    cas_mono_set(NULL);
    assert_int_equal(hr, CAS_E_TIMEOUT);
    assert_non_null(strstr(cas_err_detail(), "transfer_deadline_minutes"));
    assert_false(cached(e));
    assert_true(e->fake.n_requests <= 2); /* the listing, and at most the file in flight */
}

static void test_context_sid(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(cas_context_sid("System", buf, sizeof(buf)), CAS_OK);
    assert_string_equal(buf, "System");
    assert_int_equal(cas_context_sid("user:root", buf, sizeof(buf)), CAS_OK);
    assert_string_equal(buf, "S-1-22-1-0");
    assert_int_equal(cas_context_sid("user:no-such-user-here", buf, sizeof(buf)),
                     CAS_E_NO_SUCH_USER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_download_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing_mismatch_fetches_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_location_fails_over_and_is_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_first_location_good_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mirror_bytes_do_not_count_against_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_endless_at_one_location_good_at_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_everywhere_is_hash_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endless_file_is_cut_at_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_ends_the_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_everywhere_is_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_dead_is_no_location, setup, teardown),
        cmocka_unit_test(test_context_sid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
