/* test_proxy.c — unit tests for the egress proxy's pure parts: allow-list
 * parsing (text and JSON), host matching, address classification, the
 * HTTP request-head parser and rewriter, and the TLS SNI parser fed with
 * malformed ClientHellos. The event loop is covered by
 * tests/integration/test_proxy_module.py with real clients. */
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

#include "proxy.h"

/* ---- config ---------------------------------------------------------------- */

static void test_config_parse_ok(void **state)
{
    struct sp_proxy_config cfg;
    sp_error err = {0};
    assert_int_equal(sp_proxy_config_parse(
                         "allow:PyPI.org., *.pythonhosted.org ,example.com:8443,"
                         "10.0.0.5,10.0.0.6:8080,::1,[fe80::1]:22,127.1",
                         &cfg, &err),
                     0);
    assert_int_equal(cfg.n_rules, 8);
    assert_string_equal(cfg.rules[0].host, "pypi.org");
    assert_int_equal(cfg.rules[0].port, 0);
    assert_string_equal(cfg.rules[1].host, "*.pythonhosted.org");
    assert_string_equal(cfg.rules[2].host, "example.com");
    assert_int_equal(cfg.rules[2].port, 8443);
    assert_string_equal(cfg.rules[3].host, "10.0.0.5");
    assert_int_equal(cfg.rules[4].port, 8080);
    assert_string_equal(cfg.rules[5].host, "::1");
    assert_int_equal(cfg.rules[5].port, 0);
    assert_string_equal(cfg.rules[6].host, "fe80::1");
    assert_int_equal(cfg.rules[6].port, 22);
    assert_string_equal(cfg.rules[7].host, "127.0.0.1"); /* canonical form */
    assert_false(cfg.allow_private);
    assert_int_equal(cfg.max_conns, SP_PROXY_DEFAULT_MAX_CONNS);
    assert_int_equal(cfg.header_max, SP_PROXY_DEFAULT_HEADER_MAX);
    sp_proxy_config_free(&cfg);
    assert_null(cfg.rules);
    sp_proxy_config_free(NULL);
}

static void test_config_parse_bad(void **state)
{
    static const char *const bad[] = {
        "", ",", "pypi.org,", ",pypi.org", "pypi.org,,x.org", "*", "*.",
        "*.*.com", "foo*.com", "a..b", ".a", "ex ample.com", "host:0",
        "host:70000", "host:abc", "host:", "[::1", "[example.com]:80",
        "[::1]x", "a_b:1:2:3:zz", "exa%mple.com", "http://pypi.org",
        "pypi.org/path", "user@pypi.org",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sp_proxy_config cfg;
        sp_error err = {0};
        int r = sp_proxy_config_parse(bad[i], &cfg, &err);
        if (r != -EINVAL)
            fail_msg("'%s' gave %d", bad[i], r);
        assert_int_equal(err.kind, SP_ERR_USAGE);
        assert_true(strlen(err.message) > 0);
        assert_null(cfg.rules);
        assert_int_equal(cfg.n_rules, 0);
    }
    struct sp_proxy_config cfg;
    sp_error err = {0};
    assert_int_equal(sp_proxy_config_parse("good.com,b@d", &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.message, "b@d"));
    assert_int_equal(sp_proxy_config_parse(NULL, &cfg, NULL), -EINVAL);
}

static void test_config_too_many_rules(void **state)
{
    size_t n = SP_PROXY_MAX_RULES + 1;
    char *s = malloc(n * 8 + 1);
    assert_non_null(s);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(s, i ? ",a.com" : "a.com");
    struct sp_proxy_config cfg;
    assert_int_equal(sp_proxy_config_parse(s, &cfg, NULL), -E2BIG);
    assert_null(cfg.rules);
    free(s);
}

