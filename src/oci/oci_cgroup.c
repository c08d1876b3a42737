/* oci_cgroup.c — the container's cgroup at linux.cgroupsPath, on cgroup v2
 * or v1: the spec's resources written there, pause/resume by the freezer,
 * ps, stats, kill --all, and removal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"
#include "util.h"

#define CG_ROOT "/sys/fs/cgroup"

static int wfile(const char *dir, const char *name, const char *val)
{
    char p[SP_MAX_PATH];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    return n == (ssize_t)strlen(val) ? 0 : -e;
}

static int rfile(const char *dir, const char *name, char *buf, size_t len)
{
    char p[SP_MAX_PATH];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return (int)n;
}

static bool exists(const char *dir, const char *name)
{
    char p[SP_MAX_PATH];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int mkdir_p(const char *path)
{
    char buf[SP_MAX_PATH];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *c = buf + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *c = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int oci_resources_parse(const json_t *r, struct oci_resources *res, sp_error *err)
{
    memset(res, 0, sizeof(*res));
    res->mem_limit = res->mem_swap = res->mem_reservation = -1;
    if (!r)
        return 0;
    static const char *const known[] = {"memory", "cpu", "pids", "blockIO",
                                        "devices", NULL};
    const char *k;
    json_t *v;
    if (!json_is_object(r))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL, "resources: not an object");
    json_object_foreach((json_t *)r, k, v) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], k))
            i++;
        if (!known[i] && !json_is_null(v) &&
            !(json_is_object(v) && json_object_size(v) == 0) &&
            !(json_is_array(v) && json_array_size(v) == 0))
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.resources.%s is not supported", k);
    }
    const json_t *m = json_object_get(r, "memory");
    json_object_foreach((json_t *)m, k, v) {
        if (strcmp(k, "limit") == 0)
            res->mem_limit = json_integer_value(v);
        else if (strcmp(k, "swap") == 0)
            res->mem_swap = json_integer_value(v);
        else if (strcmp(k, "reservation") == 0)
            res->mem_reservation = json_integer_value(v);
        else if (strcmp(k, "disableOOMKiller") == 0 && !json_is_true(v))
            continue;
        else if (strcmp(k, "swappiness") == 0 || strcmp(k, "kernel") == 0 ||
                 strcmp(k, "kernelTCP") == 0 || strcmp(k, "useHierarchy") == 0)
            continue; /* v1 knobs the kernel no longer has or that are moot */
        else
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.resources.memory.%s is not supported", k);
    }
    const json_t *c = json_object_get(r, "cpu");
    json_object_foreach((json_t *)c, k, v) {
        if (strcmp(k, "shares") == 0)
            res->cpu_shares = (uint64_t)json_integer_value(v);
        else if (strcmp(k, "quota") == 0)
            res->cpu_quota = json_integer_value(v);
        else if (strcmp(k, "period") == 0)
            res->cpu_period = (uint64_t)json_integer_value(v);
        else if (strcmp(k, "cpus") == 0)
            res->cpuset_cpus = json_string_value(v);
        else if (strcmp(k, "mems") == 0)
            res->cpuset_mems = json_string_value(v);
        else
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.resources.cpu.%s is not supported", k);
    }
    const json_t *p = json_object_get(r, "pids");
    if (p)
        res->pids_limit = json_integer_value(json_object_get(p, "limit"));
    const json_t *b = json_object_get(r, "blockIO");
    json_object_foreach((json_t *)b, k, v) {
        if (strcmp(k, "weight") == 0)
            res->blkio_weight = (uint64_t)json_integer_value(v);
        else
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.resources.blockIO.%s is not supported", k);
    }
    res->devices = json_object_get(r, "devices");
    return 0;
}

static bool is_v2(void)
{
    return access(CG_ROOT "/cgroup.controllers", F_OK) == 0;
}

static const char *const v1_ctrls[] = {"memory", "pids",  "cpu",   "cpuacct",
                                       "freezer", "devices", "blkio", "cpuset",
                                       NULL};

static const char *dir_of(const struct oci_cg *cg, const char *ctrl)
{
    if (cg->v2)
        return cg->n ? cg->dir[0] : NULL;
    for (size_t i = 0; i < cg->n; i++)
        if (strcmp(cg->ctrl[i], ctrl) == 0)
            return cg->dir[i];
    return NULL;
}

