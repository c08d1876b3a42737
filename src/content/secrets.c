/* secrets.c — a workspace's secrets (secrets.h, docs/secrets.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "ring.h"
#include "util.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOEXEC
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct secrets_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* A usage error whose message says it all (no strerror appended);
 * returns -e. */
static int uerr(sp_error *err, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int uerr(sp_error *err, int e, const char *fmt, ...)
{
    char msg[sizeof(((sp_error *)0)->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sp_error_setk(err, SP_ERR_USAGE, 0, "%s", msg);
    return -e;
}

bool sp_secret_name_ok(const char *name)
{
    if (!name || !((name[0] >= 'A' && name[0] <= 'Z') ||
                   (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
        return false;
    size_t i = 1;
    for (; name[i]; i++) {
        char c = name[i];
        if (i >= SP_SECRET_NAME_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

void sp_secrets_free(struct sp_secrets *s)
{
    if (!s)
        return;
    sp_redact_free(s->redact);
    if (s->map) {
        explicit_bzero(s->map, s->map_len);
        munlock(s->map, s->map_len);
        munmap(s->map, s->map_len);
    }
    explicit_bzero(s, sizeof(*s));
    free(s);
}

int sp_secrets_new(const sp_secret *in, size_t n, struct sp_secrets **ret,
                   sp_error *err)
{
    *ret = NULL;
    if (n == 0)
        return 0;
    if (!in)
        return uerr(err, EINVAL, "no secrets given");
    if (n > SP_MAX_SECRETS)
        return uerr(err, E2BIG,
                             "too many secrets (at most %d)", SP_MAX_SECRETS);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sp_secret_name_ok(in[i].name))
            return uerr(err, EINVAL,
                                 "secret name '%.80s': use 1 to %d of "
                                 "A-Z a-z 0-9 _, not starting with a digit",
                                 in[i].name ? in[i].name : "",
                                 SP_SECRET_NAME_MAX);
        if (!in[i].value || in[i].len < SP_SECRET_MIN_LEN)
            return uerr(err, EINVAL,
                                 "secret %s is shorter than %d bytes: it "
                                 "could not be redacted safely",
                                 in[i].name, SP_SECRET_MIN_LEN);
        if (in[i].len > SP_SECRET_MAX_LEN)
            return uerr(err, EINVAL,
                                 "secret %s is longer than %d bytes",
                                 in[i].name, SP_SECRET_MAX_LEN);
        for (size_t j = 0; j < i; j++)
            if (strcmp(in[i].name, in[j].name) == 0)
                return uerr(err, EINVAL,
                                     "secret %s is given twice", in[i].name);
        total += in[i].len;
    }
    struct sp_secrets *s = calloc(1, sizeof(*s));
    if (!s)
        return sp_error_set(err, ENOMEM, "secrets");
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    s->map_len = (total + page - 1) / page * page;
    s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        sp_secrets_free(s);
        return sp_error_set(err, ENOMEM, "secrets");
    }
    /* Best effort: never in a core dump, never swapped out. */
    madvise(s->map, s->map_len, MADV_DONTDUMP);
    (void)mlock(s->map, s->map_len);
    s->redact = sp_redact_new();
    if (!s->redact) {
        sp_secrets_free(s);
        return sp_error_set(err, ENOMEM, "secrets");
    }
    unsigned char *p = s->map;
    for (size_t i = 0; i < n; i++) {
        struct sp_secret_v *v = &s->v[i];
        snprintf(v->name, sizeof(v->name), "%s", in[i].name);
        memcpy(p, in[i].value, in[i].len);
        v->value = p;
        v->len = in[i].len;
        p += in[i].len;
        int r = sp_redact_add(s->redact, v->name, v->value, v->len, err);
        if (r < 0) {
            sp_secrets_free(s);
            return r;
        }
        s->n++;
    }
    s->total = total;
    *ret = s;
    return 0;
}

const struct sp_secret_v *sp_secrets_find(const struct sp_secrets *s,
                                          const char *name)
{
    for (size_t i = 0; s && name && i < s->n; i++)
        if (strcmp(s->v[i].name, name) == 0)
            return &s->v[i];
    return NULL;
}

/* ---- the names in the state directory ---------------------------------- */

int sp_secrets_save_names(int wsfd, const struct sp_secrets *s, sp_error *err)
{
    if (!s || s->n == 0) {
        if (unlinkat(wsfd, SP_SECRETS_NAMES_FILE, 0) < 0 && errno != ENOENT)
            return sp_error_set(err, errno, "cannot remove %s",
                                SP_SECRETS_NAMES_FILE);
        return 0;
    }
    char buf[SP_MAX_SECRETS * (SP_SECRET_NAME_MAX + 1) + 1];
    size_t len = 0;
    for (size_t i = 0; i < s->n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\n",
                                s->v[i].name);
    int fd = openat(wsfd, SP_SECRETS_NAMES_FILE ".tmp",
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot write %s",
                            SP_SECRETS_NAMES_FILE);
    int r = 0;
    for (size_t off = 0; off < len && r == 0;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            r = w < 0 ? -errno : -EIO;
        else
            off += (size_t)w;
    }
    close(fd);
    if (r == 0 && renameat(wsfd, SP_SECRETS_NAMES_FILE ".tmp", wsfd,
                           SP_SECRETS_NAMES_FILE) < 0)
        r = -errno;
    if (r < 0)
        return sp_error_set(err, -r, "cannot write %s", SP_SECRETS_NAMES_FILE);
    return 0;
}

int sp_secrets_check_names(int wsfd, const char *ws,
                           const struct sp_secrets *s, sp_error *err)
{
    int fd = openat(wsfd, SP_SECRETS_NAMES_FILE,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0
                               : sp_error_set(err, errno, "cannot read %s",
                                              SP_SECRETS_NAMES_FILE);
    char buf[SP_MAX_SECRETS * (SP_SECRET_NAME_MAX + 1) + 1];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return sp_error_set(err, errno, "cannot read %s",
                            SP_SECRETS_NAMES_FILE);
    buf[n] = '\0';
    char missing[sizeof(buf)];
    size_t ml = 0;
    missing[0] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, "\n", &save); t;
         t = strtok_r(NULL, "\n", &save)) {
        if (!sp_secret_name_ok(t) || sp_secrets_find(s, t))
            continue;
        ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "%s%s",
                               ml ? ", " : "", t);
    }
    if (ml)
        return uerr(err, EINVAL,
                             "workspace %s was created with secrets that "
                             "are not kept while it is stopped: start it "
                             "with --secret NAME=@FILE (or NAME=env:VAR) "
                             "for %s",
                             ws, missing);
    return 0;
}

/* ---- inside: /run/secrets ----------------------------------------------- */

uint64_t sp_secrets_tmpfs_size(const struct sp_secrets *s)
{
    /* a page per file (tmpfs rounds up), one for the directory */
    return s ? (uint64_t)s->total + 4096u * (s->n + 2) : 4096u;
}

int sp_secrets_populate(const struct sp_secrets *s, const char *dir,
                        uid_t uid, gid_t gid)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int r = 0;
    for (size_t i = 0; s && i < s->n && r == 0; i++) {
        int fd = openat(dfd, s->v[i].name,
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0400);
        if (fd < 0) {
            r = -errno;
            break;
        }
        size_t off = 0;
        while (off < s->v[i].len) {
            ssize_t w = write(fd, s->v[i].value + off, s->v[i].len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r = w < 0 ? -errno : -EIO;
                break;
            }
            off += (size_t)w;
        }
        if (r == 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, 0400) < 0))
            r = -errno;
        close(fd);
    }
    if (r == 0 && (fchown(dfd, uid, gid) < 0 || fchmod(dfd, 0500) < 0))
        r = -errno;
    close(dfd);
    if (r < 0)
        return r;
    struct secrets_mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY |
                                                  MOUNT_ATTR_NOEXEC};
    if (syscall(SYS_mount_setattr, AT_FDCWD, dir, 0, &attr, sizeof(attr)) < 0)
        return -errno;
    return 0;
}

