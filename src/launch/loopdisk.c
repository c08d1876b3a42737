/* loopdisk.c — ext4 images on loop devices (loopdisk.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "loopdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static const char *const mkfs_paths[] = {"/usr/sbin/mkfs.ext4",
                                         "/sbin/mkfs.ext4"};

static const char *find_mkfs(void)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(mkfs_paths); i++)
        if (access(mkfs_paths[i], X_OK) == 0)
            return mkfs_paths[i];
    return NULL;
}

static bool kernel_has_ext4(void)
{
    FILE *f = fopen("/proc/filesystems", "re");
    if (!f)
        return false;
    char line[128];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *t = strrchr(line, '\t');
        found = strcmp(t ? t + 1 : line, "ext4") == 0;
    }
    fclose(f);
    return found;
}

int sp_disk_probe(char *why, size_t len)
{
    static int cached = -1;
    static char reason[160];
    if (cached < 0) {
        int fd = -1;
        if (geteuid() != 0)
            snprintf(reason, sizeof(reason),
                     "an ordinary user cannot attach loop devices or mount "
                     "ext4, and this host offers no other mechanism");
        else if ((fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0)
            snprintf(reason, sizeof(reason), "/dev/loop-control: %s",
                     strerror(errno));
        else if (!kernel_has_ext4())
            snprintf(reason, sizeof(reason), "the kernel has no ext4");
        else if (!find_mkfs())
            snprintf(reason, sizeof(reason),
                     "mkfs.ext4 is not installed (package e2fsprogs)");
        else
            reason[0] = '\0';
        if (fd >= 0)
            close(fd);
        cached = reason[0] == '\0';
    }
    if (!cached && why && len)
        snprintf(why, len, "%s", reason);
    return cached;
}

int sp_disk_mkfs(int dirfd, const char *name, uint64_t size, uint64_t inodes,
                 sp_error *err)
{
    const char *mkfs = find_mkfs();
    if (!mkfs)
        return sp_error_set(err, ENOENT, "mkfs.ext4 is not installed");
    int fd = openat(dirfd, name,
                    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot create the disk image %s",
                            name);
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0) {
        rc = sp_error_set(err, errno, "cannot size the disk image %s", name);
        goto out;
    }
    char path[64], nodes[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    snprintf(nodes, sizeof(nodes), "%" PRIu64, inodes);
    /* Lazy inode tables and journal, no discard: mkfs writes a few
     * hundred KiB whatever the size; no blocks reserved for root (the
     * sandbox's root is not the host's); no reserved GDT blocks (the
     * image is never grown). */
    const char *argv[] = {mkfs, "-q", "-F", "-m", "0", "-O", "^resize_inode",
                          "-E", "lazy_itable_init=1,lazy_journal_init=1,"
                                "nodiscard",
                          inodes ? "-N" : path, inodes ? nodes : NULL, path,
                          NULL};
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                          NULL};
    pid_t pid = fork();
    if (pid < 0) {
        rc = sp_error_set(err, errno, "cannot run mkfs.ext4");
        goto out;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
            dup2(nul, 2) < 0 || dup2(fd, 3) < 0)
            _exit(127);
        snprintf(path, sizeof(path), "/proc/self/fd/3");
        int keep[] = {3};
        sp_close_all_except(keep, 1, 3);
        execve(mkfs, (char *const *)argv, envp);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    struct statvfs sv;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        rc = 0;
    else if (fstatvfs(dirfd, &sv) == 0 &&
             (uint64_t)sv.f_bavail * sv.f_frsize < SP_DISK_MKFS_ROOM)
        rc = sp_error_set(err, ENOSPC, "cannot make the disk image");
    else
        rc = sp_error_set(err, EIO, "mkfs.ext4 failed on the disk image "
                          "(status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
out:
    close(fd);
    if (rc < 0)
        unlinkat(dirfd, name, 0);
    return rc;
}

/* A free loop device configured on imgfd (autoclear), opened O_RDWR. */
static int loop_configure(int imgfd, const char *label, char *dev, size_t len,
                          sp_error *err)
{
    int cfd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (cfd < 0)
        return sp_error_set(err, errno, "/dev/loop-control");
    int e = EBUSY;
    for (int tries = 0; tries < SP_DISK_LOOP_TRIES; tries++) {
        int n = ioctl(cfd, LOOP_CTL_GET_FREE);
        if (n < 0) {
            e = errno;
            break;
        }
        snprintf(dev, len, "/dev/loop%d", n);
        int lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0) {
            e = errno;
            if (e == ENOENT || e == ENXIO)
                continue; /* removed meanwhile */
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.fd = (uint32_t)imgfd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name),
                 "%s", label);
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
            close(cfd);
            return lfd;
        }
        e = errno;
        close(lfd);
        if (e != EBUSY)
            break; /* EBUSY: another process took it first */
    }
    close(cfd);
    return sp_error_set(err, e, "cannot attach a loop device");
}

int sp_disk_attach(int imgfd, const char *label, sp_error *err)
{
    char dev[32];
    int lfd = loop_configure(imgfd, label, dev, sizeof(dev), err);
    if (lfd < 0)
        return lfd;
    int mnt = -1, e = 0;
    int fs = fsopen("ext4", FSOPEN_CLOEXEC);
    if (fs < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "source", dev, 0) < 0 ||
        /* the kernel would otherwise zero every inode table in the
         * background: writes the size of the tables for nothing */
        fsconfig(fs, FSCONFIG_SET_FLAG, "noinit_itable", NULL, 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "errors", "remount-ro", 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
        (mnt = fsmount(fs, FSMOUNT_CLOEXEC,
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
        e = errno;
    if (fs >= 0)
        close(fs);
    /* The mount holds the device now; without one, this close clears it
     * (autoclear). */
    close(lfd);
    if (mnt < 0)
        return sp_error_set(err, e, "cannot mount the disk image (%s)", dev);
    return mnt;
}
