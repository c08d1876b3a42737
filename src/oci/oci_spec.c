/* oci_spec.c — config.json (runtime-spec 1.x) into an sp_oci_launch and a
 * mount plan. Every field is mapped, or refused by name. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bounds.h"
#include "oci.h"
#include "util.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#define MOUNT_ATTR_NOATIME 0x00000010
#define MOUNT_ATTR_STRICTATIME 0x00000020
#define MOUNT_ATTR_NODIRATIME 0x00000080
#endif

static int refuse(sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int refuse(sp_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return sp_error_setk(err, SP_ERR_USAGE, EINVAL, "%s", buf);
}

/* Keys not in `known` are refused by name. */
static int only_keys(const json_t *o, const char *where,
                     const char *const *known, sp_error *err)
{
    if (!o)
        return 0;
    if (!json_is_object(o))
        return refuse(err, "%s: not an object", where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], k))
            i++;
        if (!known[i] && !json_is_null(v))
            return refuse(err, "%s.%s is not supported by sandpit-runc", where,
                          k);
    }
    return 0;
}

/* A NULL-ended array of the strings of a JSON array (borrowed). */
static int str_array(const json_t *a, const char *where, size_t max,
                     char ***ret, sp_error *err)
{
    *ret = NULL;
    if (a && !json_is_array(a))
        return refuse(err, "%s: not an array", where);
    size_t n = json_array_size(a);
    if (n > max)
        return refuse(err, "%s: more than %zu entries", where, max);
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return sp_error_set(err, ENOMEM, "%s", where);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) {
            free(v);
            return refuse(err, "%s[%zu]: not a string", where, i);
        }
        v[i] = (char *)s;
    }
    *ret = v;
    return 0;
}

static const char *const cap_names[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

static int caps_parse(const json_t *a, const char *where, uint64_t *ret,
                      sp_error *err)
{
    *ret = 0;
    if (!a)
        return 0;
    if (!json_is_array(a))
        return refuse(err, "%s: not an array", where);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        size_t c;
        for (c = 0; s && c < SP_ARRAY_SIZE(cap_names); c++)
            if (strcasecmp(s, cap_names[c]) == 0 ||
                strcasecmp(s, cap_names[c] + 4) == 0)
                break;
        if (!s || c == SP_ARRAY_SIZE(cap_names))
            return refuse(err, "%s[%zu]: unknown capability %s%s%s", where, i,
                          s ? "\"" : "", s ? s : "(not a string)",
                          s ? "\"" : "");
        *ret |= 1ull << c;
    }
    return 0;
}

static const struct {
    const char *name;
    int res;
} rlimit_names[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

static bool abs_path_ok(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) >= SP_MAX_PATH)
        return false;
    for (const char *c = p; *c; c++)
        if (c[0] == '/' && c[1] == '.' && c[2] == '.' &&
            (c[3] == '/' || c[3] == '\0'))
            return false;
    return true;
}

