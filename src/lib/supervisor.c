/* supervisor.c — the host side of a workspace (supervisor.h). Clients speak
 * proto.h on control.sock; the supervisor checks who they are
 * (SO_PEERCRED), bounds what they may queue, checks every fd they pass
 * (pipes, sockets and character devices only: a directory fd handed into
 * the sandbox would be a way out, runc CVE-2024-21626) and forwards execs
 * to the agent with fresh ids. Exit statuses come back the same way. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "cgroup.h"
#include "error.h"
#include "launch.h"
#include "proto.h"
#include "state.h"
#include "util.h"

struct client {
    int fd;
    uid_t uid;
    struct sp_proto_buf in;
    struct sp_proto_out out;
    size_t n_pending;
    bool dead;                /* gone or misbehaving: freed this round */
    bool stop_waiter;         /* wants a reply when the workspace stopped */
    json_t *stop_id;
};

struct sexec {
    json_int_t aid;           /* our id towards the agent */
    struct client *c;         /* NULL: the client is gone */
    json_t *cid;              /* the client's own id */
};

struct sv {
    struct sp_supervisor_args *a;
    int sfd, lfd, agent;
    struct sp_launch_handle h;
    struct sp_proto_buf ain;
    struct sp_proto_out aout;
    struct client *clients[SP_WS_MAX_CLIENTS];
    struct sexec *execs;
    size_t n_execs;
    json_int_t next_aid;
    uint64_t last_activity;   /* us */
    uint64_t started_us;
    bool stopping;
    bool agent_dead;
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
    fprintf(stderr, "%s sandpit-supervisor[%d]: ", ts, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void sv_log(void *ctx, int level, const char *msg)
{
    logf_("%s%s", level == SP_LOG_WARN ? "warning: " : "", msg);
}

static void write_state(struct sv *s, const char *state)
{
    struct sp_ws_state st;
    memset(&st, 0, sizeof(st));
    sp_error err = {0};
    struct sp_ws_state old;
    json_t *policy = NULL, *cgroups = NULL;
    if (sp_state_read(s->a->wsfd, &old, NULL) == 0) {
        policy = json_incref(old.policy);
        cgroups = json_incref(old.cgroups);
        sp_state_free(&old);
    }
    snprintf(st.name, sizeof(st.name), "%s", s->a->name);
    snprintf(st.state, sizeof(st.state), "%s", state);
    bool live = strcmp(state, "running") == 0;
    st.supervisor_pid = live ? getpid() : 0;
    st.agent_pid = live ? s->h.pid : 0;
    st.created = s->a->created;
    st.started = sp_unix_now();
    st.idle_timeout = s->a->idle_timeout;
    st.max_lifetime = s->a->max_lifetime;
    if (!policy) {
        char *pj = sp_policy_to_json(s->a->policy, NULL);
        policy = pj ? json_loads(pj, 0, NULL) : NULL;
        free(pj);
    }
    st.policy = policy;
    if (live) {
        json_decref(cgroups);
        cgroups = NULL;
        sp_state_cgroups_of(s->h.pid, &cgroups);
    }
    st.cgroups = live ? cgroups : json_array();
    if (sp_state_write(s->a->wsfd, &st, &err) < 0)
        logf_("%s", err.message);
    if (!live)
        json_decref(st.cgroups);
    json_decref(policy);
    json_decref(cgroups);
}

static void ready_report(struct sv *s, const char *msg)
{
    if (s->a->ready_fd < 0)
        return;
    char buf[1200];
    int n = msg ? snprintf(buf, sizeof(buf), "E%s\n", msg)
                : snprintf(buf, sizeof(buf), "OK\n");
    if (write(s->a->ready_fd, buf, (size_t)n) < 0)
        logf_("cannot report to the caller: %s", strerror(errno));
    close(s->a->ready_fd);
    s->a->ready_fd = -1;
}

static void client_send(struct sv *s, struct client *c, char *line);

static void client_free(struct sv *s, struct client *c)
{
    /* Its execs end: the agent sends SIGTERM, then SIGKILL after a grace,
     * to each one's process group. */
    for (size_t i = 0; i < s->n_execs; i++) {
        struct sexec *e = &s->execs[i];
        if (e->c != c)
            continue;
        e->c = NULL;
        json_t *p = json_pack("{s:I}", "exec", (json_int_t)e->aid);
        char *line = sp_proto_request(NULL, "cancel", p);
        if (line && sp_proto_out_push(&s->aout, line, NULL, 0, SIZE_MAX) < 0)
            free(line);
    }
    for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++)
        if (s->clients[i] == c)
            s->clients[i] = NULL;
    close(c->fd);
    sp_proto_buf_free(&c->in);
    sp_proto_out_free(&c->out);
    json_decref(c->stop_id);
    free(c);
}

static void client_send(struct sv *s, struct client *c, char *line)
{
    if (!line)
        return;
    if (sp_proto_out_push(&c->out, line, NULL, 0, SP_WS_MAX_OUTBUF) < 0) {
        /* It does not read its replies: let it go. */
        free(line);
        c->dead = true;
        return;
    }
    if (sp_proto_out_flush(&c->out, c->fd) < 0)
        c->dead = true;
}

/* Which fd kinds may enter the sandbox. */
static const char *fd_refusal(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return "is not open";
    if (fl & O_PATH)
        return "is an O_PATH descriptor";
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return "cannot be inspected";
    if (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) || S_ISCHR(sb.st_mode))
        return NULL;
    if (S_ISDIR(sb.st_mode))
        return "is a directory";
    if (S_ISREG(sb.st_mode))
        return "is a regular file";
    return "is not a pipe, socket or character device";
}

