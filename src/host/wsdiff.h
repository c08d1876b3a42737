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

#include <jansson.h>

#include "sandpit.h"
#include "wswalk.h"

/* The same diff for the workspace directory `wsfd` (workspaces/<name>).
 * Returns the JSON text (caller frees) or NULL with err filled. */
char *sp_ws_diff_json_at(int wsfd, const char *name, sp_error *err);

/* Empty every upper dir (and work dir) of the workspace `wsfd`: its
 * filesystem is back to the base. The workspace must not be running.
 * Returns 0 or < 0 with err filled. */
int sp_ws_layers_clear(int wsfd, sp_error *err);

#endif
