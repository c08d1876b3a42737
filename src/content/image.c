/* image.c — the image store: import an OCI image layout or a docker-save
 * archive, verify every blob against its sha256 digest, unpack its layers
 * once (with the archive module's safety rules) and flatten them into one
 * shared read-only tree; list, resolve and remove (docs/images.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandpit.h"
#include "sha256.h"
#include "sp_archive.h"
#include "state.h"
#include "util.h"

#define USAGE(...) sp_error_setk(err, SP_ERR_USAGE, EINVAL, __VA_ARGS__)

/* Open path beneath dirfd, never following a symlink or magic link. */
static int open_beneath(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

/* $SANDPIT_STATE/images (made with refs/, trees/, tmp/) into buf. */
static int images_dir(char *buf, size_t len, sp_error *err)
{
    char st[SP_MAX_PATH];
    int r = sp_state_dir(st, sizeof(st), err);
    if (r < 0)
        return r;
    if (snprintf(buf, len, "%s/%s", st, SP_IMAGES_DIR) >= (int)len)
        return sp_error_setk(err, SP_ERR_USAGE, ENAMETOOLONG,
                             "state directory %s", st);
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return sp_error_set(err, errno, "cannot create %s", buf);
    static const char *const sub[] = {"refs", "trees", "tmp"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(sub); i++) {
        char p[SP_MAX_PATH + 16];
        snprintf(p, sizeof(p), "%s/%s", buf, sub[i]);
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return sp_error_set(err, errno, "cannot create %s", p);
    }
    return 0;
}

static int images_lock(const char *dir, sp_error *err)
{
    char p[SP_MAX_PATH + 8];
    snprintf(p, sizeof(p), "%s/lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open %s", p);
    if (flock(fd, LOCK_EX) < 0) {
        int e = errno;
        close(fd);
        return sp_error_set(err, e, "cannot lock %s", p);
    }
    return fd;
}

/* The image store's dir (into dir) and its lock (the returned fd). */
static int images_open_locked(char *dir, size_t len, sp_error *err)
{
    int r = images_dir(dir, len, err);
    return r < 0 ? r : images_lock(dir, err);
}

/* Read a small regular file beneath dirfd (bounded) into a NUL-ended buffer. */
static int read_small(int dirfd, const char *path, size_t max, char **ret,
                      size_t *ret_len, sp_error *err)
{
    _cleanup_close_ int fd = open_beneath(dirfd, path, O_RDONLY);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, -fd, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return USAGE("%s is not a regular file", path);
    if ((uint64_t)st.st_size > max)
        return USAGE("%s is larger than %zu bytes", path, max);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return sp_error_set(err, ENOMEM, "%s", path);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            return sp_error_set(err, e, "reading %s", path);
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *ret = buf;
    *ret_len = got;
    return 0;
}

static int hash_fd(int fd, char hex[65])
{
    struct sp_sha256 c;
    sp_sha256_init(&c);
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        sp_sha256_update(&c, buf, (size_t)n);
    }
    sp_sha256_hex(&c, hex);
    return lseek(fd, 0, SEEK_SET) < 0 ? -errno : 0;
}

/* Open path beneath dirfd, check its bytes hash to want_hex; the fd is
 * returned at offset 0. */
static int open_verified(int dirfd, const char *path, const char *want_hex,
                         sp_error *err)
{
    _cleanup_close_ int fd = open_beneath(dirfd, path, O_RDONLY);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, -fd, "missing blob %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return USAGE("blob %s is not a regular file", path);
    char hex[65];
    int r = hash_fd(fd, hex);
    if (r < 0)
        return sp_error_set(err, -r, "reading %s", path);
    if (strcmp(hex, want_hex) != 0)
        return USAGE("digest mismatch: %s has sha256:%s, expected sha256:%s",
                     path, hex, want_hex);
    return TAKE_FD(fd);
}

