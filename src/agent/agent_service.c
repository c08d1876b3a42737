/* agent_service.c — background services in a workspace (agent_ext.h): a
 * command in its own session and process group, stdout and stderr into
 * bounded rings, a readiness probe (file, tcp, http, cmd), stop with TERM
 * then KILL, and restart on failure with backoff. All of it runs in the
 * agent's poll loop: probes are non-blocking sockets and child processes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent_ext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "jsonrpc.h"
#include "envbuild.h"
#include "proto.h"
#include "ring.h"
#include "secrets.h"
#include "util.h"

enum st { ST_STARTING, ST_RUNNING, ST_READY, ST_STOPPING, ST_RESTARTING,
          ST_EXITED, ST_FAILED };
static const char *const st_names[] = {"starting", "running", "ready",
                                       "stopping", "restarting", "exited",
                                       "failed"};
enum probe_kind { PR_NONE, PR_FILE, PR_TCP, PR_HTTP, PR_CMD };
#define PROBE_INTERVAL_US 50000u
/* Services and background execs (jobs) share one table: a job is a
 * service with a number instead of a name, no probe and no restart, and
 * a stdin pipe (job.* methods, at the end of this file). */
#define SLOTS (SP_SERVICE_MAX + SP_JOB_MAX)

struct service {
    char name[SP_SERVICE_NAME_MAX + 1];
    json_t *params;            /* the start request's (argv, env, cwd) */
    pid_t pid;                 /* 0 when not running */
    int fd[2];                 /* stdout, stderr read ends; -1 at EOF */
    struct sp_ring log[2];
    struct sp_redact_stream *rs[2]; /* secrets: redact what enters log */
    enum st state;
    bool has_exit;
    int exit_code;
    char reason[512];
    int64_t started, ready_at, ended;
    int restarts;
    bool restart_on_failure;
    double ready_timeout;
    uint64_t ready_deadline, kill_at, restart_at, run_since;
    uint64_t end_at;           /* its "timeout" from the start; 0 none */
    double timeout;
    double backoff;
    json_int_t start_id;       /* a start waiting for ready; -1 none */
    json_int_t stop_id;        /* a stop waiting for the end; -1 none */
    const char *stopped_by;    /* "TERM", "KILL" or NULL */
    bool failing;              /* ended by us for failing readiness */
    /* the probe */
    enum probe_kind pk;
    char parg[SP_MAX_PATH];    /* file path, http path, command */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[300];
    int pfd;                   /* probe socket */
    int phase;                 /* 0 connecting, 1 request sent */
    char phead[1024];          /* http: the response's first bytes */
    size_t plen;               /* bytes kept in phead */
    size_t ptotal;             /* bytes of the response read */
    pid_t ppid;                /* cmd probe child */
    uint64_t next_probe;
    /* a job's */
    int job;                   /* > 0: a job's number; 0: a service */
    int in_fd;                 /* stdin pipe's write end; -1: none/closed */
    char *in;                  /* stdin queued for it */
    size_t in_len;
    bool in_eof;               /* close in_fd once in is written */
    uint64_t deadline;         /* its timeout; 0 none */
    bool timed_out;
    struct sp_ring done;       /* a job's: one byte once it ended (job.wait
                                  parks a read of it) */
};

static struct {
    struct service *sv[SLOTS];
    bool shutting_down;
    int next_job;
} S;

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > SP_SERVICE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

static struct service *find_name(const char *name)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (S.sv[i] && !S.sv[i]->job && strcmp(S.sv[i]->name, name) == 0)
            return S.sv[i];
    return NULL;
}

static bool st_final(enum st s)
{
    return s == ST_EXITED || s == ST_FAILED;
}

