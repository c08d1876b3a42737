/* test_mountplan.c — the mount plan as data: defaults present, user rules
 * replacing defaults, hides, parents before children. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mountplan.h"
#include "util.h"

static const struct sp_mount_op *find(const struct sp_mount_plan *pl,
                                      const char *dst)
{
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->ops[i].dst, dst) == 0)
            return &pl->ops[i];
    return NULL;
}

static size_t index_of(const struct sp_mount_plan *pl, const char *dst)
{
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->ops[i].dst, dst) == 0)
            return i;
    return (size_t)-1;
}

static struct sp_policy *policy_with(const char *json)
{
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", json);
    if (sp_policy_apply_json_text(p, buf, "t", &err) < 0)
        fail_msg("%s", err.message);
    if (sp_policy_finalize(p, &err) < 0)
        fail_msg("%s", err.message);
    return p;
}

static void test_defaults(void **state)
{
    (void)state;
    struct sp_policy *p = policy_with("{\"workspace\": \"/tmp\"}");
    struct sp_mount_plan pl;
    sp_error err = {0};
    assert_int_equal(sp_mount_plan_build(p, &pl, &err), 0);
    const struct sp_mount_op *usr = find(&pl, "/usr");
    assert_non_null(usr);
    assert_int_equal(usr->kind, SP_OP_BIND);
    assert_true(usr->ro);
    assert_non_null(find(&pl, "/proc"));
    assert_non_null(find(&pl, "/dev"));
    const struct sp_mount_op *ws = find(&pl, "/tmp");
    /* The workspace replaced the default /tmp tmpfs. */
    assert_int_equal(ws->kind, SP_OP_BIND);
    assert_false(ws->ro);
    assert_string_equal(pl.workdir, "/tmp");
    /* Nothing of the host's root, $HOME or /root is planned. */
    assert_null(find(&pl, "/"));
    assert_null(find(&pl, "/root"));
    assert_null(find(&pl, "/var"));
    /* merged /usr hosts: /bin is recreated as a symlink */
    struct stat st;
    if (lstat("/bin", &st) == 0 && S_ISLNK(st.st_mode)) {
        const struct sp_mount_op *bin = find(&pl, "/bin");
        assert_non_null(bin);
        assert_int_equal(bin->kind, SP_OP_SYMLINK);
    }
    /* Parents before children. */
    for (size_t i = 0; i < pl.n; i++)
        for (size_t j = i + 1; j < pl.n; j++)
            if (sp_path_has_prefix(pl.ops[i].dst, pl.ops[j].dst) &&
                strcmp(pl.ops[i].dst, pl.ops[j].dst) != 0)
                fail_msg("%s comes before its parent %s", pl.ops[i].dst,
                         pl.ops[j].dst);
    /* /dev is set up before /proc (masks bind the new /dev/null). */
    assert_true(index_of(&pl, "/dev") < index_of(&pl, "/proc"));
    sp_mount_plan_free(&pl);
    sp_policy_free(p);
}

static void test_user_rules(void **state)
{
    (void)state;
    struct sp_policy *p = policy_with(
        "{\"workspace\": \"/tmp\", \"cwd\": \"/data\", \"allow_system_ro\": true,"
        "\"mounts\": ["
        "{\"type\": \"rw\", \"src\": \"/tmp\", \"dst\": \"/usr\"},"
        "{\"type\": \"ro\", \"src\": \"/etc\", \"dst\": \"/data\"},"
        "{\"type\": \"hide\", \"dst\": \"/etc/passwd\"},"
        "{\"type\": \"hide\", \"dst\": \"/data/shadow\"},"
        "{\"type\": \"tmpfs\", \"dst\": \"/scratch\", \"size\": 4096}]}");
    struct sp_mount_plan pl;
    sp_error err = {0};
    assert_int_equal(sp_mount_plan_build(p, &pl, &err), 0);
    const struct sp_mount_op *usr = find(&pl, "/usr");
    assert_string_equal(usr->src, "/tmp");
    assert_false(usr->ro);
    size_t n_usr = 0;
    for (size_t i = 0; i < pl.n; i++)
        n_usr += strcmp(pl.ops[i].dst, "/usr") == 0;
    assert_int_equal(n_usr, 1);
    /* The default /etc/passwd is gone and, not lying inside another mount,
     * needs no cover. */
    assert_null(find(&pl, "/etc/passwd"));
    const struct sp_mount_op *shadow = find(&pl, "/data/shadow");
    assert_non_null(shadow);
    assert_int_equal(shadow->kind, SP_OP_HIDE);
    assert_false(shadow->is_dir);
    assert_true(index_of(&pl, "/data") < index_of(&pl, "/data/shadow"));
    const struct sp_mount_op *s = find(&pl, "/scratch");
    assert_int_equal(s->kind, SP_OP_TMPFS);
    assert_int_equal(s->size, 4096);
    assert_string_equal(pl.workdir, "/data");
    sp_mount_plan_free(&pl);
    sp_policy_free(p);
}

static void test_no_workspace(void **state)
{
    (void)state;
    struct sp_policy *p =
        policy_with("{\"workspace\": \"/var\", \"workspace_mode\": \"none\"}");
    struct sp_mount_plan pl;
    sp_error err = {0};
    assert_int_equal(sp_mount_plan_build(p, &pl, &err), 0);
    assert_null(find(&pl, "/var"));
    assert_string_equal(pl.workdir, SP_SANDBOX_HOME);
    sp_mount_plan_free(&pl);
    sp_policy_free(p);

    p = sp_policy_new();
    assert_true(sp_mount_plan_build(p, &pl, &err) < 0);
    sp_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_user_rules),
        cmocka_unit_test(test_no_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
