/* pool.c — warm pools of workspaces (pool.h, docs/pool.md). The owner (a
 * serve or mcp process) forks a keeper that creates pooled workspaces one
 * at a time and reports each on a pipe ("B" began, "R SLOT" ready,
 * "F MESSAGE" failed); the owner writes one byte on another pipe per slot
 * taken or found gone, and closes it to end the pool. Taking is a rename
 * and one request to the slot's supervisor: no fork, no namespace work. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "proto.h"
#include "state.h"
#include "util.h"
#include "wsctl.h"

struct sp_pool {
    unsigned n;
    pid_t keeper;
    int ctl_wr;                /* owner -> keeper: a byte per slot used */
    int rep_rd;                /* keeper -> owner: B / R slot / F msg */
    char prefix[48];           /* ".pool-<owner pid>-" */
    json_t *shape;             /* the pool's policy, narrowables removed */
    json_t *limits;            /* the pool's policy's limits */
    char **ready;              /* slots reported ready, oldest first */
    size_t n_ready;
    unsigned refilling;
    unsigned long long hits, misses;
    char last_error[1024];
    char rbuf[4096];
    size_t rlen;
};

static const char *const narrowable[] = {"memory", "pids", "cpus", NULL};

/* The policy as JSON without what a take may change or what is per
 * workspace: the comparison key of "satisfies". */
static json_t *shape_of(const sp_policy *p, json_t **limits, sp_error *err)
{
    char *t = sp_policy_to_json(p, err);
    json_t *o = t ? json_loads(t, 0, NULL) : NULL;
    free(t);
    if (!o) {
        if (t)
            sp_error_set(err, ENOMEM, "policy");
        return NULL;
    }
    json_object_del(o, "workspace");
    json_object_del(o, "pool");
    json_object_del(o, "system_paths_ro");
    json_t *l = json_object_get(o, "limits");
    if (limits)
        *limits = json_deep_copy(l);
    for (size_t i = 0; narrowable[i]; i++)
        json_object_del(l, narrowable[i]);
    return o;
}

static int root_fd(char *statedir, size_t len, sp_error *err)
{
    int r = sp_state_dir(statedir, len, err);
    if (r < 0)
        return r;
    char root[SP_MAX_PATH + 16];
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open %s", root);
    return fd;
}

/* Send "stop" to the supervisor of workspaces/<n> and go on (it removes
 * a pooled workspace itself once stopped). */
static void stop_slot(int rootfd, const char *n)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int k = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s/%s",
                     rootfd, n, SP_WS_SOCKET);
    if (k < 0 || (size_t)k >= sizeof(sa.sun_path))
        return;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        char *line = sp_proto_request(NULL, "stop", NULL);
        if (line)
            sp_proto_send(fd, line, strlen(line), NULL, 0);
        free(line);
    }
    close(fd);
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    for (int i = 0; i < n; i++)
        if (buf[i] == '\n')
            buf[i] = ' ';
    buf[n++] = '\n';
    if (write(fd, buf, (size_t)n) < 0) {
        /* the owner is gone: the next read of ctl says so */
    }
}

/* ---- the keeper ---------------------------------------------------------- */

