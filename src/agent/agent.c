/* agent.c — PID 1 of a workspace: one poll loop over the socketpair and a
 * signalfd for SIGCHLD. It reaps every process (orphans are re-parented to
 * it), enforces exec timeouts on whole process groups, and answers each
 * exec with its exit status. It already runs with no capabilities,
 * no_new_privs, Landlock and seccomp (launch.c applied them), so an exec is
 * only fork, dup2, setsid, fchdir and execve. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"
#include "agent_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "envbuild.h"
#include "error.h"
#include "files.h"
#include "proto.h"
#include "secrets.h"
#include "util.h"

struct job {
    json_int_t id;
    pid_t pid;                 /* leader and process group */
    pid_t shep;                /* its shepherd: our child, the one reaped */
    int report;                /* the shepherd says the leader's pid (or
                                  -errno) here; -1 once read */
    int sig;                   /* the signal that ended it, or 0 */
    uint64_t deadline;         /* us; 0 = none */
    uint64_t kill_at;          /* us; 0 = none */
    bool timed_out;
    bool cancelled;
    /* Workspaces with secrets: the output goes through a relay process
     * (secrets.h) and the status waits for it (or the grace). */
    pid_t relay;               /* 0: none or reaped */
    bool done;                 /* the command has exited; status below */
    int status;
    uint64_t reply_by;         /* us: send the status even if relay lives */
    uint64_t t0_us;            /* when it started */
    uint64_t wall_us;          /* start to exit */
    struct rusage ru;          /* the shepherd's, its reaped children in */
};

struct agent {
    const struct sp_agent_cfg *cfg;
    int sfd;
    struct sp_proto_buf in;
    struct job *jobs;
    size_t n_jobs;
    int rootfd;                /* the workspace directory (file API) */
};

static _Noreturn void agent_exit(void)
{
    /* PID 1 exiting takes every process of the namespace with it. */
    kill(-1, SIGKILL);
    _exit(0);
}

static void send_line(struct agent *a, char *line)
{
    if (!line)
        return;
    int r = sp_proto_send(a->cfg->sock, line, strlen(line), NULL, 0);
    free(line);
    if (r < 0)
        agent_exit();
}

static void reply_error(struct agent *a, json_int_t id, int code,
                        const char *msg)
{
    json_t *jid = json_integer(id);
    send_line(a, sp_proto_error(jid, code, "%s", msg));
    json_decref(jid);
}

/* Signal a job's process group; before its setsid() the group does not
 * exist yet, so fall back to the leader. SIGKILL also tells the shepherd
 * to end every process the command started, wherever it went. */
static void read_report(struct job *j)
{
    if (j->report < 0)
        return;
    int32_t msg = 0;
    ssize_t n;
    do {
        n = read(j->report, &msg, sizeof(msg));
    } while (n < 0 && errno == EINTR);
    close(j->report);
    j->report = -1;
    j->pid = n == (ssize_t)sizeof(msg) ? (pid_t)msg : 0;
}

static void signal_job(struct job *j, int sig)
{
    read_report(j); /* the shepherd writes it before anything else */
    if (j->pid > 0 && kill(-j->pid, sig) < 0 && errno == ESRCH)
        kill(j->pid, sig);
    if (sig == SIGKILL && j->shep > 0)
        kill(j->shep, SIGUSR1);
}

static struct job *find_job(struct agent *a, json_int_t id)
{
    for (size_t i = 0; i < a->n_jobs; i++)
        if (a->jobs[i].id == id)
            return &a->jobs[i];
    return NULL;
}

/* Environment: the base entries, with per-exec "K=V" entries replacing
 * those of the same name or appended. Pointers are borrowed. */
