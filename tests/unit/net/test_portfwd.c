/* test_portfwd.c — the published-port relay (portfwd.c), built here with
 * one splice per direction per event (SP_PORTFWD_PUMP_ROUNDS 1) so that
 * every edge a busy relay meets now and then — the source's EOF read as
 * the last splice an event allows — happens on every transfer. The agent
 * side is played by this test: it answers "port.connect" with a socket to
 * a sink of its own. */
#define SP_PORTFWD_PUMP_ROUNDS 1
#include "../../../src/net/portfwd.c"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "policy.h"

static int listen_any(int *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return l;
}

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(s >= 0);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    return s;
}

/* A process that sends `bytes` to port, half-closes, and exits 0 when
 * the 8-byte count that comes back is `bytes`. */
static pid_t client(int port, uint64_t bytes)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* a failed test leaves none */
    static char buf[65536];
    memset(buf, 'x', sizeof(buf));
    int s = connect_to(port);
    for (uint64_t sent = 0; sent < bytes;) {
        size_t n = bytes - sent < sizeof(buf) ? (size_t)(bytes - sent)
                                              : sizeof(buf);
        ssize_t w = write(s, buf, n);
        if (w <= 0)
            _exit(2);
        sent += (uint64_t)w;
    }
    shutdown(s, SHUT_WR);
    uint64_t got = 0;
    _exit(read(s, &got, sizeof(got)) == (ssize_t)sizeof(got) && got == bytes
              ? 0
              : 3);
}

/* The "inside" sink: reads each connection to EOF, answers the count. */
static pid_t sink(int l)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            _exit(1);
        static char buf[65536];
        uint64_t got = 0;
        ssize_t n;
        while ((n = read(c, buf, sizeof(buf))) > 0)
            got += (uint64_t)n;
        if (write(c, &got, sizeof(got)) != (ssize_t)sizeof(got))
            _exit(1);
        close(c);
    }
}

static void test_half_close_after_last_round(void **st)
{
    (void)st;
    int inside_port;
    int il = listen_any(&inside_port);
    pid_t sk = sink(il);
    close(il);

    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    char json[128];
    snprintf(json, sizeof(json), "{\"publish\": [\"0:%d\"]}", inside_port);
    assert_int_equal(sp_policy_apply_json_text(p, json, "t", &err), 0);
    struct sp_portfwd *f = NULL;
    assert_int_equal(sp_portfwd_new(p->publish, p->n_publish, &f, &err), 0);
    assert_non_null(f);
    int host_port = (int)f->ls[0].bound_port;

    /* transfers of several sizes, one after another and two at once */
    static const uint64_t sizes[] = {1, 4096, 300000, 3u << 20, 5u << 20};
    for (size_t t = 0; t < SP_ARRAY_SIZE(sizes); t++) {
        pid_t cl[2] = {client(host_port, sizes[t]),
                       t % 2 ? client(host_port, sizes[t] + 7) : -1};
        int left = cl[1] > 0 ? 2 : 1, ok = 0;
        uint64_t deadline = sp_now_us() + 10u * 1000000u;
        while (left > 0 && sp_now_us() < deadline) {
            struct pollfd pfd[64];
            size_t n = sp_portfwd_pollfds(f, pfd, SP_ARRAY_SIZE(pfd));
            poll(pfd, n, 10);
            sp_portfwd_events(f, pfd, n);
            char *req;
            while ((req = sp_portfwd_take_request(f))) {
                json_t *o = json_loads(req, 0, NULL);
                json_int_t id = json_integer_value(json_object_get(o, "id"));
                json_decref(o);
                free(req);
                int fd = connect_to(inside_port);
                fcntl(fd, F_SETFL, O_NONBLOCK);
                sp_portfwd_reply(f, id, true, fd);
            }
            for (int k = 0; k < 2; k++) {
                int stt;
                if (cl[k] > 0 && waitpid(cl[k], &stt, WNOHANG) == cl[k]) {
                    ok += WIFEXITED(stt) && WEXITSTATUS(stt) == 0;
                    cl[k] = -1;
                    left--;
                }
            }
        }
        for (int k = 0; k < 2; k++)
            if (cl[k] > 0) {
                kill(cl[k], SIGKILL);
                waitpid(cl[k], NULL, 0);
            }
        /* a client left waiting means the half-close was lost */
        assert_int_equal(left, 0);
        assert_int_equal(ok, t % 2 ? 2 : 1);
    }
    sp_portfwd_free(f);
    sp_policy_free(p);
    kill(sk, SIGKILL);
    waitpid(sk, NULL, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_close_after_last_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
