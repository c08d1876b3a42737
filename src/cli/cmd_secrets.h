/* cmd_secrets.h — the --secret flags of create and start (docs/secrets.md):
 * each NAME=@FILE or NAME=env:VAR is loaded here, in the CLI, and handed
 * to the library in memory. */
#ifndef SANDPIT_CMD_SECRETS_H
#define SANDPIT_CMD_SECRETS_H

#include "sandpit.h"

#define CLI_MAX_SECRETS 32

struct cli_secrets {
    sp_secret v[CLI_MAX_SECRETS];
    size_t n;
};

/* Load one spec; prints the error itself. Returns 0 or -1. */
int cli_secret_add(struct cli_secrets *s, const char *spec);
/* argv[*i] as a --secret option: "--secret SPEC" (then *i moves past
 * SPEC) or "--secret=SPEC", loaded into s. Returns 1 when it was one and
 * loaded, 0 when argv[*i] is no --secret option, -1 on an error (printed). */
int cli_secret_opt(struct cli_secrets *s, int argc, char **argv, int *i);
/* Zero and free every value. */
void cli_secrets_free(struct cli_secrets *s);

#endif
