/* seccomp.c — the seccomp layer: the built-in deny list of docs/seccomp.md
 * or a JSON profile, compiled by libseccomp in the parent into a BPF program
 * that the sandbox child installs with one system call before execve. */
/* <seccomp.h> is this layer's own header when src/lib is on the include
 * path (it then includes libseccomp's, see there) and libseccomp's when not;
 * either way both end up included. */
#define SP_WANT_LIBSECCOMP 1
#include <seccomp.h>
#ifndef SANDPIT_SECCOMP_H
#include "seccomp.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

/* Namespace flags as clone() sees them. CLONE_NEWTIME (0x80) is not among
 * them: clone()'s low byte is the exit signal, so only unshare() and
 * clone3() (refused with ENOSYS) can ask for a time namespace. */
static const uint64_t clone_ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET,
};

/* clone()'s flags argument: the first everywhere but s390 and cris, where
 * the stack comes first. */
#if defined(__s390__) || defined(__CRIS__)
#define SP_CLONE_FLAGS_ARG 1
#else
#define SP_CLONE_FLAGS_ARG 0
#endif

/* System call numbers from 424 on are the same on every architecture but
 * alpha and mips. We name such numbers as a fallback for a libseccomp too old
 * to know the call (2.5.4 does not know open_tree_attr, Linux 6.15): a deny
 * list that silently skips a new mount call is the Flatpak CVE-2021-41133
 * mistake. Elsewhere the fallback is off and an unknown name is skipped. */
#if defined(__alpha__) || defined(__mips__)
#define SP_NR(n) (-1)
#else
#define SP_NR(n) (n)
#endif

/* openat2 and the native AUDIT_ARCH for the exec filter (hand-written BPF:
 * no libseccomp on the exec path). */
#if defined(__x86_64__)
#define SP_AUDIT_ARCH_NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SP_AUDIT_ARCH_NATIVE AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define SP_AUDIT_ARCH_NATIVE AUDIT_ARCH_RISCV64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SP_AUDIT_ARCH_NATIVE AUDIT_ARCH_PPC64LE
#elif defined(__s390x__)
#define SP_AUDIT_ARCH_NATIVE AUDIT_ARCH_S390X
#else
#error "add this architecture's AUDIT_ARCH for the exec filter"
#endif
#if defined(__alpha__)
#define SP_NR_OPENAT2 547
#elif defined(__mips__)
#define SP_NR_OPENAT2 (__NR_Linux + 437)
#else
#define SP_NR_OPENAT2 437
#endif

/* Default-filter entries allowed when the policy sets allow_ptrace. */
#define DENY_UNLESS_PTRACE 1u

struct deny_entry {
    const char *name;
    int fallback_nr; /* SP_NR(n) for calls from 424 on; -1 otherwise */
    int errnum;
    unsigned flags;
};

/* The unconditional part of the default filter; docs/seccomp.md gives the
 * reason for each. Keep the two in step. */
static const struct deny_entry default_deny[] = {
    /* kernel attack surface an unprivileged program can reach */
    {"bpf", -1, EPERM, 0},
    {"perf_event_open", -1, EPERM, 0},
    {"userfaultfd", -1, EPERM, 0},
    {"io_uring_setup", SP_NR(425), EPERM, 0},
    {"io_uring_enter", SP_NR(426), EPERM, 0},
    {"io_uring_register", SP_NR(427), EPERM, 0},
    {"keyctl", -1, EPERM, 0},
    {"add_key", -1, EPERM, 0},
    {"request_key", -1, EPERM, 0},
    /* the kernel itself and its modules */
    {"kexec_load", -1, EPERM, 0},
    {"kexec_file_load", -1, EPERM, 0},
    {"init_module", -1, EPERM, 0},
    {"finit_module", -1, EPERM, 0},
    {"delete_module", -1, EPERM, 0},
    {"iopl", -1, EPERM, 0},
    {"ioperm", -1, EPERM, 0},
    /* mounts, old API and new */
    {"mount", -1, EPERM, 0},
    {"umount", -1, EPERM, 0},
    {"umount2", -1, EPERM, 0},
    {"pivot_root", -1, EPERM, 0},
    {"chroot", -1, EPERM, 0},
    {"fsopen", SP_NR(430), EPERM, 0},
    {"fsmount", SP_NR(432), EPERM, 0},
    {"fsconfig", SP_NR(431), EPERM, 0},
    {"fspick", SP_NR(433), EPERM, 0},
    {"move_mount", SP_NR(429), EPERM, 0},
    {"open_tree", SP_NR(428), EPERM, 0},
    {"open_tree_attr", SP_NR(467), EPERM, 0},
    {"mount_setattr", SP_NR(442), EPERM, 0},
    /* namespaces: joining one; creating one is checked on the flags below */
    {"setns", -1, EPERM, 0},
    /* hide clone3's flags (in memory, out of seccomp's sight); ENOSYS makes
     * glibc and musl fall back to clone(), whose flags the filter sees */
    {"clone3", SP_NR(435), ENOSYS, 0},
    /* reading and writing other processes */
    {"ptrace", -1, EPERM, DENY_UNLESS_PTRACE},
    {"process_vm_readv", -1, EPERM, DENY_UNLESS_PTRACE},
    {"process_vm_writev", -1, EPERM, DENY_UNLESS_PTRACE},
    {"pidfd_getfd", SP_NR(438), EPERM, DENY_UNLESS_PTRACE},
    /* host-wide state */
    {"swapon", -1, EPERM, 0},
    {"swapoff", -1, EPERM, 0},
    {"reboot", -1, EPERM, 0},
    {"syslog", -1, EPERM, 0},
    {"acct", -1, EPERM, 0},
    {"quotactl", -1, EPERM, 0},
    {"quotactl_fd", SP_NR(443), EPERM, 0},
    {"settimeofday", -1, EPERM, 0},
    {"clock_settime", -1, EPERM, 0},
    {"clock_adjtime", -1, EPERM, 0},
    {"adjtimex", -1, EPERM, 0},
    /* file handles walk around the mount tree (the "shocker" escape) */
    {"open_by_handle_at", -1, EPERM, 0},
    {"name_to_handle_at", -1, EPERM, 0},
    /* obsolete or rarely needed, with a history of bugs */
    {"lookup_dcookie", -1, EPERM, 0},
    {"vhangup", -1, EPERM, 0},
    {"nfsservctl", -1, EPERM, 0},
    {"uselib", -1, EPERM, 0},
};

/* personality() values a program may set: plain Linux, 32-bit uname
 * (PER_LINUX32), a 2.6 uname (UNAME26, Docker allows it), ASLR off for the
 * caller itself (setarch -R, gdb), and 0xffffffff, which only queries. Every
 * other flag (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_LIMIT_*, foreign
 * execution domains) is refused. */
static const uint32_t personality_ok[] = {
    PER_LINUX,
    PER_LINUX32,
    UNAME26,
    PER_LINUX32 | UNAME26,
    ADDR_NO_RANDOMIZE,
    PER_LINUX32 | ADDR_NO_RANDOMIZE,
    0xffffffffu,
};

_Static_assert(AF_UNIX == 1 && AF_INET == 2 && AF_INET6 == 10 &&
                   AF_NETLINK == 16,
               "socket_family_deny below assumes the Linux family numbers");

/* Families socket()/socketpair() refuse, as a cover of single comparisons
 * (libseccomp takes one comparison per argument in a rule, so "not one of
 * 1, 2, 10, 16" is written as the ranges between them): 0, 3, 4-7, 8-9, 11,
 * 12-15, >= 17. The comparison is on all 64 bits: a family with high bits
 * set matches ">= 17" and is refused, though the kernel would truncate it. */
