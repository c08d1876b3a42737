/* doctor.c — `sandpit doctor`: find out what this host can enforce by
 * trying each thing (in a forked child whenever it has side effects), never
 * by guessing from the kernel version, and render it as JSON or text. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "cgroup.h"
#include "doctor.h"
#include "ids.h"
#include "state.h"
#include "landlock.h"
#include "loopdisk.h"
#include "util.h"

#ifndef SANDPIT_VERSION
#define SANDPIT_VERSION "0.1.0"
#endif

/* Debian 12's headers know these, older ones may not; the numbers are the
 * same on every architecture since the syscall table was unified (424+). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_BENEATH 0x08
#endif

/* Our own copy of the openat2 argument, so no uapi header is needed. */
struct doctor_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/* The unprivileged user a root prober drops to (nobody on Debian). */
#define DOCTOR_NOBODY 65534

static const char *const ns_names[SP_NS_COUNT] = {
    [SP_NS_MOUNT] = "mount", [SP_NS_PID] = "pid",       [SP_NS_NET] = "net",
    [SP_NS_IPC] = "ipc",     [SP_NS_UTS] = "uts",       [SP_NS_CGROUP] = "cgroup",
    [SP_NS_TIME] = "time",
};

static const int ns_flags[SP_NS_COUNT] = {
    [SP_NS_MOUNT] = CLONE_NEWNS,   [SP_NS_PID] = CLONE_NEWPID,
    [SP_NS_NET] = CLONE_NEWNET,    [SP_NS_IPC] = CLONE_NEWIPC,
    [SP_NS_UTS] = CLONE_NEWUTS,    [SP_NS_CGROUP] = CLONE_NEWCGROUP,
    [SP_NS_TIME] = CLONE_NEWTIME,
};

const char *sp_ns_kind_name(enum sp_ns_kind k)
{
    if ((int)k < 0 || k >= SP_NS_COUNT)
        return NULL;
    return ns_names[k];
}

/* ---- small helpers ----------------------------------------------------- */

/* snprintf that appends to what buf already holds and never overflows. */
static void appendf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strnlen(buf, len);
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Read a small text file into buf, trailing newlines stripped. */
static int read_small(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

/* A sysctl as a number; -1 when the file is absent or unreadable (the
 * kernel lacks the knob, which means "not restricted by it"). */
static long read_sysctl(const char *path)
{
    char buf[32];
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || end == buf)
        return -1;
    return v;
}

/* ---- probes in a child ------------------------------------------------- */

/* What a probe child reports through its pipe: the step it reached and the
 * errno that stopped it (0 = everything worked). */
struct child_result {
    int step;
    int err;
};

typedef int (*child_fn)(const void *arg, int *step);

/* Run fn(arg) in a forked child and return 0, or the negative errno it
 * failed with, with *ret_step the step it reached. The child reports
 * through a pipe rather than its exit status, so a SIGCHLD set to SIG_IGN
 * by the caller (auto-reaping) cannot falsify the answer. The child runs
 * only raw syscalls on memory prepared before fork(), which is what is
 * allowed after fork() in a multi-threaded process. */
