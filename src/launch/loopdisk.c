/* loopdisk.c — ext4 images on loop devices (loopdisk.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "loopdisk.h"

#include <dirent.h>
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
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "util.h"

static const char *const mkfs_paths[] = {"/usr/sbin/mkfs.ext4",
                                         "/sbin/mkfs.ext4"};

static const char *const fsck_paths[] = {"/usr/sbin/e2fsck", "/sbin/e2fsck"};

static const char *find_in(const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static const char *find_mkfs(void)
{
    return find_in(mkfs_paths, SP_ARRAY_SIZE(mkfs_paths));
}

/* Run prog argv with fd as fd 3 (argv names it /proc/self/fd/3), stdio on
 * /dev/null and a fixed environment. Returns its exit status, or -errno,
 * or -ECHILD when it died of a signal. */
static int run_tool(const char *prog, const char *const *argv, int fd)
{
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                          NULL};
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
            dup2(nul, 2) < 0 || dup2(fd, 3) < 0)
            _exit(127);
        int keep[] = {3};
        sp_close_all_except(keep, 1, 3);
        execve(prog, (char *const *)argv, envp);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -ECHILD;
}

/* The loop device already backed by imgfd ("/dev/loopN" in dev), opened
 * O_RDWR, or -ENOENT. A workspace whose sandbox still ends (its overlays
 * hold the file system) is mounted from that device again: the kernel
 * then shares the one superblock, where a second device would mount the
 * same image twice. */
static int loop_of(int imgfd, char *dev, size_t len)
{
    char self[64], want[SP_MAX_PATH];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", imgfd);
    ssize_t n = readlink(self, want, sizeof(want) - 1);
    if (n <= 0)
        return -ENOENT;
    want[n] = '\0';
    DIR *d = opendir("/sys/block");
    if (!d)
        return -ENOENT;
    struct stat ist;
    int found = -ENOENT;
    struct dirent *de;
    while (found < 0 && fstat(imgfd, &ist) == 0 && (de = readdir(d))) {
        if (strncmp(de->d_name, "loop", 4) != 0 || strlen(de->d_name) > 16)
            continue;
        char p[128], got[SP_MAX_PATH];
        snprintf(p, sizeof(p), "/sys/block/%.16s/loop/backing_file",
                 de->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, got, sizeof(got) - 1);
        close(fd);
        if (k <= 0)
            continue;
        got[k] = '\0';
        got[strcspn(got, "\n")] = '\0';
        if (strcmp(got, want) != 0)
            continue;
        snprintf(dev, len, "/dev/%.16s", de->d_name);
        int lfd = open(dev, O_RDWR | O_CLOEXEC);
        struct loop_info64 li;
        if (lfd >= 0 && ioctl(lfd, LOOP_GET_STATUS64, &li) == 0 &&
            li.lo_inode == ist.st_ino && li.lo_device == ist.st_dev)
            found = lfd;
        else if (lfd >= 0)
            close(lfd);
    }
    closedir(d);
    return found;
}

int sp_disk_backs(dev_t dev, int imgfd)
{
    char self[64], want[SP_MAX_PATH], got[SP_MAX_PATH], p[96];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", imgfd);
    ssize_t n = readlink(self, want, sizeof(want) - 1);
    if (n <= 0)
        return 0;
    want[n] = '\0';
    snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/loop/backing_file",
             major(dev), minor(dev));
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = read(fd, got, sizeof(got) - 1);
    close(fd);
    if (k <= 0)
        return 0;
    got[k] = '\0';
    got[strcspn(got, "\n")] = '\0';
    return strcmp(got, want) == 0;
}

/* The image's ext4 superblock says it was unmounted cleanly (s_state
 * bit 1, no error bit 2), or e2fsck -p mends it. An image without the
 * ext4 magic is refused. Only for an image no loop device holds. */
