/* jsonrpc.c — JSON-RPC 2.0 framing, validation and reply builders for the
 * serve and mcp front ends (jsonrpc.h). Every input is hostile: sizes are
 * bounded before parsing, types are checked before use. */
#include "jsonrpc.h"
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sp_jrpc_in_init(struct sp_jrpc_in *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SP_JRPC_MAX_MSG;
}

void sp_jrpc_in_free(struct sp_jrpc_in *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof(*b));
}

int sp_jrpc_in_feed(struct sp_jrpc_in *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        /* Never hold more than one oversized line's worth: what passes
         * the bound is dropped in sp_jrpc_in_next before more is read. */
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *n = realloc(b->data, cap);
        if (!n)
            return -ENOMEM;
        b->data = n;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void consume(struct sp_jrpc_in *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->scan = 0;
}

int sp_jrpc_in_next(struct sp_jrpc_in *b, const char **ret, size_t *ret_len)
{
    /* The line handed out last time is consumed now. */
    if (b->pending) {
        consume(b, b->pending);
        b->pending = 0;
    }
    for (;;) {
        char *nl = b->len > b->scan
                       ? memchr(b->data + b->scan, '\n', b->len - b->scan)
                       : NULL;
        if (b->skipping) {
            if (!nl) {
                b->len = b->scan = 0;
                return 0;
            }
            consume(b, (size_t)(nl - b->data) + 1);
            b->skipping = false;
            continue;
        }
        if (!nl) {
            b->scan = b->len;
            if (b->len > b->max) {
                b->skipping = true;
                b->len = b->scan = 0;
                return -EMSGSIZE;
            }
            return 0;
        }
        size_t n = (size_t)(nl - b->data);
        if (n > b->max) {
            consume(b, n + 1);
            return -EMSGSIZE;
        }
        *nl = '\0';
        size_t l = n;
        if (l > 0 && b->data[l - 1] == '\r')
            b->data[--l] = '\0';
        *ret = b->data;
        *ret_len = l;
        b->pending = n + 1;
        return 1;
    }
}

int sp_jrpc_parse(const char *line, size_t len, json_t **ret,
                  const char **why)
{
    json_error_t je;
    /* \u0000 is parsed (and refused in sp_jrpc_check) so that the error
     * can carry the request's id: a reply with a null id is one that
     * clients drop, leaving the caller waiting. */
    json_t *o = json_loadb(line, len,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                               JSON_ALLOW_NUL,
                           &je);
    if (!o) {
        *why = "parse error: the message is not valid JSON";
        return SP_JRPC_PARSE;
    }
    if (json_is_array(o)) {
        size_t n = json_array_size(o);
        if (n == 0 || n > SP_JRPC_MAX_BATCH) {
            json_decref(o);
            *why = n == 0 ? "invalid request: an empty batch"
                          : "invalid request: a batch of more than 128 "
                            "messages";
            return SP_JRPC_INVALID;
        }
    } else if (!json_is_object(o)) {
        json_decref(o);
        *why = "invalid request: a message must be an object or an array";
        return SP_JRPC_INVALID;
    }
    *ret = o;
    return 0;
}

/* Does v hold a string with a NUL in it (which every consumer, reading C
 * strings, would see cut short)? Depth is bounded by the parser. */
static bool has_nul(json_t *v)
{
    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (has_nul(e))
                return true;
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
            if (has_nul(e))
                return true;
    }
    return false;
}

static bool id_ok(json_t *id)
{
    return json_is_null(id) || json_is_integer(id) ||
           (json_is_string(id) && json_string_length(id) <= SP_JRPC_MAX_ID);
}

