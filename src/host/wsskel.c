/* wsskel.c — the shared root skeleton of workspaces (wsskel.h).
 *
 * The entries are recorded first, each with the stat of its host source,
 * into a manifest; the manifest names the skeleton (a hash, checked byte
 * for byte against the stored manifest) so the common case — a skeleton
 * that exists — costs one stat per source and one small read. Only a new
 * manifest builds: into a temporary directory, renamed into place whole.
 *
 * Everything under skel/ is written by sandpit alone and walked without
 * following symlinks. Sources are host paths the plan exposes anyway. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wsskel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "mountplan.h"
#include "state.h"
#include "util.h"

#define SKEL_TREE_MAX_DEPTH 32
/* Longest manifest read back (the recorded one is bounded by the plan and
 * the tree bounds; a longer stored one is simply not reused). */
#define SKEL_MANIFEST_MAX (4u << 20)

enum act_kind {
    A_DIR = 'D',   /* mkdir -p rel, mode */
    A_POINT = 'P', /* mount point: dir, or empty file */
    A_COPY = 'F',  /* copy src to rel (absent src: skipped) */
    A_LINK = 'L',  /* symlink rel -> src */
};

struct act {
    enum act_kind kind;
    mode_t mode;
    bool file;
    char *src;
    char *rel;
    char *append; /* A_COPY: written after the copy, or NULL */
};

struct sp_skel {
    struct act *acts;
    size_t n, cap;
    char *man; /* the manifest text */
    size_t mlen, mcap;
    bool oom;
    char key[40]; /* after sp_skel_commit */
};

struct sp_skel *sp_skel_new(void)
{
    return calloc(1, sizeof(struct sp_skel));
}

void sp_skel_free(struct sp_skel *sk)
{
    if (!sk)
        return;
    for (size_t i = 0; i < sk->n; i++) {
        free(sk->acts[i].src);
        free(sk->acts[i].rel);
        free(sk->acts[i].append);
    }
    free(sk->acts);
    free(sk->man);
    free(sk);
}

static void man_put(struct sp_skel *sk, const void *p, size_t n)
{
    if (sk->oom)
        return;
    if (sk->mlen + n + 1 > sk->mcap) {
        size_t cap = sk->mcap ? sk->mcap : 4096;
        while (cap < sk->mlen + n + 1)
            cap *= 2;
        char *m = realloc(sk->man, cap);
        if (!m) {
            sk->oom = true;
            return;
        }
        sk->man = m;
        sk->mcap = cap;
    }
    memcpy(sk->man + sk->mlen, p, n);
    sk->mlen += n;
    sk->man[sk->mlen] = '\0';
}

/* A string as <length>:<bytes>, so any byte (a newline) is unambiguous. */
static void man_str(struct sp_skel *sk, const char *s)
{
    char len[32];
    int k = snprintf(len, sizeof(len), " %zu:", s ? strlen(s) : 0);
    man_put(sk, len, (size_t)k);
    if (s)
        man_put(sk, s, strlen(s));
}

