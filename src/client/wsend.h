/* wsend.h — how an exec ended, said the same way by every front end (CLI
 * `exec`, serve, mcp): the one place an exec's reply from the supervisor
 * (status, timed_out, signal, and the cgroup's counts: oom,
 * memory_limit, pids_refused, pids_limit) becomes an outcome.
 *
 * The outcome is a small JSON object meant to grow (a later report may
 * add fields; readers ignore what they do not know):
 *   {"ended": "exit",      "exit_code": N}
 *   {"ended": "signal",    "exit_code": 128+N, "signal": N, "signal_name": "SIGSEGV"}
 *   {"ended": "timeout",   "exit_code": 124}
 *   {"ended": "oom",       "exit_code": 137, "signal": 9, "limit_bytes": L}
 *   {"ended": "pids",      "exit_code": N, "refused_forks": K, "limit": P}
 *   {"ended": "cancelled"}
 * and, but for a plain exit, "text": the same in words (sp_exec_end_text).
 * "pids": the pids limit refused a fork while it ran and it failed (a
 * non-zero exit or a signal); a command that failed to fork and still
 * exited 0 ended "exit" (with "refused_forks" set). */
#ifndef SANDPIT_WSEND_H
#define SANDPIT_WSEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandpit.h"

/* From an exec reply's result object (NULL: nothing known but status). */
void sp_ws_end_from_reply(json_t *result, int status, sp_exec_end *e);
/* The outcome object above (new reference). */
json_t *sp_ws_end_json(const sp_exec_end *e);

/* The exec's report (docs/report.md): the "report" object the supervisor
 * put in the reply, with "version", "command" (argv, may be NULL) and
 * "outcome" (e) added. New reference; NULL when the reply has none (an
 * older supervisor). */
json_t *sp_ws_report_from_reply(json_t *result, const sp_exec_end *e,
                                char *const *argv);

#endif
