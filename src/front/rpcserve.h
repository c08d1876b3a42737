/* rpcserve.h — `sandpit serve`: JSON-RPC 2.0 on a Unix socket, one method
 * per library operation (rpcops.h), many clients from one poll loop,
 * batches, exec output streamed as notifications. The socket is mode 0600
 * (0660 with a group) and every peer's credentials are checked with
 * SO_PEERCRED. docs/serve.md. */
#ifndef SANDPIT_RPCSERVE_H
#define SANDPIT_RPCSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandpit.h"

/* Clients connected at once; requests in flight per client. */
#define SP_SERVE_MAX_CLIENTS 128
#define SP_SERVE_MAX_PENDING 32

struct sp_serve_opts {
    const char *socket_path;
    bool use_group;             /* share with members of group `gid` */
    gid_t gid;
    const char *policy_file;    /* the operator's ceiling, or NULL */
    size_t max_output;          /* bytes of output per result; 0: 64 KiB */
    size_t max_message;         /* 0: SP_JRPC_MAX_MSG */
    int listen_fd;              /* >= 0: a listening Unix stream socket
                                   handed over (systemd socket activation):
                                   served instead of binding socket_path,
                                   which is then neither made nor removed */
    int ready_fd;               /* >= 0: "ready\n" is written here once
                                   listening, then closed */
    unsigned pool;              /* warm workspaces (docs/pool.md); 0: the
                                   policy's "pool" key, else none */
};

/* Serve until SIGINT or SIGTERM. Returns 0, or < 0 with err when the
 * socket could not be set up. */
int sp_rpc_serve(const struct sp_serve_opts *o, sp_error *err);

#endif
