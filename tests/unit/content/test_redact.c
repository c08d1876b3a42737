/* test_redact.c — the streaming redactor: whole values, values split at
 * every chunk boundary, overlapping and nested values, the hold-back
 * bound, refused secrets, and a randomized comparison of chunked streams
 * with whole-buffer redaction. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

struct buf {
    char p[1 << 16];
    size_t len;
};

static int out(void *ctx, const void *d, size_t n)
{
    struct buf *b = ctx;
    assert_true(b->len + n <= sizeof(b->p));
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

/* Redact text fed in chunks of `chunk` bytes (0: at split point `split`). */
static void run(const struct sp_redact *r, const char *in, size_t n,
                size_t chunk, size_t split, struct buf *b)
{
    b->len = 0;
    struct sp_redact_stream *s = sp_redact_stream_new(r);
    assert_non_null(s);
    if (chunk == 0) {
        assert_int_equal(sp_redact_feed(s, in, split, out, b), 0);
        assert_int_equal(sp_redact_feed(s, in + split, n - split, out, b), 0);
    } else {
        for (size_t i = 0; i < n; i += chunk)
            assert_int_equal(sp_redact_feed(s, in + i,
                                            n - i < chunk ? n - i : chunk,
                                            out, b),
                             0);
    }
    assert_int_equal(sp_redact_finish(s, out, b), 0);
    b->p[b->len] = '\0';
    sp_redact_stream_free(s);
}

static struct sp_redact *set(const char *const *kv)
{
    struct sp_redact *r = sp_redact_new();
    assert_non_null(r);
    for (size_t i = 0; kv[i]; i += 2)
        assert_int_equal(sp_redact_add(r, kv[i], kv[i + 1],
                                       strlen(kv[i + 1]), NULL),
                         0);
    return r;
}

static void whole_and_split(void **state)
{
    const char *kv[] = {"TOKEN", "hunter22", NULL};
    struct sp_redact *r = set(kv);
    const char *in = "pw=hunter22; again hunter22\nhunter2 is not it";
    const char *want = "pw=[REDACTED:TOKEN]; again [REDACTED:TOKEN]\n"
                       "hunter2 is not it";
    static struct buf b;
    size_t n = strlen(in);
    for (size_t split = 0; split <= n; split++) {
        run(r, in, n, 0, split, &b);
        assert_string_equal(b.p, want);
    }
    for (size_t chunk = 1; chunk <= n; chunk++) {
        run(r, in, n, chunk, 0, &b);
        assert_string_equal(b.p, want);
    }
    sp_redact_free(r);
}

static void overlapping_and_nested(void **state)
{
    const char *kv[] = {"A", "abcd", "B", "abcdef", "C", "cdxy",
                        "D", "aaab", NULL};
    struct sp_redact *r = set(kv);
    static struct buf b;
    struct {
        const char *in, *want;
    } cases[] = {
        {"abcdef", "[REDACTED:B]"},                 /* longest wins */
        {"abcdeX", "[REDACTED:A]eX"},
        {"abcdxy", "[REDACTED:A]xy"},               /* leftmost first */
        {"aaaab", "a[REDACTED:D]"},                 /* restart inside */
        {"aaaaaaab", "aaaa[REDACTED:D]"},
        {"abcabcd", "abc[REDACTED:A]"},
        {"abc", "abc"},                             /* a prefix at the end */
        {"", ""},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t n = strlen(cases[k].in);
        for (size_t chunk = 1; chunk <= n + 1; chunk++) {
            run(r, cases[k].in, n, chunk, 0, &b);
            assert_string_equal(b.p, cases[k].want);
        }
    }
    sp_redact_free(r);
}

static void hold_is_bounded(void **state)
{
    const char *kv[] = {"K", "0123456789", NULL};
    struct sp_redact *r = set(kv);
    static struct buf b;
    b.len = 0;
    struct sp_redact_stream *s = sp_redact_stream_new(r);
    const char *in = "xx012345678";
    assert_int_equal(sp_redact_feed(s, in, strlen(in), out, &b), 0);
    assert_int_equal(sp_redact_held(s), 9); /* could still be the value */
    assert_int_equal(b.len, 2);
    assert_int_equal(sp_redact_feed(s, "Z", 1, out, &b), 0);
    assert_int_equal(sp_redact_held(s), 0);
    assert_int_equal(sp_redact_finish(s, out, &b), 0);
    b.p[b.len] = '\0';
    assert_string_equal(b.p, "xx012345678Z");
    sp_redact_stream_free(s);
    sp_redact_free(r);
}

