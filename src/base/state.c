/* state.c — the state directory, state.json, the supervisor lock and the
 * cleanup of dead workspaces (state.h). Every path under a workspace is
 * reached with *at() calls from the workspace directory's fd, never
 * following a symlink. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

int64_t sp_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[SP_MAX_PATH];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *c = buf + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *c = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int sp_state_dir(char *buf, size_t len, sp_error *err)
{
    const char *env = getenv("SANDPIT_STATE");
    int n;
    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else if (geteuid() == 0) {
        n = snprintf(buf, len, "/var/lib/sandpit");
    } else {
        const char *xdg = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg == '/')
            n = snprintf(buf, len, "%s/sandpit", xdg);
        else if (home && *home == '/')
            n = snprintf(buf, len, "%s/.local/state/sandpit", home);
        else
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "no state directory: set SANDPIT_STATE, "
                                 "XDG_STATE_HOME or HOME");
    }
    if (n < 0 || (size_t)n >= len || buf[0] != '/')
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "the state directory must be an absolute path "
                             "shorter than %zu bytes", len);
    char ws[SP_MAX_PATH];
    if (snprintf(ws, sizeof(ws), "%s/%s", buf, SP_WS_DIR) >= (int)sizeof(ws))
        return sp_error_setk(err, SP_ERR_USAGE, ENAMETOOLONG,
                             "state directory %s", buf);
    int r = mkdir_p(ws, 0700);
    if (r < 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, -r,
                             "cannot create the state directory %s", ws);
    return 0;
}

int sp_state_open_ws(const char *statedir, const char *name, sp_error *err)
{
    char path[SP_MAX_PATH];
    snprintf(path, sizeof(path), "%s/%s/%s", statedir, SP_WS_DIR, name);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                             "no workspace named %s", name);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                             "cannot open workspace %s", name);
    return fd;
}

static void jset_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, json_string(v));
}

int sp_state_write(int wsfd, const struct sp_ws_state *st, sp_error *err)
{
    json_t *o = json_object();
    if (!o)
        return sp_error_set(err, ENOMEM, "state.json");
    jset_str(o, "name", st->name);
    jset_str(o, "state", st->state);
    json_object_set_new(o, "supervisor_pid", json_integer(st->supervisor_pid));
    json_object_set_new(o, "agent_pid", json_integer(st->agent_pid));
    json_object_set_new(o, "created", json_integer(st->created));
    json_object_set_new(o, "started", json_integer(st->started));
    json_object_set_new(o, "idle_timeout", json_real(st->idle_timeout));
    json_object_set_new(o, "max_lifetime", json_real(st->max_lifetime));
    json_object_set(o, "policy", st->policy ? st->policy : json_null());
    json_object_set(o, "cgroups", st->cgroups ? st->cgroups : json_array());
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return sp_error_set(err, ENOMEM, "state.json");

    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", SP_WS_STATE_FILE, (int)getpid());
    int fd = openat(wsfd, tmp,
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    if (fd < 0) {
        free(text);
        return sp_error_set(err, errno, "cannot write state.json");
    }
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = sp_error_set(err, n < 0 ? errno : EIO,
                              "cannot write state.json");
            break;
        }
        off += (size_t)n;
    }
    /* "creating" and "running" are not made durable: they are true only
     * while the supervisor lives, and after a crash of the host gc finds
     * it dead either way (the rename alone keeps the file whole; a
     * workspace dir without one is reaped). Saves two fsyncs on the path
     * to ready; "stopped" and "crashed" are synced. */
    bool durable = strcmp(st->state, "running") != 0 &&
                   strcmp(st->state, "creating") != 0;
    if (rc == 0 &&
        (write(fd, "\n", 1) != 1 || (durable && fsync(fd) < 0)))
        rc = sp_error_set(err, errno, "cannot write state.json");
    close(fd);
    free(text);
    if (rc == 0 && renameat(wsfd, tmp, wsfd, SP_WS_STATE_FILE) < 0)
        rc = sp_error_set(err, errno, "cannot rename state.json");
    if (rc < 0)
        unlinkat(wsfd, tmp, 0);
    return rc;
}

json_t *sp_json_loadfd(int fd, size_t max, size_t flags, json_error_t *je)
{
    /* jansson's json_loadfd reads one byte per read(2): a 2 KiB file was a
     * millisecond of system calls. Read it whole, then parse. */
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > max) {
                free(buf);
                buf = NULL;
                break;
            }
            char *b2 = realloc(buf, cap * 2);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    if (!buf || n > max) {
        free(buf);
        if (je) {
            memset(je, 0, sizeof(*je));
            snprintf(je->text, sizeof(je->text), "cannot read (or over %zu "
                     "bytes)", max);
        }
        return NULL;
    }
    json_t *o = json_loadb(buf, n, flags, je);
    free(buf);
    return o;
}

