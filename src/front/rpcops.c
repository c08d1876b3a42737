/* rpcops.c — operations shared by the serve and mcp front ends
 * (rpcops.h): argument checks, the operator's policy as a ceiling, and the
 * sp_ws_* calls. */
#include "rpcops.h"
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "policy.h"
#include "secrets.h"
#include "snapshot.h"
#include "state.h"

int sp_ops_bad(sp_error *err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int r = sp_error_setk(err, SP_ERR_USAGE, EINVAL, "%s", msg);
    if (err) /* the message says it all: no ": Invalid argument" */
        snprintf(err->message, sizeof(err->message), "%s", msg);
    return r;
}

const char *sp_ops_ws_of(struct sp_ops *o, json_t *a,
                         const char *const *keys, sp_error *err)
{
    const char *ws = NULL;
    if (sp_ops_only_keys(a, keys, err) < 0 ||
        sp_ops_str_arg(a, "workspace", true, 255, &ws, err) < 0 ||
        sp_ops_check_ws(o, ws, err) < 0)
        return NULL;
    return ws;
}

int sp_ops_str_arg(json_t *a, const char *k, bool req, size_t max,
                   const char **ret, sp_error *err)
{
    json_t *v = json_object_get(a, k);
    if (!v || json_is_null(v))
        return req ? sp_ops_bad(err, "missing argument \"%s\"", k) : 0;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sp_ops_bad(err, "argument \"%s\" must be a string of at most "
                               "%zu bytes without NUL", k, max);
    *ret = json_string_value(v);
    return 0;
}

int sp_ops_num_arg(json_t *a, const char *k, bool req, double min, double max,
                   double *ret, sp_error *err)
{
    json_t *v = json_object_get(a, k);
    if (!v || json_is_null(v))
        return req ? sp_ops_bad(err, "missing argument \"%s\"", k) : 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
        json_number_value(v) < min || json_number_value(v) > max)
        return sp_ops_bad(err, "argument \"%s\" must be a number from %g to "
                               "%g", k, min, max);
    *ret = json_number_value(v);
    return 0;
}

int sp_ops_int_arg(json_t *a, const char *k, double min, double max,
                   double *ret, sp_error *err)
{
    json_t *v = json_object_get(a, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_number_value(v) < min ||
        json_number_value(v) > max)
        return sp_ops_bad(err, "argument \"%s\" must be a whole number from "
                               "%g to %g", k, min, max);
    *ret = json_number_value(v);
    return 0;
}

int sp_ops_bool_arg(json_t *a, const char *k, bool *ret, sp_error *err)
{
    json_t *v = json_object_get(a, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return sp_ops_bad(err, "argument \"%s\" must be true or false", k);
    *ret = json_is_true(v);
    return 0;
}

int sp_ops_only_keys(json_t *args, const char *const *keys, sp_error *err)
{
    const char *k;
    json_t *v;
    if (args && !json_is_object(args))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "the arguments must be an object");
    json_object_foreach(args, k, v) {
        bool ok = false;
        for (size_t i = 0; keys[i] && !ok; i++)
            ok = strcmp(k, keys[i]) == 0;
        if (!ok) {
            char list[512] = "";
            for (size_t i = 0; keys[i]; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, keys[i], sizeof(list) - strlen(list) - 1);
            }
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "unknown argument \"%.64s\" (expected: %s)",
                                 k, list);
        }
    }
    return 0;
}

static int get_str(json_t *args, const char *key, bool required, size_t max,
                   const char **ret, sp_error *err)
{
    json_t *v = json_object_get(args, key);
    if (!v || json_is_null(v)) {
        if (required)
            return sp_ops_bad(err, "missing argument \"%s\"", key);
        return 0;
    }
    if (!json_is_string(v))
        return sp_ops_bad(err, "argument \"%s\" must be a string", key);
    if (json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "argument \"%s\" is too long (at most %zu bytes) "
                             "or holds a NUL", key, max);
    *ret = json_string_value(v);
    return 0;
}

