/* portfwd.c — throughput helper for bench/portfwd: `bench-portfwd sink
 * PORT` accepts on 127.0.0.1:PORT and reads each connection to EOF, then
 * answers the byte count; `bench-portfwd send PORT MIB ROUNDS` sends MIB
 * MiB per connection and prints the best MiB/s of ROUNDS;
 * `bench-portfwd compare PORT_A PORT_B MIB ROUNDS` does one warm-up
 * transfer to each, then ROUNDS rounds alternating A and B (A first on even
 * rounds, B first on odd ones), printing one line per round "MIBS_A MIBS_B"
 * so that load from elsewhere hits both alike. With BENCH_PIDS set to a
 * list of process ids (the sinks, the relay), each line also has the CPU
 * time (ms per GiB) that this sender and those processes spent on each
 * transfer: "MIBS_A MIBS_B CPU_A CPU_B". Plain libc, so the sink also runs
 * inside a workspace. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU nanoseconds of this process plus those in BENCH_PIDS
 * (/proc/PID/schedstat: on-CPU time first). */
static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    double t = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
    const char *pids = getenv("BENCH_PIDS");
    while (pids && *pids) {
        char *end;
        long pid = strtol(pids, &end, 10);
        if (end == pids)
            break;
        pids = end;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
        FILE *f = fopen(path, "re");
        unsigned long long ns = 0;
        if (f) {
            if (fscanf(f, "%llu", &ns) == 1)
                t += (double)ns;
            fclose(f);
        }
    }
    return t;
}

/* One connection: send BYTES, half-close, wait for the sink's count.
 * Returns MiB/s, or -1. */
static double transfer(int port, uint64_t bytes, const char *buf, size_t len)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("connect");
        return -1;
    }
    double t0 = now_s();
    for (uint64_t sent = 0; sent < bytes;) {
        size_t n = bytes - sent < len ? (size_t)(bytes - sent) : len;
        ssize_t w = write(s, buf, n);
        if (w <= 0) {
            perror("write");
            close(s);
            return -1;
        }
        sent += (uint64_t)w;
    }
    shutdown(s, SHUT_WR);
    uint64_t got = 0;
    if (read(s, &got, sizeof(got)) != (ssize_t)sizeof(got) || got != bytes) {
        fprintf(stderr, "short transfer\n");
        close(s);
        return -1;
    }
    double mib = (double)bytes / (1 << 20) / (now_s() - t0);
    close(s);
    return mib;
}

/* One direction of the reference relay: src -> pipe -> dst with blocking
 * splice until EOF, then the half-close passed on. */
static void relay_dir(int src, int dst)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    for (;;) {
        ssize_t n = splice(src, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
        if (n <= 0)
            break;
        while (n > 0) {
            ssize_t w = splice(p[0], NULL, dst, NULL, (size_t)n, SPLICE_F_MOVE);
            if (w <= 0)
                return;
            n -= w;
        }
    }
    shutdown(dst, SHUT_WR);
}

/* `relay LPORT DPORT`: the least a userspace relay can do — accept on
 * 127.0.0.1:LPORT, connect to 127.0.0.1:DPORT, one process per direction
 * doing blocking splices — on the host, no sandbox: the ceiling any relay
 * of two loopback TCP connections has on this machine, shown beside the
 * published port's relay. */
static int reference_relay(int lport, int dport)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)lport),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 16) < 0) {
        perror("relay");
        return 1;
    }
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        a.sin_port = htons((uint16_t)dport);
        if (d < 0 || connect(d, (struct sockaddr *)&a, sizeof(a)) < 0) {
            close(c);
            if (d >= 0)
                close(d);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            relay_dir(c, d);
            _exit(0);
        }
        relay_dir(d, c);
        if (pid > 0)
            waitpid(pid, NULL, 0);
        close(c);
        close(d);
    }
}

int main(int argc, char **argv)
{
    static char buf[1 << 20];
    if (argc >= 3 && strcmp(argv[1], "sink") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)atoi(argv[2])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 64) < 0) {
            perror("sink");
            return 1;
        }
        for (;;) {
            int c = accept(l, NULL, NULL);
            if (c < 0)
                continue;
            uint64_t total = 0;
            ssize_t n;
            while ((n = read(c, buf, sizeof(buf))) > 0)
                total += (uint64_t)n;
            if (write(c, &total, sizeof(total)) < 0)
                perror("sink");
            close(c);
        }
    }
    if (argc >= 5 && strcmp(argv[1], "send") == 0) {
        int port = atoi(argv[2]), rounds = atoi(argv[4]);
        uint64_t bytes = (uint64_t)atoll(argv[3]) << 20;
        double best = 0;
        memset(buf, 'x', sizeof(buf));
        for (int r = 0; r < rounds; r++) {
            double mib = transfer(port, bytes, buf, sizeof(buf));
            if (mib < 0)
                return 1;
            if (mib > best)
                best = mib;
        }
        printf("%.0f\n", best);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "relay") == 0)
        return reference_relay(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 6 && strcmp(argv[1], "compare") == 0) {
        int pa = atoi(argv[2]), pb = atoi(argv[3]), rounds = atoi(argv[5]);
        int pc = getenv("REF_PORT") ? atoi(getenv("REF_PORT")) : 0;
        uint64_t bytes = (uint64_t)atoll(argv[4]) << 20;
        memset(buf, 'x', sizeof(buf));
        if (transfer(pa, bytes, buf, sizeof(buf)) < 0 ||
            transfer(pb, bytes, buf, sizeof(buf)) < 0)
            return 1;
        for (int r = 0; r < rounds; r++) {
            double a, b, ca, cb, t0, t1, t2;
            double gib = (double)bytes / (1 << 30);
            t0 = cpu_ns();
            if (r % 2 == 0) {
                a = transfer(pa, bytes, buf, sizeof(buf));
                t1 = cpu_ns();
                b = transfer(pb, bytes, buf, sizeof(buf));
                t2 = cpu_ns();
                ca = t1 - t0;
                cb = t2 - t1;
            } else {
                b = transfer(pb, bytes, buf, sizeof(buf));
                t1 = cpu_ns();
                a = transfer(pa, bytes, buf, sizeof(buf));
                t2 = cpu_ns();
                cb = t1 - t0;
                ca = t2 - t1;
            }
            if (a < 0 || b < 0)
                return 1;
            /* The reference relay, if any, between the other two. */
            double c = 0;
            if (pc && (c = transfer(pc, bytes, buf, sizeof(buf))) < 0)
                return 1;
            if (getenv("BENCH_PIDS"))
                printf("%.0f %.0f %.0f %.0f", a, b, ca / 1e6 / gib,
                       cb / 1e6 / gib);
            else
                printf("%.0f %.0f", a, b);
            if (pc)
                printf(" %.0f", c);
            printf("\n");
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "usage: bench-portfwd sink PORT | send PORT MIB ROUNDS | compare PORT_A PORT_B MIB ROUNDS (REF_PORT=P adds a third column) | relay LPORT DPORT\n");
    return 2;
}
