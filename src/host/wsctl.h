/* wsctl.h — the lifecycle of workspaces on the host: the sp_ws_create,
 * start, stop, rm, gc and list functions of sandpit.h (wsctl.c), and what
 * the rest of host/ and client/ use to find a workspace: they look it up
 * under the state directory (state.h), spawn its supervisor (supervisor.h)
 * and reach its control socket. */
#ifndef SANDPIT_WSCTL_H
#define SANDPIT_WSCTL_H

#include "policy.h"
#include "sandpit.h"

/* Build a finalized policy for workspace data directory `datadir` from a
 * policy's JSON (as stored in state.json). */
int sp_ws_policy_from_json(const char *json, const char *datadir,
                           struct sp_policy **ret, sp_error *err);

/* Connect to a running workspace's control socket (blocking, O_CLOEXEC):
 * the one path every client module uses. Returns the fd or < 0 with err
 * filled (a bad name, an unknown or stopped workspace). */
int sp_ws_connect_fd(const char *name, sp_error *err);

/* Create a pooled workspace (pool.h) in workspaces/<slot> (a name with
 * SP_POOL_SLOT_PREFIX) whose supervisor watches owner_fd, a pidfd of the
 * pool's owner, and stops and removes itself when that exits first.
 * Blocks until it is ready, like sp_ws_create. */
int sp_ws_create_slot(const sp_policy *p, const char *slot, int owner_fd,
                      sp_error *err);

/* Remove workspaces/<n>, a pool slot, when no supervisor holds it: its
 * cgroups, disk mounts and files. 1 when removed, 0 when alive or not
 * there (rootfd: the workspaces directory). */
int sp_pool_slot_reap(int rootfd, const char *n);

#endif