static int get_num(json_t *args, const char *key, double min, double max,
                   double *ret, sp_error *err)
{
    json_t *v = json_object_get(args, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return sp_ops_bad(err, "argument \"%s\" must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "argument \"%s\" must be between %g and %g", key,
                             min, max);
    *ret = d;
    return 0;
}

int sp_ops_init(struct sp_ops *o, const char *policy_file, size_t max_output,
                sp_error *err)
{
    memset(o, 0, sizeof(*o));
    o->max_output = max_output ? max_output : SP_OPS_DEFAULT_MAX_OUTPUT;
    sp_policy *p = sp_policy_new();
    if (!p)
        return sp_error_set(err, ENOMEM, "policy");
    int r = 0;
    if (policy_file) {
        r = sp_policy_apply_file(p, policy_file, err);
        o->policy_file = strdup(policy_file);
        o->owned_only = true;
    }
    char *text = r == 0 ? sp_policy_to_json(p, err) : NULL;
    sp_policy_free(p);
    o->ceiling = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!o->ceiling) {
        sp_ops_free(o);
        return r < 0 ? r : sp_error_set(err, ENOMEM, "policy");
    }
    return 0;
}

json_t *sp_ops_take_err_data(struct sp_ops *o)
{
    json_t *d = o->err_data;
    o->err_data = NULL;
    return d;
}

int sp_ops_pool_start(struct sp_ops *o, unsigned n, sp_error *err)
{
    json_t *pv = json_object_get(o->ceiling, "pool");
    if (!n && json_is_integer(pv))
        n = (unsigned)json_integer_value(pv);
    if (!n)
        return 0;
    sp_policy *p = sp_policy_new();
    int r = p ? 0 : sp_error_set(err, ENOMEM, "policy");
    if (r == 0 && o->policy_file)
        r = sp_policy_apply_file(p, o->policy_file, err);
    if (r == 0)
        r = sp_pool_start(p, n, &o->pool, err);
    sp_policy_free(p);
    return r;
}

json_t *sp_ops_pool_status(struct sp_ops *o, json_t *args, sp_error *err)
{
    static const char *const keys[] = {NULL};
    if (sp_ops_only_keys(args, keys, err) < 0)
        return NULL;
    return json_pack("{s:o}", "pool", sp_pool_stats(o->pool));
}

void sp_ops_free(struct sp_ops *o)
{
    sp_pool_free(o->pool);
    o->pool = NULL;
    json_decref(o->err_data);
    for (size_t i = 0; i < o->n_owned; i++)
        free(o->owned[i]);
    free(o->owned);
    free(o->policy_file);
    json_decref(o->ceiling);
    memset(o, 0, sizeof(*o));
}

static bool owned(struct sp_ops *o, const char *name)
{
    for (size_t i = 0; i < o->n_owned; i++)
        if (strcmp(o->owned[i], name) == 0)
            return true;
    return false;
}

int sp_ops_check_ws(struct sp_ops *o, const char *name, sp_error *err)
{
    if (!sp_ws_name_valid(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "\"%.80s\" is not a workspace name (1 to 63 of "
                             "a-z 0-9 _ . -); call workspace_list to see the "
                             "workspaces", name);
    if (o->owned_only && !owned(o, name))
        return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                             "no workspace named %s that this server created "
                             "(call workspace_list, or workspace_create)",
                             name);
    return 0;
}

double sp_ops_timeout_ceiling(const struct sp_ops *o)
{
    json_t *cv = json_object_get(o->ceiling, "timeout");
    double c = json_is_number(cv) ? json_number_value(cv) : 0;
    return c > 0 ? c : 0;
}

int sp_ops_timeout_check(const struct sp_ops *o, const char *what, double t,
                         sp_error *err)
{
    double c = sp_ops_timeout_ceiling(o);
    if (c > 0 && t > c)
        return sp_error_setk(err, SP_ERR_USAGE, EPERM,
                             "%s %g s is over the operator's timeout of %g s: "
                             "ask for %g or less", what, t, c, c);
    return 0;
}

