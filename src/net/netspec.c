/* netspec.c — see netspec.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "netspec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "state.h" /* sp_json_loadfd */
#include "util.h"

char *sp_net_config_to_json_text(const struct sp_proxy_config *cfg)
{
    json_t *o = json_object();
    json_t *allow = json_array();
    if (!o || !allow) {
        json_decref(o);
        json_decref(allow);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct sp_proxy_rule *r = &cfg->rules[i];
        if (r->port)
            json_array_append_new(allow, json_pack("{s:s,s:i}", "host", r->host,
                                                   "port", (int)r->port));
        else
            json_array_append_new(allow, json_string(r->host));
    }
    json_object_set_new(o, "allow", allow);
    json_object_set_new(o, "allow_private", json_boolean(cfg->allow_private));
    json_object_set_new(o, "max_connections", json_integer(cfg->max_conns));
    json_object_set_new(o, "header_max", json_integer(cfg->header_max));
    json_object_set_new(o, "idle_timeout_ms", json_integer(cfg->idle_timeout_ms));
    json_object_set_new(o, "connect_timeout_ms",
                        json_integer(cfg->connect_timeout_ms));
    json_object_set_new(o, "resolve_timeout_ms",
                        json_integer(cfg->resolve_timeout_ms));
    json_object_set_new(o, "log_ring", json_integer(cfg->log_ring));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* The proxy parser's messages are complete sentences about bad input: no
 * ": Invalid argument" after them. */
static void plain_usage_error(sp_error *err)
{
    if (!err || err->code == 0)
        return;
    const char *suf = strerror(err->code);
    size_t ml = strlen(err->message), sl = strlen(suf);
    if (ml >= sl + 2 && strcmp(err->message + ml - sl, suf) == 0 &&
        err->message[ml - sl - 2] == ':')
        err->message[ml - sl - 2] = '\0';
    err->code = 0;
}

static int canon_done(int r, struct sp_proxy_config *cfg, char **ret,
                      sp_error *err)
{
    if (r == -EINVAL || r == -E2BIG)
        plain_usage_error(err);
    if (r < 0)
        return r;
    *ret = sp_net_config_to_json_text(cfg);
    sp_proxy_config_free(cfg);
    if (!*ret)
        return sp_error_set(err, ENOMEM, "net policy");
    return 0;
}

int sp_net_canon_list(const char *list, const char *origin, char **ret,
                      sp_error *err)
{
    struct sp_proxy_config cfg;
    (void)origin; /* the parser's messages already say "--net allow:" */
    int r = sp_proxy_config_parse(list, &cfg, err);
    return canon_done(r, &cfg, ret, err);
}

int sp_net_canon_json(const json_t *v, const char *origin, char **ret,
                      sp_error *err)
{
    json_t *o = NULL;
    if (json_is_array(v))
        o = json_pack("{s:O}", "allow", (json_t *)v);
    else if (json_is_object(v))
        o = json_incref((json_t *)v);
    else
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: expected a list of hosts or a net policy "
                             "object",
                             origin);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return sp_error_set(err, ENOMEM, "net policy");
    struct sp_proxy_config cfg;
    int r = sp_proxy_config_parse_json(text, origin, &cfg, err);
    free(text);
    return canon_done(r, &cfg, ret, err);
}

int sp_net_canon_file(const char *path, const char *origin, char **ret,
                      sp_error *err)
{
    /* O_NONBLOCK: a FIFO named here must not hang us; fstat refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "%s: cannot open %s",
                             origin, path);
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > SP_MAX_POLICY_FILE) {
        close(fd);
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: %s is not a regular file of at most %d bytes",
                             origin, path, SP_MAX_POLICY_FILE);
    }
    json_error_t je;
    json_t *v = sp_json_loadfd(fd, SP_MAX_POLICY_FILE, JSON_REJECT_DUPLICATES,
                               &je);
    close(fd);
    if (!v)
        return sp_error_setk(err, SP_ERR_USAGE, 0,
                             "%s: %s line %d: %s", origin, path, je.line,
                             je.text);
    int r = json_is_object(v)
                ? sp_net_canon_json(v, origin, ret, err)
                : sp_error_setk(err, SP_ERR_USAGE, 0,
                                "%s: %s must hold a JSON object", origin, path);
    json_decref(v);
    return r;
}

