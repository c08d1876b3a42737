/* test_patch.c — the patch engine against real diff -u and git diff output
 * (applied to a copy of the old tree and compared byte for byte with the
 * new one), and against hostile patches: traversal, symlinks, bounds,
 * binary, malformed, conflicts, rollback after a failed write. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "patch.h"

static char base[256];

/* Run a shell command in `base`, formatted; returns its exit status. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    char cmd[4096], full[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd '%s' && ( %s ) >/dev/null 2>&1", base,
             cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Read a file under base into a NUL-terminated buffer. */
static char *slurp(const char *rel, size_t *ret_len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    b[n] = '\0';
    if (ret_len)
        *ret_len = n;
    return b;
}

static int open_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Parse and apply a patch file (under base) to the tree `dir`. */
static int apply_file(const char *patch, const char *dir, int strip,
                      bool dry, struct sp_patch_report *rep, sp_error *err)
{
    size_t len = 0;
    char *text = slurp(patch, &len);
    assert_non_null(text);
    struct sp_patch *p = NULL;
    int r = sp_patch_parse(text, len, strip, &p, err);
    free(text);
    if (r < 0)
        return r;
    int fd = open_dir(dir);
    r = sp_patch_apply(fd, p, dry, rep, err);
    close(fd);
    sp_patch_free(p);
    return r;
}

static int apply_text(const char *text, const char *dir, int strip,
                      struct sp_patch_report *rep, sp_error *err)
{
    struct sp_patch *p = NULL;
    int r = sp_patch_parse(text, strlen(text), strip, &p, err);
    if (r < 0)
        return r;
    int fd = open_dir(dir);
    r = sp_patch_apply(fd, p, false, rep, err);
    close(fd);
    sp_patch_free(p);
    return r;
}

static int parse_text(const char *text, int strip, sp_error *err)
{
    struct sp_patch *p = NULL;
    int r = sp_patch_parse(text, strlen(text), strip, &p, err);
    sp_patch_free(p);
    return r;
}

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/sp-patch-test-XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

/* No temp file left behind anywhere in the tree. */
static void assert_no_temps(const char *dir)
{
    assert_int_equal(sh("test -z \"$(find %s -name '.sp-patch-*')\"", dir), 0);
}

static bool is_exec(const char *rel)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    return stat(path, &st) == 0 && (st.st_mode & 0100);
}

/* ---- real patches ----------------------------------------------------- */

static void make_old_tree(void)
{
    assert_int_equal(sh("mkdir -p old/src old/gone && "
                        "printf 'a\\nb\\nc\\nd\\ne\\nf\\ng\\nh\\ni\\nj\\n' > old/src/main.c && "
                        "printf 'keep\\nnoeol' > old/noeol.txt && "
                        "printf 'last\\n' > old/addnoeol.txt && "
                        "printf 'one\\r\\ntwo\\r\\nthree\\r\\n' > old/crlf.txt && "
                        "printf 'bye\\nbye\\n' > old/gone/del.txt && "
                        "seq 1 200 > old/long.txt"),
                     0);
}

static void make_new_tree(void)
{
    assert_int_equal(sh("cp -a old new && cd new && "
                        "printf 'a\\nB\\nc\\nd\\ne\\nf\\ng\\nH\\nH2\\ni\\nj\\n' > src/main.c && "
                        "printf 'keep\\nnoeol changed' > noeol.txt && "
                        "printf 'last\\nmore' > addnoeol.txt && "
                        "printf 'one\\r\\n2\\r\\nthree\\r\\nfour\\r\\n' > crlf.txt && "
                        "rm -r gone && mkdir -p fresh/deep && "
                        "printf 'new file\\n' > fresh/deep/n.txt && "
                        "seq 1 200 | sed -e 's/^50$/fifty/' -e 's/^150$/150x/' > long.txt"),
                     0);
}

