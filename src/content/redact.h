/* redact.h — replace secret values in a byte stream by "[REDACTED:NAME]".
 *
 * A set of secrets (name, value) is matched against a stream fed in chunks
 * of any size: a value split across two chunks is still found, because
 * the bytes at the end of a chunk that could be the start of a value are
 * held back until the next chunk (or the end) decides. At a position the
 * longest value that matches wins; matching resumes after it.
 *
 * Lifecycle: sp_redact_new() -> sp_redact_add() (each secret) ->
 * sp_redact_stream_new() (any number, one per stream) -> sp_redact_feed()
 * ... -> sp_redact_finish() -> sp_redact_stream_free(); sp_redact_free(). */
#ifndef SANDPIT_REDACT_H
#define SANDPIT_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "sandpit.h"

/* Shortest secret value accepted: shorter ones would redact common bytes
 * and tell an observer which few bytes the secret is. */
#define SP_REDACT_MIN_SECRET 4
/* Longest secret value, and most secrets in one set. */
#define SP_REDACT_MAX_SECRET (64 * 1024)
#define SP_REDACT_MAX_SECRETS 64
/* Longest secret name: [A-Za-z0-9_.-], 1 to 64 bytes. */
#define SP_REDACT_MAX_NAME 64

struct sp_redact;
struct sp_redact_stream;

struct sp_redact *sp_redact_new(void);
void sp_redact_free(struct sp_redact *r);

/* Add a secret. Returns 0, or -EINVAL (a bad name, a value shorter than
 * SP_REDACT_MIN_SECRET or longer than SP_REDACT_MAX_SECRET, a name used
 * twice), -E2BIG (too many secrets), -ENOMEM; err says which. */
int sp_redact_add(struct sp_redact *r, const char *name, const void *value,
                  size_t len, sp_error *err);
size_t sp_redact_count(const struct sp_redact *r);

/* Where redacted bytes go; returns 0 or < 0 to stop (returned as is). */
typedef int (*sp_redact_out_fn)(void *ctx, const void *data, size_t len);

/* A stream over r (r must outlive it). NULL on ENOMEM. */
struct sp_redact_stream *sp_redact_stream_new(const struct sp_redact *r);
void sp_redact_stream_free(struct sp_redact_stream *s);
/* Feed len bytes; what is decided is passed to out (in order). Returns 0
 * or out's error, or -ENOMEM. */
int sp_redact_feed(struct sp_redact_stream *s, const void *data, size_t len,
                   sp_redact_out_fn out, void *ctx);
/* End of stream: the held-back bytes (no value can complete any more) go
 * out. */
int sp_redact_finish(struct sp_redact_stream *s, sp_redact_out_fn out,
                     void *ctx);
/* Bytes held back now (for tests: never more than the longest value - 1). */
size_t sp_redact_held(const struct sp_redact_stream *s);

/* Redact a whole buffer at once: a new buffer (caller frees) in *ret,
 * its length in *ret_len. Returns 0 or -ENOMEM. */
int sp_redact_buffer(const struct sp_redact *r, const void *data, size_t len,
                     char **ret, size_t *ret_len);

#endif
