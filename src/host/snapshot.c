/* snapshot.c — snapshots, restore, fork, pause and resume (snapshot.h,
 * sandpit.h, docs/snapshots.md).
 *
 * A snapshot copies each overlay upper dir of a workspace (what it wrote
 * since its last start on its current stack) into a new read-only layer,
 * while every process of the workspace is frozen, then thaws them: running
 * processes live on, and the cost is the size of the changes. Restore and
 * fork cost nothing in data: the workspace's stack file names the snapshot's
 * layers, and at the next start each overlay gets them as lower dirs above
 * its own (overlayfs "lowerdir+"). Restore stops the workspace first, since
 * overlayfs cannot change its layers live.
 *
 * The upper dirs were written by the sandbox: they are walked from dir fd
 * to dir fd with O_NOFOLLOW, only regular files are opened (O_NONBLOCK,
 * checked after open), and the walk is bounded. Freezing finds the
 * workspace's processes by its pid namespace, after checking that the
 * agent pid from state.json is PID 1 of a namespace other than ours and a
 * child of the workspace's supervisor. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "snapshot.h"
#include "wsdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "jsonrpc.h"
#include "sandpit.h"
#include "secrets.h"
#include "state.h"
#include "util.h"
#include "freeze.h"
#include "wsctl.h"
#include "wsdiff.h"
#include "wslayers.h"

/* ---- copying layers ---------------------------------------------------- */

/* A layer's index (<layer>/.index): for each regular file, the stat of
 * the upper file it was copied from and its path in the layer. The next
 * snapshot links (hard link: layers are never written) a file whose upper
 * inode, size, mtime and ctime are unchanged instead of copying it, so a
 * snapshot costs what changed since the last one. */
#define INDEX_FILE ".index"
#define INDEX_MAGIC "SPIX1\n"
#define INDEX_MAX_BYTES (256u << 20)

struct ixrec {
    uint64_t dev, ino, size;
    int64_t ms, mn, cs, cn;
    uint32_t off; /* of the path in names */
    uint16_t len;
};

struct index {
    struct ixrec *v;
    size_t n, cap;
    char *names;
    size_t nlen, ncap;
};

static void index_free(struct index *x)
{
    free(x->v);
    free(x->names);
    memset(x, 0, sizeof(*x));
}

