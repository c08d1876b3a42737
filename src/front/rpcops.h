/* rpcops.h — the operations the JSON-RPC server (rpcserve.c) and the MCP
 * server (mcp.c) offer, with their arguments checked as hostile input and
 * mapped onto libsandpit calls. One place decides what a client may ask
 * for: the operator's policy (--policy FILE, else the defaults) is the
 * ceiling, and a client can only narrow it (docs/mcp.md, "Policy").
 *
 * Errors: SP_ERR_USAGE with a message naming the argument for bad input;
 * SP_ERR_USAGE with code EPERM when the operator's policy forbids it. */
#ifndef SANDPIT_RPCOPS_H
#define SANDPIT_RPCOPS_H

#include <jansson.h>
#include <stdbool.h>

#include "sandpit.h"

/* Workspaces one server remembers creating (for --policy's ownership). */
#define SP_OPS_MAX_OWNED 1024
/* Default and largest bytes of output a result carries. */
#define SP_OPS_DEFAULT_MAX_OUTPUT (64 * 1024)
#define SP_OPS_MAX_OUTPUT_LIMIT (16 * 1024 * 1024)
/* Output kept in memory per stream to save in the workspace when a
 * result is truncated. */
#define SP_OPS_SPOOL_MAX (8 * 1024 * 1024)
/* Where truncated output is saved, relative to /workspace. */
#define SP_OPS_OUTPUT_DIR ".sandpit/output"

struct sp_ops {
    char *policy_file;          /* the operator's, or NULL: defaults */
    json_t *ceiling;            /* its effective JSON */
    bool owned_only;            /* act only on workspaces we created */
    char **owned;
    size_t n_owned;
    size_t max_output;
    /* Set by an operation that failed with details worth more than its
     * message (a patch's report): {"kind": ..., ...}; the front end takes
     * it (sp_ops_take_err_data) into error.data or the tool's result. */
    json_t *err_data;
    struct sp_pool *pool;       /* warm pool (docs/pool.md), or NULL */
};

/* The details the last failed operation left (caller decrefs), or NULL. */
json_t *sp_ops_take_err_data(struct sp_ops *o);

int sp_ops_init(struct sp_ops *o, const char *policy_file, size_t max_output,
                sp_error *err);
void sp_ops_free(struct sp_ops *o);
/* Start the warm pool of the operator's policy (docs/pool.md): n
 * workspaces, or (n == 0) the policy's "pool" key; none when both are 0.
 * Forks: call before the front end makes threads or listens. */
int sp_ops_pool_start(struct sp_ops *o, unsigned n, sp_error *err);
/* {"pool": {size, ready, refilling, hits, misses, ...} or null}. */
json_t *sp_ops_pool_status(struct sp_ops *o, json_t *args, sp_error *err);

/* The operator's policy "timeout" (seconds; 0: none), the ceiling of
 * every exec's timeout, a service's readiness wait and a client's
 * idle_timeout; sp_ops_timeout_check refuses t over it (SP_ERR_USAGE,
 * EPERM) naming `what`. */
double sp_ops_timeout_ceiling(const struct sp_ops *o);
int sp_ops_timeout_check(const struct sp_ops *o, const char *what, double t,
                         sp_error *err);

/* May this server act on workspace `name`? 0 or < 0 (err: not found /
 * not ours). */
int sp_ops_check_ws(struct sp_ops *o, const char *name, sp_error *err);

/* Each takes its arguments object (NULL = {}) and returns a result
 * object (caller decrefs) or NULL with err. */
