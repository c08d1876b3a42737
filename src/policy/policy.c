/* policy.c — defaults, JSON parsing, merging, validation and printing of the
 * one policy struct. Every source (profile, file, flags) is a JSON object
 * applied on top; a failed apply leaves the policy as it was. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "policy.h"
#include "portfwd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "netspec.h"
#include "state.h"
#include "util.h"

#ifndef SANDPIT_VERSION
#define SANDPIT_VERSION "0.1.0"
#endif
#ifndef SANDPIT_PROFILE_DIR
#define SANDPIT_PROFILE_DIR "/usr/local/share/sandpit/profiles"
#endif

/* Read-only system paths given to every sandbox when they exist on the
 * host. Symlinks among them (merged /usr: /bin -> usr/bin) are recreated as
 * symlinks, not followed, by the mount plan. */
const char *const sp_default_system_paths[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ca-certificates", "/etc/ca-certificates.conf",
    "/etc/ssl", "/etc/pki", "/etc/resolv.conf", "/etc/hosts",
    "/etc/host.conf", "/etc/gai.conf", "/etc/nsswitch.conf", "/etc/passwd",
    "/etc/group", "/etc/localtime", "/etc/timezone", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/os-release",
    "/etc/debian_version", "/etc/protocols", "/etc/services",
    "/etc/mime.types", "/etc/inputrc", "/etc/bash.bashrc", "/etc/profile",
    "/etc/gitconfig", "/etc/papersize", "/etc/python3", "/etc/perl",
    "/etc/java-17-openjdk", "/etc/magic", "/etc/mke2fs.conf",
    NULL,
};

static const char *const layer_names[] = {
    "landlock", "seccomp", "limits", "userns", "netns", "disk", "idmap",
    "idrange",
};

const char *sp_mount_type_name(enum sp_mount_type t)
{
    switch (t) {
    case SP_MOUNT_RO: return "ro";
    case SP_MOUNT_RW: return "rw";
    case SP_MOUNT_TMPFS: return "tmpfs";
    case SP_MOUNT_HIDE: return "hide";
    default: return "?";
    }
}

SP_EXPORT sp_policy *sp_policy_new(void)
{
    struct sp_policy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->hostname = strdup("sandpit");
    if (!p->hostname) {
        free(p);
        return NULL;
    }
    p->userns = true;
    p->kill_after = 2.0;
    p->net = SP_NET_NONE;
    p->limits.memory = 1024ull * 1024 * 1024;
    p->limits.pids = 512;
    p->limits.cpus = 0;
    /* As much as the default memory limit: tmpfs pages are charged to the
     * sandbox's memory cgroup, so the cgroup bounds /tmp + HOME + /dev/shm
     * + the processes together; this only caps each mount (and bounds them
     * where no cgroup can be made). A realistic npm install's cache in
     * HOME (~300 MB) fits. docs/limits.md. */
    p->limits.tmp_size = 1024ull * 1024 * 1024;
    p->limits.nofile = 4096;
    p->limits.fsize = 0;
    p->limits.disk = SP_DISK_DEFAULT;
    p->limits.inodes = 0;
    p->landlock = true;
    p->seccomp = true;
    return p;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

SP_EXPORT void sp_policy_free(sp_policy *p)
{
    if (!p)
        return;
    free(p->workspace);
    for (size_t i = 0; i < p->n_mounts; i++) {
        free(p->mounts[i].src);
        free(p->mounts[i].dst);
    }
    free(p->mounts);
    free(p->cwd);
    free_strv(p->env_set, p->n_env_set);
    free_strv(p->env_pass, p->n_env_pass);
    free(p->hostname);
    free(p->pass_fds);
    free(p->seccomp_profile);
    free(p->stats_json);
    free(p->net_proxy);
    free(p->net_log);
    free(p->net_resolver);
    free(p->rootfs);
    free(p->image);
    free_strv(p->image_argv, p->n_image_argv);
    free_strv(p->images_allowed, p->n_images_allowed);
    free(p->post_create);
    free(p);
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static char **dup_strv(char **v, size_t n, bool *oom)
{
    if (n == 0)
        return NULL;
    char **d = calloc(n, sizeof(char *));
    if (!d) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = dup_or_null(v[i], oom);
    return d;
}

/* Deep copy, so an apply can work on a scratch policy and swap on success. */
static struct sp_policy *policy_copy(const struct sp_policy *p)
{
    bool oom = false;
    struct sp_policy *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *p;
    c->workspace = dup_or_null(p->workspace, &oom);
    c->cwd = dup_or_null(p->cwd, &oom);
    c->hostname = dup_or_null(p->hostname, &oom);
    c->seccomp_profile = dup_or_null(p->seccomp_profile, &oom);
    c->stats_json = dup_or_null(p->stats_json, &oom);
    c->net_proxy = dup_or_null(p->net_proxy, &oom);
    c->net_log = dup_or_null(p->net_log, &oom);
    c->net_resolver = dup_or_null(p->net_resolver, &oom);
    c->rootfs = dup_or_null(p->rootfs, &oom);
    c->image = dup_or_null(p->image, &oom);
    c->image_argv = NULL; /* derived again at finalize */
    c->n_image_argv = 0;
    c->images_allowed = dup_strv(p->images_allowed, p->n_images_allowed, &oom);
    c->post_create = dup_or_null(p->post_create, &oom);
    c->env_set = dup_strv(p->env_set, p->n_env_set, &oom);
    c->env_pass = dup_strv(p->env_pass, p->n_env_pass, &oom);
    c->mounts = NULL;
    c->pass_fds = NULL;
    if (p->n_mounts) {
        c->mounts = calloc(p->n_mounts, sizeof(*c->mounts));
        if (!c->mounts) {
            c->n_mounts = 0;
            oom = true;
        } else {
            for (size_t i = 0; i < p->n_mounts; i++) {
                c->mounts[i] = p->mounts[i];
                c->mounts[i].src = dup_or_null(p->mounts[i].src, &oom);
                c->mounts[i].dst = dup_or_null(p->mounts[i].dst, &oom);
            }
        }
    }
    if (p->n_pass_fds) {
        c->pass_fds = calloc(p->n_pass_fds, sizeof(int));
        if (!c->pass_fds) {
            c->n_pass_fds = 0;
            oom = true;
        } else {
            memcpy(c->pass_fds, p->pass_fds, p->n_pass_fds * sizeof(int));
        }
    }
    if (oom) {
        sp_policy_free(c);
        return NULL;
    }
    return c;
}

static void policy_swap_free(struct sp_policy *dst, struct sp_policy *src)
{
    struct sp_policy tmp = *dst;
    *dst = *src;
    *src = tmp;
    sp_policy_free(src);
}

/* ---- mount rules ------------------------------------------------------- */

static void mount_rule_remove(struct sp_policy *p, size_t i)
{
    free(p->mounts[i].src);
    free(p->mounts[i].dst);
    memmove(&p->mounts[i], &p->mounts[i + 1],
            (p->n_mounts - i - 1) * sizeof(*p->mounts));
    p->n_mounts--;
}

int sp_policy_add_mount(struct sp_policy *p, enum sp_mount_type type,
                        const char *src, const char *dst, uint64_t size,
                        sp_error *err)
{
    char ndst[SP_MAX_PATH];
    char nsrc[SP_MAX_PATH];
    const char *tname = sp_mount_type_name(type);

    if (!dst || sp_path_normalize(dst, ndst, sizeof(ndst)) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s mount: target \"%s\" must be an absolute path "
                             "without \"..\"",
                             tname, dst ? dst : "");
    if (strcmp(ndst, "/") == 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s mount: the sandbox root \"/\" cannot be a "
                             "mount target",
                             tname);
    if (type == SP_MOUNT_RO || type == SP_MOUNT_RW) {
        if (!src || sp_path_normalize(src, nsrc, sizeof(nsrc)) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s mount: source \"%s\" must be an absolute "
                                 "path without \"..\"",
                                 tname, src ? src : "");
    }
    /* A later rule for the same target replaces an earlier one; a hide also
     * removes every rule below its target. */
    for (size_t i = p->n_mounts; i-- > 0;) {
        const char *d = p->mounts[i].dst;
        if (strcmp(d, ndst) == 0 ||
            (type == SP_MOUNT_HIDE && sp_path_has_prefix(d, ndst)))
            mount_rule_remove(p, i);
    }
    if (p->n_mounts >= SP_MAX_MOUNTS)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "too many mount rules (at most %d)", SP_MAX_MOUNTS);
    struct sp_mount_rule *m =
        realloc(p->mounts, (p->n_mounts + 1) * sizeof(*p->mounts));
    if (!m)
        return sp_error_set(err, ENOMEM, "adding a mount rule");
    p->mounts = m;
    struct sp_mount_rule r = {.type = type, .size = size};
    r.dst = strdup(ndst);
    if (type == SP_MOUNT_RO || type == SP_MOUNT_RW)
        r.src = strdup(nsrc);
    if (!r.dst || ((type == SP_MOUNT_RO || type == SP_MOUNT_RW) && !r.src)) {
        free(r.dst);
        free(r.src);
        return sp_error_set(err, ENOMEM, "adding a mount rule");
    }
    p->mounts[p->n_mounts++] = r;
    return 0;
}

/* ---- JSON ------------------------------------------------------------- */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "?";
    }
}

