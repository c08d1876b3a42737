/* mounts.c — build the sandbox's root in a fresh tmpfs, mount by fd
 * (open_tree/move_mount/fsmount) so no path the sandboxed program could
 * have planted is followed, then pivot into it.
 *
 * Runs in the child between clone() and execve(): only raw syscalls on data
 * the parent prepared; no malloc, no stdio. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "util.h"

#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif

int sp_child_error_set(struct sp_child_error *ce, enum sp_step step, int err,
                       const char *path)
{
    if (ce && ce->step == SP_STEP_NONE) {
        ce->step = step;
        ce->err = err;
        size_t i = 0;
        if (path)
            for (; path[i] && i + 1 < sizeof(ce->path); i++)
                ce->path[i] = path[i];
        ce->path[i] = '\0';
    }
    return -err;
}

/* Unsigned to decimal or octal text, for fsconfig values (no snprintf). */
static void utoa(uint64_t v, unsigned base, char *buf, size_t len)
{
    char tmp[32];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % base));
        v /= base;
    } while (v && n < sizeof(tmp));
    size_t i = 0;
    while (n && i + 1 < len)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

/* Walk `path` below dirfd one component at a time, never following a
 * symlink, creating missing directories (mode 0755) and, when !is_dir, the
 * final component as an empty file. Returns an O_PATH fd of the target or
 * -errno. */
static int mkpath_at(int rootfd, const char *path, bool is_dir, mode_t mode)
{
    int cur = rootfd;
    const char *p = path;
    char name[256];
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = 0;
        while (p[n] && p[n] != '/')
            n++;
        if (n >= sizeof(name)) {
            if (cur != rootfd)
                close(cur);
            return -ENAMETOOLONG;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        while (*p == '/')
            p++;
        bool last = *p == '\0';
        int fd;
        if (last && !is_dir) {
            fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT) {
                int c = openat(cur, name,
                               O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
                                   O_CLOEXEC,
                               0644);
                if (c >= 0)
                    close(c);
                fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            }
            if (fd >= 0) {
                struct stat st;
                if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode) ||
                    S_ISDIR(st.st_mode)) {
                    int e = S_ISDIR(st.st_mode) ? EISDIR : ELOOP;
                    close(fd);
                    fd = -1;
                    errno = e;
                }
            }
        } else {
            fd = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT) {
                if (mkdirat(cur, name, last ? mode : 0755) < 0 &&
                    errno != EEXIST) {
                    int e = errno;
                    if (cur != rootfd)
                        close(cur);
                    return -e;
                }
                fd = openat(cur, name,
                            O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }
        }
        int e = errno;
        if (cur != rootfd)
            close(cur);
        if (fd < 0)
            return -e;
        cur = fd;
    }
    if (cur == rootfd) {
        cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
            return -errno;
    }
    return cur;
}

/* Split "/a/b/c" into an fd of "/a/b" (created) and "c". */
static int parent_at(int rootfd, const char *path, const char **ret_base)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    *ret_base = slash ? slash + 1 : path;
    return mkpath_at(rootfd, dir, true, 0755);
}

/* A new detached filesystem mount (tmpfs, proc, devpts) via the new mount
 * API. Returns the mount fd or -errno. */
static int new_fs(const char *type, const char *const *opts, unsigned attrs)
{
    int fs = fsopen(type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -errno;
    for (size_t i = 0; opts && opts[i]; i += 2) {
        int r = opts[i + 1]
                    ? fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0)
                    : fsconfig(fs, FSCONFIG_SET_FLAG, opts[i], NULL, 0);
        if (r < 0) {
            int e = errno;
            close(fs);
            return -e;
        }
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int e = errno;
        close(fs);
        return -e;
    }
    int mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    int e = errno;
    close(fs);
    return mnt < 0 ? -e : mnt;
}