json_t *sp_ops_ws_create(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_list(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_start(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_stop(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_delete(struct sp_ops *o, json_t *args, sp_error *err);

/* rpcops_ws.c: files, patch, diff, shells, services (docs/mcp.md names
 * their arguments). */
json_t *sp_ops_ws_diff(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_reset(struct sp_ops *o, json_t *args, sp_error *err);
/* {workspace, after?, max?}: the denial log's entries with seq > after
 * (wsaudit.h). */
json_t *sp_ops_ws_audit(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_list(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_read(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_write(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_delete(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_patch_apply(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_open(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_write(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_read(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_signal(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_close(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_service_start(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_service_status(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_service_logs(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_service_stop(struct sp_ops *o, json_t *args, sp_error *err);

typedef json_t *(*sp_ops_fn)(struct sp_ops *, json_t *, sp_error *);

/* rpcops_fs.c: file_stat {path}, file_mkdir {path, parents, mode},
 * file_move {from, to, overwrite}, file_glob {pattern, path, max_results,
 * dirs}, file_search {pattern, path, glob, literal, ignore_case,
 * max_results}, file_edit {path, old_string, new_string, replace_all}. */
json_t *sp_ops_file_stat(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_mkdir(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_move(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_glob(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_search(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_file_edit(struct sp_ops *o, json_t *args, sp_error *err);

/* rpcops_bg.c: background execs (docs/mcp.md "Background execs"):
 * exec_start {workspace, command, cwd, env, secret_env, timeout, stdin,
 * stdin_open} returns {job, ...} at once; exec_poll {job, cursor,
 * stderr_cursor, wait, max_bytes}; exec_wait {job, timeout}; exec_write
 * {job, input, eof}; exec_kill {job, signal}; exec_list {}. */
json_t *sp_ops_exec_start(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_exec_poll(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_exec_wait(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_exec_write(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_exec_kill(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_exec_list(struct sp_ops *o, json_t *args, sp_error *err);
/* {workspace, shell, rows, cols}; {workspace} -> {shells: [...]}. */
json_t *sp_ops_shell_resize(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_shell_list(struct sp_ops *o, json_t *args, sp_error *err);

/* The request of a background exec's operation that waits (exec_poll,
 * exec_wait), for sp_ops_start: 0 filled (params and ctx owned), 1 fn is
 * none of them, < 0 refused. finish makes the result from the agent's
 * reply r (borrowed) and ctx. */
typedef json_t *(*sp_ops_finish_fn)(json_t *ctx, json_t *r, sp_error *err);
struct sp_ops_bg_req {
    const char *ws;
    const char *method;
    json_t *params;
    json_t *ctx;
    bool waits;
    sp_ops_finish_fn finish;
};
int sp_ops_bg_req(struct sp_ops *o, sp_ops_fn fn, json_t *args,
                  struct sp_ops_bg_req *rq, sp_error *err);

/* Operations that wait in the workspace — service_start (its readiness
 * probe), shell_read and service_logs with "wait" — as events, so a front
 * end's loop never blocks on one: sp_ops_start checks fn's arguments and,
 * when fn waits, sends its request and returns 1 with *ret; 0: fn does
 * not wait (call it); < 0: refused (err). Poll sp_ops_pending_fd for
 * POLLIN and call sp_ops_pending_step; when it returns 1,
 * sp_ops_pending_finish gives fn's result (or NULL with err). Freeing a
 * pending one abandons it. */
struct sp_ops_pending;
int sp_ops_start(struct sp_ops *o, sp_ops_fn fn, json_t *args,
                 struct sp_ops_pending **ret, sp_error *err);
int sp_ops_pending_fd(const struct sp_ops_pending *p);
int sp_ops_pending_step(struct sp_ops_pending *p);
json_t *sp_ops_pending_finish(struct sp_ops_pending *p, sp_error *err);
void sp_ops_pending_free(struct sp_ops_pending *p);

/* rpcops_snap.c: snapshots (docs/snapshots.md): {workspace, snapshot}. */
json_t *sp_ops_ws_snapshot(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_snapshots(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_restore(struct sp_ops *o, json_t *args, sp_error *err);
json_t *sp_ops_ws_snapshot_delete(struct sp_ops *o, json_t *args,
                                  sp_error *err);
/* {workspace, snapshot, name[, policy]}: a new workspace on the snapshot
 * (sp_ws_fork). Its policy is made as create's: the operator's policy
 * with the client's narrowing "policy" object (create's keys but name),
 * never the snapshot's stored policy; the snapshot's image is kept. */
json_t *sp_ops_ws_fork(struct sp_ops *o, json_t *args, sp_error *err);
/* create's checks and policy for a fork of src's snapshot `snap` (args:
 * create's keys, "name" required); rpcops.c. */
json_t *sp_ops_ws_create_fork(struct sp_ops *o, json_t *args,
                              const char *src, const char *snap,
                              sp_error *err);

/* Exec arguments, parsed: {workspace, command (string: run by /bin/sh -c;
 * or an array), cwd, env (object), secret_env (names), timeout, stdin,
 * max_output}. */
struct sp_ops_exec {
    const char *workspace;
    char **argv;                /* NULL-terminated; strings borrowed from args */
    char **env;                 /* "K=V" (owned), NULL-terminated, or NULL */
    const char *cwd;
    double timeout;
    const char *stdin_data;
    size_t stdin_len;
    size_t max_output;
    char **secret_env;          /* "secret_env" names, NULL-terminated
                                   (strings borrowed from args), or NULL */
    bool changes;               /* "changes": the report lists the paths it
                                   created, changed, deleted */
};
int sp_ops_exec_parse(struct sp_ops *o, json_t *args, struct sp_ops_exec *ret,
                      sp_error *err);
void sp_ops_exec_free(struct sp_ops_exec *e);
/* args' optional "secret_env": an array of at most SP_MAX_SECRETS names
 * of workspace ws's secrets (those it was created or started with; an
 * unknown name is SP_ERR_USAGE/EINVAL, naming the names only). *ret:
 * NULL-terminated, strings borrowed from args (free the array), or NULL
 * when absent or empty. The supervisor sets the values. */
int sp_ops_secret_env(json_t *args, const char *ws, char ***ret,
                      sp_error *err);

/* A usage error (SP_ERR_USAGE, EINVAL) whose message is fmt's text alone,
 * without an errno string: what a client's bad argument gets. Returns
 * -EINVAL. */
/* The arguments a (only `keys` known), then its "workspace": one the
 * caller may use (sp_ops_check_ws). NULL with err filled. */
const char *sp_ops_ws_of(struct sp_ops *o, json_t *a,
                         const char *const *keys, sp_error *err);
/* A client's argument k of a: absent or null leaves *ret alone (an
 * error when req); else checked: a string of at most max bytes without NUL,
 * a finite number in [min, max], an integer in [min, max] (never
 * required), a boolean. 0, or -EINVAL through sp_ops_bad. */
int sp_ops_str_arg(json_t *a, const char *k, bool req, size_t max,
                   const char **ret, sp_error *err);
int sp_ops_num_arg(json_t *a, const char *k, bool req, double min, double max,
                   double *ret, sp_error *err);
int sp_ops_int_arg(json_t *a, const char *k, double min, double max,
                   double *ret, sp_error *err);
int sp_ops_bool_arg(json_t *a, const char *k, bool *ret, sp_error *err);
int sp_ops_bad(sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Check that args holds only the named keys (NULL-terminated list). */
int sp_ops_only_keys(json_t *args, const char *const *keys, sp_error *err);

#endif
