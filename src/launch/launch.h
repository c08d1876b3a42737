/* launch.h — sp_run() (declared in sandpit.h) lives in launch.c; this header
 * holds what the workspace supervisor and agent and the tests need from it. */
#ifndef SANDPIT_LAUNCH_H
#define SANDPIT_LAUNCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bounds.h"
#include "mountplan.h"
#include "policy.h"
#include "sandpit.h"

struct sp_cgroup;
struct sp_proxy;
struct sp_secrets;
struct sp_seccomp_prog;

/* A workspace sandbox started by sp_launch_agent(). */
struct sp_launch_handle {
    pid_t pid;               /* the agent, PID 1 of the sandbox */
    int pidfd;               /* owned by the caller */
    struct sp_cgroup *cg;    /* owned by the caller; NULL without a cgroup */
    struct sp_proxy *proxy;  /* --net allow: the egress proxy, listening
                                inside the sandbox; owned by the caller
                                (run it in a poll loop, sp_proxy_free) */
};

/* What PID 1 of a workspace sandbox gets once it is locked down. */
struct sp_launch_pid1_env {
    int sock;                 /* the caller's socket, open in the sandbox */
    char **envp;              /* the base environment of every command */
    const char *path_env;     /* PATH of envp */
    double default_timeout;   /* the policy's timeout (seconds, 0: none) */
    double kill_after;        /* the policy's TERM-to-KILL grace */
    int gate_fd;              /* >= 0: start no process before reading 'x'
                                 here (the cgroup attach is pending) */
    /* The seccomp deny list's watch (docs/report.md): take the denials of
     * session sid (seccomp.h, sp_seccomp_bg_take); NULL when not watched. */
    json_t *(*denials_take)(void *ctx, pid_t sid, uint64_t t0_us);
    void *denials_ctx;
};

/* A sandbox whose PID 1 runs the caller's code instead of a command. The
 * launch path knows nothing of workspaces: the host side (supervisor.c)
 * hands in its extra mounts and PID 1's loop (the agent) as callbacks. */
struct sp_mount_plan;
struct sp_launch_pid1 {
    int sock;                 /* kept open inside for main() */
    const char *ws_dst;       /* where p->workspace is mounted */
    /* Before anything starts: append the caller's mounts to the plan
     * (copy-on-write layers, a secrets tmpfs). May be NULL. */
    int (*add_mounts)(void *arg, struct sp_mount_plan *plan, bool userns,
                      sp_error *err);
    /* Data for the identity mapping of a root caller (ids.h): the plan
     * holds copy-on-write overlays of host root's layers, and `from` is
     * their --from tree (NULL: none); both are ID-mapped after clone. */
    bool layered;
    const char *from;
    /* In PID 1, the plan mounted, before the lockdown: fill what the
     * caller mounted; 0, or -errno with *what naming the path. May be
     * NULL. Async-signal-safe code only. */
    int (*populate)(void *arg, uid_t uid, gid_t gid, const char **what);
    /* PID 1 once locked down; never returns. */
    void (*main)(void *arg, const struct sp_launch_pid1_env *env);
    void *arg;
};

/* Start a sandbox through the same path as sp_run(), with PID 1 running
 * pid1->main on pid1->sock instead of one command. The caller blocks all
 * signals first (PID 1 inherits the mask) and closes pid1->sock after the
 * call. Returns when PID 1 has locked itself down (0), or < 0 with err
 * filled and nothing left running. */
int sp_launch_agent(const struct sp_policy *p, const sp_run_opts *o,
                    const struct sp_launch_pid1 *pid1,
                    struct sp_launch_handle *ret, sp_error *err);

/* ---- the OCI runtime (src/oci) ----------------------------------------
 * What a runtime-spec config.json asks beyond a policy, already parsed and
 * checked by src/oci; launch.c runs it through the same clone, mount and
 * lock-down path as sp_run. */
struct sp_idmap {
    uint32_t inside, outside, count;
};

struct sp_oci_rlimit {
    int resource;
    uint64_t soft, hard;
};

