/* ws_shell.c — the client side of shells and services (ws_shell.h,
 * sandpit.h): each call is one request on its own connection to the
 * workspace's supervisor, forwarded to the agent (agent_ext.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ws_shell.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent_ext.h"
#include "bounds.h"
#include "error.h"
#include "proto.h"
#include "ring.h"
#include "state.h"
#include "util.h"

/* ---- one request, its reply as an event (ws_shell.h) -------------------- */

struct sp_ws_acall {
    int fd;
    json_t *jid;
    struct sp_proto_buf in;
    bool done;
    json_t *result;             /* when done without an error */
    sp_error err;               /* when done with one */
    int rc;                     /* its return value */
    char ws[256];
};

void sp_ws_acall_free(struct sp_ws_acall *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd); /* the supervisor drops the reply */
    json_decref(c->jid);
    json_decref(c->result);
    sp_proto_buf_free(&c->in);
    free(c);
}

int sp_ws_acall_start(const char *ws, const char *method, json_t *params,
                      struct sp_ws_acall **ret, sp_error *err)
{
    *ret = NULL;
    struct sp_ws_acall *c = calloc(1, sizeof(*c));
    if (!c) {
        json_decref(params);
        return sp_error_set(err, ENOMEM, "request");
    }
    snprintf(c->ws, sizeof(c->ws), "%s", ws);
    sp_proto_buf_init(&c->in);
    c->jid = json_integer(1);
    c->fd = sp_ws_connect_fd(ws, err);
    if (c->fd < 0) {
        int r = c->fd;
        json_decref(params);
        sp_ws_acall_free(c);
        return r;
    }
    char *line = sp_proto_request(c->jid, method, params);
    int rc = 0;
    if (!line)
        rc = sp_error_set(err, ENOMEM, "request");
    else if (strlen(line) > SP_PROTO_MAX_LINE)
        rc = sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                           "the request is longer than %d bytes",
                           SP_PROTO_MAX_LINE);
    else if ((rc = sp_proto_send(c->fd, line, strlen(line), NULL, 0)) < 0)
        rc = sp_error_setk(err, SP_ERR_SYSTEM, -rc,
                           "workspace %s: cannot send the request", ws);
    free(line);
    if (rc < 0) {
        sp_ws_acall_free(c);
        return rc;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    *ret = c;
    return 0;
}

int sp_ws_acall_fd(const struct sp_ws_acall *c)
{
    return c->done ? -1 : c->fd;
}

int sp_ws_acall_step(struct sp_ws_acall *c)
{
    while (!c->done) {
        char *l = NULL;
        size_t len = 0;
        int nr = sp_proto_next_line(&c->in, &l, &len);
        if (nr < 0) {
            c->rc = sp_error_setk(&c->err, SP_ERR_SYSTEM, -nr,
                                  "workspace %s: bad reply", c->ws);
            c->done = true;
            break;
        }
        if (nr == 1) {
            struct sp_proto_msg m;
            int pr = sp_proto_parse(l, len, &m, NULL);
            free(l);
            if (pr < 0 || m.method)
                continue;
            if (m.id && !json_equal(m.id, c->jid)) {
                sp_proto_msg_free(&m);
                continue;
            }
            if (m.is_error) {
                int kind = m.err_code == SP_RPC_INTERNAL || m.err_code == SP_RPC_GONE
                               ? SP_ERR_SYSTEM
                               : SP_ERR_USAGE;
                c->rc = sp_error_setk(&c->err, kind, 0, "%s", m.err_message);
            } else {
                c->result = json_incref(m.result ? m.result : json_null());
            }
            sp_proto_msg_free(&m);
            c->done = true;
            break;
        }
        ssize_t k = sp_proto_recv(c->fd, &c->in);
        if (k == -EINTR)
            continue;
        if (k == -EAGAIN)
            return 0;
        if (k <= 0) {
            c->rc = sp_error_setk(&c->err, SP_ERR_SYSTEM, k < 0 ? (int)-k : 0,
                                  "workspace %s: the supervisor went away",
                                  c->ws);
            c->done = true;
        }
    }
    close(c->fd);
    c->fd = -1;
    return 1;
}

json_t *sp_ws_acall_result(struct sp_ws_acall *c, sp_error *err)
{
    if (!c->done) {
        sp_error_setk(err, SP_ERR_SYSTEM, EINPROGRESS, "not done");
        return NULL;
    }
    if (!c->result) {
        if (err)
            *err = c->err;
        return NULL;
    }
    json_t *r = c->result;
    c->result = NULL;
    return r;
}