#define BAD(key, ...)                                                          \
    sp_error_setk(err, SP_ERR_USAGE, 0, "%s: key \"%s\": " __VA_ARGS__)

static int want_type(const json_t *v, json_type t, const char *origin,
                     const char *key, const char *what, sp_error *err)
{
    if (json_typeof(v) == t ||
        (t == JSON_TRUE && json_typeof(v) == JSON_FALSE))
        return 0;
    return sp_error_setk(err, SP_ERR_USAGE, 0,
                         "%s: key \"%s\" must be %s, not %s", origin, key, what,
                         json_type_name(v));
}

static int get_bool(const json_t *v, const char *origin, const char *key,
                    bool *out, sp_error *err)
{
    if (!json_is_boolean(v))
        return want_type(v, JSON_TRUE, origin, key, "true or false", err);
    *out = json_is_true(v);
    return 0;
}

static int get_string(const json_t *v, const char *origin, const char *key,
                      const char **out, sp_error *err)
{
    if (!json_is_string(v))
        return want_type(v, JSON_STRING, origin, key, "a string", err);
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: key \"%s\" contains a NUL byte", origin, key);
    *out = s;
    return 0;
}

static int set_string(char **field, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    free(*field);
    *field = d;
    return 0;
}

/* A size given as a JSON integer (bytes) or a string with a unit. */
static int get_size(const json_t *v, const char *origin, const char *key,
                    uint64_t *out, sp_error *err)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: key \"%s\" must not be negative", origin,
                                 key);
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        if (sp_parse_size(json_string_value(v), out) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: key \"%s\": \"%s\" is not a size (use "
                                 "bytes or a unit: 64K, 512M, 1G)",
                                 origin, key, json_string_value(v));
        return 0;
    }
    return want_type(v, JSON_STRING, origin, key,
                     "a size (integer bytes or a string like \"512M\")", err);
}

static int get_uint(const json_t *v, const char *origin, const char *key,
                    uint64_t max, uint64_t *out, sp_error *err)
{
    if (json_is_string(v)) {
        if (sp_parse_uint(json_string_value(v), max, out) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: key \"%s\": \"%s\" is not an integer "
                                 "from 0 to %llu",
                                 origin, key, json_string_value(v),
                                 (unsigned long long)max);
        return 0;
    }
    if (!json_is_integer(v))
        return want_type(v, JSON_INTEGER, origin, key, "an integer", err);
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: key \"%s\": %lld is out of range (0 to %llu)",
                             origin, key, (long long)i,
                             (unsigned long long)max);
    *out = (uint64_t)i;
    return 0;
}

/* Seconds as a number or a string with a unit ("100ms", "5m"). */
static int get_duration(const json_t *v, const char *origin, const char *key,
                        double *out, sp_error *err)
{
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!(d >= 0) || d > SP_MAX_TIMEOUT)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: key \"%s\": %g is out of range (0 to "
                                 "%.0f seconds)",
                                 origin, key, d, SP_MAX_TIMEOUT);
        *out = d;
        return 0;
    }
    if (json_is_string(v)) {
        if (sp_parse_duration(json_string_value(v), out) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: key \"%s\": \"%s\" is not a duration "
                                 "(seconds, or 500ms, 5m, 1h)",
                                 origin, key, json_string_value(v));
        return 0;
    }
    return want_type(v, JSON_REAL, origin, key, "a number of seconds", err);
}

