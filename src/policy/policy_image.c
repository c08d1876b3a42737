/* policy_image.c — base images in the policy: "rootfs" (a host directory
 * that replaces the host's system paths) and "image" (an imported image,
 * resolved at finalize to its tree and the parts of its config sandpit
 * honours). docs/images.md. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "image.h"
#include "policy.h"
#include "util.h"

/* "images": {"allowed": [NAME | "sha256:..." ...]} */
static int images_key(struct sp_policy *p, const json_t *v, const char *origin,
                      sp_error *err)
{
    json_t *a = json_object_get(v, "allowed");
    if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_array(a))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: key \"images\": expected {\"allowed\": "
                             "[names or sha256 digests]}", origin);
    if (json_array_size(a) > SP_IMAGE_MAX_ALLOWED)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "%s: key \"images\": more than %d allowed images",
                             origin, SP_IMAGE_MAX_ALLOWED);
    char **v2 = calloc(json_array_size(a) + 1, sizeof(*v2));
    if (!v2)
        return sp_error_set(err, ENOMEM, "images");
    size_t i, n = 0;
    json_t *e;
    int r = 0;
    json_array_foreach(a, i, e) {
        const char *s = json_string_value(e);
        if (!s || (!sp_image_name_valid(s) && !sp_image_digest_valid(s))) {
            r = sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                              "%s: key \"images\": entry %zu is neither an "
                              "image name nor a sha256 digest", origin, i);
            break;
        }
        if (!(v2[n++] = strdup(s))) {
            r = sp_error_set(err, ENOMEM, "images");
            break;
        }
    }
    if (r < 0) {
        for (size_t k = 0; k < n; k++)
            free(v2[k]);
        free(v2);
        return r;
    }
    for (size_t k = 0; k < p->n_images_allowed; k++)
        free(p->images_allowed[k]);
    free(p->images_allowed);
    p->images_allowed = v2;
    p->n_images_allowed = n;
    return 0;
}

/* "post_create": a shell command line, or null. */
static int post_create_key(struct sp_policy *p, const json_t *v,
                           const char *origin, sp_error *err)
{
    const char *s = json_string_value(v);
    if (!json_is_null(v) &&
        (!s || !*s || json_string_length(v) > SP_POST_CREATE_MAX ||
         strlen(s) != json_string_length(v)))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: key \"post_create\": expected a command "
                             "line of 1 to %d bytes, or null", origin,
                             SP_POST_CREATE_MAX);
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        return sp_error_set(err, ENOMEM, "post_create");
    free(p->post_create);
    p->post_create = d;
    return 0;
}

int sp_policy_image_key(struct sp_policy *p, const char *key, const json_t *v,
                        const char *origin, sp_error *err)
{
    if (strcmp(key, "images") == 0)
        return images_key(p, v, origin, err);
    if (strcmp(key, "post_create") == 0)
        return post_create_key(p, v, origin, err);
    if (json_is_null(v)) {
        free(p->image);
        p->image = NULL;
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !sp_image_name_valid(s))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: key \"image\": expected an image name "
                             "([a-z0-9][a-z0-9._:-]{0,127})", origin);
    char *d = strdup(s);
    if (!d)
        return sp_error_set(err, ENOMEM, "image");
    free(p->image);
    p->image = d;
    return 0;
}

static bool env_has(const struct sp_policy *p, const char *entry)
{
    size_t n = strcspn(entry, "=");
    for (size_t i = 0; i < p->n_env_set; i++)
        if (strncmp(p->env_set[i], entry, n) == 0 && p->env_set[i][n] == '=')
            return true;
    return false;
}

