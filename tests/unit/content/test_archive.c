/* test_archive.c — unit tests for archive.c: real hostile archives built
 * here with libarchive's writer (or by hand, for headers no writer makes),
 * each checked for its exact outcome and that nothing appeared outside the
 * destination; and a create/extract round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_archive.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures: a scratch root holding dest/ and outside/canary -------- */

struct box {
    char root[64];
    char dest[96];
    char outside[96];
    int destfd;
};

static int box_setup(void **state)
{
    struct box *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    snprintf(b->root, sizeof(b->root), "/tmp/sp-archtest-XXXXXX");
    assert_non_null(mkdtemp(b->root));
    snprintf(b->dest, sizeof(b->dest), "%s/dest", b->root);
    snprintf(b->outside, sizeof(b->outside), "%s/outside", b->root);
    assert_int_equal(mkdir(b->dest, 0755), 0);
    assert_int_equal(mkdir(b->outside, 0755), 0);
    char canary[128];
    snprintf(canary, sizeof(canary), "%s/canary", b->outside);
    FILE *f = fopen(canary, "w");
    assert_non_null(f);
    fputs("canary\n", f);
    fclose(f);
    b->destfd = open(b->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(b->destfd >= 0);
    *state = b;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        chmod(p, 0700);
    return remove(p) < 0 ? 0 : 0;
}

static void rm_rf(const char *p)
{
    /* Directories may be 0555 from an archive: make them writable first. */
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int box_teardown(void **state)
{
    struct box *b = *state;
    close(b->destfd);
    rm_rf(b->root);
    free(b);
    return 0;
}

/* Nothing but dest/ and outside/canary (unchanged) under the root, and no
 * escaped file anywhere we aimed at. */
static void assert_outside_clean(const struct box *b)
{
    DIR *d = opendir(b->root);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (strcmp(de->d_name, "dest") && strcmp(de->d_name, "outside"))
            fail_msg("unexpected %s/%s", b->root, de->d_name);
    }
    closedir(d);
    d = opendir(b->outside);
    assert_non_null(d);
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (strcmp(de->d_name, "canary"))
            fail_msg("unexpected %s/%s", b->outside, de->d_name);
    }
    closedir(d);
    char p[160], buf[64] = {0};
    snprintf(p, sizeof(p), "%s/canary", b->outside);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "canary\n");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    assert_int_not_equal(access("/tmp/sp-archtest-escaped", F_OK), 0);
}

/* No temporary file was left in a directory of dest. */
static void assert_no_temp(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, ".sp-", 4))
            fail_msg("temporary %s/%s left behind", dir, de->d_name);
    closedir(d);
}

static bool exists_in(const struct box *b, const char *rel)
{
    struct stat st;
    return fstatat(b->destfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- building archives ------------------------------------------------ */

enum { F_TAR, F_TGZ, F_ZIP };

struct writer {
    struct archive *a;
    int fd;
};

static struct writer w_new(int format)
{
    struct writer w = {.a = archive_write_new(),
                       .fd = memfd_create("arch", MFD_CLOEXEC)};
    assert_non_null(w.a);
    assert_true(w.fd >= 0);
    if (format == F_ZIP) {
        assert_int_equal(archive_write_set_format_zip(w.a), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_set_format_pax_restricted(w.a),
                         ARCHIVE_OK);
        if (format == F_TGZ)
            assert_int_equal(archive_write_add_filter_gzip(w.a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_open_fd(w.a, w.fd), ARCHIVE_OK);
    return w;
}

/* type: AE_IF*; link: symlink target, or for hard links (hard=true) the
 * target; data may be NULL with size > 0 (zeros). */
static void w_add(struct writer *w, const char *name, unsigned type, int mode,
                  const char *link, bool hard, const void *data, size_t size)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, (mode_t)mode);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (link && hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    if (type == AE_IFCHR)
        archive_entry_set_rdev(e, makedev(1, 3));
    archive_entry_set_size(e, type == AE_IFREG && !hard ? (la_int64_t)size : 0);
    assert_true(archive_write_header(w->a, e) >= ARCHIVE_WARN);
    if (type == AE_IFREG && !hard && size) {
        static const char zeros[65536];
        size_t done = 0;
        while (done < size) {
            size_t n =
                size - done < sizeof(zeros) ? size - done : sizeof(zeros);
            const char *p = data ? (const char *)data + done : zeros;
            assert_true(archive_write_data(w->a, p, n) == (la_ssize_t)n);
            done += n;
        }
    }
    archive_entry_free(e);
}

static void w_file(struct writer *w, const char *name, const char *text)
{
    w_add(w, name, AE_IFREG, 0644, NULL, false, text, strlen(text));
}

static int w_done(struct writer *w)
{
    assert_int_equal(archive_write_close(w->a), ARCHIVE_OK);
    archive_write_free(w->a);
    assert_int_equal(lseek(w->fd, 0, SEEK_SET), 0);
    return w->fd;
}

/* A ustar header written by hand, for names no writer would produce. */
static void raw_tar(int fd, const char *name, size_t namelen, char type,
                    const char *text)
{
    unsigned char h[512] = {0};
    size_t len = text ? strlen(text) : 0;
    memcpy(h, name, namelen < 100 ? namelen : 100);
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 108, "0000000", 7);
    memcpy(h + 116, "0000000", 7);
    char num[32];
    snprintf(num, sizeof(num), "%011zo", len);
    memcpy(h + 124, num, 11);
    memcpy(h + 136, "00000000000", 11);
    memset(h + 148, ' ', 8);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        sum += h[i];
    snprintf(num, sizeof(num), "%06o", sum);
    memcpy(h + 148, num, 7);
    h[155] = ' ';
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
    if (len) {
        char pad[512] = {0};
        memcpy(pad, text, len);
        assert_int_equal(write(fd, pad, sizeof(pad)), (ssize_t)sizeof(pad));
    }
}

static int raw_done(int fd)
{
    char z[1024] = {0};
    assert_int_equal(write(fd, z, sizeof(z)), (ssize_t)sizeof(z));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* Feed an fd through a pipe, so libarchive cannot seek (streamed zip). */
static int via_pipe(int fd, pid_t *ret_pid)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char buf[65536];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            if (write(p[1], buf, (size_t)n) != n)
                _exit(0);
        _exit(0);
    }
    close(p[1]);
    close(fd);
    *ret_pid = pid;
    return p[0];
}

static int extract(struct box *b, int fd, const struct sp_archive_limits *lim,
                   unsigned flags, struct sp_archive_stats *st, sp_error *err)
{
    int r = sp_archive_extract(fd, b->destfd, lim, flags, st, err);
    close(fd);
    return r;
}

#define assert_refused(r, err, code, name)                                     \
    do {                                                                       \
        assert_int_equal((r), -(code));                                        \
        if (!strstr((err).message, (name)))                                    \
            fail_msg("message \"%s\" does not name \"%s\"", (err).message,     \
                     (name));                                                  \
    } while (0)

/* ---- hostile archives ------------------------------------------------- */

static void test_dotdot(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    w_file(&w, "ok", "fine\n");
    w_file(&w, "../outside/evil", "pwned\n");
    sp_error err = {0};
    struct sp_archive_stats st;
    int r = extract(b, w_done(&w), NULL, 0, &st, &err);
    assert_refused(r, err, EPERM, "\"../outside/evil\"");
    assert_non_null(strstr(err.message, ".."));
    assert_true(exists_in(b, "ok")); /* not transactional: earlier stays */
    assert_int_equal(st.entries, 2);
    assert_outside_clean(b);

    /* ".." hidden in the middle, and in a directory entry. */
    const char *names[] = {"a/../../outside/evil", "a/b/../../..",
                           "./../outside/evil"};
    for (size_t i = 0; i < 3; i++) {
        w = w_new(F_TAR);
        w_file(&w, names[i], "x");
        r = extract(b, w_done(&w), NULL, 0, NULL, &err);
        assert_refused(r, err, EPERM, names[i]);
    }
    assert_outside_clean(b);
}

static void test_absolute(void **state)
{
    struct box *b = *state;
    char abs[160];
    snprintf(abs, sizeof(abs), "%s/evil", b->outside);
    struct writer w = w_new(F_TAR);
    w_file(&w, abs, "pwned\n");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EPERM, abs);
    assert_non_null(strstr(err.message, "absolute"));
    w = w_new(F_TAR);
    w_file(&w, "/tmp/sp-archtest-escaped", "pwned\n");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EPERM, "/tmp/sp-archtest-escaped");
    assert_outside_clean(b);
    assert_false(exists_in(b, "tmp"));
}

