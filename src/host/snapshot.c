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
#include "workspace.h"
#include "wsdiff.h"
#include "wslayers.h"

#define LID_LEN 18 /* "l-" and 16 hex digits */
#define STORE_LAYERS "layers"
#define STORE_WS "ws"
#define STORE_LOCK "lock"
#define LAST_SNAPSHOT_FILE "last-snapshot"

/* ---- small helpers ----------------------------------------------------- */

static int open_dir_at(int at, const char *name)
{
    return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int mkdir_open(int at, const char *name, mode_t mode)
{
    if (mkdirat(at, name, mode) < 0 && errno != EEXIST)
        return -errno;
    int fd = open_dir_at(at, name);
    return fd < 0 ? -errno : fd;
}

static bool lid_valid(const char *s)
{
    if (strlen(s) != LID_LEN || strncmp(s, "l-", 2) != 0)
        return false;
    for (size_t i = 2; i < LID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void new_lid(char *buf)
{
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = sp_now_us() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(r));
    }
    snprintf(buf, LID_LEN + 1, "l-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

static int check_names(const char *ws, const char *snap, sp_error *err)
{
    if (!sp_ws_name_valid(ws))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid workspace name '%.80s'", ws ? ws : "");
    if (snap && !sp_ws_name_valid(snap))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid snapshot name '%.80s' (use 1 to 63 of "
                             "a-z 0-9 _ . -, starting with a letter or digit)",
                             snap);
    return 0;
}

/* The store (snapshots/ with layers/ and ws/) of the state dir. */
static int open_store(const char *statedir, sp_error *err)
{
    /* The state dir is the user's own setting and may be named through a
     * symlink (as create and start allow); what is below it is not. */
    _cleanup_close_ int sd =
        open(statedir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sd < 0)
        return sp_error_set(err, errno, "cannot open %s", statedir);
    int fd = mkdir_open(sd, SP_SNAP_DIR, 0700);
    if (fd < 0)
        return sp_error_set(err, -fd, "cannot open %s/%s", statedir,
                            SP_SNAP_DIR);
    int a = mkdir_open(fd, STORE_LAYERS, 0700),
        b = mkdir_open(fd, STORE_WS, 0700);
    if (a < 0 || b < 0) {
        int e = a < 0 ? -a : -b;
        sp_close_keep_errno(a);
        sp_close_keep_errno(b);
        close(fd);
        return sp_error_set(err, e, "cannot create the snapshot store");
    }
    close(a);
    close(b);
    return fd;
}

static int store_lock(int storefd, sp_error *err)
{
    int fd = openat(storefd, STORE_LOCK,
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open the snapshot store lock");
    int r;
    do
        r = flock(fd, LOCK_EX);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return sp_error_set(err, e, "cannot lock the snapshot store");
    }
    return fd;
}

/* The store of statedir, locked: returns its fd (and the lock's in
 * *lock), or < 0 with err filled and nothing left open. */
static int store_open_locked(const char *statedir, int *lock, sp_error *err)
{
    *lock = -1;
    int fd = open_store(statedir, err);
    if (fd < 0)
        return fd;
    int l = store_lock(fd, err);
    if (l < 0) {
        close(fd);
        return l;
    }
    *lock = l;
    return fd;
}

/* Write `len` bytes to dirfd/name through name.tmp, fsync and rename. */
static int write_atomic(int dirfd, const char *name, const char *data,
                        size_t len)
{
    char tmp[NAME_MAX + 1];
    if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    unlinkat(dirfd, tmp, 0);
    int fd = openat(dirfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -ENOSPC;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

/* ---- stacks ------------------------------------------------------------ */

struct stack {
    char lid[SP_SNAP_MAX_DEPTH][LID_LEN + 1];
    size_t n;
};

/* A stack file's text: one lid a line. -EINVAL when malformed. */
static int stack_parse(const char *text, size_t len, struct stack *s)
{
    memset(s, 0, sizeof(*s));
    char buf[SP_SNAP_MAX_DEPTH * (LID_LEN + 1) + 2];
    if (len >= sizeof(buf) || memchr(text, '\0', len))
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, "\n", &save); t;
         t = strtok_r(NULL, "\n", &save)) {
        if (s->n >= SP_SNAP_MAX_DEPTH || !lid_valid(t))
            return -EINVAL;
        memcpy(s->lid[s->n++], t, LID_LEN + 1);
    }
    return 0;
}

int sp_snap_parse_stack(const char *text, size_t len)
{
    struct stack s;
    int r = stack_parse(text, len, &s);
    return r < 0 ? r : (int)s.n;
}

/* Read layers/stack of a layers dir fd. A missing file is an empty stack;
 * anything malformed is -EINVAL. */
static int stack_read(int lfd, struct stack *s)
{
    memset(s, 0, sizeof(*s));
    int fd = openat(lfd, SP_WS_STACK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    char buf[SP_SNAP_MAX_DEPTH * (LID_LEN + 1) + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return -EIO;
    return stack_parse(buf, (size_t)n, s);
}

static int stack_write(int lfd, const struct stack *s)
{
    char buf[SP_SNAP_MAX_DEPTH * (LID_LEN + 1) + 1];
    size_t len = 0;
    for (size_t i = 0; i < s->n; i++) {
        memcpy(buf + len, s->lid[i], LID_LEN);
        len += LID_LEN;
        buf[len++] = '\n';
    }
    if (s->n == 0)
        return unlinkat(lfd, SP_WS_STACK_FILE, 0) < 0 && errno != ENOENT
                   ? -errno
                   : 0;
    return write_atomic(lfd, SP_WS_STACK_FILE, buf, len);
}

static int stack_from_json(json_t *a, struct stack *s)
{
    memset(s, 0, sizeof(*s));
    if (!json_is_array(a) || json_array_size(a) > SP_SNAP_MAX_DEPTH)
        return -EINVAL;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *t = json_string_value(v);
        if (!t || !lid_valid(t))
            return -EINVAL;
        memcpy(s->lid[s->n++], t, LID_LEN + 1);
    }
    return 0;
}

int sp_snap_stack_apply(const char *layers_dir, struct sp_mount_plan *plan,
                        sp_error *err)
{
    _cleanup_close_ int lfd = open_dir_at(AT_FDCWD, layers_dir);
    if (lfd < 0)
        return sp_error_set(err, errno, "cannot open %s", layers_dir);
    struct stack s;
    int r = stack_read(lfd, &s);
    if (r < 0)
        return sp_error_set(err, -r, "%s/%s is damaged", layers_dir,
                            SP_WS_STACK_FILE);
    if (s.n == 0)
        return 0;
    /* layers_dir is workspaces/<name>/layers: the store is two up. */
    char store[SP_MAX_PATH];
    int n = snprintf(store, sizeof(store), "%s/../../../%s/%s", layers_dir,
                     SP_SNAP_DIR, STORE_LAYERS);
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
                     s.n * (strlen(real) + LID_LEN + 3 + strlen(id));
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
        else if ((out = open_dir_at(dfd, name)) < 0)
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
    _cleanup_close_ int data = open_dir_at(wsfd, SP_WS_DATA);
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
        int idfd = open_dir_at(up, id);
        if (idfd < 0)
            continue;
        int u = open_dir_at(idfd, "upper");
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
        out = mkdir_open(sc->layerfd, id, 0700);
    } else {
        if (mkdirat(sc->layerfd, id, 0700) < 0)
            return -errno;
        out = open_dir_at(sc->layerfd, id);
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

/* ---- freezing ---------------------------------------------------------- */

struct pids {
    pid_t *v;
    size_t n, cap;
};

/* A running workspace's process tree: its agent (PID 1 inside). */
struct tree {
    pid_t agent;
    char procs[SP_MAX_PATH + 32]; /* its cgroup's cgroup.procs, or "" */
};

static int pids_add(struct pids *p, pid_t pid)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        pid_t *nv = realloc(p->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = pid;
    return 0;
}

/* The workspace's agent pid, checked: PID 1 of a pid namespace that is
 * not ours, child of the workspace's live supervisor. */
static int agent_of(int wsfd, const char *name, pid_t *ret, struct tree *ns,
                    sp_error *err)
{
    struct sp_ws_state st;
    int r = sp_state_read(wsfd, &st, err);
    if (r < 0)
        return r;
    pid_t agent = st.agent_pid, sv = st.supervisor_pid;
    bool running = strcmp(st.state, "running") == 0;
    /* The sandbox cgroup lists exactly its processes: cheaper than a scan
     * of /proc (checked below to hold the agent). */
    ns->procs[0] = '\0';
    const char *cgd = json_string_value(json_array_get(st.cgroups, 0));
    if (cgd && strncmp(cgd, "/sys/fs/cgroup/", 15) == 0 && !strstr(cgd, "/.."))
        snprintf(ns->procs, sizeof(ns->procs), "%s/cgroup.procs", cgd);
    sp_state_free(&st);
    if (!running || agent <= 1 || sv <= 1)
        return sp_error_setk(err, SP_ERR_USAGE, ESRCH,
                             "workspace %s is not running", name);
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)agent);
    FILE *f = fopen(path, "re");
    bool ok_parent = false, ok_ns = false;
    if (f) {
        while (fgets(buf, sizeof(buf), f)) {
            int v;
            if (sscanf(buf, "PPid: %d", &v) == 1)
                ok_parent = v == sv;
            if (strncmp(buf, "NSpid:", 6) == 0) {
                char *last = strrchr(buf, '\t');
                ok_ns =
                    last && last != strchr(buf, '\t') && atoi(last + 1) == 1;
            }
        }
        fclose(f);
    }
    if (!ok_parent || !ok_ns)
        return sp_error_setk(err, SP_ERR_SYSTEM, ESRCH,
                             "workspace %s: its agent (pid %d) is not where "
                             "its state says",
                             name, (int)agent);
    ns->agent = agent;
    if (ns->procs[0]) {
        bool has = false;
        FILE *pf = fopen(ns->procs, "re");
        int pid;
        while (pf && !has && fscanf(pf, "%d", &pid) == 1)
            has = pid == agent;
        if (pf)
            fclose(pf);
        if (!has)
            ns->procs[0] = '\0';
    }
    *ret = agent;
    return 0;
}

/* pid's parent from /proc/pid/stat (world-readable, unlike the ns links
 * of a non-dumpable process), or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int pp;
    if (!p || sscanf(p + 1, " %*c %d", &pp) != 1)
        return -1;
    return pp;
}

/* Is pid the agent or below it? Every process of the workspace's pid
 * namespace is (PID 1 inherits orphans), and nothing else is. */
static bool in_tree(pid_t pid, const struct tree *ns)
{
    for (int i = 0; i < 4096 && pid > 1; i++) {
        if (pid == ns->agent)
            return true;
        pid = parent_of(pid);
    }
    return false;
}

/* Every process of the workspace: the agent and its descendants. */
static int ns_pids(const struct tree *ns, struct pids *out)
{
    out->n = 0;
    FILE *f = ns->procs[0] ? fopen(ns->procs, "re") : NULL;
    if (f) {
        int pid, rc = 0;
        while (rc == 0 && fscanf(f, "%d", &pid) == 1)
            rc = pids_add(out, pid);
        fclose(f);
        return rc;
    }
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    struct pids all = {0}, par = {0};
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1)
            continue;
        pid_t pp = parent_of((pid_t)pid);
        if (pp < 0)
            continue;
        if ((rc = pids_add(&all, (pid_t)pid)) == 0)
            rc = pids_add(&par, pp);
    }
    closedir(d);
    if (rc == 0)
        rc = pids_add(out, ns->agent);
    /* Breadth first from the agent: out grows as children are found. */
    for (size_t k = 0; rc == 0 && k < out->n; k++)
        for (size_t i = 0; rc == 0 && i < all.n; i++)
            if (par.v[i] == out->v[k] && all.v[i] != ns->agent)
                rc = pids_add(out, all.v[i]);
    free(all.v);
    free(par.v);
    return rc;
}

/* The state letter of /proc/pid/stat, or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

/* Signal pid if it is still the workspace's (through a pidfd, so a
 * recycled pid is never signalled). */
static void signal_in_ns(pid_t pid, const struct tree *ns, int sig)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return;
    if (in_tree(pid, ns))
        syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
    close(pfd);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    return n < 0 ? -e : 0;
}

