/* proxy_parse.h — the egress proxy's configuration and its pure parsers
 * (proxy_parse.c): allow rules, the config object, request heads, SNI,
 * address classes. Everything here takes bytes and returns checked
 * results; nothing acts. The resolver file is proxy_hosts.h, the event
 * loop proxy.h. */
#ifndef SANDPIT_PROXY_PARSE_H
#define SANDPIT_PROXY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sandpit.h"

/* Defaults (docs/network.md, docs/limits.md). */
#define SP_PROXY_DEFAULT_MAX_CONNS 256
#define SP_PROXY_DEFAULT_HEADER_MAX (16 * 1024)
#define SP_PROXY_DEFAULT_IDLE_MS 60000
#define SP_PROXY_DEFAULT_CONNECT_MS 10000
#define SP_PROXY_DEFAULT_RESOLVE_MS 5000
#define SP_PROXY_DEFAULT_LOG_RING 256
/* Hard bounds on what a config may ask for. */
#define SP_PROXY_MAX_RULES 1024
#define SP_PROXY_MAX_CONNS_LIMIT 65536
#define SP_PROXY_HEADER_MIN 1024
#define SP_PROXY_HEADER_LIMIT (1024 * 1024)
/* bytes of the refusal's text repeated in the status line's reason */
#define SP_PROXY_PHRASE_MAX 300
#define SP_PROXY_LOG_RING_LIMIT 65536
/* Concurrent resolver children; further lookups wait their turn. */
#define SP_PROXY_MAX_RESOLVERS 8
/* Addresses kept from one lookup. */
#define SP_PROXY_MAX_ADDRS 16
/* Longest host name (RFC 1035: 253 characters without the final dot). */
#define SP_PROXY_HOST_MAX 253
/* The resolver file (--net-resolver, hosts format): largest file, longest
 * line, most (name, address) pairs. */
#define SP_PROXY_RESOLVER_FILE_MAX (1024 * 1024)
#define SP_PROXY_RESOLVER_LINE_MAX 4096
#define SP_PROXY_RESOLVER_MAX_ENTRIES 4096

/* One (name, address) pair of the resolver file. */
struct sp_proxy_host {
    char *name;        /* normalised (sp_proxy_host_normalize) */
    uint8_t family;    /* AF_INET or AF_INET6 */
    uint8_t addr[16];
};

struct sp_proxy_rule {
    char *host;     /* "example.com", "*.example.com" (subdomains only, not
                       the apex), or an IP literal ("10.1.2.3", "::1");
                       stored lower-case, without a trailing dot, IPv6
                       without brackets */
    uint16_t port;  /* 0 = the default ports, 80 and 443 */
};

struct sp_proxy_config {
    struct sp_proxy_rule *rules;
    size_t n_rules;
    bool allow_private;          /* allow loopback/private/link-local/CGNAT
                                    addresses (metadata included) after
                                    resolution */
    unsigned max_conns;          /* open client connections; 503 beyond */
    unsigned header_max;         /* request line + headers, bytes; 431 beyond */
    unsigned idle_timeout_ms;    /* no byte either way for this long: close;
                                    also the deadline for a request head */
    unsigned connect_timeout_ms; /* upstream connect (all addresses); 504 */
    unsigned resolve_timeout_ms; /* one name lookup; 504 */
    unsigned log_ring;           /* events kept in memory; 0 = none */
    bool use_hosts;              /* names resolve ONLY from hosts[] (a
                                    resolver file): no DNS, no fork */
    struct sp_proxy_host *hosts;
    size_t n_hosts;
};

/* Fill *ret with the defaults and no rules (denies everything). */
void sp_proxy_config_init(struct sp_proxy_config *ret);
/* Free the rules (and reset to the defaults). Accepts NULL. */
void sp_proxy_config_free(struct sp_proxy_config *cfg);

/* Parse an allow list "DOMAIN[,DOMAIN:PORT,...]" — the text after
 * "--net allow:" (a leading "allow:" is accepted too) — into *ret, which is
 * initialised first (sp_proxy_config_init) and holds the rules on success.
 * Entries: "example.com", "*.example.com", "example.com:8443", "10.0.0.5",
 * "10.0.0.5:8080", "::1", "[::1]:8080". Spaces around entries are ignored.
 * Returns 0, or -EINVAL naming the bad entry (SP_ERR_USAGE), -E2BIG past
 * SP_PROXY_MAX_RULES, -ENOMEM. On failure *ret holds no rules. */
int sp_proxy_config_parse(const char *allow_list, struct sp_proxy_config *ret,
                          sp_error *err);

/* Parse the JSON net policy form (docs/network.md):
 *   {"allow": ["pypi.org", "*.pythonhosted.org", "example.com:8443",
 *              {"host": "git.example.com", "port": 9418}],
 *    "allow_private": false, "max_connections": 256,
 *    "header_max": 16384, "idle_timeout_ms": 60000,
 *    "connect_timeout_ms": 10000, "resolve_timeout_ms": 5000,
 *    "log_ring": 256}
 * Every key is optional; unknown keys fail. `origin` names the source for
 * messages. Same return values as sp_proxy_config_parse. */