/* ---- the agent ---------------------------------------------------------- */

static const struct sp_secrets *agent_set;

void sp_secrets_agent_set(const struct sp_secrets *s)
{
    agent_set = s && s->n ? s : NULL;
}

const struct sp_secrets *sp_secrets_agent(void) { return agent_set; }

static int to_ring(void *ctx, const void *data, size_t len)
{
    sp_ring_write(ctx, data, len);
    return 0;
}

void sp_secrets_ring_write(struct sp_redact_stream **rs, struct sp_ring *r,
                           const void *data, size_t len)
{
    if (!agent_set) {
        sp_ring_write(r, data, len);
        return;
    }
    if (!*rs && !(*rs = sp_redact_stream_new(agent_set->redact))) {
        /* Out of memory: drop the bytes rather than let a value out. */
        static const char note[] = "[REDACTED:output lost: out of memory]";
        sp_ring_write(r, note, sizeof(note) - 1);
        return;
    }
    sp_redact_feed(*rs, data, len, to_ring, r);
}

void sp_secrets_ring_end(struct sp_redact_stream **rs, struct sp_ring *r)
{
    if (!*rs)
        return;
    sp_redact_finish(*rs, to_ring, r);
    sp_redact_stream_free(*rs);
    *rs = NULL;
}

struct obuf {
    char *p;
    size_t len, cap;
};

