/* Package path rules, URL encoding of package paths, and the identifier formats. */
#include "common/path.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

cas_hr cas_path_check(const char *p, size_t len)
{
    if (!p || len == 0)
        return cas_fail(CAS_E_BAD_NAME, "empty path");
    if (len > CAS_PATH_MAX)
        return cas_fail(CAS_E_BAD_NAME, "path longer than %d bytes", CAS_PATH_MAX);
    /* Characters first, so that every later detail can quote the whole path safely. */
    for (size_t i = 0; i < len; i++) {
        const char *what = NULL;
        switch (p[i]) {
        case '\0':
            what = "NUL byte";
            break;
        case '\\':
            what = "backslash";
            break;
        case '\r':
            what = "carriage return";
            break;
        case '\n':
            what = "newline";
            break;
        default:
            continue;
        }
        return cas_fail(CAS_E_BAD_NAME, "%s in path after '%.*s'", what, (int)i, p);
    }

    if (p[0] == '/')
        return cas_fail(CAS_E_BAD_NAME, "absolute path '%.*s'", (int)len, p);

    size_t seg = 0; /* start of the current segment */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        size_t n = i - seg;
        if (n == 0)
            return cas_fail(CAS_E_BAD_NAME, "empty segment in path '%.*s'", (int)len, p);
        if ((n == 1 && p[seg] == '.') || (n == 2 && p[seg] == '.' && p[seg + 1] == '.'))
            return cas_fail(CAS_E_BAD_NAME, "'.' or '..' segment in path '%.*s'", (int)len, p);
        if (n > CAS_PATH_SEG_MAX)
            return cas_fail(CAS_E_BAD_NAME, "segment longer than %d bytes in path '%.*s'",
                            CAS_PATH_SEG_MAX, (int)len, p);
        seg = i + 1;
    }
    return CAS_OK;
}

static int cas_url_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *cas_path_url_encode(const char *p)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = strlen(p);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '/' || cas_url_unreserved(c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = digits[c >> 4];
            *o++ = digits[c & 0x0F];
        }
    }
    *o = '\0';
    return out;
}

static int cas_id_site_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int cas_id_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int cas_id_is_site(const char *s)
{
    return s && cas_id_site_char(s[0]) && cas_id_site_char(s[1]) && cas_id_site_char(s[2]) &&
           s[3] == '\0';
}

/* The 8 characters of a package id at s, whatever follows them. */
static int cas_id_package_prefix(const char *s)
{
    for (int i = 0; i < 3; i++) {
        if (!cas_id_site_char(s[i]))
            return 0;
    }
    for (int i = 3; i < 8; i++) {
        if (!cas_id_hex_upper(s[i]))
            return 0;
    }
    return 1;
}

int cas_id_is_package(const char *s)
{
    return s && cas_id_package_prefix(s) && s[8] == '\0';
}

int cas_id_is_content(const char *s)
{
    if (!s || !cas_id_package_prefix(s) || s[8] != '.')
        return 0;
    const char *v = s + 9;
    if (*v < '1' || *v > '9')
        return 0;
    /* The version is carried as a uint64_t elsewhere: refuse one that would not fit. */
    uint64_t value = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return 0;
        unsigned d = (unsigned)(*v - '0');
        if (value > (UINT64_MAX - d) / 10)
            return 0;
        value = value * 10 + d;
    }
    return 1;
}

int cas_url_is_base(const char *s)
{
    size_t n = strlen(s);
    const char *rest;
    if (n > CAS_URL_MAX)
        return 0;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return 0;
    if (*rest == '\0' || *rest == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || c == '?' || c == '#')
            return 0;
    }
    return 1;
}