static char **merge_env(char **base, const char **extra)
{
    size_t nb = 0, ne = 0;
    while (base && base[nb])
        nb++;
    while (extra && extra[ne])
        ne++;
    char **env = calloc(nb + ne + 1, sizeof(*env));
    if (!env)
        return NULL;
    memcpy(env, base, nb * sizeof(*env));
    size_t n = nb;
    for (size_t i = 0; i < ne; i++) {
        size_t klen = (size_t)(strchr(extra[i], '=') - extra[i]) + 1;
        size_t k = 0;
        for (; k < n; k++)
            if (strncmp(env[k], extra[i], klen) == 0)
                break;
        env[k] = (char *)extra[i];
        if (k == n)
            n++;
    }
    env[n] = NULL;
    return env;
}

/* The exec child: the client's fds become 0/1/2, a new session (no
 * terminal of the caller's can be driven: CVE-2017-5226), no blocked
 * signals, the working directory, execve. */
static _Noreturn void exec_child(const int *fds, int cwdfd, char **argv,
                                 char **envp, const char *path)
{
    int hi[3];
    for (int i = 0; i < 3; i++)
        if ((hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
            _exit(125);
    for (int i = 0; i < 3; i++)
        if (dup2(hi[i], i) < 0)
            _exit(125);
    setsid();
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (fchdir(cwdfd) < 0)
        _exit(125);
    sp_exec_or_die(argv, envp, path, "\n");
}

/* ---- the shepherd --------------------------------------------------------
 * Every exec runs under a shepherd: a fork of the agent that is a child
 * subreaper (PR_SET_CHILD_SUBREAPER), so whatever the command starts stays
 * below it, setsid()'d daemons and double forks included. When the
 * command ends, or the agent sends SIGUSR1 (cancel, timeout), the shepherd
 * kills everything left below it, then ends as the command did (its exit
 * code, or the same signal): background jobs of a finished exec never
 * outlive it nor keep counting against the pids limit. Services and
 * shells are not execs and have their own lifetimes. */

/* The pids of self's children, up to max: /proc/self/task/ID/children,
 * else a scan of /proc. Returns how many, or -1 when /proc cannot tell. */
static long children_of(pid_t self, pid_t *out, size_t max)
{
    char path[64], buf[8192];
    size_t n = 0;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)self,
             (int)self);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (k >= 0) {
            buf[k] = '\0';
            for (char *p = buf, *e; n < max; p = e) {
                long v = strtol(p, &e, 10);
                if (e == p)
                    break;
                out[n++] = (pid_t)v;
            }
            return (long)n;
        }
    }
    int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    char dents[4096];
    long got;
    while (n < max &&
           (got = syscall(SYS_getdents64, dfd, dents, sizeof(dents))) > 0) {
        for (long off = 0; off < got && n < max;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(dents + off);
            off += d->reclen;
            char *e;
            long pid = strtol(d->name, &e, 10);
            if (*e || pid <= 0)
                continue;
            struct sp_proc_stat ps;
            if (sp_proc_stat(dfd, pid, &ps) == 0 && ps.ppid == self)
                out[n++] = (pid_t)pid;
        }
    }
    close(dfd);
    return (long)n;
}

/* Kill every process below us and reap them; the leader's status goes to
 * *lst when it is among them. Bounded: a fork bomb is bounded by pids. */
static void shepherd_sweep(pid_t self, pid_t leader, int *lst, bool *ldone)
{
    pid_t kids[512];
    for (int round = 0; round < 100000; round++) {
        /* No child at all (the usual end): nothing to list. */
        int st0 = 0;
        pid_t w0 = waitpid(-1, &st0, WNOHANG);
        if (w0 < 0 && errno == ECHILD)
            return;
        if (w0 > 0) {
            if (w0 == leader && !*ldone) {
                *lst = st0;
                *ldone = true;
            }
            continue;
        }
        long n = children_of(self, kids, SP_ARRAY_SIZE(kids));
        for (long i = 0; i < n; i++)
            kill(kids[i], SIGKILL);
        int st = 0;
        pid_t w = waitpid(-1, &st, n > 0 ? 0 : WNOHANG);
        if (w == leader && !*ldone) {
            *lst = st;
            *ldone = true;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 || (w == 0 && n <= 0))
            return; /* none left (or /proc cannot say: leave the rest) */
    }
}

