/* follow.c — the logs read by cursor on the command line (`net log`,
 * `audit`): one argument loop, one read-print-follow loop (cli.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* How often --follow asks for new entries. */
#define CLI_FOLLOW_INTERVAL_MS 250

void cli_json_line(json_t *e)
{
    char *s = json_dumps(e, JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    free(s);
}

void cli_time_ms(json_int_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    snprintf(buf, len, "?");
    if (localtime_r(&t, &tm))
        strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
}

int cli_log_cmd(const struct cli_log *l, int argc, char **argv)
{
    const char *name = NULL;
    bool follow = false, as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            printf("usage: %s\n%s", l->usage, l->help);
            return 0;
        } else if (argv[i][0] == '-' || name) {
            cli_error("%s: unexpected argument '%s' (usage: %s)", l->what,
                      argv[i], l->usage);
            return EXIT_SP_FAILURE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        cli_error("%s: which workspace? (usage: %s)", l->what, l->usage);
        return EXIT_SP_FAILURE;
    }
    uint64_t after = 0;
    bool first = true;
    for (;;) {
        sp_error err = {0};
        json_t *r = l->read(name, after, &err);
        if (!r) {
            if (follow && !first)
                return 0; /* the workspace stopped or was removed */
            cli_error("%s", err.message);
            return cli_exit_code(&err);
        }
        json_t *es = json_object_get(r, l->key);
        json_int_t first_kept =
            json_integer_value(json_object_get(r, "first_kept"));
        if (!first && first_kept > 0 && (uint64_t)first_kept > after + 1 &&
            json_array_size(es) > 0)
            fprintf(stderr, "sandpit: %s: %" PRIu64 " %s were dropped from "
                            "the log before they were read\n",
                    l->what, (uint64_t)first_kept - after - 1, l->dropped);
        size_t i;
        json_t *e;
        json_array_foreach(es, i, e) {
            if (as_json)
                cli_json_line(e);
            else
                l->print(e);
        }
        json_int_t last = json_integer_value(json_object_get(r, "last"));
        size_t got = json_array_size(es);
        json_decref(r);
        fflush(stdout);
        if (last > 0)
            after = (uint64_t)last;
        first = false;
        if (got > 0)
            continue; /* a full batch may have more behind it */
        if (!follow)
            return 0;
        struct timespec ts = {0, CLI_FOLLOW_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}
