/* archive.c — sandpit import/export: unpack hostile archives into a
 * directory fd and pack a directory fd into a tar stream, with libarchive
 * doing only the parsing; every file system change is ours, made through
 * fds resolved beneath the destination (openat2), never through a path. */
#include "sp_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "secrets.h"
#include "util.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Bytes per read()/write of file content. */
#define COPY_CHUNK (64 * 1024)
/* Longest entry name shown in a message; the rest becomes "...". */
#define SHOW_LEN 300

static void limits_resolve(const struct sp_archive_limits *in,
                           struct sp_archive_limits *out)
{
    struct sp_archive_limits l = {0};
    if (in)
        l = *in;
    if (!l.max_total_bytes)
        l.max_total_bytes = SP_ARCHIVE_DEF_MAX_TOTAL_BYTES;
    if (!l.max_entries)
        l.max_entries = SP_ARCHIVE_DEF_MAX_ENTRIES;
    if (!l.max_entry_bytes)
        l.max_entry_bytes = SP_ARCHIVE_DEF_MAX_ENTRY_BYTES;
    if (!l.max_path_len)
        l.max_path_len = SP_ARCHIVE_DEF_MAX_PATH_LEN;
    if (!l.max_depth)
        l.max_depth = SP_ARCHIVE_DEF_MAX_DEPTH;
    *out = l;
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if (is_control((unsigned char)*s))
            return true;
    return false;
}

/* Copy a name for a message or the skip list: control bytes and backslash
 * escaped (a hostile name must not reach a terminal raw), cut to fit. */
static void show_name(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (!in)
        in = "(no name)";
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        size_t need = (is_control(c) || c == '\\') ? 4 : 1;
        if (o + need + 4 > len) { /* room for "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 4) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static void note_skip(struct sp_archive_stats *st, const char *name,
                      const char *reason)
{
    st->skipped++;
    if (st->nskips >= SP_ARCHIVE_MAX_SKIP_LIST)
        return;
    struct sp_archive_skip *s = &st->skips[st->nskips++];
    show_name(name, s->path, sizeof(s->path));
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

/* Fill err with `archive entry "NAME" refused: REASON` (no errno text: the
 * reason is the whole story) and return -errnum. */
__attribute__((format(printf, 4, 5))) static int
refuse(sp_error *err, int errnum, const char *name, const char *fmt, ...)
{
    char shown[SHOW_LEN];
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    show_name(name, shown, sizeof(shown));
    sp_error_setk(err, SP_ERR_USAGE, 0, "archive entry \"%s\" refused: %s",
                  shown, reason);
    if (err)
        err->code = errnum;
    return -errnum;
}

/* A system call failed while handling an entry. */
static int entry_fail(sp_error *err, int errnum, const char *name,
                      const char *what)
{
    char shown[SHOW_LEN];
    show_name(name, shown, sizeof(shown));
    return sp_error_set(err, errnum, "archive entry \"%s\": cannot %s", shown,
                        what);
}

/* Normalize an entry name (or hard link target) lexically into out (at
 * least strlen(in) + 1 bytes): drop "." and empty components and a trailing
 * "/". "" means the root itself. Refuses what could leave the root or
 * mislead a reader: absolute names, "..", control bytes, over-long or
 * over-deep names. Returns 0 or -errno with *why set. */
static int name_normalize(const char *in, const struct sp_archive_limits *lim,
                          char *out, const char **why)
{
    size_t n = strlen(in);
    if (n == 0) {
        *why = "the name is empty";
        return -EINVAL;
    }
    if (n > lim->max_path_len) {
        *why = "the name is longer than the limit";
        return -ENAMETOOLONG;
    }
    if (in[0] == '/') {
        *why = "absolute names are not allowed";
        return -EPERM;
    }
    if (has_control(in)) {
        *why = "the name contains a control character";
        return -EINVAL;
    }
    size_t o = 0;
    unsigned depth = 0;
    const char *p = in;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        if (clen == 2 && p[0] == '.' && p[1] == '.') {
            *why = "the name has a \"..\" component";
            return -EPERM;
        }
        if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            if (++depth > lim->max_depth) {
                *why = "the name is deeper than the limit";
                return -ENAMETOOLONG;
            }
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, clen);
            o += clen;
        }
        p += clen;
        if (*p == '/')
            p++;
    }
    out[o] = '\0';
    return 0;
}

static int open_beneath(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve =
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd =
        syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/* A fresh name for a temporary sibling: ".sp-<16 hex>.tmp". */
static void temp_name(char out[32])
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r ^= sp_now_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    snprintf(out, 32, ".sp-%016llx.tmp", (unsigned long long)r);
}

/* ---- extraction ------------------------------------------------------ */

struct devino {
    dev_t dev;
    ino_t ino;
};

struct xstate {
    struct archive *a;
    int dest;
    struct sp_archive_limits lim;
    unsigned flags;
    struct sp_archive_stats *st;
    sp_error *err;
    uint64_t total;
    /* The last parent directory opened, reused by the next entry in it. */
    char *cache_path;
    int cache_fd;
    /* Regular files this run made: the only hard link targets allowed.
     * Open addressing, power-of-two capacity, ino 0 = empty. */
    struct devino *files;
    size_t files_cap, files_len;
    /* Image layers only: the tree of the layers below, where a hard link
     * may also find its target (sp_archive_extract_layer); else -1. */
    int lower;
    /* Bits every mode loses: the process's umask with SP_ARCHIVE_UMASK,
     * else 0. */
    mode_t umask;
};

static size_t devino_hash(dev_t dev, ino_t ino, size_t cap)
{
    uint64_t h = ((uint64_t)ino * 0x9e3779b97f4a7c15ull) ^ (uint64_t)dev;
    h ^= h >> 29;
    return (size_t)h & (cap - 1);
}