int oci_process_parse(const json_t *proc, const char *where, unsigned layers_off,
                      struct sp_oci_proc *pr, char ***argv, char ***envp,
                      sp_error *err)
{
    static const char *const known[] = {
        "terminal", "consoleSize", "user", "args", "env", "cwd",
        "capabilities", "rlimits", "noNewPrivileges", "oomScoreAdj",
        "apparmorProfile", "selinuxLabel", NULL};
    char w[96];
    int r;
    memset(pr, 0, sizeof(*pr));
    pr->console_fd = pr->fifo_fd = -1;
    pr->umask = -1;
    *argv = *envp = NULL;
    if (!json_is_object(proc))
        return refuse(err, "%s: missing or not an object", where);
    if ((r = only_keys(proc, where, known, err)) < 0)
        return r;
    const char *lsm = json_string_value(json_object_get(proc, "apparmorProfile"));
    if (lsm && *lsm)
        return refuse(err, "%s.apparmorProfile: AppArmor profiles are not "
                      "applied by sandpit-runc (its own layers are)", where);
    lsm = json_string_value(json_object_get(proc, "selinuxLabel"));
    if (lsm && *lsm)
        return refuse(err, "%s.selinuxLabel: SELinux labels are not applied "
                      "by sandpit-runc", where);
    pr->terminal = json_is_true(json_object_get(proc, "terminal"));
    const json_t *cs = json_object_get(proc, "consoleSize");
    if (cs) {
        json_int_t h = json_integer_value(json_object_get(cs, "height"));
        json_int_t wd = json_integer_value(json_object_get(cs, "width"));
        if (h < 0 || h > 65535 || wd < 0 || wd > 65535)
            return refuse(err, "%s.consoleSize: height and width 0..65535", where);
        pr->rows = (unsigned short)h;
        pr->cols = (unsigned short)wd;
    }
    snprintf(w, sizeof(w), "%s.args", where);
    if ((r = str_array(json_object_get(proc, "args"), w, SP_MAX_ARGS, argv,
                       err)) < 0)
        return r;
    if (!*argv || !(*argv)[0])
        return refuse(err, "%s.args: no command given", where);
    snprintf(w, sizeof(w), "%s.env", where);
    if ((r = str_array(json_object_get(proc, "env"), w, SP_MAX_ENV, envp,
                       err)) < 0)
        return r;
    if (!*envp && !(*envp = calloc(1, sizeof(char *))))
        return sp_error_set(err, ENOMEM, "env");
    for (size_t i = 0; (*envp)[i]; i++)
        if (!strchr((*envp)[i], '='))
            return refuse(err, "%s.env[%zu]: not KEY=VALUE", where, i);
    pr->argv = *argv;
    pr->envp = *envp;
    pr->cwd = json_string_value(json_object_get(proc, "cwd"));
    if (!pr->cwd)
        pr->cwd = "/";
    if (!abs_path_ok(pr->cwd))
        return refuse(err, "%s.cwd: not an absolute path", where);

    const json_t *u = json_object_get(proc, "user");
    static const char *const ukeys[] = {"uid", "gid", "umask",
                                        "additionalGids", NULL};
    snprintf(w, sizeof(w), "%s.user", where);
    if ((r = only_keys(u, w, ukeys, err)) < 0)
        return r;
    json_t *x;
    if ((x = json_object_get(u, "uid")) && (!json_is_integer(x) ||
                                            json_integer_value(x) < 0 ||
                                            json_integer_value(x) > UINT32_MAX - 1))
        return refuse(err, "%s.uid: not a uid", w);
    pr->uid = (uint32_t)json_integer_value(x);
    if ((x = json_object_get(u, "gid")) && (!json_is_integer(x) ||
                                            json_integer_value(x) < 0 ||
                                            json_integer_value(x) > UINT32_MAX - 1))
        return refuse(err, "%s.gid: not a gid", w);
    pr->gid = (uint32_t)json_integer_value(x);
    if ((x = json_object_get(u, "umask"))) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) > 0777)
            return refuse(err, "%s.umask: not a mode", w);
        pr->umask = (int)json_integer_value(x);
    }
    x = json_object_get(u, "additionalGids");
    if (json_array_size(x) > SP_OCI_MAX_GIDS)
        return refuse(err, "%s.additionalGids: more than %d", w,
                      SP_OCI_MAX_GIDS);
    for (size_t i = 0; i < json_array_size(x); i++) {
        json_t *g = json_array_get(x, i);
        if (!json_is_integer(g) || json_integer_value(g) < 0 ||
            json_integer_value(g) > UINT32_MAX - 1)
            return refuse(err, "%s.additionalGids[%zu]: not a gid", w, i);
        pr->gids[pr->n_gids++] = (uint32_t)json_integer_value(g);
    }

    const json_t *caps = json_object_get(proc, "capabilities");
    static const char *const ckeys[] = {"bounding", "effective", "permitted",
                                        "inheritable", "ambient", NULL};
    snprintf(w, sizeof(w), "%s.capabilities", where);
    if ((r = only_keys(caps, w, ckeys, err)) < 0)
        return r;
    uint64_t *sets[] = {&pr->cap_bounding, &pr->cap_effective,
                        &pr->cap_permitted, &pr->cap_inheritable,
                        &pr->cap_ambient};
    for (size_t i = 0; i < 5; i++) {
        char cw[128];
        snprintf(cw, sizeof(cw), "%s.%s", w, ckeys[i]);
        if ((r = caps_parse(json_object_get(caps, ckeys[i]), cw, sets[i],
                            err)) < 0)
            return r;
    }
    pr->cap_effective &= pr->cap_permitted;

    const json_t *rl = json_object_get(proc, "rlimits");
    if (json_array_size(rl) > SP_OCI_MAX_RLIMITS)
        return refuse(err, "%s.rlimits: more than %d", where, SP_OCI_MAX_RLIMITS);
    for (size_t i = 0; i < json_array_size(rl); i++) {
        const json_t *e = json_array_get(rl, i);
        const char *t = json_string_value(json_object_get(e, "type"));
        size_t k;
        for (k = 0; t && k < SP_ARRAY_SIZE(rlimit_names); k++)
            if (strcmp(t, rlimit_names[k].name) == 0)
                break;
        if (!t || k == SP_ARRAY_SIZE(rlimit_names))
            return refuse(err, "%s.rlimits[%zu].type: unknown", where, i);
        json_t *soft = json_object_get(e, "soft"), *hard = json_object_get(e, "hard");
        if (!json_is_integer(soft) || !json_is_integer(hard))
            return refuse(err, "%s.rlimits[%zu]: soft and hard must be numbers",
                          where, i);
        pr->rlimits[pr->n_rlimits++] = (struct sp_oci_rlimit){
            rlimit_names[k].res, (uint64_t)json_integer_value(soft),
            (uint64_t)json_integer_value(hard)};
    }
    pr->no_new_privs = json_is_true(json_object_get(proc, "noNewPrivileges")) ||
                       !(layers_off & OCI_LAYER_NNP);
    pr->seccomp_default = !(layers_off & OCI_LAYER_SECCOMP);
    pr->landlock = !(layers_off & OCI_LAYER_LANDLOCK);
    return 0;
}

/* ---- mounts --------------------------------------------------------------- */

static struct sp_mount_op *plan_push(struct sp_mount_plan *p,
                                     enum sp_op_kind kind, const char *src,
                                     const char *dst)
{
    struct sp_mount_op *ops = realloc(p->ops, (p->n + 1) * sizeof(*ops));
    if (!ops)
        return NULL;
    p->ops = ops;
    struct sp_mount_op *op = &ops[p->n];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->src = src ? strdup(src) : NULL;
    op->dst = strdup(dst);
    if ((src && !op->src) || !op->dst) {
        free((char *)op->src);
        free((char *)op->dst);
        return NULL;
    }
    p->n++;
    return op;
}

