/* sandpit.h — the public API of libsandpit.
 *
 * Lifecycle of a one-shot sandbox:
 *   sp_policy_new() -> sp_policy_apply_json()/sp_policy_add_*() (any number,
 *   later ones on top) -> sp_policy_finalize() (validates the whole policy)
 *   -> sp_run() -> sp_policy_free().
 *
 * Every fallible function returns < 0 on failure (a negative errno or
 * -SP_EFAIL) and fills the optional sp_error. Nothing is printed by the
 * library except what a caller asks for through sp_run_opts.log. */
#ifndef SANDPIT_H
#define SANDPIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_EXPORT __attribute__((visibility("default")))

/* Returned (negated) when a failure has no errno of its own. */
#define SP_EFAIL 10000

/* What kind of failure an sp_error describes; front ends map these to exit
 * codes (docs/exit-codes.md) and JSON-RPC error codes in one place each. */
enum sp_error_kind {
    SP_ERR_NONE = 0,
    SP_ERR_USAGE,       /* bad flag, bad policy key or value */
    SP_ERR_SYSTEM,      /* the host refused something (a namespace, a mount) */
    SP_ERR_REQUIRE,     /* a --require'd layer is missing on this host */
    SP_ERR_NOTFOUND,    /* the command to run does not exist */
    SP_ERR_NOEXEC,      /* the command exists but cannot be executed */
};

typedef struct sp_error {
    int kind;           /* enum sp_error_kind */
    int code;           /* errno, or 0 */
    char message[1024];
} sp_error;

typedef struct sp_policy sp_policy;

/* Layers that --require can demand (bit mask). */
enum sp_layer {
    SP_LAYER_LANDLOCK = 1u << 0,
    SP_LAYER_SECCOMP = 1u << 1,
    SP_LAYER_LIMITS = 1u << 2,
    SP_LAYER_USERNS = 1u << 3,
    SP_LAYER_NETNS = 1u << 4,
};

/* ---- policy ---------------------------------------------------------- */

/* A policy holding the built-in defaults (docs/policy.md). NULL on ENOMEM. */
SP_EXPORT sp_policy *sp_policy_new(void);
SP_EXPORT void sp_policy_free(sp_policy *p);

/* Apply a JSON object (the schema of docs/policy.md) on top of the policy.
 * `origin` names where it came from for messages ("policy file x.json",
 * "--memory"). Unknown keys, wrong types and bad values fail naming the key;
 * on failure the policy is unchanged. */
SP_EXPORT int sp_policy_apply_json_text(sp_policy *p, const char *json,
                                        const char *origin, sp_error *err);
SP_EXPORT int sp_policy_apply_file(sp_policy *p, const char *path,
                                   sp_error *err);
/* A shipped profile by name (profiles/NAME.json under SANDPIT_PROFILE_DIR
 * or the compiled-in directory). */
SP_EXPORT int sp_policy_apply_profile(sp_policy *p, const char *name,
                                      sp_error *err);

/* Validate the whole policy and resolve defaults that depend on the
 * environment (the workspace = current directory). Must be called before
 * sp_run or sp_policy_to_json(..., effective=true). */
SP_EXPORT int sp_policy_finalize(sp_policy *p, sp_error *err);

/* Small accessors for front ends. */
SP_EXPORT bool sp_policy_wants_stats(const sp_policy *p);
SP_EXPORT uint64_t sp_policy_memory_limit(const sp_policy *p);

/* The policy as JSON text (caller frees). */
SP_EXPORT char *sp_policy_to_json(const sp_policy *p, sp_error *err);

/* ---- running --------------------------------------------------------- */

typedef struct sp_stats {
    uint64_t wall_us;
    uint64_t cpu_user_us;
    uint64_t cpu_sys_us;
    uint64_t memory_peak;     /* bytes, 0 when unknown */
    uint64_t pids_peak;       /* 0 when unknown */
    bool memory_known;
    bool pids_known;
    bool oom_killed;
    bool timed_out;
} sp_stats;

typedef void (*sp_log_fn)(void *ctx, int level, const char *msg);
enum { SP_LOG_WARN = 1, SP_LOG_INFO = 2, SP_LOG_DEBUG = 3 };

typedef struct sp_run_opts {
    char *const *argv;        /* command and arguments, NULL-terminated */
    sp_log_fn log;            /* warnings and --verbose notes; may be NULL */
    void *log_ctx;
    int verbosity;            /* 0: warnings only */
} sp_run_opts;

/* Run argv in a new sandbox built from a finalized policy and wait for it.
 * Returns the exit status the CLI should use (>= 0: the command's status,
 * 128+N for signal N, 124 for a timeout, 137 for an out-of-memory kill) or
 * < 0 when sandpit itself failed before the command ran; err says why and
 * err->kind tells 125/126/127 apart. */
