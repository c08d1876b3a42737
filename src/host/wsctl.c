/* wsctl.c — the lifecycle of workspaces on the host (wsctl.h, sandpit.h):
 * create/start spawn a detached supervisor and wait for its "ready"; stop
 * asks it over control.sock; ps/gc/rm read and clean the state directory,
 * using the supervisor's lock to tell live from dead. Snapshot restore and
 * fork and reset (snapshot.c, wsdiff.c) use these as the client API does;
 * talking to a running workspace (exec, files, shells) is client/. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wsctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "ids.h"
#include "portfwd.h"
#include "proto.h"
#include "secrets.h"
#include "freeze.h"
#include "layerstore.h"
#include "state.h"
#include "supervisor.h"
#include "util.h"
#include "wslayers.h"
#include "loopdisk.h"
#include "wsdisk.h"
#include "wsskel.h"

static int check_name(const char *name, sp_error *err)
{
    if (sp_ws_name_valid(name))
        return 0;
    return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                         "invalid workspace name '%.80s%s' (use 1 to 63 of "
                         "a-z 0-9 _ . -, starting with a letter or digit)",
                         name ? name : "", name && strlen(name) > 80 ? "..." : "");
}

/* The state dir and the named workspace's directory fd. */
static int open_ws(const char *name, char *statedir, size_t len, sp_error *err)
{
    int r = check_name(name, err);
    if (r < 0)
        return r;
    if ((r = sp_state_dir(statedir, len, err)) < 0)
        return r;
    return sp_state_open_ws(statedir, name, err);
}

