/* mcp.c — `sandpit mcp`: an MCP server on stdio (mcp.h). Requests are
 * read in one poll loop; workspace lifecycle tools answer at once, execs
 * run as wsjob.h jobs whose output is captured, bounded and, when cut,
 * saved in the workspace for the agent to read on. */
#include "mcp.h"

#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "jsonrpc.h"
#include "rpcops.h"
#include "util.h"
#include "wsend.h"
#include "wsjob.h"

static const char *const versions[] = {"2025-11-25", "2025-06-18",
                                       "2025-03-26", "2024-11-05", NULL};
static const char *const levels[] = {"debug",    "info",  "notice",
                                     "warning",  "error", "critical",
                                     "alert",    "emergency", NULL};
enum { LOG_DEBUG_ = 0, LOG_INFO_ = 1, LOG_WARNING_ = 3 };

struct batch {
    json_t *replies;
    int pending;
};

/* Room for the tool table (checked at start). */
#define MCP_TOOLS_CAP 96

struct call {
    json_t *id;
    struct batch *batch;
    const struct tool *tool;    /* a waiting tool (pend), else exec (job) */
    struct sp_ops_pending *pend;
    struct sp_wsjob *job;
    struct sp_wsjob *save[3];
    char ws[64];
    size_t npfd[3];             /* pollfds of job, save[1], save[2] */
    size_t max_output;
    unsigned seq;
    json_t *structured;         /* built when the command ended */
    char *text;
    /* An exec's progress (the client's _meta.progressToken, or NULL):
     * bytes and lines so far, the last complete line. */
    struct mcp *m;
    json_t *progress;
    uint64_t p_bytes, p_lines, p_sent_at, p_sent_bytes, p_start;
    char p_cur[SP_MCP_PROGRESS_LINE + 1], p_last[SP_MCP_PROGRESS_LINE + 1];
    size_t p_cur_len;
};

struct mcp {
    int in_fd, out_fd;
    struct sp_jrpc_in in;
    struct sp_jrpc_out out;
    struct sp_ops ops;
    struct call *calls[SP_MCP_MAX_CALLS];
    bool initialized;
    bool structured;            /* the client's version knows outputSchema */
    int log_level;
    unsigned seq;
    bool out_dead;
    bool hidden[MCP_TOOLS_CAP];  /* tools left out by --tools */
    bool compact;               /* --tools core: no outputSchema, title or
                                   annotations in tools/list */
};

/* ---- sending ------------------------------------------------------------ */

static void send_obj(struct mcp *m, json_t *o)
{
    if (!o)
        return;
    if (m->out_dead) {
        json_decref(o);
        return;
    }
    if (sp_jrpc_out_push(&m->out, o) < 0)
        m->out_dead = true; /* the client reads nothing: give up on it */
}

static void reply(struct mcp *m, struct batch *b, json_t *o)
{
    if (b)
        json_array_append_new(b->replies, o);
    else
        send_obj(m, o);
}

static void batch_done(struct mcp *m, struct batch *b)
{
    if (!b || b->pending > 0)
        return;
    if (json_array_size(b->replies))
        send_obj(m, json_incref(b->replies));
    json_decref(b->replies);
    free(b);
}

