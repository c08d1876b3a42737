/* workspace_files.c — the client side of the file API (sandpit.h
 * sp_ws_file_*, sp_ws_patch, sp_ws_import, sp_ws_export; files.h has the
 * methods). Bulk bytes travel as binary frames after the JSON line;
 * archives stream through a pipe passed with SCM_RIGHTS. Every reply is
 * checked: the agent runs inside the sandbox and may lie. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "files.h"
#include "proto.h"
#include "util.h"
#include "workspace.h"

_Static_assert(SP_WS_FILE_MAX_IO == SP_FILE_MAX_IO, "one bound, two names");

/* An error reply as an sp_error: the errno from "data", else EIO. */
static int reply_failure(sp_ws_client *c, struct sp_proto_msg *m,
                         sp_error *err)
{
    json_t *e = json_object_get(m->root, "error");
    json_t *d = json_is_object(e) ? json_object_get(e, "data") : NULL;
    json_t *en = json_is_object(d) ? json_object_get(d, "errno") : NULL;
    int errnum = json_is_integer(en) && json_integer_value(en) > 0 &&
                         json_integer_value(en) < 4096
                     ? (int)json_integer_value(en)
                     : EIO;
    int kind = m->err_code == SP_RPC_GONE ? SP_ERR_SYSTEM : SP_ERR_USAGE;
    sp_error_setk(err, kind, 0, "workspace %s: %s", sp_ws_client_name(c),
                  m->err_message);
    if (err)
        err->code = errnum;
    return -errnum;
}

static int send_request(sp_ws_client *c, json_int_t id, const char *method,
                        json_t *params, const void *frame, size_t flen,
                        int fd, sp_error *err)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "method", json_string(method));
    json_object_set_new(o, "params", params ? params : json_object());
    if (flen)
        json_object_set_new(o, "frame", json_integer((json_int_t)flen));
    char *line = sp_proto_line(o);
    if (!line)
        return sp_error_set(err, ENOMEM, "%s request", method);
    if (strlen(line) > SP_PROTO_MAX_LINE) {
        free(line);
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "%s: request longer than %d bytes", method,
                             SP_PROTO_MAX_LINE);
    }
    int r = sp_proto_send(sp_ws_client_sock(c), line, strlen(line),
                          fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
    free(line);
    if (r == 0 && flen)
        r = sp_proto_send(sp_ws_client_sock(c), frame, flen, NULL, 0);
    if (r < 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, -r,
                             "workspace %s: cannot send the request",
                             sp_ws_client_name(c));
    return 0;
}

/* Read what the socket has and look for the reply to id. Returns 1 with
 * *ret_msg (and its frame), 0 when not there yet, < 0 when the
 * supervisor went away or broke the framing. */
static int poll_reply(sp_ws_client *c, json_int_t id, struct sp_proto_msg *ret,
                      char **ret_frame, size_t *ret_flen, sp_error *err)
{
    struct sp_proto_buf *b = sp_ws_client_buf(c);
    ssize_t k = sp_proto_recv(sp_ws_client_sock(c), b);
    if (k == -EAGAIN)
        return 0;
    for (;;) {
        char *l = NULL, *f = NULL;
        size_t len = 0, flen = 0;
        int r = sp_proto_next_framed(b, &l, &len, &f, &flen);
        if (r < 0)
            return sp_error_setk(err, SP_ERR_SYSTEM, -r,
                                 "workspace %s: bad reply framing",
                                 sp_ws_client_name(c));
        if (r == 0)
            break;
        struct sp_proto_msg m;
        bool mine = sp_proto_parse(l, len, &m, NULL) == 0;
        free(l);
        if (mine && !m.method && m.id && json_is_integer(m.id) &&
            json_integer_value(m.id) == id) {
            *ret = m;
            *ret_frame = f;
            *ret_flen = flen;
            return 1;
        }
        if (mine)
            sp_proto_msg_free(&m);
        free(f);
    }
    if (k <= 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, k < 0 ? (int)-k : EPIPE,
                             "workspace %s: the supervisor went away",
                             sp_ws_client_name(c));
    return 0;
}

