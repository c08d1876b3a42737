/* report.c — what the sandbox did to one command (report.h). */
#include "report.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const end_names[] = {"exit", "signal", "timeout",
                                        "oom",  "pids",   "cancelled"};

static bool denial_same(const struct sp_denial *a, const struct sp_denial *b)
{
    return a->kind == b->kind && a->port == b->port &&
           a->has_arg == b->has_arg && (!a->has_arg || a->arg == b->arg) &&
           strcmp(a->what, b->what) == 0 && strcmp(a->rule, b->rule) == 0;
}

void sp_denials_add(struct sp_denials *t, const struct sp_denial *d)
{
    t->total++;
    for (size_t i = 0; i < t->n; i++) {
        if (denial_same(&t->e[i], d)) {
            t->e[i].count++;
            return;
        }
    }
    if (t->n >= SP_ARRAY_SIZE(t->e)) {
        t->dropped++;
        return;
    }
    t->e[t->n] = *d;
    t->e[t->n].count = 1;
    t->n++;
}

json_t *sp_denials_json(const struct sp_denials *t)
{
    json_t *a = json_array();
    for (size_t i = 0; t && i < t->n; i++) {
        const struct sp_denial *d = &t->e[i];
        json_t *o;
        if (d->kind == SP_DENIAL_SYSCALL) {
            const char *en = strerrorname_np(d->err);
            o = json_pack("{s:s,s:s,s:s,s:s}", "kind", "syscall", "syscall",
                          d->what, "errno", en ? en : "?", "rule", d->rule);
            if (d->has_arg)
                json_object_set_new(o, d->arg_name,
                                    json_integer((json_int_t)d->arg));
        } else {
            o = json_pack("{s:s,s:s,s:i,s:s,s:i}", "kind", "network", "host",
                          d->what, "port", (int)d->port, "rule", d->rule,
                          "status", d->err);
        }
        json_object_set_new(o, "count", json_integer((json_int_t)d->count));
        json_object_set_new(o, "first_ms",
                            json_integer((json_int_t)d->first_ms));
        json_array_append_new(a, o);
    }
    return a;
}

const char *sp_denial_line(const struct sp_denial *d, char *buf, size_t len)
{
    if (d->kind == SP_DENIAL_SYSCALL)
        snprintf(buf, len, "sandbox: syscall %s refused (%s)", d->what,
                 d->rule);
    else
        snprintf(buf, len, "sandbox: network to %s:%u refused (%s)", d->what,
                 (unsigned)d->port, d->rule);
    return buf;
}

void sp_end_from_run(const sp_stats *st, int rc, uint64_t memory_limit,
                     uint64_t pids_limit, sp_exec_end *e)
{
    memset(e, 0, sizeof(*e));
    e->exit_code = rc;
    e->pids_refused = st->pids_refused;
    e->pids_limit = pids_limit;
    if (rc > 128 && rc < 128 + NSIG && !st->timed_out)
        e->signal = rc - 128;
    if (st->timed_out) {
        e->how = SP_ENDED_TIMEOUT;
    } else if (st->oom_killed && rc == 128 + SIGKILL) {
        e->how = SP_ENDED_OOM;
        e->memory_limit = memory_limit;
    } else if (e->pids_refused && rc != 0) {
        e->how = SP_ENDED_PIDS;
    } else if (e->signal) {
        e->how = SP_ENDED_SIGNAL;
    } else {
        e->how = SP_ENDED_EXIT;
    }
}

