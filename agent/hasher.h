/* Hashing off the transfer thread: a job's files are hashed by one worker thread as they are
 * written, so that hashing overlaps receiving instead of following it.
 *
 * A stream is one file being written through one descriptor. The writer appends bytes to the
 * file itself and reports how far it has written; the worker reads them back (from the page
 * cache) and feeds the digest. The first CAS_HASHER_INLINE bytes of a stream are hashed by the
 * caller from its own buffer: handing small files to a thread costs more than it saves. */
#ifndef CAS_AGENT_HASHER_H
#define CAS_AGENT_HASHER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/hash.h"

#define CAS_HASHER_INLINE (1u << 20)

struct cas_hasher;
struct cas_hasher_stream;

/* Starts the worker thread. NULL when out of memory or no thread could be started; callers then
 * pass NULL to cas_hasher_stream_new, and every stream is hashed inline. */
struct cas_hasher *cas_hasher_new(void);
/* Stops the worker. Every stream must have been freed. NULL is allowed. */
void cas_hasher_free(struct cas_hasher *hs);

/* A stream over fd (which the caller keeps open until cas_hasher_stream_free), whose first
 * `prefix` bytes are already in the file and still to be hashed. hs may be NULL (all inline).
 * NULL when out of memory. */
struct cas_hasher_stream *cas_hasher_stream_new(struct cas_hasher *hs, int fd,
                                                enum cas_hash_alg alg, uint64_t prefix);
/* `data` (len bytes) has just been appended to the file. Never blocks on the worker. */
void cas_hasher_stream_wrote(struct cas_hasher_stream *s, const void *data, size_t len);
/* Waits until everything written is hashed, then writes the lower-case hex digest of the whole
 * stream into hex. CAS_E_IO (with a detail) if the file could not be read back. */
cas_hr cas_hasher_stream_final(struct cas_hasher_stream *s, char *hex);
/* Forgets everything hashed so far (the file was truncated to 0 by the caller). Waits for the
 * worker first. */
cas_hr cas_hasher_stream_reset(struct cas_hasher_stream *s);
/* Stops hashing the stream (abandoning queued work) and frees it. NULL is allowed. */
void cas_hasher_stream_free(struct cas_hasher_stream *s);

#endif