static int run_child(child_fn fn, const void *arg, int *ret_step)
{
    int p[2] = {-1, -1};
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0) {
        close(p[0]);
        struct child_result res = {0, 0};
        res.err = fn(arg, &res.step);
        if (write(p[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    struct child_result res = {-1, 0};
    ssize_t n = -1;
    do
        n = read(p[0], &res, sizeof(res));
    while (n < 0 && errno == EINTR);
    close(p[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (ret_step)
        *ret_step = res.step;
    /* No report: the child died (a signal, a seccomp kill) before it
     * could answer; count the probe as failed. */
    if (n != (ssize_t)sizeof(res))
        return -ECHILD;
    return res.err > 0 ? -res.err : 0;
}

struct unshare_arg {
    int flags;
    bool drop;       /* become DOCTOR_NOBODY first (root only) */
    bool caps_check; /* then use a capability inside the new user ns */
};

enum { UNSHARE_STEP_DROP = 1, UNSHARE_STEP_UNSHARE, UNSHARE_STEP_CAPS };

static int child_unshare(const void *varg, int *step)
{
    const struct unshare_arg *a = varg;
    if (a->drop) {
        /* Raw syscalls: glibc's wrappers would try to broadcast the
         * change to threads this child does not have. */
        *step = UNSHARE_STEP_DROP;
        if (syscall(SYS_setgroups, 0, NULL) < 0 ||
            syscall(SYS_setresgid, DOCTOR_NOBODY, DOCTOR_NOBODY,
                    DOCTOR_NOBODY) < 0 ||
            syscall(SYS_setresuid, DOCTOR_NOBODY, DOCTOR_NOBODY,
                    DOCTOR_NOBODY) < 0)
            return errno;
    }
    *step = UNSHARE_STEP_UNSHARE;
    if (unshare(a->flags) < 0)
        return errno;
    /* AppArmor's userns restriction (Ubuntu 23.10+) lets unshare succeed
     * but takes every capability inside away; making a mount namespace
     * needs CAP_SYS_ADMIN there, so this tells a usable namespace apart. */
    if (a->caps_check) {
        *step = UNSHARE_STEP_CAPS;
        if (unshare(CLONE_NEWNS) < 0)
            return errno;
    }
    return 0;
}

static int child_seccomp(const void *varg, int *step)
{
    const struct sock_fprog *prog = varg;
    *step = 1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return errno;
    *step = 2;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog) < 0)
        return errno;
    return 0;
}

/* Everything the overlay child writes, formatted before fork(). */
struct overlay_arg {
    char uid_map[48];
    char gid_map[48];
};

enum {
    OV_STEP_UNSHARE = 1,
    OV_STEP_SETGROUPS,
    OV_STEP_UID_MAP,
    OV_STEP_GID_MAP,
    OV_STEP_PRIVATE,
    OV_STEP_TMPFS,
    OV_STEP_MKDIR,
    OV_STEP_OVERLAY,
};

static const char *overlay_step_name(int step)
{
    switch (step) {
    case OV_STEP_UNSHARE: return "unshare(CLONE_NEWUSER|CLONE_NEWNS)";
    case OV_STEP_SETGROUPS: return "writing /proc/self/setgroups";
    case OV_STEP_UID_MAP: return "writing /proc/self/uid_map";
    case OV_STEP_GID_MAP: return "writing /proc/self/gid_map";
    case OV_STEP_PRIVATE: return "making / private";
    case OV_STEP_TMPFS: return "mounting a tmpfs on /tmp";
    case OV_STEP_MKDIR: return "creating the layer directories";
    case OV_STEP_OVERLAY: return "mount(\"overlay\")";
    default: return "starting the probe";
    }
}

/* Async-signal-safe: open/write/close only. Returns 0 or errno. */
static int write_proc(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int e = n < 0 ? errno : (size_t)n != len ? EIO : 0;
    close(fd);
    return e;
}

static int child_overlay(const void *varg, int *step)
{
    const struct overlay_arg *a = varg;
    int e = 0;
    *step = OV_STEP_UNSHARE;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
        return errno;
    /* An unprivileged process may map only its own ids, and only after
     * giving up setgroups(). */
    *step = OV_STEP_SETGROUPS;
    if ((e = write_proc("/proc/self/setgroups", "deny")) != 0)
        return e;
    *step = OV_STEP_UID_MAP;
    if ((e = write_proc("/proc/self/uid_map", a->uid_map)) != 0)
        return e;
    *step = OV_STEP_GID_MAP;
    if ((e = write_proc("/proc/self/gid_map", a->gid_map)) != 0)
        return e;
    /* Private propagation so the tmpfs and overlay below never reach the
     * host's /tmp; they vanish with this child's mount namespace. */
    *step = OV_STEP_PRIVATE;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return errno;
    *step = OV_STEP_TMPFS;
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
        return errno;
    *step = OV_STEP_MKDIR;
    if (mkdir("/tmp/l", 0700) < 0 || mkdir("/tmp/u", 0700) < 0 ||
        mkdir("/tmp/w", 0700) < 0 || mkdir("/tmp/m", 0700) < 0)
        return errno;
    *step = OV_STEP_OVERLAY;
    if (mount("overlay", "/tmp/m", "overlay", 0,
              "lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w") < 0)
        return errno;
    return 0;
}

/* ---- the probes -------------------------------------------------------- */

static void probe_userns(struct sp_host *h)
{
    bool root = h->uid == 0;
    int step = 0;
    const struct unshare_arg self = {CLONE_NEWUSER, false, true};
    int r = run_child(child_unshare, &self, &step);
    h->userns_available = r == 0;

    char why[160] = "";
    if (r == -ECHILD)
        snprintf(why, sizeof(why), "the probe child died");
    else if (r < 0 && step == UNSHARE_STEP_CAPS)
        snprintf(why, sizeof(why),
                 "one can be created but holds no capabilities inside "
                 "(unshare(CLONE_NEWNS) in it: %s)",
                 strerror(-r));
    else if (r < 0)
        snprintf(why, sizeof(why), "unshare(CLONE_NEWUSER): %s", strerror(-r));

    /* The knobs that stop ordinary users; absent ones do not restrict. */
    long clone_knob = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone");
    long max_ns = read_sysctl("/proc/sys/user/max_user_namespaces");
    long aa = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    char knobs[200] = "";
    if (clone_knob == 0)
        appendf(knobs, sizeof(knobs), "%skernel.unprivileged_userns_clone=0",
                knobs[0] ? ", " : "");
    if (max_ns <= 0)
        appendf(knobs, sizeof(knobs), "%suser.max_user_namespaces=%s",
                knobs[0] ? ", " : "", max_ns == 0 ? "0" : "missing");
    if (aa > 0)
        appendf(knobs, sizeof(knobs),
                "%skernel.apparmor_restrict_unprivileged_userns=%ld",
                knobs[0] ? ", " : "", aa);

    char *d = h->userns_detail;
    size_t dl = sizeof(h->userns_detail);
    if (root) {
        const struct unshare_arg drop = {CLONE_NEWUSER, true, true};
        int step2 = 0;
        int r2 = run_child(child_unshare, &drop, &step2);
        /* Inside a user namespace uid 65534 may be unmapped, so the drop
         * itself can fail: then only the sysctls can answer. */
        bool untested = r2 != 0 && step2 == UNSHARE_STEP_DROP;
        h->userns_unprivileged = (r2 == 0 || untested) && !knobs[0];
        if (h->userns_available)
            snprintf(d, dl, "root can create user namespaces");
        else
            snprintf(d, dl, "root cannot create user namespaces: %s", why);
        if (untested) {
            appendf(d, dl, "; unprivileged users %s by the sysctls%s%s "
                    "(not tested: cannot become uid %d: %s)",
                    knobs[0] ? "cannot" : "can", knobs[0] ? ": " : "", knobs,
                    DOCTOR_NOBODY, strerror(-r2));
        } else if (h->userns_unprivileged) {
            appendf(d, dl, "; unprivileged users can too (tested as uid %d)",
                    DOCTOR_NOBODY);
        } else {
            appendf(d, dl, "; unprivileged users cannot:");
            if (r2 != 0)
                appendf(d, dl, " as uid %d, %s%s", DOCTOR_NOBODY,
                        step2 == UNSHARE_STEP_CAPS
                            ? "no capabilities inside: "
                            : "unshare(CLONE_NEWUSER): ",
                        r2 == -ECHILD ? "the probe child died"
                                      : strerror(-r2));
            if (knobs[0])
                appendf(d, dl, "%s %s", r2 != 0 ? ";" : "", knobs);
        }
    } else {
        /* We are an ordinary user: the real test is the answer. */
        h->userns_unprivileged = h->userns_available;
        if (h->userns_available)
            snprintf(d, dl, "uid %u can create user namespaces",
                     (unsigned)h->uid);
        else
            snprintf(d, dl, "uid %u cannot create user namespaces: %s%s%s",
                     (unsigned)h->uid, why, knobs[0] ? "; " : "", knobs);
    }
}

static void probe_namespaces(struct sp_host *h)
{
    /* Root without user namespaces still gets the others directly. */
    int base = h->uid == 0 && !h->userns_available ? 0 : CLONE_NEWUSER;
    for (int k = 0; k < SP_NS_COUNT; k++) {
        const struct unshare_arg a = {base | ns_flags[k], false, false};
        int r = run_child(child_unshare, &a, NULL);
        h->ns[k] = r == 0;
        h->ns_errno[k] = r < 0 ? -r : 0;
    }
}

static void probe_landlock(struct sp_host *h)
{
    h->landlock_abi = sp_landlock_abi();
    char *d = h->landlock_detail;
    size_t dl = sizeof(h->landlock_detail);
    if (h->landlock_abi <= 0) {
        snprintf(d, dl, "not available: the kernel lacks "
                        "CONFIG_SECURITY_LANDLOCK or landlock is not in the "
                        "lsm= boot list");
        return;
    }
    snprintf(d, dl, "ABI %d", h->landlock_abi);
    if (h->landlock_abi < 4)
        appendf(d, dl, " (no TCP port rules: need ABI 4; no signal and "
                       "abstract-socket scoping: need ABI 6)");
    else if (h->landlock_abi < 6)
        appendf(d, dl, " (no signal and abstract-socket scoping: need ABI 6)");
}

static void probe_seccomp(struct sp_host *h)
{
    char *d = h->seccomp_detail;
    size_t dl = sizeof(h->seccomp_detail);
    int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    int get_errno = mode < 0 ? errno : 0;
    h->seccomp_prctl = mode >= 0;

    if (read_small("/proc/sys/kernel/seccomp/actions_avail", h->seccomp_actions,
                   sizeof(h->seccomp_actions)) < 0)
        h->seccomp_actions[0] = '\0';

    static struct sock_filter allow[] = {
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    const struct sock_fprog prog = {
        .len = (unsigned short)SP_ARRAY_SIZE(allow),
        .filter = allow,
    };
    int step = 0;
    int r = run_child(child_seccomp, &prog, &step);
    h->seccomp_filter = r == 0;

    if (h->seccomp_filter)
        snprintf(d, dl, "filter mode works%s",
                 mode == 2 ? " (this process already runs under a filter)"
                           : "");
    else if (!h->seccomp_prctl)
        snprintf(d, dl, "prctl(PR_GET_SECCOMP): %s (kernel built without "
                        "CONFIG_SECCOMP?)", strerror(get_errno));
    else
        snprintf(d, dl, "%s: %s",
                 step == 1 ? "prctl(PR_SET_NO_NEW_PRIVS)"
                           : "installing a filter",
                 r == -ECHILD ? "the probe child died" : strerror(-r));
}

/* v2, hybrid or v1, from the file-system types in our mount table: a
 * cgroup2 mount and cgroup (v1) mounts together make the hybrid layout. */
static void probe_cgroup_layout(struct sp_host *h)
{
    bool v1 = false, v2 = false;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            /* Fields after " - " are: fstype source options. */
            const char *sep = strstr(line, " - ");
            if (!sep)
                continue;
            const char *fs = sep + 3;
            if (strncmp(fs, "cgroup2 ", 8) == 0)
                v2 = true;
            else if (strncmp(fs, "cgroup ", 7) == 0)
                v1 = true;
        }
        free(line);
        fclose(f);
    }
    snprintf(h->cgroup_layout, sizeof(h->cgroup_layout), "%s",
             v1 && v2 ? "hybrid" : v2 ? "v2" : v1 ? "v1" : "none");
}

static void probe_cgroups(struct sp_host *h)
{
    probe_cgroup_layout(h);
    int r = sp_cgroup_probe(h->cgroup_detail, sizeof(h->cgroup_detail));
    h->cgroups_available = r == 1;
    if (r < 0 && !h->cgroup_detail[0])
        snprintf(h->cgroup_detail, sizeof(h->cgroup_detail),
                 "cgroup probe failed: %s", strerror(-r));
}

static void probe_overlay(struct sp_host *h)
{
    struct overlay_arg a;
    memset(&a, 0, sizeof(a));
    snprintf(a.uid_map, sizeof(a.uid_map), "0 %u 1\n", (unsigned)geteuid());
    snprintf(a.gid_map, sizeof(a.gid_map), "0 %u 1\n", (unsigned)getegid());
    int step = 0;
    int r = run_child(child_overlay, &a, &step);
    h->overlay_userns = r == 0;
    if (r == 0)
        snprintf(h->overlay_detail, sizeof(h->overlay_detail),
                 "overlayfs mounts inside a user namespace");
    else if (r == -ECHILD)
        snprintf(h->overlay_detail, sizeof(h->overlay_detail),
                 "the probe child died");
    else
        snprintf(h->overlay_detail, sizeof(h->overlay_detail), "%s: %s",
                 overlay_step_name(step), strerror(-r));
}

static void probe_disk(struct sp_host *h)
{
    char why[200];
    h->disk_available = sp_disk_probe(why, sizeof(why)) == 1;
    snprintf(h->disk_mechanism, sizeof(h->disk_mechanism), "%s",
             h->disk_available ? SP_DISK_MECH_LOOP : "none");
    if (h->disk_available)
        snprintf(h->disk_detail, sizeof(h->disk_detail),
                 "a sparse ext4 image per workspace on a loop device "
                 "(btrfs qgroups and project quotas: not used)");
    else
        snprintf(h->disk_detail, sizeof(h->disk_detail),
                 "workspaces write to the state directory unbounded: %s", why);
}

/* Each call below is harmless: bad arguments or a read-only open, so the
 * kernel answers EINVAL/EBADF when it has the call and ENOSYS when not. */
static void probe_syscalls(struct sp_host *h)
{
    long fd = syscall(SYS_pidfd_open, (long)getpid(), 0L);
    h->sys_pidfd = fd >= 0;
    if (fd >= 0)
        close((int)fd);

    struct doctor_open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .mode = 0,
        .resolve = RESOLVE_BENEATH,
    };
    fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
    h->sys_openat2 = fd >= 0 || errno != ENOSYS;
    if (fd >= 0)
        close((int)fd);

    /* size 0 is below MOUNT_ATTR_SIZE_VER0: EINVAL before any check. */
    long r = syscall(SYS_mount_setattr, -1L, "", 0L, NULL, 0L);
    h->sys_mount_setattr = r == 0 || errno != ENOSYS;

    /* size 0 is below CLONE_ARGS_SIZE_VER0: EINVAL, nothing is cloned. */
    r = syscall(SYS_clone3, NULL, 0L);
    if (r == 0)
        _exit(0); /* cannot happen; never let a stray child run on */
    if (r > 0)
        while (waitpid((pid_t)r, NULL, 0) < 0 && errno == EINTR)
            ;
    h->sys_clone3 = r > 0 || errno == EINVAL;

    /* first > every open fd: nothing is closed. */
    r = syscall(SYS_close_range, ~0U, ~0U, 0U);
    h->sys_close_range = r == 0 || errno != ENOSYS;
}


/* A user namespace with the root range's maps, for the ID-mapped mount
 * probe: a child that unshares one and waits; *ret_ns its ns fd. */
static pid_t idmap_helper(const struct sp_ids *ids, int *ret_ns, int *ret_pipe)
{
    int go[2], ready[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(ready, O_CLOEXEC) < 0) {
        close(go[0]);
        close(go[1]);
        return -1;
    }
    pid_t c = fork();
    if (c == 0) {
        close(go[1]);
        close(ready[0]);
        char b = unshare(CLONE_NEWUSER) == 0 ? 'k' : 'e';
        if (write(ready[1], &b, 1) != 1)
            _exit(1);
        if (read(go[0], &b, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char b = 0;
    if (c < 0 || read(ready[0], &b, 1) != 1 || b != 'k') {
        close(ready[0]);
        close(go[1]);
        if (c > 0)
            waitpid(c, NULL, 0);
        return -1;
    }
    close(ready[0]);
    char path[64], map[64];
    int ok = 1;
    for (int g = 0; g < 2 && ok; g++) {
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)c, g ? "gid_map" : "uid_map");
        const struct sp_idrange *r = g ? &ids->gid : &ids->uid;
        snprintf(map, sizeof(map), "0 %u %u\n", r->start, r->count);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ok = fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map);
        if (fd >= 0)
            close(fd);
    }
    snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)c);
    *ret_ns = ok ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    *ret_pipe = go[1];
    return c;
}