/* The process of a container (its init, or one `exec`). */
struct sp_oci_proc {
    char *const *argv;            /* NULL-ended */
    char *const *envp;            /* NULL-ended, exactly the spec's */
    const char *cwd;
    uint32_t uid, gid;
    uint32_t gids[SP_OCI_MAX_GIDS];
    size_t n_gids;
    int umask;                    /* -1: inherit (0022) */
    struct sp_oci_rlimit rlimits[SP_OCI_MAX_RLIMITS];
    size_t n_rlimits;
    /* capability sets as bit masks of CAP_* numbers */
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable,
        cap_ambient;
    bool no_new_privs;
    bool terminal;                /* a pty, its master sent to console_fd */
    unsigned short rows, cols;    /* consoleSize (0: leave it) */
    int console_fd;               /* connected console socket, or -1 */
    int fifo_fd;                  /* create: O_PATH of exec.fifo, the
                                     process waits there for `start` (-1:
                                     none, run at once) */
    bool seccomp_default;         /* sandpit's deny list (docs/seccomp.md) */
    const struct sp_seccomp_prog *spec_seccomp; /* the spec's, or NULL;
                                     stacked after sandpit's */
    bool landlock;                /* Landlock on the container's mounts */
    unsigned preserve_fds;        /* fds 3..3+N-1 stay open (--preserve-fds) */
};

struct sp_oci_launch {
    struct sp_oci_proc proc;
    struct sp_mount_plan *plan;   /* root = SP_OP_BIND of the rootfs; the
                                     launch takes it over (zeroes it) */
    const char *hostname;         /* NULL: keep */
    uint64_t clone_ns;            /* CLONE_NEW* to create (NEWUSER among
                                     them unless disabled by name) */
    int join_fds[8];              /* namespaces to join before clone
                                     (setns, in the runtime process) */
    int join_types[8];            /* each one's CLONE_NEW* (checked by
                                     the kernel: a path to another kind
                                     of namespace is refused) */
    size_t n_join;
    struct sp_idmap uid_map[SP_OCI_MAX_IDMAPS], gid_map[SP_OCI_MAX_IDMAPS];
    size_t n_uid_map, n_gid_map;
    const int *cg_procs_fds;      /* cgroup.procs of each hierarchy: the
                                     init is written there before it runs */
    size_t n_cg;
    int oom_score_adj;
    bool has_oom_score_adj;
    char *const *sysctl;          /* "key=value", NULL-ended, or NULL */
};

/* create: start the container's init (PID 1 of its namespaces, a
 * sandpit-init that forks the process), which sets up everything and
 * waits on proc.fifo_fd. Once it waits, on_ready(ctx, pid) records the
 * container (state, pid file); only then is the init told to outlive the
 * caller (until then it dies with it: a runtime killed mid-create leaves
 * no process). Returns 0 (*ret_pid its host pid) or < 0 with err filled
 * and nothing left running. Blocks every signal of the caller. */
int sp_launch_oci_create(struct sp_oci_launch *o, const sp_run_opts *ro,
                         int (*on_ready)(void *ctx, pid_t pid, sp_error *err),
                         void *ctx, pid_t *ret_pid, sp_error *err);

/* exec: one more process in the running container whose init is
 * init_pidfd: it enters the cgroup (cg_procs_fds), every namespace of the
 * init, and is locked down as proc says (plan: the container's mounts,
 * for Landlock). The caller itself enters nothing: a helper child does.
 * *ret_pid: the process's host pid; *ret_waiter: the helper, our child,
 * to waitpid: with `wait` it exits with the process's status (128+N for
 * a signal), else at once. Returns 0 when the process has exec'd, < 0
 * with err filled. */
int sp_launch_oci_exec(int init_pidfd, const struct sp_oci_proc *proc,
                       const struct sp_mount_plan *plan,
                       const int *cg_procs_fds, size_t n_cg, bool wait,
                       const sp_run_opts *ro, pid_t *ret_pid,
                       pid_t *ret_waiter, sp_error *err);

/* execve argv with a PATH search that does not allocate (for a forked
 * child). Returns the errno that decides 126 (anything) vs 127 (ENOENT). */
int sp_exec_search(char *const argv[], char *const envp[], const char *path_env);

#endif
