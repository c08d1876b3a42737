/* escape.c — the attacker of the escape suite (tests/escape/test_escape.py).
 * Run INSIDE a sandbox as `escape ATTACK [ARGS]`; each attack tries exactly
 * one way out and prints one line: "ok" when the attack's action succeeded
 * (an escape, unless the test turned the layer off on purpose), "errno NAME"
 * when the kernel or a filter refused, or an outcome documented at the
 * attack. It exits 0 — only the attacks that a layer answers with a signal
 * (memory, int80, x32) die instead. docs/escape-suite.md has the table. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Debian 12's headers are older than the running kernel's. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#define X32_SYSCALL_BIT 0x40000000
#define MIB (1024L * 1024L)

/* An address the kernel cannot read: allowed calls fail with EFAULT, so a
 * filter's errno and the kernel's answer tell apart (bubblewrap's
 * try-syscall.c does the same). */
#define BAD_PTR ((void *)(uintptr_t)8)

static const char *errname(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "?";
}

/* Print "ok" for r >= 0, else "errno NAME" of the errno at the call. */
static int report(long r)
{
    if (r >= 0)
        puts("ok");
    else
        printf("errno %s\n", errname(errno));
    return 0;
}

/* Report a raw syscall that returns -1 and errno, keeping the fd out of
 * the way (closed: the attack is the call itself). */
static int report_fd(long fd)
{
    int saved = errno;
    if (fd >= 0)
        close((int)fd);
    errno = saved;
    return report(fd);
}

/* ---- privilege left behind (set-id modes, file capabilities) ------------ */

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif

/* Give PATH (created here, a copy of nothing: one byte) a set-uid or
 * set-gid mode by ROUTE; "ok" when the call succeeded. The test then looks
 * at the host's file. */
static int at_setid(const char *route, const char *path)
{
    const mode_t m = 04755, g = 02755;
    if (!strcmp(route, "open-creat"))
        return report_fd(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, m));
    if (!strcmp(route, "openat-creat-sgid"))
        return report_fd(openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC,
                                g));
    if (!strcmp(route, "creat"))
        return report_fd(syscall(SYS_creat, path, m));
    if (!strcmp(route, "mknod"))
        return report(mknod(path, S_IFREG | m, 0));
    if (!strcmp(route, "mkdir-sgid")) {
        /* the kernel keeps only rwx and sticky of mkdir's mode */
        if (mkdir(path, 02777) < 0)
            return report(-1);
        struct stat sb;
        if (stat(path, &sb) < 0)
            return report(-1);
        puts(sb.st_mode & S_ISGID ? "setgid" : "plain");
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    if (fd < 0)
        return report(-1);
    long r = -1;
    if (!strcmp(route, "chmod"))
        r = chmod(path, m);
    else if (!strcmp(route, "chmod-sgid"))
        r = chmod(path, g);
    else if (!strcmp(route, "fchmod"))
        r = fchmod(fd, m);
    else if (!strcmp(route, "fchmodat"))
        r = fchmodat(AT_FDCWD, path, m, 0);
    else if (!strcmp(route, "fchmodat2"))
        r = syscall(__NR_fchmodat2, AT_FDCWD, path, m, 0);
    else {
        close(fd);
        fprintf(stderr, "escape: unknown set-id route %s\n", route);
        return 2;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (r < 0 && errno == ENOSYS && !strcmp(route, "fchmodat2"))
        r = fchmodat(AT_FDCWD, path, m, 0); /* a kernel before 6.6 */
    return report(r);
}

/* fchmod on a descriptor the caller passed in (stdout redirected to a host
 * file). The outcome goes to stderr: a write to the file would clear the
 * bit again. */
static int at_fchmod_fd(const char *fd_s)
{
    if (fchmod(atoi(fd_s), 04755) < 0)
        fprintf(stderr, "errno %s\n", errname(errno));
    else
        fputs("ok\n", stderr);
    return 0;
}

/* A file capability (security.capability, v2, CAP_SETUID permitted and
 * effective) on PATH. */
static int at_setcap(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    if (fd < 0)
        return report(-1);
    close(fd);
    struct {
        uint32_t magic_etc;
        struct {
            uint32_t permitted, inheritable;
        } data[2];
    } cap = {0x02000000u | 1u /* VFS_CAP_REVISION_2 | EFFECTIVE */,
             {{1u << 7 /* CAP_SETUID */, 0}, {0, 0}}};
    return report(setxattr(path, "security.capability", &cap, sizeof(cap), 0));
}

/* openat2, whose mode the filter cannot see: refused with ENOSYS. */
static int at_openat2(const char *path)
{
    struct {
        uint64_t flags, mode, resolve;
    } how = {O_WRONLY | O_CREAT | O_CLOEXEC, 04755, 0};
    return report_fd(syscall(437, AT_FDCWD, path, &how, sizeof(how)));
}

/* A child that waits to be the target of ptrace / process_vm_readv. */
static pid_t spawn_sleeper(void)
{
    pid_t p = fork();
    if (p == 0) {
        for (;;)
            pause();
    }
    return p;
}

static void reap(pid_t p)
{
    if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
    }
}

