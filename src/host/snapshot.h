/* snapshot.h — snapshots, restore, fork, pause and resume of workspaces
 * (docs/snapshots.md). The sp_ws_snapshot*, sp_ws_restore, sp_ws_fork,
 * sp_ws_pause/resume and sp_ws_checkpoint functions are in sandpit.h;
 * this header holds the hooks the rest of the library calls.
 *
 * Store, under the state directory:
 *
 *   snapshots/lock                  flock: every change of the store
 *   snapshots/layers/<lid>/<id>/    a read-only layer: a copy of the upper
 *                                   dir of the overlay <id> (wslayers.h ids)
 *   snapshots/ws/<ws>/<snap>.json   a snapshot: its layer stack (top first),
 *                                   the policy, --from, size and time
 *   workspaces/<ws>/layers/stack    the workspace's own stack: one <lid> a
 *                                   line, top first (absent: none)
 *
 * A layer lives while a snapshot or a workspace stack names it; every
 * removal ends with a scan of both under the lock (no counters to leak). */
#ifndef SANDPIT_SNAPSHOT_H
#define SANDPIT_SNAPSHOT_H

#include <stdbool.h>

#include "error.h"
#include "mountplan.h"

#define SP_SNAP_DIR "snapshots"
#define SP_WS_STACK_FILE "stack"
#define SP_WS_PAUSED_FILE "paused"
/* Most layers below a workspace; a snapshot that would pass it is merged
 * into one layer (cost: the size of the whole stack). */
#define SP_SNAP_MAX_DEPTH 16
/* Most snapshots of one workspace. */
#define SP_SNAP_MAX_PER_WS 256
/* Most directory entries one snapshot copies (all layers together). */
#define SP_SNAP_MAX_ENTRIES 1000000
/* Deepest directory nesting copied. */
#define SP_SNAP_MAX_TREE_DEPTH 256
/* How long a freeze may take before it is given up (ms). */
#define SP_FREEZE_TIMEOUT_MS 5000
/* How long a request waits for a paused workspace to resume (s). */
#define SP_WS_PAUSE_WAIT 30

/* Rewrite the overlays of a workspace's mount plan (sp_ws_layers_apply
 * output) so that each lower dir is stacked under the layers named in
 * <layers_dir>/stack. Host side, before clone. */
int sp_snap_stack_apply(const char *layers_dir, struct sp_mount_plan *plan,
                        sp_error *err);

/* The snapshot layers below the workspace whose layers/ dir is `lfd`, top
 * first, as open directory fds (snapshots/layers/<lid>) into fds (at most
 * SP_SNAP_MAX_DEPTH). Returns how many (0: no stack), or -errno (a layer
 * the stack names is missing, or the stack file is damaged). Used by the
 * diff (wsdiff.c), which reads through them. */
int sp_snap_stack_open(int lfd, int *fds, size_t max);

/* At create of a fork: write the new workspace's stack (wsfd) from the
 * snapshot `snap` of workspace `src`. */
int sp_snap_fork_init(int wsfd, const char *src, const char *snap,
                      sp_error *err);

/* sp_ws_fork with an idle timeout for the new workspace (0: none): the
 * serve and mcp front ends (rpcops_snap.c). */
int sp_snap_fork(const char *name, const char *snap, const char *newname,
                 const struct sp_policy *p, double idle_timeout,
                 sp_error *err);

/* The snapshot `snap` of workspace `name` as stored (its "policy",
 * "from", "read_only_system", ...; caller decrefs), or NULL with err
 * (SP_ERR_USAGE, ENOENT: no such snapshot). */
struct json_t *sp_snap_meta(const char *name, const char *snap,
                            sp_error *err);

/* After a workspace is removed: drop its snapshots and every layer no one
 * uses any more. Best effort. */
void sp_snap_ws_removed(const char *name);

/* Thaw a paused workspace (wsfd: workspaces/<name>), if it is: before a
 * stop or a kill, which a frozen cgroup v1 would not let finish. */
void sp_snap_thaw_at(int wsfd);

/* The parsers of the store's own files, for the fuzz target: a stack
 * file's text (returns the number of layers, or -EINVAL) and a layer's
 * .index bytes (returns the number of records kept). */
int sp_snap_parse_stack(const char *text, size_t len);
long sp_snap_parse_index(const char *buf, size_t len);

#endif