int sp_ws_call(const char *ws, const char *method, json_t *params,
               json_t **ret_result, sp_error *err)
{
    *ret_result = NULL;
    struct sp_ws_acall *c = NULL;
    int rc = sp_ws_acall_start(ws, method, params, &c, err);
    if (rc < 0)
        return rc;
    while (!sp_ws_acall_step(c)) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            rc = sp_error_set(err, errno, "poll");
            sp_ws_acall_free(c);
            return rc;
        }
    }
    *ret_result = sp_ws_acall_result(c, err);
    rc = *ret_result ? 0 : c->rc;
    sp_ws_acall_free(c);
    return rc;
}

SP_EXPORT char *sp_ws_call_json(const char *ws, const char *method,
                                const char *params_json, sp_error *err)
{
    json_t *p = NULL;
    if (params_json && *params_json) {
        json_error_t je;
        p = json_loads(params_json, 0, &je);
        if (!json_is_object(p)) {
            json_decref(p);
            sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                          "params must be a JSON object");
            return NULL;
        }
    }
    json_t *r = NULL;
    if (sp_ws_call(ws, method, p, &r, err) < 0)
        return NULL;
    char *s = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(r);
    if (!s)
        sp_error_set(err, ENOMEM, "reply");
    return s;
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int get_int(json_t *r, const char *key, int *ret, sp_error *err)
{
    json_t *v = json_object_get(r, key);
    if (!json_is_integer(v))
        return sp_error_setk(err, SP_ERR_SYSTEM, EPROTO,
                             "the reply has no \"%s\"", key);
    *ret = (int)json_integer_value(v);
    return 0;
}

SP_EXPORT int sp_ws_shell_open(const char *ws, const sp_ws_shell_opts *o,
                               sp_error *err)
{
    json_t *p = json_object();
    if (o && o->argv && o->argv[0])
        json_object_set_new(p, "argv", strv_json(o->argv));
    if (o && o->env)
        json_object_set_new(p, "env", strv_json(o->env));
    if (o && o->cwd)
        json_object_set_new(p, "cwd", json_string(o->cwd));
    if (o && o->rows)
        json_object_set_new(p, "rows", json_integer(o->rows));
    if (o && o->cols)
        json_object_set_new(p, "cols", json_integer(o->cols));
    if (o && o->timeout > 0)
        json_object_set_new(p, "timeout", json_real(o->timeout));
    json_t *r = NULL;
    int rc = sp_ws_call(ws, "shell.open", p, &r, err);
    int id = 0;
    if (rc == 0)
        rc = get_int(r, "shell", &id, err);
    json_decref(r);
    return rc < 0 ? rc : id;
}

static int simple(const char *ws, const char *method, json_t *p, sp_error *err)
{
    json_t *r = NULL;
    int rc = sp_ws_call(ws, method, p, &r, err);
    json_decref(r);
    return rc;
}

SP_EXPORT int sp_ws_shell_write(const char *ws, int shell, const void *data,
                                size_t len, sp_error *err)
{
    if (len > SP_SHELL_WRITE_MAX)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "at most %d bytes per write", SP_SHELL_WRITE_MAX);
    char *b = malloc(sp_b64_encoded_len(len) + 1);
    if (!b)
        return sp_error_set(err, ENOMEM, "write");
    sp_b64_encode(data, len, b);
    json_t *p = json_pack("{s:i,s:s}", "shell", shell, "data", b);
    free(b);
    return simple(ws, "shell.write", p, err);
}

int sp_ws_output_from_json(json_t *r, sp_ws_output *o, sp_error *err)
{
    memset(o, 0, sizeof(*o));
    o->exit_code = -1;
    const char *d = json_string_value(json_object_get(r, "data"));
    json_t *nc = json_object_get(r, "next_cursor");
    if (!d || !json_is_integer(nc))
        return sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "bad read reply");
    size_t dl = strlen(d);
    o->data = malloc(dl / 4 * 3 + 1);
    if (!o->data)
        return sp_error_set(err, ENOMEM, "read");
    long n = sp_b64_decode(d, dl, o->data);
    if (n < 0) {
        free(o->data);
        o->data = NULL;
        return sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "bad read reply");
    }
    o->data[n] = '\0';
    o->len = (size_t)n;
    o->next_cursor = (uint64_t)json_integer_value(nc);
    o->cursor = o->next_cursor - o->len;
    o->truncated = json_is_true(json_object_get(r, "truncated"));
    json_t *v = json_object_get(r, "dropped");
    o->dropped = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    const char *st = json_string_value(json_object_get(r, "state"));
    snprintf(o->state, sizeof(o->state), "%s", st ? st : "");
    v = json_object_get(r, "exit_code");
    if (json_is_integer(v))
        o->exit_code = (int)json_integer_value(v);
    v = json_object_get(r, "end");
    o->ended = (strcmp(o->state, "exited") == 0 ||
                strcmp(o->state, "failed") == 0) &&
               json_is_integer(v) && o->next_cursor >= (uint64_t)json_integer_value(v);
    return 0;
}