static void mlog(struct mcp *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mlog(struct mcp *m, int level, const char *fmt, ...)
{
    if (level < m->log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_obj(m, sp_jrpc_request(NULL, "notifications/message",
                                json_pack("{s:s,s:s,s:o}", "level",
                                          levels[level], "logger", "sandpit",
                                          "data",
                                          sp_jrpc_string_lossy(msg, strlen(msg)))));
}

/* ---- tools --------------------------------------------------------------- */

typedef json_t *(*tool_fn)(struct sp_ops *, json_t *, sp_error *);

struct tool {
    const char *name;
    const char *title;
    const char *description;
    const char *input;          /* JSON Schema text */
    const char *output;         /* JSON Schema text, or NULL */
    tool_fn fn;                 /* NULL: exec (asynchronous) */
    bool read_only, destructive;
};

#define WS_PROP "\"workspace\":{\"type\":\"string\",\"description\":\"The workspace's name (from workspace_create or workspace_list).\"}"

static const struct tool tools[] = {
    {"workspace_create", "Create a workspace",
     "Create and start a persistent sandboxed workspace: an isolated Linux "
     "environment whose /workspace directory keeps its files between "
     "commands. Returns its name; pass it as `workspace` to the other tools. "
     "No network unless the operator allows it. Limits can only be lowered "
     "below the operator's policy.",
     "{\"type\":\"object\",\"properties\":{"
     "\"name\":{\"type\":\"string\",\"description\":\"Optional name: 1-63 of a-z 0-9 _ . - (default: generated).\"},"
     "\"memory\":{\"type\":[\"string\",\"integer\"],\"description\":\"Memory limit, bytes or a size like \\\"512M\\\" (at most the operator's).\"},"
     "\"cpus\":{\"type\":\"number\",\"description\":\"CPU limit in cores.\"},"
     "\"pids\":{\"type\":\"integer\",\"description\":\"Most processes at once.\"},"
     "\"disk\":{\"type\":[\"string\",\"integer\"],\"description\":\"Disk limit: all the workspace may write, bytes or a size like \\\"2G\\\" (at most the operator's).\"},"
     "\"inodes\":{\"type\":\"integer\",\"description\":\"Most files the workspace may hold (at most the operator's).\"},"
     "\"network\":{\"type\":\"string\",\"description\":\"\\\"none\\\" (default when the operator allows nothing), \\\"policy\\\" (what the operator allows), or, when the operator allows host networking, \\\"host\\\" or \\\"allow:HOST,...\\\".\"},"
     "\"timeout\":{\"type\":\"number\",\"description\":\"Default time limit of each command, seconds.\"},"
     "\"idle_timeout\":{\"type\":\"number\",\"description\":\"Stop the workspace after this many idle seconds (0: never).\"},"
     "\"image\":{\"type\":\"string\",\"description\":\"Base image: one the operator imported and allows (policy images.allowed).\"}"
     "},\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspace\":{\"type\":\"string\"},"
     "\"state\":{\"type\":\"string\"},\"root\":{\"type\":\"string\"},"
     "\"limits\":{\"type\":\"object\"},\"network\":{\"type\":\"string\"}},"
     "\"required\":[\"workspace\",\"state\"]}",
     sp_ops_ws_create, false, false},
    {"workspace_list", "List workspaces",
     "List the workspaces with their state (running, stopped, crashed), age "
     "in seconds, process count and memory use.",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspaces\":{\"type\":\"array\","
     "\"items\":{\"type\":\"object\"}}},\"required\":[\"workspaces\"]}",
     sp_ops_ws_list, true, false},
    {"pool_status", "Warm pool state",
     "The warm pool of ready workspaces (sandpit mcp --pool N): its size, "
     "how many are ready and refilling, and how many creates it served "
     "(hits) or not (misses). pool is null without one.",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"pool\":{\"type\":[\"object\",\"null\"]}},"
     "\"required\":[\"pool\"]}",
     sp_ops_pool_status, true, false},
    {"workspace_start", "Start a workspace",
     "Start a stopped workspace again; its /workspace files are as they were "
     "left.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},"
     "\"required\":[\"workspace\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspace\":{\"type\":\"string\"},"
     "\"state\":{\"type\":\"string\"}},\"required\":[\"workspace\",\"state\"]}",
     sp_ops_ws_start, false, false},
    {"workspace_stop", "Stop a workspace",
     "Stop every process of a workspace; its files are kept and "
     "workspace_start runs it again.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},"
     "\"required\":[\"workspace\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspace\":{\"type\":\"string\"},"
     "\"state\":{\"type\":\"string\"}},\"required\":[\"workspace\",\"state\"]}",
     sp_ops_ws_stop, false, false},
    {"workspace_delete", "Delete a workspace",
     "Delete a workspace and all its files, stopping it first. Cannot be "
     "undone.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},"
     "\"required\":[\"workspace\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspace\":{\"type\":\"string\"},"
     "\"deleted\":{\"type\":\"boolean\"}},\"required\":[\"workspace\",\"deleted\"]}",
     sp_ops_ws_delete, false, true},
    {"exec", "Run a command",
     "Run a command in a workspace and wait for it; returns its exit code, "
     "stdout and stderr. A non-zero exit code is a normal result, not an "
     "error. `command` is an array (program and arguments, no shell) or one "
     "string run by /bin/sh -c. Runs in /workspace unless `cwd` is given. "
     "Long output is cut (\"truncated\": true) and saved whole in the "
     "workspace at the paths in \"output_files\": read it there. For "
     "work that may take longer than about a minute (a test suite, a build), "
     "use exec_start and exec_wait instead, so the call does not time out.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ","
     "\"command\":{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},{\"type\":\"string\"}],"
     "\"description\":\"[\\\"pytest\\\", \\\"-q\\\"] or \\\"make test 2>&1 | tail\\\" (a string runs under /bin/sh -c).\"},"
     "\"cwd\":{\"type\":\"string\",\"description\":\"Working directory, relative to /workspace or absolute inside the sandbox.\"},"
     "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"Extra environment variables.\"},"
     "\"secret_env\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":32,\"description\":\"Names of the workspace's secrets (given when it was created or started) to set as environment variables NAME=value; the values never appear in results.\"},"
     "\"timeout\":{\"type\":\"number\",\"description\":\"Kill the command after this many seconds (exit code 124).\"},"
     "\"stdin\":{\"type\":\"string\",\"description\":\"Text given to the command on its standard input.\"},"
     "\"max_output\":{\"type\":\"integer\",\"description\":\"Most bytes of output to return (at most the server's bound).\"},"
     "\"changes\":{\"type\":\"boolean\",\"description\":\"List in report.changes the paths the command created, changed or deleted (from the workspace's copy-on-write layer).\"}"
     "},\"required\":[\"workspace\",\"command\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{"
     "\"exit_code\":{\"type\":\"integer\"},\"timed_out\":{\"type\":\"boolean\"},"
     "\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":\"string\"},"
     "\"truncated\":{\"type\":\"boolean\"},"
     "\"stdout_bytes\":{\"type\":\"integer\"},\"stderr_bytes\":{\"type\":\"integer\"},"
     "\"output_files\":{\"type\":\"object\"},\"duration_ms\":{\"type\":\"number\"},"
     "\"outcome\":{\"type\":\"object\",\"description\":\"How it ended: ended is exit, signal, timeout, oom, pids or cancelled, with the details (signal, limit_bytes, refused_forks, limit).\","
     "\"properties\":{\"ended\":{\"type\":\"string\",\"enum\":[\"exit\",\"signal\",\"timeout\",\"oom\",\"pids\",\"cancelled\"]}},\"required\":[\"ended\"]},"
     "\"report\":{\"type\":\"object\",\"description\":\"What the sandbox did to the command (docs/report.md): outcome, resources, denials (in order, with counts), what could not be observed and why, layers.\"}},"
     "\"required\":[\"exit_code\",\"stdout\",\"stderr\",\"truncated\"]}",
     NULL, false, false},
    {"workspace_diff", "Show changed files",
     "What the workspace changed against its base: the paths added, modified and deleted (inside the sandbox, e.g. /workspace/src/x.py). Long lists come in pages: \\\"next_offset\\\" (null at the end) is the offset to ask for next.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"offset\":{\"type\":\"integer\",\"description\":\"Where to go on from: the next_offset of the previous call (default 0).\"}" "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_diff, true, false},
    {"workspace_audit", "Show what the sandbox refused",
     "The workspace's denial log: system calls the seccomp filter refused and network requests the egress proxy refused, per command, with counts (oldest first; pass after = the last seq seen to read on). Kept across stop and start, bounded.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"after\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"Only entries with a larger seq.\"},\"max\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000}},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_audit, true, false},
    {"workspace_reset", "Reset a workspace",
     "Throw away every change the workspace made (its files in /workspace, "
     "HOME, installed packages) and start it again from its base. Cannot be "
     "undone.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_reset, false, true},
    {"workspace_snapshot", "Snapshot a workspace",
     "Capture the workspace's files (everything it wrote: /workspace, HOME, "
     "installed packages) as a named, read-only snapshot, to go back to "
     "with workspace_restore. Its processes keep running.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"snapshot\":{\"type\":\"string\",\"description\":\"A new name for the snapshot (1 to 63 of a-z 0-9 _ . -).\"}},\"required\":[\"workspace\",\"snapshot\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_snapshot, false, false},
    {"workspace_snapshots", "List snapshots",
     "The workspace's snapshots: name, size, files, time.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_snapshots, true, false},
    {"workspace_restore", "Restore a snapshot",
     "Put the workspace's files back to a snapshot. What it wrote since is "
     "lost, and a running workspace is restarted: its processes, shells and "
     "services end; services started with restart_on_failure come back, "
     "and \"services\" in the result says for each whether it is running, "
     "ready or failed (with the reason).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"snapshot\":{\"type\":\"string\",\"description\":\"The snapshot's name (from workspace_snapshots).\"}},\"required\":[\"workspace\",\"snapshot\"],\"additionalProperties\":false}",
     NULL, sp_ops_ws_restore, false, true},
    {"workspace_fork", "Fork a snapshot",
     "Create and start a new workspace whose files are a snapshot's (shared, "
     "not copied: the original and every fork change independently). It "
     "gets the operator's policy, narrowed by `policy` as workspace_create "
     "narrows it, and the snapshot's image; not the snapshotted "
     "workspace's other settings.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ","
     "\"snapshot\":{\"type\":\"string\",\"description\":\"The snapshot's name (from workspace_snapshots).\"},"
     "\"name\":{\"type\":\"string\",\"description\":\"The new workspace's name (1 to 63 of a-z 0-9 _ . -; not in use).\"},"
     "\"policy\":{\"type\":\"object\",\"description\":\"Optional limits as workspace_create takes them (at most the operator's).\","
     "\"properties\":{"
     "\"memory\":{\"type\":[\"string\",\"integer\"],\"description\":\"Memory limit, bytes or a size like \\\"512M\\\".\"},"
     "\"cpus\":{\"type\":\"number\"},\"pids\":{\"type\":\"integer\"},"
     "\"disk\":{\"type\":[\"string\",\"integer\"]},\"inodes\":{\"type\":\"integer\"},"
     "\"network\":{\"type\":\"string\",\"description\":\"As workspace_create's network.\"},"
     "\"timeout\":{\"type\":\"number\"},\"idle_timeout\":{\"type\":\"number\"},"
     "\"image\":{\"type\":\"string\",\"description\":\"Default: the snapshot's image.\"}"
     "},\"additionalProperties\":false}"
     "},\"required\":[\"workspace\",\"snapshot\",\"name\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"workspace\":{\"type\":\"string\"},"
     "\"state\":{\"type\":\"string\"},\"root\":{\"type\":\"string\"},"
     "\"limits\":{\"type\":\"object\"},\"network\":{\"type\":\"string\"},"
     "\"forked_from\":{\"type\":\"object\"}},"
     "\"required\":[\"workspace\",\"state\",\"forked_from\"]}",
     sp_ops_ws_fork, false, false},
    {"file_list", "List files",
     "List a directory in /workspace (path relative to it; default the workspace itself) with type, size and mode of each entry; recursive lists the whole tree.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"Directory, relative to /workspace.\"},\"recursive\":{\"type\":\"boolean\",\"description\":\"List subdirectories too.\"}" "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_file_list, true, false},
    {"file_read", "Read a file",
     "Read a file of the workspace. Text comes back in \\\"content\\\", bytes that are not UTF-8 in \\\"content_base64\\\". Long files are cut (\\\"truncated\\\": true): read on from \\\"next_offset\\\".",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"File path, relative to /workspace.\"},\"offset\":{\"type\":\"integer\",\"description\":\"Byte offset to start at (default 0).\"},\"length\":{\"type\":\"integer\",\"description\":\"Most bytes to read (default and at most the server's bound).\"}" "},\"required\":[\"workspace\",\"path\"],\"additionalProperties\":false}",
     NULL, sp_ops_file_read, true, false},
    {"file_write", "Write a file",
     "Create or replace a file in the workspace (atomically; missing parent directories are made). Give the text as \\\"content\\\", or bytes as \\\"content_base64\\\".",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"File path, relative to /workspace.\"},\"content\":{\"type\":\"string\",\"description\":\"The new content, UTF-8 text.\"},\"content_base64\":{\"type\":\"string\",\"description\":\"The new content as base64, for binary files.\"},\"mode\":{\"type\":\"integer\",\"description\":\"Permission bits, e.g. 493 for 0755 (default: the old file's, else 0644).\"}" "},\"required\":[\"workspace\",\"path\"],\"additionalProperties\":false}",
     NULL, sp_ops_file_write, false, true},
    {"file_delete", "Delete a file",
     "Delete a file, or a directory with recursive: true.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"Path, relative to /workspace.\"},\"recursive\":{\"type\":\"boolean\",\"description\":\"Delete a directory and everything in it.\"}" "},\"required\":[\"workspace\",\"path\"],\"additionalProperties\":false}",
     NULL, sp_ops_file_delete, false, true},
    {"patch_apply", "Apply a patch",
     "Apply a unified diff (as git diff or diff -u write it) to the workspace, all or nothing: when a hunk does not match, nothing changes and the error says which file and hunk.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"patch\":{\"type\":\"string\",\"description\":\"The unified diff text.\"},\"strip\":{\"type\":\"integer\",\"description\":\"Leading path components to strip, as patch -p (default 1: a/ and b/ prefixes).\"},\"dry_run\":{\"type\":\"boolean\",\"description\":\"Only check that it applies.\"}" "},\"required\":[\"workspace\",\"patch\"],\"additionalProperties\":false}",
     NULL, sp_ops_patch_apply, false, true},
    {"file_stat", "Describe a file",
     "Type (file, dir, symlink, ...), size, mode and mtime of a path in the workspace; a symlink is described, not followed (its target is given).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"Path, relative to /workspace.\"}},\"required\":[\"workspace\",\"path\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"},\"size\":{\"type\":\"integer\"},\"mode\":{\"type\":\"integer\"},\"mtime\":{\"type\":\"number\"}},\"required\":[\"path\",\"type\"]}",
     sp_ops_file_stat, true, false},
    {"file_mkdir", "Make a directory",
     "Make a directory in the workspace, with its missing parents (parents: false to refuse a missing parent). An existing directory is fine.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"Directory, relative to /workspace.\"},\"parents\":{\"type\":\"boolean\",\"default\":true,\"description\":\"Make missing parent directories.\"},\"mode\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":4095,\"default\":493,\"description\":\"Permission bits (493 is 0755).\"}},\"required\":[\"workspace\",\"path\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"created\":{\"type\":\"boolean\"}},\"required\":[\"path\",\"created\"]}",
     sp_ops_file_mkdir, false, false},
    {"file_move", "Move or rename a file",
     "Move or rename a file or directory within the workspace (atomically). An existing destination is refused unless overwrite is true.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"from\":{\"type\":\"string\",\"description\":\"Path to move, relative to /workspace.\"},\"to\":{\"type\":\"string\",\"description\":\"New path, relative to /workspace.\"},\"overwrite\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Replace an existing destination.\"}},\"required\":[\"workspace\",\"from\",\"to\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"from\":{\"type\":\"string\"},\"to\":{\"type\":\"string\"},\"moved\":{\"type\":\"boolean\"}},\"required\":[\"from\",\"to\",\"moved\"]}",
     sp_ops_file_move, false, true},
    {"file_glob", "Find files by name",
     "Files whose path matches a glob, below path (default the workspace), sorted, symlinks not followed, .git skipped. A pattern without a slash matches the file name anywhere (*.py); with one, the whole relative path, where * also crosses directories (src/*.c, **/test_*.py).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"pattern\":{\"type\":\"string\",\"description\":\"Glob: *.py, src/*.c, **/test_*.py.\"},\"path\":{\"type\":\"string\",\"description\":\"Directory to look in (default: the workspace).\"},\"max_results\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":100},\"dirs\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Match directories too.\"}},\"required\":[\"workspace\",\"pattern\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"paths\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"truncated\":{\"type\":\"boolean\"}},\"required\":[\"paths\",\"truncated\"]}",
     sp_ops_file_glob, true, false},
    {"file_search", "Search file contents",
     "Lines matching a regular expression (POSIX extended; literal: true for plain text) in the files below path, as grep -rn: path, line number, text (cut to 300 bytes). glob narrows the files (as file_glob). Binary files, files over 4 MiB and .git are skipped; truncated says when max_results was reached.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"pattern\":{\"type\":\"string\",\"description\":\"Extended regular expression, e.g. def [a-z_]+\\\\(.\"},\"path\":{\"type\":\"string\",\"description\":\"Directory to search (default: the workspace).\"},\"glob\":{\"type\":\"string\",\"description\":\"Only files matching this glob, e.g. *.py.\"},\"literal\":{\"type\":\"boolean\",\"default\":false,\"description\":\"The pattern is plain text.\"},\"ignore_case\":{\"type\":\"boolean\",\"default\":false},\"max_results\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":100}},\"required\":[\"workspace\",\"pattern\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"matches\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"line\":{\"type\":\"integer\"},\"text\":{\"type\":\"string\"}}}},\"truncated\":{\"type\":\"boolean\"},\"files_searched\":{\"type\":\"integer\"},\"files_skipped\":{\"type\":\"integer\"}},\"required\":[\"matches\",\"truncated\"]}",
     sp_ops_file_search, true, false},
    {"file_edit", "Edit a file",
     "Replace exact text in a file: old_string must occur exactly once (include enough surrounding lines to make it unique) unless replace_all is true. All or nothing: when it is not found, not unique, or the file changed meanwhile, nothing is written and the error says why.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"path\":{\"type\":\"string\",\"description\":\"File, relative to /workspace.\"},\"old_string\":{\"type\":\"string\",\"minLength\":1,\"description\":\"The exact text to replace, whitespace included.\"},\"new_string\":{\"type\":\"string\",\"description\":\"The text to put instead.\"},\"replace_all\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Replace every occurrence.\"}},\"required\":[\"workspace\",\"path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"replacements\":{\"type\":\"integer\"},\"first_line\":{\"type\":\"integer\"},\"size\":{\"type\":\"integer\"}},\"required\":[\"path\",\"replacements\"]}",
     sp_ops_file_edit, false, true},
    {"shell_open", "Open a shell",
     "Open an interactive shell (a PTY running bash, or the given command) that keeps running between calls; returns its id. Send keystrokes with shell_write and read the screen output with shell_read.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"command\":{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},{\"type\":\"string\"}],\"description\":\"Program and arguments, or one string run by /bin/sh -c.\"},\"cwd\":{\"type\":\"string\",\"description\":\"Working directory.\"},\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"Extra environment variables.\"},\"rows\":{\"type\":\"integer\",\"description\":\"Terminal rows (default 24).\"},\"cols\":{\"type\":\"integer\",\"description\":\"Terminal columns (default 80).\"}" "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_shell_open, false, false},
    {"shell_write", "Type into a shell",
     "Send input to a shell, as typed (end a command with \\\\n).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"shell\":{\"type\":\"integer\",\"description\":\"The shell's id from shell_open.\"},\"input\":{\"type\":\"string\",\"description\":\"Text to send, e.g. \\\"ls\\\\n\\\".\"}" "},\"required\":[\"workspace\",\"shell\",\"input\"],\"additionalProperties\":false}",
     NULL, sp_ops_shell_write, false, false},
    {"shell_read", "Read a shell's output",
     "Read a shell's output from a cursor (0: the start); pass \\\"next_cursor\\\" on the next call to get only what is new. wait: seconds to wait for output when none is there yet; until (a regex, e.g. a prompt) or quiet_ms wait for the whole answer of a command. Control sequences are stripped unless raw.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"shell\":{\"type\":\"integer\",\"description\":\"The shell's id.\"},\"cursor\":{\"type\":\"integer\",\"description\":\"Where to read from (default 0).\"},\"wait\":{\"type\":\"number\",\"minimum\":0,\"maximum\":30,\"description\":\"Seconds to wait (at most 30; default 0, or 30 with until or quiet_ms).\"},\"max_bytes\":{\"type\":\"integer\",\"description\":\"Most bytes to return.\"},"
     "\"until\":{\"type\":\"string\",\"description\":\"Wait until the output since cursor matches this extended regular expression (a prompt: \\\\$ $), bounded by wait.\"},"
     "\"quiet_ms\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":30000,\"description\":\"Wait until no new output came for this many ms, bounded by wait.\"},"
     "\"raw\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Keep terminal control sequences (default: stripped, the text only).\"}" "},\"required\":[\"workspace\",\"shell\"],\"additionalProperties\":false}",
     NULL, sp_ops_shell_read, true, false},
    {"shell_signal", "Signal a shell",
     "Send a signal to the shell's foreground program: INT (Ctrl-C, the default), TERM, HUP, KILL or QUIT.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"shell\":{\"type\":\"integer\",\"description\":\"The shell's id.\"},\"signal\":{\"type\":\"string\",\"description\":\"INT, TERM, HUP, KILL or QUIT.\"}" "},\"required\":[\"workspace\",\"shell\"],\"additionalProperties\":false}",
     NULL, sp_ops_shell_signal, false, false},
    {"shell_close", "Close a shell",
     "Hang up a shell and end its processes.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"shell\":{\"type\":\"integer\",\"description\":\"The shell's id.\"}" "},\"required\":[\"workspace\",\"shell\"],\"additionalProperties\":false}",
     NULL, sp_ops_shell_close, false, true},
    {"shell_resize", "Resize a shell",
     "Set a shell's terminal size (the program in it gets SIGWINCH).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"shell\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"The shell's id.\"},\"rows\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000},\"cols\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000}},\"required\":[\"workspace\",\"shell\",\"rows\",\"cols\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"shell\":{\"type\":\"integer\"},\"rows\":{\"type\":\"integer\"},\"cols\":{\"type\":\"integer\"}},\"required\":[\"shell\",\"rows\",\"cols\"]}",
     sp_ops_shell_resize, false, false},
    {"shell_list", "List shells",
     "The workspace's shells: id, state (running, exited), exit code, pid, size and command.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"shells\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}},\"required\":[\"shells\"]}",
     sp_ops_shell_list, true, false},
    {"service_start", "Start a service",
     "Start a long-running background process (a server, a watcher) under a name and wait until it is ready: ready is file:PATH, tcp:HOST:PORT, http:URL or cmd:COMMAND. Its output is kept; read it with service_logs.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"name\":{\"type\":\"string\",\"description\":\"The service's name: letters, digits, . _ -.\"},\"command\":{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},{\"type\":\"string\"}],\"description\":\"Program and arguments, or one string run by /bin/sh -c.\"},\"cwd\":{\"type\":\"string\",\"description\":\"Working directory.\"},\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"Extra environment variables.\"},\"secret_env\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":32,\"description\":\"Names of the workspace's secrets to set as environment variables NAME=value (the values never appear in results or logs; a restore brings them back).\"},\"ready\":{\"type\":\"string\",\"description\":\"Readiness probe: file:PATH, tcp:HOST:PORT, http:URL or cmd:COMMAND.\"},\"ready_timeout\":{\"type\":\"number\",\"description\":\"Seconds to wait for ready (default 30).\"},\"restart_on_failure\":{\"type\":\"boolean\",\"description\":\"Restart it when it exits with an error.\"}" "},\"required\":[\"workspace\",\"name\",\"command\"],\"additionalProperties\":false}",
     NULL, sp_ops_service_start, false, false},
    {"service_status", "Service status",
     "The state of one service (name) or of all: starting, running, ready, stopping, restarting, exited or failed, with pid, exit code and restarts.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"name\":{\"type\":\"string\",\"description\":\"The service's name (default: all).\"}" "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     NULL, sp_ops_service_status, true, false},
    {"service_logs", "Read a service's logs",
     "Read a service's stdout or stderr: the last `tail` lines, or from a cursor (pass \\\"next_cursor\\\" next time to get only what is new).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"name\":{\"type\":\"string\",\"description\":\"The service's name.\"},\"stream\":{\"type\":\"string\",\"description\":\"stdout (default) or stderr.\"},\"tail\":{\"type\":\"integer\",\"description\":\"Return the last N lines.\"},\"cursor\":{\"type\":\"integer\",\"description\":\"Read from this cursor.\"},\"wait\":{\"type\":\"number\",\"description\":\"Seconds to wait for new output (at most 30).\"},\"max_bytes\":{\"type\":\"integer\",\"description\":\"Most bytes to return.\"}" "},\"required\":[\"workspace\",\"name\"],\"additionalProperties\":false}",
     NULL, sp_ops_service_logs, true, false},
    {"service_stop", "Stop a service",
     "Stop a service: SIGTERM, then SIGKILL after grace seconds.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"name\":{\"type\":\"string\",\"description\":\"The service's name.\"},\"grace\":{\"type\":\"number\",\"description\":\"Seconds between SIGTERM and SIGKILL (default 5).\"}" "},\"required\":[\"workspace\",\"name\"],\"additionalProperties\":false}",
     NULL, sp_ops_service_stop, false, true},
    {"exec_start", "Start a command in the background",
     "Start a command in a workspace and return at once with its number "
     "(job), for work that may outlast the client's timeout (test "
     "suites, builds, installs) or that runs alongside other calls. Then: "
     "exec_wait (until it ends, at most 30 s a call: call again while "
     "ended is false), exec_poll (new output by cursor), exec_write "
     "(stdin), exec_kill, exec_list. Output is kept in a 1 MiB ring per "
     "stream.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"command\":{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},{\"type\":\"string\"}],\"description\":\"Program and arguments, or one string run by /bin/sh -c.\"},"
     "\"cwd\":{\"type\":\"string\",\"description\":\"Working directory, relative to /workspace or absolute.\"},"
     "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"Extra environment variables.\"},"
     "\"secret_env\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":32,\"description\":\"Names of the workspace's secrets to set as environment variables.\"},"
     "\"timeout\":{\"type\":\"number\",\"minimum\":0.001,\"description\":\"Kill it after this many seconds (default: the operator's limit, else none).\"},"
     "\"stdin\":{\"type\":\"string\",\"description\":\"Text given on its standard input (then closed unless stdin_open).\"},"
     "\"stdin_open\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Keep stdin open for exec_write.\"}"
     "},\"required\":[\"workspace\",\"command\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"job\":{\"type\":\"integer\"},"
     "\"state\":{\"type\":\"string\"},\"workspace\":{\"type\":\"string\"}},"
     "\"required\":[\"job\",\"state\"]}",
     sp_ops_exec_start, false, false},
    {"exec_poll", "Read a background command's output",
     "New stdout and stderr of a background exec since the cursors (0: the "
     "start); pass cursor and stderr_cursor from the result to "
     "the next call. wait: seconds to wait for new stdout or the end.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"job\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"The background exec's number (from exec_start or exec_list).\"},"
     "\"cursor\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,\"description\":\"Where to read stdout from.\"},"
     "\"stderr_cursor\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,\"description\":\"Where to read stderr from.\"},"
     "\"wait\":{\"type\":\"number\",\"minimum\":0,\"maximum\":30,\"default\":0,\"description\":\"Seconds to wait for new output.\"},"
     "\"max_bytes\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"Most bytes per stream.\"}"
     "},\"required\":[\"workspace\",\"job\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"job\":{\"type\":\"integer\"},"
     "\"state\":{\"type\":\"string\"},\"ended\":{\"type\":\"boolean\"},"
     "\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":\"string\"},"
     "\"cursor\":{\"type\":\"integer\"},\"stderr_cursor\":{\"type\":\"integer\"},"
     "\"dropped\":{\"type\":\"integer\"}},"
     "\"required\":[\"job\",\"state\",\"ended\",\"stdout\",\"stderr\",\"cursor\",\"stderr_cursor\"]}",
     sp_ops_exec_poll, true, false},
    {"exec_wait", "Wait for a background command",
     "Wait until a background exec ends, at most `timeout` seconds (default "
     "and at most 30). Returns its state, ended, exit_code once "
     "ended, and the last lines of stdout and stderr. Call again while "
     "ended is false.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"job\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"The background exec's number (from exec_start or exec_list).\"},"
     "\"timeout\":{\"type\":\"number\",\"minimum\":0,\"maximum\":30,\"default\":30,\"description\":\"Most seconds to wait.\"}"
     "},\"required\":[\"workspace\",\"job\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"job\":{\"type\":\"integer\"},"
     "\"state\":{\"type\":\"string\"},\"ended\":{\"type\":\"boolean\"},"
     "\"timed_out\":{\"type\":\"boolean\"},"
     "\"stdout_tail\":{\"type\":\"string\"},\"stderr_tail\":{\"type\":\"string\"}},"
     "\"required\":[\"job\",\"state\",\"ended\"]}",
     sp_ops_exec_wait, true, false},
    {"exec_write", "Write to a background command's stdin",
     "Send text to the stdin of a background exec started with stdin_open; "
     "eof: true closes it.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"job\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"The background exec's number (from exec_start or exec_list).\"},"
     "\"input\":{\"type\":\"string\",\"maxLength\":65536,\"description\":\"Text to send.\"},"
     "\"eof\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Close stdin after the input.\"}"
     "},\"required\":[\"workspace\",\"job\"],\"additionalProperties\":false}",
     NULL, sp_ops_exec_write, false, false},
    {"exec_kill", "Signal a background command",
     "Send a signal to a background exec and its process group (default "
     "KILL).",
     "{\"type\":\"object\",\"properties\":{" WS_PROP ",\"job\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"The background exec's number (from exec_start or exec_list).\"},"
     "\"signal\":{\"type\":\"string\",\"enum\":[\"KILL\",\"TERM\",\"INT\",\"HUP\",\"QUIT\"],\"default\":\"KILL\"}"
     "},\"required\":[\"workspace\",\"job\"],\"additionalProperties\":false}",
     NULL, sp_ops_exec_kill, false, true},
    {"exec_list", "List background commands",
     "The workspace's background execs: number, command, state, exit code.",
     "{\"type\":\"object\",\"properties\":{" WS_PROP "},\"required\":[\"workspace\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"jobs\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}},\"required\":[\"jobs\"]}",
     sp_ops_exec_list, true, false},
};

static const struct tool *find_tool(const char *name)
{
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        if (strcmp(tools[i].name, name) == 0)
            return &tools[i];
    return NULL;
}

/* Tool profiles (sandpit mcp --tools; docs/mcp.md "Tool profiles"):
 * core is what an agent needs to run and edit code in a workspace; files
 * adds the rest of the file tools; full is every tool. */
static const char *const profile_core =
    "workspace_create,workspace_list,workspace_delete,exec,exec_start,"
    "exec_wait,file_read,file_write,file_edit";
static const char *const profile_files =
    "core,file_list,file_stat,file_mkdir,file_move,file_delete,file_glob,"
    "file_search,patch_apply,workspace_diff";

/* Mark what spec offers (names and profiles, comma-separated). */
static int tools_offer(bool *offered, const char *spec, int depth,
                       sp_error *err)
{
    size_t n = sizeof(tools) / sizeof(tools[0]);
    while (*spec) {
        size_t len = strcspn(spec, ",");
        char name[64];
        if (len == 0 || len >= sizeof(name))
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "--tools: an empty or too long name in the "
                                 "list");
        memcpy(name, spec, len);
        name[len] = '\0';
        spec += len + (spec[len] == ',');
        if (strcmp(name, "full") == 0) {
            for (size_t i = 0; i < n; i++)
                offered[i] = true;
        } else if (depth < 2 && strcmp(name, "core") == 0) {
            tools_offer(offered, profile_core, depth + 1, err);
        } else if (depth < 2 && strcmp(name, "files") == 0) {
            tools_offer(offered, profile_files, depth + 1, err);
        } else {
            const struct tool *t = find_tool(name);
            if (!t)
                return sp_error_setk(err, SP_ERR_USAGE, 0,
                                     "--tools: no tool or profile named "
                                     "\"%.60s\" (profiles: core, files, "
                                     "full; tools: as tools/list names them)",
                                     name);
            offered[t - tools] = true;
        }
    }
    return 0;
}

/* A tool this server offers (--tools), or NULL. */
static const struct tool *offered_tool(const struct mcp *m, const char *name)
{
    const struct tool *t = find_tool(name);
    return t && !m->hidden[t - tools] ? t : NULL;
}

static json_t *tools_list(struct mcp *m)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        const struct tool *t = &tools[i];
        if (m->hidden[i])
            continue;
        json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "name", t->name, "title",
                              t->title, "description", t->description,
                              "inputSchema", json_loads(t->input, 0, NULL));
        if (m->compact) {
            /* The core profile's budget (docs/mcp.md "Tool profiles"):
             * the arguments' descriptions go (their names and the tool's
             * description say enough); results still carry
             * structuredContent. */
            json_object_del(o, "title");
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(json_object_get(o, "inputSchema"),
                                                "properties"), k, v)
                json_object_del(v, "description");
            json_array_append_new(arr, o);
            continue;
        }
        if (m->structured && t->output)
            json_object_set_new(o, "outputSchema",
                                json_loads(t->output, 0, NULL));
        json_object_set_new(o, "annotations",
                            json_pack("{s:b,s:b,s:b}", "readOnlyHint",
                                      t->read_only, "destructiveHint",
                                      t->destructive, "openWorldHint", 0));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "tools", arr);
}