static void test_config_json(void **state)
{
    struct sp_proxy_config cfg;
    sp_error err = {0};
    const char *ok =
        "{\"allow\": [\"pypi.org\", \"*.pythonhosted.org\", \"a.com:8443\","
        " {\"host\": \"git.example.com\", \"port\": 9418},"
        " {\"host\": \"::1\", \"port\": 8080}, {\"host\": \"b.com\"}],"
        " \"allow_private\": true, \"max_connections\": 10,"
        " \"header_max\": 8192, \"idle_timeout_ms\": 1000,"
        " \"connect_timeout_ms\": 2000, \"resolve_timeout_ms\": 3000,"
        " \"log_ring\": 0}";
    assert_int_equal(sp_proxy_config_parse_json(ok, "t.json", &cfg, &err), 0);
    assert_int_equal(cfg.n_rules, 6);
    assert_string_equal(cfg.rules[3].host, "git.example.com");
    assert_int_equal(cfg.rules[3].port, 9418);
    assert_string_equal(cfg.rules[4].host, "::1");
    assert_int_equal(cfg.rules[4].port, 8080);
    assert_int_equal(cfg.rules[5].port, 0);
    assert_true(cfg.allow_private);
    assert_int_equal(cfg.max_conns, 10);
    assert_int_equal(cfg.header_max, 8192);
    assert_int_equal(cfg.idle_timeout_ms, 1000);
    assert_int_equal(cfg.connect_timeout_ms, 2000);
    assert_int_equal(cfg.resolve_timeout_ms, 3000);
    assert_int_equal(cfg.log_ring, 0);
    sp_proxy_config_free(&cfg);

    assert_int_equal(sp_proxy_config_parse_json("{}", NULL, &cfg, NULL), 0);
    assert_int_equal(cfg.n_rules, 0);
    sp_proxy_config_free(&cfg);

    static const char *const bad[] = {
        "", "[]", "{", "{\"allow\": \"pypi.org\"}", "{\"allow\": [1]}",
        "{\"allow\": [\"bad host\"]}", "{\"allow_private\": 1}",
        "{\"nope\": 1}", "{\"max_connections\": 0}", "{\"max_connections\": -1}",
        "{\"header_max\": 10}", "{\"idle_timeout_ms\": \"1s\"}",
        "{\"allow\": [{\"host\": \"a.com\", \"port\": 0}]}",
        "{\"allow\": [{\"host\": \"a.com\", \"port\": 65536}]}",
        "{\"allow\": [{\"host\": \"a.com:80\", \"port\": 81}]}",
        "{\"allow\": [{\"host\": \"a.com\", \"extra\": 1}]}",
        "{\"allow\": [{\"port\": 1}]}",
        "{\"allow\": [\"a\\u0000b.com\"]}",
        "{\"allow\": [\"a.com\"], \"allow\": [\"b.com\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        int r = sp_proxy_config_parse_json(bad[i], "t.json", &cfg, &err);
        if (r >= 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err.message, "t.json"));
        assert_null(cfg.rules);
    }
}

/* ---- names, literals, matching ------------------------------------------------- */