static json_t *time_or_null(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

/* The last lines of a stream, at most ~2 KiB. */
static json_t *log_tail(struct service *s, int stream, size_t lines)
{
    struct sp_ring *r = &s->log[stream];
    uint64_t c = sp_ring_tail_lines(r, lines);
    if (r->end - c > 2048)
        c = r->end - 2048;
    char buf[2049];
    size_t n = sp_ring_read(r, c, 2048, buf, NULL, NULL);
    buf[n] = '\0';
    /* JSON strings must be UTF-8: replace what is not ASCII text. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] >= 0x80 || buf[i] == '\0')
            buf[i] = '?';
    return json_string(buf);
}

static json_t *svc_json(struct service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "state", json_string(st_names[s->state]));
    json_object_set_new(o, "pid", s->pid ? json_integer(s->pid) : json_null());
    json_object_set_new(o, "exit_code",
                        s->has_exit ? json_integer(s->exit_code) : json_null());
    json_object_set_new(o, "started", time_or_null(s->started));
    json_object_set_new(o, "ready_at", time_or_null(s->ready_at));
    json_object_set_new(o, "ended", time_or_null(s->ended));
    json_object_set_new(o, "reason", s->reason[0] ? json_string(s->reason)
                                                  : json_null());
    json_object_set_new(o, "stopped_by", s->stopped_by
                                             ? json_string(s->stopped_by)
                                             : json_null());
    json_object_set_new(o, "restarts", json_integer(s->restarts));
    json_object_set_new(o, "restart",
                        json_string(s->restart_on_failure ? "on-failure" : "no"));
    json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)s->log[0].end));
    json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)s->log[1].end));
    json_t *argv = json_object_get(s->params, "argv");
    if (argv)
        json_object_set(o, "argv", argv);
    /* The rest of the spec as it was given, so that a client (restore)
     * can start the service again whole. The extra environment is the
     * start request's "env" only (never the agent's base environment);
     * the supervisor redacts every string of this reply. */
    json_t *env = json_object_get(s->params, "env");
    json_object_set_new(o, "env", json_is_array(env) ? json_incref(env)
                                                     : json_array());
    json_t *cwd = json_object_get(s->params, "cwd");
    json_object_set_new(o, "cwd", json_is_string(cwd) ? json_incref(cwd)
                                                      : json_null());
    json_t *ready = json_object_get(s->params, "ready");
    bool has_ready = json_is_string(ready) && json_string_length(ready);
    json_object_set_new(o, "ready", has_ready ? json_incref(ready)
                                              : json_null());
    json_object_set_new(o, "ready_timeout", json_real(s->ready_timeout));
    /* --secret-env: the names only, never "secret_envv" (the values). */
    json_t *sn = json_object_get(s->params, "secret_env");
    json_object_set_new(o, "secret_env", json_is_array(sn) ? json_incref(sn)
                                                           : json_array());
    if (s->state == ST_FAILED) {
        json_object_set_new(o, "stderr_tail", log_tail(s, 1, 10));
        json_object_set_new(o, "stdout_tail", log_tail(s, 0, 10));
    }
    return o;
}

static void probe_reset(struct service *s)
{
    if (s->pfd >= 0)
        close(s->pfd);
    s->pfd = -1;
    s->phase = 0;
    s->plen = s->ptotal = 0;
}

static void svc_free(size_t slot)
{
    struct service *s = S.sv[slot];
    sp_ext_forget(s);
    probe_reset(s);
    for (int i = 0; i < 2; i++) {
        if (s->fd[i] >= 0)
            close(s->fd[i]);
        sp_redact_stream_free(s->rs[i]);
        sp_ring_free(&s->log[i]);
    }
    sp_ring_free(&s->done);
    if (s->in_fd >= 0)
        close(s->in_fd);
    free(s->in);
    json_decref(s->params);
    free(s);
    S.sv[slot] = NULL;
}

/* ---- parsing the probe ---- */

static int parse_hostport(struct service *s, const char *hp, const char **rest)
{
    char host[300];
    const char *p = hp, *colon;
    if (*p == '[') {
        const char *rb = strchr(p, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - p - 1) >= sizeof(host))
            return -1;
        memcpy(host, p + 1, (size_t)(rb - p - 1));
        host[rb - p - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strchr(p, ':');
        if (!colon || (size_t)(colon - p) >= sizeof(host))
            return -1;
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = '\0';
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || port < 1 || port > 65535)
        return -1;
    if (rest)
        *rest = end;
    else if (*end)
        return -1;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(s->host, sizeof(s->host), "%s", host);
    memset(&s->addr, 0, sizeof(s->addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        s->addr_len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        s->addr_len = sizeof(*a6);
    } else {
        return -1; /* names need DNS: numeric addresses and localhost only */
    }
    return 0;
}

static const char *parse_probe(struct service *s, const char *spec)
{
    if (!spec || !*spec) {
        s->pk = PR_NONE;
        return NULL;
    }
    if (strncmp(spec, "file:", 5) == 0 && spec[5]) {
        s->pk = PR_FILE;
        snprintf(s->parg, sizeof(s->parg), "%s", spec + 5);
        return NULL;
    }
    if (strncmp(spec, "cmd:", 4) == 0 && spec[4]) {
        s->pk = PR_CMD;
        snprintf(s->parg, sizeof(s->parg), "%s", spec + 4);
        return NULL;
    }
    if (strncmp(spec, "tcp:", 4) == 0) {
        s->pk = PR_TCP;
        return parse_hostport(s, spec + 4, NULL) < 0
                   ? "tcp: wants HOST:PORT with a numeric address or localhost"
                   : NULL;
    }
    if (strncmp(spec, "http:", 5) == 0) {
        const char *u = spec + 5;
        if (strncmp(u, "http://", 7) == 0)
            u += 7;
        else if (strncmp(u, "//", 2) == 0)
            u += 2;
        const char *rest = NULL;
        s->pk = PR_HTTP;
        /* host:port required; a missing port is 80. */
        char hp[400];
        size_t hl = strcspn(u, "/");
        if (hl >= sizeof(hp) - 4)
            return "http: URL too long";
        memcpy(hp, u, hl);
        hp[hl] = '\0';
        if (!strchr(hp[0] == '[' ? strchr(hp, ']') ? strchr(hp, ']') : hp : hp, ':'))
            strcat(hp, ":80");
        if (parse_hostport(s, hp, &rest) < 0 || *rest)
            return "http: wants http://HOST[:PORT]/PATH with a numeric "
                   "address or localhost";
        const char *path = u[hl] ? u + hl : "/";
        for (const char *c = path; *c; c++)
            if ((unsigned char)*c <= ' ' || *c == 0x7f)
                return "http: the path has spaces or control characters";
        snprintf(s->parg, sizeof(s->parg), "%s", path);
        return NULL;
    }
    return "--ready wants file:PATH, tcp:HOST:PORT, http:URL or cmd:COMMAND";
}

/* ---- processes ---- */

static int exit_code_of(int status)
{
    return WIFEXITED(status)     ? WEXITSTATUS(status)
           : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                 : 125;
}

/* Fork a command in its own session (so its process group is its own and
 * no terminal is shared), stdin /dev/null unless given, out/err as given. */
static pid_t spawn(char *const *argv, char **envp, int cwdfd, int in, int out,
                   int err)
{
    sp_agent_gate(); /* in the cgroup first */
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setsid();
    int nul = open("/dev/null", O_RDWR);
    if (nul < 0 || dup2(in >= 0 ? in : nul, 0) < 0 || dup2(out >= 0 ? out : nul, 1) < 0 ||
        dup2(err >= 0 ? err : nul, 2) < 0) {
        dprintf(err, "sandpit: cannot set up the service's stdio: %s\n",
                strerror(errno));
        _exit(125);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (cwdfd >= 0 && fchdir(cwdfd) < 0) {
        dprintf(2, "sandpit: cannot change directory: %s\n", strerror(errno));
        _exit(125);
    }
    sp_exec_or_die(argv, envp, sp_env_get(envp, "PATH"), "\n");
}

/* A service's environment: the agent's, its "env" entries, then its
 * --secret-env values ("secret_envv", set by the supervisor only), a
 * later entry replacing an earlier one of the same name. The strings stay
 * borrowed from params. */
static char **svc_env(json_t *params, const char **why)
{
    char **env = sp_ext_env(params, "env", false, why);
    const char **sv = NULL;
    sp_error err = {0};
    if (!env)
        return NULL;
    if (sp_proto_get_strv(params, "secret_envv", false, 0, SP_MAX_SECRETS,
                          SP_MAX_ENV_LEN, &sv, &err) < 0) {
        free(env);
        *why = "secret_envv must be an array of K=V strings";
        return NULL;
    }
    size_t n = 0, ns = 0;
    while (env[n])
        n++;
    while (sv && sv[ns])
        ns++;
    char **e = ns ? realloc(env, (n + ns + 1) * sizeof(*env)) : env;
    if (!e) {
        free(env);
        free(sv);
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < ns; i++) {
        const char *eq = strchr(sv[i], '=');
        size_t k = 0, kl = eq ? (size_t)(eq - sv[i]) + 1 : 0;
        while (kl && k < n && strncmp(e[k], sv[i], kl) != 0)
            k++;
        if (!kl)
            continue;
        e[k] = (char *)sv[i];
        if (k == n)
            n++;
    }
    e[n] = NULL;
    free(sv);
    return e;
}

/* Start (or restart) s from its stored params. Returns NULL or why not. */
static const char *svc_spawn(struct service *s, char *why, size_t wl)
{
    const char **argv = NULL, *cwd = NULL, *ew = NULL;
    sp_error err = {0};
    char **envp = NULL;
    int cwdfd = -1, po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
    const char *r = NULL;
    if (sp_proto_get_strv(s->params, "argv", true, 1, SP_MAX_ARGS,
                          SP_MAX_ENV_LEN, &argv, &err) < 0 ||
        sp_proto_get_string(s->params, "cwd", false, SP_MAX_PATH, &cwd, &err) < 0) {
        snprintf(why, wl, "%.500s", err.message);
        return why;
    }
    if (!(envp = svc_env(s->params, &ew))) {
        snprintf(why, wl, "%.500s", ew);
        r = why;
        goto out;
    }
    cwdfd = open(cwd && *cwd ? cwd : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwdfd < 0) {
        snprintf(why, wl, "cannot change to working directory %s: %s", cwd,
                 strerror(errno));
        r = why;
        goto out;
    }
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
        (s->job && s->in_fd == -2 && pipe2(pi, O_CLOEXEC) < 0)) {
        snprintf(why, wl, "pipe: %s", strerror(errno));
        r = why;
        goto out;
    }
    pid_t pid = spawn((char *const *)argv, envp, cwdfd, pi[0], po[1], pe[1]);
    if (pid < 0) {
        snprintf(why, wl, "cannot fork: %s", strerror(errno));
        r = why;
        goto out;
    }
    for (int i = 0; i < 2; i++)
        if (s->fd[i] >= 0)
            close(s->fd[i]);
    s->fd[0] = po[0];
    s->fd[1] = pe[0];
    po[0] = pe[0] = -1;
    if (pi[1] >= 0) {
        s->in_fd = pi[1];
        pi[1] = -1;
        fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
    } else if (s->in_fd == -2) {
        s->in_fd = -1;
    }
    fcntl(s->fd[0], F_SETFL, O_NONBLOCK);
    fcntl(s->fd[1], F_SETFL, O_NONBLOCK);
    s->pid = pid;
    s->has_exit = false;
    s->started = (int64_t)time(NULL);
    s->ended = 0;
    s->ready_at = 0;
    s->stopped_by = NULL;
    s->reason[0] = '\0';
    s->failing = false;
    s->run_since = sp_now_us();
    if (s->pk == PR_NONE) {
        s->state = ST_RUNNING;
    } else {
        s->state = ST_STARTING;
        s->ready_deadline = sp_now_us() + (uint64_t)(s->ready_timeout * 1e6);
        s->next_probe = sp_now_us();
    }
out:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
        if (pi[i] >= 0)
            close(pi[i]);
    }
    if (cwdfd >= 0)
        close(cwdfd);
    free(argv);
    free(envp);
    return r;
}

static void svc_signal(struct service *s, int sig)
{
    if (s->pid > 0 && kill(-s->pid, sig) < 0)
        kill(s->pid, sig);
}

static void begin_stop(struct service *s, double grace)
{
    if (!s->pid)
        return;
    s->state = ST_STOPPING;
    s->stopped_by = "TERM";
    svc_signal(s, SIGTERM);
    svc_signal(s, SIGCONT);
    s->kill_at = sp_now_us() + (uint64_t)(grace * 1e6);
    if (s->kill_at == sp_now_us() || grace <= 0) {
        svc_signal(s, SIGKILL);
        s->stopped_by = "KILL";
        s->kill_at = 0;
    }
}

static void became_ready(struct service *s)
{
    probe_reset(s);
    s->state = ST_READY;
    s->ready_at = (int64_t)time(NULL);
    if (s->start_id >= 0) {
        sp_ext_reply(s->start_id, svc_json(s));
        s->start_id = -1;
    }
}

static void fail_readiness(struct service *s, const char *why)
{
    probe_reset(s);
    snprintf(s->reason, sizeof(s->reason), "%.400s", why);
    s->failing = true;
    begin_stop(s, SP_SERVICE_STOP_GRACE);
}

/* ---- requests ---- */

/* The parts of a start request that are reported back (svc_json): the
 * environment entries well formed, and the whole spec within
 * SP_SERVICE_SPEC_MAX, so that every status reply fits in one line and
 * nothing is ever cut. NULL or why not (a static buffer). */
static const char *spec_check(json_t *params, const char **argv,
                              const char *ready)
{
    static char why[300];
    const char **env = NULL, *cwd = NULL;
    sp_error err = {0};
    if (sp_proto_get_strv(params, "env", false, 0, SP_MAX_ENV, SP_MAX_ENV_LEN,
                          &env, &err) < 0 ||
        sp_proto_get_string(params, "cwd", false, SP_MAX_PATH, &cwd, &err) < 0) {
        snprintf(why, sizeof(why), "%.250s", err.message);
        return why;
    }
    size_t total = (cwd ? strlen(cwd) : 0) + (ready ? strlen(ready) : 0);
    for (size_t i = 0; argv[i]; i++)
        total += strlen(argv[i]) + 1;
    for (size_t i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq || eq == env[i]) {
            snprintf(why, sizeof(why),
                     "env entry %zu is not K=V with a non-empty K", i);
            free(env);
            return why;
        }
        total += strlen(env[i]) + 1;
    }
    free(env);
    if (total > SP_SERVICE_SPEC_MAX) {
        snprintf(why, sizeof(why),
                 "the service's command, environment, directory and probe "
                 "take %zu bytes, more than the %d a service may have",
                 total, SP_SERVICE_SPEC_MAX);
        return why;
    }
    return NULL;
}

