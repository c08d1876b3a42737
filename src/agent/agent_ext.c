/* agent_ext.c — what the agent's shells and services share (agent_ext.h):
 * the hooks agent.c calls, replies, environments, and reads of a ring
 * that wait for output ("long polls") parked until bytes arrive. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent_ext.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "envbuild.h"
#include "proto.h"
#include "ring.h"
#include "util.h"

struct waiter {
    json_int_t id;
    struct sp_ring *ring;
    void *target;
    int stream;
    uint64_t cursor;
    size_t max;
    uint64_t deadline;
    sp_ext_status_fn status;
    /* A read "until" (sp_ext_read_until): answered when the output since
     * cursor matches re, or after quiet_us without new output, or at
     * final (the wait); deadline is the nearer of the last two. */
    regex_t *re;
    uint64_t quiet_us, final;
    bool until;
};

static struct {
    const struct sp_agent_cfg *cfg;
    struct waiter waiters[SP_EXT_MAX_WAITERS];
    size_t n_waiters;
    const struct sp_agent_module *const *mods;
    size_t n_mods;
    size_t n_fds[SP_AGENT_MODULES_MAX]; /* each module's share of pollfds */
    int gate_fd;
    bool shutting_down;
    uint64_t shutdown_deadline;
} X;

static _Noreturn void ext_exit(void)
{
    kill(-1, SIGKILL);
    _exit(0);
}

void sp_ext_send(char *line)
{
    if (!line)
        return;
    int r = sp_proto_send(X.cfg->sock, line, strlen(line), NULL, 0);
    free(line);
    if (r < 0)
        ext_exit();
}

void sp_ext_send_fds(char *line, const int *fds, size_t n)
{
    if (!line)
        return;
    int r = sp_proto_send(X.cfg->sock, line, strlen(line), fds, n);
    free(line);
    if (r < 0)
        ext_exit();
}

void sp_ext_reply(json_int_t id, json_t *result)
{
    json_t *jid = json_integer(id);
    sp_ext_send(sp_proto_result(jid, result ? result : json_object()));
    json_decref(jid);
}

void sp_ext_error(json_int_t id, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *jid = json_integer(id);
    sp_ext_send(sp_proto_error(jid, code, "%s", msg));
    json_decref(jid);
}

char **sp_ext_base_env(void)
{
    return X.cfg->envp;
}

const char *sp_ext_path_env(void)
{
    return X.cfg->path_env;
}

char **sp_ext_env(json_t *params, const char *key, bool want_term,
                  const char **why)
{
    const char **extra = NULL;
    sp_error err = {0};
    *why = NULL;
    if (sp_proto_get_strv(params, key, false, 0, SP_MAX_ENV, SP_MAX_ENV_LEN,
                          &extra, &err) < 0) {
        *why = "env must be an array of K=V strings";
        return NULL;
    }
    size_t nb = 0, ne = 0;
    while (X.cfg->envp && X.cfg->envp[nb])
        nb++;
    while (extra && extra[ne])
        ne++;
    char **env = calloc(nb + ne + 2, sizeof(*env));
    if (!env) {
        free(extra);
        *why = "out of memory";
        return NULL;
    }
    if (nb)
        memcpy(env, X.cfg->envp, nb * sizeof(*env));
    size_t n = nb;
    for (size_t i = 0; i < ne; i++) {
        const char *eq = strchr(extra[i], '=');
        if (!eq || eq == extra[i]) {
            free(extra);
            free(env);
            *why = "env entries must be K=V with a non-empty K";
            return NULL;
        }
        size_t klen = (size_t)(eq - extra[i]) + 1;
        size_t k = 0;
        for (; k < n; k++)
            if (strncmp(env[k], extra[i], klen) == 0)
                break;
        env[k] = (char *)extra[i];
        if (k == n)
            n++;
    }
    if (want_term && !sp_env_get(env, "TERM"))
        env[n++] = (char *)"TERM=xterm-256color";
    env[n] = NULL;
    /* The strings stay borrowed from params: the array alone is freed. */
    free(extra);
    return env;
}

bool sp_ext_which(const char *name, const char *path)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char full[SP_MAX_PATH];
        if (n && n + strlen(name) + 2 < sizeof(full)) {
            snprintf(full, sizeof(full), "%.*s/%s", (int)n, path, name);
            struct stat sb;
            if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode) &&
                access(full, X_OK) == 0)
                return true;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

void sp_ext_kill_session(pid_t sid, int sig)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (!end || *end || pid <= 1)
            continue;
        struct sp_proc_stat ps;
        if (sp_proc_stat(dirfd(d), pid, &ps) == 0 && ps.session == sid)
            kill((pid_t)pid, sig);
    }
    closedir(d);
}

/* ---- reads that wait ---- */

