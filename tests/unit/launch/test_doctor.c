/* test_doctor.c — unit tests for `sandpit doctor`: the JSON has every
 * documented key with its type, agrees with the other probes and with this
 * host, the text names each layer, a made-up host with nothing renders as
 * "missing", and the probe leaves no mount, file or child behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "doctor.h"
#include "landlock.h"
#include "sandpit.h"
#include "util.h"

static const char *const ns_keys[] = {"mount", "pid", "net", "ipc",
                                      "uts", "cgroup", "time"};
static const char *const sys_keys[] = {"pidfd", "openat2", "mount_setattr",
                                       "clone3", "close_range"};
static const char *const require_names[] = {"landlock", "seccomp", "limits",
                                            "userns", "netns", "disk",
                                            "idmap", "idrange"};

/* The member `key` of o, which must exist and have type `type`. */
static json_t *member(json_t *o, const char *key, json_type type)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        fail_msg("key \"%s\" is missing", key);
    if (json_typeof(v) != type)
        fail_msg("key \"%s\" has type %d, expected %d", key, json_typeof(v),
                 type);
    return v;
}

static bool member_bool(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_boolean(v))
        fail_msg("key \"%s\" is missing or not a boolean", key);
    return json_is_true(v);
}

static json_t *doctor_json(void)
{
    char *text = sp_doctor_json();
    assert_non_null(text);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        fail_msg("doctor JSON does not parse: %s (line %d)", jerr.text,
                 jerr.line);
    free(text);
    assert_true(json_is_object(root));
    return root;
}

static bool in_string_array(json_t *arr, const char *s)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static void test_json_keys_and_types(void **state)
{
    (void)state;
    json_t *root = doctor_json();

    const char *ver = json_string_value(
        member(root, "sandpit_version", JSON_STRING));
    assert_true(ver[0] != '\0');
    assert_true(json_string_length(member(root, "kernel", JSON_STRING)) > 0);
    assert_true(json_string_length(member(root, "arch", JSON_STRING)) > 0);
    assert_int_equal(json_integer_value(member(root, "uid", JSON_INTEGER)),
                     (json_int_t)geteuid());

    json_t *layers = member(root, "layers", JSON_OBJECT);

    json_t *o = member(layers, "userns", JSON_OBJECT);
    member_bool(o, "available");
    member_bool(o, "unprivileged");
    member(o, "detail", JSON_STRING);

    o = member(layers, "namespaces", JSON_OBJECT);
    for (size_t i = 0; i < SP_ARRAY_SIZE(ns_keys); i++)
        member_bool(o, ns_keys[i]);
    assert_int_equal(json_object_size(o), SP_ARRAY_SIZE(ns_keys));

    o = member(layers, "landlock", JSON_OBJECT);
    member_bool(o, "available");
    member(o, "abi", JSON_INTEGER);
    member(o, "detail", JSON_STRING);

    o = member(layers, "seccomp", JSON_OBJECT);
    member_bool(o, "available");
    json_t *acts = member(o, "actions", JSON_ARRAY);
    for (size_t i = 0; i < json_array_size(acts); i++)
        assert_true(json_is_string(json_array_get(acts, i)));
    member(o, "detail", JSON_STRING);

    o = member(layers, "cgroups", JSON_OBJECT);
    member_bool(o, "available");
    const char *layout = json_string_value(member(o, "layout", JSON_STRING));
    assert_true(strcmp(layout, "v1") == 0 || strcmp(layout, "v2") == 0 ||
                strcmp(layout, "hybrid") == 0 || strcmp(layout, "none") == 0);
    member(o, "detail", JSON_STRING);

    o = member(layers, "overlay_userns", JSON_OBJECT);
    member_bool(o, "available");
    member(o, "detail", JSON_STRING);

    /* who a sandbox of this caller is on the host (docs/security.md) */
    o = member(layers, "identity", JSON_OBJECT);
    const char *kind = json_string_value(member(o, "kind", JSON_STRING));
    assert_true(strcmp(kind, "range") == 0 || strcmp(kind, "subordinate") == 0 ||
                strcmp(kind, "single") == 0);
    assert_int_equal(json_array_size(member(o, "host_uids", JSON_ARRAY)), 2);
    assert_int_equal(json_array_size(member(o, "host_gids", JSON_ARRAY)), 2);
    member(o, "detail", JSON_STRING);
    if (geteuid() == 0) {
        /* never host root */
        assert_string_equal(kind, "range");
        assert_true(json_integer_value(json_array_get(
                        json_object_get(o, "host_uids"), 0)) > 0);
    }
    o = member(layers, "idmap", JSON_OBJECT);
    assert_true(member_bool(o, "needed") == (geteuid() == 0));
    member_bool(o, "available");
    member(o, "detail", JSON_STRING);

    o = member(root, "syscalls", JSON_OBJECT);
    for (size_t i = 0; i < SP_ARRAY_SIZE(sys_keys); i++)
        member_bool(o, sys_keys[i]);

    o = member(root, "summary", JSON_OBJECT);
    member_bool(o, "ok");
    json_t *missing = member(o, "missing", JSON_ARRAY);
    for (size_t i = 0; i < json_array_size(missing); i++) {
        json_t *v = json_array_get(missing, i);
        assert_true(json_is_string(v));
        bool known = false;
        for (size_t k = 0; k < SP_ARRAY_SIZE(require_names); k++)
            known |= strcmp(json_string_value(v), require_names[k]) == 0;
        assert_true(known);
    }
    json_decref(root);
}