static void handle_exec(struct sv *s, struct client *c, struct sp_proto_msg *m)
{
    static const char *const names[] = {"stdin", "stdout", "stderr"};
    int fds[SP_PROTO_MAX_FDS] = {-1, -1, -1};
    size_t nf = sp_proto_take_fds(&c->in, fds, 3);
    sp_error err = {0};
    const char **argv = NULL, **env = NULL;
    const char *cwd = NULL;
    double timeout = 0;
    char *line = NULL;

    if (!m->id) {
        client_send(s, c, sp_proto_error(NULL, SP_RPC_INVALID,
                                         "exec needs an \"id\""));
        goto out;
    }
    if (nf != 3) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_FDS,
                                         "exec needs three file descriptors "
                                         "(stdin, stdout, stderr) sent with "
                                         "the request"));
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        const char *why = fd_refusal(fds[i]);
        if (why) {
            client_send(s, c, sp_proto_error(m->id, SP_RPC_FDS,
                                             "refused %s: the descriptor %s "
                                             "(only pipes, sockets and "
                                             "character devices may be "
                                             "passed)",
                                             names[i], why));
            goto out;
        }
    }
    if (sp_proto_get_strv(m->params, "argv", true, 1, SP_MAX_ARGS,
                          SP_MAX_ENV_LEN, &argv, &err) < 0 ||
        sp_proto_get_strv(m->params, "env", false, 0, SP_MAX_ENV,
                          SP_MAX_ENV_LEN, &env, &err) < 0 ||
        sp_proto_get_string(m->params, "cwd", false, SP_MAX_PATH, &cwd,
                            &err) < 0 ||
        sp_proto_get_number(m->params, "timeout", false, 0, SP_MAX_TIMEOUT,
                            &timeout, &err) < 0) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS, "%s",
                                         err.message));
        goto out;
    }
    if (c->n_pending >= SP_WS_MAX_PENDING || s->n_execs >= SP_WS_MAX_EXECS) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_BUSY,
                                         "too many execs in flight (at most "
                                         "%d per client, %d per workspace)",
                                         SP_WS_MAX_PENDING, SP_WS_MAX_EXECS));
        goto out;
    }
    struct sexec *ne = realloc(s->execs, (s->n_execs + 1) * sizeof(*ne));
    if (!ne) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_INTERNAL,
                                         "out of memory"));
        goto out;
    }
    s->execs = ne;
    /* Only the keys the agent knows go on. */
    json_t *p = json_object();
    json_object_set(p, "argv", json_object_get(m->params, "argv"));
    if (env)
        json_object_set(p, "env", json_object_get(m->params, "env"));
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    if (timeout > 0)
        json_object_set_new(p, "timeout", json_real(timeout));
    json_int_t aid = ++s->next_aid;
    json_t *jid = json_integer(aid);
    line = sp_proto_request(jid, "exec", p);
    json_decref(jid);
    if (!line || sp_proto_out_push(&s->aout, line, fds, 3, SIZE_MAX) < 0) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_INTERNAL,
                                         "out of memory"));
        goto out;
    }
    line = NULL;
    nf = 0; /* the queue owns the fds now */
    s->execs[s->n_execs++] = (struct sexec){aid, c, json_incref(m->id)};
    c->n_pending++;
