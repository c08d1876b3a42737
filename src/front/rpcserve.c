/* rpcserve.c — `sandpit serve` (rpcserve.h): a Unix socket, one poll loop
 * for every client and every running exec, signals through a signalfd.
 * Requests are checked by jsonrpc.c and their params by rpcops.c; nothing
 * a client sends changes anything until it has passed both. */
#include "rpcserve.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "jsonrpc.h"
#include "rpcops.h"
#include "wsend.h"
#include "wsjob.h"

typedef json_t *(*op_fn)(struct sp_ops *, json_t *, sp_error *);

static const struct {
    const char *method;
    op_fn fn;                   /* NULL: exec */
} methods[] = {
    {"workspace.create", sp_ops_ws_create},
    {"workspace.list", sp_ops_ws_list},
    {"workspace.start", sp_ops_ws_start},
    {"workspace.stop", sp_ops_ws_stop},
    {"workspace.delete", sp_ops_ws_delete},
    {"workspace.diff", sp_ops_ws_diff},
    {"workspace.audit", sp_ops_ws_audit},
    {"workspace.reset", sp_ops_ws_reset},
    {"workspace.snapshot", sp_ops_ws_snapshot},
    {"workspace.snapshots", sp_ops_ws_snapshots},
    {"workspace.restore", sp_ops_ws_restore},
    {"workspace.snapshot_delete", sp_ops_ws_snapshot_delete},
    {"workspace.fork", sp_ops_ws_fork},
    {"pool.status", sp_ops_pool_status},
    {"exec", NULL},
    {"file.list", sp_ops_file_list},
    {"file.read", sp_ops_file_read},
    {"file.write", sp_ops_file_write},
    {"file.delete", sp_ops_file_delete},
    {"file.stat", sp_ops_file_stat},
    {"file.mkdir", sp_ops_file_mkdir},
    {"file.move", sp_ops_file_move},
    {"file.glob", sp_ops_file_glob},
    {"file.search", sp_ops_file_search},
    {"file.edit", sp_ops_file_edit},
    {"patch.apply", sp_ops_patch_apply},
    {"shell.open", sp_ops_shell_open},
    {"shell.write", sp_ops_shell_write},
    {"shell.read", sp_ops_shell_read},
    {"shell.signal", sp_ops_shell_signal},
    {"shell.close", sp_ops_shell_close},
    {"shell.resize", sp_ops_shell_resize},
    {"shell.list", sp_ops_shell_list},
    {"service.start", sp_ops_service_start},
    {"service.status", sp_ops_service_status},
    {"service.logs", sp_ops_service_logs},
    {"service.stop", sp_ops_service_stop},
    {"exec.start", sp_ops_exec_start},
    {"exec.poll", sp_ops_exec_poll},
    {"exec.wait", sp_ops_exec_wait},
    {"exec.write", sp_ops_exec_write},
    {"exec.kill", sp_ops_exec_kill},
    {"exec.list", sp_ops_exec_list},
};

struct batch {
    json_t *replies;
    int pending;
};

struct client;

struct call {
    struct client *cl;
    json_t *id;
    struct batch *batch;
    struct sp_ops_pending *pend; /* a method that waits (rpcops.h), or */
    struct sp_wsjob *job;        /* an exec */
    bool stream;
    size_t max_output;
    size_t npfd;
};

struct client {
    int fd;
    struct sp_jrpc_in in;
    struct sp_jrpc_out out;
    struct call *calls[SP_SERVE_MAX_PENDING];
    bool eof;                   /* it sent all it will: answer, then close */
    bool dead;
};

struct srv {
    struct sp_ops ops;
    struct client *clients[SP_SERVE_MAX_CLIENTS];
    size_t max_message;
};

static void send_obj(struct client *c, json_t *o)
{
    if (!o)
        return;
    if (c->dead) {
        json_decref(o);
        return;
    }
    if (sp_jrpc_out_push(&c->out, o) < 0)
        c->dead = true; /* it does not read its replies */
}

