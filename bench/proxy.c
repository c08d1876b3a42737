/* bench/proxy.c — helper of bench/proxy: a loopback HTTP server and a
 * client that downloads from it directly or through the egress proxy.
 *
 *   bench-proxy serve PORT
 *       HTTP/1.1 on 127.0.0.1:PORT, one connection at a time (the client is
 *       sequential): "GET /bytes/N" answers N zero bytes, anything else a
 *       small body; the connection is closed after each response.
 *   bench-proxy get  MODE PROXYPORT HOST PORT MIB ROUNDS LATN
 *       MODE direct: connect to 127.0.0.1:PORT; http: absolute-form GET to
 *       the proxy on 127.0.0.1:PROXYPORT; connect: CONNECT HOST:PORT through
 *       the proxy, then an origin-form GET in the tunnel. Prints
 *       "MiB/s p50_us p99_us": the best of ROUNDS downloads of MIB MiB and
 *       the latency percentiles of LATN small requests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IOBUF (256 * 1024)

static char iobuf[IOBUF];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int tcp_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Read a response head (to CRLFCRLF) byte-exactly enough: returns the bytes
 * of body already read past it in iobuf[0..*extra). */
static int read_head(int fd, size_t *extra)
{
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, iobuf + len, 4096);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        char *e = memmem(iobuf, len, "\r\n\r\n", 4);
        if (e) {
            size_t hl = (size_t)(e + 4 - iobuf);
            int status = atoi(iobuf + 9);
            *extra = len - hl;
            memmove(iobuf, e + 4, *extra);
            return status;
        }
        if (len > IOBUF - 4096)
            return -1;
    }
}

static void serve(unsigned port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0)
        die("bind/listen");
    static char zero[IOBUF];
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char head[8192];
        size_t len = 0;
        while (len < sizeof(head) - 1) {
            ssize_t r = read(c, head + len, sizeof(head) - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
            head[len] = '\0';
            if (strstr(head, "\r\n\r\n"))
                break;
        }
        head[len] = '\0';
        unsigned long long n = 12;
        const char *b = strstr(head, " /bytes/");
        if (b)
            n = strtoull(b + 8, NULL, 10);
        char h[256];
        int hl = snprintf(h, sizeof(h),
                          "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n"
                          "Connection: close\r\n\r\n%s",
                          n, b ? "" : "hello-small\n");
        write_all(c, h, (size_t)hl);
        while (b && n > 0) {
            size_t k = n > sizeof(zero) ? sizeof(zero) : (size_t)n;
            ssize_t w = write(c, zero, k);
            if (w <= 0)
                break;
            n -= (unsigned long long)w;
        }
        close(c);
    }
}

/* One request; returns the body bytes read (to EOF). */
static uint64_t request(const char *mode, unsigned pport, const char *host,
                        unsigned port, const char *path)
{
    char req[512];
    int fd;
    size_t extra = 0;
    if (strcmp(mode, "direct") == 0) {
        fd = tcp_connect(port);
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
                 path, host, port);
    } else if (strcmp(mode, "http") == 0) {
        fd = tcp_connect(pport);
        snprintf(req, sizeof(req),
                 "GET http://%s:%u%s HTTP/1.1\r\nHost: %s:%u\r\n\r\n", host,
                 port, path, host, port);
    } else {
        fd = tcp_connect(pport);
        snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
                 host, port, host, port);
        write_all(fd, req, strlen(req));
        if (read_head(fd, &extra) != 200) {
            fprintf(stderr, "CONNECT refused\n");
            exit(1);
        }
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
                 path, host, port);
    }
    write_all(fd, req, strlen(req));
    int st = read_head(fd, &extra);
    if (st != 200) {
        fprintf(stderr, "status %d\n", st);
        exit(1);
    }
    uint64_t total = extra;
    for (;;) {
        ssize_t r = read(fd, iobuf, sizeof(iobuf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        total += (uint64_t)r;
    }
    close(fd);
    return total;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "serve") == 0) {
        serve((unsigned)atoi(argv[2]));
        return 0;
    }
    if (argc != 9 || strcmp(argv[1], "get") != 0) {
        fprintf(stderr, "usage: bench-proxy serve PORT | get MODE PROXYPORT "
                        "HOST PORT MIB ROUNDS LATN\n");
        return 2;
    }
    const char *mode = argv[2], *host = argv[4];
    unsigned pport = (unsigned)atoi(argv[3]), port = (unsigned)atoi(argv[5]);
    uint64_t mib = strtoull(argv[6], NULL, 10);
    int rounds = atoi(argv[7]), latn = atoi(argv[8]);
    char path[64];
    snprintf(path, sizeof(path), "/bytes/%llu", (unsigned long long)(mib << 20));
    double best = 0;
    for (int i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        uint64_t got = request(mode, pport, host, port, path);
        uint64_t dt = now_ns() - t0;
        if (got != mib << 20) {
            fprintf(stderr, "short body: %llu\n", (unsigned long long)got);
            return 1;
        }
        double mbs = (double)got / 1048576.0 / ((double)dt / 1e9);
        if (mbs > best)
            best = mbs;
    }
    uint64_t *lat = calloc((size_t)latn + 1, sizeof(uint64_t));
    for (int i = 0; i < latn + 20; i++) {
        uint64_t t0 = now_ns();
        request(mode, pport, host, port, "/small");
        if (i >= 20) /* warm-up */
            lat[i - 20] = (now_ns() - t0) / 1000;
    }
    qsort(lat, (size_t)latn, sizeof(uint64_t), cmp_u64);
    printf("%.0f %llu %llu\n", best, (unsigned long long)lat[latn / 2],
           (unsigned long long)lat[(size_t)latn * 99 / 100]);
    free(lat);
    return 0;
}
