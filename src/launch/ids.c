/* ids.c — the user namespace's maps (ids.h, docs/security.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ids.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "state.h"
#include "util.h"

int sp_ids_subrange(const char *file, const char *name, uid_t uid,
                    struct sp_idrange *ret)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return -errno;
    char line[512];
    char num[16];
    snprintf(num, sizeof(num), "%u", (unsigned)uid);
    int rc = -ENOENT;
    size_t total = 0;
    while (fgets(line, sizeof(line), f)) {
        total += strlen(line);
        if (total > SP_MAX_SUBID_FILE)
            break;
        char *save = NULL;
        char *who = strtok_r(line, ":\n", &save);
        char *start = strtok_r(NULL, ":\n", &save);
        char *count = strtok_r(NULL, ":\n", &save);
        if (!who || !start || !count)
            continue;
        if (!((name && strcmp(who, name) == 0) || strcmp(who, num) == 0))
            continue;
        char *e1, *e2;
        errno = 0;
        unsigned long s = strtoul(start, &e1, 10);
        unsigned long c = strtoul(count, &e2, 10);
        if (errno || *e1 || *e2 || c == 0 || s > UINT32_MAX ||
            c > UINT32_MAX - s || s == 0)
            continue;
        ret->start = (uint32_t)s;
        ret->count = (uint32_t)c;
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

const char *sp_ids_helper(bool gid)
{
    static const char *const u[] = {"/usr/bin/newuidmap", "/bin/newuidmap",
                                    "/usr/sbin/newuidmap"};
    static const char *const g[] = {"/usr/bin/newgidmap", "/bin/newgidmap",
                                    "/usr/sbin/newgidmap"};
    const char *const *c = gid ? g : u;
    for (size_t i = 0; i < SP_ARRAY_SIZE(u); i++)
        if (access(c[i], X_OK) == 0)
            return c[i];
    return NULL;
}

/* The login name of uid from /etc/passwd, read directly: getpwuid() in a
 * static binary loads NSS modules at every start (as newuidmap itself
 * matches /etc/subuid by name or by number, a missing name is fine). */
static const char *user_name(uid_t uid, char *buf, size_t len)
{
    FILE *f = fopen("/etc/passwd", "re");
    if (!f)
        return NULL;
    char line[1024];
    const char *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        char *save = NULL;
        char *name = strtok_r(line, ":\n", &save);
        char *pw = strtok_r(NULL, ":\n", &save);
        char *id = strtok_r(NULL, ":\n", &save);
        char *end;
        if (!name || !pw || !id)
            continue;
        errno = 0;
        unsigned long v = strtoul(id, &end, 10);
        if (errno || *end || v != (unsigned long)uid)
            continue;
        snprintf(buf, len, "%s", name);
        found = buf;
    }
    fclose(f);
    return found;
}

void sp_ids_plan(struct sp_ids *ids)
{
    memset(ids, 0, sizeof(*ids));
    uid_t me = geteuid();
    if (me == 0) {
        struct sp_idrange u, g;
        ids->kind = SP_IDS_ROOT;
        ids->uid.start = ids->gid.start = SP_ROOT_ID_BASE;
        ids->uid.count = ids->gid.count = SP_ID_RANGE;
        /* An administrator's choice: the "sandpit" entries, when both are
         * there and large enough. */
        if (sp_ids_subrange("/etc/subuid", "sandpit", (uid_t)-1, &u) == 0 &&
            sp_ids_subrange("/etc/subgid", "sandpit", (uid_t)-1, &g) == 0 &&
            u.count >= SP_ID_RANGE && g.count >= SP_ID_RANGE) {
            ids->uid.start = u.start;
            ids->gid.start = g.start;
        }
        return;
    }
    ids->kind = SP_IDS_SINGLE;
    char namebuf[256];
    const char *name = user_name(me, namebuf, sizeof(namebuf));
    const char *hu = sp_ids_helper(false), *hg = sp_ids_helper(true);
    int ru = sp_ids_subrange("/etc/subuid", name, me, &ids->uid);
    int rg = sp_ids_subrange("/etc/subgid", name, me, &ids->gid);
    if (ru < 0 || rg < 0) {
        snprintf(ids->why, sizeof(ids->why),
                 "no /etc/%s entry for %.64s", ru < 0 ? "subuid" : "subgid",
                 name ? name : "this user");
    } else if (!hu || !hg) {
        snprintf(ids->why, sizeof(ids->why),
                 "newuidmap/newgidmap are not installed (Debian: uidmap)");
    } else {
        ids->kind = SP_IDS_SUB;
        if (ids->uid.count > SP_ID_RANGE - 1)
            ids->uid.count = SP_ID_RANGE - 1;
        if (ids->gid.count > SP_ID_RANGE - 1)
            ids->gid.count = SP_ID_RANGE - 1;
    }
}

/* "inside host count" lines for SUB: the caller at `in`, the subordinate
 * range filling 0.. around it. Returns the number of numbers put. */
