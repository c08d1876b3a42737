/* wsjob.c — non-blocking execs for the serve and mcp front ends (wsjob.h):
 * the request goes to the supervisor with three pipes riding along, and
 * the caller's poll loop moves stdin, stdout, stderr and the reply. */
#include "wsjob.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "proto.h"
#include "state.h"
#include "util.h"
#include "workspace.h"
#include "wsend.h"

struct sp_wsjob {
    int sock;
    int in_fd;                  /* write end of the command's stdin, or -1 */
    int out_fd[3];              /* [1], [2]: read ends, or -1 */
    char *in_data;
    size_t in_len, in_off;
    char *keep_buf[3];
    size_t keep, kept[3], cap[3];
    uint64_t total[3];
    sp_wsjob_sink sink;
    void *sink_ctx;
    struct sp_proto_buf buf;
    bool replied;
    uint64_t t0;
    json_t *argv;               /* for the report's "command" */
    struct sp_wsjob_result res;
};

void sp_wsjob_free(struct sp_wsjob *j)
{
    if (!j)
        return;
    /* Closing the connection cancels a command still running. */
    sp_close_keep_errno(j->sock);
    sp_close_keep_errno(j->in_fd);
    for (int i = 1; i < 3; i++) {
        sp_close_keep_errno(j->out_fd[i]);
        free(j->keep_buf[i]);
    }
    free(j->in_data);
    sp_proto_buf_free(&j->buf);
    json_decref(j->argv);
    json_decref(j->res.report);
    free(j);
}

int sp_wsjob_start(const char *name, const struct sp_wsjob_opts *o,
                   struct sp_wsjob **ret, sp_error *err)
{
    if (!o || !o->argv || !o->argv[0])
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL, "no command given");
    if (o->stdin_len > SP_WSJOB_MAX_STDIN)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "stdin is longer than %d bytes",
                             SP_WSJOB_MAX_STDIN);
    struct sp_wsjob *j = calloc(1, sizeof(*j));
    if (!j)
        return sp_error_set(err, ENOMEM, "exec");
    j->sock = j->in_fd = j->out_fd[0] = j->out_fd[1] = j->out_fd[2] = -1;
    sp_proto_buf_init(&j->buf);
    j->keep = o->keep > SP_WSJOB_MAX_KEEP ? SP_WSJOB_MAX_KEEP : o->keep;
    j->sink = o->sink;
    j->sink_ctx = o->sink_ctx;
    j->t0 = sp_now_us();
    int pass[3] = {-1, -1, -1};
    int r;
    char *line = NULL;

    j->sock = sp_ws_connect_fd(name, err);
    if (j->sock < 0) {
        r = j->sock;
        j->sock = -1;
        goto fail;
    }
    if (o->stdin_data && o->stdin_len) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            r = sp_error_set(err, errno, "pipe");
            goto fail;
        }
        pass[0] = p[0];
        j->in_fd = p[1];
        fcntl(p[1], F_SETFL, O_NONBLOCK);
        j->in_data = malloc(o->stdin_len);
        if (!j->in_data) {
            r = sp_error_set(err, ENOMEM, "stdin");
            goto fail;
        }
        memcpy(j->in_data, o->stdin_data, o->stdin_len);
        j->in_len = o->stdin_len;
    } else {
        pass[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (pass[0] < 0) {
            r = sp_error_set(err, errno, "/dev/null");
            goto fail;
        }
    }
    for (int i = 1; i < 3; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
            r = sp_error_set(err, errno, "pipe");
            goto fail;
        }
        /* The command's end blocks as a command expects. */
        fcntl(p[1], F_SETFL, 0);
        j->out_fd[i] = p[0];
        pass[i] = p[1];
    }

    json_t *params = sp_ws_exec_params(o->argv, o->env, o->cwd, o->timeout,
                                       o->secret_env);
    j->argv = json_incref(json_object_get(params, "argv"));
    json_object_set_new(params, "report", json_true());
    if (o->changes)
        json_object_set_new(params, "changes", json_true());
    json_t *jid = json_integer(1);
    line = sp_proto_request(jid, "exec", params);
    json_decref(jid);
    if (!line) {
        r = sp_error_set(err, ENOMEM, "exec request");
        goto fail;
    }
    if (strlen(line) > SP_PROTO_MAX_LINE) {
        r = sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                          "the command and its environment are longer than "
                          "%d bytes", SP_PROTO_MAX_LINE);
        goto fail;
    }
    if ((r = sp_proto_send(j->sock, line, strlen(line), pass, 3)) < 0) {
        r = sp_error_setk(err, SP_ERR_SYSTEM, -r,
                          "workspace %s: cannot send the request", name);
        goto fail;
    }
    free(line);
    for (int i = 0; i < 3; i++)
        close(pass[i]);
    fcntl(j->sock, F_SETFL, O_NONBLOCK);
    *ret = j;
    return 0;
fail:
    free(line);
    for (int i = 0; i < 3; i++)
        sp_close_keep_errno(pass[i]);
    sp_wsjob_free(j);
    return r;
}

