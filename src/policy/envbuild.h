/* envbuild.h — the environment a sandboxed command starts with: a minimal
 * allowlist from the caller, private HOME/TMPDIR/XDG, then --env-pass and
 * --env entries. Pure: reads only the environ array it is given. */
#ifndef SANDPIT_ENVBUILD_H
#define SANDPIT_ENVBUILD_H

#include "policy.h"
#include "util.h" /* SP_DEFAULT_PATH */

/* Build a NULL-terminated "K=V" array (caller frees with sp_env_free).
 * `caller` is the caller's environment (environ). Later entries replace
 * earlier ones of the same name. Returns 0 or -ENOMEM. */
int sp_env_build(const struct sp_policy *p, char *const *caller,
                 const char *home, char ***ret_env, sp_error *err);
void sp_env_free(char **env);

/* Is the PATH that sp_env_build gives the caller's own (no --env PATH=,
 * --env-pass PATH or --clear-env)? */
bool sp_env_path_inherited(const struct sp_policy *p, char *const *caller);

/* Inside the sandbox, before the first exec: drop from PATH the entries
 * that are not directories there (the host's ~/.cargo/bin and the like:
 * they name host paths, and each costs a failed lookup per command run by
 * name), and repeats. In place; a PATH with no entry left stays as it
 * was. Only for an inherited PATH: one the user set may name dirs that
 * appear later. */
void sp_env_path_prune(char **env);

/* Look up NAME in a "K=V" array; NULL when absent. */
const char *sp_env_get(char *const *env, const char *name);


#endif
