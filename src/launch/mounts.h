/* mounts.h — executing a mount plan inside the new mount namespace, and the
 * error record every child-side step reports through. Everything here runs
 * between clone() and execve(): raw syscalls only, no allocation. */
#ifndef SANDPIT_MOUNTS_H
#define SANDPIT_MOUNTS_H

#include <stdint.h>

#include "mountplan.h"

/* The steps a sandbox child can fail at; launch.c turns them into text. */
enum sp_step {
    SP_STEP_NONE = 0,
    SP_STEP_SYNC,
    SP_STEP_MOUNT_NS,
    SP_STEP_OPEN_SOURCE,
    SP_STEP_ROOT,
    SP_STEP_MOUNT_POINT,
    SP_STEP_BIND,
    SP_STEP_TMPFS,
    SP_STEP_SYMLINK,
    SP_STEP_PROC,
    SP_STEP_DEV,
    SP_STEP_HIDE,
    SP_STEP_COPY,
    SP_STEP_OVERLAY,
    SP_STEP_PIVOT,
    SP_STEP_HOSTNAME,
    SP_STEP_LOOPBACK,
    SP_STEP_FORK,
    SP_STEP_RLIMIT,
    SP_STEP_SETUID,
    SP_STEP_CAPS,
    SP_STEP_NNP,
    SP_STEP_CWD,
    SP_STEP_LANDLOCK,
    SP_STEP_SECCOMP,
    SP_STEP_FDS,
    SP_STEP_EXEC_NOTFOUND,
    SP_STEP_EXEC,
    SP_STEP_FS,        /* OCI: a filesystem the spec mounts */
    SP_STEP_RONLY,     /* OCI: a readonlyPaths entry */
    SP_STEP_SYSCTL,    /* OCI: a sysctl */
    SP_STEP_TERMINAL,  /* OCI: the console (pty) */
    SP_STEP_FIFO,      /* OCI: waiting for `start` */
    SP_STEP_NS,        /* OCI: joining a namespace */
    SP_STEP_READY,     /* OCI: not an error: set up, waiting for start */
};

struct sp_child_error {
    int32_t step;      /* enum sp_step */
    int32_t err;       /* errno */
    char path[512];    /* what it was about (a path, a command) */
};

/* Record an error (async-signal-safe). Returns -err. */
int sp_child_error_set(struct sp_child_error *ce, enum sp_step step, int err,
                       const char *path);

/* Build the sandbox root from the plan and pivot into it. `scratch` must
 * hold plan->n ints (prepared by the parent). Returns 0 or -errno with ce
 * filled. Async-signal-safe. */
int sp_mounts_apply(const struct sp_mount_plan *plan, int *scratch,
                    uint64_t shm_size, struct sp_child_error *ce);

/* Bring up lo in the current network namespace. Async-signal-safe. */
int sp_loopback_up(void);

/* PID 1, once in the sandbox's cgroup: a cgroup namespace rooted there and
 * that cgroup read-only at /sys/fs/cgroup (cgroup2, or on v1 each
 * hierarchy carrying memory, pids or cpu under a read-only tmpfs), so that
 * runtimes size themselves by its limits. Async-signal-safe; 0 or -errno
 * (the sandbox works without it). */
int sp_cgroup_view(void);

#endif
