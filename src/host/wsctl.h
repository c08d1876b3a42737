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

#endif