static void reply(struct client *c, struct batch *b, json_t *o)
{
    if (b)
        json_array_append_new(b->replies, o);
    else
        send_obj(c, o);
}

static void batch_done(struct client *c, struct batch *b)
{
    if (!b || b->pending > 0)
        return;
    if (json_array_size(b->replies))
        send_obj(c, json_incref(b->replies));
    json_decref(b->replies);
    free(b);
}

/* The one place a library error becomes a JSON-RPC error; data (stolen,
 * may be NULL): the operation's details (sp_ops_take_err_data), whose
 * keys join error.data. */
static json_t *lib_error_data(json_t *id, const sp_error *err, json_t *data)
{
    int code = SP_JRPC_FAILED;
    const char *kind = "failed";
    if (err->kind == SP_ERR_USAGE && err->code == EPERM) {
        code = SP_JRPC_DENIED;
        kind = "denied";
    } else if (err->kind == SP_ERR_USAGE && err->code == EINVAL) {
        code = SP_JRPC_PARAMS;
        kind = "params";
    } else if (err->kind == SP_ERR_USAGE) {
        kind = "usage";
    } else if (err->kind == SP_ERR_SYSTEM) {
        kind = "system";
    }
    json_t *d = json_pack("{s:s}", "kind", kind);
    if (json_is_object(data))
        json_object_update(d, data);
    json_decref(data);
    return sp_jrpc_error(id, code, d, "%s",
                         err->message[0] ? err->message : "failed");
}

static json_t *lib_error(json_t *id, const sp_error *err)
{
    return lib_error_data(id, err, NULL);
}

static void call_free(struct call *c)
{
    if (!c)
        return;
    sp_wsjob_free(c->job);
    sp_ops_pending_free(c->pend);
    json_decref(c->id);
    free(c);
}

static void sink(void *ctx, int stream, const char *data, size_t len)
{
    struct call *c = ctx;
    if (!c->stream)
        return;
    json_t *p = json_pack("{s:O,s:s,s:o}", "id", c->id, "stream",
                          stream == 1 ? "stdout" : "stderr", "data",
                          sp_jrpc_string_lossy(data, len));
    send_obj(c->cl, sp_jrpc_request(NULL, "exec.output", p));
}

static void start_exec(struct srv *s, struct client *cl, json_t *id,
                       struct batch *b, json_t *params)
{
    int slot = -1;
    for (int i = 0; i < SP_SERVE_MAX_PENDING && slot < 0; i++)
        if (!cl->calls[i])
            slot = i;
    if (slot < 0) {
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_BUSY, NULL,
                                   "too many requests in flight (at most %d)",
                                   SP_SERVE_MAX_PENDING));
        return;
    }
    /* "stream" is serve's own; the rest is exec's. */
    json_t *args = json_deep_copy(params ? params : json_object());
    json_t *st = json_object_get(args, "stream");
    if (st && !json_is_boolean(st)) {
        json_decref(args);
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_PARAMS, NULL,
                                   "\"stream\" must be true or false"));
        return;
    }
    bool stream = json_is_true(st);
    json_object_del(args, "stream");
    struct sp_ops_exec ex;
    sp_error err = {0};
    if (sp_ops_exec_parse(&s->ops, args, &ex, &err) < 0) {
        json_decref(args);
        reply(cl, b, lib_error(id, &err));
        return;
    }
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        sp_ops_exec_free(&ex);
        json_decref(args);
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_INTERNAL, NULL, "out of memory"));
        return;
    }
    c->cl = cl;
    c->id = json_deep_copy(id);
    c->stream = stream;
    c->max_output = ex.max_output;
    struct sp_wsjob_opts jo = {.argv = ex.argv, .env = ex.env,
                               .secret_env = ex.secret_env, .cwd = ex.cwd,
                               .timeout = ex.timeout,
                               .changes = ex.changes,
                               .stdin_data = ex.stdin_data,
                               .stdin_len = ex.stdin_len,
                               .keep = ex.max_output,
                               .sink = sink, .sink_ctx = c};
    int r = sp_wsjob_start(ex.workspace, &jo, &c->job, &err);
    sp_ops_exec_free(&ex);
    json_decref(args);
    if (r < 0) {
        reply(cl, b, lib_error(id, &err));
        call_free(c);
        return;
    }
    c->batch = b;
    if (b)
        b->pending++;
    cl->calls[slot] = c;
}