static void test_diff_u(void **state)
{
    (void)state;
    make_old_tree();
    make_new_tree();
    assert_int_equal(sh("diff -ruN old new > p.diff"), 1);
    assert_int_equal(sh("cp -a old work"), 0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_file("p.diff", "work", 1, false, &rep, &err);
    if (r < 0)
        fail_msg("apply: %s", err.message);
    assert_true(rep.ok);
    assert_int_equal(sh("diff -r work new"), 0);
    assert_no_temps("work");
    /* The deleted file's empty directory is removed too. */
    assert_int_equal(sh("test ! -e work/gone"), 0);
    char *json = sp_patch_report_json(&rep);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"status\":\"created\""));
    assert_non_null(strstr(json, "\"status\":\"deleted\""));
    free(json);
    sp_patch_report_free(&rep);

    /* Unified with no context (-U0), -p0 names. */
    assert_int_equal(sh("rm -rf work && cp -a old work && cd work && "
                        "diff -U0 ../old/long.txt ../new/long.txt "
                        "| sed -e 's|^--- ../old/|--- |' -e 's|^+++ ../new/|+++ |' "
                        "> ../u0.diff; test -s ../u0.diff"), 0);
    r = apply_file("u0.diff", "work", 0, false, &rep, &err);
    if (r < 0)
        fail_msg("apply -U0: %s", err.message);
    assert_int_equal(sh("cmp work/long.txt new/long.txt"), 0);
    sp_patch_report_free(&rep);
}

static void test_git_diff(void **state)
{
    (void)state;
    assert_int_equal(
        sh("mkdir repo && cd repo && git init -q && "
           "git config user.email t@t && git config user.name t && "
           "mkdir -p lib docs && "
           "seq 1 40 > lib/moved.c && "
           "printf '#!/bin/sh\\necho hi\\n' > run.sh && "
           "printf 'mode only\\n' > mode.txt && "
           "printf 'to delete\\n' > docs/old.md && "
           "printf 'x\\ny' > tail.txt && "
           "printf 'sp\\n' > 'sp ace.txt' && "
           "printf 'u\\n' > \"$(printf '\\303\\274.txt')\" && "
           ": > empty-del && "
           "git add -A && git commit -qm init && "
           "cd .. && cp -a repo old && rm -rf old/.git"),
        0);
    assert_int_equal(
        sh("cd repo && "
           "git mv lib/moved.c lib/renamed.c && "
           "sed -i 's/^20$/twenty/' lib/renamed.c && "
           "printf 'echo bye\\n' >> run.sh && chmod +x run.sh && "
           "chmod +x mode.txt && "
           "git rm -q docs/old.md && git rm -q empty-del && "
           "mkdir -p brand/new && printf 'hello\\n' > brand/new/file.txt && "
           ": > brand/empty && "
           "printf 'x\\ny\\nz\\n' > tail.txt && "
           "printf 'sp2\\n' >> 'sp ace.txt' && "
           "printf 'u2\\n' >> \"$(printf '\\303\\274.txt')\" && "
           "git add -A && git diff --cached -M > ../g.diff"),
        0);
    assert_int_equal(sh("grep -q '^rename from lib/moved.c' g.diff && "
                        "grep -q '^new mode 100755' g.diff && "
                        "grep -q '^diff --git \"a/' g.diff"),
                     0);
    assert_int_equal(sh("cp -a old work"), 0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_file("g.diff", "work", 1, false, &rep, &err);
    if (r < 0)
        fail_msg("apply: %s", err.message);
    assert_int_equal(sh("diff -r --exclude=.git work repo"), 0);
    assert_no_temps("work");
    assert_true(is_exec("work/run.sh"));
    assert_true(is_exec("work/mode.txt"));
    assert_false(is_exec("work/tail.txt"));
    char *json = sp_patch_report_json(&rep);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"status\":\"renamed\""));
    assert_non_null(strstr(json, "\"old_path\":\"lib/moved.c\""));
    assert_non_null(strstr(json, "\"status\":\"mode\""));
    assert_non_null(strstr(json, "\"mode\":\"0755\""));
    free(json);
    sp_patch_report_free(&rep);

    /* Applying it again: every file fails; the first reports why. */
    r = apply_file("g.diff", "work", 1, false, &rep, &err);
    assert_true(r < 0);
    sp_patch_report_free(&rep);
}

