/* test_seccomp.c — the seccomp layer: each rule of the default filter is
 * tried in a forked child, bubblewrap try-syscall style (bad pointers and
 * fds, so an allowed call fails with EFAULT/EBADF/EINVAL and a refused one
 * with the filter's errno), next to the same call without the filter to show
 * the test can fail; and the JSON profile parser with its error messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <linux/ptrace.h>
#include <unistd.h>

#include "bounds.h"
#include "policy.h"
#include "seccomp.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
/* Numbers from 424 on are the same on every architecture we build for. */
#define NR_io_uring_setup 425
#define NR_open_tree 428
#define NR_move_mount 429
#define NR_fsopen 430
#define NR_clone3 435
#define NR_open_tree_attr 467

/* ---- running a probe in a child ------------------------------------------ */

struct outcome {
    bool reported;  /* the child wrote its result (else: killed) */
    long ret;       /* the probe's return value */
    int err;        /* errno after the probe */
    int status;     /* wait status of the child */
    pid_t pid;
};

typedef long (*probe_fn)(void);

/* Fork; in the child install prog (NULL: no filter, the control run), run
 * the probe and send (ret, errno) back through a pipe. */
static struct outcome run_probe(const struct sp_seccomp_prog *prog,
                                probe_fn probe)
{
    struct outcome o = {0};
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        /* A SIGSYS kill would dump core: not dumpable, no core. */
        struct rlimit rl = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &rl);
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (prog) {
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                _exit(100);
            if (sp_seccomp_install(prog) < 0)
                _exit(101);
        }
        errno = 0;
        long r = probe();
        long msg[2] = {r, errno};
        if (write(pfd[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            _exit(102);
        _exit(0);
    }
    close(pfd[1]);
    long msg[2] = {0, 0};
    ssize_t n = read(pfd[0], msg, sizeof(msg));
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &o.status, 0), pid);
    o.pid = pid;
    if (n == (ssize_t)sizeof(msg)) {
        o.reported = true;
        o.ret = msg[0];
        o.err = (int)msg[1];
    } else {
        /* installing must not fail: 100/101 would show up here */
        assert_true(WIFSIGNALED(o.status));
    }
    return o;
}

static bool refused_with(const struct outcome *o, int e)
{
    return o->reported && o->ret == -1 && o->err == e;
}

static void build_default(struct sp_seccomp_prog *prog, bool allow_ptrace)
{
    struct sp_policy p = {0};
    p.allow_ptrace = allow_ptrace;
    sp_error err = {0};
    int r = sp_seccomp_build(&p, prog, &err);
    if (r < 0)
        fail_msg("sp_seccomp_build: %s", err.message);
    assert_non_null(prog->filter);
    assert_true(prog->len > 0);
}

/* ---- probes --------------------------------------------------------------- */

static long p_getpid(void) { return syscall(SYS_getpid); }
static long p_bpf(void) { return syscall(SYS_bpf, -1, NULL, 0); }
static long p_io_uring_setup(void)
{
    return syscall(NR_io_uring_setup, 0, NULL);
}
static long p_keyctl(void) { return syscall(SYS_keyctl, -1, 0, 0, 0, 0); }
static long p_unshare_user(void) { return syscall(SYS_unshare, CLONE_NEWUSER); }
static long p_unshare_net(void) { return syscall(SYS_unshare, CLONE_NEWNET); }
static long p_unshare_time(void) { return syscall(SYS_unshare, CLONE_NEWTIME); }
static long p_unshare_files(void) { return syscall(SYS_unshare, CLONE_FILES); }
static long p_setns(void) { return syscall(SYS_setns, -1, 0); }
static long p_clone_newns(void)
{
    long r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0); /* only if the filter let it through */
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}
static long p_fork(void)
{
    /* glibc's fork() is clone(SIGCHLD | CLONE_CHILD_*): no namespace flag */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : -2;
}
static long p_clone3(void) { return syscall(NR_clone3, NULL, 0); }
static long p_mount(void) { return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL); }
static long p_fsopen(void) { return syscall(NR_fsopen, NULL, 0); }
static long p_open_tree(void) { return syscall(NR_open_tree, -1, NULL, 0); }
static long p_open_tree_attr(void)
{
    return syscall(NR_open_tree_attr, -1, NULL, 0, NULL, 0);
}
static long p_move_mount(void)
{
    return syscall(NR_move_mount, -1, NULL, -1, NULL, 0);
}
static long p_tiocsti(void) { return syscall(SYS_ioctl, -1, TIOCSTI, NULL); }
static long p_tiocsti_high(void)
{
    /* the snapd CVE-2019-7303 bypass: the kernel drops the high bits */
    return syscall(SYS_ioctl, -1, (unsigned long)TIOCSTI | (1ul << 32), NULL);
}
static long p_tioclinux(void) { return syscall(SYS_ioctl, -1, TIOCLINUX, NULL); }
static long p_fionread(void) { return syscall(SYS_ioctl, -1, FIONREAD, NULL); }
static long p_socket_packet(void) { return socket(AF_PACKET, SOCK_RAW, 0); }
static long p_socket_inet(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
        close(fd);
    return fd;
}
static long p_socket_inet_high(void)
{
    return syscall(SYS_socket, (unsigned long)AF_PACKET | (1ul << 32), -1, 0);
}
/* Families 0..63 with an invalid type: an allowed family fails EINVAL
 * (the type is checked first), a refused one EAFNOSUPPORT. Returns the bit
 * mask of families refused with EAFNOSUPPORT. */
