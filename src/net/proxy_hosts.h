/* proxy_hosts.h — the proxy's resolver file (--net-resolver, hosts
 * format) and the lookups answered from it (proxy_hosts.c). */
#ifndef SANDPIT_PROXY_HOSTS_H
#define SANDPIT_PROXY_HOSTS_H

#include "proxy_parse.h"

/* Parse a resolver file's text (hosts format: "ADDRESS NAME [NAME...]" per
 * line, '#' to the end of a line is a comment, blank lines ignored;
 * addresses are strict inet_pton IPv4 or IPv6 without a zone) into
 * cfg->hosts and set cfg->use_hosts (replacing any table it had). A NUL
 * byte, a line longer than SP_PROXY_RESOLVER_LINE_MAX, a bad address, a
 * bad name, an IP literal as a name or a line without a name fails with
 * -EINVAL naming `origin` and the line (SP_ERR_USAGE); more than
 * SP_PROXY_RESOLVER_MAX_ENTRIES pairs: -E2BIG. On failure cfg's table is
 * unchanged. */
int sp_proxy_resolver_parse(const char *text, size_t len, const char *origin,
                            struct sp_proxy_config *cfg, sp_error *err);
/* Read (a regular file of at most SP_PROXY_RESOLVER_FILE_MAX bytes) and
 * parse a resolver file. */
int sp_proxy_resolver_load(const char *path, struct sp_proxy_config *cfg,
                           sp_error *err);
/* The addresses the table has for a normalised name, in file order (port
 * 0), at most max. Returns how many. */
size_t sp_proxy_resolver_lookup(const struct sp_proxy_config *cfg,
                                const char *host, struct sockaddr_storage *out,
                                size_t max);

#endif
