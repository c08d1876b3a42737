/* cmd_run.c — `sandpit run [POLICY FLAGS] -- CMD ARGS...`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "util.h"
#include "bounds.h"
#include "pool.h"

/* `run --pool` (docs/pool.md): the command in a one-shot workspace from
 * the caller's pool, or in a fresh one when none is ready (the pool's
 * keeper is started then for the next run). */
static int run_pooled(char **cmd)
{
    sp_error err = {0};
    char name[64];
    int t = sp_pool_run_take(name, sizeof(name), &err);
    bool fresh = t <= 0;
    if (fresh) {
        sp_error e2 = {0};
        if (sp_pool_run_ensure(&e2) < 0)
            cli_error("run --pool: cannot start the pool: %s", e2.message);
        snprintf(name, sizeof(name), "run-%d", (int)getpid());
        sp_policy *p = sp_policy_new();
        sp_ws_create_opts co = {.name = name,
                                .idle_timeout = SP_POOL_RUN_IDLE};
        char got[64];
        memset(&err, 0, sizeof(err));
        if (!p || sp_ws_create(p, &co, got, sizeof(got), &err) < 0) {
            sp_policy_free(p);
            cli_error("run --pool: %s", err.message[0] ? err.message
                                                       : "out of memory");
            return cli_exit_code(&err);
        }
        sp_policy_free(p);
    }
    sp_exec_end end = {0};
    sp_ws_exec_opts o = {.argv = cmd, .fds = {0, 1, 2},
                         .forward_signals = true, .ended = &end};
    memset(&err, 0, sizeof(err));
    int rc = sp_ws_exec(name, &o, &err);
    if (rc < 0) {
        cli_error("run --pool: %s", err.message);
        rc = cli_exit_code(&err);
    } else if (end.how != SP_ENDED_EXIT) {
        char why[256];
        cli_error("%s", sp_exec_end_text(&end, why, sizeof(why)));
    }
    if (fresh)
        sp_ws_rm(name, true, NULL);
    return rc;
}

static void fmt_size(unsigned long long b, char *buf, size_t len)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    if (v == (double)(unsigned long long)v)
        snprintf(buf, len, "%llu %s", (unsigned long long)v, unit[i]);
    else
        snprintf(buf, len, "%.1f %s", v, unit[i]);
}

static void print_stats(const sp_stats *st)
{
    char mem[32] = "unknown";
    if (st->memory_known)
        fmt_size(st->memory_peak, mem, sizeof(mem));
    char pids[32] = "unknown";
    if (st->pids_known)
        snprintf(pids, sizeof(pids), "%llu", (unsigned long long)st->pids_peak);
    fprintf(stderr,
            "sandpit: stats: wall %.1f ms, cpu %.1f ms user + %.1f ms sys, "
            "memory peak %s, pids peak %s\n",
            (double)st->wall_us / 1000.0, (double)st->cpu_user_us / 1000.0,
            (double)st->cpu_sys_us / 1000.0, mem, pids);
}

/* --report FILE: written whole or not at all; "-": stderr. */
int cli_write_report(const char *dst, const char *text)
{
    if (strcmp(dst, "-") == 0) {
        fprintf(stderr, "%s\n", text);
        return 0;
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dst, (long)getpid()) >=
        (int)sizeof(tmp)) {
        cli_error("--report %s: path too long", dst);
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  0644);
    int r = fd < 0 ? -errno : 0;
    size_t len = strlen(text);
    if (r == 0 && (sp_write_all(fd, text, len) < 0 ||
                   sp_write_all(fd, "\n", 1) < 0))
        r = -errno;
    if (fd >= 0 && close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, dst) < 0)
        r = -errno;
    if (r < 0) {
        if (fd >= 0)
            unlink(tmp);
        cli_error("--report %s: %s", dst, strerror(-r));
    }
    return r;
}

/* When the command failed and the sandbox refused something: one line per
 * kind of denial on stderr, so the reason is not a guess. */
