/* test_landlock.c — unit tests for the Landlock layer: plan building (masks,
 * notes per ABI) and enforcement in a forked child, with the same checks at
 * a forced older ABI to show the tests can fail. The child reports to the
 * parent by exit code: 0 = all checks held, N = check N failed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "landlock.h"
#include "util.h"

#define RE_RIGHTS                                                              \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |              \
     LANDLOCK_ACCESS_FS_READ_DIR)

/* Fail check `code` in the child unless cond holds. */
#define CHECK(code, cond)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            _exit(code);                                                       \
    } while (0)

static int kernel_abi;

typedef int (*child_fn)(void *ctx);

/* Run fn in a forked child; return its exit code (or 200 + signal). */
static int run_child(child_fn fn, void *ctx)
{
    pid_t pid = fork();
    int status = 0;

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(ctx));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return 200 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* ---- plan building ----------------------------------------------------- */

static void build_ok(int abi, const struct sp_ll_path *paths, size_t n,
                     bool deny_tcp, const uint16_t *ports, size_t n_ports,
                     bool scope, struct sp_landlock_plan *plan)
{
    sp_error err = {0};
    int r = sp_landlock_plan_build(abi, paths, n, deny_tcp, ports, n_ports,
                                   scope, plan, &err);
    if (r != 0)
        fail_msg("plan_build(abi %d): %d %s", abi, r, err.message);
}

static void test_notes(void **state)
{
    struct sp_landlock_plan plan = {0};
    (void)state;

    build_ok(1, NULL, 0, true, NULL, 0, true, &plan);
    assert_string_equal(plan.notes,
                        "landlock ABI 1: truncate (ABI 3), TCP rules (ABI 4), "
                        "device ioctl (ABI 5), scoping (ABI 6) not enforced; "
                        "cross-directory rename and link always denied "
                        "(ABI 2)");
    sp_landlock_plan_free(&plan);

    build_ok(3, NULL, 0, true, NULL, 0, true, &plan);
    assert_string_equal(plan.notes,
                        "landlock ABI 3: TCP rules (ABI 4), device ioctl "
                        "(ABI 5), scoping (ABI 6) not enforced");
    sp_landlock_plan_free(&plan);

    /* Features not asked for are not reported as dropped. */
    build_ok(3, NULL, 0, false, NULL, 0, false, &plan);
    assert_string_equal(plan.notes,
                        "landlock ABI 3: device ioctl (ABI 5) not enforced");
    sp_landlock_plan_free(&plan);

    build_ok(5, NULL, 0, true, NULL, 0, true, &plan);
    assert_string_equal(plan.notes,
                        "landlock ABI 5: scoping (ABI 6) not enforced");
    sp_landlock_plan_free(&plan);

    build_ok(6, NULL, 0, true, NULL, 0, true, &plan);
    assert_string_equal(plan.notes, "");
    sp_landlock_plan_free(&plan);

    /* A newer kernel is used at the highest ABI we know. */
    build_ok(42, NULL, 0, true, NULL, 0, true, &plan);
    assert_int_equal(plan.abi, SP_LANDLOCK_ABI_MAX);
    assert_string_equal(plan.notes, "");
    sp_landlock_plan_free(&plan);

    build_ok(0, NULL, 0, true, NULL, 0, true, &plan);
    assert_int_equal(plan.abi, 0);
    assert_true(strstr(plan.notes, "landlock unavailable") != NULL);
    assert_true(plan.handled_fs == 0 && plan.handled_net == 0 &&
                plan.scoped == 0);
    sp_landlock_plan_free(&plan);
}

static const struct sp_ll_path class_paths[] = {
    {"/usr", SP_LL_READ_EXEC},
    {"/workspace", SP_LL_READ_WRITE},
    {"/dev", SP_LL_DEV},
    {"/proc", SP_LL_PROC},
};

