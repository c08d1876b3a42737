/* pool.c — bench/pool's timer: `bench-pool POOL_SOCK FRESH_SOCK N PAUSE_MS`
 * talks JSON-RPC to two `sandpit serve` processes of the same policy, the
 * first with a warm pool (--pool), the second without, and runs N+1
 * rounds (the first only warms caches): wait (untimed) until the pool has
 * one ready, then time workspace.create on the pool's server and the
 * first exec of true in it, then the same on the fresh server; each
 * workspace is deleted untimed. Prints one line per round, milliseconds:
 * "pool_create pool_exec fresh_create fresh_exec". A reply that is an
 * error ends the run (exit 1). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct conn {
    int fd;
    int id;
    char buf[1 << 16];
    size_t len;
};

static int conn_open(struct conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c->id = 0;
    c->len = 0;
    return c->fd >= 0 && connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
               ? 0
               : -1;
}

/* Send one request, return its reply line (in c->buf, until the next
 * call) or NULL. Notifications before it are skipped. */
static char *call(struct conn *c, const char *method, const char *params)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\","
                     "\"params\":%s}\n",
                     ++c->id, method, params);
    if (write(c->fd, req, (size_t)n) != n)
        return NULL;
    char want[32];
    snprintf(want, sizeof(want), "\"id\":%d", c->id);
    for (;;) {
        char *nl;
        while (!(nl = memchr(c->buf, '\n', c->len))) {
            if (c->len == sizeof(c->buf))
                return NULL;
            ssize_t k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
            if (k <= 0)
                return NULL;
            c->len += (size_t)k;
        }
        *nl = '\0';
        size_t used = (size_t)(nl - c->buf) + 1;
        static char line[1 << 16];
        memcpy(line, c->buf, used);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        if (strstr(line, want) && !strstr(line, "\"method\""))
            return strstr(line, "\"error\"") ? NULL : line;
    }
}

static int ready_count(struct conn *c)
{
    char *r = call(c, "pool.status", "{}");
    char *p = r ? strstr(r, "\"ready\":") : NULL;
    return p ? atoi(p + 8) : -1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s POOL_SOCK FRESH_SOCK N PAUSE_MS\n", argv[0]);
        return 2;
    }
    struct conn *pc = calloc(1, sizeof(*pc)), *fc = calloc(1, sizeof(*fc));
    if (!pc || !fc || conn_open(pc, argv[1]) < 0 || conn_open(fc, argv[2]) < 0) {
        perror("connect");
        return 2;
    }
    int n = atoi(argv[3]);
    long pause_ms = atol(argv[4]);
    for (int i = 0; i <= n; i++) {
        double wait_until = now_ms() + 60000;
        while (ready_count(pc) < 1) {
            if (now_ms() > wait_until) {
                fprintf(stderr, "the pool did not refill\n");
                return 1;
            }
            poll(NULL, 0, 1);
        }
        poll(NULL, 0, (int)pause_ms);
        double t[4];
        struct conn *cs[2] = {pc, fc};
        for (int k = 0; k < 2; k++) {
            char p[256];
            snprintf(p, sizeof(p), "{\"name\":\"%c%d\"}", k ? 'f' : 'p', i);
            double t0 = now_ms();
            if (!call(cs[k], "workspace.create", p)) {
                fprintf(stderr, "create failed\n");
                return 1;
            }
            double t1 = now_ms();
            snprintf(p, sizeof(p),
                     "{\"workspace\":\"%c%d\",\"command\":[\"true\"]}",
                     k ? 'f' : 'p', i);
            if (!call(cs[k], "exec", p)) {
                fprintf(stderr, "exec failed\n");
                return 1;
            }
            double t2 = now_ms();
            t[2 * k] = t1 - t0;
            t[2 * k + 1] = t2 - t1;
            snprintf(p, sizeof(p), "{\"workspace\":\"%c%d\"}", k ? 'f' : 'p', i);
            call(cs[k], "workspace.delete", p);
        }
        if (i > 0)
            printf("%.3f %.3f %.3f %.3f\n", t[0], t[1], t[2], t[3]);
    }
    return 0;
}