static long p_socket_sweep(void)
{
    uint64_t mask = 0;
    for (int fam = 0; fam < 64; fam++) {
        long r = syscall(SYS_socket, fam, -1, 0);
        if (r == -1 && errno == EAFNOSUPPORT)
            mask |= UINT64_C(1) << fam;
        else if (r >= 0)
            close((int)r);
    }
    errno = 0;
    return (long)mask;
}
static long p_netlink_route(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd >= 0)
        close(fd);
    return fd;
}
static long p_netlink_audit(void)
{
    return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
}
static long p_socketpair_unix(void)
{
    int sv[2];
    long r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    if (r == 0) {
        close(sv[0]);
        close(sv[1]);
    }
    return r;
}
static long p_socketpair_packet(void)
{
    return syscall(SYS_socketpair, AF_PACKET, SOCK_RAW, 0, NULL);
}
static long p_ptrace(void)
{
    return syscall(SYS_ptrace, PTRACE_PEEKDATA, -1, NULL, NULL);
}
static long p_process_vm_readv(void)
{
    /* flags must be 0: an allowed call fails EINVAL */
    return syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 1);
}
static long p_personality_query(void) { return personality(0xffffffff); }
static long p_personality_rie(void)
{
    return syscall(SYS_personality, READ_IMPLIES_EXEC);
}
static long p_personality_norandom(void)
{
    return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
}
/* Set-uid and set-gid modes: every probe has a bad fd or path, so without
 * the filter the kernel answers EBADF/EFAULT and with it the filter EPERM. */
static long p_chmod_suid(void) { return syscall(SYS_chmod, NULL, 04755); }
static long p_fchmod_suid(void) { return syscall(SYS_fchmod, -1, 04755); }
static long p_fchmod_sgid(void) { return syscall(SYS_fchmod, -1, 02755); }
static long p_fchmod_suid_high(void)
{
    /* the kernel reads a umode_t: high bits must not hide the bit */
    return syscall(SYS_fchmod, -1, 04755ul | (1ul << 40));
}
static long p_fchmod_plain(void) { return syscall(SYS_fchmod, -1, 01777); }
static long p_fchmodat_suid(void)
{
    return syscall(SYS_fchmodat, -1, "x", 04755);
}
static long p_fchmodat2_sgid(void)
{
    return syscall(452, -1, "x", 02755, 0);
}
static long p_mknod_suid(void)
{
    return syscall(SYS_mknod, NULL, S_IFREG | 04755, 0);
}
static long p_mknodat_sgid(void)
{
    return syscall(SYS_mknodat, -1, "x", S_IFREG | 02755, 0);
}
static long p_creat_suid(void) { return syscall(SYS_creat, NULL, 04755); }
static long p_open_creat_suid(void)
{
    return syscall(SYS_open, NULL, O_WRONLY | O_CREAT, 04755);
}
static long p_openat_creat_sgid(void)
{
    return syscall(SYS_openat, -1, "x", O_WRONLY | O_CREAT, 02755);
}
static long p_openat_tmpfile_suid(void)
{
    return syscall(SYS_openat, -1, "x", O_WRONLY | O_TMPFILE, 04755);
}
static long p_openat_nocreat_suid(void)
{
    /* without O_CREAT the mode is ignored: allowed */
    return syscall(SYS_openat, -1, "x", O_RDONLY, 04755);
}
static long p_openat2(void) { return syscall(437, -1, NULL, NULL, 0); }
static long p_mkdir_sgid(void) { return syscall(SYS_mkdir, NULL, 02777); }
static long p_getppid(void) { return syscall(SYS_getppid); }
static long p_uname_null(void) { return syscall(SYS_uname, NULL); }
static long p_uname_bad(void) { return syscall(SYS_uname, (void *)1); }
#if defined(__x86_64__)
static long p_x32_getpid(void) { return syscall(0x40000000 | 39); }
static long p_i386_getpid(void)
{
    long ret = 20; /* __NR_getpid on i386 */
    __asm__ volatile("int $0x80"
                     : "+a"(ret)
                     :
                     : "r8", "r9", "r10", "r11", "memory", "cc");
    return ret;
}
#endif

