/* wsdisk.c — a workspace's disk image and its mounts (wsdisk.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wsdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "loopdisk.h"
#include "state.h"
#include "util.h"
#include "layerstore.h" /* SP_WS_LAYERS */

/* The two places the image is mounted: relative to the workspace dir, and
 * the image's directory each shows. /workspace's upper dir is the image's
 * up/workspace/upper, on the same mount as its work dir (overlayfs wants
 * both on one mount); workspace/ shows the same directory to the host
 * side (diff, snapshots, files). */
static const struct {
    const char *at;
    const char *sub;
} places[] = {
    {SP_WS_LAYERS "/up", "up"},
    {SP_WS_DATA, "up/" SP_WS_DISK_WS_UPPER},
};

/* 1 when wsfd/rel is a mount of another file system than wsfd's, 0 when
 * not, < 0 when it cannot be told. */
static int mounted_at(int wsfd, const char *rel)
{
    struct stat a, b;
    if (fstat(wsfd, &a) < 0 || fstatat(wsfd, rel, &b, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return a.st_dev != b.st_dev;
}

void sp_ws_disk_release(int wsfd)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(places); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", wsfd,
                 places[i].at);
        /* stacked mounts (two racing starts) come off one by one */
        for (int k = 0; k < 4 && mounted_at(wsfd, places[i].at) == 1; k++)
            if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                break;
    }
}