static _Noreturn void keeper_main(const sp_policy *p, unsigned want,
                                  const char *prefix, pid_t owner, int ctl_rd,
                                  int rep_wr)
{
    prctl(PR_SET_NAME, "sandpit-pool", 0, 0, 0);
    int ofd = (int)syscall(SYS_pidfd_open, owner, 0);
    if (ofd < 0 || getppid() != owner) {
        say(rep_wr, "F the pool keeper cannot watch its owner: %s",
            ofd < 0 ? strerror(errno) : "it exited");
        _exit(1);
    }
    char sd[SP_MAX_PATH];
    int rootfd = root_fd(sd, sizeof(sd), NULL);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
    }
    int keep[] = {ofd, ctl_rd, rep_wr, rootfd, 2};
    sp_close_all_except(keep, SP_ARRAY_SIZE(keep), 3);
    sigset_t none;
    sigemptyset(&none);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_SETMASK, &none, NULL);

    unsigned have = 0, backoff = 0;
    uint64_t next_at = 0;
    bool done = false;
    while (!done) {
        uint64_t now = sp_now_us();
        int timeout = -1;
        if (have < want)
            timeout = next_at <= now ? 0 : (int)((next_at - now + 999) / 1000);
        struct pollfd pf[2] = {{ctl_rd, POLLIN, 0}, {ofd, POLLIN, 0}};
        int pr = poll(pf, 2, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break; /* the owner exited */
        if (pf[0].revents) {
            char b[256];
            ssize_t k = read(ctl_rd, b, sizeof(b));
            if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
                break; /* closed: the pool ends */
            for (ssize_t i = 0; i < k; i++)
                if (have > 0)
                    have--;
            /* Let the holder's first requests run before the refill. */
            uint64_t soon = sp_now_us() + SP_POOL_REFILL_DELAY_MS * 1000u;
            if (next_at < soon)
                next_at = soon;
            continue;
        }
        if (have >= want || sp_now_us() < next_at)
            continue;
        unsigned char r[4] = {0};
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            uint64_t t = sp_now_us();
            memcpy(r, &t, sizeof(r));
        }
        char slot[SP_WS_NAME_MAX + 1];
        snprintf(slot, sizeof(slot), "%s%02x%02x%02x%02x", prefix, r[0], r[1],
                 r[2], r[3]);
        say(rep_wr, "B");
        uint64_t t0 = sp_now_us();
        sp_error err = {0};
        int cr = sp_ws_create_slot(p, slot, ofd, &err);
        uint64_t dt = sp_now_us() - t0;
        if (cr == 0) {
            have++;
            backoff = 0;
            say(rep_wr, "R %s", slot);
            uint64_t gap = dt > SP_POOL_REFILL_GAP_MS * 1000u
                               ? dt
                               : SP_POOL_REFILL_GAP_MS * 1000u;
            next_at = sp_now_us() + gap;
        } else {
            say(rep_wr, "F %s", err.message);
            backoff = backoff ? (backoff >= 30000 ? 30000 : backoff * 2) : 100;
            next_at = sp_now_us() + (uint64_t)backoff * 1000u;
        }
    }
    /* Stop what is still pooled; each removes itself. */
    if (rootfd >= 0) {
        DIR *d = fdopendir(openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                stop_slot(rootfd, de->d_name);
        if (d)
            closedir(d);
    }
    _exit(0);
}

/* ---- the owner ----------------------------------------------------------- */

int sp_pool_start(const sp_policy *p, unsigned n, struct sp_pool **ret,
                  sp_error *err)
{
    if (n < 1 || n > SP_POOL_MAX)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "pool size %u: use 1 to %d", n, SP_POOL_MAX);
    struct sp_pool *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return sp_error_set(err, ENOMEM, "pool");
    pl->n = n;
    pl->ctl_wr = pl->rep_rd = -1;
    snprintf(pl->prefix, sizeof(pl->prefix), "%s%d-", SP_POOL_SLOT_PREFIX,
             (int)getpid());
    if (!(pl->shape = shape_of(p, &pl->limits, err)) ||
        !(pl->ready = calloc(SP_POOL_MAX, sizeof(*pl->ready)))) {
        sp_pool_free(pl);
        return err && err->message[0] ? -SP_EFAIL
                                       : sp_error_set(err, ENOMEM, "pool");
    }
    /* What owners killed with SIGKILL left (their supervisors exited). */
    char sd[SP_MAX_PATH];
    int rootfd = root_fd(sd, sizeof(sd), err);
    if (rootfd < 0) {
        sp_pool_free(pl);
        return rootfd;
    }
    DIR *d = fdopendir(rootfd);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, SP_POOL_SLOT_PREFIX,
                    strlen(SP_POOL_SLOT_PREFIX)) == 0)
            sp_pool_slot_reap(dirfd(d), de->d_name);
    if (d)
        closedir(d);
    else
        close(rootfd);

    int ctl[2], rep[2];
    if (pipe2(ctl, O_CLOEXEC) < 0) {
        sp_pool_free(pl);
        return sp_error_set(err, errno, "pipe");
    }
    if (pipe2(rep, O_CLOEXEC) < 0) {
        int e = errno;
        close(ctl[0]);
        close(ctl[1]);
        sp_pool_free(pl);
        return sp_error_set(err, e, "pipe");
    }
    pid_t owner = getpid();
    pid_t c = fork();
    if (c < 0) {
        int e = errno;
        close(ctl[0]);
        close(ctl[1]);
        close(rep[0]);
        close(rep[1]);
        sp_pool_free(pl);
        return sp_error_set(err, e, "cannot fork the pool keeper");
    }
    if (c == 0) {
        close(ctl[1]);
        close(rep[0]);
        keeper_main(p, n, pl->prefix, owner, ctl[0], rep[1]);
    }
    close(ctl[0]);
    close(rep[1]);
    pl->keeper = c;
    pl->ctl_wr = ctl[1];
    pl->rep_rd = rep[0];
    fcntl(pl->rep_rd, F_SETFL, O_NONBLOCK);
    fcntl(pl->ctl_wr, F_SETFL, O_NONBLOCK);
    *ret = pl;
    return 0;
}