static void do_start(json_int_t id, json_t *params)
{
    const char *name = NULL, *ready = NULL, *restart = NULL;
    sp_error err = {0};
    double rt = SP_SERVICE_READY_TIMEOUT, lifetime = 0;
    const char **argv = NULL;
    if (sp_proto_get_string(params, "name", true, SP_SERVICE_NAME_MAX + 1,
                            &name, &err) < 0 ||
        sp_proto_get_string(params, "ready", false, SP_MAX_PATH, &ready, &err) < 0 ||
        sp_proto_get_string(params, "restart", false, 32, &restart, &err) < 0 ||
        sp_proto_get_number(params, "ready_timeout", false, 0.01, SP_MAX_TIMEOUT,
                            &rt, &err) < 0 ||
        sp_proto_get_number(params, "timeout", false, 0, SP_MAX_TIMEOUT,
                            &lifetime, &err) < 0 ||
        sp_proto_get_strv(params, "argv", true, 1, SP_MAX_ARGS, SP_MAX_ENV_LEN,
                          &argv, &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return;
    }
    const char *why_spec = spec_check(params, argv, ready);
    free(argv);
    if (why_spec) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", why_spec);
        return;
    }
    if (!name_ok(name)) {
        sp_ext_error(id, SP_RPC_PARAMS,
                     "invalid service name '%.80s' (1 to 64 of A-Z a-z 0-9 . _ -, "
                     "starting with a letter or digit)", name);
        return;
    }
    if (restart && strcmp(restart, "no") && strcmp(restart, "on-failure")) {
        sp_ext_error(id, SP_RPC_PARAMS, "restart must be no or on-failure");
        return;
    }
    size_t slot = SLOTS;
    struct service *old = find_name(name);
    if (old && !st_final(old->state)) {
        sp_ext_error(id, SP_RPC_PARAMS, "service %s is already %s", name,
                     st_names[old->state]);
        return;
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (S.sv[i] == old && old)
            slot = i;
    size_t nsvc = 0;
    for (size_t i = 0; i < SLOTS; i++)
        nsvc += S.sv[i] && !S.sv[i]->job;
    if (slot == SLOTS && nsvc < SP_SERVICE_MAX) {
        for (size_t i = 0; i < SLOTS && slot == SLOTS; i++)
            if (!S.sv[i])
                slot = i;
    }
    if (slot == SLOTS) {
        sp_ext_error(id, SP_RPC_BUSY, "too many services (at most %d)",
                     SP_SERVICE_MAX);
        return;
    }
    struct service *s = calloc(1, sizeof(*s));
    if (!s || sp_ring_init(&s->log[0], SP_SERVICE_RING) < 0 ||
        sp_ring_init(&s->log[1], SP_SERVICE_RING) < 0) {
        if (s) {
            sp_ring_free(&s->log[0]);
            free(s);
        }
        sp_ext_error(id, SP_RPC_INTERNAL, "out of memory");
        return;
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->fd[0] = s->fd[1] = s->pfd = s->in_fd = -1;
    s->start_id = s->stop_id = -1;
    s->ready_timeout = rt;
    s->timeout = lifetime;
    if (lifetime > 0)
        s->end_at = sp_now_us() + (uint64_t)(lifetime * 1e6);
    s->restart_on_failure = restart && strcmp(restart, "on-failure") == 0;
    s->backoff = SP_SERVICE_BACKOFF_MIN;
    s->params = json_incref(params);
    const char *why = parse_probe(s, ready);
    char buf[600];
    if (!why)
        why = svc_spawn(s, buf, sizeof(buf));
    if (why) {
        sp_ext_error(id, why == buf ? SP_RPC_EXEC : SP_RPC_PARAMS, "%s", why);
        json_decref(s->params);
        sp_ring_free(&s->log[0]);
        sp_ring_free(&s->log[1]);
        free(s);
        return;
    }
    if (old)
        svc_free(slot);
    S.sv[slot] = s;
    if (s->state == ST_STARTING)
        s->start_id = id;
    else
        sp_ext_reply(id, svc_json(s));
}

static void logs_status(void *target, int stream, json_t *r)
{
    (void)stream;
    struct service *s = target;
    json_object_set_new(r, "state", json_string(st_names[s->state]));
    json_object_set_new(r, "exit_code",
                        s->has_exit ? json_integer(s->exit_code) : json_null());
}

/* service.logs and job.logs: a read of one stream's ring. */
static void do_logs(json_int_t id, struct service *s, json_t *params)
{
    sp_error err = {0};
    const char *stream = "stdout";
    double cursor = -1, tail = -1, max = SP_SHELL_READ_MAX, wait = 0;
    if (sp_proto_get_string(params, "stream", false, 16, &stream, &err) < 0 ||
        sp_proto_get_number(params, "cursor", false, 0, 9e15, &cursor, &err) < 0 ||
        sp_proto_get_number(params, "tail", false, 0, 1e9, &tail, &err) < 0 ||
        sp_proto_get_number(params, "max", false, 1, SP_SHELL_READ_MAX, &max, &err) < 0 ||
        sp_proto_get_number(params, "wait", false, 0, SP_EXT_MAX_WAIT, &wait, &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return;
    }
    int k = strcmp(stream, "stdout") == 0 ? 0 : strcmp(stream, "stderr") == 0 ? 1 : -1;
    if (k < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "stream must be stdout or stderr");
        return;
    }
    uint64_t c = cursor >= 0   ? (uint64_t)cursor
                 : tail >= 0   ? sp_ring_tail_lines(&s->log[k], (size_t)tail)
                               : 0;
    bool ended = st_final(s->state) && s->fd[k] < 0;
    sp_ext_read(id, &s->log[k], s, k, c, (size_t)max, wait, ended,
                logs_status);
}

static bool sp_svc_handle(json_int_t id, const char *method, json_t *params)
{
    const char *m = method + 8;
    if (id < 0)
        return true;
    if (strcmp(m, "start") == 0) {
        if (S.shutting_down)
            sp_ext_error(id, SP_RPC_GONE, "the workspace is stopping");
        else
            do_start(id, params);
        return true;
    }
    if (strcmp(m, "list") == 0) {
        json_t *a = json_array();
        size_t used = 0;
        for (size_t i = 0; i < SLOTS; i++) {
            if (!S.sv[i] || S.sv[i]->job)
                continue;
            json_t *o = svc_json(S.sv[i]);
            size_t n = json_dumpb(o, NULL, 0,
                                  JSON_COMPACT | JSON_ENSURE_ASCII);
            if (used + n > SP_SERVICE_LIST_FULL) {
                /* Said, not cut: service.status has the whole spec. */
                static const char *const big[] = {
                    "argv", "env", "cwd", "ready", "stdout_tail",
                    "stderr_tail"};
                for (size_t k = 0; k < sizeof(big) / sizeof(*big); k++)
                    json_object_del(o, big[k]);
                json_object_set_new(o, "spec_omitted", json_true());
                n = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII);
            }
            used += n;
            json_array_append_new(a, o);
        }
        sp_ext_reply(id, json_pack("{s:o}", "services", a));
        return true;
    }
    if (strcmp(m, "status") && strcmp(m, "logs") && strcmp(m, "stop"))
        return false;
    const char *name = NULL;
    sp_error err = {0};
    if (sp_proto_get_string(params, "name", true, SP_SERVICE_NAME_MAX + 1,
                            &name, &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return true;
    }
    struct service *s = find_name(name);
    if (!s) {
        sp_ext_error(id, SP_RPC_PARAMS, "no service named '%.80s'", name);
        return true;
    }
    if (strcmp(m, "status") == 0) {
        sp_ext_reply(id, svc_json(s));
    } else if (strcmp(m, "logs") == 0) {
        do_logs(id, s, params);
    } else {
        double grace = SP_SERVICE_STOP_GRACE;
        if (sp_proto_get_number(params, "grace", false, 0, 3600, &grace, &err) < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
            return true;
        }
        if (s->state == ST_RESTARTING) {
            s->state = ST_EXITED;
            s->restart_at = 0;
        }
        if (!s->pid) {
            sp_ext_reply(id, json_pack("{s:s,s:n}", "name", s->name,
                                       "stopped_by"));
            return true;
        }
        if (s->stop_id >= 0) {
            sp_ext_error(id, SP_RPC_BUSY, "service %s is already stopping",
                         s->name);
            return true;
        }
        s->stop_id = id;
        probe_reset(s);
        if (s->start_id >= 0) {
            snprintf(s->reason, sizeof(s->reason), "stopped before ready");
            s->failing = true;
        }
        if (s->state != ST_STOPPING)
            begin_stop(s, grace);
    }
    return true;
}

/* ---- the loop ---- */

static size_t sp_svc_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        struct service *s = S.sv[i];
        if (!s)
            continue;
        for (int k = 0; k < 2 && n < max; k++)
            if (s->fd[k] >= 0)
                pfd[n++] = (struct pollfd){s->fd[k], POLLIN, 0};
        if (s->in_fd >= 0 && s->in_len && n < max)
            pfd[n++] = (struct pollfd){s->in_fd, POLLOUT, 0};
        if (s->pfd >= 0 && n < max)
            pfd[n++] = (struct pollfd){s->pfd,
                                       (short)(s->phase ? POLLIN : POLLOUT), 0};
    }
    return n;
}