int sp_jrpc_check(json_t *o, struct sp_jrpc_msg *m, const char **why)
{
    memset(m, 0, sizeof(*m));
    if (!json_is_object(o)) {
        *why = "invalid request: not an object";
        return SP_JRPC_INVALID;
    }
    json_t *id = json_object_get(o, "id");
    if (id && id_ok(id))
        m->id = id;
    json_t *v = json_object_get(o, "jsonrpc");
    if (!json_is_string(v) || json_string_length(v) != 3 ||
        strcmp(json_string_value(v), "2.0") != 0) {
        *why = "invalid request: \"jsonrpc\" must be \"2.0\"";
        return SP_JRPC_INVALID;
    }
    if (id && !id_ok(id)) {
        *why = "invalid request: \"id\" must be a string (at most 256 "
               "bytes), an integer or null";
        return SP_JRPC_INVALID;
    }
    json_t *method = json_object_get(o, "method");
    json_t *result = json_object_get(o, "result");
    json_t *error = json_object_get(o, "error");
    if (method) {
        if (!json_is_string(method) || json_string_length(method) == 0 ||
            json_string_length(method) > SP_JRPC_MAX_METHOD ||
            strlen(json_string_value(method)) != json_string_length(method)) {
            *why = "invalid request: \"method\" must be a non-empty string "
                   "of at most 128 bytes";
            return SP_JRPC_INVALID;
        }
        json_t *params = json_object_get(o, "params");
        if (params && !json_is_object(params) && !json_is_array(params)) {
            *why = "invalid request: \"params\" must be an object or an array";
            return SP_JRPC_INVALID;
        }
        if (result || error) {
            *why = "invalid request: a request has no \"result\" or \"error\"";
            return SP_JRPC_INVALID;
        }
        if (params && has_nul(params)) {
            *why = "invalid params: a string holds a NUL character (\\u0000)";
            return SP_JRPC_PARAMS;
        }
        if (id && json_is_null(id)) {
            /* A null id cannot be told from "no id" in the reply (MCP
             * forbids it; JSON-RPC 2.0 discourages it). */
            *why = "invalid request: \"id\" must not be null (a string or "
                   "an integer; leave it out for a notification)";
            return SP_JRPC_INVALID;
        }
        m->kind = id ? SP_JRPC_REQUEST : SP_JRPC_NOTIFY;
        m->method = json_string_value(method);
        m->params = params;
        return 0;
    }
    if ((result != NULL) == (error != NULL) || !id ||
        (error && !json_is_object(error))) {
        *why = "invalid request: no \"method\" (and not a response)";
        return SP_JRPC_INVALID;
    }
    m->kind = SP_JRPC_RESPONSE;
    m->result = result;
    m->error = error;
    return 0;
}

json_t *sp_jrpc_result(json_t *id, json_t *result)
{
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set_new(o, "id", id ? json_deep_copy(id) : json_null());
    json_object_set_new(o, "result", result ? result : json_object());
    return o;
}

json_t *sp_jrpc_error(json_t *id, int code, json_t *data, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message",
                        sp_jrpc_string_lossy(msg, strlen(msg)));
    if (data)
        json_object_set_new(e, "data", data);
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set_new(o, "id", id ? json_deep_copy(id) : json_null());
    json_object_set_new(o, "error", e);
    return o;
}

json_t *sp_jrpc_request(json_t *id, const char *method, json_t *params)
{
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    if (id)
        json_object_set(o, "id", id);
    json_object_set_new(o, "method", json_string(method));
    if (params)
        json_object_set_new(o, "params", params);
    return o;
}

/* ---- output queue ------------------------------------------------------ */

/* The lines go through proto.h's output queue, written with write(2). */

void sp_jrpc_out_init(struct sp_jrpc_out *q, size_t max)
{
    memset(q, 0, sizeof(*q));
    q->max = max ? max : SP_JRPC_MAX_OUTBUF;
}

int sp_jrpc_out_push(struct sp_jrpc_out *q, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s)
        return -ENOMEM;
    size_t len = strlen(s);
    char *d = realloc(s, len + 2);
    if (!d) {
        free(s);
        return -ENOMEM;
    }
    d[len] = '\n';
    d[len + 1] = '\0';
    int r = sp_proto_out_push(&q->q, d, NULL, 0, q->max);
    if (r < 0)
        free(d);
    return r;
}

int sp_jrpc_out_flush(struct sp_jrpc_out *q, int fd)
{
    return sp_proto_out_write(&q->q, fd);
}

bool sp_jrpc_out_pending(const struct sp_jrpc_out *q)
{
    return q->q.head != NULL;
}

void sp_jrpc_out_free(struct sp_jrpc_out *q)
{
    if (q)
        sp_proto_out_free(&q->q);
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80)
        return c == 0 ? 0 : 1; /* NUL is not passed through */
    if ((c & 0xe0) == 0xc0)
        k = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    unsigned cp = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

json_t *sp_jrpc_string_lossy(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k)
            break;
        i += k;
    }
    if (i == len)
        return json_stringn(s, len);
    /* Rebuild with replacements: at most 3 bytes per input byte. */
    if (len > SIZE_MAX / 3)
        return NULL;
    char *b = malloc(len * 3 + 1);
    if (!b)
        return NULL;
    size_t o = 0;
    for (i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (k) {
            memcpy(b + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(b + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *r = json_stringn(b, o);
    free(b);
    return r;
}

size_t sp_jrpc_utf8_cut(const char *s, size_t len)
{
    /* Step back over at most 3 continuation bytes to a lead byte; keep it
     * only when its whole sequence fits. */
    const unsigned char *u = (const unsigned char *)s;
    if (len == 0)
        return 0;
    size_t i = len;
    size_t back = 0;
    while (i > 0 && back < 4 && (u[i - 1] & 0xc0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return len;
    unsigned c = u[i - 1];
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (need == 1)
        return back ? i : len; /* stray continuation bytes: keep as is */
    return need == back + 1 ? len : i - 1;
}
