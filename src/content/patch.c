/* patch.c — the unified-diff engine: a bounded parser for diff -u and git
 * diff output, and an all-or-nothing applier that resolves every path
 * beneath a directory fd with openat2 and never follows a symlink.
 * docs/patch.md states the format support, guarantees and bounds. */
#include "patch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bounds.h"
#include "error.h"
#include "jsonrpc.h" /* sp_jrpc_string_lossy */
#include "util.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* Largest number in a hunk header: far above SP_PATCH_MAX_FILE_LINES, far
 * below any overflow in the arithmetic done on it. */
#define MAX_HUNK_NUMBER 1000000000ull
#define MAX_STRIP 64
#define NAME_MAX_LEN 255

/* A failure of the patch or the tree (not of the system): the message is
 * complete as written, so no strerror text is appended; the return value
 * and err->code still carry the errno for the caller to act on. */
__attribute__((format(printf, 3, 4))) static int uerr(sp_error *err, int errnum,
                                                      const char *fmt, ...)
{
    if (err) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        err->kind = SP_ERR_USAGE;
        err->code = errnum;
        errno = saved;
    }
    return -errnum;
}

/* ---- the parsed patch ------------------------------------------------- */

struct pline {
    uint32_t off;       /* content (after the prefix char) in p->text */
    uint32_t len;
    char kind;          /* ' ', '-', '+' */
    bool nl;            /* false after "\ No newline at end of file" */
};

struct phunk {
    uint64_t old_start, old_count, new_start, new_count;
    char *header;       /* the @@ line, NUL-terminated */
    size_t first;       /* index into p->lines */
    size_t n;
};

enum fkind { F_MODIFY, F_CREATE, F_DELETE, F_RENAME, F_COPY };

struct pfile {
    char *old_path;     /* NULL for /dev/null */
    char *new_path;
    enum fkind kind;
    unsigned old_mode, new_mode; /* from git headers, 0 if absent */
    struct phunk *hunks;
    size_t n_hunks, cap_hunks;
    size_t lineno;      /* patch line where the file starts */
};

struct sp_patch {
    char *text;
    size_t len;
    struct pline *lines;
    size_t n_lines, cap_lines;
    struct pfile *files;
    size_t n_files, cap_files;
};

static void pfile_clear(struct pfile *f)
{
    free(f->old_path);
    free(f->new_path);
    for (size_t i = 0; i < f->n_hunks; i++)
        free(f->hunks[i].header);
    free(f->hunks);
}

void sp_patch_free(struct sp_patch *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_files; i++)
        pfile_clear(&p->files[i]);
    free(p->files);
    free(p->lines);
    free(p->text);
    free(p);
}

size_t sp_patch_n_files(const struct sp_patch *p)
{
    return p ? p->n_files : 0;
}

/* Grow *arr (of *cap elements of size sz) to hold at least need. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *n = reallocarray(*arr, ncap, sz);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

/* ---- line cursor ------------------------------------------------------ */

struct cur {
    const char *text;
    size_t len;
    size_t pos;
    size_t lineno;      /* 1-based number of the line at pos */
};

struct line {
    const char *s;
    size_t len;         /* without the '\n' */
    bool nl;
};

static bool peek(const struct cur *c, struct line *l)
{
    if (c->pos >= c->len)
        return false;
    const char *s = c->text + c->pos;
    const char *e = memchr(s, '\n', c->len - c->pos);
    l->s = s;
    l->len = e ? (size_t)(e - s) : c->len - c->pos;
    l->nl = e != NULL;
    return true;
}

static void advance(struct cur *c, const struct line *l)
{
    c->pos += l->len + (l->nl ? 1 : 0);
    c->lineno++;
}

static bool starts(const struct line *l, const char *prefix)
{
    size_t n = strlen(prefix);
    return l->len >= n && memcmp(l->s, prefix, n) == 0;
}

/* A header line without a trailing '\r' (a patch that went through a
 * CRLF transport), as a C string; NUL bytes in a header are refused. */
static int header_str(const struct line *l, size_t skip, char **ret)
{
    size_t n = l->len;
    if (n && l->s[n - 1] == '\r')
        n--;
    if (skip > n)
        skip = n;
    if (memchr(l->s + skip, '\0', n - skip))
        return -EINVAL;
    char *s = strndup(l->s + skip, n - skip);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

/* ---- names ------------------------------------------------------------ */

/* Undo git's C-style quoting of a name starting at s[0] == '"'. Sets
 * *ret_end to the byte after the closing quote. NUL (\000) is refused. */
static int unquote(const char *s, const char **ret_end, char **ret)
{
    size_t cap = strlen(s) + 1;
    _cleanup_free_ char *out = malloc(cap);
    if (!out)
        return -ENOMEM;
    size_t n = 0;
    const char *p = s + 1;
    for (;;) {
        char ch = *p++;
        if (ch == '\0')
            return -EINVAL; /* no closing quote */
        if (ch == '"')
            break;
        if (ch != '\\') {
            out[n++] = ch;
            continue;
        }
        ch = *p++;
        switch (ch) {
        case 'a': out[n++] = '\a'; break;
        case 'b': out[n++] = '\b'; break;
        case 't': out[n++] = '\t'; break;
        case 'n': out[n++] = '\n'; break;
        case 'v': out[n++] = '\v'; break;
        case 'f': out[n++] = '\f'; break;
        case 'r': out[n++] = '\r'; break;
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '0': case '1': case '2': case '3': {
            unsigned v = (unsigned)(ch - '0');
            for (int i = 0; i < 2; i++) {
                if (*p < '0' || *p > '7')
                    return -EINVAL;
                v = v * 8 + (unsigned)(*p++ - '0');
            }
            if (v == 0)
                return -EINVAL;
            out[n++] = (char)v;
            break;
        }
        default:
            return -EINVAL;
        }
    }
    out[n] = '\0';
    *ret_end = p;
    *ret = TAKE_PTR(out);
    return 0;
}

/* Drop `strip` leading components ("a/b/c", 1 -> "b/c"); runs of '/'
 * count as one separator, as in patch(1). NULL when there are too few. */
static const char *strip_components(const char *name, int strip)
{
    const char *p = name;
    for (int i = 0; i < strip; i++) {
        const char *slash = strchr(p, '/');
        if (!slash)
            return NULL;
        while (*slash == '/')
            slash++;
        p = slash;
    }
    return p;
}

/* A target path must be relative and normalized: no "..", ".", empty
 * component, trailing '/', over-long name. Returns 0 or -EINVAL. */
static int check_path(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len >= SP_MAX_PATH || path[0] == '/')
        return -EINVAL;
    const char *c = path;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || n > NAME_MAX_LEN)
            return -EINVAL;
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return -EINVAL;
        if (!slash)
            break;
        c = slash + 1;
    }
    return 0;
}

/* Parse the name of a ---/+++ line (after the 4-byte prefix). The name
 * ends at a tab (diff -u puts a timestamp after it; git a bare tab when
 * the name has a space); a quoted name ends at its quote. *ret is NULL
 * for /dev/null. *ret_epoch says whether the timestamp is the epoch that
 * diff -N prints for an absent file. */
static int parse_header_name(const char *s, int strip, char **ret,
                             bool *ret_epoch)
{
    _cleanup_free_ char *raw = NULL;
    const char *rest = NULL;
    if (s[0] == '"') {
        int r = unquote(s, &rest, &raw);
        if (r < 0)
            return r;
    } else {
        const char *tab = strchr(s, '\t');
        raw = tab ? strndup(s, (size_t)(tab - s)) : strdup(s);
        if (!raw)
            return -ENOMEM;
        rest = tab ? tab : s + strlen(s);
    }
    if (ret_epoch) {
        while (*rest == '\t' || *rest == ' ')
            rest++;
        *ret_epoch = strncmp(rest, "1970-01-01 ", 11) == 0 ||
                     strncmp(rest, "1969-12-31 ", 11) == 0;
    }
    if (strcmp(raw, "/dev/null") == 0) {
        *ret = NULL;
        return 0;
    }
    const char *stripped = strip_components(raw, strip);
    if (!stripped || !*stripped)
        return -EINVAL;
    char *n = strdup(stripped);
    if (!n)
        return -ENOMEM;
    *ret = n;
    return 0;
}

/* "diff --git a/x b/y": the names, when they can be told apart. Quoted
 * names are unambiguous; unquoted ones with spaces are split where both
 * halves name the same file after stripping (as git does). A name that
 * cannot be found stays NULL; later headers may supply it. */
