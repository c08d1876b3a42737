/* cgroup.c — one cgroup per sandbox on cgroup v2 or the v1/hybrid layout:
 * find the layout and the caller's own cgroups, create a child in each
 * hierarchy we use, write limits, read peaks and OOM kills back, kill and
 * remove. Every file is reached through a directory fd we opened. */
#include "cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* The controllers sandpit uses, as bits. */
enum {
    CG_MEMORY = 1u << 0,
    CG_PIDS = 1u << 1,
    CG_CPU = 1u << 2,
    CG_ALL = CG_MEMORY | CG_PIDS | CG_CPU,
};
#define CG_NCTRL 3
static const char *const ctrl_names[CG_NCTRL] = {"memory", "pids", "cpu"};

/* cgroup.procs of a fork-bombed cgroup is bounded by its pids.max, but a
 * cgroup without a pids limit is not; cap what we read of it. */
#define CG_MAX_PROCS_FILE (1024 * 1024)
/* The leaf the caller moves itself into on v2 (see sp_cgroup_create). */
#define CG_SUPERVISOR_LEAF "sandpit-supervisor"
#define CG_MAX_NAME 64
/* sp_cgroup_sweep: entries looked at per hierarchy, and how old an empty
 * cgroup of a dead sandpit must be to go (a live one is empty only for the
 * milliseconds around its sandbox; this also covers a creator in another
 * pid namespace, whose pid means nothing here). */
#define CG_SWEEP_MAX 4096
#define CG_SWEEP_AGE_S 60
/* v1 and v2 CFS period; 100 ms is the kernel's default too. */
#define CG_CPU_PERIOD_US 100000
/* The kernel refuses a CFS quota below 1 ms. */
#define CG_CPU_MIN_QUOTA_US 1000

/* One directory we created, in one hierarchy. */
struct cg_dir {
    unsigned ctrls;   /* CG_* bits this hierarchy carries for us */
    int parent_fd;    /* the caller's cgroup, for unlinkat */
    int fd;           /* the new cgroup */
    char *path;       /* for messages */
};

struct sp_cgroup {
    int version;             /* 1 or 2 */
    char name[CG_MAX_NAME + 1];
    struct cg_dir dirs[CG_NCTRL];
    size_t n_dirs;
    unsigned ctrls;          /* controllers enforced */
    char *cgpath;            /* path as /proc/<pid>/cgroup shows it, for the
                                membership check of kill_all (first dir) */
    unsigned cgpath_ctrl;    /* which controller line that is (v1), 0 = v2 */
    char desc[96];
};

/* ---- small file helpers ------------------------------------------------ */

/* Read a small file below dirfd into buf (NUL-terminated). Returns the
 * length or a negative errno. */
static ssize_t read_text_at(int dirfd, const char *file, char *buf,
                            size_t len)
{
    _cleanup_close_ int fd =
        openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Write a value to a cgroup file in one write(): the kernel parses each
 * write on its own, so a split write would be two bad values. */
static int write_text_at(int dirfd, const char *file, const char *val)
{
    _cleanup_close_ int fd =
        openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t len = strlen(val);
    ssize_t r = write(fd, val, len);
    if (r < 0)
        return -errno;
    if ((size_t)r != len)
        return -EIO;
    return 0;
}

static bool exists_at(int dirfd, const char *file)
{
    return faccessat(dirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Find "key N" on a line of a flat-keyed file (memory.events,
 * memory.oom_control). Returns 0, -ENOENT when the key is missing. */
static int find_key_u64(const char *text, const char *key, uint64_t *ret)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char num[24] = "";
            size_t i = 0;
            for (const char *c = line + klen + 1;
                 isdigit((unsigned char)*c) && i + 1 < sizeof(num); c++)
                num[i++] = *c;
            num[i] = '\0';
            return sp_parse_uint(num, UINT64_MAX, ret);
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -ENOENT;
}

static int read_u64_at(int dirfd, const char *file, uint64_t *ret)
{
    char buf[64] = "";
    ssize_t n = read_text_at(dirfd, file, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    buf[strcspn(buf, "\n")] = '\0';
    if (strcmp(buf, "max") == 0) {
        *ret = UINT64_MAX;
        return 0;
    }
    return sp_parse_uint(buf, UINT64_MAX, ret);
}

/* Which of our controllers a space- or comma-separated list names. */
static unsigned parse_ctrls(const char *list, const char *seps)
{
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, seps);
        for (unsigned i = 0; i < CG_NCTRL; i++)
            if (len == strlen(ctrl_names[i]) &&
                strncmp(p, ctrl_names[i], len) == 0)
                bits |= 1u << i;
        p += len;
        if (*p)
            p++;
    }
    return bits;
}

static void format_ctrls(unsigned bits, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < CG_NCTRL; i++) {
        if (!(bits & (1u << i)))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                         ctrl_names[i]);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, len, "none");
}

/* Copy a string known to fit (checked where it was read); truncates
 * otherwise. snprintf("%s") would do, but gcc's -Wformat-truncation cannot
 * see the bound through the arrays. */
