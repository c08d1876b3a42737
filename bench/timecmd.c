/* timecmd.c — time commands side by side: `timecmd N :: CMD_A ... :: CMD_B
 * ...` runs A and B alternately N times each (posix_spawn + waitpid, no
 * shell), and prints min/median/p90 per command and the ratio of medians.
 * Alternating keeps both under the same machine conditions. With
 * TIMECMD_PAUSE_MS set, each run waits that long first (untimed): commands
 * that come one at a time, as an agent's do (bench/pool). */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double run_once(char **argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
    double t0 = now_ms();
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        perror(argv[0]);
        exit(2);
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now_ms() - t0;
    posix_spawn_file_actions_destroy(&fa);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s failed (status %d)\n", argv[0], st);
        exit(2);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[2], "::")) {
        fprintf(stderr, "usage: timecmd N :: CMD_A... :: CMD_B...\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char **a = argv + 3, **b = NULL;
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], "::")) {
            argv[i] = NULL;
            b = argv + i + 1;
            break;
        }
    if (!b || !*b || n < 1) {
        fprintf(stderr, "usage: timecmd N :: CMD_A... :: CMD_B...\n");
        return 2;
    }
    double *ta = calloc((size_t)n, sizeof(double));
    double *tb = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < 3; i++) { /* warm up caches */
        run_once(a);
        run_once(b);
    }
    const char *pz = getenv("TIMECMD_PAUSE_MS");
    long pause_ms = pz ? atol(pz) : 0;
    struct timespec ps = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
    for (int i = 0; i < n; i++) {
        if (pause_ms > 0)
            nanosleep(&ps, NULL);
        ta[i] = run_once(a);
        if (pause_ms > 0)
            nanosleep(&ps, NULL);
        tb[i] = run_once(b);
    }
    qsort(ta, (size_t)n, sizeof(double), cmp);
    qsort(tb, (size_t)n, sizeof(double), cmp);
    printf("%-10s min %7.3f ms  median %7.3f ms  p90 %7.3f ms\n", "A", ta[0],
           ta[n / 2], ta[n * 9 / 10]);
    printf("%-10s min %7.3f ms  median %7.3f ms  p90 %7.3f ms\n", "B", tb[0],
           tb[n / 2], tb[n * 9 / 10]);
    printf("ratio of medians A/B: %.3f\n", ta[n / 2] / tb[n / 2]);
    return 0;
}
