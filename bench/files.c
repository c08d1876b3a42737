/* files.c — the file API against exec, from one long-lived client:
 * `bench-files NAME [N]` writes N small files (default 1000) and reads them
 * back through sp_ws_file_write/sp_ws_file_read, then does the same
 * through exec (`sh -c 'cat > F'` with the data on stdin, `cat F`), then
 * applies a 50-file patch through sp_ws_patch and through exec of
 * `patch -p1`. Prints p50/p99 per operation and the speed-up of p50.
 * Create the workspace first (sandpit create NAME); bench/files-vs-exec
 * does all of it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static double p50(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(*t), cmp);
    return t[n / 2];
}

static void report(const char *what, double *t, int n)
{
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("%-22s n=%-5d p50 %8.0f us  p99 %8.0f us  min %8.0f us\n", what, n,
           t[n / 2], t[(n * 99) / 100], t[0]);
}

/* exec argv with stdin from a pipe holding `in`, stdout to a pipe. */
static int exec_io(sp_ws_client *c, char *const *argv, const char *in,
                   size_t in_len, char *out, size_t out_cap, size_t *out_len)
{
    int ip[2], op[2];
    if (pipe(ip) < 0 || pipe(op) < 0)
        return -1;
    if (in_len && write(ip[1], in, in_len) != (ssize_t)in_len)
        return -1;
    close(ip[1]);
    int devnull = open("/dev/null", O_WRONLY);
    sp_ws_exec_opts o = {.argv = argv, .fds = {ip[0], op[1], devnull}};
    sp_error err = {0};
    int r = sp_ws_client_exec(c, &o, &err);
    close(ip[0]);
    close(op[1]);
    close(devnull);
    size_t n = 0;
    ssize_t k;
    while (n < out_cap && (k = read(op[0], out + n, out_cap - n)) > 0)
        n += (size_t)k;
    close(op[0]);
    if (out_len)
        *out_len = n;
    if (r != 0)
        fprintf(stderr, "exec: %d %s\n", r, err.message);
    return r;
}

/* A patch touching nfiles files p/fI.txt (which hold "line 1".."line 9"
 * with line 5 = `from`), changing line 5 to `to`. */
