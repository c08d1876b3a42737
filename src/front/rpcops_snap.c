/* rpcops_snap.c — snapshots for the JSON-RPC and MCP servers (rpcops.h,
 * docs/snapshots.md): take, list, restore and delete a workspace's
 * snapshots, and fork one into a new workspace. Arguments are hostile input: only the named keys, strings
 * bounded; the workspace must be one this server may act on. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rpcops.h"
#include "snapshot.h"

static int name_arg(json_t *a, const char *k, const char **ret, sp_error *err)
{
    json_t *v = json_object_get(a, k);
    if (!json_is_string(v) || json_string_length(v) > 63 ||
        strlen(json_string_value(v)) != json_string_length(v) ||
        !sp_ws_name_valid(json_string_value(v)))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "argument \"%s\" must be a name: 1 to 63 of "
                             "a-z 0-9 _ . -, starting with a letter or digit",
                             k);
    *ret = json_string_value(v);
    return 0;
}

/* {workspace[, snapshot]} checked: the workspace name, or NULL. */
static const char *args_of(struct sp_ops *o, json_t *a, bool snap,
                           const char **ret_snap, sp_error *err)
{
    static const char *const k1[] = {"workspace", NULL};
    static const char *const k2[] = {"workspace", "snapshot", NULL};
    const char *ws = NULL;
    if (sp_ops_only_keys(a, snap ? k2 : k1, err) < 0 ||
        name_arg(a, "workspace", &ws, err) < 0 ||
        sp_ops_check_ws(o, ws, err) < 0 ||
        (snap && name_arg(a, "snapshot", ret_snap, err) < 0))
        return NULL;
    return ws;
}

json_t *sp_ops_ws_snapshot(struct sp_ops *o, json_t *a, sp_error *err)
{
    const char *snap = NULL;
    const char *ws = args_of(o, a, true, &snap, err);
    sp_ws_snapshot_info info;
    if (!ws || sp_ws_snapshot(ws, snap, &info, err) < 0)
        return NULL;
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:f}", "workspace", ws, "snapshot",
                     snap, "bytes", (json_int_t)info.bytes, "copied",
                     (json_int_t)info.copied, "files", (json_int_t)info.files,
                     "frozen_ms", info.frozen_us / 1000.0);
}

json_t *sp_ops_ws_snapshots(struct sp_ops *o, json_t *a, sp_error *err)
{
    const char *ws = args_of(o, a, false, NULL, err);
    char *text = ws ? sp_ws_snapshots_json(ws, err) : NULL;
    if (!text)
        return NULL;
    json_t *l = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(l)) {
        json_decref(l);
        sp_error_setk(err, SP_ERR_SYSTEM, EPROTO, "bad snapshot list");
        return NULL;
    }
    return json_pack("{s:s,s:o}", "workspace", ws, "snapshots", l);
}

json_t *sp_ops_ws_restore(struct sp_ops *o, json_t *a, sp_error *err)
{
    const char *snap = NULL;
    const char *ws = args_of(o, a, true, &snap, err);
    bool restarted = false;
    char *svcs = NULL;
    if (!ws || sp_ws_restore_report(ws, snap, NULL, 0, &restarted, &svcs,
                                    err) < 0)
        return NULL;
    /* What came back: [{name, state, reason}] (sp_ws_restore_report). */
    json_t *sv = svcs ? json_loads(svcs, 0, NULL) : NULL;
    free(svcs);
    if (!json_is_array(sv)) {
        json_decref(sv);
        sv = json_array();
    }
    return json_pack("{s:s,s:s,s:b,s:o}", "workspace", ws, "snapshot", snap,
                     "restarted", restarted, "services", sv);
}

json_t *sp_ops_ws_snapshot_delete(struct sp_ops *o, json_t *a, sp_error *err)
{
    const char *snap = NULL;
    const char *ws = args_of(o, a, true, &snap, err);
    if (!ws || sp_ws_snapshot_rm(ws, snap, err) < 0)
        return NULL;
    return json_pack("{s:s,s:s,s:b}", "workspace", ws, "snapshot", snap,
                     "deleted", 1);
}

json_t *sp_ops_ws_fork(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "snapshot", "name",
                                       "policy", NULL};
    /* create's arguments but "name": checked by create_ws as for create. */
    static const char *const pkeys[] = {"memory",  "cpus",         "pids",
                                        "network", "timeout",      "idle_timeout",
                                        "image",   "disk",         "inodes",
                                        NULL};
    const char *ws = NULL, *snap = NULL, *name = NULL;
    if (sp_ops_only_keys(a, keys, err) < 0 ||
        name_arg(a, "workspace", &ws, err) < 0 ||
        sp_ops_check_ws(o, ws, err) < 0 ||
        name_arg(a, "snapshot", &snap, err) < 0 ||
        name_arg(a, "name", &name, err) < 0)
        return NULL;
    json_t *pol = json_object_get(a, "policy");
    if (pol && !json_is_null(pol) && !json_is_object(pol)) {
        sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                      "argument \"policy\" must be an object with any of "
                      "memory, cpus, pids, network, timeout, idle_timeout, "
                      "image (as workspace_create takes them)");
        return NULL;
    }
    if (json_is_object(pol) && sp_ops_only_keys(pol, pkeys, err) < 0)
        return NULL;
    json_t *m = sp_snap_meta(ws, snap, err);
    if (!m)
        return NULL;
    json_t *c = json_is_object(pol) ? json_copy(pol) : json_object();
    if (!c) {
        json_decref(m);
        sp_error_set(err, ENOMEM, "fork");
        return NULL;
    }
    json_object_set_new(c, "name", json_string(name));
    /* The snapshot's layers sit on its image: the fork keeps it unless the
     * client names one. Either is checked as create checks an image (the
     * operator's own default image needs no check). */
    const char *simg = json_string_value(
        json_object_get(json_object_get(m, "policy"), "image"));
    const char *cimg = json_string_value(json_object_get(o->ceiling, "image"));
    json_t *img = json_object_get(c, "image");
    if ((!img || json_is_null(img)) && simg &&
        (!cimg || strcmp(simg, cimg) != 0))
        json_object_set_new(c, "image", json_string(simg));
    json_decref(m);
    json_t *res = sp_ops_ws_create_fork(o, c, ws, snap, err);
    json_decref(c);
    return res;
}
