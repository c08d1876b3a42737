/* freeze.c — pause, resume and the freezing that snapshots use
 * (freeze.h, docs/snapshots.md). Freezing finds the workspace's processes
 * by its pid namespace, after checking that the agent pid from state.json
 * is PID 1 of a namespace other than ours and a child of the workspace's
 * supervisor; they are frozen by a cgroup v1 freezer of our own, or with
 * SIGSTOP where there is none. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "freeze.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "sandpit.h"
#include "state.h"
#include "util.h"
#include "layerstore.h"




static int pids_add(struct sp_pids *p, pid_t pid)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        pid_t *nv = realloc(p->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = pid;
    return 0;
}

/* The workspace's agent pid, checked: PID 1 of a pid namespace that is
 * not ours, child of the workspace's live supervisor. */
int sp_freeze_agent_of(int wsfd, const char *name, pid_t *ret, struct sp_tree *ns,
                    sp_error *err)
{
    struct sp_ws_state st;
    int r = sp_state_read(wsfd, &st, err);
    if (r < 0)
        return r;
    pid_t agent = st.agent_pid, sv = st.supervisor_pid;
    bool running = strcmp(st.state, "running") == 0;
    /* The sandbox cgroup lists exactly its processes: cheaper than a scan
     * of /proc (checked below to hold the agent). */
    ns->procs[0] = '\0';
    const char *cgd = json_string_value(json_array_get(st.cgroups, 0));
    if (cgd && strncmp(cgd, "/sys/fs/cgroup/", 15) == 0 && !strstr(cgd, "/.."))
        snprintf(ns->procs, sizeof(ns->procs), "%s/cgroup.procs", cgd);
    sp_state_free(&st);
    if (!running || agent <= 1 || sv <= 1)
        return sp_error_setk(err, SP_ERR_USAGE, ESRCH,
                             "workspace %s is not running", name);
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)agent);
    FILE *f = fopen(path, "re");
    bool ok_parent = false, ok_ns = false;
    if (f) {
        while (fgets(buf, sizeof(buf), f)) {
            int v;
            if (sscanf(buf, "PPid: %d", &v) == 1)
                ok_parent = v == sv;
            if (strncmp(buf, "NSpid:", 6) == 0) {
                char *last = strrchr(buf, '\t');
                ok_ns =
                    last && last != strchr(buf, '\t') && atoi(last + 1) == 1;
            }
        }
        fclose(f);
    }
    if (!ok_parent || !ok_ns)
        return sp_error_setk(err, SP_ERR_SYSTEM, ESRCH,
                             "workspace %s: its agent (pid %d) is not where "
                             "its state says",
                             name, (int)agent);
    ns->agent = agent;
    if (ns->procs[0]) {
        bool has = false;
        FILE *pf = fopen(ns->procs, "re");
        int pid;
        while (pf && !has && fscanf(pf, "%d", &pid) == 1)
            has = pid == agent;
        if (pf)
            fclose(pf);
        if (!has)
            ns->procs[0] = '\0';
    }
    *ret = agent;
    return 0;
}

/* pid's parent from /proc/pid/stat (world-readable, unlike the ns links
 * of a non-dumpable process), or -1. */
static pid_t parent_of(pid_t pid)
{
    struct sp_proc_stat ps;
    return sp_proc_stat(-1, pid, &ps) == 0 ? ps.ppid : -1;
}

/* Is pid the agent or below it? Every process of the workspace's pid
 * namespace is (PID 1 inherits orphans), and nothing else is. */
static bool in_tree(pid_t pid, const struct sp_tree *ns)
{
    for (int i = 0; i < 4096 && pid > 1; i++) {
        if (pid == ns->agent)
            return true;
        pid = parent_of(pid);
    }
    return false;
}