static int check_rootfs(const struct sp_policy *p, sp_error *err)
{
    struct stat st;
    if (stat(p->rootfs, &st) < 0)
        return sp_error_setk(err, SP_ERR_USAGE, errno, "rootfs %s", p->rootfs);
    if (!S_ISDIR(st.st_mode))
        return sp_error_setk(err, SP_ERR_USAGE, ENOTDIR,
                             "rootfs %s is not a directory", p->rootfs);
    char *real = realpath(p->rootfs, NULL);
    bool host_root = real && strcmp(real, "/") == 0;
    free(real);
    if (host_root)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "rootfs %s is the host's root directory: give a "
                             "directory holding another root filesystem",
                             p->rootfs);
    if (strpbrk(p->rootfs, ",:\\"))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "rootfs %s: a path with ',', ':' or '\\' cannot be "
                             "an overlay layer", p->rootfs);
    return 0;
}

int sp_policy_image_finalize(struct sp_policy *p, sp_error *err)
{
    if (p->image && !p->rootfs) {
        struct sp_image_ref ref;
        int r = sp_image_resolve(p->image, &ref, err);
        if (r < 0)
            return r;
        p->rootfs = TAKE_PTR(ref.rootfs);
        /* Env: the image's entries under the policy's own. */
        for (size_t i = 0; r == 0 && i < ref.cfg.n_env; i++) {
            if (env_has(p, ref.cfg.env[i]))
                continue;
            if (p->n_env_set >= SP_MAX_ENV) {
                r = sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                                  "image %s: more than %d environment entries",
                                  p->image, SP_MAX_ENV);
                break;
            }
            char **nv = realloc(p->env_set, (p->n_env_set + 1) * sizeof(*nv));
            if (!nv) {
                r = sp_error_set(err, ENOMEM, "image env");
                break;
            }
            p->env_set = nv;
            if (!(nv[p->n_env_set] = strdup(ref.cfg.env[i])))
                r = sp_error_set(err, ENOMEM, "image env");
            else
                p->n_env_set++;
        }
        if (r == 0 && ref.cfg.workdir && !p->cwd &&
            !(p->cwd = strdup(ref.cfg.workdir)))
            r = sp_error_set(err, ENOMEM, "image");
        if (r == 0 && ref.cfg.user && p->uid == 0 && p->gid == 0) {
            unsigned uid = 0, gid = 0;
            r = sp_image_user(p->rootfs, ref.cfg.user, &uid, &gid, err);
            p->uid = uid;
            p->gid = gid;
        }
        if (r == 0 && ref.cfg.n_argv) {
            for (size_t i = 0; i < p->n_image_argv; i++)
                free(p->image_argv[i]);
            free(p->image_argv);
            p->image_argv = TAKE_PTR(ref.cfg.argv);
            p->n_image_argv = ref.cfg.n_argv;
            ref.cfg.n_argv = 0;
        }
        sp_image_ref_free(&ref);
        if (r < 0)
            return sp_error_prefix(err, "image %s", p->image);
    }
    return p->rootfs ? check_rootfs(p, err) : 0;
}

int sp_image_request_check(const json_t *ceiling, const char *name,
                           sp_error *err)
{
    if (!sp_image_name_valid(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "\"%.80s\" is not an image name", name);
    struct sp_image_ref ref;
    int r = sp_image_resolve(name, &ref, err);
    if (r < 0)
        return r;
    bool ok = json_is_true(json_object_get(ceiling, "allow_untrusted_images"));
    json_t *a = json_object_get(json_object_get(ceiling, "images"), "allowed");
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        const char *s = json_string_value(e);
        ok |= s && (strcmp(s, name) == 0 || strcmp(s, ref.digest) == 0);
    }
    sp_image_ref_free(&ref);
    if (!ok)
        return sp_error_setk(err, SP_ERR_USAGE, EPERM,
                             "image %s is not allowed: the operator's policy "
                             "lists the images a client may use in "
                             "\"images\": {\"allowed\": [...]}", name);
    return 0;
}

SP_EXPORT const char *sp_policy_post_create(const sp_policy *p)
{
    return p ? p->post_create : NULL;
}

SP_EXPORT char *const *sp_policy_default_argv(const sp_policy *p)
{
    return p && p->n_image_argv ? p->image_argv : NULL;
}
