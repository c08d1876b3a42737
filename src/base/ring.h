/* ring.h — a bounded byte ring addressed by absolute cursors (bytes ever
 * written), for shell output and service logs kept by the agent: writers
 * never block (the oldest bytes are dropped), and a reader behind the
 * ring's start learns how much it missed. Also base64, for raw bytes in
 * JSON messages. Pure code: no system calls. */
#ifndef SANDPIT_RING_H
#define SANDPIT_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_ring {
    char *buf;                 /* cap bytes, allocated at init */
    size_t cap;
    uint64_t end;              /* bytes ever written = the next cursor */
};

/* Returns 0 or -ENOMEM. */
int sp_ring_init(struct sp_ring *r, size_t cap);
void sp_ring_free(struct sp_ring *r);
/* The oldest cursor still held. */
uint64_t sp_ring_start(const struct sp_ring *r);
void sp_ring_write(struct sp_ring *r, const void *data, size_t len);
/* Copy up to max bytes from cursor into out. A cursor behind the start
 * reads from the start (*ret_dropped says how many bytes were skipped);
 * one past the end reads nothing. *ret_from is the cursor the bytes begin
 * at. Returns the count. */
size_t sp_ring_read(const struct sp_ring *r, uint64_t cursor, size_t max,
                    char *out, uint64_t *ret_from, uint64_t *ret_dropped);
/* The cursor where the last n lines begin (a final line without its
 * newline counts as one), never before the start. */
uint64_t sp_ring_tail_lines(const struct sp_ring *r, size_t n);

/* Standard base64 with padding. encode: out holds 4 * ((len + 2) / 3) + 1
 * bytes (NUL-terminated); returns the length. decode: out holds
 * len / 4 * 3 bytes; returns the length or -1 on bad input. */
size_t sp_b64_encode(const void *in, size_t len, char *out);
long sp_b64_decode(const char *in, size_t len, void *out);
static inline size_t sp_b64_encoded_len(size_t len)
{
    return 4 * ((len + 2) / 3);
}

#endif
