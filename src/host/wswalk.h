/* wswalk.h — the walk over a workspace's overlay upper dirs (what it
 * changed against its base), shared by the diff (wsdiff.h) and an exec's
 * --changes (docs/report.md), which the supervisor computes. Bounded like
 * the diff (SP_DIFF_MAX_* below). */
#ifndef SANDPIT_WSWALK_H
#define SANDPIT_WSWALK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sandpit.h"

/* Most directory entries one diff looks at (all layers together). */
#define SP_DIFF_MAX_ENTRIES 200000
/* Deepest directory level below a layer's mount point walked. */
#define SP_DIFF_MAX_DEPTH 128
/* Longest path reported (longer ones are left out: truncated). */
#define SP_DIFF_MAX_PATH 4096
/* Most layers (upper dirs) read. */
#define SP_DIFF_MAX_LAYERS 256


enum { D_ADDED, D_MODIFIED, D_DELETED, D_KINDS };
extern const char *const sp_ws_walk_kind_names[D_KINDS];

struct list {
    char **v;
    size_t n, cap;
};

struct walk {
    struct list lists[D_KINDS];
    bool stamps;       /* each path gets "\tKIND:INO:CTIME:SIZE:DIR" */
    size_t entries;
    bool truncated;
    bool oom;
    char path[SP_DIFF_MAX_PATH];
};

/* Walk workspace wsfd's layers into w (calloc'd by the caller). 0 or < 0
 * with err filled. */
int sp_ws_walk(int wsfd, const char *name, struct walk *w, sp_error *err);
void sp_ws_walk_free(struct walk *w);
/* openat(O_DIRECTORY | O_NOFOLLOW) */
int sp_ws_walk_open_dir(int dirfd, const char *name);
int sp_ws_walk_cmp_str(const void *a, const void *b);

/* For an exec's --changes (docs/report.md): every path the diff would
 * name, with a stamp of its state in the upper dirs (kind, inode, ctime,
 * size, directory): {"paths": {PATH: STAMP}, "truncated": B}. NULL with
 * err filled. O(what the upper dirs hold), like the diff. */
json_t *sp_ws_diff_stamps_at(int wsfd, const char *name, sp_error *err);
/* What changed between two of those: {"created": [...], "changed":
 * [...], "deleted": [...], "truncated": B}, each sorted (new reference). A
 * directory is created or deleted, never "changed" by what it holds. */
json_t *sp_ws_changes(const json_t *before, const json_t *after);

#endif
