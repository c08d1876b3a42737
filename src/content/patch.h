/* patch.h — parse a unified diff (diff -u, git diff) and apply it to the
 * files under a directory fd, all or nothing. The patch text is hostile:
 * every size is bounded, every path is checked and resolved beneath the
 * directory without following symlinks. docs/patch.md has the details.
 *
 * Lifecycle: sp_patch_parse() -> sp_patch_apply() (dry run or not, any
 * number of times) -> sp_patch_report_json() -> sp_patch_report_free(),
 * sp_patch_free(). */
#ifndef SANDPIT_PATCH_H
#define SANDPIT_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandpit.h"

/* ---- bounds (docs/patch.md, docs/limits.md) --------------------------- */

/* Largest patch text we parse. */
#define SP_PATCH_MAX_TEXT (64u * 1024 * 1024)
/* Most files one patch may touch. */
#define SP_PATCH_MAX_FILES 10000
/* Most hunks for one file, and in the whole patch (each costs a small
 * struct and a copy of its header line). */
#define SP_PATCH_MAX_HUNKS 10000
#define SP_PATCH_MAX_TOTAL_HUNKS 1000000
/* Most hunk lines (context, added, removed) in the whole patch: each costs
 * a small struct, so this caps the memory a hostile patch makes us use. */
#define SP_PATCH_MAX_LINES (4u * 1024 * 1024)
/* Longest line, in the patch and in a file being patched. */
#define SP_PATCH_MAX_LINE (1024u * 1024)
/* Largest file we read to patch it. */
#define SP_PATCH_MAX_FILE_SIZE (64u * 1024 * 1024)
/* Most lines in one file we patch (each costs an index entry). */
#define SP_PATCH_MAX_FILE_LINES (4u * 1024 * 1024)
/* Most bytes of new content held in memory across all files. */
#define SP_PATCH_MAX_OUTPUT (256u * 1024 * 1024)
/* Most line comparisons (weighted by length) spent searching for where
 * hunks apply, so a crafted patch cannot make the offset search quadratic
 * without end. */
#define SP_PATCH_MAX_WORK (1ull << 26)
/* Most lines of a failed hunk copied into the report (each side), and the
 * longest line copied; longer ones are cut. */
#define SP_PATCH_MAX_REPORT_LINES 200
#define SP_PATCH_MAX_REPORT_LINE 4096

/* Temp files and backups are named with this prefix plus 6 random
 * characters, so that one left by a crash is recognizable. */
#define SP_PATCH_TEMP_PREFIX ".sp-patch-"

/* ---- parsing ---------------------------------------------------------- */

struct sp_patch;

/* Parse `len` bytes of unified diff. `strip` is patch's -p: how many
 * leading path components to drop from the ---/+++ and diff --git names
 * (1 for git diff and diff -ur a b; 0..64). Names in "rename from"/"copy
 * from" lines are stripped of strip-1 components, as git apply does.
 * Every target path is checked (relative, no "..", ".", empty component,
 * NUL, or name over 255 bytes). Binary patches, combined diffs and context
 * diffs are refused. Returns 0 and *ret, or -EINVAL (malformed or refused
 * patch; the message names the patch line and the file), -EFBIG (a bound
 * exceeded), -ENOMEM. */
int sp_patch_parse(const char *text, size_t len, int strip,
                   struct sp_patch **ret, sp_error *err);
void sp_patch_free(struct sp_patch *p);

/* Number of files the parsed patch touches. */
size_t sp_patch_n_files(const struct sp_patch *p);

/* ---- applying --------------------------------------------------------- */

enum sp_patch_status {
    SP_PATCH_MODIFIED = 0,
    SP_PATCH_CREATED,
    SP_PATCH_DELETED,
    SP_PATCH_RENAMED,
    SP_PATCH_COPIED,
    SP_PATCH_MODE,      /* only the mode changed */
};

struct sp_patch_file_report {
    char *path;          /* the file as it is after the patch (for a
                            delete: the file removed) */
    char *old_path;      /* rename/copy source, else NULL */
    enum sp_patch_status status;
    bool mode_changed;
    unsigned mode;       /* permission bits written (0 when unchanged) */
    size_t n_hunks;      /* hunks applied */
    long *offsets;       /* per hunk: lines between the stated and the
                            actual position (0 = applied where stated) */
};

/* Why a patch did not apply, when the reason is a hunk. */
struct sp_patch_failure {
    char *path;          /* file */
    char *hunk_header;   /* "@@ -10,4 +10,5 @@ fn" */
    size_t hunk_index;   /* 1-based */
    size_t line;         /* 1-based line where the hunk was expected */
    bool already_applied;/* the + side matches: the hunk was applied before */
    size_t first_diff;   /* 0-based index into expected/actual where they
                            first differ */
    char **expected;     /* the hunk's old side (context and - lines) */
    size_t n_expected;
    char **actual;       /* the file's lines at `line` (as many, or fewer
                            at the end of the file) */
    size_t n_actual;
};

struct sp_patch_report {
    bool ok;
    bool dry_run;
    struct sp_patch_file_report *files;
    size_t n_files;
    struct sp_patch_failure *failure; /* set when a hunk did not apply */
};

/* Apply p to the files beneath dirfd (a directory fd; O_PATH is enough).
 *
 * Phase 1 reads every file involved (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: a symlink anywhere in a
 * path, final component included, is refused) and computes every new
 * content in memory; a hunk must match exactly, first at its stated line,
 * then at the nearest offset. Nothing is written when any check fails.
 * With dry_run, stop there.
 * Phase 2 writes each result to a temp file in the target's directory
 * (fsync'd), then swaps it in with rename (RENAME_EXCHANGE for a modified
 * file, RENAME_NOREPLACE for a created one); old versions stay as temp
 * files until every file is in place, and are put back if a later step
 * fails. Missing parent directories of new files are created (0755).
 *
 * ret (optional) is filled on success and on failure (zero it first; free
 * with sp_patch_report_free). Returns 0, or -ESTALE (a hunk does not
 * match: ret->failure says where), -ENOENT (a file to patch is missing),
 * -EEXIST (a file to create exists), -ELOOP (a symlink on the path),
 * -EINVAL/-ENOTDIR (not a regular file or directory), -EFBIG (a bound),
 * -EXDEV/-EIO/-ENOSPC... from the write phase after a rollback. */
int sp_patch_apply(int dirfd, const struct sp_patch *p, bool dry_run,
                   struct sp_patch_report *ret, sp_error *err);
void sp_patch_report_free(struct sp_patch_report *r);

/* The report as JSON text (caller frees), for the front ends:
 * {"ok":true,"dry_run":false,"files":[{"path":"a.c","status":"modified",
 *  "hunks":2,"offsets":[0,3]}],"failure":{...}}. NULL on ENOMEM. Bytes
 * that are not UTF-8 are replaced by U+FFFD. */
char *sp_patch_report_json(const struct sp_patch_report *r);

/* "modified", "created", ... */
const char *sp_patch_status_name(enum sp_patch_status s);

#endif
