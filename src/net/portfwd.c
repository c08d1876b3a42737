/* portfwd.c — published ports (portfwd.h): parsing, host listeners, and
 * the splice relay the supervisor runs for each forwarded connection. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "portfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "proto.h"
#include "util.h"

/* ---- parsing ---- */

static int parse_port(const char *s, size_t n, bool zero_ok, uint16_t *ret)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535 || (v == 0 && !zero_ok))
        return -1;
    *ret = (uint16_t)v;
    return 0;
}

int sp_publish_parse(struct sp_publish *v, size_t *n, const char *spec,
                     sp_error *err)
{
    struct sp_publish pb;
    memset(&pb, 0, sizeof(pb));
    const char *hp = spec, *last = strrchr(spec, ':');
    if (!last)
        goto bad;
    if (parse_port(last + 1, strlen(last + 1), false, &pb.port) < 0)
        goto bad;
    /* What is before the last colon: HOSTPORT, or HOSTADDR:HOSTPORT. */
    const char *mid = NULL;
    for (const char *c = spec; c < last; c++)
        if (*c == ':')
            mid = c;
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || rb[1] != ':' || rb >= last)
            goto bad;
        mid = rb + 1;
    }
    if (mid) {
        size_t hl = (size_t)(mid - spec);
        const char *h = spec;
        if (spec[0] == '[') {
            h++;
            hl -= 2;
        }
        if (hl == 0 || hl >= sizeof(pb.host))
            goto bad;
        memcpy(pb.host, h, hl);
        pb.host[hl] = '\0';
        hp = mid + 1;
    } else {
        snprintf(pb.host, sizeof(pb.host), "127.0.0.1");
    }
    if (parse_port(hp, (size_t)(last - hp), true, &pb.host_port) < 0)
        goto bad;
    unsigned char a[16];
    if (inet_pton(AF_INET, pb.host, a) != 1 &&
        inet_pton(AF_INET6, pb.host, a) != 1)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "--publish %.100s: %s is not a numeric IP "
                             "address", spec, pb.host);
    for (size_t i = 0; i < *n; i++)
        if (v[i].host_port && v[i].host_port == pb.host_port &&
            strcmp(v[i].host, pb.host) == 0)
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "--publish %.100s: host port %u is published "
                                 "twice", spec, pb.host_port);
    if (*n >= SP_MAX_PUBLISH)
        return sp_error_setk(err, SP_ERR_USAGE, E2BIG,
                             "more than %d published ports", SP_MAX_PUBLISH);
    v[(*n)++] = pb;
    return 0;
bad:
    return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                         "--publish %.100s: expected [HOSTADDR:]HOSTPORT:PORT "
                         "(ports 1-65535; HOSTPORT 0 picks a free one)",
                         spec);
}

int sp_publish_parse_json(struct sp_publish *pv, size_t *n, const json_t *v,
                          const char *origin, sp_error *err)
{
    if (!json_is_array(v))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "%s: \"publish\" must be an array of "
                             "\"[HOSTADDR:]HOSTPORT:PORT\" strings", origin);
    *n = 0;
    size_t i;
    json_t *e;
    json_array_foreach((json_t *)v, i, e) {
        if (!json_is_string(e))
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "%s: publish[%zu] must be a string", origin, i);
        int r = sp_publish_parse(pv, n, json_string_value(e), err);
        if (r < 0)
            return sp_error_prefix(err, "%s", origin);
    }
    return 0;
}

static void fmt_publish(const struct sp_publish *pb, uint16_t host_port,
                        char *buf, size_t len)
{
    bool v6 = strchr(pb->host, ':') != NULL;
    snprintf(buf, len, "%s%s%s:%u:%u", v6 ? "[" : "", pb->host, v6 ? "]" : "",
             host_port, pb->port);
}