static int index_add(struct index *x, const struct stat *st, const char *path,
                     size_t plen)
{
    if (plen > UINT16_MAX || x->nlen + plen > UINT32_MAX)
        return 0; /* not indexed: copied next time */
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 256;
        struct ixrec *nv = realloc(x->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        x->v = nv;
        x->cap = nc;
    }
    if (x->nlen + plen > x->ncap) {
        size_t nc = x->ncap ? x->ncap * 2 : 16384;
        while (nc < x->nlen + plen)
            nc *= 2;
        char *nn = realloc(x->names, nc);
        if (!nn)
            return -ENOMEM;
        x->names = nn;
        x->ncap = nc;
    }
    memcpy(x->names + x->nlen, path, plen);
    x->v[x->n++] = (struct ixrec){
        (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
        st->st_mtim.tv_sec,   st->st_mtim.tv_nsec,  st->st_ctim.tv_sec,
        st->st_ctim.tv_nsec,  (uint32_t)x->nlen,    (uint16_t)plen};
    x->nlen += plen;
    return 0;
}

static int index_write(int layerfd, const struct index *x)
{
    size_t len = sizeof(INDEX_MAGIC) - 1 + x->n * (7 * 8 + 2) + x->nlen;
    char *buf = malloc(len ? len : 1), *p = buf;
    if (!buf)
        return -ENOMEM;
    memcpy(p, INDEX_MAGIC, sizeof(INDEX_MAGIC) - 1);
    p += sizeof(INDEX_MAGIC) - 1;
    for (size_t i = 0; i < x->n; i++) {
        const struct ixrec *r = &x->v[i];
        uint64_t f[7] = {r->dev,          r->ino,          r->size,
                         (uint64_t)r->ms, (uint64_t)r->mn, (uint64_t)r->cs,
                         (uint64_t)r->cn};
        memcpy(p, f, sizeof(f));
        p += sizeof(f);
        memcpy(p, &r->len, 2);
        p += 2;
        memcpy(p, x->names + r->off, r->len);
        p += r->len;
    }
    int fd = openat(layerfd, INDEX_FILE,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -ENOSPC;
        else
            off += (size_t)n;
    }
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    free(buf);
    return rc;
}

static int ixcmp(const void *a, const void *b)
{
    const struct ixrec *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void index_parse(const char *buf, size_t len, struct index *x);

/* Load a layer's index (sorted for lookups). Anything odd: empty. */
static void index_load(int layerfd, struct index *x)
{
    memset(x, 0, sizeof(*x));
    int fd = openat(layerfd, INDEX_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0)
        return;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size > INDEX_MAX_BYTES) {
        close(fd);
        return;
    }
    size_t len = (size_t)sb.st_size;
    char *buf = malloc(len + 1);
    size_t got = 0;
    while (buf && got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (buf && got == len)
        index_parse(buf, len, x);
    free(buf);
}

long sp_snap_parse_index(const char *buf, size_t len)
{
    struct index x;
    memset(&x, 0, sizeof(x));
    index_parse(buf, len, &x);
    long n = (long)x.n;
    /* every record's path must lie inside the names */
    for (size_t i = 0; i < x.n; i++)
        if ((size_t)x.v[i].off + x.v[i].len > x.nlen)
            abort();
    index_free(&x);
    return n;
}

/* Parse an index's bytes into x (sorted); anything odd ends it. */
static void index_parse(const char *buf, size_t len, struct index *x)
{
    if (len < sizeof(INDEX_MAGIC) - 1 ||
        memcmp(buf, INDEX_MAGIC, sizeof(INDEX_MAGIC) - 1) != 0)
        return;
    const char *p = buf + sizeof(INDEX_MAGIC) - 1, *end = buf + len;
    while (p < end) {
        uint64_t f[7];
        uint16_t pl;
        if ((size_t)(end - p) < sizeof(f) + 2)
            break;
        memcpy(f, p, sizeof(f));
        memcpy(&pl, p + sizeof(f), 2);
        p += sizeof(f) + 2;
        if ((size_t)(end - p) < pl)
            break;
        struct stat st;
        memset(&st, 0, sizeof(st));
        st.st_dev = (dev_t)f[0];
        st.st_ino = (ino_t)f[1];
        st.st_size = (off_t)f[2];
        st.st_mtim.tv_sec = (time_t)f[3];
        st.st_mtim.tv_nsec = (long)f[4];
        st.st_ctim.tv_sec = (time_t)f[5];
        st.st_ctim.tv_nsec = (long)f[6];
        if (index_add(x, &st, p, pl) < 0)
            break;
        p += pl;
    }
    if (x->n)
        qsort(x->v, x->n, sizeof(*x->v), ixcmp);
}

struct copyctx {
    size_t entries;
    uint64_t bytes;
    uint64_t copied; /* bytes copied (not linked) */
    uint64_t files;
    bool root;              /* euid 0: trusted.* xattrs, chown */
    bool skip_index;        /* copying a layer's root: not its .index */
    char path[SP_MAX_PATH]; /* where we are, relative to the layer */
    size_t plen;
    struct index *prev; /* the last snapshot's index, or NULL */
    int prevfd;         /* its layer */
    struct index *out;  /* the new layer's index, or NULL */
};

/* Link the previous layer's copy of an unchanged upper file st as `name`
 * in dfd. 0, or < 0 (the caller copies). */
static int link_prev(struct copyctx *c, const struct stat *st, int dfd,
                     const char *name)
{
    if (!c->prev || !c->prev->n)
        return -ENOENT;
    struct ixrec key = {.dev = (uint64_t)st->st_dev,
                        .ino = (uint64_t)st->st_ino};
    struct ixrec *r = bsearch(&key, c->prev->v, c->prev->n, sizeof(*r), ixcmp);
    if (!r || r->size != (uint64_t)st->st_size || r->ms != st->st_mtim.tv_sec ||
        r->mn != st->st_mtim.tv_nsec || r->cs != st->st_ctim.tv_sec ||
        r->cn != st->st_ctim.tv_nsec)
        return -ENOENT;
    char rel[UINT16_MAX + 1];
    memcpy(rel, c->prev->names + r->off, r->len);
    rel[r->len] = '\0';
    struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, c->prevfd, rel, &how, sizeof(how));
    if (fd < 0)
        return -errno;
    struct stat lb;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int rc = 0;
    if (fstat(fd, &lb) < 0 || !S_ISREG(lb.st_mode) ||
        lb.st_size != st->st_size ||
        (lb.st_mode & 07777) != (st->st_mode & 07777))
        rc = -ESTALE;
    else if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* c->path with "/name" appended (c->plen is the caller's to set to the
 * returned length, and back); (size_t)-1 when it does not fit (nothing
 * below is indexed then). */
static size_t path_push(struct copyctx *c, const char *name)
{
    size_t l = c->plen, n = strlen(name);
    if (l == (size_t)-1 || l + n + 2 > sizeof(c->path))
        return (size_t)-1;
    if (l)
        c->path[l++] = '/';
    memcpy(c->path + l, name, n + 1);
    return l + n;
}

static bool is_opaque(int dfd)
{
    char v[4];
    ssize_t n = fgetxattr(dfd, "trusted.overlay.opaque", v, sizeof(v));
    if (n == 1 && v[0] == 'y')
        return true;
    n = fgetxattr(dfd, "user.overlay.opaque", v, sizeof(v));
    return n == 1 && v[0] == 'y';
}

/* Every xattr of sfd onto dfd; the overlay ones must make it. */
static int copy_xattrs(int sfd, int dfd)
{
    char names[8192];
    ssize_t n = flistxattr(sfd, names, sizeof(names));
    if (n < 0)
        return errno == ENOTSUP ? 0 : -errno;
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
        const char *nm = names + off;
        char val[4096];
        ssize_t vl = fgetxattr(sfd, nm, val, sizeof(val));
        bool needed = strstr(nm, ".overlay.") != NULL;
        if (vl < 0) {
            if (needed)
                return -errno;
            continue;
        }
        if (fsetxattr(dfd, nm, val, (size_t)vl, 0) < 0 && needed)
            return -errno;
    }
    return 0;
}

static int copy_data(int in, int out, uint64_t size)
{
    if (size == 0)
        return 0;
    if (ioctl(out, FICLONE, in) == 0)
        return 0;
    uint64_t done = 0;
    bool plain = false;
    char buf[65536];
    while (done < size) {
        ssize_t n;
        if (!plain) {
            n = copy_file_range(in, NULL, out, NULL, SP_COPY_MAX, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL ||
                          errno == ENOSYS || errno == EOPNOTSUPP)) {
                plain = true;
                continue;
            }
        } else {
            n = read(in, buf, sizeof(buf));
            if (n > 0) {
                for (ssize_t o = 0; o < n;) {
                    ssize_t w = write(out, buf + o, (size_t)(n - o));
                    if (w < 0 && errno == EINTR)
                        continue;
                    if (w <= 0)
                        return w < 0 ? -errno : -ENOSPC;
                    o += w;
                }
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break; /* it shrank while frozen? take what is there */
        done += (uint64_t)n;
    }
    return 0;
}

/* Owner, mode and times of st onto fd (a symlink: name in dirfd). */
static int copy_meta(const struct copyctx *c, int fd, const struct stat *st)
{
    if (fchown(fd, st->st_uid, st->st_gid) < 0 && (c->root || errno != EPERM))
        return -errno;
    if (fchmod(fd, st->st_mode & 07777) < 0)
        return -errno;
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (futimens(fd, ts) < 0)
        return -errno;
    return 0;
}

/* Open `name` of sfd for reading (flags: O_DIRECTORY or 0), making it
 * readable for a moment when its mode says no (it is ours). */
static int open_src(int sfd, const char *name, const struct stat *st, int dir)
{
    int fl = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | dir;
    int fd = openat(sfd, name, fl);
    if (fd >= 0 || errno != EACCES)
        return fd < 0 ? -errno : fd;
    mode_t need = dir ? 0500 : 0400;
    if (sp_chmod_nofollow(sfd, name, (st->st_mode & 07777) | need) < 0)
        return -EACCES;
    fd = openat(sfd, name, fl);
    int e = errno;
    if (sp_chmod_nofollow(sfd, name, st->st_mode & 07777) < 0 && fd >= 0) {
        e = errno;
        close(fd);
        fd = -1;
    }
    return fd < 0 ? -e : fd;
}

static int copy_dir(struct copyctx *c, int sfd, int dfd, bool merge, int depth);

/* Copy entry `name` of sfd into dfd. With merge, dfd holds a lower layer
 * and the entry goes over it as overlayfs would show it. */
static int copy_entry(struct copyctx *c, int sfd, int dfd, const char *name,
                      bool merge, int depth)
{
    if (++c->entries > SP_SNAP_MAX_ENTRIES)
        return -E2BIG;
    struct stat st;
    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        if (depth >= SP_SNAP_MAX_TREE_DEPTH)
            return -ELOOP;
        /* A directory without r-x for us (chmod 000 inside) gets u+rx for
         * the walk and its mode back after it. */
        bool fixed = false;
        if (!c->root && (st.st_mode & 0500) != 0500) {
            if (sp_chmod_nofollow(sfd, name, (st.st_mode & 07777) | 0500) < 0)
                return -errno;
            fixed = true;
        }
        int in = open_src(sfd, name, &st, O_DIRECTORY);
        if (in < 0) {
            if (fixed && sp_chmod_nofollow(sfd, name, st.st_mode & 07777) < 0)
                return -errno;
            return in;
        }
        bool into = false;
        if (merge) {
            struct stat db;
            into = fstatat(dfd, name, &db, AT_SYMLINK_NOFOLLOW) == 0 &&
                   S_ISDIR(db.st_mode) && !is_opaque(in);
            if (!into) {
                int r = sp_rm_rf_at(dfd, name);
                if (r < 0) {
                    close(in);
                    return r;
                }
            }
        }
        int out = -1;
        if (!into && mkdirat(dfd, name, 0700) < 0)
            out = -errno;
        else if (into && sp_chmod_nofollow(dfd, name, 0700) < 0)
            out = -errno; /* writable while we fill it */
        else if ((out = sp_open_dir_at(dfd, name)) < 0)
            out = -errno;
        int r = out;
        if (out >= 0) {
            size_t saved = c->plen;
            c->plen = path_push(c, name);
            r = copy_dir(c, in, out, into, depth + 1);
            c->plen = saved;
            if (r == 0)
                r = copy_xattrs(in, out);
            if (r == 0)
                r = copy_meta(c, out, &st);
            close(out);
        }
        close(in);
        if (fixed && sp_chmod_nofollow(sfd, name, st.st_mode & 07777) < 0 && r == 0)
            r = -errno;
        return r;
    }
    if (merge) {
        int r = sp_rm_rf_at(dfd, name);
        if (r < 0)
            return r;
    }
    if (S_ISREG(st.st_mode)) {
        size_t saved = c->plen;
        c->plen = path_push(c, name);
        bool indexed = c->plen != (size_t)-1;
        int r = -ENOENT;
        if (indexed && !merge)
            r = link_prev(c, &st, dfd, name);
        if (r == 0 && c->out)
            r = index_add(c->out, &st, c->path, c->plen);
        c->plen = saved;
        if (r == 0) {
            c->bytes += (uint64_t)st.st_size;
            c->files++;
            return 0;
        }
        int in = open_src(sfd, name, &st, 0);
        if (in < 0)
            return in;
        struct stat s2;
        if (fstat(in, &s2) < 0 || !S_ISREG(s2.st_mode) ||
            s2.st_ino != st.st_ino) {
            close(in);
            return -EAGAIN; /* it changed under us: not frozen? */
        }
        int out =
            openat(dfd, name,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0) {
            int e = errno;
            close(in);
            return -e;
        }
        r = copy_data(in, out, (uint64_t)s2.st_size);
        if (r == 0)
            r = copy_xattrs(in, out);
        if (r == 0)
            r = copy_meta(c, out, &s2);
        if (close(out) < 0 && r == 0)
            r = -errno;
        close(in);
        if (r == 0 && indexed && c->out) {
            /* keyed by the upper file as stat'ed before the copy; a
             * chmod of an unreadable one moved its ctime: not linked */
            c->plen = path_push(c, name);
            r = index_add(c->out, &st, c->path, c->plen);
            c->plen = saved;
        }
        c->bytes += (uint64_t)s2.st_size;
        c->copied += (uint64_t)s2.st_size;
        c->files++;
        return r;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[SP_MAX_PATH + 1];
        ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        if (symlinkat(target, dfd, name) < 0)
            return -errno;
        if (fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) <
                0 &&
            (c->root || errno != EPERM))
            return -errno;
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
        c->files++;
        return 0;
    }
    if (S_ISSOCK(st.st_mode))
        return 0; /* a socket file means nothing without its listener */
    /* A whiteout (char 0/0), a fifo, or (as root) a device. */
    if (mknodat(dfd, name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0)
        return -errno;
    if (fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 &&
        (c->root || errno != EPERM))
        return -errno;
    return 0;
}

static int copy_dir(struct copyctx *c, int sfd, int dfd, bool merge, int depth)
{
    int dup = fcntl(sfd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0)
        return -errno;
    DIR *d = fdopendir(dup);
    if (!d) {
        int e = errno;
        close(dup);
        return -e;
    }
    rewinddir(d);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (depth == 0 && c->skip_index && strcmp(de->d_name, INDEX_FILE) == 0)
            continue;
        rc = copy_entry(c, sfd, dfd, de->d_name, merge, depth);
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(d);
    return rc;
}

/* The uppers of a workspace (wsfd) as (id, dir fd) pairs, one at a time. */
typedef int (*upper_fn)(void *ctx, const char *id, int upfd);

static int each_upper(int wsfd, upper_fn fn, void *ctx)
{
    int rc = 0;
    _cleanup_close_ int data = sp_open_dir_at(wsfd, SP_WS_DATA);
    if (data >= 0 && (rc = fn(ctx, SP_WS_LAYER_WORKSPACE, data)) < 0)
        return rc;
    _cleanup_close_ int up =
        openat(wsfd, SP_WS_LAYERS "/up",
               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (up < 0)
        return 0;
    DIR *d = fdopendir(fcntl(up, F_DUPFD_CLOEXEC, 3));
    if (!d)
        return -errno;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        const char *id = de->d_name;
        char mp[SP_MAX_PATH];
        if (id[0] == '.' || strcmp(id, SP_WS_LAYER_WORKSPACE) == 0 ||
            sp_ws_layer_mountpoint(id, mp, sizeof(mp)) < 0)
            continue;
        int idfd = sp_open_dir_at(up, id);
        if (idfd < 0)
            continue;
        int u = sp_open_dir_at(idfd, "upper");
        close(idfd);
        if (u < 0)
            continue;
        rc = fn(ctx, id, u);
        close(u);
    }
    closedir(d);
    return rc;
}

struct snapcopy {
    struct copyctx c;
    int layerfd;
    bool merge;
};

static int copy_one_upper(void *ctx, const char *id, int upfd)
{
    struct snapcopy *sc = ctx;
    struct stat st;
    if (fstat(upfd, &st) < 0)
        return -errno;
    int out = -1;
    if (sc->merge) {
        out = sp_mkdir_open(sc->layerfd, id, 0700);
    } else {
        if (mkdirat(sc->layerfd, id, 0700) < 0)
            return -errno;
        out = sp_open_dir_at(sc->layerfd, id);
        if (out < 0)
            out = -errno;
    }
    if (out < 0)
        return out;
    sc->c.plen = 0;
    sc->c.plen = path_push(&sc->c, id);
    int r = copy_dir(&sc->c, upfd, out, sc->merge, 1);
    if (r == 0)
        r = copy_xattrs(upfd, out);
    if (r == 0)
        r = copy_meta(&sc->c, out, &st);
    close(out);
    return r;
}

/* Snapshots count toward their workspace's disk limit (docs/disk.md):
 * the layers its snapshots own plus what it holds now (an upper bound of
 * the new layer) must fit in its image's size, or the snapshot is refused
 * before anything is copied. */
static int snap_disk_check(int wsfd, const char *name, sp_error *err)
{
    struct sp_ws_disk_usage du;
    if (sp_ws_disk_usage(wsfd, &du) != 1)
        return 0; /* no image: no limit */
    char *list = sp_ws_snapshots_json(name, NULL);
    json_t *a = list ? json_loads(list, 0, NULL) : NULL;
    free(list);
    uint64_t owned = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        json_int_t s = json_integer_value(json_object_get(v, "size"));
        if (s > 0)
            owned += (uint64_t)s;
    }
    json_decref(a);
    if (du.used + owned <= du.size)
        return 0;
    return sp_error_setk(err, SP_ERR_USAGE, ENOSPC,
                         "workspace %s: its snapshots (%llu bytes) and its "
                         "files (%llu bytes) would pass its disk limit "
                         "(%llu bytes usable): remove snapshots or files "
                         "first", name, (unsigned long long)owned,
                         (unsigned long long)du.used,
                         (unsigned long long)du.size);
}