static void answer(struct waiter *w)
{
    if (w->re) {
        regfree(w->re);
        free(w->re);
        w->re = NULL;
    }
    size_t max = w->max;
    char *raw = malloc(max ? max : 1);
    char *b64 = malloc(sp_b64_encoded_len(max) + 1);
    if (!raw || !b64) {
        free(raw);
        free(b64);
        sp_ext_error(w->id, SP_RPC_INTERNAL, "out of memory");
        return;
    }
    uint64_t from = 0, dropped = 0;
    size_t n = sp_ring_read(w->ring, w->cursor, max, raw, &from, &dropped);
    sp_b64_encode(raw, n, b64);
    json_t *r = json_object();
    json_object_set_new(r, "cursor", json_integer((json_int_t)w->cursor));
    json_object_set_new(r, "next_cursor", json_integer((json_int_t)(from + n)));
    json_object_set_new(r, "data", json_string(b64));
    json_object_set_new(r, "truncated", json_boolean(dropped > 0));
    json_object_set_new(r, "dropped", json_integer((json_int_t)dropped));
    json_object_set_new(r, "end", json_integer((json_int_t)w->ring->end));
    if (w->status)
        w->status(w->target, w->stream, r);
    free(raw);
    free(b64);
    sp_ext_reply(w->id, r);
}

void sp_ext_read(json_int_t id, struct sp_ring *ring, void *target, int stream,
                 uint64_t cursor, size_t max, double wait, bool ended,
                 sp_ext_status_fn status)
{
    struct waiter w = {id, ring, target, stream, cursor, max, 0, status,
                       NULL, 0, 0, false};
    if (cursor < ring->end || ended || wait <= 0) {
        answer(&w);
        return;
    }
    if (X.n_waiters >= SP_EXT_MAX_WAITERS) {
        sp_ext_error(id, SP_RPC_BUSY, "too many reads waiting (at most %d)",
                     SP_EXT_MAX_WAITERS);
        return;
    }
    w.deadline = sp_now_us() + (uint64_t)(wait * 1e6);
    X.waiters[X.n_waiters++] = w;
}

/* Does the output of w since its cursor (up to max bytes, control
 * sequences stripped) match its regex? */
static bool until_matches(struct waiter *w)
{
    if (!w->re)
        return false;
    char *buf = malloc(w->max + 1);
    if (!buf)
        return false;
    size_t n = sp_ring_read(w->ring, w->cursor, w->max, buf, NULL, NULL);
    n = sp_strip_terminal(buf, n);
    buf[n] = '\0';
    bool m = regexec(w->re, buf, 0, NULL, 0) == 0;
    free(buf);
    return m;
}

int sp_ext_read_until(json_int_t id, struct sp_ring *ring, void *target,
                      int stream, uint64_t cursor, size_t max, double wait,
                      bool ended, sp_ext_status_fn status, double quiet,
                      const char *regex, const char **why)
{
    static char msg[200];
    struct waiter w = {id, ring, target, stream, cursor, max, 0, status,
                       NULL, (uint64_t)(quiet * 1e6), 0, true};
    if (regex && *regex) {
        w.re = malloc(sizeof(*w.re));
        int rc = w.re ? regcomp(w.re, regex, REG_EXTENDED | REG_NOSUB) : -1;
        if (rc != 0) {
            if (w.re && rc > 0) {
                char e[120];
                regerror(rc, w.re, e, sizeof(e));
                snprintf(msg, sizeof(msg), "until is not an extended regular "
                                           "expression (%s)", e);
            } else {
                snprintf(msg, sizeof(msg), "out of memory");
            }
            free(w.re);
            *why = msg;
            return -1;
        }
    }
    uint64_t now = sp_now_us();
    /* Answered now (what there is) when it cannot wait: ended, no wait,
     * a match already, or every waiter slot taken. */
    if (ended || wait <= 0 || until_matches(&w) ||
        X.n_waiters >= SP_EXT_MAX_WAITERS) {
        answer(&w);
        return 0;
    }
    w.final = now + (uint64_t)(wait * 1e6);
    w.deadline = w.quiet_us && now + w.quiet_us < w.final ? now + w.quiet_us
                                                          : w.final;
    X.waiters[X.n_waiters++] = w;
    return 0;
}

void sp_ext_wake(void *target, int stream, bool ended)
{
    for (size_t i = 0; i < X.n_waiters;) {
        struct waiter *w = &X.waiters[i];
        if (w->until && !ended && w->target == target && w->stream == stream &&
            w->cursor < w->ring->end) {
            /* More output: a match answers; else quiet starts again. */
            if (!until_matches(w)) {
                if (w->quiet_us) {
                    uint64_t q = sp_now_us() + w->quiet_us;
                    w->deadline = q < w->final ? q : w->final;
                }
                i++;
                continue;
            }
        }
        if (w->target == target && (w->stream == stream || ended) &&
            (ended || w->cursor < w->ring->end)) {
            struct waiter c = *w;
            X.waiters[i] = X.waiters[--X.n_waiters];
            answer(&c);
            continue;
        }
        i++;
    }
}

void sp_ext_forget(void *target)
{
    for (size_t i = 0; i < X.n_waiters;) {
        if (X.waiters[i].target == target) {
            struct waiter c = X.waiters[i];
            X.waiters[i] = X.waiters[--X.n_waiters];
            answer(&c);
            continue;
        }
        i++;
    }
}