static int free_slot(struct client *cl)
{
    for (int i = 0; i < SP_SERVE_MAX_PENDING; i++)
        if (!cl->calls[i])
            return i;
    return -1;
}

/* A waiting method's call (pend stolen); id NULL: a notification, run
 * and answered to nobody. */
static void start_pending(struct client *cl, json_t *id, struct batch *b,
                          struct sp_ops_pending *pend)
{
    int slot = free_slot(cl);
    struct call *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        sp_ops_pending_free(pend);
        if (id)
            reply(cl, b, slot < 0 ? sp_jrpc_error(id, SP_JRPC_BUSY, NULL,
                                                  "too many requests in "
                                                  "flight (at most %d)",
                                                  SP_SERVE_MAX_PENDING)
                                  : sp_jrpc_error(id, SP_JRPC_INTERNAL, NULL,
                                                  "out of memory"));
        return;
    }
    c->cl = cl;
    c->id = id ? json_deep_copy(id) : json_string("");
    c->pend = pend;
    c->batch = id ? b : NULL;
    if (c->batch)
        c->batch->pending++;
    cl->calls[slot] = c;
}

static json_t *exec_result(const struct call *c)
{
    const struct sp_wsjob_result *res = sp_wsjob_result(c->job);
    if (res->status < 0)
        return NULL;
    json_t *o = json_pack("{s:i,s:b,s:o}", "exit_code", res->status,
                          "timed_out", res->timed_out, "outcome",
                          sp_ws_end_json(&res->end));
    if (res->report)
        json_object_set(o, "report", res->report);
    bool trunc = false;
    static const char *const names[] = {NULL, "stdout", "stderr"};
    for (int i = 1; i < 3; i++) {
        size_t n = res->kept[i];
        if (n < res->total[i])
            n = sp_jrpc_utf8_cut(res->out[i], n);
        trunc |= n < res->total[i];
        json_object_set_new(o, names[i], sp_jrpc_string_lossy(res->out[i], n));
        char k[32];
        snprintf(k, sizeof(k), "%s_bytes", names[i]);
        json_object_set_new(o, k, json_integer((json_int_t)res->total[i]));
    }
    json_object_set_new(o, "truncated", json_boolean(trunc));
    json_object_set_new(o, "duration_ms", json_real((double)res->wall_us / 1000.0));
    return o;
}

static void cancel(struct client *cl, json_t *id, struct batch *b,
                   json_t *params)
{
    json_t *target = json_object_get(params, "request");
    if (!target) {
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_PARAMS, NULL,
                                   "exec.cancel needs \"request\": the id of "
                                   "a running exec"));
        return;
    }
    for (int i = 0; i < SP_SERVE_MAX_PENDING; i++) {
        struct call *c = cl->calls[i];
        if (!c || !json_equal(c->id, target))
            continue;
        /* The exec's own request is answered: cancelled. */
        json_t *data = json_pack("{s:s}", "kind", "cancelled");
        if (c->job) /* how the exec ended (wsend.h) */
            json_object_set_new(data, "outcome",
                                json_pack("{s:s}", "ended", "cancelled"));
        reply(cl, c->batch, sp_jrpc_error(c->id, SP_JRPC_FAILED, data,
                                          "cancelled"));
        cl->calls[i] = NULL;
        if (c->batch) {
            c->batch->pending--;
            batch_done(cl, c->batch);
        }
        call_free(c);
        if (id)
            reply(cl, b, sp_jrpc_result(id, json_pack("{s:b}", "cancelled", 1)));
        return;
    }
    if (id)
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_PARAMS, NULL,
                                   "no running exec or waiting request of "
                                   "this connection has that id"));
}

