/* mountplan.c — turn a finalized policy into an ordered list of mount
 * operations. Runs in the parent; reads the host only with lstat/readlink/
 * realpath to decide how each default path is given. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mountplan.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "util.h"

struct builder {
    struct sp_mount_op *ops;
    size_t n, cap;
    bool oom;
};

static char *xstrdup(struct builder *b, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        b->oom = true;
    return d;
}

static struct sp_mount_op *push(struct builder *b, enum sp_op_kind kind,
                                const char *src, const char *dst)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct sp_mount_op *n = realloc(b->ops, cap * sizeof(*n));
        if (!n) {
            b->oom = true;
            return NULL;
        }
        b->ops = n;
        b->cap = cap;
    }
    struct sp_mount_op *op = &b->ops[b->n++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->src = xstrdup(b, src);
    op->dst = xstrdup(b, dst);
    return op;
}

static void op_free(struct sp_mount_op *op)
{
    free((char *)op->src);
    free((char *)op->dst);
    free((char *)op->upper);
    free((char *)op->work);
    free((char *)op->append);
    for (size_t i = 0; op->fsopts && op->fsopts[i]; i += 2) {
        free(op->fsopts[i]);
        free(op->fsopts[i + 1]);
    }
    free(op->fsopts);
}

static void remove_at_or_below(struct builder *b, const char *dst)
{
    for (size_t i = b->n; i-- > 0;) {
        if (sp_path_has_prefix(b->ops[i].dst, dst)) {
            op_free(&b->ops[i]);
            memmove(&b->ops[i], &b->ops[i + 1],
                    (b->n - i - 1) * sizeof(*b->ops));
            b->n--;
        }
    }
}

static void remove_exact(struct builder *b, const char *dst)
{
    for (size_t i = b->n; i-- > 0;) {
        if (strcmp(b->ops[i].dst, dst) == 0) {
            op_free(&b->ops[i]);
            memmove(&b->ops[i], &b->ops[i + 1],
                    (b->n - i - 1) * sizeof(*b->ops));
            b->n--;
        }
    }
}

static bool is_default_dir(const char *path)
{
    for (size_t i = 0; sp_default_system_paths[i]; i++) {
        struct stat st;
        if (sp_path_has_prefix(path, sp_default_system_paths[i]) &&
            lstat(sp_default_system_paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            return true;
    }
    return false;
}

/* A default path that is a symlink into another default directory (merged
 * /usr: /bin -> usr/bin) is recreated as the same symlink; any other is
 * bound with the link followed. */
static void add_default(struct builder *b, const char *path,
                        const char *hostname)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return; /* a missing default system path is skipped */
    if (S_ISLNK(st.st_mode)) {
        char target[SP_MAX_PATH];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        char *real = realpath(path, NULL);
        if (n > 0 && real && is_default_dir(real)) {
            target[n] = '\0';
            push(b, SP_OP_SYMLINK, target, path);
            free(real);
            return;
        }
        free(real);
        if (stat(path, &st) < 0)
            return; /* dangling */
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return;
    /* Small configuration files: a copy into the read-only root costs a
     * few plain file syscalls where a bind costs mount work twice (set up
     * and tear down). The sandbox sees them as of its start. */
    if (S_ISREG(st.st_mode) && st.st_size <= SP_COPY_MAX &&
        strncmp(path, "/etc/", 5) == 0) {
        struct sp_mount_op *cp = push(b, SP_OP_COPY, path, path);
        if (cp) {
            cp->mode = st.st_mode & 0644;
            cp->optional = true;
            /* The sandbox's hostname resolves (hostname -f, getent hosts,
             * Java's getLocalHost), as Debian's installer writes it. */
            if (hostname && strcmp(path, "/etc/hosts") == 0) {
                char line[128];
                snprintf(line, sizeof(line), "\n127.0.1.1\t%s\n", hostname);
                cp->append = xstrdup(b, line);
            }
        }
        return;
    }
    struct sp_mount_op *op = push(b, SP_OP_BIND, path, path);
    if (op) {
        op->ro = true;
        op->is_dir = S_ISDIR(st.st_mode);
        op->optional = true;
    }
}

