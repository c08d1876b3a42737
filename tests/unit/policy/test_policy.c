/* test_policy.c — the policy parser: defaults, merge order, every kind of
 * bad input naming its key, and that a failed apply changes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"

static void test_defaults(void **state)
{
    (void)state;
    struct sp_policy *p = sp_policy_new();
    assert_non_null(p);
    assert_true(p->landlock);
    assert_true(p->seccomp);
    assert_true(p->userns);
    assert_int_equal(p->net, SP_NET_NONE);
    assert_int_equal(p->limits.memory, 1024ull << 20);
    assert_int_equal(p->limits.pids, 512);
    assert_string_equal(p->hostname, "sandpit");
    assert_false(p->allow_ptrace);
    sp_policy_free(p);
}

static void test_apply_ok(void **state)
{
    (void)state;
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    const char *j =
        "{\"limits\": {\"memory\": \"64M\", \"pids\": 16, \"cpus\": 0.5},"
        " \"net\": \"host\", \"env\": {\"A\": \"1\"}, \"timeout\": \"2s\","
        " \"mounts\": [{\"type\": \"ro\", \"src\": \"/usr\", \"dst\": \"/x//y/\"},"
        "              {\"type\": \"tmpfs\", \"dst\": \"/scratch\", \"size\": \"1M\"}],"
        " \"require\": [\"landlock\", \"limits\"]}";
    assert_int_equal(sp_policy_apply_json_text(p, j, "test", &err), 0);
    assert_int_equal(p->limits.memory, 64ull << 20);
    assert_int_equal(p->limits.pids, 16);
    assert_true(p->limits.cpus == 0.5);
    assert_int_equal(p->net, SP_NET_HOST);
    assert_int_equal(p->n_env_set, 1);
    assert_string_equal(p->env_set[0], "A=1");
    assert_true(p->timeout == 2.0);
    assert_int_equal(p->n_mounts, 2);
    assert_string_equal(p->mounts[0].dst, "/x/y");
    assert_int_equal(p->mounts[1].size, 1ull << 20);
    assert_int_equal(p->require, SP_LAYER_LANDLOCK | SP_LAYER_LIMITS);
    /* A later apply on top: env replaced by name, mount for the same
     * target replaced. */
    assert_int_equal(sp_policy_apply_json_text(
                         p,
                         "{\"env\": {\"A\": \"2\"}, \"mounts\": [{\"type\": "
                         "\"rw\", \"src\": \"/tmp\", \"dst\": \"/x/y\"}]}",
                         "test2", &err),
                     0);
    assert_int_equal(p->n_env_set, 1);
    assert_string_equal(p->env_set[0], "A=2");
    assert_int_equal(p->n_mounts, 2);
    assert_int_equal(p->mounts[1].type, SP_MOUNT_RW);
    /* A hide removes every rule at or below its target. */
    assert_int_equal(sp_policy_apply_json_text(
                         p, "{\"mounts\": [{\"type\": \"hide\", \"dst\": \"/x\"}]}",
                         "t3", &err),
                     0);
    assert_int_equal(p->n_mounts, 2);
    assert_int_equal(p->mounts[0].type, SP_MOUNT_TMPFS);
    assert_int_equal(p->mounts[1].type, SP_MOUNT_HIDE);
    sp_policy_free(p);
}

struct bad_case {
    const char *json;
    const char *expect; /* substring of the message */
};