/* One request and its reply. *ret_result: the result (a new reference);
 * *ret_frame / *ret_flen: its frame (optional). */
static int call(sp_ws_client *c, const char *method, json_t *params,
                const void *frame, size_t flen, json_t **ret_result,
                char **ret_frame, size_t *ret_flen, sp_error *err)
{
    json_int_t id = sp_ws_client_next_id(c);
    int r = send_request(c, id, method, params, frame, flen, -1, err);
    if (r < 0)
        return r;
    struct sp_proto_msg m;
    char *f = NULL;
    size_t fl = 0;
    for (;;) {
        struct pollfd p = {sp_ws_client_sock(c), POLLIN, 0};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return sp_error_set(err, errno, "poll");
        r = poll_reply(c, id, &m, &f, &fl, err);
        if (r < 0)
            return r;
        if (r == 1)
            break;
    }
    if (m.is_error) {
        r = reply_failure(c, &m, err);
        free(f);
    } else {
        if (ret_result)
            *ret_result = json_incref(m.result);
        if (ret_frame) {
            *ret_frame = f;
            *ret_flen = fl;
        } else {
            free(f);
        }
        r = 0;
    }
    sp_proto_msg_free(&m);
    return r;
}

static char *dump(json_t *j, sp_error *err)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s)
        sp_error_set(err, ENOMEM, "reply");
    return s;
}

SP_EXPORT char *sp_ws_file_stat(sp_ws_client *c, const char *path,
                                sp_error *err)
{
    json_t *res = NULL;
    if (call(c, "file.stat", json_pack("{s:s}", "path", path), NULL, 0, &res,
             NULL, NULL, err) < 0)
        return NULL;
    char *s = dump(res, err);
    json_decref(res);
    return s;
}

SP_EXPORT char *sp_ws_file_list(sp_ws_client *c, const char *path,
                                bool recursive, sp_error *err)
{
    json_t *all = json_array();
    json_int_t start = 0;
    for (;;) {
        json_t *res = NULL;
        if (call(c, "file.list",
                 json_pack("{s:s,s:b,s:I}", "path", path, "recursive",
                           recursive, "start", start),
                 NULL, 0, &res, NULL, NULL, err) < 0) {
            json_decref(all);
            return NULL;
        }
        json_t *e = json_object_get(res, "entries");
        json_t *next = json_object_get(res, "next");
        if (json_is_array(e))
            json_array_extend(all, e);
        bool more = json_is_integer(next) && json_integer_value(next) > start &&
                    json_integer_value(next) <= SP_FILE_MAX_WALK;
        if (more)
            start = json_integer_value(next);
        json_decref(res);
        if (!more)
            break;
    }
    char *s = dump(all, err);
    json_decref(all);
    return s;
}

SP_EXPORT int sp_ws_file_read(sp_ws_client *c, const char *path,
                              uint64_t offset, int64_t length,
                              void **ret_data, size_t *ret_len, sp_error *err)
{
    return sp_ws_file_read_raw(c, path, offset, length, ret_data, ret_len,
                               NULL, err);
}

int sp_ws_file_read_raw(sp_ws_client *c, const char *path, uint64_t offset,
                        int64_t length, void **ret_data, size_t *ret_len,
                        uint64_t *ret_raw, sp_error *err)
{
    json_t *p = json_pack("{s:s,s:I}", "path", path, "offset",
                          (json_int_t)offset);
    if (length >= 0)
        json_object_set_new(p, "length", json_integer((json_int_t)length));
    json_t *res = NULL;
    char *f = NULL;
    size_t fl = 0;
    int r = call(c, "file.read", p, NULL, 0, &res, &f, &fl, err);
    if (r < 0)
        return r;
    json_t *jl = json_object_get(res, "length");
    /* A workspace with secrets (docs/secrets.md) may send more bytes than
     * asked: "raw_length" is the part of the file they stand for. */
    json_t *jraw = json_object_get(res, "raw_length");
    uint64_t raw = json_is_integer(jraw) ? (uint64_t)json_integer_value(jraw)
                                         : fl;
    bool ok = json_is_integer(jl) && (size_t)json_integer_value(jl) == fl &&
              (length < 0 || raw <= (uint64_t)length);
    json_decref(res);
    if (!ok) {
        free(f);
        return sp_error_setk(err, SP_ERR_SYSTEM, EPROTO,
                             "workspace %s: a read reply that does not add "
                             "up", sp_ws_client_name(c));
    }
    *ret_data = f;
    *ret_len = fl;
    if (ret_raw)
        *ret_raw = raw;
    return 0;
}