static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = strnlen(src, len - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- layout discovery -------------------------------------------------- */

/* The caller's cgroup directory in one hierarchy. */
struct cg_hier {
    unsigned ctrls;          /* our controllers available there */
    char dir[SP_MAX_PATH];   /* the caller's cgroup directory */
    char cgpath[SP_MAX_PATH];/* as /proc/self/cgroup names it */
};

struct cg_layout {
    int version;             /* 0 none, 1, 2 */
    bool hybrid;             /* a cgroup2 mount beside v1 hierarchies */
    struct cg_hier h[CG_NCTRL];
    size_t n;
    unsigned avail;
};

struct cg_mount {
    bool found;
    char root[SP_MAX_PATH];
    char point[SP_MAX_PATH];
};

/* Undo the octal escapes of /proc/self/mountinfo (\040 for a space). */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* The directory of cgroup `path` (as /proc/self/cgroup says, relative to
 * our cgroup namespace) under a mount of `root` at `point`. -ENOENT when
 * the mount does not show that cgroup (a bind of some other subtree). */
static int join_mount(const struct cg_mount *m, const char *path, char *out,
                      size_t len)
{
    const char *rel = path;
    if (strcmp(m->root, "/") != 0) {
        size_t rl = strlen(m->root);
        if (strncmp(path, m->root, rl) != 0 ||
            (path[rl] != '/' && path[rl] != '\0'))
            return -ENOENT;
        rel = path + rl;
    }
    int n = snprintf(out, len, "%s%s", m->point,
                     strcmp(rel, "/") == 0 ? "" : rel);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* Prefer the conventional mount points when a hierarchy is mounted twice. */
static bool better_mount(const struct cg_mount *cur, const char *point)
{
    if (!cur->found)
        return true;
    return strncmp(point, "/sys/fs/cgroup", 14) == 0 &&
           strncmp(cur->point, "/sys/fs/cgroup", 14) != 0;
}

static int discover(struct cg_layout *lay, sp_error *err)
{
    memset(lay, 0, sizeof(*lay));
    struct cg_mount *v1m = calloc(CG_NCTRL, sizeof(*v1m));
    struct cg_mount *v2m = calloc(1, sizeof(*v2m));
    char v1path[CG_NCTRL][SP_MAX_PATH];
    char v2path[SP_MAX_PATH] = "";
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    FILE *f = NULL;

    memset(v1path, 0, sizeof(v1path));
    if (!v1m || !v2m) {
        rc = sp_error_set(err, ENOMEM, "cannot probe cgroups");
        goto out;
    }

    /* "hierarchy-id:controllers:path", "0::path" for v2. */
    f = fopen("/proc/self/cgroup", "re");
    if (!f) {
        rc = sp_error_set(err, errno, "cannot open /proc/self/cgroup");
        goto out;
    }
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1, *path = c2 + 1;
        if (strlen(path) >= SP_MAX_PATH)
            continue;
        if (strncmp(line, "0:", 2) == 0 && *ctrls == '\0') {
            copy_str(v2path, sizeof(v2path), path);
            continue;
        }
        unsigned bits = parse_ctrls(ctrls, ",");
        for (unsigned i = 0; i < CG_NCTRL; i++)
            if (bits & (1u << i))
                copy_str(v1path[i], sizeof(v1path[i]), path);
    }
    fclose(f);

    /* "id parent maj:min root point opts [optional...] - fstype src super" */
    f = fopen("/proc/self/mountinfo", "re");
    if (!f) {
        rc = sp_error_set(err, errno, "cannot open /proc/self/mountinfo");
        goto out;
    }
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *fields[6] = {NULL};
        char *save = NULL;
        char *tok = strtok_r(line, " ", &save);
        size_t nf = 0;
        for (; tok && nf < 5; tok = strtok_r(NULL, " ", &save))
            fields[nf++] = tok;
        if (nf < 5)
            continue;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        const char *fstype = strtok_r(NULL, " ", &save);
        strtok_r(NULL, " ", &save); /* source */
        const char *super = strtok_r(NULL, " ", &save);
        if (!fstype || !super)
            continue;
        char *root = fields[3], *point = fields[4];
        unescape(root);
        unescape(point);
        if (strlen(root) >= SP_MAX_PATH || strlen(point) >= SP_MAX_PATH)
            continue;
        if (strcmp(fstype, "cgroup2") == 0) {
            if (better_mount(v2m, point)) {
                v2m->found = true;
                copy_str(v2m->root, sizeof(v2m->root), root);
                copy_str(v2m->point, sizeof(v2m->point), point);
            }
        } else if (strcmp(fstype, "cgroup") == 0) {
            unsigned bits = parse_ctrls(super, ",");
            for (unsigned i = 0; i < CG_NCTRL; i++) {
                if (!(bits & (1u << i)) || !better_mount(&v1m[i], point))
                    continue;
                v1m[i].found = true;
                copy_str(v1m[i].root, sizeof(v1m[i].root), root);
                copy_str(v1m[i].point, sizeof(v1m[i].point), point);
            }
        }
    }

    /* v1: one entry per distinct directory (co-mounted controllers such as
     * cpu,cpuacct share one). */
    struct cg_layout v1 = {.version = 1};
    for (unsigned i = 0; i < CG_NCTRL; i++) {
        char dir[SP_MAX_PATH];
        if (!v1m[i].found || !v1path[i][0] ||
            join_mount(&v1m[i], v1path[i], dir, sizeof(dir)) < 0)
            continue;
        size_t j = 0;
        while (j < v1.n && strcmp(v1.h[j].dir, dir) != 0)
            j++;
        if (j == v1.n) {
            copy_str(v1.h[j].dir, sizeof(v1.h[j].dir), dir);
            copy_str(v1.h[j].cgpath, sizeof(v1.h[j].cgpath), v1path[i]);
            v1.n++;
        }
        v1.h[j].ctrls |= 1u << i;
        v1.avail |= 1u << i;
    }

    /* v2: what our own cgroup has is what it can hand to a child. A caller
     * that earlier moved itself into the supervisor leaf creates beside
     * the leaf, in the cgroup whose subtree_control it set up. */
    struct cg_layout v2 = {.version = 2};
    if (v2m->found && v2path[0]) {
        char *base = v2path;
        size_t bl = strlen(base);
        size_t ll = strlen("/" CG_SUPERVISOR_LEAF);
        if (bl > ll && strcmp(base + bl - ll, "/" CG_SUPERVISOR_LEAF) == 0)
            base[bl - ll] = '\0';
        struct cg_hier *h = &v2.h[0];
        if (join_mount(v2m, base, h->dir, sizeof(h->dir)) == 0) {
            char buf[256] = "";
            copy_str(h->cgpath, sizeof(h->cgpath), base);
            _cleanup_close_ int dfd =
                open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0 &&
                read_text_at(dfd, "cgroup.controllers", buf, sizeof(buf)) >= 0)
                h->ctrls = parse_ctrls(buf, " \n");
            v2.avail = h->ctrls;
            v2.n = 1;
        }
    }

    /* Pure v2 has no v1 hierarchy of ours; on hybrid, the cgroup2 mount is
     * used only when it holds at least what v1 offers (normally it holds
     * nothing, all controllers being bound to v1). */
    if (v2.n && (v1.avail == 0 || (v2.avail && (v2.avail & v1.avail) ==
                                                   v1.avail))) {
        *lay = v2;
        lay->hybrid = v1.n > 0;
    } else if (v1.n) {
        *lay = v1;
        lay->hybrid = v2.n > 0;
    } else {
        rc = sp_error_set(err, EOPNOTSUPP,
                          "no cgroup hierarchy with memory, pids or cpu "
                          "found in /proc/self/mountinfo; limits are not "
                          "enforced");
    }