static _Noreturn void exec_child(const int *fds, int cwdfd, char **argv,
                                 char **envp, const char *path);

static _Noreturn void shepherd(const int *fds, int cwdfd, char **argv,
                               char **envp, const char *path, int report)
{
    pid_t self = getpid();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != 1)
        _exit(125); /* the agent is gone already */
    prctl(PR_SET_NAME, "sandpit-exec", 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* dying of SIGSEGV: no core */
    int keep[5] = {fds[0], fds[1], fds[2], cwdfd, report};
    sp_close_all_except(keep, SP_ARRAY_SIZE(keep), 3);
    pid_t leader = vfork();
    if (leader == 0)
        exec_child(fds, cwdfd, argv, envp, path);
    int e = leader < 0 ? errno : 0;
    int32_t msg = leader < 0 ? -e : (int32_t)leader;
    if (write(report, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) || leader < 0)
        _exit(125);
    close(report);
    for (int i = 0; i < 3; i++)
        close(fds[i]); /* the command holds them: EOF when it is done */
    close(cwdfd);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR1);
    int lst = 0;
    bool ldone = false;
    while (!ldone) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGUSR1)
            break;
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0)
            if (w == leader) {
                lst = st;
                ldone = true;
            }
    }
    shepherd_sweep(self, leader, &lst, &ldone);
    if (WIFSIGNALED(lst)) {
        /* End as it did: drop what is pending, let only that one in. */
        int sig = WTERMSIG(lst);
        sigset_t all, one;
        sigfillset(&all);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&all, NULL, &zero) > 0)
            ;
        signal(sig, SIG_DFL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(lst) ? WEXITSTATUS(lst) : 125);
}

/* The shepherd is a fork (it runs on); it vforks the command, which
 * borrows its memory until execve, and reports the command's pid (or
 * -errno) on a pipe (read_report). Returns the shepherd's pid with
 * *report, or -1 with errno. */
static pid_t spawn_child(const int *fds, int cwdfd, char **argv, char **envp,
                         const char *path, int *report)
{
    sp_agent_gate();
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t sp = fork();
    if (sp == 0) {
        close(p[0]);
        shepherd(fds, cwdfd, argv, envp, path, p[1]);
    }
    int e = errno;
    close(p[1]);
    if (sp < 0) {
        close(p[0]);
        errno = e;
        return -1;
    }
    *report = p[0];
    return sp;
}

/* /dev/null needs no relay: nothing written there leaves. */
static bool is_devnull(int fd)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && S_ISCHR(sb.st_mode) &&
           sb.st_rdev == makedev(1, 3);
}

/* Secrets: the command's stdout and stderr become pipes read by a relay
 * process (a fork of ours, as locked down) that redacts them on the way
 * to the client's fds (/dev/null is left as it is). fds[1] and fds[2] are
 * replaced by the pipes' write ends (the client's are closed here: the
 * relay holds them). Returns the relay's pid, 0 when nothing needs one,
 * or -errno. */
