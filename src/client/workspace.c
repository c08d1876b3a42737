/* workspace.c — the client side of a running workspace (workspace.h,
 * sandpit.h): a connection to its control socket, and exec, whose fds go
 * to the agent by SCM_RIGHTS (or through relays when they cannot). The
 * lifecycle (create, start, stop, rm, gc, ps) is host/wsctl.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "workspace.h"
#include "wsend.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "proto.h"
#include "util.h"

struct sp_ws_client {
    int fd;
    json_int_t next_id;
    struct sp_proto_buf in;
    char name[SP_WS_NAME_MAX + 1];
};

/* For the other client modules (workspace_files.c). */
int sp_ws_client_sock(sp_ws_client *c) { return c->fd; }
struct sp_proto_buf *sp_ws_client_buf(sp_ws_client *c) { return &c->in; }
json_int_t sp_ws_client_next_id(sp_ws_client *c) { return ++c->next_id; }
const char *sp_ws_client_name(const sp_ws_client *c) { return c->name; }

SP_EXPORT sp_ws_client *sp_ws_connect(const char *name, sp_error *err)
{
    int fd = sp_ws_connect_fd(name, err);
    if (fd < 0)
        return NULL;
    sp_ws_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        sp_error_set(err, ENOMEM, "client");
        return NULL;
    }
    c->fd = fd;
    sp_proto_buf_init(&c->in);
    snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

SP_EXPORT void sp_ws_client_close(sp_ws_client *c)
{
    if (!c)
        return;
    close(c->fd);
    sp_proto_buf_free(&c->in);
    free(c);
}

/* Wait for the reply to request `id`. Returns 0 with *ret (caller frees)
 * or < 0. Lines for other ids are dropped. `sfd` >= 0: forward signals
 * read from it as "signal" requests for exec `id`. */
struct relay {
    int from, to;
    bool output;               /* pipe -> caller's fd; else caller's -> pipe */
    char buf[65536];
    size_t len, off;
    bool eof;
};

static void relay_close(struct relay *r)
{
    sp_close_keep_errno(r->output ? r->from : r->to);
    if (r->output)
        r->from = -1;
    else
        r->to = -1;
}

/* Move what can be moved now. Output relays write to the caller's fd
 * blocking (it is a file); input relays write to a non-blocking pipe. */
static void relay_step(struct relay *r, bool drain)
{
    if (r->output) {
        while (r->from >= 0) {
            ssize_t n = read(r->from, r->buf, sizeof(r->buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n == 0 || errno != EAGAIN)
                    relay_close(r);
                return;
            }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(r->to, r->buf + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    break;
                off += w;
            }
            if (!drain)
                return;
        }
        return;
    }
    if (r->to < 0)
        return;
    if (r->len == r->off && !r->eof) {
        ssize_t n = read(r->from, r->buf, sizeof(r->buf));
        if (n <= 0 && !(n < 0 && errno == EINTR))
            r->eof = true;
        r->len = n > 0 ? (size_t)n : 0;
        r->off = 0;
    }
    while (r->off < r->len) {
        ssize_t w = write(r->to, r->buf + r->off, r->len - r->off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            /* The command closed its stdin: stop feeding it. */
            r->eof = true;
            r->len = r->off = 0;
            break;
        }
        r->off += (size_t)w;
    }
    if (r->eof && r->off == r->len)
        relay_close(r);
}

/* Whether the caller's fd i (0 stdin, 1 stdout, 2 stderr) may enter the
 * sandbox as it is: only /dev/null, and for stdout/stderr an anonymous pipe
 * opened write-only. Anything else would let the sandboxed program write
 * around the secrets' redaction (a socket or terminal as stdin is
 * writable: `cat /run/secrets/T >&0`), read the caller's terminal or peer
 * (a terminal or socket as stdout is readable), or reopen a named FIFO or
 * file through /proc/self/fd: it goes through a relay pipe instead
 * (docs/secrets.md). */
static bool passable(int fd, int i)
{
    int fl = fcntl(fd, F_GETFL);
    struct stat sb;
    if (fl < 0 || (fl & O_PATH) || fstat(fd, &sb) < 0)
        return false;
    if (S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3))
        return true;
    struct statfs sf;
    return i > 0 && S_ISFIFO(sb.st_mode) && (fl & O_ACCMODE) == O_WRONLY &&
           fstatfs(fd, &sf) == 0 && sf.f_type == PIPEFS_MAGIC;
}

