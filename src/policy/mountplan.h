/* mountplan.h — the sandbox's filesystem as data: a list of operations
 * built from a finalized policy in the parent (allocation allowed), then
 * executed by one loop in the child (mounts.c, allocation-free). */
#ifndef SANDPIT_MOUNTPLAN_H
#define SANDPIT_MOUNTPLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

enum sp_op_kind {
    SP_OP_BIND,     /* bind src (host) at dst; ro or rw */
    SP_OP_TMPFS,    /* tmpfs at dst (size, mode) */
    SP_OP_SYMLINK,  /* symlink dst -> src (src is the link text) */
    SP_OP_PROC,     /* fresh procfs at dst, with the kernel's knobs masked */
    SP_OP_DEV,      /* minimal /dev at dst */
    SP_OP_DIR,      /* mkdir dst (mode) inside an earlier tmpfs */
    SP_OP_HIDE,     /* cover dst: empty read-only tmpfs or empty file */
    SP_OP_COPY,     /* copy the small host file src to dst in the root tmpfs
                       (cheaper than a bind to set up and tear down) */
    SP_OP_OVERLAY,  /* overlayfs at dst: src the read-only lower dir, upper
                       and work dirs on the host (workspaces, wslayers.c) */
    SP_OP_FS,       /* a new filesystem of type src at dst (OCI: tmpfs,
                       mqueue, sysfs, cgroup2, devpts), fsopts its options */
    SP_OP_MASK,     /* OCI maskedPaths: cover dst if it exists (a directory
                       with an empty read-only tmpfs, a file with /dev/null) */
    SP_OP_RONLY,    /* OCI readonlyPaths: dst, if it exists, read-only */
};

/* Default files up to this size are copied, not bound. */
#define SP_COPY_MAX (1024 * 1024)

struct sp_mount_op {
    enum sp_op_kind kind;
    const char *src;   /* owned by the plan */
    const char *dst;   /* owned by the plan */
    uint64_t size;
    mode_t mode;
    bool ro;
    bool is_dir;       /* for BIND/HIDE: the source (or target) is a directory */
    bool optional;     /* a default: a failure to open the source skips it */
    const char *upper; /* OVERLAY: upper dir (owned by the plan) */
    const char *work;  /* OVERLAY: work dir (owned by the plan) */
    const char *append; /* COPY: text written after the copy, or NULL
                           (/etc/hosts: the sandbox's hostname; owned) */
    unsigned attrs;    /* BIND, FS: MOUNT_ATTR_* bits added to the defaults */
    bool norec;        /* BIND: the mount alone, not its submounts ("bind") */
    bool keep_rw;      /* DEV: leave /dev itself writable (OCI: a tmpfs the
                          spec mounts more on) */
    char **fsopts;     /* FS: key, value (NULL: a flag) pairs, ended by a
                          NULL key (owned by the plan) */
};

struct sp_mount_plan {
    struct sp_mount_op *ops;
    size_t n;
    char *home;        /* HOME inside the sandbox */
    char *workdir;     /* the working directory inside */
    struct sp_mount_op *root; /* NULL: the root is a tmpfs; else an
                                 SP_OP_OVERLAY whose dst is "/", or (OCI)
                                 an SP_OP_BIND of the bundle's rootfs,
                                 read-only after every mount when ro
                                 (owned) */
    bool userxattr;    /* overlays take the userxattr option (in a userns) */
    uint64_t tmp_inodes; /* nr_inodes of every tmpfs op; 0 = tmpfs default */
    bool become_root;  /* OCI: once every host source is open (our host ids
                          still reach them), become uid/gid 0 of the user
                          namespace, so what we create has an owner there */
    char *relbase[2];  /* the state dir as named and resolved, or NULLs:
                          overlay layers under it are mounted by relative
                          path (mounts.c), hiding it from mountinfo */
    /* Root callers (launch.c, docs/security.md): the parent opened every
     * BIND and COPY source as host root and handed them in the scratch
     * array (-1: an optional source that is missing); the sandbox itself
     * is an unprivileged host id and could not. */
    bool preopened;
    /* Trees overlay layers are read from (the state dir, --from, a
     * --rootfs outside the state dir), cloned
     * and ID-mapped by the parent: attached at /tmp/<k> in the child's
     * namespace before any overlay is made; layer paths name them. */
    int n_idm;
    int idm_fd[3];
    char *relws;       /* with relbase: the workspace's directory below it
                          ("workspaces/NAME"): the mount is made from there
                          and names even the state dir's other layers from
                          it ("../../..."), so no workspace name shows */
};

/* Build the plan for a finalized policy. Ops come in an order where every
 * mount's parent is mounted first. Returns 0 or < 0 with err filled. */
int sp_mount_plan_build(const struct sp_policy *p, struct sp_mount_plan *ret,
                        sp_error *err);
/* The same, with the workspace directory mounted at ws_dst (a persistent
 * workspace's "/workspace") instead of at its own path; NULL = its path. */
int sp_mount_plan_build_at(const struct sp_policy *p, const char *ws_dst,
                           struct sp_mount_plan *ret, sp_error *err);
void sp_mount_plan_free(struct sp_mount_plan *plan);

/* Where HOME lives inside, and the XDG directories under it. */
#define SP_SANDBOX_HOME "/home/sandpit"

#endif