static pid_t start_relay(struct agent *a, int *fds)
{
    int p[2][2] = {{-1, -1}, {-1, -1}};
    int e = 0;
    sp_agent_gate(); /* in the cgroup first */
    for (int k = 0; k < 2 && !e; k++)
        if (!is_devnull(fds[1 + k]) && pipe2(p[k], O_CLOEXEC) < 0)
            e = errno;
    pid_t r = e || (p[0][0] < 0 && p[1][0] < 0) ? 0 : fork();
    if (r < 0)
        e = errno;
    if (e) {
        for (int k = 0; k < 2; k++)
            if (p[k][0] >= 0) {
                close(p[k][0]);
                close(p[k][1]);
            }
        return -e;
    }
    if (r == 0 && (p[0][0] >= 0 || p[1][0] >= 0)) {
        /* Only the fds it relays between stay open. */
        int in[2] = {p[0][0], p[1][0]};
        int out[2] = {in[0] >= 0 ? fds[1] : -1, in[1] >= 0 ? fds[2] : -1};
        int keep[4] = {in[0], in[1], out[0], out[1]};
        sp_close_all_except(keep, SP_ARRAY_SIZE(keep), 3);
        prctl(PR_SET_NAME, "sandpit-relay", 0, 0, 0);
        sp_secrets_relay(a->cfg->secrets, in, out);
    }
    for (int k = 0; k < 2; k++) {
        if (p[k][0] < 0)
            continue;
        close(p[k][0]);
        close(fds[1 + k]);
        fds[1 + k] = p[k][1];
    }
    return r;
}

static void do_exec(struct agent *a, json_int_t id, json_t *params)
{
    sp_error err = {0};
    int fds[SP_PROTO_MAX_FDS] = {-1, -1, -1};
    size_t nf = sp_proto_take_fds(&a->in, fds, 3);
    const char **argv = NULL, **env = NULL;
    const char *cwd = NULL;
    double timeout = a->cfg->default_timeout;
    char **envp = NULL;
    int cwdfd = -1;

    if (nf != 3) {
        reply_error(a, id, SP_RPC_FDS, "exec needs three file descriptors");
        goto out;
    }
    if (a->n_jobs >= SP_WS_MAX_EXECS) {
        reply_error(a, id, SP_RPC_BUSY, "too many execs running");
        goto out;
    }
    if (sp_proto_get_strv(params, "argv", true, 1, SP_MAX_ARGS,
                          SP_MAX_ENV_LEN, &argv, &err) < 0 ||
        sp_proto_get_strv(params, "env", false, 0, SP_MAX_ENV, SP_MAX_ENV_LEN,
                          &env, &err) < 0 ||
        sp_proto_get_string(params, "cwd", false, SP_MAX_PATH, &cwd, &err) < 0 ||
        sp_proto_get_number(params, "timeout", false, 0, SP_MAX_TIMEOUT,
                            &timeout, &err) < 0) {
        reply_error(a, id, SP_RPC_PARAMS, err.message);
        goto out;
    }
    for (size_t i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq || eq == env[i]) {
            reply_error(a, id, SP_RPC_PARAMS,
                        "env entries must be K=V with a non-empty K");
            goto out;
        }
    }
    if (!(envp = merge_env(a->cfg->envp, env))) {
        reply_error(a, id, SP_RPC_INTERNAL, "out of memory");
        goto out;
    }
    /* Resolved here, inside the sandbox's own root and Landlock domain, so
     * a bad directory is a clear error rather than a status. Relative to
     * the workspace (our working directory). */
    cwdfd = open(cwd && *cwd ? cwd : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwdfd < 0) {
        char msg[SP_MAX_PATH + 128];
        snprintf(msg, sizeof(msg), "cannot change to working directory %s: %s",
                 cwd, strerror(errno));
        reply_error(a, id, SP_RPC_EXEC, msg);
        goto out;
    }
    const char *path = sp_env_get(envp, "PATH");
    pid_t relay = 0;
    if (a->cfg->secrets && (relay = start_relay(a, fds)) < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot start the output relay: %s",
                 strerror((int)-relay));
        reply_error(a, id, SP_RPC_EXEC, msg);
        goto out;
    }
    int report = -1;
    pid_t shep = spawn_child(fds, cwdfd, (char **)argv, envp, path, &report);
    if (shep < 0 && relay > 0)
        kill(relay, SIGKILL);
    if (shep < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot fork: %s", strerror(errno));
        reply_error(a, id, SP_RPC_EXEC, msg);
        goto out;
    }

    struct job *nj = realloc(a->jobs, (a->n_jobs + 1) * sizeof(*nj));
    if (!nj) {
        /* Cannot track it: end it now rather than leak it. */
        kill(shep, SIGUSR1);
        close(report);
        if (relay > 0)
            kill(relay, SIGKILL);
        reply_error(a, id, SP_RPC_INTERNAL, "out of memory");
        goto out;
    }
    a->jobs = nj;
    struct job *j = &a->jobs[a->n_jobs++];
    memset(j, 0, sizeof(*j));
    j->id = id;
    j->pid = 0;
    j->report = report;
    j->shep = shep;
    j->t0_us = sp_now_us();
    j->relay = relay;
    /* The command has started (or could not): read at once, so no exec
     * holds a descriptor here while it runs. */
    read_report(j);
    if (j->pid <= 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot fork: %s",
                 strerror(j->pid < 0 ? -j->pid : EAGAIN));
        if (relay > 0)
            kill(relay, SIGKILL);
        a->n_jobs--; /* the shepherd is reaped as an unknown child */
        reply_error(a, id, SP_RPC_EXEC, msg);
        goto out;
    }
    if (timeout > 0)
        j->deadline = sp_now_us() + (uint64_t)(timeout * 1e6);
