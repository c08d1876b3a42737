/* netspec.h — network specs as the policy holds them (docs/network.md):
 * an allow list ("a.com,*.b.org:8443"), a JSON array of entries, a JSON
 * net policy object or a file of one, checked by the proxy's own parser
 * (proxy_parse.c) and kept as canonical JSON text. Pure: reads a file at
 * most, acts on nothing; the policy layer calls it. */
#ifndef SANDPIT_NETSPEC_H
#define SANDPIT_NETSPEC_H

#include <jansson.h>

#include "proxy.h"
#include "sandpit.h"

/* Canonical JSON text (the sp_proxy_config_parse_json form) of a config;
 * caller frees. NULL on ENOMEM. */
char *sp_net_config_to_json_text(const struct sp_proxy_config *cfg);

/* Validate an allow list ("a.com,*.b.org:8443"), a JSON array of entries,
 * or a JSON config object and return its canonical JSON text in *ret
 * (caller frees). Return 0 or -errno with err (SP_ERR_USAGE) filled. */
int sp_net_canon_list(const char *list, const char *origin, char **ret,
                      sp_error *err);
int sp_net_canon_json(const json_t *v, const char *origin, char **ret,
                      sp_error *err);
/* Read a JSON net policy file (at most SP_MAX_POLICY_FILE bytes). */
int sp_net_canon_file(const char *path, const char *origin, char **ret,
                      sp_error *err);

#endif