static int parse_git_names(const char *s, int strip, char **ret_a,
                           char **ret_b)
{
    _cleanup_free_ char *a = NULL, *b = NULL;
    if (s[0] == '"') {
        const char *end = NULL;
        int r = unquote(s, &end, &a);
        if (r < 0)
            return r;
        if (*end != ' ')
            return -EINVAL;
        end++;
        if (*end == '"') {
            const char *e2 = NULL;
            r = unquote(end, &e2, &b);
            if (r < 0)
                return r;
        } else {
            b = strdup(end);
            if (!b)
                return -ENOMEM;
        }
    } else {
        const char *q = strstr(s, " \"");
        if (q) {
            a = strndup(s, (size_t)(q - s));
            const char *e2 = NULL;
            if (!a)
                return -ENOMEM;
            int r = unquote(q + 1, &e2, &b);
            if (r < 0)
                return r;
        } else {
            size_t len = strlen(s);
            for (size_t i = 0; i < len; i++) {
                if (s[i] != ' ')
                    continue;
                _cleanup_free_ char *x = strndup(s, i);
                if (!x)
                    return -ENOMEM;
                const char *sx = strip_components(x, strip);
                const char *sy = strip_components(s + i + 1, strip);
                if (sx && sy && *sx && strcmp(sx, sy) == 0) {
                    a = TAKE_PTR(x);
                    b = strdup(s + i + 1);
                    if (!b)
                        return -ENOMEM;
                    break;
                }
            }
        }
    }
    if (a && b) {
        const char *sa = strip_components(a, strip);
        const char *sb = strip_components(b, strip);
        if (!sa || !sb || !*sa || !*sb)
            return -EINVAL;
        *ret_a = strdup(sa);
        *ret_b = strdup(sb);
        if (!*ret_a || !*ret_b) {
            free(*ret_a);
            free(*ret_b);
            *ret_a = *ret_b = NULL;
            return -ENOMEM;
        }
    }
    return 0;
}

/* "rename from x" and kin: one name, quoted or not, stripped of strip-1
 * components as git apply does (these names carry no a/ b/ prefix). */
static int parse_plain_name(const char *s, int strip, char **ret)
{
    _cleanup_free_ char *raw = NULL;
    if (s[0] == '"') {
        const char *end = NULL;
        int r = unquote(s, &end, &raw);
        if (r < 0)
            return r;
    } else {
        raw = strdup(s);
        if (!raw)
            return -ENOMEM;
    }
    const char *st = strip_components(raw, strip > 0 ? strip - 1 : 0);
    if (!st || !*st)
        return -EINVAL;
    char *n = strdup(st);
    if (!n)
        return -ENOMEM;
    *ret = n;
    return 0;
}

/* An octal git mode: regular files only (symlinks and submodules have no
 * meaning for this engine and are refused). */
static int parse_mode(const char *s, unsigned *ret)
{
    unsigned v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '7' || v > 0177777)
            return -EINVAL;
        v = v * 8 + (unsigned)(*s - '0');
    }
    if ((v & 0170000) != 0100000)
        return -EOPNOTSUPP;
    *ret = v;
    return 0;
}

/* ---- the parser ------------------------------------------------------- */

struct parser {
    struct sp_patch *p;
    struct cur c;
    int strip;
    bool after_hunk;    /* the last thing parsed was a hunk */
    size_t n_hunks;     /* in the whole patch */
    sp_error *err;
};

__attribute__((format(printf, 3, 4))) static int
perr(struct parser *ps, int errnum, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (errnum == ENOMEM)
        return sp_error_set(ps->err, ENOMEM, "patch line %zu: %s",
                            ps->c.lineno, msg);
    return uerr(ps->err, errnum, "patch line %zu: %s", ps->c.lineno, msg);
}

static uint64_t parse_num(const char **s, bool *ok)
{
    uint64_t v = 0;
    const char *p = *s;
    if (*p < '0' || *p > '9')
        *ok = false;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > MAX_HUNK_NUMBER) {
            *ok = false;
            return 0;
        }
        p++;
    }
    *s = p;
    return v;
}

/* "start[,count]" of a hunk header (count 1 when absent). */
static void parse_range(const char **s, uint64_t *start, uint64_t *count,
                        bool *ok)
{
    *start = parse_num(s, ok);
    *count = 1;
    if (**s == ',') {
        (*s)++;
        *count = parse_num(s, ok);
    }
}

/* "@@ -a[,b] +c[,d] @@[ section]" */
static bool parse_hunk_header(const char *s, struct phunk *h)
{
    bool ok = true;
    if (strncmp(s, "@@ -", 4) != 0)
        return false;
    s += 4;
    parse_range(&s, &h->old_start, &h->old_count, &ok);
    if (strncmp(s, " +", 2) != 0)
        return false;
    s += 2;
    parse_range(&s, &h->new_start, &h->new_count, &ok);
    if (strncmp(s, " @@", 3) != 0)
        return false;
    s += 3;
    if (*s && *s != ' ' && *s != '\t')
        return false;
    /* Line 0 only makes sense for an empty side. */
    if (ok && ((h->old_start == 0 && h->old_count != 0) ||
               (h->new_start == 0 && h->new_count != 0)))
        ok = false;
    return ok;
}

static int parse_hunk(struct parser *ps, struct pfile *f, const char *name)
{
    struct line l = {0};
    peek(&ps->c, &l);
    if (f->n_hunks >= SP_PATCH_MAX_HUNKS)
        return perr(ps, EFBIG, "%s has more than %d hunks", name,
                    SP_PATCH_MAX_HUNKS);
    if (ps->n_hunks >= SP_PATCH_MAX_TOTAL_HUNKS)
        return perr(ps, EFBIG, "patch has more than %d hunks",
                    SP_PATCH_MAX_TOTAL_HUNKS);
    ps->n_hunks++;
    if (grow((void **)&f->hunks, &f->cap_hunks, f->n_hunks + 1,
             sizeof(*f->hunks)) < 0)
        return perr(ps, ENOMEM, "out of memory");
    struct phunk *h = &f->hunks[f->n_hunks];
    *h = (struct phunk){0};
    int r = header_str(&l, 0, &h->header);
    if (r < 0)
        return perr(ps, -r, "bad hunk header for %s", name);
    f->n_hunks++;
    if (!parse_hunk_header(h->header, h))
        return perr(ps, EINVAL, "malformed hunk header for %s: %.80s", name,
                    h->header);
    advance(&ps->c, &l);

    struct sp_patch *p = ps->p;
    h->first = p->n_lines;
    uint64_t old_rem = h->old_count, new_rem = h->new_count;
    bool old_closed = false, new_closed = false; /* saw a no-newline line */
    for (;;) {
        bool more = old_rem > 0 || new_rem > 0;
        if (!peek(&ps->c, &l)) {
            if (more)
                return perr(ps, EINVAL, "hunk %s of %s ends early", h->header,
                            name);
            break;
        }
        char kind = l.len ? l.s[0] : ' ';
        if (kind == '\\') {
            /* "\ No newline at end of file" (the text is localized). */
            if (p->n_lines == h->first)
                return perr(ps, EINVAL, "no-newline marker before any line "
                            "in a hunk of %s", name);
            struct pline *last = &p->lines[p->n_lines - 1];
            if (!last->nl)
                return perr(ps, EINVAL, "repeated no-newline marker in %s",
                            name);
            last->nl = false;
            if (last->kind != '+')
                old_closed = true;
            if (last->kind != '-')
                new_closed = true;
            advance(&ps->c, &l);
            continue;
        }
        if (!more)
            break;
        if (l.len > (size_t)SP_PATCH_MAX_LINE + 2)
            return perr(ps, EFBIG, "line longer than %u bytes in %s",
                        SP_PATCH_MAX_LINE, name);
        if (kind == ' ' || kind == '-') {
            if (old_rem == 0)
                return perr(ps, EINVAL, "hunk %s of %s has more old lines "
                            "than it says", h->header, name);
            if (old_closed)
                return perr(ps, EINVAL, "line after the last line of "
                            "the old %s", name);
            old_rem--;
        }
        if (kind == ' ' || kind == '+') {
            if (new_rem == 0)
                return perr(ps, EINVAL, "hunk %s of %s has more new lines "
                            "than it says", h->header, name);
            if (new_closed)
                return perr(ps, EINVAL, "line after the last line of "
                            "the new %s", name);
            new_rem--;
        }
        if (kind != ' ' && kind != '-' && kind != '+')
            return perr(ps, EINVAL, "unexpected line in hunk %s of %s",
                        h->header, name);
        if (p->n_lines >= SP_PATCH_MAX_LINES)
            return perr(ps, EFBIG, "patch has more than %u lines in hunks",
                        SP_PATCH_MAX_LINES);
        if (grow((void **)&p->lines, &p->cap_lines, p->n_lines + 1,
                 sizeof(*p->lines)) < 0)
            return perr(ps, ENOMEM, "out of memory");
        size_t off = (size_t)(l.s - p->text) + (l.len ? 1 : 0);
        p->lines[p->n_lines++] = (struct pline){
            .off = (uint32_t)off,
            .len = (uint32_t)(l.len ? l.len - 1 : 0),
            .kind = kind,
            .nl = true,
        };
        h->n++;
        advance(&ps->c, &l);
    }
    return 0;
}

