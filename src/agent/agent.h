/* agent.h — the workspace agent: PID 1 inside a workspace sandbox. It is
 * sandpit's own code, forked (never exec'd from a host file: runc
 * CVE-2019-5736) and locked down like a command before it serves the
 * socketpair to its supervisor. Each exec is a fork and execve with the
 * client's own stdin/stdout/stderr (passed with SCM_RIGHTS), so output
 * flows straight to the client; only the exit status travels back.
 *
 * Messages (proto.h), supervisor -> agent:
 *   {"id":N,"method":"exec","params":{"argv":[..],"env":["K=V"..],
 *    "cwd":"DIR","timeout":S}} + 3 fds (stdin, stdout, stderr)
 *   (a client's "secret_env":[NAME..] reaches us as env entries: the
 *   supervisor adds them; with secrets, stdout and stderr are relayed
 *   through a redacting process, secrets.h)
 *   {"method":"signal","params":{"exec":N,"signal":SIG}}
 *   {"method":"cancel","params":{"exec":N}}   client gone: TERM, then KILL
 * agent -> supervisor:
 *   {"method":"ready"} once, then {"id":N,"result":{"status":S,
 *   "timed_out":B}} or {"id":N,"error":{..}} per exec. */
#ifndef SANDPIT_AGENT_H
#define SANDPIT_AGENT_H

#include "agent_ext.h" /* struct sp_agent_cfg */

/* Serve until the socketpair reaches EOF, then exit (which ends every
 * process of the sandbox: we are PID 1). Single-threaded; the process that
 * forked us was single-threaded too, so malloc is safe here. */
_Noreturn void sp_agent_main(const struct sp_agent_cfg *cfg);

#endif
