/* doctor.h — what this host can enforce, found by trying each thing (in a
 * forked child where it has side effects), for `sandpit doctor` and for
 * checking `--require` before a launch. docs/doctor.md lists the keys.
 *
 * One probe (sp_host_probe) fills a plain struct; the renderers turn a
 * struct into JSON or text, so tests can render made-up hosts. */
#ifndef SANDPIT_DOCTOR_H
#define SANDPIT_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandpit.h"

/* Namespace kinds in the order docs/doctor.md and the JSON list them. */
enum sp_ns_kind {
    SP_NS_MOUNT,
    SP_NS_PID,
    SP_NS_NET,
    SP_NS_IPC,
    SP_NS_UTS,
    SP_NS_CGROUP,
    SP_NS_TIME,
    SP_NS_COUNT,
};

/* Every fact the probe finds. Strings are always NUL-terminated; a detail
 * is one sentence for people, never parsed. */
struct sp_host {
    char kernel[65];          /* uname release */
    char arch[65];            /* uname machine */
    uid_t uid;                /* effective uid of the prober */

    /* User namespaces. available: this process created one (and could use
     * its capabilities inside). unprivileged: an ordinary user may — the
     * sysctls allow it and, as root, a child dropped to uid 65534 did. */
    bool userns_available;
    bool userns_unprivileged;
    char userns_detail[512];

    /* unshare(CLONE_NEWUSER | kind) in a child (unshare(kind) as root when
     * no user namespace could be made). ns_errno: 0 or why it failed. */
    bool ns[SP_NS_COUNT];
    int ns_errno[SP_NS_COUNT];

    int landlock_abi;         /* sp_landlock_abi(): 0 = none */
    char landlock_detail[256];

    bool seccomp_prctl;       /* prctl(PR_GET_SECCOMP) answered */
    bool seccomp_filter;      /* a child installed an allow-all filter */
    char seccomp_actions[256]; /* /proc/sys/kernel/seccomp/actions_avail,
                                  space-separated; "" when unreadable */
    char seccomp_detail[256];

    bool cgroups_available;   /* sp_cgroup_probe() == 1 */
    char cgroup_layout[8];    /* "v2", "hybrid", "v1" or "none" */
    char cgroup_detail[512];

    bool overlay_userns;      /* overlayfs mounted inside a user ns */
    char overlay_detail[256];
    bool disk_available;      /* a workspace disk limit can be enforced */
    char disk_mechanism[32];  /* "loop-ext4", or "none" (docs/disk.md) */
    char disk_detail[256];

    /* Who a sandbox of this caller is on the host (ids.h,
     * docs/security.md). id_kind: "range" (root: a range of its own),
     * "subordinate" (a user with /etc/subuid and newuidmap) or "single". */
    char id_kind[16];
    unsigned id_uid_start, id_uid_count, id_gid_start, id_gid_count;
    char id_detail[384];
    /* ID-mapped mounts (root callers' workspace and --rw binds): tried on
     * the state directory. needed is false for an ordinary user (its own
     * id is the sandbox's root without them). */
    bool idmap_needed;
    bool idmap_available;
    char idmap_detail[384];

    bool sys_pidfd;           /* pidfd_open(getpid()) */
    bool sys_openat2;         /* openat2(RESOLVE_BENEATH) is not ENOSYS */
    bool sys_mount_setattr;
    bool sys_clone3;
    bool sys_close_range;
};

/* Names of the SP_NS_* kinds ("mount", "pid", ...). NULL when out of
 * range. */
const char *sp_ns_kind_name(enum sp_ns_kind k);

/* Probe the host. Forks a handful of short-lived children (each reaped
 * before return) and leaves nothing behind: their mounts live in private
 * namespaces that die with them. Safe to call from a multi-threaded
 * process: the children run raw syscalls on data prepared before fork().
 * Every probe that fails is recorded as "missing" with a reason, so this
 * returns 0; -EINVAL only when ret is NULL. */
int sp_host_probe(struct sp_host *ret);

/* The SP_LAYER_* bits that --require could demand but this host lacks:
 * landlock (ABI 0), seccomp (no filter mode), limits (cgroups not usable by
 * this uid), userns (cannot create one), netns (no network namespace),
 * idmap (root: ID-mapped mounts fail on the state directory), idrange
 * (a user without /etc/subuid or newuidmap: one id inside). */
unsigned sp_host_missing_layers(const struct sp_host *h);

/* Render a probe result. Caller frees; NULL on ENOMEM. */
char *sp_host_to_json(const struct sp_host *h);
char *sp_host_to_text(const struct sp_host *h);

#endif
