/* rpcops_ws.c — the file, patch, diff, shell and service operations of the
 * serve and mcp front ends (rpcops.h): arguments checked, one synchronous
 * libsandpit call each, results as JSON objects bounded by max_output. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "error.h"
#include "jsonrpc.h"
#include "ring.h"
#include "rpcops.h"
#include "wsaudit.h"
#include "util.h"

#include <regex.h>
#include "workspace.h"
#include "ws_shell.h"

/* Longest wait a read may ask for (an event: the server answers everything
 * else meanwhile). */
#define SP_OPS_MAX_WAIT 30.0

static json_t *parse_text(char *text, sp_error *err)
{
    if (!text)
        return NULL;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    if (!j)
        sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "the workspace sent bad JSON");
    return j;
}

/* Text, or base64 when it is not valid UTF-8: {key: ..} or {key_base64: ..}. */
static void set_bytes(json_t *o, const char *key, const char *data, size_t len)
{
    json_t *s = json_stringn(data ? data : "", len);
    if (s) {
        json_object_set_new(o, key, s);
        return;
    }
    char *b = malloc(sp_b64_encoded_len(len) + 1);
    char k[64];
    snprintf(k, sizeof(k), "%s_base64", key);
    if (b) {
        sp_b64_encode(data, len, b);
        json_object_set_new(o, k, json_string(b));
    }
    free(b);
}

/* Room a result's own fields take beside its payload (path, offsets,
 * flags): the payload gets max_output less this, so the whole result,
 * JSON-encoded, fits max_output. */
#define SP_OPS_RESULT_FIELDS 512

/* The longest prefix of s[0..len), on a UTF-8 boundary, whose JSON string
 * encoding (jansson's: \n and friends 2 bytes, other controls 6, bytes
 * as they are) takes at most budget bytes. */
static size_t fit_json(const char *s, size_t len, size_t budget)
{
    size_t used = 2, i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t w = c == '"' || c == '\\' || c == '\n' || c == '\t' ||
                           c == '\r' || c == '\b' || c == '\f'
                       ? 2
                   : c < 0x20 ? 6
                              : 1;
        if (used + w > budget)
            break;
        used += w;
    }
    return i < len ? sp_jrpc_utf8_cut(s, i) : len;
}

static size_t payload_budget(const struct sp_ops *o)
{
    return o->max_output > 2 * SP_OPS_RESULT_FIELDS
               ? o->max_output - SP_OPS_RESULT_FIELDS
               : o->max_output / 2;
}

/* ---- diff ---------------------------------------------------------------- */

/* Paged: the paths of added, then modified, then deleted are one list;
 * from "offset" on, as many as fit the result's bound; "next_offset"
 * continues it (null at the end). */
json_t *sp_ops_ws_diff(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "offset", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err);
    double off = 0;
    if (!ws ||
        sp_ops_num_arg(a, "offset", false, 0, 9007199254740992.0, &off, err) < 0)
        return NULL;
    json_t *all = parse_text(sp_ws_diff_json(ws, err), err);
    if (!all)
        return NULL;
    static const char *const kinds[] = {"added", "modified", "deleted"};
    size_t total = 0;
    for (int k = 0; k < 3; k++)
        total += json_array_size(json_object_get(all, kinds[k]));
    size_t budget = payload_budget(o), used = 0, idx = 0, next = 0;
    bool cut = false;
    json_t *arr[3] = {json_array(), json_array(), json_array()};
    for (int k = 0; k < 3; k++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(all, kinds[k]), i, v) {
            size_t at = idx++;
            if (at < (size_t)off || cut)
                continue;
            const char *p = json_string_value(v);
            /* Quotes, comma, indent; what is escaped, 5 more at most. */
            size_t w = p ? strlen(p) + 8 : 0;
            if (p)
                for (const char *q = p; *q; q++)
                    w += (unsigned char)*q < 0x20 || *q == '"' || *q == '\\' ? 5 : 0;
            if (used + w > budget && json_array_size(arr[0]) +
                                             json_array_size(arr[1]) +
                                             json_array_size(arr[2]) > 0) {
                cut = true;
                next = at;
                continue;
            }
            used += w;
            json_array_append(arr[k], v);
        }
    }
    bool lib_cut = json_is_true(json_object_get(all, "truncated"));
    json_t *r = json_pack("{s:s,s:I,s:I,s:o,s:b}", "workspace", ws, "total",
                          (json_int_t)total, "offset", (json_int_t)off,
                          "next_offset",
                          cut ? json_integer((json_int_t)next) : json_null(),
                          "truncated", cut || lib_cut);
    if (lib_cut)
        json_object_set_new(r, "hint",
                            json_string("the workspace changed more paths "
                                        "than a diff lists: see docs/limits.md"));
    for (int k = 0; k < 3; k++)
        json_object_set_new(r, kinds[k], arr[k]);
    json_decref(all);
    return r;
}

