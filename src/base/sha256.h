/* sha256.h — SHA-256 (FIPS 180-4), small and dependency-free: image blobs
 * are verified against their digests while the CLI stays a static binary
 * without another crypto library. */
#ifndef SANDPIT_SHA256_H
#define SANDPIT_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sp_sha256 {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed */
    uint8_t buf[64];
    size_t nbuf;
};

void sp_sha256_init(struct sp_sha256 *c);
void sp_sha256_update(struct sp_sha256 *c, const void *data, size_t len);
/* Finish into 32 bytes. */
void sp_sha256_final(struct sp_sha256 *c, uint8_t out[32]);
/* Finish into 64 lowercase hex digits and a NUL. */
void sp_sha256_hex(struct sp_sha256 *c, char out[65]);

#endif
