/* proxy.h — the egress filtering HTTP proxy the host side runs for a
 * sandbox: CONNECT tunnels and plain absolute-form HTTP, an allow list of
 * host names, every resolved address checked before it is connected to.
 * docs/network.md describes the behaviour for users.
 *
 * Lifecycle: sp_proxy_config_parse()/sp_proxy_config_parse_json() ->
 * sp_proxy_new() (copies the config; free yours) -> sp_proxy_add_listener()
 * (any number of listening sockets, e.g. one created by the sandbox's PID 1
 * inside its netns and passed over SCM_RIGHTS) -> loop { poll
 * sp_proxy_fd() for POLLIN with sp_proxy_next_timeout_ms(); then
 * sp_proxy_dispatch(p, 0) } -> sp_proxy_free().
 *
 * Single-threaded and event-driven (one epoll fd), no threads. With a
 * resolver file (cfg.use_hosts) names are answered from its table at once
 * and nothing else is asked. Otherwise name
 * resolution runs getaddrinfo() in a short-lived forked child per lookup
 * (at most SP_PROXY_MAX_RESOLVERS at a time), watched through a pidfd, so
 * a slow DNS server stalls only the connection that asked. The embedding
 * process must therefore reap its own children by pid or pidfd, never with
 * waitpid(-1) / P_ALL, or it may reap a resolver child (which the proxy
 * tolerates, but the pid could be reused before it opens its pidfd).
 *
 * Relay: bytes go through per-direction buffers; a direction the proxy no
 * longer needs to look at (a tunnel past its SNI check, a response past its
 * status line) switches to splice(2) through a pipe after 64 KiB, but only
 * while SIGPIPE is blocked or ignored in the calling thread (splice to a
 * socket cannot pass MSG_NOSIGNAL); otherwise it stays with the buffers. */
#ifndef SANDPIT_PROXY_H
#define SANDPIT_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy_hosts.h"
#include "proxy_parse.h"
#include "sandpit.h"

/* ---- the proxy object -------------------------------------------------- */

struct sp_proxy;

/* Create a proxy with a deep copy of cfg (validated: -EINVAL on values out
 * of bounds). Returns 0 or a negative errno. */
int sp_proxy_new(const struct sp_proxy_config *cfg, struct sp_proxy **ret,
                 sp_error *err);

/* Take ownership of a listening stream socket (closed on failure too); it
 * is made non-blocking and close-on-exec. Returns 0 or a negative errno
 * (-ENOTSOCK, -EINVAL when it is not listening). */
int sp_proxy_add_listener(struct sp_proxy *p, int listen_fd);

/* The epoll fd: readable when sp_proxy_dispatch has work. */
int sp_proxy_fd(const struct sp_proxy *p);

/* Wait up to timeout_ms (0 from an embedding loop) for events, handle them
 * and expire deadlines. Returns the number of events handled (>= 0) or a
 * negative errno when epoll itself failed (EINTR is not a failure). */
int sp_proxy_dispatch(struct sp_proxy *p, int timeout_ms);

/* Milliseconds until the next deadline (0: overdue), or -1 for none: use
 * it as (or to lower) the embedding loop's poll timeout. */
int sp_proxy_next_timeout_ms(const struct sp_proxy *p);

/* Open client connections right now. */
unsigned sp_proxy_conn_count(const struct sp_proxy *p);

/* Close every connection and listener, kill and reap resolver children,
 * free. Accepts NULL. */
void sp_proxy_free(struct sp_proxy *p);

/* ---- the request log ----------------------------------------------------- */

enum sp_proxy_decision {
    SP_PROXY_ALLOWED = 0, /* the request was forwarded / tunnelled */
    SP_PROXY_DENIED,      /* the policy refused it (403, or an SNI refusal) */
    SP_PROXY_FAILED,      /* allowed, but it could not be served (400, 431,
                             502, 503, 504, a timeout) */
};

/* One request, reported once when it ends (a denial: at once). Fixed-size
 * so that the ring can hand out copies. Strings are always terminated and
 * hold only printable ASCII (others are replaced by '?'). */
struct sp_proxy_event {
    uint64_t seq;          /* 1, 2, 3 ... per proxy */
    uint64_t time_ms;      /* wall clock (ms since the epoch) at accept */
    uint64_t duration_ms;
    char client[64];       /* "127.0.0.1:41234" */
    char method[16];       /* "CONNECT", "GET", ... or "" */
    char host[256];        /* as the client asked, normalised */
    uint16_t port;
    int decision;          /* enum sp_proxy_decision */
    int status;            /* HTTP status the proxy answered (200 for a
                              tunnel or a forwarded request, 0: none sent) */
    char rule[280];        /* the rule that allowed it ("*.pypi.org:443") */
    char reason[256];      /* why it was denied or failed; "" otherwise */
    char upstream[64];     /* the checked address connected to */
    uint64_t bytes_up;     /* client -> upstream, after the request head */
    uint64_t bytes_down;   /* upstream -> client */
    bool dns_cached;       /* the name's addresses came from the proxy's
                              short-lived cache (no lookup made) */
};

typedef void (*sp_proxy_log_fn)(void *ctx, const struct sp_proxy_event *ev);

/* Call fn(ctx, ev) for every event (NULL fn: none). The event is valid only
 * during the call; fn must not call back into the proxy. */
void sp_proxy_set_log(struct sp_proxy *p, sp_proxy_log_fn fn, void *ctx);

/* Copy up to max events with seq > after_seq, oldest first, from the
 * in-memory ring (the last cfg.log_ring events). Returns the number
 * copied; pass the last seq seen to read on. */
size_t sp_proxy_log_read(const struct sp_proxy *p, uint64_t after_seq,
                         struct sp_proxy_event *out, size_t max);

#endif
