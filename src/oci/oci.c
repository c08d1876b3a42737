/* oci.c — the runc-compatible command line: global flags, the commands
 * containerd and CRI-O call (create, start, state, kill, delete, exec, ps,
 * pause, resume, update, events) and the ones people do (run, list, spec,
 * features, version). State lives under --root, one directory per
 * container: state.json and, until `start`, exec.fifo. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "oci.h"
#include "util.h"

#define OCI_VERSION "1.1.0"
#define DEFAULT_ROOT "/run/sandpit-runc"

struct gopts {
    const char *root;
    const char *log;
    bool log_json;
    bool systemd_cgroup;
    const char *cmd;
};

static struct gopts G = {.root = DEFAULT_ROOT};

/* ---- messages --------------------------------------------------------------- */

static void logmsg(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logmsg(const char *level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bool err = strcmp(level, "error") == 0;
    if (err || strcmp(level, "warning") == 0)
        fprintf(stderr, "sandpit-runc: %s%s%s\n", G.cmd ? G.cmd : "",
                G.cmd ? ": " : "", msg);
    if (!G.log)
        return;
    int fd = open(G.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return;
    char ts[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (G.log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "level", level, "msg", msg,
                              "time", ts);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            dprintf(fd, "%s\n", s);
        free(s);
        json_decref(o);
    } else {
        dprintf(fd, "time=\"%s\" level=%s msg=\"%s\"\n", ts, level, msg);
    }
    close(fd);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    logmsg("error", "%s", msg);
    return 1;
}

static void run_log(void *ctx, int level, const char *msg)
{
    logmsg(level <= SP_LOG_WARN ? "warning" : "info", "%s", msg);
}

/* ---- flags ------------------------------------------------------------------- */

struct flag {
    const char *name;   /* "--bundle" */
    const char *alias;  /* "-b" or NULL */
    bool value;
    const char **out;   /* value, or "1" for a switch */
    bool multi;         /* --env may repeat: values go to list */
    const char **list;
    size_t *n_list;
};

/* Parse argv[i..] against flags; positional arguments go to pos. Unknown
 * flags are refused by name. Returns the count of positionals or -1. */
static int parse_flags(int argc, char **argv, struct flag *flags,
                       const char **pos, int max_pos, bool rest_positional)
{
    int np = 0;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            if (np >= max_pos) {
                fail("too many arguments (\"%s\")", a);
                return -1;
            }
            pos[np++] = a;
            if (rest_positional && np >= 1)
                only_pos = np >= 1 && rest_positional;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof(name)) {
            fail("unknown flag %s", a);
            return -1;
        }
        memcpy(name, a, nl);
        name[nl] = '\0';
        struct flag *f = NULL;
        for (size_t k = 0; flags[k].name; k++) {
            const char *n1 = flags[k].name;
            if (strcmp(name, n1) == 0 || (n1[0] == '-' && n1[1] == '-' &&
                                          name[0] == '-' && name[1] != '-' &&
                                          strcmp(name + 1, n1 + 2) == 0) ||
                (flags[k].alias && strcmp(name, flags[k].alias) == 0)) {
                f = &flags[k];
                break;
            }
        }
        if (!f) {
            fail("flag %s is not supported by sandpit-runc", name);
            return -1;
        }
        const char *v = "1";
        if (f->value) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fail("flag %s needs a value", name);
                return -1;
            }
        } else if (eq) {
            v = strcmp(eq + 1, "false") == 0 ? NULL : "1";
        }
        if (f->multi) {
            if (*f->n_list < SP_MAX_ENV)
                f->list[(*f->n_list)++] = v;
        } else {
            *f->out = v;
        }
    }
    return np;
}

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > SP_OCI_ID_MAX || id[0] == '.' || id[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
              c == '+'))
            return false;
    }
    return true;
}

/* ---- state ------------------------------------------------------------------ */

static char *state_dir(const char *id)
{
    char *d = NULL;
    if (asprintf(&d, "%s/%s", G.root, id) < 0)
        return NULL;
    return d;
}

static int write_atomic(const char *path, const char *text)
{
    char tmp[SP_MAX_PATH];
    snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return -e;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

static int state_save(const char *id, json_t *st)
{
    char *d = state_dir(id);
    char path[SP_MAX_PATH];
    snprintf(path, sizeof(path), "%s/state.json", d);
    free(d);
    char *s = json_dumps(st, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    int r = write_atomic(path, s);
    free(s);
    return r;
}

static json_t *state_load(const char *id)
{
    char *d = state_dir(id);
    char path[SP_MAX_PATH];
    snprintf(path, sizeof(path), "%s/state.json", d);
    free(d);
    return json_load_file(path, 0, NULL);
}

static unsigned long long proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* field 3 is the state, after ") "; the start time is field 22 */
    int field = 2;
    for (char *c = p + 1; *c; c++) {
        if (*c == ' ') {
            field++;
            if (field == 22)
                return strtoull(c + 1, NULL, 10);
            if (field == 3 && c[1] == 'Z')
                return 0; /* a zombie is gone for our purposes */
        }
    }
    return 0;
}

/* The pid of a live init, or 0. */
static pid_t live_pid(const json_t *st)
{
    pid_t pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
    unsigned long long t0 = (unsigned long long)json_integer_value(
        json_object_get(st, "starttime"));
    if (pid <= 0 || !t0)
        return 0;
    return proc_starttime(pid) == t0 ? pid : 0;
}

static const char *status_of(const char *id, const json_t *st)
{
    if (!live_pid(st))
        return "stopped";
    char *d = state_dir(id);
    char fifo[SP_MAX_PATH];
    snprintf(fifo, sizeof(fifo), "%s/exec.fifo", d);
    free(d);
    if (access(fifo, F_OK) == 0)
        return "created";
    struct oci_cg cg;
    oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
    bool frozen = oci_cg_frozen(&cg);
    oci_cg_free(&cg);
    return frozen ? "paused" : "running";
}

static json_t *oci_state_json(const char *id, const json_t *st)
{
    const char *status = status_of(id, st);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:O, s:O}", "ociVersion",
                          OCI_VERSION, "id", id, "status", status, "pid",
                          (json_int_t)(strcmp(status, "stopped") ? live_pid(st) : 0),
                          "bundle", json_object_get(st, "bundle"), "rootfs",
                          json_object_get(st, "rootfs"));
    if (!o)
        return NULL;
    json_t *c = json_object_get(st, "created");
    if (c)
        json_object_set(o, "created", c);
    json_object_set_new(o, "owner", json_string(""));
    json_t *ann = json_object_get(st, "annotations");
    if (ann && json_object_size(ann))
        json_object_set(o, "annotations", ann);
    return o;
}

