/* mcp.h — the Model Context Protocol server behind `sandpit mcp`: MCP over
 * stdio (newline-delimited JSON-RPC 2.0, jsonrpc.h), protocol 2025-11-25
 * negotiated down to 2024-11-05, with tools that map onto libsandpit
 * (rpcops.h, wsjob.h). One poll loop, no threads: execs run concurrently
 * and can be cancelled with notifications/cancelled. docs/mcp.md. */
#ifndef SANDPIT_MCP_H
#define SANDPIT_MCP_H

#include <stddef.h>

#include "sandpit.h"

#define SP_MCP_PROTOCOL_LATEST "2025-11-25"
/* Tool calls running at once (execs); more are refused with an error. */
#define SP_MCP_MAX_CALLS 32
/* An exec called with _meta.progressToken: notifications/progress at
 * most this often while it writes output (its first output at once),
 * with the last complete line cut to SP_MCP_PROGRESS_LINE bytes. */
#define SP_MCP_PROGRESS_INTERVAL_US 1000000u
#define SP_MCP_PROGRESS_LINE 160
/* A quiet exec called with a progressToken still reports every 5 s. */
#define SP_MCP_PROGRESS_HEARTBEAT_US 5000000u

struct sp_mcp_opts {
    int in_fd, out_fd;
    const char *policy_file;    /* the operator's ceiling, or NULL */
    size_t max_output;          /* bytes of output per result; 0: 64 KiB */
    size_t max_message;         /* bytes of one message; 0: SP_JRPC_MAX_MSG */
    unsigned pool;              /* warm workspaces (docs/pool.md); 0: the
                                   policy's "pool" key, else none */
    const char *tools;          /* the tools offered: "core", "files",
                                   "full" or a comma-separated list of
                                   names and profiles; NULL: full */
};

/* Serve until in_fd reaches EOF. Returns 0, or < 0 with err when the
 * server could not start (a bad policy file). */
int sp_mcp_serve(const struct sp_mcp_opts *o, sp_error *err);

#endif
