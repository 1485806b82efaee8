/* The signed policy document: every field is checked before anything acts on it, and a refusal
 * names the exact field, so a site administrator can fix the document from the error alone. */
#include "common/policy.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/path.h"
#include "common/timefmt.h"

#define POLICY_MAX_ADVERTS   10000
#define POLICY_MAX_LOCATIONS 64
#define POLICY_MAX_CODES     64
#define POLICY_MAX_RUN_MIN   10080 /* one week */
#define POLICY_DEFAULT_RUN   120
#define POLICY_MAX_ID        64
#define POLICY_MAX_USER      32

/* A field's path in the document, for error details: "advertisements[3].program.args[1]". */
struct field {
    char name[128];
};

/* Plain appends rather than snprintf("%s.%s"): field names nest into buffers of the same size,
 * and a (never expected) overlong name is cut, not an error. */
static void field_append(struct field *f, const char *s)
{
    size_t used = strlen(f->name);
    size_t room = sizeof(f->name) - 1 - used;
    size_t n = strlen(s);
    if (n > room)
        n = room;
    memcpy(f->name + used, s, n);
    f->name[used + n] = '\0';
}

static const char *field_at(struct field *f, const char *prefix, const char *key)
{
    f->name[0] = '\0';
    if (prefix && *prefix) {
        field_append(f, prefix);
        field_append(f, ".");
    }
    field_append(f, key);
    return f->name;
}

static const char *field_index(struct field *f, const char *prefix, size_t i)
{
    char num[32];
    snprintf(num, sizeof(num), "[%zu]", i);
    f->name[0] = '\0';
    field_append(f, prefix);
    field_append(f, num);
    return f->name;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static cas_hr oom(void)
{
    return cas_fail(CAS_E_OUTOFMEMORY, "policy: out of memory");
}

/* Look up a member. Required and absent: "<name>: missing". Optional and absent: *out NULL. */
static cas_hr member(const cJSON *obj, const char *name, const char *key, int required,
                     const cJSON **out)
{
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*out && required)
        return cas_fail(CAS_E_INVALID_DATA, "%s: missing", name);
    return CAS_OK;
}

static cas_hr get_string(const cJSON *obj, const char *prefix, const char *key, int required,
                         const char **out)
{
    struct field f;
    const char *name = field_at(&f, prefix, key);
    const cJSON *item;
    cas_hr hr = member(obj, name, key, required, &item);
    *out = NULL;
    if (hr != CAS_OK || !item)
        return hr;
    if (!cJSON_IsString(item) || !item->valuestring)
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected a string", name);
    *out = item->valuestring;
    return CAS_OK;
}

/* Integer in [min, max]; `expect` completes "expected ..." in the refusal. */
static cas_hr get_int(const cJSON *obj, const char *prefix, const char *key, int required,
                      int64_t min, int64_t max, const char *expect, int64_t *out, int *present)
{
    struct field f;
    const char *name = field_at(&f, prefix, key);
    const cJSON *item;
    cas_hr hr = member(obj, name, key, required, &item);
    if (present)
        *present = item != NULL;
    if (hr != CAS_OK || !item)
        return hr;
    if (!cas_json_is_int(item, min, max))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected %s", name, expect);
    *out = (int64_t)item->valuedouble;
    return CAS_OK;
}

