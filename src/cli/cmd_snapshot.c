/* cmd_snapshot.c — snapshot, snapshots, restore, fork, pause, resume and
 * checkpoint (docs/snapshots.md). Each parses, calls one sp_ws_* function
 * and prints; exit 0, or 125 with one line on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_secrets.h"
#include "cmd_snapshot.h"

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

static bool is_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static void human(uint64_t b, char *buf, size_t len)
{
    if (b < 1024)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else if (b < 1024 * 1024)
        snprintf(buf, len, "%.1f KiB", (double)b / 1024);
    else if (b < 1024ULL * 1024 * 1024)
        snprintf(buf, len, "%.1f MiB", (double)b / (1024 * 1024));
    else
        snprintf(buf, len, "%.2f GiB", (double)b / (1024.0 * 1024 * 1024));
}

#define SNAP_USAGE                                                             \
    "usage: sandpit snapshot NAME SNAP [--json]\n"                             \
    "       sandpit snapshot rm NAME SNAP"

int cmd_snapshot(int argc, char **argv)
{
    if (is_help(argc, argv)) {
        puts(SNAP_USAGE
             "\n\nA read-only capture of the workspace's files, "
             "taken while its processes are\nfrozen; they run on. See "
             "docs/snapshots.md.");
        return 0;
    }
    cli_permute(argc, argv, NULL, 3); /* --json NAME SNAP works too */
    sp_error err = {0};
    if (argc == 4 && strcmp(argv[1], "rm") == 0) {
        if (sp_ws_snapshot_rm(argv[2], argv[3], &err) < 0)
            return fail(&err);
        return 0;
    }
    bool json = argc == 4 && strcmp(argv[3], "--json") == 0;
    if ((argc != 3 && !json) || argv[1][0] == '-' || argv[2][0] == '-') {
        cli_error("snapshot: " SNAP_USAGE);
        return EXIT_SP_FAILURE;
    }
    sp_ws_snapshot_info info;
    if (sp_ws_snapshot(argv[1], argv[2], &info, &err) < 0)
        return fail(&err);
    if (json) {
        printf("{\"workspace\":\"%s\",\"snapshot\":\"%s\",\"bytes\":%llu,"
               "\"copied\":%llu,\"files\":%llu,\"frozen_ms\":%.3f,\"total_ms\":"
               "%.3f,"
               "\"depth\":%d,\"merged\":%s}\n",
               argv[1], argv[2], (unsigned long long)info.bytes,
               (unsigned long long)info.copied, (unsigned long long)info.files,
               info.frozen_us / 1000.0, info.total_us / 1000.0, info.depth,
               info.merged ? "true" : "false");
    } else {
        char sz[32];
        human(info.bytes, sz, sizeof(sz));
        printf("snapshot %s of %s: %llu files, %s, frozen %.1f ms%s\n", argv[2],
               argv[1], (unsigned long long)info.files, sz,
               info.frozen_us / 1000.0,
               info.merged ? " (layers merged: depth bound)" : "");
    }
    return 0;
}

int cmd_snapshots(int argc, char **argv)
{
    if (is_help(argc, argv)) {
        puts("usage: sandpit snapshots NAME [--json]\n\nA workspace's "
             "snapshots: name, size, files, time.");
        return 0;
    }
    cli_permute(argc, argv, NULL, 1);
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if ((argc != 2 && !json) || argv[1][0] == '-') {
        cli_error("snapshots: usage: sandpit snapshots NAME [--json]");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    char *text = sp_ws_snapshots_json(argv[1], &err);
    if (!text)
        return fail(&err);
    if (json) {
        printf("%s\n", text);
        free(text);
        return 0;
    }
    json_t *a = json_loads(text, 0, NULL);
    free(text);
    printf("%-24s %12s %8s  %s\n", "SNAPSHOT", "SIZE", "FILES", "CREATED");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        char sz[32], when[32] = "?";
        human((uint64_t)json_integer_value(json_object_get(v, "size")), sz,
              sizeof(sz));
        time_t t = (time_t)json_integer_value(json_object_get(v, "created"));
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-24s %12s %8lld  %s\n",
               json_string_value(json_object_get(v, "name")), sz,
               (long long)json_integer_value(json_object_get(v, "files")),
               when);
    }
    json_decref(a);
    return 0;
}

/* s (NULL: "") into buf, cut to fit, control characters as '?'. */
static void cli_clean(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (; s && s[n] && n + 1 < len; n++)
        buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    buf[n] = '\0';
}

