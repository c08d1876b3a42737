/* args.c — policy flags -> JSON objects applied to the policy, so flags,
 * policy files and profiles share one parser and one set of messages.
 * Order: --profile, then --policy files, then every other flag, in the
 * order given. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "cli.h"

enum {
    O_WORKSPACE = 1000, O_WORKSPACE_RO, O_NO_WORKSPACE, O_RO, O_RW, O_TMPFS,
    O_HIDE, O_ENV, O_ENV_PASS, O_CLEAR_ENV, O_CWD, O_UID, O_GID, O_NO_USERNS,
    O_HOSTNAME, O_PASS_FD, O_TIMEOUT, O_KILL_AFTER, O_NET, O_MEMORY, O_PIDS,
    O_CPUS, O_TMP_SIZE, O_NOFILE, O_FSIZE, O_DISK, O_INODES, O_NO_LANDLOCK, O_NO_SECCOMP,
    O_SECCOMP_PROFILE, O_ALLOW_PTRACE, O_ALLOW_SYSTEM_RO, O_REQUIRE, O_POLICY, O_PROFILE,
    O_STATS, O_STATS_JSON, O_REPORT, O_NO_REPORT, O_VERBOSE, O_QUIET, O_HELP,
    O_NET_POLICY, O_NET_ALLOW_PRIVATE, O_NET_LOG, O_NET_RESOLVER,
    O_ROOTFS, O_IMAGE, O_TCP_PORTS,
};

static const struct option long_opts[] = {
    {"workspace", required_argument, NULL, O_WORKSPACE},
    {"workspace-ro", no_argument, NULL, O_WORKSPACE_RO},
    {"no-workspace", no_argument, NULL, O_NO_WORKSPACE},
    {"ro", required_argument, NULL, O_RO},
    {"rw", required_argument, NULL, O_RW},
    {"tmpfs", required_argument, NULL, O_TMPFS},
    {"hide", required_argument, NULL, O_HIDE},
    {"env", required_argument, NULL, O_ENV},
    {"env-pass", required_argument, NULL, O_ENV_PASS},
    {"clear-env", no_argument, NULL, O_CLEAR_ENV},
    {"cwd", required_argument, NULL, O_CWD},
    {"uid", required_argument, NULL, O_UID},
    {"gid", required_argument, NULL, O_GID},
    {"no-userns", no_argument, NULL, O_NO_USERNS},
    {"hostname", required_argument, NULL, O_HOSTNAME},
    {"pass-fd", required_argument, NULL, O_PASS_FD},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"kill-after", required_argument, NULL, O_KILL_AFTER},
    {"net", required_argument, NULL, O_NET},
    {"net-policy", required_argument, NULL, O_NET_POLICY},
    {"net-allow-private", no_argument, NULL, O_NET_ALLOW_PRIVATE},
    {"net-log", required_argument, NULL, O_NET_LOG},
    {"net-resolver", required_argument, NULL, O_NET_RESOLVER},
    {"tcp-ports", required_argument, NULL, O_TCP_PORTS},
    {"memory", required_argument, NULL, O_MEMORY},
    {"pids", required_argument, NULL, O_PIDS},
    {"cpus", required_argument, NULL, O_CPUS},
    {"tmp-size", required_argument, NULL, O_TMP_SIZE},
    {"disk", required_argument, NULL, O_DISK},
    {"inodes", required_argument, NULL, O_INODES},
    {"nofile", required_argument, NULL, O_NOFILE},
    {"fsize", required_argument, NULL, O_FSIZE},
    {"no-landlock", no_argument, NULL, O_NO_LANDLOCK},
    {"no-seccomp", no_argument, NULL, O_NO_SECCOMP},
    {"seccomp-profile", required_argument, NULL, O_SECCOMP_PROFILE},
    {"allow-ptrace", no_argument, NULL, O_ALLOW_PTRACE},
    {"allow-system-ro", no_argument, NULL, O_ALLOW_SYSTEM_RO},
    {"require", required_argument, NULL, O_REQUIRE},
    {"policy", required_argument, NULL, O_POLICY},
    {"profile", required_argument, NULL, O_PROFILE},
    {"stats", no_argument, NULL, O_STATS},
    {"stats-json", required_argument, NULL, O_STATS_JSON},
    {"report", required_argument, NULL, O_REPORT},
    {"no-report", no_argument, NULL, O_NO_REPORT},
    {"rootfs", required_argument, NULL, O_ROOTFS},
    {"image", required_argument, NULL, O_IMAGE},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

void cli_policy_help(void)
{
    fputs(
        "Policy flags (docs/policy.md; later flags apply on top):\n"
        "  --profile NAME         start from a shipped profile (minimal, standard, dev)\n"
        "  --policy FILE          a JSON policy file\n"
        "  --workspace DIR        the read-write workspace (default: current directory)\n"
        "  --workspace-ro         mount the workspace read-only\n"
        "  --no-workspace         do not mount a workspace\n"
        "  --ro SRC[:DST]         bind SRC read-only at DST (default DST=SRC)\n"
        "  --rw SRC[:DST]         bind SRC read-write at DST\n"
        "  --tmpfs DST[:SIZE]     an empty tmpfs at DST\n"
        "  --hide DST             make DST absent\n"
        "  --env K=V              set an environment variable\n"
        "  --env-pass K           pass K from the caller's environment\n"
        "  --clear-env            do not pass PATH, LANG, LC_*, TERM\n"
        "  --cwd DIR              working directory inside\n"
        "  --uid N, --gid N       ids inside the sandbox (default 0)\n"
        "  --no-userns            as root: no user namespace\n"
        "  --hostname NAME        host name inside (default sandpit)\n"
        "  --rootfs DIR           DIR (a whole root filesystem) replaces the host's\n"
        "                         system paths, read-only (docs/images.md)\n"
        "  --image NAME           an imported image (sandpit image import) as rootfs,\n"
        "                         with its Env, WorkingDir, User, Entrypoint/Cmd\n"
        "  --pass-fd N            keep fd N open in the sandbox\n"
        "  --timeout S            SIGTERM everything after S seconds (exit 124)\n"
        "  --kill-after S         SIGKILL S seconds after the SIGTERM (default 2)\n"
        "  --net none|host|allow:DOMAIN[,DOMAIN...]\n"
        "                         network (default none: only lo); allow: only\n"
        "                         through the egress proxy (docs/network.md)\n"
        "  --net-policy FILE      allow list and proxy bounds as JSON (implies allow)\n"
        "  --net-allow-private    let the proxy reach loopback/private addresses\n"
        "  --net-log FILE         run: every proxied request as a JSON line\n"
        "  --net-resolver FILE    the proxy resolves names only from this\n"
        "                         hosts-format file (no DNS)\n"
        "  --tcp-ports P[,P...]   Landlock: TCP bind/connect only on these ports\n"
        "                         (and published ones); for --net host above all\n"
        "  --memory SIZE          memory limit (default 1G; 0 = none)\n"
        "  --pids N               process limit (default 512; 0 = none)\n"
        "  --cpus F               CPU limit in CPUs (e.g. 0.5)\n"
        "  --tmp-size SIZE        size of /tmp, HOME, /dev/shm and tmpfs mounts\n"
        "                         (default 1G); a write past it fails with ENOSPC\n"
        "                         (\"No space left on device\"): raise it here\n"
        "  --nofile N             open file limit (default 4096)\n"
        "  --fsize SIZE           largest file the command may write\n"
        "  --disk SIZE            what a workspace may write in all, and the most\n"
        "                         each tmpfs holds (default 10G; 0 = none; docs/disk.md)\n"
        "  --inodes N             files the workspace (and each tmpfs) may hold\n"
        "  --no-landlock          turn Landlock off (warned)\n"
        "  --no-seccomp           turn the seccomp filter off (warned)\n"
        "  --seccomp-profile FILE replace the default seccomp filter (JSON)\n"
        "  --allow-ptrace         allow ptrace and process_vm_* (debuggers)\n"
        "  --allow-system-ro      let --ro bind /, /etc, /usr, /proc, ... (see\n"
        "                         docs/policy.md; never read-write)\n"
        "  --require LIST         refuse to run without these layers: landlock,\n"
        "                         seccomp, limits, userns, netns, disk, idmap,\n"
        "                         idrange\n"
        "  --stats                print wall, CPU, memory and pids use at exit\n"
        "  --stats-json FILE      write the same as JSON\n"
        "  --report FILE|-        run: write the report (how it ended, resources,\n"
        "                         denials, layers; docs/report.md) as JSON to FILE\n"
        "                         or stderr\n"
        "  --no-report            run: do not watch for denials (no report, no\n"
        "                         summary line)\n"
        "  -v, --verbose          say which layers are on and what was dropped\n"
        "  -q, --quiet            no warnings\n",
        stdout);
}

/* Split "SRC:DST" at the first ':' that starts an absolute DST. */
static void split_src_dst(const char *arg, char **src, char **dst)
{
    const char *c = arg;
    while ((c = strchr(c, ':'))) {
        if (c[1] == '/')
            break;
        c++;
    }
    if (c) {
        *src = strndup(arg, (size_t)(c - arg));
        *dst = strdup(c + 1);
    } else {
        *src = strdup(arg);
        *dst = strdup(arg);
    }
}