static int parse_cpus(const json_t *v, const char *origin, double *out,
                      sp_error *err)
{
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        char *end = NULL;
        const char *s = json_string_value(v);
        d = strtod(s, &end);
        if (end == s || *end)
            return BAD("limits.cpus", "\"%s\" is not a number", origin,
                       "limits.cpus", s);
    } else {
        return want_type(v, JSON_REAL, origin, "limits.cpus", "a number", err);
    }
    if (!(d >= 0) || d > 4096)
        return BAD("limits.cpus", "%g is out of range (0 to 4096)", origin,
                   "limits.cpus", d);
    *out = d;
    return 0;
}

static int parse_limits(struct sp_policy *p, const json_t *obj,
                        const char *origin, sp_error *err)
{
    if (!json_is_object(obj))
        return want_type(obj, JSON_OBJECT, origin, "limits", "an object", err);
    const char *key;
    json_t *v;
    int r = 0;
    json_object_foreach((json_t *)obj, key, v) {
        char full[64];
        snprintf(full, sizeof(full), "limits.%s", key);
        if (strcmp(key, "memory") == 0) {
            r = get_size(v, origin, full, &p->limits.memory, err);
            if (r == 0 && p->limits.memory && p->limits.memory < SP_MIN_MEMORY)
                r = BAD(full, "%llu bytes is below the minimum of 4 MiB",
                        origin, full,
                        (unsigned long long)p->limits.memory);
        } else if (strcmp(key, "pids") == 0)
            r = get_uint(v, origin, full, 4194304, &p->limits.pids, err);
        else if (strcmp(key, "cpus") == 0)
            r = parse_cpus(v, origin, &p->limits.cpus, err);
        else if (strcmp(key, "tmp_size") == 0) {
            r = get_size(v, origin, full, &p->limits.tmp_size, err);
            if (r == 0 && p->limits.tmp_size == 0)
                r = BAD(full, "must be more than 0", origin, full);
        } else if (strcmp(key, "nofile") == 0)
            r = get_uint(v, origin, full, 1048576, &p->limits.nofile, err);
        else if (strcmp(key, "fsize") == 0)
            r = get_size(v, origin, full, &p->limits.fsize, err);
        else if (strcmp(key, "disk") == 0) {
            r = get_size(v, origin, full, &p->limits.disk, err);
            if (r == 0 && p->limits.disk &&
                (p->limits.disk < SP_DISK_MIN || p->limits.disk > SP_DISK_MAX))
                r = BAD(full, "%llu bytes is out of range (0 for none, or "
                        "16 MiB to 64 TiB)", origin, full,
                        (unsigned long long)p->limits.disk);
        } else if (strcmp(key, "inodes") == 0) {
            r = get_uint(v, origin, full, SP_INODES_MAX, &p->limits.inodes,
                         err);
            if (r == 0 && p->limits.inodes &&
                p->limits.inodes < SP_INODES_MIN)
                r = BAD(full, "%llu is below the minimum of %d", origin, full,
                        (unsigned long long)p->limits.inodes, SP_INODES_MIN);
        }
        else
            r = sp_error_setk(err, SP_ERR_USAGE, 0,
                              "%s: unknown key \"%s\"", origin, full);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A policy array: fn for each entry, in order, with its name ("key[i]")
 * for messages; the value must be an array (`what` says of what). */
typedef int (*entry_fn)(struct sp_policy *p, const json_t *v,
                        const char *full, const char *origin, sp_error *err);

static int parse_array(struct sp_policy *p, const json_t *arr, const char *key,
                       const char *what, entry_fn fn, const char *origin,
                       sp_error *err)
{
    if (!json_is_array(arr))
        return want_type(arr, JSON_ARRAY, origin, key, what, err);
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)arr, i, v) {
        char full[64];
        snprintf(full, sizeof(full), "%s[%zu]", key, i);
        int r = fn(p, v, full, origin, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int mount_entry(struct sp_policy *p, const json_t *m,
                       const char *where, const char *origin,
                       sp_error *err)
{
    if (!json_is_object(m))
        return want_type(m, JSON_OBJECT, origin, where, "an object", err);
    const char *type = NULL, *src = NULL, *dst = NULL;
    uint64_t size = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)m, key, v) {
        char full[96];
        snprintf(full, sizeof(full), "%s.%s", where, key);
        int r;
        if (strcmp(key, "type") == 0)
            r = get_string(v, origin, full, &type, err);
        else if (strcmp(key, "src") == 0)
            r = get_string(v, origin, full, &src, err);
        else if (strcmp(key, "dst") == 0)
            r = get_string(v, origin, full, &dst, err);
        else if (strcmp(key, "size") == 0)
            r = get_size(v, origin, full, &size, err);
        else
            r = sp_error_setk(err, SP_ERR_USAGE, 0,
                              "%s: unknown key \"%s\"", origin, full);
        if (r < 0)
            return r;
    }
    enum sp_mount_type t;
    if (!type)
        return BAD(where, "missing \"type\" (ro, rw, tmpfs or hide)",
                   origin, where);
    if (strcmp(type, "ro") == 0)
        t = SP_MOUNT_RO;
    else if (strcmp(type, "rw") == 0)
        t = SP_MOUNT_RW;
    else if (strcmp(type, "tmpfs") == 0)
        t = SP_MOUNT_TMPFS;
    else if (strcmp(type, "hide") == 0)
        t = SP_MOUNT_HIDE;
    else
        return BAD(where, "type \"%s\" is not one of ro, rw, tmpfs, hide",
                   origin, where, type);
    if ((t == SP_MOUNT_RO || t == SP_MOUNT_RW) && !src)
        return BAD(where, "a %s mount needs \"src\"", origin, where, type);
    if ((t == SP_MOUNT_TMPFS || t == SP_MOUNT_HIDE) && src)
        return BAD(where, "a %s mount takes no \"src\"", origin, where,
                   type);
    if (!dst)
        dst = src;
    if (!dst)
        return BAD(where, "missing \"dst\"", origin, where);
    int r = sp_policy_add_mount(p, t, src, dst, size, err);
    if (r < 0)
        return sp_error_prefix(err, "%s: %s", origin, where);
    return 0;
}

static int parse_env(struct sp_policy *p, const json_t *obj, const char *origin,
                     sp_error *err)
{
    if (!json_is_object(obj))
        return want_type(obj, JSON_OBJECT, origin, "env",
                         "an object of NAME: value", err);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        const char *val;
        char full[300];
        snprintf(full, sizeof(full), "env.%.256s", k);
        if (get_string(v, origin, full, &val, err) < 0)
            return -EINVAL;
        if (!*k || strchr(k, '=') || strlen(k) > 255)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s: env name \"%.64s\" is empty, too long or "
                                 "contains '='",
                                 origin, k);
        size_t klen = strlen(k), vlen = strlen(val);
        if (klen + vlen + 2 > SP_MAX_ENV_LEN)
            return BAD(full, "value is longer than %d bytes", origin, full,
                       SP_MAX_ENV_LEN);
        /* Replace an earlier entry for the same name. */
        size_t i;
        for (i = 0; i < p->n_env_set; i++)
            if (strncmp(p->env_set[i], k, klen) == 0 &&
                p->env_set[i][klen] == '=')
                break;
        if (i == p->n_env_set) {
            if (p->n_env_set >= SP_MAX_ENV)
                return BAD("env", "more than %d entries", origin, "env",
                           SP_MAX_ENV);
            char **n = realloc(p->env_set, (p->n_env_set + 1) * sizeof(char *));
            if (!n)
                return sp_error_set(err, ENOMEM, "env");
            p->env_set = n;
            p->env_set[p->n_env_set++] = NULL;
        }
        char *e = malloc(klen + vlen + 2);
        if (!e)
            return sp_error_set(err, ENOMEM, "env");
        memcpy(e, k, klen);
        e[klen] = '=';
        memcpy(e + klen + 1, val, vlen + 1);
        free(p->env_set[i]);
        p->env_set[i] = e;
    }
    return 0;
}

