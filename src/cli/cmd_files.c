/* cmd_files.c — files in a workspace (docs/files.md):
 *   sandpit files ls|cat|write|stat|mkdir|rm|mv NAME PATH ...
 * and the top-level shorthands that name no workspace verb:
 *   sandpit ls | cat | write | stat | patch | import | export | cp
 * (`sandpit rm NAME` removes a workspace; removing a file is always
 * `sandpit files rm NAME PATH`, as are mkdir and mv.)
 * Exit codes: 0; 1 when a patch did not apply (nothing changed); 125 with
 * one line on stderr when sandpit failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cli.h"
#include "cmd_files.h"
#include "sp_archive.h"
#include "util.h"
#include "workspace.h"

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

static int sp_error_set_cli(sp_error *err, int e, const char *what)
{
    snprintf(err->message, sizeof(err->message), "cp: %.900s: %s", what,
             strerror(e));
    err->kind = SP_ERR_SYSTEM;
    err->code = e;
    return -e;
}

/* --help was given: the command's usage goes to stdout, exit 0. */
static bool help_asked;

static int usage_error(const char *usage)
{
    if (help_asked) {
        printf("usage: %s\n", usage);
        return 0;
    }
    cli_error("usage: %s", usage);
    return EXIT_SP_FAILURE;
}

/* Flags and positionals, in any order ("--" ends flags). */
struct args {
    const char *pos[4];
    int n_pos;
    bool recursive, parents, json, dry_run, gzip, noreplace, nosync, diff;
    long long offset, length, mode, strip;
};

static int parse_num(const char *flag, const char *v, int base, long long min,
                     long long max, long long *ret)
{
    char *end = NULL;
    errno = 0;
    long long n = v ? strtoll(v, &end, base) : 0;
    if (!v || end == v || *end || errno || n < min || n > max) {
        cli_error("%s: expected a number from %lld to %lld, got '%s'", flag,
                  min, max, v ? v : "");
        return -1;
    }
    *ret = n;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->length = -1;
    a->mode = -1;
    a->strip = 1;
    bool flags = true;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (flags && strcmp(s, "--") == 0) {
            flags = false;
        } else if (flags &&
                   (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
            /* No positional count fits -1: every command then prints its
             * usage, through usage_error, to stdout. */
            help_asked = true;
            a->n_pos = -1;
            return 0;
        } else if (flags && (strcmp(s, "-R") == 0 || strcmp(s, "-r") == 0 ||
                             strcmp(s, "--recursive") == 0)) {
            a->recursive = true;
        } else if (flags && (strcmp(s, "-p") == 0 ||
                             strcmp(s, "--parents") == 0) &&
                   !(v && strcmp(argv[0], "patch") == 0)) {
            a->parents = true;
        } else if (flags && strcmp(s, "--json") == 0) {
            a->json = true;
        } else if (flags && strcmp(s, "--dry-run") == 0) {
            a->dry_run = true;
        } else if (flags && (strcmp(s, "--gzip") == 0 || strcmp(s, "-z") == 0)) {
            a->gzip = true;
        } else if (flags && strcmp(s, "--no-replace") == 0) {
            a->noreplace = true;
        } else if (flags && strcmp(s, "--no-sync") == 0) {
            a->nosync = true;
        } else if (flags && strcmp(s, "--diff") == 0) {
            a->diff = true;
        } else if (flags && strcmp(s, "--offset") == 0) {
            if (parse_num(s, v, 10, 0, 1LL << 53, &a->offset) < 0)
                return -1;
            i++;
        } else if (flags && strcmp(s, "--length") == 0) {
            if (parse_num(s, v, 10, 0, 1LL << 53, &a->length) < 0)
                return -1;
            i++;
        } else if (flags && strcmp(s, "--mode") == 0) {
            if (parse_num(s, v, 8, 0, 0777, &a->mode) < 0)
                return -1;
            i++;
        } else if (flags && strcmp(argv[0], "patch") == 0 &&
                   strncmp(s, "-p", 2) == 0) {
            const char *n = s[2] ? s + 2 : v;
            if (parse_num("-p", n, 10, 0, 64, &a->strip) < 0)
                return -1;
            if (!s[2])
                i++;
        } else if (flags && s[0] == '-' && s[1]) {
            cli_error("%s: unknown option %s", argv[0], s);
            return -1;
        } else if (a->n_pos < 4) {
            a->pos[a->n_pos++] = s;
        } else {
            cli_error("%s: too many arguments", argv[0]);
            return -1;
        }
    }
    return 0;
}

