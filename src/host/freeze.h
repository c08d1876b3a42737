/* freeze.h — pause and resume of workspaces, and the freeze a snapshot
 * holds while it copies (freeze.c; the public sp_ws_pause, sp_ws_resume,
 * sp_ws_paused, sp_ws_wait_resumed are in sandpit.h). */
#ifndef SANDPIT_FREEZE_H
#define SANDPIT_FREEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bounds.h"
#include "error.h"
#include "layerstore.h" /* SP_WS_PAUSED_FILE, SP_FREEZE_TIMEOUT_MS */

struct sp_pids {
    pid_t *v;
    size_t n, cap;
};

/* A running workspace's process tree: its agent (PID 1 inside). */
struct sp_tree {
    pid_t agent;
    char procs[SP_MAX_PATH + 32]; /* its cgroup's cgroup.procs, or "" */
};

/* The agent of the running workspace wsfd (named `name`), checked, and
 * its process tree in *ns. */
int sp_freeze_agent_of(int wsfd, const char *name, pid_t *ret,
                       struct sp_tree *ns, sp_error *err);
/* Freeze every process of ns; how it was done (the freezer's dir, or
 * "stop") goes to how. */
int sp_freeze_ns(const char *name, const struct sp_tree *ns, char *how,
                 size_t len, sp_error *err);
/* Undo sp_freeze_ns. */
void sp_freeze_thaw(const char *how, const struct sp_tree *ns);
/* The "paused" file of a workspace dir ("" when not paused). */
void sp_freeze_read_paused(int wsfd, char *how, size_t len);
/* The lock that pause, resume and snapshots take (an fd), or < 0. */
int sp_freeze_pause_lock(int wsfd, sp_error *err);
/* Remove our freezer cgroups that no process uses any more. */
void sp_freeze_sweep(void);
/* The state dir (in statedir) and the named workspace's dir fd. */
int sp_snap_open_ws(const char *name, char *statedir, size_t len,
                    sp_error *err);
/* Is the workspace of this dir fd running (its lock held)? */
bool sp_ws_running_at(int wsfd);

/* Thaw a paused workspace (wsfd: workspaces/<name>), if it is: before a
 * stop or a kill, which a frozen cgroup v1 would not let finish. */
void sp_snap_thaw_at(int wsfd);


#endif
