/* cmd_ws.c — the workspace verbs: create, exec, ps, stop, start, rm, gc.
 * Each parses, calls one sp_ws_* function and prints; exit codes: 0, 125
 * with one line on stderr when sandpit failed, or exec's command status. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_secrets.h"
#include "cmd_jobs.h"
#include "cmd_shell.h"
#include "cmd_ws.h"

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

static int parse_seconds(const char *flag, const char *v, double *ret)
{
    char *end = NULL;
    double d = v ? strtod(v, &end) : -1;
    if (!v || end == v || *end || d < 0 || d > 30.0 * 24 * 3600) {
        cli_error("%s: expected seconds (0 to 30 days), got '%s'", flag,
                  v ? v : "");
        return -1;
    }
    *ret = d;
    return 0;
}

int cmd_create(int argc, char **argv)
{
    sp_ws_create_opts o = {0};
    struct cli_secrets sec = {0};
    json_t *publish = NULL;
    const char *post_create = NULL;
    bool allow_post = false;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    if (!rest)
        return EXIT_SP_FAILURE;
    /* NAME may follow the options (create --memory 1G NAME). */
    static const char *const own[] = {"--idle-timeout", "--max-lifetime",
                                      "--from", "--post-create", "--publish",
                                      "-p", "--secret", NULL};
    cli_permute_policy(argc, argv, own, 1);
    int n = 0;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int sr;
        if (i == 1 && a[0] != '-') {
            o.name = a;
        } else if (strcmp(a, "--idle-timeout") == 0 ||
                   strcmp(a, "--max-lifetime") == 0) {
            double *dst = a[2] == 'i' ? &o.idle_timeout : &o.max_lifetime;
            if (parse_seconds(a, i + 1 < argc ? argv[i + 1] : NULL, dst) < 0) {
                free(rest);
                return EXIT_SP_FAILURE;
            }
            i++;
        } else if (strncmp(a, "--idle-timeout=", 15) == 0 ||
                   strncmp(a, "--max-lifetime=", 15) == 0) {
            double *dst = a[2] == 'i' ? &o.idle_timeout : &o.max_lifetime;
            if (parse_seconds(a[2] == 'i' ? "--idle-timeout" : "--max-lifetime",
                              a + 15, dst) < 0) {
                free(rest);
                return EXIT_SP_FAILURE;
            }
        } else if (strcmp(a, "--from") == 0 || strncmp(a, "--from=", 7) == 0) {
            o.from = a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
            if (!o.from || !*o.from) {
                cli_error("--from: expected a directory");
                free(rest);
                return EXIT_SP_FAILURE;
            }
        } else if (strcmp(a, "--read-only-system") == 0) {
            o.read_only_system = true;
        } else if (strcmp(a, "--allow-post-create") == 0) {
            allow_post = true;
        } else if (strcmp(a, "--post-create") == 0 && i + 1 < argc) {
            post_create = argv[++i]; /* docs/images.md */
        } else if ((sr = cli_secret_opt(&sec, argc, argv, &i)) != 0) {
            if (sr < 0) {
                free(rest);
                json_decref(publish);
                cli_secrets_free(&sec);
                return EXIT_SP_FAILURE;
            }
        } else if (strcmp(a, "--publish") == 0 || strcmp(a, "-p") == 0 ||
                   strncmp(a, "--publish=", 10) == 0) {
            /* [HOSTADDR:]HOSTPORT:PORT, checked by the policy (portfwd.h) */
            const char *v = a[2] == 'p' && a[9] == '=' ? a + 10
                            : i + 1 < argc             ? argv[++i]
                                                       : NULL;
            if (!v || !*v) {
                cli_error("--publish: expected [HOSTADDR:]HOSTPORT:PORT");
                free(rest);
                json_decref(publish);
                return EXIT_SP_FAILURE;
            }
            if (!publish)
                publish = json_array();
            json_array_append_new(publish, json_string(v));
        } else {
            rest[n++] = argv[i];
        }
    }
    struct cli_opts opts = {0};
    sp_error err = {0};
    sp_policy *p = NULL;
    int idx = cli_parse_policy(n, rest, &p, &opts, false, &err);
    if (idx >= 0 && publish) {
        json_t *po = json_pack("{s:o}", "publish", publish);
        char *pt = json_dumps(po, JSON_COMPACT);
        json_decref(po);
        if (!pt || sp_policy_apply_json_text(p, pt, "--publish", &err) < 0) {
            sp_policy_free(p);
            idx = -1;
        }
        free(pt);
    } else {
        json_decref(publish);
    }
    if (idx < 0) {
        free(rest);
        cli_secrets_free(&sec);
        return fail(&err);
    }
    if (opts.help) {
        puts("usage: sandpit create [NAME] [POLICY FLAGS] [--idle-timeout S] "
             "[--max-lifetime S] [--from DIR] [--read-only-system] "
             "[--publish [HOSTADDR:]HOSTPORT:PORT]... "
             "[--post-create CMD] [--allow-post-create] "
             "[--secret NAME=@FILE|NAME=env:VAR]...\n");
        cli_policy_help();
        sp_policy_free(p);
        free(rest);
        cli_secrets_free(&sec);
        return 0;
    }
    if (idx < n && !o.name && idx == n - 1 && rest[idx][0] != '-') {
        o.name = rest[idx++]; /* the name after the flags */
    } else if (idx < n && strcmp(rest[idx], "--") == 0 && !o.name &&
               idx == n - 2) {
        o.name = rest[idx + 1];
        idx = n;
    }
    if (idx < n) {
        cli_error("create: unexpected argument '%s' (the name comes first: "
                  "sandpit create [NAME] [FLAGS])", rest[idx]);
        sp_policy_free(p);
        free(rest);
        cli_secrets_free(&sec);
        return EXIT_SP_FAILURE;
    }
    free(rest);
    char name[64];
    cli_net_warn(p, opts.verbosity);
    char why[200];
    if (opts.verbosity >= 0 && !sp_ws_disk_check(p, why, sizeof(why)))
        fprintf(stderr, "sandpit: warning: disk: nothing bounds what this "
                        "workspace writes to the host's disk: %s (use "
                        "--require disk to refuse instead)\n", why);
    o.secrets = sec.n ? sec.v : NULL;
    o.n_secrets = sec.n;
    char *pc = cli_post_create_cmd(p, post_create);
    int r = sp_ws_create(p, &o, name, sizeof(name), &err);
    cli_secrets_free(&sec);
    sp_policy_free(p);
    if (r < 0) {
        free(pc);
        return fail(&err);
    }
    printf("%s\n", name);
    return cli_post_create(name, pc, allow_post);
}

