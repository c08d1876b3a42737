/* layerstore.c — the snapshot store on disk (layerstore.h): snapshots/
 * with layers/ and ws/<name>/, its lock, the layer stacks of workspaces,
 * snapshot metadata and the garbage collection of layers no one uses. The
 * operations that copy layers, restore and fork are snapshot.c; freezing
 * is freeze.c; applying a stack to a mount plan is wslayers.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "layerstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "sandpit.h"
#include "state.h"
#include "util.h"

bool sp_lid_valid(const char *s)
{
    if (strlen(s) != SP_LID_LEN || strncmp(s, "l-", 2) != 0)
        return false;
    for (size_t i = 2; i < SP_LID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void sp_lid_new(char *buf)
{
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = sp_now_us() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(r));
    }
    snprintf(buf, SP_LID_LEN + 1, "l-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

int sp_snap_check_names(const char *ws, const char *snap, sp_error *err)
{
    if (!sp_ws_name_valid(ws))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid workspace name '%.80s'", ws ? ws : "");
    if (snap && !sp_ws_name_valid(snap))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "invalid snapshot name '%.80s' (use 1 to 63 of "
                             "a-z 0-9 _ . -, starting with a letter or digit)",
                             snap);
    return 0;
}

/* The store (snapshots/ with layers/ and ws/) of the state dir. */
int sp_store_open(const char *statedir, sp_error *err)
{
    /* The state dir is the user's own setting and may be named through a
     * symlink (as create and start allow); what is below it is not. */
    _cleanup_close_ int sd =
        open(statedir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sd < 0)
        return sp_error_set(err, errno, "cannot open %s", statedir);
    int fd = sp_mkdir_open(sd, SP_SNAP_DIR, 0700);
    if (fd < 0)
        return sp_error_set(err, -fd, "cannot open %s/%s", statedir,
                            SP_SNAP_DIR);
    int a = sp_mkdir_open(fd, SP_STORE_LAYERS, 0700),
        b = sp_mkdir_open(fd, SP_STORE_WS, 0700);
    if (a < 0 || b < 0) {
        int e = a < 0 ? -a : -b;
        sp_close_keep_errno(a);
        sp_close_keep_errno(b);
        close(fd);
        return sp_error_set(err, e, "cannot create the snapshot store");
    }
    close(a);
    close(b);
    return fd;
}

int sp_store_lock(int storefd, sp_error *err)
{
    int fd = openat(storefd, SP_STORE_LOCK,
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sp_error_set(err, errno, "cannot open the snapshot store lock");
    int r;
    do
        r = flock(fd, LOCK_EX);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return sp_error_set(err, e, "cannot lock the snapshot store");
    }
    return fd;
}

/* The store of statedir, locked: returns its fd (and the lock's in
 * *lock), or < 0 with err filled and nothing left open. */
int sp_store_open_locked(const char *statedir, int *lock, sp_error *err)
{
    *lock = -1;
    int fd = sp_store_open(statedir, err);
    if (fd < 0)
        return fd;
    int l = sp_store_lock(fd, err);
    if (l < 0) {
        close(fd);
        return l;
    }
    *lock = l;
    return fd;
}

/* ---- stacks ------------------------------------------------------------ */


/* A stack file's text: one lid a line. -EINVAL when malformed. */
static int stack_parse(const char *text, size_t len, struct sp_stack *s)
{
    memset(s, 0, sizeof(*s));
    char buf[SP_SNAP_MAX_DEPTH * (SP_LID_LEN + 1) + 2];
    if (len >= sizeof(buf) || memchr(text, '\0', len))
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, "\n", &save); t;
         t = strtok_r(NULL, "\n", &save)) {
        if (s->n >= SP_SNAP_MAX_DEPTH || !sp_lid_valid(t))
            return -EINVAL;
        memcpy(s->lid[s->n++], t, SP_LID_LEN + 1);
    }
    return 0;
}

int sp_snap_parse_stack(const char *text, size_t len)
{
    struct sp_stack s;
    int r = stack_parse(text, len, &s);
    return r < 0 ? r : (int)s.n;
}

/* Read layers/stack of a layers dir fd. A missing file is an empty stack;
 * anything malformed is -EINVAL. */