SP_EXPORT int sp_ws_snapshot(const char *name, const char *snap,
                             sp_ws_snapshot_info *info, sp_error *err)
{
    int r = sp_snap_check_names(name, snap, err);
    if (r < 0)
        return r;
    uint64_t t0 = sp_now_us();
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    if ((r = sp_ws_disk_ensure(wsfd, err)) < 0) /* mounted after a gc */
        return r;
    if ((r = snap_disk_check(wsfd, name, err)) < 0)
        return r;
    _cleanup_close_ int lfd = sp_open_dir_at(wsfd, SP_WS_LAYERS);
    if (lfd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EOPNOTSUPP,
                             "workspace %s has no copy-on-write layers (made "
                             "by an older sandpit): no snapshots",
                             name);
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = sp_store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    _cleanup_close_ int sw = sp_store_ws_dir(storefd, name, true);
    if (sw < 0)
        return sp_error_set(err, -sw, "cannot create the snapshot dir of %s",
                            name);
    json_t *old = sp_store_meta_read(sw, snap);
    if (old) {
        json_decref(old);
        return sp_error_setk(err, SP_ERR_USAGE, EEXIST,
                             "workspace %s already has a snapshot %s", name,
                             snap);
    }
    if (sp_store_count_snaps(sw) >= SP_SNAP_MAX_PER_WS)
        return sp_error_setk(err, SP_ERR_USAGE, ENOSPC,
                             "workspace %s has %d snapshots, the most it may "
                             "have (sandpit snapshot rm)",
                             name, SP_SNAP_MAX_PER_WS);
    struct sp_stack cur;
    if ((r = sp_stack_read(lfd, &cur)) < 0)
        return sp_error_set(err, -r,
                            "workspace %s: its layer stack is "
                            "damaged",
                            name);
    struct sp_ws_state st;
    if ((r = sp_state_read(wsfd, &st, err)) < 0)
        return r;
    json_t *policy = json_incref(st.policy);
    sp_state_free(&st);

    /* Freeze (unless paused already, or stopped: nothing writes then). */
    _cleanup_close_ int pl = sp_freeze_pause_lock(wsfd, err);
    if (pl < 0) {
        json_decref(policy);
        return pl;
    }
    char how[SP_MAX_PATH + 64] = "";
    struct sp_tree ns;
    bool froze = false;
    char paused[SP_MAX_PATH + 64];
    sp_freeze_read_paused(wsfd, paused, sizeof(paused));
    /* The last snapshot's index, read before anything is frozen. */
    bool merge = cur.n + 1 > SP_SNAP_MAX_DEPTH;
    _cleanup_close_ int layers = sp_open_dir_at(storefd, SP_STORE_LAYERS);
    struct index prev = {0}, outx = {0};
    _cleanup_close_ int prevfd = -1;
    char last[SP_LID_LEN + 2] = "";
    int lsf =
        openat(lfd, SP_LAST_SNAPSHOT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (lsf >= 0) {
        ssize_t n = read(lsf, last, SP_LID_LEN);
        close(lsf);
        last[n > 0 ? n : 0] = '\0';
        if (!merge && layers >= 0 && sp_lid_valid(last) &&
            (prevfd = sp_open_dir_at(layers, last)) >= 0)
            index_load(prevfd, &prev);
    }
    uint64_t t_frozen = 0;
    if (!paused[0] && sp_ws_running_at(wsfd)) {
        pid_t agent;
        if ((r = sp_freeze_agent_of(wsfd, name, &agent, &ns, err)) == 0)
            t_frozen = sp_now_us();
        if (r < 0 || (r = sp_freeze_ns(name, &ns, how, sizeof(how), err)) < 0) {
            json_decref(policy);
            index_free(&prev);
            return r;
        }
        froze = true;
    }

    char lid[SP_LID_LEN + 1], tmpname[SP_LID_LEN + 8];
    sp_lid_new(lid);
    snprintf(tmpname, sizeof(tmpname), ".tmp-%s", lid);
    int layerfd = layers >= 0 ? sp_mkdir_open(layers, tmpname, 0700) : -ENOENT;
    struct snapcopy sc = {.c = {.root = geteuid() == 0,
                                .prev = prevfd >= 0 ? &prev : NULL,
                                .prevfd = prevfd,
                                .out = merge ? NULL : &outx},
                          .layerfd = layerfd};
    if (layerfd < 0) {
        r = layerfd;
    } else if (merge) {
        /* Past the depth bound: the whole stack and the uppers become one
         * layer, bottom first, each over the one below. */
        sc.merge = true;
        r = 0;
        for (size_t i = cur.n; r == 0 && i-- > 0;) {
            int src = sp_open_dir_at(layers, cur.lid[i]);
            if (src < 0) {
                r = -errno;
                break;
            }
            sc.c.plen = 0;
            sc.c.skip_index = true;
            r = copy_dir(&sc.c, src, layerfd, true, 0);
            sc.c.skip_index = false;
            close(src);
        }
        if (r == 0)
            r = each_upper(wsfd, copy_one_upper, &sc);
    } else {
        r = each_upper(wsfd, copy_one_upper, &sc);
    }
    if (froze)
        sp_freeze_thaw(how, &ns);
    uint64_t t_thawed = sp_now_us();
    if (r == 0 && !merge)
        r = index_write(layerfd, &outx);
    index_free(&prev);
    index_free(&outx);
    if (layerfd >= 0)
        close(layerfd);
    if (r == 0 && renameat(layers, tmpname, layers, lid) < 0)
        r = -errno;
    json_t *m = NULL;
    if (r == 0) {
        json_t *stack = json_array();
        json_array_append_new(stack, json_string(lid));
        for (size_t i = 0; !merge && i < cur.n; i++)
            json_array_append_new(stack, json_string(cur.lid[i]));
        struct sp_ws_layers ly;
        char datadir[SP_MAX_PATH * 2];
        snprintf(datadir, sizeof(datadir), "%s/%s/%s/%s", statedir, SP_WS_DIR,
                 name, SP_WS_DATA);
        int lr = sp_ws_layers_load(datadir, &ly, NULL);
        m = json_pack("{s:s,s:s,s:I,s:o,s:I,s:I,s:b,s:O?,s:s?,s:b}", "name",
                      snap, "workspace", name, "created",
                      (json_int_t)sp_unix_now(), "layers", stack, "size",
                      (json_int_t)sc.c.bytes, "files", (json_int_t)sc.c.files,
                      "merged", merge, "policy", policy, "from",
                      lr > 0 ? ly.from : NULL, "read_only_system",
                      lr > 0 && ly.ro_system);
        if (lr > 0)
            sp_ws_layers_free(&ly);
        char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
        char fn[SP_WS_NAME_MAX + 8];
        snprintf(fn, sizeof(fn), "%s.json", snap);
        r = text ? sp_write_atomic(sw, fn, text, strlen(text)) : -ENOMEM;
        free(text);
    }
    json_decref(policy);
    if (r < 0) {
        json_decref(m);
        if (layers >= 0) {
            sp_rm_rf_at(layers, tmpname);
            sp_rm_rf_at(layers, lid);
        }
        if (r == -E2BIG || r == -ELOOP)
            return sp_error_setk(err, SP_ERR_USAGE, -r,
                                 "snapshot %s of %s: more than %d entries or "
                                 "%d directory levels; nothing was kept",
                                 snap, name, SP_SNAP_MAX_ENTRIES,
                                 SP_SNAP_MAX_TREE_DEPTH);
        return sp_error_set(err, -r,
                            "snapshot %s of %s failed; nothing was "
                            "kept",
                            snap, name);
    }
    /* What the next snapshot links against. */
    sp_write_atomic(lfd, SP_LAST_SNAPSHOT_FILE, lid, SP_LID_LEN);
    if (info) {
        memset(info, 0, sizeof(*info));
        info->bytes = sc.c.bytes;
        info->copied = sc.c.copied;
        info->files = sc.c.files;
        info->frozen_us = froze ? t_thawed - t_frozen : 0;
        info->total_us = sp_now_us() - t0;
        info->merged = merge;
        info->depth = merge ? 1 : (int)cur.n + 1;
    }
    json_decref(m);
    return 0;
}

SP_EXPORT char *sp_ws_snapshots_json(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return NULL;
    _cleanup_close_ int storefd = sp_store_open(statedir, err);
    if (storefd < 0)
        return NULL;
    json_t *a = json_array();
    _cleanup_close_ int sw = sp_store_ws_dir(storefd, name, false);
    int dup = sw >= 0 ? fcntl(sw, F_DUPFD_CLOEXEC, 3) : -1;
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 ||
            strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char sn[NAME_MAX + 1];
        snprintf(sn, sizeof(sn), "%.*s", (int)(l - 5), de->d_name);
        json_t *m = sp_store_meta_read(sw, sn);
        if (!m)
            continue;
        json_t *o = json_pack(
            "{s:O,s:O,s:O,s:O,s:I}", "name", json_object_get(m, "name"),
            "created", json_object_get(m, "created"), "size",
            json_object_get(m, "size"), "files", json_object_get(m, "files"),
            "depth", (json_int_t)json_array_size(json_object_get(m, "layers")));
        if (o)
            json_array_append_new(a, o);
        json_decref(m);
    }
    if (d)
        closedir(d);
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!s)
        sp_error_set(err, ENOMEM, "snapshot list");
    return s;
}

