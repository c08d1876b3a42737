/* main.c — the sandpit command: a table of verbs, each in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_files.h"
#include "cmd_jobs.h"
#include "cmd_shell.h"
#include "cmd_snapshot.h"
#include "cmd_ws.h"
#include "oci.h"

static int cmd_oci(int argc, char **argv)
{
    return sp_oci_main(argc, argv);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} verbs[] = {
    {"run", cmd_run, "run a command in a fresh one-shot sandbox"},
    {"policy", cmd_policy, "print the effective policy (policy show [FLAGS])"},
    {"doctor", cmd_doctor, "what this host can enforce (--json)"},
    {"mcp", cmd_mcp, "MCP server on stdio for agents (docs/mcp.md)"},
    {"serve", cmd_serve, "JSON-RPC 2.0 on a Unix socket (docs/serve.md)"},
    {"create", cmd_create, "create and start a persistent workspace"},
    {"exec", cmd_exec, "run a command in a workspace (exec NAME -- CMD)"},
    {"jobs", cmd_jobs, "list a workspace's background execs (exec --detach)"},
    {"wait", cmd_wait, "wait for a background exec (wait NAME JOB)"},
    {"logs", cmd_logs, "a background exec's output (logs NAME JOB [-f])"},
    {"ps", cmd_ps, "list workspaces (--json)"},
    {"stop", cmd_stop, "stop a workspace, keeping its files"},
    {"start", cmd_start, "start a stopped workspace again"},
    {"rm", cmd_rm, "remove a workspace (-f: even a running one)"},
    {"gc", cmd_gc, "clean up workspaces whose supervisor died"},
    {"shell", cmd_shell, "attach a terminal to a shell in a workspace"},
    {"shells", cmd_shells, "list a workspace's shells"},
    {"service", cmd_service, "start|status|logs|stop|ls background services"},
    {"files", cmd_files, "files in a workspace: ls|cat|write|stat|mkdir|rm|mv NAME PATH"},
    {"ls", cmd_ls, "list files in a workspace (ls NAME [PATH] [-R] [--json])"},
    {"cat", cmd_cat, "print a file of a workspace (cat NAME PATH)"},
    {"write", cmd_write, "write stdin to a file of a workspace (write NAME PATH)"},
    {"stat", cmd_stat, "describe a file of a workspace (stat NAME PATH)"},
    {"patch", cmd_patch, "apply a unified diff to a workspace (patch NAME < DIFF)"},
    {"import", cmd_import, "unpack an archive into a workspace (import NAME [DEST] < A)"},
    {"export", cmd_export, "pack a workspace path as tar (export NAME [PATH] > A)"},
    {"cp", cmd_cp, "copy between the host and NAME:PATH, either way"},
    {"diff", cmd_diff, "what a workspace changed (diff NAME [--json])"},
    {"reset", cmd_reset, "drop everything a workspace wrote (reset NAME)"},
    {"snapshot", cmd_snapshot, "capture a workspace's files (snapshot NAME SNAP; snapshot rm)"},
    {"snapshots", cmd_snapshots, "list a workspace's snapshots (--json)"},
    {"restore", cmd_restore, "a workspace's files become a snapshot's (restore NAME SNAP)"},
    {"fork", cmd_fork, "new workspace from a snapshot (fork NAME SNAP NEW [FLAGS])"},
    {"pause", cmd_pause, "freeze every process of a workspace"},
    {"resume", cmd_resume, "thaw a paused workspace"},
    {"checkpoint", cmd_checkpoint, "save processes too (not supported: says so)"},
    {"image", cmd_image, "base images: import FILE|DIR [--name N] | ls | rm NAME"},
    {"oci", cmd_oci, "the OCI runtime (runc command line; docs/kubernetes.md)"},
    {"net", cmd_net, "a workspace's egress proxy log (net log NAME [-f] [--json])"},
    {"audit", cmd_audit, "a workspace's denial log (audit NAME [-f] [--json])"},
};

static void usage(FILE *f)
{
    fputs("usage: sandpit COMMAND [ARGS...]\n\nCommands:\n", f);
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
    fputs("\nsandpit run --help lists the policy flags. Exit codes: the "
          "command's own;\n124 timeout, 125 sandpit failed, 126 not "
          "executable, 127 not found.\n",
          f);
}

int main(int argc, char **argv)
{
    /* Reached as sandpit-runc (containerd's BinaryName names a path, not
     * arguments): the runc command line (docs/kubernetes.md). */
    const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argv[0];
    if (base && strcmp(base, "sandpit-runc") == 0)
        return sp_oci_main(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_SP_FAILURE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("sandpit %s\n", sp_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].fn(argc - 1, argv + 1);
    cli_error("unknown command '%s' (see sandpit --help)", argv[1]);
    return EXIT_SP_FAILURE;
}