static int read_verified(int dirfd, const char *path, const char *want_hex,
                         char **ret, size_t *ret_len, sp_error *err)
{
    int fd = open_verified(dirfd, path, want_hex, err);
    if (fd < 0)
        return fd;
    close(fd);
    /* Small documents: read again after the check; a change in between is
     * caught by hashing what was read. */
    int r = read_small(dirfd, path, SP_IMAGE_JSON_MAX, ret, ret_len, err);
    if (r < 0)
        return r;
    struct sp_sha256 c;
    char hex[65];
    sp_sha256_init(&c);
    sp_sha256_update(&c, *ret, *ret_len);
    sp_sha256_hex(&c, hex);
    if (strcmp(hex, want_hex) != 0) {
        free(*ret);
        *ret = NULL;
        return USAGE("%s changed while it was read", path);
    }
    return 0;
}

static int blob_path(const char *digest, char *buf, size_t len)
{
    return snprintf(buf, len, "blobs/sha256/%s", digest + 7) >= (int)len
               ? -ENAMETOOLONG
               : 0;
}

/* ---- flattening layers ------------------------------------------------ */

static bool is_dir_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISDIR(st.st_mode);
}

static int list_names(int dirfd, char ***ret, size_t *n)
{
    int dup = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup < 0)
        return -errno;
    DIR *d = fdopendir(dup);
    if (!d) {
        close(dup);
        return -errno;
    }
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[cnt] = strdup(de->d_name))) {
            r = -ENOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (r < 0) {
        for (size_t i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return r;
    }
    *ret = v;
    *n = cnt;
    return 0;
}

static void names_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#define WH ".wh."
#define WH_OPQ ".wh..wh..opq"

/* Drop every whiteout marker below dirfd (a directory new in this layer
 * has nothing below it to hide). */
static int strip_wh(int dirfd, unsigned depth)
{
    if (depth > SP_ARCHIVE_DEF_MAX_DEPTH + 1)
        return -ELOOP;
    char **names = NULL;
    size_t n = 0;
    int r = list_names(dirfd, &names, &n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (strncmp(names[i], WH, 4) == 0) {
            r = sp_rm_rf_at(dirfd, names[i]);
        } else if (is_dir_at(dirfd, names[i])) {
            int sub = openat(dirfd, names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = sub < 0 ? -errno : strip_wh(sub, depth + 1);
            if (sub >= 0)
                close(sub);
        }
    }
    names_free(names, n);
    return r;
}

/* Apply the layer tree lfd onto the tree tfd: an opaque marker empties
 * the directory first, ".wh.NAME" removes NAME, a directory present in
 * both is merged, anything else replaces what was there (moved, not
 * copied: the layer directory is staging and is consumed). */
static int merge(int lfd, int tfd, unsigned depth)
{
    if (depth > SP_ARCHIVE_DEF_MAX_DEPTH + 1)
        return -ELOOP;
    char **names = NULL;
    size_t n = 0;
    int r = list_names(lfd, &names, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (strcmp(names[i], WH_OPQ) == 0) {
            char **old = NULL;
            size_t no = 0;
            r = list_names(tfd, &old, &no);
            for (size_t k = 0; r == 0 && k < no; k++)
                r = sp_rm_rf_at(tfd, old[k]);
            names_free(old, no);
        }
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        const char *nm = names[i];
        if (strcmp(nm, WH_OPQ) == 0)
            continue;
        if (strncmp(nm, WH, 4) == 0) {
            const char *victim = nm + 4;
            if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
                continue;
            r = sp_rm_rf_at(tfd, victim);
            continue;
        }
        if (is_dir_at(lfd, nm) && is_dir_at(tfd, nm)) {
            int ls = openat(lfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int ts = openat(tfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (ls < 0 || ts < 0) {
                r = -errno;
            } else {
                r = merge(ls, ts, depth + 1);
                struct stat st;
                if (r == 0 && fstat(ls, &st) == 0)
                    (void)fchmod(ts, st.st_mode & 07777);
            }
            if (ls >= 0)
                close(ls);
            if (ts >= 0)
                close(ts);
            continue;
        }
        if ((r = sp_rm_rf_at(tfd, nm)) < 0)
            break;
        if (is_dir_at(lfd, nm)) {
            int ls = openat(lfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = ls < 0 ? -errno : strip_wh(ls, depth + 1);
            if (ls >= 0)
                close(ls);
            if (r < 0)
                break;
        }
        if (renameat(lfd, nm, tfd, nm) < 0)
            r = -errno;
    }
    names_free(names, n);
    return r;
}

/* Unpack the layer read from fd into staging/<tmpname> and fold it into
 * the tree. */
static int apply_layer(int stfd, int treefd, int fd, size_t idx,
                       sp_error *err)
{
    char nm[32];
    snprintf(nm, sizeof(nm), "layer%zu", idx);
    if (mkdirat(stfd, nm, 0700) < 0)
        return sp_error_set(err, errno, "cannot create a staging directory");
    _cleanup_close_ int lfd =
        openat(stfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0)
        return sp_error_set(err, errno, "cannot open a staging directory");
    /* A hard link may name a file of an earlier layer: it is looked up in
     * the tree flattened so far (which shares the staging file system). */
    int r = sp_archive_extract_layer(fd, lfd, treefd, NULL,
                                     SP_ARCHIVE_OVERWRITE, NULL, err);
    if (r < 0)
        return sp_error_prefix(err, "layer %zu", idx + 1);
    r = merge(lfd, treefd, 0);
    if (r < 0)
        return sp_error_set(err, -r, "applying layer %zu", idx + 1);
    r = sp_rm_rf_at(stfd, nm);
    return r < 0 ? sp_error_set(err, -r, "removing layer %zu's staging", idx + 1)
                 : 0;
}

/* ---- import ------------------------------------------------------------ */

struct import {
    int layoutfd;
    int stfd;
    const char *want;          /* the --name, to pick among several images */
    char ref[SP_IMAGE_NAME_MAX + 1];
    char cfg_hex[65];
    char manifest[SP_DIGEST_LEN];
    struct sp_image_config cfg;
    int *layer_fds;
    size_t n_layers;
};

static int import_oci(struct import *im, sp_error *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    char digest[SP_DIGEST_LEN], path[128];
    bool is_index = false;
    int r = read_small(im->layoutfd, "index.json", SP_IMAGE_JSON_MAX, &buf,
                       &len, err);
    if (r < 0)
        return r;
    if ((r = sp_image_parse_index(buf, len, im->want, digest, &is_index,
                                  im->ref, err)) < 0)
        return r;
    if (is_index) { /* one level of nesting: a multi-platform image */
        free(TAKE_PTR(buf));
        blob_path(digest, path, sizeof(path));
        if ((r = read_verified(im->layoutfd, path, digest + 7, &buf, &len,
                               err)) < 0)
            return r;
        if ((r = sp_image_parse_index(buf, len, NULL, digest, &is_index, NULL,
                                      err)) < 0)
            return r;
        if (is_index)
            return USAGE("index: nested more than two levels deep");
        free(TAKE_PTR(buf));
    } else {
        free(TAKE_PTR(buf));
    }
    snprintf(im->manifest, sizeof(im->manifest), "%s", digest);
    blob_path(digest, path, sizeof(path));
    if ((r = read_verified(im->layoutfd, path, digest + 7, &buf, &len, err)) < 0)
        return r;
    struct sp_image_manifest m;
    if ((r = sp_image_parse_manifest(buf, len, &m, err)) < 0)
        return r;
    free(TAKE_PTR(buf));
    memcpy(im->cfg_hex, m.config + 7, 64);
    im->cfg_hex[64] = '\0';
    blob_path(m.config, path, sizeof(path));
    r = read_verified(im->layoutfd, path, im->cfg_hex, &buf, &len, err);
    if (r == 0)
        r = sp_image_parse_config(buf, len, &im->cfg, err);
    if (r == 0 && im->cfg.n_diff_ids && im->cfg.n_diff_ids != m.n_layers)
        r = USAGE("config lists %zu diff_ids for %zu layers",
                  im->cfg.n_diff_ids, m.n_layers);
    if (r == 0 && !(im->layer_fds = calloc(m.n_layers + 1, sizeof(int))))
        r = sp_error_set(err, ENOMEM, "layers");
    for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
        blob_path(m.layers[i], path, sizeof(path));
        int fd = open_verified(im->layoutfd, path, m.layers[i] + 7, err);
        if (fd < 0)
            r = fd;
        else
            im->layer_fds[im->n_layers++] = fd;
    }
    sp_image_manifest_free(&m);
    return r;
}

/* The hex digest a docker-save config file name carries. */
static int docker_cfg_hex(const char *name, char hex[65])
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(base);
    if (n == 64 + 5 && strcmp(base + 64, ".json") == 0)
        n = 64;
    if (n != 64)
        return -EINVAL;
    char d[SP_DIGEST_LEN];
    snprintf(d, sizeof(d), "sha256:%.64s", base);
    if (!sp_image_digest_valid(d))
        return -EINVAL;
    memcpy(hex, base, 64);
    hex[64] = '\0';
    return 0;
}

static int import_docker(struct import *im, sp_error *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    struct sp_image_docker d;
    int r = read_small(im->layoutfd, "manifest.json", SP_IMAGE_JSON_MAX, &buf,
                       &len, err);
    if (r < 0)
        return r;
    if ((r = sp_image_parse_docker(buf, len, im->want, &d, err)) < 0)
        return r;
    free(TAKE_PTR(buf));
    if (d.tag)
        snprintf(im->ref, sizeof(im->ref), "%s", d.tag);
    if (docker_cfg_hex(d.config, im->cfg_hex) < 0) {
        r = USAGE("manifest.json: config file name %.100s does not carry its "
                  "sha256 digest", d.config);
        goto out;
    }
    snprintf(im->manifest, sizeof(im->manifest), "sha256:%s", im->cfg_hex);
    if ((r = read_verified(im->layoutfd, d.config, im->cfg_hex, &buf, &len,
                           err)) < 0 ||
        (r = sp_image_parse_config(buf, len, &im->cfg, err)) < 0)
        goto out;
    if (im->cfg.n_diff_ids != d.n_layers) {
        r = USAGE("config lists %zu diff_ids for %zu layers",
                  im->cfg.n_diff_ids, d.n_layers);
        goto out;
    }
    if (!(im->layer_fds = calloc(d.n_layers + 1, sizeof(int)))) {
        r = sp_error_set(err, ENOMEM, "layers");
        goto out;
    }
    /* docker save writes layers uncompressed: each hashes to its diff_id. */
    for (size_t i = 0; i < d.n_layers; i++) {
        int fd = open_verified(im->layoutfd, d.layers[i],
                               im->cfg.diff_ids[i] + 7, err);
        if (fd < 0) {
            r = fd;
            goto out;
        }
        im->layer_fds[im->n_layers++] = fd;
    }
out:
    sp_image_docker_free(&d);
    return r;
}

static json_t *strv_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int write_ref(const char *dir, const char *name, const struct import *im,
                     sp_error *err)
{
    json_t *c = json_object();
    json_object_set_new(c, "Env", strv_json(im->cfg.env, im->cfg.n_env));
    json_object_set_new(c, "Cmd", strv_json(im->cfg.argv, im->cfg.n_argv));
    if (im->cfg.workdir)
        json_object_set_new(c, "WorkingDir", json_string(im->cfg.workdir));
    if (im->cfg.user)
        json_object_set_new(c, "User", json_string(im->cfg.user));
    json_t *o = json_object();
    char digest[SP_DIGEST_LEN], tree[80];
    snprintf(digest, sizeof(digest), "sha256:%s", im->cfg_hex);
    snprintf(tree, sizeof(tree), "trees/%s", im->cfg_hex);
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "digest", json_string(digest));
    json_object_set_new(o, "manifest", json_string(im->manifest));
    json_object_set_new(o, "rootfs", json_string(tree));
    json_object_set_new(o, "layers", json_integer((json_int_t)im->n_layers));
    json_object_set_new(o, "imported", json_integer(sp_unix_now()));
    json_object_set_new(o, "image_config", json_pack("{s:o}", "config", c));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return sp_error_set(err, ENOMEM, "image ref");
    char tmp[SP_MAX_PATH + 300], fin[SP_MAX_PATH + 300];
    snprintf(tmp, sizeof(tmp), "%s/refs/.%s.tmp", dir, name);
    snprintf(fin, sizeof(fin), "%s/refs/%s.json", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  0600);
    int r = 0;
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
        r = sp_error_set(err, errno ? errno : EIO, "cannot write %s", tmp);
    if (fd >= 0)
        close(fd);
    free(text);
    if (r == 0 && rename(tmp, fin) < 0)
        r = sp_error_set(err, errno, "cannot write %s", fin);
    if (r < 0)
        unlink(tmp);
    return r;
}

SP_EXPORT int sp_image_import(const char *src, const char *name,
                              char *ret_name, size_t ret_len, sp_error *err)
{
    if (name && !sp_image_name_valid(name))
        return USAGE("image name \"%.140s\" is not valid "
                     "([a-z0-9][a-z0-9._:-]{0,127})", name);
    char dir[SP_MAX_PATH];
    _cleanup_close_ int lock = images_open_locked(dir, sizeof(dir), err);
    if (lock < 0)
        return lock;
    int r;
    char staging[SP_MAX_PATH + 64];
    snprintf(staging, sizeof(staging), "%s/tmp/import-XXXXXX", dir);
    if (!mkdtemp(staging))
        return sp_error_set(err, errno, "cannot create a staging directory");
    struct import im = {.layoutfd = -1, .want = name};
    char *base = strrchr(staging, '/') + 1;
    _cleanup_close_ int tmpfd = -1, srcfd = -1;
    im.stfd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    tmpfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (im.stfd < 0 || tmpfd < 0) {
        r = sp_error_set(err, errno, "cannot open %s", staging);
        goto out;
    }
    srcfd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (srcfd < 0 || fstat(srcfd, &st) < 0) {
        r = sp_error_setk(err, SP_ERR_USAGE, errno, "cannot open %s", src);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        im.layoutfd = TAKE_FD(srcfd);
    } else if (S_ISREG(st.st_mode)) {
        if (mkdirat(im.stfd, "in", 0700) < 0 ||
            (im.layoutfd = openat(im.stfd, "in", O_RDONLY | O_DIRECTORY |
                                                    O_NOFOLLOW | O_CLOEXEC)) < 0) {
            r = sp_error_set(err, errno, "cannot create a staging directory");
            goto out;
        }
        if ((r = sp_archive_extract(srcfd, im.layoutfd, NULL, 0, NULL, err)) < 0) {
            sp_error_prefix(err, "%s", src);
            goto out;
        }
    } else {
        r = USAGE("%s is neither a directory nor an archive file", src);
        goto out;
    }
    if (faccessat(im.layoutfd, "oci-layout", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
        faccessat(im.layoutfd, "index.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        r = import_oci(&im, err);
    else if (faccessat(im.layoutfd, "manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        r = import_docker(&im, err);
    else
        r = USAGE("%s is neither an OCI image layout (oci-layout, index.json) "
                  "nor a docker-save archive (manifest.json)", src);
    if (r < 0)
        goto out;
    const char *final = name ? name : im.ref[0] ? im.ref : NULL;
    if (!final) {
        r = USAGE("%s names no image (no ref name or RepoTags): pass --name NAME",
                  src);
        goto out;
    }
    char tree[80];
    snprintf(tree, sizeof(tree), "trees/%s", im.cfg_hex);
    if (!is_dir_at(tmpfd, tree)) {
        if (mkdirat(im.stfd, "tree", 0755) < 0) {
            r = sp_error_set(err, errno, "cannot create a staging directory");
            goto out;
        }
        _cleanup_close_ int treefd = openat(im.stfd, "tree", O_RDONLY | O_DIRECTORY |
                                                             O_NOFOLLOW | O_CLOEXEC);
        if (treefd < 0) {
            r = sp_error_set(err, errno, "cannot open the staging tree");
            goto out;
        }
        for (size_t i = 0; i < im.n_layers; i++)
            if ((r = apply_layer(im.stfd, treefd, im.layer_fds[i], i, err)) < 0)
                goto out;
        (void)fchmod(treefd, 0755);
        if (renameat(im.stfd, "tree", tmpfd, tree) < 0 && errno != EEXIST &&
            errno != ENOTEMPTY) {
            r = sp_error_set(err, errno, "cannot move the image tree into place");
            goto out;
        }
    }
    if ((r = write_ref(dir, final, &im, err)) < 0)
        goto out;
    if (ret_name && ret_len)
        snprintf(ret_name, ret_len, "%s", final);
out:
    for (size_t i = 0; i < im.n_layers; i++)
        close(im.layer_fds[i]);
    free(im.layer_fds);
    sp_image_config_free(&im.cfg);
    if (im.layoutfd >= 0)
        close(im.layoutfd);
    if (im.stfd >= 0)
        close(im.stfd);
    _cleanup_close_ int tdir = -1;
    char tmpdir[SP_MAX_PATH + 8];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", dir);
    tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tdir >= 0)
        (void)sp_rm_rf_at(tdir, base);
    return r;
}

/* ---- refs ---------------------------------------------------------------- */

static int load_ref(const char *dir, const char *name, json_t **ret,
                    sp_error *err)
{
    if (!sp_image_name_valid(name))
        return USAGE("image name \"%.140s\" is not valid", name);
    char p[SP_IMAGE_NAME_MAX + 16];
    snprintf(p, sizeof(p), "refs/%s.json", name);
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sp_error_set(err, errno, "cannot open %s", dir);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    _cleanup_close_ int probe = open_beneath(dfd, p, O_RDONLY);
    if (probe == -ENOENT)
        return sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                             "no image named \"%s\" (sandpit image ls)", name);
    int r = read_small(dfd, p, SP_IMAGE_JSON_MAX, &buf, &len, err);
    if (r < 0)
        return r;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    const char *root = json_string_value(json_object_get(j, "rootfs"));
    char d[SP_DIGEST_LEN + 8];
    snprintf(d, sizeof(d), "sha256:%s", root && strlen(root) == 70 ? root + 6 : "");
    if (!j || !root || strncmp(root, "trees/", 6) != 0 || !sp_image_digest_valid(d)) {
        json_decref(j);
        return sp_error_set(err, EINVAL, "image ref %s is damaged", p);
    }
    *ret = j;
    return 0;
}

int sp_image_resolve(const char *name, struct sp_image_ref *ret,
                               sp_error *err)
{
    memset(ret, 0, sizeof(*ret));
    char dir[SP_MAX_PATH];
    int r = images_dir(dir, sizeof(dir), err);
    if (r < 0)
        return r;
    json_t *j = NULL;
    if ((r = load_ref(dir, name, &j, err)) < 0)
        return r;
    const char *root = json_string_value(json_object_get(j, "rootfs"));
    char *cfg = json_dumps(json_object_get(j, "image_config"), 0);
    if (asprintf(&ret->rootfs, "%s/%s", dir, root) < 0)
        ret->rootfs = NULL;
    snprintf(ret->digest, sizeof(ret->digest), "sha256:%s", root + 6);
    json_decref(j);
    if (!cfg || !ret->rootfs) {
        free(cfg);
        sp_image_ref_free(ret);
        return sp_error_set(err, ENOMEM, "image %s", name);
    }
    r = sp_image_parse_config(cfg, strlen(cfg), &ret->cfg, err);
    free(cfg);
    struct stat st;
    if (r == 0 && (stat(ret->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
        r = sp_error_set(err, ENOENT, "image %s: its tree %s is missing", name,
                         ret->rootfs);
    if (r < 0)
        sp_image_ref_free(ret);
    return r;
}

void sp_image_ref_free(struct sp_image_ref *r)
{
    if (!r)
        return;
    free(r->rootfs);
    sp_image_config_free(&r->cfg);
    memset(r, 0, sizeof(*r));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

SP_EXPORT char *sp_image_list_json(sp_error *err)
{
    char dir[SP_MAX_PATH], refs[SP_MAX_PATH + 8];
    if (images_dir(dir, sizeof(dir), err) < 0)
        return NULL;
    snprintf(refs, sizeof(refs), "%s/refs", dir);
    _cleanup_close_ int rfd = open(refs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char **names = NULL;
    size_t n = 0;
    int r = rfd < 0 ? -errno : list_names(rfd, &names, &n);
    if (r < 0) {
        sp_error_set(err, -r, "cannot read %s", refs);
        return NULL;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l < 6 || strcmp(names[i] + l - 5, ".json") != 0 || names[i][0] == '.')
            continue;
        names[i][l - 5] = '\0';
        json_t *j = NULL;
        sp_error e2 = {0};
        if (load_ref(dir, names[i], &j, &e2) < 0)
            continue;
        json_t *o = json_object();
        json_object_set(o, "name", json_object_get(j, "name"));
        json_object_set(o, "digest", json_object_get(j, "digest"));
        json_object_set(o, "layers", json_object_get(j, "layers"));
        json_object_set(o, "imported", json_object_get(j, "imported"));
        json_array_append_new(a, o);
        json_decref(j);
    }
    names_free(names, n);
    char *text = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(a);
    if (!text)
        sp_error_set(err, ENOMEM, "image list");
    return text;
}

/* The workspaces whose stored policy names this image or its tree: their
 * names, comma-separated, into buf (empty: none). */
static void users_of(const char *name, const char *tree, char *buf, size_t len)
{
    buf[0] = '\0';
    char st[SP_MAX_PATH], wsd[SP_MAX_PATH + 16];
    sp_error e = {0};
    if (sp_state_dir(st, sizeof(st), &e) < 0)
        return;
    snprintf(wsd, sizeof(wsd), "%s/%s", st, SP_WS_DIR);
    _cleanup_close_ int dfd = open(wsd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char **names = NULL;
    size_t n = 0;
    if (dfd < 0 || list_names(dfd, &names, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int wfd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                            O_CLOEXEC);
        if (wfd < 0)
            continue;
        struct sp_ws_state ws = {0};
        if (sp_state_read(wfd, &ws, &e) == 0) {
            const char *im = json_string_value(json_object_get(ws.policy, "image"));
            const char *rf = json_string_value(json_object_get(ws.policy, "rootfs"));
            if ((im && strcmp(im, name) == 0) || (rf && strcmp(rf, tree) == 0)) {
                size_t u = strlen(buf);
                snprintf(buf + u, len - u, "%s%s", u ? ", " : "", names[i]);
            }
            sp_state_free(&ws);
        }
        close(wfd);
    }
    names_free(names, n);
}

SP_EXPORT int sp_image_rm(const char *name, sp_error *err)
{
    char dir[SP_MAX_PATH];
    _cleanup_close_ int lock = images_open_locked(dir, sizeof(dir), err);
    if (lock < 0)
        return lock;
    int r;
    json_t *j = NULL;
    if ((r = load_ref(dir, name, &j, err)) < 0)
        return r;
    char tree[SP_MAX_PATH + 80], rel[80];
    snprintf(rel, sizeof(rel), "%s", json_string_value(json_object_get(j, "rootfs")));
    json_decref(j);
    snprintf(tree, sizeof(tree), "%s/%s", dir, rel);
    char users[1024];
    users_of(name, tree, users, sizeof(users));
    if (users[0])
        return sp_error_setk(err, SP_ERR_USAGE, EBUSY,
                             "image %s is used by workspace %s (remove it "
                             "first)", name, users);
    char p[SP_MAX_PATH + 200];
    snprintf(p, sizeof(p), "%s/refs/%s.json", dir, name);
    if (unlink(p) < 0)
        return sp_error_set(err, errno, "cannot remove %s", p);
    /* The tree goes with the last name that uses it. */
    char *list = sp_image_list_json(err);
    json_t *a = list ? json_loads(list, 0, NULL) : NULL;
    free(list);
    bool shared = false;
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
        const char *d = json_string_value(json_object_get(o, "digest"));
        shared |= d && strcmp(d + 7, rel + 6) == 0;
    }
    json_decref(a);
    if (!shared) {
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || (r = sp_rm_rf_at(dfd, rel)) < 0)
            return sp_error_set(err, dfd < 0 ? errno : -r, "cannot remove %s", tree);
    }
    return 0;
}

/* ---- User ------------------------------------------------------------------ */

/* Find `key` in field 0 of a passwd/group-format file beneath rootfs;
 * return fields 2 (and 3) as numbers. */
static int lookup_db(int rootfd, const char *file, const char *key,
                     unsigned *a, unsigned *b)
{
    char *buf = NULL;
    size_t len = 0;
    sp_error e = {0};
    if (read_small(rootfd, file, SP_IMAGE_MAX_PASSWD, &buf, &len, &e) < 0)
        return -ENOENT;
    int r = -ENOENT;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        char *c = line;
        for (int k = 0; k < 4 && c; k++) {
            f[k] = c;
            c = strchr(c, ':');
            if (c)
                *c++ = '\0';
        }
        if (!f[0] || strcmp(f[0], key) != 0 || !f[2])
            continue;
        uint64_t u = 0, g = 0;
        if (sp_parse_uint(f[2], 65534, &u) < 0)
            continue;
        *a = (unsigned)u;
        if (b && f[3] && sp_parse_uint(f[3], 65534, &g) == 0)
            *b = (unsigned)g;
        r = 0;
        break;
    }
    free(buf);
    return r;
}

int sp_image_user(const char *rootfs, const char *user, unsigned *uid,
                  unsigned *gid, sp_error *err)
{
    char u[260], *g;
    snprintf(u, sizeof(u), "%s", user);
    if ((g = strchr(u, ':')))
        *g++ = '\0';
    _cleanup_close_ int rfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return sp_error_set(err, errno, "cannot open %s", rootfs);
    uint64_t v;
    unsigned pg = 0;
    if (sp_parse_uint(u, 65534, &v) == 0)
        *uid = (unsigned)v;
    else if (lookup_db(rfd, "etc/passwd", u, uid, &pg) < 0)
        return USAGE("image user \"%.100s\" is not in the image's /etc/passwd", u);
    *gid = pg;
    if (g && *g) {
        if (sp_parse_uint(g, 65534, &v) == 0)
            *gid = (unsigned)v;
        else if (lookup_db(rfd, "etc/group", g, gid, NULL) < 0)
            return USAGE("image group \"%.100s\" is not in the image's "
                         "/etc/group", g);
    }
    return 0;
}