/* Every process of the workspace: the agent and its descendants. */
static int ns_pids(const struct sp_tree *ns, struct sp_pids *out)
{
    out->n = 0;
    FILE *f = ns->procs[0] ? fopen(ns->procs, "re") : NULL;
    if (f) {
        int pid, rc = 0;
        while (rc == 0 && fscanf(f, "%d", &pid) == 1)
            rc = pids_add(out, pid);
        fclose(f);
        return rc;
    }
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    struct sp_pids all = {0}, par = {0};
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1)
            continue;
        pid_t pp = parent_of((pid_t)pid);
        if (pp < 0)
            continue;
        if ((rc = pids_add(&all, (pid_t)pid)) == 0)
            rc = pids_add(&par, pp);
    }
    closedir(d);
    if (rc == 0)
        rc = pids_add(out, ns->agent);
    /* Breadth first from the agent: out grows as children are found. */
    for (size_t k = 0; rc == 0 && k < out->n; k++)
        for (size_t i = 0; rc == 0 && i < all.n; i++)
            if (par.v[i] == out->v[k] && all.v[i] != ns->agent)
                rc = pids_add(out, all.v[i]);
    free(all.v);
    free(par.v);
    return rc;
}

/* The state letter of /proc/pid/stat, or 0. */
static char proc_state(pid_t pid)
{
    struct sp_proc_stat ps;
    return sp_proc_stat(-1, pid, &ps) == 0 ? ps.state : 0;
}

/* Signal pid if it is still the workspace's (through a pidfd, so a
 * recycled pid is never signalled). */
static void signal_in_ns(pid_t pid, const struct sp_tree *ns, int sig)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return;
    if (in_tree(pid, ns))
        syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
    close(pfd);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    return n < 0 ? -e : 0;
}

static bool read_has(const char *path, const char *word)
{
    char buf[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, word) != NULL;
}

