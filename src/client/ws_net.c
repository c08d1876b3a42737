/* ws_net.c — the client side of a workspace's egress proxy log:
 * sp_ws_net_log_json() asks the supervisor's "net_log" method
 * (docs/network.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "proto.h"
#include "sandpit.h"
#include "state.h"
#include "util.h"

/* How long to wait for the supervisor's reply. */
#define SP_NET_LOG_REPLY_MS 10000

static int connect_control(const char *name, sp_error *err)
{
    if (!sp_ws_name_valid(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid workspace name '%.80s'", name ? name : "");
    char statedir[SP_MAX_PATH];
    int r = sp_state_dir(statedir, sizeof(statedir), err);
    if (r < 0)
        return r;
    int wsfd = sp_state_open_ws(statedir, name, err);
    if (wsfd < 0)
        return wsfd;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", wsfd,
             SP_WS_SOCKET);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = sp_error_set(err, errno, "socket");
        close(wsfd);
        return r;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        close(wsfd);
        if (e == ENOENT || e == ECONNREFUSED)
            return sp_error_setk(err, SP_ERR_USAGE, e,
                                 "workspace %s is not running", name);
        return sp_error_setk(err, SP_ERR_SYSTEM, e,
                             "cannot connect to workspace %s", name);
    }
    close(wsfd);
    return fd;
}

SP_EXPORT char *sp_ws_net_log_json(const char *name, uint64_t after_seq,
                                   sp_error *err)
{
    int fd = connect_control(name, err);
    if (fd < 0)
        return NULL;
    char *out = NULL;
    struct sp_proto_buf in;
    sp_proto_buf_init(&in);
    json_t *id = json_integer(1);
    char *line = sp_proto_request(id, "net_log",
                                  json_pack("{s:I}", "after",
                                            (json_int_t)after_seq));
    json_decref(id);
    int r = line ? sp_proto_send(fd, line, strlen(line), NULL, 0) : -ENOMEM;
    free(line);
    if (r < 0) {
        sp_error_set(err, -r, "workspace %s", name);
        goto out;
    }
    uint64_t until = sp_now_us() + (uint64_t)SP_NET_LOG_REPLY_MS * 1000u;
    for (;;) {
        char *l = NULL;
        size_t len = 0;
        int got = sp_proto_next_line(&in, &l, &len);
        if (got == 1) {
            struct sp_proto_msg m;
            int pr = sp_proto_parse(l, len, &m, err);
            free(l);
            if (pr < 0)
                goto out;
            if (m.method || !m.id || !json_is_integer(m.id) ||
                json_integer_value(m.id) != 1) {
                sp_proto_msg_free(&m);
                continue;
            }
            if (m.is_error)
                sp_error_setk(err, m.err_code == SP_RPC_INTERNAL ? SP_ERR_SYSTEM
                                                                 : SP_ERR_USAGE,
                              0, "%s", m.err_message);
            else if (!(out = json_dumps(m.result, JSON_COMPACT)))
                sp_error_set(err, ENOMEM, "net log");
            sp_proto_msg_free(&m);
            goto out;
        }
        if (got < 0) {
            sp_error_set(err, -got, "workspace %s: reply", name);
            goto out;
        }
        uint64_t now = sp_now_us();
        if (now >= until) {
            sp_error_setk(err, SP_ERR_SYSTEM, ETIMEDOUT,
                          "workspace %s did not answer", name);
            goto out;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)((until - now) / 1000) + 1) < 0 && errno != EINTR) {
            sp_error_set(err, errno, "poll");
            goto out;
        }
        ssize_t n = sp_proto_recv(fd, &in);
        if (n == -EAGAIN || n == -EINTR)
            continue;
        if (n <= 0) {
            sp_error_setk(err, SP_ERR_SYSTEM, n < 0 ? (int)-n : EPIPE,
                          "workspace %s closed the connection", name);
            goto out;
        }
    }
out:
    sp_proto_buf_free(&in);
    close(fd);
    return out;
}
