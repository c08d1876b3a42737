/* test_proto.c — the wire format: framing, bounds, fd queueing over a real
 * socketpair, and parsing of good, malformed and oversized messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

static void parse_ok(void **state)
{
    const char *l = "{\"id\":7,\"method\":\"exec\",\"params\":{\"argv\":[\"ls\"]}}";
    struct sp_proto_msg m;
    assert_int_equal(sp_proto_parse(l, strlen(l), &m, NULL), 0);
    assert_string_equal(m.method, "exec");
    assert_int_equal(json_integer_value(m.id), 7);
    assert_non_null(m.params);
    sp_proto_msg_free(&m);

    l = "{\"id\":\"a\",\"result\":{\"status\":3}}";
    assert_int_equal(sp_proto_parse(l, strlen(l), &m, NULL), 0);
    assert_null(m.method);
    assert_non_null(m.result);
    sp_proto_msg_free(&m);

    l = "{\"id\":1,\"error\":{\"code\":-32601,\"message\":\"no\"}}";
    assert_int_equal(sp_proto_parse(l, strlen(l), &m, NULL), 0);
    assert_true(m.is_error);
    assert_int_equal(m.err_code, SP_RPC_METHOD);
    assert_string_equal(m.err_message, "no");
    sp_proto_msg_free(&m);
}

static void parse_bad(void **state)
{
    static const char *const bad[] = {
        "", "nope", "[]", "42", "{}", "{\"id\":1}",
        "{\"method\":3}", "{\"method\":\"\"}",
        "{\"method\":\"x\",\"params\":[1]}",
        "{\"id\":[1],\"method\":\"x\"}", "{\"id\":1.5,\"method\":\"x\"}",
        "{\"method\":\"x\",\"result\":1}",
        "{\"id\":1,\"result\":1,\"error\":{}}",
        "{\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
        "{\"id\":1,\"error\":3}",
        "{\"method\":\"x\",\"method\":\"y\"}",   /* duplicate key */
        "{\"method\":\"a\\u0000b\"}",           /* NUL in method */
        "{\"method\":\"x\"", "{\"method\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sp_proto_msg m;
        sp_error err = {0};
        int r = sp_proto_parse(bad[i], strlen(bad[i]), &m, &err);
        if (r == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err.message[0] != '\0');
    }
    /* A long method name and a long string id. */
    char buf[600];
    memset(buf, 0, sizeof(buf));
    strcpy(buf, "{\"method\":\"");
    memset(buf + strlen(buf), 'm', SP_PROTO_MAX_METHOD + 1);
    strcat(buf, "\"}");
    struct sp_proto_msg m;
    assert_true(sp_proto_parse(buf, strlen(buf), &m, NULL) < 0);
    memset(buf, 0, sizeof(buf));
    strcpy(buf, "{\"method\":\"x\",\"id\":\"");
    memset(buf + strlen(buf), 'i', SP_PROTO_MAX_ID + 1);
    strcat(buf, "\"}");
    assert_true(sp_proto_parse(buf, strlen(buf), &m, NULL) < 0);
    assert_int_equal(sp_proto_parse_code("x", 1), SP_RPC_PARSE);
    assert_int_equal(sp_proto_parse_code("[]", 2), SP_RPC_INVALID);
}

static void framing(void **state)
{
    struct sp_proto_buf b;
    sp_proto_buf_init(&b);
    char *line = NULL;
    size_t len = 0;
    assert_int_equal(sp_proto_feed(&b, "{\"a\":1}\n{\"b\"", 12), 0);
    assert_int_equal(sp_proto_next_line(&b, &line, &len), 1);
    assert_string_equal(line, "{\"a\":1}");
    free(line);
    assert_int_equal(sp_proto_next_line(&b, &line, &len), 0);
    assert_int_equal(sp_proto_feed(&b, ":2}\n\n", 5), 0);
    assert_int_equal(sp_proto_next_line(&b, &line, &len), 1);
    assert_string_equal(line, "{\"b\":2}");
    free(line);
    assert_int_equal(sp_proto_next_line(&b, &line, &len), 1);
    assert_int_equal(len, 0);
    free(line);
    sp_proto_buf_free(&b);
}

