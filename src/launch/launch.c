/* launch.c — the one path every sandboxed process is born through:
 *   parent: plan everything (mounts, env, seccomp BPF, Landlock rules,
 *           cgroup) -> clone3(namespaces) -> uid/gid maps -> cgroup ->
 *           release the child -> supervise (signals, timeout, exit status)
 *   child (PID 1 of the new pid namespace): mounts + pivot_root, hostname,
 *           lo -> fork the command -> reap and forward signals
 *   command: setsid -> rlimits -> ids -> caps dropped -> no_new_privs ->
 *           Landlock -> fds closed -> seccomp -> execve
 * Between clone and execve only raw syscalls run on data prepared here. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "cgroup.h"
#include "envbuild.h"
#include "error.h"
#include "ids.h"
#include "landlock.h"
#include "mounts.h"
#include "mountplan.h"
#include "netplumb.h"
#include "report.h"
#include "seccomp.h"
#include "util.h"

extern char **environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP (1 << 2)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)
#endif

/* The signal the supervisor sends the sandbox's init to mean "the timeout
 * ran out: SIGTERM every process". */
#define SP_SIG_TERMINATE_ALL (SIGRTMAX)

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Everything the child needs, prepared before clone. */
struct launch {
    const struct sp_policy *p;
    char *const *argv;
    char **envp;
    const char *path_env;         /* PATH inside, for the command lookup */
    bool prune_path;              /* PATH is the caller's: prune it inside */
    struct sp_mount_plan plan;
    int *scratch;                 /* plan.n ints for mounts.c */
    struct sp_seccomp_prog seccomp;
    bool seccomp_on;
    /* run: the deny list watched (docs/report.md): the watched variant of
     * the filter, and the socketpair over which the command hands its
     * listener to us (-1 = not watched) */
    struct sp_seccomp_prog watched;
    int watch_rd, watch_wr;
    bool want_watch;
    int watch_fd;                 /* agent: its own listener, or -1 */
    struct sp_landlock_plan landlock;
    bool landlock_on;
    int cap_last;
    size_t cmdline_len;           /* bytes of our arg area (/proc/self/cmdline) */
    char shm_path[SP_MAX_PATH];
    bool nproc_fallback;          /* no cgroup: RLIMIT_NPROC = pids */
    int gate_fd;                  /* agent: the attach is pending; a byte
                                     'x' here says it is done (-1: none) */
    int sync_rd, sync_wr;         /* parent -> child: maps written */
    int err_rd, err_wr;           /* child -> parent: sp_child_error */
    bool userns;
    struct sp_ids ids;            /* the user namespace's maps (ids.h) */
    bool ids_fell_back;           /* newuidmap failed: one id after all */
    bool id_switch;               /* root caller: PID 1 becomes the range's
                                     0 (it was born host root) */
    const char *idm_what[3];      /* the trees of plan.idm_fd, for errors */
    int *keep;                    /* agent: the fds PID 1 keeps, n_keep */
    size_t n_keep;
    int agent_sock;               /* workspace mode: the agent's socket, or -1 */
    const char *ws_dst;           /* workspace mode: workspace mount point */
    const struct sp_launch_pid1 *pid1; /* workspace mode: the caller's
                                          PID 1 and mounts, or NULL */
    /* --net allow: the proxy (host side) and the socketpair over which
     * PID 1 hands it the listening socket it made inside the netns. */
    struct sp_proxy *proxy;
    int net_rd, net_wr;           /* parent end, child end; -1 = none */
    /* OCI runtime mode (sandpit-runc): the spec's extras, NULL otherwise */
    const struct sp_oci_launch *oci;
    const struct sp_oci_proc *oproc;
};

struct sp_child_error;
static void oci_sysctls(struct launch *l, struct sp_child_error *ce);
static int oci_attach(const struct sp_oci_launch *o, pid_t pid, sp_error *err);
static int oci_prepare(struct launch *l, const sp_run_opts *o, sp_error *err);
static void oci_terminal(struct launch *l);

static void child_report(struct launch *l, struct sp_child_error *ce)
{
    ssize_t n;
    do {
        n = write(l->err_wr, ce, sizeof(*ce));
    } while (n < 0 && errno == EINTR);
}

static _Noreturn void child_fail(struct launch *l, struct sp_child_error *ce,
                                 int status)
{
    child_report(l, ce);
    _exit(status);
}

/* Drop every capability, in two steps around the uid change: first the
 * bounding set (so no file capability grants any on exec), the ambient set
 * and locked securebits (so uid 0 gains nothing on execve), which all need
 * CAP_SETPCAP; then, after setresuid, permitted, effective and inheritable
 * (crun CVE-2022-27650). */
/* With more than one id mapped, the sandbox's root keeps these in its own
 * user namespace, where they reach only files and processes of ids mapped
 * there (docs/security.md): chown and tar of several owners, runuser,
 * apt-get's privilege drop. Not CAP_FSETID or CAP_SETFCAP: nothing
 * set-uid or file-capable is made through them. */
#define SP_NS_CAPS                                                         \
    ((1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) |                    \
     (1ull << CAP_FOWNER) | (1ull << CAP_SETUID) | (1ull << CAP_SETGID) |  \
     (1ull << CAP_KILL))

static int drop_caps_bounding(int cap_last, uint64_t keep)
{
    for (int c = 0; c <= cap_last; c++)
        if (!(keep & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
            errno != EINVAL)
            return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
        errno != EINVAL)
        return -errno;
    /* With caps kept, root inside is root as usual: an exec as uid 0
     * keeps them (no_new_privs caps them at the permitted set), a change
     * to another uid drops them, an exec as another uid has none. */
    unsigned long bits = SECBIT_NO_CAP_AMBIENT_RAISE |
                         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (!keep)
        bits |= SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
    else
        bits |= SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

static int drop_caps_sets(uint64_t keep)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].permitted = data[0].effective = (uint32_t)keep;
    data[1].permitted = data[1].effective = (uint32_t)(keep >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    return 0;
}

static void harden(struct launch *l);

/* chown HOME and the XDG directories in it (no symlink is followed: only
 * sandpit has written there yet). Async-signal-safe. */
static void chown_home(const char *home, uid_t uid, gid_t gid)
{
    static const char *const sub[] = {".", ".config", ".cache", ".local",
                                      ".local/state", ".local/share"};
    int fd = open(home, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    for (size_t i = 0; i < SP_ARRAY_SIZE(sub); i++)
        if (fchownat(fd, sub[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* the command will see the plain error itself */
    close(fd);
}

/* The command: runs as the grandchild, PID 2 of the sandbox. */
static _Noreturn void run_command(struct launch *l)
{
    struct sp_child_error ce = {0};

    /* A new session: the sandbox can never TIOCSTI into the caller's
     * terminal (bubblewrap CVE-2017-5226). */
    if (setsid() < 0)
        sp_child_error_set(&ce, SP_STEP_SETUID, errno, "setsid");

    /* Inherited handlers and the blocked mask must not leak into CMD. */
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    if (l->prune_path)
        sp_env_path_prune(l->envp);
    if (l->watch_rd >= 0) {
        close(l->watch_rd);
        l->watch_rd = -1;
    }
    if (l->oproc && l->oproc->terminal)
        oci_terminal(l);
    harden(l);

    int e = sp_exec_search(l->argv, l->envp, l->path_env);
    if (l->oproc && l->oproc->fifo_fd >= 0) {
        /* after start: nobody reads the error pipe any more */
        dprintf(2, "sandpit-runc: %s: %s\n", l->argv[0],
                e == ENOENT ? "command not found" : strerror(e));
    }
    sp_child_error_set(&ce, e == ENOENT ? SP_STEP_EXEC_NOTFOUND : SP_STEP_EXEC, e,
                       l->argv[0]);
    child_fail(l, &ce, e == ENOENT ? 127 : 126);
}

/* Lock the calling process down as the command will run: rlimits, ids,
 * capabilities, no_new_privs, working directory, Landlock, fds, seccomp.
 * Shared by the one-shot command and the workspace agent (which applies it
 * to itself once, so each exec is a plain fork and execve). Reports and
 * exits 125 on failure. */
static void harden_oci(struct launch *l);

static void harden(struct launch *l)
{
    if (l->oproc) {
        harden_oci(l);
        return;
    }
    struct sp_child_error ce = {0};
    const struct sp_policy *p = l->p;
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_RLIMIT, errno, "core"), &ce), 125);
    if (p->limits.nofile) {
        rl.rlim_cur = rl.rlim_max = p->limits.nofile;
        struct rlimit cur;
        if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < rl.rlim_max)
            rl.rlim_cur = rl.rlim_max = cur.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_RLIMIT, errno, "nofile"), &ce), 125);
    }
    if (l->nproc_fallback && l->userns && p->limits.pids) {
        rl.rlim_cur = rl.rlim_max = p->limits.pids;
        if (setrlimit(RLIMIT_NPROC, &rl) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_RLIMIT, errno, "nproc"), &ce), 125);
    }
    if (p->limits.fsize) {
        rl.rlim_cur = rl.rlim_max = p->limits.fsize;
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_RLIMIT, errno, "fsize"), &ce), 125);
    }

    /* Only root inside keeps the namespace's caps, and only when ids other
     * than its own are mapped (ids.h). */
    uint64_t keep = l->userns && l->ids.kind != SP_IDS_SINGLE &&
                            !l->ids_fell_back && p->uid == 0
                        ? SP_NS_CAPS
                        : 0;
    int r = drop_caps_bounding(l->cap_last, keep);
    if (r < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CAPS, -r, NULL), &ce), 125);
    if ((!l->userns || l->id_switch) && (p->uid != 0 || p->gid != 0)) {
        if (setgroups(0, NULL) < 0 || setresgid(p->gid, p->gid, p->gid) < 0 ||
            setresuid(p->uid, p->uid, p->uid) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SETUID, errno, "uid"), &ce), 125);
    }
    r = drop_caps_sets(keep);
    if (r < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CAPS, -r, NULL), &ce), 125);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_NNP, errno, NULL), &ce), 125);

    /* The working directory is resolved inside the new root only. */
    if (chdir(l->plan.workdir) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CWD, errno, l->plan.workdir), &ce), 125);

    if (l->landlock_on) {
        int idx = -1;
        r = sp_landlock_apply(&l->landlock, &idx);
        if (r < 0) {
            const char *what = idx >= 0 && (size_t)idx < l->landlock.n_rules
                                   ? l->landlock.rules[idx].path
                                   : "ruleset";
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_LANDLOCK, -r, what), &ce), 125);
        }
    }

    /* No fd of sandpit's reaches the command: everything above 2 is closed
     * on exec except the fds the policy passes. */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (size_t i = 0; i < p->n_pass_fds; i++)
        if (fcntl(p->pass_fds[i], F_SETFD, 0) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_FDS, errno, "pass-fd"), &ce), 125);

    if (l->seccomp_on && l->agent_sock >= 0 && l->watched.filter) {
        /* the agent answers its own listener from a thread */
        r = sp_seccomp_install_watched_here(&l->watched, &l->seccomp,
                                            &l->watch_fd);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SECCOMP, -r, NULL), &ce), 125);
        sp_exec_search_hook(p->seccomp_profile ? NULL : sp_seccomp_install_exec);
    } else if (l->seccomp_on && l->watch_wr >= 0) {
        r = sp_seccomp_install_watched(&l->watched, &l->seccomp, l->watch_wr);
        close(l->watch_wr);
        l->watch_wr = -1;
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SECCOMP, -r, NULL), &ce), 125);
        sp_exec_search_hook(p->seccomp_profile ? NULL : sp_seccomp_install_exec);
    } else if (l->seccomp_on) {
        r = sp_seccomp_install(&l->seccomp);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SECCOMP, -r, NULL), &ce), 125);
        /* Every command then gets the exec filter stacked on it
         * (sp_seccomp_install_exec), just before its execve: the agent,
         * the process hardened here, keeps openat2 for its own use, and
         * its exec children (vfork or fork) run the hook. */
        sp_exec_search_hook(p->seccomp_profile ? NULL : sp_seccomp_install_exec);
    }
}