/* A tool's outcome as a CallToolResult. */
static json_t *tool_result(struct mcp *m, json_t *structured, const char *text)
{
    json_t *content = json_array();
    size_t tl = strlen(text);
    json_array_append_new(content,
                          json_pack("{s:s,s:o}", "type", "text", "text",
                                    sp_jrpc_string_lossy(text, tl)));
    json_t *r = json_pack("{s:o,s:b}", "content", content, "isError", 0);
    if (m->structured && structured)
        json_object_set(r, "structuredContent", structured);
    json_decref(structured);
    return r;
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *content = json_array();
    json_array_append_new(content,
                          json_pack("{s:s,s:o}", "type", "text", "text",
                                    sp_jrpc_string_lossy(msg, strlen(msg))));
    return json_pack("{s:o,s:b}", "content", content, "isError", 1);
}

/* An error message with what to do next. */
static json_t *lib_error(const sp_error *err)
{
    const char *hint = "";
    if (strstr(err->message, "is not running"))
        hint = " (call workspace_start, or workspace_create for a new one)";
    else if (strstr(err->message, "no workspace named"))
        hint = strstr(err->message, "workspace_list")
                   ? ""
                   : " (call workspace_list to see the names)";
    return tool_error("%s%s", err->message[0] ? err->message : "failed", hint);
}