/* ---- file system --------------------------------------------------------- */

/* Read a file: "ok" only when bytes came back (a masked file reads empty
 * and prints "empty"). */
static int at_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return report(-1);
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    int saved = errno;
    close(fd);
    if (n > 0)
        puts("ok");
    else if (n == 0)
        puts("empty");
    else {
        errno = saved;
        report(-1);
    }
    return 0;
}

/* Make a set-uid copy of the sandbox's own shell-free binary at path (in
 * the workspace) or set the set-uid bit on an inherited descriptor: on
 * the host, it must never be a set-uid file owned by host root. */
static int at_chmod_suid(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0)
        return report(-1);
    long r = fchmod(fd, 04755);
    int saved = errno;
    close(fd);
    errno = saved;
    return report(r);
}

static int at_fchmod_suid(const char *num)
{
    return report(fchmod(atoi(num), 04755));
}

static int at_write(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return report(-1);
    size_t len = strlen(data);
    ssize_t n = write(fd, data, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return report(n == (ssize_t)len ? 0 : -1);
}

/* Plant a symlink in the workspace (the cwd) pointing at TARGET, then write
 * through it: the link must resolve in the sandbox's view, never the host's. */
static int at_symlink_write(const char *target)
{
    unlink("escape-link");
    if (symlink(target, "escape-link") < 0)
        return report(-1);
    return at_write("escape-link", "escaped\n");
}

/* ---- processes ----------------------------------------------------------- */

static int at_ptrace(void)
{
    pid_t p = spawn_sleeper();
    if (p < 0)
        return report(-1);
    long r = ptrace(PTRACE_ATTACH, p, NULL, NULL);
    int saved = errno;
    reap(p);
    errno = saved;
    return report(r);
}

/* Let the parent trace us: the same syscall from the other end. */
static int at_ptrace_traceme(void)
{
    pid_t p = fork();
    if (p < 0)
        return report(-1);
    if (p == 0) {
        long r = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        _exit(r == 0 ? 0 : errno);
    }
    int st = 0;
    waitpid(p, &st, 0);
    errno = WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
    return report(errno == 0 ? 0 : -1);
}

static int at_process_vm_readv(void)
{
    static long secret = 42;
    pid_t p = spawn_sleeper();
    if (p < 0)
        return report(-1);
    long got = 0;
    struct iovec local = {&got, sizeof(got)};
    struct iovec remote = {&secret, sizeof(secret)};
    ssize_t r = process_vm_readv(p, &local, 1, &remote, 1, 0);
    int saved = errno;
    reap(p);
    errno = saved;
    return report(r);
}

static int at_kill(const char *pid)
{
    return report(kill((pid_t)atoi(pid), SIGKILL));
}

/* Fork up to MAX children that sleep; print "forked N" and, when fork
 * failed first, " errno NAME". The children are killed and reaped. */
static int at_forkbomb(const char *max_s)
{
    long max = atol(max_s);
    pid_t *kids = calloc((size_t)max + 1, sizeof(*kids));
    if (!kids)
        return report(-1);
    long n = 0;
    int err = 0;
    while (n < max) {
        pid_t p = fork();
        if (p < 0) {
            err = errno;
            break;
        }
        if (p == 0) {
            for (;;)
                pause();
        }
        kids[n++] = p;
    }
    for (long i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    free(kids);
    if (err)
        printf("forked %ld errno %s\n", n, errname(err));
    else
        printf("forked %ld\n", n);
    return 0;
}

/* Touch MIB mebibytes; "ok" when all were touched. Past a memory limit the
 * kernel's OOM killer answers with SIGKILL. */
static int at_alloc(const char *mib_s)
{
    size_t len = (size_t)atol(mib_s) * MIB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return report(-1);
    for (size_t i = 0; i < len; i += 4096)
        m[i] = 1;
    return report(0);
}

/* Write PATH until MIB mebibytes or an error: "wrote N" [" errno NAME"]. */
static int at_fill(const char *path, const char *mib_s)
{
    long max = atol(mib_s);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return report(-1);
    static char buf[MIB];
    memset(buf, 'x', sizeof(buf));
    long n = 0;
    int err = 0;
    while (n < max) {
        size_t off = 0;
        while (off < sizeof(buf)) {
            ssize_t w = write(fd, buf + off, sizeof(buf) - off);
            if (w < 0) {
                err = errno;
                break;
            }
            off += (size_t)w;
        }
        if (err)
            break;
        n++;
    }
    close(fd);
    unlink(path);
    if (err)
        printf("wrote %ld errno %s\n", n, errname(err));
    else
        printf("wrote %ld\n", n);
    return 0;
}

/* ---- mounts and namespaces ----------------------------------------------- */

static int at_mount_tmpfs(const char *dir)
{
    return report(mount("none", dir, "tmpfs", 0, NULL));
}

/* mount() copies its strings before it checks capabilities: with a bad
 * type pointer the kernel says EFAULT, a filter says EPERM. */
static int at_mount_efault(void)
{
    return report(mount(BAD_PTR, BAD_PTR, BAD_PTR, 0, NULL));
}

static int at_fsopen(void)
{
    return report_fd(syscall(__NR_fsopen, "tmpfs", FSOPEN_CLOEXEC));
}

/* open_tree without OPEN_TREE_CLONE needs no capability: only a filter
 * stops it. */
static int at_open_tree(void)
{
    return report_fd(syscall(__NR_open_tree, AT_FDCWD, "/", OPEN_TREE_CLOEXEC));
}

static int at_unshare_user(void)
{
    return report(unshare(CLONE_NEWUSER));
}

/* clone() through the raw syscall, so libc's clone3 path is not taken. */
static int at_clone_newuser(void)
{
    long p = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (p == 0)
        _exit(0);
    if (p > 0)
        waitpid((pid_t)p, NULL, 0);
    return report(p);
}

/* clone3 hides its flags in memory; sandpit answers ENOSYS so libc falls
 * back to clone, whose flags seccomp can read. */
static int at_clone3(void)
{
    struct clone_args a;
    memset(&a, 0, sizeof(a));
    a.flags = CLONE_NEWUSER;
    a.exit_signal = SIGCHLD;
    long p = syscall(__NR_clone3, &a, sizeof(a));
    if (p == 0)
        _exit(0);
    if (p > 0)
        waitpid((pid_t)p, NULL, 0);
    return report(p);
}

/* The "shocker" attack: open a file by a forged handle (inode 2, the root
 * of an ext4 file system) relative to a mount the sandbox can see. */
static int at_open_by_handle(void)
{
    union {
        struct file_handle fh;
        char raw[sizeof(struct file_handle) + 8];
    } h;
    memset(&h, 0, sizeof(h));
    h.fh.handle_bytes = 8;
    h.fh.handle_type = 1; /* FILEID_INO32_GEN */
    uint32_t ino_gen[2] = {2, 0};
    memcpy(h.fh.f_handle, ino_gen, sizeof(ino_gen));
    int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long r = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
    int saved = errno;
    if (mfd >= 0)
        close(mfd);
    errno = saved;
    return report_fd(r);
}

/* A bad mount fd: the kernel answers EBADF, a filter EPERM. */
static int at_open_by_handle_badfd(void)
{
    return report_fd(open_by_handle_at(-1, BAD_PTR, O_RDONLY));
}

/* ---- kernel interfaces ----------------------------------------------------- */

static int at_bpf(void)
{
    struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (uintptr_t)prog;
    a.insn_cnt = 2;
    a.license = (uintptr_t)"GPL";
    return report_fd(syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a)));
}