static void test_masks(void **state)
{
    struct sp_landlock_plan plan = {0};
    const uint64_t abi1_all = (1ULL << 13) - 1;
    const uint64_t dev = LANDLOCK_ACCESS_FS_READ_FILE |
                         LANDLOCK_ACCESS_FS_WRITE_FILE |
                         LANDLOCK_ACCESS_FS_READ_DIR;
    const uint64_t proc = LANDLOCK_ACCESS_FS_READ_FILE |
                          LANDLOCK_ACCESS_FS_READ_DIR |
                          LANDLOCK_ACCESS_FS_WRITE_FILE;
    (void)state;

    build_ok(7, class_paths, 4, false, NULL, 0, false, &plan);
    assert_int_equal(plan.n_rules, 4);
    assert_true(plan.handled_fs == (1ULL << 16) - 1);
    assert_string_equal(plan.rules[0].path, "/usr");
    assert_true(plan.rules[0].access == RE_RIGHTS);
    assert_true(plan.rules[1].access == plan.handled_fs);
    assert_true(plan.rules[2].access == (dev | LANDLOCK_ACCESS_FS_TRUNCATE |
                                         LANDLOCK_ACCESS_FS_IOCTL_DEV));
    assert_true(plan.rules[3].access == proc);
    assert_true(plan.handled_net == 0 && plan.scoped == 0);
    sp_landlock_plan_free(&plan);

    /* ABI 3: truncate but no device ioctl. */
    build_ok(3, class_paths, 4, false, NULL, 0, false, &plan);
    assert_true(plan.handled_fs == (abi1_all | LANDLOCK_ACCESS_FS_REFER |
                                    LANDLOCK_ACCESS_FS_TRUNCATE));
    assert_true(plan.rules[1].access == plan.handled_fs);
    assert_true(plan.rules[2].access == (dev | LANDLOCK_ACCESS_FS_TRUNCATE));
    sp_landlock_plan_free(&plan);

    /* ABI 1: neither refer nor truncate. */
    build_ok(1, class_paths, 4, false, NULL, 0, false, &plan);
    assert_true(plan.handled_fs == abi1_all);
    assert_true(plan.rules[0].access == RE_RIGHTS);
    assert_true(plan.rules[1].access == abi1_all);
    assert_true(plan.rules[2].access == dev);
    assert_true(plan.rules[3].access == proc);
    sp_landlock_plan_free(&plan);
}

static void test_net_and_scope_masks(void **state)
{
    struct sp_landlock_plan plan = {0};
    const uint16_t ports[] = {80, 443};
    const uint64_t tcp =
        LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
    const uint64_t scopes =
        LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
    (void)state;

    build_ok(7, NULL, 0, true, ports, 2, true, &plan);
    assert_true(plan.handled_net == tcp);
    assert_true(plan.scoped == scopes);
    assert_int_equal(plan.n_ports, 2);
    assert_int_equal(plan.ports[0], 80);
    assert_int_equal(plan.ports[1], 443);
    sp_landlock_plan_free(&plan);

    /* Network allowed: ports have nothing to open up. */
    build_ok(7, NULL, 0, false, ports, 2, false, &plan);
    assert_true(plan.handled_net == 0 && plan.scoped == 0);
    assert_int_equal(plan.n_ports, 0);
    sp_landlock_plan_free(&plan);

    build_ok(5, NULL, 0, true, ports, 2, true, &plan);
    assert_true(plan.handled_net == tcp);
    assert_true(plan.scoped == 0);
    sp_landlock_plan_free(&plan);

    build_ok(3, NULL, 0, true, ports, 2, true, &plan);
    assert_true(plan.handled_net == 0 && plan.scoped == 0);
    assert_int_equal(plan.n_ports, 0);
    sp_landlock_plan_free(&plan);
}