/* lib_error, with the operation's details (stolen, may be NULL: a
 * patch's report) after the message as JSON, and as structuredContent. */
static json_t *lib_error_data(struct mcp *m, const sp_error *err, json_t *data)
{
    json_t *r = lib_error(err);
    if (!data)
        return r;
    char *d = json_dumps(data, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_t *t = json_object_get(json_array_get(json_object_get(r, "content"), 0),
                                "text");
    if (d && t) {
        size_t cap = m->ops.max_output;
        size_t dl = strlen(d);
        if (dl > cap)
            dl = sp_jrpc_utf8_cut(d, cap);
        char *all = NULL;
        if (asprintf(&all, "%s\n%.*s%s", json_string_value(t), (int)dl, d,
                     dl < strlen(d) ? "\n[cut: the report is longer]" : "") >= 0) {
            json_string_set(t, all);
            free(all);
        }
    }
    free(d);
    if (m->structured)
        json_object_set_new(r, "structuredContent", data);
    else
        json_decref(data);
    return r;
}

/* ---- exec ------------------------------------------------------------ */

static void call_free(struct call *c)
{
    if (!c)
        return;
    sp_wsjob_free(c->job);
    sp_ops_pending_free(c->pend);
    for (int i = 1; i < 3; i++)
        sp_wsjob_free(c->save[i]);
    json_decref(c->id);
    json_decref(c->progress);
    json_decref(c->structured);
    free(c->text);
    free(c);
}

static int call_slot(struct mcp *m)
{
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++)
        if (!m->calls[i])
            return i;
    return -1;
}

