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
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_ext.h"
#include "bounds.h"
#include "cgroup.h"
#include "error.h"
#include "mountplan.h"
#include "files.h"
#include "landlock.h"
#include "launch.h"
#include "netplumb.h"
#include "portfwd.h"
#include "proto.h"
#include "freeze.h"
#include "wsdisk.h"
#include "secrets.h"
#include "state.h"
#include "util.h"
#include "report.h"
#include "wsaudit.h"
#include "wswalk.h"
#include "wslayers.h"

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
    bool is_exec;             /* an exec (not a file request) */
    uint64_t oom0, pids0;     /* the cgroup's counters when it started */
    /* the report (docs/report.md): what was refused while it ran (NULL:
     * nothing yet) and its command, for the denial log */
    struct sp_denials *den;
    char cmd[128];
    bool want_report;         /* the client asked for the report */
    json_t *changes0;         /* --changes: the layers' stamps before */
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
    uint64_t kill_at;         /* stopping: PID 1 is killed then (us) */
    struct sp_portfwd *pf;    /* published ports (portfwd.h), or NULL */
    struct sp_audit audit;    /* the denial log (wsaudit.h) */
    json_t *report_static;    /* the report's "observed" and "layers":
                                 the same for every exec (built once) */
    bool pooled;              /* in a warm pool, not handed out (pool.h) */
    bool oneshot;             /* handed to `run --pool`: ends, and removes
                                 itself, once its exec and clients are gone */
    bool ran;                 /* oneshot: an exec has started */
};

/* Our name: a pooled workspace learns its real one when handed out. */
static char sv_name[SP_WS_NAME_MAX + 1];

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

static void write_state_p(struct sv *s, const char *state, json_t *newpol)
{
    struct sp_ws_state st;
    memset(&st, 0, sizeof(st));
    sp_error err = {0};
    struct sp_ws_state old;
    json_t *policy = newpol ? json_incref(newpol) : NULL, *cgroups = NULL;
    if (sp_state_read(s->a->wsfd, &old, NULL) == 0) {
        if (!policy)
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
        /* ours as made (the agent's move into it may still be on its
         * way); what the agent is in when we made none */
        const char *paths[8];
        size_t np = sp_cgroup_paths(s->h.cg, paths, SP_ARRAY_SIZE(paths));
        if (np > 0 && (cgroups = json_array()))
            for (size_t i = 0; i < np; i++)
                json_array_append_new(cgroups, json_string(paths[i]));
        else
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

static void write_state(struct sv *s, const char *state)
{
    write_state_p(s, state, NULL);
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

/* An exec's stdin, stdout or stderr (i = 0, 1, 2) beyond fd_refusal:
 * only /dev/null or an anonymous pipe in the right direction (stdin the
 * read end, stdout and stderr the write end). A socket or terminal as
 * stdin is writable and as stdout readable, so the command could write
 * around the secrets' redaction (`cat /run/secrets/T >&0` onto an agent's
 * socketpair) or read the caller's terminal; a named FIFO can be reopened
 * through /proc/self/fd. docs/secrets.md. */
static const char *stdio_refusal(int fd, int i)
{
    const char *why = fd_refusal(fd);
    if (why)
        return why;
    int fl = fcntl(fd, F_GETFL);
    struct stat sb;
    struct statfs sf;
    if (fl < 0 || fstat(fd, &sb) < 0)
        return "cannot be inspected";
    if (S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3))
        return NULL;
    if (S_ISSOCK(sb.st_mode))
        return "is a socket";
    if (S_ISCHR(sb.st_mode))
        return "is a character device other than /dev/null (a terminal?)";
    if (fstatfs(fd, &sf) < 0 || sf.f_type != PIPEFS_MAGIC)
        return "is a named FIFO";
    if ((fl & O_ACCMODE) != (i == 0 ? O_RDONLY : O_WRONLY))
        return i == 0 ? "is not a pipe's read end"
                      : "is not a pipe's write end";
    return NULL;
}

/* "secret_env": [NAME..] becomes NAME=value entries of the agent's "env"
 * (over the socketpair only: never on disk, never in an argv). */
static int secret_env_add(struct sv *s, json_t *p, json_t *params,
                          sp_error *err)
{
    json_t *names = params ? json_object_get(params, "secret_env") : NULL;
    if (!names || json_is_null(names))
        return 0;
    if (!json_is_array(names) || json_array_size(names) > SP_MAX_SECRETS)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "\"secret_env\" must be an array of at most %d "
                             "secret names", SP_MAX_SECRETS);
    json_t *env = json_object_get(p, "env");
    env = env ? json_copy(env) : json_array();
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        const char *n = json_string_value(v);
        const struct sp_secret_v *sv = sp_secrets_find(s->a->secrets, n);
        if (!sv) {
            json_decref(env);
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "--secret-env %.80s: workspace %s has no "
                                 "such secret",
                                 n ? n : "?", s->a->name);
        }
        /* An environment value is a C string: no NUL; JSON: UTF-8. */
        char *kv = memchr(sv->value, 0, sv->len) ? NULL
                                                 : malloc(strlen(sv->name) +
                                                          sv->len + 2);
        json_t *js = NULL;
        if (kv) {
            size_t nl = strlen(sv->name);
            memcpy(kv, sv->name, nl);
            kv[nl] = '=';
            memcpy(kv + nl + 1, sv->value, sv->len);
            js = json_stringn(kv, nl + 1 + sv->len);
            explicit_bzero(kv, nl + 1 + sv->len);
            free(kv);
        }
        if (!js) {
            json_decref(env);
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "--secret-env %s: the value holds a NUL "
                                 "byte or is not UTF-8, so it cannot be an "
                                 "environment variable (read "
                                 SP_SECRETS_DIR "/%s instead)",
                                 sv->name, sv->name);
        }
        json_array_append_new(env, js);
    }
    if (json_array_size(env) > SP_MAX_ENV) {
        json_decref(env);
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "too many environment entries");
    }
    json_object_set_new(p, "env", env);
    return 0;
}

/* service.start and job.start: their "secret_env": [NAME..] becomes "secret_envv":
 * [NAME=value..] beside the request's own "env" (over the socketpair
 * only). The agent sets both but reports back only "env" and the names;
 * "secret_envv" is ours alone: a client's is dropped. */