out:
    for (size_t i = 0; i < nf; i++)
        close(fds[i]);
    if (cwdfd >= 0)
        close(cwdfd);
    free(argv);
    free(env);
    free(envp);
}

static void job_reply(struct agent *a, size_t i);

static void handle_line(struct agent *a, const char *line, size_t len,
                        const char *frame, size_t frame_len)
{
    struct sp_proto_msg m;
    if (sp_proto_parse(line, len, &m, NULL) < 0 || !m.method)
        agent_exit(); /* the supervisor speaks our protocol or is gone */
    json_int_t id = m.id && json_is_integer(m.id) ? json_integer_value(m.id)
                                                  : -1;
    int nfd = 0;
    if (strcmp(m.method, "exec") == 0 && id >= 0) {
        do_exec(a, id, m.params);
    } else if (id >= 0 && sp_files_method(m.method, &nfd)) {
        int fd = -1;
        if (nfd > 0 && sp_proto_take_fds(&a->in, &fd, 1) != 1)
            fd = -1;
        sp_agent_files_handle(a->cfg->sock, a->rootfd, id, m.method,
                              m.params, frame, frame_len, fd);
    } else if (sp_agent_ext_handle(id, m.method, m.params)) {
        /* shells, services, shutdown (agent_ext.h) */
    } else if (strcmp(m.method, "signal") == 0 ||
               strcmp(m.method, "cancel") == 0) {
        json_t *je = m.params ? json_object_get(m.params, "exec") : NULL;
        json_t *js = m.params ? json_object_get(m.params, "signal") : NULL;
        struct job *j = json_is_integer(je)
                            ? find_job(a, json_integer_value(je))
                            : NULL;
        if (j && m.method[0] == 's' && !j->done && json_is_integer(js) &&
            json_integer_value(js) > 0 && json_integer_value(js) < NSIG) {
            signal_job(j, (int)json_integer_value(js));
        } else if (j && m.method[0] == 'c' && !j->cancelled) {
            j->cancelled = true;
            /* Nobody reads the output any more. */
            if (j->relay)
                kill(j->relay, SIGKILL);
            if (j->done) {
                job_reply(a, (size_t)(j - a->jobs));
                sp_proto_msg_free(&m);
                return;
            }
            signal_job(j, SIGTERM);
            j->kill_at = sp_now_us() + (uint64_t)(SP_WS_KILL_GRACE * 1e6);
        }
    } else if (id >= 0) {
        reply_error(a, id, SP_RPC_METHOD, "unknown method");
    }
    sp_proto_msg_free(&m);
}

