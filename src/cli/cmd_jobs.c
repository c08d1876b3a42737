/* cmd_jobs.c — background execs on the command line (ws_bg.h):
 * `exec --detach` prints a job's number, `wait`, `logs` and `jobs`.
 * docs/workspaces.md, "Background execs". */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_jobs.h"
#include "ws_bg.h"
#include "ws_shell.h"

/* Longest wait of one request; a longer --timeout is several. */
#define WAIT_STEP 60.0

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

static int job_arg(const char *cmd, const char *v, int *ret)
{
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || n < 1 || n > 1000000000) {
        cli_error("%s: expected a background exec's number (from exec "
                  "--detach or sandpit jobs), got '%s'", cmd, v ? v : "");
        return -1;
    }
    *ret = (int)n;
    return 0;
}

int cli_exec_detach(const char *ws, char **argv, char **env, char **senv,
                    const char *cwd, double timeout)
{
    struct sp_ws_bg_opts o = {.argv = argv, .env = env, .cwd = cwd,
                              .timeout = timeout, .secret_env = senv};
    json_t *p = NULL, *r = NULL;
    sp_error err = {0};
    if (sp_ws_bg_start_params(&o, &p, &err) < 0 ||
        sp_ws_call(ws, "job.start", p, &r, &err) < 0)
        return fail(&err);
    printf("%lld\n", (long long)json_integer_value(json_object_get(r, "job")));
    json_decref(r);
    return 0;
}

int cmd_wait(int argc, char **argv)
{
    const char *usage = "usage: sandpit wait NAME JOB [--timeout S]";
    if (argc < 3 || argv[1][0] == '-') {
        cli_error("wait: %s", usage);
        return EXIT_SP_FAILURE;
    }
    int job = 0;
    double timeout = -1;
    if (job_arg("wait", argv[2], &job) < 0)
        return EXIT_SP_FAILURE;
    for (int i = 3; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = strtod(argv[++i], &end);
            if (end == argv[i] || *end || timeout < 0 || timeout > 30.0 * 86400) {
                cli_error("wait: --timeout: expected seconds (0 to 30 days), "
                          "got '%s'", argv[i]);
                return EXIT_SP_FAILURE;
            }
        } else {
            cli_error("wait: unknown option '%s' or it needs a value (%s)",
                      argv[i], usage);
            return EXIT_SP_FAILURE;
        }
    }
    double left = timeout;
    for (;;) {
        double step = left < 0 || left > WAIT_STEP ? WAIT_STEP : left;
        json_t *r = NULL;
        sp_error err = {0};
        if (sp_ws_call(argv[1], "job.wait", sp_ws_bg_wait_params(job, step),
                       &r, &err) < 0)
            return fail(&err);
        const char *st = json_string_value(json_object_get(r, "state"));
        if (st && strcmp(st, "exited") == 0) {
            int code = (int)json_integer_value(json_object_get(r, "exit_code"));
            if (json_is_true(json_object_get(r, "timed_out")))
                cli_error("wait: background exec %d was killed at its "
                          "timeout", job);
            json_decref(r);
            return code;
        }
        json_decref(r);
        if (left >= 0) {
            left -= step;
            if (left <= 0) {
                cli_error("wait: background exec %d is still running after "
                          "%gs", job, timeout);
                return EXIT_SP_TIMEOUT;
            }
        }
    }
}

