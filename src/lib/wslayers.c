/* wslayers.c — a workspace's copy-on-write filesystem (wslayers.h): the
 * layers/ tree at create, and at each start the rewrite of the mount plan
 * into overlays plus a refresh of the root skeleton (layers/base).
 *
 * Everything under layers/ except up/<id>/upper (and the workspace/ dir) is
 * written by sandpit alone; the upper dirs hold what the sandboxed program
 * wrote and are never read here. Paths below a dir fd are walked without
 * following symlinks all the same. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wslayers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "snapshot.h"
#include "util.h"

#define FROM_FILE "from"
#define RO_SYSTEM_FILE "read-only-system"

int sp_ws_layer_id(const char *mp, char *buf, size_t len)
{
    if (!mp || mp[0] != '/')
        return -EINVAL;
    if (strcmp(mp, "/") == 0) {
        if (len < sizeof(SP_WS_LAYER_ROOT))
            return -ENAMETOOLONG;
        memcpy(buf, SP_WS_LAYER_ROOT, sizeof(SP_WS_LAYER_ROOT));
        return 0;
    }
    size_t n = 0;
    for (const char *c = mp + 1; *c; c++) {
        if (*c == '+' || (*c == '/' && (c[1] == '/' || c[1] == '\0')))
            return -EINVAL;
        if (n + 1 >= len || n >= SP_WS_LAYER_ID_MAX)
            return -ENAMETOOLONG;
        buf[n++] = *c == '/' ? '+' : *c;
    }
    buf[n] = '\0';
    return n ? 0 : -EINVAL;
}

int sp_ws_layer_mountpoint(const char *id, char *buf, size_t len)
{
    size_t n = strlen(id);
    if (n == 0 || n > SP_WS_LAYER_ID_MAX || id[0] == '.' || strchr(id, '/'))
        return -EINVAL;
    if (strcmp(id, SP_WS_LAYER_ROOT) == 0) {
        if (len < 2)
            return -ENAMETOOLONG;
        memcpy(buf, "/", 2);
        return 0;
    }
    if (n + 2 > len)
        return -ENAMETOOLONG;
    buf[0] = '/';
    for (size_t i = 0; i < n; i++)
        buf[i + 1] = id[i] == '+' ? '/' : id[i];
    buf[n + 1] = '\0';
    return 0;
}

/* mkdir -p of `rel` below dirfd, never following a symlink; with `file`
 * the last component is an empty regular file. Existing entries of the
 * right type are kept. Returns 0 or -errno. */
