/* test_cgroup.c — the cgroup layer against the real kernel: limits bite
 * (OOM kill, fork refused), stats are read back, nothing is left behind,
 * and an undelegated uid is refused with a message. Needs root; skips
 * otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "error.h"
#include "policy.h"

#define MiB (1024ull * 1024)

#define SKIP_UNLESS_ROOT()                                                     \
    do {                                                                       \
        if (geteuid() != 0) {                                                  \
            print_message("not root: skipped\n");                              \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* Every place a cgroup called `name` could be below our own cgroups:
 * /sys/fs/cgroup/<ctrl><path>/name for v1, /sys/fs/cgroup[/unified]<path>
 * for v2. Returns how many of them exist. */
static int count_leftovers(const char *name)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1, *path = c2 + 1;
        if (strcmp(path, "/") == 0)
            path = "";
        const char *bases[2] = {NULL, NULL};
        char v1base[256];
        if (*ctrls == '\0') {
            bases[0] = "/sys/fs/cgroup";
            bases[1] = "/sys/fs/cgroup/unified";
        } else {
            snprintf(v1base, sizeof(v1base), "/sys/fs/cgroup/%s", ctrls);
            bases[0] = v1base;
        }
        for (int i = 0; i < 2 && bases[i]; i++) {
            char p[8192];
            struct stat st;
            snprintf(p, sizeof(p), "%s%s/%s", bases[i], path, name);
            if (stat(p, &st) == 0)
                found++;
        }
    }
    fclose(f);
    return found;
}

/* Fork a child that waits until the parent has attached it, then runs fn. */
static pid_t fork_attached(struct sp_cgroup *cg, void (*fn)(int), int arg)
{
    int go[2];
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(99);
        fn(arg);
        _exit(0);
    }
    close(go[0]);
    sp_error err = {0};
    int r = sp_cgroup_attach(cg, pid, &err);
    if (r < 0)
        print_error("attach: %s\n", err.message);
    assert_int_equal(r, 0);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    return pid;
}

static void eat_memory(int mib)
{
    size_t len = (size_t)mib * MiB;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(98);
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    _exit(0); /* survived: the limit did not bite */
}

static void test_oom_kill(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    struct sp_limits lim = {.memory = 64 * MiB, .pids = 16};
    struct sp_cgroup *cg = NULL;
    sp_error err = {0};
    int r = sp_cgroup_create(&lim, "sandpit-test-oom", &cg, &err);
    if (r < 0)
        print_error("create: %s\n", err.message);
    assert_int_equal(r, 0);
    assert_non_null(strstr(sp_cgroup_describe(cg), "memory"));
    assert_non_null(strstr(sp_cgroup_describe(cg), "pids"));
    assert_int_equal(count_leftovers("sandpit-test-oom"), 2); /* memory, pids */

    pid_t pid = fork_attached(cg, eat_memory, 200);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    sp_stats st = {0};
    assert_int_equal(sp_cgroup_read_stats(cg, &st), 0);
    assert_true(st.oom_killed);
    assert_true(st.memory_known);
    assert_true(st.memory_peak > 32 * MiB);
    assert_true(st.memory_peak <= 64 * MiB);

    char path[4096];
    snprintf(path, sizeof(path), "%s", sp_cgroup_path(cg));
    sp_cgroup_destroy(cg);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_leftovers("sandpit-test-oom"), 0);
}

/* Fork until the kernel says no; report how many forks worked. */
static void fork_bomb(int fd)
{
    int n = 0;
    for (; n < 1000; n++) {
        pid_t p = fork();
        if (p < 0)
            break;
        if (p == 0) {
            pause();
            _exit(0);
        }
    }
    int e = errno;
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d %d\n", n, e);
    if (write(fd, buf, (size_t)len) != len)
        _exit(97);
    pause();
}

static void test_pids_limit(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    struct sp_limits lim = {.memory = 64 * MiB, .pids = 16};
    struct sp_cgroup *cg = NULL;
    sp_error err = {0};
    int r = sp_cgroup_create(&lim, NULL, &cg, &err);
    if (r < 0)
        print_error("create: %s\n", err.message);
    assert_int_equal(r, 0);

    int res[2];
    assert_int_equal(pipe2(res, O_CLOEXEC), 0);
    pid_t pid = fork_attached(cg, fork_bomb, res[1]);
    close(res[1]);
    char buf[32] = "";
    assert_true(read(res[0], buf, sizeof(buf) - 1) > 0);
    close(res[0]);
    int forks = -1, e = 0;
    assert_int_equal(sscanf(buf, "%d %d", &forks, &e), 2);
    /* 16 tasks: the child itself and 15 forks. */
    assert_int_equal(forks, 15);
    assert_int_equal(e, EAGAIN);

    sp_stats st = {0};
    assert_int_equal(sp_cgroup_read_stats(cg, &st), 0);
    print_message("pids peak %s: %llu\n", st.pids_known ? "known" : "unknown",
                  (unsigned long long)st.pids_peak);
    if (st.pids_known)
        assert_int_equal(st.pids_peak, 16);
    assert_false(st.oom_killed);

    assert_int_equal(sp_cgroup_kill_all(cg), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    char path[4096];
    snprintf(path, sizeof(path), "%s", sp_cgroup_path(cg));
    sp_cgroup_destroy(cg);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);
}