static int push_fsopt(struct sp_mount_op *op, const char *key, const char *val)
{
    size_t n = 0;
    while (op->fsopts && op->fsopts[n])
        n += 2;
    char **v = realloc(op->fsopts, (n + 3) * sizeof(char *));
    if (!v)
        return -ENOMEM;
    op->fsopts = v;
    v[n] = strdup(key);
    v[n + 1] = val ? strdup(val) : NULL;
    v[n + 2] = NULL;
    if (!v[n] || (val && !v[n + 1])) {
        free(v[n]);
        free(v[n + 1]);
        v[n] = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Mount options: the ones that are mount attributes set attrs; the
 * propagation ones are moot (every mount is a slave of nothing outside);
 * the rest go to the filesystem as its own options. */
static int mount_opts(const json_t *opts, const char *where,
                      struct sp_mount_op *op, bool fs, bool *ret_bind,
                      bool *ret_rbind, sp_error *err)
{
    static const struct {
        const char *name;
        unsigned attr;
    } attrs[] = {{"ro", MOUNT_ATTR_RDONLY},       {"nosuid", MOUNT_ATTR_NOSUID},
                 {"nodev", MOUNT_ATTR_NODEV},     {"noexec", MOUNT_ATTR_NOEXEC},
                 {"noatime", MOUNT_ATTR_NOATIME}, {"strictatime", MOUNT_ATTR_STRICTATIME},
                 {"nodiratime", MOUNT_ATTR_NODIRATIME}};
    static const char *const ignored[] = {
        "rw", "suid", "dev", "exec", "relatime", "atime", "diratime",
        "private", "rprivate", "slave", "rslave", "unbindable", "runbindable",
        "defaults", "async", NULL};
    size_t i;
    json_t *v;
    if (opts && !json_is_array(opts))
        return refuse(err, "%s.options: not an array", where);
    json_array_foreach(opts, i, v) {
        const char *o = json_string_value(v);
        if (!o)
            return refuse(err, "%s.options[%zu]: not a string", where, i);
        if (strcmp(o, "bind") == 0) {
            *ret_bind = true;
            continue;
        }
        if (strcmp(o, "rbind") == 0) {
            *ret_bind = *ret_rbind = true;
            continue;
        }
        if (strcmp(o, "shared") == 0 || strcmp(o, "rshared") == 0)
            return refuse(err, "%s.options: \"%s\" propagation back to the "
                          "host is not supported", where, o);
        size_t k;
        for (k = 0; k < SP_ARRAY_SIZE(attrs); k++)
            if (strcmp(o, attrs[k].name) == 0)
                break;
        if (k < SP_ARRAY_SIZE(attrs)) {
            op->attrs |= attrs[k].attr;
            if (attrs[k].attr == MOUNT_ATTR_RDONLY)
                op->ro = true;
            continue;
        }
        for (k = 0; ignored[k] && strcmp(o, ignored[k]); k++)
            ;
        if (ignored[k])
            continue;
        if (!fs)
            return refuse(err, "%s.options: \"%s\" is not supported for a "
                          "bind mount", where, o);
        char key[64];
        const char *eq = strchr(o, '=');
        size_t kl = eq ? (size_t)(eq - o) : strlen(o);
        if (kl == 0 || kl >= sizeof(key))
            return refuse(err, "%s.options[%zu]: bad option", where, i);
        memcpy(key, o, kl);
        key[kl] = '\0';
        if (push_fsopt(op, key, eq ? eq + 1 : NULL) < 0)
            return sp_error_set(err, ENOMEM, "mount options");
    }
    return 0;
}

/* runc's default masks, applied even when a spec lists fewer. */
static const char *const sandpit_masked[] = {
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap", NULL};
static const char *const sandpit_readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    NULL};

static void note(struct oci_spec *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct oci_spec *s, const char *fmt, ...)
{
    size_t n = strlen(s->notes);
    if (n + 3 >= sizeof(s->notes))
        return;
    if (n)
        s->notes[n++] = ';', s->notes[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->notes + n, sizeof(s->notes) - n, fmt, ap);
    va_end(ap);
}

static int mounts_parse(struct oci_spec *s, sp_error *err)
{
    const json_t *mounts = json_object_get(s->json, "mounts");
    struct sp_mount_plan *p = &s->plan;
    bool have_dev = false;
    int r;
    if (mounts && !json_is_array(mounts))
        return refuse(err, "mounts: not an array");
    if (json_array_size(mounts) > SP_OCI_MAX_MOUNTS)
        return refuse(err, "mounts: more than %d", SP_OCI_MAX_MOUNTS);
    size_t i;
    json_t *m;
    json_array_foreach(mounts, i, m) {
        char w[48];
        snprintf(w, sizeof(w), "mounts[%zu]", i);
        static const char *const known[] = {"destination", "type", "source",
                                            "options", NULL};
        if ((r = only_keys(m, w, known, err)) < 0)
            return r;
        if (json_object_get(m, "uidMappings") || json_object_get(m, "gidMappings"))
            return refuse(err, "%s: idmapped mounts are not supported", w);
        const char *dst = json_string_value(json_object_get(m, "destination"));
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        const json_t *opts = json_object_get(m, "options");
        if (!abs_path_ok(dst) || strcmp(dst, "/") == 0)
            return refuse(err, "%s.destination: not an absolute path below /", w);
        bool bind = type && strcmp(type, "bind") == 0, rbind = false;
        struct sp_mount_op tmp;
        memset(&tmp, 0, sizeof(tmp));
        bool fs = !bind;
        /* first pass for bind/rbind in the options */
        for (size_t k = 0; k < json_array_size(opts); k++) {
            const char *o = json_string_value(json_array_get(opts, k));
            if (o && (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0))
                fs = false;
        }
        if ((r = mount_opts(opts, w, &tmp, fs, &bind, &rbind, err)) < 0) {
            for (size_t k = 0; tmp.fsopts && tmp.fsopts[k]; k += 2) {
                free(tmp.fsopts[k]);
                free(tmp.fsopts[k + 1]);
            }
            free(tmp.fsopts);
            return r;
        }
        struct sp_mount_op *op = NULL;
        if (bind) {
            if (!src || !*src)
                return refuse(err, "%s.source: missing for a bind mount", w);
            char *abs = NULL;
            if (src[0] != '/' && asprintf(&abs, "%s/%s", s->bundle, src) < 0)
                return sp_error_set(err, ENOMEM, "mounts");
            struct stat st;
            if (stat(abs ? abs : src, &st) < 0) {
                int e = errno;
                free(abs);
                return sp_error_setk(err, SP_ERR_USAGE, e, "%s.source %s", w, src);
            }
            op = plan_push(p, SP_OP_BIND, abs ? abs : src, dst);
            free(abs);
            if (!op)
                return sp_error_set(err, ENOMEM, "mounts");
            op->is_dir = S_ISDIR(st.st_mode);
            op->norec = !rbind;
            op->attrs = tmp.attrs;
            op->ro = tmp.ro;
            continue;
        }
        if (!type)
            return refuse(err, "%s.type: missing", w);
        if (strcmp(type, "proc") == 0) {
            op = plan_push(p, SP_OP_PROC, NULL, dst);
        } else if (strcmp(type, "tmpfs") == 0 && strcmp(dst, "/dev") == 0) {
            op = plan_push(p, SP_OP_DEV, NULL, dst);
            if (op)
                op->keep_rw = true;
            have_dev = true;
        } else if (strcmp(type, "devpts") == 0 && have_dev &&
                   strcmp(dst, "/dev/pts") == 0) {
            note(s, "/dev/pts: sandpit's /dev has its own devpts instance");
            for (size_t k = 0; tmp.fsopts && tmp.fsopts[k]; k += 2) {
                free(tmp.fsopts[k]);
                free(tmp.fsopts[k + 1]);
            }
            free(tmp.fsopts);
            continue;
        } else if (strcmp(type, "tmpfs") == 0 || strcmp(type, "mqueue") == 0 ||
                   strcmp(type, "sysfs") == 0 || strcmp(type, "devpts") == 0 ||
                   strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0) {
            op = plan_push(p, SP_OP_FS,
                           strcmp(type, "cgroup") == 0 ? "cgroup2" : type, dst);
            if (op) {
                op->fsopts = tmp.fsopts;
                tmp.fsopts = NULL;
                op->attrs = tmp.attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
            }
        } else {
            return refuse(err, "%s.type: \"%s\" is not supported (bind, proc, "
                          "tmpfs, devpts, mqueue, sysfs, cgroup, cgroup2 are)",
                          w, type);
        }
        for (size_t k = 0; tmp.fsopts && tmp.fsopts[k]; k += 2) {
            free(tmp.fsopts[k]);
            free(tmp.fsopts[k + 1]);
        }
        free(tmp.fsopts);
        if (!op)
            return sp_error_set(err, ENOMEM, "mounts");
    }
    /* masked and read-only paths, the spec's and (unless the layer is off)
     * runc's defaults */
    const char *keys[] = {"maskedPaths", "readonlyPaths"};
    const char *const *dflt[] = {sandpit_masked, sandpit_readonly};
    const json_t *linux_ = json_object_get(s->json, "linux");
    for (int k = 0; k < 2; k++) {
        const json_t *a = json_object_get(linux_, keys[k]);
        if (a && !json_is_array(a))
            return refuse(err, "linux.%s: not an array", keys[k]);
        if (json_array_size(a) > SP_OCI_MAX_PATHS)
            return refuse(err, "linux.%s: more than %d", keys[k],
                          SP_OCI_MAX_PATHS);
        for (size_t j = 0; j < json_array_size(a); j++) {
            const char *pth = json_string_value(json_array_get(a, j));
            if (!abs_path_ok(pth))
                return refuse(err, "linux.%s[%zu]: not an absolute path",
                              keys[k], j);
            if (!plan_push(p, k ? SP_OP_RONLY : SP_OP_MASK, NULL, pth))
                return sp_error_set(err, ENOMEM, "paths");
        }
        if (s->layers_off & OCI_LAYER_MASK)
            continue;
        for (size_t j = 0; dflt[k][j]; j++)
            if (!plan_push(p, k ? SP_OP_RONLY : SP_OP_MASK, NULL, dflt[k][j]))
                return sp_error_set(err, ENOMEM, "paths");
    }
    return 0;
}

/* ---- namespaces and ids ---------------------------------------------------- */

static int idmaps_parse(const json_t *a, const char *where,
                        struct sp_idmap *out, size_t *n, sp_error *err)
{
    *n = 0;
    if (!json_is_array(a) || json_array_size(a) == 0)
        return refuse(err, "%s: a user namespace needs mappings", where);
    if (json_array_size(a) > SP_OCI_MAX_IDMAPS)
        return refuse(err, "%s: more than %d", where, SP_OCI_MAX_IDMAPS);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *m = json_array_get(a, i);
        json_t *c = json_object_get(m, "containerID"),
               *h = json_object_get(m, "hostID"), *s = json_object_get(m, "size");
        if (!json_is_integer(c) || !json_is_integer(h) || !json_is_integer(s) ||
            json_integer_value(c) < 0 || json_integer_value(h) < 0 ||
            json_integer_value(s) <= 0 ||
            json_integer_value(c) + json_integer_value(s) > UINT32_MAX ||
            json_integer_value(h) + json_integer_value(s) > UINT32_MAX)
            return refuse(err, "%s[%zu]: containerID, hostID and size must be "
                          "ids", where, i);
        if (json_integer_value(h) == 0)
            return refuse(err, "%s[%zu]: maps host id 0 into the container "
                          "(container root is never host root under sandpit)",
                          where, i);
        out[(*n)++] = (struct sp_idmap){(uint32_t)json_integer_value(c),
                                        (uint32_t)json_integer_value(h),
                                        (uint32_t)json_integer_value(s)};
    }
    return 0;
}

/* The default identity when the spec has no user namespace: container ids
 * 0..65535 are an unprivileged host range. One function, so the shared
 * helper of the identity work can replace it. */
static void default_idmap(struct oci_spec *s)
{
    s->L.uid_map[0] = (struct sp_idmap){0, SP_OCI_DEFAULT_ID_BASE,
                                        SP_OCI_DEFAULT_ID_COUNT};
    s->L.gid_map[0] = s->L.uid_map[0];
    s->L.n_uid_map = s->L.n_gid_map = 1;
}

static int namespaces_parse(struct oci_spec *s, const json_t *linux_,
                            sp_error *err)
{
    static const struct {
        const char *type;
        uint64_t flag;
        bool joinable;
    } kinds[] = {{"pid", CLONE_NEWPID, false},    {"network", CLONE_NEWNET, true},
                 {"mount", CLONE_NEWNS, false},   {"ipc", CLONE_NEWIPC, true},
                 {"uts", CLONE_NEWUTS, true},     {"user", CLONE_NEWUSER, false},
                 {"cgroup", CLONE_NEWCGROUP, false}};
    const json_t *ns = json_object_get(linux_, "namespaces");
    uint64_t seen = 0;
    for (size_t i = 0; i < json_array_size(ns); i++) {
        const json_t *e = json_array_get(ns, i);
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *path = json_string_value(json_object_get(e, "path"));
        size_t k;
        for (k = 0; t && k < SP_ARRAY_SIZE(kinds); k++)
            if (strcmp(t, kinds[k].type) == 0)
                break;
        if (!t || k == SP_ARRAY_SIZE(kinds))
            return refuse(err, "linux.namespaces[%zu].type: \"%s\" is not "
                          "supported", i, t ? t : "(missing)");
        if (seen & kinds[k].flag)
            return refuse(err, "linux.namespaces: \"%s\" twice", t);
        seen |= kinds[k].flag;
        if (path && *path) {
            if (!kinds[k].joinable)
                return refuse(err, "linux.namespaces[%zu]: joining a %s "
                              "namespace by path is not supported (network, "
                              "ipc and uts are)", i, t);
            if (s->L.n_join >= SP_ARRAY_SIZE(s->L.join_fds))
                return refuse(err, "linux.namespaces: too many paths");
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return sp_error_setk(err, SP_ERR_USAGE, errno,
                                     "linux.namespaces[%zu].path %s", i, path);
            s->L.join_types[s->L.n_join] = (int)kinds[k].flag;
            s->L.join_fds[s->L.n_join++] = fd;
            continue;
        }
        s->L.clone_ns |= kinds[k].flag;
    }
    if (!(seen & CLONE_NEWPID))
        return refuse(err, "linux.namespaces: the host's pid namespace is not "
                      "supported (sandpit gives each container its own)");
    if (!(seen & CLONE_NEWNS))
        return refuse(err, "linux.namespaces: a mount namespace is required");
    /* sandpit's layers: its own cgroup namespace, and a user namespace */
    s->L.clone_ns |= CLONE_NEWCGROUP;
    if (seen & CLONE_NEWUSER) {
        int r;
        if ((r = idmaps_parse(json_object_get(linux_, "uidMappings"),
                              "linux.uidMappings", s->L.uid_map,
                              &s->L.n_uid_map, err)) < 0 ||
            (r = idmaps_parse(json_object_get(linux_, "gidMappings"),
                              "linux.gidMappings", s->L.gid_map,
                              &s->L.n_gid_map, err)) < 0)
            return r;
    } else if (!(s->layers_off & OCI_LAYER_USERNS)) {
        s->L.clone_ns |= CLONE_NEWUSER;
        s->default_userns = true;
        default_idmap(s);
    } else {
        note(s, "user namespace off (%s): container root is host root",
             OCI_LAYERS_OFF_ANNOTATION);
    }
    return 0;
}

static int sysctl_parse(struct oci_spec *s, const json_t *sc, sp_error *err)
{
    if (!sc)
        return 0;
    if (!json_is_object(sc))
        return refuse(err, "linux.sysctl: not an object");
    if (json_object_size(sc) > SP_OCI_MAX_SYSCTL)
        return refuse(err, "linux.sysctl: more than %d", SP_OCI_MAX_SYSCTL);
    s->sysctl = calloc(json_object_size(sc) + 1, sizeof(char *));
    if (!s->sysctl)
        return sp_error_set(err, ENOMEM, "sysctl");
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)sc, k, v) {
        const char *val = json_string_value(v);
        bool ok = val && strlen(k) < 200 && !strchr(k, '/') && !strstr(k, "..") &&
                  !strchr(val, '\n');
        bool netns = strncmp(k, "net.", 4) == 0;
        bool ipcns = strncmp(k, "kernel.shm", 10) == 0 ||
                     strncmp(k, "kernel.msg", 10) == 0 ||
                     strcmp(k, "kernel.sem") == 0 ||
                     strncmp(k, "fs.mqueue.", 10) == 0;
        if (!ok)
            return refuse(err, "linux.sysctl.%s: bad key or value", k);
        if (!netns && !ipcns)
            return refuse(err, "linux.sysctl.%s: not a namespaced sysctl "
                          "(net.*, kernel.shm*, kernel.msg*, kernel.sem, "
                          "fs.mqueue.* are)", k);
        if (netns && !(s->L.clone_ns & CLONE_NEWNET) && s->L.n_join == 0)
            return refuse(err, "linux.sysctl.%s: the container shares the "
                          "host's network namespace", k);
        if (asprintf(&s->sysctl[n], "%s=%s", k, val) < 0)
            return sp_error_set(err, ENOMEM, "sysctl");
        n++;
    }
    s->L.sysctl = s->sysctl;
    return 0;
}

