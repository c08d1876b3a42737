/* wsaudit.c — a workspace's denial log (wsaudit.h). */
#include "wsaudit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "state.h"
#include "util.h"

static const char LOG_NAME[] = "audit.jsonl";
static const char OLD_NAME[] = "audit.1.jsonl";

/* Read a whole log file (bounded by the rotation size, with slack for a
 * last line); NULL when absent or unreadable. */
static char *read_log(int wsfd, const char *name, size_t *len)
{
    int fd = openat(wsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    size_t cap = SP_AUDIT_LOG_BYTES / 2 + SP_AUDIT_LINE_MAX + 1;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    while (buf && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static uint64_t line_seq(const char *line, size_t len)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    json_t *s = json_object_get(o, "seq");
    uint64_t v = json_is_integer(s) && json_integer_value(s) > 0
                     ? (uint64_t)json_integer_value(s)
                     : 0;
    json_decref(o);
    return v;
}

void sp_audit_open(struct sp_audit *a, int wsfd)
{
    a->wsfd = wsfd;
    a->last_seq = 0;
    static const char *const names[] = {LOG_NAME, OLD_NAME};
    for (size_t k = 0; k < 2 && a->last_seq == 0; k++) {
        size_t len = 0;
        char *buf = read_log(wsfd, names[k], &len);
        if (!buf)
            continue;
        /* the last complete line */
        size_t end = len;
        while (end > 0 && buf[end - 1] == '\n')
            end--;
        size_t start = end;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        if (end > start)
            a->last_seq = line_seq(buf + start, end - start);
        free(buf);
    }
}

int sp_audit_append(struct sp_audit *a, json_t *entry)
{
    if (a->wsfd < 0)
        return -EBADF;
    json_object_set_new(entry, "seq", json_integer((json_int_t)++a->last_seq));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object_set_new(entry, "time_ms",
                        json_integer((json_int_t)ts.tv_sec * 1000 +
                                     ts.tv_nsec / 1000000));
    char *line = json_dumps(entry, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!line)
        return -ENOMEM;
    size_t len = strlen(line);
    if (len > SP_AUDIT_LINE_MAX - 1) {
        free(line);
        return -E2BIG;
    }
    line[len] = '\n'; /* replaces the NUL: write len + 1 bytes */
    struct stat st;
    if (fstatat(a->wsfd, LOG_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (uint64_t)st.st_size + len + 1 > SP_AUDIT_LOG_BYTES / 2)
        renameat(a->wsfd, LOG_NAME, a->wsfd, OLD_NAME);
    int fd = openat(a->wsfd, LOG_NAME,
                    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    int r = fd < 0 ? -errno : sp_write_all(fd, line, len + 1);
    if (fd >= 0)
        close(fd);
    free(line);
    return r;
}

static void add_lines(json_t *out, const char *buf, size_t len, uint64_t after,
                      size_t max, uint64_t *first)
{
    size_t i = 0;
    while (i < len && json_array_size(out) < max) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break; /* a line being written */
        size_t l = (size_t)(nl - (buf + i));
        json_t *o = json_loadb(buf + i, l, 0, NULL);
        json_t *s = json_object_get(o, "seq");
        if (json_is_object(o) && json_is_integer(s)) {
            uint64_t v = (uint64_t)json_integer_value(s);
            if (!*first || v < *first)
                *first = v;
            if (v > after) {
                json_array_append(out, o);
            }
        }
        json_decref(o);
        i += l + 1;
    }
}

json_t *sp_ws_audit_read(const char *name, uint64_t after, size_t max,
                         sp_error *err)
{
    char dir[SP_MAX_PATH];
    if (sp_state_dir(dir, sizeof(dir), err) < 0)
        return NULL;
    if (!sp_ws_name_valid(name)) {
        sp_error_setk(err, SP_ERR_USAGE, 0, "invalid workspace name \"%s\"",
                      name);
        return NULL;
    }
    int wsfd = sp_state_open_ws(dir, name, err);
    if (wsfd < 0)
        return NULL;
    if (max == 0 || max > SP_AUDIT_READ_MAX)
        max = SP_AUDIT_READ_MAX;
    json_t *entries = json_array();
    uint64_t first = 0, last = after;
    static const char *const names[] = {OLD_NAME, LOG_NAME};
    for (size_t k = 0; k < 2; k++) {
        size_t len = 0;
        char *buf = read_log(wsfd, names[k], &len);
        if (buf)
            add_lines(entries, buf, len, after, max, &first);
        free(buf);
    }
    close(wsfd);
    size_t n = json_array_size(entries);
    if (n) {
        json_t *s = json_object_get(json_array_get(entries, n - 1), "seq");
        last = (uint64_t)json_integer_value(s);
    }
    return json_pack("{s:o,s:I,s:I}", "entries", entries, "last",
                     (json_int_t)last, "first_kept", (json_int_t)first);
}
