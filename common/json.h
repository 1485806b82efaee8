/* Strict JSON reading over cJSON, shared by the policy and configuration loaders. */
#ifndef CAS_JSON_H
#define CAS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "error.h"

/* Parse a buffer as one JSON document: valid UTF-8, no NUL byte, nothing but whitespace after
 * the value, nesting at most max_depth, and no object with a duplicate key anywhere (a parser
 * differential that could hide a field from a reviewer). `what` names the document in errors.
 * CAS_E_INVALID_DATA on failure, with the byte offset in the detail. */
cas_hr cas_json_parse(const char *buf, size_t len, int max_depth, const char *what, cJSON **out);

/* 1 if the number item holds an integer in [min, max] (exactly representable). */
int cas_json_is_int(const cJSON *item, int64_t min, int64_t max);

/* The serial recorded in a state file (a JSON object with an integer "serial", at most 64 KiB).
 * A missing file: *serial 0 and CAS_OK. A file that exists but cannot be read or parsed is an
 * error, never 0: taking it for "no state" would reopen the door to replays. */
cas_hr cas_json_read_serial(const char *path, uint64_t *serial);

/* Write `root` as indented JSON to path, atomically and durably (cas_fs_write_atomic). */
cas_hr cas_json_write_atomic(const char *path, const cJSON *root, mode_t mode);

/* Add `key` to object o: the time as RFC 3339 UTC ("2026-11-23T06:00:00Z"), or null when t is 0
 * (unknown / never). */
void cas_json_add_time(cJSON *o, const char *key, time_t t);

#endif
