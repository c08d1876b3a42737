/* redact.c — streaming secret redaction (redact.h). The matcher is
 * simple and bounded: at each position only values whose first byte is
 * the byte there are compared (a 256-entry table says which), so the
 * work per byte is at most the number of secrets times the longest value,
 * both bounded. What could still become a match at the end of the input
 * is held back (less than the longest value). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "redact.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct secret {
    char name[SP_REDACT_MAX_NAME + 1];
    unsigned char *value;
    size_t len;
    char *repl;              /* "[REDACTED:NAME]" */
    size_t repl_len;
};

struct sp_redact {
    struct secret s[SP_REDACT_MAX_SECRETS];
    size_t n;
    size_t max_len;
    bool first[256];         /* some value starts with this byte */
};

struct sp_redact_stream {
    const struct sp_redact *r;
    unsigned char *hold;     /* bytes not decided yet */
    size_t n_hold;
    size_t cap;              /* r->max_len when the stream was made */
};

struct sp_redact *sp_redact_new(void)
{
    return calloc(1, sizeof(struct sp_redact));
}

void sp_redact_free(struct sp_redact *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        /* The value leaves memory as zeros. */
        explicit_bzero(r->s[i].value, r->s[i].len);
        free(r->s[i].value);
        free(r->s[i].repl);
    }
    explicit_bzero(r, sizeof(*r));
    free(r);
}

size_t sp_redact_count(const struct sp_redact *r)
{
    return r ? r->n : 0;
}

static bool name_ok(const char *n)
{
    size_t l = strlen(n);
    if (l == 0 || l > SP_REDACT_MAX_NAME)
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int sp_redact_add(struct sp_redact *r, const char *name, const void *value,
                  size_t len, sp_error *err)
{
    if (!name || !name_ok(name))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "secret name '%.80s': use 1 to %d of A-Z a-z "
                             "0-9 _ . -",
                             name ? name : "", SP_REDACT_MAX_NAME);
    if (len < SP_REDACT_MIN_SECRET)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "secret %s is shorter than %d bytes: it could "
                             "not be redacted safely",
                             name, SP_REDACT_MIN_SECRET);
    if (len > SP_REDACT_MAX_SECRET)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "secret %s is longer than %d bytes", name,
                             SP_REDACT_MAX_SECRET);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->s[i].name, name) == 0)
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "secret %s is given twice", name);
    if (r->n >= SP_REDACT_MAX_SECRETS)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "more than %d secrets", SP_REDACT_MAX_SECRETS);
    struct secret *s = &r->s[r->n];
    s->value = malloc(len);
    size_t rl = strlen(name) + sizeof("[REDACTED:]");
    s->repl = malloc(rl);
    if (!s->value || !s->repl) {
        free(s->value);
        free(s->repl);
        memset(s, 0, sizeof(*s));
        return sp_error_set(err, ENOMEM, "secret %s", name);
    }
    memcpy(s->value, value, len);
    s->len = len;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->repl_len = (size_t)snprintf(s->repl, rl, "[REDACTED:%s]", name);
    r->first[s->value[0]] = true;
    if (len > r->max_len)
        r->max_len = len;
    r->n++;
    return 0;
}

struct sp_redact_stream *sp_redact_stream_new(const struct sp_redact *r)
{
    struct sp_redact_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->r = r;
    s->cap = r->max_len;
    if (r->max_len > 1 && !(s->hold = malloc(r->max_len))) {
        free(s);
        return NULL;
    }
    return s;
}

void sp_redact_stream_free(struct sp_redact_stream *s)
{
    if (!s)
        return;
    if (s->hold)
        explicit_bzero(s->hold, s->cap);
    free(s->hold);
    free(s);
}

size_t sp_redact_held(const struct sp_redact_stream *s)
{
    return s->n_hold;
}

/* At p (n bytes available, more may follow unless at_end): the longest
 * full match (its index, or -1), and whether some value could still
 * match once more bytes come. */
static int match_at(const struct sp_redact *r, const unsigned char *p,
                    size_t n, bool at_end, bool *partial)
{
    int best = -1;
    *partial = false;
    for (size_t i = 0; i < r->n; i++) {
        const struct secret *s = &r->s[i];
        if (s->len <= n) {
            if (memcmp(p, s->value, s->len) == 0 &&
                (best < 0 || s->len > r->s[best].len))
                best = (int)i;
        } else if (!at_end && memcmp(p, s->value, n) == 0) {
            *partial = true;
        }
    }
    return best;
}

/* Decide buf[0..n): emit what is decided, return how many bytes at the
 * end stay undecided (only when !at_end). */
