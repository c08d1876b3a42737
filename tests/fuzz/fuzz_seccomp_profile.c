/* fuzz_seccomp_profile.c — libFuzzer target for the seccomp profile parser
 * and filter builder: any bytes must build a filter or fail with a message. */
#include <stdint.h>
#include <stdlib.h>

#include "seccomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_seccomp_prog prog = {0};
    sp_error err = {0};
    int r = sp_seccomp_build_profile_text((const char *)data, size, "fuzz",
                                          &prog, &err);
    if (r < 0 && !err.message[0])
        abort();
    if (r == 0 && (!prog.filter || prog.len == 0))
        abort();
    sp_seccomp_prog_free(&prog);
    return 0;
}