static int check_clean(int imgfd, sp_error *err)
{
    unsigned char sb[0x40];
    if (pread(imgfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
        return sp_error_set(err, EINVAL, "the disk image has no ext4 "
                            "superblock");
    unsigned magic = sb[0x38] | (unsigned)sb[0x39] << 8;
    unsigned state = sb[0x3a] | (unsigned)sb[0x3b] << 8;
    if (magic != 0xEF53)
        return sp_error_set(err, EINVAL, "the disk image is not ext4");
    if ((state & 1) && !(state & 2))
        return 0;
    const char *fsck = find_in(fsck_paths, SP_ARRAY_SIZE(fsck_paths));
    if (!fsck)
        return sp_error_set(err, ENOENT, "the disk image was not unmounted "
                            "cleanly and e2fsck is not installed");
    const char *argv[] = {fsck, "-p", "/proc/self/fd/3", NULL};
    int r = run_tool(fsck, argv, imgfd);
    /* 0: clean, 1: errors corrected */
    if (r == 0 || r == 1)
        return 0;
    return sp_error_set(err, EIO, "the disk image is damaged (e2fsck -p: "
                        "status %d; run e2fsck on it by hand)", r);
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
    snprintf(path, sizeof(path), "/proc/self/fd/3"); /* run_tool's fd 3 */
    snprintf(nodes, sizeof(nodes), "%" PRIu64, inodes);
    /* Lazy inode tables, no discard: mkfs writes a few hundred KiB
     * whatever the size; no blocks reserved for root (the sandbox's root
     * is not the host's); no reserved GDT blocks (the image is never
     * grown); 4 KiB blocks, the loop device's direct I/O block size; no
     * journal: on a loop device its commits cost a quarter of
     * the write throughput (docs/disk.md), and an image left unclean by
     * a host crash is checked before its next mount (check_clean). */
    const char *argv[] = {mkfs, "-q", "-F", "-b", "4096", "-m", "0", "-O",
                          "^resize_inode,^has_journal", "-E",
                          "lazy_itable_init=1,nodiscard",
                          inodes ? "-N" : path, inodes ? nodes : NULL, path,
                          NULL};
    int st = run_tool(mkfs, argv, fd);
    struct statvfs sv;
    if (st == 0)
        rc = 0;
    else if (fstatvfs(dirfd, &sv) == 0 &&
             (uint64_t)sv.f_bavail * sv.f_frsize < SP_DISK_MKFS_ROOM)
        rc = sp_error_set(err, ENOSPC, "cannot make the disk image");
    else
        rc = sp_error_set(err, EIO, "mkfs.ext4 failed on the disk image "
                          "(status %d)", st);
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
    bool dio = getenv("SANDPIT_DISK_BUFFERED") == NULL;
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
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (dio ? LO_FLAGS_DIRECT_IO : 0);
        cfg.block_size = dio ? 4096 : 0;
        snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name),
                 "%s", label);
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
            close(cfd);
            return lfd;
        }
        e = errno;
        if (dio && e == EINVAL) {
            /* a backing file system without O_DIRECT (tmpfs): buffered */
            dio = false;
            close(lfd);
            tries--;
            continue;
        }
        close(lfd);
        if (e != EBUSY)
            break; /* EBUSY: another process took it first */
    }
    close(cfd);
    return sp_error_set(err, e, "cannot attach a loop device");
}

/* 1 when the superblock says clean, 0 when not, -EINVAL without the
 * ext4 magic or a superblock at all. */
static int sb_clean(int imgfd)
{
    unsigned char sb[4]; /* s_magic, s_state */
    if (pread(imgfd, sb, sizeof(sb), 1024 + 0x38) != (ssize_t)sizeof(sb))
        return -EINVAL;
    unsigned magic = sb[0] | (unsigned)sb[1] << 8;
    unsigned state = sb[2] | (unsigned)sb[3] << 8;
    if (magic != 0xEF53)
        return -EINVAL;
    return (state & 1) && !(state & 2);
}

int sp_disk_attach(int imgfd, const char *label, sp_error *err)
{
    char dev[32];
    int lfd = -ENOENT;
    int clean = sb_clean(imgfd);
    if (clean < 0)
        return sp_error_set(err, EINVAL, "the disk image is not ext4");
    /* A mounted image reads unclean (no journal): it may be a sandbox of
     * this workspace still ending. Clean: no device holds it. */
    if (clean != 1 &&
        (lfd = loop_of(imgfd, dev, sizeof(dev))) < 0) {
        int cr = check_clean(imgfd, err);
        if (cr < 0)
            return cr;
    }
    if (lfd < 0 && (lfd = loop_configure(imgfd, label, dev, sizeof(dev),
                                         err)) < 0)
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
