/* launch.h — sp_run() (declared in sandpit.h) lives in launch.c; this header
 * holds what the workspace supervisor and agent and the tests need from it. */
#ifndef SANDPIT_LAUNCH_H
#define SANDPIT_LAUNCH_H

#include <sys/types.h>

#include "policy.h"
#include "sandpit.h"

struct sp_cgroup;
struct sp_ws_layers;
struct sp_proxy;
struct sp_secrets;

/* A workspace sandbox started by sp_launch_agent(). */
struct sp_launch_handle {
    pid_t pid;               /* the agent, PID 1 of the sandbox */
    int pidfd;               /* owned by the caller */
    struct sp_cgroup *cg;    /* owned by the caller; NULL without a cgroup */
    struct sp_proxy *proxy;  /* --net allow: the egress proxy, listening
                                inside the sandbox; owned by the caller
                                (run it in a poll loop, sp_proxy_free) */
};

/* Start a workspace sandbox through the same path as sp_run(), with PID 1
 * running the agent loop (agent.c) on agent_sock instead of one command.
 * The workspace directory (p->workspace) is mounted at ws_dst; with
 * `layers` (wslayers.h) the filesystem is copy-on-write; with `secrets`
 * (secrets.h, may be NULL) PID 1 writes them into a read-only tmpfs at
 * /run/secrets and the agent redacts them. The caller
 * blocks all signals first (the agent inherits the mask and uses a
 * signalfd) and closes agent_sock after the call. Returns when the agent
 * has locked itself down (0), or < 0 with err filled and nothing left
 * running. */
int sp_launch_agent(const struct sp_policy *p, const sp_run_opts *o,
                    int agent_sock, const char *ws_dst,
                    const struct sp_ws_layers *layers,
                    const struct sp_secrets *secrets,
                    struct sp_launch_handle *ret, sp_error *err);

/* execve argv with a PATH search that does not allocate (for a forked
 * child). Returns the errno that decides 126 (anything) vs 127 (ENOENT). */
int sp_exec_search(char *const argv[], char *const envp[], const char *path_env);

#endif