size_t sp_wsjob_pollfds(struct sp_wsjob *j, struct pollfd *p, size_t max)
{
    size_t n = 0;
    if (j->replied)
        return 0;
    if (n < max)
        p[n++] = (struct pollfd){j->sock, POLLIN, 0};
    for (int i = 1; i < 3; i++)
        if (j->out_fd[i] >= 0 && n < max)
            p[n++] = (struct pollfd){j->out_fd[i], POLLIN, 0};
    if (j->in_fd >= 0 && n < max)
        p[n++] = (struct pollfd){j->in_fd, POLLOUT, 0};
    return n;
}

static void take(struct sp_wsjob *j, int s, const char *d, size_t len)
{
    j->total[s] += len;
    if (j->sink)
        j->sink(j->sink_ctx, s, d, len);
    size_t room = j->keep - j->kept[s];
    size_t n = len < room ? len : room;
    if (!n)
        return;
    if (j->kept[s] + n > j->cap[s]) {
        size_t cap = j->cap[s] ? j->cap[s] : 4096;
        while (cap < j->kept[s] + n)
            cap *= 2;
        char *b = realloc(j->keep_buf[s], cap);
        if (!b)
            return; /* counted, not kept */
        j->keep_buf[s] = b;
        j->cap[s] = cap;
    }
    memcpy(j->keep_buf[s] + j->kept[s], d, n);
    j->kept[s] += n;
}

/* Read what a stream holds now (all of it when drain). */
static void read_stream(struct sp_wsjob *j, int s, bool drain)
{
    char buf[65536];
    for (int rounds = 0; j->out_fd[s] >= 0 && (drain || rounds < 4);
         rounds++) {
        ssize_t n = read(j->out_fd[s], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(j->out_fd[s]);
            j->out_fd[s] = -1;
            return;
        }
        take(j, s, buf, (size_t)n);
    }
}

static void write_stdin(struct sp_wsjob *j)
{
    while (j->in_fd >= 0 && j->in_off < j->in_len) {
        ssize_t w = write(j->in_fd, j->in_data + j->in_off, j->in_len - j->in_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0)
            break; /* the command closed its stdin */
        j->in_off += (size_t)w;
    }
    sp_close_keep_errno(j->in_fd);
    j->in_fd = -1;
}

static void finish(struct sp_wsjob *j)
{
    j->replied = true;
    for (int s = 1; s < 3; s++) {
        /* What the command wrote before it exited is in the pipes now;
         * a background child may hold them open, so do not wait for EOF. */
        read_stream(j, s, true);
        j->res.out[s] = j->keep_buf[s] ? j->keep_buf[s] : "";
        j->res.kept[s] = j->kept[s];
        j->res.total[s] = j->total[s];
    }
    j->res.wall_us = sp_now_us() - j->t0;
    sp_close_keep_errno(j->in_fd);
    j->in_fd = -1;
}

int sp_wsjob_step(struct sp_wsjob *j, const struct pollfd *p, size_t n)
{
    if (j->replied)
        return 1;
    bool sock_ready = false;
    for (size_t i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (p[i].fd == j->sock)
            sock_ready = true;
        else if (p[i].fd == j->in_fd)
            write_stdin(j);
        else
            for (int s = 1; s < 3; s++)
                if (p[i].fd == j->out_fd[s])
                    read_stream(j, s, false);
    }
    if (!sock_ready)
        return 0;
    ssize_t k = sp_proto_recv(j->sock, &j->buf);
    if (k == -EAGAIN)
        return 0;
    char *l = NULL;
    size_t len = 0;
    while (sp_proto_next_line(&j->buf, &l, &len) == 1) {
        struct sp_proto_msg m;
        int pr = sp_proto_parse(l, len, &m, NULL);
        free(l);
        if (pr < 0)
            continue;
        if (m.method) {
            sp_proto_msg_free(&m);
            continue;
        }
        if (m.is_error) {
            int kind = m.err_code == SP_RPC_INTERNAL || m.err_code == SP_RPC_GONE
                           ? SP_ERR_SYSTEM
                           : SP_ERR_USAGE;
            j->res.status = sp_error_setk(&j->res.err, kind, 0, "%s",
                                          m.err_message ? m.err_message : "exec failed");
        } else {
            json_t *s = json_object_get(m.result, "status");
            j->res.status = json_is_integer(s) ? (int)json_integer_value(s) : 125;
            j->res.timed_out =
                json_is_true(json_object_get(m.result, "timed_out"));
            sp_ws_end_from_reply(m.result, j->res.status, &j->res.end);
            j->res.report = sp_ws_report_from_reply(m.result, &j->res.end, NULL);
            if (j->res.report && j->argv)
                json_object_set(j->res.report, "command", j->argv);
        }
        sp_proto_msg_free(&m);
        finish(j);
        return 1;
    }
    if (k <= 0) {
        j->res.status = sp_error_setk(&j->res.err, SP_ERR_SYSTEM, 0,
                                      "the workspace's supervisor went away "
                                      "(the workspace stopped)");
        finish(j);
        return 1;
    }
    return 0;
}

const struct sp_wsjob_result *sp_wsjob_result(const struct sp_wsjob *j)
{
    return &j->res;
}
