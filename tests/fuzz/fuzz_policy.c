/* fuzz_policy.c — libFuzzer target for the policy parser: any bytes given
 * as a policy must either apply or fail with a message, never crash, leak
 * or leave the policy half-changed (checked: a failed apply keeps the JSON
 * form of the policy identical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sp_policy *p = sp_policy_new();
    sp_error err = {0};
    char *before = sp_policy_to_json(p, NULL);
    if (sp_policy_apply_json_text(p, text, "fuzz", &err) < 0) {
        char *after = sp_policy_to_json(p, NULL);
        if (before && after && strcmp(before, after) != 0)
            abort(); /* a failed apply changed the policy */
        if (!err.message[0])
            abort(); /* a failure without a message */
        free(after);
    } else {
        char *again = sp_policy_to_json(p, NULL);
        free(again);
    }
    free(before);
    sp_policy_free(p);
    free(text);
    return 0;
}
