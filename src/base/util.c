/* util.c — pure helpers: parsing sizes and durations, path normalization. */
#include "util.h"

#include <ctype.h>
#include <sys/stat.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "bounds.h"

int sp_parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
    if (!s || !*s)
        return -EINVAL;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return -EINVAL;
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

/* Split "1.5GiB" into a decimal number and a unit. The number must be plain
 * digits with at most one '.', so no "inf", "nan", hex, or exponent. */
static int split_number(const char *s, double *num, const char **unit)
{
    const char *c = s;
    bool digits = false, dot = false;
    for (; *c; c++) {
        if (isdigit((unsigned char)*c))
            digits = true;
        else if (*c == '.' && !dot)
            dot = true;
        else
            break;
    }
    if (!digits)
        return -EINVAL;
    char buf[64];
    size_t n = (size_t)(c - s);
    if (n >= sizeof(buf))
        return -ERANGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (!end || *end || !isfinite(v) || v < 0)
        return -EINVAL;
    *num = v;
    *unit = c;
    return 0;
}

int sp_parse_size(const char *s, uint64_t *ret)
{
    if (!s)
        return -EINVAL;
    double v;
    const char *unit;
    int r = split_number(s, &v, &unit);
    if (r < 0)
        return r;
    static const struct {
        const char *name;
        double mult;
    } units[] = {
        {"", 1},           {"b", 1},
        {"k", 1024.0},     {"kb", 1024.0},     {"kib", 1024.0},
        {"m", 1048576.0},  {"mb", 1048576.0},  {"mib", 1048576.0},
        {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
        {"t", 1099511627776.0}, {"tb", 1099511627776.0},
        {"tib", 1099511627776.0},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(units); i++) {
        if (strcasecmp(unit, units[i].name) == 0) {
            double bytes = v * units[i].mult;
            if (bytes >= 18446744073709551615.0)
                return -ERANGE;
            *ret = (uint64_t)bytes;
            return 0;
        }
    }
    return -EINVAL;
}

int sp_parse_duration(const char *s, double *ret)
{
    if (!s)
        return -EINVAL;
    double v;
    const char *unit;
    int r = split_number(s, &v, &unit);
    if (r < 0)
        return r;
    double mult;
    if (!*unit || strcmp(unit, "s") == 0)
        mult = 1;
    else if (strcmp(unit, "ms") == 0)
        mult = 0.001;
    else if (strcmp(unit, "m") == 0)
        mult = 60;
    else if (strcmp(unit, "h") == 0)
        mult = 3600;
    else
        return -EINVAL;
    v *= mult;
    if (v > SP_MAX_TIMEOUT)
        return -ERANGE;
    *ret = v;
    return 0;
}

void sp_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *names[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t i = 0;
    while (v >= 1024 && i + 1 < SP_ARRAY_SIZE(names)) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
    else if (v == floor(v))
        snprintf(buf, len, "%.0f %s", v, names[i]);
    else
        snprintf(buf, len, "%.1f %s", v, names[i]);
}

int sp_path_normalize(const char *in, char *out, size_t len)
{
    if (!in || in[0] != '/')
        return -EINVAL;
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - seg);
        if (n == 1 && seg[0] == '.')
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.')
            return -EINVAL;
        if (o + 1 + n + 1 > len)
            return -ENAMETOOLONG;
        out[o++] = '/';
        memcpy(out + o, seg, n);
        o += n;
    }
    if (o == 0) {
        if (len < 2)
            return -ENAMETOOLONG;
        out[o++] = '/';
    }
    out[o] = '\0';
    return 0;
}

bool sp_path_has_prefix(const char *path, const char *dir)
{
    if (strcmp(dir, "/") == 0)
        return path[0] == '/';
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *sp_printable(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1
                     : (p[i] & 0xe0) == 0xc0 ? 2
                     : (p[i] & 0xf0) == 0xe0 ? 3
                     : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && (len == 1 || p[i] >= 0xc2);
        for (size_t k = 1; ok && k < len; k++)
            ok = (p[i + k] & 0xc0) == 0x80;
        /* C0 and DEL; C1 is 0xc2 0x80..0x9f (both bytes escaped) */
        size_t k = 1;
        if (ok && len == 1 && (p[i] < 0x20 || p[i] == 0x7f))
            ok = false;
        if (ok && len == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            ok = false;
            k = 2;
        }
        if (ok) {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
            continue;
        }
        for (size_t j = 0; j < k; j++, i++)
            o += (size_t)snprintf(out + o, 5, "\\x%02x", p[i]);
    }
    out[o] = '\0';
    return out;
}

int sp_chmod_nofollow(int dirfd, const char *name, mode_t mode)
{
    return fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW);
}

uint64_t sp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int sp_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -ENOSPC;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

void sp_close_all_except(int *keep, size_t n, unsigned from)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned lo = from;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 0)
            continue;
        if ((unsigned)keep[i] > lo)
            syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0U);
        if ((unsigned)keep[i] + 1 > lo)
            lo = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, lo, ~0U, 0U);
}

/* execve with our own PATH search: execvp may allocate. Returns the errno
 * that decides 126 vs 127. */
