/* exec.c — exec latency in a running workspace, from one long-lived client
 * using the library API: `bench-exec NAME [N]` runs /bin/true N times
 * (default 1000) through one connection and prints p50/p99 and execs/s.
 * Create the workspace first (sandpit create NAME). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sandpit.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-exec NAME [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (n <= 0)
        n = 1000;
    sp_error err = {0};
    sp_ws_client *c = sp_ws_connect(argv[1], &err);
    if (!c) {
        fprintf(stderr, "bench-exec: %s\n", err.message);
        return 1;
    }
    char *cmd[] = {"/bin/true", NULL};
    sp_ws_exec_opts o = {.argv = cmd, .fds = {-1, -1, -1}};
    double *t = calloc((size_t)n, sizeof(*t));
    if (!t)
        return 1;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        double a = now_us();
        int r = sp_ws_client_exec(c, &o, &err);
        t[i] = now_us() - a;
        if (r != 0) {
            fprintf(stderr, "bench-exec: exec %d: %s (status %d)\n", i,
                    r < 0 ? err.message : "non-zero", r);
            return 1;
        }
    }
    double total = now_us() - t0;
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("%d execs of /bin/true: p50 %.0f us, p99 %.0f us, min %.0f us, "
           "%.0f execs/s\n",
           n, t[n / 2], t[(n * 99) / 100], t[0], n / (total / 1e6));
    free(t);
    sp_ws_client_close(c);
    return 0;
}
