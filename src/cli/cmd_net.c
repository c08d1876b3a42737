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

/* How often --follow asks for new events. */
#define NET_FOLLOW_INTERVAL_MS 250

static void print_event(json_t *ev, bool as_json)
{
    if (as_json) {
        char *s = json_dumps(ev, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        return;
    }
    json_int_t ms = json_integer_value(json_object_get(ev, "time_ms"));
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char ts[32] = "?";
    if (localtime_r(&t, &tm))
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
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

static int net_log(int argc, char **argv)
{
    const char *name = NULL;
    bool follow = false, as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: sandpit net log NAME [--follow] [--json]\n");
            return 0;
        } else if (argv[i][0] == '-' || name) {
            cli_error("net log: unexpected argument '%s' (usage: sandpit net "
                      "log NAME [--follow] [--json])",
                      argv[i]);
            return EXIT_SP_FAILURE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        cli_error("net log: which workspace? (usage: sandpit net log NAME "
                  "[--follow] [--json])");
        return EXIT_SP_FAILURE;
    }
    uint64_t after = 0;
    bool first = true;
    for (;;) {
        sp_error err = {0};
        char *text = sp_ws_net_log_json(name, after, &err);
        if (!text) {
            if (follow && !first)
                return 0; /* the workspace stopped */
            cli_error("%s", err.message);
            return EXIT_SP_FAILURE;
        }
        json_t *r = json_loads(text, 0, NULL);
        free(text);
        json_t *evs = json_object_get(r, "events");
        json_int_t first_kept = json_integer_value(json_object_get(r, "first_kept"));
        if (!first && first_kept > 0 && (uint64_t)first_kept > after + 1 &&
            json_array_size(evs) > 0)
            fprintf(stderr, "sandpit: net log: %" PRIu64 " requests were "
                            "dropped from the log before they were read\n",
                    (uint64_t)first_kept - after - 1);
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev) print_event(ev, as_json);
        json_int_t last = json_integer_value(json_object_get(r, "last"));
        size_t got = json_array_size(evs);
        json_decref(r);
        fflush(stdout);
        if (last > 0)
            after = (uint64_t)last;
        first = false;
        if (got > 0)
            continue; /* a full batch may have more behind it */
        if (!follow)
            return 0;
        struct timespec ts = {0, NET_FOLLOW_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

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
        return net_log(argc - 1, argv + 1);
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