/* bpf() copies its attributes before any privilege check: EFAULT from the
 * kernel, EPERM from a filter. */
static int at_bpf_efault(void)
{
    return report_fd(syscall(SYS_bpf, BPF_PROG_LOAD, BAD_PTR,
                             sizeof(union bpf_attr)));
}

static int at_io_uring_setup(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    return report_fd(syscall(__NR_io_uring_setup, 4, &p));
}

/* User-mode-only userfaultfd needs no privilege even when
 * vm.unprivileged_userfaultfd is 0. */
static int at_userfaultfd(void)
{
    return report_fd(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
}

/* A software counter on ourselves: allowed at perf_event_paranoid <= 2. */
static int at_perf_event_open(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_TASK_CLOCK;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    return report_fd(syscall(SYS_perf_event_open, &a, 0, -1, -1,
                             PERF_FLAG_FD_CLOEXEC));
}

static int at_keyctl(void)
{
    return report(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                          KEY_SPEC_SESSION_KEYRING, 1));
}

/* Type a character into the terminal on fd 0. The sandbox may first try
 * to make it its controlling terminal (that works when the tty is no
 * session's); HIGH sets bit 32 of the request, which the kernel drops. */
static int at_tiocsti(int high)
{
    (void)ioctl(0, TIOCSCTTY, 0);
    char ch = '#';
    unsigned long req = TIOCSTI;
    if (high)
        req |= 1UL << 32;
    return report(syscall(SYS_ioctl, 0, req, &ch));
}