/* Workspace mode: PID 1 becomes the agent. It locks itself down once as a
 * command would be (so each exec is a bare fork and execve), tells the
 * supervisor by closing the error pipe, and serves the socketpair. */
static void blank_cmdline(const struct launch *l, const char *name);

static _Noreturn void become_agent(struct launch *l)
{
    setsid();
    if (l->prune_path)
        sp_env_path_prune(l->envp);
    harden(l);
    /* A uid change (--uid without a user namespace) clears both. The agent
     * also exits when the socketpair reaches EOF, which covers a
     * supervisor that died in between. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "sandpit-agent", 0, 0, 0);
    blank_cmdline(l, "sandpit-agent");
    struct sp_launch_pid1_env env = {
        .sock = l->agent_sock,
        .envp = l->envp,
        .path_env = l->path_env,
        .default_timeout = l->p->timeout,
        .kill_after = l->p->kill_after,
        .gate_fd = l->gate_fd,
    };
    if (l->watch_fd >= 0) {
        struct sp_seccomp_bg *bg = sp_seccomp_bg_start(l->watch_fd);
        l->watch_fd = -1;
        if (bg) {
            env.denials_take = sp_seccomp_bg_take;
            env.denials_ctx = bg;
        }
    }
    close(l->err_wr);
    l->err_wr = -1;
    l->pid1->main(l->pid1->arg, &env);
    _exit(125); /* main never returns */
}

/* PID 1 of the sandbox: set up the world, start the command, reap every
 * orphan, forward signals, and exit with the command's status. */
static _Noreturn void sandbox_init(struct launch *l)
{
    struct sp_child_error ce = {0};

    /* Die with the supervisor; then wait until it has written our uid/gid
     * maps and cgroup. EOF means it died before that. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    close(l->sync_wr);
    if (l->agent_sock >= 0) {
        /* The supervisor holds its lock, control socket and log: none of
         * them may enter the sandbox (the agent never execs, so O_CLOEXEC
         * alone would not close them). */
        sp_close_all_except(l->keep, l->n_keep, 0);
    }
    char c;
    ssize_t n;
    do {
        n = read(l->sync_rd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125);
    l->ids_fell_back = c == 's'; /* newuidmap failed: one id is mapped */
    close(l->err_rd);
    if (l->id_switch) {
        /* Born as host root, which the range does not map: become its 0
         * (and drop host root's groups) before touching anything. Raw
         * calls: glibc's would signal threads of the parent's. The
         * credential change clears the parent-death signal: set again. */
        if (syscall(SYS_setgroups, 0, NULL) < 0 ||
            syscall(SYS_setresgid, 0, 0, 0) < 0 ||
            syscall(SYS_setresuid, 0, 0, 0) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SETUID, errno, "the sandbox's root"), &ce), 125);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    }
    /* Nothing in the sandbox may ptrace or read the memory of its init. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, "sandpit-init", 0, 0, 0);
    if (l->oci && l->oci->sysctl)
        oci_sysctls(l, &ce);
    if (sp_mounts_apply(&l->plan, l->scratch, l->p->limits.tmp_size, &ce) < 0)
        child_fail(l, &ce, 125);
    if (l->pid1 && l->pid1->populate) {
        const char *what = "";
        int r = l->pid1->populate(l->pid1->arg, l->p->uid, l->p->gid, &what);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_TMPFS, -r, what), &ce), 125);
    }
    /* Without a user namespace the private HOME was made by real root:
     * give it to the sandbox's user (with one, the mapping already does). */
    if ((!l->userns || l->id_switch) && (l->p->uid != 0 || l->p->gid != 0))
        chown_home(l->plan.home, l->p->uid, l->p->gid);
    if (l->p->hostname &&
        sethostname(l->p->hostname, strlen(l->p->hostname)) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_HOSTNAME, errno, l->p->hostname), &ce), 125);
    if (l->p->net != SP_NET_HOST) {
        int r = sp_loopback_up();
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_LOOPBACK, -r, "lo"), &ce), 125);
    }
    if (l->net_wr >= 0) {
        /* The proxy's listening socket, made here in our netns, accepted
         * on by the host side (docs/network.md). */
        if (l->net_rd >= 0 && l->agent_sock < 0)
            close(l->net_rd); /* (the agent path closed it already) */
        int r = sp_net_child_send_listener(l->net_wr, SP_NET_PROXY_PORT);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_LOOPBACK, -r, "(egress proxy listener 127.0.0.1:3128)"), &ce), 125);
        close(l->net_wr);
        l->net_wr = -1;
    }

    /* The supervisor has put us in the cgroup: now start the command. 'n'
     * means there is no cgroup: bound processes by RLIMIT_NPROC instead,
     * which the kernel counts per user namespace (Linux >= 5.14). */
    do {
        n = read(l->sync_rd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125);
    /* 'p' (agent only): the cgroup attach runs on; the agent serves at once
     * and forks nothing before the 'x' that follows on this pipe. */
    l->gate_fd = -1;
    if (c == 'p' && l->agent_sock >= 0)
        l->gate_fd = l->sync_rd;
    else if (!l->oci)
        close(l->sync_rd);
    l->nproc_fallback = c == 'n';
    /* In the cgroup now: let runtimes see its limits (docs/limits.md). */
    if (c == 'x')
        (void)sp_cgroup_view();
    if (l->agent_sock >= 0)
        become_agent(l);

    pid_t cmd = fork();
    if (cmd < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_FORK, errno, NULL), &ce), 125);
    if (cmd == 0)
        run_command(l);
    blank_cmdline(l, "sandpit-init");
    if (l->oci) {
        /* The command waits for `start`; the runtime has written the
         * state: from now on the container outlives it ('d'). EOF: it
         * died first, and so does the container. */
        do {
            n = read(l->sync_rd, &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1 || c != 'd') {
            kill(cmd, SIGKILL);
            _exit(125);
        }
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        struct sp_child_error ready = {.step = SP_STEP_READY};
        child_report(l, &ready);
    }

    /* init keeps no fd: a pipe reader outside must see EOF when the command
     * and its children close their ends, not wait for us. */
    syscall(SYS_close_range, 0U, ~0U, 0U);

    sigset_t all;
    sigfillset(&all);
    int status = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue;
        if (sig == SIGCHLD) {
            for (;;) {
                int st;
                pid_t w = waitpid(-1, &st, WNOHANG);
                if (w <= 0)
                    break;
                if (w == cmd) {
                    status = WIFEXITED(st)     ? WEXITSTATUS(st)
                             : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                               : 125;
                    /* The command is done: whatever it left behind ends
                     * with the namespace when we exit. */
                    _exit(status);
                }
            }
        } else if (sig == SP_SIG_TERMINATE_ALL) {
            kill(-1, SIGTERM);
        } else {
            /* Forward to the command's process group (it is a session
             * leader), as a terminal would. */
            if (kill(-cmd, sig) < 0)
                kill(cmd, sig);
        }
    }
}

static int write_file(const char *path, const char *text, sp_error *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open %s", path);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len)
        return sp_error_set(err, errno, "cannot write %s", path);
    return 0;
}

static int write_map_lines(pid_t pid, const char *which,
                           const struct sp_idmap *m, size_t n, sp_error *err)
{
    char path[64];
    char buf[SP_OCI_MAX_IDMAPS * 36 + 1];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(buf); i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n",
                                m[i].inside, m[i].outside, m[i].count);
    if (len >= sizeof(buf))
        return sp_error_set(err, E2BIG, "%s too long", which);
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
    return write_file(path, buf, err);
}

static const char *step_text(int step)
{
    switch (step) {
    case SP_STEP_SYNC: return "waiting for the supervisor";
    case SP_STEP_MOUNT_NS: return "making the mount namespace private";
    case SP_STEP_OPEN_SOURCE: return "cannot open mount source";
    case SP_STEP_ROOT: return "cannot build the sandbox root";
    case SP_STEP_MOUNT_POINT: return "cannot create mount point";
    case SP_STEP_BIND: return "cannot bind mount";
    case SP_STEP_TMPFS: return "cannot mount tmpfs at";
    case SP_STEP_SYMLINK: return "cannot create symlink";
    case SP_STEP_PROC: return "cannot set up /proc";
    case SP_STEP_DEV: return "cannot set up /dev";
    case SP_STEP_HIDE: return "cannot hide";
    case SP_STEP_COPY: return "cannot copy";
    case SP_STEP_OVERLAY: return "cannot mount the copy-on-write layer at";
    case SP_STEP_PIVOT: return "cannot pivot into the sandbox root";
    case SP_STEP_HOSTNAME: return "cannot set the host name";
    case SP_STEP_LOOPBACK: return "cannot bring up the loopback interface";
    case SP_STEP_FORK: return "cannot start the command process";
    case SP_STEP_RLIMIT: return "cannot set resource limit";
    case SP_STEP_SETUID: return "cannot change user";
    case SP_STEP_CAPS: return "cannot drop capabilities";
    case SP_STEP_NNP: return "cannot set no_new_privs";
    case SP_STEP_CWD: return "cannot change to working directory";
    case SP_STEP_LANDLOCK: return "cannot apply Landlock rule for";
    case SP_STEP_SECCOMP: return "cannot install the seccomp filter";
    case SP_STEP_FDS: return "cannot pass file descriptor";
    case SP_STEP_EXEC_NOTFOUND: return "command not found";
    case SP_STEP_EXEC: return "cannot execute";
    default: return "sandbox setup failed";
    }
}

static void log_msg(const sp_run_opts *o, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_msg(const sp_run_opts *o, int level, const char *fmt, ...)
{
    if (!o->log || level > (o->verbosity > 0 ? SP_LOG_INFO + o->verbosity - 1
                                             : SP_LOG_WARN))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, level, buf);
}

/* How long our command line is, so the sandbox's PID 1 (a fork of us, not
 * an exec) can blank it: /proc/1/cmdline is readable by every process in
 * the sandbox and would show the host's `sandpit create NAME --from
 * /home/... -e TOKEN=...`. */
static size_t read_cmdline_len(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    return n;
}

/* Blank the arg area (program_invocation_name is argv[0], at its start)
 * and name the process `name`: /proc/<pid>/cmdline shows it from now on.
 * Only in a fork of ours that needs main's argv no more. */
static void blank_cmdline(const struct launch *l, const char *name)
{
    size_t n = l->cmdline_len, k = strlen(name);
    if (n <= k || !program_invocation_name)
        return;
    memset(program_invocation_name, 0, n);
    memcpy(program_invocation_name, name, k);
}

static int read_cap_last(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 63;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    int v = n > 0 ? atoi(buf) : 63;
    return v > 0 && v < 64 ? v : 63;
}

/* Landlock rules mirror the mount plan: read-only mounts read+execute,
 * writable mounts everything, /dev and /proc their own classes. */
