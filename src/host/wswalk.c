/* wswalk.c — the walk over a workspace's overlay upper dirs that the diff
 * (wsdiff.c) and an exec's --changes (the supervisor) share (wswalk.h).
 * Runs on the host over what the sandboxed program filled: every step is
 * relative to a directory fd, no symlink is followed and only directories
 * are opened. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wswalk.h"
#include "wsdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "secrets.h"
#include "layerstore.h"
#include "mountplan.h"
#include "state.h"
#include "util.h"
#include "wslayers.h"

const char *const sp_ws_walk_kind_names[D_KINDS] = {"added", "modified",
                                                    "deleted"};

static void emit(struct walk *w, int kind, const struct stat *st)
{
    struct list *l = &w->lists[kind];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            w->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    char *s = sp_printable(w->path);
    if (!s) {
        w->oom = true;
        return;
    }
    if (w->stamps) {
        char stamp[128];
        snprintf(stamp, sizeof(stamp), "\t%d:%llu:%lld.%09ld:%lld:%d", kind,
                 st ? (unsigned long long)st->st_ino : 0ull,
                 st ? (long long)st->st_ctim.tv_sec : 0ll,
                 st ? st->st_ctim.tv_nsec : 0l,
                 st ? (long long)st->st_size : 0ll,
                 st && S_ISDIR(st->st_mode));
        char *t = malloc(strlen(s) + strlen(stamp) + 1);
        if (!t) {
            free(s);
            w->oom = true;
            return;
        }
        strcpy(t, s);
        strcat(t, stamp);
        free(s);
        s = t;
    }
    l->v[l->n++] = s;
}

/* Append "/name" to w->path; false (and truncated) when too long. */
static bool path_push(struct walk *w, size_t len, const char *name)
{
    size_t nl = strlen(name);
    bool slash = len == 0 || w->path[len - 1] != '/';
    if (len + slash + nl + 1 > sizeof(w->path)) {
        w->truncated = true;
        return false;
    }
    if (slash)
        w->path[len++] = '/';
    memcpy(w->path + len, name, nl + 1);
    return true;
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

/* overlayfs marks a directory that hides its lower one: trusted.* as real
 * root, user.* with userxattr (in a user namespace). */
static bool is_opaque(int dirfd)
{
    static const char *const names[] = {"trusted.overlay.opaque",
                                        "user.overlay.opaque"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++) {
        char v[4] = {0};
        ssize_t n = fgetxattr(dirfd, names[i], v, sizeof(v));
        if (n == 1 && v[0] == 'y')
            return true;
    }
    return false;
}

int sp_ws_walk_open_dir(int dirfd, const char *name)
{
    return openat(dirfd, name,
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
}

/* Most dirs merged at one level: the upper dir and the snapshot layers. */
#define MERGE_MAX (1 + SP_SNAP_MAX_DEPTH)

/* Is `name` in any of fds[0..n)? */
static bool in_any(const int *fds, size_t n, const char *name)
{
    struct stat st;
    for (size_t k = 0; k < n; k++)
        if (fstatat(fds[k], name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            return true;
    return false;
}

/* Walk the merged dirs ups[0..n) — top first, as overlayfs stacks them:
 * the upper dir, then the snapshot layers under it (snapshot.h) — against
 * the base dir `low` (-1: none), with w->path[0..len) their path inside
 * the sandbox. An entry counts from the topmost dir that has it. `hidden`:
 * the base is hidden here (an opaque dir, or a non-directory over it in a
 * layer), so its entries missing from every layer were deleted. Takes no
 * fd. */
static void walk_dir(struct walk *w, const int *ups, size_t n, int low,
                     size_t len, bool hidden, unsigned depth)
{
    for (size_t i = 0; i < n && !w->oom; i++) {
        int dfd = fcntl(ups[i], F_DUPFD_CLOEXEC, 3);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!d) {
            if (dfd >= 0)
                close(dfd);
            w->truncated = true;
            continue;
        }
        struct dirent *de;
        while (!w->oom && (de = readdir(d))) {
            const char *name = de->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            if (++w->entries > SP_DIFF_MAX_ENTRIES) {
                w->truncated = true;
                break;
            }
            struct stat st, lst;
            if (fstatat(ups[i], name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue; /* gone meanwhile */
            if (in_any(ups, i, name))
                continue; /* a layer above has it: counted there */
            if (!path_push(w, len, name))
                continue;
            size_t clen = strlen(w->path);
            bool inlower = low >= 0 &&
                           fstatat(low, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                           !is_whiteout(&lst);
            if (is_whiteout(&st)) {
                if (inlower)
                    emit(w, D_DELETED, &st);
            } else if (S_ISDIR(st.st_mode)) {
                bool lowdir = inlower && S_ISDIR(lst.st_mode);
                if (!inlower)
                    emit(w, D_ADDED, &st);
                else if (!lowdir)
                    emit(w, D_MODIFIED, &st); /* a file became a directory */
                if (depth + 1 >= SP_DIFF_MAX_DEPTH) {
                    w->truncated = true;
                } else {
                    /* The directory merges down the layers until one is
                     * opaque, or a layer has a non-directory there. */
                    int c[MERGE_MAX];
                    size_t cn = 0;
                    bool chide = false;
                    for (size_t k = i; k < n && !chide; k++) {
                        struct stat ks;
                        if (k > i) {
                            if (fstatat(ups[k], name, &ks,
                                        AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                            if (!S_ISDIR(ks.st_mode)) {
                                chide = true;
                                break;
                            }
                        }
                        int fd = sp_ws_walk_open_dir(ups[k], name);
                        if (fd < 0) {
                            w->truncated = true; /* unreadable */
                            chide = true;
                            break;
                        }
                        c[cn++] = fd;
                        chide = is_opaque(fd);
                    }
                    int lc = lowdir ? sp_ws_walk_open_dir(low, name) : -1;
                    walk_dir(w, c, cn, lc, clen, chide, depth + 1);
                    if (lc >= 0)
                        close(lc);
                    while (cn)
                        close(c[--cn]);
                }
            } else {
                emit(w, inlower ? D_MODIFIED : D_ADDED, &st);
            }
            w->path[len] = '\0';
        }
        closedir(d);
    }
    if (!hidden || low < 0 || w->oom)
        return;
    /* The base is hidden: what it had and no layer has is gone. */
    int dfd = fcntl(low, F_DUPFD_CLOEXEC, 3);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    struct dirent *de;
    while (!w->oom && (de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (++w->entries > SP_DIFF_MAX_ENTRIES) {
            w->truncated = true;
            break;
        }
        if (in_any(ups, n, name))
            continue; /* listed above */
        if (path_push(w, len, name))
            emit(w, D_DELETED, NULL);
        w->path[len] = '\0';
    }
    closedir(d);
}

int sp_ws_walk_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lower dir of layer `id` (an fd, or -1 for none). */
static int open_lower(int lfd, const char *id, const char *mp,
                      const char *from, const char *rootfs)
{
    char home[SP_WS_LAYER_ID_MAX + 1];
    if (strcmp(id, SP_WS_LAYER_ROOT) == 0) /* a link to the skeleton */
        return openat(lfd, "base", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (strcmp(id, SP_WS_LAYER_WORKSPACE) == 0)
        return from ? open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (sp_ws_layer_id(SP_SANDBOX_HOME, home, sizeof(home)) == 0 &&
        strcmp(id, home) == 0) {
        /* its place in the skeleton; layers/home without one */
        int fd = openat(lfd, "base" SP_SANDBOX_HOME,
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd >= 0 ? fd : sp_ws_walk_open_dir(lfd, "home");
    }
    /* a tree of the --rootfs / --image (docs/images.md) */
    if (rootfs) {
        char p[SP_MAX_PATH * 2];
        snprintf(p, sizeof(p), "%s%s", rootfs, mp);
        return open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    /* a host tree bound read-only in `run` (the base itself) */
    return open(mp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Walk the overlay at mount point mp: its upper dir `up` (-1: none yet)
 * over the snapshot layers' dirs for it (`id` in each of snaps[0..nsnap)),
 * against the base `low`. */
static int walk_layer(struct walk *w, int up, const int *snaps, size_t nsnap,
                      const char *id, int low, const char *mp)
{
    size_t n = strlen(mp);
    if (n >= sizeof(w->path))
        return -ENAMETOOLONG;
    memcpy(w->path, mp, n + 1);
    if (strcmp(mp, "/") == 0)
        n = 1;
    int ups[MERGE_MAX];
    size_t nu = 0;
    bool hidden = false;
    if (up >= 0) {
        ups[nu++] = up;
        hidden = is_opaque(up);
    }
    for (size_t k = 0; k < nsnap && !hidden && nu < MERGE_MAX; k++) {
        int fd = sp_ws_walk_open_dir(snaps[k], id);
        if (fd < 0)
            continue; /* that snapshot has nothing for this mount */
        ups[nu++] = fd;
        hidden = is_opaque(fd);
    }
    walk_dir(w, ups, nu, low, n, hidden, 0);
    for (size_t k = up >= 0 ? 1 : 0; k < nu; k++)
        close(ups[k]);
    return 0;
}

/* Add id to the list of overlays to walk, once. */
static bool id_add(char (*ids)[SP_WS_LAYER_ID_MAX + 1], size_t *n,
                   const char *id)
{
    for (size_t k = 0; k < *n; k++)
        if (strcmp(ids[k], id) == 0)
            return true;
    if (*n >= SP_DIFF_MAX_LAYERS)
        return false;
    snprintf(ids[(*n)++], SP_WS_LAYER_ID_MAX + 1, "%s", id);
    return true;
}

/* The overlay ids in directory fd (up/, or a snapshot layer), into ids. */
static void ids_in(int fd, char (*ids)[SP_WS_LAYER_ID_MAX + 1], size_t *n,
                   struct walk *w)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        char mp[SP_MAX_PATH];
        if (de->d_name[0] == '.' ||
            strcmp(de->d_name, SP_WS_LAYER_WORKSPACE) == 0 ||
            sp_ws_layer_mountpoint(de->d_name, mp, sizeof(mp)) < 0)
            continue;
        if (!id_add(ids, n, de->d_name))
            w->truncated = true;
    }
    closedir(d);
}

/* The workspace's --rootfs / --image tree, from its stored policy. */
static char *rootfs_of(int wsfd)
{
    struct sp_ws_state st = {0};
    sp_error e = {0};
    if (sp_state_read(wsfd, &st, &e) < 0)
        return NULL;
    const char *r = json_string_value(json_object_get(st.policy, "rootfs"));
    char *d = r && r[0] == '/' ? strdup(r) : NULL;
    sp_state_free(&st);
    return d;
}

static char *from_of(int lfd)
{
    int fd = openat(lfd, "from", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char buf[SP_MAX_PATH];
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0 || buf[0] != '/')
        return NULL;
    buf[r] = '\0';
    return strdup(buf);
}

int sp_ws_walk(int wsfd, const char *name, struct walk *w, sp_error *err)
{
    int rc = sp_ws_disk_ensure(wsfd, err); /* mounted after a gc */
    if (rc < 0)
        return rc;
    _cleanup_close_ int lfd = sp_ws_walk_open_dir(wsfd, SP_WS_LAYERS);
    _cleanup_close_ int datafd = sp_ws_walk_open_dir(wsfd, SP_WS_DATA);
    _cleanup_close_ int upfd = -1;
    char *from = lfd >= 0 ? from_of(lfd) : NULL;
    char *rootfs = rootfs_of(wsfd);
    if (datafd < 0) {
        rc = sp_error_set(err, errno, "workspace %s: cannot open its %s dir",
                          name, SP_WS_DATA);
        goto out;
    }
    /* The snapshot layers under the workspace's own upper dirs (after a
     * restore, or in a fork): the diff is against the base through them. */
    int snaps[SP_SNAP_MAX_DEPTH];
    int nsnap = lfd >= 0 ? sp_snap_stack_open(lfd, snaps, SP_SNAP_MAX_DEPTH)
                         : 0;
    if (nsnap < 0) {
        rc = sp_error_set(err, -nsnap, "workspace %s: its snapshot layers",
                          name);
        goto out;
    }
    /* /workspace first: its upper dir is workspace/. */
    int low = lfd >= 0 ? open_lower(lfd, SP_WS_LAYER_WORKSPACE, SP_WS_MOUNT,
                                    from, rootfs)
                       : -1;
    walk_layer(w, datafd, snaps, (size_t)nsnap, SP_WS_LAYER_WORKSPACE, low,
               SP_WS_MOUNT);
    if (low >= 0)
        close(low);
    /* Every other overlay: those with an upper dir, and those only a
     * snapshot layer has (a restored workspace not started since). */
    char (*ids)[SP_WS_LAYER_ID_MAX + 1] =
        calloc(SP_DIFF_MAX_LAYERS, SP_WS_LAYER_ID_MAX + 1);
    size_t nids = 0;
    if (!ids) {
        w->oom = true;
    } else {
        upfd = lfd >= 0 ? sp_ws_walk_open_dir(lfd, "up") : -1;
        if (upfd >= 0)
            ids_in(upfd, ids, &nids, w);
        for (int k = 0; k < nsnap; k++)
            ids_in(snaps[k], ids, &nids, w);
    }
    for (size_t k = 0; k < nids && !w->oom; k++) {
        char mp[SP_MAX_PATH];
        if (sp_ws_layer_mountpoint(ids[k], mp, sizeof(mp)) < 0)
            continue;
        int idfd = upfd >= 0 ? sp_ws_walk_open_dir(upfd, ids[k]) : -1;
        int up = idfd >= 0 ? sp_ws_walk_open_dir(idfd, "upper") : -1;
        if (idfd >= 0)
            close(idfd);
        low = open_lower(lfd, ids[k], mp, from, rootfs);
        walk_layer(w, up, snaps, (size_t)nsnap, ids[k], low, mp);
        if (low >= 0)
            close(low);
        if (up >= 0)
            close(up);
    }
    free(ids);
    for (int k = 0; k < nsnap; k++)
        close(snaps[k]);
    if (w->oom) {
        rc = sp_error_set(err, ENOMEM, "diff");
        goto out;
    }
out:
    free(from);
    free(rootfs);
    return rc;
}

void sp_ws_walk_free(struct walk *w)
{
    for (int k = 0; k < D_KINDS; k++) {
        for (size_t i = 0; i < w->lists[k].n; i++)
            free(w->lists[k].v[i]);
        free(w->lists[k].v);
    }
    free(w);
}


json_t *sp_ws_diff_stamps_at(int wsfd, const char *name, sp_error *err)
{
    struct walk *w = calloc(1, sizeof(*w));
    if (!w) {
        sp_error_set(err, ENOMEM, "diff");
        return NULL;
    }
    w->stamps = true;
    json_t *o = NULL;
    if (sp_ws_walk(wsfd, name, w, err) == 0) {
        json_t *paths = json_object();
        for (int k = 0; k < D_KINDS; k++) {
            for (size_t i = 0; i < w->lists[k].n; i++) {
                char *v = w->lists[k].v[i];
                char *tab = strrchr(v, '\t');
                if (!tab)
                    continue;
                *tab = '\0';
                json_object_set_new(paths, v, json_string(tab + 1));
            }
        }
        o = json_pack("{s:o,s:b}", "paths", paths, "truncated", w->truncated);
    }
    sp_ws_walk_free(w);
    return o;
}

/* kind:ino:ctime:size:dir of a stamp */
static int stamp_kind(const char *st)
{
    return st ? st[0] - '0' : -1;
}

static bool stamp_dir(const char *st)
{
    size_t n = st ? strlen(st) : 0;
    return n && st[n - 1] == '1';
}

static void sorted_set(json_t *o, const char *key, json_t *a)
{
    size_t n = json_array_size(a);
    const char **v = n ? calloc(n, sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_string_value(json_array_get(a, i));
    if (v)
        qsort(v, n, sizeof(*v), sp_ws_walk_cmp_str);
    json_t *out = json_array();
    for (size_t i = 0; v && i < n; i++)
        json_array_append_new(out, json_string(v[i]));
    free(v);
    json_decref(a);
    json_object_set_new(o, key, out);
}

json_t *sp_ws_changes(const json_t *before, const json_t *after)
{
    json_t *cr = json_array(), *ch = json_array(), *de = json_array();
    json_t *bp = json_object_get(before, "paths");
    json_t *ap = json_object_get(after, "paths");
    const char *path;
    json_t *v;
    json_object_foreach(ap, path, v)
    {
        const char *a = json_string_value(v);
        const char *b = json_string_value(json_object_get(bp, path));
        if (b && strcmp(a, b) == 0)
            continue;
        int ka = stamp_kind(a), kb = stamp_kind(b);
        if (ka == D_DELETED) {
            if (kb != D_DELETED)
                json_array_append_new(de, json_string(path));
        } else if (!b) {
            json_array_append_new(ka == D_ADDED ? cr : ch, json_string(path));
        } else if (kb == D_DELETED) {
            json_array_append_new(cr, json_string(path));
        } else if (!stamp_dir(a) || !stamp_dir(b)) {
            /* a directory whose entries changed is not itself changed */
            json_array_append_new(ch, json_string(path));
        }
    }
    json_object_foreach(bp, path, v)
    {
        /* was in the layer, is no more: created earlier, removed now */
        if (!json_object_get(ap, path) && stamp_kind(json_string_value(v)) != D_DELETED)
            json_array_append_new(de, json_string(path));
    }
    json_t *o = json_object();
    sorted_set(o, "created", cr);
    sorted_set(o, "changed", ch);
    sorted_set(o, "deleted", de);
    json_object_set_new(
        o, "truncated",
        json_boolean(json_is_true(json_object_get(before, "truncated")) ||
                     json_is_true(json_object_get(after, "truncated"))));
    return o;
}

