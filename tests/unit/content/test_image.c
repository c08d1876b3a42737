/* test_image.c — SHA-256 against known vectors, image names and digests,
 * and the OCI / docker-save document parsers (image_parse.c): what they
 * take, and the hostile documents they refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "sha256.h"

static void hex_of(const char *s, size_t len, char out[65])
{
    struct sp_sha256 c;
    sp_sha256_init(&c);
    /* in odd pieces, to cross block boundaries */
    for (size_t i = 0; i < len;) {
        size_t n = len - i < 7 ? len - i : 7;
        sp_sha256_update(&c, s + i, n);
        i += n;
    }
    sp_sha256_hex(&c, out);
}

static void test_sha256(void **state)
{
    (void)state;
    char h[65];
    hex_of("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    hex_of(a, 1000000, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static const char *H = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void test_names_digests(void **state)
{
    (void)state;
    assert_true(sp_image_name_valid("debian:12"));
    assert_true(sp_image_name_valid("a.b_c-d"));
    assert_false(sp_image_name_valid(""));
    assert_false(sp_image_name_valid("-x"));
    assert_false(sp_image_name_valid(".x"));
    assert_false(sp_image_name_valid("A"));
    assert_false(sp_image_name_valid("a/b"));
    assert_false(sp_image_name_valid("a b"));
    char longname[SP_IMAGE_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(sp_image_name_valid(longname));
    longname[SP_IMAGE_NAME_MAX] = '\0';
    assert_true(sp_image_name_valid(longname));
    assert_true(sp_image_digest_valid(H));
    assert_false(sp_image_digest_valid("sha256:E3B0"));
    assert_false(sp_image_digest_valid("sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(sp_image_digest_valid("sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void test_index(void **state)
{
    (void)state;
    char buf[2048], d[SP_DIGEST_LEN], ref[SP_IMAGE_NAME_MAX + 1];
    bool idx = true;
    sp_error err = {0};
    snprintf(buf, sizeof(buf),
             "{\"manifests\":[{\"digest\":\"%s\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
             "{\"digest\":\"%.70s1\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
             "\"annotations\":{\"org.opencontainers.image.ref.name\":\"x:1\"}}]}",
             H, H);
    assert_int_equal(sp_image_parse_index(buf, strlen(buf), NULL, d, &idx, ref, &err), 0);
    assert_int_equal(d[SP_DIGEST_LEN - 2], '1'); /* amd64 picked */
    assert_false(idx);
    assert_string_equal(ref, "x:1");
    static const char *const bad[] = {
        "{", "[]", "{\"manifests\":[]}", "{\"manifests\":[{\"digest\":\"sha256:00\"}]}",
        "{\"manifests\":[1]}", "{\"manifests\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        err.message[0] = '\0';
        assert_true(sp_image_parse_index(bad[i], strlen(bad[i]), NULL, d, &idx,
                                         NULL, &err) < 0);
        assert_true(err.message[0] != '\0');
    }
}

static void test_manifest_config(void **state)
{
    (void)state;
    char buf[2048];
    sp_error err = {0};
    struct sp_image_manifest m;
    snprintf(buf, sizeof(buf),
             "{\"config\":{\"digest\":\"%s\"},\"layers\":[{\"digest\":\"%s\"},{\"digest\":\"%s\"}]}",
             H, H, H);
    assert_int_equal(sp_image_parse_manifest(buf, strlen(buf), &m, &err), 0);
    assert_int_equal(m.n_layers, 2);
    sp_image_manifest_free(&m);
    snprintf(buf, sizeof(buf),
             "{\"config\":{\"digest\":\"%s\"},\"layers\":[{\"mediaType\":"
             "\"application/vnd.oci.image.layer.nondistributable.v1.tar\",\"digest\":\"%s\"}]}",
             H, H);
    assert_true(sp_image_parse_manifest(buf, strlen(buf), &m, &err) < 0);
    assert_non_null(strstr(err.message, "foreign"));

    struct sp_image_config c;
    const char *cfg = "{\"config\":{\"Env\":[\"A=1\",\"PATH=/bin\"],\"WorkingDir\":\"/w//x/\","
                      "\"User\":\"app:staff\",\"Entrypoint\":[\"/bin/sh\"],\"Cmd\":[\"-c\",\"x\"]},"
                      "\"rootfs\":{\"diff_ids\":[]}}";
    assert_int_equal(sp_image_parse_config(cfg, strlen(cfg), &c, &err), 0);
    assert_int_equal(c.n_env, 2);
    assert_int_equal(c.n_argv, 3);
    assert_string_equal(c.argv[0], "/bin/sh");
    assert_string_equal(c.argv[2], "x");
    assert_null(c.argv[3]);
    assert_string_equal(c.workdir, "/w/x");
    assert_string_equal(c.user, "app:staff");
    sp_image_config_free(&c);
    static const char *const bad[] = {
        "{\"config\":{\"Env\":[\"NOEQUALS\"]}}",
        "{\"config\":{\"Env\":[\"=x\"]}}",
        "{\"config\":{\"Env\":\"A=1\"}}",
        "{\"config\":{\"WorkingDir\":\"relative\"}}",
        "{\"config\":{\"WorkingDir\":\"/a/../b\"}}",
        "{\"config\":{\"Cmd\":[1]}}",
        "{\"config\":{\"User\":7}}",
        "{\"config\":{\"Env\":[\"A=\\u0001\"]}}",
        "{\"rootfs\":{\"diff_ids\":[\"md5:x\"]}}",
        "{\"config\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_true(sp_image_parse_config(bad[i], strlen(bad[i]), &c, &err) < 0);
    /* Too many Env entries. */
    size_t cap = 64 + 16 * (SP_IMAGE_MAX_ENV + 1);
    char *big = malloc(cap);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, cap, "{\"config\":{\"Env\":[");
    for (int i = 0; i <= SP_IMAGE_MAX_ENV; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"V%d=1\"", i ? "," : "", i);
    snprintf(big + n, cap - n, "]}}");
    assert_true(sp_image_parse_config(big, strlen(big), &c, &err) < 0);
    free(big);
}

static void test_docker(void **state)
{
    (void)state;
    sp_error err = {0};
    struct sp_image_docker d;
    const char *ok = "[{\"Config\":\"c.json\",\"RepoTags\":[\"a:1\"],\"Layers\":[\"x/layer.tar\"]},"
                     "{\"Config\":\"d.json\",\"RepoTags\":[\"b:2\"],\"Layers\":[]}]";
    assert_int_equal(sp_image_parse_docker(ok, strlen(ok), "b:2", &d, &err), 0);
    assert_string_equal(d.config, "d.json");
    assert_string_equal(d.tag, "b:2");
    sp_image_docker_free(&d);
    assert_int_equal(sp_image_parse_docker(ok, strlen(ok), NULL, &d, &err), 0);
    assert_string_equal(d.config, "c.json");
    assert_int_equal(d.n_layers, 1);
    sp_image_docker_free(&d);
    static const char *const bad[] = {
        "[{\"Config\":\"../c.json\",\"Layers\":[]}]",
        "[{\"Config\":\"/etc/passwd\",\"Layers\":[]}]",
        "[{\"Config\":\"c.json\",\"Layers\":[\"a/../../x\"]}]",
        "[{\"Config\":\"c.json\",\"Layers\":[\"\"]}]",
        "[{\"Config\":\"c.json\"}]",
        "[]", "{}", "[1]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_true(sp_image_parse_docker(bad[i], strlen(bad[i]), NULL, &d, &err) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),      cmocka_unit_test(test_names_digests),
        cmocka_unit_test(test_index),       cmocka_unit_test(test_manifest_config),
        cmocka_unit_test(test_docker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