/* An exec's output as it arrives (wsjob's sink): counted, and told to a
 * client that asked for progress at most once per
 * SP_MCP_PROGRESS_INTERVAL_US (the first output at once), so that a long
 * command keeps the client's timeout from firing. */
static void progress_send(struct call *c, uint64_t now);

static void exec_progress(void *ctx, int stream, const char *data, size_t len)
{
    (void)stream;
    struct call *c = ctx;
    c->p_bytes += len;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            c->p_lines++;
            if (c->p_cur_len) {
                memcpy(c->p_last, c->p_cur, c->p_cur_len);
                c->p_last[c->p_cur_len] = '\0';
            }
            c->p_cur_len = 0;
        } else if (c->p_cur_len < SP_MCP_PROGRESS_LINE) {
            c->p_cur[c->p_cur_len++] = data[i];
        }
    }
    uint64_t now = sp_now_us();
    if (!c->progress || c->p_bytes == c->p_sent_bytes ||
        (c->p_sent_at && now - c->p_sent_at < SP_MCP_PROGRESS_INTERVAL_US))
        return;
    progress_send(c, now);
}

/* One notifications/progress: "progress" is the milliseconds since the
 * command started (it grows with every notification, as the protocol
 * wants, output or not); the message has the output so far. */
static void progress_send(struct call *c, uint64_t now)
{
    c->p_sent_at = now;
    c->p_sent_bytes = c->p_bytes;
    char msg[SP_MCP_PROGRESS_LINE + 128];
    int n = snprintf(msg, sizeof(msg), "%llu lines, %llu bytes of output so far%s%s",
                     (unsigned long long)c->p_lines,
                     (unsigned long long)c->p_bytes,
                     c->p_last[0] ? "; last line: " : "", c->p_last);
    size_t ml = n < 0 ? 0 : (size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n;
    send_obj(c->m, sp_jrpc_request(
                       NULL, "notifications/progress",
                       json_pack("{s:O,s:I,s:o}", "progressToken", c->progress,
                                 "progress",
                                 (json_int_t)((now - c->p_start) / 1000 + 1),
                                 "message",
                                 sp_jrpc_string_lossy(msg, ml))));
}

static json_t *start_exec(struct mcp *m, json_t *id, struct batch *b,
                          json_t *args, json_t *progress)
{
    struct sp_ops_exec ex;
    sp_error err = {0};
    if (sp_ops_exec_parse(&m->ops, args, &ex, &err) < 0)
        return lib_error(&err);
    int slot = call_slot(m);
    if (slot < 0) {
        sp_ops_exec_free(&ex);
        return tool_error("too many commands running at once (at most %d): "
                          "wait for one to finish", SP_MCP_MAX_CALLS);
    }
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        sp_ops_exec_free(&ex);
        return tool_error("out of memory");
    }
    struct sp_wsjob_opts jo = {
        .argv = ex.argv,
        .env = ex.env,
        .secret_env = ex.secret_env,
        .cwd = ex.cwd,
        .timeout = ex.timeout,
        .changes = ex.changes,
        .stdin_data = ex.stdin_data,
        .stdin_len = ex.stdin_len,
        .keep = SP_OPS_SPOOL_MAX,
        .sink = exec_progress,
        .sink_ctx = c,
    };
    c->m = m;
    c->p_start = sp_now_us();
    if (json_is_string(progress) || json_is_integer(progress))
        c->progress = json_incref(progress);
    int r = sp_wsjob_start(ex.workspace, &jo, &c->job, &err);
    snprintf(c->ws, sizeof(c->ws), "%s", ex.workspace);
    c->max_output = ex.max_output;
    mlog(m, LOG_DEBUG_, "exec in %s: %s", c->ws, ex.argv[0]);
    sp_ops_exec_free(&ex);
    if (r < 0) {
        json_decref(c->progress);
        free(c);
        return lib_error(&err);
    }
    c->id = json_deep_copy(id);
    c->batch = b;
    c->seq = ++m->seq;
    if (b)
        b->pending++;
    m->calls[slot] = c;
    return NULL; /* answered when it ends */
}

