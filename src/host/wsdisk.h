/* wsdisk.h — a workspace's disk limit (docs/disk.md): everything it
 * writes lives in its own ext4 image (loopdisk.h).
 *
 *   workspaces/<name>/disk.img     the image (sparse; size = limits.disk)
 *   workspaces/<name>/workspace    <- image:/workspace (bind mount)
 *   workspaces/<name>/layers/up    <- image:/up        (bind mount)
 *   disk/<size>-<inodes>.spare     a formatted image for the next create
 *                                  with that limit, made by a supervisor
 *                                  once its own workspace is ready
 *
 * The two mounts are made on the host at create, again at start or at any
 * host-side use when missing (after gc or a reboot), and undone (lazily)
 * at rm, at gc of a workspace that is not running, and when a create
 * fails. The loop device is autoclear: it goes with its last mount. */
#ifndef SANDPIT_WSDISK_H
#define SANDPIT_WSDISK_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define SP_WS_DISK_IMG "disk.img"
#define SP_DISK_DIR "disk"
/* Under layers/up: /workspace's upper dir when the workspace has an image
 * (wslayers.c uses it then instead of workspace/, a bind of the same). */
#define SP_WS_DISK_WS_UPPER "workspace/upper"

struct sp_ws_disk_usage {
    uint64_t size;         /* usable bytes (the image less ext4's own) */
    uint64_t used;
    uint64_t inodes;
    uint64_t inodes_used;
};

/* At create: make (or take a spare) image of `size` bytes and `inodes`
 * inodes for the workspace wsfd and mount it over workspace/ and
 * layers/up (both must exist and be empty). */
int sp_ws_disk_create(int wsfd, const char *statedir, const char *name,
                      uint64_t size, uint64_t inodes, sp_error *err);

/* Mount the workspace's image when it has one and it is not mounted.
 * 0 (also without an image) or < 0 with err filled. */
int sp_ws_disk_ensure(int wsfd, sp_error *err);

/* Undo the mounts (MNT_DETACH) if any; the loop device follows. */
void sp_ws_disk_release(int wsfd);

/* 1 with *u filled when the workspace has an image (mounted now), 0 when
 * it has none, < 0 on error. */
int sp_ws_disk_usage(int wsfd, struct sp_ws_disk_usage *u);

/* After a create is ready: leave a formatted spare image of that limit in
 * <statedir>/disk (nothing when one waits already). Best effort. */
void sp_ws_disk_make_spare(const char *statedir, uint64_t size,
                           uint64_t inodes);

/* gc: remove spares no create took for a day, and the mounts of spares
 * whose image is gone; with all (no workspace left in the state dir),
 * every spare: an idle state dir holds no loop device. */
void sp_ws_disk_gc(const char *statedir, bool all);

#endif