static int hooks_parse(struct oci_spec *s, const json_t *hooks, sp_error *err)
{
    static const char *const names[] = {"prestart", "createRuntime",
                                        "poststart", "poststop"};
    static const char *const known[] = {"prestart", "createRuntime",
                                        "poststart", "poststop", NULL};
    int r;
    if (!hooks)
        return 0;
    const json_t *cc = json_object_get(hooks, "createContainer");
    const json_t *sc = json_object_get(hooks, "startContainer");
    if (json_array_size(cc) || json_array_size(sc))
        return refuse(err, "hooks.%s: hooks inside the container's namespaces "
                      "are not supported", json_array_size(cc)
                                               ? "createContainer"
                                               : "startContainer");
    json_t *copy = json_copy((json_t *)hooks);
    if (copy) {
        json_object_del(copy, "createContainer");
        json_object_del(copy, "startContainer");
    }
    r = only_keys(copy, "hooks", known, err);
    json_decref(copy);
    if (r < 0)
        return r;
    for (int k = 0; k < OCI_HOOK_N; k++) {
        const json_t *a = json_object_get(hooks, names[k]);
        if (json_array_size(a) > SP_OCI_MAX_HOOKS)
            return refuse(err, "hooks.%s: more than %d", names[k],
                          SP_OCI_MAX_HOOKS);
        for (size_t i = 0; i < json_array_size(a); i++) {
            const json_t *h = json_array_get(a, i);
            struct oci_hook *hk = &s->hooks[k][s->n_hooks[k]++];
            char w[64];
            snprintf(w, sizeof(w), "hooks.%s[%zu]", names[k], i);
            hk->path = json_string_value(json_object_get(h, "path"));
            if (!abs_path_ok(hk->path))
                return refuse(err, "%s.path: not an absolute path", w);
            if ((r = str_array(json_object_get(h, "args"), w, SP_MAX_ARGS,
                               &hk->args, err)) < 0 ||
                (r = str_array(json_object_get(h, "env"), w, SP_MAX_ENV,
                               &hk->env, err)) < 0)
                return r;
            json_t *t = json_object_get(h, "timeout");
            hk->timeout = json_is_integer(t) && json_integer_value(t) > 0 &&
                                  json_integer_value(t) < SP_OCI_HOOK_TIMEOUT
                              ? (int)json_integer_value(t)
                              : SP_OCI_HOOK_TIMEOUT;
        }
    }
    return 0;
}

