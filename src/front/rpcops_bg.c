/* rpcops_bg.c — background execs as operations (rpcops.h, ws_bg.h):
 * exec_start returns a number at once; exec_poll reads both streams by
 * cursor, exec_wait waits (bounded) for the end, exec_write feeds stdin,
 * exec_kill signals, exec_list lists. poll and wait are events
 * (sp_ops_bg_req): a front end's loop never blocks on them. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "rpcops.h"
#include "ws_bg.h"
#include "ws_shell.h"

/* Longest wait of one poll or wait call: the client's own timeout is
 * usually 60 s; a longer wait is several calls. */
#define BG_MAX_WAIT 30.0
/* Lines and bytes of each stream exec_wait's result carries. */
#define BG_TAIL_LINES 20
#define BG_TAIL_BYTES 4096

/* keys checked, then "workspace" and "job"; the workspace or NULL. */
static const char *ws_job(struct sp_ops *o, json_t *a, const char *const *keys,
                          int *job, sp_error *err)
{
    json_t *w = json_object_get(a, "workspace");
    double j = 0;
    if (sp_ops_only_keys(a, keys, err) < 0)
        return NULL;
    if (!json_is_string(w) || json_string_length(w) == 0 ||
        json_string_length(w) > 255) {
        sp_ops_bad(err, w ? "argument \"workspace\" must be a workspace's name"
                   : "missing argument \"workspace\"");
        return NULL;
    }
    if (sp_ops_check_ws(o, json_string_value(w), err) < 0)
        return NULL;
    if (job && sp_ops_num_arg(a, "job", true, 1, 1e9, &j, err) < 0)
        return NULL;
    if (job) {
        if (j != floor(j)) {
            sp_ops_bad(err, "argument \"job\" must be a whole number (from "
                     "exec_start or exec_list)");
            return NULL;
        }
        *job = (int)j;
    }
    return json_string_value(w);
}

static json_t *call(const char *ws, const char *method, json_t *p,
                    sp_error *err)
{
    json_t *r = NULL;
    if (!p) {
        sp_error_set(err, ENOMEM, "%s", method);
        return NULL;
    }
    if (sp_ws_call(ws, method, p, &r, err) < 0) {
        /* The agent refused the arguments: a bad request (-32602). */
        if (err->kind == SP_ERR_USAGE && err->code == 0)
            err->code = EINVAL;
        return NULL;
    }
    return r;
}

json_t *sp_ops_exec_start(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "command", "cwd", "env",
                                       "secret_env", "timeout", "stdin",
                                       "stdin_open", NULL};
    const char *ws = ws_job(o, a, keys, NULL, err);
    bool keep_open = false;
    if (!ws || sp_ops_bool_arg(a, "stdin_open", &keep_open, err) < 0)
        return NULL;
    json_t *t = json_copy(a);
    json_object_del(t, "stdin_open");
    struct sp_ops_exec ex = {0};
    if (!json_object_get(t, "command")) {
        json_decref(t);
        sp_ops_bad(err, "missing argument \"command\": an array of strings or one "
                 "string run by /bin/sh -c");
        return NULL;
    }
    if (sp_ops_exec_parse(o, t, &ex, err) < 0) {
        json_decref(t);
        return NULL;
    }
    char **secret = NULL;
    if (sp_ops_secret_env(t, ws, &secret, err) < 0) {
        sp_ops_exec_free(&ex);
        json_decref(t);
        return NULL;
    }
    double cap = sp_ops_timeout_ceiling(o);
    struct sp_ws_bg_opts bo = {
        .argv = ex.argv, .env = ex.env, .cwd = ex.cwd,
        .timeout = ex.timeout > 0 ? ex.timeout : cap,
        .want_stdin = ex.stdin_data || keep_open, .secret_env = secret};
    json_t *p = NULL, *r = NULL;
    if (sp_ws_bg_start_params(&bo, &p, err) == 0)
        r = call(ws, "job.start", p, err);
    if (r && ex.stdin_data) {
        json_t *job = json_object_get(r, "job");
        json_t *w = call(ws, "job.write",
                         sp_ws_bg_write_params((int)json_integer_value(job),
                                               ex.stdin_data, ex.stdin_len,
                                               !keep_open),
                         err);
        if (!w) {
            /* Started all the same: said in the result, not hidden. */
            json_object_set_new(r, "stdin_error",
                                json_string(err->message));
            memset(err, 0, sizeof(*err));
        } else {
            json_object_set(r, "stdin_open", json_object_get(w, "stdin_open"));
        }
        json_decref(w);
    }
    free(secret);
    sp_ops_exec_free(&ex);
    json_decref(t);
    if (r)
        json_object_set_new(r, "workspace", json_string(ws));
    return r;
}

/* ---- what waits: exec_poll (stdout, or the end) and exec_wait ---- */