static const struct scmp_arg_cmp socket_family_deny[] = {
    {0, SCMP_CMP_EQ, 0, 0},
    {0, SCMP_CMP_EQ, 3, 0},
    {0, SCMP_CMP_MASKED_EQ, ~UINT64_C(3), 4},
    {0, SCMP_CMP_MASKED_EQ, ~UINT64_C(1), 8},
    {0, SCMP_CMP_EQ, 11, 0},
    {0, SCMP_CMP_MASKED_EQ, ~UINT64_C(3), 12},
    {0, SCMP_CMP_GE, 17, 0},
};

/* Calls that set a file's mode, and which argument holds it: a mode with
 * S_ISUID or S_ISGID is refused (EPERM), so nothing the sandbox writes on a
 * host path (workspace, --rw, a descriptor passed in) can grant privilege
 * to whoever runs it later. `oflags` is the open flags argument, or -1:
 * for the open family only a mode that takes effect (O_CREAT, O_TMPFILE)
 * is refused. mkdir/mkdirat are not here: the kernel keeps only the
 * permission and sticky bits of their mode. */
struct setid_call {
    const char *name;
    int fallback_nr;
    unsigned mode_arg;
    int oflags_arg;
};

static const struct setid_call setid_calls[] = {
    {"chmod", -1, 1, -1},
    {"fchmod", -1, 1, -1},
    {"fchmodat", -1, 2, -1},
    {"fchmodat2", SP_NR(452), 2, -1},
    {"mknod", -1, 1, -1},
    {"mknodat", -1, 2, -1},
    {"creat", -1, 1, -1},
    {"open", -1, 2, 1},
    {"openat", -1, 3, 2},
};

#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}
#define _cleanup_scmp_ _cleanup_(seccomp_releasep)

static void sp_json_decrefp(json_t **j)
{
    json_decref(*j);
}
#define _cleanup_json_ _cleanup_(sp_json_decrefp)

void sp_seccomp_prog_free(struct sp_seccomp_prog *prog)
{
    if (!prog)
        return;
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

/* ---- building and exporting -------------------------------------------- */

/* A context with the attributes every sandpit filter shares: a syscall from
 * another architecture kills the process. Only the native architecture is in
 * the filter, so i386 through int 0x80 fails the arch check; on x86_64
 * libseccomp also sends x32 numbers (nr >= 0x40000000, same AUDIT_ARCH) to
 * this action unless x32 is in the filter, which it is not. */
static int new_ctx(uint32_t def_action, scmp_filter_ctx *ret, sp_error *err)
{
    _cleanup_scmp_ scmp_filter_ctx ctx = seccomp_init(def_action);
    if (!ctx)
        return sp_error_set(err, ENOMEM, "cannot create a seccomp filter");
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                             SCMP_ACT_KILL_PROCESS);
    if (r < 0)
        return sp_error_set(err, -r,
                            "cannot make the seccomp filter kill foreign "
                            "architectures");
    /* A binary tree of syscall numbers: a lookup costs log(n) compares
     * instead of one per rule. Only an optimisation, so failure is fine. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    *ret = TAKE_PTR(ctx);
    return 0;
}

/* Export ctx as BPF, after `prefix` (n_prefix instructions whose jumps all
 * stay within the prefix or land on its end, i.e. the first instruction of
 * libseccomp's program). libseccomp 2.5 only writes to an fd, so go through
 * a memfd. */
static int export_prog(scmp_filter_ctx ctx, const struct sock_filter *prefix,
                       size_t n_prefix, struct sp_seccomp_prog *ret,
                       sp_error *err)
{
    _cleanup_close_ int fd = memfd_create("sandpit-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot create a memfd for the "
                                        "seccomp filter");
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0)
        return sp_error_set(err, -r, "cannot compile the seccomp filter");
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0)
        return sp_error_set(err, errno, "cannot size the seccomp filter");
    if (size == 0 || (size_t)size % sizeof(struct sock_filter) != 0)
        return sp_error_set(err, EIO,
                            "libseccomp wrote a filter of %lld bytes, not a "
                            "whole number of instructions",
                            (long long)size);
    size_t n = (size_t)size / sizeof(struct sock_filter);
    if (n + n_prefix > BPF_MAXINSNS)
        return sp_error_set(err, EFBIG,
                            "the seccomp filter has %zu instructions, more "
                            "than the kernel's limit of %d",
                            n + n_prefix, BPF_MAXINSNS);

    _cleanup_free_ struct sock_filter *buf =
        calloc(n + n_prefix, sizeof(struct sock_filter));
    if (!buf)
        return sp_error_set(err, ENOMEM, "cannot allocate the seccomp filter");
    if (n_prefix)
        memcpy(buf, prefix, n_prefix * sizeof(struct sock_filter));
    char *p = (char *)(buf + n_prefix);
    size_t want = (size_t)size, got = 0;
    while (got < want) {
        ssize_t k = pread(fd, p + got, want - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return sp_error_set(err, errno, "cannot read back the seccomp "
                                            "filter");
        if (k == 0)
            return sp_error_set(err, EIO, "the seccomp filter was cut short");
        got += (size_t)k;
    }
    ret->filter = TAKE_PTR(buf);
    ret->len = (unsigned short)(n + n_prefix);
    return 0;
}

/* Resolve a syscall name for the native architecture. Returns the number,
 * a negative libseccomp pseudo number for a call this architecture lacks,
 * or __NR_SCMP_ERROR for a name libseccomp does not know. */
static int resolve_syscall(const char *name, int fallback_nr)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR && fallback_nr >= 0)
        nr = fallback_nr;
    return nr;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
                    int nr, unsigned n_cmp, const struct scmp_arg_cmp *cmp,
                    sp_error *err)
{
    int r = seccomp_rule_add_array(ctx, action, nr, n_cmp, cmp);
    /* A call this architecture does not have (a pseudo number) needs no
     * rule: the kernel cannot be asked for it. */
    if (r < 0 && nr < 0)
        return 0;
    if (r < 0)
        return sp_error_set(err, -r, "cannot add the seccomp rule for %s",
                            name);
    return 0;
}

/* The personality rule, as hand-written BPF run before libseccomp's program:
 * allowing a set of values under a default of ALLOW needs "none of these",
 * which libseccomp cannot say about one argument. The kernel reads the
 * argument as an unsigned int, so only the low 32 bits are compared. On a
 * foreign architecture or another syscall it falls through to libseccomp's
 * program, which kills or decides. */
#define PERSONALITY_PREFIX_LEN (6 + SP_ARRAY_SIZE(personality_ok))