static void man_stat(struct sp_skel *sk, const struct stat *st)
{
    char b[160];
    int k = snprintf(b, sizeof(b), " %o %" PRIu64 " %" PRId64 ".%ld %" PRIu64
                     " %" PRIu64, (unsigned)st->st_mode, (uint64_t)st->st_size,
                     (int64_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec,
                     (uint64_t)st->st_ino, (uint64_t)st->st_dev);
    man_put(sk, b, (size_t)k);
}

static int add(struct sp_skel *sk, enum act_kind kind, const char *src,
               const char *rel, mode_t mode, bool file)
{
    if (strlen(rel) >= SP_MAX_PATH || (src && strlen(src) >= SP_MAX_PATH))
        return -ENAMETOOLONG;
    if (sk->n == sk->cap) {
        size_t cap = sk->cap ? sk->cap * 2 : 64;
        struct act *a = realloc(sk->acts, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        sk->acts = a;
        sk->cap = cap;
    }
    struct act *a = &sk->acts[sk->n];
    a->kind = kind;
    a->mode = mode;
    a->file = file;
    a->append = NULL;
    a->src = src ? strdup(src) : NULL;
    a->rel = strdup(rel);
    if (!a->rel || (src && !a->src)) {
        free(a->src);
        free(a->rel);
        return -ENOMEM;
    }
    sk->n++;
    char head[48];
    int k = snprintf(head, sizeof(head), "%c %o %d", (char)kind,
                     (unsigned)mode, file ? 1 : 0);
    man_put(sk, head, (size_t)k);
    man_str(sk, src);
    man_str(sk, rel);
    return sk->oom ? -ENOMEM : 0;
}

static void man_end(struct sp_skel *sk)
{
    man_put(sk, "\n", 1);
}

int sp_skel_dir(struct sp_skel *sk, const char *rel, mode_t mode)
{
    int r = add(sk, A_DIR, NULL, rel, mode, false);
    man_end(sk);
    return r;
}

int sp_skel_point(struct sp_skel *sk, const char *rel, mode_t mode, bool file)
{
    int r = add(sk, A_POINT, NULL, rel, mode, file);
    man_end(sk);
    return r;
}

int sp_skel_link(struct sp_skel *sk, const char *target, const char *rel)
{
    int r = add(sk, A_LINK, target, rel, 0777, false);
    man_end(sk);
    return r;
}

int sp_skel_copy(struct sp_skel *sk, const char *src, const char *rel,
                 mode_t mode, const char *append)
{
    int r = add(sk, A_COPY, src, rel, mode, true);
    if (r == 0 && append) {
        sk->acts[sk->n - 1].append = strdup(append);
        if (!sk->acts[sk->n - 1].append)
            r = -ENOMEM;
        man_put(sk, " +", 2);
        man_str(sk, append);
    }
    struct stat st;
    if (r == 0 && stat(src, &st) == 0)
        man_stat(sk, &st);
    else
        man_put(sk, " -", 2);
    man_end(sk);
    return r;
}

struct tree {
    size_t entries;
    uint64_t bytes;
    char src[SP_MAX_PATH];
    char rel[SP_MAX_PATH];
};

/* Record the directory t->src (open as dfd, taken) as t->rel and all
 * below it. 1 recorded, 0 past a bound, < 0 error. */
static int tree_walk(struct sp_skel *sk, struct tree *t, int dfd,
                     unsigned depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    size_t slen = strlen(t->src), rlen = strlen(t->rel);
    int rc = 1;
    struct dirent *de;
    while (rc > 0 && (de = readdir(d))) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        if (++t->entries > SP_WS_SKEL_TREE_MAX_ENTRIES) {
            rc = 0;
            break;
        }
        size_t nl = strlen(n);
        if (slen + nl + 2 >= sizeof(t->src) || rlen + nl + 2 >= sizeof(t->rel)) {
            rc = 0;
            break;
        }
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone since readdir */
        /* A root caller's skeleton is ID-mapped: host root's copies are
         * the sandbox's root's there (docs/security.md). What only host
         * root may read (/etc/ssl/private) must stay nobody's: such a
         * tree is not folded in but stays an overlay of the host's. */
        if (geteuid() == 0 &&
            ((S_ISDIR(st.st_mode) &&
              (st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH)) ||
             (S_ISREG(st.st_mode) && !(st.st_mode & S_IROTH)))) {
            rc = 0;
            break;
        }
        t->src[slen] = '/';
        memcpy(t->src + slen + 1, n, nl + 1);
        t->rel[rlen] = '/';
        memcpy(t->rel + rlen + 1, n, nl + 1);
        int r = 0;
        if (S_ISDIR(st.st_mode)) {
            r = add(sk, A_DIR, NULL, t->rel, st.st_mode & 0777, false);
            man_stat(sk, &st);
            man_end(sk);
            int c = r < 0 ? -1
                          : openat(dirfd(d), n, O_RDONLY | O_DIRECTORY |
                                                    O_NOFOLLOW | O_CLOEXEC);
            if (c >= 0 && depth + 1 >= SKEL_TREE_MAX_DEPTH) {
                close(c);
                rc = 0;
            } else if (c >= 0) {
                rc = tree_walk(sk, t, c, depth + 1);
            } /* else unreadable (another user's): kept empty */
        } else if (S_ISREG(st.st_mode)) {
            t->bytes += (uint64_t)st.st_size;
            if (t->bytes > SP_WS_SKEL_TREE_MAX_BYTES) {
                rc = 0;
            } else if (faccessat(dirfd(d), n, R_OK, AT_EACCESS) == 0) {
                r = add(sk, A_COPY, t->src, t->rel, st.st_mode & 0777, true);
                man_stat(sk, &st);
                man_end(sk);
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[SP_MAX_PATH];
            ssize_t k = readlinkat(dirfd(d), n, target, sizeof(target) - 1);
            if (k >= 0) {
                target[k] = '\0';
                r = add(sk, A_LINK, target, t->rel, 0777, false);
                man_end(sk);
            }
        }
        /* sockets, fifos and devices are not folded in */
        if (r < 0)
            rc = r;
        t->src[slen] = '\0';
        t->rel[rlen] = '\0';
    }
    closedir(d);
    return rc;
}

/* Count the entries below the directory dfd (taken) from its listings
 * alone (no stat): past `limit` it stops. The big trees are told apart
 * this way for the price of a getdents each, not a stat per entry. */
static size_t tree_count(int dfd, size_t limit, unsigned depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return limit + 1;
    }
    size_t n = 0;
    struct dirent *de;
    while (n <= limit && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (++n > limit)
            break;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (depth + 1 >= SKEL_TREE_MAX_DEPTH) {
            n = limit + 1;
            break;
        }
        int c = openat(dirfd(d), de->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (c >= 0)
            n += tree_count(c, limit - n, depth + 1);
    }
    closedir(d);
    return n;
}

int sp_skel_tree(struct sp_skel *sk, const char *src, const char *rel)
{
    size_t n0 = sk->n, m0 = sk->mlen;
    int dfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    /* (a fresh open: a dup would share the read position) */
    int cfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0 || tree_count(cfd, SP_WS_SKEL_TREE_MAX_ENTRIES, 0) >
                       SP_WS_SKEL_TREE_MAX_ENTRIES) {
        close(dfd);
        return 0;
    }
    struct stat st;
    struct tree *t = calloc(1, sizeof(*t));
    if (!t || fstat(dfd, &st) < 0 || strlen(src) >= sizeof(t->src) ||
        strlen(rel) >= sizeof(t->rel)) {
        free(t);
        close(dfd);
        return t ? 0 : -ENOMEM;
    }
    strcpy(t->src, src);
    strcpy(t->rel, rel);
    int rc = add(sk, A_DIR, NULL, rel, st.st_mode & 0777, false);
    man_stat(sk, &st);
    man_end(sk);
    if (rc == 0)
        rc = tree_walk(sk, t, dfd, 0);
    else
        close(dfd);
    free(t);
    if (rc <= 0) {
        /* not folded: forget what this tree recorded */
        for (size_t i = n0; i < sk->n; i++) {
            free(sk->acts[i].src);
            free(sk->acts[i].rel);
        }
        sk->n = n0;
        sk->mlen = m0;
        if (sk->man)
            sk->man[m0] = '\0';
    }
    return sk->oom ? -ENOMEM : rc;
}

/* ---- building ---------------------------------------------------------- */

int sp_mkpath_nofollow(int dirfd, const char *rel, mode_t mode, bool file)
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

/* The parent directories of `rel` below basefd. */
static int mkparent(int basefd, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return 0;
    char parent[SP_MAX_PATH];
    if ((size_t)(slash - rel) >= sizeof(parent))
        return -ENAMETOOLONG;
    memcpy(parent, rel, (size_t)(slash - rel));
    parent[slash - rel] = '\0';
    return sp_mkpath_nofollow(basefd, parent, 0755, false);
}

/* Copy a host file to rel (a fresh tree: nothing is there). A missing or
 * unreadable source is skipped (the defaults are optional). */
static int copy_file(int basefd, const char *src, const char *rel, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (in < 0)
        return 0;
    struct stat si;
    if (fstat(in, &si) < 0 || !S_ISREG(si.st_mode)) {
        close(in);
        return 0;
    }
    int out = openat(basefd, rel,
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     mode & 0777);
    if (out < 0) {
        int e = errno;
        close(in);
        return e == EEXIST ? 0 : -e;
    }
    int rc = 0;
    for (int rounds = 0; rounds < 4096; rounds++) {
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
    return rc;
}

/* Write text at the end of rel (copied just before; absent: nothing). */
static int append_file(int basefd, const char *rel, const char *text)
{
    int fd = openat(basefd, rel, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = sp_write_all(fd, text, strlen(text)) < 0 ? -EIO : 0;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int build(const struct sp_skel *sk, int basefd)
{
    for (size_t i = 0; i < sk->n; i++) {
        const struct act *a = &sk->acts[i];
        int r = 0;
        switch (a->kind) {
        case A_DIR:
            r = sp_mkpath_nofollow(basefd, a->rel, a->mode, false);
            if (r == 0 && fchmodat(basefd, a->rel, a->mode, 0) < 0) /* umask */
                r = -errno;
            break;
        case A_POINT:
            r = sp_mkpath_nofollow(basefd, a->rel, a->mode, a->file);
            break;
        case A_COPY:
            r = mkparent(basefd, a->rel);
            if (r == 0)
                r = copy_file(basefd, a->src, a->rel, a->mode);
            if (r == 0 && a->append)
                r = append_file(basefd, a->rel, a->append);
            break;
        case A_LINK:
            r = mkparent(basefd, a->rel);
            if (r == 0 && symlinkat(a->src, basefd, a->rel) < 0 &&
                errno != EEXIST)
                r = -errno;
            break;
        default:
            r = -EINVAL;
            break;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- finding, linking, collecting -------------------------------------- */

static uint64_t fnv1a(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* 1 when skel/<key>.m holds exactly the manifest and skel/<key> is a dir. */
static int matches(int skfd, const char *key, const struct sp_skel *sk)
{
    char mname[64];
    snprintf(mname, sizeof(mname), "%s.m", key);
    int fd = openat(skfd, mname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    int ok = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (size_t)st.st_size == sk->mlen && sk->mlen <= SKEL_MANIFEST_MAX) {
        char *buf = malloc(sk->mlen + 1);
        size_t off = 0;
        while (buf && off < sk->mlen) {
            ssize_t k = read(fd, buf + off, sk->mlen - off);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
        ok = buf && off == sk->mlen && memcmp(buf, sk->man, sk->mlen) == 0;
        free(buf);
    }
    close(fd);
    if (ok && (fstatat(skfd, key, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
               !S_ISDIR(st.st_mode)))
        ok = 0;
    return ok;
}

/* Build the skeleton as skel/<name> with its manifest. */
static int build_as(int skfd, const char *name, const struct sp_skel *sk,
                    sp_error *err)
{
    char tmp[64], mtmp[72], mname[72];
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)sp_now_us();
    snprintf(tmp, sizeof(tmp), ".new-%d-%08x", (int)getpid(), rnd);
    snprintf(mtmp, sizeof(mtmp), "%s.m", tmp);
    snprintf(mname, sizeof(mname), "%s.m", name);
    if (mkdirat(skfd, tmp, 0755) < 0)
        return sp_error_set(err, errno, "cannot create a workspace skeleton");
    int rc = 0;
    int bfd = openat(skfd, tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (bfd < 0)
        rc = -errno;
    else {
        rc = build(sk, bfd);
        close(bfd);
    }
    if (rc == 0) {
        int mfd = openat(skfd, mtmp,
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         0600);
        if (mfd < 0)
            rc = -errno;
        else {
            rc = sp_write_all(mfd, sk->man, sk->mlen);
            if (close(mfd) < 0 && rc == 0)
                rc = -errno;
        }
    }
    /* The manifest first: a dir in place always has its manifest. */
    if (rc == 0 && renameat(skfd, mtmp, skfd, mname) < 0)
        rc = -errno;
    if (rc == 0 && renameat(skfd, tmp, skfd, name) < 0) {
        rc = -errno;
        if ((rc == -EEXIST || rc == -ENOTEMPTY) && matches(skfd, name, sk))
            rc = 0; /* built at the same time by another start */
    }
    unlinkat(skfd, mtmp, 0);
    sp_rm_rf_at(skfd, tmp);
    if (rc < 0)
        return sp_error_set(err, -rc, "cannot build a workspace skeleton");
    return 0;
}

/* Point lfd/base at target (replacing the directory of an older layout). */
static int point_base(int lfd, const char *target)
{
    char cur[128];
    ssize_t k = readlinkat(lfd, "base", cur, sizeof(cur) - 1);
    if (k >= 0) {
        cur[k] = '\0';
        if (strcmp(cur, target) == 0)
            return 0;
    }
    unlinkat(lfd, "base.new", 0);
    if (symlinkat(target, lfd, "base.new") < 0)
        return -errno;
    if (renameat(lfd, "base.new", lfd, "base") == 0)
        return 0;
    if (errno != EISDIR && errno != ENOTEMPTY && errno != EEXIST) {
        int e = errno;
        unlinkat(lfd, "base.new", 0);
        return -e;
    }
    sp_rm_rf_at(lfd, "base");
    if (renameat(lfd, "base.new", lfd, "base") < 0) {
        int e = errno;
        unlinkat(lfd, "base.new", 0);
        return -e;
    }
    return 0;
}

int sp_skel_commit(struct sp_skel *sk, int lfd, sp_error *err)
{
    if (sk->oom)
        return sp_error_set(err, ENOMEM, "workspace skeleton");
    /* layers/ is workspaces/<name>/layers: the state dir is three up. */
    _cleanup_close_ int statefd =
        openat(lfd, "../../..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (statefd < 0)
        return sp_error_set(err, errno, "cannot open the state directory");
    if (mkdirat(statefd, SP_WS_SKEL_DIR, 0700) < 0 && errno != EEXIST)
        return sp_error_set(err, errno, "cannot create %s", SP_WS_SKEL_DIR);
    _cleanup_close_ int skfd = openat(statefd, SP_WS_SKEL_DIR,
                                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                          O_CLOEXEC);
    if (skfd < 0)
        return sp_error_set(err, errno, "cannot open %s", SP_WS_SKEL_DIR);
    char key[40];
    uint64_t h1 = fnv1a(sk->man, sk->mlen, 0xcbf29ce484222325ULL);
    uint64_t h2 = fnv1a(sk->man, sk->mlen, h1 ^ 0x9e3779b97f4a7c15ULL);
    snprintf(key, sizeof(key), "%016" PRIx64 "%016" PRIx64, h1, h2);
    int rc = 0;
    if (!matches(skfd, key, sk)) {
        struct stat st;
        if (fstatat(skfd, key, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            faccessat(skfd, key, F_OK, 0) == 0) {
            /* another manifest under the same key (or a half-made one):
             * build under a name of our own */
            char alt[40];
            snprintf(alt, sizeof(alt), "%.24s-%d", key, (int)getpid());
            if (!matches(skfd, alt, sk) &&
                (rc = build_as(skfd, alt, sk, err)) < 0)
                return rc;
            memcpy(key, alt, sizeof(alt));
        } else if ((rc = build_as(skfd, key, sk, err)) < 0) {
            return rc;
        }
    }
    char target[96];
    snprintf(target, sizeof(target), "../../../%s/%s", SP_WS_SKEL_DIR, key);
    /* young again, so a gc running now leaves it (SP_WS_SKEL_GC_GRACE_S) */
    utimensat(skfd, key, NULL, AT_SYMLINK_NOFOLLOW);
    if ((rc = point_base(lfd, target)) < 0)
        return sp_error_set(err, -rc, "cannot link the workspace skeleton");
    memcpy(sk->key, key, sizeof(sk->key));
    return 0;
}

const char *sp_skel_key(const struct sp_skel *sk)
{
    return sk->key[0] ? sk->key : NULL;
}

/* ---- spare layer dirs -------------------------------------------------- */

static int spare_name(char *buf, size_t len, const char *key)
{
    int n = snprintf(buf, len, "%s" SP_WS_SKEL_SPARE_SUFFIX, key);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int sp_skel_spare_take(int lfd, const char *key)
{
    char name[64];
    if (!key || spare_name(name, sizeof(name), key) < 0)
        return 0;
    _cleanup_close_ int skfd = openat(lfd, "../../../" SP_WS_SKEL_DIR,
                                      O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (skfd < 0)
        return 0;
    /* onto layers/up only while it is empty: a new workspace */
    if (renameat(skfd, name, lfd, "up") == 0)
        return 1;
    return 0;
}

int sp_skel_spare_make(int lfd, const char *key,
                       const struct sp_skel_layer_dir *dirs, size_t n)
{
    char name[64], tmp[80];
    if (!key || spare_name(name, sizeof(name), key) < 0)
        return -ENAMETOOLONG;
    _cleanup_close_ int skfd = openat(lfd, "../../../" SP_WS_SKEL_DIR,
                                      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (skfd < 0)
        return -errno;
    if (faccessat(skfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0; /* one is waiting already */
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)sp_now_us();
    snprintf(tmp, sizeof(tmp), ".spare-%d-%08x", (int)getpid(), rnd);
    if (mkdirat(skfd, tmp, 0755) < 0)
        return -errno;
    int rc = 0;
    int tfd = openat(skfd, tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0)
        rc = -errno;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (mkdirat(tfd, dirs[i].id, 0700) < 0) {
            rc = -errno;
            break;
        }
        int idfd = openat(tfd, dirs[i].id,
                          O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (idfd < 0 ||
            (dirs[i].upper && mkdirat(idfd, "upper", dirs[i].mode) < 0) ||
            mkdirat(idfd, "work", 0700) < 0)
            rc = -errno;
        if (idfd >= 0)
            close(idfd);
    }
    if (tfd >= 0)
        close(tfd);
    if (rc == 0 && renameat(skfd, tmp, skfd, name) < 0 && errno != EEXIST &&
        errno != ENOTEMPTY)
        rc = -errno;
    sp_rm_rf_at(skfd, tmp); /* (gone when the rename took it) */
    return rc;
}

/* Is skel/<name> (a dir, its .m or its spare) pointed at by a
 * workspace? */
static bool referenced(char **keys, size_t n, const char *name)
{
    size_t len = strlen(name), sl = strlen(SP_WS_SKEL_SPARE_SUFFIX);
    if (len > 2 && strcmp(name + len - 2, ".m") == 0)
        len -= 2;
    else if (len > sl && strcmp(name + len - sl, SP_WS_SKEL_SPARE_SUFFIX) == 0)
        len -= sl;
    for (size_t i = 0; i < n; i++)
        if (strlen(keys[i]) == len && strncmp(keys[i], name, len) == 0)
            return true;
    return false;
}

void sp_skel_gc(const char *statedir)
{
    char path[SP_MAX_PATH + 32];
    snprintf(path, sizeof(path), "%s/%s", statedir, SP_WS_DIR);
    char **keys = NULL;
    size_t n = 0, cap = 0;
    DIR *wd = opendir(path);
    struct dirent *de;
    while (wd && (de = readdir(wd))) {
        if (de->d_name[0] == '.')
            continue;
        char link[NAME_MAX + 32], target[128];
        snprintf(link, sizeof(link), "%s/layers/base", de->d_name);
        ssize_t k = readlinkat(dirfd(wd), link, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        const char *base = strrchr(target, '/');
        if (!base)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nk = realloc(keys, cap * sizeof(*nk));
            if (!nk)
                goto out; /* keep everything */
            keys = nk;
        }
        if (!(keys[n] = strdup(base + 1)))
            goto out;
        n++;
    }
    snprintf(path, sizeof(path), "%s/%s", statedir, SP_WS_SKEL_DIR);
    int skfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *sd = skfd >= 0 ? fdopendir(skfd) : NULL;
    if (!sd && skfd >= 0)
        close(skfd);
    int64_t now = sp_unix_now();
    while (sd && (de = readdir(sd))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            referenced(keys, n, de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(sd), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            st.st_mtime + SP_WS_SKEL_GC_GRACE_S > now)
            continue;
        sp_rm_rf_at(dirfd(sd), de->d_name);
    }
    if (sd)
        closedir(sd);
out:
    if (wd)
        closedir(wd);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}