static void handle_one(struct srv *s, struct client *cl, json_t *o,
                       struct batch *b)
{
    struct sp_jrpc_msg m;
    const char *why = NULL;
    int rc = sp_jrpc_check(o, &m, &why);
    if (rc != 0) {
        reply(cl, b, sp_jrpc_error(m.id, rc, NULL, "%s", why));
        return;
    }
    if (m.kind == SP_JRPC_RESPONSE)
        return;
    json_t *id = m.kind == SP_JRPC_REQUEST ? m.id : NULL;
    if (m.params && !json_is_object(m.params)) {
        if (id)
            reply(cl, b, sp_jrpc_error(id, SP_JRPC_PARAMS, NULL,
                                       "params must be an object (named "
                                       "parameters)"));
        return;
    }
    if (strcmp(m.method, "exec.cancel") == 0) {
        cancel(cl, id, b, m.params);
        return;
    }
    if (strcmp(m.method, "rpc.methods") == 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
            json_array_append_new(a, json_string(methods[i].method));
        json_array_append_new(a, json_string("exec.cancel"));
        if (id)
            reply(cl, b, sp_jrpc_result(id, json_pack("{s:o,s:s}", "methods", a,
                                                      "version", sp_version())));
        else
            json_decref(a);
        return;
    }
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(m.method, methods[i].method) != 0)
            continue;
        if (!methods[i].fn) {
            /* A notification runs the exec too, answering nothing. */
            if (!id) {
                json_t *nid = json_string("");
                start_exec(s, cl, nid, b, m.params);
                json_decref(nid);
                return;
            }
            start_exec(s, cl, id, b, m.params);
            return;
        }
        sp_error err = {0};
        /* One that waits in the workspace is an event: the loop goes on. */
        struct sp_ops_pending *pend = NULL;
        int sr = sp_ops_start(&s->ops, methods[i].fn, m.params, &pend, &err);
        if (sr < 0) {
            if (id)
                reply(cl, b, lib_error(id, &err));
            return;
        }
        if (sr == 1) {
            start_pending(cl, id, b, pend);
            return;
        }
        json_t *r = methods[i].fn(&s->ops, m.params, &err);
        json_t *data = sp_ops_take_err_data(&s->ops);
        if (!id) {
            json_decref(r);
            json_decref(data);
            return;
        }
        reply(cl, b, r ? sp_jrpc_result(id, r)
                       : lib_error_data(id, &err, data));
        return;
    }
    if (id)
        reply(cl, b, sp_jrpc_error(id, SP_JRPC_METHOD, NULL,
                                   "unknown method \"%.100s\" (rpc.methods "
                                   "lists them)", m.method));
}

static void handle_line(struct srv *s, struct client *cl, const char *line,
                        size_t len)
{
    json_t *o = NULL;
    const char *why = NULL;
    int code = sp_jrpc_parse(line, len, &o, &why);
    if (code) {
        send_obj(cl, sp_jrpc_error(NULL, code, NULL, "%s", why));
        return;
    }
    if (json_is_array(o)) {
        struct batch *b = calloc(1, sizeof(*b));
        if (!b) {
            json_decref(o);
            send_obj(cl, sp_jrpc_error(NULL, SP_JRPC_INTERNAL, NULL, "out of memory"));
            return;
        }
        b->replies = json_array();
        b->pending = 1;
        size_t i;
        json_t *e;
        json_array_foreach(o, i, e)
            handle_one(s, cl, e, b);
        b->pending--;
        batch_done(cl, b);
    } else {
        handle_one(s, cl, o, NULL);
    }
    json_decref(o);
}

