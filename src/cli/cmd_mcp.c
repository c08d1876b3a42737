/* cmd_mcp.c — `sandpit mcp [--policy FILE] [--max-output BYTES] [--tools ..]`: the MCP
 * server on stdin/stdout for agents (docs/mcp.md). Diagnostics go to
 * stderr; stdout carries protocol messages only. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mcp.h"

static int parse_bytes(const char *v, size_t *ret)
{
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v)
        return -1;
    if (*end == 'K' || *end == 'k')
        n *= 1024, end++;
    else if (*end == 'M' || *end == 'm')
        n *= 1024 * 1024, end++;
    if (*end || n < 256 || n > 16ull * 1024 * 1024)
        return -1;
    *ret = (size_t)n;
    return 0;
}

int cmd_mcp(int argc, char **argv)
{
    static const struct option lo[] = {
        {"policy", required_argument, NULL, 'p'},
        {"max-output", required_argument, NULL, 'o'},
        {"pool", required_argument, NULL, 'P'},
        {"tools", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sp_mcp_opts o = {.in_fd = 0, .out_fd = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+p:t:h", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            o.tools = optarg;
            break;
        case 'p':
            o.policy_file = optarg;
            break;
        case 'o':
            if (parse_bytes(optarg, &o.max_output) < 0) {
                cli_error("mcp: --max-output: expected bytes from 256 to 16M, "
                          "got '%s'", optarg);
                return EXIT_SP_FAILURE;
            }
            break;
        case 'P':
            if (cli_pool_size("mcp", optarg, &o.pool) < 0)
                return EXIT_SP_FAILURE;
            break;
        case 'h':
            puts("usage: sandpit mcp [--policy FILE] [--max-output BYTES] "
                 "[--pool N]\n"
                 "                   [--tools core|files|full|LIST]\n\n"
                 "An MCP server on stdin/stdout (docs/mcp.md). --policy sets "
                 "the most an agent\nmay ask for (and limits it to the "
                 "workspaces it creates); --max-output\nbounds the output one "
                 "result carries (default 64K).\n\n"
                 "  -p, --policy FILE       the operator's ceiling\n"
                 "      --max-output BYTES  output one result carries\n"
                 "      --pool N            keep N workspaces of the policy "
                 "warm (1 to 64; docs/pool.md)\n"
                 "  -t, --tools PROFILE     the tools offered: core, files, "
                 "full (the default),\n"
                 "                          or a comma-separated list of tool "
                 "names and profiles\n"
                 "  -h, --help              this help");
            return 0;
        default:
            cli_error("mcp: usage: sandpit mcp [--policy FILE] "
                      "[--max-output BYTES] [--pool N] "
                      "[--tools core|files|full|LIST]");
            return EXIT_SP_FAILURE;
        }
    }
    if (optind < argc) {
        cli_error("mcp: unexpected argument '%s'", argv[optind]);
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    if (sp_mcp_serve(&o, &err) < 0) {
        cli_error("mcp: %s", err.message);
        return EXIT_SP_FAILURE;
    }
    return 0;
}
