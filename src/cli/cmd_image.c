/* cmd_image.c — `sandpit image import|ls|rm` (docs/images.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int usage_error(void)
{
    cli_error("usage: sandpit image import FILE|DIR [--name NAME] | "
              "image ls [--json] | image rm NAME");
    return EXIT_SP_FAILURE;
}

static int image_import(int argc, char **argv)
{
    const char *src = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strncmp(argv[i], "--name=", 7) == 0)
            name = argv[i] + 7;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error();
        else if (!src)
            src = argv[i];
        else
            return usage_error();
    }
    if (!src)
        return usage_error();
    sp_error err = {0};
    char used[160];
    if (sp_image_import(src, name, used, sizeof(used), &err) < 0) {
        cli_error("image import: %s", err.message);
        return cli_exit_code(&err);
    }
    puts(used);
    return 0;
}

static int image_ls(int argc, char **argv)
{
    bool as_json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (argc > (as_json ? 2 : 1))
        return usage_error();
    sp_error err = {0};
    char *text = sp_image_list_json(&err);
    if (!text) {
        cli_error("image ls: %s", err.message);
        return cli_exit_code(&err);
    }
    if (as_json) {
        puts(text);
        free(text);
        return 0;
    }
    json_t *a = json_loads(text, 0, NULL);
    free(text);
    printf("%-32s %-19s %s\n", "NAME", "DIGEST", "LAYERS");
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
        const char *d = json_string_value(json_object_get(o, "digest"));
        printf("%-32s %-19.19s %lld\n",
               json_string_value(json_object_get(o, "name")), d ? d : "",
               (long long)json_integer_value(json_object_get(o, "layers")));
    }
    json_decref(a);
    return 0;
}

int cmd_image(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc >= 2) {
            puts("usage: sandpit image import FILE|DIR [--name NAME]\n"
                 "       sandpit image ls [--json]\n"
                 "       sandpit image rm NAME\n\n"
                 "FILE: an OCI image layout as tar or a docker/podman save "
                 "archive (tar, tar.gz);\nDIR: an OCI image layout. Use with "
                 "run/create --image NAME (docs/images.md).");
            return 0;
        }
        return usage_error();
    }
    if (strcmp(argv[1], "import") == 0)
        return image_import(argc - 1, argv + 1);
    if (strcmp(argv[1], "ls") == 0)
        return image_ls(argc - 1, argv + 1);
    if (strcmp(argv[1], "rm") == 0) {
        if (argc != 3)
            return usage_error();
        sp_error err = {0};
        if (sp_image_rm(argv[2], &err) < 0) {
            cli_error("image rm: %s", err.message);
            return cli_exit_code(&err);
        }
        return 0;
    }
    return usage_error();
}

char *cli_post_create_cmd(const sp_policy *p, const char *flag)
{
    const char *c = flag ? flag : sp_policy_post_create(p);
    return c && *c ? strdup(c) : NULL;
}

int cli_post_create(const char *ws, char *cmd, bool allowed)
{
    if (!cmd)
        return 0;
    fflush(stdout);
    if (!allowed) {
        cli_error("post-create command not run (pass --allow-post-create to "
                  "run it): %.200s", cmd);
        free(cmd);
        return 0;
    }
    /* Its output goes to stderr: stdout carries the workspace's name. */
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    sp_ws_exec_opts o = {.argv = argv, .fds = {-1, 2, 2}};
    sp_error err = {0};
    int st = sp_ws_exec(ws, &o, &err);
    free(cmd);
    if (st < 0) {
        cli_error("post-create: %s (workspace %s is kept)", err.message, ws);
        return cli_exit_code(&err);
    }
    if (st != 0) {
        cli_error("post-create command exited with status %d (workspace %s "
                  "is kept)", st, ws);
        return EXIT_SP_FAILURE;
    }
    return 0;
}
