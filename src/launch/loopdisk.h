/* loopdisk.h — a file-system image on a loop device: the kernel-enforced
 * disk limit of a workspace (docs/disk.md). Root only: a loop device and an
 * ext4 mount need CAP_SYS_ADMIN in the initial user namespace.
 *
 * The image is a sparse file holding an ext4 file system made by
 * mkfs.ext4 (about 10 ms and a few hundred KiB for 10 GiB: lazy inode
 * tables, lazy journal, no discard). It is attached with LOOP_CONFIGURE
 * (one ioctl) and the autoclear flag, and mounted with the fd-based mount
 * API as a detached mount: the loop device goes away by itself once the
 * last mount of it is gone, whoever unmounts it, and at once if no mount
 * was ever made (a process killed between the two steps). */
#ifndef SANDPIT_LOOPDISK_H
#define SANDPIT_LOOPDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* The mechanism's name as doctor and docs give it. */
#define SP_DISK_MECH_LOOP "loop-ext4"
/* How often a loop device another process took between LOOP_CTL_GET_FREE
 * and LOOP_CONFIGURE is given up for the next free one. */
#define SP_DISK_LOOP_TRIES 8
/* Free space below which a failed mkfs is reported as ENOSPC (it writes
 * a few hundred KiB to a few MiB of metadata). */
#define SP_DISK_MKFS_ROOM (16ull * 1024 * 1024)

/* 1 when this process can make, attach and mount images (root with
 * /dev/loop-control, ext4 in the kernel, mkfs.ext4 installed); 0 with
 * `why` (a sentence) filled when not. Cached after the first call. */
int sp_disk_probe(char *why, size_t len);

/* Make the sparse image dirfd/name (O_EXCL) of `size` bytes holding an
 * empty ext4 with `inodes` inodes (0: mkfs's default). A failure leaves
 * no file behind. */
int sp_disk_mkfs(int dirfd, const char *name, uint64_t size, uint64_t inodes,
                 sp_error *err);

/* Attach the image imgfd (O_RDWR) to a free loop device (autoclear) and
 * mount its ext4 detached. Returns the mount fd (O_CLOEXEC) or < 0 with
 * err filled. `label` names the device in losetup's listing. */
int sp_disk_attach(int imgfd, const char *label, sp_error *err);

/* 1 when the block device `dev` is a loop device backed by imgfd's file
 * (the path it has now), else 0. */
int sp_disk_backs(dev_t dev, int imgfd);

#endif
