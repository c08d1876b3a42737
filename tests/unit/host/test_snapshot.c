/* test_snapshot.c — the snapshot store's own parsers (snapshot.h): a
 * workspace's stack file (layer ids, one a line, bounded depth) and a
 * layer's .index (binary records; truncated or odd input ends the parse,
 * never reads past it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "snapshot.h"

static void test_stack(void **state)
{
    (void)state;
    const char *ok = "l-0123456789abcdef\nl-fedcba9876543210\n";
    assert_int_equal(sp_snap_parse_stack(ok, strlen(ok)), 2);
    assert_int_equal(sp_snap_parse_stack("", 0), 0);
    const char *bad[] = {"l-0123456789abcdeF\n", "l-0123\n", "../x\n",
                         "l-0123456789abcdef0\n", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sp_snap_parse_stack(bad[i], strlen(bad[i])), -EINVAL);
    /* a NUL inside is refused, not cut */
    const char nul[] = "l-0123456789abcdef\0l-0123456789abcdef\n";
    assert_int_equal(sp_snap_parse_stack(nul, sizeof(nul) - 1), -EINVAL);
    /* the depth bound */
    char deep[(SP_SNAP_MAX_DEPTH + 1) * 19 + 1];
    size_t n = 0;
    for (int i = 0; i <= SP_SNAP_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "l-%016x\n", i);
    assert_int_equal(sp_snap_parse_stack(deep, n), -EINVAL);
    assert_int_equal(sp_snap_parse_stack(deep, n - 19), SP_SNAP_MAX_DEPTH);
}

static size_t rec(char *p, const char *path)
{
    uint64_t f[7] = {2049, 1234, 100, 1, 2, 3, 4};
    uint16_t l = (uint16_t)strlen(path);
    memcpy(p, f, sizeof(f));
    memcpy(p + sizeof(f), &l, 2);
    memcpy(p + sizeof(f) + 2, path, l);
    return sizeof(f) + 2 + l;
}

static void test_index(void **state)
{
    (void)state;
    char buf[512];
    size_t n = 0;
    memcpy(buf, "SPIX1\n", 6);
    n = 6;
    n += rec(buf + n, "workspace/a");
    n += rec(buf + n, "usr/local/b");
    assert_int_equal(sp_snap_parse_index(buf, n), 2);
    /* cut anywhere inside the second record: only the first is kept */
    for (size_t cut = 6 + 58 + 11; cut < n; cut++)
        assert_int_equal(sp_snap_parse_index(buf, cut), 1);
    assert_int_equal(sp_snap_parse_index(buf, 5), 0);
    buf[0] = 'X';
    assert_int_equal(sp_snap_parse_index(buf, n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack),
        cmocka_unit_test(test_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
