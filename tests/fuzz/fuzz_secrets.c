/* fuzz_secrets.c — libFuzzer target for the windowed redaction of file
 * reads (sp_secrets_redact_window): the input names up to 4 secrets (a
 * count byte, then per secret a length byte and the value; values under 4
 * bytes are refused as in a workspace), a window-size byte, and the file.
 * A window over the whole file must equal whole-buffer redaction; windows
 * of the given size must stay within their bounds (each output no longer
 * than its window's worst-case expansion) and report "nothing to redact"
 * only with the window's bytes unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    sp_secret v[4];
    char names[4][8];
    size_t i = 0, nv = 0, ctx = 0;
    unsigned ns = data[i++] % 5;
    for (unsigned k = 0; k < ns && i < size; k++) {
        size_t len = data[i++] % 24;
        if (len > size - i)
            len = size - i;
        snprintf(names[nv], sizeof(names[nv]), "S%u", k);
        if (len >= SP_SECRET_MIN_LEN) {
            v[nv] = (sp_secret){names[nv], data + i, len};
            nv++;
            if (len - 1 > ctx)
                ctx = len - 1;
        }
        i += len;
    }
    size_t win = i < size ? 1 + data[i++] % 64 : 1;
    const char *text = (const char *)data + i;
    size_t n = size - i;
    struct sp_secrets *s = NULL;
    if (sp_secrets_new(nv ? v : NULL, nv, &s, NULL) < 0)
        return 0; /* e.g. two equal names cannot happen; equal values can */
    char *r = NULL;
    size_t rl = 0;
    if (s) {
        char *want = NULL;
        size_t wl = 0;
        if (sp_redact_buffer(s->redact, text, n, &want, &wl) < 0)
            abort();
        int rc = sp_secrets_redact_window(s, text, n, 0, n, &r, &rl);
        if (rc < 0)
            abort();
        if (rc == 0 && (wl != n || memcmp(want, text, n) != 0))
            abort();
        if (rc == 1 && (rl != wl || memcmp(r, want, wl) != 0))
            abort();
        free(r);
        free(want);
    }
    for (size_t o = 0; o < n; o += win) {
        size_t w = win < n - o ? win : n - o;
        size_t pre = o < ctx ? o : ctx;
        size_t end = o + w + ctx < n ? o + w + ctx : n;
        int rc = sp_secrets_redact_window(s, text + o - pre, end - o + pre,
                                          pre, w, &r, &rl);
        if (rc < 0)
            abort();
        /* a value of >= 4 bytes becomes at most "[REDACTED:S3]" (13) */
        if (rc == 1 && rl > w * 4 + 16)
            abort();
        if (rc == 1)
            free(r);
    }
    sp_secrets_free(s);
    return 0;
}