json_t *sp_publish_to_json(const struct sp_publish *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char buf[128];
        fmt_publish(&v[i], v[i].host_port, buf, sizeof(buf));
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

/* ---- the forwarder ---- */

struct half {                  /* one direction: src -> pipe -> dst */
    int pr, pw;                /* the pipe */
    size_t queued;             /* bytes in the pipe */
    bool src_eof;              /* src said EOF */
    bool done;                 /* EOF passed on (dst shut for writing) */
};

struct conn {
    int fd[2];                 /* [0] the host client, [1] the inside socket */
    struct half h[2];          /* [0] host -> inside, [1] inside -> host */
};

struct pending {
    json_int_t id;
    int fd;                    /* the accepted host connection */
    uint16_t port;
    uint64_t deadline;
};

struct listener {
    int fd;
    struct sp_publish pb;
    uint16_t bound_port;
};

struct sp_portfwd {
    struct listener ls[SP_MAX_PUBLISH];
    size_t n_ls;
    struct conn *conns[SP_PORTFWD_MAX_CONNS];
    size_t n_conns;
    struct pending pend[SP_PORTFWD_MAX_PENDING];
    size_t n_pend;
    size_t n_unsent;           /* pend[n_pend - n_unsent ..] not yet asked */
    json_int_t next_id;
    /* the fds handed to poll, and what they are */
    struct { int kind; size_t idx; } map[SP_PORTFWD_MAX_FDS];
};

int sp_portfwd_new(const struct sp_publish *pubs, size_t n_pubs,
                   struct sp_portfwd **ret, sp_error *err)
{
    *ret = NULL;
    if (!n_pubs)
        return 0;
    struct sp_portfwd *f = calloc(1, sizeof(*f));
    if (!f)
        return sp_error_set(err, ENOMEM, "port forwarder");
    f->next_id = SP_PORTFWD_ID_BASE;
    /* Six fds a connection: raise the soft limit as far as allowed. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = 64 + 6 * SP_PORTFWD_MAX_CONNS + 2 * SP_WS_MAX_CLIENTS;
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (size_t i = 0; i < n_pubs; i++) {
        const struct sp_publish *pb = &pubs[i];
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        socklen_t sl;
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, pb->host, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            a4->sin_port = htons(pb->host_port);
            sl = sizeof(*a4);
        } else if (inet_pton(AF_INET6, pb->host, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons(pb->host_port);
            sl = sizeof(*a6);
        } else {
            sp_portfwd_free(f);
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "publish: bad address %s", pb->host);
        }
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
            listen(fd, SOMAXCONN) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            char buf[128];
            fmt_publish(pb, pb->host_port, buf, sizeof(buf));
            sp_portfwd_free(f);
            if (e == EADDRINUSE)
                return sp_error_setk(err, SP_ERR_USAGE, 0,
                                     "cannot publish %s: host port %u is "
                                     "already in use", buf, pb->host_port);
            return sp_error_setk(err, SP_ERR_SYSTEM, e,
                                 "cannot publish %s: %s", buf, strerror(e));
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        getsockname(fd, (struct sockaddr *)&got, &gl);
        f->ls[f->n_ls].fd = fd;
        f->ls[f->n_ls].pb = *pb;
        f->ls[f->n_ls].bound_port =
            ntohs(got.ss_family == AF_INET
                      ? ((struct sockaddr_in *)&got)->sin_port
                      : ((struct sockaddr_in6 *)&got)->sin6_port);
        f->n_ls++;
    }
    *ret = f;
    return 0;
}

static void half_close(struct half *h)
{
    if (h->pr >= 0)
        close(h->pr);
    if (h->pw >= 0)
        close(h->pw);
    h->pr = h->pw = -1;
}

static void conn_free(struct sp_portfwd *f, size_t i)
{
    struct conn *c = f->conns[i];
    close(c->fd[0]);
    close(c->fd[1]);
    half_close(&c->h[0]);
    half_close(&c->h[1]);
    free(c);
    f->conns[i] = f->conns[--f->n_conns];
}

void sp_portfwd_free(struct sp_portfwd *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_ls; i++)
        close(f->ls[i].fd);
    while (f->n_conns)
        conn_free(f, f->n_conns - 1);
    for (size_t i = 0; i < f->n_pend; i++)
        close(f->pend[i].fd);
    free(f);
}

json_t *sp_portfwd_json(const struct sp_portfwd *f)
{
    json_t *a = json_array();
    for (size_t i = 0; f && i < f->n_ls; i++)
        json_array_append_new(a, json_pack("{s:s,s:i,s:i}", "host",
                                           f->ls[i].pb.host, "host_port",
                                           (int)f->ls[i].bound_port, "port",
                                           (int)f->ls[i].pb.port));
    return a;
}

enum { K_LISTEN = 1, K_HOST, K_INSIDE };

size_t sp_portfwd_pollfds(struct sp_portfwd *f, struct pollfd *pfd, size_t max)
{
    size_t n = 0;
    if (!f)
        return 0;
    for (size_t i = 0; i < f->n_ls && n < max; i++) {
        bool room = f->n_pend < SP_PORTFWD_MAX_PENDING &&
                    f->n_conns + f->n_pend < SP_PORTFWD_MAX_CONNS;
        f->map[n].kind = K_LISTEN;
        f->map[n].idx = i;
        pfd[n++] = (struct pollfd){room ? f->ls[i].fd : -1, POLLIN, 0};
    }
    for (size_t i = 0; i < f->n_conns && n + 2 <= max; i++) {
        struct conn *c = f->conns[i];
        for (int s = 0; s < 2; s++) {
            /* fd[s] is the source of h[s] and the sink of h[1-s]. */
            short ev = 0;
            if (!c->h[s].src_eof && c->h[s].queued == 0)
                ev |= POLLIN;
            if (c->h[1 - s].queued > 0)
                ev |= POLLOUT;
            f->map[n].kind = s == 0 ? K_HOST : K_INSIDE;
            f->map[n].idx = i;
            pfd[n++] = (struct pollfd){c->fd[s], ev, 0};
        }
    }
    return n;
}

