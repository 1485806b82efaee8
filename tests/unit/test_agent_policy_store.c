/* The policy store with an injected clock: a policy applied while valid stops being used once it
 * expires, the serial survives in state, and an unreadable state file refuses instead of
 * resetting the replay guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/policy_store.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/timefmt.h"

static time_t fake_now;
static time_t clock_fake(void)
{
    return fake_now;
}

struct env {
    char dir[64];
    char *keys, *policy;
    struct cas_agent agent;
};

static void write_text(const char *path, const char *text)
{
    assert_int_equal(cas_fs_write_atomic(path, text, strlen(text), 0644), CAS_OK);
}

static void make_key(struct env *e)
{
    char *priv = cas_path_join(e->dir, "CEN.key"), *pub = cas_path_join(e->keys, "CEN.pem");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    FILE *f = fopen(priv, "w");
    assert_non_null(f);
    assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    f = fopen(pub, "w");
    assert_non_null(f);
    assert_true(PEM_write_PUBKEY(f, k));
    fclose(f);
    EVP_PKEY_free(k);
    free(priv);
    free(pub);
}

/* Write a signed policy with this serial and expiry to e->policy (+ .sig). */
static void write_policy(struct env *e, int serial, const char *expires)
{
    char text[1024], *priv = cas_path_join(e->dir, "CEN.key"), sigpath[512];
    snprintf(text, sizeof(text),
             "{\"schema\":1,\"site\":\"CEN\",\"serial\":%d,\"issued\":\"2026-11-23T06:00:00Z\","
             "\"expires\":\"%s\",\"advertisements\":[{\"id\":\"CEN20001\",\"package\":\"CEN00002\","
             "\"version\":2,\"hash\":{\"alg\":\"sha256\",\"value\":\"%064d\"},\"size\":1,"
             "\"locations\":[\"http://dp.invalid/x\"],\"program\":{\"command\":\"run.sh\"}}]}",
             serial, expires, 0);
    write_text(e->policy, text);
    uint8_t *sig = NULL;
    size_t siglen = 0;
    assert_int_equal(cas_sig_sign_file(priv, text, strlen(text), &sig, &siglen), CAS_OK);
    snprintf(sigpath, sizeof(sigpath), "%s.sig", e->policy);
    assert_int_equal(cas_fs_write_atomic(sigpath, sig, siglen, 0644), CAS_OK);
    free(sig);
    free(priv);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/cas-test-store-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    e->keys = cas_path_join(e->dir, "keys");
    e->policy = cas_path_join(e->dir, "policy.json");
    cas_fs_mkdirs(e->keys, 0755);
    cas_config_defaults(&e->agent.cfg);
    free(e->agent.cfg.state_dir);
    free(e->agent.cfg.trusted_keys_dir);
    e->agent.cfg.state_dir = cas_path_join(e->dir, "state");
    e->agent.cfg.trusted_keys_dir = strdup(e->keys);
    struct cas_log_settings ls = {NULL, 0, 0, 250000, 1, 0};
    cas_log_init(&ls);
    make_key(e);
    cas_time_parse("2026-11-23T07:00:00Z", &fake_now);
    cas_clock_set(clock_fake);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    cas_clock_set(NULL);
    cas_fs_remove_tree(e->dir);
    cas_agent_free(&e->agent);
    free(e->keys);
    free(e->policy);
    free(e);
    return 0;
}

static void test_expired_after_apply_is_not_used(void **state)
{
    struct env *e = *state;
    struct cas_policy p = {0};
    const struct cas_advert *ad = NULL;
    write_policy(e, 5, "2026-11-24T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_OK);
    assert_int_equal(cas_policy_store_find(&e->agent, "CEN20001", 0, &p, &ad), CAS_OK);
    assert_string_equal(ad->content_id, "CEN00002.2");
    cas_policy_free(&p);
    /* One second before expiry it is still in force; at expiry it is not. */
    cas_time_parse("2026-11-24T05:59:59Z", &fake_now);
    assert_int_equal(cas_policy_store_find(&e->agent, "CEN00002.2", 1, &p, &ad), CAS_OK);
    cas_policy_free(&p);
    cas_time_parse("2026-11-24T06:00:00Z", &fake_now);
    memset(&p, 0, sizeof(p));
    assert_int_equal(cas_policy_store_find(&e->agent, "CEN20001", 0, &p, &ad),
                     CAS_E_POLICY_EXPIRED);
    assert_non_null(strstr(cas_err_detail(), "expired at 2026-11-24T06:00:00Z"));
    /* And a newer policy that is itself expired is refused at apply time. */
    write_policy(e, 6, "2026-11-24T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL),
                     CAS_E_POLICY_EXPIRED);
}

static void test_serial_survives_and_replay_is_refused(void **state)
{
    struct env *e = *state;
    write_policy(e, 5, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_OK);
    write_policy(e, 5, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_E_POLICY_REPLAY);
    write_policy(e, 4, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_E_POLICY_REPLAY);
    /* Deleting the stored policy does not lower the guard: the serial is in the state file. */
    char *stored = cas_path_join(e->agent.cfg.state_dir, "policy/CEN.json");
    unlink(stored);
    free(stored);
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_E_POLICY_REPLAY);
    write_policy(e, 6, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_OK);
}

static void test_unreadable_state_refuses(void **state)
{
    struct env *e = *state;
    write_policy(e, 5, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_OK);
    char *st = cas_path_join(e->agent.cfg.state_dir, "policy/CEN.state.json");
    write_text(st, "{\"serial\": \"garbage\"}");
    write_policy(e, 1, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_E_INVALID_DATA);
    /* Not even a higher serial gets through a state file that cannot be trusted. */
    write_policy(e, 99, "2026-11-30T06:00:00Z");
    assert_int_equal(cas_policy_store_apply(&e->agent, e->policy, NULL, NULL), CAS_E_INVALID_DATA);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expired_after_apply_is_not_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serial_survives_and_replay_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_state_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
