/* launch.h — sp_run() (declared in sandpit.h) lives in launch.c; this header
 * holds what the workspace supervisor and agent and the tests need from it. */
#ifndef SANDPIT_LAUNCH_H
#define SANDPIT_LAUNCH_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "policy.h"
#include "sandpit.h"

struct sp_cgroup;
struct sp_proxy;

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

#endif
