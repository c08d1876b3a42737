/* fuzz_redact.c — libFuzzer target for the streaming redactor: the input
 * names up to 4 secrets (a count byte, then per secret a length byte and
 * the value), a chunk-size seed byte, and the text. The text fed in
 * chunks must come out exactly as whole-buffer redaction makes it, and
 * the held-back bytes must stay below the longest value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct buf {
    char *p;
    size_t len, cap;
};

static int out(void *ctx, const void *d, size_t n)
{
    struct buf *b = ctx;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct sp_redact *r = sp_redact_new();
    size_t i = 0;
    unsigned ns = data[i++] % 5;
    size_t maxlen = 0;
    for (unsigned k = 0; k < ns && i < size; k++) {
        size_t len = data[i++] % 24;
        if (len > size - i)
            len = size - i;
        char name[8];
        snprintf(name, sizeof(name), "S%u", k);
        if (sp_redact_add(r, name, data + i, len, NULL) == 0 && len > maxlen)
            maxlen = len;
        i += len;
    }
    unsigned seed = i < size ? data[i++] : 1;
    const uint8_t *text = data + i;
    size_t n = size - i;
    char *want = NULL;
    size_t wl = 0;
    if (sp_redact_buffer(r, text, n, &want, &wl) < 0)
        abort();
    struct buf b = {0};
    struct sp_redact_stream *s = sp_redact_stream_new(r);
    for (size_t off = 0; off < n;) {
        size_t c = 1 + (seed = seed * 1103515245u + 12345u) % 9;
        if (c > n - off)
            c = n - off;
        if (sp_redact_feed(s, text + off, c, out, &b) < 0)
            abort();
        if (maxlen && sp_redact_held(s) >= maxlen)
            abort();
        off += c;
    }
    if (sp_redact_finish(s, out, &b) < 0)
        abort();
    if (b.len != wl || (wl && memcmp(b.p, want, wl) != 0))
        abort();
    free(b.p);
    free(want);
    sp_redact_stream_free(s);
    sp_redact_free(r);
    return 0;
}
