/* The advertisement history file: one JSON object per advertisement, rewritten atomically under
 * an flock on <state_dir>/history.lock. */
#include "agent/history.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/fsutil.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/timefmt.h"

#define HISTORY_MAX_BYTES ((size_t)16 * 1024 * 1024)
#define HISTORY_LOCK      "history.lock"

static const char *const state_names[] = {"None", "Running", "Succeeded", "Failed", "Retrying"};

const char *cas_run_state_name(enum cas_run_state s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "None";
}

static int state_parse(const char *name, enum cas_run_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (!strcmp(name, state_names[i])) {
            *out = (enum cas_run_state)i;
            return 0;
        }
    }
    return -1;
}

void cas_history_free(struct cas_history *h)
{
    free(h->recs);
    h->recs = NULL;
    h->n = 0;
}

struct cas_history_rec *cas_history_find(struct cas_history *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!strcmp(h->recs[i].id, id))
            return &h->recs[i];
    }
    return NULL;
}

static char *history_path(const char *state_dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", state_dir, name) < 0)
        return NULL;
    return p;
}

/* Optional fields: absent means zero. Present with a wrong type is damage. */
static int get_num(const cJSON *o, const char *key, double min, double max, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max)
        return -1;
    *out = v->valuedouble;
    return 0;
}

static int get_time(const cJSON *o, const char *key, time_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v)
        return 0;
    return cJSON_IsString(v) && cas_time_parse(v->valuestring, out) == CAS_OK ? 0 : -1;
}

static int get_code(const cJSON *o, const char *key, cas_hr *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v)
        return 0;
    return cJSON_IsString(v) && cas_err_parse(v->valuestring, out) == 0 ? 0 : -1;
}

static int rec_from_json(const cJSON *o, struct cas_history_rec *r)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "fingerprint");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    double d;
    memset(r, 0, sizeof(*r));
    if (!cJSON_IsString(id) || strlen(id->valuestring) >= sizeof(r->id) || !cJSON_IsString(st) ||
        state_parse(st->valuestring, &r->state) != 0)
        return -1;
    snprintf(r->id, sizeof(r->id), "%s", id->valuestring);
    if (fp) {
        if (!cJSON_IsString(fp) || strlen(fp->valuestring) > CAS_FINGERPRINT_HEX)
            return -1;
        snprintf(r->fingerprint, sizeof(r->fingerprint), "%s", fp->valuestring);
    }
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(o, "restart_required");
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(o, "downloading");
    if ((rr && !cJSON_IsBool(rr)) || (dl && !cJSON_IsBool(dl)))
        return -1;
    r->restart_required = cJSON_IsTrue(rr);
    r->downloading = cJSON_IsTrue(dl);
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
    if (ec) {
        if (!cas_json_is_int(ec, INT64_MIN / 2, INT64_MAX / 2))
            return -1;
        r->has_exit = 1;
        r->exit_code = (int64_t)ec->valuedouble;
    }
    if (get_code(o, "error", &r->hr) || get_code(o, "content_error", &r->content_hr) ||
        get_time(o, "started", &r->started) || get_time(o, "ended", &r->ended) ||
        get_time(o, "next_retry", &r->next_retry))
        return -1;
    if (get_num(o, "runs", 0, UINT32_MAX, &d))
        return -1;
    r->runs = (unsigned)d;
    if (get_num(o, "retries", 0, UINT32_MAX, &d))
        return -1;
    r->retries = (unsigned)d;
    if (get_num(o, "pid", 0, INT32_MAX, &d))
        return -1;
    r->pid = (pid_t)d;
    if (get_num(o, "pid_start", 0, 9007199254740992.0, &d))
        return -1;
    r->pid_start = (unsigned long long)d;
    return 0;
}

static cJSON *rec_to_json(const struct cas_history_rec *r)
{
    char t[32], code[16];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "state", cas_run_state_name(r->state));
    if (r->fingerprint[0])
        cJSON_AddStringToObject(o, "fingerprint", r->fingerprint);
    if (r->restart_required)
        cJSON_AddTrueToObject(o, "restart_required");
    if (r->has_exit)
        cJSON_AddNumberToObject(o, "exit_code", (double)r->exit_code);
    if (r->hr) {
        snprintf(code, sizeof(code), "0x%08X", r->hr);
        cJSON_AddStringToObject(o, "error", code);
    }
    if (r->content_hr) {
        snprintf(code, sizeof(code), "0x%08X", r->content_hr);
        cJSON_AddStringToObject(o, "content_error", code);
    }
    cJSON_AddNumberToObject(o, "runs", r->runs);
    cJSON_AddNumberToObject(o, "retries", r->retries);
    const struct {
        const char *key;
        time_t t;
    } times[] = {{"started", r->started}, {"ended", r->ended}, {"next_retry", r->next_retry}};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        if (times[i].t) {
            cas_time_format(times[i].t, t, sizeof(t));
            cJSON_AddStringToObject(o, times[i].key, t);
        }
    }
    if (r->pid) {
        cJSON_AddNumberToObject(o, "pid", r->pid);
        cJSON_AddNumberToObject(o, "pid_start", (double)r->pid_start);
        if (r->downloading)
            cJSON_AddTrueToObject(o, "downloading");
    }
    return o;
}

