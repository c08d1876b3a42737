/* bounds.h — every bound sandpit enforces, named in one place.
 * docs/limits.md lists them for users; keep the two in step. */
#ifndef SANDPIT_BOUNDS_H
#define SANDPIT_BOUNDS_H

/* Most arguments of a command (bubblewrap caps at 9000 for the same reason:
 * an unbounded argv lets a client make us allocate without end). */
#define SP_MAX_ARGS 8192
/* Longest path we accept in a policy (PATH_MAX). */
#define SP_MAX_PATH 4096
/* Most mount rules (defaults + user) in one policy. */
#define SP_MAX_MOUNTS 256
/* Most environment entries set or passed through. */
#define SP_MAX_ENV 1024
/* Longest single environment entry. */
#define SP_MAX_ENV_LEN 131072
/* Most fds passed with --pass-fd. */
#define SP_MAX_PASS_FDS 64
/* Largest policy file we read. */
#define SP_MAX_POLICY_FILE (1024 * 1024)
/* Most TCP ports in a Landlock net allow list. */
#define SP_MAX_PORTS 64
/* Longest timeout (seconds): 30 days. */
#define SP_MAX_TIMEOUT (30.0 * 24 * 3600)
/* Smallest memory limit we accept: below this the kernel OOM-kills a
 * dynamic loader before the command starts, which only confuses. */
#define SP_MIN_MEMORY (4ull * 1024 * 1024)

#endif