static void probe_identity(struct sp_host *h)
{
    struct sp_ids ids;
    sp_ids_plan(&ids);
    snprintf(h->id_kind, sizeof(h->id_kind), "%s",
             ids.kind == SP_IDS_ROOT  ? "range"
             : ids.kind == SP_IDS_SUB ? "subordinate"
                                      : "single");
    h->id_uid_start = ids.kind == SP_IDS_SINGLE ? (unsigned)geteuid() : ids.uid.start;
    h->id_uid_count = ids.kind == SP_IDS_SINGLE ? 1 : ids.uid.count;
    h->id_gid_start = ids.kind == SP_IDS_SINGLE ? (unsigned)getegid() : ids.gid.start;
    h->id_gid_count = ids.kind == SP_IDS_SINGLE ? 1 : ids.gid.count;
    char d[300];
    sp_ids_describe(&ids, d, sizeof(d));
    snprintf(h->id_detail, sizeof(h->id_detail), "%s%s", d,
             ids.kind == SP_IDS_ROOT ? "; never host root" : "");

    h->idmap_needed = ids.kind == SP_IDS_ROOT;
    if (!h->idmap_needed) {
        h->idmap_available = h->sys_mount_setattr;
        snprintf(h->idmap_detail, sizeof(h->idmap_detail),
                 "not needed: your own id is the sandbox's root, so the "
                 "workspace and --rw binds keep your ownership");
        return;
    }
    /* The state directory (workspaces' layers) or the nearest existing
     * directory above it: the file system workspaces live on. */
    char dir[4096];
    sp_error e = {0};
    if (sp_state_dir(dir, sizeof(dir), &e) < 0)
        snprintf(dir, sizeof(dir), "/var/lib");
    struct stat st;
    while (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        char *sl = strrchr(dir, '/');
        if (!sl || sl == dir) {
            snprintf(dir, sizeof(dir), "/");
            break;
        }
        *sl = '\0';
    }
    int ns = -1, go = -1;
    pid_t c = idmap_helper(&ids, &ns, &go);
    int err = 0;
    if (c < 0 || ns < 0) {
        err = errno ? errno : EPERM;
    } else {
        int fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir,
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fd < 0) {
            err = errno;
        } else {
            struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP,
                                   .userns_fd = (uint64_t)ns};
            if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &a,
                        sizeof(a)) < 0)
                err = errno;
            close(fd);
        }
    }
    if (ns >= 0)
        close(ns);
    if (go >= 0)
        close(go);
    if (c > 0)
        while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
            ;
    h->idmap_available = err == 0;
    if (err == 0)
        snprintf(h->idmap_detail, sizeof(h->idmap_detail),
                 "ID-mapped mounts work on %.150s: the workspace and --rw binds "
                 "keep host ownership (host root = the sandbox's root there)",
                 dir);
    else
        snprintf(h->idmap_detail, sizeof(h->idmap_detail),
                 "ID-mapped mounts fail on %.150s (%s): --rw binds stay plain "
                 "(the caller's files nobody's inside, not writable) and "
                 "workspaces cannot start; --require idmap refuses",
                 dir, strerror(err));
}

