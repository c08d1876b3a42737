/* ws_shell.h — the client side of shells and services (sandpit.h
 * sp_ws_shell_*, sp_ws_service_*), and what the CLI's terminal attach
 * needs beyond them: a raw connection and a request/reply call. */
#ifndef SANDPIT_WS_SHELL_H
#define SANDPIT_WS_SHELL_H

#include <jansson.h>

#include "sandpit.h"
#include "workspace.h" /* sp_ws_connect_fd */

/* One request on a fresh connection and its reply: 0 with *ret_result
 * (caller decrefs) or < 0 with err (the agent's message). params stolen. */
int sp_ws_call(const char *ws, const char *method, json_t *params,
               json_t **ret_result, sp_error *err);

/* Fill o from a read reply (shell.read, service.logs). */
int sp_ws_output_from_json(json_t *r, sp_ws_output *o, sp_error *err);

#endif