static json_t *mount_obj(const char *type, const char *src, const char *dst)
{
    json_t *m = json_object();
    json_object_set_new(m, "type", json_string(type));
    if (src)
        json_object_set_new(m, "src", json_string(src));
    json_object_set_new(m, "dst", json_string(dst));
    return m;
}

static json_t *wrap(const char *key, json_t *v)
{
    json_t *o = json_object();
    json_object_set_new(o, key, v);
    return o;
}

/* Turn one flag into a JSON policy fragment. NULL with err on bad input. */
static json_t *flag_json(int opt, const char *arg, sp_error *err)
{
    char *src = NULL, *dst = NULL;
    json_t *j = NULL;
    switch (opt) {
    case O_WORKSPACE: return wrap("workspace", json_string(arg));
    case O_WORKSPACE_RO: return wrap("workspace_mode", json_string("ro"));
    case O_NO_WORKSPACE: return wrap("workspace_mode", json_string("none"));
    case O_RO:
    case O_RW:
        split_src_dst(arg, &src, &dst);
        j = wrap("mounts", json_array());
        json_array_append_new(json_object_get(j, "mounts"),
                              mount_obj(opt == O_RO ? "ro" : "rw", src, dst));
        free(src);
        free(dst);
        return j;
    case O_TMPFS: {
        const char *colon = strrchr(arg, ':');
        dst = colon ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
        json_t *m = mount_obj("tmpfs", NULL, dst);
        if (colon)
            json_object_set_new(m, "size", json_string(colon + 1));
        j = wrap("mounts", json_array());
        json_array_append_new(json_object_get(j, "mounts"), m);
        free(dst);
        return j;
    }
    case O_HIDE:
        j = wrap("mounts", json_array());
        json_array_append_new(json_object_get(j, "mounts"),
                              mount_obj("hide", NULL, arg));
        return j;
    case O_ENV: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg) {
            snprintf(err->message, sizeof(err->message),
                     "--env %s: expected NAME=VALUE", arg);
            err->kind = SP_ERR_USAGE;
            return NULL;
        }
        char *name = strndup(arg, (size_t)(eq - arg));
        j = wrap("env", json_object());
        json_object_set_new(json_object_get(j, "env"), name, json_string(eq + 1));
        free(name);
        return j;
    }
    case O_ENV_PASS:
        j = wrap("env_pass", json_array());
        json_array_append_new(json_object_get(j, "env_pass"), json_string(arg));
        return j;
    case O_CLEAR_ENV: return wrap("clear_env", json_true());
    case O_CWD: return wrap("cwd", json_string(arg));
    case O_UID: return wrap("uid", json_string(arg));
    case O_GID: return wrap("gid", json_string(arg));
    case O_NO_USERNS: return wrap("userns", json_false());
    case O_HOSTNAME: return wrap("hostname", json_string(arg));
    case O_PASS_FD:
        j = wrap("pass_fds", json_array());
        json_array_append_new(json_object_get(j, "pass_fds"), json_string(arg));
        return j;
    case O_TIMEOUT: return wrap("timeout", json_string(arg));
    case O_KILL_AFTER: return wrap("kill_after", json_string(arg));
    case O_NET: return wrap("net", json_string(arg));
    case O_NET_POLICY: return wrap("net_policy", json_string(arg));
    case O_NET_ALLOW_PRIVATE: return wrap("net_allow_private", json_true());
    case O_NET_LOG:
    case O_NET_RESOLVER: {
        /* The policy wants an absolute path; a flag may be relative. */
        const char *key = opt == O_NET_LOG ? "net_log" : "net_resolver";
        char cwd[4096];
        if (arg[0] == '/' || !getcwd(cwd, sizeof(cwd)))
            return wrap(key, json_string(arg));
        char *abs = NULL;
        if (asprintf(&abs, "%s/%s", cwd, arg) < 0)
            return wrap(key, json_string(arg));
        j = wrap(key, json_string(abs));
        free(abs);
        return j;
    }
    case O_TCP_PORTS: {
        j = wrap("tcp_ports", json_array());
        char *copy = strdup(arg), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save))
            json_array_append_new(json_object_get(j, "tcp_ports"),
                                  json_string(t));
        free(copy);
        return j;
    }
    case O_MEMORY: return wrap("limits", wrap("memory", json_string(arg)));
    case O_PIDS: return wrap("limits", wrap("pids", json_string(arg)));
    case O_CPUS: return wrap("limits", wrap("cpus", json_string(arg)));
    case O_TMP_SIZE: return wrap("limits", wrap("tmp_size", json_string(arg)));
    case O_NOFILE: return wrap("limits", wrap("nofile", json_string(arg)));
    case O_FSIZE: return wrap("limits", wrap("fsize", json_string(arg)));
    case O_DISK: return wrap("limits", wrap("disk", json_string(arg)));
    case O_INODES: return wrap("limits", wrap("inodes", json_string(arg)));
    case O_NO_LANDLOCK: return wrap("landlock", json_false());
    case O_NO_SECCOMP: return wrap("seccomp", json_false());
    case O_SECCOMP_PROFILE: return wrap("seccomp_profile", json_string(arg));
    case O_ALLOW_PTRACE: return wrap("allow_ptrace", json_true());
    case O_ALLOW_SYSTEM_RO: return wrap("allow_system_ro", json_true());
    case O_REQUIRE: {
        j = wrap("require", json_array());
        char *copy = strdup(arg), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            json_array_append_new(json_object_get(j, "require"), json_string(t));
        free(copy);
        return j;
    }
    case O_IMAGE: return wrap("image", json_string(arg));
    case O_ROOTFS: {
        char *abs = realpath(arg, NULL); /* the policy wants it absolute */
        j = wrap("rootfs", json_string(abs ? abs : arg));
        free(abs);
        return j;
    }
    case O_STATS: return wrap("stats", json_true());
    case O_STATS_JSON: return wrap("stats_json", json_string(arg));
    default:
        return json_object();
    }
}