static int reply_error(const struct sp_proto_msg *m, sp_error *err)
{
    int kind = m->err_code == SP_RPC_INTERNAL ? SP_ERR_SYSTEM
               : m->err_code == SP_RPC_GONE   ? SP_ERR_SYSTEM
                                              : SP_ERR_USAGE;
    return sp_error_setk(err, kind, 0, "%s", m->err_message);
}


json_t *sp_ws_exec_params(char *const *cmd, char *const *envs,
                          const char *cwd, double timeout,
                          char *const *secret_env)
{
    json_t *argv = json_array(), *params = json_object();
    for (size_t i = 0; cmd[i]; i++)
        json_array_append_new(argv, json_string(cmd[i]));
    json_object_set_new(params, "argv", argv);
    if (envs) {
        json_t *env = json_array();
        for (size_t i = 0; envs[i]; i++)
            json_array_append_new(env, json_string(envs[i]));
        json_object_set_new(params, "env", env);
    }
    if (cwd)
        json_object_set_new(params, "cwd", json_string(cwd));
    if (timeout > 0)
        json_object_set_new(params, "timeout", json_real(timeout));
    if (secret_env && secret_env[0]) {
        json_t *se = json_array();
        for (size_t i = 0; secret_env[i]; i++)
            json_array_append_new(se, json_string(secret_env[i]));
        json_object_set_new(params, "secret_env", se);
    }
    return params;
}