int cmd_exec(int argc, char **argv)
{
    static const char *const with_value[] = {
        "-e", "--env", "--secret-env", "-w", "--workdir", "--timeout", NULL};
    cli_permute(argc, argv, with_value, 1);
    if (argc < 2 || argv[1][0] == '-') {
        cli_error("exec: usage: sandpit exec NAME [-i|-t|-d] [-e K=V] [-w DIR] "
                  "[--timeout S] [--secret-env NAME] [--report FILE|-] [--changes]\n"
                  "  -- CMD [ARGS...]\n"
                  "  -d, --detach: run it in the background and print its "
                  "number (sandpit wait, logs, jobs)\n"
                  "  -t, --tty: run it on a terminal (a PTY sized as this "
                  "one; stdin, stdout and stderr all go through it)");
        return EXIT_SP_FAILURE;
    }
    const char *name = argv[1];
    char **env = calloc((size_t)argc + 1, sizeof(*env));
    char **senv = calloc((size_t)argc + 1, sizeof(*senv));
    if (!env || !senv) {
        free(env);
        free(senv);
        return EXIT_SP_FAILURE;
    }
    size_t ne = 0, nse = 0;
    sp_ws_exec_opts o = {.fds = {-1, 1, 2}, .forward_signals = true};
    const char *report_to = NULL;
    char *report = NULL;
    int i = 2;
    int rc = EXIT_SP_FAILURE;
    bool detach = false, tty = false;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-')
            break;
        if (strcmp(a, "-i") == 0 || strcmp(a, "--interactive") == 0) {
            o.fds[0] = 0;
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--detach") == 0) {
            detach = true;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--tty") == 0) {
            tty = true;
        } else if (strcmp(a, "-it") == 0 || strcmp(a, "-ti") == 0) {
            tty = true;
            o.fds[0] = 0;
        } else if ((strcmp(a, "-e") == 0 || strcmp(a, "--env") == 0) &&
                   i + 1 < argc) {
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                cli_error("exec: -e %s: expected NAME=VALUE", kv);
                goto out;
            }
            env[ne++] = (char *)kv;
        } else if (strcmp(a, "--secret-env") == 0 && i + 1 < argc) {
            senv[nse++] = argv[++i]; /* checked by the supervisor */
        } else if ((strcmp(a, "-w") == 0 || strcmp(a, "--workdir") == 0) &&
                   i + 1 < argc) {
            o.cwd = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            if (parse_seconds("--timeout", argv[++i], &o.timeout) < 0)
                goto out;
        } else if (strcmp(a, "--report") == 0 && i + 1 < argc) {
            report_to = argv[++i];
        } else if (strcmp(a, "--changes") == 0) {
            o.changes = true;
        } else if (strcmp(a, "--no-wait") == 0) {
            /* A paused workspace fails at once (docs/snapshots.md). */
            sp_error perr = {0};
            if (sp_ws_wait_resumed(name, 0, &perr) < 0) {
                rc = fail(&perr);
                goto out;
            }
        } else {
            cli_error("exec: unknown option '%s' or it needs a value", a);
            goto out;
        }
    }
    if (i >= argc) {
        cli_error("exec: no command given (sandpit exec NAME [OPTIONS] -- "
                  "CMD [ARGS...])");
        goto out;
    }
    if (tty && (detach || o.timeout > 0 || nse)) {
        cli_error("exec: -t runs the command on a terminal as a shell does: "
                  "not with %s", detach ? "--detach" : o.timeout > 0
                                            ? "--timeout"
                                            : "--secret-env");
        goto out;
    }
    if (tty) {
        rc = cli_exec_tty(name, argv + i, ne ? env : NULL, o.cwd);
        goto out;
    }
    if (detach && o.fds[0] == 0) {
        cli_error("exec: -i and --detach together: a background exec's "
                  "stdin is not this terminal");
        goto out;
    }
    if (detach) {
        rc = cli_exec_detach(name, argv + i, ne ? env : NULL,
                             nse ? senv : NULL, o.cwd, o.timeout);
        goto out;
    }
    o.argv = argv + i;
    o.env = ne ? env : NULL;
    o.secret_env = nse ? senv : NULL;
    sp_error err = {0};
    sp_exec_end end = {0};
    o.ended = &end;
    o.report = &report;
    rc = sp_ws_exec(name, &o, &err);
    if (rc < 0) {
        rc = fail(&err);
    } else if (end.how != SP_ENDED_EXIT) {
        /* Said, not guessed: how it ended (wsend.h). */
        char why[256];
        cli_error("exec: %s", sp_exec_end_text(&end, why, sizeof(why)));
    }
    if (rc > 0 && report)
        cli_print_denials(report);
    if (report_to && report && cli_write_report(report_to, report) < 0 &&
        rc == 0)
        rc = EXIT_SP_FAILURE;
    if (o.changes && !report_to && rc >= 0)
        cli_error("exec: --changes goes with --report FILE|-");
    if (report_to && !report && rc >= 0)
        cli_error("exec: --report: the workspace's supervisor sent no "
                  "report (restart the workspace after an upgrade)");