static int parse_hunks(struct parser *ps, struct pfile *f, const char *name)
{
    struct line l = {0};
    ps->after_hunk = false;
    while (peek(&ps->c, &l) && starts(&l, "@@ ")) {
        int r = parse_hunk(ps, f, name);
        if (r < 0)
            return r;
        ps->after_hunk = true;
    }
    return 0;
}

static const char *fname(const struct pfile *f)
{
    return f->new_path ? f->new_path : f->old_path ? f->old_path : "?";
}

/* Is this ---/+++ pair the start of a file? */
static bool at_file_header(const struct cur *c)
{
    struct line l = {0};
    if (!peek(c, &l) || !starts(&l, "--- "))
        return false;
    struct cur n = *c;
    advance(&n, &l);
    return peek(&n, &l) && starts(&l, "+++ ");
}

/* Read "--- x" "+++ y" into the file's names. */
static int parse_minus_plus(struct parser *ps, struct pfile *f, bool *ret_old_epoch,
                            bool *ret_new_epoch, bool *ret_old_null,
                            bool *ret_new_null)
{
    struct line l = {0};
    _cleanup_free_ char *h = NULL;
    peek(&ps->c, &l);
    int r = header_str(&l, 4, &h);
    if (r < 0)
        return perr(ps, -r, "bad --- header");
    _cleanup_free_ char *o = NULL, *n = NULL;
    r = parse_header_name(h, ps->strip, &o, ret_old_epoch);
    if (r < 0)
        return perr(ps, -r, "bad file name in --- header: %.200s", h);
    advance(&ps->c, &l);
    free(h);
    h = NULL;
    peek(&ps->c, &l);
    r = header_str(&l, 4, &h);
    if (r < 0)
        return perr(ps, -r, "bad +++ header");
    r = parse_header_name(h, ps->strip, &n, ret_new_epoch);
    if (r < 0)
        return perr(ps, -r, "bad file name in +++ header: %.200s", h);
    advance(&ps->c, &l);
    *ret_old_null = o == NULL;
    *ret_new_null = n == NULL;
    if (!o && !n)
        return perr(ps, EINVAL, "both --- and +++ are /dev/null");
    free(f->old_path);
    free(f->new_path);
    f->old_path = TAKE_PTR(o);
    f->new_path = TAKE_PTR(n);
    return 0;
}

static int new_file(struct parser *ps, struct pfile **ret)
{
    struct sp_patch *p = ps->p;
    if (p->n_files >= SP_PATCH_MAX_FILES)
        return perr(ps, EFBIG, "patch touches more than %d files",
                    SP_PATCH_MAX_FILES);
    if (grow((void **)&p->files, &p->cap_files, p->n_files + 1,
             sizeof(*p->files)) < 0)
        return perr(ps, ENOMEM, "out of memory");
    struct pfile *f = &p->files[p->n_files++];
    *f = (struct pfile){.lineno = ps->c.lineno};
    *ret = f;
    return 0;
}

static bool is_single_empty_side(const struct pfile *f, bool old_side)
{
    if (f->n_hunks != 1)
        return false;
    const struct phunk *h = &f->hunks[0];
    return old_side ? (h->old_start == 0 && h->old_count == 0)
                    : (h->new_start == 0 && h->new_count == 0);
}

/* "--- x" "+++ y" hunks..., as diff -u writes it. A plain diff names no
 * rename: the file patched is the +++ name. diff -N marks an absent file
 * with the epoch as timestamp and an empty hunk side. */
static int parse_plain_file(struct parser *ps)
{
    struct pfile *f = NULL;
    int r = new_file(ps, &f);
    if (r < 0)
        return r;
    bool oe = false, ne = false, on = false, nn = false;
    r = parse_minus_plus(ps, f, &oe, &ne, &on, &nn);
    if (r < 0)
        return r;
    r = parse_hunks(ps, f, fname(f));
    if (r < 0)
        return r;
    if (f->n_hunks == 0)
        return perr(ps, EINVAL, "%s has a file header but no hunk", fname(f));
    if (on || (oe && is_single_empty_side(f, true))) {
        f->kind = F_CREATE;
        free(f->old_path);
        f->old_path = NULL;
    } else if (nn || (ne && is_single_empty_side(f, false))) {
        f->kind = F_DELETE;
        free(f->new_path);
        f->new_path = NULL;
    } else {
        f->kind = F_MODIFY;
        free(f->old_path);
        f->old_path = strdup(f->new_path);
        if (!f->old_path)
            return perr(ps, ENOMEM, "out of memory");
    }
    return 0;
}

static int take_name(struct parser *ps, const struct line *l, size_t skip,
                     char **slot, const char *what)
{
    _cleanup_free_ char *h = NULL;
    int r = header_str(l, skip, &h);
    if (r < 0)
        return perr(ps, -r, "bad %s header", what);
    if (*slot)
        return perr(ps, EINVAL, "repeated %s header", what);
    r = parse_plain_name(h, ps->strip, slot);
    if (r < 0)
        return perr(ps, -r, "bad name in %s header: %.200s", what, h);
    return 0;
}

static int take_mode(struct parser *ps, const struct line *l, size_t skip,
                     unsigned *slot, const char *name)
{
    _cleanup_free_ char *h = NULL;
    int r = header_str(l, skip, &h);
    if (r < 0)
        return perr(ps, -r, "bad mode header for %s", name);
    r = parse_mode(h, slot);
    if (r == -EOPNOTSUPP)
        return perr(ps, EOPNOTSUPP, "%s: mode %.20s is not a regular file "
                    "(symlinks and submodules are not supported)", name, h);
    if (r < 0)
        return perr(ps, EINVAL, "%s: bad mode %.20s", name, h);
    return 0;
}

/* Both names, or one NULL and the other not: do they agree? */
static bool same_name(const char *a, const char *b)
{
    return !a || !b || strcmp(a, b) == 0;
}