static int env_pass_entry(struct sp_policy *p, const json_t *v,
                          const char *full, const char *origin,
                          sp_error *err)
{
    const char *name;
    if (get_string(v, origin, full, &name, err) < 0)
        return -EINVAL;
    if (!*name || strchr(name, '=') || strlen(name) > 255)
        return BAD(full, "\"%.64s\" is not a variable name", origin, full,
                   name);
    bool dup = false;
    for (size_t j = 0; j < p->n_env_pass; j++)
        dup |= strcmp(p->env_pass[j], name) == 0;
    if (dup)
        return 0;
    if (p->n_env_pass >= SP_MAX_ENV)
        return BAD("env_pass", "more than %d entries", origin, "env_pass",
                   SP_MAX_ENV);
    char **n = realloc(p->env_pass, (p->n_env_pass + 1) * sizeof(char *));
    if (!n)
        return sp_error_set(err, ENOMEM, "env_pass");
    p->env_pass = n;
    if (!(p->env_pass[p->n_env_pass] = strdup(name)))
        return sp_error_set(err, ENOMEM, "env_pass");
    p->n_env_pass++;
    return 0;
}

static int pass_fd_entry(struct sp_policy *p, const json_t *v,
                         const char *full, const char *origin,
                         sp_error *err)
{
    uint64_t fd;
    if (get_uint(v, origin, full, 65535, &fd, err) < 0)
        return -EINVAL;
    if (fd <= 2)
        return 0; /* 0, 1, 2 always pass */
    bool dup = false;
    for (size_t j = 0; j < p->n_pass_fds; j++)
        dup |= p->pass_fds[j] == (int)fd;
    if (dup)
        return 0;
    if (p->n_pass_fds >= SP_MAX_PASS_FDS)
        return BAD("pass_fds", "more than %d fds", origin, "pass_fds",
                   SP_MAX_PASS_FDS);
    int *n = realloc(p->pass_fds, (p->n_pass_fds + 1) * sizeof(int));
    if (!n)
        return sp_error_set(err, ENOMEM, "pass_fds");
    p->pass_fds = n;
    p->pass_fds[p->n_pass_fds++] = (int)fd;
    return 0;
}

/* "tcp_ports": [80, 443]; the key replaces an earlier list. */
static int tcp_port_entry(struct sp_policy *p, const json_t *v,
                          const char *full, const char *origin,
                          sp_error *err)
{
    uint64_t port;
    if (get_uint(v, origin, full, 65535, &port, err) < 0)
        return -EINVAL;
    if (port == 0)
        return BAD(full, "port 0 is not a port", origin, full);
    for (size_t j = 0; j < p->n_tcp_ports; j++)
        if (p->tcp_ports[j] == port)
            return 0;
    if (p->n_tcp_ports >= SP_MAX_TCP_PORTS)
        return BAD("tcp_ports", "more than %d ports", origin, "tcp_ports",
                   SP_MAX_TCP_PORTS);
    p->tcp_ports[p->n_tcp_ports++] = (uint16_t)port;
    return 0;
}

static int require_entry(struct sp_policy *p, const json_t *v,
                         const char *full, const char *origin,
                         sp_error *err)
{
    const char *name;
    if (get_string(v, origin, full, &name, err) < 0)
        return -EINVAL;
    size_t j;
    for (j = 0; j < SP_ARRAY_SIZE(layer_names); j++)
        if (strcmp(name, layer_names[j]) == 0)
            break;
    if (j == SP_ARRAY_SIZE(layer_names)) {
        char known[128] = "";
        for (size_t k = 0; k < SP_ARRAY_SIZE(layer_names); k++)
            snprintf(known + strlen(known), sizeof(known) - strlen(known),
                     "%s%s", k ? ", " : "", layer_names[k]);
        return BAD(full, "\"%s\" is not a layer (%s)", origin, full, name,
                   known);
    }
    p->require |= 1u << j;
    return 0;
}

static int path_key(const json_t *v, const char *origin, const char *key,
                    char **field, bool allow_null, sp_error *err)
{
    if (allow_null && json_is_null(v)) {
        free(*field);
        *field = NULL;
        return 0;
    }
    const char *s;
    if (get_string(v, origin, key, &s, err) < 0)
        return -EINVAL;
    char norm[SP_MAX_PATH];
    if (sp_path_normalize(s, norm, sizeof(norm)) < 0)
        return BAD(key, "\"%.200s\" must be an absolute path without \"..\"",
                   origin, key, s);
    if (set_string(field, norm) < 0)
        return sp_error_set(err, ENOMEM, "%s", key);
    return 0;
}

/* "net_resolver": FILE | null — a hosts-format file, checked now (so a bad
 * one fails before anything starts) and read again when the proxy is made. */
static int resolver_key(struct sp_policy *p, const json_t *v,
                        const char *origin, sp_error *err)
{
    int r = path_key(v, origin, "net_resolver", &p->net_resolver, true, err);
    if (r < 0 || !p->net_resolver)
        return r;
    struct sp_proxy_config cfg;
    sp_proxy_config_init(&cfg);
    r = sp_proxy_resolver_load(p->net_resolver, &cfg, err);
    sp_proxy_config_free(&cfg);
    return r;
}