static bool files_has(const struct xstate *x, dev_t dev, ino_t ino)
{
    if (!x->files_cap || ino == 0)
        return false;
    for (size_t i = devino_hash(dev, ino, x->files_cap);;
         i = (i + 1) & (x->files_cap - 1)) {
        if (x->files[i].ino == 0)
            return false;
        if (x->files[i].ino == ino && x->files[i].dev == dev)
            return true;
    }
}

static int files_add(struct xstate *x, dev_t dev, ino_t ino)
{
    if (ino == 0 || files_has(x, dev, ino))
        return 0;
    if ((x->files_len + 1) * 2 > x->files_cap) {
        size_t cap = x->files_cap ? x->files_cap * 2 : 256;
        struct devino *n = calloc(cap, sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < x->files_cap; i++) {
            if (x->files[i].ino == 0)
                continue;
            size_t j = devino_hash(x->files[i].dev, x->files[i].ino, cap);
            while (n[j].ino != 0)
                j = (j + 1) & (cap - 1);
            n[j] = x->files[i];
        }
        free(x->files);
        x->files = n;
        x->files_cap = cap;
    }
    size_t i = devino_hash(dev, ino, x->files_cap);
    while (x->files[i].ino != 0)
        i = (i + 1) & (x->files_cap - 1);
    x->files[i] = (struct devino){.dev = dev, .ino = ino};
    x->files_len++;
    return 0;
}

static void cache_drop(struct xstate *x)
{
    sp_close_keep_errno(x->cache_fd);
    x->cache_fd = -1;
    free(x->cache_path);
    x->cache_path = NULL;
}

/* Open (O_PATH) the directory `dir` (normalized, "" = dest) beneath dest,
 * one component at a time, making missing ones. A component that is a
 * symlink or a file is never followed: refused, or with
 * SP_ARCHIVE_OVERWRITE removed and replaced by a directory. The fd stays
 * owned by the cache; the caller must not close it. */
static int open_parent(struct xstate *x, const char *dir, const char *name,
                       int *ret_fd)
{
    if (x->cache_path && strcmp(x->cache_path, dir) == 0) {
        *ret_fd = x->cache_fd;
        return 0;
    }
    cache_drop(x);
    _cleanup_free_ char *copy = strdup(dir);
    _cleanup_free_ char *keep = strdup(dir);
    if (!copy || !keep)
        return sp_error_set(x->err, ENOMEM, "cannot allocate");
    _cleanup_close_ int cur = open_beneath(x->dest, "", O_PATH | O_DIRECTORY);
    if (cur < 0)
        return sp_error_set(x->err, -cur, "cannot open the destination");
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c;
         c = strtok_r(NULL, "/", &save)) {
        int fd = open_beneath(cur, c, O_PATH | O_DIRECTORY);
        if (fd == -ENOTDIR || fd == -ELOOP) {
            if (!(x->flags & SP_ARCHIVE_OVERWRITE))
                return refuse(x->err, ENOTDIR, name,
                              "its parent \"%s\" exists and is not a "
                              "directory (a symlink is never followed)",
                              c);
            if (unlinkat(cur, c, 0) < 0)
                return entry_fail(x->err, errno, name,
                                  "remove a non-directory in its path");
            fd = -ENOENT;
        }
        if (fd == -ENOENT) {
            if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST)
                return entry_fail(x->err, errno, name,
                                  "make a parent directory");
            fd = open_beneath(cur, c, O_PATH | O_DIRECTORY);
        }
        if (fd < 0)
            return fd == -ENOTDIR || fd == -ELOOP
                       ? refuse(x->err, ENOTDIR, name,
                                "its parent \"%s\" is not a directory", c)
                       : entry_fail(x->err, -fd, name,
                                    "open a parent directory");
        sp_close_keep_errno(cur);
        cur = fd;
    }
    x->cache_path = TAKE_PTR(keep);
    x->cache_fd = TAKE_FD(cur);
    *ret_fd = x->cache_fd;
    return 0;
}

/* Split a normalized non-empty name into its directory ("" for the root)
 * and its last component, in place. */
static void split_name(char *path, const char **ret_dir, const char **ret_base)
{
    char *slash = strrchr(path, '/');
    if (!slash) {
        *ret_dir = "";
        *ret_base = path;
        return;
    }
    *slash = '\0';
    *ret_dir = path;
    *ret_base = slash + 1;
}

/* Read and discard an entry's data, still bounded: a bomb can hide behind
 * an entry we skip as well as one we write. */
static int drain(struct xstate *x, const char *name)
{
    uint64_t seen = 0;
    for (;;) {
        const void *buf = NULL;
        size_t len = 0;
        la_int64_t off = 0;
        int r = archive_read_data_block(x->a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return refuse(x->err, EINVAL, name, "cannot read its data: %s",
                          archive_error_string(x->a));
        seen += len;
        if (seen > x->lim.max_entry_bytes)
            return refuse(x->err, EFBIG, name,
                          "its data is larger than the limit of %llu bytes",
                          (unsigned long long)x->lim.max_entry_bytes);
    }
}

/* Make room for a non-directory at dirfd/base: an existing directory is
 * refused, or with SP_ARCHIVE_OVERWRITE removed when empty. */
static int prepare_nondir(struct xstate *x, int dirfd, const char *base,
                          const char *name)
{
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return entry_fail(x->err, errno, name, "inspect the existing entry");
    }
    if (x->flags & SP_ARCHIVE_NO_CLOBBER)
        return refuse(x->err, EEXIST, name, "it already exists");
    if (!S_ISDIR(st.st_mode))
        return 0; /* replaced atomically by the rename */
    if (!(x->flags & SP_ARCHIVE_OVERWRITE))
        return refuse(x->err, EISDIR, name,
                      "it would replace an existing directory");
    /* dirfd is the cached parent itself, so the cache cannot point into
     * the directory removed here: nothing to invalidate. */
    if (unlinkat(dirfd, base, AT_REMOVEDIR) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return refuse(x->err, ENOTEMPTY, name,
                          "it would replace a non-empty directory");
        return entry_fail(x->err, errno, name, "remove the directory");
    }
    return 0;
}