static void test_mismatch_changes_nothing(void **state)
{
    (void)state;
    make_old_tree();
    make_new_tree();
    assert_int_equal(sh("diff -ruN old new > p.diff; cp -a old work && "
                        "sed -i 's/^h$/CHANGED/' work/src/main.c && "
                        "cp -a work pristine"),
                     0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_file("p.diff", "work", 1, false, &rep, &err);
    assert_int_equal(r, -ESTALE);
    assert_false(rep.ok);
    assert_non_null(rep.failure);
    assert_string_equal(rep.failure->path, "src/main.c");
    assert_non_null(strstr(rep.failure->hunk_header, "@@ -1,10 +1,11 @@"));
    assert_false(rep.failure->already_applied);
    assert_int_equal(rep.failure->line, 1);
    assert_int_equal(rep.failure->n_expected, 10);
    assert_string_equal(rep.failure->expected[7], "h");
    assert_string_equal(rep.failure->actual[7], "CHANGED");
    assert_int_equal(rep.failure->first_diff, 7);
    assert_non_null(strstr(err.message, "src/main.c"));
    char *json = sp_patch_report_json(&rep);
    assert_non_null(strstr(json, "\"actual\":["));
    assert_non_null(strstr(json, "\"CHANGED\""));
    free(json);
    sp_patch_report_free(&rep);
    assert_int_equal(sh("diff -r work pristine"), 0);
    assert_no_temps("work");
}

static void test_already_applied_and_offset(void **state)
{
    (void)state;
    make_old_tree();
    make_new_tree();
    assert_int_equal(sh("diff -u old/long.txt new/long.txt > l.diff; "
                        "cp -a new work"),
                     0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_file("l.diff", "work", 1, false, &rep, &err);
    assert_int_equal(r, -ESTALE);
    assert_non_null(rep.failure);
    assert_true(rep.failure->already_applied);
    assert_non_null(strstr(err.message, "already applied"));
    sp_patch_report_free(&rep);

    /* Five lines added on top: the hunks apply at offset 5. */
    assert_int_equal(sh("rm -rf work && cp -a old work && "
                        "(seq 1 5; cat old/long.txt) > work/long.txt && "
                        "(seq 1 5; cat new/long.txt) > expect.txt"),
                     0);
    r = apply_file("l.diff", "work", 1, false, &rep, &err);
    if (r < 0)
        fail_msg("apply: %s", err.message);
    assert_int_equal(rep.n_files, 1);
    assert_int_equal(rep.files[0].n_hunks, 2);
    assert_int_equal(rep.files[0].offsets[0], 5);
    assert_int_equal(rep.files[0].offsets[1], 5);
    assert_int_equal(sh("cmp work/long.txt expect.txt"), 0);
    sp_patch_report_free(&rep);
}

/* A CRLF file patched by an LF patch keeps its line endings. */
static void test_crlf(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir w && printf 'a\\r\\nb\\r\\nc\\r\\n' > w/f.txt"), 0);
    const char *patch = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n";
    sp_error err = {0};
    int r = apply_text(patch, "w", 1, NULL, &err);
    if (r < 0)
        fail_msg("apply: %s", err.message);
    char *s = slurp("w/f.txt", NULL);
    assert_string_equal(s, "a\r\nB\r\nc\r\n");
    free(s);
}

static void test_no_newline(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir w && printf 'a\\nb' > w/f && printf 'a\\nb\\n' > w/g"), 0);
    /* The patch says the last line has no newline; g has one: no match. */
    const char *patch = "--- a/g\n+++ b/g\n@@ -1,2 +1,2 @@\n a\n-b\n"
                        "\\ No newline at end of file\n+c\n";
    sp_error err = {0};
    assert_int_equal(apply_text(patch, "w", 1, NULL, &err), -ESTALE);
    const char *patch2 = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n"
                         "\\ No newline at end of file\n+c\n";
    assert_int_equal(apply_text(patch2, "w", 1, NULL, &err), 0);
    char *s = slurp("w/f", NULL);
    assert_string_equal(s, "a\nc\n");
    free(s);
}

/* ---- hostile patches -------------------------------------------------- */

static void test_traversal(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int strip;
    } bad[] = {
        {"../x", 0},        {"/etc/passwd", 0}, {"a/../../x", 1},
        {"a/b/../x", 1},    {"a/./x", 1},       {"a/x/", 1},
        {"a/x//y", 1},      {"..", 0},          {"a/..", 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char patch[512];
        snprintf(patch, sizeof(patch),
                 "--- %s\n+++ %s\n@@ -1 +1 @@\n-a\n+b\n", bad[i].name,
                 bad[i].name);
        sp_error err = {0};
        int r = parse_text(patch, bad[i].strip, &err);
        if (r != -EINVAL)
            fail_msg("%s: %d", bad[i].name, r);
        assert_non_null(strstr(err.message, "path") ? err.message
                                                    : strstr(err.message, "name"));
    }
    sp_error err = {0};
    assert_int_equal(parse_text("--- a/../../x\n+++ b/../../x\n@@ -1 +1 @@\n-a\n+b\n",
                                1, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "../../x"));
    /* Git headers and quoted names are checked the same way. */
    assert_int_equal(parse_text("diff --git a/x b/x\nrename from x\n"
                                "rename to ../y\n", 1, &err), -EINVAL);
    assert_int_equal(parse_text("diff --git \"a/\\056\\056/z\" \"b/\\056\\056/z\"\n"
                                "new file mode 100644\n", 1, &err), -EINVAL);
    assert_int_equal(parse_text("diff --git \"a/x\\000y\" \"b/x\\000y\"\n"
                                "new file mode 100644\n", 1, &err), -EINVAL);
}

static void test_symlink_refused(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir -p w outside && printf 'secret\\n' > outside/f && "
                        "ln -s ../outside w/link && ln -s ../outside/f w/flink && "
                        "cp -a outside outside.orig"),
                     0);
    sp_error err = {0};
    /* Through a symlinked parent. */
    int r = apply_text("--- a/link/f\n+++ b/link/f\n@@ -1 +1 @@\n-secret\n+owned\n",
                       "w", 1, NULL, &err);
    assert_int_equal(r, -ELOOP);
    assert_non_null(strstr(err.message, "link/f"));
    /* The symlink itself. */
    r = apply_text("--- a/flink\n+++ b/flink\n@@ -1 +1 @@\n-secret\n+owned\n",
                   "w", 1, NULL, &err);
    assert_int_equal(r, -ELOOP);
    /* Creating a file through it. */
    r = apply_text("--- /dev/null\n+++ b/link/new\n@@ -0,0 +1 @@\n+owned\n",
                   "w", 1, NULL, &err);
    assert_int_equal(r, -ELOOP);
    /* Deleting through it. */
    r = apply_text("--- a/link/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-secret\n",
                   "w", 1, NULL, &err);
    assert_int_equal(r, -ELOOP);
    assert_int_equal(sh("diff -r outside outside.orig && test -L w/link && "
                        "test -L w/flink"), 0);
}

