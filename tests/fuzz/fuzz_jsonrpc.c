/* fuzz_jsonrpc.c — libFuzzer target for the JSON-RPC 2.0 layer of serve and
 * mcp (jsonrpc.h): the bytes go through the line framing in two pieces (a
 * small bound, so oversized lines are exercised), every line through the
 * parser and each message (or batch element) through the checker; replies
 * are built and queued, and output is turned into lossy UTF-8 strings and
 * cut on character boundaries, as the servers do with a client's bytes and
 * a command's output. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"

static void one(json_t *o, struct sp_jrpc_out *q)
{
    struct sp_jrpc_msg m;
    const char *why = NULL;
    if (sp_jrpc_check(o, &m, &why) != 0) {
        sp_jrpc_out_push(q, sp_jrpc_error(m.id, SP_JRPC_INVALID, NULL, "%s", why));
        return;
    }
    if (m.kind == SP_JRPC_REQUEST)
        sp_jrpc_out_push(q, sp_jrpc_result(m.id, json_pack("{s:s}", "method", m.method)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_jrpc_in in;
    struct sp_jrpc_out q;
    sp_jrpc_in_init(&in, 4096);
    sp_jrpc_out_init(&q, 1 << 20);
    size_t half = size / 2;
    for (int part = 0; part < 2; part++) {
        const char *p = (const char *)data + (part ? half : 0);
        size_t n = part ? size - half : half;
        if (sp_jrpc_in_feed(&in, p, n) < 0)
            break;
        const char *line;
        size_t len;
        int r;
        while ((r = sp_jrpc_in_next(&in, &line, &len)) != 0) {
            if (r < 0)
                continue;
            json_t *o = NULL;
            const char *why = NULL;
            if (sp_jrpc_parse(line, len, &o, &why) != 0)
                continue;
            if (json_is_array(o)) {
                size_t i;
                json_t *e;
                json_array_foreach(o, i, e)
                    one(e, &q);
            } else {
                one(o, &q);
            }
            json_decref(o);
        }
    }
    json_t *s = sp_jrpc_string_lossy((const char *)data, size);
    if (s && json_string_length(s) < size)
        abort(); /* replacements never shrink the text */
    json_decref(s);
    size_t cut = sp_jrpc_utf8_cut((const char *)data, size);
    if (cut > size)
        abort();
    sp_jrpc_out_free(&q);
    sp_jrpc_in_free(&in);
    return 0;
}