static int build_landlock(struct launch *l, const sp_run_opts *o, sp_error *err)
{
    const struct sp_policy *p = l->p;
    int abi = sp_landlock_abi();
    if (abi <= 0) {
        if (p->require & SP_LAYER_LANDLOCK)
            return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                                 "--require landlock: this kernel has no "
                                 "Landlock (needs Linux 5.13 with "
                                 "CONFIG_SECURITY_LANDLOCK and lsm=landlock)");
        log_msg(o, SP_LOG_WARN,
                "Landlock is not available on this kernel: file access is "
                "limited by mounts alone");
        return 0;
    }
    struct sp_ll_path *paths = calloc(2 * l->plan.n + 2, sizeof(*paths));
    if (!paths)
        return sp_error_set(err, ENOMEM, "landlock rules");
    size_t n = 0;
    /* The root itself: a read-only tmpfs holding only mount points, so
     * reading it reveals nothing but the plan. */
    paths[n++] = (struct sp_ll_path){
        "/", l->plan.root ? SP_LL_READ_WRITE : SP_LL_READ_EXEC};
    for (size_t i = 0; i < l->plan.n; i++) {
        const struct sp_mount_op *op = &l->plan.ops[i];
        switch (op->kind) {
        case SP_OP_BIND:
            /* Read-only binds are covered by the rule on "/": only what is
             * writable needs a rule of its own. Fewer rules, faster start. */
            if (!op->ro)
                paths[n++] = (struct sp_ll_path){op->dst, SP_LL_READ_WRITE};
            break;
        case SP_OP_TMPFS:
        case SP_OP_OVERLAY:
        case SP_OP_FS:
            paths[n++] = (struct sp_ll_path){op->dst, SP_LL_READ_WRITE};
            break;
        case SP_OP_DEV: {
            paths[n++] = (struct sp_ll_path){op->dst, SP_LL_DEV};
            /* /dev/shm is a writable tmpfs (shm_open, multiprocessing). */
            size_t dl = strlen(op->dst);
            if (dl + sizeof("/shm") <= sizeof(l->shm_path)) {
                memcpy(l->shm_path, op->dst, dl);
                memcpy(l->shm_path + dl, "/shm", sizeof("/shm"));
                paths[n++] = (struct sp_ll_path){l->shm_path, SP_LL_READ_WRITE};
            }
            break;
        }
        case SP_OP_PROC:
            paths[n++] = (struct sp_ll_path){op->dst, SP_LL_PROC};
            break;
        case SP_OP_HIDE:
        case SP_OP_MASK:
        case SP_OP_RONLY:
        case SP_OP_SYMLINK:
        case SP_OP_DIR:
        case SP_OP_COPY:
        default:
            break;
        }
    }
    /* TCP is handled only when the policy names ports (tcp_ports): in the
     * private modes (none, allow:) the network namespace is the boundary.
     * It holds only lo (and, for allow:, the proxy's listener on
     * 127.0.0.1), so a connect() can reach nothing but the sandbox's own
     * loopback; the proxy is the only way out. Loopback TCP must work there
     * (test servers, language servers, asyncio): docs/landlock.md. With
     * --net host the caller asked for the host's network; tcp_ports is how
     * to narrow it. Named ports come with the published ones (their
     * services bind them, the agent connects to them) and the proxy's. */
    uint16_t ports[SP_MAX_TCP_PORTS + SP_MAX_PUBLISH + 1];
    size_t n_ports = 0;
    bool deny_tcp = p->n_tcp_ports > 0;
    if (deny_tcp) {
        for (size_t i = 0; i < p->n_tcp_ports; i++)
            ports[n_ports++] = p->tcp_ports[i];
        for (size_t i = 0; i < p->n_publish; i++)
            ports[n_ports++] = p->publish[i].port;
        if (p->net == SP_NET_ALLOW)
            ports[n_ports++] = SP_NET_PROXY_PORT;
        if (abi < 4) {
            if (p->require & SP_LAYER_LANDLOCK) {
                free(paths);
                return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                                     "--require landlock: tcp_ports needs "
                                     "Landlock ABI 4 (Linux 6.7); this "
                                     "kernel has ABI %d", abi);
            }
            log_msg(o, SP_LOG_WARN,
                    "tcp_ports: this kernel's Landlock (ABI %d) cannot "
                    "restrict TCP (needs ABI 4, Linux 6.7): not enforced",
                    abi);
        }
    }
    int r = sp_landlock_plan_build(abi, paths, n, deny_tcp,
                                   n_ports ? ports : NULL, n_ports, true,
                                   &l->landlock, err);
    free(paths);
    if (r < 0)
        return sp_error_prefix(err, "landlock");
    if (l->landlock.notes[0])
        log_msg(o, SP_LOG_INFO, "%s", l->landlock.notes);
    l->landlock_on = true;
    return 0;
}

/* The sandbox's cgroup, or none (with a loud warning) when the host cannot
 * give one and limits are not --require'd. */
static int setup_cgroup(const struct sp_policy *p, const sp_run_opts *o,
                        struct sp_cgroup **ret, sp_error *err)
{
    struct sp_cgroup *cg = NULL;
    int rc = 0;
    bool want_cg = p->limits.memory || p->limits.pids || p->limits.cpus > 0;
    if (want_cg) {
        sp_error cgerr = {0};
        rc = sp_cgroup_create(&p->limits, NULL, &cg, &cgerr);
        if (rc < 0) {
            if (p->require & SP_LAYER_LIMITS) {
                rc = sp_error_setk(err, SP_ERR_REQUIRE, 0,
                                   "--require limits: %s", cgerr.message);
                return rc;
            }
            log_msg(o, SP_LOG_WARN,
                    "%s%s (use --require limits to refuse instead)",
                    cgerr.message,
                    p->limits.pids && (p->userns || geteuid() != 0)
                        ? "; processes are bounded by RLIMIT_NPROC instead, "
                          "memory and CPU are not bounded"
                        : "");
            cg = NULL;
        } else {
            log_msg(o, SP_LOG_INFO, "limits: %s", sp_cgroup_describe(cg));
        }
    } else if (p->require & SP_LAYER_LIMITS) {
        rc = sp_error_setk(err, SP_ERR_REQUIRE, 0,
                           "--require limits: no memory, pids or cpu limit "
                           "is set");
        return rc;
    }

    *ret = cg;
    return 0;
}

/* Root callers: the sources the sandbox's unprivileged ids could not open
 * (a workspace under /root, a 0600 file to copy), opened here as host
 * root before clone and inherited by PID 1 (mountplan.h). Bind clones get
 * their attributes here: the child could not change a mount of ours. */
static int preopen_sources(struct launch *l, sp_error *err)
{
    for (size_t i = 0; i < l->plan.n; i++) {
        const struct sp_mount_op *op = &l->plan.ops[i];
        int fd = -1;
        if (op->kind == SP_OP_BIND) {
            fd = open_tree(AT_FDCWD, op->src,
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
            if (fd >= 0) {
                struct mount_attr a = {
                    .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                (op->ro ? MOUNT_ATTR_RDONLY : 0)};
                if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a,
                                  sizeof(a)) < 0) {
                    int e = errno;
                    close(fd);
                    return sp_error_setk(err, SP_ERR_SYSTEM, e,
                                         "cannot bind mount %s", op->src);
                }
            }
        } else if (op->kind == SP_OP_COPY) {
            fd = open(op->src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        } else {
            continue;
        }
        if (fd < 0 && !op->optional)
            return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                                 "cannot open mount source %s", op->src);
        l->scratch[i] = fd;
    }
    l->plan.preopened = true;
    return 0;
}

/* `s` with a leading `from` (a whole path component) replaced by `to`;
 * NULL when it does not start so (or on ENOMEM, *oom set). */
static char *rebase(const char *s, const char *from, const char *to, bool *oom)
{
    size_t n = from ? strlen(from) : 0;
    if (n < 2 || strncmp(s, from, n) != 0 || (s[n] != '/' && s[n] != '\0'))
        return NULL;
    char *r = NULL;
    if (asprintf(&r, "%s%s", to, s + n) < 0) {
        *oom = true;
        return NULL;
    }
    return r;
}

/* Each ':'-separated element of *field under one of the trees, renamed to
 * its place at /tmp/<k> (mounts.c attach_idmapped). */
static int rebase_field(const char **field, const char *const from[][2],
                        size_t n_from)
{
    if (!*field)
        return 0;
    size_t cap = strlen(*field) * 2 + 64;
    char *out = malloc(cap);
    char *copy = strdup(*field);
    if (!out || !copy) {
        free(out);
        free(copy);
        return -ENOMEM;
    }
    out[0] = '\0';
    size_t len = 0;
    bool oom = false;
    char *save = NULL;
    for (char *el = strtok_r(copy, ":", &save); el;
         el = strtok_r(NULL, ":", &save)) {
        char *r = NULL;
        for (size_t k = 0; k < n_from && !r && !oom; k++)
            r = rebase(el, from[k][0], from[k][1], &oom);
        const char *use = r ? r : el;
        size_t ul = strlen(use);
        if (len + ul + 2 > cap) {
            cap = (len + ul + 2) * 2;
            char *o2 = realloc(out, cap);
            if (!o2) {
                oom = true;
                free(r);
                break;
            }
            out = o2;
        }
        if (len)
            out[len++] = ':';
        memcpy(out + len, use, ul + 1);
        len += ul;
        free(r);
    }
    free(copy);
    if (oom) {
        free(out);
        return -ENOMEM;
    }
    free((char *)*field);
    *field = out;
    return 0;
}

/* Root caller's workspace: its overlays' layers (upper dirs, snapshot
 * layers, the skeleton under the state dir; --from) are host root's
 * files, which the sandbox's ids cannot reach. Clone those trees here,
 * ID-map them after clone (idmap_apply) so host root is the sandbox's
 * root there, and name the layers by their place in the child. The host's
 * own system trees (/usr, /etc/...) stay plain: nobody's inside. */
static int plan_idmapped_layers(struct launch *l, sp_error *err)
{
    struct sp_mount_plan *pl = &l->plan;
    const char *trees[3];
    size_t n = 0;
    if (pl->relbase[1])
        trees[n++] = pl->relbase[1];
    if (l->pid1->from)
        trees[n++] = l->pid1->from;
    /* --rootfs DIR: the tree given as the sandbox's system (an image's is
     * under the state dir already) */
    const char *rootfs = l->p->rootfs;
    if (rootfs && !(pl->relbase[1] && sp_path_has_prefix(rootfs, pl->relbase[1])) &&
        !(pl->relbase[0] && sp_path_has_prefix(rootfs, pl->relbase[0])))
        trees[n++] = rootfs;
    const char *from[5][2];
    size_t n_from = 0;
    static const char *const at[] = {"/tmp/0", "/tmp/1", "/tmp/2"};
    for (size_t k = 0; k < n; k++) {
        int fd = open_tree(AT_FDCWD, trees[k],
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (fd < 0)
            return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                                 "cannot open %s", trees[k]);
        struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
        if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0) {
            int e = errno;
            close(fd);
            return sp_error_setk(err, SP_ERR_SYSTEM, e, "cannot clone %s",
                                 trees[k]);
        }
        /* (relbase is replaced below: name the state dir in words) */
        l->idm_what[pl->n_idm] =
            trees[k] == pl->relbase[1] ? "the state directory" : trees[k];
        pl->idm_fd[pl->n_idm++] = fd;
        from[n_from][0] = trees[k];
        from[n_from++][1] = at[k];
        if (k == 0 && pl->relbase[1] && pl->relbase[0] &&
            strcmp(pl->relbase[0], trees[k]) != 0) {
            from[n_from][0] = pl->relbase[0];
            from[n_from++][1] = at[k];
        }
    }
    int r = 0;
    for (size_t i = 0; i < pl->n && r == 0; i++) {
        struct sp_mount_op *op = &pl->ops[i];
        if (op->kind != SP_OP_OVERLAY)
            continue;
        r = rebase_field(&op->src, from, n_from);
        if (r == 0)
            r = rebase_field(&op->upper, from, n_from);
        if (r == 0)
            r = rebase_field(&op->work, from, n_from);
    }
    if (r == 0 && pl->root) {
        r = rebase_field(&pl->root->src, from, n_from);
        if (r == 0)
            r = rebase_field(&pl->root->upper, from, n_from);
        if (r == 0)
            r = rebase_field(&pl->root->work, from, n_from);
    }
    /* The trees are attached on a tmpfs over /tmp in the child: a layer
     * of another tree left under /tmp would be hidden by it. */
    for (size_t i = 0; i < pl->n + 1 && r == 0; i++) {
        const struct sp_mount_op *op = i < pl->n ? &pl->ops[i] : pl->root;
        if (!op || op->kind != SP_OP_OVERLAY)
            continue;
        const char *f[] = {op->src, op->upper, op->work};
        for (size_t j = 0; j < 3; j++)
            for (const char *c = f[j]; c && *c; c = strchr(c, ':') ? strchr(c, ':') + 1 : "")
                if (strncmp(c, "/tmp/", 5) == 0 &&
                    !(c[5] >= '0' && c[5] < '0' + (char)n && (c[6] == '/' || c[6] == ':' || !c[6])))
                    return sp_error_setk(err, SP_ERR_USAGE, 0,
                                         "a copy-on-write layer under /tmp "
                                         "(%s) cannot be used by a root "
                                         "caller's workspace",
                                         op->dst);
    }
    if (r == 0 && pl->relbase[1]) {
        /* the state dir is now /tmp/0: layers relative to it (mounts.c) */
        char *a = strdup(at[0]), *b = strdup(at[0]);
        if (!a || !b) {
            free(a);
            free(b);
            r = -ENOMEM;
        } else {
            free(pl->relbase[0]);
            free(pl->relbase[1]);
            pl->relbase[0] = a;
            pl->relbase[1] = b;
        }
    }
    if (r < 0)
        return sp_error_set(err, -r, "mount plan");
    return 0;
}