void cli_print_denials(const char *text)
{
    json_t *rep = json_loads(text, 0, NULL);
    if (!rep)
        return;
    json_int_t total = json_integer_value(json_object_get(rep, "denials_total"));
    if (total > 0) {
        json_t *only = json_pack("{s:O}", "denials",
                                 json_object_get(rep, "denials"));
        char *lines = only ? sp_report_summary(only) : NULL;
        if (lines)
            fputs(lines, stderr);
        free(lines);
        json_decref(only);
    }
    json_decref(rep);
}

int cmd_run(int argc, char **argv)
{
    /* --pool: only with no policy flag (the pool's policy is the default
     * workspace's); taken out before the policy flags are parsed. */
    bool pool = false, others = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')
            break;
        if (strcmp(argv[i], "--pool") == 0) {
            pool = true;
            memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof(*argv));
            argc--;
            i--;
        } else if (strcmp(argv[i], "-q") && strcmp(argv[i], "-v") &&
                   strcmp(argv[i], "-h") && strcmp(argv[i], "--help") &&
                   strcmp(argv[i], "--quiet") && strcmp(argv[i], "--verbose")) {
            others = true;
        }
    }
    if (pool && others) {
        cli_error("run: --pool takes no policy flags (a pooled sandbox has "
                  "the default workspace policy; docs/pool.md)");
        return EXIT_SP_FAILURE;
    }
    struct cli_opts opts = {0};
    sp_error err = {0};
    sp_policy *p = NULL;
    int idx = cli_parse_policy(argc, argv, &p, &opts, true, &err);
    if (idx < 0) {
        cli_error("%s", err.message);
        return cli_exit_code(&err);
    }
    if (opts.help) {
        puts("usage: sandpit run [POLICY FLAGS] [--] CMD [ARGS...]\n"
             "       sandpit run --pool [--] CMD [ARGS...]\n\n"
             "  --pool                 run in a one-shot workspace from your "
             "warm pool (docs/pool.md)\n");
        cli_policy_help();
        sp_policy_free(p);
        return 0;
    }
    if (idx < argc && strcmp(argv[idx], "--") == 0)
        idx++;
    char *const *dflt = idx >= argc ? sp_policy_default_argv(p) : NULL;
    if (idx >= argc && !dflt) {
        cli_error("run: no command given (usage: sandpit run [FLAGS] -- CMD "
                  "[ARGS...])");
        sp_policy_free(p);
        return EXIT_SP_FAILURE;
    }
    if (pool) {
        sp_policy_free(p);
        if (dflt) {
            cli_error("run --pool: no command given");
            return EXIT_SP_FAILURE;
        }
        return run_pooled(argv + idx);
    }
    sp_run_opts ro = {
        .argv = dflt ? dflt : argv + idx,
        .log = opts.verbosity >= 0 ? cli_log : NULL,
        .verbosity = opts.verbosity,
        .no_denial_watch = opts.no_report,
    };
    char *report = NULL;
    if (!opts.no_report)
        ro.report = &report;
    if (opts.report && opts.no_report) {
        cli_error("run: --report and --no-report conflict");
        sp_policy_free(p);
        return EXIT_SP_FAILURE;
    }
    sp_stats st = {0};
    int rc = sp_run(p, &ro, &st, &err);
    if (rc < 0) {
        cli_error("%s", err.message);
        rc = cli_exit_code(&err);
    } else if (st.oom_killed) {
        /* Outcomes are reported, not guessed: the cgroup said so. */
        char lim[32];
        fmt_size(sp_policy_memory_limit(p), lim, sizeof(lim));
        cli_error("killed: out of memory (limit %s)", lim);
    } else if (st.timed_out) {
        cli_error("timed out: the command ran past its --timeout and was "
                  "stopped");
    }
    if (sp_policy_wants_stats(p))
        print_stats(&st);
    if (report && rc != 0 && opts.verbosity >= 0)
        cli_print_denials(report);
    if (report && opts.report && cli_write_report(opts.report, report) < 0 &&
        rc == 0)
        rc = EXIT_SP_FAILURE;
    free(report);
    sp_policy_free(p);
    return rc;
}
