/* Key changes from the management point, with an in-memory server: the document's URL next to
 * the policy, nothing published (404) is no change, a published change is accepted before the
 * policy request so a policy signed by the new key is applied in the same poll, the key-change
 * requests carry no validators and leave the policy's ETag alone, and without a configured site
 * every site with a trusted key is asked about. */
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
#include "agent/keychange_fetch.h"
#include "agent/policy_fetch.h"
#include "common/fsutil.h"
#include "common/keychange.h"
#include "common/log.h"
#include "common/sig.h"

#define MP "http://mp.test/SMS_MP/policy.json"

struct obj {
    char url[256];
    char *body;
    size_t len;
    long status; /* 0: 200 */
    const char *etag;
};

struct request {
    char url[256];
    uint64_t max_bytes;
    int conditional; /* sent If-None-Match or If-Modified-Since */
};

struct fake {
    struct cas_transfer base;
    struct obj objs[8];
    int n_objs;
    struct request req[32];
    int n_req;
    cas_hr hr;
    struct cas_transfer_result res;
    void *tag;
    int pending;
};

static cas_hr fake_serve(struct fake *f, const struct cas_transfer_request *rq,
                         struct cas_transfer_result *res)
{
    struct request *r = &f->req[f->n_req++ % 32];
    snprintf(r->url, sizeof(r->url), "%s", rq->url);
    r->max_bytes = rq->max_bytes;
    r->conditional = rq->if_none_match || rq->if_modified_since;
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < f->n_objs; i++) {
        struct obj *o = &f->objs[i];
        if (strcmp(o->url, rq->url) != 0)
            continue;
        if (o->status && o->status != 200) {
            res->http_status = o->status;
            snprintf(res->detail, sizeof(res->detail), "HTTP %ld from %s", o->status, rq->url);
            return CAS_E_HTTP_BASE + (cas_hr)o->status;
        }
        if (o->etag && rq->if_none_match && !strcmp(o->etag, rq->if_none_match)) {
            res->http_status = 304;
            return CAS_E_HTTP_BASE + 304;
        }
        res->http_status = 200;
        struct cas_transfer_response resp = {.status = 200, .etag = o->etag};
        if (rq->on_response && rq->on_response(rq->ud, &resp) != CAS_OK)
            return CAS_E_FAIL;
        if (o->len > rq->max_bytes) {
            snprintf(res->detail, sizeof(res->detail), "%s: too large", rq->url);
            return CAS_E_TOO_LARGE;
        }
        res->bytes = o->len;
        return rq->on_data(rq->ud, o->body, o->len);
    }
    res->http_status = 404;
    snprintf(res->detail, sizeof(res->detail), "HTTP 404 from %s", rq->url);
    return CAS_E_HTTP_404;
}

static cas_hr fake_submit(struct cas_transfer *t, const struct cas_transfer_request *req, void *tag)
{
    struct fake *f = (struct fake *)t;
    f->hr = fake_serve(f, req, &f->res);
    f->tag = tag;
    f->pending = 1;
    return CAS_OK;
}

static int fake_wait(struct cas_transfer *t, int timeout_ms, void **tag, cas_hr *hr,
                     struct cas_transfer_result *res)
{
    struct fake *f = (struct fake *)t;
    (void)timeout_ms;
    if (!f->pending)
        return 0;
    f->pending = 0;
    *tag = f->tag;
    *hr = f->hr;
    *res = f->res;
    return 1;
}

static void fake_cancel_all(struct cas_transfer *t)
{
    ((struct fake *)t)->pending = 0;
}

static void fake_destroy(struct cas_transfer *t)
{
    struct fake *f = (struct fake *)t;
    for (int i = 0; i < f->n_objs; i++)
        free(f->objs[i].body);
    f->n_objs = 0;
}

static void serve(struct fake *f, const char *url, const void *body, size_t len, long status,
                  const char *etag)
{
    struct obj *o = NULL;
    for (int i = 0; i < f->n_objs; i++) {
        if (!strcmp(f->objs[i].url, url))
            o = &f->objs[i];
    }
    if (!o) {
        assert_true(f->n_objs < 8);
        o = &f->objs[f->n_objs++];
    }
    free(o->body);
    snprintf(o->url, sizeof(o->url), "%s", url);
    o->body = malloc(len + 1);
    memcpy(o->body, body, len);
    o->len = len;
    o->status = status;
    o->etag = etag;
}