static const char *flag_name(int opt)
{
    for (const struct option *o = long_opts; o->name; o++)
        if (o->val == opt)
            return o->name;
    return "?";
}

int cli_parse_policy(int argc, char **argv, sp_policy **ret_policy,
                     struct cli_opts *opts, bool finalize, sp_error *err)
{
    struct item {
        int opt;
        const char *arg;
    } *items = calloc((size_t)argc + 1, sizeof(*items));
    size_t n = 0;
    sp_policy *p = sp_policy_new();
    if (!items || !p) {
        free(items);
        sp_policy_free(p);
        snprintf(err->message, sizeof(err->message), "out of memory");
        err->kind = SP_ERR_SYSTEM;
        return -1;
    }
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+vqh", long_opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            err->kind = SP_ERR_USAGE;
            if (optopt && c == '?' && optopt != 0)
                snprintf(err->message, sizeof(err->message),
                         "unknown option '%s' (see --help)", bad);
            else
                snprintf(err->message, sizeof(err->message),
                         "option '%s' is unknown or needs a value (see --help)",
                         bad);
            goto fail;
        }
        if (c == 'v' || c == O_VERBOSE)
            opts->verbosity++;
        else if (c == 'q' || c == O_QUIET)
            opts->verbosity = -1;
        else if (c == 'h' || c == O_HELP)
            opts->help = true;
        else if ((c == O_REPORT || c == O_NO_REPORT) &&
                 strcmp(argv[0], "run") != 0) {
            err->kind = SP_ERR_USAGE;
            snprintf(err->message, sizeof(err->message),
                     "%s is for sandpit run (and sandpit exec: --report)",
                     c == O_REPORT ? "--report" : "--no-report");
            goto fail;
        } else if (c == O_REPORT)
            opts->report = optarg;
        else if (c == O_NO_REPORT)
            opts->no_report = true;
        else
            items[n++] = (struct item){c, optarg};
    }
    if (opts->help) {
        free(items);
        *ret_policy = p;
        return optind;
    }
    /* Profiles, then policy files, then the rest in order. */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            int o = items[i].opt;
            int which = o == O_PROFILE ? 0 : o == O_POLICY ? 1 : 2;
            if (which != pass)
                continue;
            int r;
            if (o == O_PROFILE) {
                r = sp_policy_apply_profile(p, items[i].arg, err);
            } else if (o == O_POLICY) {
                r = sp_policy_apply_file(p, items[i].arg, err);
            } else {
                json_t *j = flag_json(o, items[i].arg, err);
                if (!j)
                    goto fail;
                char *text = json_dumps(j, 0);
                json_decref(j);
                char origin[64];
                snprintf(origin, sizeof(origin), "--%s", flag_name(o));
                r = text ? sp_policy_apply_json_text(p, text, origin, err) : -1;
                free(text);
            }
            if (r < 0)
                goto fail;
        }
    }
    if (finalize && sp_policy_finalize(p, err) < 0)
        goto fail;
    free(items);
    *ret_policy = p;
    return optind;