SP_EXPORT int sp_ws_snapshot_rm(const char *name, const char *snap,
                                sp_error *err)
{
    int r = sp_snap_check_names(name, snap, err);
    if (r < 0)
        return r;
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = sp_store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    _cleanup_close_ int sw = sp_store_ws_dir(storefd, name, false);
    char fn[SP_WS_NAME_MAX + 8];
    snprintf(fn, sizeof(fn), "%s.json", snap);
    if (sw < 0 || unlinkat(sw, fn, 0) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                             "workspace %s has no snapshot %s", name, snap);
    sp_store_gc_layers(statedir, storefd);
    return 0;
}

SP_EXPORT int sp_ws_fork(const char *name, const char *snap,
                         const char *newname, const sp_policy *p, sp_error *err)
{
    return sp_snap_fork(name, snap, newname, p, 0, err);
}

/* What a workspace's files stand on, from its policy as JSON, into buf:
 * "image X", "rootfs DIR", or "" for the host's system files. */
static void snap_base(const json_t *pol, char *buf, size_t len)
{
    const char *img = json_string_value(json_object_get(pol, "image"));
    const char *root = json_string_value(json_object_get(pol, "rootfs"));
    if (img)
        snprintf(buf, len, "image %s", img);
    else if (root)
        snprintf(buf, len, "rootfs %s", root);
    else
        snprintf(buf, len, "%s", "");
}