/* Splices per direction per event, so one busy connection cannot starve
 * the supervisor's loop (a test build sets 1: tests/unit/test_portfwd.c). */
#ifndef SP_PORTFWD_PUMP_ROUNDS
#define SP_PORTFWD_PUMP_ROUNDS 64
#endif

/* Move what can move in one direction. Returns -1 when the connection is
 * broken (reset, error). */
static int pump(struct conn *c, int s)
{
    struct half *h = &c->h[s];
    int src = c->fd[s], dst = c->fd[1 - s];
    for (int rounds = 0; rounds < SP_PORTFWD_PUMP_ROUNDS; rounds++) {
        if (h->queued) {
            ssize_t w = splice(h->pr, NULL, dst, NULL, h->queued,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno == EAGAIN)
                return 0;
            if (w <= 0)
                return -1;
            h->queued -= (size_t)w;
            continue;
        }
        if (h->src_eof) {
            if (!h->done) {
                shutdown(dst, SHUT_WR); /* half-close passed on */
                h->done = true;
            }
            return 0;
        }
        ssize_t r = splice(src, NULL, h->pw, NULL, 1 << 20,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r < 0)
            return -1;
        if (r == 0)
            h->src_eof = true;
        h->queued += (size_t)r;
    }
    /* The rounds ran out just as the source said EOF with nothing left
     * queued: no poll event would call us again for this half, so the
     * half-close is passed on here (else the peer waits for it forever). */
    if (h->src_eof && h->queued == 0 && !h->done) {
        shutdown(dst, SHUT_WR);
        h->done = true;
    }
    return 0;
}