/* "net": none | host | allow | allow:LIST (docs/network.md). */
static int net_key(struct sp_policy *p, const char *s, const char *origin,
                   sp_error *err)
{
    char *canon = NULL;
    if (strcmp(s, "none") == 0 || strcmp(s, "host") == 0) {
        p->net = s[0] == 'n' ? SP_NET_NONE : SP_NET_HOST;
        free(p->net_proxy);
        p->net_proxy = NULL;
        return 0;
    }
    if (strcmp(s, "allow") == 0) {
        p->net = SP_NET_ALLOW;
        return 0;
    }
    if (strncmp(s, "allow:", 6) != 0)
        return BAD("net", "\"%.80s\" is not one of none, host, allow:LIST",
                   origin, "net", s);
    char where[96];
    snprintf(where, sizeof(where), "%s: key \"net\"", origin);
    int r = sp_net_canon_list(s + 6, where, &canon, err);
    if (r < 0)
        return r;
    free(p->net_proxy);
    p->net_proxy = canon;
    p->net = SP_NET_ALLOW;
    return 0;
}

/* "net_allow": [entries] or "net_policy": {object} | "FILE" | null. Both
 * replace the allow list and select the allow mode. */
static int net_policy_key(struct sp_policy *p, const char *key, const json_t *v,
                          const char *origin, sp_error *err)
{
    char where[96], *canon = NULL;
    int r;
    snprintf(where, sizeof(where), "%s: key \"%s\"", origin, key);
    if (json_is_null(v) && strcmp(key, "net_policy") == 0) {
        free(p->net_proxy);
        p->net_proxy = NULL;
        if (p->net == SP_NET_ALLOW)
            p->net = SP_NET_NONE;
        return 0;
    }
    if (strcmp(key, "net_allow") == 0 && !json_is_array(v))
        return want_type(v, JSON_ARRAY, origin, key, "an array of hosts", err);
    if (json_is_string(v))
        r = sp_net_canon_file(json_string_value(v), where, &canon, err);
    else
        r = sp_net_canon_json(v, where, &canon, err);
    if (r < 0)
        return r;
    free(p->net_proxy);
    p->net_proxy = canon;
    p->net = SP_NET_ALLOW;
    return 0;
}

static int apply_object(struct sp_policy *p, const json_t *root,
                        const char *origin, sp_error *err)
{
    if (!json_is_object(root))
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: a policy must be a JSON object, not %s",
                             origin, json_type_name(root));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        int r = 0;
        const char *s = NULL;
        uint64_t u = 0;
        if (strcmp(key, "workspace") == 0) {
            r = path_key(v, origin, key, &p->workspace, true, err);
        } else if (strcmp(key, "workspace_mode") == 0) {
            if ((r = get_string(v, origin, key, &s, err)) < 0)
                return r;
            if (strcmp(s, "rw") == 0)
                p->workspace_mode = SP_WS_RW;
            else if (strcmp(s, "ro") == 0)
                p->workspace_mode = SP_WS_RO;
            else if (strcmp(s, "none") == 0)
                p->workspace_mode = SP_WS_NONE;
            else
                r = BAD(key, "\"%s\" is not one of rw, ro, none", origin, key,
                        s);
        } else if (strcmp(key, "mounts") == 0) {
            r = parse_array(p, v, "mounts", "an array",
                            mount_entry, origin, err);
        } else if (strcmp(key, "cwd") == 0) {
            r = path_key(v, origin, key, &p->cwd, true, err);
        } else if (strcmp(key, "env") == 0) {
            r = parse_env(p, v, origin, err);
        } else if (strcmp(key, "env_pass") == 0) {
            r = parse_array(p, v, "env_pass", "an array of names",
                            env_pass_entry, origin, err);
        } else if (strcmp(key, "clear_env") == 0) {
            r = get_bool(v, origin, key, &p->clear_env, err);
        } else if (strcmp(key, "uid") == 0) {
            if ((r = get_uint(v, origin, key, 65534, &u, err)) == 0)
                p->uid = (uint32_t)u;
        } else if (strcmp(key, "gid") == 0) {
            if ((r = get_uint(v, origin, key, 65534, &u, err)) == 0)
                p->gid = (uint32_t)u;
        } else if (strcmp(key, "userns") == 0) {
            r = get_bool(v, origin, key, &p->userns, err);
        } else if (strcmp(key, "hostname") == 0) {
            if ((r = get_string(v, origin, key, &s, err)) < 0)
                return r;
            size_t n = strlen(s);
            bool ok = n > 0 && n <= 64;
            for (size_t i = 0; ok && i < n; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') ||
                     (s[i] >= 'A' && s[i] <= 'Z') ||
                     (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.';
            if (!ok)
                r = BAD(key, "\"%.80s\" is not a host name (1-64 of a-z A-Z "
                             "0-9 - .)",
                        origin, key, s);
            else if (set_string(&p->hostname, s) < 0)
                r = sp_error_set(err, ENOMEM, "hostname");
        } else if (strcmp(key, "pass_fds") == 0) {
            r = parse_array(p, v, "pass_fds", "an array of fd numbers",
                            pass_fd_entry, origin, err);
        } else if (strcmp(key, "timeout") == 0) {
            r = get_duration(v, origin, key, &p->timeout, err);
        } else if (strcmp(key, "kill_after") == 0) {
            r = get_duration(v, origin, key, &p->kill_after, err);
        } else if (strcmp(key, "pool") == 0) {
            if ((r = get_uint(v, origin, key, SP_POOL_MAX, &u, err)) == 0)
                p->pool = (unsigned)u;
        } else if (strcmp(key, "publish") == 0) {
            r = sp_publish_parse_json(p->publish, &p->n_publish, v, origin,
                                      err);
        } else if (strcmp(key, "tcp_ports") == 0) {
            p->n_tcp_ports = 0;
            r = parse_array(p, v, "tcp_ports", "an array of TCP port numbers",
                            tcp_port_entry, origin, err);
        } else if (strcmp(key, "net") == 0) {
            if ((r = get_string(v, origin, key, &s, err)) < 0)
                return r;
            r = net_key(p, s, origin, err);
        } else if (strcmp(key, "net_allow") == 0 ||
                   strcmp(key, "net_policy") == 0) {
            r = net_policy_key(p, key, v, origin, err);
        } else if (strcmp(key, "net_allow_private") == 0) {
            r = get_bool(v, origin, key, &p->net_allow_private, err);
        } else if (strcmp(key, "net_log") == 0) {
            r = path_key(v, origin, key, &p->net_log, true, err);
        } else if (strcmp(key, "net_resolver") == 0) {
            r = resolver_key(p, v, origin, err);
        } else if (strcmp(key, "limits") == 0) {
            r = parse_limits(p, v, origin, err);
        } else if (strcmp(key, "landlock") == 0) {
            r = get_bool(v, origin, key, &p->landlock, err);
        } else if (strcmp(key, "seccomp") == 0) {
            r = get_bool(v, origin, key, &p->seccomp, err);
        } else if (strcmp(key, "seccomp_profile") == 0) {
            r = path_key(v, origin, key, &p->seccomp_profile, true, err);
        } else if (strcmp(key, "allow_ptrace") == 0) {
            r = get_bool(v, origin, key, &p->allow_ptrace, err);
        } else if (strcmp(key, "allow_system_ro") == 0) {
            r = get_bool(v, origin, key, &p->allow_system_ro, err);
        } else if (strcmp(key, "require") == 0) {
            r = parse_array(p, v, "require", "an array of layer names",
                            require_entry, origin, err);
        } else if (strcmp(key, "rootfs") == 0) {
            r = path_key(v, origin, key, &p->rootfs, true, err);
        } else if (strcmp(key, "image") == 0 || strcmp(key, "images") == 0 ||
                   strcmp(key, "post_create") == 0) {
            r = sp_policy_image_key(p, key, v, origin, err);
        } else if (strcmp(key, "allow_untrusted_images") == 0) {
            r = get_bool(v, origin, key, &p->allow_untrusted_images, err);
        } else if (strcmp(key, "stats") == 0) {
            r = get_bool(v, origin, key, &p->stats, err);
        } else if (strcmp(key, "stats_json") == 0) {
            r = path_key(v, origin, key, &p->stats_json, true, err);
        } else {
            r = sp_error_setk(err, SP_ERR_USAGE, 0, "%s: unknown key \"%s\"",
                              origin, key);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int apply_json(struct sp_policy *p, const json_t *root,
                      const char *origin, sp_error *err)
{
    struct sp_policy *scratch = policy_copy(p);
    if (!scratch)
        return sp_error_set(err, ENOMEM, "%s", origin);
    int r = apply_object(scratch, root, origin, err);
    if (r < 0) {
        sp_policy_free(scratch);
        return r;
    }
    scratch->finalized = false;
    policy_swap_free(p, scratch);
    return 0;
}

SP_EXPORT int sp_policy_apply_json_text(sp_policy *p, const char *text,
                                        const char *origin, sp_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: invalid JSON at line %d column %d: %s",
                             origin, jerr.line, jerr.column, jerr.text);
    int r = apply_json(p, root, origin, err);
    json_decref(root);
    return r;
}

SP_EXPORT int sp_policy_apply_file(sp_policy *p, const char *path,
                                   sp_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno,
                             "cannot open policy file %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sp_error_set(err, errno, "policy file %s", path);
    if (!S_ISREG(st.st_mode))
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "policy file %s is not a regular file", path);
    if (st.st_size > SP_MAX_POLICY_FILE)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "policy file %s is larger than %d bytes", path,
                             SP_MAX_POLICY_FILE);
    _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return sp_error_set(err, ENOMEM, "policy file %s", path);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sp_error_set(err, errno, "reading policy file %s", path);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (strlen(buf) != got)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "policy file %s contains a NUL byte", path);
    char origin[SP_MAX_PATH + 32];
    snprintf(origin, sizeof(origin), "policy file %s", path);
    return sp_policy_apply_json_text(p, buf, origin, err);
}