out:
    if (f)
        fclose(f);
    free(line);
    free(v1m);
    free(v2m);
    return rc;
}

/* ---- permission checks ------------------------------------------------- */

static const char *hier_label(const struct cg_layout *lay,
                              const struct cg_hier *h, char *buf, size_t len)
{
    char names[64];
    format_ctrls(h->ctrls, names, sizeof(names));
    if (lay->version == 2)
        snprintf(buf, len, "cgroup v2 hierarchy");
    else
        snprintf(buf, len, "cgroup v1 %s hierarchy", names);
    return buf;
}

/* v2: which of `use` the caller's cgroup still has to enable for its
 * children (0 on v1, where there is no subtree_control). */
static unsigned v2_to_enable(const struct cg_layout *lay,
                             const struct cg_hier *h, unsigned use)
{
    if (lay->version != 2 || !use)
        return 0;
    char buf[256] = "";
    _cleanup_close_ int fd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        read_text_at(fd, "cgroup.subtree_control", buf, sizeof(buf));
    return use & ~parse_ctrls(buf, " \n");
}

/* Can this uid create a child in h and move processes into it? Uses the
 * effective ids (AT_EACCESS), which the kernel checks on write. */
static int check_writable(const struct cg_layout *lay,
                          const struct cg_hier *h, unsigned enable,
                          sp_error *err)
{
    char label[96];
    const char *what = NULL;
    if (faccessat(AT_FDCWD, h->dir, W_OK | X_OK, AT_EACCESS) < 0)
        what = h->dir;
    else if (lay->version == 2) {
        /* Moving a process from our cgroup to its child needs write
         * access to the common ancestor's cgroup.procs, ours. */
        char file[SP_MAX_PATH + 32];
        snprintf(file, sizeof(file), "%s/cgroup.procs", h->dir);
        if (faccessat(AT_FDCWD, file, W_OK, AT_EACCESS) < 0)
            what = h->dir;
        snprintf(file, sizeof(file), "%s/cgroup.subtree_control", h->dir);
        if (!what && enable &&
            faccessat(AT_FDCWD, file, W_OK, AT_EACCESS) < 0)
            what = h->dir;
    }
    if (!what)
        return 0;
    int e = errno == EPERM ? EPERM : EACCES;
    return sp_error_set(err, e,
                        "%s at %s is not writable by uid %u (no delegation); "
                        "limits are not enforced",
                        hier_label(lay, h, label, sizeof(label)), what,
                        (unsigned)geteuid());
}

/* ---- create ------------------------------------------------------------ */

static bool valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CG_MAX_NAME || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return false;
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' &&
            *c != '-')
            return false;
    return true;
}