static void test_host_normalize(void **state)
{
    char out[SP_PROXY_HOST_MAX + 1];
    assert_int_equal(sp_proxy_host_normalize("PyPI.Org.", 9, out, sizeof(out)), 0);
    assert_string_equal(out, "pypi.org");
    assert_int_equal(sp_proxy_host_normalize("a_b-c.d", 7, out, sizeof(out)), 0);
    assert_int_equal(sp_proxy_host_normalize("", 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize(".", 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("a..b", 4, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("a.b..", 5, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("a b", 3, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("a\0b", 3, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("a:b", 3, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize("\xc3\xa9.com", 6, out, sizeof(out)),
                     -EINVAL);
    char label[80];
    memset(label, 'a', 64);
    assert_int_equal(sp_proxy_host_normalize(label, 64, out, sizeof(out)), -EINVAL);
    assert_int_equal(sp_proxy_host_normalize(label, 63, out, sizeof(out)), 0);
    char longname[300];
    for (size_t i = 0; i < sizeof(longname); i++)
        longname[i] = i % 10 == 9 ? '.' : 'x';
    assert_int_equal(sp_proxy_host_normalize(longname, 254, out, sizeof(out)),
                     -EINVAL);
    assert_int_equal(sp_proxy_host_normalize(longname, 253, out, sizeof(out)), 0);
    assert_int_equal(sp_proxy_host_normalize("abc", 3, out, 3), -EINVAL);
}

static void test_parse_ip(void **state)
{
    struct sockaddr_storage ss;
    static const char *const v4[] = {"127.0.0.1", "127.1", "2130706433",
                                     "0x7f.0.0.1", "0x7f000001", "017700000001",
                                     "127.0.1"};
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        assert_true(sp_proxy_parse_ip(v4[i], &ss));
        assert_int_equal(ss.ss_family, AF_INET);
        uint32_t a = ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);
        if ((a >> 24) != 127)
            fail_msg("%s -> %x", v4[i], a);
    }
    assert_true(sp_proxy_parse_ip("::1", &ss));
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_true(sp_proxy_parse_ip("[::ffff:127.0.0.1]", &ss));
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_false(sp_proxy_parse_ip("example.com", &ss));
    assert_false(sp_proxy_parse_ip("1.2.3.4.5", &ss));
    assert_false(sp_proxy_parse_ip("", &ss));
    assert_false(sp_proxy_parse_ip("[]", &ss));
    assert_false(sp_proxy_parse_ip("1.2.3.4 x", &ss));
    assert_false(sp_proxy_parse_ip("[1.2.3.4", &ss));
    assert_false(sp_proxy_parse_ip("fe80::1%eth0", &ss));
    assert_false(sp_proxy_parse_ip("256.1.1.1", &ss));
}

static void test_match(void **state)
{
    struct sp_proxy_config cfg;
    assert_int_equal(sp_proxy_config_parse("pypi.org,*.pythonhosted.org,"
                                           "git.example.com:9418,10.0.0.5,"
                                           "[::1]:8080",
                                           &cfg, NULL),
                     0);
    const struct sp_proxy_rule *r = sp_proxy_match(&cfg, "pypi.org", 443);
    assert_non_null(r);
    assert_string_equal(r->host, "pypi.org");
    assert_non_null(sp_proxy_match(&cfg, "pypi.org", 80));
    assert_null(sp_proxy_match(&cfg, "pypi.org", 8080));
    assert_null(sp_proxy_match(&cfg, "www.pypi.org", 443)); /* exact only */
    assert_null(sp_proxy_match(&cfg, "evilpypi.org", 443));
    assert_null(sp_proxy_match(&cfg, "pypi.org.evil.com", 443));
    /* wildcard: subdomains at any depth, never the apex, no suffix tricks */
    assert_non_null(sp_proxy_match(&cfg, "files.pythonhosted.org", 443));
    assert_non_null(sp_proxy_match(&cfg, "a.b.pythonhosted.org", 80));
    assert_null(sp_proxy_match(&cfg, "pythonhosted.org", 443));
    assert_null(sp_proxy_match(&cfg, "evilpythonhosted.org", 443));
    assert_null(sp_proxy_match(&cfg, ".pythonhosted.org", 443));
    /* explicit port replaces the defaults */
    assert_non_null(sp_proxy_match(&cfg, "git.example.com", 9418));
    assert_null(sp_proxy_match(&cfg, "git.example.com", 443));
    /* IP rules match the same address only, in any literal spelling */
    assert_non_null(sp_proxy_match(&cfg, "10.0.0.5", 443));
    assert_non_null(sp_proxy_match(&cfg, "10.5", 443)); /* 10.0.0.5 */
    assert_null(sp_proxy_match(&cfg, "10.0.0.6", 443));
    assert_non_null(sp_proxy_match(&cfg, "::1", 8080));
    assert_null(sp_proxy_match(&cfg, "::1", 443));
    assert_null(sp_proxy_match(&cfg, "127.0.0.1", 8080));
    /* a name rule never matches an IP literal nor the reverse */
    struct sp_proxy_config c2;
    assert_int_equal(sp_proxy_config_parse("localhost,*.0.0.1", &c2, NULL), 0);
    assert_null(sp_proxy_match(&c2, "127.0.0.1", 80));
    assert_null(sp_proxy_match(NULL, "x", 80));
    sp_proxy_config_free(&c2);
    sp_proxy_config_free(&cfg);
}

/* ---- address classes ------------------------------------------------------------ */

static enum sp_addr_class cls(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        ss.ss_family = AF_INET6;
        assert_int_equal(
            inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
    } else {
        ss.ss_family = AF_INET;
        assert_int_equal(
            inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr), 1);
    }
    return sp_proxy_addr_class((struct sockaddr *)&ss);
}

static void test_addr_class(void **state)
{
    static const struct {
        const char *v4;
        enum sp_addr_class c;
    } t[] = {
        {"8.8.8.8", SP_ADDR_PUBLIC},         {"1.1.1.1", SP_ADDR_PUBLIC},
        {"127.0.0.1", SP_ADDR_LOOPBACK},     {"127.255.255.254", SP_ADDR_LOOPBACK},
        {"10.0.0.1", SP_ADDR_PRIVATE},       {"10.255.255.255", SP_ADDR_PRIVATE},
        {"172.16.0.1", SP_ADDR_PRIVATE},     {"172.31.255.255", SP_ADDR_PRIVATE},
        {"172.15.255.255", SP_ADDR_PUBLIC},  {"172.32.0.0", SP_ADDR_PUBLIC},
        {"192.168.1.1", SP_ADDR_PRIVATE},    {"192.169.0.1", SP_ADDR_PUBLIC},
        {"169.254.169.254", SP_ADDR_LINK_LOCAL}, {"169.254.0.1", SP_ADDR_LINK_LOCAL},
        {"100.64.0.1", SP_ADDR_CGNAT},       {"100.127.255.255", SP_ADDR_CGNAT},
        {"100.63.255.255", SP_ADDR_PUBLIC},  {"100.128.0.0", SP_ADDR_PUBLIC},
        {"0.0.0.0", SP_ADDR_UNSPECIFIED},    {"0.1.2.3", SP_ADDR_UNSPECIFIED},
        {"224.0.0.1", SP_ADDR_MULTICAST},    {"239.255.255.255", SP_ADDR_MULTICAST},
        {"240.0.0.1", SP_ADDR_RESERVED},     {"255.255.255.255", SP_ADDR_RESERVED},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char buf[80];
        if (cls(t[i].v4) != t[i].c)
            fail_msg("%s: %d, want %d", t[i].v4, cls(t[i].v4), t[i].c);
        /* the same through every IPv6 form that carries an IPv4 address */
        snprintf(buf, sizeof(buf), "::ffff:%s", t[i].v4);
        if (cls(buf) != t[i].c)
            fail_msg("%s: %d, want %d", buf, cls(buf), t[i].c);
        snprintf(buf, sizeof(buf), "64:ff9b::%s", t[i].v4);
        if (cls(buf) != t[i].c)
            fail_msg("%s: %d, want %d", buf, cls(buf), t[i].c);
        struct in_addr a;
        inet_pton(AF_INET, t[i].v4, &a);
        const uint8_t *b = (const uint8_t *)&a;
        snprintf(buf, sizeof(buf), "2002:%02x%02x:%02x%02x::1", b[0], b[1], b[2],
                 b[3]);
        if (cls(buf) != t[i].c)
            fail_msg("%s: %d, want %d", buf, cls(buf), t[i].c);
    }
    assert_int_equal(cls("::"), SP_ADDR_UNSPECIFIED);
    assert_int_equal(cls("::1"), SP_ADDR_LOOPBACK);
    assert_int_equal(cls("::127.0.0.1"), SP_ADDR_RESERVED);
    assert_int_equal(cls("::8.8.8.8"), SP_ADDR_RESERVED);
    assert_int_equal(cls("fc00::1"), SP_ADDR_PRIVATE);
    assert_int_equal(cls("fd00:ec2::254"), SP_ADDR_PRIVATE); /* AWS metadata */
    assert_int_equal(cls("fe80::1"), SP_ADDR_LINK_LOCAL);
    assert_int_equal(cls("febf::1"), SP_ADDR_LINK_LOCAL);
    assert_int_equal(cls("fec0::1"), SP_ADDR_PRIVATE);
    assert_int_equal(cls("ff02::1"), SP_ADDR_MULTICAST);
    assert_int_equal(cls("64:ff9b:1::1"), SP_ADDR_PRIVATE);
    assert_int_equal(cls("2606:4700::1111"), SP_ADDR_PUBLIC);
    assert_int_equal(cls("2001:db8::1"), SP_ADDR_PUBLIC);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(sp_proxy_addr_class(&sa), SP_ADDR_RESERVED);
    assert_int_equal(sp_proxy_addr_class(NULL), SP_ADDR_RESERVED);

    assert_true(sp_proxy_addr_allowed(SP_ADDR_PUBLIC, false));
    for (int c = SP_ADDR_LOOPBACK; c <= SP_ADDR_CGNAT; c++) {
        assert_false(sp_proxy_addr_allowed(c, false));
        assert_true(sp_proxy_addr_allowed(c, true));
        assert_non_null(sp_proxy_addr_class_name(c));
    }
    for (int c = SP_ADDR_UNSPECIFIED; c <= SP_ADDR_RESERVED; c++)
        assert_false(sp_proxy_addr_allowed(c, true));
}

/* ---- request heads ----------------------------------------------------------------- */

static int parse(const char *text, struct sp_proxy_request *req)
{
    return sp_proxy_parse_request(text, strlen(text), 16384, req, NULL);
}

static void test_request_ok(void **state)
{
    struct sp_proxy_request req;
    const char *t = "GET http://PyPI.org./simple/x?y=1 HTTP/1.1\r\n"
                    "Host: pypi.org\r\nUser-Agent: t\r\n\r\nBODY";
    int r = parse(t, &req);
    assert_int_equal(r, (int)strlen(t) - 4);
    assert_string_equal(req.method, "GET");
    assert_false(req.is_connect);
    assert_string_equal(req.host, "pypi.org");
    assert_int_equal(req.port, 80);
    assert_false(req.host_is_ip);
    assert_true(req.has_host_header);
    assert_int_equal(req.minor, 1);
    assert_memory_equal(t + req.path_off, "/simple/x?y=1", req.path_len);

    t = "CONNECT files.pythonhosted.org:443 HTTP/1.1\r\n"
        "Host: files.pythonhosted.org\r\n\r\n";
    assert_int_equal(parse(t, &req), (int)strlen(t));
    assert_true(req.is_connect);
    assert_string_equal(req.host, "files.pythonhosted.org");
    assert_int_equal(req.port, 443);

    t = "CONNECT [::1]:8443 HTTP/1.0\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    assert_string_equal(req.host, "::1");
    assert_true(req.host_is_ip);
    assert_int_equal(req.minor, 0);

    t = "POST http://127.1:8080 HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    assert_string_equal(req.host, "127.0.0.1");
    assert_true(req.host_is_ip);
    assert_int_equal(req.port, 8080);
    assert_int_equal(req.path_len, 0);
    assert_int_equal(req.content_length, 12);

    /* incomplete */
    assert_int_equal(parse("GET http://a/ HTTP/1.1\r\nHost: a\r\n", &req), 0);
    assert_int_equal(parse("GET http://a/ HTTP/1.1\r", &req), 0);
    assert_int_equal(parse("", &req), 0);
}

static void test_request_bad(void **state)
{
    static const struct {
        const char *text;
        int status;
    } t[] = {
        {"GET /x HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\nHost: a\n\n", 400},
        {"GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\n X: folded\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
        /* smuggling: the framing or the Host named as hop-by-hop */
        {"POST http://a/ HTTP/1.1\r\nConnection: content-length, host\r\n"
         "Content-Length: 5\r\n\r\n", 400},
        {"POST http://a/ HTTP/1.1\r\nConnection: keep-alive,\tContent-LENGTH "
         "\r\nContent-Length: 5\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nConnection: close\r\nConnection: Host\r\n"
         "\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nConnection: transfer-encoding\r\n\r\n",
         400},
        {"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nHost: a:81\r\n\r\n", 400},
        {"GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", 400},
        {"GET http://u:p@a/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a@b/ HTTP/1.1\r\n\r\n", 400},
        {"GET https://a/ HTTP/1.1\r\n\r\n", 501},
        {"GET ftp://a/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/#frag HTTP/1.1\r\n\r\n", 400},
        {"GET http:/// HTTP/1.1\r\n\r\n", 400},
        {"GET http://a:0/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a:65536/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a:123456/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a:8x/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://[::1/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://[a.com]/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://[1.2.3.4]/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://[::1]x/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a%2e.com/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"GET http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
         400},
        {"GET http://a/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
         400},
        {"GET http://a/ HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
        {"GET http://a/ HTTP/2.0\r\n\r\n", 505},
        {"GET http://a/ HTTP/1.2\r\n\r\n", 505},
        {"GET http://a/ http/1.1\r\n\r\n", 400},
        {"GET http://a/  HTTP/1.1\r\n\r\n", 400},
        {"GET  http://a/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/\r\n\r\n", 400},
        {"\r\n\r\n", 400},
        {"VERYLONGMETHODNAME http://a/ HTTP/1.1\r\n\r\n", 400},
        {"G(T http://a/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/\x7f HTTP/1.1\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nNoColon\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\n: empty\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nX: a\x01\r\n\r\n", 400},
        {"CONNECT a HTTP/1.1\r\n\r\n", 400},
        {"CONNECT a: HTTP/1.1\r\n\r\n", 400},
        {"CONNECT http://a:443 HTTP/1.1\r\n\r\n", 400},
        {"CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct sp_proxy_request req;
        const char *why = NULL;
        int r = sp_proxy_parse_request(t[i].text, strlen(t[i].text), 16384, &req,
                                       &why);
        if (r != -t[i].status)
            fail_msg("case %zu '%s': got %d, want %d", i, t[i].text, r,
                     -t[i].status);
        assert_non_null(why);
    }
    /* a NUL byte */
    struct sp_proxy_request req;
    static const char nul[] = "GET http://a/ HTTP/1.1\r\nX: \0\r\n\r\n";
    assert_int_equal(sp_proxy_parse_request(nul, sizeof(nul) - 1, 16384, &req, NULL),
                     -400);
}

static void test_request_oversized(void **state)
{
    size_t max = 4096;
    char *big = malloc(3 * max);
    assert_non_null(big);
    strcpy(big, "GET http://a/ HTTP/1.1\r\n");
    size_t n = strlen(big);
    while (n < 3 * max - 8) {
        memcpy(big + n, "X: y\r\n", 6);
        n += 6;
    }
    struct sp_proxy_request req;
    const char *why = NULL;
    /* below the bound and incomplete: want more */
    assert_int_equal(sp_proxy_parse_request(big, max - 1, max, &req, &why), 0);
    /* at or past it: 431, even with the end of the head beyond the bound */
    assert_int_equal(sp_proxy_parse_request(big, max, max, &req, &why), -431);
    memcpy(big + n, "\r\n", 2);
    assert_int_equal(sp_proxy_parse_request(big, n + 2, max, &req, &why), -431);
    assert_non_null(why);
    /* exactly at the bound and complete: fine */
    strcpy(big, "GET http://a/ HTTP/1.1\r\nX: ");
    n = strlen(big);
    memset(big + n, 'a', max - n - 4);
    memcpy(big + max - 4, "\r\n\r\n", 4);
    assert_int_equal(sp_proxy_parse_request(big, max, max, &req, &why), (int)max);
    free(big);
}

static void test_build_head(void **state)
{
    struct sp_proxy_request req;
    const char *t = "GET http://pypi.org/simple/?q HTTP/1.1\r\n"
                    "Host: pypi.org\r\n"
                    "Proxy-Connection: Keep-Alive\r\n"
                    "Proxy-Authorization: Basic eA==\r\n"
                    "Connection: keep-alive, X-Secret\r\n"
                    "X-Secret: 1\r\n"
                    "Keep-Alive: 5\r\n"
                    "Upgrade: websocket\r\n"
                    "TE: trailers\r\n"
                    "Accept: */*\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    char out[1024];
    int n = sp_proxy_build_upstream_head(t, &req, out, sizeof(out));
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "GET /simple/?q HTTP/1.1\r\n"
                             "Host: pypi.org\r\n"
                             "Accept: */*\r\n"
                             "Connection: close\r\n\r\n");
    assert_int_equal(sp_proxy_build_upstream_head(t, &req, out, 20), -ENOSPC);

    t = "GET http://[::1]:8080?x HTTP/1.0\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    n = sp_proxy_build_upstream_head(t, &req, out, sizeof(out));
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "GET /?x HTTP/1.0\r\nHost: [::1]:8080\r\n"
                             "Connection: close\r\n\r\n");

    t = "GET http://a.com HTTP/1.1\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    n = sp_proxy_build_upstream_head(t, &req, out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a.com\r\n"
                             "Connection: close\r\n\r\n");

    t = "CONNECT a.com:443 HTTP/1.1\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    assert_int_equal(sp_proxy_build_upstream_head(t, &req, out, sizeof(out)),
                     -EINVAL);

    /* A token that only begins like a framing header is an ordinary one. */
    t = "POST http://a.com/ HTTP/1.1\r\nConnection: content-lengthx, hostx\r\n"
        "Content-Length: 0\r\nhostx: 1\r\n\r\n";
    assert_true(parse(t, &req) > 0);
    n = sp_proxy_build_upstream_head(t, &req, out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "POST / HTTP/1.1\r\nContent-Length: 0\r\n"
                             "Host: a.com\r\nConnection: close\r\n\r\n");
}

/* ---- TLS ClientHello ------------------------------------------------------------------ */

struct ch {
    uint8_t b[20000];
    size_t n;
};

static void put8(struct ch *c, unsigned v) { c->b[c->n++] = (uint8_t)v; }
static void put16(struct ch *c, unsigned v)
{
    put8(c, v >> 8);
    put8(c, v & 0xff);
}
static void put24(struct ch *c, unsigned v)
{
    put8(c, v >> 16);
    put16(c, v & 0xffff);
}

/* A ClientHello; names == NULL: no SNI extension; n_names SNI entries. */
static void build_ch(struct ch *c, const char *const *names, size_t n_names,
                     bool extensions)
{
    struct ch body = {.n = 0};
    put16(&body, 0x0303);
    for (int i = 0; i < 32; i++)
        put8(&body, (unsigned)i);
    put8(&body, 0);           /* session id */
    put16(&body, 4);          /* two cipher suites */
    put16(&body, 0x1301);
    put16(&body, 0x1302);
    put8(&body, 1);           /* one compression method */
    put8(&body, 0);
    if (extensions) {
        struct ch ext = {.n = 0};
        put16(&ext, 0x000a); /* supported_groups */
        put16(&ext, 4);
        put16(&ext, 2);
        put16(&ext, 0x001d);
        if (names) {
            size_t list = 0;
            for (size_t i = 0; i < n_names; i++)
                list += 3 + strlen(names[i]);
            put16(&ext, 0);
            put16(&ext, (unsigned)(list + 2));
            put16(&ext, (unsigned)list);
            for (size_t i = 0; i < n_names; i++) {
                put8(&ext, 0);
                put16(&ext, (unsigned)strlen(names[i]));
                memcpy(ext.b + ext.n, names[i], strlen(names[i]));
                ext.n += strlen(names[i]);
            }
        }
        put16(&body, (unsigned)ext.n);
        memcpy(body.b + body.n, ext.b, ext.n);
        body.n += ext.n;
    }
    c->n = 0;
    put8(c, 0x16);
    put16(c, 0x0301);
    put16(c, (unsigned)(body.n + 4));
    put8(c, 1);
    put24(c, (unsigned)body.n);
    memcpy(c->b + c->n, body.b, body.n);
    c->n += body.n;
}

static void test_sni_ok(void **state)
{
    static struct ch c;
    char sni[256];
    const char *one[] = {"Files.PythonHosted.org"};
    build_ch(&c, one, 1, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), 1);
    assert_string_equal(sni, "files.pythonhosted.org");
    /* extra bytes after the record (early data) do not matter */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n + 100, sni, sizeof(sni)), 1);
    /* every prefix: need more, never a wrong answer */
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(sp_proxy_parse_sni(c.b, i, sni, sizeof(sni)), -EAGAIN);
    build_ch(&c, NULL, 0, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), 0);
    assert_string_equal(sni, "");
    build_ch(&c, NULL, 0, false);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), 0);
    /* not TLS: SSH banner, HTTP */
    assert_int_equal(sp_proxy_parse_sni((const uint8_t *)"SSH-2.0-x\r\n", 11, sni,
                                        sizeof(sni)),
                     2);
    assert_int_equal(sp_proxy_parse_sni((const uint8_t *)"G", 1, sni, sizeof(sni)), 2);
    /* NULL output is allowed */
    build_ch(&c, one, 1, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, NULL, 0), 1);
    /* output too small */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, 5), -EINVAL);
}

