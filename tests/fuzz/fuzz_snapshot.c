/* fuzz_snapshot.c — libFuzzer target for the snapshot store's own parsers
 * (snapshot.h): a layer's .index (binary records: stat keys and a path)
 * and a workspace's stack file (one layer id a line). Any bytes must parse
 * or be refused, never crash, read out of bounds or leak; every record
 * kept must point inside the parsed names (checked by the parser).
 * The first byte picks the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        int r = sp_snap_parse_stack(p, n);
        if (r > SP_SNAP_MAX_DEPTH)
            abort();
    } else {
        long r = sp_snap_parse_index(p, n);
        if (r < 0 || (size_t)r > n)
            abort();
    }
    return 0;
}