static void personality_prefix(struct sock_filter *out)
{
    const size_t end = PERSONALITY_PREFIX_LEN;
    const uint32_t arg0_lo = offsetof(struct seccomp_data, args[0])
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
                             + 4
#endif
        ;
    size_t i = 0;
#define SKIP_TO_END(at) ((unsigned char)(end - (at) - 1))
    out[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    i++;
    out[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          seccomp_arch_native(), 0,
                                          SKIP_TO_END(i));
    i++;
    out[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    i++;
    out[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          __NR_personality, 0, SKIP_TO_END(i));
    i++;
    out[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0_lo);
    i++;
    for (size_t k = 0; k < SP_ARRAY_SIZE(personality_ok); k++, i++)
        out[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                              personality_ok[k],
                                              SKIP_TO_END(i), 0);
    out[i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                          SECCOMP_RET_ERRNO | EPERM);
    i++;
#undef SKIP_TO_END
    (void)i; /* == end */
}

/* No set-uid or set-gid mode through any call that sets one (setid_calls).
 * The kernel reads a mode as umode_t, so the bit tests hold whatever the
 * high bits; one rule per bit (and per creating open flag) because
 * libseccomp ORs rules and ANDs comparisons. */
static int add_setid_rules(scmp_filter_ctx ctx, sp_error *err)
{
    static const uint64_t bits[] = {S_ISUID, S_ISGID};
    static const uint64_t creating[] = {O_CREAT, __O_TMPFILE};
    for (size_t i = 0; i < SP_ARRAY_SIZE(setid_calls); i++) {
        const struct setid_call *c = &setid_calls[i];
        int nr = resolve_syscall(c->name, c->fallback_nr);
        if (nr == __NR_SCMP_ERROR)
            continue;
        for (size_t b = 0; b < SP_ARRAY_SIZE(bits); b++) {
            struct scmp_arg_cmp cmp[2] = {
                {c->mode_arg, SCMP_CMP_MASKED_EQ, bits[b], bits[b]},
            };
            if (c->oflags_arg < 0) {
                int r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), c->name, nr, 1,
                                 cmp, err);
                if (r < 0)
                    return r;
                continue;
            }
            for (size_t f = 0; f < SP_ARRAY_SIZE(creating); f++) {
                cmp[1] = (struct scmp_arg_cmp){(unsigned)c->oflags_arg,
                                               SCMP_CMP_MASKED_EQ,
                                               creating[f], creating[f]};
                int r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), c->name, nr, 2,
                                 cmp, err);
                if (r < 0)
                    return r;
            }
        }
    }
    return 0;
}

static int build_default(const struct sp_policy *p, struct sp_seccomp_prog *ret,
                         sp_error *err)
{
    _cleanup_scmp_ scmp_filter_ctx ctx = NULL;
    int r = new_ctx(SCMP_ACT_ALLOW, &ctx, err);
    if (r < 0)
        return r;

    for (size_t i = 0; i < SP_ARRAY_SIZE(default_deny); i++) {
        const struct deny_entry *e = &default_deny[i];
        if ((e->flags & DENY_UNLESS_PTRACE) && p->allow_ptrace)
            continue;
        int nr = resolve_syscall(e->name, e->fallback_nr);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to libseccomp, no fallback: not on this arch */
        r = add_rule(ctx, SCMP_ACT_ERRNO((uint32_t)e->errnum), e->name, nr, 0,
                     NULL, err);
        if (r < 0)
            return r;
    }

    /* A new namespace of any kind, through unshare() or clone(): a nested
     * user namespace hands out capabilities over kernel code with a long
     * bug history (CVE-2022-0185, CVE-2022-0492). One rule per flag because
     * libseccomp ORs rules but ANDs comparisons. */
    int nr_unshare = seccomp_syscall_resolve_name("unshare");
    int nr_clone = seccomp_syscall_resolve_name("clone");
    for (size_t i = 0; i < SP_ARRAY_SIZE(clone_ns_flags); i++) {
        uint64_t f = clone_ns_flags[i];
        struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, f, f);
        r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", nr_unshare, 1,
                     &cmp, err);
        if (r < 0)
            return r;
        cmp.arg = SP_CLONE_FLAGS_ARG;
        r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", nr_clone, 1, &cmp,
                     err);
        if (r < 0)
            return r;
    }
    {
        struct scmp_arg_cmp cmp =
            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME);
        r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", nr_unshare, 1,
                     &cmp, err);
        if (r < 0)
            return r;
    }

    /* Typing into the terminal (TIOCSTI, bubblewrap CVE-2017-5226) and the
     * Linux console's selection/paste (TIOCLINUX, Flatpak CVE-2023-28100).
     * The kernel reads the request as an unsigned int, so compare the low
     * 32 bits only: a full-width compare let TIOCSTI | 1 << 32 through
     * (snapd CVE-2019-7303, Flatpak CVE-2019-10063). */
    static const uint64_t bad_ioctls[] = {TIOCSTI, TIOCLINUX};
    int nr_ioctl = seccomp_syscall_resolve_name("ioctl");
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad_ioctls); i++) {
        struct scmp_arg_cmp cmp =
            SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, bad_ioctls[i]);
        r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", nr_ioctl, 1, &cmp,
                     err);
        if (r < 0)
            return r;
    }

    /* Sockets: only the families ordinary programs use. AF_PACKET, AF_VSOCK,
     * AF_BLUETOOTH, AF_ALG, AF_TIPC, ... are rarely needed and keep yielding
     * kernel bugs (CVE-2016-8655, CVE-2017-7308 in AF_PACKET). Netlink only
     * for NETLINK_ROUTE (getifaddrs, ip): NETLINK_NETFILTER and friends
     * reach nf_tables and audit. EAFNOSUPPORT reads to a program as "this
     * kernel lacks the family", which it handles. */
    static const char *const socket_calls[] = {"socket", "socketpair"};
    for (size_t s = 0; s < SP_ARRAY_SIZE(socket_calls); s++) {
        int nr = seccomp_syscall_resolve_name(socket_calls[s]);
        for (size_t i = 0; i < SP_ARRAY_SIZE(socket_family_deny); i++) {
            r = add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), socket_calls[s],
                         nr, 1, &socket_family_deny[i], err);
            if (r < 0)
                return r;
        }
        struct scmp_arg_cmp nl[2] = {
            SCMP_A0(SCMP_CMP_EQ, AF_NETLINK, 0),
            SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE, 0),
        };
        r = add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), socket_calls[s], nr,
                     2, nl, err);
        if (r < 0)
            return r;
    }

    r = add_setid_rules(ctx, err);
    if (r < 0)
        return r;

    struct sock_filter prefix[PERSONALITY_PREFIX_LEN];
    personality_prefix(prefix);
    return export_prog(ctx, prefix, SP_ARRAY_SIZE(prefix), ret, err);
}

/* ---- custom profiles --------------------------------------------------- */