int sp_state_read(int wsfd, struct sp_ws_state *ret, sp_error *err)
{
    int fd = openat(wsfd, SP_WS_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot read state.json");
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > SP_WS_MAX_STATE_FILE) {
        close(fd);
        return sp_error_set(err, EINVAL, "state.json is not a small file");
    }
    json_error_t je;
    json_t *o = sp_json_loadfd(fd, SP_WS_MAX_STATE_FILE, JSON_REJECT_DUPLICATES,
                               &je);
    close(fd);
    if (!json_is_object(o)) {
        json_decref(o);
        return sp_error_set(err, EINVAL, "state.json is malformed");
    }
    struct sp_ws_state st;
    memset(&st, 0, sizeof(st));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *state = json_string_value(json_object_get(o, "state"));
    snprintf(st.name, sizeof(st.name), "%s", name ? name : "");
    snprintf(st.state, sizeof(st.state), "%s", state ? state : "stopped");
    st.supervisor_pid =
        (pid_t)json_integer_value(json_object_get(o, "supervisor_pid"));
    st.agent_pid = (pid_t)json_integer_value(json_object_get(o, "agent_pid"));
    st.created = json_integer_value(json_object_get(o, "created"));
    st.started = json_integer_value(json_object_get(o, "started"));
    st.idle_timeout = json_number_value(json_object_get(o, "idle_timeout"));
    st.max_lifetime = json_number_value(json_object_get(o, "max_lifetime"));
    json_t *pol = json_object_get(o, "policy");
    st.policy = json_is_object(pol) ? json_incref(pol) : NULL;
    json_t *cg = json_object_get(o, "cgroups");
    st.cgroups = json_is_array(cg) ? json_incref(cg) : json_array();
    json_decref(o);
    *ret = st;
    return 0;
}

void sp_state_free(struct sp_ws_state *st)
{
    if (!st)
        return;
    json_decref(st->policy);
    json_decref(st->cgroups);
    st->policy = st->cgroups = NULL;
}

int sp_state_lock(int wsfd, bool wait)
{
    int fd = openat(wsfd, SP_WS_LOCK_FILE,
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r;
    do {
        r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int sp_rm_rf_at(int at, const char *name)
{
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    int fd = openat(at, name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        if (sp_chmod_nofollow(at, name, 0700) < 0) { /* tried; openat says */ }
        fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    /* Writable and searchable, so its entries can go. */
    if (fchmod(fd, 0700) < 0) { /* not ours: unlinks below say */ }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int r = sp_rm_rf_at(dirfd(d), de->d_name);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

int sp_state_cgroups_of(pid_t pid, json_t **ret)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    json_t *a = json_array();
    if (!a) {
        if (f)
            fclose(f);
        return -ENOMEM;
    }
    if (!f) {
        *ret = a;
        return 0;
    }
    char line[SP_MAX_PATH];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1, *rel = c2 + 1;
        const char *base = strrchr(rel, '/');
        if (!base || strncmp(base + 1, "sandpit-", 8) != 0)
            continue;
        char dir[SP_MAX_PATH * 2];
        struct stat sb;
        if (*ctrls == '\0') {
            snprintf(dir, sizeof(dir), "/sys/fs/cgroup/unified%s", rel);
            if (stat(dir, &sb) < 0)
                snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", rel);
        } else {
            const char *n = strncmp(ctrls, "name=", 5) == 0 ? ctrls + 5 : ctrls;
            snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%s", n, rel);
        }
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
            json_array_append_new(a, json_string(dir));
    }
    fclose(f);
    *ret = a;
    return 0;
}

void sp_state_cgroups_remove(json_t *cgroups)
{
    size_t i;
    json_t *v;
    json_array_foreach(cgroups, i, v) {
        const char *dir = json_string_value(v);
        const char *base = dir ? strrchr(dir, '/') : NULL;
        /* Only what we created: a sandpit-* directory under the cgroup fs. */
        if (!base || strncmp(dir, "/sys/fs/cgroup/", 15) != 0 ||
            strncmp(base + 1, "sandpit-", 8) != 0 || strstr(dir, "/.."))
            continue;
        for (int tries = 0; tries < 50; tries++) {
            if (rmdir(dir) == 0 || errno == ENOENT)
                break;
            char procs[SP_MAX_PATH + 32];
            snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
            FILE *f = fopen(procs, "re");
            if (f) {
                int pid;
                while (fscanf(f, "%d", &pid) == 1)
                    if (pid > 0)
                        kill(pid, SIGKILL);
                fclose(f);
            }
            usleep(20000);
        }
    }
}

SP_EXPORT bool sp_ws_name_valid(const char *name)
{
    if (!name || !*name)
        return false;
    size_t n = strlen(name);
    if (n > SP_WS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '_' || c == '.' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}