/* ---- default filter ------------------------------------------------------- */

struct refusal {
    const char *name;
    probe_fn probe;
    int want;              /* errno the filter returns */
    bool control_differs;  /* without the filter the outcome is another one */
};

static const struct refusal refusals[] = {
    {"bpf", p_bpf, EPERM, false /* EPERM too when not root */},
    {"io_uring_setup", p_io_uring_setup, EPERM, false},
    {"keyctl", p_keyctl, EPERM, false},
    {"unshare(CLONE_NEWUSER)", p_unshare_user, EPERM, false},
    {"unshare(CLONE_NEWNET)", p_unshare_net, EPERM, false},
    {"unshare(CLONE_NEWTIME)", p_unshare_time, EPERM, false},
    {"setns", p_setns, EPERM, true},
    {"clone(CLONE_NEWNS)", p_clone_newns, EPERM, false},
    {"clone3", p_clone3, ENOSYS, true},
    {"mount", p_mount, EPERM, false},
    {"fsopen", p_fsopen, EPERM, false},
    {"open_tree", p_open_tree, EPERM, false},
    {"open_tree_attr", p_open_tree_attr, EPERM, false},
    {"move_mount", p_move_mount, EPERM, false},
    {"ioctl(TIOCSTI)", p_tiocsti, EPERM, true},
    {"ioctl(TIOCSTI | 1 << 32)", p_tiocsti_high, EPERM, true},
    {"ioctl(TIOCLINUX)", p_tioclinux, EPERM, true},
    {"socket(AF_PACKET)", p_socket_packet, EAFNOSUPPORT, false},
    {"socket(AF_PACKET | 1 << 32)", p_socket_inet_high, EAFNOSUPPORT, true},
    {"socket(AF_NETLINK, NETLINK_AUDIT)", p_netlink_audit, EAFNOSUPPORT, false},
    {"socketpair(AF_PACKET)", p_socketpair_packet, EAFNOSUPPORT, false},
    {"ptrace", p_ptrace, EPERM, true},
    {"process_vm_readv", p_process_vm_readv, EPERM, true},
    {"personality(READ_IMPLIES_EXEC)", p_personality_rie, EPERM, false},
    {"chmod(04755)", p_chmod_suid, EPERM, true},
    {"fchmod(04755)", p_fchmod_suid, EPERM, true},
    {"fchmod(02755)", p_fchmod_sgid, EPERM, true},
    {"fchmod(04755 | 1 << 40)", p_fchmod_suid_high, EPERM, true},
    {"fchmodat(04755)", p_fchmodat_suid, EPERM, true},
    {"fchmodat2(02755)", p_fchmodat2_sgid, EPERM, true},
    {"mknod(S_IFREG | 04755)", p_mknod_suid, EPERM, true},
    {"mknodat(S_IFREG | 02755)", p_mknodat_sgid, EPERM, true},
    {"creat(04755)", p_creat_suid, EPERM, true},
    {"open(O_CREAT, 04755)", p_open_creat_suid, EPERM, true},
    {"openat(O_CREAT, 02755)", p_openat_creat_sgid, EPERM, true},
    {"openat(O_TMPFILE, 04755)", p_openat_tmpfile_suid, EPERM, true},
};

