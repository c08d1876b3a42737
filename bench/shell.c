/* shell.c — round trip of `echo x` through a workspace shell, with the
 * library API: `bench-shell NAME [N]` opens a shell (sh), then N times
 * writes "echo x<i>\n" and reads by cursor (waiting) until the command's
 * output "x<i>" appears; prints p50/p99 in ms. Target: p50 under 1 ms.
 * bench/shell creates the workspace and runs it. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        fprintf(stderr, "usage: bench-shell NAME [N]\n");
        return 2;
    }
    const char *ws = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (n < 1)
        n = 1;
    sp_error err = {0};
    char *sh_argv[] = {"sh", NULL};
    sp_ws_shell_opts o = {.argv = sh_argv};
    int id = sp_ws_shell_open(ws, &o, &err);
    if (id < 0) {
        fprintf(stderr, "bench-shell: %s\n", err.message);
        return 1;
    }
    uint64_t cursor = 0;
    double *t = calloc((size_t)n, sizeof(*t));
    char *acc = malloc(1 << 20);
    if (!t || !acc)
        return 1;
    for (int i = 0; i < n; i++) {
        char cmd[64], want[64];
        int cl = snprintf(cmd, sizeof(cmd), "echo x%d\n", i);
        /* The output line: "x<i>" not preceded by "echo " (the input the
         * terminal echoes), at a line start or after a prompt. */
        snprintf(want, sizeof(want), "x%d\r\n", i);
        size_t al = 0;
        double a = now_us();
        if (sp_ws_shell_write(ws, id, cmd, (size_t)cl, &err) < 0) {
            fprintf(stderr, "bench-shell: %s\n", err.message);
            return 1;
        }
        for (;;) {
            sp_ws_output out;
            if (sp_ws_shell_read(ws, id, cursor, 0, 5.0, &out, &err) < 0) {
                fprintf(stderr, "bench-shell: %s\n", err.message);
                return 1;
            }
            cursor = out.next_cursor;
            if (al + out.len < (1 << 20) - 1) {
                memcpy(acc + al, out.data, out.len);
                al += out.len;
            }
            acc[al] = '\0';
            sp_ws_output_free(&out);
            bool found = false;
            for (char *h = strstr(acc, want); h && !found; h = strstr(h + 1, want))
                found = h - acc < 5 || memcmp(h - 5, "echo ", 5) != 0;
            if (found)
                break;
        }
        t[i] = now_us() - a;
    }
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("shell round trip (echo x), %d runs: p50 %.3f ms  p99 %.3f ms  "
           "(target p50 < 1 ms)\n",
           n, t[n / 2] / 1000, t[(size_t)(n * 0.99)] / 1000);
    sp_ws_shell_close(ws, id, NULL);
    free(t);
    free(acc);
    return 0;
}