SP_EXPORT int sp_policy_apply_profile(sp_policy *p, const char *name,
                                      sp_error *err)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
             name[i] == '_';
    if (!ok)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "profile name \"%.80s\" is not valid (a-z 0-9 - _)",
                             name);
    /* $SANDPIT_PROFILE_DIR, else the installed directory, else next to the
     * binary (a build directory inside the source tree: ../profiles). */
    char path[SP_MAX_PATH];
    const char *dir = getenv("SANDPIT_PROFILE_DIR");
    if (dir && *dir) {
        snprintf(path, sizeof(path), "%s/%s.json", dir, name);
    } else {
        snprintf(path, sizeof(path), "%s/%s.json", SANDPIT_PROFILE_DIR, name);
        char exe[SP_MAX_PATH];
        ssize_t en = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (access(path, R_OK) < 0 && en > 0) {
            exe[en] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = '\0';
                char alt[SP_MAX_PATH];
                snprintf(alt, sizeof(alt), "%.3000s/../profiles/%s.json", exe,
                         name);
                if (access(alt, R_OK) == 0)
                    memcpy(path, alt, sizeof(path));
            }
        }
    }
    if (access(path, R_OK) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "no profile named \"%s\" (looked for %s)", name,
                             path);
    return sp_policy_apply_file(p, path, err);
}

/* ---- finalize --------------------------------------------------------- */

/* Host directories that would hand the sandbox the host: a workspace or
 * --rw source may not be one, contain one or lie inside one; a --ro source
 * may not be or contain one without allow_system_ro. The file system types
 * (proc, sysfs, devtmpfs, cgroup, ...) are checked at launch, with statfs
 * (launch.c check_source_fs). docs/policy.md "Sources that are refused". */
static const char *const host_system_dirs[] = {
    "/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/etc", "/usr",
};

enum source_use { SOURCE_WORKSPACE, SOURCE_WORKSPACE_RO, SOURCE_RW, SOURCE_RO };

/* How real (a resolved path) relates to dir (resolved too): "is",
 * "contains", "lies inside", or NULL. Inside counts only when `inside`. */
static const char *relation(const char *real, const char *dir, bool inside)
{
    if (strcmp(real, dir) == 0)
        return "is";
    if (sp_path_has_prefix(dir, real))
        return "contains";
    if (inside && sp_path_has_prefix(real, dir))
        return "lies inside";
    return NULL;
}

static int source_refused(sp_error *err, const char *what, const char *given,
                          const char *real, const char *rel, const char *dir,
                          const char *rule)
{
    bool moved = strcmp(given, real) != 0;
    return sp_error_setk(err, SP_ERR_USAGE, 0,
                         "%s %s%s%s%s %s %s: %s (docs/policy.md)", what,
                         given, moved ? " (resolves to " : "",
                         moved ? real : "", moved ? ")" : "", rel, dir, rule);
}

