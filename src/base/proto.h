/* proto.h — the wire format shared by the control socket (client <->
 * supervisor) and the socketpair (supervisor <-> agent): one JSON object per
 * line, JSON-RPC 2.0 shaped, with up to SP_PROTO_MAX_FDS file descriptors
 * riding (SCM_RIGHTS) with the first byte of the message that carries them.
 *
 * Framing: bytes are read into an sp_proto_buf; complete lines are taken
 * with sp_proto_next_line(); fds that arrive are queued in order and taken
 * by the message that needs them (an exec takes three). Every size is
 * bounded (bounds.h): a line longer than SP_PROTO_MAX_LINE, or more than
 * SP_PROTO_MAX_FDS fds queued, is an error the caller answers by dropping
 * the peer. */
#ifndef SANDPIT_PROTO_H
#define SANDPIT_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bounds.h"
#include "sandpit.h"

/* Error codes in replies: JSON-RPC's own, then sandpit's. */
enum {
    SP_RPC_PARSE = -32700,        /* not JSON */
    SP_RPC_INVALID = -32600,      /* JSON, but not a request */
    SP_RPC_METHOD = -32601,       /* no such method */
    SP_RPC_PARAMS = -32602,       /* bad params */
    SP_RPC_INTERNAL = -32603,
    SP_RPC_BUSY = 1,              /* a bound was reached (pending, execs) */
    SP_RPC_EXEC = 2,              /* the command could not be started */
    SP_RPC_GONE = 3,              /* the workspace is stopping or crashed */
    SP_RPC_FDS = 4,               /* a passed fd was refused */
    SP_RPC_DENIED = 5,            /* not allowed */
    SP_RPC_FILE = 20,             /* a file operation failed; the error's
                                     "data":{"errno":N} says why */
};

struct sp_proto_buf {
    char *data;
    size_t len, cap;
    size_t scan;                  /* bytes before this hold no '\n' */
    /* Two messages' worth: a long message's fds arrive with its first
     * bytes, and the next message's may arrive before its last ones. */
    int fds[2 * SP_PROTO_MAX_FDS];
    size_t n_fds;
    size_t frame_need;            /* bytes of a binary frame being awaited
                                     (sp_proto_next_framed) */
};

void sp_proto_buf_init(struct sp_proto_buf *b);
/* Free the buffer and close every queued fd. Accepts NULL. */
void sp_proto_buf_free(struct sp_proto_buf *b);

/* One recvmsg() from sock into b. Returns the bytes read (> 0), 0 at EOF,
 * -EAGAIN when nothing is there (non-blocking sockets), -EMSGSIZE when the
 * buffered partial line passes SP_PROTO_MAX_LINE, -EPROTO when more fds
 * arrived than may be queued or the control data was truncated (the fds
 * are closed), or another -errno. */
ssize_t sp_proto_recv(int sock, struct sp_proto_buf *b);

/* Append bytes as if received (tests, fuzzing). Returns 0 or -EMSGSIZE /
 * -ENOMEM. */
int sp_proto_feed(struct sp_proto_buf *b, const char *data, size_t len);

/* Take the next complete line (without its '\n'): returns 1 and sets
 * *ret_line (caller frees, NUL-terminated) and *ret_len; 0 when no line is
 * complete yet; -EMSGSIZE when the pending partial line is over the bound;
 * -ENOMEM. */
int sp_proto_next_line(struct sp_proto_buf *b, char **ret_line,
                       size_t *ret_len);

/* Binary frames (bulk bytes: file contents, patches): a message whose
 * top-level object holds "frame":N (0 < N <= SP_PROTO_MAX_FRAME) is
 * followed on the wire by exactly N raw bytes, not JSON. Like
 * sp_proto_next_line, but a line announcing a frame is returned only once
 * the whole frame is buffered: *ret_frame (caller frees; NULL when the
 * message has none) and *ret_frame_len. Returns 1, 0 (incomplete), or
 * -EPROTO (a bad "frame" value), -EMSGSIZE, -ENOMEM. */
int sp_proto_next_framed(struct sp_proto_buf *b, char **ret_line,
                         size_t *ret_len, char **ret_frame,
                         size_t *ret_frame_len);

/* Take up to n of the oldest queued fds into fds; returns how many. */
size_t sp_proto_take_fds(struct sp_proto_buf *b, int *fds, size_t n);