SP_EXPORT int sp_ws_client_exec(sp_ws_client *c, const sp_ws_exec_opts *o,
                                sp_error *err)
{
    if (!o || !o->argv || !o->argv[0])
        return sp_error_setk(err, SP_ERR_USAGE, 0, "no command given");
    int pass[3] = {-1, -1, -1};
    bool ours[3] = {false, false, false};
    struct relay *relays[3] = {NULL, NULL, NULL};
    int sfd = -1, rc = -SP_EFAIL;
    sigset_t fwd, oldmask;
    sigemptyset(&fwd);
    sigemptyset(&oldmask);
    bool masked = false;
    char *line = NULL;

    for (int i = 0; i < 3; i++) {
        int fd = o->fds[i];
        if (fd < 0) {
            pass[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            ours[i] = true;
            if (pass[i] < 0) {
                rc = sp_error_set(err, errno, "/dev/null");
                goto out;
            }
        } else if (passable(fd, i)) {
            pass[i] = fd;
        } else {
            /* A file, terminal, socket or stdin pipe must not enter the
             * sandbox as a descriptor: relay it through a pipe. */
            int p[2];
            struct relay *r = calloc(1, sizeof(*r));
            if (!r || pipe2(p, O_CLOEXEC) < 0) {
                free(r);
                rc = sp_error_set(err, errno ? errno : ENOMEM, "relay pipe");
                goto out;
            }
            relays[i] = r;
            r->output = i > 0;
            if (r->output) {
                r->from = p[0];
                r->to = fd;
                pass[i] = p[1];
                fcntl(p[0], F_SETFL, O_NONBLOCK);
            } else {
                r->from = fd;
                r->to = p[1];
                pass[i] = p[0];
                fcntl(p[1], F_SETFL, O_NONBLOCK);
            }
            ours[i] = true;
        }
    }

    json_t *params = sp_ws_exec_params(o->argv, o->env, o->cwd, o->timeout,
                                       o->secret_env);
    if (o->report) /* the supervisor builds one only when asked */
        json_object_set_new(params, "report", json_true());
    if (o->report && o->changes)
        json_object_set_new(params, "changes", json_true());
    json_int_t id = ++c->next_id;
    json_t *jid = json_integer(id);
    line = sp_proto_request(jid, "exec", params);
    if (!line) {
        json_decref(jid);
        rc = sp_error_set(err, ENOMEM, "exec request");
        goto out;
    }
    size_t llen = strlen(line);
    if (llen > SP_PROTO_MAX_LINE) {
        json_decref(jid);
        rc = sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                           "the command and its environment are longer than "
                           "%d bytes", SP_PROTO_MAX_LINE);
        goto out;
    }
    if (o->forward_signals) {
        sigemptyset(&fwd);
        sigaddset(&fwd, SIGINT);
        sigaddset(&fwd, SIGTERM);
        sigaddset(&fwd, SIGHUP);
        sigaddset(&fwd, SIGQUIT);
        if (sigprocmask(SIG_BLOCK, &fwd, &oldmask) == 0) {
            masked = true;
            sfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);
        }
    }
    int sr = sp_proto_send(c->fd, line, llen, pass, 3);
    for (int i = 0; i < 3; i++)
        if (ours[i]) {
            close(pass[i]);
            pass[i] = -1;
        }
    if (sr < 0) {
        json_decref(jid);
        rc = sp_error_setk(err, SP_ERR_SYSTEM, -sr,
                           "workspace %s: cannot send the request", c->name);
        goto out;
    }

    bool done = false;
    while (!done) {
        struct pollfd pfd[5];
        struct relay *pr_[5] = {NULL};
        size_t n = 0;
        pfd[n++] = (struct pollfd){c->fd, POLLIN, 0};
        pfd[n++] = (struct pollfd){sfd, POLLIN, 0};
        for (int i = 0; i < 3; i++) {
            struct relay *r = relays[i];
            if (!r)
                continue;
            if (r->output && r->from >= 0)
                pfd[n] = (struct pollfd){r->from, POLLIN, 0};
            else if (!r->output && r->to >= 0 && r->len == r->off && !r->eof)
                pfd[n] = (struct pollfd){r->from, POLLIN, 0}; /* wait for
                                                  input: never block on it */
            else if (!r->output && r->to >= 0)
                pfd[n] = (struct pollfd){r->to, POLLOUT, 0};
            else
                continue;
            pr_[n++] = r;
        }
        int pr = poll(pfd, n, -1);
        if (pr < 0 && errno != EINTR) {
            rc = sp_error_set(err, errno, "poll");
            break;
        }
        for (size_t i = 2; i < n; i++)
            if (pfd[i].revents)
                relay_step(pr_[i], false);
        if (sfd >= 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                json_t *p = json_pack("{s:I,s:i}", "exec", id, "signal",
                                      (int)si.ssi_signo);
                char *sl = sp_proto_request(NULL, "signal", p);
                if (sl)
                    sp_proto_send(c->fd, sl, strlen(sl), NULL, 0);
                free(sl);
            }
        }
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t k = sp_proto_recv(c->fd, &c->in);
        if (k == -EAGAIN)
            continue;
        char *l = NULL;
        size_t len = 0;
        while (!done && sp_proto_next_line(&c->in, &l, &len) == 1) {
            struct sp_proto_msg m;
            if (sp_proto_parse(l, len, &m, NULL) == 0 && !m.method &&
                (!m.id || json_equal(m.id, jid))) {
                done = true;
                if (m.is_error) {
                    rc = reply_error(&m, err);
                } else {
                    json_t *s = json_object_get(m.result, "status");
                    rc = json_is_integer(s) ? (int)json_integer_value(s) : 125;
                    if (rc < 0 || rc > 255)
                        rc = 125;
                    sp_exec_end end;
                    sp_ws_end_from_reply(m.result, rc, &end);
                    if (o->ended)
                        *o->ended = end;
                    if (o->report) {
                        json_t *rep =
                            sp_ws_report_from_reply(m.result, &end, o->argv);
                        *o->report = rep ? json_dumps(rep, JSON_COMPACT |
                                                               JSON_REAL_PRECISION(9))
                                         : NULL;
                        json_decref(rep);
                    }
                }
                sp_proto_msg_free(&m);
            } else if (sp_proto_parse(l, len, &m, NULL) == 0) {
                sp_proto_msg_free(&m);
            }
            free(l);
        }
        if (!done && k <= 0) {
            rc = sp_error_setk(err, SP_ERR_SYSTEM, 0,
                               "workspace %s: the supervisor went away",
                               c->name);
            break;
        }
    }
    json_decref(jid);
    /* What the command wrote before it exited is in the pipes now. */
    for (int i = 1; i < 3; i++)
        if (relays[i])
            relay_step(relays[i], true);
out:
    free(line);
    for (int i = 0; i < 3; i++) {
        if (ours[i] && pass[i] >= 0)
            close(pass[i]);
        if (relays[i]) {
            relay_close(relays[i]);
            free(relays[i]);
        }
    }
    if (sfd >= 0)
        close(sfd);
    if (masked) {
        /* A signal that arrived after the last read is forwarded to no
         * one: drop it rather than die of it after the command ended. */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&fwd, NULL, &zero) > 0)
            ;
        sigprocmask(SIG_SETMASK, &oldmask, NULL);
    }
    return rc;
}

SP_EXPORT int sp_ws_exec(const char *name, const sp_ws_exec_opts *o,
                         sp_error *err)
{
    sp_ws_client *c = sp_ws_connect(name, err);
    if (!c)
        return err && err->code ? -err->code : -SP_EFAIL;
    int r = sp_ws_client_exec(c, o, err);
    sp_ws_client_close(c);
    return r;
}

/* ---- lifecycle ------------------------------------------------------- */

