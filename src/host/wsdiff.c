/* wsdiff.c — diff and reset of a workspace's copy-on-write filesystem
 * (wsdiff.h). Runs on the host over the overlay upper dirs, which the
 * sandboxed program filled: every step is relative to a directory fd, no
 * symlink is followed and only directories are opened. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wsdiff.h"
#include "wswalk.h"
#include "wsdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "ids.h"
#include "secrets.h"
#include "layerstore.h"
#include "mountplan.h"
#include "state.h"
#include "util.h"
#include "wslayers.h"

char *sp_ws_diff_json_at(int wsfd, const char *name, sp_error *err)
{
    struct walk *w = calloc(1, sizeof(*w));
    if (!w) {
        sp_error_set(err, ENOMEM, "diff");
        return NULL;
    }
    int rc = sp_ws_walk(wsfd, name, w, err);
    char *text = NULL;
    if (rc == 0) {
        json_t *o = json_object();
        json_object_set_new(o, "workspace", json_string(name));
        for (int k = 0; k < D_KINDS; k++) {
            struct list *l = &w->lists[k];
            if (l->n)
                qsort(l->v, l->n, sizeof(*l->v), sp_ws_walk_cmp_str);
            json_t *a = json_array();
            for (size_t i = 0; i < l->n; i++)
                json_array_append_new(a, json_string(l->v[i]));
            json_object_set_new(o, sp_ws_walk_kind_names[k], a);
        }
        json_object_set_new(o, "truncated", json_boolean(w->truncated));
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
            sp_error_set(err, ENOMEM, "diff");
    }
    sp_ws_walk_free(w);
    return text;
}


/* Remove everything inside the directory `name` of dirfd (kept itself). */
static int empty_dir(int dirfd, const char *name)
{
    int fd = sp_ws_walk_open_dir(dirfd, name);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int r = sp_ids_rm_rf_at(fd, de->d_name);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(dir);
    return rc;
}

int sp_ws_layers_clear(int wsfd, sp_error *err)
{
    int r = sp_ws_disk_ensure(wsfd, err); /* its image, if any (wsdisk.h) */
    if (r < 0)
        return r;
    r = empty_dir(wsfd, SP_WS_DATA);
    if (r < 0)
        return sp_error_set(err, -r, "cannot empty %s", SP_WS_DATA);
    _cleanup_close_ int lfd = sp_ws_walk_open_dir(wsfd, SP_WS_LAYERS);
    if (lfd < 0)
        return errno == ENOENT ? 0 : sp_error_set(err, errno, "cannot open %s",
                                                  SP_WS_LAYERS);
    /* The layer dirs go whole (upper, work); the next start makes them. */
    if ((r = empty_dir(lfd, "up")) < 0)
        return sp_error_set(err, -r, "cannot empty %s/up", SP_WS_LAYERS);
    /* With an image, workspace/ showed up/workspace/upper, gone now: mount
     * again (which makes it anew). */
    sp_ws_disk_release(wsfd);
    return sp_ws_disk_ensure(wsfd, err);
}

SP_EXPORT char *sp_ws_diff_json(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    if (!sp_ws_name_valid(name)) {
        sp_error_setk(err, SP_ERR_USAGE, EINVAL, "invalid workspace name '%s'",
                      name ? name : "");
        return NULL;
    }
    if (sp_state_dir(statedir, sizeof(statedir), err) < 0)
        return NULL;
    _cleanup_close_ int wsfd = sp_state_open_ws(statedir, name, err);
    if (wsfd < 0)
        return NULL;
    return sp_ws_diff_json_at(wsfd, name, err);
}

SP_EXPORT int sp_ws_reset(const char *name, sp_error *err)
{
    char statedir[SP_MAX_PATH];
    if (!sp_ws_name_valid(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid workspace name '%s'", name ? name : "");
    int r = sp_state_dir(statedir, sizeof(statedir), err);
    if (r < 0)
        return r;
    _cleanup_close_ int wsfd = sp_state_open_ws(statedir, name, err);
    if (wsfd < 0)
        return wsfd;
    /* The supervisor holds the lock while the workspace runs. */
    int lockfd = sp_state_lock(wsfd, false);
    bool was_running = lockfd == -EWOULDBLOCK;
    /* A running workspace with secrets could not start again without
     * them (secrets.h): refuse before stopping it. */
    if (was_running &&
        (r = sp_secrets_check_names(wsfd, name, NULL, err)) < 0)
        return sp_error_prefix(err, "reset %s: stop it, reset it, start it "
                               "with its secrets", name);
    if (was_running) {
        if ((r = sp_ws_stop(name, err)) < 0)
            return r;
        lockfd = sp_state_lock(wsfd, true);
    }
    if (lockfd < 0)
        return sp_error_set(err, -lockfd, "cannot lock workspace %s", name);
    r = sp_ws_layers_clear(wsfd, err);
    close(lockfd);
    if (r < 0)
        return sp_error_prefix(err, "reset %s", name);
    if (was_running && (r = sp_ws_start(name, err)) < 0)
        return r;
    return 0;
}
