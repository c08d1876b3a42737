/* test_util.c — sizes, durations, path normalization. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(sp_parse_size("123", &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(sp_parse_size("64k", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(sp_parse_size("64MiB", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(sp_parse_size("1.5G", &v), 0);
    assert_int_equal(v, 3ull << 29);
    assert_int_equal(sp_parse_size("", &v), -EINVAL);
    assert_int_equal(sp_parse_size("-1", &v), -EINVAL);
    assert_int_equal(sp_parse_size("12Q", &v), -EINVAL);
    assert_int_equal(sp_parse_size("1e9", &v), -EINVAL);
    assert_int_equal(sp_parse_size("inf", &v), -EINVAL);
    assert_int_equal(sp_parse_size("99999999999T", &v), -ERANGE);
    assert_int_equal(sp_parse_size(NULL, &v), -EINVAL);
}

static void test_durations(void **state)
{
    (void)state;
    double d;
    assert_int_equal(sp_parse_duration("10", &d), 0);
    assert_true(d == 10.0);
    assert_int_equal(sp_parse_duration("250ms", &d), 0);
    assert_true(d > 0.2499 && d < 0.2501);
    assert_int_equal(sp_parse_duration("2m", &d), 0);
    assert_true(d == 120.0);
    assert_int_equal(sp_parse_duration("1h", &d), 0);
    assert_int_equal(sp_parse_duration("5d", &d), -EINVAL);
    assert_int_equal(sp_parse_duration("100000h", &d), -ERANGE);
    assert_int_equal(sp_parse_duration("-3", &d), -EINVAL);
}

static void test_uint(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(sp_parse_uint("42", 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(sp_parse_uint("101", 100, &v), -ERANGE);
    assert_int_equal(sp_parse_uint("4x", 100, &v), -EINVAL);
    assert_int_equal(sp_parse_uint("99999999999999999999999", UINT64_MAX, &v),
                     -ERANGE);
}

static void test_paths(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sp_path_normalize("/a//b/./c/", out, sizeof(out)), 0);
    assert_string_equal(out, "/a/b/c");
    assert_int_equal(sp_path_normalize("/", out, sizeof(out)), 0);
    assert_string_equal(out, "/");
    assert_int_equal(sp_path_normalize("/a/../etc", out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_path_normalize("rel/path", out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_path_normalize("/aaaaaaaaaa", out, 5), -ENAMETOOLONG);
    assert_true(sp_path_has_prefix("/usr/lib", "/usr"));
    assert_true(sp_path_has_prefix("/usr", "/usr"));
    assert_false(sp_path_has_prefix("/usrx", "/usr"));
    assert_true(sp_path_has_prefix("/x", "/"));
}

static void test_printable(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain.txt", "plain.txt"},
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}, /* UTF-8 kept */
        {"a\x1b[2Jb", "a\\x1b[2Jb"},                              /* ESC */
        {"bel\a nl\n del\x7f", "bel\\x07 nl\\x0a del\\x7f"},
        {"csi\xc2\x9b" "1m", "csi\\xc2\\x9b1m"},                    /* C1 CSI */
        {"nbsp\xc2\xa0", "nbsp\xc2\xa0"},                        /* not C1 */
        {"bad\xff\xc3", "bad\\xff\\xc3"},                        /* not UTF-8 */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *o = sp_printable(cases[i].in);
        assert_non_null(o);
        assert_string_equal(o, cases[i].out);
        free(o);
    }
}

static void test_chmod_nofollow(void **state)
{
    (void)state;
    char dir[] = "/tmp/sp-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    int fd = openat(dfd, "target", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlinkat("target", dfd, "link"), 0);
    /* through the link: refused, the target keeps its mode */
    assert_int_equal(sp_chmod_nofollow(dfd, "link", 0777), -1);
    struct stat sb;
    assert_int_equal(fstatat(dfd, "target", &sb, 0), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    /* control: the file itself */
    assert_int_equal(sp_chmod_nofollow(dfd, "target", 0640), 0);
    assert_int_equal(fstatat(dfd, "target", &sb, 0), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    unlinkat(dfd, "link", 0);
    unlinkat(dfd, "target", 0);
    close(dfd);
    rmdir(dir);
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    sp_format_size(64ull << 20, buf, sizeof(buf));
    assert_string_equal(buf, "64 MiB");
    sp_format_size(100, buf, sizeof(buf));
    assert_string_equal(buf, "100 bytes");
    sp_format_size(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 KiB");
}

static void strip_is(const char *in, const char *want)
{
    char buf[256];
    size_t n = strlen(in);
    memcpy(buf, in, n);
    n = sp_strip_terminal(buf, n);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_strip_terminal(void **state)
{
    (void)state;
    strip_is("plain\ntext\t.", "plain\ntext\t.");
    strip_is("\x1b[31mred\x1b[0m\r\n", "red\n");
    strip_is("\x1b[?2004h$ ls\r\n", "$ ls\n");
    strip_is("\x1b]0;title\x07" "after", "after");
    strip_is("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link");
    strip_is("\x1b(Bx\x1b=y", "xy");
    strip_is("10%\r50%\r100%\n", "10%50%100%\n");
    strip_is("a\bb\x7f\x01" "c", "abc");
    /* Cut in the middle of a sequence: nothing of it shows. */
    strip_is("ok\x1b[3", "ok");
    strip_is("ok\x1b", "ok");
    strip_is("", "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),     cmocka_unit_test(test_durations),
        cmocka_unit_test(test_uint),      cmocka_unit_test(test_paths),
        cmocka_unit_test(test_format),    cmocka_unit_test(test_printable),
        cmocka_unit_test(test_chmod_nofollow),
        cmocka_unit_test(test_strip_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