static void add_conn(struct sp_portfwd *f, int host, int inside)
{
    struct conn *c = calloc(1, sizeof(*c));
    int p0[2] = {-1, -1}, p1[2] = {-1, -1};
    if (!c || f->n_conns >= SP_PORTFWD_MAX_CONNS ||
        pipe2(p0, O_CLOEXEC | O_NONBLOCK) < 0 ||
        pipe2(p1, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(c);
        close(host);
        close(inside);
        for (int i = 0; i < 2; i++) {
            if (p0[i] >= 0)
                close(p0[i]);
            if (p1[i] >= 0)
                close(p1[i]);
        }
        return;
    }
    /* Larger pipes move more per splice (best effort; only for the first
     * few connections, as a user's pipe memory is limited and pipes made
     * past that limit get one page). */
    if (f->n_conns < 16) {
        fcntl(p0[1], F_SETPIPE_SZ, 1024 * 1024);
        fcntl(p1[1], F_SETPIPE_SZ, 1024 * 1024);
    }
    fcntl(inside, F_SETFL, fcntl(inside, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(host, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd[0] = host;
    c->fd[1] = inside;
    c->h[0] = (struct half){p0[0], p0[1], 0, false, false};
    c->h[1] = (struct half){p1[0], p1[1], 0, false, false};
    f->conns[f->n_conns++] = c;
    /* Bytes may already wait on either side. */
    if (pump(c, 0) < 0 || pump(c, 1) < 0)
        conn_free(f, f->n_conns - 1);
}

void sp_portfwd_events(struct sp_portfwd *f, const struct pollfd *pfd,
                       size_t n)
{
    if (!f)
        return;
    /* Connections first (indexes stay valid until one is freed: collect). */
    bool dead[SP_PORTFWD_MAX_CONNS] = {false};
    size_t n_conns = f->n_conns;
    for (size_t k = 0; k < n; k++) {
        if (!pfd[k].revents || f->map[k].kind == K_LISTEN)
            continue;
        size_t i = f->map[k].idx;
        if (i >= n_conns || dead[i])
            continue;
        struct conn *c = f->conns[i];
        int s = f->map[k].kind == K_HOST ? 0 : 1;
        if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) && pump(c, s) < 0)
            dead[i] = true;
        if (!dead[i] && (pfd[k].revents & (POLLOUT | POLLERR)) &&
            pump(c, 1 - s) < 0)
            dead[i] = true;
        if (!dead[i] && c->h[0].done && c->h[1].done)
            dead[i] = true;
    }
    for (size_t i = n_conns; i-- > 0;)
        if (dead[i])
            conn_free(f, i);
    for (size_t k = 0; k < n; k++) {
        if (!(pfd[k].revents & POLLIN) || f->map[k].kind != K_LISTEN)
            continue;
        struct listener *l = &f->ls[f->map[k].idx];
        for (int rounds = 0; rounds < 64; rounds++) {
            if (f->n_pend >= SP_PORTFWD_MAX_PENDING ||
                f->n_conns + f->n_pend >= SP_PORTFWD_MAX_CONNS)
                break;
            int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            f->pend[f->n_pend++] = (struct pending){
                ++f->next_id, fd, l->pb.port,
                sp_now_us() + (uint64_t)(SP_PORTFWD_CONNECT_TIMEOUT * 1e6)};
            f->n_unsent++;
        }
    }
}

char *sp_portfwd_take_request(struct sp_portfwd *f)
{
    if (!f || !f->n_unsent)
        return NULL;
    struct pending *p = &f->pend[f->n_pend - f->n_unsent--];
    json_t *jid = json_integer(p->id);
    char *line = sp_proto_request(jid, "port.connect",
                                  json_pack("{s:i}", "port", (int)p->port));
    json_decref(jid);
    return line;
}

static void pend_remove(struct sp_portfwd *f, size_t i)
{
    /* Keep order: the unsent ones are the tail. */
    memmove(&f->pend[i], &f->pend[i + 1],
            (f->n_pend - i - 1) * sizeof(f->pend[0]));
    f->n_pend--;
}

void sp_portfwd_reply(struct sp_portfwd *f, json_int_t id, bool ok, int fd)
{
    for (size_t i = 0; f && i < f->n_pend; i++) {
        if (f->pend[i].id != id)
            continue;
        int host = f->pend[i].fd;
        pend_remove(f, i);
        struct stat sb;
        if (ok && fd >= 0 && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            add_conn(f, host, fd);
            return;
        }
        /* Nothing listens inside: the client sees the connection end. */
        close(host);
        break;
    }
    if (fd >= 0)
        close(fd);
}

int sp_portfwd_timeout_ms(struct sp_portfwd *f, uint64_t now)
{
    if (!f || !f->n_pend)
        return -1;
    uint64_t next = f->pend[0].deadline;
    for (size_t i = 1; i < f->n_pend; i++)
        if (f->pend[i].deadline < next)
            next = f->pend[i].deadline;
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

void sp_portfwd_timers(struct sp_portfwd *f, uint64_t now)
{
    for (size_t i = 0; f && i < f->n_pend;) {
        if (f->pend[i].deadline <= now && i < f->n_pend - f->n_unsent) {
            close(f->pend[i].fd);
            pend_remove(f, i);
            continue;
        }
        i++;
    }
}
