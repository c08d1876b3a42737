/* util.h — cleanup helpers and small pure functions shared by the library.
 * No syscalls beyond close(); nothing here allocates behind a caller's back. */
#ifndef SANDPIT_UTIL_H
#define SANDPIT_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void sp_freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(sp_freep)

/* close() that keeps errno, for cleanup paths. */
static inline void sp_close_keep_errno(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
}
static inline void sp_closep(int *fd) { sp_close_keep_errno(*fd); }
#define _cleanup_close_ _cleanup_(sp_closep)

/* Hand ownership on: return the value and reset the variable. */
#define TAKE_PTR(p)                                                            \
    ({                                                                         \
        __typeof__(p) _tp = (p);                                               \
        (p) = NULL;                                                            \
        _tp;                                                                   \
    })
#define TAKE_FD(fd)                                                            \
    ({                                                                         \
        int _tf = (fd);                                                        \
        (fd) = -1;                                                             \
        _tf;                                                                   \
    })

#define SP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Parse a byte size: "123", "64k", "64K", "64KiB", "1.5G", "512M". Units are
 * powers of 1024. Rejects negatives, overflow, trailing junk, empty text.
 * Returns 0 or -EINVAL / -ERANGE. */
int sp_parse_size(const char *s, uint64_t *ret);

/* Parse seconds: "10", "0.5", "2s", "100ms", "5m", "1h". Returns 0 or
 * -EINVAL / -ERANGE (limit: SP_MAX_TIMEOUT). */
int sp_parse_duration(const char *s, double *ret);

/* Parse a non-negative decimal integer no larger than max. */
int sp_parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* Format bytes for people: "64 MiB", "1.5 GiB", "512 bytes". */
void sp_format_size(uint64_t bytes, char *buf, size_t len);

/* Normalize an absolute path lexically: collapse "//" and "/./", refuse
 * "..", strip a trailing "/". Writes into out (len bytes). Returns 0 or
 * -EINVAL (relative, contains "..", empty) / -ENAMETOOLONG. */
int sp_path_normalize(const char *in, char *out, size_t len);

/* Is `path` equal to or below `dir` (both normalized)? */
bool sp_path_has_prefix(const char *path, const char *dir);

/* A name from a sandbox (file name, link target) as safe text for a
 * terminal and for JSON: valid UTF-8 is kept but for control characters
 * (C0, DEL and the C1 range U+0080..U+009F, which terminals read as
 * escapes); each of those and each byte that is not UTF-8 becomes "\xNN"
 * per byte. malloc'd; NULL when out of memory. */
char *sp_printable(const char *s);

/* chmod of name in dirfd that never follows a symlink (a tree the sandbox
 * wrote may swap a directory for a link to a host file between our stat
 * and our chmod): fchmodat(AT_SYMLINK_NOFOLLOW), which fails (EOPNOTSUPP
 * or ELOOP) on a symlink. 0 or -1 with errno. */
int sp_chmod_nofollow(int dirfd, const char *name, mode_t mode);

/* Monotonic clock in microseconds. */
uint64_t sp_now_us(void);

/* write(2) all n bytes (EINTR retried); 0 or -errno (-ENOSPC when the
 * kernel takes nothing). */
int sp_write_all(int fd, const void *buf, size_t n);

/* Close every fd from `from` up but those in keep (a few, any order,
 * negative ones ignored; keep is sorted in place). Only system calls:
 * async-signal-safe, for use between fork and exec. */
void sp_close_all_except(int *keep, size_t n, unsigned from);

#define SP_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* execve argv with a PATH search that does not allocate (for a forked
 * child). Returns the errno that decides 126 (anything) vs 127 (ENOENT). */
int sp_exec_search(char *const argv[], char *const envp[], const char *path_env);
/* Run fn (0 or -errno; a failure is returned as sp_exec_search's errno)
 * in the child just before each execve of sp_exec_search: launch sets it
 * to stack the per-command seccomp filter. NULL: none. */
void sp_exec_search_hook(int (*fn)(void));
/* The PATH search under sp_exec_search, for other uses: try_one(FILE) for
 * cmd itself when it holds a '/', else for each DIR/cmd of path_env
 * (SP_DEFAULT_PATH when NULL; an empty entry is "."). try_one returns 0
 * (found: the search returns 0), a positive errno (go on; ENOENT and
 * ENOTDIR are not remembered), or a negative errno (stop: returned
 * positive). Returns the errno that decides 126 vs 127. No allocation. */
int sp_path_search(const char *cmd, const char *path_env,
                   int (*try_one)(const char *file, void *arg), void *arg);
/* In a forked child: sp_exec_search, and when it fails say why on fd 2
 * ("sandpit: CMD: command not found" and eol: "\n", or "\r\n" on a
 * terminal) and _exit with 127 (not found) or 126. No allocation. */
_Noreturn void sp_exec_or_die(char *const argv[], char *const envp[],
                              const char *path_env, const char *eol);

/* A directory below `at`, never through a symlink (O_NOFOLLOW); -1 with
 * errno set on failure. */
int sp_open_dir_at(int at, const char *name);
/* mkdirat (an existing one is fine) and sp_open_dir_at; fd or -errno. */
int sp_mkdir_open(int at, const char *name, mode_t mode);
/* Write `len` bytes to dirfd/name through .name.tmp (0600), fsync and
 * rename; 0 or -errno, with nothing left behind on failure. */
int sp_write_atomic(int dirfd, const char *name, const char *data,
                    size_t len);

/* The first fields of /proc/PID/stat, read from procfd (an fd of the
 * procfs wanted; -1: /proc). 0, or -errno (-ESRCH: gone). No allocation. */
struct sp_proc_stat {
    char state;
    pid_t ppid, pgrp, session;
};
int sp_proc_stat(int procfd, long pid, struct sp_proc_stat *ret);

/* Terminal output as text: removes escape sequences (CSI, OSC, and
 * two-byte ESC ones), turns CR LF into LF, drops a lone CR, backspace and
 * the other C0 controls but tab and LF, in place. Returns the new length. */
size_t sp_strip_terminal(char *buf, size_t len);

#endif
