/* ws_bg.h — the client side of background execs ("jobs", agent_ext.h
 * job.*): a command started in a workspace that returns at once with a
 * number, whose output is read by cursor, that is waited for with a
 * bound, written to, signalled and listed. The requests are built here;
 * sp_ws_call / sp_ws_acall (ws_shell.h) carry them, so the CLI, serve and
 * MCP send the same ones. docs/workspaces.md, "Background execs". */
#ifndef SANDPIT_WS_BG_H
#define SANDPIT_WS_BG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct sp_ws_bg_opts {
    char *const *argv;          /* required */
    char *const *env;           /* "K=V", or NULL */
    const char *cwd;            /* NULL: /workspace */
    double timeout;             /* seconds; 0: none */
    bool want_stdin;            /* a stdin pipe (job.write), else /dev/null */
    char *const *secret_env;    /* names, or NULL */
};

/* job.start's params (checked: a command, its spec within
 * SP_SERVICE_SPEC_MAX), 0 with *ret or < 0 (SP_ERR_USAGE). */
int sp_ws_bg_start_params(const struct sp_ws_bg_opts *o, json_t **ret,
                          sp_error *err);
/* {"job": job} plus what each method takes. */
json_t *sp_ws_bg_params(int job);
json_t *sp_ws_bg_logs_params(int job, bool want_stderr, int64_t cursor,
                             long tail, size_t max, double wait);
json_t *sp_ws_bg_wait_params(int job, double wait);
json_t *sp_ws_bg_write_params(int job, const void *data, size_t len,
                              bool eof);
json_t *sp_ws_bg_signal_params(int job, int sig);

#endif