/* ---- create: the agent's options, checked against the ceiling ---------- */

static uint64_t lim(json_t *pol, const char *key)
{
    json_t *v = json_object_get(json_object_get(pol, "limits"), key);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static double limf(json_t *pol, const char *key)
{
    json_t *v = json_object_get(json_object_get(pol, "limits"), key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* create, or (src set) a fork of the snapshot `snap` of workspace src
 * named by args' "name": the same request, checked the same way. */
static json_t *create_ws(struct sp_ops *o, json_t *args, const char *src,
                         const char *snap, sp_error *err)
{
    static const char *const keys[] = {"name", "memory", "cpus", "pids",
                                       "network", "timeout", "idle_timeout",
                                       "image", "disk", "inodes", NULL};
    const char *name = NULL, *network = NULL, *image = NULL;
    double cpus = -1, pids = -1, timeout = -1, idle = -1;
    if (sp_ops_only_keys(args, keys, err) < 0 ||
        get_str(args, "name", false, 63, &name, err) < 0 ||
        get_str(args, "network", false, 4096, &network, err) < 0 ||
        get_num(args, "cpus", 0.01, 4096, &cpus, err) < 0 ||
        get_num(args, "pids", 1, 4194304, &pids, err) < 0 ||
        get_num(args, "timeout", 0.001, SP_MAX_TIMEOUT, &timeout, err) < 0 ||
        get_num(args, "idle_timeout", 0, SP_MAX_TIMEOUT, &idle, err) < 0 ||
        get_str(args, "image", false, 128, &image, err) < 0 ||
        (image && sp_image_request_check(o->ceiling, image, err) < 0))
        return NULL;
    if (name && !sp_ws_name_valid(name)) {
        sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                      "\"%.80s\" is not a valid name: use 1 to 63 of a-z 0-9 "
                      "_ . -, starting with a letter or digit", name);
        return NULL;
    }
    if (o->owned_only && o->n_owned >= SP_OPS_MAX_OWNED) {
        sp_error_setk(err, SP_ERR_USAGE, EMFILE,
                      "this server has created %d workspaces: delete some",
                      SP_OPS_MAX_OWNED);
        return NULL;
    }
    json_t *mem = json_object_get(args, "memory");
    json_t *disk = json_object_get(args, "disk");
    json_t *inodes = json_object_get(args, "inodes");
    static const char *const sized[] = {"memory", "disk", NULL};
    for (size_t i = 0; sized[i]; i++) {
        json_t *v = json_object_get(args, sized[i]);
        if (v && !json_is_null(v) && !json_is_integer(v) && !json_is_string(v)) {
            sp_ops_bad(err, "argument \"%s\" must be bytes (an integer) or a size "
                     "such as \"512M\"", sized[i]);
            return NULL;
        }
    }
    if (inodes && !json_is_null(inodes) && !json_is_integer(inodes)) {
        sp_ops_bad(err, "argument \"%s\" must be an integer", "inodes");
        return NULL;
    }

    /* The request as a policy fragment on top of the operator's. */
    json_t *frag = json_object(), *limits = json_object();
    if (mem && !json_is_null(mem))
        json_object_set(limits, "memory", mem);
    if (disk && !json_is_null(disk)) /* the policy parser checks range */
        json_object_set(limits, "disk", disk);
    if (inodes && !json_is_null(inodes))
        json_object_set(limits, "inodes", inodes);
    if (cpus > 0)
        json_object_set_new(limits, "cpus", json_real(cpus));
    if (pids > 0)
        json_object_set_new(limits, "pids", json_integer((json_int_t)pids));
    if (json_object_size(limits))
        json_object_set(frag, "limits", limits);
    json_decref(limits);
    if (timeout > 0)
        json_object_set_new(frag, "timeout", json_real(timeout));
    if (image) /* checked above against the operator's images.allowed */
        json_object_set_new(frag, "image", json_string(image));
    const char *ceil_net = json_string_value(json_object_get(o->ceiling, "net"));
    if (!ceil_net)
        ceil_net = "none";
    if (network && strcmp(network, "policy") != 0) {
        if (strcmp(network, "none") != 0 && strcmp(ceil_net, "host") != 0) {
            json_decref(frag);
            sp_error_setk(err, SP_ERR_USAGE, EPERM,
                          "network \"%.200s\" is not allowed: the operator's "
                          "policy gives %s (ask for \"none\" or leave "
                          "\"network\" out)",
                          network,
                          strcmp(ceil_net, "none") == 0
                              ? "no network"
                              : "only its own allow list (\"policy\")");
            return NULL;
        }
        json_object_set_new(frag, "net", json_string(network));
    }

    sp_policy *p = sp_policy_new();
    char *fragtext = json_dumps(frag, JSON_COMPACT);
    json_decref(frag);
    int r = p && fragtext ? 0 : sp_error_set(err, ENOMEM, "policy");
    if (r == 0 && o->policy_file)
        r = sp_policy_apply_file(p, o->policy_file, err);
    if (r == 0)
        r = sp_policy_apply_json_text(p, fragtext,
                                      src ? "workspace_fork"
                                          : "workspace_create",
                                      err);
    free(fragtext);
    char *eff = r == 0 ? sp_policy_to_json(p, err) : NULL;
    json_t *want = eff ? json_loads(eff, 0, NULL) : NULL;
    free(eff);
    if (r == 0 && !want)
        r = -SP_EFAIL;
    /* Narrow only: every limit at most the operator's (0 = none set). */
    static const char *const lims[] = {"memory", "pids", "disk", "inodes",
                                       NULL};
    for (size_t i = 0; r == 0 && lims[i]; i++) {
        uint64_t c = lim(o->ceiling, lims[i]), w = lim(want, lims[i]);
        if (c && (!w || w > c))
            r = sp_error_setk(err, SP_ERR_USAGE, EPERM,
                              "%s %llu is over the operator's limit of %llu: "
                              "ask for %llu or less",
                              lims[i], (unsigned long long)w,
                              (unsigned long long)c, (unsigned long long)c);
    }
    if (r == 0) {
        double c = limf(o->ceiling, "cpus"), w = limf(want, "cpus");
        if (c > 0 && (w <= 0 || w > c))
            r = sp_error_setk(err, SP_ERR_USAGE, EPERM,
                              "cpus %g is over the operator's limit of %g", w,
                              c);
    }
    if (r == 0)
        r = sp_ops_timeout_check(o, "timeout", timeout, err);
    /* An idle workspace is stopped no later than the operator's timeout
     * when the client names one; 0 (never) is then refused too. */
    if (r == 0 && idle >= 0 && sp_ops_timeout_ceiling(o) > 0)
        r = idle == 0 ? sp_error_setk(err, SP_ERR_USAGE, EPERM,
                                      "idle_timeout 0 (never) is over the "
                                      "operator's timeout of %g s: ask for "
                                      "%g or less",
                                      sp_ops_timeout_ceiling(o),
                                      sp_ops_timeout_ceiling(o))
                      : sp_ops_timeout_check(o, "idle_timeout", idle, err);
    if (idle < 0)
        idle = 0;
    char ret_name[64] = "";
    if (r == 0 && src) {
        if (!name) /* the caller checked it */
            r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                              "missing argument \"name\"");
        else if ((r = sp_snap_fork(src, snap, name, p, idle, err)) == 0)
            snprintf(ret_name, sizeof(ret_name), "%s", name);
    } else if (r == 0) {
        /* A warm one when the pool's satisfy the request (docs/pool.md). */
        r = sp_pool_take(o->pool, p, name, idle, 0, ret_name,
                         sizeof(ret_name), NULL, err);
        if (r == 0) {
            sp_ws_create_opts co = {.name = name, .idle_timeout = idle};
            r = sp_ws_create(p, &co, ret_name, sizeof(ret_name), err);
        } else if (r > 0) {
            r = 0;
        }
    }
    sp_policy_free(p);
    if (r < 0) {
        json_decref(want);
        return NULL;
    }
    if (o->owned_only) {
        char **n = realloc(o->owned, (o->n_owned + 1) * sizeof(*n));
        if (n) {
            o->owned = n;
            o->owned[o->n_owned] = strdup(ret_name);
            if (o->owned[o->n_owned])
                o->n_owned++;
        }
    }
    json_t *res = json_pack("{s:s,s:s,s:s}", "workspace", ret_name, "state",
                            "running", "root", "/workspace");
    json_t *l = json_object_get(want, "limits");
    json_object_set_new(res, "limits",
                        json_pack("{s:O?,s:O?,s:O?}", "memory",
                                  json_object_get(l, "memory"), "pids",
                                  json_object_get(l, "pids"), "cpus",
                                  json_object_get(l, "cpus")));
    json_object_set(res, "network", json_object_get(want, "net"));
    if (src)
        json_object_set_new(res, "forked_from",
                            json_pack("{s:s,s:s}", "workspace", src,
                                      "snapshot", snap));
    json_decref(want);
    return res;
}

json_t *sp_ops_ws_create(struct sp_ops *o, json_t *args, sp_error *err)
{
    return create_ws(o, args, NULL, NULL, err);
}

json_t *sp_ops_ws_create_fork(struct sp_ops *o, json_t *args,
                              const char *src, const char *snap,
                              sp_error *err)
{
    return create_ws(o, args, src, snap, err);
}

json_t *sp_ops_ws_list(struct sp_ops *o, json_t *args, sp_error *err)
{
    static const char *const keys[] = {NULL};
    if (sp_ops_only_keys(args, keys, err) < 0)
        return NULL;
    char *text = sp_ws_list_json(err);
    if (!text)
        return NULL;
    json_t *all = json_loads(text, 0, NULL);
    free(text);
    json_t *list = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (!n || n[0] == '.' || (o->owned_only && !owned(o, n)))
            continue;
        json_array_append(list, v);
    }
    json_decref(all);
    return json_pack("{s:o}", "workspaces", list);
}