int sp_snap_fork(const char *name, const char *snap, const char *newname,
                 const sp_policy *p, double idle_timeout, sp_error *err)
{
    int r = sp_snap_check_names(name, snap, err);
    if (r < 0 || (r = sp_snap_check_names(newname, NULL, err)) < 0)
        return r;
    char statedir[SP_MAX_PATH];
    if ((r = sp_state_dir(statedir, sizeof(statedir), err)) < 0)
        return r;
    json_t *m;
    {
        _cleanup_close_ int lock = -1;
        _cleanup_close_ int storefd = sp_store_open_locked(statedir, &lock, err);
        if (storefd < 0)
            return storefd;
        struct sp_stack s;
        if (!(m = sp_store_snap_get(storefd, name, snap, &s, err)))
            return -ENOENT;
    }
    sp_policy *own = NULL;
    if (!p) {
        json_t *pj = json_object_get(m, "policy");
        char *text = json_is_object(pj) ? json_dumps(pj, JSON_COMPACT) : NULL;
        char datadir[SP_MAX_PATH * 2];
        snprintf(datadir, sizeof(datadir), "%s/%s/%s/%s", statedir, SP_WS_DIR,
                 name, SP_WS_DATA);
        r = text ? sp_ws_policy_from_json(text, datadir, &own, err)
                 : sp_error_set(err, EINVAL, "snapshot %s has no policy", snap);
        free(text);
        if (r < 0) {
            json_decref(m);
            return r;
        }
        p = own;
    }
    const char *from = json_string_value(json_object_get(m, "from"));
    if (from) {
        struct stat sb;
        if (stat(from, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
            json_decref(m);
            sp_policy_free(own);
            return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                                 "snapshot %s: its --from %s is gone", snap,
                                 from);
        }
    }
    /* The snapshot's layers are changes to its base (an image, a --rootfs
     * dir, or the host's system files): a fork on another base would show
     * a mix of the two. It must stand on the same one. */
    char *pt = sp_policy_to_json(p, NULL);
    json_t *pj = pt ? json_loads(pt, 0, NULL) : NULL;
    free(pt);
    char sb[SP_MAX_PATH + 16], fb[SP_MAX_PATH + 16];
    snap_base(json_object_get(m, "policy"), sb, sizeof(sb));
    snap_base(pj, fb, sizeof(fb));
    if (!pj || strcmp(sb, fb) != 0) {
        r = pj ? sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                               "snapshot %s of %s is on %s: a fork must be "
                               "too (it was asked to be on %s)",
                               snap, name,
                               sb[0] ? sb : "the host's system files",
                               fb[0] ? fb : "the host's system files")
               : sp_error_set(err, ENOMEM, "fork");
        json_decref(pj);
        json_decref(m);
        sp_policy_free(own);
        return r;
    }
    json_decref(pj);
    sp_ws_create_opts o = {
        .name = newname,
        .idle_timeout = idle_timeout,
        .from = from,
        .read_only_system =
            json_is_true(json_object_get(m, "read_only_system")),
        .snapshot_ws = name,
        .snapshot = snap,
    };
    char got[SP_WS_NAME_MAX + 1];
    r = sp_ws_create(p, &o, got, sizeof(got), err);
    json_decref(m);
    sp_policy_free(own);
    return r;
}