static size_t sub_lines(uint32_t in, uint32_t caller,
                        const struct sp_idrange *r, uint32_t out[9])
{
    size_t n = 0;
    out[n++] = in;
    out[n++] = caller;
    out[n++] = 1;
    uint32_t below = in < r->count ? in : r->count;
    if (below) {
        out[n++] = 0;
        out[n++] = r->start;
        out[n++] = below;
    }
    if (r->count > below) {
        uint32_t rest = r->count - below;
        if (rest > SP_ID_RANGE - 1 - in)
            rest = SP_ID_RANGE - 1 - in;
        if (rest) {
            out[n++] = in + 1;
            out[n++] = r->start + below;
            out[n++] = rest;
        }
    }
    return n;
}

/* Start newuidmap/newgidmap on pid; its stderr goes to *errfd. */
static pid_t helper_start(const char *helper, pid_t pid, const uint32_t *v,
                          size_t n, int *errfd)
{
    char num[10][16];
    char *argv[12];
    size_t a = 0;
    argv[a++] = (char *)helper;
    snprintf(num[0], sizeof(num[0]), "%d", (int)pid);
    argv[a++] = num[0];
    for (size_t i = 0; i < n && i < 9; i++) {
        snprintf(num[i + 1], sizeof(num[i + 1]), "%u", v[i]);
        argv[a++] = num[i + 1];
    }
    argv[a] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    /* posix_spawn (vfork): no copy of our page tables for each helper */
    static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    posix_spawn_file_actions_t fa;
    pid_t c = -1;
    if (posix_spawn_file_actions_init(&fa) == 0) {
        if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) == 0 &&
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) == 0 &&
            posix_spawn_file_actions_adddup2(&fa, p[1], 2) == 0 &&
            posix_spawn(&c, helper, &fa, NULL, argv, envp) != 0)
            c = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    close(p[1]);
    if (c < 0) {
        close(p[0]);
        return -1;
    }
    *errfd = p[0];
    return c;
}

/* Wait for a helper; 0 when it exited 0, else -1 with its first line of
 * stderr in why. */
static int helper_wait(pid_t c, int errfd, char *why, size_t len)
{
    int st = 0;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR)
        ;
    char buf[256];
    ssize_t n = read(errfd, buf, sizeof(buf) - 1);
    close(errfd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    snprintf(why, len, "%s", buf[0] ? buf : "newuidmap/newgidmap failed");
    return -1;
}

static int write_file(const char *path, const char *text, sp_error *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open %s", path);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len)
        return sp_error_set(err, errno, "cannot write %s", path);
    return 0;
}

static int write_single(pid_t pid, bool gid, uint32_t in, sp_error *err)
{
    char path[64], map[64];
    if (gid) {
        snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
        int r = write_file(path, "deny", err);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid,
             gid ? "gid_map" : "uid_map");
    snprintf(map, sizeof(map), "%u %u 1\n", in,
             gid ? (unsigned)getegid() : (unsigned)geteuid());
    return write_file(path, map, err);
}

int sp_ids_write(pid_t pid, const struct sp_ids *ids, uint32_t uid,
                 uint32_t gid, bool *fell_back, sp_error *err)
{
    char path[64], map[64];
    *fell_back = false;
    if (ids->kind == SP_IDS_ROOT) {
        /* Written by host root: setgroups stays allowed inside. */
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        snprintf(map, sizeof(map), "0 %u %u\n", ids->uid.start, ids->uid.count);
        int r = write_file(path, map, err);
        if (r < 0)
            return r;
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
        snprintf(map, sizeof(map), "0 %u %u\n", ids->gid.start, ids->gid.count);
        return write_file(path, map, err);
    }
    if (ids->kind == SP_IDS_SUB) {
        uint32_t vu[9], vg[9];
        size_t nu = sub_lines(uid, (uint32_t)geteuid(), &ids->uid, vu);
        size_t ng = sub_lines(gid, (uint32_t)getegid(), &ids->gid, vg);
        int eu = -1, eg = -1;
        /* Both at once: each is a fork and exec of a set-uid program. */
        pid_t cu = helper_start(sp_ids_helper(false), pid, vu, nu, &eu);
        pid_t cg = helper_start(sp_ids_helper(true), pid, vg, ng, &eg);
        char whyu[256] = "", whyg[256] = "";
        int ru = cu > 0 ? helper_wait(cu, eu, whyu, sizeof(whyu)) : -1;
        int rg = cg > 0 ? helper_wait(cg, eg, whyg, sizeof(whyg)) : -1;
        if (ru == 0 && rg == 0)
            return 0;
        *fell_back = true;
        int r = 0;
        if (ru < 0 && (r = write_single(pid, false, uid, err)) < 0)
            return r;
        if (rg < 0 && (r = write_single(pid, true, gid, err)) < 0)
            return r;
        sp_error_set(err, 0, "%s", ru < 0 ? (whyu[0] ? whyu : "newuidmap failed")
                                          : (whyg[0] ? whyg : "newgidmap failed"));
        return 0;
    }
    int r = write_single(pid, true, gid, err);
    if (r < 0)
        return r;
    return write_single(pid, false, uid, err);
}

