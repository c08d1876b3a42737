/* probe.c — a small program run INSIDE a sandbox by the integration and
 * escape tests. Each subcommand tries one thing and prints the outcome as
 * "ok" or "errno NAME" so the tests assert exact results (crun's
 * tests/init.c and bubblewrap's try-syscall.c are the models). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static int report(int r)
{
    if (r >= 0) {
        puts("ok");
        return 0;
    }
    printf("errno %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    return 1;
}

/* List the fds open in this process, but the one used to list them. */
static int cmd_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return report(-1);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != self)
            printf("%d\n", fd);
    }
    closedir(d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: probe CMD [ARGS]\n");
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "fds"))
        return cmd_fds();
    if (!strcmp(c, "read") && argc > 2) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        return report(fd);
    }
    if (!strcmp(c, "write") && argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0 && write(fd, "x", 1) != 1)
            fd = -1;
        return report(fd);
    }
    if (!strcmp(c, "sleep-forever")) {
        for (;;)
            pause();
    }
    if (!strcmp(c, "orphan-sleeper") && argc > 2) {
        /* Leave a grandchild behind that writes its pid, then exit. */
        pid_t p = fork();
        if (p == 0) {
            setsid();
            if (fork() == 0) {
                FILE *f = fopen(argv[2], "w");
                if (f) {
                    fprintf(f, "%d\n", getpid());
                    fclose(f);
                }
                for (;;)
                    pause();
            }
            _exit(0);
        }
        waitpid(p, NULL, 0);
        for (;;)
            pause();
    }
    if (!strcmp(c, "kill") && argc > 2) {
        return report(kill(atoi(argv[2]), 0));
    }
    if (!strcmp(c, "tiocsti")) {
        char ch = 'x';
        return report(ioctl(0, TIOCSTI, &ch));
    }
    if (!strcmp(c, "connect") && argc > 2) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)atoi(argv[2])),
                                .sin_addr.s_addr = htonl(0x7f000001)};
        return report(s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof(a)));
    }
    if (!strcmp(c, "bpf") && argc > 2) {
        /* bpf() N times: each must fail with EPERM; prints "ok" when all
         * did (the report tests: a denial storm stays correct). */
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            errno = 0;
            if (syscall(SYS_bpf, 0, 0, 0) != -1 || errno != EPERM) {
                printf("call %ld: errno %s\n", i,
                       strerrorname_np(errno) ? strerrorname_np(errno) : "0");
                return 1;
            }
        }
        puts("ok");
        return 0;
    }
    if (!strcmp(c, "socket-packet")) {
        return report(socket(AF_PACKET, SOCK_RAW, 0));
    }
    if (!strcmp(c, "connect-ip") && argc > 3) {
        /* a direct connection to IP:PORT (the tests use 127.0.0.0/8) */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        return report(s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof(a)));
    }
    if (!strcmp(c, "exit") && argc > 2)
        return atoi(argv[2]);
    if (!strcmp(c, "signal") && argc > 2) {
        kill(getpid(), atoi(argv[2]));
        return 99;
    }
    fprintf(stderr, "probe: unknown command %s\n", c);
    return 2;
}