static void oversized(void **state)
{
    struct sp_proto_buf b;
    sp_proto_buf_init(&b);
    size_t n = SP_PROTO_MAX_LINE + 10;
    char *big = malloc(n);
    memset(big, 'x', n);
    assert_int_equal(sp_proto_feed(&b, big, n), -EMSGSIZE);
    char *line = NULL;
    size_t len = 0;
    assert_int_equal(sp_proto_next_line(&b, &line, &len), -EMSGSIZE);
    sp_proto_buf_free(&b);

    /* Exactly at the bound (line + newline) is fine. */
    sp_proto_buf_init(&b);
    big[SP_PROTO_MAX_LINE - 1] = '\n';
    assert_int_equal(sp_proto_feed(&b, big, SP_PROTO_MAX_LINE), 0);
    assert_int_equal(sp_proto_next_line(&b, &line, &len), 1);
    assert_int_equal(len, SP_PROTO_MAX_LINE - 1);
    assert_true(sp_proto_parse(line, len, &(struct sp_proto_msg){0}, NULL) < 0);
    free(line);
    sp_proto_buf_free(&b);
    free(big);
}

static void fds_over_socket(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int fds[3] = {p[0], p[1], p[1]};
    const char *l = "{\"id\":1,\"method\":\"exec\"}\n";
    assert_int_equal(sp_proto_send(sv[0], l, strlen(l), fds, 3), 0);
    struct sp_proto_buf b;
    sp_proto_buf_init(&b);
    assert_true(sp_proto_recv(sv[1], &b) > 0);
    assert_int_equal(b.n_fds, 3);
    int got[3];
    assert_int_equal(sp_proto_take_fds(&b, got, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
        close(got[i]);
    }
    /* Four fds in one message: refused, and none leak into the queue. */
    int four[4] = {p[0], p[0], p[0], p[0]};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    char c = '\n';
    struct iovec iov = {&c, 1};
    char ctl[CMSG_SPACE(sizeof(four))];
    memset(ctl, 0, sizeof(ctl));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof(ctl);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(four));
    memcpy(CMSG_DATA(cm), four, sizeof(four));
    assert_int_equal(sendmsg(sv[0], &mh, 0), 1);
    assert_int_equal(sp_proto_recv(sv[1], &b), -EPROTO);
    assert_true(b.n_fds <= 2 * SP_PROTO_MAX_FDS);
    sp_proto_buf_free(&b);
    /* EOF */
    close(sv[0]);
    sp_proto_buf_init(&b);
    assert_int_equal(sp_proto_recv(sv[1], &b), 0);
    sp_proto_buf_free(&b);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

static void build_and_params(void **state)
{
    json_t *id = json_integer(5);
    char *l = sp_proto_error(id, SP_RPC_PARAMS, "bad %s", "thing");
    assert_non_null(l);
    assert_true(l[strlen(l) - 1] == '\n');
    struct sp_proto_msg m;
    assert_int_equal(sp_proto_parse(l, strlen(l) - 1, &m, NULL), 0);
    assert_string_equal(m.err_message, "bad thing");
    sp_proto_msg_free(&m);
    free(l);
    json_decref(id);

    json_t *p = json_pack("{s:[s,s],s:s,s:f,s:[i]}", "argv", "a", "b", "cwd",
                          "/x", "timeout", 2.5, "env", 3);
    const char **argv = NULL, **env = NULL;
    const char *cwd = NULL;
    double t = 0;
    sp_error err = {0};
    assert_int_equal(sp_proto_get_strv(p, "argv", true, 1, 10, 100, &argv, &err), 0);
    assert_string_equal(argv[1], "b");
    assert_null(argv[2]);
    free(argv);
    assert_true(sp_proto_get_strv(p, "argv", true, 3, 10, 100, &argv, &err) < 0);
    assert_true(sp_proto_get_strv(p, "env", true, 0, 10, 100, &env, &err) < 0);
    assert_true(sp_proto_get_strv(p, "nope", true, 0, 10, 100, &env, &err) < 0);
    assert_int_equal(sp_proto_get_strv(p, "nope", false, 0, 10, 100, &env, &err), 0);
    assert_int_equal(sp_proto_get_string(p, "cwd", true, 10, &cwd, &err), 0);
    assert_true(sp_proto_get_string(p, "cwd", true, 1, &cwd, &err) < 0);
    assert_int_equal(sp_proto_get_number(p, "timeout", true, 0, 10, &t, &err), 0);
    assert_true(t == 2.5);
    assert_true(sp_proto_get_number(p, "timeout", true, 0, 1, &t, &err) < 0);
    assert_true(sp_proto_get_number(p, "cwd", true, 0, 1, &t, &err) < 0);
    json_decref(p);
}

/* Binary frames: a line with "frame":N comes out only with its N raw
 * bytes (which may hold newlines and NULs), fed in any pieces; bad frame
 * values are refused; lines without a frame pass as before. */
static void binary_frames(void **state)
{
    struct sp_proto_buf b;
    sp_proto_buf_init(&b);
    const char hdr[] = "{\"id\":1,\"result\":{},\"frame\":5}\n";
    const char body[] = {'a', '\n', '\0', '\n', 'z'};
    const char tail[] = "{\"id\":2,\"result\":{}}\n";
    char all[256];
    size_t n = 0;
    memcpy(all + n, hdr, strlen(hdr));
    n += strlen(hdr);
    memcpy(all + n, body, sizeof(body));
    n += sizeof(body);
    memcpy(all + n, tail, strlen(tail));
    n += strlen(tail);
    for (size_t split = 0; split <= n; split++) {
        char *line = NULL, *frame = NULL;
        size_t len = 0, flen = 0;
        assert_int_equal(sp_proto_feed(&b, all, split), 0);
        int r = sp_proto_next_framed(&b, &line, &len, &frame, &flen);
        if (split < strlen(hdr) + sizeof(body)) {
            assert_int_equal(r, 0);
            assert_int_equal(sp_proto_feed(&b, all + split, n - split), 0);
            r = sp_proto_next_framed(&b, &line, &len, &frame, &flen);
        } else {
            assert_int_equal(sp_proto_feed(&b, all + split, n - split), 0);
        }
        assert_int_equal(r, 1);
        assert_int_equal(len, strlen(hdr) - 1);
        assert_int_equal(flen, sizeof(body));
        assert_memory_equal(frame, body, sizeof(body));
        free(line);
        free(frame);
        assert_int_equal(sp_proto_next_framed(&b, &line, &len, &frame, &flen),
                         1);
        assert_null(frame);
        assert_int_equal(flen, 0);
        assert_string_equal(line, "{\"id\":2,\"result\":{}}");
        free(line);
        assert_int_equal(b.len, 0);
    }
    static const char *const bad[] = {
        "{\"frame\":0}\n", "{\"frame\":-3}\n", "{\"frame\":\"5\"}\n",
        "{\"frame\":1.5}\n", "{\"frame\":99999999999}\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_proto_buf_free(&b);
        sp_proto_buf_init(&b);
        char *line = NULL, *frame = NULL;
        size_t len = 0, flen = 0;
        assert_int_equal(sp_proto_feed(&b, bad[i], strlen(bad[i])), 0);
        assert_int_equal(sp_proto_next_framed(&b, &line, &len, &frame, &flen),
                         -EPROTO);
    }
    /* "frame" inside a string is not a frame. */
    sp_proto_buf_free(&b);
    sp_proto_buf_init(&b);
    const char s[] = "{\"id\":1,\"result\":{\"x\":\"\\\"frame\\\":9\"}}\n";
    char *line = NULL, *frame = NULL;
    size_t len = 0, flen = 0;
    assert_int_equal(sp_proto_feed(&b, s, strlen(s)), 0);
    assert_int_equal(sp_proto_next_framed(&b, &line, &len, &frame, &flen), 1);
    assert_int_equal(flen, 0);
    free(line);
    sp_proto_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_ok),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(framing),
        cmocka_unit_test(oversized),
        cmocka_unit_test(fds_over_socket),
        cmocka_unit_test(build_and_params),
        cmocka_unit_test(binary_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
