/* wsend.c — how an exec ended (wsend.h). */
#include "wsend.h"

#include "report.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>


static uint64_t u64(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (uint64_t)json_integer_value(v)
               : 0;
}

void sp_ws_end_from_reply(json_t *res, int status, sp_exec_end *e)
{
    memset(e, 0, sizeof(*e));
    e->exit_code = status;
    json_t *sig = json_object_get(res, "signal");
    if (json_is_integer(sig) && json_integer_value(sig) > 0 &&
        json_integer_value(sig) < NSIG)
        e->signal = (int)json_integer_value(sig);
    e->memory_limit = u64(res, "memory_limit");
    e->pids_limit = u64(res, "pids_limit");
    e->pids_refused = u64(res, "pids_refused");
    if (json_is_true(json_object_get(res, "timed_out")))
        e->how = SP_ENDED_TIMEOUT;
    else if (json_is_true(json_object_get(res, "oom")))
        e->how = SP_ENDED_OOM;
    else if (e->pids_refused && (status != 0 || e->signal))
        e->how = SP_ENDED_PIDS;
    else if (e->signal)
        e->how = SP_ENDED_SIGNAL;
    else
        e->how = SP_ENDED_EXIT;
}

json_t *sp_ws_end_json(const sp_exec_end *e)
{
    return sp_end_json(e);
}

json_t *sp_ws_report_from_reply(json_t *res, const sp_exec_end *e,
                                char *const *argv)
{
    json_t *r = json_object_get(res, "report");
    if (!json_is_object(r))
        return NULL;
    json_t *o = json_pack("{s:i}", "version", 1);
    if (argv) {
        json_t *a = json_array();
        for (size_t i = 0; argv[i] && i < 64; i++)
            json_array_append_new(a, json_string(argv[i]));
        json_object_set_new(o, "command", a);
    }
    json_object_set_new(o, "outcome", sp_end_json(e));
    json_object_update(o, r);
    return o;
}