static int service_secret_env(struct sv *s, json_t *params, sp_error *err)
{
    if (!json_is_object(params))
        return 0;
    json_object_del(params, "secret_envv");
    json_t *tmp = json_object();
    int r = tmp ? secret_env_add(s, tmp, params, err)
                : sp_error_set(err, ENOMEM, "service.start");
    json_t *v = r == 0 ? json_object_get(tmp, "env") : NULL;
    if (v && json_object_set(params, "secret_envv", v) < 0)
        r = sp_error_set(err, ENOMEM, "service.start");
    json_decref(tmp);
    return r;
}

/* A line longer than SP_PROTO_MAX_LINE would end the agent (it refuses
 * it), and the workspace with it: a request that grew past the bound on
 * its way here (secret values added, JSON escaped as ASCII) is refused
 * with a reply instead. True when refused. */
static bool too_long_for_agent(struct sv *s, struct client *c, json_t *id,
                               const char *line)
{
    if (!line || strlen(line) <= SP_PROTO_MAX_LINE)
        return false;
    client_send(s, c, sp_proto_error(id, SP_RPC_PARAMS,
                                     "the request is longer than %d bytes "
                                     "as passed to the workspace (with the "
                                     "values of its secret_env, as ASCII "
                                     "JSON): refused",
                                     SP_PROTO_MAX_LINE));
    return true;
}

/* Room for one more request forwarded to the agent (an exec, a file
 * call): false, with the client answered, when it is over the bounds or
 * out of memory. */
static bool exec_slot(struct sv *s, struct client *c, json_t *id)
{
    if (c->n_pending >= SP_WS_MAX_PENDING || s->n_execs >= SP_WS_MAX_EXECS) {
        client_send(s, c, sp_proto_error(id, SP_RPC_BUSY,
                                         "too many requests in flight (at "
                                         "most %d per client, %d per "
                                         "workspace)",
                                         SP_WS_MAX_PENDING, SP_WS_MAX_EXECS));
        return false;
    }
    struct sexec *ne = realloc(s->execs, (s->n_execs + 1) * sizeof(*ne));
    if (!ne) {
        client_send(s, c, sp_proto_error(id, SP_RPC_INTERNAL, "out of memory"));
        return false;
    }
    s->execs = ne;
    return true;
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
        const char *why = stdio_refusal(fds[i], i);
        if (why) {
            client_send(s, c, sp_proto_error(m->id, SP_RPC_FDS,
                                             "refused %s: the descriptor %s "
                                             "(only /dev/null and pipes, "
                                             "stdin the read end, stdout "
                                             "and stderr the write end; "
                                             "docs/secrets.md)",
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
                            &timeout, &err) < 0 ||
        (json_object_get(m->params, "report") &&
         !json_is_boolean(json_object_get(m->params, "report")) &&
         sp_error_setk(&err, SP_ERR_USAGE, 0,
                       "\"report\" must be true or false") < 0) ||
        (json_object_get(m->params, "changes") &&
         !json_is_boolean(json_object_get(m->params, "changes")) &&
         sp_error_setk(&err, SP_ERR_USAGE, 0,
                       "\"changes\" must be true or false") < 0)) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS, "%s",
                                         err.message));
        goto out;
    }
    if (!exec_slot(s, c, m->id))
        goto out;
    /* Only the keys the agent knows go on. */
    json_t *p = json_object();
    json_object_set(p, "argv", json_object_get(m->params, "argv"));
    if (env)
        json_object_set(p, "env", json_object_get(m->params, "env"));
    if (secret_env_add(s, p, m->params, &err) < 0) {
        json_decref(p);
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS, "%s",
                                         err.message));
        goto out;
    }
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    if (timeout > 0)
        json_object_set_new(p, "timeout", json_real(timeout));
    json_int_t aid = ++s->next_aid;
    json_t *jid = json_integer(aid);
    line = sp_proto_request(jid, "exec", p);
    json_decref(jid);
    if (too_long_for_agent(s, c, m->id, line))
        goto out;
    if (!line || sp_proto_out_push(&s->aout, line, fds, 3, SIZE_MAX) < 0) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_INTERNAL,
                                         "out of memory"));
        goto out;
    }
    line = NULL;
    nf = 0; /* the queue owns the fds now */
    struct sexec se = {aid, c, json_incref(m->id), true, 0, 0, NULL, "",
                       json_is_true(json_object_get(m->params, "report")),
                       NULL};
    if (se.want_report && json_is_true(json_object_get(m->params, "changes")))
        se.changes0 = sp_ws_diff_stamps_at(s->a->wsfd, s->a->name, NULL);
    for (size_t i = 0; argv[i]; i++) {
        size_t l = strlen(se.cmd);
        snprintf(se.cmd + l, sizeof(se.cmd) - l, "%s%s", i ? " " : "",
                 argv[i]);
    }
    if (s->h.cg)
        sp_cgroup_event_counts(s->h.cg, &se.oom0, &se.pids0);
    s->execs[s->n_execs++] = se;
    c->n_pending++;
out:
    free(line);
    for (size_t i = 0; i < nf; i++)
        close(fds[i]);
    free(argv);
    free(env);
}

/* The file API (files.h): forwarded to the agent as it is, with a fresh
 * id, its frame and (archives) one checked fd; the agent checks every
 * parameter. The reply comes back like an exec's, frame and all. */