int sp_ws_policy_from_json(const char *json, const char *datadir,
                           struct sp_policy **ret, sp_error *err)
{
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "the stored policy is not a JSON object");
    }
    /* Reported for people, not a key a policy sets. */
    json_object_del(o, "system_paths_ro");
    json_object_set_new(o, "workspace", json_string(datadir));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return sp_error_set(err, ENOMEM, "policy");
    sp_policy *p = sp_policy_new();
    int r = p ? sp_policy_apply_json_text(p, text, "workspace policy", err)
              : sp_error_set(err, ENOMEM, "policy");
    free(text);
    if (r == 0) {
        p->ws_in_state = true; /* datadir: the workspace's own, in the state */
        r = sp_policy_finalize(p, err);
    }
    if (r == 0 && p->n_pass_fds > 0)
        r = sp_error_setk(err, SP_ERR_USAGE, 0,
                          "--pass-fd has no meaning for a workspace");
    if (r < 0) {
        sp_policy_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

/* Fork the detached supervisor (fork, setsid, fork) and wait for its
 * "OK" or error line on a pipe. lock_fd passes to it (the lock stays
 * held by the supervisor alone once we close ours). */
static int spawn_supervisor(const char *name, int wsfd, int lock_fd,
                            struct sp_policy *p, double idle, double life,
                            int64_t created, const struct sp_secrets *secrets,
                            int owner_fd, sp_error *err)
{
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return sp_error_set(err, errno, "pipe");
    pid_t c = fork();
    if (c < 0) {
        int e = errno;
        close(pp[0]);
        close(pp[1]);
        return sp_error_set(err, e, "cannot fork the supervisor");
    }
    if (c == 0) {
        close(pp[0]);
        setsid();
        pid_t g = fork();
        if (g != 0)
            _exit(g < 0 ? 1 : 0);
        /* The supervisor: stdio to /dev/null and its log; no fd of the
         * caller's (a pipe a caller waits on must see EOF). */
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        int log = openat(wsfd, SP_WS_LOG,
                         O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                         0600);
        if (nul < 0 || log < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 ||
            dup2(log, 2) < 0)
            _exit(1);
        int keep[] = {wsfd, lock_fd, pp[1], owner_fd};
        sp_close_all_except(keep, SP_ARRAY_SIZE(keep), 3);
        if (chdir("/") < 0)
            _exit(1);
        umask(0022);
        struct sp_supervisor_args a = {
            .name = name,
            .wsfd = wsfd,
            .lock_fd = lock_fd,
            .ready_fd = pp[1],
            .policy = p,
            .idle_timeout = idle,
            .max_lifetime = life,
            .created = created,
            .secrets = secrets, /* memory only: the fork's copy */
            .owner_fd = owner_fd,
        };
        sp_supervisor_main(&a);
    }
    close(pp[1]);
    int st = 0;
    waitpid(c, &st, 0);
    char buf[1200];
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {pp[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (SP_WS_START_TIMEOUT + 10) * 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t k = read(pp[0], buf + n, sizeof(buf) - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        if (memchr(buf, '\n', n) || n == sizeof(buf) - 1)
            break;
    }
    close(pp[0]);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (strcmp(buf, "OK") == 0)
        return 0;
    if (buf[0] == 'E')
        return sp_error_setk(err, SP_ERR_SYSTEM, 0, "workspace %s: %s", name,
                             buf + 1);
    return sp_error_setk(err, SP_ERR_SYSTEM, 0,
                         "workspace %s: the supervisor exited while starting "
                         "(see %s in its directory)",
                         name, SP_WS_LOG);
}

static void secrets_freep(struct sp_secrets **s) { sp_secrets_free(*s); }

SP_EXPORT int sp_ws_disk_check(const sp_policy *p, char *why, size_t len)
{
    if (!p->limits.disk) {
        if (why && len)
            snprintf(why, len, "no disk limit is set (limits.disk is 0)");
        return 0;
    }
    return sp_disk_probe(why, len);
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

/* sp_ws_create; with slot set, a pooled workspace in that directory
 * whose supervisor watches owner_fd (pool.h). */
static int ws_create(const sp_policy *p, const sp_ws_create_opts *o,
                     const char *slot, int owner_fd, char *ret_name,
                     size_t ret_len, sp_error *err)
{
    char statedir[SP_MAX_PATH], name[SP_WS_NAME_MAX + 1];
    int r;
    if (o && o->name && (r = check_name(o->name, err)) < 0)
        return r;
    if (o && (o->idle_timeout < 0 || o->max_lifetime < 0 ||
              o->idle_timeout > SP_MAX_TIMEOUT ||
              o->max_lifetime > SP_MAX_TIMEOUT))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "--idle-timeout and --max-lifetime must be "
                             "between 0 and 30 days");
    char why[200];
    bool disk_on = p->limits.disk && sp_disk_probe(why, sizeof(why));
    if (p->limits.disk && !disk_on && (p->require & SP_LAYER_DISK))
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require disk: no disk limit can be enforced "
                             "here: %s", why);
    if (!p->limits.disk && (p->require & SP_LAYER_DISK))
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require disk: no disk limit is set");
    /* ext4 holds at most one inode per 4 KiB block */
    if (disk_on && p->limits.inodes > p->limits.disk / 4096)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "limits.inodes: %llu is more than a %llu-byte "
                             "disk can hold (at most %llu: one per 4 KiB)",
                             (unsigned long long)p->limits.inodes,
                             (unsigned long long)p->limits.disk,
                             (unsigned long long)(p->limits.disk / 4096));
    _cleanup_(secrets_freep) struct sp_secrets *secrets = NULL;
    if (o && (r = sp_secrets_new(o->secrets, o->n_secrets, &secrets, err)) < 0)
        return r;
    if ((r = sp_state_dir(statedir, sizeof(statedir), err)) < 0)
        return r;
    char root[SP_MAX_PATH + 16];
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    _cleanup_close_ int rootfd =
        open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0)
        return sp_error_set(err, errno, "cannot open %s", root);

    /* mkdir is the atomic claim on a name: a second create of the same
     * name fails here, before anything is touched. */
    for (int tries = 0;; tries++) {
        if (slot)
            snprintf(name, sizeof(name), "%s", slot);
        else if (o && o->name)
            snprintf(name, sizeof(name), "%s", o->name);
        else
            random_name(name, sizeof(name));
        if (mkdirat(rootfd, name, 0700) == 0)
            break;
        if (errno == EEXIST && (slot || (o && o->name)))
            return sp_error_setk(err, SP_ERR_USAGE, EEXIST,
                                 "workspace %s already exists", name);
        if (errno != EEXIST || tries > 16)
            return sp_error_set(err, errno, "cannot create workspace %s", name);
    }

    _cleanup_close_ int wsfd = -1, lockfd = -1;
    char *pj = NULL;
    struct sp_policy *wp = NULL;
    char datadir[SP_MAX_PATH * 2];
    snprintf(datadir, sizeof(datadir), "%s/%s/%s", root, name, SP_WS_DATA);
    wsfd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (wsfd < 0) {
        r = sp_error_set(err, errno, "cannot open workspace %s", name);
        goto fail;
    }
    if ((lockfd = sp_state_lock(wsfd, false)) < 0) {
        r = sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
        goto fail;
    }
    if (mkdirat(wsfd, SP_WS_DATA, 0755) < 0) {
        r = sp_error_set(err, errno, "cannot create %s", datadir);
        goto fail;
    }
    if ((r = sp_ws_layers_init(wsfd, o ? o->from : NULL,
                               o && o->read_only_system, err)) < 0)
        goto fail;
    /* Everything it writes goes into its own image (wsdisk.h). */
    if (disk_on && (r = sp_ws_disk_create(wsfd, statedir, name, p->limits.disk,
                                          p->limits.inodes, err)) < 0)
        goto fail;
    /* A fork (snapshot.h): its base is the snapshot's layer stack. */
    if (o && o->snapshot &&
        (r = sp_snap_fork_init(wsfd, o->snapshot_ws, o->snapshot, err)) < 0)
        goto fail;
    if (!(pj = sp_policy_to_json(p, err))) {
        r = -SP_EFAIL;
        goto fail;
    }
    if ((r = sp_ws_policy_from_json(pj, datadir, &wp, err)) < 0)
        goto fail;
    free(pj);
    if (!(pj = sp_policy_to_json(wp, err))) {
        r = -SP_EFAIL;
        goto fail;
    }
    struct sp_ws_state st;
    memset(&st, 0, sizeof(st));
    snprintf(st.name, sizeof(st.name), "%s", name);
    snprintf(st.state, sizeof(st.state), "creating");
    st.created = sp_unix_now();
    st.idle_timeout = o ? o->idle_timeout : 0;
    st.max_lifetime = o ? o->max_lifetime : 0;
    st.policy = json_loads(pj, 0, NULL);
    st.cgroups = json_array();
    r = sp_state_write(wsfd, &st, err);
    int64_t created = st.created;
    sp_state_free(&st);
    if (r < 0)
        goto fail;
    if ((r = sp_secrets_save_names(wsfd, secrets, err)) < 0)
        goto fail;
    if ((r = spawn_supervisor(name, wsfd, lockfd, wp, o ? o->idle_timeout : 0,
                              o ? o->max_lifetime : 0, created, secrets,
                              owner_fd, err)) < 0)
        goto fail;
    free(pj);
    sp_policy_free(wp);
    snprintf(ret_name, ret_len, "%s", name);
    return 0;
fail:
    free(pj);
    sp_policy_free(wp);
    /* A failed create leaves nothing behind, so the name can be used. */
    if (wsfd >= 0)
        sp_ws_disk_release(wsfd);
    sp_rm_rf_at(rootfd, name);
    return r;
}