/* GNU tar CVE-2025-45582: a symlink, then a file written through it. */
static void test_symlink_then_file(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    w_add(&w, "x", AE_IFLNK, 0777, b->outside, false, NULL, 0);
    w_file(&w, "x/evil", "pwned\n");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "\"x/evil\"");
    assert_non_null(strstr(err.message, "symlink"));
    char target[160] = {0};
    assert_true(readlinkat(b->destfd, "x", target, sizeof(target) - 1) > 0);
    assert_string_equal(target, b->outside); /* stored as is */
    assert_outside_clean(b);

    /* Relative symlink, deeper file, a directory entry through it. */
    w = w_new(F_TAR);
    w_add(&w, "d/y", AE_IFLNK, 0777, "../../outside", false, NULL, 0);
    w_add(&w, "d/y/sub", AE_IFDIR, 0755, NULL, false, NULL, 0);
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "d/y/sub");
    w = w_new(F_TAR);
    w_add(&w, "z", AE_IFLNK, 0777, "../outside", false, NULL, 0);
    w_file(&w, "z/deep/evil", "pwned\n");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "z/deep/evil");
    /* Even with OVERWRITE the symlink is replaced, never followed. */
    w = w_new(F_TAR);
    w_add(&w, "q", AE_IFLNK, 0777, "../outside", false, NULL, 0);
    w_file(&w, "q/evil", "fine\n");
    r = extract(b, w_done(&w), NULL, SP_ARCHIVE_OVERWRITE, NULL, &err);
    assert_int_equal(r, 0);
    struct stat st;
    assert_int_equal(fstatat(b->destfd, "q", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_true(exists_in(b, "q/evil"));
    assert_outside_clean(b);
}

/* A symlink then a regular file of the same name: the file replaces the
 * link, it is not written through it. */
static void test_symlink_then_same_name(void **state)
{
    struct box *b = *state;
    char canary[160];
    snprintf(canary, sizeof(canary), "%s/canary", b->outside);
    struct writer w = w_new(F_TAR);
    w_add(&w, "s", AE_IFLNK, 0777, canary, false, NULL, 0);
    w_file(&w, "s", "replaced\n");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_int_equal(r, 0);
    struct stat st;
    assert_int_equal(fstatat(b->destfd, "s", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 9);
    assert_outside_clean(b);
}

/* A symlink that was in dest before is not followed either. */
static void test_preexisting_symlink(void **state)
{
    struct box *b = *state;
    assert_int_equal(symlinkat(b->outside, b->destfd, "pre"), 0);
    struct writer w = w_new(F_TAR);
    w_file(&w, "pre/evil", "pwned\n");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "pre/evil");
    assert_outside_clean(b);
}

/* node-tar CVE-2026-24842: hard links out of dest. */
static void test_hardlinks(void **state)
{
    struct box *b = *state;
    char canary[160];
    snprintf(canary, sizeof(canary), "%s/canary", b->outside);
    struct {
        const char *target;
        int code;
        const char *word;
    } bad[] = {
        {"/etc/passwd", EPERM, "absolute"},
        {canary, EPERM, "absolute"},
        {"../outside/canary", EPERM, ".."},
        {"missing", EPERM, "extracted earlier"},
        {"pre", EPERM, "extracted earlier"},       /* in dest, not ours */
        {"sl", EPERM, "extracted earlier"},        /* a symlink of ours */
        {"sl/canary", ENOTDIR, "not a directory"}, /* through a symlink */
        {"dir", EPERM, "extracted earlier"},       /* a directory */
    };
    int fd = openat(b->destfd, "pre", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    for (size_t i = 0; i < N_ELEM(bad); i++) {
        struct writer w = w_new(F_TAR);
        w_add(&w, "sl", AE_IFLNK, 0777, b->outside, false, NULL, 0);
        w_add(&w, "dir", AE_IFDIR, 0755, NULL, false, NULL, 0);
        w_add(&w, "hl", AE_IFREG, 0644, bad[i].target, true, NULL, 0);
        sp_error err = {0};
        int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
        if (bad[i].code == ENOTDIR) {
            /* resolving the target's parent never follows "sl" */
            assert_int_equal(r, -EPERM);
        } else {
            assert_refused(r, err, bad[i].code, "\"hl\"");
            assert_non_null(strstr(err.message, bad[i].word));
        }
        assert_false(exists_in(b, "hl"));
        assert_no_temp(b->dest);
        assert_outside_clean(b);
    }

    /* A link to a file of this archive works, and is the same inode. */
    struct writer w = w_new(F_TAR);
    w_file(&w, "data/real", "content\n");
    w_add(&w, "link", AE_IFREG, 0644, "data/real", true, NULL, 0);
    sp_error err = {0};
    assert_int_equal(extract(b, w_done(&w), NULL, 0, NULL, &err), 0);
    struct stat s1, s2;
    assert_int_equal(fstatat(b->destfd, "data/real", &s1, 0), 0);
    assert_int_equal(fstatat(b->destfd, "link", &s2, 0), 0);
    assert_int_equal(s1.st_ino, s2.st_ino);
    assert_int_equal(s1.st_nlink, 2);

    /* The same link again, and a file linked to itself: no leftovers. */
    w = w_new(F_TAR);
    w_file(&w, "data/real", "content\n");
    w_add(&w, "link", AE_IFREG, 0644, "data/real", true, NULL, 0);
    w_add(&w, "link", AE_IFREG, 0644, "data/real", true, NULL, 0);
    w_add(&w, "data/real", AE_IFREG, 0644, "data/real", true, NULL, 0);
    assert_int_equal(extract(b, w_done(&w), NULL, 0, NULL, &err), 0);
    assert_no_temp(b->dest);
    char data_dir[160];
    snprintf(data_dir, sizeof(data_dir), "%s/data", b->dest);
    assert_no_temp(data_dir);

    /* A file of this archive later replaced by a symlink is no target. */
    w = w_new(F_TAR);
    w_file(&w, "f", "content\n");
    w_add(&w, "f", AE_IFLNK, 0777, canary, false, NULL, 0);
    w_add(&w, "hl2", AE_IFREG, 0644, "f", true, NULL, 0);
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EPERM, "\"hl2\"");
    assert_outside_clean(b);
}

/* Image layers: a hard link may name a regular file of the layers below
 * (sp_archive_extract_layer), looked up without following any symlink,
 * honouring this layer's own whiteouts, opaque markers and replacements. */
static int extract_layer(struct box *b, const char *up, int fd, sp_error *err)
{
    assert_int_equal(mkdirat(b->destfd, up, 0755), 0);
    int upfd = openat(b->destfd, up, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int lowfd = openat(b->destfd, "low", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(upfd >= 0 && lowfd >= 0);
    int r = sp_archive_extract_layer(fd, upfd, lowfd, NULL,
                                     SP_ARCHIVE_OVERWRITE, NULL, err);
    close(fd);
    close(upfd);
    close(lowfd);
    return r;
}

static void test_layer_hardlinks(void **state)
{
    struct box *b = *state;
    char canary[160];
    snprintf(canary, sizeof(canary), "%s/canary", b->outside);
    /* The layers below: low/usr/bin/a, a directory, symlinks out. */
    struct writer w = w_new(F_TAR);
    w_file(&w, "usr/bin/a", "from below\n");
    w_add(&w, "usr/lib", AE_IFDIR, 0755, NULL, false, NULL, 0);
    w_add(&w, "sl", AE_IFLNK, 0777, canary, false, NULL, 0);
    w_add(&w, "d", AE_IFLNK, 0777, b->outside, false, NULL, 0);
    w_file(&w, "f", "a file\n");
    assert_true(mkdirat(b->destfd, "low", 0755) == 0);
    int lowfd = openat(b->destfd, "low", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(lowfd >= 0);
    sp_error err = {0};
    assert_int_equal(sp_archive_extract(w_done(&w), lowfd, NULL, 0, NULL, &err),
                     0);
    close(lowfd);

    /* A link to a lower file, a link to that link, a link through "." and
     * "//": one inode; a link to a file this layer made still works. */
    w = w_new(F_TAR);
    w_add(&w, "usr/bin/b", AE_IFREG, 0644, "usr/bin/a", true, NULL, 0);
    w_add(&w, "c", AE_IFREG, 0644, "usr/bin/b", true, NULL, 0);
    w_add(&w, "e", AE_IFREG, 0644, "./usr//bin/a", true, NULL, 0);
    w_file(&w, "new", "new\n");
    w_add(&w, "new2", AE_IFREG, 0644, "new", true, NULL, 0);
    assert_int_equal(extract_layer(b, "up0", w_done(&w), &err), 0);
    struct stat s0, s1, s2, s3;
    assert_int_equal(fstatat(b->destfd, "low/usr/bin/a", &s0, 0), 0);
    assert_int_equal(fstatat(b->destfd, "up0/usr/bin/b", &s1, 0), 0);
    assert_int_equal(fstatat(b->destfd, "up0/c", &s2, 0), 0);
    assert_int_equal(fstatat(b->destfd, "up0/e", &s3, 0), 0);
    assert_int_equal(s0.st_ino, s1.st_ino);
    assert_int_equal(s0.st_ino, s2.st_ino);
    assert_int_equal(s0.st_ino, s3.st_ino);
    assert_int_equal(s0.st_nlink, 4);
    assert_true(exists_in(b, "up0/new2"));

    /* A name this layer replaced is what the link gets. */
    w = w_new(F_TAR);
    w_file(&w, "usr/bin/a", "replaced\n");
    w_add(&w, "r", AE_IFREG, 0644, "usr/bin/a", true, NULL, 0);
    assert_int_equal(extract_layer(b, "up1", w_done(&w), &err), 0);
    assert_int_equal(fstatat(b->destfd, "up1/r", &s1, 0), 0);
    assert_int_equal(fstatat(b->destfd, "up1/usr/bin/a", &s2, 0), 0);
    assert_int_equal(s1.st_ino, s2.st_ino);
    assert_int_not_equal(s1.st_ino, s0.st_ino);

    struct {
        const char *pre;      /* an entry of this layer before the link */
        unsigned pre_type;    /* its type */
        const char *pre_link; /* its symlink target */
        const char *target;
        int code;
        const char *word;
    } bad[] = {
        {NULL, 0, NULL, "usr/lib", EPERM, "is a directory"},
        {NULL, 0, NULL, "usr", EPERM, "is a directory"},
        {NULL, 0, NULL, "sl", EPERM, "is a symlink"},
        {NULL, 0, NULL, "d/canary", EPERM, "goes through \"d\""},
        {NULL, 0, NULL, "f/x", EPERM, "goes through \"f\""},
        {NULL, 0, NULL, "../outside/canary", EPERM, ".."},
        {NULL, 0, NULL, "usr/../../outside/canary", EPERM, ".."},
        {NULL, 0, NULL, canary, EPERM, "absolute"},
        {NULL, 0, NULL, "missing", EPERM, "in neither"},
        {NULL, 0, NULL, "usr/bin/a/x", EPERM, "goes through \"a\""},
        /* hidden by this layer: a whiteout, an opaque marker, a symlink,
         * a directory, a whiteout of a parent */
        {"usr/bin/.wh.a", AE_IFREG, NULL, "usr/bin/a", EPERM, "in neither"},
        {"usr/bin/.wh..wh..opq", AE_IFREG, NULL, "usr/bin/a", EPERM,
         "in neither"},
        {".wh.usr", AE_IFREG, NULL, "usr/bin/a", EPERM, "in neither"},
        {"usr", AE_IFLNK, "low/usr", "usr/bin/a", EPERM,
         "goes through \"usr\""},
        {"usr/bin", AE_IFLNK, b->outside, "usr/bin/canary", EPERM,
         "goes through \"bin\""},
        {"usr/bin/a", AE_IFDIR, NULL, "usr/bin/a", EPERM, "is a directory"},
        {"usr/bin/a", AE_IFLNK, canary, "usr/bin/a", EPERM, "is a symlink"},
    };
    for (size_t i = 0; i < N_ELEM(bad); i++) {
        char up[16];
        snprintf(up, sizeof(up), "bad%zu", i);
        w = w_new(F_TAR);
        if (bad[i].pre && bad[i].pre_type == AE_IFREG)
            w_file(&w, bad[i].pre, "");
        else if (bad[i].pre)
            w_add(&w, bad[i].pre, bad[i].pre_type, 0755, bad[i].pre_link, false,
                  NULL, 0);
        w_add(&w, "hl", AE_IFREG, 0644, bad[i].target, true, NULL, 0);
        memset(&err, 0, sizeof(err));
        int r = extract_layer(b, up, w_done(&w), &err);
        assert_refused(r, err, bad[i].code, "\"hl\"");
        if (!strstr(err.message, bad[i].word))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message,
                     bad[i].word);
        char hl[32];
        snprintf(hl, sizeof(hl), "%s/hl", up);
        assert_false(exists_in(b, hl));
        char updir[160];
        snprintf(updir, sizeof(updir), "%s/%s", b->dest, up);
        assert_no_temp(updir);
        assert_outside_clean(b);
    }
    /* Unchanged below; the plain extractor still refuses a link into a
     * tree it did not make. */
    assert_int_equal(fstatat(b->destfd, "low/usr/bin/a", &s1, 0), 0);
    assert_int_equal(s1.st_nlink, 4);
    w = w_new(F_TAR);
    w_add(&w, "hl", AE_IFREG, 0644, "low/usr/bin/a", true, NULL, 0);
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EPERM, "extracted earlier");
    /* No lower fd: refused as usage. */
    assert_int_equal(
        sp_archive_extract_layer(0, b->destfd, -1, NULL, 0, NULL, &err),
        -EBADF);
}

static void test_special_files_skipped(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    w_add(&w, "null", AE_IFCHR, 0666, NULL, false, NULL, 0);
    w_add(&w, "disk", AE_IFBLK, 0666, NULL, false, NULL, 0);
    w_add(&w, "fifo", AE_IFIFO, 0644, NULL, false, NULL, 0);
    w_file(&w, "after", "ok\n");
    sp_error err = {0};
    struct sp_archive_stats st;
    int r = extract(b, w_done(&w), NULL, 0, &st, &err);
    assert_int_equal(r, 0);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.skipped, 3);
    assert_int_equal(st.nskips, 3);
    assert_string_equal(st.skips[0].path, "null");
    assert_string_equal(st.skips[0].reason, "device node");
    assert_string_equal(st.skips[1].reason, "device node");
    assert_string_equal(st.skips[2].path, "fifo");
    assert_string_equal(st.skips[2].reason, "fifo");
    assert_false(exists_in(b, "null"));
    assert_false(exists_in(b, "disk"));
    assert_false(exists_in(b, "fifo"));
    assert_true(exists_in(b, "after"));
    assert_outside_clean(b);
}

static void test_modes(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    w_add(&w, "suid", AE_IFREG, 04755, NULL, false, "x", 1);
    w_add(&w, "sgid", AE_IFREG, 02750, NULL, false, "x", 1);
    w_add(&w, "sticky", AE_IFDIR, 01777, NULL, false, NULL, 0);
    w_add(&w, "ro", AE_IFDIR, 0555, NULL, false, NULL, 0);
    w_file(&w, "ro/inside", "still possible\n");
    sp_error err = {0};
    assert_int_equal(extract(b, w_done(&w), NULL, 0, NULL, &err), 0);
    struct stat st;
    assert_int_equal(fstatat(b->destfd, "suid", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(fstatat(b->destfd, "sgid", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(fstatat(b->destfd, "sticky", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0777);
    assert_int_equal(fstatat(b->destfd, "ro", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_true(exists_in(b, "ro/inside"));
    assert_int_equal(fstatat(b->destfd, "suid", &st, 0), 0);
    assert_int_equal(st.st_mtime, 1700000000);
}

/* A 2 GiB sparse member against a 10 MiB limit. */
static void test_sparse_bomb(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "sparse");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 2ll << 30);
    archive_entry_sparse_add_entry(e, (2ll << 30) - 4096, 4096);
    assert_true(archive_write_header(w.a, e) >= ARCHIVE_WARN);
    char data[4096];
    memset(data, 'A', sizeof(data));
    assert_true(archive_write_data(w.a, data, sizeof(data)) > 0);
    archive_entry_free(e);
    struct sp_archive_limits lim = {.max_total_bytes = 10 << 20,
                                    .max_entry_bytes = 10 << 20};
    sp_error err = {0};
    int r = extract(b, w_done(&w), &lim, 0, NULL, &err);
    assert_refused(r, err, EFBIG, "\"sparse\"");
    assert_false(exists_in(b, "sparse"));
    assert_no_temp(b->dest);
    assert_outside_clean(b);

    /* (The 2 GiB member above needs no data: it is refused first.)
     * An 8 MiB sparse member within the limit: right size and content,
     * holes kept. */
    w = w_new(F_TAR);
    e = archive_entry_new();
    archive_entry_set_pathname(e, "sparse8");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 8 << 20);
    archive_entry_sparse_add_entry(e, (8 << 20) - 8192, 4096);
    assert_true(archive_write_header(w.a, e) >= ARCHIVE_WARN);
    /* libarchive takes the whole logical content and drops the holes. */
    static char whole[8 << 20];
    memcpy(whole + (8 << 20) - 8192, data, sizeof(data));
    assert_true(archive_write_data(w.a, whole, sizeof(whole)) > 0);
    archive_entry_free(e);
    struct stat ast;
    assert_int_equal(fstat(w.fd, &ast), 0);
    assert_true(ast.st_size < 64 * 1024); /* really stored sparse */
    struct sp_archive_stats st;
    assert_int_equal(extract(b, w_done(&w), &lim, 0, &st, &err), 0);
    assert_int_equal(st.bytes, 8 << 20);
    int fd = openat(b->destfd, "sparse8", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat fst;
    assert_int_equal(fstat(fd, &fst), 0);
    assert_int_equal(fst.st_size, 8 << 20);
    assert_true(fst.st_blocks * 512 < (1 << 20));
    char back[4096];
    assert_int_equal(pread(fd, back, sizeof(back), (8 << 20) - 8192),
                     (ssize_t)sizeof(back));
    assert_memory_equal(back, data, sizeof(back));
    assert_int_equal(pread(fd, back, 1, 0), 1);
    assert_int_equal(back[0], 0);
    close(fd);
}

/* 64 MiB of zeros compressed to little: declared size (tar.gz) and
 * undeclared size (zip streamed through a pipe) both stop at the limit. */
static void test_gzip_bomb(void **state)
{
    struct box *b = *state;
    struct sp_archive_limits lim = {.max_total_bytes = 10 << 20};
    struct writer w = w_new(F_TGZ);
    w_file(&w, "small", "ok\n");
    w_add(&w, "zeros", AE_IFREG, 0644, NULL, false, NULL, 64 << 20);
    int fd = w_done(&w);
    struct stat fst;
    assert_int_equal(fstat(fd, &fst), 0);
    assert_true(fst.st_size < (1 << 20)); /* really a bomb */
    sp_error err = {0};
    struct sp_archive_stats st;
    int r = extract(b, fd, &lim, 0, &st, &err);
    assert_refused(r, err, EFBIG, "\"zeros\"");
    assert_true(exists_in(b, "small"));
    assert_false(exists_in(b, "zeros"));
    assert_int_equal(st.bytes, 3);

    /* Total across files: 6 x 2 MiB against 10 MiB. */
    w = w_new(F_TGZ);
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "part%d", i);
        w_add(&w, name, AE_IFREG, 0644, NULL, false, NULL, 2 << 20);
    }
    r = extract(b, w_done(&w), &lim, 0, &st, &err);
    assert_refused(r, err, EFBIG, "\"part5\"");
    assert_non_null(strstr(err.message, "total"));
    assert_int_equal(st.bytes, 10 << 20);

    /* Zip entry with no size in its header, read from a pipe. */
    w = (struct writer){.a = archive_write_new(),
                        .fd = memfd_create("zip", MFD_CLOEXEC)};
    archive_write_set_format_zip(w.a);
    archive_write_open_fd(w.a, w.fd);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "zipzeros");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_unset_size(e);
    assert_true(archive_write_header(w.a, e) >= ARCHIVE_WARN);
    static const char zeros[65536];
    for (int i = 0; i < 1024; i++)
        assert_true(archive_write_data(w.a, zeros, sizeof(zeros)) > 0);
    archive_entry_free(e);
    pid_t pid = 0;
    fd = via_pipe(w_done(&w), &pid);
    r = extract(b, fd, &lim, 0, &st, &err);
    waitpid(pid, NULL, 0);
    assert_refused(r, err, EFBIG, "\"zipzeros\"");
    assert_false(exists_in(b, "zipzeros"));
    assert_no_temp(b->dest);
    assert_outside_clean(b);
}

static void test_too_many_entries(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_TAR);
    char name[16];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "f%02d", i);
        w_file(&w, name, "x");
    }
    struct sp_archive_limits lim = {.max_entries = 10};
    sp_error err = {0};
    struct sp_archive_stats st;
    int r = extract(b, w_done(&w), &lim, 0, &st, &err);
    assert_int_equal(r, -E2BIG);
    assert_non_null(strstr(err.message, "more than 10 entries"));
    assert_int_equal(st.entries, 10);
    assert_true(exists_in(b, "f09"));
    assert_false(exists_in(b, "f10"));
}