/* "diff --git a/x b/y", extended headers, "--- "/"+++ ", hunks. */
static int parse_git_file(struct parser *ps)
{
    struct line l = {0};
    peek(&ps->c, &l);
    _cleanup_free_ char *h = NULL, *ga = NULL, *gb = NULL;
    _cleanup_free_ char *from = NULL, *to = NULL;
    int r = header_str(&l, 11, &h);
    if (r < 0)
        return perr(ps, -r, "bad diff --git line");
    struct pfile *f = NULL;
    r = new_file(ps, &f);
    if (r < 0)
        return r;
    r = parse_git_names(h, ps->strip, &ga, &gb);
    if (r < 0)
        return perr(ps, -r, "bad names in diff --git line: %.200s", h);
    const char *name = gb ? gb : ga ? ga : h;
    advance(&ps->c, &l);

    bool is_new = false, is_del = false, is_rename = false, is_copy = false;
    bool has_mp = false, old_null = false, new_null = false;
    while (peek(&ps->c, &l)) {
        if (starts(&l, "old mode ")) {
            r = take_mode(ps, &l, 9, &f->old_mode, name);
        } else if (starts(&l, "new mode ")) {
            r = take_mode(ps, &l, 9, &f->new_mode, name);
        } else if (starts(&l, "deleted file mode ")) {
            is_del = true;
            r = take_mode(ps, &l, 18, &f->old_mode, name);
        } else if (starts(&l, "new file mode ")) {
            is_new = true;
            r = take_mode(ps, &l, 14, &f->new_mode, name);
        } else if (starts(&l, "rename from ")) {
            is_rename = true;
            r = take_name(ps, &l, 12, &from, "rename from");
        } else if (starts(&l, "rename to ")) {
            is_rename = true;
            r = take_name(ps, &l, 10, &to, "rename to");
        } else if (starts(&l, "copy from ")) {
            is_copy = true;
            r = take_name(ps, &l, 10, &from, "copy from");
        } else if (starts(&l, "copy to ")) {
            is_copy = true;
            r = take_name(ps, &l, 8, &to, "copy to");
        } else if (starts(&l, "similarity index ") ||
                   starts(&l, "dissimilarity index ") ||
                   starts(&l, "index ")) {
            r = 0;
        } else if (starts(&l, "GIT binary patch") ||
                   starts(&l, "Binary files ")) {
            return perr(ps, EINVAL, "binary patch for %s is not supported",
                        name);
        } else if (at_file_header(&ps->c)) {
            has_mp = true;
            bool oe = false, ne = false;
            r = parse_minus_plus(ps, f, &oe, &ne, &old_null, &new_null);
            if (r < 0)
                return r;
            break;
        } else {
            break;
        }
        if (r < 0)
            return r;
        advance(&ps->c, &l);
    }
    if (!has_mp && peek(&ps->c, &l) && starts(&l, "@@ "))
        return perr(ps, EINVAL, "hunk for %s without ---/+++ header", name);
    r = parse_hunks(ps, f, name);
    if (r < 0)
        return r;

    if (is_rename && is_copy)
        return perr(ps, EINVAL, "%s is both renamed and copied", name);
    if ((is_rename || is_copy) && (!from || !to))
        return perr(ps, EINVAL, "%s: rename or copy without both names",
                    name);
    if (is_new && is_del)
        return perr(ps, EINVAL, "%s is both new and deleted", name);

    /* The names: ---/+++ first, then rename/copy headers, then the diff
     * --git line; where two are given they must agree. */
    char *oldn = has_mp ? f->old_path : NULL;
    char *newn = has_mp ? f->new_path : NULL;
    if (!same_name(oldn, from) || !same_name(newn, to) ||
        (!from && !same_name(oldn, ga)) || (!to && !same_name(newn, gb)))
        return perr(ps, EINVAL, "file names of %s disagree between headers",
                    name);
    if (!has_mp) {
        f->old_path = from ? TAKE_PTR(from) : ga ? TAKE_PTR(ga) : NULL;
        f->new_path = to ? TAKE_PTR(to) : gb ? TAKE_PTR(gb) : NULL;
        if (is_new) {
            free(f->old_path);
            f->old_path = NULL;
        }
        if (is_del) {
            free(f->new_path);
            f->new_path = NULL;
        }
    } else {
        if ((is_new && !old_null) || (is_del && !new_null) ||
            (old_null && !is_new && f->old_mode) ||
            (new_null && !is_del && f->new_mode))
            return perr(ps, EINVAL, "headers of %s disagree on whether the "
                        "file is created or deleted", name);
    }
    if (!f->old_path && !f->new_path)
        return perr(ps, EINVAL, "cannot tell the file name from "
                    "diff --git %.200s", h);

    if (!f->old_path) {
        f->kind = F_CREATE;
    } else if (!f->new_path) {
        f->kind = F_DELETE;
    } else if (is_rename || is_copy) {
        f->kind = is_rename ? F_RENAME : F_COPY;
        if (strcmp(f->old_path, f->new_path) == 0)
            return perr(ps, EINVAL, "%s is renamed or copied onto itself",
                        name);
    } else {
        if (strcmp(f->old_path, f->new_path) != 0)
            return perr(ps, EINVAL, "%s and %s differ but there is no "
                        "rename or copy header", f->old_path, f->new_path);
        f->kind = F_MODIFY;
        if (f->n_hunks == 0 && !f->new_mode)
            return perr(ps, EINVAL, "%s has no change", name);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each path may be written or removed by one file entry only: the engine
 * computes every result from the tree as it was, so a second entry for the
 * same path would silently lose the first. */
static int check_paths(struct sp_patch *p, sp_error *err)
{
    _cleanup_free_ const char **v = calloc(p->n_files * 2 + 1, sizeof(*v));
    if (!v)
        return sp_error_set(err, ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < p->n_files; i++) {
        const struct pfile *f = &p->files[i];
        const char *names[2] = {f->old_path, f->new_path};
        for (size_t k = 0; k < 2; k++) {
            if (names[k] && check_path(names[k]) < 0)
                return uerr(err, EINVAL,
                                     "patch line %zu: refused path \"%.300s\" "
                                     "(it must be relative, without \"..\", "
                                     "\".\" or empty components)",
                                     f->lineno, names[k]);
        }
        /* Paths this entry changes (a copy source is only read). */
        if (f->new_path)
            v[n++] = f->new_path;
        if (f->old_path && f->kind != F_COPY && f->kind != F_MODIFY)
            v[n++] = f->old_path;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            return uerr(err, EINVAL,
                                 "%.300s is changed by more than one entry "
                                 "of the patch", v[i]);
    return 0;
}

int sp_patch_parse(const char *text, size_t len, int strip,
                   struct sp_patch **ret, sp_error *err)
{
    if (!ret || (!text && len))
        return uerr(err, EINVAL, "no patch given");
    if (strip < 0 || strip > MAX_STRIP)
        return uerr(err, EINVAL,
                             "strip count %d out of range 0..%d", strip,
                             MAX_STRIP);
    if (len > SP_PATCH_MAX_TEXT)
        return uerr(err, EFBIG,
                             "patch of %zu bytes is larger than the limit "
                             "of %u bytes", len, SP_PATCH_MAX_TEXT);
    struct sp_patch *p = calloc(1, sizeof(*p));
    if (!p)
        return sp_error_set(err, ENOMEM, "out of memory");
    p->text = malloc(len + 1);
    if (!p->text) {
        sp_patch_free(p);
        return sp_error_set(err, ENOMEM, "out of memory");
    }
    if (len)
        memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->len = len;

    struct parser ps = {
        .p = p,
        .c = {.text = p->text, .len = len, .pos = 0, .lineno = 1},
        .strip = strip,
        .err = err,
    };
    int r = 0;
    struct line l = {0};
    while (r == 0 && peek(&ps.c, &l)) {
        if (starts(&l, "diff --git ")) {
            r = parse_git_file(&ps);
        } else if (starts(&l, "diff --cc ") || starts(&l, "diff --combined ")) {
            r = perr(&ps, EINVAL, "combined (merge) diffs are not supported");
        } else if (at_file_header(&ps.c)) {
            r = parse_plain_file(&ps);
        } else if (starts(&l, "@@")) {
            r = perr(&ps, EINVAL, "hunk without a file header");
        } else if (starts(&l, "GIT binary patch") ||
                   starts(&l, "Binary files ")) {
            r = perr(&ps, EINVAL, "binary patches are not supported: %.200s",
                     l.len < 200 ? l.s : "GIT binary patch");
        } else if (starts(&l, "*** ")) {
            struct cur n = ps.c;
            struct line l2 = {0};
            advance(&n, &l);
            if (peek(&n, &l2) && starts(&l2, "--- "))
                r = perr(&ps, EINVAL, "context diffs are not supported, "
                         "only unified diffs");
            else
                advance(&ps.c, &l);
        } else if (ps.after_hunk && l.len > 0 &&
                   (l.s[0] == '+' || l.s[0] == '-' || l.s[0] == ' ') &&
                   !(l.len == 2 && memcmp(l.s, "--", 2) == 0) &&
                   !(l.len == 3 && memcmp(l.s, "-- ", 3) == 0)) {
            /* A diff line outside any hunk: most often a hunk whose
             * header counts are wrong. Skipping it would apply half a
             * change. */
            r = perr(&ps, EINVAL, "diff line outside a hunk (are the line "
                     "counts of the hunk before it right?)");
        } else {
            advance(&ps.c, &l); /* commit message, "Only in", etc. */
            ps.after_hunk = false;
        }
    }
    if (r == 0 && p->n_files == 0)
        r = uerr(err, EINVAL,
                          "the patch contains no file change");
    if (r == 0)
        r = check_paths(p, err);
    if (r < 0) {
        sp_patch_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

/* ---- matching hunks against a file ------------------------------------ */

/* A file's lines: line i is buf[start[i] .. start[i+1]), its '\n'
 * included when it has one (only the last line may lack it). */
struct fidx {
    const char *buf;
    size_t len;
    uint32_t *start;
    size_t n;
};

static int index_lines(const char *buf, size_t len, struct fidx *ret)
{
    size_t n = 0;
    for (const char *s = buf, *e = buf + len; s < e; n++) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        s = nl ? nl + 1 : e;
        if (n >= SP_PATCH_MAX_FILE_LINES)
            return -EFBIG;
    }
    uint32_t *st = reallocarray(NULL, n + 1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    size_t i = 0;
    for (const char *s = buf, *e = buf + len; s < e; i++) {
        st[i] = (uint32_t)(s - buf);
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        s = nl ? nl + 1 : e;
    }
    st[n] = (uint32_t)len;
    *ret = (struct fidx){.buf = buf, .len = len, .start = st, .n = n};
    return 0;
}

static void fidx_free(struct fidx *fi)
{
    free(fi->start);
}

static void fl_line(const struct fidx *fi, size_t i, const char **s,
                    size_t *len, bool *nl)
{
    size_t b = fi->start[i], e = fi->start[i + 1];
    *nl = e > b && fi->buf[e - 1] == '\n';
    *s = fi->buf + b;
    *len = e - b - (*nl ? 1 : 0);
}

struct work {
    uint64_t used;
    bool exhausted;
};

static bool in_side(char kind, bool new_side)
{
    return kind == ' ' || kind == (new_side ? '+' : '-');
}

/* Does the file line equal the patch line? In crlf mode the file's line
 * ends with "\r\n" where the patch's ends with "\n". The no-newline state
 * must agree, so a hunk matches bytes exactly. */
static bool line_eq(const struct sp_patch *p, const struct pline *pl,
                    const char *fs, size_t flen, bool fnl, bool crlf,
                    struct work *w)
{
    if (fnl != pl->nl)
        return false;
    size_t want = pl->len + (crlf && fnl ? 1 : 0);
    if (flen != want)
        return false;
    w->used += 1 + pl->len / 64;
    if (w->used > SP_PATCH_MAX_WORK)
        w->exhausted = true;
    if (want != pl->len && fs[pl->len] != '\r')
        return false;
    return memcmp(fs, p->text + pl->off, pl->len) == 0;
}

static bool match_at(const struct sp_patch *p, const struct phunk *h,
                     const struct fidx *fi, size_t pos, bool new_side,
                     bool crlf, struct work *w)
{
    size_t k = pos;
    for (size_t i = 0; i < h->n; i++) {
        const struct pline *pl = &p->lines[h->first + i];
        if (!in_side(pl->kind, new_side))
            continue;
        if (k >= fi->n || w->exhausted)
            return false;
        const char *s = NULL;
        size_t len = 0;
        bool nl = false;
        fl_line(fi, k, &s, &len, &nl);
        if (!line_eq(p, pl, s, len, nl, crlf, w))
            return false;
        k++;
    }
    return true;
}

/* Search outward from `expected` for where the hunk's side matches, no
 * earlier than lo (the end of the previous hunk). */
static bool find_hunk(const struct sp_patch *p, const struct phunk *h,
                      const struct fidx *fi, uint64_t expected, size_t lo,
                      bool new_side, bool crlf, struct work *w,
                      size_t *ret_pos)
{
    uint64_t count = new_side ? h->new_count : h->old_count;
    if (count > fi->n || lo > fi->n - count)
        return false;
    uint64_t hi = fi->n - count;
    uint64_t e = expected < lo ? lo : expected > hi ? hi : expected;
    for (uint64_t d = 0; !w->exhausted; d++) {
        bool up_ok = e + d <= hi, down_ok = d > 0 && d <= e - lo;
        if (!up_ok && !(d <= e - lo))
            break;
        if (up_ok && match_at(p, h, fi, e + d, new_side, crlf, w)) {
            *ret_pos = e + d;
            return true;
        }
        if (down_ok && match_at(p, h, fi, e - d, new_side, crlf, w)) {
            *ret_pos = e - d;
            return true;
        }
    }
    return false;
}

struct buf {
    char *d;
    size_t n, cap;
    size_t limit;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (n > b->limit - b->n)
        return -EFBIG;
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->n + n)
            ncap *= 2;
        char *d = realloc(b->d, ncap);
        if (!d)
            return -ENOMEM;
        b->d = d;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->d + b->n, s, n);
    b->n += n;
    return 0;
}

/* A line for the report: cut to a bound, NUL bytes shown as '?'. */
static char *report_line(const char *s, size_t len)
{
    if (len > SP_PATCH_MAX_REPORT_LINE)
        len = SP_PATCH_MAX_REPORT_LINE;
    char *r = malloc(len + 1);
    if (!r)
        return NULL;
    for (size_t i = 0; i < len; i++)
        r[i] = s[i] ? s[i] : '?';
    r[len] = '\0';
    return r;
}

static void failure_free(struct sp_patch_failure *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->hunk_header);
    for (size_t i = 0; i < f->n_expected; i++)
        free(f->expected[i]);
    free(f->expected);
    for (size_t i = 0; i < f->n_actual; i++)
        free(f->actual[i]);
    free(f->actual);
    free(f);
}

static int make_failure(const struct sp_patch *p, const struct pfile *f,
                        size_t hi, const struct fidx *fi, uint64_t pos,
                        bool already, struct sp_patch_failure **ret)
{
    const struct phunk *h = &f->hunks[hi];
    struct sp_patch_failure *fl = calloc(1, sizeof(*fl));
    if (!fl)
        return -ENOMEM;
    fl->path = strdup(fname(f));
    fl->hunk_header = strdup(h->header);
    fl->hunk_index = hi + 1;
    if (pos > fi->n)
        pos = fi->n;
    fl->line = (size_t)pos + 1;
    fl->already_applied = already;
    size_t ne = 0;
    for (size_t i = 0; i < h->n; i++)
        ne += in_side(p->lines[h->first + i].kind, false);
    if (ne > SP_PATCH_MAX_REPORT_LINES)
        ne = SP_PATCH_MAX_REPORT_LINES;
    size_t na = fi->n - (size_t)pos < ne ? fi->n - (size_t)pos : ne;
    fl->expected = calloc(ne + 1, sizeof(char *));
    fl->actual = calloc(na + 1, sizeof(char *));
    if (!fl->path || !fl->hunk_header || !fl->expected || !fl->actual) {
        failure_free(fl);
        return -ENOMEM;
    }
    bool diff_found = false;
    for (size_t i = 0; i < h->n && fl->n_expected < ne; i++) {
        const struct pline *pl = &p->lines[h->first + i];
        if (!in_side(pl->kind, false))
            continue;
        size_t k = fl->n_expected;
        fl->expected[k] = report_line(p->text + pl->off, pl->len);
        if (!fl->expected[k]) {
            failure_free(fl);
            return -ENOMEM;
        }
        fl->n_expected++;
        if (k < na) {
            const char *s = NULL;
            size_t len = 0;
            bool nl = false;
            fl_line(fi, (size_t)pos + k, &s, &len, &nl);
            fl->actual[k] = report_line(s, len);
            if (!fl->actual[k]) {
                failure_free(fl);
                return -ENOMEM;
            }
            fl->n_actual++;
            struct work w = {0};
            if (!diff_found && !line_eq(p, pl, s, len, nl, false, &w)) {
                fl->first_diff = k;
                diff_found = true;
            }
        }
    }
    if (!diff_found)
        fl->first_diff = fl->n_actual;
    *ret = fl;
    return 0;
}

static bool file_has_crlf(const struct fidx *fi)
{
    for (size_t i = 0; i < fi->n; i++) {
        size_t e = fi->start[i + 1];
        if (e - fi->start[i] >= 2 && fi->buf[e - 1] == '\n' &&
            fi->buf[e - 2] == '\r')
            return true;
    }
    return false;
}

/* Apply f's hunks to `old` into out. offsets gets one entry per hunk. On a
 * hunk that does not match: -ESTALE and *ret_fail. */
static int apply_hunks(const struct sp_patch *p, const struct pfile *f,
                       const char *old, size_t old_len, struct buf *out,
                       long *offsets, struct work *w,
                       struct sp_patch_failure **ret_fail, sp_error *err)
{
    _cleanup_(fidx_free) struct fidx fi = {0};
    int r = index_lines(old, old_len, &fi);
    if (r == -EFBIG)
        return uerr(err, EFBIG,
                             "%s has more than %u lines", fname(f),
                             SP_PATCH_MAX_FILE_LINES);
    if (r < 0)
        return sp_error_set(err, -r, "cannot index %s", fname(f));
    bool crlf_possible = file_has_crlf(&fi);

    size_t cursor = 0;
    int64_t delta = 0;
    for (size_t hi = 0; hi < f->n_hunks; hi++) {
        const struct phunk *h = &f->hunks[hi];
        int64_t stated = (int64_t)(h->old_count ? h->old_start - 1 : h->old_start);
        int64_t exp_s = stated + delta;
        uint64_t expected = exp_s < 0 ? 0 : (uint64_t)exp_s;
        size_t pos = 0;
        bool crlf = false;
        bool found = find_hunk(p, h, &fi, expected, cursor, false, false, w, &pos);
        if (!found && crlf_possible && !w->exhausted) {
            crlf = true;
            found = find_hunk(p, h, &fi, expected, cursor, false, true, w, &pos);
        }
        if (w->exhausted)
            return uerr(err, EFBIG,
                                 "%s: giving up searching where hunk %zu "
                                 "applies (work limit)", fname(f), hi + 1);
        if (!found) {
            bool changes = false;
            for (size_t i = 0; i < h->n && !changes; i++)
                changes = p->lines[h->first + i].kind != ' ';
            size_t apos = 0;
            bool already = changes &&
                (find_hunk(p, h, &fi, expected, cursor, true, false, w, &apos) ||
                 (crlf_possible &&
                  find_hunk(p, h, &fi, expected, cursor, true, true, w, &apos)));
            r = make_failure(p, f, hi, &fi, expected, already, ret_fail);
            if (r < 0)
                return sp_error_set(err, -r, "cannot build the patch report");
            return uerr(err, ESTALE,
                                 "%s: hunk %zu (%.200s) %s (expected at "
                                 "line %" PRIu64 ")", fname(f), hi + 1,
                                 h->header,
                                 already ? "is already applied"
                                         : "does not match",
                                 expected + 1);
        }
        delta = (int64_t)pos - stated;
        offsets[hi] = (long)delta;
        r = buf_add(out, fi.buf + fi.start[cursor],
                    fi.start[pos] - fi.start[cursor]);
        size_t k = pos;
        for (size_t i = 0; r == 0 && i < h->n; i++) {
            const struct pline *pl = &p->lines[h->first + i];
            if (pl->kind == ' ') {
                r = buf_add(out, fi.buf + fi.start[k],
                            fi.start[k + 1] - fi.start[k]);
                k++;
            } else if (pl->kind == '-') {
                k++;
            } else {
                r = buf_add(out, p->text + pl->off, pl->len);
                if (r == 0 && pl->nl && crlf)
                    r = buf_add(out, "\r", 1);
                if (r == 0 && pl->nl)
                    r = buf_add(out, "\n", 1);
            }
        }
        cursor = k;
        if (r < 0)
            break;
    }
    if (r == 0)
        r = buf_add(out, fi.buf + fi.start[cursor],
                    fi.start[fi.n] - fi.start[cursor]);
    if (r == -EFBIG)
        return uerr(err, EFBIG,
                             "the patched files are larger than the limit "
                             "of %u bytes in all", SP_PATCH_MAX_OUTPUT);
    if (r < 0)
        return sp_error_set(err, -r, "cannot patch %s", fname(f));
    return 0;
}

/* ---- the file system -------------------------------------------------- */

/* openat2 beneath dirfd, refusing every symlink (a symlinked parent could
 * lead out of the tree; a symlinked target would make us write through
 * it) and magic links. No fallback: without openat2 we refuse to work. */
static int open_beneath(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

static const char *why(int r)
{
    switch (r) {
    case -ELOOP:
        return "a symlink is on the path (symlinks are not followed)";
    case -EXDEV:
        return "the path leads out of the directory";
    case -ENOTDIR:
        return "a parent is not a directory";
    case -ENOENT:
        return "no such file";
    default:
        return strerror(-r);
    }
}

/* Read the regular file at path into a new buffer. */
static int read_file(int dirfd, const char *path, char **ret, size_t *ret_len,
                     struct stat *ret_st, sp_error *err)
{
    _cleanup_close_ int pfd = open_beneath(dirfd, path, O_PATH);
    if (pfd < 0)
        return uerr(err, -pfd, "cannot read %s: %s",
                             path, why(pfd));
    struct stat st = {0};
    if (fstat(pfd, &st) < 0)
        return sp_error_set(err, errno, "cannot stat %s", path);
    if (!S_ISREG(st.st_mode))
        return uerr(err, EINVAL,
                             "cannot patch %s: not a regular file", path);
    if ((uint64_t)st.st_size > SP_PATCH_MAX_FILE_SIZE)
        return uerr(err, EFBIG,
                             "cannot patch %s: larger than %u bytes", path,
                             SP_PATCH_MAX_FILE_SIZE);
    /* Reopen for reading: O_NONBLOCK so a fifo swapped in meanwhile cannot
     * block us; the identity check catches the swap. */
    _cleanup_close_ int fd =
        open_beneath(dirfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return uerr(err, -fd, "cannot read %s: %s",
                             path, why(fd));
    struct stat st2 = {0};
    if (fstat(fd, &st2) < 0)
        return sp_error_set(err, errno, "cannot stat %s", path);
    if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
        return uerr(err, ESTALE,
                             "%s changed while it was read", path);
    size_t cap = (size_t)st2.st_size + 1, n = 0;
    _cleanup_free_ char *b = malloc(cap);
    if (!b)
        return sp_error_set(err, ENOMEM, "out of memory reading %s", path);
    for (;;) {
        if (n == cap) {
            if (cap > SP_PATCH_MAX_FILE_SIZE)
                return uerr(err, EFBIG,
                                     "cannot patch %s: larger than %u bytes",
                                     path, SP_PATCH_MAX_FILE_SIZE);
            size_t ncap = cap * 2 > (size_t)SP_PATCH_MAX_FILE_SIZE + 1
                              ? (size_t)SP_PATCH_MAX_FILE_SIZE + 1
                              : cap * 2;
            char *nb = realloc(b, ncap);
            if (!nb)
                return sp_error_set(err, ENOMEM, "out of memory reading %s",
                                    path);
            b = nb;
            cap = ncap;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return sp_error_set(err, errno, "cannot read %s", path);
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *ret = TAKE_PTR(b);
    *ret_len = n;
    *ret_st = st2;
    return 0;
}

/* A file to be created must not exist (nor be a dangling symlink). A
 * missing parent is fine: it will be created. */
static int check_absent(int dirfd, const char *path, sp_error *err)
{
    int fd = open_beneath(dirfd, path, O_PATH);
    if (fd >= 0) {
        close(fd);
        return uerr(err, EEXIST,
                             "cannot create %s: it already exists", path);
    }
    if (fd == -ENOENT)
        return 0;
    if (fd == -ELOOP)
        return uerr(err, ELOOP,
                             "cannot create %s: %s (or it exists as one)",
                             path, why(fd));
    return uerr(err, -fd, "cannot create %s: %s", path,
                         why(fd));
}

/* Split "a/b/c" into dir "a/b" (or "." for a top-level name) and base. */
static int split_path(const char *path, char **ret_dir, const char **ret_base)
{
    const char *slash = strrchr(path, '/');
    *ret_dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    *ret_base = slash ? slash + 1 : path;
    return *ret_dir ? 0 : -ENOMEM;
}

struct dirlist {
    char **v;
    size_t n, cap;
};

/* Open the directory `dir` beneath dirfd for writing, creating what is
 * missing (mode 0755) when `mk` is given; the directories created are
 * appended to mk so a rollback can remove them. */
static int open_dir(int dirfd, const char *dir, struct dirlist *mk)
{
    int fd = open_beneath(dirfd, dir, O_RDONLY | O_DIRECTORY);
    if (fd != -ENOENT || !mk)
        return fd;
    _cleanup_close_ int cur = open_beneath(dirfd, ".", O_RDONLY | O_DIRECTORY);
    if (cur < 0)
        return cur;
    _cleanup_free_ char *copy = strdup(dir);
    if (!copy)
        return -ENOMEM;
    for (char *c = copy;;) {
        char *slash = strchr(c, '/');
        if (slash)
            *slash = '\0';
        int nfd = open_beneath(cur, c, O_RDONLY | O_DIRECTORY);
        if (nfd == -ENOENT) {
            if (mkdirat(cur, c, 0755) < 0)
                return -errno;
            if (grow((void **)&mk->v, &mk->cap, mk->n + 1, sizeof(*mk->v)) < 0)
                return -ENOMEM;
            mk->v[mk->n] = strdup(copy); /* the path up to c */
            if (!mk->v[mk->n])
                return -ENOMEM;
            mk->n++;
            nfd = open_beneath(cur, c, O_RDONLY | O_DIRECTORY);
        }
        if (nfd < 0)
            return nfd;
        close(cur);
        cur = nfd;
        if (!slash)
            break;
        *slash = '/';
        c = slash + 1;
    }
    return TAKE_FD(cur);
}

static int random_name(char name[32])
{
    static const char set[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -errno ? -errno : -EIO;
    size_t n = strlen(SP_PATCH_TEMP_PREFIX);
    memcpy(name, SP_PATCH_TEMP_PREFIX, n);
    for (size_t i = 0; i < sizeof(rnd); i++)
        name[n + i] = set[rnd[i] % (sizeof(set) - 1)];
    name[n + sizeof(rnd)] = '\0';
    return 0;
}

/* Write content to a new temp file in dfd with mode; fsync'd when sync
 * (else the caller syncs the file system once for many files). */
static int write_temp(int dfd, const char *content, size_t len, unsigned mode,
                      char name[32], bool sync)
{
    int fd = -1;
    for (int tries = 0; tries < 100; tries++) {
        int r = random_name(name);
        if (r < 0)
            return r;
        fd = openat(dfd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0)
        return -errno;
    int r = sp_write_all(fd, content, len);
    if (r == 0 && fchmod(fd, mode & 0777) < 0)
        r = -errno;
    if (r == 0 && sync && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0)
        unlinkat(dfd, name, 0);
    return r;
}

/* ---- applying --------------------------------------------------------- */

struct step {
    const struct pfile *f;
    const char *src;     /* path read, NULL for a created file */
    const char *dst;     /* path written, NULL for a deleted file */
    char *content;
    size_t len;
    unsigned mode;
    bool mode_changed;
    dev_t dev;
    ino_t ino;
    long *offsets;
    /* write phase */
    bool dst_done;       /* dst is in place */
    bool src_moved;      /* src (rename/delete) moved to backup */
    bool backup_in_dst;  /* modify: old version kept next to dst */
    char backup[32];
    bool tmp_made;       /* the new content waits in tmp, next to dst */
    char tmp[32];
};

static void steps_free(struct step *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++) {
        free(s[i].content);
        free(s[i].offsets);
    }
    free(s);
}

static void dirlist_free(struct dirlist *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    free(d->v);
}

/* Run fn on (parent fd, base name) of path, resolving the parent safely. */
static int at_parent(int dirfd, const char *path, int *ret_fd,
                     const char **ret_base)
{
    _cleanup_free_ char *dir = NULL;
    if (split_path(path, &dir, ret_base) < 0)
        return -ENOMEM;
    int fd = open_dir(dirfd, dir, NULL);
    if (fd < 0)
        return fd;
    *ret_fd = fd;
    return 0;
}

/* Is the file at (dfd, base) still the one read in phase 1? */
static int same_file(int dfd, const char *base, const struct step *s)
{
    struct stat st = {0};
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_dev != s->dev || st.st_ino != s->ino)
        return -ESTALE;
    return 0;
}

/* Put new content at (dfd, base) without replacing anything. */
static int place_new(int dfd, const char *tmp, const char *base)
{
    if (renameat2(dfd, tmp, dfd, base, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return -errno;
    /* A file system without RENAME_NOREPLACE: link() refuses to replace. */
    if (linkat(dfd, tmp, dfd, base, 0) < 0)
        return -errno;
    unlinkat(dfd, tmp, 0);
    return 0;
}

/* Move an existing file aside to a fresh backup name in the same dir. */
static int move_aside(int dfd, const char *base, char backup[32])
{
    for (int tries = 0; tries < 100; tries++) {
        int r = random_name(backup);
        if (r < 0)
            return r;
        if (renameat2(dfd, base, dfd, backup, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        if (errno != EINVAL)
            return -errno;
        if (linkat(dfd, base, dfd, backup, 0) < 0) {
            if (errno == EEXIST)
                continue;
            return -errno;
        }
        if (unlinkat(dfd, base, 0) < 0) {
            int e = errno;
            unlinkat(dfd, backup, 0);
            return -e;
        }
        return 0;
    }
    return -EEXIST;
}

/* The first phase: every new content is written to a temp file next to
 * its destination, unsynced; one syncfs then makes them all durable
 * before any is moved into place (one barrier instead of one fsync per
 * file and per directory). A step that cannot be prepared now (its
 * directory appears only once an earlier step has run) writes its temp in
 * write_step, synced, as before. */
static int prepare_step(int dirfd, struct step *s, struct dirlist *mk)
{
    if (!s->dst)
        return 0;
    _cleanup_free_ char *dir = NULL;
    const char *base = NULL;
    if (split_path(s->dst, &dir, &base) < 0)
        return -ENOMEM;
    _cleanup_close_ int dfd = open_dir(dirfd, dir, mk);
    if (dfd < 0)
        return dfd;
    int r = write_temp(dfd, s->content, s->len, s->mode, s->tmp, false);
    if (r == 0)
        s->tmp_made = true;
    return r;
}

/* syncfs of the file system holding dirfd (which may be O_PATH). */
static int sync_fs(int dirfd)
{
    _cleanup_close_ int fd = open_beneath(dirfd, ".", O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd;
    return syncfs(fd) < 0 ? -errno : 0;
}

/* A prepared temp that was not used (a failure before its step ran). */
static void drop_temp(int dirfd, struct step *s)
{
    if (!s->tmp_made)
        return;
    int fd = -1;
    const char *base = NULL;
    if (at_parent(dirfd, s->dst, &fd, &base) == 0) {
        unlinkat(fd, s->tmp, 0);
        close(fd);
    }
    s->tmp_made = false;
}

static int write_step(int dirfd, struct step *s, struct dirlist *mk)
{
    int r = 0;
    if (s->dst) {
        _cleanup_free_ char *dir = NULL;
        const char *base = NULL;
        if (split_path(s->dst, &dir, &base) < 0)
            return -ENOMEM;
        _cleanup_close_ int dfd = open_dir(dirfd, dir, mk);
        if (dfd < 0)
            return dfd;
        char tmp[32];
        if (s->tmp_made) {
            memcpy(tmp, s->tmp, sizeof(tmp));
            s->tmp_made = false; /* placed or removed below */
        } else {
            r = write_temp(dfd, s->content, s->len, s->mode, tmp, true);
        }
        if (r < 0)
            return r;
        if (s->f->kind == F_MODIFY) {
            r = same_file(dfd, base, s);
            if (r == 0 &&
                renameat2(dfd, tmp, dfd, base, RENAME_EXCHANGE) == 0) {
                /* The temp name now holds the old version. */
                memcpy(s->backup, tmp, sizeof(tmp));
                s->backup_in_dst = true;
            } else if (r == 0 && errno == EINVAL) {
                /* No RENAME_EXCHANGE here: keep the old version by a hard
                 * link, then replace. */
                r = random_name(s->backup);
                if (r == 0 && linkat(dfd, base, dfd, s->backup, 0) < 0)
                    r = -errno;
                if (r == 0) {
                    s->backup_in_dst = true;
                    if (renameat(dfd, tmp, dfd, base) < 0) {
                        r = -errno;
                        unlinkat(dfd, s->backup, 0);
                        s->backup_in_dst = false;
                    }
                }
            } else if (r == 0) {
                r = -errno;
            }
        } else {
            r = place_new(dfd, tmp, base);
        }
        if (r < 0) {
            unlinkat(dfd, tmp, 0);
            return r;
        }
        s->dst_done = true;
        /* (the directory entries are made durable by one syncfs at the
         * end of sp_patch_apply) */
    }
    if (s->f->kind == F_RENAME || s->f->kind == F_DELETE) {
        _cleanup_close_ int sfd = -1;
        const char *base = NULL;
        r = at_parent(dirfd, s->src, &sfd, &base);
        if (r < 0)
            return r;
        r = same_file(sfd, base, s);
        if (r == 0)
            r = move_aside(sfd, base, s->backup);
        if (r < 0)
            return r;
        s->src_moved = true;
    }
    return 0;
}

/* Undo one step; returns 0 or the first error (the rollback goes on). */
static int undo_step(int dirfd, struct step *s)
{
    int r = 0;
    if (s->src_moved) {
        int sfd = -1;
        const char *base = NULL;
        int q = at_parent(dirfd, s->src, &sfd, &base);
        if (q == 0) {
            if (renameat(sfd, s->backup, sfd, base) < 0)
                q = -errno;
            close(sfd);
        }
        if (q == 0)
            s->src_moved = false;
        r = r ? r : q;
    }
    if (s->dst_done) {
        int dfd = -1;
        const char *base = NULL;
        int q = at_parent(dirfd, s->dst, &dfd, &base);
        if (q == 0) {
            if (s->backup_in_dst) {
                if (renameat(dfd, s->backup, dfd, base) < 0)
                    q = -errno;
                else
                    s->backup_in_dst = false;
            } else if (unlinkat(dfd, base, 0) < 0) {
                q = -errno;
            }
            close(dfd);
        }
        if (q == 0)
            s->dst_done = false;
        r = r ? r : q;
    }
    return r;
}

/* After success: remove the old versions. */
static void drop_backup(int dirfd, struct step *s)
{
    const char *path = s->backup_in_dst ? s->dst : s->src_moved ? s->src : NULL;
    if (!path)
        return;
    int fd = -1;
    const char *base = NULL;
    if (at_parent(dirfd, path, &fd, &base) < 0)
        return;
    unlinkat(fd, s->backup, 0);
    close(fd);
}

/* After a delete or rename: remove the directories it left empty, as git
 * apply does (never the top directory itself). */
static void remove_empty_parents(int dirfd, const char *path)
{
    _cleanup_free_ char *p = strdup(path);
    if (!p)
        return;
    for (;;) {
        char *slash = strrchr(p, '/');
        if (!slash)
            return;
        *slash = '\0';
        int fd = -1;
        const char *base = NULL;
        if (at_parent(dirfd, p, &fd, &base) < 0)
            return;
        int q = unlinkat(fd, base, AT_REMOVEDIR);
        close(fd);
        if (q < 0)
            return;
    }
}

static enum sp_patch_status step_status(const struct step *s)
{
    switch (s->f->kind) {
    case F_CREATE: return SP_PATCH_CREATED;
    case F_DELETE: return SP_PATCH_DELETED;
    case F_RENAME: return SP_PATCH_RENAMED;
    case F_COPY: return SP_PATCH_COPIED;
    case F_MODIFY:
    default:
        return s->f->n_hunks == 0 ? SP_PATCH_MODE : SP_PATCH_MODIFIED;
    }
}

static int fill_report(struct step *steps, size_t n, struct sp_patch_report *r)
{
    r->files = calloc(n ? n : 1, sizeof(*r->files));
    if (!r->files)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct step *s = &steps[i];
        struct sp_patch_file_report *fr = &r->files[i];
        r->n_files++;
        fr->path = strdup(s->dst ? s->dst : s->src);
        if (!fr->path)
            return -ENOMEM;
        if (s->f->kind == F_RENAME || s->f->kind == F_COPY) {
            fr->old_path = strdup(s->src);
            if (!fr->old_path)
                return -ENOMEM;
        }
        fr->status = step_status(s);
        fr->mode_changed = s->mode_changed;
        fr->mode = s->mode_changed ? s->mode : 0;
        fr->n_hunks = s->f->n_hunks;
        fr->offsets = TAKE_PTR(s->offsets);
    }
    return 0;
}

/* Phase 1 for one file: read what it needs, check what must be absent,
 * compute the new content. */
static int plan_step(int dirfd, const struct sp_patch *p, struct step *s,
                     uint64_t *budget, struct work *w,
                     struct sp_patch_failure **ret_fail, sp_error *err)
{
    const struct pfile *f = s->f;
    int r = 0;
    _cleanup_free_ char *old = NULL;
    size_t old_len = 0;
    struct stat st = {0};
    s->src = f->kind == F_CREATE ? NULL : f->old_path;
    s->dst = f->kind == F_DELETE ? NULL : f->new_path;
    if (s->src) {
        r = read_file(dirfd, s->src, &old, &old_len, &st, err);
        if (r < 0)
            return r;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    if (s->dst && f->kind != F_MODIFY) {
        r = check_absent(dirfd, s->dst, err);
        if (r < 0)
            return r;
    }
    s->offsets = calloc(f->n_hunks ? f->n_hunks : 1, sizeof(long));
    if (!s->offsets)
        return sp_error_set(err, ENOMEM, "out of memory");
    struct buf out = {.limit = *budget};
    r = apply_hunks(p, f, old ? old : "", old_len, &out, s->offsets, w,
                    ret_fail, err);
    if (r < 0) {
        free(out.d);
        return r;
    }
    *budget -= out.n;
    s->content = out.d;
    s->len = out.n;
    if (f->kind == F_DELETE) {
        if (s->len != 0)
            return uerr(err, ESTALE,
                                 "cannot delete %s: it has content the "
                                 "patch does not remove", s->src);
        return 0;
    }
    unsigned cur = s->src ? (unsigned)st.st_mode & 0777 : 0644;
    s->mode = f->new_mode ? (f->new_mode & 0777) : cur;
    s->mode_changed = f->new_mode && s->src && s->mode != cur;
    if (f->kind == F_CREATE)
        s->mode_changed = false;
    return 0;
}

int sp_patch_apply(int dirfd, const struct sp_patch *p, bool dry_run,
                   struct sp_patch_report *ret, sp_error *err)
{
    if (ret) {
        *ret = (struct sp_patch_report){.dry_run = dry_run};
    }
    if (!p)
        return uerr(err, EINVAL, "no patch given");
    struct step *steps = calloc(p->n_files ? p->n_files : 1, sizeof(*steps));
    if (!steps)
        return sp_error_set(err, ENOMEM, "out of memory");
    struct dirlist mk = {0};
    struct sp_patch_failure *fail = NULL;
    uint64_t budget = SP_PATCH_MAX_OUTPUT;
    struct work w = {0};
    int r = 0;
    size_t i = 0;

    for (i = 0; i < p->n_files && r == 0; i++) {
        steps[i].f = &p->files[i];
        r = plan_step(dirfd, p, &steps[i], &budget, &w, &fail, err);
    }
    if (r < 0 || dry_run)
        goto out;

    bool prepared = false;
    for (i = 0; i < p->n_files; i++)
        prepared |= prepare_step(dirfd, &steps[i], &mk) == 0 &&
                    steps[i].tmp_made;
    /* One barrier: every new content is on disk before any replaces. */
    if (prepared && (r = sync_fs(dirfd)) < 0) {
        i = 0;
    }
    for (i = r < 0 ? i : 0; r == 0 && i < p->n_files; i++) {
        r = write_step(dirfd, &steps[i], &mk);
        if (r < 0)
            break;
    }
    /* And one for the renames, as the per-directory fsyncs were. */
    if (r == 0 && p->n_files && (r = sync_fs(dirfd)) < 0) {
        i = p->n_files - 1;
    }
    if (r < 0) {
        struct step *bad = &steps[i < p->n_files ? i : 0];
        int saved = r;
        int undo = 0;
        for (size_t j = p->n_files; j-- > 0;)
            drop_temp(dirfd, &steps[j]);
        for (size_t j = (i < p->n_files ? i : 0) + 1; j-- > 0;) {
            int q = undo_step(dirfd, &steps[j]);
            undo = undo ? undo : q;
        }
        for (size_t j = mk.n; j-- > 0;) {
            int fd = -1;
            const char *base = NULL;
            if (at_parent(dirfd, mk.v[j], &fd, &base) == 0) {
                unlinkat(fd, base, AT_REMOVEDIR);
                close(fd);
            }
        }
        const char *path = bad->dst ? bad->dst : bad->src;
        if (undo < 0)
            sp_error_set(err, -saved,
                         "cannot write %s (%s); rolling back the files "
                         "already written failed too (%s): old versions are "
                         "kept as " SP_PATCH_TEMP_PREFIX "* files",
                         path, why(saved), strerror(-undo));
        else
            sp_error_set(err, -saved,
                         "cannot write %s, every file was restored", path);
        r = saved;
        goto out;
    }
    for (i = 0; i < p->n_files; i++)
        drop_backup(dirfd, &steps[i]);
    for (i = 0; i < p->n_files; i++)
        if (steps[i].f->kind == F_DELETE || steps[i].f->kind == F_RENAME)
            remove_empty_parents(dirfd, steps[i].src);

out:
    if (ret) {
        ret->ok = r == 0;
        ret->failure = TAKE_PTR(fail);
        if (r == 0 && fill_report(steps, p->n_files, ret) < 0) {
            r = sp_error_set(err, ENOMEM, "out of memory for the report");
            ret->ok = false;
        }
    }
    failure_free(fail);
    steps_free(steps, p->n_files);
    dirlist_free(&mk);
    return r;
}

void sp_patch_report_free(struct sp_patch_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].path);
        free(r->files[i].old_path);
        free(r->files[i].offsets);
    }
    free(r->files);
    failure_free(r->failure);
    *r = (struct sp_patch_report){0};
}

/* ---- JSON ------------------------------------------------------------- */

const char *sp_patch_status_name(enum sp_patch_status s)
{
    switch (s) {
    case SP_PATCH_MODIFIED: return "modified";
    case SP_PATCH_CREATED: return "created";
    case SP_PATCH_DELETED: return "deleted";
    case SP_PATCH_RENAMED: return "renamed";
    case SP_PATCH_COPIED: return "copied";
    case SP_PATCH_MODE: return "mode";
    default: return "unknown";
    }
}

/* A JSON string from arbitrary bytes, invalid UTF-8 as U+FFFD. */
static json_t *jstr(const char *s)
{
    return s ? sp_jrpc_string_lossy(s, strlen(s)) : json_null();
}

static int put(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *jlines(char **v, size_t n)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, jstr(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *sp_patch_report_json(const struct sp_patch_report *r)
{
    if (!r)
        return NULL;
    json_t *o = json_object();
    json_t *files = json_array();
    int bad = !o || !files;
    bad |= o ? put(o, "ok", json_boolean(r->ok)) : -1;
    bad |= o ? put(o, "dry_run", json_boolean(r->dry_run)) : -1;
    for (size_t i = 0; !bad && i < r->n_files; i++) {
        const struct sp_patch_file_report *fr = &r->files[i];
        json_t *f = json_object();
        json_t *offs = json_array();
        bad |= !f || !offs;
        for (size_t k = 0; !bad && k < fr->n_hunks; k++)
            bad |= json_array_append_new(offs,
                                         json_integer(fr->offsets[k])) < 0;
        if (!bad) {
            bad |= put(f, "path", jstr(fr->path));
            if (fr->old_path)
                bad |= put(f, "old_path", jstr(fr->old_path));
            bad |= put(f, "status",
                       json_string(sp_patch_status_name(fr->status)));
            if (fr->mode_changed) {
                char m[8];
                snprintf(m, sizeof(m), "%04o", fr->mode & 07777);
                bad |= put(f, "mode", json_string(m));
            }
            bad |= put(f, "hunks", json_integer((json_int_t)fr->n_hunks));
            bad |= put(f, "offsets", offs);
            offs = NULL;
            bad |= json_array_append_new(files, f) < 0;
            f = NULL;
        }
        json_decref(offs);
        json_decref(f);
    }
    if (!bad)
        bad |= put(o, "files", files);
    else
        json_decref(files);
    const struct sp_patch_failure *fl = r->failure;
    if (!bad && fl) {
        json_t *x = json_object();
        bad |= !x;
        if (x) {
            bad |= put(x, "path", jstr(fl->path));
            bad |= put(x, "hunk", jstr(fl->hunk_header));
            bad |= put(x, "hunk_index", json_integer((json_int_t)fl->hunk_index));
            bad |= put(x, "line", json_integer((json_int_t)fl->line));
            bad |= put(x, "already_applied", json_boolean(fl->already_applied));
            bad |= put(x, "first_diff", json_integer((json_int_t)fl->first_diff));
            bad |= put(x, "expected", jlines(fl->expected, fl->n_expected));
            bad |= put(x, "actual", jlines(fl->actual, fl->n_actual));
            bad |= put(o, "failure", x);
        }
    }
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