static void test_bounds(void **state)
{
    (void)state;
    sp_error err = {0};
    struct sp_patch *p = NULL;
    size_t big = (size_t)SP_PATCH_MAX_TEXT + 1;
    char *text = calloc(1, big);
    assert_non_null(text);
    assert_int_equal(sp_patch_parse(text, big, 1, &p, &err), -EFBIG);
    free(text);

    /* A line over the limit. */
    size_t ll = (size_t)SP_PATCH_MAX_LINE + 100;
    char *lt = malloc(ll + 200);
    if (!lt)
        fail();
    static const char head[] = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+";
    size_t n = sizeof(head) - 1;
    memcpy(lt, head, n);
    for (size_t i = 0; i < ll; i++)
        lt[n + i] = 'x';
    lt[n + ll] = '\n';
    lt[n + ll + 1] = '\0';
    assert_int_equal(sp_patch_parse(lt, n + ll + 1, 1, &p, &err), -EFBIG);
    free(lt);

    /* Too many files. */
    size_t cap = (size_t)(SP_PATCH_MAX_FILES + 1) * 64, len = 0;
    text = malloc(cap);
    for (int i = 0; i <= SP_PATCH_MAX_FILES; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "--- a/f%d\n+++ b/f%d\n@@ -1 +1 @@\n-a\n+b\n",
                                i, i);
    assert_int_equal(sp_patch_parse(text, len, 1, &p, &err), -EFBIG);
    assert_non_null(strstr(err.message, "files"));
    free(text);

    /* Huge numbers in a hunk header. */
    assert_int_equal(parse_text("--- a/x\n+++ b/x\n@@ -99999999999 +1 @@\n-a\n+b\n",
                                1, &err), -EINVAL);
    /* A stated line far beyond the file still searches and fails cleanly. */
    assert_int_equal(sh("mkdir w && printf 'a\\n' > w/x"), 0);
    assert_int_equal(apply_text("--- a/x\n+++ b/x\n@@ -999999999 +999999999 @@\n-q\n+b\n",
                                "w", 1, NULL, &err), -ESTALE);
    assert_null(p);
}

