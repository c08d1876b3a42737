/* proto.c — line framing, fd passing and message parsing for the control
 * socket and the agent socketpair (proto.h). Everything a peer sends is
 * bounded before it is stored: lines by SP_PROTO_MAX_LINE, fds by
 * SP_PROTO_MAX_FDS, ids and methods by their own bounds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proto.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

void sp_proto_buf_init(struct sp_proto_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void sp_proto_buf_free(struct sp_proto_buf *b)
{
    if (!b)
        return;
    free(b->data);
    for (size_t i = 0; i < b->n_fds; i++)
        sp_close_keep_errno(b->fds[i]);
    memset(b, 0, sizeof(*b));
}

/* Room for `more` bytes, never past one line's bound plus one read. */
static int reserve(struct sp_proto_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *n = realloc(b->data, cap);
    if (!n)
        return -ENOMEM;
    b->data = n;
    b->cap = cap;
    return 0;
}

/* Is there a line over the bound in the buffer (no '\n' within the first
 * SP_PROTO_MAX_LINE bytes)? */
static bool over_bound(const struct sp_proto_buf *b)
{
    if (b->len < SP_PROTO_MAX_LINE)
        return false;
    return !memchr(b->data, '\n', SP_PROTO_MAX_LINE);
}

int sp_proto_feed(struct sp_proto_buf *b, const char *data, size_t len)
{
    if (len == 0)
        return over_bound(b) ? -EMSGSIZE : 0;
    if (reserve(b, len) < 0)
        return -ENOMEM;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return over_bound(b) ? -EMSGSIZE : 0;
}

ssize_t sp_proto_recv(int sock, struct sp_proto_buf *b)
{
    /* Read at most what keeps one line within its bound (+1 to see that it
     * is over), so a peer cannot grow the buffer without end. */
    size_t want = 65536;
    size_t limit = (size_t)SP_PROTO_MAX_LINE + 1 + b->frame_need;
    if (b->len >= limit)
        return -EMSGSIZE;
    /* A frame being awaited: read it in larger pieces. */
    if (b->frame_need > want) {
        want = b->frame_need < (size_t)(4 << 20) ? b->frame_need : (4 << 20);
        if (want > limit - b->len)
            want = limit - b->len;
    }
    if (reserve(b, want) < 0)
        return -ENOMEM;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * SP_PROTO_MAX_FDS)];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {b->data + b->len, want};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;

    /* One message carries at most SP_PROTO_MAX_FDS (the buffer may hold a
     * few more through alignment; they are counted and refused too). */
    bool too_many = (mh.msg_flags & MSG_CTRUNC) != 0;
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *in = (int *)(void *)CMSG_DATA(c);
        for (size_t i = 0; i < k; i++) {
            int fd = -1;
            memcpy(&fd, &in[i], sizeof(fd));
            if (++got <= SP_PROTO_MAX_FDS && b->n_fds < SP_ARRAY_SIZE(b->fds)) {
                b->fds[b->n_fds++] = fd;
            } else {
                close(fd);
                too_many = true;
            }
        }
    }
    b->len += (size_t)n;
    if (too_many)
        return -EPROTO;
    if (n > 0 && over_bound(b))
        return -EMSGSIZE;
    return n;
}

/* The complete line at the front of b: 1 with its length (newline not
 * counted), 0 when more input is needed, -EMSGSIZE past the bound. Scans
 * only what arrived since the last call. */
static int front_line(struct sp_proto_buf *b, size_t *ret_len)
{
    if (b->scan > b->len)
        b->scan = b->len;
    char *nl = b->len > b->scan ? memchr(b->data + b->scan, '\n',
                                         b->len - b->scan)
                                : NULL;
    if (!nl) {
        b->scan = b->len;
        return over_bound(b) ? -EMSGSIZE : 0;
    }
    size_t llen = (size_t)(nl - b->data);
    if (llen + 1 > SP_PROTO_MAX_LINE)
        return -EMSGSIZE;
    *ret_len = llen;
    return 1;
}

int sp_proto_next_line(struct sp_proto_buf *b, char **ret_line,
                       size_t *ret_len)
{
    size_t llen = 0;
    int fr = front_line(b, &llen);
    if (fr <= 0)
        return fr;
    char *nl = b->data + llen;
    char *line = malloc(llen + 1);
    if (!line)
        return -ENOMEM;
    memcpy(line, b->data, llen);
    line[llen] = '\0';
    memmove(b->data, nl + 1, b->len - llen - 1);
    b->len -= llen + 1;
    b->scan = 0;
    *ret_line = line;
    *ret_len = llen;
    return 1;
}