static cas_hr get_bool(const cJSON *obj, const char *prefix, const char *key, int *out)
{
    struct field f;
    const char *name = field_at(&f, prefix, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return CAS_OK; /* every boolean in the policy is optional; *out keeps its default */
    if (!cJSON_IsBool(item))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected true or false", name);
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return CAS_OK;
}

static cas_hr get_time(const cJSON *obj, const char *prefix, const char *key, int required,
                       time_t *out, int *present)
{
    struct field f;
    const char *name = field_at(&f, prefix, key);
    const char *text;
    cas_hr hr = get_string(obj, prefix, key, required, &text);
    if (present)
        *present = text != NULL;
    if (hr != CAS_OK || !text)
        return hr;
    if (cas_time_parse(text, out) != CAS_OK)
        return cas_fail(CAS_E_INVALID_DATA,
                        "%s: expected an RFC 3339 time such as 2026-11-23T06:00:00Z, got '%.64s'",
                        name, text);
    return CAS_OK;
}

/* max_run_minutes: any JSON number in (0, 10080], so a short limit (0.05 = 3 s) can be given;
 * absent: the default. */
static cas_hr get_minutes(const cJSON *prog, const char *prefix, double *out)
{
    struct field f;
    const char *name = field_at(&f, prefix, "max_run_minutes");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(prog, "max_run_minutes");
    *out = POLICY_DEFAULT_RUN;
    if (!item)
        return CAS_OK;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || !(item->valuedouble > 0) ||
        item->valuedouble > POLICY_MAX_RUN_MIN)
        return cas_fail(CAS_E_INVALID_DATA,
                        "%s: expected a number of minutes greater than 0 and at most %d "
                        "(fractions allowed, e.g. 0.5)",
                        name, POLICY_MAX_RUN_MIN);
    *out = item->valuedouble;
    return CAS_OK;
}

static int is_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int valid_advert_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > POLICY_MAX_ID || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_id_char(s[i]))
            return 0;
    }
    return 1;
}

