/* netplumb.c — see netplumb.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "netplumb.h"
#include "state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "proto.h"
#include "util.h"

int sp_net_config_of_policy(const struct sp_policy *p,
                            struct sp_proxy_config *ret, sp_error *err)
{
    int r = 0;
    if (p->net_proxy)
        r = sp_proxy_config_parse_json(p->net_proxy, "net policy", ret, err);
    else
        sp_proxy_config_init(ret); /* "net": "allow" alone: deny all, log */
    if (r < 0)
        return r;
    if (p->net_allow_private)
        ret->allow_private = true;
    if (p->net_resolver &&
        (r = sp_proxy_resolver_load(p->net_resolver, ret, err)) < 0) {
        sp_proxy_config_free(ret);
        return r;
    }
    return 0;
}

static int env_put(char ***envp, const char *name, const char *value)
{
    size_t nl = strlen(name), n = 0;
    char **v = *envp;
    char *kv = malloc(nl + strlen(value) + 2);
    if (!kv)
        return -ENOMEM;
    sprintf(kv, "%s=%s", name, value);
    for (n = 0; v && v[n]; n++) {
        if (strncmp(v[n], name, nl) == 0 && v[n][nl] == '=') {
            free(v[n]);
            v[n] = kv;
            return 0;
        }
    }
    char **nv = realloc(v, (n + 2) * sizeof(char *));
    if (!nv) {
        free(kv);
        return -ENOMEM;
    }
    nv[n] = kv;
    nv[n + 1] = NULL;
    *envp = nv;
    return 0;
}

int sp_net_env_add(char ***envp, unsigned port)
{
    static const char *const names[] = {"HTTP_PROXY", "HTTPS_PROXY",
                                        "ALL_PROXY", "http_proxy",
                                        "https_proxy", "all_proxy"};
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (env_put(envp, names[i], url) < 0)
            return -ENOMEM;
    if (env_put(envp, "NO_PROXY", "localhost,127.0.0.1,::1") < 0 ||
        env_put(envp, "no_proxy", "localhost,127.0.0.1,::1") < 0)
        return -ENOMEM;
    return 0;
}

int sp_net_child_send_listener(int sock, unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Proxy clients speak first: wake the proxy once, when the request
     * is in, not once for the handshake and again for the bytes. A client
     * silent past the deferral is accepted anyway (and timed out by the
     * proxy's own head deadline). */
    int defer = 5;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(fd, SP_NET_PROXY_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* One byte and the fd (proto.h: no allocation, raw system calls). */
    int e = sp_proto_send(sock, "L", 1, &fd, 1);
    close(fd);
    return e;
}

int sp_net_recv_listener(int sock)
{
    char byte = 0;
    int fd;
    ssize_t n = sp_recv_fd(sock, &byte, 1, 0, &fd);
    if (n < 0)
        return (int)n;
    if (n != 1 || byte != 'L' || fd < 0) {
        if (fd >= 0)
            close(fd);
        return n == 0 ? -ECONNRESET : -EPROTO;
    }
    return fd;
}

json_t *sp_net_event_json(const struct sp_proxy_event *ev)
{
    static const char *const dec[] = {"allowed", "denied", "failed"};
    const char *d = ev->decision >= 0 && ev->decision <= 2 ? dec[ev->decision]
                                                           : "?";
    return json_pack("{s:I,s:I,s:I,s:s,s:s,s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:I,"
                     "s:I,s:b}",
                     "seq", (json_int_t)ev->seq, "time_ms",
                     (json_int_t)ev->time_ms, "duration_ms",
                     (json_int_t)ev->duration_ms, "client", ev->client,
                     "method", ev->method, "host", ev->host, "port",
                     (int)ev->port, "decision", d, "status", ev->status,
                     "rule", ev->rule, "reason", ev->reason, "upstream",
                     ev->upstream, "bytes_up", (json_int_t)ev->bytes_up,
                     "bytes_down", (json_int_t)ev->bytes_down, "dns_cached",
                     (int)ev->dns_cached);
}

void sp_net_log_to_fd(void *ctx, const struct sp_proxy_event *ev)
{
    int fd = *(const int *)ctx;
    json_t *o = sp_net_event_json(ev);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!line)
        return;
    size_t len = strlen(line);
    char *withnl = realloc(line, len + 2);
    if (withnl) {
        withnl[len] = '\n';
        withnl[len + 1] = '\0';
        line = withnl;
        len++;
    }
    (void)!write(fd, line, len);
    free(line);
}

json_t *sp_net_log_result(const struct sp_proxy *p, uint64_t after, size_t max)
{
    if (max == 0 || max > SP_NET_LOG_MAX_BATCH)
        max = SP_NET_LOG_MAX_BATCH;
    struct sp_proxy_event *evs = calloc(max, sizeof(*evs));
    json_t *arr = json_array();
    if (!evs || !arr) {
        free(evs);
        json_decref(arr);
        return NULL;
    }
    size_t n = sp_proxy_log_read(p, after, evs, max);
    uint64_t last = after;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, sp_net_event_json(&evs[i]));
        last = evs[i].seq;
    }
    /* The oldest event still kept, so a follower can tell it missed some. */
    struct sp_proxy_event first;
    uint64_t first_kept = sp_proxy_log_read(p, 0, &first, 1) ? first.seq : 0;
    free(evs);
    return json_pack("{s:o,s:I,s:I,s:I}", "events", arr, "last",
                     (json_int_t)last, "first_kept", (json_int_t)first_kept,
                     "connections", (json_int_t)sp_proxy_conn_count(p));
}