/* Send job i's status and forget it (a relay still running is reaped
 * later as an unknown child). */
static void job_reply(struct agent *a, size_t i)
{
    struct job *j = &a->jobs[i];
    json_t *res = json_pack("{s:i,s:b}", "status", j->status, "timed_out",
                            j->timed_out);
    if (j->sig)
        json_object_set_new(res, "signal", json_integer(j->sig));
    /* For the report (docs/report.md): the shepherd reaps everything the
     * command started, so its usage is the whole exec's. */
    json_object_set_new(
        res, "usage",
        json_pack("{s:I,s:I,s:I,s:I}", "wall_us", (json_int_t)j->wall_us,
                  "cpu_user_us",
                  (json_int_t)(j->ru.ru_utime.tv_sec * 1000000 +
                               j->ru.ru_utime.tv_usec),
                  "cpu_sys_us",
                  (json_int_t)(j->ru.ru_stime.tv_sec * 1000000 +
                               j->ru.ru_stime.tv_usec),
                  "maxrss_bytes", (json_int_t)j->ru.ru_maxrss * 1024));
    json_object_set_new(res, "seccomp_watched",
                        json_boolean(a->cfg->denials_take != NULL));
    if (a->cfg->denials_take) {
        json_t *d = a->cfg->denials_take(a->cfg->denials_ctx, j->pid, j->t0_us);
        json_object_set(res, "seccomp_denials", json_object_get(d, "denials"));
        json_object_set(res, "seccomp_dropped", json_object_get(d, "dropped"));
        json_decref(d);
    }
    json_t *jid = json_integer(j->id);
    send_line(a, sp_proto_result(jid, res));
    json_decref(jid);
    if (j->report >= 0)
        close(j->report);
    a->jobs[i] = a->jobs[--a->n_jobs];
}

static void reap(struct agent *a)
{
    for (;;) {
        int st = 0;
        struct rusage ru;
        memset(&ru, 0, sizeof(ru));
        pid_t w = wait4(-1, &st, WNOHANG, &ru);
        if (w <= 0)
            return;
        if (sp_agent_files_reaped(a->cfg->sock, w, st))
            continue;
        if (sp_agent_ext_reaped(w, st))
            continue;
        for (size_t i = 0; i < a->n_jobs; i++) {
            struct job *j = &a->jobs[i];
            if (j->relay == w) {
                /* The output is all out: now the status may follow. */
                j->relay = 0;
                if (j->done)
                    job_reply(a, i);
                break;
            }
            if (j->shep != w || j->done)
                continue;
            read_report(j); /* it has ended: there or not, at once */
            if (j->pid < 0 || (j->pid == 0 && WIFEXITED(st) &&
                               WEXITSTATUS(st) == 125)) {
                /* It could not start the command (the pids limit). */
                char msg[128];
                snprintf(msg, sizeof(msg), "cannot fork: %s",
                         strerror(j->pid < 0 ? -j->pid : EAGAIN));
                if (j->relay)
                    kill(j->relay, SIGKILL);
                reply_error(a, j->id, SP_RPC_EXEC, msg);
                a->jobs[i] = a->jobs[--a->n_jobs];
                break;
            }
            /* The shepherd ends as the command did (and has ended the
             * rest of what it started). */
            int status = WIFEXITED(st)     ? WEXITSTATUS(st)
                         : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                           : 125;
            j->sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
            j->ru = ru;
            j->wall_us = sp_now_us() - j->t0_us;
            /* Its group ends with it: after a timeout or a cancel, and
             * when something in the sandbox killed the shepherd itself
             * (it has swept the rest otherwise: then this finds none). */
            if (j->pid > 0)
                kill(-j->pid, SIGKILL);
            if (j->timed_out)
                status = 124;
            j->done = true;
            j->status = status;
            j->deadline = j->kill_at = 0;
            if (j->relay && !j->cancelled) {
                j->reply_by = sp_now_us() +
                              (uint64_t)(SP_SECRET_RELAY_GRACE * 1e6);
                break;
            }
            job_reply(a, i);
            break;
        }
    }
}