static unsigned layers_off_parse(const json_t *ann, sp_error *err, int *rc)
{
    const char *v = json_string_value(json_object_get(ann, OCI_LAYERS_OFF_ANNOTATION));
    unsigned off = 0;
    *rc = 0;
    if (!v)
        return 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (strcmp(t, "userns") == 0)
            off |= OCI_LAYER_USERNS;
        else if (strcmp(t, "seccomp") == 0)
            off |= OCI_LAYER_SECCOMP;
        else if (strcmp(t, "landlock") == 0)
            off |= OCI_LAYER_LANDLOCK;
        else if (strcmp(t, "mask") == 0)
            off |= OCI_LAYER_MASK;
        else if (strcmp(t, "nnp") == 0)
            off |= OCI_LAYER_NNP;
        else
            *rc = refuse(err, "annotation %s: unknown layer \"%s\" (userns, "
                         "seccomp, landlock, mask, nnp)",
                         OCI_LAYERS_OFF_ANNOTATION, t);
    }
    return off;
}

static int open_in(int rootfd, const char *path)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    while (*path == '/')
        path++;
    int fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how,
                          sizeof(how));
    return fd < 0 ? -errno : fd;
}

/* Mount points the rootfs lacks, made here by the runtime (host root, as
 * runc does): inside the container's user namespace the image's
 * directories, owned by host root, are not writable. Every lookup stays
 * inside the rootfs (RESOLVE_IN_ROOT). Paths below another mount of the
 * spec are left to the container's setup, which makes them there. */