SP_EXPORT int sp_run(const sp_policy *p, const sp_run_opts *opts,
                     sp_stats *ret_stats, sp_error *err);

/* ---- persistent workspaces ------------------------------------------- *
 *
 * A workspace is a sandbox that outlives one command: a supervisor process
 * on the host and an agent (PID 1 inside) joined by a socketpair; clients
 * reach the supervisor on workspaces/<name>/control.sock under the state
 * directory ($SANDPIT_STATE, else /var/lib/sandpit as root, else
 * $XDG_STATE_HOME/sandpit). Its directory workspaces/<name>/workspace is
 * mounted read-write at /workspace and kept across stop and start.
 * Errors: kind SP_ERR_USAGE for a bad or unknown name, a name in use, a
 * workspace in the wrong state; SP_ERR_SYSTEM when the host refused. */

/* [a-z0-9][a-z0-9_.-]{0,62} */
SP_EXPORT bool sp_ws_name_valid(const char *name);

typedef struct sp_ws_create_opts {
    const char *name;          /* NULL: a generated "ws-XXXXXX" */
    double idle_timeout;       /* stop after this many seconds without a
                                  request or running exec; 0 = never */
    double max_lifetime;       /* stop this many seconds after start; 0 = never */
} sp_ws_create_opts;

/* Create and start a workspace from a policy (finalized or not: its
 * workspace path is replaced by the workspace's own directory; --pass-fd
 * is refused). Returns 0 once the agent is ready, with the name in
 * ret_name (at least 64 bytes). A name in use fails and changes nothing.
 * Forks the supervisor: call it from a single-threaded process. */
SP_EXPORT int sp_ws_create(const sp_policy *p, const sp_ws_create_opts *o,
                           char *ret_name, size_t ret_len, sp_error *err);
/* Start a stopped (or crashed) workspace with its stored policy. */
SP_EXPORT int sp_ws_start(const char *name, sp_error *err);
/* End every process of a workspace and wait for its supervisor to exit;
 * its directory is kept. Stopping a stopped workspace succeeds. */
SP_EXPORT int sp_ws_stop(const char *name, sp_error *err);
/* Remove a workspace and its directory; a running one only with force
 * (which stops it first). */
SP_EXPORT int sp_ws_rm(const char *name, bool force, sp_error *err);
/* Reap workspaces whose supervisor died (state crashed; socket and
 * cgroups removed) and leftovers of failed creates and removals. Returns
 * how many were reaped, or < 0. */
SP_EXPORT int sp_ws_gc(sp_error *err);
/* Every workspace as a JSON array (caller frees): name, state, created,
 * age, supervisor_pid, agent_pid, processes and memory (null when
 * unknown). */
SP_EXPORT char *sp_ws_list_json(sp_error *err);

typedef struct sp_ws_client sp_ws_client;

typedef struct sp_ws_exec_opts {
    char *const *argv;         /* NULL-terminated */
    char *const *env;          /* extra "K=V" entries, NULL-terminated; may be NULL */
    const char *cwd;           /* inside, relative to /workspace; NULL = /workspace */
    double timeout;            /* seconds; 0 = the workspace policy's */
    int fds[3];                /* stdin, stdout, stderr; -1 = /dev/null */
    bool forward_signals;      /* while waiting, SIGINT, SIGTERM, SIGHUP and
                                  SIGQUIT of the caller go to the command's
                                  process group */
} sp_ws_exec_opts;

/* A connection to a running workspace's supervisor, for many execs. */
SP_EXPORT sp_ws_client *sp_ws_connect(const char *name, sp_error *err);
SP_EXPORT void sp_ws_client_close(sp_ws_client *c);
/* Run argv in the workspace and wait. Pipes, sockets and character
 * devices among o->fds are handed to the command as they are (its output
 * flows straight to them); other kinds (regular files) are relayed
 * through pipes by this call. Returns the exit status (>= 0: the
 * command's, 128+N for signal N, 124 on timeout, 126/127 when it cannot
 * be executed or found) or < 0 when sandpit failed (err says why). */
SP_EXPORT int sp_ws_client_exec(sp_ws_client *c, const sp_ws_exec_opts *o,
                                sp_error *err);
/* Connect, exec, close. */
SP_EXPORT int sp_ws_exec(const char *name, const sp_ws_exec_opts *o,
                         sp_error *err);

/* ---- host ------------------------------------------------------------ */

/* Probe what this host can enforce and return it as JSON text (caller
 * frees); see docs/doctor.md for the keys. */
SP_EXPORT char *sp_doctor_json(void);
/* Render the same probe as human-readable text (caller frees). */
SP_EXPORT char *sp_doctor_text(void);

SP_EXPORT const char *sp_version(void);

#ifdef __cplusplus
}
#endif
#endif