/* Move the finished temporary into place; removes it on failure. */
static int commit(struct xstate *x, int dirfd, const char *tmp,
                  const char *base, const char *name)
{
    int r = prepare_nondir(x, dirfd, base, name);
    if (r >= 0) {
        unsigned fl = (x->flags & SP_ARCHIVE_NO_CLOBBER) ? RENAME_NOREPLACE : 0;
        if (renameat2(dirfd, tmp, dirfd, base, fl) < 0)
            r = errno == EEXIST
                    ? refuse(x->err, EEXIST, name, "it already exists")
                : errno == EISDIR
                    ? refuse(x->err, EISDIR, name,
                             "it would replace an existing directory")
                    : entry_fail(x->err, errno, name, "rename into place");
    }
    /* Also on success: renaming a hard link over another link to the same
     * inode succeeds without doing anything and leaves tmp in place. */
    unlinkat(dirfd, tmp, 0);
    return r;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
    ts[0] = (struct timespec){.tv_sec = 0, .tv_nsec = UTIME_OMIT};
    ts[1] = ts[0];
    if (archive_entry_mtime_is_set(e)) {
        long ns = archive_entry_mtime_nsec(e);
        ts[1].tv_sec = (time_t)archive_entry_mtime(e);
        ts[1].tv_nsec = (ns >= 0 && ns < 1000000000L) ? ns : 0;
    }
}