static bool has_image(int wsfd)
{
    return faccessat(wsfd, SP_WS_DISK_IMG, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* mkdir -p of rel (made by sandpit: "up/workspace/upper") below dirfd,
 * never through a symlink. */
static int mkdirs_nofollow(int dirfd, const char *rel)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", rel);
    int cur = dirfd, rc = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t && rc == 0;
         t = strtok_r(NULL, "/", &save)) {
        if (mkdirat(cur, t, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        int next = openat(cur, t, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            rc = -errno;
        if (cur != dirfd)
            close(cur);
        cur = next;
    }
    if (cur >= 0 && cur != dirfd)
        close(cur);
    return rc;
}

/* Bind the two places of the image mounted at (mfd, mdir): a detached
 * mount (mdir "") or a directory; undone whole on failure. */
static int bind_places(int wsfd, int mfd, const char *mdir, sp_error *err)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(places); i++) {
        char sub[96];
        snprintf(sub, sizeof(sub), "%s%s%s", mdir, mdir[0] ? "/" : "",
                 places[i].sub);
        int t = (int)open_tree(mfd, sub,
                               OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                   AT_SYMLINK_NOFOLLOW);
        if (t < 0) {
            int e = errno;
            sp_ws_disk_release(wsfd);
            return sp_error_set(err, e, "cannot bind %s of the disk image",
                                places[i].sub);
        }
        int r = move_mount(t, "", wsfd, places[i].at,
                           MOVE_MOUNT_F_EMPTY_PATH);
        int e = errno;
        close(t);
        if (r < 0) {
            sp_ws_disk_release(wsfd);
            return sp_error_set(err, e, "cannot mount the disk image on %s",
                                places[i].at);
        }
    }
    return 0;
}

static int mount_image(int wsfd, sp_error *err)
{
    _cleanup_close_ int img = openat(wsfd, SP_WS_DISK_IMG,
                                     O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (img < 0)
        return sp_error_set(err, errno, "cannot open %s", SP_WS_DISK_IMG);
    struct stat st;
    if (fstat(img, &st) < 0 || !S_ISREG(st.st_mode))
        return sp_error_set(err, EINVAL, "%s is not a file", SP_WS_DISK_IMG);
    _cleanup_close_ int mnt = sp_disk_attach(img, "sandpit", err);
    if (mnt < 0)
        return mnt;
    for (size_t i = 0; i < SP_ARRAY_SIZE(places); i++) {
        int mr = mkdirs_nofollow(mnt, places[i].sub);
        if (mr < 0)
            return sp_error_set(err, -mr, "cannot create %s in the disk "
                                "image", places[i].sub);
    }
    return bind_places(wsfd, mnt, "", err);
}

int sp_ws_disk_ensure(int wsfd, sp_error *err)
{
    if (!has_image(wsfd))
        return 0;
    int n = 0;
    for (size_t i = 0; i < SP_ARRAY_SIZE(places); i++)
        n += mounted_at(wsfd, places[i].at) == 1;
    if (n == (int)SP_ARRAY_SIZE(places))
        return 0;
    if (n)
        sp_ws_disk_release(wsfd); /* half mounted: start over */
    return mount_image(wsfd, err);
}

static int open_disk_dir(const char *statedir, bool create)
{
    char path[SP_MAX_PATH + 16];
    snprintf(path, sizeof(path), "%s/%s", statedir, SP_DISK_DIR);
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* The spare image of a limit and the directory it waits mounted on. */
static int spare_name(char *buf, size_t len, uint64_t size, uint64_t inodes)
{
    int n = snprintf(buf, len, "%" PRIu64 "-%" PRIu64 ".spare", size, inodes);
    return n > 0 && (size_t)n + 2 < len ? 0 : -ENAMETOOLONG;
}

/* Undo a spare's mount (if any) and remove its directory. */
static void spare_dir_drop(int dfd, const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, dir);
    for (int k = 0; k < 4 && mounted_at(dfd, dir) == 1; k++)
        if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            break;
    unlinkat(dfd, dir, AT_REMOVEDIR);
}

/* Take the spare image of this limit as wsfd/disk.img: 0 when there is
 * none, 1 when it came mounted (its places bound, its waiting mount
 * gone), 2 when it came without a mount (made by an older sandpit, or
 * its mount gone with a reboot). */
static int spare_take(int wsfd, const char *statedir, uint64_t size,
                      uint64_t inodes)
{
    char spare[64], dir[72];
    if (spare_name(spare, sizeof(spare), size, inodes) < 0)
        return 0;
    snprintf(dir, sizeof(dir), "%s.d", spare);
    _cleanup_close_ int dfd = open_disk_dir(statedir, false);
    if (dfd < 0 ||
        renameat2(dfd, spare, wsfd, SP_WS_DISK_IMG, RENAME_NOREPLACE) < 0)
        return 0;
    /* The image is ours now (the rename is the claim); its mount is the
     * one on dir only if the loop device under it backs this very file. */
    struct stat st;
    _cleanup_close_ int img = openat(wsfd, SP_WS_DISK_IMG,
                                     O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    bool ok = img >= 0 && mounted_at(dfd, dir) == 1 &&
              fstatat(dfd, dir, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              sp_disk_backs(st.st_dev, img) == 1 &&
              bind_places(wsfd, dfd, dir, NULL) == 0;
    spare_dir_drop(dfd, dir);
    return ok ? 1 : 2;
}


int sp_ws_disk_create(int wsfd, const char *statedir, const char *name,
                      uint64_t size, uint64_t inodes, sp_error *err)
{
    (void)name;
    /* A spare waits formatted and mounted: two binds, no mkfs, no mount
     * (the ext4 mount alone is about 5 ms: its superblock write is a
     * flush of the image file). */
    int took = spare_take(wsfd, statedir, size, inodes);
    if (took == 1)
        return 0;
    int r;
    if (!took && (r = sp_disk_mkfs(wsfd, SP_WS_DISK_IMG, size, inodes, err)) < 0)
        return r;
    if ((r = mount_image(wsfd, err)) < 0) {
        unlinkat(wsfd, SP_WS_DISK_IMG, 0);
        return r;
    }
    return 0;
}

int sp_ws_disk_usage(int wsfd, struct sp_ws_disk_usage *u)
{
    memset(u, 0, sizeof(*u));
    if (!has_image(wsfd))
        return 0;
    if (mounted_at(wsfd, SP_WS_DATA) != 1)
        return 2; /* not mounted now (stopped and reaped by gc) */
    _cleanup_close_ int fd = openat(wsfd, SP_WS_DATA,
                                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                        O_CLOEXEC);
    struct statvfs sv;
    if (fd < 0 || fstatvfs(fd, &sv) < 0)
        return -errno;
    u->size = (uint64_t)sv.f_blocks * sv.f_frsize;
    u->used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    u->inodes = sv.f_files;
    u->inodes_used = sv.f_files - sv.f_ffree;
    return 1;
}

void sp_ws_disk_make_spare(const char *statedir, uint64_t size,
                           uint64_t inodes)
{
    char spare[64], tmp[64], dir[72];
    if (spare_name(spare, sizeof(spare), size, inodes) < 0)
        return;
    snprintf(dir, sizeof(dir), "%s.d", spare);
    _cleanup_close_ int dfd = open_disk_dir(statedir, true);
    if (dfd < 0 || faccessat(dfd, spare, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return;
    /* The directory is the maker's claim: one spare per limit. */
    if (mkdirat(dfd, dir, 0700) < 0)
        return;
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)sp_now_us();
    snprintf(tmp, sizeof(tmp), ".tmp-%d-%08x", (int)getpid(), rnd);
    if (sp_disk_mkfs(dfd, tmp, size, inodes, NULL) < 0) {
        unlinkat(dfd, dir, AT_REMOVEDIR);
        return;
    }
    /* Mounted now, while no one waits: a create then only binds. */
    int img = openat(dfd, tmp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    int mnt = img >= 0 ? sp_disk_attach(img, "sandpit", NULL) : -1;
    bool ok = mnt >= 0;
    for (size_t i = 0; ok && i < SP_ARRAY_SIZE(places); i++)
        ok = mkdirs_nofollow(mnt, places[i].sub) == 0;
    ok = ok && move_mount(mnt, "", dfd, dir, MOVE_MOUNT_F_EMPTY_PATH) == 0;
    if (mnt >= 0)
        close(mnt);
    if (img >= 0)
        close(img);
    if (!ok || renameat2(dfd, tmp, dfd, spare, RENAME_NOREPLACE) < 0) {
        spare_dir_drop(dfd, dir);
        unlinkat(dfd, tmp, 0);
    }
}

void sp_ws_disk_gc(const char *statedir, bool all)
{
    int dfd = open_disk_dir(statedir, false);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    int64_t now = sp_unix_now();
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' &&
            (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        /* a half-made spare after a minute; a spare after a day; a
         * spare's mount once its image is gone (taken or dropped) */
        int64_t age = now - st.st_mtime;
        size_t l = strlen(de->d_name);
        if (S_ISDIR(st.st_mode) && l > 2 &&
            strcmp(de->d_name + l - 2, ".d") == 0) {
            char img[NAME_MAX + 1];
            snprintf(img, sizeof(img), "%.*s", (int)(l - 2), de->d_name);
            if (all || (age > 60 && faccessat(dirfd(d), img, F_OK,
                                              AT_SYMLINK_NOFOLLOW) < 0))
                spare_dir_drop(dirfd(d), de->d_name);
        } else if (S_ISREG(st.st_mode) &&
                   (all || (de->d_name[0] == '.' && age > 60) ||
                    age > 86400)) {
            unlinkat(dirfd(d), de->d_name, 0);
        }
    }
    closedir(d);
}
