/* netplumb.h — the plumbing of `--net allow:...` (docs/network.md): the
 * policy's proxy config (kept as canonical JSON text in the policy), the
 * listening socket the sandbox's PID 1 makes inside its network namespace
 * and hands to the host side over SCM_RIGHTS, the proxy environment of
 * every command, and the request log as JSON. The proxy itself is proxy.h. */
#ifndef SANDPIT_NETPLUMB_H
#define SANDPIT_NETPLUMB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "netspec.h"
#include "proxy.h"
#include "sandpit.h"

/* The port the proxy listens on inside the sandbox (127.0.0.1 of the
 * sandbox's own network namespace, which nothing else uses). */
#define SP_NET_PROXY_PORT 3128
/* Backlog of that listening socket. */
#define SP_NET_PROXY_BACKLOG 128
/* Most events one net_log request returns. */
#define SP_NET_LOG_MAX_BATCH 256

/* The proxy config of a policy in SP_NET_ALLOW mode (net_allow_private
 * ORed in). Free with sp_proxy_config_free. */
int sp_net_config_of_policy(const struct sp_policy *p,
                            struct sp_proxy_config *ret, sp_error *err);

/* Add HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (and lower-case) pointing at
 * http://127.0.0.1:port and NO_PROXY=localhost,127.0.0.1,::1 to a
 * NULL-terminated malloc'd "K=V" array (sp_env_build's), replacing
 * entries of the same names. Returns 0 or -ENOMEM. */
int sp_net_env_add(char ***envp, unsigned port);

/* In the sandbox's PID 1, after lo is up (async-signal-safe: raw syscalls
 * only): make a TCP socket listening on 127.0.0.1:port (no SO_REUSEADDR,
 * no SO_REUSEPORT: nothing else can then bind that port on 0.0.0.0 or
 * share it) and send it over sock with SCM_RIGHTS; close our copy.
 * Returns 0 or -errno. */
int sp_net_child_send_listener(int sock, unsigned port);

/* On the host side: receive the listening fd (blocking). Returns the fd
 * (O_CLOEXEC), or -errno (-ECONNRESET on EOF: the child failed first). */
int sp_net_recv_listener(int sock);

/* One event as a JSON object (new reference). */
json_t *sp_net_event_json(const struct sp_proxy_event *ev);

/* Log callback writing one JSON line per event to the fd *ctx (one
 * write(), so readers never see half a line). */
void sp_net_log_to_fd(void *ctx, const struct sp_proxy_event *ev);

/* The supervisor's "net_log" method: events with seq > after (at most
 * max, bounded by SP_NET_LOG_MAX_BATCH) as {"events": [...], "last": N,
 * "first_kept": N, "connections": N}. */
json_t *sp_net_log_result(const struct sp_proxy *p, uint64_t after,
                          size_t max);

#endif
