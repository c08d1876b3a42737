/* rpcops_fs.c — more file operations (docs/mcp.md "Files"): file_stat,
 * file_mkdir, file_move (the agent's file API as it is), file_glob and
 * file_search (bounded walks in the agent, files.h), and file_edit: an
 * exact search/replace with a uniqueness check, all or nothing. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "jsonrpc.h"
#include "rpcops.h"
#include "ws_shell.h"

/* Lines named in file_edit's "occurs N times" error. */
#define EDIT_LINES_SHOWN 10

static json_t *call(const char *ws, const char *method, json_t *p,
                    sp_error *err)
{
    json_t *r = NULL;
    if (sp_ws_call(ws, method, p, &r, err) < 0) {
        /* The agent refused the arguments: a bad request (-32602). */
        if (err->kind == SP_ERR_USAGE && err->code == 0)
            err->code = EINVAL;
        return NULL;
    }
    return r;
}

json_t *sp_ops_file_stat(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0)
        return NULL;
    return call(ws, "file.stat", json_pack("{s:s}", "path", path), err);
}

json_t *sp_ops_file_mkdir(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "parents", "mode",
                                       NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL;
    bool parents = true;
    double mode = 0755;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_bool_arg(a, "parents", &parents, err) < 0 ||
        sp_ops_int_arg(a, "mode", 0, 07777, &mode, err) < 0)
        return NULL;
    json_t *r = call(ws, "file.mkdir",
                     json_pack("{s:s,s:i,s:b}", "path", path, "mode",
                               (int)mode, "parents", parents),
                     err);
    json_decref(r);
    return r ? json_pack("{s:s,s:b}", "path", path, "created", 1) : NULL;
}

json_t *sp_ops_file_move(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "from", "to", "overwrite",
                                       NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *from = NULL, *to = NULL;
    bool over = false;
    if (!ws || sp_ops_str_arg(a, "from", true, SP_MAX_PATH, &from, err) < 0 ||
        sp_ops_str_arg(a, "to", true, SP_MAX_PATH, &to, err) < 0 ||
        sp_ops_bool_arg(a, "overwrite", &over, err) < 0)
        return NULL;
    json_t *r = call(ws, "file.rename",
                     json_pack("{s:s,s:s,s:b}", "from", from, "to", to,
                               "noreplace", !over),
                     err);
    if (!r && !over && strstr(err->message, "exists"))
        sp_ops_bad(err, "%s exists: nothing moved (pass overwrite: true to "
                 "replace it)", to);
    json_decref(r);
    return r ? json_pack("{s:s,s:s,s:b}", "from", from, "to", to, "moved", 1)
             : NULL;
}