static const char *ws_arg(struct sp_ops *o, json_t *args, sp_error *err)
{
    static const char *const keys[] = {"workspace", NULL};
    const char *name = NULL;
    if (sp_ops_only_keys(args, keys, err) < 0 ||
        get_str(args, "workspace", true, 255, &name, err) < 0 ||
        sp_ops_check_ws(o, name, err) < 0)
        return NULL;
    return name;
}

json_t *sp_ops_ws_start(struct sp_ops *o, json_t *args, sp_error *err)
{
    const char *name = ws_arg(o, args, err);
    if (!name || sp_ws_start(name, err) < 0)
        return NULL;
    return json_pack("{s:s,s:s}", "workspace", name, "state", "running");
}

json_t *sp_ops_ws_stop(struct sp_ops *o, json_t *args, sp_error *err)
{
    const char *name = ws_arg(o, args, err);
    if (!name || sp_ws_stop(name, err) < 0)
        return NULL;
    return json_pack("{s:s,s:s}", "workspace", name, "state", "stopped");
}

json_t *sp_ops_ws_delete(struct sp_ops *o, json_t *args, sp_error *err)
{
    const char *name = ws_arg(o, args, err);
    if (!name || sp_ws_rm(name, true, err) < 0)
        return NULL;
    json_t *res = json_pack("{s:s,s:b}", "workspace", name, "deleted", 1);
    for (size_t i = 0; i < o->n_owned; i++)
        if (strcmp(o->owned[i], name) == 0) {
            free(o->owned[i]);
            o->owned[i] = o->owned[--o->n_owned];
            break;
        }
    return res;
}

