/* Strict JSON reading over cJSON.
 *
 * cJSON is lenient in ways that matter for signed documents: it accepts raw control characters in
 * strings, "\u0000" (which silently truncates a key or value at the NUL), leading zeros in
 * numbers, any byte <= 0x20 as whitespace, recurses once per nesting level, and keeps the last of
 * two equal keys while cJSON_GetObjectItem finds the first. A pre-scan of the raw text and a walk
 * of the tree close those gaps, so every strict JSON reader sees the same document we do. */
#include "common/json.h"
#include "common/fsutil.h"
#include "common/timefmt.h"

#include <stdlib.h>
#include <string.h>

/* Integers beyond 2^53 - 1 are not all representable as a double, so 2^53 itself could be a
 * rounded 2^53 + 1: the largest safe integer is the bound. */
#define CAS_JSON_MAX_SAFE_INT 9007199254740991.0

/* Length of the valid UTF-8 sequence at s (at most n bytes available), or 0 if invalid:
 * overlong forms, surrogates (U+D800..U+DFFF) and code points above U+10FFFF are refused. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return need;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the JSON number token at s (RFC 8259 grammar), or 0 if the token that starts here is
 * not one. The token is the maximal run of number characters, so "01" or "1." are refused
 * rather than read as a shorter number followed by garbage. */
static size_t number_len(const unsigned char *s, size_t n)
{
    size_t run = 0;
    while (run < n && (is_digit(s[run]) || s[run] == '-' || s[run] == '+' || s[run] == '.' ||
                       s[run] == 'e' || s[run] == 'E'))
        run++;

    size_t i = 0;
    if (i < run && s[i] == '-')
        i++;
    if (i >= run || !is_digit(s[i]))
        return 0;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < run && is_digit(s[i]))
            i++;
    }
    if (i < run && s[i] == '.') {
        i++;
        if (i >= run || !is_digit(s[i]))
            return 0;
        while (i < run && is_digit(s[i]))
            i++;
    }
    if (i < run && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < run && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= run || !is_digit(s[i]))
            return 0;
        while (i < run && is_digit(s[i]))
            i++;
    }
    return i == run ? run : 0;
}

/* One pass over the raw bytes: encoding, NUL, control characters, "\u0000", number syntax and
 * nesting depth, all before cJSON sees the text. */
static cas_hr prescan(const unsigned char *s, size_t len, int max_depth, const char *what)
{
    int depth = 0;
    int in_string = 0;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return cas_fail(CAS_E_INVALID_DATA, "%s: NUL byte at byte %zu", what, i);
        if (c >= 0x80) {
            size_t n = utf8_seq_len(s + i, len - i);
            if (n == 0)
                return cas_fail(CAS_E_INVALID_DATA, "%s: invalid UTF-8 at byte %zu", what, i);
            i += n;
            continue;
        }
        if (in_string) {
            if (c < 0x20)
                return cas_fail(CAS_E_INVALID_DATA,
                                "%s: unescaped control character in a string at byte %zu", what, i);
            if (c == '"') {
                in_string = 0;
            } else if (c == '\\') {
                if (i + 1 >= len)
                    return cas_fail(CAS_E_INVALID_DATA, "%s: unterminated string at byte %zu", what,
                                    i);
                if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                    return cas_fail(CAS_E_INVALID_DATA,
                                    "%s: \\u0000 in a string at byte %zu is not allowed", what, i);
                /* Skip the escaped character so an escaped quote does not end the string;
                 * cJSON checks the escape itself. A non-ASCII byte after '\' is invalid JSON
                 * anyway, but is still validated as UTF-8 on the next turn. */
                i += (s[i + 1] < 0x80) ? 2 : 1;
                continue;
            }
            i++;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return cas_fail(CAS_E_INVALID_DATA, "%s: nesting deeper than %d levels at byte %zu",
                                what, max_depth, i);
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                return cas_fail(CAS_E_INVALID_DATA, "%s: control character at byte %zu", what, i);
            if (c == '-' || is_digit(c)) {
                size_t n = number_len(s + i, len - i);
                if (n == 0)
                    return cas_fail(CAS_E_INVALID_DATA, "%s: invalid number at byte %zu", what, i);
                i += n;
                continue;
            }
            break;
        }
        i++;
    }
    if (in_string)
        return cas_fail(CAS_E_INVALID_DATA, "%s: unterminated string at end of document", what);
    return CAS_OK;
}

static int cmp_key(const void *a, const void *b)
{
    const cJSON *const *x = a;
    const cJSON *const *y = b;
    return strcmp((*x)->string, (*y)->string);
}