static int premount(struct oci_spec *s, sp_error *err)
{
    int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "root.path %s", s->rootfs);
    int rc = 0;
    for (size_t i = 0; i < s->plan.n && rc == 0; i++) {
        const struct sp_mount_op *op = &s->plan.ops[i];
        if (op->kind != SP_OP_BIND && op->kind != SP_OP_FS &&
            op->kind != SP_OP_PROC && op->kind != SP_OP_DEV)
            continue;
        bool below = false;
        for (size_t j = 0; j < i && !below; j++) {
            const struct sp_mount_op *o = &s->plan.ops[j];
            if (o->kind == SP_OP_MASK || o->kind == SP_OP_RONLY)
                continue;
            size_t n = strlen(o->dst);
            below = strncmp(op->dst, o->dst, n) == 0 && op->dst[n] == '/';
        }
        if (below)
            continue;
        int fd = open_in(rootfd, op->dst);
        if (fd >= 0) {
            close(fd);
            continue;
        }
        /* make each missing component */
        char buf[SP_MAX_PATH];
        snprintf(buf, sizeof(buf), "%s", op->dst);
        for (char *c = buf + 1;; c++) {
            if (*c != '/' && *c != '\0')
                continue;
            char save = *c;
            *c = '\0';
            int have = open_in(rootfd, buf);
            if (have >= 0) {
                close(have);
            } else {
                char *slash = strrchr(buf, '/');
                *slash = '\0';
                int parent = open_in(rootfd, buf[0] ? buf : "/");
                *slash = '/';
                bool last = save == '\0';
                int r = parent < 0 ? parent : 0;
                if (r == 0 && last && op->kind == SP_OP_BIND && !op->is_dir) {
                    int f = openat(parent, slash + 1,
                                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                   0644);
                    r = f < 0 ? -errno : 0;
                    if (f >= 0)
                        close(f);
                } else if (r == 0 && mkdirat(parent, slash + 1, 0755) < 0) {
                    r = -errno;
                }
                if (parent >= 0)
                    close(parent);
                if (r < 0 && r != -EEXIST) {
                    rc = sp_error_setk(err, SP_ERR_SYSTEM, -r,
                                       "mount point %s in the rootfs", op->dst);
                    break;
                }
            }
            *c = save;
            if (save == '\0')
                break;
        }
    }
    close(rootfd);
    return rc;
}

