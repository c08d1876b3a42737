/* landlock.h — the Landlock layer: which paths the sandboxed program may
 * read, write or execute, which TCP ports it may use and whether it may
 * reach processes and abstract unix sockets outside its domain.
 *
 * Lifecycle: the parent builds a plan (sp_landlock_plan_build, allocation
 * allowed) before clone(); the child applies it (sp_landlock_apply,
 * async-signal-safe) after pivot_root and PR_SET_NO_NEW_PRIVS, right before
 * seccomp and execve; the parent frees the plan (sp_landlock_plan_free).
 * docs/landlock.md lists the rights per class and what older ABIs drop. */
#ifndef SANDPIT_LANDLOCK_H
#define SANDPIT_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "sandpit.h"

#if defined(__has_include)
#if __has_include(<linux/landlock.h>)
#include <linux/landlock.h>
#endif
#endif

/* The installed uapi header may be older than the kernel we run on (Debian
 * 12 ships 6.1's: ABI 1..2 only), so every constant up to ABI 7 is defined
 * here when missing. Values are the kernel's uapi values. */
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif

/* ABI 1 */
#ifndef LANDLOCK_ACCESS_FS_EXECUTE
#define LANDLOCK_ACCESS_FS_EXECUTE (1ULL << 0)
#define LANDLOCK_ACCESS_FS_WRITE_FILE (1ULL << 1)
#define LANDLOCK_ACCESS_FS_READ_FILE (1ULL << 2)
#define LANDLOCK_ACCESS_FS_READ_DIR (1ULL << 3)
#define LANDLOCK_ACCESS_FS_REMOVE_DIR (1ULL << 4)
#define LANDLOCK_ACCESS_FS_REMOVE_FILE (1ULL << 5)
#define LANDLOCK_ACCESS_FS_MAKE_CHAR (1ULL << 6)
#define LANDLOCK_ACCESS_FS_MAKE_DIR (1ULL << 7)
#define LANDLOCK_ACCESS_FS_MAKE_REG (1ULL << 8)
#define LANDLOCK_ACCESS_FS_MAKE_SOCK (1ULL << 9)
#define LANDLOCK_ACCESS_FS_MAKE_FIFO (1ULL << 10)
#define LANDLOCK_ACCESS_FS_MAKE_BLOCK (1ULL << 11)
#define LANDLOCK_ACCESS_FS_MAKE_SYM (1ULL << 12)
#endif
/* ABI 2 */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
/* ABI 3 */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
/* ABI 4 */
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
/* ABI 5 */
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
/* ABI 6 */
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
/* ABI 7: landlock_restrict_self() flags controlling audit logging. */
#ifndef LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
#define LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF (1U << 0)
#endif
#ifndef LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
#define LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (1U << 1)
#endif
#ifndef LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF
#define LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF (1U << 2)
#endif

/* Rule types (an enum in the uapi header, so not testable with #ifndef:
 * our own names with the kernel's values). */
#define SP_LL_RULE_PATH_BENEATH 1
#define SP_LL_RULE_NET_PORT 2

/* The highest ABI this file knows; a newer kernel is used at this level. */
#define SP_LANDLOCK_ABI_MAX 7

/* Rights a rule on a non-directory may carry; anything else is EINVAL. */
#define SP_LL_FS_FILE_RIGHTS                                                   \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |              \
     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |              \
     LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* Most path rules in one plan: one per mount plus a few built-in ones
 * (/dev, /proc, /tmp). TODO(lead): move to bounds.h. */
#ifndef SP_LL_MAX_RULES
#define SP_LL_MAX_RULES (SP_MAX_MOUNTS + 16)
#endif

/* Kernel layouts, under our own names so they never clash with an
 * older or newer uapi header. */
