/* create.c — bench/create's timer: `create-timer N PAUSE_MS SANDPIT [FLAGS]`
 * runs `SANDPIT create bN -q FLAGS` N+1 times (the first one only warms
 * the caches), each followed by a timed `SANDPIT exec bN -- true` (the
 * first exec waits for whatever the create left running) and an untimed
 * `SANDPIT rm -f bN`, with PAUSE_MS between rounds; prints one line of
 * milliseconds per round: "create exec". posix_spawn and waitpid, so the
 * time is the command's, not an interpreter's. */
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

/* Run argv with stdout on /dev/null; the time it took, or -1 on a
 * failure. */
static double run(char **argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
    double t0 = now_ms();
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
        return -1;
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N PAUSE_MS SANDPIT [CREATE FLAGS]\n",
                argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    long pause_ms = atol(argv[2]);
    char *sp = argv[3];
    int nflags = argc - 4;
    char **cargv = calloc((size_t)nflags + 5, sizeof(char *));
    if (!cargv)
        return 2;
    for (int i = 0; i <= n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b%d", i);
        struct timespec ps = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
        nanosleep(&ps, NULL);
        cargv[0] = sp;
        cargv[1] = "create";
        cargv[2] = name;
        cargv[3] = "-q";
        for (int k = 0; k < nflags; k++)
            cargv[4 + k] = argv[4 + k];
        cargv[4 + nflags] = NULL;
        double c = run(cargv);
        char *eargv[] = {sp, "exec", name, "--", "true", NULL};
        double e = c < 0 ? -1 : run(eargv);
        char *rargv[] = {sp, "rm", "-f", name, NULL};
        if (run(rargv) < 0 || c < 0 || e < 0) {
            fprintf(stderr, "create-timer: round %d failed\n", i);
            return 1;
        }
        if (i)
            printf("%.3f %.3f\n", c, e);
    }
    free(cargv);
    return 0;
}
