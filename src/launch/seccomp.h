/* seccomp.h — the seccomp layer: build a BPF syscall filter in the parent
 * (the built-in default of docs/seccomp.md or a JSON profile), install it in
 * the child right before execve. Built on libseccomp; link -lseccomp -ljansson. */
#ifndef SANDPIT_SECCOMP_H
#define SANDPIT_SECCOMP_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* libseccomp's header has our name too, and wherever src/lib is on the
 * include path (-I) <seccomp.h> finds this file first. seccomp.c, the one
 * user of libseccomp, asks for it with SP_WANT_LIBSECCOMP and this pulls the
 * real one in from the directories after ours. Other users need none of its
 * types, and #include_next only works from a file found on the path. */
#if defined(SP_WANT_LIBSECCOMP) && !defined(_SECCOMP_H)
#include_next <seccomp.h>
#endif

#include "policy.h"
#include "sandpit.h"

struct sock_filter;

/* Most rules in a custom profile, and most syscall names in one rule. A
 * profile is operator input, but a JSON-RPC client may name one too: bound
 * what it can make us allocate and how long the filter can grow (the kernel
 * refuses programs over BPF_MAXINSNS = 4096 instructions anyway). */
#define SP_MAX_SECCOMP_RULES 256
#define SP_MAX_SECCOMP_SYSCALLS 512

/* A finished classic-BPF program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
 * Owned by its creator; free with sp_seccomp_prog_free(). */
struct sp_seccomp_prog {
    struct sock_filter *filter;  /* malloc'd, len instructions */
    unsigned short len;
};

/* Build the filter for policy p: the built-in default (p->seccomp_profile
 * NULL; ptrace, process_vm_* and pidfd_getfd allowed when p->allow_ptrace)
 * or the JSON profile at p->seccomp_profile, which replaces the default
 * (allow_ptrace then has no effect). Either way a syscall from a foreign
 * architecture (i386 through int 0x80, x32 on x86_64) kills the process.
 * Runs in the parent; allocates. On success fills *ret (set only on
 * success) and returns 0. Returns -EINVAL with err->kind SP_ERR_USAGE for a
 * bad profile (the message names the file and the JSON path, e.g.
 * `rules[2].syscalls[0]: unknown syscall "foo"`), -EFBIG for a profile
 * larger than SP_MAX_POLICY_FILE or a filter longer than the kernel takes,
 * another negative errno for a system failure. */
int sp_seccomp_build(const struct sp_policy *p, struct sp_seccomp_prog *ret,
                     sp_error *err);

/* Like sp_seccomp_build with a profile given as text (len bytes, need not be
 * NUL-terminated). `origin` names it in messages ("seccomp profile x.json").
 * For the unit tests and the fuzz target; sp_seccomp_build uses it. */
int sp_seccomp_build_profile_text(const char *json, size_t len,
                                  const char *origin,
                                  struct sp_seccomp_prog *ret, sp_error *err);

/* The default filter (allow_ptrace or not) as compiled at build time by
 * seccomp_gen: identical to what sp_seccomp_build makes for a policy
 * without a profile, without running libseccomp. 0 or -ENOMEM. */
int sp_seccomp_default_cached(bool allow_ptrace, struct sp_seccomp_prog *ret);

/* The filter an OCI runtime spec's linux.seccomp object describes
 * (defaultAction, defaultErrnoRet, syscalls with names, action, errnoRet,
 * args); its own default action, not sandpit's. A key or action it cannot
 * honour (listenerPath, flags, SCMP_ACT_NOTIFY) is refused by name.
 * Syscall names libseccomp does not know are skipped, as runc does. */
struct json_t;
int sp_seccomp_build_oci(const struct json_t *spec, struct sp_seccomp_prog *ret,
                         sp_error *err);

/* Free the program and zero the struct. Accepts NULL and a zeroed struct. */
void sp_seccomp_prog_free(struct sp_seccomp_prog *prog);

/* Install prog on the calling thread. Call in the sandbox child right before
 * execve, after prctl(PR_SET_NO_NEW_PRIVS, 1) (without it an unprivileged
 * caller gets -EACCES). Async-signal-safe: one seccomp() system call (prctl
 * on kernels without it) on the prebuilt program; no allocation. Returns 0
 * or a negative errno (-EINVAL for an empty program). After it returns 0
 * the caller may make no system call the filter refuses: only execve. */