static int devices_v1(const char *dir, const json_t *devs, sp_error *err)
{
    size_t i;
    json_t *d;
    json_array_foreach(devs, i, d) {
        const char *type = json_string_value(json_object_get(d, "type"));
        const char *acc = json_string_value(json_object_get(d, "access"));
        json_t *maj = json_object_get(d, "major"), *min = json_object_get(d, "minor");
        char rule[96], mj[24] = "*", mn[24] = "*";
        if (json_is_integer(maj))
            snprintf(mj, sizeof(mj), "%lld", (long long)json_integer_value(maj));
        if (json_is_integer(min))
            snprintf(mn, sizeof(mn), "%lld", (long long)json_integer_value(min));
        if (!type || strcmp(type, "a") == 0)
            snprintf(rule, sizeof(rule), "a");
        else
            snprintf(rule, sizeof(rule), "%c %s:%s %s", type[0], mj, mn,
                     acc ? acc : "rwm");
        int r = wfile(dir, json_is_true(json_object_get(d, "allow"))
                               ? "devices.allow"
                               : "devices.deny",
                      rule);
        if (r < 0)
            return sp_error_setk(err, SP_ERR_SYSTEM, -r,
                                 "linux.resources.devices[%zu]: %s", i, rule);
    }
    return 0;
}

int oci_cg_update(struct oci_cg *cg, const struct oci_resources *res, sp_error *err)
{
    char v[64];
    int r = 0;
    const char *d;
#define W(ctrl, file, ...)                                                    \
    do {                                                                      \
        snprintf(v, sizeof(v), __VA_ARGS__);                                  \
        if (!(d = dir_of(cg, ctrl)))                                          \
            return sp_error_setk(err, SP_ERR_SYSTEM, EOPNOTSUPP,              \
                                 "cgroup controller %s is not available",     \
                                 ctrl);                                       \
        if ((r = wfile(d, file, v)) < 0)                                      \
            return sp_error_setk(err, SP_ERR_SYSTEM, -r, "cgroup %s/%s = %s", \
                                 d, file, v);                                 \
    } while (0)
    if (cg->v2) {
        if (res->mem_limit > 0)
            W("", "memory.max", "%lld", (long long)res->mem_limit);
        if (res->mem_reservation > 0)
            W("", "memory.low", "%lld", (long long)res->mem_reservation);
        if (res->mem_swap > 0 && res->mem_limit > 0 && exists(cg->dir[0], "memory.swap.max"))
            W("", "memory.swap.max", "%lld",
              (long long)(res->mem_swap > res->mem_limit ? res->mem_swap - res->mem_limit : 0));
        else if (res->mem_limit > 0 && res->mem_swap < 0 && exists(cg->dir[0], "memory.swap.max"))
            W("", "memory.swap.max", "0"); /* runc: the limit includes swap */
        if (res->pids_limit > 0)
            W("", "pids.max", "%lld", (long long)res->pids_limit);
        if (res->cpu_shares)
            W("", "cpu.weight", "%llu",
              (unsigned long long)(1 + ((res->cpu_shares < 2 ? 0 : res->cpu_shares - 2) * 9999) / 262142));
        if (res->cpu_quota || res->cpu_period) {
            if (res->cpu_quota > 0)
                W("", "cpu.max", "%lld %llu", (long long)res->cpu_quota,
                  (unsigned long long)(res->cpu_period ? res->cpu_period : 100000));
            else
                W("", "cpu.max", "max %llu",
                  (unsigned long long)(res->cpu_period ? res->cpu_period : 100000));
        }
        if (res->blkio_weight && exists(cg->dir[0], "io.weight"))
            W("", "io.weight", "default %llu", (unsigned long long)res->blkio_weight);
        if (res->cpuset_cpus && *res->cpuset_cpus)
            W("", "cpuset.cpus", "%s", res->cpuset_cpus);
        if (res->cpuset_mems && *res->cpuset_mems)
            W("", "cpuset.mems", "%s", res->cpuset_mems);
        if (json_array_size(res->devices) > 0)
            (void)0; /* v2: device access is bounded by the user namespace
                        and sandpit's /dev, not a BPF device program */
        return 0;
    }
    if (res->mem_limit > 0) {
        W("memory", "memory.limit_in_bytes", "%lld", (long long)res->mem_limit);
        d = dir_of(cg, "memory");
        if (exists(d, "memory.memsw.limit_in_bytes"))
            W("memory", "memory.memsw.limit_in_bytes", "%lld",
              (long long)(res->mem_swap > 0 ? res->mem_swap : res->mem_limit));
    }
    if (res->mem_reservation > 0)
        W("memory", "memory.soft_limit_in_bytes", "%lld",
          (long long)res->mem_reservation);
    if (res->pids_limit > 0)
        W("pids", "pids.max", "%lld", (long long)res->pids_limit);
    if (res->cpu_shares)
        W("cpu", "cpu.shares", "%llu", (unsigned long long)res->cpu_shares);
    if (res->cpu_period)
        W("cpu", "cpu.cfs_period_us", "%llu", (unsigned long long)res->cpu_period);
    if (res->cpu_quota)
        W("cpu", "cpu.cfs_quota_us", "%lld", (long long)res->cpu_quota);
    if (res->blkio_weight && (d = dir_of(cg, "blkio")) && exists(d, "blkio.weight"))
        W("blkio", "blkio.weight", "%llu", (unsigned long long)res->blkio_weight);
    if (res->cpuset_cpus && *res->cpuset_cpus)
        W("cpuset", "cpuset.cpus", "%s", res->cpuset_cpus);
    if (res->cpuset_mems && *res->cpuset_mems)
        W("cpuset", "cpuset.mems", "%s", res->cpuset_mems);
    if (json_array_size(res->devices) > 0 && (d = dir_of(cg, "devices")))
        return devices_v1(d, res->devices, err);
#undef W
    return 0;
}