static int print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    if (!s)
        return fail("out of memory");
    puts(s);
    free(s);
    return 0;
}

static void rm_state(const char *id)
{
    char *d = state_dir(id);
    if (!d)
        return;
    char p[SP_MAX_PATH];
    DIR *dir = opendir(d);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        unlink(p);
    }
    if (dir)
        closedir(dir);
    rmdir(d);
    free(d);
}

/* ---- hooks ------------------------------------------------------------------ */

static int run_hook(const struct oci_hook *h, const char *state_text)
{
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        return -errno;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(in[0], 0);
        char *const dflt_argv[] = {(char *)h->path, NULL};
        char *const empty_env[] = {NULL};
        execve(h->path, h->args && h->args[0] ? h->args : dflt_argv,
               h->env ? h->env : empty_env);
        _exit(127);
    }
    close(in[0]);
    signal(SIGPIPE, SIG_IGN);
    ssize_t wr = write(in[1], state_text, strlen(state_text));
    (void)wr;
    close(in[1]);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {pfd, POLLIN, 0};
    int r = pfd >= 0 ? poll(&p, 1, h->timeout * 1000) : 1;
    if (r == 0)
        kill(pid, SIGKILL);
    if (pfd >= 0)
        close(pfd);
    int status = 0;
    waitpid(pid, &status, 0);
    if (r == 0)
        return -ETIMEDOUT;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_hooks(const struct oci_spec *s, enum oci_hook_kind k,
                     const char *id, const json_t *st, const char *what,
                     bool fatal)
{
    if (!s->n_hooks[k])
        return 0;
    json_t *o = oci_state_json(id, st);
    if (o && k == OCI_HOOK_PRESTART)
        json_object_set_new(o, "status", json_string("creating"));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = 0;
    for (size_t i = 0; text && i < s->n_hooks[k]; i++) {
        int r = run_hook(&s->hooks[k][i], text);
        if (r != 0) {
            if (fatal) {
                rc = r < 0 ? r : -EIO;
                logmsg("error", "%s hook %s failed (%s %d)", what,
                       s->hooks[k][i].path, r < 0 ? "error" : "status",
                       r < 0 ? -r : r);
                break;
            }
            logmsg("warning", "%s hook %s failed (%s %d)", what,
                   s->hooks[k][i].path, r < 0 ? "error" : "status",
                   r < 0 ? -r : r);
        }
    }
    free(text);
    return rc;
}

/* ---- create ------------------------------------------------------------------ */

struct create_ctx {
    const char *id;
    const char *pid_file;
    json_t *st;
    struct oci_spec *spec;
};

static int on_ready(void *vctx, pid_t pid, sp_error *err)
{
    struct create_ctx *c = vctx;
    /* A test hook: stop here, mid-create (the container's processes exist,
     * its state says "creating"), with our pid in the named file, so a test
     * can kill -9 the runtime and see that nothing is left behind. */
    const char *stall = getenv("SANDPIT_TEST_OCI_STALL_CREATE");
    if (stall && *stall) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%d", (int)getpid());
        write_atomic(stall, buf);
        for (int i = 0; i < 600; i++)
            sleep(1);
    }
    json_object_set_new(c->st, "pid", json_integer(pid));
    json_object_set_new(c->st, "starttime",
                        json_integer((json_int_t)proc_starttime(pid)));
    int r = run_hooks(c->spec, OCI_HOOK_PRESTART, c->id, c->st, "prestart", true);
    if (r == 0)
        r = run_hooks(c->spec, OCI_HOOK_CREATE_RUNTIME, c->id, c->st,
                      "createRuntime", true);
    if (r < 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, -r, "a hook failed");
    json_object_set_new(c->st, "status", json_string("created"));
    if ((r = state_save(c->id, c->st)) < 0)
        return sp_error_set(err, -r, "cannot write the state");
    if (c->pid_file) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        if ((r = write_atomic(c->pid_file, buf)) < 0)
            return sp_error_set(err, -r, "cannot write the pid file %s",
                                c->pid_file);
    }
    return 1;
}

static int connect_console(const char *path, sp_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return sp_error_setk(err, SP_ERR_USAGE, ENAMETOOLONG,
                             "--console-socket %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sp_error_setk(err, SP_ERR_USAGE, e, "--console-socket %s", path);
    }
    return fd;
}