static int write_all_at(int fd, const char *buf, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int check_size(struct xstate *x, const char *name, uint64_t size)
{
    if (size > x->lim.max_entry_bytes)
        return refuse(x->err, EFBIG, name,
                      "it is larger than the limit of %llu bytes per file",
                      (unsigned long long)x->lim.max_entry_bytes);
    if (size > x->lim.max_total_bytes - x->total)
        return refuse(x->err, EFBIG, name,
                      "it brings the total past the limit of %llu bytes",
                      (unsigned long long)x->lim.max_total_bytes);
    return 0;
}

static int extract_file(struct xstate *x, struct archive_entry *e, int dirfd,
                        const char *base, const char *name)
{
    uint64_t declared = 0;
    if (archive_entry_size_is_set(e)) {
        if (archive_entry_size(e) < 0)
            return refuse(x->err, EINVAL, name, "its size is negative");
        declared = (uint64_t)archive_entry_size(e);
        int r = check_size(x, name, declared);
        if (r < 0)
            return r;
    }
    char tmp[32];
    _cleanup_close_ int fd = -1;
    for (int i = 0; i < 16 && fd < 0; i++) {
        temp_name(tmp);
        fd = openat(dirfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return entry_fail(x->err, errno, name, "create a temporary file");
    }
    if (fd < 0)
        return entry_fail(x->err, EEXIST, name, "create a temporary file");

    int r = 0;
    uint64_t extent = 0;
    for (;;) {
        const void *buf = NULL;
        size_t len = 0;
        la_int64_t off = 0;
        int ar = archive_read_data_block(x->a, &buf, &len, &off);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN) {
            r = refuse(x->err, EINVAL, name, "cannot read its data: %s",
                       archive_error_string(x->a));
            break;
        }
        if (off < 0 || (uint64_t)off > UINT64_MAX - len) {
            r = refuse(x->err, EINVAL, name, "its data has a bad offset");
            break;
        }
        /* Count the extent actually written, whatever the header said:
         * a member without a size (streamed zip) or a sparse map that
         * disagrees is bounded here. */
        uint64_t end = (uint64_t)off + len;
        if (end > extent) {
            r = check_size(x, name, end);
            if (r < 0)
                break;
            extent = end;
        }
        if (len) {
            r = write_all_at(fd, buf, len, (off_t)off);
            if (r < 0) {
                r = entry_fail(x->err, -r, name, "write");
                break;
            }
        }
    }
    uint64_t size = declared > extent ? declared : extent;
    if (r >= 0 && ftruncate(fd, (off_t)size) < 0)
        r = entry_fail(x->err, errno, name, "set the size");
    if (r >= 0 && fchmod(fd, archive_entry_perm(e) & 0777 & ~x->umask) < 0)
        r = entry_fail(x->err, errno, name, "set the mode");
    struct stat st;
    if (r >= 0 && fstat(fd, &st) < 0)
        r = entry_fail(x->err, errno, name, "inspect the new file");
    if (r >= 0) {
        struct timespec ts[2];
        entry_times(e, ts);
        (void)futimens(fd, ts); /* a bad time is not worth failing for */
        r = commit(x, dirfd, tmp, base, name);
    } else {
        unlinkat(dirfd, tmp, 0);
    }
    if (r < 0)
        return r;
    x->total += size;
    x->st->bytes += size;
    r = files_add(x, st.st_dev, st.st_ino);
    return r < 0 ? sp_error_set(x->err, -r, "cannot allocate") : 0;
}

static int extract_symlink(struct xstate *x, struct archive_entry *e, int dirfd,
                           const char *base, const char *name)
{
    const char *target = archive_entry_symlink(e);
    if (!target || !target[0])
        return refuse(x->err, EINVAL, name, "its symlink target is empty");
    if (strlen(target) > x->lim.max_path_len)
        return refuse(x->err, ENAMETOOLONG, name,
                      "its symlink target is longer than the limit");
    if (has_control(target))
        return refuse(x->err, EINVAL, name,
                      "its symlink target contains a control character");
    int r = drain(x, name);
    if (r < 0)
        return r;
    char tmp[32];
    for (int i = 0;; i++) {
        temp_name(tmp);
        /* Stored as is and never followed by us: later entries resolve
         * with RESOLVE_NO_SYMLINKS. */
        if (symlinkat(target, dirfd, tmp) == 0)
            break;
        if (errno != EEXIST || i == 15)
            return entry_fail(x->err, errno, name, "create the symlink");
    }
    struct timespec ts[2];
    entry_times(e, ts);
    (void)utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
    return commit(x, dirfd, tmp, base, name);
}

/* Does this layer's directory up hide the lower entry NAME: a whiteout
 * ".wh.NAME" or an opaque marker in it? */
static bool layer_hides(int up, const char *nm)
{
    struct stat st;
    char wh[NAME_MAX + 1];
    if (fstatat(up, ".wh..wh..opq", &st, AT_SYMLINK_NOFOLLOW) == 0)
        return true;
    if ((size_t)snprintf(wh, sizeof(wh), ".wh.%s", nm) >= sizeof(wh))
        return false; /* too long to be a name: no such whiteout */
    return fstatat(up, wh, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int layer_target_kind(struct xstate *x, const char *name,
                             const char *shown, const struct stat *st)
{
    const char *kind = S_ISDIR(st->st_mode)   ? "a directory"
                       : S_ISLNK(st->st_mode) ? "a symlink"
                                              : "not a regular file";
    return refuse(x->err, EPERM, name,
                  "its hard link target \"%s\" is %s (a hard link may only "
                  "name a regular file)",
                  shown, kind);
}

static int layer_target_not_dir(struct xstate *x, const char *name,
                                const char *shown, const char *comp)
{
    return refuse(x->err, EPERM, name,
                  "its hard link target \"%s\" goes through \"%s\", which "
                  "is not a directory (a symlink is never followed)",
                  shown, comp);
}

/* Image layers: find the hard link target `target` (normalized, not empty;
 * cut up in place) in the union this layer applies to — its own entries so
 * far (x->dest) over the layers below (x->lower) — as a container runtime
 * resolves it, walking one component at a time in both trees and never
 * following a symlink in either (sp_archive_extract_layer). On success
 * *ret_dirfd (the caller's to close) and *ret_base name the regular file,
 * *ret_st is its stat. */
static int layer_target(struct xstate *x, const char *name, char *target,
                        int *ret_dirfd, const char **ret_base,
                        struct stat *ret_st)
{
    char shown[SHOW_LEN];
    show_name(target, shown, sizeof(shown));
    _cleanup_close_ int up = open_beneath(x->dest, "", O_PATH | O_DIRECTORY);
    if (up < 0)
        return sp_error_set(x->err, -up, "cannot open the destination");
    _cleanup_close_ int low = open_beneath(x->lower, "", O_PATH | O_DIRECTORY);
    if (low < 0)
        return sp_error_set(x->err, -low, "cannot open the layers below");
    char *save = NULL;
    char *c = strtok_r(target, "/", &save);
    while (c) {
        char *next = strtok_r(NULL, "/", &save);
        struct stat st;
        bool up_dir = false;
        if (up >= 0) {
            if (low >= 0 && layer_hides(up, c)) {
                sp_close_keep_errno(low);
                low = -1;
            }
            if (fstatat(up, c, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!next) {
                    if (!S_ISREG(st.st_mode))
                        return layer_target_kind(x, name, shown, &st);
                    if (!files_has(x, st.st_dev, st.st_ino))
                        return refuse(x->err, EPERM, name,
                                      "its hard link target \"%s\" is not a "
                                      "file of this image's layers",
                                      shown);
                    *ret_dirfd = TAKE_FD(up);
                    *ret_base = c;
                    *ret_st = st;
                    return 0;
                }
                if (!S_ISDIR(st.st_mode))
                    return layer_target_not_dir(x, name, shown, c);
                int fd = open_beneath(up, c, O_PATH | O_DIRECTORY);
                if (fd < 0)
                    return entry_fail(x->err, -fd, name,
                                      "open its hard link target's directory");
                sp_close_keep_errno(up);
                up = fd;
                up_dir = true;
            } else if (errno != ENOENT && errno != ENAMETOOLONG) {
                return entry_fail(x->err, errno, name,
                                  "inspect its hard link target");
            } else {
                sp_close_keep_errno(up);
                up = -1;
            }
        }
        if (low >= 0) {
            if (fstatat(low, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT && errno != ENAMETOOLONG)
                    return entry_fail(x->err, errno, name,
                                      "inspect its hard link target");
                sp_close_keep_errno(low);
                low = -1;
            } else if (!next) {
                if (!S_ISREG(st.st_mode))
                    return layer_target_kind(x, name, shown, &st);
                *ret_dirfd = TAKE_FD(low);
                *ret_base = c;
                *ret_st = st;
                return 0;
            } else if (!S_ISDIR(st.st_mode)) {
                if (!up_dir)
                    return layer_target_not_dir(x, name, shown, c);
                /* This layer's directory replaces the lower non-dir. */
                sp_close_keep_errno(low);
                low = -1;
            } else {
                int fd = open_beneath(low, c, O_PATH | O_DIRECTORY);
                if (fd < 0)
                    return entry_fail(x->err, -fd, name,
                                      "open its hard link target's directory");
                sp_close_keep_errno(low);
                low = fd;
            }
        }
        if (up < 0 && low < 0)
            break;
        c = next;
    }
    return refuse(x->err, EPERM, name,
                  "its hard link target \"%s\" is in neither this layer nor "
                  "the layers below (missing, or removed by a whiteout)",
                  shown);
}

static int extract_hardlink(struct xstate *x, struct archive_entry *e,
                            int dirfd, const char *base, const char *name)
{
    const char *raw = archive_entry_hardlink(e);
    const char *why = NULL;
    _cleanup_free_ char *target = malloc(strlen(raw) + 1);
    if (!target)
        return sp_error_set(x->err, ENOMEM, "cannot allocate");
    int r = name_normalize(raw, &x->lim, target, &why);
    if (r < 0)
        return refuse(x->err, -r, name, "its hard link target: %s", why);
    if (!target[0])
        return refuse(x->err, EPERM, name,
                      "its hard link target is the destination itself");
    r = drain(x, name);
    if (r < 0)
        return r;
    const char *tdir = NULL, *tbase = NULL;
    _cleanup_close_ int tfd = -1;
    struct stat st;
    if (x->lower >= 0) {
        r = layer_target(x, name, target, &tfd, &tbase, &st);
        if (r < 0)
            return r;
    } else {
        split_name(target, &tdir, &tbase);
        tfd = open_beneath(x->dest, tdir, O_PATH | O_DIRECTORY);
        if (tfd < 0 || fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || !files_has(x, st.st_dev, st.st_ino))
            return refuse(x->err, EPERM, name,
                          "a hard link may only name a regular file "
                          "extracted earlier from this archive");
    }
    char tmp[32];
    for (int i = 0;; i++) {
        temp_name(tmp);
        /* flags 0: linkat never follows a symlink at the old path. */
        if (linkat(tfd, tbase, dirfd, tmp, 0) == 0)
            break;
        if (errno != EEXIST || i == 15)
            return entry_fail(x->err, errno, name, "create the hard link");
    }
    /* What got linked must be what we checked, even if the tree changed
     * under us in between. */
    struct stat now;
    if (fstatat(dirfd, tmp, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
        now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        unlinkat(dirfd, tmp, 0);
        return refuse(x->err, EPERM, name,
                      "its hard link target changed while linking");
    }
    r = commit(x, dirfd, tmp, base, name);
    if (r < 0 || x->lower < 0)
        return r;
    /* A file of the layers below, now also a name of this layer: a later
     * link of this layer may name it. */
    r = files_add(x, st.st_dev, st.st_ino);
    return r < 0 ? sp_error_set(x->err, -r, "cannot allocate") : 0;
}

static int extract_dir(struct xstate *x, struct archive_entry *e, int dirfd,
                       const char *base, const char *name)
{
    int r = drain(x, name);
    if (r < 0)
        return r;
    struct stat st;
    bool exists = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
        if (!(x->flags & SP_ARCHIVE_OVERWRITE))
            return refuse(x->err, EEXIST, name,
                          "it exists and is not a directory");
        if (unlinkat(dirfd, base, 0) < 0)
            return entry_fail(x->err, errno, name, "remove the old entry");
        exists = false;
    }
    if (!exists && mkdirat(dirfd, base, 0700) < 0 && errno != EEXIST)
        return entry_fail(x->err, errno, name, "make the directory");
    _cleanup_close_ int fd = open_beneath(dirfd, base, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd == -ENOTDIR || fd == -ELOOP
                   ? refuse(x->err, ENOTDIR, name, "it is not a directory")
                   : entry_fail(x->err, -fd, name, "open the directory");
    /* u+rwx always: later entries must be able to go in. */
    if (fchmod(fd, (archive_entry_perm(e) & 0777 & ~x->umask) | 0700) < 0)
        return entry_fail(x->err, errno, name, "set the mode");
    return 0;
}

static int extract_entry(struct xstate *x, struct archive_entry *e)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw)
        raw = archive_entry_pathname_utf8(e);
    if (!raw)
        return refuse(x->err, EINVAL, "(no name)", "it has no name");
    unsigned type = archive_entry_filetype(e);
    bool hardlink = archive_entry_hardlink(e) != NULL;
    const char *kind = NULL;
    if (!hardlink) {
        switch (type) {
        case AE_IFREG:
        case AE_IFDIR:
        case AE_IFLNK: break;
        case AE_IFCHR:
        case AE_IFBLK: kind = "device node"; break;
        case AE_IFIFO: kind = "fifo"; break;
        case AE_IFSOCK: kind = "socket"; break;
        default: kind = "unsupported entry type"; break;
        }
    }
    if (kind) {
        note_skip(x->st, raw, kind);
        return drain(x, raw);
    }

    const char *why = NULL;
    _cleanup_free_ char *path = malloc(strlen(raw) + 1);
    if (!path)
        return sp_error_set(x->err, ENOMEM, "cannot allocate");
    int r = name_normalize(raw, &x->lim, path, &why);
    if (r < 0)
        return refuse(x->err, -r, raw, "%s", why);
    if (!path[0]) {
        if (type == AE_IFDIR && !hardlink)
            return drain(x, raw); /* "./": the destination itself */
        return refuse(x->err, EPERM, raw, "it names the destination itself");
    }
    const char *dir = NULL, *base = NULL;
    split_name(path, &dir, &base);
    int dirfd = -1;
    r = open_parent(x, dir, raw, &dirfd);
    if (r < 0)
        return r;
    if (hardlink)
        return extract_hardlink(x, e, dirfd, base, raw);
    if (type == AE_IFDIR)
        return extract_dir(x, e, dirfd, base, raw);
    if (type == AE_IFLNK)
        return extract_symlink(x, e, dirfd, base, raw);
    return extract_file(x, e, dirfd, base, raw);
}

static void archive_freep(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}

static int extract_common(int in_fd, int dest_dirfd, int lower_dirfd,
                          const struct sp_archive_limits *lim, unsigned flags,
                          struct sp_archive_stats *stats, sp_error *err);

int sp_archive_extract(int in_fd, int dest_dirfd,
                       const struct sp_archive_limits *lim, unsigned flags,
                       struct sp_archive_stats *stats, sp_error *err)
{
    return extract_common(in_fd, dest_dirfd, -1, lim, flags, stats, err);
}

int sp_archive_extract_layer(int in_fd, int dest_dirfd, int lower_dirfd,
                             const struct sp_archive_limits *lim,
                             unsigned flags, struct sp_archive_stats *stats,
                             sp_error *err)
{
    if (lower_dirfd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EBADF,
                             "layer extraction needs the layers below");
    return extract_common(in_fd, dest_dirfd, lower_dirfd, lim, flags, stats,
                          err);
}

static int extract_common(int in_fd, int dest_dirfd, int lower_dirfd,
                          const struct sp_archive_limits *lim, unsigned flags,
                          struct sp_archive_stats *stats, sp_error *err)
{
    struct sp_archive_stats local = {0};
    struct sp_archive_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof(*st));
    if (in_fd < 0 || dest_dirfd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EBADF,
                             "archive extraction needs an input and a "
                             "destination fd");
    if (flags & ~(unsigned)(SP_ARCHIVE_OVERWRITE | SP_ARCHIVE_NO_CLOBBER |
                            SP_ARCHIVE_UMASK))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "unknown archive extraction flags 0x%x", flags);

    struct xstate x = {
        .dest = dest_dirfd,
        .flags = flags,
        .st = st,
        .err = err,
        .cache_fd = -1,
        .lower = lower_dirfd,
    };
    if (flags & SP_ARCHIVE_UMASK) {
        x.umask = umask(0);
        umask(x.umask);
    }
    limits_resolve(lim, &x.lim);

    __attribute__((cleanup(archive_freep))) struct archive *a =
        archive_read_new();
    if (!a)
        return sp_error_set(err, ENOMEM, "cannot start the archive reader");
    x.a = a;
    /* Formats and filters named one by one (not *_all): no cpio, ISO, RAR
     * or other parsers we do not need, and a filter only when its library
     * is linked in, so libarchive never falls back to running an external
     * program. */
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_empty(a);
    if (archive_zlib_version())
        archive_read_support_filter_gzip(a);
    if (archive_bzlib_version())
        archive_read_support_filter_bzip2(a);
    if (archive_liblzma_version())
        archive_read_support_filter_xz(a);
    if (archive_libzstd_version())
        archive_read_support_filter_zstd(a);
    if (archive_read_open_fd(a, in_fd, COPY_CHUNK) != ARCHIVE_OK) {
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "cannot read the archive: %s",
                             archive_error_string(a));
    }

    int r = 0;
    for (;;) {
        struct archive_entry *e = NULL;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN) {
            r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                              "cannot read the archive after %llu "
                              "entries: %s",
                              (unsigned long long)st->entries,
                              archive_error_string(a));
            break;
        }
        if (st->entries >= x.lim.max_entries) {
            r = sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                              "the archive has more than %llu entries",
                              (unsigned long long)x.lim.max_entries);
            break;
        }
        st->entries++;
        r = extract_entry(&x, e);
        if (r < 0)
            break;
    }
    cache_drop(&x);
    free(x.files);
    return r;
}