/* What the keeper said since the last call. */
static void drain(struct sp_pool *pl)
{
    for (;;) {
        ssize_t k = read(pl->rep_rd, pl->rbuf + pl->rlen,
                         sizeof(pl->rbuf) - 1 - pl->rlen);
        if (k <= 0)
            break;
        pl->rlen += (size_t)k;
        char *s = pl->rbuf, *e;
        while ((e = memchr(s, '\n', pl->rlen - (size_t)(s - pl->rbuf)))) {
            *e = '\0';
            if (s[0] == 'B') {
                pl->refilling++;
            } else if (s[0] == 'R' && s[1] == ' ') {
                if (pl->refilling)
                    pl->refilling--;
                if (pl->n_ready < SP_POOL_MAX &&
                    (pl->ready[pl->n_ready] = strdup(s + 2)))
                    pl->n_ready++;
            } else if (s[0] == 'F') {
                if (pl->refilling)
                    pl->refilling--;
                snprintf(pl->last_error, sizeof(pl->last_error), "%s",
                         s[1] ? s + 2 : "");
            }
            s = e + 1;
        }
        size_t rest = pl->rlen - (size_t)(s - pl->rbuf);
        memmove(pl->rbuf, s, rest);
        pl->rlen = rest;
        if (pl->rlen == sizeof(pl->rbuf) - 1)
            pl->rlen = 0; /* a line that long is not the keeper's */
    }
}

static void used_one(struct sp_pool *pl)
{
    if (write(pl->ctl_wr, "t", 1) < 0) {
        /* full (the keeper is far behind) or gone: nothing to do */
    }
}

/* Does `want` fit the pool: the same policy, limits at most the pool's? */
static bool fits(struct sp_pool *pl, const sp_policy *want, json_t **ret_pol,
                 const char **why)
{
    json_t *wl = NULL;
    json_t *w = shape_of(want, &wl, NULL);
    bool ok = w && json_equal(w, pl->shape);
    if (!ok)
        *why = "the requested policy differs from the pool's";
    for (size_t i = 0; ok && narrowable[i]; i++) {
        json_t *pv = json_object_get(pl->limits, narrowable[i]);
        json_t *wv = json_object_get(wl, narrowable[i]);
        double pn = json_number_value(pv), wn = json_number_value(wv);
        if (pn > 0 && (wn <= 0 || wn > pn)) {
            ok = false;
            *why = "a limit is wider than the pool's";
        }
        /* Only what differs is written into the cgroup. */
        if (json_equal(pv, wv) || (!pv && wn <= 0))
            json_object_del(wl, narrowable[i]);
    }
    json_decref(w);
    if (ok)
        *ret_pol = wl;
    else
        json_decref(wl);
    return ok;
}