int oci_spec_premount(struct oci_spec *s, sp_error *err)
{
    return premount(s, err);
}

int oci_spec_load(const char *bundle, const char *id, bool systemd_cgroup,
                  struct oci_spec *s, sp_error *err)
{
    int r;
    memset(s, 0, sizeof(*s));
    s->L.proc.console_fd = s->L.proc.fifo_fd = -1;
    s->bundle = realpath(bundle, NULL);
    if (!s->bundle)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "bundle %s", bundle);
    char *cfg = NULL;
    if (asprintf(&cfg, "%s/config.json", s->bundle) < 0)
        return sp_error_set(err, ENOMEM, "bundle");
    struct stat st;
    if (stat(cfg, &st) == 0 && st.st_size > SP_OCI_MAX_CONFIG) {
        free(cfg);
        return refuse(err, "config.json: larger than %d bytes", SP_OCI_MAX_CONFIG);
    }
    json_error_t je;
    s->json = json_load_file(cfg, JSON_REJECT_DUPLICATES, &je);
    free(cfg);
    if (!s->json)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "config.json line %d: %s", je.line, je.text);
    static const char *const known[] = {"ociVersion", "process", "root",
                                        "hostname", "domainname", "mounts",
                                        "hooks", "annotations", "linux", NULL};
    if ((r = only_keys(s->json, "config", known, err)) < 0)
        return r;
    const char *ver = json_string_value(json_object_get(s->json, "ociVersion"));
    if (!ver || strncmp(ver, "1.", 2) != 0)
        return refuse(err, "ociVersion: \"%s\" is not 1.x", ver ? ver : "");
    s->annotations = json_object_get(s->json, "annotations");
    s->layers_off = layers_off_parse(s->annotations, err, &r);
    if (r < 0)
        return r;
    const json_t *root = json_object_get(s->json, "root");
    static const char *const rkeys[] = {"path", "readonly", NULL};
    if ((r = only_keys(root, "root", rkeys, err)) < 0)
        return r;
    const char *rp = json_string_value(json_object_get(root, "path"));
    if (!rp || !*rp)
        return refuse(err, "root.path: missing");
    char *rabs = NULL;
    if (rp[0] != '/' && asprintf(&rabs, "%s/%s", s->bundle, rp) < 0)
        return sp_error_set(err, ENOMEM, "root");
    s->rootfs = realpath(rabs ? rabs : rp, NULL);
    free(rabs);
    if (!s->rootfs)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "root.path %s", rp);
    if (json_object_get(s->json, "domainname"))
        return refuse(err, "domainname is not supported");

    const json_t *linux_ = json_object_get(s->json, "linux");
    static const char *const lkeys[] = {
        "namespaces", "uidMappings", "gidMappings", "resources",
        "cgroupsPath", "maskedPaths", "readonlyPaths", "sysctl", "seccomp",
        "devices", "mountLabel", "rootfsPropagation", NULL};
    if ((r = only_keys(linux_, "linux", lkeys, err)) < 0)
        return r;
    if (json_array_size(json_object_get(linux_, "devices")))
        return refuse(err, "linux.devices: creating device nodes is not "
                      "supported (the container's /dev has null, zero, full, "
                      "random, urandom, tty and its own ptmx)");
    const char *ml = json_string_value(json_object_get(linux_, "mountLabel"));
    if (ml && *ml)
        return refuse(err, "linux.mountLabel: SELinux labels are not applied");
    const char *prop = json_string_value(json_object_get(linux_, "rootfsPropagation"));
    if (prop && strstr(prop, "shared"))
        return refuse(err, "linux.rootfsPropagation: \"%s\" is not supported",
                      prop);

    if ((r = oci_process_parse(json_object_get(s->json, "process"), "process",
                               s->layers_off, &s->L.proc, &s->argv, &s->envp,
                               err)) < 0)
        return r;
    const json_t *proc = json_object_get(s->json, "process");
    json_t *oom = json_object_get(proc, "oomScoreAdj");
    if (oom) {
        if (!json_is_integer(oom) || json_integer_value(oom) < -1000 ||
            json_integer_value(oom) > 1000)
            return refuse(err, "process.oomScoreAdj: not in -1000..1000");
        s->L.has_oom_score_adj = true;
        s->L.oom_score_adj = (int)json_integer_value(oom);
    }
    if ((r = namespaces_parse(s, linux_, err)) < 0)
        return r;
    s->L.hostname = json_string_value(json_object_get(s->json, "hostname"));
    if (s->L.hostname && strlen(s->L.hostname) > 64)
        return refuse(err, "hostname: longer than 64 bytes");
    if (s->L.hostname && !(s->L.clone_ns & CLONE_NEWUTS))
        s->L.hostname = NULL; /* runc refuses only a join; keep the host's */
    if ((r = sysctl_parse(s, json_object_get(linux_, "sysctl"), err)) < 0)
        return r;
    const json_t *sc = json_object_get(linux_, "seccomp");
    if (sc && !json_is_null(sc)) {
        if ((r = sp_seccomp_build_oci(sc, &s->seccomp, err)) < 0)
            return r;
        s->has_seccomp = true;
        s->L.proc.spec_seccomp = &s->seccomp;
    }
    if ((r = oci_resources_parse(json_object_get(linux_, "resources"), &s->res,
                                 err)) < 0)
        return r;
    const char *cp = json_string_value(json_object_get(linux_, "cgroupsPath"));
    if (cp && systemd_cgroup) {
        /* "slice:prefix:name" -> /slice/prefix-name.scope (the layout
         * systemd would make; sandpit writes it directly) */
        char slice[256], prefix[256], name[256];
        if (sscanf(cp, "%255[^:]:%255[^:]:%255s", slice, prefix, name) != 3)
            return refuse(err, "linux.cgroupsPath: \"%s\" is not "
                          "slice:prefix:name (--systemd-cgroup)", cp);
        if (asprintf(&s->cgroups_path, "/%s/%s-%s.scope", slice, prefix, name) < 0)
            return sp_error_set(err, ENOMEM, "cgroupsPath");
    } else if (cp) {
        if (strstr(cp, "..") || strlen(cp) > 1024)
            return refuse(err, "linux.cgroupsPath: \"%s\" is not a path", cp);
        if (asprintf(&s->cgroups_path, "%s%s", cp[0] == '/' ? "" : "/", cp) < 0)
            return sp_error_set(err, ENOMEM, "cgroupsPath");
    } else if (asprintf(&s->cgroups_path, "/sandpit-runc/%s", id) < 0) {
        return sp_error_set(err, ENOMEM, "cgroupsPath");
    }
    if ((r = hooks_parse(s, json_object_get(s->json, "hooks"), err)) < 0)
        return r;

    /* the mount plan: the rootfs as the root, then the spec's mounts */
    s->plan.root = calloc(1, sizeof(*s->plan.root));
    if (!s->plan.root)
        return sp_error_set(err, ENOMEM, "plan");
    s->plan.root->kind = SP_OP_BIND;
    s->plan.root->src = strdup(s->rootfs);
    s->plan.root->dst = strdup("/");
    s->plan.root->ro = json_is_true(json_object_get(root, "readonly"));
    s->plan.root->is_dir = true;
    s->plan.workdir = strdup(s->L.proc.cwd);
    if (!s->plan.root->src || !s->plan.root->dst || !s->plan.workdir)
        return sp_error_set(err, ENOMEM, "plan");
    if ((r = mounts_parse(s, err)) < 0)
        return r;
    s->L.plan = &s->plan;
    return 0;
}