static void refused(void **state)
{
    struct sp_redact *r = sp_redact_new();
    sp_error err = {0};
    assert_int_equal(sp_redact_add(r, "S", "abc", 3, &err), -EINVAL);
    assert_non_null(strstr(err.message, "shorter"));
    assert_int_equal(sp_redact_add(r, "bad name", "abcd", 4, &err), -EINVAL);
    assert_int_equal(sp_redact_add(r, "", "abcd", 4, &err), -EINVAL);
    assert_int_equal(sp_redact_add(r, "S", "abcd", 4, &err), 0);
    assert_int_equal(sp_redact_add(r, "S", "efgh", 4, &err), -EINVAL);
    char big[SP_REDACT_MAX_SECRET + 1];
    memset(big, 'x', sizeof(big));
    assert_int_equal(sp_redact_add(r, "BIG", big, sizeof(big), &err),
                     -EINVAL);
    for (int i = 1; i < SP_REDACT_MAX_SECRETS; i++) {
        char n[16], v[16];
        snprintf(n, sizeof(n), "N%d", i);
        snprintf(v, sizeof(v), "value%d", i);
        assert_int_equal(sp_redact_add(r, n, v, strlen(v), &err), 0);
    }
    assert_int_equal(sp_redact_add(r, "ONEMORE", "abcdef", 6, &err), -E2BIG);
    assert_int_equal(sp_redact_count(r), SP_REDACT_MAX_SECRETS);
    sp_redact_free(r);
}

static void binary_and_no_secrets(void **state)
{
    struct sp_redact *r = sp_redact_new();
    static struct buf b;
    char in[300];
    for (int i = 0; i < 300; i++)
        in[i] = (char)(i * 7);
    run(r, in, sizeof(in), 13, 0, &b);
    assert_int_equal(b.len, sizeof(in));
    assert_memory_equal(b.p, in, sizeof(in));
    const char v[] = {'\0', '\n', (char)0xff, '\0', 'q'};
    assert_int_equal(sp_redact_add(r, "BIN", v, sizeof(v), NULL), 0);
    char in2[] = {'a', '\0', '\n', (char)0xff, '\0', 'q', 'b'};
    for (size_t chunk = 1; chunk < 8; chunk++) {
        run(r, in2, sizeof(in2), chunk, 0, &b);
        assert_int_equal(b.len, 2 + strlen("[REDACTED:BIN]"));
        assert_memory_equal(b.p, "a[REDACTED:BIN]b", b.len);
    }
    sp_redact_free(r);
}

/* Random texts over a small alphabet (so values occur often), random
 * chunkings: the stream must equal whole-buffer redaction. */
static void randomized(void **state)
{
    srand(12345);
    static struct buf b;
    for (int round = 0; round < 300; round++) {
        struct sp_redact *r = sp_redact_new();
        int ns = 1 + rand() % 4;
        for (int i = 0; i < ns; i++) {
            char name[16], v[12];
            int len = 4 + rand() % 6;
            for (int k = 0; k < len; k++)
                v[k] = "ab"[rand() % 2];
            snprintf(name, sizeof(name), "S%d", i);
            sp_redact_add(r, name, v, (size_t)len, NULL);
        }
        char in[400];
        size_t n = (size_t)(rand() % 400);
        for (size_t k = 0; k < n; k++)
            in[k] = "abc"[rand() % 3];
        char *want = NULL;
        size_t wl = 0;
        assert_int_equal(sp_redact_buffer(r, in, n, &want, &wl), 0);
        b.len = 0;
        struct sp_redact_stream *s = sp_redact_stream_new(r);
        for (size_t i = 0; i < n;) {
            size_t c = 1 + (size_t)(rand() % 17);
            if (c > n - i)
                c = n - i;
            assert_int_equal(sp_redact_feed(s, in + i, c, out, &b), 0);
            i += c;
        }
        assert_int_equal(sp_redact_finish(s, out, &b), 0);
        assert_int_equal(b.len, wl);
        assert_memory_equal(b.p, want, wl);
        free(want);
        sp_redact_stream_free(s);
        sp_redact_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_and_split),
        cmocka_unit_test(overlapping_and_nested),
        cmocka_unit_test(hold_is_bounded),
        cmocka_unit_test(refused),
        cmocka_unit_test(binary_and_no_secrets),
        cmocka_unit_test(randomized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
