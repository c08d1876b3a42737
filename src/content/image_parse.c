/* image_parse.c — the OCI image-spec and docker-save JSON documents we
 * read: index.json, image manifests, image configs, docker manifest.json.
 * Every document is hostile: sizes, counts and strings are bounded, and
 * a field of the wrong type is an error, never a guess. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "image_parse.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BAD(...) sp_error_setk(err, SP_ERR_USAGE, EINVAL, __VA_ARGS__)

bool sp_image_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SP_IMAGE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-' && c != ':')))
            return false;
    }
    return true;
}

bool sp_image_digest_valid(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *c = d + 7; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

static json_t *load(const char *buf, size_t len, const char *what,
                    sp_error *err)
{
    if (len > SP_IMAGE_JSON_MAX) {
        BAD("%s is larger than %d bytes", what, SP_IMAGE_JSON_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        BAD("%s: invalid JSON at line %d: %s", what, jerr.line, jerr.text);
    return j;
}

static bool str_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > SP_IMAGE_MAX_STR)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            return false;
    return true;
}

static const char *media(const json_t *o)
{
    const char *m = json_string_value(json_object_get(o, "mediaType"));
    return m ? m : "";
}

static bool media_is_index(const char *m)
{
    return strcmp(m, "application/vnd.oci.image.index.v1+json") == 0 ||
           strcmp(m, "application/vnd.docker.distribution.manifest.list.v2+json") == 0;
}

int sp_image_parse_index(const char *buf, size_t len, const char *want,
                         char digest[SP_DIGEST_LEN], bool *is_index,
                         char *ref_name, sp_error *err)
{
    json_t *j = load(buf, len, "index", err);
    if (!j)
        return -EINVAL;
    int r = 0;
    json_t *ms = json_object_get(j, "manifests");
    if (!json_is_object(j) || !json_is_array(ms) || json_array_size(ms) == 0) {
        r = BAD("index: no \"manifests\" array");
        goto out;
    }
    if (json_array_size(ms) > SP_IMAGE_MAX_MANIFESTS) {
        r = BAD("index: more than %d manifests", SP_IMAGE_MAX_MANIFESTS);
        goto out;
    }
    json_t *pick = NULL, *amd = NULL, *named = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m) {
        if (!json_is_object(m) ||
            !sp_image_digest_valid(json_string_value(json_object_get(m, "digest")))) {
            r = BAD("index: manifest %zu has no valid sha256 digest", i);
            goto out;
        }
        if (!pick)
            pick = m;
        json_t *plat = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(plat, "os"));
        const char *arch = json_string_value(json_object_get(plat, "architecture"));
        if (!amd && os && arch && strcmp(os, "linux") == 0 &&
            strcmp(arch, "amd64") == 0)
            amd = m;
        const char *ref = json_string_value(json_object_get(
            json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
        if (!named && want && ref && strcmp(ref, want) == 0)
            named = m;
    }
    pick = named ? named : amd ? amd : pick;
    snprintf(digest, SP_DIGEST_LEN, "%s",
             json_string_value(json_object_get(pick, "digest")));
    if (is_index)
        *is_index = media_is_index(media(pick));
    if (ref_name) {
        const char *ref = json_string_value(json_object_get(
            json_object_get(pick, "annotations"), "org.opencontainers.image.ref.name"));
        ref_name[0] = '\0';
        if (ref && sp_image_name_valid(ref))
            snprintf(ref_name, SP_IMAGE_NAME_MAX + 1, "%s", ref);
    }
out:
    json_decref(j);
    return r;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* Append the strings of array a (NULL: nothing) to *v, bounded by max. */
static int strv_add(char ***v, size_t *n, const json_t *a, size_t max,
                    const char *what, sp_error *err)
{
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return BAD("config: %s must be an array of strings", what);
    if (*n + json_array_size(a) > max)
        return BAD("config: more than %zu %s entries", max, what);
    char **nv = realloc(*v, (*n + json_array_size(a) + 1) * sizeof(*nv));
    if (!nv)
        return sp_error_set(err, ENOMEM, "config");
    *v = nv;
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s) {
        const char *t = json_string_value(s);
        if (!t || !str_ok(t))
            return BAD("config: %s entry %zu is not a usable string", what, i);
        if (!(nv[*n] = strdup(t)))
            return sp_error_set(err, ENOMEM, "config");
        (*n)++;
    }
    return 0;
}