/* Bytes of each stream shown in a result of budget B. */
static void split_budget(size_t B, size_t a, size_t b, size_t *sa, size_t *sb)
{
    if (a + b <= B) {
        *sa = a;
        *sb = b;
    } else if (a <= B / 2) {
        *sa = a;
        *sb = B - a;
    } else if (b <= B / 2) {
        *sb = b;
        *sa = B - b;
    } else {
        *sa = B / 2;
        *sb = B - B / 2;
    }
}

static void exec_ended(struct mcp *m, struct call *c)
{
    const struct sp_wsjob_result *res = sp_wsjob_result(c->job);
    if (res->status < 0) {
        json_t *e = lib_error(&res->err);
        reply(m, c->batch, sp_jrpc_result(c->id, e));
        c->text = NULL;
        c->structured = NULL;
        return;
    }
    size_t shown[3] = {0, 0, 0};
    split_budget(c->max_output, res->kept[1], res->kept[2], &shown[1],
                 &shown[2]);
    json_t *s = json_object();
    json_object_set_new(s, "exit_code", json_integer(res->status));
    json_object_set_new(s, "timed_out", json_boolean(res->timed_out));
    json_object_set_new(s, "outcome", sp_ws_end_json(&res->end));
    if (res->report)
        json_object_set(s, "report", res->report);
    bool trunc = false;
    json_t *files = json_object();
    static const char *const names[] = {NULL, "stdout", "stderr"};
    for (int i = 1; i < 3; i++) {
        size_t n = shown[i] < res->kept[i]
                       ? sp_jrpc_utf8_cut(res->out[i], shown[i])
                       : shown[i];
        json_object_set_new(s, names[i], sp_jrpc_string_lossy(res->out[i], n));
        char key[32];
        snprintf(key, sizeof(key), "%s_bytes", names[i]);
        json_object_set_new(s, key, json_integer((json_int_t)res->total[i]));
        if (n < res->total[i]) {
            trunc = true;
            char path[128];
            snprintf(path, sizeof(path), "%s/exec-%d-%u.%s", SP_OPS_OUTPUT_DIR,
                     (int)getpid(), c->seq, names[i]);
            /* Save what was kept in the workspace, through the sandbox's
             * own view of it. */
            char script[256];
            snprintf(script, sizeof(script),
                     "mkdir -p %s && cat > \"$1\"", SP_OPS_OUTPUT_DIR);
            char *argv[] = {"/bin/sh", "-c", script, "sh", path, NULL};
            struct sp_wsjob_opts jo = {.argv = argv,
                                       .stdin_data = res->out[i],
                                       .stdin_len = res->kept[i],
                                       .keep = 4096};
            sp_error err = {0};
            if (res->kept[i] && sp_wsjob_start(c->ws, &jo, &c->save[i], &err) == 0) {
                char abs[160];
                snprintf(abs, sizeof(abs), "/workspace/%s", path);
                json_object_set_new(files, names[i], json_string(abs));
            } else {
                json_object_set_new(files, names[i], json_null());
            }
        }
    }
    json_object_set_new(s, "truncated", json_boolean(trunc));
    if (trunc)
        json_object_set_new(s, "output_files", files);
    else
        json_decref(files);
    json_object_set_new(s, "duration_ms", json_real((double)res->wall_us / 1000.0));
    c->structured = s;
}

/* The reply once the command and any saving are done. */
static void exec_reply(struct mcp *m, struct call *c)
{
    json_t *s = c->structured;
    json_t *files = json_object_get(s, "output_files");
    static const char *const names[] = {NULL, "stdout", "stderr"};
    for (int i = 1; i < 3; i++) {
        if (!c->save[i])
            continue;
        const struct sp_wsjob_result *r = sp_wsjob_result(c->save[i]);
        if (r->status != 0)
            json_object_set_new(files, names[i], json_null());
    }
    const char *so = json_string_value(json_object_get(s, "stdout"));
    const char *se = json_string_value(json_object_get(s, "stderr"));
    int code = (int)json_integer_value(json_object_get(s, "exit_code"));
    char *text = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&text, &tl);
    if (f) {
        const char *how = json_string_value(
            json_object_get(json_object_get(s, "outcome"), "text"));
        /* First what the sandbox refused, one line per kind, so a model
         * reads the reason before the symptoms (docs/report.md). */
        json_t *rep = json_object_get(s, "report");
        if (json_integer_value(json_object_get(rep, "denials_total")) > 0) {
            char *lines = sp_report_summary(rep);
            if (lines)
                fputs(lines, f);
            free(lines);
        }
        fprintf(f, "exit code %d%s%s%s\n", code, how ? " (" : "",
                how ? how : "", how ? ")" : "");
        if (so && *so)
            fprintf(f, "--- stdout ---\n%s%s", so,
                    so[strlen(so) - 1] == '\n' ? "" : "\n");
        if (se && *se)
            fprintf(f, "--- stderr ---\n%s%s", se,
                    se[strlen(se) - 1] == '\n' ? "" : "\n");
        if (json_is_true(json_object_get(s, "truncated"))) {
            fprintf(f, "--- truncated ---\n");
            for (int i = 1; i < 3; i++) {
                char key[32];
                snprintf(key, sizeof(key), "%s_bytes", names[i]);
                json_t *p = json_object_get(files, names[i]);
                if (json_object_get(files, names[i]))
                    fprintf(f, "%s: %lld bytes in all; %s\n", names[i],
                            (long long)json_integer_value(json_object_get(s, key)),
                            json_is_string(p) ? json_string_value(p)
                                              : "(could not be saved)");
            }
            fprintf(f, "Read the saved output with file_read or exec (e.g. "
                       "tail -n 100 FILE).\n");
        }
        fclose(f);
    }
    c->structured = NULL;
    json_t *r = tool_result(m, s, text ? text : "");
    free(text);
    reply(m, c->batch, sp_jrpc_result(c->id, r));
}

/* The text content of a result: file content and shell or log output as
 * they are (not JSON-escaped), after a line of the other fields (where
 * to go on: next_offset, next_cursor, truncated, more); anything else as
 * JSON, pretty when that fits --max-output, else compact. The operations
 * bound their payloads so that it fits (rpcops_ws.c); what does not is
 * cut with a marker, never silently. */