static void test_build_errors(void **state)
{
    struct sp_landlock_plan plan = {0};
    sp_error err = {0};
    const struct sp_ll_path rel[] = {{"/usr", SP_LL_READ_EXEC},
                                     {"usr", SP_LL_READ_EXEC}};
    const struct sp_ll_path badcls[] = {{"/usr", (enum sp_ll_class)99}};
    uint16_t many[SP_MAX_PORTS + 1] = {0};
    (void)state;

    assert_int_equal(sp_landlock_plan_build(7, rel, 2, false, NULL, 0, false,
                                            &plan, &err),
                     -EINVAL);
    assert_true(strstr(err.message, "usr") != NULL);
    assert_null(plan.rules);
    assert_int_equal(plan.n_rules, 0);

    assert_int_equal(sp_landlock_plan_build(7, badcls, 1, false, NULL, 0,
                                            false, &plan, &err),
                     -EINVAL);
    assert_int_equal(sp_landlock_plan_build(-1, NULL, 0, false, NULL, 0,
                                            false, &plan, &err),
                     -EINVAL);
    assert_int_equal(sp_landlock_plan_build(7, NULL, 0, true, many,
                                            SP_MAX_PORTS + 1, false, &plan,
                                            &err),
                     -EINVAL);
    assert_true(strstr(err.message, "ports") != NULL);
    /* Freeing twice and freeing NULL are harmless. */
    sp_landlock_plan_free(&plan);
    sp_landlock_plan_free(&plan);
    sp_landlock_plan_free(NULL);
}

/* ---- enforcement ------------------------------------------------------- */

static int apply_plan(const struct sp_landlock_plan *plan)
{
    int idx = 0;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return 90;
    if (sp_landlock_apply(plan, &idx) != 0)
        return 91;
    if (idx != -1)
        return 92;
    return 0;
}

static int try_create(const char *dir, const char *name)
{
    char path[512];
    int fd = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, "x", 1) != 1) {
        close(fd);
        return -EIO;
    }
    close(fd);
    return 0;
}

struct fs_ctx {
    int abi;
    char rw[64];
    char ro[64];
    char ro_file[96];
    const char *secret; /* readable without Landlock, outside the rules */
};