struct env {
    char dir[64];
    char *keys, *cen_pem;
    struct cas_agent agent;
    struct fake fake;
    EVP_PKEY *k1, *k2;
    char *pem1, *pem2;
    char id1[CAS_KEYID_HEX + 1], id2[CAS_KEYID_HEX + 1];
};

static char *pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PUBKEY(b, k));
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *pem = strndup(data, (size_t)n);
    BIO_free(b);
    return pem;
}

static void sign(EVP_PKEY *k, const char *data, size_t len, uint8_t **sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)data, len), 1);
    *sig = malloc(*siglen);
    assert_int_equal(EVP_DigestSign(ctx, *sig, siglen, (const unsigned char *)data, len), 1);
    EVP_MD_CTX_free(ctx);
}

/* Publish a document at url and its signature by `signer` at url + ".sig". */
static void publish_signed(struct env *e, const char *url, const char *doc, EVP_PKEY *signer,
                           const char *etag)
{
    uint8_t *sig = NULL;
    size_t siglen = 0;
    char sig_url[300];
    sign(signer, doc, strlen(doc), &sig, &siglen);
    serve(&e->fake, url, doc, strlen(doc), 0, etag);
    snprintf(sig_url, sizeof(sig_url), "%s.sig", url);
    serve(&e->fake, sig_url, sig, siglen, 0, NULL);
    free(sig);
}

static char *keychange_doc(const char *site, int serial, const char *pem, const char *id)
{
    char esc[4096], *doc = NULL;
    size_t o = 0;
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') {
            esc[o++] = '\\';
            esc[o++] = 'n';
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    assert_true(asprintf(&doc,
                         "{\"schema\":1,\"type\":\"keychange\",\"site\":\"%s\",\"serial\":%d,"
                         "\"issued\":\"2026-11-23T06:00:00Z\",\"key\":\"%s\",\"key_id\":\"%s\"}\n",
                         site, serial, esc, id) > 0);
    return doc;
}

static char *policy_doc(int serial)
{
    char *doc = NULL;
    assert_true(
        asprintf(&doc,
                 "{\"schema\":1,\"site\":\"CEN\",\"serial\":%d,\"issued\":\"2026-01-01T00:00:00Z\","
                 "\"advertisements\":[]}\n",
                 serial) > 0);
    return doc;
}

static char *read_text(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    if (cas_fs_read_file(path, 1 << 20, &buf, &len) != CAS_OK)
        return NULL;
    return buf;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/cas-test-kcfetch-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    e->keys = cas_path_join(e->dir, "keys");
    e->cen_pem = cas_path_join(e->keys, "CEN.pem");
    cas_fs_mkdirs(e->keys, 0755);
    cas_config_defaults(&e->agent.cfg);
    free(e->agent.cfg.state_dir);
    free(e->agent.cfg.trusted_keys_dir);
    e->agent.cfg.state_dir = cas_path_join(e->dir, "state");
    e->agent.cfg.trusted_keys_dir = strdup(e->keys);
    e->agent.cfg.management_point = strdup(MP);
    struct cas_log_settings ls = {NULL, 0, 0, 250000, 1, 0};
    cas_log_init(&ls);
    e->fake.base.submit = fake_submit;
    e->fake.base.wait = fake_wait;
    e->fake.base.cancel_all = fake_cancel_all;
    e->fake.base.destroy = fake_destroy;
    e->agent.transfer = &e->fake.base;
    e->k1 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    e->k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    e->pem1 = pub_pem(e->k1);
    e->pem2 = pub_pem(e->k2);
    assert_int_equal(cas_keychange_key_id(e->pem1, strlen(e->pem1), e->id1), CAS_OK);
    assert_int_equal(cas_keychange_key_id(e->pem2, strlen(e->pem2), e->id2), CAS_OK);
    assert_int_equal(cas_fs_write_atomic(e->cen_pem, e->pem1, strlen(e->pem1), 0644), CAS_OK);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    cas_fs_remove_tree(e->dir);
    cas_agent_free(&e->agent);
    EVP_PKEY_free(e->k1);
    EVP_PKEY_free(e->k2);
    free(e->pem1);
    free(e->pem2);
    free(e->keys);
    free(e->cen_pem);
    free(e);
    return 0;
}