out:
    free(line);
    for (size_t i = 0; i < nf; i++)
        close(fds[i]);
    free(argv);
    free(env);
}

static void handle_signal(struct sv *s, struct client *c,
                          struct sp_proto_msg *m)
{
    json_t *target = m->params ? json_object_get(m->params, "exec") : NULL;
    json_t *sig = m->params ? json_object_get(m->params, "signal") : NULL;
    if (!target || !json_is_integer(sig) || json_integer_value(sig) <= 0 ||
        json_integer_value(sig) >= NSIG) {
        if (m->id)
            client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS,
                                             "signal needs \"exec\" (an exec's "
                                             "id) and a \"signal\" number"));
        return;
    }
    for (size_t i = 0; i < s->n_execs; i++) {
        struct sexec *e = &s->execs[i];
        if (e->c != c || !json_equal(e->cid, target))
            continue;
        json_t *p = json_pack("{s:I,s:I}", "exec", (json_int_t)e->aid,
                              "signal", json_integer_value(sig));
        char *line = sp_proto_request(NULL, "signal", p);
        if (line && sp_proto_out_push(&s->aout, line, NULL, 0, SIZE_MAX) < 0)
            free(line);
        if (m->id)
            client_send(s, c, sp_proto_result(m->id, NULL));
        return;
    }
    if (m->id)
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS,
                                         "no such exec of this client"));
}

static void begin_stop(struct sv *s, const char *why)
{
    if (s->stopping)
        return;
    logf_("stopping: %s", why);
    s->stopping = true;
    /* PID 1 dies, and with it every process of the pid namespace. */
    syscall(SYS_pidfd_send_signal, s->h.pidfd, SIGKILL, NULL, 0);
}

static void handle_line(struct sv *s, struct client *c, const char *line,
                        size_t len)
{
    struct sp_proto_msg m;
    sp_error err = {0};
    s->last_activity = sp_now_us();
    if (sp_proto_parse(line, len, &m, &err) < 0) {
        client_send(s, c, sp_proto_error(NULL, sp_proto_parse_code(line, len),
                                         "%s", err.message));
        return;
    }
    if (!m.method) {
        client_send(s, c, sp_proto_error(m.id, SP_RPC_INVALID,
                                         "the supervisor takes requests, "
                                         "not replies"));
    } else if (s->stopping) {
        if (m.id)
            client_send(s, c, sp_proto_error(m.id, SP_RPC_GONE,
                                             "workspace %s is stopping",
                                             s->a->name));
    } else if (strcmp(m.method, "exec") == 0) {
        handle_exec(s, c, &m);
    } else if (strcmp(m.method, "signal") == 0) {
        handle_signal(s, c, &m);
    } else if (strcmp(m.method, "stop") == 0) {
        c->stop_waiter = true;
        json_decref(c->stop_id);
        c->stop_id = m.id ? json_incref(m.id) : NULL;
        begin_stop(s, "requested");
    } else if (strcmp(m.method, "info") == 0 || strcmp(m.method, "ping") == 0) {
        size_t nc = 0;
        for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++)
            nc += s->clients[i] != NULL;
        json_t *r = json_pack("{s:s,s:i,s:i,s:I,s:I}", "name", s->a->name,
                              "supervisor_pid", (int)getpid(), "agent_pid",
                              (int)s->h.pid, "execs", (json_int_t)s->n_execs,
                              "clients", (json_int_t)nc);
        if (m.id)
            client_send(s, c, sp_proto_result(m.id, r));
        else
            json_decref(r);
    } else if (m.id) {
        client_send(s, c, sp_proto_error(m.id, SP_RPC_METHOD,
                                         "unknown method \"%s\"", m.method));
    }
    sp_proto_msg_free(&m);
}