/* "user:<name>" with a portable Linux user name: ^[a-z_][a-z0-9_-]{0,31}$. */
static int valid_context(const char *s)
{
    if (strcmp(s, "System") == 0)
        return 1;
    if (strncmp(s, "user:", 5) != 0)
        return 0;
    const char *u = s + 5;
    size_t n = strlen(u);
    if (n == 0 || n > POLICY_MAX_USER)
        return 0;
    if (!((u[0] >= 'a' && u[0] <= 'z') || u[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* An absolute command must say what it means: no "//", "." or ".." segments, no trailing '/',
 * no control characters, so what a reviewer reads is the file that runs. */
static int valid_absolute_command(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > CAS_PATH_MAX || s[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 0;
    }
    size_t seg = 1;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        size_t len = i - seg;
        if (len == 0)
            return 0;
        if ((len == 1 && s[seg] == '.') || (len == 2 && s[seg] == '.' && s[seg + 1] == '.'))
            return 0;
        seg = i + 1;
    }
    return 1;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_advert(struct cas_advert *a)
{
    free(a->id);
    free_strv(a->locations, a->n_locations);
    free(a->program.command);
    free_strv(a->program.args, a->program.argc);
    free(a->program.context);
    free(a->program.success_codes);
    memset(a, 0, sizeof(*a));
}

static cas_hr parse_hash(const cJSON *adv, const char *prefix, struct cas_advert *a)
{
    struct field f, g;
    const char *name = field_at(&f, prefix, "hash");
    const cJSON *hash;
    const char *alg, *value;
    cas_hr hr = member(adv, name, "hash", 1, &hash);
    if (hr != CAS_OK)
        return hr;
    if (!cJSON_IsObject(hash))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected an object {\"alg\", \"value\"}", name);
    hr = get_string(hash, name, "alg", 1, &alg);
    if (hr != CAS_OK)
        return hr;
    if (cas_hash_alg_parse(alg, &a->alg) != CAS_OK)
        return cas_fail(CAS_E_UNSUPPORTED_ALG,
                        "%s: unsupported hash algorithm '%.32s' (sha256 or sha1)",
                        field_at(&g, name, "alg"), alg);
    hr = get_string(hash, name, "value", 1, &value);
    if (hr != CAS_OK)
        return hr;
    size_t hexlen = cas_hash_hexlen(a->alg);
    if (!cas_hex_is_valid(value, hexlen))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected %zu hex digits for %s",
                        field_at(&g, name, "value"), hexlen, cas_hash_alg_name(a->alg));
    cas_hex_lower(value, a->hash);
    return CAS_OK;
}

static cas_hr parse_locations(const cJSON *adv, const char *prefix, struct cas_advert *a)
{
    struct field f, g;
    const char *name = field_at(&f, prefix, "locations");
    const cJSON *locs;
    cas_hr hr = member(adv, name, "locations", 1, &locs);
    if (hr != CAS_OK)
        return hr;
    if (!cJSON_IsArray(locs) || !locs->child)
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected a non-empty array of URLs", name);
    size_t n = 0;
    for (const cJSON *c = locs->child; c; c = c->next)
        n++;
    if (n > POLICY_MAX_LOCATIONS)
        return cas_fail(CAS_E_INVALID_DATA, "%s: more than %d entries", name, POLICY_MAX_LOCATIONS);
    a->locations = calloc(n, sizeof(*a->locations));
    if (!a->locations)
        return oom();
    a->n_locations = n;
    size_t i = 0;
    for (const cJSON *c = locs->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring || !cas_url_is_base(c->valuestring))
            return cas_fail(CAS_E_INVALID_DATA,
                            "%s: expected an http:// or https:// URL with a host, no spaces, "
                            "control characters, '?' or '#', at most %d bytes",
                            field_index(&g, name, i), CAS_URL_MAX);
        char *url = dup_str(c->valuestring);
        if (!url)
            return oom();
        /* The agent joins "<base>/<content>": one form of the base, without the slash. */
        size_t len = strlen(url);
        while (len > 0 && url[len - 1] == '/')
            url[--len] = '\0';
        a->locations[i] = url;
    }
    return CAS_OK;
}

static cas_hr parse_command(const cJSON *prog, const char *prefix, struct cas_program *p)
{
    struct field f;
    const char *name = field_at(&f, prefix, "command");
    const char *cmd;
    cas_hr hr = get_string(prog, prefix, "command", 1, &cmd);
    if (hr != CAS_OK)
        return hr;
    if (cmd[0] == '\0')
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected a non-empty string", name);
    if (cmd[0] == '/') {
        if (!valid_absolute_command(cmd))
            return cas_fail(CAS_E_INVALID_DATA,
                            "%s: absolute path '%.128s' is not normalised (no '//', '.' or '..' "
                            "segments, trailing '/' or control characters)",
                            name, cmd);
    } else if (cas_path_check(cmd, strlen(cmd)) != CAS_OK) {
        /* cas_fail formats into the buffer cas_err_detail returns: copy it first. */
        char why[256];
        snprintf(why, sizeof(why), "%s", cas_err_detail());
        return cas_fail(CAS_E_INVALID_DATA, "%s: not a safe path inside the content folder: %s",
                        name, why);
    }
    p->command = dup_str(cmd);
    return p->command ? CAS_OK : oom();
}

static cas_hr parse_args(const cJSON *prog, const char *prefix, struct cas_program *p)
{
    struct field f, g;
    const char *name = field_at(&f, prefix, "args");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(prog, "args");
    size_t n = 0;
    if (args) {
        if (!cJSON_IsArray(args))
            return cas_fail(CAS_E_INVALID_DATA, "%s: expected an array of strings", name);
        for (const cJSON *c = args->child; c; c = c->next)
            n++;
    }
    p->args = calloc(n + 1, sizeof(*p->args));
    if (!p->args)
        return oom();
    p->argc = n;
    size_t i = 0;
    for (const cJSON *c = args ? args->child : NULL; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return cas_fail(CAS_E_INVALID_DATA, "%s: expected a string", field_index(&g, name, i));
        p->args[i] = dup_str(c->valuestring);
        if (!p->args[i])
            return oom();
    }
    return CAS_OK;
}

static cas_hr parse_success_codes(const cJSON *prog, const char *prefix, struct cas_program *p)
{
    struct field f, g;
    const char *name = field_at(&f, prefix, "success_codes");
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(prog, "success_codes");
    if (!codes) {
        p->success_codes = malloc(2 * sizeof(*p->success_codes));
        if (!p->success_codes)
            return oom();
        p->success_codes[0] = 0;
        p->success_codes[1] = 3010; /* ERROR_SUCCESS_REBOOT_REQUIRED, as the real client */
        p->n_success_codes = 2;
        return CAS_OK;
    }
    /* An empty list would make every run a failure: refused as a mistake. */
    if (!cJSON_IsArray(codes) || !codes->child)
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected a non-empty array of integers", name);
    size_t n = 0;
    for (const cJSON *c = codes->child; c; c = c->next)
        n++;
    if (n > POLICY_MAX_CODES)
        return cas_fail(CAS_E_INVALID_DATA, "%s: more than %d entries", name, POLICY_MAX_CODES);
    p->success_codes = calloc(n, sizeof(*p->success_codes));
    if (!p->success_codes)
        return oom();
    p->n_success_codes = n;
    size_t i = 0;
    for (const cJSON *c = codes->child; c; c = c->next, i++) {
        if (!cas_json_is_int(c, INT32_MIN, INT32_MAX))
            return cas_fail(CAS_E_INVALID_DATA,
                            "%s: expected an integer from -2147483648 to 2147483647",
                            field_index(&g, name, i));
        p->success_codes[i] = (int64_t)c->valuedouble;
    }
    return CAS_OK;
}

static cas_hr parse_program(const cJSON *adv, const char *prefix, struct cas_program *p)
{
    struct field f, g;
    const char *name = field_at(&f, prefix, "program");
    const cJSON *prog;
    const char *context;
    cas_hr hr = member(adv, name, "program", 1, &prog);
    if (hr != CAS_OK)
        return hr;
    if (!cJSON_IsObject(prog))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected an object", name);

    if ((hr = parse_command(prog, name, p)) != CAS_OK)
        return hr;
    if ((hr = parse_args(prog, name, p)) != CAS_OK)
        return hr;

    if ((hr = get_string(prog, name, "context", 0, &context)) != CAS_OK)
        return hr;
    if (!context)
        context = "System";
    if (!valid_context(context))
        return cas_fail(CAS_E_INVALID_DATA,
                        "%s: expected \"System\" or \"user:<name>\" (name: [a-z_][a-z0-9_-]{0,31})",
                        field_at(&g, name, "context"));
    p->context = dup_str(context);
    if (!p->context)
        return oom();

    if ((hr = get_minutes(prog, name, &p->max_run_minutes)) != CAS_OK)
        return hr;

    return parse_success_codes(prog, name, p);
}

static cas_hr parse_advert(const cJSON *adv, size_t idx, time_t issued, struct cas_advert *a)
{
    struct field pf, f;
    const char *prefix = field_index(&pf, "advertisements", idx);
    const char *s;
    int64_t v = 0;
    cas_hr hr;

    if (!cJSON_IsObject(adv))
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected an object", prefix);

    if ((hr = get_string(adv, prefix, "id", 1, &s)) != CAS_OK)
        return hr;
    if (!valid_advert_id(s))
        return cas_fail(CAS_E_INVALID_DATA,
                        "%s: expected 1 to 64 characters [A-Za-z0-9._-], not starting with '.'",
                        field_at(&f, prefix, "id"));
    a->id = dup_str(s);
    if (!a->id)
        return oom();

    if ((hr = get_string(adv, prefix, "package", 1, &s)) != CAS_OK)
        return hr;
    if (!cas_id_is_package(s))
        return cas_fail(CAS_E_INVALID_DATA,
                        "%s: expected a package id (site code and 5 upper-case hex digits, e.g. "
                        "CEN00002)",
                        field_at(&f, prefix, "package"));
    memcpy(a->package, s, sizeof(a->package) - 1);
    a->package[sizeof(a->package) - 1] = '\0';

    if ((hr = get_int(adv, prefix, "version", 1, 1, INT64_MAX, "an integer >= 1", &v, NULL)) !=
        CAS_OK)
        return hr;
    a->version = (uint64_t)v;
    snprintf(a->content_id, sizeof(a->content_id), "%s.%" PRIu64, a->package, a->version);

    if ((hr = parse_hash(adv, prefix, a)) != CAS_OK)
        return hr;

    if ((hr = get_int(adv, prefix, "size", 1, 0, INT64_MAX, "an integer >= 0", &v, NULL)) != CAS_OK)
        return hr;
    a->size = (uint64_t)v;

    if ((hr = parse_locations(adv, prefix, a)) != CAS_OK)
        return hr;
    if ((hr = parse_program(adv, prefix, &a->program)) != CAS_OK)
        return hr;

    if ((hr = get_bool(adv, prefix, "mandatory", &a->mandatory)) != CAS_OK)
        return hr;

    int has_start = 0;
    if ((hr = get_time(adv, prefix, "start", 0, &a->start, &has_start)) != CAS_OK)
        return hr;
    if (!has_start)
        a->start = issued;

    if ((hr = get_string(adv, prefix, "rerun", 0, &s)) != CAS_OK)
        return hr;
    if (!s || strcmp(s, "if_failed") == 0)
        a->rerun = CAS_RERUN_IF_FAILED;
    else if (strcmp(s, "never") == 0)
        a->rerun = CAS_RERUN_NEVER;
    else if (strcmp(s, "always") == 0)
        a->rerun = CAS_RERUN_ALWAYS;
    else
        return cas_fail(CAS_E_INVALID_DATA, "%s: expected \"never\", \"if_failed\" or \"always\"",
                        field_at(&f, prefix, "rerun"));

    return get_bool(adv, prefix, "persist", &a->persist);
}

/* Index arrays ordered by a key, ties in document order, so the refusal names the first repeat
 * in the document. */
static int cmp_by_id(const void *x, const void *y, void *arg)
{
    const struct cas_advert *ads = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = strcmp(ads[i].id, ads[j].id);
    return c ? c : (i > j) - (i < j);
}

static int cmp_by_content(const void *x, const void *y, void *arg)
{
    const struct cas_advert *ads = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = strcmp(ads[i].content_id, ads[j].content_id);
    return c ? c : (i > j) - (i < j);
}

/* Up to 10000 advertisements: sort instead of comparing every pair. */
static cas_hr check_cross(const struct cas_advert *ads, size_t n)
{
    if (n < 2)
        return CAS_OK;
    size_t *idx = malloc(n * sizeof(*idx));
    if (!idx)
        return oom();
    cas_hr hr = CAS_OK;
    size_t bad = SIZE_MAX, first = 0;

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cmp_by_id, (void *)ads);
    for (size_t k = 1; k < n; k++) {
        if (strcmp(ads[idx[k - 1]].id, ads[idx[k]].id) == 0 && idx[k] < bad) {
            bad = idx[k];
            first = idx[k - 1];
        }
    }
    if (bad != SIZE_MAX) {
        hr = cas_fail(CAS_E_INVALID_DATA,
                      "advertisements[%zu].id: duplicate advertisement id '%s' (also "
                      "advertisements[%zu])",
                      bad, ads[bad].id, first);
        goto cleanup;
    }

    /* Two entries for the same content must agree on what the content is; otherwise which hash
     * applies would depend on which advertisement asked ("mix-and-match"). */
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cmp_by_content, (void *)ads);
    size_t group = 0; /* first index, in sorted order, of the current content id */
    for (size_t k = 1; k < n; k++) {
        const struct cas_advert *a = &ads[idx[group]], *b = &ads[idx[k]];
        if (strcmp(a->content_id, b->content_id) != 0) {
            group = k;
            continue;
        }
        if ((a->alg != b->alg || strcmp(a->hash, b->hash) != 0 || a->size != b->size) &&
            idx[k] < bad) {
            bad = idx[k];
            first = idx[group];
        }
    }
    if (bad != SIZE_MAX) {
        const struct cas_advert *a = &ads[first], *b = &ads[bad];
        int hash_differs = a->alg != b->alg || strcmp(a->hash, b->hash) != 0;
        hr = cas_fail(CAS_E_INVALID_DATA,
                      "advertisements[%zu].%s: content %s is advertised with a different %s in "
                      "advertisements[%zu]",
                      bad, hash_differs ? "hash" : "size", b->content_id,
                      hash_differs ? "hash" : "size", first);
    }

cleanup:
    free(idx);
    return hr;
}