static void test_deep_and_long(void **state)
{
    struct box *b = *state;
    char deep[256] = {0};
    for (int i = 0; i < 70; i++)
        strcat(deep, "d/");
    strcat(deep, "f");
    struct writer w = w_new(F_TAR);
    w_file(&w, deep, "x");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENAMETOOLONG, "d/d/d/");
    assert_non_null(strstr(err.message, "deeper"));
    assert_false(exists_in(b, "d"));

    char *longname = malloc(5001);
    memset(longname, 'n', 5000);
    longname[5000] = '\0';
    w = w_new(F_TAR);
    w_file(&w, longname, "x");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_int_equal(r, -ENAMETOOLONG);
    assert_non_null(strstr(err.message, "nnnnnnnn..."));
    free(longname);

    /* A long symlink target too. */
    struct sp_archive_limits lim = {.max_path_len = 64};
    char target[100];
    memset(target, 't', 99);
    target[99] = '\0';
    w = w_new(F_TAR);
    w_add(&w, "sl", AE_IFLNK, 0777, target, false, NULL, 0);
    r = extract(b, w_done(&w), &lim, 0, NULL, &err);
    assert_refused(r, err, ENAMETOOLONG, "\"sl\"");
    assert_outside_clean(b);
}

static void test_odd_names(void **state)
{
    struct box *b = *state;
    /* A newline (or any control byte) in a name is refused, and shown
     * escaped in the message. */
    struct writer w = w_new(F_TAR);
    w_file(&w, "line\nbreak", "x");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EINVAL, "line\\x0abreak");
    assert_null(strchr(err.message, '\n'));
    w = w_new(F_TAR);
    w_file(&w, "esc\033[31m", "x");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EINVAL, "esc\\x1b[31m");

    /* A NUL inside the header name ends it: "good\0../../x" is "good". */
    int fd = memfd_create("raw", MFD_CLOEXEC);
    static const char nul_name[] = "good\0../../outside/evil";
    raw_tar(fd, nul_name, sizeof(nul_name) - 1, '0', "hello\n");
    raw_tar(fd, "./", 2, '5', NULL);       /* the root: a no-op */
    raw_tar(fd, "dot/./x", 7, '0', "y\n"); /* "." components dropped */
    raw_tar(fd, "slash//y", 8, '0', "y\n");
    struct sp_archive_stats st;
    r = extract(b, raw_done(fd), NULL, 0, &st, &err);
    assert_int_equal(r, 0);
    assert_int_equal(st.entries, 4);
    assert_true(exists_in(b, "good"));
    assert_true(exists_in(b, "dot/x"));
    assert_true(exists_in(b, "slash/y"));

    /* An empty name. */
    fd = memfd_create("raw", MFD_CLOEXEC);
    raw_tar(fd, "", 0, '0', "x");
    r = extract(b, raw_done(fd), NULL, 0, NULL, &err);
    assert_true(r < 0);
    assert_outside_clean(b);
}