static char *tool_text(struct mcp *m, json_t *s)
{
    static const char *const plain[] = {"content", "output", NULL};
    for (size_t i = 0; plain[i]; i++) {
        json_t *v = json_object_get(s, plain[i]);
        if (!json_is_string(v))
            continue;
        json_t *head = json_copy(s);
        json_object_del(head, plain[i]);
        char *h = json_dumps(head, JSON_COMPACT);
        json_decref(head);
        char *t = NULL;
        if (!h || asprintf(&t, "%s\n--- %s ---\n%s", h, plain[i],
                           json_string_value(v)) < 0)
            t = NULL;
        free(h);
        return t;
    }
    char *text = json_dumps(s, JSON_INDENT(1));
    if (text && strlen(text) > m->ops.max_output) {
        free(text);
        text = json_dumps(s, JSON_COMPACT);
    }
    if (text && strlen(text) > m->ops.max_output) {
        size_t cut = sp_jrpc_utf8_cut(text, m->ops.max_output);
        char *t = NULL;
        if (asprintf(&t, "%.*s\n[cut at --max-output: the whole result is "
                         "in structuredContent]", (int)cut, text) < 0)
            t = NULL;
        free(text);
        text = t;
    }
    return text;
}

/* A tool's result (s stolen), or its error (s NULL: err, and the
 * operation's details). */
static json_t *tool_outcome(struct mcp *m, const struct tool *t, json_t *s,
                            const sp_error *err)
{
    json_t *data = sp_ops_take_err_data(&m->ops);
    if (!s)
        return lib_error_data(m, err, data);
    json_decref(data);
    if (strcmp(t->name, "workspace_create") == 0 ||
        strcmp(t->name, "workspace_fork") == 0 ||
        strcmp(t->name, "workspace_delete") == 0)
        mlog(m, LOG_INFO_, "%s: %s", t->name,
             json_string_value(json_object_get(s, "workspace")));
    char *text = tool_text(m, s);
    json_t *r = tool_result(m, s, text ? text : "");
    free(text);
    return r;
}

/* ---- requests ------------------------------------------------------------ */

static json_t *handle_initialize(struct mcp *m, json_t *params)
{
    json_t *v = json_object_get(params, "protocolVersion");
    const char *want = json_string_value(v);
    const char *ver = versions[0];
    for (size_t i = 0; want && versions[i]; i++)
        if (strcmp(want, versions[i]) == 0)
            ver = versions[i];
    m->structured = strcmp(ver, "2025-06-18") >= 0;
    m->initialized = true;
    return json_pack(
        "{s:s,s:{s:{s:b},s:{}},s:{s:s,s:s,s:s},s:s}", "protocolVersion", ver,
        "capabilities", "tools", "listChanged", 0, "logging", "serverInfo",
        "name", "sandpit", "title", "sandpit sandboxes", "version",
        sp_version(), "instructions",
        "sandpit runs commands in isolated Linux workspaces. Create one with "
        "workspace_create, run commands with exec (files live in "
        "/workspace), and delete it with workspace_delete when done. "
        "Nothing outside the workspace is reachable; no network unless the "
        "operator allows it.");
}

static void handle_request(struct mcp *m, const struct sp_jrpc_msg *msg,
                           struct batch *b)
{
    const char *meth = msg->method;
    json_t *params = msg->params;
    if (params && !json_is_object(params)) {
        reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_PARAMS, NULL,
                                  "params must be an object"));
        return;
    }
    if (strcmp(meth, "initialize") == 0) {
        if (!json_is_string(json_object_get(params, "protocolVersion"))) {
            reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_PARAMS, NULL,
                                      "initialize needs \"protocolVersion\""));
            return;
        }
        reply(m, b, sp_jrpc_result(msg->id, handle_initialize(m, params)));
    } else if (strcmp(meth, "ping") == 0) {
        reply(m, b, sp_jrpc_result(msg->id, json_object()));
    } else if (!m->initialized) {
        reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_INVALID, NULL,
                                  "send initialize first"));
    } else if (strcmp(meth, "tools/list") == 0) {
        /* One page holds every tool: there is no cursor to continue from. */
        json_t *cur = json_object_get(params, "cursor");
        if (cur && !json_is_null(cur)) {
            reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_PARAMS, NULL,
                                      "unknown cursor: tools/list returns "
                                      "every tool in one page (no "
                                      "nextCursor), so no cursor is valid"));
            return;
        }
        reply(m, b, sp_jrpc_result(msg->id, tools_list(m)));
    } else if (strcmp(meth, "logging/setLevel") == 0) {
        const char *l = json_string_value(json_object_get(params, "level"));
        int idx = -1;
        for (int i = 0; l && levels[i]; i++)
            if (strcmp(l, levels[i]) == 0)
                idx = i;
        if (idx < 0) {
            reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_PARAMS, NULL,
                                      "level must be one of debug, info, "
                                      "notice, warning, error, critical, "
                                      "alert, emergency"));
            return;
        }
        m->log_level = idx;
        reply(m, b, sp_jrpc_result(msg->id, json_object()));
    } else if (strcmp(meth, "tools/call") == 0) {
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "arguments");
        const struct tool *t = name ? offered_tool(m, name) : NULL;
        if (!t) {
            reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_PARAMS, NULL,
                                      "unknown tool \"%.100s\" (tools/list "
                                      "names them)",
                                      name ? name : ""));
            return;
        }
        if (args && !json_is_object(args)) {
            reply(m, b, sp_jrpc_result(msg->id,
                                       tool_error("arguments must be an object")));
            return;
        }
        if (!t->fn) {
            json_t *r = start_exec(
                m, msg->id, b, args,
                json_object_get(json_object_get(params, "_meta"),
                                "progressToken"));
            if (r)
                reply(m, b, sp_jrpc_result(msg->id, r));
            return;
        }
        sp_error err = {0};
        /* One that waits in the workspace is an event (never blocks). */
        struct sp_ops_pending *pend = NULL;
        int sr = sp_ops_start(&m->ops, t->fn, args, &pend, &err);
        if (sr < 0) {
            reply(m, b, sp_jrpc_result(msg->id, lib_error(&err)));
            return;
        }
        if (sr == 1) {
            int slot = call_slot(m);
            struct call *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
            if (!c) {
                sp_ops_pending_free(pend);
                reply(m, b, sp_jrpc_result(msg->id,
                                           tool_error("too many calls waiting "
                                                      "at once (at most %d): "
                                                      "wait for one to finish",
                                                      SP_MCP_MAX_CALLS)));
                return;
            }
            c->id = json_deep_copy(msg->id);
            c->tool = t;
            c->pend = pend;
            c->batch = b;
            if (b)
                b->pending++;
            m->calls[slot] = c;
            return;
        }
        json_t *s = t->fn(&m->ops, args, &err);
        reply(m, b, sp_jrpc_result(msg->id, tool_outcome(m, t, s, &err)));
    } else if (strcmp(meth, "resources/list") == 0 ||
               strcmp(meth, "prompts/list") == 0) {
        reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_METHOD, NULL,
                                  "sandpit offers tools only"));
    } else {
        reply(m, b, sp_jrpc_error(msg->id, SP_JRPC_METHOD, NULL,
                                  "unknown method \"%.100s\"", meth));
    }
}

static void handle_cancel(struct mcp *m, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    if (!rid)
        return;
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++) {
        struct call *c = m->calls[i];
        if (!c || !json_equal(c->id, rid))
            continue;
        if (c->tool)
            mlog(m, LOG_INFO_, "%s cancelled", c->tool->name);
        else
            mlog(m, LOG_INFO_, "exec in %s cancelled", c->ws);
        struct batch *b = c->batch;
        m->calls[i] = NULL;
        call_free(c); /* the connection closes: the command is killed */
        if (b) {
            b->pending--;
            batch_done(m, b);
        }
        return;
    }
}

static void handle_one(struct mcp *m, json_t *o, struct batch *b)
{
    struct sp_jrpc_msg msg;
    const char *why = NULL;
    int rc = sp_jrpc_check(o, &msg, &why);
    if (rc != 0) {
        reply(m, b, sp_jrpc_error(msg.id, rc, NULL, "%s", why));
        return;
    }
    if (msg.kind == SP_JRPC_RESPONSE)
        return; /* we send no requests */
    if (msg.kind == SP_JRPC_NOTIFY) {
        if (strcmp(msg.method, "notifications/cancelled") == 0)
            handle_cancel(m, msg.params);
        return;
    }
    handle_request(m, &msg, b);
}