static void test_default_refusals(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, false);
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        const struct refusal *t = &refusals[i];
        struct outcome o = run_probe(&prog, t->probe);
        if (!refused_with(&o, t->want))
            fail_msg("%s: want errno %d (%s), got ret %ld errno %d (%s), "
                     "status 0x%x",
                     t->name, t->want, strerror(t->want), o.ret, o.err,
                     strerror(o.err), o.status);
        if (t->control_differs) {
            struct outcome c = run_probe(NULL, t->probe);
            if (refused_with(&c, t->want))
                fail_msg("%s: without the filter the call also fails with %s,"
                         " so the test proves nothing",
                         t->name, strerror(t->want));
        }
    }
    sp_seccomp_prog_free(&prog);
}

static void test_default_allows(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, false);

    struct outcome o = run_probe(&prog, p_getpid);
    assert_true(o.reported);
    assert_int_equal(o.ret, o.pid);

    o = run_probe(&prog, p_fork);
    assert_true(o.reported);
    assert_int_equal(o.ret, 0);

    o = run_probe(&prog, p_unshare_files);
    assert_true(o.reported);
    assert_int_equal(o.ret, 0);

    /* allowed: the kernel's own answer for a bad fd */
    o = run_probe(&prog, p_fionread);
    assert_true(refused_with(&o, EBADF));

    o = run_probe(&prog, p_socket_inet);
    assert_true(o.reported);
    assert_true(o.ret >= 0);

    o = run_probe(&prog, p_netlink_route);
    assert_true(o.reported);
    assert_true(o.ret >= 0);

    o = run_probe(&prog, p_socketpair_unix);
    assert_true(o.reported);
    assert_int_equal(o.ret, 0);

    o = run_probe(&prog, p_personality_query);
    assert_true(o.reported);
    assert_true(o.ret >= 0);

    o = run_probe(&prog, p_personality_norandom);
    assert_true(o.reported);
    assert_true(o.ret >= 0);

    /* modes without a set-id bit, a set-uid mode open() ignores, and mkdir
     * (whose set-id bits the kernel drops) reach the kernel */
    o = run_probe(&prog, p_fchmod_plain);
    assert_true(refused_with(&o, EBADF));
    o = run_probe(&prog, p_openat_nocreat_suid);
    assert_true(refused_with(&o, EBADF));
    o = run_probe(&prog, p_mkdir_sgid);
    assert_true(refused_with(&o, EFAULT));

    sp_seccomp_prog_free(&prog);
}

static void test_default_socket_families(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, false);
    struct outcome o = run_probe(&prog, p_socket_sweep);
    assert_true(o.reported);
    uint64_t allowed = (UINT64_C(1) << AF_UNIX) | (UINT64_C(1) << AF_INET) |
                       (UINT64_C(1) << AF_INET6) | (UINT64_C(1) << AF_NETLINK);
    assert_int_equal((uint64_t)o.ret, ~allowed);
    sp_seccomp_prog_free(&prog);
}

/* openat2 is refused by the exec filter stacked before each command's
 * execve, not by the default filter (the agent needs it). */
static long p_openat2_exec_filter(void)
{
    if (sp_seccomp_install_exec() < 0)
        return -100;
    return p_openat2();
}

static void test_exec_filter(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, false);
    struct outcome o = run_probe(&prog, p_openat2);
    assert_true(o.reported);
    assert_false(refused_with(&o, ENOSYS));
    o = run_probe(&prog, p_openat2_exec_filter);
    assert_true(refused_with(&o, ENOSYS));
    o = run_probe(&prog, p_getpid);
    assert_true(o.reported);
    sp_seccomp_prog_free(&prog);
}

static void test_allow_ptrace(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, true);
    /* the kernel's answers: no such process, bad flags */
    struct outcome o = run_probe(&prog, p_ptrace);
    assert_true(refused_with(&o, ESRCH));
    o = run_probe(&prog, p_process_vm_readv);
    assert_true(refused_with(&o, EINVAL));
    /* the rest of the filter is still there */
    o = run_probe(&prog, p_bpf);
    assert_true(refused_with(&o, EPERM));
    sp_seccomp_prog_free(&prog);
}