json_t *sp_ops_file_glob(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "pattern", "path",
                                       "max_results", "dirs", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *pat = NULL, *path = ".";
    double max = SP_FILE_SEARCH_DEFAULT;
    bool dirs = false;
    if (!ws || sp_ops_str_arg(a, "pattern", true, SP_FILE_PATTERN_MAX, &pat, err) < 0 ||
        sp_ops_str_arg(a, "path", false, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_int_arg(a, "max_results", 1, SP_FILE_SEARCH_MAX, &max, err) < 0 ||
        sp_ops_bool_arg(a, "dirs", &dirs, err) < 0)
        return NULL;
    return call(ws, "file.glob",
                json_pack("{s:s,s:s,s:i,s:b}", "path", path, "pattern", pat,
                          "max", (int)max, "dirs", dirs),
                err);
}

json_t *sp_ops_file_search(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "pattern", "path", "glob",
                                       "literal", "ignore_case", "max_results",
                                       NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *pat = NULL, *path = ".",
               *glob = NULL;
    double max = SP_FILE_SEARCH_DEFAULT;
    bool lit = false, icase = false;
    if (!ws || sp_ops_str_arg(a, "pattern", true, SP_FILE_PATTERN_MAX, &pat, err) < 0 ||
        sp_ops_str_arg(a, "path", false, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_str_arg(a, "glob", false, SP_FILE_PATTERN_MAX, &glob, err) < 0 ||
        sp_ops_bool_arg(a, "literal", &lit, err) < 0 ||
        sp_ops_bool_arg(a, "ignore_case", &icase, err) < 0 ||
        sp_ops_int_arg(a, "max_results", 1, SP_FILE_SEARCH_MAX, &max, err) < 0)
        return NULL;
    json_t *p = json_pack("{s:s,s:s,s:i,s:b,s:b}", "path", path, "pattern",
                          pat, "max", (int)max, "literal", lit, "ignore_case",
                          icase);
    if (glob)
        json_object_set_new(p, "glob", json_string(glob));
    return call(ws, "file.search", p, err);
}

/* The 1-based line of offset off in buf. */
static size_t line_of(const char *buf, size_t off)
{
    size_t n = 1;
    for (size_t i = 0; i < off; i++)
        n += buf[i] == '\n';
    return n;
}

json_t *sp_ops_file_edit(struct sp_ops *o, json_t *a, sp_error *err)
{
    static const char *const keys[] = {"workspace", "path", "old_string",
                                       "new_string", "replace_all", NULL};
    const char *ws = sp_ops_ws_of(o, a, keys, err), *path = NULL, *old = NULL,
               *new_ = NULL;
    bool all = false;
    if (!ws || sp_ops_str_arg(a, "path", true, SP_MAX_PATH, &path, err) < 0 ||
        sp_ops_str_arg(a, "old_string", true, SP_FILE_MAX_IO, &old, err) < 0 ||
        sp_ops_str_arg(a, "new_string", true, SP_FILE_MAX_IO, &new_, err) < 0 ||
        sp_ops_bool_arg(a, "replace_all", &all, err) < 0)
        return NULL;
    size_t ol = strlen(old), nl = strlen(new_);
    if (ol == 0) {
        sp_ops_bad(err, "old_string is empty: give the exact text to replace (to "
                 "create a file, use file_write)");
        return NULL;
    }
    if (strcmp(old, new_) == 0) {
        sp_ops_bad(err, "old_string and new_string are the same: nothing to do");
        return NULL;
    }
    sp_ws_client *c = sp_ws_connect(ws, err);
    if (!c)
        return NULL;
    json_t *res = NULL;
    void *data = NULL;
    size_t len = 0;
    char *st0 = NULL, *st1 = NULL, *out = NULL;
    st0 = sp_ws_file_stat(c, path, err);
    if (!st0 || sp_ws_file_read(c, path, 0, -1, &data, &len, err) < 0)
        goto done;
    const char *buf = data ? data : "";
    if (memmem(buf, len, "[REDACTED:", 10)) {
        sp_ops_bad(err, "%s holds a secret's value (reads show it redacted), so it "
                 "is not edited by search and replace: use patch_apply "
                 "with context lines that do not hold it", path);
        goto done;
    }
    /* Every occurrence (not overlapping), and the lines of the first. */
    size_t n = 0, lines[EDIT_LINES_SHOWN];
    for (const char *p = buf; (size_t)(p - buf) + ol <= len;) {
        const char *q = memmem(p, len - (size_t)(p - buf), old, ol);
        if (!q)
            break;
        if (n < EDIT_LINES_SHOWN)
            lines[n] = line_of(buf, (size_t)(q - buf));
        n++;
        p = q + ol;
    }
    if (n == 0) {
        sp_ops_bad(err, "old_string was not found in %s: nothing changed (it must "
                 "match exactly, whitespace and indentation included; "
                 "file_read shows the text)", path);
        goto done;
    }
    if (n > 1 && !all) {
        char at[200] = "";
        size_t k = 0;
        for (size_t i = 0; i < n && i < EDIT_LINES_SHOWN; i++)
            k += (size_t)snprintf(at + k, sizeof(at) - k, "%s%zu",
                                  i ? ", " : "", lines[i]) < sizeof(at) - k
                     ? strlen(at + k)
                     : 0;
        sp_ops_bad(err, "old_string occurs %zu times in %s (lines %s%s): nothing "
                 "changed; include more surrounding text so that it is "
                 "unique, or pass replace_all: true", n, path, at,
            n > EDIT_LINES_SHOWN ? ", ..." : "");
        goto done;
    }
    size_t outlen = len - n * ol + n * nl;
    if (outlen > SP_FILE_MAX_IO) {
        sp_ops_bad(err, "%s would be %zu bytes, more than the %d one write may "
                 "carry: nothing changed", path, outlen, SP_FILE_MAX_IO);
        goto done;
    }
    out = malloc(outlen + 1);
    if (!out) {
        sp_error_set(err, ENOMEM, "file_edit");
        goto done;
    }
    size_t w = 0;
    for (const char *p = buf; p < buf + len;) {
        const char *q = (size_t)(buf + len - p) >= ol
                            ? memmem(p, (size_t)(buf + len - p), old, ol)
                            : NULL;
        size_t keep = q ? (size_t)(q - p) : (size_t)(buf + len - p);
        memcpy(out + w, p, keep);
        w += keep;
        if (!q)
            break;
        memcpy(out + w, new_, nl);
        w += nl;
        p = q + ol;
    }
    /* All or nothing: written only when the file is still the one read
     * (same size and mtime), atomically (a temp file renamed over it). */
    st1 = sp_ws_file_stat(c, path, err);
    if (!st1)
        goto done;
    json_t *j0 = json_loads(st0, 0, NULL), *j1 = json_loads(st1, 0, NULL);
    bool same = j0 && j1 &&
                json_equal(json_object_get(j0, "size"), json_object_get(j1, "size")) &&
                json_equal(json_object_get(j0, "mtime"), json_object_get(j1, "mtime"));
    json_decref(j0);
    json_decref(j1);
    if (!same) {
        sp_error_setk(err, SP_ERR_USAGE, EAGAIN,
                      "%s changed while it was being edited: nothing "
                      "written; read it again and retry", path);
        goto done;
    }
    if (sp_ws_file_write(c, path, out, w, -1, 0, err) < 0)
        goto done;
    res = json_pack("{s:s,s:I,s:I,s:I}", "path", path, "replacements",
                    (json_int_t)n, "first_line", (json_int_t)lines[0], "size",
                    (json_int_t)w);
done:
    sp_ws_client_close(c);
    free(data);
    free(st0);
    free(st1);
    free(out);
    return res;
}
