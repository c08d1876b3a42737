/* snapshot.h — snapshots, restore, fork, pause and resume of workspaces
 * (docs/snapshots.md). The sp_ws_snapshot*, sp_ws_restore, sp_ws_fork,
 * sp_ws_pause/resume and sp_ws_checkpoint functions are in sandpit.h;
 * this header holds the hooks the rest of the library calls.
 *
 * The store on disk: layerstore.h; pause and resume: freeze.h. */
#ifndef SANDPIT_SNAPSHOT_H
#define SANDPIT_SNAPSHOT_H

#include <stdbool.h>

#include "error.h"
#include "layerstore.h" /* the store's constants */



/* sp_ws_fork with an idle timeout for the new workspace (0: none): the
 * serve and mcp front ends (rpcops_snap.c). */
int sp_snap_fork(const char *name, const char *snap, const char *newname,
                 const struct sp_policy *p, double idle_timeout,
                 sp_error *err);




/* Restore, the host side (the client side, sp_ws_restore_report, brings
 * the services back): names, the snapshot and, for a running workspace,
 * the secrets' names are checked before anything stops; a running one is
 * stopped (before_stop(arg) is called just before, may be NULL), its stack
 * pointed at the snapshot's layers, its own layers cleared, and started
 * again with `secrets` (*restarted then true). */
#include "sandpit.h"
int sp_snap_restore(const char *name, const char *snap,
                    const sp_secret *secrets, size_t n_secrets,
                    void (*before_stop)(void *arg), void *arg,
                    bool *restarted, sp_error *err);

long sp_snap_parse_index(const char *buf, size_t len);

#endif