/* The answers match this host and the other probes. */
static void test_json_matches_host(void **state)
{
    (void)state;
    json_t *root = doctor_json();
    json_t *layers = json_object_get(root, "layers");

    json_t *ll = json_object_get(layers, "landlock");
    int abi = sp_landlock_abi();
    assert_int_equal(json_integer_value(json_object_get(ll, "abi")), abi);
    assert_true(member_bool(ll, "available") == (abi > 0));

    json_t *sc = json_object_get(layers, "seccomp");
    assert_true(member_bool(sc, "available"));
    assert_true(in_string_array(json_object_get(sc, "actions"), "allow"));

    /* Root needs no user namespace for a mount namespace; an ordinary
     * user gets one only through a user namespace. */
    bool userns = member_bool(json_object_get(layers, "userns"), "available");
    bool mnt = member_bool(json_object_get(layers, "namespaces"), "mount");
    if (geteuid() == 0 || userns)
        assert_true(mnt);
    else
        assert_false(mnt);

    assert_true(member_bool(json_object_get(root, "syscalls"), "openat2"));

    /* summary.missing is exactly the layers that are not there. */
    json_t *missing = json_object_get(json_object_get(root, "summary"),
                                      "missing");
    assert_true(in_string_array(missing, "landlock") == (abi <= 0));
    assert_false(in_string_array(missing, "seccomp"));
    assert_true(in_string_array(missing, "userns") == !userns);
    assert_true(
        in_string_array(missing, "limits") ==
        !member_bool(json_object_get(layers, "cgroups"), "available"));
    assert_true(
        in_string_array(missing, "netns") ==
        !member_bool(json_object_get(layers, "namespaces"), "net"));
    assert_true(member_bool(json_object_get(root, "summary"), "ok") ==
                (json_array_size(missing) == 0));
    json_decref(root);
}

/* A line for `name` starts with it, padded to the status column (the
 * first line is the header, so every item line follows a newline). */
static bool has_line(const char *text, const char *name)
{
    char needle[32];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    return strstr(text, needle) != NULL;
}

static void test_text(void **state)
{
    (void)state;
    char *text = sp_doctor_text();
    assert_non_null(text);
    assert_true(has_line(text, "landlock"));
    assert_true(has_line(text, "seccomp"));
    assert_true(has_line(text, "userns"));
    assert_true(has_line(text, "cgroups"));
    assert_true(has_line(text, "syscalls"));
    assert_non_null(strstr(text, "--require can demand: landlock, seccomp, "
                                 "limits, userns, netns"));
    /* seccomp works on this host, so its line says ok. */
    assert_non_null(strstr(text, "\nseccomp       ok"));
    free(text);
}

/* A host with nothing: every --require layer missing, in both renderings.
 * Shows the checks above can fail. */
static void test_render_empty_host(void **state)
{
    (void)state;
    struct sp_host h;
    memset(&h, 0, sizeof(h));
    snprintf(h.cgroup_layout, sizeof(h.cgroup_layout), "none");
    h.idmap_needed = true; /* a root caller whose idmap probe failed */
    assert_int_equal(sp_host_missing_layers(&h),
                     SP_LAYER_LANDLOCK | SP_LAYER_SECCOMP | SP_LAYER_LIMITS |
                         SP_LAYER_USERNS | SP_LAYER_NETNS | SP_LAYER_DISK |
                         SP_LAYER_IDMAP | SP_LAYER_IDRANGE);

    char *text = sp_host_to_json(&h);
    assert_non_null(text);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(root);
    json_t *sum = json_object_get(root, "summary");
    assert_false(member_bool(sum, "ok"));
    json_t *missing = json_object_get(sum, "missing");
    assert_int_equal(json_array_size(missing), SP_ARRAY_SIZE(require_names));
    for (size_t i = 0; i < SP_ARRAY_SIZE(require_names); i++)
        assert_string_equal(json_string_value(json_array_get(missing, i)),
                            require_names[i]);
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(json_object_get(root, "layers"),
                                         "seccomp"),
                         "actions")),
                     0);
    json_decref(root);

    text = sp_host_to_text(&h);
    assert_non_null(text);
    assert_non_null(strstr(text, "\nlandlock      MISSING"));
    assert_non_null(strstr(text, "\nseccomp       MISSING"));
    assert_non_null(strstr(text, "missing here: landlock seccomp limits "
                                 "userns netns disk"));
    assert_non_null(strstr(text, "\ndisk          MISSING"));
    free(text);
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* No mount, no layer directory in /tmp and no child survive a probe. */
static void test_leaves_nothing(void **state)
{
    (void)state;
    static const char *const dirs[] = {"/tmp/l", "/tmp/u", "/tmp/w", "/tmp/m"};
    bool existed[SP_ARRAY_SIZE(dirs)];
    struct stat st;
    for (size_t i = 0; i < SP_ARRAY_SIZE(dirs); i++)
        existed[i] = lstat(dirs[i], &st) == 0;
    size_t mounts = count_lines("/proc/self/mountinfo");

    struct sp_host h;
    assert_int_equal(sp_host_probe(&h), 0);

    assert_int_equal(count_lines("/proc/self/mountinfo"), mounts);
    for (size_t i = 0; i < SP_ARRAY_SIZE(dirs); i++)
        if (!existed[i])
            assert_int_not_equal(lstat(dirs[i], &st), 0);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_misc(void **state)
{
    (void)state;
    assert_int_equal(sp_host_probe(NULL), -EINVAL);
    assert_string_equal(sp_ns_kind_name(SP_NS_MOUNT), "mount");
    assert_string_equal(sp_ns_kind_name(SP_NS_TIME), "time");
    assert_null(sp_ns_kind_name(SP_NS_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_keys_and_types),
        cmocka_unit_test(test_json_matches_host),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_render_empty_host),
        cmocka_unit_test(test_leaves_nothing),
        cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