static void test_binary_and_malformed(void **state)
{
    (void)state;
    sp_error err = {0};
    assert_int_equal(parse_text("diff --git a/x.bin b/x.bin\nindex 1..2 100644\n"
                                "GIT binary patch\nliteral 3\nKcmZ?\n", 1, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "binary"));
    assert_non_null(strstr(err.message, "x.bin"));
    assert_int_equal(parse_text("diff --git a/x.bin b/x.bin\nindex 1..2 100644\n"
                                "Binary files a/x.bin and b/x.bin differ\n", 1, &err),
                     -EINVAL);
    assert_int_equal(parse_text("Binary files old/x and new/x differ\n", 1, &err),
                     -EINVAL);
    static const char *bad[] = {
        "",
        "just some text\n",
        "@@ -1 +1 @@\n-a\n+b\n",
        "--- a/x\n+++ b/x\n",
        "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n",         /* truncated */
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n",       /* wrong counts */
        "--- a/x\n+++ b/x\n@@ -1 +1\n-a\n+b\n",              /* bad header */
        "--- a/x\n+++ b/x\n@@ -a +1 @@\n-a\n+b\n",
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\nxa\n+b\n",           /* bad line */
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n\\ No newline\n-a\n+b\n",
        "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n\\ No newline\n-b\n+a\n+b\n",
        "--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n",
        "--- x\n+++ x\n@@ -1 +1 @@\n-a\n+b\n",               /* -p1 strips all */
        "diff --git a/x b/x\nold mode 120000\nnew mode 100644\n",
        "diff --git a/x b/y\n--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n",
        "diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\n",
        "diff --git a/x b/x\nnew file mode 160000\n",
        "diff --cc x\n",
        "*** a/x\n--- b/x\n***************\n",
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse_text(bad[i], 1, &err);
        if (r >= 0)
            fail_msg("accepted malformed patch %zu", i);
        assert_true(err.message[0] != '\0');
    }
    /* Leading garbage (a mail, a commit message) is fine. */
    assert_int_equal(parse_text("From: x\nSubject: y\n\n  indented text\n"
                                "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n-- \n2.39\n",
                                1, &err), 0);
}