static int profile_error(sp_error *err, const char *origin, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static int profile_error(sp_error *err, const char *origin, const char *fmt,
                         ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The message quotes keys and names from the profile, which a JSON-RPC
     * client may have written: no control bytes (terminal escapes) in what
     * a front end prints. */
    for (char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    (void)sp_error_setk(err, SP_ERR_USAGE, 0, "%s: %s", origin, msg);
    return -EINVAL;
}

#define ERRNO_NAME(e) {#e, e}
static const struct {
    const char *name;
    int value;
} errno_names[] = {
    ERRNO_NAME(EPERM),        ERRNO_NAME(ENOENT),
    ERRNO_NAME(ESRCH),        ERRNO_NAME(EINTR),
    ERRNO_NAME(EIO),          ERRNO_NAME(ENXIO),
    ERRNO_NAME(E2BIG),        ERRNO_NAME(ENOEXEC),
    ERRNO_NAME(EBADF),        ERRNO_NAME(ECHILD),
    ERRNO_NAME(EAGAIN),       ERRNO_NAME(ENOMEM),
    ERRNO_NAME(EACCES),       ERRNO_NAME(EFAULT),
    ERRNO_NAME(EBUSY),        ERRNO_NAME(EEXIST),
    ERRNO_NAME(EXDEV),        ERRNO_NAME(ENODEV),
    ERRNO_NAME(ENOTDIR),      ERRNO_NAME(EISDIR),
    ERRNO_NAME(EINVAL),       ERRNO_NAME(ENFILE),
    ERRNO_NAME(EMFILE),       ERRNO_NAME(ENOTTY),
    ERRNO_NAME(ETXTBSY),      ERRNO_NAME(EFBIG),
    ERRNO_NAME(ENOSPC),       ERRNO_NAME(ESPIPE),
    ERRNO_NAME(EROFS),        ERRNO_NAME(EMLINK),
    ERRNO_NAME(EPIPE),        ERRNO_NAME(ERANGE),
    ERRNO_NAME(ENAMETOOLONG), ERRNO_NAME(ENOSYS),
    ERRNO_NAME(ENOTEMPTY),    ERRNO_NAME(ELOOP),
    ERRNO_NAME(ENODATA),      ERRNO_NAME(ENOTSOCK),
    ERRNO_NAME(EPROTONOSUPPORT), ERRNO_NAME(EOPNOTSUPP),
    ERRNO_NAME(ENOTSUP),      ERRNO_NAME(EAFNOSUPPORT),
    ERRNO_NAME(EADDRINUSE),   ERRNO_NAME(EADDRNOTAVAIL),
    ERRNO_NAME(ENETDOWN),     ERRNO_NAME(ENETUNREACH),
    ERRNO_NAME(ECONNREFUSED), ERRNO_NAME(ECONNRESET),
    ERRNO_NAME(ETIMEDOUT),    ERRNO_NAME(EHOSTUNREACH),
    ERRNO_NAME(EDQUOT),       ERRNO_NAME(ECANCELED),
};
#undef ERRNO_NAME

/* The kernel takes SECCOMP_RET_DATA as errno up to MAX_ERRNO. */
#define SP_MAX_ERRNO 4095

static int parse_errno(const json_t *v, const char *origin, const char *path,
                       int *ret, sp_error *err)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > SP_MAX_ERRNO)
            return profile_error(err, origin,
                                 "%s: errno %lld is outside 1..%d", path,
                                 (long long)n, SP_MAX_ERRNO);
        *ret = (int)n;
        return 0;
    }
    if (!json_is_string(v))
        return profile_error(err, origin,
                             "%s: expected an errno name (\"EPERM\") or a "
                             "number",
                             path);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < SP_ARRAY_SIZE(errno_names); i++)
        if (strcmp(errno_names[i].name, s) == 0) {
            *ret = errno_names[i].value;
            return 0;
        }
    return profile_error(err, origin,
                         "%s: unknown errno name \"%s\" (give a number for "
                         "one not in docs/seccomp.md)",
                         path, s);
}

enum profile_action { ACT_ALLOW, ACT_ERRNO, ACT_KILL, ACT_LOG };

static int parse_action(const json_t *v, const char *origin, const char *path,
                        enum profile_action *ret, sp_error *err)
{
    static const char *const names[] = {
        [ACT_ALLOW] = "allow",
        [ACT_ERRNO] = "errno",
        [ACT_KILL] = "kill",
        [ACT_LOG] = "log",
    };
    if (!json_is_string(v))
        return profile_error(err, origin,
                             "%s: expected a string (allow, errno, kill, "
                             "log)",
                             path);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (strcmp(names[i], s) == 0) {
            *ret = (enum profile_action)i;
            return 0;
        }
    return profile_error(err, origin,
                         "%s: unknown action \"%s\" (allow, errno, kill, log)",
                         path, s);
}

static uint32_t scmp_action(enum profile_action a, int errnum)
{
    switch (a) {
    case ACT_ALLOW:
        return SCMP_ACT_ALLOW;
    case ACT_ERRNO:
        return SCMP_ACT_ERRNO((uint32_t)errnum);
    case ACT_LOG:
        return SCMP_ACT_LOG;
    case ACT_KILL:
    default:
        return SCMP_ACT_KILL_PROCESS;
    }
}

/* An argument value: a JSON integer (a negative one is taken as its 64-bit
 * two's complement, so -1 is 0xffffffffffffffff) or a string in C syntax
 * ("0x5412", "0755", "21524") for values above INT64_MAX. */
static int parse_u64(const json_t *v, const char *origin, const char *path,
                     uint64_t *ret, sp_error *err)
{
    if (json_is_integer(v)) {
        *ret = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(s, &end, 0);
        if (s[0] >= '0' && s[0] <= '9' && end != s && *end == '\0' &&
            errno == 0) {
            *ret = n;
            return 0;
        }
        return profile_error(err, origin,
                             "%s: \"%s\" is not an unsigned 64-bit number",
                             path, s);
    }
    return profile_error(err, origin, "%s: expected an integer", path);
}

static int parse_arg(const json_t *a, const char *origin, const char *path,
                     struct scmp_arg_cmp *ret, sp_error *err)
{
    static const struct {
        const char *name;
        enum scmp_compare op;
    } ops[] = {
        {"eq", SCMP_CMP_EQ}, {"ne", SCMP_CMP_NE}, {"lt", SCMP_CMP_LT},
        {"le", SCMP_CMP_LE}, {"gt", SCMP_CMP_GT}, {"ge", SCMP_CMP_GE},
        {"masked_eq", SCMP_CMP_MASKED_EQ},
    };
    if (!json_is_object(a))
        return profile_error(err, origin, "%s: expected an object", path);
    const json_t *index = NULL, *op = NULL, *value = NULL, *mask = NULL;
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach((json_t *)a, key, v) {
        if (strcmp(key, "index") == 0)
            index = v;
        else if (strcmp(key, "op") == 0)
            op = v;
        else if (strcmp(key, "value") == 0)
            value = v;
        else if (strcmp(key, "mask") == 0)
            mask = v;
        else
            return profile_error(err, origin, "%s.%s: unknown key", path, key);
    }
    if (!index || !op || !value)
        return profile_error(err, origin, "%s: \"%s\" is missing", path,
                             !index ? "index" : !op ? "op" : "value");
    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        json_integer_value(index) > 5)
        return profile_error(err, origin,
                             "%s.index: expected an integer from 0 to 5",
                             path);
    if (!json_is_string(op))
        return profile_error(err, origin, "%s.op: expected a string", path);
    const char *ops_s = json_string_value(op);
    size_t k = 0;
    while (k < SP_ARRAY_SIZE(ops) && strcmp(ops[k].name, ops_s) != 0)
        k++;
    if (k == SP_ARRAY_SIZE(ops))
        return profile_error(err, origin,
                             "%s.op: unknown operator \"%s\" (eq, ne, lt, le, "
                             "gt, ge, masked_eq)",
                             path, ops_s);
    char sub[256];
    uint64_t val = 0, msk = 0;
    snprintf(sub, sizeof(sub), "%s.value", path);
    int r = parse_u64(value, origin, sub, &val, err);
    if (r < 0)
        return r;
    if (ops[k].op == SCMP_CMP_MASKED_EQ) {
        if (!mask)
            return profile_error(err, origin,
                                 "%s: \"mask\" is missing (op masked_eq)",
                                 path);
        snprintf(sub, sizeof(sub), "%s.mask", path);
        r = parse_u64(mask, origin, sub, &msk, err);
        if (r < 0)
            return r;
        *ret = (struct scmp_arg_cmp){(unsigned)json_integer_value(index),
                                     SCMP_CMP_MASKED_EQ, msk, val};
    } else {
        if (mask)
            return profile_error(err, origin,
                                 "%s.mask: only with op masked_eq", path);
        *ret = (struct scmp_arg_cmp){(unsigned)json_integer_value(index),
                                     ops[k].op, val, 0};
    }
    return 0;
}

/* Largest raw syscall number a profile may name (below the x32 bit). */
#define SP_MAX_SYSCALL_NR 4095

