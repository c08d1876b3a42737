/* fuzz_proto.c — libFuzzer target for the wire format: the bytes are fed
 * through the line framing and every complete line through the parser and
 * the param helpers, as the supervisor and agent do with a peer's bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_proto_buf b;
    sp_proto_buf_init(&b);
    sp_proto_feed(&b, (const char *)data, size);
    char *line = NULL;
    size_t len = 0;
    while (sp_proto_next_line(&b, &line, &len) == 1) {
        struct sp_proto_msg m;
        sp_error err = {0};
        if (sp_proto_parse(line, len, &m, &err) == 0) {
            const char **v = NULL;
            const char *s = NULL;
            double d = 0;
            if (sp_proto_get_strv(m.params, "argv", false, 0, 64, 4096, &v,
                                  &err) == 0)
                free(v);
            sp_proto_get_string(m.params, "cwd", false, 4096, &s, &err);
            sp_proto_get_number(m.params, "timeout", false, 0, 1e6, &d, &err);
            sp_proto_msg_free(&m);
        } else {
            (void)sp_proto_parse_code(line, len);
        }
        free(line);
    }
    sp_proto_buf_free(&b);
    return 0;
}