/* ---- creation -------------------------------------------------------- */

struct cstate {
    struct archive *a;
    struct sp_archive_limits lim;
    struct sp_archive_stats *st;
    sp_error *err;
    char *buf; /* COPY_CHUNK bytes */
};

static int write_fail(struct cstate *c, const char *path)
{
    char shown[SHOW_LEN];
    show_name(path, shown, sizeof(shown));
    return sp_error_set(c->err, EIO, "cannot write \"%s\" to the archive: %s",
                        shown, archive_error_string(c->a));
}

static int create_fail(struct cstate *c, int errnum, const char *path,
                       const char *what)
{
    char shown[SHOW_LEN];
    show_name(path, shown, sizeof(shown));
    return sp_error_set(c->err, errnum, "cannot %s \"%s\"", what, shown);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void entry_freep(struct archive_entry **e)
{
    if (*e)
        archive_entry_free(*e);
}

static int add_tree(struct cstate *c, int dirfd, const char *base,
                    const char *path, unsigned depth);

/* The names in directory fd (not "." or ".."), sorted. */
static int list_dir(struct cstate *c, int fd, const char *path,
                    char ***ret_names, size_t *ret_n)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return create_fail(c, errno, path, "read directory");
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        sp_close_keep_errno(dup_fd);
        return create_fail(c, errno, path, "read directory");
    }
    rewinddir(d); /* the dup shares its offset with fd */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                r = create_fail(c, errno, path, "read directory");
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        /* Bound memory by what the entry limit could still take. */
        if (c->st->entries + n >= c->lim.max_entries) {
            r = sp_error_setk(c->err, SP_ERR_USAGE, E2BIG,
                              "the tree has more than %llu entries",
                              (unsigned long long)c->lim.max_entries);
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                r = sp_error_set(c->err, ENOMEM, "cannot allocate");
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name))) {
            r = sp_error_set(c->err, ENOMEM, "cannot allocate");
            break;
        }
        n++;
    }
    closedir(d);
    if (r < 0) {
        free_names(names, n);
        return r;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *ret_names = names;
    *ret_n = n;
    return 0;
}