static int parse_rule(scmp_filter_ctx ctx, uint32_t def_action,
                      const json_t *rule, size_t ri, const char *origin,
                      sp_error *err)
{
    char path[128];
    snprintf(path, sizeof(path), "rules[%zu]", ri);
    if (!json_is_object(rule))
        return profile_error(err, origin, "%s: expected an object", path);

    const json_t *syscalls = NULL, *action = NULL, *errnum = NULL,
                 *args = NULL;
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach((json_t *)rule, key, v) {
        if (strcmp(key, "syscalls") == 0)
            syscalls = v;
        else if (strcmp(key, "action") == 0)
            action = v;
        else if (strcmp(key, "errno") == 0)
            errnum = v;
        else if (strcmp(key, "args") == 0)
            args = v;
        else if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return profile_error(err, origin,
                                     "%s.comment: expected a string", path);
        } else
            return profile_error(err, origin, "%s.%s: unknown key", path, key);
    }
    if (!syscalls)
        return profile_error(err, origin, "%s: \"syscalls\" is missing", path);
    if (!action)
        return profile_error(err, origin, "%s: \"action\" is missing", path);

    char sub[192];
    enum profile_action act = ACT_ALLOW;
    snprintf(sub, sizeof(sub), "%s.action", path);
    int r = parse_action(action, origin, sub, &act, err);
    if (r < 0)
        return r;
    int e = EPERM;
    if (errnum) {
        snprintf(sub, sizeof(sub), "%s.errno", path);
        if (act != ACT_ERRNO)
            return profile_error(err, origin,
                                 "%s: only with action \"errno\"", sub);
        r = parse_errno(errnum, origin, sub, &e, err);
        if (r < 0)
            return r;
    }

    struct scmp_arg_cmp cmp[6];
    unsigned n_cmp = 0;
    if (args) {
        if (!json_is_array(args))
            return profile_error(err, origin, "%s.args: expected an array",
                                 path);
        if (json_array_size(args) > SP_ARRAY_SIZE(cmp))
            return profile_error(err, origin,
                                 "%s.args: more than %zu comparisons", path,
                                 SP_ARRAY_SIZE(cmp));
        for (size_t i = 0; i < json_array_size(args); i++) {
            snprintf(sub, sizeof(sub), "%s.args[%zu]", path, i);
            r = parse_arg(json_array_get(args, i), origin, sub, &cmp[n_cmp],
                          err);
            if (r < 0)
                return r;
            for (unsigned j = 0; j < n_cmp; j++)
                if (cmp[j].arg == cmp[n_cmp].arg)
                    return profile_error(err, origin,
                                         "%s.index: argument %u is already "
                                         "compared in this rule (libseccomp "
                                         "takes one comparison per argument; "
                                         "write two rules)",
                                         sub, cmp[n_cmp].arg);
            n_cmp++;
        }
    }

    if (!json_is_array(syscalls))
        return profile_error(err, origin, "%s.syscalls: expected an array",
                             path);
    size_t n = json_array_size(syscalls);
    if (n == 0 || n > SP_MAX_SECCOMP_SYSCALLS)
        return profile_error(err, origin,
                             "%s.syscalls: expected 1 to %d syscall names",
                             path, SP_MAX_SECCOMP_SYSCALLS);
    uint32_t sact = scmp_action(act, e);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(syscalls, i);
        snprintf(sub, sizeof(sub), "%s.syscalls[%zu]", path, i);
        int nr = __NR_SCMP_ERROR;
        char name[64];
        if (json_is_string(s)) {
            nr = seccomp_syscall_resolve_name(json_string_value(s));
            if (nr == __NR_SCMP_ERROR)
                return profile_error(err, origin, "%s: unknown syscall \"%s\"",
                                     sub, json_string_value(s));
            snprintf(name, sizeof(name), "%s", json_string_value(s));
        } else if (json_is_integer(s)) {
            json_int_t k = json_integer_value(s);
            if (k < 0 || k > SP_MAX_SYSCALL_NR)
                return profile_error(err, origin,
                                     "%s: syscall number %lld is outside "
                                     "0..%d",
                                     sub, (long long)k, SP_MAX_SYSCALL_NR);
            nr = (int)k;
            snprintf(name, sizeof(name), "#%d", nr);
        } else {
            return profile_error(err, origin,
                                 "%s: expected a syscall name or number", sub);
        }
        /* A rule with the default action changes nothing; libseccomp
         * refuses it (EACCES), we let it pass. */
        if (sact == def_action)
            continue;
        r = seccomp_rule_add_array(ctx, sact, nr, n_cmp, cmp);
        /* A call this architecture lacks (a pseudo number) cannot be made,
         * so a rule for it is moot; a profile stays portable. */
        if (r < 0 && nr < 0)
            continue;
        if (r < 0)
            return profile_error(err, origin,
                                 "%s: libseccomp refused the rule for %s "
                                 "(%s; a conflicting earlier rule?)",
                                 sub, name, strerror(-r));
    }
    return 0;
}

int sp_seccomp_build_profile_text(const char *json, size_t len,
                                  const char *origin,
                                  struct sp_seccomp_prog *ret, sp_error *err)
{
    if (!origin)
        origin = "seccomp profile";
    if (len > SP_MAX_POLICY_FILE) {
        (void)sp_error_setk(err, SP_ERR_USAGE, 0,
                            "%s: larger than %d bytes", origin,
                            SP_MAX_POLICY_FILE);
        return -EFBIG;
    }
    json_error_t jerr;
    _cleanup_json_ json_t *root =
        json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return profile_error(err, origin, "line %d, column %d: %s", jerr.line,
                             jerr.column, jerr.text);
    if (!json_is_object(root))
        return profile_error(err, origin, "expected a JSON object");

    const json_t *def = NULL, *def_errno = NULL, *rules = NULL;
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "default_action") == 0)
            def = v;
        else if (strcmp(key, "default_errno") == 0)
            def_errno = v;
        else if (strcmp(key, "rules") == 0)
            rules = v;
        else if (strcmp(key, "comment") == 0) {
            if (!json_is_string(v))
                return profile_error(err, origin,
                                     "comment: expected a string");
        } else
            return profile_error(err, origin, "%s: unknown key", key);
    }
    if (!def)
        return profile_error(err, origin, "\"default_action\" is missing");
    enum profile_action act = ACT_ALLOW;
    int r = parse_action(def, origin, "default_action", &act, err);
    if (r < 0)
        return r;
    int e = EPERM;
    if (def_errno) {
        if (act != ACT_ERRNO)
            return profile_error(err, origin,
                                 "default_errno: only with default_action "
                                 "\"errno\"");
        r = parse_errno(def_errno, origin, "default_errno", &e, err);
        if (r < 0)
            return r;
    }
    if (rules && !json_is_array(rules))
        return profile_error(err, origin, "rules: expected an array");
    if (rules && json_array_size(rules) > SP_MAX_SECCOMP_RULES)
        return profile_error(err, origin, "rules: more than %d rules",
                             SP_MAX_SECCOMP_RULES);

    uint32_t def_action = scmp_action(act, e);
    _cleanup_scmp_ scmp_filter_ctx ctx = NULL;
    r = new_ctx(def_action, &ctx, err);
    if (r < 0)
        return r;
    for (size_t i = 0; rules && i < json_array_size(rules); i++) {
        r = parse_rule(ctx, def_action, json_array_get(rules, i), i, origin,
                       err);
        if (r < 0)
            return r;
    }
    r = export_prog(ctx, NULL, 0, ret, err);
    if (r < 0)
        return sp_error_prefix(err, "%s", origin);
    return 0;
}

/* Read a whole profile file, refusing anything but a regular file (a fifo
 * would block us) and anything over SP_MAX_POLICY_FILE, also if it grows
 * while we read. */