static void client_free(struct client *cl)
{
    for (int i = 0; i < SP_SERVE_MAX_PENDING; i++) {
        struct call *c = cl->calls[i];
        if (!c)
            continue;
        if (c->batch && --c->batch->pending == 0) {
            json_decref(c->batch->replies);
            free(c->batch);
        }
        call_free(c); /* its command is cancelled */
    }
    close(cl->fd);
    sp_jrpc_in_free(&cl->in);
    sp_jrpc_out_free(&cl->out);
    free(cl);
}

static void settle(struct client *cl)
{
    for (int i = 0; i < SP_SERVE_MAX_PENDING; i++) {
        struct call *c = cl->calls[i];
        struct pollfd none[SP_WSJOB_POLLFDS];
        if (!c || (c->pend && sp_ops_pending_fd(c->pend) >= 0) ||
            (c->job && sp_wsjob_pollfds(c->job, none, SP_WSJOB_POLLFDS) != 0))
            continue;
        bool notify = json_is_string(c->id) && !json_string_length(c->id) &&
                      !c->batch;
        json_t *out;
        if (c->pend) {
            sp_error err = {0};
            json_t *r = sp_ops_pending_finish(c->pend, &err);
            out = r ? sp_jrpc_result(c->id, r) : lib_error(c->id, &err);
        } else {
            json_t *r = exec_result(c);
            out = r ? sp_jrpc_result(c->id, r)
                    : lib_error(c->id, &sp_wsjob_result(c->job)->err);
        }
        if (!notify)
            reply(cl, c->batch, out);
        else
            json_decref(out);
        cl->calls[i] = NULL;
        if (c->batch) {
            c->batch->pending--;
            batch_done(cl, c->batch);
        }
        call_free(c);
    }
}

/* May this peer use the server? Our own uid, root, or (with a group) a
 * member of it. */
static bool peer_ok(int fd, const struct sp_serve_opts *o)
{
    struct ucred cr;
    socklen_t l = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
        return false;
    if (cr.uid == geteuid() || cr.uid == 0)
        return true;
    if (!o->use_group)
        return false;
    if (cr.gid == o->gid)
        return true;
    char path[64], line[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)cr.pid);
    FILE *f = fopen(path, "re");
    bool ok = false;
    while (f && !ok && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "Groups:", 7) != 0)
            continue;
        char *p = line + 7, *end;
        for (;;) {
            unsigned long g = strtoul(p, &end, 10);
            if (end == p)
                break;
            if ((gid_t)g == o->gid)
                ok = true;
            p = end;
        }
    }
    if (f)
        fclose(f);
    return ok;
}