static sp_ws_client *connect_or_fail(const char *name, int *rc)
{
    sp_error err = {0};
    sp_ws_client *c = sp_ws_connect(name, &err);
    if (!c)
        *rc = fail(&err);
    return c;
}

/* The common start of a file command: its arguments parsed, min..max
 * operands (a usage error otherwise; --help prints the usage), and a
 * connection to the workspace named first. NULL with *rc the exit status
 * (0 after --help). */
static sp_ws_client *open_cmd(int argc, char **argv, struct args *a,
                              int min, int max, const char *usage,
                              int *rc)
{
    *rc = 0;
    if (parse_args(argc, argv, a) < 0) {
        *rc = EXIT_SP_FAILURE;
        return NULL;
    }
    if (a->n_pos < min || a->n_pos > max) {
        *rc = usage_error(usage);
        return NULL;
    }
    return connect_or_fail(a->pos[0], rc);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* All of fd, at most max bytes (one more is an error). */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(b);
                return -EFBIG;
            }
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(b);
            return -e;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n > max) {
            free(b);
            return -EFBIG;
        }
    }
    *ret = b;
    *ret_len = n;
    return 0;
}

/* ---- ls / stat ------------------------------------------------------------ */

static void print_entry(json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *target = json_string_value(json_object_get(e, "target"));
    json_int_t size = json_integer_value(json_object_get(e, "size"));
    json_int_t mode = json_integer_value(json_object_get(e, "mode"));
    time_t mt = (time_t)json_number_value(json_object_get(e, "mtime"));
    char ts[32] = "";
    struct tm tm;
    if (gmtime_r(&mt, &tm))
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char t = !type                          ? '?'
             : strcmp(type, "dir") == 0     ? 'd'
             : strcmp(type, "symlink") == 0 ? 'l'
             : strcmp(type, "file") == 0    ? '-'
                                            : type[0];
    /* Names and link targets come from the sandbox: no raw ESC, BEL or
     * newline reaches the terminal (escaped as diff does). */
    char *sp = sp_printable(path ? path : "?");
    char *st = target ? sp_printable(target) : NULL;
    if (t != 'd' && t != 'l' && t != '-' && t != '?' &&
        !(t >= 'a' && t <= 'z'))
        t = '?';
    printf("%c %04llo %12lld %s %s%s%s\n", t, (unsigned long long)mode,
           (long long)size, ts, sp ? sp : "?", target ? " -> " : "",
           target ? (st ? st : "?") : "");
    free(sp);
    free(st);
}

