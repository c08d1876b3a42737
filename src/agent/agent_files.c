/* agent_files.c — the file API, served by the agent inside the sandbox
 * (files.h). Every path comes from a client and every file was made by the
 * sandboxed program: both are hostile. Paths are resolved from the
 * workspace directory's fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS); changes also refuse symlinks on the way to the
 * parent (RESOLVE_NO_SYMLINKS) and act on the last component with *at
 * calls that do not follow it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "files.h"

#include <dirent.h>
#include <fnmatch.h>
#include <regex.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_ext.h" /* sp_agent_gate */
#include "error.h"
#include "jsonrpc.h" /* sp_jrpc_string_lossy */
#include "patch.h"
#include "proto.h"
#include "secrets.h"
#include "sp_archive.h"
#include "state.h"
#include "util.h"

static const struct {
    const char *name;
    int n_fds;
} methods[] = {
    {"file.stat", 0},      {"file.list", 0},      {"file.read", 0},
    {"file.write", 0},     {"file.mkdir", 0},     {"file.remove", 0},
    {"file.rename", 0},    {"patch.apply", 0},    {"archive.import", 1},
    {"archive.export", 1}, {"file.glob", 0},     {"file.search", 0},
};

bool sp_files_method(const char *method, int *ret_n_fds)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(methods); i++)
        if (strcmp(method, methods[i].name) == 0) {
            if (ret_n_fds)
                *ret_n_fds = methods[i].n_fds;
            return true;
        }
    return false;
}

/* ---- replies ------------------------------------------------------------ */

static void send_all(int sock, const char *line, size_t len)
{
    /* A failure means the supervisor is gone: the agent's loop sees EOF. */
    if (sp_proto_send(sock, line, len, NULL, 0) < 0) { /* see above */ }
}

static char *result_line(json_int_t id, json_t *result, size_t frame_len)
{
    json_t *o = json_object();
    if (!o) {
        json_decref(result);
        return NULL;
    }
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "result", result ? result : json_object());
    if (frame_len)
        json_object_set_new(o, "frame", json_integer((json_int_t)frame_len));
    return sp_proto_line(o);
}

static void reply(int sock, json_int_t id, json_t *result, const char *frame,
                  size_t frame_len)
{
    char *l = result_line(id, result, frame_len);
    if (!l)
        return;
    send_all(sock, l, strlen(l));
    free(l);
    if (frame_len)
        send_all(sock, frame, frame_len);
}

/* An error reply; errnum (when > 0) rides in "data":{"errno":N}. */
static char *error_line(json_int_t id, int code, int errnum, const char *msg)
{
    json_t *o = json_object(), *e = json_object();
    if (!o || !e) {
        json_decref(o);
        json_decref(e);
        return NULL;
    }
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(msg));
    if (!json_object_get(e, "message"))
        json_object_set_new(e, "message", json_string("(unprintable)"));
    if (errnum > 0)
        json_object_set_new(e, "data", json_pack("{s:i}", "errno", errnum));
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "error", e);
    return sp_proto_line(o);
}