json_t *sp_end_json(const sp_exec_end *e)
{
    json_t *o = json_pack("{s:s}", "ended", end_names[e->how]);
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

SP_EXPORT const char *sp_exec_end_text(const sp_exec_end *e, char *buf,
                                       size_t len)
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

static void set_u64_or_null(json_t *o, json_t *unknown, const char *k,
                            bool known, uint64_t v, const char *why)
{
    if (known) {
        json_object_set_new(o, k, json_integer((json_int_t)v));
    } else {
        json_object_set_new(o, k, json_null());
        if (why)
            json_object_set_new(unknown, k, json_string(why));
    }
}

json_t *sp_report_resources(const sp_stats *st, const char *memory_source,
                            const char *pids_why, const char *disk_why)
{
    json_t *o = json_object();
    json_t *unknown = json_object();
    json_object_set_new(o, "wall_ms", json_real((double)st->wall_us / 1000.0));
    json_object_set_new(o, "cpu_user_ms",
                        json_real((double)st->cpu_user_us / 1000.0));
    json_object_set_new(o, "cpu_sys_ms",
                        json_real((double)st->cpu_sys_us / 1000.0));
    set_u64_or_null(o, unknown, "memory_peak_bytes", st->memory_known,
                    st->memory_peak, "no memory controller and no rusage");
    if (st->memory_known && memory_source)
        json_object_set_new(o, "memory_peak_source",
                            json_string(memory_source));
    set_u64_or_null(o, unknown, "pids_peak", st->pids_known, st->pids_peak,
                    pids_why);
    set_u64_or_null(o, unknown, "disk_written_bytes", st->io_known,
                    st->io_written, disk_why);
    if (json_object_size(unknown))
        json_object_set_new(o, "unknown", unknown);
    else
        json_decref(unknown);
    return o;
}

const char *sp_report_file_why(int abi, char *buf, size_t len)
{
    if (abi >= 7)
        snprintf(buf, len,
                 "EACCES/EROFS go to the program only; this kernel's Landlock "
                 "(ABI %d) writes audit records, but to the host's audit log "
                 "(CAP_AUDIT_READ, audit enabled host-wide), which sandpit "
                 "does not read",
                 abi);
    else
        snprintf(buf, len,
                 "EACCES/EROFS go to the program only; this kernel's Landlock "
                 "(ABI %d) has no audit records (Linux >= 6.15, ABI 7)",
                 abi);
    return buf;
}

static int add_line(char **buf, size_t *len, const char *line)
{
    size_t l = strlen(line);
    char *n = realloc(*buf, *len + l + 2);
    if (!n)
        return -ENOMEM;
    memcpy(n + *len, line, l);
    n[*len + l] = '\n';
    n[*len + l + 1] = '\0';
    *buf = n;
    *len += l + 1;
    return 0;
}

char *sp_report_summary(const json_t *report)
{
    char *buf = calloc(1, 1);
    size_t len = 0;
    if (!buf)
        return NULL;
    /* One line per denial kind: the first of each kind, with how many
     * more there were. */
    json_t *den = json_object_get(report, "denials");
    static const char *const kinds[] = {"syscall", "network"};
    for (size_t k = 0; k < SP_ARRAY_SIZE(kinds); k++) {
        size_t i, first = (size_t)-1;
        uint64_t n = 0;
        json_t *d;
        json_array_foreach(den, i, d)
        {
            if (!json_is_string(json_object_get(d, "kind")) ||
                strcmp(json_string_value(json_object_get(d, "kind")),
                       kinds[k]) != 0)
                continue;
            if (first == (size_t)-1)
                first = i;
            n += (uint64_t)json_integer_value(json_object_get(d, "count"));
        }
        if (first == (size_t)-1)
            continue;
        d = json_array_get(den, first);
        char line[768];
        const char *rule = json_string_value(json_object_get(d, "rule"));
        uint64_t c =
            (uint64_t)json_integer_value(json_object_get(d, "count"));
        if (k == 0)
            snprintf(line, sizeof(line), "sandbox: syscall %s refused (%s)",
                     json_string_value(json_object_get(d, "syscall")),
                     rule ? rule : "");
        else
            snprintf(line, sizeof(line),
                     "sandbox: network to %s:%lld refused (%s)",
                     json_string_value(json_object_get(d, "host")),
                     (long long)json_integer_value(json_object_get(d, "port")),
                     rule ? rule : "");
        if (n > c) {
            size_t l = strlen(line);
            snprintf(line + l, sizeof(line) - l, " and %llu more %s denial%s",
                     (unsigned long long)(n - c), kinds[k],
                     n - c == 1 ? "" : "s");
        }
        if (add_line(&buf, &len, line) < 0)
            goto fail;
    }
    json_t *out = json_object_get(report, "outcome");
    json_t *text = json_object_get(out, "text");
    if (json_is_string(text)) {
        char line[512];
        snprintf(line, sizeof(line), "sandbox: %s", json_string_value(text));
        if (add_line(&buf, &len, line) < 0)
            goto fail;
    }
    return buf;
fail:
    free(buf);
    return NULL;
}
