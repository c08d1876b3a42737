/* envbuild.h — the environment a sandboxed command starts with: a minimal
 * allowlist from the caller, private HOME/TMPDIR/XDG, then --env-pass and
 * --env entries. Pure: reads only the environ array it is given. */
#ifndef SANDPIT_ENVBUILD_H
#define SANDPIT_ENVBUILD_H

#include "policy.h"

/* Build a NULL-terminated "K=V" array (caller frees with sp_env_free).
 * `caller` is the caller's environment (environ). Later entries replace
 * earlier ones of the same name. Returns 0 or -ENOMEM. */
int sp_env_build(const struct sp_policy *p, char *const *caller,
                 const char *home, char ***ret_env, sp_error *err);
void sp_env_free(char **env);

/* Look up NAME in a "K=V" array; NULL when absent. */
const char *sp_env_get(char *const *env, const char *name);

#define SP_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#endif
