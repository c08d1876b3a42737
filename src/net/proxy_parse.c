/* proxy_parse.c — the pure half of the egress proxy: allow-list parsing
 * (text and JSON), host matching, address classification, and the bounded
 * parsers for HTTP request heads and TLS ClientHello SNI. No syscalls here,
 * so the unit tests and the fuzzer reach all of it. */
#include "proxy_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* ---- config ------------------------------------------------------------ */

void sp_proxy_config_init(struct sp_proxy_config *ret)
{
    *ret = (struct sp_proxy_config){
        .rules = NULL,
        .n_rules = 0,
        .allow_private = false,
        .max_conns = SP_PROXY_DEFAULT_MAX_CONNS,
        .header_max = SP_PROXY_DEFAULT_HEADER_MAX,
        .idle_timeout_ms = SP_PROXY_DEFAULT_IDLE_MS,
        .connect_timeout_ms = SP_PROXY_DEFAULT_CONNECT_MS,
        .resolve_timeout_ms = SP_PROXY_DEFAULT_RESOLVE_MS,
        .log_ring = SP_PROXY_DEFAULT_LOG_RING,
    };
}

void sp_proxy_resolver_clear(struct sp_proxy_config *cfg)
{
    for (size_t i = 0; i < cfg->n_hosts; i++)
        free(cfg->hosts[i].name);
    free(cfg->hosts);
    cfg->hosts = NULL;
    cfg->n_hosts = 0;
    cfg->use_hosts = false;
}

void sp_proxy_config_free(struct sp_proxy_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_rules; i++)
        free(cfg->rules[i].host);
    free(cfg->rules);
    sp_proxy_resolver_clear(cfg);
    sp_proxy_config_init(cfg);
}

static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

int sp_proxy_host_normalize(const char *in, size_t len, char *out,
                            size_t outlen)
{
    if (len > 0 && in[len - 1] == '.')
        len--; /* "example.com." is the same name */
    if (len == 0 || len > SP_PROXY_HOST_MAX || len + 1 > outlen)
        return -EINVAL;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)in[i]);
        if (!is_name_char(c))
            return -EINVAL;
        if (c == '.') {
            if (label == 0)
                return -EINVAL; /* empty label: "a..b", ".a" */
            label = 0;
        } else if (++label > 63) {
            return -EINVAL;
        }
        out[i] = (char)c;
    }
    if (label == 0)
        return -EINVAL; /* "a.b.." ends in an empty label */
    out[len] = '\0';
    return 0;
}

bool sp_proxy_parse_ip(const char *host, struct sockaddr_storage *ret)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    size_t len = strlen(host);
    char buf[INET6_ADDRSTRLEN + 2];
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        if (len - 2 >= sizeof(buf))
            return false;
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (strchr(host, ':')) {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return false;
        s6->sin6_family = AF_INET6;
    } else {
        /* inet_aton, not inet_pton: getaddrinfo and browsers read "127.1",
         * "0x7f000001" and "017700000001" as 127.0.0.1, so they are
         * literals here too. Its glibc form stops at whitespace; a host
         * with whitespace never gets this far. */
        if (host[0] == '\0' || strpbrk(host, " \t\r\n") ||
            inet_aton(host, &s4->sin_addr) == 0)
            return false;
        s4->sin_family = AF_INET;
    }
    if (ret)
        *ret = ss;
    return true;
}

static int ip_canonical(const struct sockaddr_storage *ss, char *out,
                        size_t outlen)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    return inet_ntop(ss->ss_family, a, out, (socklen_t)outlen) ? 0 : -EINVAL;
}