static int read_profile(const char *path, char **ret, size_t *ret_len,
                        sp_error *err)
{
    _cleanup_close_ int fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno,
                             "cannot open seccomp profile %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sp_error_set(err, errno, "cannot stat seccomp profile %s",
                            path);
    if (!S_ISREG(st.st_mode))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "seccomp profile %s is not a regular file", path);
    if (st.st_size > SP_MAX_POLICY_FILE) {
        (void)sp_error_setk(err, SP_ERR_USAGE, 0,
                            "seccomp profile %s: larger than %d bytes", path,
                            SP_MAX_POLICY_FILE);
        return -EFBIG;
    }
    _cleanup_free_ char *buf = malloc(SP_MAX_POLICY_FILE + 1);
    if (!buf)
        return sp_error_set(err, ENOMEM, "cannot read seccomp profile %s",
                            path);
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd, buf + got, SP_MAX_POLICY_FILE + 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return sp_error_set(err, errno, "cannot read seccomp profile %s",
                                path);
        if (k == 0)
            break;
        got += (size_t)k;
        if (got > SP_MAX_POLICY_FILE) {
            (void)sp_error_setk(err, SP_ERR_USAGE, 0,
                                "seccomp profile %s: larger than %d bytes",
                                path, SP_MAX_POLICY_FILE);
            return -EFBIG;
        }
    }
    *ret = TAKE_PTR(buf);
    *ret_len = got;
    return 0;
}

int sp_seccomp_build(const struct sp_policy *p, struct sp_seccomp_prog *ret,
                     sp_error *err)
{
    if (!p || !ret)
        return sp_error_set(err, EINVAL, "no policy to build a seccomp "
                                         "filter from");
    if (!p->seccomp_profile)
        return build_default(p, ret, err);

    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_profile(p->seccomp_profile, &text, &len, err);
    if (r < 0)
        return r;
    char origin[SP_MAX_PATH + 32];
    snprintf(origin, sizeof(origin), "seccomp profile %s", p->seccomp_profile);
    return sp_seccomp_build_profile_text(text, len, origin, ret, err);
}

/* ---- in the child ------------------------------------------------------- */

/* The exec filter: openat2 answers ENOSYS. Its mode sits in struct
 * open_how, out of seccomp's sight, so a set-uid mode could not be checked
 * (setid_calls); ENOSYS makes a program fall back to openat(), whose mode
 * the default filter checks, as on kernels before 5.6. It is a filter of
 * its own, stacked on the default one right before each execve, because
 * the workspace agent (under the default filter) needs openat2 itself for
 * RESOLVE_BENEATH. A foreign architecture falls through to ALLOW here: the
 * default filter below it kills. */
static const struct sock_filter exec_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SP_AUDIT_ARCH_NATIVE, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SP_NR_OPENAT2, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

int sp_seccomp_install_exec(void)
{
    struct sp_seccomp_prog prog = {
        .filter = (struct sock_filter *)exec_filter,
        .len = (unsigned short)SP_ARRAY_SIZE(exec_filter),
    };
    return sp_seccomp_install(&prog);
}

int sp_seccomp_install(const struct sp_seccomp_prog *prog)
{
    if (!prog || !prog->filter || prog->len == 0)
        return -EINVAL;
    /* Async-signal-safe: a stack struct and raw system calls on memory
     * prepared before clone(); errno is per-thread. */
    struct sock_fprog fprog = {.len = prog->len, .filter = prog->filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    /* Linux before 3.17 has only the prctl() form. */
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0)
        return 0;
    return -errno;
}

/* ---- watching the deny list (seccomp.h) ------------------------------- */

#include <poll.h>

#include "proto.h"
#include "report.h"

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
/* Linux 6.6: wake the waiting side on the same CPU (made for supervisors
 * answering storms of notifications); older headers lack it. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

int sp_seccomp_watched_variant(const struct sp_seccomp_prog *in,
                               struct sp_seccomp_prog *ret)
{
    struct sock_filter *f = malloc((size_t)in->len * sizeof(*f));
    if (!f)
        return -ENOMEM;
    memcpy(f, in->filter, (size_t)in->len * sizeof(*f));
    for (unsigned i = 0; i < in->len; i++) {
        if (f[i].code == (BPF_RET | BPF_K) &&
            (f[i].k == (SECCOMP_RET_ERRNO | EPERM) ||
             f[i].k == (SECCOMP_RET_ERRNO | EAFNOSUPPORT)))
            f[i].k = SECCOMP_RET_USER_NOTIF;
    }
    ret->filter = f;
    ret->len = in->len;
    return 0;
}

static void send_watch_msg(int sock, char tag, int err, int fd)
{
    char data[1 + sizeof(int)];
    data[0] = tag;
    memcpy(data + 1, &err, sizeof(int));
    struct iovec iov = {data, tag == 'S' ? 1 : sizeof(data)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    memset(&u, 0, sizeof(u));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

int sp_seccomp_install_watched(const struct sp_seccomp_prog *watched,
                               const struct sp_seccomp_prog *plain, int sock)
{
    if (!watched || !watched->filter || watched->len == 0)
        return -EINVAL;
    struct sock_fprog fprog = {.len = watched->len, .filter = watched->filter};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (fd >= 0) {
        send_watch_msg(sock, 'S', 0, (int)fd);
        close((int)fd);
        return 0;
    }
    int e = errno;
    int r = sp_seccomp_install(plain);
    if (r == 0)
        send_watch_msg(sock, 'E', e, -1);
    return r;
}

int sp_seccomp_recv_listener(int sock, bool *refused)
{
    char data[1 + sizeof(int)] = {0};
    int fd;
    *refused = false;
    ssize_t n = sp_recv_fd(sock, data, sizeof(data), MSG_DONTWAIT, &fd);
    if (n < 0)
        return (int)n;
    if (n == 1 && data[0] == 'S' && fd >= 0)
        return fd;
    if (fd >= 0)
        close(fd);
    if (n == (ssize_t)sizeof(data) && data[0] == 'E') {
        int e;
        memcpy(&e, data + 1, sizeof(int));
        *refused = true;
        return e > 0 ? -e : -EPROTO;
    }
    return n == 0 ? -ECONNRESET : -EPROTO;
}

struct sp_seccomp_watch {
    int fd;
    struct sp_denials *t;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    size_t req_size, resp_size;
    /* the last syscall number named, so a storm of one call costs no
     * lookups */
    int last_nr;
    char last_name[64];
};

struct sp_seccomp_watch *sp_seccomp_watch_new(int fd, struct sp_denials *t)
{
    struct seccomp_notif_sizes sz = {0};
    struct sp_seccomp_watch *w = calloc(1, sizeof(*w));
    if (!w || syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0) {
        free(w);
        close(fd);
        return NULL;
    }
    w->req_size = sz.seccomp_notif > sizeof(struct seccomp_notif)
                      ? sz.seccomp_notif
                      : sizeof(struct seccomp_notif);
    w->resp_size = sz.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
                       ? sz.seccomp_notif_resp
                       : sizeof(struct seccomp_notif_resp);
    w->req = calloc(1, w->req_size);
    w->resp = calloc(1, w->resp_size);
    if (!w->req || !w->resp) {
        sp_seccomp_watch_free(w);
        close(fd);
        return NULL;
    }
    w->fd = fd;
    w->t = t;
    w->last_nr = -1;
    /* Best effort: without it (Linux < 6.6) a denial costs a little more. */
    (void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                (uint64_t)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    return w;
}

int sp_seccomp_watch_fd(const struct sp_seccomp_watch *w)
{
    return w ? w->fd : -1;
}

void sp_seccomp_watch_free(struct sp_seccomp_watch *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->req);
    free(w->resp);
    free(w);
}