static int listen_on(const struct sp_serve_opts *o, sp_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!o->socket_path || !*o->socket_path ||
        strlen(o->socket_path) >= sizeof(sa.sun_path))
        return sp_error_setk(err, SP_ERR_USAGE, ENAMETOOLONG,
                             "--socket: a path of 1 to %zu bytes is needed",
                             sizeof(sa.sun_path) - 1);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", o->socket_path);
    struct stat sb;
    if (lstat(o->socket_path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return sp_error_setk(err, SP_ERR_USAGE, EEXIST,
                                 "%s exists and is not a socket",
                                 o->socket_path);
        /* A live server there keeps it; a stale socket goes. */
        int t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (t >= 0 && connect(t, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(t);
            return sp_error_setk(err, SP_ERR_USAGE, EADDRINUSE,
                                 "a server is already listening on %s",
                                 o->socket_path);
        }
        if (t >= 0)
            close(t);
        unlink(o->socket_path);
    }
    /* Bound under a temporary name and renamed into place once it
     * listens: a client never finds a socket that refuses it. */
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    if (snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp",
                 o->socket_path, (int)getpid()) >= (int)sizeof(tmp.sun_path))
        return sp_error_setk(err, SP_ERR_USAGE, ENAMETOOLONG,
                             "--socket: %s is too long", o->socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sp_error_set(err, errno, "socket");
    unlink(tmp.sun_path);
    /* Born 0600: no moment where others could connect. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&tmp, sizeof(tmp));
    umask(old);
    if (r < 0) {
        r = sp_error_set(err, errno, "cannot bind %s", o->socket_path);
        close(fd);
        return r;
    }
    if (o->use_group &&
        (chown(tmp.sun_path, (uid_t)-1, o->gid) < 0 ||
         chmod(tmp.sun_path, 0660) < 0)) {
        r = sp_error_set(err, errno, "cannot give %s to group %d",
                         o->socket_path, (int)o->gid);
        unlink(tmp.sun_path);
        close(fd);
        return r;
    }
    if (listen(fd, 128) < 0 || rename(tmp.sun_path, o->socket_path) < 0) {
        r = sp_error_set(err, errno, "cannot listen on %s", o->socket_path);
        unlink(tmp.sun_path);
        close(fd);
        return r;
    }
    return fd;
}

/* A socket handed over (systemd's LISTEN_FDS): only a listening Unix
 * stream socket is served; it is made non-blocking and close-on-exec as
 * one of our own would be. */
static int adopt_listener(int fd, sp_error *err)
{
    int v = 0, type = 0, dom = 0;
    socklen_t l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno,
                             "the socket passed as fd %d is not a socket", fd);
    l = sizeof(type);
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
    l = sizeof(dom);
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l);
    if (!v || type != SOCK_STREAM || dom != AF_UNIX)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "the socket passed as fd %d is not a listening "
                             "Unix stream socket (ListenStream=PATH)", fd);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return sp_error_set(err, errno, "fd %d", fd);
    return fd;
}