/* Parse one allow-list entry into a rule. */
static int parse_entry(const char *s, size_t len, struct sp_proxy_rule *r,
                       const char *origin, sp_error *err)
{
    char entry[SP_PROXY_HOST_MAX + 16];
    if (len == 0)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: empty entry in the allow list", origin);
    if (len >= sizeof(entry))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: allow-list entry '%.40s...' is too long",
                             origin, s);
    memcpy(entry, s, len);
    entry[len] = '\0';

    const char *host = entry;
    const char *port = NULL;
    char *colon = NULL;
    if (entry[0] == '[') {
        char *close = strchr(entry, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            goto bad;
        *close = '\0';
        host = entry + 1;
        if (close[1] == ':')
            port = close + 2;
        if (!strchr(host, ':'))
            goto bad; /* brackets are for IPv6 only */
    } else if ((colon = strchr(entry, ':')) && !strchr(colon + 1, ':')) {
        *colon = '\0';
        port = colon + 1;
    } /* else: no colon (a name) or several (a bare IPv6 literal) */

    uint16_t portnum = 0;
    if (port) {
        uint64_t v = 0;
        if (sp_parse_uint(port, 65535, &v) < 0 || v == 0)
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "%s: bad port in allow-list entry '%.*s' "
                                 "(want 1-65535)",
                                 origin, (int)len, s);
        portnum = (uint16_t)v;
    }

    char canon[SP_PROXY_HOST_MAX + 3];
    struct sockaddr_storage ss;
    if (sp_proxy_parse_ip(host, &ss)) {
        if (ip_canonical(&ss, canon, sizeof(canon)) < 0)
            goto bad;
    } else if (strncmp(host, "*.", 2) == 0) {
        canon[0] = '*';
        canon[1] = '.';
        if (sp_proxy_host_normalize(host + 2, strlen(host + 2), canon + 2,
                                    sizeof(canon) - 2) < 0)
            goto bad;
    } else if (strchr(host, ':') || sp_proxy_host_normalize(
                                        host, strlen(host), canon,
                                        sizeof(canon)) < 0) {
        goto bad;
    }
    r->host = strdup(canon);
    if (!r->host)
        return sp_error_set(err, ENOMEM, "%s: out of memory", origin);
    r->port = portnum;
    return 0;
bad:
    return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                         "%s: bad allow-list entry '%.*s' (want a host name, "
                         "*.domain, or an IP address, optionally with :port)",
                         origin, (int)len, s);
}

static int add_rule(struct sp_proxy_config *cfg, const char *s, size_t len,
                    const char *origin, sp_error *err)
{
    if (cfg->n_rules >= SP_PROXY_MAX_RULES)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "%s: more than %d allow-list entries", origin,
                             SP_PROXY_MAX_RULES);
    struct sp_proxy_rule *n =
        realloc(cfg->rules, (cfg->n_rules + 1) * sizeof(*n));
    if (!n)
        return sp_error_set(err, ENOMEM, "%s: out of memory", origin);
    cfg->rules = n;
    int r = parse_entry(s, len, &cfg->rules[cfg->n_rules], origin, err);
    if (r < 0)
        return r;
    cfg->n_rules++;
    return 0;
}

int sp_proxy_config_parse(const char *allow_list, struct sp_proxy_config *ret,
                          sp_error *err)
{
    sp_proxy_config_init(ret);
    if (!allow_list)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL, "--net: no allow list");
    if (strncmp(allow_list, "allow:", 6) == 0)
        allow_list += 6;
    const char *p = allow_list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        int r = add_rule(ret, p, n, "--net allow", err);
        if (r < 0) {
            sp_proxy_config_free(ret);
            return r;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static int json_uint(json_t *v, const char *origin, const char *key,
                     uint64_t min, uint64_t max, unsigned *out, sp_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: \"%s\" must be an integer from %llu to %llu",
                             origin, key, (unsigned long long)min,
                             (unsigned long long)max);
    *out = (unsigned)json_integer_value(v);
    return 0;
}