static void test_zip(void **state)
{
    struct box *b = *state;
    struct writer w = w_new(F_ZIP);
    w_file(&w, "zipok", "fine\n");
    w_file(&w, "../outside/zipevil", "pwned\n");
    sp_error err = {0};
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EPERM, "../outside/zipevil");
    assert_true(exists_in(b, "zipok"));

    w = w_new(F_ZIP);
    w_add(&w, "zl", AE_IFLNK, 0777, "../outside", false, NULL, 0);
    w_file(&w, "zl/zipevil", "pwned\n");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "zl/zipevil");
    assert_outside_clean(b);
}

/* Kind changes: refused unless SP_ARCHIVE_OVERWRITE; NO_CLOBBER. */
static void test_replace_rules(void **state)
{
    struct box *b = *state;
    assert_int_equal(mkdirat(b->destfd, "d", 0755), 0);
    assert_int_equal(mkdirat(b->destfd, "full", 0755), 0);
    int fd = openat(b->destfd, "full/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    close(fd);
    fd = openat(b->destfd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    close(fd);
    sp_error err = {0};

    struct writer w = w_new(F_TAR);
    w_file(&w, "d", "file over dir\n");
    int r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EISDIR, "\"d\"");
    w = w_new(F_TAR);
    w_add(&w, "f", AE_IFDIR, 0755, NULL, false, NULL, 0);
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, EEXIST, "\"f/\""); /* as stored */
    w = w_new(F_TAR);
    w_file(&w, "f/under", "x");
    r = extract(b, w_done(&w), NULL, 0, NULL, &err);
    assert_refused(r, err, ENOTDIR, "f/under");

    w = w_new(F_TAR);
    w_file(&w, "full", "x");
    r = extract(b, w_done(&w), NULL, SP_ARCHIVE_OVERWRITE, NULL, &err);
    assert_refused(r, err, ENOTEMPTY, "\"full\"");
    assert_true(exists_in(b, "full/x"));

    w = w_new(F_TAR);
    w_file(&w, "d", "file over dir\n");
    w_add(&w, "f", AE_IFDIR, 0755, NULL, false, NULL, 0);
    r = extract(b, w_done(&w), NULL, SP_ARCHIVE_OVERWRITE, NULL, &err);
    assert_int_equal(r, 0);
    struct stat st;
    assert_int_equal(fstatat(b->destfd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(fstatat(b->destfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* A file over a file: replaced by default, refused with NO_CLOBBER. */
    w = w_new(F_TAR);
    w_file(&w, "d", "again\n");
    assert_int_equal(extract(b, w_done(&w), NULL, 0, NULL, &err), 0);
    w = w_new(F_TAR);
    w_file(&w, "d", "again\n");
    r = extract(b, w_done(&w), NULL, SP_ARCHIVE_NO_CLOBBER, NULL, &err);
    assert_refused(r, err, EEXIST, "\"d\"");
    assert_no_temp(b->dest);
    r = sp_archive_extract(0, b->destfd, NULL, 0x80, NULL, &err);
    assert_int_equal(r, -EINVAL);
}

static void test_garbage(void **state)
{
    struct box *b = *state;
    int fd = memfd_create("junk", MFD_CLOEXEC);
    assert_int_equal(write(fd, "this is not an archive at all", 29), 29);
    lseek(fd, 0, SEEK_SET);
    sp_error err = {0};
    int r = extract(b, fd, NULL, 0, NULL, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err.message, "cannot read the archive"));
    /* Empty input: an empty archive. */
    fd = memfd_create("empty", MFD_CLOEXEC);
    struct sp_archive_stats st;
    assert_int_equal(extract(b, fd, NULL, 0, &st, &err), 0);
    assert_int_equal(st.entries, 0);
    /* Truncated tar.gz. */
    struct writer w = w_new(F_TGZ);
    w_add(&w, "big", AE_IFREG, 0644, NULL, false, NULL, 1 << 20);
    fd = w_done(&w);
    struct stat fst;
    fstat(fd, &fst);
    assert_int_equal(ftruncate(fd, fst.st_size / 2), 0);
    r = extract(b, fd, NULL, 0, NULL, &err);
    assert_true(r < 0);
    assert_false(exists_in(b, "big"));
    assert_no_temp(b->dest);
}

/* ---- round trip --------------------------------------------------------- */

static void put(int dirfd, const char *name, const char *text, mode_t mode)
{
    int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* Compare two trees: same names, kinds, 0777 modes, contents, targets. */
static void compare_trees(int a, int b, const char *where)
{
    DIR *d = fdopendir(dup(a));
    assert_non_null(d);
    rewinddir(d); /* a dup shares the offset of an fd read before */
    struct dirent *de;
    size_t count_a = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat sa, sb;
        assert_int_equal(fstatat(a, de->d_name, &sa, AT_SYMLINK_NOFOLLOW), 0);
        if (S_ISFIFO(sa.st_mode)) {
            assert_int_not_equal(
                fstatat(b, de->d_name, &sb, AT_SYMLINK_NOFOLLOW), 0);
            continue;
        }
        count_a++;
        if (fstatat(b, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            fail_msg("%s/%s missing after round trip", where, de->d_name);
        assert_int_equal(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
        if (S_ISLNK(sa.st_mode)) {
            char ta[256] = {0}, tb[256] = {0};
            assert_true(readlinkat(a, de->d_name, ta, 255) > 0);
            assert_true(readlinkat(b, de->d_name, tb, 255) > 0);
            assert_string_equal(ta, tb);
            continue;
        }
        assert_int_equal(sa.st_mode & 0777, sb.st_mode & 0777);
        if (S_ISREG(sa.st_mode)) {
            assert_int_equal(sa.st_size, sb.st_size);
            assert_int_equal(sa.st_mtime, sb.st_mtime);
            char ba[256] = {0}, bb[256] = {0};
            int fa = openat(a, de->d_name, O_RDONLY | O_CLOEXEC);
            int fb = openat(b, de->d_name, O_RDONLY | O_CLOEXEC);
            if (fa >= 0 && fb >= 0) { /* 0000 files are unreadable as a user */
                assert_true(read(fa, ba, sizeof(ba)) >= 0);
                assert_true(read(fb, bb, sizeof(bb)) >= 0);
                assert_memory_equal(ba, bb, sizeof(ba));
            }
            if (fa >= 0)
                close(fa);
            if (fb >= 0)
                close(fb);
        } else if (S_ISDIR(sa.st_mode)) {
            int ca = openat(a, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int cb = openat(b, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            assert_true(ca >= 0 && cb >= 0);
            char sub[512];
            snprintf(sub, sizeof(sub), "%s/%s", where, de->d_name);
            compare_trees(ca, cb, sub);
            close(ca);
            close(cb);
        }
    }
    closedir(d);
    /* and nothing extra in b */
    d = fdopendir(dup(b));
    assert_non_null(d);
    rewinddir(d);
    size_t count_b = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            count_b++;
    closedir(d);
    assert_int_equal(count_a, count_b);
}

static void build_tree(int src)
{
    put(src, "b-file", "hello\n", 0644);
    put(src, "a-exec", "#!/bin/sh\n", 0755);
    put(src, "empty", "", 0600);
    put(src, "readonly", "ro\n", 0444);
    put(src, "suid", "s\n", 04755);
    assert_int_equal(mkdirat(src, "dir", 0750), 0);
    assert_int_equal(mkdirat(src, "dir/sub", 0755), 0);
    assert_int_equal(mkdirat(src, "emptydir", 0700), 0);
    put(src, "dir/sub/deep", "deep\n", 0640);
    put(src, "dir/z", "z\n", 0644);
    assert_int_equal(symlinkat("b-file", src, "rel-link"), 0);
    assert_int_equal(symlinkat("/etc/passwd", src, "abs-link"), 0);
    assert_int_equal(symlinkat("nowhere/at/all", src, "dangling"), 0);
    assert_int_equal(symlinkat("..", src, "dir/up"), 0);
    assert_int_equal(mkfifoat(src, "fifo", 0644), 0);
    assert_int_equal(linkat(src, "b-file", src, "dir/hard", 0), 0);
}

static void test_round_trip(void **state)
{
    struct box *b = *state;
    char srcp[160], outp[160];
    snprintf(srcp, sizeof(srcp), "%s/src", b->dest);
    snprintf(outp, sizeof(outp), "%s/out", b->dest);
    assert_int_equal(mkdir(srcp, 0755), 0);
    int src = open(srcp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(src >= 0);
    build_tree(src);

    for (int format = SP_ARCHIVE_TAR; format <= SP_ARCHIVE_TAR_GZ; format++) {
        int out[2] = {memfd_create("a", MFD_CLOEXEC),
                      memfd_create("b", MFD_CLOEXEC)};
        sp_error err = {0};
        struct sp_archive_stats st;
        for (int i = 0; i < 2; i++)
            assert_int_equal(
                sp_archive_create(src, NULL, out[i], format, NULL, &st, &err),
                0);
        assert_int_equal(st.skipped, 1);
        assert_string_equal(st.skips[0].path, "fifo");
        assert_string_equal(st.skips[0].reason, "fifo");
        assert_int_equal(st.entries, 15);
        /* deterministic: two runs, same bytes */
        struct stat s0, s1;
        fstat(out[0], &s0);
        fstat(out[1], &s1);
        assert_int_equal(s0.st_size, s1.st_size);
        void *m0 =
            mmap(NULL, (size_t)s0.st_size, PROT_READ, MAP_SHARED, out[0], 0);
        void *m1 =
            mmap(NULL, (size_t)s1.st_size, PROT_READ, MAP_SHARED, out[1], 0);
        assert_memory_equal(m0, m1, (size_t)s0.st_size);
        munmap(m0, (size_t)s0.st_size);
        munmap(m1, (size_t)s1.st_size);
        close(out[1]);

        /* sorted names, relative, owner 0 */
        lseek(out[0], 0, SEEK_SET);
        struct archive *a = archive_read_new();
        archive_read_support_format_tar(a);
        archive_read_support_filter_gzip(a);
        assert_int_equal(archive_read_open_fd(a, out[0], 4096), ARCHIVE_OK);
        struct archive_entry *e;
        const char *expect[] = {
            "a-exec",   "abs-link", "b-file",       "dangling", "dir",
            "dir/hard", "dir/sub",  "dir/sub/deep", "dir/up",   "dir/z",
            "empty",    "emptydir", "readonly",     "rel-link", "suid"};
        size_t n = 0;
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
            assert_true(n < N_ELEM(expect));
            const char *name = archive_entry_pathname(e);
            size_t len = strlen(expect[n]);
            assert_memory_equal(name, expect[n], len);
            assert_true(name[len] == '\0' || !strcmp(name + len, "/"));
            assert_int_equal(archive_entry_uid(e), 0);
            assert_int_equal(archive_entry_perm(e) & 07000, 0);
            n++;
        }
        assert_int_equal(n, N_ELEM(expect));
        archive_read_free(a);

        lseek(out[0], 0, SEEK_SET);
        rm_rf(outp);
        assert_int_equal(mkdir(outp, 0755), 0);
        int dst = open(outp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(sp_archive_extract(out[0], dst, NULL, 0, &st, &err),
                         0);
        assert_int_equal(st.entries, 15);
        assert_int_equal(st.skipped, 0);
        assert_int_equal(fchmodat(src, "suid", 0755, 0), 0); /* stripped */
        compare_trees(src, dst, "src");
        assert_int_equal(fchmodat(src, "suid", 04755, 0), 0);
        close(dst);
        close(out[0]);
    }

    /* A subpath: names start with it; a symlink in it is not followed. */
    int out = memfd_create("s", MFD_CLOEXEC);
    sp_error err = {0};
    struct sp_archive_stats st;
    assert_int_equal(
        sp_archive_create(src, "dir/sub", out, SP_ARCHIVE_TAR, NULL, &st, &err),
        0);
    assert_int_equal(st.entries, 2);
    lseek(out, 0, SEEK_SET);
    rm_rf(outp);
    assert_int_equal(mkdir(outp, 0755), 0);
    int dst = open(outp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(sp_archive_extract(out, dst, NULL, 0, &st, &err), 0);
    struct stat s;
    assert_int_equal(fstatat(dst, "dir/sub/deep", &s, 0), 0);
    close(dst);
    close(out);
    out = memfd_create("s", MFD_CLOEXEC);
    assert_true(sp_archive_create(src, "rel-link/x", out, SP_ARCHIVE_TAR, NULL,
                                  &st, &err) < 0);
    assert_true(sp_archive_create(src, "../x", out, SP_ARCHIVE_TAR, NULL, &st,
                                  &err) < 0);
    assert_non_null(strstr(err.message, ".."));
    /* limits on creation */
    struct sp_archive_limits lim = {.max_entries = 3};
    assert_int_equal(
        sp_archive_create(src, NULL, out, SP_ARCHIVE_TAR, &lim, &st, &err),
        -E2BIG);
    lim = (struct sp_archive_limits){.max_entry_bytes = 4};
    assert_int_equal(
        sp_archive_create(src, NULL, out, SP_ARCHIVE_TAR, &lim, &st, &err),
        -EFBIG);
    assert_non_null(strstr(err.message, "\"a-exec\""));
    close(out);
    close(src);
    assert_outside_clean(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, box_setup, box_teardown)

int main(void)
{
    /* The bomb test's child writer may outlive our reading end. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_dotdot),
        T(test_absolute),
        T(test_symlink_then_file),
        T(test_symlink_then_same_name),
        T(test_preexisting_symlink),
        T(test_hardlinks),
        T(test_layer_hardlinks),
        T(test_special_files_skipped),
        T(test_modes),
        T(test_sparse_bomb),
        T(test_gzip_bomb),
        T(test_too_many_entries),
        T(test_deep_and_long),
        T(test_odd_names),
        T(test_zip),
        T(test_replace_rules),
        T(test_garbage),
        T(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