/* A parsed message: a request ("method" set) or a reply ("result" or
 * "error" set). Borrowed pointers live as long as root. */
struct sp_proto_msg {
    json_t *root;
    json_t *id;                  /* NULL: a notification */
    const char *method;          /* requests */
    json_t *params;              /* requests: an object, or NULL */
    json_t *result;              /* replies */
    bool is_error;               /* replies */
    int err_code;
    const char *err_message;
};

/* Parse one line. Returns 0, or -EPROTO with err saying what is wrong (not
 * JSON, not an object, an id that is not a number or a short string, a
 * method that is not a short string, params not an object, neither method
 * nor result/error) or -EMSGSIZE. *ret is set only on success. */
int sp_proto_parse(const char *line, size_t len, struct sp_proto_msg *ret,
                   sp_error *err);
void sp_proto_msg_free(struct sp_proto_msg *m);

/* The reply code for a failed sp_proto_parse (parse vs invalid request). */
int sp_proto_parse_code(const char *line, size_t len);

/* Build a newline-terminated line (caller frees; NULL on ENOMEM). `id` may
 * be NULL (a notification / no id); params and result are stolen. */
char *sp_proto_request(json_t *id, const char *method, json_t *params);
char *sp_proto_result(json_t *id, json_t *result);
char *sp_proto_error(json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Dump o (stolen) as one newline-terminated line (caller frees; NULL on
 * ENOMEM). For messages the helpers above do not build (a "frame"). */
char *sp_proto_line(json_t *o);

/* One recvmsg() of at most len bytes and at most one fd (O_CLOEXEC) into
 * *fd (-1: none; flags: e.g. MSG_DONTWAIT). Returns the bytes read (0 at
 * EOF), or -errno (-EPROTO, no fd, when more than one came). */
ssize_t sp_recv_fd(int sock, void *buf, size_t len, int flags, int *fd);

/* Send all of line on a blocking or non-blocking socket (waits with poll
 * when the socket is full); fds ride with the first byte. MSG_NOSIGNAL.
 * Returns 0 or -errno. */
int sp_proto_send(int sock, const char *line, size_t len, const int *fds,
                  size_t n_fds);

/* An output queue for a non-blocking peer that must never block us. */
struct sp_proto_out_msg {
    char *data;
    size_t len, off;
    int fds[SP_PROTO_MAX_FDS];
    size_t n_fds;                /* sent (and closed) with the first byte */
    struct sp_proto_out_msg *next;
};
struct sp_proto_out {
    struct sp_proto_out_msg *head, *tail;
    size_t bytes;
};
/* Queue line (taken over) with fds (taken over: closed once sent or when
 * the queue is freed). Returns 0, or -ENOBUFS when the queue would pass
 * max_bytes (nothing taken: the caller still owns line and fds). */
int sp_proto_out_push(struct sp_proto_out *q, char *line, const int *fds,
                      size_t n_fds, size_t max_bytes);
/* Queue len raw bytes (taken over; a frame). Returns 0, or -ENOBUFS as
 * above (nothing taken). */
int sp_proto_out_push_bytes(struct sp_proto_out *q, char *data, size_t len,
                            size_t max_bytes);
/* Send what the socket takes. Returns 0 when the queue is empty, 1 when
 * bytes remain (wait for POLLOUT), or -errno (peer gone). */
int sp_proto_out_flush(struct sp_proto_out *q, int sock);
/* The same through write(2), for a pipe or a tty (messages without fds). */
int sp_proto_out_write(struct sp_proto_out *q, int fd);
void sp_proto_out_free(struct sp_proto_out *q);

/* Param helpers: each returns 0 (value set, or left alone when the key is
 * absent and !required) or -EINVAL with err naming the key. */
int sp_proto_get_string(json_t *params, const char *key, bool required,
                        size_t max_len, const char **ret, sp_error *err);
int sp_proto_get_number(json_t *params, const char *key, bool required,
                        double min, double max, double *ret, sp_error *err);
/* An array of strings, each at most max_len bytes and without NUL, at most
 * max_n entries (at least min_n); *ret is a NULL-terminated array of
 * borrowed pointers (caller frees the array only). */
int sp_proto_get_strv(json_t *params, const char *key, bool required,
                      size_t min_n, size_t max_n, size_t max_len,
                      const char ***ret, sp_error *err);

#endif