static void read_log(struct service *s, int k)
{
    char buf[65536];
    for (int rounds = 0; rounds < 16 && s->fd[k] >= 0; rounds++) {
        ssize_t n = read(s->fd[k], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            sp_secrets_ring_write(&s->rs[k], &s->log[k], buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            break;
        close(s->fd[k]);
        s->fd[k] = -1;
        sp_secrets_ring_end(&s->rs[k], &s->log[k]);
    }
    sp_ext_wake(s, k, st_final(s->state) && s->fd[k] < 0);
}

static void probe_step(struct service *s, short revents)
{
    if (s->phase == 0) {
        int e = 0;
        socklen_t el = sizeof(e);
        if ((revents & POLLERR) ||
            getsockopt(s->pfd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
            probe_reset(s);
            return;
        }
        if (s->pk == PR_TCP) {
            became_ready(s);
            return;
        }
        char req[SP_MAX_PATH + 400];
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: "
                         "sandpit-probe\r\nConnection: close\r\n\r\n",
                         s->parg, s->host);
        if (n < 0 || send(s->pfd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            probe_reset(s);
            return;
        }
        s->phase = 1;
        return;
    }
    /* Read the whole response before closing: closing with unread data
     * sends an RST, which the service logs as a reset connection. Done at
     * EOF, when the head and Content-Length bytes are in, or past
     * SP_SERVICE_PROBE_READ_MAX (then closed unread: a bound). */
    bool done = false;
    for (int rounds = 0; rounds < 16 && !done; rounds++) {
        char buf[4096];
        ssize_t n = recv(s->pfd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            probe_reset(s);
            return;
        }
        if (n == 0) {
            done = true;
            break;
        }
        size_t room = sizeof(s->phead) - 1 - s->plen;
        size_t keep = (size_t)n < room ? (size_t)n : room;
        memcpy(s->phead + s->plen, buf, keep);
        s->plen += keep;
        s->phead[s->plen] = '\0';
        s->ptotal += (size_t)n;
        const char *end = strstr(s->phead, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - s->phead) + 4;
            const char *cl = strcasestr(s->phead, "\ncontent-length:");
            unsigned long long body = 0;
            if (cl && cl < end && sscanf(cl + 16, "%llu", &body) == 1 &&
                s->ptotal >= head + body)
                done = true;
        }
        if (s->ptotal > SP_SERVICE_PROBE_READ_MAX)
            done = true;
    }
    if (!done)
        return; /* more on the next POLLIN */
    int code = 0;
    if (sscanf(s->phead, "HTTP/%*d.%*d %d", &code) == 1 && code >= 200 &&
        code < 400) {
        became_ready(s);
        return;
    }
    probe_reset(s);
}

static void job_flush_input(struct service *s, short revents);
static void job_ended(struct service *s);

static void sp_svc_events(const struct pollfd *pfd, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!pfd[k].revents)
            continue;
        for (size_t i = 0; i < SLOTS; i++) {
            struct service *s = S.sv[i];
            if (!s)
                continue;
            if (pfd[k].fd == s->fd[0]) {
                read_log(s, 0);
                break;
            }
            if (pfd[k].fd == s->fd[1]) {
                read_log(s, 1);
                break;
            }
            if (pfd[k].fd == s->pfd) {
                probe_step(s, pfd[k].revents);
                break;
            }
            if (pfd[k].fd == s->in_fd) {
                job_flush_input(s, pfd[k].revents);
                break;
            }
        }
    }
}

