/* policy.h — the one policy struct, filled alike from defaults, profiles,
 * policy files and command-line flags (which the CLI turns into JSON).
 * docs/policy.md documents every key. Parse, validate whole, then act. */
#ifndef SANDPIT_POLICY_H
#define SANDPIT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "bounds.h"
#include "portfwd.h" /* struct sp_publish */
#include "sandpit.h"

enum sp_mount_type {
    SP_MOUNT_RO,     /* read-only bind of src at dst */
    SP_MOUNT_RW,     /* read-write bind of src at dst */
    SP_MOUNT_TMPFS,  /* empty tmpfs at dst (size bytes, 0 = limits.tmp_size) */
    SP_MOUNT_HIDE,   /* dst absent: removes any rule at or below dst and, if
                        dst is below another mount, covers it */
};

struct sp_mount_rule {
    enum sp_mount_type type;
    char *src;         /* host path (RO/RW); NULL otherwise */
    char *dst;         /* path inside the sandbox, normalized */
    uint64_t size;     /* tmpfs size in bytes */
    bool is_default;   /* a built-in rule: skipped when src is missing */
};

enum sp_net_mode {
    SP_NET_NONE = 0,  /* own network namespace, only lo */
    SP_NET_HOST,      /* the host's network (loosens isolation, warned) */
    SP_NET_ALLOW,     /* only lo, plus the egress proxy (netplumb.h) */
};

enum sp_workspace_mode {
    SP_WS_RW = 0,     /* the workspace directory read-write (default) */
    SP_WS_RO,         /* read-only */
    SP_WS_NONE,       /* not mounted at all */
};

struct sp_limits {
    uint64_t memory;    /* bytes; 0 = no limit */
    uint64_t pids;      /* 0 = no limit */
    double cpus;        /* fraction of one CPU (1.5 = one and a half); 0 = none */
    uint64_t tmp_size;  /* bytes for /tmp and tmpfs rules without a size */
    uint64_t nofile;    /* RLIMIT_NOFILE; 0 = inherit */
    uint64_t fsize;     /* RLIMIT_FSIZE bytes; 0 = unlimited */
    uint64_t disk;      /* bytes a workspace may write in all (its image);
                           also caps each tmpfs; 0 = no limit (disk.md) */
    uint64_t inodes;    /* files the image and each tmpfs may hold;
                           0 = the file system's default */
};

struct sp_policy {
    /* filesystem */
    char *workspace;               /* host dir; NULL = cwd (at finalize) */
    enum sp_workspace_mode workspace_mode;
    struct sp_mount_rule *mounts;  /* user rules, in order */
    size_t n_mounts;
    char *cwd;                     /* inside; NULL = the workspace path */

    /* environment */
    char **env_set;                /* "K=V" entries */
    size_t n_env_set;
    char **env_pass;               /* names passed from the caller */
    size_t n_env_pass;
    bool clear_env;                /* no PATH/LANG/LC_* / TERM pass-through */

    /* identity */
    uint32_t uid, gid;             /* inside the sandbox */
    bool userns;                   /* a user namespace (always when not root) */
    char *hostname;

    /* process */
    int *pass_fds;
    size_t n_pass_fds;
    double timeout;                /* seconds; 0 = none */
    double kill_after;             /* seconds from SIGTERM to SIGKILL */
    unsigned pool;                 /* serve/mcp: workspaces kept warm for
                                      this policy (docs/pool.md); 0 = none */

    /* network */
    enum sp_net_mode net;
    char *net_proxy;               /* SP_NET_ALLOW: the proxy config as
                                      canonical JSON (netplumb.h); NULL =
                                      an empty allow list */
    bool net_allow_private;        /* proxy may reach private addresses */
    char *net_log;                 /* run: proxy events as JSON lines here */
    char *net_resolver;            /* hosts-format file: the proxy resolves
                                      names from it only (proxy.h) */
    /* workspaces: host TCP ports forwarded inside (portfwd.h) */
    struct sp_publish publish[SP_MAX_PUBLISH];
    size_t n_publish;
    /* Landlock (ABI >= 4): TCP bind and connect only on these ports (and
     * the published ones, and the proxy's); none: TCP is not restricted
     * (docs/landlock.md). */
    uint16_t tcp_ports[SP_MAX_TCP_PORTS];
    size_t n_tcp_ports;

    /* limits */
    struct sp_limits limits;

    /* layers */
    bool landlock;
    bool seccomp;
    char *seccomp_profile;         /* JSON file replacing the default filter */
    bool allow_ptrace;
    bool allow_system_ro;          /* --ro may bind host system directories
                                      (policy.c check_source) */
    bool ws_in_state;              /* internal, never from JSON: the
                                      workspace is a workspace's own data
                                      directory in the state directory */
    unsigned require;              /* SP_LAYER_* bits */

    /* base image (docs/images.md) */
    char *rootfs;                  /* host dir replacing the system paths */
    char *image;                   /* imported image name (sets rootfs at
                                      finalize when rootfs is unset) */
    char **image_argv;             /* its Entrypoint + Cmd (NULL-ended) */
    size_t n_image_argv;
    char **images_allowed;         /* "images": {"allowed": [...]}: names or
                                      digests a front-end client may ask for */
    size_t n_images_allowed;
    bool allow_untrusted_images;   /* ... or any imported image */
    char *post_create;             /* a setup command for create; run only
                                      with --allow-post-create */

    /* reporting */
    bool stats;
    char *stats_json;              /* file to write stats to */

    bool finalized;
};

/* Internal: add a mount rule (used by the JSON parser and tests). Takes
 * copies of the strings. A later rule for the same dst replaces an earlier
 * one; a hide removes every rule at or below its dst. */
int sp_policy_add_mount(struct sp_policy *p, enum sp_mount_type type,
                        const char *src, const char *dst, uint64_t size,
                        sp_error *err);

/* Internal: the built-in read-only system paths (NULL-terminated). */
extern const char *const sp_default_system_paths[];

const char *sp_mount_type_name(enum sp_mount_type t);

/* policy_image.c: the "image" key, and at finalize: check the rootfs,
 * resolve the image (its tree, Env, WorkingDir, User, Entrypoint+Cmd). */
struct json_t;
int sp_policy_image_key(struct sp_policy *p, const char *key,
                        const struct json_t *v, const char *origin,
                        sp_error *err);
/* A front-end client (MCP, JSON-RPC) asks for image `name`: allowed when
 * the operator's policy (as JSON: its "images".allowed names or digests,
 * or allow_untrusted_images) says so. */
int sp_image_request_check(const struct json_t *ceiling, const char *name,
                           sp_error *err);
int sp_policy_image_finalize(struct sp_policy *p, sp_error *err);

#endif
