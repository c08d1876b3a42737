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

/* The same request with its reply as an event, for a caller's poll loop
 * (serve, mcp: a readiness wait or a read with wait never blocks them).
 * start: connect and send (params stolen); 0 with *ret, or < 0 with err.
 * fd: the socket to poll for POLLIN, -1 once done. step: read what is
 * there; 1 when the reply (or an error) is in, 0 not yet. result: the
 * result (caller decrefs) or NULL with err. free: a call not done is
 * abandoned (its connection closes; the agent's reply is dropped). */
struct sp_ws_acall;
int sp_ws_acall_start(const char *ws, const char *method, json_t *params,
                      struct sp_ws_acall **ret, sp_error *err);
int sp_ws_acall_fd(const struct sp_ws_acall *c);
int sp_ws_acall_step(struct sp_ws_acall *c);
json_t *sp_ws_acall_result(struct sp_ws_acall *c, sp_error *err);
void sp_ws_acall_free(struct sp_ws_acall *c);

/* service.start's request and the reading of its reply, for
 * sp_ws_service_start and its event form. */
int sp_ws_service_start_params(const sp_ws_service_opts *o, json_t **ret,
                               sp_error *err);
int sp_ws_service_start_reply(const char *name, json_t *r, char **ret_json,
                              sp_error *err);

/* The read of a log ring (a service's, a background exec's) into p (stolen;
 * its own key set): stream, then cursor (>= 0) or tail (>= 0), max (0:
 * the agent's), wait (> 0). Returns p, or NULL when p is. */
json_t *sp_ws_read_params(json_t *p, bool want_stderr, int64_t cursor,
                          long tail, size_t max, double wait);
/* The params of shell.read and service.logs (sp_ws_shell_read,
 * sp_ws_service_logs take the same arguments). */
json_t *sp_ws_shell_read_params(int shell, uint64_t cursor, size_t max,
                                double wait);
json_t *sp_ws_service_logs_params(const char *svc, bool want_stderr,
                                  int64_t cursor, long tail, size_t max,
                                  double wait);

/* Fill o from a read reply (shell.read, service.logs). */
int sp_ws_output_from_json(json_t *r, sp_ws_output *o, sp_error *err);

#endif
