/* fuzz_patch.c — libFuzzer target for the patch parser and a dry-run
 * apply: any bytes must parse or fail with a message, and a parsed patch
 * must dry-run against a small fixed tree (never written: dry run) without
 * crashing, leaking or reporting success with a failure attached.
 * The first byte picks the -p strip count (0..2). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int tree_fd = -1;

/* A tree the hunks can match against: a few small files, a CRLF one, one
 * without a trailing newline, a directory and a symlink. */
static void make_tree(void)
{
    char dir[] = "/tmp/sp-fuzz-patch-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    static const struct {
        const char *name, *content;
    } files[] = {
        {"a", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"},
        {"x", "a\nb\nc\n"},
        {"crlf", "a\r\nb\r\nc\r\n"},
        {"noeol", "a\nb"},
        {"d/f", "x\ny\n"},
        {"empty", ""},
    };
    char path[256];
    snprintf(path, sizeof(path), "%s/d", dir);
    mkdir(path, 0755);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        FILE *f = fopen(path, "w");
        if (!f)
            abort();
        fputs(files[i].content, f);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/link", dir);
    if (symlink("/etc", path) < 0)
        abort();
    tree_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tree_fd < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (tree_fd < 0)
        make_tree();
    if (size == 0)
        return 0;
    int strip = data[0] % 3;
    struct sp_patch *p = NULL;
    sp_error err = {0};
    if (sp_patch_parse((const char *)data + 1, size - 1, strip, &p, &err) < 0) {
        if (!err.message[0] || p)
            abort(); /* a failure without a message, or a half result */
        return 0;
    }
    struct sp_patch_report rep = {0};
    int r = sp_patch_apply(tree_fd, p, true, &rep, &err);
    if ((r == 0) != rep.ok || (r == 0 && rep.failure))
        abort();
    if (r < 0 && !err.message[0])
        abort();
    char *json = sp_patch_report_json(&rep);
    if (!json)
        abort();
    free(json);
    sp_patch_report_free(&rep);
    sp_patch_free(p);
    return 0;
}
