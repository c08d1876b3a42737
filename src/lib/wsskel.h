/* wsskel.h — the root skeleton of workspaces, shared between them.
 *
 * The root of a copy-on-write workspace is an overlay whose lower dir is a
 * skeleton: the mount points of its plan, the merged-/usr symlinks, copies
 * of the small /etc files and of the small /etc directories (folded in
 * instead of being overlays of their own). Every workspace with the same
 * plan on the same host files has the same skeleton, so it is built once,
 * under the state directory:
 *
 *   skel/<key>/      the skeleton (written by sandpit alone, never changed
 *                    once in place: a new host file makes a new key)
 *   skel/<key>.m     its manifest: every entry with the stat of its source
 *
 * A workspace's layers/base is a symlink to ../../../skel/<key>. At each
 * start the manifest is recomputed from the plan and the host (a stat per
 * source); an equal manifest reuses the skeleton, any difference (a host
 * file changed, another policy) selects or builds another. `sandpit gc`
 * removes the skeletons no workspace points at. */
#ifndef SANDPIT_WSSKEL_H
#define SANDPIT_WSSKEL_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

#define SP_WS_SKEL_DIR "skel"
/* A host directory is folded into the skeleton (copied, not an overlay of
 * its own) when it holds at most this many entries and bytes. */
#define SP_WS_SKEL_TREE_MAX_ENTRIES 64
#define SP_WS_SKEL_TREE_MAX_BYTES (16u << 20)
/* Skeletons younger than this are never removed by gc (a create may be
 * about to point at one). */
#define SP_WS_SKEL_GC_GRACE_S 60

struct sp_skel;

struct sp_skel *sp_skel_new(void);
void sp_skel_free(struct sp_skel *sk);

/* Record an entry (paths relative to the root, no leading '/'). Return 0
 * or -errno (-ENOMEM, -ENAMETOOLONG). */
int sp_skel_dir(struct sp_skel *sk, const char *rel, mode_t mode);
int sp_skel_point(struct sp_skel *sk, const char *rel, mode_t mode, bool file);
int sp_skel_copy(struct sp_skel *sk, const char *src, const char *rel,
                 mode_t mode);
int sp_skel_link(struct sp_skel *sk, const char *target, const char *rel);
/* A whole host directory tree: 1 when recorded, 0 when it cannot be
 * folded (past the bounds above, unreadable, not a directory) and nothing
 * was recorded, or -errno. */
int sp_skel_tree(struct sp_skel *sk, const char *src, const char *rel);

/* Find or build the skeleton for what was recorded and point the symlink
 * `base` in the layers dir lfd at it. Returns 0 or < 0 with err filled. */
int sp_skel_commit(struct sp_skel *sk, int lfd, sp_error *err);

/* Remove the skeletons under statedir that no workspace points at. */
void sp_skel_gc(const char *statedir);

/* mkdir -p of `rel` below dirfd, never following a symlink; with `file`
 * the last component is an empty regular file. Existing entries of the
 * right type are kept. Returns 0 or -errno. */
int sp_mkpath_nofollow(int dirfd, const char *rel, mode_t mode, bool file);

#endif