SP_EXPORT int sp_ws_create(const sp_policy *p, const sp_ws_create_opts *o,
                           char *ret_name, size_t ret_len, sp_error *err)
{
    return ws_create(p, o, NULL, -1, ret_name, ret_len, err);
}

int sp_ws_create_slot(const sp_policy *p, const char *slot, int owner_fd,
                      sp_error *err)
{
    char n[SP_WS_NAME_MAX + 1];
    if (strncmp(slot, SP_POOL_SLOT_PREFIX, strlen(SP_POOL_SLOT_PREFIX)) ||
        strlen(slot) > SP_WS_NAME_MAX || strchr(slot, '/') || owner_fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL, "bad pool slot");
    return ws_create(p, NULL, slot, owner_fd, n, sizeof(n), err);
}

/* What a dead supervisor left: cgroups, the socket; the state becomes
 * `state`. Called with the lock held. */
static void clean_dead(int wsfd, const char *state)
{
    sp_snap_thaw_at(wsfd); /* a frozen v1 cgroup would not die */
    struct sp_ws_state st;
    if (sp_state_read(wsfd, &st, NULL) < 0)
        return;
    sp_state_cgroups_remove(st.cgroups);
    unlinkat(wsfd, SP_WS_SOCKET, 0);
    json_decref(st.cgroups);
    st.cgroups = json_array();
    snprintf(st.state, sizeof(st.state), "%s", state);
    st.supervisor_pid = st.agent_pid = 0;
    sp_state_write(wsfd, &st, NULL);
    sp_state_free(&st);
}

