/* cmd_policy.c — `sandpit policy show [POLICY FLAGS]`: the effective,
 * merged policy as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_policy(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "show") != 0) {
        cli_error("policy: expected 'policy show [POLICY FLAGS]'");
        return EXIT_SP_FAILURE;
    }
    struct cli_opts opts = {0};
    sp_error err = {0};
    sp_policy *p = NULL;
    int idx = cli_parse_policy(argc - 1, argv + 1, &p, &opts, true, &err);
    if (idx < 0) {
        cli_error("%s", err.message);
        return cli_exit_code(&err);
    }
    if (opts.help) {
        puts("usage: sandpit policy show [POLICY FLAGS]\n");
        cli_policy_help();
        sp_policy_free(p);
        return 0;
    }
    if (idx < argc - 1) {
        cli_error("policy show: unexpected argument '%s'", argv[idx + 1]);
        sp_policy_free(p);
        return EXIT_SP_FAILURE;
    }
    char *text = sp_policy_to_json(p, &err);
    sp_policy_free(p);
    if (!text) {
        cli_error("%s", err.message);
        return EXIT_SP_FAILURE;
    }
    puts(text);
    free(text);
    return 0;
}
