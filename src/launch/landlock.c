/* landlock.c — build a Landlock plan in the parent and apply it in the child.
 * The plan is plain data so that applying it needs nothing but raw syscalls
 * (the child runs between clone() and execve(): no malloc, no stdio). */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

/* glibc 2.36 has these; older headers may not. Same numbers on every
 * architecture (the unified syscall table). */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

#define SP_LL_FS_ABI1                                                          \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |              \
     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |              \
     LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |          \
     LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |              \
     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |              \
     LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |            \
     LANDLOCK_ACCESS_FS_MAKE_SYM)

static int ll_create_ruleset(const struct sp_ll_ruleset_attr *attr,
                             size_t size, uint32_t flags)
{
    return (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

static int ll_add_rule(int ruleset_fd, int rule_type, const void *attr)
{
    return (int)syscall(SYS_landlock_add_rule, ruleset_fd, rule_type, attr,
                        0U);
}

static int ll_restrict_self(int ruleset_fd, uint32_t flags)
{
    return (int)syscall(SYS_landlock_restrict_self, ruleset_fd, flags);
}

int sp_landlock_abi(void)
{
    int abi = ll_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    /* ENOSYS: not built in; EOPNOTSUPP: built in but not enabled at boot
     * (not in lsm=). Anything else is just as unusable. */
    return abi < 0 ? 0 : abi;
}

/* Every filesystem right the given ABI knows. */
static uint64_t fs_rights(int abi)
{
    uint64_t r = SP_LL_FS_ABI1;

    if (abi >= 2)
        r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        r |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return r;
}

static int class_rights(enum sp_ll_class cls, int abi, uint64_t *ret)
{
    uint64_t r = 0;

    switch (cls) {
    case SP_LL_READ_EXEC:
        r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
            LANDLOCK_ACCESS_FS_READ_DIR;
        break;
    case SP_LL_READ_WRITE:
        r = fs_rights(abi);
        break;
    case SP_LL_DEV:
        r = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
            LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_TRUNCATE |
            LANDLOCK_ACCESS_FS_IOCTL_DEV;
        break;
    case SP_LL_PROC:
        r = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
            LANDLOCK_ACCESS_FS_WRITE_FILE;
        break;
    default:
        return -EINVAL;
    }
    /* A right the ruleset does not handle makes add_rule fail with EINVAL. */
    *ret = r & fs_rights(abi);
    return 0;
}

/* Append ", what" (or "what" first) to buf; truncation only shortens the
 * human text. */
static void note_add(char *buf, size_t len, bool *first, const char *what)
{
    size_t used = strlen(buf);

    if (used >= len - 1)
        return;
    snprintf(buf + used, len - used, "%s%s", *first ? "" : ", ", what);
    *first = false;
}

static void build_notes(struct sp_landlock_plan *p, bool deny_tcp, bool scope)
{
    char dropped[384] = "";
    bool first = true;

    if (p->abi == 0) {
        snprintf(p->notes, sizeof(p->notes),
                 "landlock unavailable: no filesystem, TCP or scoping "
                 "restrictions from Landlock");
        return;
    }
    if (p->abi < 3)
        note_add(dropped, sizeof(dropped), &first, "truncate (ABI 3)");
    if (p->abi < 4 && deny_tcp)
        note_add(dropped, sizeof(dropped), &first, "TCP rules (ABI 4)");
    if (p->abi < 5)
        note_add(dropped, sizeof(dropped), &first, "device ioctl (ABI 5)");
    if (p->abi < 6 && scope)
        note_add(dropped, sizeof(dropped), &first, "scoping (ABI 6)");

    p->notes[0] = '\0';
    if (!first)
        snprintf(p->notes, sizeof(p->notes), "landlock ABI %d: %s not enforced",
                 p->abi, dropped);
    /* ABI 1 does not drop a restriction but adds one: without REFER the
     * kernel denies every rename or link across directories. */
    if (p->abi == 1) {
        size_t used = strlen(p->notes);
        snprintf(p->notes + used, sizeof(p->notes) - used, "%s%s",
                 used ? "; " : "landlock ABI 1: ",
                 "cross-directory rename and link always denied (ABI 2)");
    }
}

void sp_landlock_plan_free(struct sp_landlock_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; plan->rules && i < plan->n_rules; i++)
        free(plan->rules[i].path);
    free(plan->rules);
    memset(plan, 0, sizeof(*plan));
}

int sp_landlock_plan_build(int abi, const struct sp_ll_path *paths,
                           size_t n_paths, bool deny_tcp,
                           const uint16_t *ports, size_t n_ports, bool scope,
                           struct sp_landlock_plan *ret, sp_error *err)
{
    struct sp_landlock_plan p = {0};
    int r = 0;

    if (!ret)
        return sp_error_set(err, EINVAL, "landlock plan: no plan to fill");
    memset(ret, 0, sizeof(*ret));

    if (abi < 0)
        return sp_error_set(err, EINVAL, "landlock plan: invalid ABI %d", abi);
    if (n_paths > SP_LL_MAX_RULES)
        return sp_error_set(err, EINVAL,
                            "landlock plan: %zu paths, at most %d allowed",
                            n_paths, SP_LL_MAX_RULES);
    if (n_paths && !paths)
        return sp_error_set(err, EINVAL, "landlock plan: no path list");
    if (n_ports > SP_MAX_PORTS)
        return sp_error_set(err, EINVAL,
                            "landlock plan: %zu TCP ports, at most %d allowed",
                            n_ports, SP_MAX_PORTS);
    if (n_ports && !ports)
        return sp_error_set(err, EINVAL, "landlock plan: no port list");

    p.abi = abi > SP_LANDLOCK_ABI_MAX ? SP_LANDLOCK_ABI_MAX : abi;
    build_notes(&p, deny_tcp, scope);
    if (p.abi == 0) {
        *ret = p;
        return 0;
    }

    p.handled_fs = fs_rights(p.abi);
    if (deny_tcp && p.abi >= 4)
        p.handled_net =
            LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
    if (scope && p.abi >= 6)
        p.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;

    if (n_paths) {
        p.rules = calloc(n_paths, sizeof(*p.rules));
        if (!p.rules)
            return sp_error_set(err, ENOMEM, "landlock plan: out of memory");
    }
    for (size_t i = 0; i < n_paths; i++) {
        const char *path = paths[i].path;
        uint64_t access = 0;

        if (!path || path[0] != '/') {
            r = sp_error_set(err, EINVAL,
                             "landlock plan: path '%s' is not absolute",
                             path ? path : "(null)");
            goto fail;
        }
        if (strnlen(path, SP_MAX_PATH) >= SP_MAX_PATH) {
            r = sp_error_set(err, EINVAL,
                             "landlock plan: path %.64s... is too long", path);
            goto fail;
        }
        if (class_rights(paths[i].cls, p.abi, &access) < 0) {
            r = sp_error_set(err, EINVAL,
                             "landlock plan: path %s has an unknown class %d",
                             path, (int)paths[i].cls);
            goto fail;
        }
        p.rules[i].path = strdup(path);
        if (!p.rules[i].path) {
            r = sp_error_set(err, ENOMEM, "landlock plan: out of memory");
            goto fail;
        }
        p.rules[i].access = access;
        p.n_rules++;
    }

    /* Port rules only mean something when TCP is handled; without that,
     * everything is allowed already. */
    if (p.handled_net && n_ports) {
        memcpy(p.ports, ports, n_ports * sizeof(*ports));
        p.n_ports = n_ports;
    }

    *ret = p;
    return 0;

fail:
    sp_landlock_plan_free(&p);
    return r;
}

/* Size of the ruleset attribute the ABI knows: an older kernel rejects
 * (E2BIG) a larger struct only when the extra fields are non-zero, but
 * passing exactly its size keeps the call what that kernel expects. */
static size_t ruleset_attr_size(int abi)
{
    if (abi >= 6)
        return sizeof(struct sp_ll_ruleset_attr);
    if (abi >= 4)
        return offsetof(struct sp_ll_ruleset_attr, scoped);
    return offsetof(struct sp_ll_ruleset_attr, handled_access_net);
}

/* Add one path rule; 0 when added or skipped, else -errno. Child side:
 * raw syscalls only. */
static int add_path_rule(int ruleset_fd, const struct sp_ll_rule *rule)
{
    struct sp_ll_path_beneath_attr pb = {0};
    struct stat st;
    int fd = -1;
    int r = 0;

    /* O_PATH: needs no read permission on the target; the fd only names
     * the inode for the rule. */
    fd = open(rule->path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        /* Nothing there: nothing to allow. */
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    pb.allowed_access = rule->access;
    /* The kernel refuses (EINVAL) directory rights on anything that is not
     * a directory: a bind-mounted file or device gets file rights only. */
    if (!S_ISDIR(st.st_mode))
        pb.allowed_access &= SP_LL_FS_FILE_RIGHTS;
    if (pb.allowed_access == 0) {
        /* An empty rule allows nothing (and add_rule says ENOMSG). */
        close(fd);
        return 0;
    }
    pb.parent_fd = fd;
    if (ll_add_rule(ruleset_fd, SP_LL_RULE_PATH_BENEATH, &pb) < 0)
        r = -errno;
    close(fd);
    return r;
}

int sp_landlock_apply(const struct sp_landlock_plan *plan,
                      int *ret_failed_index)
{
    struct sp_ll_ruleset_attr attr = {0};
    int ruleset_fd = -1;
    int r = 0;

    /* Everything below is a raw syscall on memory prepared before clone():
     * async-signal-safe, no allocation, errno read right after each call. */
    if (ret_failed_index)
        *ret_failed_index = -1;
    if (!plan)
        return -EINVAL;
    if (plan->abi == 0)
        return 0;

    attr.handled_access_fs = plan->handled_fs;
    attr.handled_access_net = plan->handled_net;
    attr.scoped = plan->scoped;
    /* The kernel creates the ruleset fd O_CLOEXEC; it is closed below
     * anyway so it never reaches the program. */
    ruleset_fd = ll_create_ruleset(&attr, ruleset_attr_size(plan->abi), 0);
    if (ruleset_fd < 0)
        return -errno;

    for (size_t i = 0; i < plan->n_rules; i++) {
        r = add_path_rule(ruleset_fd, &plan->rules[i]);
        if (r < 0) {
            if (ret_failed_index)
                *ret_failed_index = (int)i;
            close(ruleset_fd);
            return r;
        }
    }

    for (size_t j = 0; j < plan->n_ports; j++) {
        struct sp_ll_net_port_attr np = {
            .allowed_access = plan->handled_net,
            .port = plan->ports[j],
        };

        if (ll_add_rule(ruleset_fd, SP_LL_RULE_NET_PORT, &np) < 0) {
            r = -errno;
            if (ret_failed_index)
                *ret_failed_index = (int)(plan->n_rules + j);
            close(ruleset_fd);
            return r;
        }
    }

    /* Flags exist only from ABI 7; an older kernel rejects any (EINVAL). */
    if (ll_restrict_self(ruleset_fd,
                         plan->abi >= 7 ? plan->restrict_flags : 0) < 0) {
        r = -errno;
        close(ruleset_fd);
        return r;
    }
    close(ruleset_fd);
    return 0;
}