static void test_sni_malformed(void **state)
{
    static struct ch c;
    char sni[256];
    const char *one[] = {"a.com"};
    const char *two[] = {"a.com", "b.com"};
    const char *empty[] = {""};
    const char *badname[] = {"a..com"};
    const char *spacey[] = {"a com"};

    build_ch(&c, two, 2, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, empty, 1, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, badname, 1, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, spacey, 1, true);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);

    /* record layer */
    build_ch(&c, one, 1, true);
    c.b[1] = 0x02; /* wrong major version */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[3] = 0x40; c.b[4] = 0x01; /* record longer than 2^14 */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    c.b[3] = 0; c.b[4] = 2; /* record too short for a handshake header */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[5] = 2; /* ServerHello, not ClientHello */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[7] += 1; /* handshake longer than the record: split */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -ENOTSUP);

    /* body fields: offsets in the record; 9 = start of the ClientHello */
    size_t sid = 9 + 2 + 32;
    build_ch(&c, one, 1, true);
    c.b[sid] = 33; /* session id longer than 32 */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sid + 2] = 3; /* odd cipher-suite length */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sid + 1] = 0xff; /* cipher suites past the end */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sid + 7] = 0; /* no compression methods */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    size_t ext = sid + 1 + 2 + 4 + 1 + 1;
    build_ch(&c, one, 1, true);
    c.b[ext] = 0xff; /* extensions length past the end */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[ext + 1] -= 1; /* extensions shorter than the body: trailing byte */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[ext + 2 + 3] = 0xff; /* supported_groups length past the end */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    size_t sn = ext + 2 + 8; /* the server_name extension */
    build_ch(&c, one, 1, true);
    c.b[sn + 5] += 1; /* server name list longer than the extension */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sn + 8] += 1; /* host name longer than the list */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sn + 9] = 0; /* NUL inside the name */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);
    build_ch(&c, one, 1, true);
    c.b[sn + 6] = 1; /* a name type other than host_name: no host left */
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);

    /* two server_name extensions */
    build_ch(&c, one, 1, true);
    size_t snlen = c.n - sn;
    memcpy(c.b + c.n, c.b + sn, snlen);
    c.n += snlen;
    unsigned el = ((unsigned)c.b[ext] << 8 | c.b[ext + 1]) + (unsigned)snlen;
    c.b[ext] = (uint8_t)(el >> 8);
    c.b[ext + 1] = (uint8_t)el;
    unsigned hl = (unsigned)(c.n - 9);
    c.b[6] = (uint8_t)(hl >> 16);
    c.b[7] = (uint8_t)(hl >> 8);
    c.b[8] = (uint8_t)hl;
    c.b[3] = (uint8_t)((hl + 4) >> 8);
    c.b[4] = (uint8_t)(hl + 4);
    assert_int_equal(sp_proxy_parse_sni(c.b, c.n, sni, sizeof(sni)), -EINVAL);

    /* random corruption of every byte: never a crash, never an overread
     * (ASan), and an SNI only when it is a valid name */
    build_ch(&c, one, 1, true);
    static struct ch d;
    for (size_t i = 0; i < c.n; i++)
        for (unsigned v = 0; v < 256; v += 17) {
            d = c;
            d.b[i] = (uint8_t)v;
            int r = sp_proxy_parse_sni(d.b, d.n, sni, sizeof(sni));
            assert_true(r == 0 || r == 1 || r == 2 || r == -EINVAL ||
                        r == -EAGAIN || r == -ENOTSUP);
            if (r == 1)
                assert_true(strlen(sni) > 0);
        }
}