/* ---- the denial log (docs/report.md) -------------------------------------- */

json_t *sp_ops_ws_audit(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "after", "max", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err);
    double after = 0, max = SP_AUDIT_READ_MAX;
    if (!ws || sp_ops_num_arg(a, "after", false, 0, 9007199254740991.0, &after, err) < 0 ||
        sp_ops_num_arg(a, "max", false, 1, SP_AUDIT_READ_MAX, &max, err) < 0)
        return NULL;
    if (after != floor(after) || max != floor(max)) {
        sp_ops_bad(err, "arguments \"after\" and \"max\" must be whole numbers");
        return NULL;
    }
    return sp_ws_audit_read(ws, (uint64_t)after, (size_t)max, err);
}

json_t *sp_ops_ws_reset(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err);
    if (!ws || sp_ws_reset(ws, err) < 0)
        return NULL;
    return json_pack("{s:s,s:b}", "workspace", ws, "reset", 1);
}

/* ---- files --------------------------------------------------------------- */

static sp_ws_client *conn(const char *ws, sp_error *err)
{
    return sp_ws_connect(ws, err);
}

json_t *sp_ops_file_list(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "recursive", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = ".";
    bool rec = false;
    if (!ws || sp_ops_str_arg(a, "path", false, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_bool_arg(a, "recursive", &rec, err) < 0)
        return NULL;
    sp_ws_client *c = conn(ws, err);
    if (!c)
        return NULL;
    json_t *list = parse_text(sp_ws_file_list(c, path, rec, err), err);
    sp_ws_client_close(c);
    if (!list)
        return NULL;
    /* Bounded: entries are dropped from the end until it fits. */
    size_t total = json_array_size(list);
    bool cut = false;
    for (;;) {
        char *s = json_dumps(list, JSON_COMPACT);
        size_t len = s ? strlen(s) : 0;
        free(s);
        /* Pretty-printed (as mcp's text shows it) within the payload's
         * budget: every entry whole, the fields to go on ahead. */
        len += len / 2;
        if (len <= payload_budget(o) || json_array_size(list) == 0)
            break;
        size_t n = json_array_size(list);
        size_t keep = n * payload_budget(o) / (len + 1);
        if (keep >= n)
            keep = n - 1;
        while (json_array_size(list) > keep)
            json_array_remove(list, json_array_size(list) - 1);
        cut = true;
    }
    json_t *r = json_pack("{s:s,s:I,s:I,s:b}", "path", path, "count",
                          (json_int_t)total, "listed",
                          (json_int_t)json_array_size(list), "truncated", cut);
    if (cut)
        json_object_set_new(r, "hint",
                            json_string("the listing was cut: list a "
                                        "subdirectory, or without recursive"));
    json_object_set_new(r, "entries", list);
    return r;
}

json_t *sp_ops_file_read(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "offset", "length",
                                       NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL;
    double off = 0, len = (double)o->max_output;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_num_arg(a, "offset", false, 0, 9007199254740992.0, &off, err) < 0 ||
        sp_ops_num_arg(a, "length", false, 0, (double)o->max_output, &len, err) < 0)
        return NULL;
    sp_ws_client *c = conn(ws, err);
    if (!c)
        return NULL;
    json_t *st = parse_text(sp_ws_file_stat(c, path, err), err);
    void *data = NULL;
    size_t got = 0;
    uint64_t raw = 0; /* bytes of the file (differs from got when redacted) */
    int r = st ? sp_ws_file_read_raw(c, path, (uint64_t)off, (int64_t)len,
                                     &data, &got, &raw, err)
               : -1;
    sp_ws_client_close(c);
    if (r < 0) {
        json_decref(st);
        free(data);
        return NULL;
    }
    json_int_t size = json_integer_value(json_object_get(st, "size"));
    json_decref(st);
    size_t keep = got;
    /* Cut on a character boundary so the text stays UTF-8 (not a
     * redacted read: its bytes do not map one to one onto the file's). */
    if ((json_int_t)off + (json_int_t)got < size && raw == got)
        keep = sp_jrpc_utf8_cut(data, got);
    if (keep == 0)
        keep = got;
    if (raw != got) {
        keep = got;
    } else {
        /* The whole result, encoded, within max_output: text as its JSON
         * escaping takes it, other bytes as base64 (4 for 3). */
        json_t *probe = json_stringn(data ? data : "", keep);
        size_t fit = probe ? fit_json(data, keep, payload_budget(o))
                           : payload_budget(o) / 4 * 3;
        json_decref(probe);
        if (fit < keep && fit > 0)
            keep = fit;
    }
    uint64_t used = raw == got ? keep : raw;
    /* The fields to go on first, the content last. */
    json_t *res = json_pack("{s:s,s:I,s:I,s:I}", "path", path, "size", size,
                            "offset", (json_int_t)off, "length",
                            (json_int_t)used);
    bool more = (json_int_t)off + (json_int_t)used < size;
    json_object_set_new(res, "truncated", json_boolean(more));
    json_object_set_new(res, "next_offset",
                        more ? json_integer((json_int_t)off + (json_int_t)used)
                             : json_null());
    if (raw != got)
        json_object_set_new(res, "redacted", json_true());
    set_bytes(res, "content", data, keep);
    free(data);
    return res;
}