SP_EXPORT int sp_ws_file_write(sp_ws_client *c, const char *path,
                               const void *data, size_t len, int mode,
                               unsigned flags, sp_error *err)
{
    if (len > SP_FILE_MAX_IO)
        return sp_error_setk(err, SP_ERR_USAGE, EFBIG,
                             "%s: %zu bytes is more than one write moves "
                             "(%d)", path, len, SP_FILE_MAX_IO);
    json_t *p = json_pack("{s:s,s:b,s:b}", "path", path, "parents",
                          (flags & SP_WS_FILE_PARENTS) != 0, "sync",
                          (flags & SP_WS_FILE_NOSYNC) == 0);
    if (mode >= 0)
        json_object_set_new(p, "mode", json_integer(mode));
    return call(c, "file.write", p, data, len, NULL, NULL, NULL, err);
}

SP_EXPORT int sp_ws_file_mkdir(sp_ws_client *c, const char *path, int mode,
                               unsigned flags, sp_error *err)
{
    json_t *p = json_pack("{s:s,s:b}", "path", path, "parents",
                          (flags & SP_WS_FILE_PARENTS) != 0);
    if (mode >= 0)
        json_object_set_new(p, "mode", json_integer(mode));
    return call(c, "file.mkdir", p, NULL, 0, NULL, NULL, NULL, err);
}

SP_EXPORT int sp_ws_file_remove(sp_ws_client *c, const char *path,
                                unsigned flags, sp_error *err)
{
    return call(c, "file.remove",
                json_pack("{s:s,s:b}", "path", path, "recursive",
                          (flags & SP_WS_FILE_RECURSIVE) != 0),
                NULL, 0, NULL, NULL, NULL, err);
}

SP_EXPORT int sp_ws_file_rename(sp_ws_client *c, const char *from,
                                const char *to, unsigned flags, sp_error *err)
{
    return call(c, "file.rename",
                json_pack("{s:s,s:s,s:b}", "from", from, "to", to,
                          "noreplace", (flags & SP_WS_FILE_NOREPLACE) != 0),
                NULL, 0, NULL, NULL, NULL, err);
}

SP_EXPORT int sp_ws_patch(sp_ws_client *c, const char *text, size_t len,
                          int strip, bool dry_run, char **ret_report,
                          sp_error *err)
{
    if (len > SP_PROTO_MAX_FRAME)
        return sp_error_setk(err, SP_ERR_USAGE, EFBIG,
                             "the patch is larger than %d bytes",
                             SP_PROTO_MAX_FRAME);
    json_t *res = NULL;
    int r = call(c, "patch.apply",
                 json_pack("{s:i,s:b}", "strip", strip, "dry_run", dry_run),
                 text, len, &res, NULL, NULL, err);
    if (r < 0)
        return r;
    bool ok = json_is_true(json_object_get(res, "ok"));
    if (!ok) {
        json_t *m = json_object_get(res, "error");
        sp_error_setk(err, SP_ERR_USAGE, 0, "the patch does not apply: %s",
                      json_is_string(m) ? json_string_value(m)
                                        : "see the report");
    }
    if (ret_report)
        *ret_report = dump(res, err);
    json_decref(res);
    return ok ? 0 : 1;
}

/* Archives: the request with one end of a pipe; this side pumps between
 * the pipe and the caller's fd until the reply has come and the pipe is
 * done. */