static void test_apply_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{\"bogus\": 1}", "unknown key \"bogus\""},
        {"{\"limits\": {\"memroy\": 1}}", "unknown key \"limits.memroy\""},
        {"{\"limits\": {\"memory\": \"lots\"}}", "limits.memory"},
        {"{\"limits\": {\"memory\": 100}}", "below the minimum"},
        {"{\"limits\": {\"pids\": -1}}", "limits.pids"},
        {"{\"limits\": {\"cpus\": \"x\"}}", "limits.cpus"},
        {"{\"net\": \"maybe\"}", "\"maybe\" is not one of none, host"},
        {"{\"net\": 3}", "key \"net\" must be a string"},
        {"{\"landlock\": \"yes\"}", "key \"landlock\" must be true or false"},
        {"{\"allow_system_ro\": 1}",
         "key \"allow_system_ro\" must be true or false"},
        {"{\"mounts\": [{\"type\": \"ro\", \"dst\": \"/a\"}]}", "needs \"src\""},
        {"{\"mounts\": [{\"type\": \"rx\", \"src\": \"/a\"}]}", "not one of ro"},
        {"{\"mounts\": [{\"type\": \"ro\", \"src\": \"rel\"}]}", "absolute"},
        {"{\"mounts\": [{\"type\": \"ro\", \"src\": \"/a\", \"dst\": \"/b/../c\"}]}",
         "absolute path without"},
        {"{\"mounts\": [{\"type\": \"tmpfs\", \"dst\": \"/\"}]}", "sandbox root"},
        {"{\"mounts\": {}}", "must be an array"},
        {"{\"env\": {\"A=B\": \"1\"}}", "contains '='"},
        {"{\"env\": {\"A\": 1}}", "env.A"},
        {"{\"require\": [\"magic\"]}", "is not a layer"},
        {"{\"timeout\": -1}", "out of range"},
        {"{\"timeout\": \"forever\"}", "not a duration"},
        {"{\"hostname\": \"a b\"}", "not a host name"},
        {"{\"uid\": 70000}", "out of range"},
        {"{\"pool\": 65}", "out of range"},
        {"{\"pool\": -1}", "pool"},
        {"{\"workspace\": \"relative\"}", "absolute path"},
        {"[1, 2]", "must be a JSON object"},
        {"{\"a\": 1, \"a\": 2}", "invalid JSON"},
        {"{not json", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sp_policy *p = sp_policy_new();
        sp_error err = {0};
        /* Something to lose: a failed apply must keep it. */
        assert_int_equal(sp_policy_apply_json_text(
                             p, "{\"limits\": {\"memory\": \"32M\"}}", "base",
                             &err),
                         0);
        int r = sp_policy_apply_json_text(p, cases[i].json, "case", &err);
        if (r >= 0 || !strstr(err.message, cases[i].expect))
            fail_msg("case %zu (%s): r=%d message '%s', expected '%s'", i,
                     cases[i].json, r, err.message, cases[i].expect);
        assert_int_equal(err.kind, SP_ERR_USAGE);
        assert_int_equal(p->limits.memory, 32ull << 20);
        assert_int_equal(p->n_mounts, 0);
        sp_policy_free(p);
    }
}

static void test_file_and_finalize(void **state)
{
    (void)state;
    char dir[] = "/tmp/sp-policy-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/p.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"workspace\": \"%s\", \"limits\": {\"pids\": 7}}", dir);
    fclose(f);
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    assert_int_equal(sp_policy_apply_file(p, path, &err), 0);
    assert_int_equal(p->limits.pids, 7);
    assert_int_equal(sp_policy_finalize(p, &err), 0);
    assert_true(p->finalized);
    char *text = sp_policy_to_json(p, &err);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"pids\": 7"));
    free(text);
    sp_policy_free(p);

    /* A missing user mount source is an error naming it. */
    p = sp_policy_new();
    snprintf(path, sizeof(path),
             "{\"workspace\": \"%s\", \"mounts\": [{\"type\": \"ro\", "
             "\"src\": \"/nonexistent/sp\"}]}",
             dir);
    assert_int_equal(sp_policy_apply_json_text(p, path, "t", &err), 0);
    assert_true(sp_policy_finalize(p, &err) < 0);
    assert_non_null(strstr(err.message, "/nonexistent/sp"));
    sp_policy_free(p);

    /* Missing file, and a non-file. */
    p = sp_policy_new();
    assert_true(sp_policy_apply_file(p, "/nonexistent.json", &err) < 0);
    assert_non_null(strstr(err.message, "/nonexistent.json"));
    assert_true(sp_policy_apply_file(p, dir, &err) < 0);
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_true(sp_policy_apply_profile(p, "../etc", &err) < 0);
    assert_non_null(strstr(err.message, "not valid"));
    sp_policy_free(p);
    unlink(dir[0] ? strcat(strcpy(path, dir), "/p.json") : path);
    rmdir(dir);
}

/* Sources that would hand over the host (docs/policy.md): refused at
 * finalize with a sentence naming the rule; read-only by opt-in only. */