static void random_name(char *buf, size_t len)
{
    unsigned char r[3] = {0};
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = sp_now_us() ^ (uint64_t)getpid();
        memcpy(r, &t, sizeof(r));
    }
    snprintf(buf, len, "ws-%02x%02x%02x", r[0], r[1], r[2]);
}

/* One request to a supervisor and its reply (bounded wait). */
static int adopt(const char *name, json_t *params, sp_error *err)
{
    int fd = sp_ws_connect_fd(name, err);
    if (fd < 0)
        return fd;
    json_t *id = json_integer(1);
    char *line = sp_proto_request(id, "pool_adopt", json_incref(params));
    json_decref(id);
    int r = line ? sp_proto_send(fd, line, strlen(line), NULL, 0)
                 : sp_error_set(err, ENOMEM, "request");
    free(line);
    if (r < 0) {
        close(fd);
        return sp_error_set(err, -r, "workspace %s", name);
    }
    char buf[2048];
    size_t n = 0;
    uint64_t until = sp_now_us() + 5000000u;
    while (n < sizeof(buf) - 1 && !memchr(buf, '\n', n)) {
        uint64_t now = sp_now_us();
        struct pollfd p = {fd, POLLIN, 0};
        if (now >= until || poll(&p, 1, (int)((until - now) / 1000) + 1) <= 0)
            break;
        ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    char *e = memchr(buf, '\n', n);
    if (!e)
        return sp_error_setk(err, SP_ERR_SYSTEM, EPROTO,
                             "workspace %s: no answer from the pooled "
                             "supervisor", name);
    struct sp_proto_msg m;
    if (sp_proto_parse(buf, (size_t)(e - buf), &m, err) < 0)
        return -SP_EFAIL;
    r = m.is_error ? sp_error_setk(err, SP_ERR_SYSTEM, 0, "%s",
                                   m.err_message ? m.err_message : "refused")
                   : 0;
    sp_proto_msg_free(&m);
    return r;
}

int sp_pool_take(struct sp_pool *pl, const sp_policy *want, const char *name,
                 double idle_timeout, double max_lifetime, char *ret_name,
                 size_t ret_len, const char **why, sp_error *err)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!pl)
        return 0;
    if (name && !sp_ws_name_valid(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid workspace name '%.80s'", name);
    drain(pl);
    json_t *wl = NULL;
    if (!fits(pl, want, &wl, why)) {
        pl->misses++;
        return 0;
    }
    char sd[SP_MAX_PATH], target[SP_WS_NAME_MAX + 1];
    _cleanup_close_ int rootfd = root_fd(sd, sizeof(sd), err);
    if (rootfd < 0) {
        json_decref(wl);
        return rootfd;
    }
    int r = 0;
    while (pl->n_ready > 0) {
        char *slot = pl->ready[0];
        memmove(pl->ready, pl->ready + 1, (pl->n_ready - 1) * sizeof(char *));
        pl->n_ready--;
        if (name)
            snprintf(target, sizeof(target), "%s", name);
        else
            random_name(target, sizeof(target));
        /* The claim: atomic, and never over an existing workspace. */
        if (syscall(SYS_renameat2, rootfd, slot, rootfd, target,
                    1 /* RENAME_NOREPLACE */) < 0) {
            int e = errno;
            if (e == EEXIST) {
                /* Back into the pool, untouched. */
                memmove(pl->ready + 1, pl->ready, pl->n_ready * sizeof(char *));
                pl->ready[0] = slot;
                pl->n_ready++;
                if (name) {
                    json_decref(wl);
                    return sp_error_setk(err, SP_ERR_USAGE, EEXIST,
                                         "workspace %s already exists", name);
                }
                continue; /* a generated name in use: another */
            }
            used_one(pl);
            free(slot); /* gone (its owner's end, a crash): the next */
            continue;
        }
        /* Its stored policy, as a fresh create stores it. */
        char datadir[SP_MAX_PATH * 2];
        snprintf(datadir, sizeof(datadir), "%s/%s/%s/%s", sd, SP_WS_DIR, target,
                 SP_WS_DATA);
        char *pj = sp_policy_to_json(want, err);
        sp_policy *wp = NULL;
        char *stored = NULL;
        if (pj && sp_ws_policy_from_json(pj, datadir, &wp, err) == 0)
            stored = sp_policy_to_json(wp, err);
        free(pj);
        sp_policy_free(wp);
        json_t *params = json_pack("{s:s,s:f,s:f,s:O?,s:o?}", "name", target,
                                   "idle_timeout", idle_timeout,
                                   "max_lifetime", max_lifetime, "limits", wl,
                                   "policy",
                                   stored ? json_loads(stored, 0, NULL) : NULL);
        free(stored);
        sp_error aerr = {0};
        r = params && json_object_get(params, "policy")
                ? adopt(target, params, &aerr)
                : sp_error_set(&aerr, ENOMEM, "pool");
        json_decref(params);
        /* Only now is the keeper told: its refill does not compete with
         * the handing out. */
        used_one(pl);
        if (r < 0) {
            /* Not handed out: it goes, the name is free again, and the
             * caller creates a fresh one. */
            snprintf(pl->last_error, sizeof(pl->last_error), "%s",
                     aerr.message);
            sp_ws_rm(target, true, NULL);
            free(slot);
            *why = "the pooled workspace could not be narrowed";
            break;
        }
        free(slot);
        json_decref(wl);
        snprintf(ret_name, ret_len, "%s", target);
        pl->hits++;
        return 1;
    }
    json_decref(wl);
    if (!*why)
        *why = "the pool is empty";
    pl->misses++;
    return 0;
}

json_t *sp_pool_stats(struct sp_pool *pl)
{
    if (!pl)
        return json_null();
    drain(pl);
    bool alive = pl->keeper > 0 && waitpid(pl->keeper, NULL, WNOHANG) == 0;
    if (!alive)
        pl->keeper = -1;
    return json_pack("{s:i,s:I,s:i,s:I,s:I,s:b,s:s?}", "size", (int)pl->n,
                     "ready", (json_int_t)pl->n_ready, "refilling",
                     (int)pl->refilling, "hits", (json_int_t)pl->hits,
                     "misses", (json_int_t)pl->misses, "keeper", alive,
                     "last_error", pl->last_error[0] ? pl->last_error : NULL);
}

void sp_pool_free(struct sp_pool *pl)
{
    if (!pl)
        return;
    if (pl->ctl_wr >= 0)
        close(pl->ctl_wr); /* the keeper stops the pooled ones and exits */
    if (pl->keeper > 0)
        waitpid(pl->keeper, NULL, 0);
    if (pl->rep_rd >= 0)
        close(pl->rep_rd);
    for (size_t i = 0; i < pl->n_ready; i++)
        free(pl->ready[i]);
    free(pl->ready);
    json_decref(pl->shape);
    json_decref(pl->limits);
    free(pl);
}

json_t *sp_pool_scan(sp_error *err)
{
    char sd[SP_MAX_PATH];
    int rootfd = root_fd(sd, sizeof(sd), err);
    if (rootfd < 0)
        return NULL;
    DIR *d = fdopendir(rootfd);
    if (!d) {
        close(rootfd);
        sp_error_set(err, errno, "cannot read the workspaces");
        return NULL;
    }
    json_t *owners = json_array();
    int slots = 0, ready = 0;
    struct dirent *de;
    size_t pl = strlen(SP_POOL_SLOT_PREFIX);
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, SP_POOL_SLOT_PREFIX, pl))
            continue;
        int fd = openat(dirfd(d), de->d_name,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        slots++;
        struct sp_ws_state st;
        if (sp_state_read(fd, &st, NULL) == 0) {
            ready += strcmp(st.state, "running") == 0;
            sp_state_free(&st);
        }
        close(fd);
        long owner = strtol(de->d_name + pl, NULL, 10);
        bool seen = false;
        size_t i;
        json_t *v;
        json_array_foreach(owners, i, v) seen |= json_integer_value(v) == owner;
        if (!seen)
            json_array_append_new(owners, json_integer(owner));
    }
    closedir(d);
    return json_pack("{s:i,s:i,s:o}", "slots", slots, "ready", ready, "owners",
                     owners);
}