json_t *sp_ops_file_write(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "content",
                                       "content_base64", "mode", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL;
    double mode = -1;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_num_arg(a, "mode", false, 0, 07777, &mode, err) < 0)
        return NULL;
    json_t *t = json_object_get(a, "content"), *b = json_object_get(a, "content_base64");
    if ((t != NULL) == (b != NULL) || (t && !json_is_string(t)) ||
        (b && !json_is_string(b))) {
        sp_ops_bad(err, "give exactly one of \"content\" (UTF-8 text) or "
                  "\"content_base64\" (bytes), as a string");
        return NULL;
    }
    const char *data;
    size_t len;
    char *dec = NULL;
    if (t) {
        data = json_string_value(t);
        len = json_string_length(t);
    } else {
        size_t bl = json_string_length(b);
        dec = malloc(bl / 4 * 3 + 3);
        long n = dec ? sp_b64_decode(json_string_value(b), bl, dec) : -1;
        if (n < 0) {
            free(dec);
            sp_ops_bad(err, "\"content_base64\" is not valid base64");
            return NULL;
        }
        data = dec;
        len = (size_t)n;
    }
    sp_ws_client *c = conn(ws, err);
    int r = c ? sp_ws_file_write(c, path, data, len, (int)mode,
                                 SP_WS_FILE_PARENTS, err)
              : -1;
    sp_ws_client_close(c);
    free(dec);
    if (r < 0)
        return NULL;
    return json_pack("{s:s,s:I}", "path", path, "bytes", (json_int_t)len);
}

json_t *sp_ops_file_delete(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "recursive", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL;
    bool rec = false;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_bool_arg(a, "recursive", &rec, err) < 0)
        return NULL;
    sp_ws_client *c = conn(ws, err);
    int r = c ? sp_ws_file_remove(c, path, rec ? SP_WS_FILE_RECURSIVE : 0, err)
              : -1;
    sp_ws_client_close(c);
    if (r < 0)
        return NULL;
    return json_pack("{s:s,s:b}", "path", path, "deleted", 1);
}