static void assert_url(const char *mp, const char *want)
{
    char *got = cas_keychange_url(mp, "CEN");
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_url_next_to_policy(void **state)
{
    (void)state;
    assert_url("http://mp/SMS_MP/policy.json", "http://mp/SMS_MP/CEN.keychange");
    assert_url("https://mp:8443/a/b/c/policy", "https://mp:8443/a/b/c/CEN.keychange");
    assert_url("http://mp/policy.json", "http://mp/CEN.keychange");
    assert_url("http://mp/dir/", "http://mp/dir/CEN.keychange");
    assert_url("http://mp", "http://mp/CEN.keychange");
    assert_url("http://mp:80", "http://mp:80/CEN.keychange");
    assert_url("http://mp/dir/policy.json?site=CEN#x", "http://mp/dir/CEN.keychange");
    assert_url("http://mp?x=/a/b", "http://mp/CEN.keychange");
    assert_url("ftp://mp/policy.json", NULL);
    assert_null(cas_keychange_url(NULL, "CEN"));
}

static void test_nothing_published(void **state)
{
    struct env *e = *state;
    e->agent.cfg.site = strdup("CEN");
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_OK);
    assert_int_equal(e->fake.n_req, 1);
    assert_string_equal(e->fake.req[0].url, "http://mp.test/SMS_MP/CEN.keychange");
    char *pem = read_text(e->cen_pem);
    assert_string_equal(pem, e->pem1);
    free(pem);
}

static void test_published_change_accepted(void **state)
{
    struct env *e = *state;
    e->agent.cfg.site = strdup("CEN");
    char *doc = keychange_doc("CEN", 1, e->pem2, e->id2);
    publish_signed(e, "http://mp.test/SMS_MP/CEN.keychange", doc, e->k1, "\"kc-etag\"");
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_OK);
    assert_int_equal(e->fake.n_req, 2);
    assert_string_equal(e->fake.req[1].url, "http://mp.test/SMS_MP/CEN.keychange.sig");
    assert_int_equal(e->fake.req[0].max_bytes, CAS_KEYCHANGE_MAX_BYTES);
    assert_int_equal(e->fake.req[1].max_bytes, CAS_SIG_MAX_BYTES);
    char *pem = read_text(e->cen_pem);
    assert_string_equal(pem, e->pem2);
    free(pem);
    /* The next poll finds the same document: in effect, no error. */
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_OK);
    free(doc);
}

static void test_refusals_reported(void **state)
{
    struct env *e = *state;
    e->agent.cfg.site = strdup("CEN");
    char *doc = keychange_doc("CEN", 1, e->pem2, e->id2);

    /* Signed by the new key, not the trusted one. */
    publish_signed(e, "http://mp.test/SMS_MP/CEN.keychange", doc, e->k2, NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_BAD_SIGNATURE);
    /* No signature published. */
    serve(&e->fake, "http://mp.test/SMS_MP/CEN.keychange.sig", "", 0, 404, NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_NO_SIGNATURE);
    /* The signature cannot be fetched. */
    serve(&e->fake, "http://mp.test/SMS_MP/CEN.keychange.sig", "", 0, 500, NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_HTTP_BASE + 500);
    /* Larger than a key change may be. */
    char *big = calloc(1, CAS_KEYCHANGE_MAX_BYTES + 2);
    memset(big, ' ', CAS_KEYCHANGE_MAX_BYTES + 1);
    serve(&e->fake, "http://mp.test/SMS_MP/CEN.keychange", big, CAS_KEYCHANGE_MAX_BYTES + 1, 0,
          NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_TOO_LARGE);
    free(big);

    char *pem = read_text(e->cen_pem);
    assert_string_equal(pem, e->pem1);
    free(pem);
    free(doc);
}

/* Without a configured site: every site with a trusted key, in order; other files are not
 * sites. */
static void test_sites_from_trusted_keys(void **state)
{
    struct env *e = *state;
    const char *const others[] = {"PR1.pem", "ABCD.pem", "cen.pem", "XYZ.pem.tmp-1", "ZZZ.key"};
    for (int i = 0; i < 5; i++) {
        char *p = cas_path_join(e->keys, others[i]);
        assert_int_equal(cas_fs_write_atomic(p, e->pem1, strlen(e->pem1), 0644), CAS_OK);
        free(p);
    }
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_OK);
    assert_int_equal(e->fake.n_req, 2);
    assert_string_equal(e->fake.req[0].url, "http://mp.test/SMS_MP/CEN.keychange");
    assert_string_equal(e->fake.req[1].url, "http://mp.test/SMS_MP/PR1.keychange");

    /* A document published for one site at another site's name is refused. */
    char *doc = keychange_doc("CEN", 1, e->pem2, e->id2);
    publish_signed(e, "http://mp.test/SMS_MP/PR1.keychange", doc, e->k1, NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_SITE_MISMATCH);
    char *pem = read_text(e->cen_pem);
    assert_string_equal(pem, e->pem1);
    free(pem);
    free(doc);
}

