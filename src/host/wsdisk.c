/* wsdisk.c — a workspace's disk image and its mounts (wsdisk.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wsdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
        int t = (int)open_tree(mnt, places[i].sub,
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

static int spare_name(char *buf, size_t len, uint64_t size, uint64_t inodes)
{
    int n = snprintf(buf, len, "%" PRIu64 "-%" PRIu64 ".spare", size, inodes);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
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

int sp_ws_disk_create(int wsfd, const char *statedir, const char *name,
                      uint64_t size, uint64_t inodes, sp_error *err)
{
    (void)name;
    char spare[64];
    bool took = false;
    if (spare_name(spare, sizeof(spare), size, inodes) == 0) {
        _cleanup_close_ int dfd = open_disk_dir(statedir, false);
        took = dfd >= 0 &&
               renameat2(dfd, spare, wsfd, SP_WS_DISK_IMG, RENAME_NOREPLACE) == 0;
    }
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
    char spare[64], tmp[64];
    if (spare_name(spare, sizeof(spare), size, inodes) < 0)
        return;
    _cleanup_close_ int dfd = open_disk_dir(statedir, true);
    if (dfd < 0 || faccessat(dfd, spare, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return;
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)sp_now_us();
    snprintf(tmp, sizeof(tmp), ".tmp-%d-%08x", (int)getpid(), rnd);
    if (sp_disk_mkfs(dfd, tmp, size, inodes, NULL) < 0)
        return;
    if (renameat2(dfd, tmp, dfd, spare, RENAME_NOREPLACE) < 0)
        unlinkat(dfd, tmp, 0);
}

void sp_ws_disk_gc(const char *statedir)
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
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        /* a half-made spare after a minute; a spare after a day */
        int64_t age = now - st.st_mtime;
        if ((de->d_name[0] == '.' && age > 60) || age > 86400)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}