static int next_timeout_ms(struct agent *a, uint64_t now)
{
    uint64_t next = 0;
    for (size_t i = 0; i < a->n_jobs; i++) {
        struct job *j = &a->jobs[i];
        uint64_t t = j->done      ? j->reply_by
                     : j->kill_at ? j->kill_at
                     : j->timed_out ? 0
                                    : j->deadline;
        if (t && (!next || t < next))
            next = t;
    }
    if (!next)
        return -1;
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

static void run_timers(struct agent *a, uint64_t now)
{
    for (size_t i = 0; i < a->n_jobs; i++) {
        struct job *j = &a->jobs[i];
        if (j->done) {
            if (now >= j->reply_by)
                job_reply(a, i--);
            continue;
        }
        if (j->kill_at && now >= j->kill_at) {
            signal_job(j, SIGKILL);
            j->kill_at = 0;
        } else if (j->deadline && !j->timed_out && now >= j->deadline) {
            j->timed_out = true;
            signal_job(j, SIGTERM);
            j->kill_at = now + (uint64_t)(a->cfg->kill_after * 1e6);
            if (j->kill_at == now) {
                signal_job(j, SIGKILL);
                j->kill_at = 0;
            }
        }
    }
}

_Noreturn void sp_agent_main(const struct sp_agent_cfg *cfg)
{
    struct agent a = {.cfg = cfg, .sfd = -1};
    /* Our working directory is the workspace: the root of the file API. */
    a.rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    sp_proto_buf_init(&a.in);
    sp_secrets_agent_set(cfg->secrets);
    static const struct sp_agent_module *const mods[] = {
        &sp_agent_pty_module, &sp_agent_svc_module, &sp_agent_port_module,
        &sp_agent_job_module,
    };
    sp_agent_ext_init(cfg, mods, SP_ARRAY_SIZE(mods));

    /* Children start with default dispositions (ignored signals survive
     * execve), so set them once here rather than per exec. Every signal
     * stays blocked in the agent itself; SIGCHLD comes through a signalfd. */
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    sigset_t all, chld;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    a.sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a.sfd < 0)
        agent_exit();

    send_line(&a, sp_proto_request(NULL, "ready", NULL));

    for (;;) {
        struct pollfd pfd[2 + SP_AGENT_EXT_MAX_FDS] = {{cfg->sock, POLLIN, 0},
                                                      {a.sfd, POLLIN, 0}};
        size_t next = sp_agent_ext_pollfds(pfd + 2, SP_AGENT_EXT_MAX_FDS);
        uint64_t now0 = sp_now_us();
        int tmo = next_timeout_ms(&a, now0);
        int etmo = sp_agent_ext_timeout_ms(now0);
        if (etmo >= 0 && (tmo < 0 || etmo < tmo))
            tmo = etmo;
        int pr = poll(pfd, 2 + next, tmo);
        if (pr > 0)
            sp_agent_ext_events(pfd + 2, next);
        if (pr < 0 && errno != EINTR)
            agent_exit();
        if (pr > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(a.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                ;
            reap(&a);
        }
        if (pr > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = sp_proto_recv(cfg->sock, &a.in);
            if (n == 0 || (n < 0 && n != -EAGAIN))
                agent_exit();
            char *line = NULL, *frame = NULL;
            size_t len = 0, flen = 0;
            int r;
            while ((r = sp_proto_next_framed(&a.in, &line, &len, &frame,
                                             &flen)) == 1) {
                handle_line(&a, line, len, frame, flen);
                free(line);
                free(frame);
            }
            if (r < 0)
                agent_exit();
        }
        run_timers(&a, sp_now_us());
        sp_agent_ext_timers(sp_now_us());
    }
}
