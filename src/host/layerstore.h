/* layerstore.h — the snapshot store on disk (docs/snapshots.md): layer
 * ids, the store and its lock, workspaces' layer stacks, snapshot
 * metadata, layer garbage collection. Every file in it was written by
 * sandpit, yet it is read as hostile: names are checked, reads bounded.
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
#ifndef SANDPIT_LAYERSTORE_H
#define SANDPIT_LAYERSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

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

#define SP_WS_LAYERS "layers"
#define SP_LID_LEN 18 /* "l-" and 16 hex digits */
#define SP_STORE_LAYERS "layers"
#define SP_STORE_WS "ws"
#define SP_STORE_LOCK "lock"
#define SP_LAST_SNAPSHOT_FILE "last-snapshot"

/* A workspace's layers below its own, lowest first. */
struct sp_stack {
    char lid[SP_SNAP_MAX_DEPTH][SP_LID_LEN + 1];
    size_t n;
};

bool sp_lid_valid(const char *s);
void sp_lid_new(char *buf); /* SP_LID_LEN + 1 bytes */
/* A usage error naming the bad one unless both names are valid (snap may
 * be NULL). */
int sp_snap_check_names(const char *ws, const char *snap, sp_error *err);
/* The store (snapshots/ of the state dir), made when missing: its fd. */
int sp_store_open(const char *statedir, sp_error *err);
/* The store's lock (exclusive flock): an fd to close, or < 0. */
int sp_store_lock(int storefd, sp_error *err);
/* Both: the store's fd, with its lock's fd in *lock. */
int sp_store_open_locked(const char *statedir, int *lock, sp_error *err);
/* A stack file of the layers dir lfd: read (0, or -errno; a missing one
 * is an empty stack) and written (atomically). */
int sp_stack_read(int lfd, struct sp_stack *s);
int sp_stack_write(int lfd, const struct sp_stack *s);
/* A stack from a snapshot's "layers" JSON array; -EINVAL when bad. */
int sp_stack_from_json(json_t *a, struct sp_stack *s);
/* ws/<name>/<snap>.json of the store (an object), or NULL. */
json_t *sp_store_meta_read(int wsdir, const char *snap);
/* The store's ws/<name> dir (created with `create`), or < 0. */
int sp_store_ws_dir(int storefd, const char *name, bool create);
/* How many snapshots a store ws dir holds. */
int sp_store_count_snaps(int wsdir);
/* Remove every layer that no workspace stack and no snapshot names (the
 * store's lock held). */
void sp_store_gc_layers(const char *statedir, int storefd);
/* Snapshot `snap` of `name`: its metadata, and its stack in *s; NULL with
 * err filled when there is none (the store's lock held). */
json_t *sp_store_snap_get(int storefd, const char *name, const char *snap,
                          struct sp_stack *s, sp_error *err);

/* At create of a fork: write the new workspace's stack (wsfd) from the
 * snapshot `snap` of workspace `src`. */
int sp_snap_fork_init(int wsfd, const char *src, const char *snap,
                      sp_error *err);

/* The snapshot `snap` of workspace `name` as stored (its "policy",
 * "from", "read_only_system", ...; caller decrefs), or NULL with err
 * (SP_ERR_USAGE, ENOENT: no such snapshot). */
struct json_t *sp_snap_meta(const char *name, const char *snap,
                            sp_error *err);

/* After a workspace is removed: drop its snapshots and every layer no one
 * uses any more. Best effort. */
void sp_snap_ws_removed(const char *name);

/* The parsers of the store's own files, for the fuzz target: a stack
 * file's text (returns the number of layers, or -EINVAL) and a layer's
 * .index bytes (returns the number of records kept). */
int sp_snap_parse_stack(const char *text, size_t len);


/* The snapshot layers below the workspace whose layers/ dir is `lfd`, top
 * first, as open directory fds (snapshots/layers/<lid>) into fds (at most
 * SP_SNAP_MAX_DEPTH). Returns how many (0: no stack), or -errno (a layer
 * the stack names is missing, or the stack file is damaged). Used by the
 * diff (wsdiff.c), which reads through them. */
int sp_snap_stack_open(int lfd, int *fds, size_t max);

#endif
