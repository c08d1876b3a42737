/* wsrestore.c — restore of a workspace as a client sees it (sandpit.h,
 * docs/snapshots.md): the host side (sp_snap_restore, snapshot.c) checks,
 * stops the workspace, points it at the snapshot's layers and starts it
 * again; here the services that were running are noted before the stop
 * and brought back after it, through the workspace's control socket, each
 * with its own report line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "freeze.h"
#include "jsonrpc.h"
#include "secrets.h"
#include "sandpit.h"
#include "snapshot.h"
#include "util.h"

/* One service's spec, checked: NULL when it is not one to bring back or
 * is not well formed. */
static json_t *restart_spec(json_t *v, bool has_secrets, bool *ret_redacted)
{
    const char *st = json_string_value(json_object_get(v, "state"));
    const char *rs = json_string_value(json_object_get(v, "restart"));
    json_t *argv = json_object_get(v, "argv");
    json_t *env = json_object_get(v, "env");
    json_t *cwd = json_object_get(v, "cwd");
    json_t *ready = json_object_get(v, "ready");
    json_t *rt = json_object_get(v, "ready_timeout");
    json_t *sen = json_object_get(v, "secret_env");
    if (!st || !rs || strcmp(rs, "on-failure") != 0 ||
        strcmp(st, "exited") == 0 || strcmp(st, "failed") == 0 ||
        !json_is_array(argv) || json_array_size(argv) == 0 ||
        json_array_size(argv) > SP_MAX_ARGS ||
        (env && !json_is_array(env)) || json_array_size(env) > SP_MAX_ENV ||
        (cwd && !json_is_null(cwd) && !json_is_string(cwd)) ||
        (ready && !json_is_null(ready) && !json_is_string(ready)) ||
        (rt && !json_is_number(rt)) ||
        (sen && !json_is_array(sen)) || json_array_size(sen) > SP_MAX_SECRETS ||
        !json_is_string(json_object_get(v, "name")))
        return NULL;
    /* A --secret-env service comes back with the names: the supervisor
     * sets the values again; they never pass through here. A value typed
     * with -e (or in the command) that is a secret's reached us redacted:
     * started so, it would not be the service it was, so it is left out
     * (docs/snapshots.md). */
    json_t *spec = json_pack("{s:O,s:O,s:o,s:O?,s:O?,s:f,s:o}", "name",
                     json_object_get(v, "name"), "argv", argv, "env",
                     env ? json_incref(env) : json_array(), "cwd",
                     json_is_string(cwd) ? cwd : NULL, "ready",
                     json_is_string(ready) ? ready : NULL, "ready_timeout",
                     rt ? json_number_value(rt) : 0.0, "secret_env",
                     sen ? json_incref(sen) : json_array());
    char *t = spec && has_secrets ? json_dumps(spec, JSON_COMPACT) : NULL;
    if (has_secrets && (!t || strstr(t, "[REDACTED:"))) {
        json_decref(spec);
        spec = NULL;
        *ret_redacted = true;
    }
    free(t);
    return spec;
}

/* The services of a running workspace that restart on failure and are
 * not over, with their whole spec: [{name, argv, env, cwd, ready,
 * ready_timeout}] (docs/snapshots.md). A service whose spec the list left
 * out (SP_SERVICE_LIST_FULL) is asked for by name. A paused workspace is
 * resumed first (it is about to be stopped anyway). */
static json_t *restart_services_of(const char *name, bool has_secrets,
                                   json_t *skipped)
{
    if (sp_ws_paused(name) == 1)
        sp_ws_resume(name, NULL);
    char *t = sp_ws_service_status_json(name, NULL, NULL);
    json_t *a = t ? json_loads(t, 0, NULL) : NULL;
    free(t);
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        json_t *one = NULL;
        const char *svc = json_string_value(json_object_get(v, "name"));
        if (json_is_true(json_object_get(v, "spec_omitted")) && svc) {
            char *st = sp_ws_service_status_json(name, svc, NULL);
            one = st ? json_loads(st, 0, NULL) : NULL;
            free(st);
            v = one;
        }
        bool redacted = false;
        json_t *spec = v ? restart_spec(v, has_secrets, &redacted) : NULL;
        if (spec)
            json_array_append_new(out, spec);
        else if (redacted && svc)
            json_array_append_new(
                skipped,
                json_pack("{s:s,s:s,s:s}", "name", svc, "state", "failed",
                          "reason",
                          "not started again: its command or environment "
                          "held a secret's value, which restore does not "
                          "keep (start it with secret_env / --secret-env)"));
        json_decref(one);
    }
    json_decref(a);
    return out;
}

/* strv of a JSON array of strings (borrowed), NULL-terminated; NULL when
 * an entry is not a string or out of memory. */