int sp_stack_read(int lfd, struct sp_stack *s)
{
    memset(s, 0, sizeof(*s));
    int fd = openat(lfd, SP_WS_STACK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    char buf[SP_SNAP_MAX_DEPTH * (SP_LID_LEN + 1) + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return -EIO;
    return stack_parse(buf, (size_t)n, s);
}

int sp_stack_write(int lfd, const struct sp_stack *s)
{
    char buf[SP_SNAP_MAX_DEPTH * (SP_LID_LEN + 1) + 1];
    size_t len = 0;
    for (size_t i = 0; i < s->n; i++) {
        memcpy(buf + len, s->lid[i], SP_LID_LEN);
        len += SP_LID_LEN;
        buf[len++] = '\n';
    }
    if (s->n == 0)
        return unlinkat(lfd, SP_WS_STACK_FILE, 0) < 0 && errno != ENOENT
                   ? -errno
                   : 0;
    return sp_write_atomic(lfd, SP_WS_STACK_FILE, buf, len);
}

int sp_stack_from_json(json_t *a, struct sp_stack *s)
{
    memset(s, 0, sizeof(*s));
    if (!json_is_array(a) || json_array_size(a) > SP_SNAP_MAX_DEPTH)
        return -EINVAL;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *t = json_string_value(v);
        if (!t || !sp_lid_valid(t))
            return -EINVAL;
        memcpy(s->lid[s->n++], t, SP_LID_LEN + 1);
    }
    return 0;
}

int sp_snap_stack_open(int lfd, int *fds, size_t max)
{
    struct sp_stack s;
    int r = sp_stack_read(lfd, &s);
    if (r < 0)
        return r;
    if (s.n == 0)
        return 0;
    /* lfd is workspaces/<name>/layers: the store is three up. */
    _cleanup_close_ int store =
        sp_open_dir_at(lfd, "../../../" SP_SNAP_DIR "/" SP_STORE_LAYERS);
    if (store < 0)
        return -errno;
    size_t n = 0;
    for (size_t k = 0; k < s.n && n < max; k++) {
        int fd = sp_open_dir_at(store, s.lid[k]);
        if (fd < 0) {
            r = -errno;
            while (n)
                close(fds[--n]);
            return r;
        }
        fds[n++] = fd;
    }
    return (int)n;
}

/* ---- the store's snapshots ------------------------------------------- */

json_t *sp_store_meta_read(int wsdir, const char *snap)
{
    char fn[SP_WS_NAME_MAX + 8];
    snprintf(fn, sizeof(fn), "%s.json", snap);
    int fd = openat(wsdir, fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    json_t *o = sp_json_loadfd(fd, 1u << 20, 0, NULL);
    close(fd);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The store's ws/<name> dir (created with `create`), or < 0. */
int sp_store_ws_dir(int storefd, const char *name, bool create)
{
    _cleanup_close_ int w = sp_open_dir_at(storefd, SP_STORE_WS);
    if (w < 0)
        return -errno;
    if (create)
        return sp_mkdir_open(w, name, 0700);
    int fd = sp_open_dir_at(w, name);
    return fd < 0 ? -errno : fd;
}

int sp_store_count_snaps(int wsdir)
{
    int dup = fcntl(wsdir, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        sp_close_keep_errno(dup);
        return 0;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strstr(de->d_name, ".json"))
            n++;
    closedir(d);
    return n;
}

/* Remove every layer that no snapshot and no workspace stack names.
 * Called with the store lock held. */
void sp_store_gc_layers(const char *statedir, int storefd)
{
    /* The names in use. */
    size_t n = 0, cap = 64;
    char(*used)[SP_LID_LEN + 1] = malloc(cap * sizeof(*used));
    if (!used)
        return;
    bool ok = true;
#define USE(l)                                                                 \
    do {                                                                       \
        if (n == cap) {                                                        \
            void *nu = realloc(used, cap * 2 * sizeof(*used));                 \
            if (!nu) {                                                         \
                ok = false;                                                    \
                break;                                                         \
            }                                                                  \
            used = nu;                                                         \
            cap *= 2;                                                          \
        }                                                                      \
        memcpy(used[n++], (l), SP_LID_LEN + 1);                                   \
    } while (0)
    char root[SP_MAX_PATH + 16];
    snprintf(root, sizeof(root), "%s/%s", statedir, SP_WS_DIR);
    DIR *d = opendir(root);
    struct dirent *de;
    while (ok && d && (de = readdir(d))) {
        if (de->d_name[0] == '.' && strncmp(de->d_name, ".rm-", 4) != 0)
            continue;
        char p[SP_MAX_PATH + 16];
        snprintf(p, sizeof(p), "%s/%s", de->d_name, SP_WS_LAYERS);
        int lfd = openat(dirfd(d), p,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0 && errno != ENOENT && errno != ENOTDIR) {
            ok = false; /* cannot tell what it uses: keep everything */
            break;
        }
        if (lfd < 0)
            continue;
        struct sp_stack s;
        int r = sp_stack_read(lfd, &s);
        close(lfd);
        if (r < 0) {
            ok = false; /* unreadable: keep everything */
            break;
        }
        for (size_t i = 0; i < s.n; i++)
            USE(s.lid[i]);
    }
    if (d)
        closedir(d);
    else
        ok = false;
    _cleanup_close_ int wsroot = sp_open_dir_at(storefd, SP_STORE_WS);
    DIR *w = wsroot >= 0 ? fdopendir(fcntl(wsroot, F_DUPFD_CLOEXEC, 3)) : NULL;
    while (ok && w && (de = readdir(w))) {
        if (de->d_name[0] == '.')
            continue;
        int wd = sp_open_dir_at(dirfd(w), de->d_name);
        DIR *sd = wd >= 0 ? fdopendir(wd) : NULL;
        struct dirent *se;
        while (ok && sd && (se = readdir(sd))) {
            size_t l = strlen(se->d_name);
            if (se->d_name[0] == '.' || l < 6 ||
                strcmp(se->d_name + l - 5, ".json") != 0)
                continue;
            char sn[NAME_MAX + 1];
            snprintf(sn, sizeof(sn), "%.*s", (int)(l - 5), se->d_name);
            json_t *m = sp_store_meta_read(dirfd(sd), sn);
            struct sp_stack s;
            if (!m || sp_stack_from_json(json_object_get(m, "layers"), &s) < 0) {
                json_decref(m);
                ok = false;
                break;
            }
            json_decref(m);
            for (size_t i = 0; i < s.n; i++)
                USE(s.lid[i]);
        }
        if (sd)
            closedir(sd);
    }
    if (w)
        closedir(w);
#undef USE
    if (!ok) {
        free(used);
        return;
    }
    _cleanup_close_ int lay = sp_open_dir_at(storefd, SP_STORE_LAYERS);
    DIR *ld = lay >= 0 ? fdopendir(fcntl(lay, F_DUPFD_CLOEXEC, 3)) : NULL;
    while (ld && (de = readdir(ld))) {
        bool tmp = strncmp(de->d_name, ".tmp-", 5) == 0;
        if (!tmp && !sp_lid_valid(de->d_name))
            continue;
        bool inuse = false;
        for (size_t i = 0; !tmp && i < n && !inuse; i++)
            inuse = strcmp(used[i], de->d_name) == 0;
        if (!inuse)
            sp_rm_rf_at(dirfd(ld), de->d_name);
    }
    if (ld)
        closedir(ld);
    free(used);
}

/* Read a snapshot's metadata under the store lock. */
json_t *sp_store_snap_get(int storefd, const char *name, const char *snap,
                        struct sp_stack *s, sp_error *err)
{
    _cleanup_close_ int sw = sp_store_ws_dir(storefd, name, false);
    json_t *m = sw >= 0 ? sp_store_meta_read(sw, snap) : NULL;
    if (!m) {
        sp_error_setk(err, SP_ERR_USAGE, ENOENT,
                      "workspace %s has no snapshot %s", name, snap);
        return NULL;
    }
    if (sp_stack_from_json(json_object_get(m, "layers"), s) < 0 || s->n == 0) {
        json_decref(m);
        sp_error_set(err, EINVAL, "snapshot %s of %s is damaged", snap, name);
        return NULL;
    }
    /* Every layer must be there. */
    _cleanup_close_ int layers = sp_open_dir_at(storefd, SP_STORE_LAYERS);
    for (size_t i = 0; i < s->n; i++) {
        struct stat sb;
        if (layers < 0 ||
            fstatat(layers, s->lid[i], &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(sb.st_mode)) {
            json_decref(m);
            sp_error_set(err, ENOENT, "snapshot %s of %s: layer %s is missing",
                         snap, name, s->lid[i]);
            return NULL;
        }
    }
    return m;
}

int sp_snap_fork_init(int wsfd, const char *src, const char *snap,
                      sp_error *err)
{
    int r = sp_snap_check_names(src, snap, err);
    if (r < 0)
        return r;
    char statedir[SP_MAX_PATH];
    if ((r = sp_state_dir(statedir, sizeof(statedir), err)) < 0)
        return r;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = sp_store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return storefd;
    struct sp_stack s;
    json_t *m = sp_store_snap_get(storefd, src, snap, &s, err);
    if (!m)
        return -ENOENT;
    json_decref(m);
    _cleanup_close_ int lfd = sp_open_dir_at(wsfd, SP_WS_LAYERS);
    if (lfd < 0 || (r = sp_stack_write(lfd, &s)) < 0)
        return sp_error_set(err, lfd < 0 ? errno : -r,
                            "cannot write the layer stack");
    return 0;
}

json_t *sp_snap_meta(const char *name, const char *snap, sp_error *err)
{
    if (sp_snap_check_names(name, snap, err) < 0)
        return NULL;
    char statedir[SP_MAX_PATH];
    if (sp_state_dir(statedir, sizeof(statedir), err) < 0)
        return NULL;
    _cleanup_close_ int lock = -1;
    _cleanup_close_ int storefd = sp_store_open_locked(statedir, &lock, err);
    if (storefd < 0)
        return NULL;
    struct sp_stack s;
    return sp_store_snap_get(storefd, name, snap, &s, err);
}

void sp_snap_ws_removed(const char *name)
{
    char statedir[SP_MAX_PATH];
    if (!sp_ws_name_valid(name) ||
        sp_state_dir(statedir, sizeof(statedir), NULL) < 0)
        return;
    int storefd = sp_store_open(statedir, NULL);
    if (storefd < 0)
        return;
    int lock = sp_store_lock(storefd, NULL);
    if (lock >= 0) {
        int w = sp_open_dir_at(storefd, SP_STORE_WS);
        if (w >= 0) {
            sp_rm_rf_at(w, name);
            close(w);
        }
        sp_store_gc_layers(statedir, storefd);
        close(lock);
    }
    close(storefd);
}