static cas_hr parse_root(const cJSON *root, struct cas_policy *p)
{
    const cJSON *item;
    const char *s;
    int64_t v = 0;
    int has_expires = 0;
    cas_hr hr;

    if (!cJSON_IsObject(root))
        return cas_fail(CAS_E_INVALID_DATA, "policy: expected a JSON object");

    if ((hr = member(root, "schema", "schema", 1, &item)) != CAS_OK)
        return hr;
    if (!cas_json_is_int(item, 1, 1)) {
        if (cas_json_is_int(item, INT64_MIN, INT64_MAX))
            return cas_fail(CAS_E_INVALID_DATA, "schema: unsupported version %.0f (expected 1)",
                            item->valuedouble);
        return cas_fail(CAS_E_INVALID_DATA, "schema: expected the integer 1");
    }
    p->schema = 1;

    if ((hr = get_string(root, "", "site", 1, &s)) != CAS_OK)
        return hr;
    if (!cas_id_is_site(s))
        return cas_fail(CAS_E_INVALID_DATA,
                        "site: expected a site code (3 characters A-Z or 0-9), got '%.16s'", s);
    memcpy(p->site, s, 3);
    p->site[3] = '\0';

    if ((hr = get_int(root, "", "serial", 1, 1, INT64_MAX, "an integer >= 1", &v, NULL)) != CAS_OK)
        return hr;
    p->serial = (uint64_t)v;

    if ((hr = get_time(root, "", "issued", 1, &p->issued, NULL)) != CAS_OK)
        return hr;
    if ((hr = get_time(root, "", "expires", 0, &p->expires, &has_expires)) != CAS_OK)
        return hr;
    if (has_expires && p->expires <= p->issued)
        return cas_fail(CAS_E_INVALID_DATA, "expires: must be after issued");
    if (!has_expires)
        p->expires = 0;

    if ((hr = member(root, "advertisements", "advertisements", 1, &item)) != CAS_OK)
        return hr;
    if (!cJSON_IsArray(item))
        return cas_fail(CAS_E_INVALID_DATA, "advertisements: expected an array");
    size_t n = 0;
    for (const cJSON *c = item->child; c; c = c->next)
        n++;
    if (n > POLICY_MAX_ADVERTS)
        return cas_fail(CAS_E_INVALID_DATA, "advertisements: more than %d entries",
                        POLICY_MAX_ADVERTS);
    if (n > 0) {
        p->adverts = calloc(n, sizeof(*p->adverts));
        if (!p->adverts)
            return oom();
        p->n_adverts = n;
    }
    size_t i = 0;
    for (const cJSON *c = item->child; c; c = c->next, i++) {
        if ((hr = parse_advert(c, i, p->issued, &p->adverts[i])) != CAS_OK)
            return hr;
    }
    return check_cross(p->adverts, p->n_adverts);
}

