/* seccomp_cache.c — the default filters, compiled at build time by
 * seccomp_gen (same code, same libseccomp), handed out without running
 * libseccomp on the launch path. */
#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <string.h>

#include "seccomp.h"
#include "seccomp_default_bpf.h"

int sp_seccomp_default_cached(bool allow_ptrace, struct sp_seccomp_prog *ret)
{
    const struct sock_filter *src =
        allow_ptrace ? sp_bpf_default_ptrace : sp_bpf_default;
    size_t n = allow_ptrace ? sizeof(sp_bpf_default_ptrace) / sizeof(*src)
                            : sizeof(sp_bpf_default) / sizeof(*src);
    struct sock_filter *f = malloc(n * sizeof(*f));
    if (!f)
        return -ENOMEM;
    memcpy(f, src, n * sizeof(*f));
    ret->filter = f;
    ret->len = (unsigned short)n;
    return 0;
}
