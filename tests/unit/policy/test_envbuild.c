/* test_envbuild.c — the sandbox environment: allowlist, private dirs,
 * pass-through, explicit values, clear-env. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "envbuild.h"

static void test_allowlist(void **state)
{
    (void)state;
    struct sp_policy *p = sp_policy_new();
    char *caller[] = {"PATH=/bin", "SECRET=x", "LANG=C.UTF-8", "LC_ALL=C",
                      "TERM=xterm", "HOME=/root", "SSH_AUTH_SOCK=/s", NULL};
    char **env = NULL;
    sp_error err = {0};
    assert_int_equal(sp_env_build(p, caller, "/home/sandpit", &env, &err), 0);
    assert_string_equal(sp_env_get(env, "PATH"), "/bin");
    assert_string_equal(sp_env_get(env, "LANG"), "C.UTF-8");
    assert_string_equal(sp_env_get(env, "LC_ALL"), "C");
    assert_string_equal(sp_env_get(env, "TERM"), "xterm");
    assert_null(sp_env_get(env, "SECRET"));
    assert_null(sp_env_get(env, "SSH_AUTH_SOCK"));
    assert_string_equal(sp_env_get(env, "HOME"), "/home/sandpit");
    assert_string_equal(sp_env_get(env, "TMPDIR"), "/tmp");
    assert_string_equal(sp_env_get(env, "XDG_CONFIG_HOME"),
                        "/home/sandpit/.config");
    assert_string_equal(sp_env_get(env, "XDG_STATE_HOME"),
                        "/home/sandpit/.local/state");
    sp_env_free(env);
    sp_policy_free(p);
}

static void test_pass_set_clear(void **state)
{
    (void)state;
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    assert_int_equal(
        sp_policy_apply_json_text(p,
                                  "{\"env_pass\": [\"SECRET\", \"MISSING\"],"
                                  " \"env\": {\"HOME\": \"/w\", \"X\": \"a=b\"},"
                                  " \"clear_env\": true}",
                                  "t", &err),
        0);
    char *caller[] = {"PATH=/bin", "SECRET=x", "LANG=C", NULL};
    char **env = NULL;
    assert_int_equal(sp_env_build(p, caller, "/home/sandpit", &env, &err), 0);
    assert_string_equal(sp_env_get(env, "SECRET"), "x");
    assert_null(sp_env_get(env, "MISSING"));
    assert_null(sp_env_get(env, "LANG"));
    /* clear_env drops the caller's PATH but a default PATH remains. */
    assert_string_equal(sp_env_get(env, "PATH"), SP_DEFAULT_PATH);
    assert_string_equal(sp_env_get(env, "HOME"), "/w");
    assert_string_equal(sp_env_get(env, "X"), "a=b");
    size_t homes = 0;
    for (size_t i = 0; env[i]; i++)
        homes += strncmp(env[i], "HOME=", 5) == 0;
    assert_int_equal(homes, 1);
    sp_env_free(env);
    sp_policy_free(p);
}

static void test_path_prune(void **state)
{
    (void)state;
    char a[] = "PATH=/nonexistent-7c:/usr/bin:rel/bin::/usr/bin:/bin:"
               "/etc/passwd:/usr/bin/:/bin";
    char b[] = "PATH=/nonexistent-1:/nonexistent-2";
    char c[] = "HOME=/x";
    char *env[] = {c, a, NULL};
    sp_env_path_prune(env);
    /* only directories, absolute, once (a trailing slash is another name) */
    assert_string_equal(a, "PATH=/usr/bin:/bin:/usr/bin/");
    assert_string_equal(c, "HOME=/x");
    char *env2[] = {b, NULL};
    sp_env_path_prune(env2); /* nothing there: left as it was */
    assert_string_equal(b, "PATH=/nonexistent-1:/nonexistent-2");
    sp_env_path_prune(NULL);

    struct sp_policy *p = sp_policy_new();
    char *caller[] = {"PATH=/bin", NULL}, *none[] = {NULL};
    assert_true(sp_env_path_inherited(p, caller));
    assert_false(sp_env_path_inherited(p, none));
    p->clear_env = true;
    assert_false(sp_env_path_inherited(p, caller));
    sp_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_pass_set_clear),
        cmocka_unit_test(test_path_prune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
