/* pool.h — warm pools of workspaces (docs/pool.md): a keeper process keeps
 * N workspaces of one policy created and ready in hidden directories
 * (workspaces/.pool-OWNER-XXXXXXXX); a create whose policy the pooled ones
 * satisfy takes one: renames its directory to the new name (an atomic
 * claim, RENAME_NOREPLACE), and hands it its name, narrower limits (cgroup
 * writes), timeouts and stored policy ("pool_adopt", supervisor.c). A
 * pooled workspace never ran anything before it is handed out, and is
 * never pooled again. Its supervisor watches the owner (a pidfd) and
 * removes itself when the owner exits first, so a kill -9 of the owner
 * leaves nothing running.
 *
 * Forks the keeper: call sp_pool_start from a single-threaded process,
 * before it starts threads. The owner's calls are not thread-safe. */
#ifndef SANDPIT_POOL_H
#define SANDPIT_POOL_H

#include <jansson.h>
#include <stdbool.h>

#include "policy.h"
#include "sandpit.h"

struct sp_pool;

/* Keep n (1..SP_POOL_MAX) workspaces of policy p ready, refilled in the
 * background by a keeper process (one create at a time, resting at least
 * as long as each create took). Slots that dead owners left are removed
 * first. Returns 0 with *ret, or < 0 with err. */
int sp_pool_start(const sp_policy *p, unsigned n, struct sp_pool **ret,
                  sp_error *err);

/* Take a pooled workspace for policy `want` (finalized or not) named
 * `name` (NULL: a generated ws-XXXXXX), with the create options' timeouts.
 * `want` must equal the pool's policy but for narrower memory, pids and
 * cpus limits. Returns 1 with its name in ret_name; 0 when none fits or
 * the pool is empty (the caller creates a fresh one; *why says which); or
 * < 0 with err (a name in use: SP_ERR_USAGE, EEXIST, as sp_ws_create). */
int sp_pool_take(struct sp_pool *pl, const sp_policy *want, const char *name,
                 double idle_timeout, double max_lifetime, char *ret_name,
                 size_t ret_len, const char **why, sp_error *err);

/* {"size", "ready", "refilling", "hits", "misses", "keeper", "last_error"}
 * (caller decrefs). */
json_t *sp_pool_stats(struct sp_pool *pl);

/* Stop the keeper and every workspace still in the pool; free. NULL ok. */
void sp_pool_free(struct sp_pool *pl);

/* The pool slots under the state directory, for ps and doctor:
 * {"slots": N, "ready": N, "owners": [pid, ...]} (caller decrefs), or
 * NULL with err. */
json_t *sp_pool_scan(sp_error *err);

/* `run --pool` (docs/pool.md): the caller's per-user pool, kept by a
 * detached keeper (holding <state>/pool-run.lock) that exits after
 * SP_POOL_RUN_IDLE seconds without a take. sp_pool_run_ensure starts it
 * when none runs (1: started, 0: one runs, < 0: err). sp_pool_run_take
 * claims a ready one, named run-PID-XXXXXX, handed out as a one-shot (it
 * stops and removes itself once its exec and clients are gone): 1 with
 * its name, 0 when none is ready. */
int sp_pool_run_ensure(sp_error *err);
int sp_pool_run_take(char *ret_name, size_t ret_len, sp_error *err);

#endif
