/* ring.c — bounded byte rings and base64 (ring.h). */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sp_ring_init(struct sp_ring *r, size_t cap)
{
    r->end = 0;
    r->cap = cap;
    /* Large: malloc maps it, and pages cost memory only once written. */
    r->buf = malloc(cap);
    return r->buf ? 0 : -ENOMEM;
}

void sp_ring_free(struct sp_ring *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

uint64_t sp_ring_start(const struct sp_ring *r)
{
    return r->end > r->cap ? r->end - r->cap : 0;
}

void sp_ring_write(struct sp_ring *r, const void *data, size_t len)
{
    const char *p = data;
    if (!r->cap)
        return;
    if (len > r->cap) {
        /* Only the last cap bytes can be kept. */
        r->end += len - r->cap;
        p += len - r->cap;
        len = r->cap;
    }
    size_t off = (size_t)(r->end % r->cap);
    size_t first = r->cap - off < len ? r->cap - off : len;
    memcpy(r->buf + off, p, first);
    memcpy(r->buf, p + first, len - first);
    r->end += len;
}

size_t sp_ring_read(const struct sp_ring *r, uint64_t cursor, size_t max,
                    char *out, uint64_t *ret_from, uint64_t *ret_dropped)
{
    uint64_t start = sp_ring_start(r);
    uint64_t dropped = 0;
    if (cursor < start) {
        dropped = start - cursor;
        cursor = start;
    }
    if (cursor > r->end)
        cursor = r->end;
    uint64_t avail = r->end - cursor;
    size_t n = avail < max ? (size_t)avail : max;
    if (n) {
        size_t off = (size_t)(cursor % r->cap);
        size_t first = r->cap - off < n ? r->cap - off : n;
        memcpy(out, r->buf + off, first);
        memcpy(out + first, r->buf, n - first);
    }
    if (ret_from)
        *ret_from = cursor;
    if (ret_dropped)
        *ret_dropped = dropped;
    return n;
}

uint64_t sp_ring_tail_lines(const struct sp_ring *r, size_t n)
{
    uint64_t start = sp_ring_start(r);
    uint64_t c = r->end;
    if (n == 0 || c == start)
        return c;
    /* A trailing newline ends the last line; it does not start one. */
    if (r->buf[(c - 1) % r->cap] == '\n')
        c--;
    size_t seen = 0;
    while (c > start) {
        if (r->buf[(c - 1) % r->cap] == '\n' && ++seen == n)
            return c;
        c--;
    }
    return start;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sp_b64_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long sp_b64_decode(const char *in, size_t len, void *out)
{
    unsigned char *o = out;
    size_t n = 0;
    if (len % 4)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_val(in[i + k])) < 0) {
                return -1;
            }
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
                     (unsigned)v[2] << 6 | (unsigned)v[3];
        o[n++] = (unsigned char)(x >> 16);
        if (pad < 2)
            o[n++] = (unsigned char)(x >> 8);
        if (pad < 1)
            o[n++] = (unsigned char)x;
    }
    return (long)n;
}