static int obuf_put(struct obuf *o, const void *d, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n)
            cap *= 2;
        char *np = realloc(o->p, cap);
        if (!np)
            return -ENOMEM;
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->len, d, n);
    o->len += n;
    return 0;
}

int sp_secrets_redact_window(const struct sp_secrets *s, const char *buf,
                             size_t len, size_t win_off, size_t win_len,
                             char **ret, size_t *ret_len)
{
    *ret = NULL;
    *ret_len = 0;
    if (!s || s->n == 0)
        return 0;
    size_t win_end = win_off + win_len;
    struct obuf o = {0};
    bool changed = false;
    size_t copied = win_off; /* window bytes before this are in o */
    for (size_t p = 0; p < len && p < win_end;) {
        const struct sp_secret_v *best = NULL;
        for (size_t i = 0; i < s->n; i++) {
            const struct sp_secret_v *v = &s->v[i];
            if (v->len <= len - p && (unsigned char)buf[p] == v->value[0] &&
                memcmp(buf + p, v->value, v->len) == 0 &&
                (!best || v->len > best->len))
                best = v;
        }
        if (!best) {
            p++;
            continue;
        }
        size_t end = p + best->len;
        if (end > win_off) {
            changed = true;
            /* the plain bytes before the match */
            if (p > copied && obuf_put(&o, buf + copied, p - copied) < 0)
                goto nomem;
            if (p >= win_off) {
                char repl[SP_SECRET_NAME_MAX + 16];
                int rl = snprintf(repl, sizeof(repl), "[REDACTED:%s]",
                                  best->name);
                if (obuf_put(&o, repl, (size_t)rl) < 0)
                    goto nomem;
            }
            copied = end < win_end ? end : win_end;
        }
        p = end;
    }
    if (!changed)
        return 0;
    if (copied < win_end && obuf_put(&o, buf + copied, win_end - copied) < 0)
        goto nomem;
    if (!o.p && !(o.p = malloc(1)))
        return -ENOMEM;
    *ret = o.p;
    *ret_len = o.len;
    return 1;
nomem:
    free(o.p);
    return -ENOMEM;
}

struct relay_out {
    int fd;
    bool failed;
};