static int files_ls(int argc, char **argv)
{
    struct args a;
    int rc;
    sp_ws_client *c = open_cmd(argc, argv, &a, 1, 2,
                               "sandpit ls NAME [PATH] [-R] [--json]", &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    char *s = sp_ws_file_list(c, a.n_pos > 1 ? a.pos[1] : ".", a.recursive,
                              &err);
    sp_ws_client_close(c);
    if (!s)
        return fail(&err);
    if (a.json) {
        printf("%s\n", s);
    } else {
        json_t *arr = json_loads(s, 0, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) print_entry(e);
        json_decref(arr);
    }
    free(s);
    return 0;
}

static int files_stat(int argc, char **argv)
{
    struct args a;
    int rc;
    sp_ws_client *c = open_cmd(argc, argv, &a, 2, 2,
                               "sandpit stat NAME PATH [--json]", &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    char *s = sp_ws_file_stat(c, a.pos[1], &err);
    sp_ws_client_close(c);
    if (!s)
        return fail(&err);
    if (a.json) {
        printf("%s\n", s);
    } else {
        json_t *e = json_loads(s, 0, NULL);
        print_entry(e);
        json_decref(e);
    }
    free(s);
    return 0;
}

/* ---- cat / write ------------------------------------------------------------ */

static int cat_to(sp_ws_client *c, const char *path, long long offset,
                  long long length, int out, sp_error *err)
{
    long long done = 0;
    for (;;) {
        long long want = SP_WS_FILE_MAX_IO;
        if (length >= 0 && length - done < want)
            want = length - done;
        if (want == 0)
            return 0;
        void *data = NULL;
        size_t n = 0;
        uint64_t raw = 0; /* of the file: differs from n when redacted */
        int r = sp_ws_file_read_raw(c, path, (uint64_t)(offset + done), want,
                                    &data, &n, &raw, err);
        if (r < 0)
            return r;
        if (n && write_all(out, data, n) < 0) {
            free(data);
            return -errno;
        }
        free(data);
        done += (long long)raw;
        if ((long long)raw < want)
            return 0;
    }
}

static int files_cat(int argc, char **argv)
{
    struct args a;
    int rc;
    sp_ws_client *c = open_cmd(argc, argv, &a, 2, 2,
                               "sandpit cat NAME PATH [--offset N] [--length N]", &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    int r = cat_to(c, a.pos[1], a.offset, a.length, 1, &err);
    sp_ws_client_close(c);
    if (r < 0 && !err.message[0])
        cli_error("cannot write: %s", strerror(-r));
    else if (r < 0)
        return fail(&err);
    return r < 0 ? EXIT_SP_FAILURE : 0;
}

static int files_write(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return EXIT_SP_FAILURE;
    if (a.n_pos != 2)
        return usage_error(
            "sandpit write NAME PATH [--mode MODE] [-p] [--no-sync] < DATA");
    char *data = NULL;
    size_t len = 0;
    int r = read_all(0, SP_WS_FILE_MAX_IO, &data, &len);
    if (r < 0) {
        cli_error("cannot read standard input: %s%s", strerror(-r),
                  r == -EFBIG ? " (at most 64 MiB per write)" : "");
        return EXIT_SP_FAILURE;
    }
    int rc = 0;
    sp_ws_client *c = connect_or_fail(a.pos[0], &rc);
    if (!c) {
        free(data);
        return rc;
    }
    sp_error err = {0};
    r = sp_ws_file_write(c, a.pos[1], data, len, (int)a.mode,
                         (a.parents ? SP_WS_FILE_PARENTS : 0) |
                             (a.nosync ? SP_WS_FILE_NOSYNC : 0),
                         &err);
    sp_ws_client_close(c);
    free(data);
    return r < 0 ? fail(&err) : 0;
}

static int files_simple(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return EXIT_SP_FAILURE;
    const char *verb = argv[0];
    bool mv = strcmp(verb, "mv") == 0;
    if (a.n_pos != (mv ? 3 : 2)) {
        if (mv)
            return usage_error("sandpit files mv NAME FROM TO [--no-replace]");
        if (strcmp(verb, "mkdir") == 0)
            return usage_error("sandpit files mkdir NAME PATH [-p] [--mode M]");
        return usage_error("sandpit files rm NAME PATH [-r]");
    }
    int rc = 0;
    sp_ws_client *c = connect_or_fail(a.pos[0], &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    int r;
    if (mv)
        r = sp_ws_file_rename(c, a.pos[1], a.pos[2],
                              a.noreplace ? SP_WS_FILE_NOREPLACE : 0, &err);
    else if (strcmp(verb, "mkdir") == 0)
        r = sp_ws_file_mkdir(c, a.pos[1], (int)a.mode,
                             a.parents ? SP_WS_FILE_PARENTS : 0, &err);
    else
        r = sp_ws_file_remove(c, a.pos[1],
                              a.recursive ? SP_WS_FILE_RECURSIVE : 0, &err);
    sp_ws_client_close(c);
    return r < 0 ? fail(&err) : 0;
}

/* ---- patch ---------------------------------------------------------------- */

static void print_lines(const char *label, json_t *arr)
{
    size_t i;
    json_t *l;
    json_array_foreach(arr, i, l)
        fprintf(stderr, "  %s %s\n", label, json_string_value(l));
}

int cmd_patch(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return EXIT_SP_FAILURE;
    if (a.n_pos != 1)
        return usage_error("sandpit patch NAME [-p N] [--dry-run] [--json] "
                           "< DIFF");
    char *text = NULL;
    size_t len = 0;
    int r = read_all(0, 64u * 1024 * 1024, &text, &len);
    if (r < 0) {
        cli_error("cannot read the patch: %s", strerror(-r));
        return EXIT_SP_FAILURE;
    }
    int rc = 0;
    sp_ws_client *c = connect_or_fail(a.pos[0], &rc);
    if (!c) {
        free(text);
        return rc;
    }
    sp_error err = {0};
    char *rep = NULL;
    r = sp_ws_patch(c, text, len, (int)a.strip, a.dry_run, &rep, &err);
    sp_ws_client_close(c);
    free(text);
    if (r < 0)
        return fail(&err);
    json_t *j = rep ? json_loads(rep, 0, NULL) : NULL;
    if (a.json) {
        printf("%s\n", rep ? rep : "{}");
    } else if (j) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(j, "files"), i, f) {
            printf("%s%s %s (%lld hunks)\n", a.dry_run ? "would be " : "",
                   json_string_value(json_object_get(f, "status")),
                   json_string_value(json_object_get(f, "path")),
                   (long long)json_integer_value(json_object_get(f, "hunks")));
        }
        if (a.dry_run && r == 0)
            printf("dry run: nothing was written (without --dry-run the "
                   "patch applies as shown)\n");
        else if (a.dry_run)
            printf("dry run: nothing was written\n");
    }
    if (r == 1) {
        cli_error("%s", err.message);
        json_t *fl = j ? json_object_get(j, "failure") : NULL;
        if (json_is_object(fl) && !a.json) {
            fprintf(stderr, "  file %s, hunk %lld %s at line %lld%s\n",
                    json_string_value(json_object_get(fl, "path")),
                    (long long)json_integer_value(
                        json_object_get(fl, "hunk_index")),
                    json_string_value(json_object_get(fl, "hunk")),
                    (long long)json_integer_value(json_object_get(fl, "line")),
                    json_is_true(json_object_get(fl, "already_applied"))
                        ? " (already applied)"
                        : "");
            print_lines("expected:", json_object_get(fl, "expected"));
            print_lines("actual:  ", json_object_get(fl, "actual"));
        }
    }
    json_decref(j);
    free(rep);
    return r == 1 ? 1 : 0;
}

/* ---- import / export / cp ------------------------------------------------- */

int cmd_import(int argc, char **argv)
{
    struct args a;
    int rc;
    sp_ws_client *c = open_cmd(argc, argv, &a, 1, 2,
                               "sandpit import NAME [DEST] [--json] < ARCHIVE", &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    char *st = NULL;
    int r = sp_ws_import(c, a.n_pos > 1 ? a.pos[1] : ".", 0, &st, &err);
    sp_ws_client_close(c);
    if (r < 0)
        return fail(&err);
    if (a.json)
        printf("%s\n", st ? st : "{}");
    free(st);
    return 0;
}

/* export --diff: only what changed against the base (sp_ws_diff_json),
 * below /workspace, packed here from reads through the file API (so the
 * same containment applies), plus ".sandpit-diff.json" listing the added,
 * modified and deleted paths (relative to /workspace): a deletion cannot
 * be a tar member. */
static int export_diff(const char *name, const char *prefix, bool gzip)
{
    sp_error err = {0};
    char *dj = sp_ws_diff_json(name, &err);
    if (!dj)
        return fail(&err);
    json_t *d = json_loads(dj, 0, NULL);
    free(dj);
    if (!json_is_object(d) || json_is_true(json_object_get(d, "truncated"))) {
        json_decref(d);
        cli_error("export --diff: the diff of %s is %s", name,
                  d ? "truncated (too many changes)" : "unreadable");
        return EXIT_SP_FAILURE;
    }
    char pre[4200];
    snprintf(pre, sizeof(pre), "/workspace%s%s", *prefix ? "/" : "", prefix);
    size_t pl = strlen(pre);
    json_t *lists = json_object();
    static const char *const keys[] = {"added", "modified", "deleted"};
    for (size_t k = 0; k < 3; k++) {
        json_t *arr = json_array(), *v;
        size_t i;
        json_array_foreach(json_object_get(d, keys[k]), i, v) {
            const char *p = json_string_value(v);
            if (p && strncmp(p, pre, pl) == 0 && (p[pl] == '/' || !p[pl]) &&
                strlen(p) > 11)
                json_array_append_new(arr, json_string(p + 11));
        }
        json_object_set_new(lists, keys[k], arr);
    }
    json_decref(d);
    int rc = 0;
    sp_ws_client *c = connect_or_fail(name, &rc);
    if (!c) {
        json_decref(lists);
        return rc;
    }
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip)
        archive_write_add_filter_gzip(a);
    if (archive_write_open_fd(a, 1) != ARCHIVE_OK) {
        cli_error("export --diff: %s", archive_error_string(a));
        rc = EXIT_SP_FAILURE;
        goto out;
    }
    for (size_t k = 0; k < 2 && rc == 0; k++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(lists, keys[k]), i, v) {
            const char *p = json_string_value(v);
            char *st = sp_ws_file_stat(c, p, &err);
            json_t *sj = st ? json_loads(st, 0, NULL) : NULL;
            free(st);
            if (!sj) {
                rc = fail(&err);
                break;
            }
            const char *type = json_string_value(json_object_get(sj, "type"));
            struct archive_entry *e = archive_entry_new();
            archive_entry_set_pathname(e, p);
            archive_entry_set_perm(
                e, (mode_t)json_integer_value(json_object_get(sj, "mode")) &
                       0777);
            archive_entry_set_mtime(
                e, (time_t)json_number_value(json_object_get(sj, "mtime")), 0);
            void *data = NULL;
            size_t len = 0;
            bool skip = false;
            if (type && strcmp(type, "dir") == 0) {
                archive_entry_set_filetype(e, AE_IFDIR);
            } else if (type && strcmp(type, "symlink") == 0) {
                archive_entry_set_filetype(e, AE_IFLNK);
                archive_entry_set_symlink(
                    e, json_string_value(json_object_get(sj, "target")));
            } else if (type && strcmp(type, "file") == 0) {
                if (sp_ws_file_read(c, p, 0, -1, &data, &len, &err) < 0) {
                    rc = fail(&err);
                } else {
                    archive_entry_set_filetype(e, AE_IFREG);
                    archive_entry_set_size(e, (la_int64_t)len);
                }
            } else {
                skip = true; /* fifos, sockets, devices: as export does */
            }
            if (rc == 0 && !skip &&
                (archive_write_header(a, e) != ARCHIVE_OK ||
                 (len && archive_write_data(a, data, len) != (la_ssize_t)len))) {
                cli_error("export --diff: %s", archive_error_string(a));
                rc = EXIT_SP_FAILURE;
            }
            free(data);
            archive_entry_free(e);
            json_decref(sj);
            if (rc)
                break;
        }
    }
    if (rc == 0) {
        char *lj = json_dumps(lists, JSON_COMPACT | JSON_ENSURE_ASCII);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ".sandpit-diff.json");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, lj ? (la_int64_t)strlen(lj) : 0);
        if (!lj || archive_write_header(a, e) != ARCHIVE_OK ||
            archive_write_data(a, lj, strlen(lj)) != (la_ssize_t)strlen(lj)) {
            cli_error("export --diff: %s", archive_error_string(a));
            rc = EXIT_SP_FAILURE;
        }
        archive_entry_free(e);
        free(lj);
    }
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0) {
        cli_error("export --diff: %s", archive_error_string(a));
        rc = EXIT_SP_FAILURE;
    }