static int json_rules(json_t *allow, const char *origin,
                      struct sp_proxy_config *cfg, sp_error *err)
{
    if (!json_is_array(allow))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: \"allow\" must be an array", origin);
    size_t i = 0;
    json_t *e = NULL;
    json_array_foreach(allow, i, e) {
        int r = 0;
        if (json_is_string(e)) {
            if (strlen(json_string_value(e)) != json_string_length(e))
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "%s: \"allow\" entry %zu holds a NUL",
                                     origin, i);
            r = add_rule(cfg, json_string_value(e), json_string_length(e),
                         origin, err);
        } else if (json_is_object(e)) {
            json_t *h = json_object_get(e, "host");
            json_t *pt = json_object_get(e, "port");
            if (!json_is_string(h) ||
                strlen(json_string_value(h)) != json_string_length(h) ||
                json_object_size(e) != (pt ? 2u : 1u))
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "%s: \"allow\" entry %zu: want "
                                     "{\"host\": \"...\", \"port\": N}",
                                     origin, i);
            const char *hs = json_string_value(h);
            char buf[SP_PROXY_HOST_MAX + 16];
            unsigned port = 0;
            if (pt && json_uint(pt, origin, "port", 1, 65535, &port, err) < 0)
                return -EINVAL;
            /* "host" holds a host only: a colon is allowed in an IPv6
             * literal, which gets brackets when a port is added. */
            struct sockaddr_storage ss;
            bool v6 = sp_proxy_parse_ip(hs, &ss) && ss.ss_family == AF_INET6;
            int n = port ? snprintf(buf, sizeof(buf),
                                    v6 && hs[0] != '[' ? "[%s]:%u" : "%s:%u",
                                    hs, port)
                         : snprintf(buf, sizeof(buf), "%s", hs);
            if (n < 0 || (size_t)n >= sizeof(buf) || (strchr(hs, ':') && !v6))
                return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                     "%s: \"allow\" entry %zu: bad host '%s'",
                                     origin, i, hs);
            r = add_rule(cfg, buf, (size_t)n, origin, err);
        } else {
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "%s: \"allow\" entry %zu must be a string or "
                                 "an object",
                                 origin, i);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int sp_proxy_config_parse_json(const char *json, const char *origin,
                               struct sp_proxy_config *ret, sp_error *err)
{
    sp_proxy_config_init(ret);
    if (!origin)
        origin = "net policy";
    json_error_t jerr;
    json_t *root = json_loads(json ? json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: line %d: %s", origin, jerr.line, jerr.text);
    int r = 0;
    if (!json_is_object(root)) {
        r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                          "%s: want a JSON object", origin);
        goto out;
    }
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "allow") == 0)
            r = json_rules(v, origin, ret, err);
        else if (strcmp(key, "allow_private") == 0) {
            if (!json_is_boolean(v))
                r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                  "%s: \"allow_private\" must be true or "
                                  "false",
                                  origin);
            else
                ret->allow_private = json_is_true(v);
        } else if (strcmp(key, "max_connections") == 0)
            r = json_uint(v, origin, key, 1, SP_PROXY_MAX_CONNS_LIMIT,
                          &ret->max_conns, err);
        else if (strcmp(key, "header_max") == 0)
            r = json_uint(v, origin, key, SP_PROXY_HEADER_MIN,
                          SP_PROXY_HEADER_LIMIT, &ret->header_max, err);
        else if (strcmp(key, "idle_timeout_ms") == 0)
            r = json_uint(v, origin, key, 1, 86400000, &ret->idle_timeout_ms,
                          err);
        else if (strcmp(key, "connect_timeout_ms") == 0)
            r = json_uint(v, origin, key, 1, 600000, &ret->connect_timeout_ms,
                          err);
        else if (strcmp(key, "resolve_timeout_ms") == 0)
            r = json_uint(v, origin, key, 1, 600000, &ret->resolve_timeout_ms,
                          err);
        else if (strcmp(key, "log_ring") == 0)
            r = json_uint(v, origin, key, 0, SP_PROXY_LOG_RING_LIMIT,
                          &ret->log_ring, err);
        else
            r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                              "%s: unknown key \"%s\"", origin, key);
        if (r < 0)
            break;
    }
out:
    json_decref(root);
    if (r < 0)
        sp_proxy_config_free(ret);
    return r;
}

/* ---- addresses ----------------------------------------------------------- */

static enum sp_addr_class class_v4(uint32_t a)
{
    if ((a >> 24) == 0)
        return SP_ADDR_UNSPECIFIED;          /* 0/8 "this network" */
    if ((a >> 24) == 127)
        return SP_ADDR_LOOPBACK;
    if ((a >> 24) == 10 || (a >> 20) == ((172u << 4) | 1) ||
        (a >> 16) == ((192u << 8) | 168))
        return SP_ADDR_PRIVATE;              /* 10/8, 172.16/12, 192.168/16 */
    if ((a >> 16) == ((169u << 8) | 254))
        return SP_ADDR_LINK_LOCAL;           /* incl. 169.254.169.254 */
    if ((a >> 22) == ((100u << 2) | 1))
        return SP_ADDR_CGNAT;                /* 100.64/10 */
    if ((a >> 28) == 0xe)
        return SP_ADDR_MULTICAST;            /* 224/4 */
    if ((a >> 28) == 0xf)
        return SP_ADDR_RESERVED;             /* 240/4, 255.255.255.255 */
    return SP_ADDR_PUBLIC;
}