int sp_seccomp_install(const struct sp_seccomp_prog *prog);

/* Stack the exec filter (openat2 -> ENOSYS, docs/seccomp.md) on the calling
 * thread: with the default filter, right before each command's execve (the
 * workspace agent itself keeps openat2). Same rules as sp_seccomp_install. */
int sp_seccomp_install_exec(void);

/* ---- watching the deny list (docs/report.md) ---------------------------
 *
 * The default filter refuses with SECCOMP_RET_ERRNO. Its watched variant is
 * the same program, instruction for instruction, with the EPERM and
 * EAFNOSUPPORT returns turned into SECCOMP_RET_USER_NOTIF: an allowed call
 * runs exactly the same BPF to the same ALLOW, and only a refused one goes
 * to the supervising process (outside the sandbox), which records it and
 * answers the errno the plain filter would have (EAFNOSUPPORT for socket
 * and socketpair, EPERM for the rest). Should the supervisor go away, the
 * kernel answers ENOSYS: the call stays refused. */

struct sp_denials;

/* The watched variant of the default program in (same length). 0 or
 * -ENOMEM. */
int sp_seccomp_watched_variant(const struct sp_seccomp_prog *in,
                               struct sp_seccomp_prog *ret);

/* In the child, like sp_seccomp_install: install the watched program with
 * a listener and send the listener over sock (SCM_RIGHTS, one byte 'S'),
 * closing our copy. When the kernel refuses a listener (Linux < 5.0, or
 * another listener on the chain: EBUSY), install the plain program instead
 * and send 'E' with the errno as 4 bytes after it. Async-signal-safe.
 * Returns 0 or a negative errno (no filter installed). */
int sp_seccomp_install_watched(const struct sp_seccomp_prog *watched,
                               const struct sp_seccomp_prog *plain, int sock);

/* On the host side: receive what sp_seccomp_install_watched sent. Returns
 * the listener fd (O_CLOEXEC), or -errno: the kernel's refusal (*refused
 * set true) or a failure to receive (-ECONNRESET on EOF). */
int sp_seccomp_recv_listener(int sock, bool *refused);

/* The supervisor's side of a listener. */
struct sp_seccomp_watch;

/* Take over listener fd (closed on failure). t: where denials are counted
 * (kept by the caller, outlives the watch). NULL on failure. */
struct sp_seccomp_watch *sp_seccomp_watch_new(int fd, struct sp_denials *t);
int sp_seccomp_watch_fd(const struct sp_seccomp_watch *w);
/* Answer the pending notifications (at most SP_SECCOMP_NOTIFY_BATCH),
 * without blocking. Returns how many, or -1 when the listener is done (no
 * process left under the filter: stop polling it). */
int sp_seccomp_watch_dispatch(struct sp_seccomp_watch *w);
void sp_seccomp_watch_free(struct sp_seccomp_watch *w);

/* Like sp_seccomp_install_watched, but the listener stays with the
 * caller: *ret_fd (O_CLOEXEC), or -1 when the kernel refused one (the
 * plain program is then installed). For the workspace agent, which answers
 * its own listener from a thread (sp_seccomp_bg_start). */
int sp_seccomp_install_watched_here(const struct sp_seccomp_prog *watched,
                                    const struct sp_seccomp_prog *plain,
                                    int *ret_fd);

/* A thread answering listener fd (taken over) in the calling process and
 * counting each denial under the session id (getsid) of the process that
 * made it: the workspace agent's, where every exec is a session. The
 * table is bounded (SP_SECCOMP_BG_ENTRIES; the oldest entry goes when it
 * is full, counted). NULL on failure (fd closed; the filter's refusals
 * then answer ENOSYS). */
struct sp_seccomp_bg;
struct sp_seccomp_bg *sp_seccomp_bg_start(int fd);

/* Take session sid's denials out of the table as
 * {"denials": [{"syscall", "errno", "rule", "count", "first_ms"
 * (after t0_us, sp_now_us's clock), and "arg_name"/"arg" where an argument
 * matters}...], "dropped": N} (new reference). ctx: the sp_seccomp_bg. */
json_t *sp_seccomp_bg_take(void *ctx, pid_t sid, uint64_t t0_us);

#endif