struct sp_ll_ruleset_attr {
    uint64_t handled_access_fs;  /* ABI 1 */
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

struct sp_ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct sp_ll_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

/* The highest Landlock ABI the running kernel supports, or 0 when Landlock
 * is not built in or not enabled at boot (ENOSYS / EOPNOTSUPP). Never
 * fails otherwise; callers decide about warnings and --require. */
int sp_landlock_abi(void);

/* What a path may be used for. */
enum sp_ll_class {
    SP_LL_READ_EXEC,  /* EXECUTE | READ_FILE | READ_DIR */
    SP_LL_READ_WRITE, /* every fs right of the ABI */
    SP_LL_DEV,        /* READ_FILE | WRITE_FILE | READ_DIR | TRUNCATE |
                         IOCTL_DEV: ttys and /dev/null need write and ioctl */
    SP_LL_PROC,       /* READ_FILE | READ_DIR | WRITE_FILE: /proc/self/... */
};

/* A path as seen inside the sandbox (after pivot_root). */
struct sp_ll_path {
    const char *path;
    enum sp_ll_class cls;
};

struct sp_ll_rule {
    char *path;              /* owned copy */
    uint64_t access;         /* for a directory; masked to file rights
                                in apply when the path is not one */
};

struct sp_landlock_plan {
    int abi;                 /* 0: Landlock off, apply is a no-op */
    uint64_t handled_fs;
    uint64_t handled_net;
    uint64_t scoped;
    uint32_t restrict_flags; /* landlock_restrict_self() flags; 0 = the
                                kernel's default logging. Only ABI >= 7
                                accepts non-zero flags. */
    struct sp_ll_rule *rules; /* malloc'd in the parent */
    size_t n_rules;
    uint16_t ports[SP_MAX_PORTS]; /* TCP bind + connect allowed (only when
                                     handled_net is non-zero) */
    size_t n_ports;
    char notes[512];         /* what an older ABI drops; "" when nothing */
};

/* Build a plan in the parent.
 * abi: from sp_landlock_abi(); a lower number emulates an older kernel, a
 * higher one than SP_LANDLOCK_ABI_MAX is used as SP_LANDLOCK_ABI_MAX.
 * paths: each gets the rights of its class (nested rules add up).
 * deny_tcp: TCP bind and connect are denied except for `ports`, which get
 * both (ABI >= 4; ports are ignored when deny_tcp is false).
 * scope: abstract unix sockets and signals cannot reach outside the domain
 * (ABI >= 6).
 * Rights the ABI lacks are dropped and named in ret->notes. abi == 0 gives
 * ret->abi == 0, a note, and a plan whose apply does nothing.
 * Returns 0, or -EINVAL (negative abi, relative or overlong path, bad class,
 * too many paths or ports) / -ENOMEM with err filled; on failure *ret is
 * left empty (safe to free). */
int sp_landlock_plan_build(int abi, const struct sp_ll_path *paths,
                           size_t n_paths, bool deny_tcp,
                           const uint16_t *ports, size_t n_ports, bool scope,
                           struct sp_landlock_plan *ret, sp_error *err);

/* Free what plan_build allocated and reset the plan. Accepts NULL and a
 * zeroed or already-freed plan. */
void sp_landlock_plan_free(struct sp_landlock_plan *plan);

/* Child side: after pivot_root, after PR_SET_NO_NEW_PRIVS (or with
 * CAP_SYS_ADMIN in the current user namespace), before seccomp and execve.
 * Async-signal-safe: raw syscalls on the plan only, no allocation. Creates
 * the ruleset, opens each path O_PATH|O_CLOEXEC, adds its rule (masked to
 * file rights when the path is not a directory), adds the port rules, then
 * restricts the calling thread. A path that does not exist is skipped.
 * Returns 0 or -errno. *ret_failed_index (may be NULL) is the failing rule:
 * i < n_rules for path rule i, n_rules + j for port j, or -1 when the
 * failure is the ruleset itself or restrict_self (and on success). */
int sp_landlock_apply(const struct sp_landlock_plan *plan,
                      int *ret_failed_index);

#endif