static int mkpath_nofollow(int dirfd, const char *rel, mode_t mode, bool file)
{
    char buf[SP_MAX_PATH];
    if (strlen(rel) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, rel);
    int cur = dirfd;
    int rc = 0;
    char *save = NULL;
    char *tok = strtok_r(buf, "/", &save);
    while (tok) {
        char *next = strtok_r(NULL, "/", &save);
        bool last = next == NULL;
        if (strcmp(tok, ".") == 0 || strcmp(tok, "..") == 0) {
            rc = -EINVAL;
            break;
        }
        if (last && file) {
            int fd = openat(cur, tok,
                            O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
                                O_NONBLOCK,
                            0644);
            if (fd < 0 && errno != EISDIR && errno != ELOOP && errno != ENXIO)
                rc = -errno;
            if (fd >= 0)
                close(fd);
            break;
        }
        if (mkdirat(cur, tok, last ? mode : 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        int fd = openat(cur, tok, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            /* a symlink or file of the skeleton is in the way: leave it */
            rc = errno == ENOTDIR || errno == ELOOP ? 0 : -errno;
            break;
        }
        if (cur != dirfd)
            close(cur);
        cur = fd;
        tok = next;
    }
    if (cur != dirfd)
        close(cur);
    return rc;
}

static int write_text_at(int dirfd, const char *name, const char *text)
{
    int fd = openat(dirfd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int rc = n == (ssize_t)len ? 0 : n < 0 ? -errno : -ENOSPC;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int sp_ws_layers_init(int wsfd, const char *from, bool ro_system,
                      sp_error *err)
{
    char *real = NULL;
    if (from) {
        struct stat st;
        real = realpath(from, NULL);
        if (!real || stat(real, &st) < 0) {
            int e = errno;
            free(real);
            return sp_error_setk(err, SP_ERR_USAGE, e, "--from %s", from);
        }
        if (!S_ISDIR(st.st_mode)) {
            free(real);
            return sp_error_setk(err, SP_ERR_USAGE, ENOTDIR,
                                 "--from %s: not a directory", from);
        }
        if (access(real, R_OK | X_OK) < 0) {
            int e = errno;
            free(real);
            return sp_error_setk(err, SP_ERR_USAGE, e, "--from %s", from);
        }
        if (strlen(real) >= SP_MAX_PATH || strchr(real, ',') ||
            strchr(real, ':') || strchr(real, '\\')) {
            /* overlayfs splits lowerdir at ':' and options at ',' */
            free(real);
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "--from %s: a path with ',', ':' or '\\' "
                                 "cannot be an overlay layer", from);
        }
    }
    int rc = 0;
    int lfd = -1;
    if (mkdirat(wsfd, SP_WS_LAYERS, 0700) < 0 ||
        (lfd = openat(wsfd, SP_WS_LAYERS,
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = sp_error_set(err, errno, "cannot create %s", SP_WS_LAYERS);
        goto out;
    }
    static const char *const dirs[] = {"base", "home", "empty", "up"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(dirs); i++)
        if (mkdirat(lfd, dirs[i], 0755) < 0) {
            rc = sp_error_set(err, errno, "cannot create %s/%s", SP_WS_LAYERS,
                              dirs[i]);
            goto out;
        }
    if (real && (rc = write_text_at(lfd, FROM_FILE, real)) < 0) {
        rc = sp_error_set(err, -rc, "cannot write %s/%s", SP_WS_LAYERS,
                          FROM_FILE);
        goto out;
    }
    if (ro_system && (rc = write_text_at(lfd, RO_SYSTEM_FILE, "")) < 0) {
        rc = sp_error_set(err, -rc, "cannot write %s/%s", SP_WS_LAYERS,
                          RO_SYSTEM_FILE);
        goto out;
    }
out:
    if (lfd >= 0)
        close(lfd);
    free(real);
    return rc;
}

void sp_ws_layers_free(struct sp_ws_layers *ly)
{
    if (!ly)
        return;
    free(ly->dir);
    free(ly->datadir);
    free(ly->from);
    memset(ly, 0, sizeof(*ly));
}

int sp_ws_layers_load(const char *datadir, struct sp_ws_layers *ret,
                      sp_error *err)
{
    memset(ret, 0, sizeof(*ret));
    const char *slash = strrchr(datadir, '/');
    if (!slash || slash == datadir)
        return sp_error_set(err, EINVAL, "workspace data dir %s", datadir);
    char dir[SP_MAX_PATH * 2];
    int n = snprintf(dir, sizeof(dir), "%.*s/%s", (int)(slash - datadir),
                     datadir, SP_WS_LAYERS);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return sp_error_set(err, ENAMETOOLONG, "workspace layers dir");
    int lfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0) {
        if (errno == ENOENT)
            return 0;
        return sp_error_set(err, errno, "cannot open %s", dir);
    }
    ret->dir = strdup(dir);
    ret->datadir = strdup(datadir);
    int rc = 1;
    int fd = openat(lfd, FROM_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        char buf[SP_MAX_PATH];
        ssize_t r = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (r <= 0 || buf[0] != '/') {
            rc = sp_error_set(err, EINVAL, "%s/%s is damaged", dir, FROM_FILE);
        } else {
            buf[r] = '\0';
            ret->from = strdup(buf);
            if (!ret->from)
                rc = sp_error_set(err, ENOMEM, "layers");
        }
    } else if (errno != ENOENT) {
        rc = sp_error_set(err, errno, "cannot read %s/%s", dir, FROM_FILE);
    }
    ret->ro_system = faccessat(lfd, RO_SYSTEM_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    close(lfd);
    if (rc > 0 && (!ret->dir || !ret->datadir))
        rc = sp_error_set(err, ENOMEM, "layers");
    if (rc < 0)
        sp_ws_layers_free(ret);
    return rc;
}

/* ---- the plan ---------------------------------------------------------- */

/* "a/b" or "a/b/c" (c may be NULL), allocated. */
static char *path2(const char *a, const char *b, const char *c)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "") < 0)
        return NULL;
    return s;
}

/* Make layers/up/<id>/{upper,work} (upper with `mode`) and turn op into
 * an overlay of `lower` on them; with upper_at, that is the upper dir. */
static int make_overlay(const struct sp_ws_layers *ly, int upfd,
                        struct sp_mount_op *op, const char *lower,
                        const char *upper_at, mode_t mode, sp_error *err)
{
    char id[SP_WS_LAYER_ID_MAX + 1];
    int r = sp_ws_layer_id(op->dst, id, sizeof(id));
    if (r < 0)
        return sp_error_set(err, -r, "no copy-on-write layer for %s", op->dst);
    if (mkdirat(upfd, id, 0700) < 0 && errno != EEXIST)
        return sp_error_set(err, errno, "cannot create layer %s", id);
    int idfd = openat(upfd, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (idfd < 0)
        return sp_error_set(err, errno, "cannot open layer %s", id);
    if ((!upper_at && mkdirat(idfd, "upper", mode) < 0 && errno != EEXIST) ||
        (mkdirat(idfd, "work", 0700) < 0 && errno != EEXIST)) {
        int e = errno;
        close(idfd);
        return sp_error_set(err, e, "cannot create layer %s", id);
    }
    close(idfd);
    char *lo = strdup(lower);
    char *iddir = path2(ly->dir, "up", id);
    char *up2 = upper_at ? strdup(upper_at)
                         : iddir ? path2(iddir, "upper", NULL) : NULL;
    char *wk2 = iddir ? path2(iddir, "work", NULL) : NULL;
    free(iddir);
    if (!lo || !up2 || !wk2) {
        free(lo);
        free(up2);
        free(wk2);
        return sp_error_set(err, ENOMEM, "layers");
    }
    free((char *)op->src);
    op->src = lo;
    op->upper = up2;
    op->work = wk2;
    op->kind = SP_OP_OVERLAY;
    op->is_dir = true;
    op->ro = false;
    op->optional = false;
    return 0;
}

/* Copy a small host file into the skeleton unless it is there already
 * (same size and mtime). Through a temporary name, so a full disk leaves
 * the old copy. A missing source is skipped (as a default it is optional). */
static int copy_into(int basefd, const char *src, const char *rel, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (in < 0)
        return 0;
    struct stat si, sb;
    int rc = 0;
    if (fstat(in, &si) < 0 || !S_ISREG(si.st_mode)) {
        close(in);
        return 0;
    }
    if (fstatat(basefd, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(sb.st_mode) && sb.st_size == si.st_size &&
        sb.st_mtim.tv_sec == si.st_mtim.tv_sec &&
        sb.st_mtim.tv_nsec == si.st_mtim.tv_nsec) {
        close(in);
        return 0;
    }
    char tmp[SP_MAX_PATH + 16];
    snprintf(tmp, sizeof(tmp), "%s.sp-new", rel);
    unlinkat(basefd, tmp, 0);
    int out = openat(basefd, tmp,
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (out < 0) {
        rc = -errno;
        close(in);
        return rc;
    }
    for (int rounds = 0; rounds < 1024; rounds++) {
        ssize_t n = sendfile(out, in, NULL, SP_COPY_MAX);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
    }
    struct timespec ts[2] = {si.st_atim, si.st_mtim};
    if (rc == 0 && futimens(out, ts) < 0)
        rc = -errno;
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    close(in);
    if (rc == 0 && renameat(basefd, tmp, basefd, rel) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(basefd, tmp, 0);
    return rc;
}

static int symlink_into(int basefd, const char *target, const char *rel)
{
    char cur[SP_MAX_PATH];
    ssize_t n = readlinkat(basefd, rel, cur, sizeof(cur) - 1);
    if (n >= 0) {
        cur[n] = '\0';
        if (strcmp(cur, target) == 0)
            return 0;
        unlinkat(basefd, rel, 0);
    } else if (errno == EINVAL) {
        return 0; /* something else is there: the skeleton keeps it */
    }
    if (symlinkat(target, basefd, rel) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The parent directories of the absolute path `dst` below basefd. */
static int mkparent(int basefd, const char *dst)
{
    const char *base = strrchr(dst, '/');
    if (!base || base == dst)
        return 0;
    char parent[SP_MAX_PATH];
    if ((size_t)(base - dst) >= sizeof(parent))
        return -ENAMETOOLONG;
    memcpy(parent, dst, (size_t)(base - dst));
    parent[base - dst] = '\0';
    return mkpath_nofollow(basefd, parent, 0755, false);
}

static void op_drop(struct sp_mount_plan *plan, size_t i)
{
    struct sp_mount_op *op = &plan->ops[i];
    free((char *)op->src);
    free((char *)op->dst);
    free((char *)op->upper);
    free((char *)op->work);
    memmove(op, op + 1, (plan->n - i - 1) * sizeof(*op));
    plan->n--;
}

int sp_ws_layers_apply(const struct sp_ws_layers *ly, const char *ws_dst,
                       bool userxattr, struct sp_mount_plan *plan,
                       sp_error *err)
{
    _cleanup_close_ int lfd =
        open(ly->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0)
        return sp_error_set(err, errno, "cannot open %s", ly->dir);
    if (mkdirat(lfd, "up", 0755) < 0 && errno != EEXIST)
        return sp_error_set(err, errno, "cannot create %s/up", ly->dir);
    _cleanup_close_ int upfd =
        openat(lfd, "up", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int basefd =
        openat(lfd, "base", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int homefd =
        openat(lfd, "home", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (upfd < 0 || basefd < 0 || homefd < 0)
        return sp_error_set(err, errno, "%s is incomplete", ly->dir);
    char *empty = path2(ly->dir, "empty", NULL);
    char *homelow = path2(ly->dir, "home", NULL);
    int rc = 0;
    if (!empty || !homelow) {
        rc = sp_error_set(err, ENOMEM, "layers");
        goto out;
    }

    for (size_t i = 0; i < plan->n;) {
        struct sp_mount_op *op = &plan->ops[i];
        const char *home = plan->home;
        bool in_home = home && sp_path_has_prefix(op->dst, home) &&
                       strcmp(op->dst, home) != 0;
        if (op->kind == SP_OP_BIND && ws_dst && strcmp(op->dst, ws_dst) == 0 &&
            !op->ro) {
            rc = make_overlay(ly, upfd, op, ly->from ? ly->from : empty,
                              ly->datadir, 0755, err);
        } else if (op->kind == SP_OP_TMPFS && home &&
                   strcmp(op->dst, home) == 0) {
            rc = make_overlay(ly, upfd, op, homelow, NULL, 0700, err);
        } else if (op->kind == SP_OP_DIR && in_home) {
            /* HOME's skeleton: in its lower dir, so not in its diff */
            rc = mkpath_nofollow(homefd, op->dst + strlen(home), op->mode, false);
            if (rc < 0) {
                rc = sp_error_set(err, -rc, "cannot create %s in layers/home",
                                  op->dst);
                goto out;
            }
            op_drop(plan, i);
            continue;
        } else if (!ly->ro_system && op->kind == SP_OP_BIND && op->optional &&
                   op->ro && op->is_dir) {
            rc = make_overlay(ly, upfd, op, op->src, NULL, 0755, err);
        }
        if (rc < 0)
            goto out;
        if (ly->ro_system) {
            i++;
            continue;
        }
        /* The root is an overlay on layers/base: everything the plan would
         * write into a fresh root goes into the skeleton instead. */
        switch (op->kind) {
        case SP_OP_COPY:
            rc = mkparent(basefd, op->dst);
            if (rc == 0)
                rc = copy_into(basefd, op->src, op->dst + 1, op->mode);
            if (rc < 0) {
                rc = sp_error_set(err, -rc, "cannot copy %s into %s/base",
                                  op->src, ly->dir);
                goto out;
            }
            op_drop(plan, i);
            continue;
        case SP_OP_SYMLINK: {
            rc = mkparent(basefd, op->dst);
            if (rc == 0)
                rc = symlink_into(basefd, op->src, op->dst + 1);
            if (rc < 0) {
                rc = sp_error_set(err, -rc, "cannot link %s in %s/base",
                                  op->dst, ly->dir);
                goto out;
            }
            op_drop(plan, i);
            continue;
        }
        case SP_OP_DIR:
            rc = mkpath_nofollow(basefd, op->dst, op->mode, false);
            if (rc < 0) {
                rc = sp_error_set(err, -rc, "cannot create %s in %s/base",
                                  op->dst, ly->dir);
                goto out;
            }
            op_drop(plan, i);
            continue;
        case SP_OP_BIND:
        case SP_OP_HIDE:
            rc = mkpath_nofollow(basefd, op->dst, 0755, !op->is_dir);
            break;
        case SP_OP_OVERLAY:
        case SP_OP_TMPFS:
        case SP_OP_PROC:
        case SP_OP_DEV:
            rc = mkpath_nofollow(basefd, op->dst,
                                 op->kind == SP_OP_PROC ? 0555 : 0755, false);
            break;
        default:
            break;
        }
        if (rc < 0) {
            rc = sp_error_set(err, -rc, "cannot create mount point %s in "
                              "%s/base", op->dst, ly->dir);
            goto out;
        }
        i++;
    }
    if (!ly->ro_system) {
        struct sp_mount_op *root = calloc(1, sizeof(*root));
        char *lower = path2(ly->dir, "base", NULL);
        if (!root || !lower || !(root->dst = strdup("/"))) {
            free(root);
            free(lower);
            rc = sp_error_set(err, ENOMEM, "layers");
            goto out;
        }
        root->kind = SP_OP_BIND; /* make_overlay frees src */
        root->src = NULL;
        rc = make_overlay(ly, upfd, root, lower, NULL, 0755, err);
        free(lower);
        if (rc < 0) {
            free((char *)root->dst);
            free(root);
            goto out;
        }
        plan->root = root;
    }
    /* Snapshot layers (snapshot.h) go under each overlay's upper. */
    if ((rc = sp_snap_stack_apply(ly->dir, plan, err)) < 0)
        goto out;
    plan->userxattr = userxattr;
out:
    free(empty);
    free(homelow);
    return rc;
}