SP_EXPORT void sp_ws_output_free(sp_ws_output *o)
{
    if (!o)
        return;
    free(o->data);
    o->data = NULL;
    o->len = 0;
}

json_t *sp_ws_shell_read_params(int shell, uint64_t cursor, size_t max,
                                double wait)
{
    json_t *p = json_pack("{s:i,s:I}", "shell", shell, "cursor",
                          (json_int_t)cursor);
    if (max)
        json_object_set_new(p, "max", json_integer((json_int_t)max));
    if (wait > 0)
        json_object_set_new(p, "wait", json_real(wait));
    return p;
}

SP_EXPORT int sp_ws_shell_read(const char *ws, int shell, uint64_t cursor,
                               size_t max, double wait, sp_ws_output *ret,
                               sp_error *err)
{
    json_t *p = sp_ws_shell_read_params(shell, cursor, max, wait);
    json_t *r = NULL;
    int rc = sp_ws_call(ws, "shell.read", p, &r, err);
    if (rc == 0)
        rc = sp_ws_output_from_json(r, ret, err);
    json_decref(r);
    return rc;
}

SP_EXPORT int sp_ws_shell_resize(const char *ws, int shell, unsigned rows,
                                 unsigned cols, sp_error *err)
{
    return simple(ws, "shell.resize",
                  json_pack("{s:i,s:i,s:i}", "shell", shell, "rows", (int)rows,
                            "cols", (int)cols),
                  err);
}

SP_EXPORT int sp_ws_shell_signal(const char *ws, int shell, int sig,
                                 sp_error *err)
{
    return simple(ws, "shell.signal",
                  json_pack("{s:i,s:i}", "shell", shell, "signal", sig), err);
}

SP_EXPORT int sp_ws_shell_close(const char *ws, int shell, sp_error *err)
{
    return simple(ws, "shell.close", json_pack("{s:i}", "shell", shell), err);
}

static char *dump(json_t *r, const char *key, sp_error *err)
{
    json_t *v = key ? json_object_get(r, key) : r;
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s)
        sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "bad reply");
    return s;
}

SP_EXPORT char *sp_ws_shell_list_json(const char *ws, sp_error *err)
{
    json_t *r = NULL;
    if (sp_ws_call(ws, "shell.list", json_object(), &r, err) < 0)
        return NULL;
    char *s = dump(r, "shells", err);
    json_decref(r);
    return s;
}

int sp_ws_service_start_params(const sp_ws_service_opts *o, json_t **ret,
                               sp_error *err)
{
    *ret = NULL;
    if (!o || !o->name || !o->argv || !o->argv[0])
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "a service needs a name and a command");
    /* The agent checks the same (agent_service.c); said here first, so a
     * request too big for one line is refused by name, not by size. */
    size_t spec = (o->cwd ? strlen(o->cwd) : 0) +
                  (o->ready ? strlen(o->ready) : 0);
    for (size_t i = 0; o->argv[i] && spec <= SP_SERVICE_SPEC_MAX; i++)
        spec += strlen(o->argv[i]) + 1;
    for (size_t i = 0; o->env && o->env[i] && spec <= SP_SERVICE_SPEC_MAX; i++)
        spec += strlen(o->env[i]) + 1;
    if (spec > SP_SERVICE_SPEC_MAX)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "service %s: its command, environment, "
                             "directory and probe take more than the %d "
                             "bytes a service may have",
                             o->name, SP_SERVICE_SPEC_MAX);
    json_t *p = json_pack("{s:s,s:o}", "name", o->name, "argv",
                          strv_json(o->argv));
    if (o->env)
        json_object_set_new(p, "env", strv_json(o->env));
    if (o->cwd)
        json_object_set_new(p, "cwd", json_string(o->cwd));
    if (o->ready)
        json_object_set_new(p, "ready", json_string(o->ready));
    if (o->ready_timeout > 0)
        json_object_set_new(p, "ready_timeout", json_real(o->ready_timeout));
    if (o->timeout > 0)
        json_object_set_new(p, "timeout", json_real(o->timeout));
    if (o->secret_env && o->secret_env[0])
        json_object_set_new(p, "secret_env", strv_json(o->secret_env));
    json_object_set_new(p, "restart",
                        json_string(o->restart_on_failure ? "on-failure" : "no"));
    *ret = p;
    return 0;
}

