/* envbuild.c — building the sandbox environment from the policy. */
#include "envbuild.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bounds.h"
#include "error.h"

struct envv {
    char **v;
    size_t n, cap;
};

static size_t name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Set or replace; takes ownership of kv. */
static int envv_put(struct envv *e, char *kv)
{
    if (!kv)
        return -ENOMEM;
    size_t nl = name_len(kv);
    for (size_t i = 0; i < e->n; i++) {
        if (name_len(e->v[i]) == nl && strncmp(e->v[i], kv, nl) == 0) {
            free(e->v[i]);
            e->v[i] = kv;
            return 0;
        }
    }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        char **n = realloc(e->v, cap * sizeof(char *));
        if (!n) {
            free(kv);
            return -ENOMEM;
        }
        e->v = n;
        e->cap = cap;
    }
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
    return 0;
}

static char *kv_join(const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    char *s = malloc(kl + vl + 2);
    if (!s)
        return NULL;
    memcpy(s, k, kl);
    s[kl] = '=';
    memcpy(s + kl + 1, v, vl + 1);
    return s;
}

const char *sp_env_get(char *const *env, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, nl) == 0 && env[i][nl] == '=')
            return env[i] + nl + 1;
    return NULL;
}

static bool allowlisted(const char *kv)
{
    size_t nl = name_len(kv);
    return (nl == 4 && strncmp(kv, "PATH", 4) == 0) ||
           (nl == 4 && strncmp(kv, "LANG", 4) == 0) ||
           (nl == 8 && strncmp(kv, "LANGUAGE", 8) == 0) ||
           (nl == 4 && strncmp(kv, "TERM", 4) == 0) ||
           (nl > 3 && strncmp(kv, "LC_", 3) == 0);
}

int sp_env_build(const struct sp_policy *p, char *const *caller,
                 const char *home, char ***ret_env, sp_error *err)
{
    struct envv e = {0};
    int r = 0;
    if (!p->clear_env) {
        for (size_t i = 0; caller && caller[i] && r == 0; i++)
            if (allowlisted(caller[i]) && strlen(caller[i]) < SP_MAX_ENV_LEN)
                r = envv_put(&e, strdup(caller[i]));
    }
    if (r == 0 && !sp_env_get(e.v, "PATH"))
        r = envv_put(&e, kv_join("PATH", SP_DEFAULT_PATH));
    char buf[512];
    struct {
        const char *name, *suffix;
    } dirs[] = {
        {"HOME", ""},
        {"XDG_CONFIG_HOME", "/.config"},
        {"XDG_CACHE_HOME", "/.cache"},
        {"XDG_STATE_HOME", "/.local/state"},
        {"XDG_DATA_HOME", "/.local/share"},
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && r == 0; i++) {
        snprintf(buf, sizeof(buf), "%s%s", home, dirs[i].suffix);
        r = envv_put(&e, kv_join(dirs[i].name, buf));
    }
    if (r == 0)
        r = envv_put(&e, kv_join("TMPDIR", "/tmp"));
    for (size_t i = 0; i < p->n_env_pass && r == 0; i++) {
        const char *v = sp_env_get(caller, p->env_pass[i]);
        if (v)
            r = envv_put(&e, kv_join(p->env_pass[i], v));
    }
    for (size_t i = 0; i < p->n_env_set && r == 0; i++)
        r = envv_put(&e, strdup(p->env_set[i]));
    if (r == 0 && !e.v)
        r = envv_put(&e, kv_join("PATH", SP_DEFAULT_PATH));
    if (r < 0) {
        sp_env_free(e.v);
        return sp_error_set(err, ENOMEM, "building the environment");
    }
    *ret_env = e.v;
    return 0;
}

bool sp_env_path_inherited(const struct sp_policy *p, char *const *caller)
{
    if (p->clear_env || !sp_env_get(caller, "PATH"))
        return false;
    for (size_t i = 0; i < p->n_env_pass; i++)
        if (strcmp(p->env_pass[i], "PATH") == 0)
            return false;
    for (size_t i = 0; i < p->n_env_set; i++)
        if (strncmp(p->env_set[i], "PATH=", 5) == 0)
            return false;
    return true;
}

void sp_env_path_prune(char **env)
{
    static char out[SP_MAX_ENV_LEN], one[SP_MAX_ENV_LEN];
    for (size_t i = 0; env && env[i]; i++) {
        if (strncmp(env[i], "PATH=", 5) != 0)
            continue;
        const char *v = env[i] + 5;
        size_t len = strlen(v), o = 0;
        if (len >= sizeof(out))
            return;
        for (const char *e = v; *e;) {
            size_t n = strcspn(e, ":");
            memcpy(one, e, n);
            one[n] = '\0';
            struct stat st;
            bool keep = one[0] == '/' && stat(one, &st) == 0 &&
                        S_ISDIR(st.st_mode);
            /* once is enough: a repeat only costs failed lookups */
            for (size_t k = 0; keep && k < o;) {
                size_t kn = strcspn(out + k, ":");
                if (kn == n && memcmp(out + k, e, n) == 0)
                    keep = false;
                k += kn + 1;
            }
            if (keep) {
                if (o)
                    out[o++] = ':';
                memcpy(out + o, e, n);
                o += n;
            }
            e += n + (e[n] == ':');
        }
        out[o] = '\0';
        if (o) /* none there at all: leave it as it was */
            memcpy(env[i] + 5, out, o + 1);
        return;
    }
}

void sp_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}
