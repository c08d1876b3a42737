/* wsjob.h — an exec in a running workspace that does not block its caller:
 * the front ends (serve, mcp) run many at once from one poll loop. A job
 * owns its own connection to the workspace's supervisor and three pipes
 * (stdin fed from memory, stdout and stderr captured); closing the job's
 * connection is how it is cancelled (the supervisor has the agent send
 * SIGTERM, then SIGKILL after a grace, to the command's process group).
 *
 * Output is captured up to `keep` bytes per stream (the rest is counted,
 * and handed to an optional sink callback as it arrives, so it can be
 * streamed on or saved). */
#ifndef SANDPIT_WSJOB_H
#define SANDPIT_WSJOB_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sandpit.h"

/* Largest stdin a job is given from memory. */
#define SP_WSJOB_MAX_STDIN (16 * 1024 * 1024)
/* Most output bytes one stream keeps in memory. */
#define SP_WSJOB_MAX_KEEP (64 * 1024 * 1024)

struct sp_wsjob;

/* Called with output as it arrives (stream 1 or 2), every byte, before
 * the keep bound applies. */
typedef void (*sp_wsjob_sink)(void *ctx, int stream, const char *data,
                              size_t len);

struct sp_wsjob_opts {
    char *const *argv;          /* NULL-terminated */
    char *const *env;           /* "K=V", NULL-terminated, or NULL */
    char *const *secret_env;    /* names of the workspace's secrets to set
                                   (the supervisor adds the values), or NULL */
    const char *cwd;
    double timeout;             /* seconds; 0: the workspace's */
    bool changes;               /* the report lists the paths changed */
    const char *stdin_data;     /* copied; NULL: /dev/null */
    size_t stdin_len;
    size_t keep;                /* bytes kept per stream (<= SP_WSJOB_MAX_KEEP) */
    sp_wsjob_sink sink;
    void *sink_ctx;
};

/* Connect to workspace `name` and start the command. Returns 0 with *ret,
 * or < 0 with err (SP_ERR_USAGE: no such workspace, not running, bad
 * options). */
int sp_wsjob_start(const char *name, const struct sp_wsjob_opts *o,
                   struct sp_wsjob **ret, sp_error *err);

/* Fill up to max pollfds for the job (at most SP_WSJOB_POLLFDS); returns
 * how many. */
#define SP_WSJOB_POLLFDS 4
size_t sp_wsjob_pollfds(struct sp_wsjob *j, struct pollfd *p, size_t max);
/* Do what the poll said can be done (p as filled, with revents). Returns
 * 1 when the job has ended (see sp_wsjob_result), 0 when not yet. */
int sp_wsjob_step(struct sp_wsjob *j, const struct pollfd *p, size_t n);

struct sp_wsjob_result {
    int status;                 /* the command's: >= 0; < 0: sandpit failed */
    bool timed_out;
    sp_exec_end end;            /* how it ended (wsend.h), when status >= 0 */
    sp_error err;               /* when status < 0 */
    const char *out[3];         /* [1] stdout, [2] stderr: kept bytes */
    size_t kept[3];
    uint64_t total[3];          /* every byte the command wrote */
    uint64_t wall_us;
    json_t *report;             /* the report (docs/report.md), or NULL */
};
/* The outcome once sp_wsjob_step returned 1 (pointers live as long as j). */
const struct sp_wsjob_result *sp_wsjob_result(const struct sp_wsjob *j);

/* End the job: a running command is cancelled. Accepts NULL. */
void sp_wsjob_free(struct sp_wsjob *j);

#endif
