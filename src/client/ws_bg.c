/* ws_bg.c — background execs' requests (ws_bg.h). */
#include "ws_bg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent_ext.h" /* SP_SERVICE_SPEC_MAX, SP_EXT_MAX_WAIT */
#include "ring.h"      /* base64 */
#include "ws_shell.h"   /* sp_ws_read_params */

static json_t *strv(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

int sp_ws_bg_start_params(const struct sp_ws_bg_opts *o, json_t **ret,
                          sp_error *err)
{
    *ret = NULL;
    if (!o || !o->argv || !o->argv[0])
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "a background exec needs a command");
    size_t spec = o->cwd ? strlen(o->cwd) : 0;
    for (size_t i = 0; o->argv[i] && spec <= SP_SERVICE_SPEC_MAX; i++)
        spec += strlen(o->argv[i]) + 1;
    for (size_t i = 0; o->env && o->env[i] && spec <= SP_SERVICE_SPEC_MAX; i++)
        spec += strlen(o->env[i]) + 1;
    if (spec > SP_SERVICE_SPEC_MAX)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "the command, environment and directory take "
                             "more than the %d bytes a background exec may "
                             "have", SP_SERVICE_SPEC_MAX);
    json_t *p = json_pack("{s:o}", "argv", strv(o->argv));
    if (o->env)
        json_object_set_new(p, "env", strv(o->env));
    if (o->cwd)
        json_object_set_new(p, "cwd", json_string(o->cwd));
    if (o->timeout > 0)
        json_object_set_new(p, "timeout", json_real(o->timeout));
    if (o->want_stdin)
        json_object_set_new(p, "stdin", json_true());
    if (o->secret_env && o->secret_env[0])
        json_object_set_new(p, "secret_env", strv(o->secret_env));
    *ret = p;
    return 0;
}

json_t *sp_ws_bg_params(int job)
{
    return json_pack("{s:i}", "job", job);
}

json_t *sp_ws_bg_logs_params(int job, bool want_stderr, int64_t cursor,
                             long tail, size_t max, double wait)
{
    return sp_ws_read_params(json_pack("{s:i}", "job", job), want_stderr,
                             cursor, tail, max,
                             wait > SP_EXT_MAX_WAIT ? SP_EXT_MAX_WAIT : wait);
}

json_t *sp_ws_bg_wait_params(int job, double wait)
{
    return json_pack("{s:i,s:f}", "job", job, "wait",
                     wait > SP_EXT_MAX_WAIT ? SP_EXT_MAX_WAIT
                                            : wait < 0 ? 0 : wait);
}

json_t *sp_ws_bg_write_params(int job, const void *data, size_t len, bool eof)
{
    char *b = malloc(sp_b64_encoded_len(len) + 1);
    if (!b)
        return NULL;
    sp_b64_encode(data, len, b);
    json_t *p = json_pack("{s:i,s:s,s:b}", "job", job, "data", b, "eof", eof);
    free(b);
    return p;
}

json_t *sp_ws_bg_signal_params(int job, int sig)
{
    return json_pack("{s:i,s:i}", "job", job, "signal", sig);
}
