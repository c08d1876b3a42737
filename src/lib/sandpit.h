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
    SP_LAYER_DISK = 1u << 5,    /* a kernel-enforced disk limit (disk.md) */
    /* The workspace and --rw binds are ID-mapped mounts (root callers;
     * an ordinary user's own id is the sandbox's root without them). */
    SP_LAYER_IDMAP = 1u << 6,
    /* More than one id is mapped inside (root: always; a user: through
     * /etc/subuid, /etc/subgid and newuidmap/newgidmap). */
    SP_LAYER_IDRANGE = 1u << 7,
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
    /* added with the report (docs/report.md): */
    uint64_t pids_refused;    /* forks the pids limit refused */
    uint64_t io_written;      /* bytes written to block devices (io.stat) */
    bool io_known;
} sp_stats;

typedef void (*sp_log_fn)(void *ctx, int level, const char *msg);
enum { SP_LOG_WARN = 1, SP_LOG_INFO = 2, SP_LOG_DEBUG = 3 };

typedef struct sp_run_opts {
    char *const *argv;        /* command and arguments, NULL-terminated */
    sp_log_fn log;            /* warnings and --verbose notes; may be NULL */
    void *log_ctx;
    int verbosity;            /* 0: warnings only */
    /* The report (docs/report.md): when set, *report gets it as JSON text
     * (caller frees) once the command ran. */
    char **report;
    /* Do not watch for seccomp denials (no supervising listener): the
     * report then says they were not observed. */
    bool no_denial_watch;
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

/* A workspace secret (docs/secrets.md): NAME is [A-Za-z_][A-Za-z0-9_]{0,63},
 * the value 4 bytes to 64 KiB. */
typedef struct sp_secret {
    const char *name;
    const void *value;
    size_t len;
} sp_secret;

/* Load a secret from "NAME=@FILE" (the file's bytes, one trailing newline
 * dropped) or "NAME=env:VAR" (the caller's environment variable). A value
 * written into the spec itself is refused (it would sit in argv). On
 * success *ret_name and *ret_value are new (free the value with
 * sp_secret_value_free). Errors are SP_ERR_USAGE. */
SP_EXPORT int sp_secret_load(const char *spec, char **ret_name,
                             void **ret_value, size_t *ret_len, sp_error *err);
/* Zero and free a loaded value. Accepts NULL. */
SP_EXPORT void sp_secret_value_free(void *value, size_t len);

typedef struct sp_ws_create_opts {
    const char *name;          /* NULL: a generated "ws-XXXXXX" */
    double idle_timeout;       /* stop after this many seconds without a
                                  request or running exec; 0 = never */
    double max_lifetime;       /* stop this many seconds after start; 0 = never */
    const char *from;          /* seed /workspace with a copy-on-write view of
                                  this directory (never written); NULL = empty */
    bool read_only_system;     /* system paths read-only as in sp_run; else
                                  the whole filesystem is copy-on-write */
    const sp_secret *secrets;  /* n_secrets of them (docs/secrets.md): kept in
                                  the supervisor's memory only, at
                                  /run/secrets/NAME inside, redacted from
                                  all output */
    size_t n_secrets;
    const char *snapshot_ws;   /* with snapshot: a fork, whose base is the */
    const char *snapshot;      /* snapshot of that workspace (sp_ws_fork) */
} sp_ws_create_opts;

/* Create and start a workspace from a policy (finalized or not: its
 * workspace path is replaced by the workspace's own directory; --pass-fd
 * is refused). Returns 0 once the agent is ready, with the name in
 * ret_name (at least 64 bytes). A name in use fails and changes nothing.
 * Forks the supervisor: call it from a single-threaded process. */
SP_EXPORT int sp_ws_create(const sp_policy *p, const sp_ws_create_opts *o,
                           char *ret_name, size_t ret_len, sp_error *err);
/* 1 when a workspace created now with policy p gets its disk limit
 * enforced by the kernel (docs/disk.md); 0 with `why` filled when not
 * (no limit set, or nothing on this host can enforce one: an ordinary
 * user). The CLI warns on each create then; --require disk refuses. */
SP_EXPORT int sp_ws_disk_check(const sp_policy *p, char *why, size_t len);
/* Start a stopped (or crashed) workspace with its stored policy. */
SP_EXPORT int sp_ws_start(const char *name, sp_error *err);
/* The same with secrets: a workspace created with secrets needs each of
 * them again (they are not kept while it is stopped). */
SP_EXPORT int sp_ws_start_secrets(const char *name, const sp_secret *secrets,
                                  size_t n_secrets, sp_error *err);
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
/* What the workspace changed against its base, read from its
 * copy-on-write layers (docs/workspaces.md): JSON text (caller frees)
 * {"workspace", "added", "modified", "deleted" (sorted arrays of paths
 * inside the sandbox), "truncated"}, or NULL with err filled. Works on a
 * running or a stopped workspace. */
SP_EXPORT char *sp_ws_diff_json(const char *name, sp_error *err);
/* Back to the base: stop its processes, empty its upper layers (what it
 * wrote to /workspace, HOME, the system paths), start it again if it was
 * running. */
SP_EXPORT int sp_ws_reset(const char *name, sp_error *err);

/* Snapshots, restore, fork, pause (docs/snapshots.md). Snapshot names
 * follow the workspace name rules and belong to one workspace. */
typedef struct sp_ws_snapshot_info {
    uint64_t bytes;            /* bytes of regular files in the new layer */
    uint64_t copied;           /* of which copied (the rest is linked from
                                  the last snapshot: unchanged since) */
    uint64_t files;            /* files, symlinks in it */
    uint64_t frozen_us;        /* how long the processes were frozen
                                  (freeze, copy, thaw); 0: they were not */
    uint64_t total_us;
    int depth;                 /* layers below the workspace now */
    bool merged;               /* the depth bound merged the stack */
} sp_ws_snapshot_info;
/* A read-only capture of the workspace's filesystem, taken while its
 * processes are frozen, which then run on. A name in use, a full disk or
 * any failure keeps nothing and leaves the workspace as it was. */
SP_EXPORT int sp_ws_snapshot(const char *name, const char *snap,
                             sp_ws_snapshot_info *info, sp_error *err);
/* JSON array (caller frees): name, created, size, files, depth. */
SP_EXPORT char *sp_ws_snapshots_json(const char *name, sp_error *err);
/* Remove a snapshot; its layers stay while a fork or restore uses them. */
SP_EXPORT int sp_ws_snapshot_rm(const char *name, const char *snap,
                                sp_error *err);
/* The workspace's filesystem becomes the snapshot's: a running workspace
 * is stopped and started again (*restarted true): its processes, shells
 * and services end; services with restart come back whole (command,
 * environment, cwd, probe; restore waits until they are ready). A running
 * workspace with secrets is refused before anything stops. */
SP_EXPORT int sp_ws_restore(const char *name, const char *snap,
                            bool *restarted, sp_error *err);
/* The same, giving a running workspace its secrets again to start with
 * (every recorded name, as sp_ws_start_secrets wants; ignored when the
 * workspace is stopped, which stays stopped). */
SP_EXPORT int sp_ws_restore_secrets(const char *name, const char *snap,
                                    const sp_secret *secrets,
                                    size_t n_secrets, bool *restarted,
                                    sp_error *err);
/* The same, saying what became of each service it brought back:
 * *ret_services (may be NULL; caller frees; "[]" when none or the
 * workspace was stopped) is a JSON array of {"name", "state": "running" |
 * "ready" | "failed", "reason" (failed only)}, in start order; one left
 * out because its spec held a secret's value is "failed" too. */
SP_EXPORT int sp_ws_restore_report(const char *name, const char *snap,
                                   const sp_secret *secrets,
                                   size_t n_secrets, bool *restarted,
                                   char **ret_services, sp_error *err);
/* A new workspace `newname` whose base is the snapshot (its layers shared,
 * read-only), with policy p or, NULL, the snapshotted workspace's. */
SP_EXPORT int sp_ws_fork(const char *name, const char *snap,
                         const char *newname, const sp_policy *p,
                         sp_error *err);
/* Freeze / thaw every process of a running workspace. */
SP_EXPORT int sp_ws_pause(const char *name, sp_error *err);
SP_EXPORT int sp_ws_resume(const char *name, sp_error *err);
/* 1 paused, 0 not (or not running), < 0 no such workspace. */
SP_EXPORT int sp_ws_paused(const char *name);
/* Wait up to timeout seconds (0: not at all) for a paused workspace to be
 * resumed; -EAGAIN (SP_ERR_USAGE) when it still is. */
SP_EXPORT int sp_ws_wait_resumed(const char *name, double timeout,
                                 sp_error *err);
/* Saving running processes (CRIU): not supported; fails with -EOPNOTSUPP
 * and changes nothing. */
SP_EXPORT int sp_ws_checkpoint(const char *name, const char *snap,
                               sp_error *err);

typedef struct sp_ws_client sp_ws_client;

/* How an exec ended (docs/workspaces.md, "How an exec ended"): the
 * cgroup's counts and the wait status, classified in one place for every
 * front end. */
typedef enum sp_exec_ended {
    SP_ENDED_EXIT = 0,         /* it exited: exit_code */
    SP_ENDED_SIGNAL,           /* a signal ended it: signal */
    SP_ENDED_TIMEOUT,          /* it ran past its timeout (exit_code 124) */
    SP_ENDED_OOM,              /* the kernel killed it: out of memory */
    SP_ENDED_PIDS,             /* the pids limit refused a fork, and it failed */
    SP_ENDED_CANCELLED,        /* its caller cancelled it */
} sp_exec_ended;

typedef struct sp_exec_end {
    sp_exec_ended how;
    int exit_code;             /* as sp_ws_exec returns it */
    int signal;                /* 0: none */
    uint64_t memory_limit;     /* bytes; 0: unknown or none */
    uint64_t pids_limit;       /* 0: unknown or none */
    uint64_t pids_refused;     /* forks the pids limit refused meanwhile */
} sp_exec_end;

/* In words, e.g. "killed: out of memory (limit 64 MiB)"; "" for a plain
 * exit. Returns buf. */
SP_EXPORT const char *sp_exec_end_text(const sp_exec_end *e, char *buf,
                                       size_t len);

typedef struct sp_ws_exec_opts {
    char *const *argv;         /* NULL-terminated */
    char *const *env;          /* extra "K=V" entries, NULL-terminated; may be NULL */
    const char *cwd;           /* inside, relative to /workspace; NULL = /workspace */
    double timeout;            /* seconds; 0 = the workspace policy's */
    int fds[3];                /* stdin, stdout, stderr; -1 = /dev/null */
    bool forward_signals;      /* while waiting, SIGINT, SIGTERM, SIGHUP and
                                  SIGQUIT of the caller go to the command's
                                  process group */
    char *const *secret_env;   /* names of the workspace's secrets to set as
                                  environment variables, NULL-terminated;
                                  may be NULL */
    sp_exec_end *ended;        /* when set: how it ended, filled when the
                                  call returns >= 0 */
    char **report;             /* when set: the report (docs/report.md) as
                                  JSON text, caller frees; NULL when the
                                  supervisor sent none */
    bool changes;              /* with report: it lists the paths the
                                  command created, changed or deleted */
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

/* A running workspace's egress proxy log (--net allow:...,
 * docs/network.md): the events with seq > after_seq still kept in the
 * supervisor's ring, as JSON text (caller frees): {"events": [{"seq",
 * "time_ms", "duration_ms", "client", "method", "host", "port",
 * "decision", "status", "rule", "reason", "upstream", "bytes_up",
 * "bytes_down"}...], "last": SEQ, "first_kept": SEQ, "connections": N}.
 * NULL with err filled on failure (SP_ERR_USAGE: no such workspace, not
 * running, no proxy). */
SP_EXPORT char *sp_ws_net_log_json(const char *name, uint64_t after_seq,
                                   sp_error *err);

/* ---- files in a workspace (docs/files.md) ----------------------------- *
 *
 * Paths are relative to the workspace (/workspace inside; "/workspace/x"
 * is accepted too) and resolved by the agent inside the sandbox beneath
 * the workspace: nothing outside it can be named, through "..", a symlink
 * or a /proc magic link. Operations that change something also refuse a
 * symlink on the way to the parent directory and "." or ".." components.
 * One read or write moves at most SP_WS_FILE_MAX_IO bytes. Failures:
 * negative errno (ENOENT, EXDEV for a path leading outside, ELOOP for a
 * refused symlink, EISDIR, EFBIG...) with err set (kind SP_ERR_USAGE). */

#define SP_WS_FILE_MAX_IO (64 * 1024 * 1024)
enum {
    SP_WS_FILE_PARENTS = 1u << 0,    /* write, mkdir: make missing parents */
    SP_WS_FILE_RECURSIVE = 1u << 1,  /* remove: a directory and its content */
    SP_WS_FILE_NOREPLACE = 1u << 2,  /* rename: fail if the target exists */
    SP_WS_FILE_NOSYNC = 1u << 3,     /* write: skip the fsync (still atomic,
                                        not durable across a host crash) */
};

/* One entry as JSON text (caller frees): {"path","type" ("file", "dir",
 * "symlink", "fifo", "socket", "char", "block"),"size","mode","mtime"
 * [,"target"]}. A symlink is described, not followed. */
SP_EXPORT char *sp_ws_file_stat(sp_ws_client *c, const char *path,
                                sp_error *err);
/* A directory's entries (sorted; with recursive, depth first, paths
 * relative to it) as a JSON array of stat objects; a non-directory lists
 * itself. Fetches every page. */
SP_EXPORT char *sp_ws_file_list(sp_ws_client *c, const char *path,
                                bool recursive, sp_error *err);
/* Read length bytes (< 0: to the end) from offset of a regular file.
 * *ret_data (caller frees; may be NULL when *ret_len is 0). */
SP_EXPORT int sp_ws_file_read(sp_ws_client *c, const char *path,
                              uint64_t offset, int64_t length,
                              void **ret_data, size_t *ret_len,
                              sp_error *err);
/* Replace (or create) a file atomically: a temp file in the same
 * directory, fsync (unless SP_WS_FILE_NOSYNC), rename. mode < 0: the old
 * file's, else 0644. */
SP_EXPORT int sp_ws_file_write(sp_ws_client *c, const char *path,
                               const void *data, size_t len, int mode,
                               unsigned flags, sp_error *err);
SP_EXPORT int sp_ws_file_mkdir(sp_ws_client *c, const char *path, int mode,
                               unsigned flags, sp_error *err);
SP_EXPORT int sp_ws_file_remove(sp_ws_client *c, const char *path,
                                unsigned flags, sp_error *err);
SP_EXPORT int sp_ws_file_rename(sp_ws_client *c, const char *from,
                                const char *to, unsigned flags,
                                sp_error *err);
/* Apply a unified diff (patch -p strip) to the workspace, all or nothing.
 * Returns 0 when it applied, 1 when it did not (nothing changed; the
 * report says which file and hunk), < 0 when the patch is malformed or
 * sandpit failed. *ret_report (optional, caller frees): the JSON report
 * (docs/patch.md) with "ok". */
SP_EXPORT int sp_ws_patch(sp_ws_client *c, const char *text, size_t len,
                          int strip, bool dry_run, char **ret_report,
                          sp_error *err);
/* Unpack the archive read from in_fd (tar, tar.gz, tar.zst, zip...) into
 * directory dest (made when missing), all or nothing: it is unpacked into
 * a staging directory first. *ret_stats (optional): JSON {"entries",
 * "bytes","skipped","skips"}. */
SP_EXPORT int sp_ws_import(sp_ws_client *c, const char *dest, int in_fd,
                           char **ret_stats, sp_error *err);
/* Write path (a directory or file; NULL = the workspace) as a tar (or
 * tar.gz) stream to out_fd. */
SP_EXPORT int sp_ws_export(sp_ws_client *c, const char *path, int out_fd,
                           bool gzip, char **ret_stats, sp_error *err);

/* ---- shells and services in a workspace (docs/shells-services.md) ---- *
 *
 * Each call is one synchronous request to the workspace `ws` (its name).
 * Shells and services live in the workspace's agent: they keep running
 * when the caller goes away. Errors: SP_ERR_USAGE for a bad argument, an
 * unknown shell or service, a workspace that is not running. */

typedef struct sp_ws_shell_opts {
    char *const *argv;         /* NULL: bash --noprofile --norc, else sh */
    char *const *env;          /* extra "K=V" entries; may be NULL */
    const char *cwd;           /* NULL: /workspace */
    unsigned rows, cols;       /* 0: 24 x 80 */
    double timeout;            /* seconds it may live (then it is hung up,
                                  as by sp_ws_shell_close); 0: no bound */
} sp_ws_shell_opts;

/* Output read from a shell or a service log, by cursor (bytes written
 * since the start). */
typedef struct sp_ws_output {
    uint64_t cursor;           /* where data begins: the asked cursor, or
                                  the oldest byte kept when it was behind */
    uint64_t next_cursor;      /* ask for this one next */
    char *data;                /* len bytes, NUL-terminated; free with
                                  sp_ws_output_free */
    size_t len;
    bool truncated;            /* the asked cursor was behind the buffer: */
    uint64_t dropped;          /* this many bytes are lost */
    bool ended;                /* the shell/service ended and all is read */
    int exit_code;             /* -1 while running */
    char state[16];            /* shells: running, closing, exited;
                                  services: see sp_ws_service_status_json */
} sp_ws_output;
SP_EXPORT void sp_ws_output_free(sp_ws_output *o);

/* Open a PTY shell; returns its id (> 0) or < 0. */
SP_EXPORT int sp_ws_shell_open(const char *ws, const sp_ws_shell_opts *o,
                               sp_error *err);
/* Queue input (at most 64 KiB a call). */
SP_EXPORT int sp_ws_shell_write(const char *ws, int shell, const void *data,
                                size_t len, sp_error *err);
/* Read up to max bytes (0: 256 KiB) from cursor; when none are there yet,
 * wait up to `wait` seconds for some (0: do not wait). */
SP_EXPORT int sp_ws_shell_read(const char *ws, int shell, uint64_t cursor,
                               size_t max, double wait, sp_ws_output *ret,
                               sp_error *err);
SP_EXPORT int sp_ws_shell_resize(const char *ws, int shell, unsigned rows,
                                 unsigned cols, sp_error *err);
/* SIGINT, SIGTERM, SIGHUP, SIGKILL or SIGQUIT to the shell's foreground
 * process group. */
SP_EXPORT int sp_ws_shell_signal(const char *ws, int shell, int sig,
                                 sp_error *err);
/* Hang up (SIGHUP to its session, SIGKILL after 2 s); an exited shell is
 * forgotten. */
SP_EXPORT int sp_ws_shell_close(const char *ws, int shell, sp_error *err);
/* Every shell as a JSON array (caller frees): shell, pid, state,
 * exit_code, command, created, rows, cols, end. */
SP_EXPORT char *sp_ws_shell_list_json(const char *ws, sp_error *err);

typedef struct sp_ws_service_opts {
    const char *name;          /* [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
    char *const *argv;
    char *const *env;          /* extra "K=V"; may be NULL */
    const char *cwd;           /* NULL: /workspace */
    const char *ready;         /* NULL, file:PATH, tcp:HOST:PORT, http:URL,
                                  cmd:COMMAND */
    double ready_timeout;      /* seconds; 0: 30 */
    bool restart_on_failure;
    char *const *secret_env;   /* names of the workspace's secrets to set as
                                  NAME=value in its environment; may be NULL
                                  (docs/secrets.md) */
    double timeout;            /* seconds it may run from its start,
                                  restarts included (then it is stopped,
                                  reason "ran past its timeout"); 0: no
                                  bound */
} sp_ws_service_opts;

/* Start a service and wait until it is ready (or running, without a
 * probe). A service that fails (exits before ready, readiness timeout)
 * returns < 0 with the reason and its last output in err. ret_json
 * (may be NULL; caller frees) gets its status either way. */
SP_EXPORT int sp_ws_service_start(const char *ws, const sp_ws_service_opts *o,
                                  char **ret_json, sp_error *err);
/* One service's status as a JSON object, or (svc NULL) all of them as an
 * array: name, state (starting, running, ready, stopping, restarting,
 * exited, failed), pid, exit_code, started, ready_at, ended, reason,
 * stopped_by, restarts, and its spec: argv, env, cwd, ready,
 * ready_timeout, secret_env (names) (a list entry past SP_SERVICE_LIST_FULL has
 * "spec_omitted": true instead; docs/shells-services.md). Caller frees. */
SP_EXPORT char *sp_ws_service_status_json(const char *ws, const char *svc,
                                          sp_error *err);
/* Read a service's stdout (or stderr) from cursor (>= 0) or from its last
 * `tail` lines (cursor < 0, tail >= 0) or the oldest byte kept. */
SP_EXPORT int sp_ws_service_logs(const char *ws, const char *svc,
                                 bool want_stderr, int64_t cursor, long tail,
                                 size_t max, double wait, sp_ws_output *ret,
                                 sp_error *err);
/* SIGTERM to its process group, SIGKILL after grace seconds (< 0: 5);
 * ret_json says which ({"stopped_by": "TERM"|"KILL"|null}). */
SP_EXPORT int sp_ws_service_stop(const char *ws, const char *svc, double grace,
                                 char **ret_json, sp_error *err);

/* Any workspace method with JSON params (NULL: none); the result as JSON
 * text (caller frees) or NULL with err. */
SP_EXPORT char *sp_ws_call_json(const char *ws, const char *method,
                                const char *params_json, sp_error *err);

/* ---- images (docs/images.md) ------------------------------------------ */

/* Import an OCI image layout (a directory or a tar of one) or a
 * docker-save / podman-save archive (tar, tar.gz) into the image store
 * under $SANDPIT_STATE/images/: every blob checked against its sha256
 * digest, the layers unpacked once and flattened into one shared tree.
 * name NULL: the image's own ref name or tag. On failure nothing is left
 * behind. The name used goes to ret_name (SP_ERR_USAGE: a bad name, a
 * damaged or hostile image). */
SP_EXPORT int sp_image_import(const char *src, const char *name,
                              char *ret_name, size_t ret_len, sp_error *err);
/* Imported images as a JSON array (caller frees): name, digest, layers,
 * imported (unix seconds). */
SP_EXPORT char *sp_image_list_json(sp_error *err);
/* Remove an image; refused (SP_ERR_USAGE, EBUSY) while a workspace uses it. */
SP_EXPORT int sp_image_rm(const char *name, sp_error *err);
/* A finalized policy's default command (an image's Entrypoint + Cmd), a
 * NULL-terminated array owned by the policy, or NULL when there is none. */
SP_EXPORT char *const *sp_policy_default_argv(const sp_policy *p);
/* The policy's post_create setup command (a shell command line), or NULL.
 * Front ends run it once after create only when the operator asks
 * (--allow-post-create), and say so when they skip it. */
SP_EXPORT const char *sp_policy_post_create(const sp_policy *p);

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