SP_EXPORT int sp_ws_start(const char *name, sp_error *err)
{
    return sp_ws_start_secrets(name, NULL, 0, err);
}

SP_EXPORT int sp_ws_start_secrets(const char *name, const sp_secret *secrets,
                                  size_t n_secrets, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_(secrets_freep) struct sp_secrets *sec = NULL;
    int sr = sp_secrets_new(secrets, n_secrets, &sec, err);
    if (sr < 0)
        return sr;
    _cleanup_close_ int wsfd = open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int lockfd = sp_state_lock(wsfd, false);
    if (lockfd == -EWOULDBLOCK)
        return sp_error_setk(err, SP_ERR_USAGE, EBUSY,
                             "workspace %s is already running", name);
    if (lockfd < 0)
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    struct sp_ws_state st;
    int r = sp_state_read(wsfd, &st, err);
    if (r < 0)
        return sp_error_prefix(err, "workspace %s", name);
    if (strcmp(st.state, "running") == 0 || strcmp(st.state, "creating") == 0) {
        /* Its supervisor died without cleaning up: do it now. */
        sp_state_free(&st);
        clean_dead(wsfd, "crashed");
        if ((r = sp_state_read(wsfd, &st, err)) < 0)
            return r;
    }
    char *pj = st.policy ? json_dumps(st.policy, JSON_COMPACT) : NULL;
    char datadir[SP_MAX_PATH * 2];
    snprintf(datadir, sizeof(datadir), "%s/%s/%s/%s", statedir, SP_WS_DIR,
             name, SP_WS_DATA);
    struct sp_policy *p = NULL;
    if (!pj)
        r = sp_error_setk(err, SP_ERR_SYSTEM, 0,
                          "workspace %s has no stored policy", name);
    else
        r = sp_ws_policy_from_json(pj, datadir, &p, err);
    free(pj);
    /* Secrets are not kept while stopped: each recorded name must come
     * again; new ones join the record. */
    if (r == 0 && (r = sp_secrets_check_names(wsfd, name, sec, err)) == 0 &&
        sec)
        r = sp_secrets_save_names(wsfd, sec, err);
    if (r == 0)
        r = sp_ws_disk_ensure(wsfd, err);
    if (r == 0)
        r = spawn_supervisor(name, wsfd, lockfd, p, st.idle_timeout,
                             st.max_lifetime, st.created, sec, -1, err);
    sp_policy_free(p);
    sp_state_free(&st);
    return r;
}

/* ---- the client connection ------------------------------------------- */

static int connect_ws(int wsfd, const char *name, sp_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", wsfd,
             SP_WS_SOCKET);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sp_error_set(err, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return sp_error_setk(err, SP_ERR_USAGE, e,
                                 "workspace %s is not running", name);
        return sp_error_setk(err, SP_ERR_SYSTEM, e,
                             "cannot connect to workspace %s", name);
    }
    return fd;
}

int sp_ws_connect_fd(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd = open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    /* A paused workspace's agent reads nothing: wait, bounded. */
    int pr = sp_ws_wait_resumed(name, SP_WS_PAUSE_WAIT, err);
    if (pr < 0)
        return pr;
    return connect_ws(wsfd, name, err);
}

SP_EXPORT int sp_ws_stop(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd = open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    int fd = connect_ws(wsfd, name, NULL);
    if (fd >= 0) {
        json_t *id = json_integer(1);
        char *line = sp_proto_request(id, "stop", NULL);
        json_decref(id);
        if (line)
            sp_proto_send(fd, line, strlen(line), NULL, 0);
        free(line);
        /* The reply, or EOF when the supervisor exits. */
        char buf[4096];
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || memchr(buf, '\n', (size_t)n))
                break;
        }
        close(fd);
    }
    /* The supervisor holds the lock until it has exited. */
    int lockfd = sp_state_lock(wsfd, true);
    if (lockfd < 0)
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    struct sp_ws_state st;
    if (sp_state_read(wsfd, &st, NULL) == 0) {
        bool dead = strcmp(st.state, "running") == 0 ||
                    strcmp(st.state, "creating") == 0;
        sp_state_free(&st);
        if (dead)
            clean_dead(wsfd, "stopped");
    }
    close(lockfd);
    return 0;
}