static uint32_t be32_at(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
           ((uint32_t)b[2] << 8) | b[3];
}

enum sp_addr_class sp_proxy_addr_class(const struct sockaddr *sa)
{
    if (!sa)
        return SP_ADDR_RESERVED;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return class_v4(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family != AF_INET6)
        return SP_ADDR_RESERVED;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (memcmp(b, zero, 16) == 0)
        return SP_ADDR_UNSPECIFIED;
    if (memcmp(b, zero, 15) == 0 && b[15] == 1)
        return SP_ADDR_LOOPBACK;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return class_v4(be32_at(b + 12)); /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d */
    if (memcmp(b, zero, 12) == 0)
        return SP_ADDR_RESERVED; /* ::a.b.c.d, deprecated "compatible" form */
    if (b[0] == 0x20 && b[1] == 0x02) {
        /* 6to4 2002:AABB:CCDD::/48 routes to a.b.c.d: judge that. */
        enum sp_addr_class c = class_v4(be32_at(b + 2));
        return c;
    }
    if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
        b[4] == 0 && b[5] == 1)
        return SP_ADDR_PRIVATE; /* 64:ff9b:1::/48 local-use NAT64 */
    if ((b[0] & 0xfe) == 0xfc)
        return SP_ADDR_PRIVATE; /* fc00::/7 unique local (fd00:ec2::254) */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return SP_ADDR_LINK_LOCAL; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return SP_ADDR_PRIVATE; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return SP_ADDR_MULTICAST;
    return SP_ADDR_PUBLIC;
}

const char *sp_proxy_addr_class_name(enum sp_addr_class c)
{
    switch (c) {
    case SP_ADDR_PUBLIC: return "public";
    case SP_ADDR_LOOPBACK: return "loopback";
    case SP_ADDR_PRIVATE: return "private";
    case SP_ADDR_LINK_LOCAL: return "link-local (cloud metadata lives here)";
    case SP_ADDR_CGNAT: return "shared/CGNAT";
    case SP_ADDR_UNSPECIFIED: return "unspecified";
    case SP_ADDR_MULTICAST: return "multicast";
    case SP_ADDR_RESERVED: return "reserved";
    default: return "unknown";
    }
}

bool sp_proxy_addr_allowed(enum sp_addr_class c, bool allow_private)
{
    switch (c) {
    case SP_ADDR_PUBLIC:
        return true;
    case SP_ADDR_LOOPBACK:
    case SP_ADDR_PRIVATE:
    case SP_ADDR_LINK_LOCAL:
    case SP_ADDR_CGNAT:
        return allow_private;
    case SP_ADDR_UNSPECIFIED:
    case SP_ADDR_MULTICAST:
    case SP_ADDR_RESERVED:
    default:
        return false;
    }
}

/* ---- matching ------------------------------------------------------------ */

static bool port_ok(const struct sp_proxy_rule *r, uint16_t port)
{
    return r->port == 0 ? (port == 80 || port == 443) : port == r->port;
}

static bool same_ip(const struct sockaddr_storage *a,
                    const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

const struct sp_proxy_rule *sp_proxy_match(const struct sp_proxy_config *cfg,
                                           const char *host, uint16_t port)
{
    if (!cfg || !host)
        return NULL;
    struct sockaddr_storage want;
    bool is_ip = sp_proxy_parse_ip(host, &want);
    size_t hl = strlen(host);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct sp_proxy_rule *r = &cfg->rules[i];
        if (!port_ok(r, port))
            continue;
        struct sockaddr_storage have;
        bool rule_ip = sp_proxy_parse_ip(r->host, &have);
        if (is_ip) {
            if (rule_ip && same_ip(&want, &have))
                return r;
            continue;
        }
        if (rule_ip)
            continue;
        if (r->host[0] == '*' && r->host[1] == '.') {
            /* "*.example.com": strict subdomains, never the apex. */
            size_t sl = strlen(r->host + 1); /* ".example.com" */
            if (hl > sl && strcmp(host + hl - sl, r->host + 1) == 0)
                return r;
        } else if (strcmp(host, r->host) == 0) {
            return r;
        }
    }
    return NULL;
}