static void handle_files(struct sv *s, struct client *c,
                         struct sp_proto_msg *m, char *frame, size_t flen,
                         int n_fds)
{
    int fd = -1;
    char *line = NULL;
    if (n_fds > 0 && sp_proto_take_fds(&c->in, &fd, 1) != 1)
        fd = -1;
    if (!m->id) {
        client_send(s, c, sp_proto_error(NULL, SP_RPC_INVALID,
                                         "%s needs an \"id\"", m->method));
        goto out;
    }
    if (n_fds > 0) {
        const char *why = fd < 0 ? "is missing" : fd_refusal(fd);
        if (why) {
            client_send(s, c, sp_proto_error(m->id, SP_RPC_FDS,
                                             "%s needs a pipe or socket: the "
                                             "descriptor %s",
                                             m->method, why));
            goto out;
        }
    }
    if (!exec_slot(s, c, m->id))
        goto out;
    json_int_t aid = ++s->next_aid;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(aid));
    json_object_set_new(o, "method", json_string(m->method));
    json_object_set_new(o, "params",
                        m->params ? json_incref(m->params) : json_object());
    if (flen)
        json_object_set_new(o, "frame", json_integer((json_int_t)flen));
    line = sp_proto_line(o);
    if (too_long_for_agent(s, c, m->id, line))
        goto out;
    if (!line || sp_proto_out_push(&s->aout, line, fd >= 0 ? &fd : NULL,
                                   fd >= 0 ? 1 : 0, SIZE_MAX) < 0) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_INTERNAL,
                                         "out of memory"));
        goto out;
    }
    line = NULL;
    fd = -1; /* the queue owns it */
    if (flen) {
        if (sp_proto_out_push_bytes(&s->aout, frame, flen, SIZE_MAX) < 0) {
            /* The line went without its frame: the agent would read
             * garbage. Nothing sane is left to talk to. */
            syscall(SYS_pidfd_send_signal, s->h.pidfd, SIGKILL, NULL, 0);
            s->agent_dead = true;
            goto out;
        }
        frame = NULL;
    }
    s->execs[s->n_execs++] = (struct sexec){aid, c, json_incref(m->id), false, 0, 0, NULL, "", false, NULL};
    c->n_pending++;
out:
    free(line);
    free(frame);
    if (fd >= 0)
        close(fd);
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

/* "net_log" {after: SEQ, max: N}: the egress proxy's request log. */
static void handle_net_log(struct sv *s, struct client *c,
                           struct sp_proto_msg *m)
{
    if (!m->id)
        return;
    if (!s->h.proxy) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS,
                                         "workspace %s has no egress proxy "
                                         "(create it with --net allow:...)",
                                         s->a->name));
        return;
    }
    double after = 0, max = SP_NET_LOG_MAX_BATCH;
    sp_error err = {0};
    if (sp_proto_get_number(m->params, "after", false, 0, 9007199254740992.0,
                            &after, &err) < 0 ||
        sp_proto_get_number(m->params, "max", false, 1, SP_NET_LOG_MAX_BATCH,
                            &max, &err) < 0) {
        client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS, "%s",
                                         err.message));
        return;
    }
    json_t *r = sp_net_log_result(s->h.proxy, (uint64_t)after, (size_t)max);
    /* A host name the sandbox asked for may carry a secret. */
    sp_secrets_redact_json(s->a->secrets, r);
    if (!r)
        client_send(s, c, sp_proto_error(m->id, SP_RPC_INTERNAL,
                                         "out of memory"));
    else
        client_send(s, c, sp_proto_result(m->id, r));
}

static void begin_stop(struct sv *s, const char *why)
{
    if (s->stopping)
        return;
    logf_("stopping: %s", why);
    s->stopping = true;
    /* Paused (snapshot.h): thawed, or a frozen cgroup v1 would not die. */
    sp_snap_thaw_at(s->a->wsfd);
    /* Services get their grace first (agent_ext.h "shutdown"); then PID 1
     * dies, and with it every process of the pid namespace. */
    char *line = s->agent_dead ? NULL
                               : sp_proto_request(NULL, "shutdown", NULL);
    if (line && sp_proto_out_push(&s->aout, line, NULL, 0, SIZE_MAX) == 0) {
        s->kill_at = sp_now_us() +
                     (uint64_t)((SP_SERVICE_STOP_GRACE + 2.0) * 1e6);
        return;
    }
    free(line);
    syscall(SYS_pidfd_send_signal, s->h.pidfd, SIGKILL, NULL, 0);
}