static int set_limit(const struct cg_dir *d, const char *file,
                     const char *val, sp_error *err)
{
    int r = write_text_at(d->fd, file, val);
    if (r < 0)
        return sp_error_set(err, -r, "cannot write %s to %s/%s", val, d->path,
                            file);
    return 0;
}

static int write_limits_v1(const struct cg_dir *d,
                           const struct sp_limits *lim, sp_error *err)
{
    char val[32];
    int r = 0;
    if ((d->ctrls & CG_MEMORY) && lim->memory) {
        snprintf(val, sizeof(val), "%" PRIu64, lim->memory);
        r = set_limit(d, "memory.limit_in_bytes", val, err);
        /* memsw limits memory+swap; at the same value swap cannot be used
         * to get past the limit. Absent without swap accounting. It must
         * be set after limit_in_bytes, which may not exceed it. */
        if (r == 0 && exists_at(d->fd, "memory.memsw.limit_in_bytes"))
            r = set_limit(d, "memory.memsw.limit_in_bytes", val, err);
        if (r < 0)
            return r;
    }
    if ((d->ctrls & CG_PIDS) && lim->pids) {
        snprintf(val, sizeof(val), "%" PRIu64, lim->pids);
        if ((r = set_limit(d, "pids.max", val, err)) < 0)
            return r;
    }
    if ((d->ctrls & CG_CPU) && lim->cpus > 0) {
        double q = lim->cpus * CG_CPU_PERIOD_US;
        long long quota = q < CG_CPU_MIN_QUOTA_US ? CG_CPU_MIN_QUOTA_US
                          : q > 1e15              ? -1
                                                  : (long long)q;
        snprintf(val, sizeof(val), "%d", CG_CPU_PERIOD_US);
        if ((r = set_limit(d, "cpu.cfs_period_us", val, err)) < 0)
            return r;
        snprintf(val, sizeof(val), "%lld", quota);
        if ((r = set_limit(d, "cpu.cfs_quota_us", val, err)) < 0)
            return r;
    }
    return 0;
}

static int write_limits_v2(const struct cg_dir *d,
                           const struct sp_limits *lim, sp_error *err)
{
    char val[48];
    int r = 0;
    if ((d->ctrls & CG_MEMORY) && lim->memory) {
        snprintf(val, sizeof(val), "%" PRIu64, lim->memory);
        if ((r = set_limit(d, "memory.max", val, err)) < 0)
            return r;
        /* No swap, so the limit is the limit. Absent without swap
         * accounting, where there is nothing to dodge with. */
        if (exists_at(d->fd, "memory.swap.max") &&
            (r = set_limit(d, "memory.swap.max", "0", err)) < 0)
            return r;
    }
    if ((d->ctrls & CG_PIDS) && lim->pids) {
        snprintf(val, sizeof(val), "%" PRIu64, lim->pids);
        if ((r = set_limit(d, "pids.max", val, err)) < 0)
            return r;
    }
    if ((d->ctrls & CG_CPU) && lim->cpus > 0) {
        double q = lim->cpus * CG_CPU_PERIOD_US;
        if (q > 1e15)
            snprintf(val, sizeof(val), "max %d", CG_CPU_PERIOD_US);
        else
            snprintf(val, sizeof(val), "%lld %d",
                     q < CG_CPU_MIN_QUOTA_US ? (long long)CG_CPU_MIN_QUOTA_US
                                             : (long long)q,
                     CG_CPU_PERIOD_US);
        if ((r = set_limit(d, "cpu.max", val, err)) < 0)
            return r;
    }
    return 0;
}