static void client_readable(struct sv *s, struct client *c)
{
    ssize_t n = sp_proto_recv(c->fd, &c->in);
    if (n == -EAGAIN)
        return;
    if (n == -EMSGSIZE || n == -EPROTO) {
        client_send(s, c, sp_proto_error(NULL, SP_RPC_INVALID,
                                         n == -EMSGSIZE
                                             ? "message longer than %d bytes"
                                             : "more than %d file descriptors",
                                         n == -EMSGSIZE ? SP_PROTO_MAX_LINE
                                                        : SP_PROTO_MAX_FDS));
        c->dead = true;
        return;
    }
    if (n <= 0) {
        c->dead = true;
        return;
    }
    char *line = NULL;
    size_t len = 0;
    while (!c->dead && sp_proto_next_line(&c->in, &line, &len) == 1) {
        handle_line(s, c, line, len);
        free(line);
    }
}

static void accept_client(struct sv *s)
{
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        (cr.uid != geteuid() && cr.uid != 0)) {
        char *l = sp_proto_error(NULL, SP_RPC_DENIED,
                                 "permission denied: workspace %s belongs to "
                                 "another user",
                                 s->a->name);
        if (l)
            send(fd, l, strlen(l), MSG_NOSIGNAL | MSG_DONTWAIT);
        free(l);
        close(fd);
        return;
    }
    size_t slot = 0;
    while (slot < SP_WS_MAX_CLIENTS && s->clients[slot])
        slot++;
    struct client *c = slot < SP_WS_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        char *l = sp_proto_error(NULL, SP_RPC_BUSY,
                                 "too many clients (at most %d)",
                                 SP_WS_MAX_CLIENTS);
        if (l)
            send(fd, l, strlen(l), MSG_NOSIGNAL | MSG_DONTWAIT);
        free(l);
        close(fd);
        return;
    }
    c->fd = fd;
    c->uid = cr.uid;
    sp_proto_buf_init(&c->in);
    s->clients[slot] = c;
}

static void agent_readable(struct sv *s)
{
    ssize_t n = sp_proto_recv(s->agent, &s->ain);
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        /* The agent is gone or speaks nonsense: its death is seen on the
         * pidfd; make sure it comes. */
        if (!s->agent_dead) {
            syscall(SYS_pidfd_send_signal, s->h.pidfd, SIGKILL, NULL, 0);
            s->agent_dead = true;
        }
        return;
    }
    char *line = NULL;
    size_t len = 0;
    while (sp_proto_next_line(&s->ain, &line, &len) == 1) {
        struct sp_proto_msg m;
        if (sp_proto_parse(line, len, &m, NULL) == 0 && !m.method && m.id &&
            json_is_integer(m.id)) {
            json_int_t aid = json_integer_value(m.id);
            for (size_t i = 0; i < s->n_execs; i++) {
                struct sexec *e = &s->execs[i];
                if (e->aid != aid)
                    continue;
                s->last_activity = sp_now_us();
                if (e->c) {
                    e->c->n_pending--;
                    if (m.is_error)
                        client_send(s, e->c,
                                    sp_proto_error(e->cid, m.err_code, "%s",
                                                   m.err_message));
                    else
                        client_send(s, e->c,
                                    sp_proto_result(e->cid,
                                                    json_incref(m.result)));
                }
                json_decref(e->cid);
                s->execs[i] = s->execs[--s->n_execs];
                break;
            }
        }
        if (m.root)
            sp_proto_msg_free(&m);
        free(line);
    }
}