out:
    free(report);
    free(env);
    free(senv);
    return rc;
}

/* 512K, 12.3M, 10.0G */
static void fmt_size(double b, char *buf, size_t len)
{
    if (b < 1048576.0)
        snprintf(buf, len, "%.0fK", b / 1024.0);
    else if (b < 1073741824.0)
        snprintf(buf, len, "%.1fM", b / 1048576.0);
    else
        snprintf(buf, len, "%.1fG", b / 1073741824.0);
}

/* "USED/LIMIT" of a ps entry's disk (docs/disk.md): "-" for a used size
 * not known now (image not mounted), "none" for a limit not enforced. */
static void fmt_disk(const json_t *d, char *buf, size_t len)
{
    const json_t *used = json_object_get(d, "used");
    const json_t *lim = json_object_get(d, "limit");
    if (!json_is_true(json_object_get(d, "enforced"))) {
        snprintf(buf, len, "none");
        return;
    }
    char u[16] = "-", l[16] = "-";
    if (json_is_integer(used))
        fmt_size((double)json_integer_value(used), u, sizeof(u));
    if (json_is_integer(lim))
        fmt_size((double)json_integer_value(lim), l, sizeof(l));
    snprintf(buf, len, "%s/%s", u, l);
}

static void fmt_age(long long s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%llds", s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%lldh", s / 3600);
    else
        snprintf(buf, len, "%lldd", s / 86400);
}

static int by_name(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    return strcmp(json_string_value(json_object_get(*x, "name")),
                  json_string_value(json_object_get(*y, "name")));
}