static int check_source(const struct sp_policy *p, enum source_use use,
                        const char *given, sp_error *err)
{
    const char *what = use == SOURCE_RW   ? "--rw source"
                       : use == SOURCE_RO ? "--ro source"
                                          : "workspace";
    if (use == SOURCE_WORKSPACE_RO)
        use = SOURCE_RO; /* read-only: the --ro rules */
    char real[PATH_MAX];
    if (!realpath(given, real))
        return sp_error_setk(err, SP_ERR_USAGE, errno, "%s %s", what, given);
    static const char rule_rw[] =
        "a workspace or --rw source may not be, contain or lie inside the "
        "host's /, /proc, /sys, /dev, /run, /var/run, /boot, /etc, /usr or "
        "sandpit's state directory";
    static const char rule_ro[] =
        "a read-only source may not be or contain the host's /, /proc, /sys, "
        "/dev, /run, /var/run, /boot, /etc or /usr without allow_system_ro "
        "(--allow-system-ro)";
    static const char rule_state[] =
        "sandpit's state directory (its workspaces' control sockets) is "
        "never mounted into a sandbox, not even read-only";
    bool ro_ok = use == SOURCE_RO && p->allow_system_ro;
    if (strcmp(real, "/") == 0 && !ro_ok)
        return source_refused(err, what, given, real, "is", "the host's root "
                              "directory", use == SOURCE_RO ? rule_ro : rule_rw);
    if (!ro_ok) {
        for (size_t i = 0; i < SP_ARRAY_SIZE(host_system_dirs); i++) {
            const char *d = host_system_dirs[i];
            char dreal[PATH_MAX];
            const char *rel = relation(real, d, use != SOURCE_RO);
            if (!rel && realpath(d, dreal) && strcmp(dreal, d) != 0)
                rel = relation(real, d = dreal, use != SOURCE_RO);
            if (rel)
                return source_refused(err, what, given, real, rel,
                                      host_system_dirs[i],
                                      use == SOURCE_RO ? rule_ro : rule_rw);
        }
    }
    char state[SP_MAX_PATH], sreal[PATH_MAX];
    sp_error ignore = {0};
    if (sp_state_dir(state, sizeof(state), &ignore) == 0) {
        const char *s = realpath(state, sreal) ? sreal : state;
        const char *rel = relation(real, s, true);
        if (rel)
            return source_refused(err, what, given, real, rel, s, rule_state);
    }
    return 0;
}

SP_EXPORT int sp_policy_finalize(sp_policy *p, sp_error *err)
{
    if (!p->workspace) {
        char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return sp_error_set(err, errno, "cannot read the current directory");
        char norm[SP_MAX_PATH];
        if (sp_path_normalize(cwd, norm, sizeof(norm)) < 0) {
            free(cwd);
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "the current directory is not a usable path");
        }
        free(cwd);
        if (!(p->workspace = strdup(norm)))
            return sp_error_set(err, ENOMEM, "workspace");
    }
    if (p->workspace_mode != SP_WS_NONE) {
        struct stat st;
        if (stat(p->workspace, &st) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, errno, "workspace %s",
                                 p->workspace);
        if (!S_ISDIR(st.st_mode))
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "workspace %s is not a directory",
                                 p->workspace);
        if (strcmp(p->workspace, "/") == 0)
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "the host's root directory cannot be the "
                                 "workspace; pass --workspace DIR");
        if (!p->ws_in_state) {
            int r = check_source(p,
                                 p->workspace_mode == SP_WS_RO
                                     ? SOURCE_WORKSPACE_RO
                                     : SOURCE_WORKSPACE,
                                 p->workspace, err);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < p->n_mounts; i++) {
        struct sp_mount_rule *m = &p->mounts[i];
        if (m->type != SP_MOUNT_RO && m->type != SP_MOUNT_RW)
            continue;
        struct stat st;
        if (stat(m->src, &st) < 0)
            return sp_error_setk(err, SP_ERR_USAGE, errno,
                                 "%s mount source %s", sp_mount_type_name(m->type),
                                 m->src);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) &&
            !S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode))
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "%s mount source %s is not a file or directory",
                                 sp_mount_type_name(m->type), m->src);
        int r = check_source(p, m->type == SP_MOUNT_RW ? SOURCE_RW : SOURCE_RO,
                             m->src, err);
        if (r < 0)
            return r;
    }
    if (!p->userns && geteuid() != 0)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "userns=false (--no-userns) needs root; as an "
                             "ordinary user every sandbox goes through a user "
                             "namespace");
    if (p->n_pass_fds) {
        for (size_t i = 0; i < p->n_pass_fds; i++)
            if (fcntl(p->pass_fds[i], F_GETFD) < 0)
                return sp_error_setk(err, SP_ERR_USAGE, 0,
                                     "--pass-fd %d: no such open file "
                                     "descriptor",
                                     p->pass_fds[i]);
    }
    if (p->seccomp_profile && access(p->seccomp_profile, R_OK) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "seccomp profile %s",
                             p->seccomp_profile);
    int ir = sp_policy_image_finalize(p, err);
    if (ir < 0)
        return ir;
    p->finalized = true;
    return 0;
}

SP_EXPORT bool sp_policy_wants_stats(const sp_policy *p)
{
    return p->stats;
}

SP_EXPORT uint64_t sp_policy_memory_limit(const sp_policy *p)
{
    return p->limits.memory;
}

SP_EXPORT const char *sp_version(void)
{
    return SANDPIT_VERSION;
}

/* ---- printing --------------------------------------------------------- */

static json_t *size_json(uint64_t v)
{
    return json_integer((json_int_t)v);
}