static void handle_line(struct mcp *m, const char *line, size_t len)
{
    json_t *o = NULL;
    const char *why = NULL;
    int code = sp_jrpc_parse(line, len, &o, &why);
    if (code) {
        send_obj(m, sp_jrpc_error(NULL, code, NULL, "%s", why));
        return;
    }
    if (json_is_array(o)) {
        struct batch *b = calloc(1, sizeof(*b));
        if (!b) {
            json_decref(o);
            send_obj(m, sp_jrpc_error(NULL, SP_JRPC_INTERNAL, NULL, "out of memory"));
            return;
        }
        b->replies = json_array();
        b->pending = 1; /* held while the batch is read */
        size_t i;
        json_t *e;
        json_array_foreach(o, i, e)
            handle_one(m, e, b);
        b->pending--;
        batch_done(m, b);
    } else {
        handle_one(m, o, NULL);
    }
    json_decref(o);
}

/* ---- the loop ------------------------------------------------------------ */

static void step_calls(struct mcp *m, struct pollfd *pfd, size_t *idx,
                       bool polled)
{
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++) {
        struct call *c = m->calls[i];
        if (!c)
            continue;
        if (c->pend) {
            int fd = sp_ops_pending_fd(c->pend);
            if (!polled) {
                c->npfd[0] = fd >= 0;
                if (fd >= 0)
                    pfd[*idx] = (struct pollfd){fd, POLLIN, 0};
            } else if (c->npfd[0] && pfd[*idx].revents) {
                sp_ops_pending_step(c->pend);
            }
            *idx += c->npfd[0];
            continue;
        }
        struct sp_wsjob *jobs[3] = {c->structured ? NULL : c->job, c->save[1],
                                    c->save[2]};
        for (int k = 0; k < 3; k++) {
            if (!polled)
                c->npfd[k] = jobs[k] ? sp_wsjob_pollfds(jobs[k], pfd + *idx,
                                                         SP_WSJOB_POLLFDS)
                                     : 0;
            else if (jobs[k] && c->npfd[k])
                sp_wsjob_step(jobs[k], pfd + *idx, c->npfd[k]);
            *idx += c->npfd[k];
        }
    }
}

static bool job_done(struct sp_wsjob *j)
{
    struct pollfd none[SP_WSJOB_POLLFDS];
    return sp_wsjob_pollfds(j, none, SP_WSJOB_POLLFDS) == 0;
}

/* Execs called with a progress token that said nothing for
 * SP_MCP_PROGRESS_HEARTBEAT_US (a quiet command) say so now, so that a
 * client resetting its timeout on progress keeps waiting. Returns the
 * poll timeout: 1 s while any such exec runs, else -1. */
static int progress_heartbeat(struct mcp *m)
{
    int timeout = -1;
    uint64_t now = sp_now_us();
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++) {
        struct call *c = m->calls[i];
        if (!c || !c->job || !c->progress || c->structured)
            continue;
        timeout = 1000;
        uint64_t last = c->p_sent_at ? c->p_sent_at : c->p_start;
        if (now - last >= SP_MCP_PROGRESS_HEARTBEAT_US)
            progress_send(c, now);
    }
    return timeout;
}

static void settle_calls(struct mcp *m)
{
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++) {
        struct call *c = m->calls[i];
        if (!c)
            continue;
        if (c->pend) {
            if (sp_ops_pending_fd(c->pend) >= 0)
                continue; /* still waiting */
            sp_error err = {0};
            json_t *s = sp_ops_pending_finish(c->pend, &err);
            reply(m, c->batch,
                  sp_jrpc_result(c->id, tool_outcome(m, c->tool, s, &err)));
        } else if (!c->structured) {
            if (!job_done(c->job))
                continue; /* still running */
            exec_ended(m, c);
        }
        if (c->structured) {
            if ((c->save[1] && !job_done(c->save[1])) ||
                (c->save[2] && !job_done(c->save[2])))
                continue;
            exec_reply(m, c);
        }
        m->calls[i] = NULL;
        if (c->batch) {
            c->batch->pending--;
            batch_done(m, c->batch);
        }
        call_free(c);
    }
}

static void cancel_all(struct mcp *m)
{
    for (int i = 0; i < SP_MCP_MAX_CALLS; i++) {
        struct call *c = m->calls[i];
        if (!c)
            continue;
        m->calls[i] = NULL;
        if (c->batch && --c->batch->pending == 0) {
            json_decref(c->batch->replies);
            free(c->batch);
        }
        call_free(c);
    }
}

int sp_mcp_serve(const struct sp_mcp_opts *o, sp_error *err)
{
    struct mcp m = {.in_fd = o->in_fd, .out_fd = o->out_fd,
                    .log_level = LOG_WARNING_};
    _Static_assert(sizeof(tools) / sizeof(tools[0]) <= MCP_TOOLS_CAP,
                   "MCP_TOOLS_CAP is too small for the tool table");
    if (o->tools) {
        bool offered[MCP_TOOLS_CAP] = {false};
        if (tools_offer(offered, o->tools, 0, err) < 0)
            return -1;
        for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
            m.hidden[i] = !offered[i];
        m.compact = strcmp(o->tools, "core") == 0;
    }
    int r = sp_ops_init(&m.ops, o->policy_file, o->max_output, err);
    if (r < 0)
        return r;
    if ((r = sp_ops_pool_start(&m.ops, o->pool, err)) < 0) {
        sp_ops_free(&m.ops);
        return r;
    }
    sp_jrpc_in_init(&m.in, o->max_message);
    sp_jrpc_out_init(&m.out, 0);
    signal(SIGPIPE, SIG_IGN);
    int ofl = fcntl(m.out_fd, F_GETFL);
    if (ofl >= 0)
        fcntl(m.out_fd, F_SETFL, ofl | O_NONBLOCK);
    bool eof = false;
    size_t cap = 2 + SP_MCP_MAX_CALLS * 3 * SP_WSJOB_POLLFDS;
    struct pollfd *pfd = calloc(cap, sizeof(*pfd));
    if (!pfd) {
        sp_ops_free(&m.ops);
        return sp_error_set(err, ENOMEM, "poll set");
    }
    for (;;) {
        settle_calls(&m);
        int fr = sp_jrpc_out_flush(&m.out, m.out_fd);
        if (fr < 0)
            m.out_dead = true;
        bool busy = false;
        for (int i = 0; i < SP_MCP_MAX_CALLS; i++)
            busy |= m.calls[i] != NULL;
        /* At EOF (the client's way to shut down) what runs still
         * answers; a client that will not wait sends SIGTERM. */
        if (m.out_dead || (eof && !busy))
            break;
        size_t n = 0;
        pfd[n++] = (struct pollfd){eof ? -1 : m.in_fd, POLLIN, 0};
        /* Always polled: POLLERR says the client closed its end (it
         * crashed), and what it started ends at once. */
        pfd[n++] = (struct pollfd){m.out_fd, fr == 1 ? POLLOUT : 0, 0};
        step_calls(&m, pfd, &n, false);
        int pr = poll(pfd, n, progress_heartbeat(&m));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            m.out_dead = true;
            break;
        }
        size_t idx = 2;
        step_calls(&m, pfd, &idx, true);
        if (pfd[0].revents) {
            char buf[65536];
            ssize_t k = read(m.in_fd, buf, sizeof(buf));
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k <= 0) {
                /* The client is gone: what it started ends with it. */
                eof = true;
                continue;
            }
            if (sp_jrpc_in_feed(&m.in, buf, (size_t)k) < 0) {
                send_obj(&m, sp_jrpc_error(NULL, SP_JRPC_INTERNAL, NULL,
                                           "out of memory"));
                continue;
            }
            const char *line;
            size_t len;
            int lr;
            while ((lr = sp_jrpc_in_next(&m.in, &line, &len)) != 0) {
                if (lr == -EMSGSIZE) {
                    send_obj(&m, sp_jrpc_error(NULL, SP_JRPC_INVALID, NULL,
                                               "message longer than %zu bytes",
                                               m.in.max));
                    continue;
                }
                if (lr < 0)
                    break;
                if (len == 0)
                    continue;
                handle_line(&m, line, len);
            }
        }
    }
    cancel_all(&m);
    if (ofl >= 0)
        fcntl(m.out_fd, F_SETFL, ofl);
    /* What is queued still goes out (blocking now). */
    if (!m.out_dead)
        sp_jrpc_out_flush(&m.out, m.out_fd);
    free(pfd);
    sp_jrpc_in_free(&m.in);
    sp_jrpc_out_free(&m.out);
    sp_ops_free(&m.ops);
    return 0;
}
