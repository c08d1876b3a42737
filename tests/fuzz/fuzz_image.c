/* fuzz_image.c — libFuzzer target for the image documents we parse
 * (image_parse.c): the first byte picks index, manifest, config or
 * docker manifest.json; the rest is the document. Each must parse or fail
 * with a message, never crash or leak, and what it returns must respect
 * the bounds and validity rules (digests well formed, names safe). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A docker-save member name: relative, with no ".." component. */
static void check_member(const char *s)
{
    if (!s || !*s || *s == '/')
        abort();
    for (const char *c = s; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            abort();
        c += n;
        while (*c == '/')
            c++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    sp_error err = {0};
    int r = 0;
    switch (data[0] % 4) {
    case 0: {
        char digest[SP_DIGEST_LEN], ref[SP_IMAGE_NAME_MAX + 1];
        bool is_index = false;
        r = sp_image_parse_index(buf, len, "want", digest, &is_index, ref, &err);
        if (r == 0 && (!sp_image_digest_valid(digest) ||
                       (ref[0] && !sp_image_name_valid(ref))))
            abort();
        break;
    }
    case 1: {
        struct sp_image_manifest m;
        r = sp_image_parse_manifest(buf, len, &m, &err);
        if (r == 0) {
            if (!sp_image_digest_valid(m.config) || m.n_layers > SP_IMAGE_MAX_LAYERS)
                abort();
            for (size_t i = 0; i < m.n_layers; i++)
                if (!sp_image_digest_valid(m.layers[i]))
                    abort();
            sp_image_manifest_free(&m);
        }
        break;
    }
    case 2: {
        struct sp_image_config c;
        r = sp_image_parse_config(buf, len, &c, &err);
        if (r == 0) {
            if (c.n_env > SP_IMAGE_MAX_ENV || c.n_argv > 2 * SP_IMAGE_MAX_ARGV ||
                (c.workdir && c.workdir[0] != '/'))
                abort();
            for (size_t i = 0; i < c.n_env; i++)
                if (!strchr(c.env[i], '=') || c.env[i][0] == '=')
                    abort();
            sp_image_config_free(&c);
        }
        break;
    }
    default: {
        struct sp_image_docker d;
        r = sp_image_parse_docker(buf, len, "want", &d, &err);
        if (r == 0) {
            check_member(d.config);
            for (size_t i = 0; i < d.n_layers; i++)
                check_member(d.layers[i]);
            if (d.tag && !sp_image_name_valid(d.tag))
                abort();
            sp_image_docker_free(&d);
        }
        break;
    }
    }
    if (r < 0 && !err.message[0])
        abort(); /* a failure without a message */
    return 0;
}