static void reply_err(int sock, json_int_t id, int code, int errnum,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reply_err(int sock, json_int_t id, int code, int errnum,
                      const char *fmt, ...)
{
    char msg[SP_MAX_PATH + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *l = error_line(id, code, errnum, msg);
    if (l)
        send_all(sock, l, strlen(l));
    free(l);
}

/* What an errno means for a path of the file API. */
static const char *why(int e)
{
    switch (e) {
    case EXDEV: return "the path leads outside the workspace";
    case ELOOP: return "a symlink is on the path (not followed)";
    case ENOENT: return "no such file or directory";
    default: return strerror(e);
    }
}

/* ---- paths -------------------------------------------------------------- */

/* A JSON string from bytes a sandboxed program chose: invalid UTF-8
 * becomes U+FFFD. */
static json_t *jstr(const char *s)
{
    return sp_jrpc_string_lossy(s, strlen(s));
}

/* A client's path as one relative to the workspace: "/workspace/x" and
 * "x" are the same file; "", "/workspace" and "." are the workspace
 * itself ("."). Other absolute paths are refused. */
static int rel_path(const char *in, char *out, size_t len, const char **why_)
{
    const char *p = in;
    size_t ml = strlen(SP_WS_MOUNT);
    if (strncmp(p, SP_WS_MOUNT, ml) == 0 && (p[ml] == '/' || p[ml] == '\0'))
        p += ml;
    else if (p[0] == '/') {
        *why_ = "absolute paths must be under " SP_WS_MOUNT;
        return -EINVAL;
    }
    while (*p == '/')
        p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    if (n == 0) {
        snprintf(out, len, ".");
        return 0;
    }
    if (n >= len) {
        *why_ = "path too long";
        return -ENAMETOOLONG;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int open_beneath(int rootfd, const char *path, int flags,
                        unsigned long long extra)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra;
    long fd;
    do {
        fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
    } while (fd < 0 && errno == EAGAIN);
    return fd < 0 ? -errno : (int)fd;
}

/* Split rel into its parent directory (opened O_PATH, no symlink on the
 * way) and last component (copied into base). With parents, missing
 * directories are made (0755). Refuses ".." anywhere and the workspace
 * itself as a last component. Returns the parent fd or -errno. */
static int open_parent(int rootfd, const char *rel, bool parents, char *base,
                       size_t base_len)
{
    if (strcmp(rel, ".") == 0)
        return -EBUSY;
    _cleanup_free_ char *dup = strdup(rel);
    if (!dup)
        return -ENOMEM;
    /* No "." or ".." component in a path that changes something. */
    for (char *s = dup, *c; (c = strsep(&s, "/"));)
        if (strcmp(c, "..") == 0 || strcmp(c, ".") == 0)
            return -EINVAL;
    free(dup);
    dup = strdup(rel);
    if (!dup)
        return -ENOMEM;
    char *slash = strrchr(dup, '/');
    const char *b = slash ? slash + 1 : dup;
    if (strlen(b) >= base_len || !*b)
        return -ENAMETOOLONG;
    snprintf(base, base_len, "%s", b);
    if (!slash) {
        int d = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        return d < 0 ? -errno : d;
    }
    *slash = '\0';
    if (!parents)
        return open_beneath(rootfd, dup, O_PATH | O_DIRECTORY,
                            RESOLVE_NO_SYMLINKS);
    int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        return -errno;
    for (char *s = dup, *c; (c = strsep(&s, "/"));) {
        if (!*c)
            continue;
        if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            close(cur);
            return -e;
        }
        int next = open_beneath(cur, c, O_PATH | O_DIRECTORY,
                                RESOLVE_NO_SYMLINKS);
        close(cur);
        if (next < 0)
            return next;
        cur = next;
    }
    return cur;
}

/* ---- stat and list ------------------------------------------------------ */

static const char *type_name(mode_t m)
{
    return S_ISREG(m)    ? "file"
           : S_ISDIR(m)  ? "dir"
           : S_ISLNK(m)  ? "symlink"
           : S_ISFIFO(m) ? "fifo"
           : S_ISSOCK(m) ? "socket"
           : S_ISCHR(m)  ? "char"
           : S_ISBLK(m)  ? "block"
                         : "other";
}

/* The JSON of one entry: dirfd + name, not followed. */
static json_t *entry_json(int dirfd, const char *name, const char *shown,
                          const struct stat *sb)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "path", jstr(shown));
    json_object_set_new(o, "type", json_string(type_name(sb->st_mode)));
    json_object_set_new(o, "size", json_integer((json_int_t)sb->st_size));
    json_object_set_new(o, "mode", json_integer(sb->st_mode & 07777));
    json_object_set_new(o, "mtime",
                        json_real((double)sb->st_mtim.tv_sec +
                                  (double)sb->st_mtim.tv_nsec / 1e9));
    if (S_ISLNK(sb->st_mode)) {
        char t[SP_MAX_PATH + 1];
        ssize_t n = readlinkat(dirfd, name, t, sizeof(t) - 1);
        if (n >= 0) {
            t[n] = '\0';
            json_object_set_new(o, "target", jstr(t));
        }
    }
    return o;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct walk {
    json_t *page;
    size_t seen, start;
    bool more;
    int err;
};

static void walk_add(struct walk *w, int dirfd, const char *name,
                     const char *shown, const struct stat *sb)
{
    size_t i = w->seen++;
    if (i < w->start)
        return;
    if (i >= w->start + SP_FILE_LIST_PAGE) {
        w->more = true;
        return;
    }
    json_t *e = entry_json(dirfd, name, shown, sb);
    if (e)
        json_array_append_new(w->page, e);
}

/* The entries of dir (sorted), and below them when recursive. */
static void walk_dir(struct walk *w, int dfd, const char *prefix,
                     bool recursive, unsigned depth)
{
    if (w->err || w->more)
        return;
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        w->err = -errno;
        if (fd >= 0)
            close(fd);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (w->seen + n >= SP_FILE_MAX_WALK) {
            w->err = -EFBIG;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn) {
                w->err = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            w->err = -ENOMEM;
            break;
        }
        n++;
    }
    if (!w->err && n > 1) /* qsort(NULL, 0) is undefined */
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n && !w->err && !w->more; i++) {
        struct stat sb;
        if (fstatat(dirfd(d), names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone meanwhile */
        char shown[SP_MAX_PATH * 2];
        int sl = snprintf(shown, sizeof(shown), "%s%s%s", prefix,
                          *prefix ? "/" : "", names[i]);
        if (sl < 0 || (size_t)sl >= sizeof(shown))
            continue;
        walk_add(w, dirfd(d), names[i], shown, &sb);
        if (recursive && S_ISDIR(sb.st_mode)) {
            if (depth + 1 >= SP_FILE_MAX_DEPTH) {
                w->err = -ELOOP;
                break;
            }
            int sub = openat(dirfd(d), names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                walk_dir(w, sub, shown, true, depth + 1);
                close(sub);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
}

static bool jbool(json_t *params, const char *key)
{
    json_t *v = params ? json_object_get(params, key) : NULL;
    return json_is_true(v);
}

static void do_stat(int sock, int rootfd, json_int_t id, const char *rel)
{
    int fd = open_beneath(rootfd, rel, O_PATH | O_NOFOLLOW, 0);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        int e = fd < 0 ? -fd : errno;
        sp_close_keep_errno(fd);
        reply_err(sock, id, SP_RPC_FILE, e, "%s: %s", rel, why(e));
        return;
    }
    /* A symlink as the last component is described, not followed:
     * O_PATH|O_NOFOLLOW opened the link itself. readlinkat needs the
     * parent, so take it by the empty path on the link's fd. */
    json_t *o = json_object();
    json_object_set_new(o, "path", jstr(rel));
    json_object_set_new(o, "type", json_string(type_name(sb.st_mode)));
    json_object_set_new(o, "size", json_integer((json_int_t)sb.st_size));
    json_object_set_new(o, "mode", json_integer(sb.st_mode & 07777));
    json_object_set_new(o, "mtime", json_real((double)sb.st_mtim.tv_sec +
                                              (double)sb.st_mtim.tv_nsec / 1e9));
    if (S_ISLNK(sb.st_mode)) {
        char t[SP_MAX_PATH + 1];
        ssize_t n = readlinkat(fd, "", t, sizeof(t) - 1);
        if (n >= 0) {
            t[n] = '\0';
            json_object_set_new(o, "target", jstr(t));
        }
    }
    close(fd);
    reply(sock, id, o, NULL, 0);
}

static void do_list(int sock, int rootfd, json_int_t id, const char *rel,
                    json_t *params)
{
    double start = 0;
    sp_error err = {0};
    if (sp_proto_get_number(params, "start", false, 0, SP_FILE_MAX_WALK,
                            &start, &err) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    int fd = open_beneath(rootfd, rel, O_PATH | O_NOFOLLOW, 0);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        int e = fd < 0 ? -fd : errno;
        sp_close_keep_errno(fd);
        reply_err(sock, id, SP_RPC_FILE, e, "%s: %s", rel, why(e));
        return;
    }
    struct walk w = {.page = json_array(), .start = (size_t)start};
    if (!S_ISDIR(sb.st_mode)) {
        /* One entry: the thing itself. Its parent names it for readlink. */
        close(fd);
        char base[SP_MAX_PATH];
        int pfd = -1;
        const char *slash = strrchr(rel, '/');
        if (slash) {
            _cleanup_free_ char *par = strndup(rel, (size_t)(slash - rel));
            pfd = par ? open_beneath(rootfd, par, O_PATH | O_DIRECTORY, 0)
                      : -ENOMEM;
        } else {
            pfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        }
        snprintf(base, sizeof(base), "%s", slash ? slash + 1 : rel);
        if (pfd >= 0 && w.start == 0)
            walk_add(&w, pfd, base, rel, &sb);
        sp_close_keep_errno(pfd);
    } else {
        close(fd);
        fd = open_beneath(rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0) {
            json_decref(w.page);
            reply_err(sock, id, SP_RPC_FILE, -fd, "%s: %s", rel, why(-fd));
            return;
        }
        walk_dir(&w, fd, "", jbool(params, "recursive"), 0);
        close(fd);
    }
    if (w.err) {
        json_decref(w.page);
        if (w.err == -EFBIG)
            reply_err(sock, id, SP_RPC_FILE, EFBIG,
                      "%s: more than %d entries", rel, SP_FILE_MAX_WALK);
        else
            reply_err(sock, id, SP_RPC_FILE, -w.err, "%s: %s", rel,
                      why(-w.err));
        return;
    }
    json_t *r = json_object();
    json_object_set_new(r, "entries", w.page);
    json_object_set_new(r, "next",
                        w.more ? json_integer((json_int_t)(w.start +
                                                           SP_FILE_LIST_PAGE))
                               : json_null());
    reply(sock, id, r, NULL, 0);
}

/* ---- read and write ----------------------------------------------------- */

/* The window buf (got bytes of fd at o) with up to the longest secret's
 * length - 1 bytes of context on each side, redacted as one piece of the
 * whole file (sp_secrets_redact_window). Returns 1 (*ret set), 0 (no
 * secret in it) or -errno. */
static int redact_read(int fd, uint64_t o, const char *buf, size_t got,
                       char **ret, size_t *ret_len)
{
    const struct sp_secrets *sec = sp_secrets_agent();
    size_t ctx = 0;
    for (size_t i = 0; i < sec->n; i++)
        if (sec->v[i].len - 1 > ctx)
            ctx = sec->v[i].len - 1;
    size_t pre = o < ctx ? (size_t)o : ctx;
    size_t cap = pre + got + ctx;
    char *ext = malloc(cap);
    if (!ext)
        return -ENOMEM;
    size_t have = 0;
    /* before and after the window; the window itself is buf */
    while (have < pre) {
        ssize_t n = pread(fd, ext + have, pre - have, (off_t)(o - pre + have));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(ext);
            return n < 0 ? -errno : -EIO;
        }
        have += (size_t)n;
    }
    memcpy(ext + pre, buf, got);
    have = pre + got;
    while (have < cap) {
        ssize_t n = pread(fd, ext + have, cap - have,
                          (off_t)(o - pre + have));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(ext);
            return -errno;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    int r = sp_secrets_redact_window(sec, ext, have, pre, got, ret, ret_len);
    explicit_bzero(ext, have);
    free(ext);
    return r;
}

static void do_read(int sock, int rootfd, json_int_t id, const char *rel,
                    json_t *params)
{
    double off = 0, len = -1;
    sp_error err = {0};
    if (sp_proto_get_number(params, "offset", false, 0, 9.0e15, &off,
                            &err) < 0 ||
        sp_proto_get_number(params, "length", false, 0, SP_FILE_MAX_IO, &len,
                            &err) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    /* O_NONBLOCK: a fifo planted under the name cannot hang us; only a
     * regular file is read. */
    _cleanup_close_ int fd =
        open_beneath(rootfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        int e = fd < 0 ? -fd : errno;
        reply_err(sock, id, SP_RPC_FILE, e, "%s: %s", rel, why(e));
        return;
    }
    if (!S_ISREG(sb.st_mode)) {
        reply_err(sock, id, SP_RPC_FILE, S_ISDIR(sb.st_mode) ? EISDIR : EINVAL,
                  "%s: not a regular file (a %s)", rel,
                  type_name(sb.st_mode));
        return;
    }
    uint64_t o = (uint64_t)off;
    uint64_t left = (uint64_t)sb.st_size > o ? (uint64_t)sb.st_size - o : 0;
    uint64_t want = len >= 0 ? (uint64_t)len : left;
    if (len < 0 && left > SP_FILE_MAX_IO) {
        reply_err(sock, id, SP_RPC_FILE, EFBIG,
                  "%s: %llu bytes is more than one read moves (%d); read it "
                  "in parts (offset, length)",
                  rel, (unsigned long long)left, SP_FILE_MAX_IO);
        return;
    }
    if (want > left)
        want = left;
    _cleanup_free_ char *buf = want ? malloc(want) : NULL;
    if (want && !buf) {
        reply_err(sock, id, SP_RPC_INTERNAL, ENOMEM, "out of memory");
        return;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)(o + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            reply_err(sock, id, SP_RPC_FILE, errno, "%s: %s", rel,
                      why(errno));
            return;
        }
        if (n == 0)
            break; /* shrank meanwhile */
        got += (size_t)n;
    }
    json_t *r = json_pack("{s:I,s:I,s:I}", "size", (json_int_t)sb.st_size,
                          "offset", (json_int_t)o, "length", (json_int_t)got);
    if (sp_secrets_agent() && got) {
        /* Secrets (secrets.h): the reply's bytes are redacted; "length"
         * is then what the frame holds and "raw_length" how much of the
         * file it stands for (where the next read starts). */
        char *red = NULL;
        size_t rl = 0;
        int rr = redact_read(fd, o, buf, got, &red, &rl);
        if (rr < 0 || rl > SP_FILE_MAX_IO) {
            json_decref(r);
            free(red);
            reply_err(sock, id, SP_RPC_FILE, rr < 0 ? -rr : EFBIG,
                      "%s: cannot redact the secrets in this read: %s", rel,
                      strerror(rr < 0 ? -rr : EFBIG));
            return;
        }
        if (rr > 0) {
            json_object_set_new(r, "length", json_integer((json_int_t)rl));
            json_object_set_new(r, "raw_length", json_integer((json_int_t)got));
            json_object_set_new(r, "redacted", json_true());
            reply(sock, id, r, red, rl);
            free(red);
            return;
        }
    }
    reply(sock, id, r, buf, got);
}

static void temp_name(char *buf, size_t len, const char *prefix)
{
    static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        uint64_t t = sp_now_us() ^ ((uint64_t)getpid() << 20);
        memcpy(r, &t, sizeof(r));
    }
    char s[9];
    for (size_t i = 0; i < 8; i++)
        s[i] = cs[r[i] % (sizeof(cs) - 1)];
    s[8] = '\0';
    snprintf(buf, len, "%s%s", prefix, s);
}

static bool mode_param(int sock, json_int_t id, json_t *params, int *ret)
{
    json_t *m = params ? json_object_get(params, "mode") : NULL;
    *ret = -1;
    if (!m || json_is_null(m))
        return true;
    if (!json_is_integer(m) || json_integer_value(m) < 0 ||
        json_integer_value(m) > 0777) {
        reply_err(sock, id, SP_RPC_PARAMS, 0,
                  "\"mode\" must be permission bits (0 to 0777; no setuid, "
                  "setgid or sticky bit)");
        return false;
    }
    *ret = (int)json_integer_value(m);
    return true;
}

static void do_write(int sock, int rootfd, json_int_t id, const char *rel,
                     json_t *params, const char *data, size_t len)
{
    int mode;
    if (!mode_param(sock, id, params, &mode))
        return;
    char base[256], tmp[64];
    _cleanup_close_ int pfd =
        open_parent(rootfd, rel, jbool(params, "parents"), base, sizeof(base));
    if (pfd < 0) {
        reply_err(sock, id, SP_RPC_FILE, -pfd, "%s: %s", rel,
                  pfd == -EBUSY    ? "is the workspace itself"
                  : pfd == -EINVAL ? "a path that changes something may not "
                                     "hold \".\" or \"..\""
                                   : why(-pfd));
        return;
    }
    struct stat old;
    bool exists = fstatat(pfd, base, &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && S_ISDIR(old.st_mode)) {
        reply_err(sock, id, SP_RPC_FILE, EISDIR, "%s: is a directory", rel);
        return;
    }
    if (mode < 0)
        mode = exists && S_ISREG(old.st_mode) ? (int)(old.st_mode & 0777)
                                              : 0644;
    int fd = -1;
    for (int tries = 0; tries < 8 && fd < 0; tries++) {
        temp_name(tmp, sizeof(tmp), SP_FILE_TEMP_PREFIX);
        fd = openat(pfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        reply_err(sock, id, SP_RPC_FILE, errno, "%s: %s", rel, why(errno));
        return;
    }
    int e = 0;
    for (size_t off = 0; off < len && !e;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    if (!e && fchmod(fd, (mode_t)mode) < 0)
        e = errno;
    /* "sync": false skips the fsync (atomic still, not durable across a
     * host crash): an fsync costs milliseconds on a disk. */
    json_t *sy = params ? json_object_get(params, "sync") : NULL;
    if (!e && !json_is_false(sy) && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && renameat(pfd, tmp, pfd, base) < 0)
        e = errno;
    if (e) {
        unlinkat(pfd, tmp, 0);
        reply_err(sock, id, SP_RPC_FILE, e, "%s: %s", rel, why(e));
        return;
    }
    reply(sock, id, json_pack("{s:I}", "size", (json_int_t)len), NULL, 0);
}

/* ---- directories, removal, rename --------------------------------------- */

static void parent_error(int sock, json_int_t id, const char *rel, int r)
{
    reply_err(sock, id, SP_RPC_FILE, -r, "%s: %s", rel,
              r == -EBUSY    ? "is the workspace itself"
              : r == -EINVAL ? "a path that changes something may not hold "
                               "\".\" or \"..\""
                             : why(-r));
}

static void do_mkdir(int sock, int rootfd, json_int_t id, const char *rel,
                     json_t *params)
{
    int mode;
    if (!mode_param(sock, id, params, &mode))
        return;
    bool parents = jbool(params, "parents");
    char base[256];
    _cleanup_close_ int pfd =
        open_parent(rootfd, rel, parents, base, sizeof(base));
    if (pfd < 0) {
        if (pfd == -EBUSY && parents) { /* mkdir -p of the workspace */
            reply(sock, id, NULL, NULL, 0);
            return;
        }
        parent_error(sock, id, rel, pfd);
        return;
    }
    if (mkdirat(pfd, base, mode < 0 ? 0755 : (mode_t)mode) < 0) {
        struct stat sb;
        int e = errno;
        if (!(e == EEXIST && parents &&
              fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISDIR(sb.st_mode))) {
            reply_err(sock, id, SP_RPC_FILE, e, "%s: %s", rel, why(e));
            return;
        }
    }
    reply(sock, id, NULL, NULL, 0);
}

static void do_remove(int sock, int rootfd, json_int_t id, const char *rel,
                      json_t *params)
{
    char base[256];
    _cleanup_close_ int pfd = open_parent(rootfd, rel, false, base,
                                          sizeof(base));
    if (pfd < 0) {
        parent_error(sock, id, rel, pfd);
        return;
    }
    struct stat sb;
    if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        reply_err(sock, id, SP_RPC_FILE, errno, "%s: %s", rel, why(errno));
        return;
    }
    int r = 0;
    if (!S_ISDIR(sb.st_mode))
        r = unlinkat(pfd, base, 0) < 0 ? -errno : 0;
    else if (jbool(params, "recursive"))
        r = sp_rm_rf_at(pfd, base);
    else
        r = unlinkat(pfd, base, AT_REMOVEDIR) < 0 ? -errno : 0;
    if (r < 0) {
        reply_err(sock, id, SP_RPC_FILE, -r, "%s: %s%s", rel, why(-r),
                  r == -ENOTEMPTY ? " (remove it recursively)" : "");
        return;
    }
    reply(sock, id, NULL, NULL, 0);
}

static void do_rename(int sock, int rootfd, json_int_t id, json_t *params)
{
    const char *from = NULL, *to = NULL, *w = NULL;
    sp_error err = {0};
    char rf[SP_MAX_PATH], rt[SP_MAX_PATH], bf[256], bt[256];
    if (sp_proto_get_string(params, "from", true, SP_MAX_PATH, &from, &err) <
            0 ||
        sp_proto_get_string(params, "to", true, SP_MAX_PATH, &to, &err) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    if (rel_path(from, rf, sizeof(rf), &w) < 0 ||
        rel_path(to, rt, sizeof(rt), &w) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, EINVAL, "%s", w);
        return;
    }
    _cleanup_close_ int pf = open_parent(rootfd, rf, false, bf, sizeof(bf));
    if (pf < 0) {
        parent_error(sock, id, rf, pf);
        return;
    }
    _cleanup_close_ int pt = open_parent(rootfd, rt, false, bt, sizeof(bt));
    if (pt < 0) {
        parent_error(sock, id, rt, pt);
        return;
    }
    unsigned flags = jbool(params, "noreplace") ? RENAME_NOREPLACE : 0;
    if (renameat2(pf, bf, pt, bt, flags) < 0) {
        int e = errno;
        reply_err(sock, id, SP_RPC_FILE, e, "%s -> %s: %s", rf, rt, why(e));
        return;
    }
    reply(sock, id, NULL, NULL, 0);
}

/* ---- patch -------------------------------------------------------------- */

static void do_patch(int sock, int rootfd, json_int_t id, json_t *params,
                     const char *text, size_t len)
{
    double strip = 1;
    sp_error err = {0};
    if (sp_proto_get_number(params, "strip", false, 0, 64, &strip, &err) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    struct sp_patch *p = NULL;
    int r = sp_patch_parse(text ? text : "", len, (int)strip, &p, &err);
    if (r < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, -r, "%s", err.message);
        return;
    }
    struct sp_patch_report rep;
    memset(&rep, 0, sizeof(rep));
    r = sp_patch_apply(rootfd, p, jbool(params, "dry_run"), &rep, &err);
    char *js = sp_patch_report_json(&rep);
    json_t *res = js ? json_loads(js, 0, NULL) : NULL;
    free(js);
    sp_patch_report_free(&rep);
    sp_patch_free(p);
    if (!res) {
        reply_err(sock, id, SP_RPC_INTERNAL, ENOMEM, "out of memory");
        return;
    }
    json_object_set_new(res, "ok", json_boolean(r == 0));
    if (r < 0) {
        json_object_set_new(res, "error", jstr(err.message));
        json_object_set_new(res, "errno", json_integer(-r));
    }
    reply(sock, id, res, NULL, 0);
}

/* ---- archives (in a child) ---------------------------------------------- */

struct ajob {
    pid_t pid;
    int resfd;
    json_int_t id;
};
static struct ajob ajobs[SP_FILE_MAX_ARCHIVE_JOBS];

static json_t *stats_json(const struct sp_archive_stats *st)
{
    json_t *o = json_pack("{s:I,s:I,s:I}", "entries", (json_int_t)st->entries,
                          "bytes", (json_int_t)st->bytes, "skipped",
                          (json_int_t)st->skipped);
    json_t *sk = json_array();
    for (uint32_t i = 0; i < st->nskips && i < SP_ARCHIVE_MAX_SKIP_LIST; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "path", jstr(st->skips[i].path));
        json_object_set_new(e, "reason", jstr(st->skips[i].reason));
        json_array_append_new(sk, e);
    }
    json_object_set_new(o, "skips", sk);
    return o;
}

/* src's entries against dst's, directories merged. With move, they are
 * moved: other entries replace what has their name (rename: atomic, never
 * follows). Without, nothing changes: -EEXIST (the name in `what`) when
 * moving would change an entry's kind (a directory for a file or back). */
static int merge_walk(int src, int dst, bool move, char *what, size_t wlen,
                      unsigned depth)
{
    if (depth > SP_FILE_MAX_DEPTH)
        return -ELOOP;
    int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        sp_close_keep_errno(fd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while (!r && (de = readdir(d))) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat ss, ds;
        if (fstatat(dirfd(d), n, &ss, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        bool has = fstatat(dst, n, &ds, AT_SYMLINK_NOFOLLOW) == 0;
        if (!move && has && S_ISDIR(ss.st_mode) != S_ISDIR(ds.st_mode)) {
            snprintf(what, wlen, "%s", n);
            r = -EEXIST;
        } else if (has && S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
            int a = openat(dirfd(d), n,
                           O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int b = openat(dst, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (a < 0 || b < 0)
                r = -errno;
            else
                r = merge_walk(a, b, move, what, wlen, depth + 1);
            sp_close_keep_errno(a);
            sp_close_keep_errno(b);
        } else if (move && renameat(dirfd(d), n, dst, n) < 0) {
            r = -errno;
        }
    }
    closedir(d);
    return r;
}

static char *archive_import(int rootfd, json_int_t id, json_t *params, int in)
{
    const char *dest = ".", *w = NULL;
    sp_error err = {0};
    char rel[SP_MAX_PATH], staging[64], what[256] = "";
    if (sp_proto_get_string(params, "dest", false, SP_MAX_PATH, &dest, &err) <
        0)
        return error_line(id, SP_RPC_PARAMS, 0, err.message);
    if (rel_path(dest, rel, sizeof(rel), &w) < 0)
        return error_line(id, SP_RPC_PARAMS, EINVAL, w);
    _cleanup_close_ int dfd = -1;
    if (strcmp(rel, ".") == 0) {
        dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    } else {
        char base[256];
        _cleanup_close_ int pfd =
            open_parent(rootfd, rel, true, base, sizeof(base));
        if (pfd < 0) {
            snprintf(err.message, sizeof(err.message), "%.900s: %s", rel,
                     pfd == -EINVAL ? "may not hold \".\" or \"..\""
                                    : why(-pfd));
            return error_line(id, SP_RPC_FILE, -pfd, err.message);
        }
        if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST)
            dfd = -errno;
        else
            dfd = open_beneath(pfd, base, O_PATH | O_DIRECTORY,
                               RESOLVE_NO_SYMLINKS);
    }
    if (dfd < 0) {
        snprintf(err.message, sizeof(err.message), "%.900s: %s", rel,
                 why(-dfd));
        return error_line(id, SP_RPC_FILE, -dfd, err.message);
    }
    int sfd = -1;
    for (int tries = 0; tries < 8 && sfd < 0; tries++) {
        temp_name(staging, sizeof(staging), SP_FILE_STAGING_PREFIX);
        if (mkdirat(dfd, staging, 0700) == 0)
            sfd = openat(dfd, staging,
                         O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else if (errno != EEXIST)
            break;
    }
    if (sfd < 0) {
        snprintf(err.message, sizeof(err.message),
                 "cannot make a staging directory in %.900s: %s", rel,
                 strerror(errno));
        return error_line(id, SP_RPC_FILE, errno, err.message);
    }
    struct sp_archive_stats st;
    memset(&st, 0, sizeof(st));
    int r = sp_archive_extract(in, sfd, NULL, 0, &st, &err);
    if (r == 0) {
        r = merge_walk(sfd, dfd, false, what, sizeof(what), 0);
        if (r == -EEXIST)
            snprintf(err.message, sizeof(err.message),
                     "%.600s/%.200s exists and is %s a directory in the archive: "
                     "nothing imported",
                     rel, what, "not"); /* kinds differ either way */
        else if (r < 0)
            sp_error_set(&err, -r, "cannot compare the archive with %s", rel);
    }
    if (r == 0 && (r = merge_walk(sfd, dfd, true, NULL, 0, 0)) < 0)
        sp_error_set(&err, -r, "cannot move the archive's entries into %s",
                     rel);
    close(sfd);
    sp_rm_rf_at(dfd, staging);
    if (r < 0)
        return error_line(id, SP_RPC_FILE, r > -SP_EFAIL ? -r : 0,
                          err.message);
    return result_line(id, stats_json(&st), 0);
}

static char *archive_export(int rootfd, json_int_t id, json_t *params, int out)
{
    const char *path = ".", *w = NULL;
    sp_error err = {0};
    char rel[SP_MAX_PATH];
    if (sp_proto_get_string(params, "path", false, SP_MAX_PATH, &path, &err) <
        0)
        return error_line(id, SP_RPC_PARAMS, 0, err.message);
    if (rel_path(path, rel, sizeof(rel), &w) < 0)
        return error_line(id, SP_RPC_PARAMS, EINVAL, w);
    struct sp_archive_stats st;
    memset(&st, 0, sizeof(st));
    int r = sp_archive_create(rootfd, strcmp(rel, ".") == 0 ? NULL : rel, out,
                              jbool(params, "gzip") ? SP_ARCHIVE_TAR_GZ
                                                    : SP_ARCHIVE_TAR,
                              NULL, &st, &err);
    if (r < 0)
        return error_line(id, SP_RPC_FILE, r > -SP_EFAIL ? -r : 0,
                          err.message);
    return result_line(id, stats_json(&st), 0);
}

static void start_archive(int sock, int rootfd, json_int_t id,
                          const char *method, json_t *params, int fd)
{
    size_t slot = 0;
    while (slot < SP_ARRAY_SIZE(ajobs) && ajobs[slot].pid > 0)
        slot++;
    if (fd < 0) {
        reply_err(sock, id, SP_RPC_FDS, 0, "%s needs a pipe", method);
        return;
    }
    if (slot == SP_ARRAY_SIZE(ajobs)) {
        close(fd);
        reply_err(sock, id, SP_RPC_BUSY, 0,
                  "too many archive imports and exports at once (at most %d)",
                  SP_FILE_MAX_ARCHIVE_JOBS);
        return;
    }
    int res[2];
    if (pipe2(res, O_CLOEXEC) < 0) {
        int e = errno;
        close(fd);
        reply_err(sock, id, SP_RPC_INTERNAL, e, "pipe: %s", strerror(e));
        return;
    }
    sp_agent_gate(); /* in the cgroup first */
    pid_t pid = fork();
    if (pid == 0) {
        /* The child does the work and writes its reply line to res[1];
         * the agent forwards it when the child is reaped. */
        close(res[0]);
        char *line = method[8] == 'i' ? archive_import(rootfd, id, params, fd)
                                      : archive_export(rootfd, id, params, fd);
        close(fd);
        if (line) {
            size_t n = strlen(line);
            if (n > 60000) { /* a pipe's buffer holds it whole */
                free(line);
                line = error_line(id, SP_RPC_INTERNAL, 0, "reply too long");
                n = line ? strlen(line) : 0;
            }
            if (line && write(res[1], line, n) < 0) { /* reaped as error */ }
        }
        _exit(0);
    }
    int e = errno;
    close(fd);
    close(res[1]);
    if (pid < 0) {
        close(res[0]);
        reply_err(sock, id, SP_RPC_INTERNAL, e, "fork: %s", strerror(e));
        return;
    }
    ajobs[slot].pid = pid;
    ajobs[slot].resfd = res[0];
    ajobs[slot].id = id;
}

bool sp_agent_files_reaped(int sock, pid_t pid, int status)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(ajobs); i++) {
        if (ajobs[i].pid != pid)
            continue;
        char buf[65536];
        size_t n = 0;
        for (;;) {
            ssize_t k = read(ajobs[i].resfd, buf + n, sizeof(buf) - 1 - n);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            n += (size_t)k;
            if (n == sizeof(buf) - 1)
                break;
        }
        close(ajobs[i].resfd);
        ajobs[i].pid = 0;
        ajobs[i].resfd = -1;
        if (n > 0 && buf[n - 1] == '\n')
            send_all(sock, buf, n);
        else
            reply_err(sock, ajobs[i].id, SP_RPC_INTERNAL, 0,
                      "the archive job ended without an answer (%s %d)",
                      WIFSIGNALED(status) ? "signal" : "status",
                      WIFSIGNALED(status) ? WTERMSIG(status)
                                          : WEXITSTATUS(status));
        return true;
    }
    return false;
}

/* ---- dispatch ----------------------------------------------------------- */

/* ---- glob and search ---------------------------------------------------- */

/* Does rel (a path below the searched directory) match pattern? Without
 * a '/', the pattern matches the last component ("*.py" anywhere); with
 * one, the whole path, a star crossing slashes (src/STAR.c matches src/a/b.c) and
 * a leading "**" + "/" also matching at the top. */
static bool glob_match(const char *pattern, const char *rel)
{
    if (!strchr(pattern, '/')) {
        const char *b = strrchr(rel, '/');
        return fnmatch(pattern, b ? b + 1 : rel, FNM_PERIOD) == 0;
    }
    if (fnmatch(pattern, rel, 0) == 0)
        return true;
    return strncmp(pattern, "**/", 3) == 0 && fnmatch(pattern + 3, rel, 0) == 0;
}

struct scan {
    const char *glob;           /* NULL: every file */
    bool want_dirs;             /* glob: directories match too */
    regex_t *re;                /* search: NULL for glob */
    const char *literal;        /* search: a fixed string instead */
    bool icase;
    json_t *out;
    size_t max, found, files, skipped, walked;
    uint64_t bytes;
    bool truncated;
    int err;
};

static bool line_matches(struct scan *sc, char *line)
{
    if (sc->re)
        return regexec(sc->re, line, 0, NULL, 0) == 0;
    return sc->icase ? strcasestr(line, sc->literal) != NULL
                     : strstr(line, sc->literal) != NULL;
}

static void search_file(struct scan *sc, int dfd, const char *name,
                        const char *shown, const struct stat *sb)
{
    if (sb->st_size > SP_FILE_SEARCH_FILE_MAX ||
        sc->bytes + (uint64_t)sb->st_size > SP_FILE_SEARCH_BYTES_MAX) {
        sc->skipped++;
        if (sc->bytes + (uint64_t)sb->st_size > SP_FILE_SEARCH_BYTES_MAX)
            sc->truncated = true;
        return;
    }
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t cap = (size_t)sb->st_size + 1, n = 0;
    char *buf = malloc(cap);
    while (buf && n < cap - 1) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf)
        return;
    buf[n] = '\0';
    sc->files++;
    sc->bytes += n;
    if (memchr(buf, '\0', n < 8192 ? n : 8192)) {
        sc->skipped++; /* binary */
        free(buf);
        return;
    }
    size_t lineno = 0;
    for (char *l = buf; l < buf + n && !sc->truncated;) {
        char *nl = memchr(l, '\n', (size_t)(buf + n - l));
        if (nl)
            *nl = '\0';
        lineno++;
        if (line_matches(sc, l)) {
            if (sc->found >= sc->max) {
                sc->truncated = true;
                break;
            }
            sc->found++;
            /* Redacted whole, then cut: a secret is never half shown. */
            json_t *t = sp_jrpc_string_lossy(l, strlen(l));
            if (sp_secrets_agent())
                sp_secrets_redact_json(sp_secrets_agent(), t);
            const char *ts = json_string_value(t);
            size_t tl = strlen(ts);
            bool cut = tl > SP_FILE_SEARCH_LINE_MAX;
            if (cut)
                tl = sp_jrpc_utf8_cut(ts, SP_FILE_SEARCH_LINE_MAX);
            json_array_append_new(
                sc->out, json_pack("{s:o,s:I,s:o,s:b}", "path", jstr(shown),
                                   "line", (json_int_t)lineno, "text",
                                   sp_jrpc_string_lossy(ts, tl), "cut", cut));
            json_decref(t);
        }
        if (!nl)
            break;
        l = nl + 1;
    }
    free(buf);
}

static void scan_dir(struct scan *sc, int dfd, const char *prefix,
                     unsigned depth)
{
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) && !sc->err) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (++sc->walked > SP_FILE_MAX_WALK) {
            sc->truncated = true;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn) {
                sc->err = -ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            sc->err = -ENOMEM;
            break;
        }
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n && !sc->err && !sc->truncated; i++) {
        struct stat sb;
        if (fstatat(dirfd(d), names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char shown[SP_MAX_PATH * 2];
        int sl = snprintf(shown, sizeof(shown), "%s%s%s", prefix,
                          *prefix ? "/" : "", names[i]);
        if (sl < 0 || (size_t)sl >= sizeof(shown))
            continue;
        bool is_dir = S_ISDIR(sb.st_mode);
        bool hit = !sc->glob || glob_match(sc->glob, shown);
        if (!sc->re && !sc->literal) {
            if (hit && (S_ISREG(sb.st_mode) || (is_dir && sc->want_dirs))) {
                if (sc->found >= sc->max) {
                    sc->truncated = true;
                    break;
                }
                sc->found++;
                json_array_append_new(sc->out, entry_json(dirfd(d), names[i],
                                                          shown, &sb));
            }
        } else if (hit && S_ISREG(sb.st_mode)) {
            search_file(sc, dirfd(d), names[i], shown, &sb);
        }
        /* .git holds a repository's objects, not its files. */
        if (is_dir && strcmp(names[i], ".git") != 0 &&
            depth + 1 < SP_FILE_MAX_DEPTH) {
            int sub = openat(dirfd(d), names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                scan_dir(sc, sub, shown, depth + 1);
                close(sub);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
}

/* file.glob {path, pattern, max?, dirs?} and file.search {path, pattern,
 * glob?, literal?, ignore_case?, max?}: bounded walks below path (no
 * symlink followed, .git skipped). */
static void do_find(int sock, int rootfd, json_int_t id, const char *rel,
                    json_t *params, bool search)
{
    const char *pattern = NULL, *glob = NULL;
    double max = SP_FILE_SEARCH_DEFAULT;
    sp_error err = {0};
    if (sp_proto_get_string(params, "pattern", true, SP_FILE_PATTERN_MAX,
                            &pattern, &err) < 0 ||
        sp_proto_get_string(params, "glob", false, SP_FILE_PATTERN_MAX, &glob,
                            &err) < 0 ||
        sp_proto_get_number(params, "max", false, 1, SP_FILE_SEARCH_MAX, &max,
                            &err) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    if (!*pattern) {
        reply_err(sock, id, SP_RPC_PARAMS, EINVAL, "the pattern is empty");
        return;
    }
    struct scan sc = {.out = json_array(), .max = (size_t)max,
                      .icase = jbool(params, "ignore_case")};
    regex_t re;
    if (search) {
        sc.glob = glob && *glob ? glob : NULL;
        if (jbool(params, "literal")) {
            sc.literal = pattern;
        } else {
            int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB |
                                               (sc.icase ? REG_ICASE : 0));
            if (rc != 0) {
                char msg[200];
                regerror(rc, &re, msg, sizeof(msg));
                json_decref(sc.out);
                reply_err(sock, id, SP_RPC_PARAMS, EINVAL,
                          "the pattern is not an extended regular expression "
                          "(%s); pass literal: true to search for it as text",
                          msg);
                return;
            }
            sc.re = &re;
        }
    } else {
        sc.glob = pattern;
        sc.want_dirs = jbool(params, "dirs");
    }
    int fd = open_beneath(rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        if (sc.re)
            regfree(&re);
        json_decref(sc.out);
        reply_err(sock, id, SP_RPC_FILE, -fd, "%s: %s", rel,
                  -fd == ENOTDIR ? "not a directory" : why(-fd));
        return;
    }
    scan_dir(&sc, fd, strcmp(rel, ".") == 0 ? "" : rel, 0);
    close(fd);
    if (sc.re)
        regfree(&re);
    if (sc.err) {
        json_decref(sc.out);
        reply_err(sock, id, SP_RPC_FILE, -sc.err, "%s: %s", rel, why(-sc.err));
        return;
    }
    json_t *r = json_pack("{s:o,s:b}", search ? "matches" : "paths", sc.out,
                          "truncated", sc.truncated);
    if (search) {
        json_object_set_new(r, "files_searched", json_integer((json_int_t)sc.files));
        json_object_set_new(r, "files_skipped", json_integer((json_int_t)sc.skipped));
    }
    reply(sock, id, r, NULL, 0);
}

void sp_agent_files_handle(int sock, int rootfd, json_int_t id,
                           const char *method, json_t *params,
                           const char *frame, size_t frame_len, int fd)
{
    if (strncmp(method, "archive.", 8) == 0) {
        start_archive(sock, rootfd, id, method, params, fd);
        return;
    }
    if (fd >= 0)
        close(fd);
    if (strcmp(method, "patch.apply") == 0) {
        do_patch(sock, rootfd, id, params, frame, frame_len);
        return;
    }
    if (strcmp(method, "file.rename") == 0) {
        do_rename(sock, rootfd, id, params);
        return;
    }
    const char *path = NULL, *w = NULL;
    sp_error err = {0};
    char rel[SP_MAX_PATH];
    if (sp_proto_get_string(params, "path", true, SP_MAX_PATH, &path, &err) <
        0) {
        reply_err(sock, id, SP_RPC_PARAMS, 0, "%s", err.message);
        return;
    }
    if (rel_path(path, rel, sizeof(rel), &w) < 0) {
        reply_err(sock, id, SP_RPC_PARAMS, EINVAL, "%s: %s", path, w);
        return;
    }
    if (strcmp(method, "file.stat") == 0)
        do_stat(sock, rootfd, id, rel);
    else if (strcmp(method, "file.list") == 0)
        do_list(sock, rootfd, id, rel, params);
    else if (strcmp(method, "file.read") == 0)
        do_read(sock, rootfd, id, rel, params);
    else if (strcmp(method, "file.write") == 0)
        do_write(sock, rootfd, id, rel, params, frame, frame_len);
    else if (strcmp(method, "file.mkdir") == 0)
        do_mkdir(sock, rootfd, id, rel, params);
    else if (strcmp(method, "file.remove") == 0)
        do_remove(sock, rootfd, id, rel, params);
    else if (strcmp(method, "file.glob") == 0 ||
             strcmp(method, "file.search") == 0)
        do_find(sock, rootfd, id, rel, params, method[5] == 's');
    else
        reply_err(sock, id, SP_RPC_METHOD, 0, "unknown method");
}