/* ---- HTTP request heads -------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parse an authority "host[:port]" / "[v6][:port]" (no userinfo) into a
 * normalised host and a port (default_port when absent). */
static int parse_authority(const char *s, size_t len, uint16_t default_port,
                           bool port_required, char *host, size_t hostlen,
                           bool *is_ip, uint16_t *port)
{
    if (len == 0 || memchr(s, '@', len))
        return -EINVAL; /* userinfo: "allowed.com@evil.com" confusions */
    const char *h = s;
    size_t hl = len;
    const char *p = NULL;
    size_t pl = 0;
    bool bracket = false;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        size_t rest = len - (size_t)(close - s) - 1;
        if (rest > 0) {
            if (close[1] != ':')
                return -EINVAL;
            p = close + 2;
            pl = rest - 1;
        }
        bracket = true;
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon) {
            hl = (size_t)(colon - s);
            p = colon + 1;
            pl = len - hl - 1;
        }
    }
    *port = default_port;
    if (p && pl > 0) {
        if (pl > 5)
            return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (p[i] < '0' || p[i] > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(p[i] - '0');
        }
        if (v == 0 || v > 65535)
            return -EINVAL;
        *port = (uint16_t)v;
    } else if (port_required) {
        return -EINVAL;
    }
    if (hl == 0 || hl > SP_PROXY_HOST_MAX)
        return -EINVAL;
    char tmp[SP_PROXY_HOST_MAX + 1];
    memcpy(tmp, h, hl);
    tmp[hl] = '\0';
    struct sockaddr_storage ss;
    if (bracket) {
        if (!strchr(tmp, ':') || !sp_proxy_parse_ip(tmp, &ss) ||
            ss.ss_family != AF_INET6)
            return -EINVAL;
        *is_ip = true;
        return ip_canonical(&ss, host, hostlen);
    }
    if (sp_proxy_parse_ip(tmp, &ss)) {
        if (ss.ss_family != AF_INET)
            return -EINVAL; /* an unbracketed IPv6 cannot reach here */
        *is_ip = true;
        return ip_canonical(&ss, host, hostlen);
    }
    *is_ip = false;
    return sp_proxy_host_normalize(tmp, hl, host, hostlen);
}

static bool name_is(const char *name, size_t nl, const char *want)
{
    return strlen(want) == nl && strncasecmp(name, want, nl) == 0;
}

#define FAIL(code, text)                                                       \
    do {                                                                       \
        if (why)                                                               \
            *why = (text);                                                     \
        return -(code);                                                        \
    } while (0)