static int scan(const struct sp_redact *r, const unsigned char *buf, size_t n,
                bool at_end, sp_redact_out_fn out, void *ctx, size_t *ret_keep)
{
    size_t i = 0, plain = 0; /* buf[plain..i) is decided and plain */
    *ret_keep = 0;
    while (i < n) {
        if (!r->first[buf[i]]) {
            i++;
            continue;
        }
        bool partial = false;
        int m = match_at(r, buf + i, n - i, at_end, &partial);
        if (partial && (m < 0 || n - i < r->max_len)) {
            /* A longer value might still match here: wait, unless a
             * full match cannot be beaten (no longer value is partial). */
            bool longer = false;
            for (size_t k = 0; k < r->n && !longer; k++) {
                const struct secret *s = &r->s[k];
                longer = s->len > n - i && (m < 0 || s->len > r->s[m].len) &&
                         memcmp(buf + i, s->value, n - i) == 0;
            }
            if (longer) {
                if (i > plain) {
                    int e = out(ctx, buf + plain, i - plain);
                    if (e < 0)
                        return e;
                }
                *ret_keep = n - i;
                return 0;
            }
        }
        if (m >= 0) {
            const struct secret *s = &r->s[m];
            if (i > plain) {
                int e = out(ctx, buf + plain, i - plain);
                if (e < 0)
                    return e;
            }
            int e = out(ctx, s->repl, s->repl_len);
            if (e < 0)
                return e;
            i += s->len;
            plain = i;
            continue;
        }
        i++;
    }
    if (n > plain) {
        int e = out(ctx, buf + plain, n - plain);
        if (e < 0)
            return e;
    }
    return 0;
}

int sp_redact_feed(struct sp_redact_stream *s, const void *data, size_t len,
                   sp_redact_out_fn out, void *ctx)
{
    const struct sp_redact *r = s->r;
    if (r->n == 0)
        return len ? out(ctx, data, len) : 0;
    if (r->max_len > s->cap)
        return -EINVAL; /* a secret was added after the stream was made */
    const unsigned char *in = data;
    /* The held bytes and the start of the new data decide together; the
     * window is small (< 2 * max_len), then the rest of the input is
     * scanned in place. */
    while (s->n_hold > 0 && len > 0) {
        size_t take = r->max_len < len ? r->max_len : len;
        size_t wl = s->n_hold + take;
        unsigned char *w = malloc(wl);
        if (!w)
            return -ENOMEM;
        memcpy(w, s->hold, s->n_hold);
        memcpy(w + s->n_hold, in, take);
        size_t keep = 0;
        /* Only decide the held part plus what a match starting in it
         * could reach: positions up to n_hold. Scan the window, but
         * anything after n_hold that is plain is re-scanned below. */
        int e = scan(r, w, wl, false, out, ctx, &keep);
        if (e < 0) {
            explicit_bzero(w, wl);
            free(w);
            return e;
        }
        in += take;
        len -= take;
        if (keep > r->max_len - 1) {
            /* Cannot happen: a kept tail is a proper prefix of a value. */
            keep = r->max_len - 1;
        }
        memcpy(s->hold, w + wl - keep, keep);
        s->n_hold = keep;
        explicit_bzero(w, wl);
        free(w);
    }
    if (len == 0)
        return 0;
    size_t keep = 0;
    int e = scan(r, in, len, false, out, ctx, &keep);
    if (e < 0)
        return e;
    memcpy(s->hold, in + len - keep, keep);
    s->n_hold = keep;
    return 0;
}

int sp_redact_finish(struct sp_redact_stream *s, sp_redact_out_fn out,
                     void *ctx)
{
    if (s->n_hold == 0)
        return 0;
    size_t keep = 0;
    int e = scan(s->r, s->hold, s->n_hold, true, out, ctx, &keep);
    explicit_bzero(s->hold, s->n_hold);
    s->n_hold = 0;
    return e;
}

struct membuf {
    char *p;
    size_t len, cap;
};

static int mem_out(void *ctx, const void *data, size_t len)
{
    struct membuf *b = ctx;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        char *n = realloc(b->p, cap);
        if (!n)
            return -ENOMEM;
        b->p = n;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

int sp_redact_buffer(const struct sp_redact *r, const void *data, size_t len,
                     char **ret, size_t *ret_len)
{
    struct membuf b = {0};
    size_t keep = 0;
    int e = r->n ? scan(r, data, len, true, mem_out, &b, &keep)
                 : mem_out(&b, data, len);
    if (e == 0 && !b.p && !(b.p = malloc(1)))
        e = -ENOMEM;
    if (e < 0) {
        free(b.p);
        return e;
    }
    *ret = b.p;
    *ret_len = b.len;
    return 0;
}
