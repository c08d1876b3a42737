/* test_wslayers.c — a workspace's copy-on-write layers as data: layer ids,
 * the plan rewrite (overlays, the root skeleton), and diff over hand-made
 * upper dirs (whiteouts, opaque dirs, symlinks, fifos, bounds). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
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
#include "wsskel.h"

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

static char tmpl[64];  /* a state dir */
static char wsdir[96]; /* its workspaces/w */

static int wsfd_new(void)
{
    snprintf(tmpl, sizeof(tmpl), "/tmp/test_wslayers.XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    snprintf(wsdir, sizeof(wsdir), "%s/workspaces", tmpl);
    assert_int_equal(mkdir(wsdir, 0700), 0);
    snprintf(wsdir, sizeof(wsdir), "%s/workspaces/w", tmpl);
    assert_int_equal(mkdir(wsdir, 0700), 0);
    int fd = open(wsdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

static int count_entries(const char *dir, const char *sub)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void plan_for(bool ro_system, struct sp_mount_plan *pl,
                     struct sp_ws_layers *ly, int *ret_fd)
{
    int fd = wsfd_new();
    sp_error err = {0};
    assert_int_equal(sp_ws_layers_init(fd, NULL, ro_system, &err), 0);
    char datadir[160];
    snprintf(datadir, sizeof(datadir), "%s/workspace", wsdir);
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
    /* HOME is part of the root overlay: no mount of its own */
    assert_null(find(&pl, SP_SANDBOX_HOME));
    /* copies, symlinks and dirs went into the skeleton */
    for (size_t i = 0; i < pl.n; i++) {
        assert_int_not_equal(pl.ops[i].kind, SP_OP_COPY);
        assert_int_not_equal(pl.ops[i].kind, SP_OP_SYMLINK);
        assert_int_not_equal(pl.ops[i].kind, SP_OP_DIR);
    }
    /* the small /etc directories were folded into the skeleton */
    struct stat sb;
    if (stat("/etc/ld.so.conf.d", &sb) == 0) {
        assert_null(find(&pl, "/etc/ld.so.conf.d"));
        assert_int_equal(fstatat(fd, "layers/base/etc/ld.so.conf.d", &sb, 0),
                         0);
        assert_true(S_ISDIR(sb.st_mode));
    }
    /* ... a big one (past SP_WS_SKEL_TREE_MAX_ENTRIES) stays an overlay */
    if (stat("/etc/alternatives", &sb) == 0) {
        const struct sp_mount_op *alt = find(&pl, "/etc/alternatives");
        assert_non_null(alt);
        assert_int_equal(alt->kind, SP_OP_OVERLAY);
    }
    /* layers/base is a link to the shared skeleton under skel/ */
    char target[128];
    ssize_t k = readlinkat(fd, "layers/base", target, sizeof(target) - 1);
    assert_true(k > 0);
    target[k] = '\0';
    assert_non_null(strstr(target, "../../../skel/"));
    assert_int_equal(fstatat(fd, "layers/base/etc/passwd", &sb, 0), 0);
    assert_int_equal(fstatat(fd, "layers/base/usr", &sb, 0), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(
        fstatat(fd, "layers/base" SP_SANDBOX_HOME "/.config", &sb, 0), 0);
    assert_int_equal(fstatat(fd, "layers/base" SP_SANDBOX_HOME, &sb, 0), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    /* a second start finds it all in place */
    sp_mount_plan_free(&pl);
    sp_error err = {0};
    struct sp_policy *p = sp_policy_new();
    char json[256];
    snprintf(json, sizeof(json), "{\"workspace\": \"%s/workspace\"}", wsdir);
    assert_int_equal(sp_policy_apply_json_text(p, json, "t", &err), 0);
    assert_int_equal(sp_policy_finalize(p, &err), 0);
    assert_int_equal(sp_mount_plan_build_at(p, "/workspace", &pl, &err), 0);
    assert_int_equal(sp_ws_layers_apply(&ly, "/workspace", false, &pl, &err), 0);
    assert_false(pl.userxattr);
    /* ... the same skeleton: one dir and its manifest */
    char again[128];
    k = readlinkat(fd, "layers/base", again, sizeof(again) - 1);
    assert_true(k > 0);
    again[k] = '\0';
    assert_string_equal(again, target);
    assert_int_equal(count_entries(tmpl, "skel"), 2);
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

static void put(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void base_target(int fd, char *buf, size_t len)
{
    ssize_t k = readlinkat(fd, "layers/base", buf, len - 1);
    assert_true(k > 0);
    buf[k] = '\0';
}

static void test_skel(void **st)
{
    (void)st;
    int fd = wsfd_new();
    assert_int_equal(mkdirat(fd, "layers", 0700), 0);
    int lfd = openat(fd, "layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char src[128], tree[160];
    snprintf(src, sizeof(src), "%s/src", tmpl);
    assert_int_equal(mkdir(src, 0755), 0);
    snprintf(tree, sizeof(tree), "%s/tree", src);
    assert_int_equal(mkdir(tree, 0755), 0);
    put(src, "conf", "v1\n");
    put(tree, "a", "aaa");
    char sub[192];
    snprintf(sub, sizeof(sub), "%s/sub", tree);
    /* an ordinary user's tree may hold its own 0700 dir; as root a dir
     * not open to all keeps the tree out of the skeleton (below) */
    mode_t submode = geteuid() == 0 ? 0755 : 0700;
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(chmod(sub, submode), 0);
    put(sub, "b", "bbb");
    char p[256];
    snprintf(p, sizeof(p), "%s/link", tree);
    assert_int_equal(symlink("../conf", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", tree);
    assert_int_equal(mkfifo(p, 0600), 0);
    char conf[200];
    snprintf(conf, sizeof(conf), "%s/conf", src);

    sp_error err = {0};
    char t1[128], t2[128], t3[128];
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            put(src, "conf", "v2, longer\n"); /* a host file changed */
        struct sp_skel *sk = sp_skel_new();
        assert_int_equal(sp_skel_point(sk, "usr", 0755, false), 0);
        assert_int_equal(sp_skel_link(sk, "usr/bin", "bin"), 0);
        assert_int_equal(sp_skel_copy(sk, conf, "etc/conf", 0644, NULL), 0);
        assert_int_equal(
            sp_skel_copy(sk, "/nonexistent/x", "etc/x", 0644, NULL), 0);
        assert_int_equal(sp_skel_tree(sk, tree, "etc/tree"), 1);
        assert_int_equal(sp_skel_commit(sk, lfd, &err), 0);
        sp_skel_free(sk);
        base_target(fd, round == 0 ? t1 : round == 1 ? t2 : t3, 128);
    }
    assert_string_equal(t1, t2);        /* reused */
    assert_string_not_equal(t1, t3);    /* rebuilt on a change */
    struct stat sb;
    assert_int_equal(fstatat(fd, "layers/base/usr", &sb, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISDIR(sb.st_mode));
    char buf[64] = {0};
    int f = openat(fd, "layers/base/etc/conf", O_RDONLY | O_CLOEXEC);
    assert_true(f >= 0);
    assert_int_equal(read(f, buf, sizeof(buf) - 1), 11);
    close(f);
    assert_string_equal(buf, "v2, longer\n");
    assert_int_equal(fstatat(fd, "layers/base/etc/x", &sb, 0), -1);
    assert_int_equal(fstatat(fd, "layers/base/etc/tree/sub/b", &sb, 0), 0);
    assert_int_equal(fstatat(fd, "layers/base/etc/tree/sub", &sb, 0), 0);
    assert_int_equal(sb.st_mode & 0777, submode);
    if (geteuid() == 0) {
        /* root-only files stay nobody's in a root caller's ID-mapped
         * skeleton: such a tree is not folded in (docs/security.md) */
        char secret[256];
        snprintf(secret, sizeof(secret), "%s/key", sub);
        put(sub, "key", "root only");
        assert_int_equal(chmod(secret, 0600), 0);
        struct sp_skel *sk0 = sp_skel_new();
        assert_int_equal(sp_skel_tree(sk0, tree, "etc/tree"), 0);
        sp_skel_free(sk0);
        assert_int_equal(unlink(secret), 0);
        assert_int_equal(chmod(sub, 0710), 0);
        sk0 = sp_skel_new();
        assert_int_equal(sp_skel_tree(sk0, tree, "etc/tree"), 0);
        sp_skel_free(sk0);
        assert_int_equal(chmod(sub, submode), 0);
    }
    assert_int_equal(fstatat(fd, "layers/base/etc/tree/link", &sb,
                             AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISLNK(sb.st_mode));
    /* fifos are not copied */
    assert_int_equal(fstatat(fd, "layers/base/etc/tree/fifo", &sb,
                             AT_SYMLINK_NOFOLLOW), -1);

    /* a stored manifest that differs under the same key (a collision, a
     * damaged file): built under another name, never reused wrongly */
    char m[200];
    snprintf(m, sizeof(m), "skel/%s.m", strrchr(t3, '/') + 1);
    int sfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    f = openat(sfd, m, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(f >= 0);
    assert_int_equal(write(f, "x", 1), 1);
    close(f);
    struct sp_skel *sk = sp_skel_new();
    assert_int_equal(sp_skel_copy(sk, conf, "etc/conf", 0644, NULL), 0);
    assert_int_equal(sp_skel_tree(sk, tree, "etc/tree"), 1);
    assert_int_equal(sp_skel_point(sk, "usr", 0755, false), 0);
    assert_int_equal(sp_skel_link(sk, "usr/bin", "bin"), 0);
    assert_int_equal(sp_skel_copy(sk, "/nonexistent/x", "etc/x", 0644, NULL),
                     0);
    assert_int_equal(sp_skel_commit(sk, lfd, &err), 0);
    sp_skel_free(sk);

    /* past the size bound a tree is not folded, and nothing is recorded */
    snprintf(p, sizeof(p), "%s/big", tree);
    f = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    assert_int_equal(ftruncate(f, (off_t)SP_WS_SKEL_TREE_MAX_BYTES + 1), 0);
    close(f);
    sk = sp_skel_new();
    assert_int_equal(sp_skel_tree(sk, tree, "etc/tree"), 0);
    sp_skel_free(sk);

    /* ... and past the entry bound (counted in a subdirectory too) */
    assert_int_equal(unlink(p), 0);
    char many[220];
    snprintf(many, sizeof(many), "%s/many", tree);
    assert_int_equal(mkdir(many, 0755), 0);
    for (int i = 0; i < SP_WS_SKEL_TREE_MAX_ENTRIES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        put(many, name, "");
    }
    sk = sp_skel_new();
    assert_int_equal(sp_skel_tree(sk, tree, "etc/tree"), 0);
    sp_skel_free(sk);

    /* gc: what no workspace points at goes (once past its grace) */
    char cur[128];
    base_target(fd, cur, sizeof(cur));
    assert_int_equal(count_entries(tmpl, "skel"), 6);
    struct timespec old[2] = {{0, UTIME_OMIT}, {1000, 0}};
    DIR *d = opendir(strcat(strcpy(p, tmpl), "/skel"));
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            utimensat(dirfd(d), de->d_name, old, AT_SYMLINK_NOFOLLOW);
    closedir(d);
    sp_skel_gc(tmpl);
    assert_int_equal(count_entries(tmpl, "skel"), 2);
    base_target(fd, buf, sizeof(buf));
    assert_string_equal(buf, cur);
    assert_int_equal(fstatat(fd, "layers/base/etc/conf", &sb, 0), 0);
    close(sfd);
    close(lfd);
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
    char from[160];
    snprintf(from, sizeof(from), "%s/from", wsdir);
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
        cmocka_unit_test(test_skel),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
