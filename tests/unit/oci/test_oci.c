/* test_oci.c — config.json into the launch plan (src/oci/oci_spec.c):
 * what is mapped, and what is refused by name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci.h"

static char bundle[] = "/tmp/sandpit-test-oci.XXXXXX";

#define BASE \
    "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"}," \
    "\"process\":{\"args\":[\"sh\"],\"env\":[\"PATH=/bin\"],\"cwd\":\"/\"," \
    "\"user\":{\"uid\":0,\"gid\":0}%s}," \
    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"}," \
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}%s]," \
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"}," \
    "{\"type\":\"network\"}%s]%s}%s}"

/* Write config.json from the template pieces and load it. */
static int load(struct oci_spec *s, sp_error *err, const char *proc_extra,
                const char *mounts_extra, const char *ns_extra,
                const char *linux_extra, const char *top_extra)
{
    char path[256], buf[8192];
    snprintf(path, sizeof(path), "%s/config.json", bundle);
    snprintf(buf, sizeof(buf), BASE, proc_extra, mounts_extra, ns_extra,
             linux_extra, top_extra);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(buf, f);
    fclose(f);
    memset(err, 0, sizeof(*err));
    return oci_spec_load(bundle, "c1", false, s, err);
}

static void expect_refused(const char *pe, const char *me, const char *ne,
                           const char *le, const char *te, const char *name)
{
    struct oci_spec s;
    sp_error err;
    assert_true(load(&s, &err, pe, me, ne, le, te) < 0);
    if (!strstr(err.message, name))
        fail_msg("\"%s\" not named in: %s", name, err.message);
    oci_spec_free(&s);
}

static void test_minimal(void **state)
{
    struct oci_spec s;
    sp_error err;
    assert_int_equal(load(&s, &err, "", "", "", "", ""), 0);
    /* sandpit's layers: its own user and cgroup namespaces */
    assert_true(s.L.clone_ns & CLONE_NEWUSER);
    assert_true(s.L.clone_ns & CLONE_NEWCGROUP);
    assert_true(s.default_userns);
    assert_int_equal(s.L.n_uid_map, 1);
    assert_int_equal(s.L.uid_map[0].inside, 0);
    assert_int_not_equal(s.L.uid_map[0].outside, 0);
    assert_true(s.L.proc.no_new_privs);
    assert_true(s.L.proc.seccomp_default);
    assert_string_equal(s.argv[0], "sh");
    assert_string_equal(s.cgroups_path, "/sandpit-runc/c1");
    /* rootfs as the root; /proc, sandpit's /dev, then the masks */
    assert_int_equal(s.plan.root->kind, SP_OP_BIND);
    assert_int_equal(s.plan.ops[0].kind, SP_OP_PROC);
    assert_int_equal(s.plan.ops[1].kind, SP_OP_DEV);
    bool masked_kcore = false;
    for (size_t i = 0; i < s.plan.n; i++)
        if (s.plan.ops[i].kind == SP_OP_MASK &&
            strcmp(s.plan.ops[i].dst, "/proc/kcore") == 0)
            masked_kcore = true;
    assert_true(masked_kcore);
    oci_spec_free(&s);
}

static void test_spec_userns_and_layers_off(void **state)
{
    struct oci_spec s;
    sp_error err;
    assert_int_equal(
        load(&s, &err, "", "", ",{\"type\":\"user\"}",
             ",\"uidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],"
             "\"gidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}]",
             ",\"annotations\":{\"run.sandpit.layers.off\":\"seccomp,landlock\"}"),
        0);
    assert_false(s.default_userns);
    assert_int_equal(s.L.uid_map[0].outside, 100000);
    assert_false(s.L.proc.seccomp_default);
    assert_false(s.L.proc.landlock);
    oci_spec_free(&s);
    /* userns off: no user namespace at all */
    assert_int_equal(load(&s, &err, "", "", "", "",
                          ",\"annotations\":{\"run.sandpit.layers.off\":\"userns\"}"),
                     0);
    assert_false(s.L.clone_ns & CLONE_NEWUSER);
    oci_spec_free(&s);
}

static void test_mount_options(void **state)
{
    struct oci_spec s;
    sp_error err;
    char host[300];
    snprintf(host, sizeof(host),
             ",{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"%s\","
             "\"options\":[\"rbind\",\"ro\",\"noexec\"]},"
             "{\"destination\":\"/run\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
             "\"options\":[\"nosuid\",\"size=65536k\",\"mode=755\"]}",
             bundle);
    assert_int_equal(load(&s, &err, "", host, "", "", ""), 0);
    assert_int_equal(s.plan.ops[2].kind, SP_OP_BIND);
    assert_true(s.plan.ops[2].ro);
    assert_false(s.plan.ops[2].norec);
    assert_int_equal(s.plan.ops[3].kind, SP_OP_FS);
    assert_string_equal(s.plan.ops[3].src, "tmpfs");
    assert_string_equal(s.plan.ops[3].fsopts[0], "size");
    assert_string_equal(s.plan.ops[3].fsopts[1], "65536k");
    assert_string_equal(s.plan.ops[3].fsopts[2], "mode");
    oci_spec_free(&s);
}

