/* Package path rules, enforced when a package is built and when a listing is read. */
#ifndef CAS_PATH_H
#define CAS_PATH_H

#include <stddef.h>

#include "error.h"

#define CAS_PATH_MAX     4096 /* bytes of a relative path P */
#define CAS_PATH_SEG_MAX 255  /* bytes of one segment */

/* CAS_OK if P is a safe relative package path: not empty, no leading '/', no empty segment
 * (so no "//" and no trailing '/'), no "." or ".." segment, no backslash, CR, LF or NUL
 * (len bytes are checked, so an embedded NUL is caught), segments at most CAS_PATH_SEG_MAX
 * bytes, the whole at most CAS_PATH_MAX. Otherwise CAS_E_BAD_NAME with a detail naming the rule. */
cas_hr cas_path_check(const char *p, size_t len);

/* Percent-encode each segment of P for a URL (RFC 3986 unreserved characters and '/' kept).
 * Returns a malloc'd string or NULL when out of memory. */
char *cas_path_url_encode(const char *p);

#define CAS_URL_MAX 2048 /* bytes of a location or management point URL */

/* 1 if s is an http:// or https:// base URL the agent can append paths to: a host, at most
 * CAS_URL_MAX bytes, no whitespace or control characters, and no '?' or '#' (the agent appends
 * "/<content>.sums", "/<content>/<path>" or ".sig", which would land inside a query or
 * fragment). */
int cas_url_is_base(const char *s);

/* Content and package identifiers. Package: 3 of [A-Z0-9] then 5 of [0-9A-F] ("CEN00002").
 * Content: package '.' positive decimal version without leading zeros ("CEN00002.2"). Site code:
 * 3 of [A-Z0-9]. Each returns 1 if valid. */
int cas_id_is_site(const char *s);
int cas_id_is_package(const char *s);
int cas_id_is_content(const char *s);

#endif