static int restore_stack(const char *name, const char *snap,
                         const struct sp_secrets *sec,
                         const sp_secret *secrets, size_t n_secrets,
                         void (*before_stop)(void *arg), void *arg,
                         bool *restarted, sp_error *err)
{
    int r;
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        sp_snap_open_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int storefd = sp_store_open(statedir, err);
    if (storefd < 0)
        return storefd;
    struct sp_stack s;
    {
        /* Checked before anything stops: a missing snapshot changes nothing. */
        _cleanup_close_ int lock = sp_store_lock(storefd, err);
        if (lock < 0)
            return lock;
        json_t *m = sp_store_snap_get(storefd, name, snap, &s, err);
        if (!m)
            return -ENOENT;
        json_decref(m);
    }
    int lockfd = sp_state_lock(wsfd, false);
    bool was_running = lockfd == -EWOULDBLOCK;
    /* A running workspace with secrets could not start again without
     * them (secrets.h): refuse before stopping it, as reset does. */
    if (was_running && (r = sp_secrets_check_names(wsfd, name, sec, err)) < 0)
        return sp_error_prefix(err, "restore %s: give them with --secret, "
                               "or stop it, restore it and start it with "
                               "them", name);
    if (was_running) {
        if (before_stop)
            before_stop(arg);
        if ((r = sp_ws_stop(name, err)) < 0)
            return r;
        lockfd = sp_state_lock(wsfd, true);
    }
    if (lockfd < 0)
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    _cleanup_close_ int lock = sp_store_lock(storefd, err);
    if (lock < 0) {
        close(lockfd);
        return lock;
    }
    json_t *m = sp_store_snap_get(storefd, name, snap, &s, err);
    _cleanup_close_ int lfd = sp_open_dir_at(wsfd, SP_WS_LAYERS);
    r = !m        ? -ENOENT
        : lfd < 0 ? sp_error_set(err, errno, "workspace %s has no layers", name)
                  : 0;
    json_decref(m);
    if (r == 0 && (r = sp_stack_write(lfd, &s)) < 0)
        sp_error_set(err, -r, "workspace %s: cannot write its layer stack",
                     name);
    if (r == 0)
        r = sp_ws_layers_clear(wsfd, err);
    if (r == 0)
        sp_store_gc_layers(statedir, storefd);
    close(lockfd);
    if (r < 0)
        return sp_error_prefix(err, "restore %s", name);
    if (was_running) {
        if ((r = sp_ws_start_secrets(name, secrets, n_secrets, err)) < 0)
            return r;
        if (restarted)
            *restarted = true;
    }
    return 0;
}