/* Create the container; on success *ret_pid is its init. */
static int do_create(const char *id, const char *bundle, const char *pid_file,
                     const char *console, const char *preserve, bool stay,
                     pid_t *ret_pid)
{
    sp_error err = {0};
    struct oci_spec spec;
    struct oci_cg cg;
    memset(&cg, 0, sizeof(cg));
    int rc = 1;
    pid_t helper = -1;
    if (!id_ok(id))
        return fail("bad container id \"%s\" ([A-Za-z0-9][A-Za-z0-9_.+-]*, "
                    "at most %d bytes)", id ? id : "", SP_OCI_ID_MAX);
    if (mkdir(G.root, 0711) < 0 && errno != EEXIST)
        return fail("--root %s: %s", G.root, strerror(errno));
    char *dir = state_dir(id);
    if (!dir)
        return fail("out of memory");
    if (mkdir(dir, 0711) < 0) {
        int e = errno;
        free(dir);
        return e == EEXIST ? fail("container \"%s\" already exists", id)
                           : fail("%s/%s: %s", G.root, id, strerror(e));
    }
    if (oci_spec_load(bundle ? bundle : ".", id, G.systemd_cgroup, &spec, &err) < 0) {
        fail("%s", err.message);
        oci_spec_free(&spec);
        rm_state(id);
        free(dir);
        return 1;
    }
    if (spec.notes[0])
        logmsg("info", "%s", spec.notes);
    json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "id", id, "bundle",
                           spec.bundle, "rootfs", spec.rootfs, "status",
                           "creating", "pid", 0, "starttime", 0);
    char ts[64];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%09ldZ", now.tv_nsec);
    json_object_set_new(st, "created", json_string(ts));
    if (spec.annotations)
        json_object_set(st, "annotations", (json_t *)spec.annotations);
    if (oci_cg_create(spec.cgroups_path, &spec.res, &cg, &err) < 0) {
        fail("%s", err.message);
        goto out;
    }
    json_object_set_new(st, "cgroupPaths", oci_cg_to_json(&cg));
    json_object_set_new(st, "hooks",
                        json_boolean(spec.n_hooks[OCI_HOOK_POSTSTART] ||
                                     spec.n_hooks[OCI_HOOK_POSTSTOP]));
    /* The container's init is born in its cgroup by being cloned from a
     * runtime already in it: a helper moves us there while we go on (on
     * cgroup v1 the first move waits for an RCU grace period, up to tens
     * of milliseconds; this overlaps it with the rest of create). */
    helper = fork();
    if (helper == 0) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%d", (int)getppid());
        for (size_t i = 0; i < cg.n; i++)
            if (pwrite(cg.procs[i], buf, (size_t)n, 0) != n)
                _exit(1);
        _exit(0);
    }
    if (helper < 0) {
        fail("fork: %s", strerror(errno));
        goto out;
    }
    if (oci_spec_premount(&spec, &err) < 0) {
        fail("%s", err.message);
        goto out;
    }
    /* recorded before anything runs: a runtime killed from here on leaves
     * a state that `delete` cleans up */
    if (state_save(id, st) < 0) {
        fail("cannot write the state under %s", dir);
        goto out;
    }
    char fifo[SP_MAX_PATH];
    snprintf(fifo, sizeof(fifo), "%s/exec.fifo", dir);
    mode_t old = umask(0);
    int mr = mkfifo(fifo, 0622);
    umask(old);
    if (mr < 0) {
        fail("exec.fifo: %s", strerror(errno));
        goto out;
    }
    spec.L.proc.fifo_fd = open(fifo, O_PATH | O_CLOEXEC);
    if (spec.L.proc.fifo_fd < 0) {
        fail("exec.fifo: %s", strerror(errno));
        goto out;
    }
    if (spec.L.proc.terminal && !console) {
        fail("process.terminal is set: --console-socket is required");
        goto out;
    }
    if (!spec.L.proc.terminal && console) {
        fail("--console-socket given but process.terminal is false");
        goto out;
    }
    if (console && (spec.L.proc.console_fd = connect_console(console, &err)) < 0) {
        fail("%s", err.message);
        goto out;
    }
    if (preserve) {
        char *end;
        long n = strtol(preserve, &end, 10);
        if (*end || n < 0 || n > 1024) {
            fail("--preserve-fds %s: not a count", preserve);
            goto out;
        }
        spec.L.proc.preserve_fds = (unsigned)n;
    }
    int hst = 0;
    pid_t w = waitpid(helper, &hst, 0);
    helper = -1;
    if (w < 0 || !WIFEXITED(hst) || WEXITSTATUS(hst) != 0) {
        fail("cannot enter the container's cgroup %s", cg.dir[0]);
        goto out;
    }
    spec.L.n_cg = 0; /* inherited by the clone */
    sp_run_opts ro = {.argv = spec.argv, .log = run_log, .verbosity = 0};
    struct create_ctx ctx = {id, pid_file, st, &spec};
    pid_t pid = -1;
    if (sp_launch_oci_create(&spec.L, &ro, on_ready, &ctx, &pid, &err) < 0) {
        fail("%s", err.message);
        goto out;
    }
    *ret_pid = pid;
    rc = 0;
out:
    if (helper > 0)
        waitpid(helper, NULL, 0);
    if (spec.L.proc.fifo_fd >= 0)
        close(spec.L.proc.fifo_fd);
    if (spec.L.proc.console_fd >= 0)
        close(spec.L.proc.console_fd);
    if (rc) {
        oci_cg_leave(&cg);
        oci_cg_destroy(&cg);
        rm_state(id);
    } else {
        /* `run` stays to wait: out of the cgroup it may kill --all */
        if (stay)
            oci_cg_leave(&cg);
        oci_cg_free(&cg);
    }
    json_decref(st);
    oci_spec_free(&spec);
    free(dir);
    return rc;
}

