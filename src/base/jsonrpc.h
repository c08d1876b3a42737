/* jsonrpc.h — the JSON-RPC 2.0 layer shared by `sandpit serve` (a Unix
 * socket) and `sandpit mcp` (stdio): newline-delimited framing with a bound
 * on message size, strict validation of requests, notifications, responses
 * and batches, and builders for replies. Pure code: no fds but the ones a
 * caller hands to sp_jrpc_out_flush, so it can be fuzzed
 * (tests/fuzz/fuzz_jsonrpc.c). */
#ifndef SANDPIT_JSONRPC_H
#define SANDPIT_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto.h" /* struct sp_proto_out */

/* Default and largest size of one message (a line), and the most entries
 * of one batch. A file_write of a few MiB of base64 fits. */
#define SP_JRPC_MAX_MSG (16 * 1024 * 1024)
#define SP_JRPC_MAX_BATCH 128
/* Longest id string and method name accepted. */
#define SP_JRPC_MAX_ID 256
#define SP_JRPC_MAX_METHOD 128
/* Most bytes queued for a peer that does not read its replies. */
#define SP_JRPC_MAX_OUTBUF (64 * 1024 * 1024)

/* Error codes of JSON-RPC 2.0, then the server's own (-32000 .. -32099). */
enum {
    SP_JRPC_PARSE = -32700,
    SP_JRPC_INVALID = -32600,
    SP_JRPC_METHOD = -32601,
    SP_JRPC_PARAMS = -32602,
    SP_JRPC_INTERNAL = -32603,
    SP_JRPC_FAILED = -32000,    /* the library refused or failed (message says why) */
    SP_JRPC_DENIED = -32001,    /* the operator's policy does not allow it */
    SP_JRPC_BUSY = -32002,      /* a bound was reached */
};

/* Line framing. A line longer than max is discarded up to its newline and
 * reported once as -EMSGSIZE. */
struct sp_jrpc_in {
    char *data;
    size_t len, cap, scan;
    size_t max;
    size_t pending;             /* the line handed out, consumed next call */
    bool skipping;              /* inside an oversized line */
};
void sp_jrpc_in_init(struct sp_jrpc_in *b, size_t max);
void sp_jrpc_in_free(struct sp_jrpc_in *b);
/* Append bytes. Returns 0 or -ENOMEM. */
int sp_jrpc_in_feed(struct sp_jrpc_in *b, const char *data, size_t len);
/* Next complete line (without its newline, NUL-terminated, borrowed until
 * the next call): 1 with *ret and *ret_len, 0 when none is complete, -EMSGSIZE once per
 * oversized line. */
int sp_jrpc_in_next(struct sp_jrpc_in *b, const char **ret, size_t *ret_len);

/* One message of a line (or of a batch). */
enum sp_jrpc_kind {
    SP_JRPC_REQUEST = 1,        /* method + id: answer it */
    SP_JRPC_NOTIFY,             /* method, no id: never answered */
    SP_JRPC_RESPONSE,           /* result or error: a reply to us */
};
struct sp_jrpc_msg {
    int kind;
    json_t *id;                 /* borrowed; NULL for notifications */
    const char *method;
    json_t *params;             /* object or array, or NULL */
    json_t *result, *error;     /* responses */
};

/* Parse a line. Returns 0 with *ret (an object, or an array = a batch;
 * caller decrefs), or SP_JRPC_PARSE (not JSON) / SP_JRPC_INVALID (an empty
 * batch, a batch over SP_JRPC_MAX_BATCH, or neither object nor array) with
 * *why set. */
int sp_jrpc_parse(const char *line, size_t len, json_t **ret,
                  const char **why);
/* Check one message (an element of a batch, or the line's object) against
 * JSON-RPC 2.0: "jsonrpc":"2.0"; an id that is a string (<=
 * SP_JRPC_MAX_ID bytes), an integer or null (null only in a response: a
 * request's id is never null); a method string; params an
 * object or an array. Returns 0 with *m filled (pointers borrowed from o),
 * or SP_JRPC_INVALID (SP_JRPC_PARAMS for a string in params holding a
 * NUL, which the parser lets through for this) with *why and m->id set
 * when an id could be read (so the error reply can carry it). */
int sp_jrpc_check(json_t *o, struct sp_jrpc_msg *m, const char **why);

/* Replies as objects (ids are copied; result and data are stolen). */
json_t *sp_jrpc_result(json_t *id, json_t *result);
json_t *sp_jrpc_error(json_t *id, int code, json_t *data, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* A notification or a request we send (params stolen; id may be NULL). */
json_t *sp_jrpc_request(json_t *id, const char *method, json_t *params);

/* An output queue that never blocks the server: lines are written as the
 * fd (a pipe or socket, O_NONBLOCK) takes them. */
struct sp_jrpc_out {
    struct sp_proto_out q;       /* proto.h's queue, written with write(2) */
    size_t max;
};
void sp_jrpc_out_init(struct sp_jrpc_out *q, size_t max);
/* Queue o (stolen) as one line. Returns 0, -ENOMEM, or -ENOBUFS when the
 * queue would pass its bound (the peer does not read). */
int sp_jrpc_out_push(struct sp_jrpc_out *q, json_t *o);
/* Write what fd takes: 0 when empty, 1 when bytes remain (wait for
 * POLLOUT), -errno when the peer is gone. */
int sp_jrpc_out_flush(struct sp_jrpc_out *q, int fd);
/* Is anything left to write? */
bool sp_jrpc_out_pending(const struct sp_jrpc_out *q);
void sp_jrpc_out_free(struct sp_jrpc_out *q);

/* Text as a JSON string even when it is not valid UTF-8: invalid bytes
 * become U+FFFD. NULL on ENOMEM. */
json_t *sp_jrpc_string_lossy(const char *s, size_t len);
/* The longest prefix of s[0..len) that ends on a UTF-8 character
 * boundary (never cuts a multi-byte sequence). */
size_t sp_jrpc_utf8_cut(const char *s, size_t len);

#endif
