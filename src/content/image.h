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
#include "image_parse.h"

#define SP_IMAGES_DIR "images"
#define SP_IMAGE_MAX_PASSWD (1024 * 1024)
/* Most entries of a policy's "images": {"allowed": [...]}. */
#define SP_IMAGE_MAX_ALLOWED 256
/* Longest post_create command line. */
#define SP_POST_CREATE_MAX 8192

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