/* The "frame" of a line: 0 when it has none, the length, or -EPROTO. */
static long long line_frame(const char *line, size_t len)
{
    static const char key[] = "\"frame\"";
    if (!memmem(line, len, key, sizeof(key) - 1))
        return 0;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *f = json_is_object(root) ? json_object_get(root, "frame") : NULL;
    long long n = 0;
    if (f) {
        n = json_is_integer(f) ? (long long)json_integer_value(f) : -1;
        if (n <= 0 || n > SP_PROTO_MAX_FRAME)
            n = -EPROTO;
    }
    json_decref(root);
    return n;
}

int sp_proto_next_framed(struct sp_proto_buf *b, char **ret_line,
                         size_t *ret_len, char **ret_frame,
                         size_t *ret_frame_len)
{
    *ret_frame = NULL;
    *ret_frame_len = 0;
    size_t llen = 0;
    int fr = front_line(b, &llen);
    if (fr <= 0)
        return fr;
    char *nl = b->data + llen;
    /* The line stays at the front until its frame is complete: scan stays
     * at its newline so it is found again at once. */
    b->scan = llen;
    long long fl = line_frame(b->data, llen);
    if (fl < 0)
        return (int)fl;
    size_t flen = (size_t)fl;
    if (b->len - llen - 1 < flen) {
        b->frame_need = flen;
        return 0;
    }
    char *line = malloc(llen + 1);
    char *frame = flen ? malloc(flen) : NULL;
    if (!line || (flen && !frame)) {
        free(line);
        free(frame);
        return -ENOMEM;
    }
    memcpy(line, b->data, llen);
    line[llen] = '\0';
    if (flen)
        memcpy(frame, nl + 1, flen);
    size_t used = llen + 1 + flen;
    memmove(b->data, b->data + used, b->len - used);
    b->len -= used;
    b->scan = 0;
    b->frame_need = 0;
    if (b->cap > (size_t)(1 << 20) && b->len < (size_t)(1 << 16)) {
        /* Give back what a large frame made us hold. */
        char *n = realloc(b->data, 1 << 16);
        if (n) {
            b->data = n;
            b->cap = 1 << 16;
        }
    }
    *ret_line = line;
    *ret_len = llen;
    *ret_frame = frame;
    *ret_frame_len = flen;
    return 1;
}

size_t sp_proto_take_fds(struct sp_proto_buf *b, int *fds, size_t n)
{
    size_t k = n < b->n_fds ? n : b->n_fds;
    if (k == 0)
        return 0;
    memcpy(fds, b->fds, k * sizeof(int));
    memmove(b->fds, b->fds + k, (b->n_fds - k) * sizeof(int));
    b->n_fds -= k;
    return k;
}

static bool id_ok(json_t *id)
{
    if (json_is_integer(id))
        return true;
    if (json_is_string(id))
        return json_string_length(id) <= SP_PROTO_MAX_ID;
    return false;
}

int sp_proto_parse(const char *line, size_t len, struct sp_proto_msg *ret,
                   sp_error *err)
{
    if (len + 1 > SP_PROTO_MAX_LINE)
        return sp_error_setk(err, SP_ERR_USAGE, EMSGSIZE,
                             "message longer than %d bytes",
                             SP_PROTO_MAX_LINE);
    json_error_t je;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sp_error_setk(err, SP_ERR_USAGE, EPROTO,
                             "malformed message: %s", je.text);
    struct sp_proto_msg m;
    memset(&m, 0, sizeof(m));
    m.root = root;
    const char *why = NULL;
    if (!json_is_object(root)) {
        why = "not a JSON object";
        goto bad;
    }
    m.id = json_object_get(root, "id");
    if (m.id && json_is_null(m.id))
        m.id = NULL;
    if (m.id && !id_ok(m.id)) {
        why = "\"id\" must be an integer or a string of at most 128 bytes";
        goto bad;
    }
    json_t *method = json_object_get(root, "method");
    json_t *result = json_object_get(root, "result");
    json_t *error = json_object_get(root, "error");
    if (method) {
        if (!json_is_string(method) ||
            json_string_length(method) > SP_PROTO_MAX_METHOD ||
            json_string_length(method) == 0 ||
            strlen(json_string_value(method)) != json_string_length(method)) {
            why = "\"method\" must be a short string";
            goto bad;
        }
        if (result || error) {
            why = "a request has no \"result\" or \"error\"";
            goto bad;
        }
        m.method = json_string_value(method);
        m.params = json_object_get(root, "params");
        if (m.params && json_is_null(m.params))
            m.params = NULL;
        if (m.params && !json_is_object(m.params)) {
            why = "\"params\" must be an object";
            goto bad;
        }
    } else if (result && !error) {
        m.result = result;
    } else if (error && !result) {
        json_t *code = json_object_get(error, "code");
        json_t *msg = json_object_get(error, "message");
        if (!json_is_object(error) || !json_is_integer(code) ||
            !json_is_string(msg)) {
            why = "\"error\" must hold an integer code and a message";
            goto bad;
        }
        json_int_t c = json_integer_value(code);
        m.is_error = true;
        m.err_code = c < INT32_MIN || c > INT32_MAX ? SP_RPC_INTERNAL : (int)c;
        m.err_message = json_string_value(msg);
    } else {
        why = "neither a request (\"method\") nor a reply (\"result\" or "
              "\"error\")";
        goto bad;
    }
    *ret = m;
    return 0;
bad:
    json_decref(root);
    return sp_error_setk(err, SP_ERR_USAGE, EPROTO, "invalid message: %s",
                         why);
}

