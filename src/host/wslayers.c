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
#include "layerstore.h"
#include "util.h"
#include "wsdisk.h"
#include "wsskel.h"

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
    /* layers/base (a link to the shared skeleton) is made at each start;
     * layers/home is HOME's lower dir only without a skeleton */
    static const char *const dirs[] = {"empty", "up", "home"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(dirs) - (ro_system ? 0 : 1); i++)
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
/* The layer dirs of the last sp_ws_layers_apply of this process (a
 * supervisor applies one plan at a time), for sp_ws_layers_make_spare. */
static struct {
    struct sp_skel_layer_dir d[SP_WS_MAX_LAYER_DIRS];
    size_t n;
    char key[48];
    char dir[SP_MAX_PATH];
} recipe;

/* Make layers/up/<id>/{upper,work} of every overlay recorded. */
static int make_layer_dirs(int upfd, sp_error *err)
{
    for (size_t i = 0; i < recipe.n; i++) {
        const struct sp_skel_layer_dir *d = &recipe.d[i];
        if (mkdirat(upfd, d->id, 0700) < 0 && errno != EEXIST)
            return sp_error_set(err, errno, "cannot create layer %s", d->id);
        int idfd = openat(upfd, d->id,
                          O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (idfd < 0)
            return sp_error_set(err, errno, "cannot open layer %s", d->id);
        if ((d->upper && mkdirat(idfd, "upper", d->mode) < 0 &&
             errno != EEXIST) ||
            (mkdirat(idfd, "work", 0700) < 0 && errno != EEXIST)) {
            int e = errno;
            close(idfd);
            return sp_error_set(err, e, "cannot create layer %s", d->id);
        }
        close(idfd);
    }
    return 0;
}

void sp_ws_layers_make_spare(void)
{
    if (!recipe.key[0] || !recipe.n)
        return;
    int lfd = open(recipe.dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0)
        return;
    sp_skel_spare_make(lfd, recipe.key, recipe.d, recipe.n);
    close(lfd);
}

/* Turn op into an overlay of `lower` on layers/up/<id>/{upper,work} (the
 * dirs are made later, make_layer_dirs); with upper_at, that is the
 * upper dir. */
static int make_overlay(const struct sp_ws_layers *ly, int upfd,
                        struct sp_mount_op *op, const char *lower,
                        const char *upper_at, mode_t mode, sp_error *err)
{
    (void)upfd;
    char id[SP_WS_LAYER_ID_MAX + 1];
    int r = sp_ws_layer_id(op->dst, id, sizeof(id));
    if (r < 0)
        return sp_error_set(err, -r, "no copy-on-write layer for %s", op->dst);
    if (recipe.n == SP_ARRAY_SIZE(recipe.d))
        return sp_error_set(err, E2BIG, "more than %d copy-on-write layers",
                            SP_WS_MAX_LAYER_DIRS);
    struct sp_skel_layer_dir *d = &recipe.d[recipe.n++];
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->mode = mode;
    d->upper = upper_at == NULL;
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

static void op_drop(struct sp_mount_plan *plan, size_t i)
{
    struct sp_mount_op *op = &plan->ops[i];
    free((char *)op->src);
    free((char *)op->dst);
    free((char *)op->upper);
    free((char *)op->work);
    free((char *)op->append);
    memmove(op, op + 1, (plan->n - i - 1) * sizeof(*op));
    plan->n--;
}

/* mkdir -p of HOME's `rel` in layers/home (--read-only-system: no
 * skeleton). */
static int ensure_home_dir(const struct sp_ws_layers *ly, const char *rel,
                           mode_t mode)
{
    char *dir = path2(ly->dir, "home", NULL);
    if (!dir)
        return -ENOMEM;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -errno;
    int rc = sp_mkpath_nofollow(fd, rel, mode, false);
    close(fd);
    return rc;
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
    if (upfd < 0)
        return sp_error_set(err, errno, "%s is incomplete", ly->dir);
    /* The state dir (ly->dir is <state>/workspaces/<name>/layers): layer
     * paths under it are mounted relative to it, hidden from mountinfo. */
    char *sd = strdup(ly->dir);
    for (int up = 0; sd && up < 3; up++) {
        char *sl = strrchr(sd, '/');
        if (!sl || sl == sd) {
            free(sd);
            sd = NULL;
            break;
        }
        *sl = '\0';
    }
    if (sd) {
        free(plan->relbase[0]);
        free(plan->relbase[1]);
        plan->relbase[1] = realpath(sd, NULL);
        plan->relbase[0] = plan->relbase[1] ? sd : NULL;
        free(plan->relws);
        plan->relws = NULL;
        if (!plan->relbase[1]) {
            free(sd);
        } else {
            /* "workspaces/<name>": mounted from there (mounts.c) */
            const char *tail = ly->dir + strlen(sd);
            size_t tl = strlen(tail);
            if (tl > 8 && tail[0] == '/' &&
                strcmp(tail + tl - 7, "/layers") == 0)
                plan->relws = strndup(tail + 1, tl - 8);
        }
    }
    const char *home = plan->home;
    recipe.n = 0;
    recipe.key[0] = '\0';
    snprintf(recipe.dir, sizeof(recipe.dir), "%s", ly->dir);
    char *empty = path2(ly->dir, "empty", NULL);
    /* HOME's lower dir is its place in the skeleton (its XDG dirs) */
    char *homelow = home ? path2(ly->dir, "base", home + 1) : strdup("");
    struct sp_skel *sk = ly->ro_system ? NULL : sp_skel_new();
    int rc = 0;
    if (!empty || !homelow || (!ly->ro_system && !sk)) {
        rc = sp_error_set(err, ENOMEM, "layers");
        goto out;
    }

    for (size_t i = 0; i < plan->n;) {
        struct sp_mount_op *op = &plan->ops[i];
        bool in_home = home && sp_path_has_prefix(op->dst, home) &&
                       strcmp(op->dst, home) != 0;
        if (op->kind == SP_OP_BIND && ws_dst && strcmp(op->dst, ws_dst) == 0 &&
            !op->ro) {
            /* With a disk image (wsdisk.h), workspace/ is a bind of
             * up/workspace/upper: the overlay takes the latter, on one
             * mount with its work dir. */
            bool img = faccessat(upfd, SP_WS_DISK_WS_UPPER, F_OK,
                                 AT_SYMLINK_NOFOLLOW) == 0;
            rc = make_overlay(ly, upfd, op, ly->from ? ly->from : empty,
                              img ? NULL : ly->datadir, 0755, err);
        } else if (op->kind == SP_OP_TMPFS && home &&
                   strcmp(op->dst, home) == 0) {
            char hid[SP_WS_LAYER_ID_MAX + 1];
            if (sk && sp_ws_layer_id(home, hid, sizeof(hid)) == 0 &&
                faccessat(upfd, hid, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                /* HOME is part of the root overlay (one mount fewer): its
                 * XDG dirs are in the skeleton, its writes in the root's
                 * upper. A workspace made when HOME was an overlay of its
                 * own keeps that. */
                rc = sp_skel_dir(sk, home + 1, op->mode);
                op_drop(plan, i);
                if (rc < 0)
                    goto skel_fail;
                continue;
            }
            if (ly->ro_system) {
                /* no skeleton: HOME's lower is layers/home */
                free(homelow);
                homelow = path2(ly->dir, "home", NULL);
                if (!homelow) {
                    rc = sp_error_set(err, ENOMEM, "layers");
                    goto out;
                }
            }
            rc = make_overlay(ly, upfd, op, homelow, NULL, 0700, err);
        } else if (op->kind == SP_OP_DIR && in_home) {
            /* HOME's XDG dirs: in its lower dir, so not in its diff */
            if (sk)
                rc = sp_skel_dir(sk, op->dst + 1, op->mode);
            else
                rc = ensure_home_dir(ly, op->dst + strlen(home), op->mode);
            if (rc < 0) {
                rc = sp_error_set(err, -rc, "cannot create %s in the skeleton",
                                  op->dst);
                goto out;
            }
            op_drop(plan, i);
            continue;
        } else if (!ly->ro_system && op->kind == SP_OP_BIND && op->optional &&
                   op->ro && op->is_dir) {
            /* A small /etc directory is copied into the shared skeleton
             * (one overlay fewer at each start); a big one, anything else,
             * and a layer made by an older sandpit stay overlays. */
            char id[SP_WS_LAYER_ID_MAX + 1];
            if (sp_path_has_prefix(op->dst, "/etc") &&
                strcmp(op->dst, "/etc") != 0 &&
                sp_ws_layer_id(op->dst, id, sizeof(id)) == 0 &&
                faccessat(upfd, id, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                rc = sp_skel_tree(sk, op->src, op->dst + 1);
                if (rc > 0) {
                    op_drop(plan, i);
                    continue;
                }
                if (rc < 0) {
                    rc = sp_error_set(err, -rc, "cannot copy %s into the "
                                      "skeleton", op->src);
                    goto out;
                }
            }
            rc = make_overlay(ly, upfd, op, op->src, NULL, 0755, err);
        }
        if (rc < 0)
            goto out;
        if (ly->ro_system) {
            i++;
            continue;
        }
        /* The root is an overlay on the skeleton: everything the plan
         * would write into a fresh root goes into the skeleton instead. */
        switch (op->kind) {
        case SP_OP_COPY:
            rc = sp_skel_copy(sk, op->src, op->dst + 1, op->mode, op->append);
            op_drop(plan, i);
            if (rc < 0)
                goto skel_fail;
            continue;
        case SP_OP_SYMLINK:
            rc = sp_skel_link(sk, op->src, op->dst + 1);
            op_drop(plan, i);
            if (rc < 0)
                goto skel_fail;
            continue;
        case SP_OP_DIR:
            rc = sp_skel_dir(sk, op->dst + 1, op->mode);
            op_drop(plan, i);
            if (rc < 0)
                goto skel_fail;
            continue;
        case SP_OP_BIND:
        case SP_OP_HIDE:
            rc = sp_skel_point(sk, op->dst + 1, 0755, !op->is_dir);
            break;
        case SP_OP_OVERLAY:
        case SP_OP_TMPFS:
        case SP_OP_PROC:
        case SP_OP_DEV:
            rc = sp_skel_point(sk, op->dst + 1,
                               op->kind == SP_OP_PROC ? 0555 : 0755, false);
            break;
        default:
            break;
        }
        if (rc < 0)
            goto skel_fail;
        i++;
    }
    if (!ly->ro_system) {
        if ((rc = sp_skel_commit(sk, lfd, err)) < 0)
            goto out;
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
    /* The layer dirs: a new workspace takes the spare set a supervisor
     * left for its skeleton (one rename) when there is one. */
    const char *key = sk ? sp_skel_key(sk) : NULL;
    if (key) {
        snprintf(recipe.key, sizeof(recipe.key), "%s", key);
        if (sp_skel_spare_take(lfd, key) == 1) {
            close(upfd);
            upfd = openat(lfd, "up", O_PATH | O_DIRECTORY | O_NOFOLLOW |
                                         O_CLOEXEC);
            if (upfd < 0) {
                rc = sp_error_set(err, errno, "cannot open %s/up", ly->dir);
                goto out;
            }
        }
    }
    if ((rc = make_layer_dirs(upfd, err)) < 0)
        goto out;
    /* Snapshot layers (snapshot.h) go under each overlay's upper. */
    if ((rc = sp_snap_stack_apply(ly->dir, plan, err)) < 0)
        goto out;
    plan->userxattr = userxattr;
    goto out;
skel_fail:
    rc = sp_error_set(err, -rc, "cannot record the workspace skeleton");
out:
    sp_skel_free(sk);
    free(empty);
    free(homelow);
    return rc;
}

int sp_snap_stack_apply(const char *layers_dir, struct sp_mount_plan *plan,
                        sp_error *err)
{
    _cleanup_close_ int lfd = sp_open_dir_at(AT_FDCWD, layers_dir);
    if (lfd < 0)
        return sp_error_set(err, errno, "cannot open %s", layers_dir);
    struct sp_stack s;
    int r = sp_stack_read(lfd, &s);
    if (r < 0)
        return sp_error_set(err, -r, "%s/%s is damaged", layers_dir,
                            SP_WS_STACK_FILE);
    if (s.n == 0)
        return 0;
    /* layers_dir is workspaces/<name>/layers: the store is two up. */
    char store[SP_MAX_PATH];
    int n = snprintf(store, sizeof(store), "%s/../../../%s/%s", layers_dir,
                     SP_SNAP_DIR, SP_STORE_LAYERS);
    if (n < 0 || (size_t)n >= sizeof(store))
        return sp_error_set(err, ENAMETOOLONG, "snapshot store path");
    char real[PATH_MAX];
    if (!realpath(store, real))
        return sp_error_set(err, errno, "the snapshot store of %s", layers_dir);
    /* A layer the stack names must be there: starting without it would
     * show other files than the snapshot's. */
    for (size_t k = 0; k < s.n; k++) {
        char p[PATH_MAX + 32];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", real, s.lid[k]);
        if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode))
            return sp_error_set(err, errno ? errno : ENOTDIR,
                                "snapshot layer %s is missing from %s",
                                s.lid[k], real);
    }
    for (size_t i = 0; i <= plan->n; i++) {
        struct sp_mount_op *op = i < plan->n ? &plan->ops[i] : plan->root;
        if (!op || op->kind != SP_OP_OVERLAY || !op->src)
            continue;
        char id[SP_WS_LAYER_ID_MAX + 1];
        if (sp_ws_layer_id(op->dst, id, sizeof(id)) < 0)
            continue;
        size_t cap = strlen(op->src) + 1 +
                     s.n * (strlen(real) + SP_LID_LEN + 3 + strlen(id));
        char *lower = malloc(cap + 1);
        if (!lower)
            return sp_error_set(err, ENOMEM, "layers");
        size_t len = 0;
        for (size_t k = 0; k < s.n; k++) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof(p), "%s/%s/%s", real, s.lid[k], id);
            struct stat sb;
            if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode))
                continue; /* that layer has nothing for this mount */
            if (strchr(p, ':') || strchr(p, ',') || strchr(p, '\\')) {
                free(lower);
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "the state directory path has ':', ',' "
                                     "or '\\', which an overlay layer "
                                     "cannot take");
            }
            len += (size_t)sprintf(lower + len, "%s:", p);
        }
        if (len == 0) {
            free(lower);
            continue;
        }
        strcpy(lower + len, op->src);
        free((char *)op->src);
        op->src = lower;
    }
    return 0;
}