static char **strv_of(json_t *a)
{
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof(*v));
    for (size_t k = 0; v && k < n; k++)
        if (!(v[k] = (char *)json_string_value(json_array_get(a, k)))) {
            free(v);
            return NULL;
        }
    return v;
}

/* Start them again as they were: name, command, extra environment,
 * directory, readiness probe and its timeout, restart policy. Each start
 * waits for the service to be ready, as `service start` does; best
 * effort: one that fails now is left `failed` with its reason in
 * `service ls` and the rest still start. */
static void restart_services(const char *name, json_t *svcs, json_t *report)
{
    size_t i;
    json_t *v;
    json_array_foreach(svcs, i, v)
    {
        const char *svc = json_string_value(json_object_get(v, "name"));
        sp_error e = {0};
        char *js = NULL;
        int rc = -ENOMEM;
        char **argv = strv_of(json_object_get(v, "argv"));
        char **env = strv_of(json_object_get(v, "env"));
        char **sen = strv_of(json_object_get(v, "secret_env"));
        if (argv && env && sen) {
            sp_ws_service_opts o = {
                .name = json_string_value(json_object_get(v, "name")),
                .argv = argv,
                .env = env[0] ? env : NULL,
                .cwd = json_string_value(json_object_get(v, "cwd")),
                .ready = json_string_value(json_object_get(v, "ready")),
                .ready_timeout =
                    json_number_value(json_object_get(v, "ready_timeout")),
                .restart_on_failure = true,
                .secret_env = sen[0] ? sen : NULL,
            };
            rc = sp_ws_service_start(name, &o, &js, &e);
        }
        free(argv);
        free(env);
        free(sen);
        /* Its state as the start left it; a failure's reason as the agent
         * gave it (without the last output), else the error's. */
        json_t *st = js ? json_loads(js, 0, NULL) : NULL;
        free(js);
        const char *state = json_string_value(json_object_get(st, "state"));
        const char *why = json_string_value(json_object_get(st, "reason"));
        if (rc < 0 || !state)
            state = "failed";
        if (strcmp(state, "failed") == 0 && !why)
            why = e.message[0] ? e.message : "out of memory";
        json_t *one = json_pack("{s:s,s:s}", "name", svc ? svc : "?",
                                "state", state);
        if (one && strcmp(state, "failed") == 0)
            json_object_set_new(one, "reason", /* valid UTF-8, cut */
                                sp_jrpc_string_lossy(why, strnlen(why, 512)));
        if (one)
            json_array_append_new(report, one);
        json_decref(st);
    }
}

SP_EXPORT int sp_ws_restore(const char *name, const char *snap, bool *restarted,
                            sp_error *err)
{
    return sp_ws_restore_secrets(name, snap, NULL, 0, restarted, err);
}

SP_EXPORT int sp_ws_restore_secrets(const char *name, const char *snap,
                                    const sp_secret *secrets,
                                    size_t n_secrets, bool *restarted,
                                    sp_error *err)
{
    return sp_ws_restore_report(name, snap, secrets, n_secrets, restarted,
                                NULL, err);
}

/* What runs, noted by sp_snap_restore just before it stops the
 * workspace. */
struct noted {
    const char *name;
    bool has_secrets;
    json_t *svcs;     /* the services to bring back */
    json_t *skipped;  /* those that cannot come back, with why */
};

static void note_services(void *arg)
{
    struct noted *n = arg;
    n->svcs = restart_services_of(n->name, n->has_secrets, n->skipped);
}

SP_EXPORT int sp_ws_restore_report(const char *name, const char *snap,
                                   const sp_secret *secrets,
                                   size_t n_secrets, bool *restarted,
                                   char **ret_services, sp_error *err)
{
    if (ret_services)
        *ret_services = NULL;
    bool again = false;
    struct noted n = {.name = name, .has_secrets = n_secrets > 0,
                      .skipped = json_array()};
    json_t *report = json_array();
    if (!report || !n.skipped) {
        json_decref(report);
        json_decref(n.skipped);
        return sp_error_set(err, ENOMEM, "restore");
    }
    int r = sp_snap_restore(name, snap, secrets, n_secrets, note_services, &n,
                            &again, err);
    if (restarted)
        *restarted = again;
    if (r == 0 && again) {
        /* Waiting for their readiness can take long: after the restore,
         * not under the store's lock, which every snapshot takes. */
        restart_services(name, n.svcs, report);
        json_array_extend(report, n.skipped);
    }
    json_decref(n.svcs);
    json_decref(n.skipped);
    if (r == 0 && ret_services &&
        !(*ret_services = json_dumps(report, JSON_COMPACT)))
        r = sp_error_set(err, ENOMEM, "restore");
    json_decref(report);
    return r;
}