static void test_refused_by_name(void **state)
{
    expect_refused("", "", "", ",\"intelRdt\":{}", "", "linux.intelRdt");
    expect_refused(",\"apparmorProfile\":\"x\"", "", "", "", "",
                   "apparmorProfile");
    expect_refused(",\"scheduler\":{}", "", "", "", "", "process.scheduler");
    expect_refused("", ",{\"destination\":\"/x\",\"type\":\"overlay\",\"source\":\"o\"}",
                   "", "", "", "overlay");
    expect_refused("", ",{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"/\","
                   "\"options\":[\"rbind\",\"rshared\"]}", "", "", "", "rshared");
    expect_refused("", "", ",{\"type\":\"time\"}", "", "", "time");
    expect_refused("", "", ",{\"type\":\"user\"}",
                   ",\"uidMappings\":[{\"containerID\":0,\"hostID\":0,\"size\":1}],"
                   "\"gidMappings\":[{\"containerID\":0,\"hostID\":0,\"size\":1}]",
                   "", "host id 0");
    expect_refused("", "", "", ",\"sysctl\":{\"kernel.panic\":\"1\"}", "",
                   "kernel.panic");
    expect_refused("", "", "", ",\"devices\":[{\"path\":\"/dev/x\"}]", "",
                   "linux.devices");
    expect_refused("", "", "", ",\"seccomp\":{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}",
                   "", "SCMP_ACT_NOTIFY");
    expect_refused("", "", "", ",\"resources\":{\"hugepageLimits\":[{}]}", "",
                   "hugepageLimits");
    expect_refused("", "", "", "", ",\"hooks\":{\"createContainer\":[{\"path\":\"/x\"}]}",
                   "createContainer");
    expect_refused("", "", "", "", ",\"annotations\":{\"run.sandpit.layers.off\":\"x\"}",
                   "unknown layer");
    expect_refused(",\"capabilities\":{\"bounding\":[\"CAP_NOPE\"]}", "", "", "",
                   "", "CAP_NOPE");
}

static void test_namespaces(void **state)
{
    struct oci_spec s;
    sp_error err;
    /* no pid namespace: refused; joining a pid namespace: refused */
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", bundle);
    FILE *f = fopen(path, "w");
    fputs("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
          "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},"
          "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}", f);
    fclose(f);
    memset(&err, 0, sizeof(err));
    assert_true(oci_spec_load(bundle, "c1", false, &s, &err) < 0);
    assert_non_null(strstr(err.message, "pid namespace"));
    oci_spec_free(&s);
    expect_refused("", "", ",{\"type\":\"ipc\",\"path\":\"/proc/self/ns/pid\"},"
                   "{\"type\":\"uts\"},{\"type\":\"cgroup\",\"path\":\"/x\"}",
                   "", "", "cgroup");
    /* a network namespace joined by path: not created, an fd to join */
    f = fopen(path, "w");
    fputs("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
          "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},\"hostname\":\"h\","
          "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},"
          "{\"type\":\"uts\"},"
          "{\"type\":\"network\",\"path\":\"/proc/self/ns/net\"}],"
          "\"cgroupsPath\":\"kubepods-x.slice:cri:abc\"}}", f);
    fclose(f);
    assert_int_equal(oci_spec_load(bundle, "c1", true, &s, &err), 0);
    assert_false(s.L.clone_ns & CLONE_NEWNET);
    assert_int_equal(s.L.n_join, 1);
    assert_string_equal(s.L.hostname, "h");
    assert_string_equal(s.cgroups_path, "/kubepods-x.slice/cri-abc.scope");
    oci_spec_free(&s);
}

static void test_signals(void **state)
{
    assert_int_equal(oci_signal_parse("9"), 9);
    assert_int_equal(oci_signal_parse("SIGTERM"), 15);
    assert_int_equal(oci_signal_parse("kill"), 9);
    assert_int_equal(oci_signal_parse("NOPE"), -1);
    assert_int_equal(oci_signal_parse("0"), -1);
    assert_int_equal(oci_signal_parse("99999"), -1);
}

static int setup(void **state)
{
    if (!mkdtemp(bundle))
        return -1;
    char p[300];
    snprintf(p, sizeof(p), "%s/rootfs", bundle);
    return mkdir(p, 0755);
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", bundle);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_spec_userns_and_layers_off),
        cmocka_unit_test(test_mount_options),
        cmocka_unit_test(test_refused_by_name),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_signals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