int cmd_restore(int argc, char **argv)
{
    if (is_help(argc, argv)) {
        puts("usage: sandpit restore NAME SNAP [--json] [--secret NAME=@FILE|"
             "NAME=env:VAR]...\n\nThe workspace's files become the "
             "snapshot's. A running workspace is stopped\nand started "
             "again: its processes and shells end; its services started "
             "with\n--restart on-failure come back (a workspace with "
             "secrets needs them again),\none line each: `service NAME: "
             "ready`, or `service NAME: failed: REASON`.\n--json prints "
             "{workspace, snapshot, restarted, services: [{name, state, "
             "reason}]}.");
        return 0;
    }
    /* restore NAME SNAP [--secret NAME=@FILE|NAME=env:VAR]... */
    struct cli_secrets sec = {0};
    const char *pos[2] = {NULL, NULL};
    size_t np = 0;
    bool bad = false, as_json = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        int sr;
        if (strcmp(a, "--json") == 0) {
            as_json = true;
        } else if ((sr = cli_secret_opt(&sec, argc, argv, &i)) != 0) {
            if (sr < 0) {
                cli_secrets_free(&sec);
                return EXIT_SP_FAILURE;
            }
        } else if (a[0] != '-' && np < 2) {
            pos[np++] = a;
        } else {
            bad = true;
        }
    }
    if (bad || np != 2) {
        cli_error("restore: usage: sandpit restore NAME SNAP [--json] "
                  "[--secret NAME=@FILE|NAME=env:VAR]...");
        cli_secrets_free(&sec);
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    bool restarted = false;
    char *svcs = NULL;
    int r = sp_ws_restore_report(pos[0], pos[1], sec.n ? sec.v : NULL, sec.n,
                                 &restarted, &svcs, &err);
    cli_secrets_free(&sec);
    if (r < 0)
        return fail(&err);
    json_t *sv = svcs ? json_loads(svcs, 0, NULL) : NULL;
    free(svcs);
    if (!json_is_array(sv)) {
        json_decref(sv);
        sv = json_array();
    }
    if (as_json) {
        json_t *o = json_pack("{s:s,s:s,s:b,s:o}", "workspace", pos[0],
                              "snapshot", pos[1], "restarted", restarted,
                              "services", sv);
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!t) {
            cli_error("restore: out of memory");
            return EXIT_SP_FAILURE;
        }
        puts(t);
        free(t);
        return 0;
    }
    if (restarted)
        printf("restored %s to snapshot %s: its processes were stopped and "
               "its agent restarted (shells and services are gone; services "
               "started with --restart come back)\n",
               pos[0], pos[1]);
    else
        printf("restored %s to snapshot %s (it is stopped)\n", pos[0],
               pos[1]);
    /* One line per service it brought back; names and reasons come from
     * the workspace: shown without control characters. */
    size_t i;
    json_t *v;
    json_array_foreach(sv, i, v) {
        char nm[80], why[520];
        cli_clean(json_string_value(json_object_get(v, "name")), nm,
                  sizeof(nm));
        const char *st = json_string_value(json_object_get(v, "state"));
        const char *rs = json_string_value(json_object_get(v, "reason"));
        cli_clean(rs, why, sizeof(why));
        printf("service %s: %s%s%s\n", nm, st ? st : "?", rs ? ": " : "",
               rs ? why : "");
    }
    json_decref(sv);
    return 0;
}

int cmd_fork(int argc, char **argv)
{
    if (argc >= 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: sandpit fork NAME SNAP NEW [POLICY FLAGS]\n\nA new "
             "workspace NEW whose base is the snapshot (its layers shared,\n"
             "not copied), with the policy flags given, else NAME's policy.");
        return 0;
    }
    cli_permute_policy(argc, argv, NULL, 3); /* the names after flags too */
    if (argc < 4 || argv[1][0] == '-' || argv[2][0] == '-' ||
        argv[3][0] == '-') {
        cli_error("fork: usage: sandpit fork NAME SNAP NEW [POLICY FLAGS]");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    sp_policy *p = NULL;
    if (argc > 4) {
        struct cli_opts opts = {0};
        /* argv[3] stands in for the verb: the flags follow it. */
        int idx = cli_parse_policy(argc - 3, argv + 3, &p, &opts, false, &err);
        if (idx < 0)
            return fail(&err);
        if (idx < argc - 3) {
            cli_error("fork: unexpected argument '%s'", argv[3 + idx]);
            sp_policy_free(p);
            return EXIT_SP_FAILURE;
        }
    }
    int r = sp_ws_fork(argv[1], argv[2], argv[3], p, &err);
    sp_policy_free(p);
    if (r < 0)
        return fail(&err);
    printf("%s\n", argv[3]);
    return 0;
}

static int one_name(int argc, char **argv, const char *verb, const char *what,
                    int (*fn)(const char *, sp_error *))
{
    if (is_help(argc, argv)) {
        printf("usage: sandpit %s NAME\n\n%s\n", verb, what);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        cli_error("%s: usage: sandpit %s NAME", verb, verb);
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    if (fn(argv[1], &err) < 0)
        return fail(&err);
    return 0;
}

int cmd_pause(int argc, char **argv)
{
    return one_name(argc, argv, "pause",
                    "Freeze every process of the workspace (sandpit resume "
                    "thaws them).",
                    sp_ws_pause);
}

int cmd_resume(int argc, char **argv)
{
    return one_name(argc, argv, "resume",
                    "Thaw a paused workspace's processes.", sp_ws_resume);
}

int cmd_checkpoint(int argc, char **argv)
{
    if (is_help(argc, argv)) {
        puts("usage: sandpit checkpoint NAME SNAP --processes\n\nNot "
             "supported: says so and changes nothing (docs/snapshots.md).");
        return 0;
    }
    if (argc != 4 || strcmp(argv[3], "--processes") != 0) {
        cli_error("checkpoint: usage: sandpit checkpoint NAME SNAP "
                  "--processes (for files alone: sandpit snapshot NAME SNAP)");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    if (sp_ws_checkpoint(argv[1], argv[2], &err) < 0)
        return fail(&err);
    return 0;
}