int sp_snap_restore(const char *name, const char *snap,
                    const sp_secret *secrets, size_t n_secrets,
                    void (*before_stop)(void *arg), void *arg,
                    bool *restarted, sp_error *err)
{
    if (restarted)
        *restarted = false;
    int r = sp_snap_check_names(name, snap, err);
    if (r < 0)
        return r;
    /* Only to check the names: the values go to sp_ws_start_secrets. */
    struct sp_secrets *sec = NULL;
    if ((r = sp_secrets_new(secrets, n_secrets, &sec, err)) < 0)
        return r;
    r = restore_stack(name, snap, sec, secrets, n_secrets, before_stop, arg,
                      restarted, err);
    sp_secrets_free(sec);
    return r;
}


SP_EXPORT int sp_ws_checkpoint(const char *name, const char *snap,
                               sp_error *err)
{
    int r = sp_snap_check_names(name, snap, err);
    if (r < 0)
        return r;
    return sp_error_setk(err, SP_ERR_USAGE, EOPNOTSUPP,
                         "checkpoint --processes: not supported by this "
                         "sandpit (CRIU cannot restore a workspace's user and "
                         "pid namespaces with its seccomp and Landlock state "
                         "here); nothing was changed. `sandpit snapshot %s "
                         "%s` saves the files",
                         name, snap);
}