static void test_resolver_parse(void **state)
{
    (void)state;
    struct sp_proxy_config cfg;
    sp_proxy_config_init(&cfg);
    const char *ok = "# c\n\n 127.0.0.1\tapi.test A.B.Test. # x\n"
                     "169.254.169.254 meta.test\r\n::1 api.test\n"
                     "10.0.0.1 last.test";
    assert_int_equal(sp_proxy_resolver_parse(ok, strlen(ok), "t", &cfg, NULL), 0);
    assert_true(cfg.use_hosts);
    assert_int_equal(cfg.n_hosts, 5);
    struct sockaddr_storage a[SP_PROXY_MAX_ADDRS];
    assert_int_equal(sp_proxy_resolver_lookup(&cfg, "api.test", a, 16), 2);
    assert_int_equal(a[0].ss_family, AF_INET);
    assert_int_equal(a[1].ss_family, AF_INET6);
    assert_int_equal(sp_proxy_resolver_lookup(&cfg, "a.b.test", a, 16), 1);
    assert_int_equal(sp_proxy_resolver_lookup(&cfg, "api.test", a, 1), 1);
    assert_int_equal(sp_proxy_resolver_lookup(&cfg, "last.test", a, 16), 1);
    assert_int_equal(sp_proxy_resolver_lookup(&cfg, "nope.test", a, 16), 0);
    /* a copy made by sp_proxy_new survives freeing ours */
    struct sp_proxy *p = NULL;
    assert_int_equal(sp_proxy_new(&cfg, &p, NULL), 0);
    sp_proxy_free(p);

    static const char *const bad[] = {
        "1.2.3 x.test\n", "127.0.0.1\n", "127.0.0.1 10.0.0.1\n",
        "127.0.0.1 a..b\n", "fe80::1%lo x.test\n", "0x7f.1 x.test\n",
        "127.0.0.1 x/y\n", "::ffff:1.2.3.4.5 x\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_error err = {0};
        assert_int_equal(sp_proxy_resolver_parse(bad[i], strlen(bad[i]), "t",
                                                 &cfg, &err), -EINVAL);
        assert_non_null(strstr(err.message, "line 1"));
        assert_int_equal(cfg.n_hosts, 5); /* unchanged on failure */
    }
    const char nul[] = "127.0.0.1 a.test\n\0";
    assert_int_equal(sp_proxy_resolver_parse(nul, sizeof(nul) - 1, "t", &cfg,
                                             NULL), -EINVAL);
    char *big = malloc(SP_PROXY_RESOLVER_LINE_MAX + 20);
    assert_non_null(big);
    memset(big, 'a', SP_PROXY_RESOLVER_LINE_MAX + 20);
    memcpy(big, "127.0.0.1 ", 10);
    assert_int_equal(sp_proxy_resolver_parse(big, SP_PROXY_RESOLVER_LINE_MAX + 20,
                                             "t", &cfg, NULL), -EINVAL);
    free(big);
    /* more pairs than the bound */
    size_t n = SP_PROXY_RESOLVER_MAX_ENTRIES + 1, len = 0;
    char *many = malloc(n * 32);
    assert_non_null(many);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(many + len, "10.0.0.1 h%zu.test\n", i);
    assert_int_equal(sp_proxy_resolver_parse(many, len, "t", &cfg, NULL), -E2BIG);
    free(many);
    /* empty: a table with nothing, every lookup fails */
    assert_int_equal(sp_proxy_resolver_parse("", 0, "t", &cfg, NULL), 0);
    assert_true(cfg.use_hosts);
    assert_int_equal(cfg.n_hosts, 0);
    sp_proxy_config_free(&cfg);
    assert_false(cfg.use_hosts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolver_parse),
        cmocka_unit_test(test_config_parse_ok),
        cmocka_unit_test(test_config_parse_bad),
        cmocka_unit_test(test_config_too_many_rules),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_host_normalize),
        cmocka_unit_test(test_parse_ip),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_addr_class),
        cmocka_unit_test(test_request_ok),
        cmocka_unit_test(test_request_bad),
        cmocka_unit_test(test_request_oversized),
        cmocka_unit_test(test_build_head),
        cmocka_unit_test(test_sni_ok),
        cmocka_unit_test(test_sni_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