static int cmd_create(int argc, char **argv)
{
    const char *bundle = NULL, *pid_file = NULL, *console = NULL,
               *preserve = NULL, *no_pivot = NULL, *no_keyring = NULL;
    struct flag fl[] = {{"--bundle", "-b", true, &bundle, 0, 0, 0},
                        {"--pid-file", NULL, true, &pid_file, 0, 0, 0},
                        {"--console-socket", NULL, true, &console, 0, 0, 0},
                        {"--preserve-fds", NULL, true, &preserve, 0, 0, 0},
                        {"--no-pivot", NULL, false, &no_pivot, 0, 0, 0},
                        {"--no-new-keyring", NULL, false, &no_keyring, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np < 0)
        return 1;
    if (np != 1)
        return fail("usage: create [--bundle DIR] [--pid-file F] "
                    "[--console-socket S] ID");
    if (no_pivot)
        return fail("--no-pivot is not supported (sandpit always uses "
                    "pivot_root)");
    pid_t pid;
    return do_create(pos[0], bundle, pid_file, console, preserve, false, &pid);
}

/* ---- start ------------------------------------------------------------------- */

static int load_or_fail(const char *id, json_t **st)
{
    if (!id_ok(id))
        return fail("bad container id \"%s\"", id ? id : "");
    *st = state_load(id);
    if (!*st)
        return fail("container \"%s\" does not exist", id);
    return 0;
}

static int do_start(const char *id)
{
    json_t *st;
    if (load_or_fail(id, &st))
        return 1;
    const char *status = status_of(id, st);
    if (strcmp(status, "created") != 0) {
        json_decref(st);
        return fail("cannot start a container that is %s", status);
    }
    char *d = state_dir(id);
    char fifo[SP_MAX_PATH];
    snprintf(fifo, sizeof(fifo), "%s/exec.fifo", d);
    free(d);
    pid_t pid = live_pid(st);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || pfd < 0) {
        json_decref(st);
        return fail("cannot start: %s", strerror(errno));
    }
    int rc = 1;
    for (int waited = 0; waited < 600; waited++) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {pfd, POLLIN, 0}};
        int r = poll(p, 2, 100);
        if (r < 0 && errno != EINTR)
            break;
        char c;
        if (p[0].revents & POLLIN) {
            ssize_t n = read(fd, &c, 1);
            if (n == 1) {
                rc = 0;
                break;
            }
        }
        if (p[1].revents & POLLIN) {
            fail("the container's init exited before start");
            break;
        }
    }
    close(fd);
    close(pfd);
    if (rc == 0) {
        unlink(fifo); /* the status is "running" from now on */
        sp_error err = {0};
        struct oci_spec spec;
        const char *bundle = json_string_value(json_object_get(st, "bundle"));
        if (json_is_true(json_object_get(st, "hooks")) && bundle) {
            if (oci_spec_load(bundle, id, G.systemd_cgroup, &spec, &err) == 0)
                run_hooks(&spec, OCI_HOOK_POSTSTART, id, st, "poststart", false);
            oci_spec_free(&spec);
        }
    } else if (rc) {
        logmsg("error", "the container did not take the start");
    }
    json_decref(st);
    return rc;
}