static void test_create_delete_conflicts(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir w && printf 'here\\n' > w/exists && "
                        "printf 'a\\n' > w/other"), 0);
    sp_error err = {0};
    /* A new file that exists: nothing changes (other stays as it was). */
    int r = apply_text("--- a/other\n+++ b/other\n@@ -1 +1 @@\n-a\n+b\n"
                       "--- /dev/null\n+++ b/exists\n@@ -0,0 +1 @@\n+new\n",
                       "w", 1, NULL, &err);
    assert_int_equal(r, -EEXIST);
    assert_non_null(strstr(err.message, "exists"));
    char *s = slurp("w/other", NULL);
    assert_string_equal(s, "a\n");
    free(s);
    /* Deleting a missing file. */
    r = apply_text("--- a/missing\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n", "w",
                   1, NULL, &err);
    assert_int_equal(r, -ENOENT);
    assert_non_null(strstr(err.message, "missing"));
    /* Deleting a file with content the patch does not list. */
    r = apply_text("diff --git a/exists b/exists\ndeleted file mode 100644\n",
                   "w", 1, NULL, &err);
    assert_int_equal(r, -ESTALE);
    /* Git rename onto an existing file. */
    r = apply_text("diff --git a/other b/exists\nsimilarity index 100%\n"
                   "rename from other\nrename to exists\n", "w", 1, NULL, &err);
    assert_int_equal(r, -EEXIST);
    /* A directory is not a file. */
    assert_int_equal(sh("mkdir w/dir"), 0);
    r = apply_text("--- a/dir\n+++ b/dir\n@@ -1 +1 @@\n-a\n+b\n", "w", 1,
                   NULL, &err);
    assert_int_equal(r, -EINVAL);
    assert_int_equal(sh("test \"$(ls -A w | wc -l)\" = 3"), 0);
}

static void test_dry_run(void **state)
{
    (void)state;
    make_old_tree();
    make_new_tree();
    assert_int_equal(sh("diff -ruN old new > p.diff; cp -a old work"), 0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_file("p.diff", "work", 1, true, &rep, &err);
    if (r < 0)
        fail_msg("dry run: %s", err.message);
    assert_true(rep.ok);
    assert_true(rep.dry_run);
    assert_true(rep.n_files >= 6);
    sp_patch_report_free(&rep);
    assert_int_equal(sh("diff -r work old"), 0);
    assert_no_temps("work");
}

/* A write that fails midway (file size limit) rolls back what was
 * already written: the tree is as before and no temp file is left. */
static void test_rollback(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir -p old && printf 'a\\n' > old/a && "
                        "printf 'b\\n' > old/b && printf 'gone\\n' > old/c && "
                        "cp -a old new && printf 'A\\n' > new/a && rm new/c && "
                        "mkdir -p new/sub && printf 'small\\n' > new/sub/s && "
                        "head -c 100000 /dev/zero | tr '\\0' 'x' > new/b && "
                        "diff -ruN old new > p.diff; "
                        "grep -n '^+++' p.diff | head -1 | grep -q new/a && "
                        "cp -a old work && cp -a old pristine"),
                     0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 50000, .rlim_max = 50000};
        setrlimit(RLIMIT_FSIZE, &rl);
        sp_error err = {0};
        int r = apply_file("p.diff", "work", 1, false, NULL, &err);
        _exit(r == -EFBIG && strstr(err.message, "restored") ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(sh("diff -r work pristine"), 0);
    assert_int_equal(sh("test ! -e work/sub"), 0);
    assert_no_temps("work");
}

static void test_json_invalid_utf8(void **state)
{
    (void)state;
    assert_int_equal(sh("mkdir w && printf 'x\\377y\\n' > w/f"), 0);
    struct sp_patch_report rep = {0};
    sp_error err = {0};
    int r = apply_text("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-q\377\n+b\n", "w", 1,
                       &rep, &err);
    assert_int_equal(r, -ESTALE);
    char *json = sp_patch_report_json(&rep);
    assert_non_null(json);
    assert_non_null(strstr(json, "x\xef\xbf\xbdy"));
    free(json);
    sp_patch_report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_diff_u, setup, teardown),
        cmocka_unit_test_setup_teardown(test_git_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatch_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_already_applied_and_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_newline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traversal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_delete_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_invalid_utf8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