/* Our own cgroup path in the v1 freezer hierarchy, or -ENOENT. */
static int own_freezer(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -errno;
    char line[SP_MAX_PATH];
    int rc = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        char *save = NULL;
        for (char *t = strtok_r(c1 + 1, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            if (strcmp(t, "freezer") == 0) {
                int n = snprintf(buf, len, "/sys/fs/cgroup/freezer%s",
                                 strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
                rc = n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
            }
    }
    fclose(f);
    return rc;
}

static int move_pids(const char *dir, const struct sp_pids *p)
{
    char path[SP_MAX_PATH + 32];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < p->n; i++) {
        char s[24];
        int n = snprintf(s, sizeof(s), "%d", (int)p->v[i]);
        if (write(fd, s, (size_t)n) < 0 && errno != ESRCH) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    close(fd);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Remove the empty freezer cgroups of workspaces that are gone (rmdir
 * refuses a cgroup that holds a process, so a live one stays). */
void sp_freeze_sweep(void)
{
    char base[SP_MAX_PATH];
    if (own_freezer(base, sizeof(base)) < 0)
        return;
    DIR *d = opendir(base);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, "sandpit-frz-", 12) == 0)
            unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
    if (d)
        closedir(d);
}

/* Thaw by the marker `how` ("freezer DIR" or "sigstop"); the pids are
 * those of namespace ns (may be NULL: the workspace is gone). */
void sp_freeze_thaw(const char *how, const struct sp_tree *ns)
{
    if (strncmp(how, "freezer /sys/fs/cgroup/", 23) == 0) {
        const char *dir = how + 8;
        char path[SP_MAX_PATH + 32];
        snprintf(path, sizeof(path), "%s/freezer.state", dir);
        write_file(path, "THAWED");
        /* The processes stay in the freezer cgroup (their children are
         * born there: the next freeze has no one to move). Freezer cgroups
         * of workspaces gone are empty: removed here, as rmdir refuses a
         * cgroup that holds a process. */
        sp_freeze_sweep();
    } else if (strcmp(how, "sigstop") == 0 && ns) {
        struct sp_pids p = {0};
        if (ns_pids(ns, &p) == 0)
            for (size_t i = 0; i < p.n; i++)
                signal_in_ns(p.v[i], ns, SIGCONT);
        free(p.v);
    }
}

/* Freeze every process of namespace ns. Fills `how` (the marker text). */
int sp_freeze_ns(const char *name, const struct sp_tree *ns, char *how,
                     size_t how_len, sp_error *err)
{
    struct sp_pids p = {0};
    uint64_t until = sp_now_us() + SP_FREEZE_TIMEOUT_MS * 1000ULL;
    int rc = 0;
    char base[SP_MAX_PATH - 128], dir[SP_MAX_PATH];
    bool cg = own_freezer(base, sizeof(base)) == 0;
    if (cg) {
        snprintf(dir, sizeof(dir), "%s/sandpit-frz-%d", base, (int)ns->agent);
        cg = mkdir(dir, 0700) == 0 || errno == EEXIST;
    }
    if (cg) {
        snprintf(how, how_len, "freezer %s", dir);
        char path[sizeof(dir) + 32];
        snprintf(path, sizeof(path), "%s/freezer.state", dir);
        char cp[sizeof(dir) + 32];
        snprintf(cp, sizeof(cp), "%s/cgroup.procs", dir);
        for (int round = 0;; round++) {
            /* Those not in the freezer cgroup yet go in. */
            struct sp_pids in = {0};
            FILE *f = fopen(cp, "re");
            int pid;
            while (f && fscanf(f, "%d", &pid) == 1)
                pids_add(&in, pid);
            if (f)
                fclose(f);
            if ((rc = ns_pids(ns, &p)) == 0) {
                size_t k = 0;
                for (size_t i = 0; i < p.n; i++) {
                    bool there = false;
                    for (size_t j = 0; j < in.n && !there; j++)
                        there = in.v[j] == p.v[i];
                    if (!there)
                        p.v[k++] = p.v[i];
                }
                p.n = k;
                rc = move_pids(dir, &p);
                if (rc == -ENOENT && round < 50 &&
                    (mkdir(dir, 0700) == 0 || errno == EEXIST)) {
                    /* swept as empty by a thaw elsewhere: again */
                    free(in.v);
                    continue;
                }
            }
            free(in.v);
            if (rc < 0 || (rc = write_file(path, "FROZEN")) < 0)
                break;
            while (!read_has(path, "FROZEN") && sp_now_us() < until) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
            if (!read_has(path, "FROZEN")) {
                rc = -ETIMEDOUT;
                break;
            }
            /* Anyone forked outside it before the freeze? */
            if ((rc = ns_pids(ns, &p)) < 0)
                break;
            size_t inside = 0;
            f = fopen(cp, "re");
            while (f && fscanf(f, "%d", &pid) == 1)
                inside++;
            if (f)
                fclose(f);
            if (inside >= p.n)
                break;
            if (round > 50 || sp_now_us() >= until) {
                rc = -ETIMEDOUT;
                break;
            }
        }
    } else {
        snprintf(how, how_len, "sigstop");
        for (;;) {
            if ((rc = ns_pids(ns, &p)) < 0)
                break;
            bool all = true;
            for (size_t i = 0; i < p.n; i++) {
                char s = proc_state(p.v[i]);
                if (s == 'T' || s == 't' || s == 0 || s == 'Z' || s == 'X')
                    continue;
                all = false;
                signal_in_ns(p.v[i], ns, SIGSTOP);
            }
            if (all)
                break;
            if (sp_now_us() >= until) {
                rc = -ETIMEDOUT;
                break;
            }
            sleep_ms(1);
        }
    }
    free(p.v);
    if (rc < 0) {
        sp_freeze_thaw(how, ns);
        return sp_error_set(err, -rc, "cannot freeze workspace %s", name);
    }
    return 0;
}

/* The marker of a paused workspace, or "" when it is not paused. */
void sp_freeze_read_paused(int wsfd, char *how, size_t len)
{
    how[0] = '\0';
    int fd = openat(wsfd, SP_WS_PAUSED_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, how, len - 1);
    close(fd);
    how[n > 0 ? n : 0] = '\0';
    how[strcspn(how, "\n")] = '\0';
}

/* A per-workspace lock for pause/resume/snapshot freezes. */
int sp_freeze_pause_lock(int wsfd, sp_error *err)
{
    int fd = openat(wsfd, "pause.lock",
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open pause.lock");
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return sp_error_set(err, e, "cannot lock pause.lock");
        }
    return fd;
}

void sp_snap_thaw_at(int wsfd)
{
    char how[SP_MAX_PATH + 64];
    sp_freeze_read_paused(wsfd, how, sizeof(how));
    if (!how[0])
        return;
    struct sp_tree ns, *nsp = NULL;
    pid_t agent;
    if (sp_freeze_agent_of(wsfd, "", &agent, &ns, NULL) == 0)
        nsp = &ns;
    sp_freeze_thaw(how, nsp);
    unlinkat(wsfd, SP_WS_PAUSED_FILE, 0);
}

int sp_snap_open_ws(const char *name, char *statedir, size_t len,
                         sp_error *err)
{
    int r = sp_snap_check_names(name, NULL, err);
    if (r < 0)
        return r;
    if ((r = sp_state_dir(statedir, len, err)) < 0)
        return r;
    return sp_state_open_ws(statedir, name, err);
}

/* Is the workspace's supervisor alive (its lock held)? */
bool sp_ws_running_at(int wsfd)
{
    int fd = openat(wsfd, SP_WS_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return alive;
}

SP_EXPORT int sp_ws_pause(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int pl = sp_freeze_pause_lock(wsfd, err);
    if (pl < 0)
        return pl;
    if (!sp_ws_running_at(wsfd))
        return sp_error_setk(err, SP_ERR_USAGE, ESRCH,
                             "workspace %s is not running", name);
    char how[SP_MAX_PATH + 64];
    sp_freeze_read_paused(wsfd, how, sizeof(how));
    if (how[0])
        return 0; /* paused already */
    pid_t agent;
    struct sp_tree ns;
    int r = sp_freeze_agent_of(wsfd, name, &agent, &ns, err);
    if (r < 0 || (r = sp_freeze_ns(name, &ns, how, sizeof(how), err)) < 0)
        return r;
    strcat(how, "\n");
    if ((r = sp_write_atomic(wsfd, SP_WS_PAUSED_FILE, how, strlen(how))) < 0) {
        how[strcspn(how, "\n")] = '\0';
        sp_freeze_thaw(how, &ns);
        return sp_error_set(err, -r, "workspace %s: cannot record the pause",
                            name);
    }
    return 0;
}

SP_EXPORT int sp_ws_resume(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int pl = sp_freeze_pause_lock(wsfd, err);
    if (pl < 0)
        return pl;
    sp_snap_thaw_at(wsfd);
    return 0;
}

SP_EXPORT int sp_ws_paused(const char *name)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), NULL);
    if (wsfd < 0)
        return wsfd;
    /* The marker first: the common case touches no lock. */
    return faccessat(wsfd, SP_WS_PAUSED_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
           sp_ws_running_at(wsfd);
}

SP_EXPORT int sp_ws_wait_resumed(const char *name, double timeout,
                                 sp_error *err)
{
    uint64_t until = sp_now_us() + (uint64_t)(timeout * 1e6);
    for (;;) {
        int p = sp_ws_paused(name);
        if (p <= 0)
            return 0; /* not paused, or no such workspace: the caller says */
        if (sp_now_us() >= until)
            return sp_error_setk(err, SP_ERR_USAGE, EAGAIN,
                                 "workspace %s is paused (sandpit resume %s)",
                                 name, name);
        sleep_ms(20);
    }
}