int sp_ws_service_start_reply(const char *name, json_t *r, char **ret_json,
                              sp_error *err)
{
    int rc = 0;
    const char *st = json_string_value(json_object_get(r, "state"));
    if (st && strcmp(st, "failed") == 0) {
        const char *why = json_string_value(json_object_get(r, "reason"));
        const char *tail = json_string_value(json_object_get(r, "stderr_tail"));
        if (!tail || !*tail)
            tail = json_string_value(json_object_get(r, "stdout_tail"));
        size_t tl = tail ? strlen(tail) : 0;
        rc = sp_error_setk(err, SP_ERR_USAGE, 0, "service %s failed: %s%s%.*s",
                           name, why ? why : "unknown",
                           tl ? "; last output:\n" : "",
                           (int)(tl && tail[tl - 1] == '\n' ? tl - 1 : tl),
                           tail ? tail : "");
    }
    if (ret_json)
        *ret_json = dump(r, NULL, NULL);
    return rc;
}

SP_EXPORT int sp_ws_service_start(const char *ws, const sp_ws_service_opts *o,
                                  char **ret_json, sp_error *err)
{
    if (ret_json)
        *ret_json = NULL;
    json_t *p = NULL;
    int rc = sp_ws_service_start_params(o, &p, err);
    if (rc < 0)
        return rc;
    json_t *r = NULL;
    rc = sp_ws_call(ws, "service.start", p, &r, err);
    if (rc < 0)
        return rc;
    rc = sp_ws_service_start_reply(o->name, r, ret_json, err);
    json_decref(r);
    return rc;
}

SP_EXPORT char *sp_ws_service_status_json(const char *ws, const char *svc,
                                          sp_error *err)
{
    json_t *r = NULL;
    int rc = svc ? sp_ws_call(ws, "service.status",
                              json_pack("{s:s}", "name", svc), &r, err)
                 : sp_ws_call(ws, "service.list", json_object(), &r, err);
    if (rc < 0)
        return NULL;
    char *s = dump(r, svc ? NULL : "services", err);
    json_decref(r);
    return s;
}

json_t *sp_ws_read_params(json_t *p, bool want_stderr, int64_t cursor,
                          long tail, size_t max, double wait)
{
    if (!p)
        return NULL;
    json_object_set_new(p, "stream",
                        json_string(want_stderr ? "stderr" : "stdout"));
    if (cursor >= 0)
        json_object_set_new(p, "cursor", json_integer(cursor));
    else if (tail >= 0)
        json_object_set_new(p, "tail", json_integer(tail));
    if (max)
        json_object_set_new(p, "max", json_integer((json_int_t)max));
    if (wait > 0)
        json_object_set_new(p, "wait", json_real(wait));
    return p;
}

json_t *sp_ws_service_logs_params(const char *svc, bool want_stderr,
                                  int64_t cursor, long tail, size_t max,
                                  double wait)
{
    return sp_ws_read_params(json_pack("{s:s}", "name", svc), want_stderr,
                             cursor, tail, max, wait);
}

SP_EXPORT int sp_ws_service_logs(const char *ws, const char *svc,
                                 bool want_stderr, int64_t cursor, long tail,
                                 size_t max, double wait, sp_ws_output *ret,
                                 sp_error *err)
{
    json_t *p = sp_ws_service_logs_params(svc, want_stderr, cursor, tail, max,
                                          wait);
    json_t *r = NULL;
    int rc = sp_ws_call(ws, "service.logs", p, &r, err);
    if (rc == 0)
        rc = sp_ws_output_from_json(r, ret, err);
    json_decref(r);
    return rc;
}

SP_EXPORT int sp_ws_service_stop(const char *ws, const char *svc, double grace,
                                 char **ret_json, sp_error *err)
{
    if (ret_json)
        *ret_json = NULL;
    json_t *p = json_pack("{s:s}", "name", svc);
    if (grace >= 0)
        json_object_set_new(p, "grace", json_real(grace));
    json_t *r = NULL;
    int rc = sp_ws_call(ws, "service.stop", p, &r, err);
    if (rc == 0 && ret_json)
        *ret_json = dump(r, NULL, err);
    json_decref(r);
    return rc;
}
