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
/* Zero and free every value. */
void cli_secrets_free(struct cli_secrets *s);

#endif