/* cpuset needs cpus and mems before a process may join: copy the parent's
 * down the new path. */
static void cpuset_init(const char *root, const char *path)
{
    char cur[SP_MAX_PATH], val[4096];
    snprintf(cur, sizeof(cur), "%s", root);
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        if (e == p)
            break;
        char parent[SP_MAX_PATH];
        snprintf(parent, sizeof(parent), "%s", cur);
        size_t l = strlen(cur);
        snprintf(cur + l, sizeof(cur) - l, "/%.*s", (int)(e - p), p);
        for (int k = 0; k < 2; k++) {
            const char *f = k ? "cpuset.mems" : "cpuset.cpus";
            char mine[64];
            if (rfile(cur, f, mine, sizeof(mine)) > 1)
                continue;
            if (rfile(parent, f, val, sizeof(val)) > 0)
                wfile(cur, f, val);
        }
        p = e;
    }
}

int oci_cg_create(const char *path, const struct oci_resources *res,
                  struct oci_cg *cg, sp_error *err)
{
    memset(cg, 0, sizeof(*cg));
    for (size_t i = 0; i < OCI_CG_MAX; i++)
        cg->procs[i] = -1;
    cg->v2 = is_v2();
    int r;
    if (cg->v2) {
        /* controllers down the path, as far as the tree allows */
        char cur[SP_MAX_PATH] = CG_ROOT;
        const char *p = path;
        while (*p) {
            while (*p == '/')
                p++;
            const char *e = strchrnul(p, '/');
            if (e == p)
                break;
            char avail[512];
            if (rfile(cur, "cgroup.controllers", avail, sizeof(avail)) > 0) {
                char want[600] = "";
                char *save = NULL;
                for (char *t = strtok_r(avail, " \n", &save); t;
                     t = strtok_r(NULL, " \n", &save))
                    if (!strcmp(t, "memory") || !strcmp(t, "pids") ||
                        !strcmp(t, "cpu") || !strcmp(t, "io") ||
                        !strcmp(t, "cpuset")) {
                        size_t l = strlen(want);
                        snprintf(want + l, sizeof(want) - l, "%s+%s",
                                 l ? " " : "", t);
                    }
                if (*want)
                    wfile(cur, "cgroup.subtree_control", want);
            }
            size_t l = strlen(cur);
            snprintf(cur + l, sizeof(cur) - l, "/%.*s", (int)(e - p), p);
            if (mkdir(cur, 0755) < 0 && errno != EEXIST)
                return sp_error_setk(err, SP_ERR_SYSTEM, errno, "cgroup %s", cur);
            p = e;
        }
        cg->dir[0] = strdup(cur);
        cg->ctrl[0][0] = '\0';
        cg->n = 1;
    } else {
        for (size_t i = 0; v1_ctrls[i]; i++) {
            char root[SP_MAX_PATH];
            snprintf(root, sizeof(root), CG_ROOT "/%s", v1_ctrls[i]);
            /* cpuset only when asked: a new cpuset needs cpus and mems
             * copied down its path first */
            if (strcmp(v1_ctrls[i], "cpuset") == 0 &&
                !(res->cpuset_cpus && *res->cpuset_cpus) &&
                !(res->cpuset_mems && *res->cpuset_mems))
                continue;
            struct statfs sf;
            if (statfs(root, &sf) < 0 || sf.f_type != 0x27e0eb /* CGROUP */)
                continue;
            char *d = NULL;
            if (asprintf(&d, "%s%s", root, path) < 0)
                return sp_error_set(err, ENOMEM, "cgroup");
            if ((r = mkdir_p(d)) < 0) {
                free(d);
                oci_cg_destroy(cg);
                return sp_error_setk(err, SP_ERR_SYSTEM, -r, "cgroup %s%s",
                                     root, path);
            }
            if (strcmp(v1_ctrls[i], "cpuset") == 0)
                cpuset_init(root, path);
            cg->dir[cg->n] = d;
            snprintf(cg->ctrl[cg->n], sizeof(cg->ctrl[0]), "%s", v1_ctrls[i]);
            cg->n++;
        }
        if (!cg->n)
            return sp_error_setk(err, SP_ERR_SYSTEM, ENOENT,
                                 "no cgroup hierarchy under " CG_ROOT);
    }
    if ((r = oci_cg_update(cg, res, err)) < 0 ||
        (r = oci_cg_open_procs(cg, err)) < 0) {
        oci_cg_destroy(cg);
        return r;
    }
    return 0;
}

