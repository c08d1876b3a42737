/* cmd_net.c — `sandpit net log NAME [--follow] [--json]`: a workspace's
 * egress proxy log (docs/network.md). One line per request: time,
 * decision, status, method, host:port, bytes up and down, the rule that
 * allowed it or the reason it was refused. --json: one JSON object per
 * line, as the supervisor reports it. --follow: keep printing new requests
 * until the workspace stops (or SIGINT). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void print_event(json_t *ev)
{
    json_int_t ms = json_integer_value(json_object_get(ev, "time_ms"));
    char ts[32];
    cli_time_ms(ms, ts, sizeof(ts));
    const char *dec = json_string_value(json_object_get(ev, "decision"));
    const char *method = json_string_value(json_object_get(ev, "method"));
    const char *host = json_string_value(json_object_get(ev, "host"));
    const char *rule = json_string_value(json_object_get(ev, "rule"));
    const char *reason = json_string_value(json_object_get(ev, "reason"));
    bool v6 = host && strchr(host, ':');
    printf("%s.%03d %-7s %3d %-7s %s%s%s:%d up=%" PRId64 " down=%" PRId64
           " %s%s\n",
           ts, (int)(ms % 1000), dec ? dec : "?",
           (int)json_integer_value(json_object_get(ev, "status")),
           method && *method ? method : "-", v6 ? "[" : "", host ? host : "?",
           v6 ? "]" : "", (int)json_integer_value(json_object_get(ev, "port")),
           (int64_t)json_integer_value(json_object_get(ev, "bytes_up")),
           (int64_t)json_integer_value(json_object_get(ev, "bytes_down")),
           reason && *reason ? "" : "rule=",
           reason && *reason ? reason : (rule ? rule : ""));
}

static json_t *net_log_read(const char *name, uint64_t after, sp_error *err)
{
    char *text = sp_ws_net_log_json(name, after, err);
    json_t *r = text ? json_loads(text, 0, NULL) : NULL;
    if (text && !r)
        snprintf(err->message, sizeof(err->message), "net log: a reply that is not JSON");
    free(text);
    return r;
}

static const struct cli_log net_log_cmd = {
    .what = "net log",
    .usage = "sandpit net log NAME [--follow] [--json]",
    .help = "",
    .key = "events",
    .dropped = "requests",
    .read = net_log_read,
    .print = print_event,
};

int cmd_net(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        printf("usage: sandpit net log NAME [--follow] [--json]\n"
               "  a workspace's egress proxy log (--net allow:...): every "
               "request,\n  allowed or denied, with time, host, port and "
               "bytes each way\n");
        return argc < 2 ? EXIT_SP_FAILURE : 0;
    }
    if (strcmp(argv[1], "log") == 0)
        return cli_log_cmd(&net_log_cmd, argc - 1, argv + 1);
    cli_error("net: unknown subcommand '%s' (net log NAME)", argv[1]);
    return EXIT_SP_FAILURE;
}

void cli_net_warn(const sp_policy *p, int verbosity)
{
    if (verbosity < 0)
        return;
    char *text = sp_policy_to_json(p, NULL);
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    const char *net = json_string_value(json_object_get(o, "net"));
    if (net && strcmp(net, "host") == 0)
        fprintf(stderr, "sandpit: warning: --net host: the workspace shares "
                        "the host's network (no network isolation)\n");
    json_decref(o);
}