static int attach(int mntfd, int targetfd)
{
    if (move_mount(mntfd, "", targetfd, "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

/* A tmpfs at dst with `inodes` files at most (0: tmpfs's default). */
static int tmpfs_inodes_at(int rootfd, const char *dst, uint64_t size,
                           uint64_t inodes, mode_t mode, unsigned attrs,
                           int *ret_mnt)
{
    char sz[32], md[16], ni[32];
    utoa(size, 10, sz, sizeof(sz));
    utoa(mode, 8, md, sizeof(md));
    utoa(inodes, 10, ni, sizeof(ni));
    const char *opts[] = {"size", sz, "mode", md,
                          inodes ? "nr_inodes" : NULL, ni, NULL, NULL};
    int t = mkpath_at(rootfd, dst, true, 0755);
    if (t < 0)
        return t;
    int m = new_fs("tmpfs", opts, attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (m < 0) {
        close(t);
        return m;
    }
    int r = attach(m, t);
    close(t);
    if (r < 0 || !ret_mnt)
        close(m);
    else
        *ret_mnt = m;
    return r;
}

static int tmpfs_at(int rootfd, const char *dst, uint64_t size, mode_t mode,
                    unsigned attrs, int *ret_mnt)
{
    return tmpfs_inodes_at(rootfd, dst, size, 0, mode, attrs, ret_mnt);
}

/* Where an overlay's layer paths are under the state dir, they are given
 * relative to it (the mount is made from there): /proc/self/mountinfo
 * inside shows them as given, and must not show where on the host the
 * state lives (a home directory, a user name). */
static const char *state_rel(const struct sp_mount_plan *plan, bool rel,
                             const char *p, char *buf, size_t len)
{
    for (int k = 0; rel && k < 2; k++) {
        const char *b = plan->relbase[k];
        size_t n = b ? strlen(b) : 0;
        if (!(n > 1 && strncmp(p, b, n) == 0 && p[n] == '/' && p[n + 1]))
            continue;
        const char *rest = p + n + 1, *w = plan->relws;
        if (!w)
            return rest;
        /* From the workspace's own directory (enter_state_dir), so that
         * not even its name shows: a pooled workspace is renamed when it
         * is handed out (docs/pool.md). */
        size_t wn = strlen(w);
        if (strncmp(rest, w, wn) == 0 && rest[wn] == '/' && rest[wn + 1])
            return rest + wn + 1;
        size_t used = 0;
        buf[0] = '\0';
        for (const char *c = w; c && used + 3 < len; c = strchr(c + 1, '/'))
            used += (size_t)snprintf(buf + used, len - used, "../");
        int k2 = snprintf(buf + used, len - used, "%s", rest);
        return k2 < 0 || (size_t)k2 >= len - used ? p : buf;
    }
    return p;
}

/* A detached overlayfs: op->src the lower dir (never written), op->upper
 * and op->work on the host. Paths are resolved now, before pivot_root.
 * No redirects, index or metacopy: the upper dir then holds plain files,
 * whiteouts and opaque markers only, which is what wsdiff.c reads. */
static int overlay_fs(const struct sp_mount_op *op,
                      const struct sp_mount_plan *plan, bool rel)
{
    if (!op->src || !op->upper || !op->work)
        return -EINVAL;
    static char b1[SP_MAX_PATH], b2[SP_MAX_PATH], b3[SP_MAX_PATH],
        b4[SP_MAX_PATH];
    const char *opts[] = {"lowerdir", state_rel(plan, rel, op->src, b1,
                                                sizeof(b1)),
                          "upperdir", state_rel(plan, rel, op->upper, b2,
                                                sizeof(b2)),
                          "workdir", state_rel(plan, rel, op->work, b3,
                                               sizeof(b3)),
                          "redirect_dir", "nofollow",
                          "index", "off", "metacopy", "off",
                          plan->userxattr ? "userxattr" : NULL, NULL, NULL, NULL};
    if (!strchr(op->src, ':'))
        return new_fs("overlay", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    /* Stacked lower dirs (snapshot layers, top first, "a:b:c"): one
     * "lowerdir+" each, since fsconfig takes at most 256 bytes a value. */
    int fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -errno;
    char one[4096];
    for (const char *p = op->src; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof(one)) {
            close(fs);
            return -EINVAL;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+",
                     state_rel(plan, rel, one, b4, sizeof(b4)), 0) < 0) {
            int er = errno;
            close(fs);
            return -er;
        }
        p += n + (e ? 1 : 0);
    }
    for (size_t i = 2; opts[i]; i += 2) {
        int r = opts[i + 1]
                    ? fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0)
                    : fsconfig(fs, FSCONFIG_SET_FLAG, opts[i], NULL, 0);
        if (r < 0) {
            int er = errno;
            close(fs);
            return -er;
        }
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int er = errno;
        close(fs);
        return -er;
    }
    int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    int er = errno;
    close(fs);
    return mnt < 0 ? -er : mnt;
}

/* The opening phase of sp_mounts_apply runs from the state dir when the
 * plan names one, so that overlay layers can be named relative to it
 * (state_rel); every other source is absolute (policy.c). Returns the
 * saved working directory to go back to, or -1 (absolute names then). */
static int enter_state_dir(const struct sp_mount_plan *plan)
{
    if (!plan->relbase[1])
        return -1;
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd >= 0 && (chdir(plan->relbase[1]) < 0 ||
                     (plan->relws && chdir(plan->relws) < 0))) {
        if (fchdir(cwd) < 0) {
            /* absolute names work from anywhere */
        }
        close(cwd);
        cwd = -1;
    }
    return cwd;
}

/* The parent's ID-mapped clones of the trees overlay layers come from,
 * attached at /tmp/0, /tmp/1 on a small tmpfs of our own namespace (an
 * overlay takes its layers from mounts of the mounter's namespace). The
 * sandbox root is attached over /tmp later and hides them. */
static int attach_idmapped(const struct sp_mount_plan *plan)
{
    const char *opts[] = {"size", "65536", "mode", "0755", NULL, NULL};
    int m = new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (m < 0)
        return m;
    int r = 0;
    if (move_mount(m, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        r = -errno;
    for (int k = 0; r == 0 && k < plan->n_idm; k++) {
        char name[2] = {(char)('0' + k), '\0'};
        if (mkdirat(m, name, 0755) < 0) {
            r = -errno;
            break;
        }
        int t = openat(m, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = t < 0 ? -errno : attach(plan->idm_fd[k], t);
        if (t >= 0)
            close(t);
    }
    for (int k = 0; k < plan->n_idm; k++)
        close(plan->idm_fd[k]);
    close(m);
    return r;
}

/* A clone of a single host mount at `src` (following a final symlink). */
static int clone_tree(int dirfd, const char *src, bool recursive)
{
    int fd = open_tree(dirfd, src,
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                           (recursive ? AT_RECURSIVE : 0) |
                           (*src ? 0 : AT_EMPTY_PATH));
    return fd < 0 ? -errno : fd;
}

static int set_attr(int fd, uint64_t set, bool recursive)
{
    struct mount_attr a = {.attr_set = set};
    if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                      &a, sizeof(a)) < 0)
        return -errno;
    return 0;
}

/* Cover a file with an empty file: a read-only clone of the new /dev/null. */
static int mask_file(int dirfd, const char *name, int nullfd)
{
    int t = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (t < 0)
        return errno == ENOENT ? 0 : -errno;
    int c = clone_tree(nullfd, "", false);
    if (c < 0) {
        close(t);
        return c;
    }
    int r = set_attr(c, MOUNT_ATTR_RDONLY, false);
    if (r == 0)
        r = attach(c, t);
    close(c);
    close(t);
    return r;
}

/* Make a directory of procfs read-only by cloning it onto itself. */
static int proc_ro(int procfd, const char *name)
{
    int c = open_tree(procfd, name,
                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (c < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = set_attr(c, MOUNT_ATTR_RDONLY, false);
    int t = -1;
    if (r == 0) {
        t = openat(procfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        r = t < 0 ? -errno : attach(c, t);
    }
    if (t >= 0)
        close(t);
    close(c);
    return r;
}

/* Knobs of the kernel that a sandbox has no business with (runc's masked
 * and read-only paths). The new procfs belongs to our pid namespace, but
 * these files are global. */
static const char *const proc_masked[] = {
    "kcore", "keys", "timer_list", "sched_debug", "latency_stats",
    "kpagecount", "kpageflags", "kpagecgroup", "sysrq-trigger", "kallsyms",
    NULL,
};
static const char *const proc_readonly[] = {
    "sys", "irq", "bus", "fs", NULL,
};

static int setup_proc(int rootfd, const char *dst, int nullfd,
                      struct sp_child_error *ce)
{
    int t = mkpath_at(rootfd, dst, true, 0555);
    if (t < 0)
        return sp_child_error_set(ce, SP_STEP_MOUNT_POINT, -t, dst);
    int m = new_fs("proc", NULL,
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0) {
        close(t);
        return sp_child_error_set(ce, SP_STEP_PROC, -m, dst);
    }
    int r = attach(m, t);
    close(t);
    if (r < 0) {
        close(m);
        return sp_child_error_set(ce, SP_STEP_PROC, -r, dst);
    }
    /* m now refers to the root of the attached procfs. */
    for (size_t i = 0; proc_readonly[i]; i++)
        if ((r = proc_ro(m, proc_readonly[i])) < 0) {
            close(m);
            return sp_child_error_set(ce, SP_STEP_PROC, -r, proc_readonly[i]);
        }
    if (nullfd >= 0)
        for (size_t i = 0; proc_masked[i]; i++)
            if ((r = mask_file(m, proc_masked[i], nullfd)) < 0) {
                close(m);
                return sp_child_error_set(ce, SP_STEP_PROC, -r, proc_masked[i]);
            }
    close(m);
    return 0;
}

static const char *const dev_nodes[] = {"null", "zero", "full", "random",
                                        "urandom", "tty", NULL};

/* A minimal /dev: a small tmpfs with the harmless host devices bound in,
 * a private devpts instance, /dev/shm and the usual symlinks. Returns the
 * fd of the bound /dev/null (for masking) in *ret_null. */
static int setup_dev(int rootfd, const char *dst, uint64_t shm_size,
                     bool ro, int *ret_null, struct sp_child_error *ce)
{
    int devmnt = -1;
    int r = tmpfs_at(rootfd, dst, 65536, 0755, 0, &devmnt);
    if (r < 0)
        return sp_child_error_set(ce, SP_STEP_DEV, -r, dst);
    int hostdev = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (size_t i = 0; dev_nodes[i] && hostdev >= 0; i++) {
        int c = clone_tree(hostdev, dev_nodes[i], false);
        if (c < 0)
            continue; /* a host without the node: leave it out */
        int f = openat(devmnt, dev_nodes[i],
                       O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                       0666);
        if (f >= 0)
            close(f);
        int t = openat(devmnt, dev_nodes[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        r = t < 0 ? -errno : attach(c, t);
        if (t >= 0)
            close(t);
        close(c);
        if (r < 0) {
            close(hostdev);
            close(devmnt);
            return sp_child_error_set(ce, SP_STEP_DEV, -r, dev_nodes[i]);
        }
        if (i == 0 && ret_null)
            *ret_null = openat(devmnt, "null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (hostdev >= 0)
        close(hostdev);

    /* Private devpts: ptys of the sandbox are not the host's. */
    const char *pts_opts[] = {"newinstance", NULL, "ptmxmode", "0666",
                              "mode", "0620", NULL, NULL};
    int t = mkpath_at(devmnt, "pts", true, 0755);
    int m = t < 0 ? t : new_fs("devpts", pts_opts,
                               MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (m >= 0) {
        r = attach(m, t);
        close(m);
    } else {
        r = m;
    }
    if (t >= 0)
        close(t);
    if (r < 0) {
        close(devmnt);
        return sp_child_error_set(ce, SP_STEP_DEV, -r, "pts");
    }
    r = tmpfs_at(devmnt, "shm", shm_size, 01777, 0, NULL);
    if (r < 0) {
        close(devmnt);
        return sp_child_error_set(ce, SP_STEP_DEV, -r, "shm");
    }
    static const char *const links[][2] = {
        {"pts/ptmx", "ptmx"},           {"/proc/self/fd", "fd"},
        {"/proc/self/fd/0", "stdin"},   {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(links); i++)
        if (symlinkat(links[i][0], devmnt, links[i][1]) < 0) {
            int e = errno;
            close(devmnt);
            return sp_child_error_set(ce, SP_STEP_DEV, e, links[i][1]);
        }
    /* Nothing new can be created in /dev itself. */
    r = ro ? set_attr(devmnt, MOUNT_ATTR_RDONLY, false) : 0;
    close(devmnt);
    if (r < 0)
        return sp_child_error_set(ce, SP_STEP_DEV, -r, dst);
    return 0;
}

/* Copy a small file with sendfile (no buffer of ours). */
static int copy_fd(int in, int out)
{
    for (int rounds = 0; rounds < 1024; rounds++) {
        ssize_t n = sendfile(out, in, NULL, SP_COPY_MAX);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
    }
    return -EFBIG;
}

/* OCI: the bundle's rootfs, cloned with its submounts (read-only is set
 * after the spec's mounts are made in it). */
static int root_bind(const struct sp_mount_op *op)
{
    int fd = clone_tree(AT_FDCWD, op->src, true);
    if (fd < 0)
        return fd;
    int r = set_attr(fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | op->attrs,
                     true);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* A new filesystem of type op->src at op->dst. sysfs in a network
 * namespace we do not own cannot be mounted: the host's /sys is bound
 * read-only instead, as runc does. */
static int fs_at(int rootfd, const struct sp_mount_op *op)
{
    int t = mkpath_at(rootfd, op->dst, true, 0755);
    if (t < 0)
        return t;
    unsigned attrs = op->attrs;
    int m = new_fs(op->src, (const char *const *)op->fsopts, attrs);
    if (m == -EPERM && strcmp(op->src, "sysfs") == 0) {
        m = clone_tree(AT_FDCWD, "/sys", true);
        if (m >= 0) {
            int r = set_attr(m, attrs | MOUNT_ATTR_RDONLY, true);
            if (r < 0) {
                close(m);
                m = r;
            }
        }
    }
    if (m < 0) {
        close(t);
        return m;
    }
    int r = attach(m, t);
    close(m);
    close(t);
    return r;
}

/* dst inside the new root, every symlink resolved inside it; -ENOENT
 * when it does not exist. */
static int open_in_root(int rootfd, const char *dst)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    while (*dst == '/')
        dst++;
    int fd = (int)syscall(SYS_openat2, rootfd, *dst ? dst : ".", &how,
                          sizeof(how));
    return fd < 0 ? -errno : fd;
}

static int mask_at(int rootfd, const char *dst, int nullfd)
{
    int t = open_in_root(rootfd, dst);
    if (t == -ENOENT)
        return 0;
    if (t < 0)
        return t;
    struct stat st;
    int r = fstat(t, &st) < 0 ? -errno : 0;
    int c = -1;
    if (r == 0 && S_ISDIR(st.st_mode)) {
        const char *opts[] = {"size", "4096", "mode", "0755", NULL, NULL};
        c = new_fs("tmpfs", opts,
                   MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                       MOUNT_ATTR_NOEXEC);
    } else if (r == 0) {
        c = nullfd >= 0 ? clone_tree(nullfd, "", false)
                        : clone_tree(AT_FDCWD, "/dev/null", false);
        if (c >= 0 && (r = set_attr(c, MOUNT_ATTR_RDONLY, false)) < 0) {
            close(c);
            c = -1;
        }
    }
    if (r == 0 && c < 0)
        r = c;
    if (r == 0)
        r = attach(c, t);
    if (c >= 0)
        close(c);
    close(t);
    return r;
}

static int ronly_at(int rootfd, const char *dst)
{
    int t = open_in_root(rootfd, dst);
    if (t == -ENOENT)
        return 0;
    if (t < 0)
        return t;
    int c = open_tree(t, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                 AT_RECURSIVE | AT_EMPTY_PATH);
    int r = c < 0 ? -errno : set_attr(c, MOUNT_ATTR_RDONLY, true);
    if (r == 0)
        r = attach(c, t);
    if (c >= 0)
        close(c);
    close(t);
    return r;
}

int sp_mounts_apply(const struct sp_mount_plan *plan, int *fds,
                    uint64_t shm_size, struct sp_child_error *ce)
{
    int r;
    /* Our mounts must not propagate back to the host, and the host's later
     * mounts need not reach us. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return sp_child_error_set(ce, SP_STEP_MOUNT_NS, errno, "/");

    /* Open every source first, while the host's tree is still what the
     * paths name; attributes are set on the detached clone in one call per
     * tree (recursive), before it is visible anywhere. */
    if (plan->n_idm > 0 && (r = attach_idmapped(plan)) < 0)
        return sp_child_error_set(ce, SP_STEP_OVERLAY, -r,
                                  "(ID-mapped layer trees)");
    _cleanup_close_ int cwd = enter_state_dir(plan);
    for (size_t i = 0; i < plan->n; i++) {
        const struct sp_mount_op *op = &plan->ops[i];
        if (plan->preopened &&
            (op->kind == SP_OP_BIND || op->kind == SP_OP_COPY))
            continue; /* opened (and its attributes set) by the parent */
        fds[i] = -1;
        if (op->kind == SP_OP_COPY) {
            fds[i] = open(op->src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
            if (fds[i] < 0 && !op->optional)
                return sp_child_error_set(ce, SP_STEP_OPEN_SOURCE, errno,
                                          op->src);
            continue;
        }
        if (op->kind == SP_OP_OVERLAY) {
            fds[i] = overlay_fs(op, plan, cwd >= 0);
            if (fds[i] < 0)
                return sp_child_error_set(ce, SP_STEP_OVERLAY, -fds[i],
                                          op->dst);
            continue;
        }
        if (op->kind != SP_OP_BIND)
            continue;
        r = clone_tree(AT_FDCWD, op->src, !op->norec);
        if (r < 0) {
            if (op->optional)
                continue;
            return sp_child_error_set(ce, SP_STEP_OPEN_SOURCE, -r, op->src);
        }
        fds[i] = r;
        uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | op->attrs;
        if (op->ro)
            attrs |= MOUNT_ATTR_RDONLY;
        r = set_attr(fds[i], attrs, true);
        if (r < 0)
            return sp_child_error_set(ce, SP_STEP_BIND, -r, op->src);
    }

    /* The new root: a fresh tmpfs that only sandpit writes, attached on
     * /tmp of our private namespace (every source is already open). */
    char rootsz[] = "4194304";
    const char *root_opts[] = {"size", rootsz, "mode", "0755", NULL, NULL};
    int rootmnt = !plan->root ? new_fs("tmpfs", root_opts,
                                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
                  : plan->root->kind == SP_OP_BIND
                      ? root_bind(plan->root)
                      : overlay_fs(plan->root, plan, cwd >= 0);
    if (rootmnt < 0)
        return sp_child_error_set(ce, plan->root && plan->root->kind == SP_OP_OVERLAY
                                          ? SP_STEP_OVERLAY : SP_STEP_ROOT,
                                  -rootmnt, plan->root ? plan->root->src : "tmpfs");
    if (plan->become_root && (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 ||
                              setresuid(0, 0, 0) < 0))
        return sp_child_error_set(ce, SP_STEP_SETUID, errno,
                                  "root of the user namespace (uid and gid 0 "
                                  "must be mapped)");
    if (cwd >= 0 && fchdir(cwd) < 0)
        return sp_child_error_set(ce, SP_STEP_OVERLAY, errno,
                                  "(back from the state dir)");
    if (move_mount(rootmnt, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return sp_child_error_set(ce, SP_STEP_ROOT, errno, "/tmp");

    int nullfd = -1;
    for (size_t i = 0; i < plan->n; i++) {
        const struct sp_mount_op *op = &plan->ops[i];
        int t;
        switch (op->kind) {
        case SP_OP_BIND:
        case SP_OP_OVERLAY:
            if (fds[i] < 0)
                break;
            t = mkpath_at(rootmnt, op->dst, op->is_dir, 0755);
            if (t < 0)
                return sp_child_error_set(ce, SP_STEP_MOUNT_POINT, -t, op->dst);
            r = attach(fds[i], t);
            close(t);
            close(fds[i]);
            fds[i] = -1;
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_BIND, -r, op->dst);
            break;
        case SP_OP_COPY: {
            if (fds[i] < 0)
                break;
            const char *base;
            t = parent_at(rootmnt, op->dst, &base);
            if (t < 0)
                return sp_child_error_set(ce, SP_STEP_MOUNT_POINT, -t, op->dst);
            int out = openat(t, base,
                             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             op->mode);
            close(t);
            r = out < 0 ? -errno : copy_fd(fds[i], out);
            if (r == 0 && op->append &&
                sp_write_all(out, op->append, strlen(op->append)) < 0)
                r = -EIO;
            if (out >= 0)
                close(out);
            close(fds[i]);
            fds[i] = -1;
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_COPY, -r, op->dst);
            break;
        }
        case SP_OP_TMPFS:
            r = tmpfs_inodes_at(rootmnt, op->dst, op->size, plan->tmp_inodes,
                                op->mode, 0, NULL);
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_TMPFS, -r, op->dst);
            break;
        case SP_OP_SYMLINK: {
            const char *base;
            t = parent_at(rootmnt, op->dst, &base);
            if (t < 0)
                return sp_child_error_set(ce, SP_STEP_MOUNT_POINT, -t, op->dst);
            r = symlinkat(op->src, t, base) < 0 ? -errno : 0;
            close(t);
            if (r < 0 && r != -EEXIST)
                return sp_child_error_set(ce, SP_STEP_SYMLINK, -r, op->dst);
            break;
        }
        case SP_OP_PROC:
            r = setup_proc(rootmnt, op->dst, nullfd, ce);
            if (r < 0)
                return r;
            break;
        case SP_OP_DEV:
            r = setup_dev(rootmnt, op->dst, shm_size, !op->keep_rw, &nullfd, ce);
            if (r < 0)
                return r;
            break;
        case SP_OP_DIR:
            t = mkpath_at(rootmnt, op->dst, true, op->mode);
            if (t < 0)
                return sp_child_error_set(ce, SP_STEP_MOUNT_POINT, -t, op->dst);
            close(t);
            break;
        case SP_OP_HIDE:
            if (op->is_dir) {
                r = tmpfs_at(rootmnt, op->dst, 4096, 0755, MOUNT_ATTR_RDONLY,
                             NULL);
            } else {
                t = mkpath_at(rootmnt, op->dst, false, 0644);
                if (t < 0) {
                    r = t;
                } else {
                    int c = nullfd >= 0 ? clone_tree(nullfd, "", false) : -ENODEV;
                    r = c < 0 ? c : set_attr(c, MOUNT_ATTR_RDONLY, false);
                    if (r == 0)
                        r = attach(c, t);
                    if (c >= 0)
                        close(c);
                    close(t);
                }
            }
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_HIDE, -r, op->dst);
            break;
        case SP_OP_FS:
            r = fs_at(rootmnt, op);
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_FS, -r, op->dst);
            break;
        case SP_OP_MASK:
            r = mask_at(rootmnt, op->dst, nullfd);
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_HIDE, -r, op->dst);
            break;
        case SP_OP_RONLY:
            r = ronly_at(rootmnt, op->dst);
            if (r < 0)
                return sp_child_error_set(ce, SP_STEP_RONLY, -r, op->dst);
            break;
        default:
            break;
        }
    }
    if (nullfd >= 0)
        close(nullfd);

    /* Nothing may be created in the root itself (a workspace's overlay
     * root is its copy-on-write filesystem: writable; an OCI rootfs is
     * read-only when its spec says so). */
    r = !plan->root ? set_attr(rootmnt, MOUNT_ATTR_RDONLY, false)
        : plan->root->kind == SP_OP_BIND && plan->root->ro
            ? set_attr(rootmnt, MOUNT_ATTR_RDONLY, false)
            : 0;
    if (r < 0)
        return sp_child_error_set(ce, SP_STEP_ROOT, -r, "/");

    /* pivot_root(".", ".") stacks the old root on top of the new one; a lazy
     * unmount of "." then drops the host's tree from this namespace. */
    if (fchdir(rootmnt) < 0)
        return sp_child_error_set(ce, SP_STEP_PIVOT, errno, "/");
    close(rootmnt);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return sp_child_error_set(ce, SP_STEP_PIVOT, errno, "/");
    if (umount2(".", MNT_DETACH) < 0)
        return sp_child_error_set(ce, SP_STEP_PIVOT, errno, "old root");
    if (chdir("/") < 0)
        return sp_child_error_set(ce, SP_STEP_PIVOT, errno, "/");
    return 0;
}

#define CG_VIEW "/sys/fs/cgroup"
#define CG_VIEW_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* Does the comma-separated list have a controller sandpit limits? */
static bool cg_wanted(const char *c, size_t n)
{
    static const char *const want[] = {"memory", "pids", "cpu"};
    while (n) {
        size_t k = 0;
        while (k < n && c[k] != ',')
            k++;
        for (size_t i = 0; i < SP_ARRAY_SIZE(want); i++)
            if (k == strlen(want[i]) && memcmp(c, want[i], k) == 0)
                return true;
        c += k;
        n -= k;
        if (n) {
            c++;
            n--;
        }
    }
    return false;
}

int sp_cgroup_view(void)
{
    if (unshare(CLONE_NEWCGROUP) < 0)
        return -errno;
    char buf[4096];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return n < 0 ? -errno : -ENOENT;
    buf[n] = '\0';

    /* v1 lines are ID:CONTROLLERS:PATH; v2 alone is 0::PATH. */
    bool tmpfs = false;
    for (char *line = buf; *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *c = strchr(line, ':');
        char *e = c ? strchr(c + 1, ':') : NULL;
        if (c && e && e > c + 1 && cg_wanted(c + 1, (size_t)(e - c - 1))) {
            *e = '\0';
            const char *ctrls = c + 1;
            char path[128];
            if (strlen(ctrls) + sizeof(CG_VIEW "/") > sizeof(path))
                return -ENAMETOOLONG;
            if (!tmpfs) {
                if (mount("tmpfs", CG_VIEW, "tmpfs",
                          MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "size=65536,mode=755") < 0)
                    return -errno;
                tmpfs = true;
            }
            memcpy(path, CG_VIEW "/", sizeof(CG_VIEW "/"));
            strcat(path, ctrls);
            if (mkdir(path, 0755) < 0 ||
                mount("cgroup", path, "cgroup", CG_VIEW_FLAGS, ctrls) < 0)
                return -errno;
            /* cpu,cpuacct is also reached as cpu and cpuacct */
            for (const char *t = ctrls; strchr(ctrls, ',') && *t;) {
                size_t k = strcspn(t, ",");
                char link[128];
                memcpy(link, CG_VIEW "/", sizeof(CG_VIEW "/"));
                strncat(link, t, k);
                if (symlink(ctrls, link) < 0 && errno != EEXIST)
                    return -errno;
                t += k + (t[k] == ',');
            }
        }
        if (!end)
            break;
        line = end + 1;
    }
    int r = tmpfs ? mount(NULL, CG_VIEW, NULL,
                          MS_REMOUNT | MS_BIND | CG_VIEW_FLAGS, NULL)
                  : mount("cgroup2", CG_VIEW, "cgroup2", CG_VIEW_FLAGS, NULL);
    return r < 0 ? -errno : 0;
}

int sp_loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    int r = ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
    close(s);
    return r;
}
