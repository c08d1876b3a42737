/* wsend.c — how an exec ended (wsend.h). */
#include "wsend.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {"exit", "signal", "timeout",
                                    "oom",  "pids",   "cancelled"};

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
    json_t *o = json_pack("{s:s}", "ended", names[e->how]);
    char why[256];
    if (*sp_exec_end_text(e, why, sizeof(why)))
        json_object_set_new(o, "text", json_string(why));
    if (e->how == SP_ENDED_CANCELLED)
        return o;
    json_object_set_new(o, "exit_code", json_integer(e->exit_code));
    if (e->signal) {
        json_object_set_new(o, "signal", json_integer(e->signal));
        const char *n = sigabbrev_np(e->signal);
        if (n) {
            char b[32];
            snprintf(b, sizeof(b), "SIG%s", n);
            json_object_set_new(o, "signal_name", json_string(b));
        }
    }
    if (e->how == SP_ENDED_OOM && e->memory_limit)
        json_object_set_new(o, "limit_bytes",
                            json_integer((json_int_t)e->memory_limit));
    if (e->pids_refused) {
        json_object_set_new(o, "refused_forks",
                            json_integer((json_int_t)e->pids_refused));
        if (e->pids_limit)
            json_object_set_new(o, "limit",
                                json_integer((json_int_t)e->pids_limit));
    }
    return o;
}

static void size_text(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ull << 30) && b % (1ull << 30) == 0)
        snprintf(buf, len, "%llu GiB", (unsigned long long)(b >> 30));
    else if (b >= (1ull << 20) && b % (1ull << 20) == 0)
        snprintf(buf, len, "%llu MiB", (unsigned long long)(b >> 20));
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)b);
}

SP_EXPORT const char *sp_exec_end_text(const sp_exec_end *e, char *buf, size_t len)
{
    char lim[48] = "";
    const char *n = e->signal ? sigabbrev_np(e->signal) : NULL;
    switch (e->how) {
    case SP_ENDED_TIMEOUT:
        snprintf(buf, len, "timed out: the command ran past its timeout "
                           "and was stopped");
        break;
    case SP_ENDED_OOM:
        if (e->memory_limit)
            size_text(e->memory_limit, lim, sizeof(lim));
        snprintf(buf, len, "killed: out of memory%s%s%s",
                 *lim ? " (limit " : "", lim, *lim ? ")" : "");
        break;
    case SP_ENDED_PIDS:
        if (e->pids_limit)
            snprintf(lim, sizeof(lim), " (limit %llu)",
                     (unsigned long long)e->pids_limit);
        snprintf(buf, len, "failed: the process limit refused %llu fork%s%s",
                 (unsigned long long)e->pids_refused,
                 e->pids_refused == 1 ? "" : "s", lim);
        break;
    case SP_ENDED_SIGNAL:
        snprintf(buf, len, "killed by signal %d%s%s%s", e->signal,
                 n ? " (SIG" : "", n ? n : "", n ? ")" : "");
        break;
    case SP_ENDED_CANCELLED:
        snprintf(buf, len, "cancelled");
        break;
    case SP_ENDED_EXIT:
    default:
        if (len)
            buf[0] = '\0';
        break;
    }
    return buf;
}
