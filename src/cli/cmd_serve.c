/* cmd_serve.c — `sandpit serve --socket PATH [--group G] [--policy FILE]
 * [--max-output BYTES]`: the JSON-RPC 2.0 server on a Unix socket
 * (docs/serve.md). Runs until SIGINT or SIGTERM. Started by systemd with a
 * socket (LISTEN_PID, LISTEN_FDS: sd_listen_fds(3)) it serves that one. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli.h"
#include "rpcserve.h"

/* The socket systemd passes (sd_listen_fds(3)): fd 3 when LISTEN_PID is
 * ours and LISTEN_FDS is 1; -1 when none is meant for us; -2 (with the
 * reason printed) for a count other than one. The variables are removed
 * so that nothing started from here sees them. */
static int systemd_socket(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds)
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(pid, &end, 10);
    int r = -1;
    if (!errno && end != pid && !*end && p == (unsigned long)getpid()) {
        end = NULL;
        unsigned long n = strtoul(fds, &end, 10);
        if (end == fds || *end || n != 1) {
            cli_error("serve: LISTEN_FDS: expected one socket from systemd, "
                      "got '%s'", fds);
            r = -2;
        } else {
            r = 3; /* SD_LISTEN_FDS_START */
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return r;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},
        {"group", required_argument, NULL, 'g'},
        {"policy", required_argument, NULL, 'p'},
        {"max-output", required_argument, NULL, 'o'},
        {"pool", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sp_serve_opts o = {.ready_fd = -1, .listen_fd = -1};
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
        case 'P':
            if (cli_pool_size("serve", optarg, &o.pool) < 0)
                return EXIT_SP_FAILURE;
            break;
        case 'h':
            puts("usage: sandpit serve [--socket PATH] [--group G] "
                 "[--policy FILE] [--max-output BYTES]\n"
                 "                    [--pool N]\n\n"
                 "JSON-RPC 2.0 on a Unix socket (docs/serve.md); the socket "
                 "is mode 0600,\n0660 with --group. Default socket: "
                 "$XDG_RUNTIME_DIR/sandpit.sock.\n"
                 "Started by systemd with one socket (LISTEN_FDS=1, "
                 "sandpit.socket) it serves that\nsocket instead; --socket "
                 "is then refused.\n\n"
                 "  -s, --socket PATH       the socket to make and listen on\n"
                 "  -g, --group G           socket mode 0660, group G; its "
                 "members may connect\n"
                 "  -p, --policy FILE       the operator's ceiling for every "
                 "create and fork\n"
                 "      --max-output BYTES  output kept per exec stream "
                 "(256 to 16777216; 65536)\n"
                 "      --pool N            keep N workspaces of the policy "
                 "warm (1 to 64; docs/pool.md)\n"
                 "  -h, --help              this help");
            return 0;
        default:
            cli_error("serve: usage: sandpit serve [--socket PATH] [--group G] "
                      "[--policy FILE] [--max-output BYTES] [--pool N]");
            return EXIT_SP_FAILURE;
        }
    }
    if (optind < argc) {
        cli_error("serve: unexpected argument '%s'", argv[optind]);
        return EXIT_SP_FAILURE;
    }
    o.listen_fd = systemd_socket();
    if (o.listen_fd == -2)
        return EXIT_SP_FAILURE;
    if (o.listen_fd >= 0 && o.socket_path) {
        cli_error("serve: --socket and a socket from systemd (LISTEN_FDS) "
                  "both given; drop --socket");
        return EXIT_SP_FAILURE;
    }
    if (o.listen_fd >= 0) {
        o.socket_path = "(systemd socket)";
    } else if (!o.socket_path) {
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
