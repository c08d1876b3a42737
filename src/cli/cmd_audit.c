/* cmd_audit.c — `sandpit audit NAME [--follow] [--json]`: a workspace's
 * denial log (docs/report.md): what the sandbox refused its commands,
 * deduplicated per exec with counts, kept across stop and start, bounded.
 * One line per entry: time, what was refused, the rule, the count and the
 * command. --json: one JSON object per line. --follow: keep printing new
 * entries (until SIGINT or the workspace is removed). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "wsaudit.h"

/* How often --follow looks for new entries. */
#define AUDIT_FOLLOW_INTERVAL_MS 250

static const char usage[] = "usage: sandpit audit NAME [--follow] [--json]";

static void print_entry(json_t *e, bool as_json)
{
    if (as_json) {
        char *s = json_dumps(e, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        return;
    }
    json_int_t ms = json_integer_value(json_object_get(e, "time_ms"));
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char ts[32] = "?";
    if (localtime_r(&t, &tm))
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    const char *kind = json_string_value(json_object_get(e, "kind"));
    const char *rule = json_string_value(json_object_get(e, "rule"));
    const char *cmd = json_string_value(json_object_get(e, "command"));
    char what[320] = "?";
    if (kind && strcmp(kind, "syscall") == 0)
        snprintf(what, sizeof(what), "syscall %s",
                 json_string_value(json_object_get(e, "syscall")));
    else if (kind && strcmp(kind, "network") == 0)
        snprintf(what, sizeof(what), "network %s:%d",
                 json_string_value(json_object_get(e, "host")),
                 (int)json_integer_value(json_object_get(e, "port")));
    else if (kind && strcmp(kind, "dropped") == 0)
        snprintf(what, sizeof(what), "(more denials not kept)");
    printf("%s.%03d %s refused x%" PRId64 " (%s)%s%s\n", ts, (int)(ms % 1000),
           what, (int64_t)json_integer_value(json_object_get(e, "count")),
           rule ? rule : "-", cmd ? " by: " : "", cmd ? cmd : "");
}

int cmd_audit(int argc, char **argv)
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
            printf("%s\n  a workspace's denial log: what the sandbox "
                   "refused its commands\n  (docs/report.md)\n"
                   "  -f, --follow   keep printing new entries\n"
                   "  --json         one JSON object per line\n",
                   usage);
            return 0;
        } else if (argv[i][0] == '-' || name) {
            cli_error("audit: unexpected argument '%s' (%s)", argv[i], usage);
            return EXIT_SP_FAILURE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        cli_error("audit: which workspace? (%s)", usage);
        return EXIT_SP_FAILURE;
    }
    uint64_t after = 0;
    bool first = true;
    for (;;) {
        sp_error err = {0};
        json_t *r = sp_ws_audit_read(name, after, 0, &err);
        if (!r) {
            if (follow && !first)
                return 0; /* the workspace was removed */
            cli_error("%s", err.message);
            return cli_exit_code(&err);
        }
        json_t *es = json_object_get(r, "entries");
        json_int_t first_kept =
            json_integer_value(json_object_get(r, "first_kept"));
        if (!first && first_kept > 0 && (uint64_t)first_kept > after + 1)
            fprintf(stderr, "sandpit: audit: %" PRIu64 " entries were "
                            "dropped from the log before they were read\n",
                    (uint64_t)first_kept - after - 1);
        size_t i;
        json_t *e;
        json_array_foreach(es, i, e) print_entry(e, as_json);
        json_int_t last = json_integer_value(json_object_get(r, "last"));
        size_t got = json_array_size(es);
        json_decref(r);
        fflush(stdout);
        if (last > 0)
            after = (uint64_t)last;
        first = false;
        if (got > 0)
            continue;
        if (!follow)
            return 0;
        struct timespec ts = {0, AUDIT_FOLLOW_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}
