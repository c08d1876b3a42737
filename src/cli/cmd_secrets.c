/* cmd_secrets.c — loading --secret values for create and start. */
#include "cmd_secrets.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_secret_opt(struct cli_secrets *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--secret") != 0 && strncmp(a, "--secret=", 9) != 0)
        return 0;
    const char *v = a[8] == '=' ? a + 9 : *i + 1 < argc ? argv[++*i] : NULL;
    if (!v) {
        cli_error("--secret: expected NAME=@FILE or NAME=env:VAR");
        return -1;
    }
    return cli_secret_add(s, v) < 0 ? -1 : 1;
}

int cli_secret_add(struct cli_secrets *s, const char *spec)
{
    if (s->n >= CLI_MAX_SECRETS) {
        cli_error("--secret: at most %d secrets", CLI_MAX_SECRETS);
        return -1;
    }
    char *name = NULL;
    void *value = NULL;
    size_t len = 0;
    sp_error err = {0};
    if (sp_secret_load(spec, &name, &value, &len, &err) < 0) {
        cli_error("%s", err.message);
        return -1;
    }
    s->v[s->n++] = (sp_secret){name, value, len};
    return 0;
}

void cli_secrets_free(struct cli_secrets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->v[i].name);
        sp_secret_value_free((void *)s->v[i].value, s->v[i].len);
    }
    s->n = 0;
}
