/* main.c — the sandpit command: a table of verbs, each in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_ws.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} verbs[] = {
    {"run", cmd_run, "run a command in a fresh one-shot sandbox"},
    {"policy", cmd_policy, "print the effective policy (policy show [FLAGS])"},
    {"doctor", cmd_doctor, "what this host can enforce (--json)"},
    {"create", cmd_create, "create and start a persistent workspace"},
    {"exec", cmd_exec, "run a command in a workspace (exec NAME -- CMD)"},
    {"ps", cmd_ps, "list workspaces (--json)"},
    {"stop", cmd_stop, "stop a workspace, keeping its files"},
    {"start", cmd_start, "start a stopped workspace again"},
    {"rm", cmd_rm, "remove a workspace (-f: even a running one)"},
    {"gc", cmd_gc, "clean up workspaces whose supervisor died"},
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
