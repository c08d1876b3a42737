/* test_ring.c — the byte ring of shells and service logs (ring.h): cursor
 * reads, wrap-around, writes larger than the ring, dropped counts, tail
 * lines, and base64 both ways with hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ring.h"

static void wrap_and_drop(void **state)
{
    (void)state;
    struct sp_ring r;
    assert_int_equal(sp_ring_init(&r, 8), 0);
    char out[16];
    uint64_t from, dropped;
    sp_ring_write(&r, "abcde", 5);
    assert_int_equal(sp_ring_read(&r, 0, 16, out, &from, &dropped), 5);
    assert_memory_equal(out, "abcde", 5);
    assert_int_equal(dropped, 0);
    sp_ring_write(&r, "fghij", 5); /* wraps; "ab" dropped */
    assert_int_equal(sp_ring_start(&r), 2);
    assert_int_equal(sp_ring_read(&r, 0, 16, out, &from, &dropped), 8);
    assert_int_equal(from, 2);
    assert_int_equal(dropped, 2);
    assert_memory_equal(out, "cdefghij", 8);
    /* A cursor in the middle, a small max. */
    assert_int_equal(sp_ring_read(&r, 6, 3, out, &from, &dropped), 3);
    assert_memory_equal(out, "ghi", 3);
    /* Past the end: nothing. */
    assert_int_equal(sp_ring_read(&r, 100, 3, out, &from, &dropped), 0);
    assert_int_equal(from, 10);
    /* A write larger than the ring keeps its last bytes. */
    sp_ring_write(&r, "0123456789ABCDEF", 16);
    assert_int_equal(r.end, 26);
    assert_int_equal(sp_ring_read(&r, 0, 16, out, &from, &dropped), 8);
    assert_memory_equal(out, "89ABCDEF", 8);
    assert_int_equal(dropped, 18);
    sp_ring_free(&r);
}

static void tail_lines(void **state)
{
    (void)state;
    struct sp_ring r;
    assert_int_equal(sp_ring_init(&r, 64), 0);
    assert_int_equal(sp_ring_tail_lines(&r, 3), 0);
    sp_ring_write(&r, "one\ntwo\nthree\n", 14);
    assert_int_equal(sp_ring_tail_lines(&r, 1), 8);
    assert_int_equal(sp_ring_tail_lines(&r, 2), 4);
    assert_int_equal(sp_ring_tail_lines(&r, 10), 0);
    assert_int_equal(sp_ring_tail_lines(&r, 0), 14);
    sp_ring_write(&r, "four", 4); /* no final newline: still a line */
    assert_int_equal(sp_ring_tail_lines(&r, 1), 14);
    sp_ring_free(&r);
}

static void base64(void **state)
{
    (void)state;
    const char *cases[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="},
                              {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
                              {"\xff\x00\xfe", "/wD+"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i][0]) + (i == 5 ? 3 - strlen(cases[i][0]) : 0);
        char enc[32], dec[32];
        assert_int_equal(sp_b64_encode(cases[i][0], n, enc), strlen(cases[i][1]));
        assert_string_equal(enc, cases[i][1]);
        assert_int_equal(sp_b64_decode(enc, strlen(enc), dec), (long)n);
        assert_memory_equal(dec, cases[i][0], n);
    }
    char dec[32];
    const char *bad[] = {"Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "=AAA", "A=AA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sp_b64_decode(bad[i], strlen(bad[i]), dec), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wrap_and_drop),
        cmocka_unit_test(tail_lines),
        cmocka_unit_test(base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