int oci_cg_open_procs(struct oci_cg *cg, sp_error *err)
{
    for (size_t i = 0; i < cg->n; i++) {
        char p[SP_MAX_PATH];
        snprintf(p, sizeof(p), "%s/cgroup.procs", cg->dir[i]);
        cg->procs[i] = open(p, O_WRONLY | O_CLOEXEC);
        if (cg->procs[i] < 0)
            return sp_error_setk(err, SP_ERR_SYSTEM, errno, "%s", p);
    }
    return 0;
}

json_t *oci_cg_to_json(const struct oci_cg *cg)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < cg->n; i++)
        json_array_append_new(a, json_string(cg->dir[i]));
    return a;
}

int oci_cg_from_json(const json_t *dirs, struct oci_cg *cg)
{
    memset(cg, 0, sizeof(*cg));
    for (size_t i = 0; i < OCI_CG_MAX; i++)
        cg->procs[i] = -1;
    cg->v2 = is_v2();
    for (size_t i = 0; i < json_array_size(dirs) && cg->n < OCI_CG_MAX; i++) {
        const char *d = json_string_value(json_array_get(dirs, i));
        if (!d || strncmp(d, CG_ROOT "/", sizeof(CG_ROOT)) != 0 || strstr(d, ".."))
            continue;
        cg->dir[cg->n] = strdup(d);
        const char *c = d + sizeof(CG_ROOT);
        const char *e = strchrnul(c, '/');
        snprintf(cg->ctrl[cg->n], sizeof(cg->ctrl[0]), "%.*s", (int)(e - c), c);
        if (cg->v2)
            cg->ctrl[cg->n][0] = '\0';
        cg->n++;
    }
    return 0;
}

