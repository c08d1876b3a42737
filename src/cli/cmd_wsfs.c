/* cmd_wsfs.c — the workspace filesystem verbs: diff and reset. Each
 * parses, calls one sp_ws_* function and prints; exit 0, or 125 with one
 * line on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_ws.h"

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

/* One line per path, "A", "M" or "D" and the path (docker diff's form). */
static void print_text(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    static const struct {
        const char *key, *tag;
    } kinds[] = {{"added", "A"}, {"modified", "M"}, {"deleted", "D"}};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        json_t *a = json_object_get(o, kinds[k].key);
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) printf("%s %s\n", kinds[k].tag,
                                           json_string_value(v));
    }
    if (json_is_true(json_object_get(o, "truncated")))
        fprintf(stderr, "sandpit: diff: truncated (a bound on entries, depth "
                        "or path length was reached)\n");
    json_decref(o);
}

int cmd_diff(int argc, char **argv)
{
    const char *name = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: sandpit diff NAME [--json]\n\nWhat the workspace "
                 "changed against its base: A added, M modified, D deleted.");
            return 0;
        } else if (!name && argv[i][0] != '-') {
            name = argv[i];
        } else {
            cli_error("diff: unexpected argument '%s' (usage: sandpit diff "
                      "NAME [--json])", argv[i]);
            return EXIT_SP_FAILURE;
        }
    }
    if (!name) {
        cli_error("diff: usage: sandpit diff NAME [--json]");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    char *text = sp_ws_diff_json(name, &err);
    if (!text)
        return fail(&err);
    if (json)
        printf("%s\n", text);
    else
        print_text(text);
    free(text);
    return 0;
}

int cmd_reset(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && strcmp(argv[1], "--help") == 0) {
            puts("usage: sandpit reset NAME\n\nBack to the base: stop its "
                 "processes, drop everything it wrote, start it again.");
            return 0;
        }
        cli_error("reset: usage: sandpit reset NAME");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    if (sp_ws_reset(argv[1], &err) < 0)
        return fail(&err);
    return 0;
}