json_t *sp_ops_patch_apply(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "patch", "strip",
                                       "dry_run", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *patch = NULL;
    double strip = 1;
    bool dry = false;
    if (!ws || sp_ops_str_arg(a, "patch", true, SP_PROTO_MAX_FRAME, &patch, err) < 0 ||
        sp_ops_num_arg(a, "strip", false, 0, 64, &strip, err) < 0 ||
        sp_ops_bool_arg(a, "dry_run", &dry, err) < 0)
        return NULL;
    sp_ws_client *c = conn(ws, err);
    char *report = NULL;
    int r = c ? sp_ws_patch(c, patch, strlen(patch), (int)strip, dry, &report,
                            err)
              : -1;
    sp_ws_client_close(c);
    if (r < 0) {
        free(report);
        return NULL;
    }
    json_t *rep = report ? json_loads(report, 0, NULL) : NULL;
    free(report);
    if (r == 1) {
        /* Not a bad argument: the library refused it. The report, whole,
         * goes to error.data (serve) or the tool's result (mcp). */
        sp_error_setk(err, SP_ERR_USAGE, 0,
                      "the patch did not apply and nothing was changed "
                      "(the report says which file and hunk: read the file "
                      "and make the patch match it)");
        json_decref(o->err_data);
        o->err_data = json_pack("{s:s,s:o}", "kind", "patch", "report",
                                rep ? rep : json_object());
        return NULL;
    }
    if (!json_is_object(rep)) {
        json_decref(rep);
        rep = json_object();
    }
    json_object_set_new(rep, "applied", json_boolean(!dry));
    return rep;
}

/* ---- shells and services ------------------------------------------------- */

/* budget: most bytes the output may take JSON-encoded; what does not fit
 * is left for the next read ("more": true, next_cursor where it starts). */
static json_t *output_json(const sp_ws_output *out, const char *id_key,
                           json_t *id, size_t budget)
{
    const char *d = out->data ? out->data : "";
    size_t len = fit_json(d, out->len, budget);
    bool more = len < out->len;
    json_t *r = json_object();
    json_object_set_new(r, id_key, id);
    json_object_set_new(r, "cursor", json_integer((json_int_t)out->cursor));
    json_object_set_new(r, "next_cursor",
                        json_integer((json_int_t)(more ? out->cursor + len
                                                       : out->next_cursor)));
    json_object_set_new(r, "more", json_boolean(more));
    json_object_set_new(r, "dropped", json_integer((json_int_t)out->dropped));
    json_object_set_new(r, "ended", json_boolean(out->ended));
    json_object_set_new(r, "exit_code",
                        out->exit_code >= 0 ? json_integer(out->exit_code) : json_null());
    json_object_set_new(r, "state", json_string(out->state));
    json_object_set_new(r, "output", sp_jrpc_string_lossy(d, len));
    return r;
}

/* command/cwd/env as exec takes them; the strings point into *ret_keep,
 * which the caller drops after use. */
static int cmd_of(struct sp_ops *o, json_t *a, const char *ws, bool required,
                  struct sp_ops_exec *ex, json_t **ret_keep, sp_error *err)
{
    json_t *t = json_object();
    json_object_set_new(t, "workspace", json_string(ws));
    static const char *const k[] = {"command", "cwd", "env", "secret_env",
                                    NULL};
    for (size_t i = 0; k[i]; i++)
        if (json_object_get(a, k[i]))
            json_object_set(t, k[i], json_object_get(a, k[i]));
    bool has_cmd = json_object_get(t, "command") != NULL;
    if (!has_cmd) {
        if (required) {
            json_decref(t);
            return sp_ops_bad(err, "missing argument \"command\": an array of "
                             "strings or one string run by /bin/sh -c");
        }
        json_object_set_new(t, "command", json_string(":"));
    }
    int r = sp_ops_exec_parse(o, t, ex, err);
    if (r < 0) {
        json_decref(t);
        return r;
    }
    if (!has_cmd) {
        free(ex->argv); /* the default shell */
        ex->argv = NULL;
    }
    ex->workspace = ws;
    *ret_keep = t;
    return 0;
}

