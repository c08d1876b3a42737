/* error.h — the error object every fallible libsandpit function fills.
 *
 * Convention (docs/CONVENTIONS.md): a fallible function returns < 0 (a
 * negative errno or a negative SP_E* code) and, when given a non-NULL
 * sp_error, fills it with a sentence naming the thing and the reason.
 * Context is added on the way up with sp_error_prefix(); only a front end
 * prints it. */
#ifndef SANDPIT_ERROR_H
#define SANDPIT_ERROR_H

#include <stdarg.h>

#include "sandpit.h"

/* Set err (if non-NULL) from errno value `errnum` (positive; 0 = no errno
 * text) and a printf-style message. Returns -errnum, or -SP_EFAIL when
 * errnum is 0, so callers can `return sp_error_set(...)`. Preserves errno. */
int sp_error_set(sp_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like sp_error_set but with an explicit sandpit error kind (SP_ERR_*),
 * which the front ends map to exit codes and JSON-RPC codes. */
int sp_error_setk(sp_error *err, int kind, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepend "context: " to an already-set message. Returns err->code as a
 * negative number (or -SP_EFAIL when err is NULL). */
int sp_error_prefix(sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
