/* proxy_hosts.c — the egress proxy's resolver file (--net-resolver,
 * docs/network.md): a hosts-format file parsed once, when the config is
 * made, into a table that answers every lookup; with one, the proxy never
 * asks DNS. The file is input the operator chose but may be anything:
 * bounded in size, line length and entries, every field checked. */
#include "proxy_hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static void table_free(struct sp_proxy_host *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(h[i].name);
    free(h);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Parse one address token strictly (no inet_aton forms, no zone). */
static bool parse_addr(const char *tok, size_t n, struct sp_proxy_host *h)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, tok, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, h->addr) == 1) {
        h->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, tmp, h->addr) == 1) {
        h->family = AF_INET6;
        return true;
    }
    return false;
}

int sp_proxy_resolver_parse(const char *text, size_t len, const char *origin,
                            struct sp_proxy_config *cfg, sp_error *err)
{
    if (!origin)
        origin = "resolver file";
    if (len && memchr(text, '\0', len)) {
        sp_error_setk(err, SP_ERR_USAGE, 0, "%s: holds a NUL byte", origin);
        return -EINVAL;
    }
    struct sp_proxy_host *tab = NULL;
    size_t n = 0, cap = 0;
    size_t lineno = 0;
    int r = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > SP_PROXY_RESOLVER_LINE_MAX) {
            r = sp_error_setk(err, SP_ERR_USAGE, 0,
                              "%s line %zu: longer than %d bytes", origin,
                              lineno, SP_PROXY_RESOLVER_LINE_MAX);
            goto fail;
        }
        const char *hash = memchr(p, '#', (size_t)(le - p));
        if (hash)
            le = hash;
        const char *q = p;
        bool have_addr = false, have_name = false;
        struct sp_proxy_host proto;
        memset(&proto, 0, sizeof(proto));
        for (;;) {
            while (q < le && is_blank(*q))
                q++;
            if (q >= le)
                break;
            const char *ts = q;
            while (q < le && !is_blank(*q))
                q++;
            size_t tl = (size_t)(q - ts);
            if (!have_addr) {
                if (!parse_addr(ts, tl, &proto)) {
                    r = sp_error_setk(err, SP_ERR_USAGE, 0,
                                      "%s line %zu: \"%.*s\" is not an IPv4 "
                                      "or IPv6 address",
                                      origin, lineno, (int)(tl > 64 ? 64 : tl),
                                      ts);
                    goto fail;
                }
                have_addr = true;
                continue;
            }
            char name[SP_PROXY_HOST_MAX + 1];
            char lit[SP_PROXY_HOST_MAX + 1];
            struct sockaddr_storage ss;
            bool ip = false;
            if (tl < sizeof(lit)) {
                memcpy(lit, ts, tl);
                lit[tl] = '\0';
                ip = sp_proxy_parse_ip(lit, &ss);
            }
            if (ip || sp_proxy_host_normalize(ts, tl, name, sizeof(name)) < 0) {
                r = sp_error_setk(err, SP_ERR_USAGE, 0,
                                  "%s line %zu: \"%.*s\" is not a host name",
                                  origin, lineno, (int)(tl > 64 ? 64 : tl), ts);
                goto fail;
            }
            if (n >= SP_PROXY_RESOLVER_MAX_ENTRIES) {
                r = sp_error_setk(err, SP_ERR_USAGE, 0,
                                  "%s: more than %d names", origin,
                                  SP_PROXY_RESOLVER_MAX_ENTRIES);
                r = -E2BIG;
                goto fail;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct sp_proxy_host *nt = realloc(tab, nc * sizeof(*tab));
                if (!nt) {
                    r = sp_error_set(err, ENOMEM, "%s", origin);
                    goto fail;
                }
                tab = nt;
                cap = nc;
            }
            tab[n] = proto;
            tab[n].name = strdup(name);
            if (!tab[n].name) {
                r = sp_error_set(err, ENOMEM, "%s", origin);
                goto fail;
            }
            n++;
            have_name = true;
        }
        if (have_addr && !have_name) {
            r = sp_error_setk(err, SP_ERR_USAGE, 0,
                              "%s line %zu: an address without a name", origin,
                              lineno);
            goto fail;
        }
        p = nl ? nl + 1 : end;
    }
    sp_proxy_resolver_clear(cfg);
    cfg->hosts = tab;
    cfg->n_hosts = n;
    cfg->use_hosts = true;
    return 0;
fail:
    table_free(tab, n);
    /* Messages are set without an errno (no ": Invalid argument" tail). */
    return r == -ENOMEM || r == -E2BIG ? r : -EINVAL;
}

int sp_proxy_resolver_load(const char *path, struct sp_proxy_config *cfg,
                           sp_error *err)
{
    /* O_NONBLOCK: a FIFO named here must not hang us; fstat refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno,
                             "--net-resolver: cannot open %s", path);
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > SP_PROXY_RESOLVER_FILE_MAX) {
        close(fd);
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "--net-resolver: %s is not a regular file of at "
                             "most %d bytes",
                             path, SP_PROXY_RESOLVER_FILE_MAX);
    }
    /* Read at most the bound (+1 to notice a file that grew meanwhile). */
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return sp_error_set(err, ENOMEM, "--net-resolver");
    }
    for (;;) {
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sp_error_setk(err, SP_ERR_USAGE, e, "--net-resolver: %s",
                                 path);
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len == cap) {
            free(buf);
            close(fd);
            return sp_error_setk(err, SP_ERR_USAGE, 0,
                                 "--net-resolver: %s changed while read", path);
        }
    }
    close(fd);
    char origin[300];
    snprintf(origin, sizeof(origin), "--net-resolver %.280s", path);
    int r = sp_proxy_resolver_parse(buf, len, origin, cfg, err);
    free(buf);
    return r;
}

size_t sp_proxy_resolver_lookup(const struct sp_proxy_config *cfg,
                                const char *host, struct sockaddr_storage *out,
                                size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_hosts && k < max; i++) {
        const struct sp_proxy_host *h = &cfg->hosts[i];
        if (strcmp(h->name, host) != 0)
            continue;
        memset(&out[k], 0, sizeof(out[k]));
        if (h->family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&out[k];
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, h->addr, 4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[k];
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, h->addr, 16);
        }
        k++;
    }
    return k;
}