static void test_foreign_arch_killed(void **state)
{
    (void)state;
#if defined(__x86_64__)
    struct sp_seccomp_prog prog = {0};
    build_default(&prog, false);

    /* x32: same AUDIT_ARCH as x86_64, nr | 0x40000000. Without the filter
     * this kernel answers ENOSYS (no CONFIG_X86_X32_ABI) or runs it. */
    struct outcome o = run_probe(&prog, p_x32_getpid);
    assert_false(o.reported);
    assert_true(WIFSIGNALED(o.status));
    assert_int_equal(WTERMSIG(o.status), SIGSYS);

    /* i386 through int 0x80: AUDIT_ARCH_I386 is not in the filter. */
    struct outcome c = run_probe(NULL, p_i386_getpid);
    if (!c.reported || c.ret != c.pid) {
        sp_seccomp_prog_free(&prog);
        skip(); /* no ia32 emulation here: nothing to refuse */
    }
    o = run_probe(&prog, p_i386_getpid);
    assert_false(o.reported);
    assert_true(WIFSIGNALED(o.status));
    assert_int_equal(WTERMSIG(o.status), SIGSYS);
    sp_seccomp_prog_free(&prog);
#else
    skip();
#endif
}

static void test_prog_lifecycle(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    sp_seccomp_prog_free(&prog);
    sp_seccomp_prog_free(NULL);
    assert_int_equal(sp_seccomp_install(&prog), -EINVAL);
    assert_int_equal(sp_seccomp_install(NULL), -EINVAL);
    build_default(&prog, false);
    sp_seccomp_prog_free(&prog);
    assert_null(prog.filter);
    assert_int_equal(prog.len, 0);
}

/* ---- profiles -------------------------------------------------------------- */

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_seccomp.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_file(const char *name, const char *text, size_t len)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static int build_file(const char *name, const char *text, size_t len,
                      struct sp_seccomp_prog *prog, sp_error *err)
{
    struct sp_policy p = {0};
    p.seccomp_profile = write_file(name, text, len);
    int r = sp_seccomp_build(&p, prog, err);
    free(p.seccomp_profile);
    return r;
}

static const char valid_profile[] =
    "{\n"
    "  \"comment\": \"test profile\",\n"
    "  \"default_action\": \"allow\",\n"
    "  \"rules\": [\n"
    "    {\"syscalls\": [\"getppid\"], \"action\": \"errno\",\n"
    "     \"errno\": \"EACCES\"},\n"
    "    {\"syscalls\": [\"uname\"], \"action\": \"errno\", \"errno\": 5,\n"
    "     \"args\": [{\"index\": 0, \"op\": \"eq\", \"value\": 0}]},\n"
    "    {\"syscalls\": [\"ioctl\"], \"action\": \"errno\",\n"
    "     \"args\": [{\"index\": 1, \"op\": \"masked_eq\",\n"
    "                \"mask\": \"0xffffffff\", \"value\": 21522}]},\n"
    "    {\"syscalls\": [\"getpid\"], \"action\": \"allow\",\n"
    "     \"comment\": \"same as the default: a no-op\"}\n"
    "  ]\n"
    "}\n";

static void test_profile_valid(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    sp_error err = {0};
    int r = build_file("valid.json", valid_profile, strlen(valid_profile),
                       &prog, &err);
    if (r < 0)
        fail_msg("%s", err.message);

    struct outcome o = run_probe(&prog, p_getppid);
    assert_true(refused_with(&o, EACCES));
    o = run_probe(&prog, p_uname_null);
    assert_true(refused_with(&o, EIO));
    o = run_probe(&prog, p_uname_bad); /* arg 0 is 1: not matched */
    assert_true(refused_with(&o, EFAULT));
    o = run_probe(&prog, p_tiocsti_high);
    assert_true(refused_with(&o, EPERM));
    o = run_probe(&prog, p_getpid);
    assert_true(o.reported);
    assert_int_equal(o.ret, o.pid);
    /* the default filter is gone: bpf reaches the kernel */
    o = run_probe(&prog, p_bpf);
    assert_false(refused_with(&o, EPERM) && geteuid() == 0);
#if defined(__x86_64__)
    /* the foreign-architecture kill stays */
    o = run_probe(&prog, p_x32_getpid);
    assert_true(WIFSIGNALED(o.status));
    assert_int_equal(WTERMSIG(o.status), SIGSYS);
#endif
    sp_seccomp_prog_free(&prog);

    /* other default actions build */
    static const char *const others[] = {
        "{\"default_action\": \"errno\", \"default_errno\": \"ENOSYS\"}",
        ("{\"default_action\": \"kill\", \"rules\": [{\"syscalls\": "
         "[\"read\", \"write\", 0], \"action\": \"allow\"}]}"),
        "{\"default_action\": \"log\", \"rules\": []}",
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        r = sp_seccomp_build_profile_text(others[i], strlen(others[i]), "t",
                                          &prog, &err);
        if (r < 0)
            fail_msg("%s: %s", others[i], err.message);
        sp_seccomp_prog_free(&prog);
    }
}