cas_hr cas_history_load(const char *state_dir, struct cas_history *h)
{
    char *path = history_path(state_dir, CAS_HISTORY_FILE), *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    cas_hr hr;

    memset(h, 0, sizeof(*h));
    if (!path)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_read_file(path, HISTORY_MAX_BYTES, &buf, &len);
    if (hr == CAS_E_FILE_MISSING) {
        hr = CAS_OK;
        goto cleanup;
    }
    if (hr == CAS_OK)
        hr = cas_json_parse(buf, len, 4, path, &root);
    if (hr != CAS_OK)
        goto damaged;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "adverts");
    if (!cJSON_IsArray(arr)) {
        hr = cas_fail(CAS_E_INVALID_DATA, "%s: adverts: expected an array", path);
        goto damaged;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    h->recs = n ? calloc(n, sizeof(*h->recs)) : NULL;
    if (n && !h->recs) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (const cJSON *o = arr->child; o && i < n; o = o->next, i++) {
        if (rec_from_json(o, &h->recs[i]) != 0 || cas_history_find(h, h->recs[i].id)) {
            hr = cas_fail(CAS_E_INVALID_DATA, "%s: adverts[%zu]: missing or malformed field", path,
                          i);
            goto damaged;
        }
        h->n = i + 1;
    }
    goto cleanup;
damaged:
    cas_history_free(h);
    if (hr != CAS_E_OUTOFMEMORY) {
        char why[512];
        snprintf(why, sizeof(why), "%s", cas_err_detail());
        hr = cas_fail(CAS_E_INVALID_DATA,
                      "the advertisement history is damaged (%s); mandatory programs are not run "
                      "until it is repaired or removed",
                      why);
    }
cleanup:
    cJSON_Delete(root);
    free(buf);
    free(path);
    return hr;
}

static cas_hr history_save(const char *state_dir, const struct cas_history *h)
{
    char *path = history_path(state_dir, CAS_HISTORY_FILE);
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    cas_hr hr = CAS_OK;
    if (!path || !root || !(arr = cJSON_AddArrayToObject(root, "adverts"))) {
        hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < h->n; i++) {
        cJSON *o = rec_to_json(&h->recs[i]);
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
    }
    hr = cas_json_write_atomic(path, root, 0644);
cleanup:
    cJSON_Delete(root);
    free(path);
    return hr;
}

cas_hr cas_history_update(const char *state_dir, const char *id,
                          void (*fn)(struct cas_history_rec *r, void *ud), void *ud)
{
    struct cas_history h = {0};
    char *lockp = history_path(state_dir, HISTORY_LOCK);
    int fd = -1;
    cas_hr hr;

    if (!lockp)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    hr = cas_fs_mkdirs(state_dir, 0755);
    if (hr != CAS_OK)
        goto cleanup;
    fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        hr = cas_fail(cas_err_from_errno(errno), "%s: %s", lockp, strerror(errno));
        goto cleanup;
    }
    hr = cas_history_load(state_dir, &h);
    if (hr != CAS_OK)
        goto cleanup;
    struct cas_history_rec *r = cas_history_find(&h, id);
    if (!r) {
        struct cas_history_rec *grown = realloc(h.recs, (h.n + 1) * sizeof(*grown));
        if (!grown) {
            hr = cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
            goto cleanup;
        }
        h.recs = grown;
        r = &h.recs[h.n++];
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", id);
    }
    fn(r, ud);
    hr = history_save(state_dir, &h);
cleanup:
    if (fd >= 0)
        close(fd);
    cas_history_free(&h);
    free(lockp);
    return hr;
}

/* Field 22 of /proc/<pid>/stat: the start time in clock ticks since boot. 0 if unknown. */
static unsigned long long proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long start = 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: count fields after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field <= 22 && p; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
        if (field == 22)
            start = strtoull(p, NULL, 10);
    }
    return start;
}

void cas_history_own(struct cas_history_rec *r)
{
    r->pid = getpid();
    r->pid_start = proc_start_time(r->pid);
}

int cas_history_owner_alive(const struct cas_history_rec *r)
{
    if (r->pid <= 0)
        return 0;
    if (kill(r->pid, 0) != 0 && errno != EPERM)
        return 0;
    return proc_start_time(r->pid) == r->pid_start;
}

/* Strings are length-prefixed so no two different adverts serialise alike. */
static void fp_str(FILE *f, const char *s)
{
    fprintf(f, "%zu:%s;", strlen(s), s);
}

void cas_advert_fingerprint(const struct cas_advert *ad, char out[CAS_FINGERPRINT_HEX + 1])
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        memset(out, '0', CAS_FINGERPRINT_HEX);
        out[CAS_FINGERPRINT_HEX] = '\0';
        return;
    }
    const struct cas_program *p = &ad->program;
    fp_str(f, ad->package);
    fprintf(f, "%" PRIu64 ";%" PRIu64 ";", ad->version, ad->size);
    fp_str(f, cas_hash_alg_name(ad->alg));
    fp_str(f, ad->hash);
    fp_str(f, p->command);
    fprintf(f, "%zu;", p->argc);
    for (size_t i = 0; i < p->argc; i++)
        fp_str(f, p->args[i]);
    fp_str(f, p->context);
    fprintf(f, "%.17g;%zu;", (double)p->max_run_minutes, p->n_success_codes);
    for (size_t i = 0; i < p->n_success_codes; i++)
        fprintf(f, "%" PRId64 ",", p->success_codes[i]);
    fprintf(f, ";%d;%lld;%d;", ad->mandatory, (long long)ad->start, (int)ad->rerun);
    fclose(f);
    cas_hash_buf_hex(CAS_HASH_SHA256, text, len, out);
    free(text);
}
