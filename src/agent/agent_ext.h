/* agent_ext.h — the agent's shells (agent_pty.c) and services
 * (agent_service.c), and the few hooks agent.c calls them through
 * (agent_ext.c). docs/shells-services.md describes both.
 *
 * Methods (client -> supervisor -> agent, forwarded with a fresh id):
 *   shell.open   {argv?,cwd?,env?,rows?,cols?}       -> {shell,pid}
 *   shell.write  {shell,data(base64)}               -> {}
 *   shell.read   {shell,cursor,max?,wait?}          -> {cursor,next_cursor,
 *                data(base64),truncated,dropped,state,exit_code}
 *   shell.resize {shell,rows,cols}  shell.signal {shell,signal}
 *   shell.close  {shell}  shell.list {}             -> {shells:[..]}
 *   service.start {name,argv,cwd?,env?,ready?,ready_timeout?,restart?,
 *                secret_env?} (the supervisor adds secret_envv: the values)
 *                -> the service's status, once ready or failed
 *   service.status {name}  service.list {}  (a status carries the spec:
 *                argv, env, cwd, ready, ready_timeout, secret_env names)
 *   service.logs {name,stream?,cursor?,tail?,max?,wait?} (like shell.read)
 *   service.stop {name,grace?} -> {stopped_by:"TERM"|"KILL"|null}
 *   shutdown {} (supervisor only): services stopped, then the agent exits
 * Every input is hostile: sizes, counts and names are bounded below. */
#ifndef SANDPIT_AGENT_EXT_H
#define SANDPIT_AGENT_EXT_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Shells kept at once (exited ones count until closed). */
#define SP_SHELL_MAX 64
/* Output kept per shell. */
#define SP_SHELL_RING (1024 * 1024)
/* Most output bytes one read returns (base64 keeps the reply within
 * SP_PROTO_MAX_LINE). */
#define SP_SHELL_READ_MAX (256 * 1024)
/* Input queued for a shell that does not read it. */
#define SP_SHELL_INPUT_MAX (256 * 1024)
/* Most bytes one shell.write carries (before base64). */
#define SP_SHELL_WRITE_MAX (64 * 1024)
/* Seconds from SIGHUP to SIGKILL when a shell is closed. */
#define SP_SHELL_CLOSE_GRACE 2.0
/* Longest wait of one read (seconds). */
#define SP_EXT_MAX_WAIT 300.0
/* Reads waiting for output at once, over all shells and services. */
#define SP_EXT_MAX_WAITERS 256
/* Services at once (ended ones count until replaced). */
#define SP_SERVICE_MAX 64
/* Log ring per stream of a service. */
#define SP_SERVICE_RING (4 * 1024 * 1024)
/* Longest service name: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
#define SP_SERVICE_NAME_MAX 64
/* Default seconds a readiness probe may take, and the default grace from
 * SIGTERM to SIGKILL at stop. */
#define SP_SERVICE_READY_TIMEOUT 30.0
#define SP_SERVICE_STOP_GRACE 5.0
/* Restart backoff: first delay, cap (seconds); a run longer than
 * SP_SERVICE_BACKOFF_RESET resets it. */
#define SP_SERVICE_BACKOFF_MIN 0.5
#define SP_SERVICE_BACKOFF_MAX 30.0
#define SP_SERVICE_BACKOFF_RESET 10.0
/* Most bytes of one service's spec (its argv, -e entries, cwd and probe
 * strings together): refused at start above it. The agent reports the
 * spec back in status replies; with at most 6 bytes of JSON per byte
 * (\u00XX), a status stays well within SP_PROTO_MAX_LINE. */
#define SP_SERVICE_SPEC_MAX (128 * 1024)
/* A service.list reply carries full specs for the first services that
 * fit in this many bytes of JSON; later ones say "spec_omitted": true
 * (service.status NAME has theirs), so the list fits in one line. */