/* Write what one read of a stream brought; its next cursor in *cur. */
static int drain(const char *ws, int job, bool want_err, uint64_t *cur,
                 double wait, bool *ended, size_t *got, sp_error *err)
{
    json_t *r = NULL;
    if (sp_ws_call(ws, "job.logs",
                   sp_ws_bg_logs_params(job, want_err, (int64_t)*cur, -1, 0,
                                        wait),
                   &r, err) < 0)
        return -1;
    sp_ws_output out = {0};
    int rc = sp_ws_output_from_json(r, &out, err);
    json_decref(r);
    if (rc < 0)
        return -1;
    if (out.truncated)
        fprintf(stderr, "sandpit: logs: %llu bytes of %s were dropped (the "
                        "ring keeps the newest 1 MiB)\n",
                (unsigned long long)out.dropped,
                want_err ? "stderr" : "stdout");
    if (out.len) {
        FILE *f = want_err ? stderr : stdout;
        fwrite(out.data, 1, out.len, f);
        fflush(f);
    }
    *cur = out.next_cursor;
    *ended = out.ended;
    *got = out.len;
    sp_ws_output_free(&out);
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    const char *usage = "usage: sandpit logs NAME JOB [--follow] "
                        "[--stdout|--stderr]";
    if (argc < 3 || argv[1][0] == '-') {
        cli_error("logs: %s", usage);
        return EXIT_SP_FAILURE;
    }
    int job = 0;
    bool follow = false, want[2] = {true, true};
    if (job_arg("logs", argv[2], &job) < 0)
        return EXIT_SP_FAILURE;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--stdout") == 0) {
            want[1] = false;
        } else if (strcmp(argv[i], "--stderr") == 0) {
            want[0] = false;
        } else {
            cli_error("logs: unknown option '%s' (%s)", argv[i], usage);
            return EXIT_SP_FAILURE;
        }
    }
    if (!want[0] && !want[1]) {
        cli_error("logs: --stdout and --stderr together: give one or neither");
        return EXIT_SP_FAILURE;
    }
    uint64_t cur[2] = {0, 0};
    bool ended[2] = {!want[0], !want[1]};
    sp_error err = {0};
    do {
        for (int k = 0; k < 2; k++) {
            if (!want[k] || (follow && ended[k]))
                continue;
            /* Following, the first wanted stream waits a little for more
             * (a second: output of the other comes at most that late). */
            double w = follow && (k == 0 || !want[0] || ended[0]) ? 1.0 : 0;
            size_t got = 0;
            do {
                if (drain(argv[1], job, k == 1, &cur[k], w, &ended[k], &got,
                          &err) < 0)
                    return fail(&err);
                w = 0; /* then all there is, in reads of 256 KiB */
            } while (got > 0);
        }
    } while (follow && !(ended[0] && ended[1]));
    return 0;
}

int cmd_jobs(int argc, char **argv)
{
    const char *usage = "usage: sandpit jobs NAME [--json]";
    bool as_json = false;
    if (argc < 2 || argv[1][0] == '-') {
        cli_error("jobs: %s", usage);
        return EXIT_SP_FAILURE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else {
            cli_error("jobs: unknown option '%s' (%s)", argv[i], usage);
            return EXIT_SP_FAILURE;
        }
    }
    json_t *r = NULL;
    sp_error err = {0};
    if (sp_ws_call(argv[1], "job.list", json_object(), &r, &err) < 0)
        return fail(&err);
    json_t *jobs = json_object_get(r, "jobs");
    if (as_json) {
        char *s = json_dumps(jobs, JSON_INDENT(2));
        puts(s ? s : "[]");
        free(s);
        json_decref(r);
        return 0;
    }
    printf("%-6s %-9s %-5s %s\n", "JOB", "STATE", "EXIT", "COMMAND");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        json_t *ec = json_object_get(j, "exit_code");
        char exit_s[16] = "-";
        if (json_is_integer(ec))
            snprintf(exit_s, sizeof(exit_s), "%lld",
                     (long long)json_integer_value(ec));
        const char *cmd = json_string_value(json_object_get(j, "command"));
        /* Printed as data: control characters are shown as '?'. */
        printf("%-6lld %-9s %-5s ",
               (long long)json_integer_value(json_object_get(j, "job")),
               json_string_value(json_object_get(j, "state")), exit_s);
        for (const char *c = cmd ? cmd : ""; *c; c++)
            putchar((unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c);
        putchar('\n');
    }
    json_decref(r);
    return 0;
}