/* ---- the per-user pool of `run --pool` ----------------------------------- */

#define RUN_LOCK "pool-run.lock"

/* ".pool-PID-rXXXXXXXX": a ready slot of a run pool (a serve pool's slots
 * end in 8 hex digits, which never hold an 'r'). */
static bool run_ready_name(const char *n, pid_t *owner)
{
    size_t pl = strlen(SP_POOL_SLOT_PREFIX);
    if (strncmp(n, SP_POOL_SLOT_PREFIX, pl))
        return false;
    char *e = NULL;
    long p = strtol(n + pl, &e, 10);
    if (!e || e[0] != '-' || e[1] != 'r' || strlen(e + 2) != 8)
        return false;
    if (owner)
        *owner = (pid_t)p;
    return true;
}

static _Noreturn void run_keeper_main(int lockfd)
{
    prctl(PR_SET_NAME, "sandpit-pool", 0, 0, 0);
    char sd[SP_MAX_PATH];
    int rootfd = root_fd(sd, sizeof(sd), NULL);
    int ofd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    char root[SP_MAX_PATH + 16];
    snprintf(root, sizeof(root), "%s/%s", sd, SP_WS_DIR);
    if (rootfd < 0 || ofd < 0 || ino < 0 ||
        inotify_add_watch(ino, root, IN_MOVED_FROM | IN_DELETE) < 0)
        _exit(1);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
    }
    int keep[] = {rootfd, ofd, ino, lockfd};
    sp_close_all_except(keep, SP_ARRAY_SIZE(keep), 3);
    if (chdir("/") < 0)
        _exit(1);
    char pid[24];
    int pn = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(lockfd, 0) < 0 || pwrite(lockfd, pid, (size_t)pn, 0) < 0) {
        /* the pid is for people; the lock is what counts */
    }
    sp_policy *p = sp_policy_new();
    if (!p)
        _exit(1);
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "%s%d-", SP_POOL_SLOT_PREFIX,
             (int)getpid());
    uint64_t last_take = sp_now_us(), next_at = 0;
    unsigned backoff = 0;
    for (;;) {
        /* How many are ours (ready or being made)? */
        unsigned have = 0;
        DIR *d = fdopendir(openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        struct dirent *de;
        while (d && (de = readdir(d)))
            have += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
        if (d)
            closedir(d);
        uint64_t now = sp_now_us();
        uint64_t idle_end = last_take + (uint64_t)SP_POOL_RUN_IDLE * 1000000u;
        if (now >= idle_end)
            break;
        if (have < SP_POOL_RUN_SIZE && now >= next_at) {
            unsigned char r[4] = {0};
            if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
                memcpy(r, &now, sizeof(r));
            char slot[SP_WS_NAME_MAX + 1], ready[SP_WS_NAME_MAX + 1];
            snprintf(slot, sizeof(slot), "%sc%02x%02x%02x%02x", prefix, r[0],
                     r[1], r[2], r[3]);
            snprintf(ready, sizeof(ready), "%sr%02x%02x%02x%02x", prefix,
                     r[0], r[1], r[2], r[3]);
            uint64_t t0 = sp_now_us();
            if (sp_ws_create_slot(p, slot, ofd, NULL) == 0 &&
                renameat(rootfd, slot, rootfd, ready) == 0) {
                uint64_t dt = sp_now_us() - t0;
                backoff = 0;
                next_at = sp_now_us() +
                          (dt > SP_POOL_REFILL_GAP_MS * 1000u
                               ? dt
                               : SP_POOL_REFILL_GAP_MS * 1000u);
            } else {
                backoff = backoff ? (backoff >= 30000 ? 30000 : backoff * 2)
                                  : 100;
                next_at = sp_now_us() + (uint64_t)backoff * 1000u;
            }
            continue;
        }
        uint64_t until = idle_end;
        if (have < SP_POOL_RUN_SIZE && next_at < until)
            until = next_at;
        struct pollfd pf = {ino, POLLIN, 0};
        int to = until <= now ? 0 : (int)((until - now + 999) / 1000);
        if (poll(&pf, 1, to) > 0) {
            char ev[4096] __attribute__((aligned(8)));
            ssize_t k;
            while ((k = read(ino, ev, sizeof(ev))) > 0) {
                for (char *q = ev; q < ev + k;) {
                    struct inotify_event *ie = (struct inotify_event *)q;
                    if (ie->len && (ie->mask & IN_MOVED_FROM) &&
                        strncmp(ie->name, prefix, strlen(prefix)) == 0) {
                        last_take = sp_now_us(); /* a take */
                        uint64_t soon = last_take +
                                        SP_POOL_REFILL_DELAY_MS * 1000u;
                        if (next_at < soon)
                            next_at = soon;
                    }
                    q += sizeof(*ie) + ie->len;
                }
            }
        }
    }
    /* Idle: the pool ends; each pooled supervisor sees us exit too. */
    DIR *d = fdopendir(openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            stop_slot(rootfd, de->d_name);
    if (d)
        closedir(d);
    _exit(0);
}

int sp_pool_run_ensure(sp_error *err)
{
    char sd[SP_MAX_PATH];
    int r = sp_state_dir(sd, sizeof(sd), err);
    if (r < 0)
        return r;
    char path[SP_MAX_PATH + 32];
    snprintf(path, sizeof(path), "%s/%s", sd, RUN_LOCK);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return errno == EWOULDBLOCK ? 0 : sp_error_set(err, errno, "%s", path);
    }
    pid_t c = fork();
    if (c < 0) {
        int e = errno;
        close(fd);
        return sp_error_set(err, e, "cannot fork the pool keeper");
    }
    if (c == 0) {
        setsid();
        pid_t g = fork();
        if (g != 0)
            _exit(g < 0 ? 1 : 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_IGN);
        run_keeper_main(fd);
    }
    close(fd); /* the keeper holds the lock */
    waitpid(c, NULL, 0);
    return 1;
}

