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
/* append: text written after the copy (NULL: none), part of the key. */
int sp_skel_copy(struct sp_skel *sk, const char *src, const char *rel,
                 mode_t mode, const char *append);
int sp_skel_link(struct sp_skel *sk, const char *target, const char *rel);
/* A whole host directory tree: 1 when recorded, 0 when it cannot be
 * folded (past the bounds above, unreadable, not a directory) and nothing
 * was recorded, or -errno. */
int sp_skel_tree(struct sp_skel *sk, const char *src, const char *rel);

/* Find or build the skeleton for what was recorded and point the symlink
 * `base` in the layers dir lfd at it. Returns 0 or < 0 with err filled. */
int sp_skel_commit(struct sp_skel *sk, int lfd, sp_error *err);

/* The key of the skeleton sp_skel_commit found or built (NULL before). */
const char *sp_skel_key(const struct sp_skel *sk);

/* Spare layer dirs. Making a new workspace's layers/up/<id>/{upper,work}
 * costs a dozen and more mkdirs on the path to ready; a supervisor makes
 * the next create's set after its own is ready, as skel/<key>.spare, and
 * a create whose skeleton has that key renames it in as its layers/up.
 * One spare per key; a create that finds none makes its dirs itself. */
#define SP_WS_SKEL_SPARE_SUFFIX ".spare"
struct sp_skel_layer_dir {
    char id[256];  /* SP_WS_LAYER_ID_MAX + 1 */
    mode_t mode;   /* of upper */
    bool upper;    /* false: the upper dir lives elsewhere (workspace/) */
};
/* 1 when a spare became lfd/up (which must be empty), else 0. */
int sp_skel_spare_take(int lfd, const char *key);
/* Make the spare for key (nothing when one waits already). 0 or -errno. */
int sp_skel_spare_make(int lfd, const char *key,
                       const struct sp_skel_layer_dir *dirs, size_t n);

/* Remove the skeletons under statedir that no workspace points at. */
void sp_skel_gc(const char *statedir);

/* mkdir -p of `rel` below dirfd, never following a symlink; with `file`
 * the last component is an empty regular file. Existing entries of the
 * right type are kept. Returns 0 or -errno. */
int sp_mkpath_nofollow(int dirfd, const char *rel, mode_t mode, bool file);

#endif