/* Does workspaces/ (rootfd) hold a workspace, pooled ones included (a
 * removal's leftover ".rm-*" is none)? */
static bool any_workspace(int rootfd)
{
    int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        sp_close_keep_errno(fd);
        return true; /* cannot tell: keep the spares */
    }
    bool any = false;
    struct dirent *de;
    while (!any && (de = readdir(d)))
        any = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
              strncmp(de->d_name, ".rm-", 4) != 0;
    closedir(d);
    return any;
}

SP_EXPORT int sp_ws_rm(const char *name, bool force, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd = open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    int lockfd = sp_state_lock(wsfd, false);
    if (lockfd == -EWOULDBLOCK) {
        if (!force)
            return sp_error_setk(err, SP_ERR_USAGE, EBUSY,
                                 "workspace %s is running (stop it first, or "
                                 "use rm -f)", name);
        int r = sp_ws_stop(name, err);
        if (r < 0)
            return r;
        lockfd = sp_state_lock(wsfd, true);
    }
    if (lockfd < 0)
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    struct sp_ws_state st;
    if (sp_state_read(wsfd, &st, NULL) == 0) {
        sp_state_cgroups_remove(st.cgroups);
        sp_state_free(&st);
    }
    sp_ws_disk_release(wsfd); /* its loop device goes with the mounts */
    /* Renamed first, so the name is free at once and a removal cut short
     * is finished by gc. */
    char root[SP_MAX_PATH + 16], tmp[SP_WS_NAME_MAX + 32];
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    snprintf(tmp, sizeof(tmp), ".rm-%s-%d", name, (int)getpid());
    _cleanup_close_ int rootfd =
        open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = 0;
    if (rootfd < 0 || renameat(rootfd, name, rootfd, tmp) < 0)
        r = sp_error_set(err, errno, "cannot remove workspace %s", name);
    else if ((r = sp_ids_rm_rf_at(rootfd, tmp)) < 0)
        sp_error_set(err, -r, "cannot remove workspace %s completely", name);
    close(lockfd);
    if (r == 0) {
        sp_snap_ws_removed(name); /* its snapshots; layers no one uses */
        sp_freeze_sweep();
        /* The last workspace gone: no spare disk image waits mounted for
         * a create that may never come (its loop device and mount would
         * outlive every sandpit). gc does the same. */
        if (rootfd >= 0 && !any_workspace(rootfd))
            sp_ws_disk_gc(statedir, true);
    }
    return r;
}

/* Undo the disk mounts of workspaces/<n> (before it is removed). */
static void release_disk_at(int rootfd, const char *n)
{
    int fd = openat(rootfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        sp_ws_disk_release(fd);
        close(fd);
    }
}