static void test_system_sources(void **state)
{
    (void)state;
    static const struct {
        const char *json, *expect;
    } refused[] = {
        {"{\"workspace\": \"/etc\"}", "workspace /etc is /etc: a workspace"},
        {"{\"workspace\": \"/usr/share\"}", "lies inside /usr"},
        {"{\"workspace\": \"/proc\", \"workspace_mode\": \"ro\"}",
         "without allow_system_ro"},
        {"{\"workspace\": \"/tmp\", \"mounts\": [{\"type\": \"rw\", "
         "\"src\": \"/sys\", \"dst\": \"/x\"}]}",
         "--rw source /sys is /sys"},
        {"{\"workspace\": \"/tmp\", \"allow_system_ro\": true, \"mounts\": "
         "[{\"type\": \"rw\", \"src\": \"/dev\", \"dst\": \"/x\"}]}",
         "--rw source /dev is /dev"},
        {"{\"workspace\": \"/tmp\", \"mounts\": [{\"type\": \"ro\", "
         "\"src\": \"/\", \"dst\": \"/x\"}]}",
         "is the host's root directory"},
        {"{\"workspace\": \"/tmp\", \"mounts\": [{\"type\": \"ro\", "
         "\"src\": \"/usr\", \"dst\": \"/x\"}]}",
         "(--allow-system-ro)"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct sp_policy *p = sp_policy_new();
        sp_error err = {0};
        assert_int_equal(
            sp_policy_apply_json_text(p, refused[i].json, "t", &err), 0);
        int r = sp_policy_finalize(p, &err);
        if (r >= 0 || !strstr(err.message, refused[i].expect))
            fail_msg("case %zu (%s): r=%d message '%s', expected '%s'", i,
                     refused[i].json, r, err.message, refused[i].expect);
        assert_int_equal(err.kind, SP_ERR_USAGE);
        sp_policy_free(p);
    }
    static const char *const allowed[] = {
        "{\"workspace\": \"/tmp\", \"allow_system_ro\": true, \"mounts\": "
        "[{\"type\": \"ro\", \"src\": \"/usr\", \"dst\": \"/x\"}]}",
        "{\"workspace\": \"/tmp\", \"mounts\": [{\"type\": \"ro\", "
        "\"src\": \"/usr/share\", \"dst\": \"/x\"}]}",
    };
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        struct sp_policy *p = sp_policy_new();
        sp_error err = {0};
        assert_int_equal(sp_policy_apply_json_text(p, allowed[i], "t", &err),
                         0);
        if (sp_policy_finalize(p, &err) < 0)
            fail_msg("case %zu (%s): %s", i, allowed[i], err.message);
        sp_policy_free(p);
    }
}

static void test_profiles(void **state)
{
    (void)state;
    const char *names[] = {"minimal", "standard", "dev"};
    for (size_t i = 0; i < 3; i++) {
        struct sp_policy *p = sp_policy_new();
        sp_error err = {0};
        if (sp_policy_apply_profile(p, names[i], &err) < 0)
            fail_msg("profile %s: %s", names[i], err.message);
        sp_policy_free(p);
    }
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    assert_int_equal(sp_policy_apply_profile(p, "dev", &err), 0);
    assert_true(p->allow_ptrace);
    sp_policy_free(p);
    p = sp_policy_new();
    assert_int_equal(sp_policy_apply_profile(p, "minimal", &err), 0);
    assert_int_equal(p->workspace_mode, SP_WS_RO);
    sp_policy_free(p);
}

/* The warm pool's size (docs/pool.md): kept, shown only when set. */
static void test_pool_key(void **state)
{
    (void)state;
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    char *j = sp_policy_to_json(p, &err);
    assert_non_null(j);
    assert_null(strstr(j, "\"pool\""));
    free(j);
    assert_int_equal(sp_policy_apply_json_text(p, "{\"pool\": 64}", "t", &err),
                     0);
    assert_int_equal(p->pool, 64);
    j = sp_policy_to_json(p, &err);
    assert_non_null(strstr(j, "\"pool\": 64"));
    free(j);
    sp_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_apply_ok),
        cmocka_unit_test(test_apply_bad),
        cmocka_unit_test(test_file_and_finalize),
        cmocka_unit_test(test_system_sources),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_pool_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