int sp_host_probe(struct sp_host *ret)
{
    if (!ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    int saved_errno = errno;

    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(ret->kernel, sizeof(ret->kernel), "%s", u.release);
        snprintf(ret->arch, sizeof(ret->arch), "%s", u.machine);
    }
    ret->uid = geteuid();

    probe_userns(ret);
    probe_namespaces(ret);
    probe_landlock(ret);
    probe_seccomp(ret);
    probe_cgroups(ret);
    probe_overlay(ret);
    probe_disk(ret);
    probe_syscalls(ret);
    probe_identity(ret);

    errno = saved_errno;
    return 0;
}

unsigned sp_host_missing_layers(const struct sp_host *h)
{
    unsigned m = 0;
    if (h->landlock_abi <= 0)
        m |= SP_LAYER_LANDLOCK;
    if (!h->seccomp_filter)
        m |= SP_LAYER_SECCOMP;
    if (!h->cgroups_available)
        m |= SP_LAYER_LIMITS;
    if (!h->userns_available)
        m |= SP_LAYER_USERNS;
    if (!h->ns[SP_NS_NET])
        m |= SP_LAYER_NETNS;
    if (!h->disk_available)
        m |= SP_LAYER_DISK;
    if (h->idmap_needed && !h->idmap_available)
        m |= SP_LAYER_IDMAP;
    if (strcmp(h->id_kind, "single") == 0 || !h->userns_available)
        m |= SP_LAYER_IDRANGE;
    return m;
}