/* TIOCLINUX (the console's selection and paste): a pty is no console, so
 * ENOTTY or EINVAL from the kernel, EPERM from a filter. */
static int at_tioclinux(void)
{
    char sub[1] = {6}; /* TIOCL_GETSHIFTSTATE */
    return report(ioctl(0, TIOCLINUX, sub));
}

/* ---- network ----------------------------------------------------------------- */

static int at_connect(const char *host, const char *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return report(-1);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        close(s);
        errno = EINVAL;
        return report(-1);
    }
    int r = connect(s, (struct sockaddr *)&a, sizeof(a));
    int saved = errno;
    close(s);
    errno = saved;
    return report(r);
}

/* Listen on 127.0.0.1:PORT and connect to it: the sandbox's own loopback.
 * With the host holding PORT on its loopback, "ok" shows the namespace is
 * a different one (and that loopback TCP works inside). */
static int at_serve_self(const char *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = -1;
    if (l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        listen(l, 1) == 0)
        r = connect(c, (struct sockaddr *)&a, sizeof(a));
    int saved = errno;
    if (l >= 0)
        close(l);
    if (c >= 0)
        close(c);
    errno = saved;
    return report(r);
}

/* The network interfaces, comma-separated ("lo" in a private namespace). */
static int at_ifaces(void)
{
    struct if_nameindex *ifs = if_nameindex();
    if (!ifs)
        return report(-1);
    for (struct if_nameindex *i = ifs; i->if_index; i++)
        printf("%s%s", i == ifs ? "" : ",", i->if_name);
    putchar('\n');
    if_freenameindex(ifs);
    return 0;
}

/* Connect to an abstract unix socket (NAME without the leading NUL). The
 * abstract namespace belongs to the network namespace: with --net host it
 * is the host's, and only Landlock's scoping (ABI 6) keeps the sandbox
 * from the host's listeners (X11, D-Bus, containerd shims...). */
static int at_connect_abstract(const char *name)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return report(-1);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    size_t len = strnlen(name, sizeof(a.sun_path) - 1);
    memcpy(a.sun_path + 1, name, len);
    int r = connect(s, (struct sockaddr *)&a,
                    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len));
    int saved = errno;
    close(s);
    errno = saved;
    return report(r);
}

static int at_socket_packet(void)
{
    return report_fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
}

/* ---- foreign architectures --------------------------------------------------- */

/* getpid through the i386 entry point. A seccomp filter for x86_64 kills
 * the process (SIGSYS); without one it returns our pid. */
static int at_int80(void)
{
    long r = 20; /* __NR_getpid on i386 */
    __asm__ volatile("int $0x80" : "+a"(r) : : "memory");
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return report(-1);
    }
    return report(0);
}

/* getpid with the x32 bit: killed by the filter; ENOSYS from a kernel
 * without x32. */
static int at_x32(void)
{
    return report(syscall(X32_SYSCALL_BIT | 39));
}

/* ---- leaks --------------------------------------------------------------------- */