out:
    archive_write_free(a);
    sp_ws_client_close(c);
    json_decref(lists);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return EXIT_SP_FAILURE;
    if (a.n_pos < 1 || a.n_pos > 2)
        return usage_error(
            "sandpit export NAME [PATH] [--gzip] [--diff] > ARCHIVE");
    if (isatty(1)) {
        cli_error("export: standard output is a terminal; redirect it to a "
                  "file or pipe");
        return EXIT_SP_FAILURE;
    }
    if (a.diff) {
        char rel[4096] = "";
        if (a.n_pos > 1) {
            const char *p = a.pos[1];
            if (strncmp(p, "/workspace", 10) == 0 && (!p[10] || p[10] == '/'))
                p += 10;
            while (*p == '/')
                p++;
            snprintf(rel, sizeof(rel), "%s", strcmp(p, ".") ? p : "");
            size_t n = strlen(rel);
            while (n > 0 && rel[n - 1] == '/')
                rel[--n] = '\0';
        }
        return export_diff(a.pos[0], rel, a.gzip);
    }
    int rc = 0;
    sp_ws_client *c = connect_or_fail(a.pos[0], &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    int r = sp_ws_export(c, a.n_pos > 1 ? a.pos[1] : ".", 1, a.gzip, NULL,
                         &err);
    sp_ws_client_close(c);
    return r < 0 ? fail(&err) : 0;
}