int sp_image_parse_manifest(const char *buf, size_t len,
                            struct sp_image_manifest *ret, sp_error *err)
{
    memset(ret, 0, sizeof(*ret));
    json_t *j = load(buf, len, "manifest", err);
    if (!j)
        return -EINVAL;
    int r = 0;
    json_t *cfg = json_object_get(j, "config");
    json_t *ls = json_object_get(j, "layers");
    const char *cd = json_string_value(json_object_get(cfg, "digest"));
    if (!json_is_object(j) || !sp_image_digest_valid(cd)) {
        r = BAD("manifest: no valid config digest");
        goto out;
    }
    if (media_is_index(media(j))) {
        r = BAD("manifest: is an index, not an image manifest");
        goto out;
    }
    snprintf(ret->config, sizeof(ret->config), "%s", cd);
    if (!json_is_array(ls)) {
        r = BAD("manifest: no \"layers\" array");
        goto out;
    }
    if (json_array_size(ls) > SP_IMAGE_MAX_LAYERS) {
        r = BAD("manifest: more than %d layers", SP_IMAGE_MAX_LAYERS);
        goto out;
    }
    ret->layers = calloc(json_array_size(ls) + 1, sizeof(char *));
    if (!ret->layers) {
        r = sp_error_set(err, ENOMEM, "manifest");
        goto out;
    }
    size_t i;
    json_t *l;
    json_array_foreach(ls, i, l) {
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *mt = media(l);
        if (!sp_image_digest_valid(d)) {
            r = BAD("manifest: layer %zu has no valid sha256 digest", i);
            goto out;
        }
        if (strstr(mt, "nondistributable") || strstr(mt, "foreign")) {
            r = BAD("manifest: layer %zu is a foreign layer (%s), which is "
                    "not in the archive", i, mt);
            goto out;
        }
        if (!(ret->layers[ret->n_layers] = strdup(d))) {
            r = sp_error_set(err, ENOMEM, "manifest");
            goto out;
        }
        ret->n_layers++;
    }
out:
    json_decref(j);
    if (r < 0)
        sp_image_manifest_free(ret);
    return r;
}

int sp_image_parse_config(const char *buf, size_t len,
                          struct sp_image_config *ret, sp_error *err)
{
    memset(ret, 0, sizeof(*ret));
    json_t *j = load(buf, len, "config", err);
    if (!j)
        return -EINVAL;
    int r = 0;
    if (!json_is_object(j)) {
        r = BAD("config: not a JSON object");
        goto out;
    }
    json_t *c = json_object_get(j, "config");
    if (c && !json_is_null(c) && !json_is_object(c)) {
        r = BAD("config: \"config\" is not an object");
        goto out;
    }
    if ((r = strv_add(&ret->env, &ret->n_env, json_object_get(c, "Env"),
                      SP_IMAGE_MAX_ENV, "Env", err)) < 0)
        goto out;
    for (size_t i = 0; i < ret->n_env; i++) {
        const char *eq = strchr(ret->env[i], '=');
        if (!eq || eq == ret->env[i]) {
            r = BAD("config: Env entry %zu is not NAME=VALUE", i);
            goto out;
        }
    }
    if ((r = strv_add(&ret->argv, &ret->n_argv,
                      json_object_get(c, "Entrypoint"), SP_IMAGE_MAX_ARGV,
                      "Entrypoint", err)) < 0 ||
        (r = strv_add(&ret->argv, &ret->n_argv, json_object_get(c, "Cmd"),
                      SP_IMAGE_MAX_ARGV, "Cmd", err)) < 0)
        goto out;
    if (ret->argv)
        ret->argv[ret->n_argv] = NULL;
    json_t *wd = json_object_get(c, "WorkingDir");
    const char *w = json_string_value(wd);
    if (wd && !json_is_null(wd) && !w) {
        r = BAD("config: WorkingDir is not a string");
        goto out;
    }
    if (w && *w) {
        char norm[SP_IMAGE_MAX_STR];
        if (!str_ok(w) || sp_path_normalize(w, norm, sizeof(norm)) < 0) {
            r = BAD("config: WorkingDir \"%.100s\" is not an absolute path "
                    "without \"..\"", w);
            goto out;
        }
        if (!(ret->workdir = strdup(norm))) {
            r = sp_error_set(err, ENOMEM, "config");
            goto out;
        }
    }
    json_t *us = json_object_get(c, "User");
    const char *u = json_string_value(us);
    if (us && !json_is_null(us) && !u) {
        r = BAD("config: User is not a string");
        goto out;
    }
    if (u && *u) {
        if (strlen(u) > 256 || !str_ok(u)) {
            r = BAD("config: User is not a usable string");
            goto out;
        }
        if (!(ret->user = strdup(u))) {
            r = sp_error_set(err, ENOMEM, "config");
            goto out;
        }
    }
    json_t *rootfs = json_object_get(j, "rootfs");
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (ids) {
        if ((r = strv_add(&ret->diff_ids, &ret->n_diff_ids, ids,
                          SP_IMAGE_MAX_LAYERS, "rootfs.diff_ids", err)) < 0)
            goto out;
        for (size_t i = 0; i < ret->n_diff_ids; i++)
            if (!sp_image_digest_valid(ret->diff_ids[i])) {
                r = BAD("config: diff_id %zu is not a sha256 digest", i);
                goto out;
            }
    }
out:
    json_decref(j);
    if (r < 0)
        sp_image_config_free(ret);
    return r;
}