struct bad_profile {
    const char *json;
    const char *message; /* exact, with origin "t" */
};

static const struct bad_profile bad_profiles[] = {
    {"{\"default_action\": \"allow\", \"bogus\": 1}", "t: bogus: unknown key"},
    {"{\"rules\": []}", "t: \"default_action\" is missing"},
    {"{\"default_action\": \"deny\"}",
     "t: default_action: unknown action \"deny\" (allow, errno, kill, log)"},
    {"{\"default_action\": 1}",
     "t: default_action: expected a string (allow, errno, kill, log)"},
    {"{\"default_action\": \"allow\", \"default_errno\": \"EPERM\"}",
     "t: default_errno: only with default_action \"errno\""},
    {"{\"default_action\": \"allow\", \"rules\": {}}",
     "t: rules: expected an array"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\"}, {\"syscalls\": [\"foo\"], \"action\": "
     "\"errno\"}]}",
     "t: rules[1].syscalls[0]: unknown syscall \"foo\""},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": \"read\", "
     "\"action\": \"errno\"}]}",
     "t: rules[0].syscalls: expected an array"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [], "
     "\"action\": \"errno\"}]}",
     "t: rules[0].syscalls: expected 1 to 512 syscall names"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [true], "
     "\"action\": \"errno\"}]}",
     "t: rules[0].syscalls[0]: expected a syscall name or number"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"errno\": \"EWHAT\"}]}",
     "t: rules[0].errno: unknown errno name \"EWHAT\" (give a number for one "
     "not in docs/seccomp.md)"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"errno\": 5000}]}",
     "t: rules[0].errno: errno 5000 is outside 1..4095"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"kill\", \"errno\": \"EPERM\"}]}",
     "t: rules[0].errno: only with action \"errno\""},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"color\": \"red\"}]}",
     "t: rules[0].color: unknown key"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"action\": \"errno\"}]}",
     "t: rules[0]: \"syscalls\" is missing"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 6, \"op\": \"eq\", "
     "\"value\": 0}]}]}",
     "t: rules[0].args[0].index: expected an integer from 0 to 5"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 0, \"op\": \"like\", "
     "\"value\": 0}]}]}",
     "t: rules[0].args[0].op: unknown operator \"like\" (eq, ne, lt, le, gt, "
     "ge, masked_eq)"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 0, \"op\": \"eq\", "
     "\"value\": \"12abc\"}]}]}",
     "t: rules[0].args[0].value: \"12abc\" is not an unsigned 64-bit number"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 0, \"op\": \"masked_eq\", "
     "\"value\": 1}]}]}",
     "t: rules[0].args[0]: \"mask\" is missing (op masked_eq)"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 0, \"op\": \"eq\", "
     "\"value\": 1, \"mask\": 1}]}]}",
     "t: rules[0].args[0].mask: only with op masked_eq"},
    {"{\"default_action\": \"allow\", \"rules\": [{\"syscalls\": [\"read\"], "
     "\"action\": \"errno\", \"args\": [{\"index\": 0, \"op\": \"ne\", "
     "\"value\": 1}, {\"index\": 0, \"op\": \"ne\", \"value\": 2}]}]}",
     "t: rules[0].args[1].index: argument 0 is already compared in this rule "
     "(libseccomp takes one comparison per argument; write two rules)"},
    {"[1, 2]", "t: expected a JSON object"},
    /* a terminal escape in a key does not reach the message */
    {"{\"default_action\": \"allow\", \"\\u001b[2J\": 1}",
     "t: ?[2J: unknown key"},
};

