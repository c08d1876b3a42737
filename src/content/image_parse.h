/* image_parse.h — the pure parsers of image metadata (image_parse.c):
 * OCI index, manifest and config blobs, docker-save manifest.json, names
 * and digests. Hostile bytes in, bounded and checked structs out; the
 * store that uses them is image.h. */
#ifndef SANDPIT_IMAGE_PARSE_H
#define SANDPIT_IMAGE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

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

#endif