int sp_proto_parse_code(const char *line, size_t len)
{
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    if (!root)
        return SP_RPC_PARSE;
    json_decref(root);
    return SP_RPC_INVALID;
}

void sp_proto_msg_free(struct sp_proto_msg *m)
{
    if (!m)
        return;
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

static char *dump_line(json_t *o)
{
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *l = realloc(s, n + 2);
    if (!l) {
        free(s);
        return NULL;
    }
    l[n] = '\n';
    l[n + 1] = '\0';
    return l;
}

char *sp_proto_line(json_t *o)
{
    return dump_line(o);
}

char *sp_proto_request(json_t *id, const char *method, json_t *params)
{
    json_t *o = json_object();
    if (!o) {
        json_decref(params);
        return NULL;
    }
    if (id)
        json_object_set(o, "id", id);
    json_object_set_new(o, "method", json_string(method));
    if (params)
        json_object_set_new(o, "params", params);
    return dump_line(o);
}

char *sp_proto_result(json_t *id, json_t *result)
{
    json_t *o = json_object();
    if (!o) {
        json_decref(result);
        return NULL;
    }
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "result", result ? result : json_object());
    return dump_line(o);
}

char *sp_proto_error(json_t *id, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_t *e = json_object();
    if (!o || !e) {
        json_decref(o);
        json_decref(e);
        return NULL;
    }
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(msg));
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "error", e);
    return dump_line(o);
}