static void test_profile_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_profiles) / sizeof(bad_profiles[0]);
         i++) {
        struct sp_seccomp_prog prog = {0};
        sp_error err = {0};
        const char *j = bad_profiles[i].json;
        int r = sp_seccomp_build_profile_text(j, strlen(j), "t", &prog, &err);
        if (r != -EINVAL)
            fail_msg("%s: want -EINVAL, got %d", j, r);
        assert_null(prog.filter);
        assert_int_equal(err.kind, SP_ERR_USAGE);
        assert_string_equal(err.message, bad_profiles[i].message);
    }
}

static void test_profile_file_errors(void **state)
{
    (void)state;
    struct sp_seccomp_prog prog = {0};
    sp_error err = {0};

    /* the file's name leads the message */
    const char *bad = "{\"default_action\": \"allow\", \"rules\": "
                      "[{\"syscalls\": [\"nosuchcall\"], \"action\": "
                      "\"kill\"}]}";
    int r = build_file("bad.json", bad, strlen(bad), &prog, &err);
    assert_int_equal(r, -EINVAL);
    char want[256];
    snprintf(want, sizeof(want),
             "seccomp profile %s/bad.json: rules[0].syscalls[0]: unknown "
             "syscall \"nosuchcall\"",
             tmpdir);
    assert_string_equal(err.message, want);

    /* one byte over the cap */
    size_t big = SP_MAX_POLICY_FILE + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    r = build_file("big.json", text, big, &prog, &err);
    free(text);
    assert_int_equal(r, -EFBIG);
    assert_int_equal(err.kind, SP_ERR_USAGE);
    snprintf(want, sizeof(want),
             "seccomp profile %s/big.json: larger than %d bytes", tmpdir,
             SP_MAX_POLICY_FILE);
    assert_string_equal(err.message, want);

    /* too many rules */
    size_t n = SP_MAX_SECCOMP_RULES + 1;
    const char *rule = "{\"syscalls\": [\"read\"], \"action\": \"log\"},";
    size_t cap = 64 + n * strlen(rule);
    char *many = malloc(cap);
    assert_non_null(many);
    size_t off = (size_t)snprintf(many, cap,
                                  "{\"default_action\": \"allow\", "
                                  "\"rules\": [");
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(many + off, cap - off, "%s", rule);
    many[off - 1] = ']';
    snprintf(many + off, cap - off, "}");
    r = sp_seccomp_build_profile_text(many, strlen(many), "t", &prog, &err);
    free(many);
    assert_int_equal(r, -EINVAL);
    snprintf(want, sizeof(want), "t: rules: more than %d rules",
             SP_MAX_SECCOMP_RULES);
    assert_string_equal(err.message, want);

    /* missing file, and a directory */
    struct sp_policy p = {0};
    p.seccomp_profile = (char *)"/nonexistent/profile.json";
    r = sp_seccomp_build(&p, &prog, &err);
    assert_int_equal(r, -ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/profile.json"));
    p.seccomp_profile = tmpdir;
    r = sp_seccomp_build(&p, &prog, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err.message, "not a regular file"));

    /* bad JSON names line and column */
    r = sp_seccomp_build_profile_text("{\n  \"default_action\": }", 22, "t",
                                      &prog, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err.message, "t: line 2, column"));
    assert_null(prog.filter);

    /* a key given twice is refused, not the last one silently taken */
    const char *dup = "{\"default_action\": \"kill\", "
                      "\"default_action\": \"allow\"}";
    r = sp_seccomp_build_profile_text(dup, strlen(dup), "t", &prog, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err.message, "duplicate object key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prog_lifecycle),
        cmocka_unit_test(test_default_refusals),
        cmocka_unit_test(test_default_allows),
        cmocka_unit_test(test_default_socket_families),
        cmocka_unit_test(test_allow_ptrace),
        cmocka_unit_test(test_exec_filter),
        cmocka_unit_test(test_foreign_arch_killed),
        cmocka_unit_test(test_profile_valid),
        cmocka_unit_test(test_profile_errors),
        cmocka_unit_test(test_profile_file_errors),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
