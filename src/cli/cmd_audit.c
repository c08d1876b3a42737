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

static void print_entry(json_t *e)
{
    json_int_t ms = json_integer_value(json_object_get(e, "time_ms"));
    char ts[32];
    cli_time_ms(ms, ts, sizeof(ts));
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

static json_t *audit_read(const char *name, uint64_t after, sp_error *err)
{
    return sp_ws_audit_read(name, after, 0, err);
}

int cmd_audit(int argc, char **argv)
{
    static const struct cli_log audit = {
        .what = "audit",
        .usage = "sandpit audit NAME [--follow] [--json]",
        .help = "  a workspace's denial log: what the sandbox refused its "
                "commands\n  (docs/report.md)\n"
                "  -f, --follow   keep printing new entries\n"
                "  --json         one JSON object per line\n",
        .key = "entries",
        .dropped = "entries",
        .read = audit_read,
        .print = print_entry,
    };
    return cli_log_cmd(&audit, argc, argv);
}