/* What refused it, in words, and the argument that matters. */
static const char *watch_rule(const char *name, const struct seccomp_data *d,
                              struct sp_denial *out)
{
    static const char *const setid[] = {"chmod", "fchmod", "fchmodat",
                                        "fchmodat2", "mknod", "mknodat",
                                        "creat", "open", "openat"};
    if (strcmp(name, "socket") == 0 || strcmp(name, "socketpair") == 0) {
        out->has_arg = true;
        snprintf(out->arg_name, sizeof(out->arg_name), "family");
        out->arg = d->args[0];
        return "seccomp: socket family not allowed";
    }
    if (strcmp(name, "clone") == 0 || strcmp(name, "unshare") == 0) {
        out->has_arg = true;
        snprintf(out->arg_name, sizeof(out->arg_name), "flags");
        out->arg = d->args[strcmp(name, "clone") == 0 ? SP_CLONE_FLAGS_ARG : 0];
        return "seccomp: no new namespaces";
    }
    if (strcmp(name, "ioctl") == 0) {
        out->has_arg = true;
        snprintf(out->arg_name, sizeof(out->arg_name), "request");
        out->arg = d->args[1] & 0xffffffffu;
        return "seccomp: terminal injection (TIOCSTI, TIOCLINUX)";
    }
    if (strcmp(name, "personality") == 0) {
        out->has_arg = true;
        snprintf(out->arg_name, sizeof(out->arg_name), "persona");
        out->arg = d->args[0] & 0xffffffffu;
        return "seccomp: personality flags not allowed";
    }
    for (size_t i = 0; i < SP_ARRAY_SIZE(setid); i++) {
        if (strcmp(name, setid[i]) == 0) {
            for (size_t k = 0; k < SP_ARRAY_SIZE(setid_calls); k++) {
                if (strcmp(setid_calls[k].name, name) == 0) {
                    out->has_arg = true;
                    snprintf(out->arg_name, sizeof(out->arg_name), "mode");
                    out->arg = d->args[setid_calls[k].mode_arg] & 07777;
                }
            }
            return "seccomp: no set-uid or set-gid modes";
        }
    }
    return "seccomp default deny list";
}

int sp_seccomp_watch_dispatch(struct sp_seccomp_watch *w)
{
    int done = 0;
    while (done < SP_SECCOMP_NOTIFY_BATCH) {
        struct pollfd pfd = {w->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, 0);
        if (pr <= 0)
            break;
        if (!(pfd.revents & POLLIN))
            return done ? done : -1; /* POLLHUP: nobody is left under it */
        memset(w->req, 0, w->req_size);
        if (ioctl(w->fd, SECCOMP_IOCTL_NOTIF_RECV, w->req) < 0) {
            if (errno == EINTR || errno == ENOENT)
                continue; /* the caller died meanwhile */
            break;
        }
        const struct seccomp_data *d = &w->req->data;
        int nr = d->nr;
        if (nr != w->last_nr) {
            char *nm = seccomp_syscall_resolve_num_arch(d->arch, nr);
            if (nm)
                snprintf(w->last_name, sizeof(w->last_name), "%s", nm);
            else
                snprintf(w->last_name, sizeof(w->last_name), "syscall_%d",
                         nr);
            free(nm);
            w->last_nr = nr;
        }
        struct sp_denial den;
        memset(&den, 0, sizeof(den));
        den.kind = SP_DENIAL_SYSCALL;
        snprintf(den.what, sizeof(den.what), "%s", w->last_name);
        const char *rule = watch_rule(w->last_name, d, &den);
        snprintf(den.rule, sizeof(den.rule), "%s", rule);
        den.err = strcmp(w->last_name, "socket") == 0 ||
                          strcmp(w->last_name, "socketpair") == 0
                      ? EAFNOSUPPORT
                      : EPERM;
        den.first_ms = (sp_now_us() - w->t->t0_us) / 1000u;
        sp_denials_add(w->t, &den);
        memset(w->resp, 0, w->resp_size);
        w->resp->id = w->req->id;
        w->resp->error = -den.err;
        w->resp->val = 0;
        w->resp->flags = 0;
        /* ENOENT: it was killed while we looked; nothing to answer. */
        (void)ioctl(w->fd, SECCOMP_IOCTL_NOTIF_SEND, w->resp);
        done++;
    }
    return done;
}

int sp_seccomp_install_watched_here(const struct sp_seccomp_prog *watched,
                                    const struct sp_seccomp_prog *plain,
                                    int *ret_fd)
{
    *ret_fd = -1;
    if (!watched || !watched->filter || watched->len == 0)
        return -EINVAL;
    struct sock_fprog fprog = {.len = watched->len, .filter = watched->filter};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (fd >= 0) {
        *ret_fd = (int)fd;
        return 0;
    }
    return sp_seccomp_install(plain);
}

#include <pthread.h>

struct bg_entry {
    pid_t sid;
    struct sp_denial d;  /* first_ms: unused; `at` below */
    uint64_t at_us;
};

struct sp_seccomp_bg {
    struct sp_seccomp_watch *w;
    pthread_mutex_t mu;
    struct bg_entry e[SP_SECCOMP_BG_ENTRIES];
    size_t n;
    uint64_t evicted;
    /* the last pid's session, so a storm from one process reads /proc
     * once */
    pid_t last_pid, last_sid;
};

static pid_t sid_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp session": comm may hold anything, so
     * from the last ')' */
    char *p = strrchr(buf, ')');
    int ppid, pgrp, sess;
    char st;
    if (!p || sscanf(p + 1, " %c %d %d %d", &st, &ppid, &pgrp, &sess) != 4)
        return 0;
    return (pid_t)sess;
}

static pid_t bg_sid(struct sp_seccomp_bg *b, pid_t pid)
{
    if (pid != b->last_pid) {
        b->last_sid = sid_of(pid);
        b->last_pid = pid;
    }
    return b->last_sid;
}

static void bg_record(struct sp_seccomp_bg *b, pid_t sid,
                      const struct sp_denial *d)
{
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        struct bg_entry *x = &b->e[i];
        if (x->sid == sid && x->d.has_arg == d->has_arg &&
            (!d->has_arg || x->d.arg == d->arg) &&
            strcmp(x->d.what, d->what) == 0) {
            x->d.count++;
            pthread_mutex_unlock(&b->mu);
            return;
        }
    }
    if (b->n == SP_ARRAY_SIZE(b->e)) {
        /* full: the oldest goes (entries stay in arrival order) */
        b->evicted += b->e[0].d.count;
        memmove(&b->e[0], &b->e[1], (b->n - 1) * sizeof(b->e[0]));
        b->n--;
    }
    struct bg_entry *x = &b->e[b->n++];
    x->sid = sid;
    x->d = *d;
    x->d.count = 1;
    x->at_us = sp_now_us();
    pthread_mutex_unlock(&b->mu);
}

/* One notification: received (blocking), answered, recorded. */
static void *bg_main(void *arg)
{
    struct sp_seccomp_bg *b = arg;
    struct sp_seccomp_watch *w = b->w;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        memset(w->req, 0, w->req_size);
        if (ioctl(w->fd, SECCOMP_IOCTL_NOTIF_RECV, w->req) < 0) {
            if (errno == EINTR || errno == ENOENT)
                continue;
            return NULL;
        }
        const struct seccomp_data *d = &w->req->data;
        struct sp_denial den;
        memset(&den, 0, sizeof(den));
        den.kind = SP_DENIAL_SYSCALL;
        if (d->nr != w->last_nr) {
            char *nm = seccomp_syscall_resolve_num_arch(d->arch, d->nr);
            if (nm)
                snprintf(w->last_name, sizeof(w->last_name), "%s", nm);
            else
                snprintf(w->last_name, sizeof(w->last_name), "syscall_%d",
                         d->nr);
            free(nm);
            w->last_nr = d->nr;
        }
        snprintf(den.what, sizeof(den.what), "%s", w->last_name);
        snprintf(den.rule, sizeof(den.rule), "%s",
                 watch_rule(w->last_name, d, &den));
        den.err = strcmp(w->last_name, "socket") == 0 ||
                          strcmp(w->last_name, "socketpair") == 0
                      ? EAFNOSUPPORT
                      : EPERM;
        /* whose it is, while the caller waits for the answer (a pid
         * reused since is told apart by NOTIF_ID_VALID) */
        pid_t sid = bg_sid(b, (pid_t)w->req->pid);
        if (ioctl(w->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &w->req->id) < 0) {
            b->last_pid = 0;
            sid = 0;
        }
        /* counted before it is answered: once the caller goes on, its
         * denial is in the table (its exec's reply may follow at once) */
        bg_record(b, sid, &den);
        memset(w->resp, 0, w->resp_size);
        w->resp->id = w->req->id;
        w->resp->error = -den.err;
        (void)ioctl(w->fd, SECCOMP_IOCTL_NOTIF_SEND, w->resp);
    }
}