int sp_proxy_config_parse_json(const char *json, const char *origin,
                               struct sp_proxy_config *ret, sp_error *err);

/* Free the table only (cfg->use_hosts = false). */
void sp_proxy_resolver_clear(struct sp_proxy_config *cfg);

/* ---- pure helpers, exposed for tests and the fuzzer ----------------------- */

/* What an address is, for the private-address check. */
enum sp_addr_class {
    SP_ADDR_PUBLIC = 0,
    SP_ADDR_LOOPBACK,    /* 127/8, ::1 */
    SP_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    SP_ADDR_LINK_LOCAL,  /* 169.254/16 (cloud metadata), fe80::/10 */
    SP_ADDR_CGNAT,       /* 100.64/10 */
    SP_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
    SP_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
    SP_ADDR_RESERVED,    /* 240/4 incl. broadcast, ::/96 compat, other odd forms */
};

/* Classify an AF_INET or AF_INET6 address. IPv4-mapped (::ffff:a.b.c.d),
 * IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
 * forms are classified by the IPv4 address they carry. Other families:
 * SP_ADDR_RESERVED. */
enum sp_addr_class sp_proxy_addr_class(const struct sockaddr *sa);
const char *sp_proxy_addr_class_name(enum sp_addr_class c);
/* May the proxy connect to an address of this class? UNSPECIFIED,
 * MULTICAST and RESERVED: never; the private classes: only when
 * allow_private. */
bool sp_proxy_addr_allowed(enum sp_addr_class c, bool allow_private);

/* Normalise a host name as a client sent it: lower-case, strip one trailing
 * dot, check the characters (letters, digits, '-', '_', '.') and label
 * lengths. Writes at most SP_PROXY_HOST_MAX+1 bytes to out. Returns 0 or
 * -EINVAL. IP literals are not names: see sp_proxy_parse_ip. */
int sp_proxy_host_normalize(const char *in, size_t len, char *out,
                            size_t outlen);

/* Parse an IP literal: IPv4 in any form inet_aton() accepts ("127.1",
 * "0x7f.1", "2130706433" — all of which resolvers treat as addresses) or
 * IPv6 (with or without brackets). Fills *ret (family, address; port 0).
 * Returns true when `host` is an IP literal. */
bool sp_proxy_parse_ip(const char *host, struct sockaddr_storage *ret);

/* The rule that allows host:port (host normalised, or an IP literal), or
 * NULL. Names match name rules only (exact, or "*.suffix" for strict
 * subdomains); IP literals match IP rules with the same address only. */
const struct sp_proxy_rule *sp_proxy_match(const struct sp_proxy_config *cfg,
                                           const char *host, uint16_t port);

/* A parsed request head. Strings are copies, terminated. */
struct sp_proxy_request {
    char method[16];
    bool is_connect;
    char host[SP_PROXY_HOST_MAX + 3]; /* normalised name or IP literal
                                         (IPv6 without brackets) */
    uint16_t port;
    bool host_is_ip;
    size_t path_off, path_len;        /* origin-form target in the buffer
                                         ("/x?y"; len 0: send "/") */
    int minor;                        /* HTTP/1.minor: 0 or 1 */
    bool has_host_header;
    uint64_t content_length;          /* 0 when absent */
    size_t head_len;                  /* bytes up to and with CRLFCRLF */
};

/* Parse a request head from buf[0..len). Returns head_len (> 0) when a
 * complete, acceptable head was parsed; 0 when more bytes are needed (and
 * len < max); or the negated HTTP status to answer: -400 malformed,
 * -431 head larger than max, -501 Transfer-Encoding or an unsupported
 * form, -505 unsupported version. On error, *why (if non-NULL) points to
 * a static phrase. */
int sp_proxy_parse_request(const char *buf, size_t len, size_t max,
                           struct sp_proxy_request *req, const char **why);

/* Build the head sent upstream for a plain HTTP request: the request line
 * in origin-form, the client's headers minus hop-by-hop ones (Connection,
 * Proxy-Connection, Keep-Alive, Proxy-Authorization, Proxy-Authenticate,
 * TE, Trailer, Upgrade), a Host header when the client sent none, and
 * "Connection: close". Returns the length written or -ENOSPC. */
int sp_proxy_build_upstream_head(const char *buf,
                                 const struct sp_proxy_request *req,
                                 char *out, size_t outlen);

/* Look at the first bytes a client sent into a CONNECT tunnel.
 * Returns: 1 a TLS ClientHello with an SNI host name (copied, lower-case,
 * into sni); 0 a ClientHello without SNI; 2 not TLS (first byte is not a
 * handshake record); -EAGAIN need more bytes (at most 5 + 16384 in all);
 * -EINVAL a malformed ClientHello; -ENOTSUP a ClientHello split over
 * several records. */
int sp_proxy_parse_sni(const uint8_t *buf, size_t len, char *sni,
                       size_t snilen);

#endif
