/* wsdiff.h — what a workspace changed against its base: read from the
 * overlay upper dirs of its layers (wslayers.h) on the host side.
 *
 * The upper dirs are written by the sandboxed program, so their contents
 * are hostile: the walk uses openat/fstatat with O_NOFOLLOW and
 * AT_SYMLINK_NOFOLLOW only (never follows a symlink, never opens anything
 * but a directory), and is bounded in entries, depth and path length; a
 * bound reached sets "truncated". sp_ws_diff_json() is declared in
 * sandpit.h. */
#ifndef SANDPIT_WSDIFF_H
#define SANDPIT_WSDIFF_H

#include "sandpit.h"

/* Most directory entries one diff looks at (all layers together). */
#define SP_DIFF_MAX_ENTRIES 200000
/* Deepest directory level below a layer's mount point walked. */
#define SP_DIFF_MAX_DEPTH 128
/* Longest path reported (longer ones are left out: truncated). */
#define SP_DIFF_MAX_PATH 4096
/* Most layers (upper dirs) read. */
#define SP_DIFF_MAX_LAYERS 256

/* The same diff for the workspace directory `wsfd` (workspaces/<name>).
 * Returns the JSON text (caller frees) or NULL with err filled. */
char *sp_ws_diff_json_at(int wsfd, const char *name, sp_error *err);

/* Empty every upper dir (and work dir) of the workspace `wsfd`: its
 * filesystem is back to the base. The workspace must not be running.
 * Returns 0 or < 0 with err filled. */
int sp_ws_layers_clear(int wsfd, sp_error *err);

#endif