static int archive_call(sp_ws_client *c, const char *method, json_t *params,
                        int user_fd, bool to_agent, char **ret_stats,
                        sp_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        json_decref(params);
        return sp_error_set(err, errno, "pipe");
    }
    /* to_agent: we write p[1], the agent reads p[0]. */
    int pass = to_agent ? p[0] : p[1];
    int ours = to_agent ? p[1] : p[0];
    fcntl(ours, F_SETFL, O_NONBLOCK);
    json_int_t id = sp_ws_client_next_id(c);
    int r = send_request(c, id, method, params, NULL, 0, pass, err);
    close(pass);
    if (r < 0) {
        close(ours);
        return r;
    }
    char *buf = malloc(65536);
    size_t blen = 0, boff = 0;
    bool user_eof = false, have_reply = false;
    struct sp_proto_msg m;
    memset(&m, 0, sizeof(m));
    r = buf ? 0 : sp_error_set(err, ENOMEM, "buffer");
    while (r == 0 && (!have_reply || ours >= 0)) {
        struct pollfd pf[2] = {{have_reply ? -1 : sp_ws_client_sock(c), POLLIN,
                                0},
                               {ours, 0, 0}};
        if (to_agent)
            pf[1].events = POLLOUT;
        else
            pf[1].events = POLLIN;
        if (poll(pf, 2, -1) < 0 && errno != EINTR) {
            r = sp_error_set(err, errno, "poll");
            break;
        }
        if (ours >= 0 && pf[1].revents) {
            if (to_agent) {
                if (boff == blen && !user_eof) {
                    ssize_t n = read(user_fd, buf, 65536);
                    if (n < 0 && errno == EINTR)
                        continue;
                    if (n < 0) {
                        r = sp_error_set(err, errno, "cannot read the archive");
                        break;
                    }
                    if (n == 0)
                        user_eof = true;
                    blen = (size_t)n;
                    boff = 0;
                }
                if (boff < blen) {
                    ssize_t w = write(ours, buf + boff, blen - boff);
                    if (w > 0)
                        boff += (size_t)w;
                    else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                        close(ours); /* the agent stopped reading */
                        ours = -1;
                    }
                }
                if (user_eof && boff == blen && ours >= 0) {
                    close(ours);
                    ours = -1;
                }
            } else {
                ssize_t n = read(ours, buf, 65536);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (n <= 0) {
                    close(ours);
                    ours = -1;
                } else {
                    for (ssize_t off = 0; off < n;) {
                        ssize_t w = write(user_fd, buf + off,
                                          (size_t)(n - off));
                        if (w < 0 && errno == EINTR)
                            continue;
                        if (w <= 0) {
                            r = sp_error_set(err, errno,
                                             "cannot write the archive");
                            break;
                        }
                        off += w;
                    }
                }
            }
        }
        if (!have_reply && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            char *f = NULL;
            size_t fl = 0;
            int k = poll_reply(c, id, &m, &f, &fl, err);
            free(f);
            if (k < 0)
                r = k;
            else if (k == 1)
                have_reply = true;
            /* The agent answered: for an import it has read all it will. */
            if (have_reply && to_agent && ours >= 0) {
                close(ours);
                ours = -1;
            }
        }
    }
    free(buf);
    if (ours >= 0)
        close(ours);
    if (r < 0) {
        if (have_reply)
            sp_proto_msg_free(&m);
        return r;
    }
    if (m.is_error) {
        r = reply_failure(c, &m, err);
    } else if (ret_stats) {
        *ret_stats = dump(m.result, err);
    }
    sp_proto_msg_free(&m);
    return r;
}

SP_EXPORT int sp_ws_import(sp_ws_client *c, const char *dest, int in_fd,
                           char **ret_stats, sp_error *err)
{
    return archive_call(c, "archive.import",
                        json_pack("{s:s}", "dest", dest ? dest : "."), in_fd,
                        true, ret_stats, err);
}

SP_EXPORT int sp_ws_export(sp_ws_client *c, const char *path, int out_fd,
                           bool gzip, char **ret_stats, sp_error *err)
{
    return archive_call(c, "archive.export",
                        json_pack("{s:s,s:b}", "path", path ? path : ".",
                                  "gzip", gzip),
                        out_fd, false, ret_stats, err);
}