/* No trusted key and no site configured: nothing to ask for (and nothing to trust). */
static void test_no_trusted_keys_no_request(void **state)
{
    struct env *e = *state;
    assert_int_equal(unlink(e->cen_pem), 0);
    char *doc = keychange_doc("CEN", 1, e->pem2, e->id2);
    publish_signed(e, "http://mp.test/SMS_MP/CEN.keychange", doc, e->k2, NULL);
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_OK);
    assert_int_equal(e->fake.n_req, 0);
    /* With the site configured it is fetched, and refused: no trust on first use. */
    e->agent.cfg.site = strdup("CEN");
    assert_int_equal(cas_keychange_fetch(&e->agent), CAS_E_UNTRUSTED_SITE);
    assert_null(read_text(e->cen_pem));
    free(doc);
}

/* The policy poll: the key change first, so the policy signed by the new key is applied in the
 * same poll; the stored validators are the policy's, and the key-change requests are never
 * conditional. */
static void test_policy_poll_uses_new_key(void **state)
{
    struct env *e = *state;
    char *kc = keychange_doc("CEN", 1, e->pem2, e->id2), *pol = policy_doc(1);
    publish_signed(e, "http://mp.test/SMS_MP/CEN.keychange", kc, e->k1, "\"kc-etag\"");
    publish_signed(e, MP, pol, e->k2, "\"policy-1\"");
    struct cas_policy applied = {0};
    int changed = 0;
    assert_int_equal(cas_policy_fetch(&e->agent, &applied, &changed), CAS_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(applied.serial, 1);
    cas_policy_free(&applied);
    assert_int_equal(e->fake.n_req, 4);
    assert_string_equal(e->fake.req[0].url, "http://mp.test/SMS_MP/CEN.keychange");
    assert_string_equal(e->fake.req[2].url, MP);

    char *mpjson = cas_path_join(e->agent.cfg.state_dir, "policy/mp.json");
    char *v = read_text(mpjson);
    assert_non_null(v);
    assert_non_null(strstr(v, "policy-1"));
    assert_null(strstr(v, "kc-etag"));
    free(v);

    /* Next poll: the policy request is conditional on its own ETag (304), the key change's is
     * not conditional at all. */
    e->fake.n_req = 0;
    assert_int_equal(cas_policy_fetch(&e->agent, &applied, &changed), CAS_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(e->fake.n_req, 3);
    assert_false(e->fake.req[0].conditional);
    assert_false(e->fake.req[1].conditional);
    assert_string_equal(e->fake.req[2].url, MP);
    assert_true(e->fake.req[2].conditional);

    /* A policy signed by the old key is refused from now on. */
    free(pol);
    pol = policy_doc(2);
    publish_signed(e, MP, pol, e->k1, "\"policy-2\"");
    assert_int_equal(cas_policy_fetch(&e->agent, &applied, &changed), CAS_E_BAD_SIGNATURE);
    assert_int_equal(changed, 0);
    v = read_text(mpjson);
    assert_non_null(strstr(v, "policy-1"));
    free(v);
    free(mpjson);
    free(kc);
    free(pol);
}

/* A refused key change does not stop the policy poll. */
static void test_refused_change_does_not_stop_poll(void **state)
{
    struct env *e = *state;
    char *kc = keychange_doc("CEN", 1, e->pem2, e->id2), *pol = policy_doc(1);
    publish_signed(e, "http://mp.test/SMS_MP/CEN.keychange", kc, e->k2, NULL);
    publish_signed(e, MP, pol, e->k1, NULL);
    struct cas_policy applied = {0};
    int changed = 0;
    assert_int_equal(cas_policy_fetch(&e->agent, &applied, &changed), CAS_OK);
    assert_int_equal(changed, 1);
    cas_policy_free(&applied);
    char *pem = read_text(e->cen_pem);
    assert_string_equal(pem, e->pem1);
    free(pem);
    free(kc);
    free(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_next_to_policy),
        cmocka_unit_test_setup_teardown(test_nothing_published, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_change_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_from_trusted_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_trusted_keys_no_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_poll_uses_new_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_change_does_not_stop_poll, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
