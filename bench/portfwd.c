/* portfwd.c — throughput helper for bench/portfwd: `bench-portfwd sink
 * PORT` accepts on 127.0.0.1:PORT and reads each connection to EOF, then
 * answers the byte count; `bench-portfwd send PORT MIB ROUNDS` sends MIB
 * MiB per connection and prints the best MiB/s of ROUNDS. Plain libc, so
 * the sink also runs inside a workspace. */
#include <arpa/inet.h>
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
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
                perror("connect");
                return 1;
            }
            double t0 = now_s();
            for (uint64_t sent = 0; sent < bytes;) {
                ssize_t w = write(s, buf, sizeof(buf));
                if (w <= 0) {
                    perror("write");
                    return 1;
                }
                sent += (uint64_t)w;
            }
            shutdown(s, SHUT_WR);
            uint64_t got = 0;
            if (read(s, &got, sizeof(got)) != (ssize_t)sizeof(got) || got < bytes) {
                fprintf(stderr, "short transfer\n");
                return 1;
            }
            double mib = (double)bytes / (1 << 20) / (now_s() - t0);
            if (mib > best)
                best = mib;
            close(s);
        }
        printf("%.0f\n", best);
        return 0;
    }
    fprintf(stderr, "usage: bench-portfwd sink PORT | send PORT MIB ROUNDS\n");
    return 2;
}
