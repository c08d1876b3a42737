/* error.c — building error messages that read as sentences. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 4, 0))) static int
fill(sp_error *err, int kind, int errnum, const char *fmt, va_list ap)
{
    int rc = errnum > 0 ? -errnum : -SP_EFAIL;
    if (!err)
        return rc;
    int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    if (n < 0)
        n = 0;
    if (errnum > 0 && (size_t)n < sizeof(err->message))
        snprintf(err->message + n, sizeof(err->message) - (size_t)n, ": %s",
                 strerror(errnum));
    err->code = errnum;
    err->kind = kind;
    return rc;
}

int sp_error_set(sp_error *err, int errnum, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int rc = fill(err, SP_ERR_SYSTEM, errnum, fmt, ap);
    va_end(ap);
    errno = saved;
    return rc;
}

int sp_error_setk(sp_error *err, int kind, int errnum, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int rc = fill(err, kind, errnum, fmt, ap);
    va_end(ap);
    errno = saved;
    return rc;
}

int sp_error_prefix(sp_error *err, const char *fmt, ...)
{
    if (!err)
        return -SP_EFAIL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t plen = strnlen(prefix, sizeof(prefix) - 1);
    size_t cap = sizeof(err->message);
    size_t mlen = strnlen(err->message, cap - 1);
    /* Shift the old message right and put "prefix: " in front, cut to fit. */
    if (plen + 2 >= cap)
        plen = cap - 3;
    if (plen + 2 + mlen >= cap)
        mlen = cap - 1 - plen - 2;
    memmove(err->message + plen + 2, err->message, mlen);
    memcpy(err->message, prefix, plen);
    err->message[plen] = ':';
    err->message[plen + 1] = ' ';
    err->message[plen + 2 + mlen] = '\0';
    return err->code > 0 ? -err->code : -SP_EFAIL;
}
