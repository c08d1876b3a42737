/* fuzz_proxy_parse.c — libFuzzer target for the egress proxy's parsers: the
 * HTTP request-head parser (and the upstream head built from what it
 * accepts), the TLS ClientHello SNI parser, and the allow-list parser. The
 * first byte picks the parser (the allow-list branch also feeds the bytes
 * to the resolver-file parser); any input must give an answer from the
 * documented set, never a crash, an overread or a leak. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0] % 3;
    data++;
    size--;
    if (sel == 0) {
        /* an exact-size copy, so ASan sees any read past the end */
        char *buf = malloc(size ? size : 1);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        struct sp_proxy_request req;
        const char *why = NULL;
        size_t max = 1024 + (size % 4096);
        int r = sp_proxy_parse_request(buf, size, max, &req, &why);
        if (r > 0) {
            if ((size_t)r > size || (size_t)r > max || req.host[0] == '\0' ||
                req.port == 0)
                abort();
            if (!req.is_connect) {
                if (req.path_off + req.path_len > (size_t)r)
                    abort();
                size_t cap = (size_t)r + 512;
                char *out = malloc(cap);
                if (out) {
                    int n = sp_proxy_build_upstream_head(buf, &req, out, cap);
                    if (n < 0 || (size_t)n > cap ||
                        memcmp(out + n - 4, "\r\n\r\n", 4) != 0)
                        abort();
                    free(out);
                }
            }
        } else if (r < 0) {
            if (!why || (r != -400 && r != -431 && r != -501 && r != -505))
                abort();
        }
        free(buf);
    } else if (sel == 1) {
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        char sni[SP_PROXY_HOST_MAX + 1];
        int r = sp_proxy_parse_sni(buf, size, sni, sizeof(sni));
        if (r != 0 && r != 1 && r != 2 && r != -EAGAIN && r != -EINVAL &&
            r != -ENOTSUP)
            abort();
        if (r == 1 && (sni[0] == '\0' || strlen(sni) > SP_PROXY_HOST_MAX))
            abort();
        free(buf);
    } else {
        char *text = malloc(size + 1);
        if (!text)
            return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        struct sp_proxy_config cfg;
        sp_error err;
        memset(&err, 0, sizeof(err));
        if (sp_proxy_config_parse(text, &cfg, &err) == 0) {
            for (size_t i = 0; i < cfg.n_rules; i++)
                (void)sp_proxy_match(&cfg, cfg.rules[i].host,
                                     cfg.rules[i].port ? cfg.rules[i].port : 443);
            sp_proxy_config_free(&cfg);
        } else if (!err.message[0] || cfg.rules) {
            abort();
        }
        free(text);
        /* the same bytes as a resolver (hosts) file, exact-size copy */
        char *hosts = malloc(size ? size : 1);
        if (!hosts)
            return 0;
        memcpy(hosts, data, size);
        sp_proxy_config_init(&cfg);
        memset(&err, 0, sizeof(err));
        int r = sp_proxy_resolver_parse(hosts, size, "fuzz", &cfg, &err);
        if (r == 0) {
            struct sockaddr_storage a[SP_PROXY_MAX_ADDRS];
            if (!cfg.use_hosts || cfg.n_hosts > SP_PROXY_RESOLVER_MAX_ENTRIES)
                abort();
            for (size_t i = 0; i < cfg.n_hosts; i++)
                if (sp_proxy_resolver_lookup(&cfg, cfg.hosts[i].name, a,
                                             SP_PROXY_MAX_ADDRS) == 0)
                    abort();
        } else if ((r != -EINVAL && r != -E2BIG && r != -ENOMEM) ||
                   !err.message[0] || cfg.hosts) {
            abort();
        }
        sp_proxy_config_free(&cfg);
        free(hosts);
    }
    return 0;
}
