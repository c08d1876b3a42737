/* test_wslayers.c — a workspace's copy-on-write layers as data: layer ids,
 * the plan rewrite (overlays, the root skeleton), and diff over hand-made
 * upper dirs (whiteouts, opaque dirs, symlinks, fifos, bounds). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mountplan.h"
#include "policy.h"
#include "state.h"
#include "util.h"
#include "wsdiff.h"
#include "wslayers.h"

static void test_layer_ids(void **st)
{
    (void)st;
    char buf[300], mp[300];
    assert_int_equal(sp_ws_layer_id("/", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "root");
    assert_int_equal(sp_ws_layer_id("/etc/ssl", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "etc+ssl");
    assert_int_equal(sp_ws_layer_mountpoint(buf, mp, sizeof(mp)), 0);
    assert_string_equal(mp, "/etc/ssl");
    assert_int_equal(sp_ws_layer_mountpoint("root", mp, sizeof(mp)), 0);
    assert_string_equal(mp, "/");
    /* hostile or odd */
    assert_true(sp_ws_layer_id("relative", buf, sizeof(buf)) < 0);
    assert_true(sp_ws_layer_id("/a+b", buf, sizeof(buf)) < 0);
    assert_true(sp_ws_layer_id("/a//b", buf, sizeof(buf)) < 0);
    assert_true(sp_ws_layer_id("/a/", buf, sizeof(buf)) < 0);
    assert_true(sp_ws_layer_mountpoint(".", mp, sizeof(mp)) < 0);
    assert_true(sp_ws_layer_mountpoint("..", mp, sizeof(mp)) < 0);
    assert_true(sp_ws_layer_mountpoint("a/b", mp, sizeof(mp)) < 0);
    assert_true(sp_ws_layer_mountpoint("", mp, sizeof(mp)) < 0);
    char big[400];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    assert_true(sp_ws_layer_id(big, buf, sizeof(buf)) < 0);
}

static char tmpl[64];

static int wsfd_new(void)
{
    snprintf(tmpl, sizeof(tmpl), "/tmp/test_wslayers.XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    int fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(mkdirat(fd, "workspace", 0755), 0);
    return fd;
}

static void wsfd_done(int fd)
{
    close(fd);
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sp_rm_rf_at(dfd, tmpl + 5);
    close(dfd);
}

static const struct sp_mount_op *find(const struct sp_mount_plan *pl,
                                      const char *dst)
{
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->ops[i].dst, dst) == 0)
            return &pl->ops[i];
    return NULL;
}

static void plan_for(bool ro_system, struct sp_mount_plan *pl,
                     struct sp_ws_layers *ly, int *ret_fd)
{
    int fd = wsfd_new();
    sp_error err = {0};
    assert_int_equal(sp_ws_layers_init(fd, NULL, ro_system, &err), 0);
    char datadir[128];
    snprintf(datadir, sizeof(datadir), "%s/workspace", tmpl);
    struct sp_policy *p = sp_policy_new();
    char json[256];
    snprintf(json, sizeof(json), "{\"workspace\": \"%s\"}", datadir);
    assert_int_equal(sp_policy_apply_json_text(p, json, "t", &err), 0);
    assert_int_equal(sp_policy_finalize(p, &err), 0);
    assert_int_equal(sp_ws_layers_load(datadir, ly, &err), 1);
    assert_int_equal(ly->ro_system, ro_system);
    assert_int_equal(sp_mount_plan_build_at(p, "/workspace", pl, &err), 0);
    assert_int_equal(sp_ws_layers_apply(ly, "/workspace", true, pl, &err), 0);
    sp_policy_free(p);
    *ret_fd = fd;
}