static int add_children(struct cstate *c, int fd, const char *path,
                        unsigned depth)
{
    char **names = NULL;
    size_t n = 0;
    int r = list_dir(c, fd, path, &names, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r >= 0; i++) {
        size_t plen = strlen(path), nlen = strlen(names[i]);
        if (plen + 1 + nlen > c->lim.max_path_len) {
            char shown[SHOW_LEN];
            show_name(path, shown, sizeof(shown));
            r = sp_error_setk(c->err, SP_ERR_USAGE, ENAMETOOLONG,
                              "a name under \"%s\" is longer than the "
                              "limit of %u bytes",
                              shown, c->lim.max_path_len);
            break;
        }
        _cleanup_free_ char *child = malloc(plen + nlen + 2);
        if (!child) {
            r = sp_error_set(c->err, ENOMEM, "cannot allocate");
            break;
        }
        if (plen)
            snprintf(child, plen + nlen + 2, "%s/%s", path, names[i]);
        else
            memcpy(child, names[i], nlen + 1);
        r = add_tree(c, fd, names[i], child, depth + 1);
    }
    free_names(names, n);
    return r;
}

static int add_file_data(struct cstate *c, int fd, uint64_t size,
                         const char *path)
{
    while (size) {
        size_t want = size < COPY_CHUNK ? (size_t)size : COPY_CHUNK;
        ssize_t n = read(fd, c->buf, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return create_fail(c, errno, path, "read");
        }
        if (n == 0)
            break; /* shrank while we read: libarchive pads with zeros */
        if (archive_write_data(c->a, c->buf, (size_t)n) < 0)
            return write_fail(c, path);
        size -= (uint64_t)n;
    }
    return 0;
}