int sp_pool_slot_reap(int rootfd, const char *n)
{
    int wsfd = openat(rootfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (wsfd < 0)
        return 0;
    int lockfd = sp_state_lock(wsfd, false);
    if (lockfd < 0) {
        close(wsfd); /* alive: its supervisor removes it when done */
        return 0;
    }
    /* Unlocked: a supervisor killed by SIGKILL, or a create cut short
     * (a create holds the lock from its mkdir on; a moment without one
     * is under a second old). */
    struct stat sb;
    bool old = fstat(wsfd, &sb) == 0 && sb.st_mtime + 1 < sp_unix_now();
    if (!old && faccessat(wsfd, SP_WS_STATE_FILE, F_OK, AT_SYMLINK_NOFOLLOW)) {
        close(lockfd);
        close(wsfd);
        return 0;
    }
    clean_dead(wsfd, "stopped"); /* its cgroups */
    sp_ws_disk_release(wsfd);
    close(lockfd);
    close(wsfd);
    return sp_rm_rf_at(rootfd, n) == 0 ? 1 : 0;
}

SP_EXPORT int sp_ws_gc(sp_error *err)
{
    char statedir[SP_MAX_PATH], root[SP_MAX_PATH + 16];
    int r = sp_state_dir(statedir, sizeof(statedir), err);
    if (r < 0)
        return r;
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0)
        return sp_error_set(err, errno, "cannot open %s", root);
    DIR *d = fdopendir(rootfd);
    if (!d) {
        close(rootfd);
        return sp_error_set(err, errno, "cannot read %s", root);
    }
    int reaped = 0, seen = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, ".rm-", 4) == 0) {
            release_disk_at(dirfd(d), n);
            if (sp_rm_rf_at(dirfd(d), n) == 0)
                reaped++;
            continue;
        }
        if (strncmp(n, SP_POOL_SLOT_PREFIX, strlen(SP_POOL_SLOT_PREFIX)) == 0) {
            if (sp_pool_slot_reap(dirfd(d), n) == 1)
                reaped++;
            continue;
        }
        if (!sp_ws_name_valid(n))
            continue;
        int wsfd = openat(dirfd(d), n,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (wsfd < 0)
            continue;
        seen++;
        int lockfd = sp_state_lock(wsfd, false);
        if (lockfd < 0) {
            close(wsfd); /* alive, or being created right now */
            continue;
        }
        struct sp_ws_state st;
        if (sp_state_read(wsfd, &st, NULL) < 0) {
            /* No state: a create that died before writing any. */
            struct stat sb;
            if (fstat(wsfd, &sb) == 0 && sb.st_mtime + 60 < sp_unix_now()) {
                close(lockfd);
                close(wsfd);
                lockfd = wsfd = -1;
                release_disk_at(dirfd(d), n);
                if (sp_rm_rf_at(dirfd(d), n) == 0)
                    reaped++;
            }
        } else if (strcmp(st.state, "creating") == 0) {
            sp_state_free(&st);
            close(lockfd);
            close(wsfd);
            lockfd = wsfd = -1;
            release_disk_at(dirfd(d), n);
            if (sp_rm_rf_at(dirfd(d), n) == 0)
                reaped++;
            continue;
        } else {
            if (strcmp(st.state, "running") == 0) {
                clean_dead(wsfd, "crashed");
                reaped++;
            }
            sp_state_free(&st);
            /* Not running: its loop device is given back; the next start
             * or host-side use mounts the image again (wsdisk.h). */
            sp_ws_disk_release(wsfd);
        }
        sp_close_keep_errno(lockfd);
        sp_close_keep_errno(wsfd);
    }
    closedir(d);
    sp_skel_gc(statedir); /* the skeletons no workspace uses any more */
    sp_ws_disk_gc(statedir, seen == 0); /* stale spare images */
    return reaped;
}

