/* cmd_doctor.c — `sandpit doctor [--json]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "pool.h"

/* Warm pools (docs/pool.md) under this state directory: what is pooled
 * now, for the text and JSON reports; NULL when the state cannot be read. */
static json_t *pool_state(void)
{
    json_t *p = sp_pool_scan(NULL);
    return p;
}

int cmd_doctor(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            puts("usage: sandpit doctor [--json]\n\nProbes what this host can "
                 "enforce: namespaces, Landlock, seccomp, cgroups, overlayfs.");
            return 0;
        } else {
            cli_error("doctor: unknown argument '%s'", argv[i]);
            return EXIT_SP_FAILURE;
        }
    }
    char *text = json ? sp_doctor_json() : sp_doctor_text();
    if (!text) {
        cli_error("doctor: probing the host failed");
        return EXIT_SP_FAILURE;
    }
    json_t *pool = pool_state();
    if (json) {
        json_t *o = json_loads(text, 0, NULL);
        if (o) {
            json_object_set_new(o, "pool", pool ? pool : json_null());
            pool = NULL;
            char *s = json_dumps(o, JSON_INDENT(2));
            if (s) {
                free(text);
                text = s;
            }
            json_decref(o);
        }
    }
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    if (!json && pool) {
        json_t *ow = json_object_get(pool, "owners");
        printf("%-13s %-8s %lld ready of %lld pooled workspaces, %zu pool%s "
               "(sandpit serve/mcp --pool; docs/pool.md)\n",
               "pool", "info",
               (long long)json_integer_value(json_object_get(pool, "ready")),
               (long long)json_integer_value(json_object_get(pool, "slots")),
               json_array_size(ow), json_array_size(ow) == 1 ? "" : "s");
    }
    json_decref(pool);
    free(text);
    return 0;
}