/* Depth is bounded by the pre-scan, so recursion here is bounded too. Keys are compared after
 * sorting so an object with many keys costs n log n, not n^2. */
static cas_hr check_duplicates(const cJSON *node, const char *what)
{
    if (cJSON_IsObject(node)) {
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next)
            n++;
        if (n > 1) {
            // NOLINTNEXTLINE(bugprone-sizeof-expression): keys is an array of pointers
            const cJSON **keys = malloc(n * sizeof(*keys));
            if (!keys)
                return cas_fail(CAS_E_OUTOFMEMORY, "%s: out of memory", what);
            size_t i = 0;
            for (const cJSON *c = node->child; c; c = c->next)
                keys[i++] = c;
            // NOLINTNEXTLINE(bugprone-sizeof-expression): keys is an array of pointers
            qsort(keys, n, sizeof(*keys), cmp_key);
            for (i = 1; i < n; i++) {
                if (strcmp(keys[i - 1]->string, keys[i]->string) == 0) {
                    cas_hr hr = cas_fail(CAS_E_INVALID_DATA, "%s: duplicate key \"%.64s\"", what,
                                         keys[i]->string);
                    free(keys);
                    return hr;
                }
            }
            free(keys);
        }
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        for (const cJSON *c = node->child; c; c = c->next) {
            cas_hr hr = check_duplicates(c, what);
            if (hr != CAS_OK)
                return hr;
        }
    }
    return CAS_OK;
}

cas_hr cas_json_parse(const char *buf, size_t len, int max_depth, const char *what, cJSON **out)
{
    char *copy = NULL;
    cJSON *root = NULL;
    const char *end = NULL;
    cas_hr hr;

    *out = NULL;
    if (!what)
        what = "JSON";
    if (!buf || len == 0)
        return cas_fail(CAS_E_INVALID_DATA, "%s: empty document", what);

    hr = prescan((const unsigned char *)buf, len, max_depth, what);
    if (hr != CAS_OK)
        return hr;

    copy = malloc(len + 1);
    if (!copy)
        return cas_fail(CAS_E_OUTOFMEMORY, "%s: out of memory", what);
    memcpy(copy, buf, len);
    copy[len] = '\0';

    /* The length includes the terminating NUL: cJSON's trailing-garbage check looks for it
     * inside the buffer. return_parse_end gives the error position without the global state
     * cJSON_GetErrorPtr reads. */
    root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
    if (!root) {
        size_t off = (end && end >= copy && end <= copy + len) ? (size_t)(end - copy) : len;
        hr = cas_fail(CAS_E_INVALID_DATA, "%s: invalid JSON at byte %zu", what, off);
        goto cleanup;
    }

    hr = check_duplicates(root, what);
    if (hr != CAS_OK)
        goto cleanup;

    *out = root;
    root = NULL;

cleanup:
    cJSON_Delete(root);
    free(copy);
    return hr;
}

int cas_json_is_int(const cJSON *item, int64_t min, int64_t max)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    /* Written so NaN and infinities fail too; inside this range the cast is defined. */
    if (!(v >= -CAS_JSON_MAX_SAFE_INT && v <= CAS_JSON_MAX_SAFE_INT))
        return 0;
    int64_t i = (int64_t)v;
    if ((double)i != v)
        return 0;
    return i >= min && i <= max;
}

void cas_json_add_time(cJSON *o, const char *key, time_t t)
{
    char buf[32];
    if (!t) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    cas_time_format(t, buf, sizeof(buf));
    cJSON_AddStringToObject(o, key, buf);
}

cas_hr cas_json_read_serial(const char *path, uint64_t *serial)
{
    char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    cas_hr hr = cas_fs_read_file(path, (size_t)64 * 1024, &buf, &len);

    *serial = 0;
    if (hr == CAS_E_FILE_MISSING)
        return CAS_OK;
    if (hr == CAS_OK)
        hr = cas_json_parse(buf, len, 4, path, &root);
    if (hr == CAS_OK) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "serial");
        if (!cas_json_is_int(s, 0, INT64_MAX))
            hr = cas_fail(CAS_E_INVALID_DATA, "%s: serial: expected an integer", path);
        else
            *serial = (uint64_t)s->valuedouble;
    }
    cJSON_Delete(root);
    free(buf);
    return hr;
}

cas_hr cas_json_write_atomic(const char *path, const cJSON *root, mode_t mode)
{
    char *text = root ? cJSON_Print(root) : NULL;
    if (!text)
        return cas_fail(CAS_E_OUTOFMEMORY, "out of memory");
    cas_hr hr = cas_fs_write_atomic(path, text, strlen(text), mode);
    free(text);
    return hr;
}