/* ---- the cgroup gate ---- */

void sp_agent_gate(void)
{
    if (X.gate_fd < 0)
        return;
    char c = 0;
    ssize_t n;
    do {
        n = read(X.gate_fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || c != 'x')
        _exit(125); /* no cgroup: nothing may run */
    close(X.gate_fd);
    X.gate_fd = -1;
}

/* ---- the loop's side ---- */

void sp_agent_ext_init(const struct sp_agent_cfg *cfg,
                       const struct sp_agent_module *const *mods, size_t n)
{
    X.cfg = cfg;
    X.gate_fd = cfg->gate_fd;
    X.mods = mods;
    X.n_mods = n < SP_AGENT_MODULES_MAX ? n : SP_AGENT_MODULES_MAX;
    /* The agent starts with 0, 1 and 2 closed: fill them, so no pipe or
     * pty of ours gets a number a child's dup2 onto 0-2 would clobber. */
    for (;;) {
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            break;
        if (fd > 2) {
            close(fd);
            break;
        }
    }
}

/* While stopping: has every module ended what it runs? */
static bool all_stopped(uint64_t now)
{
    bool done = true;
    for (size_t i = 0; i < X.n_mods; i++)
        if (X.mods[i]->stopped && !X.mods[i]->stopped(now))
            done = false;
    return done;
}

bool sp_agent_ext_handle(json_int_t id, const char *method, json_t *params)
{
    if (strcmp(method, "shutdown") == 0) {
        /* The workspace stops: services get their grace, shells a hangup;
         * then PID 1 exits and takes what is left. */
        X.shutting_down = true;
        X.shutdown_deadline =
            sp_now_us() + (uint64_t)((SP_SERVICE_STOP_GRACE + 0.5) * 1e6);
        for (size_t i = 0; i < X.n_mods; i++)
            if (X.mods[i]->shutdown)
                X.mods[i]->shutdown();
        if (all_stopped(sp_now_us()))
            ext_exit();
        return true;
    }
    if (strcmp(method, "cancel") == 0) {
        /* The client of a parked read went away: answer it now rather than
         * hold a waiter slot until its deadline. agent.c handles the rest
         * (execs). */
        json_t *e = params ? json_object_get(params, "exec") : NULL;
        for (size_t i = 0; json_is_integer(e) && i < X.n_waiters; i++)
            if (X.waiters[i].id == json_integer_value(e)) {
                struct waiter c = X.waiters[i];
                X.waiters[i] = X.waiters[--X.n_waiters];
                answer(&c);
                break;
            }
        return false;
    }
    for (size_t i = 0; i < X.n_mods; i++) {
        const struct sp_agent_module *m = X.mods[i];
        if (m->handle &&
            strncmp(method, m->prefix, strlen(m->prefix)) == 0)
            return m->handle(id, method, params);
    }
    return false;
}

size_t sp_agent_ext_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < X.n_mods; i++) {
        X.n_fds[i] = X.mods[i]->pollfds
                         ? X.mods[i]->pollfds(pfd + n, max - n) : 0;
        n += X.n_fds[i];
    }
    return n;
}

void sp_agent_ext_events(const struct pollfd *pfd, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < X.n_mods && at <= n; i++) {
        size_t k = X.n_fds[i] < n - at ? X.n_fds[i] : n - at;
        if (X.mods[i]->events)
            X.mods[i]->events(pfd + at, k);
        at += k;
    }
}

bool sp_agent_ext_reaped(pid_t pid, int status)
{
    bool ours = false;
    for (size_t i = 0; i < X.n_mods && !ours; i++)
        ours = X.mods[i]->reaped && X.mods[i]->reaped(pid, status);
    if (X.shutting_down && all_stopped(sp_now_us()))
        ext_exit();
    return ours;
}

int sp_agent_ext_timeout_ms(uint64_t now)
{
    uint64_t next = 0;
    for (size_t i = 0; i < X.n_waiters; i++)
        if (!next || X.waiters[i].deadline < next)
            next = X.waiters[i].deadline;
    for (size_t i = 0; i < X.n_mods; i++) {
        uint64_t t = X.mods[i]->next_timer ? X.mods[i]->next_timer() : 0;
        if (t && (!next || t < next))
            next = t;
    }
    if (X.shutting_down && (!next || X.shutdown_deadline < next))
        next = X.shutdown_deadline;
    if (!next)
        return -1;
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

void sp_agent_ext_timers(uint64_t now)
{
    for (size_t i = 0; i < X.n_waiters;) {
        if (X.waiters[i].deadline <= now) {
            struct waiter c = X.waiters[i];
            X.waiters[i] = X.waiters[--X.n_waiters];
            answer(&c);
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < X.n_mods; i++)
        if (X.mods[i]->timers)
            X.mods[i]->timers(now);
    if (X.shutting_down && (now >= X.shutdown_deadline || all_stopped(now)))
        ext_exit();
}
