/* supervisor.h — one process on the host per workspace: it starts the
 * sandbox (agent as PID 1) through the launch path, owns its lifetime, the
 * cgroup, state.json and the control socket, and relays requests between
 * clients and the agent. One poll loop, signals through a signalfd,
 * non-dumpable, no fd it does not need. */
#ifndef SANDPIT_SUPERVISOR_H
#define SANDPIT_SUPERVISOR_H

#include <stdint.h>

#include "policy.h"

struct sp_secrets;

struct sp_supervisor_args {
    const char *name;
    int wsfd;                  /* workspaces/<name>, O_DIRECTORY */
    int lock_fd;               /* the workspace lock, held */
    int ready_fd;              /* gets "OK\n" or "E<message>\n", then closed */
    struct sp_policy *policy;  /* finalized; workspace = the data dir */
    double idle_timeout;       /* seconds; 0 = none */
    double max_lifetime;       /* seconds; 0 = none */
    int64_t created;           /* unix seconds */
    const struct sp_secrets *secrets; /* NULL: none (secrets.h); memory only */
    int owner_fd;              /* >= 0: a pooled workspace (docs/pool.md):
                                  a pidfd of the pool's owner; it stops
                                  and removes itself when the owner exits
                                  before a "pool_adopt" hands it out.
                                  -1: an ordinary workspace */
};

/* Run the workspace until it is stopped, idles out, reaches its lifetime
 * or its agent dies; then write the final state and exit. Called in a
 * freshly forked, detached process. */
_Noreturn void sp_supervisor_main(struct sp_supervisor_args *a);

#endif