json_t *sp_ops_shell_open(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "command", "cwd", "env",
                                       "rows", "cols", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err);
    double rows = 0, cols = 0;
    struct sp_ops_exec ex = {0};
    json_t *keep = NULL;
    if (!ws || sp_ops_num_arg(a, "rows", false, 1, 1000, &rows, err) < 0 ||
        sp_ops_num_arg(a, "cols", false, 1, 1000, &cols, err) < 0 ||
        cmd_of(o, a, ws, false, &ex, &keep, err) < 0)
        return NULL;
    /* The operator's timeout bounds a shell's life, and so every command
     * typed into it. */
    sp_ws_shell_opts so = {.argv = ex.argv, .env = ex.env, .cwd = ex.cwd,
                           .rows = (unsigned)rows, .cols = (unsigned)cols,
                           .timeout = sp_ops_timeout_ceiling(o)};
    int id = sp_ws_shell_open(ws, &so, err);
    sp_ops_exec_free(&ex);
    json_decref(keep);
    if (id < 0)
        return NULL;
    return json_pack("{s:i,s:s}", "shell", id, "state", "running");
}

static int shell_of(json_t *a, int *ret, sp_error *err)
{
    double s = 0;
    int r = sp_ops_num_arg(a, "shell", true, 1, 1e9, &s, err);
    *ret = (int)s;
    return r;
}

json_t *sp_ops_shell_write(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "shell", "input", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *in = NULL;
    int sh = 0;
    if (!ws || shell_of(a, &sh, err) < 0 ||
        sp_ops_str_arg(a, "input", true, 65536, &in, err) < 0)
        return NULL;
    if (sp_ws_shell_write(ws, sh, in, strlen(in), err) < 0)
        return NULL;
    return json_pack("{s:i,s:I}", "shell", sh, "written", (json_int_t)strlen(in));
}

/* ---- what waits in the workspace: a request, and its reply as an event -- */

enum req_kind { REQ_SHELL_READ, REQ_SERVICE_LOGS, REQ_SERVICE_START,
                REQ_OTHER /* finish: rpcops_bg.c */ };

struct sp_ops_pending {
    enum req_kind kind;
    struct sp_ws_acall *call;
    json_t *ctx;                /* what finishing needs: shell, name, stream */
    size_t budget;              /* payload_budget */
    sp_ops_finish_fn finish;    /* REQ_OTHER's */
};

/* A waiting operation's request: ws (in a), the agent's method and params
 * (owned), whether it waits, and ctx (owned) for finishing. */
struct req {
    enum req_kind kind;
    const char *ws;
    const char *method;
    json_t *params;
    json_t *ctx;
    bool waits;
    sp_ops_finish_fn finish;    /* REQ_OTHER's */
};

static void req_free(struct req *rq)
{
    json_decref(rq->params);
    json_decref(rq->ctx);
    memset(rq, 0, sizeof(*rq));
}

