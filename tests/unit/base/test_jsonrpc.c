/* test_jsonrpc.c — the JSON-RPC 2.0 layer of serve and mcp: framing with
 * its bound, validation of every message kind, replies, the output queue,
 * and the UTF-8 helpers used to bound command output. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonrpc.h"

static void test_framing(void **state)
{
    struct sp_jrpc_in b;
    sp_jrpc_in_init(&b, 16);
    const char *l;
    size_t n;
    assert_int_equal(sp_jrpc_in_feed(&b, "ab", 2), 0);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 0);
    assert_int_equal(sp_jrpc_in_feed(&b, "c\r\nde\n", 6), 0);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 1);
    assert_string_equal(l, "abc");
    assert_int_equal(n, 3);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 1);
    assert_string_equal(l, "de");
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 0);
    /* Oversized, in pieces: reported once, then skipped to its newline. */
    assert_int_equal(sp_jrpc_in_feed(&b, "0123456789abcdefXYZ", 19), 0);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), -EMSGSIZE);
    assert_int_equal(sp_jrpc_in_feed(&b, "more\nok\n", 8), 0);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 1);
    assert_string_equal(l, "ok");
    /* Oversized in one piece with its newline. */
    assert_int_equal(sp_jrpc_in_feed(&b, "0123456789abcdefXYZ\nyes\n", 24), 0);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), -EMSGSIZE);
    assert_int_equal(sp_jrpc_in_next(&b, &l, &n), 1);
    assert_string_equal(l, "yes");
    sp_jrpc_in_free(&b);
}

static int check_line(const char *s, struct sp_jrpc_msg *m, json_t **root)
{
    const char *why = NULL;
    int r = sp_jrpc_parse(s, strlen(s), root, &why);
    if (r)
        return r;
    return sp_jrpc_check(*root, m, &why);
}

static void test_validation(void **state)
{
    struct sp_jrpc_msg m;
    json_t *o = NULL;
    assert_int_equal(check_line("{x", &m, &o), SP_JRPC_PARSE);
    assert_int_equal(check_line("[]", &m, &o), SP_JRPC_INVALID);
    assert_int_equal(check_line("7", &m, &o), SP_JRPC_INVALID);
    assert_int_equal(check_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"method\":\"b\"}", &m, &o),
                     SP_JRPC_PARSE); /* duplicate keys */
#define OK(s, want)                                                            \
    do {                                                                       \
        assert_int_equal(check_line(s, &m, &o), 0);                            \
        assert_int_equal(m.kind, want);                                        \
        json_decref(o);                                                        \
    } while (0)
#define BAD(s)                                                                 \
    do {                                                                       \
        o = NULL;                                                              \
        assert_int_equal(check_line(s, &m, &o), SP_JRPC_INVALID);              \
        json_decref(o);                                                        \
    } while (0)
    OK("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", SP_JRPC_REQUEST);
    OK("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"a\",\"params\":[1]}", SP_JRPC_REQUEST);
    BAD("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}"); /* never null */
    OK("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}", SP_JRPC_NOTIFY);
    OK("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", SP_JRPC_RESPONSE);
    OK("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1}}", SP_JRPC_RESPONSE);
    BAD("{\"id\":1,\"method\":\"ping\"}");
    BAD("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}");
    /* NUL inside a string: parsed, then refused naming the request (a
     * reply with a null id is one clients drop). */
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}");
    BAD("{\"jsonrpc\":\"2.0\\u0000x\",\"id\":1,\"method\":\"a\"}");
    o = NULL;
    assert_int_equal(check_line("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"a\","
                                "\"params\":{\"k\":[\"ok\",{\"p\":\"a\\u0000b\"}]}}",
                                &m, &o),
                     SP_JRPC_PARAMS);
    assert_int_equal(json_integer_value(m.id), 9);
    json_decref(o);
    OK("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"a\",\"params\":{\"k\":\"\\u0001\"}}",
       SP_JRPC_REQUEST);
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":3}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"result\":3}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1}");
    BAD("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}");
    /* The id is kept for the error reply when it is usable. */
    o = NULL;
    assert_int_equal(check_line("{\"jsonrpc\":\"1\",\"id\":42,\"method\":\"a\"}", &m, &o),
                     SP_JRPC_INVALID);
    assert_int_equal(json_integer_value(m.id), 42);
    json_decref(o);
}

static void test_replies_and_queue(void **state)
{
    json_t *id = json_string("q");
    json_t *e = sp_jrpc_error(id, SP_JRPC_METHOD, NULL, "no %s", "such");
    assert_string_equal(json_string_value(json_object_get(e, "jsonrpc")), "2.0");
    assert_string_equal(json_string_value(json_object_get(e, "id")), "q");
    json_t *err = json_object_get(e, "error");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), -32601);
    assert_string_equal(json_string_value(json_object_get(err, "message")), "no such");
    json_t *nullid = sp_jrpc_result(NULL, NULL);
    assert_true(json_is_null(json_object_get(nullid, "id")));
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    struct sp_jrpc_out q;
    sp_jrpc_out_init(&q, 100);
    assert_int_equal(sp_jrpc_out_push(&q, e), 0);
    assert_int_equal(sp_jrpc_out_push(&q, nullid), -ENOBUFS); /* over 100 bytes */
    assert_int_equal(sp_jrpc_out_flush(&q, p[1]), 0);
    char buf[256] = "";
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    assert_true(n > 0 && buf[n - 1] == '\n');
    assert_non_null(strstr(buf, "\"code\":-32601"));
    sp_jrpc_out_free(&q);
    json_decref(id);
    close(p[0]);
    close(p[1]);
}

static void test_utf8(void **state)
{
    json_t *s = sp_jrpc_string_lossy("a\xffz", 3);
    assert_string_equal(json_string_value(s), "a\xef\xbf\xbdz");
    json_decref(s);
    s = sp_jrpc_string_lossy("\xc3\xa9", 2);
    assert_string_equal(json_string_value(s), "\xc3\xa9");
    json_decref(s);
    s = sp_jrpc_string_lossy("a\0b", 3); /* NUL is replaced too */
    assert_int_equal(json_string_length(s), 5);
    json_decref(s);
    s = sp_jrpc_string_lossy("\xed\xa0\x80", 3); /* a surrogate */
    assert_int_equal(json_string_length(s), 9);
    json_decref(s);
    /* Never cut a character in half. */
    assert_int_equal(sp_jrpc_utf8_cut("ab\xc3\xa9", 3), 2);
    assert_int_equal(sp_jrpc_utf8_cut("ab\xc3\xa9", 4), 4);
    assert_int_equal(sp_jrpc_utf8_cut("\xe2\x82\xac\xe2\x82", 5), 3);
    assert_int_equal(sp_jrpc_utf8_cut("\xf0\x9f\x98\x80", 3), 0);
    assert_int_equal(sp_jrpc_utf8_cut("abc", 3), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_replies_and_queue),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