/* "NAME:PATH" -> name (copied) and path; NULL when s names a host path. */
static const char *ws_part(const char *s, char *name, size_t len)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= len ||
        memchr(s, '/', (size_t)(colon - s)))
        return NULL;
    memcpy(name, s, (size_t)(colon - s));
    name[colon - s] = '\0';
    if (!sp_ws_name_valid(name))
        return NULL;
    return colon + 1;
}

static const char *base_name(const char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    const char *s = p;
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '/')
            s = p + i + 1;
    return s;
}

/* Host -> workspace. A file is written (into DEST/basename when DEST is
 * a directory there); a directory is packed here and imported there. */
static int cp_in(const char *host, const char *name, const char *dst)
{
    int rc = 0;
    struct stat sb;
    if (stat(host, &sb) < 0) {
        cli_error("cp: %s: %s", host, strerror(errno));
        return EXIT_SP_FAILURE;
    }
    sp_ws_client *c = connect_or_fail(name, &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    int r = 0;
    char *st = sp_ws_file_stat(c, *dst ? dst : ".", NULL);
    bool into_dir = st && strstr(st, "\"type\":\"dir\"");
    free(st);
    char target[8192];
    if (S_ISREG(sb.st_mode)) {
        snprintf(target, sizeof(target), "%s%s%s", *dst ? dst : ".",
                 into_dir ? "/" : "", into_dir ? base_name(host) : "");
        int fd = open(host, O_RDONLY | O_CLOEXEC);
        char *data = NULL;
        size_t len = 0;
        r = fd < 0 ? -errno : read_all(fd, SP_WS_FILE_MAX_IO, &data, &len);
        if (fd >= 0)
            close(fd);
        if (r < 0) {
            cli_error("cp: %s: %s", host, strerror(-r));
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
        r = sp_ws_file_write(c, target, data, len, (int)(sb.st_mode & 0777),
                             0, &err);
        free(data);
    } else if (S_ISDIR(sb.st_mode)) {
        /* Pack in a child (a pipe between it and our import). */
        int p[2];
        int dfd = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
            cli_error("cp: %s: %s", host, strerror(errno));
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            sp_error e2 = {0};
            int k = sp_archive_create(dfd, NULL, p[1], SP_ARCHIVE_TAR, NULL,
                                      NULL, &e2);
            if (k < 0)
                cli_error("cp: %s", e2.message);
            _exit(k < 0 ? 1 : 0);
        }
        close(p[1]);
        close(dfd);
        snprintf(target, sizeof(target), "%s%s%s", *dst ? dst : ".",
                 into_dir ? "/" : "", into_dir ? base_name(host) : "");
        r = sp_ws_import(c, target, p[0], NULL, &err);
        close(p[0]);
        int ws = 0;
        if (pid > 0)
            waitpid(pid, &ws, 0);
        if (r == 0 && (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)) {
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
    } else {
        cli_error("cp: %s: not a regular file or directory", host);
        sp_ws_client_close(c);
        return EXIT_SP_FAILURE;
    }
    sp_ws_client_close(c);
    return r < 0 ? fail(&err) : 0;
}

/* A workspace path as the export stores it: relative, no "./", no
 * trailing "/"; "" for the workspace itself. */
static void export_rel(const char *src, char *out, size_t len)
{
    const char *p = src;
    if (strncmp(p, "/workspace", 10) == 0 && (p[10] == '/' || !p[10]))
        p += 10;
    while (*p == '/' || (p[0] == '.' && p[1] == '/'))
        p += *p == '/' ? 1 : 2;
    if (strcmp(p, ".") == 0)
        p = "";
    snprintf(out, len, "%s", p);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

/* Workspace -> host. A file is read; a directory is exported, unpacked
 * with the same safe extraction as import (the agent's archive is as
 * hostile as any) into a staging directory beside the target, and the
 * copy renamed into place. */
static int cp_out(const char *name, const char *src, const char *host)
{
    int rc = 0;
    sp_ws_client *c = connect_or_fail(name, &rc);
    if (!c)
        return rc;
    sp_error err = {0};
    char *st = sp_ws_file_stat(c, *src ? src : ".", &err);
    if (!st) {
        sp_ws_client_close(c);
        return fail(&err);
    }
    bool is_dir = strstr(st, "\"type\":\"dir\"") != NULL;
    bool is_file = strstr(st, "\"type\":\"file\"") != NULL;
    free(st);
    struct stat hb;
    bool host_dir = stat(host, &hb) == 0 && S_ISDIR(hb.st_mode);
    char rel[4096];
    export_rel(src, rel, sizeof(rel));
    char target[8192];
    snprintf(target, sizeof(target), "%s%s%s", host, host_dir ? "/" : "",
             host_dir ? (*rel ? base_name(rel) : name) : "");
    int r = 0;
    if (is_file) {
        int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            cli_error("cp: %s: %s", target, strerror(errno));
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
        r = cat_to(c, src, 0, -1, fd, &err);
        close(fd);
    } else if (is_dir) {
        char staging[8300];
        snprintf(staging, sizeof(staging), "%s.sp-cp-XXXXXX", target);
        int p[2];
        if (!mkdtemp(staging) || pipe2(p, O_CLOEXEC) < 0) {
            cli_error("cp: %s: %s", target, strerror(errno));
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
        int dfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        /* The export pumps in a child; we unpack what it sends. */
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            sp_error e2 = {0};
            int k = sp_ws_export(c, *src ? src : ".", p[1], false, NULL, &e2);
            if (k < 0)
                cli_error("cp: %s", e2.message);
            _exit(k < 0 ? 1 : 0);
        }
        close(p[1]);
        struct sp_archive_stats as;
        r = dfd < 0 ? sp_error_set_cli(&err, errno, staging)
                    : sp_archive_extract(p[0], dfd, NULL, SP_ARCHIVE_UMASK,
                                         &as, &err);
        close(p[0]);
        int ws = 0;
        if (pid > 0)
            waitpid(pid, &ws, 0);
        if (r == 0 && (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0))
            r = -EIO;
        if (r == 0) {
            /* staging/REL is the copy ("" : staging itself). */
            if (*rel) {
                if (renameat(dfd, rel, AT_FDCWD, target) < 0)
                    r = sp_error_set_cli(&err, errno, target);
            } else {
                char keep[8300];
                snprintf(keep, sizeof(keep), "%s", staging);
                if (rename(keep, target) < 0)
                    r = sp_error_set_cli(&err, errno, target);
                else
                    staging[0] = '\0';
            }
        }
        if (dfd >= 0)
            close(dfd);
        if (staging[0]) {
            pid_t k = fork();
            if (k == 0) {
                execlp("rm", "rm", "-rf", "--", staging, (char *)NULL);
                _exit(127);
            }
            if (k > 0)
                waitpid(k, NULL, 0);
        }
        if (r == -EIO && !err.message[0]) {
            sp_ws_client_close(c);
            return EXIT_SP_FAILURE;
        }
    } else {
        cli_error("cp: %s:%s: not a regular file or directory", name, src);
        sp_ws_client_close(c);
        return EXIT_SP_FAILURE;
    }
    sp_ws_client_close(c);
    return r < 0 ? fail(&err) : 0;
}

int cmd_cp(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return EXIT_SP_FAILURE;
    if (a.n_pos != 2)
        return usage_error("sandpit cp SRC DST (one of them NAME:PATH)");
    char n1[64], n2[64];
    const char *p1 = ws_part(a.pos[0], n1, sizeof(n1));
    const char *p2 = ws_part(a.pos[1], n2, sizeof(n2));
    if (!!p1 == !!p2) {
        cli_error("cp: exactly one of SRC and DST must be NAME:PATH (a "
                  "workspace path); a host path with a colon can be written "
                  "./a:b");
        return EXIT_SP_FAILURE;
    }
    return p2 ? cp_in(a.pos[0], n2, p2) : cp_out(n1, p1, a.pos[1]);
}

/* ---- dispatch ------------------------------------------------------------- */

int cmd_ls(int argc, char **argv) { return files_ls(argc, argv); }
int cmd_cat(int argc, char **argv) { return files_cat(argc, argv); }
int cmd_write(int argc, char **argv) { return files_write(argc, argv); }
int cmd_stat(int argc, char **argv) { return files_stat(argc, argv); }

int cmd_files(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } sub[] = {
        {"ls", files_ls},       {"cat", files_cat},       {"write", files_write},
        {"stat", files_stat},   {"mkdir", files_simple},  {"rm", files_simple},
        {"mv", files_simple},
    };
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fputs("usage: sandpit files ls|cat|write|stat|mkdir|rm|mv NAME PATH "
              "...\n"
              "  ls NAME [PATH] [-R] [--json]\n"
              "  cat NAME PATH [--offset N] [--length N]\n"
              "  write NAME PATH [--mode MODE] [-p] [--no-sync] < DATA\n"
              "  stat NAME PATH [--json]\n"
              "  mkdir NAME PATH [-p] [--mode MODE]\n"
              "  rm NAME PATH [-r]\n"
              "  mv NAME FROM TO [--no-replace]\n",
              f);
        return argc < 2 ? EXIT_SP_FAILURE : 0;
    }
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
        if (strcmp(argv[1], sub[i].name) == 0)
            return sub[i].fn(argc - 1, argv + 1);
    cli_error("files: unknown subcommand '%s' (ls, cat, write, stat, mkdir, "
              "rm, mv)", argv[1]);
    return EXIT_SP_FAILURE;
}