/* ---- exec ---------------------------------------------------------------- */

void sp_ops_exec_free(struct sp_ops_exec *e)
{
    if (!e)
        return;
    free(e->argv);
    free(e->secret_env);
    for (size_t i = 0; e->env && e->env[i]; i++)
        free(e->env[i]);
    free(e->env);
    memset(e, 0, sizeof(*e));
}

int sp_ops_exec_parse(struct sp_ops *o, json_t *args, struct sp_ops_exec *e,
                      sp_error *err)
{
    static const char *const keys[] = {"workspace", "command", "cwd", "env",
                                       "secret_env", "timeout", "stdin",
                                       "max_output", "changes", NULL};
    memset(e, 0, sizeof(*e));
    e->max_output = o->max_output;
    double maxo = -1;
    int r;
    if ((r = sp_ops_only_keys(args, keys, err)) < 0 ||
        (r = get_str(args, "workspace", true, 255, &e->workspace, err)) < 0 ||
        (r = sp_ops_check_ws(o, e->workspace, err)) < 0 ||
        (r = get_str(args, "cwd", false, SP_MAX_PATH, &e->cwd, err)) < 0 ||
        (r = get_num(args, "timeout", 0.001, SP_MAX_TIMEOUT, &e->timeout,
                     err)) < 0 ||
        (r = get_num(args, "max_output", 0, (double)o->max_output, &maxo,
                     err)) < 0)
        return r;
    if (maxo >= 0)
        e->max_output = (size_t)maxo;
    if ((r = sp_ops_timeout_check(o, "timeout", e->timeout, err)) < 0)
        return r;
    json_t *chg = json_object_get(args, "changes");
    if (chg && !json_is_null(chg) && !json_is_boolean(chg))
        return sp_ops_bad(err, "argument \"%s\" must be true or false", "changes");
    e->changes = json_is_true(chg);
    json_t *in = json_object_get(args, "stdin");
    if (in && !json_is_null(in)) {
        if (!json_is_string(in))
            return sp_ops_bad(err, "argument \"%s\" must be a string", "stdin");
        e->stdin_data = json_string_value(in);
        e->stdin_len = json_string_length(in);
    }
    json_t *cmd = json_object_get(args, "command");
    if (json_is_string(cmd)) {
        if (json_string_length(cmd) == 0 ||
            strlen(json_string_value(cmd)) != json_string_length(cmd) ||
            json_string_length(cmd) > SP_MAX_ENV_LEN)
            return sp_ops_bad(err, "argument \"%s\" must be a non-empty shell command "
                            "without NUL bytes", "command");
        e->argv = calloc(4, sizeof(*e->argv));
        if (!e->argv)
            return sp_error_set(err, ENOMEM, "argv");
        e->argv[0] = (char *)"/bin/sh";
        e->argv[1] = (char *)"-c";
        e->argv[2] = (char *)json_string_value(cmd);
    } else if (json_is_array(cmd)) {
        size_t n = json_array_size(cmd);
        if (n == 0 || n > SP_MAX_ARGS)
            return sp_ops_bad(err, "argument \"%s\" must be a non-empty array of "
                            "strings (the program and its arguments)",
                       "command");
        e->argv = calloc(n + 1, sizeof(*e->argv));
        if (!e->argv)
            return sp_error_set(err, ENOMEM, "argv");
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(cmd, i);
            if (!json_is_string(a) ||
                strlen(json_string_value(a)) != json_string_length(a) ||
                json_string_length(a) > SP_MAX_ENV_LEN) {
                sp_ops_exec_free(e);
                return sp_ops_bad(err, "every element of \"%s\" must be a string "
                                "without NUL bytes", "command");
            }
            e->argv[i] = (char *)json_string_value(a);
        }
        if (!e->argv[0][0]) {
            sp_ops_exec_free(e);
            return sp_ops_bad(err, "\"%s\"[0] (the program) is empty", "command");
        }
    } else {
        return sp_ops_bad(err, "missing argument \"%s\": an array of strings (the "
                        "program and its arguments) or one string run by "
                        "/bin/sh -c", "command");
    }
    json_t *env = json_object_get(args, "env");
    if (env && !json_is_null(env)) {
        if (!json_is_object(env) || json_object_size(env) > SP_MAX_ENV) {
            sp_ops_exec_free(e);
            return sp_ops_bad(err, "argument \"%s\" must be an object of NAME: "
                            "\"value\" strings", "env");
        }
        e->env = calloc(json_object_size(env) + 1, sizeof(*e->env));
        size_t n = 0;
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v) {
            bool name_ok = *k && !strchr(k, '=') && strlen(k) < 256;
            if (!e->env || !json_is_string(v) || !name_ok ||
                strlen(json_string_value(v)) != json_string_length(v) ||
                json_string_length(v) > SP_MAX_ENV_LEN) {
                sp_ops_exec_free(e);
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "env: \"%.64s\" must be a name without "
                                     "'=' with a string value", k);
            }
            if (asprintf(&e->env[n], "%s=%s", k, json_string_value(v)) < 0) {
                e->env[n] = NULL;
                sp_ops_exec_free(e);
                return sp_error_set(err, ENOMEM, "env");
            }
            n++;
        }
    }
    if ((r = sp_ops_secret_env(args, e->workspace, &e->secret_env, err)) < 0)
        sp_ops_exec_free(e);
    return r < 0 ? r : 0;
}