/* The layers --require names, in the order the docs list them. */
static const struct {
    unsigned bit;
    const char *name;
} require_layers[] = {
    {SP_LAYER_LANDLOCK, "landlock"}, {SP_LAYER_SECCOMP, "seccomp"},
    {SP_LAYER_LIMITS, "limits"},     {SP_LAYER_USERNS, "userns"},
    {SP_LAYER_NETNS, "netns"},       {SP_LAYER_DISK, "disk"},
    {SP_LAYER_IDMAP, "idmap"},       {SP_LAYER_IDRANGE, "idrange"},
};

/* ---- JSON -------------------------------------------------------------- */

/* json_object_set_new that remembers a failure (NULL value or ENOMEM). */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!o || !v || json_object_set_new(o, key, v) < 0)
        *ok = false;
}

char *sp_host_to_json(const struct sp_host *h)
{
    bool ok = true;
    json_t *root = json_object();
    json_t *layers = json_object();
    put(root, "sandpit_version", json_string(SANDPIT_VERSION), &ok);
    put(root, "kernel", json_string(h->kernel), &ok);
    put(root, "arch", json_string(h->arch), &ok);
    put(root, "uid", json_integer((json_int_t)h->uid), &ok);

    json_t *o = json_object();
    put(o, "available", json_boolean(h->userns_available), &ok);
    put(o, "unprivileged", json_boolean(h->userns_unprivileged), &ok);
    put(o, "detail", json_string(h->userns_detail), &ok);
    put(layers, "userns", o, &ok);

    o = json_object();
    for (int k = 0; k < SP_NS_COUNT; k++)
        put(o, ns_names[k], json_boolean(h->ns[k]), &ok);
    put(layers, "namespaces", o, &ok);

    o = json_object();
    put(o, "available", json_boolean(h->landlock_abi > 0), &ok);
    put(o, "abi", json_integer(h->landlock_abi), &ok);
    put(o, "detail", json_string(h->landlock_detail), &ok);
    put(layers, "landlock", o, &ok);

    o = json_object();
    put(o, "available", json_boolean(h->seccomp_filter), &ok);
    json_t *acts = json_array();
    char buf[sizeof(h->seccomp_actions)];
    snprintf(buf, sizeof(buf), "%s", h->seccomp_actions);
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t\n", &save); t && acts;
         t = strtok_r(NULL, " \t\n", &save))
        if (json_array_append_new(acts, json_string(t)) < 0)
            ok = false;
    put(o, "actions", acts, &ok);
    put(o, "detail", json_string(h->seccomp_detail), &ok);
    put(layers, "seccomp", o, &ok);

    o = json_object();
    put(o, "available", json_boolean(h->cgroups_available), &ok);
    put(o, "layout", json_string(h->cgroup_layout), &ok);
    put(o, "detail", json_string(h->cgroup_detail), &ok);
    put(layers, "cgroups", o, &ok);

    o = json_object();
    put(o, "available", json_boolean(h->overlay_userns), &ok);
    put(o, "detail", json_string(h->overlay_detail), &ok);
    put(layers, "overlay_userns", o, &ok);

    o = json_object();
    put(o, "available", json_boolean(h->disk_available), &ok);
    put(o, "mechanism", json_string(h->disk_mechanism), &ok);
    put(o, "detail", json_string(h->disk_detail), &ok);
    put(layers, "disk", o, &ok);

    o = json_object();
    put(o, "kind", json_string(h->id_kind), &ok);
    json_t *ur = json_array(), *gr = json_array();
    if (!ur || !gr || json_array_append_new(ur, json_integer(h->id_uid_start)) ||
        json_array_append_new(ur, json_integer(h->id_uid_count)) ||
        json_array_append_new(gr, json_integer(h->id_gid_start)) ||
        json_array_append_new(gr, json_integer(h->id_gid_count)))
        ok = false;
    put(o, "host_uids", ur, &ok);
    put(o, "host_gids", gr, &ok);
    put(o, "detail", json_string(h->id_detail), &ok);
    put(layers, "identity", o, &ok);

    o = json_object();
    put(o, "needed", json_boolean(h->idmap_needed), &ok);
    put(o, "available", json_boolean(h->idmap_available), &ok);
    put(o, "detail", json_string(h->idmap_detail), &ok);
    put(layers, "idmap", o, &ok);
    put(root, "layers", layers, &ok);

    o = json_object();
    put(o, "pidfd", json_boolean(h->sys_pidfd), &ok);
    put(o, "openat2", json_boolean(h->sys_openat2), &ok);
    put(o, "mount_setattr", json_boolean(h->sys_mount_setattr), &ok);
    put(o, "clone3", json_boolean(h->sys_clone3), &ok);
    put(o, "close_range", json_boolean(h->sys_close_range), &ok);
    put(root, "syscalls", o, &ok);

    unsigned missing = sp_host_missing_layers(h);
    o = json_object();
    put(o, "ok", json_boolean(missing == 0), &ok);
    json_t *miss = json_array();
    for (size_t i = 0; i < SP_ARRAY_SIZE(require_layers) && miss; i++)
        if ((missing & require_layers[i].bit) &&
            json_array_append_new(miss, json_string(require_layers[i].name)) < 0)
            ok = false;
    put(o, "missing", miss, &ok);
    put(root, "summary", o, &ok);

    char *text = ok ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    return text;
}

