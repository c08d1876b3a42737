/* exec.c — exec latency in a running workspace, from one long-lived client
 * using the library API: `bench-exec NAME [N] [RUNC_ID]` runs /bin/true N
 * times (default 1000) through one connection and prints p50/p99 and
 * execs/s. With RUNC_ID (a container started with `runc run -d`), each
 * sandpit exec alternates with a `runc exec RUNC_ID /bin/true`, and the
 * speed-up of p50 is printed. With --report-ab instead of RUNC_ID, each
 * exec alternates with one that asks for its report (docs/report.md) and
 * the ratio of p50s (and of minimums) is printed. Create the workspace
 * first (sandpit create NAME); bench/exec-vs-runc does all of it. */
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

extern char **environ;

/* `runc exec ID /bin/true`, waited for; its duration in us or < 0. */
static double runc_exec(const char *id)
{
    char *argv[] = {"runc", "exec", (char *)id, "/bin/true", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    double a = now_us();
    pid_t pid;
    int st = -1;
    if (posix_spawnp(&pid, "runc", &fa, NULL, argv, environ) != 0 ||
        waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    return now_us() - a;
}

static void report(const char *what, double *t, int n, double total)
{
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("%-8s %d execs of /bin/true: p50 %.0f us, p99 %.0f us, min %.0f "
           "us, %.0f execs/s\n",
           what, n, t[n / 2], t[(n * 99) / 100], t[0], n / (total / 1e6));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-exec NAME [N] [RUNC_ID]\n");
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
    const char *runc = argc > 3 ? argv[3] : NULL;
    bool ab = runc && strcmp(runc, "--report-ab") == 0;
    if (ab)
        runc = NULL;
    char *rep = NULL;
    sp_ws_exec_opts ro = o;
    ro.report = &rep;
    double *t = calloc((size_t)n, sizeof(*t));
    double *rt = calloc((size_t)n, sizeof(*rt));
    if (!t || !rt)
        return 1;
    double total = 0, rtotal = 0;
    for (int i = 0; i < n; i++) {
        double a = now_us();
        int r = sp_ws_client_exec(c, &o, &err);
        t[i] = now_us() - a;
        total += t[i];
        if (r != 0) {
            fprintf(stderr, "bench-exec: exec %d: %s (status %d)\n", i,
                    r < 0 ? err.message : "non-zero", r);
            return 1;
        }
        if (ab) {
            a = now_us();
            r = sp_ws_client_exec(c, &ro, &err);
            rt[i] = now_us() - a;
            rtotal += rt[i];
            if (r != 0 || !rep) {
                fprintf(stderr, "bench-exec: exec %d with report: %s\n", i,
                        r < 0 ? err.message : "no report");
                return 1;
            }
            free(rep);
            rep = NULL;
        }
        if (runc) {
            rt[i] = runc_exec(runc);
            if (rt[i] < 0) {
                fprintf(stderr, "bench-exec: runc exec %s failed\n", runc);
                return 1;
            }
            rtotal += rt[i];
        }
    }
    report("sandpit", t, n, total);
    if (ab) {
        report("+report", rt, n, rtotal);
        printf("report on / off: p50 %.3f, min %.3f\n", rt[n / 2] / t[n / 2],
               rt[0] / t[0]);
    }
    if (runc) {
        report("runc", rt, n, rtotal);
        printf("speed-up (p50 runc exec / p50 sandpit exec): %.1fx\n",
               rt[n / 2] / t[n / 2]);
    }
    free(t);
    free(rt);
    sp_ws_client_close(c);
    return 0;
}
