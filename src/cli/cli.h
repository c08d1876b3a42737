/* cli.h — shared pieces of the command-line front end. The CLI parses and
 * prints; every decision about the sandbox is the library's. */
#ifndef SANDPIT_CLI_H
#define SANDPIT_CLI_H

#include <jansson.h>
#include <stdint.h>
#include <stdbool.h>

#include "sandpit.h"

/* Exit codes (docs/exit-codes.md). 0-123: the command's own status. */
#define EXIT_SP_TIMEOUT 124
#define EXIT_SP_FAILURE 125
#define EXIT_SP_NOEXEC 126
#define EXIT_SP_NOTFOUND 127

struct cli_opts {
    int verbosity;   /* -v: more, -q: -1 */
    bool help;
    const char *report;  /* --report FILE or "-" (run) */
    bool no_report;      /* --no-report (run) */
};

/* Parse the policy flags shared by `run` and `policy show` from argv
 * (stopping at the first non-option or "--"), build and finalize the
 * policy. Returns the index of the first non-option argument, or -1 with
 * err set. *ret_policy is set only on success. */
int cli_parse_policy(int argc, char **argv, sp_policy **ret_policy,
                     struct cli_opts *opts, bool finalize, sp_error *err);

/* Print the policy flags' help. */
void cli_policy_help(void);

/* Options anywhere before "--": move the first `npos` positional
 * arguments of argv[1..argc) in front of the options before them (GNU
 * getopt's permutation, bounded), so `exec --timeout 5 NAME -- CMD` reads
 * as `exec NAME --timeout 5 -- CMD`. Scanning stops at "--" and once npos
 * positionals are found (what follows may be a command with its own
 * options). Options named in with_value (NULL-ended) take the next
 * argument as their value. */
void cli_permute(int argc, char **argv, const char *const *with_value,
                 int npos);
/* cli_permute for a command taking policy flags: the options that take a
 * value are the policy's (args.c) and `extra`'s. */
void cli_permute_policy(int argc, char **argv, const char *const *extra,
                        int npos);

/* The one place an sp_error becomes an exit code. */
int cli_exit_code(const sp_error *err);

/* "sandpit: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --pool N (1 to SP_POOL_MAX) into *ret; < 0 after saying what was wrong. */
int cli_pool_size(const char *cmd, const char *arg, unsigned *ret);

/* Log callback for the library: warnings as "sandpit: warning: ...". */
void cli_log(void *ctx, int level, const char *msg);

int cmd_run(int argc, char **argv);
/* --report FILE (written whole or not at all) or "-" (stderr); 0 or
 * -errno, said on stderr. */
int cli_write_report(const char *dst, const char *text);
/* A report's denials, one line per kind, on stderr (none: nothing). */
void cli_print_denials(const char *report_json);
int cmd_policy(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_net(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_image(int argc, char **argv);
/* create's setup command (--post-create CMD, else the policy's
 * post_create; caller frees; NULL: none), and running it once the
 * workspace is up: only when allowed, else a notice that it was skipped.
 * Returns create's exit code. (cmd_image.c) */
char *cli_post_create_cmd(const sp_policy *p, const char *flag);
int cli_post_create(const char *ws, char *cmd, bool allowed);
/* create: the loud --net host warning (a workspace's own log has it too). */
void cli_net_warn(const sp_policy *p, int verbosity);

/* A log read by cursor (follow.c): `net log`, `audit`. read returns
 * {KEY: [...], "first_kept": N, "last": N} for the entries after `after`
 * (new reference), or NULL with err filled; print writes one entry as
 * text (--json prints it as a JSON line). */
struct cli_log {
    const char *what;     /* "net log": for messages */
    const char *usage;    /* "sandpit net log NAME [--follow] [--json]" */
    const char *help;     /* what --help prints after the usage line */
    const char *key;      /* the array's key: "events", "entries" */
    const char *dropped;  /* what was dropped: "requests", "entries" */
    json_t *(*read)(const char *name, uint64_t after, sp_error *err);
    void (*print)(json_t *e);
};
int cli_log_cmd(const struct cli_log *l, int argc, char **argv);
/* One JSON value on a line of stdout. */
void cli_json_line(json_t *e);
/* A time in ms since the epoch as local "YYYY-MM-DDTHH:MM:SS". */
void cli_time_ms(json_int_t ms, char *buf, size_t len);

#endif