/* After the maps are written: make the preopened read-write binds and the
 * layer trees ID-mapped mounts through the sandbox's own user namespace,
 * so ids are the same on both sides there (host root = the sandbox's
 * root). Where the kernel or file system cannot, the mount stays plain
 * (its files nobody's inside, not writable by the sandbox's root): said
 * loudly, or refused under --require idmap. */
static int idmap_apply(struct launch *l, pid_t pid, const sp_run_opts *o,
                       sp_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
    /* --uid/--gid N: the caller's files are the sandbox's user's there
     * (host 0 <-> N swapped), as for an ordinary user (ids.h) */
    const struct sp_policy *p = l->p;
    _cleanup_close_ int ns =
        p->uid || p->gid ? sp_ids_swapped_userns(&l->ids, p->uid, p->gid)
                         : open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return sp_error_set(err, p->uid || p->gid ? -ns : errno,
                            "cannot make the user namespace to ID-map "
                            "through");
    struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP,
                           .userns_fd = (uint64_t)ns};
    size_t total = l->plan.n + (size_t)l->plan.n_idm;
    for (size_t j = 0; j < total; j++) {
        int fd;
        const char *what;
        if (j < l->plan.n) {
            const struct sp_mount_op *op = &l->plan.ops[j];
            if (op->kind != SP_OP_BIND || op->ro || l->scratch[j] < 0)
                continue;
            fd = l->scratch[j];
            what = op->src;
        } else {
            size_t k = j - l->plan.n;
            fd = l->plan.idm_fd[k];
            what = l->idm_what[k];
        }
        if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a,
                          sizeof(a)) == 0)
            continue;
        int e = errno;
        /* a submount that cannot be mapped: map the top one alone */
        if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) == 0) {
            log_msg(o, SP_LOG_INFO,
                    "idmap: %s ID-mapped without its submounts (%s)", what,
                    strerror(e));
            continue;
        }
        e = errno;
        if (l->p->require & SP_LAYER_IDMAP)
            return sp_error_setk(err, SP_ERR_REQUIRE, e,
                                 "--require idmap: cannot make %s an "
                                 "ID-mapped mount",
                                 what);
        log_msg(o, SP_LOG_WARN,
                "cannot make %s an ID-mapped mount (%s): the caller's files "
                "there are nobody's inside and the sandbox cannot write them; "
                "it never runs as host root (use --require idmap to refuse "
                "instead)",
                what, strerror(e));
    }
    return 0;
}

/* The fds PID 1 of a workspace keeps when it closes the rest. */
static int build_keep(struct launch *l)
{
    l->keep = malloc((l->plan.n + 4 + SP_ARRAY_SIZE(l->plan.idm_fd)) * sizeof(int));
    if (!l->keep)
        return -ENOMEM;
    size_t n = 0;
    int base[] = {l->sync_rd, l->err_wr, l->agent_sock, l->net_wr};
    for (size_t i = 0; i < SP_ARRAY_SIZE(base); i++)
        l->keep[n++] = base[i];
    if (l->plan.preopened)
        for (size_t i = 0; i < l->plan.n; i++)
            if (l->scratch[i] >= 0)
                l->keep[n++] = l->scratch[i];
    for (int k = 0; k < l->plan.n_idm; k++)
        l->keep[n++] = l->plan.idm_fd[k];
    l->n_keep = n;
    return 0;
}

/* The parent's copies of the preopened sources, once PID 1 has its own. */
static void close_preopened(struct launch *l)
{
    if (l->plan.preopened && l->scratch)
        for (size_t i = 0; i < l->plan.n; i++)
            if (l->scratch[i] >= 0) {
                close(l->scratch[i]);
                l->scratch[i] = -1;
            }
    for (int k = 0; k < l->plan.n_idm; k++)
        if (l->plan.idm_fd[k] >= 0) {
            close(l->plan.idm_fd[k]);
            l->plan.idm_fd[k] = -1;
        }
}

static void launch_free(struct launch *l)
{
    close_preopened(l);
    free(l->keep);
    l->keep = NULL;
    sp_mount_plan_free(&l->plan);
    free(l->scratch);
    sp_env_free(l->envp);
    sp_seccomp_prog_free(&l->seccomp);
    sp_seccomp_prog_free(&l->watched);
    sp_close_keep_errno(l->watch_rd);
    sp_close_keep_errno(l->watch_wr);
    l->watch_rd = l->watch_wr = l->watch_fd = -1;
    sp_landlock_plan_free(&l->landlock);
    sp_close_keep_errno(l->sync_rd);
    sp_close_keep_errno(l->sync_wr);
    sp_close_keep_errno(l->err_rd);
    sp_close_keep_errno(l->err_wr);
    sp_close_keep_errno(l->net_rd);
    sp_close_keep_errno(l->net_wr);
    l->net_rd = l->net_wr = -1;
    sp_proxy_free(l->proxy);
    l->proxy = NULL;
}

static void write_stats_json(const char *path, const sp_stats *st, int status)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return;
    fprintf(f,
            "{\"exit_status\": %d, \"wall_us\": %llu, \"cpu_user_us\": %llu, "
            "\"cpu_sys_us\": %llu, \"memory_peak\": %s%llu%s, "
            "\"pids_peak\": %s%llu%s, \"oom_killed\": %s, \"timed_out\": %s}\n",
            status, (unsigned long long)st->wall_us,
            (unsigned long long)st->cpu_user_us,
            (unsigned long long)st->cpu_sys_us, "",
            (unsigned long long)st->memory_peak, "", "",
            (unsigned long long)st->pids_peak, "",
            st->oom_killed ? "true" : "false",
            st->timed_out ? "true" : "false");
    fclose(f);
}

/* Everything planned before clone: layers checked against --require, the
 * mount plan, environment, seccomp program, Landlock rules and the pipes.
 * On failure the caller frees l with launch_free. */

/* File systems that are the kernel's own interfaces: a workspace or bind
 * source on one of them hands the sandbox the host (core_pattern,
 * power/state, release_agent, device nodes). policy.c refuses the usual
 * paths; this catches the same file systems anywhere (a bind of /proc
 * elsewhere, /proc/PID/root/..., a cgroup mount). docs/policy.md. */
static const struct {
    unsigned long magic;
    const char *name;
} kernel_fs[] = {
    {0x9fa0, "proc"},           {0x62656572, "sysfs"},
    {0x27e0eb, "cgroup"},       {0x63677270, "cgroup2"},
    {0x64626720, "debugfs"},    {0x74726163, "tracefs"},
    {0x73636673, "securityfs"}, {0xcafe4a11, "bpf"},
    {0x62656570, "configfs"},   {0xde5e81e4, "efivarfs"},
    {0x42494e4d, "binfmt_misc"}, {0x6165676c, "pstore"},
    {0xf97cff8c, "selinuxfs"},  {0x65735543, "fusectl"},
};

/* Refuse src when it lies on a kernel interface file system, or on the
 * file system of the host's /dev (devtmpfs reports tmpfs's magic, so it is
 * told by its device) unless /dev is on the root file system. RO sources
 * are allowed with allow_system_ro. */
static int check_source_fs(const char *what, const char *src, sp_error *err)
{
    struct statfs sf;
    if (statfs(src, &sf) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "%s %s", what, src);
    for (size_t i = 0; i < SP_ARRAY_SIZE(kernel_fs); i++)
        if ((unsigned long)sf.f_type == kernel_fs[i].magic)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s %s is on a %s file system: a workspace "
                                 "or bind source may not be on proc, sysfs, "
                                 "devtmpfs, cgroup or another kernel "
                                 "interface file system (docs/policy.md)",
                                 what, src, kernel_fs[i].name);
    struct stat sb, dev, root;
    if (stat(src, &sb) == 0 && stat("/dev", &dev) == 0 &&
        stat("/", &root) == 0 && dev.st_dev != root.st_dev &&
        sb.st_dev == dev.st_dev)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s %s is on the file system of the host's /dev: "
                             "a workspace or bind source may not be on proc, "
                             "sysfs, devtmpfs, cgroup or another kernel "
                             "interface file system (docs/policy.md)",
                             what, src);
    return 0;
}

