/* seccomp.h — the seccomp layer: build a BPF syscall filter in the parent
 * (the built-in default of docs/seccomp.md or a JSON profile), install it in
 * the child right before execve. Built on libseccomp; link -lseccomp -ljansson. */
#ifndef SANDPIT_SECCOMP_H
#define SANDPIT_SECCOMP_H

#include <stddef.h>

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

#endif