int cmd_ps(int argc, char **argv)
{
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else {
            cli_error("ps: unknown argument '%s' (usage: sandpit ps [--json])",
                      argv[i]);
            return EXIT_SP_FAILURE;
        }
    }
    sp_error err = {0};
    char *text = sp_ws_list_json(&err);
    if (!text)
        return fail(&err);
    json_t *list = json_loads(text, 0, NULL);
    free(text);
    size_t n = json_array_size(list);
    json_t **items = calloc(n + 1, sizeof(*items));
    for (size_t i = 0; items && i < n; i++)
        items[i] = json_array_get(list, i);
    if (items)
        qsort(items, n, sizeof(*items), by_name);
    if (as_json) {
        json_t *sorted = json_array();
        for (size_t i = 0; items && i < n; i++)
            json_array_append(sorted, items[i]);
        char *s = json_dumps(sorted, JSON_INDENT(2));
        puts(s ? s : "[]");
        free(s);
        json_decref(sorted);
    } else {
        printf("%-24s %-8s %6s %6s %10s %15s %10s %10s  %s\n", "NAME",
               "STATE", "AGE", "PROCS", "MEMORY", "DISK", "SUPERVISOR",
               "AGENT", "PORTS");
        for (size_t i = 0; items && i < n; i++) {
            json_t *o = items[i];
            char age[32], procs[32] = "-", mem[32] = "-", sv[32] = "-",
                          ag[32] = "-";
            fmt_age((long long)json_integer_value(json_object_get(o, "age")),
                    age, sizeof(age));
            json_t *v;
            if (json_is_integer(v = json_object_get(o, "processes")))
                snprintf(procs, sizeof(procs), "%lld",
                         (long long)json_integer_value(v));
            if (json_is_integer(v = json_object_get(o, "memory")))
                snprintf(mem, sizeof(mem), "%.1fM",
                         (double)json_integer_value(v) / 1048576.0);
            if (json_is_integer(v = json_object_get(o, "supervisor_pid")))
                snprintf(sv, sizeof(sv), "%lld", (long long)json_integer_value(v));
            if (json_is_integer(v = json_object_get(o, "agent_pid")))
                snprintf(ag, sizeof(ag), "%lld", (long long)json_integer_value(v));
            /* Published ports: HOSTADDR:HOSTPORT->PORT */
            char ports[512] = "";
            size_t pi, pl = 0;
            json_t *pv;
            json_array_foreach(json_object_get(o, "ports"), pi, pv) {
                int k = snprintf(ports + pl, sizeof(ports) - pl, "%s%s:%lld->%lld",
                                 pi ? "," : "",
                                 json_string_value(json_object_get(pv, "host")),
                                 (long long)json_integer_value(json_object_get(pv, "host_port")),
                                 (long long)json_integer_value(json_object_get(pv, "port")));
                if (k < 0 || (size_t)k >= sizeof(ports) - pl)
                    break;
                pl += (size_t)k;
            }
            char disk[48];
            fmt_disk(json_object_get(o, "disk"), disk, sizeof(disk));
            printf("%-24s %-8s %6s %6s %10s %15s %10s %10s  %s\n",
                   json_string_value(json_object_get(o, "name")),
                   json_string_value(json_object_get(o, "state")), age, procs,
                   mem, disk, sv, ag, ports);
        }
    }
    free(items);
    json_decref(list);
    return 0;
}

/* stop NAME, start NAME */
static int one_name(int argc, char **argv, const char **ret)
{
    if (argc != 2 || argv[1][0] == '-') {
        cli_error("%s: usage: sandpit %s NAME", argv[0], argv[0]);
        return -1;
    }
    *ret = argv[1];
    return 0;
}

int cmd_stop(int argc, char **argv)
{
    const char *name = NULL;
    if (one_name(argc, argv, &name) < 0)
        return EXIT_SP_FAILURE;
    sp_error err = {0};
    return sp_ws_stop(name, &err) < 0 ? fail(&err) : 0;
}

int cmd_start(int argc, char **argv)
{
    /* start NAME [--secret NAME=@FILE|NAME=env:VAR]... */
    struct cli_secrets sec = {0};
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int sr = cli_secret_opt(&sec, argc, argv, &i);
        if (sr < 0) {
            cli_secrets_free(&sec);
            return EXIT_SP_FAILURE;
        } else if (sr > 0) {
            continue;
        } else if (a[0] != '-' && !name) {
            name = a;
        } else {
            cli_error("start: usage: sandpit start NAME [--secret "
                      "NAME=@FILE|NAME=env:VAR]...");
            cli_secrets_free(&sec);
            return EXIT_SP_FAILURE;
        }
    }
    if (!name) {
        cli_error("start: usage: sandpit start NAME [--secret "
                  "NAME=@FILE|NAME=env:VAR]...");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    int r = sp_ws_start_secrets(name, sec.n ? sec.v : NULL, sec.n, &err);
    cli_secrets_free(&sec);
    return r < 0 ? fail(&err) : 0;
}

int cmd_rm(int argc, char **argv)
{
    bool force = false;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            cli_error("rm: usage: sandpit rm [-f] NAME");
            return EXIT_SP_FAILURE;
        }
    }
    if (!name) {
        cli_error("rm: usage: sandpit rm [-f] NAME");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    return sp_ws_rm(name, force, &err) < 0 ? fail(&err) : 0;
}

int cmd_gc(int argc, char **argv)
{
    if (argc != 1) {
        cli_error("gc: usage: sandpit gc");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    int n = sp_ws_gc(&err);
    if (n < 0)
        return fail(&err);
    printf("reaped %d\n", n);
    return 0;
}