static int fs_child(void *p)
{
    struct fs_ctx *c = p;
    struct sp_ll_path paths[] = {
        {c->rw, SP_LL_READ_WRITE},
        {"/usr", SP_LL_READ_EXEC},
        {c->ro, SP_LL_READ_EXEC},
        /* A regular file with READ_WRITE: must be masked to file rights. */
        {c->ro_file, SP_LL_READ_WRITE},
        {"/nonexistent-sandpit-landlock-test", SP_LL_READ_EXEC},
    };
    struct sp_landlock_plan plan = {0};
    char path[128];
    int fd = -1;
    int r = 0;

    if (sp_landlock_plan_build(c->abi, paths, SP_ARRAY_SIZE(paths), false,
                               NULL, 0, false, &plan, NULL) < 0)
        return 89;
    r = apply_plan(&plan);
    if (r)
        return r;

    /* Outside every rule: denied. */
    fd = open(c->secret, O_RDONLY | O_CLOEXEC);
    CHECK(1, fd < 0 && errno == EACCES);
    /* READ_WRITE dir: create and write. */
    CHECK(2, try_create(c->rw, "new") == 0);
    /* READ_EXEC dir: no new file. */
    CHECK(3, try_create(c->ro, "new") == -EACCES);
    /* READ_EXEC dir: listing and reading work. */
    fd = open("/usr", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(4, fd >= 0);
    close(fd);
    fd = open(c->ro_file, O_RDONLY | O_CLOEXEC);
    CHECK(5, fd >= 0);
    close(fd);
    /* The file rule: writable although its directory is read-only. */
    fd = open(c->ro_file, O_WRONLY | O_CLOEXEC);
    CHECK(6, fd >= 0);
    close(fd);
    /* Directories: made where READ_WRITE, not where READ_EXEC. */
    snprintf(path, sizeof(path), "%s/sub", c->rw);
    CHECK(7, mkdir(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/sub", c->ro);
    CHECK(8, mkdir(path, 0700) < 0 && errno == EACCES);
    return 0;
}

static void fs_setup(struct fs_ctx *c, int abi)
{
    int fd = -1;

    memset(c, 0, sizeof(*c));
    c->abi = abi;
    strcpy(c->rw, "/tmp/sp-ll-rw-XXXXXX");
    strcpy(c->ro, "/tmp/sp-ll-ro-XXXXXX");
    assert_non_null(mkdtemp(c->rw));
    assert_non_null(mkdtemp(c->ro));
    snprintf(c->ro_file, sizeof(c->ro_file), "%s/file.txt", c->ro);
    fd = open(c->ro_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    c->secret = access("/etc/hostname", R_OK) == 0 ? "/etc/hostname"
                                                    : "/etc/passwd";
}

static void fs_teardown(struct fs_ctx *c)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/new", c->rw);
    unlink(path);
    snprintf(path, sizeof(path), "%s/sub", c->rw);
    rmdir(path);
    /* Only there if the test failed. */
    snprintf(path, sizeof(path), "%s/new", c->ro);
    unlink(path);
    snprintf(path, sizeof(path), "%s/sub", c->ro);
    rmdir(path);
    unlink(c->ro_file);
    rmdir(c->rw);
    rmdir(c->ro);
}

static void test_fs_enforced(void **state)
{
    struct fs_ctx c;
    int r = 0;
    (void)state;

    if (kernel_abi < 1)
        skip();
    fs_setup(&c, kernel_abi);
    r = run_child(fs_child, &c);
    fs_teardown(&c);
    if (r)
        fail_msg("fs child (abi %d) failed check %d", kernel_abi, r);
}

static void test_fs_enforced_abi1(void **state)
{
    struct fs_ctx c;
    int r = 0;
    (void)state;

    if (kernel_abi < 1)
        skip();
    fs_setup(&c, 1);
    r = run_child(fs_child, &c);
    fs_teardown(&c);
    if (r)
        fail_msg("fs child (abi 1) failed check %d", r);
}

/* A TCP socket on 127.0.0.1; listening when `listen_too`. Returns the fd,
 * the port in *ret_port. */
static int tcp_socket(bool listen_too, uint16_t *ret_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *ret_port = ntohs(sa.sin_port);
    return fd;
}

static int tcp_try(bool do_connect, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = 0;

    if (fd < 0)
        return -errno;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (do_connect)
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    else
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    r = r < 0 ? -errno : 0;
    close(fd);
    return r;
}

struct net_ctx {
    int abi;
    uint16_t denied_listen, allowed_listen, denied_bind, allowed_bind;
};

static int net_child(void *p)
{
    struct net_ctx *c = p;
    uint16_t ports[] = {c->allowed_listen, c->allowed_bind};
    struct sp_landlock_plan plan = {0};
    int r = 0;

    if (sp_landlock_plan_build(c->abi, NULL, 0, true, ports, 2, false, &plan,
                               NULL) < 0)
        return 89;
    r = apply_plan(&plan);
    if (r)
        return r;
    if (c->abi >= 4) {
        CHECK(1, tcp_try(true, c->denied_listen) == -EACCES);
        CHECK(2, tcp_try(false, c->denied_bind) == -EACCES);
    } else {
        /* Not enforced below ABI 4: the same calls go through. */
        CHECK(3, tcp_try(true, c->denied_listen) == 0);
        CHECK(4, tcp_try(false, c->denied_bind) == 0);
    }
    CHECK(5, tcp_try(true, c->allowed_listen) == 0);
    CHECK(6, tcp_try(false, c->allowed_bind) == 0);
    return 0;
}

static void run_net(int abi)
{
    struct net_ctx c = {.abi = abi};
    int l1 = tcp_socket(true, &c.denied_listen);
    int l2 = tcp_socket(true, &c.allowed_listen);
    /* Free ports for bind: taken, read, released. */
    int b1 = tcp_socket(false, &c.denied_bind);
    int b2 = tcp_socket(false, &c.allowed_bind);
    int r = 0;

    close(b1);
    close(b2);
    r = run_child(net_child, &c);
    close(l1);
    close(l2);
    if (r)
        fail_msg("net child (abi %d) failed check %d", abi, r);
}

static void test_tcp_enforced(void **state)
{
    (void)state;
    if (kernel_abi < 4)
        skip();
    run_net(kernel_abi);
}

static void test_tcp_not_enforced_abi3(void **state)
{
    (void)state;
    if (kernel_abi < 1)
        skip();
    run_net(3);
}

struct scope_ctx {
    int abi;
    struct sockaddr_un addr;
    socklen_t addr_len;
};

static int scope_child(void *p)
{
    struct scope_ctx *c = p;
    struct sp_landlock_plan plan = {0};
    int fd = -1;
    int r = 0;

    if (sp_landlock_plan_build(c->abi, NULL, 0, false, NULL, 0, true, &plan,
                               NULL) < 0)
        return 89;
    r = apply_plan(&plan);
    if (r)
        return r;
    /* Inside the domain: always allowed. */
    CHECK(1, kill(getpid(), 0) == 0);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(2, fd >= 0);
    r = connect(fd, (struct sockaddr *)&c->addr, c->addr_len) < 0 ? -errno : 0;
    close(fd);
    if (c->abi >= 6) {
        CHECK(3, kill(getppid(), 0) < 0 && errno == EPERM);
        CHECK(4, r == -EPERM);
    } else {
        CHECK(5, kill(getppid(), 0) == 0);
        CHECK(6, r == 0);
    }
    return 0;
}

static void run_scope(int abi)
{
    struct scope_ctx c = {.abi = abi};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = 0;
    int n = 0;

    assert_true(fd >= 0);
    c.addr.sun_family = AF_UNIX;
    /* Abstract name: a leading NUL, not NUL-terminated. */
    n = snprintf(c.addr.sun_path + 1, sizeof(c.addr.sun_path) - 1,
                 "sandpit-landlock-test-%d", (int)getpid());
    c.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    assert_int_equal(bind(fd, (struct sockaddr *)&c.addr, c.addr_len), 0);
    assert_int_equal(listen(fd, 8), 0);
    r = run_child(scope_child, &c);
    close(fd);
    if (r)
        fail_msg("scope child (abi %d) failed check %d", abi, r);
}

static void test_scope_enforced(void **state)
{
    (void)state;
    if (kernel_abi < 6)
        skip();
    run_scope(kernel_abi);
}

static void test_scope_not_enforced_abi5(void **state)
{
    (void)state;
    if (kernel_abi < 1)
        skip();
    run_scope(5);
}

static int noop_child(void *p)
{
    const char *secret = p;
    struct sp_landlock_plan plan = {0};
    int idx = 0;
    int fd = -1;

    if (sp_landlock_plan_build(0, class_paths, 4, true, NULL, 0, true, &plan,
                               NULL) < 0)
        return 89;
    CHECK(1, sp_landlock_apply(&plan, &idx) == 0 && idx == -1);
    fd = open(secret, O_RDONLY | O_CLOEXEC);
    CHECK(2, fd >= 0);
    close(fd);
    sp_landlock_plan_free(&plan);
    return 0;
}

static void test_abi0_noop(void **state)
{
    int r = 0;
    (void)state;

    r = run_child(noop_child, "/etc/passwd");
    if (r)
        fail_msg("abi 0 child failed check %d", r);
}

static int badpath_child(void *p)
{
    const struct sp_ll_path paths[] = {
        {"/usr", SP_LL_READ_EXEC},
        {"/etc/passwd/not-a-dir", SP_LL_READ_EXEC},
    };
    struct sp_landlock_plan plan = {0};
    int idx = 0;
    int fd = -1;
    (void)p;

    if (sp_landlock_plan_build(kernel_abi, paths, 2, false, NULL, 0, false,
                               &plan, NULL) < 0)
        return 89;
    CHECK(1, sp_landlock_apply(&plan, &idx) == -ENOTDIR);
    CHECK(2, idx == 1);
    /* A failed apply restricts nothing. */
    fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    CHECK(3, fd >= 0);
    close(fd);
    return 0;
}

static void test_apply_failed_index(void **state)
{
    int r = 0;
    (void)state;

    if (kernel_abi < 1)
        skip();
    r = run_child(badpath_child, NULL);
    if (r)
        fail_msg("bad path child failed check %d", r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_net_and_scope_masks),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_abi0_noop),
        cmocka_unit_test(test_apply_failed_index),
        cmocka_unit_test(test_fs_enforced),
        cmocka_unit_test(test_fs_enforced_abi1),
        cmocka_unit_test(test_tcp_enforced),
        cmocka_unit_test(test_tcp_not_enforced_abi3),
        cmocka_unit_test(test_scope_enforced),
        cmocka_unit_test(test_scope_not_enforced_abi5),
    };

    kernel_abi = sp_landlock_abi();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
