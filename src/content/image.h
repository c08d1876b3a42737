/* image.h — base images: the image store under $SANDPIT_STATE/images/
 * and the parsers of the OCI / docker-save JSON documents (docs/images.md).
 *
 *   images/refs/<name>.json   one imported image: its digest, its tree,
 *                             the honoured parts of its config
 *   images/trees/<hex>/       the image's layers unpacked and flattened
 *                             into one tree, <hex> its config digest;
 *                             shared by every name and workspace using it
 *   images/tmp/               staging of imports in progress
 *   images/lock               flock: one import or rm at a time */
#ifndef SANDPIT_IMAGE_H
#define SANDPIT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define SP_IMAGES_DIR "images"
/* Longest image name: [a-z0-9][a-z0-9._:-]{0,127}. */
#define SP_IMAGE_NAME_MAX 128
/* Largest index.json, manifest.json, manifest or config blob we read. */
#define SP_IMAGE_JSON_MAX (4 * 1024 * 1024)
/* Most layers of one image. */
#define SP_IMAGE_MAX_LAYERS 128
/* Most manifests an index lists (we pick one). */
#define SP_IMAGE_MAX_MANIFESTS 256
/* Most Env entries and Entrypoint+Cmd words taken from a config. */
#define SP_IMAGE_MAX_ENV 256
#define SP_IMAGE_MAX_ARGV 256
/* Longest string (Env entry, argument, WorkingDir, User) in a config. */
#define SP_IMAGE_MAX_STR 8192
/* Largest /etc/passwd or /etc/group read to resolve a config's User. */
#define SP_IMAGE_MAX_PASSWD (1024 * 1024)

/* Most entries of a policy's "images": {"allowed": [...]}. */
#define SP_IMAGE_MAX_ALLOWED 256
/* Longest post_create command line. */
#define SP_POST_CREATE_MAX 8192

/* "sha256:" + 64 lowercase hex digits, and a NUL. */
#define SP_DIGEST_LEN 72

struct sp_image_config {
    char **env;          /* "K=V" */
    size_t n_env;
    char **argv;         /* Entrypoint then Cmd */
    size_t n_argv;
    char *workdir;       /* absolute, or NULL */
    char *user;          /* as written ("1000", "app:app"), or NULL */
    char **diff_ids;     /* rootfs.diff_ids: "sha256:<hex>" */
    size_t n_diff_ids;
};

struct sp_image_manifest {
    char config[SP_DIGEST_LEN];
    char **layers;       /* digests */
    size_t n_layers;
};

/* A docker-save manifest.json entry: file names inside the archive. */
struct sp_image_docker {
    char *config;        /* "<hex>.json" or "blobs/sha256/<hex>" */
    char **layers;
    size_t n_layers;
    char *tag;           /* RepoTags[0], or NULL */
};

bool sp_image_name_valid(const char *name);
/* "sha256:<64 lowercase hex>" */
bool sp_image_digest_valid(const char *d);

/* index.json (or a nested image index): the digest of the manifest to use
 * — the one named `want` (annotation org.opencontainers.image.ref.name)
 * when given and present, else one for linux/amd64, else the first.
 * *is_index tells whether that entry is itself an index; ref_name (at
 * least SP_IMAGE_NAME_MAX + 1 bytes, optional) gets its ref name if valid. */
int sp_image_parse_index(const char *buf, size_t len, const char *want,
                         char digest[SP_DIGEST_LEN], bool *is_index,
                         char *ref_name, sp_error *err);
int sp_image_parse_manifest(const char *buf, size_t len,
                            struct sp_image_manifest *ret, sp_error *err);
int sp_image_parse_config(const char *buf, size_t len,
                          struct sp_image_config *ret, sp_error *err);
int sp_image_parse_docker(const char *buf, size_t len, const char *want,
                          struct sp_image_docker *ret, sp_error *err);
void sp_image_manifest_free(struct sp_image_manifest *m);
void sp_image_config_free(struct sp_image_config *c);
void sp_image_docker_free(struct sp_image_docker *d);

/* The honoured config of an imported image, as the ref file stores it. */
struct sp_image_ref {
    char *rootfs;        /* absolute path of its tree */
    char digest[SP_DIGEST_LEN];
    struct sp_image_config cfg;
};

/* Look up an imported image by name. -ENOENT (SP_ERR_USAGE) if none. */
int sp_image_resolve(const char *name, struct sp_image_ref *ret,
                     sp_error *err);
void sp_image_ref_free(struct sp_image_ref *r);

/* Resolve a config User ("uid[:gid]", "name[:group]") against the tree's
 * /etc/passwd and /etc/group. */
int sp_image_user(const char *rootfs, const char *user, unsigned *uid,
                  unsigned *gid, sp_error *err);

#endif