cas_hr cas_policy_parse(const char *buf, size_t len, struct cas_policy *out)
{
    struct cas_policy p;
    cJSON *root = NULL;
    cas_hr hr;

    memset(out, 0, sizeof(*out));
    memset(&p, 0, sizeof(p));
    if (len > CAS_POLICY_MAX_BYTES)
        return cas_fail(CAS_E_TOO_LARGE, "policy: %zu bytes, more than the limit of %zu", len,
                        CAS_POLICY_MAX_BYTES);

    hr = cas_json_parse(buf, len, CAS_POLICY_MAX_DEPTH, "policy", &root);
    if (hr != CAS_OK)
        return hr;
    hr = parse_root(root, &p);
    cJSON_Delete(root);
    if (hr != CAS_OK) {
        cas_policy_free(&p);
        return hr;
    }
    *out = p;
    return CAS_OK;
}

void cas_policy_free(struct cas_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_adverts; i++)
        free_advert(&p->adverts[i]);
    free(p->adverts);
    memset(p, 0, sizeof(*p));
}

const struct cas_advert *cas_policy_find_advert(const struct cas_policy *p, const char *id)
{
    if (!p || !id)
        return NULL;
    for (size_t i = 0; i < p->n_adverts; i++) {
        if (strcmp(p->adverts[i].id, id) == 0)
            return &p->adverts[i];
    }
    return NULL;
}

const struct cas_advert *cas_policy_find_content(const struct cas_policy *p, const char *cid)
{
    if (!p || !cid)
        return NULL;
    for (size_t i = 0; i < p->n_adverts; i++) {
        if (strcmp(p->adverts[i].content_id, cid) == 0)
            return &p->adverts[i];
    }
    return NULL;
}

int cas_policy_is_expired(const struct cas_policy *p, time_t now)
{
    return p && p->expires != 0 && now >= p->expires;
}

const char *cas_rerun_name(enum cas_rerun r)
{
    switch (r) {
    case CAS_RERUN_NEVER:
        return "never";
    case CAS_RERUN_IF_FAILED:
        return "if_failed";
    case CAS_RERUN_ALWAYS:
        return "always";
    }
    return "unknown";
}