static int shell_read_req(struct sp_ops *o, json_t *a, struct req *rq,
                          sp_error *err)
{
    static const char *const keys[] = {"workspace", "shell", "cursor", "wait",
                                       "max_bytes", "until", "quiet_ms",
                                       "raw", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *until = NULL;
    int sh = 0;
    double cur = 0, wait = -1, max = (double)o->max_output, quiet = 0;
    bool raw = false;
    if (!ws || shell_of(a, &sh, err) < 0 ||
        sp_ops_num_arg(a, "cursor", false, 0, 9007199254740992.0, &cur, err) < 0 ||
        sp_ops_num_arg(a, "wait", false, 0, SP_OPS_MAX_WAIT, &wait, err) < 0 ||
        sp_ops_num_arg(a, "max_bytes", false, 1, (double)o->max_output, &max, err) < 0 ||
        sp_ops_str_arg(a, "until", false, 1024, &until, err) < 0 ||
        sp_ops_num_arg(a, "quiet_ms", false, 1, SP_OPS_MAX_WAIT * 1000, &quiet, err) < 0 ||
        sp_ops_bool_arg(a, "raw", &raw, err) < 0)
        return -1;
    if (until && !*until)
        until = NULL;
    regex_t re; /* checked here too: a bad one is a bad argument (-32602) */
    if (until && regcomp(&re, until, REG_EXTENDED | REG_NOSUB) != 0)
        return sp_ops_bad(err, "argument \"until\" is not an extended regular "
                         "expression");
    if (until)
        regfree(&re);
    /* until or quiet_ms without wait: up to the longest wait. */
    if (wait < 0)
        wait = until || quiet > 0 ? SP_OPS_MAX_WAIT : 0;
    if (max > 256 * 1024)
        max = 256 * 1024;
    json_t *p = sp_ws_shell_read_params(sh, (uint64_t)cur, (size_t)max, wait);
    if (until)
        json_object_set_new(p, "until", json_string(until));
    if (quiet > 0)
        json_object_set_new(p, "quiet", json_real(quiet / 1000.0));
    *rq = (struct req){REQ_SHELL_READ, ws, "shell.read", p,
                       json_pack("{s:i,s:b}", "shell", sh, "raw", raw),
                       wait > 0, NULL};
    return 0;
}

static int service_logs_req(struct sp_ops *o, json_t *a, struct req *rq,
                            sp_error *err)
{
    static const char *const keys[] = {"workspace", "name", "stream", "cursor",
                                       "tail", "wait", "max_bytes", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *name = NULL, *stream = "stdout";
    double cur = -1, tail = -1, wait = 0, max = (double)o->max_output;
    if (!ws || sp_ops_str_arg(a, "name", true, 64, &name, err) < 0 ||
        sp_ops_str_arg(a, "stream", false, 16, &stream, err) < 0 ||
        sp_ops_num_arg(a, "cursor", false, 0, 9007199254740992.0, &cur, err) < 0 ||
        sp_ops_num_arg(a, "tail", false, 0, 1e6, &tail, err) < 0 ||
        sp_ops_num_arg(a, "wait", false, 0, SP_OPS_MAX_WAIT, &wait, err) < 0 ||
        sp_ops_num_arg(a, "max_bytes", false, 1, (double)o->max_output, &max, err) < 0)
        return -1;
    if (strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0)
        return sp_ops_bad(err, "stream must be \"stdout\" or \"stderr\"");
    if (max > 256 * 1024)
        max = 256 * 1024;
    *rq = (struct req){REQ_SERVICE_LOGS, ws, "service.logs",
                       sp_ws_service_logs_params(name, stream[3] == 'e',
                                                 (int64_t)cur, (long)tail,
                                                 (size_t)max, wait),
                       json_pack("{s:s,s:s}", "name", name, "stream", stream),
                       wait > 0, NULL};
    return 0;
}

static int service_start_req(struct sp_ops *o, json_t *a, struct req *rq,
                             sp_error *err)
{
    static const char *const keys[] = {"workspace", "name", "command", "cwd",
                                       "env", "secret_env", "ready",
                                       "ready_timeout", "restart_on_failure",
                                       NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *name = NULL, *ready = NULL;
    double rt = 0;
    bool restart = false;
    struct sp_ops_exec ex = {0};
    json_t *keep = NULL;
    if (!ws || sp_ops_str_arg(a, "name", true, 64, &name, err) < 0 ||
        sp_ops_str_arg(a, "ready", false, 4096, &ready, err) < 0 ||
        sp_ops_num_arg(a, "ready_timeout", false, 0, 600, &rt, err) < 0 ||
        sp_ops_bool_arg(a, "restart_on_failure", &restart, err) < 0 ||
        sp_ops_timeout_check(o, "ready_timeout", rt, err) < 0 ||
        cmd_of(o, a, ws, true, &ex, &keep, err) < 0)
        return -1;
    /* The default wait (30 s) is cut to the operator's timeout. */
    double cap = sp_ops_timeout_ceiling(o);
    if (rt == 0 && cap > 0 && cap < 30)
        rt = cap;
    sp_ws_service_opts so = {.name = name, .argv = ex.argv, .env = ex.env,
                             .cwd = ex.cwd, .ready = ready, .ready_timeout = rt,
                             .restart_on_failure = restart,
                             .secret_env = ex.secret_env,
                             .timeout = sp_ops_timeout_ceiling(o)};
    json_t *p = NULL;
    int r = sp_ws_service_start_params(&so, &p, err);
    sp_ops_exec_free(&ex);
    json_decref(keep);
    if (r < 0)
        return r;
    *rq = (struct req){REQ_SERVICE_START, ws, "service.start", p,
                       json_string(name), true, NULL};
    return 0;
}

static int req_of(struct sp_ops *o, sp_ops_fn fn, json_t *a, struct req *rq,
                  sp_error *err)
{
    memset(rq, 0, sizeof(*rq));
    if (fn == sp_ops_shell_read)
        return shell_read_req(o, a, rq, err);
    if (fn == sp_ops_service_logs)
        return service_logs_req(o, a, rq, err);
    if (fn == sp_ops_service_start)
        return service_start_req(o, a, rq, err);
    struct sp_ops_bg_req bg;
    int r = sp_ops_bg_req(o, fn, a, &bg, err);
    if (r == 0)
        *rq = (struct req){REQ_OTHER, bg.ws, bg.method, bg.params, bg.ctx,
                           bg.waits, bg.finish};
    return r; /* 1: not one that waits */
}

/* The tool's result from the agent's reply (r: borrowed). */
static json_t *req_finish(enum req_kind kind, json_t *ctx, json_t *r,
                          size_t budget, sp_ops_finish_fn finish,
                          sp_error *err)
{
    if (kind == REQ_OTHER)
        return finish(ctx, r, err);
    if (kind == REQ_SERVICE_START) {
        char *js = NULL;
        if (sp_ws_service_start_reply(json_string_value(ctx), r, &js, err) < 0) {
            free(js);
            return NULL;
        }
        return js ? parse_text(js, err) : json_object();
    }
    sp_ws_output out = {0};
    if (sp_ws_output_from_json(r, &out, err) < 0)
        return NULL;
    json_t *res;
    if (kind == REQ_SHELL_READ) {
        /* Screen text unless raw: control sequences stripped. */
        if (!json_is_true(json_object_get(ctx, "raw")) && out.data)
            out.len = sp_strip_terminal(out.data, out.len);
        res = output_json(&out, "shell",
                          json_incref(json_object_get(ctx, "shell")), budget);
    } else {
        res = output_json(&out, "name",
                          json_incref(json_object_get(ctx, "name")), budget);
        json_object_set(res, "stream", json_object_get(ctx, "stream"));
        /* the output last: the fields to go on first */
        json_t *outv = json_incref(json_object_get(res, "output"));
        json_object_del(res, "output");
        json_object_set_new(res, "output", outv);
    }
    sp_ws_output_free(&out);
    return res;
}

/* The blocking form (the library's callers, and a read without wait). */
static json_t *req_run(struct sp_ops *o, sp_ops_fn fn, json_t *a,
                       sp_error *err)
{
    struct req rq;
    if (req_of(o, fn, a, &rq, err) != 0)
        return NULL;
    json_t *r = NULL;
    json_t *res = NULL;
    if (sp_ws_call(rq.ws, rq.method, json_incref(rq.params), &r, err) == 0)
        res = req_finish(rq.kind, rq.ctx, r, payload_budget(o), rq.finish,
                         err);
    json_decref(r);
    req_free(&rq);
    return res;
}

int sp_ops_start(struct sp_ops *o, sp_ops_fn fn, json_t *a,
                 struct sp_ops_pending **ret, sp_error *err)
{
    *ret = NULL;
    struct req rq;
    int r = req_of(o, fn, a, &rq, err);
    if (r != 0)
        return r < 0 ? r : 0;
    if (!rq.waits) {
        req_free(&rq);
        return 0;
    }
    struct sp_ops_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        req_free(&rq);
        return sp_error_set(err, ENOMEM, "request");
    }
    p->kind = rq.kind;
    p->ctx = json_incref(rq.ctx);
    p->budget = payload_budget(o);
    p->finish = rq.finish;
    r = sp_ws_acall_start(rq.ws, rq.method, json_incref(rq.params), &p->call,
                          err);
    req_free(&rq);
    if (r < 0) {
        sp_ops_pending_free(p);
        return r;
    }
    *ret = p;
    return 1;
}

int sp_ops_pending_fd(const struct sp_ops_pending *p)
{
    return sp_ws_acall_fd(p->call);
}

int sp_ops_pending_step(struct sp_ops_pending *p)
{
    return sp_ws_acall_step(p->call);
}

json_t *sp_ops_pending_finish(struct sp_ops_pending *p, sp_error *err)
{
    json_t *r = sp_ws_acall_result(p->call, err);
    if (!r)
        return NULL;
    json_t *res = req_finish(p->kind, p->ctx, r, p->budget, p->finish, err);
    json_decref(r);
    return res;
}

void sp_ops_pending_free(struct sp_ops_pending *p)
{
    if (!p)
        return;
    sp_ws_acall_free(p->call);
    json_decref(p->ctx);
    free(p);
}

json_t *sp_ops_shell_read(struct sp_ops *o, json_t *a, sp_error *err)
{
    return req_run(o, sp_ops_shell_read, a, err);
}

static const struct {
    const char *name;
    int sig;
} sigs[] = {{"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP},
            {"KILL", SIGKILL}, {"QUIT", SIGQUIT}};

json_t *sp_ops_shell_signal(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "shell", "signal", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *s = "INT";
    int sh = 0;
    if (!ws || shell_of(a, &sh, err) < 0 ||
        sp_ops_str_arg(a, "signal", false, 16, &s, err) < 0)
        return NULL;
    const char *n = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
    int sig = 0;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (strcmp(n, sigs[i].name) == 0)
            sig = sigs[i].sig;
    if (!sig) {
        sp_ops_bad(err, "signal must be one of INT, TERM, HUP, KILL, QUIT");
        return NULL;
    }
    if (sp_ws_shell_signal(ws, sh, sig, err) < 0)
        return NULL;
    return json_pack("{s:i,s:s}", "shell", sh, "signal", n);
}

json_t *sp_ops_shell_close(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "shell", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err);
    int sh = 0;
    if (!ws || shell_of(a, &sh, err) < 0 || sp_ws_shell_close(ws, sh, err) < 0)
        return NULL;
    return json_pack("{s:i,s:b}", "shell", sh, "closed", 1);
}

json_t *sp_ops_service_start(struct sp_ops *o, json_t *a, sp_error *err)
{
    return req_run(o, sp_ops_service_start, a, err);
}

json_t *sp_ops_service_status(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "name", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *name = NULL;
    if (!ws || sp_ops_str_arg(a, "name", false, 64, &name, err) < 0)
        return NULL;
    json_t *j = parse_text(sp_ws_service_status_json(ws, name, err), err);
    if (!j)
        return NULL;
    if (json_is_array(j))
        return json_pack("{s:o}", "services", j);
    return json_pack("{s:[o]}", "services", j);
}

json_t *sp_ops_service_logs(struct sp_ops *o, json_t *a, sp_error *err)
{
    return req_run(o, sp_ops_service_logs, a, err);
}

json_t *sp_ops_service_stop(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "name", "grace", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *name = NULL;
    double grace = -1;
    if (!ws || sp_ops_str_arg(a, "name", true, 64, &name, err) < 0 ||
        sp_ops_num_arg(a, "grace", false, 0, 300, &grace, err) < 0)
        return NULL;
    char *js = NULL;
    if (sp_ws_service_stop(ws, name, grace, &js, err) < 0) {
        free(js);
        return NULL;
    }
    json_t *r = js ? parse_text(js, err) : json_object();
    if (r && json_is_object(r))
        json_object_set_new(r, "name", json_string(name));
    return r;
}