/* "0 B+u 1 / 1 B+1 u-1 / u B 1 / u+1 B+u+1 rest": ids swapped 0 <-> u. */
static void swapped_map(const struct sp_idrange *r, uint32_t u, char *buf,
                        size_t len)
{
    size_t n = 0;
    if (u == 0) {
        snprintf(buf, len, "0 %u %u\n", r->start, r->count);
        return;
    }
    n += (size_t)snprintf(buf + n, len - n, "0 %u 1\n", r->start + u);
    if (u > 1)
        n += (size_t)snprintf(buf + n, len - n, "1 %u %u\n", r->start + 1, u - 1);
    n += (size_t)snprintf(buf + n, len - n, "%u %u 1\n", u, r->start);
    if (u + 1 < r->count)
        snprintf(buf + n, len - n, "%u %u %u\n", u + 1, r->start + u + 1,
                 r->count - u - 1);
}

int sp_ids_swapped_userns(const struct sp_ids *ids, uint32_t uid, uint32_t gid)
{
    int go[2], ready[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(ready, O_CLOEXEC) < 0) {
        int e = errno;
        close(go[0]);
        close(go[1]);
        return -e;
    }
    pid_t c = fork();
    if (c == 0) {
        close(go[1]);
        close(ready[0]);
        char b = unshare(CLONE_NEWUSER) == 0 ? 'k' : 'e';
        if (write(ready[1], &b, 1) != 1)
            _exit(1);
        if (read(go[0], &b, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    int rc = 0;
    char b = 0;
    if (c < 0 || read(ready[0], &b, 1) != 1 || b != 'k')
        rc = c < 0 ? -errno : -EPERM;
    close(ready[0]);
    char path[64], map[160];
    sp_error err = {0};
    for (int g = 0; g < 2 && rc == 0; g++) {
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)c,
                 g ? "gid_map" : "uid_map");
        swapped_map(g ? &ids->gid : &ids->uid, g ? gid : uid, map, sizeof(map));
        rc = write_file(path, map, &err);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)c);
        rc = open(path, O_RDONLY | O_CLOEXEC);
        if (rc < 0)
            rc = -errno;
    }
    close(go[1]);
    if (c > 0)
        while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
            ;
    return rc;
}

int sp_ids_rm_rf_at(int dirfd, const char *name)
{
    int r = sp_rm_rf_at(dirfd, name);
    if ((r != -EACCES && r != -EPERM) || geteuid() == 0)
        return r;
    struct sp_ids ids;
    sp_ids_plan(&ids);
    if (ids.kind != SP_IDS_SUB)
        return r;
    /* A child in a user namespace of its own, mapped as the sandbox's
     * (the caller 0, its subordinate ids 1..): as that namespace's root it
     * may remove files of every id mapped there. */
    int go[2], ready[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return r;
    if (pipe2(ready, O_CLOEXEC) < 0) {
        close(go[0]);
        close(go[1]);
        return r;
    }
    pid_t c = fork();
    if (c == 0) {
        close(go[1]);
        close(ready[0]);
        char b = unshare(CLONE_NEWUSER) == 0 ? 'k' : 'e';
        if (write(ready[1], &b, 1) != 1 || b != 'k')
            _exit(100);
        if (read(go[0], &b, 1) != 1 || b != 'm')
            _exit(101);
        _exit(sp_rm_rf_at(dirfd, name) < 0 ? 1 : 0);
    }
    close(go[0]);
    close(ready[1]);
    char b = 0;
    bool ok = c > 0 && read(ready[0], &b, 1) == 1 && b == 'k';
    close(ready[0]);
    if (ok) {
        bool fell_back = false;
        sp_error err = {0};
        ok = sp_ids_write(c, &ids, 0, 0, &fell_back, &err) == 0 && !fell_back;
    }
    b = ok ? 'm' : 'x';
    if (c > 0 && write(go[1], &b, 1) != 1) { /* the child sees EOF */ }
    close(go[1]);
    if (c < 0)
        return r;
    int st = 0;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : r;
}

void sp_ids_describe(const struct sp_ids *ids, char *buf, size_t len)
{
    switch (ids->kind) {
    case SP_IDS_ROOT:
        snprintf(buf, len,
                 "uids 0-%u inside are host uids %u-%u, gids 0-%u host gids "
                 "%u-%u",
                 ids->uid.count - 1, ids->uid.start,
                 ids->uid.start + ids->uid.count - 1, ids->gid.count - 1,
                 ids->gid.start, ids->gid.start + ids->gid.count - 1);
        break;
    case SP_IDS_SUB:
        snprintf(buf, len,
                 "the caller's uid and gid, plus %u subordinate uids from "
                 "%u and %u gids from %u (/etc/subuid, /etc/subgid)",
                 ids->uid.count, ids->uid.start, ids->gid.count,
                 ids->gid.start);
        break;
    default:
        snprintf(buf, len, "one id, the caller's (%s)",
                 ids->why[0] ? ids->why : "no range");
        break;
    }
}
