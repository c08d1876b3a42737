/* agent_port.c — the agent's half of published ports (portfwd.h): for
 * each "port.connect" it connects to 127.0.0.1:PORT (then [::1]:PORT)
 * inside the workspace's network namespace and passes the connected
 * socket back to the supervisor, which moves the bytes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent_ext.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portfwd.h"
#include "proto.h"
#include "util.h"

#define SP_PORT_MAX_CONNECTING 128

struct connecting {
    json_int_t id;
    int fd;
    uint16_t port;
    bool v6;
    uint64_t deadline;
};

static struct {
    struct connecting c[SP_PORT_MAX_CONNECTING];
    size_t n;
} C;

static void done(json_int_t id, int fd, int e)
{
    json_t *jid = json_integer(id);
    char *line = fd >= 0 ? sp_proto_result(jid, json_pack("{s:b}", "ok", 1))
                         : sp_proto_error(jid, SP_RPC_EXEC,
                                          "connect inside: %s", strerror(e));
    json_decref(jid);
    sp_ext_send_fds(line, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
    if (fd >= 0)
        close(fd);
}

/* Start a connect; returns the fd (connected or in progress) or -errno. */
static int start(uint16_t port, bool v6, bool *ret_now)
{
    int fd = socket(v6 ? AF_INET6 : AF_INET,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int r = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof(a6))
               : connect(fd, (struct sockaddr *)&a4, sizeof(a4));
    if (r == 0) {
        *ret_now = true;
        return fd;
    }
    int e = errno;
    if (e == EINPROGRESS) {
        *ret_now = false;
        return fd;
    }
    close(fd);
    return -e;
}

static void attempt(json_int_t id, uint16_t port, bool v6)
{
    bool now = false;
    int fd = start(port, v6, &now);
    if (fd == -ECONNREFUSED && !v6)
        fd = start(port, true, &now), v6 = true;
    if (fd < 0) {
        done(id, -1, -fd);
        return;
    }
    if (now) {
        done(id, fd, 0);
        return;
    }
    if (C.n >= SP_PORT_MAX_CONNECTING) {
        close(fd);
        done(id, -1, EBUSY);
        return;
    }
    C.c[C.n++] = (struct connecting){
        id, fd, port, v6,
        sp_now_us() + (uint64_t)(SP_PORTFWD_CONNECT_TIMEOUT * 1e6)};
}

static bool sp_port_handle(json_int_t id, const char *method, json_t *params)
{
    if (strcmp(method, "port.connect") != 0)
        return false;
    if (id < 0)
        return true;
    json_t *v = params ? json_object_get(params, "port") : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 65535) {
        sp_ext_error(id, SP_RPC_PARAMS, "port.connect needs a \"port\"");
        return true;
    }
    attempt(id, (uint16_t)json_integer_value(v), false);
    return true;
}

static size_t sp_port_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < C.n && n < max; i++)
        pfd[n++] = (struct pollfd){C.c[i].fd, POLLOUT, 0};
    return n;
}

static void sp_port_events(const struct pollfd *pfd, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!pfd[k].revents)
            continue;
        for (size_t i = 0; i < C.n; i++) {
            if (C.c[i].fd != pfd[k].fd)
                continue;
            struct connecting c = C.c[i];
            C.c[i] = C.c[--C.n];
            int e = 0;
            socklen_t el = sizeof(e);
            if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
                e = errno;
            if (e == 0) {
                done(c.id, c.fd, 0);
            } else {
                close(c.fd);
                if (e == ECONNREFUSED && !c.v6)
                    attempt(c.id, c.port, true);
                else
                    done(c.id, -1, e);
            }
            break;
        }
    }
}

static uint64_t sp_port_next_timer(void)
{
    uint64_t next = 0;
    for (size_t i = 0; i < C.n; i++)
        if (!next || C.c[i].deadline < next)
            next = C.c[i].deadline;
    return next;
}

static void sp_port_timers(uint64_t now)
{
    for (size_t i = 0; i < C.n;) {
        if (C.c[i].deadline <= now) {
            struct connecting c = C.c[i];
            C.c[i] = C.c[--C.n];
            close(c.fd);
            done(c.id, -1, ETIMEDOUT);
            continue;
        }
        i++;
    }
}

const struct sp_agent_module sp_agent_port_module = {
    .prefix = "port.",
    .handle = sp_port_handle,
    .pollfds = sp_port_pollfds,
    .events = sp_port_events,
    .next_timer = sp_port_next_timer,
    .timers = sp_port_timers,
};