static void probe_try(struct service *s, uint64_t now)
{
    s->next_probe = now + PROBE_INTERVAL_US;
    switch (s->pk) {
    case PR_FILE: {
        struct stat sb;
        if (stat(s->parg, &sb) == 0)
            became_ready(s);
        else if (s->parg[0] != '/') {
            /* Relative to the service's working directory. */
            const char *cwd = json_string_value(json_object_get(s->params, "cwd"));
            char full[2 * SP_MAX_PATH + 2];
            snprintf(full, sizeof(full), "%s/%s", cwd && *cwd ? cwd : ".", s->parg);
            if (stat(full, &sb) == 0)
                became_ready(s);
        }
        break;
    }
    case PR_TCP:
    case PR_HTTP: {
        if (s->pfd >= 0)
            break; /* one attempt at a time */
        int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        s->pfd = fd;
        s->phase = 0;
        if (connect(fd, (struct sockaddr *)&s->addr, s->addr_len) == 0) {
            probe_step(s, POLLOUT);
        } else if (errno != EINPROGRESS) {
            probe_reset(s);
        }
        break;
    }
    case PR_CMD: {
        if (s->ppid > 0)
            break;
        const char *cwd = json_string_value(json_object_get(s->params, "cwd"));
        int cwdfd = open(cwd && *cwd ? cwd : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        const char *why = NULL;
        char **envp = svc_env(s->params, &why);
        char *argv[] = {"sh", "-c", s->parg, NULL};
        if (envp && cwdfd >= 0) {
            pid_t p = spawn(argv, envp, cwdfd, -1, -1, -1);
            if (p > 0)
                s->ppid = p;
        }
        free(envp);
        if (cwdfd >= 0)
            close(cwdfd);
        break;
    }
    case PR_NONE:
    default:
        break;
    }
}

static bool sp_svc_reaped(pid_t pid, int status)
{
    for (size_t i = 0; i < SLOTS; i++) {
        struct service *s = S.sv[i];
        if (!s)
            continue;
        if (s->ppid == pid) {
            s->ppid = 0;
            if (s->state == ST_STARTING && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0)
                became_ready(s);
            return true;
        }
        if (s->pid != pid)
            continue;
        /* The group may hold more: it ends with its leader. */
        kill(-pid, SIGKILL);
        s->pid = 0;
        s->has_exit = true;
        s->exit_code = exit_code_of(status);
        s->ended = (int64_t)time(NULL);
        s->kill_at = 0;
        probe_reset(s);
        if (s->ppid > 0) {
            kill(-s->ppid, SIGKILL);
        }
        for (int k = 0; k < 2; k++)
            if (s->fd[k] >= 0)
                read_log(s, k);
        if (s->job) {
            job_ended(s);
            return true;
        }
        bool was_starting = s->state == ST_STARTING;
        bool failed = s->exit_code != 0 && !s->stopped_by;
        if (s->failing) {
            s->state = ST_FAILED;
        } else if (was_starting) {
            s->state = ST_FAILED;
            snprintf(s->reason, sizeof(s->reason),
                     "exited before ready (exit code %d)", s->exit_code);
        } else if (failed && s->restart_on_failure && !S.shutting_down) {
            s->state = ST_RESTARTING;
            uint64_t now = sp_now_us();
            if (now - s->run_since > (uint64_t)(SP_SERVICE_BACKOFF_RESET * 1e6))
                s->backoff = SP_SERVICE_BACKOFF_MIN;
            s->restart_at = now + (uint64_t)(s->backoff * 1e6);
            s->backoff = s->backoff * 2 > SP_SERVICE_BACKOFF_MAX
                             ? SP_SERVICE_BACKOFF_MAX
                             : s->backoff * 2;
            snprintf(s->reason, sizeof(s->reason), "exited with code %d",
                     s->exit_code);
        } else {
            s->state = failed ? ST_FAILED : ST_EXITED;
            if (failed)
                snprintf(s->reason, sizeof(s->reason), "exited with code %d",
                         s->exit_code);
            else if (s->stopped_by && !s->reason[0])
                snprintf(s->reason, sizeof(s->reason), "stopped");
        }
        if (s->start_id >= 0) {
            sp_ext_reply(s->start_id, svc_json(s));
            s->start_id = -1;
        }
        if (s->stop_id >= 0) {
            sp_ext_reply(s->stop_id,
                         json_pack("{s:s,s:s?,s:i}", "name", s->name,
                                   "stopped_by", s->stopped_by, "exit_code",
                                   s->exit_code));
            s->stop_id = -1;
        }
        sp_ext_wake(s, 0, st_final(s->state) && s->fd[0] < 0);
        sp_ext_wake(s, 1, st_final(s->state) && s->fd[1] < 0);
        return true;
    }
    return false;
}

static uint64_t sp_svc_next_timer(void)
{
    uint64_t next = 0;
#define CONSIDER(t)                      \
    do {                                 \
        uint64_t t_ = (t);               \
        if (t_ && (!next || t_ < next))  \
            next = t_;                   \
    } while (0)
    for (size_t i = 0; i < SLOTS; i++) {
        struct service *s = S.sv[i];
        if (!s)
            continue;
        CONSIDER(s->kill_at);
        CONSIDER(s->restart_at);
        CONSIDER(s->end_at);
        if (s->pid)
            CONSIDER(s->deadline);
        if (s->state == ST_STARTING) {
            CONSIDER(s->ready_deadline);
            if (s->pk == PR_FILE || (s->pk != PR_CMD && s->pfd < 0) ||
                (s->pk == PR_CMD && s->ppid == 0))
                CONSIDER(s->next_probe);
        }
    }
#undef CONSIDER
    return next;
}

static void sp_svc_timers(uint64_t now)
{
    for (size_t i = 0; i < SLOTS; i++) {
        struct service *s = S.sv[i];
        if (!s)
            continue;
        if (s->kill_at && now >= s->kill_at) {
            s->kill_at = 0;
            s->stopped_by = "KILL";
            svc_signal(s, SIGKILL);
        }
        if (s->end_at && now >= s->end_at) {
            /* It ran its "timeout" (the operator's ceiling): stopped, not
             * restarted. */
            s->end_at = 0;
            s->restart_on_failure = false;
            if (!st_final(s->state) || s->state == ST_RESTARTING) {
                char why[64];
                snprintf(why, sizeof(why), "ran past its timeout (%.3gs)",
                         s->timeout);
                snprintf(s->reason, sizeof(s->reason), "%s", why);
                if (s->state == ST_RESTARTING) {
                    s->restart_at = 0;
                    s->state = ST_FAILED;
                } else if (s->state == ST_STARTING) {
                    fail_readiness(s, why);
                } else {
                    begin_stop(s, SP_SERVICE_STOP_GRACE);
                }
            }
        }
        if (s->deadline && s->pid && now >= s->deadline &&
            s->state != ST_STOPPING) {
            s->deadline = 0;
            s->timed_out = true;
            begin_stop(s, SP_JOB_KILL_GRACE);
        }
        if (s->restart_at && S.shutting_down && s->state == ST_RESTARTING) {
            s->restart_at = 0;
            s->state = ST_FAILED;
        }
        if (s->restart_at && now >= s->restart_at && s->state == ST_RESTARTING) {
            s->restart_at = 0;
            char why[600];
            s->restarts++;
            if (svc_spawn(s, why, sizeof(why))) {
                s->state = ST_FAILED;
                snprintf(s->reason, sizeof(s->reason), "restart failed: %.400s", why);
            }
        }
        if (s->state == ST_STARTING) {
            if (now >= s->ready_deadline) {
                char why[128];
                snprintf(why, sizeof(why), "readiness timeout (%.3gs)",
                         s->ready_timeout);
                fail_readiness(s, why);
            } else if (now >= s->next_probe) {
                probe_try(s, now);
            }
        }
    }
}

static bool sp_svc_shutdown(uint64_t now)
{
    (void)now;
    bool any = false;
    if (!S.shutting_down) {
        S.shutting_down = true;
        for (size_t i = 0; i < SLOTS; i++) {
            struct service *s = S.sv[i];
            if (s && s->pid && s->state != ST_STOPPING)
                begin_stop(s, SP_SERVICE_STOP_GRACE);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        any |= S.sv[i] && S.sv[i]->pid;
    return !any;
}

const struct sp_agent_module sp_agent_svc_module = {
    .prefix = "service.",
    .handle = sp_svc_handle,
    .pollfds = sp_svc_pollfds,
    .events = sp_svc_events,
    .reaped = sp_svc_reaped,
    .next_timer = sp_svc_next_timer,
    .timers = sp_svc_timers,
    .stopped = sp_svc_shutdown,
};

/* ---- background execs (jobs) ---------------------------------------------
 * A job is a service slot with a number, no probe, no restart, rings of
 * SP_JOB_RING and, on request, a stdin pipe; it ends as "exited" with its
 * exit code (128 + N for signal N), whatever the code. */

static struct service *find_job(json_int_t job, size_t *slot)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (S.sv[i] && S.sv[i]->job == job) {
            if (slot)
                *slot = i;
            return S.sv[i];
        }
    return NULL;
}

static json_t *job_json(struct service *s, bool full)
{
    json_t *o = json_object();
    json_object_set_new(o, "job", json_integer(s->job));
    json_object_set_new(o, "state", json_string(st_names[s->state]));
    json_object_set_new(o, "pid", s->pid ? json_integer(s->pid) : json_null());
    json_object_set_new(o, "exit_code",
                        s->has_exit ? json_integer(s->exit_code) : json_null());
    json_object_set_new(o, "started_at", time_or_null(s->started));
    json_object_set_new(o, "ended_at", time_or_null(s->ended));
    json_object_set_new(o, "timed_out", json_boolean(s->timed_out));
    json_object_set_new(o, "stopped_by", s->stopped_by
                                             ? json_string(s->stopped_by)
                                             : json_null());
    json_object_set_new(o, "stdin_open",
                        json_boolean(s->in_fd >= 0 && !s->in_eof));
    json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)s->log[0].end));
    json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)s->log[1].end));
    json_t *argv = json_object_get(s->params, "argv");
    if (full) {
        if (argv)
            json_object_set(o, "argv", argv);
        json_t *cwd = json_object_get(s->params, "cwd");
        json_object_set_new(o, "cwd", json_is_string(cwd) ? json_incref(cwd)
                                                          : json_null());
        return o;
    }
    /* A list carries the command line cut to 200 bytes: 64 of them fit
     * in one reply whatever their specs. */
    char cmd[201];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(argv) && n < 200; i++) {
        const char *a = json_string_value(json_array_get(argv, i));
        int w = snprintf(cmd + n, sizeof(cmd) - n, "%s%s", i ? " " : "",
                         a ? a : "");
        n = w < 0 ? n : n + (size_t)w >= sizeof(cmd) ? sizeof(cmd) - 1
                                                     : n + (size_t)w;
    }
    cmd[n] = '\0';
    json_object_set_new(o, "command", sp_jrpc_string_lossy(cmd, n));
    return o;
}