int oci_cg_freeze(struct oci_cg *cg, bool freeze, sp_error *err)
{
    const char *d = dir_of(cg, cg->v2 ? "" : "freezer");
    if (!d)
        return sp_error_setk(err, SP_ERR_SYSTEM, EOPNOTSUPP,
                             "no freezer cgroup for this container");
    int r = cg->v2 ? wfile(d, "cgroup.freeze", freeze ? "1" : "0")
                   : wfile(d, "freezer.state", freeze ? "FROZEN" : "THAWED");
    if (r < 0)
        return sp_error_setk(err, SP_ERR_SYSTEM, -r, "freezer of %s", d);
    for (int i = 0; i < 2000 && freeze; i++) {
        if (oci_cg_frozen(cg))
            return 0;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

bool oci_cg_frozen(const struct oci_cg *cg)
{
    char buf[256];
    const char *d = dir_of(cg, cg->v2 ? "" : "freezer");
    if (!d)
        return false;
    if (cg->v2)
        return rfile(d, "cgroup.events", buf, sizeof(buf)) > 0 &&
               strstr(buf, "frozen 1");
    return rfile(d, "freezer.state", buf, sizeof(buf)) > 0 &&
           strncmp(buf, "FROZEN", 6) == 0;
}

static const char *procs_dir(const struct oci_cg *cg)
{
    const char *d = dir_of(cg, cg->v2 ? "" : "pids");
    if (!d)
        d = dir_of(cg, "memory");
    if (!d && cg->n)
        d = cg->dir[0];
    return d;
}

int oci_cg_pids(const struct oci_cg *cg, json_t *out)
{
    const char *d = procs_dir(cg);
    if (!d)
        return -ENOENT;
    char p[SP_MAX_PATH];
    snprintf(p, sizeof(p), "%s/cgroup.procs", d);
    FILE *f = fopen(p, "re");
    if (!f)
        return -errno;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        json_array_append_new(out, json_integer(pid));
    fclose(f);
    return 0;
}

void oci_cg_kill(struct oci_cg *cg, int sig)
{
    const char *d = procs_dir(cg);
    if (!d)
        return;
    if (cg->v2 && sig == SIGKILL && wfile(d, "cgroup.kill", "1") == 0)
        return;
    json_t *a = json_array();
    if (a && oci_cg_pids(cg, a) == 0)
        for (size_t i = 0; i < json_array_size(a); i++)
            kill((pid_t)json_integer_value(json_array_get(a, i)), sig);
    json_decref(a);
}

static long long rnum(const char *dir, const char *file)
{
    char buf[64];
    if (!dir || rfile(dir, file, buf, sizeof(buf)) <= 0)
        return -1;
    return strtoll(buf, NULL, 10);
}

json_t *oci_cg_stats(const struct oci_cg *cg)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    const char *m = dir_of(cg, cg->v2 ? "" : "memory");
    const char *p = dir_of(cg, cg->v2 ? "" : "pids");
    long long usage = rnum(m, cg->v2 ? "memory.current" : "memory.usage_in_bytes");
    long long limit = rnum(m, cg->v2 ? "memory.max" : "memory.limit_in_bytes");
    long long maxu = rnum(m, cg->v2 ? "memory.peak" : "memory.max_usage_in_bytes");
    json_t *mem = json_object();
    json_t *u = json_object();
    json_object_set_new(u, "usage", json_integer(usage < 0 ? 0 : usage));
    json_object_set_new(u, "max", json_integer(maxu < 0 ? 0 : maxu));
    json_object_set_new(u, "limit", json_integer(limit < 0 ? 0 : limit));
    json_object_set_new(mem, "usage", u);
    json_object_set_new(o, "memory", mem);
    json_t *pids = json_object();
    long long cur = rnum(p, "pids.current");
    json_object_set_new(pids, "current", json_integer(cur < 0 ? 0 : cur));
    json_object_set_new(o, "pids", pids);
    json_t *cpu = json_object(), *cu = json_object();
    long long total = -1;
    if (cg->v2) {
        char buf[1024];
        if (m && rfile(m, "cpu.stat", buf, sizeof(buf)) > 0) {
            char *s = strstr(buf, "usage_usec ");
            if (s)
                total = strtoll(s + 11, NULL, 10) * 1000;
        }
    } else {
        total = rnum(dir_of(cg, "cpuacct"), "cpuacct.usage");
    }
    json_object_set_new(cu, "total", json_integer(total < 0 ? 0 : total));
    json_object_set_new(cpu, "usage", cu);
    json_object_set_new(o, "cpu", cpu);
    return o;
}

void oci_cg_destroy(struct oci_cg *cg)
{
    for (size_t i = 0; i < cg->n; i++) {
        if (!cg->dir[i])
            continue;
        for (int t = 0; t < 200; t++) {
            if (rmdir(cg->dir[i]) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY)
                break;
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    oci_cg_free(cg);
}

void oci_cg_free(struct oci_cg *cg)
{
    for (size_t i = 0; i < cg->n; i++) {
        free(cg->dir[i]);
        if (cg->procs[i] >= 0)
            close(cg->procs[i]);
    }
    memset(cg, 0, sizeof(*cg));
    for (size_t i = 0; i < OCI_CG_MAX; i++)
        cg->procs[i] = -1;
}

void oci_cg_leave(struct oci_cg *cg)
{
    /* back to each hierarchy's root, so the directories can go */
    char root[SP_MAX_PATH], buf[24];
    snprintf(buf, sizeof(buf), "%d", (int)getpid());
    for (size_t i = 0; i < cg->n; i++) {
        if (cg->v2)
            snprintf(root, sizeof(root), CG_ROOT);
        else
            snprintf(root, sizeof(root), CG_ROOT "/%s", cg->ctrl[i]);
        wfile(root, "cgroup.procs", buf);
    }
}