/* Workspace secrets (secrets.h; set only in the agent): a file's content
 * is redacted on its way into the archive. Two passes over the file: the
 * first learns the redacted size (the entry's header comes first), the
 * second writes; nothing is held in memory but the redactor's hold. */
static int count_out(void *ctx, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)ctx += len;
    return 0;
}

struct arch_out {
    struct cstate *c;
    bool failed;
};

static int arch_out(void *ctx, const void *data, size_t len)
{
    struct arch_out *ao = ctx;
    if (len && archive_write_data(ao->c->a, data, len) < 0) {
        ao->failed = true;
        return -EIO;
    }
    return 0;
}

/* A symlink target with the secrets redacted, NUL-terminated and
 * malloc'd; NULL when that fails (the caller writes a marker). */
static char *redact_target(const char *t, size_t n)
{
    char *out = NULL;
    size_t ol = 0;
    if (sp_redact_buffer(sp_secrets_agent()->redact, t, n, &out, &ol) < 0)
        return NULL;
    char *z = realloc(out, ol + 1);
    if (!z) {
        free(out);
        return NULL;
    }
    z[ol] = '\0';
    if (strlen(z) != ol) {
        free(z);
        return NULL;
    }
    return z;
}

/* One pass over fd's first size bytes through a redacting stream. */
static int redact_pass(struct cstate *c, int fd, uint64_t size,
                       sp_redact_out_fn out, void *ctx)
{
    struct sp_redact_stream *rs =
        sp_redact_stream_new(sp_secrets_agent()->redact);
    if (!rs)
        return -ENOMEM;
    uint64_t off = 0;
    int r = 0;
    while (off < size && r == 0) {
        size_t want = size - off < COPY_CHUNK ? (size_t)(size - off)
                                              : COPY_CHUNK;
        ssize_t n = pread(fd, c->buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        if (n <= 0)
            break;
        r = sp_redact_feed(rs, c->buf, (size_t)n, out, ctx);
        off += (uint64_t)n;
    }
    if (r == 0)
        r = sp_redact_finish(rs, out, ctx);
    sp_redact_stream_free(rs);
    return r;
}

/* Add dirfd/base, stored as `path`, and (for a directory) all below it. */
static int add_tree(struct cstate *c, int dirfd, const char *base,
                    const char *path, unsigned depth)
{
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return create_fail(c, errno, path, "inspect");
    if (has_control(base)) {
        note_skip(c->st, path, "name contains a control character");
        return 0;
    }
    const char *kind =
        S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "device node"
        : S_ISFIFO(st.st_mode)                     ? "fifo"
        : S_ISSOCK(st.st_mode)                     ? "socket"
        : S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)
            ? NULL
            : "unsupported file type";
    if (kind) {
        note_skip(c->st, path, kind);
        return 0;
    }
    char shown[SHOW_LEN];
    show_name(path, shown, sizeof(shown));
    if (depth > c->lim.max_depth)
        return sp_error_setk(c->err, SP_ERR_USAGE, ENAMETOOLONG,
                             "\"%s\" is deeper than the limit of %u", shown,
                             c->lim.max_depth);
    if (c->st->entries >= c->lim.max_entries)
        return sp_error_setk(c->err, SP_ERR_USAGE, E2BIG,
                             "the tree has more than %llu entries",
                             (unsigned long long)c->lim.max_entries);

    __attribute__((cleanup(entry_freep))) struct archive_entry *e =
        archive_entry_new();
    if (!e)
        return sp_error_set(c->err, ENOMEM, "cannot allocate");
    archive_entry_set_pathname(e, path);
    archive_entry_set_perm(e, st.st_mode & 0777);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);

    _cleanup_close_ int fd = -1;
    if (S_ISLNK(st.st_mode)) {
        if ((uint64_t)st.st_size > c->lim.max_path_len)
            return sp_error_setk(c->err, SP_ERR_USAGE, ENAMETOOLONG,
                                 "the target of symlink \"%s\" is longer "
                                 "than the limit",
                                 shown);
        char target[SP_ARCHIVE_DEF_MAX_PATH_LEN + 2];
        size_t cap = c->lim.max_path_len + 2 < sizeof(target)
                         ? c->lim.max_path_len + 2
                         : sizeof(target);
        ssize_t n = readlinkat(dirfd, base, target, cap - 1);
        if (n < 0)
            return create_fail(c, errno, path, "read symlink");
        if ((size_t)n >= cap - 1)
            return sp_error_setk(c->err, SP_ERR_USAGE, ENAMETOOLONG,
                                 "the target of symlink \"%s\" is longer "
                                 "than the limit",
                                 shown);
        target[n] = '\0';
        archive_entry_set_filetype(e, AE_IFLNK);
        /* Secrets: a link target is bytes the sandbox chose, as a file's
         * content is (ln -s "$(cat /run/secrets/T)" l): redacted too. */
        if (sp_secrets_agent()) {
            char *red = redact_target(target, (size_t)n);
            archive_entry_set_symlink(e, red ? red : "[REDACTED]");
            free(red);
        } else {
            archive_entry_set_symlink(e, target);
        }
    } else if (S_ISDIR(st.st_mode)) {
        archive_entry_set_filetype(e, AE_IFDIR);
        fd = openat(dirfd, base,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return create_fail(c, errno, path, "open directory");
    } else {
        /* O_NONBLOCK: a fifo swapped in after fstatat must not hang us. */
        fd =
            openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return create_fail(c, errno, path, "open");
        archive_entry_set_filetype(e, AE_IFREG);
    }
    if (fd >= 0) {
        struct stat now;
        if (fstat(fd, &now) < 0)
            return create_fail(c, errno, path, "inspect");
        if (now.st_dev != st.st_dev || now.st_ino != st.st_ino ||
            (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT))
            return sp_error_setk(c->err, SP_ERR_SYSTEM, EAGAIN,
                                 "\"%s\" changed while being archived", shown);
        st = now;
    }
    uint64_t size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    if (size > c->lim.max_entry_bytes)
        return sp_error_setk(c->err, SP_ERR_USAGE, EFBIG,
                             "\"%s\" is larger than the limit of %llu bytes "
                             "per file",
                             shown, (unsigned long long)c->lim.max_entry_bytes);
    if (size > c->lim.max_total_bytes - c->st->bytes)
        return sp_error_setk(c->err, SP_ERR_USAGE, EFBIG,
                             "\"%s\" brings the total past the limit of "
                             "%llu bytes",
                             shown, (unsigned long long)c->lim.max_total_bytes);
    bool redact = S_ISREG(st.st_mode) && sp_secrets_agent();
    uint64_t entry_size = size;
    if (redact) {
        entry_size = 0;
        int r = redact_pass(c, fd, size, count_out, &entry_size);
        if (r < 0)
            return create_fail(c, -r, path, "read");
    }
    archive_entry_set_size(e, (la_int64_t)entry_size);
    if (archive_write_header(c->a, e) < ARCHIVE_WARN)
        return write_fail(c, path);
    c->st->entries++;
    if (redact) {
        struct arch_out ao = {c, false};
        int r = redact_pass(c, fd, size, arch_out, &ao);
        if (ao.failed)
            return write_fail(c, path);
        if (r < 0)
            return create_fail(c, -r, path, "read");
        c->st->bytes += size;
    } else if (S_ISREG(st.st_mode)) {
        int r = add_file_data(c, fd, size, path);
        if (r < 0)
            return r;
        c->st->bytes += size;
    }
    if (archive_write_finish_entry(c->a) < ARCHIVE_WARN)
        return write_fail(c, path);
    if (S_ISDIR(st.st_mode))
        return add_children(c, fd, path, depth);
    return 0;
}