/* List the open fds beyond 0, 1, 2 (leaked doors, runc CVE-2024-21626):
 * "none" or "fds N M ...". */
static int at_fds(void)
{
    char line[512] = "";
    size_t used = 0;
    for (int fd = 3; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) < 0)
            continue;
        used += (size_t)snprintf(line + used, sizeof(line) - used, " %d", fd);
        if (used >= sizeof(line) - 8)
            break;
    }
    if (used == 0)
        puts("none");
    else
        printf("fds%s\n", line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: escape ATTACK [ARGS]\n");
        return 2;
    }
    /* One line, out even if the next step kills us. */
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *a = argv[1];
    const char *x = argc > 2 ? argv[2] : NULL;
    const char *y = argc > 3 ? argv[3] : NULL;

    if (!strcmp(a, "read") && x)
        return at_read(x);
    if (!strcmp(a, "chmod-suid") && x)
        return at_chmod_suid(x);
    if (!strcmp(a, "fchmod-suid") && x)
        return at_fchmod_suid(x);
    if (!strcmp(a, "write") && x)
        return at_write(x, y ? y : "escaped\n");
    if (!strcmp(a, "symlink-write") && x)
        return at_symlink_write(x);
    if (!strcmp(a, "ptrace"))
        return at_ptrace();
    if (!strcmp(a, "ptrace-traceme"))
        return at_ptrace_traceme();
    if (!strcmp(a, "process-vm-readv"))
        return at_process_vm_readv();
    if (!strcmp(a, "kill") && x)
        return at_kill(x);
    if (!strcmp(a, "forkbomb") && x)
        return at_forkbomb(x);
    if (!strcmp(a, "alloc") && x)
        return at_alloc(x);
    if (!strcmp(a, "fill") && x && y)
        return at_fill(x, y);
    if (!strcmp(a, "mount-tmpfs") && x)
        return at_mount_tmpfs(x);
    if (!strcmp(a, "mount-efault"))
        return at_mount_efault();
    if (!strcmp(a, "fsopen"))
        return at_fsopen();
    if (!strcmp(a, "open-tree"))
        return at_open_tree();
    if (!strcmp(a, "unshare-user"))
        return at_unshare_user();
    if (!strcmp(a, "clone-newuser"))
        return at_clone_newuser();
    if (!strcmp(a, "clone3"))
        return at_clone3();
    if (!strcmp(a, "open-by-handle"))
        return at_open_by_handle();
    if (!strcmp(a, "open-by-handle-badfd"))
        return at_open_by_handle_badfd();
    if (!strcmp(a, "bpf"))
        return at_bpf();
    if (!strcmp(a, "bpf-efault"))
        return at_bpf_efault();
    if (!strcmp(a, "io-uring-setup"))
        return at_io_uring_setup();
    if (!strcmp(a, "userfaultfd"))
        return at_userfaultfd();
    if (!strcmp(a, "perf-event-open"))
        return at_perf_event_open();
    if (!strcmp(a, "keyctl"))
        return at_keyctl();
    if (!strcmp(a, "tiocsti"))
        return at_tiocsti(0);
    if (!strcmp(a, "tiocsti-high"))
        return at_tiocsti(1);
    if (!strcmp(a, "tioclinux"))
        return at_tioclinux();
    if (!strcmp(a, "connect") && x && y)
        return at_connect(x, y);
    if (!strcmp(a, "serve-self") && x)
        return at_serve_self(x);
    if (!strcmp(a, "ifaces"))
        return at_ifaces();
    if (!strcmp(a, "connect-abstract") && x)
        return at_connect_abstract(x);
    if (!strcmp(a, "socket-packet"))
        return at_socket_packet();
    if (!strcmp(a, "int80"))
        return at_int80();
    if (!strcmp(a, "x32"))
        return at_x32();
    if (!strcmp(a, "fds"))
        return at_fds();
    if (!strcmp(a, "setid") && x && y)
        return at_setid(x, y);
    if (!strcmp(a, "fchmod-fd") && x)
        return at_fchmod_fd(x);
    if (!strcmp(a, "setcap") && x)
        return at_setcap(x);
    if (!strcmp(a, "openat2") && x)
        return at_openat2(x);
    fprintf(stderr, "escape: unknown attack or missing argument: %s\n", a);
    return 2;
}