static _Noreturn void finish(struct sv *s)
{
    int st = 0;
    waitpid(s->h.pid, &st, 0);
    const char *state = s->stopping ? "stopped" : "crashed";
    logf_("agent %d ended (%s%d); workspace %s", (int)s->h.pid,
          WIFSIGNALED(st) ? "signal " : "status ",
          WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), state);
    if (s->h.cg)
        sp_cgroup_destroy(s->h.cg);
    unlinkat(s->a->wsfd, SP_WS_SOCKET, 0);
    write_state(s, state);
    for (size_t i = 0; i < s->n_execs; i++) {
        struct sexec *e = &s->execs[i];
        if (e->c)
            client_send(s, e->c,
                        sp_proto_error(e->cid, SP_RPC_GONE,
                                       "workspace %s %s while the command ran",
                                       s->a->name, s->stopping ? "was stopped"
                                                               : "crashed"));
    }
    for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++) {
        struct client *c = s->clients[i];
        if (c && c->stop_waiter)
            client_send(s, c, sp_proto_result(c->stop_id,
                                              json_pack("{s:s}", "state",
                                                        state)));
        if (c) {
            /* Best effort: a reply still queued gets one blocking try. */
            int fl = fcntl(c->fd, F_GETFL);
            fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
            struct sp_proto_out_msg *mm = c->out.head;
            for (; mm; mm = mm->next)
                sp_proto_send(c->fd, mm->data + mm->off, mm->len - mm->off,
                              NULL, 0);
        }
    }
    _exit(0);
}