int sp_proxy_parse_request(const char *buf, size_t len, size_t max,
                           struct sp_proxy_request *req, const char **why)
{
    memset(req, 0, sizeof(*req));
    if (why)
        *why = NULL;
    size_t scan = len < max ? len : max;
    /* Find the end of the head; refuse NULs and bare LFs on the way (no
     * lenient line endings: they are how requests get smuggled). */
    size_t end = 0;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\0')
            FAIL(400, "NUL byte in the request head");
        if (buf[i] == '\r' && i + 1 < scan && buf[i + 1] != '\n')
            FAIL(400, "bare CR in the request head");
        if (buf[i] == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                FAIL(400, "bare LF in the request head");
            if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
                end = i + 1;
                break;
            }
        }
    }
    if (end == 0) {
        if (len >= max)
            FAIL(431, "request head too large");
        return 0;
    }
    req->head_len = end;

    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
    const char *line_end = memchr(buf, '\r', end);
    size_t ll = (size_t)(line_end - buf);
    const char *sp1 = memchr(buf, ' ', ll);
    if (!sp1 || sp1 == buf || (size_t)(sp1 - buf) >= sizeof(req->method))
        FAIL(400, "bad request line");
    for (const char *c = buf; c < sp1; c++)
        if (!is_tchar((unsigned char)*c))
            FAIL(400, "bad method");
    memcpy(req->method, buf, (size_t)(sp1 - buf));
    req->method[sp1 - buf] = '\0';
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (!sp2 || sp2 == target)
        FAIL(400, "bad request line");
    size_t tl = (size_t)(sp2 - target);
    const char *ver = sp2 + 1;
    size_t vl = (size_t)(line_end - ver);
    if (vl == 8 && memcmp(ver, "HTTP/1.", 7) == 0 &&
        (ver[7] == '0' || ver[7] == '1'))
        req->minor = ver[7] - '0';
    else if (vl == 8 && memcmp(ver, "HTTP/", 5) == 0 && ver[5] >= '0' &&
             ver[5] <= '9' && ver[6] == '.' && ver[7] >= '0' && ver[7] <= '9')
        FAIL(505, "HTTP version not supported");
    else
        FAIL(400, "bad HTTP version");
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            FAIL(400, "bad character in the request target");

    req->is_connect = strcmp(req->method, "CONNECT") == 0;
    if (req->is_connect) {
        if (parse_authority(target, tl, 0, true, req->host, sizeof(req->host),
                            &req->host_is_ip, &req->port) < 0)
            FAIL(400, "bad CONNECT target (want host:port)");
    } else {
        if (tl < 7 || strncasecmp(target, "http://", 7) != 0) {
            if (tl >= 8 && strncasecmp(target, "https://", 8) == 0)
                FAIL(501, "https:// URLs go through CONNECT");
            FAIL(400, "not a proxy request (want an absolute http:// URL)");
        }
        const char *auth = target + 7;
        size_t al = 0;
        while (7 + al < tl && auth[al] != '/' && auth[al] != '?')
            al++;
        if (memchr(target, '#', tl))
            FAIL(400, "fragment in the request target");
        if (parse_authority(auth, al, 80, false, req->host, sizeof(req->host),
                            &req->host_is_ip, &req->port) < 0)
            FAIL(400, "bad host in the request URL");
        req->path_off = (size_t)(auth + al - buf);
        req->path_len = tl - 7 - al;
    }

    /* Headers. */
    const char *p = line_end + 2;
    const char *head_end = buf + end - 2; /* the final CRLF */
    int n_host = 0, n_cl = 0;
    while (p < head_end) {
        const char *eol = memchr(p, '\r', (size_t)(head_end - p));
        if (!eol)
            FAIL(400, "bad header line");
        if (*p == ' ' || *p == '\t')
            FAIL(400, "folded header line");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            FAIL(400, "bad header line");
        for (const char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                FAIL(400, "bad header name");
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        const char *ve = eol;
        for (const char *c = v; c < ve; c++) {
            unsigned char uc = (unsigned char)*c;
            if ((uc < 0x20 && uc != '\t') || uc == 0x7f)
                FAIL(400, "control character in a header");
        }
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - v);
        if (name_is(p, nl, "host")) {
            if (++n_host > 1)
                FAIL(400, "more than one Host header");
            char hh[sizeof(req->host)];
            bool hip = false;
            uint16_t hport = 0;
            if (parse_authority(v, vlen, req->is_connect ? req->port : 80,
                                false, hh, sizeof(hh), &hip, &hport) < 0)
                FAIL(400, "bad Host header");
            if (strcmp(hh, req->host) != 0 || hport != req->port)
                FAIL(400, "Host header differs from the request target");
            req->has_host_header = true;
        } else if (name_is(p, nl, "content-length")) {
            if (++n_cl > 1)
                FAIL(400, "more than one Content-Length header");
            if (vlen == 0 || vlen > 18)
                FAIL(400, "bad Content-Length");
            uint64_t cl = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    FAIL(400, "bad Content-Length");
                cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
            req->content_length = cl;
        } else if (name_is(p, nl, "transfer-encoding")) {
            FAIL(501, "Transfer-Encoding in a request is not supported");
        } else if (name_is(p, nl, "connection")) {
            /* A Connection header naming the framing or the Host would
             * have them dropped as hop-by-hop while the body is forwarded:
             * a second request reaches the upstream (smuggling). */
            for (const char *t = v; t < ve;) {
                const char *te = memchr(t, ',', (size_t)(ve - t));
                if (!te)
                    te = ve;
                const char *a = t, *b = te;
                while (a < b && (*a == ' ' || *a == '\t'))
                    a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                    b--;
                if (name_is(a, (size_t)(b - a), "content-length") ||
                    name_is(a, (size_t)(b - a), "host") ||
                    name_is(a, (size_t)(b - a), "transfer-encoding"))
                    FAIL(400, "the Connection header names Content-Length, "
                              "Host or Transfer-Encoding");
                t = te < ve ? te + 1 : ve;
            }
        }
        p = eol + 2;
    }
    if (req->is_connect)
        req->content_length = 0; /* what follows is tunnel data */
    return (int)end;
}