static void archive_write_freep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}

int sp_archive_create(int src_dirfd, const char *subpath, int out_fd,
                      int format, const struct sp_archive_limits *lim,
                      struct sp_archive_stats *stats, sp_error *err)
{
    struct sp_archive_stats local = {0};
    struct sp_archive_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof(*st));
    if (src_dirfd < 0 || out_fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, EBADF,
                             "archive creation needs a source and an "
                             "output fd");
    if (format != SP_ARCHIVE_TAR && format != SP_ARCHIVE_TAR_GZ)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "unknown archive format %d", format);
    struct cstate c = {.st = st, .err = err};
    limits_resolve(lim, &c.lim);

    _cleanup_free_ char *path = NULL;
    if (subpath) {
        const char *why = NULL;
        if (!(path = malloc(strlen(subpath) + 1)))
            return sp_error_set(err, ENOMEM, "cannot allocate");
        int r = name_normalize(subpath, &c.lim, path, &why);
        if (r < 0) {
            char shown[SHOW_LEN];
            show_name(subpath, shown, sizeof(shown));
            return sp_error_setk(err, SP_ERR_USAGE, -r,
                                 "cannot archive \"%s\": %s", shown, why);
        }
    }
    _cleanup_free_ char *buf = malloc(COPY_CHUNK);
    if (!buf)
        return sp_error_set(err, ENOMEM, "cannot allocate");
    c.buf = buf;

    __attribute__((cleanup(archive_write_freep))) struct archive *a =
        archive_write_new();
    if (!a)
        return sp_error_set(err, ENOMEM, "cannot start the archive writer");
    c.a = a;
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        (format == SP_ARCHIVE_TAR_GZ &&
         archive_write_add_filter_gzip(a) != ARCHIVE_OK))
        return sp_error_set(err, EINVAL, "cannot set up the archive writer: %s",
                            archive_error_string(a));
    if (format == SP_ARCHIVE_TAR_GZ) /* no time stamp: same tree, same bytes */
        (void)archive_write_set_options(a, "gzip:!timestamp");
    if (archive_write_open_fd(a, out_fd) != ARCHIVE_OK)
        return sp_error_set(err, EIO, "cannot start writing the archive: %s",
                            archive_error_string(a));

    int r = 0;
    if (!path || !path[0]) {
        _cleanup_close_ int root =
            open_beneath(src_dirfd, "", O_RDONLY | O_DIRECTORY);
        if (root < 0)
            return sp_error_set(err, -root, "cannot open the source directory");
        r = add_children(&c, root, "", 0);
    } else {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
            return sp_error_set(err, ENOMEM, "cannot allocate");
        const char *dir = NULL, *base = NULL;
        split_name(copy, &dir, &base);
        _cleanup_close_ int pfd =
            open_beneath(src_dirfd, dir, O_PATH | O_DIRECTORY);
        if (pfd < 0) {
            char shown[SHOW_LEN];
            show_name(path, shown, sizeof(shown));
            return sp_error_set(err, -pfd,
                                "cannot open the parent of \"%s\" (symlinks "
                                "are not followed)",
                                shown);
        }
        unsigned depth = 1;
        for (const char *p = path; *p; p++)
            depth += *p == '/';
        r = add_tree(&c, pfd, base, path, depth);
    }
    if (r < 0)
        return r;
    if (archive_write_close(a) != ARCHIVE_OK)
        return sp_error_set(err, EIO, "cannot finish the archive: %s",
                            archive_error_string(a));
    return 0;
}