/* One number from a cgroup file, or -1. */
static long long read_ll(const char *dir, const char *file)
{
    char path[SP_MAX_PATH + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static long long count_procs(const char *dir)
{
    char path[SP_MAX_PATH + 64];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long n = 0;
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
        n++;
    fclose(f);
    return n;
}

/* A small JSON file in dirfd, or NULL. */
static json_t *json_load_file_at(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
}

/* {"enforced", "limit", "used", "size", "inodes_limit", "inodes_used"}:
 * the workspace's disk limit as stored in its policy and, while its image
 * is mounted, what the file system says (docs/disk.md). */
static json_t *disk_json(int wsfd, json_t *policy)
{
    json_t *lim = json_object_get(json_object_get(policy, "limits"), "disk");
    json_t *ino = json_object_get(json_object_get(policy, "limits"), "inodes");
    struct sp_ws_disk_usage u;
    int r = sp_ws_disk_usage(wsfd, &u);
    json_t *o = json_pack("{s:b,s:O?}", "enforced", r > 0, "limit",
                          json_integer_value(lim) > 0 ? lim : NULL);
    bool live = r == 1;
    json_object_set_new(o, "used", live ? json_integer((json_int_t)u.used)
                                        : json_null());
    json_object_set_new(o, "size", live ? json_integer((json_int_t)u.size)
                                        : json_null());
    json_object_set_new(o, "inodes_limit",
                        live ? json_integer((json_int_t)u.inodes)
                        : json_integer_value(ino) > 0 ? json_incref(ino)
                                                      : json_null());
    json_object_set_new(o, "inodes_used",
                        live ? json_integer((json_int_t)u.inodes_used)
                             : json_null());
    return o;
}

SP_EXPORT char *sp_ws_list_json(sp_error *err)
{
    char statedir[SP_MAX_PATH], root[SP_MAX_PATH + 16];
    if (sp_state_dir(statedir, sizeof(statedir), err) < 0)
        return NULL;
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    DIR *d = opendir(root);
    if (!d) {
        sp_error_set(err, errno, "cannot read %s", root);
        return NULL;
    }
    json_t *list = json_array();
    struct dirent *de;
    int64_t now = sp_unix_now();
    while ((de = readdir(d))) {
        /* A warm pool's workspaces (pool.h) are listed as "pooled" (ready)
         * or "refilling" (being created), never as workspaces to use. */
        bool slot = strncmp(de->d_name, SP_POOL_SLOT_PREFIX,
                            strlen(SP_POOL_SLOT_PREFIX)) == 0;
        if (!slot && !sp_ws_name_valid(de->d_name))
            continue;
        int wsfd = openat(dirfd(d), de->d_name,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (wsfd < 0)
            continue;
        struct sp_ws_state st;
        if (sp_state_read(wsfd, &st, NULL) < 0) {
            close(wsfd);
            continue;
        }
        /* Alive is "the lock is held", whatever state.json says. */
        bool alive = false;
        int lfd = openat(wsfd, SP_WS_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (lfd >= 0) {
            alive = flock(lfd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
            close(lfd);
        }
        const char *state = st.state;
        if (!alive && (strcmp(state, "running") == 0 ||
                       strcmp(state, "creating") == 0))
            state = "crashed";
        bool paused = alive && strcmp(state, "running") == 0 &&
                      faccessat(wsfd, SP_WS_PAUSED_FILE, F_OK,
                                AT_SYMLINK_NOFOLLOW) == 0;
        if (paused)
            state = "paused"; /* snapshot.h */
        if (slot && !alive) {
            sp_state_free(&st);
            close(wsfd);
            continue;
        }
        bool pooled = slot && strcmp(state, "running") == 0;
        if (slot)
            state = pooled ? "pooled" : "refilling";
        json_t *o = json_pack("{s:s,s:s,s:I,s:I}", "name", de->d_name, "state",
                              state, "created", (json_int_t)st.created, "age",
                              (json_int_t)(now - st.created));
        bool running = alive && (strcmp(state, "running") == 0 || paused ||
                                 pooled);
        if (slot)
            json_object_set_new(o, "pool_owner",
                                json_integer(strtol(de->d_name +
                                                        strlen(SP_POOL_SLOT_PREFIX),
                                                    NULL, 10)));
        json_object_set_new(o, "supervisor_pid",
                            running ? json_integer(st.supervisor_pid)
                                    : json_null());
        json_object_set_new(o, "agent_pid",
                            running ? json_integer(st.agent_pid) : json_null());
        long long mem = -1, procs = -1;
        size_t i;
        json_t *v;
        if (running) {
            json_array_foreach(st.cgroups, i, v) {
                const char *dir = json_string_value(v);
                if (!dir)
                    continue;
                if (mem < 0)
                    mem = read_ll(dir, "memory.usage_in_bytes");
                if (mem < 0)
                    mem = read_ll(dir, "memory.current");
                if (procs < 0)
                    procs = count_procs(dir);
            }
        }
        json_object_set_new(o, "processes",
                            procs >= 0 ? json_integer(procs) : json_null());
        json_object_set_new(o, "memory",
                            mem >= 0 ? json_integer(mem) : json_null());
        json_object_set_new(o, "disk", disk_json(wsfd, st.policy));
        /* Published ports as bound (portfwd.h), while running. */
        json_t *ports = running ? json_load_file_at(wsfd, SP_WS_PORTS_FILE)
                                : NULL;
        json_object_set_new(o, "ports", json_is_array(ports) ? ports
                                                             : json_array());
        if (ports && !json_is_array(ports))
            json_decref(ports);
        json_array_append_new(list, o);
        sp_state_free(&st);
        close(wsfd);
    }
    closedir(d);
    char *s = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (!s)
        sp_error_set(err, ENOMEM, "workspace list");
    return s;
}