_Noreturn void sp_supervisor_main(struct sp_supervisor_args *a)
{
    struct sv s;
    memset(&s, 0, sizeof(s));
    s.a = a;
    s.sfd = s.lfd = s.agent = -1;
    s.h.pidfd = -1;
    sp_proto_buf_init(&s.ain);
    sp_error err = {0};
    char msg[1100];

    prctl(PR_SET_NAME, "sandpit-sv", 0, 0, 0);

    sigset_t all, mask;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    s.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    /* The control socket, created 0600 (umask) so no other user can ever
     * connect, bound through /proc/self/fd so a long state path is fine. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", a->wsfd,
             SP_WS_SOCKET);
    unlinkat(a->wsfd, SP_WS_SOCKET, 0);
    s.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(0177);
    int br = s.lfd >= 0 ? bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
    umask(old);
    if (s.lfd < 0 || br < 0 || listen(s.lfd, SOMAXCONN) < 0) {
        snprintf(msg, sizeof(msg), "cannot create the control socket: %s",
                 strerror(errno));
        ready_report(&s, msg);
        _exit(1);
    }
    if (fchmodat(a->wsfd, SP_WS_SOCKET, 0600, 0) < 0)
        logf_("cannot chmod the control socket: %s", strerror(errno));

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(msg, sizeof(msg), "socketpair: %s", strerror(errno));
        ready_report(&s, msg);
        _exit(1);
    }
    sp_run_opts ro = {.log = sv_log, .verbosity = 0};
    if (sp_launch_agent(a->policy, &ro, sv[1], SP_WS_MOUNT, &s.h, &err) < 0) {
        unlinkat(a->wsfd, SP_WS_SOCKET, 0);
        ready_report(&s, err.message);
        _exit(1);
    }
    close(sv[1]);
    s.agent = sv[0];
    /* Nothing in the sandbox may ptrace us and take our fds (runc
     * CVE-2016-9962). Not before the launch: the sandbox's first process
     * inherits it, and a non-dumpable child's /proc files (uid_map) are
     * root's, which an unprivileged supervisor could not write. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    /* The agent says it is ready once it serves its socket. */
    bool ready = false;
    uint64_t until = sp_now_us() + (uint64_t)SP_WS_START_TIMEOUT * 1000000u;
    while (!ready && sp_now_us() < until) {
        struct pollfd p = {s.agent, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        ssize_t n = sp_proto_recv(s.agent, &s.ain);
        if (n == -EAGAIN)
            continue;
        if (n <= 0)
            break;
        char *line = NULL;
        size_t len = 0;
        if (sp_proto_next_line(&s.ain, &line, &len) == 1) {
            struct sp_proto_msg m;
            if (sp_proto_parse(line, len, &m, NULL) == 0) {
                ready = m.method && strcmp(m.method, "ready") == 0;
                sp_proto_msg_free(&m);
            }
            free(line);
            if (!ready)
                break;
        }
    }
    if (!ready) {
        syscall(SYS_pidfd_send_signal, s.h.pidfd, SIGKILL, NULL, 0);
        waitpid(s.h.pid, NULL, 0);
        if (s.h.cg)
            sp_cgroup_destroy(s.h.cg);
        unlinkat(a->wsfd, SP_WS_SOCKET, 0);
        ready_report(&s, "the workspace agent did not start");
        _exit(1);
    }
    fcntl(s.agent, F_SETFL, fcntl(s.agent, F_GETFL) | O_NONBLOCK);
    write_state(&s, "running");
    logf_("workspace %s running: agent pid %d", a->name, (int)s.h.pid);
    ready_report(&s, NULL);
    s.started_us = s.last_activity = sp_now_us();

    struct pollfd pfd[4 + SP_WS_MAX_CLIENTS];
    struct client *pc[4 + SP_WS_MAX_CLIENTS];
    for (;;) {
        size_t n = 0;
        pfd[n++] = (struct pollfd){s.sfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){s.h.pidfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){s.agent,
                                   (short)(POLLIN | (s.aout.head ? POLLOUT : 0)),
                                   0};
        pfd[n++] = (struct pollfd){s.stopping ? -1 : s.lfd, POLLIN, 0};
        for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++) {
            struct client *c = s.clients[i];
            if (!c)
                continue;
            pc[n] = c;
            pfd[n++] = (struct pollfd){
                c->fd, (short)(POLLIN | (c->out.head ? POLLOUT : 0)), 0};
        }
        int timeout = -1;
        uint64_t now = sp_now_us();
        if (!s.stopping) {
            uint64_t next = 0;
            if (a->idle_timeout > 0)
                next = s.last_activity + (uint64_t)(a->idle_timeout * 1e6);
            if (a->max_lifetime > 0) {
                uint64_t l = s.started_us + (uint64_t)(a->max_lifetime * 1e6);
                if (!next || l < next)
                    next = l;
            }
            if (next)
                timeout = next <= now ? 0 : (int)((next - now + 999) / 1000);
        }
        int pr = poll(pfd, n, timeout);
        if (pr < 0 && errno != EINTR)
            finish(&s);
        now = sp_now_us();

        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(s.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (si.ssi_signo != SIGCHLD)
                    begin_stop(&s, "signal");
        }
        if (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))
            agent_readable(&s);
        if (pfd[2].revents & POLLOUT)
            if (sp_proto_out_flush(&s.aout, s.agent) < 0 && !s.agent_dead) {
                syscall(SYS_pidfd_send_signal, s.h.pidfd, SIGKILL, NULL, 0);
                s.agent_dead = true;
            }
        if (pfd[1].revents & POLLIN)
            finish(&s);
        if (pfd[3].revents & POLLIN)
            accept_client(&s);
        for (size_t i = 4; i < n; i++) {
            struct client *c = pc[i];
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                client_readable(&s, c);
            if ((pfd[i].revents & POLLOUT) && !c->dead &&
                sp_proto_out_flush(&c->out, c->fd) < 0)
                c->dead = true;
            if (c->dead)
                client_free(&s, c);
        }
        /* Requests queued for the agent go out now, not at the next POLLOUT. */
        if (s.aout.head && sp_proto_out_flush(&s.aout, s.agent) < 0 &&
            !s.agent_dead) {
            syscall(SYS_pidfd_send_signal, s.h.pidfd, SIGKILL, NULL, 0);
            s.agent_dead = true;
        }

        if (!s.stopping) {
            bool busy = s.n_execs > 0;
            if (a->idle_timeout > 0 && !busy &&
                now >= s.last_activity + (uint64_t)(a->idle_timeout * 1e6))
                begin_stop(&s, "idle timeout");
            else if (a->max_lifetime > 0 &&
                     now >= s.started_us + (uint64_t)(a->max_lifetime * 1e6))
                begin_stop(&s, "maximum lifetime reached");
        }
    }
}