int sp_cgroup_set_limits(struct sp_cgroup *cg, const struct sp_limits *lim,
                         sp_error *err)
{
    if (!cg)
        return sp_error_set(err, EOPNOTSUPP,
                            "the workspace has no cgroup; limits cannot be "
                            "set");
    unsigned need = (lim->memory ? CG_MEMORY : 0) | (lim->pids ? CG_PIDS : 0) |
                    (lim->cpus > 0 ? CG_CPU : 0);
    if ((need & cg->ctrls) != need)
        return sp_error_set(err, EOPNOTSUPP,
                            "the workspace's cgroup lacks a controller the "
                            "new limits need");
    for (size_t i = 0; i < cg->n_dirs; i++) {
        int r = cg->version == 1 ? write_limits_v1(&cg->dirs[i], lim, err)
                                 : write_limits_v2(&cg->dirs[i], lim, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Is our process the only one in the cgroup open at dirfd? */
static bool alone_in(int dirfd)
{
    char buf[64] = "";
    ssize_t n = read_text_at(dirfd, "cgroup.procs", buf, sizeof(buf));
    if (n <= 0 || (size_t)n >= sizeof(buf) - 1)
        return false;
    char self[24];
    snprintf(self, sizeof(self), "%d\n", (int)getpid());
    return strcmp(buf, self) == 0;
}

/* v2: make sure the caller's cgroup hands `want` to its children. */
static int enable_v2(const struct cg_hier *h, int basefd, unsigned want,
                     sp_error *err)
{
    char buf[256] = "";
    ssize_t n = read_text_at(basefd, "cgroup.subtree_control", buf,
                             sizeof(buf));
    if (n < 0)
        return sp_error_set(err, (int)-n, "cannot read %s/%s", h->dir,
                            "cgroup.subtree_control");
    unsigned missing = want & ~parse_ctrls(buf, " \n");
    if (!missing)
        return 0;
    char cmd[64] = "";
    size_t used = 0;
    for (unsigned i = 0; i < CG_NCTRL; i++)
        if (missing & (1u << i))
            used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, "%s+%s",
                                     used ? " " : "", ctrl_names[i]);
    int r = write_text_at(basefd, "cgroup.subtree_control", cmd);
    if (r == -EBUSY && alone_in(basefd)) {
        /* The no-internal-processes rule: a non-root cgroup with processes
         * cannot enable controllers for children. When the only process is
         * us, step into a leaf of our own and try again. */
        if (mkdirat(basefd, CG_SUPERVISOR_LEAF, 0755) < 0 && errno != EEXIST)
            return sp_error_set(err, errno, "cannot create %s/%s", h->dir,
                                CG_SUPERVISOR_LEAF);
        _cleanup_close_ int leaf = openat(
            basefd, CG_SUPERVISOR_LEAF, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char pid[24];
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        if (leaf < 0 || (r = write_text_at(leaf, "cgroup.procs", pid)) < 0)
            return sp_error_set(err, leaf < 0 ? errno : -r,
                                "cannot move sandpit into %s/%s", h->dir,
                                CG_SUPERVISOR_LEAF);
        r = write_text_at(basefd, "cgroup.subtree_control", cmd);
    }
    if (r == -EBUSY)
        return sp_error_set(err, EBUSY,
                            "cannot enable %s in %s/cgroup.subtree_control: "
                            "that cgroup holds other processes, and cgroup "
                            "v2 gives controllers only to cgroups without "
                            "processes; run sandpit in a cgroup of its own "
                            "(e.g. systemd-run --user --scope -p "
                            "Delegate=yes); limits are not enforced",
                            cmd, h->dir);
    if (r < 0)
        return sp_error_set(err, -r,
                            "cannot enable %s in %s/cgroup.subtree_control; "
                            "limits are not enforced",
                            cmd, h->dir);
    return 0;
}

static int create_dir(struct sp_cgroup *cg, const struct cg_layout *lay,
                      const struct cg_hier *h, unsigned use, sp_error *err)
{
    struct cg_dir *d = &cg->dirs[cg->n_dirs];
    _cleanup_close_ int basefd =
        open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0)
        return sp_error_set(err, errno, "cannot open %s", h->dir);
    if (lay->version == 2 && use) {
        int r = enable_v2(h, basefd, use, err);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", h->dir, cg->name) < 0)
        return sp_error_set(err, ENOMEM, "cannot create a cgroup");
    if (mkdirat(basefd, cg->name, 0755) < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM || e == EROFS) {
            char label[96];
            return sp_error_set(err, e,
                                "cannot create %s in the %s (no delegation "
                                "for uid %u?); limits are not enforced",
                                path, hier_label(lay, h, label, sizeof(label)),
                                (unsigned)geteuid());
        }
        return sp_error_set(err, e, "cannot create cgroup %s", path);
    }
    /* From here destroy() removes it: record it before anything can fail. */
    d->fd = openat(basefd, cg->name,
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (d->fd < 0) {
        int e = errno;
        unlinkat(basefd, cg->name, AT_REMOVEDIR);
        return sp_error_set(err, e, "cannot open %s", path);
    }
    d->parent_fd = TAKE_FD(basefd);
    d->path = TAKE_PTR(path);
    d->ctrls = use;
    cg->n_dirs++;
    cg->ctrls |= use;
    if (cg->n_dirs == 1) {
        if (asprintf(&cg->cgpath, "%s%s%s", h->cgpath,
                     strcmp(h->cgpath, "/") == 0 ? "" : "/", cg->name) < 0) {
            cg->cgpath = NULL;
            return sp_error_set(err, ENOMEM, "cannot create a cgroup");
        }
        /* v1: the membership check reads the line of this hierarchy. */
        cg->cgpath_ctrl = lay->version == 1 ? h->ctrls : 0;
    }
    return 0;
}

int sp_cgroup_create(const struct sp_limits *lim, const char *name,
                     struct sp_cgroup **ret, sp_error *err)
{
    static unsigned counter;
    struct sp_limits none = {0};
    if (!lim)
        lim = &none;
    if (name && !valid_name(name))
        return sp_error_set(err, EINVAL,
                            "bad cgroup name \"%s\": want 1 to %d of "
                            "A-Z a-z 0-9 . _ -",
                            name, CG_MAX_NAME);

    struct cg_layout *lay = calloc(1, sizeof(*lay));
    if (!lay)
        return sp_error_set(err, ENOMEM, "cannot create a cgroup");
    int r = discover(lay, err);
    if (r < 0) {
        free(lay);
        return r;
    }

    unsigned need = (lim->memory ? CG_MEMORY : 0) | (lim->pids ? CG_PIDS : 0) |
                    (lim->cpus > 0 ? CG_CPU : 0);
    unsigned want = need | CG_MEMORY | CG_PIDS;
    if ((need & lay->avail) != need) {
        char miss[64];
        format_ctrls(need & ~lay->avail, miss, sizeof(miss));
        r = sp_error_set(err, EOPNOTSUPP,
                         "the cgroup %s controller%s not available to this "
                         "process (cgroup v%d%s); limits are not enforced",
                         miss, strchr(miss, ',') ? "s are" : " is",
                         lay->version, lay->hybrid ? ", hybrid" : "");
        free(lay);
        return r;
    }

    struct sp_cgroup *cg = calloc(1, sizeof(*cg));
    if (!cg) {
        free(lay);
        return sp_error_set(err, ENOMEM, "cannot create a cgroup");
    }
    cg->version = lay->version;
    for (size_t i = 0; i < CG_NCTRL; i++)
        cg->dirs[i].fd = cg->dirs[i].parent_fd = -1;
    if (name)
        copy_str(cg->name, sizeof(cg->name), name);
    else
        snprintf(cg->name, sizeof(cg->name), "sandpit-%d-%u", (int)getpid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));

    /* Check every hierarchy before creating anything, so the usual
     * refusal (no delegation) leaves nothing to undo. */
    for (size_t i = 0; i < lay->n && r == 0; i++) {
        unsigned use = lay->h[i].ctrls & want;
        if (use || lay->version == 2)
            r = check_writable(lay, &lay->h[i],
                               v2_to_enable(lay, &lay->h[i], use), err);
    }
    for (size_t i = 0; i < lay->n && r == 0; i++) {
        unsigned use = lay->h[i].ctrls & want;
        /* v2 is one directory whatever it carries (cgroup.kill and the
         * procs list work without controllers); v1 only where useful. */
        if (use || lay->version == 2)
            r = create_dir(cg, lay, &lay->h[i], use, err);
    }
    for (size_t i = 0; i < cg->n_dirs && r == 0; i++)
        r = cg->version == 1 ? write_limits_v1(&cg->dirs[i], lim, err)
                             : write_limits_v2(&cg->dirs[i], lim, err);
    if (r == 0 && cg->n_dirs == 0)
        r = sp_error_set(err, EOPNOTSUPP,
                         "no cgroup hierarchy with memory, pids or cpu is "
                         "available; limits are not enforced");
    free(lay);
    if (r < 0) {
        sp_cgroup_destroy(cg);
        return r;
    }

    char names[64];
    format_ctrls(cg->ctrls, names, sizeof(names));
    snprintf(cg->desc, sizeof(cg->desc), "cgroup v%d: %s", cg->version,
             names);
    *ret = cg;
    return 0;
}

size_t sp_cgroup_paths(const struct sp_cgroup *cg, const char **out,
                       size_t max)
{
    size_t n = 0;
    for (size_t i = 0; cg && i < cg->n_dirs && n < max; i++)
        if (cg->dirs[i].path)
            out[n++] = cg->dirs[i].path;
    return n;
}

int sp_cgroup_dirfd(const struct sp_cgroup *cg)
{
    return cg && cg->version == 2 && cg->n_dirs ? cg->dirs[0].fd : -1;
}

int sp_cgroup_version(const struct sp_cgroup *cg)
{
    return cg ? cg->version : 0;
}

const char *sp_cgroup_describe(const struct sp_cgroup *cg)
{
    return cg ? cg->desc : "no cgroup";
}

const char *sp_cgroup_path(const struct sp_cgroup *cg)
{
    return cg && cg->n_dirs ? cg->dirs[0].path : NULL;
}

int sp_cgroup_attach(struct sp_cgroup *cg, pid_t pid, sp_error *err)
{
    char val[24];
    snprintf(val, sizeof(val), "%d", (int)pid);
    for (size_t i = 0; i < cg->n_dirs; i++) {
        int r = write_text_at(cg->dirs[i].fd, "cgroup.procs", val);
        if (r < 0)
            return sp_error_set(err, -r, "cannot move pid %d into %s",
                                (int)pid, cg->dirs[i].path);
    }
    return 0;
}

/* ---- kill -------------------------------------------------------------- */

/* Is the process behind pidfd (number pid) still in our cgroup? Read after
 * the pidfd is open, and the pidfd checked alive afterwards, so the
 * /proc/<pid> read was about the process the pidfd holds. */
static bool pidfd_in_cgroup(const struct sp_cgroup *cg, int pidfd, pid_t pid)
{
    char file[48], buf[4096];
    snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
        return false;
    size_t plen = strlen(cg->cgpath);
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2) {
            *c2 = '\0';
            bool mine = cg->cgpath_ctrl
                            ? (parse_ctrls(c1 + 1, ",") & cg->cgpath_ctrl) ==
                                  cg->cgpath_ctrl
                            : c1 == line + 1 && line[0] == '0' && c1[1] == '\0';
            const char *p = c2 + 1;
            if (mine && strncmp(p, cg->cgpath, plen) == 0 &&
                (p[plen] == '\0' || p[plen] == '/'))
                return true;
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

/* One pass over cgroup.procs of d: kill what is listed. Returns the number
 * of processes seen, or a negative errno. */
static int kill_listed(const struct sp_cgroup *cg, const struct cg_dir *d)
{
    _cleanup_close_ int fd =
        openat(d->fd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    char buf[4096];
    char num[16];
    size_t nl = 0, total = 0;
    int seen = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > CG_MAX_PROCS_FILE)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (isdigit((unsigned char)buf[i])) {
                if (nl + 1 < sizeof(num))
                    num[nl++] = buf[i];
                continue;
            }
            if (nl == 0)
                continue;
            num[nl] = '\0';
            nl = 0;
            uint64_t v = 0;
            if (sp_parse_uint(num, INT32_MAX, &v) < 0 || v == 0)
                continue;
            pid_t pid = (pid_t)v;
            seen++;
            if (pid == getpid())
                continue; /* never ourselves */
            _cleanup_close_ int pidfd =
                (int)syscall(SYS_pidfd_open, pid, 0);
            if (pidfd < 0) {
                /* No pidfds (before 5.3): a plain kill, the race this
                 * guards against needing a full pid wrap meanwhile. */
                if (errno == ENOSYS)
                    kill(pid, SIGKILL);
                continue;
            }
            if (pidfd_in_cgroup(cg, pidfd, pid))
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        }
    }
    return seen;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int sp_cgroup_kill_all(struct sp_cgroup *cg)
{
    if (!cg || cg->n_dirs == 0)
        return 0;
    const struct cg_dir *d = &cg->dirs[0];
    bool via_kill = false;
    if (cg->version == 2 && exists_at(d->fd, "cgroup.kill"))
        via_kill = write_text_at(d->fd, "cgroup.kill", "1") == 0;
    /* Two seconds in 5 ms steps: SIGKILLed processes leave quickly, and a
     * process stuck in the kernel (D state) should not hang us forever. */
    uint64_t deadline = sp_now_us() + 2000000;
    for (;;) {
        int seen = 0;
        if (via_kill) {
            char buf[16] = "";
            ssize_t n = read_text_at(d->fd, "cgroup.procs", buf, sizeof(buf));
            if (n < 0)
                return (int)n;
            seen = n > 0;
            /* Re-kill: a process forked while cgroup.kill ran is covered
             * by the kernel, but rewrite in case the write raced a
             * migration into the cgroup. */
            if (seen)
                write_text_at(d->fd, "cgroup.kill", "1");
        } else {
            seen = kill_listed(cg, d);
            if (seen < 0)
                return seen;
        }
        if (seen == 0)
            return 0;
        if (sp_now_us() > deadline)
            return -EBUSY;
        sleep_ms(5);
    }
}

/* ---- stats ------------------------------------------------------------- */

static int read_io_written(int dfd, uint64_t *ret);

int sp_cgroup_read_stats(struct sp_cgroup *cg, sp_stats *st)
{
    if (!cg || !st)
        return -EINVAL;
    int rc = 0;
    for (size_t i = 0; i < cg->n_dirs; i++) {
        const struct cg_dir *d = &cg->dirs[i];
        uint64_t v = 0;
        int r = 0;
        if (d->ctrls & CG_MEMORY) {
            const char *peak = cg->version == 1 ? "memory.max_usage_in_bytes"
                                                : "memory.peak";
            const char *events =
                cg->version == 1 ? "memory.oom_control" : "memory.events";
            r = read_u64_at(d->fd, peak, &v);
            if (r == 0) {
                st->memory_peak = v;
                st->memory_known = true;
            } else if (r != -ENOENT) {
                rc = r;
            }
            char buf[512] = "";
            ssize_t n = read_text_at(d->fd, events, buf, sizeof(buf));
            if (n >= 0) {
                if (find_key_u64(buf, "oom_kill", &v) == 0 && v > 0)
                    st->oom_killed = true;
            } else if (n != -ENOENT) {
                rc = (int)n;
            }
        }
        if (d->ctrls & CG_PIDS) {
            /* pids.peak is new (v2 and v1 alike, Linux 6.13); before it
             * the peak is unknown. */
            r = read_u64_at(d->fd, "pids.peak", &v);
            if (r == 0) {
                st->pids_peak = v;
                st->pids_known = true;
            } else if (r != -ENOENT) {
                rc = r;
            }
            char ev[512] = "";
            if (read_text_at(d->fd, "pids.events", ev, sizeof(ev)) >= 0 &&
                find_key_u64(ev, "max", &v) == 0)
                st->pids_refused = v;
        }
        uint64_t io = 0;
        if (cg->version == 2 && !st->io_known &&
            read_io_written(d->fd, &io) == 0) {
            st->io_written = io;
            st->io_known = true;
        }
    }
    return rc;
}

/* v2 io.stat: the sum of "wbytes=N" over its devices. Absent where the
 * io controller is not enabled for the cgroup. */
static int read_io_written(int dfd, uint64_t *ret)
{
    char buf[4096];
    ssize_t n = read_text_at(dfd, "io.stat", buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    uint64_t sum = 0;
    for (const char *q = strstr(buf, "wbytes="); q; q = strstr(q, "wbytes=")) {
        q += 7;
        sum += strtoull(q, NULL, 10);
    }
    *ret = sum;
    return 0;
}

int sp_cgroup_event_counts(struct sp_cgroup *cg, uint64_t *oom_kills,
                           uint64_t *pids_max)
{
    *oom_kills = *pids_max = 0;
    if (!cg)
        return -EINVAL;
    for (size_t i = 0; i < cg->n_dirs; i++) {
        const struct cg_dir *d = &cg->dirs[i];
        char buf[512] = "";
        uint64_t v = 0;
        if ((d->ctrls & CG_MEMORY) &&
            read_text_at(d->fd, cg->version == 1 ? "memory.oom_control"
                                                 : "memory.events",
                         buf, sizeof(buf)) >= 0 &&
            find_key_u64(buf, "oom_kill", &v) == 0)
            *oom_kills = v;
        /* v1 and v2 alike: "max N", the forks the limit refused. */
        if ((d->ctrls & CG_PIDS) &&
            read_text_at(d->fd, "pids.events", buf, sizeof(buf)) >= 0 &&
            find_key_u64(buf, "max", &v) == 0)
            *pids_max = v;
    }
    return 0;
}

/* ---- destroy ----------------------------------------------------------- */

void sp_cgroup_destroy(struct sp_cgroup *cg)
{
    if (!cg)
        return;
    sp_cgroup_kill_all(cg);
    for (size_t i = 0; i < cg->n_dirs; i++) {
        struct cg_dir *d = &cg->dirs[i];
        sp_close_keep_errno(d->fd);
        /* A killed process leaves its cgroup a moment after it dies; the
         * kernel says EBUSY until then. Back off from 100 us (usually one
         * short wait is enough) up to about a second in all. */
        long waited_us = 0;
        for (long step = 100; waited_us < 1000000; step = step < 20000 ? step * 2 : step) {
            if (unlinkat(d->parent_fd, cg->name, AT_REMOVEDIR) == 0 ||
                errno != EBUSY)
                break;
            struct timespec ts = {0, step * 1000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
            }
            waited_us += step;
        }
        sp_close_keep_errno(d->parent_fd);
        free(d->path);
    }
    free(cg->cgpath);
    free(cg);
}

/* ---- what killed sandpits left ------------------------------------------ */

void sp_cgroup_sweep(const struct sp_cgroup *cg)
{
    time_t now = time(NULL);
    pid_t self = getpid();
    for (size_t i = 0; cg && i < cg->n_dirs; i++) {
        int fd = openat(cg->dirs[i].parent_fd, ".",
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            sp_close_keep_errno(fd);
            continue;
        }
        struct dirent *e;
        for (unsigned seen = 0; seen < CG_SWEEP_MAX && (e = readdir(d));) {
            int pid;
            unsigned k;
            char again[CG_MAX_NAME + 1];
            if ((e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) ||
                sscanf(e->d_name, "sandpit-%d-%u", &pid, &k) != 2 || pid <= 0)
                continue;
            /* exactly our own naming, nothing a scanf merely accepts */
            snprintf(again, sizeof(again), "sandpit-%d-%u", pid, k);
            if (strcmp(again, e->d_name) != 0)
                continue;
            seen++;
            if (pid == self || kill(pid, 0) == 0 || errno != ESRCH)
                continue;
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                !S_ISDIR(st.st_mode) || now - st.st_mtime < CG_SWEEP_AGE_S)
                continue;
            /* the kernel refuses (EBUSY) while a process or child is in */
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
        closedir(d);
    }
}

/* ---- probe ------------------------------------------------------------- */

int sp_cgroup_probe(char *desc, size_t desc_len)
{
    char tmp[1];
    if (!desc || desc_len == 0) {
        desc = tmp;
        desc_len = sizeof(tmp);
    }
    desc[0] = '\0';
    struct cg_layout *lay = calloc(1, sizeof(*lay));
    if (!lay)
        return -ENOMEM;
    sp_error err = {0};
    int r = discover(lay, &err);
    if (r < 0) {
        snprintf(desc, desc_len, "%s", err.message);
        free(lay);
        return r == -EOPNOTSUPP ? 0 : r;
    }

    unsigned usable = 0;
    char why[sizeof(err.message)] = "";
    for (size_t i = 0; i < lay->n; i++) {
        const struct cg_hier *h = &lay->h[i];
        memset(&err, 0, sizeof(err));
        if (check_writable(lay, h, v2_to_enable(lay, h, h->ctrls), &err) == 0)
            usable |= h->ctrls;
        else if (!why[0])
            copy_str(why, sizeof(why), err.message);
    }

    char have[64], miss[64];
    format_ctrls(usable, have, sizeof(have));
    format_ctrls(CG_ALL & ~usable, miss, sizeof(miss));
    const char *layout = lay->version == 2
                             ? (lay->hybrid ? "v2 (hybrid)" : "v2")
                             : (lay->hybrid ? "v1 (hybrid)" : "v1");
    if ((usable & CG_ALL) == CG_ALL)
        snprintf(desc, desc_len, "cgroup %s: memory, pids, cpu usable by uid %u",
                 layout, (unsigned)geteuid());
    else if (why[0])
        snprintf(desc, desc_len, "cgroup %s: usable: %s; not usable: %s (%s)",
                 layout, have, miss, why);
    else
        snprintf(desc, desc_len,
                 "cgroup %s: usable: %s; not available: %s", layout, have,
                 miss);
    free(lay);
    return (usable & CG_ALL) == CG_ALL ? 1 : 0;
}