int sp_pool_run_take(char *ret_name, size_t ret_len, sp_error *err)
{
    char sd[SP_MAX_PATH];
    _cleanup_close_ int rootfd = root_fd(sd, sizeof(sd), err);
    if (rootfd < 0)
        return rootfd;
    int dfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return 0;
    }
    struct dirent *de;
    int got = 0;
    char target[SP_WS_NAME_MAX + 1];
    while (!got && (de = readdir(d))) {
        if (!run_ready_name(de->d_name, NULL))
            continue;
        unsigned char r[3] = {0};
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            uint64_t t = sp_now_us();
            memcpy(r, &t, sizeof(r));
        }
        snprintf(target, sizeof(target), "run-%d-%02x%02x%02x", (int)getpid(),
                 r[0], r[1], r[2]);
        if (syscall(SYS_renameat2, rootfd, de->d_name, rootfd, target,
                    1 /* RENAME_NOREPLACE */) == 0)
            got = 1; /* ours; another run took the others first */
    }
    closedir(d);
    if (!got)
        return 0;
    json_t *params = json_pack("{s:s,s:b,s:f}", "name", target, "oneshot", 1,
                               "idle_timeout", (double)SP_POOL_RUN_IDLE);
    sp_error aerr = {0};
    int r = params ? adopt(target, params, &aerr)
                   : sp_error_set(&aerr, ENOMEM, "pool");
    json_decref(params);
    if (r < 0) {
        sp_ws_rm(target, true, NULL);
        return 0;
    }
    snprintf(ret_name, ret_len, "%s", target);
    return 1;
}
