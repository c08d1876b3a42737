/* workspace.h — the client side of a running workspace: the sp_ws_*
 * functions of sandpit.h that speak proto.h to its supervisor (connect,
 * exec; files, shells, services, net log in the modules beside), used by
 * the CLI and the JSON-RPC and MCP front ends. The lifecycle (create,
 * start, stop, rm, gc, list) is host/wsctl.h. */
#ifndef SANDPIT_WORKSPACE_H
#define SANDPIT_WORKSPACE_H

#include "policy.h"
#include "sandpit.h"

#include "wsctl.h" /* sp_ws_connect_fd, sp_ws_policy_from_json */

/* sp_ws_file_read, also saying how many bytes of the file the data
 * stands for (*ret_raw, may be NULL): with secrets the data is redacted
 * and may be longer or shorter (docs/secrets.md); read on from offset +
 * *ret_raw. */
#include <stdint.h>
int sp_ws_file_read_raw(sp_ws_client *c, const char *path, uint64_t offset,
                        int64_t length, void **ret_data, size_t *ret_len,
                        uint64_t *ret_raw, sp_error *err);

/* The connection's parts, for client modules beside workspace.c. */
#include <jansson.h>
struct sp_proto_buf;
int sp_ws_client_sock(sp_ws_client *c);
/* The params of an "exec" request, as the agent reads them (env, cwd,
 * secret_env may be NULL; timeout 0: the workspace's). */
json_t *sp_ws_exec_params(char *const *argv, char *const *env,
                          const char *cwd, double timeout,
                          char *const *secret_env);
struct sp_proto_buf *sp_ws_client_buf(sp_ws_client *c);
json_int_t sp_ws_client_next_id(sp_ws_client *c);
const char *sp_ws_client_name(const sp_ws_client *c);

#endif