/* ---- text -------------------------------------------------------------- */

static void text_line(FILE *f, const char *name, const char *status,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void text_line(FILE *f, const char *name, const char *status,
                      const char *fmt, ...)
{
    fprintf(f, "%-14s%-9s", name, status);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

char *sp_host_to_text(const struct sp_host *h)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;

    fprintf(f, "sandpit %s on Linux %s %s, uid %u\n", SANDPIT_VERSION,
            h->kernel, h->arch, (unsigned)h->uid);
    text_line(f, "userns", h->userns_available ? "ok" : "MISSING", "%s",
              h->userns_detail);

    char have[128] = "", lack[256] = "";
    for (int k = 0; k < SP_NS_COUNT; k++) {
        if (h->ns[k])
            appendf(have, sizeof(have), "%s%s", have[0] ? " " : "", ns_names[k]);
        else
            appendf(lack, sizeof(lack), "%s%s (%s)", lack[0] ? ", " : "",
                    ns_names[k], strerror(h->ns_errno[k]));
    }
    if (!lack[0])
        text_line(f, "namespaces", "ok", "%s", have);
    else
        text_line(f, "namespaces", have[0] ? "partial" : "MISSING",
                  "missing: %s%s%s", lack, have[0] ? "; have: " : "", have);

    text_line(f, "landlock", h->landlock_abi > 0 ? "ok" : "MISSING", "%s",
              h->landlock_detail);
    text_line(f, "seccomp", h->seccomp_filter ? "ok" : "MISSING", "%s%s%s",
              h->seccomp_detail, h->seccomp_actions[0] ? "; actions: " : "",
              h->seccomp_actions);
    text_line(f, "cgroups", h->cgroups_available ? "ok" : "MISSING", "%s",
              h->cgroup_detail);
    text_line(f, "overlay", h->overlay_userns ? "ok" : "MISSING", "%s",
              h->overlay_detail);
    text_line(f, "disk", h->disk_available ? "ok" : "MISSING", "%s: %s",
              h->disk_mechanism, h->disk_detail);
    text_line(f, "identity",
              strcmp(h->id_kind, "single") == 0 ? "single" : "ok", "%s",
              h->id_detail);
    text_line(f, "idmap",
              !h->idmap_needed ? "n/a" : h->idmap_available ? "ok" : "MISSING",
              "%s", h->idmap_detail);

    const struct {
        bool have;
        const char *name;
    } sys[] = {
        {h->sys_pidfd, "pidfd"},   {h->sys_openat2, "openat2"},
        {h->sys_mount_setattr, "mount_setattr"},
        {h->sys_clone3, "clone3"}, {h->sys_close_range, "close_range"},
    };
    have[0] = lack[0] = '\0';
    for (size_t i = 0; i < SP_ARRAY_SIZE(sys); i++)
        appendf(sys[i].have ? have : lack, sys[i].have ? sizeof(have)
                                                       : sizeof(lack),
                "%s%s", (sys[i].have ? have : lack)[0] ? " " : "",
                sys[i].name);
    if (!lack[0])
        text_line(f, "syscalls", "ok", "%s", have);
    else
        text_line(f, "syscalls", have[0] ? "partial" : "MISSING",
                  "missing: %s%s%s", lack, have[0] ? "; have: " : "", have);

    unsigned missing = sp_host_missing_layers(h);
    fprintf(f, "--require can demand: landlock, seccomp, limits, userns, "
               "netns, disk, idmap, idrange; ");
    if (!missing) {
        fprintf(f, "all present here\n");
    } else {
        fprintf(f, "missing here:");
        for (size_t i = 0; i < SP_ARRAY_SIZE(require_layers); i++)
            if (missing & require_layers[i].bit)
                fprintf(f, " %s", require_layers[i].name);
        fputc('\n', f);
    }

    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- public API -------------------------------------------------------- */

SP_EXPORT char *sp_doctor_json(void)
{
    struct sp_host h;
    if (sp_host_probe(&h) < 0)
        return NULL;
    return sp_host_to_json(&h);
}

SP_EXPORT char *sp_doctor_text(void)
{
    struct sp_host h;
    if (sp_host_probe(&h) < 0)
        return NULL;
    return sp_host_to_text(&h);
}