static int check_sources_fs(const struct sp_policy *p, sp_error *err)
{
    if (p->workspace_mode != SP_WS_NONE && p->workspace &&
        (p->workspace_mode == SP_WS_RW || !p->allow_system_ro)) {
        int r = check_source_fs("workspace", p->workspace, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < p->n_mounts; i++) {
        const struct sp_mount_rule *m = &p->mounts[i];
        if (m->type != SP_MOUNT_RW &&
            (m->type != SP_MOUNT_RO || p->allow_system_ro))
            continue;
        int r = check_source_fs(m->type == SP_MOUNT_RW ? "--rw source"
                                                       : "--ro source",
                                m->src, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Who the sandbox is on the host (ids.h): the maps, and --require
 * idrange/idmap against what this caller can have. */
static int plan_ids(struct launch *l, const sp_run_opts *o, sp_error *err)
{
    const struct sp_policy *p = l->p;
    if (l->oci)
        return 0; /* the spec's maps, or the runtime's default (oci_spec.c) */
    if (!l->userns) {
        if (p->require & (SP_LAYER_IDMAP | SP_LAYER_IDRANGE))
            return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                                 "--require %s conflicts with --no-userns",
                                 p->require & SP_LAYER_IDMAP ? "idmap"
                                                             : "idrange");
        return 0;
    }
    sp_ids_plan(&l->ids);
    if (l->ids.kind == SP_IDS_ROOT) {
        if (p->uid >= l->ids.uid.count || p->gid >= l->ids.gid.count)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "uid/gid %u/%u lies outside the sandbox's "
                                 "id range (0-%u)",
                                 p->uid, p->gid, l->ids.uid.count - 1);
        l->id_switch = true;
        return 0;
    }
    if (l->ids.kind == SP_IDS_SINGLE) {
        if (p->require & SP_LAYER_IDRANGE)
            return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                                 "--require idrange: only one id can be "
                                 "mapped inside (%s)",
                                 l->ids.why);
        log_msg(o, SP_LOG_WARN,
                "only your own id is mapped inside (%s): files of other "
                "owners cannot be made (tar, chown, apt-get fail); see "
                "docs/security.md (use --require idrange to refuse instead)",
                l->ids.why);
    }
    return 0;
}

static int launch_prepare(struct launch *l, const sp_run_opts *o, sp_error *err)
{
    const struct sp_policy *p = l->p;
    int rc = 0;
    int fds[2];
    l->net_rd = l->net_wr = -1; /* launch_free closes them */
    l->watch_rd = l->watch_wr = -1;

    if (l->oproc)
        return oci_prepare(l, o, err);
    /* --require: refuse before anything starts when a layer is missing. */
    l->userns = p->userns || geteuid() != 0;
    if ((p->require & SP_LAYER_USERNS) && !l->userns)
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require userns conflicts with --no-userns");
    if ((p->require & SP_LAYER_NETNS) && p->net == SP_NET_HOST)
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require netns conflicts with --net host");
    if ((p->require & SP_LAYER_SECCOMP) && !p->seccomp)
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require seccomp conflicts with --no-seccomp");
    if ((p->require & SP_LAYER_LANDLOCK) && !p->landlock)
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require landlock conflicts with --no-landlock");
    /* disk: every tmpfs is bounded by it (a workspace's image is checked
     * at create, docs/disk.md) */
    if ((p->require & SP_LAYER_DISK) && !p->limits.disk)
        return sp_error_setk(err, SP_ERR_REQUIRE, 0,
                             "--require disk conflicts with --disk 0");

    if ((rc = check_sources_fs(p, err)) < 0)
        return rc;
    if ((rc = sp_mount_plan_build_at(p, l->ws_dst, &l->plan, err)) < 0)
        return rc;
    if (l->pid1 && l->pid1->add_mounts &&
        (rc = l->pid1->add_mounts(l->pid1->arg, &l->plan, l->userns, err)) < 0)
        return rc;
    l->scratch = calloc(l->plan.n + 1, sizeof(int));
    if (!l->scratch) {
        return sp_error_set(err, ENOMEM, "mount plan");
    }
    for (size_t i = 0; i <= l->plan.n; i++)
        l->scratch[i] = -1;
    if ((rc = plan_ids(l, o, err)) < 0)
        return rc;
    if (l->id_switch) {
        if ((rc = preopen_sources(l, err)) < 0)
            return rc;
        if (l->pid1 && l->pid1->layered &&
            (rc = plan_idmapped_layers(l, err)) < 0)
            return rc;
    }
    if ((rc = sp_env_build(p, environ, l->plan.home, &l->envp, err)) < 0)
        return rc;
    if (p->net == SP_NET_ALLOW) {
        struct sp_proxy_config pc;
        if ((rc = sp_net_config_of_policy(p, &pc, err)) < 0)
            return rc;
        rc = sp_proxy_new(&pc, &l->proxy, err);
        size_t n_rules = pc.n_rules;
        sp_proxy_config_free(&pc);
        if (rc < 0)
            return rc;
        if (sp_net_env_add(&l->envp, SP_NET_PROXY_PORT) < 0)
            return sp_error_set(err, ENOMEM, "environment");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
            return sp_error_set(err, errno, "socketpair");
        l->net_rd = fds[0];
        l->net_wr = fds[1];
        log_msg(o, SP_LOG_INFO,
                "net: egress proxy on 127.0.0.1:%d inside, %zu allow rules",
                SP_NET_PROXY_PORT, n_rules);
    }
    l->path_env = sp_env_get(l->envp, "PATH");
    l->prune_path = sp_env_path_inherited(p, environ);
    l->cap_last = read_cap_last();
    l->cmdline_len = read_cmdline_len();

    if (p->seccomp) {
        /* The default filter was compiled at build time; only a custom
         * profile runs libseccomp here. */
        if (!p->seccomp_profile)
            rc = sp_seccomp_default_cached(p->allow_ptrace, &l->seccomp);
        else
            rc = sp_seccomp_build(p, &l->seccomp, err);
        if (rc == -ENOMEM)
            sp_error_set(err, ENOMEM, "building the filter");
        if (rc < 0) {
            sp_error_prefix(err, "seccomp");
            return rc;
        }
        l->seccomp_on = true;
        if (l->want_watch && !p->seccomp_profile) {
            if (sp_seccomp_watched_variant(&l->seccomp, &l->watched) < 0)
                return sp_error_set(err, ENOMEM, "seccomp watch");
        }
        if (l->want_watch && !p->seccomp_profile && !l->pid1) {
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
                return sp_error_set(err, errno, "socketpair");
            l->watch_rd = fds[0];
            l->watch_wr = fds[1];
        }
    } else {
        log_msg(o, SP_LOG_WARN, "seccomp is off (--no-seccomp): the kernel's "
                                "whole system call surface is reachable");
    }
    if (p->landlock) {
        if ((rc = build_landlock(l, o, err)) < 0)
            return rc;
    } else {
        log_msg(o, SP_LOG_WARN,
                "Landlock is off (--no-landlock): file access is limited by "
                "mounts alone");
    }
    if (p->net == SP_NET_HOST)
        log_msg(o, SP_LOG_WARN,
                "--net host: the sandbox shares the host's network (no "
                "network isolation)");

    log_msg(o, SP_LOG_INFO,
            "layers: namespaces %s%smount pid ipc uts cgroup; landlock %s; "
            "seccomp %s (%u instructions); %zu mount operations",
            l->userns ? "user " : "", p->net != SP_NET_HOST ? "net " : "",
            l->landlock_on ? "on" : "off", l->seccomp_on ? "on" : "off",
            l->seccomp_on ? (unsigned)l->seccomp.len : 0u, l->plan.n);
    if (l->landlock_on)
        log_msg(o, SP_LOG_INFO, "landlock: ABI %d, %zu rules", l->landlock.abi,
                l->landlock.n_rules);

    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = sp_error_set(err, errno, "pipe");
        return rc;
    }
    l->sync_rd = fds[0];
    l->sync_wr = fds[1];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = sp_error_set(err, errno, "pipe");
        return rc;
    }
    l->err_rd = fds[0];
    l->err_wr = fds[1];
    if (l->agent_sock >= 0 && build_keep(l) < 0)
        return sp_error_set(err, ENOMEM, "launch");

    return 0;
}

/* clone3 into new namespaces, write the id maps, release the child to
 * build its root, make and join the cgroup, release it again. Sets
 * *ret_pid, *ret_pidfd and *ret_cg (NULL when there is no cgroup); on
 * failure the child is killed and reaped. Signals must be blocked. */
/* --net allow: take the listening socket PID 1 sends once lo is up and
 * give it to the proxy. Blocks until it comes, or EOF (the child failed
 * first: its error record says why) which is not an error here. */
static int net_take_listener(struct launch *l, sp_error *err)
{
    if (l->net_rd < 0)
        return 0;
    int lfd = sp_net_recv_listener(l->net_rd);
    close(l->net_rd);
    l->net_rd = -1;
    if (lfd < 0)
        return 0;
    int r = sp_proxy_add_listener(l->proxy, lfd);
    if (r < 0)
        return sp_error_set(err, -r, "egress proxy listener");
    return 0;
}