/* The names workspace ws was created (or last started) with, one per line
 * (secrets.h: SP_SECRETS_NAMES_FILE), into buf; "" when it has none. */
static int secret_names_of(const char *ws, char *buf, size_t len,
                           sp_error *err)
{
    char statedir[SP_MAX_PATH];
    buf[0] = '\0';
    int r = sp_state_dir(statedir, sizeof(statedir), err);
    if (r < 0)
        return r;
    int wsfd = sp_state_open_ws(statedir, ws, err);
    if (wsfd < 0)
        return wsfd;
    int fd = openat(wsfd, SP_SECRETS_NAMES_FILE,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(wsfd);
    if (fd < 0)
        return errno == ENOENT ? 0
                               : sp_error_set(err, errno, "workspace %s: "
                                              "cannot read its secret names",
                                              ws);
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return sp_error_set(err, errno, "workspace %s: cannot read its "
                            "secret names", ws);
    buf[n] = '\0';
    return 0;
}

static bool name_listed(const char *names, const char *n)
{
    size_t nl = strlen(n);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && memcmp(p, n, nl) == 0)
            return true;
        p += l + (e ? 1 : 0);
    }
    return false;
}

int sp_ops_secret_env(json_t *args, const char *ws, char ***ret,
                      sp_error *err)
{
    *ret = NULL;
    json_t *v = json_object_get(args, "secret_env");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > SP_MAX_SECRETS)
        return sp_ops_bad(err, "argument \"secret_env\" must be an array of at "
                        "most %d secret names (the workspace's secrets, "
                        "given when it was created or started)",
                   SP_MAX_SECRETS);
    size_t n = json_array_size(v);
    if (n == 0)
        return 0;
    char names[SP_MAX_SECRETS * (SP_SECRET_NAME_MAX + 1) + 1];
    int r = secret_names_of(ws, names, sizeof(names), err);
    if (r < 0)
        return r;
    char **sv = calloc(n + 1, sizeof(*sv));
    if (!sv)
        return sp_error_set(err, ENOMEM, "secret_env");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        const char *s = json_string_value(e);
        if (!s || strlen(s) != json_string_length(e) ||
            !sp_secret_name_ok(s)) {
            free(sv);
            return sp_ops_bad(err, "every element of \"secret_env\" must be a "
                            "secret's name ([A-Za-z_][A-Za-z0-9_]{0,63})");
        }
        /* A name, checked above, never a value: safe to say back. */
        if (!name_listed(names, s)) {
            free(sv);
            if (!names[0])
                return sp_ops_bad(err, "secret_env: workspace %s has no secrets "
                                "(no secret named %s)", ws, s);
            for (char *p = names; (p = strchr(p, '\n'));)
                *p = p[1] ? ',' : '\0';
            return sp_ops_bad(err, "secret_env: workspace %s has no secret named "
                            "%s (its secrets: %s)", ws, s, names);
        }
        sv[i] = (char *)s;
    }
    *ret = sv;
    return 0;
}
