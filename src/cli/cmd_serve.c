/* cmd_serve.c — `sandpit serve --socket PATH [--group G] [--policy FILE]
 * [--max-output BYTES]`: the JSON-RPC 2.0 server on a Unix socket
 * (docs/serve.md). Runs until SIGINT or SIGTERM. */
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rpcserve.h"

int cmd_serve(int argc, char **argv)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},
        {"group", required_argument, NULL, 'g'},
        {"policy", required_argument, NULL, 'p'},
        {"max-output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sp_serve_opts o = {.ready_fd = -1};
    char defpath[4200];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+s:g:p:h", lo, NULL)) != -1) {
        switch (c) {
        case 's':
            o.socket_path = optarg;
            break;
        case 'g': {
            struct group *g = getgrnam(optarg);
            char *end = NULL;
            unsigned long n = strtoul(optarg, &end, 10);
            if (g) {
                o.gid = g->gr_gid;
            } else if (end != optarg && !*end) {
                o.gid = (gid_t)n;
            } else {
                cli_error("serve: --group: no group named '%s'", optarg);
                return EXIT_SP_FAILURE;
            }
            o.use_group = true;
            break;
        }
        case 'p':
            o.policy_file = optarg;
            break;
        case 'o': {
            char *end = NULL;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (end == optarg || *end || n < 256 || n > 16ull * 1024 * 1024) {
                cli_error("serve: --max-output: expected bytes from 256 to "
                          "16777216, got '%s'", optarg);
                return EXIT_SP_FAILURE;
            }
            o.max_output = (size_t)n;
            break;
        }
        case 'h':
            puts("usage: sandpit serve [--socket PATH] [--group G] "
                 "[--policy FILE] [--max-output BYTES]\n\n"
                 "JSON-RPC 2.0 on a Unix socket (docs/serve.md); the socket "
                 "is mode 0600,\n0660 with --group. Default socket: "
                 "$XDG_RUNTIME_DIR/sandpit.sock.");
            return 0;
        default:
            cli_error("serve: usage: sandpit serve [--socket PATH] [--group G] "
                      "[--policy FILE] [--max-output BYTES]");
            return EXIT_SP_FAILURE;
        }
    }
    if (optind < argc) {
        cli_error("serve: unexpected argument '%s'", argv[optind]);
        return EXIT_SP_FAILURE;
    }
    if (!o.socket_path) {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        if (!rt || rt[0] != '/') {
            cli_error("serve: give --socket PATH (XDG_RUNTIME_DIR is not set)");
            return EXIT_SP_FAILURE;
        }
        snprintf(defpath, sizeof(defpath), "%s/sandpit.sock", rt);
        o.socket_path = defpath;
    }
    sp_error err = {0};
    if (sp_rpc_serve(&o, &err) < 0) {
        cli_error("serve: %s", err.message);
        return EXIT_SP_FAILURE;
    }
    return 0;
}