static int launch_clone(struct launch *l, const sp_run_opts *o,
                        pid_t *ret_pid, int *ret_pidfd,
                        struct sp_cgroup **ret_cg, sp_error *err)
{
    const struct sp_policy *p = l->p;
    struct sp_cgroup *cg = NULL;
    int rc = 0;
    uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                     CLONE_NEWCGROUP | CLONE_PIDFD;
    if (l->userns)
        flags |= CLONE_NEWUSER;
    if (p->net != SP_NET_HOST)
        flags |= CLONE_NEWNET;
    if (l->oci) {
        flags = l->oci->clone_ns | CLONE_PIDFD;
        for (size_t i = 0; i < l->oci->n_join; i++)
            if (setns(l->oci->join_fds[i], l->oci->join_types[i]) < 0)
                return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                                     "cannot join the namespace the spec "
                                     "names (%zu)", i);
    }
    struct clone_args_v2 ca;
    memset(&ca, 0, sizeof(ca));
    ca.flags = flags;
    ca.pidfd = (uint64_t)(uintptr_t)ret_pidfd;
    ca.exit_signal = SIGCHLD;
    pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid < 0 && errno == EPERM && l->userns && geteuid() != 0) {
        return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                             "the host refused to create a user namespace "
                             "(check kernel.unprivileged_userns_clone, "
                             "user.max_user_namespaces and AppArmor's "
                             "restrict_unprivileged_userns)");
    }
    if (pid < 0) {
        rc = sp_error_setk(err, SP_ERR_SYSTEM, errno,
                           "cannot create the sandbox namespaces");
        return rc;
    }
    if (pid == 0)
        sandbox_init(l);

    close(l->sync_rd);
    l->sync_rd = -1;
    close(l->err_wr);
    l->err_wr = -1;
    sp_close_keep_errno(l->net_wr);
    l->net_wr = -1;
    sp_close_keep_errno(l->watch_wr);
    l->watch_wr = -1;

    bool fell_back = false;
    if (l->oci && l->userns) {
        /* setgroups stays allowed: the maps are written by the runtime
         * (host root), and the spec's additionalGids need it. */
        if ((rc = write_map_lines(pid, "uid_map", l->oci->uid_map,
                                  l->oci->n_uid_map, err)) < 0 ||
            (rc = write_map_lines(pid, "gid_map", l->oci->gid_map,
                                  l->oci->n_gid_map, err)) < 0) {
            sp_error_prefix(err, "user namespace maps");
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return rc;
        }
    } else if (l->userns &&
               (rc = sp_ids_write(pid, &l->ids, p->uid, p->gid, &fell_back,
                                  err)) < 0) {
        sp_error_prefix(err, "user namespace maps");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    if (fell_back) {
        l->ids_fell_back = true;
        if (p->require & SP_LAYER_IDRANGE) {
            rc = sp_error_setk(err, SP_ERR_REQUIRE, 0,
                               "--require idrange: %s", err->message);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return rc;
        }
        log_msg(o, SP_LOG_WARN,
                "only your own id is mapped inside (%s): files of other "
                "owners cannot be made (use --require idrange to refuse "
                "instead)",
                err->message);
        err->message[0] = '\0';
        err->code = 0;
    }
    if (l->id_switch && (rc = idmap_apply(l, pid, o, err)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    close_preopened(l);
    /* Release the child to build its root; meanwhile (the other core) make
     * the cgroup. The child waits for a second byte before it starts the
     * command, so the command and all it forks are born inside the cgroup.
     * 's': only one id could be mapped after all. */
    if (write(l->sync_wr, fell_back ? "s" : "x", 1) != 1) {
        rc = sp_error_set(err, errno, "releasing the sandbox");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    if ((rc = setup_cgroup(p, o, &cg, err)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    if (l->oci && (rc = oci_attach(l->oci, pid, err)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    /* The agent too waits for the move (an RCU grace period, ms): its
     * PID 1 must be in the cgroup before it makes the cgroup namespace
     * whose view runtimes read (sp_cgroup_view), and it is hardened (no
     * mount) from the moment it serves. docs/limits.md. */
    if (cg && (rc = sp_cgroup_attach(cg, pid, err)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    /* EPIPE: the child failed building its root and exited; its error
     * record is read after the wait below. (SIGPIPE is blocked here and
     * drained before the mask is restored.) */
    if (write(l->sync_wr, cg || l->oci ? "x" : "n", 1) != 1 && errno != EPIPE) {
        rc = sp_error_set(err, errno, "releasing the sandbox");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    if (!l->oci) {
        close(l->sync_wr);
        l->sync_wr = -1;
    }

    *ret_pid = pid;
    *ret_cg = cg;
    return 0;
}

int sp_launch_agent(const struct sp_policy *p, const sp_run_opts *o,
                    const struct sp_launch_pid1 *pid1,
                    struct sp_launch_handle *ret, sp_error *err)
{
    static char *const agent_argv[] = {"sandpit-agent", NULL};
    struct launch l = {.p = p, .sync_rd = -1, .sync_wr = -1, .err_rd = -1,
                       .err_wr = -1, .net_rd = -1, .net_wr = -1,
                       .agent_sock = pid1->sock,
                       .ws_dst = pid1->ws_dst, .pid1 = pid1,
                       .argv = agent_argv, .watch_fd = -1,
                       .want_watch = !o || !o->no_denial_watch};
    struct sp_cgroup *cg = NULL;
    int pidfd = -1, rc = 0;
    pid_t pid = -1;

    if (!p->finalized)
        return sp_error_setk(err, SP_ERR_USAGE, 0, "policy not finalized");
    if (p->n_pass_fds > 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "--pass-fd has no meaning for a workspace");
    if ((rc = launch_prepare(&l, o, err)) < 0)
        goto fail;
    if ((rc = launch_clone(&l, o, &pid, &pidfd, &cg, err)) < 0)
        goto fail;
    if ((rc = net_take_listener(&l, err)) < 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        goto fail;
    }

    /* The agent closes its end of the error pipe once it has locked itself
     * down; a record means it failed on the way. */
    struct sp_child_error ce = {0};
    ssize_t got;
    do {
        got = read(l.err_rd, &ce, sizeof(ce));
    } while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof(ce) && ce.step != SP_STEP_NONE) {
        ce.path[sizeof(ce.path) - 1] = '\0';
        rc = sp_error_setk(err, SP_ERR_SYSTEM, ce.err, "%s%s%s",
                           step_text(ce.step), ce.path[0] ? " " : "",
                           ce.path);
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    ret->proxy = l.proxy; /* NULL unless --net allow */
    l.proxy = NULL;
    launch_free(&l);
    ret->pid = pid;
    ret->pidfd = pidfd;
    ret->cg = cg;
    return 0;
fail:
    if (cg)
        sp_cgroup_destroy(cg);
    if (pidfd >= 0)
        close(pidfd);
    launch_free(&l);
    return rc;
}

/* ---- the report of sp_run (docs/report.md) ---------------------------- */

struct run_watch {
    struct sp_denials *den;
    int net_log_fd;              /* --net-log, or -1 */
};

/* The proxy's events: every one to --net-log, the refusals counted. */
static void run_net_event(void *ctx, const struct sp_proxy_event *ev)
{
    struct run_watch *rw = ctx;
    if (rw->net_log_fd >= 0)
        sp_net_log_to_fd(&rw->net_log_fd, ev);
    if (ev->decision != SP_PROXY_DENIED)
        return;
    struct sp_denial d;
    memset(&d, 0, sizeof(d));
    d.kind = SP_DENIAL_NETWORK;
    snprintf(d.what, sizeof(d.what), "%s", ev->host);
    d.port = ev->port;
    d.err = ev->status;
    /* "egress to H:P denied: WHY" -> "WHY" */
    const char *why = strstr(ev->reason, " denied: ");
    snprintf(d.rule, sizeof(d.rule), "%s",
             why ? why + 9 : ev->reason[0] ? ev->reason : "refused by the proxy");
    d.first_ms = (sp_now_us() - rw->den->t0_us) / 1000u;
    sp_denials_add(rw->den, &d);
}

static json_t *obs(bool on, const char *why)
{
    json_t *o = json_pack("{s:b}", "observed", on);
    if (!on && why)
        json_object_set_new(o, "why", json_string(why));
    return o;
}

static json_t *run_report(const struct launch *l, const sp_run_opts *o,
                          const sp_stats *st, int rc,
                          const struct sp_denials *den, bool watched,
                          const char *watch_why, struct sp_cgroup *cg)
{
    const struct sp_policy *p = l->p;
    sp_exec_end e;
    sp_end_from_run(st, rc, p->limits.memory, p->limits.pids, &e);
    json_t *r = json_object();
    json_t *argv = json_array();
    for (size_t i = 0; o->argv[i] && i < 64; i++)
        json_array_append_new(argv, json_string(o->argv[i]));
    json_object_set_new(r, "version", json_integer(1));
    json_object_set_new(r, "command", argv);
    json_object_set_new(r, "outcome", sp_end_json(&e));
    json_object_set_new(
        r, "resources",
        sp_report_resources(
            st,
            cg ? (sp_cgroup_version(cg) == 1 ? "memory.max_usage_in_bytes"
                                             : "memory.peak")
               : "rusage (the largest single process)",
            cg ? "pids.peak needs Linux >= 6.13"
               : "no cgroup: sandpit could not make one on this host",
            cg ? "the io controller is not enabled for sandpit's cgroup "
                 "(v2 io.stat wbytes)"
               : "no cgroup"));
    json_object_set_new(r, "denials", sp_denials_json(den));
    json_object_set_new(r, "denials_total",
                        json_integer((json_int_t)den->total));
    json_object_set_new(r, "denials_dropped",
                        json_integer((json_int_t)den->dropped));

    json_t *ob = json_object();
    json_object_set_new(ob, "syscall", obs(watched, watch_why));
    json_object_set_new(
        ob, "network_proxy",
        obs(p->net == SP_NET_ALLOW,
            p->net == SP_NET_ALLOW ? NULL : "no egress proxy (--net allow: "
                                            "not in force)"));
    json_object_set_new(
        ob, "network_direct",
        obs(false, p->net == SP_NET_HOST
                       ? "--net host: no layer refuses connections"
                       : "own network namespace, only lo: ENETUNREACH, "
                         "no event"));
    char fwhy[320];
    json_object_set_new(
        ob, "file",
        obs(false, sp_report_file_why(sp_landlock_abi(), fwhy, sizeof(fwhy))));
    json_object_set_new(r, "observed", ob);

    json_t *ly = json_object();
    json_object_set_new(ly, "user_namespace", json_boolean(l->userns));
    json_object_set_new(ly, "landlock",
                        json_pack("{s:b,s:i}", "on", l->landlock_on, "abi",
                                  l->landlock_on ? l->landlock.abi : 0));
    json_object_set_new(
        ly, "seccomp",
        json_pack("{s:b,s:s}", "on", l->seccomp_on, "filter",
                  !l->seccomp_on ? "none"
                  : p->seccomp_profile ? p->seccomp_profile
                  : p->allow_ptrace    ? "default (ptrace allowed)"
                                       : "default"));
    json_object_set_new(ly, "limits",
                        json_string(cg ? sp_cgroup_describe(cg)
                                       : "no cgroup (RLIMIT_NPROC for pids)"));
    static const char *const nets[] = {"none", "host", "allow"};
    json_object_set_new(ly, "network",
                        json_string(p->net <= SP_NET_ALLOW ? nets[p->net]
                                                           : "?"));
    if (p->limits.memory)
        json_object_set_new(ly, "memory_limit_bytes",
                            json_integer((json_int_t)p->limits.memory));
    if (p->limits.pids)
        json_object_set_new(ly, "pids_limit",
                            json_integer((json_int_t)p->limits.pids));
    if (p->timeout > 0)
        json_object_set_new(ly, "timeout_s", json_real(p->timeout));
    json_object_set_new(r, "layers", ly);
    return r;
}

SP_EXPORT int sp_run(const sp_policy *p, const sp_run_opts *o,
                     sp_stats *ret_stats, sp_error *err)
{
    struct launch l = {.p = p, .sync_rd = -1, .sync_wr = -1, .err_rd = -1,
                       .err_wr = -1, .net_rd = -1, .net_wr = -1,
                       .agent_sock = -1, .watch_fd = -1};
    struct sp_cgroup *cg = NULL;
    int pidfd = -1, sfd = -1, rc = -SP_EFAIL, net_log_fd = -1;
    sigset_t mask, oldmask;
    sigemptyset(&oldmask);
    bool mask_set = false;
    sp_stats stats = {0};
    uint64_t t0 = sp_now_us();
    struct sp_denials *den = NULL;
    struct sp_seccomp_watch *watch = NULL;
    struct run_watch rw = {.net_log_fd = -1};
    char watch_why[160] = "";
    bool watched = false;

    if (!p->finalized)
        return sp_error_setk(err, SP_ERR_USAGE, 0, "policy not finalized");
    if (!o || !o->argv || !o->argv[0])
        return sp_error_setk(err, SP_ERR_USAGE, 0, "no command given");
    if (p->n_publish > 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "\"publish\" is for workspaces (sandpit create "
                             "--publish), not sandpit run");
    size_t argc = 0;
    while (o->argv[argc])
        argc++;
    if (argc > SP_MAX_ARGS)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "too many arguments (%zu; at most %d)", argc,
                             SP_MAX_ARGS);
    l.argv = o->argv;
    l.want_watch = !o->no_denial_watch;
    den = calloc(1, sizeof(*den));
    if (!den) {
        rc = sp_error_set(err, ENOMEM, "report");
        goto out;
    }
    den->t0_us = t0;
    rw.den = den;

    if ((rc = launch_prepare(&l, o, err)) < 0)
        goto out;
    if (!p->seccomp)
        snprintf(watch_why, sizeof(watch_why), "seccomp is off");
    else if (p->seccomp_profile)
        snprintf(watch_why, sizeof(watch_why),
                 "a custom seccomp profile: its refusals are not watched");
    else if (o->no_denial_watch)
        snprintf(watch_why, sizeof(watch_why), "not asked for");

    /* Signals arrive through a signalfd and are forwarded to the sandbox;
     * the child starts with them blocked (init waits for them). */
    sigemptyset(&mask);
    int fwd[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                 SIGALRM, SIGWINCH, SIGCONT};
    for (size_t i = 0; i < SP_ARRAY_SIZE(fwd); i++)
        sigaddset(&mask, fwd[i]);
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, &oldmask) < 0) {
        rc = sp_error_set(err, errno, "sigprocmask");
        goto out;
    }
    mask_set = true;

    if (l.proxy && p->net_log) {
        net_log_fd = open(p->net_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
                                          O_NOCTTY,
                          0600);
        if (net_log_fd < 0) {
            rc = sp_error_setk(err, SP_ERR_USAGE, errno, "--net-log %s",
                               p->net_log);
            goto out;
        }
    }
    if (l.proxy) {
        rw.net_log_fd = net_log_fd;
        sp_proxy_set_log(l.proxy, run_net_event, &rw);
    }

    pid_t pid = -1;
    if ((rc = launch_clone(&l, o, &pid, &pidfd, &cg, err)) < 0)
        goto out;
    /* while the command runs: what sandpits killed by SIGKILL left */
    sp_cgroup_sweep(cg);

    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    uint64_t deadline = p->timeout > 0 ? t0 + (uint64_t)(p->timeout * 1e6) : 0;
    uint64_t kill_at = 0;
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid)
            break;
        int timeout_ms = -1;
        uint64_t now = sp_now_us();
        if (kill_at && now >= kill_at) {
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            kill_at = 0;
        } else if (deadline && now >= deadline) {
            stats.timed_out = true;
            syscall(SYS_pidfd_send_signal, pidfd, SP_SIG_TERMINATE_ALL, NULL, 0);
            deadline = 0;
            kill_at = now + (uint64_t)(p->kill_after * 1e6);
            if (kill_at == now)
                continue;
        }
        uint64_t next = kill_at ? kill_at : deadline;
        if (next)
            timeout_ms = (int)((next - now + 999) / 1000);
        if (l.proxy) {
            int pt = sp_proxy_next_timeout_ms(l.proxy);
            if (pt >= 0 && (timeout_ms < 0 || pt < timeout_ms))
                timeout_ms = pt;
        }
        /* poll skips a negative fd: the proxy's slots are -1 without it.
         * The listener is taken when PID 1 sends it, so a slow sandbox
         * setup never holds up the timeout or signal forwarding. */
        struct pollfd pfd[6] = {{pidfd, POLLIN, 0},
                                {sfd, POLLIN, 0},
                                {l.proxy ? sp_proxy_fd(l.proxy) : -1, POLLIN, 0},
                                {l.net_rd, POLLIN, 0},
                                {l.watch_rd, POLLIN, 0},
                                {sp_seccomp_watch_fd(watch), POLLIN, 0}};
        int pr = poll(pfd, 6, timeout_ms);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && (pfd[4].revents & (POLLIN | POLLHUP | POLLERR))) {
            bool refused = false;
            int lfd = sp_seccomp_recv_listener(l.watch_rd, &refused);
            close(l.watch_rd);
            l.watch_rd = -1;
            if (lfd >= 0) {
                watch = sp_seccomp_watch_new(lfd, den);
                watched = watch != NULL;
                if (!watch)
                    snprintf(watch_why, sizeof(watch_why),
                             "out of memory for the watch");
            } else if (refused) {
                snprintf(watch_why, sizeof(watch_why),
                         "the kernel refused a seccomp listener (%s): "
                         "Linux < 5.0, or one is on the filter chain already",
                         strerror(-lfd));
                log_msg(o, SP_LOG_INFO, "report: %s", watch_why);
            } else {
                snprintf(watch_why, sizeof(watch_why),
                         "the command ended before its filter was installed");
            }
        }
        if (pr > 0 && watch && pfd[5].revents &&
            sp_seccomp_watch_dispatch(watch) < 0) {
            /* nobody is left under the filter: stop polling it */
            sp_seccomp_watch_free(watch);
            watch = NULL;
        }
        if (pr > 0 && (pfd[3].revents & (POLLIN | POLLHUP | POLLERR)) &&
            (rc = net_take_listener(&l, err)) < 0) {
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            waitpid(pid, NULL, 0);
            goto out;
        }
        if (l.proxy)
            sp_proxy_dispatch(l.proxy, 0);
        if (sfd >= 0 && pr > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                    continue;
                syscall(SYS_pidfd_send_signal, pidfd, (int)si.ssi_signo, NULL,
                        0);
            }
        }
    }
    stats.wall_us = sp_now_us() - t0;
    stats.cpu_user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u +
                        (uint64_t)ru.ru_utime.tv_usec;
    stats.cpu_sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u +
                       (uint64_t)ru.ru_stime.tv_usec;
    stats.memory_peak = (uint64_t)ru.ru_maxrss * 1024u;
    stats.memory_known = true;
    if (cg) {
        sp_stats cs = {0};
        if (sp_cgroup_read_stats(cg, &cs) == 0) {
            if (cs.memory_known) {
                stats.memory_peak = cs.memory_peak;
                stats.memory_known = true;
            }
            if (cs.pids_known) {
                stats.pids_peak = cs.pids_peak;
                stats.pids_known = true;
            }
            stats.oom_killed = cs.oom_killed;
            stats.pids_refused = cs.pids_refused;
            stats.io_written = cs.io_written;
            stats.io_known = cs.io_known;
        }
    }

    struct sp_child_error ce = {0};
    ssize_t got = read(l.err_rd, &ce, sizeof(ce));
    if (got == (ssize_t)sizeof(ce) && ce.step != SP_STEP_NONE) {
        ce.path[sizeof(ce.path) - 1] = '\0';
        int kind = ce.step == SP_STEP_EXEC_NOTFOUND ? SP_ERR_NOTFOUND
                   : ce.step == SP_STEP_EXEC        ? SP_ERR_NOEXEC
                                                    : SP_ERR_SYSTEM;
        if (ce.step == SP_STEP_EXEC_NOTFOUND)
            rc = sp_error_setk(err, kind, 0, "%s: command not found",
                               ce.path);
        else
            rc = sp_error_setk(err, kind, ce.err, "%s%s%s", step_text(ce.step),
                               ce.path[0] ? " " : "", ce.path);
        goto out;
    }

    if (stats.timed_out)
        rc = 124;
    else if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        rc = 128 + WTERMSIG(status);
    else
        rc = 125;
    if (stats.oom_killed && rc == 128 + SIGKILL)
        rc = 137;

    if (p->stats_json)
        write_stats_json(p->stats_json, &stats, rc);
    if (watch)
        sp_seccomp_watch_dispatch(watch); /* what is left */
    if (o->report) {
        json_t *rep = run_report(&l, o, &stats, rc, den, watched,
                                 watched ? NULL : watch_why, cg);
        *o->report =
            rep ? json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(rep);
    }

out:
    sp_seccomp_watch_free(watch);
    free(den);
    if (cg)
        sp_cgroup_destroy(cg);
    if (pidfd >= 0)
        close(pidfd);
    if (sfd >= 0)
        close(sfd);
    if (mask_set) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
            ;
        sigprocmask(SIG_SETMASK, &oldmask, NULL);
    }
    launch_free(&l);
    if (net_log_fd >= 0)
        close(net_log_fd);
    if (ret_stats)
        *ret_stats = stats;
    return rc;
}

/* ---- the OCI runtime (sandpit-runc) ------------------------------------ */

/* Decimal text of v into buf (no snprintf between clone and execve). */
static void oci_utoa(unsigned long v, char *buf, size_t len)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof(tmp));
    size_t i = 0;
    while (n && i + 1 < len)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

/* The spec's sysctls, written in our own namespaces through the host's
 * /proc (before pivot): "net.ipv4.ip_forward=1" -> /proc/sys/net/ipv4/
 * ip_forward. Keys were checked by src/oci (namespaced ones only). */
static void oci_sysctls(struct launch *l, struct sp_child_error *ce)
{
    for (size_t i = 0; l->oci->sysctl[i]; i++) {
        const char *kv = l->oci->sysctl[i];
        char path[512] = "/proc/sys/";
        size_t n = strlen(path);
        const char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        for (const char *k = kv; k < eq && n + 1 < sizeof(path); k++)
            path[n++] = *k == '.' ? '/' : *k;
        path[n] = '\0';
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t vl = strlen(eq + 1);
        if (fd < 0 || write(fd, eq + 1, vl) != (ssize_t)vl) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            child_fail(l, (sp_child_error_set(ce, SP_STEP_SYSCTL, e, kv), ce), 125);
        }
        close(fd);
    }
}

