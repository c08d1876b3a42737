/* state.h — a workspace's state on disk: the state directory, state.json
 * (written atomically: temp file, fsync, rename), the lock whose holder is
 * the live supervisor, and cleanup of what a dead supervisor left behind.
 *
 *   $SANDPIT_STATE | /var/lib/sandpit (root) | $XDG_STATE_HOME/sandpit
 *     workspaces/<name>/state.json  lock  control.sock  supervisor.log
 *                       workspace/  (mounted read-write at /workspace)
 *
 * Liveness is the lock: the supervisor holds an exclusive flock on
 * workspaces/<name>/lock for its whole life, so "is it running" never
 * depends on a pid that may have been recycled, and a kill -9 frees it. */
#ifndef SANDPIT_STATE_H
#define SANDPIT_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bounds.h"
#include "sandpit.h"

#define SP_WS_DIR "workspaces"
#define SP_WS_STATE_FILE "state.json"
#define SP_WS_LOCK_FILE "lock"
#define SP_WS_SOCKET "control.sock"
#define SP_WS_LOG "supervisor.log"
#define SP_WS_DATA "workspace"
/* A pooled workspace's directory (pool.h): not a valid workspace name, so
 * ps, gc and clients pass it by until it is handed out and renamed. */
#define SP_POOL_SLOT_PREFIX ".pool-"
/* Where the workspace directory appears inside. */
#define SP_WS_MOUNT "/workspace"

struct sp_ws_state {
    char name[SP_WS_NAME_MAX + 1];
    char state[16];            /* creating, running, stopped, crashed */
    pid_t supervisor_pid;      /* 0 when none */
    pid_t agent_pid;
    int64_t created;           /* unix seconds */
    int64_t started;
    double idle_timeout;       /* seconds; 0 = none */
    double max_lifetime;
    json_t *policy;            /* the policy as JSON (owned) */
    json_t *cgroups;           /* array of cgroup directories (owned) */
};

/* Resolve the state directory into buf, creating it (mode 0700) and its
 * workspaces/ directory when missing. Returns 0 or < 0 with err filled. */
int sp_state_dir(char *buf, size_t len, sp_error *err);

/* Open state/workspaces/<name> (O_DIRECTORY | O_NOFOLLOW); -ENOENT with a
 * clear message when there is no such workspace. */
int sp_state_open_ws(const char *statedir, const char *name, sp_error *err);

/* json_loadfd that reads the file whole (jansson's reads a byte per
 * system call); NULL past max bytes or on a read error, with je filled. */
json_t *sp_json_loadfd(int fd, size_t max, size_t flags, json_error_t *je);

int sp_state_read(int wsfd, struct sp_ws_state *ret, sp_error *err);
int sp_state_write(int wsfd, const struct sp_ws_state *st, sp_error *err);
void sp_state_free(struct sp_ws_state *st);

/* Open the lock file and try to take it: returns the fd (lock held) or
 * -EWOULDBLOCK when a live supervisor holds it, or another -errno. With
 * wait, blocks until it is free. */
int sp_state_lock(int wsfd, bool wait);

/* Remove dirfd/name and everything below it, never following a symlink,
 * making unreadable directories readable on the way. Returns 0 or -errno. */
int sp_rm_rf_at(int dirfd, const char *name);

/* The sandbox cgroup directories pid belongs to (those named sandpit-*),
 * as a JSON array of absolute paths (never NULL on success). */
int sp_state_cgroups_of(pid_t pid, json_t **ret);
/* Kill whatever is left in them and remove them. */
void sp_state_cgroups_remove(json_t *cgroups);

/* Unix time in seconds. */
int64_t sp_unix_now(void);

#endif