/* An env:VAR secret is read: no trace of it stays in this process's
 * environment, which a supervisor forked from us would keep for its whole
 * life. /proc/PID/environ shows the original block, so the value's bytes
 * are overwritten in place as well as unset. */
static void scrub_env(const char *var)
{
    size_t vl = strlen(var);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, var, vl) == 0 && (*e)[vl] == '=')
            explicit_bzero(*e + vl + 1, strlen(*e + vl + 1));
    unsetenv(var);
}

static int relay_write(void *ctx, const void *data, size_t len)
{
    struct relay_out *ro = ctx;
    if (ro->failed)
        return -EPIPE;
    const char *p = data;
    while (len) {
        ssize_t w = write(ro->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {ro->fd, POLLOUT, 0};
            poll(&pf, 1, -1);
            continue;
        }
        if (w <= 0) {
            ro->failed = true;
            return -EPIPE;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

_Noreturn void sp_secrets_relay(const struct sp_secrets *s, const int in[2],
                                const int out[2])
{
    struct sp_redact_stream *rs[2] = {sp_redact_stream_new(s->redact),
                                      sp_redact_stream_new(s->redact)};
    struct relay_out ro[2] = {{out[0], false}, {out[1], false}};
    int fd[2] = {in[0], in[1]}; /* -1: a stream not relayed */
    static char buf[65536];
    if (!rs[0] || !rs[1])
        _exit(1); /* the command sees EPIPE: nothing unredacted leaves */
    while (fd[0] >= 0 || fd[1] >= 0) {
        struct pollfd pf[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int k = 0; k < 2; k++) {
            if (fd[k] < 0 || !pf[k].revents)
                continue;
            ssize_t n = read(fd[k], buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n > 0 && sp_redact_feed(rs[k], buf, (size_t)n, relay_write,
                                        &ro[k]) == 0)
                continue;
            if (n <= 0)
                sp_redact_finish(rs[k], relay_write, &ro[k]);
            /* EOF, or the client's side failed: the command gets EPIPE */
            close(fd[k]);
            fd[k] = -1;
        }
    }
    _exit(0);
}

/* ---- loading (the CLI's --secret) ---------------------------------------- */

SP_EXPORT void sp_secret_value_free(void *value, size_t len)
{
    if (!value)
        return;
    explicit_bzero(value, len);
    free(value);
}

SP_EXPORT int sp_secret_load(const char *spec, char **ret_name,
                             void **ret_value, size_t *ret_len, sp_error *err)
{
    *ret_name = NULL;
    *ret_value = NULL;
    *ret_len = 0;
    const char *eq = spec ? strchr(spec, '=') : NULL;
    if (!eq)
        return uerr(err, EINVAL,
                             "--secret %.80s: expected NAME=@FILE or "
                             "NAME=env:VAR",
                             spec ? spec : "");
    size_t nl = (size_t)(eq - spec);
    char name[SP_SECRET_NAME_MAX + 2];
    snprintf(name, sizeof(name), "%.*s",
             (int)(nl < sizeof(name) - 1 ? nl : sizeof(name) - 1), spec);
    if (nl > SP_SECRET_NAME_MAX || !sp_secret_name_ok(name))
        return uerr(err, EINVAL,
                             "--secret: bad name '%.80s' (use 1 to %d of "
                             "A-Z a-z 0-9 _, not starting with a digit)",
                             name, SP_SECRET_NAME_MAX);
    const char *src = eq + 1;
    char *val = NULL;
    size_t len = 0;
    if (src[0] == '@') {
        const char *path = src + 1;
        int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return sp_error_setk(err, SP_ERR_USAGE, e,
                                 "--secret %s: cannot read %.400s", name,
                                 path);
        }
        if (S_ISDIR(sb.st_mode)) {
            close(fd);
            return uerr(err, EISDIR,
                                 "--secret %s: %.400s is a directory", name,
                                 path);
        }
        /* one byte more than the bound (plus a newline) tells "too long" */
        size_t cap = SP_SECRET_MAX_LEN + 2;
        val = malloc(cap);
        if (!val) {
            close(fd);
            return sp_error_set(err, ENOMEM, "secret");
        }
        for (;;) {
            ssize_t n = read(fd, val + len, cap - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                close(fd);
                sp_secret_value_free(val, cap);
                return sp_error_setk(err, SP_ERR_USAGE, e,
                                     "--secret %s: cannot read %.400s", name,
                                     path);
            }
            if (n == 0 || (len += (size_t)n) == cap)
                break;
        }
        close(fd);
        if (len > 0 && val[len - 1] == '\n')
            val[--len] = '\0';
        if (len > SP_SECRET_MAX_LEN) {
            sp_secret_value_free(val, cap);
            return uerr(err, EINVAL,
                                 "--secret %s: %.400s is longer than %d "
                                 "bytes",
                                 name, path, SP_SECRET_MAX_LEN);
        }
    } else if (strncmp(src, "env:", 4) == 0) {
        const char *v = getenv(src + 4);
        if (!src[4] || !v)
            return uerr(err, ENOENT,
                                 "--secret %s: the environment variable "
                                 "'%.200s' is not set",
                                 name, src + 4);
        len = strlen(v);
        if (len > SP_SECRET_MAX_LEN)
            return uerr(err, EINVAL,
                                 "--secret %s: $%.200s is longer than %d "
                                 "bytes",
                                 name, src + 4, SP_SECRET_MAX_LEN);
        if (!(val = malloc(len + 1)))
            return sp_error_set(err, ENOMEM, "secret");
        memcpy(val, v, len + 1);
        scrub_env(src + 4);
    } else {
        return uerr(err, EINVAL,
                             "--secret %s: give the value as @FILE or "
                             "env:VAR (a value on the command line would be "
                             "visible to every user in ps)",
                             name);
    }
    if (len < SP_SECRET_MIN_LEN) {
        sp_secret_value_free(val, len);
        return uerr(err, EINVAL,
                             "--secret %s is shorter than %d bytes: it could "
                             "not be redacted safely",
                             name, SP_SECRET_MIN_LEN);
    }
    if (!(*ret_name = strdup(name))) {
        sp_secret_value_free(val, len);
        return sp_error_set(err, ENOMEM, "secret");
    }
    *ret_value = val;
    *ret_len = len;
    return 0;
}

/* ---- JSON made by the supervisor (the egress proxy's log) ---------------- */

/* A redacted copy of string e, or NULL when it holds no value. A cut that
 * leaves bytes that are not UTF-8 makes the whole string a marker. */
static json_t *redact_string(const struct sp_secrets *s, json_t *e)
{
    const char *str = json_string_value(e);
    size_t len = json_string_length(e);
    char *out = NULL;
    size_t ol = 0;
    if (sp_redact_buffer(s->redact, str, len, &out, &ol) < 0)
        return json_string("[REDACTED]");
    json_t *r = NULL;
    if (ol != len || memcmp(out, str, len) != 0) {
        r = json_stringn(out, ol);
        if (!r)
            r = json_string("[REDACTED]");
    }
    free(out);
    return r;
}

void sp_secrets_redact_json(const struct sp_secrets *s, json_t *v)
{
    if (!s || !s->n || !v)
        return;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (json_is_string(e)) {
                json_t *r = redact_string(s, e);
                if (r)
                    json_array_set_new(v, i, r);
            } else {
                sp_secrets_redact_json(s, e);
            }
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, e) {
            /* "data": base64 of output redacted where it was made (shell
             * and service rings); rewriting it would break the base64. */
            if (strcmp(k, "data") == 0)
                continue;
            if (json_is_string(e)) {
                json_t *r = redact_string(s, e);
                if (r)
                    json_object_set_new(v, k, r);
            } else {
                sp_secrets_redact_json(s, e);
            }
        }
    }
}