/* A pty from the container's own devpts; the master goes to the console
 * socket (SCM_RIGHTS, as runc sends it), the peer becomes the controlling
 * terminal and stdio. Runs after setsid. */
static void oci_terminal(struct launch *l)
{
    struct sp_child_error ce = {0};
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int unlock = 0;
    if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_TERMINAL, errno, "/dev/ptmx"), &ce), 125);
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_TERMINAL, errno, "pty peer"), &ce), 125);
    char name[] = "/dev/ptmx";
    struct iovec iov = {name, sizeof(name) - 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &m, sizeof(int));
    ssize_t r;
    do {
        r = sendmsg(l->oproc->console_fd, &msg, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_TERMINAL, errno, "console socket"), &ce), 125);
    close(m);
    close(l->oproc->console_fd);
    if (l->oproc->rows && l->oproc->cols) {
        struct winsize ws = {.ws_row = l->oproc->rows, .ws_col = l->oproc->cols};
        ioctl(s, TIOCSWINSZ, &ws);
    }
    if (ioctl(s, TIOCSCTTY, 0) < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 ||
        dup2(s, 2) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_TERMINAL, errno, "controlling terminal"), &ce), 125);
    if (s > 2)
        close(s);
}

/* Is argv[0] there to run (so `create` fails as runc's does, not the
 * process after `start`)? 0 or an errno. */
static int try_find(const char *file, void *arg)
{
    struct stat st;
    if (stat(file, &st) < 0 || S_ISDIR(st.st_mode))
        return ENOENT;
    return access(file, X_OK) == 0 ? 0 : EACCES;
}

static int oci_find(const char *cmd, const char *path_env)
{
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 ? 0 : errno;
    return sp_path_search(cmd, path_env, try_find, NULL);
}

static void oci_locks(struct launch *l)
{
    struct sp_child_error ce = {0};
    if (l->landlock_on) {
        int idx = -1;
        int r = sp_landlock_apply(&l->landlock, &idx);
        if (r < 0) {
            const char *what = idx >= 0 && (size_t)idx < l->landlock.n_rules
                                   ? l->landlock.rules[idx].path
                                   : "ruleset";
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_LANDLOCK, -r, what), &ce), 125);
        }
    }
    if (l->seccomp_on) {
        int r = sp_seccomp_install(&l->seccomp);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SECCOMP, -r, "sandpit"), &ce), 125);
    }
    if (l->oproc->spec_seccomp) {
        /* Stacked: the kernel runs both, the stricter action wins. */
        int r = sp_seccomp_install(l->oproc->spec_seccomp);
        if (r < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_SECCOMP, -r, "spec"), &ce), 125);
    }
}

/* The OCI process's lock-down: the spec's rlimits, user, capabilities
 * and no_new_privs, then (create) wait for `start`, then sandpit's
 * Landlock and seccomp layers stacked with the spec's filter. */
static void harden_oci(struct launch *l)
{
    struct sp_child_error ce = {0};
    const struct sp_oci_proc *pr = l->oproc;
    bool core = false;
    for (size_t i = 0; i < pr->n_rlimits; i++) {
        struct rlimit rl = {pr->rlimits[i].soft, pr->rlimits[i].hard};
        if (pr->rlimits[i].resource == RLIMIT_CORE)
            core = true;
        if (setrlimit(pr->rlimits[i].resource, &rl) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_RLIMIT, errno, "rlimits"), &ce), 125);
    }
    if (!core) {
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
    }
    for (int c = 0; c <= l->cap_last && c < 64; c++)
        if (!(pr->cap_bounding & (1ull << c)) &&
            prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_CAPS, errno, "bounding"), &ce), 125);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

    if (chdir(pr->cwd) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CWD, errno, pr->cwd), &ce), 125);
    if (pr->fifo_fd >= 0) {
        int e = oci_find(l->argv[0], l->path_env);
        if (e)
            child_fail(l, (sp_child_error_set(&ce, e == ENOENT ? SP_STEP_EXEC_NOTFOUND : SP_STEP_EXEC, e, l->argv[0]), &ce), e == ENOENT ? 127 : 126);
        /* Ready: the runtime records the container; we wait for start. */
        struct sp_child_error ready = {.step = SP_STEP_READY};
        child_report(l, &ready);
        char path[48] = "/proc/self/fd/";
        oci_utoa((unsigned long)pr->fifo_fd, path + 14, sizeof(path) - 14);
        int w;
        do {
            w = open(path, O_WRONLY | O_CLOEXEC);
        } while (w < 0 && errno == EINTR);
        if (w < 0 || write(w, "0", 1) != 1) {
            dprintf(2, "sandpit-runc: waiting for start: %s\n", strerror(errno));
            _exit(125);
        }
        close(w);
        close(pr->fifo_fd);
    }
    if (!pr->no_new_privs)
        oci_locks(l); /* both need privilege in the namespace without NNP */

    if (setgroups(pr->n_gids, (const gid_t *)pr->gids) < 0 &&
        !(errno == EPERM && pr->n_gids == 0))
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_SETUID, errno, "additionalGids"), &ce), 125);
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    if (setresgid(pr->gid, pr->gid, pr->gid) < 0 ||
        setresuid(pr->uid, pr->uid, pr->uid) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_SETUID, errno, "user"), &ce), 125);
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(pr->cap_effective >> (32 * i));
        data[i].permitted = (uint32_t)(pr->cap_permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(pr->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CAPS, errno, "capset"), &ce), 125);
    for (int c = 0; c <= l->cap_last && c < 64; c++)
        if ((pr->cap_ambient & (1ull << c)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            child_fail(l, (sp_child_error_set(&ce, SP_STEP_CAPS, errno, "ambient"), &ce), 125);
    if (pr->umask >= 0)
        umask((mode_t)pr->umask);
    /* the user's own view of the working directory */
    if (chdir(pr->cwd) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_CWD, errno, pr->cwd), &ce), 125);
    if (pr->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(l, (sp_child_error_set(&ce, SP_STEP_NNP, errno, NULL), &ce), 125);
    unsigned first = 3 + pr->preserve_fds;
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = (int)first; fd < 65536; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (unsigned fd = 3; fd < first; fd++)
        fcntl((int)fd, F_SETFD, 0);
    if (pr->no_new_privs)
        oci_locks(l);
}