void oci_spec_free(struct oci_spec *s)
{
    sp_mount_plan_free(&s->plan);
    for (size_t i = 0; i < s->L.n_join; i++)
        close(s->L.join_fds[i]);
    for (int k = 0; k < OCI_HOOK_N; k++)
        for (size_t i = 0; i < s->n_hooks[k]; i++) {
            free(s->hooks[k][i].args);
            free(s->hooks[k][i].env);
        }
    for (size_t i = 0; s->sysctl && s->sysctl[i]; i++)
        free(s->sysctl[i]);
    free(s->sysctl);
    sp_seccomp_prog_free(&s->seccomp);
    free(s->argv);
    free(s->envp);
    free(s->bundle);
    free(s->rootfs);
    free(s->cgroups_path);
    json_decref(s->json);
    memset(s, 0, sizeof(*s));
}

int oci_signal_parse(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT},
                {"ILL", SIGILL},   {"TRAP", SIGTRAP},   {"ABRT", SIGABRT},
                {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL},
                {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
                {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM},
                {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
                {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},   {"TTOU", SIGTTOU},
                {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
                {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
                {"IO", SIGIO},     {"PWR", SIGPWR},     {"SYS", SIGSYS}};
    if (!s || !*s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0')
        return v > 0 && v < NSIG ? (int)v : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < SP_ARRAY_SIZE(sigs); i++)
        if (strcasecmp(s, sigs[i].name) == 0)
            return sigs[i].sig;
    return -1;
}
