/* agent_ext.h — what the agent's modules stand on (agent_ext.c): the
 * reply helpers, parked reads of rings, the cgroup gate, and the module
 * table through which agent.c drives them. The modules — shells
 * (agent_pty.c), services (agent_service.c), ports (agent_port.c) — each
 * export one struct sp_agent_module and never call back into agent.c.
 * docs/shells-services.md describes shells and services.
 *
 * Methods (client -> supervisor -> agent, forwarded with a fresh id):
 *   shell.open   {argv?,cwd?,env?,rows?,cols?}       -> {shell,pid}
 *   shell.write  {shell,data(base64)}               -> {}
 *   shell.read   {shell,cursor,max?,wait?,quiet?,until?} -> {cursor,next_cursor,
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
 *   job.start {argv,cwd?,env?,timeout?,stdin?(bool)} (a background exec:
 *                a service without name, probe or restart, with a stdin
 *                pipe when stdin is true) -> the job's status at once
 *   job.status {job}  job.list {} -> {jobs:[..]}
 *   job.logs {job,stream?,cursor?,tail?,max?,wait?} (like service.logs)
 *   job.wait {job,wait?} -> the status once it ended, or after wait s
 *   job.write {job,data(base64)?,eof?}  job.signal {job,signal}
 *   job.remove {job} (an ended job only)
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
/* Background execs (jobs) kept at once: when full, starting one forgets
 * the oldest ended one; with none ended, it is refused. */
#define SP_JOB_MAX 64
/* Output kept per stream of a job. */
#define SP_JOB_RING (1024 * 1024)
/* Stdin queued for a job that does not read it. */
#define SP_JOB_INPUT_MAX (256 * 1024)
/* Default seconds from SIGTERM to SIGKILL when a job is killed for its
 * timeout or at shutdown. */
#define SP_JOB_KILL_GRACE 2.0
/* Modules of the agent's loop (agent.c's table). */
#define SP_AGENT_MODULES_MAX 8
/* Most bytes of an http: probe's response read before closing (past it
 * the rest is left unread: the service may see a reset connection). */
#define SP_SERVICE_PROBE_READ_MAX (64 * 1024)
/* Poll fds the extensions may add to the agent's loop. */
#define SP_AGENT_EXT_MAX_FDS \
    (SP_SHELL_MAX + 3 * SP_SERVICE_MAX + 3 * SP_JOB_MAX + 128)

struct sp_secrets;

/* What PID 1's agent runs with (filled by the host side, agent.h). */
struct sp_agent_cfg {
    int sock;                  /* the socketpair end */
    char **envp;               /* the base environment of every exec */
    const char *path_env;      /* PATH of envp, for the command lookup */
    double default_timeout;    /* seconds; 0 = none */
    double kill_after;         /* seconds from SIGTERM to SIGKILL */
    const struct sp_secrets *secrets; /* NULL: none; else exec output is
                                         relayed and redacted (secrets.h) */
    int gate_fd;               /* >= 0: fork nothing before reading 'x'
                                  here (the cgroup attach is pending) */
    /* The seccomp deny list's watch (docs/report.md): session sid's
     * denials as {"denials": [...], "dropped": N}; NULL: not watched. */
    json_t *(*denials_take)(void *ctx, pid_t sid, uint64_t t0_us);
    void *denials_ctx;
};

/* One module of the agent: the methods starting with `prefix`, its poll
 * fds, children and timers. Any hook may be NULL. */
struct sp_agent_module {
    const char *prefix;
    /* A request: true when it was handled (replied or pending). */
    bool (*handle)(json_int_t id, const char *method, json_t *params);
    size_t (*pollfds)(struct pollfd *pfd, size_t max);
    void (*events)(const struct pollfd *pfd, size_t n);
    /* A child ended: true when it was this module's. */
    bool (*reaped)(pid_t pid, int status);
    /* Absolute time (us) of the next timer, 0 for none. */
    uint64_t (*next_timer)(void);
    void (*timers)(uint64_t now);
    /* The workspace stops: begin ending what the module runs. */
    void (*shutdown)(void);
    /* While stopping: true once nothing of the module runs any more. */
    bool (*stopped)(uint64_t now);
};

extern const struct sp_agent_module sp_agent_pty_module;
extern const struct sp_agent_module sp_agent_svc_module;
extern const struct sp_agent_module sp_agent_port_module;
extern const struct sp_agent_module sp_agent_job_module;

/* ---- the loop's side (called by agent.c) ---- */
void sp_agent_ext_init(const struct sp_agent_cfg *cfg,
                       const struct sp_agent_module *const *mods, size_t n);
/* A request: true when the method was one of ours (replied or pending). */
bool sp_agent_ext_handle(json_int_t id, const char *method, json_t *params);
size_t sp_agent_ext_pollfds(struct pollfd *pfd, size_t max);
void sp_agent_ext_events(const struct pollfd *pfd, size_t n);
/* A child ended: true when it was ours. */
bool sp_agent_ext_reaped(pid_t pid, int status);
/* Milliseconds until the next timer, or -1. */
int sp_agent_ext_timeout_ms(uint64_t now);
void sp_agent_ext_timers(uint64_t now);

/* Before any process is started in the sandbox: wait until the agent is
 * in its cgroup (at most one wait per workspace start; the supervisor's
 * grandchild writes the byte within a grace period). EOF means the
 * attach failed: the agent exits and the workspace with it. */
void sp_agent_gate(void);

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
/* sp_ext_read that waits for what a reader of a terminal needs: the
 * output since cursor (control sequences stripped) matching regex (POSIX
 * extended; NULL: none), or quiet seconds without new output (0: none),
 * or the end, bounded by wait. -1 with *why (a static string) for a bad
 * regex, nothing answered; else 0 (answered now or parked). */
int sp_ext_read_until(json_int_t id, struct sp_ring *ring, void *target,
                      int stream, uint64_t cursor, size_t max, double wait,
                      bool ended, sp_ext_status_fn status, double quiet,
                      const char *regex, const char **why);
/* New bytes (or the end) for target/stream: answer its parked reads. */
void sp_ext_wake(void *target, int stream, bool ended);
/* target is going away: answer its parked reads first. */
void sp_ext_forget(void *target);

#endif