static void sleep_forever(int n)
{
    for (int i = 0; i < n; i++)
        if (fork() == 0)
            break;
    for (;;)
        pause();
}

/* destroy() alone kills what is left (orphans included) and removes every
 * directory, in the cpu hierarchy too. */
static void test_destroy_kills_and_removes(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    struct sp_limits lim = {.cpus = 0.5};
    struct sp_cgroup *cg = NULL;
    sp_error err = {0};
    int r = sp_cgroup_create(&lim, "sandpit-test-destroy", &cg, &err);
    if (r < 0)
        print_error("create: %s\n", err.message);
    assert_int_equal(r, 0);
    assert_non_null(strstr(sp_cgroup_describe(cg), "cpu"));
    assert_true(count_leftovers("sandpit-test-destroy") >= 1);

    pid_t pid = fork_attached(cg, sleep_forever, 5);
    usleep(100000);
    sp_cgroup_destroy(cg);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(count_leftovers("sandpit-test-destroy"), 0);
}

static void test_names(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    struct sp_cgroup *cg = NULL, *cg2 = NULL;
    sp_error err = {0};
    assert_int_equal(sp_cgroup_create(NULL, "../escape", &cg, &err), -EINVAL);
    assert_non_null(strstr(err.message, "bad cgroup name"));
    assert_int_equal(sp_cgroup_create(NULL, "", &cg, &err), -EINVAL);

    assert_int_equal(sp_cgroup_create(NULL, "sandpit-test-dup", &cg, &err), 0);
    assert_int_equal(sp_cgroup_create(NULL, "sandpit-test-dup", &cg2, &err),
                     -EEXIST);
    assert_null(cg2);
    /* The failed second create must not have removed the first one. */
    assert_true(count_leftovers("sandpit-test-dup") >= 1);
    sp_cgroup_destroy(cg);
    assert_int_equal(count_leftovers("sandpit-test-dup"), 0);
    sp_cgroup_destroy(NULL);
}

static void test_probe_root(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    char desc[512] = "";
    int r = sp_cgroup_probe(desc, sizeof(desc));
    print_message("probe: %d %s\n", r, desc);
    assert_true(r >= 0);
    assert_non_null(strstr(desc, "cgroup v"));
    if (r == 1)
        assert_non_null(strstr(desc, "memory, pids, cpu"));
}

/* Without delegation nothing is usable: create fails with EACCES/EPERM,
 * naming the hierarchy, and probe says so. Run as nobody in a child. */
static void test_unprivileged_refused(void **state)
{
    (void)state;
    SKIP_UNLESS_ROOT();
    int res[2];
    assert_int_equal(pipe2(res, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(res[0]);
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(90);
        struct sp_limits lim = {.memory = 64 * MiB, .pids = 16};
        struct sp_cgroup *cg = NULL;
        sp_error err = {0};
        char desc[512] = "";
        int r = sp_cgroup_create(&lim, "sandpit-test-nobody", &cg, &err);
        int p = sp_cgroup_probe(desc, sizeof(desc));
        dprintf(res[1], "%d\n%s\n%d\n%s\n", r, err.message, p, desc);
        _exit(0);
    }
    close(res[1]);
    char buf[4096] = "";
    size_t n = 0;
    ssize_t k;
    while ((k = read(res[0], buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)k;
    close(res[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    print_message("nobody: %s", buf);
    int r = atoi(buf);
    assert_true(r == -EACCES || r == -EPERM);
    char *msg = strchr(buf, '\n') + 1;
    char *probe = strchr(msg, '\n') + 1;
    probe[-1] = '\0';
    assert_non_null(strstr(msg, "hierarchy"));
    assert_non_null(strstr(msg, "/sys/fs/cgroup"));
    assert_non_null(strstr(msg, "not writable by uid 65534"));
    assert_non_null(strstr(msg, "limits are not enforced"));
    assert_int_equal(atoi(probe), 0);
    assert_non_null(strstr(probe, "not writable by uid 65534"));
    assert_int_equal(count_leftovers("sandpit-test-nobody"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_kill),
        cmocka_unit_test(test_pids_limit),
        cmocka_unit_test(test_destroy_kills_and_removes),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_probe_root),
        cmocka_unit_test(test_unprivileged_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