static void job_status(void *target, int stream, json_t *r)
{
    struct service *s = target;
    if (stream != 2) {
        logs_status(target, stream, r);
        return;
    }
    /* job.wait: the status, not the bytes of the "done" ring. */
    static const char *const drop[] = {"cursor", "next_cursor", "data",
                                       "truncated", "dropped", "end"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(*drop); i++)
        json_object_del(r, drop[i]);
    json_t *j = job_json(s, true);
    json_object_update(r, j);
    json_decref(j);
}

static void job_close_input(struct service *s)
{
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    s->in_len = 0;
}

static void job_flush_input(struct service *s, short revents)
{
    (void)revents;
    while (s->in_fd >= 0 && s->in_len) {
        ssize_t n = write(s->in_fd, s->in, s->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            job_close_input(s); /* EPIPE: it closed its stdin */
            return;
        }
        memmove(s->in, s->in + n, s->in_len - (size_t)n);
        s->in_len -= (size_t)n;
    }
    if (!s->in_len && s->in_eof)
        job_close_input(s);
}

static void job_ended(struct service *s)
{
    s->state = ST_EXITED;
    if (s->timed_out)
        snprintf(s->reason, sizeof(s->reason), "timeout");
    job_close_input(s);
    sp_ring_write(&s->done, "x", 1);
    sp_ext_wake(s, 0, s->fd[0] < 0);
    sp_ext_wake(s, 1, s->fd[1] < 0);
    sp_ext_wake(s, 2, false);
}