/* --rootfs / --image: the rootfs's top-level entries take the place of
 * the host's system paths — each directory a read-only bind (its own
 * copy-on-write overlay in a workspace), each symlink recreated, each
 * file bound. /proc, /dev, /tmp and /sys are sandpit's own as always. */
static const char *const rootfs_skip[] = {"proc", "dev", "tmp", "sys"};

static int cmp_name(const void *a, const void *c)
{
    return strcmp(*(char *const *)a, *(char *const *)c);
}

static void add_rootfs(struct builder *b, const char *rootfs)
{
    DIR *d = opendir(rootfs);
    if (!d) {
        b->oom = true; /* finalize checked it: reported as a plan failure */
        return;
    }
    char *names[SP_MAX_MOUNTS];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < SP_ARRAY_SIZE(names)) {
        bool skip = de->d_name[0] == '.' &&
                    (!de->d_name[1] || strcmp(de->d_name, "..") == 0);
        for (size_t i = 0; i < SP_ARRAY_SIZE(rootfs_skip); i++)
            skip |= strcmp(de->d_name, rootfs_skip[i]) == 0;
        /* overlayfs reads ':' (and '\\' and ',') in a lower dir as syntax:
         * "x:/etc" would add the host's /etc as a layer. Such a name is
         * not taken. */
        skip |= strpbrk(de->d_name, ",:\\") != NULL;
        if (!skip && !(names[n++] = strdup(de->d_name)))
            b->oom = true, n--;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    for (size_t i = 0; i < n; i++) {
        char src[SP_MAX_PATH + 256], dst[300];
        snprintf(src, sizeof(src), "%s/%s", rootfs, names[i]);
        snprintf(dst, sizeof(dst), "/%s", names[i]);
        free(names[i]);
        struct stat st;
        if (lstat(src, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[SP_MAX_PATH];
            ssize_t tn = readlink(src, target, sizeof(target) - 1);
            if (tn > 0) {
                target[tn] = '\0';
                push(b, SP_OP_SYMLINK, target, dst);
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        struct sp_mount_op *op = push(b, SP_OP_BIND, src, dst);
        if (op) {
            op->ro = true;
            op->is_dir = S_ISDIR(st.st_mode);
            op->optional = true;
        }
    }
}

/* A rootfs entry under which sandpit must make a mount point that the
 * rootfs lacks (HOME's /home/sandpit, the workspace's path) cannot be a
 * read-only bind: it is left out, and the mount point lives in the root. */
static void prune_rootfs(struct builder *b, const char *rootfs)
{
    size_t rl = strlen(rootfs);
    for (size_t i = b->n; i-- > 0;) {
        struct sp_mount_op *r = &b->ops[i];
        if (r->kind != SP_OP_BIND || !r->optional || !r->src ||
            strncmp(r->src, rootfs, rl) != 0 || r->src[rl] != '/' ||
            strchr(r->dst + 1, '/'))
            continue;
        bool drop = false;
        for (size_t j = 0; j < b->n && !drop; j++) {
            const struct sp_mount_op *o = &b->ops[j];
            if (j == i || !sp_path_has_prefix(o->dst, r->dst) ||
                strcmp(o->dst, r->dst) == 0)
                continue;
            char probe[SP_MAX_PATH * 2];
            struct stat st;
            snprintf(probe, sizeof(probe), "%s%s", rootfs, o->dst);
            drop = lstat(probe, &st) < 0 ||
                   (o->kind != SP_OP_COPY && o->kind != SP_OP_SYMLINK &&
                    !!S_ISDIR(st.st_mode) != (o->kind != SP_OP_BIND ||
                                             o->is_dir));
        }
        if (drop) {
            op_free(r);
            memmove(&b->ops[i], &b->ops[i + 1], (b->n - i - 1) * sizeof(*b->ops));
            b->n--;
        }
    }
}

static size_t depth(const char *path)
{
    size_t d = 0;
    for (const char *c = path; *c; c++)
        d += *c == '/';
    return strcmp(path, "/") == 0 ? 0 : d;
}

static int cmp_depth(const void *a, const void *b)
{
    const struct sp_mount_op *x = a, *y = b;
    size_t dx = depth(x->dst), dy = depth(y->dst);
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return 0;
}

/* Stable sort by depth (insertion sort: plans are a few dozen ops). */
static void sort_ops(struct sp_mount_op *ops, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct sp_mount_op cur = ops[i];
        size_t j = i;
        while (j > 0 && cmp_depth(&ops[j - 1], &cur) > 0) {
            ops[j] = ops[j - 1];
            j--;
        }
        ops[j] = cur;
    }
}

/* The workspace: the one place its mount is decided. `run` binds the
 * directory at its own path; a persistent workspace binds its directory
 * under the state dir at ws_dst ("/workspace"). (Overlay layers, --from
 * and reset will change this op and nothing else.) */
/* A tmpfs's size: its own (0: limits.tmp_size), never above the disk
 * limit (docs/disk.md). */
static uint64_t tmpfs_size(const struct sp_policy *p, uint64_t own)
{
    uint64_t s = own ? own : p->limits.tmp_size;
    return p->limits.disk && p->limits.disk < s ? p->limits.disk : s;
}

static void add_workspace(struct builder *b, const struct sp_policy *p,
                          const char *ws_dst)
{
    if (p->workspace_mode == SP_WS_NONE)
        return;
    const char *dst = ws_dst ? ws_dst : p->workspace;
    remove_exact(b, dst);
    struct sp_mount_op *op = push(b, SP_OP_BIND, p->workspace, dst);
    if (op) {
        op->ro = p->workspace_mode == SP_WS_RO;
        op->is_dir = true;
    }
}

int sp_mount_plan_build(const struct sp_policy *p, struct sp_mount_plan *ret,
                        sp_error *err)
{
    return sp_mount_plan_build_at(p, NULL, ret, err);
}

int sp_mount_plan_build_at(const struct sp_policy *p, const char *ws_dst,
                           struct sp_mount_plan *ret, sp_error *err)
{
    struct builder b = {0};
    memset(ret, 0, sizeof(*ret));
    ret->tmp_inodes = p->limits.inodes;
    if (!p->finalized)
        return sp_error_set(err, EINVAL, "mount plan: policy not finalized");

    if (p->rootfs)
        add_rootfs(&b, p->rootfs);
    else
        for (size_t i = 0; sp_default_system_paths[i]; i++)
            add_default(&b, sp_default_system_paths[i], p->hostname);

    struct sp_mount_op *op;
    /* /dev before /proc: masking procfs files binds the new /dev/null. */
    if ((op = push(&b, SP_OP_DEV, NULL, "/dev")))
        op->mode = 0755;
    if ((op = push(&b, SP_OP_PROC, NULL, "/proc")))
        op->mode = 0555;
    /* Runtimes size themselves by what they find in /sys: the sandbox's
     * own cgroup is mounted read-only on /sys/fs/cgroup by its PID 1
     * (mounts.h: sp_cgroup_view), and the CPU topology (lscpu, sysconf)
     * is the host's, read-only. Not optional once seen here: a workspace
     * would make an optional directory bind a copy-on-write overlay. */
    if ((op = push(&b, SP_OP_DIR, NULL, "/sys/fs/cgroup")))
        op->mode = 0755;
    struct stat cst;
    if (stat("/sys/devices/system/cpu", &cst) == 0 && S_ISDIR(cst.st_mode) &&
        (op = push(&b, SP_OP_BIND, "/sys/devices/system/cpu",
                   "/sys/devices/system/cpu"))) {
        op->ro = true;
        op->is_dir = true;
    }
    if ((op = push(&b, SP_OP_TMPFS, NULL, "/tmp"))) {
        op->size = tmpfs_size(p, 0);
        op->mode = 01777;
    }
    if ((op = push(&b, SP_OP_TMPFS, NULL, SP_SANDBOX_HOME))) {
        op->size = tmpfs_size(p, 0);
        op->mode = 0700;
    }
    static const char *const xdg[] = {"/.config", "/.cache", "/.local",
                                      "/.local/state", "/.local/share"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(xdg); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s%s", SP_SANDBOX_HOME, xdg[i]);
        if ((op = push(&b, SP_OP_DIR, NULL, path)))
            op->mode = 0700;
    }

    /* The workspace and the user's rules replace any earlier op for the same
     * target; a hide removes every op at or below its target and covers the
     * path when it lies inside another mount. */
    add_workspace(&b, p, ws_dst);
    for (size_t i = 0; i < p->n_mounts; i++) {
        const struct sp_mount_rule *r = &p->mounts[i];
        struct stat st;
        switch (r->type) {
        case SP_MOUNT_RO:
        case SP_MOUNT_RW:
            remove_exact(&b, r->dst);
            if (stat(r->src, &st) < 0) {
                free(b.ops);
                return sp_error_setk(err, SP_ERR_USAGE, errno,
                                     "%s mount source %s",
                                     sp_mount_type_name(r->type), r->src);
            }
            if ((op = push(&b, SP_OP_BIND, r->src, r->dst))) {
                op->ro = r->type == SP_MOUNT_RO;
                op->is_dir = S_ISDIR(st.st_mode);
            }
            break;
        case SP_MOUNT_TMPFS:
            remove_exact(&b, r->dst);
            if ((op = push(&b, SP_OP_TMPFS, NULL, r->dst))) {
                op->size = tmpfs_size(p, r->size);
                op->mode = 0755;
            }
            break;
        case SP_MOUNT_HIDE: {
            remove_at_or_below(&b, r->dst);
            /* Covered only if it lies inside something still mounted. */
            bool inside = false, parent_dir = true;
            for (size_t j = 0; j < b.n; j++) {
                if (b.ops[j].kind != SP_OP_SYMLINK &&
                    b.ops[j].kind != SP_OP_DIR &&
                    sp_path_has_prefix(r->dst, b.ops[j].dst)) {
                    inside = true;
                    if (b.ops[j].kind == SP_OP_BIND && b.ops[j].src) {
                        /* Look at what the host has there to pick dir/file. */
                        char host[SP_MAX_PATH * 2];
                        snprintf(host, sizeof(host), "%s%s", b.ops[j].src,
                                 r->dst + strlen(b.ops[j].dst));
                        parent_dir = !(lstat(host, &st) == 0 &&
                                       !S_ISDIR(st.st_mode));
                    }
                }
            }
            if (inside && (op = push(&b, SP_OP_HIDE, NULL, r->dst)))
                op->is_dir = parent_dir;
            break;
        }
        default:
            break;
        }
    }
    if (p->rootfs)
        prune_rootfs(&b, p->rootfs);
    if (b.oom) {
        for (size_t i = 0; i < b.n; i++)
            op_free(&b.ops[i]);
        free(b.ops);
        return sp_error_set(err, ENOMEM, "building the mount plan");
    }
    sort_ops(b.ops, b.n);
    ret->ops = b.ops;
    ret->n = b.n;
    ret->home = strdup(SP_SANDBOX_HOME);
    const char *wd = p->cwd ? p->cwd
                     : p->workspace_mode != SP_WS_NONE
                         ? (ws_dst ? ws_dst : p->workspace)
                         : SP_SANDBOX_HOME;
    ret->workdir = strdup(wd);
    if (!ret->home || !ret->workdir) {
        sp_mount_plan_free(ret);
        return sp_error_set(err, ENOMEM, "building the mount plan");
    }
    return 0;
}

void sp_mount_plan_free(struct sp_mount_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n; i++)
        op_free(&plan->ops[i]);
    free(plan->ops);
    if (plan->root) {
        op_free(plan->root);
        free(plan->root);
    }
    free(plan->home);
    free(plan->workdir);
    free(plan->relbase[0]);
    free(plan->relbase[1]);
    free(plan->relws);
    memset(plan, 0, sizeof(*plan));
}