#define SP_SERVICE_LIST_FULL (512 * 1024)
/* Most bytes of an http: probe's response read before closing (past it
 * the rest is left unread: the service may see a reset connection). */
#define SP_SERVICE_PROBE_READ_MAX (64 * 1024)
/* Poll fds the extensions may add to the agent's loop. */
#define SP_AGENT_EXT_MAX_FDS (SP_SHELL_MAX + 3 * SP_SERVICE_MAX + 128)

struct sp_agent_cfg;

/* ---- hooks (agent_ext.c), called by agent.c ---- */
void sp_agent_ext_init(const struct sp_agent_cfg *cfg);
/* A request: true when the method was one of ours (replied or pending). */
bool sp_agent_ext_handle(json_int_t id, const char *method, json_t *params);
size_t sp_agent_ext_pollfds(struct pollfd *pfd, size_t max);
void sp_agent_ext_events(const struct pollfd *pfd, size_t n);
/* A child ended: true when it was ours. */
bool sp_agent_ext_reaped(pid_t pid, int status);
/* Milliseconds until the next timer, or -1. */
int sp_agent_ext_timeout_ms(uint64_t now);
void sp_agent_ext_timers(uint64_t now);

/* ---- shared by the modules ---- */
void sp_ext_send(char *line);                 /* exits the agent on failure */
void sp_ext_send_fds(char *line, const int *fds, size_t n);
void sp_ext_reply(json_int_t id, json_t *result);
void sp_ext_error(json_int_t id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The base environment with "K=V" entries of params[key] on top (checked);
 * NULL with *why set on bad input. Caller frees the array only. */
char **sp_ext_env(json_t *params, const char *key, bool want_term,
                  const char **why);
char **sp_ext_base_env(void);
const char *sp_ext_path_env(void);
/* Is name an executable file in one of path's directories? */
bool sp_ext_which(const char *name, const char *path);
/* Kill every process whose session is sid (a /proc scan). */
void sp_ext_kill_session(pid_t sid, int sig);

struct sp_ring;
/* A read of a ring: reply now when there are bytes, the target ended, or
 * wait is 0; else park it until then or the deadline. `target` is an
 * opaque key; `status` fills the reply's extra fields. */
typedef void (*sp_ext_status_fn)(void *target, int stream, json_t *reply);
void sp_ext_read(json_int_t id, struct sp_ring *ring, void *target, int stream,
                 uint64_t cursor, size_t max, double wait, bool ended,
                 sp_ext_status_fn status);
/* New bytes (or the end) for target/stream: answer its parked reads. */
void sp_ext_wake(void *target, int stream, bool ended);
/* target is going away: answer its parked reads first. */
void sp_ext_forget(void *target);

/* ---- agent_pty.c ---- */
bool sp_pty_handle(json_int_t id, const char *method, json_t *params);
size_t sp_pty_pollfds(struct pollfd *pfd, size_t max);
void sp_pty_events(const struct pollfd *pfd, size_t n);
bool sp_pty_reaped(pid_t pid, int status);
uint64_t sp_pty_next_timer(void);
void sp_pty_timers(uint64_t now);
void sp_pty_shutdown(void);

/* ---- agent_port.c ---- */
bool sp_port_handle(json_int_t id, const char *method, json_t *params);
size_t sp_port_pollfds(struct pollfd *pfd, size_t max);
void sp_port_events(const struct pollfd *pfd, size_t n);
uint64_t sp_port_next_timer(void);
void sp_port_timers(uint64_t now);

/* ---- agent_service.c ---- */
bool sp_svc_handle(json_int_t id, const char *method, json_t *params);
size_t sp_svc_pollfds(struct pollfd *pfd, size_t max);
void sp_svc_events(const struct pollfd *pfd, size_t n);
bool sp_svc_reaped(pid_t pid, int status);
uint64_t sp_svc_next_timer(void);
void sp_svc_timers(uint64_t now);
/* Stop every service (TERM, KILL after grace); true once none runs. */
bool sp_svc_shutdown(uint64_t now);

#endif