/* One sendmsg with fds attached (when n_fds > 0). */
static ssize_t send_some(int sock, const char *data, size_t len,
                         const int *fds, size_t n_fds)
{
    struct iovec iov = {(void *)data, len};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * SP_PROTO_MAX_FDS)];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    if (n_fds > 0) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t sp_recv_fd(int sock, void *buf, size_t len, int flags, int *fd)
{
    *fd = -1;
    struct iovec iov = {buf, len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(fd, CMSG_DATA(cm), sizeof(int));
    if (mh.msg_flags & MSG_CTRUNC) {
        /* more fds than one: none of them is taken */
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return -EPROTO;
    }
    return n;
}

int sp_proto_send(int sock, const char *line, size_t len, const int *fds,
                  size_t n_fds)
{
    if (n_fds > SP_PROTO_MAX_FDS)
        return -EINVAL;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send_some(sock, line + off, len - off,
                              off == 0 ? fds : NULL, off == 0 ? n_fds : 0);
        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            struct pollfd p = {sock, POLLOUT, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        if (n < 0)
            return (int)n;
        off += (size_t)n;
    }
    return 0;
}

int sp_proto_out_push(struct sp_proto_out *q, char *line, const int *fds,
                      size_t n_fds, size_t max_bytes)
{
    if (n_fds > SP_PROTO_MAX_FDS)
        return -ENOBUFS;
    int r = sp_proto_out_push_bytes(q, line, strlen(line), max_bytes);
    if (r == 0 && n_fds) {
        memcpy(q->tail->fds, fds, n_fds * sizeof(int));
        q->tail->n_fds = n_fds;
    }
    return r;
}

int sp_proto_out_push_bytes(struct sp_proto_out *q, char *data, size_t len,
                            size_t max_bytes)
{
    if (q->bytes + len > max_bytes)
        return -ENOBUFS;
    struct sp_proto_out_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->data = data;
    m->len = len;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->bytes += len;
    return 0;
}

static void out_msg_free(struct sp_proto_out_msg *m)
{
    free(m->data);
    for (size_t i = 0; i < m->n_fds; i++)
        sp_close_keep_errno(m->fds[i]);
    free(m);
}

/* write(2) what fd takes (a pipe, a tty: no fds travel). */
static ssize_t write_some(int fd, const char *data, size_t len)
{
    ssize_t n;
    do {
        n = write(fd, data, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n == 0 ? -EPIPE : n;
}

static int out_flush(struct sp_proto_out *q, int fd, bool sock)
{
    while (q->head) {
        struct sp_proto_out_msg *m = q->head;
        ssize_t n = sock ? send_some(fd, m->data + m->off, m->len - m->off,
                                     m->off == 0 ? m->fds : NULL,
                                     m->off == 0 ? m->n_fds : 0)
                         : write_some(fd, m->data + m->off, m->len - m->off);
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            return 1;
        if (n < 0)
            return (int)n;
        if (m->off == 0) {
            /* The fds went with the first byte: ours can go. */
            for (size_t i = 0; i < m->n_fds; i++)
                close(m->fds[i]);
            m->n_fds = 0;
        }
        m->off += (size_t)n;
        q->bytes -= (size_t)n;
        if (m->off == m->len) {
            q->head = m->next;
            if (!q->head)
                q->tail = NULL;
            out_msg_free(m);
        }
    }
    return 0;
}

int sp_proto_out_flush(struct sp_proto_out *q, int sock)
{
    return out_flush(q, sock, true);
}

int sp_proto_out_write(struct sp_proto_out *q, int fd)
{
    return out_flush(q, fd, false);
}

void sp_proto_out_free(struct sp_proto_out *q)
{
    if (!q)
        return;
    while (q->head) {
        struct sp_proto_out_msg *m = q->head;
        q->head = m->next;
        out_msg_free(m);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* params[key]: 1 with *ret set, 0 when absent or null and not required
 * (the caller leaves its value alone), or -EINVAL when required. */
static int param(json_t *params, const char *key, bool required,
                 json_t **ret, sp_error *err)
{
    json_t *v = params ? json_object_get(params, key) : NULL;
    if (!v || json_is_null(v))
        return required ? sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                        "missing parameter \"%s\"", key)
                        : 0;
    *ret = v;
    return 1;
}

int sp_proto_get_string(json_t *params, const char *key, bool required,
                        size_t max_len, const char **ret, sp_error *err)
{
    json_t *v = NULL;
    int r = param(params, key, required, &v, err);
    if (r <= 0)
        return r;
    if (!json_is_string(v))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" must be a string", key);
    size_t n = json_string_length(v);
    if (n > max_len)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" is longer than %zu bytes", key,
                             max_len);
    if (strlen(json_string_value(v)) != n)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" holds a NUL byte", key);
    *ret = json_string_value(v);
    return 0;
}

int sp_proto_get_number(json_t *params, const char *key, bool required,
                        double min, double max, double *ret, sp_error *err)
{
    json_t *v = NULL;
    int r = param(params, key, required, &v, err);
    if (r <= 0)
        return r;
    if (!json_is_number(v))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" must be between %g and %g",
                             key, min, max);
    *ret = d;
    return 0;
}

int sp_proto_get_strv(json_t *params, const char *key, bool required,
                      size_t min_n, size_t max_n, size_t max_len,
                      const char ***ret, sp_error *err)
{
    json_t *v = NULL;
    int r = param(params, key, required, &v, err);
    if (r <= 0)
        return r;
    if (!json_is_array(v))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" must be an array of strings",
                             key);
    size_t n = json_array_size(v);
    if (n < min_n || n > max_n)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "parameter \"%s\" must have %zu to %zu entries",
                             key, min_n, max_n);
    const char **a = calloc(n + 1, sizeof(*a));
    if (!a)
        return sp_error_set(err, ENOMEM, "parameter \"%s\"", key);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) > max_len ||
            strlen(json_string_value(s)) != json_string_length(s)) {
            free(a);
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "parameter \"%s\": entry %zu must be a "
                                 "string of at most %zu bytes without NUL",
                                 key, i, max_len);
        }
        a[i] = json_string_value(s);
    }
    *ret = a;
    return 0;
}
