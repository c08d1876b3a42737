/* test_netplumb.c — the --net allow plumbing: policy keys (net, net_allow,
 * net_policy, net_allow_private, net_log) and their round trip through
 * sp_policy_to_json, the proxy environment, the listener hand-over over
 * SCM_RIGHTS, and event JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netplumb.h"
#include "policy.h"

static struct sp_policy *apply(const char *json, int want)
{
    struct sp_policy *p = sp_policy_new();
    sp_error err = {0};
    int r = sp_policy_apply_json_text(p, json, "test", &err);
    if (want == 0)
        assert_int_equal(r, 0);
    else
        assert_true(r < 0);
    return p;
}

static void test_net_keys(void **state)
{
    (void)state;
    struct sp_policy *p = apply("{\"net\": \"allow:Pypi.org., *.x.org:8443\"}", 0);
    assert_int_equal(p->net, SP_NET_ALLOW);
    struct sp_proxy_config cfg;
    sp_error err = {0};
    assert_int_equal(sp_net_config_of_policy(p, &cfg, &err), 0);
    assert_int_equal(cfg.n_rules, 2);
    assert_string_equal(cfg.rules[0].host, "pypi.org");
    assert_string_equal(cfg.rules[1].host, "*.x.org");
    assert_int_equal(cfg.rules[1].port, 8443);
    assert_false(cfg.allow_private);
    sp_proxy_config_free(&cfg);

    /* net_allow_private ORs in; net none drops the list. */
    assert_int_equal(sp_policy_apply_json_text(p, "{\"net_allow_private\": true}",
                                               "t", &err), 0);
    assert_int_equal(sp_net_config_of_policy(p, &cfg, &err), 0);
    assert_true(cfg.allow_private);
    sp_proxy_config_free(&cfg);

    /* Round trip through the printed form (how workspaces store it). */
    char *pj = sp_policy_to_json(p, &err);
    assert_non_null(pj);
    /* As workspaces do: drop the key printed only for people. */
    json_t *o = json_loads(pj, 0, NULL);
    free(pj);
    json_object_del(o, "system_paths_ro");
    char *j = json_dumps(o, 0);
    json_decref(o);
    struct sp_policy *q = sp_policy_new();
    int rr = sp_policy_apply_json_text(q, j, "printed", &err);
    if (rr < 0)
        fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rr, 0);
    assert_int_equal(q->net, SP_NET_ALLOW);
    assert_true(q->net_allow_private);
    assert_string_equal(q->net_proxy, p->net_proxy);
    free(j);
    sp_policy_free(q);

    assert_int_equal(sp_policy_apply_json_text(p, "{\"net\": \"none\"}", "t",
                                               &err), 0);
    assert_int_equal(p->net, SP_NET_NONE);
    assert_null(p->net_proxy);
    sp_policy_free(p);

    p = apply("{\"net_allow\": [\"a.org\", \"10.0.0.5:8080\"], "
              "\"net_log\": \"/tmp/x.jsonl\"}", 0);
    assert_int_equal(p->net, SP_NET_ALLOW);
    assert_string_equal(p->net_log, "/tmp/x.jsonl");
    sp_policy_free(p);

    p = apply("{\"net_policy\": {\"allow\": [{\"host\": \"a.org\", \"port\": 1}],"
              " \"max_connections\": 3}}", 0);
    assert_int_equal(sp_net_config_of_policy(p, &cfg, &err), 0);
    assert_int_equal(cfg.max_conns, 3);
    assert_int_equal(cfg.rules[0].port, 1);
    sp_proxy_config_free(&cfg);
    sp_policy_free(p);
}

static void test_net_keys_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"net\": \"allow:http://a.org/\"}",
        "{\"net\": \"allow:*\"}",
        "{\"net\": \"allow:a.org,user@b.org\"}",
        "{\"net\": \"allow:a..org\"}",
        "{\"net\": \"allow:a.org:99999\"}",
        "{\"net\": \"allowed\"}",
        "{\"net\": 1}",
        "{\"net_allow\": \"a.org\"}",
        "{\"net_allow\": [1]}",
        "{\"net_policy\": {\"allow\": [\"a.org\"], \"nope\": 1}}",
        "{\"net_policy\": {\"header_max\": 5}}",
        "{\"net_policy\": \"/nonexistent/net.json\"}",
        "{\"net_policy\": 7}",
        "{\"net_allow_private\": \"yes\"}",
        "{\"net_log\": \"relative.jsonl\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sp_policy *p = sp_policy_new();
        sp_error err = {0};
        int r = sp_policy_apply_json_text(p, bad[i], "test", &err);
        if (r >= 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        assert_true(r < 0);
        assert_int_equal(err.kind, SP_ERR_USAGE);
        /* A failed apply changes nothing. */
        assert_int_equal(p->net, SP_NET_NONE);
        assert_null(p->net_proxy);
        sp_policy_free(p);
    }
}

static void test_env_add(void **state)
{
    (void)state;
    char **env = calloc(3, sizeof(char *));
    env[0] = strdup("PATH=/bin");
    env[1] = strdup("http_proxy=http://evil:1");
    assert_int_equal(sp_net_env_add(&env, 3128), 0);
    size_t n = 0, hits = 0;
    for (; env[n]; n++) {
        if (strstr(env[n], "_PROXY=") || strstr(env[n], "_proxy=")) {
            if (strncmp(env[n], "NO_", 3) == 0 || strncmp(env[n], "no_", 3) == 0)
                assert_string_equal(strchr(env[n], '=') + 1,
                                    "localhost,127.0.0.1,::1");
            else
                assert_string_equal(strchr(env[n], '=') + 1,
                                    "http://127.0.0.1:3128");
            hits++;
        }
    }
    assert_int_equal(hits, 8);
    assert_int_equal(n, 9); /* PATH + 8, the old http_proxy replaced */
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

static void test_listener_handover(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* Port 0: any free port (the real one is fixed inside a fresh netns). */
    assert_int_equal(sp_net_child_send_listener(sv[1], 0), 0);
    int lfd = sp_net_recv_listener(sv[0]);
    assert_true(lfd >= 0);
    int acc = 0;
    socklen_t al = sizeof(acc);
    assert_int_equal(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al), 0);
    assert_int_equal(acc, 1);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
    close(lfd);
    /* EOF, and bytes without an fd, are refused. */
    assert_int_equal(write(sv[1], "L", 1), 1);
    assert_int_equal(sp_net_recv_listener(sv[0]), -EPROTO);
    close(sv[1]);
    assert_int_equal(sp_net_recv_listener(sv[0]), -ECONNRESET);
    close(sv[0]);
}

static void test_event_json(void **state)
{
    (void)state;
    struct sp_proxy_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.seq = 7;
    ev.decision = SP_PROXY_DENIED;
    ev.status = 403;
    ev.bytes_down = 12;
    snprintf(ev.host, sizeof(ev.host), "a\"b.org");
    json_t *o = sp_net_event_json(&ev);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "decision")),
                        "denied");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "a\"b.org");
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_down")), 12);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_keys),
        cmocka_unit_test(test_net_keys_hostile),
        cmocka_unit_test(test_env_add),
        cmocka_unit_test(test_listener_handover),
        cmocka_unit_test(test_event_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