static char *make_patch(int nfiles, const char *from, const char *to)
{
    size_t cap = (size_t)nfiles * 512, n = 0;
    char *s = malloc(cap);
    for (int i = 0; i < nfiles; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "--- a/p/f%d.txt\n+++ b/p/f%d.txt\n"
                              "@@ -3,5 +3,5 @@\n line 3\n line 4\n-%s\n+%s\n"
                              " line 6\n line 7\n",
                              i, i, from, to);
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-files NAME [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (n < 10)
        n = 10;
    sp_error err = {0};
    sp_ws_client *c = sp_ws_connect(argv[1], &err);
    if (!c) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double *tw = calloc((size_t)n, sizeof(double));
    double *tr = calloc((size_t)n, sizeof(double));
    double *ew = calloc((size_t)n, sizeof(double));
    double *er = calloc((size_t)n, sizeof(double));
    char path[64], data[256], out[4096];
    sp_ws_file_mkdir(c, "bench", -1, SP_WS_FILE_PARENTS, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "bench/api%d.txt", i);
        int len = snprintf(data, sizeof(data), "file %d: small content\n", i);
        double a = now_us();
        if (sp_ws_file_write(c, path, data, (size_t)len, -1, 0, &err) < 0) {
            fprintf(stderr, "write: %s\n", err.message);
            return 1;
        }
        tw[i] = now_us() - a;
    }
    double *tn = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "bench/ns%d.txt", i);
        int len = snprintf(data, sizeof(data), "file %d: small content\n", i);
        double a = now_us();
        if (sp_ws_file_write(c, path, data, (size_t)len, -1, SP_WS_FILE_NOSYNC,
                             &err) < 0) {
            fprintf(stderr, "write: %s\n", err.message);
            return 1;
        }
        tn[i] = now_us() - a;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "bench/api%d.txt", i);
        void *d = NULL;
        size_t len = 0;
        double a = now_us();
        if (sp_ws_file_read(c, path, 0, -1, &d, &len, &err) < 0) {
            fprintf(stderr, "read: %s\n", err.message);
            return 1;
        }
        tr[i] = now_us() - a;
        free(d);
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "bench/ex%d.txt", i);
        int len = snprintf(data, sizeof(data), "file %d: small content\n", i);
        char script[128];
        snprintf(script, sizeof(script), "cat > %s", path);
        char *av[] = {"/bin/sh", "-c", script, NULL};
        double a = now_us();
        if (exec_io(c, av, data, (size_t)len, out, sizeof(out), NULL) != 0)
            return 1;
        ew[i] = now_us() - a;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "bench/ex%d.txt", i);
        char *av[] = {"cat", path, NULL};
        size_t got = 0;
        double a = now_us();
        if (exec_io(c, av, NULL, 0, out, sizeof(out), &got) != 0)
            return 1;
        er[i] = now_us() - a;
    }
    double aw = p50(tw, n), ar = p50(tr, n), xw = p50(ew, n), xr = p50(er, n);
    double an = p50(tn, n);
    report("api write (fsync)", tw, n);
    report("api write (no fsync)", tn, n);
    report("exec sh -c 'cat > F'", ew, n);
    report("api read", tr, n);
    report("exec cat F", er, n);
    printf("speed-up (p50): write %.1fx (no fsync: %.1fx), read %.1fx\n",
           xw / aw, xw / an, xr / ar);

    /* A 50-file patch, applied and reverted, 20 times each way. */
    const int files = 50, rounds = 20;
    char body[256];
    int bl = 0;
    for (int l = 1; l <= 9; l++)
        bl += snprintf(body + bl, sizeof(body) - (size_t)bl, "line %d\n", l);
    sp_ws_file_mkdir(c, "p", -1, SP_WS_FILE_PARENTS, NULL);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof(path), "p/f%d.txt", i);
        sp_ws_file_write(c, path, body, (size_t)bl, -1, 0, NULL);
    }
    char *fwd = make_patch(files, "line 5", "LINE 5");
    char *back = make_patch(files, "LINE 5", "line 5");
    double pa[40], pe[40];
    int k = 0;
    for (int i = 0; i < rounds; i++) {
        double a = now_us();
        if (sp_ws_patch(c, fwd, strlen(fwd), 1, false, NULL, &err) != 0) {
            fprintf(stderr, "patch: %s\n", err.message);
            return 1;
        }
        pa[k] = now_us() - a;
        a = now_us();
        if (sp_ws_patch(c, back, strlen(back), 1, false, NULL, &err) != 0) {
            fprintf(stderr, "patch back: %s\n", err.message);
            return 1;
        }
        pa[k + 1] = now_us() - a;
        k += 2;
    }
    k = 0;
    char *pav[] = {"patch", "-s", "-p1", NULL};
    for (int i = 0; i < rounds; i++) {
        double a = now_us();
        if (exec_io(c, pav, fwd, strlen(fwd), out, sizeof(out), NULL) != 0)
            return 1;
        pe[k] = now_us() - a;
        a = now_us();
        if (exec_io(c, pav, back, strlen(back), out, sizeof(out), NULL) != 0)
            return 1;
        pe[k + 1] = now_us() - a;
        k += 2;
    }
    double ap = p50(pa, 2 * rounds), xp = p50(pe, 2 * rounds);
    report("api patch (50 files)", pa, 2 * rounds);
    report("exec patch -p1", pe, 2 * rounds);
    printf("speed-up (p50): patch %.1fx\n", xp / ap);
    sp_ws_file_remove(c, "bench", SP_WS_FILE_RECURSIVE, NULL);
    sp_ws_file_remove(c, "p", SP_WS_FILE_RECURSIVE, NULL);
    sp_ws_client_close(c);
    free(fwd);
    free(back);
    return 0;
}