static bool read_has(const char *path, const char *word)
{
    char buf[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, word) != NULL;
}

/* Our own cgroup path in the v1 freezer hierarchy, or -ENOENT. */
static int own_freezer(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -errno;
    char line[SP_MAX_PATH];
    int rc = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        char *save = NULL;
        for (char *t = strtok_r(c1 + 1, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            if (strcmp(t, "freezer") == 0) {
                int n = snprintf(buf, len, "/sys/fs/cgroup/freezer%s",
                                 strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
                rc = n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
            }
    }
    fclose(f);
    return rc;
}

static int move_pids(const char *dir, const struct pids *p)
{
    char path[SP_MAX_PATH + 32];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < p->n; i++) {
        char s[24];
        int n = snprintf(s, sizeof(s), "%d", (int)p->v[i]);
        if (write(fd, s, (size_t)n) < 0 && errno != ESRCH) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    close(fd);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Remove the empty freezer cgroups of workspaces that are gone (rmdir
 * refuses a cgroup that holds a process, so a live one stays). */
static void sweep_freezers(void)
{
    char base[SP_MAX_PATH];
    if (own_freezer(base, sizeof(base)) < 0)
        return;
    DIR *d = opendir(base);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, "sandpit-frz-", 12) == 0)
            unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
    if (d)
        closedir(d);
}

/* Thaw by the marker `how` ("freezer DIR" or "sigstop"); the pids are
 * those of namespace ns (may be NULL: the workspace is gone). */
static void thaw_how(const char *how, const struct tree *ns)
{
    if (strncmp(how, "freezer /sys/fs/cgroup/", 23) == 0) {
        const char *dir = how + 8;
        char path[SP_MAX_PATH + 32];
        snprintf(path, sizeof(path), "%s/freezer.state", dir);
        write_file(path, "THAWED");
        /* The processes stay in the freezer cgroup (their children are
         * born there: the next freeze has no one to move). Freezer cgroups
         * of workspaces gone are empty: removed here, as rmdir refuses a
         * cgroup that holds a process. */
        sweep_freezers();
    } else if (strcmp(how, "sigstop") == 0 && ns) {
        struct pids p = {0};
        if (ns_pids(ns, &p) == 0)
            for (size_t i = 0; i < p.n; i++)
                signal_in_ns(p.v[i], ns, SIGCONT);
        free(p.v);
    }
}

/* Freeze every process of namespace ns. Fills `how` (the marker text). */
static int freeze_ns(const char *name, const struct tree *ns, char *how,
                     size_t how_len, sp_error *err)
{
    struct pids p = {0};
    uint64_t until = sp_now_us() + SP_FREEZE_TIMEOUT_MS * 1000ULL;
    int rc = 0;
    char base[SP_MAX_PATH - 128], dir[SP_MAX_PATH];
    bool cg = own_freezer(base, sizeof(base)) == 0;
    if (cg) {
        snprintf(dir, sizeof(dir), "%s/sandpit-frz-%d", base, (int)ns->agent);
        cg = mkdir(dir, 0700) == 0 || errno == EEXIST;
    }
    if (cg) {
        snprintf(how, how_len, "freezer %s", dir);
        char path[sizeof(dir) + 32];
        snprintf(path, sizeof(path), "%s/freezer.state", dir);
        char cp[sizeof(dir) + 32];
        snprintf(cp, sizeof(cp), "%s/cgroup.procs", dir);
        for (int round = 0;; round++) {
            /* Those not in the freezer cgroup yet go in. */
            struct pids in = {0};
            FILE *f = fopen(cp, "re");
            int pid;
            while (f && fscanf(f, "%d", &pid) == 1)
                pids_add(&in, pid);
            if (f)
                fclose(f);
            if ((rc = ns_pids(ns, &p)) == 0) {
                size_t k = 0;
                for (size_t i = 0; i < p.n; i++) {
                    bool there = false;
                    for (size_t j = 0; j < in.n && !there; j++)
                        there = in.v[j] == p.v[i];
                    if (!there)
                        p.v[k++] = p.v[i];
                }
                p.n = k;
                rc = move_pids(dir, &p);
                if (rc == -ENOENT && round < 50 &&
                    (mkdir(dir, 0700) == 0 || errno == EEXIST)) {
                    /* swept as empty by a thaw elsewhere: again */
                    free(in.v);
                    continue;
                }
            }
            free(in.v);
            if (rc < 0 || (rc = write_file(path, "FROZEN")) < 0)
                break;
            while (!read_has(path, "FROZEN") && sp_now_us() < until) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
            if (!read_has(path, "FROZEN")) {
                rc = -ETIMEDOUT;
                break;
            }
            /* Anyone forked outside it before the freeze? */
            if ((rc = ns_pids(ns, &p)) < 0)
                break;
            size_t inside = 0;
            f = fopen(cp, "re");
            while (f && fscanf(f, "%d", &pid) == 1)
                inside++;
            if (f)
                fclose(f);
            if (inside >= p.n)
                break;
            if (round > 50 || sp_now_us() >= until) {
                rc = -ETIMEDOUT;
                break;
            }
        }
    } else {
        snprintf(how, how_len, "sigstop");
        for (;;) {
            if ((rc = ns_pids(ns, &p)) < 0)
                break;
            bool all = true;
            for (size_t i = 0; i < p.n; i++) {
                char s = proc_state(p.v[i]);
                if (s == 'T' || s == 't' || s == 0 || s == 'Z' || s == 'X')
                    continue;
                all = false;
                signal_in_ns(p.v[i], ns, SIGSTOP);
            }
            if (all)
                break;
            if (sp_now_us() >= until) {
                rc = -ETIMEDOUT;
                break;
            }
            sleep_ms(1);
        }
    }
    free(p.v);
    if (rc < 0) {
        thaw_how(how, ns);
        return sp_error_set(err, -rc, "cannot freeze workspace %s", name);
    }
    return 0;
}

/* The marker of a paused workspace, or "" when it is not paused. */
static void read_paused(int wsfd, char *how, size_t len)
{
    how[0] = '\0';
    int fd = openat(wsfd, SP_WS_PAUSED_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, how, len - 1);
    close(fd);
    how[n > 0 ? n : 0] = '\0';
    how[strcspn(how, "\n")] = '\0';
}

/* A per-workspace lock for pause/resume/snapshot freezes. */
static int pause_lock(int wsfd, sp_error *err)
{
    int fd = openat(wsfd, "pause.lock",
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open pause.lock");
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return sp_error_set(err, e, "cannot lock pause.lock");
        }
    return fd;
}

void sp_snap_thaw_at(int wsfd)
{
    char how[SP_MAX_PATH + 64];
    read_paused(wsfd, how, sizeof(how));
    if (!how[0])
        return;
    struct tree ns, *nsp = NULL;
    pid_t agent;
    if (agent_of(wsfd, "", &agent, &ns, NULL) == 0)
        nsp = &ns;
    thaw_how(how, nsp);
    unlinkat(wsfd, SP_WS_PAUSED_FILE, 0);
}

static int open_named_ws(const char *name, char *statedir, size_t len,
                         sp_error *err)
{
    int r = check_names(name, NULL, err);
    if (r < 0)
        return r;
    if ((r = sp_state_dir(statedir, len, err)) < 0)
        return r;
    return sp_state_open_ws(statedir, name, err);
}

/* Is the workspace's supervisor alive (its lock held)? */
static bool ws_running(int wsfd)
{
    int fd = openat(wsfd, SP_WS_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return alive;
}

SP_EXPORT int sp_ws_pause(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int pl = pause_lock(wsfd, err);
    if (pl < 0)
        return pl;
    if (!ws_running(wsfd))
        return sp_error_setk(err, SP_ERR_USAGE, ESRCH,
                             "workspace %s is not running", name);
    char how[SP_MAX_PATH + 64];
    read_paused(wsfd, how, sizeof(how));
    if (how[0])
        return 0; /* paused already */
    pid_t agent;
    struct tree ns;
    int r = agent_of(wsfd, name, &agent, &ns, err);
    if (r < 0 || (r = freeze_ns(name, &ns, how, sizeof(how), err)) < 0)
        return r;
    strcat(how, "\n");
    if ((r = write_atomic(wsfd, SP_WS_PAUSED_FILE, how, strlen(how))) < 0) {
        how[strcspn(how, "\n")] = '\0';
        thaw_how(how, &ns);
        return sp_error_set(err, -r, "workspace %s: cannot record the pause",
                            name);
    }
    return 0;
}

SP_EXPORT int sp_ws_resume(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int pl = pause_lock(wsfd, err);
    if (pl < 0)
        return pl;
    sp_snap_thaw_at(wsfd);
    return 0;
}

SP_EXPORT int sp_ws_paused(const char *name)
{
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), NULL);
    if (wsfd < 0)
        return wsfd;
    /* The marker first: the common case touches no lock. */
    return faccessat(wsfd, SP_WS_PAUSED_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
           ws_running(wsfd);
}

SP_EXPORT int sp_ws_wait_resumed(const char *name, double timeout,
                                 sp_error *err)
{
    uint64_t until = sp_now_us() + (uint64_t)(timeout * 1e6);
    for (;;) {
        int p = sp_ws_paused(name);
        if (p <= 0)
            return 0; /* not paused, or no such workspace: the caller says */
        if (sp_now_us() >= until)
            return sp_error_setk(err, SP_ERR_USAGE, EAGAIN,
                                 "workspace %s is paused (sandpit resume %s)",
                                 name, name);
        sleep_ms(20);
    }
}

/* ---- snapshots --------------------------------------------------------- */

static json_t *meta_read(int wsdir, const char *snap)
{
    char fn[SP_WS_NAME_MAX + 8];
    snprintf(fn, sizeof(fn), "%s.json", snap);
    int fd = openat(wsdir, fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    json_t *o = sp_json_loadfd(fd, 1u << 20, 0, NULL);
    close(fd);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The store's ws/<name> dir (created with `create`), or < 0. */
static int store_ws_dir(int storefd, const char *name, bool create)
{
    _cleanup_close_ int w = open_dir_at(storefd, STORE_WS);
    if (w < 0)
        return -errno;
    if (create)
        return mkdir_open(w, name, 0700);
    int fd = open_dir_at(w, name);
    return fd < 0 ? -errno : fd;
}

static int count_snaps(int wsdir)
{
    int dup = fcntl(wsdir, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        sp_close_keep_errno(dup);
        return 0;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strstr(de->d_name, ".json"))
            n++;
    closedir(d);
    return n;
}

/* Remove every layer that no snapshot and no workspace stack names.
 * Called with the store lock held. */
static void gc_layers(const char *statedir, int storefd)
{
    /* The names in use. */
    size_t n = 0, cap = 64;
    char(*used)[LID_LEN + 1] = malloc(cap * sizeof(*used));
    if (!used)
        return;
    bool ok = true;
#define USE(l)                                                                 \
    do {                                                                       \
        if (n == cap) {                                                        \
            void *nu = realloc(used, cap * 2 * sizeof(*used));                 \
            if (!nu) {                                                         \
                ok = false;                                                    \
                break;                                                         \
            }                                                                  \
            used = nu;                                                         \
            cap *= 2;                                                          \
        }                                                                      \
        memcpy(used[n++], (l), LID_LEN + 1);                                   \
    } while (0)
    char root[SP_MAX_PATH + 16];
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    DIR *d = opendir(root);
    struct dirent *de;
    while (ok && d && (de = readdir(d))) {
        if (de->d_name[0] == '.' && strncmp(de->d_name, ".rm-", 4) != 0)
            continue;
        char p[SP_MAX_PATH + 16];
        snprintf(p, sizeof(p), "%s/%s", de->d_name, SP_WS_LAYERS);
        int lfd = openat(dirfd(d), p,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0 && errno != ENOENT && errno != ENOTDIR) {
            ok = false; /* cannot tell what it uses: keep everything */
            break;
        }
        if (lfd < 0)
            continue;
        struct stack s;
        int r = stack_read(lfd, &s);
        close(lfd);
        if (r < 0) {
            ok = false; /* unreadable: keep everything */
            break;
        }
        for (size_t i = 0; i < s.n; i++)
            USE(s.lid[i]);
    }
    if (d)
        closedir(d);
    else
        ok = false;
    _cleanup_close_ int wsroot = open_dir_at(storefd, STORE_WS);
    DIR *w = wsroot >= 0 ? fdopendir(fcntl(wsroot, F_DUPFD_CLOEXEC, 3)) : NULL;
    while (ok && w && (de = readdir(w))) {
        if (de->d_name[0] == '.')
            continue;
        int wd = open_dir_at(dirfd(w), de->d_name);
        DIR *sd = wd >= 0 ? fdopendir(wd) : NULL;
        struct dirent *se;
        while (ok && sd && (se = readdir(sd))) {
            size_t l = strlen(se->d_name);
            if (se->d_name[0] == '.' || l < 6 ||
                strcmp(se->d_name + l - 5, ".json") != 0)
                continue;
            char sn[NAME_MAX + 1];
            snprintf(sn, sizeof(sn), "%.*s", (int)(l - 5), se->d_name);
            json_t *m = meta_read(dirfd(sd), sn);
            struct stack s;
            if (!m || stack_from_json(json_object_get(m, "layers"), &s) < 0) {
                json_decref(m);
                ok = false;
                break;
            }
            json_decref(m);
            for (size_t i = 0; i < s.n; i++)
                USE(s.lid[i]);
        }
        if (sd)
            closedir(sd);
    }
    if (w)
        closedir(w);
#undef USE
    if (!ok) {
        free(used);
        return;
    }
    _cleanup_close_ int lay = open_dir_at(storefd, STORE_LAYERS);
    DIR *ld = lay >= 0 ? fdopendir(fcntl(lay, F_DUPFD_CLOEXEC, 3)) : NULL;
    while (ld && (de = readdir(ld))) {
        bool tmp = strncmp(de->d_name, ".tmp-", 5) == 0;
        if (!tmp && !lid_valid(de->d_name))
            continue;
        bool inuse = false;
        for (size_t i = 0; !tmp && i < n && !inuse; i++)
            inuse = strcmp(used[i], de->d_name) == 0;
        if (!inuse)
            sp_rm_rf_at(dirfd(ld), de->d_name);
    }
    if (ld)
        closedir(ld);
    free(used);
}

SP_EXPORT int sp_ws_snapshot(const char *name, const char *snap,
                             sp_ws_snapshot_info *info, sp_error *err)
{
    int r = check_names(name, snap, err);
    if (r < 0)
        return r;
    uint64_t t0 = sp_now_us();
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int lfd = open_dir_at(wsfd, SP_WS_LAYERS);
    if (lfd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EOPNOTSUPP,
                             "workspace %s has no copy-on-write layers (made "
                             "by an older sandpit): no snapshots",
                             name);
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    _cleanup_close_ int sw = store_ws_dir(storefd, name, true);
    if (sw < 0)
        return sp_error_set(err, -sw, "cannot create the snapshot dir of %s",
                            name);
    json_t *old = meta_read(sw, snap);
    if (old) {
        json_decref(old);
        return sp_error_setk(err, SP_ERR_USAGE, EEXIST,
                             "workspace %s already has a snapshot %s", name,
                             snap);
    }
    if (count_snaps(sw) >= SP_SNAP_MAX_PER_WS)
        return sp_error_setk(err, SP_ERR_USAGE, ENOSPC,
                             "workspace %s has %d snapshots, the most it may "
                             "have (sandpit snapshot rm)",
                             name, SP_SNAP_MAX_PER_WS);
    struct stack cur;
    if ((r = stack_read(lfd, &cur)) < 0)
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
    _cleanup_close_ int pl = pause_lock(wsfd, err);
    if (pl < 0) {
        json_decref(policy);
        return pl;
    }
    char how[SP_MAX_PATH + 64] = "";
    struct tree ns;
    bool froze = false;
    char paused[SP_MAX_PATH + 64];
    read_paused(wsfd, paused, sizeof(paused));
    /* The last snapshot's index, read before anything is frozen. */
    bool merge = cur.n + 1 > SP_SNAP_MAX_DEPTH;
    _cleanup_close_ int layers = open_dir_at(storefd, STORE_LAYERS);
    struct index prev = {0}, outx = {0};
    _cleanup_close_ int prevfd = -1;
    char last[LID_LEN + 2] = "";
    int lsf =
        openat(lfd, LAST_SNAPSHOT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (lsf >= 0) {
        ssize_t n = read(lsf, last, LID_LEN);
        close(lsf);
        last[n > 0 ? n : 0] = '\0';
        if (!merge && layers >= 0 && lid_valid(last) &&
            (prevfd = open_dir_at(layers, last)) >= 0)
            index_load(prevfd, &prev);
    }
    uint64_t t_frozen = 0;
    if (!paused[0] && ws_running(wsfd)) {
        pid_t agent;
        if ((r = agent_of(wsfd, name, &agent, &ns, err)) == 0)
            t_frozen = sp_now_us();
        if (r < 0 || (r = freeze_ns(name, &ns, how, sizeof(how), err)) < 0) {
            json_decref(policy);
            index_free(&prev);
            return r;
        }
        froze = true;
    }

    char lid[LID_LEN + 1], tmpname[LID_LEN + 8];
    new_lid(lid);
    snprintf(tmpname, sizeof(tmpname), ".tmp-%s", lid);
    int layerfd = layers >= 0 ? mkdir_open(layers, tmpname, 0700) : -ENOENT;
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
            int src = open_dir_at(layers, cur.lid[i]);
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
        thaw_how(how, &ns);
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
        r = text ? write_atomic(sw, fn, text, strlen(text)) : -ENOMEM;
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
    write_atomic(lfd, LAST_SNAPSHOT_FILE, lid, LID_LEN);
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
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return NULL;
    _cleanup_close_ int storefd = open_store(statedir, err);
    if (storefd < 0)
        return NULL;
    json_t *a = json_array();
    _cleanup_close_ int sw = store_ws_dir(storefd, name, false);
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
        json_t *m = meta_read(sw, sn);
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
    int r = check_names(name, snap, err);
    if (r < 0)
        return r;
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    _cleanup_close_ int sw = store_ws_dir(storefd, name, false);
    char fn[SP_WS_NAME_MAX + 8];
    snprintf(fn, sizeof(fn), "%s.json", snap);
    if (sw < 0 || unlinkat(sw, fn, 0) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                             "workspace %s has no snapshot %s", name, snap);
    gc_layers(statedir, storefd);
    return 0;
}

/* Read a snapshot's metadata under the store lock. */
static json_t *snap_get(int storefd, const char *name, const char *snap,
                        struct stack *s, sp_error *err)
{
    _cleanup_close_ int sw = store_ws_dir(storefd, name, false);
    json_t *m = sw >= 0 ? meta_read(sw, snap) : NULL;
    if (!m) {
        sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                      "workspace %s has no snapshot %s", name, snap);
        return NULL;
    }
    if (stack_from_json(json_object_get(m, "layers"), s) < 0 || s->n == 0) {
        json_decref(m);
        sp_error_set(err, EINVAL, "snapshot %s of %s is damaged", snap, name);
        return NULL;
    }
    /* Every layer must be there. */
    _cleanup_close_ int layers = open_dir_at(storefd, STORE_LAYERS);
    for (size_t i = 0; i < s->n; i++) {
        struct stat sb;
        if (layers < 0 ||
            fstatat(layers, s->lid[i], &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(sb.st_mode)) {
            json_decref(m);
            sp_error_set(err, ENOENT, "snapshot %s of %s: layer %s is missing",
                         snap, name, s->lid[i]);
            return NULL;
        }
    }
    return m;
}

int sp_snap_fork_init(int wsfd, const char *src, const char *snap,
                      sp_error *err)
{
    int r = check_names(src, snap, err);
    if (r < 0)
        return r;
    char statedir[SP_MAX_PATH];
    if ((r = sp_state_dir(statedir, sizeof(statedir), err)) < 0)
        return r;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    struct stack s;
    json_t *m = snap_get(storefd, src, snap, &s, err);
    if (!m)
        return -ENOENT;
    json_decref(m);
    _cleanup_close_ int lfd = open_dir_at(wsfd, SP_WS_LAYERS);
    if (lfd < 0 || (r = stack_write(lfd, &s)) < 0)
        return sp_error_set(err, lfd < 0 ? errno : -r,
                            "cannot write the layer stack");
    return 0;
}

json_t *sp_snap_meta(const char *name, const char *snap, sp_error *err)
{
    if (check_names(name, snap, err) < 0)
        return NULL;
    char statedir[SP_MAX_PATH];
    if (sp_state_dir(statedir, sizeof(statedir), err) < 0)
        return NULL;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return NULL;
    struct stack s;
    return snap_get(storefd, name, snap, &s, err);
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
    int r = check_names(name, snap, err);
    if (r < 0 || (r = check_names(newname, NULL, err)) < 0)
        return r;
    char statedir[SP_MAX_PATH];
    if ((r = sp_state_dir(statedir, sizeof(statedir), err)) < 0)
        return r;
    json_t *m;
    {
        _cleanup_close_ int lock = -1;
        _cleanup_close_ int storefd = store_open_locked(statedir, &lock, err);
        if (storefd < 0)
            return storefd;
        struct stack s;
        if (!(m = snap_get(storefd, name, snap, &s, err)))
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

/* One service's spec, checked: NULL when it is not one to bring back or
 * is not well formed. */
static json_t *restart_spec(json_t *v, bool has_secrets, bool *ret_redacted)
{
    const char *st = json_string_value(json_object_get(v, "state"));
    const char *rs = json_string_value(json_object_get(v, "restart"));
    json_t *argv = json_object_get(v, "argv");
    json_t *env = json_object_get(v, "env");
    json_t *cwd = json_object_get(v, "cwd");
    json_t *ready = json_object_get(v, "ready");
    json_t *rt = json_object_get(v, "ready_timeout");
    json_t *sen = json_object_get(v, "secret_env");
    if (!st || !rs || strcmp(rs, "on-failure") != 0 ||
        strcmp(st, "exited") == 0 || strcmp(st, "failed") == 0 ||
        !json_is_array(argv) || json_array_size(argv) == 0 ||
        json_array_size(argv) > SP_MAX_ARGS ||
        (env && !json_is_array(env)) || json_array_size(env) > SP_MAX_ENV ||
        (cwd && !json_is_null(cwd) && !json_is_string(cwd)) ||
        (ready && !json_is_null(ready) && !json_is_string(ready)) ||
        (rt && !json_is_number(rt)) ||
        (sen && !json_is_array(sen)) || json_array_size(sen) > SP_MAX_SECRETS ||
        !json_is_string(json_object_get(v, "name")))
        return NULL;
    /* A --secret-env service comes back with the names: the supervisor
     * sets the values again; they never pass through here. A value typed
     * with -e (or in the command) that is a secret's reached us redacted:
     * started so, it would not be the service it was, so it is left out
     * (docs/snapshots.md). */
    json_t *spec = json_pack("{s:O,s:O,s:o,s:O?,s:O?,s:f,s:o}", "name",
                     json_object_get(v, "name"), "argv", argv, "env",
                     env ? json_incref(env) : json_array(), "cwd",
                     json_is_string(cwd) ? cwd : NULL, "ready",
                     json_is_string(ready) ? ready : NULL, "ready_timeout",
                     rt ? json_number_value(rt) : 0.0, "secret_env",
                     sen ? json_incref(sen) : json_array());
    char *t = spec && has_secrets ? json_dumps(spec, JSON_COMPACT) : NULL;
    if (has_secrets && (!t || strstr(t, "[REDACTED:"))) {
        json_decref(spec);
        spec = NULL;
        *ret_redacted = true;
    }
    free(t);
    return spec;
}

/* The services of a running workspace that restart on failure and are
 * not over, with their whole spec: [{name, argv, env, cwd, ready,
 * ready_timeout}] (docs/snapshots.md). A service whose spec the list left
 * out (SP_SERVICE_LIST_FULL) is asked for by name. A paused workspace is
 * resumed first (it is about to be stopped anyway). */
static json_t *restart_services_of(const char *name, bool has_secrets,
                                   json_t *skipped)
{
    if (sp_ws_paused(name) == 1)
        sp_ws_resume(name, NULL);
    char *t = sp_ws_service_status_json(name, NULL, NULL);
    json_t *a = t ? json_loads(t, 0, NULL) : NULL;
    free(t);
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        json_t *one = NULL;
        const char *svc = json_string_value(json_object_get(v, "name"));
        if (json_is_true(json_object_get(v, "spec_omitted")) && svc) {
            char *st = sp_ws_service_status_json(name, svc, NULL);
            one = st ? json_loads(st, 0, NULL) : NULL;
            free(st);
            v = one;
        }
        bool redacted = false;
        json_t *spec = v ? restart_spec(v, has_secrets, &redacted) : NULL;
        if (spec)
            json_array_append_new(out, spec);
        else if (redacted && svc)
            json_array_append_new(
                skipped,
                json_pack("{s:s,s:s,s:s}", "name", svc, "state", "failed",
                          "reason",
                          "not started again: its command or environment "
                          "held a secret's value, which restore does not "
                          "keep (start it with secret_env / --secret-env)"));
        json_decref(one);
    }
    json_decref(a);
    return out;
}

/* strv of a JSON array of strings (borrowed), NULL-terminated; NULL when
 * an entry is not a string or out of memory. */
static char **strv_of(json_t *a)
{
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof(*v));
    for (size_t k = 0; v && k < n; k++)
        if (!(v[k] = (char *)json_string_value(json_array_get(a, k)))) {
            free(v);
            return NULL;
        }
    return v;
}

/* Start them again as they were: name, command, extra environment,
 * directory, readiness probe and its timeout, restart policy. Each start
 * waits for the service to be ready, as `service start` does; best
 * effort: one that fails now is left `failed` with its reason in
 * `service ls` and the rest still start. */
static void restart_services(const char *name, json_t *svcs, json_t *report)
{
    size_t i;
    json_t *v;
    json_array_foreach(svcs, i, v)
    {
        const char *svc = json_string_value(json_object_get(v, "name"));
        sp_error e = {0};
        char *js = NULL;
        int rc = -ENOMEM;
        char **argv = strv_of(json_object_get(v, "argv"));
        char **env = strv_of(json_object_get(v, "env"));
        char **sen = strv_of(json_object_get(v, "secret_env"));
        if (argv && env && sen) {
            sp_ws_service_opts o = {
                .name = json_string_value(json_object_get(v, "name")),
                .argv = argv,
                .env = env[0] ? env : NULL,
                .cwd = json_string_value(json_object_get(v, "cwd")),
                .ready = json_string_value(json_object_get(v, "ready")),
                .ready_timeout =
                    json_number_value(json_object_get(v, "ready_timeout")),
                .restart_on_failure = true,
                .secret_env = sen[0] ? sen : NULL,
            };
            rc = sp_ws_service_start(name, &o, &js, &e);
        }
        free(argv);
        free(env);
        free(sen);
        /* Its state as the start left it; a failure's reason as the agent
         * gave it (without the last output), else the error's. */
        json_t *st = js ? json_loads(js, 0, NULL) : NULL;
        free(js);
        const char *state = json_string_value(json_object_get(st, "state"));
        const char *why = json_string_value(json_object_get(st, "reason"));
        if (rc < 0 || !state)
            state = "failed";
        if (strcmp(state, "failed") == 0 && !why)
            why = e.message[0] ? e.message : "out of memory";
        json_t *one = json_pack("{s:s,s:s}", "name", svc ? svc : "?",
                                "state", state);
        if (one && strcmp(state, "failed") == 0)
            json_object_set_new(one, "reason", /* valid UTF-8, cut */
                                sp_jrpc_string_lossy(why, strnlen(why, 512)));
        if (one)
            json_array_append_new(report, one);
        json_decref(st);
    }
}

static int restore_run(const char *name, const char *snap,
                          const struct sp_secrets *sec,
                          const sp_secret *secrets, size_t n_secrets,
                          bool *restarted, json_t *report, sp_error *err);

SP_EXPORT int sp_ws_restore(const char *name, const char *snap, bool *restarted,
                            sp_error *err)
{
    return sp_ws_restore_secrets(name, snap, NULL, 0, restarted, err);
}

SP_EXPORT int sp_ws_restore_secrets(const char *name, const char *snap,
                                    const sp_secret *secrets,
                                    size_t n_secrets, bool *restarted,
                                    sp_error *err)
{
    return sp_ws_restore_report(name, snap, secrets, n_secrets, restarted,
                                NULL, err);
}

SP_EXPORT int sp_ws_restore_report(const char *name, const char *snap,
                                   const sp_secret *secrets,
                                   size_t n_secrets, bool *restarted,
                                   char **ret_services, sp_error *err)
{
    if (ret_services)
        *ret_services = NULL;
    if (restarted)
        *restarted = false;
    int r = check_names(name, snap, err);
    if (r < 0)
        return r;
    struct sp_secrets *sec = NULL;
    if ((r = sp_secrets_new(secrets, n_secrets, &sec, err)) < 0)
        return r;
    /* Only to check the names: the values go to sp_ws_start_secrets. */
    json_t *report = json_array();
    if (!report) {
        sp_secrets_free(sec);
        return sp_error_set(err, ENOMEM, "restore");
    }
    r = restore_run(name, snap, sec, secrets, n_secrets, restarted, report,
                    err);
    sp_secrets_free(sec);
    if (r == 0 && ret_services &&
        !(*ret_services = json_dumps(report, JSON_COMPACT)))
        r = sp_error_set(err, ENOMEM, "restore");
    json_decref(report);
    return r;
}

static int restore_run(const char *name, const char *snap,
                          const struct sp_secrets *sec,
                          const sp_secret *secrets, size_t n_secrets,
                          bool *restarted, json_t *report, sp_error *err)
{
    int r;
    char statedir[SP_MAX_PATH];
    _cleanup_close_ int wsfd =
        open_named_ws(name, statedir, sizeof(statedir), err);
    if (wsfd < 0)
        return wsfd;
    _cleanup_close_ int storefd = open_store(statedir, err);
    if (storefd < 0)
        return storefd;
    struct stack s;
    {
        /* Checked before anything stops: a missing snapshot changes nothing. */
        _cleanup_close_ int lock = store_lock(storefd, err);
        if (lock < 0)
            return lock;
        json_t *m = snap_get(storefd, name, snap, &s, err);
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
    json_t *svcs = NULL;
    json_auto_t *skipped = json_array();
    if (was_running) {
        svcs = restart_services_of(name, n_secrets > 0, skipped);
        if ((r = sp_ws_stop(name, err)) < 0) {
            json_decref(svcs);
            return r;
        }
        lockfd = sp_state_lock(wsfd, true);
    }
    if (lockfd < 0) {
        json_decref(svcs);
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    }
    _cleanup_close_ int lock = store_lock(storefd, err);
    if (lock < 0) {
        close(lockfd);
        json_decref(svcs);
        return lock;
    }
    json_t *m = snap_get(storefd, name, snap, &s, err);
    _cleanup_close_ int lfd = open_dir_at(wsfd, SP_WS_LAYERS);
    r = !m        ? -ENOENT
        : lfd < 0 ? sp_error_set(err, errno, "workspace %s has no layers", name)
                  : 0;
    json_decref(m);
    if (r == 0 && (r = stack_write(lfd, &s)) < 0)
        sp_error_set(err, -r, "workspace %s: cannot write its layer stack",
                     name);
    if (r == 0)
        r = sp_ws_layers_clear(wsfd, err);
    if (r == 0)
        gc_layers(statedir, storefd);
    close(lockfd);
    if (r < 0) {
        json_decref(svcs);
        return sp_error_prefix(err, "restore %s", name);
    }
    if (was_running) {
        if ((r = sp_ws_start_secrets(name, secrets, n_secrets, err)) < 0) {
            json_decref(svcs);
            return r;
        }
        if (restarted)
            *restarted = true;
        /* Waiting for their readiness can take long: not under the
         * store's lock, which every snapshot of every workspace takes. */
        close(lock);
        lock = -1;
        restart_services(name, svcs, report);
        json_array_extend(report, skipped);
    }
    json_decref(svcs);
    return 0;
}

void sp_snap_ws_removed(const char *name)
{
    char statedir[SP_MAX_PATH];
    if (!sp_ws_name_valid(name) ||
        sp_state_dir(statedir, sizeof(statedir), NULL) < 0)
        return;
    int storefd = open_store(statedir, NULL);
    if (storefd < 0)
        return;
    int lock = store_lock(storefd, NULL);
    if (lock >= 0) {
        int w = open_dir_at(storefd, STORE_WS);
        if (w >= 0) {
            sp_rm_rf_at(w, name);
            close(w);
        }
        gc_layers(statedir, storefd);
        close(lock);
    }
    close(storefd);
    sweep_freezers();
}

SP_EXPORT int sp_ws_checkpoint(const char *name, const char *snap,
                               sp_error *err)
{
    int r = check_names(name, snap, err);
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