/* A file name inside a docker-save archive: relative, no "..", no control
 * bytes, bounded. */
static bool member_ok(const char *s)
{
    if (!s || !*s || *s == '/' || strlen(s) > 1024 || !str_ok(s))
        return false;
    for (const char *c = s; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return false;
        c += n;
        while (*c == '/')
            c++;
    }
    return true;
}

int sp_image_parse_docker(const char *buf, size_t len, const char *want,
                          struct sp_image_docker *ret, sp_error *err)
{
    memset(ret, 0, sizeof(*ret));
    json_t *j = load(buf, len, "manifest.json", err);
    if (!j)
        return -EINVAL;
    int r = 0;
    if (!json_is_array(j) || json_array_size(j) == 0 ||
        json_array_size(j) > SP_IMAGE_MAX_MANIFESTS) {
        r = BAD("manifest.json: not an array of 1 to %d images",
                SP_IMAGE_MAX_MANIFESTS);
        goto out;
    }
    json_t *pick = json_array_get(j, 0);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) {
        json_t *tags = json_object_get(e, "RepoTags");
        size_t k;
        json_t *t;
        if (want && json_is_array(tags))
            json_array_foreach(tags, k, t) {
                const char *s = json_string_value(t);
                if (s && strcmp(s, want) == 0)
                    pick = e;
            }
    }
    const char *cfg = json_string_value(json_object_get(pick, "Config"));
    json_t *ls = json_object_get(pick, "Layers");
    if (!json_is_object(pick) || !member_ok(cfg)) {
        r = BAD("manifest.json: no usable \"Config\" file name");
        goto out;
    }
    if (!json_is_array(ls) || json_array_size(ls) > SP_IMAGE_MAX_LAYERS) {
        r = BAD("manifest.json: \"Layers\" is not an array of at most %d "
                "file names", SP_IMAGE_MAX_LAYERS);
        goto out;
    }
    ret->config = strdup(cfg);
    ret->layers = calloc(json_array_size(ls) + 1, sizeof(char *));
    if (!ret->config || !ret->layers) {
        r = sp_error_set(err, ENOMEM, "manifest.json");
        goto out;
    }
    json_array_foreach(ls, i, e) {
        const char *s = json_string_value(e);
        if (!member_ok(s)) {
            r = BAD("manifest.json: layer %zu is not a usable file name", i);
            goto out;
        }
        if (!(ret->layers[ret->n_layers] = strdup(s))) {
            r = sp_error_set(err, ENOMEM, "manifest.json");
            goto out;
        }
        ret->n_layers++;
    }
    const char *tag = json_string_value(json_array_get(json_object_get(pick, "RepoTags"), 0));
    if (tag && sp_image_name_valid(tag) && !(ret->tag = strdup(tag))) {
        r = sp_error_set(err, ENOMEM, "manifest.json");
        goto out;
    }
out:
    json_decref(j);
    if (r < 0)
        sp_image_docker_free(ret);
    return r;
}

void sp_image_manifest_free(struct sp_image_manifest *m)
{
    if (!m)
        return;
    strv_free(m->layers, m->n_layers);
    memset(m, 0, sizeof(*m));
}

void sp_image_config_free(struct sp_image_config *c)
{
    if (!c)
        return;
    strv_free(c->env, c->n_env);
    strv_free(c->argv, c->n_argv);
    strv_free(c->diff_ids, c->n_diff_ids);
    free(c->workdir);
    free(c->user);
    memset(c, 0, sizeof(*c));
}

void sp_image_docker_free(struct sp_image_docker *d)
{
    if (!d)
        return;
    free(d->config);
    strv_free(d->layers, d->n_layers);
    free(d->tag);
    memset(d, 0, sizeof(*d));
}
