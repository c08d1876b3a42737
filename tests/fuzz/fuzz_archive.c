/* fuzz_archive.c — libFuzzer target for sp_archive_extract (and, chosen by
 * the last byte, sp_archive_extract_layer over a small lower tree): any
 * bytes given as an archive must extract or fail with a message, never
 * crash, leak, or put anything outside the destination (checked: the
 * scratch root holds only dest/ and lower/ afterwards). Each run gets a
 * fresh directory, removed after.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *   -Isrc/lib tests/fuzz/fuzz_archive.c src/content/archive.c src/base/error.c
 *   src/base/util.c -larchive -o fuzz_archive */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        chmod(p, 0700);
    remove(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[] = "/tmp/sp-fuzz-archive-XXXXXX";
    if (!mkdtemp(root))
        abort();
    char dest[sizeof(root) + 8];
    snprintf(dest, sizeof(dest), "%s/dest", root);
    if (mkdir(dest, 0755) < 0)
        abort();
    int destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int in = memfd_create("fuzz", MFD_CLOEXEC);
    if (destfd < 0 || in < 0)
        abort();
    if (size && write(in, data, size) != (ssize_t)size)
        abort();
    lseek(in, 0, SEEK_SET);

    /* Small limits keep each run fast; they are what is being tested. */
    struct sp_archive_limits lim = {
        .max_total_bytes = 4 << 20,
        .max_entries = 256,
        .max_entry_bytes = 1 << 20,
        .max_path_len = 512,
        .max_depth = 16,
    };
    sp_error err = {0};
    struct sp_archive_stats st;
    unsigned flags = size && (data[size - 1] & 1) ? SP_ARCHIVE_OVERWRITE : 0;
    /* Bit 1 of the last byte: as an image layer over lower/ (d/, d/f, a
     * symlink s -> /etc), where hard links may also name lower/'s files
     * (sp_archive_extract_layer); lower/ must come out unchanged. */
    int r;
    if (size && (data[size - 1] & 2)) {
        char lower[sizeof(root) + 16];
        snprintf(lower, sizeof(lower), "%s/lower", root);
        if (mkdir(lower, 0755) < 0)
            abort();
        int lowfd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lowfd < 0 || mkdirat(lowfd, "d", 0755) < 0 ||
            symlinkat("/etc", lowfd, "s") < 0)
            abort();
        int f = openat(lowfd, "d/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f < 0 || write(f, "x", 1) != 1)
            abort();
        close(f);
        r = sp_archive_extract_layer(in, destfd, lowfd, &lim, flags, &st, &err);
        char c[2] = {0};
        f = openat(lowfd, "d/f", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (f < 0 || read(f, c, sizeof(c)) != 1 || c[0] != 'x')
            abort();
        close(f);
        close(lowfd);
    } else {
        r = sp_archive_extract(in, destfd, &lim, flags, &st, &err);
    }
    if (r < 0 && !err.message[0])
        abort(); /* a failure without a message */
    if (st.bytes > lim.max_total_bytes || st.entries > lim.max_entries ||
        st.nskips > SP_ARCHIVE_MAX_SKIP_LIST)
        abort();
    close(in);
    close(destfd);

    /* Nothing but dest/ in the scratch root. */
    DIR *d = opendir(root);
    if (!d)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            strcmp(de->d_name, "dest") && strcmp(de->d_name, "lower"))
            abort();
    closedir(d);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