SP_EXPORT char *sp_policy_to_json(const sp_policy *p, sp_error *err)
{
    json_t *o = json_object();
    if (!o) {
        sp_error_set(err, ENOMEM, "policy to JSON");
        return NULL;
    }
    static const char *const wsmode[] = {"rw", "ro", "none"};
    json_object_set_new(o, "workspace",
                        p->workspace ? json_string(p->workspace) : json_null());
    json_object_set_new(o, "workspace_mode",
                        json_string(wsmode[p->workspace_mode]));
    json_t *sys = json_array();
    for (size_t i = 0; sp_default_system_paths[i]; i++) {
        bool replaced = false;
        for (size_t j = 0; j < p->n_mounts; j++)
            replaced |= sp_path_has_prefix(sp_default_system_paths[i],
                                           p->mounts[j].dst) &&
                        p->mounts[j].type == SP_MOUNT_HIDE;
        for (size_t j = 0; j < p->n_mounts; j++)
            replaced |= strcmp(sp_default_system_paths[i], p->mounts[j].dst) == 0;
        if (!replaced)
            json_array_append_new(sys, json_string(sp_default_system_paths[i]));
    }
    if (p->rootfs) /* the rootfs replaces the host's system paths */
        json_array_clear(sys);
    json_object_set_new(o, "system_paths_ro", sys);
    json_object_set_new(o, "rootfs", p->rootfs ? json_string(p->rootfs)
                                               : json_null());
    json_object_set_new(o, "image", p->image ? json_string(p->image)
                                             : json_null());
    json_t *ia = json_array();
    for (size_t i = 0; i < p->n_images_allowed; i++)
        json_array_append_new(ia, json_string(p->images_allowed[i]));
    json_object_set_new(o, "images", json_pack("{s:o}", "allowed", ia));
    json_object_set_new(o, "allow_untrusted_images",
                        json_boolean(p->allow_untrusted_images));
    json_object_set_new(o, "post_create", p->post_create
                                              ? json_string(p->post_create)
                                              : json_null());
    json_t *mounts = json_array();
    for (size_t i = 0; i < p->n_mounts; i++) {
        const struct sp_mount_rule *m = &p->mounts[i];
        json_t *mo = json_object();
        json_object_set_new(mo, "type", json_string(sp_mount_type_name(m->type)));
        if (m->src)
            json_object_set_new(mo, "src", json_string(m->src));
        json_object_set_new(mo, "dst", json_string(m->dst));
        if (m->type == SP_MOUNT_TMPFS)
            json_object_set_new(mo, "size",
                                size_json(m->size ? m->size : p->limits.tmp_size));
        json_array_append_new(mounts, mo);
    }
    json_object_set_new(o, "mounts", mounts);
    json_object_set_new(o, "cwd", p->cwd ? json_string(p->cwd) : json_null());
    json_t *env = json_object();
    for (size_t i = 0; i < p->n_env_set; i++) {
        const char *eq = strchr(p->env_set[i], '=');
        char name[256];
        size_t n = (size_t)(eq - p->env_set[i]);
        if (n >= sizeof(name))
            continue;
        memcpy(name, p->env_set[i], n);
        name[n] = '\0';
        json_object_set_new(env, name, json_string(eq + 1));
    }
    json_object_set_new(o, "env", env);
    json_t *pass = json_array();
    for (size_t i = 0; i < p->n_env_pass; i++)
        json_array_append_new(pass, json_string(p->env_pass[i]));
    json_object_set_new(o, "env_pass", pass);
    json_object_set_new(o, "clear_env", json_boolean(p->clear_env));
    json_object_set_new(o, "uid", json_integer(p->uid));
    json_object_set_new(o, "gid", json_integer(p->gid));
    json_object_set_new(o, "userns", json_boolean(p->userns));
    json_object_set_new(o, "hostname", json_string(p->hostname));
    json_t *fds = json_array();
    for (size_t i = 0; i < p->n_pass_fds; i++)
        json_array_append_new(fds, json_integer(p->pass_fds[i]));
    json_object_set_new(o, "pass_fds", fds);
    json_object_set_new(o, "timeout", json_real(p->timeout));
    json_object_set_new(o, "kill_after", json_real(p->kill_after));
    if (p->pool)
        json_object_set_new(o, "pool", json_integer(p->pool));
    json_object_set_new(o, "publish", sp_publish_to_json(p->publish, p->n_publish));
    json_t *tp = json_array();
    for (size_t i = 0; i < p->n_tcp_ports; i++)
        json_array_append_new(tp, json_integer(p->tcp_ports[i]));
    json_object_set_new(o, "tcp_ports", tp);
    json_object_set_new(o, "net",
                        json_string(p->net == SP_NET_HOST    ? "host"
                                    : p->net == SP_NET_ALLOW ? "allow"
                                                             : "none"));
    json_t *np = p->net == SP_NET_ALLOW && p->net_proxy
                     ? json_loads(p->net_proxy, 0, NULL)
                     : NULL;
    json_object_set_new(o, "net_policy", np ? np : json_null());
    json_object_set_new(o, "net_allow_private", json_boolean(p->net_allow_private));
    json_object_set_new(o, "net_log", p->net_log ? json_string(p->net_log)
                                                 : json_null());
    json_object_set_new(o, "net_resolver", p->net_resolver
                                               ? json_string(p->net_resolver)
                                               : json_null());
    json_t *lim = json_object();
    json_object_set_new(lim, "memory", size_json(p->limits.memory));
    json_object_set_new(lim, "pids", size_json(p->limits.pids));
    json_object_set_new(lim, "cpus", json_real(p->limits.cpus));
    json_object_set_new(lim, "tmp_size", size_json(p->limits.tmp_size));
    json_object_set_new(lim, "nofile", size_json(p->limits.nofile));
    json_object_set_new(lim, "fsize", size_json(p->limits.fsize));
    json_object_set_new(lim, "disk", size_json(p->limits.disk));
    json_object_set_new(lim, "inodes", size_json(p->limits.inodes));
    json_object_set_new(o, "limits", lim);
    json_object_set_new(o, "landlock", json_boolean(p->landlock));
    json_object_set_new(o, "seccomp", json_boolean(p->seccomp));
    json_object_set_new(o, "seccomp_profile",
                        p->seccomp_profile ? json_string(p->seccomp_profile)
                                           : json_null());
    json_object_set_new(o, "allow_ptrace", json_boolean(p->allow_ptrace));
    json_object_set_new(o, "allow_system_ro",
                        json_boolean(p->allow_system_ro));
    json_t *req = json_array();
    for (size_t j = 0; j < SP_ARRAY_SIZE(layer_names); j++)
        if (p->require & (1u << j))
            json_array_append_new(req, json_string(layer_names[j]));
    json_object_set_new(o, "require", req);
    json_object_set_new(o, "stats", json_boolean(p->stats));
    json_object_set_new(o, "stats_json",
                        p->stats_json ? json_string(p->stats_json) : json_null());
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        sp_error_set(err, ENOMEM, "policy to JSON");
    return text;
}