/* The log as a fresh workspace's: the lines naming the pool slot go. */
static void rewrite_log(struct sv *s, const char *slot)
{
    int fd = openat(s->a->wsfd, SP_WS_LOG, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = malloc(SP_POOL_LOG_KEEP + 1);
    ssize_t n = buf ? pread(fd, buf, SP_POOL_LOG_KEEP, 0) : -1;
    if (ftruncate(fd, 0) < 0 || n < 0) {
        free(buf);
        close(fd);
        return;
    }
    buf[n] = '\0';
    size_t out = 0;
    for (char *l = buf, *e; l < buf + n; l = e + 1) {
        e = memchr(l, '\n', (size_t)(buf + n - l));
        if (!e)
            break; /* a partial last line is dropped */
        *e = '\0';
        if (strstr(l, slot))
            continue;
        size_t k = (size_t)(e - l);
        l[k] = '\n';
        if (pwrite(fd, l, k + 1, (off_t)out) < 0)
            break;
        out += k + 1;
    }
    free(buf);
    close(fd);
}

/* "pool_adopt" {name, idle_timeout, max_lifetime, limits: {memory, pids,
 * cpus}, policy}: a pooled workspace is handed out (pool.h). It narrows
 * its cgroup, takes its name, the holder's timeouts and stored policy, and
 * starts its clocks now; its log keeps nothing of the pool. Only once. */
static void handle_adopt(struct sv *s, struct client *c, struct sp_proto_msg *m)
{
    sp_error err = {0};
    const char *name = NULL;
    double idle = 0, life = 0, mem = 0, pids = 0, cpus = 0;
    json_t *lim = json_object_get(m->params, "limits");
    json_t *pol = json_object_get(m->params, "policy");
    int r = 0;
    if (!s->pooled)
        r = sp_error_set(&err, EBUSY, "workspace %s is not in a pool",
                         s->a->name);
    else if (sp_proto_get_string(m->params, "name", true, SP_WS_NAME_MAX,
                                    &name, &err) < 0 ||
             sp_proto_get_number(m->params, "idle_timeout", false, 0,
                                 SP_MAX_TIMEOUT, &idle, &err) < 0 ||
             sp_proto_get_number(m->params, "max_lifetime", false, 0,
                                 SP_MAX_TIMEOUT, &life, &err) < 0 ||
             sp_proto_get_number(lim, "memory", false, 0, 9007199254740992.0,
                                 &mem, &err) < 0 ||
             sp_proto_get_number(lim, "pids", false, 0, 4194304, &pids,
                                 &err) < 0 ||
             sp_proto_get_number(lim, "cpus", false, 0, 4096, &cpus,
                                 &err) < 0)
        r = -EINVAL;
    else if (!sp_ws_name_valid(name))
        r = sp_error_set(&err, EINVAL, "invalid workspace name");
    else if (pol && !json_is_object(pol))
        r = sp_error_set(&err, EINVAL, "\"policy\" must be an object");
    bool oneshot = json_is_true(json_object_get(m->params, "oneshot"));
    struct sp_limits l = {.memory = (uint64_t)mem, .pids = (uint64_t)pids,
                          .cpus = cpus};
    if (r == 0 && (l.memory || l.pids || l.cpus > 0))
        r = sp_cgroup_set_limits(s->h.cg, &l, &err);
    if (r < 0) {
        if (m->id)
            client_send(s, c, sp_proto_error(m->id, SP_RPC_PARAMS, "%s",
                                             err.message));
        return;
    }
    char slot[sizeof(sv_name)];
    snprintf(slot, sizeof(slot), "%s", sv_name);
    snprintf(sv_name, sizeof(sv_name), "%s", name);
    s->pooled = false;
    s->oneshot = oneshot;
    s->a->idle_timeout = idle;
    s->a->max_lifetime = life;
    s->a->created = sp_unix_now();
    s->started_us = s->last_activity = sp_now_us();
    if (s->a->owner_fd >= 0) {
        close(s->a->owner_fd);
        s->a->owner_fd = -1;
    }
    rewrite_log(s, slot);
    write_state_p(s, "running", pol);
    logf_("workspace %s running: agent pid %d", s->a->name, (int)s->h.pid);
    if (m->id)
        client_send(s, c, sp_proto_result(m->id, json_pack("{s:s}", "name",
                                                           s->a->name)));
}

static void handle_line(struct sv *s, struct client *c, const char *line,
                        size_t len, char *frame, size_t flen)
{
    struct sp_proto_msg m;
    int nfd = 0;
    sp_error err = {0};
    s->last_activity = sp_now_us();
    if (sp_proto_parse(line, len, &m, &err) < 0) {
        client_send(s, c, sp_proto_error(NULL, sp_proto_parse_code(line, len),
                                         "%s", err.message));
        free(frame);
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
    } else if (strcmp(m.method, "pool_adopt") == 0) {
        handle_adopt(s, c, &m);
    } else if (s->pooled && strcmp(m.method, "stop") != 0 &&
               strcmp(m.method, "info") != 0 &&
               strcmp(m.method, "ping") != 0) {
        /* Nothing runs in a pooled workspace before it is handed out. */
        if (m.id)
            client_send(s, c, sp_proto_error(m.id, SP_RPC_DENIED,
                                             "workspace %s is in a pool",
                                             s->a->name));
    } else if (strcmp(m.method, "exec") == 0) {
        s->ran = true;
        handle_exec(s, c, &m);
    } else if (sp_files_method(m.method, &nfd)) {
        handle_files(s, c, &m, frame, flen, nfd);
        frame = NULL;
    } else if ((strcmp(m.method, "service.start") == 0 ||
                strcmp(m.method, "job.start") == 0) &&
               service_secret_env(s, m.params, &err) < 0) {
        if (m.id)
            client_send(s, c, sp_proto_error(m.id, SP_RPC_PARAMS, "%s",
                                             err.message));
    } else if (strncmp(m.method, "shell.", 6) == 0 ||
               strncmp(m.method, "service.", 8) == 0 ||
               strncmp(m.method, "job.", 4) == 0) {
        /* Shells, services and jobs (agent_ext.h): forwarded the same
         * way. */
        handle_files(s, c, &m, frame, flen, 0);
        frame = NULL;
    } else if (strcmp(m.method, "signal") == 0) {
        handle_signal(s, c, &m);
    } else if (strcmp(m.method, "stop") == 0) {
        c->stop_waiter = true;
        json_decref(c->stop_id);
        c->stop_id = m.id ? json_incref(m.id) : NULL;
        begin_stop(s, "requested");
    } else if (strcmp(m.method, "net_log") == 0) {
        handle_net_log(s, c, &m);
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
    free(frame);
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
    char *line = NULL, *frame = NULL;
    size_t len = 0, flen = 0;
    int r;
    while (!c->dead && (r = sp_proto_next_framed(&c->in, &line, &len, &frame,
                                                 &flen)) == 1) {
        handle_line(s, c, line, len, frame, flen);
        free(line);
    }
    if (r < 0 && !c->dead) {
        client_send(s, c, sp_proto_error(NULL, SP_RPC_INVALID,
                                         "bad message framing (a \"frame\" "
                                         "must be 1 to %d bytes)",
                                         SP_PROTO_MAX_FRAME));
        c->dead = true;
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

/* Forward the agent's reply m (and its frame, taken over) to client c
 * under the client's own id; an error keeps its "data". */
/* What the cgroup counted while exec e ran, added to its result for the
 * client to say how it ended (workspace.h, sp_ws_exec_end): "oom" when
 * the kernel OOM-killed a process of the workspace and the command died
 * of SIGKILL (or exited 137, as a shell does when its child did); "pids_refused" when the pids limit refused forks. The
 * counters are the workspace's: concurrent execs share them. */
/* One denial as a line of the log. */
static json_t *audit_entry(const struct sp_denial *d, const char *cmd)
{
    struct sp_denials one;
    memset(&one, 0, sizeof(one));
    one.e[0] = *d;
    one.n = 1;
    json_t *a = sp_denials_json(&one);
    json_t *o = json_incref(json_array_get(a, 0));
    json_decref(a);
    json_object_del(o, "first_ms");
    if (cmd)
        json_object_set_new(o, "command", json_string(cmd));
    return o;
}

/* The egress proxy's refusals: counted for every exec running (the proxy
 * cannot tell whose a connection is), logged at once when none runs. */
static void sv_net_event(void *ctx, const struct sp_proxy_event *ev)
{
    struct sv *s = ctx;
    if (ev->decision != SP_PROXY_DENIED)
        return;
    struct sp_denial d;
    memset(&d, 0, sizeof(d));
    d.kind = SP_DENIAL_NETWORK;
    snprintf(d.what, sizeof(d.what), "%s", ev->host);
    d.port = ev->port;
    d.err = ev->status;
    const char *why = strstr(ev->reason, " denied: ");
    snprintf(d.rule, sizeof(d.rule), "%s",
             why ? why + 9 : ev->reason[0] ? ev->reason : "refused by the proxy");
    bool any = false;
    for (size_t i = 0; i < s->n_execs; i++) {
        struct sexec *e = &s->execs[i];
        if (!e->is_exec)
            continue;
        if (!e->den && !(e->den = calloc(1, sizeof(*e->den))))
            continue;
        d.first_ms = 0;
        sp_denials_add(e->den, &d);
        any = true;
    }
    if (!any) {
        json_t *o = audit_entry(&d, NULL);
        sp_audit_append(&s->audit, o);
        json_decref(o);
    }
}

static json_t *obs(bool on, const char *why)
{
    json_t *o = json_pack("{s:b}", "observed", on);
    if (!on && why)
        json_object_set_new(o, "why", json_string(why));
    return o;
}

static uint64_t u64_of(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (uint64_t)json_integer_value(v)
               : 0;
}

/* The parts of every exec's report that the policy fixes. */
static json_t *report_static(struct sv *s, bool watched)
{
    char fwhy[320];
    const struct sp_policy *p = s->a->policy;
    json_t *r = json_object();
    json_t *ob = json_object();
    json_object_set_new(
        ob, "syscall",
        obs(watched, !p->seccomp ? "seccomp is off"
                     : p->seccomp_profile
                         ? "a custom seccomp profile: its refusals are not "
                           "watched"
                         : "the kernel refused a seccomp listener"));
    json_object_set_new(
        ob, "network_proxy",
        obs(p->net == SP_NET_ALLOW,
            "no egress proxy (--net allow: not in force)"));
    json_object_set_new(
        ob, "network_direct",
        obs(false, p->net == SP_NET_HOST
                       ? "--net host: no layer refuses connections"
                       : "own network namespace, only lo: ENETUNREACH, "
                         "no event"));
    json_object_set_new(
        ob, "file",
        obs(false, sp_report_file_why(sp_landlock_abi(), fwhy, sizeof(fwhy))));
    json_object_set_new(r, "observed", ob);
    static const char *const nets[] = {"none", "host", "allow"};
    json_t *ly = json_pack(
        "{s:b,s:{s:b},s:{s:b,s:s},s:s,s:s}", "user_namespace",
        p->userns || geteuid() != 0, "landlock", "on", p->landlock, "seccomp",
        "on", p->seccomp, "filter",
        !p->seccomp ? "none"
        : p->seccomp_profile ? p->seccomp_profile
        : p->allow_ptrace    ? "default (ptrace allowed)"
                             : "default",
        "limits", s->h.cg ? sp_cgroup_describe(s->h.cg)
                          : "no cgroup (RLIMIT_NPROC for pids)",
        "network", p->net <= SP_NET_ALLOW ? nets[p->net] : "?");
    if (p->limits.memory)
        json_object_set_new(ly, "memory_limit_bytes",
                            json_integer((json_int_t)p->limits.memory));
    if (p->limits.pids)
        json_object_set_new(ly, "pids_limit",
                            json_integer((json_int_t)p->limits.pids));
    json_object_set_new(r, "layers", ly);
    return r;
}

/* The report of exec e (docs/report.md), but for its outcome and command,
 * which the client adds (wsend.h): its resources (the agent's "usage": the
 * shepherd reaps the whole exec), its denials (the agent's seccomp watch
 * and the proxy), what could not be observed and the layers. The
 * denials also go to the workspace's denial log. */
static void exec_report(struct sv *s, struct sexec *e, json_t *res)
{
    struct sp_denials *den = e->den;
    struct sp_denials none;
    if (!den) {
        memset(&none, 0, sizeof(none));
        den = &none;
    }
    /* The agent's seccomp denials: [{syscall, errno, rule, arg_name, arg,
     * count}], bounded there; checked here (the agent is inside). */
    json_t *sd = json_object_get(res, "seccomp_denials");
    size_t i;
    json_t *v;
    bool watched = json_is_true(json_object_get(res, "seccomp_watched"));
    json_array_foreach(sd, i, v)
    {
        if (i >= SP_MAX_REPORT_DENIALS)
            break;
        const char *sc = json_string_value(json_object_get(v, "syscall"));
        const char *rule = json_string_value(json_object_get(v, "rule"));
        json_t *cnt = json_object_get(v, "count");
        json_t *en = json_object_get(v, "errno");
        if (!sc || !rule || !json_is_integer(cnt) ||
            json_integer_value(cnt) <= 0 || !json_is_integer(en))
            continue;
        struct sp_denial d;
        memset(&d, 0, sizeof(d));
        d.kind = SP_DENIAL_SYSCALL;
        snprintf(d.what, sizeof(d.what), "%s", sc);
        snprintf(d.rule, sizeof(d.rule), "%s", rule);
        d.err = (int)json_integer_value(en);
        const char *an = json_string_value(json_object_get(v, "arg_name"));
        json_t *av = json_object_get(v, "arg");
        if (an && json_is_integer(av)) {
            d.has_arg = true;
            snprintf(d.arg_name, sizeof(d.arg_name), "%s", an);
            d.arg = (uint64_t)json_integer_value(av);
        }
        d.first_ms = u64_of(json_object_get(v, "first_ms"));
        if (den == &none || !e->den) {
            if (!(e->den = calloc(1, sizeof(*e->den))))
                break;
            den = e->den;
        }
        sp_denials_add(den, &d);
        /* the count as the agent said */
        for (size_t k = 0; k < den->n; k++)
            if (den->e[k].kind == SP_DENIAL_SYSCALL &&
                strcmp(den->e[k].what, d.what) == 0 &&
                den->e[k].has_arg == d.has_arg && den->e[k].arg == d.arg &&
                den->e[k].count == 1) {
                den->e[k].count = (uint64_t)json_integer_value(cnt);
                den->total += den->e[k].count - 1;
            }
    }
    json_t *sdrop = json_object_get(res, "seccomp_dropped");
    if (json_is_integer(sdrop) && json_integer_value(sdrop) > 0) {
        den->dropped += (uint64_t)json_integer_value(sdrop);
        den->total += (uint64_t)json_integer_value(sdrop);
    }
    json_object_del(res, "seccomp_denials");
    json_object_del(res, "seccomp_dropped");
    json_object_del(res, "seccomp_watched");

    for (size_t k = 0; k < den->n; k++) {
        json_t *o = audit_entry(&den->e[k], e->cmd);
        sp_audit_append(&s->audit, o);
        json_decref(o);
    }
    if (den->dropped) {
        json_t *o = json_pack("{s:s,s:I,s:s}", "kind", "dropped", "count",
                              (json_int_t)den->dropped, "command", e->cmd);
        sp_audit_append(&s->audit, o);
        json_decref(o);
    }
    if (!e->want_report) {
        json_object_del(res, "usage");
        return;
    }
    if (!s->report_static)
        s->report_static = report_static(s, watched);

    json_t *r = json_object();
    json_t *u = json_object_get(res, "usage");
    sp_stats st;
    memset(&st, 0, sizeof(st));
    if (json_is_object(u)) { /* from inside: no negative numbers */
        st.wall_us = u64_of(json_object_get(u, "wall_us"));
        st.cpu_user_us = u64_of(json_object_get(u, "cpu_user_us"));
        st.cpu_sys_us = u64_of(json_object_get(u, "cpu_sys_us"));
        st.memory_peak = u64_of(json_object_get(u, "maxrss_bytes"));
        st.memory_known = st.memory_peak > 0;
    }
    json_object_del(res, "usage");
    json_object_set_new(
        r, "resources",
        sp_report_resources(&st, "rusage: the exec's largest process",
                            "the workspace's cgroup is shared by its execs",
                            "not counted per exec"));
    json_object_set_new(r, "denials", sp_denials_json(den));
    json_object_set_new(r, "denials_total", json_integer((json_int_t)den->total));
    json_object_set_new(r, "denials_dropped",
                        json_integer((json_int_t)den->dropped));
    json_object_set(r, "observed",
                    json_object_get(s->report_static, "observed"));
    json_object_set(r, "layers", json_object_get(s->report_static, "layers"));
    if (e->changes0) {
        sp_error err = {0};
        json_t *after = sp_ws_diff_stamps_at(s->a->wsfd, s->a->name, &err);
        json_object_set_new(r, "changes",
                            after ? sp_ws_changes(e->changes0, after)
                                  : json_pack("{s:s}", "error", err.message));
        json_decref(after);
    }
    json_object_set_new(res, "report", r);
}

static void exec_counters(struct sv *s, const struct sexec *e, json_t *res)
{
    uint64_t oom = 0, pids = 0;
    if (!s->h.cg || sp_cgroup_event_counts(s->h.cg, &oom, &pids) < 0)
        return;
    const struct sp_limits *l = &s->a->policy->limits;
    json_t *sig = json_object_get(res, "signal");
    json_t *st = json_object_get(res, "status");
    /* Killed by SIGKILL, or a shell saying its command was (137). */
    if (oom > e->oom0 &&
        ((json_is_integer(sig) && json_integer_value(sig) == SIGKILL) ||
         (json_is_integer(st) && json_integer_value(st) == 128 + SIGKILL))) {
        json_object_set_new(res, "oom", json_true());
        if (l->memory)
            json_object_set_new(res, "memory_limit",
                                json_integer((json_int_t)l->memory));
    }
    if (pids > e->pids0) {
        json_object_set_new(res, "pids_refused",
                            json_integer((json_int_t)(pids - e->pids0)));
        if (l->pids)
            json_object_set_new(res, "pids_limit",
                                json_integer((json_int_t)l->pids));
    }
}

static void client_reply(struct sv *s, struct client *c, json_t *cid,
                         struct sp_proto_msg *m, char *frame, size_t flen)
{
    /* File names, link targets, messages from inside may carry a
     * secret (secrets.h). */
    if (s->a->secrets) {
        sp_secrets_redact_json(s->a->secrets, m->root);
        m->result = json_object_get(m->root, "result"); /* may be new */
    }
    json_t *o = json_object();
    json_object_set(o, "id", cid ? cid : json_null());
    if (m->is_error) {
        json_object_set(o, "error", json_object_get(m->root, "error"));
        flen = 0;
    } else {
        json_object_set(o, "result", m->result);
        if (flen)
            json_object_set_new(o, "frame", json_integer((json_int_t)flen));
    }
    char *line = sp_proto_line(o);
    if (!line) {
        free(frame);
        c->dead = true;
        return;
    }
    size_t max = (size_t)SP_WS_MAX_OUTBUF + SP_PROTO_MAX_FRAME;
    if (sp_proto_out_push(&c->out, line, NULL, 0, max) < 0) {
        free(line);
        free(frame);
        c->dead = true;
        return;
    }
    if (flen && sp_proto_out_push_bytes(&c->out, frame, flen, max + flen) < 0) {
        free(frame);
        c->dead = true; /* its line went without the frame */
        return;
    }
    if (!flen)
        free(frame);
    if (sp_proto_out_flush(&c->out, c->fd) < 0)
        c->dead = true;
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
    char *line = NULL, *frame = NULL;
    size_t len = 0, flen = 0;
    int fr;
    while ((fr = sp_proto_next_framed(&s->ain, &line, &len, &frame,
                                      &flen)) == 1) {
        struct sp_proto_msg m;
        memset(&m, 0, sizeof(m));
        if (sp_proto_parse(line, len, &m, NULL) == 0 && !m.method && m.id &&
            json_is_integer(m.id)) {
            json_int_t aid = json_integer_value(m.id);
            if (aid >= SP_PORTFWD_ID_BASE) {
                /* A published port's connection, made inside. */
                int cfd = -1;
                if (!m.is_error && sp_proto_take_fds(&s->ain, &cfd, 1) != 1)
                    cfd = -1;
                sp_portfwd_reply(s->pf, aid, !m.is_error, cfd);
            }
            for (size_t i = 0; i < s->n_execs; i++) {
                struct sexec *e = &s->execs[i];
                if (e->aid != aid)
                    continue;
                s->last_activity = sp_now_us();
                if (e->is_exec && !m.is_error && json_is_object(m.result)) {
                    exec_counters(s, e, m.result);
                    exec_report(s, e, m.result);
                }
                free(e->den);
                e->den = NULL;
                json_decref(e->changes0);
                e->changes0 = NULL;
                if (e->c) {
                    e->c->n_pending--;
                    client_reply(s, e->c, e->cid, &m, frame, flen);
                    frame = NULL;
                }
                json_decref(e->cid);
                s->execs[i] = s->execs[--s->n_execs];
                break;
            }
        }
        if (m.root)
            sp_proto_msg_free(&m);
        free(line);
        free(frame);
        frame = NULL;
    }
    if (fr < 0 && !s->agent_dead) {
        /* A frame the agent may not send: it speaks nonsense. */
        syscall(SYS_pidfd_send_signal, s->h.pidfd, SIGKILL, NULL, 0);
        s->agent_dead = true;
    }
}

/* A pooled workspace never handed out leaves nothing (pool.h). */
static void remove_slot(struct sv *s)
{
    char sd[SP_MAX_PATH], root[SP_MAX_PATH + 16], self[64], cur[SP_MAX_PATH];
    /* Its name now (a keeper renames a slot once it is ready). */
    snprintf(self, sizeof(self), "/proc/self/fd/%d", s->a->wsfd);
    ssize_t k = readlink(self, cur, sizeof(cur) - 1);
    if (k <= 0)
        return;
    cur[k] = '\0';
    const char *base = strrchr(cur, '/');
    base = base ? base + 1 : cur;
    if ((s->pooled ? strncmp(base, SP_POOL_SLOT_PREFIX,
                             strlen(SP_POOL_SLOT_PREFIX)) != 0
                   : strcmp(base, sv_name) != 0) ||
        sp_state_dir(sd, sizeof(sd), NULL) < 0)
        return;
    snprintf(root, sizeof(root), "%s/%s", sd, SP_WS_DIR);
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rfd < 0)
        return;
    sp_ws_disk_release(s->a->wsfd);
    sp_rm_rf_at(rfd, base);
    close(rfd);
}

static _Noreturn void finish(struct sv *s)
{
    int st = 0;
    waitpid(s->h.pid, &st, 0);
    /* Ends every proxied connection; kills and reaps resolver children. */
    sp_proxy_free(s->h.proxy);
    s->h.proxy = NULL;
    sp_portfwd_free(s->pf);
    s->pf = NULL;
    unlinkat(s->a->wsfd, SP_WS_PORTS_FILE, 0);
    const char *state = s->stopping ? "stopped" : "crashed";
    logf_("agent %d ended (%s%d); workspace %s", (int)s->h.pid,
          WIFSIGNALED(st) ? "signal " : "status ",
          WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), state);
    if (s->h.cg)
        sp_cgroup_destroy(s->h.cg);
    unlinkat(s->a->wsfd, SP_WS_SOCKET, 0);
    write_state(s, state);
    if (s->pooled || s->oneshot)
        remove_slot(s);
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

/* ---- what a workspace adds to the launch path (launch.h) ---- */

struct ws_pid1 {
    const struct sp_ws_layers *layers;   /* NULL: none */
    const struct sp_secrets *secrets;    /* NULL: none */
};

/* The secrets tmpfs at /run/secrets, last in the plan (so its parents
 * exist; PID 1 fills it and makes it read-only), then the copy-on-write
 * layers over the planned mounts. */
static int ws_add_mounts(void *arg, struct sp_mount_plan *plan, bool userns,
                         sp_error *err)
{
    const struct ws_pid1 *w = arg;
    if (w->secrets) {
        struct sp_mount_op *ops =
            realloc(plan->ops, (plan->n + 1) * sizeof(*ops));
        if (!ops)
            return sp_error_set(err, ENOMEM, "mount plan");
        plan->ops = ops;
        struct sp_mount_op *op = &ops[plan->n];
        memset(op, 0, sizeof(*op));
        op->kind = SP_OP_TMPFS;
        op->dst = strdup(SP_SECRETS_DIR);
        op->size = sp_secrets_tmpfs_size(w->secrets);
        op->mode = 0700;
        if (!op->dst)
            return sp_error_set(err, ENOMEM, "mount plan");
        plan->n++;
    }
    if (w->layers)
        return sp_ws_layers_apply(w->layers, SP_WS_MOUNT, userns, plan, err);
    return 0;
}

static int ws_populate(void *arg, uid_t uid, gid_t gid, const char **what)
{
    const struct ws_pid1 *w = arg;
    *what = SP_SECRETS_DIR;
    return w->secrets ? sp_secrets_populate(w->secrets, SP_SECRETS_DIR, uid, gid)
                      : 0;
}

static _Noreturn void ws_agent(void *arg, const struct sp_launch_pid1_env *env)
{
    const struct ws_pid1 *w = arg;
    struct sp_agent_cfg cfg = {
        .sock = env->sock,
        .envp = env->envp,
        .path_env = env->path_env,
        .default_timeout = env->default_timeout,
        .kill_after = env->kill_after,
        .secrets = w->secrets,
        .gate_fd = env->gate_fd,
        .denials_take = env->denials_take,
        .denials_ctx = env->denials_ctx,
    };
    sp_agent_main(&cfg);
}

_Noreturn void sp_supervisor_main(struct sp_supervisor_args *a)
{
    struct sv s;
    memset(&s, 0, sizeof(s));
    s.a = a;
    snprintf(sv_name, sizeof(sv_name), "%s", a->name);
    a->name = sv_name;
    s.pooled = a->owner_fd >= 0;
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
    /* Published ports are bound first: one in use fails the start. */
    if (sp_portfwd_new(a->policy->publish, a->policy->n_publish, &s.pf,
                       &err) < 0) {
        unlinkat(a->wsfd, SP_WS_SOCKET, 0);
        ready_report(&s, err.message);
        _exit(1);
    }
    sp_run_opts ro = {.log = sv_log, .verbosity = 0};
    /* The copy-on-write layers (a workspace made before them has none). */
    struct sp_ws_layers ly;
    int lr = sp_ws_layers_load(a->policy->workspace, &ly, &err);
    struct ws_pid1 w = {
        .layers = lr > 0 ? &ly : NULL,
        .secrets = a->secrets && a->secrets->n ? a->secrets : NULL,
    };
    struct sp_launch_pid1 pid1 = {
        .sock = sv[1],
        .ws_dst = SP_WS_MOUNT,
        .add_mounts = ws_add_mounts,
        .layered = lr > 0,
        .from = lr > 0 ? ly.from : NULL,
        .populate = ws_populate,
        .main = ws_agent,
        .arg = &w,
    };
    if (lr < 0 ||
        sp_launch_agent(a->policy, &ro, &pid1, &s.h, &err) < 0) {
        if (lr > 0)
            sp_ws_layers_free(&ly);
        unlinkat(a->wsfd, SP_WS_SOCKET, 0);
        ready_report(&s, err.message);
        _exit(1);
    }
    if (lr > 0)
        sp_ws_layers_free(&ly);
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
    if (s.pf) {
        /* `ps` shows the ports (HOSTPORT 0 picked one). */
        char *pj = json_dumps(sp_portfwd_json(s.pf), JSON_COMPACT);
        int pfd0 = pj ? openat(a->wsfd, SP_WS_PORTS_FILE ".tmp",
                               O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
                                   O_CLOEXEC, 0644)
                      : -1;
        if (pfd0 >= 0) {
            if (write(pfd0, pj, strlen(pj)) < 0)
                logf_("cannot write %s: %s", SP_WS_PORTS_FILE, strerror(errno));
            close(pfd0);
            renameat(a->wsfd, SP_WS_PORTS_FILE ".tmp", a->wsfd,
                     SP_WS_PORTS_FILE);
        }
        free(pj);
    }
    ready_report(&s, NULL);
    /* the next create's layer dirs, now that ours is ready */
    sp_ws_layers_make_spare();
    /* and its disk image (wsdisk.h): mkfs and a mount, about 15 ms, in
     * a detached grandchild holding none of our fds (the lock above
     * all), so the first request is not kept waiting */
    char sd[SP_MAX_PATH];
    if (a->policy->limits.disk &&
        faccessat(a->wsfd, SP_WS_DISK_IMG, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
        sp_state_dir(sd, sizeof(sd), NULL) == 0) {
        pid_t c = fork();
        if (c == 0) {
            if (fork() == 0) {
                sp_close_all_except(NULL, 0, 3);
                sp_ws_disk_make_spare(sd, a->policy->limits.disk,
                                      a->policy->limits.inodes);
            }
            _exit(0);
        }
        if (c > 0)
            while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
                ;
    }
    sp_cgroup_sweep(s.h.cg); /* what supervisors killed by SIGKILL left */
    sp_audit_open(&s.audit, a->wsfd);
    if (s.h.proxy)
        sp_proxy_set_log(s.h.proxy, sv_net_event, &s);
    s.started_us = s.last_activity = sp_now_us();

    struct pollfd pfd[6 + SP_WS_MAX_CLIENTS + SP_PORTFWD_MAX_FDS];
    struct client *pc[6 + SP_WS_MAX_CLIENTS + SP_PORTFWD_MAX_FDS];
    for (;;) {
        size_t n = 0;
        pfd[n++] = (struct pollfd){s.sfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){s.h.pidfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){s.agent,
                                   (short)(POLLIN | (s.aout.head ? POLLOUT : 0)),
                                   0};
        pfd[n++] = (struct pollfd){s.stopping ? -1 : s.lfd, POLLIN, 0};
        /* --net allow: the egress proxy (poll skips -1). */
        pfd[n++] = (struct pollfd){s.h.proxy ? sp_proxy_fd(s.h.proxy) : -1,
                                   POLLIN, 0};
        /* Pooled: the pool's owner (its pidfd reads when it exits). */
        pfd[n++] = (struct pollfd){s.pooled ? a->owner_fd : -1, POLLIN, 0};
        for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++) {
            struct client *c = s.clients[i];
            if (!c)
                continue;
            pc[n] = c;
            pfd[n++] = (struct pollfd){
                c->fd, (short)(POLLIN | (c->out.head ? POLLOUT : 0)), 0};
        }
        size_t pf_base = n;
        n += sp_portfwd_pollfds(s.pf, pfd + n, SP_PORTFWD_MAX_FDS);
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
        if (s.h.proxy) {
            int pt = sp_proxy_next_timeout_ms(s.h.proxy);
            if (pt >= 0 && (timeout < 0 || pt < timeout))
                timeout = pt;
        }
        int pft = sp_portfwd_timeout_ms(s.pf, now);
        if (pft >= 0 && (timeout < 0 || pft < timeout))
            timeout = pft;
        if (s.stopping && s.kill_at) {
            int kt = s.kill_at <= now ? 0
                                      : (int)((s.kill_at - now + 999) / 1000);
            if (timeout < 0 || kt < timeout)
                timeout = kt;
        }
        int pr = poll(pfd, n, timeout);
        if (pr < 0 && errno != EINTR)
            finish(&s);
        now = sp_now_us();
        if (s.stopping && s.kill_at && now >= s.kill_at) {
            s.kill_at = 0;
            syscall(SYS_pidfd_send_signal, s.h.pidfd, SIGKILL, NULL, 0);
        }

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
        if (s.h.proxy)
            sp_proxy_dispatch(s.h.proxy, 0);
        if (s.pooled && (pfd[5].revents & (POLLIN | POLLHUP)))
            begin_stop(&s, "the pool's owner exited");
        for (size_t i = 6; i < pf_base; i++) {
            struct client *c = pc[i];
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                client_readable(&s, c);
            if ((pfd[i].revents & POLLOUT) && !c->dead &&
                sp_proto_out_flush(&c->out, c->fd) < 0)
                c->dead = true;
            if (c->dead)
                client_free(&s, c);
        }
        if (s.pf) {
            sp_portfwd_events(s.pf, pfd + pf_base, n - pf_base);
            sp_portfwd_timers(s.pf, now);
            char *pl;
            while ((pl = sp_portfwd_take_request(s.pf)))
                if (sp_proto_out_push(&s.aout, pl, NULL, 0, SIZE_MAX) < 0)
                    free(pl);
        }
        /* Requests queued for the agent go out now, not at the next POLLOUT. */
        if (s.aout.head && sp_proto_out_flush(&s.aout, s.agent) < 0 &&
            !s.agent_dead) {
            syscall(SYS_pidfd_send_signal, s.h.pidfd, SIGKILL, NULL, 0);
            s.agent_dead = true;
        }

        if (s.oneshot && s.ran && !s.stopping && s.n_execs == 0) {
            size_t nc = 0;
            for (size_t i = 0; i < SP_WS_MAX_CLIENTS; i++)
                nc += s.clients[i] != NULL;
            if (nc == 0)
                begin_stop(&s, "the one-shot run ended");
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