static void job_start(json_int_t id, json_t *params)
{
    sp_error err = {0};
    const char **argv = NULL;
    double timeout = 0;
    json_t *want_in = json_object_get(params, "stdin");
    if (sp_proto_get_strv(params, "argv", true, 1, SP_MAX_ARGS, SP_MAX_ENV_LEN,
                          &argv, &err) < 0 ||
        sp_proto_get_number(params, "timeout", false, 0, SP_MAX_TIMEOUT,
                            &timeout, &err) < 0) {
        free(argv);
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return;
    }
    if (want_in && !json_is_boolean(want_in)) {
        free(argv);
        sp_ext_error(id, SP_RPC_PARAMS, "stdin must be true or false");
        return;
    }
    const char *why_spec = spec_check(params, argv, NULL);
    free(argv);
    if (why_spec) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", why_spec);
        return;
    }
    size_t njobs = 0, slot = SLOTS, oldest = SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        struct service *o = S.sv[i];
        if (!o) {
            if (slot == SLOTS)
                slot = i;
            continue;
        }
        if (!o->job)
            continue;
        njobs++;
        if (st_final(o->state) && o->fd[0] < 0 && o->fd[1] < 0 &&
            (oldest == SLOTS || o->job < S.sv[oldest]->job))
            oldest = i;
    }
    if (njobs >= SP_JOB_MAX || slot == SLOTS) {
        if (oldest == SLOTS) {
            sp_ext_error(id, SP_RPC_BUSY,
                         "too many background execs running (at most %d): "
                         "wait for or kill one first", SP_JOB_MAX);
            return;
        }
        svc_free(oldest); /* the oldest ended one is forgotten */
        slot = oldest;
    }
    struct service *s = calloc(1, sizeof(*s));
    if (!s || sp_ring_init(&s->log[0], SP_JOB_RING) < 0 ||
        sp_ring_init(&s->log[1], SP_JOB_RING) < 0 ||
        sp_ring_init(&s->done, 16) < 0) {
        if (s) {
            sp_ring_free(&s->log[0]);
            sp_ring_free(&s->log[1]);
            free(s);
        }
        sp_ext_error(id, SP_RPC_INTERNAL, "out of memory");
        return;
    }
    s->job = ++S.next_job;
    snprintf(s->name, sizeof(s->name), "job-%d", s->job);
    s->fd[0] = s->fd[1] = s->pfd = -1;
    s->in_fd = json_is_true(want_in) ? -2 : -1; /* -2: make the pipe */
    s->start_id = s->stop_id = -1;
    s->pk = PR_NONE;
    s->params = json_incref(params);
    char buf[600];
    const char *why = svc_spawn(s, buf, sizeof(buf));
    if (why) {
        sp_ext_error(id, SP_RPC_EXEC, "%s", why);
        S.sv[slot] = s;
        svc_free(slot);
        return;
    }
    if (timeout > 0)
        s->deadline = sp_now_us() + (uint64_t)(timeout * 1e6);
    S.sv[slot] = s;
    sp_ext_reply(id, job_json(s, true));
}