/* Headers that belong to one hop; never forwarded. */
static bool hop_by_hop(const char *name, size_t nl, const char *conn_tokens)
{
    static const char *const drop[] = {
        "connection", "proxy-connection", "keep-alive",  "proxy-authorization",
        "proxy-authenticate", "te",       "trailer",     "upgrade",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(drop); i++)
        if (name_is(name, nl, drop[i]))
            return true;
    /* Never the framing or the Host, whatever Connection says (the parser
     * refuses such a request; this is the second wall). */
    if (name_is(name, nl, "content-length") || name_is(name, nl, "host") ||
        name_is(name, nl, "transfer-encoding"))
        return false;
    /* Also those the client's Connection header names (RFC 9110 7.6.1). */
    for (const char *t = conn_tokens; *t;) {
        size_t tl = strcspn(t, ",");
        if (tl == nl && strncasecmp(t, name, nl) == 0)
            return true;
        t += tl;
        if (*t == ',')
            t++;
    }
    return false;
}

static int put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    if (n > outlen - *o)
        return -ENOSPC;
    memcpy(out + *o, s, n);
    *o += n;
    return 0;
}

int sp_proxy_build_upstream_head(const char *buf,
                                 const struct sp_proxy_request *req,
                                 char *out, size_t outlen)
{
    size_t o = 0;
    const char *line_end = memchr(buf, '\r', req->head_len);
    const char *head_end = buf + req->head_len - 2;
    if (!line_end || req->is_connect)
        return -EINVAL;

    /* Gather the tokens of Connection headers: "a,b,c" (bounded). */
    char tokens[512];
    size_t tn = 0;
    tokens[0] = '\0';
    for (const char *p = line_end + 2; p < head_end;) {
        const char *eol = memchr(p, '\r', (size_t)(head_end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (name_is(p, (size_t)(colon - p), "connection")) {
            for (const char *c = colon + 1; c < eol; c++) {
                if (*c == ' ' || *c == '\t')
                    continue;
                if (tn + 2 >= sizeof(tokens))
                    break;
                tokens[tn++] = *c;
            }
            if (tn + 2 < sizeof(tokens))
                tokens[tn++] = ',';
            tokens[tn] = '\0';
        }
        p = eol + 2;
    }

    if (put(out, outlen, &o, req->method, strlen(req->method)) < 0 ||
        put(out, outlen, &o, " ", 1) < 0)
        return -ENOSPC;
    const char *path = buf + req->path_off;
    if ((req->path_len == 0 || path[0] == '?') && put(out, outlen, &o, "/", 1) < 0)
        return -ENOSPC;
    if (put(out, outlen, &o, path, req->path_len) < 0)
        return -ENOSPC;
    char ver[16];
    int vn = snprintf(ver, sizeof(ver), " HTTP/1.%d\r\n", req->minor);
    if (put(out, outlen, &o, ver, (size_t)vn) < 0)
        return -ENOSPC;
    for (const char *p = line_end + 2; p < head_end;) {
        const char *eol = memchr(p, '\r', (size_t)(head_end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!hop_by_hop(p, (size_t)(colon - p), tokens) &&
            put(out, outlen, &o, p, (size_t)(eol - p) + 2) < 0)
            return -ENOSPC;
        p = eol + 2;
    }
    if (!req->has_host_header) {
        char hh[SP_PROXY_HOST_MAX + 32];
        bool v6 = strchr(req->host, ':') != NULL;
        int n = req->port == 80
                    ? snprintf(hh, sizeof(hh), v6 ? "Host: [%s]\r\n" : "Host: %s\r\n",
                               req->host)
                    : snprintf(hh, sizeof(hh),
                               v6 ? "Host: [%s]:%u\r\n" : "Host: %s:%u\r\n",
                               req->host, req->port);
        if (n < 0 || (size_t)n >= sizeof(hh) ||
            put(out, outlen, &o, hh, (size_t)n) < 0)
            return -ENOSPC;
    }
    static const char tail[] = "Connection: close\r\n\r\n";
    if (put(out, outlen, &o, tail, sizeof(tail) - 1) < 0)
        return -ENOSPC;
    return (int)o;
}

/* ---- TLS ClientHello ----------------------------------------------------- */

struct cur {
    const uint8_t *p;
    size_t n;
};

static bool take(struct cur *c, size_t k, struct cur *sub)
{
    if (c->n < k)
        return false;
    if (sub)
        *sub = (struct cur){c->p, k};
    c->p += k;
    c->n -= k;
    return true;
}

static bool u8(struct cur *c, size_t *v)
{
    if (c->n < 1)
        return false;
    *v = c->p[0];
    c->p++;
    c->n--;
    return true;
}

static bool u16(struct cur *c, size_t *v)
{
    if (c->n < 2)
        return false;
    *v = ((size_t)c->p[0] << 8) | c->p[1];
    c->p += 2;
    c->n -= 2;
    return true;
}

int sp_proxy_parse_sni(const uint8_t *buf, size_t len, char *sni,
                       size_t snilen)
{
    if (sni && snilen)
        sni[0] = '\0';
    if (len == 0)
        return -EAGAIN;
    if (buf[0] != 0x16)
        return 2; /* not a TLS handshake record: not ours to judge */
    if (len >= 2 && buf[1] != 0x03)
        return -EINVAL;
    if (len < 5)
        return -EAGAIN;
    size_t reclen = ((size_t)buf[3] << 8) | buf[4];
    if (reclen < 4 || reclen > 16384)
        return -EINVAL;
    if (len < 5 + reclen)
        return -EAGAIN;
    struct cur rec = {buf + 5, reclen};
    size_t type = 0;
    if (!u8(&rec, &type) || type != 1)
        return -EINVAL; /* not a ClientHello */
    size_t hl = ((size_t)rec.p[0] << 16) | ((size_t)rec.p[1] << 8) | rec.p[2];
    take(&rec, 3, NULL);
    if (hl > rec.n)
        return -ENOTSUP; /* continues in another record */
    struct cur ch = {rec.p, hl};
    size_t n = 0;
    if (!take(&ch, 2 + 32, NULL))               /* version, random */
        return -EINVAL;
    if (!u8(&ch, &n) || n > 32 || !take(&ch, n, NULL)) /* session id */
        return -EINVAL;
    if (!u16(&ch, &n) || n < 2 || (n & 1) || !take(&ch, n, NULL))
        return -EINVAL;                          /* cipher suites */
    if (!u8(&ch, &n) || n < 1 || !take(&ch, n, NULL))
        return -EINVAL;                          /* compression methods */
    if (ch.n == 0)
        return 0;                                /* no extensions at all */
    struct cur exts;
    if (!u16(&ch, &n) || !take(&ch, n, &exts) || ch.n != 0)
        return -EINVAL;
    int found = 0;
    while (exts.n > 0) {
        size_t et = 0, el = 0;
        struct cur ext;
        if (!u16(&exts, &et) || !u16(&exts, &el) || !take(&exts, el, &ext))
            return -EINVAL;
        if (et != 0)
            continue;
        if (found)
            return -EINVAL; /* a second server_name extension */
        struct cur list;
        if (!u16(&ext, &n) || n == 0 || !take(&ext, n, &list) || ext.n != 0)
            return -EINVAL;
        while (list.n > 0) {
            size_t nt = 0;
            struct cur name;
            if (!u8(&list, &nt) || !u16(&list, &n) || !take(&list, n, &name))
                return -EINVAL;
            if (nt != 0)
                continue; /* unknown name types are skipped (RFC 6066) */
            if (found)
                return -EINVAL; /* two host names */
            char tmp[SP_PROXY_HOST_MAX + 1];
            if (n == 0 || n > SP_PROXY_HOST_MAX)
                return -EINVAL;
            memcpy(tmp, name.p, n);
            if (memchr(tmp, '\0', n))
                return -EINVAL;
            tmp[n] = '\0';
            char norm[SP_PROXY_HOST_MAX + 1];
            if (sp_proxy_host_normalize(tmp, n, norm, sizeof(norm)) < 0)
                return -EINVAL;
            if (sni && snilen) {
                if (strlen(norm) >= snilen)
                    return -EINVAL;
                strcpy(sni, norm);
            }
            found = 1;
        }
        if (!found)
            return -EINVAL; /* a server_name extension naming no host */
    }
    return found;
}
