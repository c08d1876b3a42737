/* portfwd.h — published ports of a workspace (create --publish
 * [HOSTADDR:]HOSTPORT:PORT). The supervisor listens on the host side; for
 * each connection it asks the agent ("port.connect"), which connects to
 * 127.0.0.1:PORT inside the workspace's own network namespace and passes
 * the connected socket back with SCM_RIGHTS. The supervisor then moves
 * the bytes itself with splice(2) through a pipe per direction (no copy
 * through user space; the agent relays nothing). Works with no network:
 * the connection never leaves the namespace's loopback, and Landlock
 * allows bind and connect on exactly the published ports. */
#ifndef SANDPIT_PORTFWD_H
#define SANDPIT_PORTFWD_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "bounds.h"
#include "sandpit.h"

/* Connections forwarded at once per workspace (each holds six fds). */
#define SP_PORTFWD_MAX_CONNS 512
/* Host connections waiting for the agent's connect at once. */
#define SP_PORTFWD_MAX_PENDING 128
/* Seconds the agent may take to connect inside. */
#define SP_PORTFWD_CONNECT_TIMEOUT 10.0
/* Poll fds the forwarder adds to the supervisor's loop. */
#define SP_PORTFWD_MAX_FDS (SP_MAX_PUBLISH + 2 * SP_PORTFWD_MAX_CONNS)
/* Request ids towards the agent start here (the supervisor's own count
 * from 1), so replies are told apart by id alone. */
#define SP_PORTFWD_ID_BASE ((json_int_t)1 << 40)
/* The file in the workspace directory listing the bound ports. */
#define SP_WS_PORTS_FILE "ports.json"

/* One published port (a policy holds up to SP_MAX_PUBLISH). */
struct sp_publish {
    char host[64];             /* numeric host address to listen on */
    uint16_t host_port;        /* 0: any free port */
    uint16_t port;             /* inside, on 127.0.0.1 */
};

/* Policy JSON: "publish": ["[HOSTADDR:]HOSTPORT:PORT", ...] (HOSTADDR a
 * numeric IPv4 address or [IPv6]; default 127.0.0.1), replacing v[0..*n)
 * (room for SP_MAX_PUBLISH). A pure parser: the policy layer calls it. */
int sp_publish_parse_json(struct sp_publish *v, size_t *n, const json_t *j,
                          const char *origin, sp_error *err);
/* One --publish value, appended to v[0..*n). */
int sp_publish_parse(struct sp_publish *v, size_t *n, const char *spec,
                     sp_error *err);
json_t *sp_publish_to_json(const struct sp_publish *v, size_t n);

struct sp_portfwd;

/* Bind every published port (a port in use fails naming it). NULL *ret
 * when there is none. */
int sp_portfwd_new(const struct sp_publish *pubs, size_t n_pubs,
                   struct sp_portfwd **ret,
                   sp_error *err);
void sp_portfwd_free(struct sp_portfwd *f);
/* The bound ports as JSON [{"host":..,"host_port":..,"port":..}]. */
json_t *sp_portfwd_json(const struct sp_portfwd *f);

size_t sp_portfwd_pollfds(struct sp_portfwd *f, struct pollfd *pfd,
                          size_t max);
void sp_portfwd_events(struct sp_portfwd *f, const struct pollfd *pfd,
                       size_t n);
/* The next request line for the agent (caller frees), or NULL. */
char *sp_portfwd_take_request(struct sp_portfwd *f);
/* The agent's reply to one of ours (id >= SP_PORTFWD_ID_BASE), with the
 * socket it passed (taken over) or -1. */
void sp_portfwd_reply(struct sp_portfwd *f, json_int_t id, bool ok, int fd);
int sp_portfwd_timeout_ms(struct sp_portfwd *f, uint64_t now);
void sp_portfwd_timers(struct sp_portfwd *f, uint64_t now);

#endif
