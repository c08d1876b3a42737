/* wslayers.h — the copy-on-write filesystem of a persistent workspace.
 *
 * A workspace's directory workspaces/<name>/ holds, besides state.json:
 *
 *   workspace/            the upper dir of /workspace (what the sandbox wrote)
 *   layers/from           the --from DIR, one absolute path (absent: none)
 *   layers/read-only-system   present: system paths are read-only binds
 *   layers/base           a link to the shared root skeleton, the lower of
 *                         the root overlay (wsskel.h), set at each start
 *   layers/home/          lower of HOME with --read-only-system (otherwise
 *                         HOME's place in the skeleton)
 *   layers/empty/         lower of /workspace without --from
 *   layers/up/<id>/upper  upper dir of the overlay mounted at <id>
 *   layers/up/<id>/work   its overlayfs work dir
 *
 * <id> names the mount point: "root" is "/", any other is the path without
 * its first '/' and with '/' written '+' ("usr", "etc+ssl",
 * "home+sandpit"); "workspace" keeps its work dir here and its upper dir in
 * workspace/. Every overlay has one lower dir: overlayfs does not cross the
 * mounts below a lower dir, so each host tree bound into the sandbox is its
 * own overlay, except the small /etc directories, copied into the
 * skeleton. */
#ifndef SANDPIT_WSLAYERS_H
#define SANDPIT_WSLAYERS_H

#include <stdbool.h>

#include "error.h"
#include "layerstore.h" /* SP_WS_LAYERS */
#include "mountplan.h"

#define SP_WS_LAYER_ROOT "root"
#define SP_WS_LAYER_WORKSPACE "workspace"
/* Longest layer id (a mount point below "/", '/' written '+'). */
#define SP_WS_LAYER_ID_MAX 255

struct sp_ws_layers {
    char *dir;        /* workspaces/<name>/layers, absolute */
    char *datadir;    /* workspaces/<name>/workspace: upper of /workspace */
    char *from;       /* lower of /workspace, or NULL */
    bool ro_system;   /* --read-only-system */
};

/* At create: validate `from` (an existing directory; made absolute) and
 * write the layers/ tree in the workspace directory wsfd. Returns 0 or < 0
 * (SP_ERR_USAGE for a bad --from) with err filled; the caller removes the
 * half-made workspace. */
int sp_ws_layers_init(int wsfd, const char *from, bool ro_system,
                      sp_error *err);

/* Load the layer configuration of the workspace whose data dir is
 * `datadir`. Returns 1 with *ret filled, 0 when the workspace has no
 * layers/ (made before copy-on-write: plain bind), or < 0. */
int sp_ws_layers_load(const char *datadir, struct sp_ws_layers *ret,
                      sp_error *err);
void sp_ws_layers_free(struct sp_ws_layers *ly);

/* Turn a workspace's mount plan (built with /workspace at ws_dst) into its
 * copy-on-write form, and point layers/base at the skeleton for it (found
 * or built). Runs on the host before clone. */
int sp_ws_layers_apply(const struct sp_ws_layers *ly, const char *ws_dst,
                       bool userxattr, struct sp_mount_plan *plan,
                       sp_error *err);

/* At most this many copy-on-write layers per workspace (overlays). */
#define SP_WS_MAX_LAYER_DIRS 64

/* After a start is ready: leave a spare set of the layer dirs of the last
 * applied plan for the next create with the same skeleton (wsskel.h).
 * Best effort; off the path to ready. */
void sp_ws_layers_make_spare(void);

/* The id of a mount point into buf ("/" -> "root", "/etc/ssl" ->
 * "etc+ssl"); and back. Return 0 or -ENAMETOOLONG / -EINVAL. */
int sp_ws_layer_id(const char *mountpoint, char *buf, size_t len);
int sp_ws_layer_mountpoint(const char *id, char *buf, size_t len);

/* Rewrite the overlays of a workspace's mount plan (sp_ws_layers_apply
 * output) so that each lower dir is stacked under the layers named in
 * <layers_dir>/stack. Host side, before clone. */
int sp_snap_stack_apply(const char *layers_dir, struct sp_mount_plan *plan,
                        sp_error *err);


#endif