static void test_plan_cow(void **st)
{
    (void)st;
    struct sp_mount_plan pl;
    struct sp_ws_layers ly;
    int fd;
    plan_for(false, &pl, &ly, &fd);
    assert_non_null(pl.root);
    assert_int_equal(pl.root->kind, SP_OP_OVERLAY);
    assert_true(pl.userxattr);
    const struct sp_mount_op *usr = find(&pl, "/usr");
    assert_non_null(usr);
    assert_int_equal(usr->kind, SP_OP_OVERLAY);
    assert_string_equal(usr->src, "/usr");
    assert_non_null(strstr(usr->upper, "/layers/up/usr/upper"));
    const struct sp_mount_op *ws = find(&pl, "/workspace");
    assert_int_equal(ws->kind, SP_OP_OVERLAY);
    assert_non_null(strstr(ws->src, "/layers/empty"));
    assert_non_null(strstr(ws->upper, "/workspace"));
    const struct sp_mount_op *home = find(&pl, SP_SANDBOX_HOME);
    assert_int_equal(home->kind, SP_OP_OVERLAY);
    /* copies, symlinks and dirs went into the skeleton */
    for (size_t i = 0; i < pl.n; i++) {
        assert_int_not_equal(pl.ops[i].kind, SP_OP_COPY);
        assert_int_not_equal(pl.ops[i].kind, SP_OP_SYMLINK);
        assert_int_not_equal(pl.ops[i].kind, SP_OP_DIR);
    }
    struct stat sb;
    assert_int_equal(fstatat(fd, "layers/base/etc/passwd", &sb, 0), 0);
    assert_int_equal(fstatat(fd, "layers/base/usr", &sb, 0), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(fstatat(fd, "layers/home/.config", &sb, 0), 0);
    /* a second start finds it all in place */
    sp_mount_plan_free(&pl);
    sp_error err = {0};
    struct sp_policy *p = sp_policy_new();
    char json[256];
    snprintf(json, sizeof(json), "{\"workspace\": \"%s/workspace\"}", tmpl);
    assert_int_equal(sp_policy_apply_json_text(p, json, "t", &err), 0);
    assert_int_equal(sp_policy_finalize(p, &err), 0);
    assert_int_equal(sp_mount_plan_build_at(p, "/workspace", &pl, &err), 0);
    assert_int_equal(sp_ws_layers_apply(&ly, "/workspace", false, &pl, &err), 0);
    assert_false(pl.userxattr);
    sp_policy_free(p);
    sp_mount_plan_free(&pl);
    sp_ws_layers_free(&ly);
    wsfd_done(fd);
}

static void test_plan_ro_system(void **st)
{
    (void)st;
    struct sp_mount_plan pl;
    struct sp_ws_layers ly;
    int fd;
    plan_for(true, &pl, &ly, &fd);
    assert_null(pl.root);
    const struct sp_mount_op *usr = find(&pl, "/usr");
    assert_int_equal(usr->kind, SP_OP_BIND);
    assert_true(usr->ro);
    assert_int_equal(find(&pl, "/workspace")->kind, SP_OP_OVERLAY);
    assert_int_equal(find(&pl, SP_SANDBOX_HOME)->kind, SP_OP_OVERLAY);
    sp_mount_plan_free(&pl);
    sp_ws_layers_free(&ly);
    wsfd_done(fd);
}

static void test_bad_from(void **st)
{
    (void)st;
    int fd = wsfd_new();
    sp_error err = {0};
    assert_true(sp_ws_layers_init(fd, "/nonexistent/x", false, &err) < 0);
    assert_int_equal(err.kind, SP_ERR_USAGE);
    assert_true(sp_ws_layers_init(fd, "/etc/passwd", false, &err) < 0);
    wsfd_done(fd);
}

static bool has(json_t *o, const char *kind, const char *path)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, kind), i, v)
        if (strcmp(json_string_value(v), path) == 0)
            return true;
    return false;
}

static void writef(int dfd, const char *name)
{
    int f = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    close(f);
}

static void test_diff(void **st)
{
    (void)st;
    int fd = wsfd_new();
    char from[128];
    snprintf(from, sizeof(from), "%s/from", tmpl);
    assert_int_equal(mkdir(from, 0755), 0);
    int lo = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    writef(lo, "keep");
    writef(lo, "edit");
    writef(lo, "gone");
    assert_int_equal(mkdirat(lo, "od", 0755), 0);
    int od = openat(lo, "od", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    writef(od, "old1");
    writef(od, "again");
    close(od);
    sp_error err = {0};
    assert_int_equal(sp_ws_layers_init(fd, from, false, &err), 0);

    int up = openat(fd, "workspace", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    writef(up, "edit");
    writef(up, "new");
    /* a whiteout; mknod of 0/0 is allowed without CAP_MKNOD */
    bool whiteouts = mknodat(up, "gone", S_IFCHR | 0, makedev(0, 0)) == 0;
    /* an opaque directory hiding od/ */
    assert_int_equal(mkdirat(up, "od", 0755), 0);
    od = openat(up, "od", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool opaque = fsetxattr(od, "user.overlay.opaque", "y", 1, 0) == 0;
    writef(od, "again");
    close(od);
    /* hostile: a symlink to the lower dir and to /, a fifo */
    assert_int_equal(symlinkat("/", up, "rootlink"), 0);
    assert_int_equal(symlinkat(from, up, "fromlink"), 0);
    assert_int_equal(mkfifoat(up, "fifo", 0644), 0);
    /* deeper than the bound */
    int cur = dup(up);
    for (int i = 0; i < SP_DIFF_MAX_DEPTH + 5; i++) {
        assert_int_equal(mkdirat(cur, "d", 0755), 0);
        int n = openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(cur);
        cur = n;
    }
    close(cur);
    /* a name that is not UTF-8 */
    writef(up, "bad\xff");

    char *text = sp_ws_diff_json_at(fd, "t", &err);
    assert_non_null(text);
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_true(has(o, "added", "/workspace/new"));
    assert_true(has(o, "modified", "/workspace/edit"));
    assert_false(has(o, "modified", "/workspace/keep"));
    assert_true(has(o, "added", "/workspace/rootlink"));
    assert_true(has(o, "added", "/workspace/fromlink"));
    assert_true(has(o, "added", "/workspace/fifo"));
    assert_true(has(o, "added", "/workspace/bad\\xff"));
    assert_false(has(o, "added", "/workspace/fromlink/keep"));
    assert_true(json_is_true(json_object_get(o, "truncated")));
    if (whiteouts)
        assert_true(has(o, "deleted", "/workspace/gone"));
    if (opaque) {
        assert_true(has(o, "deleted", "/workspace/od/old1"));
        assert_false(has(o, "deleted", "/workspace/od/again"));
        assert_true(has(o, "modified", "/workspace/od/again"));
    }
    json_decref(o);
    free(text);

    /* clearing empties the upper dirs */
    assert_int_equal(sp_ws_layers_clear(fd, &err), 0);
    text = sp_ws_diff_json_at(fd, "t", &err);
    o = json_loads(text, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "added")), 0);
    assert_int_equal(json_array_size(json_object_get(o, "deleted")), 0);
    json_decref(o);
    free(text);
    close(up);
    close(lo);
    wsfd_done(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_ids),
        cmocka_unit_test(test_plan_cow),
        cmocka_unit_test(test_plan_ro_system),
        cmocka_unit_test(test_bad_from),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