static json_t *stream_read(const char *ws, int job, bool want_err,
                           int64_t cursor, long tail, size_t max,
                           sp_ws_output *out, sp_error *err)
{
    json_t *r = call(ws, "job.logs",
                     sp_ws_bg_logs_params(job, want_err, cursor, tail, max, 0),
                     err);
    if (!r)
        return NULL;
    if (sp_ws_output_from_json(r, out, err) < 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static json_t *poll_finish(json_t *ctx, json_t *r, sp_error *err)
{
    const char *ws = json_string_value(json_object_get(ctx, "workspace"));
    int job = (int)json_integer_value(json_object_get(ctx, "job"));
    size_t max = (size_t)json_integer_value(json_object_get(ctx, "max"));
    int64_t ec = json_integer_value(json_object_get(ctx, "stderr_cursor"));
    sp_ws_output out = {0}, er = {0};
    if (sp_ws_output_from_json(r, &out, err) < 0)
        return NULL;
    json_t *r2 = stream_read(ws, job, true, ec, -1, max, &er, err);
    if (!r2) {
        sp_ws_output_free(&out);
        return NULL;
    }
    json_decref(r2);
    json_t *res = json_object();
    json_object_set_new(res, "job", json_integer(job));
    json_object_set_new(res, "state", json_string(er.state));
    json_object_set_new(res, "exit_code", er.exit_code >= 0
                                              ? json_integer(er.exit_code)
                                              : json_null());
    json_object_set_new(res, "ended", json_boolean(out.ended && er.ended));
    json_object_set_new(res, "stdout", sp_jrpc_string_lossy(out.data, out.len));
    json_object_set_new(res, "stderr", sp_jrpc_string_lossy(er.data, er.len));
    json_object_set_new(res, "cursor", json_integer((json_int_t)out.next_cursor));
    json_object_set_new(res, "stderr_cursor",
                        json_integer((json_int_t)er.next_cursor));
    json_object_set_new(res, "dropped",
                        json_integer((json_int_t)(out.dropped + er.dropped)));
    sp_ws_output_free(&out);
    sp_ws_output_free(&er);
    return res;
}

static json_t *wait_finish(json_t *ctx, json_t *r, sp_error *err)
{
    const char *ws = json_string_value(json_object_get(ctx, "workspace"));
    int job = (int)json_integer_value(json_object_get(ctx, "job"));
    json_t *res = json_copy(r);
    const char *st = json_string_value(json_object_get(r, "state"));
    json_object_set_new(res, "ended", json_boolean(st && !strcmp(st, "exited")));
    static const char *const keys[] = {"stdout_tail", "stderr_tail"};
    for (int k = 0; k < 2; k++) {
        sp_ws_output out = {0};
        json_t *r2 = stream_read(ws, job, k == 1, -1, BG_TAIL_LINES,
                                 BG_TAIL_BYTES, &out, err);
        if (!r2) {
            json_decref(res);
            return NULL;
        }
        json_decref(r2);
        json_object_set_new(res, keys[k], sp_jrpc_string_lossy(out.data, out.len));
        sp_ws_output_free(&out);
    }
    return res;
}

int sp_ops_bg_req(struct sp_ops *o, sp_ops_fn fn, json_t *a,
                  struct sp_ops_bg_req *rq, sp_error *err)
{
    memset(rq, 0, sizeof(*rq));
    if (fn == sp_ops_exec_poll) {
        static const char *const keys[] = {"workspace", "job", "cursor",
                                           "stderr_cursor", "wait",
                                           "max_bytes", NULL};
        int job = 0;
        double cur = 0, ecur = 0, wait = 0, max = (double)o->max_output;
        const char *ws = ws_job(o, a, keys, &job, err);
        if (!ws ||
            sp_ops_num_arg(a, "cursor", false, 0, 9007199254740992.0, &cur, err) < 0 ||
            sp_ops_num_arg(a, "stderr_cursor", false, 0, 9007199254740992.0, &ecur,
                err) < 0 ||
            sp_ops_num_arg(a, "wait", false, 0, BG_MAX_WAIT, &wait, err) < 0 ||
            sp_ops_num_arg(a, "max_bytes", false, 1, (double)o->max_output, &max, err) < 0)
            return -1;
        if (max > 256 * 1024)
            max = 256 * 1024;
        rq->ws = ws;
        rq->method = "job.logs";
        rq->params = sp_ws_bg_logs_params(job, false, (int64_t)cur, -1,
                                          (size_t)max, wait);
        rq->ctx = json_pack("{s:s,s:i,s:I,s:I}", "workspace", ws, "job", job,
                            "max", (json_int_t)max, "stderr_cursor",
                            (json_int_t)ecur);
        rq->waits = wait > 0;
        rq->finish = poll_finish;
        return 0;
    }
    if (fn == sp_ops_exec_wait) {
        static const char *const keys[] = {"workspace", "job", "timeout",
                                           NULL};
        int job = 0;
        double wait = BG_MAX_WAIT;
        const char *ws = ws_job(o, a, keys, &job, err);
        if (!ws || sp_ops_num_arg(a, "timeout", false, 0, BG_MAX_WAIT, &wait, err) < 0)
            return -1;
        rq->ws = ws;
        rq->method = "job.wait";
        rq->params = sp_ws_bg_wait_params(job, wait);
        rq->ctx = json_pack("{s:s,s:i}", "workspace", ws, "job", job);
        rq->waits = wait > 0;
        rq->finish = wait_finish;
        return 0;
    }
    return 1;
}

static json_t *run_req(struct sp_ops *o, sp_ops_fn fn, json_t *a,
                       sp_error *err)
{
    struct sp_ops_bg_req rq;
    if (sp_ops_bg_req(o, fn, a, &rq, err) != 0)
        return NULL;
    json_t *res = NULL, *r = call(rq.ws, rq.method, rq.params, err);
    if (r)
        res = rq.finish(rq.ctx, r, err);
    json_decref(r);
    json_decref(rq.ctx);
    return res;
}

json_t *sp_ops_exec_poll(struct sp_ops *o, json_t *a, sp_error *err)
{
    return run_req(o, sp_ops_exec_poll, a, err);
}

json_t *sp_ops_exec_wait(struct sp_ops *o, json_t *a, sp_error *err)
{
    return run_req(o, sp_ops_exec_wait, a, err);
}

json_t *sp_ops_exec_write(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "job", "input", "eof",
                                       NULL};
    int job = 0;
    bool eof = false;
    const char *ws = ws_job(o, a, keys, &job, err);
    json_t *in = json_object_get(a, "input");
    if (!ws || sp_ops_bool_arg(a, "eof", &eof, err) < 0)
        return NULL;
    if (in && (!json_is_string(in) || json_string_length(in) > 65536)) {
        sp_ops_bad(err, "argument \"input\" must be a string of at most 65536 bytes");
        return NULL;
    }
    if (!in && !eof) {
        sp_ops_bad(err, "give \"input\" (text for the command's stdin), \"eof\": "
                 "true (close its stdin), or both");
        return NULL;
    }
    json_t *r = call(ws, "job.write",
                     sp_ws_bg_write_params(job, in ? json_string_value(in) : "",
                                           in ? json_string_length(in) : 0,
                                           eof),
                     err);
    if (r)
        json_object_set_new(r, "job", json_integer(job));
    return r;
}

static const struct {
    const char *name;
    int sig;
} sigs[] = {{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},
            {"HUP", SIGHUP}, {"QUIT", SIGQUIT}};

json_t *sp_ops_exec_kill(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "job", "signal", NULL};
    int job = 0;
    const char *ws = ws_job(o, a, keys, &job, err);
    if (!ws)
        return NULL;
    json_t *v = json_object_get(a, "signal");
    const char *s = v && !json_is_null(v) ? json_string_value(v) : "KILL";
    int sig = 0;
    if (s && strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; s && i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (strcmp(s, sigs[i].name) == 0)
            sig = sigs[i].sig;
    if (!sig) {
        sp_ops_bad(err, "argument \"signal\" must be one of KILL, TERM, INT, HUP, "
                 "QUIT");
        return NULL;
    }
    json_t *r = call(ws, "job.signal", sp_ws_bg_signal_params(job, sig), err);
    if (r)
        json_object_set_new(r, "signal", json_string(s));
    return r;
}

json_t *sp_ops_exec_list(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", NULL};
    const char *ws = ws_job(o, a, keys, NULL, err);
    if (!ws)
        return NULL;
    json_t *r = call(ws, "job.list", json_object(), err);
    if (r)
        json_object_set_new(r, "workspace", json_string(ws));
    return r;
}

/* ---- shells: resize and list (the rest is rpcops_ws.c) ---- */

json_t *sp_ops_shell_resize(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "shell", "rows", "cols",
                                       NULL};
    const char *ws = ws_job(o, a, keys, NULL, err);
    double sh = 0, rows = 0, cols = 0;
    if (!ws || sp_ops_num_arg(a, "shell", true, 1, 1e9, &sh, err) < 0 ||
        sp_ops_num_arg(a, "rows", true, 1, 1000, &rows, err) < 0 ||
        sp_ops_num_arg(a, "cols", true, 1, 1000, &cols, err) < 0)
        return NULL;
    if (sp_ws_shell_resize(ws, (int)sh, (unsigned)rows, (unsigned)cols, err) < 0)
        return NULL;
    return json_pack("{s:i,s:i,s:i}", "shell", (int)sh, "rows", (int)rows,
                     "cols", (int)cols);
}

json_t *sp_ops_shell_list(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", NULL};
    const char *ws = ws_job(o, a, keys, NULL, err);
    if (!ws)
        return NULL;
    char *text = sp_ws_shell_list_json(ws, err);
    if (!text)
        return NULL;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    if (!j) {
        sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "the workspace sent bad JSON");
        return NULL;
    }
    return json_is_array(j) ? json_pack("{s:o}", "shells", j) : j;
}