static int oci_attach(const struct sp_oci_launch *o, pid_t pid, sp_error *err)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
    for (size_t i = 0; i < o->n_cg; i++)
        if (pwrite(o->cg_procs_fds[i], buf, (size_t)n, 0) != n)
            return sp_error_setk(err, SP_ERR_SYSTEM, errno,
                                 "cannot move the container into its cgroup");
    if (o->has_oom_score_adj) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
        snprintf(buf, sizeof(buf), "%d", o->oom_score_adj);
        int r = write_file(path, buf, err);
        if (r < 0)
            return sp_error_prefix(err, "oomScoreAdj");
    }
    return 0;
}

static int oci_prepare(struct launch *l, const sp_run_opts *o, sp_error *err)
{
    const struct sp_oci_proc *pr = l->oproc;
    int fds[2], rc;
    if (l->oci) {
        l->userns = (l->oci->clone_ns & CLONE_NEWUSER) != 0;
        l->plan = *l->oci->plan;
        memset(l->oci->plan, 0, sizeof(*l->oci->plan));
        l->plan.become_root = l->userns;
    }
    l->scratch = calloc(l->plan.n + 1, sizeof(int));
    size_t n = 0;
    while (pr->envp && pr->envp[n])
        n++;
    l->envp = calloc(n + 1, sizeof(char *));
    if (!l->scratch || !l->envp)
        return sp_error_set(err, ENOMEM, "launch");
    for (size_t i = 0; i < n; i++)
        if (!(l->envp[i] = strdup(pr->envp[i])))
            return sp_error_set(err, ENOMEM, "environment");
    l->path_env = sp_env_get(l->envp, "PATH");
    l->prune_path = false;
    l->cap_last = read_cap_last();
    l->cmdline_len = read_cmdline_len();
    if (pr->seccomp_default) {
        if ((rc = sp_seccomp_default_cached(false, &l->seccomp)) < 0)
            return sp_error_set(err, -rc, "seccomp");
        l->seccomp_on = true;
    }
    if (pr->landlock && (rc = build_landlock(l, o, err)) < 0)
        return rc;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return sp_error_set(err, errno, "pipe");
    l->sync_rd = fds[0];
    l->sync_wr = fds[1];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return sp_error_set(err, errno, "pipe");
    l->err_rd = fds[0];
    l->err_wr = fds[1];
    return 0;
}

static void oci_policy(struct sp_policy *pol, const struct sp_oci_proc *pr,
                       const char *hostname, bool netns)
{
    memset(pol, 0, sizeof(*pol));
    pol->finalized = true;
    pol->hostname = (char *)hostname;
    pol->net = netns ? SP_NET_NONE : SP_NET_HOST;
    pol->limits.tmp_size = 64ull * 1024 * 1024;
    pol->seccomp = pr->seccomp_default;
    pol->landlock = pr->landlock;
}

/* An error record from the child as text; kind by its step. */
static int child_error(const struct sp_child_error *ce, sp_error *err)
{
    char path[sizeof(ce->path)];
    memcpy(path, ce->path, sizeof(path));
    path[sizeof(path) - 1] = '\0';
    if (ce->step == SP_STEP_EXEC_NOTFOUND)
        return sp_error_setk(err, SP_ERR_NOTFOUND, 0,
                             "%s: executable file not found in $PATH", path);
    return sp_error_setk(err, ce->step == SP_STEP_EXEC ? SP_ERR_NOEXEC
                                                       : SP_ERR_SYSTEM,
                         ce->err, "%s%s%s", step_text(ce->step),
                         path[0] ? " " : "", path);
}

/* The next record on the error pipe: 1 READY, 0 EOF, < 0 an error. */
static int read_record(int fd, sp_error *err)
{
    struct sp_child_error ce;
    memset(&ce, 0, sizeof(ce));
    ssize_t got;
    do {
        got = read(fd, &ce, sizeof(ce));
    } while (got < 0 && errno == EINTR);
    if (got == 0)
        return 0;
    if (got != (ssize_t)sizeof(ce))
        return sp_error_setk(err, SP_ERR_SYSTEM, EIO,
                             "short record from the container");
    if (ce.step == SP_STEP_READY)
        return 1;
    return child_error(&ce, err);
}

int sp_launch_oci_create(struct sp_oci_launch *o, const sp_run_opts *ro,
                         int (*on_ready)(void *ctx, pid_t pid, sp_error *err),
                         void *ctx, pid_t *ret_pid, sp_error *err)
{
    struct sp_policy pol;
    oci_policy(&pol, &o->proc,
               (o->clone_ns & CLONE_NEWUTS) ? o->hostname : NULL,
               (o->clone_ns & CLONE_NEWNET) != 0);
    struct launch l = {.p = &pol, .sync_rd = -1, .sync_wr = -1, .err_rd = -1,
                       .err_wr = -1, .net_rd = -1, .net_wr = -1,
                       .agent_sock = -1, .oci = o, .oproc = &o->proc,
                       .argv = o->proc.argv};
    struct sp_cgroup *cg = NULL;
    int pidfd = -1, rc;
    pid_t pid = -1;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    if ((rc = launch_prepare(&l, ro, err)) < 0)
        goto fail;
    if ((rc = launch_clone(&l, ro, &pid, &pidfd, &cg, err)) < 0)
        goto fail;
    rc = read_record(l.err_rd, err);
    if (rc == 0)
        rc = sp_error_setk(err, SP_ERR_SYSTEM, 0,
                           "the container's init ended during setup");
    if (rc > 0 && on_ready)
        rc = on_ready(ctx, pid, err);
    if (rc > 0 || (rc == 0 && !on_ready)) {
        if (write(l.sync_wr, "d", 1) != 1)
            rc = sp_error_set(err, errno, "releasing the container");
        else if ((rc = read_record(l.err_rd, err)) == 0)
            rc = sp_error_setk(err, SP_ERR_SYSTEM, 0,
                               "the container's init ended during setup");
    }
    if (rc < 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    close(pidfd);
    launch_free(&l);
    *ret_pid = pid;
    return 0;
fail:
    if (cg)
        sp_cgroup_destroy(cg);
    if (pidfd >= 0)
        close(pidfd);
    launch_free(&l);
    return rc < 0 ? rc : -SP_EFAIL;
}

/* Which of the init's namespaces differ from ours (CLONE_NEW* bits). */
static uint64_t oci_ns_diff(pid_t pid)
{
    static const struct {
        const char *name;
        uint64_t flag;
    } ns[] = {{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},
              {"pid", CLONE_NEWPID},   {"net", CLONE_NEWNET},
              {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS},
              {"cgroup", CLONE_NEWCGROUP}};
    uint64_t flags = 0;
    for (size_t i = 0; i < SP_ARRAY_SIZE(ns); i++) {
        char a[64], b[64];
        snprintf(a, sizeof(a), "/proc/self/ns/%s", ns[i].name);
        snprintf(b, sizeof(b), "/proc/%d/ns/%s", (int)pid, ns[i].name);
        struct stat sa, sb;
        if (stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
            (sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev))
            flags |= ns[i].flag;
    }
    return flags;
}

int sp_launch_oci_exec(int init_pidfd, const struct sp_oci_proc *proc,
                       const struct sp_mount_plan *plan,
                       const int *cg_procs_fds, size_t n_cg, bool wait,
                       const sp_run_opts *ro, pid_t *ret_pid,
                       pid_t *ret_waiter, sp_error *err)
{
    struct sp_policy pol;
    oci_policy(&pol, proc, NULL, true);
    struct launch l = {.p = &pol, .sync_rd = -1, .sync_wr = -1, .err_rd = -1,
                       .err_wr = -1, .net_rd = -1, .net_wr = -1,
                       .agent_sock = -1, .oproc = proc, .argv = proc->argv};
    int rc;
    l.plan = *plan; /* borrowed: zeroed again before launch_free */
    l.scratch = NULL;
    if ((rc = oci_prepare(&l, ro, err)) < 0)
        goto out;
    /* the init's pid in our namespace, from its pidfd */
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", init_pidfd);
    FILE *f = fopen(path, "re");
    pid_t ipid = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Pid: %d", &ipid) == 1)
            break;
    if (f)
        fclose(f);
    if (ipid <= 0) {
        rc = sp_error_setk(err, SP_ERR_USAGE, ESRCH, "the container is not running");
        goto out;
    }
    uint64_t flags = oci_ns_diff(ipid);
    l.userns = (flags & CLONE_NEWUSER) != 0;
    /* The caller never enters the container: a child does (cgroup, every
     * namespace) and forks the process, which is born in the container's
     * pid namespace; the child hands its pid over and, when asked to
     * wait, exits with its status. */
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0) {
        rc = sp_error_set(err, errno, "pipe");
        goto out;
    }
    pid_t c = fork();
    if (c < 0) {
        rc = sp_error_set(err, errno, "fork");
        close(pp[0]);
        close(pp[1]);
        goto out;
    }
    if (c == 0) {
        close(pp[0]);
        close(l.err_rd);
        char buf[24];
        int bl = snprintf(buf, sizeof(buf), "%d", (int)getpid());
        struct sp_child_error ce = {0};
        for (size_t i = 0; i < n_cg; i++)
            if (pwrite(cg_procs_fds[i], buf, (size_t)bl, 0) != bl)
                child_fail(&l, (sp_child_error_set(&ce, SP_STEP_NS, errno, "the container's cgroup"), &ce), 125);
        if (flags && setns(init_pidfd, (int)flags) < 0)
            child_fail(&l, (sp_child_error_set(&ce, SP_STEP_NS, errno, "the container's namespaces"), &ce), 125);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        pid_t g = fork();
        if (g < 0)
            child_fail(&l, (sp_child_error_set(&ce, SP_STEP_FORK, errno, NULL), &ce), 125);
        if (g == 0)
            run_command(&l);
        close(l.err_wr);
        ssize_t w = write(pp[1], &g, sizeof(g));
        close(pp[1]);
        if (w != (ssize_t)sizeof(g) || !wait)
            _exit(0);
        int st = 0;
        while (waitpid(g, &st, 0) < 0 && errno == EINTR)
            ;
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    close(pp[1]);
    close(l.err_wr);
    l.err_wr = -1;
    pid_t g = -1;
    ssize_t got;
    do {
        got = read(pp[0], &g, sizeof(g));
    } while (got < 0 && errno == EINTR);
    close(pp[0]);
    rc = read_record(l.err_rd, err);
    if (rc == 0 && got != (ssize_t)sizeof(g))
        rc = sp_error_setk(err, SP_ERR_SYSTEM, EIO,
                           "the exec helper ended early");
    if (rc < 0) {
        if (got == (ssize_t)sizeof(g))
            kill(g, SIGKILL);
        waitpid(c, NULL, 0);
        goto out;
    }
    *ret_pid = g;
    *ret_waiter = c;
    rc = 0;
out:
    memset(&l.plan, 0, sizeof(l.plan));
    launch_free(&l);
    return rc;
}