static int cmd_start(int argc, char **argv)
{
    struct flag fl[] = {{NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: start ID");
    return do_start(pos[0]);
}

/* ---- state, list --------------------------------------------------------------- */

static int cmd_state(int argc, char **argv)
{
    struct flag fl[] = {{NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: state ID");
    json_t *st;
    if (load_or_fail(pos[0], &st))
        return 1;
    json_t *o = oci_state_json(pos[0], st);
    int rc = print_json(o);
    json_decref(o);
    json_decref(st);
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    const char *format = "table", *quiet = NULL;
    struct flag fl[] = {{"--format", "-f", true, &format, 0, 0, 0},
                        {"--quiet", "-q", false, &quiet, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    if (parse_flags(argc, argv, fl, pos, 0, false) < 0)
        return 1;
    if (strcmp(format, "table") && strcmp(format, "json"))
        return fail("--format %s: table or json", format);
    json_t *all = json_array();
    DIR *d = opendir(G.root);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!id_ok(e->d_name))
            continue;
        json_t *st = state_load(e->d_name);
        if (!st)
            continue;
        json_array_append_new(all, oci_state_json(e->d_name, st));
        json_decref(st);
    }
    if (d)
        closedir(d);
    int rc = 0;
    if (strcmp(format, "json") == 0) {
        rc = print_json(all);
    } else {
        if (!quiet)
            printf("%-20s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS",
                   "BUNDLE", "CREATED");
        for (size_t i = 0; i < json_array_size(all); i++) {
            json_t *o = json_array_get(all, i);
            if (quiet)
                printf("%s\n", json_string_value(json_object_get(o, "id")));
            else
                printf("%-20s %-8lld %-10s %-40s %s\n",
                       json_string_value(json_object_get(o, "id")),
                       (long long)json_integer_value(json_object_get(o, "pid")),
                       json_string_value(json_object_get(o, "status")),
                       json_string_value(json_object_get(o, "bundle")),
                       json_string_value(json_object_get(o, "created")));
        }
    }
    json_decref(all);
    return rc;
}

/* ---- kill, delete ---------------------------------------------------------------- */

static int kill_init(const json_t *st, int sig)
{
    pid_t pid = live_pid(st);
    if (!pid)
        return -ESRCH;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return -errno;
    /* the pid could have been reused between the check and the open */
    int r = 0;
    if (!live_pid(st))
        r = -ESRCH;
    else if (syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0)
        r = -errno;
    close(pfd);
    return r;
}

static int cmd_kill(int argc, char **argv)
{
    const char *all = NULL;
    struct flag fl[] = {{"--all", "-a", false, &all, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[2];
    int np = parse_flags(argc, argv, fl, pos, 2, false);
    if (np < 1)
        return np < 0 ? 1 : fail("usage: kill [--all] ID [SIGNAL]");
    int sig = np > 1 ? oci_signal_parse(pos[1]) : SIGTERM;
    if (sig <= 0)
        return fail("unknown signal \"%s\"", pos[1]);
    json_t *st;
    if (load_or_fail(pos[0], &st))
        return 1;
    const char *status = status_of(pos[0], st);
    if (strcmp(status, "stopped") == 0) {
        json_decref(st);
        return fail("container not running");
    }
    int r = 0;
    if (all) {
        struct oci_cg cg;
        oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
        oci_cg_kill(&cg, sig);
        if (sig == SIGKILL && strcmp(status, "paused") == 0)
            oci_cg_freeze(&cg, false, &(sp_error){0});
        oci_cg_free(&cg);
    } else {
        r = kill_init(st, sig);
    }
    json_decref(st);
    if (r == -ESRCH)
        return fail("container not running");
    if (r < 0)
        return fail("kill: %s", strerror(-r));
    return 0;
}

/* Kill what runs and wait for the init to be gone (up to 10 s). */
static void stop_all(const json_t *st, struct oci_cg *cg)
{
    pid_t pid = live_pid(st);
    int pfd = pid ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pfd >= 0 && live_pid(st))
        syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
    oci_cg_kill(cg, SIGKILL);
    oci_cg_freeze(cg, false, &(sp_error){0});
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        poll(&p, 1, 10000);
        close(pfd);
    }
}

static int do_delete(const char *id, bool force)
{
    json_t *st;
    if (!id_ok(id))
        return fail("bad container id \"%s\"", id ? id : "");
    st = state_load(id);
    if (!st) {
        /* a runtime killed before its first state write leaves at most
         * an empty directory */
        char *d = state_dir(id);
        int gone = d && rmdir(d) == 0;
        free(d);
        /* as runc: --force of a container that is not there succeeds */
        return gone || force ? 0 : fail("container \"%s\" does not exist", id);
    }
    const char *status = status_of(id, st);
    if (!force && strcmp(status, "stopped") && strcmp(status, "created")) {
        json_decref(st);
        return fail("cannot delete container %s that is not stopped: %s", id,
                    status);
    }
    struct oci_cg cg;
    oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
    stop_all(st, &cg);
    oci_cg_destroy(&cg);
    const char *bundle = json_string_value(json_object_get(st, "bundle"));
    struct oci_spec spec;
    sp_error err = {0};
    json_object_set_new(st, "pid", json_integer(0));
    if (json_is_true(json_object_get(st, "hooks")) && bundle) {
        if (oci_spec_load(bundle, id, G.systemd_cgroup, &spec, &err) == 0)
            run_hooks(&spec, OCI_HOOK_POSTSTOP, id, st, "poststop", false);
        oci_spec_free(&spec);
    }
    rm_state(id);
    json_decref(st);
    return 0;
}

static int cmd_delete(int argc, char **argv)
{
    const char *force = NULL;
    struct flag fl[] = {{"--force", "-f", false, &force, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: delete [--force] ID");
    return do_delete(pos[0], force != NULL);
}

/* ---- run ------------------------------------------------------------------------ */

/* Wait for pid (our child), forwarding signals to target; its exit
 * status. */
static int wait_forward(pid_t pid, pid_t target)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        struct timespec ts = {0, 200000000};
        siginfo_t si;
        int sig = sigtimedwait(&all, &si, &ts);
        if (sig > 0 && sig != SIGCHLD)
            kill(target, sig);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int cmd_run(int argc, char **argv)
{
    const char *bundle = NULL, *pid_file = NULL, *console = NULL,
               *preserve = NULL, *detach = NULL, *no_pivot = NULL,
               *keep = NULL, *no_keyring = NULL;
    struct flag fl[] = {{"--bundle", "-b", true, &bundle, 0, 0, 0},
                        {"--pid-file", NULL, true, &pid_file, 0, 0, 0},
                        {"--console-socket", NULL, true, &console, 0, 0, 0},
                        {"--preserve-fds", NULL, true, &preserve, 0, 0, 0},
                        {"--detach", "-d", false, &detach, 0, 0, 0},
                        {"--keep", NULL, false, &keep, 0, 0, 0},
                        {"--no-pivot", NULL, false, &no_pivot, 0, 0, 0},
                        {"--no-new-keyring", NULL, false, &no_keyring, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: run [--bundle DIR] [--detach] ID");
    if (no_pivot)
        return fail("--no-pivot is not supported (sandpit always uses "
                    "pivot_root)");
    pid_t pid;
    if (do_create(pos[0], bundle, pid_file, console, preserve, true, &pid))
        return 1;
    if (do_start(pos[0])) {
        do_delete(pos[0], true);
        return 1;
    }
    if (detach)
        return 0;
    int rc = wait_forward(pid, pid);
    if (!keep)
        do_delete(pos[0], true);
    return rc;
}

/* ---- exec ------------------------------------------------------------------------ */

static int cmd_exec(int argc, char **argv)
{
    const char *process = NULL, *detach = NULL, *pid_file = NULL, *tty = NULL,
               *console = NULL, *cwd = NULL, *user = NULL, *nnp = NULL,
               *preserve = NULL;
    const char *envs[SP_MAX_ENV];
    size_t n_env = 0;
    struct flag fl[] = {{"--process", "-p", true, &process, 0, 0, 0},
                        {"--detach", "-d", false, &detach, 0, 0, 0},
                        {"--pid-file", NULL, true, &pid_file, 0, 0, 0},
                        {"--tty", "-t", false, &tty, 0, 0, 0},
                        {"--console-socket", NULL, true, &console, 0, 0, 0},
                        {"--cwd", NULL, true, &cwd, 0, 0, 0},
                        {"--user", "-u", true, &user, 0, 0, 0},
                        {"--no-new-privs", NULL, false, &nnp, 0, 0, 0},
                        {"--preserve-fds", NULL, true, &preserve, 0, 0, 0},
                        {"--env", "-e", true, NULL, true, envs, &n_env},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[SP_MAX_ARGS];
    int np = parse_flags(argc, argv, fl, pos, SP_MAX_ARGS, true);
    if (np < 1)
        return np < 0 ? 1 : fail("usage: exec [--process FILE | FLAGS] ID "
                                 "[CMD ARGS...]");
    const char *id = pos[0];
    json_t *st;
    if (load_or_fail(id, &st))
        return 1;
    const char *status = status_of(id, st);
    if (strcmp(status, "running") && strcmp(status, "created")) {
        json_decref(st);
        return fail("cannot exec in a container that is %s", status);
    }
    sp_error err = {0};
    struct oci_spec spec;
    const char *bundle = json_string_value(json_object_get(st, "bundle"));
    if (!bundle || oci_spec_load(bundle, id, G.systemd_cgroup, &spec, &err) < 0) {
        json_decref(st);
        oci_spec_free(&spec);
        return fail("the container's config: %s", err.message);
    }
    json_t *pj = NULL;
    if (process) {
        json_error_t je;
        pj = strcmp(process, "-") == 0 ? json_loadf(stdin, 0, &je)
                                       : json_load_file(process, 0, &je);
        if (!pj) {
            json_decref(st);
            oci_spec_free(&spec);
            return fail("--process %s: line %d: %s", process, je.line, je.text);
        }
        if (np > 1) {
            json_decref(pj);
            json_decref(st);
            oci_spec_free(&spec);
            return fail("--process and a command are exclusive");
        }
    } else {
        if (np < 2) {
            json_decref(st);
            oci_spec_free(&spec);
            return fail("exec: no command given");
        }
        pj = json_deep_copy(json_object_get(spec.json, "process"));
        json_t *args = json_array();
        for (int i = 1; i < np; i++)
            json_array_append_new(args, json_string(pos[i]));
        json_object_set_new(pj, "args", args);
        json_t *env = json_object_get(pj, "env");
        if (!env) {
            env = json_array();
            json_object_set_new(pj, "env", env);
        }
        for (size_t i = 0; i < n_env; i++)
            json_array_append_new(env, json_string(envs[i]));
        if (cwd)
            json_object_set_new(pj, "cwd", json_string(cwd));
        json_object_set_new(pj, "terminal", json_boolean(tty != NULL));
        if (nnp)
            json_object_set_new(pj, "noNewPrivileges", json_true());
        if (user) {
            unsigned uid = 0, gid = 0;
            int k = sscanf(user, "%u:%u", &uid, &gid);
            if (k < 1) {
                json_decref(pj);
                json_decref(st);
                oci_spec_free(&spec);
                return fail("--user %s: uid[:gid] numbers", user);
            }
            json_t *u = json_pack("{s:I, s:I}", "uid", (json_int_t)uid, "gid",
                                  (json_int_t)(k > 1 ? gid : 0));
            json_object_set_new(pj, "user", u);
        }
        json_object_del(pj, "oomScoreAdj");
    }
    struct sp_oci_proc pr;
    char **pargv = NULL, **penv = NULL;
    int rc = 1;
    struct oci_cg cg;
    memset(&cg, 0, sizeof(cg));
    for (size_t i = 0; i < OCI_CG_MAX; i++)
        cg.procs[i] = -1;
    int pfd = -1;
    if (oci_process_parse(pj, "process", spec.layers_off, &pr, &pargv, &penv,
                          &err) < 0) {
        fail("%s", err.message);
        goto out;
    }
    if (spec.has_seccomp)
        pr.spec_seccomp = &spec.seccomp;
    if (preserve)
        pr.preserve_fds = (unsigned)strtoul(preserve, NULL, 10);
    if (pr.terminal != (console != NULL)) {
        fail(pr.terminal ? "a terminal needs --console-socket"
                         : "--console-socket given without a terminal");
        goto out;
    }
    if (console && (pr.console_fd = connect_console(console, &err)) < 0) {
        fail("%s", err.message);
        goto out;
    }
    oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
    if (oci_cg_open_procs(&cg, &err) < 0) {
        fail("%s", err.message);
        goto out;
    }
    pid_t ipid = live_pid(st);
    pfd = ipid ? (int)syscall(SYS_pidfd_open, ipid, 0) : -1;
    if (pfd < 0 || !live_pid(st)) {
        fail("container not running");
        goto out;
    }
    /* the pid file is written after we entered the container's mount
     * namespace: open its directory now */
    int dirfd = -1;
    char base[256] = "";
    if (pid_file) {
        char tmp[SP_MAX_PATH];
        snprintf(tmp, sizeof(tmp), "%s", pid_file);
        char *slash = strrchr(tmp, '/');
        const char *b = slash ? slash + 1 : tmp;
        if (strlen(b) >= sizeof(base)) {
            fail("--pid-file %s: name too long", pid_file);
            goto out;
        }
        memcpy(base, b, strlen(b) + 1);
        if (slash)
            *slash = '\0';
        dirfd = open(slash ? (tmp[0] ? tmp : "/") : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
            fail("--pid-file %s: %s", pid_file, strerror(errno));
            goto out;
        }
    }
    sp_run_opts ro = {.argv = pargv, .log = run_log};
    pid_t pid = -1, waiter = -1;
    if (sp_launch_oci_exec(pfd, &pr, &spec.plan, cg.procs, cg.n, !detach, &ro,
                           &pid, &waiter, &err) < 0) {
        if (dirfd >= 0)
            close(dirfd);
        fail("%s", err.message);
        goto out;
    }
    if (dirfd >= 0) {
        char tmpn[300], buf[24];
        snprintf(tmpn, sizeof(tmpn), ".%s.tmp", base);
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        int fd = openat(dirfd, tmpn, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        bool ok = fd >= 0 && write(fd, buf, strlen(buf)) == (ssize_t)strlen(buf);
        if (fd >= 0)
            close(fd);
        if (ok && renameat(dirfd, tmpn, dirfd, base) < 0)
            ok = false;
        close(dirfd);
        if (!ok) {
            kill(pid, SIGKILL);
            waitpid(waiter, NULL, 0);
            fail("cannot write --pid-file %s", pid_file);
            goto out;
        }
    }
    /* the helper exits at once (detach) or with the process's status;
     * our signals go to the process */
    rc = wait_forward(waiter, pid);
    if (detach)
        rc = 0;
out:
    if (pfd >= 0)
        close(pfd);
    if (pr.console_fd >= 0)
        close(pr.console_fd);
    oci_cg_free(&cg);
    free(pargv);
    free(penv);
    json_decref(pj);
    json_decref(st);
    oci_spec_free(&spec);
    return rc;
}

/* ---- ps, pause, resume, update, events ------------------------------------------- */

static int with_running(const char *id, json_t **st, struct oci_cg *cg,
                        const char *want_a, const char *want_b)
{
    if (load_or_fail(id, st))
        return 1;
    const char *status = status_of(id, *st);
    if (strcmp(status, want_a) && (!want_b || strcmp(status, want_b))) {
        json_decref(*st);
        return fail("container not %s (it is %s)", want_a, status);
    }
    oci_cg_from_json(json_object_get(*st, "cgroupPaths"), cg);
    return 0;
}

static int cmd_ps(int argc, char **argv)
{
    const char *format = "table";
    struct flag fl[] = {{"--format", "-f", true, &format, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[8];
    int np = parse_flags(argc, argv, fl, pos, 8, true);
    if (np < 1)
        return np < 0 ? 1 : fail("usage: ps [--format json] ID");
    if (np > 1)
        return fail("ps: ps(1) options are not supported");
    json_t *st;
    struct oci_cg cg;
    if (load_or_fail(pos[0], &st))
        return 1;
    oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
    json_t *pids = json_array();
    oci_cg_pids(&cg, pids);
    int rc = 0;
    if (strcmp(format, "json") == 0) {
        char *s = json_dumps(pids, JSON_COMPACT);
        puts(s ? s : "[]");
        free(s);
    } else if (strcmp(format, "table") == 0) {
        printf("%-8s %s\n", "PID", "CMD");
        for (size_t i = 0; i < json_array_size(pids); i++) {
            long long p = (long long)json_integer_value(json_array_get(pids, i));
            char path[64], comm[64] = "";
            snprintf(path, sizeof(path), "/proc/%lld/comm", p);
            FILE *f = fopen(path, "re");
            if (f && fgets(comm, sizeof(comm), f))
                comm[strcspn(comm, "\n")] = '\0';
            if (f)
                fclose(f);
            printf("%-8lld %s\n", p, comm);
        }
    } else {
        rc = fail("--format %s: table or json", format);
    }
    json_decref(pids);
    oci_cg_free(&cg);
    json_decref(st);
    return rc;
}

static int cmd_freeze(int argc, char **argv, bool freeze)
{
    struct flag fl[] = {{NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: %s ID", freeze ? "pause" : "resume");
    json_t *st;
    struct oci_cg cg;
    if (with_running(pos[0], &st, &cg, freeze ? "running" : "paused", NULL))
        return 1;
    sp_error err = {0};
    int rc = oci_cg_freeze(&cg, freeze, &err) < 0 ? fail("%s", err.message) : 0;
    oci_cg_free(&cg);
    json_decref(st);
    return rc;
}

static int cmd_pause(int argc, char **argv) { return cmd_freeze(argc, argv, true); }
static int cmd_resume(int argc, char **argv) { return cmd_freeze(argc, argv, false); }

static int cmd_update(int argc, char **argv)
{
    const char *resources = NULL;
    struct flag fl[] = {{"--resources", "-r", true, &resources, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: update --resources FILE|- ID");
    if (!resources)
        return fail("update: only --resources FILE|- is supported");
    json_error_t je;
    json_t *r = strcmp(resources, "-") == 0 ? json_loadf(stdin, 0, &je)
                                            : json_load_file(resources, 0, &je);
    if (!r)
        return fail("--resources %s: line %d: %s", resources, je.line, je.text);
    json_t *st;
    struct oci_cg cg;
    if (with_running(pos[0], &st, &cg, "running", "paused")) {
        json_decref(r);
        return 1;
    }
    struct oci_resources res;
    sp_error err = {0};
    int rc = 0;
    if (oci_resources_parse(r, &res, &err) < 0 || oci_cg_update(&cg, &res, &err) < 0)
        rc = fail("%s", err.message);
    oci_cg_free(&cg);
    json_decref(st);
    json_decref(r);
    return rc;
}

static int cmd_events(int argc, char **argv)
{
    const char *stats = NULL, *interval = "5s";
    struct flag fl[] = {{"--stats", NULL, false, &stats, 0, 0, 0},
                        {"--interval", NULL, true, &interval, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    int np = parse_flags(argc, argv, fl, pos, 1, false);
    if (np != 1)
        return np < 0 ? 1 : fail("usage: events [--stats] [--interval 5s] ID");
    double secs = strtod(interval, NULL);
    if (secs <= 0 || secs > 3600)
        return fail("--interval %s: a duration in seconds (\"5s\")", interval);
    for (;;) {
        json_t *st;
        if (load_or_fail(pos[0], &st))
            return 1;
        if (strcmp(status_of(pos[0], st), "stopped") == 0 && !stats) {
            json_decref(st);
            return 0;
        }
        struct oci_cg cg;
        oci_cg_from_json(json_object_get(st, "cgroupPaths"), &cg);
        json_t *ev = json_pack("{s:s, s:s, s:o}", "type", "stats", "id", pos[0],
                               "data", oci_cg_stats(&cg));
        char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(ev);
        oci_cg_free(&cg);
        json_decref(st);
        if (stats)
            return 0;
        struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* ---- features, spec, version ------------------------------------------------------ */

static int cmd_features(int argc, char **argv)
{
    const char *j = "{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"" OCI_VERSION "\","
        "\"hooks\":[\"prestart\",\"createRuntime\",\"poststart\",\"poststop\"],"
        "\"mountOptions\":[\"ro\",\"rw\",\"nosuid\",\"suid\",\"nodev\",\"dev\","
        "\"noexec\",\"exec\",\"noatime\",\"relatime\",\"strictatime\",\"nodiratime\","
        "\"bind\",\"rbind\",\"private\",\"rprivate\",\"slave\",\"rslave\"],"
        "\"linux\":{\"namespaces\":[\"pid\",\"network\",\"mount\",\"ipc\",\"uts\","
        "\"user\",\"cgroup\"],\"cgroup\":{\"v1\":true,\"v2\":true,\"systemd\":false,"
        "\"systemdUser\":false},\"seccomp\":{\"enabled\":true,\"actions\":["
        "\"SCMP_ACT_ALLOW\",\"SCMP_ACT_ERRNO\",\"SCMP_ACT_KILL\",\"SCMP_ACT_KILL_PROCESS\","
        "\"SCMP_ACT_KILL_THREAD\",\"SCMP_ACT_LOG\",\"SCMP_ACT_TRAP\",\"SCMP_ACT_TRACE\"],"
        "\"operators\":[\"SCMP_CMP_EQ\",\"SCMP_CMP_GE\",\"SCMP_CMP_GT\",\"SCMP_CMP_LE\","
        "\"SCMP_CMP_LT\",\"SCMP_CMP_MASKED_EQ\",\"SCMP_CMP_NE\"]},"
        "\"apparmor\":{\"enabled\":false},\"selinux\":{\"enabled\":false}},"
        "\"annotations\":{\"" OCI_LAYERS_OFF_ANNOTATION "\":\"comma list of userns, "
        "seccomp, landlock, mask, nnp: sandpit layers this container goes without\"}}";
    json_t *o = json_loads(j, 0, NULL);
    int rc = print_json(o);
    json_decref(o);
    return rc;
}

static int cmd_spec(int argc, char **argv)
{
    const char *bundle = ".", *rootless = NULL;
    struct flag fl[] = {{"--bundle", "-b", true, &bundle, 0, 0, 0},
                        {"--rootless", NULL, false, &rootless, 0, 0, 0},
                        {NULL, NULL, 0, 0, 0, 0, 0}};
    const char *pos[1];
    if (parse_flags(argc, argv, fl, pos, 0, false) < 0)
        return 1;
    char path[SP_MAX_PATH];
    snprintf(path, sizeof(path), "%s/config.json", bundle);
    if (access(path, F_OK) == 0)
        return fail("%s exists already", path);
    json_t *o = json_loads(
        "{\"ociVersion\":\"" OCI_VERSION "\",\"process\":{\"terminal\":true,"
        "\"user\":{\"uid\":0,\"gid\":0},\"args\":[\"sh\"],\"env\":["
        "\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
        "\"TERM=xterm\"],\"cwd\":\"/\",\"capabilities\":{\"bounding\":["
        "\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],\"effective\":["
        "\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],\"permitted\":["
        "\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]},\"rlimits\":[{"
        "\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],"
        "\"noNewPrivileges\":true},\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
        "\"hostname\":\"sandpit\",\"mounts\":[{\"destination\":\"/proc\",\"type\":"
        "\"proc\",\"source\":\"proc\"},{\"destination\":\"/dev\",\"type\":\"tmpfs\","
        "\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\",\"mode=755\","
        "\"size=65536k\"]},{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":"
        "\"shm\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\","
        "\"size=65536k\"]},{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\","
        "\"source\":\"mqueue\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
        "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":"
        "[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}],\"linux\":{\"namespaces\":["
        "{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},"
        "{\"type\":\"mount\"},{\"type\":\"cgroup\"}]}}",
        0, NULL);
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    int r = s ? write_atomic(path, s) : -ENOMEM;
    free(s);
    return r < 0 ? fail("%s: %s", path, strerror(-r)) : 0;
}

static int cmd_version(int argc, char **argv)
{
    printf("sandpit-runc version %s\nspec: %s\n", sp_version(), OCI_VERSION);
    return 0;
}

static int cmd_refused(int argc, char **argv)
{
    return fail("not supported by sandpit-runc");
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"create", cmd_create},     {"start", cmd_start},   {"run", cmd_run},
    {"state", cmd_state},       {"kill", cmd_kill},     {"delete", cmd_delete},
    {"exec", cmd_exec},         {"ps", cmd_ps},         {"pause", cmd_pause},
    {"resume", cmd_resume},     {"update", cmd_update}, {"events", cmd_events},
    {"features", cmd_features}, {"spec", cmd_spec},     {"list", cmd_list},
    {"version", cmd_version},   {"checkpoint", cmd_refused},
    {"restore", cmd_refused},
};

int sp_oci_main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        char *a = argv[i];
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(name, sizeof(name), "%.*s", (int)nl, a);
        const char *val = eq ? eq + 1 : NULL;
        bool takes = !strcmp(name, "--root") || !strcmp(name, "--log") ||
                     !strcmp(name, "--log-format") || !strcmp(name, "--criu") ||
                     !strcmp(name, "--rootless");
        if (takes && !val) {
            if (i + 1 >= argc)
                return fail("flag %s needs a value", name);
            val = argv[++i];
        }
        if (!strcmp(name, "--root")) {
            G.root = val;
        } else if (!strcmp(name, "--log")) {
            G.log = val;
        } else if (!strcmp(name, "--log-format")) {
            if (strcmp(val, "json") && strcmp(val, "text"))
                return fail("--log-format %s: text or json", val);
            G.log_json = strcmp(val, "json") == 0;
        } else if (!strcmp(name, "--systemd-cgroup")) {
            G.systemd_cgroup = true;
        } else if (!strcmp(name, "--debug")) {
            continue;
        } else if (!strcmp(name, "--rootless")) {
            if (strcmp(val, "false") && strcmp(val, "auto"))
                return fail("--rootless %s: sandpit-runc runs as root (its "
                            "containers never hold host root)", val);
        } else if (!strcmp(name, "--version") || !strcmp(name, "-v")) {
            return cmd_version(0, NULL);
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            printf("usage: sandpit-runc [--root DIR] [--log FILE] [--log-format "
                   "text|json] [--systemd-cgroup] COMMAND [ARGS...]\n"
                   "commands: create start run state kill delete exec ps pause "
                   "resume update events features spec list version\n");
            return 0;
        } else {
            return fail("global flag %s is not supported by sandpit-runc", name);
        }
    }
    if (i >= argc)
        return fail("no command (see --help)");
    if (G.root[0] != '/' || strlen(G.root) > 512)
        return fail("--root %s: an absolute path", G.root);
    for (size_t k = 0; k < SP_ARRAY_SIZE(commands); k++)
        if (strcmp(argv[i], commands[k].name) == 0) {
            G.cmd = commands[k].name;
            return commands[k].fn(argc - i - 1, argv + i + 1);
        }
    return fail("command \"%s\" is not supported by sandpit-runc", argv[i]);
}