int sp_rpc_serve(const struct sp_serve_opts *o, sp_error *err)
{
    struct srv s = {.max_message = o->max_message};
    int r = sp_ops_init(&s.ops, o->policy_file, o->max_output, err);
    if (r < 0)
        return r;
    if ((r = sp_ops_pool_start(&s.ops, o->pool, err)) < 0) {
        sp_ops_free(&s.ops);
        return r;
    }
    int lfd = o->listen_fd >= 0 ? adopt_listener(o->listen_fd, err)
                                : listen_on(o, err);
    if (lfd < 0) {
        sp_ops_free(&s.ops);
        return lfd;
    }
    sigset_t ss, old;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    sigprocmask(SIG_BLOCK, &ss, &old);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    if (o->ready_fd >= 0) {
        if (write(o->ready_fd, "ready\n", 6) < 0) {
            /* the caller stopped waiting: serve anyway */
        }
        close(o->ready_fd);
    }
    size_t cap = 2 + SP_SERVE_MAX_CLIENTS * (1 + SP_SERVE_MAX_PENDING * SP_WSJOB_POLLFDS);
    struct pollfd *pfd = calloc(cap, sizeof(*pfd));
    bool quit = !pfd || sfd < 0;
    while (!quit) {
        size_t n = 0;
        pfd[n++] = (struct pollfd){sfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < SP_SERVE_MAX_CLIENTS; i++) {
            struct client *cl = s.clients[i];
            if (!cl)
                continue;
            pfd[n++] = (struct pollfd){cl->fd,
                                       (short)((cl->eof ? 0 : POLLIN) |
                                               (sp_jrpc_out_pending(&cl->out) ? POLLOUT : 0)), 0};
            for (int k = 0; k < SP_SERVE_MAX_PENDING; k++) {
                struct call *c = cl->calls[k];
                if (!c)
                    continue;
                if (c->pend) {
                    int fd = sp_ops_pending_fd(c->pend);
                    c->npfd = fd >= 0;
                    if (fd >= 0)
                        pfd[n] = (struct pollfd){fd, POLLIN, 0};
                } else {
                    c->npfd = sp_wsjob_pollfds(c->job, pfd + n,
                                               SP_WSJOB_POLLFDS);
                }
                n += c->npfd;
            }
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents) {
            /* SIGINT or SIGTERM: taken here, so unblocking it at the end
             * does not deliver it again. */
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) < 0) {
                /* nothing to take: stop anyway */
            }
            break;
        }
        size_t idx = 2;
        for (int i = 0; i < SP_SERVE_MAX_CLIENTS; i++) {
            struct client *cl = s.clients[i];
            if (!cl)
                continue;
            short rev = pfd[idx++].revents;
            for (int k = 0; k < SP_SERVE_MAX_PENDING; k++) {
                struct call *c = cl->calls[k];
                if (!c)
                    continue;
                if (c->pend && c->npfd && pfd[idx].revents)
                    sp_ops_pending_step(c->pend);
                else if (!c->pend)
                    sp_wsjob_step(c->job, pfd + idx, c->npfd);
                idx += c->npfd;
            }
            if (rev & (POLLIN | POLLHUP | POLLERR)) {
                char buf[65536];
                ssize_t k = read(cl->fd, buf, sizeof(buf));
                if (k == 0 && (rev & (POLLHUP | POLLERR))) {
                    cl->dead = true; /* gone: its execs are cancelled */
                } else if (k == 0) {
                    cl->eof = true; /* a half-close: its answers still go */
                } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    cl->dead = true;
                } else if (k > 0 && sp_jrpc_in_feed(&cl->in, buf, (size_t)k) < 0) {
                    cl->dead = true;
                } else if (k > 0) {
                    const char *line;
                    size_t len;
                    int lr;
                    while (!cl->dead &&
                           (lr = sp_jrpc_in_next(&cl->in, &line, &len)) != 0) {
                        if (lr == -EMSGSIZE) {
                            send_obj(cl, sp_jrpc_error(NULL, SP_JRPC_INVALID, NULL,
                                                       "message longer than %zu bytes",
                                                       cl->in.max));
                            continue;
                        }
                        if (lr < 0)
                            break;
                        if (len)
                            handle_line(&s, cl, line, len);
                    }
                }
            }
            settle(cl);
            if (!cl->dead && sp_jrpc_out_flush(&cl->out, cl->fd) < 0)
                cl->dead = true;
            if (cl->eof && !sp_jrpc_out_pending(&cl->out)) {
                bool busy = false;
                for (int k = 0; k < SP_SERVE_MAX_PENDING; k++)
                    busy |= cl->calls[k] != NULL;
                if (!busy)
                    cl->dead = true;
            }
            if (cl->dead) {
                s.clients[i] = NULL;
                client_free(cl);
            }
        }
        if (pfd[1].revents & POLLIN) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            int slot = -1;
            for (int i = 0; cfd >= 0 && i < SP_SERVE_MAX_CLIENTS && slot < 0; i++)
                if (!s.clients[i])
                    slot = i;
            struct client *cl = cfd >= 0 && slot >= 0 && peer_ok(cfd, o)
                                    ? calloc(1, sizeof(*cl))
                                    : NULL;
            if (!cl) {
                if (cfd >= 0)
                    close(cfd);
            } else {
                cl->fd = cfd;
                sp_jrpc_in_init(&cl->in, s.max_message);
                sp_jrpc_out_init(&cl->out, 0);
                s.clients[slot] = cl;
            }
        }
    }
    for (int i = 0; i < SP_SERVE_MAX_CLIENTS; i++)
        if (s.clients[i])
            client_free(s.clients[i]);
    free(pfd);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(lfd);
    if (o->listen_fd < 0)
        unlink(o->socket_path);
    sp_ops_free(&s.ops);
    return 0;
}