static int (*exec_hook)(void);

void sp_exec_search_hook(int (*fn)(void))
{
    exec_hook = fn;
}

int sp_path_search(const char *cmd, const char *path_env,
                   int (*try_one)(const char *file, void *arg), void *arg)
{
    if (strchr(cmd, '/'))
        return try_one(cmd, arg);
    char buf[SP_MAX_PATH];
    const char *path = path_env ? path_env : SP_DEFAULT_PATH;
    int saw = ENOENT;
    size_t clen = strlen(cmd);
    while (*path) {
        const char *end = strchrnul(path, ':');
        size_t dlen = (size_t)(end - path);
        if (dlen == 0) {
            /* An empty PATH entry means the current directory. */
            buf[0] = '.';
            dlen = 1;
        } else if (dlen < sizeof(buf)) {
            memcpy(buf, path, dlen);
        }
        if (dlen + 1 + clen + 1 <= sizeof(buf)) {
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, cmd, clen + 1);
            int e = try_one(buf, arg);
            if (e <= 0)
                return -e; /* found (0), or a failure that ends the search */
            if (e != ENOENT && e != ENOTDIR)
                saw = e;
        }
        path = *end ? end + 1 : end;
    }
    return saw;
}

struct exec_args {
    char *const *argv, *const *envp;
};

static int try_exec(const char *file, void *arg)
{
    const struct exec_args *a = arg;
    execve(file, a->argv, a->envp);
    int e = errno;
    /* These end the search: the file is there but cannot run. */
    return e == ENOEXEC || e == E2BIG || e == ENOMEM || e == ETXTBSY ? -e : e;
}

int sp_exec_search(char *const argv[], char *const envp[], const char *path_env)
{
    if (exec_hook) {
        int r = exec_hook();
        if (r < 0)
            return -r;
    }
    struct exec_args a = {argv, envp};
    if (strchr(argv[0], '/')) {
        execve(argv[0], argv, envp);
        return errno;
    }
    return sp_path_search(argv[0], path_env, try_exec, &a);
}

int sp_open_dir_at(int at, const char *name)
{
    return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int sp_mkdir_open(int at, const char *name, mode_t mode)
{
    if (mkdirat(at, name, mode) < 0 && errno != EEXIST)
        return -errno;
    int fd = sp_open_dir_at(at, name);
    return fd < 0 ? -errno : fd;
}

/* Write `len` bytes to dirfd/name through name.tmp, fsync and rename. */
int sp_write_atomic(int dirfd, const char *name, const char *data,
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

_Noreturn void sp_exec_or_die(char *const argv[], char *const envp[],
                              const char *path_env, const char *eol)
{
    int e = sp_exec_search(argv, envp, path_env);
    char msg[600];
    int n = snprintf(msg, sizeof(msg), "sandpit: %.400s: %s%s", argv[0],
                     e == ENOENT ? "command not found" : strerror(e), eol);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        _exit(e == ENOENT ? 127 : 126);
    _exit(e == ENOENT ? 127 : 126);
}

int sp_proc_stat(int procfd, long pid, struct sp_proc_stat *ret)
{
    char path[48], buf[512];
    snprintf(path, sizeof(path), "%s%ld/stat", procfd < 0 ? "/proc/" : "", pid);
    int fd = openat(procfd < 0 ? AT_FDCWD : procfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    sp_close_keep_errno(fd);
    if (n <= 0)
        return n < 0 ? -errno : -ESRCH;
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp session ..." — comm may hold ')'. */
    char *rp = strrchr(buf, ')');
    int ppid, pgrp, session;
    char st;
    if (!rp || sscanf(rp + 1, " %c %d %d %d", &st, &ppid, &pgrp, &session) != 4)
        return -EINVAL;
    *ret = (struct sp_proc_stat){st, ppid, pgrp, session};
    return 0;
}

size_t sp_strip_terminal(char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0x1b && i + 1 < len) {
            unsigned char t = (unsigned char)buf[i + 1];
            if (t == '[') { /* CSI: parameters, then a final 0x40-0x7e */
                i += 2;
                while (i < len && !((unsigned char)buf[i] >= 0x40 &&
                                    (unsigned char)buf[i] <= 0x7e))
                    i++;
            } else if (t == ']' || t == 'P' || t == '_' || t == '^') {
                /* OSC and the other strings: to BEL or ESC \ */
                i += 2;
                while (i < len && buf[i] != 0x07 &&
                       !(buf[i] == 0x1b && i + 1 < len && buf[i + 1] == '\\'))
                    i++;
                if (i < len && buf[i] == 0x1b)
                    i++;
            } else {
                /* ESC, intermediates (0x20-0x2f), one final byte. */
                i++;
                while (i < len && (unsigned char)buf[i] >= 0x20 &&
                       (unsigned char)buf[i] <= 0x2f)
                    i++;
            }
            continue;
        }
        if (c == '\r') {
            if (i + 1 < len && buf[i + 1] == '\n')
                continue; /* CR LF: the LF stays */
            continue;
        }
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || c == 0x1b)
            continue;
        buf[o++] = (char)c;
    }
    return o;
}