fail:
    free(items);
    sp_policy_free(p);
    return -1;
}

int cli_exit_code(const sp_error *err)
{
    switch (err->kind) {
    case SP_ERR_NOTFOUND: return EXIT_SP_NOTFOUND;
    case SP_ERR_NOEXEC: return EXIT_SP_NOEXEC;
    case SP_ERR_USAGE:
    case SP_ERR_SYSTEM:
    case SP_ERR_REQUIRE:
    case SP_ERR_NONE:
    default: return EXIT_SP_FAILURE;
    }
}

int cli_pool_size(const char *cmd, const char *arg, unsigned *ret)
{
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(arg, &end, 10);
    if (!arg[0] || arg[0] == '-' || *end || errno || n < 1 || n > SP_POOL_MAX) {
        cli_error("%s: --pool: expected a number of workspaces from 1 to %d, "
                  "got '%s'", cmd, SP_POOL_MAX, arg);
        return -1;
    }
    *ret = (unsigned)n;
    return 0;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sandpit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "sandpit: %s%s\n", level == SP_LOG_WARN ? "warning: " : "",
            msg);
}

void cli_permute(int argc, char **argv, const char *const *with_value,
                 int npos)
{
    int out = 1; /* where the next positional goes */
    for (int i = 1; i < argc && npos > 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] == '-' && a[1]) {
            for (size_t k = 0; with_value && with_value[k]; k++)
                if (strcmp(a, with_value[k]) == 0) {
                    i++;
                    break;
                }
            continue;
        }
        char *p = argv[i];
        memmove(&argv[out + 1], &argv[out], (size_t)(i - out) * sizeof(*argv));
        argv[out++] = p;
        npos--;
    }
}

/* Does arg (an option, "--name" or "-x") take the next argument as its
 * value, as a policy flag or one of `extra`? "--name=value" takes none. */
static bool takes_value(const char *arg, const char *const *extra)
{
    for (size_t k = 0; extra && extra[k]; k++)
        if (strcmp(arg, extra[k]) == 0)
            return true;
    if (strncmp(arg, "--", 2) != 0 || strchr(arg, '='))
        return false;
    for (size_t k = 0; long_opts[k].name; k++)
        if (strcmp(arg + 2, long_opts[k].name) == 0)
            return long_opts[k].has_arg == required_argument;
    return false;
}

void cli_permute_policy(int argc, char **argv, const char *const *extra,
                        int npos)
{
    int out = 1; /* where the next positional goes */
    for (int i = 1; i < argc && npos > 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] == '-' && a[1]) {
            if (takes_value(a, extra))
                i++;
            continue;
        }
        char *p = argv[i];
        memmove(&argv[out + 1], &argv[out], (size_t)(i - out) * sizeof(*argv));
        argv[out++] = p;
        npos--;
    }
}