static bool sp_job_handle(json_int_t id, const char *method, json_t *params)
{
    const char *m = method + 4;
    if (id < 0)
        return true;
    if (strcmp(m, "start") == 0) {
        if (S.shutting_down)
            sp_ext_error(id, SP_RPC_GONE, "the workspace is stopping");
        else
            job_start(id, params);
        return true;
    }
    if (strcmp(m, "list") == 0) {
        json_t *a = json_array();
        for (int want = 1; want <= S.next_job; want++) {
            struct service *s = find_job(want, NULL);
            if (s)
                json_array_append_new(a, job_json(s, false));
        }
        sp_ext_reply(id, json_pack("{s:o}", "jobs", a));
        return true;
    }
    if (strcmp(m, "status") && strcmp(m, "logs") && strcmp(m, "wait") &&
        strcmp(m, "write") && strcmp(m, "signal") && strcmp(m, "remove"))
        return false;
    sp_error err = {0};
    double job = 0;
    if (sp_proto_get_number(params, "job", true, 1, 1e9, &job,
                            &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return true;
    }
    size_t slot = 0;
    struct service *s = find_job((json_int_t)job, &slot);
    if (!s) {
        sp_ext_error(id, SP_RPC_PARAMS,
                     "no background exec %.0f in this workspace", job);
        return true;
    }
    if (strcmp(m, "status") == 0) {
        sp_ext_reply(id, job_json(s, true));
    } else if (strcmp(m, "logs") == 0) {
        do_logs(id, s, params);
    } else if (strcmp(m, "wait") == 0) {
        double wait = 0;
        if (sp_proto_get_number(params, "wait", false, 0, SP_EXT_MAX_WAIT,
                                &wait, &err) < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
            return true;
        }
        sp_ext_read(id, &s->done, s, 2, 0, 1, wait, st_final(s->state),
                    job_status);
    } else if (strcmp(m, "write") == 0) {
        const char *data = "";
        json_t *eof = json_object_get(params, "eof");
        if (sp_proto_get_string(params, "data", false, SP_PROTO_MAX_LINE,
                                &data, &err) < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
            return true;
        }
        if (eof && !json_is_boolean(eof)) {
            sp_ext_error(id, SP_RPC_PARAMS, "eof must be true or false");
            return true;
        }
        if (s->in_fd < 0 || s->in_eof) {
            sp_ext_error(id, SP_RPC_GONE,
                         "background exec %d's stdin is closed%s", s->job,
                         st_final(s->state) ? " (it has ended)"
                         : json_is_true(json_object_get(s->params, "stdin"))
                             ? ""
                             : " (start it with stdin to write to it)");
            return true;
        }
        size_t dl = strlen(data);
        if (dl / 4 * 3 > SP_JOB_INPUT_MAX - s->in_len) {
            sp_ext_error(id, SP_RPC_BUSY,
                         "background exec %d is not reading its input (%zu "
                         "bytes queued)", s->job, s->in_len);
            return true;
        }
        if (!s->in && !(s->in = malloc(SP_JOB_INPUT_MAX))) {
            sp_ext_error(id, SP_RPC_INTERNAL, "out of memory");
            return true;
        }
        long n = sp_b64_decode(data, dl, s->in + s->in_len);
        if (n < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "\"data\" is not base64");
            return true;
        }
        s->in_len += (size_t)n;
        s->in_eof = json_is_true(eof);
        job_flush_input(s, 0);
        sp_ext_reply(id, json_pack("{s:I,s:I,s:b}", "written", (json_int_t)n,
                                   "queued", (json_int_t)s->in_len,
                                   "stdin_open", s->in_fd >= 0 && !s->in_eof));
    } else if (strcmp(m, "signal") == 0) {
        double sig = SIGKILL;
        if (sp_proto_get_number(params, "signal", false, 1, 64, &sig, &err) < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
            return true;
        }
        if (!s->pid) {
            sp_ext_error(id, SP_RPC_GONE, "background exec %d has ended",
                         s->job);
            return true;
        }
        if ((int)sig == SIGKILL || (int)sig == SIGTERM)
            s->stopped_by = (int)sig == SIGKILL ? "KILL" : "TERM";
        svc_signal(s, (int)sig);
        if ((int)sig != SIGKILL && (int)sig != SIGCONT)
            svc_signal(s, SIGCONT);
        sp_ext_reply(id, job_json(s, true));
    } else {
        if (!st_final(s->state)) {
            sp_ext_error(id, SP_RPC_BUSY,
                         "background exec %d is still running: kill it "
                         "first", s->job);
            return true;
        }
        int n = s->job;
        svc_free(slot);
        sp_ext_reply(id, json_pack("{s:i,s:b}", "job", n, "removed", 1));
    }
    return true;
}

const struct sp_agent_module sp_agent_job_module = {
    .prefix = "job.",
    .handle = sp_job_handle,
};