struct sp_seccomp_bg *sp_seccomp_bg_start(int fd)
{
    struct sp_seccomp_bg *b = calloc(1, sizeof(*b));
    if (!b) {
        close(fd);
        return NULL;
    }
    b->w = sp_seccomp_watch_new(fd, NULL);
    if (!b->w) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 * 1024);
    int r = pthread_create(&t, &at, bg_main, b);
    pthread_attr_destroy(&at);
    if (r != 0) {
        sp_seccomp_watch_free(b->w);
        free(b);
        return NULL;
    }
    return b;
}

json_t *sp_seccomp_bg_take(void *ctx, pid_t sid, uint64_t t0_us)
{
    struct sp_seccomp_bg *b = ctx;
    json_t *a = json_array();
    if (!b)
        return json_pack("{s:o,s:i}", "denials", a, "dropped", 0);
    pthread_mutex_lock(&b->mu);
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct bg_entry *x = &b->e[i];
        if (x->sid != sid) {
            b->e[k++] = *x;
            continue;
        }
        json_t *o = json_pack("{s:s,s:i,s:s,s:I,s:I}", "syscall", x->d.what,
                              "errno", x->d.err, "rule", x->d.rule, "count",
                              (json_int_t)x->d.count, "first_ms",
                              (json_int_t)(x->at_us > t0_us
                                               ? (x->at_us - t0_us) / 1000u
                                               : 0));
        if (x->d.has_arg) {
            json_object_set_new(o, "arg_name", json_string(x->d.arg_name));
            json_object_set_new(o, "arg", json_integer((json_int_t)x->d.arg));
        }
        json_array_append_new(a, o);
    }
    b->n = k;
    uint64_t ev = b->evicted;
    b->evicted = 0;
    pthread_mutex_unlock(&b->mu);
    return json_pack("{s:o,s:I}", "denials", a, "dropped", (json_int_t)ev);
}

/* ---- the OCI runtime spec's linux.seccomp -------------------------------- */

static int oci_action(const char *name, uint32_t errnum, uint32_t *ret,
                      const char *where, sp_error *err)
{
    static const struct {
        const char *name;
        uint32_t act;
    } acts[] = {{"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
                {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},
                {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
                {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
                {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
                {"SCMP_ACT_LOG", SCMP_ACT_LOG}};
    if (!name)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "linux.seccomp%s: no action", where);
    if (strcmp(name, "SCMP_ACT_ERRNO") == 0 ||
        strcmp(name, "SCMP_ACT_TRACE") == 0) {
        /* no tracer is attached: TRACE would fail with ENOSYS anyway */
        *ret = SCMP_ACT_ERRNO(errnum);
        return 0;
    }
    for (size_t i = 0; i < SP_ARRAY_SIZE(acts); i++)
        if (strcmp(name, acts[i].name) == 0) {
            *ret = acts[i].act;
            return 0;
        }
    return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                         "linux.seccomp%s: action \"%s\" is not supported",
                         where, name);
}

int sp_seccomp_build_oci(const struct json_t *spec, struct sp_seccomp_prog *ret,
                         sp_error *err)
{
    const json_t *s = spec;
    if (!json_is_object(s))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "linux.seccomp: not an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        if (strcmp(key, "defaultAction") && strcmp(key, "defaultErrnoRet") &&
            strcmp(key, "architectures") && strcmp(key, "syscalls") &&
            !(strcmp(key, "flags") == 0 && json_array_size(v) == 0))
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.seccomp.%s is not supported", key);
    }
    uint32_t def_errno = EPERM;
    json_t *de = json_object_get(s, "defaultErrnoRet");
    if (json_is_integer(de))
        def_errno = (uint32_t)json_integer_value(de);
    uint32_t def;
    int r = oci_action(json_string_value(json_object_get(s, "defaultAction")),
                       def_errno, &def, ".defaultAction", err);
    if (r < 0)
        return r;
    _cleanup_scmp_ scmp_filter_ctx ctx = NULL;
    if ((r = new_ctx(def, &ctx, err)) < 0)
        return r;
    json_t *calls = json_object_get(s, "syscalls");
    size_t i;
    json_t *rule;
    if (json_array_size(calls) > SP_MAX_SECCOMP_RULES)
        return sp_error_setk(err, SP_ERR_USAGE, EFBIG,
                             "linux.seccomp.syscalls: more than %d rules",
                             SP_MAX_SECCOMP_RULES);
    json_array_foreach(calls, i, rule) {
        char where[48];
        snprintf(where, sizeof(where), ".syscalls[%zu]", i);
        uint32_t en = EPERM;
        json_t *er = json_object_get(rule, "errnoRet");
        if (json_is_integer(er))
            en = (uint32_t)json_integer_value(er);
        uint32_t act;
        if ((r = oci_action(json_string_value(json_object_get(rule, "action")),
                            en, &act, where, err)) < 0)
            return r;
        if (act == def)
            continue; /* libseccomp refuses a rule that changes nothing */
        struct scmp_arg_cmp cmp[6];
        unsigned n_cmp = 0;
        json_t *args = json_object_get(rule, "args"), *a;
        size_t k;
        if (json_array_size(args) > 6)
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "linux.seccomp%s.args: more than 6", where);
        json_array_foreach(args, k, a) {
            static const struct {
                const char *name;
                enum scmp_compare op;
            } ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT},
                       {"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
                       {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
                       {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
            const char *op = json_string_value(json_object_get(a, "op"));
            json_int_t idx = json_integer_value(json_object_get(a, "index"));
            size_t o;
            for (o = 0; op && o < SP_ARRAY_SIZE(ops); o++)
                if (strcmp(op, ops[o].name) == 0)
                    break;
            if (!op || o == SP_ARRAY_SIZE(ops) || idx < 0 || idx > 5)
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "linux.seccomp%s.args[%zu]: bad op or "
                                     "index", where, k);
            cmp[n_cmp++] = (struct scmp_arg_cmp){
                (unsigned)idx, ops[o].op,
                (scmp_datum_t)json_integer_value(json_object_get(a, "value")),
                (scmp_datum_t)json_integer_value(json_object_get(a, "valueTwo"))};
        }
        json_t *names = json_object_get(rule, "names"), *nm;
        size_t j;
        json_array_foreach(names, j, nm) {
            const char *name = json_string_value(nm);
            if (!name)
                continue;
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR)
                continue; /* unknown here: runc skips these too */
            r = seccomp_rule_add_array(ctx, act, nr, n_cmp, n_cmp ? cmp : NULL);
            if (r < 0 && r != -EEXIST)
                return sp_error_setk(err, SP_ERR_USAGE, -r,
                                     "linux.seccomp%s: rule for %s", where,
                                     name);
        }
    }
    return export_prog(ctx, NULL, 0, ret, err);
}
